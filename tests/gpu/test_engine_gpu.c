/* GPU test (run on a GPU machine by tests/gpu/run.sh, not by CTest): the CUDA engine against the CPU
 * reference engine on tiny random models of every supported architecture: logits within fp16
 * tolerance, identical greedy continuations, masked/zero-mode attention over caches with absent and
 * externally written slots (the CPU engine is the oracle), KV access, and the attention export.
 * Prints one PASS/FAIL line per check and exits non-zero on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "exec/cuda/engine_cuda.h"
#include "exec/engine.h"
#include "exec/sampler.h"
#include "gpu_check.h"
#include "tiny_model.h"

/* ||a - b|| / ||b||. */
static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        if (isnan(a[i])) return INFINITY;
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

typedef struct {
    char dir[256];
    wk_engine *cpu, *gpu;
} pair;

static int open_pair(pair *p, const tiny_spec *sp, const wk_engine_opts *o) {
    wk_err err = {0};
    memset(p, 0, sizeof *p);
    if (tiny_tmpdir(p->dir, sizeof p->dir) || tiny_model_write(p->dir, sp)) return -1;
    if (wk_engine_cpu_open(p->dir, o, &p->cpu, &err)) {
        fprintf(stderr, "cpu open: %s\n", err.msg);
        return -1;
    }
    if (wk_engine_cuda_open(p->dir, o, &p->gpu, &err)) {
        fprintf(stderr, "cuda open: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static void close_pair(pair *p) {
    wk_engine_free(p->cpu);
    wk_engine_free(p->gpu);
    tiny_rmdir(p->dir);
}

static void make_prompt(int32_t *t, int n, int vocab, uint64_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (int32_t)((seed >> 33) % (uint64_t)vocab);
    }
}

/* Prefills the prompt in chunks on one engine; logits of the last token into out. */
static int prefill(wk_engine *e, const int32_t *tok, int n, int chunk, float *out) {
    wk_err err = {0};
    for (int p = 0; p < n; p += chunk) {
        int m = n - p < chunk ? n - p : chunk;
        wk_forward_args a = {.tokens = tok + p, .n_tokens = m, .pos = p, .logits = p + m == n ? out : NULL,
                             .logit_rows = p + m == n ? 1 : 0};
        if (e->ops->forward(e, &a, &err)) {
            fprintf(stderr, "forward (%s): %s\n", e->ops->name, err.msg);
            return -1;
        }
    }
    return 0;
}

/* Second-largest gap: top1 - top2 of a logits row (how close greedy is to a tie). */
static float top_margin(const float *l, int n) {
    float a = -INFINITY, b = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (l[i] > a) { b = a; a = l[i]; }
        else if (l[i] > b) b = l[i];
    }
    return a - b;
}

/* Prefill + greedy continuation on both engines: logits close, same tokens. The GPU alternates the
 * host path (forward + host argmax) and the device path (step_greedy). */
