/* Bits per value, reconstruction error and encode/decode speed of every KV codec and level, on a synthetic
 * KV tensor (kv_tensor.h model) or on a stored .wkv file. Speeds are MB of fp16 KV per second; the fp16
 * copy row is the speed baseline measured in the same run, x_fp16 the size ratio against fp16.
 * With CUDA, a second table gives the GPU decoders (kv/cuda/kv_decode_cuda.h): every chunk / batch of a
 * level decoded in one call, rates in MB of compressed input per second, against a 1 Gbit/s link
 * (125 MB/s). `kernel`: the GPU kernels alone (input copied first, in one part). `e2e`: the wall clock of
 * the decode call, from the compressed bytes in host memory to the decoded fp16 tensor on the GPU: host
 * parse of headers (and, for WiKV, of tables and ids), descriptors, host->device copies and kernels, with the
 * input in page-locked memory (as a receiving client allocates it, wk_kv_cuda_host_alloc) copied in 4 parts
 * that overlap decoding; `e2e_pg` the same from ordinary (pageable) memory; `h2d` one plain copy of the input
 * from page-locked memory, the PCIe cap of any e2e. `==cpu` says the output bytes equal the CPU decoder's
 * (skipped with --no-verify).
 * usage: bench_kv_codecs [--layers L] [--heads H] [--tokens T] [--head-dim D] [--batch UNITS]
 *                        [--chunk TOKENS] [--gpu-only] [--no-verify] [--reps N] [FILE.wkv] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/half.h"
#include "core/parallel.h"
#include "kv/cachegen.h"
#include "kv/codec_size.h"
#include "kv/kivi.h"
#include "kv/semantic.h"
#ifdef WIKV_HAVE_CUDA
#include "kv/cuda/kv_decode_cuda.h"
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void error_of(const wk_kv_tensor *a, const wk_kv_tensor *b, double *mse, double *maxabs) {
    size_t n = wk_kv_tensor_elems(a);
    double s = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double dk = fabs(wk_half_to_float(a->k[i]) - wk_half_to_float(b->k[i]));
        double dv = fabs(wk_half_to_float(a->v[i]) - wk_half_to_float(b->v[i]));
        s += dk * dk + dv * dv;
        m = fmax(m, fmax(dk, dv));
    }
    *mse = s / (2.0 * n);
    *maxabs = m;
}

static void row(const char *name, const wk_kv_tensor *t, const wk_kv_tensor *u, size_t bytes, double enc_s,
                double dec_s) {
    double mse, mx, mb = wk_kv_tensor_elems(t) * 4 / 1e6;
    error_of(t, u, &mse, &mx);
    double bits = bytes * 8.0 / (2.0 * wk_kv_tensor_elems(t));
    printf("%-28s %8.3f %7.2f %12.3e %9.4f %10.1f %10.1f\n", name, bits, 16.0 / bits, mse, mx, mb / enc_s, mb / dec_s);
}

static int die(const wk_err *err) {
    fprintf(stderr, "bench_kv_codecs: %s\n", err->msg);
    return 1;
}

static int bench_cachegen(const wk_kv_tensor *t, wk_kv_tensor *u, int level, int delta, int chunk) {
    wk_cg_params p = wk_cg_defaults();
    p.level = level;
    p.delta = delta;
    wk_err err;
    size_t total = 0;
    double enc = 0, dec = 0;
    for (int t0 = 0; t0 < t->tokens; t0 += chunk) {
        int n = t->tokens - t0 < chunk ? t->tokens - t0 : chunk;
        uint8_t *buf;
        size_t len;
        double a = now();
        if (wk_cg_encode(&p, t, 0, t->layers, t0, n, &buf, &len, NULL, &err)) return die(&err);
        double b = now();
        if (wk_cg_decode(buf, len, u, &err)) return die(&err);
        dec += now() - b;
        enc += b - a;
        total += len;
        free(buf);
    }
    char name[64];
    snprintf(name, sizeof name, "cachegen L%d%s", level, delta ? " delta" : "");
    row(name, t, u, total, enc, dec);
    return 0;
}

static int bench_wikv(const wk_kv_tensor *t, wk_kv_tensor *u, const uint32_t *order, int batch, int delta,
                      int reorder) {
    int N = t->layers * t->kv_heads * t->tokens;
    wk_sem_params p = wk_sem_defaults(t->layers);
    p.delta = delta;
    p.reorder = reorder;
    wk_sem_map m;
    wk_err err;
    uint32_t *sent = malloc(sizeof(uint32_t) * (size_t)N);
    if (!sent || wk_sem_map_alloc(&m, t->layers, t->kv_heads, t->tokens, &err)) return 1;
    size_t total = 0;
    for (int level = 0; level < WK_SEM_MAX_LEVELS; level++) {
        double enc = 0, dec = 0;
        for (int at = 0; at < N; at += batch) {
            int n = N - at < batch ? N - at : batch;
            uint8_t *buf;
            size_t len;
            double a = now();
            if (wk_sem_encode_batch(&p, t, level ? sent + at : order + at, n, level, &buf, &len,
                                    level ? NULL : sent + at, NULL, &err))
                return die(&err);
            double b = now();
            if (wk_sem_decode_batch(buf, len, u, &m, &err)) return die(&err);
            dec += now() - b;
            enc += b - a;
            total += len;
            free(buf);
        }
        char name[64];
        snprintf(name, sizeof name, "wikv L%d%s%s (cumul.)", level, delta ? " delta" : "", reorder ? "+2opt" : "");
        row(name, t, u, total, enc, dec);
    }
    wk_sem_map_free(&m);
    free(sent);
    return 0;
}

/* The CPU table: every codec and level, timed on one thread. */
static int cpu_rows(const wk_kv_tensor *t, wk_kv_tensor *u, const uint32_t *order, int batch, int chunk) {
    wk_err err;
    size_t n = wk_kv_tensor_elems(t);
    printf("%-28s %8s %7s %12s %9s %10s %10s\n", "codec", "bits/val", "x_fp16", "mse", "max_abs", "enc_MB/s",
           "dec_MB/s");
    double a = now();
    for (int rep = 0; rep < 10; rep++) {
        memcpy(u->k, t->k, 2 * n);
        memcpy(u->v, t->v, 2 * n);
    }
    double c = (now() - a) / 10;
    row("fp16 copy (baseline)", t, u, 4 * n, c, c);
    for (int bits = 2; bits <= 4; bits += 2) {
        wk_kivi_params p = wk_kivi_defaults(bits);
        uint8_t *buf;
        size_t len;
        double t0 = now();
        if (wk_kivi_encode(&p, t, &buf, &len, &err)) return die(&err);
        double t1 = now();
        if (wk_kivi_decode(&p, buf, len, u, &err)) return die(&err);
        char name[32];
        snprintf(name, sizeof name, "kivi-%d G32 R128", bits);
        row(name, t, u, len, t1 - t0, now() - t1);
        free(buf);
    }
    for (int delta = 0; delta < 2; delta++)
        for (int level = 0; level < WK_CG_LEVELS; level++)
            if (bench_cachegen(t, u, level, delta, chunk)) return 1;
    memset(u->k, 0, 2 * n);
    memset(u->v, 0, 2 * n);
    if (bench_wikv(t, u, order, batch, 0, 0) || bench_wikv(t, u, order, batch, 1, 0) ||
        bench_wikv(t, u, order, batch, 1, 1) || bench_wikv(t, u, order, batch, 0, 1))
        return 1;
    printf("(wikv units in synthetic-attention order, batches of %d units; cachegen chunks of %d tokens)\n", batch,
           chunk);
    return 0;
}

