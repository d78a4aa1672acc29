/* A short sorted array (insertion from the back) + a binary min-heap for the overflow, both on (t, seq). */
#include "sim/event_queue.h"

#include <stdlib.h>
#include <string.h>

void wk_event_queue_init(wk_event_queue *q) { memset(q, 0, sizeof *q); }

void wk_event_queue_free(wk_event_queue *q) {
    free(q->heap);
    wk_event_queue_init(q);
}

void wk_event_queue_clear(wk_event_queue *q) {
    q->lo = q->hi = q->n = 0;
    q->next_seq = 0;
}

size_t wk_event_queue_size(const wk_event_queue *q) { return q->hi - q->lo + q->n; }

int wk_event_queue_push(wk_event_queue *q, double t, int type, int64_t arg, wk_err *err) {
    return wk_event_queue_push_owned(q, t, 0, type, arg, err);
}

static int heap_push(wk_event_queue *q, const wk_event *ev, wk_err *err) {
    if (q->n == q->cap) {
        size_t c = q->cap ? q->cap * 2 : 64;
        wk_event *h = realloc(q->heap, c * sizeof *h);
        if (!h) return wk_err_set(err, WK_ENOMEM, "event queue: out of memory (%zu events)", c);
        q->heap = h;
        q->cap = c;
    }
    size_t i = q->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!wk_event_before(ev, &q->heap[parent])) break;
        q->heap[i] = q->heap[parent];
        i = parent;
    }
    q->heap[i] = *ev;
    return 0;
}

/* The array's end is reached: its events move to its beginning when that frees room; when it is
 * full, the latest of its events and the new one goes to the heap. */
int wk_event_queue_push_slow(wk_event_queue *q, const wk_event *ev, wk_err *err) {
    wk_event *e = q->near;
    if (q->lo > 0) {
        memmove(e, e + q->lo, (q->hi - q->lo) * sizeof *e);
        q->hi -= q->lo;
        q->lo = 0;
    } else if (!wk_event_before(ev, &e[q->hi - 1])) {
        return heap_push(q, ev, err);
    } else {
        int rc = heap_push(q, &e[--q->hi], err);
        if (rc) return rc;
    }
    size_t j = q->hi;
    for (; j > 0 && wk_event_before(ev, &e[j - 1]); j--) e[j] = e[j - 1];
    e[j] = *ev;
    q->hi++;
    return 0;
}

void wk_event_queue_pop_heap(wk_event_queue *q, wk_event *ev) {
    *ev = q->heap[0];
    wk_event last = q->heap[--q->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const wk_event *best = &last;
        if (l < q->n && wk_event_before(&q->heap[l], best)) { m = l; best = &q->heap[l]; }
        if (r < q->n && wk_event_before(&q->heap[r], best)) m = r;
        if (m == i) break;
        q->heap[i] = q->heap[m];
        i = m;
    }
    if (q->n > 0) q->heap[i] = last;
}

int wk_event_queue_peek(const wk_event_queue *q, wk_event *ev) {
    const wk_event *first = q->lo < q->hi ? &q->near[q->lo] : NULL;
    if (q->n > 0 && (!first || !wk_event_before(first, &q->heap[0]))) first = &q->heap[0];
    if (!first) return -1;
    *ev = *first;
    return 0;
}
