#!/usr/bin/env python3
"""Baseline for bench/engine.sh: PyTorch + transformers (SDPA attention) on the same synthetic weights
as the CUDA engine's "synthetic:NAME" (exec/cuda/engine_cuda.h): every tensor is
offset + scale * u, u = (lowbias32(i + lowbias32(key)) >> 8) * 2^-23 - 1, key = (layer + 1) * 16 + kind.
Prints the lines bench_engine prints (prefill / decode / greedy), timed with CUDA events.
Runs on the GPU machine only; needs torch and transformers there."""
import argparse
import json
import os
import statistics
import sys

import numpy as np
import torch

M32 = 0xFFFFFFFF


def lowbias32_int(x):
    x &= M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    x ^= x >> 16
    return x


def mul32(h, c):
    """(h * c) mod 2^32 for int64 tensors h < 2^32 without int64 overflow: c split in 16-bit halves."""
    return (h * (c & 0xFFFF) + (((h * (c >> 16)) & 0xFFFF) << 16)) & M32


def lowbias32(h):
    h = h ^ (h >> 16)
    h = mul32(h, 0x7FEB352D)
    h = h ^ (h >> 15)
    h = mul32(h, 0x846CA68B)
    return h ^ (h >> 16)


def synth(shape, key, scale, offset, dtype):
    n = int(np.prod(shape))
    hk = lowbias32_int(key)
    out = torch.empty(n, dtype=dtype, device="cuda")
    step = 1 << 26
    for s in range(0, n, step):
        e = min(n, s + step)
        idx = torch.arange(s, e, dtype=torch.int64, device="cuda")
        h = lowbias32((idx + hk) & M32)
        u = (h >> 8).to(torch.float32) * (1.0 / 8388608.0) - 1.0
        out[s:e] = (u * scale + offset).to(dtype)  # two fp32 roundings, as the CUDA kernel
    return out.view(shape)


def f32_scale(fan_in):
    """1.7 / sqrt(fan_in) rounded as the C code does it (all in fp32)."""
    return float(np.float32(1.7) / np.sqrt(np.float32(fan_in)))


def key(layer, kind):
    return (layer + 1) * 16 + kind


def build_model(spec_path, dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    spec = json.load(open(spec_path))
    fields = {k: v for k, v in spec.items() if not k.startswith("_") and k not in ("model_type", "torch_dtype", "architectures")}
    cfg = LlamaConfig(**fields)
    cfg._attn_implementation = "sdpa"
    torch.set_default_dtype(dtype)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
    model.eval()
    d, hd = cfg.hidden_size, cfg.head_dim if getattr(cfg, "head_dim", None) else cfg.hidden_size // cfg.num_attention_heads
    qd = cfg.num_attention_heads * hd
    a_d, a_q, a_h = f32_scale(d), f32_scale(qd), f32_scale(cfg.intermediate_size)
    kinds = {"input_layernorm.weight": (0, 0.2, 1.0), "self_attn.q_proj.weight": (1, a_d, 0.0),
             "self_attn.k_proj.weight": (2, a_d, 0.0), "self_attn.v_proj.weight": (3, a_d, 0.0),
             "self_attn.o_proj.weight": (4, a_q, 0.0), "post_attention_layernorm.weight": (5, 0.2, 1.0),
             "mlp.gate_proj.weight": (6, a_d, 0.0), "mlp.up_proj.weight": (7, a_d, 0.0),
             "mlp.down_proj.weight": (8, a_h, 0.0)}
    top = {"model.embed_tokens.weight": (0, 1.0, 0.0), "model.norm.weight": (1, 0.2, 1.0), "lm_head.weight": (2, a_d, 0.0)}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in top:
                kind, sc, off = top[name]
                layer = -1
            else:
                parts = name.split(".")  # model.layers.L.rest
                layer, rest = int(parts[2]), ".".join(parts[3:])
                kind, sc, off = kinds[rest]
            p.copy_(synth(tuple(p.shape), key(layer, kind), sc, off, p.dtype))
    return model, cfg


def timed(fn, reps):
    ts = []
    for _ in range(reps):
        torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return ts


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spec", default=os.path.join(os.path.dirname(__file__), "..", "models", "specs", "llama-3.1-8b.json"))
    ap.add_argument("--prefill", default="4096,16384,32768")
    ap.add_argument("--decode-ctx", type=int, default=4096)
    ap.add_argument("--decode-steps", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dtype", default="float16", choices=["float16", "bfloat16"])
    args = ap.parse_args()
    import transformers

    dtype = getattr(torch, args.dtype)
    model, cfg = build_model(args.spec, dtype)
    V = cfg.vocab_size
    print(f"# transformers {transformers.__version__}, torch {torch.__version__}, {torch.cuda.get_device_name()}, "
          f"{args.dtype}, attn {model.config._attn_implementation}", flush=True)
    with torch.inference_mode():
        prompt = torch.tensor([[(i * 7919 + 13) % V for i in range(32)]], device="cuda")
        out = model(input_ids=prompt, use_cache=True, logits_to_keep=1)
        cache, tok, got = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True), []
        for _ in range(8):
            top = out.logits[0, -1].float().topk(3)
            print("top3 " + " ".join(f"{int(i)}:{float(v):.4f}" for v, i in zip(top.values, top.indices)), flush=True)
            got.append(int(tok))
            out = model(input_ids=tok, past_key_values=cache, use_cache=True)
            tok = out.logits[:, -1].argmax(-1, keepdim=True)
        print("greedy " + " ".join(map(str, got)), flush=True)
        lens = [int(x) for x in args.prefill.split(",")]
        cap = max(lens + [args.decode_ctx])
        ids = torch.tensor([[(i * 104729 + 7) % V for i in range(cap)]], device="cuda")
        model(input_ids=ids[:, :2048], use_cache=True, logits_to_keep=1)  # warm-up
        for n in lens:
            ts = timed(lambda: model(input_ids=ids[:, :n], use_cache=True, logits_to_keep=1), args.reps)
            print(f"prefill {n} ms {statistics.median(ts):.2f}", flush=True)
        out = model(input_ids=ids[:, :args.decode_ctx], use_cache=True, logits_to_keep=1)
        cache, tok = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        state = {"tok": tok}

        def step():
            o = model(input_ids=state["tok"], past_key_values=cache, use_cache=True)
            state["tok"] = o.logits[:, -1].argmax(-1, keepdim=True)

        for _ in range(4):
            step()
        ts = timed(lambda: [step() for _ in range(args.decode_steps)], 1)
        print(f"decode {args.decode_ctx} ms_per_token {ts[0] / args.decode_steps:.3f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
