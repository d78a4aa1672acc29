/* `wikv plot`: a small results database is built through core/results.h (a sim run, an exec run, a
 * run left 'running' and a failed run), every kind is drawn to PNG, PDF and SVG, and the numbers in
 * the data files are checked against values computed here; missing databases and empty selections
 * must give the clear error and exit status 2. Rendering is skipped when gnuplot is not on PATH. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "plots/plot.h"
#include "tests/check_util.h"

/* The fixture lives in one folder for the whole suite (built in the parent, before Check forks);
 * Check's fixtures take no argument, hence the file-level variable. */
typedef struct {
    char dir[256], db[300];
    int64_t event_request; /* the request whose timeline is recorded */
    size_t expected_pairs; /* exec requests with a sim partner */
} fixture;

static fixture fx;

static const char *const sim_policies[] = {"wikv", "prefill", "cachegen", "kivi4", "h2o", "myvariant"};
static const char *const traces[] = {"lte-walk", "wifi-office", "5g-drive"};
static const double trace_mbps[] = {12, 45, 90};
#define N_SIM_POLICIES 6
#define N_TRACES 3
#define N_SEEDS 8

static double base_ttft(int p) { return 0.4 + 0.35 * p; }

static void add_row(wk_results *db, int64_t run, const char *kind, const char *policy, const char *params, int t,
                    int seed, double ttft, double f1, const char *cell, int64_t *id) {
    wk_err err;
    wk_request_row row = wk_results_empty_row(kind);
    row.policy = policy;
    row.params = params;
    row.trace = traces[t];
    row.trace_mean_mbps = trace_mbps[t];
    row.model = "qwen3-8b";
    row.device = "jetson-agx-orin";
    row.task = "qa";
    row.context_tokens = 8192;
    row.seed = seed;
    row.ttft_s = ttft;
    row.f1 = f1;
    row.net_wait_s = ttft * 0.6;
    row.kv_decode_s = ttft * 0.1;
    row.compute_s = ttft * 0.3;
    row.cell = cell;
    ck_assert_int_eq(wk_results_add_request(db, run, &row, id, &err), 0);
}

static void add_sim_run(wk_results *db) {
    wk_err err;
    int64_t run, id;
    ck_assert_int_eq(wk_results_begin_run(db, "sim", "wikv sim test", &run, &err), 0);
    for (int p = 0; p < N_SIM_POLICIES; p++)
        for (int t = 0; t < N_TRACES; t++)
            for (int s = 0; s < N_SEEDS; s++) {
                double ttft = base_ttft(p) * 45.0 / trace_mbps[t] * (1 + 0.05 * s);
                double f1 = 0.9 - 0.05 * p + 0.01 * (s % 3);
                char cell[64];
                snprintf(cell, sizeof cell, "%s/%s/%d", sim_policies[p], traces[t], s);
                const char *params = (p == 0 && s % 2) ? "levels=2" : "levels=3";
                add_row(db, run, "sim", sim_policies[p], params, t, s, ttft, f1, cell, &id);
                if (p == 0 && t == 0 && s == 0) fx.event_request = id;
            }
    /* oracle on its own trace: TTFTs {5,1,4,2,3}; median 3, p5 1.2, p95 4.8; parts 0.6/0.1/0.3 of it */
    const double oracle[] = {5, 1, 4, 2, 3};
    for (int s = 0; s < 5; s++) add_row(db, run, "sim", "oracle", "-", 1, 100 + s, oracle[s], 0.95, NULL, &id);
    /* timeline of the first wikv request (TTFT 1.5 s): three levels arriving, usable fraction,
     * compute, then tokens from the TTFT on */
    double cum = 0, u = 0.12; /* time unit, s */
    int seq = 0;
    for (int i = 0; i < 12; i++) {
        cum += 250000 + 10000 * i;
        ck_assert_int_eq(wk_results_add_event(db, fx.event_request, seq++, u * (i + 1) * 0.9, "arrive", i % 3, cum, &err), 0);
        ck_assert_int_eq(wk_results_add_event(db, fx.event_request, seq++, u * (i + 1) * 0.9 + 0.002, "usable", 0,
                                              (i + 1) / 12.0, &err), 0);
    }
    ck_assert_int_eq(wk_results_add_event(db, fx.event_request, seq++, u, "prefill", 0, 0.2, &err), 0);
    ck_assert_int_eq(wk_results_add_event(db, fx.event_request, seq++, 4 * u, "decode_kv", 0, 0.1, &err), 0);
    ck_assert_int_eq(wk_results_add_event(db, fx.event_request, seq++, 8 * u, "decode_kv", 0, 0.1, &err), 0);
    for (int k = 0; k < 10; k++) {
        ck_assert_int_eq(wk_results_add_event(db, fx.event_request, seq++, 1.45 + 0.06 * k, "emit", 0, 0.04, &err), 0);
        ck_assert_int_eq(wk_results_add_event(db, fx.event_request, seq++, 1.5 + 0.06 * k, "token", 0, k, &err), 0);
    }
    for (int t = 0; t < N_TRACES; t++) {
        double ts[300], mbps[300];
        for (int i = 0; i < 300; i++) {
            ts[i] = 0.1 * i;
            mbps[i] = trace_mbps[t] * (1 + 0.4 * sin(0.05 * i * (t + 1)));
        }
        ck_assert_int_eq(wk_results_add_trace_samples(db, traces[t], ts, mbps, 300, &err), 0);
    }
    ck_assert_int_eq(wk_results_finish_run(db, run, &err), 0);
}

