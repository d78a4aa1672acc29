/* Simulator core: closed forms on constant links, event ordering, policy parsing, failure paths. */
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "kv/kivi.h"
#include "sim/oracle.h"
#include "sim/sim.h"
#include "net/wire.h"
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

/* CacheGen picks its finest level when the link is fast and its coarsest when it is slow. */
START_TEST(cachegen_adapts_level_to_bandwidth) {
    load_fixtures();
    wk_trace fast, slow;
    wk_err err;
    ck_assert_int_eq(wk_trace_constant("fast", 100000.0, 1.0, &fast, &err), 0);
    ck_assert_int_eq(wk_trace_constant("slow", 10.0, 1.0, &slow, &err), 0);
    wk_sim_config cfg = config(&fast, &laptop, 8192);
    wk_sim_result rf, rs;
    run_one("cachegen", &cfg, &rf);
    cfg.trace = &slow;
    run_one("cachegen", &cfg, &rs);
    /* first chunk at the default level 2, then the finest (fast) or the coarsest (slow) */
    wk_sim sim;
    wk_sim_init(&sim);
    wk_policy pol;
    ck_assert_int_eq(wk_policy_create("cachegen", &pol, &err), 0);
    wk_sim_result tmp;
    ck_assert_int_eq(wk_sim_request(&sim, &pol, &cfg, NULL, &tmp, &err), 0);
    int64_t coarse = sim.plan.units[2].bytes, finest = 0, coarsest = 0;
    for (size_t c = 1; c < 8; c++) {
        finest += sim.plan.units[c * 5 + 4].bytes;
        coarsest += sim.plan.units[c * 5 + 0].bytes;
    }
    ck_assert_int_eq(rf.s.payload_bytes_sent, coarse + finest);
    ck_assert_int_eq(rs.s.payload_bytes_sent, coarse + coarsest);
    ck_assert(finest > coarsest);
    wk_policy_free(&pol);
    wk_sim_free(&sim);
    wk_trace_free(&fast);
    wk_trace_free(&slow);
}
END_TEST

/* full KV at 32K tokens of an 8B model: every unit fits a wire frame (64 MiB; a whole layer is 134 MB)
 * and the units of each layer cover its tokens exactly once. */
START_TEST(full_units_fit_a_wire_frame_and_cover_every_token) {
    load_fixtures();
    wk_err err;
    wk_policy pol;
    ck_assert_int_eq(wk_policy_create("full", &pol, &err), 0);
    wk_request req = {&llama, &laptop, 32768, 8, "passkey", 1, NULL, NULL};
    wk_plan plan;
    wk_plan_init(&plan);
    ck_assert_int_eq(pol.ops->plan(pol.state, pol.param, &req, &plan, &err), 0);
    int covered[32] = {0};
    double values = 0;
    for (size_t i = 0; i < plan.n; i++) {
        const wk_unit *u = &plan.units[i];
        ck_assert(u->bytes <= (int64_t)WK_WIRE_MAX_PAYLOAD / 2);
        ck_assert_int_eq(u->token_first, covered[u->layer_first]); /* in order, no gap, no overlap */
        covered[u->layer_first] += u->token_count;
        values += u->values;
    }
    for (int l = 0; l < 32; l++) ck_assert_int_eq(covered[l], 32768);
    ck_assert(plan.n > 32);
    ck_assert(fabs(values - plan.kv_values_total) < 1);
    wk_plan_free(&plan);
    wk_policy_free(&pol);
}
END_TEST

/* KIVI-4 of an 8B model: a layer per unit at 8K tokens; at 64K a layer (72 MB) would not fit a wire frame,
 * so each (layer, KV head) is a unit of its own, every one present once, with the same total bytes. */
START_TEST(kivi_units_fit_a_wire_frame) {
    load_fixtures();
    wk_err err;
    wk_policy pol;
    ck_assert_int_eq(wk_policy_create("kivi4", &pol, &err), 0);
    int contexts[2] = {8192, 65536};
    for (int c = 0; c < 2; c++) {
        wk_request req = {&llama, &laptop, contexts[c], 8, "passkey", 1, NULL, NULL};
        wk_plan plan;
        wk_plan_init(&plan);
        ck_assert_int_eq(pol.ops->plan(pol.state, pol.param, &req, &plan, &err), 0);
        wk_kivi_params kp = {4, 32, 128};
        int64_t head_bytes = wk_kivi_bytes(&kp, contexts[c], llama.head_dim), total = 0;
        int seen[32][8] = {{0}};
        for (size_t i = 0; i < plan.n; i++) {
            const wk_unit *u = &plan.units[i];
            ck_assert(u->bytes <= WK_UNIT_MAX_BYTES);
            ck_assert_int_eq(u->token_count, contexts[c]);
            for (int h = 0; h < llama.n_kv_heads; h++)
                if (u->kv_head < 0 || u->kv_head == h) seen[u->layer_first][h]++;
            total += u->bytes;
        }
        ck_assert_int_eq(plan.n, c == 0 ? 32 : 32 * 8);
        for (int l = 0; l < 32; l++)
            for (int h = 0; h < 8; h++) ck_assert_int_eq(seen[l][h], 1);
        ck_assert_int_eq(total, head_bytes * 32 * 8);
        wk_plan_free(&plan);
    }
    wk_policy_free(&pol);
}
END_TEST

