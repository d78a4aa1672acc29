/* `wikv choose`: search policies and their parameters in the simulator over a trace set and write the
 * winner to choice.json (sim/choose.h), every evaluated configuration to a results database. */
#include <getopt.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/progress.h"
#include "sim/choose.h"
#include "sim/policy.h"

static const char *usage =
    "usage: wikv choose --traces GLOB --quality-min F1 [options]\n"
    "Searches policies and their parameters in the simulator (a grid per policy, then a pattern search\n"
    "around its best point) for the lowest TTFT whose predicted F1 reaches --quality-min.\n"
    "  --traces GLOB        trace files, a folder or a shell glob (quote it); repeatable\n"
    "  --quality-min F      predicted F1 relative to full KV to reach, in (0, 1.5] (required)\n"
    "  --model M            model (default llama-3.1-8b)\n"
    "  --device D           device profile (default jetson-agx-orin)\n"
    "  --context N          context tokens (default 8192)\n"
    "  --objective p50|p95  TTFT quantile to minimise (default p50)\n"
    "  --requests K         requests per trace, at offsets spread over the trace (default 5)\n"
    "  --holdout F          hold every round(1/F)-th trace (sorted by name) out of the search and report\n"
    "                       the winner on them (default 0: none)\n"
    "  --policy LIST        policies to search (default all); key=value pins a parameter, e.g.\n"
    "                       wikv:levels=1,ttft_deadline=0,prefill (text_bytes, a property of the\n"
    "                       text, and window, costly to simulate, stay at their defaults unless named)\n"
    "  --quality FILE       quality table (default the bundled, assumed one)\n"
    "  --grid-budget N      grid configurations per policy (default 32)\n"
    "  --max-refine N       pattern-search evaluations per policy (default 32)\n"
    "  --output-tokens N    tokens generated per request (default 1)\n"
    "  --delay-ms MS        one-way delay each direction (default 10)\n"
    "  -o FILE              choice file (default choice.json)\n"
    "  --db FILE            database of every evaluated request (default choose.db)\n"
    "  --no-progress        no progress bar\n";

enum { OPT_TRACES = 256, OPT_QMIN, OPT_MODEL, OPT_DEVICE, OPT_CONTEXT, OPT_OBJECTIVE, OPT_REQUESTS, OPT_HOLDOUT,
       OPT_POLICY, OPT_QUALITY, OPT_GRID, OPT_REFINE, OPT_OUTPUT_TOKENS, OPT_DELAY, OPT_DB, OPT_NO_PROGRESS };

static const struct option long_opts[] = {
    {"traces", required_argument, 0, OPT_TRACES},   {"quality-min", required_argument, 0, OPT_QMIN},
    {"model", required_argument, 0, OPT_MODEL},     {"device", required_argument, 0, OPT_DEVICE},
    {"context", required_argument, 0, OPT_CONTEXT}, {"objective", required_argument, 0, OPT_OBJECTIVE},
    {"requests", required_argument, 0, OPT_REQUESTS}, {"holdout", required_argument, 0, OPT_HOLDOUT},
    {"policy", required_argument, 0, OPT_POLICY},   {"quality", required_argument, 0, OPT_QUALITY},
    {"grid-budget", required_argument, 0, OPT_GRID}, {"max-refine", required_argument, 0, OPT_REFINE},
    {"output-tokens", required_argument, 0, OPT_OUTPUT_TOKENS}, {"delay-ms", required_argument, 0, OPT_DELAY},
    {"db", required_argument, 0, OPT_DB},           {"no-progress", no_argument, 0, OPT_NO_PROGRESS},
    {"help", no_argument, 0, 'h'},                  {0, 0, 0, 0}};

typedef struct {
    wk_choose_config cfg;
    wk_strlist traces, policies;
    const char *out_path, *db_path;
    double holdout;
    int have_qmin;
} choose_opts;

static int bad(const char *what, const char *val) {
    fprintf(stderr, "wikv choose: %s \"%s\"\n%s", what, val, usage);
    return 2;
}

static int parse_num(const char *s, double lo, double hi, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    double v;
    if (parse_num(s, lo, hi, &v) || v != (int)v) return -1;
    *out = (int)v;
    return 0;
}

/* Files a glob should not take for traces (READMEs, scripts, hidden files). */
static int skip_match(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *ext = strrchr(base, '.');
    static const char *const skip[] = {".md", ".sh", ".py", ".json", ".tsv", ".gz", ".png", ".pdf"};
    if (base[0] == '.') return 1;
    for (size_t i = 0; ext && i < sizeof skip / sizeof skip[0]; i++)
        if (strcmp(ext, skip[i]) == 0) return 1;
    return 0;
}

