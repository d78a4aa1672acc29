/* CUDA backend of exec/engine.h. The layer loop mirrors the CPU reference (exec/cpu/engine_cpu.c):
 *   x (fp32 residual) -> RMSNorm -> fused QKV GEMM -> bias/q-k norm/RoPE + KV store -> attention
 *   -> O GEMM added into x -> RMSNorm -> fused gate/up GEMM -> SwiGLU -> down GEMM added into x.
 * Weights and KV cache are fp16 on the device; GEMMs go through cuBLAS with fp32 accumulation; the
 * residual adds are the GEMMs' beta = 1. Absent cache slots follow the contract in both attention
 * kernels (flash prefill for chunks, split-sequence decode for single tokens). */
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "core/half.h"
#include "models/model_spec.h"
}
#include "exec/cuda/engine_cuda.h"
#include "exec/cuda/kernels.cuh"

/* Chunks of more rows than this use the flash prefill kernel (when head_dim allows). */
#define FLASH_MIN_ROWS 8
/* Rows per launch of the decode kernel when it serves a chunk (head_dim without a flash kernel). */
#define DECODE_ROW_BATCH 16
/* Grid cap of the decode matrix-vector kernel, in blocks per SM: only the LM head (16K blocks of 8
 * rows) is capped, so that its input norm is not recomputed 16K times. */
#define GEMV_BLOCKS_PER_SM 16

#define CK(call)                                                                                                       \
    do {                                                                                                               \
        cudaError_t ce_ = (call);                                                                                      \
        if (ce_ != cudaSuccess)                                                                                        \
            return wk_err_set(err, WK_EIO, "cuda engine: %s: %s (%s:%d)", #call, cudaGetErrorString(ce_), __FILE__,   \
                              __LINE__);                                                                               \
    } while (0)

typedef struct {
    float *attn_norm, *ffn_norm; /* (dim) */
    float *bqkv;                 /* (qd + 2 kd) or NULL */
    float *q_norm, *k_norm;      /* (hd) or NULL */
    __half *wqkv;                /* (qd + 2 kd, dim): q_proj rows, then k_proj, then v_proj */
    __half *wo;                  /* (dim, qd) */
    __half *wgu;                 /* (2 hidden, dim): gate_proj rows, then up_proj */
    __half *wdown;               /* (dim, hidden) */
} cu_layer;

typedef struct {
    cudaStream_t stream;
    cublasHandle_t blas;
    int n_sm;
    int use_gemv;       /* 1: single-token steps use the fused matrix-vector kernels */
    int gemv_early;     /* 1: matrix-vector kernels start their weight stream before the previous kernel ends */
    int simt_decode;    /* 1: decode attention on the CUDA cores only (WIKV_CUDA_ATTN_SIMT, for comparison) */
    int prefill_kernel; /* WK_CU_PREFILL_*: flash prefill kernel (WIKV_CUDA_ATTN_PREFILL=auto|mma|pipe|pairs) */
    int rope_in_gemv;   /* 1: decode RoPE + KV store in the QKV product (0: WIKV_CUDA_ROPE_KERNEL, the separate kernel) */
    int max_splits;     /* > 0: at most this many decode-attention splits (WIKV_CUDA_ATTN_SPLITS, for tests) */
    char device[320];
    cu_layer *layers;   /* [n_layers] */
    __half *embed;      /* (vocab, dim) */
    __half *lm_head;    /* (vocab, dim); == embed when tied */
    float *final_norm;  /* (dim) */
    float *inv_freq;    /* (hd / 2) */
    __half *wh;         /* one allocation: every fp16 weight */
    float *wf;          /* one allocation: every fp32 weight (norms, biases, inv_freq) */
    __half *k, *v;      /* [n_layers][n_kv][cap][hd] */
    uint8_t *present;   /* [n_layers][n_kv][cap] */
    float *x;           /* (mc, dim) residual */
    __half *xb;         /* (mc, dim) normed */
    __half *qkv;        /* (mc, qd + 2 kd) */
    __half *q;          /* (mc, qd) roped queries */
    __half *att;        /* (mc, qd) attention output */
    __half *gu;         /* (mc, 2 hidden) */
    __half *hb;         /* (mc, hidden) */
    int32_t *tokens;    /* (mc) */
    int32_t *next;      /* (1) greedy choice (argmax kernel) */
    unsigned long long *amax; /* (1) greedy choice as the LM-head matrix-vector kernel's argmax key */
    float *logits;      /* (logit_cap, vocab) */
    int logit_cap;
    float *part;        /* decode partials, part_cap floats */
    size_t part_cap;
    float *attn;        /* export [n_layers][n_kv][attn_stride] */
    size_t attn_cap;
    float *attn_host;   /* host copy of the export, attn_cap floats */
} cu_impl;

static cu_impl *impl_of(const wk_engine *e) { return (cu_impl *)e->impl; }

static int dalloc(void **p, size_t bytes, const char *what, wk_err *err) {
    cudaError_t ce = cudaMalloc(p, bytes ? bytes : 1);
    if (ce != cudaSuccess) {
        *p = NULL;
        return wk_err_set(err, WK_ENOMEM, "cuda engine: cannot allocate %zu MiB for %s: %s", bytes >> 20, what,
                          cudaGetErrorString(ce));
    }
    return 0;
}

/* ---- weights ----------------------------------------------------------------------------------- */

static size_t layer_halves(const wk_model_config *c) {
    size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim;
    return (qd + 2 * kd) * c->dim + (size_t)c->dim * qd + 3 * (size_t)c->hidden_dim * c->dim;
}

static size_t layer_floats(const wk_model_config *c) {
    size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim;
    return 2 * (size_t)c->dim + (c->qkv_bias ? qd + 2 * kd : 0) + (c->qk_norm ? 2 * (size_t)c->head_dim : 0);
}

