/* Policy search in the simulator: grid then pattern search per policy (method in sim/choose.h). */
#include "sim/choose.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/progress.h"
#include "core/stats.h"
#include "sim/sim.h"

static const double quantiles[WK_CHOOSE_NQ] = {0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95};

wk_choose_config wk_choose_defaults(void) {
    wk_choose_config c;
    memset(&c, 0, sizeof c);
    c.context_tokens = 8192;
    c.output_tokens = 1;
    c.requests_per_trace = 5;
    c.task = "none";
    c.link = wk_link_defaults();
    c.quality_min = 0.95;
    c.objective_q = 0.5;
    c.grid_budget = 32;
    c.max_refine = 32;
    c.resolution = 1.0 / 256;
    return c;
}

/* ---- inputs loaded once ---- */

typedef struct {
    wk_trace *search, *held;        /* [n_search], [n_held] */
    size_t n_search, n_held;
    wk_model_spec model;
    wk_device device;
    wk_quality_table quality;
    wk_sim sim;
    wk_policy live;                 /* the policy object evaluated (see set_policy) */
    double *ttft, *f1;              /* [max requests] per evaluation */
    size_t cap;
} inputs;

static void free_inputs(inputs *in) {
    for (size_t i = 0; i < in->n_search; i++) wk_trace_free(&in->search[i]);
    for (size_t i = 0; i < in->n_held; i++) wk_trace_free(&in->held[i]);
    free(in->search);
    free(in->held);
    free(in->ttft);
    free(in->f1);
    wk_policy_free(&in->live);
    wk_sim_free(&in->sim);
}

static int load_traces(const char *const *paths, size_t n, wk_trace **out, size_t *loaded, wk_err *err) {
    *out = calloc(n ? n : 1, sizeof **out);
    if (!*out) return wk_err_set(err, WK_ENOMEM, "choose: out of memory");
    for (size_t i = 0; i < n; i++) {
        int rc = wk_trace_load(paths[i], WK_FMT_AUTO, &(*out)[i], err);
        if (rc) return rc;
        (*loaded)++;
    }
    return 0;
}

static int load_inputs(const wk_choose_config *cfg, inputs *in, wk_err *err) {
    memset(in, 0, sizeof *in);
    wk_sim_init(&in->sim);
    int rc = load_traces(cfg->traces, cfg->n_traces, &in->search, &in->n_search, err);
    if (!rc) rc = load_traces(cfg->holdout, cfg->n_holdout, &in->held, &in->n_held, err);
    if (!rc) rc = wk_model_spec_find(cfg->model, &in->model, err);
    if (!rc) rc = wk_device_find(cfg->device, &in->device, err);
    if (!rc) rc = cfg->quality_path ? wk_quality_load(cfg->quality_path, &in->quality, err)
                                    : wk_quality_load_default(&in->quality, err);
    size_t most = (cfg->n_traces > cfg->n_holdout ? cfg->n_traces : cfg->n_holdout) *
                  (size_t)cfg->requests_per_trace;
    in->cap = most ? most : 1;
    in->ttft = malloc(in->cap * sizeof *in->ttft);
    in->f1 = malloc(in->cap * sizeof *in->f1);
    if (!rc && (!in->ttft || !in->f1)) rc = wk_err_set(err, WK_ENOMEM, "choose: out of memory");
    return rc;
}

/* ---- evaluating one configuration ---- */

static int store_request(wk_results *db, int64_t run_id, const wk_choose_config *cfg, const inputs *in,
                         const wk_policy *pol, const char *spec, const wk_trace *tr, int r, const wk_sim_result *res,
                         double f1, wk_err *err) {
    char key[1024];
    snprintf(key, sizeof key, "%s|%s|%s|%s|%d|%d", spec, tr->name, in->model.name, in->device.name,
             cfg->context_tokens, r);
    wk_request_row row = wk_results_empty_row("sim");
    row.policy = pol->ops->name;
    row.params = spec;
    row.trace = tr->name;
    row.trace_mean_mbps = wk_trace_mean_mbps(tr);
    row.model = in->model.name;
    row.device = in->device.name;
    row.task = cfg->task;
    row.context_tokens = cfg->context_tokens;
    row.seed = r;
    row.cell = key;
    row.output_tokens = res->s.tokens;
    if (res->s.ok) {
        row.ttft_s = res->s.ttft_s;
        row.tpot_s = res->s.tpot_s;
        row.total_s = res->s.total_s;
        row.bytes_sent = res->s.payload_bytes_sent;
        row.link_utilisation = res->link_utilisation;
        row.kv_fraction_at_first = res->s.kv_fraction_at_first;
        row.net_wait_s = res->s.net_wait_s;
        row.kv_decode_s = res->s.kv_decode_s;
        row.compute_s = res->s.compute_s;
        row.f1 = f1; /* predicted from the quality table: the run's note says so */
    } else {
        row.status = "failed";
        row.fail_reason = res->s.fail_reason;
    }
    int64_t id;
    return wk_results_add_request(db, run_id, &row, &id, err);
}

