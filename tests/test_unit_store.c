/* The server's store of encoded units: a payload comes back only for the same codec and unit identity
 * (vector ids included), as a copy; a store never holds more than its byte budget. */
#include <stdlib.h>
#include <string.h>

#include "exec/unit_store.h"
#include "tests/check_util.h"

static wk_unit unit_at(int layer, int token, int level) {
    wk_unit u;
    memset(&u, 0, sizeof u);
    u.layer_first = layer;
    u.layer_count = 1;
    u.token_first = token;
    u.token_count = 16;
    u.kv_head = -1;
    u.level = (int16_t)level;
    u.kind = WK_UNIT_KV;
    return u;
}

START_TEST(a_stored_unit_comes_back_as_a_copy) {
    wk_unit_store *s;
    wk_err err = {0};
    ck_assert(wk_unit_store_new(1 << 20, &s, &err) == 0);
    wk_stream_codec kivi2 = {.kind = WK_SCODEC_KIVI, .kivi_bits = 2, .kivi_group = 32, .kivi_residual = 128};
    wk_unit u = unit_at(3, 64, 0);
    uint8_t payload[100];
    for (int i = 0; i < 100; i++) payload[i] = (uint8_t)(i * 7);
    uint8_t *got = NULL;
    size_t len = 0;
    ck_assert(!wk_unit_store_get(s, &kivi2, &u, &got, &len));
    wk_unit_store_put(s, &kivi2, &u, payload, sizeof payload);
    ck_assert(wk_unit_store_get(s, &kivi2, &u, &got, &len));
    ck_assert_uint_eq(len, sizeof payload);
    ck_assert(memcmp(got, payload, len) == 0);
    got[0] ^= 0xff; /* the caller owns its copy: the store keeps the original */
    free(got);
    ck_assert(wk_unit_store_get(s, &kivi2, &u, &got, &len));
    ck_assert_int_eq(got[0], payload[0]);
    free(got);
    wk_unit_store_free(s);
}
END_TEST

START_TEST(another_codec_level_range_or_vector_set_is_a_miss) {
    wk_unit_store *s;
    wk_err err = {0};
    ck_assert(wk_unit_store_new(1 << 20, &s, &err) == 0);
    wk_stream_codec kivi2 = {.kind = WK_SCODEC_KIVI, .kivi_bits = 2, .kivi_group = 32, .kivi_residual = 128};
    wk_stream_codec kivi4 = kivi2;
    kivi4.kivi_bits = 4;
    wk_stream_codec sem = {.kind = WK_SCODEC_SEM};
    uint32_t ids_a[3] = {1, 5, 9}, ids_b[3] = {1, 5, 10};
    wk_unit u = unit_at(3, 64, 0), v = u;
    v.vectors = ids_a;
    v.n_vectors = 3;
    uint8_t one = 1, two = 2;
    wk_unit_store_put(s, &kivi2, &u, &one, 1);
    wk_unit_store_put(s, &sem, &v, &two, 1);
    uint8_t *got;
    size_t len;
    ck_assert(!wk_unit_store_get(s, &kivi4, &u, &got, &len));
    wk_unit w = unit_at(3, 64, 1);
    ck_assert(!wk_unit_store_get(s, &kivi2, &w, &got, &len));
    w = unit_at(3, 80, 0);
    ck_assert(!wk_unit_store_get(s, &kivi2, &w, &got, &len));
    w = v;
    w.vectors = ids_b;
    ck_assert(!wk_unit_store_get(s, &sem, &w, &got, &len));
    w.vectors = ids_a;
    w.n_vectors = 2;
    ck_assert(!wk_unit_store_get(s, &sem, &w, &got, &len));
    uint32_t ids_a_copy[3] = {1, 5, 9}; /* the same ids elsewhere in memory: the same unit */
    w.vectors = ids_a_copy;
    w.n_vectors = 3;
    ck_assert(wk_unit_store_get(s, &sem, &w, &got, &len));
    ck_assert_int_eq(got[0], 2);
    free(got);
    wk_unit_store_free(s);
}
END_TEST

START_TEST(the_byte_budget_holds_and_many_units_stay_findable) {
    wk_unit_store *s;
    wk_err err = {0};
    ck_assert(wk_unit_store_new(1000 * 8, &s, &err) == 0);
    wk_stream_codec c = {.kind = WK_SCODEC_FP16};
    uint64_t payload[1];
    for (int i = 0; i < 1500; i++) { /* the table grows past its first size; the last 500 do not fit */
        wk_unit u = unit_at(i % 32, i * 16, 0);
        payload[0] = (uint64_t)i * 2654435761u;
        wk_unit_store_put(s, &c, &u, (const uint8_t *)payload, sizeof payload);
    }
    size_t bytes, units;
    wk_unit_store_usage(s, &bytes, &units);
    ck_assert_uint_eq(units, 1000);
    ck_assert_uint_eq(bytes, 8000);
    for (int i = 0; i < 1500; i++) {
        wk_unit u = unit_at(i % 32, i * 16, 0);
        uint8_t *got;
        size_t len;
        int found = wk_unit_store_get(s, &c, &u, &got, &len);
        ck_assert_int_eq(found, i < 1000);
        if (found) {
            uint64_t v;
            memcpy(&v, got, sizeof v);
            ck_assert(v == (uint64_t)i * 2654435761u);
            free(got);
        }
    }
    wk_unit_store_free(s);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("unit_store");
    TCase *tc = tcase_create("store");
    tcase_add_test(tc, a_stored_unit_comes_back_as_a_copy);
    tcase_add_test(tc, another_codec_level_range_or_vector_set_is_a_miss);
    tcase_add_test(tc, the_byte_budget_holds_and_many_units_stay_findable);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return wk_test_run(suite()); }
