/* config.json -> wk_model_config. Every field is range-checked so that later allocations sized from
 * the config cannot overflow; a bad or unsupported field is named in the error. */
#include <math.h>
#include "exec/model_config.h"

#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "models/model_spec.h"

/* Upper bounds far above any supported model, so products of them stay far below 2^63. */
#define CFG_MAX_DIM (1 << 16)
#define CFG_MAX_LAYERS 1024
#define CFG_MAX_HEADS 1024
#define CFG_MAX_VOCAB (1 << 22)

typedef struct {
    const char *name;
    wk_arch arch;
} arch_name;

static const arch_name ARCHS[] = {
    {"LlamaForCausalLM", WK_ARCH_LLAMA},  {"MistralForCausalLM", WK_ARCH_MISTRAL},
    {"Qwen2ForCausalLM", WK_ARCH_QWEN2},  {"Qwen3ForCausalLM", WK_ARCH_QWEN3},
    {"llama", WK_ARCH_LLAMA},             {"mistral", WK_ARCH_MISTRAL},
    {"qwen2", WK_ARCH_QWEN2},             {"qwen3", WK_ARCH_QWEN3},
};

static int get_int_range(const wk_json *o, const char *what, const char *key, long long fallback, long long lo,
                         long long hi, int *out, wk_err *err) {
    long long v;
    const wk_json *f = wk_json_get(o, key);
    if (fallback < lo && (!f || f->type == WK_JSON_NULL))
        return wk_err_set(err, WK_EFORMAT, "%s: field %s missing", what, key);
    if (wk_json_get_int(o, key, fallback, &v, err) != 0) return wk_err_prefix(err, "%s", what);
    if (v < lo || v > hi)
        return wk_err_set(err, WK_EFORMAT, "%s: field %s = %lld out of range [%lld, %lld]", what, key, v, lo, hi);
    *out = (int)v;
    return 0;
}

static int get_float_range(const wk_json *o, const char *what, const char *key, double fallback, double lo,
                           double hi, float *out, wk_err *err) {
    double v;
    if (wk_json_get_number(o, key, fallback, &v, err) != 0) return wk_err_prefix(err, "%s", what);
    if (!(v >= lo && v <= hi))
        return wk_err_set(err, WK_EFORMAT, "%s: field %s = %g out of range [%g, %g]", what, key, v, lo, hi);
    *out = (float)v;
    return 0;
}

static int parse_arch(const wk_json *root, const char *what, wk_model_config *cfg, wk_err *err) {
    const char *name = NULL;
    const wk_json *archs = wk_json_get(root, "architectures");
    if (archs && archs->type == WK_JSON_ARRAY && archs->count > 0 && archs->items[0].type == WK_JSON_STRING)
        name = archs->items[0].string;
    else
        name = wk_json_get_string(root, "model_type");
    if (!name) return wk_err_set(err, WK_EFORMAT, "%s: field architectures (or model_type) missing", what);
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
        if (strcmp(name, ARCHS[i].name) == 0) {
            cfg->arch = ARCHS[i].arch;
            snprintf(cfg->arch_name, sizeof cfg->arch_name, "%s", name);
            return 0;
        }
    return wk_err_set(err, WK_EUNSUPPORTED, "%s: field architectures: '%.80s' is not supported (Llama, Mistral, Qwen2, Qwen3)",
                      what, name);
}

/* RoPE scaling from rope_scaling (transformers 4.x) or rope_parameters (5.x, which also holds
 * rope_theta). */
static int parse_rope_scaling(const wk_json *root, const char *what, wk_model_config *cfg, wk_err *err) {
    const wk_json *rs = wk_json_get(root, "rope_scaling");
    const wk_json *rp = wk_json_get(root, "rope_parameters");
    if (rp && rp->type == WK_JSON_OBJECT) {
        if (wk_json_get(rp, "rope_theta") &&
            get_float_range(rp, what, "rope_theta", 10000.0, 1.0, 1e12, &cfg->rope_theta, err))
            return err->code;
        if (!rs || rs->type == WK_JSON_NULL) rs = rp;
    }
    cfg->rope_type = WK_ROPE_DEFAULT;
    cfg->rope_factor = 1.0f;
    if (!rs || rs->type == WK_JSON_NULL) return 0;
    if (rs->type != WK_JSON_OBJECT) return wk_err_set(err, WK_EFORMAT, "%s: field rope_scaling: not an object", what);
    const char *type = wk_json_get_string(rs, "rope_type");
    if (!type) type = wk_json_get_string(rs, "type");
    if (!type || strcmp(type, "default") == 0) return 0;
    char sub[128];
    snprintf(sub, sizeof sub, "%s: rope_scaling", what);
    if (get_float_range(rs, sub, "factor", 1.0, 1e-3, 1e6, &cfg->rope_factor, err)) return err->code;
    if (strcmp(type, "linear") == 0) {
        cfg->rope_type = WK_ROPE_LINEAR;
        return 0;
    }
    if (strcmp(type, "llama3") == 0) {
        cfg->rope_type = WK_ROPE_LLAMA3;
        if (get_float_range(rs, sub, "low_freq_factor", 1.0, 1e-6, 1e6, &cfg->rope_low_freq_factor, err) ||
            get_float_range(rs, sub, "high_freq_factor", 4.0, 1e-6, 1e6, &cfg->rope_high_freq_factor, err) ||
            get_int_range(rs, sub, "original_max_position_embeddings", 8192, 1, 1 << 30, &cfg->rope_orig_max_pos, err))
            return err->code;
        if (cfg->rope_high_freq_factor <= cfg->rope_low_freq_factor)
            return wk_err_set(err, WK_EFORMAT, "%s: high_freq_factor must exceed low_freq_factor", sub);
        return 0;
    }
    return wk_err_set(err, WK_EUNSUPPORTED, "%s: field rope_scaling.rope_type '%.40s' is not supported", what, type);
}

