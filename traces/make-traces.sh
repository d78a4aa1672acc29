#!/usr/bin/env bash
# Regenerates the bundled synthetic traces. usage: traces/make-traces.sh WIKV [OUTDIR]
# (OUTDIR defaults to this folder; tests/test_traces.sh regenerates into a temporary folder and
# compares byte for byte.) Keep this list in step with traces/README.md.
set -euo pipefail
wikv=${1:?usage: make-traces.sh WIKV [OUTDIR]}
out=${2:-$(dirname "$0")}
mkdir -p "$out"
gen() { "$wikv" trace gen "$@"; }
gen --model wifi-static     --seconds 90  --seed 1 --format pensieve -o "$out/wifi-static-90s-seed1.txt"
gen --model wifi-walk       --seconds 120 --seed 1 --format csv      -o "$out/wifi-walk-120s-seed1.csv"
gen --model lte-static      --seconds 90  --seed 1 --format pensieve -o "$out/lte-static-90s-seed1.txt"
gen --model lte-driving     --seconds 120 --seed 1 --format pensieve -o "$out/lte-driving-120s-seed1.txt"
gen --model mmwave-blockage --seconds 60  --seed 1 --format csv      -o "$out/mmwave-blockage-60s-seed1.csv"
