/* KV cache tensors: fp16 keys and values of one context, a deterministic synthetic generator with
 * realistic statistics, and the stored file format (`.wkv`).
 *
 * Layout of k and v: [layer][kv_head][token][head_dim], fp16 bits, row-major.
 *
 * File format, version 1, all integers little-endian:
 *   off  0  magic "WKKV"
 *   off  4  u32 version (1)
 *   off  8  u32 dtype (1 = fp16)
 *   off 12  u32 layers, off 16 u32 kv_heads, off 20 u32 tokens, off 24 u32 head_dim
 *   off 28  u64 payload_bytes (= 2 * layers * kv_heads * tokens * head_dim * 2)
 *   off 36  u32 CRC32C of the payload
 *   off 40  u32 CRC32C of bytes 0..39 (the header)
 *   off 44  payload: all of K, then all of V, fp16 little-endian, in the layout above.
 * A reader rejects every mismatch with a message naming the field and its offset. */
#ifndef WIKV_KV_KV_TENSOR_H
#define WIKV_KV_KV_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "core/half.h"

#define WK_KV_FILE_MAGIC "WKKV"
#define WK_KV_FILE_VERSION 1u
#define WK_KV_DTYPE_FP16 1u
#define WK_KV_HEADER_BYTES 44
#define WK_KV_MAX_LAYERS 1024
#define WK_KV_MAX_HEADS 1024
#define WK_KV_MAX_HEAD_DIM 4096
#define WK_KV_MAX_TOKENS (1 << 24)

typedef struct {
    int layers, kv_heads, tokens, head_dim;
    uint16_t *k; /* [layers][kv_heads][tokens][head_dim] fp16 */
    uint16_t *v; /* [layers][kv_heads][tokens][head_dim] fp16 */
} wk_kv_tensor;

/* Allocates a zeroed tensor. Shapes must be within the WK_KV_MAX_* limits. */
int wk_kv_tensor_alloc(wk_kv_tensor *t, int layers, int kv_heads, int tokens, int head_dim, wk_err *err);
void wk_kv_tensor_free(wk_kv_tensor *t);
/* Elements in K (= in V). */
size_t wk_kv_tensor_elems(const wk_kv_tensor *t);
/* Offset of row (layer, head, token) in k or v: points at head_dim values. */
static inline size_t wk_kv_row(const wk_kv_tensor *t, int layer, int head, int token) {
    return (((size_t)layer * (size_t)t->kv_heads + (size_t)head) * (size_t)t->tokens + (size_t)token) *
           (size_t)t->head_dim;
}

/* Synthetic KV model (per layer, per kv head, from an independent seeded stream):
 *  - keys: k[t][c] = mu_c + s_c * z_c(t), z an AR(1) process along tokens with coefficient key_rho and unit
 *    variance; mu_c ~ N(0, 0.5), s_c ~ U(0.5, 1.5). `outlier_channels` channels per head get a large mean
 *    |mu_c| ~ U(0.5, 1) * outlier_scale with random sign and 2x the spread: the few fixed high-magnitude key
 *    channels seen in real models (what makes per-channel key quantization win);
 *  - values: v[t][c] = mu_c + s_c * z_c(t) with mu_c ~ N(0, 0.1), s_c ~ U(0.3, 0.8), no outliers, AR(1)
 *    coefficient value_rho (close to 1: smooth along tokens);
 *  - everything is multiplied by 1 + depth_growth * layer / layers (deeper layers have larger norms);
 *  - token 0 (the attention sink) keys are scaled by sink_scale.
 * Deterministic for a given seed (xoshiro256** + polar-method normals in double, rounded once to fp16). */
typedef struct {
    uint64_t seed;
    int outlier_channels; /* per head, default 4 */
    double outlier_scale; /* default 8 */
    double key_rho;       /* default 0.8 */
    double value_rho;     /* default 0.95 */
    double depth_growth;  /* default 1.0 */
    double sink_scale;    /* default 2.0 */
} wk_kv_synth_params;

wk_kv_synth_params wk_kv_synth_defaults(uint64_t seed);
/* Fills an allocated tensor with the model above. */
int wk_kv_tensor_synth(wk_kv_tensor *t, const wk_kv_synth_params *p, wk_err *err);
/* Fills only layers[0..n) of t (each exactly as wk_kv_tensor_synth would), leaving the others untouched:
 * samples of a few representative layers of a deep model. */
int wk_kv_tensor_synth_layers(wk_kv_tensor *t, const wk_kv_synth_params *p, const int *layers, int n, wk_err *err);

/* Serializes to a malloc'd buffer in the file format. */
int wk_kv_tensor_serialize(const wk_kv_tensor *t, uint8_t **out, size_t *out_len, wk_err *err);
/* Parses a file image; `name` is used in error messages. The tensor is allocated on success only. */
int wk_kv_tensor_parse(const uint8_t *data, size_t len, const char *name, wk_kv_tensor *t, wk_err *err);
int wk_kv_tensor_write(const wk_kv_tensor *t, const char *path, wk_err *err);
int wk_kv_tensor_read(const char *path, wk_kv_tensor *t, wk_err *err);

/* x rounded to the nearest fp16 value (ties to even), returned as float: the same result as
 * wk_half_to_float(wk_float_to_half(x)), with a fast path for the fp16 normal range (codec inner loops). */
static inline float wk_kv_round_fp16(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    uint32_t e = (b >> 23) & 0xFF;
    if (e < 113 || e > 141) return wk_half_to_float(wk_float_to_half(x)); /* subnormal, zero, large, inf, nan */
    b = (b + 0xFFFu + ((b >> 13) & 1u)) & ~0x1FFFu;
    memcpy(&x, &b, 4);
    return x;
}


#endif
