/* Prefill attention kernels alone (exec/cuda/kernels_attn_prefill.cu), on a GPU: every kernel of
 * WIKV_CUDA_ATTN_PREFILL against a CPU oracle (double precision, sampled rows) and against the
 * mma.sync kernel (all rows) on small cases (GQA groups 1-4, head_dim 64 / 128, sliding windows,
 * absent slots masked and zero, a wholly absent head, garbage in absent slots), then timed on Llama-3.1-8B
 * shapes (32 query heads, 8 KV heads, head_dim 128) for a causal prefill of 4K-32K tokens in chunks,
 * as the engine runs it. Output lines:
 *   check <case> <kernel> rel_cpu <e> rel_mma <e> ok|FAIL
 *   bench <context> chunk <n> <kernel> ms_per_layer <t> tflops <r> x_mma <speed-up over mma.sync>
 * Exit status 1 when a check fails. usage: bench_attn_prefill [--check-only] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/cuda/kernels.cuh"

#define N_KERNELS 3 /* WK_CU_PREFILL_MMA, PIPE, PAIRS (kernels.cuh) */
static const char *const kernel_names[N_KERNELS] = {"mma", "pipe", "pairs"};

#define CK(x)                                                                                 \
    do {                                                                                      \
        cudaError_t e_ = (x);                                                                 \
        if (e_ != cudaSuccess) {                                                              \
            fprintf(stderr, "bench_attn_prefill: %s (line %d)\n", cudaGetErrorString(e_), __LINE__); \
            exit(2);                                                                          \
        }                                                                                     \
    } while (0)

typedef struct {
    const char *name;
    int hd, n_heads, n_kv, rows, pos0, cap, window, zero_mode;
    int absent; /* 0 none, 1 ranges and single slots (some holding garbage), 2 KV head 1 wholly absent */
} attn_case;

static float uniform(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / 16777216.0f * 2.0f - 1.0f;
}

typedef struct {
    __half *q, *k, *v, *out;
    uint8_t *present;
} dev_bufs;

static void dev_alloc(dev_bufs *d, size_t nq, size_t nkv, size_t npres) {
    CK(cudaMalloc(&d->q, nq * 2));
    CK(cudaMalloc(&d->out, nq * 2));
    CK(cudaMalloc(&d->k, nkv * 2));
    CK(cudaMalloc(&d->v, nkv * 2));
    CK(cudaMalloc(&d->present, npres));
}

static void dev_free(dev_bufs *d) {
    cudaFree(d->q);
    cudaFree(d->out);
    cudaFree(d->k);
    cudaFree(d->v);
    cudaFree(d->present);
}

/* Oracle for row r, head h: softmax over the visible slots (absent: skipped, or K = V = 0 in zero
 * mode) of q.k / sqrt(hd), times V, in double. */
static void cpu_row(const attn_case *c, const __half *q, const __half *k, const __half *v, const uint8_t *pres, int r, int h,
                    double *o, double *sc) {
    int p = c->pos0 + r, lo = c->window > 0 && p - c->window + 1 > 0 ? p - c->window + 1 : 0, kh = h / (c->n_heads / c->n_kv);
    size_t qd = (size_t)c->n_heads * c->hd;
    double mx = -INFINITY, l = 0;
    for (int t = lo; t <= p; t++) {
        size_t slot = (size_t)kh * c->cap + t;
        sc[t] = -INFINITY;
        if (!pres[slot] && !c->zero_mode) continue;
        double s = 0;
        for (int d = 0; pres[slot] && d < c->hd; d++) s += (double)__half2float(q[r * qd + h * c->hd + d]) * __half2float(k[slot * c->hd + d]);
        sc[t] = s / sqrt((double)c->hd);
        mx = fmax(mx, sc[t]);
    }
    for (int d = 0; d < c->hd; d++) o[d] = 0;
    for (int t = lo; t <= p; t++) {
        size_t slot = (size_t)kh * c->cap + t;
        if (sc[t] == -INFINITY) continue;
        double w = exp(sc[t] - mx);
        l += w;
        for (int d = 0; pres[slot] && d < c->hd; d++) o[d] += w * __half2float(v[slot * c->hd + d]);
    }
    for (int d = 0; d < c->hd; d++) o[d] = l > 0 ? o[d] / l : 0.0;
}

