/* The committed seed corpora of the KV fuzz targets stay valid encodings (so fuzzing starts deep inside the
 * decoders): every seed decodes without error in the shapes its target uses. Regenerate them with
 * tests/fuzz/gen_kv_corpus.c when a format changes. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/cachegen.h"
#include "kv/kivi.h"
#include "kv/semantic.h"
#include "tests/check_util.h"

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static uint8_t buf[1 << 20];
    *n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return buf;
}

/* Calls check(path) for every file of corpus/<name>; returns how many. */
static int each_seed(const char *name, int (*check)(const uint8_t *, size_t)) {
    char dir[4096], path[8192];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", WIKV_SOURCE_DIR, name);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int count = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t n;
        const uint8_t *data = slurp(path, &n);
        ck_assert_msg(check(data, n) == 0, "seed %s does not decode", path);
        count++;
    }
    closedir(d);
    return count;
}

static int check_cachegen(const uint8_t *d, size_t n) {
    wk_kv_tensor t;
    wk_err err;
    ck_assert_int_eq(wk_kv_tensor_alloc(&t, 4, 2, 64, 16, &err), 0);
    int rc = wk_cg_decode(d, n, &t, &err);
    wk_kv_tensor_free(&t);
    return rc;
}

static int check_semantic(const uint8_t *d, size_t n) {
    wk_kv_tensor t;
    wk_sem_map m;
    wk_err err;
    ck_assert_int_eq(wk_kv_tensor_alloc(&t, 3, 2, 32, 16, &err), 0);
    ck_assert_int_eq(wk_sem_map_alloc(&m, 3, 2, 32, &err), 0);
    size_t l0 = (size_t)d[0] | (size_t)d[1] << 8 | (size_t)d[2] << 16 | (size_t)d[3] << 24;
    int rc = l0 <= n - 4 ? wk_sem_decode_batch(d + 4, l0, &t, &m, &err) : -1;
    if (!rc) rc = wk_sem_decode_batch(d + 4 + l0, n - 4 - l0, &t, &m, &err);
    wk_sem_map_free(&m);
    wk_kv_tensor_free(&t);
    return rc;
}

static int check_kivi(const uint8_t *d, size_t n) {
    static const int bits[4] = {2, 4, 8, 3};
    wk_kivi_params p = {bits[d[0] & 3], 8, 16};
    uint16_t k[64 * 16], v[64 * 16];
    wk_err err;
    return wk_kivi_decode_head(&p, d[1] & 63, 16, d + 2, n - 2, k, v, &err);
}

static int check_tensor(const uint8_t *d, size_t n) {
    wk_kv_tensor t;
    wk_err err;
    int rc = wk_kv_tensor_parse(d, n, "seed", &t, &err);
    if (!rc) wk_kv_tensor_free(&t);
    return rc;
}

START_TEST(seeds_decode) {
    ck_assert_int_ge(each_seed("cachegen", check_cachegen), 1);
    ck_assert_int_ge(each_seed("semantic", check_semantic), 1);
    ck_assert_int_ge(each_seed("kivi", check_kivi), 1);
    ck_assert_int_ge(each_seed("kv_tensor", check_tensor), 1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("kv_fuzz_seeds");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, seeds_decode);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
