/* Codec sizes for the simulator: consistent with the encoders they come from, monotone in the level, and
 * with the known fixed formulas (fp16, KIVI). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv/codec_size.h"
#include "kv/kivi.h"
#include "tests/check_util.h"

START_TEST(llama8b_shape_sizes) {
    wk_codec_size_params p = wk_codec_size_defaults(32, 8, 128);
    wk_codec_sizes s;
    wk_err err;
    ck_assert_int_eq(wk_codec_sizes_measure(&p, &s, &err), 0);
    ck_assert_double_eq(s.fp16_bpt, 4096.0);
    ck_assert_double_eq(wk_codec_bpt(&s, WK_CODEC_KIVI2, 0, 5) * 32, 24576.0); /* KV-ALGORITHMS.md summary */
    ck_assert_double_eq(wk_codec_bpt(&s, WK_CODEC_KIVI4, 0, 5) * 32, 40960.0);
    wk_kivi_params kp = wk_kivi_defaults(2);
    ck_assert_double_eq(wk_codec_unit_bytes(&s, WK_CODEC_KIVI2, 0, 0, 32, 1000),
                        (double)wk_kivi_bytes(&kp, 1000, 128) * 8 * 32);
    double sum[WK_CG_LEVELS] = {0};
    for (int l = 0; l < 32; l++) {
        for (int lv = 0; lv < WK_CG_LEVELS; lv++) sum[lv] += s.cg_bpt[lv][l];
        for (int lv = 1; lv < WK_CG_LEVELS; lv++) /* equal where a layer group keeps its bins */
            ck_assert_double_ge(s.cg_bpt[lv][l], s.cg_bpt[lv - 1][l]);
        /* CacheGen: entropy-coded, so below the raw log2(31 levels) = 4.95 bits/value and above 1 bit */
        ck_assert_double_lt(s.cg_bpt[WK_CG_LEVELS - 1][l], 4096.0 * 4.95 / 16);
        ck_assert_double_gt(s.cg_bpt[0][l], 4096.0 / 16);
        ck_assert_double_gt(s.cg_chunk_layer_bytes[2][l], 0);
        ck_assert_double_gt(s.wikv_bpt[0][l], 4096.0 / 16);
        ck_assert_double_lt(s.wikv_bpt[0][l], 4096.0 * 4.2 / 16);
    }
    for (int lv = 1; lv < WK_CG_LEVELS; lv++) ck_assert_double_gt(sum[lv], sum[lv - 1]);
    /* finer bins in shallow layers */
    ck_assert_double_gt(s.cg_bpt[2][0], s.cg_bpt[2][31]);
    ck_assert_double_gt(s.wikv_bpt[0][0], s.wikv_bpt[0][31]);
    /* same class, same size; unit bytes add up */
    ck_assert_double_eq(s.cg_bpt[2][12], s.cg_bpt[2][19]);
    double one = wk_codec_unit_bytes(&s, WK_CODEC_CACHEGEN, 2, 3, 1, 1000);
    ck_assert_double_eq_tol(one, s.cg_bpt[2][3] * 1000 + s.cg_chunk_layer_bytes[2][3] + WK_CG_HEADER_BYTES, 1e-6);
    ck_assert_double_eq(wk_codec_unit_bytes(&s, WK_CODEC_FP16, 0, 0, 2, 10), 2 * 10 * 4096.0);
    ck_assert_double_eq(wk_codec_unit_bytes(&s, WK_CODEC_WIKV, 0, 30, 5, 10), 0); /* out of range */
}
END_TEST

/* The per-token numbers predict what the encoder really produces: exactly-sized chunks of other layers of the
 * same KV model within 3%, and 4x longer chunks within 10% (slowly varying values spread wider over a longer
 * chunk, so a short sample underestimates: see codec_size.h). */
static void check_prediction(int sample_tokens, int chunk_tokens, double tol) {
    wk_codec_size_params p = wk_codec_size_defaults(8, 2, 64);
    p.sample_tokens = sample_tokens;
    wk_codec_sizes s;
    wk_err err;
    ck_assert_int_eq(wk_codec_sizes_measure(&p, &s, &err), 0);
    wk_kv_tensor t;
    ck_assert_int_eq(wk_kv_tensor_alloc(&t, 8, 2, chunk_tokens, 64, &err), 0);
    wk_kv_synth_params sp = wk_kv_synth_defaults(p.seed);
    ck_assert_int_eq(wk_kv_tensor_synth(&t, &sp, &err), 0);
    for (int lv = 0; lv < WK_CG_LEVELS; lv++) {
        wk_cg_params cp = wk_cg_defaults();
        cp.level = lv;
        uint8_t *buf;
        size_t len;
        ck_assert_int_eq(wk_cg_encode(&cp, &t, 0, 8, 0, chunk_tokens, &buf, &len, NULL, &err), 0);
        free(buf);
        double pred = wk_codec_unit_bytes(&s, WK_CODEC_CACHEGEN, lv, 0, 8, chunk_tokens);
        ck_assert_msg(fabs(pred - len) / len < tol, "level %d predicted %.0f real %zu", lv, pred, len);
    }
    wk_kv_tensor_free(&t);
}

START_TEST(prediction_matches_real_encoder) {
    check_prediction(256, 256, 0.03);
    check_prediction(256, 1024, 0.10);
}
END_TEST

/* A real sample (here: a stored tensor) is used as given: a constant tensor codes to almost nothing. */
START_TEST(given_sample) {
    wk_kv_tensor t;
    wk_err err;
    ck_assert_int_eq(wk_kv_tensor_alloc(&t, 4, 2, 64, 32, &err), 0);
    wk_codec_size_params p = wk_codec_size_defaults(8, 2, 32);
    p.sample = &t;
    wk_codec_sizes s;
    ck_assert_int_eq(wk_codec_sizes_measure(&p, &s, &err), 0);
    ck_assert_int_eq(s.sample_tokens, 64);
    ck_assert_double_lt(s.cg_bpt[4][0], 128.0 * 0.2 / 8 + 4); /* scales (4 B) + < 0.2 bit/value */
    p.head_dim = 64;
    ck_assert_int_eq(wk_codec_sizes_measure(&p, &s, &err), WK_EINVAL);
    wk_kv_tensor_free(&t);
}
END_TEST

int main(void) {
    Suite *s = suite_create("codec_size");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, llama8b_shape_sizes);
    tcase_add_test(tc, prediction_matches_real_encoder);
    tcase_add_test(tc, given_sample);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
