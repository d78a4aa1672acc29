/* KIVI encode/decode of one (layer, kv-head) and of a whole tensor; layout and math in kivi.h. */
#include "kv/kivi.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "kv/bytebuf.h"

static float h16(float x) { return wk_kv_round_fp16(x); }

int wk_kivi_check(const wk_kivi_params *p, int head_dim, wk_err *err) {
    if (p->bits != 2 && p->bits != 4 && p->bits != 8)
        return wk_err_set(err, WK_EINVAL, "kivi: bits %d (must be 2, 4 or 8)", p->bits);
    int per_word = 32 / p->bits;
    if (p->group < 1 || p->residual < 1 || p->residual % p->group || p->residual % per_word)
        return wk_err_set(err, WK_EINVAL,
                          "kivi: group %d, residual %d (residual must be a positive multiple of group and of %d)",
                          p->group, p->residual, per_word);
    if (head_dim < 1 || head_dim % per_word)
        return wk_err_set(err, WK_EINVAL, "kivi: head_dim %d must be a multiple of %d at %d bits", head_dim,
                          per_word, p->bits);
    return 0;
}

/* Quantizes n values x[i*stride] as one group: returns codes in q[], scale and mn as fp16 bits. */
static void quant_group(const uint16_t *x, size_t stride, int n, int bits, uint8_t *q, uint16_t *scale_h,
                        uint16_t *mn_h) {
    float mn = INFINITY, mx = -INFINITY;
    for (int i = 0; i < n; i++) {
        float f = wk_half_to_float(x[i * stride]);
        if (f < mn) mn = f;
        if (f > mx) mx = f;
    }
    float top = (float)((1 << bits) - 1);
    float scale = h16(h16(mx - mn) / top);
    *scale_h = wk_float_to_half(scale);
    *mn_h = wk_float_to_half(mn);
    for (int i = 0; i < n; i++) {
        float r = h16(h16(wk_half_to_float(x[i * stride]) - mn) / scale);
        if (!(scale > 0) || !isfinite(scale) || !(r == r)) r = 0; /* guard KIVI's 0/0 */
        if (r < 0) r = 0;
        if (r > top) r = top;
        q[i] = (uint8_t)rintf(r);
    }
}

/* A zero code decodes to mn even when the scale is not finite (same result as the formula otherwise). */
static uint16_t dequant(int q, uint16_t scale_h, uint16_t mn_h) {
    if (q == 0) return mn_h;
    return wk_float_to_half(h16((float)q * wk_half_to_float(scale_h)) + wk_half_to_float(mn_h));
}

static void pack(const uint8_t *q, int n, int bits, uint8_t *out) {
    int per_word = 32 / bits;
    for (int w = 0; w < n / per_word; w++) {
        uint32_t word = 0;
        for (int j = 0; j < per_word; j++) word |= (uint32_t)q[w * per_word + j] << (bits * j);
        wk_put_u32(out + 4 * w, word);
    }
}

static int unpack(const uint8_t *in, int word, int j, int bits) {
    return (int)((wk_get_u32(in + 4 * word) >> (bits * j)) & ((1u << bits) - 1));
}

int wk_kivi_encode_head(const wk_kivi_params *p, int tokens, int head_dim, const uint16_t *k, const uint16_t *v,
                        uint8_t *out, size_t cap, size_t *out_len, wk_err *err) {
    int rc = wk_kivi_check(p, head_dim, err);
    if (rc) return rc;
    if (tokens < 0) return wk_err_set(err, WK_EINVAL, "kivi: tokens %d", tokens);
    int64_t need = wk_kivi_bytes(p, tokens, head_dim);
    if ((uint64_t)need > cap)
        return wk_err_set(err, WK_EINVAL, "kivi: output holds %zu bytes, need %lld", cap, (long long)need);
    const int D = head_dim, G = p->group, b = p->bits, F = 32 / b;
    const int tk = wk_kivi_quantized_key_tokens(p, tokens), tv = wk_kivi_quantized_value_tokens(p, tokens);
    const int kgroups = tk / G, vgroups = (D + G - 1) / G;
    uint8_t *q = malloc((size_t)(tk > D ? tk : D) + 1);
    if (!q) return wk_err_set(err, WK_ENOMEM, "kivi: out of memory");
    uint8_t *o = out;
    /* keys: channel by channel over the first tk tokens */
    uint8_t *kscale = o + (size_t)D * tk / F * 4, *kmn = kscale + (size_t)D * kgroups * 2;
    for (int c = 0; c < D; c++) {
        for (int g = 0; g < kgroups; g++) {
            uint16_t s, m;
            quant_group(k + (size_t)g * G * D + c, (size_t)D, G, b, q + g * G, &s, &m);
            wk_put_u16(kscale + ((size_t)c * kgroups + g) * 2, s);
            wk_put_u16(kmn + ((size_t)c * kgroups + g) * 2, m);
        }
        pack(q, tk, b, o + (size_t)c * (tk / F) * 4);
    }
    o = kmn + (size_t)D * kgroups * 2;
    for (size_t i = (size_t)tk * D; i < (size_t)tokens * D; i++, o += 2) wk_put_u16(o, k[i]);
    /* values: token by token over the first tv tokens */
    uint8_t *vcode = o, *vscale = vcode + (size_t)tv * (D / F) * 4, *vmn = vscale + (size_t)tv * vgroups * 2;
    for (int t = 0; t < tv; t++) {
        for (int g = 0; g < vgroups; g++) {
            int n = (g + 1) * G <= D ? G : D - g * G;
            uint16_t s, m;
            quant_group(v + (size_t)t * D + g * G, 1, n, b, q + g * G, &s, &m);
            wk_put_u16(vscale + ((size_t)t * vgroups + g) * 2, s);
            wk_put_u16(vmn + ((size_t)t * vgroups + g) * 2, m);
        }
        pack(q, D, b, vcode + (size_t)t * (D / F) * 4);
    }
    o = vmn + (size_t)tv * vgroups * 2;
    for (size_t i = (size_t)tv * D; i < (size_t)tokens * D; i++, o += 2) wk_put_u16(o, v[i]);
    free(q);
    *out_len = (size_t)(o - out);
    return 0;
}