/* Measured runs of three policies on two traces, seeds 0..2: paired by key (no cell) for seeds 0-1,
 * by cell for seed 2 (its key fields differ: another task, so only the cell can pair it). */
static void add_exec_run(wk_results *db) {
    wk_err err;
    int64_t run, id;
    ck_assert_int_eq(wk_results_begin_run(db, "exec", "wikv run test", &run, &err), 0);
    for (int p = 0; p < 3; p++)
        for (int t = 0; t < 2; t++)
            for (int s = 0; s < 3; s++) {
                double ttft = base_ttft(p) * 45.0 / trace_mbps[t] * (1 + 0.05 * s) * (1.08 - 0.03 * p);
                char cell[64];
                snprintf(cell, sizeof cell, "%s/%s/%d", sim_policies[p], traces[t], s);
                wk_request_row row = wk_results_empty_row("exec");
                row.policy = sim_policies[p];
                row.trace = traces[t];
                row.trace_mean_mbps = trace_mbps[t];
                row.model = "qwen3-8b";
                row.device = "jetson-agx-orin";
                row.task = s == 2 ? "summary" : "qa";
                row.context_tokens = 8192;
                row.seed = s;
                row.ttft_s = ttft;
                row.f1 = 0.8;
                row.cell = s == 2 ? cell : NULL;
                ck_assert_int_eq(wk_results_add_request(db, run, &row, &id, &err), 0);
                fx.expected_pairs++;
            }
    /* an exec request with no simulated twin: not paired */
    add_row(db, run, "exec", "wikv", NULL, 2, 999, 0.5, 0.8, NULL, &id);
    ck_assert_int_eq(wk_results_finish_run(db, run, &err), 0);
}

/* A run that never finished and one that failed: their requests must never be plotted. */
static void add_unfinished_runs(wk_results *db) {
    wk_err err;
    int64_t run, id;
    ck_assert_int_eq(wk_results_begin_run(db, "sim", "failed", &run, &err), 0);
    add_row(db, run, "sim", "ghost", NULL, 0, 1, 1.0, 0.5, NULL, &id);
    ck_assert_int_eq(wk_results_fail_run(db, run, "test", &err), 0);
    ck_assert_int_eq(wk_results_begin_run(db, "sim", "killed", &run, &err), 0);
    add_row(db, run, "sim", "ghost", NULL, 0, 1, 1.0, 0.5, NULL, &id);
    ck_assert_int_eq(wk_results_checkpoint(db, &err), 0); /* committed rows of a still-running run */
}

static void setup(void) {
    snprintf(fx.dir, sizeof fx.dir, "/tmp/wikv-test-plot-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(fx.dir));
    snprintf(fx.db, sizeof fx.db, "%s/results.db", fx.dir);
    wk_results *db;
    wk_err err;
    ck_assert_int_eq(wk_results_open(fx.db, &db, &err), 0);
    add_sim_run(db);
    add_exec_run(db);
    add_unfinished_runs(db);
    wk_results_close(db);
}

static void teardown(void) {
    char cmd[400];
    if (getenv("WIKV_TEST_KEEP")) return; /* to look at the figures */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx.dir);
    ck_assert_int_eq(system(cmd), 0);
}

