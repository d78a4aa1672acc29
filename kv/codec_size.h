/* Byte sizes of KV codecs for the simulator, MEASURED by running the real encoders (kivi.h, cachegen.h,
 * semantic.h) on a sample of KV and scaling per token and per layer.
 *
 * Sample: a synthetic KV tensor (kv_tensor.h model; or a caller's real one) of `sample_tokens` tokens and only
 * the layers needed: one representative layer (the middle one) per class of layers that share CacheGen bins
 * at every level, and one per WiKV bins group. A real sample of a different depth is mapped proportionally.
 * Each codec's per-token bytes of a layer come from its class representative; fixed per-chunk (CacheGen:
 * header, frequency tables, stream lengths) and per-batch (WiKV: header, tables) overheads are kept apart,
 * measured at the sample's chunk size (tables of a longer chunk are about the same size: same alphabets).
 * The default 256-token sample is LMCache's chunk size; slowly varying values spread wider over longer chunks,
 * so on the synthetic model it predicts up to ~7% fewer CacheGen bytes than 1024-token chunks really take
 * (tests/test_codec_size.c bounds this at 10%); pass sample_tokens = the chunk size when that matters.
 * Cost: about 0.4 s for the Llama-3.1-8B shape on one core (bench_kv_codecs prints it).
 * WiKV units of a representative layer are coded in their synthetic-importance order (realistic unit-id
 * gaps), in batches of `wikv_batch_units`. KIVI sizes are exact (wk_kivi_bytes; the encoder is checked to
 * produce them).
 * No global state: the result is a plain struct the caller keeps. */
#ifndef WIKV_KV_CODEC_SIZE_H
#define WIKV_KV_CODEC_SIZE_H

#include <stdint.h>

#include "core/err.h"
#include "kv/cachegen.h"
#include "kv/kv_tensor.h"
#include "kv/semantic.h"

#define WK_CS_MAX_LAYERS 256

typedef enum { WK_CODEC_FP16, WK_CODEC_KIVI2, WK_CODEC_KIVI4, WK_CODEC_CACHEGEN, WK_CODEC_WIKV } wk_codec;

typedef struct {
    int layers, kv_heads, head_dim; /* model shape */
    int sample_tokens;              /* default 256 */
    int wikv_batch_units;           /* default 4096 */
    uint64_t seed;                  /* synthetic sample seed */
    const wk_kv_tensor *sample;     /* optional real KV (same kv_heads, head_dim); NULL = synthetic */
} wk_codec_size_params;

typedef struct {
    int layers, kv_heads, head_dim, sample_tokens, wikv_batch_units;
    double fp16_bpt; /* bytes per token per layer, K+V, all kv heads */
    /* CacheGen: per token per layer (scales + payload), and fixed per chunk per layer (tables + lengths) */
    double cg_bpt[WK_CG_LEVELS][WK_CS_MAX_LAYERS];
    double cg_chunk_layer_bytes[WK_CG_LEVELS][WK_CS_MAX_LAYERS];
    /* WiKV level k alone (0 = base, k >= 1 = refinement k): per token per layer (ids, scales, payload), and
     * fixed per batch (header + tables) */
    double wikv_bpt[WK_SEM_MAX_LEVELS][WK_CS_MAX_LAYERS];
    double wikv_batch_bytes[WK_SEM_MAX_LEVELS];
} wk_codec_sizes;

wk_codec_size_params wk_codec_size_defaults(int layers, int kv_heads, int head_dim);
int wk_codec_sizes_measure(const wk_codec_size_params *p, wk_codec_sizes *out, wk_err *err);

/* Bytes per token of one layer (K+V, all kv heads), without fixed overheads. KIVI: the quantized part;
 * WiKV: level `level` alone. */
double wk_codec_bpt(const wk_codec_sizes *s, wk_codec codec, int level, int layer);
/* Bytes of one unit = layers [layer0, layer0+nlayers) x `tokens` tokens at `level`, with its fixed overheads:
 * CacheGen one chunk (header + per-layer tables); KIVI exact, with the fp16 residual window of a `tokens`-token
 * cache; WiKV level `level` alone, in ceil(units / batch) batches; fp16 raw. */
double wk_codec_unit_bytes(const wk_codec_sizes *s, wk_codec codec, int level, int layer0, int nlayers, int tokens);
const char *wk_codec_name(wk_codec codec);

#endif
