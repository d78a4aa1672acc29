/* Grid runner for simulated studies: loads every input once, runs every cell, writes one run. */
#include "sim/runner.h"

#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "core/stats.h"
#include "sim/oracle.h"

typedef struct {
    wk_trace *traces;
    wk_model_spec *models;
    wk_device *devices;
    wk_policy *policies;
    size_t n_traces_loaded, n_policies_made;
    wk_quality_table quality;
    wk_oracle_curves *oracle;    /* [n_models * n_contexts], prepared on first use */
    uint8_t *oracle_ready;
    double oracle_coverage;      /* coverage the quality target needs */
    wk_policy *shared_pols;      /* [n_policies * max_share]: one instance per device of a shared link */
    size_t max_share, n_shared_made;
    wk_sim_result *shared_res;   /* [max_share] */
} runner_inputs;

static void free_inputs(runner_inputs *in) {
    for (size_t i = 0; i < in->n_traces_loaded; i++) wk_trace_free(&in->traces[i]);
    for (size_t i = 0; i < in->n_policies_made; i++) wk_policy_free(&in->policies[i]);
    for (size_t i = 0; i < in->n_shared_made; i++) wk_policy_free(&in->shared_pols[i]);
    free(in->shared_pols);
    free(in->shared_res);
    free(in->traces);
    free(in->models);
    free(in->devices);
    free(in->policies);
    free(in->oracle);
    free(in->oracle_ready);
}

/* Every device of a shared link runs its own policy instance (policies keep per-request state). */
static int make_shared_policies(const wk_runner_config *cfg, runner_inputs *in, wk_err *err) {
    for (size_t i = 0; i < cfg->n_devices_per_link; i++)
        if (cfg->devices_per_link[i] < 1) return wk_err_set(err, WK_EINVAL, "sim: devices per link must be >= 1");
        else if ((size_t)cfg->devices_per_link[i] > in->max_share) in->max_share = (size_t)cfg->devices_per_link[i];
    if (!in->max_share) return 0;
    in->shared_pols = calloc(cfg->n_policies * in->max_share, sizeof *in->shared_pols);
    in->shared_res = calloc(in->max_share, sizeof *in->shared_res);
    if (!in->shared_pols || !in->shared_res) return wk_err_set(err, WK_ENOMEM, "runner: out of memory");
    int rc = 0;
    for (size_t p = 0; !rc && p < cfg->n_policies; p++)
        for (size_t k = 0; !rc && k < in->max_share; k++) {
            rc = wk_policy_create(cfg->policies[p], &in->shared_pols[in->n_shared_made], err);
            if (!rc) in->n_shared_made++;
        }
    return rc;
}

static int load_inputs(const wk_runner_config *cfg, runner_inputs *in, wk_err *err) {
    memset(in, 0, sizeof *in);
    in->traces = calloc(cfg->n_traces ? cfg->n_traces : 1, sizeof *in->traces);
    in->models = calloc(cfg->n_models ? cfg->n_models : 1, sizeof *in->models);
    in->devices = calloc(cfg->n_devices ? cfg->n_devices : 1, sizeof *in->devices);
    in->policies = calloc(cfg->n_policies ? cfg->n_policies : 1, sizeof *in->policies);
    int rc = cfg->quality_path ? wk_quality_load(cfg->quality_path, &in->quality, err)
                               : wk_quality_load_default(&in->quality, err);
    if (rc) return rc;
    size_t n_curves = (cfg->n_models ? cfg->n_models : 1) * (cfg->n_contexts ? cfg->n_contexts : 1);
    in->oracle = calloc(n_curves, sizeof *in->oracle);
    in->oracle_ready = calloc(n_curves, 1);
    if (!in->traces || !in->models || !in->devices || !in->policies || !in->oracle || !in->oracle_ready)
        return wk_err_set(err, WK_ENOMEM, "runner: out of memory");
    in->oracle_coverage = 1.0;
    if (cfg->quality_target > 0) { /* least coverage whose F1 reaches the target */
        for (int k = 0; k <= 1000; k++) {
            double accept, f1;
            if (wk_quality_lookup(&in->quality, "default", k / 1000.0, &accept, &f1) == 0 &&
                f1 >= cfg->quality_target) {
                in->oracle_coverage = k / 1000.0;
                break;
            }
        }
    }
    for (size_t i = 0; !rc && i < cfg->n_traces; i++) {
        rc = wk_trace_load(cfg->traces[i], WK_FMT_AUTO, &in->traces[i], err);
        if (!rc) in->n_traces_loaded++;
    }
    for (size_t i = 0; !rc && i < cfg->n_models; i++) rc = wk_model_spec_find(cfg->models[i], &in->models[i], err);
    for (size_t i = 0; !rc && i < cfg->n_devices; i++) rc = wk_device_find(cfg->devices[i], &in->devices[i], err);
    for (size_t i = 0; !rc && i < cfg->n_policies; i++) {
        rc = wk_policy_create(cfg->policies[i], &in->policies[i], err);
        if (!rc) in->n_policies_made++;
    }
    return rc ? rc : make_shared_policies(cfg, in, err);
}

