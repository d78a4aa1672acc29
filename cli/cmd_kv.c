/* `wikv kv stats|synth`: look at a stored KV tensor through every codec, and write synthetic ones. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/half.h"
#include "kv/cachegen.h"
#include "kv/kivi.h"
#include "kv/semantic.h"

#define NCODECS (2 + WK_CG_LEVELS + WK_SEM_MAX_LEVELS)

typedef struct {
    char name[24];
    double bytes;
    double *mse, *maxabs; /* [layers] */
} codec_row;

static int fail(const wk_err *err) {
    fprintf(stderr, "wikv kv: %s\n", err->msg);
    return wk_err_exit_status(err);
}

static void layer_errors(const wk_kv_tensor *a, const wk_kv_tensor *b, codec_row *r) {
    size_t per = wk_kv_tensor_elems(a) / (size_t)a->layers;
    for (int l = 0; l < a->layers; l++) {
        double s = 0, m = 0;
        for (size_t i = (size_t)l * per; i < (size_t)(l + 1) * per; i++) {
            double dk = fabs(wk_half_to_float(a->k[i]) - wk_half_to_float(b->k[i]));
            double dv = fabs(wk_half_to_float(a->v[i]) - wk_half_to_float(b->v[i]));
            s += dk * dk + dv * dv;
            m = fmax(m, fmax(dk, dv));
        }
        r->mse[l] = s / (2.0 * per);
        r->maxabs[l] = m;
    }
}

static int run_kivi(const wk_kv_tensor *t, wk_kv_tensor *u, int bits, codec_row *r, wk_err *err) {
    wk_kivi_params p = wk_kivi_defaults(bits);
    uint8_t *buf;
    size_t len;
    int rc = wk_kivi_encode(&p, t, &buf, &len, err);
    if (!rc) rc = wk_kivi_decode(&p, buf, len, u, err);
    if (!rc) free(buf);
    r->bytes = (double)len;
    return rc;
}

static int run_cachegen(const wk_kv_tensor *t, wk_kv_tensor *u, int level, int delta, int chunk, codec_row *r,
                        wk_err *err) {
    wk_cg_params p = wk_cg_defaults();
    p.level = level;
    p.delta = delta;
    r->bytes = 0;
    for (int t0 = 0; t0 < t->tokens; t0 += chunk) {
        int n = t->tokens - t0 < chunk ? t->tokens - t0 : chunk;
        uint8_t *buf;
        size_t len;
        int rc = wk_cg_encode(&p, t, 0, t->layers, t0, n, &buf, &len, NULL, err);
        if (!rc) rc = wk_cg_decode(buf, len, u, err);
        if (rc) return rc;
        free(buf);
        r->bytes += (double)len;
    }
    return 0;
}

/* WiKV levels 0..3 in synthetic-attention order; rows get cumulative bytes. */
static int run_wikv(const wk_kv_tensor *t, wk_kv_tensor *u, int batch, codec_row *rows, wk_err *err) {
    size_t N = (size_t)t->layers * t->kv_heads * t->tokens;
    float *imp = malloc(sizeof(float) * N);
    uint32_t *order = malloc(sizeof(uint32_t) * N), *sent = malloc(sizeof(uint32_t) * N);
    wk_sem_map m;
    if (!imp || !order || !sent || wk_sem_map_alloc(&m, t->layers, t->kv_heads, t->tokens, err)) {
        free(imp), free(order), free(sent);
        return wk_err_set(err, WK_ENOMEM, "out of memory");
    }
    int rc = wk_sem_synth_importance(1, t->layers, t->kv_heads, t->tokens, imp, err);
    wk_sem_suffix_sum(imp, t->layers, t->kv_heads, t->tokens);
    if (!rc) rc = wk_sem_order(imp, t->layers, t->kv_heads, t->tokens, order, err);
    wk_sem_params p = wk_sem_defaults(t->layers);
    double total = 0;
    for (int lv = 0; lv < WK_SEM_MAX_LEVELS && !rc; lv++) {
        for (size_t at = 0; at < N && !rc; at += (size_t)batch) {
            int n = (int)(N - at < (size_t)batch ? N - at : (size_t)batch);
            uint8_t *buf;
            size_t len;
            rc = wk_sem_encode_batch(&p, t, lv ? sent + at : order + at, n, lv, &buf, &len, lv ? NULL : sent + at,
                                     NULL, err);
            if (!rc) rc = wk_sem_decode_batch(buf, len, u, &m, err);
            if (!rc) free(buf);
            total += (double)len;
        }
        rows[lv].bytes = total;
        if (!rc) layer_errors(t, u, &rows[lv]);
    }
    wk_sem_map_free(&m);
    free(imp), free(order), free(sent);
    return rc;
}

