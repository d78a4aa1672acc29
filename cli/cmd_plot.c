/* `wikv plot KIND --db results.db [filters] -o FIG.{png,pdf,svg}`: figures from the results database. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "plots/plot.h"

/* Values of a repeatable option that also takes comma lists; the strings point into owned copies. */
typedef struct {
    const char **v; /* [n] */
    size_t n, cap;
    char **owned; /* [n_owned] strdup'd option arguments */
    size_t n_owned;
} str_list;

static int list_add(str_list *l, const char *arg) {
    char *copy = strdup(arg);
    char **owned = realloc(l->owned, (l->n_owned + 1) * sizeof *owned);
    if (!copy || !owned) {
        free(copy);
        if (owned) l->owned = owned;
        return -1;
    }
    l->owned = owned;
    l->owned[l->n_owned++] = copy;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 8;
            const char **v = realloc(l->v, cap * sizeof *v);
            if (!v) return -1;
            l->v = v;
            l->cap = cap;
        }
        l->v[l->n++] = tok;
    }
    return 0;
}

static void list_free(str_list *l) {
    for (size_t i = 0; i < l->n_owned; i++) free(l->owned[i]);
    free(l->owned);
    free(l->v);
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: wikv plot KIND --db results.db [filters] [style] -o FIG.{png,pdf,svg}\n"
            "Draws a figure from the results database only; writes FIG.tsv (the plotted numbers, with a header)\n"
            "and FIG.gp (the gnuplot script; re-draw with `gnuplot FIG.gp` in FIG's folder). Needs gnuplot.\n\n"
            "kinds:\n");
    for (int k = 0; k < WK_PLOT_KIND_COUNT; k++)
        fprintf(out, "  %-16s %s\n", wk_plot_kind_name((wk_plot_kind)k), wk_plot_kind_summary((wk_plot_kind)k));
    fprintf(out, "\nfilters (of complete runs only):\n"
                 "  --policy P       policy, repeatable or comma list\n"
                 "  --trace T        trace name, repeatable or comma list (trace: which traces to draw)\n"
                 "  --model M  --device D  --context N  --kind sim|exec  --run ID\n"
                 "  --request ID     timeline: the request to draw (default: first of the selection with events)\n"
                 "style:\n"
                 "  --size WxH       inches (default 3.5x2.4; timeline 3.5x3.2)\n"
                 "  --font-size PT   default 9\n"
                 "  --title TEXT     no title unless given\n"
                 "  --log-x --log-y  logarithmic axes\n"
                 "exit status: 0 drawn, 2 bad input (missing database, empty selection, bad option), 1 gnuplot "
                 "or I/O failure\n");
}

