/* `wikv score PRED.jsonl`: scores predictions the way LongBench's eval.py does (per dataset: mean over
 * samples of the max over gold answers, x 100, two decimals), optionally per length bucket as
 * LongBench-E does (length < 4000, 4000-8000, >= 8000). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "exec/longbench.h"
#include "exec/metrics.h"

static const char *SCORE_USAGE =
    "usage: wikv score PRED.jsonl... [--metric auto|qa_f1|rouge|em|classification|retrieval|count|\n"
    "                  contains|contains_all] [--buckets]\n"
    "Each line: {\"pred\": ..., \"answers\": [...], \"dataset\" or \"task\": ..., \"all_classes\": [...],\n"
    "\"length\": N}; without dataset/task the file name is the dataset (hotpotqa.jsonl), as\n"
    "LongBench's pred.py writes them. auto takes the metric LongBench's eval.py uses for the dataset (the synthetic tasks:\n"
    "contains, vartrack: contains_all). Prints per dataset: metric, samples, 100 * mean score;\n"
    "--buckets adds LongBench-E's 0-4k, 4-8k, 8k+ columns by the `length` field.\n";

typedef struct {
    char name[128];
    wk_metric metric;
    size_t n, bn[3];
    double total, btotal[3];
} score_group;

typedef struct {
    score_group *g;
    size_t n, cap;
} group_list;

static score_group *group_for(group_list *l, const char *name) {
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->g[i].name, name)) return &l->g[i];
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        score_group *p = realloc(l->g, cap * sizeof *p);
        if (!p) return NULL;
        l->g = p;
        l->cap = cap;
    }
    score_group *g = &l->g[l->n++];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    return g;
}

/* Scores every line of one file into the groups; returns an exit status. */
static int score_file(const char *path, int auto_metric, wk_metric forced, int buckets, group_list *groups) {
    wk_lb_set set;
    wk_err err = {0};
    if (wk_longbench_load(path, WK_LB_NEED_PRED | WK_LB_NEED_ANSWERS, &set, &err)) {
        fprintf(stderr, "wikv score: %s\n", err.msg);
        return wk_err_exit_status(&err);
    }
    char file_dataset[128];
    const char *base = strrchr(path, '/');
    snprintf(file_dataset, sizeof file_dataset, "%s", base ? base + 1 : path);
    char *dot = strstr(file_dataset, ".jsonl");
    if (dot) *dot = '\0';
    int status = 0;
    for (size_t i = 0; i < set.count && !status; i++) {
        const wk_lb_item *it = &set.items[i];
        /* LongBench's pred.py writes no dataset field: eval.py takes it from the file name */
        const char *name = it->dataset ? it->dataset : file_dataset;
        if (buckets && it->length < 0) {
            fprintf(stderr, "wikv score: %s:%zu: field 'length': missing (needed by --buckets)\n", path, it->line);
            status = 2;
            break;
        }
        score_group *g = group_for(groups, name);
        if (!g) {
            fprintf(stderr, "wikv score: out of memory\n");
            status = 1;
            break;
        }
        if (g->n == 0) {
            g->metric = forced;
            if (auto_metric && wk_metric_for_dataset(name, &g->metric, &err)) {
                fprintf(stderr, "wikv score: %s:%zu: %s\n", path, it->line, err.msg);
                status = 2;
                break;
            }
        }
        double s;
        if (wk_metric_score_sample(g->metric, name, it->pred, (const char *const *)it->answers, it->n_answers,
                                   (const char *const *)it->all_classes, it->n_classes, &s, &err)) {
            fprintf(stderr, "wikv score: %s:%zu: %s\n", path, it->line, err.msg);
            status = wk_err_exit_status(&err);
            break;
        }
        g->n++;
        g->total += s;
        int b = it->length < 4000 ? 0 : it->length < 8000 ? 1 : 2;
        if (it->length >= 0) {
            g->bn[b]++;
            g->btotal[b] += s;
        }
    }
    wk_longbench_free(&set);
    return status;
}

static void print_table(const group_list *groups, int buckets) {
    printf("%-24s %-14s %7s %8s", "dataset", "metric", "samples", "score");
    if (buckets) printf(" %8s %8s %8s", "0-4k", "4-8k", "8k+");
    printf("\n");
    for (size_t i = 0; i < groups->n; i++) {
        const score_group *g = &groups->g[i];
        printf("%-24s %-14s %7zu %8.2f", g->name, wk_metric_name(g->metric), g->n, 100.0 * g->total / (double)g->n);
        for (int b = 0; buckets && b < 3; b++) {
            if (g->bn[b]) printf(" %8.2f", 100.0 * g->btotal[b] / (double)g->bn[b]);
            else printf(" %8s", "-");
        }
        printf("\n");
    }
}

int wk_cmd_score(int argc, char **argv) {
    const char *metric = "auto";
    int buckets = 0;
    static const struct option opts[] = {{"metric", required_argument, 0, 'm'}, {"buckets", no_argument, 0, 'b'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "m:bh", opts, NULL)) != -1) {
        if (c == 'm') metric = optarg;
        else if (c == 'b') buckets = 1;
        else {
            fputs(SCORE_USAGE, c == 'h' ? stdout : stderr);
            return c == 'h' ? 0 : 2;
        }
    }
    if (optind >= argc) {
        fputs(SCORE_USAGE, stderr);
        return 2;
    }
    int auto_metric = strcmp(metric, "auto") == 0;
    wk_metric forced = WK_METRIC_QA_F1;
    wk_err err = {0};
    if (!auto_metric && wk_metric_parse(metric, &forced, &err)) {
        fprintf(stderr, "wikv score: %s\n", err.msg);
        return 2;
    }
    group_list groups = {0};
    int status = 0;
    for (int i = optind; i < argc && !status; i++) status = score_file(argv[i], auto_metric, forced, buckets, &groups);
    if (!status) {
        if (groups.n == 0) {
            fprintf(stderr, "wikv score: no predictions\n");
            status = 2;
        } else print_table(&groups, buckets);
    }
    free(groups.g);
    return status;
}
