#!/usr/bin/env bash
# `wikv validate` on a tiny grid: a bad grid is refused naming FILE:LINE (exit 2); a real run calibrates a
# profile, prints one row per cell and the summary, stores exec and sim rows under the same cell keys,
# and the errors it prints equal those computed from the stored rows; the sim-vs-exec plot pairs them.
set -euo pipefail
wikv=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$wikv" validate --help >/dev/null
printf 'traces = %s\npolicies = full\ncontexts = 256\ncolour = red\n' "$src/traces/lte-static-90s-seed1.txt" >"$tmp/bad.grid"
set +e
err=$("$wikv" validate "$tmp/bad.grid" --db "$tmp/x.db" 2>&1 >/dev/null); rc=$?
set -e
[ $rc -eq 2 ] && grep -q "bad.grid:4: unknown key" <<<"$err"
cat >"$tmp/v.grid" <<G
traces   = $src/traces/lte-static-90s-seed1.txt   # one trace
policies = full, kivi2:group=32
contexts = 256
requests = 2
G
out=$("$wikv" validate "$tmp/v.grid" --db "$tmp/v.db" --quiet)
[ -s "$tmp/v.db.profile" ] && grep -q '^name = cpu-measured$' "$tmp/v.db.profile"
grep -q '^kv_decode_gbps.full = ' "$tmp/v.db.profile"
head -1 <<<"$out" | grep -q '^policy .*exec_ttft .*sim_ttft .*rel_err'
rows=$(grep -c -E '^(full|kivi2:group=32) +lte-static-90s-seed1.txt +256 +[12] ' <<<"$out")
[ "$rows" = 4 ]
grep -q '^kivi2:group=32 .*%' <<<"$(sed -n '/^per policy/,/^pairs/p' <<<"$out")"
grep -q '^pairs 4 of 4 cells; median |rel err| [0-9.]*%, p95 |rel err| [0-9.]*%$' <<<"$out"
# both kinds of rows, one of each per cell key
q="select count(distinct cell) from complete_requests where cell like 'validate|%'"
[ "$(sqlite3 "$tmp/v.db" "$q and kind = 'exec' and status = 'ok'")" = 4 ]
[ "$(sqlite3 "$tmp/v.db" "$q and kind = 'sim' and status = 'ok'")" = 4 ]
# the printed errors from the stored rows: per cell, then median and p95 (linear interpolation)
sqlite3 -separator ' ' "$tmp/v.db" "select e.cell, (s.ttft_s - e.ttft_s) / e.ttft_s from complete_requests e
    join complete_requests s on s.cell = e.cell and s.kind = 'sim' where e.kind = 'exec' order by e.cell" >"$tmp/rel"
while read -r cell rel; do
    IFS='|' read -r _ pol tr ctx seed <<<"$cell"
    printed=$(awk -v p="$pol" -v c="$ctx" -v s="$seed" '$1 == p && $3 == c && $4 == s { sub("%", "", $7); print $7 }' <<<"$out")
    awk -v a="$printed" -v b="$rel" 'BEGIN { exit !(a - 100 * b < 0.051 && 100 * b - a < 0.051) }'
done <"$tmp/rel"
stats=$(awk '{ print ($2 < 0 ? -$2 : $2) }' "$tmp/rel" | sort -g | awk '{ v[NR] = $1 } END { n = NR;
    for (k = 1; k <= 2; k++) { q = k == 1 ? 0.5 : 0.95; h = (n - 1) * q; i = int(h) + 1;
    x = v[i] + (i < n ? (h - int(h)) * (v[i + 1] - v[i]) : 0); printf "%.2f ", 100 * x } }')
read -r med p95 <<<"$stats"
line=$(grep '^pairs' <<<"$out")
pm=$(sed 's/.*median |rel err| \([0-9.]*\)%.*/\1/' <<<"$line")
pp=$(sed 's/.*p95 |rel err| \([0-9.]*\)%.*/\1/' <<<"$line")
awk -v a="$pm" -v b="$med" -v c="$pp" -v d="$p95" 'BEGIN { exit !((a - b)^2 < 1e-4 && (c - d)^2 < 1e-4) }'
# a given profile is used as it is, and the plot pairs the rows
"$wikv" validate "$tmp/v.grid" --db "$tmp/w.db" --profile "$tmp/v.db.profile" --quiet >/dev/null
[ ! -e "$tmp/w.db.profile" ]
if command -v gnuplot >/dev/null; then
    "$wikv" plot sim-vs-exec --db "$tmp/v.db" -o "$tmp/sve.png" >/dev/null
    [ -s "$tmp/sve.png" ]
fi
echo ok