/* Runs every request of `spec` on traces[0..n) (the same requests as `wikv sim`) and summarises them. */
/* Sets `live` to `spec`. A policy object is kept across the configurations of one policy: its state
 * caches what depends on the model shape only (codec sizes, keyed by what they depend on), plan()
 * re-derives the rest when the spec changes (the simulator re-plans on a new spec), start() resets
 * each request. Measuring codec sizes anew for every configuration would dominate the search. */
static int set_policy(wk_policy *live, const char *spec, wk_err *err) {
    wk_policy p;
    int rc = wk_policy_create(spec, &p, err);
    if (!rc && live->ops == p.ops) {
        memcpy(live->param, p.param, sizeof live->param);
        snprintf(live->spec, sizeof live->spec, "%s", spec);
        wk_policy_free(&p);
        return 0;
    }
    if (!rc) {
        wk_policy_free(live);
        *live = p;
        snprintf(live->spec, sizeof live->spec, "%s", spec);
        return 0;
    }
    wk_policy_free(&p);
    return rc;
}

/* Runs every request of the live policy on traces[0..n); ttft/f1 of the successful ones go to in->ttft
 * and in->f1 ([*ok]). */
static int run_requests(const wk_choose_config *cfg, inputs *in, const wk_trace *traces, size_t n, const char *spec,
                        wk_results *db, int64_t run_id, wk_choose_point *pt, size_t *ok, wk_err *err) {
    wk_policy *pol = &in->live;
    int rc = 0;
    for (size_t t = 0; !rc && t < n; t++)
        for (int r = 0; !rc && r < cfg->requests_per_trace; r++) {
            wk_sim_config sc = {.trace = &traces[t], .link = cfg->link, .model = &in->model, .device = &in->device,
                                .context_tokens = cfg->context_tokens, .output_tokens = cfg->output_tokens,
                                .task = cfg->task, .seed = (uint64_t)r, .quality = &in->quality};
            sc.link.trace_offset_s = traces[t].period_s * r / cfg->requests_per_trace;
            wk_sim_result res;
            rc = wk_sim_request(&in->sim, pol, &sc, NULL, &res, err);
            if (rc) return rc;
            pt->requests++;
            double accept, f1 = NAN;
            if (res.s.ok && wk_quality_lookup(&in->quality, pol->ops->name, res.s.coverage_at_first, &accept, &f1))
                f1 = NAN;
            if (!res.s.ok || !isfinite(f1)) pt->failed++;
            else {
                in->ttft[*ok] = res.s.ttft_s;
                in->f1[(*ok)++] = f1;
            }
            if (db) rc = store_request(db, run_id, cfg, in, pol, spec, &traces[t], r, &res, f1, err);
        }
    return rc;
}

