#!/usr/bin/env bash
# `wikv run` records every failed request as failed, with its reason, and never as a TTFT: a server
# killed mid-stream (kill -9), a stream slower than --timeout, a server at --max-active, and no server
# at all; the SQLite rows are checked (status, fail_reason, NULL ttft/tpot/f1), and the ok rows beside
# them keep their TTFT.
set -euo pipefail
wikv=$1
src=$2
tmp=$(mktemp -d)
server=
client=
trap '[ -n "$server" ] && kill -9 "$server" 2>/dev/null; [ -n "$client" ] && kill "$client" 2>/dev/null; rm -rf "$tmp"' EXIT
printf '0 0.3\n10 0.3\n' >"$tmp/slow.txt"   # Pensieve format: 0.3 Mbit/s, full KV of 256 tokens takes ~6 s
printf '0 0.03\n10 0.03\n' >"$tmp/crawl.txt" # 0.03 Mbit/s: one 64 KB unit takes ~17 s
"$wikv" kvgen --task passkey --context 256 --seed 3 --n 1 --out "$tmp/kv" 2>/dev/null

# serve TRACE [options]: starts a server in the background; sets $server and $port
serve() {
    local trace=$1
    shift
    rm -f "$tmp/port"
    "$wikv" serve --port 0 --trace "$trace" --kv-dir "$tmp/kv" --quiet "$@" >"$tmp/port" &
    server=$!
    for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
    port=$(sed 's/.*://' "$tmp/port")
}
# request POLICY [options]: one request of passkey seed 3 into r.db; its exit status is in $rc
request() {
    local policy=$1
    shift
    set +e
    "$wikv" run --server 127.0.0.1:"$port" --policy "$policy" --task passkey --context 256 --seed 3 --out 4 \
        --db "$tmp/r.db" "$@" >>"$tmp/out" 2>>"$tmp/err"
    rc=$?
    set -e
}

# an ok request first: it has a TTFT
serve "$tmp/slow.txt"
request kivi2
[ "$rc" -eq 0 ]
# the server killed mid-stream
(request full; exit "$rc") &
client=$!
sleep 1
kill -9 "$server"
wait "$server" 2>/dev/null || true
server=
set +e; wait "$client"; rc=$?; set -e
client=
[ "$rc" -eq 1 ]
# a stream slower than the client's --timeout
serve "$tmp/crawl.txt"
request full --timeout 1
[ "$rc" -eq 1 ]
kill -9 "$server"; wait "$server" 2>/dev/null || true; server=
# the server busy: one place, taken
serve "$tmp/slow.txt" --max-active 1
# (its own database: a run holds its database's write transaction until it ends)
(request full --db "$tmp/hold.db"; exit "$rc") &
client=$!
# wait for its connection to be up (it holds the one place for ~6 s)
for _ in $(seq 100); do
    est=$(ss -Htn state established "( sport = :$port )" 2>/dev/null || true)
    [ -n "$est" ] && break
    sleep 0.05
done
[ -n "$est" ]
request kivi2
[ "$rc" -eq 1 ]
kill "$client"; wait "$client" 2>/dev/null || true; client=
kill -9 "$server"; wait "$server" 2>/dev/null || true; server=
# nobody listening any more on that port
request kivi2
[ "$rc" -eq 1 ]

db() { sqlite3 "$tmp/r.db" "$1"; }
out=$(cat "$tmp/out")
[ "$(db "select count(*) from requests where status = 'ok' and ttft_s > 0 and f1 is not null")" -eq 1 ]
[ "$(db "select count(*) from requests where status = 'failed'")" -eq 4 ]
# no failed row carries a TTFT, a TPOT, an F1 or an answer; every one has a reason
[ "$(db "select count(*) from requests where status = 'failed' and (ttft_s is not null or tpot_s is not null
    or f1 is not null or answer is not null or fail_reason is null or fail_reason = '')")" -eq 0 ]
for why in "server gone" "timeout or network error" "server busy" "connect to 127.0.0.1"; do
    n=$(db "select count(*) from requests where status = 'failed' and instr(fail_reason, '$why') > 0")
    [ "$n" -eq 1 ] || { echo "no failed row with '$why':"; db "select fail_reason from requests"; exit 1; }
    grep -q "FAILED: .*$why" <<<"$out"
done
# a failed request does not fail its run: the runs are complete and their rows readable
[ "$(db "select count(*) from complete_requests where status = 'failed'")" -eq 4 ]
echo "test_exec_failures: 4 failure kinds recorded as failed with their reason, none with a TTFT"
