/* Unit codecs of the real execution (which bytes a unit carries and how the device writes them into
 * its KV cache), the request's wire form, prompts, and KV prefill into an fp16 tensor. */
#include "exec/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crc32c.h"
#include "core/half.h"
#include "kv/cachegen.h"
#include "kv/kivi.h"
#include "kv/semantic.h"
#include "models/model_spec.h"

int wk_stream_codec_for(const wk_policy *p, wk_stream_codec *c, wk_err *err) {
    memset(c, 0, sizeof *c);
    const char *name = p->ops->name;
    if (strcmp(name, "prefill") == 0) c->kind = WK_SCODEC_NONE;
    else if (strcmp(name, "full") == 0) c->kind = WK_SCODEC_FP16;
    else if (strcmp(name, "kivi2") == 0 || strcmp(name, "kivi4") == 0) {
        c->kind = WK_SCODEC_KIVI;
        c->kivi_bits = name[4] - '0';
        /* as the kivi policy plans it: R at least G and a multiple of it */
        c->kivi_group = (int)wk_policy_param(p, "group");
        c->kivi_residual = (int)wk_policy_param(p, "residual");
        if (c->kivi_residual < c->kivi_group) c->kivi_residual = c->kivi_group;
        c->kivi_residual -= c->kivi_residual % c->kivi_group;
    } else if (strcmp(name, "wikv") == 0 || strcmp(name, "hybrid") == 0) /* hybrid's slices: WiKV level 0 */
        c->kind = WK_SCODEC_SEM;
    else if (strcmp(name, "cachegen") == 0)
        c->kind = WK_SCODEC_CG;
    else if (strcmp(name, "h2o") == 0 || strcmp(name, "snapkv") == 0 || strcmp(name, "streamingllm") == 0 ||
             strcmp(name, "pyramidkv") == 0 || strcmp(name, "simcalkv") == 0)
        c->kind = WK_SCODEC_VEC16;
    else
        return wk_err_set(err, WK_EUNSUPPORTED,
                          "policy %s: no exec codec yet (exec runs prefill, full, kivi2, kivi4, cachegen, wikv, hybrid and the "
                          "eviction policies)", name);
    return 0;
}

int wk_stream_policy_ranks(const wk_policy *p) {
    static const char *ranked[] = {"wikv", "hybrid", "h2o", "snapkv", "streamingllm", "pyramidkv", "simcalkv"};
    for (size_t i = 0; i < sizeof ranked / sizeof ranked[0]; i++)
        if (strcmp(p->ops->name, ranked[i]) == 0) return 1;
    return 0;
}

static int unit_heads(const wk_unit *u, int kv_heads, int *h0, int *h1) {
    *h0 = u->kv_head < 0 ? 0 : u->kv_head;
    *h1 = u->kv_head < 0 ? kv_heads : u->kv_head + 1;
    return *h1 - *h0;
}

int64_t wk_stream_unit_bytes(const wk_stream_codec *c, const wk_unit *u, int kv_heads, int head_dim) {
    if (u->kind == WK_UNIT_TEXT) return (int64_t)u->token_count * 4;
    if (c->kind == WK_SCODEC_SEM || c->kind == WK_SCODEC_CG) return -1; /* entropy-coded: known once encoded */
    if (c->kind == WK_SCODEC_VEC16) return -1; /* the device's plan may keep other vectors: checked when decoded */
    int h0, h1;
    int64_t blocks = (int64_t)u->layer_count * unit_heads(u, kv_heads, &h0, &h1);
    if (c->kind == WK_SCODEC_FP16) return blocks * u->token_count * head_dim * 4;
    if (c->kind == WK_SCODEC_KIVI) {
        wk_kivi_params kp = {c->kivi_bits, c->kivi_group, c->kivi_residual};
        return blocks * wk_kivi_bytes(&kp, u->token_count, head_dim);
    }
    return -1;
}

static int check_unit(const wk_unit *u, int layers, int kv_heads, int tokens, wk_err *err) {
    if (u->layer_first < 0 || u->layer_count < 0 || u->layer_first + u->layer_count > layers || u->token_first < 0 ||
        u->token_count < 1 || u->token_first + u->token_count > tokens || u->kv_head >= kv_heads)
        return wk_err_set(err, WK_EINVAL, "unit (layers %d+%d, tokens %d+%d, head %d) outside the KV (%d x %d x %d)",
                          u->layer_first, u->layer_count, u->token_first, u->token_count, u->kv_head, layers,
                          kv_heads, tokens);
    return 0;
}

