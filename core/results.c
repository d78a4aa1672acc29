/* SQLite results store. All writes of a run happen inside one transaction opened by begin_run and
 * closed by finish_run or fail_run; the run row itself is committed before, so a crash leaves a
 * visible 'running' run with no requests. */
#include "core/results.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct wk_results {
    sqlite3 *db;
    char path[1024];
    sqlite3_stmt *insert_request;
    sqlite3_stmt *insert_event;
    int in_transaction;
};

static const char *schema_sql =
    "CREATE TABLE IF NOT EXISTS runs("
    " run_id INTEGER PRIMARY KEY, kind TEXT NOT NULL CHECK(kind IN ('sim','exec')),"
    " status TEXT NOT NULL CHECK(status IN ('running','complete','failed')),"
    " command TEXT, started_at TEXT, finished_at TEXT, wikv_version TEXT, note TEXT);"
    "CREATE TABLE IF NOT EXISTS requests("
    " request_id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(run_id),"
    " kind TEXT NOT NULL, policy TEXT NOT NULL, params TEXT, trace TEXT, trace_mean_mbps REAL,"
    " model TEXT, device TEXT, task TEXT, context_tokens INTEGER, seed INTEGER,"
    " status TEXT NOT NULL CHECK(status IN ('ok','failed')), fail_reason TEXT,"
    " ttft_s REAL, tpot_s REAL, total_s REAL, output_tokens INTEGER, bytes_sent INTEGER,"
    " link_utilisation REAL, kv_fraction_at_first REAL, net_wait_s REAL, kv_decode_s REAL, compute_s REAL,"
    " f1 REAL, answer TEXT, cell TEXT, oracle_ttft_s REAL);"
    "CREATE INDEX IF NOT EXISTS requests_run ON requests(run_id);"
    "CREATE INDEX IF NOT EXISTS requests_cell ON requests(cell);"
    "CREATE TABLE IF NOT EXISTS events("
    " request_id INTEGER NOT NULL REFERENCES requests(request_id), seq INTEGER NOT NULL,"
    " t_s REAL NOT NULL, type TEXT NOT NULL, level INTEGER, value REAL, PRIMARY KEY(request_id, seq));"
    "CREATE TABLE IF NOT EXISTS trace_samples("
    " trace TEXT NOT NULL, t_s REAL NOT NULL, mbps REAL NOT NULL, PRIMARY KEY(trace, t_s));"
    "CREATE VIEW IF NOT EXISTS complete_requests AS"
    " SELECT requests.* FROM requests JOIN runs USING(run_id) WHERE runs.status = 'complete';";

static int db_fail(wk_results *r, wk_err *err, const char *what) {
    int code = sqlite3_errcode(r->db);
    const char *hint = "";
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) hint = " (the file is corrupt or not a database)";
    else if (code == SQLITE_FULL) hint = " (disk full: earlier complete runs are intact)";
    return wk_err_set(err, WK_EDB, "%s: %s: %s%s", r->path, what, sqlite3_errmsg(r->db), hint);
}

