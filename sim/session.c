/* The session loop: events from the clock update the view; whenever the device is idle the
 * receiver half of the policy picks the next action, and whenever the link is free the sender half
 * picks the next unit. */
#include "sim/session.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void wk_session_init(wk_session *s) {
    memset(s, 0, sizeof *s);
    s->max_session_s = 86400.0; /* a day: slower than that is a failed request, not a TTFT */
}

void wk_session_free(wk_session *s) {
    free(s->unit_state);
    free(s->arrival_order);
    free(s->pending);
    free(s->lane);
    memset(s, 0, sizeof *s);
}

void wk_timeline_free(wk_timeline *tl) {
    if (!tl) return;
    free(tl->e);
    tl->e = NULL;
    tl->n = tl->cap = 0;
}

const char *wk_timeline_type_name(int type) {
    static const char *names[] = {"arrive", "usable", "token", "prefill", "decode_kv", "emit"};
    return type >= 0 && type <= WK_TL_EMIT ? names[type] : "?";
}

static void tl_add(wk_timeline *tl, double t, int type, int level, double value) {
    if (!tl) return;
    if (tl->n == tl->cap) {
        size_t cap = tl->cap ? tl->cap * 2 : 256;
        wk_tl_entry *e = realloc(tl->e, cap * sizeof *e);
        if (!e) return; /* the timeline is diagnostic: a failed grow drops entries, not the run */
        tl->e = e;
        tl->cap = cap;
    }
    tl->e[tl->n++] = (wk_tl_entry){t, type, level, value};
}

static int reserve(wk_session *s, size_t n, wk_err *err) {
    if (n <= s->cap) return 0;
    uint8_t *st = realloc(s->unit_state, n);
    uint32_t *ao = st ? realloc(s->arrival_order, n * sizeof *ao) : NULL;
    if (st) s->unit_state = st;
    if (ao) s->arrival_order = ao;
    uint32_t *pe = ao ? realloc(s->pending, n * sizeof *pe) : NULL;
    if (pe) s->pending = pe;
    wk_session_arrival *la = pe ? realloc(s->lane, n * sizeof *la) : NULL;
    if (la) s->lane = la;
    if (!st || !ao || !pe || !la) return wk_err_set(err, WK_ENOMEM, "session: out of memory for %zu units", n);
    s->cap = n;
    return 0;
}

/* Mutable state of one run, beside the read-only view handed to the policy. */
typedef wk_session_live run_state;

/* Posts an event to the clock: straight into its queue when it is one (at no earlier than now, as a
 * virtual clock's schedule does), else through schedule. */
static inline int post(run_state *r, double t, int type, int64_t arg, wk_err *err) {
    if (r->queue) return wk_event_queue_push_owned(r->queue, t < r->v.now ? r->v.now : t, 0, type, arg, err);
    return r->clock->schedule(r->clock->self, t, type, arg, err);
}

static void fail(wk_session_result *out, const char *why) {
    out->ok = 0;
    snprintf(out->fail_reason, sizeof out->fail_reason, "%s", why);
}

static int sender_step(wk_session *s, run_state *r, wk_policy *pol, const wk_session_link *link, wk_err *err) {
    /* the policies that send in plan order share one helper: called here without the indirect call */
    long (*next_unit)(void *, const double *, const wk_view *) = pol->ops->next_unit;
    long idx = next_unit == wk_policy_send_in_order ? wk_policy_next_in_order(&r->v)
                                                    : next_unit(pol->state, pol->param, &r->v);
    if (idx < 0 || (size_t)idx >= r->v.plan->n || s->unit_state[idx] != WK_US_PLANNED) {
        r->sender_idle = 1;
        r->v.sender_done = idx == WK_SEND_DONE;
        return 0;
    }
    const wk_unit *u = &r->v.plan->units[idx];
    s->unit_state[idx] = WK_US_SENT;
    r->v.n_sent++;
    r->v.bytes_sent += u->bytes;
    double next_at;
    int rc;
    if (link->model) { /* the simulator's trace link: its arrival goes into the clock at no earlier than now */
        double arrival;
        next_at = wk_link_send_wire(link->model, r->v.now, link->unit_wire[idx], &arrival);
        rc = post(r, arrival, WK_EV_ARRIVAL, idx, err);
    } else {
        rc = link->send(link->self, r->v.now, (size_t)idx, u->bytes, &next_at, err);
    }
    if (rc < 0) return rc;
    int link_posts = rc == 1;
    /* sender-side rate estimate: an exponentially weighted mean of per-unit throughput */
    double dt = next_at - r->v.now;
    if (dt > 0 && u->bytes > 0) {
        double rate = (double)u->bytes / dt;
        r->v.est_bw_Bps = r->v.est_bw_Bps > 0 ? 0.7 * r->v.est_bw_Bps + 0.3 * rate : rate;
    }
    r->sender_idle = 0;
    if (link_posts) return 0; /* the link re-times the hand-over while others share it */
    return post(r, next_at, WK_EV_SENDER, 0, err);
}

