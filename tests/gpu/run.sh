#!/usr/bin/env bash
# Runs the GPU tests (tests/gpu/*.c, built by `cmake --build BUILD --target gpu_tests`) on a machine
# with a GPU. usage: tests/gpu/run.sh BUILD_DIR. Exit status non-zero when any test fails.
set -u
build=${1:?usage: tests/gpu/run.sh BUILD_DIR}
here=$(cd "$(dirname "$0")/../.." && pwd)
export WIKV_DATA=${WIKV_DATA:-$here}
fail=0
for src in "$here"/tests/gpu/*.c; do
    t=$(basename "$src" .c)
    echo "== $t"
    "$build/$t" || fail=1
done
[ $fail = 0 ] && echo "gpu tests: PASS" || echo "gpu tests: FAIL"
exit $fail
