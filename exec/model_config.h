/* The model hyper-parameters the engines need, read from a Hugging Face config.json. Covers the
 * Llama family: Llama 2/3 (incl. "llama3" RoPE scaling), Mistral (sliding window), Qwen2/Qwen2.5
 * (q/k/v bias) and Qwen3 (per-head q/k RMSNorm). Anything else is refused with the field named. */
#ifndef WIKV_EXEC_MODEL_CONFIG_H
#define WIKV_EXEC_MODEL_CONFIG_H

#include <stddef.h>

#include "core/err.h"

typedef enum { WK_ARCH_LLAMA = 0, WK_ARCH_MISTRAL, WK_ARCH_QWEN2, WK_ARCH_QWEN3 } wk_arch;

typedef enum {
    WK_ROPE_DEFAULT = 0, /* inv_freq[i] = theta^(-2i/head_dim) */
    WK_ROPE_LINEAR,      /* inv_freq / factor */
    WK_ROPE_LLAMA3       /* Llama 3.1 band-wise scaling (factor, low/high_freq_factor, original ctx) */
} wk_rope_type;

#define WK_MAX_EOS 8

typedef struct wk_model_config {
    wk_arch arch;
    int dim;               /* hidden_size */
    int hidden_dim;        /* intermediate_size (MLP) */
    int n_layers;          /* num_hidden_layers */
    int n_heads;           /* num_attention_heads */
    int n_kv_heads;        /* num_key_value_heads (GQA: n_heads % n_kv_heads == 0) */
    int head_dim;          /* head_dim, default dim / n_heads */
    int vocab_size;
    int max_pos;           /* max_position_embeddings */
    int sliding_window;    /* 0 = none (Mistral v0.1 uses 4096) */
    float rope_theta;
    float norm_eps;        /* rms_norm_eps */
    wk_rope_type rope_type;
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_orig_max_pos; /* original_max_position_embeddings (llama3 scaling) */
    int qkv_bias;          /* 1: q/k/v projections have biases (Qwen2, or attention_bias) */
    int qk_norm;           /* 1: RMSNorm over head_dim on q and k before RoPE (Qwen3) */
    int tie_embeddings;    /* 1: lm_head shares embed_tokens */
    int bos_token_id;      /* -1 when absent */
    int n_eos;
    int eos_token_ids[WK_MAX_EOS];
    char arch_name[64];    /* architectures[0] as written */
} wk_model_config;

/* Parses config.json text; `what` names the source in errors. */
int wk_model_config_parse(const char *text, size_t len, const char *what, wk_model_config *cfg, wk_err *err);
/* Reads DIR/config.json. */
int wk_model_config_load_dir(const char *dir, wk_model_config *cfg, wk_err *err);
/* "synthetic:NAME" (or NAME): models/specs/NAME.json, a config.json with a real model's shape, for
 * engines that generate deterministic weights of that shape (wk_engine_weights_synth, the CUDA
 * engine's synthetic:NAME). Unknown names are refused with the bundled list. */
int wk_model_config_load_synthetic(const char *src, wk_model_config *cfg, wk_err *err);
/* RoPE inverse frequencies inv_freq[head_dim / 2] with the config's scaling (none, linear, llama3),
 * shared by every engine backend so they rotate identically. */
void wk_model_config_rope_inv_freq(const wk_model_config *c, float *inv_freq);
/* Number of parameters the config implies (embeddings counted once when tied). */
long long wk_model_config_n_params(const wk_model_config *cfg);

#endif
