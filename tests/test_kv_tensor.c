/* KV tensor: synthetic model statistics, file round trip, and errors naming the field at fault. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "kv/kv_tensor.h"
#include "tests/check_util.h"

static void make(wk_kv_tensor *t, int L, int H, int T, int D, uint64_t seed) {
    wk_err err;
    ck_assert_int_eq(wk_kv_tensor_alloc(t, L, H, T, D, &err), 0);
    wk_kv_synth_params p = wk_kv_synth_defaults(seed);
    ck_assert_int_eq(wk_kv_tensor_synth(t, &p, &err), 0);
}

START_TEST(synth_is_deterministic_and_seeded) {
    wk_kv_tensor a, b, c;
    make(&a, 2, 2, 64, 32, 7);
    make(&b, 2, 2, 64, 32, 7);
    make(&c, 2, 2, 64, 32, 8);
    size_t n = wk_kv_tensor_elems(&a);
    ck_assert_int_eq(memcmp(a.k, b.k, 2 * n), 0);
    ck_assert_int_eq(memcmp(a.v, b.v, 2 * n), 0);
    ck_assert_int_ne(memcmp(a.k, c.k, 2 * n), 0);
    wk_kv_tensor_free(&a);
    wk_kv_tensor_free(&b);
    wk_kv_tensor_free(&c);
}
END_TEST

/* Keys have a few channels with much larger mean magnitude; values are smoother along tokens than keys. */
START_TEST(synth_has_outlier_channels_and_smooth_values) {
    wk_kv_tensor t;
    const int T = 512, D = 64;
    make(&t, 1, 1, T, D, 3);
    double mean_abs[64] = {0};
    double dk = 0, dv = 0, vk = 0, vv = 0;
    for (int tok = 1; tok < T; tok++)
        for (int c = 0; c < D; c++) {
            size_t i = (size_t)tok * D + c;
            mean_abs[c] += fabs(wk_half_to_float(t.k[i])) / T;
            double k0 = wk_half_to_float(t.k[i]), k1 = wk_half_to_float(t.k[i - D]);
            double v0 = wk_half_to_float(t.v[i]), v1 = wk_half_to_float(t.v[i - D]);
            dk += (k0 - k1) * (k0 - k1);
            dv += (v0 - v1) * (v0 - v1);
        }
    /* variance around channel means */
    for (int c = 0; c < D; c++) {
        double mk = 0, mv = 0;
        for (int tok = 1; tok < T; tok++) {
            mk += wk_half_to_float(t.k[(size_t)tok * D + c]) / (T - 1);
            mv += wk_half_to_float(t.v[(size_t)tok * D + c]) / (T - 1);
        }
        for (int tok = 1; tok < T; tok++) {
            double a = wk_half_to_float(t.k[(size_t)tok * D + c]) - mk, b = wk_half_to_float(t.v[(size_t)tok * D + c]) - mv;
            vk += a * a;
            vv += b * b;
        }
    }
    int big = 0;
    double sorted_med = 0;
    double tmp[64];
    memcpy(tmp, mean_abs, sizeof tmp);
    for (int i = 0; i < D; i++)
        for (int j = i + 1; j < D; j++)
            if (tmp[j] < tmp[i]) {
                double x = tmp[i];
                tmp[i] = tmp[j];
                tmp[j] = x;
            }
    sorted_med = tmp[D / 2];
    for (int c = 0; c < D; c++) big += mean_abs[c] > 4 * sorted_med;
    ck_assert_int_ge(big, 2);
    ck_assert_int_le(big, 4);
    /* neighbour difference relative to variance: 2(1-rho): 0.4 for keys, 0.1 for values */
    ck_assert_double_lt(dv / vv, 0.2);
    ck_assert_double_gt(dk / vk, 0.3);
    wk_kv_tensor_free(&t);
}
END_TEST

START_TEST(file_round_trip_and_errors) {
    wk_kv_tensor t, u;
    wk_err err;
    make(&t, 3, 2, 20, 16, 11);
    char path[] = "/tmp/wikv_kv_test_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(wk_kv_tensor_write(&t, path, &err), 0);
    ck_assert_int_eq(wk_kv_tensor_read(path, &u, &err), 0);
    ck_assert_int_eq(u.layers, 3);
    ck_assert_int_eq(u.kv_heads, 2);
    ck_assert_int_eq(u.tokens, 20);
    ck_assert_int_eq(u.head_dim, 16);
    size_t n = wk_kv_tensor_elems(&t);
    ck_assert_int_eq(memcmp(t.k, u.k, 2 * n), 0);
    ck_assert_int_eq(memcmp(t.v, u.v, 2 * n), 0);
    wk_kv_tensor_free(&u);
    unlink(path);

    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(wk_kv_tensor_serialize(&t, &buf, &len, &err), 0);
    ck_assert_uint_eq(len, 44 + 4 * n);
    /* truncated payload */
    ck_assert_int_eq(wk_kv_tensor_parse(buf, len - 1, "f", &u, &err), WK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "truncated"));
    ck_assert_int_eq(wk_kv_tensor_parse(buf, 30, "f", &u, &err), WK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "header"));
    /* flipped payload bit */
    buf[100] ^= 1;
    ck_assert_int_eq(wk_kv_tensor_parse(buf, len, "f", &u, &err), WK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "payload_crc32c"));
    buf[100] ^= 1;
    /* header field damaged: caught by the header CRC */
    buf[12] ^= 4;
    ck_assert_int_eq(wk_kv_tensor_parse(buf, len, "f", &u, &err), WK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "offset 40"));
    buf[12] ^= 4;
    buf[0] = 'X';
    ck_assert_int_eq(wk_kv_tensor_parse(buf, len, "f", &u, &err), WK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "magic"));
    buf[0] = 'W';
    ck_assert_int_eq(wk_kv_tensor_parse(buf, len, "f", &u, &err), 0);
    wk_kv_tensor_free(&u);
    free(buf);
    ck_assert_int_eq(wk_kv_tensor_read("/nonexistent/x.wkv", &u, &err), WK_EIO);
    wk_kv_tensor_free(&t);
}
END_TEST

START_TEST(alloc_rejects_bad_shapes) {
    wk_kv_tensor t;
    wk_err err;
    ck_assert_int_eq(wk_kv_tensor_alloc(&t, 0, 1, 1, 1, &err), WK_EINVAL);
    ck_assert_int_eq(wk_kv_tensor_alloc(&t, 1, 1, 1, 5000, &err), WK_EINVAL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("kv_tensor");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, synth_is_deterministic_and_seeded);
    tcase_add_test(tc, synth_has_outlier_channels_and_smooth_values);
    tcase_add_test(tc, file_round_trip_and_errors);
    tcase_add_test(tc, alloc_rejects_bad_shapes);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
