/* Command-line parsing and execution of simulated grids. */
#include "cli/sim_options.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/choose.h"

enum { OPT_DELAY = 256, OPT_EVENTS, OPT_OUTPUT_TOKENS, OPT_TASK, OPT_NO_PROGRESS, OPT_OVERHEAD, OPT_QUALITY, OPT_TARGET,
       OPT_SHARE, OPT_STAGGER, OPT_POLICY_CONFIG };

static const struct option long_opts[] = {
    {"trace", required_argument, 0, 't'},   {"policy", required_argument, 0, 'p'},
    {"model", required_argument, 0, 'm'},   {"device", required_argument, 0, 'd'},
    {"context", required_argument, 0, 'c'}, {"requests", required_argument, 0, 'n'},
    {"db", required_argument, 0, 'o'},      {"delay-ms", required_argument, 0, OPT_DELAY},
    {"events", required_argument, 0, OPT_EVENTS}, {"output-tokens", required_argument, 0, OPT_OUTPUT_TOKENS},
    {"task", required_argument, 0, OPT_TASK}, {"no-progress", no_argument, 0, OPT_NO_PROGRESS},
    {"frame-overhead", required_argument, 0, OPT_OVERHEAD}, {"quality", required_argument, 0, OPT_QUALITY},
    {"quality-target", required_argument, 0, OPT_TARGET},
    {"devices-per-link", required_argument, 0, OPT_SHARE}, {"stagger-ms", required_argument, 0, OPT_STAGGER},
    {"policy-config", required_argument, 0, OPT_POLICY_CONFIG},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0}};

static int positive_int(const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v <= 0 || v > 100000000) return -1;
    *out = (int)v;
    return 0;
}

static int bad(const char *usage, const char *what, const char *val) {
    fprintf(stderr, "wikv: %s \"%s\"\n%s", what, val, usage);
    return 2;
}

/* A list option given on the command line replaces the caller's default list. */
static void replace_default(wk_strlist *l, int *replaced) {
    if (!*replaced) wk_strlist_free(l);
    *replaced = 1;
}

/* --policy-config FILE: the chosen policy replaces the list; model, device, context and quality table
 * come from the file unless given on the command line. */
static int apply_choice(wk_sim_options *o, const char *path, int replaced_models, int replaced_devices,
                        int replaced_contexts, int replaced_quality, const char *usage) {
    wk_err err = {0};
    if (wk_choice_read(path, &o->choice, &err)) {
        fprintf(stderr, "wikv: %s\n%s", err.msg, usage);
        return 2;
    }
    wk_strlist_free(&o->policies);
    wk_strlist_add(&o->policies, o->choice.spec);
    if (!replaced_models && o->choice.model[0]) {
        wk_strlist_free(&o->models);
        wk_strlist_add(&o->models, o->choice.model);
    }
    if (!replaced_devices && o->choice.device[0]) {
        wk_strlist_free(&o->devices);
        wk_strlist_add(&o->devices, o->choice.device);
    }
    if (!replaced_contexts && o->choice.context_tokens > 0) {
        o->contexts[0] = o->choice.context_tokens;
        o->n_contexts = 1;
    }
    if (!replaced_quality && o->choice.quality_path[0]) o->cfg.quality_path = o->choice.quality_path;
    return 0;
}