/* Carves the two weight allocations into named tensors. */
static int alloc_weights(wk_engine *e, wk_err *err) {
    cu_impl *im = impl_of(e);
    const wk_model_config *c = &e->cfg;
    size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim, vd = (size_t)c->vocab_size * c->dim;
    size_t nh = c->n_layers * layer_halves(c) + vd * (c->tie_embeddings ? 1 : 2);
    size_t nf = c->n_layers * layer_floats(c) + c->dim + c->head_dim / 2;
    im->layers = (cu_layer *)calloc((size_t)c->n_layers, sizeof *im->layers);
    if (!im->layers) return wk_err_set(err, WK_ENOMEM, "cuda engine: out of memory");
    if (dalloc((void **)&im->wh, nh * sizeof(__half), "fp16 weights", err) || dalloc((void **)&im->wf, nf * sizeof(float), "fp32 weights", err))
        return err->code;
    __half *h = im->wh;
    float *f = im->wf;
    im->embed = h, h += vd;
    im->lm_head = c->tie_embeddings ? im->embed : h;
    if (!c->tie_embeddings) h += vd;
    im->final_norm = f, f += c->dim;
    im->inv_freq = f, f += c->head_dim / 2;
    for (int l = 0; l < c->n_layers; l++) {
        cu_layer *L = &im->layers[l];
        L->wqkv = h, h += (qd + 2 * kd) * c->dim;
        L->wo = h, h += (size_t)c->dim * qd;
        L->wgu = h, h += 2 * (size_t)c->hidden_dim * c->dim;
        L->wdown = h, h += (size_t)c->dim * c->hidden_dim;
        L->attn_norm = f, f += c->dim;
        L->ffn_norm = f, f += c->dim;
        if (c->qkv_bias) L->bqkv = f, f += qd + 2 * kd;
        if (c->qk_norm) {
            L->q_norm = f, f += c->head_dim;
            L->k_norm = f, f += c->head_dim;
        }
    }
    return 0;
}


static uint32_t syn_key(int layer, int kind) { return (uint32_t)((layer + 1) * 16 + kind); }

/* Fills every weight with the counter-based hash (see engine_cuda.h). Scales keep activations O(1):
 * matrices U(-a, a), a = 1.7 / sqrt(fan_in); norms 1 +- 0.2; biases +- 0.2; embeddings U(-1, 1). */
static int synth_weights(wk_engine *e, wk_err *err) {
    cu_impl *im = impl_of(e);
    const wk_model_config *c = &e->cfg;
    cudaStream_t s = im->stream;
    size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim, d = c->dim, hid = c->hidden_dim;
    float a_d = 1.7f / sqrtf((float)d), a_q = 1.7f / sqrtf((float)qd), a_h = 1.7f / sqrtf((float)hid);
    wk_cu_synth_f16(im->embed, (size_t)c->vocab_size * d, syn_key(-1, WK_SYN_EMBED), 1.0f, 0.0f, s);
    if (!c->tie_embeddings) wk_cu_synth_f16(im->lm_head, (size_t)c->vocab_size * d, syn_key(-1, WK_SYN_LM_HEAD), a_d, 0.0f, s);
    wk_cu_synth_f32(im->final_norm, d, syn_key(-1, WK_SYN_FINAL_NORM), 0.2f, 1.0f, s);
    for (int l = 0; l < c->n_layers; l++) {
        cu_layer *L = &im->layers[l];
        wk_cu_synth_f16(L->wqkv, qd * d, syn_key(l, WK_SYN_Q), a_d, 0.0f, s);
        wk_cu_synth_f16(L->wqkv + qd * d, kd * d, syn_key(l, WK_SYN_K), a_d, 0.0f, s);
        wk_cu_synth_f16(L->wqkv + (qd + kd) * d, kd * d, syn_key(l, WK_SYN_V), a_d, 0.0f, s);
        wk_cu_synth_f16(L->wo, d * qd, syn_key(l, WK_SYN_O), a_q, 0.0f, s);
        wk_cu_synth_f16(L->wgu, hid * d, syn_key(l, WK_SYN_GATE), a_d, 0.0f, s);
        wk_cu_synth_f16(L->wgu + hid * d, hid * d, syn_key(l, WK_SYN_UP), a_d, 0.0f, s);
        wk_cu_synth_f16(L->wdown, d * hid, syn_key(l, WK_SYN_DOWN), a_h, 0.0f, s);
        wk_cu_synth_f32(L->attn_norm, d, syn_key(l, WK_SYN_ATTN_NORM), 0.2f, 1.0f, s);
        wk_cu_synth_f32(L->ffn_norm, d, syn_key(l, WK_SYN_FFN_NORM), 0.2f, 1.0f, s);
        if (L->bqkv) {
            wk_cu_synth_f32(L->bqkv, qd, syn_key(l, WK_SYN_Q_BIAS), 0.2f, 0.0f, s);
            wk_cu_synth_f32(L->bqkv + qd, kd, syn_key(l, WK_SYN_K_BIAS), 0.2f, 0.0f, s);
            wk_cu_synth_f32(L->bqkv + qd + kd, kd, syn_key(l, WK_SYN_V_BIAS), 0.2f, 0.0f, s);
        }
        if (L->q_norm) {
            wk_cu_synth_f32(L->q_norm, c->head_dim, syn_key(l, WK_SYN_Q_NORM), 0.2f, 1.0f, s);
            wk_cu_synth_f32(L->k_norm, c->head_dim, syn_key(l, WK_SYN_K_NORM), 0.2f, 1.0f, s);
        }
    }
    CK(cudaGetLastError());
    return 0;
}

