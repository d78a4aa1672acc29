/* Sweep execution: grid parsing, resume by fingerprint, fan-out over worker processes. */
#include "sim/sweep.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/progress.h"
#include "net/trace_list.h"

static int push_str(char ***list, size_t *n, const char *s) {
    char **l = realloc(*list, (*n + 1) * sizeof *l);
    if (!l) return -1;
    *list = l;
    l[*n] = strdup(s);
    if (!l[*n]) return -1;
    (*n)++;
    return 0;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

/* Resolves a path relative to the grid's folder. */
static void resolve(const char *dir, const char *p, char *out, size_t cap) {
    if (p[0] == '/' || !dir[0]) snprintf(out, cap, "%s", p);
    else snprintf(out, cap, "%s/%s", dir, p);
}

static int parse_list(char *value, const char *dir, int is_path, int is_policy, char ***list, size_t *n) {
    char *save = NULL;
    for (char *tok = strtok_r(value, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        tok = trim(tok);
        if (!*tok) continue;
        if (is_policy && strchr(tok, '=') && !strchr(tok, ':') && *n > 0) {
            char *prev = (*list)[*n - 1];
            size_t len = strlen(prev) + strlen(tok) + 2;
            char *joined = malloc(len);
            if (!joined) return -1;
            snprintf(joined, len, "%s,%s", prev, tok);
            free(prev);
            (*list)[*n - 1] = joined;
            continue;
        }
        char path[4096];
        if (is_path) resolve(dir, tok, path, sizeof path);
        else snprintf(path, sizeof path, "%s", tok);
        if (push_str(list, n, path)) return -1;
    }
    return 0;
}

static uint64_t fnv1a(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (h ^ 0xFF) * 1099511628211ull; /* separator */
}

static void fingerprint(wk_grid *g) {
    uint64_t h = 1469598103934665603ull;
    char num[64];
    for (size_t i = 0; i < g->n_traces; i++) h = fnv1a(h, g->traces[i]);
    for (size_t i = 0; i < g->n_policies; i++) h = fnv1a(h, g->policies[i]);
    for (size_t i = 0; i < g->n_models; i++) h = fnv1a(h, g->models[i]);
    for (size_t i = 0; i < g->n_devices; i++) h = fnv1a(h, g->devices[i]);
    for (size_t i = 0; i < g->n_contexts; i++) {
        snprintf(num, sizeof num, "c%d", g->contexts[i]);
        h = fnv1a(h, num);
    }
    snprintf(num, sizeof num, "r%d o%d d%.6g q%.6g", g->requests, g->output_tokens, g->delay_ms, g->quality_target);
    h = fnv1a(h, num);
    if (g->quality) h = fnv1a(h, g->quality);
    snprintf(g->fingerprint, sizeof g->fingerprint, "%016llx", (unsigned long long)h);
}

static void free_list(char **l, size_t n) {
    for (size_t i = 0; i < n; i++) free(l[i]);
    free(l);
}

static int parse_line(wk_grid *g, char *line, const char *dir, const char *path, int line_no, wk_err *err) {
    char *hash = strchr(line, '#');
    /* '#' starts a comment unless it selects a CSV column (PATH#COLUMN: no space before it) */
    while (hash && hash > line && !isspace((unsigned char)hash[-1])) hash = strchr(hash + 1, '#');
    if (hash) *hash = '\0';
    char *s = trim(line);
    if (!*s) return 0;
    char *eq = strchr(s, '=');
    if (!eq) return wk_err_set(err, WK_EFORMAT, "%s:%d: expected key = value", path, line_no);
    *eq = '\0';
    char *key = trim(s), *value = trim(eq + 1);
    int rc = 0;
    if (!strcmp(key, "traces")) {
        char **raw = NULL;
        size_t n_raw = 0;
        rc = parse_list(value, dir, 1, 0, &raw, &n_raw);
        for (size_t i = 0; i < n_raw; i++) {
            if (!rc && wk_trace_list_expand(raw[i], &g->traces, &g->n_traces, err) != 0) {
                free_list(raw, n_raw);
                return wk_err_prefix(err, "%s:%d", path, line_no);
            }
        }
        free_list(raw, n_raw);
        return rc ? wk_err_set(err, WK_ENOMEM, "%s: out of memory", path) : 0;
    }
    else if (!strcmp(key, "policies")) rc = parse_list(value, dir, 0, 1, &g->policies, &g->n_policies);
    else if (!strcmp(key, "models")) rc = parse_list(value, dir, 0, 0, &g->models, &g->n_models);
    else if (!strcmp(key, "devices")) rc = parse_list(value, dir, 0, 0, &g->devices, &g->n_devices);
    else if (!strcmp(key, "contexts")) {
        int n = wk_parse_int_list_grid(value, g->contexts, 64);
        if (n < 0) return wk_err_set(err, WK_EFORMAT, "%s:%d: contexts: expected positive integers", path, line_no);
        g->n_contexts = (size_t)n;
    } else if (!strcmp(key, "requests") || !strcmp(key, "output_tokens")) {
        char *end;
        long v = strtol(value, &end, 10);
        if (end == value || *end || v <= 0 || v > 1000000)
            return wk_err_set(err, WK_EFORMAT, "%s:%d: %s: expected a positive integer", path, line_no, key);
        if (!strcmp(key, "requests")) g->requests = (int)v;
        else g->output_tokens = (int)v;
    } else if (!strcmp(key, "delay_ms")) {
        char *end;
        double v = strtod(value, &end);
        if (end == value || *end || v < 0) return wk_err_set(err, WK_EFORMAT, "%s:%d: delay_ms", path, line_no);
        g->delay_ms = v;
    } else if (!strcmp(key, "quality_target")) {
        char *end;
        double v = strtod(value, &end);
        if (end == value || *end || v < 0 || v > 1)
            return wk_err_set(err, WK_EFORMAT, "%s:%d: quality_target: expected a number in [0, 1]", path, line_no);
        g->quality_target = v;
    } else if (!strcmp(key, "quality")) {
        char p[4096];
        resolve(dir, value, p, sizeof p);
        free(g->quality);
        g->quality = strdup(p);
    } else {
        return wk_err_set(err, WK_EFORMAT, "%s:%d: unknown key \"%s\"", path, line_no, key);
    }
    return rc ? wk_err_set(err, WK_ENOMEM, "%s: out of memory", path) : 0;
}

int wk_parse_int_list_grid(const char *csv, int *out, int max) {
    int n = 0;
    const char *p = csv;
    while (*p) {
        while (isspace((unsigned char)*p) || *p == ',') p++;
        if (!*p) break;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0 || v > 10000000 || n == max) return -1;
        out[n++] = (int)v;
        p = end;
        while (isspace((unsigned char)*p)) p++;
        if (*p && *p != ',') return -1;
    }
    return n > 0 ? n : -1;
}

int wk_grid_load(const char *path, wk_grid *g, wk_err *err) {
    memset(g, 0, sizeof *g);
    g->requests = 10;
    g->output_tokens = 1;
    g->delay_ms = 10;
    g->quality_target = 0.95;
    FILE *f = fopen(path, "r");
    if (!f) return wk_err_set(err, WK_ENOTFOUND, "%s: cannot open: %s", path, strerror(errno));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else dir[0] = '\0';
    char line[8192];
    int line_no = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) rc = parse_line(g, line, dir, path, ++line_no, err);
    fclose(f);
    if (!rc && (!g->n_traces || !g->n_policies || !g->n_models || !g->n_devices || !g->n_contexts))
        rc = wk_err_set(err, WK_EFORMAT, "%s: a grid needs traces, policies, models, devices and contexts", path);
    if (rc) wk_grid_free(g);
    else fingerprint(g);
    return rc;
}


