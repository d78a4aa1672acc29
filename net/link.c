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
    return wk_trace_bytes_before(l->trace, b + off) - wk_trace_bytes_before(l->trace, a + off);
}
