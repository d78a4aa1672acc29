/* Units: what a sender streams. A stream plan is an array of units, each a piece of the context
 * (KV of some layers x tokens x heads at one quality level, or raw text for local prefill) with its
 * real byte size. In exec the bytes are real encoded KV; in sim the sizes come from the same codecs. */
#ifndef WIKV_KV_UNIT_H
#define WIKV_KV_UNIT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef enum { WK_UNIT_KV = 0, WK_UNIT_TEXT = 1 } wk_unit_kind;

typedef struct wk_unit {
    int64_t bytes;          /* payload bytes (framing is added by the link) */
    int32_t layer_first;    /* layers [layer_first, layer_first + layer_count) */
    int32_t layer_count;
    int32_t token_first;    /* context tokens [token_first, token_first + token_count) */
    int32_t token_count;
    int32_t kv_head;        /* one KV head, or -1 for all heads */
    int16_t level;          /* quality level: 0 is the coarsest (or the only) one */
    int16_t kind;           /* wk_unit_kind */
    int32_t group;          /* units of one group carry the same KV at different levels (choose one) */
    double values;          /* KV values (K and V) the unit fills on the device; 0 for text */
    double decoded_bytes;   /* fp16 bytes the device writes when decoding it (codec decode cost) */
    double importance;      /* sender-side rank key (WiKV: attention importance) */
    const uint32_t *vectors;/* [n_vectors] ids (layer * kv_heads + head) * tokens + token of the KV vectors
                               the unit carries, when it carries a ranked set (wikv); owned by the policy's
                               state, valid until its next plan; NULL: the layer/token/head ranges say it */
    int32_t n_vectors;
} wk_unit;

typedef struct wk_plan {
    wk_unit *units;         /* [n] */
    size_t n, cap;
    double kv_values_total; /* values of the full context's KV: denominators of "fraction present" */
    double importance_total;/* attention importance of the full KV (0 when the policy ranks nothing) */
    const float *token_importance; /* [context] importance of each token's KV (all layers, heads), or
                                      NULL; owned by the policy; lets local prefill count as coverage */
} wk_plan;

void wk_plan_init(wk_plan *p);
void wk_plan_free(wk_plan *p);
void wk_plan_clear(wk_plan *p);
int wk_plan_push(wk_plan *p, const wk_unit *u, wk_err *err);
int64_t wk_plan_total_bytes(const wk_plan *p);

#endif
