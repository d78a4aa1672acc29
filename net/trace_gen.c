/* Markov-modulated capacity generators and their built-in parameter sets (rationale in
 * net/trace_gen.h). Deterministic: all randomness comes from the wk_rng passed down. */
#include "net/trace_gen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- PRNG ---------------------------------------------------------------------------------- */


/* ---- parameter sets ------------------------------------------------------------------------ */

/* Field order: name, mean Mbit/s, spread (CoV), dwell mean s, dwell min s, {transition weights}. */
static const wk_gen_model models[] = {
    {.name = "wifi-static",
     .n_states = 3,
     .states = {{"clear", 640, 0.06, 8.0, 2.0, {0, 0.7, 0.3}},
                {"contention", 420, 0.15, 2.0, 0.5, {0.9, 0, 0.1}},
                {"interference", 200, 0.35, 0.2, 0.1, {0.6, 0.4, 0}}},
     .dt_s = 0.1, .fading_corr = 0.8, .max_mbps = 850, .expect_lo_mbps = 480, .expect_hi_mbps = 680},
    {.name = "wifi-walk",
     .n_states = 4,
     .states = {{"near", 560, 0.10, 5.0, 2.0, {0, 1, 0, 0}},
                {"mid", 330, 0.15, 4.0, 1.5, {0.5, 0, 0.5, 0}},
                {"far", 150, 0.25, 4.0, 1.5, {0, 0.6, 0, 0.4}},
                {"behind-walls", 45, 0.40, 2.0, 0.8, {0, 0, 1, 0}}},
     .dt_s = 0.1, .fading_corr = 0.85, .max_mbps = 850, .expect_lo_mbps = 150, .expect_hi_mbps = 450},
    {.name = "lte-static",
     .n_states = 3,
     .states = {{"light-load", 55, 0.15, 6.0, 2.0, {0, 1, 0}},
                {"normal-load", 34, 0.20, 10.0, 3.0, {0.4, 0, 0.6}},
                {"busy", 17, 0.30, 6.0, 2.0, {0, 1, 0}}},
     .dt_s = 0.1, .fading_corr = 0.9, .max_mbps = 150, .expect_lo_mbps = 20, .expect_hi_mbps = 50},
    {.name = "lte-driving",
     .n_states = 4,
     .states = {{"good", 24, 0.45, 6.0, 1.0, {0, 0.6, 0, 0.4}},
                {"fair", 11, 0.50, 6.0, 1.0, {0.4, 0, 0.3, 0.3}},
                {"cell-edge", 3.5, 0.60, 3.0, 0.5, {0, 0.6, 0, 0.4}},
                {"handover", 0.3, 0.50, 0.15, 0.1, {0.3, 0.5, 0.2, 0}}},
     .dt_s = 0.1, .fading_corr = 0.6, .max_mbps = 100, .expect_lo_mbps = 6, .expect_hi_mbps = 20},
    {.name = "mmwave-blockage",
     .n_states = 3,
     .states = {{"line-of-sight", 850, 0.12, 3.0, 1.0, {0, 0.5, 0.5}},
                {"reflected", 280, 0.30, 1.5, 0.4, {0.6, 0, 0.4}},
                {"blocked", 2, 0.50, 0.7, 0.2, {0.4, 0.6, 0}}},
     .dt_s = 0.05, .fading_corr = 0.7, .max_mbps = 1000, .expect_lo_mbps = 300, .expect_hi_mbps = 750},
};

size_t wk_gen_model_count(void) { return sizeof models / sizeof models[0]; }

const wk_gen_model *wk_gen_model_at(size_t i) { return i < wk_gen_model_count() ? &models[i] : NULL; }

const wk_gen_model *wk_gen_model_find(const char *name) {
    for (size_t i = 0; name && i < wk_gen_model_count(); i++)
        if (strcmp(models[i].name, name) == 0) return &models[i];
    return NULL;
}

