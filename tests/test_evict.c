/* Eviction selectors and SimCalKV merging on small hand-made attention matrices with known answers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kv/evict.h"
#include "tests/check_util.h"

static void expect(const int *got, int n, const int *want, int m) {
    ck_assert_int_eq(n, m);
    for (int i = 0; i < m; i++) ck_assert_int_eq(got[i], want[i]);
}

START_TEST(streaming_sinks_and_recent) {
    int keep[10];
    wk_err err;
    int want[] = {0, 1, 2, 3, 8, 9};
    expect(keep, wk_evict_streaming(10, 6, 4, keep, &err), want, 6);
    int all[] = {0, 1, 2};
    expect(keep, wk_evict_streaming(3, 6, 4, keep, &err), all, 3);
    ck_assert_int_eq(wk_evict_streaming(10, 3, 4, keep, &err), WK_EINVAL);
}
END_TEST

/* 4 query rows (positions 2..5) over 6 tokens; column sums of tokens 0..4: .9 .1 1.2 .6 .6 */
static const float A[4 * 6] = {
    0.5f, 0.1f, 0.4f, 0.0f, 0.0f, 0.0f,  /* query at position 2 */
    0.2f, 0.0f, 0.3f, 0.5f, 0.0f, 0.0f,  /* 3 */
    0.1f, 0.0f, 0.2f, 0.1f, 0.6f, 0.0f,  /* 4 */
    0.1f, 0.0f, 0.3f, -0.15f + 0.15f, -0.25f + 0.25f, 0.6f, /* 5 */
};

START_TEST(h2o_column_sums) {
    int keep[6];
    wk_err err;
    /* budget 4, window 1: top 3 of tokens 0..4 by (.9 .1 1.2 .6 .6) -> 2, 0, then the tie 3/4 -> 3; + 5 */
    int want[] = {0, 2, 3, 5};
    expect(keep, wk_evict_h2o(A, 4, 6, 4, 1, keep, &err), want, 4);
    /* budget 4, window 2: tokens 0..3 sums .9 .1 1.2 .6 -> 2, 0; + 4, 5 */
    int want2[] = {0, 2, 4, 5};
    expect(keep, wk_evict_h2o(A, 4, 6, 4, 2, keep, &err), want2, 4);
}
END_TEST

START_TEST(snapkv_window_and_maxpool) {
    int keep[6];
    wk_err err;
    /* window 2 (rows of positions 4, 5), past tokens 0..3: sums .2 0 .5 .1; kernel 1 (no pooling): top 2 -> 2, 0 */
    int want[] = {0, 2, 4, 5};
    expect(keep, wk_evict_snapkv(A, 4, 6, 4, 2, 1, keep, &err), want, 4);
    /* kernel 3: pooled = max(.2,0)=.2, max(.2,0,.5)=.5, .5, max(.5,.1)=.5 -> top 2: 1, 2 (ties to lower) */
    int want3[] = {1, 2, 4, 5};
    expect(keep, wk_evict_snapkv(A, 4, 6, 4, 2, 3, keep, &err), want3, 4);
    ck_assert_int_eq(wk_evict_snapkv(A, 1, 6, 4, 2, 3, keep, &err), WK_EINVAL); /* fewer rows than the window */
}
END_TEST

/* KV-ALGORITHMS.md 3.3 example: budget 128, window 8, 32 layers -> layer 0 keeps 234+8, layer 31 17+8. */
START_TEST(pyramid_budgets) {
    int caps[32];
    wk_err err;
    ck_assert_int_eq(wk_evict_pyramid_budgets(32, 10000, 128, 8, 20, caps, &err), 0);
    ck_assert_int_eq(caps[0], 242);
    ck_assert_int_eq(caps[31], 25);
    ck_assert_int_eq(caps[1] - caps[2], 7);
    long sum = 0;
    for (int l = 0; l < 32; l++) sum += caps[l] - 8;
    ck_assert_int_ge(sum, 32 * 120); /* the same total as uniform, slightly above by integer floors */
    ck_assert_int_le(sum, 32 * 120 + 32 * 8);
    /* short prompts: everything, then uniform SnapKV */
    ck_assert_int_eq(wk_evict_pyramid_budgets(32, 100, 128, 8, 20, caps, &err), 0);
    ck_assert_int_eq(caps[5], 100);
    ck_assert_int_eq(wk_evict_pyramid_budgets(32, 200, 128, 8, 20, caps, &err), 0);
    ck_assert_int_eq(caps[0], 128);
    ck_assert_int_eq(caps[31], 128);
    /* T = 2B: max capped at T - window = 232, min = 2B - max = 8, steps 7 */
    ck_assert_int_eq(wk_evict_pyramid_budgets(32, 240, 128, 8, 20, caps, &err), 0);
    ck_assert_int_eq(caps[0], 240);
    ck_assert_int_eq(caps[31], 232 - 31 * 7 + 8);
}
END_TEST