static void check_model(tally *t, const char *name, const tiny_spec *sp, int n_prompt, int chunk, int steps) {
    pair p;
    wk_engine_opts o = {.kv_capacity = n_prompt + steps + 8, .max_chunk = chunk};
    char what[160], det[1400];
    snprintf(what, sizeof what, "%s: prefill %d (chunk %d) logits", name, n_prompt, chunk);
    if (open_pair(&p, sp, &o)) {
        report(t, 0, what, "open failed");
        return;
    }
    int V = sp->vocab;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n_prompt);
    float *lc = malloc(sizeof(float) * (size_t)V), *lg = malloc(sizeof(float) * (size_t)V);
    make_prompt(tok, n_prompt, V, sp->seed + 11);
    int ok = prefill(p.cpu, tok, n_prompt, chunk, lc) == 0 && prefill(p.gpu, tok, n_prompt, chunk, lg) == 0;
    double re = ok ? rel_err(lg, lc, (size_t)V) : INFINITY;
    snprintf(det, sizeof det, "rel err %.2e", re);
    report(t, ok && re < 1e-2, what, det);
    int32_t a = wk_sampler_argmax(lc, V), b = wk_sampler_argmax(lg, V);
    int same = a == b, worst_step = -1;
    double worst = re;
    for (int s = 0; s < steps && same; s++) {
        wk_err err = {0};
        int pos = n_prompt + s;
        wk_forward_args fa = {.tokens = &a, .n_tokens = 1, .pos = pos, .logits = lc, .logit_rows = 1};
        if (p.cpu->ops->forward(p.cpu, &fa, &err)) break;
        int32_t nb;
        if (s % 2 == 0) {
            fa.logits = lg;
            if (p.gpu->ops->forward(p.gpu, &fa, &err)) break;
            nb = wk_sampler_argmax(lg, V);
            double r = rel_err(lg, lc, (size_t)V);
            if (r > worst) worst = r, worst_step = s;
        } else if (wk_engine_cuda_step_greedy(p.gpu, b, pos, &nb, &err)) {
            fprintf(stderr, "step_greedy: %s\n", err.msg);
            break;
        }
        a = wk_sampler_argmax(lc, V);
        b = nb;
        if (a != b) {
            same = 0;
            printf("  diverged at step %d: cpu %d gpu %d, cpu top-2 margin %.3g\n", s, a, b, top_margin(lc, V));
        }
    }
    snprintf(what, sizeof what, "%s: greedy %d steps identical", name, steps);
    snprintf(det, sizeof det, "worst decode rel err %.2e (step %d)", worst, worst_step);
    report(t, same && worst < 1e-2, what, det);
    free(tok);
    free(lc);
    free(lg);
    close_pair(&p);
}

/* Same presence edits and external writes on both engines, then a chunk (flash path) and decode
 * steps (split path) over the partial cache: logits must agree. */
