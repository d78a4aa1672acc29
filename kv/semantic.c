/* WiKV semantic coding: importance ranking, unit quantization with progressive refinements, optional
 * position-constrained 2-opt reorder, delta + range coding of batches (format in semantic.h). */
#include "kv/semantic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "kv/bytebuf.h"
#include "kv/rangecoder.h"

#define HEADER_FIXED 24
#define REFINE_SYMBOLS 5 /* q in [-2, 2] */

wk_sem_params wk_sem_defaults(int layers) {
    wk_sem_params p = {5, {18, 14, 12, 10, 8}, (9 * layers + 18) / 36, 0, 0, 20, 12, 16};
    if (p.group_layers < 1) p.group_layers = 1;
    return p;
}

/* ---- importance and order ---- */

int wk_sem_importance_from_attention(const float *attn, int layers, int kv_heads, int queries, int tokens,
                                     float *imp, wk_err *err) {
    if (layers < 1 || kv_heads < 1 || queries < 1 || tokens < 1)
        return wk_err_set(err, WK_EINVAL, "importance: shape %dx%dx%dx%d", layers, kv_heads, queries, tokens);
    for (size_t lh = 0; lh < (size_t)layers * kv_heads; lh++)
        for (int t = 0; t < tokens; t++) {
            double s = 0;
            for (int q = 0; q < queries; q++) s += attn[(lh * queries + q) * tokens + t];
            imp[lh * tokens + t] = (float)(s / queries);
        }
    return 0;
}

int wk_sem_importance_gqa(const float *attn, int layers, int q_heads, int kv_heads, int queries, int tokens,
                          float *imp, wk_err *err) {
    if (layers < 1 || kv_heads < 1 || q_heads < kv_heads || q_heads % kv_heads || queries < 1 || tokens < 1)
        return wk_err_set(err, WK_EINVAL, "importance: %d query heads over %d kv heads, %d rows, %d tokens", q_heads,
                          kv_heads, queries, tokens);
    int group = q_heads / kv_heads;
    for (int l = 0; l < layers; l++)
        for (int h = 0; h < kv_heads; h++)
            for (int t = 0; t < tokens; t++) {
                double s = 0;
                for (int g = 0; g < group; g++) {
                    const float *a = attn + (((size_t)l * q_heads + (size_t)h * group + g) * queries) * tokens;
                    for (int q = 0; q < queries; q++) s += a[(size_t)q * tokens + t];
                }
                imp[((size_t)l * kv_heads + h) * tokens + t] = (float)(s / queries);
            }
    return 0;
}

void wk_sem_suffix_sum(float *imp, int layers, int kv_heads, int tokens) {
    size_t per = (size_t)kv_heads * tokens;
    for (int l = layers - 2; l >= 0; l--)
        for (size_t i = 0; i < per; i++) imp[l * per + i] += imp[(l + 1) * per + i];
}

typedef struct {
    float key;
    uint32_t id;
} rank_item;

