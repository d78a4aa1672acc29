/* The edge server of the real execution: one thread per connection; each reads a REQUEST, builds the
 * policy's plan as the simulator does (same wk_request shape), gets the context's KV (a kvgen file or
 * a prefill with its own engine), and streams the encoded units in the order the policy's sender half
 * picks, through a trace-paced sender. */
#include "exec/stream.h"

#include <dirent.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/parallel.h"
#include "core/progress.h"
#include "exec/unit_store.h"
#include "models/device.h"
#include "net/paced.h"

/* Policy instances kept across requests, one per request in flight: a policy measures its codec
 * sizes once per model shape (kv/codec_size.h), as the simulator's instance does over its requests,
 * so a request does not pay that measurement before its stream starts. */
typedef struct pooled_policy {
    char spec[256];
    wk_policy pol;
    int in_use;
} pooled_policy;

typedef struct policy_pool {
    pthread_mutex_t mu;
    pooled_policy **items; /* each its own allocation: a holder's pointer survives the array growing */
    size_t n, cap;
} policy_pool;

static int pool_take(policy_pool *p, const char *spec, size_t *slot, wk_err *err) {
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    size_t i = 0;
    while (i < p->n && (p->items[i]->in_use || strcmp(p->items[i]->spec, spec) != 0)) i++;
    if (i == p->n) {
        if (p->n == p->cap) {
            size_t cap = p->cap ? 2 * p->cap : 8;
            pooled_policy **g = realloc(p->items, cap * sizeof *g);
            if (!g) rc = wk_err_set(err, WK_ENOMEM, "policy pool: out of memory");
            else p->items = g, p->cap = cap;
        }
        pooled_policy *item = rc ? NULL : calloc(1, sizeof *item);
        if (!rc && !item) rc = wk_err_set(err, WK_ENOMEM, "policy pool: out of memory");
        if (!rc) rc = wk_policy_create(spec, &item->pol, err);
        if (!rc) {
            snprintf(item->spec, sizeof item->spec, "%s", spec);
            p->items[p->n++] = item;
        } else
            free(item);
    }
    if (!rc) {
        p->items[i]->in_use = 1;
        *slot = i;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static void pool_give(policy_pool *p, size_t slot) {
    pthread_mutex_lock(&p->mu);
    p->items[slot]->in_use = 0;
    pthread_mutex_unlock(&p->mu);
}

/* ---- contexts kept across requests ------------------------------------------------------ */
/* The KV (and importance) of one context, shared read-only by the requests streaming it. */
typedef struct kv_entry {
    wk_task_kind task;
    int context;
    uint64_t seed;
    wk_kv_tensor kv;
    float *imp;      /* [L][H][T] measured attention, or NULL (a .wkv without its .wki) */
    wk_unit_store *units; /* its encoded units, kept for the next requests (NULL: none kept) */
    int refs;        /* requests holding it */
    int loading;     /* one request loads or prefills it; the others wait for it */
    uint64_t used;   /* the cache's clock at its last use (least recently used goes first) */
} kv_entry;

typedef struct kv_cache {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    kv_entry **items;
    size_t n, cap;
    size_t keep;     /* entries kept when none is in use */
    size_t unit_store_bytes; /* encoded units kept per context (0: none) */
    uint64_t clock;
} kv_cache;

static void entry_free(kv_entry *en) {
    wk_kv_tensor_free(&en->kv);
    free(en->imp);
    wk_unit_store_free(en->units);
    free(en);
}

static int entry_is(const kv_entry *en, const wk_stream_job *job) {
    return en->task == job->task && en->context == job->context && en->seed == job->seed;
}

/* Frees least recently used entries nobody holds while more than keep are there (lock held). */
static void cache_evict_locked(kv_cache *c) {
    while (c->n > c->keep) {
        size_t victim = c->n;
        for (size_t i = 0; i < c->n; i++)
            if (!c->items[i]->refs && !c->items[i]->loading && (victim == c->n || c->items[i]->used < c->items[victim]->used))
                victim = i;
        if (victim == c->n) return;
        entry_free(c->items[victim]);
        c->items[victim] = c->items[--c->n];
    }
}

static int cache_push_locked(kv_cache *c, kv_entry *en, wk_err *err) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 8;
        kv_entry **g = realloc(c->items, cap * sizeof *g);
        if (!g) return wk_err_set(err, WK_ENOMEM, "KV cache: out of memory");
        c->items = g;
        c->cap = cap;
    }
    c->items[c->n++] = en;
    return 0;
}

/* The entry of a job's context, held (refs + 1). *fresh = 1: a new empty entry, marked loading, that
 * the caller fills and then publishes; otherwise a ready one (with importance when want_imp). */