/* WiKV without a confidence test (every step passes) emits at its first threshold. */
START_TEST(wikv_emits_at_first_threshold) {
    load_fixtures();
    wk_trace tr;
    wk_err err;
    ck_assert_int_eq(wk_trace_constant("c200", 200.0, 1.0, &tr, &err), 0);
    wk_sim_config cfg = config(&tr, &laptop, 4096);
    wk_sim_result res;
    run_one("wikv:threshold=0.4,ttft_deadline=0", &cfg, &res);
    ck_assert_msg(res.s.kv_fraction_at_first >= 0.4 && res.s.kv_fraction_at_first < 0.41, "fraction %g",
                  res.s.kv_fraction_at_first);
    /* ranked by importance: the first 40% of the vectors carry more than 40% of the attention mass */
    ck_assert_msg(res.s.coverage_at_first > 0.5, "coverage %g", res.s.coverage_at_first);
    run_one("wikv:threshold=1,ttft_deadline=0", &cfg, &res);
    ck_assert_double_eq_tol(res.s.kv_fraction_at_first, 1.0, 1e-9);
    wk_trace_free(&tr);
}
END_TEST

/* On a slow link the TTFT deadline forces the first token. */
START_TEST(wikv_deadline_forces_first_token) {
    load_fixtures();
    wk_trace tr;
    wk_err err;
    ck_assert_int_eq(wk_trace_constant("c5", 5.0, 1.0, &tr, &err), 0);
    wk_sim_config cfg = config(&tr, &laptop, 8192);
    wk_sim_result res;
    double ttft = run_one("wikv:ttft_deadline=2", &cfg, &res);
    double deadline = cfg.link.request_delay_s + 2.0;
    double step = wk_device_decode_s(&laptop, &llama, 8192, 131072.0);
    ck_assert_msg(ttft >= deadline && ttft <= deadline + 2 * step + 0.05, "ttft %g deadline %g", ttft, deadline);
    ck_assert(res.s.kv_fraction_at_first < 0.25);
    wk_trace_free(&tr);
}
END_TEST

/* An assumed quality table of three "default" rows: {coverage, accept, f1_rel} each. */
static wk_quality_table default_table(const double rows[3][3]) {
    wk_quality_table q;
    memset(&q, 0, sizeof q);
    strcpy(q.source, "assumed");
    for (int i = 0; i < 3; i++) q.rows[i] = (wk_quality_row){"default", rows[i][0], rows[i][1], rows[i][2]};
    q.n = 3;
    return q;
}

/* A confidence test that fails below a coverage makes WiKV wait for more of the stream. */
START_TEST(wikv_waits_when_confidence_test_fails) {
    load_fixtures();
    wk_trace tr;
    wk_err err;
    ck_assert_int_eq(wk_trace_constant("c200", 200.0, 1.0, &tr, &err), 0);
    wk_quality_table q = default_table((const double[3][3]){{0.0, 0.0, 0.5}, {0.9499, 0.0, 0.9}, {0.95, 1.0, 1.0}});
    wk_sim_config cfg = config(&tr, &laptop, 4096);
    cfg.quality = &q;
    wk_sim_result res;
    run_one("wikv:threshold=0.25,step=0.05,ttft_deadline=0", &cfg, &res);
    ck_assert_msg(res.s.coverage_at_first >= 0.95, "coverage %g", res.s.coverage_at_first);
    wk_trace_free(&tr);
}
END_TEST

