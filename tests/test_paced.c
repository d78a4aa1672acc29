/* Paced transport over loopback TCP: the delivered-bytes-versus-time curve at the receiver follows
 * the link model (wk_trace_time_to_deliver) within 2% on three traces (variable Wi-Fi, mmWave with a
 * blockage, Mahimahi opportunities), bytes never arrive before send time + delay, and bad or
 * truncated frames fail with an error that closes only their own connection. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net/paced.h"
#include "net/trace_gen.h"
#include "tests/check_util.h"

#define DELAY_S 0.03
#define FRAME_DATA 16384
#define MAX_POINTS 200000

typedef struct {
    wk_paced_sender *s;
    int fd;        /* receiving end */
    size_t frames; /* frames to read */
    size_t got;    /* frames read and checked */
    int rc;
    char why[1200];
    size_t n;
    double t[MAX_POINTS];       /* link time of each read (the first MAX_POINTS reads) */
    uint64_t bytes[MAX_POINTS]; /* total bytes read by then */
    double t_last;              /* link time of the last read, whatever their number */
} curve;

static void on_read(void *ctx, uint64_t total) {
    curve *c = ctx;
    c->t_last = wk_paced_now(c->s);
    if (c->n < MAX_POINTS) {
        c->t[c->n] = wk_paced_now(c->s);
        c->bytes[c->n++] = total;
    }
}

static void tcp_pair(int *a, int *b) {
    int l;
    uint16_t port;
    wk_err err = {0};
    ck_assert_msg(wk_paced_listen("127.0.0.1", 0, &l, &port, &err) == 0, "%s", err.msg);
    ck_assert_msg(wk_paced_connect("127.0.0.1", port, 2.0, b, &err) == 0, "%s", err.msg);
    ck_assert_msg(wk_paced_accept(l, 2.0, a, &err) == 0, "%s", err.msg);
    close(l);
}

/* Receiver thread: reads the frames as they come (so that the curve is not held back by the test's
 * own sending) and checks each one; asserts stay in the main thread. */
static void *receive_all(void *arg) {
    curve *c = arg;
    wk_paced_receiver r;
    wk_paced_receiver_init(&r, c->fd);
    r.on_read = on_read;
    r.ctx = c;
    wk_err err = {0};
    for (; c->got < c->frames; c->got++) {
        wk_wire_msg m;
        size_t i = c->got;
        if ((c->rc = wk_paced_recv(&r, &m, 10.0, &err)) != 0) {
            snprintf(c->why, sizeof c->why, "frame %zu: %s", i, err.msg);
            break;
        }
        if (m.h.unit_id != i * 8 || m.u.unit.data_len != FRAME_DATA) {
            c->rc = -1;
            snprintf(c->why, sizeof c->why, "frame %zu: unit_id %u, %zu bytes", i, m.h.unit_id, m.u.unit.data_len);
            break;
        }
        /* one-way delay: a frame is never readable before its send time + delay */
        if (wk_paced_clock_us() < m.h.send_time_us + (uint64_t)(DELAY_S * 1e6)) {
            c->rc = -1;
            snprintf(c->why, sizeof c->why, "frame %zu readable before send time + delay", i);
            break;
        }
    }
    wk_paced_receiver_free(&r);
    return NULL;
}

/* Measures how long this process is held off the CPU: a thread that sleeps 1 ms at a time records its
 * worst oversleep. */
typedef struct {
    atomic_int stop;
    double max_late_s;
} canary;

static void *canary_main(void *arg) {
    canary *k = arg;
    const struct timespec ms = {.tv_nsec = 1000000};
    while (!atomic_load(&k->stop)) {
        double t = (double)wk_paced_clock_us() * 1e-6;
        nanosleep(&ms, NULL);
        double late = (double)wk_paced_clock_us() * 1e-6 - t - 1e-3;
        if (late > k->max_late_s) k->max_late_s = late;
    }
    return NULL;
}

enum { CURVE_OK = 1, CURVE_STARVED = 0, CURVE_LAGGED = -1 };

