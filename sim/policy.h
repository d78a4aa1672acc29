/* Policies: how the context gets onto the device. Pure C, shared by sim and exec.
 *
 * A policy has a sender half (which unit to send next) and a receiver half (wait, decode arrived
 * KV, prefill context locally, or emit the next token). Both read a wk_view and return a decision:
 * no I/O, no clock reads, no allocation per decision, deterministic. `plan` builds the stream plan
 * (units with real byte sizes) once per request; it may allocate.
 *
 * Parameters are described by a table (name, range, default) so that tools can list, set and search
 * them: a policy is written "name" or "name:key=value,key=value". */
#ifndef WIKV_SIM_POLICY_H
#define WIKV_SIM_POLICY_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "kv/codec_size.h"
#include "kv/unit.h"
#include "models/device.h"
#include "models/model_spec.h"

#define WK_POLICY_MAX_PARAMS 16
/* The most bytes a policy puts in one unit: half a wire frame (WK_WIRE_MAX_PAYLOAD, 64 MiB), since a
 * layer of an 8B model's KV at 32K tokens is 134 MB in fp16. */
#define WK_UNIT_MAX_BYTES (32 * 1024 * 1024)
#define WK_SEND_LATER (-1L)
#define WK_SEND_DONE (-2L)

typedef struct wk_param_desc {
    const char *name;
    const char *help;
    double min, max, def;
    int is_int;
} wk_param_desc;

typedef struct wk_request {
    const wk_model_spec *model;
    const wk_device *device;  /* the receiving device */
    int context_tokens;
    int output_tokens;        /* tokens to generate, >= 1 */
    const char *task;
    uint64_t seed;
    /* [n_layers][n_kv_heads][context_tokens] mean attention each KV vector receives, measured by the
     * engine (exec), or NULL: the simulator's synthetic attention (sim/importance.h). Plans that rank
     * or select KV (wikv, hybrid, eviction) read it through wk_request_attention/_importance. */
    const float *importance;
    /* The context's real KV, or NULL: codec sizes (kv/codec_size.h) are then measured on it instead of
     * a synthetic sample of the model's shape (the real KV of a small model compresses worse). */
    const wk_kv_tensor *kv_sample;
} wk_request;

/* Unit states on the device side. */
enum { WK_US_PLANNED = 0, WK_US_SENT = 1, WK_US_ARRIVED = 2, WK_US_USABLE = 3 };

typedef struct wk_view {
    double now;                   /* session time, s (0 = request sent) */
    const wk_request *req;
    const wk_plan *plan;
    const uint8_t *unit_state;    /* [plan->n] WK_US_* */
    const uint32_t *arrival_order;/* [n_arrived] unit indices in order of arrival */
    size_t n_sent, n_arrived, n_usable;
    int64_t bytes_sent, bytes_arrived;  /* payload bytes */
    double kv_values_usable;      /* KV values usable on the device */
    double importance_usable;     /* attention importance of the usable streamed KV (plan->importance_total) */
    double importance_local;      /* importance of the tokens the device prefilled (plan->token_importance) */
    double est_bw_Bps;            /* sender's estimate of the link rate (payload bytes/s) */
    double stream_start;          /* when the server started sending */
    int text_tokens_arrived;      /* context tokens whose text arrived */
    int tokens_prefilled;         /* context tokens the device computed itself */
    int tokens_prefilling;        /* ... computed or being computed: the device's progress as its sender
                                     knows it (in exec from the client's PROGRESS frames) */
    int tokens_emitted;
    int last_emit_rejected;       /* the last EMIT failed the confidence test (token not kept) */
    double last_token_at;         /* time of the last emitted token (or of the request) */
    int sender_done;
} wk_view;

typedef enum { WK_ACT_WAIT, WK_ACT_DECODE_KV, WK_ACT_PREFILL, WK_ACT_EMIT, WK_ACT_DONE } wk_action_kind;

