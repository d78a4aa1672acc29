/* Client-side decode rate of the real execution (exec/kv_sink.h): a policy's KV units for a synthetic KV
 * of a model's shape (kv_tensor.h model), encoded as the server encodes them, decoded into the engine's
 * KV cache by each sink. Rates are MB (1e6 bytes) of compressed input per second of wall clock, and that
 * rate over a 1 Gbit/s link (125 MB/s): above 1 the decoder keeps up with the link.
 *   gpu/unit   the engine's best sink (GPU decoders on a CUDA engine), one unit per call, as units arrive;
 *   gpu/group  the same, --group units per call (what a receiver does that decodes all that arrived);
 *   host       the CPU decoders of the host sink, one unit per call, on the same engine (the baseline,
 *              measured in the same run on the first units until --host-s seconds have passed);
 *   1Gb lag    the engine's best sink behind a 1 Gbit/s link: units arrive back to back at 125 MB/s and each
 *              call decodes all that arrived (as the receivers do); the lag is how long after the last
 *              unit arrived its decode ended, `calls` the decode calls that took.
 * CacheGen units are sent at one level (--cg-level) per chunk.
 * usage: bench_kv_sink [--model synthetic:llama-3.1-8b] [--backend cuda] [--tokens 8192] [--group 16]
 *                      [--host-s 2] [--cg-level 2] [--policies "kivi2;kivi4;cachegen;wikv:levels=2"] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/parallel.h"
#include "exec/engine.h"
#include "exec/kv_sink.h"
#include "exec/stream.h"
#include "models/device.h"
#include "models/model_spec.h"
#include "sim/policy.h"
#ifdef WIKV_HAVE_CUDA
#include "exec/cuda/engine_cuda.h"
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int die(const char *what, const wk_err *err) {
    fprintf(stderr, "bench_kv_sink: %s: %s\n", what, err->msg);
    return 1;
}

/* ---- parallel work: the synthetic KV and the encoding run on all cores ---- */

typedef struct {
    wk_kv_tensor *t;
    const wk_kv_synth_params *p;
} synth_ctx;

static int synth_job(void *c, int layer, wk_err *err) {
    synth_ctx *s = c;
    return wk_kv_tensor_synth_layers(s->t, s->p, &layer, 1, err);
}

typedef struct {
    const wk_stream_codec *codec;
    const wk_kv_tensor *kv;
    wk_kv_sink_item *items;
    uint8_t **bufs;
} enc_ctx;

static int enc_job(void *c, int i, wk_err *err) {
    enc_ctx *e = c;
    size_t len;
    int rc = wk_stream_unit_encode(e->codec, e->items[i].u, e->kv, NULL, 0, &e->bufs[i], &len, err);
    e->items[i].data = e->bufs[i];
    e->items[i].len = len;
    return rc;
}

/* ---- one policy ---- */

typedef struct {
    wk_engine *e;
    const wk_model_spec *spec;
    const wk_device *dev;
    const wk_kv_tensor *kv;
    int tokens, group, cg_level;
    double host_s;
} bench;

/* Decodes items through a fresh sink of `kind` (NULL: the engine's best), group units per call, until all
 * are done or max_s has passed; *bytes_done of input in *seconds. */
static int run_sink(const bench *b, const wk_stream_codec *c, const char *kind, const wk_kv_sink_item *items, size_t n,
                    int group, double max_s, size_t *bytes_done, size_t *units_done, double *seconds, char *got_kind,
                    wk_err *err) {
    wk_kv_sink *s;
    b->e->ops->kv_clear(b->e);
    int rc = wk_kv_sink_open(b->e, c, b->tokens, kind, &s, err);
    if (rc) return rc;
    snprintf(got_kind, 8, "%s", wk_kv_sink_kind(s));
#ifdef WIKV_HAVE_CUDA
    if (strcmp(b->e->ops->name, "cuda") == 0 && (rc = wk_engine_cuda_sync(b->e, err))) return rc;
#endif
    *bytes_done = *units_done = 0;
    double t0 = now();
    for (size_t i = 0; i < n && !rc; i += (size_t)group) {
        size_t m = n - i < (size_t)group ? n - i : (size_t)group;
        rc = wk_kv_sink_decode(s, items + i, m, 0, err);
        for (size_t j = 0; j < m; j++) *bytes_done += items[i + j].len;
        *units_done += m;
        if (now() - t0 > max_s) break;
    }
    *seconds = now() - t0;
    wk_kv_sink_free(s);
    return rc;
}

