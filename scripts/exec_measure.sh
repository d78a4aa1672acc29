#!/bin/bash
# The real-execution measurement: F1 and TTFT per policy on three bundled traces with the fixture model
# on the CPU engine. usage: scripts/exec_measure.sh [OUT_DIR]   (results in OUT_DIR/results.db)
set -e
cd "$(dirname "$0")/.."
W=./build/wikv; D=${1:-/tmp/wikv-exec}; CTX=1024; N=3
mkdir -p "$D"
rm -f $D/results.db*
for t in passkey multikey; do $W kvgen --task $t --context $CTX --seed 1 --n $N --out $D/kv 2>/dev/null; done
for tr in traces/lte-driving-120s-seed1.txt traces/lte-static-90s-seed1.txt traces/wifi-static-90s-seed1.txt; do
  $W serve --port 0 --trace $tr --kv-dir $D/kv --quiet > $D/port.txt &
  SP=$!; sleep 0.5; PORT=$(sed 's/.*://' $D/port.txt)
  for t in passkey multikey; do
    for p in prefill full kivi2 kivi4 cachegen:chunk=256 h2o:budget=256 wikv:batch=512; do
      extra=""; [[ $p == wikv* ]] && extra="--confidence $D/conf-$t.txt" && [ ! -f $D/conf-$t.txt ] && extra="$extra --fit-confidence"
      $W run --server 127.0.0.1:$PORT --policy $p --task $t --context $CTX --n $N --db $D/results.db --trace $tr $extra | tail -1
    done
  done
  kill $SP
done
