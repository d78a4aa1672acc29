/* Real execution: the same policies as the simulator driving real bytes over a real (trace-paced)
 * TCP link into a real model. The edge server (wk_stream_serve) prefills or loads the context's KV,
 * builds the policy's plan as the simulator does, encodes each unit from the real KV with the codec
 * the policy implies and streams the units in the order the sender half picks, paced by a trace. The
 * device client (wk_stream_client_request) runs the receiver half in the session driver
 * (sim/session.h) with a wall clock fed by a frame-reader thread, a link without `send` (the sender
 * runs on the server) and the engine as backend, then scores the answer. Arriving KV units are decoded
 * into the engine's cache by a sink (exec/kv_sink.h): on a CUDA engine KIVI, CacheGen and semantic units
 * are decoded on the GPU (kv/cuda) and copied there into the cache, bit-identical to the CPU decoders,
 * which serve every other engine and codec.
 *
 * Request: one REQUEST frame per connection: task_id = task name (passkey|multikey|topic|vartrack),
 * context_id = "seed=S;context=N;out=K", policy = policy name, params = "key=value;..." (the policy's
 * parameters). Both sides generate the same task item and tokenize the same prompt
 * (WK_TASK_PROMPT with BOS); the streamed context is the whole prompt (context_tokens = prompt
 * tokens), so the first EMIT recomputes the last prompt token and yields the first answer token.
 *
 * Units on the wire: one UNIT_DATA frame per unit, unit_id = its index in the plan, n_units = 1,
 * level = the unit's level; the payload is the unit encoded by its codec (wk_stream_codec):
 *   FP16   for each layer of the unit, each KV head of it: K fp16 [tokens][head_dim], then V (same);
 *   KIVI   for each layer, each KV head: wk_kivi_encode_head of the unit's tokens (kv/kivi.h);
 *   SEM    one semantic batch (kv/semantic.h) of the unit's vectors (unit.vectors) at the unit's level
 *          (wikv); the batch names its vectors, so the client needs no ranking of its own;
 *   CG     one CacheGen chunk (kv/cachegen.h) of the unit's layers x tokens at the unit's level (cachegen);
 *   VEC16  per vector of unit.vectors: u32 id, K fp16 [head_dim], V fp16 [head_dim] (eviction policies:
 *          the kept tokens with their indices; what is not sent stays absent, left out of attention);
 *   TEXT   u32 token ids [tokens] (prefill's text units).
 * The client checks each unit against its own plan: index, level and, for fixed-size codecs, the exact
 * byte length. Policies that rank KV (wikv) plan on the server with the engine's measured attention
 * (wk_request.importance: the mean over the last 100 query rows of prompt + WK_STREAM_PROBE); the
 * client plans with the synthetic ranking, which gives the same units, levels and values.
 *
 * KV files written by `wikv kvgen` (kv/kv_tensor.h format) are named TASK-CONTEXT-SEED.wkv.
 *
 * Synthetic models ("synthetic:NAME", timing experiments): the engines generate deterministic random
 * weights of models/specs/NAME.json (exec/engine.h, wk_engine_weights_synth); the text side is a real
 * tokenizer (--tokenizer, default the fixture model's, whose ids fit every bundled vocabulary), so
 * prompts, plans and bytes are those of real tasks while answers are meaningless: such rows carry
 * model = "synthetic:NAME" and a NULL F1 (not measured, never 0).
 *
 * Where the 8B server's KV comes from: `wikv kvgen --backend cuda` files, loaded once per context and
 * kept (wk_stream_server_opts.kv_cache), not a prefill per request. A GPU prefill in the server
 * would cost the server its own 16 GB of weights beside every client engine on the same GPU (fewer
 * clients at once), a 32K prefill plus attention export (seconds) inside the first request's TTFT,
 * and it would tie the KV a client receives to when the server ran; a file is computed once, checked
 * by CRC, read back in seconds and is the same bytes for every policy and rate. The server's own
 * prefill stays for small models (CPU engine).
 *
 * Encoding ahead: each request's units are encoded by encode_threads workers ahead of the sender, in
 * the order the sender will most likely ask for (plan order for in-order senders; for others, the
 * level of the last pick in plan order), at most encode_ahead units beyond the last one taken. The
 * sender takes an encoded unit when its policy picks it, encodes inline a unit nobody predicted, and
 * drops what was encoded for units it passed over. The server logs, per request, the encoder's
 * throughput (payload MB per encoding second) and how long the sender waited for it: near zero when
 * the link paces.
 *
 * Encoded units are kept per context (exec/unit_store.h, unit_store_mb), so a unit is encoded once
 * whatever number of requests stream it, and pre_encode encodes every unit (every level) of the named
 * policies' plans for the preloaded contexts before the server listens: a CacheGen or WiKV server stores
 * its KV encoded ahead of time, and at 8B scale the CPU coders (12-31 MB/s of payload per thread on the
 * GPU machine) could not follow a 1 Gbit/s link live. */
