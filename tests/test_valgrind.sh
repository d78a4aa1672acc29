#!/usr/bin/env bash
# valgrind memcheck on a small simulation and on one CPU exec run (kvgen, serve, run over loopback with
# the fixture model): no invalid access, no leak (definite or indirect).
# usage: test_valgrind.sh WIKV SOURCE_DIR   (skipped with a message when valgrind is absent)
set -uo pipefail
wikv=$1
src=$2
if ! command -v valgrind >/dev/null; then echo "SKIP: valgrind not installed"; exit 0; fi
tmp=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$tmp"' EXIT
vg() {
  valgrind --quiet --error-exitcode=9 --suppressions="$src/tests/valgrind.supp" --leak-check=full \
    --errors-for-leak-kinds=definite,indirect "$@"
}
# check NAME STATUS ERRFILE: fails with valgrind's report unless STATUS is 0
check() {
  if [ "$2" -ne 0 ]; then
    echo "FAIL: $1: exit $2"
    tail -30 "$3"
    exit 1
  fi
}
vg "$wikv" sim --trace "$src/traces/lte-static-90s-seed1.txt" --policy prefill,full,kivi2,cachegen,hybrid \
  --context 1024 --requests 2 --db "$tmp/v.db" --no-progress >"$tmp/out" 2>"$tmp/err"
check sim $? "$tmp/err"
echo "test_valgrind: memcheck clean on a 5-policy simulation"

# exec: kvgen (prefill + attention importance), then a server and a client, each under memcheck,
# for full KV (fp16 units) and wikv (semantic batches, paced decoding): one request each, tiny context
vg "$wikv" kvgen --task passkey --context 256 --seed 3 --n 1 --out "$tmp/kv" >"$tmp/out" 2>"$tmp/kvgen.err"
check kvgen $? "$tmp/kvgen.err"
vg "$wikv" serve --port 0 --trace "$src/traces/lte-static-90s-seed1.txt" --kv-dir "$tmp/kv" --max-connections 2 \
  --quiet >"$tmp/port" 2>"$tmp/serve.err" &
server=$!
# under memcheck, and beside the other tests, loading the model and the KV takes a while
for _ in $(seq 1200); do
  [ -s "$tmp/port" ] && break
  kill -0 "$server" 2>/dev/null || { echo "FAIL: serve exited before listening"; tail -30 "$tmp/serve.err"; exit 1; }
  sleep 0.1
done
[ -s "$tmp/port" ] || { echo "FAIL: serve not listening after 120 s"; tail -30 "$tmp/serve.err"; exit 1; }
port=$(sed 's/.*://' "$tmp/port")
for p in full wikv:batch=256; do
  vg "$wikv" run --server 127.0.0.1:"$port" --policy $p --task passkey --context 256 --seed 3 --out 2 \
    --db "$tmp/e.db" --timeout 60 >"$tmp/out" 2>"$tmp/run.err"
  check "run $p" $? "$tmp/run.err"
  out=$(cat "$tmp/out")
  grep -q "1 ok, 0 failed" <<<"$out" || { echo "FAIL: run $p: $out"; exit 1; }
done
wait "$server"
status=$?
server=
check serve $status "$tmp/serve.err"
echo "test_valgrind: memcheck clean on kvgen, serve and run (full, wikv) of the CPU exec path"
