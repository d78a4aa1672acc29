#!/bin/bash
# The real-execution timing table of issue 5: TTFT per policy with synthetic Llama-3.1-8B weights
# (real GPU compute, meaningless answers) at 8K and 32K contexts on constant 1 Gbit/s and 100 Mbit/s
# links: `wikv kvgen` (GPU prefill, KV + attention files), one `wikv serve` per rate (preloaded KV,
# encoding ahead of the link), `wikv run` clients (PARALLEL processes at once, each its own link),
# one SQLite database, and a table context x rate x policy -> median TTFT, bytes, KV fraction.
#
# usage: scripts/exec_synthetic.sh [WORK_DIR]      (default /tmp/wikv-synth; reused: KV files,
#        confidence files and finished cells stay, so a grid can be run in several calls)
# Environment:
#   WIKV       binary (default ./build/wikv)        BACKEND   cuda|cpu (default cuda)
#   MODEL      default synthetic:llama-3.1-8b       TASK      task of the prompts (default passkey)
#   CONTEXTS   prompt tokens (default "8192 32768") RATES     Mbit/s (default "1000 100")
#   POLICIES   default "prefill full kivi2 kivi4 cachegen wikv"
#   N          requests per cell, seeds 1..N (default 3)
#   PARALLEL   client processes at once (default: what fits the GPU's memory, see below)
#   SERIAL     policies run alone after the others, compute-bound TTFTs (default "prefill")
#   OUT_TOKENS tokens generated per request (default 8)
#   ENCODE_THREADS  encoder threads per request on the server (default 8: KIVI, CacheGen and WiKV's
#              coder encode 12-31 MB/s of payload per thread on the H100 machine, the link at 1 Gbit/s
#              takes 125 MB/s; the server log says how long the sender waited for them)
#   DECODE_S_PER_GB  seconds of client-side decoding per GB of fp16 KV, for the estimate only: with
#              BACKEND=cuda the client decodes on the GPU (exec/kv_sink.h), faster than the link, default
#              none; with cpu the CPU decoders, as measured on the H100 machine before the GPU decoders
#              (8K, 8B): "kivi2=8.5 kivi4=8.7 cachegen=18.7 wikv=39.4"
#   SCALE      task context per prompt token (default 1.215: tasks size contexts at 4 characters per
#              token, the fixture tokenizer makes 3.3; 9953 asks for a prompt of ~8192 tokens)
#   PRE_ENCODE  policies whose units every server encodes (all levels) before listening, as a server
#              that stores its KV encoded ahead of time (`wikv serve --pre-encode`; default: the POLICIES
#              among kivi2 kivi4 cachegen wikv): no request then waits for an encoder, whatever its rate;
#              only servers of PRE_ENCODE_MIN_MBPS or more (default 500: at 100 Mbit/s the encoders,
#              8 threads, keep ahead of the link live; the encoder table below shows the wait)
#   SKIP       cells left out, "CONTEXT:RATE:POLICY ..." (e.g. "32768:100:full": 4.3 GB at 12.5 MB/s is
#              344 s of link time alone); the table lists them as not run
#   DRY_RUN=1  print the plan and the estimate, run nothing
#   TABLE_ONLY=1  print the table of WORK_DIR/results.db and stop
# Traces: pensieve format (`seconds Mbit/s` per line, each rate held until the next line; the trace
# loops), two lines "0 R" and "3600 R": a constant R Mbit/s link, WORK_DIR/const-RMbps.txt.
# wikv's confidence boundary is fitted on the synthetic model itself (`wikv run --fit-confidence`:
# 8 training-seed items at the context, full-KV greedy steps, k = 3 std), once per context.
# GPU memory per client process: fp16 weights (16.1 GB for Llama-3.1-8B) + KV cache (131072 bytes
# per token: 1.07 GB at 8K, 4.3 GB at 32K) + for CacheGen and wikv the GPU decoders' side tensor of the
# same size (exec/kv_sink.h) + ~1.5 GB CUDA context and workspace: 19.8 GB at 8K, 26.2 GB at 32K at
# worst; the server holds no GPU memory (it streams kvgen files). PARALLEL defaults to
# (GPU memory - 2 GB) / that.
set -euo pipefail
W=${WIKV:-./build/wikv}
B=${BACKEND:-cuda}
MODEL=${MODEL:-synthetic:llama-3.1-8b}
TASK=${TASK:-passkey}
CONTEXTS=${CONTEXTS:-8192 32768}
RATES=${RATES:-1000 100}
POLICIES=${POLICIES:-prefill full kivi2 kivi4 cachegen wikv}
N=${N:-3}
SERIAL=${SERIAL:-prefill}
OUT_TOKENS=${OUT_TOKENS:-8}
SCALE=${SCALE:-1.215}
ENCODE_THREADS=${ENCODE_THREADS:-8}
SKIP=${SKIP:-}
PRE_ENCODE_MIN_MBPS=${PRE_ENCODE_MIN_MBPS:-500}
PRE_ENCODE=${PRE_ENCODE-$(for p in $POLICIES; do case $p in kivi2|kivi4|cachegen|wikv) printf '%s ' "$p";; esac; done)}
cpu_decode="kivi2=8.5 kivi4=8.7 cachegen=18.7 wikv=39.4"
DECODE_S_PER_GB=${DECODE_S_PER_GB-$([ "$B" = cuda ] || echo "$cpu_decode")}
D=${1:-/tmp/wikv-synth}
DB=$D/results.db
mkdir -p "$D/parts" "$D/logs"
export WIKV_DATA=${WIKV_DATA:-$(cd "$(dirname "$0")/.." && pwd)}

