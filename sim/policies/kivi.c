/* kivi2 / kivi4: the KV cache quantized by KIVI (2 or 4 bits, scales and zero points per group, the
 * most recent tokens in fp16) is streamed layer by layer (head by head where a layer is too big for a
 * unit); the device decodes with KIVI's fused kernels straight from the quantized cache once every
 * layer has arrived. */
#include "kv/kivi.h"
#include "sim/policy.h"

enum { P_GROUP, P_RESIDUAL };
static const wk_param_desc params[] = {
    {"group", "group size: tokens per key group, channels per value group", 8, 256, 32, 1},
    {"residual", "most recent tokens kept in fp16", 0, 4096, 128, 1},
};

static wk_kivi_params kivi_params(const double *param, int bits) {
    wk_kivi_params p = {bits, (int)param[P_GROUP], (int)param[P_RESIDUAL]};
    if (p.residual < p.group) p.residual = p.group; /* KIVI requires R to be a multiple of G */
    p.residual -= p.residual % p.group;
    return p;
}

/* One unit per layer, or per (layer, KV head) where a layer would exceed WK_UNIT_MAX_BYTES (KIVI-4 of an
 * 8B model beyond ~48K tokens): KIVI groups keys along tokens, so a head's tokens stay in one unit. */
static int plan_bits(const double *param, const wk_request *req, wk_plan *plan, int bits, wk_err *err) {
    const wk_model_spec *m = req->model;
    wk_kivi_params kp = kivi_params(param, bits);
    int64_t head_bytes = wk_kivi_bytes(&kp, req->context_tokens, m->head_dim);
    int per_head = (int64_t)m->n_kv_heads * head_bytes > WK_UNIT_MAX_BYTES;
    int units_per_layer = per_head ? m->n_kv_heads : 1;
    double values = (double)req->context_tokens * (double)wk_model_kv_values_per_token_layer(m) / units_per_layer;
    for (int l = 0; l < m->n_layers; l++)
        for (int h = 0; h < units_per_layer; h++) {
            wk_unit u = {.bytes = head_bytes * (m->n_kv_heads / units_per_layer), .layer_first = l, .layer_count = 1,
                         .token_count = req->context_tokens, .kv_head = per_head ? h : -1, .kind = WK_UNIT_KV,
                         .group = (int32_t)plan->n, .values = values, .decoded_bytes = 0};
            int rc = wk_plan_push(plan, &u, err);
            if (rc) return rc;
        }
    plan->kv_values_total = values * units_per_layer * m->n_layers;
    return 0;
}

static int plan2(void *state, const double *param, const wk_request *req, wk_plan *plan, wk_err *err) {
    (void)state;
    return plan_bits(param, req, plan, 2, err);
}

static int plan4(void *state, const double *param, const wk_request *req, wk_plan *plan, wk_err *err) {
    (void)state;
    return plan_bits(param, req, plan, 4, err);
}

typedef struct {
    double kv_bytes_per_token; /* the decode step reads the quantized cache (per request: decide runs per event) */
} kivi_state;

static void start(void *state, const double *param, const wk_request *req, const wk_plan *plan) {
    (void)param;
    ((kivi_state *)state)->kv_bytes_per_token = (double)wk_plan_total_bytes(plan) / req->context_tokens;
}

static void decide(void *state, const double *param, const wk_view *v, wk_action *a) {
    (void)param;
    wk_policy_decode_when_complete(v, ((const kivi_state *)state)->kv_bytes_per_token, a);
}

const wk_policy_ops wk_policy_kivi2 = {
    .name = "kivi2",
    .summary = "stream KIVI 2-bit KV layer by layer; decode from the quantized cache when all arrived",
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .state_size = sizeof(kivi_state),
    .plan = plan2,
    .start = start,
    .next_unit = wk_policy_send_in_order,
    .decide = decide,
    .wait_ignores_sender = 1,
    .direct_loop = WK_DIRECT_DECODE_WHEN_COMPLETE,
};

const wk_policy_ops wk_policy_kivi4 = {
    .name = "kivi4",
    .summary = "stream KIVI 4-bit KV layer by layer; decode from the quantized cache when all arrived",
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .state_size = sizeof(kivi_state),
    .plan = plan4,
    .start = start,
    .next_unit = wk_policy_send_in_order,
    .decide = decide,
    .wait_ignores_sender = 1,
    .direct_loop = WK_DIRECT_DECODE_WHEN_COMPLETE,
};
