/* Model specs from config.json. Only the shape is read; unknown fields are ignored. */
#include "models/model_spec.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/json.h"

const char *wk_data_dir(void) {
    const char *env = getenv("WIKV_DATA");
    return (env && *env) ? env : WIKV_SOURCE_DIR;
}

void wk_fixture_model_dir(char *buf, size_t cap) {
    snprintf(buf, cap, "%s/models/fixtures/tiny-llama-tasks", wk_data_dir());
}

static int get_positive_int(const wk_json *cfg, const char *path, const char *key, long long fallback, int *out,
                            wk_err *err) {
    long long v;
    int rc = wk_json_get_int(cfg, key, fallback, &v, err);
    if (rc) return wk_err_prefix(err, "%s", path);
    if (v <= 0 || v > 10000000)
        return wk_err_set(err, WK_EFORMAT, "%s: field \"%s\" missing or out of range (%lld)", path, key, v);
    *out = (int)v;
    return 0;
}

int wk_model_spec_load(const char *path, const char *name, wk_model_spec *spec, wk_err *err) {
    wk_json cfg;
    int rc = wk_json_parse_file(path, &cfg, err);
    if (rc) return rc;
    memset(spec, 0, sizeof *spec);
    snprintf(spec->name, sizeof spec->name, "%s", name ? name : "model");
    const char *type = wk_json_get_string(&cfg, "model_type");
    snprintf(spec->arch, sizeof spec->arch, "%s", type ? type : "llama");
    if (!rc) rc = get_positive_int(&cfg, path, "num_hidden_layers", -1, &spec->n_layers, err);
    if (!rc) rc = get_positive_int(&cfg, path, "hidden_size", -1, &spec->hidden, err);
    if (!rc) rc = get_positive_int(&cfg, path, "num_attention_heads", -1, &spec->n_heads, err);
    if (!rc) rc = get_positive_int(&cfg, path, "num_key_value_heads", spec->n_heads, &spec->n_kv_heads, err);
    if (!rc) rc = get_positive_int(&cfg, path, "intermediate_size", -1, &spec->intermediate, err);
    if (!rc) rc = get_positive_int(&cfg, path, "vocab_size", -1, &spec->vocab, err);
    if (!rc) rc = get_positive_int(&cfg, path, "head_dim", spec->n_heads ? spec->hidden / spec->n_heads : -1,
                                   &spec->head_dim, err);
    if (!rc && spec->n_heads % spec->n_kv_heads != 0)
        rc = wk_err_set(err, WK_EFORMAT, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                        path, spec->n_heads, spec->n_kv_heads);
    const wk_json *tie = wk_json_get(&cfg, "tie_word_embeddings");
    spec->tie_embeddings = tie && tie->type == WK_JSON_BOOL && tie->number != 0;
    wk_json_free(&cfg);
    return rc;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int wk_model_spec_find(const char *model, wk_model_spec *spec, wk_err *err) {
    if (strncmp(model, "synthetic:", 10) == 0) model += 10;
    char path[4096];
    if (is_dir(model)) {
        snprintf(path, sizeof path, "%s/config.json", model);
        const char *base = strrchr(model, '/');
        return wk_model_spec_load(path, base && base[1] ? base + 1 : model, spec, err);
    }
    if (strstr(model, ".json")) return wk_model_spec_load(model, model, spec, err);
    snprintf(path, sizeof path, "%s/models/specs/%s.json", wk_data_dir(), model);
    FILE *f = fopen(path, "r");
    if (!f) {
        char names[1024];
        wk_model_spec_list(names, sizeof names);
        return wk_err_set(err, WK_ENOTFOUND, "unknown model \"%s\" (bundled: %s; or give a directory with config.json)",
                          model, names);
    }
    fclose(f);
    return wk_model_spec_load(path, model, spec, err);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void wk_model_spec_list(char *buf, size_t cap) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models/specs", wk_data_dir());
    buf[0] = '\0';
    DIR *d = opendir(dir);
    if (!d) return;
    char *names[256];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0) names[n++] = strndup(e->d_name, len - 5);
    }
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_str);
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        if (names[i]) used += (size_t)snprintf(buf + used, used < cap ? cap - used : 0, "%s%s", i ? ", " : "", names[i]);
        free(names[i]);
    }
}

double wk_model_params_per_layer(const wk_model_spec *m) {
    double q = (double)m->hidden * m->n_heads * m->head_dim;
    double kv = 2.0 * m->hidden * m->n_kv_heads * m->head_dim;
    double o = (double)m->n_heads * m->head_dim * m->hidden;
    double mlp = 3.0 * m->hidden * m->intermediate;
    return q + kv + o + mlp + 2.0 * m->hidden;
}

double wk_model_params_total(const wk_model_spec *m) {
    double embed = (double)m->vocab * m->hidden;
    return m->n_layers * wk_model_params_per_layer(m) + embed * (m->tie_embeddings ? 1 : 2) + m->hidden;
}

int64_t wk_model_kv_values_per_token_layer(const wk_model_spec *m) {
    return 2 * (int64_t)m->n_kv_heads * m->head_dim;
}

double wk_model_kv_bytes_per_token(const wk_model_spec *m, double bits) {
    return (double)m->n_layers * (double)wk_model_kv_values_per_token_layer(m) * bits / 8.0;
}
