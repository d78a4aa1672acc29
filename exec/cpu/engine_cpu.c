/* CPU reference backend: plain C, fp32 math, one thread. Follows HF transformers' Llama/Qwen2/Qwen3/
 * Mistral forward (RMSNorm, rotate-half RoPE, GQA, SwiGLU) closely enough that logits match PyTorch to
 * ~1e-5 relative; it is the ground truth the CUDA backend and the tests compare against. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/engine.h"

typedef struct {
    wk_engine_weights w;
    wk_kv_cache kv;
    wk_run_state rs;
} cpu_impl;

static cpu_impl *impl_of(const wk_engine *e) { return (cpu_impl *)e->impl; }

/* ---- math kernels ---------------------------------------------------------------------------- */

/* 4-lane float vectors (GCC/Clang extension; SSE on x86-64 without extra flags). Unaligned loads go
 * through memcpy, which compiles to one vector load. */
typedef float v4f __attribute__((vector_size(16)));

static inline v4f load4(const float *p) {
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline float hsum(v4f a, v4f b) {
    v4f s = a + b;
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* Dot product: two 4-lane accumulators over 8-float steps, then a scalar tail. dot_rows4 uses the very
 * same order per row, so a token's result does not depend on how a chunk is split into rows. */
static float dot(const float *a, const float *b, int n) {
    v4f s0 = {0}, s1 = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 += load4(a + i) * load4(b + i);
        s1 += load4(a + i + 4) * load4(b + i + 4);
    }
    float s = hsum(s0, s1);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Four dot products of rows x[0..3] (stride n) with w: each w load is used four times. */
static void dot_rows4(const float *x, const float *w, int n, float out[4]) {
    v4f s[4][2] = {{{0}}};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        v4f w0 = load4(w + i), w1 = load4(w + i + 4);
        for (int r = 0; r < 4; r++) {
            s[r][0] += load4(x + (size_t)r * n + i) * w0;
            s[r][1] += load4(x + (size_t)r * n + i + 4) * w1;
        }
    }
    for (int r = 0; r < 4; r++) {
        float t = hsum(s[r][0], s[r][1]);
        for (int k = i; k < n; k++) t += x[(size_t)r * n + k] * w[k];
        out[r] = t;
    }
}

/* out (n, d_out) = x (n, d_in) . W^T, W (d_out, d_in); bias (d_out) or NULL. Rows of W outer so a
 * weight row is reused across the chunk while in cache. */
static void matmul(float *out, const float *x, const float *w, const float *bias, int n, int d_in, int d_out) {
    for (int o = 0; o < d_out; o++) {
        const float *wr = w + (size_t)o * d_in;
        float b = bias ? bias[o] : 0.0f, r4[4];
        int t = 0;
        for (; t + 4 <= n; t += 4) {
            dot_rows4(x + (size_t)t * d_in, wr, d_in, r4);
            for (int r = 0; r < 4; r++) out[(size_t)(t + r) * d_out + o] = r4[r] + b;
        }
        for (; t < n; t++) out[(size_t)t * d_out + o] = dot(x + (size_t)t * d_in, wr, d_in) + b;
    }
}

/* out = x / rms(x) * weight, as HF LlamaRMSNorm (fp32 variance). */
static void rmsnorm(float *out, const float *x, const float *weight, int d, float eps) {
    double ss = 0;
    for (int i = 0; i < d; i++) ss += (double)x[i] * x[i];
    float inv = 1.0f / sqrtf((float)(ss / d) + eps);
    for (int i = 0; i < d; i++) out[i] = weight[i] * (x[i] * inv);
}

/* HF rotate_half RoPE on one head vector v[hd]: pairs (i, i + hd/2). */
static void rope(float *v, int hd, int pos, const float *inv_freq) {
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        float ang = (float)pos * inv_freq[i];
        float c = cosf(ang), s = sinf(ang);
        float x0 = v[i], x1 = v[i + half];
        v[i] = x0 * c - x1 * s;
        v[i + half] = x1 * c + x0 * s;
    }
}

/* ---- KV cache -------------------------------------------------------------------------------- */

static size_t kv_index(const wk_kv_cache *kv, int layer, int head, int token) {
    return ((size_t)layer * kv->n_kv_heads + head) * kv->capacity + token;
}

