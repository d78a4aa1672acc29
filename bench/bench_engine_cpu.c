/* CPU reference engine speed on the fixture model (5M parameters): prefill tokens/s at 512 and 2048
 * tokens, decode tokens/s at 2048 tokens of context, and the achieved GFLOP/s of the weight matmuls.
 * The baseline printed beside it is a naive single-accumulator matmul of the model's own layer shapes,
 * measured in the same run, so the ratio says what the engine's kernels gain on this machine. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "exec/engine.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* GFLOP/s of out = x W^T with one accumulator per output (what a plain loop does). */
static double naive_gflops(int n, int d_in, int d_out) {
    float *x = calloc((size_t)n * d_in, sizeof *x), *w = calloc((size_t)d_out * d_in, sizeof *w);
    float *o = calloc((size_t)n * d_out, sizeof *o);
    for (size_t i = 0; i < (size_t)n * d_in; i++) x[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)d_out * d_in; i++) w[i] = (float)(i % 5) * 0.1f;
    double t0 = now_s();
    for (int t = 0; t < n; t++)
        for (int j = 0; j < d_out; j++) {
            float s = 0;
            for (int i = 0; i < d_in; i++) s += x[(size_t)t * d_in + i] * w[(size_t)j * d_in + i];
            o[(size_t)t * d_out + j] = s;
        }
    double dt = now_s() - t0, sink = o[n * d_out / 2];
    free(x);
    free(w);
    free(o);
    return 2.0 * n * d_in * d_out / dt / 1e9 + sink * 0; /* sink keeps the loop alive */
}

int main(void) {
    wk_engine *e;
    wk_err err = {0};
    wk_engine_opts o = {.kv_capacity = 4096, .max_chunk = 512};
    if (wk_engine_cpu_open(WIKV_SOURCE_DIR "/models/fixtures/tiny-llama-tasks", &o, &e, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const wk_model_config *c = &e->cfg;
    long long matmul_params = wk_model_config_n_params(c) - (long long)c->vocab_size * c->dim; /* embeddings are a lookup */
    int32_t *ids = malloc(2048 * sizeof *ids);
    for (int i = 0; i < 2048; i++) ids[i] = 3 + (i * 7919) % (c->vocab_size - 3);
    float *logits = malloc((size_t)c->vocab_size * sizeof *logits);
    double base = naive_gflops(64, c->dim, c->hidden_dim);
    printf("naive matmul baseline (64 x %d x %d): %.2f GFLOP/s\n", c->dim, c->hidden_dim, base);
    int lens[2] = {512, 2048};
    for (int k = 0; k < 2; k++) {
        e->ops->kv_clear(e);
        double t0 = now_s();
        if (wk_engine_prefill(e, ids, lens[k], 0, logits, &err)) return 1;
        double dt = now_s() - t0, gf = 2.0 * matmul_params * lens[k] / dt / 1e9;
        printf("prefill %5d tokens: %8.0f tokens/s, weight matmuls %.2f GFLOP/s (%.2fx naive)\n", lens[k], lens[k] / dt, gf,
               gf / base);
    }
    double t0 = now_s();
    int steps = 64;
    for (int i = 0; i < steps; i++) {
        int32_t tok = ids[i];
        if (wk_engine_prefill(e, &tok, 1, 2048 + i, logits, &err)) return 1;
    }
    double dt = now_s() - t0;
    printf("decode at 2048 context: %.1f tokens/s (%.2f ms/token)\n", steps / dt, dt / steps * 1e3);
    free(ids);
    free(logits);
    wk_engine_free(e);
    return 0;
}
