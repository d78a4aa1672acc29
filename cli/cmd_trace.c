/* `wikv trace stats|convert`: look at and convert bandwidth traces. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "net/trace.h"

static int trace_stats(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: wikv trace stats FILE[#COLUMN]...\n"
                "Prints duration, mean, p5/p50/p95 Mbit/s (1-second bins) and coefficient of variation.\n");
        return argc < 2 ? 2 : 0;
    }
    printf("%-40s %10s %10s %9s %9s %9s %6s\n", "trace", "duration_s", "mean_mbps", "p5", "p50", "p95", "cov");
    int status = 0;
    for (int i = 1; i < argc; i++) {
        wk_trace tr;
        wk_trace_stats st;
        wk_err err = {0};
        if (wk_trace_load(argv[i], WK_FMT_AUTO, &tr, &err) || wk_trace_compute_stats(&tr, &st, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            status = wk_err_exit_status(&err);
            continue;
        }
        printf("%-40s %10.1f %10.2f %9.2f %9.2f %9.2f %6.2f\n", tr.name, st.duration_s, st.mean_mbps, st.p5_mbps,
               st.p50_mbps, st.p95_mbps, st.cov);
        wk_trace_free(&tr);
    }
    return status;
}

static int trace_convert(int argc, char **argv) {
    const char *to = "csv", *out = NULL;
    static const struct option opts[] = {{"to", required_argument, 0, 't'}, {"output", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "t:o:h", opts, NULL)) != -1) {
        if (c == 't') to = optarg;
        else if (c == 'o') out = optarg;
        else {
            fprintf(c == 'h' ? stdout : stderr, "usage: wikv trace convert FILE --to mahimahi|pensieve|csv -o OUT\n");
            return c == 'h' ? 0 : 2;
        }
    }
    wk_trace_format fmt = wk_trace_format_from_name(to);
    if (optind >= argc || !out || (int)fmt < 0 || fmt == WK_FMT_AUTO) {
        fprintf(stderr, "usage: wikv trace convert FILE --to mahimahi|pensieve|csv -o OUT\n");
        return 2;
    }
    wk_trace tr;
    wk_err err = {0};
    if (wk_trace_load(argv[optind], WK_FMT_AUTO, &tr, &err) || wk_trace_save(&tr, out, fmt, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return wk_err_exit_status(&err);
    }
    wk_trace_free(&tr);
    return 0;
}

int wk_cmd_trace(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "stats") == 0) return trace_stats(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "convert") == 0) return trace_convert(argc - 1, argv + 1);
    fprintf(argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr,
            "usage: wikv trace stats FILE...\n"
            "       wikv trace convert FILE --to mahimahi|pensieve|csv -o OUT\n");
    return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}
