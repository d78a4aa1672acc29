#!/usr/bin/env bash
# Real execution with a synthetic model (`--model synthetic:tiny`: deterministic random weights of
# models/specs/tiny.json on the CPU engine, prompts from the fixture tokenizer): kvgen, a preloading
# server and four policies over loopback (encoders ahead of the link); rows name the model synthetic:tiny, carry a TTFT and a NULL
# F1 (not measured) and the grid cell given; runs carry a note; a server that pre-encodes serves the
# same bytes from its store of encoded units; an 8B spec on the CPU engine and
# an unknown spec are refused.
set -euo pipefail
wikv=$1
src=$2
tmp=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$tmp"' EXIT
trace="$src/traces/lte-static-90s-seed1.txt"
"$wikv" kvgen --task passkey --context 512 --seed 2 --n 1 --model synthetic:tiny --out "$tmp/kv" 2>/dev/null
[ -s "$tmp/kv/passkey-512-2.wkv" ] && [ -s "$tmp/kv/passkey-512-2.wki" ]
"$wikv" serve --port 0 --trace "$trace" --model synthetic:tiny --kv-dir "$tmp/kv" --kv-preload --max-connections 4 \
    --encode-threads 2 --encode-ahead 2 >"$tmp/port" 2>"$tmp/serve.log" &
server=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
port=$(sed 's/.*://' "$tmp/port")
for p in full kivi2 prefill cachegen:chunk=128; do
    "$wikv" run --server 127.0.0.1:"$port" --policy $p --task passkey --context 512 --seed 2 --out 3 \
        --model synthetic:tiny --db "$tmp/r.db" --trace "$trace" --cell ctx=512 >"$tmp/out"
    out=$(cat "$tmp/out")
    grep -q "1 ok, 0 failed, mean ttft .* f1 not measured" <<<"$out"
done
wait "$server"
server=
log=$(cat "$tmp/serve.log")
grep -q "preloaded 1 contexts" <<<"$log"
grep -q "full passkey seed 2, .* encoder: .* MB/s per thread, 2 threads" <<<"$log"
grep -q "cachegen:chunk=128 passkey seed 2, .* encoder: .* 2 threads" <<<"$log"
q() { sqlite3 "$tmp/r.db" "$1"; }
[ "$(q "select count(*) from complete_requests where kind = 'exec' and status = 'ok' and model = 'synthetic:tiny' \
    and f1 is null and ttft_s > 0 and bytes_sent > 0 and kv_fraction_at_first > 0 and output_tokens = 3")" -eq 4 ]
[ "$(q "select count(distinct policy) from complete_requests where cell = 'ctx=512'")" -eq 4 ]
[ "$(q "select count(*) from runs where note like 'synthetic weights%'")" -eq 4 ]
# full streams the fp16 KV: its bytes are the kvgen tensor's payload (2 bytes x K and V x every value)
kv_bytes=$(( $(stat -c %s "$tmp/kv/passkey-512-2.wkv") ))
full_bytes=$(q "select bytes_sent from complete_requests where policy = 'full'")
[ "$full_bytes" -gt $((kv_bytes * 9 / 10)) ] && [ "$full_bytes" -le "$kv_bytes" ]
# a server that pre-encodes kivi2's and cachegen's units serves them from its store: every unit
# reused, none encoded while streaming, and the same bytes as the server that encoded them live
"$wikv" serve --port 0 --trace "$trace" --model synthetic:tiny --kv-dir "$tmp/kv" --kv-preload --max-connections 2 \
    --pre-encode "kivi2;cachegen:chunk=128" --encode-threads 2 >"$tmp/port2" 2>"$tmp/serve2.log" &
server=$!
for _ in $(seq 100); do [ -s "$tmp/port2" ] && break; sleep 0.1; done
port=$(sed 's/.*://' "$tmp/port2")
for p in kivi2 cachegen:chunk=128; do
    "$wikv" run --server 127.0.0.1:"$port" --policy $p --task passkey --context 512 --seed 2 --out 3 \
        --model synthetic:tiny --db "$tmp/r.db" --trace "$trace" --cell pre >/dev/null
done
wait "$server"
server=
log=$(cat "$tmp/serve2.log")
grep -q "pre-encoded [1-9][0-9]* units" <<<"$log"
for p in kivi2 cachegen:chunk=128; do
    line=$(grep "connection .*: $p passkey" <<<"$log")
    planned=$(sed 's/.*seed 2, \([0-9]*\) units planned.*/\1/' <<<"$line")
    reused=$(sed 's/.* \([0-9]*\) reused).*/\1/' <<<"$line")
    [ "$reused" -gt 0 ] && [ "$reused" -le "$planned" ]
    grep -q " 0 units inline" <<<"$line"
done
[ "$(q "select count(*) from complete_requests a join complete_requests b on a.policy = b.policy \
    where a.cell = 'ctx=512' and b.cell = 'pre' and a.bytes_sent = b.bytes_sent")" -eq 2 ]
set +e
"$wikv" kvgen --task passkey --context 256 --model synthetic:llama-3.1-8b --out "$tmp/kv8" 2>"$tmp/err"
[ $? -ne 0 ] || exit 1
"$wikv" kvgen --task passkey --context 256 --model synthetic:nosuch --out "$tmp/kv9" 2>>"$tmp/err"
[ $? -ne 0 ] || exit 1
# pre-encoding needs preloaded contexts; an unknown policy in its list is named
"$wikv" serve --port 0 --trace "$trace" --model synthetic:tiny --pre-encode kivi2 2>>"$tmp/err"
[ $? -eq 2 ] || exit 1
"$wikv" serve --port 0 --trace "$trace" --model synthetic:tiny --kv-dir "$tmp/kv" --kv-preload \
    --pre-encode "nosuch;kivi2" >/dev/null 2>>"$tmp/err"
[ $? -ne 0 ] || exit 1
set -e
err=$(cat "$tmp/err")
grep -q "beyond the CPU engine's limit" <<<"$err"
grep -q 'unknown model "nosuch"' <<<"$err"
grep -q "pre-encode encodes the preloaded contexts: it needs --kv-dir and --kv-preload" <<<"$err"
grep -q -- '--pre-encode nosuch: unknown policy "nosuch"' <<<"$err"