/* Model: bytes readable at the receiver by link time t when everything is queued at b0. */
static double model_bytes(const wk_trace *tr, double b0, double total, double t) {
    return fmin(total, fmax(0, wk_trace_bytes_before(tr, t - DELAY_S + 1e-9) - wk_trace_bytes_before(tr, b0)));
}

/* Streams about `seconds` of the trace's capacity as UNIT_DATA frames and asserts that no byte arrives
 * before the model allows. Returns CURVE_OK when the receiver also never lagged the model by more
 * than 2% of the bytes and finished within 2% of the model's time; CURVE_STARVED when it lagged more
 * but never by more than 2% plus what the link delivers during the longest time the canary saw the
 * process held off the CPU; CURVE_LAGGED otherwise. */
static int curve_attempt(const wk_trace *tr, double offset_s, double seconds) {
    int a, b;
    tcp_pair(&a, &b);
    wk_paced_config cfg = {.trace = tr, .delay_s = DELAY_S, .trace_offset_s = offset_s};
    wk_paced_sender *s;
    wk_err err = {0};
    ck_assert_int_eq(wk_paced_sender_start(a, &cfg, &s, &err), 0);
    curve *c = calloc(1, sizeof *c);
    c->s = s;
    const size_t frame_bytes = WK_WIRE_HEADER_BYTES + 8 + FRAME_DATA;
    double t_first = wk_paced_now(s);
    size_t frames =
        (size_t)((wk_trace_bytes_before(tr, t_first + seconds) - wk_trace_bytes_before(tr, t_first)) / frame_bytes);
    ck_assert_uint_ge(frames, 20);
    double total = (double)(frames * frame_bytes);
    /* frames are encoded first and queued in one call, so the model's "all queued at b0" holds even
     * when encoding is slow (sanitizers) */
    static uint8_t data[FRAME_DATA];
    uint8_t *all = malloc(frames * frame_bytes);
    ck_assert_ptr_nonnull(all);
    for (size_t i = 0; i < frames; i++) {
        wk_wire_msg m = {.h = {.type = WK_FRAME_UNIT_DATA, .unit_id = (uint32_t)(i * 8), .stream_id = 1}};
        m.h.send_time_us = wk_paced_clock_us();
        m.u.unit = (wk_wire_unit_data){.level = 0, .n_units = 8, .data = data, .data_len = sizeof data};
        size_t len;
        ck_assert_int_eq(wk_wire_encode(&m, all + i * frame_bytes, frame_bytes, &len, &err), 0);
        ck_assert_uint_eq(len, frame_bytes);
    }
    c->fd = b;
    c->frames = frames;
    pthread_t rx, ck;
    canary k = {.max_late_s = 0};
    atomic_init(&k.stop, 0);
    ck_assert_int_eq(pthread_create(&ck, NULL, canary_main, &k), 0);
    ck_assert_int_eq(pthread_create(&rx, NULL, receive_all, c), 0);
    double b0 = wk_paced_now(s);
    ck_assert_int_eq(wk_paced_send(s, all, frames * frame_bytes, &err), 0);
    free(all);
    pthread_join(rx, NULL);
    atomic_store(&k.stop, 1);
    pthread_join(ck, NULL);
    ck_assert_msg(c->rc == 0, "%s", c->why);
    ck_assert_uint_eq(c->got, frames);
    double done = c->t_last; /* the curve's points may stop before the last read */
    ck_assert_int_eq(wk_paced_drain(s, 1.0, &err), 0);
    ck_assert_int_eq(wk_paced_sender_stop(s, &err), 0);
    close(a);

    double worst_lag = 0, worst_at = 0, hold = k.max_late_s + 1e-3;
    int explained = 1;
    for (size_t i = 0; i < c->n; i++) {
        double model = model_bytes(tr, b0, total, c->t[i]);
        ck_assert_msg((double)c->bytes[i] <= model + 2, "%s: %llu bytes read at %.4f s, model allows %.0f", tr->name,
                      (unsigned long long)c->bytes[i], c->t[i], model);
        double lag = model - (double)c->bytes[i];
        if (lag > worst_lag) worst_lag = lag, worst_at = c->t[i] - b0;
        if (lag > 0.02 * total + model - model_bytes(tr, b0, total, c->t[i] - hold)) explained = 0;
    }
    double model_done = wk_trace_time_to_deliver(tr, b0, total) + DELAY_S;
    fprintf(stderr, "%s: %zu bytes, worst lag %.2f%% of total at %.3f s, done %.4f s vs model %.4f s, "
                    "held off the CPU up to %.1f ms\n", tr->name, (size_t)total, 100 * worst_lag / total, worst_at,
            done - b0, model_done - b0, 1e3 * k.max_late_s);
    ck_assert(done >= model_done - 1e-6);
    free(c);
    if (worst_lag <= 0.02 * total && done - model_done <= 0.02 * (model_done - b0)) return CURVE_OK;
    if (explained && done - model_done <= 0.02 * (model_done - b0) + hold) return CURVE_STARVED;
    return CURVE_LAGGED;
}

