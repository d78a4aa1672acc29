/* CacheGen codec: round trips at every level with and without anchor deltas, the per-token error bound,
 * sizes that shrink with the level, sub-range chunks, and corrupt input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "kv/cachegen.h"
#include "tests/check_util.h"

static void synth(wk_kv_tensor *t, int L, int H, int T, int D) {
    wk_err err;
    ck_assert_int_eq(wk_kv_tensor_alloc(t, L, H, T, D, &err), 0);
    wk_kv_synth_params sp = wk_kv_synth_defaults(21);
    ck_assert_int_eq(wk_kv_tensor_synth(t, &sp, &err), 0);
}

static double mse(const wk_kv_tensor *a, const wk_kv_tensor *b) {
    size_t n = wk_kv_tensor_elems(a);
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double dk = wk_half_to_float(a->k[i]) - wk_half_to_float(b->k[i]);
        double dv = wk_half_to_float(a->v[i]) - wk_half_to_float(b->v[i]);
        s += dk * dk + dv * dv;
    }
    return s / (2.0 * n);
}

START_TEST(bins_follow_layer_groups) {
    ck_assert_int_eq(wk_cg_bins(2, 0, 32, 0), 32);
    ck_assert_int_eq(wk_cg_bins(2, 9, 32, 0), 32);
    ck_assert_int_eq(wk_cg_bins(2, 10, 32, 0), 16);
    ck_assert_int_eq(wk_cg_bins(2, 31, 32, 0), 16);
    ck_assert_int_eq(wk_cg_bins(2, 1, 32, 1), 32);
    ck_assert_int_eq(wk_cg_bins(2, 2, 32, 1), 16);
    ck_assert_int_eq(wk_cg_bins(1, 25, 32, 0), 12);
    ck_assert_int_eq(wk_cg_bins(4, 25, 32, 1), 32);
    ck_assert_int_eq(wk_cg_bins(0, 0, 4, 1), 12); /* at least one first layer for values */
}
END_TEST

/* Without delta every element is within half a step of the per-token scale: a/(2M). */
START_TEST(round_trip_every_level_within_half_step) {
    wk_kv_tensor t, u;
    synth(&t, 4, 2, 96, 32);
    wk_err err;
    ck_assert_int_eq(wk_kv_tensor_alloc(&u, 4, 2, 96, 32, &err), 0);
    size_t prev_len = 0;
    double prev_mse = 1e30;
    for (int level = 0; level < WK_CG_LEVELS; level++) {
        wk_cg_params p = wk_cg_defaults();
        p.level = level;
        uint8_t *buf;
        size_t len;
        wk_cg_stats st;
        ck_assert_int_eq(wk_cg_encode(&p, &t, 0, 4, 0, 96, &buf, &len, &st, &err), 0);
        ck_assert_uint_eq(st.header + st.scales + st.tables + st.lengths + st.payload, len);
        ck_assert_uint_eq(st.scales, 4 * 2 * 96 * 2);
        ck_assert_int_eq(wk_cg_decode(buf, len, &u, &err), 0);
        for (int l = 0; l < 4; l++)
            for (int kv = 0; kv < 2; kv++) {
                int M = wk_cg_bins(level, l, 4, kv) / 2 - 1;
                const uint16_t *x = kv ? t.v : t.k, *y = kv ? u.v : u.k;
                for (int tok = 0; tok < 96; tok++) {
                    float a = 0;
                    for (int h = 0; h < 2; h++)
                        for (int d = 0; d < 32; d++) a = fmaxf(a, fabsf(wk_half_to_float(x[wk_kv_row(&t, l, h, tok) + d])));
                    for (int h = 0; h < 2; h++)
                        for (int d = 0; d < 32; d++) {
                            size_t i = wk_kv_row(&t, l, h, tok) + d;
                            float e = fabsf(wk_half_to_float(x[i]) - wk_half_to_float(y[i]));
                            ck_assert_msg(e <= a / (2 * M) * 1.002f + a * 1e-3f, "level %d l %d e %g a %g M %d",
                                          level, l, e, a, M);
                        }
                }
            }
        double m = mse(&t, &u);
        ck_assert_uint_gt(len, prev_len); /* finer bins cost more bytes ... */
        ck_assert_double_lt(m, prev_mse); /* ... and give a smaller error */
        prev_len = len;
        prev_mse = m;
        free(buf);
    }
    wk_kv_tensor_free(&t);
    wk_kv_tensor_free(&u);
}
END_TEST

