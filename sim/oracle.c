/* Oracle lower bound: fewest suffix vectors per prefix length, then a grid over the prefix length. */
#include "sim/oracle.h"
#include "sim/importance.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kv/codec_size.h"
#include "kv/semantic.h"

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

/* need[i] = fewest vectors of tokens >= i*T/GRID whose importance, added to that of the prefix,
 * reaches `coverage` of the total (imp: [L][H][T], order: all vectors by importance, descending). */
static void fill_need(const float *imp, const uint32_t *order, size_t n, int context, double coverage,
                      double *need) {
    double total = 0;
    double *prefix = calloc((size_t)context + 1, sizeof *prefix);
    double *per_token = calloc((size_t)context, sizeof *per_token);
    for (size_t i = 0; i < n; i++) {
        total += imp[i];
        per_token[i % (size_t)context] += imp[i];
    }
    for (int t = 0; t < context; t++) prefix[t + 1] = prefix[t] + per_token[t];
    for (int g = 0; g <= WK_ORACLE_GRID; g++) {
        int first = (int)((long long)context * g / WK_ORACLE_GRID);
        double want = coverage * total - prefix[first], got = 0;
        size_t k = 0;
        for (size_t i = 0; i < n && got < want; i++) {
            uint32_t id = order[i];
            if ((int)(id % (uint32_t)context) < first) continue;
            got += imp[id];
            k++;
        }
        need[g] = want > 0 ? (double)k : 0;
    }
    free(prefix);
    free(per_token);
}

int wk_oracle_prepare(const wk_model_spec *m, int context, double coverage, wk_oracle_curves *c, wk_err *err) {
    memset(c, 0, sizeof *c);
    size_t n = (size_t)m->n_layers * (size_t)m->n_kv_heads * (size_t)context;
    float *imp = malloc(n * sizeof *imp);
    uint32_t *order = malloc(n * sizeof *order);
    wk_codec_sizes *sizes = malloc(sizeof *sizes);
    int rc = 0;
    if (!imp || !order || !sizes) rc = wk_err_set(err, WK_ENOMEM, "oracle: out of memory for %zu vectors", n);
    if (!rc) {
        wk_codec_size_params p = wk_codec_size_defaults(m->n_layers, m->n_kv_heads, m->head_dim);
        rc = wk_codec_sizes_measure(&p, sizes, err);
    }
    if (!rc) {
        /* the same importance (seed and suffix sum) as the WiKV policy's plans */
        rc = wk_sim_importance(m, context, imp, err);
        if (!rc) rc = wk_sem_order(imp, m->n_layers, m->n_kv_heads, context, order, err);
    }
    if (!rc) {
        fill_need(imp, order, n, context, coverage, c->need_vectors);
        c->context = context;
        c->layers = m->n_layers;
        c->kv_heads = m->n_kv_heads;
        c->coverage = coverage;
        c->min_kv_bytes_per_token = cheapest_bytes_per_token(sizes, m->n_layers);
        c->min_bytes_per_vector = c->min_kv_bytes_per_token / (m->n_layers * m->n_kv_heads);
    }
    free(imp);
    free(order);
    free(sizes);
    return rc;
}

double wk_oracle_ttft(const wk_oracle_curves *c, const wk_trace *trace, const wk_link_params *link,
                      const wk_model_spec *m, const wk_device *d) {
    double start = link->trace_offset_s + link->request_delay_s; /* trace time the server can start */
    double decode = wk_device_decode_s(d, m, c->context, c->min_kv_bytes_per_token);
    double best = INFINITY;
    for (int i = 0; i < WK_ORACLE_GRID; i++) {
        double bytes = c->need_vectors[i + 1] * c->min_bytes_per_vector;
        double net = bytes > 0 ? wk_trace_time_to_deliver(trace, start, bytes) - link->trace_offset_s +
                                     link->one_way_delay_s
                               : 0;
        int tokens = (int)((long long)c->context * i / WK_ORACLE_GRID);
        double compute = tokens > 0 ? link->request_delay_s + wk_device_prefill_s(d, m, tokens, 0) : 0;
        best = fmin(best, fmax(net, compute) + decode);
    }
    /* the whole context computed locally: the prefill yields the first token, no decode step */
    return fmin(best, link->request_delay_s + wk_device_prefill_s(d, m, c->context, 0));
}
