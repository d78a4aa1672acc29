/* cachegen: CacheGen's bandwidth-adaptive streaming. The context is cut into chunks of tokens; every
 * chunk is encoded at several quality levels (kv/cachegen.h; sizes measured by kv/codec_size.h). Before
 * sending each chunk the sender picks the finest level whose remaining bytes, at the throughput
 * measured so far, still meet the time budget (CacheGen's SLO-driven adaptation; the first chunk goes at
 * `first_level`). The device entropy-decodes chunks as they arrive and decodes the first token once
 * every chunk is in. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kv/codec_size.h"
#include "sim/policy.h"

enum { P_CHUNK, P_SLO, P_FIRST_LEVEL, P_MIN_LEVEL, P_MAX_LEVEL };
static const wk_param_desc params[] = {
    {"chunk", "context tokens per chunk", 64, 65536, 1024, 1},
    {"slo", "time budget in seconds for the whole stream, per 8K context tokens", 0.05, 10000, 2.0, 0},
    {"first_level", "level of the first chunk, before any throughput is measured", 0, WK_CG_LEVELS - 1, 2, 1},
    {"min_level", "coarsest level allowed", 0, WK_CG_LEVELS - 1, 0, 1},
    {"max_level", "finest level allowed", 0, WK_CG_LEVELS - 1, WK_CG_LEVELS - 1, 1},
};

typedef struct {
    wk_policy_sizes sizes;
    size_t chunks;
    /* [chunks + 1][WK_CG_LEVELS] bytes of chunks [c, chunks) at each level, the sums the sender
     * compares at every chunk (whole numbers below 2^53: any order of addition gives them exactly) */
    double *remaining;
    size_t next_chunk;
    double kv_bytes_per_token; /* of the fp16 cache the decode step reads (per request: decide runs per event) */
} cachegen_state;

/* Units: chunk c at level k is unit c * WK_CG_LEVELS + k (the sender sends one level per chunk). */
static int plan(void *state, const double *param, const wk_request *req, wk_plan *plan, wk_err *err) {
    cachegen_state *st = state;
    const wk_model_spec *m = req->model;
    int rc = wk_policy_sizes_ensure(&st->sizes, m, 0, req->kv_sample, err);
    if (rc) return rc;
    int chunk = (int)param[P_CHUNK];
    double values_per_token = (double)m->n_layers * (double)wk_model_kv_values_per_token_layer(m);
    st->chunks = 0;
    for (int t = 0; t < req->context_tokens; t += chunk) {
        int n = req->context_tokens - t < chunk ? req->context_tokens - t : chunk;
        for (int level = 0; level < WK_CG_LEVELS; level++) {
            wk_unit u = {.bytes = (int64_t)ceil(wk_codec_unit_bytes(&st->sizes.sizes, WK_CODEC_CACHEGEN, level, 0,
                                                                    m->n_layers, n)),
                         .layer_first = 0, .layer_count = m->n_layers, .token_first = t, .token_count = n,
                         .kv_head = -1, .level = (int16_t)level, .kind = WK_UNIT_KV, .group = t / chunk,
                         .values = values_per_token * n, .decoded_bytes = 2 * values_per_token * n};
            rc = wk_plan_push(plan, &u, err);
            if (rc) return rc;
        }
        st->chunks++;
    }
    plan->kv_values_total = values_per_token * req->context_tokens;
    double *rem = realloc(st->remaining, (st->chunks + 1) * WK_CG_LEVELS * sizeof *rem);
    if (!rem) return wk_err_set(err, WK_ENOMEM, "cachegen: out of memory for %zu chunks", st->chunks);
    st->remaining = rem;
    for (int level = 0; level < WK_CG_LEVELS; level++) {
        rem[st->chunks * WK_CG_LEVELS + (size_t)level] = 0;
        for (size_t c = st->chunks; c-- > 0;)
            rem[c * WK_CG_LEVELS + (size_t)level] =
                (double)plan->units[c * WK_CG_LEVELS + (size_t)level].bytes + rem[(c + 1) * WK_CG_LEVELS + (size_t)level];
        if (!(rem[level] < 0x1p53)) return wk_err_set(err, WK_EINVAL, "cachegen: level %d has %g bytes", level, rem[level]);
    }
    return 0;
}

static void release(void *state) {
    cachegen_state *st = state;
    free(st->remaining);
    st->remaining = NULL;
}

static void start(void *state, const double *param, const wk_request *req, const wk_plan *plan) {
    (void)param;
    (void)plan;
    cachegen_state *st = state;
    st->next_chunk = 0;
    st->kv_bytes_per_token = wk_model_kv_bytes_per_token(req->model, 16);
}

static long next_unit(void *state, const double *param, const wk_view *v) {
    cachegen_state *st = state;
    if (st->next_chunk >= st->chunks) return WK_SEND_DONE;
    int lo = (int)param[P_MIN_LEVEL], hi = (int)param[P_MAX_LEVEL];
    if (hi < lo) hi = lo;
    int level = (int)param[P_FIRST_LEVEL];
    if (v->est_bw_Bps > 0) {
        double budget_end = v->stream_start + param[P_SLO] * v->req->context_tokens / 8192.0;
        double left = budget_end - v->now;
        level = lo;
        for (int k = hi; k >= lo; k--)
            if (left > 0 && st->remaining[st->next_chunk * WK_CG_LEVELS + (size_t)k] / v->est_bw_Bps <= left) {
                level = k;
                break;
            }
    }
    if (level < lo) level = lo;
    if (level > hi) level = hi;
    return (long)(st->next_chunk++ * WK_CG_LEVELS + (size_t)level);
}

static void decide(void *state, const double *param, const wk_view *v, wk_action *a) {
    (void)param;
    wk_policy_decode_when_complete(v, ((const cachegen_state *)state)->kv_bytes_per_token, a);
}

const wk_policy_ops wk_policy_cachegen = {
    .name = "cachegen",
    .summary = "chunked, entropy-coded KV at a per-chunk quality level that meets a time budget",
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .state_size = sizeof(cachegen_state),
    .plan = plan,
    .start = start,
    .next_unit = next_unit,
    .decide = decide,
    .wait_ignores_sender = 1,
    .direct_loop = WK_DIRECT_DECODE_WHEN_COMPLETE,
    .release = release,
};