static int parse_long(const char *s, const char *flag, long long lo, long long *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < lo) {
        fprintf(stderr, "wikv plot: %s needs an integer >= %lld, got '%s'\n", flag, lo, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_size(const char *s, wk_plot_opts *o) {
    char *end;
    double w = strtod(s, &end);
    if (end == s || (*end != 'x' && *end != 'X')) return -1;
    const char *hs = end + 1;
    double h = strtod(hs, &end);
    if (end == hs || *end || !(w > 0.5 && w < 40) || !(h > 0.5 && h < 40)) return -1;
    o->width_in = w;
    o->height_in = h;
    return 0;
}

enum { O_POLICY = 256, O_TRACE, O_MODEL, O_DEVICE, O_CONTEXT, O_KIND, O_RUN, O_REQUEST, O_SIZE, O_FONT, O_TITLE,
       O_LOGX, O_LOGY };

typedef struct {
    const char *db, *out, *kind;
    str_list policies, traces;
    wk_plot_filter f;
    wk_plot_opts o;
} plot_args;

static int parse_one(plot_args *a, int c, const char *arg) {
    long long v;
    switch (c) {
    case 'd': a->db = arg; return 0;
    case 'o': a->out = arg; return 0;
    case O_POLICY: return list_add(&a->policies, arg);
    case O_TRACE: return list_add(&a->traces, arg);
    case O_MODEL: a->f.model = arg; return 0;
    case O_DEVICE: a->f.device = arg; return 0;
    case O_KIND:
        if (strcmp(arg, "sim") && strcmp(arg, "exec")) {
            fprintf(stderr, "wikv plot: --kind is sim or exec, got '%s'\n", arg);
            return -1;
        }
        a->f.kind = arg;
        return 0;
    case O_CONTEXT:
        if (parse_long(arg, "--context", 1, &v) || v > 100000000) return -1;
        a->f.context_tokens = (int)v;
        return 0;
    case O_RUN: return parse_long(arg, "--run", 1, &v) ? -1 : (a->f.run_id = v, 0);
    case O_REQUEST: return parse_long(arg, "--request", 1, &v) ? -1 : (a->f.request_id = v, 0);
    case O_SIZE:
        if (!parse_size(arg, &a->o)) return 0;
        fprintf(stderr, "wikv plot: --size is WxH in inches (e.g. 3.5x2.4), got '%s'\n", arg);
        return -1;
    case O_FONT: {
        char *end;
        a->o.font_pt = strtod(arg, &end);
        if (end != arg && !*end && a->o.font_pt >= 4 && a->o.font_pt <= 40) return 0;
        fprintf(stderr, "wikv plot: --font-size is points in [4, 40], got '%s'\n", arg);
        return -1;
    }
    case O_TITLE: a->o.title = arg; return 0;
    case O_LOGX: a->o.log_x = 1; return 0;
    case O_LOGY: a->o.log_y = 1; return 0;
    default: return -1;
    }
}

/* Returns 0 to go on, 1 after --help, -1 on bad input. */
static int parse_args(int argc, char **argv, plot_args *a) {
    static const struct option opts[] = {
        {"db", required_argument, 0, 'd'},         {"output", required_argument, 0, 'o'},
        {"policy", required_argument, 0, O_POLICY}, {"trace", required_argument, 0, O_TRACE},
        {"model", required_argument, 0, O_MODEL},   {"device", required_argument, 0, O_DEVICE},
        {"context", required_argument, 0, O_CONTEXT}, {"kind", required_argument, 0, O_KIND},
        {"run", required_argument, 0, O_RUN},       {"request", required_argument, 0, O_REQUEST},
        {"size", required_argument, 0, O_SIZE},     {"font-size", required_argument, 0, O_FONT},
        {"title", required_argument, 0, O_TITLE},   {"log-x", no_argument, 0, O_LOGX},
        {"log-y", no_argument, 0, O_LOGY},          {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "d:o:h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == '?' || parse_one(a, c, optarg)) return -1;
    }
    if (optind != argc - 1) {
        fprintf(stderr, optind >= argc ? "wikv plot: which KIND?\n" : "wikv plot: one KIND only\n");
        return -1;
    }
    a->kind = argv[optind];
    if (wk_plot_kind_from_name(a->kind) < 0) {
        fprintf(stderr, "wikv plot: unknown kind '%s' (wikv plot --help lists them)\n", a->kind);
        return -1;
    }
    if (!a->db || !a->out) {
        fprintf(stderr, "wikv plot: %s is required\n", a->db ? "-o FIG.png|pdf|svg" : "--db results.db");
        return -1;
    }
    a->f.policies = a->policies.v;
    a->f.n_policies = a->policies.n;
    a->f.traces = a->traces.v;
    a->f.n_traces = a->traces.n;
    return 0;
}

int wk_cmd_plot(int argc, char **argv) {
    plot_args a;
    memset(&a, 0, sizeof a);
    int p = parse_args(argc, argv, &a);
    int status = p ? (p > 0 ? 0 : 2) : -1;
    if (p < 0) fprintf(stderr, "usage: wikv plot KIND --db results.db [filters] -o FIG.{png,pdf,svg} (--help)\n");
    if (status < 0) {
        wk_plot_result res;
        wk_err err = {0};
        int rc = wk_plot_file(a.db, (wk_plot_kind)wk_plot_kind_from_name(a.kind), &a.f, &a.o, a.out, &res, &err);
        if (rc) {
            fprintf(stderr, "wikv plot %s: %s\n", a.kind, err.msg);
            /* gnuplot and write failures are ours (1); everything about the input is the caller's (2) */
            status = rc == WK_EIO || rc == WK_ENOMEM || rc == WK_EUNSUPPORTED ? 1 : 2;
        } else {
            printf("%s: %zu series, %zu rows (data %s, script %s)%s%s\n", res.fig, res.n_series, res.n_points,
                   res.data, res.script, res.note[0] ? "; " : "", res.note);
            status = 0;
        }
    }
    list_free(&a.policies);
    list_free(&a.traces);
    return status;
}
