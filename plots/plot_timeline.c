/* timeline: what happened during one request, from its events. Up to three panels on one time axis:
 * payload bytes arrived per level (and in total), the fraction of the KV usable on the device with
 * the tokens emitted so far (right axis), and the compute actions (prefill, KV decode, emit) as bars.
 * A dashed line marks the request's TTFT. Panels without events are left out. */
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "plots/plot.h"

typedef struct {
    double t, v;
} tv;

typedef struct {
    int level;
    tv *p; /* [n] in time order */
    size_t n, cap;
} series;

enum { C_PREFILL, C_DECODE_KV, C_EMIT, N_COMPUTE };
static const char *const compute_type[N_COMPUTE] = {"prefill", "decode_kv", "emit"};
static const char *const compute_label[N_COMPUTE] = {"prefill", "KV decode", "emit"};
static const char *const compute_color[N_COMPUTE] = {"#0072B2", "#E69F00", "#009E73"};

typedef struct {
    int64_t id;
    double ttft;
    series *levels; /* [n_levels] sorted by level */
    size_t n_levels;
    series total, usable, tokens, compute[N_COMPUTE];
    double t_end;
} timeline;

static int push(series *s, double t, double v) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        tv *p = realloc(s->p, cap * sizeof *p);
        if (!p) return WK_ENOMEM;
        s->p = p;
        s->cap = cap;
    }
    s->p[s->n++] = (tv){t, v};
    return 0;
}

static series *level_series(timeline *tl, int level) {
    size_t i = 0;
    while (i < tl->n_levels && tl->levels[i].level < level) i++;
    if (i < tl->n_levels && tl->levels[i].level == level) return &tl->levels[i];
    series *ls = realloc(tl->levels, (tl->n_levels + 1) * sizeof *ls);
    if (!ls) return NULL;
    tl->levels = ls;
    memmove(&ls[i + 1], &ls[i], (tl->n_levels - i) * sizeof *ls);
    memset(&ls[i], 0, sizeof *ls);
    ls[i].level = level;
    tl->n_levels++;
    return &ls[i];
}

static void timeline_free(timeline *tl) {
    for (size_t i = 0; i < tl->n_levels; i++) free(tl->levels[i].p);
    free(tl->levels);
    free(tl->total.p);
    free(tl->usable.p);
    free(tl->tokens.p);
    for (int c = 0; c < N_COMPUTE; c++) free(tl->compute[c].p);
}

/* 'arrive' carries the cumulative total; the increment belongs to the unit's level. */
static int add_event(timeline *tl, double t, const char *type, int level, double value) {
    if (t > tl->t_end) tl->t_end = t;
    if (strcmp(type, "arrive") == 0) {
        double before = tl->total.n ? tl->total.p[tl->total.n - 1].v : 0;
        series *ls = level_series(tl, level);
        if (!ls) return WK_ENOMEM;
        double mine = ls->n ? ls->p[ls->n - 1].v : 0;
        return push(ls, t, mine + (value - before)) || push(&tl->total, t, value) ? WK_ENOMEM : 0;
    }
    if (strcmp(type, "usable") == 0) return push(&tl->usable, t, value);
    if (strcmp(type, "token") == 0) return push(&tl->tokens, t, (double)(tl->tokens.n + 1));
    for (int c = 0; c < N_COMPUTE; c++)
        if (strcmp(type, compute_type[c]) == 0) {
            if (isfinite(value) && t + value > tl->t_end) tl->t_end = t + value;
            return push(&tl->compute[c], t, isfinite(value) ? value : 0);
        }
    return 0; /* other event types are not drawn */
}