static long file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static int starts_with_file(const char *path, const char *magic, size_t n) {
    char buf[64] = {0};
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    size_t got = fread(buf, 1, n, fp);
    fclose(fp);
    return got == n && memcmp(buf, magic, n) == 0;
}

static char *slurp(const char *path) {
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static int render(wk_plot_kind kind, const wk_plot_filter *f, const char *name, wk_plot_result *res, wk_err *err) {
    char out[512];
    snprintf(out, sizeof out, "%s/%s", fx.dir, name);
    return wk_plot_file(fx.db, kind, f, NULL, out, res, err);
}

#define SKIP_WITHOUT_GNUPLOT()                                                                         \
    do {                                                                                               \
        if (!wk_plot_have_gnuplot()) {                                                                 \
            fprintf(stderr, "test_plot: gnuplot not on PATH, rendering not tested\n");                 \
            return;                                                                                    \
        }                                                                                              \
    } while (0)

START_TEST(every_kind_renders_in_every_format) {
    SKIP_WITHOUT_GNUPLOT();
    const char *ext[] = {"png", "pdf", "svg"};
    const char *magic[] = {"\x89PNG", "%PDF", "<?xml"};
    for (int k = 0; k < WK_PLOT_KIND_COUNT; k++)
        for (int e = 0; e < 3; e++) {
            char name[64];
            snprintf(name, sizeof name, "%s.%s", wk_plot_kind_name((wk_plot_kind)k), ext[e]);
            wk_plot_result res;
            wk_err err = {0};
            int rc = render((wk_plot_kind)k, NULL, name, &res, &err);
            ck_assert_msg(rc == 0, "%s: %s", name, err.msg);
            ck_assert_msg(starts_with_file(res.fig, magic[e], strlen(magic[e])), "%s: not a %s file", res.fig, ext[e]);
            ck_assert_int_gt(file_size(res.fig), 500);
            ck_assert_int_gt(file_size(res.script), 100);
            ck_assert_int_gt(file_size(res.data), 20);
            ck_assert_uint_gt(res.n_points, 0);
            ck_assert_uint_gt(res.n_series, 0);
            char *data = slurp(res.data);
            ck_assert_msg(data[0] >= 'a' && data[0] <= 'z', "%s: no header line", res.data);
            ck_assert_ptr_null(strstr(data, "ghost")); /* the unfinished run never shows */
            free(data);
        }
}
END_TEST

/* Returns the next line of text (NUL-terminated in place) or NULL. */
static char *next_line(char **cursor) {
    char *s = *cursor;
    if (!s || !*s) return NULL;
    char *nl = strchr(s, '\n');
    if (nl) *nl = '\0';
    *cursor = nl ? nl + 1 : NULL;
    return s;
}

START_TEST(cdf_has_one_curve_per_policy_ending_at_one) {
    SKIP_WITHOUT_GNUPLOT();
    wk_plot_result res;
    wk_err err;
    const char *pol[] = {"wikv", "prefill"};
    wk_plot_filter f = {.policies = pol, .n_policies = 2, .kind = "sim"};
    ck_assert_int_eq(render(WK_PLOT_TTFT_CDF, &f, "cdf2.png", &res, &err), 0);
    ck_assert_uint_eq(res.n_series, 2);
    ck_assert_uint_eq(res.n_points, 2 * (N_TRACES * N_SEEDS + 1));
    char *data = slurp(res.data), *cur = data, *line, *prev = NULL;
    ck_assert_str_eq(next_line(&cur), "policy\tttft_s\tcdf");
    int ends = 0;
    while ((line = next_line(&cur)) != NULL) {
        if (!*line && prev && *prev) { /* end of a block: the previous row is the CDF's top */
            double v = strtod(strrchr(prev, '\t') + 1, NULL);
            ck_assert_double_eq_tol(v, 1.0, 1e-12);
            ends++;
        }
        prev = line;
    }
    ck_assert_int_eq(ends, 2);
    free(data);
    /* --kind exec selects only the measured rows: 3 policies, 3 of them with 6, wikv with 7 */
    wk_plot_filter fe = {.kind = "exec"};
    ck_assert_int_eq(render(WK_PLOT_TTFT_CDF, &fe, "cdf-exec.png", &res, &err), 0);
    ck_assert_uint_eq(res.n_series, 3);
    ck_assert_uint_eq(res.n_points, 19 + 3);
}
END_TEST

START_TEST(bandwidth_points_are_median_and_p5_p95) {
    SKIP_WITHOUT_GNUPLOT();
    wk_plot_result res;
    wk_err err;
    const char *pol[] = {"oracle"};
    wk_plot_filter f = {.policies = pol, .n_policies = 1};
    ck_assert_int_eq(render(WK_PLOT_TTFT_VS_BW, &f, "bw-oracle.svg", &res, &err), 0);
    ck_assert_uint_eq(res.n_points, 1);
    char *data = slurp(res.data), *cur = data;
    next_line(&cur);
    char pol_s[32], trace[32];
    double mbps, p50, p5, p95;
    int n;
    ck_assert_int_eq(sscanf(next_line(&cur), "%31s %31s %lf %lf %lf %lf %d", pol_s, trace, &mbps, &p50, &p5, &p95, &n), 7);
    ck_assert_str_eq(pol_s, "oracle");
    ck_assert_str_eq(trace, "wifi-office");
    ck_assert_double_eq_tol(mbps, 45, 1e-9);
    ck_assert_double_eq_tol(p50, 3.0, 1e-9);
    ck_assert_double_eq_tol(p5, 1.2, 1e-9);
    ck_assert_double_eq_tol(p95, 4.8, 1e-9);
    ck_assert_int_eq(n, 5);
    free(data);
    /* all policies: one point per (policy, trace), in increasing bandwidth within a policy */
    ck_assert_int_eq(render(WK_PLOT_TTFT_VS_BW, NULL, "bw-all.png", &res, &err), 0);
    ck_assert_uint_eq(res.n_series, N_SIM_POLICIES + 1);
    ck_assert_uint_eq(res.n_points, N_SIM_POLICIES * N_TRACES + 1);
}
END_TEST

START_TEST(breakdown_rows_are_medians_of_parts) {
    SKIP_WITHOUT_GNUPLOT();
    wk_plot_result res;
    wk_err err;
    const char *pol[] = {"oracle", "wikv"};
    wk_plot_filter f = {.policies = pol, .n_policies = 2, .run_id = 1};
    ck_assert_int_eq(render(WK_PLOT_BREAKDOWN, &f, "bd.pdf", &res, &err), 0);
    ck_assert_uint_eq(res.n_points, 2);
    char *data = slurp(res.data), *cur = data;
    ck_assert_str_eq(next_line(&cur), "policy\tnet_wait_s\tkv_decode_s\tcompute_s\tttft_p50_s\tn");
    char first[32], second[32];
    double net, kv, comp, ttft;
    int n;
    /* legend order is the policy table's: wikv before oracle */
    ck_assert_int_eq(sscanf(next_line(&cur), "%31s", first), 1);
    ck_assert_int_eq(sscanf(next_line(&cur), "%31s %lf %lf %lf %lf %d", second, &net, &kv, &comp, &ttft, &n), 6);
    ck_assert_str_eq(first, "wikv");
    ck_assert_str_eq(second, "oracle");
    ck_assert_double_eq_tol(net, 1.8, 1e-9);
    ck_assert_double_eq_tol(kv, 0.3, 1e-9);
    ck_assert_double_eq_tol(comp, 0.9, 1e-9);
    ck_assert_double_eq_tol(ttft, 3.0, 1e-9);
    ck_assert_int_eq(n, 5);
    free(data);
}
END_TEST

START_TEST(sim_vs_exec_pairs_by_key_and_by_cell) {
    SKIP_WITHOUT_GNUPLOT();
    wk_plot_result res;
    wk_err err;
    ck_assert_int_eq(render(WK_PLOT_SIM_VS_EXEC, NULL, "sve.png", &res, &err), 0);
    ck_assert_uint_eq(res.n_points, fx.expected_pairs);
    ck_assert_uint_eq(res.n_series, 3);
    ck_assert_ptr_nonnull(strstr(res.note, "pairs"));
    /* each pair: measured = simulated x (1.08 - 0.03 p), so the ratio tells the policy */
    char *data = slurp(res.data), *cur = data, *line;
    next_line(&cur);
    size_t rows = 0;
    while ((line = next_line(&cur)) != NULL) {
        char p[32], t[32];
        double s, e;
        if (sscanf(line, "%31s %31s %lf %lf", p, t, &s, &e) != 4) continue;
        int k = strcmp(p, "wikv") == 0 ? 0 : strcmp(p, "prefill") == 0 ? 1 : 2;
        ck_assert_double_eq_tol(e / s, 1.08 - 0.03 * k, 1e-9);
        rows++;
    }
    ck_assert_uint_eq(rows, fx.expected_pairs);
    free(data);
}
END_TEST

START_TEST(timeline_draws_levels_usable_tokens_compute) {
    SKIP_WITHOUT_GNUPLOT();
    wk_plot_result res;
    wk_err err;
    ck_assert_int_eq(render(WK_PLOT_TIMELINE, NULL, "tl.png", &res, &err), 0);
    /* 3 levels + total + usable + tokens + prefill + decode_kv + emit */
    ck_assert_uint_eq(res.n_series, 9);
    char want[64];
    snprintf(want, sizeof want, "request %lld", (long long)fx.event_request);
    ck_assert_str_eq(res.note, want);
    /* per-level bytes add up to the total at the end */
    char *data = slurp(res.data), *cur = data, *line;
    double level_last[3] = {0}, total_last = 0;
    while ((line = next_line(&cur)) != NULL) {
        char series[32], lvl[8];
        double t, v;
        if (sscanf(line, "%31s %7s %lf %lf", series, lvl, &t, &v) != 4) continue;
        if (strcmp(series, "bytes") == 0) level_last[atoi(lvl)] = v;
        if (strcmp(series, "bytes_total") == 0) total_last = v;
    }
    ck_assert_double_eq_tol(level_last[0] + level_last[1] + level_last[2], total_last, 1e-6);
    ck_assert_double_eq_tol(total_last, 12 * 250000 + 10000 * 66, 1e-6);
    free(data);
    wk_plot_filter f = {.request_id = fx.event_request + 1};
    ck_assert_int_eq(render(WK_PLOT_TIMELINE, &f, "tl-none.png", &res, &err), WK_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "no events"));
    f.request_id = 999999;
    ck_assert_int_eq(render(WK_PLOT_TIMELINE, &f, "tl-none.png", &res, &err), WK_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "999999"));
}
END_TEST

