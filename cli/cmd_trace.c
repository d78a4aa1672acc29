/* `wikv trace stats|convert|gen|compare|ns3`: look at, convert, generate and compare bandwidth traces. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "net/trace.h"
#include "net/trace_gen.h"
#include "net/ns3/ns3_shim.h"

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

#define GEN_USAGE                                                                                              \
    "usage: wikv trace gen --model MODEL --seconds S --seed N --format mahimahi|pensieve|csv -o FILE\n"         \
    "                      [--scale X]\n"

static void gen_usage(FILE *out) {
    fprintf(out, GEN_USAGE "Generates a synthetic capacity trace (Markov-modulated, deterministic by seed).\n"
                 "--scale multiplies every rate. Models (expected mean of a 60-120 s trace):\n");
    for (size_t i = 0; i < wk_gen_model_count(); i++) {
        const wk_gen_model *m = wk_gen_model_at(i);
        fprintf(out, "  %-16s %g-%g Mbit/s, sampled every %g s\n", m->name, m->expect_lo_mbps, m->expect_hi_mbps,
                m->dt_s);
    }
}

/* Strict number option: the whole argument must parse. */
static int number_arg(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0') return -1;
    *out = v;
    return 0;
}

/* Seed: a decimal integer that fits 64 bits. */
static int seed_arg(const char *s, uint64_t *out) {
    if (!*s || *s == '-' || *s == '+') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno == ERANGE) return -1;
    *out = (uint64_t)v;
    return 0;
}

static int trace_gen(int argc, char **argv) {
    const char *model = NULL, *format = "pensieve", *out = NULL;
    double seconds = 60, scale = 1;
    uint64_t seed = 1;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},  {"seconds", required_argument, 0, 's'},
                                         {"seed", required_argument, 0, 'S'},   {"format", required_argument, 0, 'f'},
                                         {"output", required_argument, 0, 'o'}, {"scale", required_argument, 0, 'x'},
                                         {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    optind = 1;
    int c, bad = 0;
    while ((c = getopt_long(argc, argv, "m:s:f:o:h", opts, NULL)) != -1) {
        if (c == 'm') model = optarg;
        else if (c == 's') bad |= number_arg(optarg, &seconds);
        else if (c == 'S') bad |= seed_arg(optarg, &seed);
        else if (c == 'f') format = optarg;
        else if (c == 'o') out = optarg;
        else if (c == 'x') bad |= number_arg(optarg, &scale);
        else if (c == 'h') { gen_usage(stdout); return 0; }
        else bad = 1;
    }
    const wk_gen_model *m = wk_gen_model_find(model);
    wk_trace_format fmt = wk_trace_format_from_name(format);
    if (bad || optind != argc || !out || !m || (int)fmt < 0 || fmt == WK_FMT_AUTO) {
        if (model && !m) fprintf(stderr, "wikv trace gen: unknown model '%s'\n", model);
        gen_usage(stderr);
        return 2;
    }
    wk_gen_options go = {.seconds = seconds, .seed = seed, .scale = scale};
    wk_trace tr;
    wk_err err = {0};
    if (wk_gen_trace(m, &go, &tr, NULL, &err) || wk_trace_save(&tr, out, fmt, &err)) {
        fprintf(stderr, "wikv trace gen: %s\n", err.msg);
        return wk_err_exit_status(&err);
    }
    wk_trace_free(&tr);
    return 0;
}

static int trace_compare(int argc, char **argv) {
    if (argc != 3 || strcmp(argv[1], "--help") == 0) {
        int help = argc >= 2 && strcmp(argv[1], "--help") == 0;
        fprintf(help ? stdout : stderr, "usage: wikv trace compare A[#COLUMN] B[#COLUMN]\n"
                                        "Prints mean, coefficient of variation, lag-1 s autocorrelation, outage\n"
                                        "fraction (1 s bins under 0.1 Mbit/s) and percentiles side by side.\n");
        return help ? 0 : 2;
    }
    wk_trace tr[2];
    wk_trace_stats st[2];
    for (int i = 0; i < 2; i++) {
        wk_err err = {0};
        if (wk_trace_load(argv[1 + i], WK_FMT_AUTO, &tr[i], &err) || wk_trace_compute_stats(&tr[i], &st[i], &err)) {
            fprintf(stderr, "wikv trace compare: %s\n", err.msg);
            if (i == 1) wk_trace_free(&tr[0]);
            return wk_err_exit_status(&err);
        }
    }
    printf("%-14s %28.28s %28.28s\n", "metric", tr[0].name, tr[1].name);
    printf("%-14s %28.1f %28.1f\n", "duration_s", st[0].duration_s, st[1].duration_s);
    printf("%-14s %28.2f %28.2f\n", "mean_mbps", st[0].mean_mbps, st[1].mean_mbps);
    printf("%-14s %28.3f %28.3f\n", "cov", st[0].cov, st[1].cov);
    printf("%-14s %28.3f %28.3f\n", "autocorr_1s", st[0].autocorr_1s, st[1].autocorr_1s);
    printf("%-14s %28.3f %28.3f\n", "outage_frac", st[0].outage_frac, st[1].outage_frac);
    printf("%-14s %28.2f %28.2f\n", "p5_mbps", st[0].p5_mbps, st[1].p5_mbps);
    printf("%-14s %28.2f %28.2f\n", "p50_mbps", st[0].p50_mbps, st[1].p50_mbps);
    printf("%-14s %28.2f %28.2f\n", "p95_mbps", st[0].p95_mbps, st[1].p95_mbps);
    wk_trace_free(&tr[0]);
    wk_trace_free(&tr[1]);
    return 0;
}