/* Uploads fp32 host tensor src (n) into fp16 dst through the staging buffer. */
static int upload_f16(cu_impl *im, __half *dst, const float *src, size_t n, float *stage, wk_err *err) {
    CK(cudaMemcpyAsync(stage, src, n * sizeof(float), cudaMemcpyHostToDevice, im->stream));
    wk_cu_f32_to_f16(dst, stage, n, im->stream);
    CK(cudaGetLastError());
    CK(cudaStreamSynchronize(im->stream)); /* stage is reused by the next tensor */
    return 0;
}

static int upload_f32(cu_impl *im, float *dst, const float *src, size_t n, wk_err *err) {
    CK(cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyHostToDevice));
    (void)im;
    return 0;
}

/* Loads the HF checkpoint through the fp32 CPU loader, then converts tensor by tensor. */
static int load_weights(wk_engine *e, const char *dir, wk_err *err) {
    cu_impl *im = impl_of(e);
    const wk_model_config *c = &e->cfg;
    size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim, d = c->dim, hid = c->hidden_dim;
    wk_safetensors st;
    wk_engine_weights w;
    if (wk_st_open_dir(dir, &st, err)) return err->code;
    int rc = wk_engine_weights_load(c, &st, &w, err);
    wk_st_close(&st);
    if (rc) return rc;
    size_t big = (size_t)c->vocab_size * d;
    if (hid * d > big) big = hid * d;
    if ((qd + kd) * d > big) big = (qd + kd) * d;
    float *stage = NULL;
    rc = dalloc((void **)&stage, big * sizeof(float), "staging", err);
    rc = rc ? rc : upload_f16(im, im->embed, w.embed, (size_t)c->vocab_size * d, stage, err);
    if (!rc && !c->tie_embeddings) rc = upload_f16(im, im->lm_head, w.lm_head, (size_t)c->vocab_size * d, stage, err);
    rc = rc ? rc : upload_f32(im, im->final_norm, w.final_norm, d, err);
    for (int l = 0; l < c->n_layers && !rc; l++) {
        const wk_layer_weights *S = &w.layers[l];
        cu_layer *L = &im->layers[l];
        rc = upload_f16(im, L->wqkv, S->wq, qd * d, stage, err);
        rc = rc ? rc : upload_f16(im, L->wqkv + qd * d, S->wk, kd * d, stage, err);
        rc = rc ? rc : upload_f16(im, L->wqkv + (qd + kd) * d, S->wv, kd * d, stage, err);
        rc = rc ? rc : upload_f16(im, L->wo, S->wo, d * qd, stage, err);
        rc = rc ? rc : upload_f16(im, L->wgu, S->w_gate, hid * d, stage, err);
        rc = rc ? rc : upload_f16(im, L->wgu + hid * d, S->w_up, hid * d, stage, err);
        rc = rc ? rc : upload_f16(im, L->wdown, S->w_down, d * hid, stage, err);
        rc = rc ? rc : upload_f32(im, L->attn_norm, S->attn_norm, d, err);
        rc = rc ? rc : upload_f32(im, L->ffn_norm, S->ffn_norm, d, err);
        if (!rc && L->bqkv) {
            rc = upload_f32(im, L->bqkv, S->bq, qd, err);
            rc = rc ? rc : upload_f32(im, L->bqkv + qd, S->bk, kd, err);
            rc = rc ? rc : upload_f32(im, L->bqkv + qd + kd, S->bv, kd, err);
        }
        if (!rc && L->q_norm) {
            rc = upload_f32(im, L->q_norm, S->q_norm, c->head_dim, err);
            rc = rc ? rc : upload_f32(im, L->k_norm, S->k_norm, c->head_dim, err);
        }
    }
    cudaFree(stage);
    wk_engine_weights_free(&w);
    return rc;
}

/* ---- KV cache ---------------------------------------------------------------------------------- */

static size_t slot_index(const wk_engine *e, int layer, int head, int token) {
    return ((size_t)layer * e->cfg.n_kv_heads + head) * e->kv_capacity + token;
}

static int slot_check(const wk_engine *e, int layer, int head, int token, wk_err *err) {
    if (layer < 0 || layer >= e->cfg.n_layers || head < 0 || head >= e->cfg.n_kv_heads || token < 0 || token >= e->kv_capacity)
        return wk_err_set(err, WK_EINVAL, "kv: (layer %d, kv_head %d, token %d) outside [%d, %d, %d]", layer, head, token,
                          e->cfg.n_layers, e->cfg.n_kv_heads, e->kv_capacity);
    return 0;
}

static int cu_kv_write(wk_engine *e, int layer, int head, int token, const float *k, const float *v, wk_err *err) {
    if (slot_check(e, layer, head, token, err)) return err->code;
    cu_impl *im = impl_of(e);
    int hd = e->cfg.head_dim;
    uint16_t kh[256], vh[256];
    for (int i = 0; i < hd; i++) {
        kh[i] = wk_float_to_half(k[i]);
        vh[i] = wk_float_to_half(v[i]);
    }
    size_t i = slot_index(e, layer, head, token);
    /* Pageable copies are staged before the call returns, so the stack buffers may go. */
    CK(cudaMemcpyAsync(im->k + i * hd, kh, hd * sizeof(uint16_t), cudaMemcpyHostToDevice, im->stream));
    CK(cudaMemcpyAsync(im->v + i * hd, vh, hd * sizeof(uint16_t), cudaMemcpyHostToDevice, im->stream));
    CK(cudaMemsetAsync(im->present + i, 1, 1, im->stream));
    return 0;
}