START_TEST(trace_selects_by_name_or_by_requests) {
    SKIP_WITHOUT_GNUPLOT();
    wk_plot_result res;
    wk_err err;
    ck_assert_int_eq(render(WK_PLOT_TRACE, NULL, "tr-all.svg", &res, &err), 0);
    ck_assert_uint_eq(res.n_series, 3);
    ck_assert_uint_eq(res.n_points, 900);
    const char *one[] = {"lte-walk"};
    wk_plot_filter f = {.traces = one, .n_traces = 1};
    ck_assert_int_eq(render(WK_PLOT_TRACE, &f, "tr-one.svg", &res, &err), 0);
    ck_assert_uint_eq(res.n_series, 1);
    ck_assert_uint_eq(res.n_points, 300);
    /* exec requests ran on two of the three traces */
    wk_plot_filter fe = {.kind = "exec", .model = "qwen3-8b"};
    const char *wikv[] = {"wikv"};
    fe.policies = wikv, fe.n_policies = 1;
    ck_assert_int_eq(render(WK_PLOT_TRACE, &fe, "tr-exec.svg", &res, &err), 0);
    ck_assert_uint_eq(res.n_series, 3); /* wikv exec includes the unpaired 5g-drive request */
    fe.context_tokens = 8192;
    fe.device = "jetson-agx-orin";
    const char *pre[] = {"prefill"};
    fe.policies = pre;
    ck_assert_int_eq(render(WK_PLOT_TRACE, &fe, "tr-exec2.svg", &res, &err), 0);
    ck_assert_uint_eq(res.n_series, 2);
}
END_TEST

