/* Simulator speed: simulated requests per second on one core, per policy, for an 8K-context
 * Llama-3.1-8B request on a jetson-agx-orin over a varying Mahimahi-style trace and a capacity trace:
 * wikv at its unit granularity (units of `batch` vectors, as the policy streams them) and the coarse
 * policies (full, kivi2, cachegen, prefill). Plans are built once per policy, outside the timing, as
 * a sweep reuses them.
 *
 * Baseline, measured in the same run: bench/sim_transcription.py, a plain Python transcription of the
 * same timeline model (trace queries, link model, session loop, the five policies, roofline). This
 * program writes each case (trace, link, model, device, policy parameters, the plan's unit sizes and
 * the request offsets) with the TTFTs it computed to a temporary file; the Python recomputes every
 * TTFT, checks it to 1e-9 relative and reports its own speed. Targets: >= 10,000 wikv requests/s per
 * core and >= 100x the transcription. Speeds are CPU time of each process (one core each). Each case
 * is timed in ROUNDS rounds, a C window right before a transcription window, and each language's best
 * round counts: other load on the machine only slows a process down (cache, memory bandwidth, a shared
 * core), so the best round is the closest to its speed alone, and interleaving gives both languages
 * the same chances.
 *
 * usage: bench_sim_speed [SECONDS_PER_CASE [ROUNDS]]   (defaults 1 and 3; each round SECONDS / ROUNDS)
 *        bench_sim_speed --requests N [POLICY TRACE]
 * The second form simulates N requests of each case (or of the one named: wikv full kivi2 cachegen
 * prefill, synthetic-mahimahi synthetic-capacity) in simulate_requests, untimed and without the
 * transcription, for instruction counts:
 *   valgrind --tool=callgrind --toggle-collect=simulate_requests ./bench_sim_speed --requests 970 full synthetic-mahimahi
 * (the plan is built before, outside that function). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim/sim.h"

enum { N_OFFSETS = 97, N_CHECK = 24 };

static int make_trace(wk_trace *tr, int mahimahi, wk_err *err) {
    if (!mahimahi) {
        double t[64], mbps[64];
        for (int i = 0; i < 64; i++) {
            t[i] = i * 0.5;
            mbps[i] = 200 + 150 * ((i * 37) % 11) / 10.0;
        }
        return wk_trace_from_capacity("synthetic-capacity", t, mbps, 64, 32.0, tr, err);
    }
    enum { N = 200000 };
    double *ms = malloc(N * sizeof *ms);
    if (!ms) return wk_err_set(err, WK_ENOMEM, "bench: out of memory");
    for (int i = 0; i < N; i++) ms[i] = (double)(i / 8 + (i % 5 == 0)); /* ~96 Mbit/s with jitter */
    for (int i = 1; i < N; i++) if (ms[i] < ms[i - 1]) ms[i] = ms[i - 1];
    int rc = wk_trace_from_opportunities("synthetic-mahimahi", ms, N, tr, err);
    free(ms);
    return rc;
}

/* CPU seconds of this process: requests per second per core, whatever else the machine runs (the
 * transcription measures itself the same way, with time.process_time). */
static double cpu_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double offset_of(const wk_trace *tr, long request) { return (double)(request % N_OFFSETS) * tr->period_s / N_OFFSETS; }

