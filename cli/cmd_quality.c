/* `wikv quality measure`: a measured quality table from the real engine (exec/quality_measure.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "exec/quality_measure.h"
#include "models/model_spec.h"

static const char *usage =
    "usage: wikv quality measure --out FILE [options]\n"
    "Measures, with the CPU engine, the answer's F1 relative to full-KV decoding and the confidence test's\n"
    "pass rate as functions of the importance coverage of the KV present, per policy family (full, wikv,\n"
    "h2o, kivi2, kivi4; default = wikv), and writes a `source=measured` quality table for `wikv sim --quality`.\n"
    "  --model DIR       HF model folder (default models/fixtures/tiny-llama-tasks)\n"
    "  --tasks LIST      comma-separated tasks (default passkey,topic)\n"
    "  --context N       context tokens (default 1024)\n"
    "  --n K             items per task, seeds 1..K (default 8)\n"
    "  --out-tokens N    answer tokens decoded per item (default 12)\n"
    "  --out FILE        the table\n";

static int parse_tasks(const char *csv, wk_qm_opts *o, wk_err *err) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", csv);
    o->n_tasks = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->n_tasks == WK_QM_MAX_TASKS) return wk_err_set(err, WK_EINVAL, "--tasks: at most %d", WK_QM_MAX_TASKS);
        int rc = wk_task_kind_parse(t, &o->tasks[o->n_tasks++], err);
        if (rc) return rc;
    }
    return o->n_tasks ? 0 : wk_err_set(err, WK_EINVAL, "--tasks: empty");
}

int wk_cmd_quality(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "measure") != 0) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            fputs(usage, stdout);
            return 0;
        }
        fputs(usage, stderr);
        return 2;
    }
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"tasks", required_argument, 0, 't'}, {"context", required_argument, 0, 'c'},
        {"n", required_argument, 0, 'n'},     {"out-tokens", required_argument, 0, 'k'},
        {"out", required_argument, 0, 'o'},   {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    char model_dir[4096];
    wk_fixture_model_dir(model_dir, sizeof model_dir);
    wk_qm_opts o = {.model_dir = model_dir, .context = 1024, .n = 8, .output_tokens = 12};
    const char *tasks = "passkey,topic", *out = NULL;
    optind = 1;
    int c;
    while ((c = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model_dir = optarg; break;
        case 't': tasks = optarg; break;
        case 'c': o.context = atoi(optarg); break;
        case 'n': o.n = atoi(optarg); break;
        case 'k': o.output_tokens = atoi(optarg); break;
        case 'o': out = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    wk_err err = {0};
    if (optind != argc - 1 || !out || o.context < WK_TASK_MIN_TOKENS || o.n < 1 || o.output_tokens < 1 ||
        parse_tasks(tasks, &o, &err)) {
        if (err.msg[0]) fprintf(stderr, "wikv quality: %s\n", err.msg);
        fputs(usage, stderr);
        return 2;
    }
    wk_qm_result *r = malloc(sizeof *r);
    if (!r) return 1;
    int rc = wk_quality_measure(&o, stderr, r, &err);
    if (!rc) {
        char prov[8192];
        snprintf(prov, sizeof prov,
                 "measured by `wikv quality measure` (exec/quality_measure.h), wikv %s (commit %s)\n"
                 "model %s, tasks %s, context %d, %d items (seeds 1..%d per task), %d answer tokens\n"
                 "full-KV mean F1 %.4f, full-KV confidence pass rate %.4f (k = 3, fitted per task)\n"
                 "default = the wikv curve (the family the simulator uses for policies not listed)",
                 WIKV_VERSION_STRING, WIKV_GIT_COMMIT, o.model_dir, tasks, o.context, r->items, o.n, o.output_tokens,
                 r->full_f1, r->full_accept);
        rc = wk_quality_save(out, &r->table, prov, &err);
    }
    if (!rc) {
        printf("full-KV F1 %.4f, confidence pass rate %.4f over %d items\n", r->full_f1, r->full_accept, r->items);
        printf("family\tcoverage\taccept\tf1_rel\n");
        for (size_t i = 0; i < r->table.n; i++)
            printf("%s\t%.4f\t%.4f\t%.4f\n", r->table.rows[i].family, r->table.rows[i].coverage, r->table.rows[i].accept,
                   r->table.rows[i].f1_rel);
        printf("table written to %s\n", out);
    }
    free(r);
    if (rc) {
        fprintf(stderr, "wikv quality: %s\n", err.msg);
        return wk_err_exit_status(&err);
    }
    return 0;
}