/* ---- parallel work: large shapes (the GPU rows) are generated and encoded on all cores ---- */

typedef struct {
    wk_kv_tensor *t;
    const wk_kv_synth_params *p;
} synth_ctx;

static int synth_job(void *c, int layer, wk_err *err) {
    synth_ctx *s = c;
    return wk_kv_tensor_synth_layers(s->t, s->p, &layer, 1, err);
}

#ifdef WIKV_HAVE_CUDA
typedef struct {
    const wk_kv_tensor *t;
    wk_cg_params cg;
    wk_sem_params sem;
    const uint32_t *ids;
    int chunk, level; /* chunk: tokens per CacheGen chunk, or units per semantic batch */
    uint8_t **buf;
    size_t *len;
} enc_ctx;

static int cg_job(void *c, int i, wk_err *err) {
    enc_ctx *e = c;
    int t0 = i * e->chunk, n = e->t->tokens - t0 < e->chunk ? e->t->tokens - t0 : e->chunk;
    return wk_cg_encode(&e->cg, e->t, 0, e->t->layers, t0, n, &e->buf[i], &e->len[i], NULL, err);
}

static int sem_job(void *c, int i, wk_err *err) {
    enc_ctx *e = c;
    int N = e->t->layers * e->t->kv_heads * e->t->tokens, at = i * e->chunk;
    int n = N - at < e->chunk ? N - at : e->chunk;
    return wk_sem_encode_batch(&e->sem, e->t, e->ids + at, n, e->level, &e->buf[i], &e->len[i], NULL, NULL, err);
}

