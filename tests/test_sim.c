/* Simulator core: closed forms on constant links, event ordering, policy parsing, failure paths. */
#include <math.h>
#include <string.h>

#include "kv/kivi.h"
#include "sim/sim.h"
#include "tests/check_util.h"

static wk_model_spec llama;
static wk_device orin, laptop;

static void load_fixtures(void) {
    wk_err err;
    ck_assert_msg(wk_model_spec_find("llama-3.1-8b", &llama, &err) == 0, "%s", err.msg);
    ck_assert_msg(wk_device_find("jetson-agx-orin", &orin, &err) == 0, "%s", err.msg);
    ck_assert_msg(wk_device_find("rtx5080-laptop", &laptop, &err) == 0, "%s", err.msg);
}

static wk_sim_config config(const wk_trace *tr, const wk_device *dev, int context) {
    wk_sim_config cfg = {.trace = tr, .link = wk_link_defaults(), .model = &llama, .device = dev,
                         .context_tokens = context, .output_tokens = 1, .task = "none"};
    return cfg;
}

static double run_one(const char *policy_spec, const wk_sim_config *cfg, wk_sim_result *res) {
    wk_sim sim;
    wk_sim_init(&sim);
    wk_policy pol;
    wk_err err;
    ck_assert_msg(wk_policy_create(policy_spec, &pol, &err) == 0, "%s", err.msg);
    ck_assert_msg(wk_sim_request(&sim, &pol, cfg, NULL, res, &err) == 0, "%s", err.msg);
    ck_assert_msg(res->s.ok, "%s", res->s.fail_reason);
    wk_policy_free(&pol);
    wk_sim_free(&sim);
    return res->s.ttft_s;
}

START_TEST(full_ttft_matches_closed_form) {
    load_fixtures();
    wk_trace tr;
    wk_err err;
    ck_assert_int_eq(wk_trace_constant("c100", 100.0, 1.0, &tr, &err), 0);
    wk_sim_config cfg = config(&tr, &orin, 8192);
    cfg.link.frame_overhead = 0;
    cfg.link.unit_header = 0;
    cfg.link.one_way_delay_s = 0.020;
    cfg.link.request_delay_s = 0.015;
    wk_sim_result res;
    double ttft = run_one("full", &cfg, &res);
    double bytes = 8192.0 * 32 * 2 * 8 * 128 * 2; /* fp16 K and V, 32 layers, 8 KV heads, head_dim 128 */
    double expect = 0.015 + bytes * 8 / 100e6 + 0.020 + wk_device_decode_s(&orin, &llama, 8192, 131072.0);
    ck_assert_msg(fabs(ttft - expect) <= 1e-9 * expect, "ttft %.15g expected %.15g", ttft, expect);
    ck_assert_int_eq(res.s.payload_bytes_sent, (int64_t)bytes);
    ck_assert_double_eq_tol(res.s.kv_fraction_at_first, 1.0, 1e-12);
    /* the breakdown adds up to the TTFT */
    ck_assert_double_eq_tol(res.s.net_wait_s + res.s.kv_decode_s + res.s.compute_s, ttft, 1e-9);
    wk_trace_free(&tr);
}
END_TEST

START_TEST(framing_overhead_adds_wire_bytes) {
    load_fixtures();
    wk_trace tr;
    wk_err err;
    ck_assert_int_eq(wk_trace_constant("c100", 100.0, 1.0, &tr, &err), 0);
    wk_sim_config cfg = config(&tr, &orin, 1024);
    wk_sim_result res;
    run_one("full", &cfg, &res);
    double payload = 1024.0 * 32 * 2 * 8 * 128 * 2 / 32; /* one layer */
    double wire = payload + 32;
    wire += ceil(wire / 1448) * 52;
    ck_assert_double_eq_tol(res.wire_bytes_total, 32 * wire, 1e-6);
    wk_trace_free(&tr);
}
END_TEST

START_TEST(kivi_is_faster_than_full_on_slow_link) {
    load_fixtures();
    wk_trace tr;
    wk_err err;
    ck_assert_int_eq(wk_trace_constant("c50", 50.0, 10.0, &tr, &err), 0);
    wk_sim_config cfg = config(&tr, &laptop, 8192);
    wk_sim_result full, k2, k4;
    run_one("full", &cfg, &full);
    run_one("kivi2", &cfg, &k2);
    run_one("kivi4", &cfg, &k4);
    ck_assert(k2.s.ttft_s < k4.s.ttft_s);
    ck_assert(k4.s.ttft_s < full.s.ttft_s);
    /* KIVI-2 at G=32, R=128 over 8192 tokens, per (layer, head): keys all quantized (8192 is a
     * multiple of R) at 48 B/token, values all but the last 128 at 48 B/token, 128 fp16 values */
    int64_t expect = 32LL * 8 * wk_kivi_bytes(&(wk_kivi_params){2, 32, 128}, 8192, 128);
    ck_assert_int_eq(k2.s.payload_bytes_sent, expect);
    ck_assert_int_eq(expect, (8192LL * 48 + 8064LL * 48 + 128LL * 256) * 32 * 8);
    wk_trace_free(&tr);
}
END_TEST