/* A unit arrived: its state and the view's counts (the direct loop's whole arrival step). */
static inline void direct_arrival(wk_session *s, run_state *r, uint32_t idx) {
    const wk_unit *u = &r->v.plan->units[idx];
    s->arrival_order[r->v.n_arrived++] = idx;
    r->v.bytes_arrived += u->bytes;
    if (u->kind == WK_UNIT_TEXT) {
        s->unit_state[idx] = WK_US_USABLE; /* text needs no decoding: the device prefills it */
        r->v.n_usable++;
        r->v.text_tokens_arrived += u->token_count;
    } else {
        s->unit_state[idx] = WK_US_ARRIVED;
    }
}

static void on_arrival(wk_session *s, run_state *r, size_t idx, wk_timeline *tl) {
    const wk_unit *u = &r->v.plan->units[idx];
    if (r->remote_sender) { /* the sender half runs elsewhere: what arrived was sent */
        r->v.n_sent++;
        r->v.bytes_sent += u->bytes;
    }
    direct_arrival(s, r, (uint32_t)idx);
    if (tl && (tl->arrival_stride <= 1 || r->v.n_arrived % tl->arrival_stride == 0 || r->v.n_arrived == r->v.plan->n))
        tl_add(tl, r->v.now, WK_TL_ARRIVE, u->level, (double)r->v.bytes_arrived);
}

/* Collects the next `count` arrived, not yet usable KV units, in arrival order. */
static size_t collect_pending(wk_session *s, run_state *r, size_t count) {
    size_t n = 0;
    size_t i = r->decode_cursor;
    while (i < r->v.n_arrived && n < count) {
        uint32_t u = s->arrival_order[i++];
        if (s->unit_state[u] == WK_US_ARRIVED) s->pending[n++] = u;
    }
    r->decode_cursor = i;
    return n;
}

/* With per-token importance (plans that mix local prefill and streamed KV), streamed KV of tokens the
 * device computed itself counts once: as local. */
static int superseded(const wk_view *v, const wk_unit *u) {
    return v->plan->token_importance && u->kind == WK_UNIT_KV && u->token_first + u->token_count <= v->tokens_prefilled;
}

static void account_local_prefill(wk_session *s, wk_view *v, const wk_action *a) {
    for (int t = a->position; t < a->position + a->tokens; t++) v->importance_local += v->plan->token_importance[t];
    int end = a->position + a->tokens;
    for (size_t u = 0; u < v->plan->n; u++) {
        const wk_unit *un = &v->plan->units[u];
        if (s->unit_state[u] == WK_US_USABLE && un->kind == WK_UNIT_KV && un->token_first >= a->position &&
            un->token_first + un->token_count <= end) {
            v->importance_usable -= un->importance;
            v->kv_values_usable -= un->values;
        }
    }
}

