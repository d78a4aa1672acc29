/* Measured quality tables: partial and quantized caches decoded by the real engine. */
#include "exec/quality_measure.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "exec/metrics.h"
#include "exec/stream.h"
#include "kv/evict.h"
#include "kv/kivi.h"
#include "kv/semantic.h"

static const double wikv_targets[] = {0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0};
#define N_WIKV (sizeof wikv_targets / sizeof wikv_targets[0])
static const int h2o_shift[] = {5, 4, 3, 2, 1, 0}; /* budget = tokens >> shift */
#define N_H2O (sizeof h2o_shift / sizeof h2o_shift[0])
#define H2O_WINDOW 8  /* the policy's default recent window */
#define N_POINTS (1 + N_WIKV + N_H2O + 2)

/* One measured point: sums over the items. */
typedef struct point {
    const char *family;
    double coverage_sum, f1_sum;
    int accepted, items;
} point;

/* One item: its prompt, KV, importance, the engine and its confidence boundary. */
typedef struct item {
    wk_stream_client *c;
    const wk_stream_confidence *conf;
    wk_stream_prompt p;
    wk_kv_tensor kv;     /* [L][H][T][D] fp16, T = prompt tokens */
    float *imp;          /* [L][H][T] */
    double imp_total;    /* over the vectors the cache can hold (tokens 0 .. T-2) */
    int output_tokens;
} item;

static size_t vec_index(const wk_kv_tensor *t, int l, int h, int tok) {
    return (((size_t)l * t->kv_heads + h) * t->tokens + tok) * t->head_dim;
}

/* Writes vector (l, h, tok) of src into the engine's cache (present). */
static int put(wk_engine *e, const wk_kv_tensor *src, int l, int h, int tok, float *kf, float *vf, wk_err *err) {
    size_t at = vec_index(src, l, h, tok);
    for (int d = 0; d < src->head_dim; d++) {
        kf[d] = wk_half_to_float(src->k[at + d]);
        vf[d] = wk_half_to_float(src->v[at + d]);
    }
    return e->ops->kv_write(e, l, h, tok, kf, vf, err);
}

/* Decodes the answer from the cache as it stands: the last prompt token first (its pass/fail under the
 * confidence test), then greedy tokens; scores it against the item's answers. */
static int answer(item *it, int *passed, double *f1, wk_err *err) {
    wk_engine *e = it->c->engine;
    int vocab = e->cfg.vocab_size, n = it->p.n, rc = 0, n_gen = 0;
    float *logits = malloc((size_t)vocab * sizeof *logits);
    int32_t *gen = malloc((size_t)it->output_tokens * sizeof *gen);
    if (!logits || !gen) rc = wk_err_set(err, WK_ENOMEM, "quality: out of memory");
    int32_t tok = it->p.ids[n - 1];
    for (int s = 0; !rc && s < it->output_tokens; s++) {
        wk_forward_args fa = {.tokens = &tok, .n_tokens = 1, .pos = n - 1 + s, .logits = logits, .logit_rows = 1};
        rc = wk_engine_forward(e, &fa, err);
        if (rc) break;
        if (s == 0) *passed = wk_stream_confidence_pass(it->conf, logits, vocab);
        tok = wk_sampler_argmax(logits, vocab);
        int eos = 0;
        for (int k = 0; k < e->cfg.n_eos; k++) eos |= tok == e->cfg.eos_token_ids[k];
        if (eos) break;
        gen[n_gen++] = tok;
    }
    char *text = NULL;
    size_t len;
    if (!rc) rc = wk_tokenizer_decode(it->c->tok, gen, (size_t)n_gen, WK_TOK_SKIP_SPECIAL, &text, &len, err);
    if (!rc) {
        const char *s = text; /* first line, trimmed, as the exec client reads its answer */
        while (*s == ' ' || *s == '\n') s++;
        size_t k = strcspn(s, "\n");
        while (k > 0 && s[k - 1] == ' ') k--;
        char ans[512];
        snprintf(ans, sizeof ans, "%.*s", (int)(k < sizeof ans ? k : sizeof ans - 1), s);
        wk_metric m;
        rc = wk_metric_parse(wk_task_metric(it->p.item.kind), &m, err);
        if (!rc) rc = wk_metric_score_sample(m, NULL, ans, (const char *const *)it->p.item.answers, it->p.item.n_answers,
                                             NULL, 0, f1, err);
    }
    free(text);
    free(logits);
    free(gen);
    return rc;
}