#ifndef WIKV_EXEC_STREAM_H
#define WIKV_EXEC_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/results.h"
#include "exec/engine.h"
#include "exec/tasks.h"
#include "exec/tokenizer.h"
#include "kv/kv_tensor.h"
#include "kv/unit.h"
#include "net/trace.h"
#include "net/wire.h"
#include "sim/policy.h"

typedef enum { WK_SCODEC_NONE = 0, WK_SCODEC_FP16, WK_SCODEC_KIVI, WK_SCODEC_SEM, WK_SCODEC_CG, WK_SCODEC_VEC16 } wk_stream_codec_kind;

typedef struct wk_stream_codec {
    wk_stream_codec_kind kind; /* codec of the plan's KV units (text units are always TEXT) */
    int kivi_bits, kivi_group, kivi_residual;
} wk_stream_codec;

#define WK_STREAM_PROBE "\nRepeat the above context."
#define WK_STREAM_ATTN_ROWS 100

/* The codec a created policy implies; WK_EUNSUPPORTED for policies exec cannot encode yet. */
int wk_stream_codec_for(const wk_policy *p, wk_stream_codec *c, wk_err *err);
/* Bytes of unit u under codec c (the exact encoded length), for a model with kv_heads x head_dim. */
int64_t wk_stream_unit_bytes(const wk_stream_codec *c, const wk_unit *u, int kv_heads, int head_dim);
/* Encodes unit u from the context's KV (kv) or token ids (ids[context]) into out (malloc'd). */
int wk_stream_unit_encode(const wk_stream_codec *c, const wk_unit *u, const wk_kv_tensor *kv, const int32_t *ids,
                          int n_ids, uint8_t **out, size_t *len, wk_err *err);
/* Decodes a KV unit's payload into the engine's cache (kv_write, marks present). */
int wk_stream_unit_decode_kv(const wk_stream_codec *c, const wk_unit *u, const uint8_t *data, size_t len,
                             wk_engine *e, wk_err *err);
/* Decodes a text unit's payload into ids[token_first .. token_first + token_count), checking each id
 * against vocab. */
int wk_stream_unit_decode_text(const wk_unit *u, const uint8_t *data, size_t len, int vocab, int32_t *ids,
                               wk_err *err);

/* One request, as both sides describe it. */
typedef struct wk_stream_job {
    wk_task_kind task;
    uint64_t seed;
    int context;        /* target context tokens (exec/tasks.h) */
    int output_tokens;  /* tokens to generate, >= 1 */
    char policy[256];   /* "name[:key=value,...]" */
} wk_stream_job;

/* The prompt of a job: task item and its token ids (with BOS); frees with wk_stream_prompt_free. */
typedef struct wk_stream_prompt {
    wk_task_item item;
    int32_t *ids;
    int n;
} wk_stream_prompt;
int wk_stream_prompt_make(const wk_tokenizer *tok, const wk_stream_job *job, wk_stream_prompt *p, wk_err *err);
void wk_stream_prompt_free(wk_stream_prompt *p);

/* 1 when the policy's plan ranks or selects KV by attention (needs wk_request.importance in exec). */
int wk_stream_policy_ranks(const wk_policy *p);
/* Prefills ids with the engine and copies the cache out as fp16 [layers][kv_heads][n][head_dim]. With
 * imp (not NULL, [layers][kv_heads][n]) the prefill runs over ids + the probe and imp receives the mean
 * attention of the last WK_STREAM_ATTN_ROWS query rows to each of the n context tokens. */
int wk_stream_prefill_kv(wk_engine *e, const wk_tokenizer *tok, const int32_t *ids, int n, wk_kv_tensor *kv,
                         float *imp, wk_err *err);
/* Importance file (kvgen): "WKIM", u32 version 1, u32 layers, kv_heads, tokens, u32 CRC32C of the payload,
 * u32 CRC32C of bytes 0..23, then f32 LE [layers][kv_heads][tokens]. Read checks shapes and CRCs and
 * names the field at fault; *imp is malloc'd. */
int wk_stream_importance_write(const char *path, const float *imp, int layers, int kv_heads, int tokens, wk_err *err);
int wk_stream_importance_read(const char *path, int layers, int kv_heads, int tokens, float **imp, wk_err *err);
/* DIR/TASK-CONTEXT-SEED.EXT (ext "wkv" for KV, "wki" for importance) into buf[cap]. */
void wk_stream_kv_path(const char *dir, const wk_stream_job *job, const char *ext, char *buf, size_t cap);

