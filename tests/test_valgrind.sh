#!/usr/bin/env bash
# valgrind memcheck on a small simulation: no invalid access, no leak (definite or indirect).
# usage: test_valgrind.sh WIKV SOURCE_DIR   (skipped with a message when valgrind is absent)
set -uo pipefail
wikv=$1
src=$2
if ! command -v valgrind >/dev/null; then echo "SKIP: valgrind not installed"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
valgrind --quiet --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite,indirect \
  "$wikv" sim --trace "$src/traces/lte-static-90s-seed1.txt" --policy prefill,full,kivi2,cachegen,hybrid \
  --context 1024 --requests 2 --db "$tmp/v.db" --no-progress >"$tmp/out" 2>"$tmp/err"
status=$?
if [ "$status" -ne 0 ]; then
  echo "FAIL: valgrind exit $status"
  tail -30 "$tmp/err"
  exit 1
fi
echo "test_valgrind: memcheck clean on a 5-policy simulation"
