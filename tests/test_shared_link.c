/* Shared link: several devices behind one access point. One device alone replays the unshared
 * simulation exactly; N equal flows on a constant trace each get 1/N of the rate; random flows on a
 * random trace never get more bytes than the trace offers; a device that started after the others
 * finished sees an empty link. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "net/shared_link.h"
#include "sim/sim.h"
#include "tests/check_util.h"

static wk_model_spec llama;
static wk_device orin;

static void load_fixtures(void) {
    wk_err err;
    ck_assert_msg(wk_model_spec_find("llama-3.1-8b", &llama, &err) == 0, "%s", err.msg);
    ck_assert_msg(wk_device_find("jetson-agx-orin", &orin, &err) == 0, "%s", err.msg);
}

static wk_sim_config config(const wk_trace *tr, int context) {
    wk_sim_config cfg = {.trace = tr, .link = wk_link_defaults(), .model = &llama, .device = &orin,
                         .context_tokens = context, .output_tokens = 1, .task = "none"};
    return cfg;
}

static int close_rel(double a, double b, double tol) {
    if (isnan(a) && isnan(b)) return 1;
    return fabs(a - b) <= tol * fmax(fabs(a), fabs(b)) || a == b;
}

static void make_traces(wk_trace *cap, wk_trace *mm) {
    wk_err err;
    double t[16], mbps[16];
    for (int i = 0; i < 16; i++) {
        t[i] = i * 0.25;
        mbps[i] = i % 5 == 3 ? 0 : 20 + 37 * ((i * 7) % 9); /* with outages */
    }
    ck_assert_int_eq(wk_trace_from_capacity("varying", t, mbps, 16, 4.0, cap, &err), 0);
    enum { N = 20000 };
    double *ms = malloc(N * sizeof *ms);
    for (int i = 0; i < N; i++) ms[i] = (double)(i / 6 + (i % 7 == 0) * 3);
    for (int i = 1; i < N; i++) if (ms[i] < ms[i - 1]) ms[i] = ms[i - 1];
    ck_assert_int_eq(wk_trace_from_opportunities("mm", ms, N, mm, &err), 0);
    free(ms);
}

START_TEST(one_device_equals_unshared) {
    load_fixtures();
    wk_trace traces[2];
    make_traces(&traces[0], &traces[1]);
    const char *specs[] = {"full", "kivi2", "cachegen", "prefill", "wikv", "hybrid", "h2o", "streamingllm",
                           "wikv:levels=2,batch=1024"};
    wk_err err;
    wk_sim sim;
    wk_sim_shared g;
    wk_sim_init(&sim);
    wk_sim_shared_init(&g);
    for (size_t p = 0; p < sizeof specs / sizeof specs[0]; p++) {
        wk_policy a, b;
        ck_assert_msg(wk_policy_create(specs[p], &a, &err) == 0, "%s", err.msg);
        ck_assert_msg(wk_policy_create(specs[p], &b, &err) == 0, "%s", err.msg);
        for (int tr = 0; tr < 2; tr++)
            for (int variant = 0; variant < 4; variant++) {
                wk_sim_config cfg = config(&traces[tr], variant == 3 ? 1024 : 2048);
                cfg.link.trace_offset_s = 0.37 * variant;
                cfg.output_tokens = variant == 1 ? 5 : 1;
                if (variant == 2) cfg.link.one_way_delay_s = 0;
                wk_sim_result one, shared;
                ck_assert_msg(wk_sim_request(&sim, &a, &cfg, NULL, &one, &err) == 0, "%s", err.msg);
                ck_assert_msg(wk_sim_shared_request(&g, &b, 1, &cfg, 0, &shared, &err) == 0, "%s", err.msg);
                ck_assert_int_eq(one.s.ok, shared.s.ok);
                ck_assert_msg(close_rel(one.s.ttft_s, shared.s.ttft_s, 1e-12), "%s on %s/%d: ttft %.17g vs %.17g",
                              specs[p], traces[tr].name, variant, one.s.ttft_s, shared.s.ttft_s);
                ck_assert(close_rel(one.s.total_s, shared.s.total_s, 1e-12));
                ck_assert(close_rel(one.link_utilisation, shared.link_utilisation, 1e-12));
                ck_assert(close_rel(one.wire_bytes_total, shared.wire_bytes_total, 1e-12));
                ck_assert_int_eq(one.s.payload_bytes_sent, shared.s.payload_bytes_sent);
                ck_assert_int_eq(one.s.tokens, shared.s.tokens);
                ck_assert_uint_eq(one.s.events, shared.s.events);
            }
        wk_policy_free(&a);
        wk_policy_free(&b);
    }
    wk_sim_shared_free(&g);
    wk_sim_free(&sim);
    wk_trace_free(&traces[0]);
    wk_trace_free(&traces[1]);
}
END_TEST

