/* The session driver: runs one request by feeding a policy's decisions to a link, a backend and a
 * clock, each a small vtable. The simulator plugs in the trace link, the device-profile backend and
 * a virtual clock (sim/sim.h); the real run plugs in a socket link, the engine and the wall clock.
 * One loop for both, so a policy behaves the same in each. */
#ifndef WIKV_SIM_SESSION_H
#define WIKV_SIM_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "net/link.h"
#include "sim/event_queue.h"
#include "sim/policy.h"

enum { WK_EV_SENDER = 1, WK_EV_ARRIVAL = 2, WK_EV_COMPUTE_DONE = 3, WK_EV_TIMER = 4 };

typedef struct wk_session_clock {
    void *self;
    int (*schedule)(void *self, double t, int type, int64_t arg, wk_err *err);
    /* Waits for the next event: sets *now, *type, *arg; returns 0, or 1 when nothing is pending. */
    int (*next)(void *self, double *now, int *type, int64_t *arg, wk_err *err);
    /* Optional (NULL: use schedule and next): the clock is this event queue, a virtual clock whose time
     * is that of the event last popped (the simulator's). The session then posts its events into it
     * directly, at max(t, the session's time) as schedule would, and wk_session_run pops it itself:
     * no call through the table per event. */
    wk_event_queue *queue;
} wk_session_clock;

/* A link whose send and model are NULL says the sender half runs elsewhere (the exec client): the session never
 * calls next_unit, counts arrivals as sent, and a WK_EV_SENDER event from the clock means "the sender
 * is done". */
typedef struct wk_session_link {
    void *self;
    /* Hands unit `index` (payload bytes) over at time t; reports its arrival as a WK_EV_ARRIVAL
     * event through the clock and sets the time the sender may hand over the next unit. Returns 0,
     * or 1 when the link posts that WK_EV_SENDER event itself because the time may still change (a
     * link shared with other devices re-times it; *next_send_at is then the estimate at hand-over). */
    int (*send)(void *self, double t, size_t index, int64_t bytes, double *next_send_at, wk_err *err);
    /* Or (send NULL) the link is this trace link model (the simulator's), unit i being unit_wire[i]
     * wire bytes on it: the session hands units to it inline and posts their arrivals as send would,
     * with no call through the table per unit. */
    wk_link_model *model;
    const double *unit_wire;
} wk_session_link;

typedef struct wk_session_backend {
    void *self;
    /* Runs an action on the device starting at v->now: for DECODE_KV the units are units[0..n).
     * Returns the duration; for EMIT sets *accepted (the step passed the confidence test). */
    int (*run)(void *self, const wk_action *a, const wk_view *v, const uint32_t *units, size_t n, double *seconds,
               int *accepted, wk_err *err);
    /* Optional (NULL: use run for every action): a DECODE_KV of units takes the sum of their entries
     * in this table (the simulator's per-unit copy and decode seconds), without a call. */
    const double *unit_decode_s;
} wk_session_backend;

/* Timeline of one request, for the events table (optional). */
typedef enum { WK_TL_ARRIVE, WK_TL_USABLE, WK_TL_TOKEN, WK_TL_PREFILL, WK_TL_DECODE_KV, WK_TL_EMIT } wk_tl_type;
typedef struct wk_tl_entry {
    double t;
    int type;    /* wk_tl_type */
    int level;
    double value;
} wk_tl_entry;
typedef struct wk_timeline {
    wk_tl_entry *e;
    size_t n, cap;
    size_t arrival_stride; /* record every k-th arrival (and the last) */
} wk_timeline;
void wk_timeline_free(wk_timeline *tl);
const char *wk_timeline_type_name(int type);

typedef struct wk_session_result {
    int ok;
    char fail_reason[256];
    double ttft_s;               /* request sent -> first token */
    double total_s;              /* request sent -> last token */
    double tpot_s;               /* mean time per output token after the first (NaN if one token) */
    int tokens;
    int64_t payload_bytes_sent;  /* by the first token */
    int64_t payload_bytes_total; /* by the end */
    double kv_fraction_at_first; /* KV values usable at the first token / values of the full KV */
    double coverage_at_first;    /* importance coverage at the first token (wk_view_coverage) */
    double net_wait_s, kv_decode_s, compute_s; /* receiver time before the first token, by cause */
    double stream_start;
    size_t events;               /* events processed (for speed benchmarks) */
} wk_session_result;

