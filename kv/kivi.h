/* KIVI quantization (asymmetric min/max, keys per-channel grouped along tokens, values per-token
 * grouped along channels, most recent `residual` tokens kept in fp16), as in the KIVI repository.
 * Sizes here are what the simulator charges for a KIVI-coded KV cache; the encoder below produces
 * exactly wk_kivi_bytes() bytes per (layer, kv-head).
 *
 * Math (KIVI quant/new_pack.py, emulating its fp16 tensor ops by rounding to fp16 after each op):
 *   scale = fp16(fp16(mx - mn) / (2^b - 1)),  q = round_half_even(clamp(fp16(fp16(x - mn) / scale), 0, 2^b-1))
 *   x_hat = fp16(fp16(q * scale) + mn)
 * with mn, mx the min/max of the group. A zero or non-finite scale (constant group, overflow) gives q = 0
 * (KIVI would produce NaN there).
 *
 * Encoded layout of one (layer, kv-head), T tokens, D = head_dim, b bits, G group, R residual,
 * F = 32/b codes per int32, Tk = wk_kivi_quantized_key_tokens(T), Tv = wk_kivi_quantized_value_tokens(T);
 * all little-endian, sections back to back:
 *   1. K codes   int32 [D][Tk/F]        channel-major; word w of channel c holds tokens w*F+j, j = 0..F-1,
 *                                       at bits [b*j, b*j+b) (KIVI's pack along the last dim of K^T)
 *   2. K scale   fp16  [D][Tk/G], then K mn fp16 [D][Tk/G]
 *   3. K residual fp16 [T-Tk][D]         tokens Tk..T-1 unquantized
 *   4. V codes   int32 [Tv][D/F]        token-major; word w of token t holds channels w*F+j at bits [b*j, b*j+b)
 *   5. V scale   fp16  [Tv][ceil(D/G)], then V mn fp16 [Tv][ceil(D/G)] (a last partial group is allowed)
 *   6. V residual fp16 [T-Tv][D]         tokens Tv..T-1
 * A whole tensor is the concatenation of its (layer, kv-head) blocks in [layer][kv_head] order. */
#ifndef WIKV_KV_KIVI_H
#define WIKV_KV_KIVI_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "kv/kv_tensor.h"

typedef struct {
    int bits;     /* 2 or 4 */
    int group;    /* G: tokens per key group, channels per value group (default 32) */
    int residual; /* R: most recent tokens kept in fp16 (default 128) */
} wk_kivi_params;

static inline wk_kivi_params wk_kivi_defaults(int bits) { return (wk_kivi_params){bits, 32, 128}; }

/* Tokens of a T-token prefill that KIVI stores quantized: keys quantize whole blocks of R tokens
 * (T - T mod R), values all but the last R. */
static inline int wk_kivi_quantized_key_tokens(const wk_kivi_params *p, int tokens) {
    return tokens - tokens % p->residual;
}
static inline int wk_kivi_quantized_value_tokens(const wk_kivi_params *p, int tokens) {
    return tokens > p->residual ? tokens - p->residual : 0;
}

/* Bytes of one (layer, kv-head) for K and V together: packed codes + fp16 scale and min per group +
 * the fp16 residual window. */
static inline int64_t wk_kivi_bytes(const wk_kivi_params *p, int tokens, int head_dim) {
    int64_t kq = wk_kivi_quantized_key_tokens(p, tokens), vq = wk_kivi_quantized_value_tokens(p, tokens);
    int64_t key = kq * head_dim * p->bits / 8 + (int64_t)head_dim * ((kq + p->group - 1) / p->group) * 4 +
                  (tokens - kq) * (int64_t)head_dim * 2;
    int64_t value = vq * head_dim * p->bits / 8 + vq * ((head_dim + p->group - 1) / p->group) * 4 +
                    (tokens - vq) * (int64_t)head_dim * 2;
    return key + value;
}

/* Checks bits in {2,4,8}, group >= 1, residual a multiple of group and of 32/bits, head_dim a multiple of
 * 32/bits (int32 packing of whole words). */
int wk_kivi_check(const wk_kivi_params *p, int head_dim, wk_err *err);

/* One (layer, kv-head): k, v are [tokens][head_dim] fp16. Writes wk_kivi_bytes() bytes to out (capacity cap). */
int wk_kivi_encode_head(const wk_kivi_params *p, int tokens, int head_dim, const uint16_t *k, const uint16_t *v,
                        uint8_t *out, size_t cap, size_t *out_len, wk_err *err);
/* Inverse: in must hold exactly wk_kivi_bytes() bytes; writes dequantized k, v [tokens][head_dim] fp16. */
int wk_kivi_decode_head(const wk_kivi_params *p, int tokens, int head_dim, const uint8_t *in, size_t len,
                        uint16_t *k, uint16_t *v, wk_err *err);

/* Whole tensor: *out is malloc'd, layers * kv_heads * wk_kivi_bytes() bytes. */
int wk_kivi_encode(const wk_kivi_params *p, const wk_kv_tensor *t, uint8_t **out, size_t *out_len, wk_err *err);
/* Decodes into t, already allocated with the shape the bytes were encoded with. */
int wk_kivi_decode(const wk_kivi_params *p, const uint8_t *in, size_t len, wk_kv_tensor *t, wk_err *err);

#endif
