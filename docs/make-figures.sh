#!/usr/bin/env bash
# Remakes the README's figures and table: runs the default study (`wikv study`) into a temporary folder
# and copies its figures here. usage: bash docs/make-figures.sh   (after `make build`)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
./build/wikv study --out "$out" --no-progress | grep -v "^figure:\|^run " | tee docs/study-table.txt
for f in "$out"/*.png "$out"/*.tsv; do cp "$f" docs/; done
