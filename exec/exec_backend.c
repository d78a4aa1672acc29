/* The engine as the session's backend in the real execution: each action runs synchronously and
 * returns its measured duration (the session's clock is the wall clock). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec/sampler.h"
#include "exec/stream.h"

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int decode_units(wk_stream_backend *b, const wk_view *v, const uint32_t *units, size_t n, wk_err *err) {
    for (size_t i = 0; i < n; i++) {
        const wk_unit *u = &v->plan->units[units[i]];
        pthread_mutex_lock(b->mu);
        const uint8_t *data = b->payload[units[i]];
        size_t len = b->payload_len[units[i]];
        pthread_mutex_unlock(b->mu);
        if (!data) return wk_err_set(err, WK_ESTATE, "decode: unit %u has no payload", units[i]);
        int rc = wk_stream_unit_decode_kv(b->codec, u, data, len, b->e, err);
        if (rc) return wk_err_prefix(err, "unit %u", units[i]);
    }
    return 0;
}

/* Forwards tokens[0..n) at pos; with want_token, the argmax of the last row is the next token. */
static int step(wk_stream_backend *b, const int32_t *tokens, int n, int pos, int want_token, wk_err *err) {
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
    if (!rc && want_token) b->gen[b->n_gen++] = wk_sampler_argmax(b->logits, b->e->cfg.vocab_size);
    return rc;
}

static int prefill(wk_stream_backend *b, const wk_action *a, const wk_view *v, wk_err *err) {
    int end = a->position + a->tokens;
    pthread_mutex_lock(b->mu);
    int32_t *ids = malloc((size_t)a->tokens * sizeof *ids);
    if (ids) memcpy(ids, b->text_ids + a->position, (size_t)a->tokens * sizeof *ids);
    pthread_mutex_unlock(b->mu);
    if (!ids) return wk_err_set(err, WK_ENOMEM, "prefill: out of memory");
    /* the step that computes the last context token yields the first output token */
    int rc = step(b, ids, a->tokens, a->position, end >= v->req->context_tokens && v->tokens_emitted == 0, err);
    free(ids);
    return rc;
}

static int emit(wk_stream_backend *b, wk_err *err) {
    int32_t tok = b->n_gen == 0 ? b->prompt[b->n_prompt - 1] : b->gen[b->n_gen - 1];
    int pos = b->n_prompt - 1 + b->n_gen;
    if (pos + 1 > b->e->kv_capacity) return wk_err_set(err, WK_ESTATE, "emit: position %d beyond the KV capacity", pos);
    return step(b, &tok, 1, pos, 1, err);
}

int wk_stream_backend_run(void *self, const wk_action *a, const wk_view *v, const uint32_t *units, size_t n,
                          double *seconds, int *accepted, wk_err *err) {
    wk_stream_backend *b = self;
    double t0 = mono_s();
    int rc;
    *accepted = 1; /* no confidence test in exec yet: every step keeps its token */
    switch (a->kind) {
    case WK_ACT_DECODE_KV: rc = decode_units(b, v, units, n, err); break;
    case WK_ACT_PREFILL: rc = prefill(b, a, v, err); break;
    case WK_ACT_EMIT: rc = emit(b, err); break;
    default: rc = wk_err_set(err, WK_EINVAL, "backend: action %d has no compute", (int)a->kind);
    }
    *seconds = mono_s() - t0;
    return rc;
}