static int evaluate(const wk_choose_config *cfg, inputs *in, const wk_trace *traces, size_t n, const char *spec,
                    wk_results *db, int64_t run_id, wk_choose_point *pt, wk_err *err) {
    memset(pt, 0, sizeof *pt);
    snprintf(pt->spec, sizeof pt->spec, "%s", spec);
    int rc = set_policy(&in->live, spec, err);
    if (rc) return rc;
    snprintf(pt->policy, sizeof pt->policy, "%s", in->live.ops->name);
    size_t ok = 0;
    rc = run_requests(cfg, in, traces, n, spec, db, run_id, pt, &ok, err);
    if (rc == WK_EINVAL || rc == WK_EUNSUPPORTED) { /* parameters the policy refuses (its plan failed) */
        pt->requests = pt->failed = n * (size_t)cfg->requests_per_trace;
        snprintf(pt->invalid, sizeof pt->invalid, "%.159s", err->msg);
        wk_err_clear(err);
        rc = 0;
        ok = 0;
    }
    if (rc) return rc;
    pt->objective = pt->ttft_mean = pt->f1 = NAN;
    for (int q = 0; q < WK_CHOOSE_NQ; q++) pt->ttft_q[q] = NAN;
    if (ok) {
        double f1_sum = 0, ttft_sum = 0;
        for (size_t i = 0; i < ok; i++) {
            f1_sum += in->f1[i];
            ttft_sum += in->ttft[i];
        }
        wk_sort_doubles(in->ttft, ok);
        for (int q = 0; q < WK_CHOOSE_NQ; q++) pt->ttft_q[q] = wk_percentile_sorted(in->ttft, ok, quantiles[q]);
        pt->objective = wk_percentile_sorted(in->ttft, ok, cfg->objective_q);
        pt->ttft_mean = ttft_sum / (double)ok;
        pt->f1 = f1_sum / (double)ok;
    }
    pt->feasible = ok > 0 && pt->failed == 0 && pt->f1 >= cfg->quality_min;
    return 0;
}

/* ---- parameter axes: unit-cube coordinates <-> values ---- */

typedef enum { AXIS_LINEAR, AXIS_LOG, AXIS_LOG0 } axis_scale;

typedef struct {
    const wk_param_desc *d;
    size_t index;        /* position in the policy's parameter table */
    axis_scale scale;
} axis;

static axis make_axis(const wk_param_desc *d, size_t index) {
    axis a = {d, index, AXIS_LINEAR};
    if (d->min > 0 && d->max / d->min >= 100) a.scale = AXIS_LOG;
    else if (d->min == 0 && d->max >= 100) a.scale = AXIS_LOG0;
    return a;
}

static double axis_value(const axis *a, double u) {
    const wk_param_desc *d = a->d;
    u = u < 0 ? 0 : u > 1 ? 1 : u;
    double v;
    if (a->scale == AXIS_LOG) v = d->min * pow(d->max / d->min, u);
    else if (a->scale == AXIS_LOG0) v = u <= 0 ? 0 : d->max * pow(1000.0, u - 1); /* 0, then max/1000..max */
    else v = d->min + u * (d->max - d->min);
    if (d->is_int) v = round(v);
    return v < d->min ? d->min : v > d->max ? d->max : v;
}

/* Integer ranges with few values are searched exhaustively: the grid size they need. */
static int int_values(const wk_param_desc *d) {
    return d->is_int && d->max - d->min < 16 ? (int)(d->max - d->min) + 1 : 0;
}

/* A parameter value as text that parses back to exactly the value used. */
static void format_value(const wk_param_desc *d, double v, char *buf, size_t cap) {
    if (d->is_int) {
        snprintf(buf, cap, "%.0f", v);
        return;
    }
    snprintf(buf, cap, "%g", v);
    double back = strtod(buf, NULL);
    if (back < d->min || back > d->max) snprintf(buf, cap, "%.17g", v < d->min ? d->min : v > d->max ? d->max : v);
}

typedef struct {
    const wk_policy_ops *ops;
    double pinned[WK_POLICY_MAX_PARAMS];   /* values of every parameter (pinned ones fixed) */
    axis ax[WK_POLICY_MAX_PARAMS];         /* the free parameters */
    size_t n_ax;
} space;

/* Values of the free parameters from u[n_ax] (and the pinned ones) into a canonical spec. */
static void make_spec(const space *s, const double *u, char *spec, size_t cap) {
    double val[WK_POLICY_MAX_PARAMS];
    memcpy(val, s->pinned, sizeof val);
    for (size_t k = 0; k < s->n_ax; k++) val[s->ax[k].index] = axis_value(&s->ax[k], u[k]);
    size_t used = (size_t)snprintf(spec, cap, "%s", s->ops->name);
    for (size_t i = 0; i < s->ops->n_params && used < cap; i++) {
        char v[64];
        format_value(&s->ops->params[i], val[i], v, sizeof v);
        used += (size_t)snprintf(spec + used, cap - used, "%c%s=%s", i ? ',' : ':', s->ops->params[i].name, v);
    }
}