/* n fp16 rows straight into the fp16 cache: one copy each for K and V, one memset of the presence. */
static int cu_kv_write_rows(wk_engine *e, int layer, int head, int t0, int n, const uint16_t *k, const uint16_t *v,
                            wk_err *err) {
    if (n <= 0) return 0;
    if (slot_check(e, layer, head, t0, err) || slot_check(e, layer, head, t0 + n - 1, err)) return err->code;
    cu_impl *im = impl_of(e);
    size_t hd = (size_t)e->cfg.head_dim, i = slot_index(e, layer, head, t0);
    /* pageable source: staged before the call returns, as in cu_kv_write */
    CK(cudaMemcpyAsync(im->k + i * hd, k, (size_t)n * hd * sizeof(uint16_t), cudaMemcpyHostToDevice, im->stream));
    CK(cudaMemcpyAsync(im->v + i * hd, v, (size_t)n * hd * sizeof(uint16_t), cudaMemcpyHostToDevice, im->stream));
    CK(cudaMemsetAsync(im->present + i, 1, (size_t)n, im->stream));
    return 0;
}

/* n fp16 rows straight out of the fp16 cache: one copy each for K and V. */
static int cu_kv_read_rows(wk_engine *e, int layer, int head, int t0, int n, uint16_t *k, uint16_t *v, wk_err *err) {
    if (n <= 0) return 0;
    if (slot_check(e, layer, head, t0, err) || slot_check(e, layer, head, t0 + n - 1, err)) return err->code;
    cu_impl *im = impl_of(e);
    size_t hd = (size_t)e->cfg.head_dim, i = slot_index(e, layer, head, t0);
    CK(cudaMemcpyAsync(k, im->k + i * hd, (size_t)n * hd * sizeof(uint16_t), cudaMemcpyDeviceToHost, im->stream));
    CK(cudaMemcpyAsync(v, im->v + i * hd, (size_t)n * hd * sizeof(uint16_t), cudaMemcpyDeviceToHost, im->stream));
    CK(cudaStreamSynchronize(im->stream));
    return 0;
}

static int cu_kv_read(wk_engine *e, int layer, int head, int token, float *k, float *v, wk_err *err) {
    if (slot_check(e, layer, head, token, err)) return err->code;
    cu_impl *im = impl_of(e);
    int hd = e->cfg.head_dim;
    uint16_t kh[256], vh[256];
    size_t i = slot_index(e, layer, head, token);
    CK(cudaMemcpyAsync(kh, im->k + i * hd, hd * sizeof(uint16_t), cudaMemcpyDeviceToHost, im->stream));
    CK(cudaMemcpyAsync(vh, im->v + i * hd, hd * sizeof(uint16_t), cudaMemcpyDeviceToHost, im->stream));
    CK(cudaStreamSynchronize(im->stream));
    for (int j = 0; j < hd; j++) {
        k[j] = wk_half_to_float(kh[j]);
        v[j] = wk_half_to_float(vh[j]);
    }
    return 0;
}

static int cu_kv_set_present(wk_engine *e, int layer, int head, int t0, int t1, int present, wk_err *err) {
    if (layer >= e->cfg.n_layers || head >= e->cfg.n_kv_heads || t0 < 0 || t1 < t0 || t1 > e->kv_capacity)
        return wk_err_set(err, WK_EINVAL, "kv: set_present(layer %d, kv_head %d, [%d, %d)) out of range", layer, head, t0, t1);
    if (t1 == t0) return 0;
    cu_impl *im = impl_of(e);
    int l0 = layer < 0 ? 0 : layer, l1 = layer < 0 ? e->cfg.n_layers : layer + 1;
    int h0 = head < 0 ? 0 : head, h1 = head < 0 ? e->cfg.n_kv_heads : head + 1;
    for (int l = l0; l < l1; l++)
        for (int h = h0; h < h1; h++)
            CK(cudaMemsetAsync(im->present + slot_index(e, l, h, t0), present ? 1 : 0, (size_t)(t1 - t0), im->stream));
    return 0;
}

static int cu_kv_is_present(const wk_engine *e, int layer, int head, int token) {
    if (slot_check(e, layer, head, token, NULL)) return WK_EINVAL;
    cu_impl *im = impl_of(e);
    uint8_t b = 0;
    if (cudaMemcpyAsync(&b, im->present + slot_index(e, layer, head, token), 1, cudaMemcpyDeviceToHost, im->stream) != cudaSuccess ||
        cudaStreamSynchronize(im->stream) != cudaSuccess)
        return WK_EIO;
    return b;
}

static void cu_kv_clear(wk_engine *e) {
    cu_impl *im = impl_of(e);
    size_t slots = (size_t)e->cfg.n_layers * e->cfg.n_kv_heads * e->kv_capacity;
    cudaMemsetAsync(im->present, 0, slots, im->stream);
    cudaMemsetAsync(im->k, 0, slots * e->cfg.head_dim * sizeof(__half), im->stream);
    cudaMemsetAsync(im->v, 0, slots * e->cfg.head_dim * sizeof(__half), im->stream);
}

/* ---- forward ----------------------------------------------------------------------------------- */

/* y (n, out) = x (n, in) . W^T (+ beta * y), W (out, in) row-major fp16: in cuBLAS's column-major
 * view W is (in, out), so y^T = op_T(W) x^T. y is fp16 (ytype CUDA_R_16F) or fp32. */
static int gemm(cu_impl *im, void *y, cudaDataType ytype, const __half *w, const __half *x, int n, int in, int out, float beta,
                wk_err *err) {
    float alpha = 1.0f;
    cublasStatus_t st = cublasGemmEx(im->blas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &alpha, w, CUDA_R_16F, in, x, CUDA_R_16F, in,
                                     &beta, y, ytype, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS)
        return wk_err_set(err, WK_EIO, "cuda engine: cublasGemmEx (%d x %d x %d) failed: status %d", out, n, in, (int)st);
    return 0;
}

/* Attention of layer l for the chunk: flash kernel for chunks, split decode for a few rows (or for
 * head sizes without a flash kernel, DECODE_ROW_BATCH rows per launch). */