static int score_into(item *it, point *pt, double coverage, wk_err *err) {
    int passed = 0;
    double f1 = 0;
    int rc = answer(it, &passed, &f1, err);
    if (rc) return rc;
    pt->coverage_sum += coverage;
    pt->f1_sum += f1;
    pt->accepted += passed;
    pt->items++;
    return 0;
}

/* Every vector of tokens 0 .. T-2 from src (the last prompt token is recomputed by the first step). */
static int fill_all(item *it, const wk_kv_tensor *src, wk_err *err) {
    wk_engine *e = it->c->engine;
    float kf[512], vf[512];
    e->ops->kv_clear(e);
    int rc = 0;
    for (int l = 0; !rc && l < src->layers; l++)
        for (int h = 0; !rc && h < src->kv_heads; h++)
            for (int t = 0; !rc && t < it->p.n - 1; t++) rc = put(e, src, l, h, t, kf, vf, err);
    return rc;
}

static int measure_full(item *it, point *pt, wk_err *err) {
    int rc = fill_all(it, &it->kv, err);
    return rc ? rc : score_into(it, pt, 1.0, err);
}

static int measure_kivi(item *it, int bits, point *pt, wk_err *err) {
    wk_kivi_params kp = wk_kivi_defaults(bits);
    uint8_t *buf = NULL;
    size_t len = 0;
    wk_kv_tensor dec = {0};
    int rc = wk_kivi_encode(&kp, &it->kv, &buf, &len, err);
    if (!rc) rc = wk_kv_tensor_alloc(&dec, it->kv.layers, it->kv.kv_heads, it->kv.tokens, it->kv.head_dim, err);
    if (!rc) rc = wk_kivi_decode(&kp, buf, len, &dec, err);
    if (!rc) rc = fill_all(it, &dec, err);
    if (!rc) rc = score_into(it, pt, 1.0, err);
    free(buf);
    wk_kv_tensor_free(&dec);
    return rc;
}

/* The wikv stream order's prefixes, level 0 of the semantic codec. */
static int measure_wikv(item *it, point *pts, wk_err *err) {
    const wk_kv_tensor *kv = &it->kv;
    int L = kv->layers, H = kv->kv_heads, T = kv->tokens;
    size_t nv = (size_t)L * H * T;
    float *suffix = malloc(nv * sizeof *suffix);
    uint32_t *order = malloc(nv * sizeof *order), *ids = malloc(nv * sizeof *ids);
    wk_kv_tensor dec = {0};
    wk_sem_map map = {0};
    uint8_t *buf = NULL;
    size_t len = 0, n_ids = 0;
    int rc = suffix && order && ids ? 0 : wk_err_set(err, WK_ENOMEM, "quality: out of memory");
    if (!rc) {
        memcpy(suffix, it->imp, nv * sizeof *suffix);
        wk_sem_suffix_sum(suffix, L, H, T);
        rc = wk_sem_order(suffix, L, H, T, order, err);
    }
    /* the cache never holds the last prompt token's KV from the stream: leave those ids out */
    for (size_t i = 0; !rc && i < nv; i++)
        if ((int)(order[i] % (uint32_t)T) != T - 1) ids[n_ids++] = order[i];
    wk_sem_params sp = wk_sem_defaults(L);
    if (!rc) rc = wk_sem_encode_batch(&sp, kv, ids, (int)n_ids, 0, &buf, &len, NULL, NULL, err);
    if (!rc) rc = wk_kv_tensor_alloc(&dec, L, H, T, kv->head_dim, err);
    if (!rc) rc = wk_sem_map_alloc(&map, L, H, T, err);
    if (!rc) rc = wk_sem_decode_batch(buf, len, &dec, &map, err);
    size_t next = 0;
    double mass = 0;
    float kf[512], vf[512];
    if (!rc) it->c->engine->ops->kv_clear(it->c->engine);
    for (size_t k = 0; !rc && k < N_WIKV; k++) {
        double target = wikv_targets[k] * it->imp_total;
        while (!rc && next < n_ids && (mass < target * (1 - 1e-12) || wikv_targets[k] >= 1.0)) {
            uint32_t id = ids[next++];
            int t = (int)(id % (uint32_t)T), h = (int)(id / (uint32_t)T % (uint32_t)H), l = (int)(id / (uint32_t)T / (uint32_t)H);
            mass += it->imp[id];
            rc = put(it->c->engine, &dec, l, h, t, kf, vf, err);
        }
        /* the answer's steps write slots T-1.. : clear them so the next prefix starts from the cache alone */
        if (!rc) rc = score_into(it, &pts[k], it->imp_total > 0 ? fmin(1.0, mass / it->imp_total) : 1.0, err);
        if (!rc) rc = it->c->engine->ops->kv_set_present(it->c->engine, -1, -1, T - 1, it->c->engine->kv_capacity, 0, err);
    }
    free(suffix);
    free(order);
    free(ids);
    free(buf);
    wk_kv_tensor_free(&dec);
    wk_sem_map_free(&map);
    return rc;
}