START_TEST(equal_flows_share_a_constant_link) {
    wk_trace tr;
    wk_err err;
    ck_assert_int_eq(wk_trace_constant("c80", 80.0, 10.0, &tr, &err), 0);
    wk_link_params p = wk_link_defaults();
    p.frame_overhead = 0;
    p.unit_header = 0;
    for (size_t n = 1; n <= 7; n++) {
        wk_shared_link l;
        ck_assert_int_eq(wk_shared_link_init(&l, &tr, &p, n, &err), 0);
        for (size_t f = 0; f < n; f++) wk_shared_link_send(&l, f, 0.5, f, 1000000);
        double expect = 0.5 + (double)n * 1e6 / 10e6; /* 80 Mbit/s = 10 MB/s, 1/n each */
        for (size_t f = 0; f < n; f++)
            ck_assert_msg(fabs(l.flows[f].finish - expect) < 1e-12, "n=%zu flow %zu: %.15g vs %.15g", n, f,
                          l.flows[f].finish, expect);
        /* one flow leaves: the others speed up to 1/(n-1) for what is left */
        if (n >= 2) {
            wk_shared_link_cancel(&l, 0, 0.5 + 0.05);
            double left = 1e6 - 0.05 * 10e6 / (double)n;
            double want = 0.55 + left * (double)(n - 1) / 10e6;
            for (size_t f = 1; f < n; f++) ck_assert_double_eq_tol(l.flows[f].finish, want, 1e-12);
        }
        wk_shared_link_free(&l);
    }
    wk_trace_free(&tr);
}
END_TEST

