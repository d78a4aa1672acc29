#!/usr/bin/env python3
"""Trains the fixture model: a small Llama (HF LlamaForCausalLM) with its own byte-level BPE tokenizer,
on the project's long-context tasks from `wikv task gen` (passkey, multikey, topic, vartrack), and
writes it in Hugging Face format with reference vectors for the C tests.

Runs on the GPU machine (torch, transformers, tokenizers); one call does everything:
  1. tokenizer: byte-level BPE (GPT-2 pre-tokenizer) trained on generated task texts (train seeds);
  2. training: an induction pre-task (a random token run repeated; loss on the copy), then the four
     tasks mixed, lengths growing to --max-len tokens; loss on the answer tokens only (the model shifts
     labels itself: labels are NOT pre-shifted);
  3. evaluation: greedy answers on test seeds (< 1000000, disjoint from training seeds >= 1000000)
     at several lengths, scored like `wikv` does (contains / contains_all after normalisation);
  4. export: model (fp16 safetensors), tokenizer.json, refs.json (tokenizer ids, fp32 logits,
     attention export, greedy answers, all computed by transformers from the saved fp16 weights), and
     hf_tiny.tar (tiny random models of Llama-3-rope/Qwen2/Qwen3/Mistral with their logits).

usage: python3 tools/train_fixture.py --wikv PATH --out DIR [--train-seconds 330] [--smoke]
"""
import argparse
import io
import json
import math
import multiprocessing as mp
import os
import random
import re
import string
import subprocess
import sys
import tarfile
import time
from collections import deque

import numpy as np
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

TASKS = ["passkey", "multikey", "topic", "vartrack"]
TRAIN_SEED_MIN = 1000000
PROMPT = "{context}\n\nQuestion: {input}\nAnswer:"
SPECIALS = ["<s>", "</s>", "<pad>"]
BOS, EOS, PAD = 0, 1, 2
QWEN2_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
ANSWER_WEIGHT = 5.0


def log(*a):
    print("[%7.1fs]" % (time.time() - T0), *a, flush=True)


T0 = time.time()


# ---- tasks ------------------------------------------------------------------------------------

