/* CacheGen-style KV codec: per chunk of tokens, per-token symmetric quantization with layer-group bins
 * (finer in early layers), optional delta against the anchor token of each token group, and range coding
 * with one static frequency table per (K|V, layer, channel) built from the chunk and stored in it.
 *
 * Quantization (LMCache cachegen_encoder.py): for layer l, token t, over all C = kv_heads*head_dim channels
 *   a = max_c |x[c]|, stored as fp16 (a16);  M = bins/2 - 1;  s[c] = clamp(round(x[c] * M / a16), -M, M) + M
 *   x_hat[c] = (s[c] - M) * (a16 / M)                      (a16 = 0 gives s = M, x_hat = 0)
 * Bins by layer group: keys split at 10/32 and 20/32 of the depth, values at 2/32 (LMCache's table for
 * 32-layer models, scaled); five quality levels (K first/second/third, V first/second):
 *   level 0: 12 12  8 | 12  8       level 1: 16 16 12 | 16 12 (CacheGen QUANT_LEVEL 1)
 *   level 2: 32 16 16 | 32 16 (default, CacheGen's default)   level 3: 32 32 24 | 32 24
 *   level 4: 32 32 32 | 32 32 (CacheGen QUANT_LEVEL 3)
 *
 * Delta (the paper's change-based coding; the released code has none): tokens are cut into groups of
 * `anchor_group` tokens counted from the chunk start; the first (anchor) is quantized as above, every other
 * token quantizes d = x - x_hat_anchor (anchor reconstruction in fp16) with its own absmax scale and the same
 * bins, and decodes to x_hat = fp16(x_hat_anchor + d_hat). Off by default (wk_cg_defaults), like the
 * released code. `bench_kv_codecs --layers 4 --tokens 512` (synthetic KV, 1024-token chunks): delta lowers
 * the error at a level (level 2: MSE 0.088 vs 0.194) but costs more bits (3.28 vs 2.66 bits/value), since
 * per-token normalisation spreads the small deltas over all bins; at equal bits it wins at the low levels
 * (delta L1 2.73 b, MSE 0.136 vs plain L2 2.66 b, MSE 0.194) and loses at the high ones (delta L2 3.28 b,
 * MSE 0.088 vs plain L3 3.28 b, MSE 0.063).
 *
 * Streams: each (K|V, kv-head, group of `stream_channels` consecutive channels of the head, default 8) is an
 * independent range-coded stream, so a GPU decodes them in parallel, one thread each (kv/cuda/kv_decode_cuda.h):
 * one stream per head would give 16 per layer of a chunk, too few for a GPU. A stream costs ~6 bytes (the
 * coder's leading 0 and flush bytes, its length): 256 tokens x 8 channels at 2.6 bits/value is ~670 bytes,
 * so ~1% at 256-token chunks and ~0.25% at 1024.
 * Layer sizes (version 3): each layer starts with the byte count of the rest of the layer, so a decoder can
 * find every layer without reading the variable-length tables of the layers before it (the GPU decoder
 * parses all layers of all chunks in parallel; 4 bytes per layer).
 *
 * Chunk format (all little-endian):
 *   "WKCG", u8 version (2), u8 level, u8 flags (bit 0 delta), u8 anchor_group,
 *   u8 table_bits, u8 G = stream_channels (>= 1), u16 layers (model depth), u16 layer0, u16 nlayers,
 *   u16 kv_heads, u16 head_dim,
 *   u32 token0, u32 ntokens                                                            (28 bytes)
 *   then per layer l in [layer0, layer0+nlayers):
 *     u32 layer_bytes: bytes of the rest of this layer (scales to the end of its streams)
 *     K scales fp16 [ntokens], V scales fp16 [ntokens]
 *     K tables [C] then V tables [C]   (rangecoder.h stored table format, alphabet 2M+1, 2^table_bits)
 *     stream lengths, LEB128 varint [2][kv_heads][ceil(D/G)] (K, then V; heads; channel groups)
 *     streams [2][kv_heads][ceil(D/G)]: range-coded symbols of channels [g*G, min(D, g*G+G)) of that head,
 *       token-major: token 0 channels g*G.. (each channel with its own table), token 1, ...
 * A chunk holds any layer range of any token range, so a sender can cut units of (layers x tokens x level). */
#ifndef WIKV_KV_CACHEGEN_H
#define WIKV_KV_CACHEGEN_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "kv/kv_tensor.h"

#define WK_CG_LEVELS 5
#define WK_CG_HEADER_BYTES 28
#define WK_CG_VERSION 3 /* chunk format version (2: streams per channel group; 3: layer byte counts) */

typedef struct {
    int level;        /* 0..WK_CG_LEVELS-1, default 2 */
    int delta;        /* 1: anchor-delta coding (paper); 0: released code (default) */
    int anchor_group; /* tokens per anchor group in delta mode, default 10 */
    int table_bits;   /* frequency precision of stored tables, default 12 */
    int stream_channels; /* channels of a head per independent stream, 1..255, default 8 */
} wk_cg_params;

/* Bytes of each part of an encoded chunk (lengths includes the layer byte counts). */
typedef struct {
    size_t header, scales, tables, lengths, payload;
} wk_cg_stats;

/* The fixed header of a chunk, as read and checked by wk_cg_read_header. */
typedef struct {
    int level, delta, group, table_bits, stream_channels, layers, layer0, nlayers, heads, dim;
    uint32_t token0, ntokens;
} wk_cg_header;

wk_cg_params wk_cg_defaults(void);
/* Bins (even, >= 4) of one layer of a `layers`-deep model for keys (is_value 0) or values at a level. */
int wk_cg_bins(int level, int layer, int layers, int is_value);

/* Encodes layers [layer0, layer0+nlayers) x tokens [token0, token0+ntokens) of t into *out (malloc'd). */
int wk_cg_encode(const wk_cg_params *p, const wk_kv_tensor *t, int layer0, int nlayers, int token0, int ntokens,
                 uint8_t **out, size_t *out_len, wk_cg_stats *stats, wk_err *err);
/* Decodes one chunk into the matching positions of t (allocated with the model's shape; the chunk's
 * layers/kv_heads/head_dim must match, its tokens must fit). Other positions are left as they are. */
int wk_cg_decode(const uint8_t *in, size_t len, wk_kv_tensor *t, wk_err *err);
/* Reads and checks the WK_CG_HEADER_BYTES-byte header of a chunk of len bytes against a tensor of this shape
 * (what wk_cg_decode checks before the layers, including that the token count can fit in len): the
 * GPU decoder (kv/cuda) uses it so both apply the same checks. */
int wk_cg_read_header(const uint8_t *in, size_t len, int layers, int kv_heads, int tokens, int head_dim,
                      wk_cg_header *h, wk_err *err);

#endif
