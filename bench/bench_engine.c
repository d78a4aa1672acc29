/* Engine speed on the GPU: prefill time at several context lengths and decode ms/token (with the
 * achieved memory bandwidth) of the CUDA engine on a synthetic model, plus the greedy continuation
 * of a fixed prompt so bench/engine.sh can check that PyTorch ran the same weights. Output lines:
 *   prefill <tokens> ms <median>      decode <context> ms_per_token <mean> gb_s <rate>
 *   greedy <id> <id> ...
 * bench/engine.sh runs this and tools/bench_transformers.py and prints the ratios. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec/engine.h"
#include "exec/sampler.h"
#ifdef WIKV_HAVE_CUDA
#include "exec/cuda/engine_cuda.h"
#endif

#define MAX_LENS 8

#ifdef WIKV_HAVE_CUDA
static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
#endif

static void usage(void) {
    printf("usage: bench_engine [--model synthetic:NAME|DIR] [--prefill N,N,...] [--decode-ctx N] [--decode-steps N]\n"
           "                    [--chunk N] [--reps N]\n"
           "Times the CUDA engine: prefill (median of --reps) and decode ms/token after --decode-ctx tokens.\n");
}

#ifdef WIKV_HAVE_CUDA
/* Prints "top3 id:logit ..." of a logits row (destroys the row). */
static void print_top3(float *logits, int V) {
    printf("top3");
    for (int k = 0; k < 3; k++) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        printf(" %d:%.4f", best, logits[best]);
        logits[best] = -INFINITY;
    }
    printf("\n");
}

/* Fixed prompt shared with tools/bench_transformers.py: id i = (i * 7919 + 13) % vocab; greedy
 * continuation with the top-3 logits of every step (near-ties explain a divergence), then the same
 * continuation through the device-side argmax, which must agree with the host one. */
static int greedy_check(wk_engine *e, int n_out, wk_err *err) {
    int V = e->cfg.vocab_size;
    int32_t prompt[32], host[64], dev[64];
    for (int i = 0; i < 32; i++) prompt[i] = (int32_t)(((long long)i * 7919 + 13) % V);
    float *logits = malloc(sizeof(float) * (size_t)V);
    if (!logits || n_out > 64) {
        free(logits);
        return wk_err_set(err, WK_ENOMEM, "out of memory");
    }
    e->ops->kv_clear(e);
    int rc = wk_engine_prefill(e, prompt, 32, 0, logits, err);
    for (int i = 0; i < n_out && !rc; i++) {
        host[i] = wk_sampler_argmax(logits, V);
        print_top3(logits, V);
        wk_forward_args a = {.tokens = &host[i], .n_tokens = 1, .pos = 32 + i, .logits = logits, .logit_rows = 1};
        if (i + 1 < n_out) rc = e->ops->forward(e, &a, err);
    }
    e->ops->kv_clear(e);
    rc = rc ? rc : wk_engine_prefill(e, prompt, 32, 0, logits, err);
    dev[0] = wk_sampler_argmax(logits, V);
    for (int i = 1; i < n_out && !rc; i++) rc = wk_engine_cuda_step_greedy(e, dev[i - 1], 32 + i - 1, &dev[i], err);
    free(logits);
    if (rc) return rc;
    printf("greedy");
    for (int i = 0; i < n_out; i++) printf(" %d", (int)host[i]);
    printf("\n");
    if (memcmp(host, dev, sizeof(int32_t) * (size_t)n_out) != 0)
        return wk_err_set(err, WK_ESTATE, "device argmax continuation differs from the host one");
    return 0;
}