static void free_bufs(uint8_t **buf, int n) {
    for (int i = 0; i < n; i++) free(buf[i]);
}

static size_t sum_len(const size_t *len, int n) {
    size_t s = 0;
    for (int i = 0; i < n; i++) s += len[i];
    return s;
}

/* ---- GPU decoders ---- */

typedef struct {
    wk_kv_cuda *g;
    const wk_kv_tensor *t;
    wk_kv_tensor ref, got; /* CPU decoder output, GPU output */
    int reps, verify;
} gpu_bench;

/* The rates of one codec and level (seconds of the best call of each kind). */
typedef struct {
    double kernel, e2e, e2e_pageable, h2d;
    double layout; /* CacheGen: the layout kernel's part of `kernel` */
    int streams;
} gpu_times;

static void gpu_row(const char *name, size_t in_bytes, size_t fp16_bytes, const gpu_times *tm, int same) {
    double k = in_bytes / tm->kernel / 1e6, e = in_bytes / tm->e2e / 1e6, pg = in_bytes / tm->e2e_pageable / 1e6,
           h = in_bytes / tm->h2d / 1e6;
    printf("%-22s %8.1f %10.0f %8.0f %8.0f %8.0f %7.1f %7.1f %7.1f %7.1f %10.0f %7d %5.0f %5s\n", name,
           in_bytes / 1e6, k, e, pg, h, k / 125.0, e / 125.0, pg / 125.0, h / 125.0, fp16_bytes / tm->kernel / 1e6,
           tm->streams, 100 * tm->layout / tm->kernel, same < 0 ? "-" : same ? "yes" : "NO");
}

static int same_kv(const wk_kv_tensor *a, const wk_kv_tensor *b) {
    size_t n = wk_kv_tensor_elems(a) * 2;
    return memcmp(a->k, b->k, n) == 0 && memcmp(a->v, b->v, n) == 0;
}

static void zero_kv(wk_kv_tensor *t) {
    size_t n = wk_kv_tensor_elems(t) * 2;
    memset(t->k, 0, n);
    memset(t->v, 0, n);
}

/* A decode call on a list of buffers (one KIVI tensor, or chunks). */
typedef int (*gpu_call)(wk_kv_cuda *g, void *ctx, const uint8_t *const *buf, const size_t *len, wk_err *err);

/* Page-locked copies of n buffers, back to back in one allocation: *pinned[i] points into *base. */
static int pin_bufs(uint8_t *const *buf, const size_t *len, int n, void **base, uint8_t ***pinned, wk_err *err) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += len[i];
    *pinned = malloc(sizeof(uint8_t *) * (size_t)n);
    if (!*pinned) return wk_err_set(err, WK_ENOMEM, "out of memory");
    if (wk_kv_cuda_host_alloc(total, base, err)) {
        free(*pinned);
        return err->code;
    }
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        (*pinned)[i] = (uint8_t *)*base + at;
        memcpy((*pinned)[i], buf[i], len[i]);
        at += len[i];
    }
    return 0;
}

/* Best times over b->reps calls of each kind: kernels with one part, e2e with 4 parts from page-locked memory,
 * e2e from the given (pageable) buffers, and one plain page-locked copy. */