/* Writes one case for the transcription: everything its timeline depends on, and our TTFTs. */
static int write_case(FILE *f, const wk_sim_config *cfg, const wk_policy *pol, const wk_plan *plan, const double *ttft) {
    const wk_trace *tr = cfg->trace;
    const wk_model_spec *m = cfg->model;
    const wk_device *d = cfg->device;
    const wk_link_params *l = &cfg->link;
    fprintf(f, "case %s %s\n", pol->ops->name, tr->name);
    fprintf(f, "trace %s %.17g %zu\n", tr->kind == WK_TRACE_OPPORTUNITIES ? "opportunities" : "capacity", tr->period_s, tr->n);
    for (size_t i = 0; i < tr->n; i++) fprintf(f, "%.17g %.17g\n", tr->t_s[i], tr->rate_Bps ? tr->rate_Bps[i] : 0.0);
    fprintf(f, "link %.17g %.17g %d %d %d\n", l->one_way_delay_s, l->request_delay_s, l->frame_payload, l->frame_overhead,
            l->unit_header);
    fprintf(f, "model %d %d %d %d %d %d %d\n", m->n_layers, m->n_heads, m->n_kv_heads, m->head_dim, m->hidden,
            m->intermediate, m->vocab);
    fprintf(f, "device %.17g %.17g %.17g %.17g %.17g %.17g %.17g\n", d->peak_fp16_flops, d->mem_bw_Bps,
            d->prefill_efficiency, d->decode_efficiency, d->kv_decode_Bps, d->h2d_Bps, d->step_overhead_s);
    fprintf(f, "request %d %d\n", cfg->context_tokens, cfg->output_tokens);
    fprintf(f, "policy %s %zu\n", pol->ops->name, pol->ops->n_params);
    for (size_t i = 0; i < pol->ops->n_params; i++) fprintf(f, "%s %.17g\n", pol->ops->params[i].name, pol->param[i]);
    fprintf(f, "plan %zu %.17g %.17g\n", plan->n, plan->kv_values_total, plan->importance_total);
    for (size_t i = 0; i < plan->n; i++) {
        const wk_unit *u = &plan->units[i];
        fprintf(f, "%lld %d %.17g %.17g %.17g %d %d\n", (long long)u->bytes, (int)u->kind, u->values, u->decoded_bytes,
                u->importance, u->token_count, (int)u->level);
    }
    fprintf(f, "requests %d\n", N_CHECK);
    for (int r = 0; r < N_CHECK; r++) fprintf(f, "%.17g %.17g\n", offset_of(tr, r), ttft[r]);
    return ferror(f) ? -1 : 0;
}

/* N requests over the bench's offsets; returns the events they took, or -1 on an error. Not inlined:
 * callgrind collects in it alone. */
__attribute__((noinline)) static long simulate_requests(wk_sim *sim, wk_policy *pol, wk_sim_config *cfg, long n,
                                                        wk_err *err) {
    long events = 0;
    wk_sim_result res;
    for (long r = 0; r < n; r++) {
        cfg->link.trace_offset_s = offset_of(cfg->trace, r);
        if (wk_sim_request(sim, pol, cfg, NULL, &res, err)) return -1;
        events += (long)res.s.events;
    }
    return events;
}

/* One case: its policy, a simulator, and the request every case simulates (8K context, one token). */
static int open_case(const char *spec, const wk_trace *tr, const wk_model_spec *model, const wk_device *dev,
                     wk_policy *pol, wk_sim *sim, wk_sim_config *cfg, wk_err *err) {
    int rc = wk_policy_create(spec, pol, err);
    if (rc) return rc;
    wk_sim_init(sim);
    *cfg = (wk_sim_config){.trace = tr, .link = wk_link_defaults(), .model = model, .device = dev,
                           .context_tokens = 8192, .output_tokens = 1, .task = "none"};
    return 0;
}

/* The --requests form for one case. */
static int count_case(const char *spec, const wk_trace *tr, const wk_model_spec *model, const wk_device *dev, long n,
                      wk_err *err) {
    wk_policy pol;
    wk_sim sim;
    wk_sim_config cfg;
    int rc = open_case(spec, tr, model, dev, &pol, &sim, &cfg, err);
    if (rc) return rc;
    wk_sim_result res;
    rc = wk_sim_request(&sim, &pol, &cfg, NULL, &res, err); /* builds the plan */
    long events = rc ? -1 : simulate_requests(&sim, &pol, &cfg, n, err);
    if (events < 0) rc = rc ? rc : -1;
    else printf("%-10s %-20s %8ld requests %8.1f events/request\n", pol.ops->name, tr->name, n, (double)events / n);
    wk_sim_free(&sim);
    wk_policy_free(&pol);
    return rc;
}

