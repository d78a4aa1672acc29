/* Oracle lower bound: coverage curves, then a grid over the locally computed fraction. */
#include "sim/oracle.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/stats.h"
#include "kv/codec_size.h"
#include "kv/semantic.h"

/* cum[k] = share of the total in the largest k*n/G values of v (v sorted descending in place). */
static void coverage_curve(double *v, size_t n, double *cum) {
    wk_sort_doubles(v, n);
    double total = 0;
    for (size_t i = 0; i < n; i++) total += v[i];
    double acc = 0;
    size_t taken = 0;
    cum[0] = 0;
    for (int k = 1; k <= WK_ORACLE_CURVE; k++) {
        size_t upto = (size_t)((double)n * k / WK_ORACLE_CURVE);
        while (taken < upto) acc += v[n - 1 - taken++]; /* ascending sort: take from the top */
        cum[k] = total > 0 ? acc / total : 1;
    }
    cum[WK_ORACLE_CURVE] = 1;
}

static double cheapest_bytes_per_token(const wk_codec_sizes *s, int layers) {
    double best = INFINITY;
    for (int level = 0; level < WK_CG_LEVELS; level++) {
        double t = 0;
        for (int l = 0; l < layers; l++) t += wk_codec_bpt(s, WK_CODEC_CACHEGEN, level, l);
        best = fmin(best, t);
    }
    double kivi = 0, wikv = 0;
    for (int l = 0; l < layers; l++) {
        kivi += wk_codec_bpt(s, WK_CODEC_KIVI2, 0, l);
        wikv += wk_codec_bpt(s, WK_CODEC_WIKV, 0, l);
    }
    return fmin(best, fmin(kivi, wikv));
}

int wk_oracle_prepare(const wk_model_spec *m, int context, wk_oracle_curves *c, wk_err *err) {
    memset(c, 0, sizeof *c);
    size_t n = (size_t)m->n_layers * (size_t)m->n_kv_heads * (size_t)context;
    float *imp = malloc(n * sizeof *imp);
    double *vec = malloc(n * sizeof *vec), *tok = calloc((size_t)context, sizeof *tok);
    wk_codec_sizes *sizes = malloc(sizeof *sizes);
    int rc = 0;
    if (!imp || !vec || !tok || !sizes) rc = wk_err_set(err, WK_ENOMEM, "oracle: out of memory for %zu vectors", n);
    if (!rc) {
        wk_codec_size_params p = wk_codec_size_defaults(m->n_layers, m->n_kv_heads, m->head_dim);
        rc = wk_codec_sizes_measure(&p, sizes, err);
    }
    if (!rc) {
        /* the same importance (seed and suffix sum) as the WiKV policy's plans */
        wk_sem_synth_importance(0x5EED, m->n_layers, m->n_kv_heads, context, imp);
        wk_sem_suffix_sum(imp, m->n_layers, m->n_kv_heads, context);
        for (size_t i = 0; i < n; i++) {
            vec[i] = imp[i];
            tok[i % (size_t)context] += imp[i];
        }
        coverage_curve(vec, n, c->vec_cov);
        coverage_curve(tok, (size_t)context, c->tok_cov);
        c->context = context;
        c->layers = m->n_layers;
        c->kv_heads = m->n_kv_heads;
        c->min_kv_bytes_per_token = cheapest_bytes_per_token(sizes, m->n_layers);
        c->min_bytes_per_vector = c->min_kv_bytes_per_token / (m->n_layers * m->n_kv_heads);
    }
    free(imp);
    free(vec);
    free(tok);
    free(sizes);
    return rc;
}

/* Fewest vectors (lower bound) whose coverage reaches r: the curve point just below r. */
static double vectors_for(const wk_oracle_curves *c, double r) {
    if (r <= 0) return 0;
    int k = 0;
    while (k < WK_ORACLE_CURVE && c->vec_cov[k + 1] < r) k++;
    double total = (double)c->layers * c->kv_heads * c->context;
    return total * k / WK_ORACLE_CURVE;
}

double wk_oracle_ttft(const wk_oracle_curves *c, const wk_trace *trace, const wk_link_params *link,
                      const wk_model_spec *m, const wk_device *d, double coverage) {
    const int grid = 64;
    double start = link->trace_offset_s + link->request_delay_s; /* trace time the server can start */
    double decode = wk_device_decode_s(d, m, c->context, c->min_kv_bytes_per_token);
    double best = INFINITY;
    for (int i = 0; i < grid; i++) {
        double x_lo = (double)i / grid, x_hi = (double)(i + 1) / grid;
        double local_cov = c->tok_cov[(int)(x_hi * WK_ORACLE_CURVE)]; /* the most the larger x can cover */
        double bytes = vectors_for(c, coverage - local_cov) * c->min_bytes_per_vector;
        double net = bytes > 0 ? wk_trace_time_to_deliver(trace, start, bytes) - link->trace_offset_s +
                                     link->one_way_delay_s
                               : 0;
        int tokens_lo = (int)floor(x_lo * c->context);
        double compute = tokens_lo > 0 ? link->request_delay_s + wk_device_prefill_s(d, m, tokens_lo, 0) : 0;
        best = fmin(best, fmax(net, compute) + decode);
    }
    /* everything computed locally: the prefill yields the first token, no decode step */
    best = fmin(best, link->request_delay_s + wk_device_prefill_s(d, m, c->context, 0));
    return best;
}
