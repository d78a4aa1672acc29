/* ttft-cdf: the empirical CDF of time to first token, one curve per policy. Each curve starts at
 * (min, 0) so the first step is visible; markers sit on every k-th step so curves stay apart in
 * black-and-white print without cluttering dense CDFs. */
#include <stdlib.h>

#include "plots/plot.h"

static const char *cdf_sql = "SELECT r.policy, NULL, r.ttft_s FROM complete_requests r"
                             " WHERE {where} AND r.status = 'ok' AND r.ttft_s IS NOT NULL";

/* Writes one policy's block: rows (policy, ttft_s, cdf). vals: [n] sorted. */
static void write_block(wk_plot_out *o, const char *policy, const double *vals, size_t n) {
    for (size_t i = 0; i <= n; i++) {
        wk_plot_tsv_str(o->dat, policy);
        wk_plot_tsv_num(o->dat, vals[i ? i - 1 : 0]);
        wk_plot_tsv_num(o->dat, (double)i / (double)n);
        fputc('\n', o->dat);
    }
    o->n_points += n + 1;
    wk_plot_end_block(o);
}

/* Curve + sparse markers + a key entry showing both (gnuplot's own key for `steps` has no marker). */
static void plot_curve(wk_plot_out *o, size_t index, const char *policy, size_t n, int first) {
    size_t every = n / 6 > 0 ? n / 6 : 1;
    FILE *gp = o->gp;
    fputs(first ? "plot " : ", \\\n     ", gp);
    wk_plot_data_ref(o, index);
    fputs(" using 2:3 with steps", gp);
    wk_plot_style_spec(gp, policy, WK_PLOT_LINE);
    fputs(", \\\n     ", gp);
    wk_plot_data_ref(o, index);
    fprintf(gp, " using 2:3 every %zu::1 with points", every);
    wk_plot_style_spec(gp, policy, WK_PLOT_POINTS);
    fputs(", \\\n     NaN with linespoints", gp);
    wk_plot_style_spec(gp, policy, WK_PLOT_POINTS);
    fputs(" title ", gp);
    wk_plot_quote(gp, policy);
}

int wk_plot_ttft_cdf(struct sqlite3 *db, const char *db_path, const wk_plot_filter *f, wk_plot_out *o,
                     wk_err *err) {
    wk_plot_groups gs;
    int rc = wk_plot_groups_load(db, db_path, cdf_sql, "r", f, 1, &gs, err);
    if (rc) return rc;
    if (gs.n == 0) {
        wk_plot_groups_free(&gs);
        return wk_plot_empty(db_path, f, "complete requests with a TTFT", err);
    }
    wk_plot_preamble(o, 3.5, 2.4, 1);
    fputs("set xlabel 'Time to first token (s)'\nset ylabel 'CDF'\nset yrange [0:1]\nset ytics 0.25\n", o->gp);
    double lo, hi;
    wk_plot_groups_range(&gs, 0, &lo, &hi);
    wk_plot_ticks(o, 'x', lo, hi, 7);
    fputs("policy\tttft_s\tcdf\n", o->dat);
    for (size_t i = 0; i < gs.n && !rc; i++) {
        double *vals = malloc(gs.g[i].n * sizeof *vals);
        if (!vals) {
            rc = wk_err_set(err, WK_ENOMEM, "out of memory");
            break;
        }
        size_t n = wk_plot_group_column(&gs.g[i], 1, 0, vals);
        write_block(o, gs.g[i].policy, vals, n);
        plot_curve(o, i, gs.g[i].policy, n, i == 0);
        free(vals);
    }
    fputc('\n', o->gp);
    wk_plot_groups_free(&gs);
    return rc;
}
