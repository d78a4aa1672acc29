/* Where the device client's KV units go: a sink decodes arriving unit payloads (the codecs of
 * exec/stream.h) into an engine's KV cache and marks what it wrote present. Kinds, tried in this order
 * by wk_kv_sink_open for an engine and codec:
 *   cuda  KIVI, CacheGen and semantic units on the GPU (kv/cuda/kv_decode_cuda.h), copied on the GPU
 *         into a CUDA engine's cache (exec/cuda/engine_cuda.h); only in CUDA builds, only for a CUDA
 *         engine and those codecs;
 *   host  the CPU decoders (kv/kivi.h, kv/cachegen.h, kv/semantic.h) and wk_engine_kv_write_rows (for
 *         a GPU engine, host-to-device copies); every engine and codec.
 * Both write the same bits and presence. CacheGen and semantic units are decoded into a side tensor of
 * the context ([layers][kv_heads][context][head_dim], with the semantic map of levels: a refinement
 * starts from the previous level as decoded, even where the engine has since computed that slot), then
 * copied into the cache; semantic vectors of tokens below keep_below (computed by the device itself) are
 * not written over. */
#ifndef WIKV_EXEC_KV_SINK_H
#define WIKV_EXEC_KV_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "exec/engine.h"
#include "exec/stream.h"
#include "kv/unit.h"

typedef struct wk_kv_sink wk_kv_sink;

/* One arrived unit: the plan's unit, its index in the plan (for messages) and its payload. */
typedef struct wk_kv_sink_item {
    const wk_unit *u;
    uint32_t index;
    const uint8_t *data;
    size_t len;
} wk_kv_sink_item;

/* Opens a sink for one request: units of codec c (borrowed) for a context of context_tokens tokens,
 * written into e's cache. kind NULL takes the first kind (above) that serves e and c; "host" or "cuda"
 * asks for that one (WK_EUNSUPPORTED when it cannot serve them, WK_EINVAL for another name). */
int wk_kv_sink_open(wk_engine *e, const wk_stream_codec *c, int context_tokens, const char *kind, wk_kv_sink **out,
                    wk_err *err);
/* Decodes items[0..n) in order (the GPU sink decodes consecutive CacheGen chunks or semantic batches in
 * one call); keep_below: context tokens the device computed itself (semantic units do not overwrite
 * them). An error names the unit(s); the cache is then partly written. */
int wk_kv_sink_decode(wk_kv_sink *s, const wk_kv_sink_item *items, size_t n, int keep_below, wk_err *err);
/* "host" or "cuda". */
const char *wk_kv_sink_kind(const wk_kv_sink *s);
void wk_kv_sink_free(wk_kv_sink *s);

#endif
