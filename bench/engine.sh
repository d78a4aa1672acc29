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
    d, tops = {}, []
    for line in open(path):
        f = line.split()
        if len(f) >= 4 and f[0] in ("prefill", "decode"):
            d[(f[0], int(f[1]))] = float(f[3])
        elif f and f[0] == "greedy":
            d["greedy"] = f[1:]
        elif f and f[0] == "top3":
            tops.append([(int(x.split(":")[0]), float(x.split(":")[1])) for x in f[1:]])
    return d, tops
(w, tw), (t, tt) = parse(sys.argv[1]), parse(sys.argv[2])
print(f"\n{'measure':<28}{'wikv':>12}{'transformers':>14}{'speed-up':>10}")
for k in sorted(k for k in w if k != "greedy"):
    label = f"prefill {k[1]} tokens (ms)" if k[0] == "prefill" else f"decode @{k[1]} (ms/token)"
    tv = t.get(k)
    print(f"{label:<28}{w[k]:>12.2f}{(tv if tv else float('nan')):>14.2f}{(tv / w[k] if tv else float('nan')):>9.2f}x")
gw, gt = w.get("greedy") or [], t.get("greedy") or []
same = 0
while same < min(len(gw), len(gt)) and gw[same] == gt[same]:
    same += 1
print(f"greedy continuation of the shared prompt: {same} of {len(gw)} tokens identical")
if same < len(gw) and same < len(tw) and same < len(tt):
    mw, mt = tw[same][0][1] - tw[same][1][1], tt[same][0][1] - tt[same][1][1]
    print(f"  step {same}: wikv top {tw[same][:2]} (margin {mw:.4f}), transformers top {tt[same][:2]} (margin {mt:.4f})")
    print("  (a margin below ~0.01 is a tie at fp16 precision; transformers' logits are fp16)")
PY
exit $(( rc1 != 0 || rc2 != 0 ))
