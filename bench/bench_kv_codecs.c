/* Bits per value, reconstruction error and encode/decode speed of every KV codec and level, on a synthetic
 * KV tensor (kv_tensor.h model) or on a stored .wkv file. Speeds are MB of fp16 KV per second; the fp16
 * copy row is the speed baseline measured in the same run, x_fp16 the size ratio against fp16.
 * usage: bench_kv_codecs [--layers L] [--heads H] [--tokens T] [--head-dim D] [--batch UNITS] [FILE.wkv] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/half.h"
#include "kv/cachegen.h"
#include "kv/codec_size.h"
#include "kv/kivi.h"
#include "kv/semantic.h"

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

int main(int argc, char **argv) {
    int L = 8, H = 8, T = 1024, D = 128, batch = 4096, chunk = 1024;
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--layers") == 0) L = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--heads") == 0) H = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--tokens") == 0) T = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--head-dim") == 0) D = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--batch") == 0) batch = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--chunk") == 0) chunk = atoi(argv[++i]);
        else if (argv[i][0] != '-') file = argv[i];
        else {
            fprintf(stderr, "usage: bench_kv_codecs [--layers L] [--heads H] [--tokens T] [--head-dim D] "
                            "[--batch UNITS] [--chunk TOKENS] [FILE.wkv]\n");
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
        if (wk_kv_tensor_synth(&t, &sp, &err)) return die(&err);
    }
    if (wk_kv_tensor_alloc(&u, t.layers, t.kv_heads, t.tokens, t.head_dim, &err)) return die(&err);
    printf("KV %s: layers %d, kv_heads %d, tokens %d, head_dim %d (%.1f MB fp16)\n", file ? file : "synthetic",
           t.layers, t.kv_heads, t.tokens, t.head_dim, wk_kv_tensor_elems(&t) * 4 / 1e6);
    printf("%-28s %8s %7s %12s %9s %10s %10s\n", "codec", "bits/val", "x_fp16", "mse", "max_abs", "enc_MB/s",
           "dec_MB/s");
    size_t n = wk_kv_tensor_elems(&t);
    double a = now();
    for (int rep = 0; rep < 10; rep++) {
        memcpy(u.k, t.k, 2 * n);
        memcpy(u.v, t.v, 2 * n);
    }
    double c = (now() - a) / 10;
    row("fp16 copy (baseline)", &t, &u, 4 * n, c, c);
    for (int bits = 2; bits <= 4; bits += 2) {
        wk_kivi_params p = wk_kivi_defaults(bits);
        uint8_t *buf;
        size_t len;
        double t0 = now();
        if (wk_kivi_encode(&p, &t, &buf, &len, &err)) return die(&err);
        double t1 = now();
        if (wk_kivi_decode(&p, buf, len, &u, &err)) return die(&err);
        char name[32];
        snprintf(name, sizeof name, "kivi-%d G32 R128", bits);
        row(name, &t, &u, len, t1 - t0, now() - t1);
        free(buf);
    }
    for (int delta = 0; delta < 2; delta++)
        for (int level = 0; level < WK_CG_LEVELS; level++)
            if (bench_cachegen(&t, &u, level, delta, chunk)) return 1;
    int N = t.layers * t.kv_heads * t.tokens;
    float *imp = malloc(sizeof(float) * (size_t)N);
    uint32_t *order = malloc(sizeof(uint32_t) * (size_t)N);
    if (wk_sem_synth_importance(2, t.layers, t.kv_heads, t.tokens, imp, &err)) return die(&err);
    wk_sem_suffix_sum(imp, t.layers, t.kv_heads, t.tokens);
    if (wk_sem_order(imp, t.layers, t.kv_heads, t.tokens, order, &err)) return die(&err);
    memset(u.k, 0, 2 * n);
    memset(u.v, 0, 2 * n);
    if (bench_wikv(&t, &u, order, batch, 0, 0) || bench_wikv(&t, &u, order, batch, 1, 0) ||
        bench_wikv(&t, &u, order, batch, 1, 1) || bench_wikv(&t, &u, order, batch, 0, 1))
        return 1;
    printf("(wikv units in synthetic-attention order, batches of %d units; cachegen chunks of %d tokens)\n", batch,
           chunk);
    free(imp);
    free(order);
    wk_kv_tensor_free(&t);
    wk_kv_tensor_free(&u);
    /* the simulator's size model: time to measure it for the Llama-3.1-8B shape */
    wk_codec_size_params cp = wk_codec_size_defaults(32, 8, 128);
    wk_codec_sizes cs;
    a = now();
    if (wk_codec_sizes_measure(&cp, &cs, &err)) return die(&err);
    double ms = (now() - a) * 1e3;
    double cg = 0, wk = 0;
    for (int l = 0; l < 32; l++) cg += wk_codec_bpt(&cs, WK_CODEC_CACHEGEN, 2, l), wk += wk_codec_bpt(&cs, WK_CODEC_WIKV, 0, l);
    printf("codec sizes for 32x8x128 (Llama-3.1-8B) measured in %.0f ms: cachegen L2 %.0f B/token, wikv L0 %.0f "
           "B/token, fp16 %.0f B/token\n", ms, cg, wk, 32 * cs.fp16_bpt);
    return 0;
}
