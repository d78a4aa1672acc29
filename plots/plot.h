/* `wikv plot`: figures for papers, drawn by gnuplot from the results database only.
 *
 * Promises: a figure is made from the complete_requests view (a half-written run never shows), the
 * events and the trace_samples tables, nothing else. Next to FIG.{png,pdf,svg} it writes FIG.tsv (the
 * numbers plotted: a header line of column names, then rows; series are blocks separated by two blank
 * lines, so gnuplot's `index` and any TSV reader both work) and FIG.gp (the gnuplot script, which
 * re-draws the figure with `cd DIR && gnuplot FIG.gp`). gnuplot runs as a child process in the
 * figure's folder. One style for every kind: Okabe-Ito colours, a fixed colour/marker/dash per known
 * policy, 9 pt Helvetica at 3.5 in x 2.4 in, no key box, light grid, no title unless asked.
 * A missing database is never created: it is an error naming the path.
 */
#ifndef WIKV_PLOTS_PLOT_H
#define WIKV_PLOTS_PLOT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "core/results.h"

struct sqlite3;
struct sqlite3_stmt;

typedef enum wk_plot_kind {
    WK_PLOT_TTFT_CDF,
    WK_PLOT_TTFT_VS_BW,
    WK_PLOT_QUALITY_LATENCY,
    WK_PLOT_TIMELINE,
    WK_PLOT_TRACE,
    WK_PLOT_SIM_VS_EXEC,
    WK_PLOT_BREAKDOWN,
    WK_PLOT_PARETO,
    WK_PLOT_KIND_COUNT
} wk_plot_kind;

/* Which requests a figure uses. NULL / 0 / empty means "any". Lists match any of their values. */
typedef struct wk_plot_filter {
    const char *const *policies; /* [n_policies] */
    size_t n_policies;
    const char *const *traces; /* [n_traces] */
    size_t n_traces;
    const char *model, *device;
    const char *kind;     /* "sim" or "exec" */
    int context_tokens;   /* 0 = any */
    int64_t run_id;       /* 0 = any */
    int64_t request_id;   /* timeline only: 0 = the first request of the selection */
} wk_plot_filter;

typedef struct wk_plot_opts {
    double width_in, height_in; /* 0 = the kind's default (3.5 x 2.4; timeline 3.5 x 3.2) */
    double font_pt;             /* 0 = 9 */
    const char *title;          /* NULL = no title (paper figures carry their caption outside) */
    int log_x, log_y;           /* logarithmic axes where the kind has numeric axes */
} wk_plot_opts;

/* What a render produced, for the command's one-line report and for tests. */
typedef struct wk_plot_result {
    size_t n_series;    /* curves / bar groups / point sets drawn */
    size_t n_points;    /* data rows written to FIG.tsv */
    char fig[1024], data[1024], script[1024];
    char note[256];     /* kind-specific summary (e.g. sim-vs-exec error), may be empty */
} wk_plot_result;

/* Kind names as typed on the command line ("ttft-cdf", ...); -1 when unknown. */
int wk_plot_kind_from_name(const char *name);
const char *wk_plot_kind_name(wk_plot_kind kind);
const char *wk_plot_kind_summary(wk_plot_kind kind);

/* Draws one figure from an open results database. db_path is used in messages only. out_path ends in
 * .png, .pdf or .svg. Errors: WK_EINVAL (bad option, unknown extension), WK_ENOTFOUND (empty
 * selection, unknown request), WK_EUNSUPPORTED (gnuplot not on PATH: FIG.tsv and FIG.gp are written),
 * WK_EDB, WK_EIO (write failure, gnuplot failed). */
int wk_plot_render(struct sqlite3 *db, const char *db_path, wk_plot_kind kind, const wk_plot_filter *f,
                   const wk_plot_opts *opts, const char *out_path, wk_plot_result *res, wk_err *err);

/* Opens an existing results database for reading; a missing path is WK_ENOTFOUND and is not created,
 * a file that is not SQLite is WK_EFORMAT. */
int wk_plot_open_db(const char *db_path, wk_results **out, wk_err *err);

/* wk_plot_open_db + wk_plot_render + close. */
int wk_plot_file(const char *db_path, wk_plot_kind kind, const wk_plot_filter *f, const wk_plot_opts *opts,
                 const char *out_path, wk_plot_result *res, wk_err *err);

/* 1 when an executable `gnuplot` is on PATH. */
int wk_plot_have_gnuplot(void);

/* ---- Style (plots/style.c): the same look for every figure. ---- */

typedef struct wk_plot_style {
    const char *color; /* "#RRGGBB", Okabe-Ito */
    int point;         /* gnuplot point type */
    int dash;          /* gnuplot dash type (1 solid) */
    double width;      /* line width in points */
} wk_plot_style;

/* Fixed style for known policies, a stable hash of the name for others. */
wk_plot_style wk_plot_style_of(const char *policy);
/* Legend order: known policies in table order, then others (rank = number of known policies). */
int wk_plot_policy_rank(const char *policy);
/* Colour i of the Okabe-Ito palette without yellow (too pale on white), for non-policy series. */
const char *wk_plot_palette(size_t i);

/* ---- Building blocks shared by the kinds (plots/select.c, plots/render.c). ---- */

typedef enum { WK_PLOT_PNG, WK_PLOT_PDF, WK_PLOT_SVG } wk_plot_format;

/* One figure being written: the three paths, the open data and script files. */
typedef struct wk_plot_out {
    char fig[1024], data[1024], script[1024], dir[1024];
    const char *fig_base, *data_base, *script_base; /* point into fig/data/script */
    wk_plot_format format;
    FILE *dat, *gp;
    const wk_plot_opts *opts;
    size_t n_points, n_series;
    char note[256];
} wk_plot_out;

