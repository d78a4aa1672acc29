/* Plans on a request's real KV (wk_request.kv_sample): codec sizes are measured on it, not on the
 * synthetic sample; a policy re-measures when the sample changes and goes back to the synthetic sizes
 * without one; the simulator's plan cache tells the samples apart. */
#include <math.h>
#include <string.h>

#include "kv/kv_tensor.h"
#include "models/device.h"
#include "sim/policy.h"
#include "sim/sim.h"
#include "tests/check_util.h"

#define TOKENS 512

static double plan_bytes(wk_policy *pol, const wk_request *req) {
    wk_plan plan;
    wk_plan_init(&plan);
    wk_err err = {0};
    ck_assert_msg(pol->ops->plan(pol->state, pol->param, req, &plan, &err) == 0, "%s", err.msg);
    double total = 0;
    for (size_t i = 0; i < plan.n; i++) total += (double)plan.units[i].bytes;
    wk_plan_free(&plan);
    return total;
}

START_TEST(sizes_follow_the_sample) {
    const char *specs[] = {"cachegen:chunk=256", "wikv:batch=512"};
    wk_err err = {0};
    wk_model_spec m;
    wk_device d;
    ck_assert_int_eq(wk_model_spec_find(WIKV_SOURCE_DIR "/models/fixtures/tiny-llama-tasks", &m, &err), 0);
    ck_assert_int_eq(wk_device_find("rtx5080-laptop", &d, &err), 0);
    /* a "real" KV unlike the synthetic model: larger outliers, less correlation between tokens */
    wk_kv_tensor kv;
    ck_assert_int_eq(wk_kv_tensor_alloc(&kv, m.n_layers, m.n_kv_heads, TOKENS, m.head_dim, &err), 0);
    wk_kv_synth_params sp = wk_kv_synth_defaults(7);
    sp.outlier_scale = 30;
    sp.key_rho = 0.2;
    sp.value_rho = 0.2;
    ck_assert_int_eq(wk_kv_tensor_synth(&kv, &sp, &err), 0);
    for (int k = 0; k < 2; k++) {
        wk_policy pol;
        ck_assert_int_eq(wk_policy_create(specs[k], &pol, &err), 0);
        wk_request req = {&m, &d, TOKENS, 1, "passkey", 1, NULL, NULL};
        double synthetic = plan_bytes(&pol, &req);
        req.kv_sample = &kv;
        double real = plan_bytes(&pol, &req);
        ck_assert_msg(fabs(real - synthetic) > 0.05 * synthetic, "%s: %.0f bytes on the sample, %.0f synthetic", specs[k],
                      real, synthetic);
        ck_assert_double_eq(plan_bytes(&pol, &req), real);
        req.kv_sample = NULL;
        ck_assert_double_eq(plan_bytes(&pol, &req), synthetic);
        wk_policy_free(&pol);
    }
    wk_kv_tensor_free(&kv);
}
END_TEST

/* wk_sim_request with and without the sample in turn: each TTFT is that of a fresh simulator. */
START_TEST(simulator_keeps_plans_apart) {
    wk_err err = {0};
    wk_model_spec m;
    wk_device d;
    wk_trace tr;
    ck_assert_int_eq(wk_model_spec_find(WIKV_SOURCE_DIR "/models/fixtures/tiny-llama-tasks", &m, &err), 0);
    ck_assert_int_eq(wk_device_find("rtx5080-laptop", &d, &err), 0);
    ck_assert_int_eq(wk_trace_load(WIKV_SOURCE_DIR "/traces/lte-static-90s-seed1.txt", WK_FMT_AUTO, &tr, &err), 0);
    wk_kv_tensor kv;
    ck_assert_int_eq(wk_kv_tensor_alloc(&kv, m.n_layers, m.n_kv_heads, TOKENS, m.head_dim, &err), 0);
    wk_kv_synth_params sp = wk_kv_synth_defaults(7);
    sp.outlier_scale = 30;
    sp.key_rho = 0.2;
    ck_assert_int_eq(wk_kv_tensor_synth(&kv, &sp, &err), 0);
    wk_policy pol;
    ck_assert_int_eq(wk_policy_create("cachegen:chunk=256", &pol, &err), 0);
    wk_sim_config cfg = {.trace = &tr, .link = wk_link_defaults(), .model = &m, .device = &d, .context_tokens = TOKENS,
                         .output_tokens = 1, .task = "passkey", .seed = 1};
    double ttft[2][2]; /* [fresh or shared simulator][without, with the sample] */
    wk_sim shared;
    wk_sim_init(&shared);
    for (int k = 0; k < 2; k++) {
        cfg.kv_sample = k ? &kv : NULL;
        wk_sim fresh;
        wk_sim_init(&fresh);
        wk_sim_result r;
        ck_assert_int_eq(wk_sim_request(&fresh, &pol, &cfg, NULL, &r, &err), 0);
        ttft[0][k] = r.s.ttft_s;
        wk_sim_free(&fresh);
        ck_assert_int_eq(wk_sim_request(&shared, &pol, &cfg, NULL, &r, &err), 0);
        ttft[1][k] = r.s.ttft_s;
    }
    ck_assert_double_eq(ttft[0][0], ttft[1][0]);
    ck_assert_double_eq(ttft[0][1], ttft[1][1]);
    ck_assert_double_ne(ttft[0][0], ttft[0][1]);
    wk_sim_free(&shared);
    wk_policy_free(&pol);
    wk_kv_tensor_free(&kv);
    wk_trace_free(&tr);
}
END_TEST

int main(void) {
    Suite *s = suite_create("kv_sample");
    TCase *tc = tcase_create("all");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, sizes_follow_the_sample);
    tcase_add_test(tc, simulator_keeps_plans_apart);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
