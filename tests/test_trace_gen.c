/* Trace generators: determinism by seed, the PRNG's moments, each model's mean and structure, and the
 * bundled traces/ files lying in their model's expected range. */
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/trace_gen.h"
#include "tests/check_util.h"

START_TEST(rng_is_deterministic_and_has_right_moments) {
    wk_rng a, b, c;
    wk_rng_seed(&a, 42);
    wk_rng_seed(&b, 42);
    wk_rng_seed(&c, 43);
    int differ = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = wk_rng_next(&a), y = wk_rng_next(&b), z = wk_rng_next(&c);
        ck_assert_uint_eq(x, y);
        differ += x != z;
    }
    ck_assert_int_ge(differ, 99);
    const int n = 200000;
    double su = 0, sn = 0, sn2 = 0, se = 0;
    for (int i = 0; i < n; i++) {
        double u = wk_rng_uniform(&a);
        ck_assert(u >= 0 && u < 1);
        su += u;
        double g = wk_rng_normal(&a);
        sn += g;
        sn2 += g * g;
        se += wk_rng_exponential(&a, 2.0);
    }
    ck_assert_double_eq_tol(su / n, 0.5, 0.005);
    ck_assert_double_eq_tol(sn / n, 0.0, 0.01);
    ck_assert_double_eq_tol(sn2 / n, 1.0, 0.01);
    ck_assert_double_eq_tol(se / n, 2.0, 0.03);
}
END_TEST

static void gen(const char *model, double seconds, uint64_t seed, double scale, wk_trace *tr, uint8_t **states) {
    const wk_gen_model *m = wk_gen_model_find(model);
    ck_assert_ptr_nonnull(m);
    wk_gen_options o = {.seconds = seconds, .seed = seed, .scale = scale};
    wk_err err = {0};
    ck_assert_msg(wk_gen_trace(m, &o, tr, states, &err) == 0, "%s", err.msg);
}

START_TEST(same_seed_same_trace_other_seed_other_trace) {
    wk_trace a, b, c;
    gen("wifi-walk", 30, 5, 1, &a, NULL);
    gen("wifi-walk", 30, 5, 1, &b, NULL);
    gen("wifi-walk", 30, 6, 1, &c, NULL);
    ck_assert_uint_eq(a.n, 300);
    ck_assert_uint_eq(a.n, b.n);
    ck_assert_int_eq(memcmp(a.rate_Bps, b.rate_Bps, a.n * sizeof *a.rate_Bps), 0);
    ck_assert_int_ne(memcmp(a.rate_Bps, c.rate_Bps, a.n * sizeof *a.rate_Bps), 0);
    ck_assert_str_eq(a.name, "wifi-walk-30s-seed5");
    ck_assert_double_eq_tol(a.period_s, 30.0, 1e-9);
    wk_trace_free(&a);
    wk_trace_free(&b);
    wk_trace_free(&c);
}
END_TEST

/* Over a long run every model's mean is in its documented range and samples are <= 100 ms apart. */
START_TEST(long_run_means_in_model_range) {
    for (size_t i = 0; i < wk_gen_model_count(); i++) {
        const wk_gen_model *m = wk_gen_model_at(i);
        wk_trace tr;
        gen(m->name, 2000, 11, 1, &tr, NULL);
        double mean = wk_trace_mean_mbps(&tr);
        ck_assert_msg(mean >= m->expect_lo_mbps && mean <= m->expect_hi_mbps, "%s: mean %g not in [%g, %g]", m->name,
                      mean, m->expect_lo_mbps, m->expect_hi_mbps);
        for (size_t k = 1; k < tr.n; k++) ck_assert(tr.t_s[k] - tr.t_s[k - 1] <= 0.1 + 1e-9);
        for (size_t k = 0; k < tr.n; k++) ck_assert(tr.rate_Bps[k] * 8e-6 <= m->max_mbps + 1e-6);
        wk_trace_free(&tr);
    }
}
END_TEST

START_TEST(scale_scales_the_mean) {
    wk_trace a, b;
    gen("lte-static", 200, 3, 1, &a, NULL);
    gen("lte-static", 200, 3, 4, &b, NULL);
    ck_assert_double_eq_tol(wk_trace_mean_mbps(&b) / wk_trace_mean_mbps(&a), 4.0, 1e-3);
    wk_trace_free(&a);
    wk_trace_free(&b);
}
END_TEST

