/* Merging result databases (sweep shards): ATTACH the part, shift its ids past ours, copy. */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/results.h"

static int merge_fail(sqlite3 *h, const char *part, const char *what, wk_err *err) {
    return wk_err_set(err, WK_EDB, "merge %s: %s: %s", part, what, sqlite3_errmsg(h));
}

static int query_int(sqlite3 *h, const char *sql, long long *out) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    int ok = sqlite3_step(st) == SQLITE_ROW;
    if (ok) *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

static const char *request_columns =
    "kind, policy, params, trace, trace_mean_mbps, model, device, task, context_tokens, seed, status, fail_reason,"
    " ttft_s, tpot_s, total_s, output_tokens, bytes_sent, link_utilisation, kv_fraction_at_first, net_wait_s,"
    " kv_decode_s, compute_s, f1, answer, cell, oracle_ttft_s";

static int copy_all(sqlite3 *h, long long run_shift, long long req_shift, const char *part, wk_err *err) {
    char sql[2048];
    snprintf(sql, sizeof sql,
             "INSERT INTO main.runs(run_id, kind, status, command, started_at, finished_at, wikv_version, note)"
             " SELECT run_id + %lld, kind, status, command, started_at, finished_at, wikv_version, note FROM part.runs",
             run_shift);
    if (sqlite3_exec(h, sql, NULL, NULL, NULL) != SQLITE_OK) return merge_fail(h, part, "copying runs", err);
    snprintf(sql, sizeof sql, "INSERT INTO main.requests(request_id, run_id, %s) SELECT request_id + %lld, run_id + %lld, %s"
             " FROM part.requests", request_columns, req_shift, run_shift, request_columns);
    if (sqlite3_exec(h, sql, NULL, NULL, NULL) != SQLITE_OK) return merge_fail(h, part, "copying requests", err);
    snprintf(sql, sizeof sql, "INSERT INTO main.events(request_id, seq, t_s, type, level, value)"
             " SELECT request_id + %lld, seq, t_s, type, level, value FROM part.events", req_shift);
    if (sqlite3_exec(h, sql, NULL, NULL, NULL) != SQLITE_OK) return merge_fail(h, part, "copying events", err);
    if (sqlite3_exec(h, "INSERT OR IGNORE INTO main.trace_samples SELECT trace, t_s, mbps FROM part.trace_samples", NULL,
                     NULL, NULL) != SQLITE_OK)
        return merge_fail(h, part, "copying trace samples", err);
    return 0;
}

int wk_results_merge(wk_results *db, const char *part, wk_err *err) {
    if (access(part, R_OK) != 0) return wk_err_set(err, WK_ENOTFOUND, "merge: %s: no such database", part);
    sqlite3 *h = wk_results_handle(db);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h, "ATTACH DATABASE ? AS part", -1, &st, NULL) != SQLITE_OK)
        return merge_fail(h, part, "attach", err);
    sqlite3_bind_text(st, 1, part, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_DONE) return merge_fail(h, part, "attach", err);
    long long version = -1, tables = 0, run_shift = 0, req_shift = 0;
    int rc = 0;
    if (query_int(h, "PRAGMA part.user_version", &version) ||
        query_int(h, "SELECT count(*) FROM part.sqlite_master WHERE name IN ('runs','requests','events')", &tables))
        rc = merge_fail(h, part, "reading its schema (corrupt or not a database?)", err);
    else if (version != WK_RESULTS_SCHEMA_VERSION || tables != 3)
        rc = wk_err_set(err, WK_EDB, "merge %s: schema version %lld, this database has version %d: refusing to mix",
                        part, version, WK_RESULTS_SCHEMA_VERSION);
    if (!rc && (query_int(h, "SELECT coalesce(max(run_id), 0) FROM main.runs", &run_shift) ||
                query_int(h, "SELECT coalesce(max(request_id), 0) FROM main.requests", &req_shift)))
        rc = merge_fail(h, part, "reading ids", err);
    if (!rc && sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) rc = merge_fail(h, part, "begin", err);
    if (!rc) {
        rc = copy_all(h, run_shift, req_shift, part, err);
        if (rc || sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            if (!rc) rc = merge_fail(h, part, "commit", err);
            sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    sqlite3_exec(h, "DETACH DATABASE part", NULL, NULL, NULL);
    return rc;
}
