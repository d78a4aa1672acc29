/* Selecting requests for a figure: the filters become SQL conditions with bound values (never text
 * pasted into SQL), rows are grouped by (policy, sub-key) in memory, and the order statistics the
 * figures show are computed here, so every kind summarises data the same way. */
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "plots/plot.h"

/* Appends the filter's conditions (with ? placeholders) to buf; the binding order is the same as
 * bind_filter's. */
static void where_text(const wk_plot_filter *f, const char *a, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = '\0';
#define ADD(...) (n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__))
    ADD("1");
    if (f && f->n_policies) {
        ADD(" AND %s.policy IN (", a);
        for (size_t i = 0; i < f->n_policies; i++) ADD(i ? ",?" : "?");
        ADD(")");
    }
    if (f && f->n_traces) {
        ADD(" AND %s.trace IN (", a);
        for (size_t i = 0; i < f->n_traces; i++) ADD(i ? ",?" : "?");
        ADD(")");
    }
    if (f && f->model) ADD(" AND %s.model = ?", a);
    if (f && f->device) ADD(" AND %s.device = ?", a);
    if (f && f->kind) ADD(" AND %s.kind = ?", a);
    if (f && f->context_tokens) ADD(" AND %s.context_tokens = ?", a);
    if (f && f->run_id) ADD(" AND %s.run_id = ?", a);
#undef ADD
}

static void bind_filter(sqlite3_stmt *st, const wk_plot_filter *f) {
    int i = 1;
    if (!f) return;
    for (size_t k = 0; k < f->n_policies; k++) sqlite3_bind_text(st, i++, f->policies[k], -1, SQLITE_STATIC);
    for (size_t k = 0; k < f->n_traces; k++) sqlite3_bind_text(st, i++, f->traces[k], -1, SQLITE_STATIC);
    if (f->model) sqlite3_bind_text(st, i++, f->model, -1, SQLITE_STATIC);
    if (f->device) sqlite3_bind_text(st, i++, f->device, -1, SQLITE_STATIC);
    if (f->kind) sqlite3_bind_text(st, i++, f->kind, -1, SQLITE_STATIC);
    if (f->context_tokens) sqlite3_bind_int(st, i++, f->context_tokens);
    if (f->run_id) sqlite3_bind_int64(st, i++, f->run_id);
}

int wk_plot_prepare(sqlite3 *db, const char *db_path, const char *sql, const char *alias, const wk_plot_filter *f,
                    sqlite3_stmt **st, wk_err *err) {
    size_t nf = (f ? f->n_policies + f->n_traces : 0);
    size_t wcap = 256 + nf * 2 + 16 * strlen(alias);
    char *where = malloc(wcap);
    const char *mark = strstr(sql, "{where}");
    size_t cap = strlen(sql) + wcap + 1;
    char *full = malloc(cap);
    if (!where || !full) {
        free(where);
        free(full);
        return wk_err_set(err, WK_ENOMEM, "%s: out of memory building a query", db_path);
    }
    where_text(f, alias, where, wcap);
    if (mark) snprintf(full, cap, "%.*s%s%s", (int)(mark - sql), sql, where, mark + strlen("{where}"));
    else snprintf(full, cap, "%s", sql);
    int rc = sqlite3_prepare_v2(db, full, -1, st, NULL);
    free(where);
    free(full);
    if (rc != SQLITE_OK)
        return wk_err_set(err, WK_EDB, "%s: %s (is it a wikv results database?)", db_path, sqlite3_errmsg(db));
    bind_filter(*st, f);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void wk_plot_sort(double *v, size_t n) {
    if (n > 1) qsort(v, n, sizeof *v, cmp_double);
}

double wk_plot_quantile(const double *v, size_t n, double q) {
    if (n == 0) return NAN;
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)floor(pos);
    if (lo >= n - 1) return v[n - 1];
    double frac = pos - (double)lo;
    return v[lo] + (v[lo + 1] - v[lo]) * frac;
}

static int str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static char *dup_or_null(const unsigned char *s) {
    if (!s) return NULL;
    size_t n = strlen((const char *)s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static wk_plot_group *find_group(wk_plot_groups *gs, const char *policy, const char *sub) {
    for (size_t i = gs->n; i-- > 0;)
        if (str_eq(gs->g[i].policy, policy) && str_eq(gs->g[i].sub, sub)) return &gs->g[i];
    if (gs->n == gs->cap) {
        size_t cap = gs->cap ? gs->cap * 2 : 16;
        wk_plot_group *g = realloc(gs->g, cap * sizeof *g);
        if (!g) return NULL;
        gs->g = g;
        gs->cap = cap;
    }
    wk_plot_group *g = &gs->g[gs->n];
    memset(g, 0, sizeof *g);
    g->policy = dup_or_null((const unsigned char *)policy);
    g->sub = dup_or_null((const unsigned char *)sub);
    if (!g->policy || (sub && !g->sub)) {
        free(g->policy);
        free(g->sub);
        return NULL;
    }
    gs->n++;
    return g;
}

static int add_row(wk_plot_groups *gs, sqlite3_stmt *st) {
    const char *policy = (const char *)sqlite3_column_text(st, 0);
    const char *sub = (const char *)sqlite3_column_text(st, 1);
    wk_plot_group *g = find_group(gs, policy ? policy : "-", sub);
    if (!g) return WK_ENOMEM;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 32;
        double *rows = realloc(g->rows, cap * (size_t)gs->ncol * sizeof *rows);
        if (!rows) return WK_ENOMEM;
        g->rows = rows;
        g->cap = cap;
    }
    double *row = g->rows + g->n * (size_t)gs->ncol;
    for (int j = 0; j < gs->ncol; j++)
        row[j] = sqlite3_column_type(st, 2 + j) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 2 + j);
    g->n++;
    return 0;
}

