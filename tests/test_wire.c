/* Wire protocol: round trips of every frame type, the byte layout of the header, and rejection of
 * bad magic, version, type, flags, length, CRC, truncation and malformed payloads, each error naming
 * its field. */
#include <stdlib.h>
#include <string.h>

#include "core/crc32c.h"
#include "net/wire.h"
#include "tests/check_util.h"

static size_t encode(const wk_wire_msg *m, uint8_t *buf, size_t cap) {
    size_t len = 0;
    wk_err err = {0};
    ck_assert_msg(wk_wire_encode(m, buf, cap, &len, &err) == 0, "%s", err.msg);
    return len;
}

static void decode_ok(const uint8_t *buf, size_t len, wk_wire_msg *m) {
    size_t used = 0;
    wk_err err = {0};
    ck_assert_msg(wk_wire_decode(buf, len, m, &used, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(used, len);
}

/* Decoding fails with WK_EFORMAT and a message containing `field`. */
static void decode_fails(const uint8_t *buf, size_t len, const char *field) {
    wk_wire_msg m;
    size_t used;
    wk_err err = {0};
    ck_assert_int_eq(wk_wire_decode(buf, len, &m, &used, &err), WK_EFORMAT);
    ck_assert_msg(strstr(err.msg, field) != NULL, "error \"%s\" does not name %s", err.msg, field);
}

START_TEST(request_round_trip_and_header_layout) {
    wk_wire_msg m = {.h = {.type = WK_FRAME_REQUEST, .stream_id = 77, .send_time_us = 0x0102030405060708ull}};
    strcpy(m.u.request.task_id, "longbench/qasper");
    strcpy(m.u.request.context_id, "ctx-000123");
    strcpy(m.u.request.policy, "wikv");
    strcpy(m.u.request.params, "levels=4;threshold=0.3");
    uint8_t buf[4096];
    size_t len = encode(&m, buf, sizeof buf);
    ck_assert_int_eq(memcmp(buf, "WKVF", 4), 0);
    ck_assert_uint_eq(buf[4], WK_WIRE_VERSION);
    ck_assert_uint_eq(buf[5], WK_FRAME_REQUEST);
    ck_assert_uint_eq(buf[12] | buf[13] << 8, len - WK_WIRE_HEADER_BYTES); /* little-endian payload_len */
    ck_assert_uint_eq(buf[16], 0x08);                                     /* send_time_us, low byte first */
    ck_assert_uint_eq(buf[24], 77);
    uint32_t crc = wk_crc32c(wk_crc32c(0, buf, 28), buf + 32, len - 32);
    ck_assert_uint_eq(buf[28] | buf[29] << 8 | buf[30] << 16 | (uint32_t)buf[31] << 24, crc);
    wk_wire_msg d;
    decode_ok(buf, len, &d);
    ck_assert_uint_eq(d.h.type, WK_FRAME_REQUEST);
    ck_assert_uint_eq(d.h.stream_id, 77);
    ck_assert(d.h.send_time_us == 0x0102030405060708ull);
    ck_assert_str_eq(d.u.request.task_id, "longbench/qasper");
    ck_assert_str_eq(d.u.request.context_id, "ctx-000123");
    ck_assert_str_eq(d.u.request.policy, "wikv");
    ck_assert_str_eq(d.u.request.params, "levels=4;threshold=0.3");
}
END_TEST

START_TEST(every_type_round_trips) {
    uint8_t buf[4096], data[100];
    for (int i = 0; i < 100; i++) data[i] = (uint8_t)(i * 7);
    wk_wire_msg m = {.h = {.type = WK_FRAME_STREAM_INFO}}, d;
    m.u.info.n_units = 288 * 1000;
    m.u.info.n_levels = 3;
    m.u.info.level_bytes[0] = 1000, m.u.info.level_bytes[1] = 1ull << 40, m.u.info.level_bytes[2] = 5;
    decode_ok(buf, encode(&m, buf, sizeof buf), &d);
    ck_assert_uint_eq(d.u.info.n_units, 288000);
    ck_assert_uint_eq(d.u.info.n_levels, 3);
    ck_assert(d.u.info.level_bytes[1] == 1ull << 40);

    m = (wk_wire_msg){.h = {.type = WK_FRAME_UNIT_DATA, .unit_id = 5000, .flags = WK_WIRE_FLAG_LAST_OF_LEVEL}};
    m.u.unit = (wk_wire_unit_data){.level = 2, .n_units = 10, .data = data, .data_len = sizeof data};
    size_t len = encode(&m, buf, sizeof buf);
    ck_assert_uint_eq(len, 32 + 8 + 100);
    decode_ok(buf, len, &d);
    ck_assert_uint_eq(d.h.unit_id, 5000);
    ck_assert_uint_eq(d.h.flags, WK_WIRE_FLAG_LAST_OF_LEVEL);
    ck_assert_uint_eq(d.u.unit.level, 2);
    ck_assert_uint_eq(d.u.unit.n_units, 10);
    ck_assert_uint_eq(d.u.unit.data_len, 100);
    ck_assert_ptr_eq(d.u.unit.data, buf + 40); /* zero copy */
    ck_assert_int_eq(memcmp(d.u.unit.data, data, 100), 0);

    m = (wk_wire_msg){.h = {.type = WK_FRAME_MORE}, .u.more = {.level = 1, .max_units = 4096, .max_bytes = 1 << 20}};
    decode_ok(buf, encode(&m, buf, sizeof buf), &d);
    ck_assert_uint_eq(d.u.more.level, 1);
    ck_assert_uint_eq(d.u.more.max_units, 4096);
    ck_assert_uint_eq(d.u.more.max_bytes, 1 << 20);

    m = (wk_wire_msg){.h = {.type = WK_FRAME_STOP}};
    ck_assert_uint_eq(encode(&m, buf, sizeof buf), 32);
    decode_ok(buf, 32, &d);
    ck_assert_uint_eq(d.h.type, WK_FRAME_STOP);

    m = (wk_wire_msg){.h = {.type = WK_FRAME_END}, .u.end = {.units_sent = 9, .bytes_sent = 123456789012ull}};
    decode_ok(buf, encode(&m, buf, sizeof buf), &d);
    ck_assert_uint_eq(d.u.end.units_sent, 9);
    ck_assert(d.u.end.bytes_sent == 123456789012ull);

    m = (wk_wire_msg){.h = {.type = WK_FRAME_ERROR}, .u.error = {.code = WK_ENOTFOUND}};
    strcpy(m.u.error.message, "no such context");
    decode_ok(buf, encode(&m, buf, sizeof buf), &d);
    ck_assert_int_eq(d.u.error.code, WK_ENOTFOUND);
    ck_assert_str_eq(d.u.error.message, "no such context");

    m = (wk_wire_msg){.h = {.type = WK_FRAME_PROGRESS}, .u.progress = {.tokens_prefilling = 1536, .tokens_emitted = 2}};
    ck_assert_uint_eq(encode(&m, buf, sizeof buf), 32 + 8);
    decode_ok(buf, 40, &d);
    ck_assert_uint_eq(d.u.progress.tokens_prefilling, 1536);
    ck_assert_uint_eq(d.u.progress.tokens_emitted, 2);
}
END_TEST

static size_t sample_frame(uint8_t *buf, size_t cap) {
    static const uint8_t data[64] = {1, 2, 3};
    wk_wire_msg m = {.h = {.type = WK_FRAME_UNIT_DATA, .unit_id = 3, .stream_id = 1}};
    m.u.unit = (wk_wire_unit_data){.level = 0, .n_units = 2, .data = data, .data_len = sizeof data};
    return encode(&m, buf, cap);
}

START_TEST(bad_headers_name_their_field) {
    uint8_t buf[256], bad[256];
    size_t len = sample_frame(buf, sizeof buf);
    memcpy(bad, buf, len);
    bad[0] = 'X';
    decode_fails(bad, len, "magic");
    memcpy(bad, buf, len);
    bad[4] = 1; /* version 1 had no PROGRESS frame: refused */
    decode_fails(bad, len, "version 1");
    memcpy(bad, buf, len);
    bad[5] = 99;
    decode_fails(bad, len, "type 99");
    memcpy(bad, buf, len);
    bad[7] = 0x80;
    decode_fails(bad, len, "flags");
    memcpy(bad, buf, len);
    bad[15] = 0x7f; /* payload_len ~2 GiB */
    decode_fails(bad, len, "payload_len");
    memcpy(bad, buf, len);
    bad[40] ^= 1; /* payload bit */
    decode_fails(bad, len, "crc32c");
    memcpy(bad, buf, len);
    bad[8] ^= 1; /* unit_id is covered by the CRC too */
    decode_fails(bad, len, "crc32c");
    decode_fails(buf, len - 1, "truncated");
    decode_fails(buf, 10, "truncated");
}
END_TEST

/* Any prefix and any single-bit flip of a valid frame is rejected (CRC32C catches all 1-bit errors). */
START_TEST(every_prefix_and_bit_flip_is_rejected) {
    uint8_t buf[256], bad[256];
    size_t len = sample_frame(buf, sizeof buf);
    for (size_t n = 0; n < len; n++) decode_fails(buf, n, "");
    for (size_t bit = 0; bit < len * 8; bit++) {
        memcpy(bad, buf, len);
        bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        decode_fails(bad, len, "");
    }
}
END_TEST

/* Valid header and CRC, malformed payload: the error names the payload field and its frame offset. */
START_TEST(bad_payloads_name_their_field) {
    uint8_t frame[512], payload[64] = {0};
    size_t len;
    wk_err err;
    wk_wire_header h = {.type = WK_FRAME_MORE};
    ck_assert_int_eq(wk_wire_encode_frame(&h, payload, 8, frame, sizeof frame, &len, &err), 0);
    decode_fails(frame, len, "max_bytes");
    ck_assert_int_eq(wk_wire_encode_frame(&h, payload, 20, frame, sizeof frame, &len, &err), 0);
    decode_fails(frame, len, "unexpected bytes");
    payload[0] = 16; /* level 16 */
    ck_assert_int_eq(wk_wire_encode_frame(&h, payload, 16, frame, sizeof frame, &len, &err), 0);
    decode_fails(frame, len, "level 16");
    payload[0] = 0;
    payload[1] = 1; /* reserved byte */
    ck_assert_int_eq(wk_wire_encode_frame(&h, payload, 16, frame, sizeof frame, &len, &err), 0);
    decode_fails(frame, len, "offset 33: reserved");

    h.type = WK_FRAME_PROGRESS;
    memset(payload, 0, sizeof payload);
    ck_assert_int_eq(wk_wire_encode_frame(&h, payload, 4, frame, sizeof frame, &len, &err), 0);
    decode_fails(frame, len, "tokens_emitted");
    ck_assert_int_eq(wk_wire_encode_frame(&h, payload, 12, frame, sizeof frame, &len, &err), 0);
    decode_fails(frame, len, "unexpected bytes");

    h.type = WK_FRAME_REQUEST;
    memset(payload, 0, sizeof payload);
    payload[0] = 0xff, payload[1] = 0x7f; /* task_id length 32767 > 255 */
    ck_assert_int_eq(wk_wire_encode_frame(&h, payload, 8, frame, sizeof frame, &len, &err), 0);
    decode_fails(frame, len, "task_id length");
    payload[0] = 2, payload[1] = 0, payload[2] = 'a', payload[3] = 0; /* NUL inside a string */
    ck_assert_int_eq(wk_wire_encode_frame(&h, payload, 12, frame, sizeof frame, &len, &err), 0);
    decode_fails(frame, len, "NUL");
    payload[3] = 'b'; /* task "ab", then context_id missing */
    ck_assert_int_eq(wk_wire_encode_frame(&h, payload, 4, frame, sizeof frame, &len, &err), 0);
    decode_fails(frame, len, "context_id");

    h.type = WK_FRAME_STREAM_INFO;
    memset(payload, 0, sizeof payload);
    ck_assert_int_eq(wk_wire_encode_frame(&h, payload, 16, frame, sizeof frame, &len, &err), 0);
    decode_fails(frame, len, "n_levels 0");
    payload[4] = 3; /* 3 levels but room for one */
    ck_assert_int_eq(wk_wire_encode_frame(&h, payload, 16, frame, sizeof frame, &len, &err), 0);
    decode_fails(frame, len, "level_bytes");

    h.type = WK_FRAME_UNIT_DATA;
    h.unit_id = 0xfffffff0u;
    memset(payload, 0, sizeof payload);
    payload[4] = 0x20; /* n_units 32 from unit 2^32-16 */
    ck_assert_int_eq(wk_wire_encode_frame(&h, payload, 8, frame, sizeof frame, &len, &err), 0);
    decode_fails(frame, len, "overflows");
}
END_TEST

START_TEST(encoder_rejects_what_it_cannot_send) {
    uint8_t small[40];
    size_t len;
    wk_err err;
    wk_wire_msg m = {.h = {.type = WK_FRAME_REQUEST}};
    strcpy(m.u.request.task_id, "t");
    ck_assert_int_eq(wk_wire_encode(&m, small, 33, &len, &err), WK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "too small"));
    memset(m.u.request.policy, 'p', sizeof m.u.request.policy); /* not NUL-terminated */
    uint8_t big[4096];
    ck_assert_int_eq(wk_wire_encode(&m, big, sizeof big, &len, &err), WK_EINVAL);
    m = (wk_wire_msg){.h = {.type = 42}};
    ck_assert_int_eq(wk_wire_encode(&m, big, sizeof big, &len, &err), WK_EINVAL);
    m = (wk_wire_msg){.h = {.type = WK_FRAME_STOP, .flags = 0x8000}};
    ck_assert_int_eq(wk_wire_encode(&m, big, sizeof big, &len, &err), WK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "flags"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("wire");
    TCase *tc = tcase_create("wire");
    tcase_add_test(tc, request_round_trip_and_header_layout);
    tcase_add_test(tc, every_type_round_trips);
    tcase_add_test(tc, bad_headers_name_their_field);
    tcase_add_test(tc, every_prefix_and_bit_flip_is_rejected);
    tcase_add_test(tc, bad_payloads_name_their_field);
    tcase_add_test(tc, encoder_rejects_what_it_cannot_send);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