static void finish_action(wk_session *s, run_state *r, int accepted, wk_session_result *out, wk_timeline *tl) {
    const wk_action *a = &r->current;
    double dt = r->v.now - r->current_start;
    int before_first = !r->first_done;
    switch (a->kind) {
    case WK_ACT_DECODE_KV:
        for (size_t i = 0; i < r->pending_n; i++) {
            uint32_t u = s->pending[i];
            s->unit_state[u] = WK_US_USABLE;
            r->v.n_usable++;
            if (!superseded(&r->v, &r->v.plan->units[u])) {
                r->v.kv_values_usable += r->v.plan->units[u].values;
                r->v.importance_usable += r->v.plan->units[u].importance;
            }
        }
        if (before_first) r->decode_s += dt;
        if (tl && r->v.plan->kv_values_total > 0)
            tl_add(tl, r->v.now, WK_TL_USABLE, 0, r->v.kv_values_usable / r->v.plan->kv_values_total);
        break;
    case WK_ACT_PREFILL:
        r->v.tokens_prefilled += a->tokens;
        if (r->v.plan->token_importance) account_local_prefill(s, &r->v, a);
        if (before_first) r->compute_s += dt;
        /* the step that computes the last context token yields the first output token */
        if (a->position + a->tokens >= r->v.req->context_tokens && r->v.tokens_emitted == 0) accepted = 1;
        else break;
        /* fall through */
    case WK_ACT_EMIT:
        if (a->kind == WK_ACT_EMIT && before_first) r->compute_s += dt;
        r->v.last_emit_rejected = !accepted;
        if (!accepted) break;
        r->v.tokens_emitted++;
        r->v.last_token_at = r->v.now;
        tl_add(tl, r->v.now, WK_TL_TOKEN, 0, r->v.tokens_emitted);
        if (!r->first_done) {
            r->first_done = 1;
            out->ttft_s = r->v.now;
            out->payload_bytes_sent = r->v.bytes_sent;
            double total = r->v.plan->kv_values_total;
            double frac = total > 0 ? r->v.kv_values_usable / total : 0;
            if (r->v.tokens_prefilled >= r->v.req->context_tokens) frac = 1.0; /* computed locally */
            out->kv_fraction_at_first = frac > 1 ? 1 : frac;
            out->coverage_at_first = wk_view_coverage(&r->v);
        }
        break;
    default: break;
    }
    r->busy = 0;
    r->pending_n = 0;
}

/* Starts the policy's decision r->current (not a wait) on the device. */
static int start_action(wk_session *s, run_state *r, wk_policy *pol, const wk_session_backend *be, wk_timeline *tl,
                        wk_err *err) {
    wk_action *a = &r->current;
    if (a->kind == WK_ACT_DONE) {
        r->done = 1;
        return 0;
    }
    if (a->kind == WK_ACT_DECODE_KV) {
        r->pending_n = collect_pending(s, r, a->count);
        if (r->pending_n == 0) return wk_err_set(err, WK_ESTATE, "policy %s: decode with nothing arrived", pol->ops->name);
    }
    if (a->kind == WK_ACT_PREFILL && (a->tokens <= 0 || a->position < 0 || a->position + a->tokens > r->v.req->context_tokens))
        return wk_err_set(err, WK_ESTATE, "policy %s: prefill of %d tokens beyond the context", pol->ops->name, a->tokens);
    double seconds = 0;
    int accepted = 1;
    if (a->kind == WK_ACT_DECODE_KV && be->unit_decode_s) {
        for (size_t i = 0; i < r->pending_n; i++) seconds += be->unit_decode_s[s->pending[i]];
    } else {
        int rc = be->run(be->self, a, &r->v, s->pending, r->pending_n, &seconds, &accepted, err);
        if (rc) return rc;
    }
    if (a->kind == WK_ACT_EMIT && a->force) accepted = 1;
    if (a->kind == WK_ACT_PREFILL && a->position + a->tokens > r->v.tokens_prefilling)
        r->v.tokens_prefilling = a->position + a->tokens;
    r->current_start = r->v.now;
    r->busy = 1;
    static const int tl_type[] = {[WK_ACT_DECODE_KV] = WK_TL_DECODE_KV, [WK_ACT_PREFILL] = WK_TL_PREFILL,
                                  [WK_ACT_EMIT] = WK_TL_EMIT};
    tl_add(tl, r->v.now, tl_type[a->kind], 0, seconds);
    return post(r, r->v.now + seconds, WK_EV_COMPUTE_DONE, accepted, err);
}

/* The device is idle: the policy fills its next decision in place of the action that ended. A wait
 * (most decisions) is handled here, inline in the event loop. */