START_TEST(delta_round_trip_lowers_error) {
    wk_kv_tensor t, u, w;
    synth(&t, 3, 2, 120, 32);
    wk_err err;
    ck_assert_int_eq(wk_kv_tensor_alloc(&u, 3, 2, 120, 32, &err), 0);
    ck_assert_int_eq(wk_kv_tensor_alloc(&w, 3, 2, 120, 32, &err), 0);
    wk_cg_params p = wk_cg_defaults(), pd = p;
    pd.delta = 1;
    uint8_t *a, *b;
    size_t la, lb;
    ck_assert_int_eq(wk_cg_encode(&p, &t, 0, 3, 0, 120, &a, &la, NULL, &err), 0);
    ck_assert_int_eq(wk_cg_encode(&pd, &t, 0, 3, 0, 120, &b, &lb, NULL, &err), 0);
    ck_assert_int_eq(wk_cg_decode(a, la, &u, &err), 0);
    ck_assert_int_eq(wk_cg_decode(b, lb, &w, &err), 0);
    double m_plain = mse(&t, &u), m_delta = mse(&t, &w);
    ck_assert_double_lt(m_delta, m_plain);
    /* anchors (every 10th token) decode exactly like the plain codec */
    for (int l = 0; l < 3; l++)
        for (int tok = 0; tok < 120; tok += 10) {
            size_t i = wk_kv_row(&t, l, 1, tok);
            ck_assert_int_eq(memcmp(u.k + i, w.k + i, 64), 0);
        }
    free(a);
    free(b);
    wk_kv_tensor_free(&t);
    wk_kv_tensor_free(&u);
    wk_kv_tensor_free(&w);
}
END_TEST

/* A chunk of layers 1-2, tokens 40-79 writes only there. */
START_TEST(sub_range_chunk) {
    wk_kv_tensor t, u;
    synth(&t, 4, 2, 100, 16);
    wk_err err;
    ck_assert_int_eq(wk_kv_tensor_alloc(&u, 4, 2, 100, 16, &err), 0);
    wk_cg_params p = wk_cg_defaults();
    p.delta = 1;
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(wk_cg_encode(&p, &t, 1, 2, 40, 40, &buf, &len, NULL, &err), 0);
    ck_assert_int_eq(wk_cg_decode(buf, len, &u, &err), 0);
    for (int l = 0; l < 4; l++)
        for (int h = 0; h < 2; h++)
            for (int tok = 0; tok < 100; tok++) {
                int inside = l >= 1 && l <= 2 && tok >= 40 && tok < 80;
                const uint16_t *x = u.k + wk_kv_row(&u, l, h, tok);
                int nonzero = 0;
                for (int d = 0; d < 16; d++) nonzero |= x[d] != 0;
                ck_assert_int_eq(nonzero, inside);
            }
    /* wrong tensor shape is refused */
    wk_kv_tensor small;
    ck_assert_int_eq(wk_kv_tensor_alloc(&small, 4, 2, 60, 16, &err), 0);
    ck_assert_int_eq(wk_cg_decode(buf, len, &small, &err), WK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "token0"));
    wk_kv_tensor_free(&small);
    ck_assert_int_eq(wk_cg_encode(&p, &t, 3, 2, 0, 10, &buf, &len, NULL, &err), WK_EINVAL);
    free(buf);
    wk_kv_tensor_free(&t);
    wk_kv_tensor_free(&u);
}
END_TEST

START_TEST(corrupt_and_truncated_chunks) {
    wk_kv_tensor t, u;
    synth(&t, 2, 2, 40, 16);
    wk_err err;
    ck_assert_int_eq(wk_kv_tensor_alloc(&u, 2, 2, 40, 16, &err), 0);
    wk_cg_params p = wk_cg_defaults();
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(wk_cg_encode(&p, &t, 0, 2, 0, 40, &buf, &len, NULL, &err), 0);
    for (size_t cut = 0; cut < len; cut += 7) ck_assert_int_eq(wk_cg_decode(buf, cut, &u, &err), WK_EFORMAT);
    uint8_t *bad = malloc(len);
    wk_rng r;
    wk_rng_seed(&r, 1);
    int rejected = 0;
    for (int trial = 0; trial < 300; trial++) {
        memcpy(bad, buf, len);
        size_t at = wk_rng_next(&r) % len;
        bad[at] ^= (uint8_t)(1 + wk_rng_next(&r) % 255);
        rejected += wk_cg_decode(bad, len, &u, &err) != 0;
    }
    ck_assert_int_gt(rejected, 100); /* most damage is detected; the rest decodes to some values, never crashes */
    memcpy(bad, buf, len);
    bad[4] = 9;
    ck_assert_int_eq(wk_cg_decode(bad, len, &u, &err), WK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "version"));
    free(bad);
    free(buf);
    wk_kv_tensor_free(&t);
    wk_kv_tensor_free(&u);
}
END_TEST

