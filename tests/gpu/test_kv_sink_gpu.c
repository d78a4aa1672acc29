/* GPU test (run on a GPU machine by tests/gpu/run.sh, not by CTest): the device client's GPU sink
 * (exec/kv_sink.h "cuda": GPU decoders, vectors copied into a CUDA engine's cache) against its host sink
 * (the CPU decoders) on a tiny random model. For each policy's plan (kivi2, kivi4, cachegen with every
 * level, wikv with refinement levels, full), the KV units are encoded from the model's own prefill as the
 * server encodes them and decoded, in groups of up to 3 units, into three engines:
 *   CPU engine + host sink (the reference), CUDA engine A + host sink, CUDA engine B + GPU sink.
 * Halfway through, each engine recomputes the last prompt token (as the client's first EMIT does), and
 * one case starts with the first tokens computed by the engine itself (keep_below, as hybrid's prefix).
 * Checks: B's cache equals A's bit for bit in every slot (K, V, presence); B's cache equals the CPU
 * engine's in every slot the sinks wrote; greedy decoding afterwards gives the same tokens on B as on A
 * and as on the CPU engine. Prints one PASS/FAIL line per check; exits non-zero on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/cuda/engine_cuda.h"
#include "exec/engine.h"
#include "exec/kv_sink.h"
#include "exec/sampler.h"
#include "exec/stream.h"
#include "models/device.h"
#include "models/model_spec.h"
#include "sim/policy.h"
#include "gpu_check.h"
#include "tiny_model.h"

#define N_PROMPT 200
#define STEPS 6

typedef struct {
    const char *policy;
    int keep_below; /* context tokens the engines compute themselves before any unit */
} sink_case;

/* The units the server would send: every KV unit of the plan, one level per CacheGen chunk (chunk c at
 * level c mod WK_CG_LEVELS, so every level occurs). */
static int pick(const wk_stream_codec *c, const wk_unit *u) {
    if (u->kind != WK_UNIT_KV) return 0;
    return c->kind != WK_SCODEC_CG || u->level == u->group % WK_CG_LEVELS;
}

typedef struct {
    wk_engine *e;
    const char *sink_kind; /* "host" or NULL (the engine's best) */
    wk_kv_sink *sink;
    int32_t tokens[STEPS];
} lane;

/* Forward of n tokens at pos (no logits). */
static void forward(wk_engine *e, const int32_t *ids, int n, int pos) {
    wk_err err = {0};
    wk_forward_args fa = {.tokens = ids, .n_tokens = n, .pos = pos};
    if (wk_engine_forward(e, &fa, &err)) die("forward", &err);
}

static void greedy(wk_engine *e, const int32_t *prompt, int32_t *out) {
    wk_err err = {0};
    float *logits = malloc((size_t)e->cfg.vocab_size * sizeof *logits);
    int32_t tok = prompt[N_PROMPT - 1];
    for (int s = 0; s < STEPS; s++) {
        wk_forward_args fa = {.tokens = &tok, .n_tokens = 1, .pos = N_PROMPT - 1 + s, .logits = logits, .logit_rows = 1};
        if (wk_engine_forward(e, &fa, &err)) die("greedy step", &err);
        out[s] = tok = wk_sampler_argmax(logits, e->cfg.vocab_size);
    }
    free(logits);
}

/* Slots equal: presence and K/V bits. Counts mismatches of slots with t in [t0, t1) except skip_t. */
static long compare(wk_engine *a, wk_engine *b, int t0, int t1, int skip_t, char *first, size_t cap) {
    int d = a->cfg.head_dim;
    float ka[256], va[256], kb[256], vb[256];
    long bad = 0;
    wk_err err = {0};
    first[0] = '\0';
    for (int l = 0; l < a->cfg.n_layers; l++)
        for (int h = 0; h < a->cfg.n_kv_heads; h++)
            for (int t = t0; t < t1; t++) {
                if (t == skip_t) continue;
                int pa = a->ops->kv_is_present(a, l, h, t), pb = b->ops->kv_is_present(b, l, h, t);
                if (a->ops->kv_read(a, l, h, t, ka, va, &err) || b->ops->kv_read(b, l, h, t, kb, vb, &err))
                    die("kv_read", &err);
                if (pa != pb || memcmp(ka, kb, sizeof(float) * d) || memcmp(va, vb, sizeof(float) * d)) {
                    if (!bad)
                        snprintf(first, cap, "first at layer %d head %d token %d (present %d vs %d)", l, h, t, pa, pb);
                    bad++;
                }
            }
    return bad;
}

