/* `wikv validate GRID`: the grid in exec and in the simulator; the simulator's TTFT errors. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "exec/validate.h"

static const char *usage =
    "usage: wikv validate GRID --db OUT.db [--profile P | --profile-out FILE] [--quiet]\n"
    "Runs every cell of the grid for real (an in-process server on loopback paced by the trace, the CPU\n"
    "engine as the device) and in the simulator with device profile P (calibrated for this machine:\n"
    "`wikv calibrate --backend cpu`); prints per cell the TTFT of both and the relative error\n"
    "(sim - exec) / exec, then the median and p95 of |error|. Both kinds of rows go to OUT.db with the\n"
    "same cell key (`wikv plot sim-vs-exec --db OUT.db`). Grid format: exec/validate.h.\n"
    "  --profile P        device profile, a bundled name or a path (default: calibrate one here first)\n"
    "  --profile-out FILE where the calibrated profile goes (default OUT.db.profile)\n"
    "  --quiet       no per-request progress lines on stderr\n";

int wk_cmd_validate(int argc, char **argv) {
    static const struct option opts[] = {{"db", required_argument, 0, 'd'}, {"profile", required_argument, 0, 'p'},
                                         {"profile-out", required_argument, 0, 'P'},
                                         {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *db_path = NULL, *profile = NULL, *profile_out = NULL;
    int quiet = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': db_path = optarg; break;
        case 'p': profile = optarg; break;
        case 'P': profile_out = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind != argc - 1 || !db_path) {
        fputs(usage, stderr);
        return 2;
    }
    wk_err err = {0};
    wk_validate_grid g;
    if (wk_validate_grid_load(argv[optind], &g, &err)) {
        fprintf(stderr, "wikv validate: %s\n", err.msg);
        return wk_err_exit_status(&err);
    }
    wk_results *db = NULL;
    wk_validate_report rep;
    memset(&rep, 0, sizeof rep);
    char command[2048];
    wk_cli_command_line(argc, argv, "wikv", command, sizeof command);
    int rc = wk_results_open(db_path, &db, &err);
    char out_path[4096];
    snprintf(out_path, sizeof out_path, "%s.profile", db_path);
    if (!profile_out) profile_out = out_path;
    if (!rc) rc = wk_validate_run(&g, profile, profile ? NULL : profile_out, db, command, quiet ? NULL : stderr, &rep, &err);
    if (!rc) wk_validate_print(&rep, stdout);
    wk_results_close(db);
    wk_validate_report_free(&rep);
    wk_validate_grid_free(&g);
    if (rc) {
        fprintf(stderr, "wikv validate: %s\n", err.msg);
        return wk_err_exit_status(&err);
    }
    return 0;
}
