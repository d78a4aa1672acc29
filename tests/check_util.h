/* Shared helpers for the Check suites: run one suite, find files relative to the source tree. */
#ifndef WIKV_TESTS_CHECK_UTIL_H
#define WIKV_TESTS_CHECK_UTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline int wk_test_run(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Path of the read-only public traces beside the project, or NULL when absent (a user's clone). */
static inline const char *wk_test_shared_traces(void) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/../shared/traces-public", WIKV_SOURCE_DIR);
    return access(path, R_OK) == 0 ? path : NULL;
}

#endif
