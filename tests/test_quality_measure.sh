#!/usr/bin/env bash
# `wikv quality measure` on the fixture model: a tiny measurement writes a source=measured table whose
# reference rows reproduce full-KV decoding (f1_rel 1, accept = the full-KV pass rate it reports), whose
# wikv curve does not fall as coverage grows, and which makes `wikv sim --quality` report F1 (the
# assumed table gives none).
set -euo pipefail
wikv=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$wikv" quality --help >/dev/null
set +e
"$wikv" quality measure --tasks nope --out "$tmp/x.tsv" 2>/dev/null; [ $? -eq 2 ] || exit 1
"$wikv" quality measure --context 512 2>/dev/null; [ $? -eq 2 ] || exit 1
set -e
out=$("$wikv" quality measure --tasks passkey --context 1024 --n 2 --out "$tmp/q.tsv" 2>/dev/null)
t="$tmp/q.tsv"
head -1 "$t" | grep -qx '# source=measured'
grep -q '^# model .*tasks passkey, context 1024, 2 items' "$t"
pass=$(sed -n 's/^full-KV F1 [0-9.]*, confidence pass rate \([0-9.]*\) over 2 items$/\1/p' <<<"$out")
[ -n "$pass" ]
# the reference row, and h2o keeping every token (the same cache reached through the selector)
awk -v p="$pass" -F'\t' '$1 == "full" { n++; if ($2 != "1.0000" || $4 != "1.0000" || $3 != p) exit 1 }
    $1 == "h2o" && $2 == "1.0000" { m++; if ($4 != "1.0000" || $3 != p) exit 1 }
    END { exit !(n == 1 && m == 1) }' "$t"
# every family present, coverage increasing inside each; wikv's F1 at full coverage >= at its least
awk -F'\t' 'NR > 1 && $1 !~ /^#/ && $1 != "family" { if ($1 == f && $2 + 0 <= c) exit 1; f = $1; c = $2 + 0; seen[$1] = 1 }
    $1 == "wikv" { if (!lo_set) { lo = $4 + 0; lo_set = 1 } hi = $4 + 0 }
    END { exit !(seen["full"] && seen["wikv"] && seen["default"] && seen["h2o"] && seen["kivi2"] && seen["kivi4"] && hi >= lo) }' "$t"
# the simulator: F1 per row from the measured table, none from the assumed one
"$wikv" sim --trace "$src/traces/lte-static-90s-seed1.txt" --policy full,kivi2,wikv --requests 2 --quality "$t" \
    --db "$tmp/m.db" --no-progress >/dev/null
"$wikv" sim --trace "$src/traces/lte-static-90s-seed1.txt" --policy full,kivi2,wikv --requests 2 \
    --db "$tmp/a.db" --no-progress >/dev/null
[ "$(sqlite3 "$tmp/m.db" "select count(*) from complete_requests where kind='sim' and f1 is null")" = 0 ]
[ "$(sqlite3 "$tmp/m.db" "select count(*) from complete_requests where policy='full' and f1 = 1.0")" = 2 ]
kivi=$(awk -F'\t' '$1 == "kivi2" { print $4 + 0 }' "$t")
[ "$(sqlite3 "$tmp/m.db" "select count(*) from complete_requests where policy='kivi2' and abs(f1 - $kivi) < 1e-9")" = 2 ]
[ "$(sqlite3 "$tmp/a.db" "select count(*) from complete_requests where f1 is not null")" = 0 ]
echo ok
