/* Sorted runs (ring FIFOs, one per group of event types) + binary min-heap, all on (t, seq). */
#include "sim/event_queue.h"

#include <stdlib.h>
#include <string.h>

/* No event anywhere: every top is the empty mark. */
static void clear_tops(wk_event_queue *q) {
    for (int k = 0; k <= WK_EVENT_RUNS; k++) {
        q->top_t[k] = (double)INFINITY;
        q->top_seq[k] = UINT64_MAX;
    }
}

void wk_event_queue_init(wk_event_queue *q) {
    memset(q, 0, sizeof *q);
    clear_tops(q);
}

void wk_event_queue_free(wk_event_queue *q) {
    free(q->heap);
    for (int k = 0; k < WK_EVENT_RUNS; k++) free(q->run[k].e);
    wk_event_queue_init(q);
}

void wk_event_queue_clear(wk_event_queue *q) {
    q->n = 0;
    for (int k = 0; k < WK_EVENT_RUNS; k++) q->run[k].head = q->run[k].tail = 0;
    q->next_seq = 0;
    q->pending = 0;
    clear_tops(q);
}

size_t wk_event_queue_size(const wk_event_queue *q) { return q->pending; }

static void set_heap_top(wk_event_queue *q) {
    q->top_t[WK_EVENT_RUNS] = q->n > 0 ? q->heap[0].t : (double)INFINITY;
    q->top_seq[WK_EVENT_RUNS] = q->n > 0 ? q->heap[0].seq : UINT64_MAX;
}

static int before(const wk_event *a, const wk_event *b) { return wk_event_before(a, b); }

int wk_event_queue_push(wk_event_queue *q, double t, int type, int64_t arg, wk_err *err) {
    return wk_event_queue_push_owned(q, t, 0, type, arg, err);
}

static int grow(wk_event **a, size_t *cap, wk_err *err) {
    size_t c = *cap ? *cap * 2 : 64;
    wk_event *h = realloc(*a, c * sizeof *h);
    if (!h) return wk_err_set(err, WK_ENOMEM, "event queue: out of memory (%zu events)", c);
    *a = h;
    *cap = c;
    return 0;
}

static int heap_push(wk_event_queue *q, const wk_event *ev, wk_err *err) {
    if (q->n == q->cap) {
        int rc = grow(&q->heap, &q->cap, err);
        if (rc) return rc;
    }
    size_t i = q->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(ev, &q->heap[parent])) break;
        q->heap[i] = q->heap[parent];
        i = parent;
    }
    q->heap[i] = *ev;
    q->pending++;
    set_heap_top(q);
    return 0;
}

/* Doubles a run's ring (a power of two), its events moved to slots 0.. in order. */
static int grow_run(wk_event_run *r, wk_err *err) {
    size_t cap = r->cap ? r->cap * 2 : 64, used = r->tail - r->head;
    wk_event *e = malloc(cap * sizeof *e);
    if (!e) return wk_err_set(err, WK_ENOMEM, "event queue: out of memory (%zu events)", cap);
    for (size_t i = 0; i < used; i++) e[i] = r->e[(r->head + i) & (r->cap - 1)];
    free(r->e);
    r->e = e;
    r->cap = cap;
    r->head = 0;
    r->tail = used;
    return 0;
}

int wk_event_queue_push_slow(wk_event_queue *q, wk_event_run *r, const wk_event *ev, wk_err *err) {
    q->next_seq++; /* ev->seq is the one it had */
    size_t used = r->tail - r->head;
    if (used > 0 && !(ev->t >= r->last_t)) return heap_push(q, ev, err);
    if (used == r->cap) {
        int rc = grow_run(r, err);
        if (rc) return rc;
    }
    r->e[r->tail++ & (r->cap - 1)] = *ev;
    r->last_t = ev->t;
    q->pending++;
    if (used == 0) {
        int k = (int)(r - q->run);
        q->top_t[k] = ev->t;
        q->top_seq[k] = ev->seq;
    }
    return 0;
}

void wk_event_queue_pop_heap(wk_event_queue *q, wk_event *ev) {
    *ev = q->heap[0];
    wk_event last = q->heap[--q->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const wk_event *best = &last;
        if (l < q->n && before(&q->heap[l], best)) { m = l; best = &q->heap[l]; }
        if (r < q->n && before(&q->heap[r], best)) m = r;
        if (m == i) break;
        q->heap[i] = q->heap[m];
        i = m;
    }
    if (q->n > 0) q->heap[i] = last;
    q->pending--;
    set_heap_top(q);
}

/* Tops that compare as nothing (NaN times): the first event by the heap order's own comparison, as
 * the single heap popped it. */
int wk_event_queue_pop_scan(wk_event_queue *q, wk_event *ev) {
    const wk_event *best = q->n > 0 ? &q->heap[0] : NULL;
    int from = -1;
    for (int k = 0; k < WK_EVENT_RUNS; k++) {
        const wk_event_run *r = &q->run[k];
        const wk_event *first = r->head < r->tail ? &r->e[r->head & (r->cap - 1)] : NULL;
        if (first && (!best || before(first, best))) {
            best = first;
            from = k;
        }
    }
    if (!best) return -1;
    if (from < 0) {
        wk_event_queue_pop_heap(q, ev);
        return 0;
    }
    wk_event_run *r = &q->run[from];
    *ev = r->e[r->head++ & (r->cap - 1)];
    q->pending--;
    q->top_t[from] = r->head < r->tail ? r->e[r->head & (r->cap - 1)].t : (double)INFINITY;
    q->top_seq[from] = r->head < r->tail ? r->e[r->head & (r->cap - 1)].seq : UINT64_MAX;
    return 0;
}

int wk_event_queue_peek(const wk_event_queue *q, wk_event *ev) {
    const wk_event *best = q->n > 0 ? &q->heap[0] : NULL;
    for (int k = 0; k < WK_EVENT_RUNS; k++) {
        const wk_event_run *r = &q->run[k];
        const wk_event *first = r->head < r->tail ? &r->e[r->head & (r->cap - 1)] : NULL;
        if (first && (!best || before(first, best))) best = first;
    }
    if (!best) return -1;
    *ev = *best;
    return 0;
}
