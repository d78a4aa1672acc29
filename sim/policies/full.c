/* full: the whole fp16 KV cache is streamed, layer by layer (in pieces of at most 32 MiB); the device decodes the first token
 * once every layer has arrived (and been copied to GPU memory where that costs time). */
#include "sim/policy.h"

static int plan(void *state, const double *param, const wk_request *req, wk_plan *plan, wk_err *err) {
    (void)state;
    (void)param;
    const wk_model_spec *m = req->model;
    double per_token = (double)wk_model_kv_values_per_token_layer(m); /* values of one token in one layer */
    int chunk = (int)(WK_UNIT_MAX_BYTES / (per_token * 2));
    if (chunk < 1) chunk = 1;
    for (int l = 0; l < m->n_layers; l++)
        for (int t0 = 0; t0 < req->context_tokens; t0 += chunk) {
            int n = req->context_tokens - t0 < chunk ? req->context_tokens - t0 : chunk;
            double values = n * per_token;
            wk_unit u = {.bytes = (int64_t)(values * 2), .layer_first = l, .layer_count = 1, .token_first = t0,
                         .token_count = n, .kv_head = -1, .kind = WK_UNIT_KV, .group = (int32_t)plan->n, .values = values,
                         .decoded_bytes = 0};
            int rc = wk_plan_push(plan, &u, err);
            if (rc) return rc;
        }
    plan->kv_values_total = (double)req->context_tokens * per_token * m->n_layers;
    return 0;
}

typedef struct {
    double kv_bytes_per_token; /* of the fp16 cache the decode step reads (per request: decide runs per event) */
} full_state;

static void start(void *state, const double *param, const wk_request *req, const wk_plan *plan) {
    (void)param;
    (void)plan;
    ((full_state *)state)->kv_bytes_per_token = wk_model_kv_bytes_per_token(req->model, 16);
}

static void decide(void *state, const double *param, const wk_view *v, wk_action *a) {
    (void)param;
    wk_policy_decode_when_complete(v, ((const full_state *)state)->kv_bytes_per_token, a);
}

const wk_policy_ops wk_policy_full = {
    .name = "full",
    .summary = "stream the fp16 KV cache layer by layer; decode when all of it arrived",
    .state_size = sizeof(full_state),
    .plan = plan,
    .start = start,
    .next_unit = wk_policy_send_in_order,
    .decide = decide,
    .wait_ignores_sender = 1,
    .direct_loop = WK_DIRECT_DECODE_WHEN_COMPLETE,
};