static void check_masked(tally *t, const char *name, const tiny_spec *sp, wk_kv_absent_mode mode) {
    pair p;
    const int N = 150, C = 40, STEPS = 4;
    wk_engine_opts o = {.kv_capacity = N + C + STEPS + 4, .max_chunk = 64, .absent_mode = mode};
    char what[160], det[1400];
    snprintf(what, sizeof what, "%s %s: chunk over partial cache", name, mode == WK_KV_ABSENT_MASKED ? "masked" : "zero");
    if (open_pair(&p, sp, &o)) {
        report(t, 0, what, "open failed");
        return;
    }
    const wk_model_config *c = &p.cpu->cfg;
    int V = sp->vocab, hd = c->head_dim;
    int32_t tok[150 + 40 + 4];
    make_prompt(tok, N + C + STEPS, V, sp->seed + 5);
    float *lc = malloc(sizeof(float) * (size_t)V * C), *lg = malloc(sizeof(float) * (size_t)V * C);
    int ok = prefill(p.cpu, tok, N, 64, lc) == 0 && prefill(p.gpu, tok, N, 64, lg) == 0;
    wk_err err = {0};
    /* Holes: per (layer, head) a random range absent; layer 0 head 0 loses everything before N. */
    uint64_t rng = 99;
    for (int l = 0; l < c->n_layers && ok; l++)
        for (int h = 0; h < c->n_kv_heads; h++) {
            int t0 = (int)(tiny_rand(&rng) * 0.5f * N + 0.5f * N), len = (int)((tiny_rand(&rng) + 1.0f) * 30.0f);
            if (t0 < 0) t0 = 0;
            if (t0 + len > N) len = N - t0;
            if (l == 0 && h == 0) t0 = 0, len = N;
            ok &= p.cpu->ops->kv_set_present(p.cpu, l, h, t0, t0 + len, 0, &err) == 0;
            ok &= p.gpu->ops->kv_set_present(p.gpu, l, h, t0, t0 + len, 0, &err) == 0;
        }
    /* A whole token range absent in every layer/head, then partly restored by external writes of
     * coarsely quantized vectors (what a codec's decoder delivers). */
    ok &= p.cpu->ops->kv_set_present(p.cpu, -1, -1, 100, 120, 0, &err) == 0;
    ok &= p.gpu->ops->kv_set_present(p.gpu, -1, -1, 100, 120, 0, &err) == 0;
    float k[256], v[256], k2[256], v2[256];
    uint16_t kr[8 * 256], vr[8 * 256]; /* the GPU gets each (layer, head)'s 8 rows in one kv_write_rows */
    int read_ok = 1, pres_ok = 1;
    for (int l = 0; l < c->n_layers && ok; l++)
        for (int h = 0; h < c->n_kv_heads; h++) {
            for (int tt = 104; tt < 112; tt++) {
                ok &= p.cpu->ops->kv_read(p.cpu, l, h, tt, k, v, &err) == 0;
                ok &= p.gpu->ops->kv_read(p.gpu, l, h, tt, k2, v2, &err) == 0;
                read_ok &= rel_err(k2, k, (size_t)hd) < 2e-2 && rel_err(v2, v, (size_t)hd) < 2e-2;
                for (int i = 0; i < hd; i++) {
                    k[i] = roundf(k[i] * 4.0f) / 4.0f;
                    v[i] = roundf(v[i] * 4.0f) / 4.0f;
                }
                ok &= p.cpu->ops->kv_write(p.cpu, l, h, tt, k, v, &err) == 0;
                for (int i = 0; i < hd; i++) { /* quarters are exact in fp16 */
                    kr[(tt - 104) * hd + i] = wk_float_to_half(k[i]);
                    vr[(tt - 104) * hd + i] = wk_float_to_half(v[i]);
                }
            }
            ok &= wk_engine_kv_write_rows(p.gpu, l, h, 104, 8, kr, vr, &err) == 0;
        }
    for (int l = 0; l < c->n_layers; l++)
        for (int h = 0; h < c->n_kv_heads; h++)
            for (int tt = 0; tt < N; tt += 7)
                pres_ok &= p.cpu->ops->kv_is_present(p.cpu, l, h, tt) == p.gpu->ops->kv_is_present(p.gpu, l, h, tt);
    wk_forward_args fc = {.tokens = tok + N, .n_tokens = C, .pos = N, .logits = lc, .logit_rows = C};
    ok &= p.cpu->ops->forward(p.cpu, &fc, &err) == 0;
    fc.logits = lg;
    ok &= p.gpu->ops->forward(p.gpu, &fc, &err) == 0;
    double re = ok ? rel_err(lg, lc, (size_t)V * C) : INFINITY;
    snprintf(det, sizeof det, "rel err %.2e over %d rows%s", re, C, ok ? "" : err.msg);
    report(t, ok && re < 1e-2, what, det);
    double worst = 0;
    for (int s = 0; s < STEPS && ok; s++) {
        wk_forward_args fd = {.tokens = tok + N + C + s, .n_tokens = 1, .pos = N + C + s, .logits = lc, .logit_rows = 1};
        ok &= p.cpu->ops->forward(p.cpu, &fd, &err) == 0;
        fd.logits = lg;
        ok &= p.gpu->ops->forward(p.gpu, &fd, &err) == 0;
        double r = rel_err(lg, lc, (size_t)V);
        if (r > worst) worst = r;
    }
    snprintf(what, sizeof what, "%s %s: decode over partial cache", name, mode == WK_KV_ABSENT_MASKED ? "masked" : "zero");
    snprintf(det, sizeof det, "worst rel err %.2e", worst);
    report(t, ok && worst < 1e-2, what, det);
    snprintf(what, sizeof what, "%s: kv_read matches CPU, kv_is_present matches CPU", name);
    report(t, ok && read_ok && pres_ok, what, "");
    free(lc);
    free(lg);
    close_pair(&p);
}