static int attention(wk_engine *e, int l, int pos, int n, wk_err *err) {
    cu_impl *im = impl_of(e);
    const wk_model_config *c = &e->cfg;
    size_t off = (size_t)l * c->n_kv_heads * e->kv_capacity;
    wk_cu_attn_args a = {im->q, im->att, im->k + off * c->head_dim, im->v + off * c->head_dim, im->present + off,
                         n, pos, c->n_heads, c->n_kv_heads, c->head_dim, e->kv_capacity, c->sliding_window,
                         e->absent_mode == WK_KV_ABSENT_ZERO, im->simt_decode, im->prefill_kernel};
    if (n > FLASH_MIN_ROWS && wk_cu_attn_prefill_supported(c->head_dim)) {
        wk_cu_attn_prefill(&a, im->stream);
        CK(cudaGetLastError());
        return 0;
    }
    size_t qd = (size_t)c->n_heads * c->head_dim;
    for (int r0 = 0; r0 < n; r0 += DECODE_ROW_BATCH) {
        wk_cu_attn_args b = a;
        b.n_rows = n - r0 < DECODE_ROW_BATCH ? n - r0 : DECODE_ROW_BATCH;
        b.pos0 = pos + r0;
        b.q = im->q + r0 * qd;
        b.out = im->att + r0 * qd;
        int splits = wk_cu_attn_decode_splits(&b, im->n_sm);
        if (im->max_splits > 0 && splits > im->max_splits) splits = im->max_splits;
        if (wk_cu_attn_decode_part_floats(&b, splits) > im->part_cap)
            return wk_err_set(err, WK_ESTATE, "cuda engine: decode partial buffer too small");
        wk_cu_attn_decode(&b, im->part, splits, im->stream);
        CK(cudaGetLastError());
    }
    return 0;
}

/* RoPE + KV store of the chunk's q/k/v (in im->qkv; skipped when `roped`: the QKV product did it),
 * attention, and the export when asked. */
static int attn_block(wk_engine *e, int l, const cu_layer *L, const wk_forward_args *fa, int roped, wk_err *err) {
    cu_impl *im = impl_of(e);
    const wk_model_config *c = &e->cfg;
    int n = fa->n_tokens, hd = c->head_dim;
    size_t off = (size_t)l * c->n_kv_heads * e->kv_capacity;
    if (!roped) {
        wk_cu_rope_args ra = {im->qkv, L->bqkv, L->q_norm, L->k_norm, im->inv_freq, im->q, im->k + off * hd, im->v + off * hd,
                              im->present + off, n, fa->pos, c->n_heads, c->n_kv_heads, hd, e->kv_capacity, c->norm_eps};
        wk_cu_rope_store(&ra, im->stream);
        CK(cudaGetLastError());
    }
    if (attention(e, l, fa->pos, n, err)) return err->code;
    if (fa->attn) {
        wk_cu_attn_args a = {im->q, im->att, im->k + off * hd, im->v + off * hd, im->present + off, n, fa->pos, c->n_heads,
                             c->n_kv_heads, hd, e->kv_capacity, c->sliding_window, e->absent_mode == WK_KV_ABSENT_ZERO,
                             im->simt_decode, im->prefill_kernel};
        wk_cu_attn_export(&a, n - fa->attn_rows, im->attn + (size_t)l * c->n_kv_heads * fa->attn_stride, fa->attn_stride,
                          im->stream);
        CK(cudaGetLastError());
    }
    return 0;
}

/* Chunk of several tokens: cuBLAS GEMMs between the norm / SwiGLU kernels. */
static int layer_forward(wk_engine *e, int l, const wk_forward_args *fa, wk_err *err) {
    cu_impl *im = impl_of(e);
    const wk_model_config *c = &e->cfg;
    const cu_layer *L = &im->layers[l];
    int n = fa->n_tokens, hd = c->head_dim, qd = c->n_heads * hd, kd = c->n_kv_heads * hd;
    wk_cu_rmsnorm(im->xb, im->x, L->attn_norm, n, c->dim, c->norm_eps, im->stream);
    if (gemm(im, im->qkv, CUDA_R_16F, L->wqkv, im->xb, n, c->dim, qd + 2 * kd, 0.0f, err)) return err->code;
    if (attn_block(e, l, L, fa, 0, err)) return err->code;
    if (gemm(im, im->x, CUDA_R_32F, L->wo, im->att, n, qd, c->dim, 1.0f, err)) return err->code;
    wk_cu_rmsnorm(im->xb, im->x, L->ffn_norm, n, c->dim, c->norm_eps, im->stream);
    if (gemm(im, im->gu, CUDA_R_16F, L->wgu, im->xb, n, c->dim, 2 * c->hidden_dim, 0.0f, err)) return err->code;
    wk_cu_swiglu(im->hb, im->gu, n, c->hidden_dim, im->stream);
    CK(cudaGetLastError());
    return gemm(im, im->x, CUDA_R_32F, L->wdown, im->hb, n, c->hidden_dim, c->dim, 1.0f, err);
}

/* Decode matrix-vector arguments: W (out, in), output y; input, norm and argmax left unset. */
static wk_cu_gemv_args gemv_args(const cu_impl *im, const wk_model_config *c, const __half *w, int in, int out, int mode, void *y) {
    wk_cu_gemv_args g;
    memset(&g, 0, sizeof g);
    g.w = w;
    g.y = y;
    g.in = in;
    g.out = out;
    g.mode = mode;
    g.eps = c->norm_eps;
    g.max_blocks = GEMV_BLOCKS_PER_SM * im->n_sm;
    g.early = im->gemv_early;
    return g;
}

/* One token: fused matrix-vector kernels (norm folded into the input, RoPE + KV store, SwiGLU and
 * the residual add into the output), so the step is bound by streaming the weights once. */
