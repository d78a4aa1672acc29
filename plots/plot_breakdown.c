/* breakdown: where the time to first token goes, per policy: stacked bars of the median network wait,
 * KV decode and compute time, with the median TTFT as a marker. Medians of parts need not add up to
 * the median of the whole, and the marker shows by how much. Bars use component colours (not the
 * policy table) because the components, not the policies, are what the colours tell apart. */
#include <stdlib.h>

#include "plots/plot.h"

static const char *breakdown_sql =
    "SELECT r.policy, NULL, r.net_wait_s, r.kv_decode_s, r.compute_s, r.ttft_s FROM complete_requests r"
    " WHERE {where} AND r.status = 'ok'"
    " AND (r.net_wait_s IS NOT NULL OR r.kv_decode_s IS NOT NULL OR r.compute_s IS NOT NULL)";

static const char *const part_title[3] = {"network wait", "KV decode", "compute"};
static const char *const part_color[3] = {"#56B4E9", "#E69F00", "#009E73"};

/* One row: policy, median of each part (0 when the part is never recorded), median TTFT, n.
 * *top grows to the row's highest point (bar or marker). */
static int write_policy(wk_plot_out *o, const wk_plot_group *g, double *top, wk_err *err) {
    double bar = 0;
    double *vals = malloc(g->n * sizeof *vals);
    if (!vals) return wk_err_set(err, WK_ENOMEM, "out of memory");
    wk_plot_tsv_str(o->dat, g->policy);
    for (int j = 0; j < 4; j++) {
        size_t n = wk_plot_group_column(g, 4, j, vals);
        double med = wk_plot_quantile(vals, n, 0.5);
        double v = n == 0 && j < 3 ? 0.0 : med;
        wk_plot_tsv_num(o->dat, v);
        if (j < 3) bar += v;
        else if (v > *top) *top = v;
    }
    if (bar > *top) *top = bar;
    fprintf(o->dat, "\t%zu\n", g->n);
    free(vals);
    o->n_points++;
    return 0;
}

int wk_plot_breakdown(struct sqlite3 *db, const char *db_path, const wk_plot_filter *f, wk_plot_out *o,
                      wk_err *err) {
    wk_plot_groups gs;
    int rc = wk_plot_groups_load(db, db_path, breakdown_sql, "r", f, 4, &gs, err);
    if (rc) return rc;
    if (gs.n == 0) {
        wk_plot_groups_free(&gs);
        return wk_plot_empty(db_path, f, "complete requests with a TTFT breakdown", err);
    }
    wk_plot_preamble(o, 3.5, 2.4, 0);
    FILE *gp = o->gp;
    fputs("set style data histograms\nset style histogram rowstacked\n"
          "set style fill solid 1.0 border lc rgb '#ffffff'\nset boxwidth 0.62\n"
          "set ylabel 'Median time (s)'\nset yrange [0:*]\nset grid noxtics ytics\n"
          "set key samplen 1.2\nset xtics scale 0\n",
          gp);
    if (o->opts->log_y) fputs("set logscale y\n", gp);
    if (gs.n > 5) fputs("set xtics rotate by 30 right\n", gp);
    fputs("policy\tnet_wait_s\tkv_decode_s\tcompute_s\tttft_p50_s\tn\n", o->dat);
    double top = 0;
    for (size_t i = 0; i < gs.n && !rc; i++) rc = write_policy(o, &gs.g[i], &top, err);
    wk_plot_ticks(o, 'y', 0, top, 6);
    wk_plot_end_block(o);
    for (int p = 0; p < 3; p++) {
        fputs(p ? ", \\\n     " : "plot ", gp);
        wk_plot_data_ref(o, 0);
        fprintf(gp, " using %d%s lc rgb '%s' title '%s'", 2 + p, p == 0 ? ":xtic(1)" : "", part_color[p],
                part_title[p]);
    }
    fputs(", \\\n     ", gp);
    wk_plot_data_ref(o, 0);
    fputs(" using 0:5 with points pt 7 ps 0.6 lc rgb '#000000' title 'TTFT'\n", gp);
    wk_plot_groups_free(&gs);
    return rc;
}
