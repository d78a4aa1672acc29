/* Bandwidth traces: a capacity process over time that loops at its end.
 *
 * Two shapes, both exact (no resampling):
 *  - CAPACITY: piecewise-constant rate; segment i holds rate_bps[i] from t_s[i] to t_s[i+1]
 *    (the last segment to period_s). Read from `seconds Mbit/s` files and `time_s,mbps` CSV.
 *  - OPPORTUNITIES: Mahimahi delivery opportunities; each listed instant delivers one
 *    1500-byte packet; several at one instant are several packets. Period = last timestamp,
 *    so (as in Mahimahi) the schedule restarts at that offset.
 *
 * Formats (see README "Trace formats"):
 *   mahimahi  one integer millisecond per line, non-decreasing
 *   pensieve  two whitespace-separated columns: seconds since start, Mbit/s (holds until next row)
 *   csv       header with `time_s,mbps`; or any CSV with a header and rows one second apart,
 *             selecting a throughput column with PATH#COLUMN (e.g. walking.csv#throughput_mbps)
 */
#ifndef WIKV_NET_TRACE_H
#define WIKV_NET_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define WK_MAHIMAHI_PACKET_BYTES 1500.0
#define WK_TRACE_MAX_PERIOD_S 1e7 /* about 116 days: longer is a unit mistake, and stats would need 1e7 bins */

typedef enum { WK_TRACE_CAPACITY, WK_TRACE_OPPORTUNITIES } wk_trace_kind;
typedef enum { WK_FMT_AUTO, WK_FMT_MAHIMAHI, WK_FMT_PENSIEVE, WK_FMT_CSV } wk_trace_format;

typedef struct wk_trace {
    char name[256];       /* file name without directories, for tables and the database */
    wk_trace_kind kind;
    size_t n;             /* segments (CAPACITY) or opportunities (OPPORTUNITIES) */
    double *t_s;          /* [n] segment starts, or opportunity instants, seconds, in [0, period_s] */
    double *rate_Bps;     /* [n] CAPACITY only: bytes per second of each segment */
    double *cum_bytes;    /* [n+1] bytes delivered from 0 to the start of segment i (CAPACITY) or
                             before opportunity i (OPPORTUNITIES); cum_bytes[n] = bytes per period */
    double period_s;
} wk_trace;

int wk_trace_load(const char *path, wk_trace_format fmt, wk_trace *tr, wk_err *err);
/* Parses text already in memory (fuzz targets and tests); `what` names it in errors. */
int wk_trace_parse(const char *text, size_t len, const char *what, const char *column, wk_trace_format fmt,
                   wk_trace *tr, wk_err *err);
int wk_trace_save(const wk_trace *tr, const char *path, wk_trace_format fmt, wk_err *err);
void wk_trace_free(wk_trace *tr);

/* Builders (generators and tests). Take copies of the arrays. */
int wk_trace_from_capacity(const char *name, const double *t_s, const double *mbps, size_t n, double period_s,
                           wk_trace *tr, wk_err *err);
int wk_trace_from_opportunities(const char *name, const double *t_ms, size_t n, wk_trace *tr, wk_err *err);
int wk_trace_constant(const char *name, double mbps, double period_s, wk_trace *tr, wk_err *err);

/* Bytes delivered by the looping trace in [0, t). Exact, O(log n). */
double wk_trace_bytes_before(const wk_trace *tr, double t);
/* Earliest time t >= t0 at which `bytes` bytes sent from t0 on have all been delivered. Exact, O(log n). */
double wk_trace_time_to_deliver(const wk_trace *tr, double t0, double bytes);
/* Many deliveries from one start time t0 (a link's busy period): what depends on t0 alone is found
 * once, and the segment search starts from the last answer. wk_trace_cursor_time(tr, &c, bytes)
 * returns exactly wk_trace_time_to_deliver(tr, t0, bytes). */
typedef struct wk_trace_cursor {
    double t0;      /* clamped to >= 0 */
    double base;    /* CAPACITY: bytes before t0; OPPORTUNITIES: global index of the first opportunity at or after t0 */
    size_t hint;    /* CAPACITY: segment of the last answer */
    double loops;   /* CAPACITY: floor(target / bytes per period) of the last answer, which holds for every */
    double loop_lo, loop_hi; /* target (base + bytes) in [loop_lo, loop_hi] (empty: not known yet) */
    double base_loops; /* OPPORTUNITIES: base = base_loops * n + base_index, so that answers within the */
    size_t base_index; /* same loop need no division */
    size_t last_index; /* OPPORTUNITIES: entry of the last answer (to fetch the next one early) */
} wk_trace_cursor;
void wk_trace_cursor_init(const wk_trace *tr, double t0, wk_trace_cursor *c);
static inline double wk_trace_cursor_time(const wk_trace *tr, wk_trace_cursor *c, double bytes);