static int exec_sql(wk_results *r, const char *sql, wk_err *err) {
    char *msg = NULL;
    if (sqlite3_exec(r->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = db_fail(r, err, sql);
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

static int schema_version(wk_results *r, int *version, wk_err *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return db_fail(r, err, "reading schema version");
    int rc = sqlite3_step(st);
    *version = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_fail(r, err, "reading schema version");
}

static int table_count(wk_results *r, int *n, wk_err *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL) != SQLITE_OK)
        return db_fail(r, err, "reading the schema");
    int rc = sqlite3_step(st);
    *n = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_fail(r, err, "reading the schema");
}

static int ensure_schema(wk_results *r, wk_err *err) {
    int version, tables;
    int rc = schema_version(r, &version, err);
    if (!rc) rc = table_count(r, &tables, err);
    if (rc) return rc;
    if (version == 0 && tables > 0)
        return wk_err_set(err, WK_EDB, "%s: not a wikv results database (it has other tables)", r->path);
    if (version != 0 && version != WK_RESULTS_SCHEMA_VERSION)
        return wk_err_set(err, WK_EDB, "%s: schema version %d, this wikv reads version %d", r->path, version,
                          WK_RESULTS_SCHEMA_VERSION);
    if (version == 0) {
        rc = exec_sql(r, "BEGIN", err);
        if (!rc) rc = exec_sql(r, schema_sql, err);
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", WK_RESULTS_SCHEMA_VERSION);
        if (!rc) rc = exec_sql(r, sql, err);
        if (!rc) rc = exec_sql(r, "COMMIT", err);
        else sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

static const char *insert_request_sql =
    "INSERT INTO requests(run_id, kind, policy, params, trace, trace_mean_mbps, model, device, task,"
    " context_tokens, seed, status, fail_reason, ttft_s, tpot_s, total_s, output_tokens, bytes_sent,"
    " link_utilisation, kv_fraction_at_first, net_wait_s, kv_decode_s, compute_s, f1, answer, cell, oracle_ttft_s)"
    " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

int wk_results_open(const char *path, wk_results **out, wk_err *err) {
    wk_results *r = calloc(1, sizeof *r);
    if (!r) return wk_err_set(err, WK_ENOMEM, "%s: out of memory", path);
    snprintf(r->path, sizeof r->path, "%s", path);
    int rc = 0;
    if (sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
        rc = db_fail(r, err, "cannot open");
    if (!rc) sqlite3_busy_timeout(r->db, 10000);
    if (!rc) rc = exec_sql(r, "PRAGMA journal_mode=WAL", err);
    if (!rc) rc = exec_sql(r, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON", err);
    if (!rc) rc = ensure_schema(r, err);
    if (!rc && sqlite3_prepare_v2(r->db, insert_request_sql, -1, &r->insert_request, NULL) != SQLITE_OK)
        rc = db_fail(r, err, "preparing insert");
    if (!rc && sqlite3_prepare_v2(r->db,
                                  "INSERT INTO events(request_id, seq, t_s, type, level, value) VALUES(?,?,?,?,?,?)",
                                  -1, &r->insert_event, NULL) != SQLITE_OK)
        rc = db_fail(r, err, "preparing insert");
    if (rc) {
        wk_results_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

void wk_results_close(wk_results *r) {
    if (!r) return;
    if (r->in_transaction) sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_finalize(r->insert_request);
    sqlite3_finalize(r->insert_event);
    sqlite3_close(r->db);
    free(r);
}

static void utc_now(char *buf, size_t cap) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int wk_results_create_run(wk_results *r, const char *kind, const char *command, const char *note, int64_t *run_id,
                          wk_err *err) {
    if (r->in_transaction) return wk_err_set(err, WK_ESTATE, "%s: a run is already open", r->path);
    char now[32];
    utc_now(now, sizeof now);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db,
                           "INSERT INTO runs(kind, status, command, started_at, wikv_version, note) "
                           "VALUES(?, 'running', ?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(r, err, "preparing run insert");
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, command, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, WIKV_VERSION_STRING, -1, SQLITE_STATIC);
    if (note) sqlite3_bind_text(st, 5, note, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, 5);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_DONE) return db_fail(r, err, "inserting run");
    *run_id = sqlite3_last_insert_rowid(r->db);
    return 0;
}

int wk_results_resume_run(wk_results *r, int64_t run_id, wk_err *err) {
    (void)run_id;
    if (r->in_transaction) return wk_err_set(err, WK_ESTATE, "%s: a run is already open", r->path);
    int rc = exec_sql(r, "BEGIN IMMEDIATE", err);
    if (!rc) r->in_transaction = 1;
    return rc;
}

int wk_results_begin_run(wk_results *r, const char *kind, const char *command, int64_t *run_id, wk_err *err) {
    int rc = wk_results_create_run(r, kind, command, NULL, run_id, err);
    return rc ? rc : wk_results_resume_run(r, *run_id, err);
}

int wk_results_find_running(wk_results *r, const char *note, int64_t *run_id, wk_err *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "SELECT max(run_id) FROM runs WHERE status = 'running' AND note = ?", -1, &st,
                           NULL) != SQLITE_OK)
        return db_fail(r, err, "looking up runs");
    sqlite3_bind_text(st, 1, note, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(st);
    int found = step == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
    if (found) *run_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (step != SQLITE_ROW) return db_fail(r, err, "looking up runs");
    return found ? 0 : wk_err_set(err, WK_ENOTFOUND, "%s: no running run with note %s", r->path, note);
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s) {
    if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i);
}

static void bind_real_or_null(sqlite3_stmt *st, int i, double v) {
    if (isfinite(v)) sqlite3_bind_double(st, i, v);
    else sqlite3_bind_null(st, i);
}

int wk_results_add_request(wk_results *r, int64_t run_id, const wk_request_row *row, int64_t *request_id,
                           wk_err *err) {
    if (!r->in_transaction) return wk_err_set(err, WK_ESTATE, "%s: no open run", r->path);
    sqlite3_stmt *st = r->insert_request;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    int i = 1;
    sqlite3_bind_int64(st, i++, run_id);
    bind_text_or_null(st, i++, row->kind);
    bind_text_or_null(st, i++, row->policy);
    bind_text_or_null(st, i++, row->params);
    bind_text_or_null(st, i++, row->trace);
    bind_real_or_null(st, i++, row->trace_mean_mbps);
    bind_text_or_null(st, i++, row->model);
    bind_text_or_null(st, i++, row->device);
    bind_text_or_null(st, i++, row->task);
    sqlite3_bind_int(st, i++, row->context_tokens);
    sqlite3_bind_int64(st, i++, row->seed);
    bind_text_or_null(st, i++, row->status ? row->status : "ok");
    bind_text_or_null(st, i++, row->fail_reason);
    bind_real_or_null(st, i++, row->ttft_s);
    bind_real_or_null(st, i++, row->tpot_s);
    bind_real_or_null(st, i++, row->total_s);
    sqlite3_bind_int(st, i++, row->output_tokens);
    sqlite3_bind_int64(st, i++, row->bytes_sent);
    bind_real_or_null(st, i++, row->link_utilisation);
    bind_real_or_null(st, i++, row->kv_fraction_at_first);
    bind_real_or_null(st, i++, row->net_wait_s);
    bind_real_or_null(st, i++, row->kv_decode_s);
    bind_real_or_null(st, i++, row->compute_s);
    bind_real_or_null(st, i++, row->f1);
    bind_text_or_null(st, i++, row->answer);
    bind_text_or_null(st, i++, row->cell);
    bind_real_or_null(st, i++, row->oracle_ttft_s);
    if (sqlite3_step(st) != SQLITE_DONE) return db_fail(r, err, "inserting request");
    if (request_id) *request_id = sqlite3_last_insert_rowid(r->db);
    return 0;
}

int wk_results_add_event(wk_results *r, int64_t request_id, int seq, double t_s, const char *type, int level,
                         double value, wk_err *err) {
    sqlite3_stmt *st = r->insert_event;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, request_id);
    sqlite3_bind_int(st, 2, seq);
    sqlite3_bind_double(st, 3, t_s);
    sqlite3_bind_text(st, 4, type, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 5, level);
    bind_real_or_null(st, 6, value);
    if (sqlite3_step(st) != SQLITE_DONE) return db_fail(r, err, "inserting event");
    return 0;
}

/* A NULL note keeps the run's note (written at create); a failure's reason replaces it. */
static int set_run_status(wk_results *r, int64_t run_id, const char *status, const char *note, wk_err *err) {
    char now[32];
    utc_now(now, sizeof now);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "UPDATE runs SET status = ?, finished_at = ?, note = COALESCE(?, note) WHERE run_id = ?", -1, &st,
                           NULL) != SQLITE_OK)
        return db_fail(r, err, "preparing run update");
    sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, now, -1, SQLITE_TRANSIENT);
    bind_text_or_null(st, 3, note);
    sqlite3_bind_int64(st, 4, run_id);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    return step == SQLITE_DONE ? 0 : db_fail(r, err, "updating run");
}

