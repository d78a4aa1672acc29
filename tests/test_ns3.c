/* ns-3 shim: a short walk-away Wi-Fi scenario yields a trace that survives the trace writer and
 * parser and whose throughput falls as the station walks away. Skipped (with a message) in builds
 * without ns-3, where the entry point must fail cleanly instead. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net/ns3/ns3_shim.h"
#include "tests/check_util.h"

START_TEST(without_ns3_the_call_says_so) {
    if (wk_ns3_available()) return;
    wk_trace tr;
    wk_err err = {0};
    ck_assert_int_eq(wk_ns3_run("wifi-walk", 10, 1, &tr, &err), WK_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(err.msg, "libns3-dev"));
    fprintf(stderr, "test_ns3: SKIPPED the ns-3 scenarios: this build has no ns-3 (apt-get install libns3-dev "
                    "libgsl-dev, then re-run cmake)\n");
}
END_TEST

static double mean_mbps(const wk_trace *tr, size_t from, size_t to) {
    double s = 0;
    for (size_t i = from; i < to; i++) s += tr->rate_Bps[i] * 8e-6;
    return s / (double)(to - from);
}

START_TEST(wifi_walk_away_throughput_falls) {
    if (!wk_ns3_available()) return;
    wk_trace tr;
    wk_err err = {0};
    ck_assert_msg(wk_ns3_run("wifi-walk-away", 6, 1, &tr, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(tr.n, 60); /* one sample per 100 ms */
    ck_assert_double_eq_tol(tr.period_s, 6.0, 1e-9);
    double first = mean_mbps(&tr, 0, 30), second = mean_mbps(&tr, 30, 60);
    fprintf(stderr, "ns-3 wifi-walk-away: first half %.1f Mbit/s, second half %.1f Mbit/s\n", first, second);
    ck_assert_msg(first > 100, "first half %.1f Mbit/s: near the AP an 802.11ax link should do far better", first);
    ck_assert_msg(first > 1.1 * second, "first half %.1f Mbit/s, second half %.1f: no fall while walking away", first,
                  second);

    /* the trace goes through the file writer and parser unchanged (0.01 Mbit/s) */
    char path[] = "/tmp/wikv-ns3-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_msg(wk_trace_save(&tr, path, WK_FMT_PENSIEVE, &err) == 0, "%s", err.msg);
    wk_trace back;
    ck_assert_msg(wk_trace_load(path, WK_FMT_AUTO, &back, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(back.n, tr.n);
    ck_assert_double_eq_tol(wk_trace_mean_mbps(&back), wk_trace_mean_mbps(&tr), 0.01);
    unlink(path);
    wk_trace_free(&back);
    wk_trace_free(&tr);

    ck_assert_int_eq(wk_ns3_run("no-such-scenario", 10, 1, &tr, &err), WK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "no-such-scenario"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("ns3");
    TCase *tc = tcase_create("ns3");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, without_ns3_the_call_says_so);
    tcase_add_test(tc, wifi_walk_away_throughput_falls);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
