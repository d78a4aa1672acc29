/* safetensors reader: valid files of each dtype convert exactly, shards are merged through the index,
 * and every kind of corrupt header gives an error naming the file and tensor. */
#include <stdlib.h>
#include <string.h>

#include "check_util.h"
#include "core/half.h"
#include "exec/safetensors.h"
#include "tiny_model.h"

/* Builds header-length + header + data into a malloc'ed buffer. */
static uint8_t *image(const char *header, const void *data, size_t dlen, size_t *len) {
    size_t h = strlen(header);
    *len = 8 + h + dlen;
    uint8_t *b = malloc(*len);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(((uint64_t)h >> (8 * i)) & 0xFF);
    memcpy(b + 8, header, h);
    if (dlen) memcpy(b + 8 + h, data, dlen);
    return b;
}

static void expect_error(const char *header, size_t dlen, const char *want) {
    uint8_t data[64] = {0};
    size_t len;
    uint8_t *b = image(header, data, dlen, &len);
    wk_safetensors st;
    wk_err err = {0};
    int rc = wk_st_parse(b, len, "model.safetensors", &st, &err);
    ck_assert_msg(rc == WK_EFORMAT, "accepted: %s", header);
    ck_assert_msg(strstr(err.msg, want) != NULL, "for %s: got '%s', want '%s'", header, err.msg, want);
    ck_assert_msg(strncmp(err.msg, "model.safetensors", 17) == 0, "file not named: %s", err.msg);
    free(b);
}

START_TEST(corrupt_headers_named) {
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 16]}}", 8,
                 "tensor a: data offsets beyond file end");
    expect_error("{\"model.layers.3.mlp.up_proj.weight\": {\"dtype\": \"F16\", \"shape\": [4], \"data_offsets\": [0, 8]}}", 4,
                 "tensor model.layers.3.mlp.up_proj.weight: data offsets beyond file end");
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", 8, "tensor a: data offsets reversed");
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8,
                 "tensor a: data size 8 does not match shape x dtype (12)");
    expect_error("{\"a\": {\"dtype\": \"Q4\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "tensor a: field dtype missing or unknown");
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", 8, "tensor a: shape[0] is not a valid size");
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 8]}}", 8, "tensor a: shape[0]");
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": 2, \"data_offsets\": [0, 8]}}", 8, "tensor a: field shape missing");
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0]}}", 8, "tensor a: field data_offsets");
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 8,
                 "tensor a: 9 dimensions");
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [1099511627776, 1099511627776], \"data_offsets\": [0, 4]}}", 8,
                 "tensor a: shape");
    expect_error("{\"a\": 5}", 0, "tensor a: entry is not an object");
    expect_error("[1]", 0, "header is not a JSON object");
    expect_error("{\"a\": ", 0, "model.safetensors: line 1");
    /* Header length beyond the file. */
    uint8_t b[12] = {0xFF, 0xFF, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    wk_safetensors st;
    wk_err err = {0};
    ck_assert_int_eq(wk_st_parse(b, sizeof b, "x.safetensors", &st, &err), WK_EFORMAT);
    ck_assert_msg(strstr(err.msg, "x.safetensors: header length 65535 beyond file end") != NULL, "%s", err.msg);
    ck_assert_int_eq(wk_st_parse(b, 5, "x.safetensors", &st, &err), WK_EFORMAT);
    ck_assert_msg(strstr(err.msg, "shorter than the 8-byte header length") != NULL, "%s", err.msg);
}
END_TEST

