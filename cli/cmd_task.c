/* `wikv task gen`: writes synthetic long-context task items (exec/tasks.h) as LongBench-style jsonl. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "exec/tasks.h"

static const char *TASK_USAGE =
    "usage: wikv task gen --task passkey|multikey|topic|vartrack|mix --context N --seed S --n K\n"
    "                     [--format jsonl] [-o OUT]\n"
    "Writes K items with seeds S..S+K-1, one JSON line each: task, dataset, seed, target_tokens,\n"
    "context, input, answers, length (words). N is the context length in approximate tokens\n"
    "(4 characters per token). mix takes the tasks in turn by seed modulo 4.\n"
    "Seed convention: training data uses seeds >= 1000000, tests and evaluation seeds below.\n";

static int parse_u64(const char *s, unsigned long long *out) {
    if (!s || !*s || *s == '-') return -1;
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return (errno || *end) ? -1 : 0;
}

static int task_gen(int argc, char **argv) {
    const char *task = NULL, *format = "jsonl", *outpath = NULL;
    unsigned long long ctx = 0, seed = 0, n = 1;
    int have_ctx = 0, have_seed = 0;
    static const struct option opts[] = {{"task", required_argument, 0, 't'},   {"context", required_argument, 0, 'c'},
                                         {"seed", required_argument, 0, 's'},   {"n", required_argument, 0, 'n'},
                                         {"format", required_argument, 0, 'f'}, {"output", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "t:c:s:n:f:o:h", opts, NULL)) != -1) {
        int bad = 0;
        if (c == 't') task = optarg;
        else if (c == 'c') bad = parse_u64(optarg, &ctx), have_ctx = 1;
        else if (c == 's') bad = parse_u64(optarg, &seed), have_seed = 1;
        else if (c == 'n') bad = parse_u64(optarg, &n);
        else if (c == 'f') format = optarg;
        else if (c == 'o') outpath = optarg;
        else {
            fputs(TASK_USAGE, c == 'h' ? stdout : stderr);
            return c == 'h' ? 0 : 2;
        }
        if (bad) {
            fprintf(stderr, "wikv task gen: bad number '%s' for --%s\n", optarg,
                    c == 'c' ? "context" : c == 's' ? "seed" : "n");
            return 2;
        }
    }
    if (!task || !have_ctx || !have_seed || optind != argc) {
        fputs(TASK_USAGE, stderr);
        return 2;
    }
    if (strcmp(format, "jsonl") != 0) {
        fprintf(stderr, "wikv task gen: unknown --format '%s' (only jsonl)\n", format);
        return 2;
    }
    int mix = strcmp(task, "mix") == 0;
    wk_task_kind kind = WK_TASK_PASSKEY;
    wk_err err = {0};
    if (!mix && wk_task_kind_parse(task, &kind, &err)) {
        fprintf(stderr, "wikv task gen: %s\n", err.msg);
        return 2;
    }
    if (ctx < WK_TASK_MIN_TOKENS || ctx > WK_TASK_MAX_TOKENS) {
        fprintf(stderr, "wikv task gen: --context %llu out of range [%d, %d]\n", ctx, WK_TASK_MIN_TOKENS,
                WK_TASK_MAX_TOKENS);
        return 2;
    }
    if (n > 1000000 || seed > UINT64_MAX - n) {
        fprintf(stderr, "wikv task gen: --n %llu too large for --seed %llu\n", n, seed);
        return 2;
    }
    FILE *out = outpath ? fopen(outpath, "w") : stdout;
    if (!out) {
        fprintf(stderr, "wikv task gen: %s: %s\n", outpath, strerror(errno));
        return 1;
    }
    int status = 0;
    for (unsigned long long i = 0; i < n && !status; i++) {
        uint64_t s = seed + i;
        wk_task_item it;
        if (wk_task_generate(mix ? wk_task_mix_kind(s) : kind, s, (size_t)ctx, &it, &err) ||
            wk_task_write_jsonl(&it, out, &err)) {
            fprintf(stderr, "wikv task gen: %s\n", err.msg);
            status = wk_err_exit_status(&err);
        }
        wk_task_item_free(&it);
    }
    if (outpath && fclose(out) != 0 && !status) {
        fprintf(stderr, "wikv task gen: %s: %s\n", outpath, strerror(errno));
        status = 1;
    }
    return status;
}

int wk_cmd_task(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "gen") == 0) return task_gen(argc - 1, argv + 1);
    int help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    fputs(TASK_USAGE, help ? stdout : stderr);
    return help ? 0 : 2;
}