static void check_export(tally *t, const char *name, const tiny_spec *sp) {
    pair p;
    const int N = 130, ROWS = 8;
    wk_engine_opts o = {.kv_capacity = N, .max_chunk = 48};
    char what[160], det[128];
    snprintf(what, sizeof what, "%s: attention export", name);
    if (open_pair(&p, sp, &o)) {
        report(t, 0, what, "open failed");
        return;
    }
    size_t n = (size_t)p.cpu->cfg.n_layers * p.cpu->cfg.n_kv_heads * N;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    int32_t tok[130];
    make_prompt(tok, N, sp->vocab, 3);
    wk_err err = {0};
    int ok = wk_engine_attention(p.cpu, tok, N, ROWS, a, &err) == 0 && wk_engine_attention(p.gpu, tok, N, ROWS, b, &err) == 0;
    float md = 0;
    for (size_t i = 0; i < n && ok; i++) md = fmaxf(md, fabsf(a[i] - b[i]));
    snprintf(det, sizeof det, "max abs diff %.2e", md);
    report(t, ok && md < 5e-3, what, det);
    free(a);
    free(b);
    close_pair(&p);
}

static void check_errors(tally *t) {
    wk_engine *e = NULL;
    wk_err err = {0};
    int rc = wk_engine_cuda_open("synthetic:no-such-model", NULL, &e, &err);
    report(t, rc == WK_ENOTFOUND && e == NULL, "unknown synthetic model refused", err.msg);
    rc = wk_engine_cuda_open("/nonexistent/model/dir", NULL, &e, &err);
    report(t, rc < 0 && e == NULL, "missing model folder refused", err.msg);
}