static inline int receiver_step(wk_session *s, run_state *r, wk_policy *pol, wk_err *err) {
    wk_action *a = &r->current;
    *a = (wk_action){.wake_at = -1, .position = r->v.tokens_prefilled};
    pol->ops->decide(pol->state, pol->param, &r->v, a);
    if (a->kind != WK_ACT_WAIT) {
        r->wait_until = -(double)INFINITY;
        return start_action(s, r, pol, r->be, r->tl, err);
    }
    if (r->wait_skips_sender) r->wait_until = a->wake_at < 0 ? (double)INFINITY : a->wake_at;
    /* a policy that keeps waiting for the same deadline asks again after every arrival: one
     * pending wake-up serves them all (a second one at the same instant would change nothing) */
    if (a->wake_at > r->v.now && a->wake_at != r->timer_at) {
        r->timer_at = a->wake_at;
        return post(r, a->wake_at, WK_EV_TIMER, 0, err);
    }
    return 0;
}

/* The start of a request, up to its first event (the sender's first turn, unless it runs elsewhere). */
static int begin_state(wk_session *s, wk_policy *pol, const wk_request *req, const wk_plan *plan,
                       const wk_session_clock *clock, const wk_session_link *link, const wk_session_backend *be,
                       double request_delay_s, wk_timeline *tl, wk_session_result *out, wk_err *err) {
    memset(out, 0, sizeof *out);
    out->ok = 1;
    out->ttft_s = out->total_s = out->tpot_s = NAN;
    int rc = reserve(s, plan->n ? plan->n : 1, err);
    if (rc) return rc;
    memset(s->unit_state, WK_US_PLANNED, plan->n);
    run_state *r = &s->live;
    memset(r, 0, sizeof *r);
    r->v.req = req;
    r->v.plan = plan;
    r->v.unit_state = s->unit_state;
    r->v.arrival_order = s->arrival_order;
    r->v.stream_start = request_delay_s;
    r->pol = pol;
    r->clock = clock;
    r->link = link;
    r->be = be;
    r->queue = clock->queue;
    r->output_tokens = req->output_tokens;
    r->tl = tl;
    r->out = out;
    r->timer_at = NAN;
    r->wait_until = -(double)INFINITY; /* no decision yet */
    out->stream_start = request_delay_s;
    if (pol->ops->start) pol->ops->start(pol->state, pol->param, req, plan);
    /* a link without send or model means the sender half runs elsewhere (exec client): arrivals come
     * from the clock's event source, and a WK_EV_SENDER event from it says the sender finished */
    r->remote_sender = link->send == NULL && link->model == NULL;
    r->wait_skips_sender = pol->ops->wait_ignores_sender && !r->remote_sender;
    return 0;
}

int wk_session_begin(wk_session *s, wk_policy *pol, const wk_request *req, const wk_plan *plan,
                     const wk_session_clock *clock, const wk_session_link *link, const wk_session_backend *be,
                     double request_delay_s, wk_timeline *tl, wk_session_result *out, wk_err *err) {
    int rc = begin_state(s, pol, req, plan, clock, link, be, request_delay_s, tl, out, err);
    if (rc || s->live.remote_sender) return rc;
    return post(&s->live, request_delay_s, WK_EV_SENDER, 0, err);
}

/* One event: what it changes, then the sender half if it was idle and the receiver half if the
 * device is. Inlined into wk_session_run's loop (no call per event) and wk_session_step. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int step(wk_session *s, run_state *r, double now, int type, int64_t arg, wk_err *err) {
    int rc = 0;
    r->events++;
    r->v.now = now;
    if (now > s->max_session_s) {
        fail(r->out, "session exceeded its time limit");
        r->done = 1;
        return 0;
    }
    switch (type) {
    case WK_EV_SENDER:
        if (r->remote_sender) r->v.sender_done = 1;
        else rc = sender_step(s, r, r->pol, r->link, err);
        break;
    case WK_EV_ARRIVAL:
        if (arg < 0 || (size_t)arg >= r->v.plan->n || s->unit_state[arg] >= WK_US_ARRIVED)
            rc = wk_err_set(err, WK_EFORMAT, "session: arrival of unit %lld (plan has %zu units, or it arrived twice)",
                            (long long)arg, r->v.plan->n);
        else on_arrival(s, r, (size_t)arg, r->tl);
        break;
    case WK_EV_COMPUTE_DONE: finish_action(s, r, (int)arg, r->out, r->tl); break;
    case WK_EV_TIMER:
        if (now >= r->timer_at) r->timer_at = NAN;
        break;
    default: break;
    }
    /* a sender that had nothing to send may have something now (e.g. after a request) */
    if (!rc && r->sender_idle && type != WK_EV_SENDER && !r->v.sender_done && !r->remote_sender)
        rc = sender_step(s, r, r->pol, r->link, err);
    /* the receiver's wait holds over a turn of the sender alone when its policy says so */
    if (!rc && !r->busy && r->v.tokens_emitted < r->output_tokens && !(type == WK_EV_SENDER && now < r->wait_until))
        rc = receiver_step(s, r, r->pol, err);
    if (r->v.tokens_emitted >= r->output_tokens && !r->busy) r->done = 1;
    return rc;
}

