/* Simulator speed: simulated requests per second and events per second, per policy, for an
 * 8K-context Llama-3.1-8B request on a jetson-agx-orin over a varying (Mahimahi) trace and a capacity
 * trace. The baseline printed beside it is the cost of the link model alone (one exact
 * time-to-deliver query per unit), measured in the same run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "sim/sim.h"

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
    static double ms[N];
    for (int i = 0; i < N; i++) ms[i] = (double)(i / 8 + (i % 5 == 0)); /* ~96 Mbit/s with jitter */
    for (int i = 1; i < N; i++) if (ms[i] < ms[i - 1]) ms[i] = ms[i - 1];
    return wk_trace_from_opportunities("synthetic-mahimahi", ms, N, tr, err);
}

int main(int argc, char **argv) {
    double seconds_per_case = argc > 1 ? atof(argv[1]) : 1.0;
    wk_err err;
    wk_model_spec model;
    wk_device dev;
    if (wk_model_spec_find("llama-3.1-8b", &model, &err) || wk_device_find("jetson-agx-orin", &dev, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("bench_sim_speed: llama-3.1-8b, 8192-token context, jetson-agx-orin, 1 output token\n");
    printf("%-10s %-20s %12s %14s %10s\n", "policy", "trace", "requests/s", "events/s", "units");
    for (int mm = 0; mm < 2; mm++) {
        wk_trace tr;
        if (make_trace(&tr, mm, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        for (const wk_policy_ops *const *ops = wk_policy_registry(); *ops; ops++) {
            wk_policy pol;
            if (wk_policy_create((*ops)->name, &pol, &err)) return 1;
            wk_sim sim;
            wk_sim_init(&sim);
            wk_sim_config cfg = {.trace = &tr, .link = wk_link_defaults(), .model = &model, .device = &dev,
                                 .context_tokens = 8192, .output_tokens = 1, .task = "none"};
            double start = wk_now_s(), now = start;
            long requests = 0;
            size_t events = 0;
            while (now - start < seconds_per_case) {
                for (int k = 0; k < 64; k++) {
                    cfg.link.trace_offset_s = (double)(requests % 97) * tr.period_s / 97;
                    wk_sim_result res;
                    if (wk_sim_request(&sim, &pol, &cfg, NULL, &res, &err)) {
                        fprintf(stderr, "%s\n", err.msg);
                        return 1;
                    }
                    events += res.s.events;
                    requests++;
                }
                now = wk_now_s();
            }
            printf("%-10s %-20s %12.0f %14.0f %10zu\n", pol.ops->name, tr.name, requests / (now - start),
                   events / (now - start), sim.plan.n);
            wk_sim_free(&sim);
            wk_policy_free(&pol);
        }
        /* baseline: the link model alone, one query per unit of a 256-unit plan */
        wk_link_model link;
        wk_link_params lp = wk_link_defaults();
        double start = wk_now_s(), now = start, sink = 0;
        long queries = 0;
        while (now - start < seconds_per_case) {
            wk_link_init(&link, &tr, &lp);
            for (int u = 0; u < 256; u++) {
                double arrival;
                sink += wk_link_send(&link, 0, 4 << 20, &arrival);
            }
            queries += 256;
            now = wk_now_s();
        }
        printf("%-10s %-20s %12.0f %14s (link-model queries/s; checksum %.3g)\n", "baseline", tr.name,
               queries / (now - start), "-", sink);
        wk_trace_free(&tr);
    }
    return 0;
}