table() {
  # context x rate x policy -> median TTFT over the seeds, bytes and KV fraction at the first token
  if command -v python3 >/dev/null; then
    python3 - "$DB" <<'EOF'
import sqlite3, statistics, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("""select cell, trace_mean_mbps, policy, ttft_s, bytes_sent, kv_fraction_at_first, context_tokens,
                      status, tpot_s from complete_requests where kind = 'exec' and model like 'synthetic:%'""").fetchall()
cells = {}
for cell, mbps, pol, ttft, nbytes, kvf, ctx, status, tpot in rows:
    c = cells.setdefault((int(cell.split('=')[1]) if cell and '=' in cell else 0, round(mbps or 0), pol), [])
    c.append((status, ttft, nbytes, kvf, ctx, tpot))
order = {p: i for i, p in enumerate("prefill full kivi2 kivi4 cachegen wikv".split())}
print("%-8s %6s %-9s %3s %6s %10s %10s %9s %7s %9s" % ("context", "Mbit/s", "policy", "n", "failed", "prompt_tok",
      "ttft_p50_s", "MB@1st", "kv@1st", "tpot_ms"))
for (ctx, mbps, pol) in sorted(cells, key=lambda k: (k[0], -k[1], order.get(k[2], 99), k[2])):
    ok = [r for r in cells[(ctx, mbps, pol)] if r[0] == 'ok']
    failed = len(cells[(ctx, mbps, pol)]) - len(ok)
    med = lambda i: statistics.median(r[i] for r in ok) if ok else float('nan')
    print("%-8d %6d %-9s %3d %6d %10.0f %10.3f %9.1f %7.2f %9.2f" % (ctx, mbps, pol, len(ok), failed, med(4), med(1),
          med(2) / 1e6, med(3), med(5) * 1e3))
EOF
  else
    "$W" db summary "$DB"
  fi
  if [ -n "$SKIP" ]; then echo "not run (SKIP): $SKIP"; fi
}
if [ "${TABLE_ONLY:-0}" = 1 ]; then table; exit 0; fi

# one trace per rate
for r in $RATES; do printf '0 %s\n3600 %s\n' "$r" "$r" > "$D/const-${r}Mbps.txt"; done
task_ctx() { awk -v c="$1" -v s="$SCALE" 'BEGIN { printf "%d", c * s + 0.5 }'; }

