/* Backend-independent engine code: loading fp32 weights from safetensors by their HF names, chunked
 * prefill, attention export over a whole prompt, and freeing through the backend vtable. */
#include "exec/engine.h"

#include <stdio.h>

#include "core/half.h"
#include "kv/kv_tensor.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    float **dst;
    char name[160];
    int ndim;
    int64_t shape[2];
} weight_slot;

/* Fills slots with every tensor the config implies; returns the count (<= cap). */
static int list_weights(const wk_model_config *c, wk_engine_weights *w, weight_slot *s, int cap) {
    int n = 0;
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
#define SLOT(ptr, nm, d0, d1, nd)                                                                                      \
    do {                                                                                                               \
        if (n < cap) {                                                                                                 \
            s[n].dst = (ptr);                                                                                          \
            snprintf(s[n].name, sizeof s[n].name, "%s", nm);                                                           \
            s[n].ndim = (nd);                                                                                          \
            s[n].shape[0] = (d0);                                                                                      \
            s[n].shape[1] = (d1);                                                                                      \
        }                                                                                                              \
        n++;                                                                                                           \
    } while (0)
    SLOT(&w->embed, "model.embed_tokens.weight", c->vocab_size, c->dim, 2);
    SLOT(&w->final_norm, "model.norm.weight", c->dim, 0, 1);
    if (!c->tie_embeddings) SLOT(&w->lm_head, "lm_head.weight", c->vocab_size, c->dim, 2);
    char nm[160];
    for (int l = 0; l < c->n_layers; l++) {
        wk_layer_weights *L = &w->layers[l];
#define LAYER(ptr, suffix, d0, d1, nd)                                                                                 \
    do {                                                                                                               \
        snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix);                                                      \
        SLOT(ptr, nm, d0, d1, nd);                                                                                     \
    } while (0)
        LAYER(&L->attn_norm, "input_layernorm.weight", c->dim, 0, 1);
        LAYER(&L->wq, "self_attn.q_proj.weight", q, c->dim, 2);
        LAYER(&L->wk, "self_attn.k_proj.weight", kv, c->dim, 2);
        LAYER(&L->wv, "self_attn.v_proj.weight", kv, c->dim, 2);
        if (c->qkv_bias) {
            LAYER(&L->bq, "self_attn.q_proj.bias", q, 0, 1);
            LAYER(&L->bk, "self_attn.k_proj.bias", kv, 0, 1);
            LAYER(&L->bv, "self_attn.v_proj.bias", kv, 0, 1);
        }
        if (c->qk_norm) {
            LAYER(&L->q_norm, "self_attn.q_norm.weight", c->head_dim, 0, 1);
            LAYER(&L->k_norm, "self_attn.k_norm.weight", c->head_dim, 0, 1);
        }
        LAYER(&L->wo, "self_attn.o_proj.weight", c->dim, q, 2);
        LAYER(&L->ffn_norm, "post_attention_layernorm.weight", c->dim, 0, 1);
        LAYER(&L->w_gate, "mlp.gate_proj.weight", c->hidden_dim, c->dim, 2);
        LAYER(&L->w_up, "mlp.up_proj.weight", c->hidden_dim, c->dim, 2);
        LAYER(&L->w_down, "mlp.down_proj.weight", c->dim, c->hidden_dim, 2);
#undef LAYER
    }
#undef SLOT
    return n;
}

static size_t slot_floats(const weight_slot *s) { return (size_t)s->shape[0] * (size_t)(s->ndim == 2 ? s->shape[1] : 1); }

/* Allocates the block and points every slot into it (slots[cap] filled, *n their count). */
static int weights_alloc(const wk_model_config *cfg, wk_engine_weights *w, weight_slot **slots_out, int *n_out,
                         wk_err *err) {
    memset(w, 0, sizeof *w);
    w->layers = calloc((size_t)cfg->n_layers, sizeof *w->layers);
    int cap = 3 + 16 * cfg->n_layers;
    weight_slot *slots = calloc((size_t)cap, sizeof *slots);
    if (!w->layers || !slots) {
        free(slots);
        wk_engine_weights_free(w);
        return wk_err_set(err, WK_ENOMEM, "weights: out of memory");
    }
    int n = list_weights(cfg, w, slots, cap);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += slot_floats(&slots[i]);
    w->storage = malloc(total * sizeof(float));
    w->n_floats = total;
    if (!w->storage) {
        free(slots);
        wk_engine_weights_free(w);
        return wk_err_set(err, WK_ENOMEM, "weights: cannot allocate %zu floats", total);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        *slots[i].dst = w->storage + off;
        off += slot_floats(&slots[i]);
    }
    if (cfg->tie_embeddings) w->lm_head = w->embed;
    *slots_out = slots;
    *n_out = n;
    return 0;
}

