/* Synthetic long-context tasks: passkey retrieval, multi-key retrieval, first-topic recall and
 * variable tracking, generated deterministically from (task, seed, context length).
 *
 * Length: the context length is asked for in approximate tokens and realised as characters, at
 * WK_TASK_CHARS_PER_TOKEN (4) characters per token, the usual proxy for English BPE text. The
 * context is filled to the target with whole filler sentences, so it ends within one sentence
 * (under 120 characters) of 4*N characters, unless the task's fixed text alone is longer.
 *
 * Seeds: one item per seed. Training data uses seeds >= WK_TASK_TRAIN_SEED_MIN (1000000); tests and
 * evaluation use seeds below it, so that training and evaluation items never coincide.
 *
 * Filler: English-like sentences from fixed word lists and templates, drawn with an explicit
 * xoshiro256** generator (seeded through splitmix64) so that the output is the same on every
 * platform; no floating point decides anything. The phrasing of the task sentences is part of the
 * contract (a small model is trained on exactly these texts): change it only with a new version.
 *
 * Scoring (see exec/metrics.h): passkey, multikey and topic use "contains" (the answer occurs in
 * the prediction, case-insensitively after answer normalisation); vartrack uses "contains_all"
 * (the fraction of the chain's variable names that occur in the prediction), as RULER does. */
#ifndef WIKV_EXEC_TASKS_H
#define WIKV_EXEC_TASKS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "core/rng.h"

#define WK_TASK_CHARS_PER_TOKEN 4
#define WK_TASK_TRAIN_SEED_MIN 1000000ULL
#define WK_TASK_MIN_TOKENS 64
#define WK_TASK_MAX_TOKENS 2000000 /* 8 MB of text: larger is a unit mistake */


typedef enum { WK_TASK_PASSKEY, WK_TASK_MULTIKEY, WK_TASK_TOPIC, WK_TASK_VARTRACK, WK_TASK_KINDS } wk_task_kind;

typedef struct wk_task_item {
    wk_task_kind kind;
    uint64_t seed;
    size_t target_tokens;
    char *context;    /* the long text */
    char *input;      /* the question */
    char **answers;   /* [n_answers]: alternatives (contains) or all required (contains_all) */
    size_t n_answers;
    size_t length;    /* whitespace-separated words of context, as LongBench's `length` */
} wk_task_item;

const char *wk_task_name(wk_task_kind kind);
/* Parses passkey|multikey|topic|vartrack; returns WK_EINVAL for anything else (including "mix"). */
int wk_task_kind_parse(const char *name, wk_task_kind *out, wk_err *err);
/* The task that "mix" uses for a seed: the four tasks in turn by seed modulo 4. */
wk_task_kind wk_task_mix_kind(uint64_t seed);
/* Metric name of a task: "contains" or "contains_all". */
const char *wk_task_metric(wk_task_kind kind);

/* Generates one item. context_tokens in [WK_TASK_MIN_TOKENS, WK_TASK_MAX_TOKENS]. */
int wk_task_generate(wk_task_kind kind, uint64_t seed, size_t context_tokens, wk_task_item *out, wk_err *err);
void wk_task_item_free(wk_task_item *item);

/* Writes one JSON line {"task","dataset","seed","target_tokens","context","input","answers","length"}
 * ("dataset" repeats the task name so LongBench-style tools group by it). */
int wk_task_write_jsonl(const wk_task_item *item, FILE *out, wk_err *err);

/* The prompt the generated tasks are asked with: "{context}\n\nQuestion: {input}\nAnswer:". */
#define WK_TASK_PROMPT "{context}\n\nQuestion: {input}\nAnswer:"

#endif