START_TEST(prefill_overlaps_text_arrival_with_compute) {
    load_fixtures();
    wk_trace tr;
    wk_err err;
    ck_assert_int_eq(wk_trace_constant("c100", 100.0, 1.0, &tr, &err), 0);
    wk_sim_config cfg = config(&tr, &orin, 4096);
    wk_sim_result res;
    double ttft = run_one("prefill:chunk=1024", &cfg, &res);
    /* the text arrives in milliseconds, so TTFT is the four chunk prefills after the first arrival */
    double compute = 0;
    for (int past = 0; past < 4096; past += 1024) compute += wk_device_prefill_s(&orin, &llama, 1024, past);
    ck_assert_double_eq_tol(res.s.compute_s, compute, 1e-12);
    ck_assert(ttft > compute && ttft < compute + 0.1);
    ck_assert_int_eq(res.s.payload_bytes_sent, 4096 * 4);
    wk_trace_free(&tr);
}
END_TEST

START_TEST(output_tokens_give_time_per_token) {
    load_fixtures();
    wk_trace tr;
    wk_err err;
    ck_assert_int_eq(wk_trace_constant("c1000", 1000.0, 1.0, &tr, &err), 0);
    wk_sim_config cfg = config(&tr, &orin, 2048);
    cfg.output_tokens = 5;
    wk_sim_result res;
    run_one("full", &cfg, &res);
    ck_assert_int_eq(res.s.tokens, 5);
    double step = wk_device_decode_s(&orin, &llama, 2049, 131072.0);
    ck_assert(res.s.tpot_s >= step && res.s.tpot_s < step * 1.01);
    wk_trace_free(&tr);
}
END_TEST

START_TEST(policy_specs_are_validated) {
    wk_policy p;
    wk_err err;
    ck_assert_int_eq(wk_policy_create("nosuch", &p, &err), WK_EINVAL);
    ck_assert_msg(strstr(err.msg, "known: prefill") != NULL, "%s", err.msg);
    ck_assert_int_eq(wk_policy_create("prefill:chunk=7", &p, &err), WK_EINVAL);
    ck_assert_int_eq(wk_policy_create("prefill:size=7", &p, &err), WK_EINVAL);
    ck_assert_int_eq(wk_policy_create("kivi2:group=64,residual=256", &p, &err), 0);
    ck_assert_str_eq(p.spec, "kivi2:group=64,residual=256");
    ck_assert_double_eq(wk_policy_param(&p, "group"), 64);
    wk_policy_free(&p);
}
END_TEST

START_TEST(event_queue_breaks_ties_by_insertion) {
    wk_event_queue q;
    wk_event_queue_init(&q);
    wk_err err;
    for (int i = 0; i < 100; i++) ck_assert_int_eq(wk_event_queue_push(&q, (double)(i % 3), 0, i, &err), 0);
    wk_event ev, prev = {-1, 0, 0, -1};
    int count = 0;
    while (wk_event_queue_pop(&q, &ev) == 0) {
        ck_assert(ev.t > prev.t || (ev.t == prev.t && ev.arg > prev.arg));
        prev = ev;
        count++;
    }
    ck_assert_int_eq(count, 100);
    wk_event_queue_free(&q);
}
END_TEST

START_TEST(bundled_specs_and_devices_load) {
    const char *models[] = {"llama-3.1-8b", "qwen3-4b", "qwen3-8b", "qwen2.5-7b", "llama-2-7b", "mistral-7b"};
    const double kv_fp16[] = {131072, 147456, 147456, 57344, 524288, 131072};
    for (size_t i = 0; i < 6; i++) {
        wk_model_spec m;
        wk_err err;
        ck_assert_msg(wk_model_spec_find(models[i], &m, &err) == 0, "%s", err.msg);
        ck_assert_double_eq(wk_model_kv_bytes_per_token(&m, 16), kv_fp16[i]);
    }
    wk_model_spec m;
    wk_err err;
    ck_assert_int_eq(wk_model_spec_find("synthetic:llama-3.1-8b", &m, &err), 0);
    double params = wk_model_params_total(&m);
    ck_assert_msg(params > 7.9e9 && params < 8.1e9, "llama-3.1-8b params %g", params);
    ck_assert_int_eq(wk_model_spec_find("nosuch-model", &m, &err), WK_ENOTFOUND);
    ck_assert_msg(strstr(err.msg, "llama-3.1-8b") != NULL, "%s", err.msg);
    const char *devices[] = {"jetson-agx-orin", "jetson-orin-nx", "rtx5080-laptop", "h100-sxm"};
    for (size_t i = 0; i < 4; i++) {
        wk_device d;
        ck_assert_msg(wk_device_find(devices[i], &d, &err) == 0, "%s", err.msg);
        /* decode of an 8B model is bandwidth bound: at least weights / bandwidth */
        double floor_s = 2 * 7.5e9 / d.mem_bw_Bps;
        ck_assert(wk_device_decode_s(&d, &m, 8192, 131072) > floor_s);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("sim");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, full_ttft_matches_closed_form);
    tcase_add_test(tc, framing_overhead_adds_wire_bytes);
    tcase_add_test(tc, kivi_is_faster_than_full_on_slow_link);
    tcase_add_test(tc, prefill_overlaps_text_arrival_with_compute);
    tcase_add_test(tc, output_tokens_give_time_per_token);
    tcase_add_test(tc, policy_specs_are_validated);
    tcase_add_test(tc, event_queue_breaks_ties_by_insertion);
    tcase_add_test(tc, bundled_specs_and_devices_load);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
