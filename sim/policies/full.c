/* full: the whole fp16 KV cache is streamed, layer by layer; the device decodes the first token
 * once every layer has arrived (and been copied to GPU memory where that costs time). */
#include "sim/policy.h"

static int plan(void *state, const double *param, const wk_request *req, wk_plan *plan, wk_err *err) {
    (void)state;
    (void)param;
    const wk_model_spec *m = req->model;
    double values = (double)req->context_tokens * (double)wk_model_kv_values_per_token_layer(m);
    for (int l = 0; l < m->n_layers; l++) {
        wk_unit u = {.bytes = (int64_t)(values * 2), .layer_first = l, .layer_count = 1, .token_count = req->context_tokens,
                     .kv_head = -1, .kind = WK_UNIT_KV, .group = l, .values = values, .decoded_bytes = 0};
        int rc = wk_plan_push(plan, &u, err);
        if (rc) return rc;
    }
    plan->kv_values_total = values * m->n_layers;
    return 0;
}

static void decide(void *state, const double *param, const wk_view *v, wk_action *a) {
    (void)state;
    (void)param;
    wk_policy_decode_when_complete(v, wk_model_kv_bytes_per_token(v->req->model, 16), a);
}

const wk_policy_ops wk_policy_full = {
    .name = "full",
    .summary = "stream the fp16 KV cache layer by layer; decode when all of it arrived",
    .plan = plan,
    .next_unit = wk_policy_send_in_order,
    .decide = decide,
};
