#!/usr/bin/env bash
# Builds every tests/fuzz/fuzz_*.c target with clang's libFuzzer (+ASan+UBSan) against the library
# (compiled once) and runs each for SECONDS (default 30) on a copy of its corpus tests/fuzz/corpus/<name>/.
# Prints executions per target; exits non-zero if any target finds a crash.
# usage: tests/fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-30}
shift || true
out=${FUZZ_BUILD:-build-fuzz}
mkdir -p "$out/obj"
flags=(-std=c11 -D_POSIX_C_SOURCE=200809L -DWIKV_SOURCE_DIR="\"$PWD\"" -DWIKV_VERSION_STRING="\"fuzz\""
       -DWIKV_GIT_COMMIT="\"fuzz\"" -g -O1 -I.
       -fsanitize=address,undefined -fno-sanitize-recover=undefined)
objs=()
for src in core/*.c models/*.c net/*.c kv/*.c sim/*.c sim/policies/*.c exec/*.c exec/cpu/*.c plots/*.c; do
  [ -e "$src" ] || continue
  obj="$out/obj/$(echo "$src" | tr '/' '_').o"
  if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ]; then
    clang "${flags[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
  fi
  objs+=("$obj")
done
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do [ -e "$f" ] && targets+=("$(basename "$f" .c)"); done
fi
status=0
for t in "${targets[@]}"; do
  clang "${flags[@]}" -fsanitize=fuzzer "tests/fuzz/$t.c" "${objs[@]}" -lsqlite3 -lm -lpthread -o "$out/$t"
  corpus="tests/fuzz/corpus/${t#fuzz_}"
  work="$out/corpus-$t"
  mkdir -p "$work"
  [ -d "$corpus" ] && cp -n "$corpus"/* "$work"/ 2>/dev/null || true
  log="$out/$t.log"
  if "$out/$t" -max_total_time="$seconds" -print_final_stats=1 "$work" >"$log" 2>&1; then
    execs=$(grep -o "stat::number_of_executed_units: *[0-9]*" "$log" | grep -o "[0-9]*$" || echo "?")
    echo "fuzz $t: ${seconds}s, $execs executions, no crash"
  else
    echo "fuzz $t: FAILED (see $log)"
    grep -E "ERROR|SUMMARY" "$log" | head -5
    status=1
  fi
done
exit $status
