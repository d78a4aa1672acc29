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
    wk_event *e;            /* [head, n): sorted by (t, seq) */
    size_t head, n, cap;
} wk_event_run;

typedef struct wk_event_queue {
    wk_event *heap;
    size_t n, cap;          /* events in the heap */
    wk_event_run run[WK_EVENT_RUNS];
    uint64_t next_seq;
} wk_event_queue;

void wk_event_queue_init(wk_event_queue *q);
void wk_event_queue_free(wk_event_queue *q);
void wk_event_queue_clear(wk_event_queue *q);
int wk_event_queue_push(wk_event_queue *q, double t, int type, int64_t arg, wk_err *err);
/* The same for an event of session `owner`. */
static inline int wk_event_queue_push_owned(wk_event_queue *q, double t, int32_t owner, int type, int64_t arg,
                                            wk_err *err);
/* Returns 0 and fills ev, or -1 when empty. */
static inline int wk_event_queue_pop(wk_event_queue *q, wk_event *ev);
/* The event pop would return, left in the queue; -1 when empty. */
int wk_event_queue_peek(const wk_event_queue *q, wk_event *ev);
/* Events pending. */
size_t wk_event_queue_size(const wk_event_queue *q);

/* ---- inline fast paths (a simulated request pushes and pops every event through these) ---- */

/* Out of line: pushes to the heap and growth of a run. */
int wk_event_queue_push_slow(wk_event_queue *q, wk_event_run *r, const wk_event *ev, wk_err *err);
/* Out of line: pops the heap's top. */
void wk_event_queue_pop_heap(wk_event_queue *q, wk_event *ev);

static inline int wk_event_before(const wk_event *a, const wk_event *b) {
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static inline int wk_event_queue_push_owned(wk_event_queue *q, double t, int32_t owner, int type, int64_t arg,
                                            wk_err *err) {
    wk_event ev = {t, q->next_seq++, owner, type, arg};
    wk_event_run *r = &q->run[(unsigned)type % WK_EVENT_RUNS];
    if (r->head == r->n) r->head = r->n = 0; /* empty run: start over */
    /* seq grows with every push, so an event no earlier than the run's last keeps the run sorted */
    if (r->n < r->cap && (r->n == 0 || t >= r->e[r->n - 1].t)) {
        r->e[r->n++] = ev;
        return 0;
    }
    return wk_event_queue_push_slow(q, r, &ev, err);
}

static inline int wk_event_queue_pop(wk_event_queue *q, wk_event *ev) {
    const wk_event *best = q->n > 0 ? &q->heap[0] : NULL;
    wk_event_run *from = NULL;
    for (int k = 0; k < WK_EVENT_RUNS; k++) {
        wk_event_run *r = &q->run[k];
        if (r->head < r->n && (!best || wk_event_before(&r->e[r->head], best))) {
            best = &r->e[r->head];
            from = r;
        }
    }
    if (!best) return -1;
    if (!from) {
        wk_event_queue_pop_heap(q, ev);
        return 0;
    }
    *ev = *best;
    from->head++;
    return 0;
}

#endif
