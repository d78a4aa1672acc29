/* prefill: the context goes to the device as text and the device computes its KV itself, chunk by
 * chunk as the text arrives; the step that computes the last context token yields the first token. */
#include "sim/policy.h"

enum { P_CHUNK, P_TEXT_BYTES };
static const wk_param_desc params[] = {
    {"chunk", "context tokens per prefill step", 16, 131072, 512, 1},
    {"text_bytes", "bytes of text per token on the wire (UTF-8 text is ~4 bytes per token)", 1, 16, 4, 1},
};

static int plan(void *state, const double *param, const wk_request *req, wk_plan *plan, wk_err *err) {
    (void)state;
    int chunk = (int)param[P_CHUNK];
    for (int t = 0; t < req->context_tokens; t += chunk) {
        int n = req->context_tokens - t < chunk ? req->context_tokens - t : chunk;
        wk_unit u = {.bytes = (int64_t)n * (int64_t)param[P_TEXT_BYTES], .token_first = t, .token_count = n,
                     .kv_head = -1, .kind = WK_UNIT_TEXT, .group = t / chunk};
        int rc = wk_plan_push(plan, &u, err);
        if (rc) return rc;
    }
    plan->kv_values_total = (double)req->context_tokens * req->model->n_layers *
                            (double)wk_model_kv_values_per_token_layer(req->model);
    return 0;
}

static void decide(void *state, const double *param, const wk_view *v, wk_action *a) {
    (void)state;
    wk_policy_prefill_as_arrives(v, (int)param[P_CHUNK], a);
}

const wk_policy_ops wk_policy_prefill = {
    .name = "prefill",
    .summary = "send the text; the device prefills it chunk by chunk as it arrives",
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .plan = plan,
    .next_unit = wk_policy_send_in_order,
    .decide = decide,
    .wait_ignores_sender = 1,
    .direct_loop = WK_DIRECT_PREFILL_AS_ARRIVES, /* its chunk is its first parameter */
};
