/* LongBench (v1) jsonl files and prompt templates.
 *
 * Reader: one JSON object per line with LongBench's fields (context, input, answers, length,
 * dataset, all_classes, _id) and, for prediction files, "pred" (and "task" as a synonym of
 * "dataset", as `wikv task gen` writes both). Which fields are required is chosen by the caller.
 * Blank lines are skipped. Errors name FILE:LINE and the field at fault.
 *
 * Templates: LongBench/config/dataset2prompt.json @ 2e00731f8d0b for the English datasets,
 * byte-exact (including the original "asconcisely"), filled as Python's str.format fills {context}
 * and {input}; plus WK_TASK_PROMPT for the synthetic tasks. */
#ifndef WIKV_EXEC_LONGBENCH_H
#define WIKV_EXEC_LONGBENCH_H

#include <stddef.h>

#include "core/err.h"

enum {
    WK_LB_NEED_CONTEXT = 1, /* context and input must be present (a data file) */
    WK_LB_NEED_PRED = 2,    /* pred must be present (a predictions file) */
    WK_LB_NEED_ANSWERS = 4
};

typedef struct wk_lb_item {
    size_t line;         /* 1-based line in the file */
    char *dataset;       /* "dataset", else "task", else NULL */
    char *id;            /* "_id" or NULL */
    char *context;       /* NULL when absent */
    char *input;         /* NULL when absent */
    char *pred;          /* NULL when absent */
    char **answers;      /* [n_answers] */
    size_t n_answers;
    char **all_classes;  /* [n_classes]; all_classes null or absent: 0 */
    size_t n_classes;
    long long length;    /* -1 when absent */
} wk_lb_item;

typedef struct wk_lb_set {
    wk_lb_item *items;   /* [count] */
    size_t count;
} wk_lb_set;

/* Parses text[0..len); `what` names the file in errors ("FILE:LINE: field 'answers': ..."). */
int wk_longbench_parse(const char *text, size_t len, const char *what, unsigned need, wk_lb_set *out, wk_err *err);
int wk_longbench_load(const char *path, unsigned need, wk_lb_set *out, wk_err *err);
void wk_longbench_free(wk_lb_set *set);

/* dataset2prompt[dataset], or NULL when the dataset is not among the templates held here
 * (narrativeqa, qasper, multifieldqa_en, hotpotqa, 2wikimqa, musique, gov_report, qmsum, multi_news,
 * triviaqa, trec, samsum, passage_count, passage_retrieval_en, lcc, repobench-p, and the synthetic
 * tasks passkey, multikey, topic, vartrack). LongBench-E names ("hotpotqa_e") use the base template. */
const char *wk_longbench_template(const char *dataset);

/* template.format(context=..., input=...): {context} and {input} are replaced, {{ and }} become
 * { and }; any other field or a lone brace is an error, as in Python. *out is malloc'd. */
int wk_longbench_format(const char *tmpl, const char *context, const char *input, char **out, wk_err *err);

#endif