/* Parses a policy spec: parameters it names are pinned, the others become axes. */
static int make_space(const char *spec, space *s, wk_err *err) {
    memset(s, 0, sizeof *s);
    wk_policy p;
    int rc = wk_policy_create(spec, &p, err);
    if (!rc) {
        s->ops = p.ops;
        memcpy(s->pinned, p.param, sizeof s->pinned);
        const char *colon = strchr(spec, ':');
        for (size_t i = 0; i < p.ops->n_params; i++) {
            char key[64];
            snprintf(key, sizeof key, "%s=", p.ops->params[i].name);
            int named = 0;
            for (const char *q = colon; q && !named; q = strchr(q + 1, ','))
                named = strncmp(q + 1, key, strlen(key)) == 0;
            if (!named) s->ax[s->n_ax++] = make_axis(&p.ops->params[i], i);
        }
    }
    wk_policy_free(&p);
    return rc;
}

/* ---- the search ---- */

typedef struct {
    const wk_choose_config *cfg;
    inputs *in;
    wk_results *db;
    wk_choose_result *res;
    wk_progress prog;
} search;

static long find_point(const wk_choose_result *r, const char *spec) {
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->points[i].spec, spec) == 0) return (long)i;
    return -1;
}

/* Evaluates a spec once (repeats are looked up); *index gets its point. */
static int visit(search *s, const char *spec, long *index, wk_err *err) {
    *index = find_point(s->res, spec);
    if (*index >= 0) return 0;
    wk_choose_result *r = s->res;
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 64;
        wk_choose_point *p = realloc(r->points, cap * sizeof *p);
        if (!p) return wk_err_set(err, WK_ENOMEM, "choose: out of memory");
        r->points = p;
        r->cap = cap;
    }
    int rc = evaluate(s->cfg, s->in, s->in->search, s->in->n_search, spec, s->db, r->run_id, &r->points[r->n], err);
    if (rc) return rc;
    *index = (long)r->n++;
    if (s->cfg->progress) wk_progress_step(&s->prog, 1);
    return 0;
}

/* Lower objective wins; on a tie the higher F1 (so the winner is on the Pareto front). */
static int better(const wk_choose_point *a, const wk_choose_point *b) {
    return a->feasible &&
           (!b || !b->feasible || a->objective < b->objective || (a->objective == b->objective && a->f1 > b->f1));
}

/* Points per axis: all start at 1 (the default value); the axis with the fewest points gets one more
 * while the grid stays within the budget (integer axes stop at their number of values). */
static int grid_points(const space *sp, int budget, int *g) {
    long total = 1;
    for (size_t k = 0; k < sp->n_ax; k++) g[k] = 1;
    for (;;) {
        long pick = -1;
        for (size_t k = 0; k < sp->n_ax; k++) {
            int cap = int_values(sp->ax[k].d), inc = g[k] == 1 && (!cap || cap >= 3) ? 2 : 1;
            if ((cap && g[k] + inc > cap) || total / g[k] * (g[k] + inc) > budget) continue;
            if (pick < 0 || g[k] < g[pick]) pick = (long)k;
        }
        if (pick < 0) break;
        int cap = int_values(sp->ax[pick].d);
        total /= g[pick];
        g[pick] += g[pick] == 1 && (!cap || cap >= 3) ? 2 : 1; /* 1 -> 3: both ends and the middle */
        total *= g[pick];
    }
    return (int)total;
}

/* Unit-cube coordinate of a value (inverse of axis_value, up to rounding). */
static double axis_unit(const axis *a, double v) {
    const wk_param_desc *d = a->d;
    double u;
    if (a->scale == AXIS_LOG) u = log(v / d->min) / log(d->max / d->min);
    else if (a->scale == AXIS_LOG0) u = v <= d->max / 1000 ? 0 : 1 + log(v / d->max) / log(1000.0);
    else u = d->max > d->min ? (v - d->min) / (d->max - d->min) : 0;
    return u < 0 ? 0 : u > 1 ? 1 : u;
}

typedef struct {
    long best;                            /* best feasible point of the policy, -1 if none */
    double u[WK_POLICY_MAX_PARAMS];       /* its coordinates */
} policy_best;

static int consider(search *s, const space *sp, const double *u, policy_best *pb, int *is_new, wk_err *err) {
    char spec[WK_CHOOSE_SPEC_MAX];
    make_spec(sp, u, spec, sizeof spec);
    size_t before = s->res->n;
    long idx;
    int rc = visit(s, spec, &idx, err);
    if (rc) return rc;
    if (is_new) *is_new = s->res->n > before;
    if (better(&s->res->points[idx], pb->best >= 0 ? &s->res->points[pb->best] : NULL)) {
        pb->best = idx;
        memcpy(pb->u, u, sizeof pb->u);
        return 1;
    }
    return 0;
}