START_TEST(pareto_front_is_exactly_the_undominated_configurations) {
    SKIP_WITHOUT_GNUPLOT();
    wk_plot_result res;
    wk_err err;
    wk_plot_filter f = {.kind = "sim"};
    ck_assert_int_eq(render(WK_PLOT_PARETO, &f, "pareto.png", &res, &err), 0);
    /* wikv has two configurations, the others one each */
    double tt[16], f1[16];
    int front[16];
    size_t n = 0;
    char *data = slurp(res.data), *cur = data, *line;
    next_line(&cur);
    int blank = 0;
    while ((line = next_line(&cur)) != NULL && n < 16) {
        if (!*line) {
            blank++;
            continue;
        }
        if (blank == 2 * (N_SIM_POLICIES + 1)) break; /* the front block repeats rows */
        char p[32], par[32];
        ck_assert_int_eq(sscanf(line, "%31s %31s %lf %lf %*d %d", p, par, &tt[n], &f1[n], &front[n]), 5);
        n++;
    }
    free(data);
    ck_assert_uint_eq(n, N_SIM_POLICIES + 2);
    for (size_t i = 0; i < n; i++) {
        int dominated = 0;
        for (size_t j = 0; j < n; j++)
            if (j != i && tt[j] <= tt[i] && f1[j] >= f1[i] && (tt[j] < tt[i] || f1[j] > f1[i])) dominated = 1;
        ck_assert_int_eq(front[i], !dominated);
    }
}
END_TEST

