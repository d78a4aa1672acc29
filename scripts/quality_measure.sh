#!/bin/bash
# Remakes models/quality/measured-fixture.tsv: the measured quality table of the fixture model on the CPU
# engine (exec/quality_measure.h). usage: scripts/quality_measure.sh [WIKV_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-./build/wikv}
"$W" quality measure --model models/fixtures/tiny-llama-tasks --tasks passkey,topic --context 2048 --n 12 \
    --out-tokens 12 --out models/quality/measured-fixture.tsv