/* The default configuration, then the grid (mixed-radix counter over g[k] values per axis). */
static int run_grid(search *s, const space *sp, const int *g, policy_best *pb, wk_err *err) {
    double u0[WK_POLICY_MAX_PARAMS] = {0}, u[WK_POLICY_MAX_PARAMS];
    for (size_t k = 0; k < sp->n_ax; k++) u0[k] = axis_unit(&sp->ax[k], sp->pinned[sp->ax[k].index]);
    int rc = consider(s, sp, u0, pb, NULL, err);
    int idx[WK_POLICY_MAX_PARAMS] = {0};
    for (int done = 0; rc >= 0 && !done;) {
        for (size_t k = 0; k < sp->n_ax; k++) u[k] = g[k] > 1 ? (double)idx[k] / (g[k] - 1) : u0[k];
        rc = consider(s, sp, u, pb, NULL, err);
        size_t k = 0;
        while (k < sp->n_ax && ++idx[k] == g[k]) idx[k++] = 0;
        done = k == sp->n_ax;
    }
    return rc < 0 ? rc : 0;
}

/* Pattern search around the policy's best feasible point (see the header). */
static int refine(search *s, const space *sp, const int *g, policy_best *pb, wk_err *err) {
    if (pb->best < 0 || sp->n_ax == 0) return 0;
    double step[WK_POLICY_MAX_PARAMS];
    for (size_t k = 0; k < sp->n_ax; k++) step[k] = g[k] > 1 ? 1.0 / (g[k] - 1) : 0.25;
    int evals = 0;
    while (evals < s->cfg->max_refine) {
        int moved = 0;
        for (size_t k = 0; k < sp->n_ax && !moved && evals < s->cfg->max_refine; k++)
            for (int dir = 1; dir >= -1 && !moved && evals < s->cfg->max_refine; dir -= 2) {
                double u[WK_POLICY_MAX_PARAMS];
                memcpy(u, pb->u, sizeof u);
                u[k] = fmin(1, fmax(0, u[k] + dir * step[k]));
                if (u[k] == pb->u[k]) continue;
                int is_new = 0, rc = consider(s, sp, u, pb, &is_new, err);
                if (rc < 0) return rc;
                evals += is_new;
                moved = rc;
            }
        if (moved) continue;
        double largest = 0;
        for (size_t k = 0; k < sp->n_ax; k++) largest = fmax(largest, step[k] /= 2);
        if (largest < s->cfg->resolution) break;
    }
    return 0;
}

static void mark_front(wk_choose_result *r) {
    for (size_t i = 0; i < r->n; i++) {
        wk_choose_point *a = &r->points[i];
        a->on_front = a->failed == 0 && isfinite(a->objective);
        for (size_t j = 0; j < r->n && a->on_front; j++) {
            const wk_choose_point *b = &r->points[j];
            if (j == i || b->failed || !isfinite(b->objective)) continue;
            int no_worse = b->objective <= a->objective && b->f1 >= a->f1;
            int strictly = b->objective < a->objective || b->f1 > a->f1;
            if (no_worse && (strictly || j < i)) a->on_front = 0; /* duplicates: the first stays */
        }
    }
}

static int search_all(search *s, wk_err *err) {
    const wk_choose_config *cfg = s->cfg;
    space *spaces = calloc(cfg->n_policies, sizeof *spaces);
    int (*grids)[WK_POLICY_MAX_PARAMS] = calloc(cfg->n_policies, sizeof *grids);
    if (!spaces || !grids) {
        free(spaces);
        free(grids);
        return wk_err_set(err, WK_ENOMEM, "choose: out of memory");
    }
    int rc = 0;
    size_t planned = 0;
    for (size_t p = 0; !rc && p < cfg->n_policies; p++) {
        rc = make_space(cfg->policies[p], &spaces[p], err);
        if (!rc) planned += 1 + (size_t)grid_points(&spaces[p], cfg->grid_budget, grids[p]) +
                           (spaces[p].n_ax ? (size_t)cfg->max_refine : 0);
    }
    if (!rc && cfg->progress) wk_progress_start(&s->prog, "choose", planned);
    for (size_t p = 0; !rc && p < cfg->n_policies; p++) {
        policy_best pb = {.best = -1};
        rc = run_grid(s, &spaces[p], grids[p], &pb, err);
        if (!rc) rc = refine(s, &spaces[p], grids[p], &pb, err);
        if (!rc && pb.best >= 0 &&
            better(&s->res->points[pb.best], s->res->best >= 0 ? &s->res->points[s->res->best] : NULL))
            s->res->best = pb.best;
    }
    if (!rc && cfg->progress) {
        s->prog.total = s->prog.done;
        wk_progress_finish(&s->prog);
    }
    free(spaces);
    free(grids);
    return rc;
}

