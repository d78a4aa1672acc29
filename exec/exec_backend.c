/* The engine as the session's backend in the real execution: each action runs synchronously and
 * returns its measured duration (the session's clock is the wall clock). */
#include <math.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec/kv_sink.h"
#include "exec/sampler.h"
#include "exec/stream.h"

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Hands the arrived payloads of the units to the sink (payloads stay put once arrived). */
static int decode_units(wk_stream_backend *b, const wk_view *v, const uint32_t *units, size_t n, wk_err *err) {
    wk_kv_sink_item *items = malloc((n ? n : 1) * sizeof *items);
    if (!items) return wk_err_set(err, WK_ENOMEM, "decode: out of memory");
    pthread_mutex_lock(b->mu);
    for (size_t i = 0; i < n; i++)
        items[i] = (wk_kv_sink_item){&v->plan->units[units[i]], units[i], b->payload[units[i]], b->payload_len[units[i]]};
    pthread_mutex_unlock(b->mu);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        if (!items[i].data) rc = wk_err_set(err, WK_ESTATE, "decode: unit %u has no payload", units[i]);
    if (!rc) rc = wk_kv_sink_decode(b->sink, items, n, v->tokens_prefilled, err);
    free(items);
    return rc;
}

/* Forwards tokens[0..n) at pos; with want_token, the argmax of the last row is the next token, kept when
 * the step passes the confidence test or is forced. */
static int step(wk_stream_backend *b, const int32_t *tokens, int n, int pos, int want_token, int test, int *accepted,
                wk_err *err) {
    if (want_token && b->n_gen >= b->max_gen) return wk_err_set(err, WK_ESTATE, "backend: more tokens than asked for");
    int done = 0, rc = 0;
    while (done < n && !rc) { /* chunks of at most max_chunk tokens */
        int k = n - done < b->e->max_chunk ? n - done : b->e->max_chunk;
        int last = done + k == n && want_token;
        wk_forward_args fa = {.tokens = tokens + done, .n_tokens = k, .pos = pos + done, .logits = last ? b->logits : NULL,
                              .logit_rows = last ? 1 : 0};
        rc = wk_engine_forward(b->e, &fa, err);
        done += k;
    }
    if (rc || !want_token) return rc;
    if (test && b->confidence) *accepted = wk_stream_confidence_pass(b->confidence, b->logits, b->e->cfg.vocab_size);
    if (*accepted) b->gen[b->n_gen++] = wk_sampler_argmax(b->logits, b->e->cfg.vocab_size);
    return 0;
}

/* PROGRESS to the server: the device is about to compute context tokens [.., upto) itself. A failed send
 * is not this action's failure: a server that is gone fails the request through the frame reader. */
static void report_progress(const wk_stream_backend *b, int upto, int emitted) {
    if (b->progress_fd < 0) return;
    wk_wire_msg m;
    memset(&m, 0, sizeof m);
    m.h.type = WK_FRAME_PROGRESS;
    m.h.stream_id = b->stream_id;
    m.u.progress = (wk_wire_progress){(uint32_t)upto, (uint32_t)emitted};
    uint8_t buf[WK_WIRE_HEADER_BYTES + 16];
    size_t len;
    wk_err err;
    if (wk_wire_encode(&m, buf, sizeof buf, &len, &err) == 0) (void)!send(b->progress_fd, buf, len, MSG_NOSIGNAL);
}

static int prefill(wk_stream_backend *b, const wk_action *a, const wk_view *v, int *accepted, wk_err *err) {
    int end = a->position + a->tokens;
    report_progress(b, end, v->tokens_emitted);
    pthread_mutex_lock(b->mu);
    int32_t *ids = malloc((size_t)a->tokens * sizeof *ids);
    if (ids) memcpy(ids, b->text_ids + a->position, (size_t)a->tokens * sizeof *ids);
    pthread_mutex_unlock(b->mu);
    if (!ids) return wk_err_set(err, WK_ENOMEM, "prefill: out of memory");
    /* the step that computes the last context token yields the first output token */
    int rc = step(b, ids, a->tokens, a->position, end >= v->req->context_tokens && v->tokens_emitted == 0, 0, accepted,
                  err);
    free(ids);
    return rc;
}

