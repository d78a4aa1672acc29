/* Link model over a trace: busy periods are tracked as (epoch start, bytes since) so that
 * consecutive units are delivered exactly as one continuous byte stream. */
#include "net/link.h"

#include <math.h>

wk_link_params wk_link_defaults(void) {
    wk_link_params p = {0.010, 0.010, 1448, 52, 32, 0.0};
    return p;
}

void wk_link_init(wk_link_model *l, const wk_trace *trace, const wk_link_params *p) {
    l->trace = trace;
    l->p = *p;
    l->epoch_start = p->trace_offset_s;
    l->epoch_bytes = 0;
    l->free_at = -INFINITY; /* the first send starts a busy period, and the cursor with it */
    l->wire_bytes_total = 0;
    l->cursor = (wk_trace_cursor){0};
    l->first_start = NAN;
    l->first_before = 0;
}

double wk_link_wire_bytes(const wk_link_params *p, int64_t payload) {
    double bytes = (double)payload + p->unit_header;
    double frames = p->frame_payload > 0 ? ceil(bytes / p->frame_payload) : 0;
    return bytes + frames * p->frame_overhead;
}

double wk_link_send(wk_link_model *l, double t, int64_t payload, double *arrival) {
    return wk_link_send_wire(l, t, wk_link_wire_bytes(&l->p, payload), arrival);
}

double wk_link_capacity_bytes(const wk_link_model *l, double a, double b) {
    double off = l->p.trace_offset_s;
    /* from the start of the first busy period (a request's stream start) its cursor knows the bytes
     * before: wk_trace_cursor_init finds them as wk_trace_bytes_before does */
    double before_a = a + off == l->first_start ? l->first_before : wk_trace_bytes_before(l->trace, a + off);
    return wk_trace_bytes_before(l->trace, b + off) - before_a;
}