static int layer_decode(wk_engine *e, int l, const wk_forward_args *fa, wk_err *err) {
    cu_impl *im = impl_of(e);
    const wk_model_config *c = &e->cfg;
    const cu_layer *L = &im->layers[l];
    int hd = c->head_dim, qd = c->n_heads * hd, kd = c->n_kv_heads * hd;
    /* RoPE in the QKV product unless a bias or q/k norm must come first (the RoPE kernel does those). */
    int roped = im->rope_in_gemv && !L->bqkv && !L->q_norm;
    wk_cu_gemv_args g = gemv_args(im, c, L->wqkv, c->dim, qd + 2 * kd, roped ? WK_GEMV_ROPE : WK_GEMV_F16, im->qkv);
    g.x = im->x;
    g.norm_w = L->attn_norm;
    if (roped) {
        size_t off = (size_t)l * c->n_kv_heads * e->kv_capacity;
        g.inv_freq = im->inv_freq;
        g.q_out = im->q;
        g.k_cache = im->k + off * hd;
        g.v_cache = im->v + off * hd;
        g.present = im->present + off;
        g.pos = fa->pos;
        g.n_heads = c->n_heads;
        g.n_kv = c->n_kv_heads;
        g.hd = hd;
        g.cap = e->kv_capacity;
    }
    wk_cu_gemv(&g, im->stream);
    CK(cudaGetLastError());
    if (attn_block(e, l, L, fa, roped, err)) return err->code;
    wk_cu_gemv_args o = gemv_args(im, c, L->wo, qd, c->dim, WK_GEMV_ADD_F32, im->x);
    o.xh = im->att;
    wk_cu_gemv(&o, im->stream);
    wk_cu_gemv_args gu = gemv_args(im, c, L->wgu, c->dim, c->hidden_dim, WK_GEMV_SWIGLU, im->hb);
    gu.x = im->x;
    gu.norm_w = L->ffn_norm;
    wk_cu_gemv(&gu, im->stream);
    wk_cu_gemv_args d = gemv_args(im, c, L->wdown, c->hidden_dim, c->dim, WK_GEMV_ADD_F32, im->x);
    d.xh = im->hb;
    wk_cu_gemv(&d, im->stream);
    CK(cudaGetLastError());
    return 0;
}

static int ensure_logits(wk_engine *e, int rows, wk_err *err) {
    cu_impl *im = impl_of(e);
    if (rows <= im->logit_cap) return 0;
    cudaFree(im->logits);
    im->logits = NULL;
    im->logit_cap = 0;
    if (dalloc((void **)&im->logits, (size_t)rows * e->cfg.vocab_size * sizeof(float), "logits", err)) return err->code;
    im->logit_cap = rows;
    return 0;
}

static int ensure_attn(wk_engine *e, int stride, wk_err *err) {
    cu_impl *im = impl_of(e);
    size_t need = (size_t)e->cfg.n_layers * e->cfg.n_kv_heads * stride;
    if (need <= im->attn_cap) return 0;
    cudaFree(im->attn);
    free(im->attn_host);
    im->attn = NULL;
    im->attn_cap = 0;
    im->attn_host = (float *)malloc(need * sizeof(float));
    if (!im->attn_host) return wk_err_set(err, WK_ENOMEM, "cuda engine: out of memory (attention export)");
    if (dalloc((void **)&im->attn, need * sizeof(float), "attention export", err)) return err->code;
    im->attn_cap = need;
    return 0;
}

/* The whole chunk; logits of the last logit_rows rows stay on the device in im->logits. amax: when
 * the LM head runs as a matrix-vector kernel, it also leaves the argmax key there (else NULL). */
static int run_chunk(wk_engine *e, const wk_forward_args *a, int logit_rows, unsigned long long *amax, wk_err *err) {
    if (wk_engine_check_forward(e, a, err)) return err->code;
    cu_impl *im = impl_of(e);
    const wk_model_config *c = &e->cfg;
    int n = a->n_tokens;
    size_t attn_n = (size_t)c->n_layers * c->n_kv_heads * a->attn_stride;
    if (a->attn && ensure_attn(e, a->attn_stride, err)) return err->code;
    if (logit_rows > 0 && ensure_logits(e, logit_rows, err)) return err->code;
    if (a->attn) CK(cudaMemsetAsync(im->attn, 0, attn_n * sizeof(float), im->stream));
    CK(cudaMemcpyAsync(im->tokens, a->tokens, (size_t)n * sizeof(int32_t), cudaMemcpyHostToDevice, im->stream));
    wk_cu_embed(im->x, im->embed, im->tokens, n, c->dim, im->stream);
    CK(cudaGetLastError());
    for (int l = 0; l < c->n_layers; l++)
        if ((n == 1 && im->use_gemv ? layer_decode(e, l, a, err) : layer_forward(e, l, a, err))) return err->code;
    if (logit_rows == 1 && im->use_gemv) {
        wk_cu_gemv_args g = gemv_args(im, c, im->lm_head, c->dim, c->vocab_size, WK_GEMV_F32, im->logits);
        g.x = im->x + (size_t)(n - 1) * c->dim;
        g.norm_w = im->final_norm;
        g.amax = amax;
        wk_cu_gemv(&g, im->stream);
        CK(cudaGetLastError());
    } else if (logit_rows > 0) {
        wk_cu_rmsnorm(im->xb, im->x + (size_t)(n - logit_rows) * c->dim, im->final_norm, logit_rows, c->dim, c->norm_eps, im->stream);
        CK(cudaGetLastError());
        if (gemm(im, im->logits, CUDA_R_32F, im->lm_head, im->xb, logit_rows, c->dim, c->vocab_size, 0.0f, err)) return err->code;
    }
    if (a->attn) {
        CK(cudaMemcpyAsync(im->attn_host, im->attn, attn_n * sizeof(float), cudaMemcpyDeviceToHost, im->stream));
        CK(cudaStreamSynchronize(im->stream));
        for (size_t i = 0; i < attn_n; i++) a->attn[i] += im->attn_host[i];
    }
    return 0;
}