static int emit(wk_stream_backend *b, int force, int *accepted, wk_err *err) {
    int32_t tok = b->n_gen == 0 ? b->prompt[b->n_prompt - 1] : b->gen[b->n_gen - 1];
    int pos = b->n_prompt - 1 + b->n_gen;
    if (pos + 1 > b->e->kv_capacity) return wk_err_set(err, WK_ESTATE, "emit: position %d beyond the KV capacity", pos);
    /* the step writes this token's KV at pos whatever the outcome: kept tokens keep it (as the reference
     * does), a rejected step's slot is written again by the next attempt */
    return step(b, &tok, 1, pos, 1, !force, accepted, err);
}

int wk_stream_backend_run(void *self, const wk_action *a, const wk_view *v, const uint32_t *units, size_t n,
                          double *seconds, int *accepted, wk_err *err) {
    wk_stream_backend *b = self;
    double t0 = mono_s();
    int rc;
    *accepted = 1;
    switch (a->kind) {
    case WK_ACT_DECODE_KV: rc = decode_units(b, v, units, n, err); break;
    case WK_ACT_PREFILL: rc = prefill(b, a, v, accepted, err); break;
    case WK_ACT_EMIT: rc = emit(b, a->force, accepted, err); break;
    default: rc = wk_err_set(err, WK_EINVAL, "backend: action %d has no compute", (int)a->kind);
    }
    *seconds = mono_s() - t0;
    return rc;
}

/* ---- confidence test ------------------------------------------------------------------------- */

static int cmp_desc(const void *x, const void *y) {
    float a = *(const float *)x, b = *(const float *)y;
    return a < b ? 1 : a > b ? -1 : 0;
}

void wk_stream_confidence_features(const float *logits, int vocab, double f[2]) {
    float mx = logits[0];
    for (int i = 1; i < vocab; i++) mx = logits[i] > mx ? logits[i] : mx;
    float *p = malloc((size_t)vocab * sizeof *p);
    if (!p) {
        f[0] = f[1] = NAN;
        return;
    }
    double z = 0;
    for (int i = 0; i < vocab; i++) z += (p[i] = expf(logits[i] - mx));
    qsort(p, (size_t)vocab, sizeof *p, cmp_desc);
    double mass = 0, top = 0, h = 0;
    for (int i = 0; i < vocab && i < 50; i++) mass += p[i] / z;
    for (int i = 0; i < vocab && i < 100; i++) top += p[i];
    for (int i = 0; i < vocab && i < 100; i++)
        if (p[i] > 0) h -= p[i] / top * log(p[i] / top);
    f[0] = mass;
    f[1] = h;
    free(p);
}

int wk_stream_confidence_pass(const wk_stream_confidence *c, const float *logits, int vocab) {
    double f[2];
    wk_stream_confidence_features(logits, vocab, f);
    for (int i = 0; i < 2; i++)
        if (!(fabs(f[i] - c->mean[i]) <= c->k * c->std[i])) return 0;
    return 1;
}

int wk_stream_confidence_save(const char *path, const wk_stream_confidence *c, wk_err *err) {
    FILE *f = fopen(path, "w");
    if (!f) return wk_err_set(err, WK_EIO, "%s: cannot write", path);
    fprintf(f, "wikv-confidence 1\nk %.17g\nmass50 %.17g %.17g\nentropy100 %.17g %.17g\nsteps %d\n", c->k, c->mean[0],
            c->std[0], c->mean[1], c->std[1], c->steps);
    return fclose(f) == 0 ? 0 : wk_err_set(err, WK_EIO, "%s: cannot write", path);
}

int wk_stream_confidence_load(const char *path, wk_stream_confidence *c, wk_err *err) {
    FILE *f = fopen(path, "r");
    if (!f) return wk_err_set(err, WK_ENOTFOUND, "%s: cannot open", path);
    memset(c, 0, sizeof *c);
    int version = 0;
    int n = fscanf(f, "wikv-confidence %d k %lf mass50 %lf %lf entropy100 %lf %lf steps %d", &version, &c->k, &c->mean[0],
                   &c->std[0], &c->mean[1], &c->std[1], &c->steps);
    fclose(f);
    if (n != 7 || version != 1)
        return wk_err_set(err, WK_EFORMAT, "%s: field %d of 7 unreadable (expected \"wikv-confidence 1\", k, mass50, "
                                           "entropy100, steps)", path, n < 0 ? 0 : n + 1);
    if (!(c->k > 0) || !(c->std[0] >= 0) || !(c->std[1] >= 0) || !isfinite(c->mean[0]) || !isfinite(c->mean[1]))
        return wk_err_set(err, WK_EFORMAT, "%s: k, means and standard deviations must be finite, k > 0, std >= 0", path);
    return 0;
}