static void stats_usage(FILE *f) {
    fprintf(f, "usage: wikv kv stats FILE.wkv [--chunk TOKENS] [--batch UNITS] [--delta]\n"
               "Codes the stored KV tensor with KIVI-2/4 (G32 R128), CacheGen levels 0-4 (chunks of --chunk tokens,\n"
               "default 1024; --delta: anchor-delta coding) and WiKV levels 0-3 (cumulative, batches of --batch units,\n"
               "default 4096, synthetic-attention order), decodes it back and prints bytes per token and the\n"
               "reconstruction error (MSE, max abs) overall and per layer.\n");
}

static void print_tables(const wk_kv_tensor *t, codec_row *rows) {
    double elems = (double)wk_kv_tensor_elems(t) * 2;
    printf("%-12s %14s %9s %8s %12s %10s\n", "codec", "bytes/token", "bits/val", "ratio", "mse", "max_abs");
    printf("%-12s %14.1f %9.3f %8.2f %12.3e %10.4f\n", "fp16", elems * 2 / t->tokens, 16.0, 1.0, 0.0, 0.0);
    for (int c = 0; c < NCODECS; c++) {
        double s = 0, m = 0;
        for (int l = 0; l < t->layers; l++) s += rows[c].mse[l], m = fmax(m, rows[c].maxabs[l]);
        printf("%-12s %14.1f %9.3f %8.2f %12.3e %10.4f\n", rows[c].name, rows[c].bytes / t->tokens,
               rows[c].bytes * 8 / elems, elems * 2 / rows[c].bytes, s / t->layers, m);
    }
    for (int which = 0; which < 2; which++) {
        printf("\n%s per layer\n%5s", which ? "max abs error" : "MSE", "layer");
        for (int c = 0; c < NCODECS; c++) printf(" %10s", rows[c].name);
        printf("\n");
        for (int l = 0; l < t->layers; l++) {
            printf("%5d", l);
            for (int c = 0; c < NCODECS; c++) printf(" %10.3e", which ? rows[c].maxabs[l] : rows[c].mse[l]);
            printf("\n");
        }
    }
}

