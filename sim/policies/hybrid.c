/* hybrid: the device prefills the context from its start while the server streams the KV of the end
 * of the context, so local compute and the stream overlap and meet in the middle (the idea of
 * SparKV), combined with WiKV's importance ranking and paced decoding.
 *
 * Sender: first the text of every chunk (a few KB), then KV of the part of the context the device will
 * not reach, in WiKV's semantic order: each chunk's vectors are ranked by importance and cut into
 * slices (WiKV level-0 coding). Before each unit the sender re-plans the meeting point m from the
 * throughput measured so far and the device's prefill time (roofline of the request's device), so that
 * prefilling chunks [frontier, m) takes as long as streaming the unsent KV of [m, end); among the
 * slices of chunks >= m it sends the most important first. The device's progress reaches the sender
 * through the view's tokens_prefilling (in exec: the client's PROGRESS frames).
 * Receiver: prefills chunk after chunk from the start (a causal prefix) and decodes arriving KV; tries
 * a decode step when the importance coverage (prefix + streamed) passes a threshold (the confidence
 * test decides); decodes normally once every chunk past its prefix is fully streamed; TTFT and
 * per-token deadlines force a step, as in wikv. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kv/codec_size.h"
#include "kv/semantic.h"
#include "sim/importance.h"
#include "sim/policy.h"

enum { P_CHUNK, P_BATCH, P_THRESHOLD, P_STEP, P_TTFT_DEADLINE, P_TOKEN_DEADLINE, P_TEXT_BYTES };
static const wk_param_desc params[] = {
    {"chunk", "context tokens per chunk (unit of local prefill)", 64, 65536, 512, 1},
    {"batch", "vectors per streamed slice", 64, 1 << 20, 4096, 1},
    {"threshold", "importance coverage of the first decode attempt", 0.01, 1, 0.6, 0},
    {"step", "more coverage to wait for after a failed attempt", 0.005, 1, 0.05, 0},
    {"ttft_deadline", "seconds per 8K context tokens after which the first token is forced (0: none)", 0, 1000, 0,
     0},
    {"token_deadline", "seconds after the previous token after which the next is forced (0: none)", 0, 100, 0.15, 0},
    {"text_bytes", "bytes of text per token on the wire", 1, 16, 4, 1},
};

typedef struct {
    wk_policy_sizes sizes;
    float *token_importance;   /* [context] per token, all layers and heads */
    int *first_slice;          /* [chunks + 1] KV units of chunk c: first_slice[c] .. first_slice[c+1]-1 */
    int context, chunks, chunk;
    uint32_t *order;           /* [vectors] ids chunk by chunk in importance order; units point into it */
    /* per request */
    int text_sent;
    double next_check;
    int attempted;
} hybrid_state;

static int chunk_tokens(const hybrid_state *st, int c) {
    return st->context - c * st->chunk < st->chunk ? st->context - c * st->chunk : st->chunk;
}

typedef struct {
    float importance;
    uint32_t id;
} ranked_vector;