int wk_session_step(wk_session *s, double now, int type, int64_t arg, int *done, wk_err *err) {
    int rc = step(s, &s->live, now, type, arg, err);
    *done = s->live.done || rc;
    return rc;
}

void wk_session_stall(wk_session *s) {
    if (!s->live.busy) fail(s->live.out, "policy waits but nothing is in flight (deadlock)");
    s->live.done = 1;
}

void wk_session_end(wk_session *s) {
    run_state *r = &s->live;
    wk_session_result *out = r->out;
    out->events = r->events;
    out->tokens = r->v.tokens_emitted;
    out->payload_bytes_total = r->v.bytes_sent;
    if (out->ok && r->v.tokens_emitted == 0) fail(out, "no token was produced");
    if (out->ok) {
        out->total_s = r->v.last_token_at;
        out->tpot_s = out->tokens > 1 ? (out->total_s - out->ttft_s) / (out->tokens - 1) : NAN;
        out->kv_decode_s = r->decode_s;
        out->compute_s = r->compute_s;
        out->net_wait_s = out->ttft_s - r->decode_s - r->compute_s;
    }
}

/* ---- the direct loop (wk_session in session.h says when it runs) ---- */

enum { DIRECT_WAKEUPS = 8, DIRECT_FINISHED = 0, DIRECT_HAND_OVER = 1 };

/* The loop's steps are inlined into it even where the compiler would not (a call per event matters). */
#if defined(__GNUC__)
#define DIRECT_INLINE static inline __attribute__((always_inline))
#else
#define DIRECT_INLINE static inline
#endif

/* Events posted and not yet handled, kept apart by kind instead of in one queue: the sender's next turn
 * (one at most: it is posted after a send), arrivals in the order the units were sent (posted in
 * time order, which the loop checks), the device's computation (one at most: pending while busy) and
 * a few wake-ups sorted as the queue sorts them. `seq` numbers posts as the queue does, so that of
 * events at one instant the first posted is handled first, as there. */
typedef struct direct_events {
    uint64_t seq;
    double sender_t;
    uint64_t sender_seq;
    int sender_pending;
    wk_session_arrival *lane; /* arrivals lane[head..tail) */
    size_t head, tail;
    double compute_t;
    uint64_t compute_seq;
    int compute_arg;
    size_t n_wake;
    double wake_t[DIRECT_WAKEUPS];
    uint64_t wake_seq[DIRECT_WAKEUPS];
} direct_events;

/* Whether event (t, seq) pops before the candidate (t_best, seq_best) of kind `type` (0: none yet). */
static inline int direct_first(double t, uint64_t seq, int type, double t_best, uint64_t seq_best) {
    return !type || t < t_best || (t == t_best && seq < seq_best);
}

