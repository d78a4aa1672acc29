#!/usr/bin/env bash
# `wikv kvgen|serve|run`: help and bad input (exit 2), then one real request per policy kind over loopback
# from a kvgen'd KV file (through a --shared-link server), recorded as complete exec rows; a damaged
# importance file is refused.
set -euo pipefail
wikv=$1
src=$2
tmp=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$tmp"' EXIT
for c in kvgen serve run; do "$wikv" $c --help >/dev/null; done
set +e
"$wikv" run --server 127.0.0.1 --policy full --task passkey --context 256 2>/dev/null; [ $? -eq 2 ] || exit 1
"$wikv" serve --port 0 2>/dev/null; [ $? -eq 2 ] || exit 1
for bad in "--max-active 0" "--send-timeout 0" "--send-timeout x"; do
    "$wikv" serve --port 0 --trace "$src/traces/lte-static-90s-seed1.txt" $bad 2>/dev/null; [ $? -eq 2 ] || exit 1
done
"$wikv" kvgen --task nope --context 256 --out "$tmp/kv" 2>/dev/null; [ $? -eq 2 ] || exit 1
set -e
"$wikv" kvgen --task passkey --context 256 --seed 3 --n 1 --out "$tmp/kv" 2>/dev/null
[ -s "$tmp/kv/passkey-256-3.wkv" ] && [ -s "$tmp/kv/passkey-256-3.wki" ]
"$wikv" serve --port 0 --trace "$src/traces/lte-static-90s-seed1.txt" --kv-dir "$tmp/kv" --max-connections 5 --quiet \
    --shared-link --max-active 8 --send-timeout 10 >"$tmp/port" &
server=$!
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
port=$(sed 's/.*://' "$tmp/port")
for p in prefill full kivi2 wikv:batch=256; do
    "$wikv" run --server 127.0.0.1:"$port" --policy $p --task passkey --context 256 --seed 3 --out 4 \
        --db "$tmp/r.db" --trace "$src/traces/lte-static-90s-seed1.txt" >"$tmp/out"
    grep -q "1 ok, 0 failed" "$tmp/out"
done
# a choice file from `wikv choose` runs as it is: its policy spec and context, no hand copying
printf '{"policy": "kivi4:group=64", "model": "llama-3.1-8b", "context_tokens": 256}\n' > "$tmp/choice.json"
"$wikv" run --server 127.0.0.1:"$port" --policy-config "$tmp/choice.json" --task passkey --seed 3 --out 4 \
    --db "$tmp/r.db" --trace "$src/traces/lte-static-90s-seed1.txt" >"$tmp/out"
grep -q "1 ok, 0 failed" "$tmp/out"
wait "$server"
server=
n=$(sqlite3 "$tmp/r.db" "select count(*) from complete_requests where kind='exec' and status='ok' and ttft_s > 0 \
    and output_tokens = 4 and model = 'tiny-llama-tasks' and trace = 'lte-static-90s-seed1.txt'")
[ "$n" -eq 5 ]
[ "$(sqlite3 "$tmp/r.db" "select count(*) from complete_requests where policy = 'kivi4' and params like '%group=64%'")" -eq 1 ]
set +e
"$wikv" run --server 127.0.0.1:1 --policy-config "$tmp/choice.json" --policy full --task passkey 2>/dev/null
[ $? -eq 2 ] || exit 1
"$wikv" run --server 127.0.0.1:1 --policy-config "$tmp/nosuch.json" --task passkey 2>/dev/null
[ $? -eq 2 ] || exit 1
"$wikv" run --server 127.0.0.1:1 --policy full --task passkey --context 256 --backend tpu 2>/dev/null
[ $? -eq 2 ] || exit 1
set -e
# a damaged importance file: the server refuses the request and the client records why
printf '\x55' | dd of="$tmp/kv/passkey-256-3.wki" bs=1 seek=40 conv=notrunc 2>/dev/null
"$wikv" serve --port 0 --trace "$src/traces/lte-static-90s-seed1.txt" --kv-dir "$tmp/kv" --max-connections 1 --quiet \
    >"$tmp/port2" &
server=$!
for _ in $(seq 50); do [ -s "$tmp/port2" ] && break; sleep 0.1; done
port=$(sed 's/.*://' "$tmp/port2")
set +e
"$wikv" run --server 127.0.0.1:"$port" --policy wikv --task passkey --context 256 --seed 3 --db "$tmp/r.db" >"$tmp/out"
[ $? -eq 1 ] || exit 1
set -e
grep -q "FAILED: server error: .*payload CRC" "$tmp/out"
wait "$server"
server=