typedef struct {
    char policy[64], trace[256];
    double c_rps, c_eps;    /* C requests and events per second */
    size_t units;           /* the plan's units */
    double py_rps, py_rel;  /* transcription's speed and largest relative TTFT difference; NaN: not run */
} bench_case;

static int run_case(const char *spec, const wk_trace *tr, const wk_model_spec *model, const wk_device *dev,
                    double seconds, FILE *cases, bench_case *out, wk_err *err) {
    wk_policy pol;
    wk_sim sim;
    wk_sim_config cfg;
    int rc = open_case(spec, tr, model, dev, &pol, &sim, &cfg, err);
    if (rc) return rc;
    double ttft[N_CHECK];
    wk_sim_result res;
    for (int r = 0; !rc && r < N_CHECK; r++) { /* also builds the plan, outside the timing */
        cfg.link.trace_offset_s = offset_of(tr, r);
        rc = wk_sim_request(&sim, &pol, &cfg, NULL, &res, err);
        ttft[r] = res.s.ok ? res.s.ttft_s : NAN;
    }
    double start = cpu_now_s(), now = start;
    long requests = 0;
    size_t events = 0;
    while (!rc && now - start < seconds) {
        for (int k = 0; !rc && k < 64; k++, requests++) {
            cfg.link.trace_offset_s = offset_of(tr, requests);
            rc = wk_sim_request(&sim, &pol, &cfg, NULL, &res, err);
            events += res.s.events;
        }
        now = cpu_now_s();
    }
    if (!rc) {
        double dt = now - start;
        snprintf(out->policy, sizeof out->policy, "%s", pol.ops->name);
        snprintf(out->trace, sizeof out->trace, "%s", tr->name);
        out->c_rps = requests / dt;
        out->c_eps = events / dt;
        out->units = sim.plan.n;
        if (cases && write_case(cases, &cfg, &pol, &sim.plan, ttft)) rc = wk_err_set(err, WK_EIO, "bench: cannot write cases");
    }
    wk_sim_free(&sim);
    wk_policy_free(&pol);
    return rc;
}

/* Runs the transcription over one case file; fills c->py_rps and c->py_rel. */
static void run_python(const char *path, double seconds, bench_case *c) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "python3 '%s/bench/sim_transcription.py' '%s' %g", WIKV_SOURCE_DIR, path, seconds);
    c->py_rps = c->py_rel = NAN;
    FILE *p = popen(cmd, "r");
    if (!p) return;
    char line[512];
    while (fgets(line, sizeof line, p)) {
        char pol[64], trace[256];
        double rps, rel;
        if (sscanf(line, "result %63s %255s %lf %lf", pol, trace, &rps, &rel) == 4 && !strcmp(pol, c->policy) &&
            !strcmp(trace, c->trace)) {
            c->py_rps = rps;
            c->py_rel = rel;
        } else {
            fputs(line, stdout); /* the script's own message */
        }
    }
    if (pclose(p) != 0) c->py_rps = c->py_rel = NAN;
}

/* Keeps the best round's speeds of each language and the largest TTFT difference of all rounds. */
static void keep_best(bench_case *best, const bench_case *round, int first) {
    if (first) {
        *best = *round;
        return;
    }
    if (round->c_rps > best->c_rps) best->c_rps = round->c_rps, best->c_eps = round->c_eps;
    if (!(round->py_rps <= best->py_rps)) best->py_rps = round->py_rps; /* NaN (not run) stays NaN */
    if (!(round->py_rel <= best->py_rel)) best->py_rel = round->py_rel;
}