START_TEST(devices_sharing_a_link_wait_n_times_longer) {
    load_fixtures();
    wk_trace tr;
    wk_err err;
    ck_assert_int_eq(wk_trace_constant("c100", 100.0, 1.0, &tr, &err), 0);
    wk_sim_config cfg = config(&tr, 8192);
    cfg.link.frame_overhead = 0;
    cfg.link.unit_header = 0;
    cfg.link.one_way_delay_s = 0.020;
    cfg.link.request_delay_s = 0.015;
    double bytes = 8192.0 * 32 * 2 * 8 * 128 * 2;
    wk_policy pols[4];
    for (int k = 0; k < 4; k++) ck_assert_int_eq(wk_policy_create("full", &pols[k], &err), 0);
    wk_sim_shared g;
    wk_sim_shared_init(&g);
    for (size_t n = 1; n <= 4; n++) {
        wk_sim_result out[4];
        ck_assert_msg(wk_sim_shared_request(&g, pols, n, &cfg, 0, out, &err) == 0, "%s", err.msg);
        double expect = 0.015 + (double)n * bytes * 8 / 100e6 + 0.020 + wk_device_decode_s(&orin, &llama, 8192, 131072.0);
        for (size_t k = 0; k < n; k++) {
            ck_assert_msg(out[k].s.ok, "%s", out[k].s.fail_reason);
            ck_assert_msg(fabs(out[k].s.ttft_s - expect) <= 1e-9 * expect, "n=%zu device %zu: %.15g vs %.15g", n, k,
                          out[k].s.ttft_s, expect);
            double offered = 100e6 / 8 * (out[k].s.ttft_s - 0.015);
            ck_assert_double_eq_tol(out[k].link_utilisation, bytes / offered, 1e-9);
        }
    }
    /* staggered past the first device's answer: the second one finds the link empty again */
    wk_sim_result out[2];
    double alone = 0.015 + bytes * 8 / 100e6 + 0.020 + wk_device_decode_s(&orin, &llama, 8192, 131072.0);
    ck_assert_int_eq(wk_sim_shared_request(&g, pols, 2, &cfg, alone + 1, out, &err), 0);
    ck_assert_double_eq_tol(out[0].s.ttft_s, out[1].s.ttft_s, 1e-9);
    ck_assert_double_eq_tol(out[1].s.ttft_s, alone, 1e-9);
    /* staggered by less: the first is slowed, the second too, both less than twice */
    ck_assert_int_eq(wk_sim_shared_request(&g, pols, 2, &cfg, 0.5 * alone, out, &err), 0);
    ck_assert(out[0].s.ttft_s > alone * 1.01 && out[0].s.ttft_s < 2 * alone);
    ck_assert(out[1].s.ttft_s > alone * 1.01 && out[1].s.ttft_s < 2 * alone);
    for (int k = 0; k < 4; k++) wk_policy_free(&pols[k]);
    wk_sim_shared_free(&g);
    wk_trace_free(&tr);
}
END_TEST

/* A tiny event loop over the link alone: flows send units of random sizes at random times. */
typedef struct {
    double t;
    size_t flow;
    uint64_t version;
} done_ev;

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) / 9007199254740992.0; }

START_TEST(random_flows_never_exceed_capacity) {
    wk_err err;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int trial = 0; trial < 40; trial++) {
        size_t segs = 2 + rng_next(&seed) % 20;
        double t[32], mbps[32];
        for (size_t i = 0; i < segs; i++) {
            t[i] = (double)i * (0.05 + 0.3 * rng_unit(&seed)) + (i ? t[i - 1] : 0);
            mbps[i] = rng_unit(&seed) < 0.2 ? 0 : 1 + 200 * rng_unit(&seed);
        }
        mbps[0] = 5;
        wk_trace tr;
        ck_assert_int_eq(wk_trace_from_capacity("random", t, mbps, segs, t[segs - 1] + 0.5, &tr, &err), 0);
        wk_link_params p = wk_link_defaults();
        p.trace_offset_s = rng_unit(&seed) * tr.period_s;
        size_t n = 1 + rng_next(&seed) % 6;
        wk_shared_link l;
        ck_assert_int_eq(wk_shared_link_init(&l, &tr, &p, n, &err), 0);
        double next_send[8];
        int units_left[8];
        for (size_t f = 0; f < n; f++) {
            next_send[f] = rng_unit(&seed) * 2;
            units_left[f] = 1 + (int)(rng_next(&seed) % 8);
        }
        double first = INFINITY, finished_bytes = 0, unit_wire[8] = {0};
        for (int guard = 0; guard < 10000; guard++) {
            /* next happening: a send, or the earliest finish */
            size_t who = n;
            double when = INFINITY;
            int is_send = 0;
            for (size_t f = 0; f < n; f++) {
                if (l.flows[f].active && l.flows[f].finish < when) { when = l.flows[f].finish; who = f; is_send = 0; }
                if (!l.flows[f].active && units_left[f] > 0 && next_send[f] < when) {
                    when = next_send[f];
                    who = f;
                    is_send = 1;
                }
            }
            if (who == n) break;
            if (is_send) {
                if (when < first) first = when;
                int64_t bytes = 1000 + (int64_t)(rng_unit(&seed) * 3e6);
                double before = l.flows[who].wire_bytes_total;
                double fin = wk_shared_link_send(&l, who, when, 0, bytes);
                unit_wire[who] = l.flows[who].wire_bytes_total - before;
                ck_assert(fin >= when);
                units_left[who]--;
            } else {
                wk_shared_link_done(&l, who, when);
                finished_bytes += unit_wire[who];
                next_send[who] = when + (rng_unit(&seed) < 0.5 ? 0 : rng_unit(&seed) * 0.5);
            }
            /* bytes of finished units never exceed what the trace offered since the first send, nor
             * the bytes counted in this busy period what it offered since the period began */
            double offered = wk_shared_link_capacity_bytes(&l, first, when);
            ck_assert_msg(finished_bytes <= offered * (1 + 1e-9) + 1e-6, "trial %d: finished %.17g > offered %.17g",
                          trial, finished_bytes, offered);
            double period = wk_shared_link_capacity_bytes(&l, l.epoch_start - p.trace_offset_s, when);
            ck_assert(l.delivered <= period * (1 + 1e-9) + 1e-6);
        }
        /* everything was sent and finished: the link delivered every wire byte */
        for (size_t f = 0; f < n; f++) ck_assert(!l.flows[f].active && units_left[f] == 0);
        ck_assert_double_eq_tol(finished_bytes, l.wire_bytes_total, 1e-6 * l.wire_bytes_total);
        wk_shared_link_free(&l);
        wk_trace_free(&tr);
    }
}
END_TEST