/* 100 ms bins of a trace (first 600 s) for `wikv plot trace`. */
static int store_trace_samples(wk_results *db, const wk_trace *tr, wk_err *err) {
    enum { MAX_BINS = 6000 };
    double dt = 0.1;
    size_t n = (size_t)ceil(tr->period_s / dt - 1e-9);
    if (n > MAX_BINS) n = MAX_BINS;
    double *t = malloc(n * sizeof *t), *mbps = malloc(n * sizeof *mbps);
    if (!t || !mbps) {
        free(t);
        free(mbps);
        return wk_err_set(err, WK_ENOMEM, "runner: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        t[i] = (double)i * dt;
        double end = fmin(t[i] + dt, tr->period_s);
        mbps[i] = (wk_trace_bytes_before(tr, end) - wk_trace_bytes_before(tr, t[i])) * 8 / 1e6 / (end - t[i]);
    }
    int rc = wk_results_add_trace_samples(db, tr->name, t, mbps, n, err);
    free(t);
    free(mbps);
    return rc;
}

static int store_timeline(wk_results *db, int64_t request_id, const wk_timeline *tl, wk_err *err) {
    for (size_t i = 0; i < tl->n; i++) {
        const wk_tl_entry *e = &tl->e[i];
        int rc = wk_results_add_event(db, request_id, (int)i, e->t, wk_timeline_type_name(e->type), e->level, e->value,
                                      err);
        if (rc) return rc;
    }
    return 0;
}

typedef struct {
    const wk_trace *trace;
    const wk_model_spec *model;
    const wk_device *device;
    wk_policy *policy;
    int context;
    int request;
    size_t curve;      /* index of the (model, context) oracle curves */
    size_t policy_index;
    int share;         /* devices on the link; 0: one device on its own link (plain simulation) */
} cell;

/* Key of a cell (of device k of a shared cell). */
static void cell_key(const cell *c, int k, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "%s|%s|%s|%s|%d|%d", c->policy->spec, c->trace->name, c->model->name, c->device->name,
                     c->context, c->request);
    if (c->share > 0 && n > 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, "|n=%d|k=%d", c->share, k);
}

static wk_sim_config cell_config(const wk_runner_config *cfg, const runner_inputs *in, const cell *c) {
    wk_sim_config sc = {.trace = c->trace, .link = cfg->link, .model = c->model, .device = c->device,
                        .context_tokens = c->context, .output_tokens = cfg->output_tokens, .task = cfg->task,
                        .seed = (uint64_t)c->request, .quality = &in->quality};
    sc.link.trace_offset_s = c->trace->period_s * c->request / cfg->requests_per_trace;
    return sc;
}