START_TEST(missing_database_is_an_error_and_is_not_created) {
    char path[512], out[512];
    snprintf(path, sizeof path, "%s/no-such.db", fx.dir);
    snprintf(out, sizeof out, "%s/x.png", fx.dir);
    wk_plot_result res;
    wk_err err;
    ck_assert_int_eq(wk_plot_file(path, WK_PLOT_TTFT_CDF, NULL, NULL, out, &res, &err), WK_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    ck_assert_int_eq(file_size(path), -1);
    /* an empty file is not silently turned into a database either */
    char empty[512];
    snprintf(empty, sizeof empty, "%s/empty.db", fx.dir);
    FILE *fp = fopen(empty, "w");
    ck_assert_ptr_nonnull(fp);
    fclose(fp);
    ck_assert_int_eq(wk_plot_file(empty, WK_PLOT_TTFT_CDF, NULL, NULL, out, &res, &err), WK_EFORMAT);
    ck_assert_int_eq(file_size(empty), 0);
}
END_TEST

START_TEST(empty_selection_names_db_and_filters) {
    wk_plot_result res;
    wk_err err;
    const char *pol[] = {"nosuch", "ghost"};
    wk_plot_filter f = {.policies = pol, .n_policies = 2, .context_tokens = 8192};
    for (int k = 0; k < WK_PLOT_KIND_COUNT; k++) {
        ck_assert_int_eq(render((wk_plot_kind)k, &f, "empty.png", &res, &err), WK_ENOTFOUND);
        ck_assert_ptr_nonnull(strstr(err.msg, fx.db));
        ck_assert_ptr_nonnull(strstr(err.msg, "--policy nosuch,ghost --context 8192"));
    }
    const char *tr[] = {"no-trace"};
    wk_plot_filter ft = {.traces = tr, .n_traces = 1};
    ck_assert_int_eq(render(WK_PLOT_TRACE, &ft, "empty.png", &res, &err), WK_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "--trace no-trace"));
    /* nothing was left behind that looks like a figure's data */
    char data[512];
    snprintf(data, sizeof data, "%s/empty.tsv", fx.dir);
    ck_assert_int_eq(file_size(data), -1);
    ck_assert_int_eq(render(WK_PLOT_TTFT_CDF, NULL, "fig.jpg", &res, &err), WK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, ".jpg"));
}
END_TEST

START_TEST(without_gnuplot_data_and_script_are_still_written) {
    const char *old = getenv("PATH");
    char *saved = old ? strdup(old) : NULL;
    setenv("PATH", "/nonexistent", 1);
    ck_assert_int_eq(wk_plot_have_gnuplot(), 0);
    wk_plot_result res;
    wk_err err;
    ck_assert_int_eq(render(WK_PLOT_TTFT_CDF, NULL, "nognuplot.png", &res, &err), WK_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(err.msg, "gnuplot"));
    char path[512];
    snprintf(path, sizeof path, "%s/nognuplot.tsv", fx.dir);
    ck_assert_int_gt(file_size(path), 20);
    snprintf(path, sizeof path, "%s/nognuplot.gp", fx.dir);
    ck_assert_int_gt(file_size(path), 100);
    if (saved) setenv("PATH", saved, 1); /* for CK_FORK=no runs */
    free(saved);
}
END_TEST

/* Names with quotes, tabs and gnuplot's enhanced-text characters, a figure path with spaces and
 * quotes, failed requests and NULL columns: all drawn, nothing misread. */
