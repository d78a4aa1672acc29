/* Range coder: bit-exact round trips, compression close to the entropy, tables, and bad input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv_tensor.h"
#include "kv/rangecoder.h"
#include "tests/check_util.h"

static void skewed(uint8_t *s, size_t n, int nsym, uint64_t seed) {
    wk_rng r;
    wk_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        int x = (int)(fabs(wk_rng_normal_polar(&r)) * nsym / 6);
        s[i] = (uint8_t)(x < nsym ? x : nsym - 1);
    }
}

START_TEST(round_trip_near_entropy) {
    const size_t n = 200000;
    const int nsym = 31;
    uint8_t *s = malloc(n), *d = malloc(n);
    skewed(s, n, nsym, 1);
    uint64_t counts[64] = {0};
    for (size_t i = 0; i < n; i++) counts[s[i]]++;
    double ent = 0;
    for (int i = 0; i < nsym; i++)
        if (counts[i]) ent -= (double)counts[i] * log2((double)counts[i] / n);
    wk_rc_table t;
    wk_err err;
    ck_assert_int_eq(wk_rc_table_from_counts(&t, counts, nsym, 14, &err), 0);
    ck_assert_uint_eq(t.cum[nsym], 1u << 14);
    wk_wbuf w;
    wk_wbuf_init(&w);
    wk_rc_encode_array(&t, s, n, &w);
    ck_assert_int_eq(wk_wbuf_check(&w, &err), 0);
    ck_assert_double_le(w.len * 8.0, ent * 1.01 + 64);
    ck_assert_double_ge(w.len * 8.0, ent * 0.99);
    ck_assert_int_eq(wk_rc_decode_array(&t, w.data, w.len, d, n, &err), 0);
    ck_assert_int_eq(memcmp(s, d, n), 0);
    /* truncation is reported, never read past */
    ck_assert_int_eq(wk_rc_decode_array(&t, w.data, w.len / 2, d, n, &err), WK_EFORMAT);
    ck_assert_int_eq(wk_rc_decode_array(&t, w.data, 3, d, n, &err), WK_EFORMAT);
    w.data[0] = 1;
    ck_assert_int_eq(wk_rc_decode_array(&t, w.data, w.len, d, n, &err), WK_EFORMAT);
    wk_wbuf_free(&w);
    free(s);
    free(d);
}
END_TEST

/* Many short streams of every length: catches flush/carry bugs. */
START_TEST(short_streams_and_carries) {
    wk_err err;
    uint64_t counts[4] = {1, 1000000, 1, 1}; /* extreme skew: long runs of tiny intervals and carries */
    wk_rc_table t;
    ck_assert_int_eq(wk_rc_table_from_counts(&t, counts, 4, 16, &err), 0);
    ck_assert_uint_eq(wk_rc_freq(&t, 0), 1);
    wk_rng r;
    wk_rng_seed(&r, 9);
    for (int n = 0; n < 300; n++) {
        uint8_t s[300], d[300];
        for (int i = 0; i < n; i++) s[i] = (uint8_t)(wk_rng_next(&r) % 5 == 0 ? wk_rng_next(&r) % 4 : 1);
        wk_wbuf w;
        wk_wbuf_init(&w);
        wk_rc_encode_array(&t, s, (size_t)n, &w);
        ck_assert_int_eq(wk_rc_decode_array(&t, w.data, w.len, d, (size_t)n, &err), 0);
        ck_assert_int_eq(memcmp(s, d, (size_t)n), 0);
        wk_wbuf_free(&w);
    }
}
END_TEST

START_TEST(raw_bits_and_mixed_tables) {
    wk_err err;
    uint64_t c1[3] = {5, 1, 0}, c2[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    wk_rc_table a, b;
    ck_assert_int_eq(wk_rc_table_from_counts(&a, c1, 3, 10, &err), 0);
    ck_assert_uint_eq(wk_rc_freq(&a, 2), 0);
    ck_assert_int_eq(wk_rc_table_from_counts(&b, c2, 8, 12, &err), 0);
    wk_wbuf w;
    wk_wbuf_init(&w);
    wk_rc_enc e;
    wk_rc_enc_init(&e, &w);
    for (int i = 0; i < 1000; i++) {
        wk_rc_enc_put(&e, &a, i % 7 == 0);
        wk_rc_enc_bits(&e, (uint32_t)(i * 37) & 0xFFFF, 16);
        wk_rc_enc_put(&e, &b, i % 8);
    }
    wk_rc_enc_finish(&e);
    wk_rc_dec d;
    ck_assert_int_eq(wk_rc_dec_init(&d, w.data, w.len, &err), 0);
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(wk_rc_dec_get(&d, &a, &err), i % 7 == 0);
        ck_assert_int_eq(wk_rc_dec_bits(&d, 16, &err), (i * 37) & 0xFFFF);
        ck_assert_int_eq(wk_rc_dec_get(&d, &b, &err), i % 8);
    }
    ck_assert_uint_eq(wk_rc_dec_used(&d), w.len);
    wk_wbuf_free(&w);
}
END_TEST