/* Decodes items [from, to) in groups of up to 3; 0 (and a FAIL line) on an error. */
static int decode_groups(tally *ty, const sink_case *sc, wk_kv_sink *sink, const wk_kv_sink_item *items, size_t from,
                         size_t to) {
    wk_err err = {0};
    for (size_t i = from; i < to; i += 3) {
        size_t m = to - i < 3 ? to - i : 3;
        if (wk_kv_sink_decode(sink, items + i, m, sc->keep_below, &err)) {
            char what[256];
            snprintf(what, sizeof what, "%s: decode through the %s sink", sc->policy, wk_kv_sink_kind(sink));
            report(ty, 0, what, err.msg);
            return 0;
        }
    }
    return 1;
}

static void run_case(tally *ty, const sink_case *sc, const char *dir, wk_engine *cpu, wk_engine *ga, wk_engine *gb,
                     const int32_t *prompt, const wk_kv_tensor *kv) {
    wk_err err = {0};
    wk_model_spec spec;
    char path[512], what[256], detail[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (wk_model_spec_load(path, "tiny", &spec, &err)) die("spec", &err);
    wk_device dev;
    if (wk_device_find("rtx5080-laptop", &dev, &err)) die("device", &err);
    wk_policy pol;
    wk_stream_codec codec;
    if (wk_policy_create(sc->policy, &pol, &err) || wk_stream_codec_for(&pol, &codec, &err)) die(sc->policy, &err);
    wk_request req = {&spec, &dev, N_PROMPT, STEPS, "passkey", 1, NULL, NULL};
    wk_plan plan;
    wk_plan_init(&plan);
    if (pol.ops->plan(pol.state, pol.param, &req, &plan, &err)) die("plan", &err);
    /* encode the units the server would send */
    wk_kv_sink_item *items = calloc(plan.n, sizeof *items);
    uint8_t **bufs = calloc(plan.n, sizeof *bufs);
    size_t n = 0, bytes = 0;
    for (size_t i = 0; i < plan.n; i++) {
        const wk_unit *u = &plan.units[i];
        if (!pick(&codec, u)) continue;
        size_t len;
        if (wk_stream_unit_encode(&codec, u, kv, prompt, N_PROMPT, &bufs[n], &len, &err)) die("encode", &err);
        items[n] = (wk_kv_sink_item){u, (uint32_t)i, bufs[n], len};
        bytes += len;
        n++;
    }
    lane lanes[3] = {{cpu, "host", NULL, {0}}, {ga, "host", NULL, {0}}, {gb, NULL, NULL, {0}}};
    for (int k = 0; k < 3; k++) {
        lane *ln = &lanes[k];
        ln->e->ops->kv_clear(ln->e);
        if (sc->keep_below > 0) forward(ln->e, prompt, sc->keep_below, 0);
        if (wk_kv_sink_open(ln->e, &codec, N_PROMPT, ln->sink_kind, &ln->sink, &err)) die("sink open", &err);
        int ok = decode_groups(ty, sc, ln->sink, items, 0, n / 2);
        forward(ln->e, prompt + N_PROMPT - 1, 1, N_PROMPT - 1); /* the first EMIT recomputes the last prompt token */
        if (ok) decode_groups(ty, sc, ln->sink, items, n / 2, n);
    }
    int want_cuda = codec.kind == WK_SCODEC_KIVI || codec.kind == WK_SCODEC_CG || codec.kind == WK_SCODEC_SEM;
    snprintf(what, sizeof what, "%s: engine B decodes through the %s sink", sc->policy, want_cuda ? "cuda" : "host");
    snprintf(detail, sizeof detail, "%zu units, %zu bytes", n, bytes);
    report(ty, strcmp(wk_kv_sink_kind(lanes[2].sink), want_cuda ? "cuda" : "host") == 0, what, detail);
    char first[160];
    long bad = compare(ga, gb, 0, gb->kv_capacity, -1, first, sizeof first);
    snprintf(what, sizeof what, "%s: GPU sink cache == host sink cache on the CUDA engine (every slot)", sc->policy);
    snprintf(detail, sizeof detail, "%ld slots differ; %s", bad, first);
    report(ty, bad == 0, what, bad ? detail : "");
    /* slots the engines computed themselves differ between fp32 and fp16 engines: compare what the sinks wrote */
    bad = compare(cpu, gb, sc->keep_below, N_PROMPT, N_PROMPT - 1, first, sizeof first);
    snprintf(what, sizeof what, "%s: GPU sink cache == CPU engine's (tokens %d..%d but the recomputed last)",
             sc->policy, sc->keep_below, N_PROMPT - 1);
    snprintf(detail, sizeof detail, "%ld slots differ; %s", bad, first);
    report(ty, bad == 0, what, bad ? detail : "");
    for (int k = 0; k < 3; k++) greedy(lanes[k].e, prompt, lanes[k].tokens);
    snprintf(what, sizeof what, "%s: greedy after it, GPU sink == host sink on the CUDA engine", sc->policy);
    report(ty, memcmp(lanes[1].tokens, lanes[2].tokens, sizeof lanes[1].tokens) == 0, what, "");
    snprintf(detail, sizeof detail, "%d %d %d .. vs %d %d %d ..", lanes[2].tokens[0], lanes[2].tokens[1],
             lanes[2].tokens[2], lanes[0].tokens[0], lanes[0].tokens[1], lanes[0].tokens[2]);
    snprintf(what, sizeof what, "%s: greedy after it, CUDA engine + GPU sink == CPU engine + host sink", sc->policy);
    int same = memcmp(lanes[0].tokens, lanes[2].tokens, sizeof lanes[0].tokens) == 0;
    report(ty, same, what, same ? "" : detail);
    for (int k = 0; k < 3; k++) wk_kv_sink_free(lanes[k].sink);
    for (size_t i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(items);
    wk_plan_free(&plan);
    wk_policy_free(&pol);
}

/* A corrupted unit is refused by the GPU sink as by the host sink. */
static void check_garbage(tally *ty, wk_engine *cpu, wk_engine *gb, const int32_t *prompt, const wk_kv_tensor *kv) {
    wk_err err = {0}, e1 = {0}, e2 = {0};
    wk_stream_codec codec = {.kind = WK_SCODEC_CG};
    wk_unit u = {.layer_first = 0, .layer_count = kv->layers, .token_first = 0, .token_count = 64, .kv_head = -1,
                 .kind = WK_UNIT_KV};
    uint8_t *buf;
    size_t len;
    if (wk_stream_unit_encode(&codec, &u, kv, prompt, N_PROMPT, &buf, &len, &err)) die("encode", &err);
    wk_kv_sink *a, *b;
    if (wk_kv_sink_open(cpu, &codec, N_PROMPT, "host", &a, &err) || wk_kv_sink_open(gb, &codec, N_PROMPT, NULL, &b, &err))
        die("sink open", &err);
    wk_kv_sink_item it = {&u, 7, buf, len - 3};
    int r1 = wk_kv_sink_decode(a, &it, 1, 0, &e1), r2 = wk_kv_sink_decode(b, &it, 1, 0, &e2);
    char detail[2200];
    snprintf(detail, sizeof detail, "host %d \"%s\", cuda %d \"%s\"", r1, e1.msg, r2, e2.msg);
    report(ty, r1 == WK_EFORMAT && r2 == WK_EFORMAT && strstr(e2.msg, "unit 7") != NULL,
           "truncated CacheGen unit: WK_EFORMAT naming the unit from both sinks", detail);
    wk_kv_sink_free(a);
    wk_kv_sink_free(b);
    free(buf);
}

int main(void) {
    tally ty = {0, 0};
    wk_err err = {0};
    char dir[256];
    tiny_spec sp = {"LlamaForCausalLM", 256, 512, 4, 4, 2, 300, 0, "F32", 31, ""}; /* head_dim 64, 2 KV heads */
    if (tiny_tmpdir(dir, sizeof dir) || tiny_model_write(dir, &sp)) {
        fprintf(stderr, "FAIL cannot write the tiny model\n");
        return 1;
    }
    wk_engine_opts o = {.kv_capacity = N_PROMPT + STEPS + 2};
    wk_engine *cpu, *ga, *gb;
    if (wk_engine_cpu_open(dir, &o, &cpu, &err) || wk_engine_cuda_open(dir, &o, &ga, &err) ||
        wk_engine_cuda_open(dir, &o, &gb, &err))
        die("engine open", &err);
    int32_t prompt[N_PROMPT];
    uint64_t seed = 99;
    for (int i = 0; i < N_PROMPT; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        prompt[i] = (int32_t)((seed >> 33) % (uint64_t)sp.vocab);
    }
    wk_kv_tensor kv; /* the context's KV as the server has it: the model's own prefill, fp16 */
    if (wk_stream_prefill_kv(cpu, NULL, prompt, N_PROMPT, &kv, NULL, &err)) die("prefill", &err);
    static const sink_case cases[] = {
        {"kivi2", 0},
        {"kivi4:group=32,residual=64", 0},
        {"cachegen:chunk=64", 0},
        {"wikv:batch=96,levels=2", 0},
        {"wikv:batch=64,levels=3", 40},
        {"full", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&ty, &cases[i], dir, cpu, ga, gb, prompt, &kv);
    check_garbage(&ty, cpu, gb, prompt, &kv);
    wk_kv_tensor_free(&kv);
    wk_engine_free(cpu);
    wk_engine_free(ga);
    wk_engine_free(gb);
    tiny_rmdir(dir);
    printf("%d of %d checks pass\n", ty.checks - ty.failures, ty.checks);
    return ty.failures ? 1 : 0;
}
