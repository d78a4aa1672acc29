/* quality-latency: answer quality (F1) against TTFT, one point per policy at the medians, with
 * p25-p75 bars in both axes. p5-p95 would span nearly [0, 1] for per-request F1 (often 0 or 1), so
 * the interquartile range is the spread shown; the mean F1 is in the data file too. */
#include <math.h>
#include <stdlib.h>

#include "plots/plot.h"

static const char *quality_sql = "SELECT r.policy, NULL, r.ttft_s, r.f1 FROM complete_requests r"
                                 " WHERE {where} AND r.status = 'ok' AND r.ttft_s IS NOT NULL AND r.f1 IS NOT NULL";

static double mean(const double *v, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += v[i];
    return n ? s / (double)n : 0;
}

/* One row: policy, ttft p50/p25/p75, f1 p50/p25/p75, f1 mean, n. box: [x0, x1, y0, y1] grows to the
 * bars' extent, for the ticks. */
static int write_policy(wk_plot_out *o, const wk_plot_group *g, double box[4], wk_err *err) {
    double *vals = malloc(g->n * sizeof *vals);
    if (!vals) return wk_err_set(err, WK_ENOMEM, "out of memory");
    wk_plot_tsv_str(o->dat, g->policy);
    for (int j = 0; j < 2; j++) {
        size_t n = wk_plot_group_column(g, 2, j, vals);
        double p25 = wk_plot_quantile(vals, n, 0.25), p75 = wk_plot_quantile(vals, n, 0.75);
        wk_plot_tsv_num(o->dat, wk_plot_quantile(vals, n, 0.5));
        wk_plot_tsv_num(o->dat, p25);
        wk_plot_tsv_num(o->dat, p75);
        if (p25 < box[2 * j]) box[2 * j] = p25;
        if (p75 > box[2 * j + 1]) box[2 * j + 1] = p75;
        if (j == 1) wk_plot_tsv_num(o->dat, mean(vals, n));
    }
    fprintf(o->dat, "\t%zu\n", g->n);
    free(vals);
    o->n_points++;
    wk_plot_end_block(o);
    return 0;
}

int wk_plot_quality_latency(struct sqlite3 *db, const char *db_path, const wk_plot_filter *f, wk_plot_out *o,
                            wk_err *err) {
    wk_plot_groups gs;
    int rc = wk_plot_groups_load(db, db_path, quality_sql, "r", f, 2, &gs, err);
    if (rc) return rc;
    if (gs.n == 0) {
        wk_plot_groups_free(&gs);
        return wk_plot_empty(db_path, f, "complete requests with a TTFT and an F1 score", err);
    }
    wk_plot_preamble(o, 3.5, 2.4, 1);
    fputs("set xlabel 'TTFT (s)'\nset ylabel 'F1 score'\n"
          "set offsets 0, graph 0.08, graph 0.08, graph 0.08\n",
          o->gp);
    if (!o->opts->log_x) fputs("set xrange [0:*]\n", o->gp);
    fputs("policy\tttft_p50_s\tttft_p25_s\tttft_p75_s\tf1_p50\tf1_p25\tf1_p75\tf1_mean\tn\n", o->dat);
    double box[4] = {INFINITY, -INFINITY, INFINITY, -INFINITY};
    for (size_t i = 0; i < gs.n && !rc; i++) rc = write_policy(o, &gs.g[i], box, err);
    wk_plot_ticks(o, 'x', 0, box[1], 6);
    wk_plot_ticks(o, 'y', box[2], box[3], 6);
    for (size_t i = 0; i < gs.n && !rc; i++) {
        fputs(i ? ", \\\n     " : "plot ", o->gp);
        wk_plot_data_ref(o, i);
        fputs(" using 2:5:3:4:6:7 with xyerrorbars", o->gp);
        wk_plot_style_spec(o->gp, gs.g[i].policy, WK_PLOT_POINTS | WK_PLOT_SOLID);
        fputs(" title ", o->gp);
        wk_plot_quote(o->gp, gs.g[i].policy);
    }
    fputc('\n', o->gp);
    wk_plot_groups_free(&gs);
    return rc;
}