/* The sender's turn: the unit next_unit picks goes onto the trace link (as sender_step). */
static inline int direct_sender(wk_session *s, run_state *r, direct_events *e, int in_order, double now) {
    const wk_plan *plan = r->v.plan;
    wk_policy *pol = r->pol;
    long idx = in_order ? wk_policy_next_in_order(&r->v) : pol->ops->next_unit(pol->state, pol->param, &r->v);
    if (idx < 0 || (size_t)idx >= plan->n || s->unit_state[idx] != WK_US_PLANNED) {
        if (idx != WK_SEND_DONE) return DIRECT_HAND_OVER; /* a sender that asks again later */
        r->sender_idle = 1;
        r->v.sender_done = 1;
        return DIRECT_FINISHED;
    }
    const wk_unit *u = &plan->units[idx];
    s->unit_state[idx] = WK_US_SENT;
    r->v.n_sent++;
    r->v.bytes_sent += u->bytes;
    double arrival;
    double next_at = wk_link_send_wire(r->link->model, now, r->link->unit_wire[idx], &arrival);
    if (arrival < now) arrival = now;
    /* the lane holds arrivals in time order: one due before the last one posted (or NaN) is not for it */
    if (!(arrival >= (e->tail ? e->lane[e->tail - 1].t : -(double)INFINITY))) return DIRECT_HAND_OVER;
    e->lane[e->tail].t = arrival;
    e->lane[e->tail].seq = e->seq++;
    e->lane[e->tail].unit = (uint32_t)idx;
    e->tail++;
    double dt = next_at - now;
    if (dt > 0 && u->bytes > 0) {
        double rate = (double)u->bytes / dt;
        r->v.est_bw_Bps = r->v.est_bw_Bps > 0 ? 0.7 * r->v.est_bw_Bps + 0.3 * rate : rate;
    }
    r->sender_idle = 0;
    e->sender_t = next_at < now ? now : next_at;
    if (e->sender_t != e->sender_t) return DIRECT_HAND_OVER;
    e->sender_seq = e->seq++;
    e->sender_pending = 1;
    return DIRECT_FINISHED;
}

/* Starts the policy's decision r->current (not a wait) on the device (as start_action). */
DIRECT_INLINE int direct_start(wk_session *s, run_state *r, direct_events *e, double now, wk_err *err) {
    wk_action *a = &r->current;
    if (a->kind == WK_ACT_DONE) {
        r->done = 1;
        return DIRECT_FINISHED;
    }
    double seconds = 0;
    int accepted = 1;
    if (a->kind == WK_ACT_DECODE_KV) {
        r->pending_n = collect_pending(s, r, a->count);
        if (r->pending_n == 0) return DIRECT_HAND_OVER;
        const double *unit_decode_s = r->be->unit_decode_s;
        for (size_t i = 0; i < r->pending_n; i++) seconds += unit_decode_s[s->pending[i]];
    } else {
        if (a->kind == WK_ACT_PREFILL &&
            (a->tokens <= 0 || a->position < 0 || a->position + a->tokens > r->v.req->context_tokens))
            return DIRECT_HAND_OVER;
        const wk_session_backend *be = r->be;
        if (be->run(be->self, a, &r->v, s->pending, r->pending_n, &seconds, &accepted, err)) return DIRECT_HAND_OVER;
        if (a->kind == WK_ACT_EMIT && a->force) accepted = 1;
        if (a->kind == WK_ACT_PREFILL && a->position + a->tokens > r->v.tokens_prefilling)
            r->v.tokens_prefilling = a->position + a->tokens;
    }
    r->current_start = now;
    r->busy = 1;
    double done = now + seconds;
    e->compute_t = done < now ? now : done;
    if (e->compute_t != e->compute_t) return DIRECT_HAND_OVER;
    e->compute_seq = e->seq++;
    e->compute_arg = accepted;
    return DIRECT_FINISHED;
}


/* A DECODE_KV ended (finish_action's case, for plans without per-token importance). */
static inline void direct_finish_decode(wk_session *s, run_state *r, double now) {
    const wk_unit *units = r->v.plan->units;
    double values = r->v.kv_values_usable, importance = r->v.importance_usable;
    for (size_t i = 0; i < r->pending_n; i++) {
        uint32_t u = s->pending[i];
        s->unit_state[u] = WK_US_USABLE;
        values += units[u].values;
        importance += units[u].importance;
    }
    r->v.kv_values_usable = values;
    r->v.importance_usable = importance;
    r->v.n_usable += r->pending_n;
    if (!r->first_done) r->decode_s += now - r->current_start;
    r->busy = 0;
    r->pending_n = 0;
}