static int kv_check(const wk_engine *e, int layer, int head, int token, wk_err *err) {
    const wk_kv_cache *kv = &impl_of(e)->kv;
    if (layer < 0 || layer >= kv->n_layers || head < 0 || head >= kv->n_kv_heads || token < 0 || token >= kv->capacity)
        return wk_err_set(err, WK_EINVAL, "kv: (layer %d, kv_head %d, token %d) outside [%d, %d, %d]", layer, head, token,
                          kv->n_layers, kv->n_kv_heads, kv->capacity);
    return 0;
}

static int cpu_kv_write(wk_engine *e, int layer, int head, int token, const float *k, const float *v, wk_err *err) {
    if (kv_check(e, layer, head, token, err)) return err->code;
    wk_kv_cache *kv = &impl_of(e)->kv;
    size_t i = kv_index(kv, layer, head, token);
    memcpy(kv->k + i * kv->head_dim, k, (size_t)kv->head_dim * sizeof(float));
    memcpy(kv->v + i * kv->head_dim, v, (size_t)kv->head_dim * sizeof(float));
    kv->present[i] = 1;
    return 0;
}

static int cpu_kv_read(wk_engine *e, int layer, int head, int token, float *k, float *v, wk_err *err) {
    if (kv_check(e, layer, head, token, err)) return err->code;
    wk_kv_cache *kv = &impl_of(e)->kv;
    size_t i = kv_index(kv, layer, head, token);
    memcpy(k, kv->k + i * kv->head_dim, (size_t)kv->head_dim * sizeof(float));
    memcpy(v, kv->v + i * kv->head_dim, (size_t)kv->head_dim * sizeof(float));
    return 0;
}

static int cpu_kv_set_present(wk_engine *e, int layer, int head, int t0, int t1, int present, wk_err *err) {
    wk_kv_cache *kv = &impl_of(e)->kv;
    if (layer >= kv->n_layers || head >= kv->n_kv_heads || t0 < 0 || t1 < t0 || t1 > kv->capacity)
        return wk_err_set(err, WK_EINVAL, "kv: set_present(layer %d, kv_head %d, [%d, %d)) out of range", layer, head, t0, t1);
    int l0 = layer < 0 ? 0 : layer, l1 = layer < 0 ? kv->n_layers : layer + 1;
    int h0 = head < 0 ? 0 : head, h1 = head < 0 ? kv->n_kv_heads : head + 1;
    for (int l = l0; l < l1; l++)
        for (int h = h0; h < h1; h++) memset(kv->present + kv_index(kv, l, h, t0), present ? 1 : 0, (size_t)(t1 - t0));
    return 0;
}

static int cpu_kv_is_present(const wk_engine *e, int layer, int head, int token) {
    if (kv_check(e, layer, head, token, NULL)) return WK_EINVAL;
    const wk_kv_cache *kv = &impl_of(e)->kv;
    return kv->present[kv_index(kv, layer, head, token)];
}

static void cpu_kv_clear(wk_engine *e) {
    wk_kv_cache *kv = &impl_of(e)->kv;
    size_t n = (size_t)kv->n_layers * kv->n_kv_heads * kv->capacity;
    memset(kv->present, 0, n);
    memset(kv->k, 0, n * kv->head_dim * sizeof(float));
    memset(kv->v, 0, n * kv->head_dim * sizeof(float));
}

/* ---- forward --------------------------------------------------------------------------------- */

/* Softmax over scores[lo..p] in place (-INFINITY = masked, weight 0). Returns 0 when nothing is
 * visible. */
static int softmax_row(float *scores, int lo, int p) {
    float mx = -INFINITY;
    for (int t = lo; t <= p; t++)
        if (scores[t] > mx) mx = scores[t];
    if (mx == -INFINITY) return 0;
    double sum = 0;
    for (int t = lo; t <= p; t++) {
        scores[t] = scores[t] == -INFINITY ? 0.0f : expf(scores[t] - mx);
        sum += scores[t];
    }
    float inv = (float)(1.0 / sum);
    for (int t = lo; t <= p; t++) scores[t] *= inv;
    return 1;
}

