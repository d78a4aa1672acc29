#!/usr/bin/env bash
# Shared links from the command line: `wikv sim --devices-per-link` writes one row per device and
# prints the growth table; one device on a shared link gives the plain simulation's TTFT; a grid
# with devices_per_link sweeps in shards to the same rows as unsharded; bad values exit 2.
# usage: test_shared_sim.sh WIKV SOURCE_DIR
set -euo pipefail
wikv=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
trace=$src/traces/wifi-walk-120s-seed1.csv

out=$("$wikv" sim --trace "$trace" --policy full,kivi2 --context 2048 --requests 3 --devices-per-link 1,3 \
      --db "$tmp/s.db" --no-progress --events none)
grep -q "shared link: TTFT as devices per link grow" <<<"$out" || fail "no growth table"
rows=$(sqlite3 "$tmp/s.db" "SELECT count(*) FROM complete_requests")
[ "$rows" -eq 24 ] || fail "expected 2 policies x 3 requests x (1 + 3) devices = 24 rows, got $rows"
devs=$(sqlite3 "$tmp/s.db" "SELECT group_concat(DISTINCT device) FROM complete_requests")
[ "$devs" = "jetson-agx-orin x1,jetson-agx-orin x3" ] || fail "device column: $devs"
# three devices on one link wait longer than one
slower=$(sqlite3 "$tmp/s.db" "SELECT (SELECT avg(ttft_s) FROM complete_requests WHERE device LIKE '% x3' AND policy='full')
                              > 2 * (SELECT avg(ttft_s) FROM complete_requests WHERE device LIKE '% x1' AND policy='full')")
[ "$slower" -eq 1 ] || fail "3 devices on one link are not slower than one"

# one device on a shared link = the plain simulation
"$wikv" sim --trace "$trace" --policy full,kivi2 --context 2048 --requests 3 --db "$tmp/p.db" --no-progress \
  --events none >/dev/null
diff <(sqlite3 "$tmp/p.db" "SELECT policy, seed, printf('%.9e', ttft_s) FROM complete_requests ORDER BY policy, seed") \
     <(sqlite3 "$tmp/s.db" "SELECT policy, seed, printf('%.9e', ttft_s) FROM complete_requests WHERE device LIKE '% x1'
                            ORDER BY policy, seed") || fail "one device on a shared link differs from the plain sim"

# grid key, shards + merge = unsharded
cat > "$tmp/grid.txt" <<EOG
traces = $trace
policies = full, kivi4
models = llama-3.1-8b
devices = jetson-agx-orin
contexts = 2048
requests = 3
devices_per_link = 2, 3
stagger_ms = 50
EOG
"$wikv" sweep "$tmp/grid.txt" --db "$tmp/all.db" --jobs 2 --no-progress >/dev/null
n=$(sqlite3 "$tmp/all.db" "SELECT count(*) FROM complete_requests")
[ "$n" -eq 30 ] || fail "sweep: expected 2 x 3 x (2 + 3) = 30 rows, got $n"
for k in 1 2 3; do "$wikv" sweep "$tmp/grid.txt" --db "$tmp/part-$k.db" --shard $k/3 --no-progress >/dev/null; done
"$wikv" db merge "$tmp/merged.db" "$tmp/part-1.db" "$tmp/part-2.db" "$tmp/part-3.db" >/dev/null
cells() { sqlite3 "$1" "SELECT cell, ttft_s FROM complete_requests ORDER BY cell"; }
[ "$(cells "$tmp/all.db")" = "$(cells "$tmp/merged.db")" ] || fail "sharded+merged differs from unsharded"

# bad input
set +e
"$wikv" sim --trace "$trace" --devices-per-link 0 --db "$tmp/x.db" >/dev/null 2>&1; [ $? -eq 2 ] || fail "--devices-per-link 0 not refused"
"$wikv" sim --trace "$trace" --stagger-ms -1 --db "$tmp/x.db" >/dev/null 2>&1; [ $? -eq 2 ] || fail "--stagger-ms -1 not refused"
echo "devices_per_link = 0" >> "$tmp/grid.txt"
msg=$("$wikv" sweep "$tmp/grid.txt" --db "$tmp/y.db" 2>&1); rc=$?
set -e
[ $rc -eq 2 ] || fail "bad grid devices_per_link: exit $rc"
grep -q "grid.txt:9: devices_per_link" <<<"$msg" || fail "bad grid line not named: $msg"
echo "ok"