/* The device is idle: the policy's next decision (as receiver_step). */
DIRECT_INLINE int direct_receiver(wk_session *s, run_state *r, direct_events *e, double now, int shape, wk_err *err) {
    wk_action *a = &r->current;
    wk_policy *pol = r->pol;
    const wk_view *v = &r->v;
    const int decodes_when_complete = shape == WK_DIRECT_DECODE_WHEN_COMPLETE;
    /* wk_policy_prefill_as_arrives's prefill and wait, the emission by the policy itself */
    if (shape == WK_DIRECT_PREFILL_AS_ARRIVES && v->tokens_prefilled < v->req->context_tokens) {
        *a = (wk_action){.wake_at = -1, .position = v->tokens_prefilled};
        wk_policy_prefill_as_arrives(v, (int)pol->param[0], a);
        if (a->kind == WK_ACT_WAIT) {
            if (r->wait_skips_sender) r->wait_until = (double)INFINITY;
            return DIRECT_FINISHED;
        }
        r->wait_until = -(double)INFINITY;
        return direct_start(s, r, e, now, err);
    }
    /* wk_policy_decode_when_complete's decode and wait, the emission by the policy itself */
    if (decodes_when_complete && v->n_arrived > v->n_usable) {
        *a = (wk_action){.kind = WK_ACT_DECODE_KV, .count = v->n_arrived - v->n_usable, .wake_at = -1,
                         .position = v->tokens_prefilled};
        r->wait_until = -(double)INFINITY;
        return direct_start(s, r, e, now, err);
    }
    if (decodes_when_complete && v->n_usable != v->plan->n && !(v->kv_values_usable >= v->plan->kv_values_total)) {
        *a = (wk_action){.kind = WK_ACT_WAIT, .wake_at = -1, .position = v->tokens_prefilled};
        if (r->wait_skips_sender) r->wait_until = (double)INFINITY;
        return DIRECT_FINISHED;
    }
    *a = (wk_action){.wake_at = -1, .position = v->tokens_prefilled};
    pol->ops->decide(pol->state, pol->param, &r->v, a);
    if (a->kind != WK_ACT_WAIT) {
        r->wait_until = -(double)INFINITY;
        return direct_start(s, r, e, now, err);
    }
    if (r->wait_skips_sender) r->wait_until = a->wake_at < 0 ? (double)INFINITY : a->wake_at;
    if (a->wake_at > now && a->wake_at != r->timer_at) {
        if (e->n_wake == DIRECT_WAKEUPS) return DIRECT_HAND_OVER;
        r->timer_at = a->wake_at;
        size_t j = e->n_wake++; /* after every wake-up due no later: it was posted last */
        for (; j > 0 && e->wake_t[j - 1] > a->wake_at; j--) {
            e->wake_t[j] = e->wake_t[j - 1];
            e->wake_seq[j] = e->wake_seq[j - 1];
        }
        e->wake_t[j] = a->wake_at;
        e->wake_seq[j] = e->seq++;
    }
    return DIRECT_FINISHED;
}

/* Runs a request begun by begin_state to its end, or returns DIRECT_HAND_OVER where it leaves the shape
 * above (the caller then runs it again in the general loop). Every step is step()'s for that event. */