/* A family without rows answers from "default"; prefill, which computes the exact cache, from "full". */
START_TEST(quality_lookup_falls_back_by_family) {
    wk_quality_table q;
    memset(&q, 0, sizeof q);
    strcpy(q.source, "measured");
    q.rows[0] = (wk_quality_row){"full", 1.0, 1.0, 1.0};
    q.rows[1] = (wk_quality_row){"default", 0.5, 0.5, 0.25};
    q.rows[2] = (wk_quality_row){"default", 1.0, 0.9, 0.75};
    q.n = 3;
    double accept, f1;
    ck_assert_int_eq(wk_quality_lookup(&q, "prefill", 1.0, &accept, &f1), 0);
    ck_assert_double_eq(f1, 1.0);
    ck_assert_int_eq(wk_quality_lookup(&q, "hybrid", 0.75, &accept, &f1), 0);
    ck_assert_double_eq_tol(f1, 0.5, 1e-12);
    ck_assert_double_eq_tol(accept, 0.7, 1e-12);
    q.n = 1; /* no default: an unknown family has no answer */
    ck_assert_int_eq(wk_quality_lookup(&q, "hybrid", 0.75, &accept, &f1), -1);
}
END_TEST

/* hybrid: on a crawling link the device prefills nearly everything (TTFT close to prefill's); on a
 * fast link it streams and beats local prefill; it never double-counts coverage. */
START_TEST(hybrid_meets_in_the_middle) {
    load_fixtures();
    wk_trace slow, fast;
    wk_err err;
    ck_assert_int_eq(wk_trace_constant("slow", 0.5, 1.0, &slow, &err), 0);
    ck_assert_int_eq(wk_trace_constant("fast", 2000.0, 1.0, &fast, &err), 0);
    wk_sim_config cfg = config(&slow, &orin, 4096);
    wk_sim_result hy, pf;
    run_one("hybrid:threshold=1", &cfg, &hy);
    run_one("prefill:chunk=512", &cfg, &pf);
    ck_assert_msg(hy.s.ttft_s <= pf.s.ttft_s * 1.05, "slow: hybrid %g prefill %g", hy.s.ttft_s, pf.s.ttft_s);
    ck_assert(hy.s.coverage_at_first <= 1.0 + 1e-9);
    cfg.trace = &fast;
    run_one("hybrid:threshold=1", &cfg, &hy);
    run_one("prefill:chunk=512", &cfg, &pf);
    ck_assert_msg(hy.s.ttft_s < 0.5 * pf.s.ttft_s, "fast: hybrid %g prefill %g", hy.s.ttft_s, pf.s.ttft_s);
    ck_assert_msg(hy.s.coverage_at_first > 0.999 && hy.s.coverage_at_first <= 1.0 + 1e-9, "coverage %g",
                  hy.s.coverage_at_first);
    wk_trace_free(&slow);
    wk_trace_free(&fast);
}
END_TEST

/* The oracle is a lower bound: no policy that reaches full coverage beats it. */
START_TEST(oracle_bounds_every_full_quality_policy) {
    load_fixtures();
    wk_trace tr;
    wk_err err;
    double t[] = {0, 2, 4};
    double mbps[] = {300, 20, 120};
    ck_assert_int_eq(wk_trace_from_capacity("var", t, mbps, 3, 6.0, &tr, &err), 0);
    wk_oracle_curves *oc = malloc(sizeof *oc);
    ck_assert_int_eq(wk_oracle_prepare(&llama, 4096, 1.0, oc, &err), 0);
    const char *policies[] = {"prefill", "full", "kivi2", "kivi4", "cachegen", "wikv:threshold=1,ttft_deadline=0",
                              "hybrid:threshold=1"};
    for (int off = 0; off < 6; off += 2) {
        wk_sim_config cfg = config(&tr, &laptop, 4096);
        cfg.link.trace_offset_s = off;
        double bound = wk_oracle_ttft(oc, &tr, &cfg.link, &llama, &laptop);
        for (size_t p = 0; p < sizeof policies / sizeof policies[0]; p++) {
            wk_sim_result res;
            double ttft = run_one(policies[p], &cfg, &res);
            ck_assert_msg(ttft >= bound, "%s at offset %d: ttft %g < oracle %g", policies[p], off, ttft, bound);
        }
    }
    free(oc);
    wk_trace_free(&tr);
}
END_TEST

/* Eviction policies stream budget x layers x heads fp16 vectors; H2O keeps more attention mass than
 * StreamingLLM at the same budget. */
