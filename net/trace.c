/* Trace construction, exact queries (prefix sums + binary search), and statistics. Parsing and
 * writing of the file formats live in net/trace_io.c. */
#include "net/trace.h"

#include "core/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_name(wk_trace *tr, const char *name) {
    const char *base = name ? strrchr(name, '/') : NULL;
    base = base ? base + 1 : (name ? name : "trace");
    snprintf(tr->name, sizeof tr->name, "%s", base);
}

void wk_trace_free(wk_trace *tr) {
    if (!tr) return;
    free(tr->t_s);
    free(tr->rate_Bps);
    free(tr->cum_bytes);
    memset(tr, 0, sizeof *tr);
}

static int alloc_arrays(wk_trace *tr, size_t n, int with_rate, wk_err *err) {
    tr->t_s = malloc(n * sizeof *tr->t_s);
    tr->cum_bytes = malloc((n + 1) * sizeof *tr->cum_bytes);
    tr->rate_Bps = with_rate ? malloc(n * sizeof *tr->rate_Bps) : NULL;
    if (!tr->t_s || !tr->cum_bytes || (with_rate && !tr->rate_Bps)) {
        wk_trace_free(tr);
        return wk_err_set(err, WK_ENOMEM, "trace: out of memory for %zu samples", n);
    }
    return 0;
}

int wk_trace_from_capacity(const char *name, const double *t_s, const double *mbps, size_t n, double period_s,
                           wk_trace *tr, wk_err *err) {
    memset(tr, 0, sizeof *tr);
    set_name(tr, name);
    if (n == 0) return wk_err_set(err, WK_EFORMAT, "%s: trace has no samples", tr->name);
    double t0 = t_s[0];
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(mbps[i]) || mbps[i] < 0)
            return wk_err_set(err, WK_EFORMAT, "%s: sample %zu: rate %g Mbit/s is not a non-negative number",
                              tr->name, i + 1, mbps[i]);
        if (i > 0 && !(t_s[i] > t_s[i - 1]))
            return wk_err_set(err, WK_EFORMAT, "%s: sample %zu: time %g s does not increase", tr->name, i + 1, t_s[i]);
    }
    if (period_s > WK_TRACE_MAX_PERIOD_S)
        return wk_err_set(err, WK_EFORMAT, "%s: trace lasts %g s, more than the %g s wikv accepts", tr->name, period_s,
                          WK_TRACE_MAX_PERIOD_S);
    if (!(period_s > t_s[n - 1] - t0))
        return wk_err_set(err, WK_EFORMAT, "%s: period %g s does not cover the last sample", tr->name, period_s);
    int rc = alloc_arrays(tr, n, 1, err);
    if (rc) return rc;
    tr->kind = WK_TRACE_CAPACITY;
    tr->n = n;
    tr->period_s = period_s;
    tr->cum_bytes[0] = 0;
    for (size_t i = 0; i < n; i++) {
        tr->t_s[i] = t_s[i] - t0;
        tr->rate_Bps[i] = mbps[i] * 1e6 / 8.0;
        double end = (i + 1 < n) ? t_s[i + 1] - t0 : period_s;
        tr->cum_bytes[i + 1] = tr->cum_bytes[i] + tr->rate_Bps[i] * (end - tr->t_s[i]);
    }
    if (!(tr->cum_bytes[n] > 0)) {
        wk_trace_free(tr);
        return wk_err_set(err, WK_EFORMAT, "%s: trace delivers no bytes (all rates are 0)", name ? name : "trace");
    }
    return 0;
}

