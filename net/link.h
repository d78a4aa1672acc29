/* The link model: when does a unit handed to the link arrive at the device.
 *
 * The downlink is a byte pipe shaped by a trace. Session time 0 is trace time `trace_offset_s`.
 * Each unit travels as frames of at most `frame_payload` bytes, each carrying `frame_overhead`
 * header bytes, plus one protocol header of `unit_header` bytes per unit. Units sent back to back
 * share the pipe exactly (no rounding at unit boundaries: a Mahimahi packet can carry the end of
 * one unit and the start of the next); a pipe left idle restarts at the next send. A unit's last
 * byte arrives one-way delay after the trace delivers it. O(1) per unit while a busy period goes on
 * (a trace cursor), O(log n) when one starts. */
#ifndef WIKV_NET_LINK_H
#define WIKV_NET_LINK_H

#include <stdint.h>

#include "net/trace.h"

typedef struct wk_link_params {
    double one_way_delay_s;  /* server -> device propagation and queueing floor */
    double request_delay_s;  /* device -> server: the request's trip before the server starts */
    int frame_payload;       /* bytes of payload per frame (TCP MSS; 1448 with timestamps) */
    int frame_overhead;      /* header bytes per frame (IP + TCP with timestamps: 52) */
    int unit_header;         /* wikv wire header per unit (net/PROTOCOL.md) */
    double trace_offset_s;   /* trace time at which the session starts */
} wk_link_params;

/* 10 ms one way each direction, 1448 + 52 = 1500-byte packets, 32-byte unit header. */
wk_link_params wk_link_defaults(void);

typedef struct wk_link_model {
    const wk_trace *trace;
    wk_link_params p;
    double epoch_start;  /* trace time at which the current busy period started */
    double epoch_bytes;  /* wire bytes handed over since epoch_start */
    double free_at;      /* session time at which the pipe has delivered everything handed over */
    double wire_bytes_total;
    wk_trace_cursor cursor; /* deliveries from epoch_start */
    double first_start;     /* trace time at which the first busy period started (NaN: none yet) */
    double first_before;    /* wk_trace_bytes_before(first_start), found by its cursor */
} wk_link_model;

void wk_link_init(wk_link_model *l, const wk_trace *trace, const wk_link_params *p);
/* Wire bytes of a unit with `payload` bytes. */
double wk_link_wire_bytes(const wk_link_params *p, int64_t payload);
/* Hands a unit to the link at session time t. Returns the time its last byte leaves the trace's
 * bottleneck (when the pipe is free again); *arrival gets that plus the one-way delay. */
double wk_link_send(wk_link_model *l, double t, int64_t payload, double *arrival);
/* The same for a unit of `wire` wire bytes (wk_link_wire_bytes of its payload, computed once). Inline:
 * the simulator hands every unit over through it. */
static inline double wk_link_send_wire(wk_link_model *l, double t, double wire, double *arrival);
/* Capacity bytes the trace offers between session times a and b. */
double wk_link_capacity_bytes(const wk_link_model *l, double a, double b);

#if defined(__GNUC__)
__attribute__((always_inline)) /* the simulator's loops hand over every unit through it */
#endif
static inline double wk_link_send_wire(wk_link_model *l, double t, double wire, double *arrival) {
    double offset = l->p.trace_offset_s;
    if (t > l->free_at) { /* pipe idle: a new busy period starts now */
        l->epoch_start = t + offset;
        l->epoch_bytes = 0;
        wk_trace_cursor_init(l->trace, l->epoch_start, &l->cursor);
        if (l->first_start != l->first_start) { /* its start's bytes, for wk_link_capacity_bytes */
            l->first_start = l->epoch_start;
            l->first_before = l->trace->kind == WK_TRACE_CAPACITY ? l->cursor.base
                              : l->epoch_start > 0                ? l->cursor.base * WK_MAHIMAHI_PACKET_BYTES
                                                                  : 0;
        }
    }
    l->epoch_bytes += wire;
    l->wire_bytes_total += wire;
    double done = wk_trace_cursor_time(l->trace, &l->cursor, l->epoch_bytes) - offset; /* = time_to_deliver */
    l->free_at = done;
    if (arrival) *arrival = done + l->p.one_way_delay_s;
    return done;
}

#endif
