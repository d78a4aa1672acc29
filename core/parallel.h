/* A parallel loop over [0, n) on the machine's cores: for work that is many independent, similar items
 * (encoding units, generating layers of a tensor). */
#ifndef WIKV_CORE_PARALLEL_H
#define WIKV_CORE_PARALLEL_H

#include "core/err.h"

/* Runs job(ctx, i, err) for every i in [0, n) on up to max_threads threads (<= 0: one per core; at most
 * 64), each taking the next i; after the first failure no more items are handed out. Returns 0, or
 * that failure's code with err (may be NULL) filled. */
int wk_parallel_for(int n, int max_threads, int (*job)(void *ctx, int i, wk_err *err), void *ctx, wk_err *err);

#endif
