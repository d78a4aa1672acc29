/* Binary min-heap on (t, seq). */
#include "sim/event_queue.h"

#include <stdlib.h>
#include <string.h>

void wk_event_queue_init(wk_event_queue *q) { memset(q, 0, sizeof *q); }

void wk_event_queue_free(wk_event_queue *q) {
    free(q->heap);
    memset(q, 0, sizeof *q);
}

void wk_event_queue_clear(wk_event_queue *q) {
    q->n = 0;
    q->next_seq = 0;
}

static int before(const wk_event *a, const wk_event *b) { return a->t < b->t || (a->t == b->t && a->seq < b->seq); }

int wk_event_queue_push(wk_event_queue *q, double t, int type, int64_t arg, wk_err *err) {
    return wk_event_queue_push_owned(q, t, 0, type, arg, err);
}

int wk_event_queue_push_owned(wk_event_queue *q, double t, int32_t owner, int type, int64_t arg, wk_err *err) {
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        wk_event *h = realloc(q->heap, cap * sizeof *h);
        if (!h) return wk_err_set(err, WK_ENOMEM, "event queue: out of memory (%zu events)", cap);
        q->heap = h;
        q->cap = cap;
    }
    size_t i = q->n++;
    wk_event ev = {t, q->next_seq++, owner, type, arg};
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&ev, &q->heap[parent])) break;
        q->heap[i] = q->heap[parent];
        i = parent;
    }
    q->heap[i] = ev;
    return 0;
}

int wk_event_queue_pop(wk_event_queue *q, wk_event *ev) {
    if (q->n == 0) return -1;
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
    return 0;
}