static int time_calls(gpu_bench *b, gpu_call call, void *ctx, uint8_t *const *buf, const size_t *len, int n,
                      gpu_times *tm, wk_err *err) {
    void *base;
    uint8_t **pinned;
    int rc = pin_bufs(buf, len, n, &base, &pinned, err);
    if (rc) return rc;
    size_t total = 0;
    for (int i = 0; i < n; i++) total += len[i];
    tm->kernel = tm->e2e = tm->e2e_pageable = tm->h2d = 1e30;
    tm->layout = 0;
    for (int kind = 0; !rc && kind < 3; kind++) {
        rc = wk_kv_cuda_set_parts(b->g, kind == 0 ? 1 : 4, err);
        for (int r = 0; !rc && r < b->reps; r++) {
            double a = now();
            rc = call(b->g, ctx, (const uint8_t *const *)(kind == 2 ? buf : pinned), len, err);
            double w = now() - a;
            wk_kv_cuda_timing t;
            wk_kv_cuda_last_timing(b->g, &t);
            double *best = kind == 0 ? &tm->kernel : kind == 1 ? &tm->e2e : &tm->e2e_pageable;
            if ((kind == 0 ? t.kernel_s : w) < *best) {
                *best = kind == 0 ? t.kernel_s : w;
                if (kind == 0) tm->layout = t.layout_s;
            }
            tm->streams = t.streams;
        }
    }
    for (int r = 0; !rc && r < b->reps; r++) {
        double s;
        rc = wk_kv_cuda_h2d_probe(b->g, base, total, &s, err);
        if (!rc && s < tm->h2d) tm->h2d = s;
    }
    wk_kv_cuda_host_free(base);
    free(pinned);
    return rc;
}

typedef struct {
    const wk_kivi_params *p;
} kivi_call_ctx;

static int kivi_call(wk_kv_cuda *g, void *c, const uint8_t *const *buf, const size_t *len, wk_err *err) {
    kivi_call_ctx *k = c;
    return wk_kv_cuda_kivi(g, k->p, buf[0], len[0], err);
}

typedef struct {
    int n;
} list_ctx;

static int cg_call(wk_kv_cuda *g, void *c, const uint8_t *const *buf, const size_t *len, wk_err *err) {
    list_ctx *l = c;
    return wk_kv_cuda_cachegen(g, l->n, buf, len, err);
}

/* 1: GPU tensor == CPU decoder's, 0: differs, -1: not checked. */
static int verdict(gpu_bench *b, wk_err *err) {
    if (!b->verify) return -1;
    if (wk_kv_cuda_download(b->g, &b->got, err)) return 0;
    return same_kv(&b->ref, &b->got);
}

typedef struct {
    const wk_kv_tensor *t;
    wk_kivi_params p;
    uint8_t *buf;
    size_t per;
} kivi_enc_ctx;

static int kivi_job(void *c, int i, wk_err *err) {
    kivi_enc_ctx *e = c;
    size_t at = wk_kv_row(e->t, i / e->t->kv_heads, i % e->t->kv_heads, 0), got;
    return wk_kivi_encode_head(&e->p, e->t->tokens, e->t->head_dim, e->t->k + at, e->t->v + at,
                               e->buf + (size_t)i * e->per, e->per, &got, err);
}

static int gpu_kivi(gpu_bench *b, int bits, wk_err *err) {
    wk_kivi_params p = wk_kivi_defaults(bits);
    int blocks = b->t->layers * b->t->kv_heads;
    size_t per = (size_t)wk_kivi_bytes(&p, b->t->tokens, b->t->head_dim), len = per * blocks;
    uint8_t *buf = malloc(len);
    if (!buf) return wk_err_set(err, WK_ENOMEM, "out of memory");
    kivi_enc_ctx ke = {b->t, p, buf, per}; /* the layout of wk_kivi_encode, (layer, head) blocks in parallel */
    if (wk_parallel_for(blocks, 0, kivi_job, &ke, err)) {
        free(buf);
        return err->code;
    }
    if (b->verify && wk_kivi_decode(&p, buf, len, &b->ref, err)) return err->code;
    kivi_call_ctx k = {&p};
    gpu_times tm;
    int rc = time_calls(b, kivi_call, &k, &buf, &len, 1, &tm, err);
    if (!rc) {
        char name[32];
        snprintf(name, sizeof name, "kivi-%d G32 R128", bits);
        gpu_row(name, len, wk_kv_tensor_elems(b->t) * 4, &tm, verdict(b, err));
    }
    free(buf);
    return rc;
}

