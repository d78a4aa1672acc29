/* WiKV semantic coding: rank every (layer, kv-head, token) unit by the attention it receives, stream the
 * units in that order, and code them in batches with progressive refinement levels.
 *
 * Unit u = (layer l, kv-head h, token t), id = (l * kv_heads + h) * tokens + t; its payload is the K and the
 * V vector (head_dim values each).
 * Importance: imp[l][h][t] = mean over the query rows of the attention that token t receives (query heads of
 * one KV group already reduced by the caller), then suffix-summed over layers, imp'[l] = sum_{j>=l} imp[j],
 * so a token's shallow layers come before its deep ones. Order = ids sorted by imp' descending; ties go to
 * the smaller id (deterministic).
 *
 * Level 0 (stream-once, coarse): per unit and per K|V, symmetric quantization with the vector's own absmax
 * a (fp16): q = clamp(round(x * M / a), -M, M), x_hat0 = fp16(q * (a / M)), M = bins/2 - 1 where bins
 * depends on the layer group: bins[min(l / group_layers, nbins - 1)] (reference: 18,14,12,10,8 in groups of
 * 9 layers of a 36-layer model; wk_sem_defaults scales the group size to the depth: round(9 * L / 36)).
 * The reference quantizes per (layer, token) across heads; wikv scales each unit on its own because units
 * arrive independently (4 bytes of scales per unit, counted).
 * Level r >= 1 (refinement): step_r = (a / M) / 4^r, e = x - x_hat_{r-1},
 * q = clamp(round(e / step_r), -2, 2), x_hat_r = fp16(x_hat_{r-1} + q * step_r): about 2 more bits per value
 * per level, each level quartering the worst-case error.
 * Optional reorder (level 0 only): inside the batch, 2-opt on the cosine distance of consecutive units'
 * (K|V code) vectors, segment reversals that move no unit more than max_displacement places from its
 * semantic position (the reference's older "inflation control": batch 10000, displacement 20).
 * Optional delta: each unit's codes minus the previous unit's codes in the substream (zero before the first).
 * Codes (or deltas) are range-coded with per-(K|V, channel) frequency tables stored in the batch, in
 * independent substreams of `stream_units` consecutive units each (default 16): a GPU decodes them in
 * parallel, one thread per substream (kv/cuda/kv_decode_cuda.h); one batch as one stream would give a
 * realistic payload (8K tokens of a 32x8x128 model: 512 batches of 4096 units) too few independent streams.
 * A substream costs ~6 bytes (the coder's leading 0 and flush bytes, its length), 0.4% of 16 units of
 * 2x128 values at ~2.7 bits (level 0: 2.738 bits/value vs 2.728 in one stream); 16 gives 131K streams
 * for that payload, enough to fill an H100. The delta below restarts at each substream.
 * Default: no delta and no reorder. Measured with `bench_kv_codecs --layers 4 --tokens 512` (synthetic KV,
 * batches of 4096 units), level 0 costs 2.74 bits/value plain, 3.29 with delta, 3.17 delta+2-opt, 2.73
 * plain+2-opt: neighbours in importance order come from unrelated heads and layers, so their code
 * difference spreads wider than the codes themselves, and per-channel tables already capture the
 * outlier channels that a delta would cancel.
 *
 * Batch format (little-endian):
 *   "WKSM", u8 version 2, u8 level, u8 flags (bit0 delta, bit1 reordered), u8 table_bits,
 *   u16 layers, u16 kv_heads, u16 head_dim, u16 group_layers, u32 tokens, u32 n_units,
 *   u8 nbins, u8 bins[nbins]                                                   (24 + 1 + nbins bytes)
 *   unit ids in stream order: varint zigzag(id - previous id), previous starts at 0
 *   level 0 only: scales fp16 [n_units][2] (K absmax, V absmax)
 *   tables [2][head_dim] (rangecoder.h format; alphabet 2*Mmax+1 plain, 4*Mmax+1 delta, 5 for refinements;
 *   Mmax = max over bins of bins/2 - 1), varint S = units per substream (1..n_units), varint lengths of the
 *   ceil(n_units/S) substreams, then the substreams back to back (they fill the batch exactly); substream j
 *   range-codes units [j*S, min((j+1)*S, n_units)): per unit, the K symbols of channels 0..D-1 then the V symbols.
 * Decoding a refinement needs the unit at the previous level: the decoder keeps that in a wk_sem_map. */
#ifndef WIKV_KV_SEMANTIC_H
#define WIKV_KV_SEMANTIC_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "kv/kv_tensor.h"

