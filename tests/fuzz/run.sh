#!/usr/bin/env bash
# Builds every tests/fuzz/fuzz_*.c target with clang's libFuzzer (+ASan+UBSan) against the library
# sources and runs each for SECONDS (default 30) on its corpus tests/fuzz/corpus/<name>/.
# usage: tests/fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-30}
shift || true
out=${FUZZ_BUILD:-build-fuzz}
mkdir -p "$out"
srcs=$(ls core/*.c models/*.c net/*.c kv/*.c sim/*.c sim/policies/*.c exec/*.c exec/cpu/*.c plots/*.c 2>/dev/null || true)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do [ -e "$f" ] && targets+=("$(basename "$f" .c)"); done
fi
for t in "${targets[@]}"; do
  clang -std=c11 -D_POSIX_C_SOURCE=200809L -DWIKV_SOURCE_DIR="\"$PWD\"" -g -O1 -I. \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    "tests/fuzz/$t.c" $srcs -lsqlite3 -lm -lpthread -o "$out/$t"
  corpus="tests/fuzz/corpus/${t#fuzz_}"
  mkdir -p "$out/corpus-$t"
  echo "== $t: ${seconds}s"
  "$out/$t" -max_total_time="$seconds" -print_final_stats=1 "$out/corpus-$t" "$corpus" 2>&1 \
    | grep -E "stat::number_of_executed_units|ERROR|SUMMARY" || true
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "fuzz target $t failed" >&2; exit 1; }
done
