/* Trace formats and the exact link-time queries, checked against brute force. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "net/trace.h"
#include "tests/check_util.h"

START_TEST(constant_capacity_is_exact) {
    wk_trace tr;
    wk_err err;
    ck_assert_int_eq(wk_trace_constant("c100", 100.0, 1.0, &tr, &err), 0);
    /* 100 Mbit/s = 12.5e6 B/s: 25e6 bytes from t0=0.3 take 2 s */
    double t = wk_trace_time_to_deliver(&tr, 0.3, 25e6);
    ck_assert_double_eq_tol(t, 2.3, 1e-12);
    ck_assert_double_eq_tol(wk_trace_bytes_before(&tr, 2.5), 2.5 * 12.5e6, 1e-3);
    ck_assert_double_eq_tol(wk_trace_mean_mbps(&tr), 100.0, 1e-12);
    wk_trace_free(&tr);
}
END_TEST

START_TEST(capacity_with_zero_segments_and_loops) {
    double t[] = {0, 1, 2};
    double mbps[] = {8, 0, 16}; /* 1e6 B in [0,1), nothing in [1,2), 2e6 B in [2,3) */
    wk_trace tr;
    wk_err err;
    ck_assert_int_eq(wk_trace_from_capacity("z", t, mbps, 3, 3.0, &tr, &err), 0);
    ck_assert_double_eq_tol(wk_trace_time_to_deliver(&tr, 0, 1e6), 1.0, 1e-12);
    ck_assert_double_eq_tol(wk_trace_time_to_deliver(&tr, 0, 1.5e6), 2.25, 1e-12);
    ck_assert_double_eq_tol(wk_trace_time_to_deliver(&tr, 1.2, 1e6), 2.5, 1e-12);
    /* 4e6 bytes from 0: one loop (3e6) then 1e6 more in the next loop's first second */
    ck_assert_double_eq_tol(wk_trace_time_to_deliver(&tr, 0, 4e6), 4.0, 1e-12);
    ck_assert_double_eq_tol(wk_trace_time_to_deliver(&tr, 0, 3e6), 3.0, 1e-12);
    wk_trace_free(&tr);
}
END_TEST

/* Brute force: walk opportunities one by one over the looping schedule. */
static double brute_opportunity_time(const double *ms, size_t n, double t0, double bytes) {
    double period = ms[n - 1] / 1000.0;
    double need = ceil(bytes / 1500.0);
    for (long loop = 0;; loop++)
        for (size_t i = 0; i < n; i++) {
            double t = (double)loop * period + ms[i] / 1000.0;
            if (t < t0) continue;
            if (--need <= 0) return t;
        }
}

START_TEST(random_mahimahi_matches_brute_force) {
    unsigned seed = 12345;
    for (int trial = 0; trial < 200; trial++) {
        size_t n = 1 + (size_t)(rand_r(&seed) % 300);
        double ms[300];
        double cur = 0;
        for (size_t i = 0; i < n; i++) {
            cur += (double)(rand_r(&seed) % 4); /* repeats (0 step) = several packets in one ms */
            ms[i] = cur;
        }
        if (ms[n - 1] == 0) ms[n - 1] = 1;
        wk_trace tr;
        wk_err err;
        ck_assert_int_eq(wk_trace_from_opportunities("r", ms, n, &tr, &err), 0);
        for (int q = 0; q < 50; q++) {
            /* off the millisecond grid: exact ties are decided by rounding, not by the model */
            double t0 = (double)(rand_r(&seed) % 5000) / 1000.0 + 0.0003;
            double bytes = 1.0 + (double)(rand_r(&seed) % 600000);
            double fast = wk_trace_time_to_deliver(&tr, t0, bytes);
            double slow = brute_opportunity_time(ms, n, t0, bytes);
            ck_assert_msg(fabs(fast - slow) < 1e-9, "trial %d: t0=%g bytes=%g fast=%.12g brute=%.12g", trial, t0,
                          bytes, fast, slow);
        }
        wk_trace_free(&tr);
    }
}
END_TEST

