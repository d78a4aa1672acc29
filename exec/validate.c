/* Validation: one grid run for real (in-process server, CPU engine) and in the simulator. */
#include "exec/validate.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/stats.h"
#include "exec/calibrate.h"
#include "exec/stream.h"
#include "net/paced.h"
#include "sim/sim.h"

/* ---- grid file -------------------------------------------------------------------------------- */

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

static int resolve(const char *dir, const char *p, char *out, size_t cap) {
    int n = p[0] == '/' ? snprintf(out, cap, "%s", p) : snprintf(out, cap, "%s/%s", dir, p);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* Splits a comma list into items; with `policies`, items holding '=' and no ':' join the previous one. */
static int split_list(char *v, int policies, char **out, int *n, const char *dir, const char *where, wk_err *err) {
    for (char *save = NULL, *tok = strtok_r(v, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *t = trim(tok);
        if (!*t) continue;
        if (policies && *n > 0 && strchr(t, '=') && !strchr(t, ':')) {
            size_t len = strlen(out[*n - 1]) + strlen(t) + 2;
            char *j = malloc(len);
            if (!j) return wk_err_set(err, WK_ENOMEM, "%s: out of memory", where);
            snprintf(j, len, "%s,%s", out[*n - 1], t);
            free(out[*n - 1]);
            out[*n - 1] = j;
            continue;
        }
        if (*n >= WK_VALIDATE_MAX) return wk_err_set(err, WK_EINVAL, "%s: more than %d items", where, WK_VALIDATE_MAX);
        char path[4096];
        if (!policies && resolve(dir, t, path, sizeof path)) return wk_err_set(err, WK_EINVAL, "%s: path too long", where);
        if (!(out[*n] = strdup(policies ? t : path))) return wk_err_set(err, WK_ENOMEM, "%s: out of memory", where);
        (*n)++;
    }
    return 0;
}

static int parse_pos_int(const char *v, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *trim(end) || x < 1 || x > 1000000) return -1;
    *out = (int)x;
    return 0;
}

static int grid_line(wk_validate_grid *g, char *key, char *v, const char *dir, const char *where, wk_err *err) {
    if (!strcmp(key, "traces")) return split_list(v, 0, g->traces, &g->n_traces, dir, where, err);
    if (!strcmp(key, "policies")) return split_list(v, 1, g->policies, &g->n_policies, dir, where, err);
    if (!strcmp(key, "contexts")) {
        for (char *save = NULL, *tok = strtok_r(v, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (g->n_contexts >= WK_VALIDATE_MAX || parse_pos_int(trim(tok), &g->contexts[g->n_contexts]))
                return wk_err_set(err, WK_EINVAL, "%s: bad context \"%s\"", where, trim(tok));
            g->n_contexts++;
        }
        return 0;
    }
    if (!strcmp(key, "task")) {
        wk_task_kind k;
        if (wk_task_kind_parse(v, &k, err)) return wk_err_set(err, WK_EINVAL, "%s: unknown task \"%s\"", where, v);
        snprintf(g->task, sizeof g->task, "%s", v);
        return 0;
    }
    if (!strcmp(key, "requests") || !strcmp(key, "output_tokens")) {
        int *dst = key[0] == 'r' ? &g->requests : &g->output_tokens;
        if (parse_pos_int(v, dst)) return wk_err_set(err, WK_EINVAL, "%s: bad %s \"%s\"", where, key, v);
        return 0;
    }
    if (!strcmp(key, "delay_ms")) {
        char *end;
        g->delay_ms = strtod(v, &end);
        if (end == v || *trim(end) || !(g->delay_ms >= 0) || g->delay_ms > 10000)
            return wk_err_set(err, WK_EINVAL, "%s: bad delay_ms \"%s\"", where, v);
        return 0;
    }
    if (!strcmp(key, "model")) {
        if (resolve(dir, v, g->model, sizeof g->model)) return wk_err_set(err, WK_EINVAL, "%s: path too long", where);
        return 0;
    }
    return wk_err_set(err, WK_EINVAL, "%s: unknown key \"%s\"", where, key);
}

int wk_validate_grid_load(const char *path, wk_validate_grid *g, wk_err *err) {
    memset(g, 0, sizeof *g);
    snprintf(g->task, sizeof g->task, "passkey");
    g->requests = 1;
    g->output_tokens = 1;
    g->delay_ms = 10;
    wk_fixture_model_dir(g->model, sizeof g->model);
    FILE *f = fopen(path, "r");
    if (!f) return wk_err_set(err, WK_ENOTFOUND, "%s: cannot open", path);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    char line[8192];
    int rc = 0, lineno = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *s = trim(line);
        if (!*s) continue;
        char where[4200];
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = wk_err_set(err, WK_EINVAL, "%s: expected key = value", where);
            break;
        }
        *eq = '\0';
        rc = grid_line(g, trim(s), trim(eq + 1), dir, where, err);
    }
    fclose(f);
    if (!rc && (!g->n_traces || !g->n_policies || !g->n_contexts))
        rc = wk_err_set(err, WK_EINVAL, "%s: needs traces, policies and contexts", path);
    if (rc) wk_validate_grid_free(g);
    return rc;
}

