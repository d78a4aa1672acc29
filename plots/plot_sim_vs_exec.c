/* sim-vs-exec: how well the simulator predicts real runs. Each measured request (kind 'exec') is
 * paired with the simulated requests (kind 'sim') of the same cell when both carry one, otherwise of
 * the same (policy, trace, model, device, context_tokens, task, seed); several simulated matches are
 * averaged. Points: x predicted, y measured TTFT, on equal axes with the y = x line. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plots/plot.h"

static const char *pair_sql =
    "SELECT e.policy, e.trace, avg(s.ttft_s), e.ttft_s, e.request_id FROM complete_requests e"
    " JOIN complete_requests s ON s.kind = 'sim' AND s.status = 'ok' AND s.ttft_s IS NOT NULL AND"
    " (CASE WHEN e.cell IS NOT NULL AND s.cell IS NOT NULL THEN s.cell = e.cell"
    "  ELSE s.policy = e.policy AND s.trace IS e.trace AND s.model IS e.model AND s.device IS e.device"
    "   AND s.context_tokens IS e.context_tokens AND s.task IS e.task AND s.seed IS e.seed END)"
    " WHERE {where} AND e.kind = 'exec' AND e.status = 'ok' AND e.ttft_s IS NOT NULL %s"
    " GROUP BY e.request_id";

static void write_group(wk_plot_out *o, const wk_plot_group *g) {
    for (size_t i = 0; i < g->n; i++) {
        const double *r = g->rows + 3 * i;
        wk_plot_tsv_str(o->dat, g->policy);
        fputc('\t', o->dat);
        wk_plot_tsv_str(o->dat, g->sub);
        wk_plot_tsv_num(o->dat, r[0]);
        wk_plot_tsv_num(o->dat, r[1]);
        fprintf(o->dat, "\t%lld\n", (long long)r[2]);
    }
    o->n_points += g->n;
}

/* Median relative error |sim - exec| / exec over all pairs, and the axis range. */
static void summarise(wk_plot_out *o, const wk_plot_groups *gs, double *lo, double *hi) {
    size_t total = 0;
    for (size_t i = 0; i < gs->n; i++) total += gs->g[i].n;
    double *rel = malloc((total ? total : 1) * sizeof *rel);
    size_t m = 0;
    *lo = INFINITY;
    *hi = 0;
    for (size_t i = 0; i < gs->n; i++)
        for (size_t k = 0; k < gs->g[i].n; k++) {
            double s = gs->g[i].rows[3 * k], e = gs->g[i].rows[3 * k + 1];
            *hi = fmax(*hi, fmax(s, e));
            if (s > 0) *lo = fmin(*lo, s);
            if (e > 0) *lo = fmin(*lo, e);
            if (rel && e > 0) rel[m++] = fabs(s - e) / e;
        }
    if (!isfinite(*lo)) *lo = *hi > 0 ? *hi / 10 : 0.1;
    wk_plot_sort(rel, rel ? m : 0);
    snprintf(o->note, sizeof o->note, "%zu pairs; median |sim - exec| / exec = %.1f%%", total,
             m ? 100 * wk_plot_quantile(rel, m, 0.5) : 0.0);
    free(rel);
}

int wk_plot_sim_vs_exec(struct sqlite3 *db, const char *db_path, const wk_plot_filter *f, wk_plot_out *o,
                        wk_err *err) {
    /* --kind makes no sense here; --run may name either side of a pair. */
    wk_plot_filter pf = {0};
    if (f) pf = *f;
    pf.kind = NULL;
    pf.run_id = 0;
    char run[96] = "", sql[2048];
    if (f && f->run_id)
        snprintf(run, sizeof run, "AND (e.run_id = %lld OR s.run_id = %lld)", (long long)f->run_id,
                 (long long)f->run_id);
    snprintf(sql, sizeof sql, pair_sql, run);
    wk_plot_groups gs;
    int rc = wk_plot_groups_load(db, db_path, sql, "e", &pf, 3, &gs, err);
    if (rc) return rc;
    if (gs.n == 0) {
        wk_plot_groups_free(&gs);
        return wk_plot_empty(db_path, f, "measured (exec) requests with a matching simulated (sim) request", err);
    }
    double lo, hi;
    summarise(o, &gs, &lo, &hi);
    wk_plot_preamble(o, 3.5, 2.4, 1);
    FILE *gp = o->gp;
    int logs = o->opts->log_x || o->opts->log_y;
    if (logs) fputs("set logscale xy\nset format x '%g'\nset format y '%g'\n", gp);
    double a = logs ? lo / 1.3 : 0, b = logs ? hi * 1.3 : hi * 1.05;
    fprintf(gp, "set xrange [%.9g:%.9g]\nset yrange [%.9g:%.9g]\nset size square\n", a, b, a, b);
    if (!logs) fprintf(gp, "set xtics %.9g\nset ytics %.9g\n", wk_plot_nice_step(0, b, 6), wk_plot_nice_step(0, b, 6));
    fputs("set xlabel 'Simulated TTFT (s)'\nset ylabel 'Measured TTFT (s)'\nset key outside right center vertical\n", gp);
    fputs("policy\ttrace\tsim_ttft_s\texec_ttft_s\texec_request_id\n", o->dat);
    fputs("plot x with lines ls 100 title 'y = x'", gp);
    size_t block = 0;
    for (size_t from = 0; from < gs.n; block++) {
        size_t to = from;
        while (to < gs.n && strcmp(gs.g[to].policy, gs.g[from].policy) == 0) write_group(o, &gs.g[to++]);
        wk_plot_end_block(o);
        fputs(", \\\n     ", gp);
        wk_plot_data_ref(o, block);
        fputs(" using 3:4 with points", gp);
        wk_plot_style_spec(gp, gs.g[from].policy, WK_PLOT_POINTS);
        fputs(" title ", gp);
        wk_plot_quote(gp, gs.g[from].policy);
        from = to;
    }
    fputc('\n', gp);
    wk_plot_groups_free(&gs);
    return 0;
}
