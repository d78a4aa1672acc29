/* The simulator: one request on a trace, with a model on a device, under a policy. Plugs the trace
 * link (net/link.h), the device-profile backend (models/device.h) and a virtual clock (event queue)
 * into the session driver. Reuses its memory and the last stream plan across requests, so sweeps
 * allocate nothing per request. */
#ifndef WIKV_SIM_SIM_H
#define WIKV_SIM_SIM_H

#include "net/link.h"
#include "sim/quality.h"
#include "sim/event_queue.h"
#include "sim/session.h"

typedef struct wk_sim_config {
    const wk_trace *trace;
    wk_link_params link;
    const wk_model_spec *model;
    const wk_device *device;
    int context_tokens;
    int output_tokens;
    const char *task;
    uint64_t seed;
    const wk_quality_table *quality; /* confidence-test outcomes on partial KV; NULL: every step passes */
} wk_sim_config;

typedef struct wk_sim_result {
    wk_session_result s;
    double link_utilisation;   /* wire bytes sent by the first token / capacity offered until then */
    double wire_bytes_total;
} wk_sim_result;

typedef struct wk_sim {
    wk_session session;
    wk_event_queue queue;
    wk_plan plan;
    char plan_key[512];        /* policy spec + model + context of the cached plan */
} wk_sim;

void wk_sim_init(wk_sim *sim);
void wk_sim_free(wk_sim *sim);
/* Simulates one request; `tl` (optional) receives its timeline. */
int wk_sim_request(wk_sim *sim, wk_policy *policy, const wk_sim_config *cfg, wk_timeline *tl, wk_sim_result *out,
                   wk_err *err);

#endif