int main(void) {
    tally t = {0, 0};
    /*                        arch               dim  hid  L heads kv vocab tie dtype seed extra */
    tiny_spec llama64 = {"LlamaForCausalLM", 256, 512, 2, 4, 2, 300, 0, "F32", 21, ""};
    tiny_spec llama128 = {"LlamaForCausalLM", 512, 768, 2, 4, 1, 300, 1, "BF16", 22, ""};
    tiny_spec qwen2 = {"Qwen2ForCausalLM", 256, 512, 2, 4, 2, 300, 0, "F16", 23, ""};
    tiny_spec qwen3 = {"Qwen3ForCausalLM", 256, 512, 2, 4, 4, 300, 1, "F32", 24, ""};
    tiny_spec mistral = {"MistralForCausalLM", 256, 512, 2, 4, 2, 300, 0, "F32", 25, "\"sliding_window\": 48,"};
    tiny_spec odd = {"LlamaForCausalLM", 96, 192, 2, 4, 2, 300, 0, "F32", 26, ""};
    tiny_spec small = {"LlamaForCausalLM", 32, 64, 2, 4, 2, 97, 0, "F32", 7, ""};
    check_errors(&t);
    check_model(&t, "llama hd64 gqa2", &llama64, 200, 64, 24);
    check_model(&t, "llama hd128 gqa4 tied bf16", &llama128, 200, 64, 24);
    check_model(&t, "qwen2 bias f16", &qwen2, 200, 64, 24);
    check_model(&t, "qwen3 qk-norm", &qwen3, 200, 64, 24);
    check_model(&t, "mistral window 48", &mistral, 200, 64, 24);
    check_model(&t, "llama hd24 (split kernel prefill)", &odd, 120, 40, 16);
    check_model(&t, "llama hd8", &small, 60, 16, 16);
    check_model(&t, "llama hd128 long", &llama128, 1500, 512, 8);
    /* Few splits: each warp of the tensor-core decode kernel walks several tiles (refilled buffers,
     * tiles before and after the wait for RoPE); engines read these variables when they open. */
    setenv("WIKV_CUDA_ATTN_SPLITS", "3", 1);
    check_model(&t, "llama hd128 long, 3 decode splits", &llama128, 1500, 512, 8);
    check_masked(&t, "llama hd64, 1 decode split", &llama64, WK_KV_ABSENT_ZERO);
    setenv("WIKV_CUDA_ATTN_SPLITS", "1", 1);
    check_masked(&t, "llama hd128, 1 decode split", &llama128, WK_KV_ABSENT_MASKED);
    unsetenv("WIKV_CUDA_ATTN_SPLITS");
    /* The CUDA-core decode kernel where the tensor-core one would run, the matrix-vector kernels
     * without the early weight stream, and the RoPE kernel in decode steps: all stay selectable, so
     * all stay checked. */
    setenv("WIKV_CUDA_ATTN_SIMT", "1", 1);
    setenv("WIKV_CUDA_GEMV_LATE", "1", 1);
    setenv("WIKV_CUDA_ROPE_KERNEL", "1", 1);
    check_model(&t, "llama hd64 gqa2 (CUDA-core decode, late matrix-vector, RoPE kernel)", &llama64, 200, 64, 24);
    check_masked(&t, "llama hd128 (CUDA-core decode, RoPE kernel)", &llama128, WK_KV_ABSENT_ZERO);
    unsetenv("WIKV_CUDA_ATTN_SIMT");
    unsetenv("WIKV_CUDA_GEMV_LATE");
    unsetenv("WIKV_CUDA_ROPE_KERNEL");
    check_masked(&t, "llama hd64", &llama64, WK_KV_ABSENT_MASKED);
    check_masked(&t, "llama hd64", &llama64, WK_KV_ABSENT_ZERO);
    check_masked(&t, "llama hd128", &llama128, WK_KV_ABSENT_MASKED);
    check_masked(&t, "llama hd128", &llama128, WK_KV_ABSENT_ZERO);
    check_masked(&t, "llama hd24", &odd, WK_KV_ABSENT_MASKED);
    check_masked(&t, "mistral window 48", &mistral, WK_KV_ABSENT_MASKED);
    check_export(&t, "llama hd64", &llama64);
    check_export(&t, "mistral window 48", &mistral);
    /* Every prefill kernel (WIKV_CUDA_ATTN_PREFILL; the checks above ran the default, auto): long prompts (many 64-key tiles per chunk),
     * GQA groups 4 / 2 / 1 (pairs falls back to pipe for odd groups), the sliding window, absent
     * slots in both modes. */
    static const char *const prefill_kernels[] = {"mma", "pipe", "pairs"};
    for (int k = 0; k < 3; k++) {
        char name[96];
        setenv("WIKV_CUDA_ATTN_PREFILL", prefill_kernels[k], 1);
        snprintf(name, sizeof name, "llama hd128 long (%s prefill)", prefill_kernels[k]);
        check_model(&t, name, &llama128, 1500, 512, 8);
        snprintf(name, sizeof name, "llama hd64 gqa2 (%s prefill)", prefill_kernels[k]);
        check_model(&t, name, &llama64, 200, 64, 8);
        snprintf(name, sizeof name, "qwen3 gqa1 (%s prefill)", prefill_kernels[k]);
        check_model(&t, name, &qwen3, 200, 64, 8);
        snprintf(name, sizeof name, "mistral window 48 (%s prefill)", prefill_kernels[k]);
        check_model(&t, name, &mistral, 200, 64, 8);
        snprintf(name, sizeof name, "llama hd128 (%s prefill)", prefill_kernels[k]);
        check_masked(&t, name, &llama128, WK_KV_ABSENT_MASKED);
        check_masked(&t, name, &llama128, WK_KV_ABSENT_ZERO);
        snprintf(name, sizeof name, "llama hd64 (%s prefill)", prefill_kernels[k]);
        check_masked(&t, name, &llama64, WK_KV_ABSENT_ZERO);
    }
    unsetenv("WIKV_CUDA_ATTN_PREFILL");
    printf("%s: %d of %d checks passed\n", t.failures ? "FAIL" : "PASS", t.checks - t.failures, t.checks);
    return t.failures ? 1 : 0;
}
