/* Eviction baselines as streaming policies: the server keeps only the tokens a method selects per
 * (layer, kv-head) (kv/evict.h: StreamingLLM, H2O, SnapKV, PyramidKV; SimCalKV keeps the tokens its
 * merge keeps) and streams their fp16 KV layer by layer; the device decodes once everything kept has
 * arrived. In the simulator the attention the selectors read is the synthetic attention model
 * (kv/semantic.h), one observation row repeated over the window; coverage is the suffix-summed
 * importance of the kept vectors, as for wikv. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kv/evict.h"
#include "sim/importance.h"
#include "sim/policy.h"

enum { P_BUDGET, P_WINDOW };
static const wk_param_desc params[] = {
    {"budget", "tokens kept per (layer, kv-head), recent window included", 16, 1 << 20, 1024, 1},
    {"window", "recent tokens always kept / SnapKV observation window", 1, 1024, 8, 1},
};
enum { P_RATIO };
static const wk_param_desc simcal_params[] = {
    {"ratio", "fraction of the tokens merged away per (layer, kv-head)", 0.01, 0.99, 0.5, 0},
};

/* Kept tokens per (layer, head) for a method; NULL attn rows for StreamingLLM. */
static int select_kept(wk_evict_method method, const double *param, const wk_model_spec *m, int tokens,
                       const float *raw, wk_evict_keep *keep, wk_err *err) {
    int window = (int)param[P_WINDOW];
    size_t heads = (size_t)m->n_layers * (size_t)m->n_kv_heads;
    float *attn = malloc(heads * (size_t)window * (size_t)tokens * sizeof *attn);
    if (!attn) return wk_err_set(err, WK_ENOMEM, "evict: out of memory");
    for (size_t h = 0; h < heads; h++)
        for (int q = 0; q < window; q++)
            memcpy(attn + (h * (size_t)window + (size_t)q) * (size_t)tokens, raw + h * (size_t)tokens,
                   (size_t)tokens * sizeof *attn);
    wk_evict_params p = wk_evict_defaults(method, (int)param[P_BUDGET]);
    p.window = window;
    int rc = wk_evict_select(&p, attn, m->n_layers, m->n_kv_heads, window, tokens, keep, err);
    free(attn);
    return rc;
}

typedef struct {
    uint32_t *ids; /* kept vector ids of the last plan, layer by layer; units point into it */
    double kv_bytes_per_token; /* the decode step reads the kept fp16 KV (per request: decide runs per event) */
} evict_state;

/* One unit per layer: the kept vectors of all heads, fp16. */
static int plan_from_keep(evict_state *st, const wk_evict_keep *keep, const float *imp, const wk_model_spec *m,
                          int tokens, wk_plan *plan, wk_err *err) {
    double total = 0;
    size_t n = (size_t)m->n_layers * (size_t)m->n_kv_heads * (size_t)tokens, used = 0;
    for (size_t i = 0; i < n; i++) total += imp[i];
    uint32_t *ids = realloc(st->ids, n * sizeof *ids);
    if (!ids) return wk_err_set(err, WK_ENOMEM, "evict: out of memory for %zu vector ids", n);
    st->ids = ids;
    for (int l = 0; l < m->n_layers; l++) {
        double vectors = 0, importance = 0;
        size_t first = used;
        for (int h = 0; h < m->n_kv_heads; h++) {
            size_t head = (size_t)l * (size_t)m->n_kv_heads + (size_t)h;
            vectors += keep->count[head];
            for (int i = 0; i < keep->count[head]; i++) {
                size_t t = (size_t)keep->idx[head * (size_t)tokens + (size_t)i];
                importance += imp[head * (size_t)tokens + t];
                ids[used++] = (uint32_t)(head * (size_t)tokens + t);
            }
        }
        double values = vectors * 2.0 * m->head_dim;
        wk_unit u = {.bytes = (int64_t)(values * 2), .layer_first = l, .layer_count = 1, .token_count = tokens,
                     .kv_head = -1, .kind = WK_UNIT_KV, .group = l, .values = values, .importance = importance,
                     .vectors = ids + first, .n_vectors = (int32_t)(used - first)};
        int rc = wk_plan_push(plan, &u, err);
        if (rc) return rc;
    }
    plan->kv_values_total = 2.0 * m->head_dim * (double)n;
    plan->importance_total = total;
    return 0;
}