static int encode_vec16(const wk_unit *u, const wk_kv_tensor *kv, uint8_t **out, size_t *len, wk_err *err) {
    size_t per = 4 + 4 * (size_t)kv->head_dim, n = (size_t)u->n_vectors;
    size_t total_ids = (size_t)kv->layers * kv->kv_heads * kv->tokens;
    if (!u->vectors || u->n_vectors < 1) return wk_err_set(err, WK_EINVAL, "eviction unit without its vector ids");
    uint8_t *b = malloc(n * per);
    if (!b) return wk_err_set(err, WK_ENOMEM, "eviction unit: out of memory");
    for (size_t i = 0; i < n; i++) {
        uint32_t id = u->vectors[i];
        if (id >= total_ids) {
            free(b);
            return wk_err_set(err, WK_EINVAL, "eviction unit: vector id %u beyond the KV", id);
        }
        uint8_t *p = b + i * per;
        for (int k = 0; k < 4; k++) p[k] = (uint8_t)(id >> (8 * k));
        const uint16_t *kr = kv->k + (size_t)id * kv->head_dim, *vr = kv->v + (size_t)id * kv->head_dim;
        for (int j = 0; j < kv->head_dim; j++) {
            p[4 + 2 * j] = (uint8_t)kr[j];
            p[5 + 2 * j] = (uint8_t)(kr[j] >> 8);
            p[4 + 2 * kv->head_dim + 2 * j] = (uint8_t)vr[j];
            p[5 + 2 * kv->head_dim + 2 * j] = (uint8_t)(vr[j] >> 8);
        }
    }
    *out = b;
    *len = n * per;
    return 0;
}

/* Kept vectors with their ids, each inside the unit's layers and the context. */
static int decode_vec16(const wk_unit *u, const uint8_t *data, size_t len, wk_engine *e, int tokens, wk_err *err) {
    int d = e->cfg.head_dim, heads = e->cfg.n_kv_heads;
    size_t per = 4 + 4 * (size_t)d;
    if (len % per != 0) return wk_err_set(err, WK_EFORMAT, "eviction unit: %zu bytes, not whole %zu-byte vectors", len, per);
    float kf[WK_KV_MAX_HEAD_DIM], vf[WK_KV_MAX_HEAD_DIM];
    for (size_t off = 0; off < len; off += per) {
        const uint8_t *p = data + off;
        uint32_t id = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        uint32_t t = id % (uint32_t)tokens, lh = id / (uint32_t)tokens;
        int l = (int)(lh / (uint32_t)heads), h = (int)(lh % (uint32_t)heads);
        if (l < u->layer_first || l >= u->layer_first + u->layer_count)
            return wk_err_set(err, WK_EFORMAT, "eviction unit: offset %zu: vector id %u outside the unit's layers", off, id);
        for (int j = 0; j < d; j++) {
            kf[j] = wk_half_to_float((uint16_t)(p[4 + 2 * j] | p[5 + 2 * j] << 8));
            vf[j] = wk_half_to_float((uint16_t)(p[4 + 2 * d + 2 * j] | p[5 + 2 * d + 2 * j] << 8));
        }
        int rc = e->ops->kv_write(e, l, h, (int)t, kf, vf, err);
        if (rc) return rc;
    }
    return 0;
}