int wk_kivi_decode_head(const wk_kivi_params *p, int tokens, int head_dim, const uint8_t *in, size_t len,
                        uint16_t *k, uint16_t *v, wk_err *err) {
    int rc = wk_kivi_check(p, head_dim, err);
    if (rc) return rc;
    if (tokens < 0) return wk_err_set(err, WK_EINVAL, "kivi: tokens %d", tokens);
    int64_t need = wk_kivi_bytes(p, tokens, head_dim);
    if ((uint64_t)need != len)
        return wk_err_set(err, WK_EFORMAT, "kivi block: %zu bytes, a %d-token head needs %lld", len, tokens,
                          (long long)need);
    const int D = head_dim, G = p->group, b = p->bits, F = 32 / b;
    const int tk = wk_kivi_quantized_key_tokens(p, tokens), tv = wk_kivi_quantized_value_tokens(p, tokens);
    const int kgroups = tk / G, vgroups = (D + G - 1) / G;
    const uint8_t *kcode = in, *kscale = kcode + (size_t)D * (tk / F) * 4, *kmn = kscale + (size_t)D * kgroups * 2;
    for (int c = 0; c < D; c++)
        for (int t = 0; t < tk; t++) {
            size_t g = (size_t)c * kgroups + t / G;
            int q = unpack(kcode + (size_t)c * (tk / F) * 4, t / F, t % F, b);
            k[(size_t)t * D + c] = dequant(q, wk_get_u16(kscale + 2 * g), wk_get_u16(kmn + 2 * g));
        }
    const uint8_t *o = kmn + (size_t)D * kgroups * 2;
    for (size_t i = (size_t)tk * D; i < (size_t)tokens * D; i++, o += 2) k[i] = wk_get_u16(o);
    const uint8_t *vcode = o, *vscale = vcode + (size_t)tv * (D / F) * 4, *vmn = vscale + (size_t)tv * vgroups * 2;
    for (int t = 0; t < tv; t++)
        for (int c = 0; c < D; c++) {
            size_t g = (size_t)t * vgroups + c / G;
            int q = unpack(vcode + (size_t)t * (D / F) * 4, c / F, c % F, b);
            v[(size_t)t * D + c] = dequant(q, wk_get_u16(vscale + 2 * g), wk_get_u16(vmn + 2 * g));
        }
    o = vmn + (size_t)tv * vgroups * 2;
    for (size_t i = (size_t)tv * D; i < (size_t)tokens * D; i++, o += 2) v[i] = wk_get_u16(o);
    return 0;
}

int wk_kivi_encode(const wk_kivi_params *p, const wk_kv_tensor *t, uint8_t **out, size_t *out_len, wk_err *err) {
    int rc = wk_kivi_check(p, t->head_dim, err);
    if (rc) return rc;
    size_t per = (size_t)wk_kivi_bytes(p, t->tokens, t->head_dim), n = (size_t)t->layers * t->kv_heads;
    uint8_t *buf = malloc(per * n + 1);
    if (!buf) return wk_err_set(err, WK_ENOMEM, "kivi: out of memory for %zu bytes", per * n);
    for (int l = 0; l < t->layers; l++)
        for (int h = 0; h < t->kv_heads; h++) {
            size_t at = wk_kv_row(t, l, h, 0), got;
            rc = wk_kivi_encode_head(p, t->tokens, t->head_dim, t->k + at, t->v + at,
                                     buf + ((size_t)l * t->kv_heads + h) * per, per, &got, err);
            if (rc) {
                free(buf);
                return rc;
            }
        }
    *out = buf;
    *out_len = per * n;
    return 0;
}

int wk_kivi_decode(const wk_kivi_params *p, const uint8_t *in, size_t len, wk_kv_tensor *t, wk_err *err) {
    int rc = wk_kivi_check(p, t->head_dim, err);
    if (rc) return rc;
    size_t per = (size_t)wk_kivi_bytes(p, t->tokens, t->head_dim), n = (size_t)t->layers * t->kv_heads;
    if (len != per * n)
        return wk_err_set(err, WK_EFORMAT, "kivi stream: %zu bytes, shape needs %zu (%zu per head)", len, per * n,
                          per);
    for (int l = 0; l < t->layers; l++)
        for (int h = 0; h < t->kv_heads; h++) {
            size_t at = wk_kv_row(t, l, h, 0), blk = (size_t)l * t->kv_heads + h;
            rc = wk_kivi_decode_head(p, t->tokens, t->head_dim, in + blk * per, per, t->k + at, t->v + at, err);
            if (rc) return wk_err_prefix(err, "layer %d head %d (offset %zu)", l, h, blk * per);
        }
    return 0;
}