START_TEST(table_storage) {
    wk_err err;
    uint64_t c[10] = {0, 0, 3, 9, 27, 0, 1, 0, 0, 0};
    wk_rc_table t, u;
    ck_assert_int_eq(wk_rc_table_from_counts(&t, c, 10, 12, &err), 0);
    wk_wbuf w;
    wk_wbuf_init(&w);
    wk_rc_table_write(&t, &w);
    ck_assert_uint_eq(w.data[0], 2);
    ck_assert_uint_eq(w.data[1], 6);
    wk_rbuf r;
    wk_rbuf_init(&r, w.data, w.len, "t");
    ck_assert_int_eq(wk_rc_table_read(&u, 10, 12, &r, &err), 0);
    ck_assert_int_eq(memcmp(t.cum, u.cum, sizeof(uint32_t) * 11), 0);
    ck_assert_uint_eq(r.pos, w.len);
    /* wrong total, truncated, symbols out of range */
    wk_rbuf_init(&r, w.data, w.len, "t");
    ck_assert_int_eq(wk_rc_table_read(&u, 10, 13, &r, &err), WK_EFORMAT);
    wk_rbuf_init(&r, w.data, w.len - 1, "t");
    ck_assert_int_eq(wk_rc_table_read(&u, 10, 12, &r, &err), WK_EFORMAT);
    wk_rbuf_init(&r, w.data, w.len, "t");
    ck_assert_int_eq(wk_rc_table_read(&u, 5, 12, &r, &err), WK_EFORMAT);
    wk_wbuf_free(&w);
    /* a frequency that would wrap the running sum around 2^64 back to the right total */
    wk_wbuf_init(&w);
    wk_wbuf_u8(&w, 0);
    wk_wbuf_u8(&w, 2);
    wk_wbuf_varint(&w, 100);
    wk_wbuf_varint(&w, UINT64_MAX - 49); /* 100 + this wraps to 50 */
    wk_wbuf_varint(&w, 4046);            /* ... and this makes 4096 */
    wk_rbuf_init(&r, w.data, w.len, "t");
    ck_assert_int_eq(wk_rc_table_read(&u, 3, 12, &r, &err), WK_EFORMAT);
    wk_wbuf_free(&w);
    uint64_t zero[4] = {0};
    ck_assert_int_eq(wk_rc_table_from_counts(&t, zero, 4, 8, &err), 0);
    ck_assert_uint_eq(wk_rc_freq(&t, 3), 64);
    ck_assert_int_eq(wk_rc_table_from_counts(&t, zero, 65, 8, &err), WK_EINVAL);
}
END_TEST

/* Random garbage never crashes and never reads out of bounds (ASan build checks the latter). */
START_TEST(garbage_input) {
    uint64_t c[16];
    for (int i = 0; i < 16; i++) c[i] = (uint64_t)(i + 1);
    wk_rc_table t;
    wk_err err;
    ck_assert_int_eq(wk_rc_table_from_counts(&t, c, 16, 12, &err), 0);
    wk_rng r;
    wk_rng_seed(&r, 4);
    int failures = 0;
    for (int trial = 0; trial < 2000; trial++) {
        uint8_t buf[64], out[200];
        size_t len = wk_rng_next(&r) % 64;
        for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)wk_rng_next(&r);
        if (len) buf[0] = 0;
        failures += wk_rc_decode_array(&t, buf, len, out, 200, &err) != 0;
    }
    ck_assert_int_gt(failures, 1900); /* 200 symbols need ~90 bytes: nearly all must fail as truncated */
}
END_TEST

int main(void) {
    Suite *s = suite_create("rangecoder");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, round_trip_near_entropy);
    tcase_add_test(tc, short_streams_and_carries);
    tcase_add_test(tc, raw_bits_and_mixed_tables);
    tcase_add_test(tc, table_storage);
    tcase_add_test(tc, garbage_input);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
