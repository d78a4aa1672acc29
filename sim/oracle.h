/* The oracle: a provable lower bound on the TTFT of one request, knowing the whole future bandwidth
 * of the trace, over every schedule of the class all wikv policies belong to: the device computes a
 * prefix [0, xT) of the context itself (prefill is causal: a token needs the KV of all earlier ones)
 * while KV of later tokens is streamed, in any order, at any level, overlapped.
 *
 * The first token needs KV covering at least a share c* of the attention importance (the quality
 * target). The bound relaxes everything that costs time:
 *   - local prefill of the prefix costs at least one roofline prefill of xT tokens with no chunking;
 *   - the rest of the coverage comes from the most important vectors of the suffix, each at the
 *     cheapest size of any codec (bytes per vector), with no framing, headers or tables, delivered by
 *     the trace from the moment the request reaches the server, plus the one-way delay;
 *   - a decode step at the cheapest KV precision follows, unless the prefix is the whole context (the
 *     prefill then yields the first token).
 * The vectors needed, f(x), do not increase with x (a longer prefix covers what it removes from the
 * suffix) and the compute time g(x) does not decrease, so any x in [x_i, x_i+1] costs at least
 * max(f(x_i+1), g(x_i)): the minimum of that over a grid is a lower bound on min_x max(f(x), g(x)),
 * hence on every such schedule's TTFT. Policies that emit below the quality target (WiKV forced by a
 * deadline) can beat it: their ratio < 1 says so. */
#ifndef WIKV_SIM_ORACLE_H
#define WIKV_SIM_ORACLE_H

#include "models/device.h"
#include "net/link.h"

#define WK_ORACLE_GRID 64

typedef struct wk_oracle_curves {
    int context, layers, kv_heads;
    double coverage;                         /* the quality target c* */
    double need_vectors[WK_ORACLE_GRID + 1]; /* f(i/GRID): fewest suffix vectors reaching c* */
    double min_bytes_per_vector;             /* cheapest codec, K+V of one (layer, kv-head, token) */
    double min_kv_bytes_per_token;           /* the same per token (all layers and heads) */
} wk_oracle_curves;

/* Computes f on the grid from the same synthetic importance the WiKV plans use, and the cheapest codec
 * size from kv/codec_size.h (KIVI-2, CacheGen levels, WiKV level 0). */
int wk_oracle_prepare(const wk_model_spec *m, int context, double coverage, wk_oracle_curves *c, wk_err *err);

/* Lower bound on TTFT (s, from the request being sent). */
double wk_oracle_ttft(const wk_oracle_curves *c, const wk_trace *trace, const wk_link_params *link,
                      const wk_model_spec *m, const wk_device *d);

#endif
