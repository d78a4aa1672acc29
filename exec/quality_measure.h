/* Measured quality tables (sim/quality.h) from the real engine: for each policy family, the answer's F1
 * relative to full-KV decoding and the confidence test's pass rate, as functions of the importance
 * coverage of the KV present at the first decode step.
 *
 * Per task item (task prompt at the context, seeds 1..n, as exec/stream.h makes them): one prefill gives
 * the context's KV and its importance (the engine's attention export, wk_stream_prefill_kv). The cache is
 * then filled the way each family leaves it when it answers, and the answer decoded greedily from there
 * (the last prompt token recomputed first, as exec's EMIT does):
 *   full       every vector in fp16 (the reference: coverage 1, f1_rel 1 by definition);
 *   wikv       the vectors in the policy's stream order (kv/semantic.h: importance suffix-summed over
 *              layers, descending) until their raw importance reaches the coverage target, each decoded
 *              from the semantic codec at level 0 (what arrives first: refinements follow only after
 *              every vector's level 0);
 *   h2o        per (layer, KV head) the recent window plus the top tokens by importance (kv/evict.h,
 *              the mean attention as its score), budgets from 1/32 of the tokens to all of them;
 *   kivi2/4    every vector through the KIVI codec (kv/kivi.h, group 32, 128 fp16 recent tokens).
 * "default" (the family the simulator uses for any other policy) is a copy of the wikv curve.
 * Coverage = importance of the vectors present / importance of all (importance = the attention export,
 * before the suffix sum). accept = share of items whose first step passes the confidence test
 * (exec/stream.h, fitted per task on full-KV steps of training-seed items, k = 3); f1_rel = mean F1 over
 * the items / mean full-KV F1 (must be > 0). Rows of one family are sorted by coverage, and sim rows
 * interpolate between them. */
#ifndef WIKV_EXEC_QUALITY_MEASURE_H
#define WIKV_EXEC_QUALITY_MEASURE_H

#include <stdio.h>

#include "core/err.h"
#include "exec/tasks.h"
#include "sim/quality.h"

#define WK_QM_MAX_TASKS 4

typedef struct wk_qm_opts {
    const char *model_dir;
    wk_task_kind tasks[WK_QM_MAX_TASKS];
    int n_tasks;
    int context;        /* context tokens (exec/tasks.h) */
    int n;              /* items per task: seeds 1..n */
    int output_tokens;  /* answer tokens decoded per item (default 12) */
} wk_qm_opts;

typedef struct wk_qm_result {
    wk_quality_table table;
    double full_f1;          /* mean F1 of full-KV decoding over all items */
    double full_accept;      /* share of items whose full-KV first step passes the confidence test */
    int items;
} wk_qm_result;

/* Runs the measurement; progress lines to `log` (may be NULL). */
int wk_quality_measure(const wk_qm_opts *o, FILE *log, wk_qm_result *out, wk_err *err);

#endif
