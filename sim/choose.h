/* Choosing a policy: the simulator searches policies and their parameters over a trace set, and the
 * real run uses what it chose (choice.json).
 *
 * Method. Each policy's free parameters (those its spec does not pin) are mapped to a unit cube:
 * a parameter whose range spans two orders of magnitude or more is log-spaced (a range starting at 0
 * keeps 0 as its first point and is log-spaced from max/1000 to max), others are linear; integers
 * are rounded. Search, per policy:
 *   1. the default configuration, then a grid: every free parameter starts with one point (its
 *      default); repeatedly the parameter with the fewest points gets more (1 -> 3: both ends and the
 *      middle, then one more at a time, evenly spaced; an integer range stops at its number of
 *      values) while the grid holds at most `grid_budget` configurations;
 *   2. a pattern search (coordinate descent) from the policy's best feasible grid point: for each
 *      free parameter in turn try one step up and one step down (in unit-cube coordinates, initial
 *      step = the grid spacing) and move when the objective improves; after a sweep with no move
 *      halve every step; stop when every step is below `resolution` (continuous) or below one value
 *      (integers), or after `max_refine` evaluations.
 * Parameters a policy refuses (its plan fails with WK_EINVAL, e.g. a window larger than the budget)
 * make that configuration infeasible, not the search fail.
 * A configuration is feasible when every request succeeds and its predicted F1 (the mean over
 * requests of f1_rel from the quality table at the coverage of the first token) is >= quality_min;
 * the objective is the p50 or p95 of TTFT over all requests of the search traces; the winner is the
 * feasible configuration with the lowest objective (ties: the higher F1, then the first evaluated),
 * so the winner is always on the Pareto front. Every configuration
 * is evaluated on the same requests as `wikv sim` (offsets spread over each trace, seed = request
 * index), so `wikv sim --policy-config` reproduces the predicted TTFT exactly.
 *
 * Hold-out: the traces, sorted by name, are split so that every k-th (k = round(1/fraction)) is held
 * out; the winner is re-evaluated on them to show how much the choice over-fits the search set. */
#ifndef WIKV_SIM_CHOOSE_H
#define WIKV_SIM_CHOOSE_H

#include <stddef.h>

#include "core/err.h"
#include "core/results.h"
#include "net/link.h"

#define WK_CHOOSE_SPEC_MAX 256
#define WK_CHOOSE_NQ 7 /* TTFT quantiles reported: p5 p10 p25 p50 p75 p90 p95 */

typedef struct wk_choose_config {
    const char *const *traces;   size_t n_traces;   /* search traces (PATH or PATH#COLUMN) */
    const char *const *holdout;  size_t n_holdout;  /* held-out traces (may be empty) */
    const char *const *policies; size_t n_policies; /* "name" or "name:key=v": named keys are pinned */
    const char *model, *device;
    int context_tokens, output_tokens, requests_per_trace;
    const char *task;
    wk_link_params link;
    const char *quality_path;    /* NULL: the bundled (assumed) table */
    double quality_min;          /* predicted F1 relative to full KV a configuration must reach */
    double objective_q;          /* 0.5 (p50) or 0.95 (p95) */
    int grid_budget;             /* grid configurations per policy (>= 1) */
    int max_refine;              /* refinement evaluations per policy */
    double resolution;           /* smallest step of continuous parameters, in unit-cube coordinates */
    int progress;                /* progress bar on stderr */
} wk_choose_config;

/* Defaults: p50, grid_budget 32, max_refine 32, resolution 1/256, 5 requests per trace, 1 output
 * token, bundled quality table, quality_min 0.95. */
wk_choose_config wk_choose_defaults(void);

typedef struct wk_choose_point {
    char spec[WK_CHOOSE_SPEC_MAX]; /* canonical: every parameter */
    char policy[32];
    double objective;            /* TTFT quantile objective_q over the requests, s */
    double ttft_q[WK_CHOOSE_NQ]; /* p5 p10 p25 p50 p75 p90 p95, s */
    double ttft_mean;
    double f1;                   /* mean predicted F1 relative to full KV */
    size_t requests, failed;
    int feasible;
    int on_front;                /* on the Pareto front of (objective down, F1 up) over every point */
    char invalid[160];           /* why the policy refused these parameters (every request failed), or "" */
} wk_choose_point;

typedef struct wk_choose_result {
    wk_choose_point *points;     /* [n] every configuration evaluated, in order */
    size_t n, cap;
    long best;                   /* index of the winner, -1 when nothing was feasible */
    int have_holdout;
    wk_choose_point holdout;     /* the winner on the held-out traces */
    char quality_source[16];     /* "measured" or "assumed" */
    int64_t run_id;              /* run holding every evaluated request (0 without a database) */
} wk_choose_result;

/* Runs the search. When db is not NULL, every evaluated request is written to one run of kind 'sim'
 * (params = the spec, f1 = the predicted F1; the run's note says the F1 is predicted and from which
 * table), so `wikv plot pareto` draws it. Returns WK_ENOTFOUND (with the best F1 reached) when no
 * configuration is feasible; *out is filled either way and must be freed. */
int wk_choose_run(const wk_choose_config *cfg, wk_results *db, const char *command, wk_choose_result *out,
                  wk_err *err);
void wk_choose_result_free(wk_choose_result *r);

/* Splits traces (sorted by name, copied pointers) into search and held-out sets: every k-th is held
 * out, k = round(1/fraction); fraction 0 holds nothing out. search/held must hold n entries each.
 * Errors when a set would be empty. */
int wk_choose_split(const char *const *traces, size_t n, double fraction, const char **search, size_t *n_search,
                    const char **held, size_t *n_held, wk_err *err);

/* Writes choice.json: the winner's spec, predicted TTFT distribution and F1, the quality table's
 * source, the request setup, the hold-out check and the Pareto front. */
int wk_choose_write_json(const char *path, const wk_choose_config *cfg, const wk_choose_result *r, wk_err *err);

/* What a choice file says about the configuration to run. */
typedef struct wk_choice {
    char spec[WK_CHOOSE_SPEC_MAX];
    char model[64], device[64];
    int context_tokens;          /* 0 when absent */
    char quality_path[1024];     /* empty: the bundled table */
} wk_choice;

/* Reads a choice file; the spec is checked against the policy registry. */
int wk_choice_read(const char *path, wk_choice *c, wk_err *err);
/* The policy spec of a choice file, for `wikv run --policy-config` and `wikv sim --policy-config`. */
int wk_choice_load(const char *path, char *spec, size_t cap, wk_err *err);

#endif
