#!/usr/bin/env bash
# Fans a `wikv sweep` out over a cluster as a Slurm job array: task k of n runs shard k/n of the grid
# on all cores of its node into its own database; a last job, started when every task succeeded,
# merges the parts. A task that was killed (preemption, time limit) is resumed by resubmitting it:
# the sweep finds its own run in its part database and runs only the missing cells.
#
#   scripts/slurm-sweep.sh submit GRID OUTDIR [SHARDS] [extra sbatch options...]
#       submits the array (default 16 shards) and the merge job; OUTDIR must be on a shared file system
#   scripts/slurm-sweep.sh shard GRID OUTDIR      (what each array task runs; reads SLURM_ARRAY_TASK_ID
#       and SLURM_ARRAY_TASK_COUNT, SLURM_CPUS_PER_TASK)
#   scripts/slurm-sweep.sh merge GRID OUTDIR      (joins OUTDIR/part-*.db into OUTDIR/sweep.db)
#
# WIKV (default: wikv on PATH, else ./build/wikv) names the binary.
set -euo pipefail

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 3 ] || usage
mode=$1 grid=$2 out=$3
shift 3
wikv=${WIKV:-$(command -v wikv || echo "$(cd "$(dirname "$0")/.." && pwd)/build/wikv")}
[ -x "$wikv" ] || { echo "slurm-sweep: no wikv binary at $wikv (set WIKV)" >&2; exit 2; }
[ -r "$grid" ] || { echo "slurm-sweep: cannot read grid $grid" >&2; exit 2; }

case "$mode" in
submit)
    shards=${1:-16}
    [ $# -gt 0 ] && shift
    mkdir -p "$out"
    grid=$(cd "$(dirname "$grid")" && pwd)/$(basename "$grid")
    out=$(cd "$out" && pwd)
    array=$(sbatch --parsable --job-name=wikv-sweep --array="1-$shards" --cpus-per-task="${CPUS:-16}" \
        --output="$out/shard-%a.log" --export=ALL,WIKV="$wikv" "$@" "$0" shard "$grid" "$out")
    merge=$(sbatch --parsable --job-name=wikv-merge --dependency="afterok:${array%%;*}" \
        --output="$out/merge.log" --export=ALL,WIKV="$wikv" "$@" "$0" merge "$grid" "$out")
    echo "array job $array ($shards shards), merge job $merge; results in $out/sweep.db"
    ;;
shard)
    k=${SLURM_ARRAY_TASK_ID:?not inside a Slurm array task}
    n=${SLURM_ARRAY_TASK_COUNT:?not inside a Slurm array task}
    mkdir -p "$out"
    exec "$wikv" sweep "$grid" --db "$out/part-$k.db" --shard "$k/$n" --jobs "${SLURM_CPUS_PER_TASK:-$(nproc)}" \
        --no-progress
    ;;
merge)
    shopt -s nullglob
    parts=("$out"/part-*.db)
    [ ${#parts[@]} -gt 0 ] || { echo "slurm-sweep: no parts in $out" >&2; exit 1; }
    rm -f "$out/sweep.db"
    "$wikv" db merge "$out/sweep.db" "${parts[@]}"
    "$wikv" db summary "$out/sweep.db"
    ;;
*) usage ;;
esac
