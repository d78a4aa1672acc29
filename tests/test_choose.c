/* Policy search (sim/choose.h): the search finds a planted optimum known in closed form, the choice
 * file round-trips to the same TTFT, the hold-out split is deterministic, infeasible targets fail. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_util.h"
#include "core/stats.h"
#include "sim/choose.h"
#include "sim/sim.h"

/* The planted scenario: WiKV on a constant 20 Mbit/s link, 1024-token context, level-0 units of 2048
 * vectors. The quality table accepts every step (so the first attempt emits) and its F1 is a step
 * function of coverage: 0.5 below C0, 1 from C0 on. With quality_min 0.9 a configuration is feasible
 * iff the first token sees coverage >= C0. TTFT grows with the threshold (each unit arrives later),
 * so the best feasible threshold lies in (f[k*-1], f[k*]], where f[k] is the KV fraction of the first
 * k level-0 units and k* the fewest units whose importance reaches C0: both follow from the plan. */
#define C0 0.8
#define MODEL "qwen3-4b"
#define DEVICE "jetson-agx-orin"
#define CONTEXT 1024
#define PINNED "wikv:ttft_deadline=0,levels=1,batch=2048"

typedef struct {
    char dir[64], trace[128], quality[128], choice[128];
} fixture;

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void setup_fixture(fixture *fx) {
    snprintf(fx->dir, sizeof fx->dir, "/tmp/wikv_choose_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(fx->dir));
    snprintf(fx->trace, sizeof fx->trace, "%s/c20.txt", fx->dir);
    snprintf(fx->quality, sizeof fx->quality, "%s/step.tsv", fx->dir);
    snprintf(fx->choice, sizeof fx->choice, "%s/choice.json", fx->dir);
    write_file(fx->trace, "0 20\n1 20\n2 20\n3 20\n4 20\n5 20\n6 20\n7 20\n8 20\n9 20\n");
    char q[512];
    snprintf(q, sizeof q,
             "# source=assumed: a step function for the test\nfamily\tcoverage\taccept\tf1_rel\n"
             "default\t0\t1\t0.5\ndefault\t%.9f\t1\t0.5\ndefault\t%.9f\t1\t1\ndefault\t1\t1\t1\n",
             C0 - 1e-9, C0);
    write_file(fx->quality, q);
}

static void remove_fixture(const fixture *fx) {
    unlink(fx->trace);
    unlink(fx->quality);
    unlink(fx->choice);
    rmdir(fx->dir);
}

/* f[k*-1] and f[k*] from the plan of the pinned configuration. */
static void planted_interval(double *lo, double *hi) {
    wk_err err;
    wk_model_spec m;
    wk_device d;
    ck_assert_int_eq(wk_model_spec_find(MODEL, &m, &err), 0);
    ck_assert_int_eq(wk_device_find(DEVICE, &d, &err), 0);
    wk_policy p;
    ck_assert_int_eq(wk_policy_create(PINNED, &p, &err), 0);
    wk_plan plan;
    wk_plan_init(&plan);
    wk_request req = {&m, &d, CONTEXT, 1, "none", 0, NULL, NULL};
    ck_assert_int_eq(p.ops->plan(p.state, p.param, &req, &plan, &err), 0);
    double imp = 0, values = 0, prev_values = 0;
    size_t k = 0;
    while (k < plan.n && imp < C0 * plan.importance_total) {
        prev_values = values;
        imp += plan.units[k].importance;
        values += plan.units[k].values;
        k++;
    }
    ck_assert_uint_gt(k, 2);           /* the optimum is inside the range, not at an end */
    ck_assert_uint_lt(k, plan.n - 2);
    *lo = prev_values / plan.kv_values_total;
    *hi = values / plan.kv_values_total;
    wk_plan_free(&plan);
    wk_policy_free(&p);
}

static wk_choose_config planted_config(const fixture *fx, const char *const *traces, const char *const *policies) {
    wk_choose_config c = wk_choose_defaults();
    c.traces = traces;
    c.n_traces = 1;
    c.policies = policies;
    c.n_policies = 1;
    c.model = MODEL;
    c.device = DEVICE;
    c.context_tokens = CONTEXT;
    c.requests_per_trace = 2;
    c.quality_path = fx->quality;
    c.quality_min = 0.9;
    c.grid_budget = 9;
    c.max_refine = 64;
    return c;
}

/* TTFT p50 of a spec on the trace, outside the search: what `wikv sim` computes. */
static double ttft_p50(const fixture *fx, const char *spec, int requests) {
    wk_err err;
    wk_model_spec m;
    wk_device d;
    wk_trace tr;
    wk_quality_table q;
    ck_assert_int_eq(wk_model_spec_find(MODEL, &m, &err), 0);
    ck_assert_int_eq(wk_device_find(DEVICE, &d, &err), 0);
    ck_assert_int_eq(wk_trace_load(fx->trace, WK_FMT_AUTO, &tr, &err), 0);
    ck_assert_int_eq(wk_quality_load(fx->quality, &q, &err), 0);
    wk_policy p;
    ck_assert_int_eq(wk_policy_create(spec, &p, &err), 0);
    wk_sim sim;
    wk_sim_init(&sim);
    double ttft[16];
    for (int r = 0; r < requests; r++) {
        wk_sim_config sc = {.trace = &tr, .link = wk_link_defaults(), .model = &m, .device = &d,
                            .context_tokens = CONTEXT, .output_tokens = 1, .task = "none", .seed = (uint64_t)r,
                            .quality = &q};
        sc.link.trace_offset_s = tr.period_s * r / requests;
        wk_sim_result res;
        ck_assert_int_eq(wk_sim_request(&sim, &p, &sc, NULL, &res, &err), 0);
        ck_assert(res.s.ok);
        ttft[r] = res.s.ttft_s;
    }
    wk_sort_doubles(ttft, (size_t)requests);
    wk_sim_free(&sim);
    wk_policy_free(&p);
    wk_trace_free(&tr);
    return wk_percentile_sorted(ttft, (size_t)requests, 0.5);
}

START_TEST(search_finds_planted_threshold) {
    fixture fx;
    setup_fixture(&fx);
    double lo, hi;
    planted_interval(&lo, &hi);
    const char *traces[] = {fx.trace}, *policies[] = {PINNED};
    wk_choose_config c = planted_config(&fx, traces, policies);
    wk_choose_result r;
    wk_err err;
    ck_assert_msg(wk_choose_run(&c, NULL, NULL, &r, &err) == 0, "%s", err.msg);
    ck_assert_int_ge(r.best, 0);
    const wk_choose_point *b = &r.points[r.best];
    wk_policy p;
    ck_assert_int_eq(wk_policy_create(b->spec, &p, &err), 0);
    double threshold = wk_policy_param(&p, "threshold");
    wk_policy_free(&p);
    /* the planted optimum: the threshold lies in the interval of the k*-th level-0 unit */
    ck_assert_msg(threshold > lo && threshold <= hi + 1e-12, "threshold %g outside (%g, %g]", threshold, lo, hi);
    ck_assert(b->feasible);
    ck_assert_double_ge(b->f1, 0.9);
    /* it is optimal: one unit less is infeasible, one unit more is slower */
    char spec[256];
    snprintf(spec, sizeof spec, "%s,threshold=%.9f", PINNED, (lo + hi) / 2);
    ck_assert_double_eq_tol(b->objective, ttft_p50(&fx, spec, 2), 1e-12);
    snprintf(spec, sizeof spec, "%s,threshold=%.9f", PINNED, hi + (hi - lo) / 2);
    ck_assert_double_gt(ttft_p50(&fx, spec, 2), b->objective);
    int infeasible_below = 0, front = 0;
    for (size_t i = 0; i < r.n; i++) {
        const wk_choose_point *q = &r.points[i];
        ck_assert(!q->feasible || q->objective >= b->objective);
        infeasible_below += !q->feasible && q->objective < b->objective;
        front += q->on_front;
    }
    ck_assert_int_gt(infeasible_below, 0); /* the search saw faster configurations that miss the F1 target */
    ck_assert_int_ge(front, 2);
    ck_assert(b->on_front);
    wk_choose_result_free(&r);
    remove_fixture(&fx);
}
END_TEST

START_TEST(choice_round_trips_to_same_ttft) {
    fixture fx;
    setup_fixture(&fx);
    const char *traces[] = {fx.trace}, *policies[] = {PINNED};
    wk_choose_config c = planted_config(&fx, traces, policies);
    c.max_refine = 8;
    wk_choose_result r;
    wk_err err;
    ck_assert_msg(wk_choose_run(&c, NULL, NULL, &r, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(wk_choose_write_json(fx.choice, &c, &r, &err), 0);
    char spec[256];
    ck_assert_int_eq(wk_choice_load(fx.choice, spec, sizeof spec, &err), 0);
    ck_assert_str_eq(spec, r.points[r.best].spec);
    wk_choice ch;
    ck_assert_int_eq(wk_choice_read(fx.choice, &ch, &err), 0);
    ck_assert_str_eq(ch.model, MODEL);
    ck_assert_int_eq(ch.context_tokens, CONTEXT);
    ck_assert_str_eq(ch.quality_path, fx.quality);
    ck_assert_double_eq_tol(ttft_p50(&fx, spec, 2), r.points[r.best].ttft_q[3], 1e-12);
    ck_assert_int_eq(wk_choice_load(fx.choice, spec, 8, &err), WK_EINVAL); /* too small a buffer */
    write_file(fx.choice, "{\"policy\": \"nosuch:x=1\"}");
    ck_assert_int_eq(wk_choice_load(fx.choice, spec, sizeof spec, &err), WK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "policy"));
    write_file(fx.choice, "{\"policy\": 3}");
    ck_assert_int_eq(wk_choice_load(fx.choice, spec, sizeof spec, &err), WK_EFORMAT);
    write_file(fx.choice, "{\"policy\": \"wikv\"");
    ck_assert_int_eq(wk_choice_load(fx.choice, spec, sizeof spec, &err), WK_EFORMAT);
    wk_choose_result_free(&r);
    remove_fixture(&fx);
}
END_TEST

START_TEST(unreachable_quality_is_reported) {
    fixture fx;
    setup_fixture(&fx);
    const char *traces[] = {fx.trace}, *policies[] = {"simcalkv"};
    wk_choose_config c = planted_config(&fx, traces, policies);
    c.quality_min = 1.2; /* above every F1 of the table */
    c.grid_budget = 3;
    c.max_refine = 2;
    wk_choose_result r;
    wk_err err;
    ck_assert_int_eq(wk_choose_run(&c, NULL, NULL, &r, &err), WK_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "best predicted F1"));
    ck_assert_int_eq(r.best, -1);
    ck_assert_uint_eq(r.n, 3); /* 3 grid points (the default is the middle one), no refinement */
    wk_choose_result_free(&r);
    remove_fixture(&fx);
}
END_TEST

START_TEST(refused_parameters_are_infeasible_not_fatal) {
    fixture fx;
    setup_fixture(&fx);
    const char *traces[] = {fx.trace}, *policies[] = {"h2o:budget=16", "prefill:text_bytes=4"};
    wk_choose_config c = planted_config(&fx, traces, policies);
    c.n_policies = 2;
    c.grid_budget = 3;
    c.max_refine = 4;
    wk_choose_result r;
    wk_err err;
    ck_assert_msg(wk_choose_run(&c, NULL, NULL, &r, &err) == 0, "%s", err.msg);
    int refused = 0;
    for (size_t i = 0; i < r.n; i++) refused += r.points[i].invalid[0] != 0 && !r.points[i].feasible;
    ck_assert_int_gt(refused, 0); /* window > budget 16 is refused by the policy */
    ck_assert_str_eq(r.points[r.best].policy, "prefill");
    wk_choose_result_free(&r);
    remove_fixture(&fx);
}
END_TEST

START_TEST(holdout_split_is_deterministic) {
    const char *in[] = {"e", "b", "d", "a", "c", "f"};
    const char *s[6], *h[6];
    size_t ns, nh;
    wk_err err;
    ck_assert_int_eq(wk_choose_split(in, 6, 1.0 / 3, s, &ns, h, &nh, &err), 0);
    ck_assert_uint_eq(ns, 4);
    ck_assert_uint_eq(nh, 2);
    ck_assert_str_eq(h[0], "c");
    ck_assert_str_eq(h[1], "f");
    ck_assert_str_eq(s[0], "a");
    ck_assert_str_eq(s[3], "e");
    ck_assert_int_eq(wk_choose_split(in, 6, 0, s, &ns, h, &nh, &err), 0);
    ck_assert_uint_eq(ns, 6);
    ck_assert_uint_eq(nh, 0);
    ck_assert_int_eq(wk_choose_split(in, 1, 0.5, s, &ns, h, &nh, &err), WK_EINVAL);
    ck_assert_int_eq(wk_choose_split(in, 6, 1.5, s, &ns, h, &nh, &err), WK_EINVAL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("choose");
    TCase *tc = tcase_create("choose");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, search_finds_planted_threshold);
    tcase_add_test(tc, choice_round_trips_to_same_ttft);
    tcase_add_test(tc, unreachable_quality_is_reported);
    tcase_add_test(tc, refused_parameters_are_infeasible_not_fatal);
    tcase_add_test(tc, holdout_split_is_deterministic);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