int wk_trace_from_opportunities(const char *name, const double *t_ms, size_t n, wk_trace *tr, wk_err *err) {
    memset(tr, 0, sizeof *tr);
    set_name(tr, name);
    if (n == 0) return wk_err_set(err, WK_EFORMAT, "%s: trace has no delivery opportunities", tr->name);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(t_ms[i]) || t_ms[i] < 0)
            return wk_err_set(err, WK_EFORMAT, "%s: opportunity %zu: time %g ms is negative", tr->name, i + 1, t_ms[i]);
        if (i > 0 && t_ms[i] < t_ms[i - 1])
            return wk_err_set(err, WK_EFORMAT, "%s: opportunity %zu: time %g ms goes backwards", tr->name, i + 1, t_ms[i]);
    }
    if (t_ms[n - 1] / 1000.0 > WK_TRACE_MAX_PERIOD_S)
        return wk_err_set(err, WK_EFORMAT, "%s: trace lasts %g s, more than the %g s wikv accepts", tr->name,
                          t_ms[n - 1] / 1000.0, WK_TRACE_MAX_PERIOD_S);
    if (!(t_ms[n - 1] > 0))
        return wk_err_set(err, WK_EFORMAT, "%s: last opportunity must be after 0 ms (it sets the period)", tr->name);
    int rc = alloc_arrays(tr, n, 0, err);
    if (rc) return rc;
    tr->kind = WK_TRACE_OPPORTUNITIES;
    tr->n = n;
    tr->period_s = t_ms[n - 1] / 1000.0;
    for (size_t i = 0; i < n; i++) {
        tr->t_s[i] = t_ms[i] / 1000.0;
        tr->cum_bytes[i] = WK_MAHIMAHI_PACKET_BYTES * (double)i;
    }
    tr->cum_bytes[n] = WK_MAHIMAHI_PACKET_BYTES * (double)n;
    return 0;
}

int wk_trace_constant(const char *name, double mbps, double period_s, wk_trace *tr, wk_err *err) {
    double t = 0;
    return wk_trace_from_capacity(name, &t, &mbps, 1, period_s, tr, err);
}

