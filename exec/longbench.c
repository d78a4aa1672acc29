/* LongBench jsonl reader (one object per line, fields checked with FILE:LINE errors) and its prompt
 * templates, copied byte for byte from LongBench/config/dataset2prompt.json @ 2e00731f8d0b. */
#include "exec/longbench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "exec/tasks.h"

/* ---- reader ------------------------------------------------------------------------------------ */

static int lb_fail(wk_err *err, const char *what, size_t line, const char *field, const char *msg) {
    return wk_err_set(err, WK_EFORMAT, "%s:%zu: field '%s': %s", what, line, field, msg);
}

static char *dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* A string field: absent -> *out stays NULL (error when required); NUL inside is rejected because
 * every consumer treats the text as a C string. */
static int get_str(const wk_json *obj, const char *key, int required, char **out, const char *what, size_t line,
                   wk_err *err) {
    const wk_json *v = wk_json_get(obj, key);
    if (!v) return required ? lb_fail(err, what, line, key, "missing") : 0;
    if (v->type != WK_JSON_STRING) return lb_fail(err, what, line, key, "expected a string");
    if (strlen(v->string) != v->string_len) return lb_fail(err, what, line, key, "contains a NUL character");
    *out = dup_n(v->string, v->string_len);
    return *out ? 0 : wk_err_set(err, WK_ENOMEM, "%s:%zu: out of memory", what, line);
}

/* A list of strings; null counts as absent (all_classes is null outside classification). */
static int get_str_list(const wk_json *obj, const char *key, int required, char ***out, size_t *n, const char *what,
                        size_t line, wk_err *err) {
    const wk_json *v = wk_json_get(obj, key);
    if (!v || v->type == WK_JSON_NULL) return required ? lb_fail(err, what, line, key, "missing") : 0;
    if (v->type != WK_JSON_ARRAY) return lb_fail(err, what, line, key, "expected an array of strings");
    if (required && v->count == 0) return lb_fail(err, what, line, key, "empty list");
    *out = calloc(v->count ? v->count : 1, sizeof **out);
    if (!*out) return wk_err_set(err, WK_ENOMEM, "%s:%zu: out of memory", what, line);
    for (size_t i = 0; i < v->count; i++) {
        const wk_json *s = &v->items[i];
        if (s->type != WK_JSON_STRING || strlen(s->string) != s->string_len) {
            char msg[96];
            snprintf(msg, sizeof msg, "element %zu is not a string (or contains NUL)", i);
            return lb_fail(err, what, line, key, msg);
        }
        (*out)[i] = dup_n(s->string, s->string_len);
        if (!(*out)[i]) return wk_err_set(err, WK_ENOMEM, "%s:%zu: out of memory", what, line);
        *n = i + 1;
    }
    return 0;
}

static void item_free(wk_lb_item *it) {
    free(it->dataset); free(it->id); free(it->context); free(it->input); free(it->pred);
    for (size_t i = 0; i < it->n_answers; i++) free(it->answers[i]);
    free(it->answers);
    for (size_t i = 0; i < it->n_classes; i++) free(it->all_classes[i]);
    free(it->all_classes);
    memset(it, 0, sizeof *it);
}

static int parse_item(const wk_json *o, unsigned need, const char *what, size_t line, wk_lb_item *it, wk_err *err) {
    memset(it, 0, sizeof *it);
    it->line = line;
    it->length = -1;
    if (o->type != WK_JSON_OBJECT) return wk_err_set(err, WK_EFORMAT, "%s:%zu: expected a JSON object", what, line);
    int rc = get_str(o, "context", (need & WK_LB_NEED_CONTEXT) != 0, &it->context, what, line, err);
    if (!rc) rc = get_str(o, "input", (need & WK_LB_NEED_CONTEXT) != 0, &it->input, what, line, err);
    if (!rc) rc = get_str(o, "pred", (need & WK_LB_NEED_PRED) != 0, &it->pred, what, line, err);
    if (!rc) rc = get_str(o, "_id", 0, &it->id, what, line, err);
    if (!rc) rc = get_str(o, "dataset", 0, &it->dataset, what, line, err);
    if (!rc && !it->dataset) rc = get_str(o, "task", 0, &it->dataset, what, line, err);
    if (!rc)
        rc = get_str_list(o, "answers", (need & WK_LB_NEED_ANSWERS) != 0, &it->answers, &it->n_answers, what, line,
                          err);
    if (!rc) rc = get_str_list(o, "all_classes", 0, &it->all_classes, &it->n_classes, what, line, err);
    const wk_json *len = wk_json_get(o, "length");
    if (!rc && len && len->type != WK_JSON_NULL) {
        if (len->type != WK_JSON_NUMBER || len->number < 0 || len->number > 1e15 ||
            len->number != (double)(long long)len->number)
            rc = lb_fail(err, what, line, "length", "expected a non-negative integer");
        else it->length = (long long)len->number;
    }
    if (rc) item_free(it);
    return rc;
}