/* ---- inline fast paths (a link asks the cursor once per unit) ---- */

/* Out of line: every answer the fast paths below do not give. */
double wk_trace_cursor_time_slow(const wk_trace *tr, wk_trace_cursor *c, double bytes);

/* Below this, integer-valued doubles divide exactly as integers do: a quotient's rounding error
 * (< q * 2^-53) is smaller than its distance to the next integer (>= 1/divisor). */
#define WK_TRACE_EXACT_INTEGERS 0x1p50

/* OPPORTUNITIES: the opportunity that carries the last byte, without the two divisions of the
 * general answer when the byte count is a whole number (a link hands over whole bytes): ceil(b /
 * 1500) is (b + 1499) / 1500 in integers, and the loop of the last packet is the base's while the
 * packets fit in it. Same answer, bit for bit. */
static inline double wk_trace_cursor_opportunity(const wk_trace *tr, wk_trace_cursor *c, double bytes) {
    if (!(bytes < WK_TRACE_EXACT_INTEGERS) || !(c->base >= 0 && c->base < WK_TRACE_EXACT_INTEGERS))
        return wk_trace_cursor_time_slow(tr, c, bytes);
    uint64_t b = (uint64_t)bytes;
    if ((double)b != bytes) return wk_trace_cursor_time_slow(tr, c, bytes);
    uint64_t packets = (b + 1499) / 1500; /* WK_MAHIMAHI_PACKET_BYTES */
    uint64_t last = (uint64_t)c->base_index + packets - 1;
    double loops = c->base_loops;
    if (last >= tr->n) {
        uint64_t wraps = last / tr->n;
        loops += (double)wraps;
        last -= wraps * tr->n;
    }
    /* a busy period hands over units of similar sizes: fetch the entry the next one will likely read
     * while this one is used (a long Mahimahi trace does not fit in the cache) */
    uint64_t ahead = last + (last > c->last_index ? last - c->last_index : 0);
    if (ahead < tr->n) __builtin_prefetch(&tr->t_s[ahead]);
    c->last_index = last;
    return loops * tr->period_s + tr->t_s[last];
}

/* Segments a busy period's answer walks forward from the last one before it searches instead. */
#define WK_TRACE_CURSOR_WALK 8

/* CAPACITY: while the target stays in the loop of the last answer and ends in its segment or one of
 * the next few (a busy period's targets grow), the answer needs neither the loop's division nor a
 * search: the segment is the first whose end reaches the remainder, as the search finds it. Same
 * answer, bit for bit. */
static inline double wk_trace_cursor_capacity(const wk_trace *tr, wk_trace_cursor *c, double bytes) {
    double target = c->base + bytes;
    if (!(target >= c->loop_lo && target <= c->loop_hi)) return wk_trace_cursor_time_slow(tr, c, bytes);
    double rem = target - c->loops * tr->cum_bytes[tr->n]; /* > 0: loop_lo says so */
    const double *cum = tr->cum_bytes;
    size_t i = c->hint;
    if (!(cum[i] < rem)) return wk_trace_cursor_time_slow(tr, c, bytes); /* behind the last answer */
    for (size_t end = i + WK_TRACE_CURSOR_WALK < tr->n ? i + WK_TRACE_CURSOR_WALK : tr->n; !(cum[i + 1] >= rem); i++)
        if (i + 1 >= end) return wk_trace_cursor_time_slow(tr, c, bytes);
    c->hint = i;
    double within = tr->rate_Bps[i] > 0 ? (rem - cum[i]) / tr->rate_Bps[i] : 0;
    double t = c->loops * tr->period_s + tr->t_s[i] + within;
    return t > c->t0 ? t : c->t0;
}

static inline double wk_trace_cursor_time(const wk_trace *tr, wk_trace_cursor *c, double bytes) {
    if (!(bytes > 0)) return c->t0;
    return tr->kind == WK_TRACE_OPPORTUNITIES ? wk_trace_cursor_opportunity(tr, c, bytes)
                                              : wk_trace_cursor_capacity(tr, c, bytes);
}

/* Mean rate over one period, Mbit/s. */
double wk_trace_mean_mbps(const wk_trace *tr);

typedef struct {
    double duration_s, mean_mbps, p5_mbps, p50_mbps, p95_mbps, cov;
    double autocorr_1s;   /* lag-1 autocorrelation of the 1-second bins */
    double outage_frac;   /* fraction of 1-second bins under 0.1 Mbit/s */
} wk_trace_stats;

/* Statistics over 1-second bins of one period (the last partial bin is weighted by its length). */
int wk_trace_compute_stats(const wk_trace *tr, wk_trace_stats *st, wk_err *err);

wk_trace_format wk_trace_format_from_name(const char *name);
const char *wk_trace_format_name(wk_trace_format fmt);

#endif