/* An overflowed (inf) or NaN element: its token decodes to finite values (zeros), the rest as usual. */
/* Streams per channel group: any group size (1, a partial last group, one per head) decodes to the same values;
 * smaller groups cost more bytes; a zero group size or the version-1 layout is refused. */
START_TEST(stream_channels_decode_to_same_values) {
    wk_kv_tensor t, ref, out;
    synth(&t, 2, 2, 50, 24);
    wk_err err;
    ck_assert_int_eq(wk_kv_tensor_alloc(&ref, 2, 2, 50, 24, &err), 0);
    ck_assert_int_eq(wk_kv_tensor_alloc(&out, 2, 2, 50, 24, &err), 0);
    const int groups[] = {1, 5, 8, 24, 255};
    size_t prev_len = SIZE_MAX;
    for (int i = 0; i < 5; i++) {
        wk_cg_params p = wk_cg_defaults();
        p.delta = 1;
        p.stream_channels = groups[i];
        uint8_t *buf;
        size_t len;
        ck_assert_int_eq(wk_cg_encode(&p, &t, 0, 2, 0, 50, &buf, &len, NULL, &err), 0);
        ck_assert_int_eq(buf[9], groups[i]);
        if (groups[i] <= 24) ck_assert_msg(len < prev_len, "G %d: %zu bytes, smaller G %zu", groups[i], len, prev_len);
        else ck_assert_uint_eq(len, prev_len); /* G past head_dim: one stream per head, as G = head_dim */
        prev_len = len;
        ck_assert_int_eq(wk_cg_decode(buf, len, i ? &out : &ref, &err), 0);
        if (i) {
            ck_assert_int_eq(memcmp(ref.k, out.k, 2 * wk_kv_tensor_elems(&ref)), 0);
            ck_assert_int_eq(memcmp(ref.v, out.v, 2 * wk_kv_tensor_elems(&ref)), 0);
        }
        buf[9] = 0;
        ck_assert_int_eq(wk_cg_decode(buf, len, &out, &err), WK_EFORMAT);
        ck_assert_msg(strstr(err.msg, "stream_channels") != NULL, "%s", err.msg);
        buf[9] = (uint8_t)groups[i];
        buf[4] = 1;
        ck_assert_int_eq(wk_cg_decode(buf, len, &out, &err), WK_EFORMAT);
        free(buf);
    }
    wk_cg_params bad = wk_cg_defaults();
    bad.stream_channels = 0;
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(wk_cg_encode(&bad, &t, 0, 2, 0, 50, &buf, &len, NULL, &err), WK_EINVAL);
    wk_kv_tensor_free(&t);
    wk_kv_tensor_free(&ref);
    wk_kv_tensor_free(&out);
}
END_TEST

START_TEST(non_finite_input) {
    wk_kv_tensor t, u;
    synth(&t, 2, 2, 32, 16);
    wk_err err;
    ck_assert_int_eq(wk_kv_tensor_alloc(&u, 2, 2, 32, 16, &err), 0);
    t.k[wk_kv_row(&t, 0, 1, 5) + 3] = 0x7C00; /* +inf */
    t.v[wk_kv_row(&t, 1, 0, 7) + 2] = 0x7E00; /* NaN */
    for (int delta = 0; delta < 2; delta++) {
        wk_cg_params p = wk_cg_defaults();
        p.delta = delta;
        uint8_t *buf;
        size_t len;
        ck_assert_int_eq(wk_cg_encode(&p, &t, 0, 2, 0, 32, &buf, &len, NULL, &err), 0);
        ck_assert_int_eq(wk_cg_decode(buf, len, &u, &err), 0);
        for (size_t i = 0; i < wk_kv_tensor_elems(&u); i++) {
            ck_assert(isfinite(wk_half_to_float(u.k[i])));
            ck_assert(isfinite(wk_half_to_float(u.v[i])));
        }
        free(buf);
    }
    wk_kv_tensor_free(&t);
    wk_kv_tensor_free(&u);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cachegen");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, bins_follow_layer_groups);
    tcase_add_test(tc, round_trip_every_level_within_half_step);
    tcase_add_test(tc, delta_round_trip_lowers_error);
    tcase_add_test(tc, sub_range_chunk);
    tcase_add_test(tc, corrupt_and_truncated_chunks);
    tcase_add_test(tc, stream_channels_decode_to_same_values);
    tcase_add_test(tc, non_finite_input);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