# GPU memory per client and how many fit
gpu_gb=80
if command -v nvidia-smi >/dev/null; then
  gpu_gb=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1 | awk '{ printf "%d", $1 / 1024 }')
fi
max_ctx=0; for c in $CONTEXTS; do [ "$c" -gt "$max_ctx" ] && max_ctx=$c; done
client_gb=$(awk -v c="$max_ctx" 'BEGIN { printf "%.1f", 16.1 + 2 * (c + 64) * 131072 / 1e9 + 1.5 }')
fit=$(awk -v g="$gpu_gb" -v c="$client_gb" 'BEGIN { n = int((g - 2) / c); print n < 1 ? 1 : n }')
PARALLEL=${PARALLEL:-$fit}
echo "GPU ${gpu_gb} GB; per client process ~${client_gb} GB at ${max_ctx} tokens (16.1 GB weights + 2 x KV + 1.5 GB);" \
     "PARALLEL=$PARALLEL (fits: $fit)"
[ "$PARALLEL" -gt "$fit" ] && echo "warning: PARALLEL=$PARALLEL is more than fits the GPU's memory ($fit)"

# the jobs still to run: one per (context, rate, policy, seed), with the simulator's TTFT as its estimate
sim_csv=$D/estimate.txt
traces=""; for r in $RATES; do traces="$traces --trace $D/const-${r}Mbps.txt"; done
"$W" sim $traces --policy "$(echo $POLICIES | tr ' ' ',')" --model "${MODEL#synthetic:}" \
    --context "$(echo $CONTEXTS | tr ' ' ',')" --requests 1 --device rtx5080-laptop --db "$D/estimate.db" \
    --no-progress > "$sim_csv" 2>/dev/null || true
est_of() { # policy rate context -> seconds: the simulated TTFT or the client's decoding, whichever is
  # longer (measured: TTFT ~ max(link, decode) when the decoders run on the CPU), + 6 s of process start
  awk -v p="$1" -v t="const-$2Mbps.txt" -v c="$3" -v dec="$DECODE_S_PER_GB" '$1 == p && $2 == t && $5 == c { s = $6 }
       END { d = 0; n = split(dec, kv, " ")
             for (i = 1; i <= n; i++) { split(kv[i], f, "="); if (f[1] == p) d = f[2] * c * 131072 / 1e9 }
             if (s == "") s = 60
             printf "%.0f", (d > s ? d : s) + 6 }' "$sim_csv"
}
jobs_file=$D/jobs.txt
: > "$jobs_file"
for c in $CONTEXTS; do
  for r in $RATES; do
    for p in $POLICIES; do
      for s in $(seq 1 "$N"); do
        part=$D/parts/$c-$r-$p-$s.db
        [ -s "$part" ] && continue # done in an earlier call
        [[ " $SKIP " == *" $c:$r:$p "* ]] && continue
        echo "$(est_of "$p" "$r" "$c") $c $r $p $s" >> "$jobs_file"
      done
    done
  done