static int kv_stats(int argc, char **argv) {
    int chunk = 1024, batch = 4096, delta = 0;
    static const struct option opts[] = {{"chunk", required_argument, 0, 'c'}, {"batch", required_argument, 0, 'b'},
                                         {"delta", no_argument, 0, 'd'},       {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "c:b:dh", opts, NULL)) != -1) {
        if (o == 'c') chunk = atoi(optarg);
        else if (o == 'b') batch = atoi(optarg);
        else if (o == 'd') delta = 1;
        else {
            stats_usage(o == 'h' ? stdout : stderr);
            return o == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1 || chunk < 1 || batch < 1) {
        stats_usage(stderr);
        return 2;
    }
    wk_kv_tensor t, u;
    wk_err err;
    if (wk_kv_tensor_read(argv[optind], &t, &err)) return fail(&err);
    if (wk_kv_tensor_alloc(&u, t.layers, t.kv_heads, t.tokens, t.head_dim, &err)) return fail(&err);
    codec_row rows[NCODECS];
    double *store = calloc((size_t)NCODECS * 2 * t.layers, sizeof(double));
    if (!store) return 1;
    for (int c = 0; c < NCODECS; c++) {
        rows[c].mse = store + (size_t)c * 2 * t.layers;
        rows[c].maxabs = rows[c].mse + t.layers;
        if (c < 2) snprintf(rows[c].name, sizeof rows[c].name, "kivi%d", 2 + 2 * c);
        else if (c < 2 + WK_CG_LEVELS) snprintf(rows[c].name, sizeof rows[c].name, "cachegen%d", c - 2);
        else snprintf(rows[c].name, sizeof rows[c].name, "wikv%d", c - 2 - WK_CG_LEVELS);
    }
    int rc = 0;
    for (int c = 0; c < 2 + WK_CG_LEVELS && !rc; c++) {
        rc = c < 2 ? run_kivi(&t, &u, 2 + 2 * c, &rows[c], &err)
                   : run_cachegen(&t, &u, c - 2, delta, chunk, &rows[c], &err);
        if (!rc) layer_errors(&t, &u, &rows[c]);
    }
    if (!rc) {
        memset(u.k, 0, wk_kv_tensor_elems(&u) * 2);
        memset(u.v, 0, wk_kv_tensor_elems(&u) * 2);
        rc = run_wikv(&t, &u, batch, rows + 2 + WK_CG_LEVELS, &err);
    }
    if (!rc) {
        printf("%s: layers %d, kv_heads %d, tokens %d, head_dim %d\n", argv[optind], t.layers, t.kv_heads, t.tokens,
               t.head_dim);
        print_tables(&t, rows);
    }
    free(store);
    wk_kv_tensor_free(&t);
    wk_kv_tensor_free(&u);
    return rc ? fail(&err) : 0;
}

static int kv_synth(int argc, char **argv) {
    int layers = 4, heads = 8, tokens = 512, dim = 128;
    long long seed = 1;
    const char *out = NULL;
    static const struct option opts[] = {
        {"layers", required_argument, 0, 'l'}, {"kv-heads", required_argument, 0, 'k'},
        {"tokens", required_argument, 0, 't'}, {"head-dim", required_argument, 0, 'd'},
        {"seed", required_argument, 0, 's'},   {"output", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    const char *usage = "usage: wikv kv synth [--layers 4] [--kv-heads 8] [--tokens 512] [--head-dim 128] [--seed 1] "
                        "-o FILE.wkv\nWrites a synthetic KV tensor (model documented in kv/kv_tensor.h).\n";
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "l:k:t:d:s:o:h", opts, NULL)) != -1) {
        if (o == 'l') layers = atoi(optarg);
        else if (o == 'k') heads = atoi(optarg);
        else if (o == 't') tokens = atoi(optarg);
        else if (o == 'd') dim = atoi(optarg);
        else if (o == 's') seed = atoll(optarg);
        else if (o == 'o') out = optarg;
        else {
            fputs(usage, o == 'h' ? stdout : stderr);
            return o == 'h' ? 0 : 2;
        }
    }
    if (!out || optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    wk_kv_tensor t;
    wk_err err;
    wk_kv_synth_params p = wk_kv_synth_defaults((uint64_t)seed);
    if (wk_kv_tensor_alloc(&t, layers, heads, tokens, dim, &err) || wk_kv_tensor_synth(&t, &p, &err) ||
        wk_kv_tensor_write(&t, out, &err)) {
        wk_kv_tensor_free(&t);
        return fail(&err);
    }
    wk_kv_tensor_free(&t);
    return 0;
}

int wk_cmd_kv(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "stats") == 0) return kv_stats(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "synth") == 0) return kv_synth(argc - 1, argv + 1);
    int help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    fprintf(help ? stdout : stderr, "usage: wikv kv stats FILE.wkv [--chunk N] [--batch N] [--delta]\n"
                                    "       wikv kv synth [--layers L] [--kv-heads H] [--tokens T] [--head-dim D] "
                                    "[--seed S] -o FILE.wkv\n");
    return help ? 0 : 2;
}