START_TEST(odd_names_and_missing_values_are_handled) {
    SKIP_WITHOUT_GNUPLOT();
    char db_path[512];
    snprintf(db_path, sizeof db_path, "%s/odd.db", fx.dir);
    wk_results *db;
    wk_err err;
    int64_t run, id;
    ck_assert_int_eq(wk_results_open(db_path, &db, &err), 0);
    ck_assert_int_eq(wk_results_begin_run(db, "sim", "odd", &run, &err), 0);
    const char *odd = "it's \"odd\"\t@{x}_y^2";
    for (int i = 0; i < 6; i++) {
        wk_request_row row = wk_results_empty_row("sim");
        row.policy = i % 2 ? odd : "wikv";
        row.trace = "tr'ace";
        row.trace_mean_mbps = 20 + i;
        row.ttft_s = 0.5 + i;
        row.net_wait_s = i == 0 ? wk_results_null() : 0.3;
        ck_assert_int_eq(wk_results_add_request(db, run, &row, &id, &err), 0);
    }
    wk_request_row failed = wk_results_empty_row("sim");
    failed.policy = "wikv";
    failed.status = "failed";
    failed.fail_reason = "link down";
    ck_assert_int_eq(wk_results_add_request(db, run, &failed, &id, &err), 0);
    double t[] = {0, 0.1}, m[] = {10, 20};
    ck_assert_int_eq(wk_results_add_trace_samples(db, "tr'ace", t, m, 2, &err), 0);
    ck_assert_int_eq(wk_results_finish_run(db, run, &err), 0);
    wk_results_close(db);
    wk_plot_kind kinds[] = {WK_PLOT_TTFT_CDF, WK_PLOT_TTFT_VS_BW, WK_PLOT_BREAKDOWN, WK_PLOT_TRACE};
    for (size_t k = 0; k < 4; k++) {
        char out[600];
        snprintf(out, sizeof out, "%s/odd 'name' %zu.svg", fx.dir, k);
        wk_plot_result res;
        ck_assert_msg(wk_plot_file(db_path, kinds[k], NULL, NULL, out, &res, &err) == 0, "%s", err.msg);
        ck_assert_int_gt(file_size(out), 500);
        if (kinds[k] == WK_PLOT_TTFT_CDF) ck_assert_uint_eq(res.n_points, 6 + 2); /* the failed request is out */
        if (kinds[k] == WK_PLOT_BREAKDOWN) ck_assert_uint_eq(res.n_points, 2);
    }
    /* quality needs F1, which no request has: a clear empty selection, not a broken figure */
    char out[600];
    snprintf(out, sizeof out, "%s/odd-q.png", fx.dir);
    wk_plot_result res;
    ck_assert_int_eq(wk_plot_file(db_path, WK_PLOT_QUALITY_LATENCY, NULL, NULL, out, &res, &err), WK_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "F1"));
}
END_TEST

/* Runs the wikv binary; returns its exit status and its stderr+stdout in out. */
static int run_cli(const char *args, char *out, size_t cap) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s plot %s 2>&1", WIKV_BINARY, args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(cli_exit_status_and_messages) {
    char out[8192], args[1024];
    ck_assert_int_eq(run_cli("--help", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "ttft-vs-bw"));
    snprintf(args, sizeof args, "ttft-cdf --db %s/missing.db -o %s/m.png", fx.dir, fx.dir);
    ck_assert_int_eq(run_cli(args, out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "missing.db"));
    snprintf(args, sizeof args, "ttft-cdf --db %s --policy nosuch --trace lte-walk -o %s/m.png", fx.db, fx.dir);
    ck_assert_int_eq(run_cli(args, out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, fx.db));
    ck_assert_ptr_nonnull(strstr(out, "--policy nosuch --trace lte-walk"));
    snprintf(args, sizeof args, "no-kind --db %s -o %s/m.png", fx.db, fx.dir);
    ck_assert_int_eq(run_cli(args, out, sizeof out), 2);
    snprintf(args, sizeof args, "ttft-cdf --db %s --kind both -o %s/m.png", fx.db, fx.dir);
    ck_assert_int_eq(run_cli(args, out, sizeof out), 2);
    if (!wk_plot_have_gnuplot()) return;
    snprintf(args, sizeof args, "ttft-vs-bw --db %s --policy wikv,prefill --policy cachegen --size 3.3x2 --log-y -o %s/cli.pdf",
             fx.db, fx.dir);
    ck_assert_msg(run_cli(args, out, sizeof out) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "3 series"));
}
END_TEST

