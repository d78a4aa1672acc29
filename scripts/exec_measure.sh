#!/bin/bash
# The real-execution measurement: F1 and TTFT per policy on three bundled traces with the fixture model.
# usage: scripts/exec_measure.sh [OUT_DIR]   (results in OUT_DIR/results.db)
# Environment: WIKV (binary, default ./build/wikv), BACKEND (cpu|cuda, default cpu), CTX (context tokens,
# default 2048), N (requests per cell, default 3), TASKS (default "passkey topic").
set -e
cd "$(dirname "$0")/.."
W=${WIKV:-./build/wikv}; D=${1:-/tmp/wikv-exec}; CTX=${CTX:-2048}; N=${N:-3}; B=${BACKEND:-cpu}
TASKS=${TASKS:-passkey topic}
mkdir -p "$D"
rm -f $D/results.db*
for t in $TASKS; do $W kvgen --task $t --context $CTX --seed 1 --n $N --out $D/kv 2>/dev/null; done
for tr in traces/lte-driving-120s-seed1.txt traces/lte-static-90s-seed1.txt traces/wifi-static-90s-seed1.txt; do
  $W serve --port 0 --trace $tr --kv-dir $D/kv --quiet > $D/port.txt &
  SP=$!
  for _ in $(seq 50); do [ -s $D/port.txt ] && break; sleep 0.1; done
  PORT=$(sed 's/.*://' $D/port.txt)
  for t in $TASKS; do
    for p in prefill full kivi2 kivi4 cachegen:chunk=256 h2o:budget=256 wikv:batch=512 hybrid:chunk=512; do
      extra=""; [[ $p == wikv* || $p == hybrid* ]] && extra="--confidence $D/conf-$t.txt" && [ ! -f $D/conf-$t.txt ] && extra="$extra --fit-confidence"
      $W run --server 127.0.0.1:$PORT --policy $p --task $t --context $CTX --n $N --db $D/results.db --trace $tr \
          --backend $B $extra | tail -1
    done
  done
  kill $SP
  rm -f $D/port.txt
done
