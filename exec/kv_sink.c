/* KV sinks of the device client (see kv_sink.h): the host sink (CPU decoders, rows written through the
 * engine's contract) and, in CUDA builds, the GPU sink (GPU decoders, vectors copied on the GPU). */
#include "exec/kv_sink.h"

#include <stdlib.h>
#include <string.h>

#include "kv/cachegen.h"
#include "kv/semantic.h"
#ifdef WIKV_HAVE_CUDA
#include "exec/cuda/engine_cuda.h"
#include "kv/cuda/kv_decode_cuda.h"
#endif

typedef struct sink_ops {
    const char *name;
    /* WK_EUNSUPPORTED: this kind does not serve the sink's engine or codec */
    int (*open)(wk_kv_sink *s, wk_err *err);
    int (*decode)(wk_kv_sink *s, const wk_kv_sink_item *items, size_t n, int keep_below, wk_err *err);
    void (*free)(wk_kv_sink *s);
} sink_ops;

struct wk_kv_sink {
    const sink_ops *ops;
    wk_engine *e;
    const wk_stream_codec *codec;
    int tokens;          /* context tokens */
    wk_kv_tensor side;   /* host, CacheGen and semantic: decoded vectors [L][H][tokens][D] */
    wk_sem_map map;      /* host, semantic: the decoder's levels */
    uint8_t *prev;       /* host, semantic: [L*H*tokens] levels before a batch */
#ifdef WIKV_HAVE_CUDA
    wk_kv_cuda *gpu;     /* cuda: decoder context [L][H][tokens][D] on the engine's GPU */
    wk_kv_cuda_dest dst; /* cuda: the engine's cache */
#endif
};

/* A CacheGen chunk must cover exactly its unit (header offsets 12, 14, 20, 24: layer0, nlayers, token0,
 * ntokens). */
static int chunk_covers_unit(const wk_unit *u, const uint8_t *data, size_t len, wk_err *err) {
    if (len < WK_CG_HEADER_BYTES) return wk_err_set(err, WK_EFORMAT, "cachegen chunk: %zu bytes, header needs 28", len);
    uint32_t l0 = data[12] | data[13] << 8, nl = data[14] | data[15] << 8;
    uint32_t t0 = (uint32_t)data[20] | (uint32_t)data[21] << 8 | (uint32_t)data[22] << 16 | (uint32_t)data[23] << 24;
    uint32_t nt = (uint32_t)data[24] | (uint32_t)data[25] << 8 | (uint32_t)data[26] << 16 | (uint32_t)data[27] << 24;
    if (l0 != (uint32_t)u->layer_first || nl != (uint32_t)u->layer_count || t0 != (uint32_t)u->token_first ||
        nt != (uint32_t)u->token_count)
        return wk_err_set(err, WK_EFORMAT, "cachegen chunk covers layers %u+%u tokens %u+%u, the unit %d+%d, %d+%d", l0,
                          nl, t0, nt, u->layer_first, u->layer_count, u->token_first, u->token_count);
    return 0;
}

/* ---- host sink ------------------------------------------------------------------------------- */

static int host_open(wk_kv_sink *s, wk_err *err) {
    const wk_model_config *c = &s->e->cfg;
    if (s->codec->kind != WK_SCODEC_SEM && s->codec->kind != WK_SCODEC_CG) return 0;
    int rc = wk_kv_tensor_alloc(&s->side, c->n_layers, c->n_kv_heads, s->tokens, c->head_dim, err);
    if (rc || s->codec->kind == WK_SCODEC_CG) return rc;
    rc = wk_sem_map_alloc(&s->map, c->n_layers, c->n_kv_heads, s->tokens, err);
    if (!rc && !(s->prev = malloc((size_t)c->n_layers * c->n_kv_heads * s->tokens)))
        rc = wk_err_set(err, WK_ENOMEM, "kv sink: out of memory");
    return rc;
}

static void host_free(wk_kv_sink *s) {
    wk_kv_tensor_free(&s->side);
    wk_sem_map_free(&s->map);
    free(s->prev);
}

/* A semantic batch: decoded into the side tensor, then every vector whose level rose is written into
 * the engine's cache. */
static int host_sem(wk_kv_sink *s, const uint8_t *data, size_t len, int keep_below, wk_err *err) {
    wk_sem_map *m = &s->map;
    size_t n = (size_t)m->layers * m->kv_heads * m->tokens;
    memcpy(s->prev, m->level, n);
    int rc = wk_sem_decode_batch(data, len, &s->side, m, err);
    int d = s->side.head_dim;
    size_t id = 0;
    while (id < n && !rc) { /* runs of consecutive tokens of one (layer, head) whose level rose */
        int t = (int)(id % (size_t)m->tokens);
        /* unchanged, or computed here exactly (hybrid's prefix): keep */
        if (m->level[id] == s->prev[id] || t < keep_below) {
            id++;
            continue;
        }
        size_t end = id + 1;
        while (end < n && end % (size_t)m->tokens != 0 && m->level[end] != s->prev[end]) end++;
        int lh = (int)(id / (size_t)m->tokens);
        rc = wk_engine_kv_write_rows(s->e, lh / m->kv_heads, lh % m->kv_heads, t, (int)(end - id),
                                     s->side.k + id * (size_t)d, s->side.v + id * (size_t)d, err);
        id = end;
    }
    return rc;
}

