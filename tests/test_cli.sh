#!/usr/bin/env bash
# End-to-end checks of the command line: trace stats and errors, sim over traces (public ones when
# ../shared/traces-public exists), db summary. usage: test_cli.sh WIKV SOURCE_DIR
set -euo pipefail
wikv=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# a malformed trace: FILE:LINE message and exit status 2
printf '0\n5\nxyz\n' > "$tmp/bad.down"
set +e
out=$("$wikv" trace stats "$tmp/bad.down" 2>&1); status=$?
set -e
[ "$status" -eq 2 ] || fail "malformed trace exit status $status"
grep -q "bad.down:3:" <<<"$out" || fail "no FILE:LINE in: $out"

# stats of a small pensieve trace
printf '0 10\n1 30\n' > "$tmp/two.txt"
stats=$("$wikv" trace stats "$tmp/two.txt")
grep -q "20.00" <<<"$stats" || fail "mean of two.txt: $stats"

# sim on a constant trace, every policy, into a database; summary lists each policy
printf 'time_s,mbps\n0,200\n1,200\n' > "$tmp/c200.csv"
"$wikv" sim --trace "$tmp/c200.csv" --requests 2 --context 4096 --db "$tmp/r.db" --no-progress > "$tmp/sim.out"
for p in prefill full kivi2 kivi4; do grep -q "^$p " "$tmp/sim.out" || fail "policy $p missing from sim table"; done
summary=$("$wikv" db summary "$tmp/r.db")
grep -q "c200.csv" <<<"$summary" || fail "db summary: $summary"

# unknown policy and missing trace are bad input
set +e
"$wikv" sim --trace "$tmp/c200.csv" --policy nosuch --db "$tmp/r.db" --no-progress 2>/dev/null; s1=$?
"$wikv" sim --trace "$tmp/missing.csv" --db "$tmp/r.db" --no-progress 2>/dev/null; s2=$?
set -e
[ "$s1" -eq 2 ] || fail "unknown policy exit status $s1"
[ "$s2" -eq 2 ] || fail "missing trace exit status $s2"

# every public trace, when the shared folder is there
public="$src/../shared/traces-public"
if [ -d "$public" ]; then
  "$wikv" sim --trace "$public" --requests 2 --context 2048 --db "$tmp/pub.db" --no-progress > "$tmp/pub.out"
  n_manifest=$(grep -vc '^#' "$public/MANIFEST.tsv")
  n_traces=$(awk 'NR>1 && $1=="full"' "$tmp/pub.out" | wc -l)
  [ "$n_traces" -eq "$n_manifest" ] || fail "public traces simulated: $n_traces of $n_manifest"
  echo "public traces: $n_traces simulated"
else
  echo "SKIP: $public absent, public-trace simulation not run"
fi
echo "test_cli: all checks passed"