static int cu_forward(wk_engine *e, const wk_forward_args *a, wk_err *err) {
    if (run_chunk(e, a, a->logit_rows, NULL, err)) return err->code;
    if (a->logit_rows > 0) {
        cu_impl *im = impl_of(e);
        size_t bytes = (size_t)a->logit_rows * e->cfg.vocab_size * sizeof(float);
        CK(cudaMemcpyAsync(a->logits, im->logits, bytes, cudaMemcpyDeviceToHost, im->stream));
        CK(cudaStreamSynchronize(im->stream));
    }
    return 0;
}

int wk_engine_cuda_step_greedy(wk_engine *e, int32_t token, int pos, int32_t *next, wk_err *err) {
    if (!e || e->ops->forward != cu_forward) return wk_err_set(err, WK_EINVAL, "step_greedy: not a CUDA engine");
    cu_impl *im = impl_of(e);
    wk_forward_args a = {&token, 1, pos, NULL, 0, NULL, 0, 0};
    if (im->use_gemv) { /* the LM head's matrix-vector kernel takes the argmax as it goes */
        unsigned long long key = 0;
        CK(cudaMemsetAsync(im->amax, 0, sizeof key, im->stream));
        if (run_chunk(e, &a, 1, im->amax, err)) return err->code;
        CK(cudaMemcpyAsync(&key, im->amax, sizeof key, cudaMemcpyDeviceToHost, im->stream));
        CK(cudaStreamSynchronize(im->stream));
        *next = wk_cu_argmax_key_row(key);
        return 0;
    }
    if (run_chunk(e, &a, 1, NULL, err)) return err->code;
    wk_cu_argmax(im->next, im->logits, 1, e->cfg.vocab_size, im->stream);
    CK(cudaGetLastError());
    CK(cudaMemcpyAsync(next, im->next, sizeof(int32_t), cudaMemcpyDeviceToHost, im->stream));
    CK(cudaStreamSynchronize(im->stream));
    return 0;
}

int wk_engine_cuda_sync(wk_engine *e, wk_err *err) {
    if (!e || e->ops->forward != cu_forward) return wk_err_set(err, WK_EINVAL, "sync: not a CUDA engine");
    CK(cudaStreamSynchronize(impl_of(e)->stream));
    return 0;
}

int wk_engine_cuda_kv_cache(wk_engine *e, uint16_t **k, uint16_t **v, uint8_t **present, int *token_stride,
                            wk_err *err) {
    if (!e || e->ops->forward != cu_forward) return wk_err_set(err, WK_EINVAL, "kv cache: not a CUDA engine");
    cu_impl *im = impl_of(e);
    *k = (uint16_t *)im->k;
    *v = (uint16_t *)im->v;
    *present = im->present;
    *token_stride = e->kv_capacity;
    return 0;
}

void wk_engine_cuda_device(const wk_engine *e, char *buf, size_t cap) {
    snprintf(buf, cap, "%s", e && e->impl ? impl_of(e)->device : "?");
}

/* ---- lifetime ---------------------------------------------------------------------------------- */

static void cu_free(wk_engine *e) {
    if (!e) return;
    cu_impl *im = impl_of(e);
    if (im) {
        if (im->stream) cudaStreamSynchronize(im->stream);
        void *bufs[] = {im->wh, im->wf, im->k, im->v, im->present, im->x, im->xb, im->qkv, im->q, im->att, im->gu, im->hb,
                        im->tokens, im->next, im->amax, im->logits, im->part, im->attn};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
        if (im->blas) cublasDestroy(im->blas);
        if (im->stream) cudaStreamDestroy(im->stream);
        free(im->attn_host);
        free(im->layers);
        free(im);
    }
    free(e);
}

static const wk_engine_ops CUDA_OPS = {
    "cuda", cu_forward, cu_kv_write, cu_kv_read, cu_kv_set_present, cu_kv_is_present, cu_kv_clear, cu_free,
    cu_kv_write_rows, cu_kv_read_rows,
};

static int alloc_state(wk_engine *e, wk_err *err) {
    cu_impl *im = impl_of(e);
    const wk_model_config *c = &e->cfg;
    size_t m = (size_t)e->max_chunk, qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim;
    size_t slots = (size_t)c->n_layers * c->n_kv_heads * e->kv_capacity;
    size_t dq = qd > (size_t)c->dim ? qd : (size_t)c->dim;
    /* Decode partials: rows * splits <= 4 n_sm / n_kv + rows for any batch (wk_cu_attn_decode_splits). */
    im->part_cap = (size_t)c->n_heads * (c->head_dim + 2) * ((4 * (size_t)im->n_sm + c->n_kv_heads - 1) / c->n_kv_heads + DECODE_ROW_BATCH + 1);
    if (dalloc((void **)&im->k, slots * c->head_dim * sizeof(__half), "KV cache (K)", err) ||
        dalloc((void **)&im->v, slots * c->head_dim * sizeof(__half), "KV cache (V)", err) ||
        dalloc((void **)&im->present, slots, "KV presence", err) ||
        dalloc((void **)&im->x, m * c->dim * sizeof(float), "x", err) ||
        dalloc((void **)&im->xb, m * dq * sizeof(__half), "xb", err) ||
        dalloc((void **)&im->qkv, m * (qd + 2 * kd) * sizeof(__half), "qkv", err) ||
        dalloc((void **)&im->q, m * qd * sizeof(__half), "q", err) ||
        dalloc((void **)&im->att, m * qd * sizeof(__half), "att", err) ||
        dalloc((void **)&im->gu, m * 2 * c->hidden_dim * sizeof(__half), "gate/up", err) ||
        dalloc((void **)&im->hb, m * c->hidden_dim * sizeof(__half), "swiglu", err) ||
        dalloc((void **)&im->tokens, m * sizeof(int32_t), "tokens", err) ||
        dalloc((void **)&im->next, sizeof(int32_t), "argmax", err) ||
        dalloc((void **)&im->amax, sizeof(unsigned long long), "argmax key", err) ||
        dalloc((void **)&im->part, im->part_cap * sizeof(float), "decode partials", err))
        return err->code;
    e->ops->kv_clear(e);
    CK(cudaGetLastError());
    return 0;
}

