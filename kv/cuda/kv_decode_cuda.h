/* GPU decoders of the KV codecs: KIVI dequantization (kv/kivi.h), CacheGen chunks (kv/cachegen.h) and WiKV
 * semantic batches (kv/semantic.h), writing fp16 bit-identical to the CPU decoders into a KV tensor kept
 * on the GPU ([layer][kv_head][token][head_dim] for K and V, as wk_kv_tensor).
 *
 * Work split: CacheGen: the host reads only the chunk headers (wk_cg_read_header) and uploads the raw chunks;
 * a layout kernel (a warp per (chunk, layer), following the layer byte counts) finds the tables and streams,
 * and the decode kernel's blocks expand the stored tables into shared memory and run one range-decoder thread
 * per stream (chunk, layer, K|V, kv-head, channel group). Semantic: the host reads only the batch headers; a
 * parse block per batch reads its unit ids (checked against a device copy of the map), tables and substream
 * lengths with the CPU decoder's checks, then one thread per substream decodes (a call the GPU does not accept is
 * parsed again by the host, which names the error). KIVI: one thread per value. A call decodes many chunks/batches in one launch, which is where the parallelism comes from.
 *
 * Errors: malformed input gives WK_EFORMAT with a message naming the chunk/batch, stream and offset; input
 * the CPU decoder accepts is accepted. After a CacheGen or KIVI error the positions the call would have
 * written are unspecified (the CPU decoders leave partial output too). A semantic call decodes in waves
 * (see wk_kv_cuda_semantic); waves before the failing one stay decoded, the failing one changes neither
 * tensor nor map, as a refused batch does on the CPU.
 * Built only when nvcc is present (WIKV_HAVE_CUDA); opening fails with WK_EUNSUPPORTED without a GPU. */
#ifndef WIKV_KV_CUDA_KV_DECODE_CUDA_H
#define WIKV_KV_CUDA_KV_DECODE_CUDA_H

