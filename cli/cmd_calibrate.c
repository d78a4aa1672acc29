/* `wikv calibrate`: measure the engine on this machine and write a fitted device profile. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "exec/calibrate.h"
#ifdef WIKV_HAVE_CUDA
#include "exec/cuda/engine_cuda.h"
#endif

static const char *usage =
    "usage: wikv calibrate --model synthetic:NAME|DIR --base DEVICE -o FILE.profile [options]\n"
    "Times prefill and decode steps of the engine on this machine and fits the base profile's efficiencies\n"
    "and per-step overhead to them (models/device.h); prints measured, fitted and analytic times per point.\n"
    "  --backend cpu|cuda     engine (default cuda when built with CUDA, else cpu)\n"
    "  --name NAME            name of the written profile (default BASE-measured)\n"
    "  --prefill LIST         prefill lengths (default 512,1024,2048,4096)\n"
    "  --decode LIST          decode contexts (default 1024,2048,4096,8192)\n"
    "  --steps N              decode steps timed per context (default 16)\n"
    "  --attention            fit prefill's attention FLOPs at their own efficiency (engines whose attention\n"
    "                         runs far below their matmuls, such as the CPU reference; base cpu-reference)\n";

static int open_engine(const char *backend, const char *model, int capacity, wk_engine **e, char *gpu, size_t cap,
                       wk_err *err) {
    wk_engine_opts opts = {.kv_capacity = capacity, .max_chunk = 4096};
    snprintf(gpu, cap, "CPU");
    int rc = wk_engine_open(backend, model, &opts, e, err);
#ifdef WIKV_HAVE_CUDA
    if (!rc && strcmp(backend, "cuda") == 0) wk_engine_cuda_device(*e, gpu, cap);
#endif
    return rc;
}

int wk_cmd_calibrate(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"base", required_argument, 0, 'b'}, {"output", required_argument, 0, 'o'},
        {"backend", required_argument, 0, 'k'}, {"name", required_argument, 0, 'n'}, {"prefill", required_argument, 0, 'p'},
        {"decode", required_argument, 0, 'd'}, {"steps", required_argument, 0, 's'}, {"help", no_argument, 0, 'h'},
        {"attention", no_argument, 0, 'a'},
        {0, 0, 0, 0}};
#ifdef WIKV_HAVE_CUDA
    const char *backend = "cuda";
#else
    const char *backend = "cpu";
#endif
    const char *model = NULL, *base_name = NULL, *out = NULL, *name = NULL;
    int prefill[8] = {512, 1024, 2048, 4096}, decode[8] = {1024, 2048, 4096, 8192}, np = 4, nd = 4, steps = 16, attention = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "m:b:o:k:n:p:d:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'b': base_name = optarg; break;
        case 'o': out = optarg; break;
        case 'k': backend = optarg; break;
        case 'n': name = optarg; break;
        case 'p': np = wk_parse_int_list(optarg, prefill, 8); break;
        case 'd': nd = wk_parse_int_list(optarg, decode, 8); break;
        case 's': steps = atoi(optarg); break;
        case 'a': attention = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!model || !base_name || !out || np < 2 || nd < 2 || steps < 1) {
        fputs(usage, stderr);
        return 2;
    }
    wk_model_spec spec;
    wk_device base;
    wk_err err = {0};
    if (wk_model_spec_find(model, &spec, &err) || wk_device_find(base_name, &base, &err)) {
        fprintf(stderr, "wikv: %s\n", err.msg);
        return wk_err_exit_status(&err);
    }
    int capacity = 0;
    for (int i = 0; i < np; i++) capacity = prefill[i] > capacity ? prefill[i] : capacity;
    for (int i = 0; i < nd; i++) capacity = decode[i] + steps > capacity ? decode[i] + steps : capacity;
    wk_engine *e = NULL;
    char gpu[256];
    if (open_engine(backend, model, capacity, &e, gpu, sizeof gpu, &err)) {
        fprintf(stderr, "wikv: %s\n", err.msg);
        return 1;
    }
    wk_cal_report rep;
    int rc = wk_calibrate(e, &spec, &base, prefill, np, decode, nd, steps, &rep, &err);
    wk_engine_free(e);
    if (!rc && attention) rc = wk_calibrate_fit_attention(&rep, &spec, &err);
    if (!rc) {
        snprintf(rep.fitted.name, sizeof rep.fitted.name, "%s", name ? name : base_name);
        if (!name) snprintf(rep.fitted.name, sizeof rep.fitted.name, "%.50s-measured", base_name);
        char date[32], source[600];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(date, sizeof date, "%Y-%m-%d", &tm);
        snprintf(source, sizeof source, "%s, %s, model %s, backend %s, wikv %s (commit %s)", gpu, date, model, backend,
                 WIKV_VERSION_STRING, WIKV_GIT_COMMIT);
        wk_calibrate_print(&rep, stdout);
        rc = wk_calibrate_write(&rep, &base, source, out, &err);
        if (!rc) printf("profile written to %s\n", out);
    }
    if (rc) fprintf(stderr, "wikv: %s\n", err.msg);
    return rc ? wk_err_exit_status(&err) : 0;
}