static int gpu_cachegen(gpu_bench *b, int level, int delta, int chunk, wk_err *err) {
    int n = (b->t->tokens + chunk - 1) / chunk;
    enc_ctx e = {b->t, wk_cg_defaults(), wk_sem_defaults(1), NULL, chunk, 0, calloc((size_t)n, sizeof(uint8_t *)),
                 calloc((size_t)n, sizeof(size_t))};
    e.cg.level = level;
    e.cg.delta = delta;
    int rc = e.buf && e.len ? wk_parallel_for(n, 0, cg_job, &e, err) : wk_err_set(err, WK_ENOMEM, "out of memory");
    if (!rc && b->verify) {
        zero_kv(&b->ref);
        for (int i = 0; !rc && i < n; i++) rc = wk_cg_decode(e.buf[i], e.len[i], &b->ref, err);
    }
    list_ctx l = {n};
    gpu_times tm;
    if (!rc) rc = time_calls(b, cg_call, &l, e.buf, e.len, n, &tm, err);
    if (!rc) {
        char name[48];
        snprintf(name, sizeof name, "cachegen L%d%s", level, delta ? " delta" : "");
        gpu_row(name, sum_len(e.len, n), wk_kv_tensor_elems(b->t) * 4, &tm, verdict(b, err));
    }
    if (e.buf) free_bufs(e.buf, n);
    free(e.buf);
    free(e.len);
    return rc;
}

/* Every level of every unit, one call per level with all its batches; best times over reps of the whole
 * level sequence (each rep restarts from an empty map). */
static int gpu_semantic(gpu_bench *b, const uint32_t *order, int batch, wk_err *err) {
    const wk_kv_tensor *t = b->t;
    int N = t->layers * t->kv_heads * t->tokens, n = (N + batch - 1) / batch, rc = 0;
    uint8_t **buf = calloc((size_t)n * WK_SEM_MAX_LEVELS, sizeof(uint8_t *));
    size_t *len = calloc((size_t)n * WK_SEM_MAX_LEVELS, sizeof(size_t));
    if (!buf || !len) rc = wk_err_set(err, WK_ENOMEM, "out of memory");
    /* no reorder: the sent order of every level is the semantic order */
    for (int level = 0; !rc && level < WK_SEM_MAX_LEVELS; level++) {
        enc_ctx e = {t, wk_cg_defaults(), wk_sem_defaults(t->layers), order, batch, level, buf + level * n,
                     len + level * n};
        rc = wk_parallel_for(n, 0, sem_job, &e, err);
    }
    gpu_times tm[WK_SEM_MAX_LEVELS];
    int same[WK_SEM_MAX_LEVELS] = {0};
    wk_sem_map m = {0};
    void *base = NULL;
    uint8_t **pinned = NULL;
    if (!rc) rc = pin_bufs(buf, len, n * WK_SEM_MAX_LEVELS, &base, &pinned, err);
    if (!rc && b->verify) rc = wk_sem_map_alloc(&m, t->layers, t->kv_heads, t->tokens, err);
    if (!rc && b->verify) zero_kv(&b->ref);
    for (int level = 0; level < WK_SEM_MAX_LEVELS; level++)
        tm[level].kernel = tm[level].e2e = tm[level].e2e_pageable = tm[level].h2d = 1e30, tm[level].layout = 0;
    /* page-locked input, then pageable; the kernel time is the same call's (semantic calls are one part) */
    for (int kind = 0; !rc && kind < 2; kind++)
        for (int r = 0; !rc && r < b->reps; r++) {
            zero_kv(&b->got);
            rc = wk_kv_cuda_upload(b->g, &b->got, err);
            wk_kv_cuda_sem_reset(b->g);
            for (int level = 0; !rc && level < WK_SEM_MAX_LEVELS; level++) {
                uint8_t **src = (kind ? buf : pinned) + level * n;
                double a = now();
                rc = wk_kv_cuda_semantic(b->g, n, (const uint8_t *const *)src, len + level * n, err);
                double w = now() - a;
                wk_kv_cuda_timing t;
                wk_kv_cuda_last_timing(b->g, &t);
                if (t.kernel_s < tm[level].kernel) tm[level].kernel = t.kernel_s;
                double *best = kind ? &tm[level].e2e_pageable : &tm[level].e2e;
                if (w < *best) *best = w;
                tm[level].streams = t.streams;
                if (r > 0 || kind || rc) continue;
                same[level] = -1;
                for (int i = 0; b->verify && !rc && i < n; i++)
                    rc = wk_sem_decode_batch(buf[level * n + i], len[level * n + i], &b->ref, &m, err);
                if (b->verify && !rc) same[level] = verdict(b, err);
            }
        }
    for (int level = 0; !rc && level < WK_SEM_MAX_LEVELS; level++)
        for (int r = 0; !rc && r < b->reps; r++) {
            double sec;
            rc = wk_kv_cuda_h2d_probe(b->g, pinned[level * n], sum_len(len + level * n, n), &sec, err);
            if (!rc && sec < tm[level].h2d) tm[level].h2d = sec;
        }
    for (int level = 0; !rc && level < WK_SEM_MAX_LEVELS; level++) {
        char name[48];
        snprintf(name, sizeof name, "wikv L%d (this level)", level);
        gpu_row(name, sum_len(len + level * n, n), wk_kv_tensor_elems(t) * 4, &tm[level], same[level]);
    }
    wk_kv_cuda_host_free(base);
    free(pinned);
    wk_sem_map_free(&m);
    if (buf) free_bufs(buf, n * WK_SEM_MAX_LEVELS);
    free(buf);
    free(len);
    return rc;
}