/* A CacheGen chunk: decoded into the side tensor, then the unit's layers x heads x tokens are written into
 * the engine's cache. */
static int host_cg(wk_kv_sink *s, const wk_unit *u, const uint8_t *data, size_t len, wk_err *err) {
    int rc = chunk_covers_unit(u, data, len, err);
    if (!rc) rc = wk_cg_decode(data, len, &s->side, err);
    for (int l = u->layer_first; l < u->layer_first + u->layer_count && !rc; l++)
        for (int h = 0; h < s->side.kv_heads && !rc; h++) {
            size_t row = wk_kv_row(&s->side, l, h, u->token_first); /* [T][D] rows of (l, h) are contiguous */
            rc = wk_engine_kv_write_rows(s->e, l, h, u->token_first, u->token_count, s->side.k + row, s->side.v + row,
                                         err);
        }
    return rc;
}

static int host_decode(wk_kv_sink *s, const wk_kv_sink_item *items, size_t n, int keep_below, wk_err *err) {
    for (size_t i = 0; i < n; i++) {
        const wk_kv_sink_item *it = &items[i];
        int rc = s->codec->kind == WK_SCODEC_SEM  ? host_sem(s, it->data, it->len, keep_below, err)
                 : s->codec->kind == WK_SCODEC_CG ? host_cg(s, it->u, it->data, it->len, err)
                                                  : wk_stream_unit_decode_kv(s->codec, it->u, it->data, it->len, s->e, err);
        if (rc) return wk_err_prefix(err, "unit %u", it->index);
    }
    return 0;
}

static const sink_ops HOST_SINK = {"host", host_open, host_decode, host_free};

/* ---- GPU sink -------------------------------------------------------------------------------- */
#ifdef WIKV_HAVE_CUDA

static int cuda_open(wk_kv_sink *s, wk_err *err) {
    wk_stream_codec_kind k = s->codec->kind;
    if (k != WK_SCODEC_KIVI && k != WK_SCODEC_CG && k != WK_SCODEC_SEM)
        return wk_err_set(err, WK_EUNSUPPORTED, "kv sink cuda: codec %d is written through the host", (int)k);
    if (wk_engine_cuda_kv_cache(s->e, &s->dst.k, &s->dst.v, &s->dst.present, &s->dst.token_stride, err))
        return wk_err_set(err, WK_EUNSUPPORTED, "kv sink cuda: the engine is not a CUDA engine");
    const wk_model_config *c = &s->e->cfg;
    return wk_kv_cuda_open(c->n_layers, c->n_kv_heads, s->tokens, c->head_dim, &s->gpu, err);
}

static void cuda_free(wk_kv_sink *s) { wk_kv_cuda_free(s->gpu); }

/* A KIVI unit: its (layer, kv-head) blocks decoded and copied as one box. */
static int cuda_kivi(wk_kv_sink *s, const wk_unit *u, const uint8_t *data, size_t len, wk_err *err) {
    wk_kivi_params kp = {s->codec->kivi_bits, s->codec->kivi_group, s->codec->kivi_residual};
    int h0 = u->kv_head < 0 ? 0 : u->kv_head, nh = u->kv_head < 0 ? s->e->cfg.n_kv_heads : 1;
    int rc = wk_kv_cuda_kivi_rows(s->gpu, &kp, u->layer_first, u->layer_count, h0, nh, u->token_first, u->token_count,
                                  data, len, err);
    if (!rc) rc = wk_kv_cuda_export_box(s->gpu, &s->dst, u->layer_first, u->layer_count, h0, nh, u->token_first,
                                        u->token_count, err);
    return rc;
}

/* CacheGen chunks decoded in one call, each unit's box copied. */
static int cuda_cg(wk_kv_sink *s, const wk_kv_sink_item *items, size_t n, const uint8_t **data, size_t *len,
                   wk_err *err) {
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        data[i] = items[i].data;
        len[i] = items[i].len;
        rc = chunk_covers_unit(items[i].u, data[i], len[i], err);
    }
    if (!rc) rc = wk_kv_cuda_cachegen(s->gpu, (int)n, data, len, err);
    for (size_t i = 0; i < n && !rc; i++) {
        const wk_unit *u = items[i].u;
        rc = wk_kv_cuda_export_box(s->gpu, &s->dst, u->layer_first, u->layer_count, 0, s->e->cfg.n_kv_heads,
                                   u->token_first, u->token_count, err);
    }
    return rc;
}