/* A glob pattern, a folder or a file (PATH#COLUMN for CSV columns). */
static int add_traces(wk_strlist *l, const char *pattern) {
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
        globfree(&g);
        return wk_strlist_add_traces(l, pattern);
    }
    if (rc != 0) {
        globfree(&g);
        return -1;
    }
    int bad_one = 0;
    size_t added = 0;
    for (size_t i = 0; i < g.gl_pathc && !bad_one; i++) {
        if (skip_match(g.gl_pathv[i])) continue;
        bad_one = wk_strlist_add_traces(l, g.gl_pathv[i]) != 0;
        added++;
    }
    globfree(&g);
    return bad_one || !added ? -1 : 0;
}

/* Parameters that stay at their default unless a spec names them: text_bytes (bytes of text per token
 * on the wire) is a property of the text, not a knob; window (eviction policies) makes the simulator
 * score window x context attention rows per KV head (8.6 GB at 1024 x 8K on Llama-3.1-8B). */
static void pin_defaults(wk_strlist *policies) {
    static const char *const pinned[] = {"text_bytes", "window"};
    for (size_t i = 0; i < policies->n; i++) {
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(policies->items[i], ":"), policies->items[i]);
        const wk_policy_ops *ops = wk_policy_find(name);
        for (size_t k = 0; ops && k < ops->n_params; k++) {
            char *spec = policies->items[i], key[64];
            snprintf(key, sizeof key, "%s=", ops->params[k].name);
            int pin = 0;
            for (size_t j = 0; j < sizeof pinned / sizeof pinned[0]; j++) pin |= !strcmp(ops->params[k].name, pinned[j]);
            if (!pin || strstr(spec, key)) continue;
            char *longer = malloc(strlen(spec) + 80);
            if (!longer) return;
            sprintf(longer, "%s%s%s%.0f", spec, strchr(spec, ':') ? "," : ":", key, ops->params[k].def);
            free(spec);
            policies->items[i] = longer;
        }
    }
}