static int run_direct(wk_session *s, run_state *r, double request_delay_s, wk_err *err) {
    direct_events e;
    e.seq = 0;
    e.sender_t = request_delay_s < 0 ? 0 : request_delay_s; /* posted at session time 0 */
    e.sender_seq = e.seq++;
    e.sender_pending = 1;
    e.lane = s->lane;
    e.head = e.tail = 0;
    e.compute_t = 0;
    e.compute_seq = 0;
    e.compute_arg = 0;
    e.n_wake = 0;
    if (e.sender_t != e.sender_t) return DIRECT_HAND_OVER;
    const int in_order = r->pol->ops->next_unit == wk_policy_send_in_order;
    const int output_tokens = r->output_tokens;
    const int shape = r->pol->ops->direct_loop;
    const double max_session_s = s->max_session_s;
    size_t events = r->events;
    while (!r->done) {
        /* the next event: the earliest, and of those at one instant the first posted */
        int type = 0;
        double now = 0;
        uint64_t seq = 0;
        if (e.head < e.tail) {
            type = WK_EV_ARRIVAL;
            now = e.lane[e.head].t;
            seq = e.lane[e.head].seq;
        }
        if (e.sender_pending && direct_first(e.sender_t, e.sender_seq, type, now, seq)) {
            type = WK_EV_SENDER;
            now = e.sender_t;
            seq = e.sender_seq;
        }
        if (r->busy && direct_first(e.compute_t, e.compute_seq, type, now, seq)) {
            type = WK_EV_COMPUTE_DONE;
            now = e.compute_t;
            seq = e.compute_seq;
        }
        if (e.n_wake && direct_first(e.wake_t[0], e.wake_seq[0], type, now, seq)) {
            type = WK_EV_TIMER;
            now = e.wake_t[0];
        }
        /* nothing pending (a stall) or past the time limit: the general loop says how it failed */
        if (!type || now > max_session_s) return DIRECT_HAND_OVER;
        events++;
        r->v.now = now;
        int rc = DIRECT_FINISHED;
        switch (type) {
        case WK_EV_SENDER:
            e.sender_pending = 0;
            rc = direct_sender(s, r, &e, in_order, now);
            break;
        case WK_EV_ARRIVAL: direct_arrival(s, r, e.lane[e.head++].unit); break;
        case WK_EV_COMPUTE_DONE:
            if (r->current.kind == WK_ACT_DECODE_KV) direct_finish_decode(s, r, now);
            else finish_action(s, r, e.compute_arg, r->out, NULL);
            break;
        default: /* WK_EV_TIMER */
            e.n_wake--;
            memmove(e.wake_t, e.wake_t + 1, e.n_wake * sizeof e.wake_t[0]);
            memmove(e.wake_seq, e.wake_seq + 1, e.n_wake * sizeof e.wake_seq[0]);
            if (now >= r->timer_at) r->timer_at = NAN;
            break;
        }
        /* (the sender never idles before it is done here, so it is never asked again) */
        if (!rc && !r->busy && r->v.tokens_emitted < output_tokens && !(type == WK_EV_SENDER && now < r->wait_until))
            rc = direct_receiver(s, r, &e, now, shape, err);
        if (rc) return rc;
        if (r->v.tokens_emitted >= output_tokens && !r->busy) r->done = 1;
    }
    r->events = events;
    return DIRECT_FINISHED;
}

/* The request fits the direct loop's wiring: the simulator's virtual clock, trace link and decode
 * table, no timeline, no per-token importance (plans that mix local prefill and streamed KV), and a
 * policy that asks for it. */
static int direct_applies(const wk_session *s, const wk_policy *pol, const wk_plan *plan, const wk_session_clock *clock,
                          const wk_session_link *link, const wk_session_backend *be, const wk_timeline *tl) {
    return !s->general_only && pol->ops->direct_loop && clock->queue && link->model && !link->send && be->unit_decode_s &&
           !tl && !plan->token_importance;
}

int wk_session_run(wk_session *s, wk_policy *pol, const wk_request *req, const wk_plan *plan,
                   const wk_session_clock *clock, const wk_session_link *link, const wk_session_backend *be,
                   double request_delay_s, wk_timeline *tl, wk_session_result *out, wk_err *err) {
    run_state *r = &s->live;
    if (direct_applies(s, pol, plan, clock, link, be, tl)) {
        wk_link_model link_at_start = *link->model; /* a request handed over starts again on it */
        int rc = begin_state(s, pol, req, plan, clock, link, be, request_delay_s, tl, out, err);
        if (!rc && run_direct(s, r, request_delay_s, err) == DIRECT_FINISHED) {
            s->direct_runs++;
            wk_session_end(s);
            return 0;
        }
        s->direct_handed++;
        *link->model = link_at_start;
    }
    int rc = wk_session_begin(s, pol, req, plan, clock, link, be, request_delay_s, tl, out, err);
    while (!rc && !r->done) {
        wk_event ev;
        int none = clock->queue ? wk_event_queue_pop(clock->queue, &ev) != 0
                                : (rc = clock->next(clock->self, &ev.t, &ev.type, &ev.arg, err)) == 1;
        if (none) {
            wk_session_stall(s);
            rc = 0;
            break;
        }
        if (!rc) rc = step(s, r, ev.t, ev.type, ev.arg, err);
    }
    if (rc) {
        out->events = r->events;
        return rc;
    }
    wk_session_end(s);
    return 0;
}