void wk_validate_grid_free(wk_validate_grid *g) {
    for (int i = 0; i < g->n_traces; i++) free(g->traces[i]);
    for (int i = 0; i < g->n_policies; i++) free(g->policies[i]);
    g->n_traces = g->n_policies = 0;
}

wk_link_params wk_validate_link(const wk_validate_grid *g) {
    wk_link_params p = wk_link_defaults();
    p.one_way_delay_s = p.request_delay_s = g->delay_ms / 1000.0;
    p.frame_overhead = 0;
    p.unit_header = WK_WIRE_HEADER_BYTES + 8;
    return p;
}

/* ---- exec side -------------------------------------------------------------------------------- */

/* KV and importance of every (context, seed) prompt, so the server streams without prefilling. */
static int make_kv(const wk_validate_grid *g, wk_stream_client *c, const char *dir, wk_err *err) {
    wk_stream_job job = {.output_tokens = g->output_tokens};
    int rc = wk_task_kind_parse(g->task, &job.task, err);
    for (int ci = 0; !rc && ci < g->n_contexts; ci++)
        for (int s = 1; !rc && s <= g->requests; s++) {
            job.context = g->contexts[ci];
            job.seed = (uint64_t)s;
            wk_stream_prompt p;
            if ((rc = wk_stream_prompt_make(c->tok, &job, &p, err))) break;
            size_t n_imp = (size_t)c->spec.n_layers * c->spec.n_kv_heads * (size_t)p.n;
            float *imp = malloc(n_imp * sizeof *imp);
            wk_kv_tensor kv = {0};
            char path[4096];
            if (!imp) rc = wk_err_set(err, WK_ENOMEM, "validate: out of memory");
            if (!rc) rc = wk_stream_prefill_kv(c->engine, c->tok, p.ids, p.n, &kv, imp, err);
            wk_stream_kv_path(dir, &job, "wkv", path, sizeof path);
            if (!rc) rc = wk_kv_tensor_write(&kv, path, err);
            wk_stream_kv_path(dir, &job, "wki", path, sizeof path);
            if (!rc) rc = wk_stream_importance_write(path, imp, c->spec.n_layers, c->spec.n_kv_heads, p.n, err);
            free(imp);
            wk_kv_tensor_free(&kv);
            wk_stream_prompt_free(&p);
        }
    return rc;
}

static void remove_kv(const wk_validate_grid *g, const char *dir) {
    wk_stream_job job = {0};
    wk_err e;
    if (wk_task_kind_parse(g->task, &job.task, &e)) return;
    for (int ci = 0; ci < g->n_contexts; ci++)
        for (int s = 1; s <= g->requests; s++) {
            job.context = g->contexts[ci];
            job.seed = (uint64_t)s;
            char path[4096];
            wk_stream_kv_path(dir, &job, "wkv", path, sizeof path);
            unlink(path);
            wk_stream_kv_path(dir, &job, "wki", path, sizeof path);
            unlink(path);
        }
    rmdir(dir);
}

typedef struct server_thread {
    int fd;
    wk_stream_server_opts o;
    wk_err err;
    int rc;
} server_thread;

