/* Synthetic weights on the CPU: the reference of the CUDA generator (exec/cuda/kernels_synth.cu),
 * bit for bit, and the CPU engine's copy of the CUDA engine's synthetic model, so that a small
 * "synthetic:NAME" runs end to end on machines without a GPU (CI) with the very weights the GPU
 * would generate. */
#include <math.h>
#include <string.h>

#include "core/half.h"
#include "exec/engine.h"

static uint32_t lowbias32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

uint32_t wk_synth_key(int layer, int kind) { return (uint32_t)((layer + 1) * 16 + kind); }

/* As synth_value in kernels_synth.cu: u in [-1, 1) from the 24 high bits; every operation is one
 * IEEE fp32 rounding (C11 without extensions does not contract a * b + c into an FMA). */
static float synth_value(size_t i, uint32_t hkey, float scale, float offset) {
    uint32_t h = lowbias32((uint32_t)i + hkey);
    float u = (float)(h >> 8) * (1.0f / 8388608.0f);
    u = u - 1.0f;
    float scaled = u * scale;
    return scaled + offset;
}

void wk_synth_f16(uint16_t *dst, size_t n, uint32_t key, float scale, float offset) {
    uint32_t hkey = lowbias32(key);
    for (size_t i = 0; i < n; i++) dst[i] = wk_float_to_half(synth_value(i, hkey, scale, offset));
}

void wk_synth_f32(float *dst, size_t n, uint32_t key, float scale, float offset) {
    uint32_t hkey = lowbias32(key);
    for (size_t i = 0; i < n; i++) dst[i] = synth_value(i, hkey, scale, offset);
}

/* An fp16 tensor of the CUDA engine, held as fp32 by the CPU engine. */
static void synth_f16_as_f32(float *dst, size_t n, uint32_t key, float scale, float offset) {
    uint32_t hkey = lowbias32(key);
    for (size_t i = 0; i < n; i++) dst[i] = wk_half_to_float(wk_float_to_half(synth_value(i, hkey, scale, offset)));
}

int wk_engine_weights_synth(const wk_model_config *c, wk_engine_weights *w, wk_err *err) {
    long long params = wk_model_config_n_params(c);
    if (params > WK_SYN_CPU_MAX_PARAMS)
        return wk_err_set(err, WK_EUNSUPPORTED,
                          "synthetic weights: %lld parameters is beyond the CPU engine's limit (%lld); use --backend cuda",
                          params, WK_SYN_CPU_MAX_PARAMS);
    int rc = wk_engine_weights_alloc(c, w, err);
    if (rc) return rc;
    size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim, d = (size_t)c->dim,
           hid = (size_t)c->hidden_dim;
    /* the scales as the CUDA engine's host code computes them */
    float a_d = 1.7f / sqrtf((float)d), a_q = 1.7f / sqrtf((float)qd), a_h = 1.7f / sqrtf((float)hid);
    synth_f16_as_f32(w->embed, (size_t)c->vocab_size * d, wk_synth_key(-1, WK_SYN_EMBED), 1.0f, 0.0f);
    if (!c->tie_embeddings)
        synth_f16_as_f32(w->lm_head, (size_t)c->vocab_size * d, wk_synth_key(-1, WK_SYN_LM_HEAD), a_d, 0.0f);
    wk_synth_f32(w->final_norm, d, wk_synth_key(-1, WK_SYN_FINAL_NORM), 0.2f, 1.0f);
    for (int l = 0; l < c->n_layers; l++) {
        wk_layer_weights *L = &w->layers[l];
        synth_f16_as_f32(L->wq, qd * d, wk_synth_key(l, WK_SYN_Q), a_d, 0.0f);
        synth_f16_as_f32(L->wk, kd * d, wk_synth_key(l, WK_SYN_K), a_d, 0.0f);
        synth_f16_as_f32(L->wv, kd * d, wk_synth_key(l, WK_SYN_V), a_d, 0.0f);
        synth_f16_as_f32(L->wo, d * qd, wk_synth_key(l, WK_SYN_O), a_q, 0.0f);
        synth_f16_as_f32(L->w_gate, hid * d, wk_synth_key(l, WK_SYN_GATE), a_d, 0.0f);
        synth_f16_as_f32(L->w_up, hid * d, wk_synth_key(l, WK_SYN_UP), a_d, 0.0f);
        synth_f16_as_f32(L->w_down, d * hid, wk_synth_key(l, WK_SYN_DOWN), a_h, 0.0f);
        wk_synth_f32(L->attn_norm, d, wk_synth_key(l, WK_SYN_ATTN_NORM), 0.2f, 1.0f);
        wk_synth_f32(L->ffn_norm, d, wk_synth_key(l, WK_SYN_FFN_NORM), 0.2f, 1.0f);
        if (c->qkv_bias) {
            wk_synth_f32(L->bq, qd, wk_synth_key(l, WK_SYN_Q_BIAS), 0.2f, 0.0f);
            wk_synth_f32(L->bk, kd, wk_synth_key(l, WK_SYN_K_BIAS), 0.2f, 0.0f);
            wk_synth_f32(L->bv, kd, wk_synth_key(l, WK_SYN_V_BIAS), 0.2f, 0.0f);
        }
        if (c->qk_norm) {
            wk_synth_f32(L->q_norm, (size_t)c->head_dim, wk_synth_key(l, WK_SYN_Q_NORM), 0.2f, 1.0f);
            wk_synth_f32(L->k_norm, (size_t)c->head_dim, wk_synth_key(l, WK_SYN_K_NORM), 0.2f, 1.0f);
        }
    }
    return 0;
}