/* H2O at one budget: per (layer, head) the window plus the top tokens by importance, fp16. */
static int measure_h2o(item *it, int budget, point *pt, wk_err *err) {
    const wk_kv_tensor *kv = &it->kv;
    int T = it->p.n - 1, H = kv->kv_heads; /* the streamed context: all but the recomputed last token */
    int *keep = malloc((size_t)T * sizeof *keep);
    if (!keep) return wk_err_set(err, WK_ENOMEM, "quality: out of memory");
    int window = H2O_WINDOW < budget ? H2O_WINDOW : budget;
    float kf[512], vf[512];
    double mass = 0;
    it->c->engine->ops->kv_clear(it->c->engine);
    int rc = 0;
    for (int l = 0; !rc && l < kv->layers; l++)
        for (int h = 0; !rc && h < H; h++) {
            const float *row = it->imp + ((size_t)l * H + h) * kv->tokens;
            int n = wk_evict_h2o(row, 1, T, budget, window, keep, err);
            if (n < 0) rc = n;
            for (int i = 0; !rc && i < n; i++) {
                mass += row[keep[i]];
                rc = put(it->c->engine, kv, l, h, keep[i], kf, vf, err);
            }
        }
    free(keep);
    if (!rc) rc = score_into(it, pt, it->imp_total > 0 ? fmin(1.0, mass / it->imp_total) : 1.0, err);
    return rc;
}

static int measure_item(item *it, point *pts, wk_err *err) {
    int rc = measure_full(it, &pts[0], err);
    if (!rc) rc = measure_wikv(it, pts + 1, err);
    for (size_t k = 0; !rc && k < N_H2O; k++) {
        int budget = (it->p.n - 1) >> h2o_shift[k];
        rc = measure_h2o(it, budget > H2O_WINDOW ? budget : H2O_WINDOW, &pts[1 + N_WIKV + k], err);
    }
    if (!rc) rc = measure_kivi(it, 2, &pts[1 + N_WIKV + N_H2O], err);
    if (!rc) rc = measure_kivi(it, 4, &pts[2 + N_WIKV + N_H2O], err);
    return rc;
}

static int load_item(wk_stream_client *c, const wk_stream_job *job, item *it, wk_err *err) {
    int rc = wk_stream_prompt_make(c->tok, job, &it->p, err);
    if (rc) return rc;
    if (it->p.n + WK_STREAM_ATTN_ROWS + it->output_tokens + 16 > c->engine->kv_capacity)
        return wk_err_set(err, WK_EINVAL, "quality: a %d-token prompt does not fit the engine's KV capacity %d", it->p.n,
                          c->engine->kv_capacity);
    size_t nv = (size_t)c->spec.n_layers * c->spec.n_kv_heads * it->p.n;
    if (!(it->imp = malloc(nv * sizeof *it->imp))) return wk_err_set(err, WK_ENOMEM, "quality: out of memory");
    rc = wk_stream_prefill_kv(c->engine, c->tok, it->p.ids, it->p.n, &it->kv, it->imp, err);
    it->imp_total = 0;
    for (size_t i = 0; !rc && i < nv; i++)
        if ((int)(i % (size_t)it->p.n) != it->p.n - 1) it->imp_total += it->imp[i];
    return rc;
}

static void free_item(item *it) {
    wk_stream_prompt_free(&it->p);
    wk_kv_tensor_free(&it->kv);
    free(it->imp);
}

