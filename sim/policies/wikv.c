/* wikv: WiKV's progressive streaming with paced decoding.
 *
 * Sender: every (layer, kv-head, token) vector ranked by attention importance (suffix-summed over
 * layers, so a token's shallow layers come first), cut into units of `batch` vectors in that order;
 * level 0 (coarse, stream-once) of every unit first, then the refinement levels in the same order.
 * Unit sizes are the real semantic codec's, measured on a KV sample (kv/codec_size.h); the ranking
 * comes from a synthetic attention model in the simulator (kv/semantic.h) and from the model's real
 * attention in exec.
 * Receiver: decodes units as they arrive; from the first threshold of level-0 units on, tries a decode
 * step on the KV present; a step that fails the confidence test waits for `step` more of the stream;
 * the TTFT and per-token deadlines force a step. With all level-0 units in, it decodes normally. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kv/codec_size.h"
#include "kv/semantic.h"
#include "sim/importance.h"
#include "sim/policy.h"

enum { P_THRESHOLD, P_STEP, P_TTFT_DEADLINE, P_TOKEN_DEADLINE, P_BATCH, P_LEVELS };
static const wk_param_desc params[] = {
    {"threshold", "fraction of level-0 units before the first decode attempt", 0.01, 1, 0.25, 0},
    {"step", "more of the stream (fraction) to wait for after a failed attempt", 0.005, 1, 0.1, 0},
    {"ttft_deadline", "seconds per 8K context tokens after which the first token is forced (0: none)", 0, 1000,
     1.4, 0},
    {"token_deadline", "seconds after the previous token after which the next is forced (0: none)", 0, 100, 0.15, 0},
    {"batch", "vectors per streamed unit", 64, 1 << 20, 4096, 1},
    {"levels", "progressive levels streamed: 1 = coarse only, up to 4 with refinements", 1, WK_SEM_MAX_LEVELS, 1, 1},
};

typedef struct {
    wk_policy_sizes sizes;     /* measured once per model shape */
    size_t level0_units;
    double next_check;         /* fraction of level-0 KV at which the next attempt happens */
    int attempted;             /* an attempt is in flight (its outcome shows in the next view) */
    double kv_bytes_per_token; /* of the fp16 cache steps read (per request: decide runs per event) */
    uint32_t *order;           /* [vectors] stream order of the last plan; units point into it */
} wikv_state;

/* Appends one level of units over order[0..n) in batches. */
static int push_level(const wikv_state *st, const wk_model_spec *m, const uint32_t *order, const float *imp, size_t n,
                      int tokens, int batch, int level, wk_plan *plan, wk_err *err) {
    double vector_values = 2.0 * m->head_dim;
    for (size_t first = 0; first < n; first += (size_t)batch) {
        size_t count = n - first < (size_t)batch ? n - first : (size_t)batch;
        double bytes = st->sizes.sizes.wikv_batch_bytes[level], importance = 0;
        int layer_min = m->n_layers, layer_max = 0;
        for (size_t i = first; i < first + count; i++) {
            int layer = (int)(order[i] / ((uint32_t)m->n_kv_heads * (uint32_t)tokens));
            bytes += wk_codec_bpt(&st->sizes.sizes, WK_CODEC_WIKV, level, layer) / m->n_kv_heads;
            importance += imp[order[i]];
            if (layer < layer_min) layer_min = layer;
            if (layer > layer_max) layer_max = layer;
        }
        wk_unit u = {.bytes = (int64_t)ceil(bytes), .layer_first = layer_min, .layer_count = layer_max - layer_min + 1,
                     .token_first = 0, .token_count = tokens, .kv_head = -1, .level = (int16_t)level,
                     .kind = WK_UNIT_KV, .group = (int32_t)(first / (size_t)batch),
                     .values = level == 0 ? vector_values * (double)count : 0,
                     .decoded_bytes = 2 * vector_values * (double)count,
                     .importance = level == 0 ? importance : 0, .vectors = order + first,
                     .n_vectors = (int32_t)count};
        int rc = wk_plan_push(plan, &u, err);
        if (rc) return rc;
    }
    return 0;
}

static int plan(void *state, const double *param, const wk_request *req, wk_plan *plan, wk_err *err) {
    wikv_state *st = state;
    const wk_model_spec *m = req->model;
    int batch = (int)param[P_BATCH], tokens = req->context_tokens;
    int rc = wk_policy_sizes_ensure(&st->sizes, m, batch, req->kv_sample, err);
    if (rc) return rc;
    size_t n = (size_t)m->n_layers * (size_t)m->n_kv_heads * (size_t)tokens;
    if (n > UINT32_MAX) return wk_err_set(err, WK_EINVAL, "wikv: %zu vectors exceed the 32-bit unit ids", n);
    float *imp = malloc(n * sizeof *imp);
    uint32_t *order = realloc(st->order, n * sizeof *order);
    if (order) st->order = order;
    if (!imp || !order) {
        free(imp);
        return wk_err_set(err, WK_ENOMEM, "wikv: out of memory for %zu vectors", n);
    }
    /* one ranking per (model, context): the plan is reused across requests */
    rc = wk_request_importance(req, imp, err);
    if (!rc) rc = wk_sem_order(imp, m->n_layers, m->n_kv_heads, tokens, order, err);
    for (int level = 0; !rc && level < (int)param[P_LEVELS]; level++)
        rc = push_level(st, m, order, imp, n, tokens, batch, level, plan, err);
    if (!rc) {
        for (size_t i = 0; i < n; i++) plan->importance_total += imp[i];
        plan->kv_values_total = 2.0 * m->head_dim * (double)n;
        st->level0_units = (n + (size_t)batch - 1) / (size_t)batch;
    }
    free(imp);
    return rc;
}

static void release(void *state) {
    wikv_state *st = state;
    free(st->order);
    st->order = NULL;
}

static void start(void *state, const double *param, const wk_request *req, const wk_plan *plan) {
    (void)plan;
    wikv_state *st = state;
    st->next_check = param[P_THRESHOLD];
    st->attempted = 0;
    st->kv_bytes_per_token = wk_model_kv_bytes_per_token(req->model, 16); /* decoded into an fp16 cache */
}

static void decide(void *state, const double *param, const wk_view *v, wk_action *a) {
    wikv_state *st = state;
    double fraction = v->kv_values_usable / v->plan->kv_values_total;
    if (st->attempted) { /* the last attempt ended: accepted or not, wait for `step` more */
        st->attempted = 0;
        st->next_check = fmax(st->next_check, fraction) + param[P_STEP];
    }
    if (wk_policy_decode_arrived(v, a)) return;
    a->kv_bytes_per_token = st->kv_bytes_per_token;
    double due = wk_policy_deadline(v, param[P_TTFT_DEADLINE], param[P_TOKEN_DEADLINE]);
    if (fraction >= 1.0 || v->now >= due) {
        a->kind = WK_ACT_EMIT;
        a->force = 1;
        return;
    }
    if (fraction >= st->next_check) {
        a->kind = WK_ACT_EMIT;
        st->attempted = 1;
        return;
    }
    a->kind = WK_ACT_WAIT;
    a->wake_at = isfinite(due) ? due : -1;
}

const wk_policy_ops wk_policy_wikv = {
    .name = "wikv",
    .summary = "attention-ranked progressive KV stream with paced decoding on the KV present",
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .state_size = sizeof(wikv_state),
    .plan = plan,
    .start = start,
    .next_unit = wk_policy_send_in_order,
    .decide = decide,
    .wait_ignores_sender = 1,
    .direct_loop = WK_DIRECT_LOOP,
    .release = release,
};
