#!/usr/bin/env bash
# One study end to end (README "Walk-through"): choose a policy in the simulator on the bundled traces,
# check the choice on the public traces, then run exactly that configuration for real (exec) on a
# held-out trace and compare with the simulator's prediction for the same requests.
# usage: bash docs/walkthrough.sh [OUT_DIR]
# Environment: WIKV (default ./build/wikv), BACKEND (cpu|cuda, default cpu), DEVICE (the profile of the
# machine that runs exec, default h100-sxm-measured), QUALITY (table, default the measured fixture
# table when present), CTX (default 2048), N (exec requests, default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
W=${WIKV:-./build/wikv}; D=${1:-results/walkthrough}; B=${BACKEND:-cpu}; DEV=${DEVICE:-h100-sxm-measured}
CTX=${CTX:-2048}; N=${N:-3}; M=models/fixtures/tiny-llama-tasks
Q=${QUALITY:-models/quality/measured-fixture.tsv}
qarg=(); [ -f "$Q" ] && qarg=(--quality "$Q")
mkdir -p "$D"
rm -f "$D"/*.db "$D"/*.db-*

echo "## 1. choose on the bundled traces (every third held out)"
"$W" choose --traces traces --holdout 0.34 --model "$M" --device "$DEV" --context "$CTX" --quality-min 0.9 \
    --requests 5 "${qarg[@]}" -o "$D/choice.json" --db "$D/choose.db" --no-progress | sed -n '/^evaluated/,/^held-out TTFT/p'
heldout=$(grep -o '"holdout": \["[^"]*"' "$D/choice.json" | head -1 | sed 's/.*\["//; s/"$//')

echo "## 2. the choice on the public traces (simulated)"
if [ -d ../shared/traces-public ]; then
  "$W" sim --policy-config "$D/choice.json" --trace ../shared/traces-public --requests 5 --db "$D/public.db" \
      --no-progress --quality-target 0 "${qarg[@]}" | grep -v "^run .* written"
else
  echo "(../shared/traces-public is absent: skipped)"
fi

echo "## 3. the same configuration in exec ($B backend) on the held-out trace $heldout"
"$W" kvgen --task passkey --context "$CTX" --seed 1 --n "$N" --out "$D/kv" 2>/dev/null
"$W" serve --port 0 --trace "$heldout" --kv-dir "$D/kv" --max-connections "$N" --quiet > "$D/port.txt" &
server=$!
for _ in $(seq 50); do [ -s "$D/port.txt" ] && break; sleep 0.1; done
conf=()
grep -q '"policy": "\(wikv\|hybrid\)' "$D/choice.json" && conf=(--confidence "$D/conf.txt" --fit-confidence)
"$W" run --server 127.0.0.1:"$(sed 's/.*://' "$D/port.txt")" --policy-config "$D/choice.json" --task passkey \
    --n "$N" --backend "$B" --trace "$heldout" --db "$D/exec.db" "${conf[@]}" 2>&1 | tail -1
wait "$server"
echo "## 4. the simulator's prediction for those requests (each starts at the trace's beginning, as exec's do)"
"$W" sim --policy-config "$D/choice.json" --trace "$heldout" --requests 1 --db "$D/sim.db" --no-progress \
    --quality-target 0 "${qarg[@]}" | head -3
