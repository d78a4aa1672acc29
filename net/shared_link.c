/* Processor sharing over a trace: the active flows split the delivered bytes evenly between changes
 * of their number; finish times are exact trace queries, recomputed at every change. */
#include "net/shared_link.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int wk_shared_link_init(wk_shared_link *l, const wk_trace *trace, const wk_link_params *p, size_t n_flows, wk_err *err) {
    memset(l, 0, sizeof *l);
    l->flows = calloc(n_flows ? n_flows : 1, sizeof *l->flows);
    if (!l->flows) return wk_err_set(err, WK_ENOMEM, "shared link: out of memory for %zu flows", n_flows);
    l->trace = trace;
    l->p = *p;
    l->n_flows = n_flows;
    wk_shared_link_reset(l);
    return 0;
}

void wk_shared_link_reset(wk_shared_link *l) {
    memset(l->flows, 0, l->n_flows * sizeof *l->flows);
    l->n_active = 0;
    l->epoch_start = l->p.trace_offset_s;
    l->delivered = 0;
    l->updated_at = -INFINITY;
    l->free_at = -INFINITY;
    l->wire_bytes_total = 0;
}

void wk_shared_link_free(wk_shared_link *l) {
    free(l->flows);
    memset(l, 0, sizeof *l);
}

/* Wire bytes the trace delivered between the start of the busy period and session time t. */
static double offered_since_epoch(const wk_shared_link *l, double t) {
    return wk_trace_bytes_before(l->trace, t + l->p.trace_offset_s) - wk_trace_bytes_before(l->trace, l->epoch_start);
}

/* Every active flow has received `share` more bytes. */
static void serve(wk_shared_link *l, double share) {
    for (size_t i = 0; i < l->n_flows; i++) {
        wk_shared_flow *f = &l->flows[i];
        if (!f->active) continue;
        f->remaining = f->remaining > share ? f->remaining - share : 0;
    }
    l->delivered += (double)l->n_active * share;
}

/* Brings every active flow to time t at the current share. The share is capped at the smallest
 * remaining unit, whose finish event is due (ties at an instant are handled by their own events). */
static void advance(wk_shared_link *l, double t) {
    if (t <= l->updated_at) return;
    if (l->n_active > 0) {
        double rmin = INFINITY;
        for (size_t i = 0; i < l->n_flows; i++)
            if (l->flows[i].active && l->flows[i].remaining < rmin) rmin = l->flows[i].remaining;
        double share = (offered_since_epoch(l, t) - l->delivered) / (double)l->n_active;
        if (share > rmin) share = rmin;
        if (share > 0) serve(l, share);
    }
    l->updated_at = t;
}

/* Recomputes the finish time of every active flow at the current share. */
static void retime(wk_shared_link *l) {
    double n = (double)l->n_active, off = l->p.trace_offset_s;
    for (size_t i = 0; i < l->n_flows; i++) {
        wk_shared_flow *f = &l->flows[i];
        if (!f->active || f->remaining <= 0) continue; /* finishing now: its event is due */
        double t = wk_trace_time_to_deliver(l->trace, l->epoch_start, l->delivered + n * f->remaining) - off;
        if (t < l->updated_at) t = l->updated_at;
        if (t != f->finish) {
            f->finish = t;
            f->version++;
        }
    }
}

static void go_idle_if_empty(wk_shared_link *l, double t) {
    if (l->n_active == 0) l->free_at = t;
}

double wk_shared_link_send(wk_shared_link *l, size_t fi, double t, size_t unit, int64_t payload) {
    wk_shared_flow *f = &l->flows[fi];
    double wire = wk_link_wire_bytes(&l->p, payload);
    if (l->n_active == 0) {
        if (t > l->free_at) { /* idle pipe: a new busy period starts now */
            l->epoch_start = t + l->p.trace_offset_s;
            l->delivered = 0;
        }
        if (t > l->updated_at) l->updated_at = t;
    } else {
        advance(l, t);
    }
    f->active = 1;
    f->unit = unit;
    f->remaining = wire;
    f->finish = NAN; /* always differs: the new unit gets a new version */
    f->wire_bytes_total += wire;
    l->wire_bytes_total += wire;
    l->n_active++;
    retime(l);
    return f->finish;
}

void wk_shared_link_done(wk_shared_link *l, size_t fi, double t) {
    wk_shared_flow *f = &l->flows[fi];
    if (!f->active) return;
    /* exactly f's remaining bytes went to each active flow: the finish time was computed from them */
    if (f->remaining > 0) serve(l, f->remaining);
    if (t > l->updated_at) l->updated_at = t;
    f->active = 0;
    f->remaining = 0;
    l->n_active--;
    go_idle_if_empty(l, t);
    retime(l);
}

void wk_shared_link_cancel(wk_shared_link *l, size_t fi, double t) {
    wk_shared_flow *f = &l->flows[fi];
    if (!f->active) return;
    advance(l, t);
    f->active = 0;
    f->remaining = 0;
    l->n_active--;
    go_idle_if_empty(l, t);
    retime(l);
}

double wk_shared_link_remaining_at(const wk_shared_link *l, size_t fi, double t) {
    const wk_shared_flow *f = &l->flows[fi];
    if (!f->active) return 0;
    if (t <= l->updated_at) return f->remaining;
    double share = (offered_since_epoch(l, t) - l->delivered) / (double)l->n_active;
    return share >= f->remaining ? 0 : share > 0 ? f->remaining - share : f->remaining;
}

double wk_shared_link_capacity_bytes(const wk_shared_link *l, double a, double b) {
    double off = l->p.trace_offset_s;
    return wk_trace_bytes_before(l->trace, b + off) - wk_trace_bytes_before(l->trace, a + off);
}