/* Attention of the query heads of KV group g (q: [group][hd], consecutive heads, kv-head-major as
 * HF repeat_kv) at position p over the cache of (layer, g). Each K/V row is loaded once for the whole
 * group. Writes out[group][hd]; when attn_row != NULL adds the group's summed weights to
 * attn_row[0..p]. scores: scratch [group][capacity]. */
static void attend_group(const wk_engine *e, int layer, int g, int p, const float *q, float *out, float *scores,
                         float *attn_row) {
    const wk_kv_cache *kv = &impl_of(e)->kv;
    int hd = kv->head_dim, win = e->cfg.sliding_window, group = e->cfg.n_heads / e->cfg.n_kv_heads;
    int lo = win > 0 && p - win + 1 > 0 ? p - win + 1 : 0, cap = kv->capacity;
    size_t base = kv_index(kv, layer, g, 0);
    const uint8_t *pres = kv->present + base;
    const float *K = kv->k + base * hd, *V = kv->v + base * hd;
    int masked = kv->absent_mode == WK_KV_ABSENT_MASKED;
    float scale = 1.0f / sqrtf((float)hd), d4[4];
    for (int t = lo; t <= p; t++) {
        int h = 0;
        if (!pres[t]) { /* MASKED: unseen; ZERO: a zero key scores q.0 = 0 */
            for (; h < group; h++) scores[(size_t)h * cap + t] = masked ? -INFINITY : 0.0f;
            continue;
        }
        const float *kt = K + (size_t)t * hd;
        for (; h + 4 <= group; h += 4) {
            dot_rows4(q + (size_t)h * hd, kt, hd, d4);
            for (int r = 0; r < 4; r++) scores[(size_t)(h + r) * cap + t] = d4[r] * scale;
        }
        for (; h < group; h++) scores[(size_t)h * cap + t] = dot(q + (size_t)h * hd, kt, hd) * scale;
    }
    memset(out, 0, (size_t)group * hd * sizeof *out);
    for (int h = 0; h < group; h++) {
        float *sc = scores + (size_t)h * cap, *o = out + (size_t)h * hd;
        if (!softmax_row(sc, lo, p)) continue; /* nothing visible: output 0 */
        for (int t = lo; t <= p; t++) {
            float w = sc[t];
            if (attn_row) attn_row[t] += w;
            if (w == 0.0f || !pres[t]) continue; /* absent V is zero (ZERO mode) or unseen (MASKED) */
            const float *vt = V + (size_t)t * hd;
            for (int i = 0; i < hd; i++) o[i] += w * vt[i];
        }
    }
}

/* q/k/v projections, q/k norm, RoPE, and the K/V store for the chunk's tokens. */
static void qkv_step(wk_engine *e, int l, int pos, int n) {
    cpu_impl *im = impl_of(e);
    const wk_model_config *c = &e->cfg;
    const wk_layer_weights *L = &im->w.layers[l];
    wk_run_state *s = &im->rs;
    int hd = c->head_dim, qd = c->n_heads * hd, kd = c->n_kv_heads * hd;
    matmul(s->q, s->xb, L->wq, L->bq, n, c->dim, qd);
    matmul(s->k, s->xb, L->wk, L->bk, n, c->dim, kd);
    matmul(s->v, s->xb, L->wv, L->bv, n, c->dim, kd);
    for (int t = 0; t < n; t++) {
        for (int h = 0; h < c->n_heads; h++) {
            float *qh = s->q + (size_t)t * qd + (size_t)h * hd;
            if (L->q_norm) rmsnorm(qh, qh, L->q_norm, hd, c->norm_eps);
            rope(qh, hd, pos + t, s->rope_inv_freq);
        }
        for (int h = 0; h < c->n_kv_heads; h++) {
            float *kh = s->k + (size_t)t * kd + (size_t)h * hd;
            if (L->k_norm) rmsnorm(kh, kh, L->k_norm, hd, c->norm_eps);
            rope(kh, hd, pos + t, s->rope_inv_freq);
            size_t i = kv_index(&im->kv, l, h, pos + t);
            memcpy(im->kv.k + i * hd, kh, (size_t)hd * sizeof(float));
            memcpy(im->kv.v + i * hd, s->v + (size_t)t * kd + (size_t)h * hd, (size_t)hd * sizeof(float));
            im->kv.present[i] = 1;
        }
    }
}

