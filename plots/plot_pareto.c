/* pareto: every configuration (policy + params) as a point at its median TTFT and median F1, and the
 * Pareto front (no other configuration is at least as fast and at least as good, and better in one)
 * as a black staircase with ringed points. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plots/plot.h"

static const char *pareto_sql = "SELECT r.policy, r.params, r.ttft_s, r.f1 FROM complete_requests r"
                                " WHERE {where} AND r.status = 'ok' AND r.ttft_s IS NOT NULL AND r.f1 IS NOT NULL";

typedef struct {
    const char *policy, *params;
    double ttft, f1;
    size_t n;
    int front;
} config;

static int cmp_speed(const void *a, const void *b) {
    const config *x = *(const config *const *)a, *y = *(const config *const *)b;
    if (x->ttft != y->ttft) return (x->ttft > y->ttft) - (x->ttft < y->ttft);
    return (x->f1 < y->f1) - (x->f1 > y->f1); /* equal TTFT: better F1 first, so it dominates */
}

/* Marks the front: by increasing TTFT, a configuration is on it when it beats every faster F1. */
static int mark_front(config *cs, size_t n, config ***order) {
    config **ord = malloc(n * sizeof *ord);
    if (!ord) return WK_ENOMEM;
    for (size_t i = 0; i < n; i++) ord[i] = &cs[i];
    qsort(ord, n, sizeof *ord, cmp_speed);
    double best = -1e300;
    for (size_t i = 0; i < n; i++)
        if (ord[i]->f1 > best) {
            ord[i]->front = 1;
            best = ord[i]->f1;
        }
    *order = ord;
    return 0;
}

static void write_config(wk_plot_out *o, const config *c) {
    wk_plot_tsv_str(o->dat, c->policy);
    fputc('\t', o->dat);
    wk_plot_tsv_str(o->dat, c->params);
    wk_plot_tsv_num(o->dat, c->ttft);
    wk_plot_tsv_num(o->dat, c->f1);
    fprintf(o->dat, "\t%zu\t%d\n", c->n, c->front);
    o->n_points++;
}

static int summarise(const wk_plot_groups *gs, config *cs, wk_err *err) {
    for (size_t i = 0; i < gs->n; i++) {
        const wk_plot_group *g = &gs->g[i];
        double *vals = malloc(g->n * sizeof *vals);
        if (!vals) return wk_err_set(err, WK_ENOMEM, "out of memory");
        cs[i].policy = g->policy;
        cs[i].params = g->sub;
        cs[i].ttft = wk_plot_quantile(vals, wk_plot_group_column(g, 2, 0, vals), 0.5);
        cs[i].f1 = wk_plot_quantile(vals, wk_plot_group_column(g, 2, 1, vals), 0.5);
        cs[i].n = g->n;
        free(vals);
    }
    return 0;
}

static void draw(wk_plot_out *o, const config *cs, size_t n, config *const *order) {
    FILE *gp = o->gp;
    fputs("policy\tparams\tttft_p50_s\tf1_p50\tn\ton_front\n", o->dat);
    size_t block = 0;
    for (size_t from = 0; from < n; block++) {
        size_t to = from;
        while (to < n && strcmp(cs[to].policy, cs[from].policy) == 0) write_config(o, &cs[to++]);
        wk_plot_end_block(o);
        fputs(block ? ", \\\n     " : "plot ", gp);
        wk_plot_data_ref(o, block);
        fputs(" using 3:4 with points", gp);
        wk_plot_style_spec(gp, cs[from].policy, WK_PLOT_POINTS);
        fputs(" title ", gp);
        wk_plot_quote(gp, cs[from].policy);
        from = to;
    }
    for (size_t i = 0; i < n; i++)
        if (order[i]->front) write_config(o, order[i]);
    wk_plot_end_block(o);
    fputs(", \\\n     ", gp);
    wk_plot_data_ref(o, block);
    fputs(" using 3:4 with steps lc rgb '#000000' lw 0.8 title 'Pareto front', \\\n     ", gp);
    wk_plot_data_ref(o, block);
    fputs(" using 3:4 with points pt 6 ps 1.4 lc rgb '#000000' lw 0.8 notitle\n", gp);
}

int wk_plot_pareto(struct sqlite3 *db, const char *db_path, const wk_plot_filter *f, wk_plot_out *o, wk_err *err) {
    wk_plot_groups gs;
    int rc = wk_plot_groups_load(db, db_path, pareto_sql, "r", f, 2, &gs, err);
    if (rc) return rc;
    if (gs.n == 0) {
        wk_plot_groups_free(&gs);
        return wk_plot_empty(db_path, f, "complete requests with a TTFT and an F1 score", err);
    }
    config *cs = calloc(gs.n, sizeof *cs);
    config **order = NULL;
    rc = cs ? summarise(&gs, cs, err) : wk_err_set(err, WK_ENOMEM, "out of memory");
    if (!rc && mark_front(cs, gs.n, &order)) rc = wk_err_set(err, WK_ENOMEM, "out of memory");
    if (!rc) {
        size_t on = 0;
        for (size_t i = 0; i < gs.n; i++) on += (size_t)cs[i].front;
        snprintf(o->note, sizeof o->note, "%zu configurations, %zu on the Pareto front", gs.n, on);
        wk_plot_preamble(o, 3.5, 2.4, 1);
        fputs("set xlabel 'TTFT (s)'\nset ylabel 'F1 score'\n"
              "set offsets 0, graph 0.05, graph 0.05, graph 0.05\n",
              o->gp);
        if (!o->opts->log_x) fputs("set xrange [0:*]\n", o->gp);
        double t_hi = 0, f_lo = INFINITY, f_hi = -INFINITY;
        for (size_t i = 0; i < gs.n; i++) {
            t_hi = fmax(t_hi, cs[i].ttft);
            f_lo = fmin(f_lo, cs[i].f1);
            f_hi = fmax(f_hi, cs[i].f1);
        }
        wk_plot_ticks(o, 'x', 0, t_hi, 6);
        wk_plot_ticks(o, 'y', f_lo, f_hi, 6);
        draw(o, cs, gs.n, order);
    }
    free(order);
    free(cs);
    wk_plot_groups_free(&gs);
    return rc;
}