START_TEST(style_is_fixed_for_known_and_stable_for_others) {
    const char *known[] = {"prefill", "full", "kivi2", "kivi4", "cachegen", "wikv", "hybrid",
                           "h2o", "snapkv", "streamingllm", "pyramidkv", "simcalkv", "oracle"};
    size_t n = sizeof known / sizeof known[0];
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(wk_plot_policy_rank(known[i]), (int)i);
        wk_plot_style a = wk_plot_style_of(known[i]);
        ck_assert_ptr_nonnull(strchr(a.color, '#'));
        for (size_t j = 0; j < i; j++) {
            wk_plot_style b = wk_plot_style_of(known[j]);
            int same = strcmp(a.color, b.color) == 0 && a.point == b.point && a.dash == b.dash;
            ck_assert_msg(!same, "%s and %s look the same", known[i], known[j]);
            ck_assert_msg(a.point != b.point, "%s and %s share a marker", known[i], known[j]);
        }
    }
    ck_assert_str_eq(wk_plot_style_of("wikv").color, "#D55E00");
    wk_plot_style u1 = wk_plot_style_of("my-new-policy"), u2 = wk_plot_style_of("my-new-policy");
    ck_assert_str_eq(u1.color, u2.color);
    ck_assert_int_eq(u1.point, u2.point);
    ck_assert_int_eq(u1.dash, u2.dash);
    ck_assert_int_ne(u1.dash, 1); /* unknown policies are never solid: solid lines are the table's */
    ck_assert_int_eq(wk_plot_policy_rank("my-new-policy"), (int)n);
}
END_TEST

START_TEST(quantiles_interpolate_between_order_statistics) {
    double v[] = {1, 2, 3, 4, 5};
    ck_assert_double_eq_tol(wk_plot_quantile(v, 5, 0.5), 3, 1e-12);
    ck_assert_double_eq_tol(wk_plot_quantile(v, 5, 0.05), 1.2, 1e-12);
    ck_assert_double_eq_tol(wk_plot_quantile(v, 5, 0.95), 4.8, 1e-12);
    ck_assert_double_eq_tol(wk_plot_quantile(v, 5, 1.0), 5, 1e-12);
    ck_assert_double_eq_tol(wk_plot_quantile(v, 1, 0.3), 1, 1e-12);
    ck_assert(isnan(wk_plot_quantile(v, 0, 0.5)));
    double w[] = {3, -1, 2, 2};
    wk_plot_sort(w, 4);
    ck_assert(w[0] == -1 && w[1] == 2 && w[2] == 2 && w[3] == 3);
    ck_assert_int_eq(wk_plot_kind_from_name("sim-vs-exec"), WK_PLOT_SIM_VS_EXEC);
    ck_assert_int_eq(wk_plot_kind_from_name("bogus"), -1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("plot");
    TCase *tc = tcase_create("plot");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, every_kind_renders_in_every_format);
    tcase_add_test(tc, cdf_has_one_curve_per_policy_ending_at_one);
    tcase_add_test(tc, bandwidth_points_are_median_and_p5_p95);
    tcase_add_test(tc, breakdown_rows_are_medians_of_parts);
    tcase_add_test(tc, sim_vs_exec_pairs_by_key_and_by_cell);
    tcase_add_test(tc, timeline_draws_levels_usable_tokens_compute);
    tcase_add_test(tc, trace_selects_by_name_or_by_requests);
    tcase_add_test(tc, pareto_front_is_exactly_the_undominated_configurations);
    tcase_add_test(tc, missing_database_is_an_error_and_is_not_created);
    tcase_add_test(tc, empty_selection_names_db_and_filters);
    tcase_add_test(tc, without_gnuplot_data_and_script_are_still_written);
    tcase_add_test(tc, cli_exit_status_and_messages);
    tcase_add_test(tc, odd_names_and_missing_values_are_handled);
    tcase_add_test(tc, style_is_fixed_for_known_and_stable_for_others);
    tcase_add_test(tc, quantiles_interpolate_between_order_statistics);
    suite_add_tcase(s, tc);
    return wk_test_run(s);
}
