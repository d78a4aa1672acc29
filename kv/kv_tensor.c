/* KV tensor storage, the synthetic KV model and the `.wkv` file reader/writer (see kv_tensor.h). */
#include "kv/kv_tensor.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crc32c.h"
#include "core/half.h"
#include "kv/bytebuf.h"

static int check_shape(int layers, int kv_heads, int tokens, int head_dim, wk_err *err) {
    if (layers < 1 || layers > WK_KV_MAX_LAYERS || kv_heads < 1 || kv_heads > WK_KV_MAX_HEADS || tokens < 1 ||
        tokens > WK_KV_MAX_TOKENS || head_dim < 1 || head_dim > WK_KV_MAX_HEAD_DIM)
        return wk_err_set(err, WK_EINVAL, "KV shape layers=%d kv_heads=%d tokens=%d head_dim=%d out of range",
                          layers, kv_heads, tokens, head_dim);
    return 0;
}

int wk_kv_tensor_alloc(wk_kv_tensor *t, int layers, int kv_heads, int tokens, int head_dim, wk_err *err) {
    memset(t, 0, sizeof *t);
    int rc = check_shape(layers, kv_heads, tokens, head_dim, err);
    if (rc) return rc;
    size_t n = (size_t)layers * (size_t)kv_heads * (size_t)tokens * (size_t)head_dim;
    t->k = calloc(n, 2);
    t->v = calloc(n, 2);
    if (!t->k || !t->v) {
        wk_kv_tensor_free(t);
        return wk_err_set(err, WK_ENOMEM, "out of memory for a KV tensor of %zu elements", 2 * n);
    }
    t->layers = layers;
    t->kv_heads = kv_heads;
    t->tokens = tokens;
    t->head_dim = head_dim;
    return 0;
}

void wk_kv_tensor_free(wk_kv_tensor *t) {
    free(t->k);
    free(t->v);
    memset(t, 0, sizeof *t);
}

size_t wk_kv_tensor_elems(const wk_kv_tensor *t) {
    return (size_t)t->layers * (size_t)t->kv_heads * (size_t)t->tokens * (size_t)t->head_dim;
}

/* ---- synthetic model ---- */

wk_kv_synth_params wk_kv_synth_defaults(uint64_t seed) {
    return (wk_kv_synth_params){seed, 4, 8.0, 0.8, 0.95, 1.0, 2.0};
}

/* One (layer, head) block of K or V: x[t][c] = mu_c + s_c z_c(t), z AR(1) with coefficient rho. */
static int synth_block(wk_rng *rng, uint16_t *x /* [T][D] */, int tokens, int dim, double mu_sd, double s_lo,
                        double s_hi, int outliers, double outlier_scale, double rho, double gain, double sink) {
    double *mu = malloc(sizeof(double) * (size_t)dim * 3);
    if (!mu) return WK_ENOMEM;
    double *s = mu + dim, *z = s + dim;
    for (int c = 0; c < dim; c++) {
        mu[c] = mu_sd * wk_rng_normal_polar(rng);
        s[c] = s_lo + (s_hi - s_lo) * wk_rng_uniform(rng);
        z[c] = wk_rng_normal_polar(rng);
    }
    for (int i = 0; i < outliers && i < dim; i++) {
        int c = (int)(wk_rng_next(rng) % (uint64_t)dim);
        double sign = (wk_rng_next(rng) & 1) ? 1.0 : -1.0;
        mu[c] = sign * outlier_scale * (0.5 + 0.5 * wk_rng_uniform(rng));
        s[c] *= 2.0;
    }
    double innov = sqrt(1.0 - rho * rho);
    for (int t = 0; t < tokens; t++) {
        double g = gain * (t == 0 ? sink : 1.0);
        for (int c = 0; c < dim; c++) {
            if (t > 0) z[c] = rho * z[c] + innov * wk_rng_normal_polar(rng);
            x[(size_t)t * dim + c] = wk_float_to_half((float)(g * (mu[c] + s[c] * z[c])));
        }
    }
    free(mu);
    return 0;
}

