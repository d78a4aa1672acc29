#!/usr/bin/env bash
# A full disk: a run that cannot be written fails with a clear error and leaves earlier runs intact.
# Uses a small tmpfs (needs root); skipped with a message where mounting is not allowed.
# usage: test_full_disk.sh WIKV SOURCE_DIR
set -uo pipefail
wikv=$1
src=$2
dir=$(mktemp -d)
cleanup() { umount "$dir" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
if ! mount -t tmpfs -o size=600k tmpfs "$dir" 2>/dev/null; then
  echo "SKIP: cannot mount a tmpfs here (not root?): full-disk test not run"
  exit 0
fi
fail() { echo "FAIL: $*" >&2; exit 1; }
trace="$src/traces/lte-static-90s-seed1.txt"
"$wikv" sim --trace "$trace" --policy full,kivi2 --requests 3 --db "$dir/r.db" --no-progress >/dev/null ||
  fail "first run did not fit"
before=$("$wikv" db summary "$dir/r.db") || fail "summary of the first run"
# a run with every request's timeline cannot fit in what is left
out=$("$wikv" sim --trace "$trace" --policy wikv,hybrid --requests 400 --events all --db "$dir/r.db" --no-progress 2>&1)
status=$?
[ "$status" -ne 0 ] || fail "a run that does not fit exited 0"
grep -qi "disk full\|database or disk is full" <<<"$out" || fail "no disk-full message: $out"
after=$("$wikv" db summary "$dir/r.db") || fail "summary after the failed run"
[ "$before" = "$after" ] || fail "earlier results changed: $after"
echo "test_full_disk: the failed run reported '$(echo "$out" | tail -1 | cut -c1-120)'; earlier run intact"