/* Entries of sorted a[0..n) below x, by a linear scan: the reference for the trace's searches. */
static size_t linear_count_below(const double *a, size_t n, double x) {
    size_t k = 0;
    while (k < n && a[k] < x) k++;
    return k;
}

/* The searches behind bytes_before start from where a time would sit in an evenly spread trace; on
 * bursty traces (clusters of packets, long gaps, a capacity trace with uneven segments) they must
 * still count exactly what a linear scan counts, at entry times, between them and at loop starts. */
START_TEST(bytes_before_on_uneven_traces_matches_linear_count) {
    enum { N = 3000 };
    static double ms[N], seg_t[N], seg_mbps[N];
    unsigned seed = 99;
    double cur = 0, at = 0;
    for (size_t i = 0; i < N; i++) {
        cur += (i % 500 < 400) ? (double)(rand_r(&seed) % 2) : (double)(rand_r(&seed) % 400); /* bursts, gaps */
        ms[i] = cur;
        seg_t[i] = at;
        at += (i % 97 == 0) ? 5.0 : 0.001 * (1 + rand_r(&seed) % 7);
        seg_mbps[i] = (double)(rand_r(&seed) % 50);
    }
    wk_trace mm, cap;
    wk_err err;
    ck_assert_int_eq(wk_trace_from_opportunities("bursty", ms, N, &mm, &err), 0);
    ck_assert_int_eq(wk_trace_from_capacity("uneven", seg_t, seg_mbps, N, at, &cap, &err), 0);
    for (int q = 0; q < 4000; q++) {
        const wk_trace *tr = q % 2 ? &mm : &cap;
        double t = q % 8 < 2 ? tr->t_s[rand_r(&seed) % N] + (q % 8) * tr->period_s  /* on an entry */
                 : q % 8 == 2 ? (double)(rand_r(&seed) % 3) * tr->period_s          /* a loop start */
                 : (double)rand_r(&seed) / RAND_MAX * 3 * tr->period_s;
        double loops = floor(t / tr->period_s), r = t - loops * tr->period_s, want;
        size_t below = linear_count_below(tr->t_s, tr->n, r);
        if (tr->kind == WK_TRACE_OPPORTUNITIES) {
            double index = loops * (double)tr->n + (double)below;
            if (r <= 0 && loops > 0) index -= (double)(tr->n - linear_count_below(tr->t_s, tr->n, tr->period_s));
            want = index * WK_MAHIMAHI_PACKET_BYTES;
        } else {
            want = loops * tr->cum_bytes[tr->n] +
                   (below == 0 ? 0 : tr->cum_bytes[below - 1] + tr->rate_Bps[below - 1] * (r - tr->t_s[below - 1]));
        }
        if (t <= 0) want = 0;
        double got = wk_trace_bytes_before(tr, t);
        ck_assert_msg(got == want, "%s t=%.17g: %.17g, linear %.17g", tr->name, t, got, want);
    }
    wk_trace_free(&mm);
    wk_trace_free(&cap);
}
END_TEST

/* Mahimahi: the line at the period and the first line of the next loop both happen at a loop start. */
START_TEST(mahimahi_loop_boundary_ties) {
    double ms[] = {0, 5, 10};
    wk_trace tr;
    wk_err err;
    ck_assert_int_eq(wk_trace_from_opportunities("b", ms, 3, &tr, &err), 0);
    ck_assert_double_eq_tol(wk_trace_time_to_deliver(&tr, 0.010, 1500), 0.010, 1e-12);
    ck_assert_double_eq_tol(wk_trace_time_to_deliver(&tr, 0.010, 3000), 0.010, 1e-12);
    ck_assert_double_eq_tol(wk_trace_time_to_deliver(&tr, 0.010, 4500), 0.015, 1e-12);
    ck_assert_double_eq_tol(wk_trace_time_to_deliver(&tr, 0.0, 4500), 0.010, 1e-12);
    ck_assert_double_eq_tol(wk_trace_bytes_before(&tr, 0.0101), 4 * 1500.0, 1e-9);
    wk_trace_free(&tr);
}
END_TEST