START_TEST(select_whole_cache) {
    /* 2 layers x 1 head of the matrix A; pyramid, budget 4, window 1, T = 6 = 2B: B = 3, min 0, max 6 capped at
     * T - window = 5, min = 1, steps 4 -> layer 0 keeps 5 + 1 = all 6, layer 1 keeps 1 + 1 */
    float attn[2 * 4 * 6];
    memcpy(attn, A, sizeof A);
    memcpy(attn + 24, A, sizeof A);
    wk_evict_params p = wk_evict_defaults(WK_EVICT_PYRAMIDKV, 4);
    p.window = 1;
    p.kernel = 1;
    wk_evict_keep k;
    wk_err err;
    ck_assert_int_eq(wk_evict_select(&p, attn, 2, 1, 4, 6, &k, &err), 0);
    ck_assert_int_eq(k.count[0], 6);
    /* layer 1: window 1 = row of position 5 over tokens 0..4: .1 0 .3 0 0 -> token 2, + token 5 */
    int want[] = {2, 5};
    expect(k.idx + 6, k.count[1], want, 2);
    wk_evict_keep_free(&k);
    p.method = WK_EVICT_STREAMING;
    p.sinks = 1;
    ck_assert_int_eq(wk_evict_select(&p, attn, 2, 1, 4, 6, &k, &err), 0);
    int want_s[] = {0, 3, 4, 5};
    expect(k.idx, k.count[0], want_s, 4);
    wk_evict_keep_free(&k);
}
END_TEST

/* SimCalKV: 4 tokens, D = 2. Scores evict token 1 (ratio 0.25); its key is closest in angle to token 3. */
START_TEST(simcal_merge_formula) {
    float k[4 * 2] = {1, 0, 0.1f, 1, 1, 1, 0, 1};
    float v[4 * 2] = {1, 1, 2, 2, 3, 3, 4, 4};
    float scores[4] = {5, 0.5f, 3, 2};
    float q[2] = {0.5f, 1.0f};
    float ko[8], vo[8];
    int keep[4];
    wk_err err;
    int n = wk_simcal_merge(k, v, 4, 2, scores, q, 0.25, 0.0, ko, vo, keep, &err);
    int want[] = {0, 2, 3};
    expect(keep, n, want, 3);
    /* kept, unmerged tokens unchanged */
    ck_assert_float_eq(ko[0], 1);
    ck_assert_float_eq(vo[2], 3);
    /* token 3 merged with 1: k' = ((0.1,1) + (0,1))/2 + ln2 */
    ck_assert_float_eq_tol(ko[4], (float)(0.05 + log(2.0)), 1e-6f);
    ck_assert_float_eq_tol(ko[5], (float)(1.0 + log(2.0)), 1e-6f);
    /* v' = (w1 * 2 + w3 * 4) / (w1 + w3), w = exp(q.k / sqrt 2) */
    double w1 = exp((0.05 + 1.0) / sqrt(2.0)), w3 = exp(1.0 / sqrt(2.0));
    ck_assert_float_eq_tol(vo[4], (float)((w1 * 2 + w3 * 4) / (w1 + w3)), 1e-5f);
    /* a threshold above the best cosine drops the evicted token instead of merging */
    n = wk_simcal_merge(k, v, 4, 2, scores, q, 0.25, 0.999, ko, vo, keep, &err);
    ck_assert_int_eq(n, 3);
    ck_assert_float_eq(ko[4], 0);
    ck_assert_float_eq(vo[5], 4);
    ck_assert_int_eq(wk_simcal_merge(k, v, 4, 2, scores, q, 1.5, 0, ko, vo, keep, &err), WK_EINVAL);
}
END_TEST

/* Large logits stay finite thanks to the max subtraction. */
START_TEST(simcal_stable_with_large_logits) {
    float k[3 * 1] = {400, 300, 500}, v[3] = {1, 2, 3}, scores[3] = {1, 0, 2}, q[1] = {10};
    float ko[3], vo[3];
    int keep[3];
    wk_err err;
    int n = wk_simcal_merge(k, v, 3, 1, scores, q, 0.34, 0.0, ko, vo, keep, &err);
    ck_assert_int_eq(n, 2);
    ck_assert(isfinite(vo[0]) && isfinite(vo[1]));
    /* token 1 merges into token 0 (cosine 1, lower index wins the tie); w0 >> w1 so v ~ 1 */
    ck_assert_float_eq_tol(vo[0], 1.0f, 1e-3f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("evict");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, streaming_sinks_and_recent);
    tcase_add_test(tc, h2o_column_sums);
    tcase_add_test(tc, snapkv_window_and_maxpool);
    tcase_add_test(tc, pyramid_budgets);
    tcase_add_test(tc, select_whole_cache);
    tcase_add_test(tc, simcal_merge_formula);
    tcase_add_test(tc, simcal_stable_with_large_logits);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