int wk_kv_tensor_synth_layers(wk_kv_tensor *t, const wk_kv_synth_params *p, const int *layers, int n, wk_err *err) {
    if (!t->k || p->key_rho < 0 || p->key_rho >= 1 || p->value_rho < 0 || p->value_rho >= 1 ||
        p->outlier_channels < 0)
        return wk_err_set(err, WK_EINVAL, "synthetic KV: bad parameters (rho must be in [0,1), outliers >= 0)");
    for (int i = 0; i < n; i++) {
        int l = layers[i];
        if (l < 0 || l >= t->layers) return wk_err_set(err, WK_EINVAL, "synthetic KV: layer %d of %d", l, t->layers);
        double gain = 1.0 + p->depth_growth * l / t->layers;
        for (int h = 0; h < t->kv_heads; h++) {
            wk_rng rng;
            wk_rng_seed(&rng, p->seed ^ ((uint64_t)(l * WK_KV_MAX_HEADS + h) * 0xD1B54A32D192ED03ull));
            size_t at = wk_kv_row(t, l, h, 0);
            if (synth_block(&rng, t->k + at, t->tokens, t->head_dim, 0.5, 0.5, 1.5, p->outlier_channels,
                            p->outlier_scale, p->key_rho, gain, p->sink_scale) ||
                synth_block(&rng, t->v + at, t->tokens, t->head_dim, 0.1, 0.3, 0.8, 0, 0.0, p->value_rho, gain, 1.0))
                return wk_err_set(err, WK_ENOMEM, "synthetic KV: out of memory");
        }
    }
    return 0;
}

int wk_kv_tensor_synth(wk_kv_tensor *t, const wk_kv_synth_params *p, wk_err *err) {
    int *all = malloc(sizeof(int) * (size_t)(t->layers > 0 ? t->layers : 1));
    if (!all) return wk_err_set(err, WK_ENOMEM, "synthetic KV: out of memory");
    for (int l = 0; l < t->layers; l++) all[l] = l;
    int rc = wk_kv_tensor_synth_layers(t, p, all, t->layers, err);
    free(all);
    return rc;
}

/* ---- file format ---- */

static size_t payload_bytes(const wk_kv_tensor *t) { return wk_kv_tensor_elems(t) * 4; }

int wk_kv_tensor_serialize(const wk_kv_tensor *t, uint8_t **out, size_t *out_len, wk_err *err) {
    size_t n = wk_kv_tensor_elems(t), pay = payload_bytes(t);
    uint8_t *buf = malloc(WK_KV_HEADER_BYTES + pay);
    if (!buf) return wk_err_set(err, WK_ENOMEM, "out of memory serializing a KV tensor (%zu bytes)", pay);
    uint8_t *p = buf + WK_KV_HEADER_BYTES;
    for (size_t i = 0; i < n; i++) wk_put_u16(p + 2 * i, t->k[i]);
    for (size_t i = 0; i < n; i++) wk_put_u16(p + 2 * (n + i), t->v[i]);
    memcpy(buf, WK_KV_FILE_MAGIC, 4);
    wk_put_u32(buf + 4, WK_KV_FILE_VERSION);
    wk_put_u32(buf + 8, WK_KV_DTYPE_FP16);
    wk_put_u32(buf + 12, (uint32_t)t->layers);
    wk_put_u32(buf + 16, (uint32_t)t->kv_heads);
    wk_put_u32(buf + 20, (uint32_t)t->tokens);
    wk_put_u32(buf + 24, (uint32_t)t->head_dim);
    wk_put_u32(buf + 28, (uint32_t)pay);
    wk_put_u32(buf + 32, (uint32_t)((uint64_t)pay >> 32));
    wk_put_u32(buf + 36, wk_crc32c(0, p, pay));
    wk_put_u32(buf + 40, wk_crc32c(0, buf, 40));
    *out = buf;
    *out_len = WK_KV_HEADER_BYTES + pay;
    return 0;
}

