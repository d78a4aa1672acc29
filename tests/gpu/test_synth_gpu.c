/* GPU test (tests/gpu/run.sh): synthetic weights. The CUDA engine's "synthetic:tiny" (weights made by
 * kernels_synth.cu on the GPU) against the CPU engine's "synthetic:tiny" (the same weights made by the
 * CPU reference, exec/cpu/synth.c): any generator difference shows in the logits far beyond fp16
 * tolerance. Checks last-token logits within 1e-2 relative L2, identical greedy continuations, and
 * the bulk KV read of the CUDA cache against its per-token read. Exit status non-zero on failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "exec/engine.h"
#include "exec/sampler.h"

static int failures;

static void report(int ok, const char *what, const char *detail) {
    failures += !ok;
    printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", what, detail[0] ? ": " : "", detail);
    fflush(stdout);
}

static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i])) return INFINITY;
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

int main(void) {
    wk_err err = {0};
    wk_engine *cpu = NULL, *gpu = NULL;
    wk_engine_opts o = {.kv_capacity = 256};
    if (wk_engine_open("cpu", "synthetic:tiny", &o, &cpu, &err) || wk_engine_open("cuda", "synthetic:tiny", &o, &gpu, &err)) {
        report(0, "open synthetic:tiny", err.msg);
        return 1;
    }
    int vocab = cpu->cfg.vocab_size, d = cpu->cfg.head_dim;
    int32_t prompt[100];
    for (int i = 0; i < 100; i++) prompt[i] = (int32_t)((i * 37 + 11) % vocab);
    float *lc = malloc((size_t)vocab * sizeof *lc), *lg = malloc((size_t)vocab * sizeof *lg);
    char detail[1200];
    int rc = wk_engine_prefill(cpu, prompt, 100, 0, lc, &err);
    if (!rc) rc = wk_engine_prefill(gpu, prompt, 100, 0, lg, &err);
    double e = rc ? INFINITY : rel_err(lg, lc, (size_t)vocab);
    snprintf(detail, sizeof detail, "%s relative L2 %.2e", rc ? err.msg : "", e);
    report(e < 1e-2, "prefill logits, cuda vs cpu synthetic weights", detail);
    int same = 1;
    int32_t tc = wk_sampler_argmax(lc, vocab), tg = wk_sampler_argmax(lg, vocab);
    for (int s = 0; s < 8 && !rc; s++) {
        same &= tc == tg;
        wk_forward_args fc = {.tokens = &tc, .n_tokens = 1, .pos = 100 + s, .logits = lc, .logit_rows = 1};
        wk_forward_args fg = {.tokens = &tg, .n_tokens = 1, .pos = 100 + s, .logits = lg, .logit_rows = 1};
        rc = wk_engine_forward(cpu, &fc, &err);
        if (!rc) rc = wk_engine_forward(gpu, &fg, &err);
        tc = wk_sampler_argmax(lc, vocab);
        tg = wk_sampler_argmax(lg, vocab);
    }
    snprintf(detail, sizeof detail, "%s", rc ? err.msg : "");
    report(!rc && same, "8 greedy steps identical", detail);
    uint16_t k[100 * 256], v[100 * 256];
    float kf[256], vf[256];
    int bulk_ok = wk_engine_kv_read_rows(gpu, 1, 1, 0, 100, k, v, &err) == 0;
    for (int t = 0; t < 100 && bulk_ok; t++) {
        bulk_ok = gpu->ops->kv_read(gpu, 1, 1, t, kf, vf, &err) == 0;
        for (int i = 0; i < d && bulk_ok; i++)
            bulk_ok = k[t * d + i] == wk_float_to_half(kf[i]) && v[t * d + i] == wk_float_to_half(vf[i]);
    }
    report(bulk_ok, "kv_read_rows equals kv_read (cuda cache)", "");
    free(lc);
    free(lg);
    wk_engine_free(cpu);
    wk_engine_free(gpu);
    return failures ? 1 : 0;
}