static int no_feasible(const wk_choose_config *cfg, const wk_choose_result *r, wk_err *err) {
    long top = -1;
    for (size_t i = 0; i < r->n; i++)
        if (r->points[i].failed == 0 && isfinite(r->points[i].f1) && (top < 0 || r->points[i].f1 > r->points[top].f1))
            top = (long)i;
    if (top < 0) return wk_err_set(err, WK_ENOTFOUND, "choose: every configuration had failed requests");
    return wk_err_set(err, WK_ENOTFOUND, "choose: no configuration reaches F1 >= %g; the best predicted F1 was %.4f (%s)",
                      cfg->quality_min, r->points[top].f1, r->points[top].spec);
}

static int check_config(const wk_choose_config *cfg, wk_err *err) {
    if (!cfg->n_traces || !cfg->n_policies || !cfg->model || !cfg->device)
        return wk_err_set(err, WK_EINVAL, "choose: need at least one search trace, a policy, a model and a device");
    if (cfg->requests_per_trace <= 0 || cfg->output_tokens <= 0 || cfg->context_tokens <= 0 || cfg->grid_budget < 1 ||
        cfg->max_refine < 0 || !(cfg->resolution > 0))
        return wk_err_set(err, WK_EINVAL, "choose: requests, output tokens, context and grid budget must be positive");
    if (!(cfg->objective_q > 0 && cfg->objective_q < 1))
        return wk_err_set(err, WK_EINVAL, "choose: objective quantile must be in (0, 1)");
    return 0;
}

int wk_choose_run(const wk_choose_config *cfg, wk_results *db, const char *command, wk_choose_result *out,
                  wk_err *err) {
    memset(out, 0, sizeof *out);
    out->best = -1;
    int rc = check_config(cfg, err);
    if (rc) return rc;
    inputs in;
    rc = load_inputs(cfg, &in, err);
    if (!rc) snprintf(out->quality_source, sizeof out->quality_source, "%s", in.quality.source);
    if (!rc && db) {
        char note[128];
        snprintf(note, sizeof note, "choose: f1 = predicted F1 from the %s quality table", in.quality.source);
        rc = wk_results_create_run(db, "sim", command ? command : "wikv choose", note, &out->run_id, err);
        if (!rc) rc = wk_results_resume_run(db, out->run_id, err);
    }
    search s = {.cfg = cfg, .in = &in, .db = db, .res = out};
    if (!rc) rc = search_all(&s, err);
    if (!rc) mark_front(out);
    if (!rc && out->best < 0) rc = no_feasible(cfg, out, err);
    if (!rc && in.n_held) {
        rc = evaluate(cfg, &in, in.held, in.n_held, out->points[out->best].spec, NULL, 0, &out->holdout, err);
        out->have_holdout = !rc;
    }
    if (db && out->run_id) {
        wk_err ignored;
        if (rc == 0 || rc == WK_ENOTFOUND) {
            int frc = wk_results_finish_run(db, out->run_id, rc ? &ignored : err);
            if (!rc) rc = frc;
        } else {
            wk_results_fail_run(db, out->run_id, err->msg, &ignored);
        }
    }
    free_inputs(&in);
    return rc;
}

void wk_choose_result_free(wk_choose_result *r) {
    free(r->points);
    memset(r, 0, sizeof *r);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

int wk_choose_split(const char *const *traces, size_t n, double fraction, const char **search, size_t *n_search,
                    const char **held, size_t *n_held, wk_err *err) {
    *n_search = *n_held = 0;
    if (!(fraction >= 0 && fraction < 1))
        return wk_err_set(err, WK_EINVAL, "choose: --holdout must be in [0, 1), got %g", fraction);
    for (size_t i = 0; i < n; i++) search[i] = traces[i];
    qsort(search, n, sizeof *search, cmp_str);
    if (fraction == 0) {
        *n_search = n;
        return 0;
    }
    size_t k = (size_t)lround(1.0 / fraction);
    if (k < 2) k = 2;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = search[i];
        if (i % k == k - 1) held[(*n_held)++] = t;
        else search[w++] = t;
    }
    *n_search = w;
    if (!*n_held || !*n_search)
        return wk_err_set(err, WK_EINVAL,
                          "choose: --holdout %g on %zu traces leaves an empty %s set (every %zu-th trace is held out)",
                          fraction, n, *n_held ? "search" : "held-out", k);
    return 0;
}