static int find_request(sqlite3 *db, const char *db_path, const wk_plot_filter *f, timeline *tl, wk_err *err) {
    sqlite3_stmt *st;
    int rc;
    if (f && f->request_id) {
        rc = wk_plot_prepare(db, db_path, "SELECT r.request_id, r.ttft_s FROM complete_requests r WHERE r.request_id = ?",
                             "r", NULL, &st, err);
        if (rc) return rc;
        sqlite3_bind_int64(st, 1, f->request_id);
    } else {
        rc = wk_plot_prepare(db, db_path,
                             "SELECT r.request_id, r.ttft_s FROM complete_requests r WHERE {where} AND EXISTS"
                             " (SELECT 1 FROM events e WHERE e.request_id = r.request_id) ORDER BY r.request_id LIMIT 1",
                             "r", f, &st, err);
        if (rc) return rc;
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        tl->id = sqlite3_column_int64(st, 0);
        tl->ttft = sqlite3_column_type(st, 1) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 1);
    }
    sqlite3_finalize(st);
    if (step == SQLITE_ROW) return 0;
    if (step != SQLITE_DONE) return wk_err_set(err, WK_EDB, "%s: %s", db_path, sqlite3_errmsg(db));
    if (f && f->request_id)
        return wk_err_set(err, WK_ENOTFOUND, "%s: nothing to plot: request %lld is not in a complete run", db_path,
                          (long long)f->request_id);
    return wk_plot_empty(db_path, f, "complete requests with events", err);
}

static int load_events(sqlite3 *db, const char *db_path, timeline *tl, wk_err *err) {
    sqlite3_stmt *st;
    int rc = wk_plot_prepare(db, db_path, "SELECT t_s, type, level, value FROM events WHERE request_id = ? ORDER BY seq",
                             "e", NULL, &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, tl->id);
    int step;
    size_t n = 0;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(st, 1);
        double v = sqlite3_column_type(st, 3) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 3);
        if (type && add_event(tl, sqlite3_column_double(st, 0), type, sqlite3_column_int(st, 2), v))
            rc = wk_err_set(err, WK_ENOMEM, "out of memory");
        n++;
    }
    if (!rc && step != SQLITE_DONE) rc = wk_err_set(err, WK_EDB, "%s: %s", db_path, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (!rc && n == 0)
        rc = wk_err_set(err, WK_ENOTFOUND, "%s: nothing to plot: request %lld has no events (its run recorded no "
                                           "timeline)", db_path, (long long)tl->id);
    return rc;
}

/* Writes a step series as a block, from (t0, 0) to (t_end, last value) so steps span the axis; t0 is 0,
 * or the first event's time for series that only start then (tokens). */
static void write_steps(wk_plot_out *o, const char *name, int level, const series *s, double t_end, int from_first) {
    double last = 0, t0 = from_first && s->n ? s->p[0].t : 0;
    for (size_t i = 0; i <= s->n + 1; i++) {
        double t = i == 0 ? t0 : i <= s->n ? s->p[i - 1].t : t_end;
        double v = i == 0 ? 0 : i <= s->n ? s->p[i - 1].v : last;
        last = v;
        wk_plot_tsv_str(o->dat, name);
        if (level >= 0) fprintf(o->dat, "\t%d", level);
        else fputs("\t-", o->dat);
        wk_plot_tsv_num(o->dat, t);
        wk_plot_tsv_num(o->dat, v);
        fputc('\n', o->dat);
    }
    o->n_points += s->n + 2;
    wk_plot_end_block(o);
}

static void write_intervals(wk_plot_out *o, const char *name, const series *s) {
    for (size_t i = 0; i < s->n; i++) {
        wk_plot_tsv_str(o->dat, name);
        fputs("\t-", o->dat);
        wk_plot_tsv_num(o->dat, s->p[i].t);
        wk_plot_tsv_num(o->dat, s->p[i].v);
        fputc('\n', o->dat);
    }
    o->n_points += s->n;
    wk_plot_end_block(o);
}

/* Panel placement: panels stacked from top, heights by weight, one shared time axis at the bottom. */
typedef struct {
    double top, bottom, left, right;
} panel_box;

static void panel_begin(wk_plot_out *o, panel_box b, int bottom_panel, double ttft) {
    FILE *gp = o->gp;
    fprintf(gp, "\nset tmargin at screen %.4f\nset bmargin at screen %.4f\n", b.top, b.bottom);
    fprintf(gp, "set lmargin at screen %.4f\nset rmargin at screen %.4f\n", b.left, b.right);
    fputs(bottom_panel ? "set format x '%g'\nset xlabel 'Time since request (s)'\n" : "set format x ''\nunset xlabel\n",
          gp);
    if (isfinite(ttft)) fprintf(gp, "set arrow 1 from %.9g, graph 0 to %.9g, graph 1 nohead ls 100 back\n", ttft, ttft);
}