/* Number of entries of sorted a[0..n) that are < x, searched in [lo, hi). */
static size_t count_below_in(const double *a, size_t lo, size_t hi, double x) {
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Number of entries of sorted a[0..n) that are < x, for times a[] in [0, span]. The search starts
 * where x would sit if the entries were evenly spread and widens by doubling steps, so a long trace
 * (a Mahimahi file has an entry per packet) is searched in a few cache lines instead of ~log2(n)
 * misses; the answer is the same whatever the spread. */
static size_t count_below(const double *a, size_t n, double x, double span) {
    if (n < 64 || !(span > 0) || !(x > 0) || !(x < span)) return count_below_in(a, 0, n, x);
    size_t guess = (size_t)(x / span * (double)n);
    if (guess >= n) guess = n - 1;
    size_t lo, hi, step = 1;
    if (a[guess] < x) { /* the answer is above guess */
        lo = guess + 1;
        hi = lo;
        while (hi < n && a[hi] < x) {
            lo = hi + 1;
            hi = hi + step < n ? hi + step : n;
            step *= 2;
        }
    } else {            /* at or below guess */
        hi = guess;
        lo = hi;
        while (lo > 0 && !(a[lo - 1] < x)) {
            hi = lo - 1;
            lo = lo > step ? lo - step : 0;
            step *= 2;
        }
    }
    return count_below_in(a, lo, hi, x);
}

/* Bytes delivered in [0, r) for r in [0, period]. */
static double bytes_within_period(const wk_trace *tr, double r) {
    size_t below = count_below(tr->t_s, tr->n, r, tr->period_s);
    if (tr->kind == WK_TRACE_OPPORTUNITIES) return tr->cum_bytes[below];
    if (below == 0) return 0;
    size_t i = below - 1; /* last segment starting before r */
    return tr->cum_bytes[i] + tr->rate_Bps[i] * (r - tr->t_s[i]);
}

/* Global index (over the looping schedule) of the first opportunity at or after t. Opportunities
 * listed at exactly the period belong to the previous loop but happen at t when t is a loop start. */
static double first_opportunity_at_or_after(const wk_trace *tr, double t) {
    double loops = floor(t / tr->period_s);
    double r = t - loops * tr->period_s;
    double index = loops * (double)tr->n + (double)count_below(tr->t_s, tr->n, r, tr->period_s);
    if (r <= 0 && loops > 0) index -= (double)(tr->n - count_below(tr->t_s, tr->n, tr->period_s, tr->period_s));
    return index;
}

double wk_trace_bytes_before(const wk_trace *tr, double t) {
    if (t <= 0) return 0;
    if (tr->kind == WK_TRACE_OPPORTUNITIES) return first_opportunity_at_or_after(tr, t) * WK_MAHIMAHI_PACKET_BYTES;
    double loops = floor(t / tr->period_s);
    double r = t - loops * tr->period_s;
    return loops * tr->cum_bytes[tr->n] + bytes_within_period(tr, r);
}

/* Time of the opportunity that carries the last of `bytes` when the first is opportunity `first`. */
static double opportunity_from(const wk_trace *tr, double first, double bytes) {
    double packets = ceil(bytes / WK_MAHIMAHI_PACKET_BYTES);
    double last = first + packets - 1;
    double loops = floor(last / (double)tr->n);
    size_t idx = (size_t)(last - loops * (double)tr->n);
    return loops * tr->period_s + tr->t_s[idx];
}

static double opportunity_time(const wk_trace *tr, double t0, double bytes) {
    return opportunity_from(tr, first_opportunity_at_or_after(tr, t0), bytes);
}

/* Smallest segment i whose end cumulative count reaches rem (cum_bytes[i + 1] >= rem), searched
 * outwards from `hint` first: consecutive queries of a busy period land on or near the last one. */
static size_t segment_reaching(const wk_trace *tr, double rem, size_t hint) {
    size_t lo = 0, hi = tr->n - 1;
    if (hint < tr->n) { /* narrow [lo, hi] around the hint by doubling steps; the answer stays inside */
        if (tr->cum_bytes[hint + 1] >= rem) {
            hi = hint;
            for (size_t step = 1; hi > 0; step *= 2) {
                size_t probe = hi >= step ? hi - step : 0;
                if (tr->cum_bytes[probe + 1] >= rem) hi = probe;
                else { lo = probe + 1; break; }
                if (probe == 0) break;
            }
        } else {
            lo = hint + 1;
            for (size_t step = 1; lo < tr->n - 1; step *= 2) {
                size_t probe = lo + step < tr->n - 1 ? lo + step : tr->n - 1;
                if (tr->cum_bytes[probe + 1] >= rem) { hi = probe; break; }
                lo = probe + 1;
                if (probe == tr->n - 1) break;
            }
            if (lo > hi) lo = hi;
        }
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tr->cum_bytes[mid + 1] >= rem) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* Earliest time >= t0 at which `before_t0 + bytes` bytes have been delivered since time 0. *loops0
 * gets floor(target / bytes per period) before the correction for a target at a loop's end. */
static double capacity_from(const wk_trace *tr, double t0, double before_t0, double bytes, size_t *hint,
                            double *loops0) {
    double per_period = tr->cum_bytes[tr->n];
    double target = before_t0 + bytes;
    double loops = floor(target / per_period);
    *loops0 = loops;
    double rem = target - loops * per_period;
    if (rem <= 0 && loops > 0) { loops -= 1; rem += per_period; }
    size_t lo = segment_reaching(tr, rem, *hint);
    *hint = lo;
    double within = tr->rate_Bps[lo] > 0 ? (rem - tr->cum_bytes[lo]) / tr->rate_Bps[lo] : 0;
    double t = loops * tr->period_s + tr->t_s[lo] + within;
    return t > t0 ? t : t0;
}

static double capacity_time(const wk_trace *tr, double t0, double bytes) {
    size_t hint = (size_t)-1;
    double loops0;
    return capacity_from(tr, t0, wk_trace_bytes_before(tr, t0), bytes, &hint, &loops0);
}

void wk_trace_cursor_init(const wk_trace *tr, double t0, wk_trace_cursor *c) {
    if (t0 < 0) t0 = 0;
    c->t0 = t0;
    c->base = tr->kind == WK_TRACE_OPPORTUNITIES ? first_opportunity_at_or_after(tr, t0) : wk_trace_bytes_before(tr, t0);
    c->hint = (size_t)-1;
    c->loops = 0;
    c->loop_lo = (double)INFINITY; /* no loop known yet: the first answer searches */
    c->loop_hi = -(double)INFINITY;
    c->base_loops = tr->kind == WK_TRACE_OPPORTUNITIES ? floor(c->base / (double)tr->n) : 0;
    c->base_index = tr->kind == WK_TRACE_OPPORTUNITIES ? (size_t)(c->base - c->base_loops * (double)tr->n) : 0;
    c->last_index = c->base_index;
}

/* Margin, in loops, around the last answer's loop within which a target's loop is that one whatever
 * the rounding of target / bytes per period (its error is below 2^-52 loops per loop). */
#define LOOP_MARGIN 1e-6

double wk_trace_cursor_time_slow(const wk_trace *tr, wk_trace_cursor *c, double bytes) {
    if (!(bytes > 0)) return c->t0;
    if (tr->kind == WK_TRACE_OPPORTUNITIES) {
        /* what the integer path (wk_trace_cursor_opportunity) does not answer */
        return opportunity_from(tr, c->base, bytes);
    }
    double loops0;
    double t = capacity_from(tr, c->t0, c->base, bytes, &c->hint, &loops0);
    /* targets well inside this loop have the same floor and a remainder > 0 (no correction): the
     * next answers in it skip the division (wk_trace_cursor_capacity) */
    double per_period = tr->cum_bytes[tr->n];
    if (loops0 >= 0 && loops0 < WK_TRACE_EXACT_INTEGERS) {
        c->loops = loops0;
        c->loop_lo = loops0 > 0 ? (loops0 + LOOP_MARGIN) * per_period : 0;
        c->loop_hi = (loops0 + 1 - LOOP_MARGIN) * per_period;
    }
    return t;
}

double wk_trace_time_to_deliver(const wk_trace *tr, double t0, double bytes) {
    if (t0 < 0) t0 = 0;
    if (!(bytes > 0)) return t0;
    return tr->kind == WK_TRACE_OPPORTUNITIES ? opportunity_time(tr, t0, bytes) : capacity_time(tr, t0, bytes);
}

double wk_trace_mean_mbps(const wk_trace *tr) { return tr->cum_bytes[tr->n] * 8.0 / 1e6 / tr->period_s; }

int wk_trace_compute_stats(const wk_trace *tr, wk_trace_stats *st, wk_err *err) {
    size_t bins = (size_t)ceil(tr->period_s - 1e-9);
    if (bins == 0) bins = 1;
    double *rate = malloc(bins * sizeof *rate);
    double *sorted = malloc(bins * sizeof *sorted);
    if (!rate || !sorted) {
        free(rate);
        free(sorted);
        return wk_err_set(err, WK_ENOMEM, "%s: out of memory for statistics", tr->name);
    }
    double sum = 0, sum2 = 0;
    size_t outages = 0;
    for (size_t b = 0; b < bins; b++) {
        double a = (double)b, z = fmin((double)b + 1, tr->period_s);
        double len = z - a > 0 ? z - a : 1;
        rate[b] = (bytes_within_period(tr, z) - bytes_within_period(tr, a)) * 8.0 / 1e6 / len;
        sum += rate[b];
        sum2 += rate[b] * rate[b];
        if (rate[b] < 0.1) outages++;
    }
    double mean_bins = sum / (double)bins;
    double var = sum2 / (double)bins - mean_bins * mean_bins;
    double cov_num = 0, cov_den = 0;
    for (size_t b = 0; b < bins; b++) {
        double d = rate[b] - mean_bins;
        cov_den += d * d;
        if (b + 1 < bins) cov_num += d * (rate[b + 1] - mean_bins);
    }
    memcpy(sorted, rate, bins * sizeof *sorted);
    wk_sort_doubles(sorted, bins);
    st->duration_s = tr->period_s;
    st->mean_mbps = wk_trace_mean_mbps(tr);
    st->p5_mbps = wk_percentile_sorted(sorted, bins, 0.05);
    st->p50_mbps = wk_percentile_sorted(sorted, bins, 0.50);
    st->p95_mbps = wk_percentile_sorted(sorted, bins, 0.95);
    st->cov = mean_bins > 0 ? sqrt(var > 0 ? var : 0) / mean_bins : 0;
    st->autocorr_1s = cov_den > 0 ? cov_num / cov_den : 0;
    st->outage_frac = (double)outages / (double)bins;
    free(rate);
    free(sorted);
    return 0;
}

wk_trace_format wk_trace_format_from_name(const char *name) {
    if (!name || strcmp(name, "auto") == 0) return WK_FMT_AUTO;
    if (strcmp(name, "mahimahi") == 0) return WK_FMT_MAHIMAHI;
    if (strcmp(name, "pensieve") == 0) return WK_FMT_PENSIEVE;
    if (strcmp(name, "csv") == 0) return WK_FMT_CSV;
    return (wk_trace_format)-1;
}

const char *wk_trace_format_name(wk_trace_format fmt) {
    switch (fmt) {
    case WK_FMT_MAHIMAHI: return "mahimahi";
    case WK_FMT_PENSIEVE: return "pensieve";
    case WK_FMT_CSV: return "csv";
    default: return "auto";
    }
}