typedef struct wk_action {
    wk_action_kind kind;
    size_t count;              /* DECODE_KV: decode the next `count` arrived-but-not-usable units */
    int tokens;                /* PREFILL: context tokens to compute */
    int position;              /* PREFILL: first of them; the cache holds everything before it (set by
                                  wk_action defaults to tokens_prefilled) */
    double kv_bytes_per_token; /* EMIT: KV bytes per token the decode step reads */
    int force;                 /* EMIT: keep the token whatever the confidence test says (deadline) */
    double wake_at;            /* WAIT: wake at this session time even if nothing arrives (< 0: no) */
} wk_action;

typedef struct wk_policy_ops {
    const char *name;
    const char *summary;
    const wk_param_desc *params;
    size_t n_params;
    size_t state_size;
    int (*plan)(void *state, const double *param, const wk_request *req, wk_plan *plan, wk_err *err);
    /* optional: called at the start of every request (plans are reused across requests) */
    void (*start)(void *state, const double *param, const wk_request *req, const wk_plan *plan);
    /* sender: index of the next unit to send, WK_SEND_LATER (ask again after the next event) or
     * WK_SEND_DONE (never ask again) */
    long (*next_unit)(void *state, const double *param, const wk_view *v);
    /* receiver: the next action */
    void (*decide)(void *state, const double *param, const wk_view *v, wk_action *a);
    /* optional: frees what plan() allocated inside the state */
    void (*release)(void *state);
    /* 1 when decide reads nothing the sender half changes (n_sent, bytes_sent, est_bw_Bps, sender_done,
     * WK_US_SENT) and a WAIT it returns stays its decision until its wake_at (for ever when < 0) unless
     * an arrival, the end of a computation or a wake-up changes the view: the session then does not ask
     * again after a turn of the sender alone (the same decisions, fewer calls). */
    int wait_ignores_sender;
    /* How the simulator runs this policy's requests (sim/session.h): WK_DIRECT_NONE, the general loop;
     * WK_DIRECT_LOOP, its direct loop, for a sender that never answers WK_SEND_LATER and a receiver with
     * few wake-ups pending at once (the loop checks both as it goes and hands a request that breaks them
     * to the general loop); WK_DIRECT_DECODE_WHEN_COMPLETE, the same for a decide that is
     * wk_policy_decode_when_complete with a kv_bytes_per_token fixed per request: the loop applies that
     * rule itself and calls decide only where it emits; WK_DIRECT_PREFILL_AS_ARRIVES, the same for a decide
     * that is wk_policy_prefill_as_arrives with the policy's first parameter as its chunk. */
    int direct_loop;
} wk_policy_ops;

enum { WK_DIRECT_NONE = 0, WK_DIRECT_LOOP = 1, WK_DIRECT_DECODE_WHEN_COMPLETE = 2, WK_DIRECT_PREFILL_AS_ARRIVES = 3 };

typedef struct wk_policy {
    const wk_policy_ops *ops;
    double param[WK_POLICY_MAX_PARAMS];
    void *state;
    char spec[256];            /* canonical "name:key=value,..." with every parameter */
    const void *planned_for;   /* the plan its state was last filled for (the simulator's plan cache
                                  reuses a plan only with the policy state that built it); NULL: none */
} wk_policy;

/* Parses "name[:key=value,...]" against the registry; unknown names/keys and out-of-range values
 * are errors that list what is allowed. */
int wk_policy_create(const char *spec, wk_policy *p, wk_err *err);
void wk_policy_free(wk_policy *p);
const wk_policy_ops *wk_policy_find(const char *name);
/* All registered policies, NULL-terminated. */
const wk_policy_ops *const *wk_policy_registry(void);
/* Value of a named parameter of a created policy. */
double wk_policy_param(const wk_policy *p, const char *name);