static double rel_l2(double num, double den) { return isfinite(num) ? sqrt(num / (den > 0 ? den : 1)) : INFINITY; }

/* Runs every kernel on one case; returns the number of failing kernels. */
static int check_case(const attn_case *c) {
    size_t qd = (size_t)c->n_heads * c->hd, nq = (size_t)c->rows * qd, nkv = (size_t)c->n_kv * c->cap * c->hd;
    __half *q = (__half *)malloc(nq * 2), *k = (__half *)malloc(nkv * 2), *v = (__half *)malloc(nkv * 2);
    __half *out = (__half *)malloc(nq * 2), *out_mma = (__half *)malloc(nq * 2);
    uint8_t *pres = (uint8_t *)calloc((size_t)c->n_kv * c->cap, 1);
    double *ref = (double *)malloc(sizeof(double) * 32 * qd), *sc = (double *)malloc(sizeof(double) * (c->pos0 + c->rows));
    uint32_t seed = 12345;
    for (size_t i = 0; i < nq; i++) q[i] = __float2half(2.0f * uniform(&seed));
    for (size_t i = 0; i < nkv; i++) k[i] = __float2half(2.0f * uniform(&seed)), v[i] = __float2half(uniform(&seed));
    for (int kh = 0; kh < c->n_kv; kh++)
        for (int t = 0; t < c->pos0 + c->rows; t++) {
            int absent = (c->absent == 1 && ((t / 37) % 5 == 2 || t % 97 == 3)) || (c->absent == 2 && kh == 1);
            size_t slot = (size_t)kh * c->cap + t;
            pres[slot] = !absent;
            for (int d = 0; absent && c->absent == 1 && (t & 1) && d < c->hd; d++) /* what an absent slot may hold */
                k[slot * c->hd + d] = __float2half(1000.0f), v[slot * c->hd + d] = __float2half(-1000.0f);
        }
    int rows[32], n_rows = 0;
    for (int r = 0; r < c->rows && n_rows < 31; r += c->rows / 24 + 1) rows[n_rows++] = r;
    rows[n_rows++] = c->rows - 1;
    for (int i = 0; i < n_rows; i++)
        for (int h = 0; h < c->n_heads; h++) cpu_row(c, q, k, v, pres, rows[i], h, ref + i * qd + h * c->hd, sc);
    dev_bufs d;
    dev_alloc(&d, nq, nkv, (size_t)c->n_kv * c->cap);
    CK(cudaMemcpy(d.q, q, nq * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d.k, k, nkv * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d.v, v, nkv * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d.present, pres, (size_t)c->n_kv * c->cap, cudaMemcpyHostToDevice));
    int bad = 0;
    for (int kn = 0; kn < N_KERNELS; kn++) {
        wk_cu_attn_args a = {d.q, d.out, d.k, d.v, d.present, c->rows, c->pos0, c->n_heads, c->n_kv, c->hd, c->cap, c->window,
                             c->zero_mode, 0, kn};
        CK(cudaMemset(d.out, 0xff, nq * 2)); /* NaN: rows a kernel leaves unwritten show */
        wk_cu_attn_prefill(&a, 0);
        CK(cudaGetLastError());
        CK(cudaDeviceSynchronize());
        CK(cudaMemcpy(out, d.out, nq * 2, cudaMemcpyDeviceToHost));
        if (kn == 0) memcpy(out_mma, out, nq * 2);
        double num = 0, den = 0, num2 = 0, den2 = 0;
        for (int i = 0; i < n_rows; i++)
            for (size_t j = 0; j < qd; j++) {
                double g = __half2float(out[rows[i] * qd + j]), r = ref[i * qd + j];
                num += (g - r) * (g - r), den += r * r;
            }
        for (size_t j = 0; j < nq; j++) {
            double g = __half2float(out[j]), r = __half2float(out_mma[j]);
            num2 += (g - r) * (g - r), den2 += r * r;
        }
        double e1 = rel_l2(num, den), e2 = rel_l2(num2, den2);
        int ok = e1 < 5e-3 && e2 < 5e-3;
        bad += !ok;
        printf("check %-28s %-6s rel_cpu %.2e rel_mma %.2e %s\n", c->name, kernel_names[kn], e1, e2, ok ? "ok" : "FAIL");
    }
    dev_free(&d);
    free(q), free(k), free(v), free(out), free(out_mma), free(pres), free(ref), free(sc);
    return bad;
}

