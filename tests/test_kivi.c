/* KIVI: encoded size equals the size model, round-trip error within scale/2, fp16 residual exact, packing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "kv/kivi.h"
#include "tests/check_util.h"

/* Max over groups of the error bound: half a quantization step plus fp16 rounding of the result. */
static void check_head(const wk_kivi_params *p, int T, int D, const uint16_t *k, const uint16_t *v,
                       const uint16_t *kd, const uint16_t *vd) {
    int tk = wk_kivi_quantized_key_tokens(p, T), tv = wk_kivi_quantized_value_tokens(p, T);
    float top = (float)((1 << p->bits) - 1);
    for (int c = 0; c < D; c++)
        for (int g0 = 0; g0 < tk; g0 += p->group) {
            float mn = INFINITY, mx = -INFINITY;
            for (int t = g0; t < g0 + p->group; t++) {
                float f = wk_half_to_float(k[t * D + c]);
                mn = fminf(mn, f);
                mx = fmaxf(mx, f);
            }
            float scale = (mx - mn) / top, tol = scale / 2 * 1.01f + fmaxf(fabsf(mn), fabsf(mx)) * 2e-3f;
            for (int t = g0; t < g0 + p->group; t++) {
                float e = fabsf(wk_half_to_float(k[t * D + c]) - wk_half_to_float(kd[t * D + c]));
                ck_assert_msg(e <= tol, "key t=%d c=%d err %g > %g", t, c, e, tol);
            }
        }
    for (int t = tk; t < T; t++)
        for (int c = 0; c < D; c++) ck_assert_uint_eq(k[t * D + c], kd[t * D + c]);
    for (int t = 0; t < tv; t++)
        for (int g0 = 0; g0 < D; g0 += p->group) {
            int g1 = g0 + p->group < D ? g0 + p->group : D;
            float mn = INFINITY, mx = -INFINITY;
            for (int c = g0; c < g1; c++) {
                mn = fminf(mn, wk_half_to_float(v[t * D + c]));
                mx = fmaxf(mx, wk_half_to_float(v[t * D + c]));
            }
            float scale = (mx - mn) / top, tol = scale / 2 * 1.01f + fmaxf(fabsf(mn), fabsf(mx)) * 2e-3f;
            for (int c = g0; c < g1; c++) {
                float e = fabsf(wk_half_to_float(v[t * D + c]) - wk_half_to_float(vd[t * D + c]));
                ck_assert_msg(e <= tol, "value t=%d c=%d err %g > %g", t, c, e, tol);
            }
        }
    for (int t = tv; t < T; t++)
        for (int c = 0; c < D; c++) ck_assert_uint_eq(v[t * D + c], vd[t * D + c]);
}

static void round_trip(int bits, int group, int residual, int T, int D) {
    wk_kv_tensor t, u;
    wk_err err;
    ck_assert_int_eq(wk_kv_tensor_alloc(&t, 2, 2, T, D, &err), 0);
    ck_assert_int_eq(wk_kv_tensor_alloc(&u, 2, 2, T, D, &err), 0);
    wk_kv_synth_params sp = wk_kv_synth_defaults(5);
    ck_assert_int_eq(wk_kv_tensor_synth(&t, &sp, &err), 0);
    wk_kivi_params p = {bits, group, residual};
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(wk_kivi_encode(&p, &t, &buf, &len, &err), 0);
    ck_assert_uint_eq(len, (size_t)(4 * wk_kivi_bytes(&p, T, D)));
    ck_assert_int_eq(wk_kivi_decode(&p, buf, len, &u, &err), 0);
    for (int l = 0; l < 2; l++)
        for (int h = 0; h < 2; h++) {
            size_t at = wk_kv_row(&t, l, h, 0);
            check_head(&p, T, D, t.k + at, t.v + at, u.k + at, u.v + at);
        }
    /* wrong length is an error, not a crash */
    ck_assert_int_eq(wk_kivi_decode(&p, buf, len - 1, &u, &err), WK_EFORMAT);
    free(buf);
    wk_kv_tensor_free(&t);
    wk_kv_tensor_free(&u);
}

START_TEST(round_trip_2bit_default) { round_trip(2, 32, 128, 300, 64); }
END_TEST
START_TEST(round_trip_4bit_default) { round_trip(4, 32, 128, 513, 128); }
END_TEST
START_TEST(round_trip_short_context_all_fp16) { round_trip(2, 32, 128, 100, 32); }
END_TEST
START_TEST(round_trip_small_groups) { round_trip(4, 8, 16, 77, 24); }
END_TEST

