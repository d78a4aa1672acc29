/* wk_parallel_for: every index runs exactly once on any thread count; the first failure comes back with
 * its code and message, and no more items are handed out after it. */
#include <stdatomic.h>
#include <string.h>

#include "core/parallel.h"
#include "tests/check_util.h"

enum { N = 1000 };

typedef struct {
    atomic_int runs[N];
    atomic_int total;
    int fail_at; /* -1: none */
} work;

static int count(void *ctx, int i, wk_err *err) {
    work *w = ctx;
    atomic_fetch_add(&w->runs[i], 1);
    atomic_fetch_add(&w->total, 1);
    if (i == w->fail_at) return wk_err_set(err, WK_EFORMAT, "item %d is bad", i);
    return 0;
}

START_TEST(every_index_runs_once) {
    int threads[] = {0, 1, 3, 64, 500};
    for (size_t k = 0; k < sizeof threads / sizeof *threads; k++) {
        static work w;
        memset(&w, 0, sizeof w);
        w.fail_at = -1;
        wk_err err = {0};
        ck_assert_int_eq(wk_parallel_for(N, threads[k], count, &w, &err), 0);
        for (int i = 0; i < N; i++) ck_assert_int_eq(atomic_load(&w.runs[i]), 1);
    }
    wk_err err = {0};
    ck_assert_int_eq(wk_parallel_for(0, 0, count, NULL, &err), 0); /* nothing to do: job never called */
}
END_TEST

START_TEST(the_first_failure_stops_the_loop) {
    static work w;
    memset(&w, 0, sizeof w);
    w.fail_at = 10;
    wk_err err = {0};
    ck_assert_int_eq(wk_parallel_for(N, 1, count, &w, &err), WK_EFORMAT); /* one thread: in order */
    ck_assert_str_eq(err.msg, "item 10 is bad");
    ck_assert_int_eq(atomic_load(&w.total), 11);
    memset(&w, 0, sizeof w);
    w.fail_at = 0;
    ck_assert_int_eq(wk_parallel_for(N, 4, count, &w, NULL), WK_EFORMAT); /* err may be NULL */
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("parallel");
    TCase *tc = tcase_create("loop");
    tcase_add_test(tc, every_index_runs_once);
    tcase_add_test(tc, the_first_failure_stops_the_loop);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return wk_test_run(suite()); }
