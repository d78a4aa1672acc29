/* Runs a grid of simulated requests (traces x policies x models x devices x contexts, several
 * requests per trace at spread start offsets) and writes every request to the results store in
 * one run. Shared by `wikv sim` and `wikv study`. */
#ifndef WIKV_SIM_RUNNER_H
#define WIKV_SIM_RUNNER_H

#include <stdio.h>

#include "core/results.h"
#include "sim/sim.h"

typedef enum { WK_EVENTS_NONE, WK_EVENTS_FIRST, WK_EVENTS_ALL } wk_events_mode;

typedef struct wk_runner_config {
    const char *const *traces;   size_t n_traces;   /* trace files (PATH or PATH#COLUMN) */
    const char *const *policies; size_t n_policies; /* policy specs */
    const char *const *models;   size_t n_models;
    const char *const *devices;  size_t n_devices;
    const int *contexts;         size_t n_contexts;
    int requests_per_trace;      /* start offsets spread evenly over each trace's period */
    int output_tokens;
    const char *task;
    wk_link_params link;
    wk_events_mode events;
    int progress;                /* progress bar on stderr */
    const char *quality_path;    /* quality table; NULL: the bundled assumed one */
    double quality_target;       /* F1 relative to full KV that the oracle must reach (0: no oracle) */
    /* Shared links: each request is run by N devices on one trace (sim/sim.h, wk_sim_shared_request)
     * for every N listed; one row per device, its device column "NAME xN". None listed: one device
     * on its own link (the plain simulation). Shared cells store no timelines and no oracle. */
    const int *devices_per_link; size_t n_devices_per_link;
    double stagger_s;            /* device k of a shared link sends its request k x stagger_s later */
} wk_runner_config;

/* Runs the grid into `db` as one run of kind 'sim'; *run_id gets its id. On failure the run is
 * marked failed and nothing of it is reported. */
int wk_runner_run(const wk_runner_config *cfg, wk_results *db, const char *command, int64_t *run_id, wk_err *err);

/* A slice of a grid, for sweeps: cells are numbered in a fixed order (models, devices, contexts,
 * policies, traces, requests); cell i belongs to shard i % shard_n (0-based shard_k) and, inside
 * it, to job (i / shard_n) % jobs. Cells whose key is in `skip` (sorted, strcmp) are not rerun.
 * Each cell is written in its own transaction, so several processes can write one run and a kill
 * loses at most the cell in flight. */
typedef struct wk_runner_slice {
    int shard_k, shard_n;
    int job, jobs;
    char **skip;
    size_t n_skip;
} wk_runner_slice;

size_t wk_runner_cell_count(const wk_runner_config *cfg);
/* Rows (requests) the cells of shard k (0-based) of n write: one per cell, N per shared cell. */
size_t wk_runner_shard_rows(const wk_runner_config *cfg, int shard_k, int shard_n);
/* Writes the trace samples of every trace of the grid (own transaction). */
int wk_runner_store_traces(const wk_runner_config *cfg, wk_results *db, wk_err *err);
/* Runs the slice's cells into an existing run (created by wk_results_create_run). */
int wk_runner_run_slice(const wk_runner_config *cfg, const wk_runner_slice *slice, wk_results *db, int64_t run_id,
                        wk_err *err);

/* Prints TTFT median and p95, and the median ratio to the oracle, mean bytes sent and link utilisation per policy and trace, for one
 * run (run_id > 0) or all complete runs (run_id <= 0). */
int wk_runner_print_summary(wk_results *db, int64_t run_id, FILE *out, wk_err *err);
/* For shared links: TTFT median and p95 per policy, trace, device and N devices per link, and the
 * median's growth over the smallest N. Prints nothing when the run has no shared cells. */
int wk_runner_print_sharing(wk_results *db, int64_t run_id, FILE *out, wk_err *err);

#endif