/* ---- choice.json ---- */

static void json_str(FILE *f, const char *s) {
    char buf[2048];
    size_t need = wk_json_escape(s ? s : "", buf, sizeof buf);
    if (need < sizeof buf) fputs(buf, f);
    else fputs("\"\"", f);
}

static void json_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.15g", v);
    else fputs("null", f);
}

static void json_ttft(FILE *f, const wk_choose_point *p, const char *indent) {
    static const char *names[WK_CHOOSE_NQ] = {"p5", "p10", "p25", "p50", "p75", "p90", "p95"};
    fprintf(f, "{");
    for (int q = 0; q < WK_CHOOSE_NQ; q++) {
        fprintf(f, "%s\n%s  \"%s\": ", q ? "," : "", indent, names[q]);
        json_num(f, p->ttft_q[q]);
    }
    fprintf(f, ",\n%s  \"mean\": ", indent);
    json_num(f, p->ttft_mean);
    fprintf(f, "\n%s}", indent);
}

static void json_list(FILE *f, const char *const *items, size_t n) {
    fputc('[', f);
    for (size_t i = 0; i < n; i++) {
        if (i) fputs(", ", f);
        json_str(f, items[i]);
    }
    fputc(']', f);
}

static int cmp_front(const void *a, const void *b) {
    const wk_choose_point *x = *(const wk_choose_point *const *)a, *y = *(const wk_choose_point *const *)b;
    return (x->objective > y->objective) - (x->objective < y->objective);
}

static void json_front(FILE *f, const wk_choose_result *r, const char *objective_name) {
    size_t n = 0;
    const wk_choose_point **front = malloc((r->n ? r->n : 1) * sizeof *front);
    if (front)
        for (size_t i = 0; i < r->n; i++)
            if (r->points[i].on_front) front[n++] = &r->points[i];
    if (front) qsort(front, n, sizeof *front, cmp_front);
    fputs("[", f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s\n    {\"spec\": ", i ? "," : "");
        json_str(f, front[i]->spec);
        fprintf(f, ", \"ttft_%s_s\": ", objective_name);
        json_num(f, front[i]->objective);
        fputs(", \"f1\": ", f);
        json_num(f, front[i]->f1);
        fprintf(f, ", \"feasible\": %s}", front[i]->feasible ? "true" : "false");
    }
    fputs(n ? "\n  ]" : "]", f);
    free(front);
}