/* The cursor behind the link's fast path answers exactly what wk_trace_time_to_deliver answers. */
START_TEST(trace_cursor_matches_time_to_deliver) {
    wk_trace traces[2];
    make_traces(&traces[0], &traces[1]);
    uint64_t seed = 12345;
    for (int k = 0; k < 2; k++) {
        const wk_trace *tr = &traces[k];
        for (int trial = 0; trial < 300; trial++) {
            double t0 = (rng_unit(&seed) * 3 - 0.2) * tr->period_s;
            wk_trace_cursor c;
            wk_trace_cursor_init(tr, t0, &c);
            double bytes = 0;
            for (int q = 0; q < 40; q++) { /* growing, as in a busy period, with jumps back */
                bytes = rng_unit(&seed) < 0.1 ? rng_unit(&seed) * 1e5 : bytes + rng_unit(&seed) * 3e6;
                /* whole bytes (a link's sums; the cursor's integer path), whole packets, and fractions */
                double b = q % 3 == 0 ? floor(bytes) : q % 3 == 1 ? 1500 * ceil(bytes / 1500) : bytes;
                double want = wk_trace_time_to_deliver(tr, t0, b), got = wk_trace_cursor_time(tr, &c, b);
                ck_assert_msg(want == got, "%s t0 %.17g bytes %.17g: %.17g vs %.17g", tr->name, t0, b, got, want);
            }
            ck_assert(wk_trace_cursor_time(tr, &c, 0) == wk_trace_time_to_deliver(tr, t0, 0));
        }
    }
    wk_trace_free(&traces[0]);
    wk_trace_free(&traces[1]);
}
END_TEST

/* The cursor's fast path keeps the loop and segment of its last answer: answers at, just before and
 * just after loop ends (bytes per period multiples) and segment ends, walked forward in small and large
 * steps and then back, match wk_trace_time_to_deliver exactly. */
