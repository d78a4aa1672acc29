/* GPU test (run on a GPU machine by tests/gpu/run.sh, not by CTest): the CUDA KV decoders
 * (kv/cuda/kv_decode_cuda.h) against the CPU decoders, byte for byte, on synthetic KV tensors with edge
 * values mixed in (all-zero vectors, fp16 extremes, a constant group): KIVI at 2/4/8 bits and two group
 * sizes, CacheGen at every level with and without anchor deltas over chunks that cut layers and tokens,
 * WiKV semantic batches at every refinement level (plain, delta, 2-opt reorder, several substream sizes,
 * all levels in one call so that later levels need a new wave). Mutated and truncated inputs must be
 * accepted by the GPU exactly when the CPU accepts them, never crash, and decode to the same bytes.
 * Prints one PASS/FAIL line per check; exits 0 with a SKIP line when there is no GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "kv/cachegen.h"
#include "kv/cuda/kv_decode_cuda.h"
#include "kv/kivi.h"
#include "kv/semantic.h"

typedef struct {
    int failures, checks;
} tally;

static void report(tally *t, int ok, const char *what) {
    t->checks++;
    if (!ok) t->failures++;
    printf("%s %s\n", ok ? "PASS" : "FAIL", what);
    fflush(stdout);
}

static void die(const char *what, const wk_err *err) {
    fprintf(stderr, "FAIL %s: %s\n", what, err->msg);
    exit(1);
}

static int same(const wk_kv_tensor *a, const wk_kv_tensor *b) {
    size_t n = wk_kv_tensor_elems(a) * sizeof(uint16_t);
    return memcmp(a->k, b->k, n) == 0 && memcmp(a->v, b->v, n) == 0;
}

/* Synthetic KV with edge cases: a zero vector, fp16 extremes (65504, subnormals), a constant run. */
static void make_tensor(wk_kv_tensor *t, int L, int H, int T, int D, uint64_t seed) {
    wk_err err;
    wk_kv_synth_params sp = wk_kv_synth_defaults(seed);
    if (wk_kv_tensor_alloc(t, L, H, T, D, &err) || wk_kv_tensor_synth(t, &sp, &err)) die("synth", &err);
    memset(t->k + wk_kv_row(t, 0, 0, 5), 0, sizeof(uint16_t) * D);
    memset(t->v + wk_kv_row(t, L - 1, H - 1, 7), 0, sizeof(uint16_t) * D);
    uint16_t *x = t->k + wk_kv_row(t, L - 1, 0, 3);
    x[0] = 0x7BFF; /* 65504 */
    x[1] = 0xFBFF;
    x[2] = 0x0001; /* smallest subnormal */
    uint16_t *y = t->v + wk_kv_row(t, 0, H - 1, 9);
    y[1] = 0x8003;
    for (int tt = 32; tt < 64 && tt < T; tt++) t->k[wk_kv_row(t, 0, 0, tt) + 1] = 0x3C00; /* constant group */
}

static void zero(wk_kv_tensor *t) {
    size_t n = wk_kv_tensor_elems(t) * sizeof(uint16_t);
    memset(t->k, 0, n);
    memset(t->v, 0, n);
}

/* Copies in, flips/truncates it: kind 0 flips 1..4 random bytes, 1 truncates, 2 sets a byte to random. */
static uint8_t *mutate(const uint8_t *in, size_t len, wk_rng *rng, size_t *out_len) {
    uint8_t *m = malloc(len + 1);
    memcpy(m, in, len);
    *out_len = len;
    int kind = (int)(wk_rng_next(rng) % 3);
    if (kind == 1) *out_len = (size_t)(wk_rng_next(rng) % len);
    else
        for (int i = 0, n = 1 + (int)(wk_rng_next(rng) % 4); i < n; i++) {
            size_t at = (size_t)(wk_rng_next(rng) % len);
            m[at] = kind == 0 ? (uint8_t)(m[at] ^ (1u << (wk_rng_next(rng) % 8))) : (uint8_t)wk_rng_next(rng);
        }
    return m;
}

/* ---- KIVI ---- */