#define NS3_USAGE                                                                                              \
    "usage: wikv trace ns3 --scenario wifi-walk|wifi-walk-away|lte-drive --seconds S --seed N -o FILE\n"        \
    "                      [--format pensieve|csv|mahimahi]\n"

static int trace_ns3(int argc, char **argv) {
    const char *scenario = NULL, *out = NULL, *format = "pensieve";
    double seconds = 60;
    uint64_t seed = 1;
    static const struct option opts[] = {{"scenario", required_argument, 0, 'c'},
                                         {"seconds", required_argument, 0, 's'},
                                         {"seed", required_argument, 0, 'S'},
                                         {"format", required_argument, 0, 'f'},
                                         {"output", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    int c, bad = 0;
    while ((c = getopt_long(argc, argv, "c:s:f:o:h", opts, NULL)) != -1) {
        if (c == 'c') scenario = optarg;
        else if (c == 's') bad |= number_arg(optarg, &seconds);
        else if (c == 'S') bad |= seed_arg(optarg, &seed) || seed > UINT32_MAX;
        else if (c == 'f') format = optarg;
        else if (c == 'o') out = optarg;
        else if (c == 'h') {
            printf(NS3_USAGE "Simulates the scenario in ns-3 and samples delivered throughput every 100 ms.\n"
                             "wifi-walk: 802.11ax station walking away from and back to its AP at 1.5 m/s,\n"
                             "Thompson-sampling rate control, saturating UDP downlink. lte-drive: a UE driving\n"
                             "past its eNB at 15 m/s, from 420 m before it on, saturating UDP downlink.\n"
                             "wifi-walk-away: as wifi-walk, walking away the whole time.\n");
            return 0;
        } else bad = 1;
    }
    wk_trace_format fmt = wk_trace_format_from_name(format);
    if (bad || optind != argc || !out || !scenario || (int)fmt < 0 || fmt == WK_FMT_AUTO) {
        fprintf(stderr, NS3_USAGE);
        return 2;
    }
    if (!wk_ns3_available()) {
        fprintf(stderr, "wikv trace ns3: this wikv was built without ns-3. Install it and rebuild:\n"
                        "  apt-get install -y libns3-dev libgsl-dev pkg-config\n"
                        "  cmake -S . -B build -DWIKV_NS3=ON && cmake --build build\n");
        return 1;
    }
    wk_trace tr;
    wk_err err = {0};
    if (wk_ns3_run(scenario, seconds, (uint32_t)seed, &tr, &err) || wk_trace_save(&tr, out, fmt, &err)) {
        fprintf(stderr, "wikv trace ns3: %s\n", err.msg);
        return wk_err_exit_status(&err);
    }
    wk_trace_free(&tr);
    return 0;
}

int wk_cmd_trace(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "stats") == 0) return trace_stats(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "convert") == 0) return trace_convert(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "gen") == 0) return trace_gen(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "compare") == 0) return trace_compare(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "ns3") == 0) return trace_ns3(argc - 1, argv + 1);
    fprintf(argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr,
            "usage: wikv trace stats FILE...\n"
            "       wikv trace convert FILE --to mahimahi|pensieve|csv -o OUT\n"
            "       wikv trace gen --model MODEL --seconds S --seed N --format F -o FILE\n"
            "       wikv trace compare A B\n"
            "       wikv trace ns3 --scenario wifi-walk|wifi-walk-away|lte-drive --seconds S --seed N -o FILE\n");
    return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}