/* The client over a link of rate bytes/s: unit i is in when its last byte is (units back to back, from t = 0),
 * and each decode call takes every unit that is in and not yet decoded (as wk_policy_decode_arrived does).
 * *lag: seconds from the last unit's arrival to the end of its decode; *calls: decode calls made. */
static int run_paced(const bench *b, const wk_stream_codec *c, const wk_kv_sink_item *items, size_t n, double rate,
                     double *lag, size_t *calls, wk_err *err) {
    double *arrive = malloc((n ? n : 1) * sizeof *arrive), bytes = 0;
    if (!arrive) return wk_err_set(err, WK_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) arrive[i] = (bytes += (double)items[i].len) / rate;
    wk_kv_sink *s;
    b->e->ops->kv_clear(b->e);
    int rc = wk_kv_sink_open(b->e, c, b->tokens, NULL, &s, err);
    if (rc) {
        free(arrive);
        return rc;
    }
#ifdef WIKV_HAVE_CUDA
    if (strcmp(b->e->ops->name, "cuda") == 0) rc = wk_engine_cuda_sync(b->e, err);
#endif
    *calls = 0;
    double t0 = now();
    for (size_t done = 0; done < n && !rc;) {
        size_t in = done;
        while (in < n && arrive[in] <= now() - t0) in++;
        if (in == done) { /* nothing new yet: wait for the next arrival */
            double wait = arrive[done] - (now() - t0);
            struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
            if (wait > 0) nanosleep(&ts, NULL);
            continue;
        }
        rc = wk_kv_sink_decode(s, items + done, in - done, 0, err);
        (*calls)++;
        done = in;
    }
    *lag = now() - t0 - (n ? arrive[n - 1] : 0);
    wk_kv_sink_free(s);
    free(arrive);
    return rc;
}

