/* Simulator wiring: virtual clock over an event queue, trace link, roofline backend. */
#include "sim/sim.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    wk_event_queue *q;
    double now;
} virtual_clock;

static int vc_schedule(void *self, double t, int type, int64_t arg, wk_err *err) {
    virtual_clock *c = self;
    return wk_event_queue_push(c->q, t < c->now ? c->now : t, type, arg, err);
}

static int vc_next(void *self, double *now, int *type, int64_t *arg, wk_err *err) {
    (void)err;
    virtual_clock *c = self;
    wk_event ev;
    if (wk_event_queue_pop(c->q, &ev) != 0) return 1;
    c->now = ev.t;
    *now = ev.t;
    *type = ev.type;
    *arg = ev.arg;
    return 0;
}

typedef struct {
    wk_link_model model;
    virtual_clock *clock;
} trace_link;

static int tl_send(void *self, double t, size_t index, int64_t bytes, double *next_send_at, wk_err *err) {
    trace_link *l = self;
    double arrival;
    *next_send_at = wk_link_send(&l->model, t, bytes, &arrival);
    return vc_schedule(l->clock, arrival, WK_EV_ARRIVAL, (int64_t)index, err);
}

typedef struct {
    const wk_request *req;
    const wk_quality_table *quality;
    const char *family;
} profile_backend;

/* The confidence test of a step on partial KV, as the quality table predicts it for this request. */
static int step_accepted(const profile_backend *b, const wk_view *v) {
    double coverage = wk_view_coverage(v);
    if (coverage >= 1.0 || !b->quality) return 1;
    double accept, f1;
    if (wk_quality_lookup(b->quality, b->family, coverage, &accept, &f1) != 0) return 1;
    return wk_quality_draw(b->req->seed) < accept;
}

static int pb_run(void *self, const wk_action *a, const wk_view *v, const uint32_t *units, size_t n, double *seconds,
                  int *accepted, wk_err *err) {
    profile_backend *b = self;
    const wk_device *d = b->req->device;
    const wk_model_spec *m = b->req->model;
    *accepted = 1;
    switch (a->kind) {
    case WK_ACT_DECODE_KV: {
        double t = 0;
        for (size_t i = 0; i < n; i++) {
            const wk_unit *u = &v->plan->units[units[i]];
            t += wk_device_h2d_s(d, (double)u->bytes) + wk_device_kv_decode_s(d, u->decoded_bytes);
        }
        *seconds = t;
        return 0;
    }
    case WK_ACT_PREFILL:
        *seconds = wk_device_prefill_s(d, m, a->tokens, a->position);
        return 0;
    case WK_ACT_EMIT:
        *accepted = step_accepted(b, v);
        *seconds = wk_device_decode_s(d, m, v->req->context_tokens + v->tokens_emitted, a->kv_bytes_per_token);
        return 0;
    default:
        return wk_err_set(err, WK_EINVAL, "backend: action %d has no compute", (int)a->kind);
    }
}

void wk_sim_init(wk_sim *sim) {
    memset(sim, 0, sizeof *sim);
    wk_session_init(&sim->session);
    wk_event_queue_init(&sim->queue);
    wk_plan_init(&sim->plan);
}

void wk_sim_free(wk_sim *sim) {
    wk_session_free(&sim->session);
    wk_event_queue_free(&sim->queue);
    wk_plan_free(&sim->plan);
}

static int ensure_plan(wk_sim *sim, wk_policy *pol, const wk_request *req, wk_err *err) {
    char key[512];
    snprintf(key, sizeof key, "%s|%s|%d|%d|%s", pol->spec, req->model->name, req->context_tokens,
             req->model->n_layers, req->device->name);
    if (sim->plan.n > 0 && strcmp(key, sim->plan_key) == 0) return 0;
    wk_plan_clear(&sim->plan);
    sim->plan_key[0] = '\0';
    int rc = pol->ops->plan(pol->state, pol->param, req, &sim->plan, err);
    if (rc) return rc;
    snprintf(sim->plan_key, sizeof sim->plan_key, "%s", key);
    return 0;
}

int wk_sim_request(wk_sim *sim, wk_policy *pol, const wk_sim_config *cfg, wk_timeline *tl, wk_sim_result *out,
                   wk_err *err) {
    if (cfg->context_tokens <= 0 || cfg->output_tokens <= 0)
        return wk_err_set(err, WK_EINVAL, "sim: context and output tokens must be positive");
    wk_request req = {cfg->model, cfg->device, cfg->context_tokens, cfg->output_tokens, cfg->task, cfg->seed, NULL};
    int rc = ensure_plan(sim, pol, &req, err);
    if (rc) return rc;
    wk_event_queue_clear(&sim->queue);
    virtual_clock clock = {&sim->queue, 0};
    trace_link link;
    wk_link_init(&link.model, cfg->trace, &cfg->link);
    link.clock = &clock;
    profile_backend backend = {&req, cfg->quality, pol->ops->name};
    wk_session_clock c = {&clock, vc_schedule, vc_next};
    wk_session_link l = {&link, tl_send};
    wk_session_backend b = {&backend, pb_run};
    memset(out, 0, sizeof *out);
    rc = wk_session_run(&sim->session, pol, &req, &sim->plan, &c, &l, &b, cfg->link.request_delay_s, tl, &out->s, err);
    if (rc) return rc;
    out->wire_bytes_total = link.model.wire_bytes_total;
    out->link_utilisation = NAN;
    if (out->s.ok && out->s.payload_bytes_total > 0) {
        double wire_first = link.model.wire_bytes_total * (double)out->s.payload_bytes_sent /
                            (double)out->s.payload_bytes_total;
        double cap = wk_link_capacity_bytes(&link.model, out->s.stream_start, out->s.ttft_s);
        out->link_utilisation = cap > 0 ? fmin(1.0, wire_first / cap) : NAN;
    }
    return 0;
}