static int open_device(wk_engine *e, wk_err *err) {
    cu_impl *im = impl_of(e);
    int n = 0;
    cudaError_t ce = cudaGetDeviceCount(&n);
    if (ce != cudaSuccess || n < 1)
        return wk_err_set(err, WK_EUNSUPPORTED, "cuda engine: no CUDA device (%s)", ce != cudaSuccess ? cudaGetErrorString(ce) : "count 0");
    cudaDeviceProp prop;
    CK(cudaSetDevice(0));
    CK(cudaGetDeviceProperties(&prop, 0));
    im->n_sm = prop.multiProcessorCount;
    snprintf(im->device, sizeof im->device, "%s, %zu MiB", prop.name, prop.totalGlobalMem >> 20);
    CK(cudaStreamCreateWithFlags(&im->stream, cudaStreamNonBlocking));
    if (cublasCreate(&im->blas) != CUBLAS_STATUS_SUCCESS || cublasSetStream(im->blas, im->stream) != CUBLAS_STATUS_SUCCESS) {
        im->blas = NULL;
        return wk_err_set(err, WK_EIO, "cuda engine: cuBLAS initialisation failed");
    }
    return 0;
}

static int check_config(const wk_model_config *c, wk_err *err) {
    int g = c->n_heads / c->n_kv_heads;
    if (c->head_dim % 8 || c->head_dim > 256 || c->head_dim < 8)
        return wk_err_set(err, WK_EUNSUPPORTED, "cuda engine: head_dim %d (needs a multiple of 8, at most 256)", c->head_dim);
    if (g > 16) return wk_err_set(err, WK_EUNSUPPORTED, "cuda engine: %d query heads per KV head (at most 16)", g);
    return 0;
}

int wk_engine_cuda_open(const char *src, const wk_engine_opts *opts, wk_engine **out, wk_err *err) {
    *out = NULL;
    if (!src) return wk_err_set(err, WK_EINVAL, "cuda engine: no model given");
    wk_engine *e = (wk_engine *)calloc(1, sizeof *e);
    cu_impl *im = (cu_impl *)calloc(1, sizeof *im);
    if (!e || !im) {
        free(e);
        free(im);
        return wk_err_set(err, WK_ENOMEM, "cuda engine: out of memory");
    }
    e->impl = im;
    e->ops = &CUDA_OPS;
    int synth = strncmp(src, "synthetic:", 10) == 0;
    wk_engine_opts o = opts ? *opts : wk_engine_opts{0, 0, WK_KV_ABSENT_MASKED};
    float inv_freq[128];
    int rc = synth ? wk_model_config_load_synthetic(src, &e->cfg, err) : wk_model_config_load_dir(src, &e->cfg, err);
    rc = rc ? rc : check_config(&e->cfg, err);
    if (rc) goto fail;
    e->kv_capacity = o.kv_capacity > 0 ? o.kv_capacity : (e->cfg.max_pos < 8192 ? e->cfg.max_pos : 8192);
    e->max_chunk = o.max_chunk > 0 ? o.max_chunk : 512;
    e->absent_mode = o.absent_mode;
    if (e->kv_capacity > (1 << 24) || e->max_chunk > (1 << 16)) {
        rc = wk_err_set(err, WK_EINVAL, "engine: kv_capacity %d / max_chunk %d too large", e->kv_capacity, e->max_chunk);
        goto fail;
    }
    im->prefill_kernel = wk_cu_prefill_kernel_named(getenv("WIKV_CUDA_ATTN_PREFILL"));
    if (im->prefill_kernel < 0) {
        rc = wk_err_set(err, WK_EINVAL, "cuda engine: WIKV_CUDA_ATTN_PREFILL=%.32s: not auto, mma, pipe or pairs",
                        getenv("WIKV_CUDA_ATTN_PREFILL"));
        goto fail;
    }
    rc = open_device(e, err);
    rc = rc ? rc : alloc_weights(e, err);
    rc = rc ? rc : (synth ? synth_weights(e, err) : load_weights(e, src, err));
    if (rc) goto fail;
    im->use_gemv = wk_cu_gemv_supported(e->cfg.dim) && wk_cu_gemv_supported(e->cfg.n_heads * e->cfg.head_dim) &&
                   wk_cu_gemv_supported(e->cfg.hidden_dim) && !getenv("WIKV_CUDA_NO_GEMV");
    im->gemv_early = !getenv("WIKV_CUDA_GEMV_LATE");
    im->simt_decode = getenv("WIKV_CUDA_ATTN_SIMT") != NULL;
    im->rope_in_gemv = !getenv("WIKV_CUDA_ROPE_KERNEL");
    im->max_splits = getenv("WIKV_CUDA_ATTN_SPLITS") ? atoi(getenv("WIKV_CUDA_ATTN_SPLITS")) : 0;
    wk_model_config_rope_inv_freq(&e->cfg, inv_freq);
    rc = upload_f32(im, im->inv_freq, inv_freq, (size_t)e->cfg.head_dim / 2, err);
    rc = rc ? rc : alloc_state(e, err);
    if (rc) goto fail;
    if (cudaStreamSynchronize(im->stream) != cudaSuccess) {
        rc = wk_err_set(err, WK_EIO, "cuda engine: initialisation failed: %s", cudaGetErrorString(cudaGetLastError()));
        goto fail;
    }
    *out = e;
    return 0;
fail:
    cu_free(e);
    return rc;
}