static void test_kivi(tally *ty, wk_kv_cuda *g, const wk_kv_tensor *t, wk_kv_tensor *cpu, wk_kv_tensor *gpu) {
    static const wk_kivi_params ps[] = {{2, 32, 128}, {4, 32, 128}, {8, 32, 128}, {4, 16, 64}, {2, 16, 32}};
    wk_err err;
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        uint8_t *buf;
        size_t len;
        if (wk_kivi_encode(&ps[i], t, &buf, &len, &err)) die("kivi encode", &err);
        if (wk_kivi_decode(&ps[i], buf, len, cpu, &err)) die("kivi cpu decode", &err);
        int rc = wk_kv_cuda_kivi(g, &ps[i], buf, len, &err);
        if (!rc) rc = wk_kv_cuda_download(g, gpu, &err);
        char what[1400];
        snprintf(what, sizeof what, "kivi %d bits G%d R%d: GPU == CPU%s%s", ps[i].bits, ps[i].group, ps[i].residual,
                 rc ? ": " : "", rc ? err.msg : "");
        report(ty, !rc && same(cpu, gpu), what);
        rc = wk_kv_cuda_kivi(g, &ps[i], buf, len - 1, &err);
        snprintf(what, sizeof what, "kivi %d bits: truncated input is WK_EFORMAT", ps[i].bits);
        report(ty, rc == WK_EFORMAT, what);
        free(buf);
    }
}

/* ---- CacheGen ---- */

typedef struct {
    uint8_t **buf;
    size_t *len;
    int n;
} chunks;

static void chunks_free(chunks *c) {
    for (int i = 0; i < c->n; i++) free(c->buf[i]);
    free(c->buf);
    free(c->len);
}

/* Chunks of `tok` tokens over layer ranges of `lay` layers. */
static void cg_chunks(const wk_kv_tensor *t, const wk_cg_params *p, int tok, int lay, chunks *c) {
    wk_err err;
    int nt = (t->tokens + tok - 1) / tok, nl = (t->layers + lay - 1) / lay;
    c->n = nt * nl;
    c->buf = calloc((size_t)c->n, sizeof *c->buf);
    c->len = calloc((size_t)c->n, sizeof *c->len);
    for (int i = 0; i < nt; i++)
        for (int j = 0; j < nl; j++) {
            int t0 = i * tok, l0 = j * lay, k = i * nl + j;
            int ntok = t->tokens - t0 < tok ? t->tokens - t0 : tok, nlay = t->layers - l0 < lay ? t->layers - l0 : lay;
            if (wk_cg_encode(p, t, l0, nlay, t0, ntok, &c->buf[k], &c->len[k], NULL, &err)) die("cg encode", &err);
        }
}

static void test_cachegen(tally *ty, wk_kv_cuda *g, const wk_kv_tensor *t, wk_kv_tensor *cpu, wk_kv_tensor *gpu) {
    wk_err err;
    wk_rng rng;
    wk_rng_seed(&rng, 11);
    for (int delta = 0; delta < 2; delta++)
        for (int level = 0; level < WK_CG_LEVELS; level++) {
            wk_cg_params p = wk_cg_defaults();
            p.level = level;
            p.delta = delta;
            p.anchor_group = 7;
            p.stream_channels = level % 3 == 0 ? 8 : level % 3 == 1 ? 3 : 255; /* partial groups; one per head */
            p.table_bits = level == 3 ? 16 : 12;                              /* 2^16 totals: 32-bit tables */
            chunks c;
            cg_chunks(t, &p, 100, level % 2 ? 3 : t->layers, &c);
            zero(cpu);
            for (int i = 0; i < c.n; i++)
                if (wk_cg_decode(c.buf[i], c.len[i], cpu, &err)) die("cg cpu decode", &err);
            zero(gpu);
            if (wk_kv_cuda_upload(g, gpu, &err)) die("upload", &err);
            int rc = wk_kv_cuda_cachegen(g, c.n, (const uint8_t *const *)c.buf, c.len, &err);
            if (!rc) rc = wk_kv_cuda_download(g, gpu, &err);
            char what[1400];
            snprintf(what, sizeof what, "cachegen L%d%s G%d tb%d, %d chunks in one call: GPU == CPU%s%s", level,
                     delta ? " delta" : "", p.stream_channels, p.table_bits, c.n, rc ? ": " : "", rc ? err.msg : "");
            report(ty, !rc && same(cpu, gpu), what);
            /* mutations: accepted by both or refused by both; same bytes when accepted */
            int agree = 1, refused = 0, tries = 30;
            for (int m = 0; m < tries; m++) {
                size_t ml;
                int k = (int)(wk_rng_next(&rng) % (uint64_t)c.n);
                uint8_t *mb = mutate(c.buf[k], c.len[k], &rng, &ml);
                zero(cpu);
                zero(gpu);
                if (wk_kv_cuda_upload(g, gpu, &err)) die("upload", &err);
                int rc_cpu = wk_cg_decode(mb, ml, cpu, &err);
                const uint8_t *one = mb;
                int rc_gpu = wk_kv_cuda_cachegen(g, 1, &one, &ml, &err);
                if (!rc_gpu && wk_kv_cuda_download(g, gpu, &err)) die("download", &err);
                if ((rc_cpu == 0) != (rc_gpu == 0) || (rc_gpu && rc_gpu != WK_EFORMAT) ||
                    (!rc_cpu && !same(cpu, gpu))) {
                    if (agree) printf("  mutation %d: cpu %d gpu %d (%s)\n", m, rc_cpu, rc_gpu, err.msg);
                    agree = 0;
                }
                refused += rc_gpu != 0;
                free(mb);
            }
            snprintf(what, sizeof what,
                     "cachegen L%d%s: %d mutated chunks, GPU accepts exactly what CPU accepts (%d refused)", level,
                     delta ? " delta" : "", tries, refused);
            report(ty, agree, what);
            chunks_free(&c);
        }
}

