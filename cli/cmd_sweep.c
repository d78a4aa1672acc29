/* `wikv sweep GRID --db OUT.db [--shard k/n] [--jobs N]`: run a grid over all cores, resumably. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "sim/sweep.h"

static const char *usage =
    "usage: wikv sweep GRID --db OUT.db [--shard k/n] [--jobs N] [--no-progress]\n"
    "Runs every cell of the grid file (format: sim/sweep.h and the README) over N worker processes\n"
    "(default: all cores), each cell committed on its own. Rerunning the same command after a kill resumes\n"
    "the sweep and runs only the missing cells. --shard k/n runs cells i with i mod n = k-1, for fanning a\n"
    "sweep out over machines; `wikv db merge OUT.db PART...` joins the parts.\n";

int wk_cmd_sweep(int argc, char **argv) {
    static const struct option opts[] = {{"db", required_argument, 0, 'o'}, {"shard", required_argument, 0, 's'},
                                         {"jobs", required_argument, 0, 'j'}, {"no-progress", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *db = NULL;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    wk_sweep_opts o = {1, 1, cores > 0 ? (int)cores : 1, 1};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:s:j:qh", opts, NULL)) != -1) {
        if (c == 'o') db = optarg;
        else if (c == 's') {
            if (sscanf(optarg, "%d/%d", &o.shard_k, &o.shard_n) != 2 || o.shard_n < 1 || o.shard_k < 1 ||
                o.shard_k > o.shard_n) {
                fprintf(stderr, "wikv: bad --shard \"%s\" (want k/n, 1 <= k <= n)\n", optarg);
                return 2;
            }
        } else if (c == 'j') {
            o.jobs = atoi(optarg);
            if (o.jobs < 1 || o.jobs > 1024) {
                fprintf(stderr, "wikv: bad --jobs \"%s\"\n", optarg);
                return 2;
            }
        } else if (c == 'q') o.progress = 0;
        else {
            fputs(usage, c == 'h' ? stdout : stderr);
            return c == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1 || !db) {
        fputs(usage, stderr);
        return 2;
    }
    wk_grid g;
    wk_err err = {0};
    if (wk_grid_load(argv[optind], &g, &err)) {
        fprintf(stderr, "wikv: %s\n", err.msg);
        return wk_err_exit_status(&err);
    }
    char command[2048];
    wk_cli_command_line(argc, argv, "wikv", command, sizeof command);
    int64_t run_id = 0;
    int rc = wk_sweep_run(&g, &o, db, command, &run_id, &err);
    wk_grid_free(&g);
    if (rc) {
        fprintf(stderr, "wikv: %s\n", err.msg);
        return wk_err_exit_status(&err);
    }
    printf("sweep complete: run %lld in %s\n", (long long)run_id, db);
    return 0;
}