int wk_longbench_parse(const char *text, size_t len, const char *what, unsigned need, wk_lb_set *out, wk_err *err) {
    memset(out, 0, sizeof *out);
    size_t cap = 0, line = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        line++;
        size_t a = pos, b = end;
        while (a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r')) b--;
        pos = end + 1;
        if (a == b) continue; /* blank line */
        char where[600];
        snprintf(where, sizeof where, "%s:%zu", what, line);
        wk_json doc;
        int rc = wk_json_parse(text + a, b - a, where, &doc, err);
        if (rc) { wk_longbench_free(out); return rc; }
        if (out->count == cap) {
            cap = cap ? cap * 2 : 16;
            wk_lb_item *p = realloc(out->items, cap * sizeof *p);
            if (!p) {
                wk_json_free(&doc);
                wk_longbench_free(out);
                return wk_err_set(err, WK_ENOMEM, "%s: out of memory", where);
            }
            out->items = p;
        }
        rc = parse_item(&doc, need, what, line, &out->items[out->count], err);
        wk_json_free(&doc);
        if (rc) { wk_longbench_free(out); return rc; }
        out->count++;
    }
    return 0;
}

int wk_longbench_load(const char *path, unsigned need, wk_lb_set *out, wk_err *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return wk_err_set(err, WK_EIO, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0, got;
    int rc = 0;
    do {
        if (cap - len < 65536) {
            cap = cap ? cap * 2 : 1 << 20;
            char *p = realloc(buf, cap);
            if (!p) { rc = wk_err_set(err, WK_ENOMEM, "%s: out of memory", path); break; }
            buf = p;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
    } while (got > 0);
    if (!rc && ferror(f)) rc = wk_err_set(err, WK_EIO, "%s: read error", path);
    fclose(f);
    if (!rc) rc = wk_longbench_parse(buf, len, path, need, out, err);
    free(buf);
    return rc;
}

void wk_longbench_free(wk_lb_set *set) {
    if (!set) return;
    for (size_t i = 0; i < set->count; i++) item_free(&set->items[i]);
    free(set->items);
    memset(set, 0, sizeof *set);
}

/* ---- prompt templates -------------------------------------------------------------------------- */

#define QA_PASSAGES                                                                                            \
    "Answer the question based on the given passages. Only give me the answer and do not output any other "  \
    "words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given "       \
    "passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:"

static const struct {
    const char *dataset, *prompt;
} TEMPLATES[] = {
    {"narrativeqa",
     "You are given a story, which can be either a novel or a movie script, and a question. Answer the question "
     "asconcisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nStory: "
     "{context}\n\nNow, answer the question based on the story asconcisely as you can, using a single phrase if "
     "possible. Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:"},
    {"qasper",
     "You are given a scientific article and a question. Answer the question as concisely as you can, using a "
     "single phrase or sentence if possible. If the question cannot be answered based on the information in the "
     "article, write \"unanswerable\". If the question is a yes/no question, answer \"yes\", \"no\", or "
     "\"unanswerable\". Do not provide any explanation.\n\nArticle: {context}\n\n Answer the question based on "
     "the above article as concisely as you can, using a single phrase or sentence if possible. If the question "
     "cannot be answered based on the information in the article, write \"unanswerable\". If the question is a "
     "yes/no question, answer \"yes\", \"no\", or \"unanswerable\". Do not provide any explanation.\n\nQuestion: "
     "{input}\n\nAnswer:"},
    {"multifieldqa_en",
     "Read the following text and answer briefly.\n\n{context}\n\nNow, answer the following question based on "
     "the above text, only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:"},
    {"hotpotqa", QA_PASSAGES},
    {"2wikimqa", QA_PASSAGES},
    {"musique", QA_PASSAGES},
    {"gov_report",
     "You are given a report by a government agency. Write a one-page summary of the report.\n\nReport:\n"
     "{context}\n\nNow, write a one-page summary of the report.\n\nSummary:"},
    {"qmsum",
     "You are given a meeting transcript and a query containing a question or instruction. Answer the query in "
     "one or more sentences.\n\nTranscript:\n{context}\n\nNow, answer the query based on the above meeting "
     "transcript in one or more sentences.\n\nQuery: {input}\nAnswer:"},
    {"multi_news",
     "You are given several news passages. Write a one-page summary of all news. \n\nNews:\n{context}\n\nNow, "
     "write a one-page summary of all the news.\n\nSummary:"},
    {"triviaqa",
     "Answer the question based on the given passage. Only give me the answer and do not output any other words. "
     "The following are some examples.\n\n{context}\n\n{input}"},
    {"trec",
     "Please determine the type of the question below. Here are some examples of questions.\n\n{context}\n{input}"},
    {"samsum",
     "Summarize the dialogue into a few short sentences. The following are some examples.\n\n{context}\n\n{input}"},
    {"passage_count",
     "There are some paragraphs below sourced from Wikipedia. Some of them may be duplicates. Please carefully "
     "read these paragraphs and determine how many unique paragraphs there are after removing duplicates. In "
     "other words, how many non-repeating paragraphs are there in total?\n\n{context}\n\nPlease enter the final "
     "count of unique paragraphs after removing duplicates. The output format should only contain the number, "
     "such as 1, 2, 3, and so on.\n\nThe final answer is: "},
    {"passage_retrieval_en",
     "Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine which paragraph the "
     "abstract is from.\n\n{context}\n\nThe following is an abstract.\n\n{input}\n\nPlease enter the number of "
     "the paragraph that the abstract is from. The answer format must be like \"Paragraph 1\", \"Paragraph 2\", "
     "etc.\n\nThe answer is: "},
    {"lcc", "Please complete the code given below. \n{context}Next line of code:\n"},
    {"repobench-p", "Please complete the code given below. \n{context}{input}Next line of code:\n"},
    {"passkey", WK_TASK_PROMPT},
    {"multikey", WK_TASK_PROMPT},
    {"topic", WK_TASK_PROMPT},
    {"vartrack", WK_TASK_PROMPT},
};

const char *wk_longbench_template(const char *dataset) {
    if (!dataset) return NULL;
    size_t n = strlen(dataset);
    if (n > 2 && !strcmp(dataset + n - 2, "_e")) n -= 2; /* LongBench-E: pred.py strips "_e" */
    for (size_t i = 0; i < sizeof TEMPLATES / sizeof TEMPLATES[0]; i++)
        if (strlen(TEMPLATES[i].dataset) == n && !strncmp(dataset, TEMPLATES[i].dataset, n)) return TEMPLATES[i].prompt;
    return NULL;
}

int wk_longbench_format(const char *tmpl, const char *context, const char *input, char **out, wk_err *err) {
    *out = NULL;
    size_t lc = context ? strlen(context) : 0, li = input ? strlen(input) : 0, n = 0;
    /* first pass sizes, second pass writes: the same walk */
    for (int pass = 0; pass < 2; pass++) {
        char *dst = pass ? *out : NULL;
        n = 0;
        for (const char *p = tmpl; *p;) {
            const char *src = p;
            size_t k = 1;
            if (*p == '{' && p[1] == '{') { p += 2; }
            else if (*p == '}' && p[1] == '}') { src = "}"; p += 2; }
            else if (!strncmp(p, "{context}", 9)) {
                if (!context) { free(*out); *out = NULL; return wk_err_set(err, WK_EINVAL, "prompt: template needs {context}"); }
                src = context; k = lc; p += 9;
            } else if (!strncmp(p, "{input}", 7)) {
                if (!input) { free(*out); *out = NULL; return wk_err_set(err, WK_EINVAL, "prompt: template needs {input}"); }
                src = input; k = li; p += 7;
            } else if (*p == '{' || *p == '}') {
                free(*out);
                *out = NULL;
                return wk_err_set(err, WK_EINVAL, "prompt: template offset %zu: unknown field or single '%c'",
                                  (size_t)(p - tmpl), *p);
            } else p++;
            if (dst) memcpy(dst + n, src, k);
            n += k;
        }
        if (!pass) {
            *out = malloc(n + 1);
            if (!*out) return wk_err_set(err, WK_ENOMEM, "prompt: out of memory");
        }
    }
    (*out)[n] = '\0';
    return 0;
}
