/* The simulator: one request on a trace, with a model on a device, under a policy. Plugs the trace
 * link (net/link.h), the device-profile backend (models/device.h) and a virtual clock (event queue)
 * into the session driver. Reuses its memory, the last stream plan and what follows from the plan
 * alone across requests, so sweeps allocate and re-derive nothing per request. */
#ifndef WIKV_SIM_SIM_H
#define WIKV_SIM_SIM_H

#include "net/link.h"
#include "net/shared_link.h"
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
    const wk_kv_tensor *kv_sample;   /* the context's real KV for codec sizes (wk_request); NULL: synthetic */
} wk_sim_config;

typedef struct wk_sim_result {
    wk_session_result s;
    double link_utilisation;   /* wire bytes sent by the first token / capacity offered until then */
    double wire_bytes_total;
} wk_sim_result;

/* What a cached plan was built from: everything plan() reads. A plan is reused only when all of it
 * is equal (parameters and model compared bit for bit) and the policy's state is still the one that
 * built it (wk_policy.planned_for). */
typedef struct wk_sim_plan_key {
    const wk_policy_ops *ops;
    const void *state;
    double param[WK_POLICY_MAX_PARAMS];
    wk_model_spec model;
    int context_tokens;
    const float *importance;
    const wk_kv_tensor *kv_sample;
} wk_sim_plan_key;

typedef struct wk_sim {
    wk_session session;
    wk_event_queue queue;
    wk_plan plan;
    int plan_valid;
    wk_sim_plan_key plan_key;
    /* per unit of the plan, the same for every request of a cell: */
    double *unit_wire;         /* [plan.n] wire bytes (net/link.h) under wire_key's framing */
    double *unit_decode_s;     /* [plan.n] seconds to copy and decode it on decode_key (models/device.h) */
    size_t unit_cap;
    int wire_valid, decode_valid;
    int wire_key[3];           /* frame_payload, frame_overhead, unit_header */
    wk_device decode_key;
} wk_sim;

void wk_sim_init(wk_sim *sim);
void wk_sim_free(wk_sim *sim);
/* Simulates one request; `tl` (optional) receives its timeline. */
int wk_sim_request(wk_sim *sim, wk_policy *policy, const wk_sim_config *cfg, wk_timeline *tl, wk_sim_result *out,
                   wk_err *err);

/* Several devices behind one access point: n requests on one trace whose capacity they share fairly
 * (net/shared_link.h). Device k runs its own request under policies[k] (its own policy state and
 * plan), sent at k x stagger_s; its times in out[k] count from its own request. All sessions advance
 * on one event queue whose events carry the device. A device that has its answer closes its stream,
 * so the others get its share. With n = 1 the result is that of wk_sim_request. */
struct wk_sim_slot;
typedef struct wk_sim_shared {
    wk_sim *dev;               /* [cap] session and plan cache of each device */
    struct wk_sim_slot *slot;  /* [cap] its clock, link and backend adaptors */
    size_t cap;
    wk_event_queue queue;      /* one queue for all devices */
    wk_shared_link link;
} wk_sim_shared;

void wk_sim_shared_init(wk_sim_shared *g);
void wk_sim_shared_free(wk_sim_shared *g);
int wk_sim_shared_request(wk_sim_shared *g, wk_policy *policies, size_t n, const wk_sim_config *cfg, double stagger_s,
                          wk_sim_result *out, wk_err *err);

#endif