static int rank_cmp(const void *a, const void *b) {
    const rank_item *x = a, *y = b;
    if (x->key > y->key) return -1;
    if (x->key < y->key) return 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

int wk_sem_order(const float *imp, int layers, int kv_heads, int tokens, uint32_t *order, wk_err *err) {
    size_t n = (size_t)layers * kv_heads * tokens;
    if (layers < 1 || kv_heads < 1 || tokens < 1 || n > UINT32_MAX)
        return wk_err_set(err, WK_EINVAL, "semantic order: shape %dx%dx%d", layers, kv_heads, tokens);
    rank_item *it = malloc(sizeof *it * n);
    if (!it) return wk_err_set(err, WK_ENOMEM, "semantic order: out of memory for %zu units", n);
    for (size_t i = 0; i < n; i++) {
        it[i].key = imp[i] == imp[i] ? imp[i] : -INFINITY; /* NaN ranks last */
        it[i].id = (uint32_t)i;
    }
    qsort(it, n, sizeof *it, rank_cmp);
    for (size_t i = 0; i < n; i++) order[i] = it[i].id;
    free(it);
    return 0;
}

int wk_sem_synth_importance(uint64_t seed, int layers, int kv_heads, int tokens, float *imp, wk_err *err) {
    if (layers < 1 || kv_heads < 1 || tokens < 1)
        return wk_err_set(err, WK_EINVAL, "synthetic importance: shape %dx%dx%d", layers, kv_heads, tokens);
    for (int h = 0; h < kv_heads; h++) {
        wk_rng head_rng;
        wk_rng_seed(&head_rng, seed * 0x9E3779B97F4A7C15ull + (uint64_t)h);
        /* heavy hitters persist across layers: one log-normal weight per token per head */
        double *hh = malloc(sizeof(double) * (size_t)tokens);
        if (!hh) return wk_err_set(err, WK_ENOMEM, "synthetic importance: out of memory");
        for (int t = 0; t < tokens; t++) hh[t] = exp(1.5 * wk_rng_normal_polar(&head_rng));
        for (int l = 0; l < layers; l++) {
            wk_rng rng;
            wk_rng_seed(&rng, seed ^ ((uint64_t)(l * 4096 + h) * 0xD1B54A32D192ED03ull));
            float *row = imp + ((size_t)l * kv_heads + h) * tokens;
            double sum = 0;
            for (int t = 0; t < tokens; t++) {
                double w = hh[t] * exp(0.5 * wk_rng_normal_polar(&rng));
                row[t] = (float)w;
                sum += w;
            }
            double rec = 0;
            for (int t = 0; t < tokens; t++) rec += exp(-(tokens - 1 - t) / 16.0);
            for (int t = 0; t < tokens; t++) {
                double v = 0.6 * row[t] / sum + 0.2 * exp(-(tokens - 1 - t) / 16.0) / rec + (t == 0 ? 0.2 : 0.0);
                row[t] = (float)v;
            }
        }
        free(hh);
    }
    return 0;
}

/* ---- decoder map ---- */

int wk_sem_map_alloc(wk_sem_map *m, int layers, int kv_heads, int tokens, wk_err *err) {
    memset(m, 0, sizeof *m);
    size_t n = (size_t)layers * kv_heads * tokens;
    if (layers < 1 || kv_heads < 1 || tokens < 1) return wk_err_set(err, WK_EINVAL, "semantic map: bad shape");
    m->level = calloc(n, 1);
    m->step = calloc(n * 2, sizeof(float));
    if (!m->level || !m->step) {
        wk_sem_map_free(m);
        return wk_err_set(err, WK_ENOMEM, "semantic map: out of memory for %zu units", n);
    }
    m->layers = layers;
    m->kv_heads = kv_heads;
    m->tokens = tokens;
    return 0;
}

void wk_sem_map_free(wk_sem_map *m) {
    free(m->level);
    free(m->step);
    memset(m, 0, sizeof *m);
}

/* ---- quantization of one vector ---- */

static float h16(float x) { return wk_kv_round_fp16(x); }

static int layer_m(const wk_sem_params *p, int layer) {
    int g = layer / p->group_layers;
    if (g >= p->nbins) g = p->nbins - 1;
    return p->bins[g] / 2 - 1;
}

static int max_m(const wk_sem_params *p) {
    int m = 0;
    for (int i = 0; i < p->nbins; i++)
        if (p->bins[i] / 2 - 1 > m) m = p->bins[i] / 2 - 1;
    return m;
}

/* inv = 1 / step (0 when the step is 0) */
static int qround(float x, float inv, int lim) {
    if (!(inv > 0) || !isfinite(inv) || !isfinite(x)) return 0;
    float q = rintf(x * inv);
    return q > lim ? lim : q < -lim ? -lim : (int)q;
}

static uint16_t absmax16(const uint16_t *x, int D) {
    float a = 0;
    for (int d = 0; d < D; d++) {
        float f = fabsf(wk_half_to_float(x[d]));
        if (f > a) a = f; /* NaN never wins */
    }
    return wk_float_to_half(a);
}

/* q * step, with a zero code exactly 0 even for a non-finite step (a unit whose absmax overflowed fp16) */
static float scaled(int q, float step) { return q ? (float)q * step : 0.0f; }

/* Reconstruction at `level` of x [D] (all intermediate values fp16-rounded, as the decoder stores them). When
 * sym is not NULL, also the symbols of that level (signed). */
static void unit_chain(const uint16_t *x, int D, float step0, int M, int level, float *xhat, int8_t *sym) {
    float st[WK_SEM_MAX_LEVELS], inv[WK_SEM_MAX_LEVELS];
    for (int k = 0; k <= level; k++) {
        st[k] = ldexpf(step0, -2 * k);
        inv[k] = step0 > 0 && isfinite(step0) ? 1.0f / st[k] : 0.0f;
    }
    for (int d = 0; d < D; d++) {
        float xv = wk_half_to_float(x[d]);
        int q = qround(xv, inv[0], M);
        float r = h16(scaled(q, step0));
        for (int k = 1; k <= level; k++) {
            q = qround(xv - r, inv[k], 2);
            r = h16(r + scaled(q, st[k]));
        }
        xhat[d] = r;
        if (sym) sym[d] = (int8_t)q;
    }
}

/* ---- 2-opt reorder ---- */

/* Eight independent partial sums: lets the compiler vectorize without reassociating (same result everywhere). */
static float dotf(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* perm[pos] = index into vec (unit-norm rows of length dim); reverses segments while the sum of cosine distances
 * of neighbours drops and no unit moves more than maxd from its start position. adj[k] caches the distance of
 * positions k and k+1, so each candidate move costs two dot products. */
static void two_opt(const float *vec, int dim, int n, int maxd, int *perm) {
#define VEC(pos) (vec + (size_t)perm[pos] * dim)
    float *adj = malloc(sizeof(float) * (size_t)n);
    if (!adj) return; /* keep the semantic order */
    for (int k = 0; k + 1 < n; k++) adj[k] = 1 - dotf(VEC(k), VEC(k + 1), dim);
    for (int pass = 0; pass < 4; pass++) {
        int improved = 0;
        for (int i = 0; i + 2 < n; i++)
            for (int j = i + 2; j < n && j - i <= maxd; j++) {
                float d_j = j + 1 < n ? adj[j] : 0;
                float n_i = 1 - dotf(VEC(i), VEC(j), dim);
                float n_j = j + 1 < n ? 1 - dotf(VEC(i + 1), VEC(j + 1), dim) : 0;
                if (adj[i] + d_j - n_i - n_j <= 1e-4f) continue;
                int ok = 1;
                for (int k = i + 1; k <= j && ok; k++) ok = abs(i + 1 + j - k - perm[k]) <= maxd;
                if (!ok) continue;
                for (int a = i + 1, b = j; a < b; a++, b--) {
                    int tmp = perm[a];
                    perm[a] = perm[b];
                    perm[b] = tmp;
                }
                for (int a = i + 1, b = j - 1; a < b; a++, b--) {
                    float tmp = adj[a];
                    adj[a] = adj[b];
                    adj[b] = tmp;
                }
                adj[i] = n_i;
                if (j + 1 < n) adj[j] = n_j;
                improved = 1;
            }
        if (!improved) break;
    }
    free(adj);
#undef VEC
}

/* ---- encoder ---- */

static int check_params(const wk_sem_params *p, wk_err *err) {
    if (p->nbins < 1 || p->nbins > WK_SEM_MAX_BINS || p->group_layers < 1 || p->group_layers > 65535 ||
        p->table_bits < 6 || p->table_bits > WK_RC_MAX_TOTAL_BITS || p->max_displacement < 1 || p->stream_units < 1)
        return wk_err_set(err, WK_EINVAL,
                          "semantic: nbins %d, group_layers %d, table_bits %d, stream_units %d out of range", p->nbins,
                          p->group_layers, p->table_bits, p->stream_units);
    for (int i = 0; i < p->nbins; i++)
        if (p->bins[i] < 4 || p->bins[i] > 32 || p->bins[i] % 2)
            return wk_err_set(err, WK_EINVAL, "semantic: bins[%d] = %d (even, 4..32)", i, p->bins[i]);
    return 0;
}

static int alphabet(const wk_sem_params *p, int level, int delta) {
    return level > 0 ? REFINE_SYMBOLS : delta ? 4 * max_m(p) + 1 : 2 * max_m(p) + 1;
}

typedef struct {
    int n, D, level, delta, nsym, off;
    int per;            /* units per substream */
    int8_t *q;          /* [n][2][D] signed codes in send order */
    uint16_t *scale;    /* [n][2] */
    uint32_t *ids;      /* [n] send order */
    wk_rc_table *tab;   /* [2][D] */
} sem_batch;

static void batch_free(sem_batch *b) {
    free(b->q);
    free(b->scale);
    free(b->ids);
    free(b->tab);
}

static int batch_alloc(sem_batch *b, int n, int D, wk_err *err) {
    memset(b, 0, sizeof *b);
    b->n = n;
    b->D = D;
    b->q = malloc((size_t)n * 2 * D);
    b->scale = malloc((size_t)n * 2 * sizeof(uint16_t));
    b->ids = malloc((size_t)n * sizeof(uint32_t));
    b->tab = malloc(sizeof(wk_rc_table) * 2 * (size_t)D);
    if (!b->q || !b->scale || !b->ids || !b->tab) return wk_err_set(err, WK_ENOMEM, "semantic: out of memory");
    return 0;
}

/* Symbol of unit i, side kv, channel d (delta against the previous unit of the substream for level 0 with delta). */
static int symbol_at(const sem_batch *b, int i, int kv, int d) {
    int v = b->q[((size_t)i * 2 + kv) * b->D + d];
    if (b->delta && i % b->per > 0) v -= b->q[((size_t)(i - 1) * 2 + kv) * b->D + d];
    return v + b->off;
}

static void quantize_units(const wk_sem_params *p, const wk_kv_tensor *t, const uint32_t *ids, sem_batch *b,
                           float *xhat) {
    int D = t->head_dim;
    for (int i = 0; i < b->n; i++) {
        uint32_t id = ids[i];
        int layer = (int)(id / ((uint32_t)t->kv_heads * t->tokens));
        size_t row = (size_t)id * D;
        int M = layer_m(p, layer);
        for (int kv = 0; kv < 2; kv++) {
            const uint16_t *x = (kv ? t->v : t->k) + row;
            uint16_t a = absmax16(x, D);
            b->scale[i * 2 + kv] = a;
            unit_chain(x, D, wk_half_to_float(a) / (float)M, M, b->level, xhat, b->q + ((size_t)i * 2 + kv) * D);
        }
    }
}

static void reorder_units(const wk_sem_params *p, sem_batch *b, int *perm) {
    int dim = 2 * b->D;
    float *vec = malloc(sizeof(float) * (size_t)b->n * dim);
    sem_batch tmp = *b;
    int8_t *q = malloc((size_t)b->n * dim);
    uint16_t *sc = malloc((size_t)b->n * 2 * sizeof(uint16_t));
    uint32_t *ids = malloc((size_t)b->n * sizeof(uint32_t));
    for (int i = 0; i < b->n; i++) perm[i] = i;
    if (vec && q && sc && ids) {
        for (int i = 0; i < b->n; i++) {
            float *v = vec + (size_t)i * dim, norm = 0;
            for (int c = 0; c < dim; c++) {
                v[c] = b->q[(size_t)i * dim + c];
                norm += v[c] * v[c];
            }
            norm = norm > 0 ? 1.0f / sqrtf(norm) : 0;
            for (int c = 0; c < dim; c++) v[c] *= norm;
        }
        two_opt(vec, dim, b->n, p->max_displacement, perm);
        for (int i = 0; i < b->n; i++) {
            memcpy(q + (size_t)i * dim, tmp.q + (size_t)perm[i] * dim, (size_t)dim);
            sc[2 * i] = tmp.scale[2 * perm[i]];
            sc[2 * i + 1] = tmp.scale[2 * perm[i] + 1];
            ids[i] = tmp.ids[perm[i]];
        }
        memcpy(b->q, q, (size_t)b->n * dim);
        memcpy(b->scale, sc, (size_t)b->n * 2 * sizeof(uint16_t));
        memcpy(b->ids, ids, (size_t)b->n * sizeof(uint32_t));
    } /* out of memory: keep the semantic order, which is always valid */
    free(vec);
    free(q);
    free(sc);
    free(ids);
}

static void write_header(const wk_sem_params *p, const wk_kv_tensor *t, const sem_batch *b, int reordered,
                         wk_wbuf *w) {
    wk_wbuf_bytes(w, "WKSM", 4);
    wk_wbuf_u8(w, WK_SEM_VERSION);
    wk_wbuf_u8(w, (uint8_t)b->level);
    wk_wbuf_u8(w, (uint8_t)((b->delta ? 1 : 0) | (reordered ? 2 : 0)));
    wk_wbuf_u8(w, (uint8_t)p->table_bits);
    wk_wbuf_u16(w, (uint16_t)t->layers);
    wk_wbuf_u16(w, (uint16_t)t->kv_heads);
    wk_wbuf_u16(w, (uint16_t)t->head_dim);
    wk_wbuf_u16(w, (uint16_t)p->group_layers);
    wk_wbuf_u32(w, (uint32_t)t->tokens);
    wk_wbuf_u32(w, (uint32_t)b->n);
    wk_wbuf_u8(w, (uint8_t)p->nbins);
    for (int i = 0; i < p->nbins; i++) wk_wbuf_u8(w, (uint8_t)p->bins[i]);
}

static int write_body(const wk_sem_params *p, sem_batch *b, wk_wbuf *w, wk_sem_stats *st, wk_err *err) {
    size_t at = w->len;
    uint32_t prev = 0;
    for (int i = 0; i < b->n; i++) {
        int64_t dlt = (int64_t)b->ids[i] - prev;
        wk_wbuf_varint(w, dlt >= 0 ? (uint64_t)dlt * 2 : (uint64_t)(-dlt) * 2 - 1);
        prev = b->ids[i];
    }
    st->ids = w->len - at;
    at = w->len;
    if (b->level == 0)
        for (int i = 0; i < 2 * b->n; i++) wk_wbuf_u16(w, b->scale[i]);
    st->scales = w->len - at;
    at = w->len;
    uint64_t counts[WK_RC_MAX_SYMBOLS];
    for (int kv = 0; kv < 2; kv++)
        for (int d = 0; d < b->D; d++) {
            memset(counts, 0, sizeof counts);
            for (int i = 0; i < b->n; i++) counts[symbol_at(b, i, kv, d)]++;
            int rc = wk_rc_table_from_counts(&b->tab[kv * b->D + d], counts, b->nsym, p->table_bits, err);
            if (rc) return rc;
            wk_rc_table_write(&b->tab[kv * b->D + d], w);
        }
    st->tables = w->len - at;
    int nsub = (b->n + b->per - 1) / b->per;
    size_t *lens = malloc(sizeof(size_t) * (size_t)nsub);
    if (!lens) return wk_err_set(err, WK_ENOMEM, "semantic: out of memory");
    wk_wbuf s;
    wk_wbuf_init(&s);
    for (int j = 0; j < nsub; j++) {
        size_t before = s.len;
        wk_rc_enc e;
        wk_rc_enc_init(&e, &s);
        for (int i = j * b->per; i < b->n && i < (j + 1) * b->per; i++)
            for (int kv = 0; kv < 2; kv++)
                for (int d = 0; d < b->D; d++) wk_rc_enc_put(&e, &b->tab[kv * b->D + d], symbol_at(b, i, kv, d));
        wk_rc_enc_finish(&e);
        lens[j] = s.len - before;
    }
    at = w->len;
    wk_wbuf_varint(w, (uint64_t)b->per);
    for (int j = 0; j < nsub; j++) wk_wbuf_varint(w, lens[j]);
    wk_wbuf_bytes(w, s.data, s.len);
    st->payload = w->len - at;
    int rc = wk_wbuf_check(&s, err);
    wk_wbuf_free(&s);
    free(lens);
    return rc;
}

int wk_sem_encode_batch(const wk_sem_params *p, const wk_kv_tensor *t, const uint32_t *ids, int n, int level,
                        uint8_t **out, size_t *out_len, uint32_t *sent_order, wk_sem_stats *stats, wk_err *err) {
    int rc = check_params(p, err);
    if (rc) return rc;
    size_t units = wk_kv_tensor_elems(t) / (size_t)t->head_dim;
    if (n < 1 || (size_t)n > units || level < 0 || level >= WK_SEM_MAX_LEVELS || t->layers > 65535 ||
        t->head_dim > 65535)
        return wk_err_set(err, WK_EINVAL, "semantic: batch of %d units at level %d", n, level);
    for (int i = 0; i < n; i++)
        if (ids[i] >= units) return wk_err_set(err, WK_EINVAL, "semantic: unit id %u >= %zu", ids[i], units);
    sem_batch b;
    rc = batch_alloc(&b, n, t->head_dim, err);
    float *xhat = malloc(sizeof(float) * (size_t)t->head_dim);
    int *perm = malloc(sizeof(int) * (size_t)n);
    if (!rc && (!xhat || !perm)) rc = wk_err_set(err, WK_ENOMEM, "semantic: out of memory");
    wk_wbuf w;
    wk_wbuf_init(&w);
    wk_sem_stats st = {0};
    if (!rc) {
        b.level = level;
        b.delta = level == 0 && p->delta;
        b.nsym = alphabet(p, level, b.delta);
        b.off = level > 0 ? 2 : b.delta ? 2 * max_m(p) : max_m(p);
        b.per = p->stream_units < n ? p->stream_units : n;
        memcpy(b.ids, ids, sizeof(uint32_t) * (size_t)n);
        quantize_units(p, t, ids, &b, xhat);
        int reordered = level == 0 && p->reorder && n > 2;
        if (reordered) reorder_units(p, &b, perm);
        write_header(p, t, &b, reordered, &w);
        st.header = w.len;
        rc = write_body(p, &b, &w, &st, err);
    }
    if (!rc) rc = wk_wbuf_check(&w, err);
    if (!rc && sent_order) memcpy(sent_order, b.ids, sizeof(uint32_t) * (size_t)n);
    batch_free(&b);
    free(xhat);
    free(perm);
    if (rc) {
        wk_wbuf_free(&w);
        return rc;
    }
    *out = w.data;
    *out_len = w.len;
    if (stats) *stats = st;
    return 0;
}

/* ---- decoder ---- */

typedef wk_sem_header sem_header;

static int read_header(wk_rbuf *r, int layers, int kv_heads, int tokens, int head_dim, sem_header *h, wk_err *err) {
    uint8_t b[8];
    uint16_t f[4];
    uint32_t ntok;
    if (wk_rbuf_bytes(r, b, 8, "header", err)) return WK_EFORMAT;
    if (memcmp(b, "WKSM", 4) != 0) return wk_err_set(err, WK_EFORMAT, "semantic batch: offset 0 (magic): bad magic");
    if (b[4] != WK_SEM_VERSION)
        return wk_err_set(err, WK_EFORMAT, "semantic batch: offset 4 (version): %u, expected %d", b[4], WK_SEM_VERSION);
    h->level = b[5];
    h->delta = b[6] & 1;
    h->table_bits = b[7];
    if (h->level >= WK_SEM_MAX_LEVELS)
        return wk_err_set(err, WK_EFORMAT, "semantic batch: offset 5 (level): %d", h->level);
    if (b[6] > 3 || (h->delta && h->level > 0))
        return wk_err_set(err, WK_EFORMAT, "semantic batch: offset 6 (flags): 0x%x", b[6]);
    for (int i = 0; i < 4; i++)
        if (wk_rbuf_u16(r, &f[i], "header", err)) return WK_EFORMAT;
    if (wk_rbuf_u32(r, &ntok, "tokens", err) || wk_rbuf_u32(r, &h->n, "n_units", err)) return WK_EFORMAT;
    if (f[0] != layers || f[1] != kv_heads || f[2] != head_dim || ntok != (uint32_t)tokens)
        return wk_err_set(err, WK_EFORMAT,
                          "semantic batch: offset 8 (shape): %ux%ux%ux%u, tensor/map is %dx%dx%dx%d", f[0], f[1],
                          ntok, f[2], layers, kv_heads, tokens, head_dim);
    uint8_t nbins;
    if (wk_rbuf_u8(r, &nbins, "nbins", err)) return WK_EFORMAT;
    h->p = wk_sem_defaults(layers);
    h->p.nbins = nbins;
    h->p.group_layers = f[3];
    h->p.table_bits = h->table_bits;
    if (nbins < 1 || nbins > WK_SEM_MAX_BINS)
        return wk_err_set(err, WK_EFORMAT, "semantic batch: offset 24 (nbins): %u", nbins);
    for (int i = 0; i < nbins; i++) {
        uint8_t v;
        if (wk_rbuf_u8(r, &v, "bins", err)) return WK_EFORMAT;
        h->p.bins[i] = v;
    }
    if (check_params(&h->p, err)) {
        err->code = WK_EFORMAT; /* parameters that came with the input */
        return wk_err_prefix(err, "semantic batch header");
    }
    size_t units = (size_t)layers * kv_heads * tokens;
    if (h->n < 1 || h->n > units || h->n > r->len - r->pos) /* every unit needs at least its id byte */
        return wk_err_set(err, WK_EFORMAT, "semantic batch: offset 20 (n_units): %u does not fit", h->n);
    h->header_bytes = r->pos;
    return 0;
}

int wk_sem_read_header(const uint8_t *in, size_t len, int layers, int kv_heads, int tokens, int head_dim,
                       wk_sem_header *h, wk_err *err) {
    wk_rbuf r;
    wk_rbuf_init(&r, in, len, "semantic batch");
    return read_header(&r, layers, kv_heads, tokens, head_dim, h, err);
}

/* Id i of the list: varint zigzag(id - previous id), inside [0, units); *prev holds the previous id and
 * receives this one. */
static int next_id(wk_rbuf *r, uint32_t i, size_t units, int64_t *prev, wk_err *err) {
    uint64_t z;
    size_t at = r->pos;
    if (wk_rbuf_varint(r, &z, "unit id", err)) return WK_EFORMAT;
    int64_t id = z > UINT32_MAX * 2ull ? -1 : *prev + (z & 1 ? -(int64_t)((z >> 1) + 1) : (int64_t)(z >> 1));
    if (id < 0 || (uint64_t)id >= units)
        return wk_err_set(err, WK_EFORMAT, "semantic batch: unit %u id at offset %zu out of range", i, at);
    *prev = id;
    return 0;
}

static int read_ids(wk_rbuf *r, const sem_header *h, const wk_sem_map *m, uint32_t *ids, wk_err *err) {
    size_t units = (size_t)m->layers * m->kv_heads * m->tokens;
    int64_t prev = 0;
    uint32_t i;
    int rc = 0;
    for (i = 0; i < h->n && !rc; i++) {
        int64_t id = prev;
        rc = next_id(r, i, units, &id, err);
        if (rc) break;
        if (m->level[id] != h->level) { /* also catches a duplicate: marked 255 below */
            rc = wk_err_set(err, WK_EFORMAT, "semantic batch: unit %lld at level %d, decoder has it at %d%s",
                            (long long)id, h->level, m->level[id] == 255 ? -1 : m->level[id] - 1,
                            m->level[id] == 255 ? " (duplicate in batch)" : "");
            break;
        }
        m->level[id] = 255;
        ids[i] = (uint32_t)id;
        prev = id;
    }
    for (uint32_t j = 0; j < i; j++) m->level[ids[j]] = (uint8_t)h->level; /* undo marks */
    return rc;
}

/* Reads the scales (level 0), tables and substream lengths of a batch after its ids; the substreams follow
 * at r->pos and fill the rest of the batch. lens [ceil(n / b->per)] is malloc'd. */
static int read_body(wk_rbuf *r, const sem_header *h, sem_batch *b, uint64_t **lens, wk_err *err) {
    int rc = 0;
    *lens = NULL;
    if (h->level == 0)
        for (uint32_t i = 0; i < 2 * h->n && !rc; i++) rc = wk_rbuf_u16(r, &b->scale[i], "scales", err);
    b->nsym = alphabet(&h->p, h->level, h->delta);
    b->off = h->level > 0 ? 2 : h->delta ? 2 * max_m(&h->p) : max_m(&h->p);
    b->delta = h->delta;
    for (int i = 0; i < 2 * b->D && !rc; i++) rc = wk_rc_table_read(&b->tab[i], b->nsym, h->table_bits, r, err);
    uint64_t per = 0;
    if (!rc) rc = wk_rbuf_varint(r, &per, "units per stream", err);
    if (!rc && (per < 1 || per > h->n))
        rc = wk_err_set(err, WK_EFORMAT, "semantic batch: %llu units per stream for %u units at offset %zu",
                        (unsigned long long)per, h->n, r->pos);
    if (rc) return rc;
    b->per = (int)per;
    uint32_t nsub = (uint32_t)((h->n + per - 1) / per);
    *lens = malloc(sizeof(uint64_t) * nsub);
    if (!*lens) return wk_err_set(err, WK_ENOMEM, "semantic: out of memory");
    uint64_t total = 0;
    for (uint32_t j = 0; j < nsub && !rc; j++) {
        rc = wk_rbuf_varint(r, &(*lens)[j], "stream length", err);
        if (!rc && (*lens)[j] > r->len)
            rc = wk_err_set(err, WK_EFORMAT, "semantic batch: stream %u length %llu past the end", j,
                            (unsigned long long)(*lens)[j]);
        total += rc ? 0 : (*lens)[j];
    }
    if (!rc && total != r->len - r->pos)
        rc = wk_err_set(err, WK_EFORMAT, "semantic batch: streams need %llu bytes at offset %zu, %zu follow",
                        (unsigned long long)total, r->pos, r->len - r->pos);
    return rc;
}

/* Decodes units [i0, i1) of one substream into vals [n][2][D] (fp16), without touching t or the levels. */
static int decode_units(const sem_header *h, sem_batch *b, wk_rc_dec *dec, uint32_t i0, uint32_t i1,
                        const wk_kv_tensor *t, wk_sem_map *m, uint16_t *vals, wk_err *err) {
    const int D = b->D, lim = h->level > 0 ? 2 : max_m(&h->p);
    for (uint32_t i = i0; i < i1; i++) {
        uint32_t id = b->ids[i];
        int M = layer_m(&h->p, (int)(id / ((uint32_t)t->kv_heads * t->tokens)));
        for (int kv = 0; kv < 2; kv++) {
            float step0 = h->level == 0 ? wk_half_to_float(b->scale[2 * i + kv]) / (float)M : m->step[2 * (size_t)id + kv];
            float st = ldexpf(step0, -2 * h->level);
            const uint16_t *cur = (kv ? t->v : t->k) + (size_t)id * D;
            int8_t *q = b->q + ((size_t)i * 2 + kv) * D;
            for (int d = 0; d < D; d++) {
                int s = wk_rc_dec_get(dec, &b->tab[kv * D + d], err);
                if (s < 0) return wk_err_prefix(err, "semantic batch: unit %u", i);
                int v = s - b->off + (b->delta && i > i0 ? q[d - 2 * D] : 0);
                if (v < -lim || v > lim)
                    return wk_err_set(err, WK_EFORMAT, "semantic batch: unit %u code %d outside +-%d", i, v, lim);
                q[d] = (int8_t)v;
                float x = h->level == 0 ? h16(scaled(v, step0)) : h16(wk_half_to_float(cur[d]) + scaled(v, st));
                vals[((size_t)i * 2 + kv) * D + d] = wk_float_to_half(x);
            }
            if (h->level == 0) m->step[2 * (size_t)id + kv] = step0; /* levels are set only on success */
        }
    }
    return 0;
}

/* Decodes every substream (they start at r->pos) into vals. */
static int decode_streams(wk_rbuf *r, const sem_header *h, sem_batch *b, const uint64_t *lens, const wk_kv_tensor *t,
                          wk_sem_map *m, uint16_t *vals, wk_err *err) {
    for (uint32_t i0 = 0, j = 0; i0 < h->n; i0 += (uint32_t)b->per, j++) {
        uint32_t i1 = h->n - i0 < (uint32_t)b->per ? h->n : i0 + (uint32_t)b->per;
        size_t at = r->pos, n = (size_t)lens[j];
        const uint8_t *sp = wk_rbuf_take(r, n, "stream", err);
        wk_rc_dec dec;
        if (!sp || wk_rc_dec_init(&dec, sp, n, err) || decode_units(h, b, &dec, i0, i1, t, m, vals, err))
            return wk_err_prefix(err, "semantic batch: stream %u at offset %zu", j, at);
        if (wk_rc_dec_used(&dec) != n)
            return wk_err_set(err, WK_EFORMAT, "semantic batch: stream %u at offset %zu: %zu trailing bytes", j, at,
                              n - wk_rc_dec_used(&dec));
    }
    return 0;
}

int wk_sem_batch_ids(const uint8_t *in, size_t len, int layers, int kv_heads, int tokens, int head_dim, uint32_t **ids,
                     uint32_t *n, wk_err *err) {
    *ids = NULL;
    *n = 0;
    wk_rbuf r;
    wk_rbuf_init(&r, in, len, "semantic batch");
    sem_header h;
    int rc = read_header(&r, layers, kv_heads, tokens, head_dim, &h, err);
    if (rc) return rc;
    uint32_t *out = malloc(sizeof *out * h.n);
    if (!out) return wk_err_set(err, WK_ENOMEM, "semantic: out of memory for %u ids", h.n);
    int64_t prev = 0;
    for (uint32_t i = 0; i < h.n && !rc; i++) {
        rc = next_id(&r, i, (size_t)layers * kv_heads * tokens, &prev, err);
        out[i] = (uint32_t)prev;
    }
    if (rc) {
        free(out);
        return rc;
    }
    *ids = out;
    *n = h.n;
    return 0;
}

int wk_sem_decode_batch(const uint8_t *in, size_t len, wk_kv_tensor *t, wk_sem_map *m, wk_err *err) {
    wk_rbuf r;
    wk_rbuf_init(&r, in, len, "semantic batch");
    sem_header h;
    if (m->layers != t->layers || m->kv_heads != t->kv_heads || m->tokens != t->tokens)
        return wk_err_set(err, WK_EFORMAT, "semantic batch: offset 8 (shape): map %dx%dx%d, tensor %dx%dx%d",
                          m->layers, m->kv_heads, m->tokens, t->layers, t->kv_heads, t->tokens);
    int rc = read_header(&r, t->layers, t->kv_heads, t->tokens, t->head_dim, &h, err);
    if (rc) return rc;
    const int D = t->head_dim;
    sem_batch b;
    rc = batch_alloc(&b, (int)h.n, D, err);
    uint16_t *vals = malloc(sizeof(uint16_t) * (size_t)h.n * 2 * D);
    if (!rc && !vals) rc = wk_err_set(err, WK_ENOMEM, "semantic: out of memory");
    uint64_t *lens = NULL;
    if (!rc) rc = read_ids(&r, &h, m, b.ids, err);
    if (!rc) rc = read_body(&r, &h, &b, &lens, err);
    if (!rc) rc = decode_streams(&r, &h, &b, lens, t, m, vals, err);
    free(lens);
    for (uint32_t i = 0; !rc && i < h.n; i++) { /* commit */
        uint32_t id = b.ids[i];
        memcpy(t->k + (size_t)id * D, vals + (size_t)i * 2 * D, sizeof(uint16_t) * D);
        memcpy(t->v + (size_t)id * D, vals + ((size_t)i * 2 + 1) * D, sizeof(uint16_t) * D);
        m->level[id] = (uint8_t)(h.level + 1);
    }
    batch_free(&b);
    free(vals);
    return rc;
}
