/* The inference engine contract: model config, weights, KV cache, run state and a backend vtable
 * (forward + KV-cache access), so the CPU reference (exec/cpu/engine_cpu.c) and a CUDA backend are
 * swapped without `if (cuda)` anywhere else. Llama-family decoder only (see exec/model_config.h).
 *
 * KV cache semantics (what WiKV's paced decoding needs):
 *   - The cache has `capacity` token slots; slot t holds the K/V of the token at absolute position t
 *     (RoPE already applied to K). Layout per layer and KV head: [token][head_dim].
 *   - Each (layer, kv_head, token) is PRESENT or ABSENT. forward() writes K/V of the chunk's tokens and
 *     marks them present in every layer/head. kv_write() stores K/V produced elsewhere (e.g. dequantized
 *     by a codec) and marks that one vector pair present; kv_set_present() flips presence of a range.
 *   - Absent vectors are treated per the cache's absent mode:
 *       WK_KV_ABSENT_MASKED: left out of attention entirely (as if the token were not in the context);
 *       WK_KV_ABSENT_ZERO:   attended to as K = 0, V = 0 (the WiKV reference's zero-filled pool).
 *   - A query at position p attends to slots [max(0, p - window + 1), p] (window = sliding_window, or
 *     all) that are present (MASKED mode) or all of them (ZERO mode). Slots above p are never seen.
 *
 * Attention-score export (input of the WiKV semantic coder and eviction selectors): for the LAST
 * `attn_rows` query rows of a forward chunk (causal), out[layer][kv_head][t] for t < pos + n_tokens =
 * sum over the query heads h of group kv_head (h / (n_heads / n_kv_heads) == kv_head, the kv-head-major
 * grouping of HF repeat_kv) of the softmax weight of slot t, averaged over the query rows.
 */
#ifndef WIKV_EXEC_ENGINE_H
#define WIKV_EXEC_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "exec/model_config.h"
#include "exec/safetensors.h"
#include "exec/sampler.h"

/* Weights of one decoder layer, fp32, row-major [out][in] as in the HF checkpoint (y = W x). */
typedef struct wk_layer_weights {
    float *attn_norm;  /* (dim) input_layernorm */
    float *wq;         /* (n_heads * head_dim, dim) */
    float *wk;         /* (n_kv_heads * head_dim, dim) */
    float *wv;         /* (n_kv_heads * head_dim, dim) */
    float *bq;         /* (n_heads * head_dim) or NULL (qkv_bias) */
    float *bk;         /* (n_kv_heads * head_dim) or NULL */
    float *bv;         /* (n_kv_heads * head_dim) or NULL */
    float *q_norm;     /* (head_dim) or NULL (qk_norm) */
    float *k_norm;     /* (head_dim) or NULL */
    float *wo;         /* (dim, n_heads * head_dim) */
    float *ffn_norm;   /* (dim) post_attention_layernorm */
    float *w_gate;     /* (hidden_dim, dim) */
    float *w_up;       /* (hidden_dim, dim) */
    float *w_down;     /* (dim, hidden_dim) */
} wk_layer_weights;

typedef struct wk_engine_weights {
    float *embed;            /* (vocab_size, dim) */
    wk_layer_weights *layers;/* [n_layers] */
    float *final_norm;       /* (dim) */
    float *lm_head;          /* (vocab_size, dim); == embed when tied */
    float *storage;          /* one allocation holding all of the above */
    size_t n_floats;
} wk_engine_weights;

typedef enum { WK_KV_ABSENT_MASKED = 0, WK_KV_ABSENT_ZERO = 1 } wk_kv_absent_mode;

/* Host-memory KV cache (the CPU backend's; a GPU backend keeps the same layout on the device). */
typedef struct wk_kv_cache {
    int n_layers, n_kv_heads, head_dim, capacity;
    wk_kv_absent_mode absent_mode;
    float *k;          /* [n_layers][n_kv_heads][capacity][head_dim], RoPE applied */
    float *v;          /* [n_layers][n_kv_heads][capacity][head_dim] */
    uint8_t *present;  /* [n_layers][n_kv_heads][capacity], 1 = present */
} wk_kv_cache;

/* Scratch of the CPU forward, sized for chunks of up to max_chunk tokens. */
typedef struct wk_run_state {
    int max_chunk;
    float *x;       /* (max_chunk, dim) residual stream */
    float *xb;      /* (max_chunk, dim) normed input */
    float *q;       /* (max_chunk, n_heads * head_dim) */
    float *k;       /* (max_chunk, n_kv_heads * head_dim) */
    float *v;       /* (max_chunk, n_kv_heads * head_dim) */
    float *att_out; /* (max_chunk, n_heads * head_dim) */
    float *hb;      /* (max_chunk, hidden_dim) gate */
    float *hb2;     /* (max_chunk, hidden_dim) up */
    float *scores;  /* (n_heads / n_kv_heads, capacity) softmax rows of one KV group */
    float *rope_inv_freq; /* (head_dim / 2) */
} wk_run_state;