static int parse_eos(const wk_json *root, const char *what, wk_model_config *cfg, wk_err *err) {
    const wk_json *e = wk_json_get(root, "eos_token_id");
    cfg->n_eos = 0;
    if (!e || e->type == WK_JSON_NULL) return 0;
    const wk_json *one = e;
    size_t n = 1;
    if (e->type == WK_JSON_ARRAY) n = e->count;
    for (size_t i = 0; i < n; i++) {
        if (e->type == WK_JSON_ARRAY) one = &e->items[i];
        if (one->type != WK_JSON_NUMBER || one->number < 0 || one->number >= CFG_MAX_VOCAB)
            return wk_err_set(err, WK_EFORMAT, "%s: field eos_token_id: bad token id", what);
        if (cfg->n_eos < WK_MAX_EOS) cfg->eos_token_ids[cfg->n_eos++] = (int)one->number;
    }
    return 0;
}

static int parse_flags(const wk_json *root, const char *what, wk_model_config *cfg, wk_err *err) {
    const wk_json *b = wk_json_get(root, "attention_bias");
    cfg->qkv_bias = cfg->arch == WK_ARCH_QWEN2;
    if (b && b->type == WK_JSON_BOOL) cfg->qkv_bias = cfg->arch == WK_ARCH_QWEN2 || b->number != 0;
    cfg->qk_norm = cfg->arch == WK_ARCH_QWEN3;
    const wk_json *t = wk_json_get(root, "tie_word_embeddings");
    cfg->tie_embeddings = 0;
    if (t && t->type == WK_JSON_BOOL) cfg->tie_embeddings = t->number != 0;
    else if (t && t->type != WK_JSON_NULL)
        return wk_err_set(err, WK_EFORMAT, "%s: field tie_word_embeddings: not a boolean", what);
    /* Sliding window: Mistral uses it when set; Qwen2/3 only with use_sliding_window=true. */
    cfg->sliding_window = 0;
    const wk_json *sw = wk_json_get(root, "sliding_window");
    const wk_json *use = wk_json_get(root, "use_sliding_window");
    int wanted = cfg->arch == WK_ARCH_MISTRAL || (use && use->type == WK_JSON_BOOL && use->number != 0);
    if (wanted && sw && sw->type == WK_JSON_NUMBER) {
        if (sw->number < 1 || sw->number > (1 << 30))
            return wk_err_set(err, WK_EFORMAT, "%s: field sliding_window out of range", what);
        cfg->sliding_window = (int)sw->number;
    }
    return 0;
}

static int check_shape(const char *what, wk_model_config *cfg, wk_err *err) {
    if (cfg->n_heads % cfg->n_kv_heads != 0)
        return wk_err_set(err, WK_EFORMAT, "%s: num_attention_heads %d not a multiple of num_key_value_heads %d", what,
                          cfg->n_heads, cfg->n_kv_heads);
    if (cfg->head_dim % 2 != 0) return wk_err_set(err, WK_EFORMAT, "%s: head_dim %d is odd (RoPE needs pairs)", what, cfg->head_dim);
    if ((long long)cfg->head_dim * cfg->n_heads > CFG_MAX_DIM * 4LL)
        return wk_err_set(err, WK_EFORMAT, "%s: head_dim * num_attention_heads too large", what);
    if (cfg->bos_token_id >= cfg->vocab_size) return wk_err_set(err, WK_EFORMAT, "%s: bos_token_id beyond vocab_size", what);
    for (int i = 0; i < cfg->n_eos; i++)
        if (cfg->eos_token_ids[i] >= cfg->vocab_size)
            return wk_err_set(err, WK_EFORMAT, "%s: eos_token_id beyond vocab_size", what);
    return 0;
}