/* The database row of one simulated request. */
static void fill_row(const wk_runner_config *cfg, const wk_quality_table *quality, const cell *c,
                     const wk_sim_result *res, const char *key, const char *device, wk_request_row *row) {
    *row = wk_results_empty_row("sim");
    row->policy = c->policy->ops->name;
    row->params = c->policy->spec;
    row->trace = c->trace->name;
    row->trace_mean_mbps = wk_trace_mean_mbps(c->trace);
    row->model = c->model->name;
    row->device = device;
    row->task = cfg->task;
    row->context_tokens = c->context;
    row->seed = c->request;
    row->cell = key;
    row->output_tokens = res->s.tokens;
    if (res->s.ok) {
        row->ttft_s = res->s.ttft_s;
        row->tpot_s = res->s.tpot_s;
        row->total_s = res->s.total_s;
        row->bytes_sent = res->s.payload_bytes_sent;
        row->link_utilisation = res->link_utilisation;
        row->kv_fraction_at_first = res->s.kv_fraction_at_first;
        row->net_wait_s = res->s.net_wait_s;
        row->kv_decode_s = res->s.kv_decode_s;
        row->compute_s = res->s.compute_s;
        double accept, f1_rel; /* only measured tables give F1 */
        if (!strcmp(quality->source, "measured") &&
            wk_quality_lookup(quality, c->policy->ops->name, res->s.coverage_at_first, &accept, &f1_rel) == 0)
            row->f1 = f1_rel;
    } else {
        row->status = "failed";
        row->fail_reason = res->s.fail_reason;
    }
}

static int oracle_for(const wk_runner_config *cfg, runner_inputs *in, const cell *c, const wk_link_params *link,
                      double *out, wk_err *err) {
    *out = NAN;
    if (cfg->quality_target <= 0) return 0;
    if (!in->oracle_ready[c->curve]) {
        int rc = wk_oracle_prepare(c->model, c->context, in->oracle_coverage, &in->oracle[c->curve], err);
        if (rc) return rc;
        in->oracle_ready[c->curve] = 1;
    }
    *out = wk_oracle_ttft(&in->oracle[c->curve], c->trace, link, c->model, c->device);
    return 0;
}

/* Writes rows (with the timeline of the first when given) in the cell's own transaction or the caller's. */
static int write_rows(wk_results *db, int64_t run_id, int own_txn, const wk_request_row *rows, size_t n,
                      const wk_timeline *tl, wk_err *err) {
    int rc = own_txn ? wk_results_resume_run(db, run_id, err) : 0;
    for (size_t i = 0; !rc && i < n; i++) {
        int64_t request_id;
        rc = wk_results_add_request(db, run_id, &rows[i], &request_id, err);
        if (!rc && tl && i == 0) rc = store_timeline(db, request_id, tl, err);
    }
    if (own_txn) {
        if (!rc) rc = wk_results_commit(db, err);
        else {
            wk_err ignored;
            wk_results_commit(db, &ignored); /* nothing of a failed cell is kept: it was not added */
        }
    }
    return rc;
}

static int run_cell(const wk_runner_config *cfg, runner_inputs *in, wk_sim *sim, const cell *c, wk_results *db,
                    int64_t run_id, int own_txn, wk_timeline *tl, wk_err *err) {
    wk_sim_config sc = cell_config(cfg, in, c);
    int want_events = cfg->events == WK_EVENTS_ALL || (cfg->events == WK_EVENTS_FIRST && c->request == 0);
    tl->n = 0;
    tl->arrival_stride = 1;
    wk_sim_result res;
    int rc = wk_sim_request(sim, c->policy, &sc, want_events ? tl : NULL, &res, err);
    double oracle = NAN;
    if (!rc) rc = oracle_for(cfg, in, c, &sc.link, &oracle, err);
    if (rc) return rc;
    if (want_events && sim->plan.n > 2000) { /* keep timelines small: thin out arrivals */
        size_t stride = sim->plan.n / 1000, w = 0;
        size_t arrivals = 0;
        for (size_t i = 0; i < tl->n; i++) {
            int keep = tl->e[i].type != WK_TL_ARRIVE || (++arrivals % stride == 0);
            if (keep) tl->e[w++] = tl->e[i];
        }
        tl->n = w;
    }
    char key[1024];
    cell_key(c, 0, key, sizeof key);
    wk_request_row row;
    fill_row(cfg, &in->quality, c, &res, key, c->device->name, &row);
    row.oracle_ttft_s = oracle;
    return write_rows(db, run_id, own_txn, &row, 1, want_events ? tl : NULL, err);
}