/* Descending importance, ties by id (deterministic). */
static int by_importance(const void *a, const void *b) {
    const ranked_vector *x = a, *y = b;
    if (x->importance != y->importance) return x->importance < y->importance ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Slices of one chunk: its vectors ranked by importance, `batch` at a time. */
static int push_chunk_slices(hybrid_state *st, const wk_model_spec *m, const float *imp, ranked_vector *ids, int c,
                             int batch, uint32_t *order, wk_plan *plan, wk_err *err) {
    int n_tok = chunk_tokens(st, c), t0 = c * st->chunk;
    size_t n = 0;
    for (int l = 0; l < m->n_layers; l++)
        for (int h = 0; h < m->n_kv_heads; h++)
            for (int t = t0; t < t0 + n_tok; t++) {
                uint32_t id = ((uint32_t)l * (uint32_t)m->n_kv_heads + (uint32_t)h) * (uint32_t)st->context + (uint32_t)t;
                ids[n++] = (ranked_vector){imp[id], id};
            }
    qsort(ids, n, sizeof *ids, by_importance);
    for (size_t i = 0; i < n; i++) order[i] = ids[i].id;
    double vector_values = 2.0 * m->head_dim;
    for (size_t first = 0; first < n; first += (size_t)batch) {
        size_t count = n - first < (size_t)batch ? n - first : (size_t)batch;
        double bytes = st->sizes.sizes.wikv_batch_bytes[0], importance = 0;
        for (size_t i = first; i < first + count; i++) {
            int layer = (int)(ids[i].id / ((uint32_t)m->n_kv_heads * (uint32_t)st->context));
            bytes += wk_codec_bpt(&st->sizes.sizes, WK_CODEC_WIKV, 0, layer) / m->n_kv_heads;
            importance += ids[i].importance;
        }
        wk_unit u = {.bytes = (int64_t)ceil(bytes), .layer_first = 0, .layer_count = m->n_layers, .token_first = t0,
                     .token_count = n_tok, .kv_head = -1, .kind = WK_UNIT_KV, .group = c,
                     .values = vector_values * (double)count, .decoded_bytes = 2 * vector_values * (double)count,
                     .importance = importance, .vectors = order + first, .n_vectors = (int32_t)count};
        int rc = wk_plan_push(plan, &u, err);
        if (rc) return rc;
    }
    return 0;
}

/* Units: [0, chunks) the text of chunk c; then the KV slices of chunk 0, chunk 1, ... */
static int plan(void *state, const double *param, const wk_request *req, wk_plan *plan, wk_err *err) {
    hybrid_state *st = state;
    const wk_model_spec *m = req->model;
    st->context = req->context_tokens;
    st->chunk = (int)param[P_CHUNK];
    st->chunks = (st->context + st->chunk - 1) / st->chunk;
    int rc = wk_policy_sizes_ensure(&st->sizes, m, (int)param[P_BATCH], req->kv_sample, err);
    if (rc) return rc;
    size_t n = (size_t)m->n_layers * (size_t)m->n_kv_heads * (size_t)st->context;
    float *imp = malloc(n * sizeof *imp);
    ranked_vector *ids = malloc((size_t)m->n_layers * m->n_kv_heads * st->chunk * sizeof *ids);
    float *ti = realloc(st->token_importance, (size_t)st->context * sizeof *ti);
    if (ti) st->token_importance = ti;
    int *fs = realloc(st->first_slice, (size_t)(st->chunks + 1) * sizeof *fs);
    if (fs) st->first_slice = fs;
    uint32_t *order = realloc(st->order, n * sizeof *order);
    if (order) st->order = order;
    if (!imp || !ids || !ti || !fs || !order) rc = wk_err_set(err, WK_ENOMEM, "hybrid: out of memory for %zu vectors", n);
    double total = 0;
    if (!rc) { /* the same synthetic attention as wikv's plans */
        rc = wk_request_importance(req, imp, err);
    }
    if (!rc) {
        memset(ti, 0, (size_t)st->context * sizeof *ti);
        for (size_t i = 0; i < n; i++) {
            ti[i % (size_t)st->context] += imp[i];
            total += imp[i];
        }
    }
    for (int c = 0; !rc && c < st->chunks; c++) {
        wk_unit text = {.bytes = (int64_t)chunk_tokens(st, c) * (int64_t)param[P_TEXT_BYTES],
                        .token_first = c * st->chunk, .token_count = chunk_tokens(st, c), .kv_head = -1,
                        .kind = WK_UNIT_TEXT, .group = c};
        rc = wk_plan_push(plan, &text, err);
    }
    for (int c = 0; !rc && c < st->chunks; c++) {
        st->first_slice[c] = (int)plan->n;
        rc = push_chunk_slices(st, m, imp, ids, c, (int)param[P_BATCH], order + (size_t)c * st->chunk * m->n_layers * m->n_kv_heads,
                               plan, err);
    }
    if (!rc) {
        st->first_slice[st->chunks] = (int)plan->n;
        plan->kv_values_total = 2.0 * m->head_dim * (double)n;
        plan->importance_total = total;
        plan->token_importance = st->token_importance;
    }
    free(imp);
    free(ids);
    return rc;
}

static void start(void *state, const double *param, const wk_request *req, const wk_plan *plan) {
    (void)req;
    (void)plan;
    hybrid_state *st = state;
    st->text_sent = 0;
    st->next_check = param[P_THRESHOLD];
    st->attempted = 0;
}

/* Meeting point: the first chunk whose KV is streamed, balancing the device's prefill of
 * [from, m) against streaming the unsent slices of [m, chunks). */
static int meeting_point(const hybrid_state *st, const wk_view *v, int from) {
    double bw = v->est_bw_Bps > 0 ? v->est_bw_Bps : 1e6;
    double stream = 0;
    for (int u = st->first_slice[from < st->chunks ? from : st->chunks]; u < st->first_slice[st->chunks]; u++)
        if (v->unit_state[u] == WK_US_PLANNED) stream += (double)v->plan->units[u].bytes;
    stream /= bw;
    double local = 0;
    int mp = from;
    while (mp < st->chunks) {
        double next = wk_device_prefill_s(v->req->device, v->req->model, chunk_tokens(st, mp), mp * st->chunk);
        double chunk_stream = 0;
        for (int u = st->first_slice[mp]; u < st->first_slice[mp + 1]; u++)
            if (v->unit_state[u] == WK_US_PLANNED) chunk_stream += (double)v->plan->units[u].bytes;
        chunk_stream /= bw;
        if (local + next > stream - chunk_stream) break; /* prefilling mp too would finish after the stream */
        local += next;
        stream -= chunk_stream;
        mp++;
    }
    return mp;
}

static long next_unit(void *state, const double *param, const wk_view *v) {
    (void)param;
    hybrid_state *st = state;
    if (st->text_sent < st->chunks) return st->text_sent++;
    /* chunks [0, frontier) are prefilled or being prefilled on the device: plan beyond the next one */
    int frontier = (v->tokens_prefilling + st->chunk - 1) / st->chunk;
    int mp = meeting_point(st, v, frontier + 1);
    long best = WK_SEND_LATER;
    double best_imp = -1;
    for (int c = mp; c < st->chunks; c++)
        for (int u = st->first_slice[c]; u < st->first_slice[c + 1]; u++)
            if (v->unit_state[u] == WK_US_PLANNED) { /* slices of a chunk are in importance order */
                if (v->plan->units[u].importance > best_imp) {
                    best_imp = v->plan->units[u].importance;
                    best = u;
                }
                break;
            }
    return best;
}

/* Every chunk past the local prefix has all its slices usable. */
static int rest_streamed(const hybrid_state *st, const wk_view *v, int from) {
    for (int u = st->first_slice[from < st->chunks ? from : st->chunks]; u < st->first_slice[st->chunks]; u++)
        if (v->unit_state[u] != WK_US_USABLE) return 0;
    return 1;
}

static void decide(void *state, const double *param, const wk_view *v, wk_action *a) {
    hybrid_state *st = state;
    double coverage = wk_view_coverage(v);
    if (st->attempted) {
        st->attempted = 0;
        st->next_check = fmax(st->next_check, coverage) + param[P_STEP];
    }
    if (wk_policy_decode_arrived(v, a)) return;
    a->kv_bytes_per_token = wk_model_kv_bytes_per_token(v->req->model, 16);
    int prefix_chunks = v->tokens_prefilled / st->chunk + (v->tokens_prefilled >= st->context ? 1 : 0);
    double due = wk_policy_deadline(v, param[P_TTFT_DEADLINE], param[P_TOKEN_DEADLINE]);
    if (rest_streamed(st, v, prefix_chunks) || v->now >= due) {
        a->kind = WK_ACT_EMIT;
        a->force = 1;
        return;
    }
    if (v->tokens_emitted == 0 && coverage >= st->next_check) {
        a->kind = WK_ACT_EMIT;
        st->attempted = 1;
        return;
    }
    int f = prefix_chunks;
    if (v->tokens_emitted == 0 && f < st->chunks && v->unit_state[f] == WK_US_USABLE) { /* its text is in */
        a->kind = WK_ACT_PREFILL;
        a->position = f * st->chunk;
        a->tokens = chunk_tokens(st, f);
        return;
    }
    a->kind = WK_ACT_WAIT;
    a->wake_at = isfinite(due) ? due : -1;
}

static void release(void *state) {
    hybrid_state *st = state;
    free(st->token_importance);
    free(st->first_slice);
    free(st->order);
}

const wk_policy_ops wk_policy_hybrid = {
    .name = "hybrid",
    .summary = "prefill the start locally while the end's KV streams in, meeting in the middle; paced decoding",
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .state_size = sizeof(hybrid_state),
    .plan = plan,
    .start = start,
    .next_unit = next_unit,
    .decide = decide,
    .release = release,
};