void wk_grid_free(wk_grid *g) {
    free_list(g->traces, g->n_traces);
    free_list(g->policies, g->n_policies);
    free_list(g->models, g->n_models);
    free_list(g->devices, g->n_devices);
    free(g->quality);
    memset(g, 0, sizeof *g);
}

void wk_grid_config(const wk_grid *g, wk_runner_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->traces = (const char *const *)g->traces;
    cfg->n_traces = g->n_traces;
    cfg->policies = (const char *const *)g->policies;
    cfg->n_policies = g->n_policies;
    cfg->models = (const char *const *)g->models;
    cfg->n_models = g->n_models;
    cfg->devices = (const char *const *)g->devices;
    cfg->n_devices = g->n_devices;
    cfg->contexts = g->contexts;
    cfg->n_contexts = g->n_contexts;
    cfg->requests_per_trace = g->requests;
    cfg->output_tokens = g->output_tokens;
    cfg->task = "none";
    cfg->link = wk_link_defaults();
    cfg->link.one_way_delay_s = cfg->link.request_delay_s = g->delay_ms / 1000.0;
    cfg->events = WK_EVENTS_NONE;
    cfg->quality_path = g->quality;
    cfg->quality_target = g->quality_target;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Cell keys the run already has, sorted. */
static int load_done(wk_results *db, int64_t run_id, char ***keys, size_t *n, wk_err *err) {
    sqlite3 *h = wk_results_handle(db);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h, "SELECT cell FROM requests WHERE run_id = ? AND cell IS NOT NULL", -1, &st, NULL) !=
        SQLITE_OK)
        return wk_err_set(err, WK_EDB, "sweep: %s", sqlite3_errmsg(h));
    sqlite3_bind_int64(st, 1, run_id);
    int rc = 0;
    while (sqlite3_step(st) == SQLITE_ROW)
        if (push_str(keys, n, (const char *)sqlite3_column_text(st, 0))) {
            rc = wk_err_set(err, WK_ENOMEM, "sweep: out of memory");
            break;
        }
    sqlite3_finalize(st);
    if (!rc && *n) qsort(*keys, *n, sizeof **keys, cmp_str);
    return rc;
}