/* The messages of malformed chunks name the chunk, layer, part and offset (the GPU parses the layout). */
static void test_cachegen_messages(tally *ty, wk_kv_cuda *g, const wk_kv_tensor *t) {
    wk_err err;
    wk_cg_params p = wk_cg_defaults();
    chunks c;
    cg_chunks(t, &p, 64, t->layers, &c);
    if (c.n < 2) {
        chunks_free(&c);
        return;
    }
    uint8_t *bad = malloc(c.len[1]);
    const uint8_t *list[2] = {c.buf[0], bad};
    uint32_t ntok = (uint32_t)c.buf[1][24] | (uint32_t)c.buf[1][25] << 8 | (uint32_t)c.buf[1][26] << 16 |
                    (uint32_t)c.buf[1][27] << 24;
    const size_t table = WK_CG_HEADER_BYTES + 4 + 4 * (size_t)ntok; /* layer 0's first table: lo, hi, freqs */
    const struct {
        size_t at;
        uint8_t flip; /* xor into the byte */
        const char *want;
    } cases[] = {{WK_CG_HEADER_BYTES + 3, 0x7F, "chunk 1: cachegen chunk: layer 0 at offset 28"},
                 {table + 2, 0x01, "layer 0 K head 0 channel 0: frequency table at offset"},
                 {table, 0xC0, "layer 0 frequency table at offset"},
                 {4, 0x0F, "chunk 1: cachegen chunk: offset 4 (version)"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(bad, c.buf[1], c.len[1]);
        bad[cases[i].at] ^= cases[i].flip;
        int rc = wk_kv_cuda_cachegen(g, 2, list, c.len, &err);
        char what[1400];
        snprintf(what, sizeof what, "cachegen message names \"%s\": got %d \"%s\"", cases[i].want, rc,
                 rc ? err.msg : "");
        report(ty, rc == WK_EFORMAT && strstr(err.msg, cases[i].want) != NULL, what);
    }
    free(bad);
    chunks_free(&c);
}

/* Input in page-locked memory and in 1..8 parts decodes to the same bytes. */
static void test_parts(tally *ty, wk_kv_cuda *g, const wk_kv_tensor *t, wk_kv_tensor *cpu, wk_kv_tensor *gpu) {
    wk_err err;
    wk_cg_params p = wk_cg_defaults();
    chunks c;
    cg_chunks(t, &p, 50, 2, &c);
    zero(cpu);
    for (int i = 0; i < c.n; i++)
        if (wk_cg_decode(c.buf[i], c.len[i], cpu, &err)) die("cg cpu decode", &err);
    size_t total = 0;
    for (int i = 0; i < c.n; i++) total += c.len[i];
    void *pinned;
    if (wk_kv_cuda_host_alloc(total, &pinned, &err)) die("host alloc", &err);
    const uint8_t **list = malloc(sizeof(uint8_t *) * (size_t)c.n);
    for (int i = 0, at = 0; i < c.n; at += (int)c.len[i], i++) {
        memcpy((uint8_t *)pinned + at, c.buf[i], c.len[i]);
        list[i] = (uint8_t *)pinned + at;
    }
    static const int parts[] = {1, 3, 8};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        zero(gpu);
        int rc = wk_kv_cuda_upload(g, gpu, &err);
        if (!rc) rc = wk_kv_cuda_set_parts(g, parts[i], &err);
        if (!rc) rc = wk_kv_cuda_cachegen(g, c.n, list, c.len, &err);
        if (!rc) rc = wk_kv_cuda_download(g, gpu, &err);
        char what[1400];
        snprintf(what, sizeof what, "cachegen %d chunks from page-locked memory in %d parts == CPU%s%s", c.n,
                 parts[i], rc ? ": " : "", rc ? err.msg : "");
        report(ty, !rc && same(cpu, gpu), what);
    }
    report(ty, wk_kv_cuda_set_parts(g, 9, &err) == WK_EINVAL, "9 parts is WK_EINVAL");
    wk_kivi_params kp = {2, 32, 64};
    uint8_t *buf;
    size_t len;
    if (wk_kivi_encode(&kp, t, &buf, &len, &err) || wk_kivi_decode(&kp, buf, len, cpu, &err)) die("kivi", &err);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        zero(gpu);
        int rc = wk_kv_cuda_upload(g, gpu, &err);
        if (!rc) rc = wk_kv_cuda_set_parts(g, parts[i], &err);
        if (!rc) rc = wk_kv_cuda_kivi(g, &kp, buf, len, &err);
        if (!rc) rc = wk_kv_cuda_download(g, gpu, &err);
        char what[1400];
        snprintf(what, sizeof what, "kivi in %d parts == CPU%s%s", parts[i], rc ? ": " : "", rc ? err.msg : "");
        report(ty, !rc && same(cpu, gpu), what);
    }
    if (wk_kv_cuda_set_parts(g, 4, &err)) die("parts", &err);
    free(buf);
    free(list);
    wk_kv_cuda_host_free(pinned);
    chunks_free(&c);
}

