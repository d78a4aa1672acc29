#!/usr/bin/env bash
# Sweeps: sharded (GNU parallel recipe) + merged equals unsharded; kill -9 then resume loses and
# duplicates nothing; merge refuses another schema version; a bad grid line is named.
# usage: test_sweep.sh WIKV SOURCE_DIR
set -euo pipefail
wikv=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cells() { sqlite3 "$1" "SELECT cell, ttft_s, bytes_sent FROM complete_requests ORDER BY cell"; }

cat > "$tmp/grid.txt" <<EOG
traces = $src/traces/lte-static-90s-seed1.txt, $src/traces/wifi-walk-120s-seed1.csv
policies = prefill, full, kivi2:group=32,residual=128, kivi4
models = llama-3.1-8b
devices = jetson-agx-orin, rtx5080-laptop
contexts = 4096, 8192
requests = 7
EOG
"$wikv" sweep "$tmp/grid.txt" --db "$tmp/all.db" --jobs 2 --no-progress >/dev/null
n_all=$(sqlite3 "$tmp/all.db" "SELECT count(*) FROM complete_requests")
[ "$n_all" -eq 224 ] || fail "unsharded sweep has $n_all cells, expected 224"

# the README's GNU parallel recipe, with 2 shards
if command -v parallel >/dev/null; then
  parallel --will-cite "$wikv" sweep "$tmp/grid.txt" --db "$tmp/part-{}.db" --shard {}/2 --jobs 1 --no-progress ::: 1 2 >/dev/null
else
  echo "SKIP-PARTIAL: GNU parallel absent, shards run one after the other"
  for k in 1 2; do "$wikv" sweep "$tmp/grid.txt" --db "$tmp/part-$k.db" --shard $k/2 --no-progress >/dev/null; done
fi
"$wikv" db merge "$tmp/merged.db" "$tmp/part-1.db" "$tmp/part-2.db" >/dev/null
[ "$(cells "$tmp/all.db")" = "$(cells "$tmp/merged.db")" ] || fail "sharded+merged differs from unsharded"

# kill -9 in the middle, rerun: nothing lost, nothing duplicated
sed -i 's/^requests = 7/requests = 400/' "$tmp/grid.txt"
"$wikv" sweep "$tmp/grid.txt" --db "$tmp/ref.db" --jobs 2 --no-progress >/dev/null
"$wikv" sweep "$tmp/grid.txt" --db "$tmp/killed.db" --jobs 2 --no-progress >/dev/null &
pid=$!
sleep 0.5
pkill -9 -P "$pid" 2>/dev/null || true
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
partial=$(sqlite3 "$tmp/killed.db" "SELECT count(*) FROM requests" 2>/dev/null || echo 0) # may die before its schema
"$wikv" sweep "$tmp/grid.txt" --db "$tmp/killed.db" --jobs 2 --no-progress >/dev/null
dups=$(sqlite3 "$tmp/killed.db" "SELECT count(*) - count(DISTINCT cell) FROM requests")
[ "$dups" -eq 0 ] || fail "$dups duplicated cells after resume"
[ "$(cells "$tmp/ref.db")" = "$(cells "$tmp/killed.db")" ] || fail "resumed sweep differs from an uninterrupted one"
echo "kill -9 after $partial of 12800 cells; resumed with 0 lost, 0 duplicated"

# merge refuses another schema version
sqlite3 "$tmp/other.db" "PRAGMA user_version = 7; CREATE TABLE runs(x); CREATE TABLE requests(x); CREATE TABLE events(x);"
set +e
msg=$("$wikv" db merge "$tmp/merged.db" "$tmp/other.db" 2>&1); status=$?
set -e
[ "$status" -eq 2 ] || fail "merge of another schema version: exit $status"
grep -q "schema version 7" <<<"$msg" || fail "merge message: $msg"

# a bad grid line is named
printf 'traces = %s\nbogus = 1\n' "$src/traces/lte-static-90s-seed1.txt" > "$tmp/bad.txt"
set +e
msg=$("$wikv" sweep "$tmp/bad.txt" --db "$tmp/b.db" 2>&1); status=$?
set -e
[ "$status" -eq 2 ] || fail "bad grid exit $status"
grep -q "bad.txt:2:" <<<"$msg" || fail "bad grid message: $msg"
echo "test_sweep: all checks passed"