/* Semantic batches decoded in one call, then every vector they name (tokens from keep_below on) copied. */
static int cuda_sem(wk_kv_sink *s, const wk_kv_sink_item *items, size_t n, int keep_below, const uint8_t **data,
                    size_t *len, wk_err *err) {
    const wk_model_config *c = &s->e->cfg;
    uint32_t *keep = NULL, *ids = NULL, got = 0;
    size_t nkeep = 0, cap = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        data[i] = items[i].data;
        len[i] = items[i].len;
        rc = wk_sem_batch_ids(data[i], len[i], c->n_layers, c->n_kv_heads, s->tokens, c->head_dim, &ids, &got, err);
        if (rc) break;
        if (nkeep + got > cap) {
            cap = (nkeep + got) * 2;
            uint32_t *more = realloc(keep, cap * sizeof *keep);
            if (!more) rc = wk_err_set(err, WK_ENOMEM, "kv sink: out of memory for %zu ids", cap);
            else keep = more;
        }
        for (uint32_t j = 0; j < got && !rc; j++)
            if ((int)(ids[j] % (uint32_t)s->tokens) >= keep_below) keep[nkeep++] = ids[j];
        free(ids);
    }
    if (!rc) rc = wk_kv_cuda_semantic(s->gpu, (int)n, data, len, err);
    if (!rc) rc = wk_kv_cuda_export_ids(s->gpu, &s->dst, keep, nkeep, err);
    free(keep);
    return rc;
}

static int cuda_decode(wk_kv_sink *s, const wk_kv_sink_item *items, size_t n, int keep_below, wk_err *err) {
    if (n == 0) return 0;
    int rc = wk_engine_cuda_sync(s->e, err); /* the engine's queued cache writes (clear, forward) land first */
    if (rc) return rc;
    if (s->codec->kind == WK_SCODEC_KIVI) {
        for (size_t i = 0; i < n && !rc; i++)
            if (cuda_kivi(s, items[i].u, items[i].data, items[i].len, err)) rc = wk_err_prefix(err, "unit %u", items[i].index);
        return rc;
    }
    const uint8_t **data = malloc(n * sizeof *data);
    size_t *len = malloc(n * sizeof *len);
    if (!data || !len) rc = wk_err_set(err, WK_ENOMEM, "kv sink: out of memory");
    else if (s->codec->kind == WK_SCODEC_CG) rc = cuda_cg(s, items, n, data, len, err);
    else rc = cuda_sem(s, items, n, keep_below, data, len, err);
    free(data);
    free(len);
    if (rc && n > 1) return wk_err_prefix(err, "units %u..%u", items[0].index, items[n - 1].index);
    if (rc) return wk_err_prefix(err, "unit %u", items[0].index);
    return 0;
}

static const sink_ops CUDA_SINK = {"cuda", cuda_open, cuda_decode, cuda_free};
#endif

/* ---- choice ------------------------------------------------------------------------------------ */

static const sink_ops *const SINKS[] = {
#ifdef WIKV_HAVE_CUDA
    &CUDA_SINK,
#endif
    &HOST_SINK,
};

static int try_open(const sink_ops *ops, wk_engine *e, const wk_stream_codec *c, int tokens, wk_kv_sink **out,
                    wk_err *err) {
    wk_kv_sink *s = calloc(1, sizeof *s);
    if (!s) return wk_err_set(err, WK_ENOMEM, "kv sink: out of memory");
    *s = (wk_kv_sink){.ops = ops, .e = e, .codec = c, .tokens = tokens};
    int rc = ops->open(s, err);
    if (rc) {
        ops->free(s);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int wk_kv_sink_open(wk_engine *e, const wk_stream_codec *c, int context_tokens, const char *kind, wk_kv_sink **out,
                    wk_err *err) {
    *out = NULL;
    if (context_tokens < 1 || context_tokens > e->kv_capacity)
        return wk_err_set(err, WK_EINVAL, "kv sink: context of %d tokens for a cache of %d", context_tokens,
                          e->kv_capacity);
    if (kind && strcmp(kind, "host") != 0 && strcmp(kind, "cuda") != 0)
        return wk_err_set(err, WK_EINVAL, "kv sink %s: unknown (host or cuda)", kind);
    int rc = 0, tried = 0;
    for (size_t i = 0; i < sizeof SINKS / sizeof SINKS[0]; i++) {
        if (kind && strcmp(kind, SINKS[i]->name) != 0) continue;
        tried = 1;
        rc = try_open(SINKS[i], e, c, context_tokens, out, err);
        if (rc != WK_EUNSUPPORTED) return rc; /* opened, or failed for a reason other than "not for this" */
    }
    if (!tried) return wk_err_set(err, WK_EUNSUPPORTED, "kv sink %s: this build has no CUDA (nvcc was not found)", kind);
    return rc;
}

int wk_kv_sink_decode(wk_kv_sink *s, const wk_kv_sink_item *items, size_t n, int keep_below, wk_err *err) {
    return s->ops->decode(s, items, n, keep_below, err);
}

const char *wk_kv_sink_kind(const wk_kv_sink *s) { return s->ops->name; }

void wk_kv_sink_free(wk_kv_sink *s) {
    if (!s) return;
    s->ops->free(s);
    free(s);
}
