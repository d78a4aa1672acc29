/* Core helpers: JSON reader, CRC32C, fp16/bf16 conversion, error messages. */
#include <math.h>
#include <string.h>

#include "core/crc32c.h"
#include "core/err.h"
#include "core/half.h"
#include "core/json.h"
#include "tests/check_util.h"

START_TEST(json_parses_nested_document) {
    const char *text = "{\"a\": [1, 2.5, -3e2], \"b\": {\"c\": \"x\\u00e9\\n\"}, \"t\": true, \"n\": null}";
    wk_json doc;
    wk_err err;
    ck_assert_int_eq(wk_json_parse(text, strlen(text), "doc", &doc, &err), 0);
    const wk_json *a = wk_json_get(&doc, "a");
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(a->count, 3);
    ck_assert_double_eq(wk_json_at(a, 2)->number, -300);
    ck_assert_str_eq(wk_json_get_string(wk_json_get(&doc, "b"), "c"), "x\xc3\xa9\n");
    long long v;
    ck_assert_int_eq(wk_json_get_int(&doc, "missing", 7, &v, &err), 0);
    ck_assert_int_eq(v, 7);
    ck_assert_int_eq(wk_json_get_int(&doc, "t", 0, &v, &err), WK_EFORMAT);
    wk_json_free(&doc);
}
END_TEST

START_TEST(json_rejects_garbage_with_offset) {
    const char *bad[] = {"{\"a\": }", "[1, 2", "{\"a\" 1}", "\"abc", "[1] x", "{\"a\":\"\\q\"}", "-", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wk_json doc;
        wk_err err;
        ck_assert_int_eq(wk_json_parse(bad[i], strlen(bad[i]), "in.json", &doc, &err), WK_EFORMAT);
        ck_assert_msg(strstr(err.msg, "in.json: line 1, offset") != NULL, "%s", err.msg);
    }
    char deep[2000];
    memset(deep, '[', sizeof deep);
    wk_json doc;
    wk_err err;
    ck_assert_int_eq(wk_json_parse(deep, sizeof deep, "deep", &doc, &err), WK_EFORMAT);
}
END_TEST

START_TEST(crc32c_known_vector) {
    ck_assert_uint_eq(wk_crc32c(0, "123456789", 9), 0xE3069283u);
    unsigned char big[1000];
    for (int i = 0; i < 1000; i++) big[i] = (unsigned char)(i * 7);
    /* the table path and the bytewise path agree, and chunking does not change the result */
    uint32_t whole = wk_crc32c(0, big, 1000);
    uint32_t parts = wk_crc32c(wk_crc32c(0, big, 100), big + 100, 900);
    ck_assert_uint_eq(whole, parts);
    /* the sliced path (long inputs, any length) against the bytewise one (pieces under 256 bytes) */
    for (size_t len = 997; len <= 1000; len++) {
        uint32_t bytewise = 0;
        for (size_t off = 0; off < len; off += 100) bytewise = wk_crc32c(bytewise, big + off, len - off < 100 ? len - off : 100);
        ck_assert_uint_eq(wk_crc32c(0, big, len), bytewise);
    }
}
END_TEST

START_TEST(half_round_trips) {
    float vals[] = {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.333251953125f};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        ck_assert_float_eq(wk_half_to_float(wk_float_to_half(vals[i])), vals[i]);
    ck_assert_uint_eq(wk_float_to_half(1.0f), 0x3C00);
    ck_assert_uint_eq(wk_float_to_half(1e6f), 0x7C00);
    ck_assert_float_eq(wk_bf16_to_float(wk_float_to_bf16(1.5f)), 1.5f);
    ck_assert(fabsf(wk_bf16_to_float(wk_float_to_bf16(3.14159f)) - 3.14159f) < 0.02f);
}
END_TEST

START_TEST(err_prefix_adds_context) {
    wk_err err;
    wk_err_set(&err, WK_EFORMAT, "bad field");
    wk_err_prefix(&err, "config.json");
    ck_assert_str_eq(err.msg, "config.json: bad field");
    ck_assert_int_eq(wk_err_exit_status(&err), 2);
}
END_TEST

int main(void) {
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, json_parses_nested_document);
    tcase_add_test(tc, json_rejects_garbage_with_offset);
    tcase_add_test(tc, crc32c_known_vector);
    tcase_add_test(tc, half_round_trips);
    tcase_add_test(tc, err_prefix_adds_context);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
