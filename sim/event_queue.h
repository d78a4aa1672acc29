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
    wk_event *e;            /* [head, n): sorted by (t, seq) */
    size_t head, n, cap;
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
/* Out of line: the first event when the tops cannot tell (times that are NaN). */
int wk_event_queue_pop_scan(wk_event_queue *q, wk_event *ev);

static inline int wk_event_before(const wk_event *a, const wk_event *b) {
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static inline int wk_event_queue_push_owned(wk_event_queue *q, double t, int32_t owner, int type, int64_t arg,
                                            wk_err *err) {
    wk_event ev = {t, q->next_seq++, owner, type, arg};
    unsigned k = (unsigned)type % WK_EVENT_RUNS;
    wk_event_run *r = &q->run[k];
    /* seq grows with every push, so an event no earlier than the run's last keeps the run sorted */
    if (r->head == r->n && r->cap > 0) { /* empty run: start over; the event is its top */
        r->head = 0;
        r->n = 1;
        r->e[0] = ev;
        q->top_t[k] = t;
        q->top_seq[k] = ev.seq;
        q->pending++;
        return 0;
    }
    if (r->n < r->cap && t >= r->e[r->n - 1].t) {
        r->e[r->n++] = ev;
        q->pending++;
        return 0;
    }
    return wk_event_queue_push_slow(q, r, &ev, err);
}

static inline int wk_event_queue_pop(wk_event_queue *q, wk_event *ev) {
    if (q->pending == 0) return -1;
    int from = WK_EVENT_RUNS; /* the heap */
    double bt = q->top_t[WK_EVENT_RUNS];
    uint64_t bs = q->top_seq[WK_EVENT_RUNS];
    for (int k = 0; k < WK_EVENT_RUNS; k++)
        if (q->top_t[k] < bt || (q->top_t[k] == bt && q->top_seq[k] < bs)) {
            bt = q->top_t[k];
            bs = q->top_seq[k];
            from = k;
        }
    if (from == WK_EVENT_RUNS) {
        if (q->n == 0) return wk_event_queue_pop_scan(q, ev);
        wk_event_queue_pop_heap(q, ev);
        return 0;
    }
    wk_event_run *r = &q->run[from];
    *ev = r->e[r->head++];
    q->pending--;
    if (r->head < r->n) {
        q->top_t[from] = r->e[r->head].t;
        q->top_seq[from] = r->e[r->head].seq;
    } else {
        q->top_t[from] = (double)INFINITY;
        q->top_seq[from] = UINT64_MAX;
    }
    return 0;
}

#endif