static int cache_acquire(kv_cache *c, const wk_stream_job *job, int want_imp, kv_entry **out, int *fresh, wk_err *err) {
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    for (;;) {
        kv_entry *ready = NULL, *pending = NULL;
        for (size_t i = 0; i < c->n; i++) {
            kv_entry *en = c->items[i];
            if (!entry_is(en, job)) continue;
            if (en->loading) pending = en;
            else if (en->imp || !want_imp) ready = en;
        }
        if (ready) {
            ready->refs++;
            ready->used = ++c->clock;
            *out = ready;
            *fresh = 0;
            break;
        }
        if (pending) { /* another request is loading this context: wait for it rather than load it twice */
            pthread_cond_wait(&c->cv, &c->mu);
            continue;
        }
        kv_entry *en = calloc(1, sizeof *en);
        if (!en) rc = wk_err_set(err, WK_ENOMEM, "KV cache: out of memory");
        if (!rc) {
            *en = (kv_entry){.task = job->task, .context = job->context, .seed = job->seed, .refs = 1, .loading = 1,
                             .used = ++c->clock};
            if (c->unit_store_bytes) rc = wk_unit_store_new(c->unit_store_bytes, &en->units, err);
            if (!rc) rc = cache_push_locked(c, en, err);
            if (rc) free(en);
        }
        if (!rc) {
            *out = en;
            *fresh = 1;
        }
        break;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static void cache_remove_locked(kv_cache *c, kv_entry *en) {
    for (size_t i = 0; i < c->n; i++)
        if (c->items[i] == en) {
            c->items[i] = c->items[--c->n];
            break;
        }
    entry_free(en);
}

/* Ends the loading of a fresh entry: ready when failed == 0, else removed (the caller's hold ends). */
static void cache_publish(kv_cache *c, kv_entry *en, int failed) {
    pthread_mutex_lock(&c->mu);
    en->loading = 0;
    if (failed) cache_remove_locked(c, en);
    else cache_evict_locked(c);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void cache_release(kv_cache *c, kv_entry *en) {
    if (!en) return;
    pthread_mutex_lock(&c->mu);
    en->refs--;
    en->used = ++c->clock;
    cache_evict_locked(c);
    pthread_mutex_unlock(&c->mu);
}

static void cache_free(kv_cache *c) {
    for (size_t i = 0; i < c->n; i++) entry_free(c->items[i]);
    free(c->items);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

/* ---- encoding ahead of the sender ------------------------------------------------------------- */
enum { ENC_NONE = 0, ENC_BUSY, ENC_DONE, ENC_TAKEN, ENC_DROPPED };
#define ENC_AHEAD_BYTES ((size_t)256 << 20) /* encoded bytes waiting for the sender, at most (one unit always) */

typedef struct encoder {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const wk_stream_codec *codec;
    wk_plan *plan;
    const wk_kv_tensor *kv;
    const int32_t *ids;
    int n_ids;
    wk_unit_store *store; /* the context's encoded units (NULL: none kept) */
    uint8_t *st;         /* [plan n] ENC_* */
    uint8_t **data;      /* [plan n] encoded payloads not yet taken */
    size_t *len;         /* [plan n] */
    int same_level;      /* prediction: 0 = plan order, 1 = plan order within the level of the last pick */
    int level;           /* the last pick's level */
    long cursor;         /* the next unit predicted (plan n: none) */
    long floor;          /* the last unit taken: units below it the sender passed over */
    int ahead, max_ahead;
    size_t ahead_bytes;
    int stop;
    double enc_s, wait_s; /* seconds encoding (all threads), seconds the sender waited for the encoder */
    int64_t enc_bytes;
    int n_enc, n_inline, n_dropped, n_reused; /* n_reused: payloads copied from the context's store */
    pthread_t *th;
    int n_th;
} encoder;

/* The unit after i that the sender will most likely ask for next. */
static long enc_successor(const encoder *e, long i) {
    long n = (long)e->plan->n;
    for (long j = i + 1; j < n; j++)
        if (!e->same_level || e->plan->units[j].level == e->level) return j;
    return n;
}

/* Unit u's payload: a copy of the stored one, else encoded here (and stored). */
static int encode_or_reuse(wk_unit_store *store, const wk_stream_codec *c, const wk_unit *u, const wk_kv_tensor *kv,
                           const int32_t *ids, int n_ids, uint8_t **data, size_t *len, int *reused, wk_err *err) {
    if (store && wk_unit_store_get(store, c, u, data, len)) return ++*reused, 0;
    int rc = wk_stream_unit_encode(c, u, kv, ids, n_ids, data, len, err);
    if (!rc && store) wk_unit_store_put(store, c, u, *data, *len);
    return rc;
}

/* Encodes (or takes from the store: *reused = 1) unit i. */
static int enc_unit(encoder *e, long i, uint8_t **data, size_t *len, double *secs, int *reused, wk_err *err) {
    double t0 = wk_now_s();
    *reused = 0;
    int rc = encode_or_reuse(e->store, e->codec, &e->plan->units[i], e->kv, e->ids, e->n_ids, data, len, reused, err);
    *secs = wk_now_s() - t0;
    return rc;
}

static void *enc_worker(void *arg) {
    encoder *e = arg;
    pthread_mutex_lock(&e->mu);
    while (!e->stop) {
        long i = e->cursor;
        int room = e->ahead < e->max_ahead && (e->ahead == 0 || e->ahead_bytes < ENC_AHEAD_BYTES);
        if (!room || i >= (long)e->plan->n) {
            pthread_cond_wait(&e->cv, &e->mu);
            continue;
        }
        e->cursor = enc_successor(e, i);
        if (e->st[i] != ENC_NONE) continue;
        e->st[i] = ENC_BUSY;
        e->ahead++;
        pthread_mutex_unlock(&e->mu);
        uint8_t *data = NULL;
        size_t len = 0;
        double secs;
        int reused;
        wk_err err = {0};
        int rc = enc_unit(e, i, &data, &len, &secs, &reused, &err);
        pthread_mutex_lock(&e->mu);
        e->enc_s += secs;
        e->n_reused += reused;
        if (rc || i < e->floor) { /* failed (the sender meets the error inline) or passed over meanwhile */
            free(data);
            e->st[i] = rc ? ENC_NONE : ENC_DROPPED;
            e->n_dropped += !rc;
            e->ahead--;
        } else {
            e->data[i] = data;
            e->len[i] = len;
            e->st[i] = ENC_DONE;
            e->ahead_bytes += len;
            e->enc_bytes += (int64_t)len;
            e->n_enc++;
        }
        pthread_cond_broadcast(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* Starts n_threads workers predicting from the unit picked first (first < 0: from the plan's start). */
static int enc_start(encoder *e, int n_threads, int max_ahead, int same_level, long first, wk_err *err) {
    size_t n = e->plan->n ? e->plan->n : 1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->st = calloc(n, 1);
    e->data = calloc(n, sizeof *e->data);
    e->len = calloc(n, sizeof *e->len);
    e->th = calloc((size_t)(n_threads > 0 ? n_threads : 1), sizeof *e->th);
    if (!e->st || !e->data || !e->len || !e->th) return wk_err_set(err, WK_ENOMEM, "encoder: out of memory");
    e->same_level = same_level;
    e->max_ahead = max_ahead;
    e->level = first >= 0 ? e->plan->units[first].level : 0;
    e->cursor = first >= 0 ? enc_successor(e, first) : 0;
    e->floor = first >= 0 ? first : 0;
    if (first >= 0) e->st[first] = ENC_TAKEN;
    for (int t = 0; t < n_threads; t++) {
        if (pthread_create(&e->th[t], NULL, enc_worker, e) != 0) break;
        e->n_th++;
    }
    return 0;
}

/* The payload of unit idx, which the sender's policy picked: encoded ahead, being encoded (waits), or
 * encoded here. Moves the prediction on from idx and drops what was encoded for units passed over. */
static int enc_take(encoder *e, long idx, uint8_t **data, size_t *len, wk_err *err) {
    double t0 = wk_now_s();
    pthread_mutex_lock(&e->mu);
    const wk_unit *u = &e->plan->units[idx];
    int moved = e->same_level && u->level != e->level;
    if (moved) e->level = u->level;
    if (moved || e->cursor <= idx) e->cursor = enc_successor(e, idx);
    for (long j = e->floor; j < idx; j++)
        if (e->st[j] == ENC_DONE) {
            free(e->data[j]);
            e->data[j] = NULL;
            e->ahead--;
            e->ahead_bytes -= e->len[j];
            e->st[j] = ENC_DROPPED;
            e->n_dropped++;
        }
    if (idx > e->floor) e->floor = idx;
    while (e->st[idx] == ENC_BUSY) pthread_cond_wait(&e->cv, &e->mu);
    int rc = 0, here = e->st[idx] != ENC_DONE;
    if (!here) {
        *data = e->data[idx];
        *len = e->len[idx];
        e->data[idx] = NULL;
        e->ahead--;
        e->ahead_bytes -= *len;
    }
    e->st[idx] = ENC_TAKEN;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (here) { /* nobody predicted it (or a worker failed on it): encode it now */
        double secs;
        int reused;
        rc = enc_unit(e, idx, data, len, &secs, &reused, err);
        pthread_mutex_lock(&e->mu);
        e->enc_s += secs;
        e->n_reused += reused;
        if (!rc) e->enc_bytes += (int64_t)*len, e->n_enc++, e->n_inline += !reused;
        pthread_mutex_unlock(&e->mu);
    }
    pthread_mutex_lock(&e->mu);
    e->wait_s += wk_now_s() - t0;
    pthread_mutex_unlock(&e->mu);
    return rc;
}

static void enc_stop(encoder *e) {
    if (!e->st) return;
    pthread_mutex_lock(&e->mu);
    e->stop = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    for (int t = 0; t < e->n_th; t++) pthread_join(e->th[t], NULL);
    for (size_t i = 0; i < e->plan->n; i++) free(e->data[i]);
    free(e->st);
    free(e->data);
    free(e->len);
    free(e->th);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    e->st = NULL;
}

typedef struct conn {
    const wk_stream_server_opts *o;
    wk_paced_link *link; /* the shared link, or NULL */
    double timeout_s;    /* the send timeout in force */
    policy_pool *pool;
    kv_cache *cache;
    int fd;
    int id;
    int busy;            /* refused: the server has max_active connections */
    pthread_t thread;
    atomic_int done; /* the thread finished: the accept loop joins it */
} conn;

/* Per-request sender state: the policy's view from the server side. */
typedef struct server_req {
    wk_stream_job job;
    wk_stream_prompt prompt;
    policy_pool *pool;
    wk_policy *pol;     /* pool->items[slot].pol while the request holds it */
    size_t slot;
    wk_stream_codec codec;
    wk_model_spec spec;
    wk_device device;
    wk_request req;
    wk_plan plan;
    kv_cache *cache;
    kv_entry *entry;    /* the context's KV held from the cache (NULL: the plan needs none) */
    const wk_kv_tensor *kv;
    float *importance;  /* [L][H][T] measured attention (the entry's), for plans that rank KV */
    encoder enc;
    uint8_t *state;
    int64_t bytes_sent;
    double stream_s;       /* link time from the stream's start to its END frame */
    wk_view v;             /* the sender's view */
    long first;            /* the first unit, picked and encoded while the request travels up; -1: none */
    uint8_t *first_data;
    size_t first_len;
} server_req;

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static int plan_has_kv(const wk_plan *p) {
    for (size_t i = 0; i < p->n; i++)
        if (p->units[i].kind == WK_UNIT_KV) return 1;
    return 0;
}

static int load_files(const wk_stream_server_opts *o, const wk_stream_job *job, const wk_model_spec *spec,
                      kv_entry *en, int want_imp, wk_err *err) {
    char path[4096], ipath[4096];
    wk_stream_kv_path(o->kv_dir, job, "wkv", path, sizeof path);
    wk_stream_kv_path(o->kv_dir, job, "wki", ipath, sizeof ipath);
    int have_imp = access(ipath, R_OK) == 0;
    if (access(path, R_OK) != 0 || (want_imp && !have_imp)) return 1;
    int rc = wk_kv_tensor_read(path, &en->kv, err);
    if (rc) return rc;
    if (en->kv.layers != spec->n_layers || en->kv.kv_heads != spec->n_kv_heads || en->kv.head_dim != spec->head_dim)
        return wk_err_set(err, WK_EFORMAT, "%s: shape %dx%dx%dx%d does not match the model", path, en->kv.layers,
                          en->kv.kv_heads, en->kv.tokens, en->kv.head_dim);
    if (have_imp) rc = wk_stream_importance_read(ipath, spec->n_layers, spec->n_kv_heads, en->kv.tokens, &en->imp, err);
    return rc;
}

/* Fills a fresh cache entry: the kvgen files when there are, else a prefill with the CPU engine
 * (with the attention export, so the entry serves ranking plans too). */
static int fill_entry(const wk_stream_server_opts *o, server_req *s, const wk_tokenizer *tok, kv_entry *en, int want_imp,
                      wk_err *err) {
    if (o->kv_dir) {
        int rc = load_files(o, &s->job, &s->spec, en, want_imp, err);
        if (rc <= 0) return rc;
    }
    size_t n_imp = (size_t)s->spec.n_layers * s->spec.n_kv_heads * s->prompt.n;
    if (!(en->imp = malloc(n_imp * sizeof *en->imp))) return wk_err_set(err, WK_ENOMEM, "importance: out of memory");
    wk_engine_opts eo = {.kv_capacity = s->prompt.n + 64};
    wk_engine *e = NULL;
    int rc = wk_engine_cpu_open(o->model_dir, &eo, &e, err);
    if (!rc) rc = wk_stream_prefill_kv(e, tok, s->prompt.ids, s->prompt.n, &en->kv, en->imp, err);
    wk_engine_free(e);
    return rc;
}

/* The context's KV (and importance when want_imp) from the cache, loaded or prefilled once. */
static int load_or_prefill_kv(const wk_stream_server_opts *o, server_req *s, const wk_tokenizer *tok, int want_imp,
                              wk_err *err) {
    kv_entry *en;
    int fresh;
    int rc = cache_acquire(s->cache, &s->job, want_imp, &en, &fresh, err);
    if (rc) return rc;
    if (fresh) {
        rc = fill_entry(o, s, tok, en, want_imp, err);
        cache_publish(s->cache, en, rc != 0);
        if (rc) return rc;
    }
    s->entry = en;
    if (en->kv.tokens != s->prompt.n)
        return wk_err_set(err, WK_EFORMAT, "KV of %s-%d-%llu: %d tokens, the prompt has %d", wk_task_name(s->job.task),
                          s->job.context, (unsigned long long)s->job.seed, en->kv.tokens, s->prompt.n);
    s->kv = &en->kv;
    if (want_imp) s->importance = en->imp;
    return 0;
}

static int prepare(const wk_stream_server_opts *o, const wk_wire_request *wr, server_req *s, wk_err *err) {
    int rc = wk_stream_job_from_wire(wr, &s->job, err);
    if (!rc) rc = pool_take(s->pool, s->job.policy, &s->slot, err);
    if (!rc) {
        pthread_mutex_lock(&s->pool->mu);
        s->pol = &s->pool->items[s->slot]->pol;
        pthread_mutex_unlock(&s->pool->mu);
    }
    if (!rc) rc = wk_stream_codec_for(s->pol, &s->codec, err);
    if (!rc) rc = wk_model_spec_find(o->model_dir, &s->spec, err);
    if (!rc) rc = wk_device_find(o->device ? o->device : "rtx5080-laptop", &s->device, err);
    wk_tokenizer *tok = NULL;
    char tok_dir[4096];
    wk_stream_tokenizer_dir(o->model_dir, o->tokenizer_dir, tok_dir, sizeof tok_dir);
    if (!rc) rc = wk_tokenizer_load_dir(tok_dir, &tok, err);
    if (!rc) rc = wk_stream_prompt_make(tok, &s->job, &s->prompt, err);
    /* plans that rank KV need the measured attention first; the others need KV only if they stream it */
    int ranks = !rc && wk_stream_policy_ranks(s->pol);
    if (ranks) rc = load_or_prefill_kv(o, s, tok, 1, err);
    s->req = (wk_request){&s->spec, &s->device, s->prompt.n, s->job.output_tokens, wk_task_name(s->job.task),
                          s->job.seed, s->importance, NULL};
    if (!rc) rc = s->pol->ops->plan(s->pol->state, s->pol->param, &s->req, &s->plan, err);
    if (!rc && !ranks && plan_has_kv(&s->plan)) rc = load_or_prefill_kv(o, s, tok, 0, err);
    wk_tokenizer_free(tok);
    if (!rc && !(s->state = calloc(s->plan.n ? s->plan.n : 1, 1))) rc = wk_err_set(err, WK_ENOMEM, "out of memory");
    return rc;
}

static void release(server_req *s) {
    enc_stop(&s->enc);
    free(s->first_data);
    wk_stream_prompt_free(&s->prompt);
    wk_plan_free(&s->plan); /* first: its units may point into the policy's state */
    if (s->pol) pool_give(s->pool, s->slot);
    cache_release(s->cache, s->entry);
    free(s->state);
}

static int send_info(wk_paced_sender *ps, uint32_t stream, const wk_plan *p, wk_err *err) {
    wk_wire_msg m;
    memset(&m, 0, sizeof m);
    m.h.type = WK_FRAME_STREAM_INFO;
    m.h.stream_id = stream;
    m.u.info.n_units = (uint32_t)p->n;
    int levels = 1;
    for (size_t i = 0; i < p->n; i++)
        if (p->units[i].level + 1 > levels) levels = p->units[i].level + 1;
    if (levels > WK_WIRE_MAX_LEVELS) return wk_err_set(err, WK_EUNSUPPORTED, "plan has %d levels", levels);
    m.u.info.n_levels = (uint8_t)levels;
    for (size_t i = 0; i < p->n; i++) m.u.info.level_bytes[p->units[i].level] += (uint64_t)p->units[i].bytes;
    return wk_paced_send_msg(ps, &m, err);
}

/* Takes the frames the device sent since the last call (PROGRESS; MORE and STOP are not used yet) without
 * waiting for more: how far the device computed the context itself goes into the sender's view. */
static int read_progress(wk_paced_receiver *rx, wk_view *v, wk_err *err) {
    for (;;) {
        struct pollfd p = {.fd = rx->fd, .events = POLLIN};
        if (rx->fd < 0 || poll(&p, 1, 0) != 1) return 0;
        wk_wire_msg m;
        int rc = wk_paced_recv(rx, &m, 1.0, err); /* a frame is 40 bytes: its rest follows at once */
        if (rc) return wk_err_prefix(err, rc == WK_EFORMAT ? "garbage frame from the client" : "client gone");
        if (m.h.type == WK_FRAME_PROGRESS && (int64_t)m.u.progress.tokens_prefilling > v->tokens_prefilling)
            v->tokens_prefilling = (int)(m.u.progress.tokens_prefilling < (uint32_t)v->req->context_tokens
                                             ? m.u.progress.tokens_prefilling
                                             : (uint32_t)v->req->context_tokens);
    }
}

/* Starts the sender half and picks and encodes its first unit at link time 0, before the stream
 * starts: the server does it while the request's trip up the link lasts, so the first byte does not
 * wait for an encoder the simulator does not count. */
static int pick_first(server_req *s, wk_err *err) {
    memset(&s->v, 0, sizeof s->v);
    s->v.req = &s->req;
    s->v.plan = &s->plan;
    s->v.unit_state = s->state;
    s->first = -1;
    if (s->pol->ops->start) s->pol->ops->start(s->pol->state, s->pol->param, &s->req, &s->plan);
    long idx = s->pol->ops->next_unit(s->pol->state, s->pol->param, &s->v);
    if (idx < 0 || (size_t)idx >= s->plan.n || s->state[idx] != WK_US_PLANNED) return 0; /* the loop asks again */
    double t0 = wk_now_s();
    int rc = encode_or_reuse(s->entry ? s->entry->units : NULL, &s->codec, &s->plan.units[idx], s->kv, s->prompt.ids,
                             s->prompt.n, &s->first_data, &s->first_len, &s->enc.n_reused, err);
    s->enc.enc_s += wk_now_s() - t0;
    if (!rc) s->first = idx, s->enc.enc_bytes += (int64_t)s->first_len, s->enc.n_enc++;
    return rc;
}

/* Workers that encode the plan's units ahead of the sender (none with encode_threads < 0). */
static int start_encoder(const wk_stream_server_opts *o, server_req *s, wk_err *err) {
    int threads = o->encode_threads > 0 ? o->encode_threads : WK_STREAM_ENCODE_THREADS;
    if (o->encode_threads < 0 || s->plan.n < 2) return 0;
    encoder *e = &s->enc;
    e->codec = &s->codec;
    e->plan = &s->plan;
    e->kv = s->kv;
    e->ids = s->prompt.ids;
    e->n_ids = s->prompt.n;
    e->store = s->entry ? s->entry->units : NULL;
    int same_level = s->pol->ops->next_unit != wk_policy_send_in_order;
    return enc_start(e, threads, o->encode_ahead > 0 ? o->encode_ahead : WK_STREAM_ENCODE_AHEAD, same_level, s->first,
                     err);
}

static int stream_units(server_req *s, wk_paced_sender *ps, wk_paced_receiver *rx, uint32_t stream, wk_err *err) {
    /* the first header is part of what the client counts: STREAM_INFO goes first */
    int rc = send_info(ps, stream, &s->plan, err);
    wk_view v = s->v;
    uint64_t last_unit = rc ? 0 : wk_paced_bytes_queued(ps);
    /* the unit before the last one queued: its payload, when it was queued, when the one before it
     * finished (for the rate estimate, an exponentially weighted mean of per-unit throughput as the
     * simulator's sender keeps it) */
    double prev_queued = 0, prev_prev_done = 0;
    int64_t prev_bytes = 0;
    while (!rc) {
        long idx;
        uint8_t *data = NULL;
        size_t len = 0;
        if (s->first >= 0) { /* picked and encoded before the stream started */
            idx = s->first;
            data = s->first_data;
            len = s->first_len;
            s->first = -1;
            s->first_data = NULL;
            v.now = wk_paced_now(ps);
        } else {
            rc = read_progress(rx, &v, err);
            if (rc) break;
            v.now = wk_paced_now(ps);
            idx = s->pol->ops->next_unit(s->pol->state, s->pol->param, &v);
            if (idx == WK_SEND_DONE || (idx == WK_SEND_LATER && v.n_sent == s->plan.n)) break;
            if (idx == WK_SEND_LATER || idx < 0 || (size_t)idx >= s->plan.n || s->state[idx] != WK_US_PLANNED) {
                /* nothing now: ask again once the link has delivered what is queued (or the device's
                 * progress has moved on) */
                if ((rc = wk_paced_wait_delivered(ps, wk_paced_bytes_queued(ps), 600.0, err))) break;
                sleep_s(0.001);
                continue;
            }
            if (s->enc.st)
                rc = enc_take(&s->enc, idx, &data, &len, err);
            else { /* no workers: the sender encodes, and waits for it */
                double t0 = wk_now_s();
                int reused_before = s->enc.n_reused;
                rc = encode_or_reuse(s->entry ? s->entry->units : NULL, &s->codec, &s->plan.units[idx], s->kv,
                                     s->prompt.ids, s->prompt.n, &data, &len, &s->enc.n_reused, err);
                double took = wk_now_s() - t0;
                s->enc.enc_s += took;
                s->enc.wait_s += took;
                if (!rc) s->enc.enc_bytes += (int64_t)len, s->enc.n_enc++, s->enc.n_inline += s->enc.n_reused == reused_before;
            }
            if (rc) break;
        }
        wk_unit *u = &s->plan.units[idx];
        u->bytes = (int64_t)len; /* the real encoded length */
        wk_wire_msg m;
        memset(&m, 0, sizeof m);
        m.h.type = WK_FRAME_UNIT_DATA;
        m.h.unit_id = (uint32_t)idx;
        m.h.stream_id = stream;
        m.u.unit = (wk_wire_unit_data){(uint8_t)u->level, 1, data, len};
        rc = wk_paced_send_msg(ps, &m, err);
        free(data);
        if (rc) break;
        s->state[idx] = WK_US_SENT;
        v.n_sent++;
        v.bytes_sent += (int64_t)len;
        /* ask the policy for the next unit once the link has delivered the previous one: one unit
         * queued ahead keeps the link busy, no more keeps the choice late */
        double queued_at = v.now;
        rc = wk_paced_wait_delivered(ps, last_unit, 600.0, err);
        last_unit = wk_paced_bytes_queued(ps);
        double done = wk_paced_now(ps), took = done - fmax(prev_queued, prev_prev_done);
        if (prev_bytes > 0 && took > 0) {
            double rate = (double)prev_bytes / took;
            v.est_bw_Bps = v.est_bw_Bps > 0 ? 0.7 * v.est_bw_Bps + 0.3 * rate : rate;
        }
        prev_prev_done = done;
        prev_queued = queued_at;
        prev_bytes = (int64_t)len;
    }
    if (rc) return rc;
    wk_wire_msg m;
    memset(&m, 0, sizeof m);
    m.h.type = WK_FRAME_END;
    m.h.stream_id = stream;
    m.u.end.units_sent = (uint32_t)v.n_sent;
    m.u.end.bytes_sent = (uint64_t)v.bytes_sent;
    s->bytes_sent = v.bytes_sent;
    s->stream_s = wk_paced_now(ps);
    return wk_paced_send_msg(ps, &m, err);
}

static void error_frame(wk_wire_msg *m, uint32_t stream, const wk_err *e) {
    memset(m, 0, sizeof *m);
    m->h.type = WK_FRAME_ERROR;
    m->h.stream_id = stream;
    m->u.error.code = e->code;
    snprintf(m->u.error.message, sizeof m->u.error.message, "%.*s", (int)sizeof m->u.error.message - 1, e->msg);
}

/* ERROR written straight to the socket, before a stream started. */
static void send_error(int fd, uint32_t stream, const wk_err *e) {
    wk_wire_msg m;
    error_frame(&m, stream, e);
    uint8_t buf[1024];
    size_t len;
    wk_err e2;
    if (wk_wire_encode(&m, buf, sizeof buf, &len, &e2) == 0) (void)!send(fd, buf, len, MSG_NOSIGNAL);
}

/* How long a connection that ends with ERROR waits for the client to read it and close. */
static double linger_s(const conn *c) { return c->timeout_s < 5.0 ? c->timeout_s : 5.0; }

/* Half-closes and discards what the client still sends until it closes (at most wait_s): closing a
 * socket with unread bytes resets the connection, which would destroy the answer in flight. */
static void close_after_client(int fd, double wait_s) {
    shutdown(fd, SHUT_WR);
    double end = wk_now_s() + wait_s;
    uint8_t junk[4096];
    for (double left = wait_s; left > 0; left = end - wk_now_s()) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(left * 1000) + 1) != 1 || read(fd, junk, sizeof junk) <= 0) return;
    }
}

/* A stream that fails after it started (a unit that cannot be encoded, a garbage frame from the device)
 * ends with ERROR behind the bytes already queued, so the device learns why instead of seeing the
 * connection close; waits at most wait_s for it to be written. Best effort: a client already gone gets
 * nothing. */
static void send_error_in_stream(wk_paced_sender *ps, int fd, uint32_t stream, const wk_err *e, double wait_s) {
    wk_wire_msg m;
    error_frame(&m, stream, e);
    wk_err e2;
    if (wk_paced_send_msg(ps, &m, &e2) == 0 && wk_paced_drain(ps, wait_s, &e2) == 0) close_after_client(fd, wait_s);
}

/* Refuses a connection beyond max_active: reads its REQUEST (so closing does not reset the
 * connection before the client reads the answer), answers ERROR, waits briefly for the close. */
static void refuse_busy(conn *c, wk_paced_receiver *rx) {
    wk_wire_msg m;
    wk_err err = {0};
    uint32_t stream = wk_paced_recv(rx, &m, linger_s(c), &err) == 0 ? m.h.stream_id : 0;
    if (rx->fd < 0) return;
    int max = c->o->max_active > 0 ? c->o->max_active : WK_STREAM_MAX_ACTIVE;
    wk_err_set(&err, WK_ESTATE, "server busy: %d connections active (max-active)", max);
    send_error(c->fd, stream, &err);
    close_after_client(c->fd, linger_s(c));
}

static void *serve_conn(void *arg) {
    conn *c = arg;
    const wk_stream_server_opts *o = c->o;
    /* The receiver reads a copy of the socket: it closes its copy when a frame is bad, while the sender
     * still owns c->fd (its thread may be writing) and can still answer ERROR. */
    wk_paced_receiver rx;
    wk_paced_receiver_init(&rx, dup(c->fd));
    if (c->busy || rx.fd < 0) {
        if (rx.fd >= 0) refuse_busy(c, &rx);
        if (!o->quiet)
            fprintf(stderr, "wikv serve: connection %d: refused, %s\n", c->id,
                    c->busy ? "server busy" : "no file descriptor left");
        wk_paced_receiver_free(&rx);
        close(c->fd);
        atomic_store(&c->done, 1);
        return NULL;
    }
    wk_wire_msg m;
    wk_err err = {0};
    server_req s;
    memset(&s, 0, sizeof s);
    s.pool = c->pool;
    s.cache = c->cache;
    s.first = -1;
    wk_plan_init(&s.plan);
    wk_paced_sender *ps = NULL;
    int rc = wk_paced_recv(&rx, &m, c->timeout_s, &err);
    if (!rc && m.h.type != WK_FRAME_REQUEST)
        rc = wk_err_set(&err, WK_EFORMAT, "expected REQUEST, got %s", wk_wire_type_name(m.h.type));
    uint32_t stream = rc ? 0 : m.h.stream_id;
    double t_request = wk_now_s();
    if (!rc) rc = prepare(o, &m.u.request, &s, &err);
    if (!rc) rc = pick_first(&s, &err);
    if (!rc) rc = start_encoder(o, &s, &err);
    /* the request's trip up the link (the link model's request delay): the preparation above runs
     * in it, so the stream starts when a real server would have received the request */
    double up_left = t_request + o->delay_s - wk_now_s();
    if (!rc && up_left > 0) sleep_s(up_left);
    wk_paced_config pc = {o->trace, o->delay_s, 0, c->link, c->timeout_s};
    if (!rc) rc = wk_paced_sender_start(c->fd, &pc, &ps, &err);
    if (rc) {
        send_error(c->fd, stream, &err);
        close_after_client(c->fd, linger_s(c));
    }
    if (!rc) {
        rc = stream_units(&s, ps, &rx, stream, &err);
        if (rc) send_error_in_stream(ps, c->fd, stream, &err, linger_s(c));
    }
    if (!rc) {
        /* wait for the END to be written and the client to close (it reads until END); a client that
         * takes no byte for the send timeout fails the drain */
        rc = wk_paced_drain(ps, 1e9, &err);
        if (!rc) shutdown(c->fd, SHUT_WR);
        if (!rc) (void)wk_paced_recv(&rx, &m, c->timeout_s, &err);
        wk_err_clear(&err);
    }
    if (ps) {
        wk_err e2;
        wk_paced_sender_stop(ps, &e2);
    }
    if (!o->quiet) {
        if (rc) fprintf(stderr, "wikv serve: connection %d: %s\n", c->id, err.msg);
        else {
            fprintf(stderr,
                    "wikv serve: connection %d: %s %s seed %llu, %zu units planned, %lld bytes sent in %.2f s; encoder: "
                    "%.1f MB in %.2f s (%.1f MB/s per thread, %d threads, %d units inline, %d dropped, %d reused), sender waited "
                    "%.2f s for it\n",
                    c->id, s.job.policy, wk_task_name(s.job.task), (unsigned long long)s.job.seed, s.plan.n,
                    (long long)s.bytes_sent, s.stream_s, (double)s.enc.enc_bytes / 1e6, s.enc.enc_s,
                    s.enc.enc_s > 0 ? (double)s.enc.enc_bytes / 1e6 / s.enc.enc_s : 0.0, s.enc.n_th, s.enc.n_inline,
                    s.enc.n_dropped, s.enc.n_reused, s.enc.wait_s);
        }
    }
    release(&s);
    wk_paced_receiver_free(&rx);
    close(c->fd);
    atomic_store(&c->done, 1);
    return NULL;
}

/* Joins the threads that finished, so a server that runs for long holds only the live ones. */
static size_t reap(conn **conns, size_t n) {
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (atomic_load(&conns[i]->done)) {
            pthread_join(conns[i]->thread, NULL);
            free(conns[i]);
        } else
            conns[kept++] = conns[i];
    }
    return kept;
}

/* Connections still streaming (refused ones do not count). */
static int count_active(conn **conns, size_t n) {
    int k = 0;
    for (size_t i = 0; i < n; i++) k += !conns[i]->busy && !atomic_load(&conns[i]->done);
    return k;
}

/* Loads every TASK-CONTEXT-SEED.wkv of kv_dir (with its .wki when there is one) into the cache. */
static int preload(const wk_stream_server_opts *o, kv_cache *c, wk_err *err) {
    wk_model_spec spec;
    int rc = wk_model_spec_find(o->model_dir, &spec, err);
    DIR *d = rc ? NULL : opendir(o->kv_dir);
    if (!rc && !d) return wk_err_set(err, WK_ENOTFOUND, "--kv-dir %s: cannot open", o->kv_dir);
    struct dirent *de;
    double t0 = wk_now_s();
    int64_t bytes = 0;
    while (!rc && (de = readdir(d))) {
        char task[64];
        int context, used = 0;
        unsigned long long seed;
        wk_stream_job job = {0};
        if (sscanf(de->d_name, "%63[a-z]-%d-%llu.wkv%n", task, &context, &seed, &used) != 3 ||
            de->d_name[used] != '\0' || wk_task_kind_parse(task, &job.task, err) != 0) {
            wk_err_clear(err);
            continue;
        }
        job.context = context;
        job.seed = seed;
        kv_entry *en = calloc(1, sizeof *en);
        if (!en) rc = wk_err_set(err, WK_ENOMEM, "preload: out of memory");
        if (!rc) {
            *en = (kv_entry){.task = job.task, .context = context, .seed = seed};
            if (c->unit_store_bytes) rc = wk_unit_store_new(c->unit_store_bytes, &en->units, err);
            if (!rc) rc = load_files(o, &job, &spec, en, 0, err);
            if (rc > 0) rc = 0; /* gone meanwhile */
        }
        if (!rc && en->kv.k) {
            bytes += (int64_t)wk_kv_tensor_elems(&en->kv) * 4;
            rc = cache_push_locked(c, en, err);
            en = rc ? en : NULL;
        }
        if (en) entry_free(en);
    }
    if (d) closedir(d);
    if (c->keep < c->n) c->keep = c->n;
    if (!rc && !o->quiet)
        fprintf(stderr, "wikv serve: preloaded %zu contexts (%.2f GB of KV) in %.1f s\n", c->n, (double)bytes / 1e9,
                wk_now_s() - t0);
    return rc;
}

/* Encodes unit i of a request's plan into its context's store. */
static int pre_encode_unit(void *ctx, int i, wk_err *err) {
    server_req *s = ctx;
    uint8_t *data = NULL;
    size_t len = 0;
    int reused = 0;
    int rc = encode_or_reuse(s->entry->units, &s->codec, &s->plan.units[i], s->kv, s->prompt.ids, s->prompt.n, &data,
                             &len, &reused, err);
    free(data);
    return rc;
}

/* Encodes, for every preloaded context, every unit of each pre_encode policy's plan into the context's
 * store (all the levels a sender may pick), so no request waits for an encoder: the server has its KV
 * encoded ahead of time, as CacheGen's and WiKV's servers store it. */
static int pre_encode(const wk_stream_server_opts *o, policy_pool *pool, kv_cache *c, wk_err *err) {
    if (!o->pre_encode || !*o->pre_encode) return 0;
    char specs[4096];
    if (strlen(o->pre_encode) >= sizeof specs) return wk_err_set(err, WK_EINVAL, "--pre-encode: list too long");
    double t0 = wk_now_s();
    int rc = 0;
    size_t units = 0;
    for (size_t k = 0; !rc && k < c->n; k++) {
        kv_entry *en = c->items[k];
        snprintf(specs, sizeof specs, "%s", o->pre_encode);
        char *save = NULL;
        for (char *spec = strtok_r(specs, ";", &save); !rc && spec; spec = strtok_r(NULL, ";", &save)) {
            wk_stream_job job = {.task = en->task, .seed = en->seed, .context = en->context, .output_tokens = 1};
            snprintf(job.policy, sizeof job.policy, "%s", spec);
            wk_wire_request wr;
            server_req s;
            memset(&s, 0, sizeof s);
            s.pool = pool;
            s.cache = c;
            s.first = -1;
            wk_plan_init(&s.plan);
            rc = wk_stream_job_to_wire(&job, &wr, err);
            if (!rc) rc = prepare(o, &wr, &s, err);
            /* on every core: nothing else runs before the server listens */
            if (!rc && s.entry && s.entry->units) rc = wk_parallel_for((int)s.plan.n, 0, pre_encode_unit, &s, err);
            if (rc) wk_err_prefix(err, "--pre-encode %s", spec);
            units += s.plan.n;
            release(&s);
        }
    }
    size_t bytes = 0, kept = 0;
    for (size_t k = 0; k < c->n; k++) {
        size_t b = 0, u = 0;
        if (c->items[k]->units) wk_unit_store_usage(c->items[k]->units, &b, &u);
        bytes += b, kept += u;
    }
    if (!rc && !o->quiet)
        fprintf(stderr, "wikv serve: pre-encoded %zu units for %zu contexts (%zu kept, %.2f GB) in %.1f s\n", units,
                c->n, kept, (double)bytes / 1e9, wk_now_s() - t0);
    return rc;
}

int wk_stream_serve(int listen_fd, const wk_stream_server_opts *o, wk_err *err) {
    size_t cap = 16, n = 0;
    int accepted = 0;
    int max_active = o->max_active > 0 ? o->max_active : WK_STREAM_MAX_ACTIVE;
    double timeout_s = o->send_timeout_s > 0 ? o->send_timeout_s : WK_STREAM_SEND_TIMEOUT_S;
    wk_paced_link *link = NULL;
    if (o->shared_link) {
        int rc = wk_paced_link_open(o->trace, (size_t)max_active, &link, err);
        if (rc) return rc;
    }
    conn **conns = malloc(cap * sizeof *conns);
    if (!conns) {
        wk_paced_link_free(link);
        return wk_err_set(err, WK_ENOMEM, "serve: out of memory");
    }
    policy_pool pool = {.n = 0};
    pthread_mutex_init(&pool.mu, NULL);
    kv_cache cache = {.keep = o->kv_cache > 0 ? (size_t)o->kv_cache : WK_STREAM_KV_CACHE,
                      .unit_store_bytes = o->unit_store_mb < 0 ? 0
                                          : (size_t)(o->unit_store_mb ? o->unit_store_mb : WK_STREAM_UNIT_STORE_MB) << 20};
    pthread_mutex_init(&cache.mu, NULL);
    pthread_cond_init(&cache.cv, NULL);
    int rc = o->kv_preload && o->kv_dir ? preload(o, &cache, err) : 0;
    if (!rc && o->kv_preload && o->kv_dir) rc = pre_encode(o, &pool, &cache, err);
    if (!rc && o->ready) o->ready(o->ready_arg);
    while (!rc && (!o->max_connections || accepted < o->max_connections)) {
        int fd;
        n = reap(conns, n);
        rc = wk_paced_accept(listen_fd, 1.0, &fd, err);
        if (rc == WK_EIO) { /* accept timeout: keep listening */
            rc = 0;
            continue;
        }
        if (rc) break;
        conn *c = calloc(1, sizeof *c);
        if (n == cap) {
            conn **g = realloc(conns, 2 * cap * sizeof *g);
            if (g) conns = g, cap *= 2;
            else free(c), c = NULL;
        }
        if (!c) {
            close(fd);
            rc = wk_err_set(err, WK_ENOMEM, "serve: out of memory");
            break;
        }
        c->o = o;
        c->link = link;
        c->timeout_s = timeout_s;
        c->pool = &pool;
        c->cache = &cache;
        c->fd = fd;
        c->id = accepted;
        c->busy = count_active(conns, n) >= max_active;
        atomic_init(&c->done, 0);
        if (pthread_create(&c->thread, NULL, serve_conn, c) != 0) {
            close(fd);
            free(c);
            rc = wk_err_set(err, WK_EIO, "serve: cannot start a connection thread");
            break;
        }
        conns[n++] = c;
        accepted++;
    }
    for (size_t i = 0; i < n; i++) {
        pthread_join(conns[i]->thread, NULL);
        free(conns[i]);
    }
    free(conns);
    wk_paced_link_free(link);
    for (size_t i = 0; i < pool.n; i++) {
        wk_policy_free(&pool.items[i]->pol);
        free(pool.items[i]);
    }
    free(pool.items);
    pthread_mutex_destroy(&pool.mu);
    cache_free(&cache);
    return rc;
}
