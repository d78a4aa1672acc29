/* CUDA KV decoders on the CI machine (nvcc, no GPU): bad shapes are refused before any GPU call, and a
 * valid shape without a GPU gives WK_EUNSUPPORTED naming the missing device. With a GPU present, a small
 * CacheGen/KIVI/semantic round trip must match the CPU decoders byte for byte (the full comparison,
 * mutated inputs included, is tests/gpu/test_kv_decode_gpu.c). Without nvcc the suite checks that
 * bench_kv_codecs still runs its CPU rows. */
#include <string.h>

#include "check_util.h"
#include "kv/cachegen.h"
#include "kv/kivi.h"
#include "kv/semantic.h"
#ifdef WIKV_HAVE_CUDA
#include "kv/cuda/kv_decode_cuda.h"

START_TEST(bad_shape_refused) {
    wk_kv_cuda *g = (wk_kv_cuda *)1;
    wk_err err = {0};
    ck_assert_int_eq(wk_kv_cuda_open(0, 8, 128, 128, &g, &err), WK_EINVAL);
    ck_assert_ptr_null(g);
    ck_assert_int_eq(wk_kv_cuda_open(2, 8, 128, WK_KV_MAX_HEAD_DIM + 1, &g, &err), WK_EINVAL);
    ck_assert_msg(strstr(err.msg, "shape") != NULL, "%s", err.msg);
}
END_TEST

static int same(const wk_kv_tensor *a, const wk_kv_tensor *b) {
    size_t n = wk_kv_tensor_elems(a) * 2;
    return memcmp(a->k, b->k, n) == 0 && memcmp(a->v, b->v, n) == 0;
}

/* GPU present: one chunk / tensor / batch of each codec decodes to the CPU's bytes. */
static void round_trips(wk_kv_cuda *g) {
    wk_err err = {0};
    wk_kv_tensor t, cpu, gpu;
    wk_kv_synth_params sp = wk_kv_synth_defaults(4);
    ck_assert_int_eq(wk_kv_tensor_alloc(&t, 2, 2, 160, 64, &err), 0);
    ck_assert_int_eq(wk_kv_tensor_synth(&t, &sp, &err), 0);
    ck_assert_int_eq(wk_kv_tensor_alloc(&cpu, 2, 2, 160, 64, &err), 0);
    ck_assert_int_eq(wk_kv_tensor_alloc(&gpu, 2, 2, 160, 64, &err), 0);
    uint8_t *buf;
    size_t len;
    wk_kivi_params kp = wk_kivi_defaults(2);
    ck_assert_int_eq(wk_kivi_encode(&kp, &t, &buf, &len, &err), 0);
    ck_assert_int_eq(wk_kivi_decode(&kp, buf, len, &cpu, &err), 0);
    ck_assert_int_eq(wk_kv_cuda_kivi(g, &kp, buf, len, &err), 0);
    ck_assert_int_eq(wk_kv_cuda_download(g, &gpu, &err), 0);
    ck_assert(same(&cpu, &gpu));
    free(buf);
    wk_cg_params cp = wk_cg_defaults();
    ck_assert_int_eq(wk_cg_encode(&cp, &t, 0, 2, 0, 160, &buf, &len, NULL, &err), 0);
    ck_assert_int_eq(wk_cg_decode(buf, len, &cpu, &err), 0);
    const uint8_t *one = buf;
    ck_assert_int_eq(wk_kv_cuda_cachegen(g, 1, &one, &len, &err), 0);
    ck_assert_int_eq(wk_kv_cuda_download(g, &gpu, &err), 0);
    ck_assert(same(&cpu, &gpu));
    size_t short_len = len / 2;
    ck_assert_int_eq(wk_kv_cuda_cachegen(g, 1, &one, &short_len, &err), WK_EFORMAT);
    free(buf);
    uint32_t ids[200];
    for (int i = 0; i < 200; i++) ids[i] = (uint32_t)(i * 3);
    wk_sem_params pp = wk_sem_defaults(2);
    wk_sem_map m;
    ck_assert_int_eq(wk_sem_map_alloc(&m, 2, 2, 160, &err), 0);
    ck_assert_int_eq(wk_sem_encode_batch(&pp, &t, ids, 200, 0, &buf, &len, NULL, NULL, &err), 0);
    ck_assert_int_eq(wk_sem_decode_batch(buf, len, &cpu, &m, &err), 0);
    one = buf;
    ck_assert_int_eq(wk_kv_cuda_semantic(g, 1, &one, &len, &err), 0);
    ck_assert_int_eq(wk_kv_cuda_download(g, &gpu, &err), 0);
    ck_assert(same(&cpu, &gpu));
    ck_assert_int_eq(wk_kv_cuda_semantic(g, 1, &one, &len, &err), WK_EFORMAT); /* units already at level 0 */
    free(buf);
    wk_sem_map_free(&m);
    wk_kv_tensor_free(&t);
    wk_kv_tensor_free(&cpu);
    wk_kv_tensor_free(&gpu);
}

START_TEST(opens_or_says_no_gpu) {
    wk_kv_cuda *g = NULL;
    wk_err err = {0};
    int rc = wk_kv_cuda_open(2, 2, 160, 64, &g, &err);
    if (rc == 0) {
        round_trips(g);
        wk_kv_cuda_free(g);
    } else {
        ck_assert_int_eq(rc, WK_EUNSUPPORTED);
        ck_assert_ptr_null(g);
        ck_assert_msg(strstr(err.msg, "no CUDA device") != NULL, "%s", err.msg);
    }
}
END_TEST
#endif

START_TEST(bench_kv_codecs_runs) {
    /* bench_kv_codecs builds with and without CUDA; a tiny run prints the CPU rows and exits 0 (its GPU
     * rows say "no CUDA device" without a GPU). */
    char dir[4096], cmd[4400], out[8192] = {0};
    snprintf(dir, sizeof dir, "%s", WIKV_BINARY);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    snprintf(cmd, sizeof cmd, "'%s/bench_kv_codecs' --layers 2 --heads 1 --tokens 160 --head-dim 32 2>&1",
             slash ? dir : ".");
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    ck_assert_int_eq(pclose(f), 0);
    ck_assert_msg(strstr(out, "cachegen L2") != NULL, "%s", out);
#ifdef WIKV_HAVE_CUDA
    ck_assert_msg(strstr(out, "gpu") != NULL, "GPU section missing: %s", out);
#endif
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("kv_cuda");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
#ifdef WIKV_HAVE_CUDA
    tcase_add_test(tc, bad_shape_refused);
    tcase_add_test(tc, opens_or_says_no_gpu);
#endif
    tcase_add_test(tc, bench_kv_codecs_runs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return wk_test_run(suite()); }