static void attention_layer(wk_engine *e, int l, const wk_forward_args *a) {
    cpu_impl *im = impl_of(e);
    const wk_model_config *c = &e->cfg;
    wk_run_state *s = &im->rs;
    int n = a->n_tokens, hd = c->head_dim, qd = c->n_heads * hd, group = c->n_heads / c->n_kv_heads;
    qkv_step(e, l, a->pos, n);
    for (int t = 0; t < n; t++) {
        int export_row = a->attn && t >= n - a->attn_rows;
        for (int g = 0; g < c->n_kv_heads; g++) { /* query heads g*group .. (g+1)*group-1 */
            float *row = export_row ? a->attn + ((size_t)l * c->n_kv_heads + g) * a->attn_stride : NULL;
            size_t off = (size_t)t * qd + (size_t)g * group * hd;
            attend_group(e, l, g, a->pos + t, s->q + off, s->att_out + off, s->scores, row);
        }
    }
    matmul(s->xb, s->att_out, im->w.layers[l].wo, NULL, n, qd, c->dim);
    for (size_t i = 0; i < (size_t)n * c->dim; i++) s->x[i] += s->xb[i];
}

static void mlp_layer(wk_engine *e, int l, int n) {
    cpu_impl *im = impl_of(e);
    const wk_model_config *c = &e->cfg;
    const wk_layer_weights *L = &im->w.layers[l];
    wk_run_state *s = &im->rs;
    for (int t = 0; t < n; t++)
        rmsnorm(s->xb + (size_t)t * c->dim, s->x + (size_t)t * c->dim, L->ffn_norm, c->dim, c->norm_eps);
    matmul(s->hb, s->xb, L->w_gate, NULL, n, c->dim, c->hidden_dim);
    matmul(s->hb2, s->xb, L->w_up, NULL, n, c->dim, c->hidden_dim);
    for (size_t i = 0; i < (size_t)n * c->hidden_dim; i++) {
        float g = s->hb[i];
        s->hb[i] = g / (1.0f + expf(-g)) * s->hb2[i]; /* SiLU(gate) * up */
    }
    matmul(s->xb, s->hb, L->w_down, NULL, n, c->hidden_dim, c->dim);
    for (size_t i = 0; i < (size_t)n * c->dim; i++) s->x[i] += s->xb[i];
}

static int cpu_forward(wk_engine *e, const wk_forward_args *a, wk_err *err) {
    if (wk_engine_check_forward(e, a, err)) return err->code;
    cpu_impl *im = impl_of(e);
    const wk_model_config *c = &e->cfg;
    wk_run_state *s = &im->rs;
    int n = a->n_tokens, d = c->dim;
    for (int t = 0; t < n; t++) memcpy(s->x + (size_t)t * d, im->w.embed + (size_t)a->tokens[t] * d, (size_t)d * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        for (int t = 0; t < n; t++)
            rmsnorm(s->xb + (size_t)t * d, s->x + (size_t)t * d, im->w.layers[l].attn_norm, d, c->norm_eps);
        attention_layer(e, l, a);
        mlp_layer(e, l, n);
    }
    for (int r = 0; r < a->logit_rows; r++) {
        int t = n - a->logit_rows + r;
        rmsnorm(s->xb, s->x + (size_t)t * d, im->w.final_norm, d, c->norm_eps);
        matmul(a->logits + (size_t)r * c->vocab_size, s->xb, im->w.lm_head, NULL, 1, d, c->vocab_size);
    }
    return 0;
}

/* ---- lifetime -------------------------------------------------------------------------------- */

static void cpu_free(wk_engine *e) {
    cpu_impl *im = impl_of(e);
    if (im) {
        wk_engine_weights_free(&im->w);
        free(im->kv.k);
        free(im->kv.v);
        free(im->kv.present);
        wk_run_state *s = &im->rs;
        float *bufs[] = {s->x, s->xb, s->q, s->k, s->v, s->att_out, s->hb, s->hb2, s->scores, s->rope_inv_freq};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
        free(im);
    }
    free(e);
}