/* ---- semantic ---- */

typedef struct {
    uint8_t **buf;
    size_t *len;
    int n;
} batches;

static void batches_free(batches *b) {
    for (int i = 0; i < b->n; i++) free(b->buf[i]);
    free(b->buf);
    free(b->len);
}

/* Every level of every unit in batches of `bs` units, level by level: n = levels * ceil(N / bs). */
static void sem_batches(const wk_kv_tensor *t, const wk_sem_params *p, const uint32_t *order, int bs, batches *b) {
    wk_err err;
    int N = t->layers * t->kv_heads * t->tokens, per = (N + bs - 1) / bs;
    uint32_t *sent = malloc(sizeof(uint32_t) * (size_t)N);
    b->n = WK_SEM_MAX_LEVELS * per;
    b->buf = calloc((size_t)b->n, sizeof *b->buf);
    b->len = calloc((size_t)b->n, sizeof *b->len);
    for (int level = 0; level < WK_SEM_MAX_LEVELS; level++)
        for (int i = 0; i < per; i++) {
            int at = i * bs, n = N - at < bs ? N - at : bs, k = level * per + i;
            if (wk_sem_encode_batch(p, t, level ? sent + at : order + at, n, level, &b->buf[k], &b->len[k],
                                    level ? NULL : sent + at, NULL, &err))
                die("sem encode", &err);
        }
    free(sent);
}