/* Rows from the summed points: one family's points sorted by coverage, equal coverages merged. */
static int add_rows(wk_quality_table *t, const char *family, const point *pts, size_t n, double full_f1, wk_err *err) {
    size_t first = t->n;
    for (size_t i = 0; i < n; i++) {
        if (!pts[i].items) continue;
        double c = pts[i].coverage_sum / pts[i].items, a = (double)pts[i].accepted / pts[i].items,
               f = pts[i].f1_sum / pts[i].items / full_f1;
        size_t j = first;
        while (j < t->n && t->rows[j].coverage < c - 1e-9) j++;
        if (j < t->n && fabs(t->rows[j].coverage - c) <= 1e-9) continue; /* the same cache twice (e.g. all tokens) */
        if (t->n == WK_QUALITY_MAX_ROWS) return wk_err_set(err, WK_EINVAL, "quality: more than %d rows", WK_QUALITY_MAX_ROWS);
        memmove(&t->rows[j + 1], &t->rows[j], (t->n - j) * sizeof t->rows[0]);
        wk_quality_row *r = &t->rows[j];
        snprintf(r->family, sizeof r->family, "%s", family);
        r->coverage = c;
        r->accept = a;
        r->f1_rel = fmin(f, 1.5); /* the table format's bound */
        t->n++;
    }
    return 0;
}

int wk_quality_measure(const wk_qm_opts *o, FILE *log, wk_qm_result *out, wk_err *err) {
    memset(out, 0, sizeof *out);
    if (o->n_tasks < 1 || o->n < 1 || o->output_tokens < 1)
        return wk_err_set(err, WK_EINVAL, "quality: needs tasks, n >= 1 and output tokens >= 1");
    wk_stream_client c;
    int rc = wk_stream_client_open(&c, o->model_dir, err);
    if (rc) return rc;
    if (c.spec.head_dim > 512) rc = wk_err_set(err, WK_EUNSUPPORTED, "quality: head_dim %d above 512", c.spec.head_dim);
    point pts[N_POINTS];
    memset(pts, 0, sizeof pts);
    for (int ti = 0; !rc && ti < o->n_tasks; ti++) {
        wk_stream_confidence conf;
        rc = wk_stream_confidence_fit(&c, o->tasks[ti], o->context, 8, o->output_tokens, 3.0, &conf, err);
        for (int s = 1; !rc && s <= o->n; s++) {
            wk_stream_job job = {.task = o->tasks[ti], .seed = (uint64_t)s, .context = o->context,
                                 .output_tokens = o->output_tokens, .policy = "full"};
            item it = {.c = &c, .conf = &conf, .output_tokens = o->output_tokens};
            rc = load_item(&c, &job, &it, err);
            if (!rc) rc = measure_item(&it, pts, err);
            if (!rc && log) {
                fprintf(log, "quality: %s seed %d (%d tokens): full-KV F1 %.2f\n", wk_task_name(o->tasks[ti]), s, it.p.n,
                        pts[0].f1_sum / pts[0].items);
                fflush(log);
            }
            free_item(&it);
            out->items++;
        }
    }
    wk_stream_client_close(&c);
    if (rc) return rc;
    out->full_f1 = pts[0].f1_sum / pts[0].items;
    out->full_accept = (double)pts[0].accepted / pts[0].items;
    if (!(out->full_f1 > 0))
        return wk_err_set(err, WK_EINVAL, "quality: full-KV F1 is 0 on these items: no relative F1 to measure");
    wk_quality_table *t = &out->table;
    snprintf(t->source, sizeof t->source, "measured");
    rc = add_rows(t, "full", pts, 1, out->full_f1, err);
    if (!rc) rc = add_rows(t, "wikv", pts + 1, N_WIKV, out->full_f1, err);
    if (!rc) rc = add_rows(t, "default", pts + 1, N_WIKV, out->full_f1, err);
    if (!rc) rc = add_rows(t, "h2o", pts + 1 + N_WIKV, N_H2O, out->full_f1, err);
    if (!rc) rc = add_rows(t, "kivi2", pts + 1 + N_WIKV + N_H2O, 1, out->full_f1, err);
    if (!rc) rc = add_rows(t, "kivi4", pts + 2 + N_WIKV + N_H2O, 1, out->full_f1, err);
    return rc;
}