#ifdef __cplusplus
extern "C" {
#endif

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "kv/kivi.h"
#include "kv/kv_tensor.h"

typedef struct wk_kv_cuda wk_kv_cuda;

/* Time split of the last decode call (seconds) and its compressed input bytes. KIVI and CacheGen calls copy
 * their input in parts (wk_kv_cuda_set_parts) whose copies overlap the decoding of the parts before: then
 * kernel_s runs from the first kernel's start to the last one's end and upload_s is the first part's copy;
 * with one part they are the kernels alone and the whole copy. */
typedef struct {
    double parse_s;  /* host: headers (CacheGen), or headers, tables and ids (semantic); descriptors */
    double upload_s; /* host -> device copies of the input */
    double kernel_s; /* GPU kernels (CUDA events): CacheGen's layout and decode kernels, or the others' */
    size_t in_bytes; /* compressed bytes decoded */
    int streams;     /* independent range-coded streams (threads) of the call; 0 for KIVI */
    double layout_s; /* CacheGen in one part: the layout kernel's share of kernel_s (0 otherwise) */
    int host_parse;  /* semantic: 1 when the host parsed the call (see wk_kv_cuda_semantic), 0 the GPU */
} wk_kv_cuda_timing;

/* A device tensor of this shape (zero-filled) and an empty semantic map (every unit absent) on GPU 0. */
int wk_kv_cuda_open(int layers, int kv_heads, int tokens, int head_dim, wk_kv_cuda **out, wk_err *err);
void wk_kv_cuda_free(wk_kv_cuda *g);
/* "NAME, N MiB" of the GPU into buf. */
void wk_kv_cuda_device(const wk_kv_cuda *g, char *buf, size_t cap);

/* Copies a host tensor of the same shape to the device tensor / the device tensor back. */
int wk_kv_cuda_upload(wk_kv_cuda *g, const wk_kv_tensor *t, wk_err *err);
int wk_kv_cuda_download(const wk_kv_cuda *g, wk_kv_tensor *t, wk_err *err);
/* Marks every semantic unit absent again (a fresh wk_sem_map). */
void wk_kv_cuda_sem_reset(wk_kv_cuda *g);

/* As wk_kivi_decode: in is a whole KIVI-coded tensor of the context's shape. */
int wk_kv_cuda_kivi(wk_kv_cuda *g, const wk_kivi_params *p, const uint8_t *in, size_t len, wk_err *err);
/* As wk_cg_decode on each of n chunks (chunk[i], len[i]); chunks must cover disjoint positions. */
int wk_kv_cuda_cachegen(wk_kv_cuda *g, int n, const uint8_t *const *chunk, const size_t *len, wk_err *err);
/* As wk_sem_decode_batch on each of n batches in order, with the context's own map. The GPU parses the batches
 * (the host reads only their headers) and checks their unit ids against a device copy of the map; a call in which
 * it finds anything off (a malformed batch, an id at another level, a unit named by two batches) commits nothing
 * and is decoded again by the host-parsed path: batches touching a unit that an earlier batch of the call touched
 * are decoded there in a later wave, so any order the CPU accepts works, and errors are named there. */
int wk_kv_cuda_semantic(wk_kv_cuda *g, int n, const uint8_t *const *batch, const size_t *len, wk_err *err);

void wk_kv_cuda_last_timing(const wk_kv_cuda *g, wk_kv_cuda_timing *t);

/* ---- one unit at a time, into a caller's cache (the device client of exec/kv_sink.h) ----
 * The context's tensor stays the decoder's: a semantic refinement starts from the previous level as decoded,
 * whatever the caller's cache holds meanwhile (a slot its engine computed itself). Decoded vectors are then
 * copied on the GPU into the caller's cache, which may hold more tokens per (layer, kv-head). */

/* As wk_kivi_decode_head on each (layer, kv-head) of layers [layer0, layer0 + nlayers) x kv-heads
 * [head0, head0 + nheads), in that order, each block ntokens tokens from token0: in holds
 * nlayers * nheads * wk_kivi_bytes(p, ntokens, head_dim) bytes. */
int wk_kv_cuda_kivi_rows(wk_kv_cuda *g, const wk_kivi_params *p, int layer0, int nlayers, int head0, int nheads,
                         int token0, int ntokens, const uint8_t *in, size_t len, wk_err *err);

/* A KV cache on the context's GPU: fp16 K and V [layers][kv_heads][token_stride][head_dim] with the context's
 * layers, kv_heads and head_dim, token_stride >= its tokens; presence [layers][kv_heads][token_stride] uint8
 * (NULL: none kept). */
typedef struct {
    uint16_t *k, *v;
    uint8_t *present;
    int token_stride;
} wk_kv_cuda_dest;

/* Copies the context's vectors of a box (layers x kv-heads x tokens) or of a list (ids[n] on the host,
 * id = (layer * kv_heads + head) * tokens + token, as semantic unit ids) into dst and sets their presence to 1.
 * Returns when the copy is done (the caller's own GPU stream may use dst at once). Needs a head_dim that is a
 * multiple of 8 (16-byte rows; WK_EUNSUPPORTED otherwise), dst rows 16-byte aligned. */
int wk_kv_cuda_export_box(wk_kv_cuda *g, const wk_kv_cuda_dest *dst, int layer0, int nlayers, int head0, int nheads,
                          int token0, int ntokens, wk_err *err);
int wk_kv_cuda_export_ids(wk_kv_cuda *g, const wk_kv_cuda_dest *dst, const uint32_t *ids, size_t n, wk_err *err);

/* Splits the input of later KIVI / CacheGen calls into `parts` (1..8, default 4) copied on their own CUDA
 * streams, each decoded as soon as it is on the device, so copies overlap decoding. */
int wk_kv_cuda_set_parts(wk_kv_cuda *g, int parts, wk_err *err);
/* Page-locked host memory: a client that receives compressed bytes into it gets asynchronous copies at the
 * link's full rate (pageable memory is staged by the driver at a fraction of it). */
int wk_kv_cuda_host_alloc(size_t n, void **p, wk_err *err);
void wk_kv_cuda_host_free(void *p);
/* Times one host-to-device copy of n bytes from host (the PCIe cap of a call on that memory) into *seconds. */
int wk_kv_cuda_h2d_probe(wk_kv_cuda *g, const void *host, size_t n, double *seconds, wk_err *err);

#ifdef __cplusplus
}
#endif

#endif
