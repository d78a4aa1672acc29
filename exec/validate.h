/* Validation: does the simulator predict the real run? The same grid of requests runs in exec (an
 * in-process server on loopback paced by the trace, the CPU engine as the device) and in the simulator
 * with a device profile (calibrated for the machine running exec); per cell the TTFT of both and
 * their relative error (sim - exec) / exec, and over all cells the median and p95 of |error|. Both
 * kinds of rows go to one results database, linked by the cell key, so `wikv plot sim-vs-exec`
 * pairs them.
 *
 * Grid file: `key = value` lines, '#' comments, comma-separated lists; relative paths are relative to
 * the grid file's folder; an unknown key or bad value is an error naming FILE:LINE.
 *   traces   = A.txt, B.txt        bandwidth trace files (each paces its own in-process server)
 *   policies = prefill, full, kivi2, cachegen:chunk=256, wikv:batch=512
 *                                  (items with '=' and no ':' continue the previous policy's parameters)
 *   contexts = 512, 1024           context tokens (exec/tasks.h)
 *   task     = passkey             task of every request (passkey|multikey|topic|vartrack; default passkey)
 *   requests = 1                   requests per cell, seeds 1..N (default 1)
 *   output_tokens = 1              tokens generated per request (default 1)
 *   delay_ms = 10                  one-way delay each direction, in both modes (default 10)
 *   model    = DIR                 Hugging Face model folder (default: the fixture model)
 * Cells: traces x policies x contexts x seeds. Paced decoding runs without a confidence test in both
 * modes (every step passes), so the comparison is of time alone. The simulator measures codec sizes
 * on each cell's real KV (wk_request.kv_sample: the KV the server streams), not a synthetic sample. */
#ifndef WIKV_EXEC_VALIDATE_H
#define WIKV_EXEC_VALIDATE_H

#include <stdio.h>

#include "core/err.h"
#include "core/results.h"
#include "models/device.h"
#include "net/link.h"

#define WK_VALIDATE_MAX 64

typedef struct wk_validate_grid {
    char *traces[WK_VALIDATE_MAX];
    char *policies[WK_VALIDATE_MAX];
    int contexts[WK_VALIDATE_MAX];
    int n_traces, n_policies, n_contexts;
    char task[32];
    int requests, output_tokens;
    double delay_ms;
    char model[4096];
} wk_validate_grid;

int wk_validate_grid_load(const char *path, wk_validate_grid *g, wk_err *err);
void wk_validate_grid_free(wk_validate_grid *g);

/* The simulator's link for a grid: the paced transport's wire format (40-byte unit frames: 32-byte
 * header + 8 bytes of unit fields; the socket's bytes are paced, with no IP/TCP headers) and the
 * grid's delay both ways. */
wk_link_params wk_validate_link(const wk_validate_grid *g);

typedef struct wk_validate_cell {
    char key[512];          /* policy|trace|context|seed: the `cell` column of both rows */
    char policy[200], trace[200];
    int context, seed;
    int context_tokens;     /* the prompt's real length (both modes run this many tokens) */
    int exec_ok, sim_ok;
    double exec_ttft_s, sim_ttft_s, rel_err; /* rel_err = (sim - exec) / exec (NaN unless both ok) */
    /* where the time went, exec / sim: network wait, KV decode, compute (s) */
    double exec_parts[3], sim_parts[3];
    double exec_bytes, sim_bytes;           /* payload bytes arrived by the first token */
} wk_validate_cell;

typedef struct wk_validate_report {
    wk_validate_cell *cells;
    size_t n;
    int64_t exec_run, sim_run;
    size_t n_pairs;          /* cells with both TTFTs */
    double median_abs, p95_abs; /* of |rel_err| over the pairs */
} wk_validate_report;

/* Runs every cell in exec and in the simulator with `profile` (a bundled name or a path), writing the
 * exec rows to one run and the sim rows to another (device column: the profile's name). Progress
 * lines go to `log` (may be NULL).
 * With profile NULL it first calibrates one here and writes it to `profile_out`: the engine's prefill
 * and decode steps at the grid's prompt lengths fitted over models/devices/cpu-reference.profile
 * (exec/calibrate.h, with the attention term), then, from one unrecorded request per policy on the
 * first trace, each policy's codec decode rate (kv_decode_gbps.POLICY: the KV bytes its units decode
 * to, as the simulator counts them, over the decode time the engine took). */
int wk_validate_run(const wk_validate_grid *g, const char *profile, const char *profile_out, wk_results *db,
                    const char *command, FILE *log, wk_validate_report *rep, wk_err *err);
void wk_validate_report_free(wk_validate_report *rep);
/* The per-cell table, the per-policy medians of the error and of each term's exec / sim ratio (network
 * wait, KV decode, compute, payload bytes by the first token), and the summary lines. */
void wk_validate_print(const wk_validate_report *rep, FILE *out);

#endif