static float median3(float a, float b, float c) { return a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b)); }

/* Causal prefill of `context` tokens in chunks of `chunk` rows over one layer (Llama-3.1-8B
 * attention shapes), median of 3 after a warm-up, for every kernel. */
static void bench(int hd, int context, int chunk) {
    const int n_heads = 32, n_kv = 8;
    size_t qd = (size_t)n_heads * hd, nq = (size_t)chunk * qd, nkv = (size_t)n_kv * context * hd;
    dev_bufs d;
    dev_alloc(&d, nq, nkv, (size_t)n_kv * context);
    __half *h = (__half *)malloc((nq > nkv ? nq : nkv) * 2);
    uint32_t seed = 7;
    for (size_t i = 0; i < (nq > nkv ? nq : nkv); i++) h[i] = __float2half(uniform(&seed));
    CK(cudaMemcpy(d.q, h, nq * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d.k, h, nkv * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d.v, h, nkv * 2, cudaMemcpyHostToDevice));
    CK(cudaMemset(d.present, 1, (size_t)n_kv * context));
    double flop = 0; /* 4 hd flops (q.k and p.v) per visible (row, key) pair and head */
    for (long p = 1; p <= context; p++) flop += 4.0 * hd * n_heads * p;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    float base = 0;
    for (int kn = 0; kn < N_KERNELS; kn++) {
        float t[4];
        for (int rep = 0; rep < 4; rep++) {
            cudaEventRecord(e0, 0);
            for (int p0 = 0; p0 < context; p0 += chunk) {
                wk_cu_attn_args a = {d.q, d.out, d.k, d.v, d.present, chunk, p0, n_heads, n_kv, hd, context, 0, 0, 0, kn};
                wk_cu_attn_prefill(&a, 0);
            }
            cudaEventRecord(e1, 0);
            CK(cudaEventSynchronize(e1));
            CK(cudaGetLastError());
            cudaEventElapsedTime(&t[rep], e0, e1);
        }
        float m = median3(t[1], t[2], t[3]); /* t[0]: warm-up */
        if (kn == 0) base = m;
        printf("bench %6d chunk %6d hd %3d %-6s ms_per_layer %8.3f tflops %6.1f x_mma %5.2f\n", context, chunk, hd, kernel_names[kn], m,
               flop / (m * 1e9), base / m);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    free(h);
    dev_free(&d);
}

int main(int argc, char **argv) {
    static const attn_case cases[] = {
        {"hd128 g4 4096 rows", 128, 32, 8, 4096, 0, 4096, 0, 0, 0},
        {"hd128 g4 300@3000 absent", 128, 32, 8, 300, 3000, 4096, 0, 0, 1},
        {"hd128 g4 300@3000 absent zero", 128, 32, 8, 300, 3000, 4096, 0, 1, 1},
        {"hd64 g4 1000@77 window 300", 64, 8, 2, 1000, 77, 2048, 300, 0, 1},
        {"hd64 g3 129 absent zero", 64, 6, 2, 129, 0, 512, 0, 1, 1},
        {"hd128 g1 65@5 window 16", 128, 4, 4, 65, 5, 256, 16, 0, 0},
        {"hd128 g2 200@50 head absent", 128, 4, 2, 200, 50, 512, 0, 0, 2},
        {"hd128 g2 200@50 head absent z", 128, 4, 2, 200, 50, 512, 0, 1, 2},
        {"hd64 g1 9@1000 window 100", 64, 2, 2, 9, 1000, 1100, 100, 0, 1},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) bad += check_case(&cases[i]);
    printf("checks: %s (%d failing)\n", bad ? "FAIL" : "PASS", bad);
    if (argc > 1 && !strcmp(argv[1], "--check-only")) return bad != 0;
    bench(128, 4096, 4096);
    bench(128, 16384, 4096);
    bench(128, 32768, 4096);
    bench(128, 32768, 8192);
    bench(128, 32768, 32768);
    bench(64, 16384, 4096);
    return bad != 0;
}