done
# estimate: per context, kvgen (GPU prefill + writing KV: ~3 s + 1 s per GB) and the confidence fit;
# then the jobs, longest first over PARALLEL slots, the SERIAL ones one at a time after them
estimate=$(awk -v par="$PARALLEL" -v serial=" $SERIAL " -v n="$N" -v ctxs="$CONTEXTS" '
  { if (index(serial, " " $4 " ")) ser += $1; else { k[$2]++; e[$2, k[$2]] = $1 } }
  END {
    m = split(ctxs, cs, " "); pre = 0; mk = 0
    for (i = 1; i <= m; i++) {
      c = cs[i]
      if (!(c in k)) continue
      pre += n * (3 + c * 131072 / 1e9) + 20 + 8 * c / 16384
      # contexts run one after the other: each is its own pool of PARALLEL slots, longest job first
      for (a = 1; a <= k[c]; a++) for (b = a + 1; b <= k[c]; b++) if (e[c, b] > e[c, a]) { t = e[c, a]; e[c, a] = e[c, b]; e[c, b] = t }
      for (s = 1; s <= par; s++) slot[s] = 0
      for (a = 1; a <= k[c]; a++) { b = 1; for (s = 2; s <= par; s++) if (slot[s] < slot[b]) b = s; slot[b] += e[c, a] }
      big = 0; for (s = 1; s <= par; s++) if (slot[s] > big) big = slot[s]
      mk += big
    }
    printf "%d %d %d %d", pre + mk + ser, pre, mk, ser }' "$jobs_file")
read -r est_total est_pre est_par est_ser <<< "$estimate"
echo "plan: $(wc -l < "$jobs_file") requests to run (contexts: $CONTEXTS; rates: $RATES Mbit/s; policies: $POLICIES;" \
     "N=$N); estimated duration ${est_total} s = kvgen/fit ${est_pre} s + parallel ${est_par} s + serial ${est_ser} s" \
     "(per request: the simulator's TTFT (rtx5080-laptop profile) or DECODE_S_PER_GB, + 6 s)"
[ "${DRY_RUN:-0}" = 1 ] && exit 0

servers=""
trap 'for p in $servers; do kill "$p" 2>/dev/null || true; done' EXIT
run_job() { # context rate policy seed port
  local c=$1 r=$2 p=$3 s=$4 port=$5 tc extra=""
  tc=$(task_ctx "$c")
  [ "$p" = wikv ] && extra="--confidence $D/conf-$c.txt"
  if "$W" run --server 127.0.0.1:"$port" --policy "$p" --task "$TASK" --context "$tc" --seed "$s" --n 1 \
       --out "$OUT_TOKENS" --model "$MODEL" --backend "$B" --db "$D/parts/tmp-$c-$r-$p-$s.db" --cell "ctx=$c" \
       --trace "$D/const-${r}Mbps.txt" --timeout 120 $extra > "$D/logs/run-$c-$r-$p-$s.txt" 2>&1; then
    mv "$D/parts/tmp-$c-$r-$p-$s.db" "$D/parts/$c-$r-$p-$s.db"
  else
    echo "  $c $r $p seed $s: failed: $(tail -1 "$D/logs/run-$c-$r-$p-$s.txt")"
    # a recorded failure (status failed, with its reason) is a result too; a crash is not
    if [ -s "$D/parts/tmp-$c-$r-$p-$s.db" ]; then mv "$D/parts/tmp-$c-$r-$p-$s.db" "$D/parts/$c-$r-$p-$s.db"; fi
  fi
  echo "  $(date +%T) $c tokens, $r Mbit/s, $p, seed $s: $(grep -ho 'ttft [0-9.]* s' "$D/logs/run-$c-$r-$p-$s.txt" | head -1)"
}
export -f run_job task_ctx
export W B MODEL TASK OUT_TOKENS SCALE D

t_start=$(date +%s)
for c in $CONTEXTS; do
  grep -q " $c " "$jobs_file" || continue
  tc=$(task_ctx "$c")
  kv=$D/kv-$c
  need=0
  for s in $(seq 1 "$N"); do [ -s "$kv/$TASK-$tc-$s.wkv" ] && [ -s "$kv/$TASK-$tc-$s.wki" ] || need=1; done
  if [ $need = 1 ]; then
    echo "kvgen: $N contexts of ~$c tokens ($TASK, task context $tc) with $MODEL on $B"
    "$W" kvgen --task "$TASK" --context "$tc" --seed 1 --n "$N" --model "$MODEL" --backend "$B" --out "$kv"
  fi
  declare -A port=()
  for r in $RATES; do rm -f "$D/logs/port-$c-$r.txt"; done # a stale port line from an earlier call is not this server's
  for r in $RATES; do
    "$W" serve --port 0 --trace "$D/const-${r}Mbps.txt" --model "$MODEL" --kv-dir "$kv" --kv-preload \
        --kv-cache "$N" --encode-threads "$ENCODE_THREADS" --unit-store 65536 \
        $([ -n "$PRE_ENCODE" ] && [ "$r" -ge "$PRE_ENCODE_MIN_MBPS" ] && echo --pre-encode "$(echo $PRE_ENCODE | tr ' ' ';')") \
        > "$D/logs/port-$c-$r.txt" 2> "$D/logs/serve-$c-$r.log" &
    servers="$servers $!"
  done
  for r in $RATES; do
    for _ in $(seq 1200); do [ -s "$D/logs/port-$c-$r.txt" ] && break; sleep 0.5; done
    port[$r]=$(sed 's/.*://' "$D/logs/port-$c-$r.txt")
    [ -n "${port[$r]}" ] || { echo "server for $r Mbit/s did not start:"; cat "$D/logs/serve-$c-$r.log"; exit 1; }
  done
  first_rate=${RATES%% *}
  if [[ " $POLICIES " == *" wikv "* ]] && [ ! -s "$D/conf-$c.txt" ]; then
    echo "fitting wikv's confidence boundary at $c tokens (one prefill request, rows in $D/fit.db)"
    "$W" run --server 127.0.0.1:"${port[$first_rate]}" --policy prefill --task "$TASK" --context "$tc" --n 1 \
        --out "$OUT_TOKENS" --model "$MODEL" --backend "$B" --db "$D/fit.db" --confidence "$D/conf-$c.txt" \
        --fit-confidence --timeout 120 | tail -1
  fi
  # parallel phase (longest first), then the serial policies one at a time
  sort -rn "$jobs_file" | awk -v c="$c" -v serial=" $SERIAL " '$2 == c && !index(serial, " " $4 " ")' |
    while read -r _ cc r p s; do echo "$cc $r $p $s ${port[$r]}"; done |
    xargs -P "$PARALLEL" -L 1 bash -c 'run_job "$@"' _
  sort -rn "$jobs_file" | awk -v c="$c" -v serial=" $SERIAL " '$2 == c && index(serial, " " $4 " ")' |
    while read -r _ cc r p s; do run_job "$cc" "$r" "$p" "$s" "${port[$r]}"; done
  for p in $servers; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  servers=""
  unset port
done
echo "ran for $(( $(date +%s) - t_start )) s (estimated ${est_total} s)"
grep -h "pre-encoded" "$D"/logs/serve-*.log 2>/dev/null | sed 's/^/  /' || true

rm -f "$DB" "$DB"-wal "$DB"-shm
parts=$(ls "$D"/parts/[0-9]*.db 2>/dev/null || true)
[ -n "$parts" ] && "$W" db merge "$DB" $parts > /dev/null
echo "== server encoders, mean per request: MB of payload per second of one encoding thread, link seconds of"
echo "   the stream, seconds the sender waited for the encoder (near 0 when the link paces)"
for f in "$D"/logs/serve-*.log; do
  [ -e "$f" ] || continue
  cr=${f##*/serve-}; cr=${cr%.log} # CONTEXT-RATE
  sed -n 's/.*connection [0-9]*: \([a-z0-9]*\)[^ ]* [a-z]* seed \([0-9]*\),.* bytes sent in \([0-9.]*\) s; encoder: \([0-9.]*\) MB in [0-9.]* s (\([0-9.]*\) MB\/s per thread.*waited \([0-9.]*\) s.*/\1 \3 \4 \5 \6/p' "$f" |
    sed "s/^/${cr%-*} ${cr#*-} /"
done | awk '{ k = sprintf("%-8s %6s %-9s", $1, $2, $3); n[k]++; link[k] += $4; mb[k] += $5; rate[k] += $6; wait[k] += $7 }
       END { printf "%-8s %6s %-9s %4s %9s %12s %9s %11s\n", "context", "Mbit/s", "policy", "reqs", "MB/req", "MB/s/thread",
                    "stream_s", "waited_s"
             for (k in n) printf "%s %4d %9.1f %12.1f %9.2f %11.2f\n", k, n[k], mb[k] / n[k], rate[k] / n[k], link[k] / n[k],
                                 wait[k] / n[k] }' | sort -k1,1n -k2,2nr
echo "== $DB"
table