static int run(const char *model, const int *lens, int n_lens, int dctx, int dsteps, int chunk, int reps, wk_err *err) {
    int cap = dctx + dsteps + 64;
    for (int i = 0; i < n_lens; i++) cap = lens[i] > cap ? lens[i] : cap;
    wk_engine_opts o = {.kv_capacity = cap, .max_chunk = chunk};
    wk_engine *e;
    double t0 = now_ms();
    if (wk_engine_cuda_open(model, &o, &e, err)) return err->code;
    char dev[320];
    wk_engine_cuda_device(e, dev, sizeof dev);
    printf("# model %s on %s: loaded in %.1f s, kv capacity %d, chunk %d\n", model, dev, (now_ms() - t0) / 1e3, cap, chunk);
    const wk_model_config *c = &e->cfg;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)cap);
    float *logits = malloc(sizeof(float) * (size_t)c->vocab_size);
    int rc = tok && logits ? 0 : wk_err_set(err, WK_ENOMEM, "out of memory");
    for (int i = 0; i < cap; i++) tok[i] = (int32_t)(((long long)i * 104729 + 7) % c->vocab_size);
    rc = rc ? rc : greedy_check(e, 8, err);
    /* Warm-up: module load, cuBLAS heuristics and handle set-up stay out of the numbers. */
    if (!rc) e->ops->kv_clear(e), rc = wk_engine_prefill(e, tok, lens[0] < 2048 ? lens[0] : 2048, 0, logits, err);
    for (int i = 0; i < n_lens && !rc; i++) {
        double t[16];
        for (int r = 0; r < reps && !rc; r++) {
            e->ops->kv_clear(e);
            rc = wk_engine_cuda_sync(e, err);
            double a = now_ms();
            rc = rc ? rc : wk_engine_prefill(e, tok, lens[i], 0, logits, err); /* ends with the logits copy: synced */
            t[r] = now_ms() - a;
        }
        if (rc) break;
        qsort(t, (size_t)reps, sizeof t[0], cmp_double);
        double flops = 2.0 * (double)wk_model_config_n_params(c) * lens[i];
        printf("prefill %d ms %.2f tflops_linear %.1f\n", lens[i], t[reps / 2], flops / (t[reps / 2] * 1e9));
        fflush(stdout);
    }
    if (!rc) {
        e->ops->kv_clear(e);
        rc = wk_engine_prefill(e, tok, dctx, 0, logits, err);
        int32_t next = wk_sampler_argmax(logits, c->vocab_size);
        for (int s = 0; s < 8 && !rc; s++) rc = wk_engine_cuda_step_greedy(e, next, dctx + s, &next, err);
        double a = now_ms();
        for (int s = 8; s < 8 + dsteps && !rc; s++) rc = wk_engine_cuda_step_greedy(e, next, dctx + s, &next, err);
        double ms = (now_ms() - a) / dsteps;
        /* Bytes one step must read: every weight except the embedding table, and the KV cache. */
        double hd = c->head_dim, qd = c->n_heads * hd, kd = c->n_kv_heads * hd;
        double w = (double)c->n_layers * ((qd + 2 * kd) * c->dim + c->dim * qd + 3.0 * c->hidden_dim * c->dim) +
                   (double)c->vocab_size * c->dim;
        double kv = 2.0 * c->n_layers * kd * (dctx + 8 + dsteps / 2);
        if (!rc) printf("decode %d ms_per_token %.3f gb_s %.0f\n", dctx, ms, 2.0 * (w + kv) / (ms * 1e6));
    }
    free(tok);
    free(logits);
    wk_engine_free(e);
    return rc;
}
#endif

int main(int argc, char **argv) {
    const char *model = "synthetic:llama-3.1-8b";
    int lens[MAX_LENS] = {4096, 16384, 32768}, n_lens = 3, dctx = 4096, dsteps = 128, chunk = 4096, reps = 3;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--help")) {
            usage();
            return 0;
        } else if (v && !strcmp(argv[i], "--model")) model = v, i++;
        else if (v && !strcmp(argv[i], "--prefill")) {
            n_lens = 0;
            for (char *s = argv[++i]; *s && n_lens < MAX_LENS;) {
                lens[n_lens++] = (int)strtol(s, &s, 10);
                if (*s == ',') s++;
                else if (*s) break;
            }
        } else if (v && !strcmp(argv[i], "--decode-ctx")) dctx = atoi(argv[++i]);
        else if (v && !strcmp(argv[i], "--decode-steps")) dsteps = atoi(argv[++i]);
        else if (v && !strcmp(argv[i], "--chunk")) chunk = atoi(argv[++i]);
        else if (v && !strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
        else {
            usage();
            return 2;
        }
    }
    for (int i = 0; i < n_lens; i++)
        if (lens[i] < 1 || lens[i] > (1 << 20)) {
            fprintf(stderr, "bench_engine: --prefill lengths must be in [1, 1048576]\n");
            return 2;
        }
    if (n_lens < 1 || dctx < 1 || dsteps < 1 || chunk < 1 || reps < 1 || reps > 16) {
        fprintf(stderr, "bench_engine: bad option value\n");
        return 2;
    }
#ifdef WIKV_HAVE_CUDA
    wk_err err = {0};
    if (run(model, lens, n_lens, dctx, dsteps, chunk, reps, &err)) {
        fprintf(stderr, "bench_engine: %s\n", err.msg);
        return wk_err_exit_status(&err);
    }
    return 0;
#else
    (void)model;
    printf("bench_engine: built without CUDA (nvcc not found); nothing to time\n");
    return 0;
#endif
}
