/* Model shapes, read from Hugging Face config.json, and what follows from them: parameter counts,
 * FLOPs, and KV-cache bytes per token at each precision. The simulator needs only the shape. */
#ifndef WIKV_MODELS_MODEL_SPEC_H
#define WIKV_MODELS_MODEL_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct wk_model_spec {
    char name[64];          /* e.g. "llama-3.1-8b" (file stem, or directory name of a config.json) */
    char arch[64];          /* config.json model_type: llama, qwen2, qwen3, mistral */
    int n_layers;
    int hidden;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int intermediate;
    int vocab;
    int tie_embeddings;
} wk_model_spec;

/* Parses a config.json (path to the file). The name is taken from `name` (or the parent folder). */
int wk_model_spec_load(const char *config_path, const char *name, wk_model_spec *spec, wk_err *err);
/* Resolves a model argument: a bundled name (models/specs/NAME.json), "synthetic:NAME", a directory
 * holding config.json, or a config.json path. */
int wk_model_spec_find(const char *model, wk_model_spec *spec, wk_err *err);
/* Writes the bundled spec names, comma-separated, into buf. */
void wk_model_spec_list(char *buf, size_t cap);

/* Weights excluding the embedding table (those the per-token matmuls read). */
double wk_model_params_per_layer(const wk_model_spec *m);
double wk_model_params_total(const wk_model_spec *m);
/* KV bytes of one token over all layers and KV heads, K and V, at `bits` per value. */
double wk_model_kv_bytes_per_token(const wk_model_spec *m, double bits);
/* Values (K and V) of one token in one layer: 2 * n_kv_heads * head_dim. */
int64_t wk_model_kv_values_per_token_layer(const wk_model_spec *m);

/* Directory holding the bundled data (models/, traces/): $WIKV_DATA or the source tree. */
const char *wk_data_dir(void);
/* The bundled fixture model's folder (models/fixtures/tiny-llama-tasks under wk_data_dir()), the
 * default --model of the commands that run an engine. */
void wk_fixture_model_dir(char *buf, size_t cap);

#endif
