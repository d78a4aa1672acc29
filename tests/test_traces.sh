#!/usr/bin/env bash
# The bundled traces/ files are reproduced byte for byte by traces/make-traces.sh with the same seeds.
# usage: test_traces.sh WIKV SOURCE_DIR
set -euo pipefail
wikv=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bash "$src/traces/make-traces.sh" "$wikv" "$tmp"
n=0
for f in "$tmp"/*; do
  name=$(basename "$f")
  [ -e "$src/traces/$name" ] || { echo "make-traces.sh makes $name, which is not bundled in traces/" >&2; exit 1; }
  cmp "$f" "$src/traces/$name" || { echo "traces/$name differs from its regeneration" >&2; exit 1; }
  n=$((n + 1))
done
for f in "$src"/traces/*.txt "$src"/traces/*.csv; do
  [ -e "$tmp/$(basename "$f")" ] || { echo "traces/$(basename "$f") is not made by make-traces.sh" >&2; exit 1; }
done
[ "$n" -ge 5 ] || { echo "expected at least 5 bundled traces, got $n" >&2; exit 1; }
# the same command twice gives the same bytes; another seed gives other bytes
"$wikv" trace gen --model lte-driving --seconds 10 --seed 7 --format csv -o "$tmp/a.csv"
"$wikv" trace gen --model lte-driving --seconds 10 --seed 7 --format csv -o "$tmp/b.csv"
"$wikv" trace gen --model lte-driving --seconds 10 --seed 8 --format csv -o "$tmp/c.csv"
cmp -s "$tmp/a.csv" "$tmp/b.csv"
! cmp -s "$tmp/a.csv" "$tmp/c.csv"
# bad input: exit status 2 with a message
set +e
"$wikv" trace gen --model no-such --seconds 10 --seed 1 --format csv -o "$tmp/x" 2>/dev/null; [ $? -eq 2 ] || exit 1
"$wikv" trace gen --model wifi-walk --seconds -1 --seed 1 --format csv -o "$tmp/x" 2>/dev/null; [ $? -eq 2 ] || exit 1
"$wikv" trace compare "$tmp/a.csv" 2>/dev/null; [ $? -eq 2 ] || exit 1
set -e
out=$("$wikv" trace compare "$src/traces/wifi-static-90s-seed1.txt" "$src/traces/lte-driving-120s-seed1.txt")
grep -q "^mean_mbps .*599.68 .*14.17$" <<<"$out" || { echo "compare output: $out" >&2; exit 1; }
grep -q "^autocorr_1s" <<<"$out" && grep -q "^outage_frac" <<<"$out" && grep -q "^cov" <<<"$out"
echo "ok: $n bundled traces reproduced"