/* Lagging is what a starved machine does (other jobs on the CI's two cores hold our threads off the
 * CPU for tens or hundreds of ms), so a lagging run is retried. If no run keeps within 2%, every run
 * must at least be within 2% plus the CPU hold-off measured during it; arriving early is never
 * tolerated. */
static void check_curve(const wk_trace *tr, double offset_s, double seconds) {
    int all_explained = 1;
    for (int attempt = 1; attempt <= 3; attempt++) {
        int r = curve_attempt(tr, offset_s, seconds);
        if (r == CURVE_OK) return;
        all_explained &= r == CURVE_STARVED;
    }
    ck_assert_msg(all_explained, "%s: the receiver lagged the link model by more than 2%% in 3 runs, more than "
                                 "CPU starvation explains", tr->name);
    fprintf(stderr, "%s: WARNING: the machine is too loaded to check the 2%% bound; checked against 2%% + the "
                    "measured CPU hold-off instead\n", tr->name);
}

static void gen(const char *model, uint64_t seed, double scale, wk_trace *tr, uint8_t **states) {
    wk_gen_options o = {.seconds = 30, .seed = seed, .scale = scale};
    wk_err err = {0};
    ck_assert_msg(wk_gen_trace(wk_gen_model_find(model), &o, tr, states, &err) == 0, "%s", err.msg);
}

START_TEST(curve_follows_wifi_walk) {
    wk_trace tr;
    gen("wifi-walk", 2, 0.15, &tr, NULL); /* ~10-85 Mbit/s */
    check_curve(&tr, 0, 2.0);
    wk_trace_free(&tr);
}
END_TEST

/* Starts 0.4 s before the first blockage so that the transfer crosses a deep drop. */
START_TEST(curve_follows_mmwave_blockage) {
    wk_trace tr;
    uint8_t *st;
    gen("mmwave-blockage", 1, 0.1, &tr, &st);
    size_t k = 0;
    while (k < tr.n && st[k] != 2) k++;
    ck_assert_uint_lt(k, tr.n);
    double offset = fmax(0, tr.t_s[k] - 0.4);
    check_curve(&tr, offset, 2.0);
    free(st);
    wk_trace_free(&tr);
}
END_TEST

START_TEST(curve_follows_mahimahi_opportunities) {
    /* 0-3 packets per ms in 200 ms phases, so about 18 Mbit/s with gaps */
    static double ms[8000];
    size_t n = 0;
    for (int t = 1; t <= 3000 && n < 8000; t++)
        for (int p = 0; p < (t / 200) % 4; p++) ms[n++] = t;
    ms[n++] = 3000;
    wk_trace tr;
    wk_err err = {0};
    ck_assert_int_eq(wk_trace_from_opportunities("mahimahi-phases", ms, n, &tr, &err), 0);
    check_curve(&tr, 0, 2.0);
    wk_trace_free(&tr);
}
END_TEST