/* mmWave blockages are deep (under 2% of the line-of-sight mean) and last hundreds of ms to seconds. */
START_TEST(mmwave_blockages_are_deep_and_last_hundreds_of_ms) {
    const wk_gen_model *m = wk_gen_model_find("mmwave-blockage");
    wk_trace tr;
    uint8_t *st;
    gen("mmwave-blockage", 600, 9, 1, &tr, &st);
    size_t blocked = 2, episodes = 0, run = 0;
    ck_assert_str_eq(m->states[blocked].name, "blocked");
    double shortest = 1e9, longest = 0, deep = 0, total = 0;
    for (size_t k = 0; k <= tr.n; k++) {
        if (k < tr.n && st[k] == blocked) {
            run++;
            total++;
            deep += tr.rate_Bps[k] * 8e-6 < 0.02 * m->states[0].mean_mbps;
            continue;
        }
        if (run) {
            double d = (double)run * m->dt_s;
            shortest = fmin(shortest, d);
            longest = fmax(longest, d);
            episodes++;
            run = 0;
        }
    }
    ck_assert_uint_ge(episodes, 40);
    ck_assert(shortest >= 0.2 - 1e-9);
    ck_assert(longest >= 1.0 && longest <= 10.0);
    ck_assert_double_ge(deep / total, 0.99);
    free(st);
    wk_trace_free(&tr);
}
END_TEST

/* The walking model moves only between neighbouring distance states. */
START_TEST(walk_moves_between_neighbours) {
    wk_trace tr;
    uint8_t *st;
    gen("wifi-walk", 1000, 4, 1, &tr, &st);
    int seen[4] = {0};
    for (size_t k = 0; k < tr.n; k++) {
        seen[st[k]] = 1;
        if (k) ck_assert_int_le(abs((int)st[k] - (int)st[k - 1]), 1);
    }
    for (int s = 0; s < 4; s++) ck_assert(seen[s]);
    free(st);
    wk_trace_free(&tr);
}
END_TEST

START_TEST(bad_models_and_options_are_rejected) {
    wk_gen_model m = *wk_gen_model_find("lte-static");
    wk_err err = {0};
    wk_trace tr;
    wk_gen_options o = {.seconds = 10, .seed = 1};
    m.dt_s = 0.5;
    ck_assert_int_eq(wk_gen_trace(&m, &o, &tr, NULL, &err), WK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "dt_s"));
    m = *wk_gen_model_find("lte-static");
    m.states[1].next[0] = m.states[1].next[2] = 0;
    ck_assert_int_eq(wk_gen_trace(&m, &o, &tr, NULL, &err), WK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "state 1"));
    o.seconds = 0;
    ck_assert_int_eq(wk_gen_trace(wk_gen_model_find("lte-static"), &o, &tr, NULL, &err), WK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "seconds"));
    ck_assert_ptr_null(wk_gen_model_find("no-such-model"));
}
END_TEST

/* Every bundled traces/<model>-... file loads and has a mean inside its model's expected range. */
START_TEST(bundled_traces_in_model_range) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/traces", WIKV_SOURCE_DIR);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int checked = 0;
    while ((e = readdir(d))) {
        for (size_t i = 0; i < wk_gen_model_count(); i++) {
            const wk_gen_model *m = wk_gen_model_at(i);
            size_t len = strlen(m->name);
            if (strncmp(e->d_name, m->name, len) != 0 || e->d_name[len] != '-' || !strchr(e->d_name, 's')) continue;
            if (!isdigit((unsigned char)e->d_name[len + 1])) continue; /* wifi-walk is not wifi-static */
            char path[8200];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            wk_trace tr;
            wk_trace_stats st;
            wk_err err = {0};
            ck_assert_msg(wk_trace_load(path, WK_FMT_AUTO, &tr, &err) == 0, "%s", err.msg);
            ck_assert_int_eq(wk_trace_compute_stats(&tr, &st, &err), 0);
            ck_assert_msg(st.mean_mbps >= m->expect_lo_mbps && st.mean_mbps <= m->expect_hi_mbps,
                          "%s: mean %g not in [%g, %g]", e->d_name, st.mean_mbps, m->expect_lo_mbps, m->expect_hi_mbps);
            ck_assert_msg(st.duration_s > 59.9 && st.duration_s < 120.1, "%s: %g s", e->d_name, st.duration_s);
            wk_trace_free(&tr);
            checked++;
        }
    }
    closedir(d);
    ck_assert_int_ge(checked, 5);
}
END_TEST

int main(void) {
    Suite *s = suite_create("trace_gen");
    TCase *tc = tcase_create("gen");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, rng_is_deterministic_and_has_right_moments);
    tcase_add_test(tc, same_seed_same_trace_other_seed_other_trace);
    tcase_add_test(tc, long_run_means_in_model_range);
    tcase_add_test(tc, scale_scales_the_mean);
    tcase_add_test(tc, mmwave_blockages_are_deep_and_last_hundreds_of_ms);
    tcase_add_test(tc, walk_moves_between_neighbours);
    tcase_add_test(tc, bad_models_and_options_are_rejected);
    tcase_add_test(tc, bundled_traces_in_model_range);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
