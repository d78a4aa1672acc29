/* The attention importance the simulator ranks KV by: WiKV's suffix-summed importance of every
 * (layer, kv-head, token) vector, from the synthetic attention model of kv/semantic.h with one fixed
 * seed, so that wikv's and hybrid's plans and the oracle all rank the same vectors the same way. */
#ifndef WIKV_SIM_IMPORTANCE_H
#define WIKV_SIM_IMPORTANCE_H

#include "core/err.h"
#include "models/model_spec.h"

/* raw: [layers][kv_heads][context], the mean attention each vector receives (what eviction selectors
 * read). */
int wk_sim_attention(const wk_model_spec *m, int context, float *raw, wk_err *err);
/* imp: [layers][kv_heads][context], filled with suffix-summed importance. */
int wk_sim_importance(const wk_model_spec *m, int context, float *imp, wk_err *err);

/* The same two, from a request: its measured importance when it has one, else the synthetic model. */
struct wk_request;
int wk_request_attention(const struct wk_request *req, float *raw, wk_err *err);
int wk_request_importance(const struct wk_request *req, float *imp, wk_err *err);

#endif
