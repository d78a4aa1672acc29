/* A link shared by several devices behind one access point: one trace, its capacity divided fairly
 * among the flows that have bytes in flight (processor sharing).
 *
 * Each flow (one device's stream) hands over one unit at a time, as net/link.h does: the next unit
 * goes when the last byte of the previous one leaves the bottleneck, and units sent back to back form
 * one continuous byte stream (wire bytes, frames and headers as wk_link_wire_bytes). While n flows are
 * active each gets 1/n of the bytes the trace delivers; a unit's finish time is exact for the current
 * n and is recomputed for every active flow whenever n changes (a flow starts, finishes or is
 * cancelled). A flow whose finish time changed gets a new version number, so the caller can drop the
 * events it posted for an older version. With one flow the times are those of wk_link_send.
 *
 * Internally, `delivered` counts wire bytes the trace delivered since the busy period began (at trace
 * time epoch_start), so a finish time is one exact query: the time the trace has delivered
 * `delivered + n x remaining` bytes since epoch_start. O(flows + log trace) per change. */
#ifndef WIKV_NET_SHARED_LINK_H
#define WIKV_NET_SHARED_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "net/link.h"

typedef struct wk_shared_flow {
    int active;              /* a unit is in flight */
    size_t unit;             /* index of the unit in flight (the caller's numbering) */
    double remaining;        /* its wire bytes not yet delivered, as of the link's last update */
    double finish;           /* session time its last byte leaves the bottleneck at the current share */
    uint64_t version;        /* bumped whenever `finish` changes */
    uint64_t posted;         /* version the caller last posted an event for (the caller keeps it) */
    double wire_bytes_total; /* wire bytes this flow handed over */
} wk_shared_flow;

typedef struct wk_shared_link {
    const wk_trace *trace;
    wk_link_params p;
    wk_shared_flow *flows;   /* [n_flows] */
    size_t n_flows, n_active;
    double epoch_start;      /* trace time at which the current busy period started */
    double delivered;        /* wire bytes delivered since epoch_start, as of updated_at */
    double updated_at;       /* session time of the last update */
    double free_at;          /* session time at which the link last went idle */
    double wire_bytes_total;
} wk_shared_link;

int wk_shared_link_init(wk_shared_link *l, const wk_trace *trace, const wk_link_params *p, size_t n_flows, wk_err *err);
/* Back to the state after init (same flows), without allocating. */
void wk_shared_link_reset(wk_shared_link *l);
void wk_shared_link_free(wk_shared_link *l);
/* Flow f (idle) hands over a unit of `payload` bytes at session time t >= the last update; returns its
 * finish time at the new share. Every active flow is re-timed. */
double wk_shared_link_send(wk_shared_link *l, size_t f, double t, size_t unit, int64_t payload);
/* The unit of flow f left the bottleneck at t = flows[f].finish: the flow goes idle; others are re-timed. */
void wk_shared_link_done(wk_shared_link *l, size_t f, double t);
/* Flow f stops at t (its device needs no more): the rest of its unit is dropped; others are re-timed. */
void wk_shared_link_cancel(wk_shared_link *l, size_t f, double t);
/* Wire bytes of flow f's unit in flight not yet delivered at session time t (t at least the last
 * update and no later than the earliest finish among active flows), at the current share; 0 when f
 * is idle. A query: the link does not change (real-time pacers ask it between events). */
double wk_shared_link_remaining_at(const wk_shared_link *l, size_t f, double t);
/* Capacity bytes the trace offers between session times a and b. */
double wk_shared_link_capacity_bytes(const wk_shared_link *l, double a, double b);

#endif