START_TEST(parses_all_formats) {
    wk_trace tr;
    wk_err err;
    const char *mm = "0\n0\n5\n10\n";
    ck_assert_int_eq(wk_trace_parse(mm, strlen(mm), "m", NULL, WK_FMT_AUTO, &tr, &err), 0);
    ck_assert_int_eq(tr.kind, WK_TRACE_OPPORTUNITIES);
    ck_assert_uint_eq(tr.n, 4);
    ck_assert_double_eq_tol(tr.period_s, 0.010, 1e-12);
    wk_trace_free(&tr);
    const char *pens = "0.0 8\n0.5\t16\n1.0 8\n";
    ck_assert_int_eq(wk_trace_parse(pens, strlen(pens), "p", NULL, WK_FMT_AUTO, &tr, &err), 0);
    ck_assert_int_eq(tr.kind, WK_TRACE_CAPACITY);
    ck_assert_double_eq_tol(tr.period_s, 1.5, 1e-12);
    ck_assert_double_eq_tol(tr.cum_bytes[3], (0.5 * 8 + 0.5 * 16 + 0.5 * 8) * 1e6 / 8, 1e-6);
    wk_trace_free(&tr);
    const char *csv = "time_s,mbps\n0,10\n1,20\n";
    ck_assert_int_eq(wk_trace_parse(csv, strlen(csv), "c", NULL, WK_FMT_AUTO, &tr, &err), 0);
    ck_assert_double_eq_tol(wk_trace_mean_mbps(&tr), 15.0, 1e-12);
    wk_trace_free(&tr);
    const char *col = "a,rate,b\nx,5,y\nx,7,y\n";
    ck_assert_int_eq(wk_trace_parse(col, strlen(col), "col", "rate", WK_FMT_AUTO, &tr, &err), 0);
    ck_assert_double_eq_tol(wk_trace_mean_mbps(&tr), 6.0, 1e-12);
    wk_trace_free(&tr);
}
END_TEST

START_TEST(malformed_lines_name_file_and_line) {
    wk_trace tr;
    wk_err err;
    const char *mm = "0\n5\nabc\n";
    ck_assert_int_eq(wk_trace_parse(mm, strlen(mm), "bad.down", NULL, WK_FMT_MAHIMAHI, &tr, &err), WK_EFORMAT);
    ck_assert_msg(strstr(err.msg, "bad.down:3:") != NULL, "%s", err.msg);
    const char *back = "0\n5\n3\n";
    ck_assert_int_eq(wk_trace_parse(back, strlen(back), "b.down", NULL, WK_FMT_MAHIMAHI, &tr, &err), WK_EFORMAT);
    ck_assert_msg(strstr(err.msg, "b.down:3:") != NULL, "%s", err.msg);
    const char *pens = "0 1\n1 -2\n";
    ck_assert_int_eq(wk_trace_parse(pens, strlen(pens), "p.txt", NULL, WK_FMT_PENSIEVE, &tr, &err), WK_EFORMAT);
    ck_assert_msg(strstr(err.msg, "p.txt:2:") != NULL, "%s", err.msg);
    const char *zeros = "0 0\n1 0\n";
    ck_assert_int_eq(wk_trace_parse(zeros, strlen(zeros), "z", NULL, WK_FMT_PENSIEVE, &tr, &err), WK_EFORMAT);
    const char *nohdr = "time,rate\n0,1\n";
    ck_assert_int_eq(wk_trace_parse(nohdr, strlen(nohdr), "h.csv", NULL, WK_FMT_CSV, &tr, &err), WK_EFORMAT);
    ck_assert_msg(strstr(err.msg, "h.csv:1:") != NULL, "%s", err.msg);
}
END_TEST

