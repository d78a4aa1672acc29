/* An event queue ordered by (time, insertion sequence): events at the same time pop in the order
 * they were pushed, so every simulation is deterministic.
 *
 * Two parts, popped by comparing their first events: a short array kept sorted by insertion from its
 * back, and a binary heap for what does not fit in it. A simulated request has a few events pending at
 * any time (the sender's turn, the arrivals in flight, the device's computation, a wake-up) and most
 * new ones are due after most pending ones, so a push moves a few events at most and a pop takes the
 * array's first: no search. The heap takes the overflow when many sessions share one queue. The pop
 * order is exactly that of one heap on (time, sequence) for times that are not NaN (an event at a NaN
 * time pops in an order that is deterministic but not specified). */
#ifndef WIKV_SIM_EVENT_QUEUE_H
#define WIKV_SIM_EVENT_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct wk_event {
    double t;
    uint64_t seq;   /* set by push: tie-breaker */
    int32_t owner;  /* which session the event is for, when several share a queue (0 otherwise) */
    int type;
    int64_t arg;
} wk_event;

enum { WK_EVENT_NEAR = 32 }; /* events the sorted array holds */

typedef struct wk_event_queue {
    wk_event near[WK_EVENT_NEAR]; /* events lo..hi-1, sorted by (t, seq) */
    size_t lo, hi;
    wk_event *heap;               /* [cap] min-heap on (t, seq): n events */
    size_t n, cap;
    uint64_t next_seq;
} wk_event_queue;

/* The fast paths below are inlined even where the compiler would not (one call per event matters). */
#if defined(__GNUC__)
#define WK_EVENT_INLINE static inline __attribute__((always_inline))
#else
#define WK_EVENT_INLINE static inline
#endif

void wk_event_queue_init(wk_event_queue *q);
void wk_event_queue_free(wk_event_queue *q);
void wk_event_queue_clear(wk_event_queue *q);
int wk_event_queue_push(wk_event_queue *q, double t, int type, int64_t arg, wk_err *err);
/* The same for an event of session `owner`. */
WK_EVENT_INLINE int wk_event_queue_push_owned(wk_event_queue *q, double t, int32_t owner, int type, int64_t arg,
                                             wk_err *err);
/* Returns 0 and fills ev, or -1 when empty. */
WK_EVENT_INLINE int wk_event_queue_pop(wk_event_queue *q, wk_event *ev);
/* The event pop would return, left in the queue; -1 when empty. */
int wk_event_queue_peek(const wk_event_queue *q, wk_event *ev);
/* Events pending. */
size_t wk_event_queue_size(const wk_event_queue *q);

/* ---- inline fast paths (a simulated request pushes and pops every event through these) ---- */

/* Out of line: a push when the array's end is reached (it is compacted, or the heap takes one). */
int wk_event_queue_push_slow(wk_event_queue *q, const wk_event *ev, wk_err *err);
/* Out of line: pops the heap's top. */
void wk_event_queue_pop_heap(wk_event_queue *q, wk_event *ev);

static inline int wk_event_before(const wk_event *a, const wk_event *b) {
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

/* Fields are stored and loaded one by one, not as a struct copy: an event is often popped a few
 * instructions after its push, and a wide load of narrower stores still in flight stalls. */
static inline void wk_event_copy(wk_event *to, const wk_event *from) {
    to->t = from->t;
    to->seq = from->seq;
    to->owner = from->owner;
    to->type = from->type;
    to->arg = from->arg;
}

WK_EVENT_INLINE int wk_event_queue_push_owned(wk_event_queue *q, double t, int32_t owner, int type, int64_t arg,
                                             wk_err *err) {
    size_t j = q->hi;
    if (j == WK_EVENT_NEAR) return wk_event_queue_push_slow(q, &(wk_event){t, q->next_seq++, owner, type, arg}, err);
    /* the new event has the largest seq: it goes after every event due no later than it */
    wk_event *e = q->near;
    for (; j > q->lo && e[j - 1].t > t; j--) wk_event_copy(&e[j], &e[j - 1]);
    e[j].t = t;
    e[j].seq = q->next_seq++;
    e[j].owner = owner;
    e[j].type = type;
    e[j].arg = arg;
    q->hi++;
    return 0;
}

WK_EVENT_INLINE int wk_event_queue_pop(wk_event_queue *q, wk_event *ev) {
    size_t lo = q->lo;
    if (lo < q->hi && (q->n == 0 || wk_event_before(&q->near[lo], &q->heap[0]))) {
        wk_event_copy(ev, &q->near[lo]);
        if (++lo == q->hi) lo = q->hi = 0; /* empty: start again at the array's beginning */
        q->lo = lo;
        return 0;
    }
    if (q->n == 0) return -1;
    wk_event_queue_pop_heap(q, ev);
    return 0;
}

#endif
