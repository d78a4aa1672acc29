/* Synthetic importance for simulated plans. */
#include "sim/importance.h"

#include <string.h>

#include "kv/semantic.h"
#include "sim/policy.h"

#define WK_SIM_IMPORTANCE_SEED 0x5EED

int wk_sim_attention(const wk_model_spec *m, int context, float *raw, wk_err *err) {
    return wk_sem_synth_importance(WK_SIM_IMPORTANCE_SEED, m->n_layers, m->n_kv_heads, context, raw, err);
}

int wk_sim_importance(const wk_model_spec *m, int context, float *imp, wk_err *err) {
    int rc = wk_sim_attention(m, context, imp, err);
    if (rc) return rc;
    wk_sem_suffix_sum(imp, m->n_layers, m->n_kv_heads, context);
    return 0;
}

int wk_request_attention(const wk_request *req, float *raw, wk_err *err) {
    const wk_model_spec *m = req->model;
    if (!req->importance) return wk_sim_attention(m, req->context_tokens, raw, err);
    memcpy(raw, req->importance, (size_t)m->n_layers * m->n_kv_heads * req->context_tokens * sizeof *raw);
    return 0;
}

int wk_request_importance(const wk_request *req, float *imp, wk_err *err) {
    int rc = wk_request_attention(req, imp, err);
    if (!rc) wk_sem_suffix_sum(imp, req->model->n_layers, req->model->n_kv_heads, req->context_tokens);
    return rc;
}