/* Hand-made head: known codes and packing positions. */
START_TEST(known_packing) {
    wk_kivi_params p = {2, 16, 16};
    const int T = 17, D = 16; /* 16 key tokens quantized (one group), 1 value token quantized */
    uint16_t k[17 * 16], v[17 * 16], kd[17 * 16], vd[17 * 16];
    for (int t = 0; t < T; t++)
        for (int c = 0; c < D; c++) {
            k[t * D + c] = wk_float_to_half((float)(t % 4)); /* 0,1,2,3 -> codes 0..3 with scale 1 */
            v[t * D + c] = wk_float_to_half((float)(c % 4) * 0.5f);
        }
    uint8_t out[4096];
    size_t len;
    wk_err err;
    ck_assert_int_eq(wk_kivi_encode_head(&p, T, D, k, v, out, sizeof out, &len, &err), 0);
    ck_assert_uint_eq(len, (size_t)wk_kivi_bytes(&p, T, D));
    /* channel 0, word 0: tokens 0..15 codes t%4 at bits 2t */
    uint32_t w = (uint32_t)out[0] | (uint32_t)out[1] << 8 | (uint32_t)out[2] << 16 | (uint32_t)out[3] << 24;
    uint32_t want = 0;
    for (int t = 0; t < 16; t++) want |= (uint32_t)(t % 4) << (2 * t);
    ck_assert_uint_eq(w, want);
    /* key scale of channel 0 group 0 = 1.0 (fp16 0x3C00), min 0 */
    ck_assert_uint_eq(out[16 * 4] | out[16 * 4 + 1] << 8, 0x3C00);
    ck_assert_int_eq(wk_kivi_decode_head(&p, T, D, out, len, kd, vd, &err), 0);
    ck_assert_int_eq(memcmp(k, kd, sizeof k), 0); /* exactly representable */
    ck_assert_int_eq(memcmp(v, vd, sizeof v), 0);
}
END_TEST

START_TEST(constant_group_and_bad_params) {
    wk_kivi_params p = {2, 32, 128};
    const int T = 256, D = 32;
    uint16_t *k = calloc((size_t)T * D, 2), *v = calloc((size_t)T * D, 2), *kd = malloc((size_t)T * D * 2),
             *vd = malloc((size_t)T * D * 2);
    for (int i = 0; i < T * D; i++) k[i] = v[i] = wk_float_to_half(1.5f);
    uint8_t *out = malloc((size_t)wk_kivi_bytes(&p, T, D));
    size_t len;
    wk_err err;
    ck_assert_int_eq(wk_kivi_encode_head(&p, T, D, k, v, out, (size_t)wk_kivi_bytes(&p, T, D), &len, &err), 0);
    ck_assert_int_eq(wk_kivi_decode_head(&p, T, D, out, len, kd, vd, &err), 0);
    ck_assert_int_eq(memcmp(k, kd, (size_t)T * D * 2), 0);
    ck_assert_int_eq(memcmp(v, vd, (size_t)T * D * 2), 0);
    wk_kivi_params bad = {3, 32, 128};
    ck_assert_int_eq(wk_kivi_check(&bad, 128, &err), WK_EINVAL);
    bad = (wk_kivi_params){2, 32, 100};
    ck_assert_int_eq(wk_kivi_check(&bad, 128, &err), WK_EINVAL);
    bad = (wk_kivi_params){4, 32, 128};
    ck_assert_int_eq(wk_kivi_check(&bad, 12, &err), WK_EINVAL);
    ck_assert_int_eq(wk_kivi_encode_head(&p, T, D, k, v, out, 10, &len, &err), WK_EINVAL);
    free(k);
    free(v);
    free(kd);
    free(vd);
    free(out);
}
END_TEST

/* inf / NaN elements: their groups decode to finite values (the group minimum), never NaN. */
START_TEST(non_finite_input) {
    wk_kivi_params p = {2, 32, 128};
    const int T = 256, D = 32;
    uint16_t *k = malloc((size_t)T * D * 2), *v = malloc((size_t)T * D * 2), *kd = malloc((size_t)T * D * 2),
             *vd = malloc((size_t)T * D * 2);
    for (int i = 0; i < T * D; i++) k[i] = v[i] = wk_float_to_half((float)(i % 7) - 3.0f);
    k[5 * D + 3] = 0x7C00;
    v[9 * D + 4] = 0x7E00;
    size_t n = (size_t)wk_kivi_bytes(&p, T, D), len;
    uint8_t *out = malloc(n);
    wk_err err;
    ck_assert_int_eq(wk_kivi_encode_head(&p, T, D, k, v, out, n, &len, &err), 0);
    ck_assert_int_eq(wk_kivi_decode_head(&p, T, D, out, len, kd, vd, &err), 0);
    for (int i = 0; i < T * D; i++) {
        ck_assert(isfinite(wk_half_to_float(kd[i])));
        ck_assert(isfinite(wk_half_to_float(vd[i])));
    }
    free(k), free(v), free(kd), free(vd), free(out);
}
END_TEST

/* The size model itself against the formulas in KV-ALGORITHMS.md: 96 B/token at 2 bits, 160 at 4, D=128. */
START_TEST(size_model_asymptotics) {
    wk_kivi_params p2 = wk_kivi_defaults(2), p4 = wk_kivi_defaults(4);
    ck_assert_int_eq(wk_kivi_bytes(&p2, 1024 + 128, 128) - wk_kivi_bytes(&p2, 128 + 128, 128), 96 * 896);
    ck_assert_int_eq(wk_kivi_bytes(&p4, 1024 + 128, 128) - wk_kivi_bytes(&p4, 128 + 128, 128), 160 * 896);
}
END_TEST

int main(void) {
    Suite *s = suite_create("kivi");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, round_trip_2bit_default);
    tcase_add_test(tc, round_trip_4bit_default);
    tcase_add_test(tc, round_trip_short_context_all_fp16);
    tcase_add_test(tc, round_trip_small_groups);
    tcase_add_test(tc, known_packing);
    tcase_add_test(tc, constant_group_and_bad_params);
    tcase_add_test(tc, size_model_asymptotics);
    tcase_add_test(tc, non_finite_input);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