static long count_cells(wk_results *db, int64_t run_id) {
    sqlite3_stmt *st;
    long n = -1;
    if (sqlite3_prepare_v2(wk_results_handle(db), "SELECT count(*) FROM requests WHERE run_id = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_int64(st, 1, run_id);
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return n;
}

static int worker(const wk_runner_config *cfg, const wk_runner_slice *slice, const char *db_path, int64_t run_id) {
    wk_results *db;
    wk_err err = {0};
    int rc = wk_results_open(db_path, &db, &err);
    if (!rc) {
        rc = wk_runner_run_slice(cfg, slice, db, run_id, &err);
        wk_results_close(db);
    }
    if (rc) fprintf(stderr, "wikv sweep worker %d: %s\n", slice->job, err.msg);
    return rc ? 1 : 0;
}

/* Opens or resumes the sweep's run; fills the cells it already has. */
static int prepare_run(const wk_grid *g, const wk_sweep_opts *o, const wk_runner_config *cfg, wk_results *db,
                       const char *command, int64_t *run_id, char ***done, size_t *n_done, wk_err *err) {
    char note[96];
    snprintf(note, sizeof note, "sweep:%s:%d/%d", g->fingerprint, o->shard_k, o->shard_n);
    int rc = wk_results_find_running(db, note, run_id, err);
    if (rc == WK_ENOTFOUND) {
        rc = wk_results_create_run(db, "sim", command, note, run_id, err);
        if (!rc) rc = wk_results_resume_run(db, *run_id, err);
        if (!rc) rc = wk_runner_store_traces(cfg, db, err);
        if (!rc) rc = wk_results_commit(db, err);
        return rc;
    }
    if (rc) return rc;
    return load_done(db, *run_id, done, n_done, err);
}

static int wait_workers(pid_t *pids, int jobs, wk_results *db, int64_t run_id, size_t expected, int progress) {
    wk_progress prog;
    if (progress) wk_progress_start(&prog, "sweep", expected);
    int failed = 0, running = jobs;
    while (running > 0) {
        int status;
        pid_t pid = waitpid(-1, &status, progress ? WNOHANG : 0);
        if (pid > 0) {
            running--;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = 1;
            for (int j = 0; j < jobs; j++) if (pids[j] == pid) pids[j] = 0;
        } else if (pid == 0) {
            long n = count_cells(db, run_id);
            if (n >= 0 && progress) {
                prog.done = (size_t)n;
                wk_progress_step(&prog, 0);
            }
            struct timespec pause = {0, 100000000};
            nanosleep(&pause, NULL);
        } else if (errno != EINTR) {
            break;
        }
    }
    if (progress) {
        long n = count_cells(db, run_id);
        prog.done = n > 0 ? (size_t)n : prog.done;
        wk_progress_finish(&prog);
    }
    return failed;
}

int wk_sweep_run(const wk_grid *g, const wk_sweep_opts *o, const char *db_path, const char *command, int64_t *run_id,
                 wk_err *err) {
    if (o->shard_n < 1 || o->shard_k < 1 || o->shard_k > o->shard_n || o->jobs < 1)
        return wk_err_set(err, WK_EINVAL, "sweep: --shard must be k/n with 1 <= k <= n, --jobs >= 1");
    wk_runner_config cfg;
    wk_grid_config(g, &cfg);
    wk_results *db;
    int rc = wk_results_open(db_path, &db, err);
    if (rc) return rc;
    char **done = NULL;
    size_t n_done = 0;
    rc = prepare_run(g, o, &cfg, db, command, run_id, &done, &n_done, err);
    size_t total = wk_runner_cell_count(&cfg);
    size_t expected = (total + (size_t)o->shard_n - (size_t)o->shard_k) / (size_t)o->shard_n;
    pid_t *pids = calloc((size_t)o->jobs, sizeof *pids);
    if (!rc && !pids) rc = wk_err_set(err, WK_ENOMEM, "sweep: out of memory");
    /* no SQLite connection may cross a fork: close, fork the workers, reopen to watch them */
    wk_results_close(db);
    db = NULL;
    int started = 0;
    for (int j = 0; !rc && j < o->jobs; j++) {
        wk_runner_slice slice = {o->shard_k - 1, o->shard_n, j, o->jobs, done, n_done};
        pid_t pid = fork();
        if (pid < 0) {
            rc = wk_err_set(err, WK_EIO, "sweep: fork: %s", strerror(errno));
            break;
        }
        if (pid == 0) _exit(worker(&cfg, &slice, db_path, *run_id)); /* the child's own connection */
        pids[started++] = pid;
    }
    wk_err open_err;
    if (wk_results_open(db_path, &db, &open_err) != 0) {
        for (int j = 0; j < started; j++) waitpid(pids[j], NULL, 0);
        free(pids);
        free_list(done, n_done);
        return rc ? rc : wk_err_set(err, open_err.code, "%s", open_err.msg);
    }
    if (started) {
        int failed = wait_workers(pids, started, db, *run_id, expected, o->progress);
        if (!rc && failed) rc = wk_err_set(err, WK_EIO, "sweep: a worker failed; rerun the same command to resume");
    }
    long have = count_cells(db, *run_id);
    if (!rc && have >= 0 && (size_t)have != expected)
        rc = wk_err_set(err, WK_ESTATE, "sweep: run %lld has %ld of %zu cells; rerun to resume", (long long)*run_id,
                        have, expected);
    if (!rc) rc = wk_results_complete_run(db, *run_id, err);
    free(pids);
    free_list(done, n_done);
    wk_results_close(db);
    return rc;
}