int wk_stream_unit_encode(const wk_stream_codec *c, const wk_unit *u, const wk_kv_tensor *kv, const int32_t *ids,
                          int n_ids, uint8_t **out, size_t *len, wk_err *err) {
    *out = NULL;
    *len = 0;
    if (u->kind == WK_UNIT_TEXT) {
        if (u->token_first < 0 || u->token_count < 1 || u->token_first + u->token_count > n_ids)
            return wk_err_set(err, WK_EINVAL, "text unit tokens %d+%d beyond the prompt (%d)", u->token_first,
                              u->token_count, n_ids);
        uint8_t *b = malloc((size_t)u->token_count * 4);
        if (!b) return wk_err_set(err, WK_ENOMEM, "text unit: out of memory");
        for (int i = 0; i < u->token_count; i++) {
            uint32_t id = (uint32_t)ids[u->token_first + i];
            for (int k = 0; k < 4; k++) b[4 * i + k] = (uint8_t)(id >> (8 * k));
        }
        *out = b;
        *len = (size_t)u->token_count * 4;
        return 0;
    }
    if (!kv) return wk_err_set(err, WK_ESTATE, "KV unit without KV");
    if (c->kind == WK_SCODEC_SEM) {
        if (!u->vectors || u->n_vectors < 1) return wk_err_set(err, WK_EINVAL, "semantic unit without its vector ids");
        wk_sem_params sp = wk_sem_defaults(kv->layers);
        return wk_sem_encode_batch(&sp, kv, u->vectors, u->n_vectors, u->level, out, len, NULL, NULL, err);
    }
    if (c->kind == WK_SCODEC_VEC16) return encode_vec16(u, kv, out, len, err);
    int rc = check_unit(u, kv->layers, kv->kv_heads, kv->tokens, err);
    if (rc) return rc;
    if (c->kind == WK_SCODEC_CG) {
        if (u->kv_head >= 0) return wk_err_set(err, WK_EINVAL, "cachegen unit of one KV head: chunks hold all heads");
        wk_cg_params cp = wk_cg_defaults();
        cp.level = u->level;
        return wk_cg_encode(&cp, kv, u->layer_first, u->layer_count, u->token_first, u->token_count, out, len, NULL, err);
    }
    int64_t total = wk_stream_unit_bytes(c, u, kv->kv_heads, kv->head_dim);
    if (total <= 0) return wk_err_set(err, WK_EINVAL, "KV unit under codec %d has no encoding", (int)c->kind);
    uint8_t *b = malloc((size_t)total);
    if (!b) return wk_err_set(err, WK_ENOMEM, "KV unit: out of memory (%lld bytes)", (long long)total);
    size_t off = 0, row = (size_t)u->token_count * kv->head_dim;
    int h0, h1;
    unit_heads(u, kv->kv_heads, &h0, &h1);
    wk_kivi_params kp = {c->kivi_bits, c->kivi_group, c->kivi_residual};
    for (int l = u->layer_first; l < u->layer_first + u->layer_count && !rc; l++) {
        for (int h = h0; h < h1 && !rc; h++) {
            const uint16_t *k = kv->k + wk_kv_row(kv, l, h, u->token_first);
            const uint16_t *v = kv->v + wk_kv_row(kv, l, h, u->token_first);
            if (c->kind == WK_SCODEC_FP16) {
                for (size_t i = 0; i < row; i++) {
                    b[off + 2 * i] = (uint8_t)k[i];
                    b[off + 2 * i + 1] = (uint8_t)(k[i] >> 8);
                    b[off + 2 * row + 2 * i] = (uint8_t)v[i];
                    b[off + 2 * row + 2 * i + 1] = (uint8_t)(v[i] >> 8);
                }
                off += 4 * row;
            } else {
                size_t got = 0;
                rc = wk_kivi_encode_head(&kp, u->token_count, kv->head_dim, k, v, b + off, (size_t)total - off, &got,
                                         err);
                off += got;
            }
        }
    }
    if (!rc && off != (size_t)total) rc = wk_err_set(err, WK_ESTATE, "unit encoded to %zu bytes, expected %lld", off, (long long)total);
    if (rc) {
        free(b);
        return rc;
    }
    *out = b;
    *len = off;
    return 0;
}

static int write_rows(wk_engine *e, int l, int h, const wk_unit *u, const uint16_t *k, const uint16_t *v, wk_err *err) {
    return wk_engine_kv_write_rows(e, l, h, u->token_first, u->token_count, k, v, err);
}

