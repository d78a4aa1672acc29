/* Eviction selectors (StreamingLLM, H2O, SnapKV, PyramidKV) and SimCalKV merging (see evict.h). */
#include "kv/evict.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

wk_evict_params wk_evict_defaults(wk_evict_method method, int budget) {
    return (wk_evict_params){method, budget, 8, 4, 7, 20};
}

const char *wk_evict_method_name(wk_evict_method method) {
    switch (method) {
    case WK_EVICT_STREAMING: return "streamingllm";
    case WK_EVICT_H2O: return "h2o";
    case WK_EVICT_SNAPKV: return "snapkv";
    case WK_EVICT_PYRAMIDKV: return "pyramidkv";
    }
    return "?";
}

static int keep_all(int tokens, int *keep) {
    for (int i = 0; i < tokens; i++) keep[i] = i;
    return tokens;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

typedef struct {
    float s;
    int i;
} scored;

static int cmp_scored(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->s > y->s) return -1;
    if (x->s < y->s) return 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* keep = top k of score[0..n) (ties: lower index) + [n, tokens), sorted ascending. */
static int top_k_plus_window(const float *score, int n, int k, int tokens, int *keep, wk_err *err) {
    scored *s = malloc(sizeof *s * (size_t)(n > 0 ? n : 1));
    if (!s) return wk_err_set(err, WK_ENOMEM, "evict: out of memory");
    for (int i = 0; i < n; i++) s[i] = (scored){score[i] == score[i] ? score[i] : -INFINITY, i};
    qsort(s, (size_t)n, sizeof *s, cmp_scored);
    int m = 0;
    for (int i = 0; i < k && i < n; i++) keep[m++] = s[i].i;
    for (int j = n; j < tokens; j++) keep[m++] = j;
    free(s);
    qsort(keep, (size_t)m, sizeof(int), cmp_int);
    return m;
}

int wk_evict_streaming(int tokens, int budget, int sinks, int *keep, wk_err *err) {
    if (tokens < 1 || budget < 1 || sinks < 0 || sinks > budget)
        return wk_err_set(err, WK_EINVAL, "streamingllm: tokens %d, budget %d, sinks %d", tokens, budget, sinks);
    if (tokens <= budget) return keep_all(tokens, keep);
    int m = 0;
    for (int i = 0; i < sinks; i++) keep[m++] = i;
    for (int i = tokens - (budget - sinks); i < tokens; i++) keep[m++] = i;
    return m;
}

static int check_window(const char *who, int queries, int tokens, int budget, int window, wk_err *err) {
    if (tokens < 1 || queries < 1 || queries > tokens || window < 0 || budget <= window)
        return wk_err_set(err, WK_EINVAL, "%s: queries %d, tokens %d, budget %d, window %d", who, queries, tokens,
                          budget, window);
    return 0;
}

int wk_evict_h2o(const float *attn, int queries, int tokens, int budget, int window, int *keep, wk_err *err) {
    int rc = check_window("h2o", queries, tokens, budget, window, err);
    if (rc) return rc;
    if (tokens <= budget) return keep_all(tokens, keep);
    int n = tokens - window;
    float *s = calloc((size_t)n, sizeof(float));
    if (!s) return wk_err_set(err, WK_ENOMEM, "h2o: out of memory");
    for (int i = 0; i < queries; i++)
        for (int j = 0; j < n; j++) s[j] += attn[(size_t)i * tokens + j];
    rc = top_k_plus_window(s, n, budget - window, tokens, keep, err);
    free(s);
    return rc;
}

int wk_evict_snapkv(const float *attn, int queries, int tokens, int budget, int window, int kernel, int *keep,
                    wk_err *err) {
    int rc = check_window("snapkv", queries, tokens, budget, window, err);
    if (rc) return rc;
    if (queries < window || kernel < 1)
        return wk_err_set(err, WK_EINVAL, "snapkv: %d query rows for an observation window of %d, kernel %d", queries,
                          window, kernel);
    if (tokens <= budget) return keep_all(tokens, keep);
    int n = tokens - window;
    float *s = calloc((size_t)n * 2, sizeof(float));
    if (!s) return wk_err_set(err, WK_ENOMEM, "snapkv: out of memory");
    float *pooled = s + n;
    for (int i = queries - window; i < queries; i++)
        for (int j = 0; j < n; j++) s[j] += attn[(size_t)i * tokens + j];
    for (int j = 0; j < n; j++) {
        float m = -INFINITY;
        for (int d = -kernel / 2; d <= kernel / 2; d++)
            if (j + d >= 0 && j + d < n && s[j + d] > m) m = s[j + d];
        pooled[j] = m;
    }
    rc = top_k_plus_window(pooled, n, budget - window, tokens, keep, err);
    free(s);
    return rc;
}

int wk_evict_pyramid_budgets(int layers, int tokens, int budget, int window, int beta, int *caps, wk_err *err) {
    if (layers < 1 || tokens < 1 || budget <= window || window < 0 || beta < 1)
        return wk_err_set(err, WK_EINVAL, "pyramidkv: layers %d, tokens %d, budget %d, window %d, beta %d", layers,
                          tokens, budget, window, beta);
    int B = budget - window;
    if (tokens < budget) {
        for (int l = 0; l < layers; l++) caps[l] = tokens;
        return 0;
    }
    if (tokens < 2 * B || layers == 1) {
        for (int l = 0; l < layers; l++) caps[l] = budget;
        return 0;
    }
    int min_num = B / beta, max_num = 2 * B - min_num;
    if (max_num >= tokens - window) {
        max_num = tokens - window;
        min_num = 2 * B - max_num;
    }
    int steps = (max_num - min_num) / (layers - 1);
    for (int l = 0; l < layers; l++) caps[l] = max_num - l * steps + window;
    return 0;
}

int wk_evict_select(const wk_evict_params *p, const float *attn, int layers, int kv_heads, int queries, int tokens,
                    wk_evict_keep *out, wk_err *err) {
    memset(out, 0, sizeof *out);
    if (layers < 1 || kv_heads < 1 || queries < 1 || tokens < 1)
        return wk_err_set(err, WK_EINVAL, "evict: shape %dx%dx%dx%d", layers, kv_heads, queries, tokens);
    size_t heads = (size_t)layers * kv_heads;
    out->count = malloc(sizeof(int) * heads);
    out->idx = malloc(sizeof(int) * heads * (size_t)tokens);
    int *caps = malloc(sizeof(int) * (size_t)layers);
    int rc = 0;
    if (!out->count || !out->idx || !caps) rc = wk_err_set(err, WK_ENOMEM, "evict: out of memory");
    if (!rc && p->method == WK_EVICT_PYRAMIDKV)
        rc = wk_evict_pyramid_budgets(layers, tokens, p->budget, p->window, p->beta, caps, err);
    for (int l = 0; !rc && l < layers; l++)
        for (int h = 0; !rc && h < kv_heads; h++) {
            size_t i = (size_t)l * kv_heads + h;
            const float *a = attn + i * (size_t)queries * tokens;
            int *keep = out->idx + i * (size_t)tokens, n;
            switch (p->method) {
            case WK_EVICT_STREAMING: n = wk_evict_streaming(tokens, p->budget, p->sinks, keep, err); break;
            case WK_EVICT_H2O: n = wk_evict_h2o(a, queries, tokens, p->budget, p->window, keep, err); break;
            case WK_EVICT_SNAPKV:
                n = wk_evict_snapkv(a, queries, tokens, p->budget, p->window, p->kernel, keep, err);
                break;
            case WK_EVICT_PYRAMIDKV:
                n = caps[l] >= tokens ? keep_all(tokens, keep)
                                      : wk_evict_snapkv(a, queries, tokens, caps[l], p->window, p->kernel, keep, err);
                break;
            default: n = wk_err_set(err, WK_EINVAL, "evict: unknown method %d", (int)p->method);
            }
            if (n < 0) rc = n;
            else out->count[i] = n;
        }
    free(caps);
    if (rc) {
        wk_evict_keep_free(out);
        return rc;
    }
    out->layers = layers;
    out->kv_heads = kv_heads;
    out->tokens = tokens;
    return 0;
}

void wk_evict_keep_free(wk_evict_keep *k) {
    free(k->count);
    free(k->idx);
    memset(k, 0, sizeof *k);
}

/* ---- SimCalKV ---- */

static double dot(const float *a, const float *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

int wk_simcal_merge(const float *k, const float *v, int tokens, int dim, const float *scores, const float *q,
                    double ratio, double sim_thr, float *k_out, float *v_out, int *keep, wk_err *err) {
    if (tokens < 2 || dim < 1 || !(ratio > 0) || ratio >= 1)
        return wk_err_set(err, WK_EINVAL, "simcalkv: tokens %d, dim %d, ratio %g (0 < ratio < 1)", tokens, dim, ratio);
    int n_e = (int)(tokens * ratio);
    if (n_e < 1) n_e = 1;
    if (n_e >= tokens) n_e = tokens - 1;
    scored *s = malloc(sizeof *s * (size_t)tokens);
    int *target = malloc(sizeof(int) * (size_t)tokens); /* evicted e -> kept c, or -1 */
    char *evicted = calloc((size_t)tokens, 1);
    double *norm = malloc(sizeof(double) * (size_t)tokens);
    if (!s || !target || !evicted || !norm) {
        free(s), free(target), free(evicted), free(norm);
        return wk_err_set(err, WK_ENOMEM, "simcalkv: out of memory");
    }
    /* smallest scores evicted; ties: lower position first (sort descending, take the tail reversed) */
    for (int i = 0; i < tokens; i++) s[i] = (scored){-(scores[i] == scores[i] ? scores[i] : INFINITY), i};
    qsort(s, (size_t)tokens, sizeof *s, cmp_scored);
    for (int i = 0; i < n_e; i++) evicted[s[i].i] = 1;
    for (int i = 0; i < tokens; i++) norm[i] = sqrt(dot(k + (size_t)i * dim, k + (size_t)i * dim, dim));
    for (int e = 0; e < tokens; e++) {
        target[e] = -1;
        if (!evicted[e]) continue;
        double best = -2;
        for (int c = 0; c < tokens; c++) {
            if (evicted[c]) continue;
            double den = norm[e] * norm[c];
            double cs = den > 0 ? dot(k + (size_t)e * dim, k + (size_t)c * dim, dim) / den : 0;
            if (cs > best) best = cs, target[e] = c;
        }
        if (!(best > sim_thr)) target[e] = -1;
    }
    double inv_sqrt = 1.0 / sqrt((double)dim);
    int n = 0;
    for (int c = 0; c < tokens; c++) {
        if (evicted[c]) continue;
        float *ko = k_out + (size_t)n * dim, *vo = v_out + (size_t)n * dim;
        const float *kc = k + (size_t)c * dim, *vc = v + (size_t)c * dim;
        int cnt = 0;
        double m = dot(q, kc, dim) * inv_sqrt;
        for (int e = 0; e < tokens; e++)
            if (target[e] == c) {
                cnt++;
                double lg = dot(q, k + (size_t)e * dim, dim) * inv_sqrt;
                if (lg > m) m = lg;
            }
        if (!cnt) {
            memcpy(ko, kc, sizeof(float) * dim);
            memcpy(vo, vc, sizeof(float) * dim);
        } else {
            double wc = exp(dot(q, kc, dim) * inv_sqrt - m), wsum = wc;
            double *kmean = calloc((size_t)dim * 2, sizeof(double)), *vacc = kmean + dim;
            if (!kmean) {
                free(s), free(target), free(evicted), free(norm);
                return wk_err_set(err, WK_ENOMEM, "simcalkv: out of memory");
            }
            for (int d = 0; d < dim; d++) vacc[d] = wc * vc[d];
            for (int e = 0; e < tokens; e++) {
                if (target[e] != c) continue;
                const float *ke = k + (size_t)e * dim, *ve = v + (size_t)e * dim;
                double we = exp(dot(q, ke, dim) * inv_sqrt - m);
                wsum += we;
                for (int d = 0; d < dim; d++) {
                    kmean[d] += ke[d];
                    vacc[d] += we * ve[d];
                }
            }
            for (int d = 0; d < dim; d++) {
                ko[d] = (float)((kmean[d] / cnt + kc[d]) / 2 + log(2.0));
                vo[d] = (float)(vacc[d] / wsum);
            }
            free(kmean);
        }
        keep[n++] = c;
    }
    free(s), free(target), free(evicted), free(norm);
    return n;
}