/* Writes the terminal, output and common style lines; w_in/h_in are the kind's default size;
 * numeric_axes: apply the --log-x/--log-y options (kinds with categorical axes pass 0). */
void wk_plot_preamble(wk_plot_out *o, double w_in, double h_in, int numeric_axes);
/* Writes s as a gnuplot single-quoted string. */
void wk_plot_quote(FILE *gp, const char *s);
/* Writes s as one TSV field (tabs and newlines become spaces; NULL becomes "-"). */
void wk_plot_tsv_str(FILE *dat, const char *s);
/* Writes a number as one TSV field ("%.9g"; NaN for a missing value), preceded by a tab. */
void wk_plot_tsv_num(FILE *dat, double v);
/* Flags of wk_plot_style_spec. */
enum { WK_PLOT_LINE = 0, WK_PLOT_POINTS = 1, WK_PLOT_SOLID = 2 /* error bars: solid whatever the dash */ };
/* Writes " lc rgb '#..' dt N lw W" (and " pt N ps 0.7" with WK_PLOT_POINTS) for a policy. */
void wk_plot_style_spec(FILE *gp, const char *policy, int flags);
/* A tick step of 1, 2, 2.5 or 5 x 10^k giving at most max_ticks ticks over [lo, hi]; 0 if empty. */
double wk_plot_nice_step(double lo, double hi, int max_ticks);
/* "set Xtics STEP" for data spanning [lo, hi], unless that axis is logarithmic: gnuplot's own choice
 * crowds 9 pt labels at column width. */
void wk_plot_ticks(wk_plot_out *o, char axis, double lo, double hi, int max_ticks);
/* Writes "'FIG.tsv' skip 1 index N" (the header line is skipped; N counts blocks from 0). */
void wk_plot_data_ref(wk_plot_out *o, size_t index);
/* Ends the current block of the data file (two blank lines) and counts a series. */
void wk_plot_end_block(wk_plot_out *o);

/* Rows grouped by (policy, sub): columns 0 and 1 of a query are text, the next ncol are numbers. */
typedef struct wk_plot_group {
    char *policy, *sub; /* sub may be NULL */
    double *rows;       /* [n][ncol], NULL column -> NaN */
    size_t n, cap;
} wk_plot_group;

typedef struct wk_plot_groups {
    wk_plot_group *g; /* [n], sorted by policy rank, policy, sub */
    size_t n, cap;
    int ncol;
} wk_plot_groups;

/* Runs sql, in which the text "{where}" is replaced by the filter's conditions on table alias
 * `alias` (or "1" when there are none), and groups its rows. */
int wk_plot_groups_load(struct sqlite3 *db, const char *db_path, const char *sql, const char *alias,
                        const wk_plot_filter *f, int ncol, wk_plot_groups *out, wk_err *err);
void wk_plot_groups_free(wk_plot_groups *gs);
/* Smallest and largest non-NaN value of column j over all groups (NaN, NaN when none). */
void wk_plot_groups_range(const wk_plot_groups *gs, int j, double *lo, double *hi);
/* Column j of a group without NaNs, sorted ascending; returns the count (vals holds g->n doubles). */
size_t wk_plot_group_column(const wk_plot_group *g, int ncol, int j, double *vals);

/* Prepares sql with "{where}" replaced as above and the filter values bound. */
int wk_plot_prepare(struct sqlite3 *db, const char *db_path, const char *sql, const char *alias,
                    const wk_plot_filter *f, struct sqlite3_stmt **st, wk_err *err);
/* "--policy a,b --trace t ..." or "no filters", for messages. */
void wk_plot_filter_describe(const wk_plot_filter *f, char *buf, size_t cap);
/* The clear "nothing to plot" error: names the database, the filters and what was looked for. */
int wk_plot_empty(const char *db_path, const wk_plot_filter *f, const char *what, wk_err *err);

/* Quantile q in [0,1] of sorted v[n] (linear interpolation between order statistics); NaN if n = 0. */
double wk_plot_quantile(const double *v, size_t n, double q);
/* A quick sort of v[n] ascending. */
void wk_plot_sort(double *v, size_t n);

/* The kinds (one file each): write o->dat and o->gp, return 0 or an error. */
int wk_plot_ttft_cdf(struct sqlite3 *db, const char *db_path, const wk_plot_filter *f, wk_plot_out *o, wk_err *err);
int wk_plot_ttft_vs_bw(struct sqlite3 *db, const char *db_path, const wk_plot_filter *f, wk_plot_out *o,
                       wk_err *err);
int wk_plot_quality_latency(struct sqlite3 *db, const char *db_path, const wk_plot_filter *f, wk_plot_out *o,
                            wk_err *err);
int wk_plot_timeline(struct sqlite3 *db, const char *db_path, const wk_plot_filter *f, wk_plot_out *o, wk_err *err);
int wk_plot_trace(struct sqlite3 *db, const char *db_path, const wk_plot_filter *f, wk_plot_out *o, wk_err *err);
int wk_plot_sim_vs_exec(struct sqlite3 *db, const char *db_path, const wk_plot_filter *f, wk_plot_out *o,
                        wk_err *err);
int wk_plot_breakdown(struct sqlite3 *db, const char *db_path, const wk_plot_filter *f, wk_plot_out *o,
                      wk_err *err);
int wk_plot_pareto(struct sqlite3 *db, const char *db_path, const wk_plot_filter *f, wk_plot_out *o, wk_err *err);

#endif