typedef struct wk_forward_args {
    const int32_t *tokens; /* [n_tokens] ids, each < vocab_size */
    int n_tokens;          /* >= 1 */
    int pos;               /* absolute position (= cache slot) of tokens[0]; pos + n_tokens <= capacity */
    float *logits;         /* [logit_rows][vocab_size] for the LAST logit_rows tokens, or NULL */
    int logit_rows;        /* 0..n_tokens */
    float *attn;           /* [n_layers][n_kv_heads][attn_stride] attention export, or NULL: ADDS, for each
                              of the last attn_rows query rows of the chunk, the softmax weight of slot t
                              summed over the query heads of the group (not averaged: the caller divides
                              by the total number of rows, which may span several chunks) */
    int attn_rows;         /* 1..n_tokens when attn != NULL */
    int attn_stride;       /* >= pos + n_tokens */
} wk_forward_args;

typedef struct wk_engine wk_engine;

/* The backend: every call checks its arguments and returns 0 or a negative WK_E* code. */
typedef struct wk_engine_ops {
    const char *name;
    /* Runs the chunk, writes its K/V to slots [pos, pos + n_tokens) and marks them present. */
    int (*forward)(wk_engine *e, const wk_forward_args *a, wk_err *err);
    /* Stores k[head_dim], v[head_dim] (RoPE already applied to k) at (layer, kv_head, token), present. */
    int (*kv_write)(wk_engine *e, int layer, int kv_head, int token, const float *k, const float *v, wk_err *err);
    /* Copies the vectors at (layer, kv_head, token) into k[head_dim], v[head_dim]. */
    int (*kv_read)(wk_engine *e, int layer, int kv_head, int token, float *k, float *v, wk_err *err);
    /* Sets presence of tokens [t0, t1) in one layer (or all when layer < 0) and one KV head (or all
     * when kv_head < 0). */
    int (*kv_set_present)(wk_engine *e, int layer, int kv_head, int t0, int t1, int present, wk_err *err);
    /* Presence of one vector pair (0/1), or a negative code for bad indices. */
    int (*kv_is_present)(const wk_engine *e, int layer, int kv_head, int token);
    /* Marks everything absent and zeroes the stored vectors. */
    void (*kv_clear)(wk_engine *e);
    void (*free)(wk_engine *e);
    /* Optional (NULL: wk_engine_kv_write_rows falls back to kv_write): stores n consecutive tokens
     * t0..t0+n-1 of (layer, kv_head) from fp16 rows k[n][head_dim], v[n][head_dim], present. One
     * transfer instead of n for a GPU cache. */
    int (*kv_write_rows)(wk_engine *e, int layer, int kv_head, int t0, int n, const uint16_t *k, const uint16_t *v,
                         wk_err *err);
    /* Optional (NULL: wk_engine_kv_read_rows falls back to kv_read): copies n consecutive tokens of
     * (layer, kv_head) into fp16 rows k[n][head_dim], v[n][head_dim]. */
    int (*kv_read_rows)(wk_engine *e, int layer, int kv_head, int t0, int n, uint16_t *k, uint16_t *v, wk_err *err);
} wk_engine_ops;

typedef struct wk_engine_opts {
    int kv_capacity;                /* token slots; 0 = min(max_position_embeddings, 8192) */
    int max_chunk;                  /* largest forward chunk; 0 = 512 (longer prefills are split) */
    wk_kv_absent_mode absent_mode;
} wk_engine_opts;

struct wk_engine {
    wk_model_config cfg;
    const wk_engine_ops *ops;
    int kv_capacity;
    int max_chunk;
    wk_kv_absent_mode absent_mode;
    void *impl; /* backend state: weights, KV cache, run state */
};

/* Loads DIR/config.json and the safetensors weights (fp16/bf16/fp32, converted to fp32) into w. Errors
 * name the tensor: missing, wrong shape, unsupported dtype. */
int wk_engine_weights_load(const wk_model_config *cfg, const wk_safetensors *st, wk_engine_weights *w, wk_err *err);
void wk_engine_weights_free(wk_engine_weights *w);

/* Allocates w for the config's tensors (uninitialised, one block): what _load and _synth fill. */
int wk_engine_weights_alloc(const wk_model_config *cfg, wk_engine_weights *w, wk_err *err);

/* ---- synthetic weights (exec/cpu/synth.c; the CUDA engine's generator is exec/cuda/kernels_synth.cu)
 * Tensor `kind` of layer `layer` (-1 for model-level tensors) is filled with offset + scale * u,
 * u = (lowbias32(i + lowbias32(key)) >> 8) * 2^-23 - 1 (fp32, multiply and add rounded separately),
 * i the element index in the HF [out][in] layout, key = (layer + 1) * 16 + kind. Matrices are
 * U(-a, a), a = 1.7 / sqrt(fan_in), stored fp16; embeddings U(-1, 1) fp16; norms 1 +- 0.2 and biases
 * +- 0.2 fp32. tools/bench_transformers.py builds the same weights in PyTorch. Kinds: */