int wk_stream_unit_decode_kv(const wk_stream_codec *c, const wk_unit *u, const uint8_t *data, size_t len,
                             wk_engine *e, wk_err *err) {
    int kvh = e->cfg.n_kv_heads, d = e->cfg.head_dim;
    int rc = check_unit(u, e->cfg.n_layers, kvh, e->kv_capacity, err);
    if (rc) return rc;
    if (c->kind == WK_SCODEC_VEC16) return decode_vec16(u, data, len, e, u->token_first + u->token_count, err);
    int64_t want = wk_stream_unit_bytes(c, u, kvh, d);
    if (want < 0 || (int64_t)len != want)
        return wk_err_set(err, WK_EFORMAT, "unit payload: %zu bytes, codec expects %lld", len, (long long)want);
    size_t row = (size_t)u->token_count * d;
    uint16_t *k = malloc(row * sizeof *k), *v = malloc(row * sizeof *v);
    if (!k || !v) rc = wk_err_set(err, WK_ENOMEM, "unit decode: out of memory");
    int h0, h1;
    unit_heads(u, kvh, &h0, &h1);
    wk_kivi_params kp = {c->kivi_bits, c->kivi_group, c->kivi_residual};
    int64_t block = want / ((int64_t)u->layer_count * (h1 - h0));
    size_t off = 0;
    for (int l = u->layer_first; l < u->layer_first + u->layer_count && !rc; l++) {
        for (int h = h0; h < h1 && !rc; h++, off += (size_t)block) {
            if (c->kind == WK_SCODEC_FP16) {
                for (size_t i = 0; i < row; i++) {
                    k[i] = (uint16_t)(data[off + 2 * i] | data[off + 2 * i + 1] << 8);
                    v[i] = (uint16_t)(data[off + 2 * row + 2 * i] | data[off + 2 * row + 2 * i + 1] << 8);
                }
            } else {
                rc = wk_kivi_decode_head(&kp, u->token_count, d, data + off, (size_t)block, k, v, err);
                if (rc) break;
            }
            rc = write_rows(e, l, h, u, k, v, err);
        }
    }
    free(k);
    free(v);
    return rc;
}

int wk_stream_unit_decode_text(const wk_unit *u, const uint8_t *data, size_t len, int vocab, int32_t *ids,
                               wk_err *err) {
    if (len != (size_t)u->token_count * 4)
        return wk_err_set(err, WK_EFORMAT, "text unit: %zu bytes, expected %d", len, u->token_count * 4);
    for (int i = 0; i < u->token_count; i++) {
        uint32_t id = (uint32_t)data[4 * i] | (uint32_t)data[4 * i + 1] << 8 | (uint32_t)data[4 * i + 2] << 16 |
                      (uint32_t)data[4 * i + 3] << 24;
        if (id >= (uint32_t)vocab)
            return wk_err_set(err, WK_EFORMAT, "text unit: token id %u at offset %d outside the vocabulary (%d)", id,
                              4 * i, vocab);
        ids[u->token_first + i] = (int32_t)id;
    }
    return 0;
}

/* ---- jobs and prompts ---------------------------------------------------------------------- */

int wk_stream_job_to_wire(const wk_stream_job *job, wk_wire_request *r, wk_err *err) {
    memset(r, 0, sizeof *r);
    snprintf(r->task_id, sizeof r->task_id, "%s", wk_task_name(job->task));
    snprintf(r->context_id, sizeof r->context_id, "seed=%llu;context=%d;out=%d", (unsigned long long)job->seed,
             job->context, job->output_tokens);
    const char *colon = strchr(job->policy, ':');
    size_t nlen = colon ? (size_t)(colon - job->policy) : strlen(job->policy);
    if (nlen == 0 || nlen >= sizeof r->policy) return wk_err_set(err, WK_EINVAL, "policy name \"%s\" too long", job->policy);
    memcpy(r->policy, job->policy, nlen);
    if (colon) {
        snprintf(r->params, sizeof r->params, "%s", colon + 1);
        for (char *p = r->params; *p; p++)
            if (*p == ',') *p = ';';
    }
    return 0;
}

int wk_stream_job_from_wire(const wk_wire_request *r, wk_stream_job *job, wk_err *err) {
    memset(job, 0, sizeof *job);
    int rc = wk_task_kind_parse(r->task_id, &job->task, err);
    if (rc) return wk_err_prefix(err, "REQUEST task_id");
    unsigned long long seed;
    int n = 0;
    if (sscanf(r->context_id, "seed=%llu;context=%d;out=%d%n", &seed, &job->context, &job->output_tokens, &n) != 3 ||
        r->context_id[n] != '\0')
        return wk_err_set(err, WK_EFORMAT, "REQUEST context_id \"%s\": expected seed=S;context=N;out=K", r->context_id);
    if (job->context < WK_TASK_MIN_TOKENS || job->context > 1000000 || job->output_tokens < 1 ||
        job->output_tokens > 4096)
        return wk_err_set(err, WK_EFORMAT, "REQUEST context_id \"%s\": context or out out of range", r->context_id);
    job->seed = seed;
    int used = snprintf(job->policy, sizeof job->policy, "%s%s%s", r->policy, r->params[0] ? ":" : "", r->params);
    if (used < 0 || (size_t)used >= sizeof job->policy) return wk_err_set(err, WK_EFORMAT, "REQUEST params too long");
    for (char *p = job->policy; *p; p++)
        if (*p == ';') *p = ',';
    return 0;
}

