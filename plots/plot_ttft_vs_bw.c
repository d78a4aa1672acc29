/* ttft-vs-bw: TTFT against the mean bandwidth of the trace each request ran on. One point per (policy,
 * trace): the median TTFT with a p5-p95 bar, points of a policy joined in bandwidth order. */
#include <stdlib.h>
#include <string.h>

#include "plots/plot.h"

static const char *bw_sql = "SELECT r.policy, r.trace, r.trace_mean_mbps, r.ttft_s FROM complete_requests r"
                            " WHERE {where} AND r.status = 'ok' AND r.ttft_s IS NOT NULL"
                            " AND r.trace_mean_mbps IS NOT NULL";

typedef struct {
    const char *trace;
    double mbps, p50, p5, p95;
    size_t n;
} bw_point;

static int cmp_point(const void *a, const void *b) {
    const bw_point *x = a, *y = b;
    if (x->mbps != y->mbps) return (x->mbps > y->mbps) - (x->mbps < y->mbps);
    return strcmp(x->trace ? x->trace : "", y->trace ? y->trace : "");
}

/* Summarises groups [from, to) (one policy, one group per trace) into pts (sorted by bandwidth). */
static int summarise(const wk_plot_groups *gs, size_t from, size_t to, bw_point *pts, wk_err *err) {
    for (size_t i = from; i < to; i++) {
        const wk_plot_group *g = &gs->g[i];
        double *vals = malloc(g->n * sizeof *vals);
        if (!vals) return wk_err_set(err, WK_ENOMEM, "out of memory");
        bw_point *p = &pts[i - from];
        p->trace = g->sub;
        size_t n = wk_plot_group_column(g, 2, 0, vals);
        p->mbps = wk_plot_quantile(vals, n, 0.5);
        n = wk_plot_group_column(g, 2, 1, vals);
        p->p50 = wk_plot_quantile(vals, n, 0.5);
        p->p5 = wk_plot_quantile(vals, n, 0.05);
        p->p95 = wk_plot_quantile(vals, n, 0.95);
        p->n = n;
        free(vals);
    }
    qsort(pts, to - from, sizeof *pts, cmp_point);
    return 0;
}

static void write_policy(wk_plot_out *o, const char *policy, const bw_point *pts, size_t n) {
    for (size_t i = 0; i < n; i++) {
        wk_plot_tsv_str(o->dat, policy);
        fputc('\t', o->dat);
        wk_plot_tsv_str(o->dat, pts[i].trace);
        wk_plot_tsv_num(o->dat, pts[i].mbps);
        wk_plot_tsv_num(o->dat, pts[i].p50);
        wk_plot_tsv_num(o->dat, pts[i].p5);
        wk_plot_tsv_num(o->dat, pts[i].p95);
        fprintf(o->dat, "\t%zu\n", pts[i].n);
    }
    o->n_points += n;
    wk_plot_end_block(o);
}

/* Line in the policy's dash, bars always solid (dotted bars read as missing data), and a key entry
 * showing line and marker. */
static void plot_policy(wk_plot_out *o, size_t block, const char *policy) {
    FILE *gp = o->gp;
    fputs(block ? ", \\\n     " : "plot ", gp);
    wk_plot_data_ref(o, block);
    fputs(" using 3:4 with lines", gp);
    wk_plot_style_spec(gp, policy, WK_PLOT_LINE);
    fputs(", \\\n     ", gp);
    wk_plot_data_ref(o, block);
    fputs(" using 3:4:5:6 with yerrorbars", gp);
    wk_plot_style_spec(gp, policy, WK_PLOT_POINTS | WK_PLOT_SOLID);
    fputs(", \\\n     NaN with linespoints", gp);
    wk_plot_style_spec(gp, policy, WK_PLOT_POINTS);
    fputs(" title ", gp);
    wk_plot_quote(gp, policy);
}

int wk_plot_ttft_vs_bw(struct sqlite3 *db, const char *db_path, const wk_plot_filter *f, wk_plot_out *o,
                       wk_err *err) {
    wk_plot_groups gs;
    int rc = wk_plot_groups_load(db, db_path, bw_sql, "r", f, 2, &gs, err);
    if (rc) return rc;
    if (gs.n == 0) {
        wk_plot_groups_free(&gs);
        return wk_plot_empty(db_path, f, "complete requests with a TTFT and a trace bandwidth", err);
    }
    bw_point *pts = calloc(gs.n, sizeof *pts);
    if (!pts) {
        wk_plot_groups_free(&gs);
        return wk_err_set(err, WK_ENOMEM, "out of memory");
    }
    wk_plot_preamble(o, 3.5, 2.4, 1);
    fputs("set xlabel 'Mean bandwidth (Mbit/s)'\nset ylabel 'TTFT (s)'\nset offsets graph 0.03, graph 0.03, 0, 0\n",
          o->gp);
    double lo, hi;
    wk_plot_groups_range(&gs, 0, &lo, &hi);
    wk_plot_ticks(o, 'x', lo, hi, 6);
    wk_plot_groups_range(&gs, 1, &lo, &hi);
    wk_plot_ticks(o, 'y', lo, hi, 6);
    fputs("policy\ttrace\tmean_mbps\tttft_p50_s\tttft_p5_s\tttft_p95_s\tn\n", o->dat);
    size_t block = 0;
    for (size_t from = 0; from < gs.n && !rc; block++) {
        size_t to = from + 1;
        while (to < gs.n && strcmp(gs.g[to].policy, gs.g[from].policy) == 0) to++;
        rc = summarise(&gs, from, to, pts, err);
        if (rc) break;
        write_policy(o, gs.g[from].policy, pts, to - from);
        plot_policy(o, block, gs.g[from].policy);
        from = to;
    }
    fputc('\n', o->gp);
    free(pts);
    wk_plot_groups_free(&gs);
    return rc;
}