static int bench_gpu(const wk_kv_tensor *t, const uint32_t *order, int chunk, int batch, int reps, int verify) {
    gpu_bench b = {NULL, t, {0}, {0}, reps < 1 ? 1 : reps, verify};
    wk_err err;
    int rc = wk_kv_cuda_open(t->layers, t->kv_heads, t->tokens, t->head_dim, &b.g, &err);
    if (rc == WK_EUNSUPPORTED) {
        printf("\ngpu decoders: skipped (%s)\n", err.msg);
        return 0;
    }
    if (rc) return die(&err);
    char dev[320];
    wk_kv_cuda_device(b.g, dev, sizeof dev);
    if (wk_kv_tensor_alloc(&b.ref, t->layers, t->kv_heads, t->tokens, t->head_dim, &err) ||
        wk_kv_tensor_alloc(&b.got, t->layers, t->kv_heads, t->tokens, t->head_dim, &err))
        return die(&err);
    printf("\ngpu decoders on %s (best of %d; MB/s of compressed input; x1Gb = that / 125 MB/s)\n"
           "  kernel: GPU kernels alone; e2e: wall clock of the decode call from compressed bytes in page-locked host\n"
           "  memory to decoded fp16 on the GPU (host parse, descriptors, copies in 4 parts overlapping the kernels);\n"
           "  e2e_pg: the same from pageable memory; h2d: one page-locked host->device copy of the input (PCIe cap)\n",
           dev, b.reps);
    printf("%-22s %8s %10s %8s %8s %8s %7s %7s %7s %7s %10s %7s %5s %5s\n", "codec", "in_MB", "kernel", "e2e",
           "e2e_pg", "h2d", "x1Gb_k", "x1Gb_e", "x1Gb_pg", "x1Gb_h", "fp16_MB/s", "streams", "lay%", "==cpu");
    for (int bits = 2; !rc && bits <= 4; bits += 2) rc = gpu_kivi(&b, bits, &err);
    for (int level = 0; !rc && level < WK_CG_LEVELS; level++) rc = gpu_cachegen(&b, level, 0, chunk, &err);
    if (!rc) rc = gpu_cachegen(&b, 2, 1, chunk, &err);
    if (!rc) rc = gpu_semantic(&b, order, batch, &err);
    printf("(cachegen chunks of %d tokens x all layers; wikv batches of %d units, %d units per substream; "
           "fp16_MB/s = decoded KV per kernel second; lay%% = CacheGen's layout kernel in `kernel`)\n",
           chunk, batch, wk_sem_defaults(1).stream_units);
    wk_kv_tensor_free(&b.ref);
    wk_kv_tensor_free(&b.got);
    wk_kv_cuda_free(b.g);
    return rc ? die(&err) : 0;
}
#endif

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* rows appear as they are measured, also through a pipe */
    int L = 8, H = 8, T = 1024, D = 128, batch = 4096, chunk = 1024, gpu_only = 0, verify = 1, reps = 3;
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--layers") == 0) L = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--heads") == 0) H = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--tokens") == 0) T = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--head-dim") == 0) D = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--batch") == 0) batch = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--chunk") == 0) chunk = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--reps") == 0) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--gpu-only") == 0) gpu_only = 1;
        else if (strcmp(argv[i], "--no-verify") == 0) verify = 0;
        else if (argv[i][0] != '-') file = argv[i];
        else {
            fprintf(stderr, "usage: bench_kv_codecs [--layers L] [--heads H] [--tokens T] [--head-dim D] "
                            "[--batch UNITS] [--chunk TOKENS] [--gpu-only] [--no-verify] [--reps N] [FILE.wkv]\n");
            return 2;
        }
    }
    wk_kv_tensor t, u;
    wk_err err;
    if (file) {
        if (wk_kv_tensor_read(file, &t, &err)) return die(&err);
    } else {
        if (wk_kv_tensor_alloc(&t, L, H, T, D, &err)) return die(&err);
        wk_kv_synth_params sp = wk_kv_synth_defaults(1);
        synth_ctx sc = {&t, &sp}; /* layer by layer on all cores: the same tensor as wk_kv_tensor_synth */
        if (wk_parallel_for(t.layers, 0, synth_job, &sc, &err)) return die(&err);
    }
    if (wk_kv_tensor_alloc(&u, t.layers, t.kv_heads, t.tokens, t.head_dim, &err)) return die(&err);
    printf("KV %s: layers %d, kv_heads %d, tokens %d, head_dim %d (%.1f MB fp16)\n", file ? file : "synthetic",
           t.layers, t.kv_heads, t.tokens, t.head_dim, wk_kv_tensor_elems(&t) * 4 / 1e6);
    int N = t.layers * t.kv_heads * t.tokens;
    float *imp = malloc(sizeof(float) * (size_t)N);
    uint32_t *order = malloc(sizeof(uint32_t) * (size_t)N);
    if (!imp || !order) return 1;
    if (wk_sem_synth_importance(2, t.layers, t.kv_heads, t.tokens, imp, &err)) return die(&err);
    wk_sem_suffix_sum(imp, t.layers, t.kv_heads, t.tokens);
    if (wk_sem_order(imp, t.layers, t.kv_heads, t.tokens, order, &err)) return die(&err);
    if (!gpu_only && cpu_rows(&t, &u, order, batch, chunk)) return 1;