#define WK_SEM_MAX_BINS 8
#define WK_SEM_MAX_LEVELS 4 /* level 0 + up to 3 refinements */
#define WK_SEM_VERSION 2    /* batch format version (2: independent substreams) */

typedef struct {
    int nbins;
    int bins[WK_SEM_MAX_BINS]; /* even, 4..32 */
    int group_layers;          /* layers per bins group */
    int delta;                 /* delta-code consecutive units (default 0: measured larger, see below) */
    int reorder;               /* 2-opt reorder inside level-0 batches (default 0) */
    int max_displacement;      /* default 20 */
    int table_bits;            /* default 12 */
    int stream_units;          /* units per independent substream (default 16) */
} wk_sem_params;

wk_sem_params wk_sem_defaults(int layers);

/* Mean over Q query rows: attn [L][H][Q][T] -> imp [L][H][T]. */
int wk_sem_importance_from_attention(const float *attn, int layers, int kv_heads, int queries, int tokens,
                                     float *imp, wk_err *err);
/* From per-query-head attention attn [L][Hq][Q][T]: query head i belongs to KV head i / (Hq / Hkv) (the
 * HF repeat_kv layout); imp[l][h][t] = sum over the group's query heads of the mean over the Q rows (the
 * reference sums the group, with a wrong grouping that this does correctly). imp is [L][Hkv][T]. */
int wk_sem_importance_gqa(const float *attn, int layers, int q_heads, int kv_heads, int queries, int tokens,
                          float *imp, wk_err *err);
/* In place: imp[l] <- sum_{j >= l} imp[j] (imp [L][H][T]). */
void wk_sem_suffix_sum(float *imp, int layers, int kv_heads, int tokens);
/* Unit ids sorted by imp (already suffix-summed) descending, ties by id ascending: order [L*H*T]. */
int wk_sem_order(const float *imp, int layers, int kv_heads, int tokens, uint32_t *order, wk_err *err);
/* Synthetic mean-attention model [L][H][T] (each row sums to 1): an attention sink at token 0, a recency
 * bump over the last ~64 tokens, and log-normal heavy hitters that persist across layers of a head. */
int wk_sem_synth_importance(uint64_t seed, int layers, int kv_heads, int tokens, float *imp, wk_err *err);

/* Decoder-side state of every unit: level[id] = 0 absent, r+1 when level r is in; step[2*id+kv] = a/M. */
typedef struct {
    int layers, kv_heads, tokens;
    uint8_t *level; /* [L*H*T] */
    float *step;    /* [L*H*T][2] */
} wk_sem_map;

int wk_sem_map_alloc(wk_sem_map *m, int layers, int kv_heads, int tokens, wk_err *err);
void wk_sem_map_free(wk_sem_map *m);

typedef struct {
    size_t header, ids, scales, tables, payload;
} wk_sem_stats;

/* Encodes units ids[0..n) of t at `level` (0 = base, r = refinement r) into *out (malloc'd). For level 0
 * with p->reorder, the transmitted order may differ from ids: it is written to sent_order (n, may be NULL),
 * which is what the refinement batches of these units should be given. */
int wk_sem_encode_batch(const wk_sem_params *p, const wk_kv_tensor *t, const uint32_t *ids, int n, int level,
                        uint8_t **out, size_t *out_len, uint32_t *sent_order, wk_sem_stats *stats, wk_err *err);
/* The unit ids of a batch for a model of this shape, in stream order (*ids malloc'd, *n of them), read
 * with the decoder's header and range checks (no map: a decodable batch raises exactly these units). */
int wk_sem_batch_ids(const uint8_t *in, size_t len, int layers, int kv_heads, int tokens, int head_dim, uint32_t **ids,
                     uint32_t *n, wk_err *err);
/* Decodes one batch into t (allocated with the model's shape) and updates m. */
int wk_sem_decode_batch(const uint8_t *in, size_t len, wk_kv_tensor *t, wk_sem_map *m, wk_err *err);

/* The fixed part of a batch (through the bins), as wk_sem_read_header reads and checks it. */
typedef struct {
    int level, delta, table_bits;
    uint32_t n;          /* units */
    wk_sem_params p;     /* the batch's nbins, bins, group_layers, table_bits (the rest: defaults) */
    size_t header_bytes; /* where the unit ids start */
} wk_sem_header;
/* Reads and checks the header of a batch of len bytes for a tensor of this shape, with wk_sem_decode_batch's
 * checks: the GPU decoder (kv/cuda) uses it so both apply the same ones. */
int wk_sem_read_header(const uint8_t *in, size_t len, int layers, int kv_heads, int tokens, int head_dim,
                       wk_sem_header *h, wk_err *err);

#endif