/* Confidence test of a decode step on partial KV (WiKV's boundary, simplified): features of the step's
 * logits, f0 = probability mass of the top 50 tokens, f1 = entropy of the renormalised top 100; a step
 * passes when every feature is within k standard deviations of its mean over full-KV decode steps. The
 * file is text: "wikv-confidence 1\nk K\nmass50 MEAN STD\nentropy100 MEAN STD\n". */
typedef struct wk_stream_confidence {
    double mean[2], std[2], k;
    int steps; /* full-KV steps the boundary was fitted on */
} wk_stream_confidence;
void wk_stream_confidence_features(const float *logits, int vocab, double f[2]);
int wk_stream_confidence_pass(const wk_stream_confidence *c, const float *logits, int vocab);
int wk_stream_confidence_save(const char *path, const wk_stream_confidence *c, wk_err *err);
int wk_stream_confidence_load(const char *path, wk_stream_confidence *c, wk_err *err);

/* ---- the engine as session backend (exec/exec_backend.c) ----------------------------------- */
/* DECODE_KV decodes the units' payloads into the engine's KV cache, PREFILL runs the engine on the
 * context token ids that arrived as text, EMIT runs one decode step (the last prompt token, then the
 * generated tokens) on the KV present; a PREFILL first tells the server how far the device's own
 * computation reaches (PROGRESS frame), and KV that arrives for tokens the device already computed is
 * not written over them. Durations are measured. Payloads and text ids are written by
 * the frame reader under `mu` before it reports the arrival. */
typedef struct wk_stream_backend {
    wk_engine *e;
    const wk_stream_codec *codec;
    const int32_t *prompt;         /* [n_prompt] the device's own prompt ids (for the last token) */
    int n_prompt;
    const int32_t *text_ids;       /* [n_prompt] context ids that arrived as text */
    uint8_t *const *payload;       /* [plan->n] arrived unit payloads (NULL: not yet) */
    const size_t *payload_len;     /* [plan->n] */
    void *mu;                      /* pthread_mutex_t guarding payload and text_ids */
    const wk_stream_confidence *confidence; /* NULL: every step passes */
    struct wk_kv_sink *sink;       /* exec/kv_sink.h: decodes the KV units into the engine's cache */
    int32_t *gen;                  /* [max_gen] generated tokens */
    int n_gen, max_gen;
    float *logits;                 /* [vocab] scratch */
    int progress_fd;               /* socket to the server: PREFILL actions report PROGRESS on it (-1: none) */
    uint32_t stream_id;
} wk_stream_backend;

int wk_stream_backend_run(void *self, const wk_action *a, const wk_view *v, const uint32_t *units, size_t n,
                          double *seconds, int *accepted, wk_err *err);

/* 1 for "synthetic:NAME" models. */
int wk_stream_model_is_synthetic(const char *model);
/* The tokenizer directory of a model: `tokenizer` when given, else the model directory, or for a
 * synthetic model the fixture model's (WK_STREAM_SYNTH_TOKENIZER under the data directory). */
#define WK_STREAM_SYNTH_TOKENIZER "models/fixtures/tiny-llama-tasks"
void wk_stream_tokenizer_dir(const char *model, const char *tokenizer, char *buf, size_t cap);
/* Checks that every id of the tokenizer fits the model's vocabulary (named in the error). */
int wk_stream_check_vocab(const wk_tokenizer *tok, int model_vocab, const char *model, wk_err *err);

/* ---- server -------------------------------------------------------------------------------- */
typedef struct wk_stream_server_opts {
    const char *model_dir;   /* HF model directory (config.json, tokenizer.json, model.safetensors), or
                                "synthetic:NAME" */
    const char *tokenizer_dir; /* NULL: wk_stream_tokenizer_dir(model_dir, NULL) */
    const char *kv_dir;      /* KV from `wikv kvgen` (NULL: prefill every request) */
    const char *device;      /* device profile the plans are made for (default rtx5080-laptop) */
    const wk_trace *trace;   /* pacing trace (borrowed) */
    double delay_s;          /* one-way delay */
    int max_connections;     /* stop after serving this many connections (0: forever) */
    int max_active;          /* connections served at once (0: WK_STREAM_MAX_ACTIVE); one more gets an
                                ERROR frame "server busy" and is closed */
    double send_timeout_s;   /* drop a connection whose client sends no request, takes no byte or does
                                not close after END for this long (0: WK_STREAM_SEND_TIMEOUT_S) */
    int shared_link;         /* 1: every connection is one flow of one link over `trace`, its capacity
                                shared fairly among the flows with bytes in flight (net/paced.h) */
    int quiet;               /* no per-request log lines on stderr */
    int encode_threads;      /* encoder workers per request (0: WK_STREAM_ENCODE_THREADS; -1: none, the
                                sender encodes each unit when it picks it) */
    int encode_ahead;        /* units encoded ahead of the sender (0: WK_STREAM_ENCODE_AHEAD) */
    int kv_cache;            /* contexts whose KV (and importance) stay in memory across requests
                                (0: WK_STREAM_KV_CACHE); least recently used ones not in use go first */
    int kv_preload;          /* 1: load every kvgen file of kv_dir before serving (kv_cache grows to hold
                                them), so no request waits for a load */
    int unit_store_mb;       /* encoded units kept per context for the next requests, MB (0:
                                WK_STREAM_UNIT_STORE_MB; -1: none): a unit is encoded once per context */
    const char *pre_encode;  /* with kv_preload: ';'-separated policy specs whose plans' units (every
                                level) are encoded for each preloaded context before serving (NULL: none) */
    void (*ready)(void *arg); /* called once the server is ready to take requests (after preloading) */
    void *ready_arg;
} wk_stream_server_opts;