/* Prints the comparison; 0 when every case was checked and matched. */
static int print_comparison(const bench_case *cases, size_t n) {
    printf("\nbaseline: plain Python transcription of the same timeline model (bench/sim_transcription.py); best of the\n"
           "rounds per language (C and Python rounds interleaved)\n");
    printf("%-10s %-20s %12s %12s %10s %14s\n", "policy", "trace", "C req/s", "Python req/s", "C/Python", "max rel diff");
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const bench_case *c = &cases[i];
        int ok = c->py_rel <= 1e-9;
        printf("%-10s %-20s %12.0f %12.1f %9.0fx %14.2e%s\n", c->policy, c->trace, c->c_rps, c->py_rps,
               c->c_rps / c->py_rps, c->py_rel, ok ? "" : isnan(c->py_rel) ? "  NOT CHECKED (python3?)" : "  MISMATCH");
        bad |= !ok;
    }
    return bad;
}

int main(int argc, char **argv) {
    long count = argc > 2 && !strcmp(argv[1], "--requests") ? atol(argv[2]) : 0;
    const char *only_policy = count && argc > 4 ? argv[3] : NULL, *only_trace = count && argc > 4 ? argv[4] : NULL;
    double seconds = argc > 1 && !count ? atof(argv[1]) : 1.0;
    if (!(seconds > 0)) seconds = 1.0;
    int rounds = argc > 2 && !count ? atoi(argv[2]) : 3;
    if (rounds < 1) rounds = 1;
    wk_err err;
    wk_model_spec model;
    wk_device dev;
    if (wk_model_spec_find("llama-3.1-8b", &model, &err) || wk_device_find("jetson-agx-orin", &dev, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    static const char *specs[] = {"wikv", "full", "kivi2", "cachegen", "prefill"};
    enum { N_SPECS = sizeof specs / sizeof specs[0] };
    bench_case results[2 * N_SPECS];
    size_t n_results = 0;
    printf("bench_sim_speed: llama-3.1-8b, 8192-token context, jetson-agx-orin, 1 output token, one core (CPU time)\n");
    if (!count) printf("%-10s %-20s %12s %10s %14s %8s\n", "policy", "trace", "requests/s", "us/request", "events/s", "units");
    int rc = 0;
    for (int mm = 1; !rc && mm >= 0; mm--) {
        wk_trace tr;
        rc = make_trace(&tr, mm, &err);
        for (size_t p = 0; !rc && count > 0 && p < N_SPECS; p++)
            if ((!only_policy || !strcmp(only_policy, specs[p])) && (!only_trace || !strcmp(only_trace, tr.name)))
                rc = count_case(specs[p], &tr, &model, &dev, count, &err);
        for (size_t p = 0; !rc && !count && p < N_SPECS; p++) {
            /* each case goes to the transcription right after its C timing */
            char path[] = "/tmp/wikv-bench-sim-XXXXXX";
            int fd = mkstemp(path);
            FILE *cases = fd >= 0 ? fdopen(fd, "w") : NULL;
            if (!cases) {
                rc = wk_err_set(&err, WK_EIO, "bench: cannot create a temporary file");
                break;
            }
            bench_case *c = &results[n_results++];
            for (int r = 0; !rc && r < rounds; r++) {
                bench_case round;
                rc = run_case(specs[p], &tr, &model, &dev, seconds / rounds, r == 0 ? cases : NULL, &round, &err);
                if (r == 0) fclose(cases);
                if (!rc) run_python(path, seconds / rounds, &round);
                if (!rc) keep_best(c, &round, r == 0);
            }
            if (!rc)
                printf("%-10s %-20s %12.0f %10.2f %14.0f %8zu\n", c->policy, c->trace, c->c_rps, 1e6 / c->c_rps, c->c_eps,
                       c->units);
            unlink(path);
        }
        if (!rc) wk_trace_free(&tr);
    }
    if (rc) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    return count ? 0 : print_comparison(results, n_results);
}
