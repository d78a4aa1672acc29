/* Reporting for the GPU test programs (tests/gpu): one PASS/FAIL line per check, counted, and a fatal
 * setup error that names what failed. */
#ifndef WIKV_TESTS_GPU_GPU_CHECK_H
#define WIKV_TESTS_GPU_GPU_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "core/err.h"

typedef struct {
    int failures, checks;
} tally;

static inline void report(tally *t, int ok, const char *what, const char *detail) {
    t->checks++;
    if (!ok) t->failures++;
    printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", what, detail[0] ? ": " : "", detail);
    fflush(stdout);
}

static inline void die(const char *what, const wk_err *err) {
    fprintf(stderr, "FAIL %s: %s\n", what, err->msg);
    exit(1);
}

#endif