/* N devices on one link: one row per device, all in one transaction. */
static int run_shared_cell(const wk_runner_config *cfg, runner_inputs *in, wk_sim_shared *g, const cell *c,
                           wk_results *db, int64_t run_id, int own_txn, wk_err *err) {
    size_t n = (size_t)c->share;
    wk_sim_config sc = cell_config(cfg, in, c);
    wk_policy *pols = &in->shared_pols[c->policy_index * in->max_share];
    int rc = wk_sim_shared_request(g, pols, n, &sc, cfg->stagger_s, in->shared_res, err);
    if (rc) return rc;
    wk_request_row *rows = calloc(n, sizeof *rows);
    char(*keys)[1024] = calloc(n, sizeof *keys);
    char device[96];
    snprintf(device, sizeof device, "%s x%d", c->device->name, c->share);
    if (!rows || !keys) rc = wk_err_set(err, WK_ENOMEM, "runner: out of memory");
    for (size_t k = 0; !rc && k < n; k++) {
        cell_key(c, (int)k, keys[k], sizeof keys[k]);
        fill_row(cfg, &in->quality, c, &in->shared_res[k], keys[k], device, &rows[k]);
    }
    if (!rc) rc = write_rows(db, run_id, own_txn, rows, n, NULL, err);
    free(rows);
    free(keys);
    return rc;
}

