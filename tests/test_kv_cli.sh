#!/usr/bin/env bash
# `wikv kv synth|stats`: writes a tensor, reports every codec, and refuses damaged files with exit status 2.
set -euo pipefail
wikv=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$wikv" kv --help >/dev/null
"$wikv" kv synth --help >/dev/null
"$wikv" kv synth --layers 2 --kv-heads 2 --tokens 160 --head-dim 32 --seed 4 -o "$tmp/a.wkv"
# 2 layers x 2 heads x 160 tokens x 32 dims x 2 (K,V) x 2 bytes + 44-byte header
[ "$(stat -c %s "$tmp/a.wkv")" -eq $((2 * 2 * 160 * 32 * 4 + 44)) ]
"$wikv" kv stats "$tmp/a.wkv" --chunk 64 >"$tmp/out"
for codec in kivi2 kivi4 cachegen0 cachegen4 wikv0 wikv3; do grep -q "^$codec " "$tmp/out"; done
# bytes per token grow with the level (column 2)
awk '$1 ~ /^cachegen[0-9]$/ && NF == 6 { if (seen && $2 < prev) exit 1; prev = $2; seen = 1 }' "$tmp/out"
grep -q "^    1 " "$tmp/out" # per-layer rows
# damaged payload byte: checksum error names the field, exit status 2
cp "$tmp/a.wkv" "$tmp/b.wkv"
printf '\x55' | dd of="$tmp/b.wkv" bs=1 seek=100 conv=notrunc 2>/dev/null
set +e
"$wikv" kv stats "$tmp/b.wkv" 2>"$tmp/err"
rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q payload_crc32c "$tmp/err"
head -c 1000 "$tmp/a.wkv" >"$tmp/c.wkv"
set +e
"$wikv" kv stats "$tmp/c.wkv" 2>"$tmp/err"
rc=$?
"$wikv" kv synth --layers 0 -o "$tmp/d.wkv" 2>/dev/null
rc2=$?
"$wikv" kv bogus 2>/dev/null
rc3=$?
set -e
[ "$rc" -eq 2 ] && grep -q truncated "$tmp/err"
[ "$rc2" -eq 2 ] && [ "$rc3" -eq 2 ]
echo ok