static int parse_root(const wk_json *root, const char *what, wk_model_config *cfg, wk_err *err) {
    if (root->type != WK_JSON_OBJECT) return wk_err_set(err, WK_EFORMAT, "%s: not a JSON object", what);
    if (parse_arch(root, what, cfg, err)) return err->code;
    if (get_int_range(root, what, "hidden_size", -1, 1, CFG_MAX_DIM, &cfg->dim, err) ||
        get_int_range(root, what, "intermediate_size", -1, 1, CFG_MAX_DIM * 8, &cfg->hidden_dim, err) ||
        get_int_range(root, what, "num_hidden_layers", -1, 1, CFG_MAX_LAYERS, &cfg->n_layers, err) ||
        get_int_range(root, what, "num_attention_heads", -1, 1, CFG_MAX_HEADS, &cfg->n_heads, err) ||
        get_int_range(root, what, "num_key_value_heads", cfg->n_heads > 0 ? cfg->n_heads : -1, 1, CFG_MAX_HEADS,
                      &cfg->n_kv_heads, err) ||
        get_int_range(root, what, "vocab_size", -1, 1, CFG_MAX_VOCAB, &cfg->vocab_size, err) ||
        get_int_range(root, what, "max_position_embeddings", 2048, 1, 1 << 30, &cfg->max_pos, err) ||
        get_int_range(root, what, "bos_token_id", -1, -1, CFG_MAX_VOCAB, &cfg->bos_token_id, err))
        return err->code;
    const wk_json *hd = wk_json_get(root, "head_dim");
    if (hd && hd->type != WK_JSON_NULL) {
        if (get_int_range(root, what, "head_dim", -1, 2, 4096, &cfg->head_dim, err)) return err->code;
    } else {
        if (cfg->dim % cfg->n_heads != 0)
            return wk_err_set(err, WK_EFORMAT, "%s: hidden_size %d not a multiple of num_attention_heads %d", what, cfg->dim,
                              cfg->n_heads);
        cfg->head_dim = cfg->dim / cfg->n_heads;
    }
    if (get_float_range(root, what, "rope_theta", 10000.0, 1.0, 1e12, &cfg->rope_theta, err) ||
        get_float_range(root, what, "rms_norm_eps", 1e-6, 0.0, 1.0, &cfg->norm_eps, err))
        return err->code;
    if (parse_rope_scaling(root, what, cfg, err) || parse_eos(root, what, cfg, err) || parse_flags(root, what, cfg, err))
        return err->code;
    return check_shape(what, cfg, err);
}

int wk_model_config_parse(const char *text, size_t len, const char *what, wk_model_config *cfg, wk_err *err) {
    memset(cfg, 0, sizeof *cfg);
    wk_json root;
    if (wk_json_parse(text, len, what, &root, err) != 0) return err->code;
    int rc = parse_root(&root, what, cfg, err);
    wk_json_free(&root);
    return rc;
}

int wk_model_config_load_dir(const char *dir, wk_model_config *cfg, wk_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    memset(cfg, 0, sizeof *cfg);
    wk_json root;
    if (wk_json_parse_file(path, &root, err) != 0) return err->code;
    int rc = parse_root(&root, path, cfg, err);
    wk_json_free(&root);
    return rc;
}

int wk_model_config_load_synthetic(const char *src, wk_model_config *cfg, wk_err *err) {
    const char *name = strncmp(src, "synthetic:", 10) == 0 ? src + 10 : src;
    memset(cfg, 0, sizeof *cfg);
    if (!*name || strchr(name, '/') || strlen(name) > 200)
        return wk_err_set(err, WK_EINVAL, "bad synthetic model name '%.200s'", name);
    wk_model_spec spec; /* validates the name against the bundled specs, with their list in the error */
    if (wk_model_spec_find(name, &spec, err)) return err->code;
    char path[4096];
    snprintf(path, sizeof path, "%s/models/specs/%s.json", wk_data_dir(), name);
    wk_json root;
    if (wk_json_parse_file(path, &root, err) != 0) return err->code;
    int rc = parse_root(&root, path, cfg, err);
    wk_json_free(&root);
    return rc;
}

long long wk_model_config_n_params(const wk_model_config *c) {
    long long q = (long long)c->n_heads * c->head_dim, kv = (long long)c->n_kv_heads * c->head_dim;
    long long layer = 2LL * c->dim + 2 * q * c->dim + 2 * kv * c->dim + 3LL * c->dim * c->hidden_dim;
    if (c->qkv_bias) layer += q + 2 * kv;
    if (c->qk_norm) layer += 2LL * c->head_dim;
    long long emb = (long long)c->vocab_size * c->dim;
    return emb * (c->tie_embeddings ? 1 : 2) + layer * c->n_layers + c->dim;
}

void wk_model_config_rope_inv_freq(const wk_model_config *c, float *inv_freq) {
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        double f = 1.0 / pow((double)c->rope_theta, (2.0 * i) / c->head_dim);
        if (c->rope_type == WK_ROPE_LINEAR) f /= c->rope_factor;
        else if (c->rope_type == WK_ROPE_LLAMA3) {
            double lo_wl = c->rope_orig_max_pos / c->rope_low_freq_factor;
            double hi_wl = c->rope_orig_max_pos / c->rope_high_freq_factor;
            double wl = 2.0 * 3.14159265358979323846 / f;
            if (wl > lo_wl) f /= c->rope_factor;
            else if (wl >= hi_wl) {
                double smooth = (c->rope_orig_max_pos / wl - c->rope_low_freq_factor) /
                                (c->rope_high_freq_factor - c->rope_low_freq_factor);
                f = (1.0 - smooth) * f / c->rope_factor + smooth * f;
            }
        }
        inv_freq[i] = (float)f;
    }
}
