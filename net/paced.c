/* Paced sender (a writer thread that releases queued bytes on the link model's schedule), whole-frame
 * receiver, and TCP helpers. The model and its guarantees are described in net/paced.h. */
#include "net/paced.h"

#include "net/shared_link.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAKE_MIN_S 0.0005  /* the writer sleeps at least this long: bounds wakeups to 2000/s */
#define WAKE_CHUNK 1500.0  /* and wakes when at least this many more bytes are due */
#define POLL_SLICE_MS 50   /* blocked writes re-check the stop flag this often */
#define WAKE_SHARED_S 0.001 /* a flow of a shared link re-reads its share this often */
#define PAST_PERIODS 64    /* busy periods remembered (a period's bytes are written one delay after it) */

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t wk_paced_clock_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* poll() timeout in ms for `s` seconds: at least 0, at most a day (huge or NaN timeouts stay bounded). */
static int poll_ms(double s) {
    if (!(s > 0)) return 0;
    return s > 86400.0 ? 86400000 : (int)ceil(s * 1000);
}

static struct timespec abs_time(double t_s) {
    struct timespec ts;
    double sec = floor(t_s);
    ts.tv_sec = (time_t)sec;
    ts.tv_nsec = (long)((t_s - sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
    return ts;
}

/* ---- shared link --------------------------------------------------------------------------- */

/* A flow's byte counts: queued by its sender, handed to the model as units, delivered in finished
 * units; `unit` is the size of the unit in flight. */
typedef struct link_flow {
    int used;
    double queued, handed, done, unit;
} link_flow;

struct wk_paced_link {
    pthread_mutex_t mu;
    double start_s;        /* CLOCK_MONOTONIC of link time 0 */
    wk_shared_link model;  /* wire bytes = bytes queued: no per-frame or per-unit extra */
    link_flow *flows;      /* [model.n_flows] */
};

int wk_paced_link_open(const wk_trace *trace, size_t max_flows, wk_paced_link **out, wk_err *err) {
    *out = NULL;
    if (!trace || trace->n == 0 || max_flows == 0)
        return wk_err_set(err, WK_EINVAL, "shared link: need a trace and at least one flow");
    wk_paced_link *l = calloc(1, sizeof *l);
    if (!l) return wk_err_set(err, WK_ENOMEM, "shared link: out of memory");
    wk_link_params p = {.frame_payload = 1448};
    int rc = wk_shared_link_init(&l->model, trace, &p, max_flows, err);
    if (!rc && !(l->flows = calloc(max_flows, sizeof *l->flows)))
        rc = wk_err_set(err, WK_ENOMEM, "shared link: out of memory for %zu flows", max_flows);
    if (rc) {
        wk_shared_link_free(&l->model);
        free(l);
        return rc;
    }
    pthread_mutex_init(&l->mu, NULL);
    l->start_s = mono_s();
    *out = l;
    return 0;
}

void wk_paced_link_free(wk_paced_link *l) {
    if (!l) return;
    pthread_mutex_destroy(&l->mu);
    wk_shared_link_free(&l->model);
    free(l->flows);
    free(l);
}

/* Flow k hands what it has queued beyond its units to the model as one unit at link time t, if its
 * previous unit has left the bottleneck (back to back with it when t is its finish). mu held. */
static void link_kick(wk_paced_link *l, size_t k, double t) {
    link_flow *f = &l->flows[k];
    if (l->model.flows[k].active || f->queued <= f->handed) return;
    f->unit = f->queued - f->handed;
    f->handed = f->queued;
    wk_shared_link_send(&l->model, k, t, 0, (int64_t)f->unit);
}

/* Brings the model to link time t: every unit that finished by t leaves, in finish order, and its
 * flow's next unit follows at once. mu held. */
static void link_pump(wk_paced_link *l, double t) {
    for (;;) {
        size_t first = SIZE_MAX;
        double at = INFINITY;
        for (size_t k = 0; k < l->model.n_flows; k++) {
            const wk_shared_flow *m = &l->model.flows[k];
            if (m->active && m->finish <= t && m->finish < at) first = k, at = m->finish;
        }
        if (first == SIZE_MAX) return;
        wk_shared_link_done(&l->model, first, at);
        l->flows[first].done += l->flows[first].unit;
        l->flows[first].unit = 0;
        link_kick(l, first, at);
    }
}

static double link_now(const wk_paced_link *l) { return mono_s() - l->start_s; }

static int link_attach(wk_paced_link *l, size_t *k, wk_err *err) {
    pthread_mutex_lock(&l->mu);
    size_t i = 0;
    while (i < l->model.n_flows && l->flows[i].used) i++;
    if (i < l->model.n_flows) l->flows[i] = (link_flow){.used = 1};
    pthread_mutex_unlock(&l->mu);
    if (i == l->model.n_flows)
        return wk_err_set(err, WK_ESTATE, "shared link: all %zu flows are in use", l->model.n_flows);
    *k = i;
    return 0;
}

/* The flow's sender stopped: what it still had in flight is dropped and the others share its part. */
static void link_detach(wk_paced_link *l, size_t k) {
    pthread_mutex_lock(&l->mu);
    double t = link_now(l);
    link_pump(l, t);
    wk_shared_link_cancel(&l->model, k, t);
    l->flows[k].used = 0;
    pthread_mutex_unlock(&l->mu);
}

static void link_queue(wk_paced_link *l, size_t k, size_t len) {
    pthread_mutex_lock(&l->mu);
    double t = link_now(l);
    link_pump(l, t);
    l->flows[k].queued += (double)len;
    link_kick(l, k, t);
    pthread_mutex_unlock(&l->mu);
}

/* Bytes of flow k the model has delivered by now. */
static uint64_t link_delivered(wk_paced_link *l, size_t k) {
    pthread_mutex_lock(&l->mu);
    double t = link_now(l);
    link_pump(l, t);
    const link_flow *f = &l->flows[k];
    double d = f->done;
    if (l->model.flows[k].active) d += f->unit - wk_shared_link_remaining_at(&l->model, k, t);
    pthread_mutex_unlock(&l->mu);
    return (uint64_t)(d + 1e-6);
}

/* ---- sender -------------------------------------------------------------------------------- */

typedef struct qnode {
    struct qnode *next;
    size_t len, off;
    uint8_t data[]; /* [len] */
} qnode;

struct wk_paced_sender {
    int fd;
    wk_paced_config cfg;
    double start_s; /* CLOCK_MONOTONIC at start */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;    /* writer: new bytes or stop */
    pthread_cond_t written_cv; /* drain waiters: progress or failure */
    qnode *head, *tail;
    uint64_t queued, written; /* byte totals since start */
    double busy_start;        /* link time b of the current busy period */
    uint64_t busy_base;       /* bytes queued before that period */
    /* earlier busy periods, oldest first: their bytes may still wait for the one-way delay when a new
     * period starts (past_base[k + 1], or busy_base for the last, ends period k) */
    double past_start[PAST_PERIODS];
    uint64_t past_base[PAST_PERIODS];
    int n_past;
    atomic_int stop;
    int failed;
    wk_err werr;
    size_t flow;               /* with cfg.shared: this sender's flow */
    /* with cfg.shared: (CLOCK_MONOTONIC, bytes delivered) samples of the last delay_s, so bytes are
     * written one delay after the model delivered them */
    double *hist_t;
    uint64_t *hist_d;
    size_t hist_head, hist_n, hist_cap;
};

double wk_paced_now(const wk_paced_sender *s) { return mono_s() - s->start_s + s->cfg.trace_offset_s; }

static double link_to_mono(const wk_paced_sender *s, double link_t) {
    return link_t - s->cfg.trace_offset_s + s->start_s;
}

/* Bytes of one busy period [base, end) starting at link time start delivered by link time t. */
static uint64_t period_delivered(const wk_trace *tr, double start, uint64_t base, uint64_t end, double t) {
    if (t < start) return base;
    /* +1 ns: an opportunity exactly at t counts as delivered by t */
    double x = wk_trace_bytes_before(tr, t + 1e-9) - wk_trace_bytes_before(tr, start);
    if (x + 1e-6 >= (double)(end - base)) return end;
    if (x <= 0) return base;
    return base + (uint64_t)(x + 1e-6);
}

/* Bytes (total since start) the link model has delivered by link time t: in the current busy period
 * or, for a t before it, in the earlier period that was running then. */
static uint64_t delivered_by(const wk_paced_sender *s, double t) {
    if (t >= s->busy_start || s->n_past == 0)
        return period_delivered(s->cfg.trace, s->busy_start, s->busy_base, s->queued, t);
    for (int k = s->n_past - 1; k >= 0; k--) {
        uint64_t end = k + 1 < s->n_past ? s->past_base[k + 1] : s->busy_base;
        if (t >= s->past_start[k]) return period_delivered(s->cfg.trace, s->past_start[k], s->past_base[k], end, t);
    }
    return s->past_base[0]; /* before every remembered period: those before it were delivered */
}

/* Link time at which byte `target` (1-based, total since start) is delivered, and the end of the
 * busy period holding it. */
static double delivery_time(const wk_paced_sender *s, uint64_t target, uint64_t *period_end) {
    for (int k = 0; k < s->n_past; k++) {
        uint64_t end = k + 1 < s->n_past ? s->past_base[k + 1] : s->busy_base;
        if (target <= end && target > s->past_base[k]) {
            *period_end = end;
            return wk_trace_time_to_deliver(s->cfg.trace, s->past_start[k], (double)(target - s->past_base[k]));
        }
    }
    *period_end = s->queued;
    return wk_trace_time_to_deliver(s->cfg.trace, s->busy_start, (double)(target - s->busy_base));
}

/* Records that the model had delivered d bytes at time t (samples kept only when d grew). */
static int hist_push(wk_paced_sender *s, double t, uint64_t d) {
    if (s->hist_n > 0 && s->hist_d[s->hist_head + s->hist_n - 1] >= d) return 0;
    if (s->hist_head > 0 && s->hist_head + s->hist_n == s->hist_cap) { /* slide to the front */
        memmove(s->hist_t, s->hist_t + s->hist_head, s->hist_n * sizeof *s->hist_t);
        memmove(s->hist_d, s->hist_d + s->hist_head, s->hist_n * sizeof *s->hist_d);
        s->hist_head = 0;
    }
    if (s->hist_n == s->hist_cap) {
        size_t cap = s->hist_cap ? 2 * s->hist_cap : 64;
        double *t2 = realloc(s->hist_t, cap * sizeof *t2);
        if (t2) s->hist_t = t2;
        uint64_t *d2 = t2 ? realloc(s->hist_d, cap * sizeof *d2) : NULL;
        if (d2) s->hist_d = d2;
        if (!t2 || !d2) return WK_ENOMEM;
        s->hist_cap = cap;
    }
    s->hist_t[s->hist_head + s->hist_n] = t;
    s->hist_d[s->hist_head + s->hist_n] = d;
    s->hist_n++;
    return 0;
}

/* Bytes the shared link's model had delivered to this flow one delay ago. */
static uint64_t shared_ready(wk_paced_sender *s, double now_mono, int *rc) {
    *rc = hist_push(s, now_mono, link_delivered(s->cfg.shared, s->flow));
    double due = now_mono - s->cfg.delay_s;
    uint64_t ready = s->written;
    while (s->hist_n > 0 && s->hist_t[s->hist_head] <= due) {
        ready = s->hist_d[s->hist_head];
        if (s->hist_n == 1) break; /* keep the latest sample: later ones only grow from it */
        s->hist_head++;
        s->hist_n--;
    }
    return ready > s->written ? ready : s->written;
}

/* Writes all of buf unless stopped; the fd stays in blocking mode for its owner. A peer that takes
 * no byte for cfg.send_timeout_s fails the write. */
static int write_all(wk_paced_sender *s, const uint8_t *buf, size_t len, wk_err *err) {
    double stalled_since = -1;
    while (len > 0) {
        ssize_t n = send(s->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            stalled_since = -1;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (atomic_load(&s->stop)) return wk_err_set(err, WK_ESTATE, "paced sender stopped");
            double t = mono_s();
            if (stalled_since < 0) stalled_since = t;
            else if (s->cfg.send_timeout_s > 0 && t - stalled_since >= s->cfg.send_timeout_s)
                return wk_err_set(err, WK_EIO, "paced send: the peer took no bytes for %g s (send timeout)",
                                  s->cfg.send_timeout_s);
            struct pollfd p = {.fd = s->fd, .events = POLLOUT};
            poll(&p, 1, POLL_SLICE_MS);
            continue;
        }
        return wk_err_set(err, WK_EIO, "paced send: %s", n < 0 ? strerror(errno) : "connection closed");
    }
    return 0;
}

/* Writes the due part of the head node; called with mu held, returns with it held. */
static int write_due(wk_paced_sender *s, uint64_t ready) {
    qnode *q = s->head;
    size_t n = q->len - q->off;
    if (ready - s->written < n) n = (size_t)(ready - s->written);
    pthread_mutex_unlock(&s->mu);
    wk_err err = {0};
    int rc = write_all(s, q->data + q->off, n, &err);
    pthread_mutex_lock(&s->mu);
    if (rc) {
        s->failed = 1;
        s->werr = err;
        pthread_cond_broadcast(&s->written_cv);
        return rc;
    }
    q->off += n;
    s->written += n;
    if (q->off == q->len) {
        s->head = q->next;
        if (!s->head) s->tail = NULL;
        free(q);
    }
    pthread_cond_broadcast(&s->written_cv);
    return 0;
}

static void *writer_main(void *arg) {
    wk_paced_sender *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!atomic_load(&s->stop)) {
        if (s->written == s->queued) {
            pthread_cond_wait(&s->wake, &s->mu);
            continue;
        }
        double now = wk_paced_now(s);
        if (s->cfg.shared) {
            int hrc;
            uint64_t ready = shared_ready(s, mono_s(), &hrc);
            if (ready > s->queued) ready = s->queued;
            if (hrc) {
                s->failed = 1;
                wk_err_set(&s->werr, WK_ENOMEM, "paced send: out of memory");
                pthread_cond_broadcast(&s->written_cv);
                break;
            }
            if (ready > s->written) {
                if (write_due(s, ready)) break;
                continue;
            }
            struct timespec ts = abs_time(mono_s() + WAKE_SHARED_S);
            pthread_cond_timedwait(&s->wake, &s->mu, &ts);
            continue;
        }
        uint64_t ready = delivered_by(s, now - s->cfg.delay_s);
        /* write once a chunk (or the rest of the busy period) is due: writing whatever trickled in since
         * the last write would spin in pieces of a few bytes on a fast link */
        uint64_t end;
        (void)delivery_time(s, s->written + 1, &end);
        uint64_t next = s->written + (uint64_t)WAKE_CHUNK < end ? s->written + (uint64_t)WAKE_CHUNK : end;
        if (ready >= next) {
            if (write_due(s, ready)) break;
            continue;
        }
        /* not enough due: sleep until it is (new sends and stop wake us earlier) */
        double due = delivery_time(s, next, &end) + s->cfg.delay_s;
        if (due < now + WAKE_MIN_S) due = now + WAKE_MIN_S;
        struct timespec ts = abs_time(link_to_mono(s, due));
        pthread_cond_timedwait(&s->wake, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int wk_paced_sender_start(int fd, const wk_paced_config *cfg, wk_paced_sender **out, wk_err *err) {
    *out = NULL;
    if (!cfg->shared && (!cfg->trace || cfg->trace->n == 0))
        return wk_err_set(err, WK_EINVAL, "paced sender: no trace");
    if (!(cfg->delay_s >= 0 && cfg->delay_s < 60) || !(cfg->trace_offset_s >= 0) || !(cfg->send_timeout_s >= 0))
        return wk_err_set(err, WK_EINVAL, "paced sender: delay %g s / offset %g s / send timeout %g s out of range",
                          cfg->delay_s, cfg->trace_offset_s, cfg->send_timeout_s);
    wk_paced_sender *s = calloc(1, sizeof *s);
    if (!s) return wk_err_set(err, WK_ENOMEM, "paced sender: out of memory");
    s->fd = fd;
    s->cfg = *cfg;
    if (cfg->shared) {
        s->cfg.trace = cfg->shared->model.trace;
        s->cfg.trace_offset_s = 0;
        int rc = link_attach(cfg->shared, &s->flow, err);
        if (rc) {
            free(s);
            return rc;
        }
    }
    atomic_init(&s->stop, 0);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->wake, &ca);
    pthread_cond_init(&s->written_cv, &ca);
    pthread_condattr_destroy(&ca);
    s->start_s = mono_s();
    s->busy_start = cfg->trace_offset_s;
    if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->wake);
        pthread_cond_destroy(&s->written_cv);
        if (cfg->shared) link_detach(cfg->shared, s->flow);
        free(s);
        return wk_err_set(err, WK_ENOMEM, "paced sender: cannot start the writer thread");
    }
    *out = s;
    return 0;
}

int wk_paced_send(wk_paced_sender *s, const void *buf, size_t len, wk_err *err) {
    if (len == 0) return 0;
    double now = wk_paced_now(s); /* handed over now; copying a large buffer must not delay it */
    qnode *q = malloc(sizeof *q + len);
    if (!q) return wk_err_set(err, WK_ENOMEM, "paced send: out of memory for %zu bytes", len);
    memcpy(q->data, buf, len);
    q->len = len;
    q->off = 0;
    q->next = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->failed) {
        int rc = wk_err_set(err, s->werr.code, "%s", s->werr.msg);
        pthread_mutex_unlock(&s->mu);
        free(q);
        return rc;
    }
    if (s->cfg.shared) link_queue(s->cfg.shared, s->flow, len);
    /* a link idle (in the model) when bytes arrive starts a new busy period now */
    if (now < s->busy_start) now = s->busy_start; /* another thread queued in between */
    uint64_t period = s->queued - s->busy_base;
    if (period == 0 || wk_trace_time_to_deliver(s->cfg.trace, s->busy_start, (double)period) <= now) {
        if (period > 0) { /* remember the period that ended: its bytes may still be inside the delay */
            if (s->n_past == PAST_PERIODS) { /* the oldest ended long ago: forget it */
                memmove(s->past_start, s->past_start + 1, (PAST_PERIODS - 1) * sizeof *s->past_start);
                memmove(s->past_base, s->past_base + 1, (PAST_PERIODS - 1) * sizeof *s->past_base);
                s->n_past--;
            }
            s->past_start[s->n_past] = s->busy_start;
            s->past_base[s->n_past++] = s->busy_base;
        }
        s->busy_start = now;
        s->busy_base = s->queued;
    }
    if (s->tail) s->tail->next = q;
    else s->head = q;
    s->tail = q;
    s->queued += len;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int wk_paced_send_msg(wk_paced_sender *s, wk_wire_msg *m, wk_err *err) {
    size_t cap = WK_WIRE_HEADER_BYTES + 8 + sizeof m->u.request + 64;
    if (m->h.type == WK_FRAME_UNIT_DATA) cap = WK_WIRE_HEADER_BYTES + 8 + m->u.unit.data_len;
    uint8_t *buf = malloc(cap);
    if (!buf) return wk_err_set(err, WK_ENOMEM, "paced send: out of memory for %zu bytes", cap);
    m->h.send_time_us = wk_paced_clock_us();
    size_t len;
    int rc = wk_wire_encode(m, buf, cap, &len, err);
    if (!rc) rc = wk_paced_send(s, buf, len, err);
    free(buf);
    return rc;
}

int wk_paced_drain(wk_paced_sender *s, double timeout_s, wk_err *err) {
    struct timespec ts = abs_time(mono_s() + (timeout_s > 0 ? fmin(timeout_s, 1e9) : 0));
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (!s->failed && s->written < s->queued)
        if (pthread_cond_timedwait(&s->written_cv, &s->mu, &ts) == ETIMEDOUT) {
            rc = wk_err_set(err, WK_ESTATE, "paced drain: %llu of %llu bytes written after %g s",
                            (unsigned long long)s->written, (unsigned long long)s->queued, timeout_s);
            break;
        }
    if (!rc && s->failed) rc = wk_err_set(err, s->werr.code, "%s", s->werr.msg);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

uint64_t wk_paced_bytes_written(wk_paced_sender *s) {
    pthread_mutex_lock(&s->mu);
    uint64_t w = s->written;
    pthread_mutex_unlock(&s->mu);
    return w;
}

uint64_t wk_paced_bytes_queued(wk_paced_sender *s) {
    pthread_mutex_lock(&s->mu);
    uint64_t q = s->queued;
    pthread_mutex_unlock(&s->mu);
    return q;
}

int wk_paced_wait_delivered(wk_paced_sender *s, uint64_t bytes, double timeout_s, wk_err *err) {
    double deadline = mono_s() + timeout_s;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int failed = s->failed;
        /* a shared link's share changes with the other flows: look again every WAKE_SHARED_S */
        uint64_t queued = s->queued, end;
        uint64_t delivered = s->cfg.shared ? link_delivered(s->cfg.shared, s->flow) : delivered_by(s, wk_paced_now(s));
        /* link time at which byte `bytes` leaves the bottleneck */
        double due = s->cfg.shared                       ? wk_paced_now(s) + WAKE_SHARED_S
                     : bytes > delivered && bytes <= queued ? delivery_time(s, bytes, &end)
                                                             : 0;
        pthread_mutex_unlock(&s->mu);
        if (failed) return wk_err_set(err, s->werr.code, "%s", s->werr.msg);
        if (bytes > queued) return wk_err_set(err, WK_EINVAL, "paced: waiting for %llu bytes, %llu queued",
                                              (unsigned long long)bytes, (unsigned long long)queued);
        if (delivered >= bytes) return 0;
        double now = mono_s();
        if (now >= deadline) return wk_err_set(err, WK_ESTATE, "paced wait: %llu of %llu bytes delivered after %g s",
                                               (unsigned long long)delivered, (unsigned long long)bytes, timeout_s);
        double until = fmin(link_to_mono(s, due), deadline);
        if (until < now + 1e-4) until = now + 1e-4; /* rounding at the boundary: look again shortly */
        struct timespec ts = {(time_t)(until - now), (long)((until - now - floor(until - now)) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

int wk_paced_sender_stop(wk_paced_sender *s, wk_err *err) {
    if (!s) return 0;
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->stop, 1);
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    if (s->cfg.shared) link_detach(s->cfg.shared, s->flow);
    free(s->hist_t);
    free(s->hist_d);
    int rc = 0;
    if (s->failed) rc = wk_err_set(err, s->werr.code, "%s", s->werr.msg);
    for (qnode *q = s->head, *next; q; q = next) {
        next = q->next;
        free(q);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->written_cv);
    free(s);
    return rc;
}

/* ---- receiver ------------------------------------------------------------------------------ */

void wk_paced_receiver_init(wk_paced_receiver *r, int fd) {
    memset(r, 0, sizeof *r);
    r->fd = fd;
}

static void receiver_close(wk_paced_receiver *r) {
    if (r->fd >= 0) close(r->fd);
    r->fd = -1;
}

void wk_paced_receiver_free(wk_paced_receiver *r) {
    receiver_close(r);
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
}

static int ensure_cap(wk_paced_receiver *r, size_t need, wk_err *err) {
    if (r->cap >= need) return 0;
    size_t cap = r->cap ? r->cap : 65536;
    while (cap < need) cap *= 2;
    uint8_t *nb = realloc(r->buf, cap);
    if (!nb) return wk_err_set(err, WK_ENOMEM, "paced receive: out of memory for a %zu-byte frame", need);
    r->buf = nb;
    r->cap = cap;
    return 0;
}

/* Reads exactly n bytes into buf by the deadline. *got = bytes read. Returns 0, 1 on EOF, WK_EIO on
 * error or timeout. */
static int read_exact(wk_paced_receiver *r, uint8_t *buf, size_t n, double deadline, size_t *got, wk_err *err) {
    *got = 0;
    while (*got < n) {
        double left = deadline - mono_s();
        if (left <= 0) return wk_err_set(err, WK_EIO, "paced receive: timed out (%zu of %zu bytes)", *got, n);
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        int pr = poll(&p, 1, poll_ms(left));
        if (pr < 0 && errno != EINTR) return wk_err_set(err, WK_EIO, "paced receive: poll: %s", strerror(errno));
        if (pr <= 0) continue;
        ssize_t k = read(r->fd, buf + *got, n - *got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return wk_err_set(err, WK_EIO, "paced receive: %s", strerror(errno));
        if (k == 0) return 1;
        *got += (size_t)k;
        r->bytes_read += (uint64_t)k;
        if (r->on_read) r->on_read(r->ctx, r->bytes_read);
    }
    return 0;
}

/* Closes the connection and returns the error already in err (so callers can `return fail(...)`). */
static int fail(wk_paced_receiver *r, int rc) {
    receiver_close(r);
    return rc;
}

int wk_paced_recv(wk_paced_receiver *r, wk_wire_msg *m, double timeout_s, wk_err *err) {
    if (r->fd < 0) return wk_err_set(err, WK_ESTATE, "paced receive: connection closed");
    int rc = ensure_cap(r, WK_WIRE_HEADER_BYTES, err);
    if (rc) return fail(r, rc);
    double deadline = mono_s() + timeout_s;
    size_t got;
    rc = read_exact(r, r->buf, WK_WIRE_HEADER_BYTES, deadline, &got, err);
    if (rc == 1 && got == 0) return fail(r, wk_err_set(err, WK_ESTATE, "paced receive: connection closed by peer"));
    if (rc == 1)
        return fail(r, wk_err_set(err, WK_EFORMAT, "wire frame truncated: connection closed after %zu of %d header "
                                                   "bytes", got, WK_WIRE_HEADER_BYTES));
    if (rc < 0 && got == 0) return rc; /* timeout between frames: the stream is still in sync */
    if (rc) return fail(r, rc);
    wk_wire_header h;
    rc = wk_wire_decode_header(r->buf, WK_WIRE_HEADER_BYTES, &h, err);
    if (rc) return fail(r, rc);
    size_t total = WK_WIRE_HEADER_BYTES + (size_t)h.payload_len;
    rc = ensure_cap(r, total, err);
    if (rc) return fail(r, rc);
    rc = read_exact(r, r->buf + WK_WIRE_HEADER_BYTES, h.payload_len, deadline, &got, err);
    if (rc == 1)
        return fail(r, wk_err_set(err, WK_EFORMAT, "wire %s frame truncated: payload_len says %u bytes, connection "
                                                   "closed after %zu", wk_wire_type_name(h.type), h.payload_len, got));
    if (rc) return fail(r, rc);
    size_t used;
    rc = wk_wire_decode(r->buf, total, m, &used, err);
    return rc ? fail(r, rc) : 0;
}

/* ---- TCP helpers --------------------------------------------------------------------------- */

static int resolve(const char *host, uint16_t port, int passive, struct addrinfo **res, wk_err *err) {
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    if (passive) hints.ai_flags = AI_PASSIVE;
    char ps[16];
    snprintf(ps, sizeof ps, "%u", port);
    int g = getaddrinfo(host, ps, &hints, res);
    if (g) return wk_err_set(err, WK_EINVAL, "%s:%u: %s", host ? host : "*", port, gai_strerror(g));
    return 0;
}

static void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int wk_paced_listen(const char *host, uint16_t port, int *fd, uint16_t *bound_port, wk_err *err) {
    struct addrinfo *ai;
    int rc = resolve(host, port, 1, &ai, err);
    if (rc) return rc;
    int s = socket(ai->ai_family, ai->ai_socktype, 0);
    int one = 1;
    if (s >= 0) setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (s < 0 || bind(s, ai->ai_addr, ai->ai_addrlen) != 0 || listen(s, SOMAXCONN) != 0) {
        rc = wk_err_set(err, WK_EIO, "listen on %s:%u: %s", host ? host : "*", port, strerror(errno));
        if (s >= 0) close(s);
        freeaddrinfo(ai);
        return rc;
    }
    freeaddrinfo(ai);
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    if (bound_port) *bound_port = getsockname(s, (struct sockaddr *)&sa, &sl) == 0 ? ntohs(sa.sin_port) : port;
    *fd = s;
    return 0;
}

int wk_paced_accept(int listen_fd, double timeout_s, int *fd, wk_err *err) {
    struct pollfd p = {.fd = listen_fd, .events = POLLIN};
    int pr = poll(&p, 1, poll_ms(timeout_s));
    if (pr <= 0) return wk_err_set(err, WK_EIO, "accept: %s", pr == 0 ? "timed out" : strerror(errno));
    int s = accept(listen_fd, NULL, NULL);
    if (s < 0) return wk_err_set(err, WK_EIO, "accept: %s", strerror(errno));
    set_nodelay(s);
    *fd = s;
    return 0;
}

int wk_paced_connect(const char *host, uint16_t port, double timeout_s, int *fd, wk_err *err) {
    struct addrinfo *ai;
    int rc = resolve(host, port, 0, &ai, err);
    if (rc) return rc;
    int s = socket(ai->ai_family, ai->ai_socktype, 0);
    if (s < 0) {
        freeaddrinfo(ai);
        return wk_err_set(err, WK_EIO, "socket: %s", strerror(errno));
    }
    /* non-blocking connect so that the timeout holds, then back to blocking */
    int flags = fcntl(s, F_GETFL);
    fcntl(s, F_SETFL, flags | O_NONBLOCK);
    int c = connect(s, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (c != 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = s, .events = POLLOUT};
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (poll(&p, 1, poll_ms(timeout_s)) == 1 && getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
            soerr == 0)
            c = 0;
        else errno = soerr ? soerr : ETIMEDOUT;
    }
    if (c != 0) {
        rc = wk_err_set(err, WK_EIO, "connect to %s:%u: %s", host, port, strerror(errno));
        close(s);
        return rc;
    }
    fcntl(s, F_SETFL, flags);
    set_nodelay(s);
    *fd = s;
    return 0;
}