START_TEST(dtypes_convert) {
    float f[3] = {1.5f, -2.25f, 1e-3f};
    uint16_t h[3], bf[3];
    for (int i = 0; i < 3; i++) {
        h[i] = wk_float_to_half(f[i]);
        bf[i] = wk_float_to_bf16(f[i]);
    }
    uint8_t data[12 + 6 + 6 + 4];
    memcpy(data, f, 12); /* little-endian host assumed by the test, as by the format */
    for (int i = 0; i < 3; i++) {
        data[12 + 2 * i] = (uint8_t)(h[i] & 0xFF);
        data[13 + 2 * i] = (uint8_t)(h[i] >> 8);
        data[18 + 2 * i] = (uint8_t)(bf[i] & 0xFF);
        data[19 + 2 * i] = (uint8_t)(bf[i] >> 8);
    }
    memset(data + 24, 7, 4);
    const char *hdr = "{\"__metadata__\": {\"format\": \"pt\"}, \"f\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 12]},"
                      " \"h\": {\"dtype\": \"F16\", \"shape\": [1, 3], \"data_offsets\": [12, 18]},"
                      " \"b\": {\"dtype\": \"BF16\", \"shape\": [3], \"data_offsets\": [18, 24]},"
                      " \"i\": {\"dtype\": \"I32\", \"shape\": [], \"data_offsets\": [24, 28]},"
                      " \"e\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [28, 28]}}";
    size_t len;
    uint8_t *img = image(hdr, data, sizeof data, &len);
    wk_safetensors st;
    wk_err err = {0};
    ck_assert_msg(wk_st_parse(img, len, "m.safetensors", &st, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(st.n_tensors, 5);
    float out[3];
    int64_t shape3[1] = {3}, shape13[2] = {1, 3};
    ck_assert_int_eq(wk_st_load_f32(&st, "f", 1, shape3, out, &err), 0);
    ck_assert(memcmp(out, f, 12) == 0);
    ck_assert_int_eq(wk_st_load_f32(&st, "h", 2, shape13, out, &err), 0);
    for (int i = 0; i < 3; i++) ck_assert_float_eq(out[i], wk_half_to_float(h[i]));
    ck_assert_int_eq(wk_st_load_f32(&st, "b", 1, shape3, out, &err), 0);
    for (int i = 0; i < 3; i++) ck_assert_float_eq(out[i], wk_bf16_to_float(bf[i]));
    ck_assert_int_eq(wk_st_load_f32(&st, "h", 1, shape3, out, &err), WK_EFORMAT);
    ck_assert_msg(strstr(err.msg, "m.safetensors: tensor h: shape [1,3], expected [3]") != NULL, "%s", err.msg);
    const wk_st_tensor *ti = wk_st_find(&st, "i");
    ck_assert_int_eq(ti->ndim, 0);
    ck_assert_int_eq(ti->numel, 1);
    ck_assert_int_eq(wk_st_to_f32(&st, ti, out, &err), WK_EUNSUPPORTED);
    ck_assert_msg(strstr(err.msg, "tensor i: dtype I32 not supported") != NULL, "%s", err.msg);
    ck_assert_int_eq(wk_st_load_f32(&st, "nope", 1, shape3, out, &err), WK_ENOTFOUND);
    ck_assert_msg(strstr(err.msg, "tensor nope: missing") != NULL, "%s", err.msg);
    ck_assert_int_eq(wk_st_find(&st, "e")->nbytes, 0);
    wk_st_close(&st);
    free(img);
}
END_TEST

static void write_file(const char *dir, const char *name, const void *p, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(p, 1, n, f);
    fclose(f);
}

START_TEST(sharded_index) {
    char dir[256];
    ck_assert_int_eq(tiny_tmpdir(dir, sizeof dir), 0);
    float a[2] = {1, 2}, b[1] = {3};
    size_t la, lb;
    uint8_t *ia = image("{\"x.a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", a, 8, &la);
    uint8_t *ib = image("{\"x.b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", b, 4, &lb);
    write_file(dir, "model-00001-of-00002.safetensors", ia, la);
    write_file(dir, "model-00002-of-00002.safetensors", ib, lb);
    const char *idx = "{\"metadata\": {}, \"weight_map\": {\"x.a\": \"model-00001-of-00002.safetensors\","
                      " \"x.b\": \"model-00002-of-00002.safetensors\"}}";
    write_file(dir, "model.safetensors.index.json", idx, strlen(idx));
    wk_safetensors st;
    wk_err err = {0};
    ck_assert_msg(wk_st_open_dir(dir, &st, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(st.n_files, 2);
    ck_assert_int_eq(st.n_tensors, 2);
    float out[2];
    int64_t s1[1] = {1};
    ck_assert_int_eq(wk_st_load_f32(&st, "x.b", 1, s1, out, &err), 0);
    ck_assert_float_eq(out[0], 3.0f);
    wk_st_close(&st);
    /* Index naming the wrong shard. */
    const char *bad = "{\"weight_map\": {\"x.a\": \"model-00002-of-00002.safetensors\"}}";
    write_file(dir, "model.safetensors.index.json", bad, strlen(bad));
    ck_assert_int_eq(wk_st_open_dir(dir, &st, &err), WK_EFORMAT);
    ck_assert_msg(strstr(err.msg, "tensor x.a: not found in shard model-00002-of-00002.safetensors") != NULL, "%s", err.msg);
    /* Index naming a missing shard. */
    const char *missing = "{\"weight_map\": {\"x.a\": \"model-00009.safetensors\"}}";
    write_file(dir, "model.safetensors.index.json", missing, strlen(missing));
    ck_assert_int_eq(wk_st_open_dir(dir, &st, &err), WK_ENOTFOUND);
    ck_assert_msg(strstr(err.msg, "model-00009.safetensors: cannot open") != NULL, "%s", err.msg);
    /* Path components are refused. */
    const char *escape = "{\"weight_map\": {\"x.a\": \"../etc/passwd\"}}";
    write_file(dir, "model.safetensors.index.json", escape, strlen(escape));
    ck_assert_int_eq(wk_st_open_dir(dir, &st, &err), WK_EFORMAT);
    ck_assert_msg(strstr(err.msg, "weight_map.x.a: not a plain file name") != NULL, "%s", err.msg);
    /* Truncated single file: its name and the tensor are in the message. */
    write_file(dir, "model.safetensors", ia, la - 3);
    ck_assert_int_eq(wk_st_open_dir(dir, &st, &err), WK_EFORMAT);
    ck_assert_msg(strstr(err.msg, "model.safetensors: tensor x.a: data offsets beyond file end") != NULL, "%s", err.msg);
    free(ia);
    free(ib);
    tiny_rmdir(dir);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, corrupt_headers_named);
    tcase_add_test(tc, dtypes_convert);
    tcase_add_test(tc, sharded_index);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return wk_test_run(suite()); }
