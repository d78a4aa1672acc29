#!/usr/bin/env bash
# The Slurm job-array script of the README: its array tasks (run here one after the other with the
# variables Slurm sets) and its merge job give the rows of an unsharded sweep.
# usage: test_slurm_sweep.sh WIKV SOURCE_DIR
set -euo pipefail
wikv=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cat > "$tmp/grid.txt" <<EOG
traces = $src/traces/lte-static-90s-seed1.txt
policies = full, kivi2, prefill
models = llama-3.1-8b
devices = jetson-agx-orin
contexts = 2048, 4096
requests = 3
EOG
"$wikv" sweep "$tmp/grid.txt" --db "$tmp/all.db" --jobs 1 --no-progress >/dev/null
for k in 1 2 3; do
  SLURM_ARRAY_TASK_ID=$k SLURM_ARRAY_TASK_COUNT=3 SLURM_CPUS_PER_TASK=1 WIKV=$wikv \
    bash "$src/scripts/slurm-sweep.sh" shard "$tmp/grid.txt" "$tmp/out" >/dev/null
done
WIKV=$wikv bash "$src/scripts/slurm-sweep.sh" merge "$tmp/grid.txt" "$tmp/out" >/dev/null
cells() { sqlite3 "$1" "SELECT cell, ttft_s, bytes_sent FROM complete_requests ORDER BY cell"; }
[ -n "$(cells "$tmp/all.db")" ] || fail "empty reference sweep"
[ "$(cells "$tmp/all.db")" = "$(cells "$tmp/out/sweep.db")" ] || fail "array tasks + merge differ from the unsharded sweep"
set +e
WIKV=$wikv bash "$src/scripts/slurm-sweep.sh" shard "$tmp/grid.txt" "$tmp/out" >/dev/null 2>&1
[ $? -ne 0 ] || fail "shard mode outside an array task did not fail"
set -e
echo ok