int wk_choose_write_json(const char *path, const wk_choose_config *cfg, const wk_choose_result *r, wk_err *err) {
    if (r->best < 0 || (size_t)r->best >= r->n) return wk_err_set(err, WK_ESTATE, "choose: nothing was chosen");
    FILE *f = fopen(path, "w");
    if (!f) return wk_err_set(err, WK_EIO, "%s: cannot write", path);
    const wk_choose_point *b = &r->points[r->best];
    char objective[8];
    snprintf(objective, sizeof objective, "p%.0f", cfg->objective_q * 100);
    const char *obj = objective;
    fputs("{\n  \"wikv_choice\": 1,\n  \"policy\": ", f);
    json_str(f, b->spec);
    fputs(",\n  \"model\": ", f);
    json_str(f, cfg->model);
    fputs(",\n  \"device\": ", f);
    json_str(f, cfg->device);
    fprintf(f, ",\n  \"context_tokens\": %d,\n  \"output_tokens\": %d,\n  \"requests_per_trace\": %d,\n",
            cfg->context_tokens, cfg->output_tokens, cfg->requests_per_trace);
    fprintf(f, "  \"objective\": \"%s\",\n  \"quality_min\": ", obj);
    json_num(f, cfg->quality_min);
    fputs(",\n  \"quality_table\": {\"path\": ", f);
    if (cfg->quality_path) json_str(f, cfg->quality_path);
    else fputs("null", f);
    fputs(", \"source\": ", f);
    json_str(f, r->quality_source);
    fputs("},\n  \"predicted\": {\n    \"requests\": ", f);
    fprintf(f, "%zu,\n    \"ttft_s\": ", b->requests);
    json_ttft(f, b, "    ");
    fputs(",\n    \"f1\": ", f);
    json_num(f, b->f1);
    fputs(",\n    \"f1_source\": ", f);
    json_str(f, r->quality_source);
    fputs("\n  },\n  \"traces\": {\"search\": ", f);
    json_list(f, cfg->traces, cfg->n_traces);
    fputs(", \"holdout\": ", f);
    json_list(f, cfg->holdout, cfg->n_holdout);
    fputs("},\n  \"holdout\": ", f);
    if (r->have_holdout) {
        fprintf(f, "{\n    \"ttft_%s_s\": ", obj);
        json_num(f, r->holdout.objective);
        fprintf(f, ",\n    \"search_ttft_%s_s\": ", obj);
        json_num(f, b->objective);
        fputs(",\n    \"worse_by\": ", f);
        json_num(f, r->holdout.objective / b->objective - 1);
        fputs(",\n    \"f1\": ", f);
        json_num(f, r->holdout.f1);
        fprintf(f, ",\n    \"feasible\": %s\n  }", r->holdout.feasible ? "true" : "false");
    } else {
        fputs("null", f);
    }
    fprintf(f, ",\n  \"evaluated\": %zu,\n  \"pareto\": ", r->n);
    json_front(f, r, obj);
    fputs("\n}\n", f);
    if (fclose(f) != 0) return wk_err_set(err, WK_EIO, "%s: write failed", path);
    return 0;
}

static int copy_field(const wk_json *root, const char *key, char *dst, size_t cap, const char *path, int required,
                      wk_err *err) {
    const wk_json *v = wk_json_get(root, key);
    if (!v || v->type == WK_JSON_NULL) {
        if (required) return wk_err_set(err, WK_EFORMAT, "%s: missing string field \"%s\"", path, key);
        dst[0] = '\0';
        return 0;
    }
    if (v->type != WK_JSON_STRING) return wk_err_set(err, WK_EFORMAT, "%s: field \"%s\" must be a string", path, key);
    if (v->string_len >= cap || strlen(v->string) != v->string_len)
        return wk_err_set(err, WK_EFORMAT, "%s: field \"%s\" is too long or holds a NUL", path, key);
    memcpy(dst, v->string, v->string_len + 1);
    return 0;
}

int wk_choice_read(const char *path, wk_choice *c, wk_err *err) {
    memset(c, 0, sizeof *c);
    wk_json root;
    int rc = wk_json_parse_file(path, &root, err);
    if (rc) return rc;
    if (root.type != WK_JSON_OBJECT) rc = wk_err_set(err, WK_EFORMAT, "%s: not a JSON object", path);
    long long context = 0;
    if (!rc) rc = copy_field(&root, "policy", c->spec, sizeof c->spec, path, 1, err);
    if (!rc) rc = copy_field(&root, "model", c->model, sizeof c->model, path, 0, err);
    if (!rc) rc = copy_field(&root, "device", c->device, sizeof c->device, path, 0, err);
    if (!rc) rc = wk_json_get_int(&root, "context_tokens", 0, &context, err);
    if (!rc && (context < 0 || context > 100000000))
        rc = wk_err_set(err, WK_EFORMAT, "%s: context_tokens %lld out of range", path, context);
    c->context_tokens = (int)context;
    const wk_json *q = wk_json_get(&root, "quality_table");
    if (!rc && q) rc = copy_field(q, "path", c->quality_path, sizeof c->quality_path, path, 0, err);
    if (!rc) {
        wk_policy p;
        rc = wk_policy_create(c->spec, &p, err);
        wk_policy_free(&p);
        if (rc) wk_err_prefix(err, "%s: field \"policy\"", path);
    }
    wk_json_free(&root);
    return rc;
}

int wk_choice_load(const char *path, char *spec, size_t cap, wk_err *err) {
    wk_choice c;
    int rc = wk_choice_read(path, &c, err);
    if (rc) return rc;
    if (strlen(c.spec) >= cap) return wk_err_set(err, WK_EINVAL, "%s: policy spec longer than %zu bytes", path, cap);
    memcpy(spec, c.spec, strlen(c.spec) + 1);
    return 0;
}