static void plot_bytes(wk_plot_out *o, const timeline *tl, size_t first_block, double ttft) {
    FILE *gp = o->gp;
    /* headroom above the curves keeps the key off the data */
    double top = tl->total.n ? tl->total.p[tl->total.n - 1].v / 1e6 * 1.75 : 1;
    fprintf(gp, "set ylabel 'Arrived (MB)'\nset yrange [0:%.9g]\n", top);
    fprintf(gp, "set ytics %.9g\n", wk_plot_nice_step(0, top, 4));
    fputs("set key inside top left horizontal maxrows 3 samplen 1.2\n", gp);
    for (size_t i = 0; i < tl->n_levels; i++) {
        fputs(i ? ", \\\n     " : "plot ", gp);
        wk_plot_data_ref(o, first_block + i);
        fprintf(gp, " using 3:($4/1e6) with steps lc rgb '%s' lw 1.1 title 'level %d'",
                wk_plot_palette(i), tl->levels[i].level);
    }
    if (tl->n_levels > 1) {
        fputs(", \\\n     ", gp);
        wk_plot_data_ref(o, first_block + tl->n_levels);
        fputs(" using 3:($4/1e6) with steps lc rgb '#000000' lw 1.4 title 'total'", gp);
    }
    if (isfinite(ttft)) fputs(", \\\n     NaN with lines ls 100 title 'TTFT'", gp);
    fputc('\n', gp);
}

static void plot_usable(wk_plot_out *o, const timeline *tl, size_t usable_block, size_t token_block) {
    FILE *gp = o->gp;
    /* no key: each axis label is written in its series' colour */
    fputs("unset key\nset yrange [0:1.05]\nset ytics 0.5 nomirror\n", gp);
    if (tl->usable.n) fputs("set ylabel 'KV usable' tc rgb '#0072B2'\n", gp);
    else fputs("set ylabel ''\n", gp);
    if (tl->tokens.n) {
        double n = tl->tokens.p[tl->tokens.n - 1].v;
        fprintf(gp, "set y2range [0:%.9g]\nset y2tics %.9g nomirror\nset y2label 'Tokens' tc rgb '#D55E00' offset -1.2,0\n",
                n * 1.05, fmax(1, wk_plot_nice_step(0, n, 4)));
    }
    int first = 1;
    if (tl->usable.n) {
        fputs("plot ", gp);
        wk_plot_data_ref(o, usable_block);
        fputs(" using 3:4 axes x1y1 with steps lc rgb '#0072B2' lw 1.2 title 'KV fraction usable'", gp);
        first = 0;
    }
    if (tl->tokens.n) {
        fputs(first ? "plot " : ", \\\n     ", gp);
        wk_plot_data_ref(o, token_block);
        fputs(" using 3:4 axes x1y2 with steps lc rgb '#D55E00' lw 1.2 title 'tokens emitted'", gp);
    }
    fputs("\nunset y2tics\nunset y2label\nset ytics autofreq\nset ylabel tc rgb '#000000'\n", gp);
}

static void plot_compute(wk_plot_out *o, const size_t *blocks) {
    FILE *gp = o->gp;
    fputs("unset key\nset yrange [-0.6:2.6]\nset grid noytics\nset ylabel ''\n", gp);
    fprintf(gp, "set ytics ('%s' 2, '%s' 1, '%s' 0) scale 0 font ',%g'\n", compute_label[0], compute_label[1],
            compute_label[2], (o->opts->font_pt > 0 ? o->opts->font_pt : 9) - 1);
    int first = 1;
    for (int c = 0; c < N_COMPUTE; c++) {
        if (blocks[c] == (size_t)-1) continue;
        fputs(first ? "plot " : ", \\\n     ", gp);
        wk_plot_data_ref(o, blocks[c]);
        fprintf(gp, " using ($3+$4/2):(%d):($4/2):(0.32) with boxxyerror fs solid 1.0 noborder lc rgb '%s'",
                2 - c, compute_color[c]);
        first = 0;
    }
    fputc('\n', gp);
}