static int plan_method(evict_state *st, wk_evict_method method, const double *param, const wk_request *req,
                       wk_plan *plan, wk_err *err) {
    const wk_model_spec *m = req->model;
    int tokens = req->context_tokens;
    size_t n = (size_t)m->n_layers * (size_t)m->n_kv_heads * (size_t)tokens;
    float *raw = malloc(n * sizeof *raw), *imp = malloc(n * sizeof *imp);
    wk_evict_keep keep;
    memset(&keep, 0, sizeof keep);
    int rc = (!raw || !imp) ? wk_err_set(err, WK_ENOMEM, "evict: out of memory for %zu vectors", n) : 0;
    /* selectors read the mean attention itself; coverage is measured on its suffix sum */
    if (!rc) rc = wk_request_attention(req, raw, err);
    if (!rc) rc = wk_request_importance(req, imp, err);
    if (!rc) rc = select_kept(method, param, m, tokens, raw, &keep, err);
    if (!rc) rc = plan_from_keep(st, &keep, imp, m, tokens, plan, err);
    wk_evict_keep_free(&keep);
    free(raw);
    free(imp);
    return rc;
}

static void start(void *state, const double *param, const wk_request *req, const wk_plan *plan) {
    (void)param;
    ((evict_state *)state)->kv_bytes_per_token = (double)wk_plan_total_bytes(plan) / req->context_tokens;
}

/* Decode once all kept KV is in; no confidence test: what was evicted is gone for good. */
static void decide(void *state, const double *param, const wk_view *v, wk_action *a) {
    (void)param;
    wk_policy_decode_when_complete(v, ((const evict_state *)state)->kv_bytes_per_token, a);
}

#define EVICT_PLAN(fn, method)                                                                                       \
    static int fn(void *state, const double *param, const wk_request *req, wk_plan *plan, wk_err *err) {              \
        return plan_method(state, method, param, req, plan, err);                                                    \
    }
EVICT_PLAN(plan_streaming, WK_EVICT_STREAMING)
EVICT_PLAN(plan_h2o, WK_EVICT_H2O)
EVICT_PLAN(plan_snapkv, WK_EVICT_SNAPKV)
EVICT_PLAN(plan_pyramid, WK_EVICT_PYRAMIDKV)

/* SimCalKV keeps (1 - ratio) of the tokens by H2O scores; merging changes their values, not their size. */
static int plan_simcal(void *state, const double *param, const wk_request *req, wk_plan *plan, wk_err *err) {
    double p[2] = {ceil((1.0 - param[P_RATIO]) * req->context_tokens), 1};
    if (p[0] < 16) p[0] = 16;
    return plan_method(state, WK_EVICT_H2O, p, req, plan, err);
}

static void release(void *state) {
    evict_state *st = state;
    free(st->ids);
    st->ids = NULL;
}

#define EVICT_OPS(var, label, fn, text, prm)                                                                         \
    const wk_policy_ops var = {.name = label, .summary = text, .params = prm,                                         \
                               .n_params = sizeof prm / sizeof prm[0], .state_size = sizeof(evict_state),            \
                               .plan = fn, .start = start, .next_unit = wk_policy_send_in_order, .decide = decide,    \
                               .release = release, .wait_ignores_sender = 1, .direct_loop = WK_DIRECT_DECODE_WHEN_COMPLETE};
EVICT_OPS(wk_policy_streamingllm, "streamingllm", plan_streaming, "stream the fp16 KV of sink + recent tokens only",
          params)
EVICT_OPS(wk_policy_h2o, "h2o", plan_h2o, "stream the fp16 KV of H2O's heavy hitters + recent tokens", params)
EVICT_OPS(wk_policy_snapkv, "snapkv", plan_snapkv, "stream the fp16 KV SnapKV keeps (observation-window votes)",
          params)
EVICT_OPS(wk_policy_pyramidkv, "pyramidkv", plan_pyramid, "stream the fp16 KV PyramidKV keeps (budgets by depth)",
          params)
EVICT_OPS(wk_policy_simcalkv, "simcalkv", plan_simcal, "stream the fp16 KV SimCalKV keeps after merging", simcal_params)
