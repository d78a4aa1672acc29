/* The device client of the real execution: runs the receiver half of a policy in the session driver
 * with a wall clock whose events come from a frame-reader thread (arrivals, end of stream, failures)
 * and from the session's own timers, a link without `send` (the sender half runs on the server) and
 * the engine as backend; then scores the answer. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "exec/kv_sink.h"
#include "exec/metrics.h"
#include "exec/stream.h"
#include "models/device.h"
#include "net/paced.h"
#include "sim/event_queue.h"
#include "sim/session.h"

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Events posted by the reader, in arrival order. */
typedef struct posted {
    double t;
    int type;
    int64_t arg;
} posted;

typedef struct exec_clock {
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* on CLOCK_MONOTONIC */
    double t0;             /* wall time of "request sent" */
    double last;           /* last time handed to the session (keeps its clock monotonic) */
    wk_event_queue timers; /* the session's own events (compute done, wake-ups): session thread only */
    posted *ev;            /* [plan n + 2] */
    size_t ev_head, ev_n;
    int failed, reader_done;
    int fail_code;
    char reason[512];
    /* reader state */
    int fd;
    double timeout_s;
    wk_plan *plan;             /* the client's own plan: arrivals set each unit's real byte count */
    const wk_stream_codec *codec;
    const wk_model_spec *spec;
    int vocab;
    uint8_t **payload;     /* [plan n] */
    size_t *payload_len;   /* [plan n] */
    int32_t *text_ids;     /* [context] */
    size_t n_arrived;
    int ended;
} exec_clock;