static void *serve_main(void *arg) {
    server_thread *t = arg;
    t->rc = wk_stream_serve(t->fd, &t->o, &t->err);
    return NULL;
}

static size_t cell_index(const wk_validate_grid *g, int ti, int pi, int ci, int s) {
    return (((size_t)ti * g->n_policies + pi) * g->n_contexts + ci) * g->requests + (size_t)(s - 1);
}

static void exec_row(const wk_validate_grid *g, const wk_stream_client *c, const wk_trace *tr, const wk_policy *pol,
                     const char *device, const wk_validate_cell *cell, const wk_stream_outcome *o,
                     wk_request_row *row) {
    *row = wk_results_empty_row("exec");
    row->policy = pol->ops->name;
    row->params = pol->spec;
    row->trace = tr->name;
    row->trace_mean_mbps = wk_trace_mean_mbps(tr);
    row->model = c->spec.name;
    row->device = device;
    row->task = g->task;
    row->context_tokens = o->context_tokens ? o->context_tokens : cell->context;
    row->seed = cell->seed;
    row->cell = cell->key;
    wk_stream_outcome_to_row(o, row);
}

/* The cells of one trace: an in-process server paced by it, the client sending each request. */
#define WARM_REPEATS 3 /* unrecorded requests per policy before a trace's cells */

