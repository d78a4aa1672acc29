#!/usr/bin/env bash
# Engine benchmark on a GPU machine: the CUDA engine (bench_engine) and PyTorch/transformers with SDPA
# (tools/bench_transformers.py) on the same synthetic weights, then one table with the ratios.
# usage: bench/engine.sh BUILD_DIR [MODEL_NAME] [LOG_DIR]   (MODEL_NAME defaults to llama-3.1-8b)
set -u -o pipefail
build=${1:?usage: bench/engine.sh BUILD_DIR [MODEL_NAME] [LOG_DIR]}
name=${2:-llama-3.1-8b}
logs=${3:-.}
here=$(cd "$(dirname "$0")/.." && pwd)
export WIKV_DATA=${WIKV_DATA:-$here}
lens=${PREFILL:-4096,16384,32768}
"$build/bench_engine" --model "synthetic:$name" --prefill "$lens" --decode-ctx 4096 --decode-steps 128 | tee "$logs/bench_wikv.log"
rc1=$?
PYTHONUNBUFFERED=1 python3 "$here/tools/bench_transformers.py" --spec "$here/models/specs/$name.json" --prefill "$lens" \
    --decode-ctx 4096 --decode-steps 32 2>&1 | tee "$logs/bench_torch.log"
rc2=$?
python3 - "$logs/bench_wikv.log" "$logs/bench_torch.log" <<'PY'
import sys
def parse(path):
    d = {}
    for line in open(path):
        f = line.split()
        if len(f) >= 4 and f[0] in ("prefill", "decode"):
            d[(f[0], int(f[1]))] = float(f[3])
        elif f and f[0] == "greedy":
            d["greedy"] = f[1:]
    return d
w, t = parse(sys.argv[1]), parse(sys.argv[2])
print(f"\n{'measure':<28}{'wikv':>12}{'transformers':>14}{'speed-up':>10}")
for k in sorted(k for k in w if k != "greedy"):
    label = f"prefill {k[1]} tokens (ms)" if k[0] == "prefill" else f"decode @{k[1]} (ms/token)"
    tv = t.get(k)
    print(f"{label:<28}{w[k]:>12.2f}{(tv if tv else float('nan')):>14.2f}{(tv / w[k] if tv else float('nan')):>9.2f}x")
gw, gt = w.get("greedy"), t.get("greedy")
same = gw is not None and gw == gt
print(f"greedy tokens of the shared prompt: {'identical' if same else 'differ'} (wikv {gw}, transformers {gt})")
PY
exit $(( rc1 != 0 || rc2 != 0 ))
