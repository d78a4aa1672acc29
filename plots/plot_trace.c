/* trace: link bandwidth over time of the traces recorded with the results (trace_samples, 100 ms bins).
 * Which traces: those named with --trace; else, when other filters are given, the traces of the
 * selected requests; else every trace in the database. Traces are not policies, so they take the
 * palette in order (then dashes) rather than the policy table. */
#include <stdlib.h>

#include "plots/plot.h"

static int has_request_filters(const wk_plot_filter *f) {
    return f && (f->n_policies || f->model || f->device || f->kind || f->context_tokens || f->run_id);
}

static void write_trace(wk_plot_out *o, const wk_plot_group *g) {
    for (size_t i = 0; i < g->n; i++) {
        wk_plot_tsv_str(o->dat, g->policy);
        wk_plot_tsv_num(o->dat, g->rows[2 * i]);
        wk_plot_tsv_num(o->dat, g->rows[2 * i + 1]);
        fputc('\n', o->dat);
    }
    o->n_points += g->n;
    wk_plot_end_block(o);
}

int wk_plot_trace(struct sqlite3 *db, const char *db_path, const wk_plot_filter *f, wk_plot_out *o, wk_err *err) {
    wk_plot_groups gs;
    int rc;
    if (has_request_filters(f)) {
        rc = wk_plot_groups_load(db, db_path,
                                 "SELECT s.trace, NULL, s.t_s, s.mbps FROM trace_samples s WHERE s.trace IN"
                                 " (SELECT r.trace FROM complete_requests r WHERE {where}) ORDER BY s.trace, s.t_s",
                                 "r", f, 2, &gs, err);
    } else {
        wk_plot_filter only = {0};
        if (f) only.traces = f->traces, only.n_traces = f->n_traces;
        rc = wk_plot_groups_load(db, db_path,
                                 "SELECT s.trace, NULL, s.t_s, s.mbps FROM trace_samples s WHERE {where}"
                                 " ORDER BY s.trace, s.t_s",
                                 "s", &only, 2, &gs, err);
    }
    if (rc) return rc;
    if (gs.n == 0) {
        wk_plot_groups_free(&gs);
        return wk_plot_empty(db_path, f, "trace samples", err);
    }
    wk_plot_preamble(o, 3.5, 2.4, 1);
    fputs("set xlabel 'Time (s)'\nset ylabel 'Bandwidth (Mbit/s)'\nset yrange [0:*]\n", o->gp);
    double lo, hi;
    wk_plot_groups_range(&gs, 0, &lo, &hi);
    wk_plot_ticks(o, 'x', lo, hi, 7);
    wk_plot_groups_range(&gs, 1, &lo, &hi);
    wk_plot_ticks(o, 'y', 0, hi, 6);
    fputs("trace\tt_s\tmbps\n", o->dat);
    for (size_t i = 0; i < gs.n; i++) {
        write_trace(o, &gs.g[i]);
        fputs(i ? ", \\\n     " : "plot ", o->gp);
        wk_plot_data_ref(o, i);
        fprintf(o->gp, " using 2:3 with steps lc rgb '%s' dt %zu lw 1 title ", wk_plot_palette(i), 1 + (i / 7) % 4);
        wk_plot_quote(o->gp, gs.g[i].policy);
    }
    fputc('\n', o->gp);
    wk_plot_groups_free(&gs);
    return 0;
}