START_TEST(eviction_policies_stream_their_budget) {
    load_fixtures();
    wk_trace tr;
    wk_err err;
    ck_assert_int_eq(wk_trace_constant("c500", 500.0, 1.0, &tr, &err), 0);
    wk_sim_config cfg = config(&tr, &laptop, 4096);
    wk_sim_result h2o, sl, snap;
    run_one("h2o:budget=512", &cfg, &h2o);
    run_one("streamingllm:budget=512", &cfg, &sl);
    run_one("snapkv:budget=512", &cfg, &snap);
    int64_t expect = 512LL * 32 * 8 * 2 * 128 * 2;
    ck_assert_int_eq(h2o.s.payload_bytes_sent, expect);
    ck_assert_int_eq(sl.s.payload_bytes_sent, expect);
    ck_assert_int_eq(snap.s.payload_bytes_sent, expect);
    ck_assert_double_eq_tol(h2o.s.kv_fraction_at_first, 512.0 / 4096, 1e-9);
    ck_assert_msg(h2o.s.coverage_at_first > sl.s.coverage_at_first, "h2o %g streamingllm %g", h2o.s.coverage_at_first,
                  sl.s.coverage_at_first);
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

/* A receiver that reads the clock: it waits, asking again at the next event (wake_at = now), until
 * `at` seconds, then emits. Its wait holds over no sender turn once the time passed. */
static void decide_from_time(void *state, const double *param, const wk_view *v, wk_action *a) {
    (void)state;
    (void)param;
    if (wk_policy_decode_arrived(v, a)) return;
    if (v->now >= 0.35) {
        a->kind = WK_ACT_EMIT;
        a->force = 1;
        a->kv_bytes_per_token = 1e5;
        return;
    }
    a->kind = WK_ACT_WAIT;
    a->wake_at = v->now;
}

/* A policy's wait_ignores_sender only spares calls: with it off (the receiver asked after every
 * event), every policy that sets it gives the same results, bit for bit, on a varying capacity trace
 * and a Mahimahi trace, with failed confidence tests (wikv's attempts) and several output tokens. */
START_TEST(wait_over_sender_turns_changes_nothing) {
    load_fixtures();
    wk_err err;
    wk_trace traces[2];
    double t[40], mbps[40];
    for (int i = 0; i < 40; i++) {
        t[i] = i * 0.25;
        mbps[i] = 40 + 300 * ((i * 7) % 9) / 8.0;
    }
    ck_assert_int_eq(wk_trace_from_capacity("varying", t, mbps, 40, 10.0, &traces[0], &err), 0);
    double ms[4000];
    for (int i = 0; i < 4000; i++) ms[i] = (double)(i / 3 + (i % 7 == 0) * 2);
    for (int i = 1; i < 4000; i++) ms[i] = fmax(ms[i], ms[i - 1]);
    ck_assert_int_eq(wk_trace_from_opportunities("mahimahi", ms, 4000, &traces[1], &err), 0);
    wk_quality_table q = default_table((const double[3][3]){{0.0, 0.0, 0.5}, {0.5, 0.3, 0.8}, {0.9, 1.0, 1.0}});
    static const char *specs[] = {"wikv", "wikv:threshold=0.05,step=0.02,levels=2,batch=1024", "full", "kivi2",
                                  "kivi4", "cachegen", "prefill", "h2o"};
    enum { N_SPECS = sizeof specs / sizeof specs[0] };
    int compared = 0;
    for (size_t p = 0; p <= N_SPECS; p++) { /* and last, full's plan with the receiver above */
        wk_policy with, without;
        ck_assert_msg(wk_policy_create(p < N_SPECS ? specs[p] : "full", &with, &err) == 0, "%s", err.msg);
        ck_assert_msg(wk_policy_create(p < N_SPECS ? specs[p] : "full", &without, &err) == 0, "%s", err.msg);
        const wk_policy_ops *registered = with.ops;
        wk_policy_ops by_time = *with.ops;
        by_time.decide = decide_from_time;
        if (p == N_SPECS) with.ops = &by_time;
        ck_assert_msg(with.ops->wait_ignores_sender, "%s no longer sets wait_ignores_sender", with.ops->name);
        wk_policy_ops asked_always = *with.ops;
        asked_always.wait_ignores_sender = 0;
        without.ops = &asked_always;
        wk_sim a, b;
        wk_sim_init(&a);
        wk_sim_init(&b);
        for (int k = 0; k < 2; k++)
            for (int r = 0; r < 24; r++) {
                wk_sim_config cfg = config(&traces[k], &orin, 2048);
                cfg.quality = r % 2 ? &q : NULL;
                cfg.seed = (uint64_t)r;
                cfg.output_tokens = 1 + r % 4;
                cfg.link.trace_offset_s = r * 0.37;
                wk_sim_result x, y;
                ck_assert_msg(wk_sim_request(&a, &with, &cfg, NULL, &x, &err) == 0, "%s", err.msg);
                ck_assert_msg(wk_sim_request(&b, &without, &cfg, NULL, &y, &err) == 0, "%s", err.msg);
                ck_assert_msg(x.s.ok == y.s.ok && x.s.tokens == y.s.tokens && x.s.events == y.s.events,
                              "%s: ok %d/%d tokens %d/%d events %zu/%zu", with.ops->name, x.s.ok, y.s.ok, x.s.tokens,
                              y.s.tokens, x.s.events, y.s.events);
                ck_assert_msg(memcmp(&x.s.ttft_s, &y.s.ttft_s, sizeof x.s.ttft_s) == 0 &&
                                  memcmp(&x.s.total_s, &y.s.total_s, sizeof x.s.total_s) == 0,
                              "%s: ttft %.17g/%.17g total %.17g/%.17g", with.ops->name, x.s.ttft_s, y.s.ttft_s, x.s.total_s,
                              y.s.total_s);
                ck_assert(x.s.payload_bytes_sent == y.s.payload_bytes_sent &&
                          x.s.payload_bytes_total == y.s.payload_bytes_total);
                ck_assert(memcmp(&x.s.coverage_at_first, &y.s.coverage_at_first, sizeof(double)) == 0 &&
                          memcmp(&x.s.kv_fraction_at_first, &y.s.kv_fraction_at_first, sizeof(double)) == 0);
                compared += x.s.ok;
            }
        wk_sim_free(&a);
        wk_sim_free(&b);
        with.ops = without.ops = registered;
        wk_policy_free(&with);
        wk_policy_free(&without);
    }
    ck_assert_int_gt(compared, 300);
    wk_trace_free(&traces[0]);
    wk_trace_free(&traces[1]);
}
END_TEST

/* Traces for the direct loop's test: a varying capacity trace with outages, and Mahimahi traces whose
 * opportunities share milliseconds (units of a few bytes end in one packet: arrivals at one instant). */
static void direct_test_traces(wk_trace *traces, wk_rng *rng) {
    wk_err err;
    double t[48], mbps[48];
    for (int i = 0; i < 48; i++) {
        t[i] = i * 0.2;
        mbps[i] = wk_rng_below(rng, 6) == 0 ? 0 : 5 + 400 * wk_rng_uniform(rng);
    }
    ck_assert_int_eq(wk_trace_from_capacity("varying", t, mbps, 48, 9.7, &traces[0], &err), 0);
    enum { N = 6000 };
    static double ms[N];
    for (int k = 1; k <= 2; k++) {
        double at = 0;
        for (int i = 0; i < N; i++) { /* bursts of packets at one millisecond, gaps, an outage */
            if (wk_rng_below(rng, 4) == 0) at += (double)wk_rng_below(rng, k == 1 ? 3 : 40);
            if (i == N / 2) at += 700;
            ms[i] = at;
        }
        ck_assert_int_eq(wk_trace_from_opportunities(k == 1 ? "mahimahi-dense" : "mahimahi-sparse", ms, N, &traces[k], &err),
                         0);
    }
    for (int i = 0; i < N; i++) ms[i] = (double)(i / 2); /* two packets a millisecond, like clockwork */
    ck_assert_int_eq(wk_trace_from_opportunities("mahimahi-grid", ms, N, &traces[3], &err), 0);
    ck_assert_int_eq(wk_trace_constant("constant", 80.0, 2.0, &traces[4], &err), 0);
}

/* A sender that waits for each unit to arrive before it sends the next (answers WK_SEND_LATER). */
static long send_after_arrival(void *state, const double *param, const wk_view *v) {
    (void)state;
    (void)param;
    if (v->n_arrived < v->n_sent) return WK_SEND_LATER;
    return wk_policy_next_in_order(v);
}

/* The direct loop (sim/session.h) takes the general loop's steps: for every policy that asks for it,
 * over random traces, offsets, links (no one-way delay, so that arrivals tie with sender turns; whole
 * milliseconds, so that they tie with Mahimahi instants), offsets (whole milliseconds too), devices
 * (unified memory: KV decodes take no time and end with the arrival that started them; steps of a
 * whole millisecond), output tokens and confidence tests, a simulator
 * that uses it and one held to the general loop give the same result, every field bit for bit. Hybrid
 * runs with the flag forced on, and full with a sender that answers WK_SEND_LATER until each unit
 * arrived: the direct loop hands such requests to the general loop, which still gives the same. Most
 * requests of the policies that ask for it must be the direct loop's own. */
START_TEST(direct_loop_matches_general_loop) {
    load_fixtures();
    wk_err err;
    wk_rng rng;
    wk_rng_seed(&rng, 20261207);
    wk_trace traces[5];
    direct_test_traces(traces, &rng);
    wk_quality_table q = default_table((const double[3][3]){{0.0, 0.0, 0.5}, {0.5, 0.3, 0.8}, {0.9, 1.0, 1.0}});
    wk_device slow_decode = laptop;
    slow_decode.kv_decode_Bps /= 50; /* decodes outlast arrivals: batches of several units */
    wk_device instant = orin; /* every step takes its overhead alone, a whole millisecond: ties with arrivals */
    instant.peak_fp16_flops = instant.mem_bw_Bps = instant.kv_decode_Bps = 1e36;
    instant.step_overhead_s = 0.001;
    const wk_device *devices[] = {&orin, &laptop, &slow_decode, &instant};
    static const char *specs[] = {"full", "kivi2", "kivi4", "cachegen", "cachegen:chunk=64,slo=0.3,first_level=4", "cachegen:chunk=128,slo=3",
                                  "prefill", "prefill:chunk=16,text_bytes=1", "wikv",
                                  "wikv:threshold=0.05,step=0.02,levels=2,batch=1024",
                                  "wikv:ttft_deadline=0.05,token_deadline=0.01,batch=256", "h2o", "streamingllm",
                                  "snapkv", "pyramidkv", "simcalkv", "hybrid", "full"}; /* last: sends later */
    enum { N_SPECS = sizeof specs / sizeof specs[0], PER_CONTEXT = 40 };
    static const int contexts[] = {700, 2048};
    size_t asked = 0, direct = 0;
    for (size_t p = 0; p < N_SPECS; p++) {
        wk_policy general, fast;
        ck_assert_msg(wk_policy_create(specs[p], &general, &err) == 0, "%s", err.msg);
        ck_assert_msg(wk_policy_create(specs[p], &fast, &err) == 0, "%s", err.msg);
        const wk_policy_ops *registered = fast.ops;
        wk_policy_ops forced = *fast.ops;
        if (!forced.direct_loop) forced.direct_loop = WK_DIRECT_LOOP;
        int later = p == N_SPECS - 1;
        if (later) forced.next_unit = send_after_arrival;
        fast.ops = &forced;
        wk_policy_ops general_ops = forced;
        general.ops = &general_ops;
        wk_sim a, b;
        wk_sim_init(&a);
        wk_sim_init(&b);
        a.session.general_only = 1;
        for (size_t c = 0; c < sizeof contexts / sizeof contexts[0]; c++)
            for (int r = 0; r < PER_CONTEXT; r++) {
                const wk_trace *tr = &traces[wk_rng_below(&rng, 5)];
                wk_sim_config cfg = config(tr, devices[wk_rng_below(&rng, 4)], contexts[c]);
                cfg.quality = wk_rng_below(&rng, 2) ? &q : NULL;
                cfg.seed = wk_rng_next(&rng);
                cfg.output_tokens = 1 + (int)wk_rng_below(&rng, 4);
                cfg.link.trace_offset_s = wk_rng_below(&rng, 2) ? wk_rng_uniform(&rng) * tr->period_s
                                                                 : (double)wk_rng_below(&rng, 1000) / 1000.0;
                double delays[] = {0, 0.001, 0.010, 0.0123};
                cfg.link.one_way_delay_s = delays[wk_rng_below(&rng, 4)];
                cfg.link.request_delay_s = delays[wk_rng_below(&rng, 4)];
                wk_sim_result x, y;
                ck_assert_msg(wk_sim_request(&a, &general, &cfg, NULL, &x, &err) == 0, "%s", err.msg);
                size_t before = b.session.direct_runs;
                ck_assert_msg(wk_sim_request(&b, &fast, &cfg, NULL, &y, &err) == 0, "%s", err.msg);
                ck_assert_msg(memcmp(&x, &y, sizeof x) == 0,
                              "%s on %s, request %d: ok %d/%d events %zu/%zu ttft %.17g/%.17g total %.17g/%.17g "
                              "bytes %lld/%lld decode %.17g/%.17g",
                              specs[p], tr->name, r, x.s.ok, y.s.ok, x.s.events, y.s.events, x.s.ttft_s, y.s.ttft_s,
                              x.s.total_s, y.s.total_s, (long long)x.s.payload_bytes_sent,
                              (long long)y.s.payload_bytes_sent, x.s.kv_decode_s, y.s.kv_decode_s);
                if (registered->direct_loop && !later) {
                    asked++;
                    direct += b.session.direct_runs - before;
                }
            }
        ck_assert_msg(a.session.direct_runs == 0, "%s: the general simulator ran the direct loop", specs[p]);
        /* (with no one-way delay its units arrive as its turns come: those requests stay direct) */
        ck_assert_msg(!later || b.session.direct_handed >= PER_CONTEXT,
                      "a sender that answers WK_SEND_LATER: %zu requests finished in the direct loop, %zu handed over",
                      b.session.direct_runs, b.session.direct_handed);
        wk_sim_free(&a);
        wk_sim_free(&b);
        fast.ops = general.ops = registered;
        wk_policy_free(&general);
        wk_policy_free(&fast);
    }
    ck_assert_msg(direct * 10 >= asked * 9, "the direct loop finished only %zu of %zu requests", direct, asked);
    for (int k = 0; k < 5; k++) wk_trace_free(&traces[k]);
}
END_TEST

/* The prefill cost computed once per model gives wk_device_prefill_s bit for bit. */
START_TEST(prefill_cost_once_is_exact) {
    load_fixtures();
    wk_device slow_attention = orin;
    slow_attention.attention_efficiency = 0.3;
    const wk_device *devs[] = {&orin, &laptop, &slow_attention};
    wk_prefill_cost c = wk_prefill_cost_of(&llama);
    for (int d = 0; d < 3; d++)
        for (int chunk = 1; chunk <= 40000; chunk = chunk * 3 + 1)
            for (int past = 0; past <= 131072; past = past * 5 + 7) {
                double want = wk_device_prefill_s(devs[d], &llama, chunk, past);
                double got = wk_device_prefill_step_s(devs[d], &c, chunk, past);
                ck_assert_msg(memcmp(&want, &got, sizeof want) == 0, "chunk %d past %d: %.17g vs %.17g", chunk, past, got,
                              want);
            }
}
END_TEST

START_TEST(event_queue_breaks_ties_by_insertion) {
    wk_event_queue q;
    wk_event_queue_init(&q);
    wk_err err;
    for (int i = 0; i < 100; i++) ck_assert_int_eq(wk_event_queue_push(&q, (double)(i % 3), 0, i, &err), 0);
    wk_event ev, prev = {.t = -1, .arg = -1};
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

/* The simulator reuses its plan and per-unit tables across requests. One simulator driven through a
 * change of every input they depend on (context, model shape under the same name, policy parameters
 * changed in place, a second policy object with the same spec, device, link framing, trace) must give
 * exactly what a fresh simulator gives each time: a key that missed any of them would reuse a stale
 * plan or table and differ. */
static void expect_fresh(wk_sim *reused, wk_policy *pol, const wk_sim_config *cfg, const char *what) {
    wk_err err;
    wk_sim_result got, want;
    ck_assert_msg(wk_sim_request(reused, pol, cfg, NULL, &got, &err) == 0, "%s: %s", what, err.msg);
    wk_sim fresh;
    wk_sim_init(&fresh);
    wk_policy p;
    ck_assert_msg(wk_policy_create(pol->ops->name, &p, &err) == 0, "%s", err.msg);
    memcpy(p.param, pol->param, sizeof p.param);
    ck_assert_msg(wk_sim_request(&fresh, &p, cfg, NULL, &want, &err) == 0, "%s: %s", what, err.msg);
    ck_assert_msg(want.s.ok && got.s.ok == want.s.ok, "%s: %s", what, got.s.fail_reason);
    ck_assert_msg(got.s.ttft_s == want.s.ttft_s, "%s: ttft %.17g, fresh %.17g", what, got.s.ttft_s, want.s.ttft_s);
    ck_assert_msg(got.s.payload_bytes_sent == want.s.payload_bytes_sent && got.s.events == want.s.events &&
                      got.wire_bytes_total == want.wire_bytes_total && got.s.kv_decode_s == want.s.kv_decode_s,
                  "%s: bytes %lld/%lld events %zu/%zu", what, (long long)got.s.payload_bytes_sent,
                  (long long)want.s.payload_bytes_sent, got.s.events, want.s.events);
    wk_policy_free(&p);
    wk_sim_free(&fresh);
}

START_TEST(plan_cache_never_reuses_a_stale_plan) {
    load_fixtures();
    wk_err err;
    wk_trace c200, c50;
    ck_assert_int_eq(wk_trace_constant("c200", 200.0, 10.0, &c200, &err), 0);
    ck_assert_int_eq(wk_trace_constant("c50", 50.0, 10.0, &c50, &err), 0);
    wk_model_spec narrow = llama; /* same name, half the KV heads */
    narrow.n_kv_heads = llama.n_kv_heads / 2;
    wk_device slow = orin;        /* same name, slower codec decode and copy */
    slow.kv_decode_Bps /= 3;
    slow.h2d_Bps = slow.h2d_Bps > 0 ? slow.h2d_Bps / 3 : 1e9;
    const char *specs[] = {"cachegen", "wikv:batch=1024", "kivi2"};
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        wk_policy a, b;
        ck_assert_msg(wk_policy_create(specs[s], &a, &err) == 0, "%s", err.msg);
        ck_assert_msg(wk_policy_create(specs[s], &b, &err) == 0, "%s", err.msg);
        wk_sim sim;
        wk_sim_init(&sim);
        wk_sim_config cfg = config(&c200, &orin, 1024);
        expect_fresh(&sim, &a, &cfg, "first");
        cfg.context_tokens = 2048;
        expect_fresh(&sim, &a, &cfg, "context");
        cfg.model = &narrow;
        expect_fresh(&sim, &a, &cfg, "model shape");
        cfg.model = &llama;
        for (size_t i = 0; i < a.ops->n_params; i++) /* a parameter that shapes the plan */
            if (!strcmp(a.ops->params[i].name, "chunk") || !strcmp(a.ops->params[i].name, "batch") ||
                !strcmp(a.ops->params[i].name, "group"))
                a.param[i] = a.ops->params[i].min;
        expect_fresh(&sim, &a, &cfg, "parameter changed in place");
        wk_sim other; /* the same policy object planned elsewhere: its state now belongs to that plan */
        wk_sim_init(&other);
        wk_sim_config small = cfg;
        small.context_tokens = 1024;
        expect_fresh(&other, &a, &small, "other simulator");
        expect_fresh(&sim, &a, &cfg, "policy state replanned by another simulator");
        wk_sim_free(&other);
        expect_fresh(&sim, &b, &cfg, "another policy object, same spec");
        expect_fresh(&sim, &a, &cfg, "back to the first object");
        cfg.device = &slow;
        expect_fresh(&sim, &a, &cfg, "device");
        cfg.link.frame_overhead = 100;
        cfg.link.unit_header = 64;
        expect_fresh(&sim, &a, &cfg, "link framing");
        cfg.trace = &c50;
        expect_fresh(&sim, &a, &cfg, "trace");
        wk_sim_free(&sim);
        wk_policy_free(&a);
        wk_policy_free(&b);
    }
    wk_trace_free(&c200);
    wk_trace_free(&c50);
}
END_TEST

int main(void) {
    Suite *s = suite_create("sim");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60); /* plans of the ranked policies take seconds on a loaded machine */
    tcase_add_test(tc, full_ttft_matches_closed_form);
    tcase_add_test(tc, full_units_fit_a_wire_frame_and_cover_every_token);
    tcase_add_test(tc, kivi_units_fit_a_wire_frame);
    tcase_add_test(tc, framing_overhead_adds_wire_bytes);
    tcase_add_test(tc, kivi_is_faster_than_full_on_slow_link);
    tcase_add_test(tc, prefill_overlaps_text_arrival_with_compute);
    tcase_add_test(tc, output_tokens_give_time_per_token);
    tcase_add_test(tc, cachegen_adapts_level_to_bandwidth);
    tcase_add_test(tc, wikv_emits_at_first_threshold);
    tcase_add_test(tc, wikv_deadline_forces_first_token);
    tcase_add_test(tc, wikv_waits_when_confidence_test_fails);
    tcase_add_test(tc, hybrid_meets_in_the_middle);
    tcase_add_test(tc, oracle_bounds_every_full_quality_policy);
    tcase_add_test(tc, eviction_policies_stream_their_budget);
    tcase_add_test(tc, policy_specs_are_validated);
    tcase_add_test(tc, event_queue_breaks_ties_by_insertion);
    tcase_add_test(tc, wait_over_sender_turns_changes_nothing);
    tcase_add_test(tc, direct_loop_matches_general_loop);
    tcase_add_test(tc, prefill_cost_once_is_exact);
    tcase_add_test(tc, bundled_specs_and_devices_load);
    tcase_add_test(tc, plan_cache_never_reuses_a_stale_plan);
    tcase_add_test(tc, quality_lookup_falls_back_by_family);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