enum {
    WK_SYN_ATTN_NORM = 0, WK_SYN_Q = 1, WK_SYN_K = 2, WK_SYN_V = 3, WK_SYN_O = 4, WK_SYN_FFN_NORM = 5,
    WK_SYN_GATE = 6, WK_SYN_UP = 7, WK_SYN_DOWN = 8, WK_SYN_Q_NORM = 9, WK_SYN_K_NORM = 10,
    WK_SYN_Q_BIAS = 11, WK_SYN_K_BIAS = 12, WK_SYN_V_BIAS = 13,
    WK_SYN_EMBED = 0, WK_SYN_FINAL_NORM = 1, WK_SYN_LM_HEAD = 2 /* with layer = -1 */
};
#define WK_SYN_CPU_MAX_PARAMS 1000000000LL /* the CPU engine's fp32 copy: 4 GB */
uint32_t wk_synth_key(int layer, int kind);
/* CPU reference of the CUDA kernels: dst[i] for i < n, bit-identical to wk_cu_synth_f16 / _f32. */
void wk_synth_f16(uint16_t *dst, size_t n, uint32_t key, float scale, float offset);
void wk_synth_f32(float *dst, size_t n, uint32_t key, float scale, float offset);
/* The CUDA engine's synthetic weights of cfg as fp32 (matrices and embeddings rounded through fp16 as
 * the CUDA engine stores them). Refuses configs above WK_SYN_CPU_MAX_PARAMS. */
int wk_engine_weights_synth(const wk_model_config *cfg, wk_engine_weights *w, wk_err *err);

/* CPU reference backend (plain C, fp32). dir: an HF model directory, or "synthetic:NAME"
 * (wk_engine_weights_synth of models/specs/NAME.json, small specs only). */
int wk_engine_cpu_open(const char *dir, const wk_engine_opts *opts, wk_engine **out, wk_err *err);

/* A backend by name: "cpu" (NULL too) or "cuda" (only when built with CUDA: WK_EUNSUPPORTED
 * otherwise). src is a model directory, or "synthetic:NAME" (CUDA: any bundled spec; CPU: small ones). */
int wk_engine_open(const char *backend, const char *src, const wk_engine_opts *opts, wk_engine **out, wk_err *err);
/* 1 when this build has the backend. */
int wk_engine_backend_built(const char *backend);

/* Checks a forward's arguments against the engine (chunk size, KV capacity, logit and attention rows,
 * token ids); every backend calls it before running. */
int wk_engine_check_forward(const wk_engine *e, const wk_forward_args *a, wk_err *err);

/* Thin wrappers over e->ops. wk_engine_prefill splits tokens into max_chunk pieces, fills logits
 * [vocab] of the last token (may be NULL). */
static inline int wk_engine_forward(wk_engine *e, const wk_forward_args *a, wk_err *err) { return e->ops->forward(e, a, err); }
int wk_engine_prefill(wk_engine *e, const int32_t *tokens, int n_tokens, int pos, float *logits, wk_err *err);
/* n fp16 rows into consecutive token slots (ops->kv_write_rows, or kv_write per row). */
int wk_engine_kv_write_rows(wk_engine *e, int layer, int kv_head, int t0, int n, const uint16_t *k, const uint16_t *v,
                            wk_err *err);
/* n fp16 rows of consecutive token slots out of the cache (ops->kv_read_rows, or kv_read per row):
 * k[n][head_dim], v[n][head_dim]. */
int wk_engine_kv_read_rows(wk_engine *e, int layer, int kv_head, int t0, int n, uint16_t *k, uint16_t *v, wk_err *err);
void wk_engine_free(wk_engine *e);

/* Attention export for a prompt: prefills tokens [0, n) from position 0 and fills
 * out[n_layers][n_kv_heads][n] with the importance of each slot: the attention weight from the last
 * `rows` query rows (1 <= rows <= n, causal), summed over the query heads of the KV group and averaged
 * over the rows. */
int wk_engine_attention(wk_engine *e, const int32_t *tokens, int n, int rows, float *out, wk_err *err);

/* Prefills prompt[0..n_prompt) from position 0 (on a cleared cache) and generates up to max_new tokens
 * with sampler s, stopping after any id in stop[0..n_stop) (the stop id is included in out). Writes
 * out[0..*n_out). Needs n_prompt + max_new <= kv_capacity. */
int wk_engine_generate(wk_engine *e, const int32_t *prompt, int n_prompt, int max_new, wk_sampler *s, const int32_t *stop,
                       int n_stop, int32_t *out, int *n_out, wk_err *err);

#endif