#define WK_STREAM_ENCODE_THREADS 4
#define WK_STREAM_ENCODE_AHEAD 8
#define WK_STREAM_KV_CACHE 4
#define WK_STREAM_UNIT_STORE_MB 1024
#define WK_STREAM_MAX_ACTIVE 128
#define WK_STREAM_SEND_TIMEOUT_S 30.0

/* Accepts connections on listen_fd and serves each in its own thread until max_connections were
 * accepted (then waits for them). A failing request closes its connection only; a client that stops
 * reading is dropped after send_timeout_s without holding up the others. */
int wk_stream_serve(int listen_fd, const wk_stream_server_opts *o, wk_err *err);

/* ---- client -------------------------------------------------------------------------------- */
typedef struct wk_stream_client {
    wk_engine *engine;
    wk_tokenizer *tok;
    wk_model_spec spec;
    char model_name[256];    /* what rows name: the spec name, or "synthetic:NAME" */
    int synthetic;           /* 1: synthetic weights, answers are not scored (F1 NULL) */
    double timeout_s;        /* fail a request when no frame arrives for this long */
    wk_stream_confidence confidence;
    int has_confidence;      /* 0: every decode step passes */
    char backend[8];         /* engine backend: "cpu" or "cuda" */
    const char *device;      /* device profile the client plans with (NULL: rtx5080-laptop); must be the
                                server's (wk_stream_server_opts.device) */
    const char *kv_sink;     /* where KV units are decoded (exec/kv_sink.h): NULL the engine's best (the GPU
                                decoders on a CUDA engine), "host" the CPU decoders */
} wk_stream_client;

/* Fits the confidence boundary on full-KV greedy decode steps of n training-seed items of a task
 * (seeds from WK_TASK_TRAIN_SEED_MIN), with the client's engine. */
int wk_stream_confidence_fit(wk_stream_client *c, wk_task_kind task, int context, int n, int steps, double k,
                             wk_stream_confidence *out, wk_err *err);

typedef struct wk_stream_outcome {
    int ok;
    char fail_reason[512];
    double ttft_s, tpot_s, total_s;
    int tokens;
    int64_t bytes_received;       /* payload bytes by the end */
    int64_t bytes_at_first;       /* payload bytes arrived by the first token */
    double kv_fraction_at_first;
    double net_wait_s, kv_decode_s, compute_s;
    char answer[512];
    double f1;
    int context_tokens;      /* prompt tokens */
} wk_stream_outcome;

int wk_stream_client_open(wk_stream_client *c, const char *model_dir, wk_err *err); /* the CPU engine */
/* With the engine of a backend (wk_engine_open: "cpu" or "cuda"). */
int wk_stream_client_open_backend(wk_stream_client *c, const char *model_dir, const char *backend, wk_err *err);
/* With a tokenizer directory (NULL: wk_stream_tokenizer_dir's default) and a KV capacity in tokens (0:
 * the engine's default, min(max positions, 8192)). */
int wk_stream_client_open_opts(wk_stream_client *c, const char *model, const char *tokenizer_dir, const char *backend,
                               int kv_capacity, wk_err *err);
void wk_stream_client_close(wk_stream_client *c);
/* Runs one request against host:port. A request that fails (server gone, timeout, garbage frame)
 * returns 0 with out->ok = 0 and the reason; only local failures (bad job, out of memory) return an
 * error. */
int wk_stream_client_request(wk_stream_client *c, const char *host, uint16_t port, const wk_stream_job *job,
                             wk_stream_outcome *out, wk_err *err);

/* The outcome into a results row (kind exec): status, and the reason of a failure or the measured
 * fields of a success (a failure leaves TTFT, F1 and the rest NULL). The row points into o. */
void wk_stream_outcome_to_row(const wk_stream_outcome *o, wk_request_row *row);

/* Wire form of a job (REQUEST frame) and back. */
int wk_stream_job_to_wire(const wk_stream_job *job, wk_wire_request *request, wk_err *err);
int wk_stream_job_from_wire(const wk_wire_request *request, wk_stream_job *job, wk_err *err);

#endif