int wk_results_finish_run(wk_results *r, int64_t run_id, wk_err *err) {
    if (!r->in_transaction) return wk_err_set(err, WK_ESTATE, "%s: no open run", r->path);
    int rc = set_run_status(r, run_id, "complete", NULL, err);
    if (!rc) rc = exec_sql(r, "COMMIT", err);
    if (rc) {
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
        r->in_transaction = 0;
        return rc;
    }
    r->in_transaction = 0;
    return 0;
}

int wk_results_commit(wk_results *r, wk_err *err) {
    if (!r->in_transaction) return wk_err_set(err, WK_ESTATE, "%s: no open transaction", r->path);
    int rc = exec_sql(r, "COMMIT", err);
    if (rc) sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    r->in_transaction = 0;
    return rc;
}

int wk_results_complete_run(wk_results *r, int64_t run_id, wk_err *err) {
    if (r->in_transaction) return wk_err_set(err, WK_ESTATE, "%s: run still has an open transaction", r->path);
    return set_run_status(r, run_id, "complete", NULL, err);
}

int wk_results_fail_run(wk_results *r, int64_t run_id, const char *reason, wk_err *err) {
    if (r->in_transaction) sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    r->in_transaction = 0;
    return set_run_status(r, run_id, "failed", reason, err);
}

int wk_results_checkpoint(wk_results *r, wk_err *err) {
    if (!r->in_transaction) return wk_err_set(err, WK_ESTATE, "%s: no open run", r->path);
    int rc = exec_sql(r, "COMMIT", err);
    if (rc) {
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
        r->in_transaction = 0;
        return rc;
    }
    rc = exec_sql(r, "BEGIN IMMEDIATE", err);
    if (rc) r->in_transaction = 0;
    return rc;
}

int wk_results_add_trace_samples(wk_results *r, const char *trace, const double *t_s, const double *mbps, size_t n,
                                 wk_err *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "INSERT OR IGNORE INTO trace_samples(trace, t_s, mbps) VALUES(?,?,?)", -1, &st,
                           NULL) != SQLITE_OK)
        return db_fail(r, err, "preparing trace insert");
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, trace, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(st, 2, t_s[i]);
        sqlite3_bind_double(st, 3, mbps[i]);
        if (sqlite3_step(st) != SQLITE_DONE) rc = db_fail(r, err, "inserting trace sample");
    }
    sqlite3_finalize(st);
    return rc;
}

struct sqlite3 *wk_results_handle(wk_results *r) { return r->db; }

double wk_results_null(void) { return NAN; }

wk_request_row wk_results_empty_row(const char *kind) {
    wk_request_row row;
    memset(&row, 0, sizeof row);
    row.kind = kind;
    row.status = "ok";
    row.trace_mean_mbps = row.ttft_s = row.tpot_s = row.total_s = NAN;
    row.link_utilisation = row.kv_fraction_at_first = row.net_wait_s = row.kv_decode_s = row.compute_s = NAN;
    row.f1 = row.oracle_ttft_s = NAN;
    return row;
}
