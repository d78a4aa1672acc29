/* `wikv db summary FILE`: TTFT median and p95 per policy and trace over the complete runs. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "sim/runner.h"

static int db_summary(int argc, char **argv) {
    if (argc != 2 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc == 2 ? stdout : stderr,
                "usage: wikv db summary FILE\n"
                "TTFT median and p95, bytes sent and link utilisation per policy, trace, model, device and\n"
                "context, over the complete runs (a run still marked running or failed is left out).\n");
        return argc == 2 ? 0 : 2;
    }
    if (access(argv[1], R_OK) != 0) {
        fprintf(stderr, "wikv: %s: no such database\n", argv[1]);
        return 2;
    }
    wk_results *db;
    wk_err err = {0};
    int rc = wk_results_open(argv[1], &db, &err);
    if (!rc) {
        rc = wk_runner_print_summary(db, 0, stdout, &err);
        wk_results_close(db);
    }
    if (rc) fprintf(stderr, "wikv: %s\n", err.msg);
    return rc ? wk_err_exit_status(&err) : 0;
}

static int db_merge(int argc, char **argv) {
    if (argc < 3 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc >= 2 ? stdout : stderr,
                "usage: wikv db merge OUT.db PART.db...\n"
                "Copies every run of each part into OUT.db (created if absent), each part in one transaction;\n"
                "refuses parts of another schema version.\n");
        return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    wk_results *db;
    wk_err err = {0};
    if (wk_results_open(argv[1], &db, &err)) {
        fprintf(stderr, "wikv: %s\n", err.msg);
        return wk_err_exit_status(&err);
    }
    int rc = 0;
    for (int i = 2; i < argc && !rc; i++) rc = wk_results_merge(db, argv[i], &err);
    wk_results_close(db);
    if (rc) {
        fprintf(stderr, "wikv: %s\n", err.msg);
        return 2;
    }
    printf("merged %d part(s) into %s\n", argc - 2, argv[1]);
    return 0;
}

int wk_cmd_db(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "summary") == 0) return db_summary(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "merge") == 0) return db_merge(argc - 1, argv + 1);
    int help = argc >= 2 && strcmp(argv[1], "--help") == 0;
    fprintf(help ? stdout : stderr, "usage: wikv db summary FILE\n       wikv db merge OUT.db PART.db...\n");
    return help ? 0 : 2;
}
