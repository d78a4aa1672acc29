/* KIVI quantization (asymmetric min/max, keys per-channel grouped along tokens, values per-token
 * grouped along channels, most recent `residual` tokens kept in fp16), as in the KIVI repository.
 * Sizes here are what the simulator charges for a KIVI-coded KV cache. */
#ifndef WIKV_KV_KIVI_H
#define WIKV_KV_KIVI_H

#include <stddef.h>
#include <stdint.h>

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

#endif