#ifdef WIKV_HAVE_CUDA
    if (bench_gpu(&t, order, chunk, batch, reps, verify)) return 1;
#else
    (void)reps;
    (void)verify;
    printf("\ngpu decoders: not built (no CUDA compiler)\n");
#endif
    free(imp);
    free(order);
    wk_kv_tensor_free(&t);
    wk_kv_tensor_free(&u);
    if (gpu_only) return 0;
    /* the simulator's size model: time to measure it for the Llama-3.1-8B shape */
    wk_codec_size_params cp = wk_codec_size_defaults(32, 8, 128);
    wk_codec_sizes cs;
    double a = now();
    if (wk_codec_sizes_measure(&cp, &cs, &err)) return die(&err);
    double ms = (now() - a) * 1e3;
    double cg = 0, wk = 0;
    for (int l = 0; l < 32; l++) cg += wk_codec_bpt(&cs, WK_CODEC_CACHEGEN, 2, l), wk += wk_codec_bpt(&cs, WK_CODEC_WIKV, 0, l);
    printf("codec sizes for 32x8x128 (Llama-3.1-8B) measured in %.0f ms: cachegen L2 %.0f B/token, wikv L0 %.0f "
           "B/token, fp16 %.0f B/token\n", ms, cg, wk, 32 * cs.fp16_bpt);
    return 0;
}