static int cmp_group(const void *a, const void *b) {
    const wk_plot_group *x = a, *y = b;
    int rx = wk_plot_policy_rank(x->policy), ry = wk_plot_policy_rank(y->policy);
    if (rx != ry) return rx - ry;
    int c = strcmp(x->policy, y->policy);
    if (c) return c;
    return strcmp(x->sub ? x->sub : "", y->sub ? y->sub : "");
}

int wk_plot_groups_load(sqlite3 *db, const char *db_path, const char *sql, const char *alias,
                        const wk_plot_filter *f, int ncol, wk_plot_groups *out, wk_err *err) {
    memset(out, 0, sizeof *out);
    out->ncol = ncol;
    sqlite3_stmt *st;
    int rc = wk_plot_prepare(db, db_path, sql, alias, f, &st, err);
    if (rc) return rc;
    int step;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW)
        if (add_row(out, st)) rc = wk_err_set(err, WK_ENOMEM, "%s: out of memory reading requests", db_path);
    if (!rc && step != SQLITE_DONE) rc = wk_err_set(err, WK_EDB, "%s: %s", db_path, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (rc) {
        wk_plot_groups_free(out);
        return rc;
    }
    if (out->n > 1) qsort(out->g, out->n, sizeof *out->g, cmp_group);
    return 0;
}

void wk_plot_groups_free(wk_plot_groups *gs) {
    for (size_t i = 0; i < gs->n; i++) {
        free(gs->g[i].policy);
        free(gs->g[i].sub);
        free(gs->g[i].rows);
    }
    free(gs->g);
    memset(gs, 0, sizeof *gs);
}

size_t wk_plot_group_column(const wk_plot_group *g, int ncol, int j, double *vals) {
    size_t m = 0;
    for (size_t i = 0; i < g->n; i++) {
        double v = g->rows[i * (size_t)ncol + (size_t)j];
        if (!isnan(v)) vals[m++] = v;
    }
    wk_plot_sort(vals, m);
    return m;
}

static void list_describe(const char *flag, const char *const *v, size_t n, char *buf, size_t cap, size_t *len) {
    if (!n) return;
    *len += (size_t)snprintf(buf + *len, *len < cap ? cap - *len : 0, "%s%s ", *len ? " " : "", flag);
    for (size_t i = 0; i < n; i++)
        *len += (size_t)snprintf(buf + *len, *len < cap ? cap - *len : 0, "%s%s", i ? "," : "", v[i]);
}

void wk_plot_filter_describe(const wk_plot_filter *f, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = '\0';
    if (f) {
        list_describe("--policy", f->policies, f->n_policies, buf, cap, &n);
        list_describe("--trace", f->traces, f->n_traces, buf, cap, &n);
        const char *one[] = {f->model, f->device, f->kind};
        const char *flag[] = {"--model", "--device", "--kind"};
        for (int i = 0; i < 3; i++)
            if (one[i]) list_describe(flag[i], &one[i], 1, buf, cap, &n);
#define ADDN(...) (n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__))
        if (f->context_tokens) ADDN("%s--context %d", n ? " " : "", f->context_tokens);
        if (f->run_id) ADDN("%s--run %lld", n ? " " : "", (long long)f->run_id);
        if (f->request_id) ADDN("%s--request %lld", n ? " " : "", (long long)f->request_id);
#undef ADDN
    }
    if (!buf[0]) snprintf(buf, cap, "no filters");
}

int wk_plot_empty(const char *db_path, const wk_plot_filter *f, const char *what, wk_err *err) {
    char desc[512];
    wk_plot_filter_describe(f, desc, sizeof desc);
    return wk_err_set(err, WK_ENOTFOUND, "%s: nothing to plot: no %s (selection: %s)", db_path, what, desc);
}

void wk_plot_groups_range(const wk_plot_groups *gs, int j, double *lo, double *hi) {
    *lo = *hi = NAN;
    for (size_t i = 0; i < gs->n; i++)
        for (size_t k = 0; k < gs->g[i].n; k++) {
            double v = gs->g[i].rows[k * (size_t)gs->ncol + (size_t)j];
            if (isnan(v)) continue;
            if (isnan(*lo) || v < *lo) *lo = v;
            if (isnan(*hi) || v > *hi) *hi = v;
        }
}