/* Importance coverage of the usable KV in [0, 1]: attention mass present when the plan ranks units,
 * else the fraction of KV values present; 1 when the device computed the whole context itself. */
double wk_view_coverage(const wk_view *v);

/* Helpers for policy code (the small ones inline: policies call them at every decision). */
/* Sends units in plan order, one after another. */
static inline long wk_policy_next_in_order(const wk_view *v) {
    return v->n_sent < v->plan->n ? (long)v->n_sent : WK_SEND_DONE;
}
/* The same with the next_unit signature, for policies that need nothing else. */
long wk_policy_send_in_order(void *state, const double *param, const wk_view *v);
/* Decode everything that arrived and is not yet usable; returns 1 if it set such an action. */
static inline int wk_policy_decode_arrived(const wk_view *v, wk_action *a) {
    if (v->n_arrived <= v->n_usable) return 0;
    a->kind = WK_ACT_DECODE_KV;
    a->count = v->n_arrived - v->n_usable;
    return 1;
}
/* The receiver of the stream-then-decode baselines: decode what arrived; once every unit (or every KV
 * value) is usable, emit reading kv_bytes_per_token (forced: no confidence test); otherwise wait. */
static inline void wk_policy_decode_when_complete(const wk_view *v, double kv_bytes_per_token, wk_action *a) {
    if (wk_policy_decode_arrived(v, a)) return;
    /* every unit, or (senders that choose one level per group) every KV value */
    if (v->n_usable == v->plan->n || v->kv_values_usable >= v->plan->kv_values_total) {
        a->kind = WK_ACT_EMIT;
        a->force = 1;
        a->kv_bytes_per_token = kv_bytes_per_token;
        return;
    }
    a->kind = WK_ACT_WAIT;
}
/* The receiver of local prefill: once the whole context is computed, emit (reading the fp16 cache);
 * otherwise prefill the next `chunk` context tokens (fewer at the end) once their text arrived, else
 * wait. */
static inline void wk_policy_prefill_as_arrives(const wk_view *v, int chunk, wk_action *a) {
    int context = v->req->context_tokens;
    if (v->tokens_prefilled >= context) {
        a->kind = WK_ACT_EMIT;
        a->kv_bytes_per_token = wk_model_kv_bytes_per_token(v->req->model, 16);
        return;
    }
    int remaining = context - v->tokens_prefilled;
    int available = v->text_tokens_arrived - v->tokens_prefilled;
    int want = remaining < chunk ? remaining : chunk;
    if (available >= want) {
        a->kind = WK_ACT_PREFILL;
        a->tokens = want;
    } else {
        a->kind = WK_ACT_WAIT;
    }
}
/* Deadline of the next token for paced decoding: the first token's is `ttft_per_8k` seconds per 8192
 * context tokens after the stream starts, later ones `per_token` after the previous token; 0 = none
 * (INFINITY). */
static inline double wk_policy_deadline(const wk_view *v, double ttft_per_8k, double per_token) {
    if (v->tokens_emitted == 0) {
        double d = ttft_per_8k * v->req->context_tokens / 8192.0;
        return d > 0 ? v->stream_start + d : INFINITY;
    }
    return per_token > 0 ? v->last_token_at + per_token : INFINITY;
}

/* Codec sizes measured once per model shape and kept in a policy's state. */
typedef struct wk_policy_sizes {
    wk_codec_sizes sizes;
    int layers, kv_heads, head_dim, batch; /* what they were measured for (0: not yet) */
    const wk_kv_tensor *sample;            /* and on which real KV (NULL: synthetic) */
} wk_policy_sizes;
/* Measures sizes for m (WiKV batches of `batch` vectors; 0 = the default) on `sample` (the request's
 * kv_sample; NULL: synthetic KV) unless already done for the same. */
int wk_policy_sizes_ensure(wk_policy_sizes *c, const wk_model_spec *m, int batch, const wk_kv_tensor *sample,
                           wk_err *err);

#endif