int wk_stream_prompt_make(const wk_tokenizer *tok, const wk_stream_job *job, wk_stream_prompt *p, wk_err *err) {
    memset(p, 0, sizeof *p);
    int rc = wk_task_generate(job->task, job->seed, (size_t)job->context, &p->item, err);
    if (rc) return rc;
    size_t len = strlen(p->item.context) + strlen(p->item.input) + 32;
    char *text = malloc(len);
    if (!text) {
        wk_stream_prompt_free(p);
        return wk_err_set(err, WK_ENOMEM, "prompt: out of memory");
    }
    snprintf(text, len, "%s\n\nQuestion: %s\nAnswer:", p->item.context, p->item.input); /* WK_TASK_PROMPT */
    size_t n = 0;
    rc = wk_tokenizer_encode(tok, text, strlen(text), WK_TOK_ADD_SPECIAL, &p->ids, &n, err);
    free(text);
    p->n = (int)n;
    if (rc) wk_stream_prompt_free(p);
    return rc;
}

void wk_stream_prompt_free(wk_stream_prompt *p) {
    wk_task_item_free(&p->item);
    free(p->ids);
    memset(p, 0, sizeof *p);
}

/* Prefill of ids + probe with the attention export; imp [L][H][n] gets the context columns. */
static int prefill_attention(wk_engine *e, const wk_tokenizer *tok, const int32_t *ids, int n, float *imp,
                             wk_err *err) {
    int32_t *probe = NULL, *all = NULL;
    float *attn = NULL;
    size_t np = 0;
    int rc = wk_tokenizer_encode(tok, WK_STREAM_PROBE, strlen(WK_STREAM_PROBE), 0, &probe, &np, err);
    int total = n + (int)np, lh = e->cfg.n_layers * e->cfg.n_kv_heads;
    if (!rc && total > e->kv_capacity)
        rc = wk_err_set(err, WK_EINVAL, "prompt + probe (%d tokens) beyond the KV capacity %d", total, e->kv_capacity);
    if (!rc && (!(all = malloc((size_t)total * sizeof *all)) || !(attn = malloc((size_t)lh * total * sizeof *attn))))
        rc = wk_err_set(err, WK_ENOMEM, "attention export: out of memory");
    if (!rc) {
        memcpy(all, ids, (size_t)n * sizeof *all);
        memcpy(all + n, probe, np * sizeof *all);
        int rows = total < WK_STREAM_ATTN_ROWS ? total : WK_STREAM_ATTN_ROWS;
        rc = wk_engine_attention(e, all, total, rows, attn, err);
    }
    for (int i = 0; !rc && i < lh; i++) memcpy(imp + (size_t)i * n, attn + (size_t)i * total, (size_t)n * sizeof *imp);
    free(probe);
    free(all);
    free(attn);
    return rc;
}

int wk_stream_prefill_kv(wk_engine *e, const wk_tokenizer *tok, const int32_t *ids, int n, wk_kv_tensor *kv,
                         float *imp, wk_err *err) {
    e->ops->kv_clear(e);
    /* the probe follows the context causally: slots [0, n) hold the context's own KV either way */
    int rc = imp ? prefill_attention(e, tok, ids, n, imp, err) : wk_engine_prefill(e, ids, n, 0, NULL, err);
    if (!rc) rc = wk_kv_tensor_alloc(kv, e->cfg.n_layers, e->cfg.n_kv_heads, n, e->cfg.head_dim, err);
    if (rc) return rc;
    /* one (layer, head) block of [n][head_dim] at a time: a GPU cache copies it in one transfer */
    for (int l = 0; l < kv->layers && !rc; l++)
        for (int h = 0; h < kv->kv_heads && !rc; h++)
            rc = wk_engine_kv_read_rows(e, l, h, 0, n, kv->k + wk_kv_row(kv, l, h, 0), kv->v + wk_kv_row(kv, l, h, 0), err);
    if (rc) wk_kv_tensor_free(kv);
    return rc;
}

int wk_stream_model_is_synthetic(const char *model) { return model && strncmp(model, "synthetic:", 10) == 0; }

