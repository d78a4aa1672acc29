#!/usr/bin/env bash
# End-to-end checks of `wikv policy` and `wikv choose`: parameter listing, a small search written to
# choice.json and a database, `wikv sim --policy-config` reproducing the predicted TTFT, the pareto
# plot reading the database, bad input. usage: test_choose_cli.sh WIKV SOURCE_DIR
set -euo pipefail
wikv=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$wikv" policy list | grep -q "^wikv " || fail "policy list misses wikv"
"$wikv" policy show prefill | grep -E -q "^chunk +int +\[16, 131072\] +512" || fail "policy show prefill"
set +e
"$wikv" policy show nosuch 2>/dev/null; [ $? -eq 2 ] || fail "unknown policy must exit 2"
"$wikv" choose --traces "$tmp/none*" --quality-min 0.9 2>/dev/null; [ $? -eq 2 ] || fail "no trace must exit 2"
set -e

# two constant traces; prefill's chunk searched (text_bytes stays pinned at its default)
printf '0 40\n9 40\n' > "$tmp/a40.txt"
printf '0 80\n9 80\n' > "$tmp/b80.txt"
printf '0 60\n9 60\n' > "$tmp/c60.txt"
"$wikv" choose --traces "$tmp/*.txt" --quality-min 0.9 --policy prefill,kivi2 --model qwen3-4b --context 2048 \
    --requests 2 --holdout 0.34 --grid-budget 5 --max-refine 6 -o "$tmp/choice.json" --db "$tmp/c.db" \
    --no-progress > "$tmp/stdout.out"
grep -q "assumed" "$tmp/stdout.out" || fail "output must say the F1 is assumed"
grep -q "held-out" "$tmp/stdout.out" || fail "no held-out line"
grep -q '"text_bytes=4\|text_bytes=4' "$tmp/choice.json" || fail "text_bytes not pinned"
grep -q '"source": "assumed"' "$tmp/choice.json" || fail "quality source missing"
grep -q '"holdout": \["'"$tmp"'/c60.txt"\]' "$tmp/choice.json" || fail "c60 (third by name) must be held out"
spec=$(sed -n 's/^  "policy": "\(.*\)",$/\1/p' "$tmp/choice.json")
p50=$(sed -n 's/^ *"p50": \([0-9.e+-]*\),*$/\1/p' "$tmp/choice.json" | head -1)
[ -n "$spec" ] && [ -n "$p50" ] || fail "choice.json lacks policy or p50"

# the same requests through wikv sim: the same TTFT p50
"$wikv" sim --policy-config "$tmp/choice.json" --trace "$tmp/a40.txt" --trace "$tmp/b80.txt" --requests 2 \
    --db "$tmp/s.db" --no-progress --quality-target 0 > /dev/null
got=$(sqlite3 "$tmp/s.db" "SELECT ttft_s FROM requests ORDER BY ttft_s" | awk '{v[NR]=$1} END {printf "%.9f", (v[2]+v[3])/2}')
want=$(printf '%.9f' "$p50")
[ "$got" = "$want" ] || fail "sim --policy-config p50 $got != chosen $want"
sqlite3 "$tmp/s.db" "SELECT DISTINCT params FROM requests" | grep -qx "$spec" || fail "sim ran another spec"

# a broken choice file and --policy with --policy-config are bad input (exit 2)
printf '{"policy": "nosuch"}' > "$tmp/bad.json"
set +e
out=$("$wikv" sim --policy-config "$tmp/bad.json" --trace "$tmp/a40.txt" --db "$tmp/x.db" 2>&1); status=$?
[ $status -eq 2 ] || fail "bad choice file exit status $status"
grep -q "bad.json" <<<"$out" || fail "error does not name the file: $out"
"$wikv" sim --policy-config "$tmp/choice.json" --policy full --trace "$tmp/a40.txt" --db "$tmp/x.db" 2>/dev/null
[ $? -eq 2 ] || fail "--policy with --policy-config must exit 2"
set -e

# every evaluated configuration is in the database, with an F1, for the pareto plot
n=$(sqlite3 "$tmp/c.db" "SELECT count(DISTINCT params) FROM complete_requests WHERE f1 IS NOT NULL")
[ "$n" -ge 4 ] || fail "only $n configurations stored"
set +e
"$wikv" plot pareto --db "$tmp/c.db" -o "$tmp/p.png" > /dev/null 2>&1
set -e
[ -s "$tmp/p.tsv" ] || fail "pareto plot wrote no data"
[ "$(grep -c . "$tmp/p.tsv")" -gt "$n" ] || fail "pareto data has fewer rows than configurations"
echo ok