/* State of the request in progress (private to session.c; here so a session needs no allocation). */
typedef struct wk_session_live {
    wk_view v;
    wk_policy *pol;
    const wk_session_clock *clock;
    const wk_session_link *link;
    const wk_session_backend *be;
    wk_event_queue *queue;  /* clock->queue */
    int output_tokens;      /* req->output_tokens */
    wk_timeline *tl;
    wk_session_result *out;
    size_t decode_cursor;   /* position in arrival_order from which undecoded units are searched */
    size_t pending_n;
    wk_action current;      /* action in progress; while the device is idle, the policy's last decision */
    double current_start;
    int busy;
    int sender_idle;        /* the sender returned -1 or the link is waiting for the next send slot */
    int remote_sender;      /* the link has no send: the sender half runs elsewhere (exec client) */
    double decode_s, compute_s;
    int first_done;
    int done;
    size_t events;
    double timer_at;        /* the receiver's pending wake-up (NaN: none): not posted twice */
    int wait_skips_sender;  /* the policy's wait_ignores_sender, and the sender half runs here */
    double wait_until;      /* until then the receiver's last decision (a WAIT) holds over sender turns */
} wk_session_live;

/* An arrival in flight, in the direct loop's lane of arrivals (private to session.c). */
typedef struct wk_session_arrival {
    double t;
    uint64_t seq;
    uint32_t unit;
} wk_session_arrival;

typedef struct wk_session {
    /* working memory, reused across requests (no allocation per request once warmed up) */
    uint8_t *unit_state;
    uint32_t *arrival_order;
    uint32_t *pending;     /* units of the DECODE_KV in progress */
    wk_session_arrival *lane; /* arrivals in flight (the direct loop) */
    size_t cap;
    double max_session_s;  /* give up (fail the request) after this much session time */
    /* The direct loop: wk_session_run runs a request whose policy sets direct_loop, on the simulator's
     * virtual clock, trace link and per-unit decode table, with no timeline and no per-token importance,
     * without the event queue: its events are one sender turn, arrivals in the order they were sent, one
     * computation and a few wake-ups, each kept apart and popped in the queue's order (time, then order
     * of posting). The same steps as the general loop (for a policy that declares its receiver one of
     * the shared rules, the rule applied in the loop), the same results bit for bit; a request that
     * leaves that shape (a sender that answers WK_SEND_LATER, arrivals out of order, more wake-ups, an
     * error, a stall, the time limit) is run again from its start in the general loop. */
    int general_only;      /* 1: every request in the general loop (the reference; tests compare the two) */
    size_t direct_runs;    /* requests the direct loop finished */
    size_t direct_handed;  /* requests it handed to the general loop */
    wk_session_live live;
} wk_session;

void wk_session_init(wk_session *s);
void wk_session_free(wk_session *s);

/* Runs one request. The plan must already be built by policy->ops->plan. `tl` may be NULL. */
int wk_session_run(wk_session *s, wk_policy *policy, const wk_request *req, const wk_plan *plan,
                   const wk_session_clock *clock, const wk_session_link *link, const wk_session_backend *backend,
                   double request_delay_s, wk_timeline *tl, wk_session_result *out, wk_err *err);

/* The same run in steps, for several sessions on one clock (sim/sim.h, shared links): begin, then
 * hand every event of this session to wk_session_step until *done, then wk_session_end. The clock's
 * `next` is not used in this form: the caller pops the events. wk_session_run is a loop over these. */
int wk_session_begin(wk_session *s, wk_policy *policy, const wk_request *req, const wk_plan *plan,
                     const wk_session_clock *clock, const wk_session_link *link, const wk_session_backend *backend,
                     double request_delay_s, wk_timeline *tl, wk_session_result *out, wk_err *err);
/* Handles one event (session time `now`); sets *done when the request ended (answered or failed). */
int wk_session_step(wk_session *s, double now, int type, int64_t arg, int *done, wk_err *err);
/* No event is pending for this session any more: a deadlock unless an action is in flight. */
void wk_session_stall(wk_session *s);
/* Fills the rest of the result. */
void wk_session_end(wk_session *s);

#endif