void wk_stream_tokenizer_dir(const char *model, const char *tokenizer, char *buf, size_t cap) {
    if (tokenizer) snprintf(buf, cap, "%s", tokenizer);
    else if (wk_stream_model_is_synthetic(model)) snprintf(buf, cap, "%s/%s", wk_data_dir(), WK_STREAM_SYNTH_TOKENIZER);
    else snprintf(buf, cap, "%s", model);
}

int wk_stream_check_vocab(const wk_tokenizer *tok, int model_vocab, const char *model, wk_err *err) {
    int v = wk_tokenizer_vocab_size(tok);
    if (v > model_vocab)
        return wk_err_set(err, WK_EINVAL, "tokenizer ids reach %d, beyond the vocabulary of %s (%d)", v - 1, model,
                          model_vocab);
    return 0;
}

void wk_stream_kv_path(const char *dir, const wk_stream_job *job, const char *ext, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s-%d-%llu.%s", dir, wk_task_name(job->task), job->context, (unsigned long long)job->seed,
             ext);
}

/* ---- importance files ------------------------------------------------------------------------ */

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int wk_stream_importance_write(const char *path, const float *imp, int layers, int kv_heads, int tokens, wk_err *err) {
    size_t n = (size_t)layers * kv_heads * tokens, len = 28 + 4 * n;
    uint8_t *b = malloc(len);
    if (!b) return wk_err_set(err, WK_ENOMEM, "%s: out of memory", path);
    memcpy(b, "WKIM", 4);
    put32(b + 4, 1);
    put32(b + 8, (uint32_t)layers);
    put32(b + 12, (uint32_t)kv_heads);
    put32(b + 16, (uint32_t)tokens);
    for (size_t i = 0; i < n; i++) {
        uint32_t v;
        memcpy(&v, &imp[i], 4);
        put32(b + 28 + 4 * i, v);
    }
    put32(b + 20, wk_crc32c(0, b + 28, 4 * n));
    put32(b + 24, wk_crc32c(0, b, 24));
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(b, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = 0;
    free(b);
    return ok ? 0 : wk_err_set(err, WK_EIO, "%s: cannot write", path);
}

int wk_stream_importance_read(const char *path, int layers, int kv_heads, int tokens, float **imp, wk_err *err) {
    *imp = NULL;
    size_t n = (size_t)layers * kv_heads * tokens, len = 28 + 4 * n;
    uint8_t *b = malloc(len + 1);
    if (!b) return wk_err_set(err, WK_ENOMEM, "%s: out of memory", path);
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(b, 1, len + 1, f) : 0;
    if (f) fclose(f);
    int rc = 0;
    if (!f) rc = wk_err_set(err, WK_ENOTFOUND, "%s: cannot open", path);
    else if (got < 28 || memcmp(b, "WKIM", 4) != 0) rc = wk_err_set(err, WK_EFORMAT, "%s: offset 0: magic is not WKIM", path);
    else if (get32(b + 24) != wk_crc32c(0, b, 24)) rc = wk_err_set(err, WK_EFORMAT, "%s: offset 24: header CRC mismatch", path);
    else if (get32(b + 4) != 1) rc = wk_err_set(err, WK_EFORMAT, "%s: offset 4: version %u not supported", path, get32(b + 4));
    else if (get32(b + 8) != (uint32_t)layers || get32(b + 12) != (uint32_t)kv_heads || get32(b + 16) != (uint32_t)tokens)
        rc = wk_err_set(err, WK_EFORMAT, "%s: offset 8: shape %ux%ux%u, expected %dx%dx%d", path, get32(b + 8),
                        get32(b + 12), get32(b + 16), layers, kv_heads, tokens);
    else if (got != len) rc = wk_err_set(err, WK_EFORMAT, "%s: %zu bytes, the shape needs %zu", path, got, len);
    else if (get32(b + 20) != wk_crc32c(0, b + 28, 4 * n)) rc = wk_err_set(err, WK_EFORMAT, "%s: offset 20: payload CRC mismatch", path);
    float *out = rc ? NULL : malloc(n * sizeof *out);
    if (!rc && !out) rc = wk_err_set(err, WK_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; !rc && i < n; i++) {
        uint32_t v = get32(b + 28 + 4 * i);
        memcpy(&out[i], &v, 4);
    }
    free(b);
    if (!rc) *imp = out;
    return rc;
}
