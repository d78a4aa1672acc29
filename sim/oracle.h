/* The oracle: a provable lower bound on the TTFT of any schedule for one request, knowing the whole
 * future bandwidth of the trace.
 *
 * Any schedule gets the first token only after the device holds KV covering at least a target share
 * c* of the attention importance (the quality target) - from local prefill of a fraction x of the
 * tokens, from streamed KV, or both, in parallel. The bound relaxes everything that costs time:
 *   - local prefill of x*T tokens costs at least one roofline prefill of x*T tokens with no past, and
 *     the tokens computed locally are taken to be the most important ones (a real prefill computes a
 *     prefix, which covers no more);
 *   - the rest of the coverage comes from the most important vectors, each at the cheapest size of any
 *     codec (bytes per vector), with no framing, headers or tables, delivered by the trace from the
 *     moment the request reaches the server; plus the one-way delay;
 *   - a decode step at the cheapest KV precision follows, except when local prefill covers everything
 *     (the prefill then yields the token itself).
 * With f(x) the network part (non-increasing in x) and g(x) the compute part (non-decreasing), any x in
 * [x_i, x_i+1] costs at least max(f(x_i+1), g(x_i)); the minimum of that over a grid of x is therefore
 * a lower bound on min_x max(f(x), g(x)), hence on every schedule's TTFT. Policies that emit below the
 * quality target (e.g. WiKV forced by a deadline) can beat it: their ratio < 1 says so. */
#ifndef WIKV_SIM_ORACLE_H
#define WIKV_SIM_ORACLE_H

#include "models/device.h"
#include "net/link.h"

#define WK_ORACLE_CURVE 1024

typedef struct wk_oracle_curves {
    int context, layers, kv_heads;
    double vec_cov[WK_ORACLE_CURVE + 1]; /* coverage of the best k/WK_ORACLE_CURVE of the vectors */
    double tok_cov[WK_ORACLE_CURVE + 1]; /* coverage of the best j/WK_ORACLE_CURVE of the tokens */
    double min_bytes_per_vector;         /* cheapest codec, K+V of one (layer, kv-head, token) */
    double min_kv_bytes_per_token;       /* the same per token (all layers and heads) */
} wk_oracle_curves;

/* Builds the coverage curves from the same synthetic importance the WiKV plans use, and the cheapest
 * codec size from kv/codec_size.h (KIVI-2, CacheGen levels, WiKV level 0). */
int wk_oracle_prepare(const wk_model_spec *m, int context, wk_oracle_curves *c, wk_err *err);

/* Lower bound on TTFT (s, from the request being sent) for a quality target `coverage` in (0, 1]. */
double wk_oracle_ttft(const wk_oracle_curves *c, const wk_trace *trace, const wk_link_params *link,
                      const wk_model_spec *m, const wk_device *d, double coverage);

#endif