static void layout(const wk_plot_out *o, const timeline *tl, int n_panels, const double *weight, panel_box *boxes) {
    double h_in = o->opts->height_in > 0 ? o->opts->height_in : 3.2;
    double w_in = o->opts->width_in > 0 ? o->opts->width_in : 3.5;
    double top = 1 - (o->opts->title ? 0.32 : 0.08) / h_in, bottom = 0.58 / h_in, gap = 0.12 / h_in;
    double left = 0.9 / w_in, right = 1 - (tl->tokens.n ? 0.62 : 0.15) / w_in;
    double total = 0;
    for (int i = 0; i < n_panels; i++) total += weight[i];
    double avail = top - bottom - gap * (n_panels - 1), y = top;
    for (int i = 0; i < n_panels; i++) {
        double h = avail * weight[i] / total;
        boxes[i] = (panel_box){y, y - h, left, right};
        y -= h + gap;
    }
}

static int draw(wk_plot_out *o, const timeline *tl) {
    size_t block = 0, bytes_block = 0, usable_block = 0, token_block = 0, compute_block[N_COMPUTE];
    fputs("series\tlevel\tt_s\tvalue\n", o->dat);
    if (tl->n_levels) {
        bytes_block = block;
        for (size_t i = 0; i < tl->n_levels; i++, block++)
            write_steps(o, "bytes", tl->levels[i].level, &tl->levels[i], tl->t_end, 0);
        write_steps(o, "bytes_total", -1, &tl->total, tl->t_end, 0);
        block++;
    }
    if (tl->usable.n) write_steps(o, "usable", -1, &tl->usable, tl->t_end, 0), usable_block = block++;
    if (tl->tokens.n) write_steps(o, "tokens", -1, &tl->tokens, tl->t_end, 1), token_block = block++;
    int any_compute = 0;
    for (int c = 0; c < N_COMPUTE; c++) {
        compute_block[c] = (size_t)-1;
        if (tl->compute[c].n) write_intervals(o, compute_type[c], &tl->compute[c]), compute_block[c] = block++;
        any_compute |= tl->compute[c].n > 0;
    }
    double weight[3];
    int kinds[3], n = 0;
    if (tl->n_levels) weight[n] = 3, kinds[n++] = 0;
    if (tl->usable.n || tl->tokens.n) weight[n] = 2.4, kinds[n++] = 1;
    if (any_compute) weight[n] = 1.3, kinds[n++] = 2;
    if (n == 0) return WK_ENOTFOUND;
    panel_box boxes[3];
    layout(o, tl, n, weight, boxes);
    wk_plot_preamble(o, 3.5, 3.2, 0);
    FILE *gp = o->gp;
    fputs("unset title\n", gp);
    double x_end = tl->t_end > 0 ? tl->t_end * 1.02 : 1;
    fprintf(gp, "set xrange [0:%.9g]\nset xtics %.9g\n", x_end, wk_plot_nice_step(0, x_end, 6));
    fputs("set multiplot", gp);
    if (o->opts->title) fputs(" title ", gp), wk_plot_quote(gp, o->opts->title);
    fputc('\n', gp);
    for (int i = 0; i < n; i++) {
        panel_begin(o, boxes[i], i == n - 1, tl->ttft);
        if (kinds[i] == 0) plot_bytes(o, tl, bytes_block, tl->ttft);
        else if (kinds[i] == 1) plot_usable(o, tl, usable_block, token_block);
        else plot_compute(o, compute_block);
    }
    fputs("unset multiplot\n", gp);
    snprintf(o->note, sizeof o->note, "request %lld", (long long)tl->id);
    return 0;
}

int wk_plot_timeline(struct sqlite3 *db, const char *db_path, const wk_plot_filter *f, wk_plot_out *o, wk_err *err) {
    timeline tl;
    memset(&tl, 0, sizeof tl);
    int rc = find_request(db, db_path, f, &tl, err);
    if (!rc) rc = load_events(db, db_path, &tl, err);
    if (!rc && isfinite(tl.ttft) && tl.ttft > tl.t_end) tl.t_end = tl.ttft; /* keep the TTFT mark in view */
    if (!rc && draw(o, &tl))
        rc = wk_err_set(err, WK_ENOTFOUND, "%s: nothing to plot: request %lld has no arrive, usable, token or compute "
                                           "events", db_path, (long long)tl.id);
    timeline_free(&tl);
    return rc;
}