static int in_skip(const wk_runner_slice *slice, const char *key) {
    size_t lo = 0, hi = slice ? slice->n_skip : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(slice->skip[mid], key);
        if (c == 0) return 1;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

static int in_slice(const wk_runner_slice *slice, size_t i) {
    if (!slice) return 1;
    size_t n = slice->shard_n > 0 ? (size_t)slice->shard_n : 1, jobs = slice->jobs > 0 ? (size_t)slice->jobs : 1;
    return i % n == (size_t)slice->shard_k && (i / n) % jobs == (size_t)slice->job;
}

/* Every cell in order; `slice` NULL = all cells inside the caller's transaction. */
static int run_grid(const wk_runner_config *cfg, runner_inputs *in, const wk_runner_slice *slice, wk_results *db,
                    int64_t run_id, wk_err *err) {
    size_t total = wk_runner_cell_count(cfg);
    wk_progress prog;
    if (cfg->progress) wk_progress_start(&prog, "sim", total);
    wk_sim sim;
    wk_sim_init(&sim);
    wk_sim_shared shared;
    wk_sim_shared_init(&shared);
    wk_timeline tl = {0};
    int rc = 0;
    size_t index = 0, shares = cfg->n_devices_per_link ? cfg->n_devices_per_link : 1;
    for (size_t m = 0; !rc && m < cfg->n_models; m++)
        for (size_t d = 0; !rc && d < cfg->n_devices; d++)
            for (size_t x = 0; !rc && x < cfg->n_contexts; x++)
                for (size_t p = 0; !rc && p < cfg->n_policies; p++)
                    for (size_t t = 0; !rc && t < cfg->n_traces; t++)
                        for (int r = 0; !rc && r < cfg->requests_per_trace; r++)
                            for (size_t sh = 0; !rc && sh < shares; sh++, index++) {
                                if (!in_slice(slice, index)) continue;
                                cell c = {&in->traces[t], &in->models[m], &in->devices[d], &in->policies[p],
                                          cfg->contexts[x], r, m * cfg->n_contexts + x, p,
                                          cfg->n_devices_per_link ? cfg->devices_per_link[sh] : 0};
                                char key[1024];
                                cell_key(&c, 0, key, sizeof key);
                                if (!in_skip(slice, key))
                                    rc = c.share ? run_shared_cell(cfg, in, &shared, &c, db, run_id, slice != NULL, err)
                                                 : run_cell(cfg, in, &sim, &c, db, run_id, slice != NULL, &tl, err);
                                if (cfg->progress) wk_progress_step(&prog, 1);
                            }
    if (cfg->progress) wk_progress_finish(&prog);
    wk_timeline_free(&tl);
    wk_sim_shared_free(&shared);
    wk_sim_free(&sim);
    return rc;
}

size_t wk_runner_cell_count(const wk_runner_config *cfg) {
    return cfg->n_models * cfg->n_devices * cfg->n_contexts * cfg->n_traces * cfg->n_policies *
           (size_t)(cfg->requests_per_trace > 0 ? cfg->requests_per_trace : 0) *
           (cfg->n_devices_per_link ? cfg->n_devices_per_link : 1);
}

size_t wk_runner_shard_rows(const wk_runner_config *cfg, int shard_k, int shard_n) {
    size_t total = wk_runner_cell_count(cfg), rows = 0, n = shard_n > 0 ? (size_t)shard_n : 1;
    size_t shares = cfg->n_devices_per_link ? cfg->n_devices_per_link : 1;
    for (size_t i = (size_t)shard_k; i < total; i += n)
        rows += cfg->n_devices_per_link ? (size_t)cfg->devices_per_link[i % shares] : 1; /* sharing is innermost */
    return rows;
}

static int check_config(const wk_runner_config *cfg, wk_err *err) {
    if (!cfg->n_traces || !cfg->n_policies || !cfg->n_models || !cfg->n_devices || !cfg->n_contexts ||
        cfg->requests_per_trace <= 0 || cfg->output_tokens <= 0)
        return wk_err_set(err, WK_EINVAL, "sim: need at least one trace, policy, model, device, context and request");
    if (!(cfg->stagger_s >= 0)) return wk_err_set(err, WK_EINVAL, "sim: the stagger must be >= 0");
    return 0;
}

int wk_runner_store_traces(const wk_runner_config *cfg, wk_results *db, wk_err *err) {
    int rc = 0;
    for (size_t i = 0; !rc && i < cfg->n_traces; i++) {
        wk_trace tr;
        rc = wk_trace_load(cfg->traces[i], WK_FMT_AUTO, &tr, err);
        if (rc) break;
        rc = store_trace_samples(db, &tr, err);
        wk_trace_free(&tr);
    }
    return rc;
}

int wk_runner_run_slice(const wk_runner_config *cfg, const wk_runner_slice *slice, wk_results *db, int64_t run_id,
                        wk_err *err) {
    int rc = check_config(cfg, err);
    if (rc) return rc;
    runner_inputs in;
    rc = load_inputs(cfg, &in, err);
    if (!rc) rc = run_grid(cfg, &in, slice, db, run_id, err);
    free_inputs(&in);
    return rc;
}

int wk_runner_run(const wk_runner_config *cfg, wk_results *db, const char *command, int64_t *run_id, wk_err *err) {
    int rc = check_config(cfg, err);
    if (rc) return rc;
    runner_inputs in;
    rc = load_inputs(cfg, &in, err);
    if (!rc) rc = wk_results_begin_run(db, "sim", command, run_id, err);
    if (!rc) {
        for (size_t t = 0; !rc && t < in.n_traces_loaded; t++) rc = store_trace_samples(db, &in.traces[t], err);
        if (!rc) rc = run_grid(cfg, &in, NULL, db, *run_id, err);
        if (!rc) rc = wk_results_finish_run(db, *run_id, err);
        if (rc) {
            wk_err ignored;
            wk_results_fail_run(db, *run_id, err->msg, &ignored);
        }
    }
    free_inputs(&in);
    return rc;
}

typedef struct {
    char policy[256], trace[256], model[64], device[64];
    int context;
} group_key;

typedef struct {
    double bytes, util, kv;
    double *ratio;     /* ttft / oracle of each request */
    size_t n_ratio;
} group_sums;

static void print_group(FILE *out, const group_key *k, double *ttft, size_t n, const group_sums *g, size_t failed) {
    wk_sort_doubles(ttft, n);
    double dn = (double)n;
    wk_sort_doubles(g->ratio, g->n_ratio);
    fprintf(out, "%-12s %-28s %-14s %-16s %7d %9.3f %9.3f %8.2f %10.1f %6.2f %6.2f %6zu\n", k->policy, k->trace,
            k->model, k->device, k->context, n ? wk_percentile_sorted(ttft, n, 0.5) : NAN,
            n ? wk_percentile_sorted(ttft, n, 0.95) : NAN,
            g->n_ratio ? wk_percentile_sorted(g->ratio, g->n_ratio, 0.5) : NAN, n ? g->bytes / dn / 1e6 : NAN,
            n ? g->util / dn : NAN, n ? g->kv / dn : NAN, failed);
}

int wk_runner_print_summary(wk_results *db, int64_t run_id, FILE *out, wk_err *err) {
    sqlite3 *h = wk_results_handle(db);
    const char *sql = "SELECT policy, trace, model, device, context_tokens, status, ttft_s, bytes_sent,"
                      " link_utilisation, kv_fraction_at_first, oracle_ttft_s FROM complete_requests WHERE (?1 <= 0 OR run_id = ?1)"
                      " ORDER BY model, device, context_tokens, trace, policy";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
        return wk_err_set(err, WK_EDB, "summary: %s", sqlite3_errmsg(h));
    sqlite3_bind_int64(st, 1, run_id);
    fprintf(out, "%-12s %-28s %-14s %-16s %7s %9s %9s %8s %10s %6s %6s %6s\n", "policy", "trace", "model", "device",
            "context", "ttft_p50", "ttft_p95", "x_oracle", "sent_MB", "util", "kv@1st", "failed");
    size_t cap = 1024, n = 0, failed = 0, rows = 0;
    double *ttft = malloc(cap * sizeof *ttft), *ratio = malloc(cap * sizeof *ratio);
    group_sums sums = {0, 0, 0, ratio, 0};
    group_key cur = {0}, k;
    int have = 0, rc = 0, step;
    while (ttft && (step = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&k, 0, sizeof k); /* groups are compared bytewise */
        snprintf(k.policy, sizeof k.policy, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(k.trace, sizeof k.trace, "%s", sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1) : "-");
        snprintf(k.model, sizeof k.model, "%s", sqlite3_column_text(st, 2) ? (const char *)sqlite3_column_text(st, 2) : "-");
        snprintf(k.device, sizeof k.device, "%s", sqlite3_column_text(st, 3) ? (const char *)sqlite3_column_text(st, 3) : "-");
        k.context = sqlite3_column_int(st, 4);
        if (have && memcmp(&k, &cur, sizeof k) != 0) {
            print_group(out, &cur, ttft, n, &sums, failed);
            n = failed = 0;
            sums = (group_sums){0, 0, 0, ratio, 0};
        }
        cur = k;
        have = 1;
        rows++;
        if (strcmp((const char *)sqlite3_column_text(st, 5), "ok") != 0 || sqlite3_column_type(st, 6) == SQLITE_NULL) {
            failed++;
            continue;
        }
        if (n == cap) {
            double *g = realloc(ttft, 2 * cap * sizeof *g), *h2 = g ? realloc(ratio, 2 * cap * sizeof *h2) : NULL;
            if (g) ttft = g;
            if (h2) ratio = sums.ratio = h2;
            if (!g || !h2) break;
            cap *= 2;
        }
        ttft[n++] = sqlite3_column_double(st, 6);
        sums.bytes += sqlite3_column_double(st, 7);
        sums.util += sqlite3_column_double(st, 8);
        sums.kv += sqlite3_column_double(st, 9);
        if (sqlite3_column_type(st, 10) != SQLITE_NULL && sqlite3_column_double(st, 10) > 0)
            ratio[sums.n_ratio++] = sqlite3_column_double(st, 6) / sqlite3_column_double(st, 10);
    }
    if (!ttft || !ratio) rc = wk_err_set(err, WK_ENOMEM, "summary: out of memory");
    else if (have) print_group(out, &cur, ttft, n, &sums, failed);
    sqlite3_finalize(st);
    free(ttft);
    free(ratio);
    if (!rc && rows == 0) rc = wk_err_set(err, WK_ENOTFOUND, "summary: no complete requests in the database");
    return rc;
}

/* One line of the sharing table: a group's TTFTs, and the median of its smallest N for the growth. */
static void print_share_group(FILE *out, const group_key *k, int n_dev, double *ttft, size_t n, double base_p50) {
    wk_sort_doubles(ttft, n);
    double p50 = n ? wk_percentile_sorted(ttft, n, 0.5) : NAN;
    fprintf(out, "%-12s %-28s %-16s %7d %8d %9.3f %9.3f %8.2f\n", k->policy, k->trace, k->device, k->context, n_dev, p50,
            n ? wk_percentile_sorted(ttft, n, 0.95) : NAN, base_p50 > 0 ? p50 / base_p50 : NAN);
}

int wk_runner_print_sharing(wk_results *db, int64_t run_id, FILE *out, wk_err *err) {
    sqlite3 *h = wk_results_handle(db);
    /* device "NAME xN": the base name, and N */
    const char *sql =
        "SELECT policy, trace, model, substr(device, 1, instr(device, ' x') - 1) AS base, context_tokens,"
        " CAST(substr(device, instr(device, ' x') + 2) AS INTEGER) AS n, ttft_s FROM complete_requests"
        " WHERE (?1 <= 0 OR run_id = ?1) AND instr(device, ' x') > 0 AND status = 'ok' AND ttft_s IS NOT NULL"
        " ORDER BY model, base, context_tokens, trace, policy, n";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
        return wk_err_set(err, WK_EDB, "sharing summary: %s", sqlite3_errmsg(h));
    sqlite3_bind_int64(st, 1, run_id);
    size_t cap = 1024, n = 0;
    double *ttft = malloc(cap * sizeof *ttft);
    group_key cur = {0}, k;
    int have = 0, cur_n = 0, rc = 0;
    double base_p50 = NAN;
    while (ttft && sqlite3_step(st) == SQLITE_ROW) {
        memset(&k, 0, sizeof k);
        snprintf(k.policy, sizeof k.policy, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(k.trace, sizeof k.trace, "%s", sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1) : "-");
        snprintf(k.model, sizeof k.model, "%s", sqlite3_column_text(st, 2) ? (const char *)sqlite3_column_text(st, 2) : "-");
        snprintf(k.device, sizeof k.device, "%s", (const char *)sqlite3_column_text(st, 3));
        k.context = sqlite3_column_int(st, 4);
        int n_dev = sqlite3_column_int(st, 5);
        int same_group = have && memcmp(&k, &cur, sizeof k) == 0;
        if (!have) fprintf(out, "\nshared link: TTFT as devices per link grow (x_first: ttft_p50 over that at the smallest N)\n"
                                "%-12s %-28s %-16s %7s %8s %9s %9s %8s\n", "policy", "trace", "device", "context",
                           "devices", "ttft_p50", "ttft_p95", "x_first");
        if (have && (!same_group || n_dev != cur_n)) {
            if (!isfinite(base_p50)) { /* the first N of a group is its baseline */
                wk_sort_doubles(ttft, n);
                base_p50 = n ? wk_percentile_sorted(ttft, n, 0.5) : NAN;
            }
            print_share_group(out, &cur, cur_n, ttft, n, base_p50);
            n = 0;
            if (!same_group) base_p50 = NAN;
        }
        cur = k;
        cur_n = n_dev;
        have = 1;
        if (n == cap) {
            double *g = realloc(ttft, 2 * cap * sizeof *g);
            if (!g) break;
            ttft = g;
            cap *= 2;
        }
        ttft[n++] = sqlite3_column_double(st, 6);
    }
    if (!ttft) rc = wk_err_set(err, WK_ENOMEM, "sharing summary: out of memory");
    else if (have) {
        if (!isfinite(base_p50)) {
            wk_sort_doubles(ttft, n);
            base_p50 = n ? wk_percentile_sorted(ttft, n, 0.5) : NAN;
        }
        print_share_group(out, &cur, cur_n, ttft, n, base_p50);
    }
    sqlite3_finalize(st);
    free(ttft);
    return rc;
}
