/* Options shared by `wikv sim` and `wikv study`: they build a wk_runner_config from the command line. */
#ifndef WIKV_CLI_SIM_OPTIONS_H
#define WIKV_CLI_SIM_OPTIONS_H

#include "cli/cli_util.h"
#include "sim/policy.h"
#include "sim/choose.h"
#include "sim/runner.h"

#define WK_MAX_CONTEXTS 64

typedef struct wk_sim_options {
    wk_strlist traces, policies, models, devices;
    int contexts[WK_MAX_CONTEXTS];
    size_t n_contexts;
    int devices_per_link[WK_MAX_CONTEXTS];
    size_t n_devices_per_link;
    const char *db_path;
    wk_runner_config cfg;
    wk_choice choice;            /* --policy-config: the file's contents (cfg may point into it) */
} wk_sim_options;

/* The defaults `wikv sim` and `wikv study` share: Llama-3.1-8B at 8192 tokens, one output token, default
 * link, first-request timelines, progress bar, oracle at 0.95 of full-KV F1. Lists are left empty. */
void wk_sim_options_defaults(wk_sim_options *opts, const char *db_path, int requests_per_trace);
/* Parses argv into opts (defaults pre-filled by the caller are kept unless overridden). Returns 0,
 * 1 after printing --help, or 2 on bad options (message printed). */
int wk_sim_options_parse(wk_sim_options *opts, int argc, char **argv, const char *usage);
/* Fills opts->cfg's arrays from the lists. */
void wk_sim_options_finish(wk_sim_options *opts);
void wk_sim_options_free(wk_sim_options *opts);
/* Runs the grid into opts->db_path and prints the summary table; returns an exit status and sets
 * *run_id (may be NULL). */
int wk_sim_options_run(wk_sim_options *opts, const char *command, int64_t *run_id);

#endif