int wk_gen_model_check(const wk_gen_model *m, wk_err *err) {
    const char *name = m->name ? m->name : "model";
    if (m->n_states < 1 || m->n_states > WK_GEN_MAX_STATES)
        return wk_err_set(err, WK_EINVAL, "%s: n_states %zu not in 1..%d", name, m->n_states, WK_GEN_MAX_STATES);
    if (!(m->dt_s > 0 && m->dt_s <= 0.1))
        return wk_err_set(err, WK_EINVAL, "%s: dt_s %g not in (0, 0.1]", name, m->dt_s);
    if (!(m->fading_corr >= 0 && m->fading_corr < 1))
        return wk_err_set(err, WK_EINVAL, "%s: fading_corr %g not in [0, 1)", name, m->fading_corr);
    if (!(m->max_mbps > 0)) return wk_err_set(err, WK_EINVAL, "%s: max_mbps %g not positive", name, m->max_mbps);
    for (size_t i = 0; i < m->n_states; i++) {
        const wk_gen_state *s = &m->states[i];
        if (!(s->mean_mbps >= 0 && s->spread >= 0 && s->dwell_mean_s >= 0 && s->dwell_min_s >= 0))
            return wk_err_set(err, WK_EINVAL, "%s: state %zu: negative mean, spread or dwell", name, i);
        double row = 0;
        for (size_t j = 0; j < m->n_states; j++)
            if (j != i) {
                if (!(s->next[j] >= 0))
                    return wk_err_set(err, WK_EINVAL, "%s: state %zu: transition weight %zu negative", name, i, j);
                row += s->next[j];
            }
        if (m->n_states > 1 && !(row > 0))
            return wk_err_set(err, WK_EINVAL, "%s: state %zu: no transition to another state", name, i);
    }
    return 0;
}

/* ---- generation ---------------------------------------------------------------------------- */

static size_t next_state(const wk_gen_model *m, size_t cur, wk_rng *rng) {
    if (m->n_states == 1) return cur;
    double total = 0;
    for (size_t j = 0; j < m->n_states; j++)
        if (j != cur) total += m->states[cur].next[j];
    double u = wk_rng_uniform(rng) * total;
    size_t last = cur;
    for (size_t j = 0; j < m->n_states; j++) {
        if (j == cur || m->states[cur].next[j] <= 0) continue;
        last = j;
        if (u < m->states[cur].next[j]) return j;
        u -= m->states[cur].next[j];
    }
    return last; /* rounding left u just above the total */
}

static double dwell(const wk_gen_state *s, wk_rng *rng) {
    return s->dwell_min_s + wk_rng_exponential(rng, s->dwell_mean_s);
}

/* Rate of one sample: the state's mean times mean-one lognormal fading driven by x ~ N(0, 1). */
static double sample_mbps(const wk_gen_model *m, const wk_gen_state *s, double x, double scale) {
    double sigma = sqrt(log1p(s->spread * s->spread));
    double r = s->mean_mbps * exp(sigma * x - 0.5 * sigma * sigma);
    if (r > m->max_mbps) r = m->max_mbps;
    r *= scale;
    return round(r * 100.0) / 100.0; /* 0.01 Mbit/s grid: files identical across libms */
}

int wk_gen_trace(const wk_gen_model *m, const wk_gen_options *opt, wk_trace *tr, uint8_t **states_out,
                 wk_err *err) {
    memset(tr, 0, sizeof *tr);
    if (states_out) *states_out = NULL;
    int rc = wk_gen_model_check(m, err);
    if (rc) return rc;
    double scale = opt->scale == 0 ? 1.0 : opt->scale;
    if (!(opt->seconds > 0 && opt->seconds <= WK_TRACE_MAX_PERIOD_S))
        return wk_err_set(err, WK_EINVAL, "%s: --seconds %g not in (0, %g]", m->name, opt->seconds,
                          WK_TRACE_MAX_PERIOD_S);
    if (!(scale > 0 && isfinite(scale))) return wk_err_set(err, WK_EINVAL, "%s: scale %g not positive", m->name, scale);
    size_t n = (size_t)ceil(opt->seconds / m->dt_s - 1e-9);
    if (n == 0) n = 1;
    double *t = malloc(n * sizeof *t), *mbps = malloc(n * sizeof *mbps);
    uint8_t *states = malloc(n);
    if (!t || !mbps || !states) {
        free(t), free(mbps), free(states);
        return wk_err_set(err, WK_ENOMEM, "%s: out of memory for %zu samples", m->name, n);
    }
    wk_rng rng;
    wk_rng_seed(&rng, opt->seed);
    size_t state = 0;
    double left = dwell(&m->states[0], &rng);
    double x = wk_rng_normal(&rng);
    double a = m->fading_corr, b = sqrt(1.0 - a * a);
    for (size_t k = 0; k < n; k++) {
        if (left <= 0) {
            state = next_state(m, state, &rng);
            left = dwell(&m->states[state], &rng);
        }
        x = a * x + b * wk_rng_normal(&rng);
        t[k] = (double)k * m->dt_s;
        mbps[k] = sample_mbps(m, &m->states[state], x, scale);
        states[k] = (uint8_t)state;
        left -= m->dt_s;
    }
    char name[256];
    snprintf(name, sizeof name, "%.100s-%gs-seed%llu", m->name, opt->seconds, (unsigned long long)opt->seed);
    rc = wk_trace_from_capacity(name, t, mbps, n, (double)n * m->dt_s, tr, err);
    free(t);
    free(mbps);
    if (rc == 0 && states_out) *states_out = states;
    else free(states);
    return rc;
}