def gen_items(wikv, task, seed, n, context):
    out = subprocess.run([wikv, "task", "gen", "--task", task, "--context", str(max(64, int(context))),
                          "--seed", str(seed), "--n", str(n)], check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def answer_text(item):
    if item["task"] == "vartrack":
        return " " + " ".join(item["answers"])
    return " " + item["answers"][0]


def prompt_text(item):
    return PROMPT.format(context=item["context"], input=item["input"])


# ---- scoring (as exec/metrics: normalise, then contains / contains_all) ------------------------

def normalize(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def score(item, pred):
    p = normalize(pred)
    if item["task"] == "vartrack":
        return sum(1 for a in item["answers"] if normalize(a) in p) / len(item["answers"])
    return 1.0 if any(normalize(a) and normalize(a) in p for a in item["answers"]) else 0.0


# ---- tokenizer --------------------------------------------------------------------------------

def train_tokenizer(wikv, vocab):
    texts = []
    for i, task in enumerate(TASKS):
        for it in gen_items(wikv, task, TRAIN_SEED_MIN + 500000 + i * 1000, 150, 1500):
            texts.append(prompt_text(it) + answer_text(it))
    tok = Tokenizer(models.BPE())
    # One digit per token (the Qwen2 split): numbers are copied digit by digit, which a small model
    # learns far sooner than copying multi-digit pieces whose split depends on the neighbours.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_RE), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIALS, show_progress=False,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, tr)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", BOS)])
    assert tok.token_to_id("<s>") == BOS and tok.token_to_id("</s>") == EOS and tok.token_to_id("<pad>") == PAD
    return tok


# ---- batch making (worker processes) -----------------------------------------------------------

W = {}


def worker_init(tok_json, wikv, ratio, vocab):
    W["tok"] = Tokenizer.from_str(tok_json)
    W["wikv"], W["ratio"], W["vocab"] = wikv, ratio, vocab
    torch.set_num_threads(1)


def encode_item(item):
    tok = W["tok"]
    p = tok.encode(prompt_text(item), add_special_tokens=True).ids
    a = tok.encode(answer_text(item), add_special_tokens=False).ids + [EOS]
    return p, a


def pad_batch(seqs, dense=True):
    """seqs: list of (ids, answer_pos). Right padding: causal attention never sees the pads. Labels are
    the ids themselves (the loss shifts); weights: 1 on text tokens (dense) or 0, ANSWER_WEIGHT from
    answer_pos on, 0 on pads."""
    L = max(len(s) for s, _ in seqs)
    x = np.full((len(seqs), L), PAD, dtype=np.int64)
    w = np.zeros((len(seqs), L), dtype=np.float32)
    for i, (s, k) in enumerate(seqs):
        x[i, :len(s)] = s
        if dense:
            w[i, 1:k] = 1.0
        w[i, k:len(s)] = ANSWER_WEIGHT
    return x, w


def make_batch(spec):
    kind, task, seed, length, count = spec
    rng = np.random.default_rng(seed)
    seqs = []
    if kind == "induction":
        for _ in range(count):
            half = max(8, (length - 1) // 2)
            run = rng.integers(len(SPECIALS), W["vocab"], size=half)
            s = np.concatenate([[BOS], run, run])
            seqs.append((s, 2 + half))  # the copy's first token is unpredictable
        return pad_batch(seqs, dense=False)
    ctx = length / W["ratio"] * 0.95
    for item in gen_items(W["wikv"], task, seed * 1024, count, ctx):
        p, a = encode_item(item)
        s = np.array(p + a, dtype=np.int64)
        if len(s) > length * 1.5:  # the tasks' fixed text can exceed short targets: drop such items
            continue
        seqs.append((s, len(p)))
    if not seqs:
        return make_batch(("induction", task, seed, length, count))
    return pad_batch(seqs)


# ---- model ------------------------------------------------------------------------------------

def make_model(vocab, max_len):
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                      num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=max_len,
                      rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=BOS,
                      eos_token_id=EOS, pad_token_id=PAD, initializer_range=0.02)
    return LlamaForCausalLM(cfg)


def grow_layers(model, layers):
    """A deeper model that computes exactly what `model` computes: `layers` - n new decoder layers are
    inserted evenly between the trained ones, each an identity at first (attention o_proj and MLP
    down_proj zero, so both residual branches add nothing); training then gives them work. A way to add
    depth without losing what the trained layers know. Returns the new model (fp32, on model's device)."""
    from transformers import LlamaForCausalLM
    import copy
    old = model.model.layers
    n = len(old)
    if layers <= n:
        raise SystemExit("--grow-layers %d: the model in --init has %d layers already" % (layers, n))
    cfg = copy.deepcopy(model.config)
    cfg.num_hidden_layers = layers
    big = LlamaForCausalLM(cfg).to(next(model.parameters()).device)
    # new layer slots: spread the layers - n identities evenly after trained layers 0..n-1
    extra = layers - n
    where = [(i + 1) * n // (extra + 1) for i in range(extra)]  # insert after these trained layers
    order, k = [], 0
    for i in range(n):
        order.append(("old", i))
        while k < extra and where[k] == i + 1:
            order.append(("new", k))
            k += 1
    while k < extra:
        order.append(("new", k))
        k += 1
    sd = {k2: v for k2, v in model.state_dict().items() if not k2.startswith("model.layers.")}
    for dst, (kind, src) in enumerate(order):
        layer = big.model.layers[dst]
        if kind == "old":
            layer.load_state_dict(old[src].state_dict())
        else:
            with torch.no_grad():
                layer.self_attn.o_proj.weight.zero_()
                layer.mlp.down_proj.weight.zero_()
    missing, unexpected = big.load_state_dict(sd, strict=False)
    assert not unexpected and all(m.startswith("model.layers.") for m in missing), (missing, unexpected)
    big.tie_weights()
    log("grew %d -> %d layers (identity layers at slots %s)" %
        (n, layers, [d for d, (kind, _) in enumerate(order) if kind == "new"]))
    return big


def parse_task_weights(text):
    """"passkey=1,multikey=3,..." -> weights in TASKS order (missing tasks weigh 1)."""
    w = {t: 1.0 for t in TASKS}
    for part in filter(None, text.split(",")):
        name, _, val = part.partition("=")
        if name not in w:
            raise SystemExit("--task-weights: unknown task %r (tasks: %s)" % (name, ", ".join(TASKS)))
        w[name] = float(val)
    return [w[t] for t in TASKS]


def log_uniform(rng, lo, hi):
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def curriculum(p, rng, max_len, tokens_per_batch, induction_frac=0.10, mode="scratch"):
    """(kind, length, count) for training progress p in [0, 1).
    scratch: induction pre-task, then short tasks (retrieval is learned at 512-2048 tokens), then up to
             max_len;
    long:    a continued model already retrieves at short lengths; 2K..max_len, half in the top octave
             (forgets multi-key retrieval at 2K: see models/fixtures/README.md);
    mixed:   a continued model, every length at once: a third each at 512-2K, 2K-4K and 4K-max_len, so
             that training at long contexts does not cost the short ones."""
    if mode == "long":
        lo = max_len / 2 if rng.random() < 0.5 else 2048
        kind = "induction" if rng.random() < 0.05 else "tasks"
        length = log_uniform(rng, lo, max_len)
    elif mode == "mixed":
        kind = "induction" if rng.random() < 0.03 else "tasks"
        lo, hi = rng.choice(((512, 2048), (2048, 4096), (4096, max_len)))
        length = log_uniform(rng, lo, hi)
    elif p < induction_frac:
        kind, length = "induction", int(rng.uniform(128, 768))
    elif p < induction_frac + 0.4:
        kind = "induction" if rng.random() < 0.15 else "tasks"
        length = log_uniform(rng, 512, 2048)
    else:
        kind = "induction" if rng.random() < 0.05 else "tasks"
        length = log_uniform(rng, 1024, max_len)
    return kind, length, max(1, tokens_per_batch // length)


def train(args, tok, ratio, device):
    # Workers are forked before CUDA is touched; they only generate and tokenize.
    pool = mp.get_context("fork").Pool(args.workers, initializer=worker_init,
                                       initargs=(tok.to_str(), args.wikv, ratio, tok.get_vocab_size()))
    if args.init:  # continue from a saved fixture (same tokenizer), in fp32
        from transformers import LlamaForCausalLM
        model = LlamaForCausalLM.from_pretrained(args.init, torch_dtype=torch.float32)
        model.config.max_position_embeddings = max(model.config.max_position_embeddings, args.max_len)
        model = model.to(device)
        log("continuing from %s" % args.init)
        if args.grow_layers:
            model = grow_layers(model, args.grow_layers)
    else:
        model = make_model(tok.get_vocab_size(), args.max_len).to(device)
    nparams = sum(p.numel() for p in model.parameters())
    log("model: %d parameters" % nparams)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    rng = random.Random(1)
    task_weights = parse_task_weights(args.task_weights)
    pending = deque()
    seed = TRAIN_SEED_MIN
    start = time.time()
    step, p = 0, 0.0
    ema = None
    wait_s = 0.0  # time spent waiting for batches (input-bound when close to the wall time)

    def submit():
        nonlocal seed
        kind, length, count = curriculum(p, rng, args.max_len, args.tokens_per_batch, args.induction_frac,
                                         args.curriculum)
        task = rng.choices(TASKS, weights=task_weights)[0]
        pending.append(pool.apply_async(make_batch, ((kind, task, seed, length, count),)))
        seed += 1

    for _ in range(args.prefetch):
        submit()
    model.train()
    while True:
        p = max(step / args.max_steps, (time.time() - start) / args.train_seconds)
        if p >= 1.0:
            break
        warm = min(1.0, step / 50)
        lr = args.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))
        for g in opt.param_groups:
            g["lr"] = lr
        tw = time.time()
        x, w = pending.popleft().get()
        wait_s += time.time() - tw
        submit()
        x = torch.from_numpy(x).to(device, non_blocking=True)
        w = torch.from_numpy(w).to(device, non_blocking=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(input_ids=x).logits
        # Position t predicts token t+1 (the shift a HF `labels` loss would do).
        ce = torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                               x[:, 1:].reshape(-1), reduction="none")
        wt = w[:, 1:].reshape(-1)
        loss = (ce * wt).sum() / wt.sum().clamp(min=1.0)
        ans = (wt == ANSWER_WEIGHT)
        ans_loss = ce[ans].mean() if ans.any() else ce.new_zeros(())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        lv = ans_loss.item() if step % 10 == 0 else None
        if lv is not None:
            ema = lv if ema is None else 0.9 * ema + 0.1 * lv
        if step % args.log_every == 0:
            log("step %5d  p %.2f  len %5d x %3d  answer-loss %.4f  lr %.2e  data-wait %.0f%%" %
                (step, p, x.shape[1], x.shape[0], ema or 0, lr, 100.0 * wait_s / max(1e-9, time.time() - start)))
    pool.terminate()
    log("trained %d steps in %.0f s" % (step, time.time() - start))
    return model, step, nparams


# ---- evaluation -------------------------------------------------------------------------------

@torch.no_grad()
def greedy(model, ids, max_new, device):
    x = torch.tensor([ids], device=device)
    out = model.generate(x, max_new_tokens=max_new, do_sample=False, eos_token_id=EOS, pad_token_id=PAD,
                         attention_mask=torch.ones_like(x))
    return out[0, len(ids):].tolist()


def evaluate(args, model, tok, ratio, device):
    model.eval()
    table = {}
    for length in args.eval_lengths:
        for ti, task in enumerate(TASKS):
            scores = []
            items = gen_items(args.wikv, task, 100 + 10000 * ti + length, args.eval_n, length / ratio * 0.95)
            for item in items:
                p = tok.encode(prompt_text(item), add_special_tokens=True).ids
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
                    gen = greedy(model, p, 24, device)
                if EOS in gen:
                    gen = gen[:gen.index(EOS)]
                pred = tok.decode(gen).split("\n")[0]
                scores.append(score(item, pred))
            table["%s@%d" % (task, length)] = sum(scores) / len(scores)
            log("eval %-9s %5d tokens: %.3f  (n=%d, e.g. %r)" % (task, length, table["%s@%d" % (task, length)],
                                                                 len(scores), pred[:40]))
    for length in args.eval_lengths:
        table["mean@%d" % length] = sum(table["%s@%d" % (t, length)] for t in TASKS) / 4
        log("eval mean      %5d tokens: %.3f" % (length, table["mean@%d" % length]))
    return table


# ---- export -----------------------------------------------------------------------------------

def load_fp32(path, device):
    from transformers import AutoModelForCausalLM
    try:
        m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    except TypeError:
        m = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager")
    return m.float().to(device).eval()


def r6(xs):
    return [float("%.6g" % v) for v in xs]


@torch.no_grad()
def references(args, fixdir, tok, ratio, device):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    m = load_fp32(fixdir, device)
    refs = {"tokenizer": [], "logits": [], "attention": None, "greedy": []}
    texts = ["The pass key is 93062. Remember it.", "Hello world, it's 12345!\n\nQuestion: What?\nAnswer:",
             "VAR ABCDE = 31337. VAR XYZZY = VAR ABCDE.", "  spaces\tand\nnewlines  ", "caf\u00e9 \u4f60\u597d"]
    for t in texts:
        refs["tokenizer"].append({"text": t, "ids": tok.encode(t, add_special_tokens=False).ids,
                                  "ids_special": tok.encode(t, add_special_tokens=True).ids})
    prompts = [tok.encode(texts[0], add_special_tokens=True).ids]
    for task, n in (("passkey", 256), ("vartrack", 600)):
        it = gen_items(args.wikv, task, 777, 1, n / ratio)[0]
        prompts.append(tok.encode(prompt_text(it), add_special_tokens=True).ids)
    for ids in prompts:
        logits = m(torch.tensor([ids], device=device)).logits[0].float().cpu()
        refs["logits"].append({"ids": ids, "last": r6(logits[-1].tolist()),
                               "positions": [0, len(ids) // 2],
                               "at_positions": [r6(logits[0].tolist()), r6(logits[len(ids) // 2].tolist())]})
    # Attention export: last `rows` query rows, mean over rows, sum over the query heads of a KV group.
    it = gen_items(args.wikv, "passkey", 778, 1, 400 / ratio)[0]
    ids = tok.encode(prompt_text(it), add_special_tokens=True).ids
    out = m(torch.tensor([ids], device=device), output_attentions=True)
    rows, cfg = 100, m.config
    group = cfg.num_attention_heads // cfg.num_key_value_heads
    imp = []
    for a in out.attentions:  # [1, H, T, T]
        a = a[0, :, -rows:, :].float().mean(dim=1)  # [H, T]
        imp.append([r6(a[g * group:(g + 1) * group].sum(dim=0).tolist()) for g in range(cfg.num_key_value_heads)])
    refs["attention"] = {"ids": ids, "rows": rows, "importance": imp}
    # Greedy answers with a clear top-1 margin at every step (so fp32 rounding cannot flip them).
    for ti, task in enumerate(TASKS):
        for seed in range(900 + ti * 10, 905 + ti * 10):
            it = gen_items(args.wikv, task, seed, 1, 500 / ratio)[0]
            ids = tok.encode(prompt_text(it), add_special_tokens=True).ids
            gen, margin, cur = [], 1e9, list(ids)
            for _ in range(16):
                lg = m(torch.tensor([cur], device=device)).logits[0, -1].float()
                top = torch.topk(lg, 2)
                margin = min(margin, float(top.values[0] - top.values[1]))
                nxt = int(top.indices[0])
                gen.append(nxt)
                cur.append(nxt)
                if nxt == EOS:
                    break
            text = tok.decode([g for g in gen if g != EOS])
            if margin > 0.05 and score(it, text) == 1.0:
                refs["greedy"].append({"task": task, "seed": seed, "ids": ids, "answer_ids": gen, "answer": text,
                                       "gold": it["answers"], "min_margin": margin})
                break
    log("references: %d logits, attention %d tokens, %d greedy" % (len(refs["logits"]), len(ids), len(refs["greedy"])))
    return refs


@torch.no_grad()
def tiny_models(device):
    """Tiny random models of each supported architecture variant, with transformers' fp32 logits."""
    from transformers import (AutoConfig, AutoModelForCausalLM)
    torch.backends.cuda.matmul.allow_tf32 = False
    common = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
                  initializer_range=0.2, bos_token_id=1, eos_token_id=2)
    variants = {
        "llama3": ("llama", dict(rope_theta=10000.0, rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                 "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                 "original_max_position_embeddings": 64}, tie_word_embeddings=False), "F32"),
        "qwen2": ("qwen2", dict(rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False), "F32"),
        "qwen3": ("qwen3", dict(head_dim=32, rope_theta=1000000.0, tie_word_embeddings=True,
                                use_sliding_window=False), "BF16"),
        "mistral": ("mistral", dict(rope_theta=10000.0, sliding_window=16, tie_word_embeddings=False), "F16"),
    }
    buf = io.BytesIO()
    tar = tarfile.open(fileobj=buf, mode="w")
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(3, 256, (1, 48), generator=g).tolist()[0]
    for name, (mtype, extra, dtype) in variants.items():
        torch.manual_seed(7)
        cfg = AutoConfig.for_model(mtype, **common, **extra)
        try:
            m = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
        except TypeError:
            m = AutoModelForCausalLM.from_config(cfg)
        with torch.no_grad():  # norms away from 1 so that their weights matter
            for n_, p_ in m.named_parameters():
                if "norm" in n_:
                    p_.add_(torch.randn(p_.shape, generator=g) * 0.2)
                if n_.endswith("bias"):
                    p_.copy_(torch.randn(p_.shape, generator=g) * 0.2)
        d = "/tmp/hf_tiny/" + name
        tdt = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype]
        m.to(tdt).save_pretrained(d, safe_serialization=True)
        m2 = load_fp32(d, device)
        logits = m2(torch.tensor([ids], device=device)).logits[0].float().cpu()
        with open(d + "/ref.json", "w") as f:
            json.dump({"ids": ids, "dtype": dtype, "logits": [r6(row.tolist()) for row in logits]}, f)
        for fn in ("config.json", "model.safetensors", "ref.json"):
            tar.add(os.path.join(d, fn), arcname="hf_tiny_%s/%s" % (name, fn))
        log("tiny %s (%s): logit range %.2f" % (name, dtype, float(logits.max() - logits.min())))
    tar.close()
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wikv", default="./build/wikv")
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--max-len", type=int, default=8192)
    ap.add_argument("--train-seconds", type=float, default=150)
    ap.add_argument("--max-steps", type=int, default=100000)
    ap.add_argument("--tokens-per-batch", type=int, default=24576)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--induction-frac", type=float, default=0.10,
                    help="share of training (by progress) spent on the induction pre-task alone")
    ap.add_argument("--workers", type=int, default=max(2, (os.cpu_count() or 4) - 2))
    ap.add_argument("--prefetch", type=int, default=48)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--eval-lengths", type=int, nargs="+", default=[2048, 4096, 8192])
    ap.add_argument("--eval-n", type=int, default=10)
    ap.add_argument("--init", default=None,
                    help="continue training the fixture in this directory (its tokenizer.json is kept)")
    ap.add_argument("--grow-layers", type=int, default=0,
                    help="with --init: insert identity layers up to this many layers (see grow_layers())")
    ap.add_argument("--curriculum", choices=("scratch", "long", "mixed"), default=None,
                    help="length schedule (default: scratch, or long with --init); see curriculum()")
    ap.add_argument("--task-weights", default="",
                    help="how often each task is drawn, e.g. multikey=3,vartrack=3 (default: all 1)")
    ap.add_argument("--smoke", action="store_true", help="a few seconds of everything, to check the pipeline")
    args = ap.parse_args()
    if args.grow_layers and not args.init:
        raise SystemExit("--grow-layers needs --init (the trained model to grow)")
    if args.curriculum is None:
        args.curriculum = "long" if args.init else "scratch"
    if args.smoke:
        args.train_seconds, args.eval_lengths, args.eval_n, args.log_every = 8, [512], 2, 5
        args.tokens_per_batch, args.max_len = 8192, 2048
    device = "cuda" if torch.cuda.is_available() else "cpu"
    import transformers
    log("torch %s, transformers %s, device %s %s" % (torch.__version__, transformers.__version__, device,
                                                    torch.cuda.get_device_name(0) if device == "cuda" else ""))
    os.makedirs(args.out, exist_ok=True)
    if args.init:
        tok = Tokenizer.from_file(os.path.join(args.init, "tokenizer.json"))
    else:
        tok = train_tokenizer(args.wikv, args.vocab)
    probe = gen_items(args.wikv, "mix", TRAIN_SEED_MIN + 900000, 8, 2000)
    ratio = sum(len(tok.encode(prompt_text(i)).ids) for i in probe) / (8 * 2000.0)
    log("tokenizer: %d pieces; %.3f tokens per requested context token" % (tok.get_vocab_size(), ratio))
    model, steps, nparams = train(args, tok, ratio, device)
    fixdir = os.path.join(args.out, "fixture")
    model.to(torch.float16).save_pretrained(fixdir, safe_serialization=True)
    tok.save(os.path.join(fixdir, "tokenizer.json"))
    for fn in os.listdir(fixdir):
        if fn not in ("config.json", "model.safetensors", "tokenizer.json"):
            os.remove(os.path.join(fixdir, fn))
    log("saved %s (%s)" % (fixdir, sorted(os.listdir(fixdir))))
    model.to(torch.float32)
    summary = {"params": nparams, "steps": steps, "train_seconds": args.train_seconds, "ratio": ratio,
               "torch": torch.__version__, "tokens_per_batch": args.tokens_per_batch, "max_len": args.max_len}
    try:
        summary["eval"] = evaluate(args, model, tok, ratio, device)
    except Exception as e:  # keep the model even when evaluation breaks
        log("evaluation failed: %r" % e)
    with open(os.path.join(args.out, "eval.json"), "w") as f:
        json.dump(summary, f, indent=1)
    try:
        refs = references(args, fixdir, tok, ratio, device)
        with open(os.path.join(args.out, "refs.json"), "w") as f:
            json.dump(refs, f)
    except Exception as e:
        log("references failed: %r" % e)
    try:
        with open(os.path.join(args.out, "hf_tiny.tar"), "wb") as f:
            f.write(tiny_models(device))
    except Exception as e:
        log("tiny models failed: %r" % e)
    log("done")


if __name__ == "__main__":
    main()