int wk_engine_weights_alloc(const wk_model_config *cfg, wk_engine_weights *w, wk_err *err) {
    weight_slot *slots;
    int n;
    int rc = weights_alloc(cfg, w, &slots, &n, err);
    if (!rc) free(slots);
    return rc;
}

int wk_engine_weights_load(const wk_model_config *cfg, const wk_safetensors *st, wk_engine_weights *w, wk_err *err) {
    weight_slot *slots;
    int n;
    int rc = weights_alloc(cfg, w, &slots, &n, err);
    if (rc) return rc;
    for (int i = 0; i < n && rc == 0; i++)
        rc = wk_st_load_f32(st, slots[i].name, slots[i].ndim, slots[i].shape, *slots[i].dst, err);
    free(slots);
    if (rc) wk_engine_weights_free(w);
    return rc;
}

void wk_engine_weights_free(wk_engine_weights *w) {
    free(w->storage);
    free(w->layers);
    memset(w, 0, sizeof *w);
}

int wk_engine_prefill(wk_engine *e, const int32_t *tokens, int n_tokens, int pos, float *logits, wk_err *err) {
    if (n_tokens < 1) return wk_err_set(err, WK_EINVAL, "prefill: no tokens");
    for (int done = 0; done < n_tokens;) {
        int n = n_tokens - done < e->max_chunk ? n_tokens - done : e->max_chunk;
        int last = done + n == n_tokens;
        wk_forward_args a = {.tokens = tokens + done, .n_tokens = n, .pos = pos + done,
                             .logits = last ? logits : NULL, .logit_rows = last && logits ? 1 : 0};
        int rc = e->ops->forward(e, &a, err);
        if (rc) return rc;
        done += n;
    }
    return 0;
}

int wk_engine_attention(wk_engine *e, const int32_t *tokens, int n, int rows, float *out, wk_err *err) {
    if (rows < 1 || rows > n) return wk_err_set(err, WK_EINVAL, "attention: rows %d not in [1, %d]", rows, n);
    size_t total = (size_t)e->cfg.n_layers * (size_t)e->cfg.n_kv_heads * (size_t)n;
    memset(out, 0, total * sizeof *out);
    for (int done = 0; done < n;) {
        int len = n - done < e->max_chunk ? n - done : e->max_chunk;
        int first_row = n - rows; /* rows [first_row, n) are query rows */
        int chunk_rows = done + len - (first_row > done ? first_row : done);
        wk_forward_args a = {.tokens = tokens + done, .n_tokens = len, .pos = done};
        if (chunk_rows > 0) {
            a.attn = out;
            a.attn_rows = chunk_rows;
            a.attn_stride = n;
        }
        int rc = e->ops->forward(e, &a, err);
        if (rc) return rc;
        done += len;
    }
    for (size_t i = 0; i < total; i++) out[i] /= (float)rows;
    return 0;
}

int wk_engine_kv_write_rows(wk_engine *e, int layer, int kv_head, int t0, int n, const uint16_t *k, const uint16_t *v,
                            wk_err *err) {
    if (n <= 0) return 0;
    if (e->ops->kv_write_rows) return e->ops->kv_write_rows(e, layer, kv_head, t0, n, k, v, err);
    int d = e->cfg.head_dim;
    if (d > WK_KV_MAX_HEAD_DIM) return wk_err_set(err, WK_EUNSUPPORTED, "kv rows: head_dim %d > %d", d, WK_KV_MAX_HEAD_DIM);
    float kf[WK_KV_MAX_HEAD_DIM], vf[WK_KV_MAX_HEAD_DIM];
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < d; i++) {
            kf[i] = wk_half_to_float(k[(size_t)t * d + i]);
            vf[i] = wk_half_to_float(v[(size_t)t * d + i]);
        }
        int rc = e->ops->kv_write(e, layer, kv_head, t0 + t, kf, vf, err);
        if (rc) return rc;
    }
    return 0;
}

