/* The edge server of the real execution: one thread per connection; each reads a REQUEST, builds the
 * policy's plan as the simulator does (same wk_request shape), gets the context's KV (a kvgen file or
 * a prefill with its own engine), and streams the encoded units in the order the policy's sender half
 * picks, through a trace-paced sender. */
#include "exec/stream.h"

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

#include "core/progress.h"
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

typedef struct conn {
    const wk_stream_server_opts *o;
    wk_paced_link *link; /* the shared link, or NULL */
    double timeout_s;    /* the send timeout in force */
    policy_pool *pool;
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
    wk_kv_tensor kv;
    float *importance;  /* [L][H][T] measured attention, for plans that rank KV */
    uint8_t *state;
    int64_t bytes_sent;
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

static int load_files(const wk_stream_server_opts *o, server_req *s, int want_imp, wk_err *err) {
    char path[4096], ipath[4096];
    wk_stream_kv_path(o->kv_dir, &s->job, "wkv", path, sizeof path);
    wk_stream_kv_path(o->kv_dir, &s->job, "wki", ipath, sizeof ipath);
    if (access(path, R_OK) != 0 || (want_imp && access(ipath, R_OK) != 0)) return 1;
    int rc = wk_kv_tensor_read(path, &s->kv, err);
    if (rc) return rc;
    if (s->kv.tokens != s->prompt.n || s->kv.layers != s->spec.n_layers || s->kv.kv_heads != s->spec.n_kv_heads ||
        s->kv.head_dim != s->spec.head_dim)
        return wk_err_set(err, WK_EFORMAT, "%s: shape %dx%dx%dx%d does not match the model and prompt (%d tokens)", path,
                          s->kv.layers, s->kv.kv_heads, s->kv.tokens, s->kv.head_dim, s->prompt.n);
    if (want_imp) rc = wk_stream_importance_read(ipath, s->spec.n_layers, s->spec.n_kv_heads, s->prompt.n, &s->importance, err);
    return rc;
}

static int load_or_prefill_kv(const wk_stream_server_opts *o, server_req *s, const wk_tokenizer *tok, int want_imp,
                              wk_err *err) {
    if (o->kv_dir) {
        int rc = load_files(o, s, want_imp, err);
        if (rc <= 0) return rc;
    }
    size_t n_imp = (size_t)s->spec.n_layers * s->spec.n_kv_heads * s->prompt.n;
    if (want_imp && !(s->importance = malloc(n_imp * sizeof *s->importance)))
        return wk_err_set(err, WK_ENOMEM, "importance: out of memory");
    wk_engine_opts eo = {.kv_capacity = s->prompt.n + 64};
    wk_engine *e = NULL;
    int rc = wk_engine_cpu_open(o->model_dir, &eo, &e, err);
    if (!rc) rc = wk_stream_prefill_kv(e, tok, s->prompt.ids, s->prompt.n, &s->kv, s->importance, err);
    wk_engine_free(e);
    return rc;
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
    if (!rc) rc = wk_tokenizer_load_dir(o->model_dir, &tok, err);
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
    free(s->first_data);
    wk_stream_prompt_free(&s->prompt);
    wk_plan_free(&s->plan); /* first: its units may point into the policy's state */
    if (s->pol) pool_give(s->pool, s->slot);
    wk_kv_tensor_free(&s->kv);
    free(s->importance);
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
        if (rc) return wk_err_prefix(err, "client gone");
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
    int rc = wk_stream_unit_encode(&s->codec, &s->plan.units[idx], s->kv.k ? &s->kv : NULL, s->prompt.ids, s->prompt.n,
                                   &s->first_data, &s->first_len, err);
    if (!rc) s->first = idx;
    return rc;
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
            rc = wk_stream_unit_encode(&s->codec, &s->plan.units[idx], s->kv.k ? &s->kv : NULL, s->prompt.ids,
                                       s->prompt.n, &data, &len, err);
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
    return wk_paced_send_msg(ps, &m, err);
}

static void send_error(int fd, uint32_t stream, const wk_err *e) {
    wk_wire_msg m;
    memset(&m, 0, sizeof m);
    m.h.type = WK_FRAME_ERROR;
    m.h.stream_id = stream;
    m.u.error.code = e->code;
    snprintf(m.u.error.message, sizeof m.u.error.message, "%.*s", (int)sizeof m.u.error.message - 1, e->msg);
    uint8_t buf[1024];
    size_t len;
    wk_err e2;
    if (wk_wire_encode(&m, buf, sizeof buf, &len, &e2) == 0) (void)!send(fd, buf, len, MSG_NOSIGNAL);
}

/* Refuses a connection beyond max_active: reads its REQUEST (so closing does not reset the
 * connection before the client reads the answer), answers ERROR, waits briefly for the close. */
static void refuse_busy(conn *c, wk_paced_receiver *rx) {
    wk_wire_msg m;
    wk_err err = {0};
    double wait = c->timeout_s < 5.0 ? c->timeout_s : 5.0;
    uint32_t stream = wk_paced_recv(rx, &m, wait, &err) == 0 ? m.h.stream_id : 0;
    if (rx->fd < 0) return;
    int max = c->o->max_active > 0 ? c->o->max_active : WK_STREAM_MAX_ACTIVE;
    wk_err_set(&err, WK_ESTATE, "server busy: %d connections active (max-active)", max);
    send_error(c->fd, stream, &err);
    shutdown(c->fd, SHUT_WR);
    (void)wk_paced_recv(rx, &m, wait, &err);
}

static void *serve_conn(void *arg) {
    conn *c = arg;
    const wk_stream_server_opts *o = c->o;
    wk_paced_receiver rx;
    wk_paced_receiver_init(&rx, c->fd);
    if (c->busy) {
        refuse_busy(c, &rx);
        if (!o->quiet) fprintf(stderr, "wikv serve: connection %d: refused, server busy\n", c->id);
        wk_paced_receiver_free(&rx);
        atomic_store(&c->done, 1);
        return NULL;
    }
    wk_wire_msg m;
    wk_err err = {0};
    server_req s;
    memset(&s, 0, sizeof s);
    s.pool = c->pool;
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
    /* the request's trip up the link (the link model's request delay): the preparation above runs
     * in it, so the stream starts when a real server would have received the request */
    double up_left = t_request + o->delay_s - wk_now_s();
    if (!rc && up_left > 0) sleep_s(up_left);
    wk_paced_config pc = {o->trace, o->delay_s, 0, c->link, c->timeout_s};
    if (!rc) rc = wk_paced_sender_start(c->fd, &pc, &ps, &err);
    if (rc && rx.fd >= 0) send_error(c->fd, stream, &err);
    if (!rc) rc = stream_units(&s, ps, &rx, stream, &err);
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
        else fprintf(stderr, "wikv serve: connection %d: %s %s seed %llu, %zu units planned, %lld bytes sent\n", c->id,
                     s.job.policy, wk_task_name(s.job.task), (unsigned long long)s.job.seed, s.plan.n,
                     (long long)s.bytes_sent);
    }
    release(&s);
    wk_paced_receiver_free(&rx); /* closes fd */
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
    int rc = 0;
    while (!o->max_connections || accepted < o->max_connections) {
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
    return rc;
}
