/* Simulator wiring: virtual clock over an event queue, trace link, roofline backend. */
#include "sim/sim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The virtual clock through its table (the session posts to and pops the queue itself when the
 * clock names it, as wk_sim_request's does). */
typedef struct {
    wk_event_queue *q;
    double now;
} virtual_clock;

static int vc_schedule(void *self, double t, int type, int64_t arg, wk_err *err) {
    virtual_clock *c = self;
    return wk_event_queue_push_owned(c->q, t < c->now ? c->now : t, 0, type, arg, err);
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
    const wk_request *req;
    const wk_quality_table *quality;
    const char *family;
    int have_prefill_cost;       /* prefill_cost holds the request's model's (at its first prefill) */
    wk_prefill_cost prefill_cost;
} profile_backend;

/* The confidence test of a step on partial KV, as the quality table predicts it for this request. */
static int step_accepted(const profile_backend *b, const wk_view *v) {
    double coverage = wk_view_coverage(v);
    if (coverage >= 1.0 || !b->quality) return 1;
    double accept, f1;
    if (wk_quality_lookup(b->quality, b->family, coverage, &accept, &f1) != 0) return 1;
    return wk_quality_draw(b->req->seed) < accept;
}

/* Seconds to copy a unit to the device and decode it. */
static double unit_decode_s(const wk_device *d, const char *policy, const wk_unit *u) {
    return wk_device_h2d_s(d, (double)u->bytes) + wk_device_kv_decode_policy_s(d, policy, u->decoded_bytes, u->values);
}