static const wk_engine_ops CPU_OPS = {
    .name = "cpu",
    .forward = cpu_forward,
    .kv_write = cpu_kv_write,
    .kv_read = cpu_kv_read,
    .kv_set_present = cpu_kv_set_present,
    .kv_is_present = cpu_kv_is_present,
    .kv_clear = cpu_kv_clear,
    .free = cpu_free,
};

static int alloc_state(wk_engine *e, wk_err *err) {
    cpu_impl *im = impl_of(e);
    const wk_model_config *c = &e->cfg;
    size_t m = (size_t)e->max_chunk, qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim;
    wk_run_state *s = &im->rs;
    s->max_chunk = e->max_chunk;
    s->x = malloc(m * c->dim * sizeof(float));
    s->xb = malloc(m * (qd > (size_t)c->dim ? qd : (size_t)c->dim) * sizeof(float));
    s->q = malloc(m * qd * sizeof(float));
    s->k = malloc(m * kd * sizeof(float));
    s->v = malloc(m * kd * sizeof(float));
    s->att_out = malloc(m * qd * sizeof(float));
    s->hb = malloc(m * c->hidden_dim * sizeof(float));
    s->hb2 = malloc(m * c->hidden_dim * sizeof(float));
    s->scores = malloc((size_t)e->kv_capacity * (size_t)(c->n_heads / c->n_kv_heads) * sizeof(float));
    s->rope_inv_freq = malloc((size_t)c->head_dim / 2 * sizeof(float));
    wk_kv_cache *kv = &im->kv;
    kv->n_layers = c->n_layers;
    kv->n_kv_heads = c->n_kv_heads;
    kv->head_dim = c->head_dim;
    kv->capacity = e->kv_capacity;
    kv->absent_mode = e->absent_mode;
    size_t slots = (size_t)c->n_layers * c->n_kv_heads * e->kv_capacity;
    kv->k = calloc(slots * c->head_dim, sizeof(float));
    kv->v = calloc(slots * c->head_dim, sizeof(float));
    kv->present = calloc(slots, 1);
    if (!s->x || !s->xb || !s->q || !s->k || !s->v || !s->att_out || !s->hb || !s->hb2 || !s->scores || !s->rope_inv_freq ||
        !kv->k || !kv->v || !kv->present)
        return wk_err_set(err, WK_ENOMEM, "engine: cannot allocate run state / KV cache (%zu slots)", slots);
    wk_model_config_rope_inv_freq(c, s->rope_inv_freq);
    return 0;
}

int wk_engine_cpu_open(const char *dir, const wk_engine_opts *opts, wk_engine **out, wk_err *err) {
    *out = NULL;
    wk_engine *e = calloc(1, sizeof *e);
    cpu_impl *im = calloc(1, sizeof *im);
    if (!e || !im) {
        free(e);
        free(im);
        return wk_err_set(err, WK_ENOMEM, "engine: out of memory");
    }
    e->impl = im;
    e->ops = &CPU_OPS;
    int synth = strncmp(dir, "synthetic:", 10) == 0;
    if ((synth ? wk_model_config_load_synthetic(dir, &e->cfg, err) : wk_model_config_load_dir(dir, &e->cfg, err)))
        goto fail;
    wk_engine_opts o = opts ? *opts : (wk_engine_opts){0};
    e->kv_capacity = o.kv_capacity > 0 ? o.kv_capacity : (e->cfg.max_pos < 8192 ? e->cfg.max_pos : 8192);
    e->max_chunk = o.max_chunk > 0 ? o.max_chunk : 512;
    e->absent_mode = o.absent_mode;
    if (e->kv_capacity > (1 << 24) || e->max_chunk > (1 << 16)) {
        wk_err_set(err, WK_EINVAL, "engine: kv_capacity %d / max_chunk %d too large", e->kv_capacity, e->max_chunk);
        goto fail;
    }
    int rc;
    if (synth)
        rc = wk_engine_weights_synth(&e->cfg, &im->w, err);
    else {
        wk_safetensors st;
        if (wk_st_open_dir(dir, &st, err)) goto fail;
        rc = wk_engine_weights_load(&e->cfg, &st, &im->w, err);
        wk_st_close(&st);
    }
    if (rc || alloc_state(e, err)) goto fail;
    *out = e;
    return 0;
fail:
    cpu_free(e);
    return err->code;
}