static int parse(choose_opts *o, int argc, char **argv) {
    optind = 1;
    int c;
    double v;
    while ((c = getopt_long(argc, argv, "o:h", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_TRACES:
            if (add_traces(&o->traces, optarg)) return bad("no usable trace at", optarg);
            break;
        case OPT_QMIN:
            if (parse_num(optarg, 1e-9, 1.5, &o->cfg.quality_min)) return bad("bad --quality-min (0..1.5]", optarg);
            o->have_qmin = 1;
            break;
        case OPT_MODEL: o->cfg.model = optarg; break;
        case OPT_DEVICE: o->cfg.device = optarg; break;
        case OPT_CONTEXT:
            if (parse_int(optarg, 1, 10000000, &o->cfg.context_tokens)) return bad("bad --context", optarg);
            break;
        case OPT_OBJECTIVE:
            if (strcmp(optarg, "p50") == 0) o->cfg.objective_q = 0.5;
            else if (strcmp(optarg, "p95") == 0) o->cfg.objective_q = 0.95;
            else return bad("bad --objective (p50|p95)", optarg);
            break;
        case OPT_REQUESTS:
            if (parse_int(optarg, 1, 100000, &o->cfg.requests_per_trace)) return bad("bad --requests", optarg);
            break;
        case OPT_HOLDOUT:
            if (parse_num(optarg, 0, 0.5, &o->holdout)) return bad("bad --holdout (0..0.5)", optarg);
            break;
        case OPT_POLICY: wk_strlist_add_policies(&o->policies, optarg); break;
        case OPT_QUALITY: o->cfg.quality_path = optarg; break;
        case OPT_GRID:
            if (parse_int(optarg, 1, 1000000, &o->cfg.grid_budget)) return bad("bad --grid-budget", optarg);
            break;
        case OPT_REFINE:
            if (parse_int(optarg, 0, 1000000, &o->cfg.max_refine)) return bad("bad --max-refine", optarg);
            break;
        case OPT_OUTPUT_TOKENS:
            if (parse_int(optarg, 1, 100000, &o->cfg.output_tokens)) return bad("bad --output-tokens", optarg);
            break;
        case OPT_DELAY:
            if (parse_num(optarg, 0, 1e6, &v)) return bad("bad --delay-ms", optarg);
            o->cfg.link.one_way_delay_s = o->cfg.link.request_delay_s = v / 1000;
            break;
        case 'o': o->out_path = optarg; break;
        case OPT_DB: o->db_path = optarg; break;
        case OPT_NO_PROGRESS: o->cfg.progress = 0; break;
        case 'h': fputs(usage, stdout); return 1;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc) return bad("unexpected argument", argv[optind]);
    if (!o->traces.n) return bad("missing", "--traces");
    if (!o->have_qmin) return bad("missing", "--quality-min");
    return 0;
}

static void print_point(const char *label, const wk_choose_point *p, const char *objective) {
    printf("%-10s TTFT %s %.3f s  (p5 %.3f  p25 %.3f  p50 %.3f  p75 %.3f  p95 %.3f  mean %.3f)  F1 %.4f  %s\n",
           label, objective, p->objective, p->ttft_q[0], p->ttft_q[2], p->ttft_q[3], p->ttft_q[4], p->ttft_q[6],
           p->ttft_mean, p->f1, p->feasible ? "feasible" : "infeasible");
}

static void report(const choose_opts *o, const wk_choose_result *r, double seconds) {
    const char *objective = o->cfg.objective_q == 0.95 ? "p95" : "p50";
    const wk_choose_point *b = &r->points[r->best];
    printf("evaluated %zu configurations on %zu search traces x %d requests in %.1f s\n", r->n, o->cfg.n_traces,
           o->cfg.requests_per_trace, seconds);
    printf("F1 is predicted from the %s quality table%s\n", r->quality_source,
           strcmp(r->quality_source, "assumed") == 0 ? " (assumed: not measured)" : "");
    printf("chosen:    %s\n", b->spec);
    print_point("search", b, objective);
    if (r->have_holdout) {
        print_point("held-out", &r->holdout, objective);
        printf("held-out TTFT %s is %+.1f%% against the search traces (%zu held-out traces)\n", objective,
               100 * (r->holdout.objective / b->objective - 1), o->cfg.n_holdout);
    }
    printf("\nPareto front (TTFT %s against predicted F1, every configuration tried):\n", objective);
    printf("  %9s %7s  %s\n", "ttft_s", "f1", "spec");
    double last = -1; /* front points by increasing TTFT (one point per TTFT: the others are dominated) */
    for (;;) {
        const wk_choose_point *next = NULL;
        for (size_t i = 0; i < r->n; i++) {
            const wk_choose_point *p = &r->points[i];
            if (p->on_front && p->objective > last && (!next || p->objective < next->objective)) next = p;
        }
        if (!next) break;
        printf("  %9.3f %7.4f  %s%s\n", next->objective, next->f1, next->spec, next == b ? "   <- chosen" : "");
        last = next->objective;
    }
}

static int run(choose_opts *o, const char *command) {
    size_t n = o->traces.n;
    const char **search = calloc(n, sizeof *search), **held = calloc(n, sizeof *held);
    wk_err err = {0};
    int rc = search && held ? 0 : wk_err_set(&err, WK_ENOMEM, "out of memory");
    if (!rc)
        rc = wk_choose_split((const char *const *)o->traces.items, n, o->holdout, search, &o->cfg.n_traces, held,
                             &o->cfg.n_holdout, &err);
    o->cfg.traces = search;
    o->cfg.holdout = held;
    o->cfg.policies = (const char *const *)o->policies.items;
    o->cfg.n_policies = o->policies.n;
    wk_results *db = NULL;
    if (!rc) rc = wk_results_open(o->db_path, &db, &err);
    wk_choose_result res;
    memset(&res, 0, sizeof res);
    double started = wk_now_s();
    if (!rc) rc = wk_choose_run(&o->cfg, db, command, &res, &err);
    if (!rc) rc = wk_choose_write_json(o->out_path, &o->cfg, &res, &err);
    if (!rc) {
        report(o, &res, wk_now_s() - started);
        printf("\nwrote %s; every evaluated request is run %lld in %s (wikv plot pareto --db %s)\n", o->out_path,
               (long long)res.run_id, o->db_path, o->db_path);
    }
    if (rc) fprintf(stderr, "wikv choose: %s\n", err.msg);
    if (db) wk_results_close(db);
    wk_choose_result_free(&res);
    free(search);
    free(held);
    return rc ? (rc == WK_ENOTFOUND ? 1 : wk_err_exit_status(&err)) : 0;
}

int wk_cmd_choose(int argc, char **argv) {
    choose_opts o;
    memset(&o, 0, sizeof o);
    o.cfg = wk_choose_defaults();
    o.cfg.model = "llama-3.1-8b";
    o.cfg.device = "jetson-agx-orin";
    o.cfg.progress = 1;
    o.out_path = "choice.json";
    o.db_path = "choose.db";
    int rc = parse(&o, argc, argv);
    if (rc == 0) {
        if (!o.policies.n)
            for (const wk_policy_ops *const *p = wk_policy_registry(); *p; p++) wk_strlist_add(&o.policies, (*p)->name);
        pin_defaults(&o.policies);
        char command[2048];
        wk_cli_command_line(argc, argv, "wikv", command, sizeof command);
        rc = run(&o, command);
    } else if (rc == 1) {
        rc = 0;
    }
    wk_strlist_free(&o.traces);
    wk_strlist_free(&o.policies);
    return rc;
}