int wk_engine_kv_read_rows(wk_engine *e, int layer, int kv_head, int t0, int n, uint16_t *k, uint16_t *v, wk_err *err) {
    if (n <= 0) return 0;
    if (e->ops->kv_read_rows) return e->ops->kv_read_rows(e, layer, kv_head, t0, n, k, v, err);
    int d = e->cfg.head_dim;
    if (d > WK_KV_MAX_HEAD_DIM) return wk_err_set(err, WK_EUNSUPPORTED, "kv rows: head_dim %d > %d", d, WK_KV_MAX_HEAD_DIM);
    float kf[WK_KV_MAX_HEAD_DIM], vf[WK_KV_MAX_HEAD_DIM];
    for (int t = 0; t < n; t++) {
        int rc = e->ops->kv_read(e, layer, kv_head, t0 + t, kf, vf, err);
        if (rc) return rc;
        for (int i = 0; i < d; i++) {
            k[(size_t)t * d + i] = wk_float_to_half(kf[i]);
            v[(size_t)t * d + i] = wk_float_to_half(vf[i]);
        }
    }
    return 0;
}

void wk_engine_free(wk_engine *e) {
    if (e && e->ops && e->ops->free) e->ops->free(e);
}

int wk_engine_generate(wk_engine *e, const int32_t *prompt, int n_prompt, int max_new, wk_sampler *s, const int32_t *stop,
                       int n_stop, int32_t *out, int *n_out, wk_err *err) {
    *n_out = 0;
    if (n_prompt < 1 || max_new < 0 || n_prompt > e->kv_capacity - max_new)
        return wk_err_set(err, WK_EINVAL, "generate: %d prompt + %d new tokens exceed KV capacity %d", n_prompt, max_new,
                          e->kv_capacity);
    float *logits = malloc((size_t)e->cfg.vocab_size * sizeof *logits);
    if (!logits) return wk_err_set(err, WK_ENOMEM, "generate: out of memory");
    e->ops->kv_clear(e);
    int rc = wk_engine_prefill(e, prompt, n_prompt, 0, logits, err);
    for (int i = 0; i < max_new && rc == 0; i++) {
        int32_t next = wk_sampler_sample(s, logits);
        out[(*n_out)++] = next;
        int stop_now = 0;
        for (int k = 0; k < n_stop; k++) stop_now |= next == stop[k];
        if (stop_now || i + 1 == max_new) break;
        rc = wk_engine_prefill(e, &next, 1, n_prompt + i, logits, err);
    }
    free(logits);
    return rc;
}

int wk_engine_check_forward(const wk_engine *e, const wk_forward_args *a, wk_err *err) {
    if (!a->tokens || a->n_tokens < 1 || a->n_tokens > e->max_chunk)
        return wk_err_set(err, WK_EINVAL, "forward: n_tokens %d not in [1, max_chunk %d]", a->n_tokens, e->max_chunk);
    if (a->pos < 0 || a->pos > e->kv_capacity - a->n_tokens)
        return wk_err_set(err, WK_EINVAL, "forward: positions [%d, %d) beyond KV capacity %d", a->pos, a->pos + a->n_tokens,
                          e->kv_capacity);
    if (a->logit_rows < 0 || a->logit_rows > a->n_tokens || (a->logit_rows > 0 && !a->logits))
        return wk_err_set(err, WK_EINVAL, "forward: logit_rows %d invalid", a->logit_rows);
    if (a->attn && (a->attn_rows < 1 || a->attn_rows > a->n_tokens || a->attn_stride < a->pos + a->n_tokens))
        return wk_err_set(err, WK_EINVAL, "forward: attn_rows %d / attn_stride %d invalid", a->attn_rows, a->attn_stride);
    for (int i = 0; i < a->n_tokens; i++)
        if (a->tokens[i] < 0 || a->tokens[i] >= e->cfg.vocab_size)
            return wk_err_set(err, WK_EINVAL, "forward: token[%d] = %d outside vocab %d", i, (int)a->tokens[i],
                              e->cfg.vocab_size);
    return 0;
}
