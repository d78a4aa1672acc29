/* CUDA engine on the CI machine (nvcc, no GPU): opening fails cleanly with a named error and never
 * crashes: unknown synthetic names and missing folders are refused before any GPU call, and a valid
 * model on a machine without a GPU gives WK_EUNSUPPORTED. The numerical checks against the CPU
 * engine need a GPU and live in tests/gpu/. Without nvcc the suite checks bench_engine's fallback. */
#include <stdlib.h>
#include <string.h>

#include "check_util.h"
#include "exec/engine.h"
#ifdef WIKV_HAVE_CUDA
#include "exec/cuda/engine_cuda.h"
#include "tiny_model.h"

START_TEST(unknown_synthetic_name_refused) {
    wk_engine *e = (wk_engine *)1;
    wk_err err = {0};
    ck_assert_int_eq(wk_engine_cuda_open("synthetic:no-such-model", NULL, &e, &err), WK_ENOTFOUND);
    ck_assert_ptr_null(e);
    ck_assert_msg(strstr(err.msg, "llama-3.1-8b") != NULL, "error lists the bundled specs: %s", err.msg);
    ck_assert_int_eq(wk_engine_cuda_open("synthetic:../etc", NULL, &e, &err), WK_EINVAL);
    ck_assert_int_eq(wk_engine_cuda_open("synthetic:", NULL, &e, &err), WK_EINVAL);
}
END_TEST

START_TEST(missing_folder_refused) {
    wk_engine *e = NULL;
    wk_err err = {0};
    ck_assert_int_lt(wk_engine_cuda_open("/nonexistent/wikv/model", NULL, &e, &err), 0);
    ck_assert_ptr_null(e);
    ck_assert_msg(strstr(err.msg, "config.json") != NULL, "%s", err.msg);
}
END_TEST

START_TEST(unknown_prefill_kernel_refused) {
    /* WIKV_CUDA_ATTN_PREFILL is read before any GPU call: a name it does not know is an error, the
     * known ones open as usual (here: no GPU). */
    wk_engine *e = NULL;
    wk_err err = {0};
    setenv("WIKV_CUDA_ATTN_PREFILL", "fastest", 1);
    ck_assert_int_eq(wk_engine_cuda_open("synthetic:tiny", NULL, &e, &err), WK_EINVAL);
    ck_assert_ptr_null(e);
    ck_assert_msg(strstr(err.msg, "WIKV_CUDA_ATTN_PREFILL=fastest") != NULL, "%s", err.msg);
    setenv("WIKV_CUDA_ATTN_PREFILL", "wgmma", 1); /* removed: its successors are faster */
    ck_assert_int_eq(wk_engine_cuda_open("synthetic:tiny", NULL, &e, &err), WK_EINVAL);
    static const char *const known[] = {"auto", "mma", "pipe", "pairs"};
    for (int i = 0; i < 4; i++) {
        setenv("WIKV_CUDA_ATTN_PREFILL", known[i], 1);
        int rc = wk_engine_cuda_open("synthetic:tiny", NULL, &e, &err);
        ck_assert_msg(rc == 0 || rc == WK_EUNSUPPORTED, "%s: rc %d: %s", known[i], rc, err.msg);
        if (rc == 0) wk_engine_free(e);
    }
    unsetenv("WIKV_CUDA_ATTN_PREFILL");
}
END_TEST

START_TEST(valid_model_opens_or_says_no_gpu) {
    static const tiny_spec sp = {"LlamaForCausalLM", 64, 128, 1, 4, 2, 50, 0, "F32", 3, ""};
    char dir[256];
    ck_assert_int_eq(tiny_tmpdir(dir, sizeof dir), 0);
    ck_assert_int_eq(tiny_model_write(dir, &sp), 0);
    wk_engine *e = NULL;
    wk_err err = {0};
    int rc = wk_engine_cuda_open(dir, NULL, &e, &err);
    if (rc == 0) { /* a GPU is present: the engine must answer like any backend */
        ck_assert_str_eq(e->ops->name, "cuda");
        ck_assert_int_eq(e->ops->kv_is_present(e, 0, 0, 0), 0);
        ck_assert_int_eq(e->ops->kv_is_present(e, 5, 0, 0), WK_EINVAL);
        wk_engine_free(e);
    } else {
        ck_assert_int_eq(rc, WK_EUNSUPPORTED);
        ck_assert_ptr_null(e);
        ck_assert_msg(strstr(err.msg, "no CUDA device") != NULL, "%s", err.msg);
    }
    tiny_rmdir(dir);
}
END_TEST
#endif

START_TEST(bench_engine_help) {
    /* bench_engine builds with and without CUDA and answers --help with exit status 0. */
    char dir[4096], cmd[4300];
    snprintf(dir, sizeof dir, "%s", WIKV_BINARY);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    snprintf(cmd, sizeof cmd, "'%s/bench_engine' --help > /dev/null", slash ? dir : ".");
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(pclose(f), 0);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("engine_cuda");
    TCase *tc = tcase_create("core");
#ifdef WIKV_HAVE_CUDA
    tcase_add_test(tc, unknown_synthetic_name_refused);
    tcase_add_test(tc, missing_folder_refused);
    tcase_add_test(tc, unknown_prefill_kernel_refused);
    tcase_add_test(tc, valid_model_opens_or_says_no_gpu);
#endif
    tcase_add_test(tc, bench_engine_help);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return wk_test_run(suite()); }