static void post(exec_clock *c, int type, int64_t arg) {
    pthread_mutex_lock(&c->mu);
    c->ev[c->ev_n++] = (posted){mono_s() - c->t0, type, arg};
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void post_fail(exec_clock *c, int code, const char *why, const char *msg) {
    pthread_mutex_lock(&c->mu);
    if (!c->failed) {
        c->failed = 1;
        c->fail_code = code;
        snprintf(c->reason, sizeof c->reason, "%s: %.400s (%zu of %zu units arrived)", why, msg, c->n_arrived, c->plan->n);
    }
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static int ec_schedule(void *self, double t, int type, int64_t arg, wk_err *err) {
    exec_clock *c = self;
    return wk_event_queue_push(&c->timers, t, type, arg, err);
}

static int ec_next(void *self, double *now, int *type, int64_t *arg, wk_err *err) {
    exec_clock *c = self;
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    for (;;) {
        double t = mono_s() - c->t0;
        wk_event first;
        int have_timer = wk_event_queue_peek(&c->timers, &first) == 0;
        double tt = have_timer ? first.t : INFINITY;
        if (c->ev_head < c->ev_n && c->ev[c->ev_head].t <= tt) {
            posted p = c->ev[c->ev_head++];
            if (p.type == WK_EV_ARRIVAL) c->plan->units[p.arg].bytes = (int64_t)c->payload_len[p.arg];
            *now = p.t > c->last ? p.t : c->last;
            *type = p.type;
            *arg = p.arg;
            break;
        }
        if (c->failed) {
            rc = wk_err_set(err, c->fail_code ? c->fail_code : WK_EIO, "%s", c->reason);
            break;
        }
        if (have_timer && tt <= t) {
            wk_event ev;
            wk_event_queue_pop(&c->timers, &ev);
            *now = ev.t > c->last ? ev.t : c->last;
            *type = ev.type;
            *arg = ev.arg;
            break;
        }
        if (!have_timer && c->reader_done) {
            rc = 1; /* nothing can happen any more */
            break;
        }
        double until = have_timer ? tt : t + 3600.0;
        double abs = c->t0 + until;
        struct timespec ts = {(time_t)abs, (long)((abs - floor(abs)) * 1e9)};
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    if (rc == 0) c->last = *now;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* Checks a UNIT_DATA frame against the plan and keeps its payload; returns 0 or fills err. */
static int take_unit(exec_clock *c, const wk_wire_msg *m, wk_err *err) {
    uint32_t id = m->h.unit_id;
    if (id >= c->plan->n)
        return wk_err_set(err, WK_EFORMAT, "UNIT_DATA unit_id %u beyond the plan (%zu units)", id, c->plan->n);
    if (m->u.unit.n_units != 1)
        return wk_err_set(err, WK_EFORMAT, "UNIT_DATA n_units %u (one unit per frame expected)", m->u.unit.n_units);
    const wk_unit *u = &c->plan->units[id];
    if (m->u.unit.level != u->level)
        return wk_err_set(err, WK_EFORMAT, "UNIT_DATA level %u, unit %u has level %d", m->u.unit.level, id, u->level);
    int64_t want = wk_stream_unit_bytes(c->codec, u, c->spec->n_kv_heads, c->spec->head_dim);
    if (want >= 0 && (int64_t)m->u.unit.data_len != want) /* < 0: variable-length codec */
        return wk_err_set(err, WK_EFORMAT, "UNIT_DATA payload of unit %u: %zu bytes, its codec makes %lld", id,
                          m->u.unit.data_len, (long long)want);
    uint8_t *copy = malloc(m->u.unit.data_len ? m->u.unit.data_len : 1);
    if (!copy) return wk_err_set(err, WK_ENOMEM, "out of memory for unit %u", id);
    memcpy(copy, m->u.unit.data, m->u.unit.data_len);
    pthread_mutex_lock(&c->mu);
    int dup = c->payload[id] != NULL;
    int rc = 0;
    if (!dup && u->kind == WK_UNIT_TEXT) rc = wk_stream_unit_decode_text(u, copy, m->u.unit.data_len, c->vocab, c->text_ids, err);
    if (!dup && !rc) {
        c->payload[id] = copy;
        c->payload_len[id] = m->u.unit.data_len;
        c->n_arrived++;
    }
    pthread_mutex_unlock(&c->mu);
    if (dup || rc) free(copy);
    if (dup) return wk_err_set(err, WK_EFORMAT, "UNIT_DATA unit_id %u sent twice", id);
    return rc;
}

static void *reader(void *arg) {
    exec_clock *c = arg;
    wk_paced_receiver rx;
    wk_paced_receiver_init(&rx, c->fd);
    wk_wire_msg m;
    for (;;) {
        wk_err e = {0};
        int rc = wk_paced_recv(&rx, &m, c->timeout_s, &e);
        if (rc) {
            /* a frame cut short by the connection closing is the server going away, not garbage */
            int cut = strstr(e.msg, "connection closed") != NULL;
            if (!c->ended)
                post_fail(c, rc, cut || rc == WK_ESTATE ? "server gone" : rc == WK_EFORMAT ? "garbage frame"
                                                                                     : "timeout or network error", e.msg);
            break;
        }
        if (m.h.type == WK_FRAME_STREAM_INFO && m.u.info.n_units != c->plan->n) {
            wk_err_set(&e, WK_EFORMAT, "STREAM_INFO n_units %u, the plan has %zu", m.u.info.n_units, c->plan->n);
            post_fail(c, WK_EFORMAT, "garbage frame", e.msg);
            break;
        }
        if (m.h.type == WK_FRAME_STREAM_INFO) continue;
        if (m.h.type == WK_FRAME_UNIT_DATA) {
            if (take_unit(c, &m, &e)) {
                post_fail(c, e.code, e.code == WK_EFORMAT ? "garbage frame" : "client", e.msg);
                break;
            }
            post(c, WK_EV_ARRIVAL, m.h.unit_id);
            continue;
        }
        if (m.h.type == WK_FRAME_END) {
            c->ended = 1;
            post(c, WK_EV_SENDER, 0);
            break;
        }
        if (m.h.type == WK_FRAME_ERROR) post_fail(c, WK_EIO, "server error", m.u.error.message);
        else {
            wk_err_set(&e, WK_EFORMAT, "unexpected %s frame from the server", wk_wire_type_name(m.h.type));
            post_fail(c, WK_EFORMAT, "garbage frame", e.msg);
        }
        break;
    }
    rx.fd = -1; /* the socket belongs to the request */
    wk_paced_receiver_free(&rx);
    pthread_mutex_lock(&c->mu);
    c->reader_done = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int wk_stream_client_open(wk_stream_client *c, const char *model_dir, wk_err *err) {
    return wk_stream_client_open_backend(c, model_dir, "cpu", err);
}

int wk_stream_client_open_backend(wk_stream_client *c, const char *model_dir, const char *backend, wk_err *err) {
    return wk_stream_client_open_opts(c, model_dir, NULL, backend, 0, err);
}

int wk_stream_client_open_opts(wk_stream_client *c, const char *model, const char *tokenizer_dir, const char *backend,
                               int kv_capacity, wk_err *err) {
    memset(c, 0, sizeof *c);
    c->timeout_s = 30.0;
    char tok_dir[4096];
    wk_stream_tokenizer_dir(model, tokenizer_dir, tok_dir, sizeof tok_dir);
    int rc = wk_tokenizer_load_dir(tok_dir, &c->tok, err);
    if (!rc) rc = wk_model_spec_find(model, &c->spec, err);
    if (!rc) rc = wk_engine_open(backend, model, &(wk_engine_opts){.kv_capacity = kv_capacity}, &c->engine, err);
    if (!rc) rc = wk_stream_check_vocab(c->tok, c->engine->cfg.vocab_size, model, err);
    if (!rc) {
        snprintf(c->backend, sizeof c->backend, "%s", backend ? backend : "cpu");
        c->synthetic = wk_stream_model_is_synthetic(model);
        snprintf(c->model_name, sizeof c->model_name, "%s%s", c->synthetic ? "synthetic:" : "", c->spec.name);
    }
    if (rc) wk_stream_client_close(c);
    return rc;
}

void wk_stream_client_close(wk_stream_client *c) {
    wk_engine_free(c->engine);
    wk_tokenizer_free(c->tok);
    memset(c, 0, sizeof *c);
}

static int send_request(int fd, const wk_stream_job *job, uint32_t stream, wk_err *err) {
    wk_wire_msg m;
    memset(&m, 0, sizeof m);
    m.h.type = WK_FRAME_REQUEST;
    m.h.stream_id = stream;
    int rc = wk_stream_job_to_wire(job, &m.u.request, err);
    if (rc) return rc;
    m.h.send_time_us = wk_paced_clock_us();
    uint8_t buf[4096];
    size_t len;
    rc = wk_wire_encode(&m, buf, sizeof buf, &len, err);
    if (rc) return rc;
    if (send(fd, buf, len, MSG_NOSIGNAL) != (ssize_t)len)
        return wk_err_set(err, WK_EIO, "sending REQUEST: %s", strerror(errno));
    return 0;
}

/* The generated text up to the end-of-sequence token, first line, trimmed. */
static void answer_text(wk_stream_client *c, const wk_stream_backend *b, char *out, size_t cap) {
    int n = 0;
    while (n < b->n_gen) {
        int eos = 0;
        for (int k = 0; k < c->engine->cfg.n_eos; k++) eos |= b->gen[n] == c->engine->cfg.eos_token_ids[k];
        if (eos) break;
        n++;
    }
    char *text = NULL;
    size_t len;
    wk_err e;
    out[0] = '\0';
    if (wk_tokenizer_decode(c->tok, b->gen, (size_t)n, WK_TOK_SKIP_SPECIAL, &text, &len, &e)) return;
    const char *s = text;
    while (*s == ' ' || *s == '\n') s++;
    size_t k = strcspn(s, "\n");
    while (k > 0 && s[k - 1] == ' ') k--;
    snprintf(out, cap, "%.*s", (int)k, s);
    free(text);
}

static int score(const wk_stream_prompt *p, const char *answer, double *f1, wk_err *err) {
    wk_metric m;
    int rc = wk_metric_parse(wk_task_metric(p->item.kind), &m, err);
    if (!rc) rc = wk_metric_score_sample(m, NULL, answer, (const char *const *)p->item.answers, p->item.n_answers, NULL, 0,
                                         f1, err);
    return rc;
}

typedef struct req_mem {
    wk_stream_prompt prompt;
    wk_policy pol;
    wk_stream_codec codec;
    wk_device device;
    wk_request req;
    wk_plan plan;
    exec_clock clk;
    wk_stream_backend be;
    wk_session session;
} req_mem;

static int setup(wk_stream_client *c, const wk_stream_job *job, req_mem *r, wk_err *err) {
    int rc = wk_stream_prompt_make(c->tok, job, &r->prompt, err);
    if (!rc) rc = wk_policy_create(job->policy, &r->pol, err);
    if (!rc) rc = wk_stream_codec_for(&r->pol, &r->codec, err);
    if (!rc) rc = wk_device_find(c->device ? c->device : "rtx5080-laptop", &r->device, err);
    if (rc) return rc;
    if (r->prompt.n + job->output_tokens > c->engine->kv_capacity)
        return wk_err_set(err, WK_EINVAL, "prompt of %d tokens + %d outputs beyond the KV capacity %d", r->prompt.n,
                          job->output_tokens, c->engine->kv_capacity);
    r->req = (wk_request){&c->spec, &r->device, r->prompt.n, job->output_tokens, wk_task_name(job->task), job->seed, NULL, NULL};
    rc = r->pol.ops->plan(r->pol.state, r->pol.param, &r->req, &r->plan, err);
    if (rc) return rc;
    size_t n = r->plan.n ? r->plan.n : 1;
    exec_clock *k = &r->clk;
    k->ev = calloc(n + 4, sizeof *k->ev);
    k->payload = calloc(n, sizeof *k->payload);
    k->payload_len = calloc(n, sizeof *k->payload_len);
    k->text_ids = calloc((size_t)r->prompt.n, sizeof *k->text_ids);
    r->be.gen = calloc((size_t)job->output_tokens, sizeof *r->be.gen);
    r->be.logits = malloc((size_t)c->engine->cfg.vocab_size * sizeof *r->be.logits);
    if (!k->ev || !k->payload || !k->payload_len || !k->text_ids || !r->be.gen || !r->be.logits)
        return wk_err_set(err, WK_ENOMEM, "request: out of memory");
    k->timeout_s = c->timeout_s;
    k->plan = &r->plan;
    k->codec = &r->codec;
    k->spec = &c->spec;
    k->vocab = c->engine->cfg.vocab_size;
    int32_t *gen = r->be.gen;
    float *logits = r->be.logits;
    r->be = (wk_stream_backend){.e = c->engine, .codec = &r->codec, .prompt = r->prompt.ids, .n_prompt = r->prompt.n,
                                .text_ids = k->text_ids, .payload = k->payload, .payload_len = k->payload_len,
                                .mu = &k->mu, .confidence = c->has_confidence ? &c->confidence : NULL, .gen = gen,
                                .max_gen = job->output_tokens, .logits = logits, .progress_fd = -1};
    c->engine->ops->kv_clear(c->engine);
    rc = wk_kv_sink_open(c->engine, &r->codec, r->prompt.n, c->kv_sink, &r->be.sink, err);
    if (rc) return rc;
    r->session.max_session_s = 3600.0;
    return 0;
}

static void init_sync(req_mem *r) {
    exec_clock *k = &r->clk;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&k->mu, NULL);
    wk_event_queue_init(&k->timers);
    wk_session_init(&r->session);
    wk_plan_init(&r->plan);
}

static void teardown(req_mem *r) {
    exec_clock *k = &r->clk;
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    wk_event_queue_free(&k->timers);
    wk_session_free(&r->session);
    for (size_t i = 0; k->payload && i < r->plan.n; i++) free(k->payload[i]);
    free(k->payload);
    free(k->payload_len);
    free(k->text_ids);
    free(k->ev);
    free(r->be.gen);
    free(r->be.logits);
    wk_kv_sink_free(r->be.sink);
    wk_plan_free(&r->plan);
    wk_policy_free(&r->pol);
    wk_stream_prompt_free(&r->prompt);
}

static void fill_outcome(const wk_session_result *s, wk_stream_outcome *out) {
    out->ok = s->ok;
    out->ttft_s = s->ttft_s;
    out->tpot_s = s->tpot_s;
    out->total_s = s->total_s;
    out->tokens = s->tokens;
    out->bytes_received = s->payload_bytes_total;
    out->bytes_at_first = s->payload_bytes_sent;
    out->kv_fraction_at_first = s->kv_fraction_at_first;
    out->net_wait_s = s->net_wait_s;
    out->kv_decode_s = s->kv_decode_s;
    out->compute_s = s->compute_s;
}

static void failed(wk_stream_outcome *out, const char *reason) {
    out->ok = 0;
    snprintf(out->fail_reason, sizeof out->fail_reason, "%.*s", (int)sizeof out->fail_reason - 1, reason);
    out->ttft_s = out->tpot_s = out->total_s = NAN;
}

int wk_stream_client_request(wk_stream_client *c, const char *host, uint16_t port, const wk_stream_job *job,
                             wk_stream_outcome *out, wk_err *err) {
    memset(out, 0, sizeof *out);
    out->f1 = NAN;
    req_mem *r = calloc(1, sizeof *r);
    if (!r) return wk_err_set(err, WK_ENOMEM, "request: out of memory");
    init_sync(r);
    int rc = setup(c, job, r, err);
    if (rc) {
        teardown(r);
        free(r);
        return rc;
    }
    out->context_tokens = r->prompt.n;
    int fd = -1;
    wk_err e = {0};
    if (wk_paced_connect(host, port, 10.0, &fd, &e)) {
        failed(out, e.msg);
        teardown(r);
        free(r);
        return 0;
    }
    r->clk.fd = fd;
    r->be.progress_fd = fd;
    r->be.stream_id = (uint32_t)(job->seed & 0xffffffffu);
    r->clk.t0 = mono_s(); /* TTFT counts from the request being sent */
    pthread_t th;
    int started = 0;
    if (send_request(fd, job, (uint32_t)(job->seed & 0xffffffffu), &e) == 0)
        started = pthread_create(&th, NULL, reader, &r->clk) == 0;
    if (!started && !e.code) wk_err_set(&e, WK_EIO, "cannot start the reader thread");
    wk_session_result res;
    memset(&res, 0, sizeof res);
    char reason[sizeof e.msg] = "";
    if (started) {
        wk_session_clock clk = {&r->clk, ec_schedule, ec_next, NULL};
        wk_session_link link = {NULL, NULL, NULL, NULL};
        wk_session_backend be = {&r->be, wk_stream_backend_run, NULL};
        if (wk_session_run(&r->session, &r->pol, &r->req, &r->plan, &clk, &link, &be, 0.0, NULL, &res, &e)) {
            res.ok = 0;
            snprintf(reason, sizeof reason, "%s", e.msg);
        } else if (!res.ok)
            snprintf(reason, sizeof reason, "%s", res.fail_reason);
        shutdown(fd, SHUT_RDWR); /* wakes the reader if it still waits */
        pthread_join(th, NULL);
    } else {
        res.ok = 0;
        snprintf(reason, sizeof reason, "%s", e.msg);
    }
    close(fd);
    fill_outcome(&res, out);
    if (!out->ok) {
        failed(out, reason);
    } else {
        answer_text(c, &r->be, out->answer, sizeof out->answer);
        if (!c->synthetic) rc = score(&r->prompt, out->answer, &out->f1, err); /* synthetic: not measured */
    }
    teardown(r);
    free(r);
    return rc;
}

int wk_stream_confidence_fit(wk_stream_client *c, wk_task_kind task, int context, int n, int steps, double k,
                             wk_stream_confidence *out, wk_err *err) {
    memset(out, 0, sizeof *out);
    out->k = k;
    int vocab = c->engine->cfg.vocab_size, rc = 0;
    float *logits = malloc((size_t)vocab * sizeof *logits);
    if (!logits) return wk_err_set(err, WK_ENOMEM, "confidence fit: out of memory");
    double sum[2] = {0, 0}, sq[2] = {0, 0};
    for (int i = 0; i < n && !rc; i++) {
        wk_stream_job job = {.task = task, .seed = WK_TASK_TRAIN_SEED_MIN + (uint64_t)i, .context = context,
                             .output_tokens = steps, .policy = "full"};
        wk_stream_prompt p;
        rc = wk_stream_prompt_make(c->tok, &job, &p, err);
        if (rc) break;
        if (p.n + steps > c->engine->kv_capacity) rc = wk_err_set(err, WK_EINVAL, "confidence fit: prompt too long");
        c->engine->ops->kv_clear(c->engine);
        if (!rc) rc = wk_engine_prefill(c->engine, p.ids, p.n, 0, logits, err);
        for (int s = 0; s < steps && !rc; s++) { /* every full-KV step of a greedy decode */
            double f[2];
            wk_stream_confidence_features(logits, vocab, f);
            for (int j = 0; j < 2; j++) {
                sum[j] += f[j];
                sq[j] += f[j] * f[j];
            }
            out->steps++;
            int32_t tok = wk_sampler_argmax(logits, vocab);
            wk_forward_args fa = {.tokens = &tok, .n_tokens = 1, .pos = p.n + s, .logits = logits, .logit_rows = 1};
            if (s + 1 < steps) rc = wk_engine_forward(c->engine, &fa, err);
        }
        wk_stream_prompt_free(&p);
    }
    free(logits);
    if (rc) return rc;
    if (out->steps < 2) return wk_err_set(err, WK_EINVAL, "confidence fit: fewer than 2 steps");
    for (int j = 0; j < 2; j++) {
        out->mean[j] = sum[j] / out->steps;
        double var = sq[j] / out->steps - out->mean[j] * out->mean[j];
        out->std[j] = var > 0 ? sqrt(var) : 0;
    }
    return 0;
}

void wk_stream_outcome_to_row(const wk_stream_outcome *o, wk_request_row *row) {
    row->status = o->ok ? "ok" : "failed";
    if (!o->ok) {
        row->fail_reason = o->fail_reason;
        return;
    }
    row->ttft_s = o->ttft_s;
    row->tpot_s = o->tpot_s;
    row->total_s = o->total_s;
    row->output_tokens = o->tokens;
    row->bytes_sent = o->bytes_at_first;
    row->kv_fraction_at_first = o->kv_fraction_at_first;
    row->net_wait_s = o->net_wait_s;
    row->kv_decode_s = o->kv_decode_s;
    row->compute_s = o->compute_s;
    row->f1 = o->f1;
    row->answer = o->answer;
}