static int bench_policy(const bench *b, const char *name) {
    wk_err err = {0};
    wk_policy pol;
    wk_stream_codec codec;
    if (wk_policy_create(name, &pol, &err) || wk_stream_codec_for(&pol, &codec, &err)) return die(name, &err);
    wk_request req = {b->spec, b->dev, b->tokens, 1, "passkey", 1, NULL, NULL};
    wk_plan plan;
    wk_plan_init(&plan);
    if (pol.ops->plan(pol.state, pol.param, &req, &plan, &err)) return die("plan", &err);
    wk_kv_sink_item *items = calloc(plan.n, sizeof *items);
    uint8_t **bufs = calloc(plan.n, sizeof *bufs);
    size_t n = 0, bytes = 0;
    for (size_t i = 0; i < plan.n; i++) {
        const wk_unit *u = &plan.units[i];
        if (u->kind != WK_UNIT_KV || (codec.kind == WK_SCODEC_CG && u->level != b->cg_level)) continue;
        items[n++] = (wk_kv_sink_item){u, (uint32_t)i, NULL, 0};
    }
    enc_ctx ec = {&codec, b->kv, items, bufs};
    double t0 = now();
    if (wk_parallel_for((int)n, 0, enc_job, &ec, &err)) return die("encode", &err);
    double enc_s = now() - t0;
    for (size_t i = 0; i < n; i++) bytes += items[i].len;
    size_t done[3], units[3];
    double sec[3];
    char kinds[3][8];
    /* warm-up: one unit through a throwaway sink (first launches, buffer growth) */
    int rc = run_sink(b, &codec, NULL, items, n, 1, 0.0, &done[0], &units[0], &sec[0], kinds[0], &err);
    if (!rc) rc = run_sink(b, &codec, NULL, items, n, 1, 1e9, &done[0], &units[0], &sec[0], kinds[0], &err);
    if (!rc) rc = run_sink(b, &codec, NULL, items, n, b->group, 1e9, &done[1], &units[1], &sec[1], kinds[1], &err);
    if (!rc) rc = run_sink(b, &codec, "host", items, n, 1, b->host_s, &done[2], &units[2], &sec[2], kinds[2], &err);
    double lag = 0;
    size_t calls = 0;
    if (!rc) rc = run_paced(b, &codec, items, n, 125e6, &lag, &calls, &err);
    if (rc) return die(name, &err);
    double mb = bytes / 1e6, r[3];
    for (int k = 0; k < 3; k++) r[k] = done[k] / 1e6 / sec[k];
    printf("%-24s %6zu %8.1f %5s %9.0f %6.1f %9.0f %6.1f %8.1f %6.2f %7.1fx %8.1f %6zu   (encode %.1f s; host: %zu of %zu "
           "units)\n",
           name, n, mb, kinds[0], r[0], r[0] / 125.0, r[1], r[1] / 125.0, r[2], r[2] / 125.0, r[0] / r[2], lag * 1e3,
           calls, enc_s, units[2], n);
    for (size_t i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(items);
    wk_plan_free(&plan);
    wk_policy_free(&pol);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    const char *model = "synthetic:llama-3.1-8b", *backend = "cuda", *policies = "kivi2;kivi4;cachegen;wikv:levels=2";
    bench b = {.tokens = 8192, .group = 16, .cg_level = 2, .host_s = 2.0};
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--model") == 0) model = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--backend") == 0) backend = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--tokens") == 0) b.tokens = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--group") == 0) b.group = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--host-s") == 0) b.host_s = atof(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--cg-level") == 0) b.cg_level = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--policies") == 0) policies = argv[++i];
        else {
            fprintf(stderr, "usage: bench_kv_sink [--model M] [--backend cuda|cpu] [--tokens T] [--group N] [--host-s S] "
                            "[--cg-level L] [--policies \"p1;p2\"]\n");
            return 2;
        }
    }
    if (b.tokens < 1 || b.group < 1 || b.cg_level < 0) {
        fprintf(stderr, "bench_kv_sink: --tokens, --group must be >= 1, --cg-level >= 0\n");
        return 2;
    }
    wk_err err = {0};
    wk_model_spec spec;
    wk_device dev;
    if (wk_model_spec_find(model, &spec, &err) || wk_device_find("rtx5080-laptop", &dev, &err)) return die(model, &err);
    int orc = wk_engine_open(backend, model, &(wk_engine_opts){.kv_capacity = b.tokens + 16}, &b.e, &err);
    if (orc == WK_EUNSUPPORTED) { /* `make bench` on a machine without CUDA or a GPU */
        printf("bench_kv_sink: skipped: %s\n", err.msg);
        return 0;
    }
    if (orc) return die("engine", &err);
    wk_kv_tensor kv;
    if (wk_kv_tensor_alloc(&kv, spec.n_layers, spec.n_kv_heads, b.tokens, spec.head_dim, &err)) return die("kv", &err);
    wk_kv_synth_params sp = wk_kv_synth_defaults(1);
    synth_ctx sc = {&kv, &sp};
    if (wk_parallel_for(spec.n_layers, 0, synth_job, &sc, &err)) return die("synthetic kv", &err);
    b.spec = &spec;
    b.dev = &dev;
    b.kv = &kv;
    char device[320] = "cpu";
#ifdef WIKV_HAVE_CUDA
    if (strcmp(backend, "cuda") == 0) wk_engine_cuda_device(b.e, device, sizeof device);
#endif
    printf("# %s, %d tokens, %s engine on %s; MB/s of compressed input, x1Gb = / 125 MB/s\n", model, b.tokens, backend,
           device);
    printf("%-24s %6s %8s %5s %9s %6s %9s %6s %8s %6s %8s %8s %6s\n", "policy", "units", "in MB", "sink", "unit MB/s",
           "x1Gb", "grp MB/s", "x1Gb", "host MB/s", "x1Gb", "unit/host", "1Gb lag ms", "calls");
    char *list = strdup(policies);
    int rc = 0;
    for (char *save = NULL, *p = strtok_r(list, ";", &save); p && !rc; p = strtok_r(NULL, ";", &save))
        rc = bench_policy(&b, p);
    printf("(gpu grouped: %d units per call; host: one unit per call for at most %.1f s; 1Gb lag: units arriving at "
           "125 MB/s, each call decoding all that arrived: last unit decoded this long after it arrived)\n",
           b.group, b.host_s);
    free(list);
    wk_kv_tensor_free(&kv);
    wk_engine_free(b.e);
    return rc;
}
