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
int wk_event_queue_push_owned(wk_event_queue *q, double t, int32_t owner, int type, int64_t arg, wk_err *err);
/* Returns 0 and fills ev, or -1 when empty. */
int wk_event_queue_pop(wk_event_queue *q, wk_event *ev);
/* The event pop would return, left in the queue; -1 when empty. */
int wk_event_queue_peek(const wk_event_queue *q, wk_event *ev);
/* Events pending. */
size_t wk_event_queue_size(const wk_event_queue *q);

#endif
