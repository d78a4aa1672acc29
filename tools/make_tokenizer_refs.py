#!/usr/bin/env python3
"""Writes small tokenizer.json files of each supported family and their reference ids, made by the
`tokenizers` library, for tests/test_tokenizer.c. Needs only `pip install tokenizers` (no torch).

usage: python3 tools/make_tokenizer_refs.py tests/data
Writes tests/data/tok_<name>.json and tests/data/tokenizer_refs.json:
  {"<name>": [{"text": ..., "ids": [...], "ids_special": [...], "decoded": ...}, ...], ...}
"""
import json
import os
import sys

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers, Regex

CORPUS = [
    "The passkey is 71432. Remember it. The grass is green. The sky is blue. The sun is yellow.",
    "Here we go. There and back again. It's what we're told; they've said I'm sure they'll do it, you'd see.",
    "VAR X1 = 12345\nVAR X2 = X1\nVAR X3 = X2\nQuestion: Find all variables that are assigned the value 12345.",
    "One of the special magic numbers for long-context is: 4938271. What is the special magic number?",
    "Tabs\tand  double  spaces   and newlines\n\n\nare whitespace. Don't forget 3.14159 and 2,718,281!",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe \u00bd \u00b2 \u00d7 \u00f7 \u00a9 \u2014 \u201cquoted\u201d \u2026",
    "\u4f60\u597d\uff0c\u4e16\u754c\u3002 \u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440 \u03b3\u03b5\u03b9\u03ac \u0661\u0662\u0663 \U0001F600 emoji",
] * 20

TEXTS = [
    "The passkey is 71432.",
    "Hello world",
    " leading space and trailing space ",
    "It's what we're told; they've said I'm sure they'll do it, you'd see. IT'S LOUD'S",
    "VAR X1 = 12345\nVAR X2 = X1\n\nQuestion: Find all variables?",
    "Tabs\tand  double  spaces   and newlines\n\n\nend",
    "   \n  \t\n x",
    "numbers 1 12 123 1234 12345 3.14159 2,718,281",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe \u00bd \u00b2 \u00d7 \u00f7 \u00a9 \u2014 \u201cquoted\u201d \u2026",
    "\u4f60\u597d\uff0c\u4e16\u754c\u3002 \u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440 \u0661\u0662\u0663 \U0001F600!",
    "special <s>inside</s> text<s>",
    "(hello) [world] {x}: \"quote\" 'single' --dash-- a/b\\c",
    "\r\nwindows\r\nlines\r\n",
    "!!!???...",
    "",
    "x",
    "a  \n",
    "zzqqj unseenwords xyzzy",
    " ".join(CORPUS),  # ~13K characters: one long SentencePiece segment
]

GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def bytelevel(pre, vocab=400, ignore_merges=False, prefix=False):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<s>", "</s>"],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, tr)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return tok


def spm(metaspace):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    if metaspace:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    else:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    specials = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    tr = trainers.BpeTrainer(vocab_size=600, special_tokens=specials, show_progress=False,
                             limit_alphabet=60)
    tok.train_from_iterator(CORPUS, tr)
    # Byte tokens are ordinary vocab entries in Llama-2 files, not added tokens.
    j = json.loads(tok.to_str())
    j["added_tokens"] = [a for a in j["added_tokens"] if not a["content"].startswith("<0x")]
    tok = Tokenizer.from_str(json.dumps(j))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tok


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data"
    os.makedirs(out, exist_ok=True)
    toks = {
        "gpt2": bytelevel(pre_tokenizers.ByteLevel(add_prefix_space=False)),
        "gpt2_prefix": bytelevel(pre_tokenizers.ByteLevel(add_prefix_space=True)),
        "llama3": bytelevel(pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), ignore_merges=True),
        "qwen2": bytelevel(pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_RE), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])),
        "spm": spm(False),
        "spm_metaspace": spm(True),
    }
    refs = {}
    for name, tok in toks.items():
        tok.save(os.path.join(out, "tok_%s.json" % name))
        rows = []
        for text in TEXTS:
            ids = tok.encode(text, add_special_tokens=False).ids
            ids_sp = tok.encode(text, add_special_tokens=True).ids
            rows.append({"text": text, "ids": ids, "ids_special": ids_sp,
                         "decoded": tok.decode(ids, skip_special_tokens=False)})
        refs[name] = rows
    with open(os.path.join(out, "tokenizer_refs.json"), "w") as f:
        json.dump(refs, f, ensure_ascii=True)


if __name__ == "__main__":
    main()