START_TEST(trace_cursor_exact_at_loop_and_segment_ends) {
    wk_trace traces[2];
    make_traces(&traces[0], &traces[1]);
    const wk_trace *tr = &traces[0]; /* capacity: the loop and segment logic */
    double per_period = tr->cum_bytes[tr->n];
    const double nudges[] = {-1, -1e-3, 0, 1e-3, 1};
    for (int start = 0; start < 6; start++) {
        double t0 = start * 0.37 * tr->period_s; /* several starting loops and segments */
        wk_trace_cursor c;
        wk_trace_cursor_init(tr, t0, &c);
        double before = wk_trace_bytes_before(tr, t0);
        int checked = 0;
        for (int loop = 0; loop < 4; loop++)
            for (size_t seg = 0; seg <= tr->n; seg++)
                for (int k = 0; k < 5; k++) {
                    /* bytes that make the target land on this loop's segment end, nudged */
                    double b = (double)loop * per_period + tr->cum_bytes[seg] - before + nudges[k];
                    if (!(b > 0)) continue;
                    double want = wk_trace_time_to_deliver(tr, t0, b), got = wk_trace_cursor_time(tr, &c, b);
                    ck_assert_msg(want == got, "t0 %.17g bytes %.17g: %.17g vs %.17g", t0, b, got, want);
                    checked++;
                }
        ck_assert_int_gt(checked, 150);
        for (double b = 3.5 * per_period; b > 1; b /= 1.7) { /* backwards: every answer behind the last */
            double want = wk_trace_time_to_deliver(tr, t0, b), got = wk_trace_cursor_time(tr, &c, b);
            ck_assert_msg(want == got, "back: t0 %.17g bytes %.17g: %.17g vs %.17g", t0, b, got, want);
        }
    }
    wk_trace_free(&traces[0]);
    wk_trace_free(&traces[1]);
}
END_TEST

/* The queue (sorted array + heap) pops exactly in (time, push order), for random interleavings of
 * pushes in order, out of order, at equal times, and pops; checked against a linear scan. */
START_TEST(event_queue_pops_in_time_then_push_order) {
    enum { CAP = 1500 };
    static double ref_t[CAP];
    static int64_t ref_arg[CAP];
    static int alive[CAP];
    uint64_t seed = 777;
    wk_event_queue q;
    wk_event_queue_init(&q);
    wk_err err;
    for (int trial = 0; trial < 20; trial++) {
        wk_event_queue_clear(&q);
        int pushed = 0, left = 0;
        double now = 0;
        while (pushed < CAP || left > 0) {
            if (pushed < CAP && (left == 0 || rng_unit(&seed) < 0.55)) {
                double u = rng_unit(&seed);
                double t = u < 0.4 ? now + rng_unit(&seed) : u < 0.6 ? now : now + floor(rng_unit(&seed) * 4) * 0.5;
                /* types spread over the runs, each sometimes in time order, sometimes not */
                int type = 1 + (int)(rng_unit(&seed) * 6);
                ck_assert_int_eq(wk_event_queue_push_owned(&q, t, (int32_t)(pushed % 3), type, pushed, &err), 0);
                ref_t[pushed] = t;
                ref_arg[pushed] = pushed;
                alive[pushed++] = 1;
                left++;
            } else {
                int best = -1;
                for (int i = 0; i < pushed; i++)
                    if (alive[i] && (best < 0 || ref_t[i] < ref_t[best])) best = i; /* first pushed wins ties */
                wk_event ev;
                ck_assert_int_eq(wk_event_queue_pop(&q, &ev), 0);
                ck_assert_msg(ev.arg == ref_arg[best] && ev.t == ref_t[best], "popped %lld, expected %d", (long long)ev.arg,
                              best);
                alive[best] = 0;
                left--;
                now = ev.t;
            }
            ck_assert_uint_eq(wk_event_queue_size(&q), (size_t)left);
        }
        wk_event ev;
        ck_assert_int_eq(wk_event_queue_pop(&q, &ev), -1);
    }
    wk_event_queue_free(&q);
}
END_TEST

int main(void) {
    Suite *s = suite_create("shared_link");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, one_device_equals_unshared);
    tcase_add_test(tc, equal_flows_share_a_constant_link);
    tcase_add_test(tc, devices_sharing_a_link_wait_n_times_longer);
    tcase_add_test(tc, random_flows_never_exceed_capacity);
    tcase_add_test(tc, trace_cursor_matches_time_to_deliver);
    tcase_add_test(tc, trace_cursor_exact_at_loop_and_segment_ends);
    tcase_add_test(tc, event_queue_pops_in_time_then_push_order);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