int wk_sim_options_parse(wk_sim_options *o, int argc, char **argv, const char *usage) {
    int replaced_traces = 0, replaced_policies = 0, replaced_models = 0, replaced_devices = 0;
    int replaced_contexts = 0, replaced_quality = 0;
    const char *choice_path = NULL;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "t:p:m:d:c:n:o:h", long_opts, NULL)) != -1) {
        switch (c) {
        case 't':
            replace_default(&o->traces, &replaced_traces);
            if (wk_strlist_add_traces(&o->traces, optarg)) return bad(usage, "no usable trace at", optarg);
            break;
        case 'p':
            replace_default(&o->policies, &replaced_policies);
            wk_strlist_add_policies(&o->policies, optarg);
            break;
        case 'm':
            replace_default(&o->models, &replaced_models);
            wk_strlist_add_csv(&o->models, optarg);
            break;
        case 'd':
            replace_default(&o->devices, &replaced_devices);
            wk_strlist_add_csv(&o->devices, optarg);
            break;
        case 'c': {
            int n = wk_parse_int_list(optarg, o->contexts, WK_MAX_CONTEXTS);
            if (n < 0) return bad(usage, "bad --context list", optarg);
            o->n_contexts = (size_t)n;
            replaced_contexts = 1;
            break;
        }
        case 'n':
            if (positive_int(optarg, &o->cfg.requests_per_trace)) return bad(usage, "bad --requests", optarg);
            break;
        case 'o': o->db_path = optarg; break;
        case OPT_DELAY: {
            char *end;
            double ms = strtod(optarg, &end);
            if (end == optarg || *end || ms < 0) return bad(usage, "bad --delay-ms", optarg);
            o->cfg.link.one_way_delay_s = o->cfg.link.request_delay_s = ms / 1000;
            break;
        }
        case OPT_OVERHEAD: {
            int v;
            if (strcmp(optarg, "0") == 0) v = 0;
            else if (positive_int(optarg, &v)) return bad(usage, "bad --frame-overhead", optarg);
            o->cfg.link.frame_overhead = v;
            break;
        }
        case OPT_EVENTS:
            if (strcmp(optarg, "none") == 0) o->cfg.events = WK_EVENTS_NONE;
            else if (strcmp(optarg, "first") == 0) o->cfg.events = WK_EVENTS_FIRST;
            else if (strcmp(optarg, "all") == 0) o->cfg.events = WK_EVENTS_ALL;
            else return bad(usage, "bad --events (none|first|all)", optarg);
            break;
        case OPT_OUTPUT_TOKENS:
            if (positive_int(optarg, &o->cfg.output_tokens)) return bad(usage, "bad --output-tokens", optarg);
            break;
        case OPT_TASK: o->cfg.task = optarg; break;
        case OPT_QUALITY:
            o->cfg.quality_path = optarg;
            replaced_quality = 1;
            break;
        case OPT_POLICY_CONFIG: choice_path = optarg; break;
        case OPT_TARGET: {
            char *end;
            double v = strtod(optarg, &end);
            if (end == optarg || *end || v < 0 || v > 1) return bad(usage, "bad --quality-target (0..1)", optarg);
            o->cfg.quality_target = v;
            break;
        }
        case OPT_SHARE: {
            int n = wk_parse_int_list(optarg, o->devices_per_link, WK_MAX_CONTEXTS);
            for (int i = 0; i < n; i++)
                if (o->devices_per_link[i] > 1024) n = -1;
            if (n < 0) return bad(usage, "bad --devices-per-link list (1 to 1024 each)", optarg);
            o->n_devices_per_link = (size_t)n;
            break;
        }
        case OPT_STAGGER: {
            char *end;
            double ms = strtod(optarg, &end);
            if (end == optarg || *end || !(ms >= 0) || ms > 1e9) return bad(usage, "bad --stagger-ms", optarg);
            o->cfg.stagger_s = ms / 1000;
            break;
        }
        case OPT_NO_PROGRESS: o->cfg.progress = 0; break;
        case 'h': fputs(usage, stdout); return 1;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc) return bad(usage, "unexpected argument", argv[optind]);
    if (choice_path && replaced_policies) return bad(usage, "--policy and --policy-config together", choice_path);
    if (choice_path)
        return apply_choice(o, choice_path, replaced_models, replaced_devices, replaced_contexts, replaced_quality,
                            usage);
    return 0;
}

void wk_sim_options_defaults(wk_sim_options *o, const char *db_path, int requests_per_trace) {
    memset(o, 0, sizeof *o);
    o->db_path = db_path;
    o->cfg.requests_per_trace = requests_per_trace;
    o->cfg.output_tokens = 1;
    o->cfg.task = "none";
    o->cfg.link = wk_link_defaults();
    o->cfg.events = WK_EVENTS_FIRST;
    o->cfg.progress = 1;
    o->cfg.quality_target = 0.95;
    o->contexts[0] = 8192;
    o->n_contexts = 1;
    wk_strlist_add(&o->models, "llama-3.1-8b");
}

void wk_sim_options_finish(wk_sim_options *o) {
    o->cfg.traces = (const char *const *)o->traces.items;
    o->cfg.n_traces = o->traces.n;
    o->cfg.policies = (const char *const *)o->policies.items;
    o->cfg.n_policies = o->policies.n;
    o->cfg.models = (const char *const *)o->models.items;
    o->cfg.n_models = o->models.n;
    o->cfg.devices = (const char *const *)o->devices.items;
    o->cfg.n_devices = o->devices.n;
    o->cfg.contexts = o->contexts;
    o->cfg.n_contexts = o->n_contexts;
    o->cfg.devices_per_link = o->devices_per_link;
    o->cfg.n_devices_per_link = o->n_devices_per_link;
}

void wk_sim_options_free(wk_sim_options *o) {
    wk_strlist_free(&o->traces);
    wk_strlist_free(&o->policies);
    wk_strlist_free(&o->models);
    wk_strlist_free(&o->devices);
}

int wk_sim_options_run(wk_sim_options *o, const char *command, int64_t *run_id_out) {
    wk_sim_options_finish(o);
    if (o->traces.n == 0) {
        fprintf(stderr, "wikv: no traces given (--trace FILE or FOLDER)\n");
        return 2;
    }
    wk_results *db;
    wk_err err = {0};
    if (wk_results_open(o->db_path, &db, &err)) {
        fprintf(stderr, "wikv: %s\n", err.msg);
        return 1;
    }
    int64_t run_id = 0;
    int rc = wk_runner_run(&o->cfg, db, command, &run_id, &err);
    if (!rc) rc = wk_runner_print_summary(db, run_id, stdout, &err);
    if (!rc) rc = wk_runner_print_sharing(db, run_id, stdout, &err);
    if (!rc) printf("\nrun %lld written to %s\n", (long long)run_id, o->db_path);
    if (run_id_out) *run_id_out = run_id;
    if (rc) fprintf(stderr, "wikv: %s\n", err.msg);
    wk_results_close(db);
    return rc ? wk_err_exit_status(&err) : 0;
}
