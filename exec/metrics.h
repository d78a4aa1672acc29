/* Answer-quality metrics: LongBench v1's per-sample scores, ported to give the same numbers as its
 * eval.py (THUDM/LongBench @ 2e00731f8d0b, see KV-ALGORITHMS.md 5.4-5.7), plus the scores of the
 * synthetic tasks (exec/tasks.h). All scores are in [0, 1]; datasets report 100 * mean.
 *
 *   qa_f1     SQuAD token F1 after normalize_answer (lower, drop ASCII punctuation, drop the words
 *             a/an/the, collapse whitespace); multiset token overlap.
 *   rouge     ROUGE-L F of pip `rouge` 1.0.1 (what LongBench calls): sentences split on '.' only,
 *             words split on ' ', distinct-word sets, union of one backtracked LCS per sentence pair,
 *             F = 2PR/(P+R+1e-8). Any Python exception there scores 0.0, including the
 *             RecursionError of its recursive LCS backtrack: a path longer than
 *             WK_ROUGE_MAX_BACKTRACK steps scores 0.0 (measured with Python 3.11 under eval.py).
 *   em        exact match of normalize_answer strings (not a LongBench metric; SQuAD's).
 *   classification, retrieval, count   LongBench's trec/lsht, passage_retrieval_en, passage_count.
 *   contains  the normalised answer occurs in the normalised prediction on token boundaries
 *             (passkey, multikey, topic).
 *   contains_all   fraction of the answers that each occur as for contains (vartrack, as RULER's
 *             string_match_all): answers are all required, not alternatives.
 *
 * Unicode: normalisation follows Python's str.lower/str.split/re \b on the common ranges (ASCII,
 * Latin-1, Latin Extended-A, Greek, Cyrillic; Unicode whitespace; general punctuation and symbols
 * are non-word characters). Rare scripts may differ from Python in case folding. \d is ASCII. */
#ifndef WIKV_EXEC_METRICS_H
#define WIKV_EXEC_METRICS_H

#include <stddef.h>

#include "core/err.h"

#define WK_ROUGE_MAX_BACKTRACK 990

typedef enum {
    WK_METRIC_QA_F1,
    WK_METRIC_ROUGE_L,
    WK_METRIC_EM,
    WK_METRIC_CLASSIFICATION,
    WK_METRIC_RETRIEVAL,
    WK_METRIC_COUNT,
    WK_METRIC_CONTAINS,
    WK_METRIC_CONTAINS_ALL,
    WK_METRIC_KINDS
} wk_metric;

/* Names as above ("qa_f1", "rouge", "em", ...); WK_EINVAL for an unknown name. */
int wk_metric_parse(const char *name, wk_metric *out, wk_err *err);
const char *wk_metric_name(wk_metric m);

/* The metric LongBench's eval.py uses for a dataset (and the synthetic tasks' metrics).
 * WK_EUNSUPPORTED for Chinese and code datasets (rouge_zh, qa_f1_zh, code_sim need jieba/fuzzywuzzy),
 * WK_ENOTFOUND for unknown names. */
int wk_metric_for_dataset(const char *dataset, wk_metric *out, wk_err *err);
/* 1 for the datasets whose prediction is cut to its first line (trec, triviaqa, samsum, lsht). */
int wk_metric_first_line_only(const char *dataset);

/* normalize_answer(s) as a new string (caller frees). */
int wk_metric_normalize_answer(const char *s, char **out, wk_err *err);

/* One prediction against one gold string. classes[n_classes] only for classification. */
int wk_metric_score(wk_metric m, const char *pred, const char *gold, const char *const *classes, size_t n_classes,
                    double *out, wk_err *err);

/* One sample as eval.py scores it: first-line cut where the dataset asks for it (dataset may be
 * NULL), then the max over gold answers; for contains_all the fraction of answers found. */
int wk_metric_score_sample(wk_metric m, const char *dataset, const char *pred, const char *const *answers,
                           size_t n_answers, const char *const *classes, size_t n_classes, double *out, wk_err *err);

#endif
