/* Test helper: writes a tiny random-weight Llama-family model in Hugging Face layout (config.json +
 * model.safetensors) into a directory, so engine tests need no downloaded or committed weights. */
#ifndef WIKV_TESTS_TINY_MODEL_H
#define WIKV_TESTS_TINY_MODEL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"

typedef struct {
    const char *arch;      /* "LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "MistralForCausalLM" */
    int dim, hidden, layers, heads, kv_heads, vocab;
    int tie;
    const char *dtype;     /* "F32", "F16", "BF16" */
    uint64_t seed;
    const char *extra;     /* extra config.json members, e.g. "\"sliding_window\": 4," or "" */
} tiny_spec;

typedef struct {
    char name[128];
    int ndim;
    int64_t shape[2];
    int is_norm;
} tiny_tensor;

static inline float tiny_rand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xFFFFFF) / 16777216.0f * 2.0f - 1.0f;
}

static inline int tiny_list(const tiny_spec *sp, tiny_tensor *t) {
    int n = 0, hd = sp->dim / sp->heads, q = sp->heads * hd, kv = sp->kv_heads * hd;
    int bias = strcmp(sp->arch, "Qwen2ForCausalLM") == 0, qkn = strcmp(sp->arch, "Qwen3ForCausalLM") == 0;
#define T(nd, a, b, norm, ...)                                                                                         \
    do {                                                                                                               \
        snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__);                                                            \
        t[n].ndim = nd;                                                                                                \
        t[n].shape[0] = a;                                                                                             \
        t[n].shape[1] = b;                                                                                             \
        t[n].is_norm = norm;                                                                                           \
        n++;                                                                                                           \
    } while (0)
    T(2, sp->vocab, sp->dim, 0, "model.embed_tokens.weight");
    T(1, sp->dim, 0, 1, "model.norm.weight");
    if (!sp->tie) T(2, sp->vocab, sp->dim, 0, "lm_head.weight");
    for (int l = 0; l < sp->layers; l++) {
        T(1, sp->dim, 0, 1, "model.layers.%d.input_layernorm.weight", l);
        T(2, q, sp->dim, 0, "model.layers.%d.self_attn.q_proj.weight", l);
        T(2, kv, sp->dim, 0, "model.layers.%d.self_attn.k_proj.weight", l);
        T(2, kv, sp->dim, 0, "model.layers.%d.self_attn.v_proj.weight", l);
        if (bias) {
            T(1, q, 0, 0, "model.layers.%d.self_attn.q_proj.bias", l);
            T(1, kv, 0, 0, "model.layers.%d.self_attn.k_proj.bias", l);
            T(1, kv, 0, 0, "model.layers.%d.self_attn.v_proj.bias", l);
        }
        if (qkn) {
            T(1, hd, 0, 1, "model.layers.%d.self_attn.q_norm.weight", l);
            T(1, hd, 0, 1, "model.layers.%d.self_attn.k_norm.weight", l);
        }
        T(2, sp->dim, q, 0, "model.layers.%d.self_attn.o_proj.weight", l);
        T(1, sp->dim, 0, 1, "model.layers.%d.post_attention_layernorm.weight", l);
        T(2, sp->hidden, sp->dim, 0, "model.layers.%d.mlp.gate_proj.weight", l);
        T(2, sp->hidden, sp->dim, 0, "model.layers.%d.mlp.up_proj.weight", l);
        T(2, sp->dim, sp->hidden, 0, "model.layers.%d.mlp.down_proj.weight", l);
    }
#undef T
    return n;
}

/* Writes dir/config.json and dir/model.safetensors. Returns 0 on success. */
static inline int tiny_model_write(const char *dir, const tiny_spec *sp) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f,
            "{\"architectures\": [\"%s\"], \"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d,"
            " \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"vocab_size\": %d, \"rms_norm_eps\": 1e-05,"
            " \"rope_theta\": 10000.0, \"max_position_embeddings\": 4096, %s \"tie_word_embeddings\": %s,"
            " \"bos_token_id\": 1, \"eos_token_id\": 2}\n",
            sp->arch, sp->dim, sp->hidden, sp->layers, sp->heads, sp->kv_heads, sp->vocab, sp->extra ? sp->extra : "",
            sp->tie ? "true" : "false");
    fclose(f);
    tiny_tensor *t = calloc(256, sizeof *t);
    int n = tiny_list(sp, t);
    size_t esz = strcmp(sp->dtype, "F32") == 0 ? 4 : 2;
    size_t hcap = 64 + (size_t)n * 256, hlen = 0, off = 0;
    char *h = malloc(hcap);
    hlen += (size_t)snprintf(h + hlen, hcap - hlen, "{\"__metadata__\": {\"format\": \"pt\"}");
    for (int i = 0; i < n; i++) {
        size_t numel = (size_t)t[i].shape[0] * (size_t)(t[i].ndim == 2 ? t[i].shape[1] : 1);
        if (t[i].ndim == 2)
            hlen += (size_t)snprintf(h + hlen, hcap - hlen, ", \"%s\": {\"dtype\": \"%s\", \"shape\": [%lld, %lld], \"data_offsets\": [%zu, %zu]}",
                                     t[i].name, sp->dtype, (long long)t[i].shape[0], (long long)t[i].shape[1], off, off + numel * esz);
        else
            hlen += (size_t)snprintf(h + hlen, hcap - hlen, ", \"%s\": {\"dtype\": \"%s\", \"shape\": [%lld], \"data_offsets\": [%zu, %zu]}",
                                     t[i].name, sp->dtype, (long long)t[i].shape[0], off, off + numel * esz);
        off += numel * esz;
    }
    hlen += (size_t)snprintf(h + hlen, hcap - hlen, "}");
    while (hlen % 8) h[hlen++] = ' ';
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    f = fopen(path, "wb");
    if (!f) return -1;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(((uint64_t)hlen >> (8 * i)) & 0xFF);
    fwrite(len8, 1, 8, f);
    fwrite(h, 1, hlen, f);
    uint64_t rng = sp->seed;
    for (int i = 0; i < n; i++) {
        size_t numel = (size_t)t[i].shape[0] * (size_t)(t[i].ndim == 2 ? t[i].shape[1] : 1);
        /* Matrices ~U(-a, a) with a = 1.7 / sqrt(fan_in) keeps activations O(1); norms near 1. */
        float a = t[i].ndim == 2 ? 1.7f / sqrtf((float)t[i].shape[1]) : 0.2f;
        for (size_t j = 0; j < numel; j++) {
            float v = tiny_rand(&rng) * a + (t[i].is_norm ? 1.0f : 0.0f);
            if (strstr(t[i].name, "embed_tokens")) v = tiny_rand(&rng);
            if (esz == 4) fwrite(&v, 4, 1, f);
            else {
                uint16_t b = strcmp(sp->dtype, "F16") == 0 ? wk_float_to_half(v) : wk_float_to_bf16(v);
                uint8_t le[2] = {(uint8_t)(b & 0xFF), (uint8_t)(b >> 8)};
                fwrite(le, 1, 2, f);
            }
        }
    }
    fclose(f);
    free(h);
    free(t);
    return 0;
}

/* A fresh temporary directory (mkdtemp); caller removes it with tiny_rmdir. */
static inline int tiny_tmpdir(char *out, size_t cap) {
    snprintf(out, cap, "/tmp/wikv-test-XXXXXX");
    return mkdtemp(out) ? 0 : -1;
}

static inline void tiny_rmdir(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

#endif
