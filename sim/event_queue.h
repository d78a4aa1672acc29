/* An event queue ordered by (time, insertion sequence): events at the same time pop in the order
 * they were pushed, so every simulation is deterministic.
 *
 * Parts popped by comparing their heads: a few runs, each a FIFO of events of some types pushed in
 * non-decreasing time order (a link's arrivals come in send order, a sender's turns and a device's
 * computations one after another, so most events land in their type's run at O(1) even while a far
 * deadline waits in another), and a binary heap for the rest. The pop order is exactly that of one
 * heap on (time, sequence). */
#ifndef WIKV_SIM_EVENT_QUEUE_H
#define WIKV_SIM_EVENT_QUEUE_H

#include <math.h>
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

enum { WK_EVENT_RUNS = 4 };  /* run k holds events of types with type % WK_EVENT_RUNS == k */
typedef struct wk_event_run {
    wk_event *e;            /* [cap] ring, cap a power of two: events number head..tail-1 sit at slot
                               number & (cap - 1), sorted by (t, seq) */
    size_t head, tail, cap; /* head and tail count pops and pushes; tail - head events are in the run */
    double last_t;          /* t of the run's last event (valid while the run holds one) */
} wk_event_run;

typedef struct wk_event_queue {
    wk_event *heap;
    size_t n, cap;          /* events in the heap */
    wk_event_run run[WK_EVENT_RUNS];
    uint64_t next_seq;
    size_t pending;         /* events in the runs and the heap */
    /* (t, seq) of the first event of each run and (last) of the heap; (INFINITY, UINT64_MAX) when
     * empty: a pop compares these five without looking into the arrays */
    double top_t[WK_EVENT_RUNS + 1];
    uint64_t top_seq[WK_EVENT_RUNS + 1];
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

/* Out of line: pushes to the heap and growth of a run. */
int wk_event_queue_push_slow(wk_event_queue *q, wk_event_run *r, const wk_event *ev, wk_err *err);
/* Out of line: pops the heap's top. */
void wk_event_queue_pop_heap(wk_event_queue *q, wk_event *ev);
/* Out of line: the first event when the tops cannot tell (times that are NaN). */
int wk_event_queue_pop_scan(wk_event_queue *q, wk_event *ev);

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
    unsigned k = (unsigned)type % WK_EVENT_RUNS;
    wk_event_run *r = &q->run[k];
    size_t used = r->tail - r->head;
    /* seq grows with every push, so an event no earlier than the run's last keeps the run sorted */
    if (used >= r->cap || (used > 0 && !(t >= r->last_t)))
        return wk_event_queue_push_slow(q, r, &(wk_event){t, q->next_seq, owner, type, arg}, err);
    size_t mask = r->cap - 1;
    wk_event *e = &r->e[r->tail & mask];
    e->t = t;
    e->seq = q->next_seq++;
    e->owner = owner;
    e->type = type;
    e->arg = arg;
    r->tail++;
    r->last_t = t;
    q->pending++;
    /* the run's first event: this one if the run was empty, else unchanged (read, not branched on) */
    const wk_event *first = &r->e[r->head & mask];
    q->top_t[k] = first->t;
    q->top_seq[k] = first->seq;
    return 0;
}

/* Run k's top becomes the best so far if it comes first. */
WK_EVENT_INLINE void wk_event_consider(const wk_event_queue *q, int k, int *from, double *bt, uint64_t *bs) {
    if (q->top_t[k] < *bt || (q->top_t[k] == *bt && q->top_seq[k] < *bs)) {
        *bt = q->top_t[k];
        *bs = q->top_seq[k];
        *from = k;
    }
}

WK_EVENT_INLINE int wk_event_queue_pop(wk_event_queue *q, wk_event *ev) {
    if (q->pending == 0) return -1;
    int from = WK_EVENT_RUNS; /* the heap */
    double bt = q->top_t[WK_EVENT_RUNS];
    uint64_t bs = q->top_seq[WK_EVENT_RUNS];
    _Static_assert(WK_EVENT_RUNS == 4, "one wk_event_consider per run");
    wk_event_consider(q, 0, &from, &bt, &bs);
    wk_event_consider(q, 1, &from, &bt, &bs);
    wk_event_consider(q, 2, &from, &bt, &bs);
    wk_event_consider(q, 3, &from, &bt, &bs);
    if (from == WK_EVENT_RUNS) {
        if (q->n == 0) return wk_event_queue_pop_scan(q, ev);
        wk_event_queue_pop_heap(q, ev);
        return 0;
    }
    wk_event_run *r = &q->run[from];
    size_t mask = r->cap - 1;
    wk_event_copy(ev, &r->e[r->head & mask]);
    r->head++;
    q->pending--;
    if (r->head != r->tail) {
        q->top_t[from] = r->e[r->head & mask].t;
        q->top_seq[from] = r->e[r->head & mask].seq;
    } else {
        q->top_t[from] = (double)INFINITY;
        q->top_seq[from] = UINT64_MAX;
    }
    return 0;
}

#endif
