/* Token-eviction baselines and SimCalKV merging: which tokens of each (layer, kv-head) a method keeps,
 * given attention scores (KV-ALGORITHMS.md sections 3 and 4; reference KVCache-Factory pyramidkv_utils.py
 * and SimCalKV merge_ours.py).
 *
 * Conventions (all methods):
 *  - attention of one (layer, kv-head) is attn [Q][T]: row i = softmax over the T prompt keys of query
 *    position T-Q+i (causal: zeros right of the diagonal), with the G query heads of the KV group already
 *    averaged by the caller (KV-head granularity with mean aggregation: bytes = budget x kv_heads, the
 *    deviation from KVCache-Factory's default query-head layout that KV-ALGORITHMS.md recommends);
 *  - budget = tokens kept per (layer, head), INCLUDING the recent window; T <= budget keeps everything
 *    (compression happens once, after prefill);
 *  - kept indices are returned in ascending position order; top-k ties go to the lower position.
 * Methods:
 *  - StreamingLLM: tokens [0, sinks) + the last budget - sinks tokens.
 *  - H2O (one-shot, as KVCache-Factory): s_j = sum over ALL Q rows of attn[i][j]; keep the top budget - window
 *    of tokens j < T - window, plus the last `window` tokens.
 *  - SnapKV: s_j = sum over the last `window` rows (the observation window) for j < T - window, max-pooled
 *    over |j' - j| <= kernel/2 (padding never wins), top budget - window + the window. Needs Q >= window.
 *  - PyramidKV: SnapKV with per-layer budgets (wk_evict_pyramid_budgets): with B = budget - window,
 *    min = B / beta, max = 2B - min (if max >= T - window: max = T - window, min = 2B - max),
 *    steps = (max - min) / (L - 1), layer l keeps max - l * steps + window; T < budget: everything;
 *    T < 2B: SnapKV with `budget` in every layer (the reference's special cases).
 *  - SimCalKV (wk_simcal_merge), per (layer, head), once after prefill, exactly:
 *      n_e = max(1, floor(T * ratio)) tokens with the smallest scores (H2O column sums) are evicted (Ke), the
 *      rest kept (Kc); each e in Ke picks c(e) = argmax_{c in Kc} cos(k_e, k_c) and is merged only if that
 *      cosine > sim_thr (default 0), else dropped. For a kept c with merged set E_c (non-empty):
 *        k'_c = ( mean_{e in E_c} k_e + k_c ) / 2 + ln(2) * 1_D        (bias calibration on every channel)
 *        v'_c = ( sum_{e in E_c} w_e v_e + w_c v_c ) / ( sum_{e in E_c} w_e + w_c ),
 *        w_x = exp( q . k_x / sqrt(D) - m ),  m = max of those logits over E_c and c
 *      with q the last prompt token's query (post-RoPE, mean of the group's query heads), original (unmerged)
 *      keys in the weights. Source: SimCalKV task_evaluation/llama/merge_ours.py (merge_by_token, get_w);
 *      the max subtraction is added for fp32 stability (same weights, the reference has no guard), and the
 *      query is the real post-RoPE query instead of the reference's un-normed, un-rotated projection. */
#ifndef WIKV_KV_EVICT_H
#define WIKV_KV_EVICT_H

#include "core/err.h"

typedef enum { WK_EVICT_STREAMING, WK_EVICT_H2O, WK_EVICT_SNAPKV, WK_EVICT_PYRAMIDKV } wk_evict_method;

typedef struct {
    wk_evict_method method;
    int budget; /* per (layer, head), including the window */
    int window; /* recent tokens always kept (KVCache-Factory run_longbench.py: 8) */
    int sinks;  /* StreamingLLM attention sinks (4) */
    int kernel; /* SnapKV/PyramidKV max-pool kernel (7) */
    int beta;   /* PyramidKV (20) */
} wk_evict_params;

wk_evict_params wk_evict_defaults(wk_evict_method method, int budget);
const char *wk_evict_method_name(wk_evict_method method);

/* Per-head selectors: write the kept indices (ascending) to keep (room for T) and return how many, or a
 * negative error code. attn is [queries][tokens]. */
int wk_evict_streaming(int tokens, int budget, int sinks, int *keep, wk_err *err);
int wk_evict_h2o(const float *attn, int queries, int tokens, int budget, int window, int *keep, wk_err *err);
int wk_evict_snapkv(const float *attn, int queries, int tokens, int budget, int window, int kernel, int *keep,
                    wk_err *err);
/* caps [layers]: tokens kept per layer (window included). */
int wk_evict_pyramid_budgets(int layers, int tokens, int budget, int window, int beta, int *caps, wk_err *err);

/* Whole cache: attn [layers][kv_heads][queries][tokens]. */
typedef struct {
    int layers, kv_heads, tokens;
    int *count; /* [layers * kv_heads] */
    int *idx;   /* [layers * kv_heads][tokens]: first count[i] entries used */
} wk_evict_keep;

int wk_evict_select(const wk_evict_params *p, const float *attn, int layers, int kv_heads, int queries, int tokens,
                    wk_evict_keep *out, wk_err *err);
void wk_evict_keep_free(wk_evict_keep *k);

/* SimCalKV on one (layer, head): k, v [T][D]; scores [T]; q [D]. Writes the kept tokens' (merged) keys and
 * values to k_out, v_out [n][D] and their positions to keep [n] (ascending); returns n or a negative code. */
int wk_simcal_merge(const float *k, const float *v, int tokens, int dim, const float *scores, const float *q,
                    double ratio, double sim_thr, float *k_out, float *v_out, int *keep, wk_err *err);

#endif
