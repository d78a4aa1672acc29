/* Sweeps: a grid file run over all cores, resumable after a kill, shardable over machines.
 *
 * Grid file (text, `key = value` lines, `#` comments; lists are comma-separated):
 *   traces   = traces/, ../shared/traces-public/mahimahi/Verizon-LTE-short.down   (files, PATH#COLUMN, folders)
 *   policies = prefill, full, kivi2, kivi4:group=64     (key=value items continue a policy's parameters)
 *   models   = llama-3.1-8b, qwen3-4b
 *   devices  = jetson-agx-orin, rtx5080-laptop
 *   contexts = 4096, 8192, 32768
 *   requests = 20          requests per trace, at start offsets spread over the trace (default 10)
 *   output_tokens = 1      (default 1)
 *   delay_ms = 10          one-way delay each direction (default 10)
 *   quality  = FILE        quality table (default: the bundled assumed one)
 *   quality_target = 0.95  F1 relative to full KV the oracle must reach (0: no oracle)
 *   devices_per_link = 1, 2, 4, 8   run each request by N devices sharing one link, for each N
 *                          (one row per device; default: one device on its own link)
 *   stagger_ms = 0         device k of a shared link sends its request k x stagger_ms later
 * Relative paths are relative to the grid file's folder. Unknown keys are errors (FILE:LINE).
 *
 * A sweep is one run in the database, found again by a fingerprint of the grid and the shard: a
 * rerun after a kill resumes that run and computes only the cells it does not have, so no cell is
 * lost or written twice. Cells run in `jobs` worker processes, each cell in its own transaction. */
#ifndef WIKV_SIM_SWEEP_H
#define WIKV_SIM_SWEEP_H

#include "sim/runner.h"

typedef struct wk_grid {
    char **traces, **policies, **models, **devices;
    size_t n_traces, n_policies, n_models, n_devices;
    int contexts[64];
    size_t n_contexts;
    int requests, output_tokens;
    double delay_ms;
    double quality_target;  /* oracle quality target (default 0.95) */
    int devices_per_link[64];
    size_t n_devices_per_link;  /* 0: one device per link */
    double stagger_ms;
    char *quality;
    char fingerprint[32];   /* FNV-1a of the normalised grid */
} wk_grid;

int wk_grid_load(const char *path, wk_grid *g, wk_err *err);
/* Comma list of positive integers (spaces allowed) into out[0..max); returns the count or -1. */
int wk_parse_int_list_grid(const char *csv, int *out, int max);
void wk_grid_free(wk_grid *g);
/* A runner configuration pointing into g (g must outlive it). */
void wk_grid_config(const wk_grid *g, wk_runner_config *cfg);

typedef struct wk_sweep_opts {
    int shard_k, shard_n;  /* 1-based k of n; 1/1 = everything */
    int jobs;              /* worker processes (>= 1) */
    int progress;
} wk_sweep_opts;

/* Runs (or resumes) the sweep into db_path; *run_id gets the run. */
int wk_sweep_run(const wk_grid *g, const wk_sweep_opts *o, const char *db_path, const char *command, int64_t *run_id,
                 wk_err *err);

#endif