static size_t valid_frame(uint8_t *buf, size_t cap) {
    static const uint8_t data[200] = {9};
    wk_wire_msg m = {.h = {.type = WK_FRAME_UNIT_DATA, .stream_id = 3}};
    m.u.unit = (wk_wire_unit_data){.level = 1, .n_units = 1, .data = data, .data_len = sizeof data};
    size_t len;
    wk_err err;
    ck_assert_int_eq(wk_wire_encode(&m, buf, cap, &len, &err), 0);
    return len;
}

/* Garbage on one connection closes that connection; another connection keeps working. */
START_TEST(garbage_closes_only_its_connection) {
    int a1, b1, a2, b2;
    tcp_pair(&a1, &b1);
    tcp_pair(&a2, &b2);
    wk_trace tr;
    wk_err err = {0};
    ck_assert_int_eq(wk_trace_constant("c100", 100, 10, &tr, &err), 0);
    wk_paced_config cfg = {.trace = &tr, .delay_s = 0.005};
    wk_paced_sender *s;
    ck_assert_int_eq(wk_paced_sender_start(a2, &cfg, &s, &err), 0);
    uint8_t frame[512];
    size_t len = valid_frame(frame, sizeof frame);
    static const uint8_t payload[300] = {7};
    wk_wire_msg out = {.h = {.type = WK_FRAME_UNIT_DATA, .stream_id = 4}};
    out.u.unit = (wk_wire_unit_data){.level = 2, .n_units = 3, .data = payload, .data_len = sizeof payload};
    uint64_t before = wk_paced_clock_us();
    ck_assert_int_eq(wk_paced_send_msg(s, &out, &err), 0);

    const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n....";
    ck_assert_int_eq(write(a1, junk, sizeof junk), (ssize_t)sizeof junk);
    wk_paced_receiver r1, r2;
    wk_paced_receiver_init(&r1, b1);
    wk_paced_receiver_init(&r2, b2);
    wk_wire_msg m;
    ck_assert_int_eq(wk_paced_recv(&r1, &m, 2.0, &err), WK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "magic"));
    ck_assert_int_eq(r1.fd, -1);
    ck_assert_int_eq(wk_paced_recv(&r1, &m, 0.1, &err), WK_ESTATE);

    ck_assert_msg(wk_paced_recv(&r2, &m, 2.0, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(m.h.stream_id, 4);
    ck_assert_uint_eq(m.u.unit.data_len, 300);
    ck_assert(m.h.send_time_us >= before && m.h.send_time_us <= wk_paced_clock_us());
    ck_assert(wk_paced_clock_us() >= m.h.send_time_us + 5000); /* the 5 ms delay */
    ck_assert_int_eq(wk_paced_send(s, frame, len, &err), 0);
    ck_assert_msg(wk_paced_recv(&r2, &m, 2.0, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(m.h.stream_id, 3);

    /* a frame whose CRC is wrong: same treatment */
    frame[len - 1] ^= 0xff;
    ck_assert_int_eq(wk_paced_send(s, frame, len, &err), 0);
    ck_assert_int_eq(wk_paced_recv(&r2, &m, 2.0, &err), WK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "crc32c"));
    ck_assert_int_eq(r2.fd, -1);
    ck_assert_int_eq(wk_paced_sender_stop(s, &err), 0);
    wk_paced_receiver_free(&r1);
    wk_paced_receiver_free(&r2);
    close(a1);
    close(a2);
    wk_trace_free(&tr);
}
END_TEST

START_TEST(truncated_frames_and_closes) {
    uint8_t frame[512];
    size_t len = valid_frame(frame, sizeof frame);
    wk_wire_msg m;
    wk_err err = {0};
    size_t cuts[] = {10, 100};
    const char *what[] = {"header bytes", "payload_len says 208"};
    for (int i = 0; i < 2; i++) {
        int a, b;
        tcp_pair(&a, &b);
        ck_assert_int_eq(write(a, frame, cuts[i]), (ssize_t)cuts[i]);
        close(a);
        wk_paced_receiver r;
        wk_paced_receiver_init(&r, b);
        ck_assert_int_eq(wk_paced_recv(&r, &m, 2.0, &err), WK_EFORMAT);
        ck_assert_msg(strstr(err.msg, "truncated") && strstr(err.msg, what[i]), "%s", err.msg);
        ck_assert_int_eq(r.fd, -1);
        wk_paced_receiver_free(&r);
    }
    /* a clean close between frames, and a timeout that leaves the connection open */
    int a, b;
    tcp_pair(&a, &b);
    wk_paced_receiver r;
    wk_paced_receiver_init(&r, b);
    ck_assert_int_eq(wk_paced_recv(&r, &m, 0.05, &err), WK_EIO);
    ck_assert_int_ge(r.fd, 0);
    ck_assert_int_eq(write(a, frame, len), (ssize_t)len);
    ck_assert_int_eq(wk_paced_recv(&r, &m, 2.0, &err), 0);
    close(a);
    ck_assert_int_eq(wk_paced_recv(&r, &m, 2.0, &err), WK_ESTATE);
    ck_assert_ptr_nonnull(strstr(err.msg, "closed by peer"));
    wk_paced_receiver_free(&r);
}
END_TEST

/* An idle link banks no capacity: a transfer that starts after a pause takes its full transmission
 * time + delay from its own start, as in the link model. */
START_TEST(idle_link_restarts_at_the_next_send) {
    int a, b;
    tcp_pair(&a, &b);
    wk_trace tr;
    wk_err err = {0};
    ck_assert_int_eq(wk_trace_constant("c8", 8, 100, &tr, &err), 0); /* 1e6 bytes/s */
    wk_paced_config cfg = {.trace = &tr, .delay_s = 0.02};
    wk_paced_sender *s;
    ck_assert_int_eq(wk_paced_sender_start(a, &cfg, &s, &err), 0);
    wk_paced_receiver r;
    wk_paced_receiver_init(&r, b);
    static uint8_t data[100000 - 40];
    for (int round = 0; round < 2; round++) {
        if (round) nanosleep(&(struct timespec){.tv_nsec = 300000000}, NULL);
        wk_wire_msg m = {.h = {.type = WK_FRAME_UNIT_DATA}};
        m.u.unit = (wk_wire_unit_data){.n_units = 1, .data = data, .data_len = sizeof data};
        double t0 = wk_paced_now(s);
        ck_assert_int_eq(wk_paced_send_msg(s, &m, &err), 0);
        ck_assert_msg(wk_paced_recv(&r, &m, 5.0, &err) == 0, "%s", err.msg);
        double took = wk_paced_now(s) - t0;
        /* 100,000 bytes at 1e6 B/s + 20 ms */
        ck_assert_msg(took >= 0.12 - 1e-4 && took < 0.2, "round %d: frame took %.4f s, model 0.12 s", round, took);
    }
    ck_assert_int_eq(wk_paced_sender_stop(s, &err), 0);
    wk_paced_receiver_free(&r);
    close(a);
    wk_trace_free(&tr);
}
END_TEST

/* A busy period that ended on the link still has its bytes inside the one-way delay: a send that
 * starts a new period must not release them early. wait_delivered returns when the link (not the
 * receiver, one delay later) has delivered. */
START_TEST(ended_period_keeps_its_delay) {
    int a, b;
    tcp_pair(&a, &b);
    wk_trace tr;
    wk_err err = {0};
    ck_assert_int_eq(wk_trace_constant("c8", 8, 100, &tr, &err), 0); /* 1e6 bytes/s */
    wk_paced_config cfg = {.trace = &tr, .delay_s = 0.1};
    wk_paced_sender *s;
    ck_assert_int_eq(wk_paced_sender_start(a, &cfg, &s, &err), 0);
    wk_paced_receiver r;
    wk_paced_receiver_init(&r, b);
    static uint8_t data[10000 - 40];
    wk_wire_msg m = {.h = {.type = WK_FRAME_UNIT_DATA}};
    m.u.unit = (wk_wire_unit_data){.n_units = 1, .data = data, .data_len = sizeof data};
    double t0 = wk_paced_now(s);
    ck_assert_int_eq(wk_paced_send_msg(s, &m, &err), 0);
    uint64_t first = wk_paced_bytes_queued(s);
    ck_assert_int_eq(first, 10000);
    ck_assert_msg(wk_paced_wait_delivered(s, first, 5.0, &err) == 0, "%s", err.msg);
    double delivered = wk_paced_now(s) - t0;
    ck_assert_msg(delivered >= 0.01 - 1e-4 && delivered < 0.05, "link delivered after %.4f s, model 0.01 s", delivered);
    nanosleep(&(struct timespec){.tv_nsec = 20000000}, NULL); /* the link idles: the next send starts a period */
    ck_assert_int_eq(wk_paced_send_msg(s, &m, &err), 0);
    for (int k = 0; k < 2; k++) {
        ck_assert_msg(wk_paced_recv(&r, &m, 5.0, &err) == 0, "%s", err.msg);
        double at = wk_paced_now(s) - t0;
        /* frame k leaves the link at 0.01 (k = 0) or >= 0.04 (k = 1), then waits 0.1 s */
        ck_assert_msg(at >= (k ? 0.14 : 0.11) - 1e-3, "frame %d arrived at %.4f s, before its delay", k, at);
    }
    ck_assert_int_eq(wk_paced_sender_stop(s, &err), 0);
    wk_paced_receiver_free(&r);
    close(a);
    wk_trace_free(&tr);
}
END_TEST

/* The sender reports a peer that went away instead of hanging or dying of SIGPIPE. */
START_TEST(sender_reports_closed_peer) {
    int a, b;
    tcp_pair(&a, &b);
    close(b);
    wk_trace tr;
    wk_err err = {0};
    ck_assert_int_eq(wk_trace_constant("fast", 8000, 10, &tr, &err), 0);
    wk_paced_config cfg = {.trace = &tr};
    wk_paced_sender *s;
    ck_assert_int_eq(wk_paced_sender_start(a, &cfg, &s, &err), 0);
    static uint8_t big[1 << 20];
    int rc = 0;
    for (int i = 0; i < 32 && rc == 0; i++) rc = wk_paced_send(s, big, sizeof big, &err);
    if (rc == 0) rc = wk_paced_drain(s, 5.0, &err);
    ck_assert_int_eq(rc, WK_EIO);
    ck_assert_int_eq(wk_paced_sender_stop(s, &err), WK_EIO);
    close(a);
    wk_trace_free(&tr);
}
END_TEST

/* A peer that stops reading fails the writer after the send timeout, instead of holding it forever. */
START_TEST(send_timeout_fails_a_peer_that_stopped_reading) {
    int a, b;
    tcp_pair(&a, &b);
    wk_trace tr;
    wk_err err = {0};
    ck_assert_int_eq(wk_trace_constant("fast", 8000, 10, &tr, &err), 0);
    wk_paced_config cfg = {.trace = &tr, .send_timeout_s = 0.3};
    wk_paced_sender *s;
    ck_assert_int_eq(wk_paced_sender_start(a, &cfg, &s, &err), 0);
    static uint8_t big[1 << 20];
    for (int i = 0; i < 32; i++) ck_assert_int_eq(wk_paced_send(s, big, sizeof big, &err), 0);
    double t0 = wk_paced_now(s);
    ck_assert_int_eq(wk_paced_drain(s, 20.0, &err), WK_EIO);
    ck_assert_msg(strstr(err.msg, "send timeout"), "%s", err.msg);
    ck_assert_msg(wk_paced_now(s) - t0 < 10.0, "the writer took %.1f s to give up", wk_paced_now(s) - t0);
    ck_assert_int_eq(wk_paced_sender_stop(s, &err), WK_EIO);
    close(a);
    close(b);
    wk_trace_free(&tr);
}
END_TEST

/* Sends one frame of `bytes` on each sender at once; returns each frame's time to the receiver and, in
 * *skew, how long after the first frame the second one was queued (on a loaded machine the first one
 * has the link to itself that long, so it may end up to that much before the model's even split). */
static void shared_round(wk_paced_sender **s, wk_paced_receiver *r, const size_t *bytes, double *took, double *skew) {
    static uint8_t data[400000];
    wk_err err = {0};
    double t0 = wk_paced_now(s[0]), queued[2];
    for (int i = 0; i < 2; i++) {
        wk_wire_msg m = {.h = {.type = WK_FRAME_UNIT_DATA}};
        m.u.unit = (wk_wire_unit_data){.n_units = 1, .data = data, .data_len = bytes[i] - 40};
        ck_assert_int_eq(wk_paced_send_msg(s[i], &m, &err), 0);
        queued[i] = wk_paced_now(s[0]);
    }
    *skew = queued[1] - queued[0];
    for (int i = 0; i < 2; i++) {
        wk_wire_msg m;
        ck_assert_msg(wk_paced_recv(&r[i], &m, 5.0, &err) == 0, "%s", err.msg);
        took[i] = wk_paced_now(s[0]) - t0;
    }
}

/* Two senders on one shared link split its rate while both have bytes in flight; when one is done
 * the other gets the whole rate; a third sender finds no flow free. */
START_TEST(shared_link_splits_its_rate_among_active_senders) {
    wk_trace tr;
    wk_err err = {0};
    ck_assert_int_eq(wk_trace_constant("c8", 8, 100, &tr, &err), 0); /* 1e6 bytes/s */
    wk_paced_link *link;
    ck_assert_int_eq(wk_paced_link_open(&tr, 2, &link, &err), 0);
    wk_paced_config cfg = {.delay_s = 0.01, .shared = link};
    int a[2], b[2];
    wk_paced_sender *s[2];
    wk_paced_receiver r[2];
    for (int i = 0; i < 2; i++) {
        tcp_pair(&a[i], &b[i]);
        ck_assert_int_eq(wk_paced_sender_start(a[i], &cfg, &s[i], &err), 0);
        wk_paced_receiver_init(&r[i], b[i]);
    }
    wk_paced_sender *third;
    ck_assert_int_eq(wk_paced_sender_start(a[0], &cfg, &third, &err), WK_ESTATE);
    ck_assert_msg(strstr(err.msg, "flows"), "%s", err.msg);
    /* equal frames: both take twice as long as one alone (200,000 B at 1e6 B/s shared by 2, + 10 ms) */
    double took[2], skew;
    shared_round(s, r, (const size_t[]){200000, 200000}, took, &skew);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(took[i] >= 0.41 - 2e-3 - skew && took[i] < 0.41 + 0.08, "sender %d: %.4f s, model 0.41 s (skew %.4f s)",
                      i, took[i], skew);
    /* 100,000 and 300,000 B: the small one ends at 0.2 s, then the other has the whole rate: 0.4 s */
    nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
    shared_round(s, r, (const size_t[]){100000, 300000}, took, &skew);
    ck_assert_msg(took[0] >= 0.21 - 2e-3 - skew && took[0] < 0.21 + 0.08, "small: %.4f s, model 0.21 s (skew %.4f s)", took[0],
                  skew);
    ck_assert_msg(took[1] >= 0.41 - 2e-3 && took[1] < 0.41 + 0.08, "large: %.4f s, model 0.41 s", took[1]);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(wk_paced_sender_stop(s[i], &err), 0);
        wk_paced_receiver_free(&r[i]);
        close(a[i]);
    }
    wk_paced_link_free(link);
    wk_trace_free(&tr);
}
END_TEST

int main(void) {
    Suite *s = suite_create("paced");
    TCase *tc = tcase_create("paced");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, curve_follows_wifi_walk);
    tcase_add_test(tc, curve_follows_mmwave_blockage);
    tcase_add_test(tc, curve_follows_mahimahi_opportunities);
    tcase_add_test(tc, garbage_closes_only_its_connection);
    tcase_add_test(tc, truncated_frames_and_closes);
    tcase_add_test(tc, sender_reports_closed_peer);
    tcase_add_test(tc, idle_link_restarts_at_the_next_send);
    tcase_add_test(tc, send_timeout_fails_a_peer_that_stopped_reading);
    tcase_add_test(tc, shared_link_splits_its_rate_among_active_senders);
    tcase_add_test(tc, ended_period_keeps_its_delay);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
