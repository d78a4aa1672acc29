#!/usr/bin/env bash
# `wikv engine` on the fixture model: info fields, deterministic greedy generation, the attention
# ranking table, and exit status 2 for bad usage.
set -euo pipefail
wikv=$1
src=$2
fx=$src/models/fixtures/tiny-llama-tasks
fail() { echo "FAIL: $*" >&2; exit 1; }

info=$("$wikv" engine info "$fx")
grep -q "^layers *6$" <<<"$info" || fail "info layers: $info"
grep -q "heads *8 (kv 2, head_dim 32)" <<<"$info" || fail "info heads"
grep -q "parameters *5049600" <<<"$info" || fail "info parameters"
grep -q "F16 x56" <<<"$info" || fail "info dtypes"
grep -q "pre-tokenizer qwen2, bos 0" <<<"$info" || fail "info tokenizer"

a=$("$wikv" engine generate "$fx" --prompt "The pass key is 93062. Remember it. 93062 is the" -n 6 2>/dev/null)
b=$("$wikv" engine generate "$fx" --prompt "The pass key is 93062. Remember it. 93062 is the" -n 6 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "greedy generation not deterministic: '$a' vs '$b'"
s1=$("$wikv" engine generate "$fx" --prompt "A dog rested" -n 8 --temperature 1.0 --seed 3 2>/dev/null)
s2=$("$wikv" engine generate "$fx" --prompt "A dog rested" -n 8 --temperature 1.0 --seed 3 2>/dev/null)
[ "$s1" = "$s2" ] || fail "sampling with a seed not reproducible"

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
printf 'The pass key is 93062. Remember it. 93062 is the pass key. A dog rested quietly.\n\nQuestion: What is the pass key?\nAnswer:' >"$tmp"
out=$("$wikv" engine attn "$fx" --prompt-file "$tmp" --rows 10 --top 5 2>/dev/null)
[ "$(grep -c "^ *[1-5] " <<<"$out")" -eq 5 ] || fail "attn: expected 5 ranked rows: $out"

set +e
"$wikv" engine generate "$fx" >/dev/null 2>&1; [ $? -eq 2 ] || fail "missing prompt: exit status not 2"
"$wikv" engine bogus >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown subcommand: exit status not 2"
"$wikv" engine attn "$fx" --prompt x --rows 0 >/dev/null 2>&1; [ $? -eq 2 ] || fail "--rows 0: exit status not 2"
"$wikv" engine info --help >/dev/null 2>&1 || fail "info --help"
echo "ok"