START_TEST(save_and_reload_round_trip) {
    double t[] = {0, 1, 2.5};
    double mbps[] = {3, 9, 4};
    wk_trace tr, back;
    wk_err err;
    ck_assert_int_eq(wk_trace_from_capacity("rt", t, mbps, 3, 4.0, &tr, &err), 0);
    char path[] = "/tmp/wikv_trace_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(wk_trace_save(&tr, path, WK_FMT_CSV, &err), 0);
    ck_assert_int_eq(wk_trace_load(path, WK_FMT_AUTO, &back, &err), 0);
    ck_assert_uint_eq(back.n, 3);
    /* the last segment is 1.5 s long, the reload assumes the previous interval (1.5 s): exact here */
    ck_assert_double_eq_tol(back.period_s, 4.0, 1e-9);
    ck_assert_double_eq_tol(wk_trace_mean_mbps(&back), wk_trace_mean_mbps(&tr), 1e-9);
    wk_trace_free(&back);
    ck_assert_int_eq(wk_trace_save(&tr, path, WK_FMT_MAHIMAHI, &err), 0);
    ck_assert_int_eq(wk_trace_load(path, WK_FMT_AUTO, &back, &err), 0);
    ck_assert_int_eq(back.kind, WK_TRACE_OPPORTUNITIES);
    ck_assert_double_eq_tol(wk_trace_mean_mbps(&back), wk_trace_mean_mbps(&tr), 0.02 * wk_trace_mean_mbps(&tr));
    wk_trace_free(&back);
    remove(path);
    wk_trace_free(&tr);
}
END_TEST

START_TEST(stats_of_two_level_trace) {
    double t[] = {0, 5};
    double mbps[] = {10, 30};
    wk_trace tr;
    wk_err err;
    wk_trace_stats st;
    ck_assert_int_eq(wk_trace_from_capacity("s", t, mbps, 2, 10.0, &tr, &err), 0);
    ck_assert_int_eq(wk_trace_compute_stats(&tr, &st, &err), 0);
    ck_assert_double_eq_tol(st.duration_s, 10, 1e-12);
    ck_assert_double_eq_tol(st.mean_mbps, 20, 1e-12);
    ck_assert_double_eq_tol(st.p50_mbps, 20, 1e-12);
    ck_assert_double_eq_tol(st.cov, 0.5, 1e-12);
    wk_trace_free(&tr);
}
END_TEST

/* The reader agrees with the reference statistics of the public traces (durations and means). The
 * reference takes a Pensieve file's duration as its last timestamp; wikv lets the last row hold for
 * one more interval (about 1 s), hence the tolerance. */
START_TEST(public_traces_match_reference_means) {
    const char *dir = wk_test_shared_traces();
    if (!dir) {
        printf("test_trace: ../shared/traces-public absent, skipping public-trace check\n");
        return;
    }
    struct { const char *file; double duration, mean; } ref[] = {
        {"mahimahi/Verizon-LTE-short.down", 140.0, 5.03},
        {"pensieve-norway-hsdpa/norway_bus_1", 154.8, 2.95},
        {"5gophers/walking-trace.csv#throughput_mbps", 0, 0},
    };
    for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, ref[i].file);
        wk_trace tr;
        wk_trace_stats st;
        wk_err err;
        ck_assert_msg(wk_trace_load(path, WK_FMT_AUTO, &tr, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(wk_trace_compute_stats(&tr, &st, &err), 0);
        if (ref[i].duration > 0) {
            ck_assert_msg(fabs(st.duration_s - ref[i].duration) < 1.5, "%s: %g", ref[i].file, st.duration_s);
            ck_assert_msg(fabs(st.mean_mbps - ref[i].mean) < 0.05 * ref[i].mean, "%s: %g", ref[i].file, st.mean_mbps);
        }
        wk_trace_free(&tr);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("trace");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, constant_capacity_is_exact);
    tcase_add_test(tc, capacity_with_zero_segments_and_loops);
    tcase_add_test(tc, random_mahimahi_matches_brute_force);
    tcase_add_test(tc, bytes_before_on_uneven_traces_matches_linear_count);
    tcase_add_test(tc, mahimahi_loop_boundary_ties);
    tcase_add_test(tc, parses_all_formats);
    tcase_add_test(tc, malformed_lines_name_file_and_line);
    tcase_add_test(tc, save_and_reload_round_trip);
    tcase_add_test(tc, stats_of_two_level_trace);
    tcase_add_test(tc, public_traces_match_reference_means);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
