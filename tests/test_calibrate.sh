#!/usr/bin/env bash
# `wikv calibrate` on the CPU engine and the fixture model: it writes a profile that wikv loads back,
# whose fitted times are close to the measured ones. usage: test_calibrate.sh WIKV SOURCE_DIR
set -euo pipefail
wikv=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
"$wikv" calibrate --model "$src/models/fixtures/tiny-llama-tasks" --base jetson-agx-orin --backend cpu \
  --prefill 64,128,256 --decode 64,128,256 --steps 4 --name cpu-test -o "$tmp/cpu.profile" > "$tmp/out" 2>"$tmp/err" ||
  fail "calibrate: $(cat "$tmp/out" "$tmp/err")"
grep -q "^name = cpu-test" "$tmp/cpu.profile" || fail "profile name"
shown=$("$wikv" model show llama-3.1-8b "$tmp/cpu.profile" 1024) || fail "profile does not load"
grep -q "on cpu-test" <<<"$shown" || fail "profile not used: $shown"
# every measured point is reported with its fitted and analytic prediction (timings vary with load:
# only their presence and positivity are checked here)
[ "$(awk '($1 == "prefill" || $1 == "decode") && $3 > 0 && $4 > 0 && $5 > 0' "$tmp/out" | wc -l)" -eq 6 ] ||
  fail "report: $(cat "$tmp/out")"
set +e
"$wikv" calibrate --model "$src/models/fixtures/tiny-llama-tasks" --base nosuch -o "$tmp/x" 2>/dev/null; s=$?
set -e
[ "$s" -ne 0 ] || fail "unknown base device accepted"
echo "test_calibrate: profile fitted, written and loaded"