static void test_semantic(tally *ty, wk_kv_cuda *g, const wk_kv_tensor *t, wk_kv_tensor *cpu, wk_kv_tensor *gpu) {
    wk_err err;
    int N = t->layers * t->kv_heads * t->tokens;
    float *imp = malloc(sizeof(float) * (size_t)N);
    uint32_t *order = malloc(sizeof(uint32_t) * (size_t)N);
    if (wk_sem_synth_importance(5, t->layers, t->kv_heads, t->tokens, imp, &err)) die("importance", &err);
    wk_sem_suffix_sum(imp, t->layers, t->kv_heads, t->tokens);
    if (wk_sem_order(imp, t->layers, t->kv_heads, t->tokens, order, &err)) die("order", &err);
    static const struct {
        int delta, reorder, stream_units, table_bits;
    } var[] = {{0, 0, 64, 12}, {1, 0, 64, 12}, {0, 1, 7, 12}, {1, 1, 1, 12}, {0, 0, 100000, 16}};
    wk_rng rng;
    wk_rng_seed(&rng, 12);
    for (size_t vi = 0; vi < sizeof var / sizeof var[0]; vi++) {
        wk_sem_params p = wk_sem_defaults(t->layers);
        p.delta = var[vi].delta;
        p.reorder = var[vi].reorder;
        p.stream_units = var[vi].stream_units;
        p.table_bits = var[vi].table_bits;
        batches b;
        sem_batches(t, &p, order, 300, &b);
        int per = b.n / WK_SEM_MAX_LEVELS;
        wk_sem_map m;
        if (wk_sem_map_alloc(&m, t->layers, t->kv_heads, t->tokens, &err)) die("map", &err);
        zero(cpu);
        zero(gpu);
        if (wk_kv_cuda_upload(g, gpu, &err)) die("upload", &err);
        wk_kv_cuda_sem_reset(g);
        char what[1400];
        /* level by level, one call per level, compared after each; the GPU parses these calls itself */
        int ok = 1, gpu_parsed = 1;
        for (int level = 0; level < WK_SEM_MAX_LEVELS && ok; level++) {
            for (int i = 0; i < per; i++)
                if (wk_sem_decode_batch(b.buf[level * per + i], b.len[level * per + i], cpu, &m, &err))
                    die("sem cpu decode", &err);
            int rc = wk_kv_cuda_semantic(g, per, (const uint8_t *const *)b.buf + level * per, b.len + level * per,
                                         &err);
            wk_kv_cuda_timing tm;
            wk_kv_cuda_last_timing(g, &tm);
            gpu_parsed = gpu_parsed && !tm.host_parse;
            if (!rc) rc = wk_kv_cuda_download(g, gpu, &err);
            if (rc) printf("  level %d: %s\n", level, err.msg);
            ok = !rc && same(cpu, gpu);
        }
        snprintf(what, sizeof what, "semantic%s%s S=%d: levels 0-3, one call per level, GPU == CPU after each",
                 p.delta ? " delta" : "", p.reorder ? " 2opt" : "", p.stream_units);
        report(ty, ok, what);
        snprintf(what, sizeof what, "semantic S=%d: one call per level is parsed on the GPU", p.stream_units);
        report(ty, ok && gpu_parsed, what);
        /* every level in one call: refinements of units decoded earlier in the call go to later waves */
        zero(gpu);
        if (wk_kv_cuda_upload(g, gpu, &err)) die("upload", &err);
        wk_kv_cuda_sem_reset(g);
        int rc = wk_kv_cuda_semantic(g, b.n, (const uint8_t *const *)b.buf, b.len, &err);
        wk_kv_cuda_timing tm;
        wk_kv_cuda_last_timing(g, &tm);
        if (!rc) rc = wk_kv_cuda_download(g, gpu, &err);
        snprintf(what, sizeof what, "semantic S=%d: all %d batches of all levels in one call == CPU (host-parsed: "
                 "units in several batches)%s%s", p.stream_units, b.n, rc ? ": " : "", rc ? err.msg : "");
        report(ty, !rc && tm.host_parse && same(cpu, gpu), what);
        /* a level-1 batch of units at level 3 is refused, and leaves the map as it was */
        rc = wk_kv_cuda_semantic(g, 1, (const uint8_t *const *)b.buf + per, b.len + per, &err);
        report(ty, rc == WK_EFORMAT, "semantic: a refinement for units at another level is WK_EFORMAT");
        /* mutated refinement and base batches against the state after level 0 (both sides) */
        int agree = 1, refused = 0, tries = 24;
        for (int k = 0; k < tries; k++) {
            int level = k % 2 ? 1 : 0, i = (int)(wk_rng_next(&rng) % (uint64_t)per);
            wk_sem_map mc;
            if (wk_sem_map_alloc(&mc, t->layers, t->kv_heads, t->tokens, &err)) die("map", &err);
            zero(cpu);
            zero(gpu);
            if (wk_kv_cuda_upload(g, gpu, &err)) die("upload", &err);
            wk_kv_cuda_sem_reset(g);
            if (level == 1) { /* level 0 of everything first, on both */
                for (int j = 0; j < per; j++)
                    if (wk_sem_decode_batch(b.buf[j], b.len[j], cpu, &mc, &err)) die("sem cpu decode", &err);
                if (wk_kv_cuda_semantic(g, per, (const uint8_t *const *)b.buf, b.len, &err)) die("sem gpu", &err);
            }
            size_t ml;
            uint8_t *mb = mutate(b.buf[level * per + i], b.len[level * per + i], &rng, &ml);
            /* a refused batch leaves tensor and map as they were on both sides */
            int rc_cpu = wk_sem_decode_batch(mb, ml, cpu, &mc, &err);
            const uint8_t *one = mb;
            int rc_gpu = wk_kv_cuda_semantic(g, 1, &one, &ml, &err);
            if (wk_kv_cuda_download(g, gpu, &err)) die("download", &err);
            int agree_now = (rc_cpu == 0) == (rc_gpu == 0) && (!rc_gpu || rc_gpu == WK_EFORMAT) && same(cpu, gpu);
            /* the next call must see the same map: decode the untouched batch on both */
            int rc2_cpu = wk_sem_decode_batch(b.buf[level * per + i], b.len[level * per + i], cpu, &mc, &err);
            int rc2_gpu = wk_kv_cuda_semantic(g, 1, (const uint8_t *const *)b.buf + level * per + i,
                                              b.len + level * per + i, &err);
            if (wk_kv_cuda_download(g, gpu, &err)) die("download", &err);
            agree_now = agree_now && (rc2_cpu == 0) == (rc2_gpu == 0) && same(cpu, gpu);
            if (!agree_now && agree)
                printf("  mutation %d: cpu %d/%d gpu %d/%d\n", k, rc_cpu, rc2_cpu, rc_gpu, rc2_gpu);
            agree = agree && agree_now;
            refused += rc_gpu != 0;
            free(mb);
            wk_sem_map_free(&mc);
        }
        snprintf(what, sizeof what,
                 "semantic S=%d: %d mutated batches, GPU accepts exactly what CPU accepts (%d refused)", p.stream_units,
                 tries, refused);
        report(ty, agree, what);
        wk_sem_map_free(&m);
        batches_free(&b);
    }
    free(imp);
    free(order);
}