/* The outcome whose KV decode time is the median of n (failed ones count as slowest). */
static wk_stream_outcome median_decode(const wk_stream_outcome *o, int n) {
    int idx[WARM_REPEATS];
    for (int i = 0; i < n; i++) idx[i] = i;
    for (int i = 1; i < n; i++) /* insertion sort by decode time */
        for (int j = i; j > 0; j--) {
            double a = o[idx[j - 1]].ok ? o[idx[j - 1]].kv_decode_s : INFINITY, b = o[idx[j]].ok ? o[idx[j]].kv_decode_s : INFINITY;
            if (a <= b) break;
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    return o[idx[n / 2]];
}

/* Called with the warm-up outcomes (one per policy) before the recorded requests. */
typedef int (*warm_fn)(void *ctx, const wk_trace *tr, const wk_stream_outcome *warm, wk_err *err);

static int exec_trace(const wk_validate_grid *g, int ti, const char *profile, const char *device, wk_stream_client *c,
                      const char *kv_dir, wk_results *db, FILE *log, wk_stream_outcome *warm, warm_fn on_warm,
                      void *warm_ctx, wk_validate_report *rep, wk_err *err) {
    wk_trace tr;
    int rc = wk_trace_load(g->traces[ti], WK_FMT_AUTO, &tr, err);
    if (rc) return rc;
    server_thread st = {.o = {.model_dir = g->model, .kv_dir = kv_dir, .device = profile, .trace = &tr,
                              .delay_s = g->delay_ms / 1000.0,
                              .max_connections = g->n_policies * (WARM_REPEATS + g->n_contexts * g->requests), .quiet = 1}};
    uint16_t port;
    pthread_t th;
    rc = wk_paced_listen("127.0.0.1", 0, &st.fd, &port, err);
    if (rc) {
        wk_trace_free(&tr);
        return rc;
    }
    if (pthread_create(&th, NULL, serve_main, &st) != 0) {
        close(st.fd);
        wk_trace_free(&tr);
        return wk_err_set(err, WK_EIO, "validate: cannot start the server thread");
    }
    int served = 0;
    /* one unrecorded request per policy first: the server's policy instances measure their codec
     * sizes once (as the simulator's do), the engine's and the caches' first-use costs are paid */
    for (int pi = 0; !rc && pi < g->n_policies; pi++) {
        wk_stream_job job = {.context = g->contexts[0], .seed = 1, .output_tokens = g->output_tokens};
        snprintf(job.policy, sizeof job.policy, "%s", g->policies[pi]);
        rc = wk_task_kind_parse(g->task, &job.task, err);
        wk_stream_outcome rep_o[WARM_REPEATS];
        for (int r = 0; !rc && r < WARM_REPEATS; r++) {
            rc = wk_stream_client_request(c, "127.0.0.1", port, &job, &rep_o[r], err);
            if (!rc) served++;
        }
        if (!rc && warm) warm[pi] = median_decode(rep_o, WARM_REPEATS);
    }
    if (!rc && on_warm) rc = on_warm(warm_ctx, &tr, warm, err);
    for (int pi = 0; !rc && pi < g->n_policies; pi++) {
        wk_policy pol;
        if ((rc = wk_policy_create(g->policies[pi], &pol, err))) break;
        for (int ci = 0; !rc && ci < g->n_contexts; ci++)
            for (int s = 1; !rc && s <= g->requests; s++) {
                wk_validate_cell *cell = &rep->cells[cell_index(g, ti, pi, ci, s)];
                wk_stream_job job = {.context = cell->context, .seed = (uint64_t)s, .output_tokens = g->output_tokens};
                snprintf(job.policy, sizeof job.policy, "%s", g->policies[pi]);
                rc = wk_task_kind_parse(g->task, &job.task, err);
                wk_stream_outcome o;
                if (!rc) rc = wk_stream_client_request(c, "127.0.0.1", port, &job, &o, err);
                if (rc) break;
                served++;
                cell->exec_ok = o.ok;
                cell->exec_ttft_s = o.ok ? o.ttft_s : NAN;
                double parts[3] = {o.net_wait_s, o.kv_decode_s, o.compute_s};
                memcpy(cell->exec_parts, parts, sizeof parts);
                cell->exec_bytes = (double)o.bytes_at_first;
                wk_request_row row;
                exec_row(g, c, &tr, &pol, device, cell, &o, &row);
                rc = wk_results_add_request(db, rep->exec_run, &row, NULL, err);
                if (log) {
                    if (o.ok) fprintf(log, "exec %s: ttft %.4f s, f1 %.2f\n", cell->key, o.ttft_s, o.f1);
                    else fprintf(log, "exec %s: FAILED: %s\n", cell->key, o.fail_reason);
                    fflush(log);
                }
            }
        wk_policy_free(&pol);
        if (rc) break;
    }
    /* a request that never connected leaves the server waiting: shut its listener down */
    if (served < st.o.max_connections) shutdown(st.fd, SHUT_RDWR);
    pthread_join(th, NULL);
    close(st.fd);
    wk_trace_free(&tr);
    if (!rc && st.rc && served == st.o.max_connections) rc = wk_err_set(err, st.rc, "server: %s", st.err.msg);
    return rc;
}

/* ---- sim side --------------------------------------------------------------------------------- */

/* The simulator measures codec sizes on each cell's real KV (the files the server streamed from): all
 * of them are loaded first, so each keeps its address (plans and sizes are cached by it). */
static int load_samples(const wk_validate_grid *g, const char *kv_dir, wk_kv_tensor *kv, wk_err *err) {
    wk_stream_job job = {.output_tokens = g->output_tokens};
    int rc = wk_task_kind_parse(g->task, &job.task, err);
    for (int ci = 0; !rc && ci < g->n_contexts; ci++)
        for (int s = 1; !rc && s <= g->requests; s++) {
            job.context = g->contexts[ci];
            job.seed = (uint64_t)s;
            char path[4096];
            wk_stream_kv_path(kv_dir, &job, "wkv", path, sizeof path);
            rc = wk_kv_tensor_read(path, &kv[ci * g->requests + s - 1], err);
        }
    return rc;
}

static int sim_all(const wk_validate_grid *g, const wk_device *dev, const wk_model_spec *spec, const char *kv_dir,
                   wk_results *db, wk_validate_report *rep, wk_err *err) {
    wk_sim sim;
    wk_sim_init(&sim);
    size_t n_kv = (size_t)g->n_contexts * g->requests;
    wk_kv_tensor *kv = calloc(n_kv, sizeof *kv);
    int rc = kv ? load_samples(g, kv_dir, kv, err) : wk_err_set(err, WK_ENOMEM, "validate: out of memory");
    for (int ti = 0; !rc && ti < g->n_traces; ti++) {
        wk_trace tr;
        if ((rc = wk_trace_load(g->traces[ti], WK_FMT_AUTO, &tr, err))) break;
        for (int pi = 0; !rc && pi < g->n_policies; pi++) {
            wk_policy pol;
            if ((rc = wk_policy_create(g->policies[pi], &pol, err))) break;
            for (int ci = 0; !rc && ci < g->n_contexts; ci++)
                for (int s = 1; !rc && s <= g->requests; s++) {
                    wk_validate_cell *cell = &rep->cells[cell_index(g, ti, pi, ci, s)];
                    /* the exec row's context is the prompt's real length; 0 when exec never ran it */
                    wk_sim_config cfg = {.trace = &tr, .link = wk_validate_link(g), .model = spec, .device = dev,
                                         .context_tokens = cell->context_tokens, .output_tokens = g->output_tokens,
                                         .task = g->task, .seed = (uint64_t)s, .quality = NULL,
                                         .kv_sample = &kv[ci * g->requests + s - 1]};
                    wk_sim_result res;
                    rc = wk_sim_request(&sim, &pol, &cfg, NULL, &res, err);
                    if (rc) break;
                    cell->sim_ok = res.s.ok;
                    cell->sim_ttft_s = res.s.ok ? res.s.ttft_s : NAN;
                    double parts[3] = {res.s.net_wait_s, res.s.kv_decode_s, res.s.compute_s};
                    memcpy(cell->sim_parts, parts, sizeof parts);
                    cell->sim_bytes = (double)res.s.payload_bytes_sent;
                    wk_request_row row = wk_results_empty_row("sim");
                    row.policy = pol.ops->name;
                    row.params = pol.spec;
                    row.trace = tr.name;
                    row.trace_mean_mbps = wk_trace_mean_mbps(&tr);
                    row.model = spec->name;
                    row.device = dev->name;
                    row.task = g->task;
                    row.context_tokens = cell->context_tokens;
                    row.seed = s;
                    row.cell = cell->key;
                    row.output_tokens = res.s.tokens;
                    if (res.s.ok) {
                        row.ttft_s = res.s.ttft_s;
                        row.tpot_s = res.s.tpot_s;
                        row.total_s = res.s.total_s;
                        row.bytes_sent = res.s.payload_bytes_sent;
                        row.link_utilisation = res.link_utilisation;
                        row.kv_fraction_at_first = res.s.kv_fraction_at_first;
                        row.net_wait_s = res.s.net_wait_s;
                        row.kv_decode_s = res.s.kv_decode_s;
                        row.compute_s = res.s.compute_s;
                    } else {
                        row.status = "failed";
                        row.fail_reason = res.s.fail_reason;
                    }
                    rc = wk_results_add_request(db, rep->sim_run, &row, NULL, err);
                }
            wk_policy_free(&pol);
        }
        wk_trace_free(&tr);
    }
    for (size_t i = 0; kv && i < n_kv; i++) wk_kv_tensor_free(&kv[i]);
    free(kv);
    wk_sim_free(&sim);
    return rc;
}

/* ---- both ------------------------------------------------------------------------------------- */

static void summarise(wk_validate_report *rep) {
    double *abs_err = malloc((rep->n ? rep->n : 1) * sizeof *abs_err);
    size_t m = 0;
    for (size_t i = 0; i < rep->n; i++) {
        wk_validate_cell *c = &rep->cells[i];
        c->rel_err = c->exec_ok && c->sim_ok && c->exec_ttft_s > 0 ? (c->sim_ttft_s - c->exec_ttft_s) / c->exec_ttft_s : NAN;
        if (abs_err && !isnan(c->rel_err)) abs_err[m++] = fabs(c->rel_err);
    }
    rep->n_pairs = m;
    if (abs_err && m) {
        wk_sort_doubles(abs_err, m);
        rep->median_abs = wk_percentile_sorted(abs_err, m, 0.5);
        rep->p95_abs = wk_percentile_sorted(abs_err, m, 0.95);
    } else
        rep->median_abs = rep->p95_abs = NAN;
    free(abs_err);
}

static int prompt_tokens(const wk_validate_grid *g, wk_stream_client *c, int context, int seed, int *n, wk_err *err) {
    wk_stream_job job = {.context = context, .seed = (uint64_t)seed, .output_tokens = g->output_tokens};
    wk_stream_prompt p;
    int rc = wk_task_kind_parse(g->task, &job.task, err);
    if (!rc) rc = wk_stream_prompt_make(c->tok, &job, &p, err);
    if (rc) return rc;
    *n = p.n;
    wk_stream_prompt_free(&p);
    return 0;
}

static int init_cells(const wk_validate_grid *g, wk_stream_client *c, wk_validate_report *rep, wk_err *err) {
    rep->n = (size_t)g->n_traces * g->n_policies * g->n_contexts * g->requests;
    if (!(rep->cells = calloc(rep->n, sizeof *rep->cells))) return wk_err_set(err, WK_ENOMEM, "validate: out of memory");
    for (int ti = 0; ti < g->n_traces; ti++)
        for (int pi = 0; pi < g->n_policies; pi++)
            for (int ci = 0; ci < g->n_contexts; ci++)
                for (int s = 1; s <= g->requests; s++) {
                    wk_validate_cell *cell = &rep->cells[cell_index(g, ti, pi, ci, s)];
                    const char *base = strrchr(g->traces[ti], '/');
                    snprintf(cell->trace, sizeof cell->trace, "%s", base ? base + 1 : g->traces[ti]);
                    snprintf(cell->policy, sizeof cell->policy, "%s", g->policies[pi]);
                    cell->context = g->contexts[ci];
                    cell->seed = s;
                    int rc = prompt_tokens(g, c, cell->context, s, &cell->context_tokens, err);
                    if (rc) return rc;
                    snprintf(cell->key, sizeof cell->key, "validate|%s|%s|%d|%d", cell->policy, cell->trace,
                             cell->context, s);
                    cell->exec_ttft_s = cell->sim_ttft_s = cell->rel_err = NAN;
                }
    return 0;
}

/* ---- calibration -------------------------------------------------------------------------- */

typedef struct calib {
    const wk_validate_grid *g;
    wk_stream_client *c;
    wk_cal_report rep;      /* rep.fitted: the profile being made */
    const char *path, *source;
    FILE *log;
} calib;

/* Prefill and decode steps at the grid's prompt lengths (and half the shortest, so there are two). */
static int calibrate_compute(calib *k, const wk_validate_report *rep, wk_err *err) {
    int lens[WK_CAL_MAX_POINTS / 2], n = 0;
    for (size_t i = 0; i < rep->n && n < WK_CAL_MAX_POINTS / 2; i++) {
        int t = rep->cells[i].context_tokens, seen = 0;
        for (int j = 0; j < n; j++) seen |= lens[j] == t;
        if (!seen) lens[n++] = t;
    }
    if (n == 1) lens[n++] = lens[0] / 2;
    wk_device base;
    int rc = wk_device_find("cpu-reference", &base, err);
    if (!rc) rc = wk_calibrate(k->c->engine, &k->c->spec, &base, lens, n, lens, n, 8, &k->rep, err);
    if (rc) return rc;
    wk_err e2;
    if (wk_calibrate_fit_attention(&k->rep, &k->c->spec, &e2) && k->log) fprintf(k->log, "validate: %s\n", e2.msg);
    snprintf(k->rep.fitted.name, sizeof k->rep.fitted.name, "cpu-measured");
    if (k->log) wk_calibrate_print(&k->rep, k->log);
    return wk_calibrate_write(&k->rep, &base, k->source, k->path, err);
}

/* Each policy's codec decode rate from its warm-up requests: the fp16 bytes of the KV its units filled
 * by the first token (the simulator's count, at a 1 GB/s rate) over the engine's decode time (the
 * median of the repeats). */
static int calibrate_kv_rates(void *ctx, const wk_trace *tr, const wk_stream_outcome *warm, wk_err *err) {
    calib *k = ctx;
    wk_device unit = k->rep.fitted;
    unit.n_kv_rates = 0;
    unit.h2d_Bps = 0;
    wk_sim sim;
    wk_sim_init(&sim);
    int rc = 0;
    for (int pi = 0; !rc && pi < k->g->n_policies; pi++) {
        if (!warm[pi].ok || !(warm[pi].kv_decode_s > 0)) continue;
        wk_policy pol;
        if ((rc = wk_policy_create(k->g->policies[pi], &pol, err))) break;
        unit.n_kv_rates = 0; /* this policy's units at 1 GB/s: the decode time in ns is their fp16 bytes */
        rc = wk_device_set_kv_rate(&unit, pol.ops->name, 1e9, err);
        wk_sim_config cfg = {.trace = tr, .link = wk_validate_link(k->g), .model = &k->c->spec, .device = &unit,
                             .context_tokens = warm[pi].context_tokens, .output_tokens = k->g->output_tokens,
                             .task = k->g->task, .seed = 1};
        wk_sim_result res;
        if (!rc) rc = wk_sim_request(&sim, &pol, &cfg, NULL, &res, err);
        double bytes = rc ? 0 : res.s.kv_decode_s * 1e9;
        if (!rc && res.s.ok && bytes > 0) {
            rc = wk_device_set_kv_rate(&k->rep.fitted, pol.ops->name, bytes / warm[pi].kv_decode_s, err);
            if (k->log) fprintf(k->log, "validate: %s decodes %.0f KV bytes in %.4f s: %.3g GB/s\n", pol.ops->name,
                                bytes, warm[pi].kv_decode_s, bytes / warm[pi].kv_decode_s / 1e9);
        }
        wk_policy_free(&pol);
    }
    wk_sim_free(&sim);
    wk_device base;
    if (!rc) rc = wk_device_find("cpu-reference", &base, err);
    if (!rc) rc = wk_calibrate_write(&k->rep, &base, k->source, k->path, err);
    return rc;
}

int wk_validate_run(const wk_validate_grid *g, const char *profile, const char *profile_out, wk_results *db,
                    const char *command, FILE *log, wk_validate_report *rep, wk_err *err) {
    memset(rep, 0, sizeof *rep);
    wk_device dev;
    wk_stream_client c;
    if (!profile && !profile_out) return wk_err_set(err, WK_EINVAL, "validate: a profile or a path to calibrate one to");
    int rc = wk_stream_client_open(&c, g->model, err);
    if (rc) return rc;
    char source[4400];
    snprintf(source, sizeof source, "this machine's CPU, model %.4000s, wikv %s (commit %s)", g->model, WIKV_VERSION_STRING,
             WIKV_GIT_COMMIT);
    calib k = {.g = g, .c = &c, .path = profile_out, .source = source, .log = log};
    wk_stream_outcome *warm = calloc((size_t)g->n_policies, sizeof *warm);
    if (!warm) rc = wk_err_set(err, WK_ENOMEM, "validate: out of memory");
    c.device = profile ? profile : profile_out;
    c.timeout_s = 60.0;
    char kv_dir[] = "/tmp/wikv-validate-XXXXXX";
    int have_dir = mkdtemp(kv_dir) != NULL;
    if (!rc && !have_dir) rc = wk_err_set(err, WK_EIO, "validate: cannot create a temporary folder");
    if (!rc) rc = init_cells(g, &c, rep, err);
    if (!rc && !profile) {
        if (log) fprintf(log, "validate: calibrating the CPU engine -> %s\n", profile_out);
        rc = calibrate_compute(&k, rep, err);
    }
    if (!rc) rc = wk_device_find(c.device, &dev, err);
    if (!rc && log) fprintf(log, "validate: %zu cells; prefilling the contexts' KV for the server\n", rep->n);
    if (!rc) rc = make_kv(g, &c, kv_dir, err);
    if (!rc) rc = wk_results_begin_run(db, "exec", command, &rep->exec_run, err);
    for (int ti = 0; !rc && ti < g->n_traces; ti++)
        rc = exec_trace(g, ti, c.device, dev.name, &c, kv_dir, db, log, warm, !profile && ti == 0 ? calibrate_kv_rates : NULL,
                        &k, rep, err);
    if (!rc) rc = wk_device_find(c.device, &dev, err); /* with the decode rates measured on the way */
    if (!rc) rc = wk_results_finish_run(db, rep->exec_run, err);
    if (!rc) rc = wk_results_begin_run(db, "sim", command, &rep->sim_run, err);
    if (!rc) rc = sim_all(g, &dev, &c.spec, kv_dir, db, rep, err);
    if (!rc) rc = wk_results_finish_run(db, rep->sim_run, err);
    if (rc) {
        wk_err e2;
        if (rep->exec_run) wk_results_fail_run(db, rep->exec_run, err->msg, &e2);
        if (rep->sim_run) wk_results_fail_run(db, rep->sim_run, err->msg, &e2);
    }
    if (have_dir) remove_kv(g, kv_dir);
    free(warm);
    wk_stream_client_close(&c);
    if (!rc) summarise(rep);
    return rc;
}

void wk_validate_report_free(wk_validate_report *rep) {
    free(rep->cells);
    memset(rep, 0, sizeof *rep);
}

/* Median over the cells of one policy of x(cell); NaN when none has it. */
static double policy_median(const wk_validate_report *rep, const char *policy, int term) {
    double *v = malloc((rep->n ? rep->n : 1) * sizeof *v);
    size_t m = 0;
    for (size_t i = 0; v && i < rep->n; i++) {
        const wk_validate_cell *c = &rep->cells[i];
        if (strcmp(c->policy, policy) != 0 || isnan(c->rel_err)) continue;
        double x = term < 0 ? c->rel_err
                   : term < 3 ? (c->sim_parts[term] > 0 ? c->exec_parts[term] / c->sim_parts[term] : NAN)
                              : (c->sim_bytes > 0 ? c->exec_bytes / c->sim_bytes : NAN);
        if (!isnan(x)) v[m++] = x;
    }
    double r = NAN;
    if (m) {
        wk_sort_doubles(v, m);
        r = wk_percentile_sorted(v, m, 0.5);
    }
    free(v);
    return r;
}

/* Which term of the time model is off: per policy, the median error and the median exec / sim ratio
 * of each part of the time to the first token and of the payload bytes by then. */
static void print_terms(const wk_validate_report *rep, FILE *out) {
    fprintf(out, "per policy, medians over its cells: exec / sim ratio of each term (nan: 0 in the simulator); "
                 "bytes@1st: payload arrived (exec) over sent (sim, units in flight included)\n");
    fprintf(out, "%-24s %8s %9s %10s %8s %9s\n", "policy", "rel_err", "net_wait", "kv_decode", "compute", "bytes@1st");
    for (size_t i = 0; i < rep->n; i++) {
        const char *p = rep->cells[i].policy;
        size_t j = 0;
        while (j < i && strcmp(rep->cells[j].policy, p) != 0) j++;
        if (j < i) continue; /* printed already */
        fprintf(out, "%-24s %7.1f%% %9.3f %10.3f %8.3f %9.3f\n", p, 100 * policy_median(rep, p, -1),
                policy_median(rep, p, 0), policy_median(rep, p, 1), policy_median(rep, p, 2), policy_median(rep, p, 3));
    }
}

void wk_validate_print(const wk_validate_report *rep, FILE *out) {
    fprintf(out, "%-24s %-30s %7s %4s %10s %10s %8s   %s\n", "policy", "trace", "context", "seed", "exec_ttft",
            "sim_ttft", "rel_err", "exec/sim net_wait kv_decode compute (s)");
    for (size_t i = 0; i < rep->n; i++) {
        const wk_validate_cell *c = &rep->cells[i];
        fprintf(out, "%-24s %-30s %7d %4d %10.4f %10.4f %7.1f%%   %.4f/%.4f %.4f/%.4f %.4f/%.4f\n", c->policy, c->trace,
                c->context, c->seed, c->exec_ttft_s, c->sim_ttft_s, 100 * c->rel_err, c->exec_parts[0], c->sim_parts[0],
                c->exec_parts[1], c->sim_parts[1], c->exec_parts[2], c->sim_parts[2]);
    }
    print_terms(rep, out);
    fprintf(out, "pairs %zu of %zu cells; median |rel err| %.2f%%, p95 |rel err| %.2f%%\n", rep->n_pairs, rep->n,
            100 * rep->median_abs, 100 * rep->p95_abs);
    fprintf(out, "exec run %lld, sim run %lld\n", (long long)rep->exec_run, (long long)rep->sim_run);
}