int wk_kv_tensor_parse(const uint8_t *data, size_t len, const char *name, wk_kv_tensor *t, wk_err *err) {
    memset(t, 0, sizeof *t);
    if (len < WK_KV_HEADER_BYTES)
        return wk_err_set(err, WK_EFORMAT, "%s: truncated header: %zu bytes, need %d", name, len, WK_KV_HEADER_BYTES);
    if (memcmp(data, WK_KV_FILE_MAGIC, 4) != 0)
        return wk_err_set(err, WK_EFORMAT, "%s: offset 0 (magic): not a wikv KV tensor file", name);
    if (wk_get_u32(data + 40) != wk_crc32c(0, data, 40))
        return wk_err_set(err, WK_EFORMAT, "%s: offset 40 (header_crc32c): header checksum mismatch", name);
    uint32_t version = wk_get_u32(data + 4), dtype = wk_get_u32(data + 8);
    if (version != WK_KV_FILE_VERSION)
        return wk_err_set(err, WK_EFORMAT, "%s: offset 4 (version): %u, this build reads %u", name, version,
                          WK_KV_FILE_VERSION);
    if (dtype != WK_KV_DTYPE_FP16)
        return wk_err_set(err, WK_EFORMAT, "%s: offset 8 (dtype): %u, only 1 (fp16) is supported", name, dtype);
    static const char *const dim_names[4] = {"layers", "kv_heads", "tokens", "head_dim"};
    static const uint32_t dim_max[4] = {WK_KV_MAX_LAYERS, WK_KV_MAX_HEADS, WK_KV_MAX_TOKENS, WK_KV_MAX_HEAD_DIM};
    uint32_t dims[4];
    for (int i = 0; i < 4; i++) {
        dims[i] = wk_get_u32(data + 12 + 4 * i);
        if (dims[i] < 1 || dims[i] > dim_max[i])
            return wk_err_set(err, WK_EFORMAT, "%s: offset %d (%s): %u out of range [1, %u]", name, 12 + 4 * i,
                              dim_names[i], dims[i], dim_max[i]);
    }
    uint64_t pay = (uint64_t)wk_get_u32(data + 28) | (uint64_t)wk_get_u32(data + 32) << 32;
    uint64_t want = (uint64_t)dims[0] * dims[1] * dims[2] * dims[3] * 4;
    if (pay != want)
        return wk_err_set(err, WK_EFORMAT, "%s: offset 28 (payload_bytes): %llu, shapes need %llu", name,
                          (unsigned long long)pay, (unsigned long long)want);
    if (len - WK_KV_HEADER_BYTES != pay)
        return wk_err_set(err, WK_EFORMAT, "%s: payload at offset %d is %zu bytes, header says %llu (%s)", name,
                          WK_KV_HEADER_BYTES, len - WK_KV_HEADER_BYTES, (unsigned long long)pay,
                          len - WK_KV_HEADER_BYTES < pay ? "truncated" : "trailing bytes");
    const uint8_t *p = data + WK_KV_HEADER_BYTES;
    if (wk_get_u32(data + 36) != wk_crc32c(0, p, (size_t)pay))
        return wk_err_set(err, WK_EFORMAT, "%s: offset 36 (payload_crc32c): payload checksum mismatch", name);
    int rc = wk_kv_tensor_alloc(t, (int)dims[0], (int)dims[1], (int)dims[2], (int)dims[3], err);
    if (rc) return rc;
    size_t n = wk_kv_tensor_elems(t);
    for (size_t i = 0; i < n; i++) t->k[i] = wk_get_u16(p + 2 * i);
    for (size_t i = 0; i < n; i++) t->v[i] = wk_get_u16(p + 2 * (n + i));
    return 0;
}

int wk_kv_tensor_write(const wk_kv_tensor *t, const char *path, wk_err *err) {
    uint8_t *buf;
    size_t len;
    int rc = wk_kv_tensor_serialize(t, &buf, &len, err);
    if (rc) return rc;
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(buf);
        return wk_err_set(err, WK_EIO, "%s: cannot create: %s", path, strerror(errno));
    }
    size_t wrote = fwrite(buf, 1, len, f);
    free(buf);
    if (fclose(f) != 0 || wrote != len) return wk_err_set(err, WK_EIO, "%s: write failed", path);
    return 0;
}

int wk_kv_tensor_read(const char *path, wk_kv_tensor *t, wk_err *err) {
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) return wk_err_set(err, WK_EIO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return wk_err_set(err, WK_ENOMEM, "%s: out of memory reading", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return wk_err_set(err, WK_EIO, "%s: read error", path);
    }
    int rc = wk_kv_tensor_parse(buf, len, path, t, err);
    free(buf);
    return rc;
}