int main(void) {
    /* the last shape's tables exceed shared memory: the kernels read them from global memory */
    static const int shapes[][4] = {{4, 2, 300, 64}, {3, 4, 160, 128}, {2, 1, 129, 32}, {1, 1, 40, 2048}};
    tally ty = {0, 0};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *sh = shapes[s];
        wk_kv_cuda *g;
        wk_err err;
        int rc = wk_kv_cuda_open(sh[0], sh[1], sh[2], sh[3], &g, &err);
        if (rc == WK_EUNSUPPORTED) {
            printf("SKIP test_kv_decode_gpu: %s\n", err.msg);
            return 0;
        }
        if (rc) die("open", &err);
        char dev[320];
        wk_kv_cuda_device(g, dev, sizeof dev);
        printf("== %s, tensor %dx%dx%dx%d\n", dev, sh[0], sh[1], sh[2], sh[3]);
        wk_kv_tensor t, cpu, gpu;
        make_tensor(&t, sh[0], sh[1], sh[2], sh[3], 1 + s);
        if (wk_kv_tensor_alloc(&cpu, sh[0], sh[1], sh[2], sh[3], &err) ||
            wk_kv_tensor_alloc(&gpu, sh[0], sh[1], sh[2], sh[3], &err))
            die("alloc", &err);
        test_kivi(&ty, g, &t, &cpu, &gpu);
        test_cachegen(&ty, g, &t, &cpu, &gpu);
        test_cachegen_messages(&ty, g, &t);
        test_parts(&ty, g, &t, &cpu, &gpu);
        test_semantic(&ty, g, &t, &cpu, &gpu);
        wk_kv_tensor_free(&t);
        wk_kv_tensor_free(&cpu);
        wk_kv_tensor_free(&gpu);
        wk_kv_cuda_free(g);
    }
    printf("%d of %d checks pass\n", ty.checks - ty.failures, ty.checks);
    return ty.failures ? 1 : 0;
}