static int pb_run(void *self, const wk_action *a, const wk_view *v, const uint32_t *units, size_t n, double *seconds,
                  int *accepted, wk_err *err) {
    profile_backend *b = self;
    const wk_device *d = b->req->device;
    const wk_model_spec *m = b->req->model;
    *accepted = 1;
    switch (a->kind) {
    case WK_ACT_DECODE_KV: {
        double t = 0; /* (a session given the simulator's per-unit table sums it without this call) */
        for (size_t i = 0; i < n; i++) t += unit_decode_s(d, b->family, &v->plan->units[units[i]]);
        *seconds = t;
        return 0;
    }
    case WK_ACT_PREFILL:
        if (!b->have_prefill_cost) {
            b->prefill_cost = wk_prefill_cost_of(m);
            b->have_prefill_cost = 1;
        }
        *seconds = wk_device_prefill_step_s(d, &b->prefill_cost, a->tokens, a->position);
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
    free(sim->unit_wire);
    free(sim->unit_decode_s);
}

/* The cached plan was built by this policy state from these parameters, model, context, importance.
 * Parameters and model are compared bit for bit (a difference in the last digit is a new plan). */
static int plan_key_equal(const wk_sim_plan_key *k, const wk_policy *pol, const wk_request *req) {
    return k->ops == pol->ops && k->state == pol->state &&
           memcmp(k->param, pol->param, pol->ops->n_params * sizeof k->param[0]) == 0 &&
           memcmp(&k->model, req->model, sizeof k->model) == 0 && k->context_tokens == req->context_tokens &&
           k->importance == req->importance && k->kv_sample == req->kv_sample;
}

/* Builds the plan unless the cached one was built from the same key by this policy state. */
static int ensure_plan(wk_sim *sim, wk_policy *pol, const wk_request *req, wk_err *err) {
    if (sim->plan_valid && pol->planned_for == &sim->plan && plan_key_equal(&sim->plan_key, pol, req)) return 0;
    wk_plan_clear(&sim->plan);
    sim->plan_valid = sim->wire_valid = sim->decode_valid = 0;
    pol->planned_for = NULL;
    int rc = pol->ops->plan(pol->state, pol->param, req, &sim->plan, err);
    if (rc) return rc;
    wk_sim_plan_key *k = &sim->plan_key;
    k->ops = pol->ops;
    k->state = pol->state;
    memcpy(k->param, pol->param, sizeof k->param);
    memcpy(&k->model, req->model, sizeof k->model);
    k->context_tokens = req->context_tokens;
    k->importance = req->importance;
    k->kv_sample = req->kv_sample;
    sim->plan_valid = 1;
    pol->planned_for = &sim->plan;
    return 0;
}

/* The device's numbers a unit's copy and decode seconds read (unit_decode_s), compared bit for bit:
 * per request, instead of the whole profile. */
static int same_decode_rates(const wk_device *a, const wk_device *b) {
    if (memcmp(&a->h2d_Bps, &b->h2d_Bps, sizeof a->h2d_Bps) != 0 ||
        memcmp(&a->kv_decode_Bps, &b->kv_decode_Bps, sizeof a->kv_decode_Bps) != 0 || a->n_kv_rates != b->n_kv_rates)
        return 0;
    for (int i = 0; i < a->n_kv_rates; i++)
        if (strcmp(a->kv_rates[i].policy, b->kv_rates[i].policy) != 0 ||
            memcmp(&a->kv_rates[i].Bps, &b->kv_rates[i].Bps, sizeof a->kv_rates[i].Bps) != 0)
            return 0;
    return 1;
}

/* The per-unit tables of the current plan for this link's framing and this device, unless they are. */
static int ensure_unit_costs(wk_sim *sim, const wk_link_params *link, const wk_device *dev, const char *policy,
                             wk_err *err) {
    size_t n = sim->plan.n;
    if (n > sim->unit_cap) {
        double *w = realloc(sim->unit_wire, n * sizeof *w);
        if (w) sim->unit_wire = w;
        double *d = w ? realloc(sim->unit_decode_s, n * sizeof *d) : NULL;
        if (d) sim->unit_decode_s = d;
        if (!w || !d) return wk_err_set(err, WK_ENOMEM, "sim: out of memory for %zu units", n);
        sim->unit_cap = n;
        sim->wire_valid = sim->decode_valid = 0;
    }
    int framing[3] = {link->frame_payload, link->frame_overhead, link->unit_header};
    if (!sim->wire_valid || memcmp(framing, sim->wire_key, sizeof framing) != 0) {
        for (size_t i = 0; i < n; i++) sim->unit_wire[i] = wk_link_wire_bytes(link, sim->plan.units[i].bytes);
        memcpy(sim->wire_key, framing, sizeof framing);
        sim->wire_valid = 1;
    }
    if (!sim->decode_valid || !same_decode_rates(dev, &sim->decode_key)) {
        /* the plan is one policy's (its key holds the policy), so the policy needs no place in this key */
        for (size_t i = 0; i < n; i++) sim->unit_decode_s[i] = unit_decode_s(dev, policy, &sim->plan.units[i]);
        sim->decode_key = *dev;
        sim->decode_valid = 1;
    }
    return 0;
}

int wk_sim_request(wk_sim *sim, wk_policy *pol, const wk_sim_config *cfg, wk_timeline *tl, wk_sim_result *out,
                   wk_err *err) {
    if (cfg->context_tokens <= 0 || cfg->output_tokens <= 0)
        return wk_err_set(err, WK_EINVAL, "sim: context and output tokens must be positive");
    wk_request req = {cfg->model, cfg->device, cfg->context_tokens, cfg->output_tokens, cfg->task, cfg->seed, NULL,
                       cfg->kv_sample};
    int rc = ensure_plan(sim, pol, &req, err);
    if (!rc) rc = ensure_unit_costs(sim, &cfg->link, cfg->device, pol->ops->name, err);
    if (rc) return rc;
    wk_event_queue_clear(&sim->queue);
    virtual_clock clock = {&sim->queue, 0};
    wk_link_model link;
    wk_link_init(&link, cfg->trace, &cfg->link);
    profile_backend backend = {.req = &req, .quality = cfg->quality, .family = pol->ops->name};
    wk_session_clock c = {&clock, vc_schedule, vc_next, &sim->queue};
    wk_session_link l = {NULL, NULL, &link, sim->unit_wire};
    wk_session_backend b = {&backend, pb_run, sim->unit_decode_s};
    out->link_utilisation = out->wire_bytes_total = 0; /* the session clears out->s */
    rc = wk_session_run(&sim->session, pol, &req, &sim->plan, &c, &l, &b, cfg->link.request_delay_s, tl, &out->s, err);
    if (rc) return rc;
    out->wire_bytes_total = link.wire_bytes_total;
    out->link_utilisation = NAN;
    if (out->s.ok && out->s.payload_bytes_total > 0) {
        double wire_first = link.wire_bytes_total * (double)out->s.payload_bytes_sent /
                            (double)out->s.payload_bytes_total;
        double cap = wk_link_capacity_bytes(&link, out->s.stream_start, out->s.ttft_s);
        out->link_utilisation = cap > 0 ? fmin(1.0, wire_first / cap) : NAN;
    }
    return 0;
}

/* ---- several devices on one shared link ---- */

enum { EV_LINK_DONE = 16 }; /* a unit left the shared bottleneck; arg = the flow's version */

/* Per device: its clock is the shared queue seen from its own time origin, its link is its flow. */
struct wk_sim_slot {
    wk_sim_shared *g;
    int32_t k;
    double origin;           /* global time at which its request is sent */
    double *now;             /* global time of the event being handled */
    int done;
    wk_request req;
    profile_backend backend;
    wk_session_clock c;
    wk_session_link l;
    wk_session_backend b;
};

static int slot_schedule(void *self, double t, int type, int64_t arg, wk_err *err) {
    struct wk_sim_slot *s = self;
    double at = s->origin + t;
    return wk_event_queue_push_owned(&s->g->queue, at < *s->now ? *s->now : at, s->k, type, arg, err);
}

static int slot_next(void *self, double *now, int *type, int64_t *arg, wk_err *err) {
    (void)self, (void)now, (void)type, (void)arg;
    return wk_err_set(err, WK_ESTATE, "shared sim: sessions are stepped, not run");
}

/* Posts a done event for every flow whose finish time changed. */
static int post_retimed(wk_sim_shared *g, wk_err *err) {
    for (size_t k = 0; k < g->link.n_flows; k++) {
        wk_shared_flow *f = &g->link.flows[k];
        if (!f->active || f->version == f->posted) continue;
        f->posted = f->version;
        int rc = wk_event_queue_push_owned(&g->queue, f->finish, (int32_t)k, EV_LINK_DONE, (int64_t)f->version, err);
        if (rc) return rc;
    }
    return 0;
}

static int slot_send(void *self, double t, size_t index, int64_t bytes, double *next_send_at, wk_err *err) {
    struct wk_sim_slot *s = self;
    double finish = wk_shared_link_send(&s->g->link, (size_t)s->k, s->origin + t, index, bytes);
    *next_send_at = finish - s->origin;
    int rc = post_retimed(s->g, err);
    return rc ? rc : 1; /* the link posts the sender's next turn: it may be re-timed */
}

static int grow_slots(wk_sim_shared *g, size_t n, wk_err *err) {
    if (n <= g->cap) return 0;
    wk_sim *dev = realloc(g->dev, n * sizeof *dev);
    if (dev) g->dev = dev;
    struct wk_sim_slot *slot = dev ? realloc(g->slot, n * sizeof *slot) : NULL;
    if (slot) g->slot = slot;
    if (!dev || !slot) return wk_err_set(err, WK_ENOMEM, "shared sim: out of memory for %zu devices", n);
    /* moved simulators: a policy's planned_for may now name another device's plan, so plan anew */
    for (size_t k = 0; k < g->cap; k++) g->dev[k].plan_valid = 0;
    for (size_t k = g->cap; k < n; k++) wk_sim_init(&g->dev[k]);
    g->cap = n;
    return 0;
}

void wk_sim_shared_init(wk_sim_shared *g) {
    memset(g, 0, sizeof *g);
    wk_event_queue_init(&g->queue);
}

void wk_sim_shared_free(wk_sim_shared *g) {
    for (size_t k = 0; k < g->cap; k++) wk_sim_free(&g->dev[k]);
    free(g->dev);
    free(g->slot);
    wk_event_queue_free(&g->queue);
    wk_shared_link_free(&g->link);
    memset(g, 0, sizeof *g);
}

static int start_devices(wk_sim_shared *g, wk_policy *pols, size_t n, const wk_sim_config *cfg, double stagger_s,
                         double *now, wk_sim_result *out, wk_err *err) {
    for (size_t k = 0; k < n; k++) {
        struct wk_sim_slot *s = &g->slot[k];
        memset(s, 0, sizeof *s);
        s->g = g;
        s->k = (int32_t)k;
        s->origin = (double)k * stagger_s;
        s->now = now;
        s->req = (wk_request){cfg->model, cfg->device, cfg->context_tokens, cfg->output_tokens, cfg->task, cfg->seed, NULL,
                              cfg->kv_sample};
        s->backend = (profile_backend){.req = &s->req, .quality = cfg->quality, .family = pols[k].ops->name};
        s->c = (wk_session_clock){s, slot_schedule, slot_next, NULL};
        s->l = (wk_session_link){s, slot_send, NULL, NULL};
        s->b = (wk_session_backend){&s->backend, pb_run, NULL};
        int rc = ensure_plan(&g->dev[k], &pols[k], &s->req, err);
        memset(&out[k], 0, sizeof out[k]);
        if (!rc) rc = wk_session_begin(&g->dev[k].session, &pols[k], &s->req, &g->dev[k].plan, &s->c, &s->l, &s->b,
                                       cfg->link.request_delay_s, NULL, &out[k].s, err);
        if (rc) return rc;
    }
    return 0;
}

/* Hands one event to device k's session; a device that is done closes its stream. */
static int step_device(wk_sim_shared *g, size_t k, double t, int type, int64_t arg, size_t *left, wk_err *err) {
    struct wk_sim_slot *s = &g->slot[k];
    if (s->done) return 0;
    int done = 0;
    int rc = wk_session_step(&g->dev[k].session, t - s->origin, type, arg, &done, err);
    if (rc || !done) return rc;
    s->done = 1;
    (*left)--;
    wk_shared_link_cancel(&g->link, k, t);
    return post_retimed(g, err);
}

/* A unit of flow k left the bottleneck at t: its arrival and the sender's next turn, in the order
 * the single link posts them (arrival first), so one device alone replays wk_sim_request. */
static int link_done(wk_sim_shared *g, size_t k, double t, const wk_link_params *p, size_t *left, wk_err *err) {
    wk_shared_flow *f = &g->link.flows[k];
    size_t unit = f->unit;
    wk_shared_link_done(&g->link, k, t);
    int rc = post_retimed(g, err);
    if (rc) return rc;
    if (p->one_way_delay_s > 0)
        rc = wk_event_queue_push_owned(&g->queue, t + p->one_way_delay_s, (int32_t)k, WK_EV_ARRIVAL, (int64_t)unit, err);
    else
        rc = step_device(g, k, t, WK_EV_ARRIVAL, (int64_t)unit, left, err);
    if (!rc) rc = step_device(g, k, t, WK_EV_SENDER, 0, left, err);
    return rc;
}

static void shared_results(wk_sim_shared *g, size_t n, wk_sim_result *out) {
    for (size_t k = 0; k < n; k++) {
        wk_sim_result *o = &out[k];
        const wk_shared_flow *f = &g->link.flows[k];
        o->wire_bytes_total = f->wire_bytes_total;
        o->link_utilisation = NAN;
        if (o->s.ok && o->s.payload_bytes_total > 0) {
            double wire_first = f->wire_bytes_total * (double)o->s.payload_bytes_sent / (double)o->s.payload_bytes_total;
            double origin = g->slot[k].origin;
            double cap = wk_shared_link_capacity_bytes(&g->link, origin + o->s.stream_start, origin + o->s.ttft_s);
            o->link_utilisation = cap > 0 ? fmin(1.0, wire_first / cap) : NAN;
        }
    }
}

int wk_sim_shared_request(wk_sim_shared *g, wk_policy *pols, size_t n, const wk_sim_config *cfg, double stagger_s,
                          wk_sim_result *out, wk_err *err) {
    if (cfg->context_tokens <= 0 || cfg->output_tokens <= 0 || n == 0 || n > INT32_MAX || !(stagger_s >= 0))
        return wk_err_set(err, WK_EINVAL, "shared sim: need positive context, output tokens and devices, stagger >= 0");
    int rc = grow_slots(g, n, err);
    if (rc) return rc;
    if (g->link.n_flows != n) {
        wk_shared_link_free(&g->link);
        rc = wk_shared_link_init(&g->link, cfg->trace, &cfg->link, n, err);
        if (rc) return rc;
    }
    g->link.trace = cfg->trace;
    g->link.p = cfg->link;
    wk_shared_link_reset(&g->link);
    wk_event_queue_clear(&g->queue);
    double now = 0;
    rc = start_devices(g, pols, n, cfg, stagger_s, &now, out, err);
    size_t left = n;
    while (!rc && left > 0) {
        wk_event ev;
        if (wk_event_queue_pop(&g->queue, &ev) != 0) { /* nothing pending: whoever is left is stuck */
            for (size_t k = 0; k < n; k++)
                if (!g->slot[k].done) wk_session_stall(&g->dev[k].session);
            break;
        }
        now = ev.t;
        size_t k = (size_t)ev.owner;
        if (ev.type == EV_LINK_DONE) {
            const wk_shared_flow *f = &g->link.flows[k];
            if (f->active && (uint64_t)ev.arg == f->version) rc = link_done(g, k, ev.t, &cfg->link, &left, err);
            continue; /* else: stale, the flow was re-timed or closed */
        }
        rc = step_device(g, k, ev.t, ev.type, ev.arg, &left, err);
    }
    if (rc) return rc;
    for (size_t k = 0; k < n; k++) wk_session_end(&g->dev[k].session);
    shared_results(g, n, out);
    return 0;
}
