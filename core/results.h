/* The results store: one SQLite schema for simulated and real requests. Plots and summaries read
 * only this database.
 *
 * Promises: WAL mode; a run row is committed as 'running' first, then its requests and events are
 * written in one transaction that also marks the run 'complete'. A killed or failed run leaves either
 * nothing of its requests or all of them, and its row says 'running' (never finished) or 'failed'.
 * Readers use the complete_requests view, so a half-written run is never reported.
 *
 * Schema (version WK_RESULTS_SCHEMA_VERSION, stored in PRAGMA user_version):
 *   runs(run_id, kind 'sim'|'exec', status 'running'|'complete'|'failed', command, started_at,
 *        finished_at, wikv_version, note)
 *   requests(request_id, run_id, kind, policy, params, trace, trace_mean_mbps, model, device, task,
 *        context_tokens, seed, status 'ok'|'failed', fail_reason, ttft_s, tpot_s, total_s,
 *        output_tokens, bytes_sent, link_utilisation, kv_fraction_at_first, net_wait_s,
 *        kv_decode_s, compute_s, f1, answer, cell, oracle_ttft_s)
 *   events(request_id, seq, t_s, type, level, value)   -- the timeline of one request; types:
 *        'arrive' (value = cumulative payload bytes arrived, level = unit level), 'usable' (value =
 *        fraction of the plan's KV usable on the device), 'token' (value = token index),
 *        'prefill' / 'decode_kv' / 'emit' (compute actions; t_s = start, value = duration s)
 *   trace_samples(trace, t_s, mbps)  -- bandwidth of each trace used, 100 ms bins, for `wikv plot trace`
 *   complete_requests: view of requests whose run is complete
 *
 * Timing runs on synthetic weights (exec with `--model synthetic:NAME`: real compute, meaningless
 * answers) are kept apart from quality rows: requests.model = 'synthetic:NAME', requests.f1 NULL (not
 * measured, never 0), runs.note = 'synthetic weights: timing only, answers not scored'. A run's note
 * (set when it is created) stays when it completes; a failed run's note is its reason.
 */
#ifndef WIKV_CORE_RESULTS_H
#define WIKV_CORE_RESULTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define WK_RESULTS_SCHEMA_VERSION 1

typedef struct wk_results wk_results;

/* One row of `requests`. Strings may be NULL; doubles that are NaN are stored as NULL. */
typedef struct wk_request_row {
    const char *kind, *policy, *params, *trace, *model, *device, *task, *status, *fail_reason, *answer, *cell;
    double trace_mean_mbps;
    int context_tokens;
    int64_t seed;
    double ttft_s, tpot_s, total_s;
    int output_tokens;
    int64_t bytes_sent;
    double link_utilisation, kv_fraction_at_first;
    double net_wait_s, kv_decode_s, compute_s;
    double f1;
    double oracle_ttft_s;   /* sim: the oracle's lower bound for the same request (sim/oracle.h) */
} wk_request_row;

/* Opens or creates the database; refuses a file that is not a wikv database or has another schema
 * version, and reports a corrupt file as such. */
int wk_results_open(const char *path, wk_results **out, wk_err *err);
void wk_results_close(wk_results *db);

/* Commits a 'running' run row, then opens the run's transaction. */
int wk_results_begin_run(wk_results *db, const char *kind, const char *command, int64_t *run_id, wk_err *err);
/* The two halves of begin_run, for runs written by several processes or resumed after a kill:
 * create commits the 'running' row (with `note`, e.g. a sweep's grid fingerprint); resume opens a
 * transaction on an existing run. */
int wk_results_create_run(wk_results *db, const char *kind, const char *command, const char *note, int64_t *run_id,
                          wk_err *err);
int wk_results_resume_run(wk_results *db, int64_t run_id, wk_err *err);
/* Commits the open transaction of a resumed run and leaves it closed (the run stays 'running'). */
int wk_results_commit(wk_results *db, wk_err *err);
/* Finds the newest 'running' run whose note equals `note`; WK_ENOTFOUND when there is none. */
int wk_results_find_running(wk_results *db, const char *note, int64_t *run_id, wk_err *err);
/* Marks a run complete when no transaction is open (after its writers have committed). */
int wk_results_complete_run(wk_results *db, int64_t run_id, wk_err *err);
int wk_results_add_request(wk_results *db, int64_t run_id, const wk_request_row *row, int64_t *request_id,
                           wk_err *err);
int wk_results_add_event(wk_results *db, int64_t request_id, int seq, double t_s, const char *type, int level,
                         double value, wk_err *err);
/* Records the bandwidth samples of a trace (kept once per trace name). */
int wk_results_add_trace_samples(wk_results *db, const char *trace, const double *t_s, const double *mbps, size_t n,
                                 wk_err *err);
/* Marks the run complete and commits everything it wrote. */
int wk_results_finish_run(wk_results *db, int64_t run_id, wk_err *err);
/* Rolls back the run's requests and marks it 'failed' with the reason. */
int wk_results_fail_run(wk_results *db, int64_t run_id, const char *reason, wk_err *err);

/* For sweeps that commit cell by cell: commit what was written so far and open a new transaction,
 * keeping the run 'running'. */
int wk_results_checkpoint(wk_results *db, wk_err *err);

/* Copies every run, request, event and trace sample of the database at part_path into db, with
 * fresh ids, in one transaction. Refuses a part of another schema version or not made by wikv. */
int wk_results_merge(wk_results *db, const char *part_path, wk_err *err);

/* Low-level access for readers (summary, plots, merge): the sqlite3 handle. */
struct sqlite3 *wk_results_handle(wk_results *db);

/* NaN, for "no value" fields of wk_request_row. */
double wk_results_null(void);
/* A request row with every field empty (NULLs and zeros), kind and status set. */
wk_request_row wk_results_empty_row(const char *kind);

#endif
