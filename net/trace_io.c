/* Reading and writing the three trace file formats. Every rejected line is reported as
 * FILE:LINE: what is wrong. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/trace.h"

typedef struct {
    double *a, *b;
    size_t n, cap;
} sample_list;

static int samples_push(sample_list *s, double a, double b) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        double *na = realloc(s->a, cap * sizeof *na);
        if (!na) return WK_ENOMEM;
        s->a = na;
        double *nb = realloc(s->b, cap * sizeof *nb);
        if (!nb) return WK_ENOMEM;
        s->b = nb;
        s->cap = cap;
    }
    s->a[s->n] = a;
    s->b[s->n] = b;
    s->n++;
    return 0;
}

static void samples_free(sample_list *s) {
    free(s->a);
    free(s->b);
}

/* Iterates lines of a buffer; the line is copied (NUL-terminated, without \r\n) into line[]. */
typedef struct {
    const char *text;
    size_t len, pos;
    size_t line_no;
    char line[4096];
    int too_long;
} line_reader;

static int next_line(line_reader *r) {
    if (r->pos >= r->len) return 0;
    size_t start = r->pos;
    while (r->pos < r->len && r->text[r->pos] != '\n') r->pos++;
    size_t n = r->pos - start;
    if (r->pos < r->len) r->pos++;
    if (n > 0 && r->text[start + n - 1] == '\r') n--;
    r->too_long = n >= sizeof r->line;
    if (r->too_long) n = sizeof r->line - 1;
    memcpy(r->line, r->text + start, n);
    r->line[n] = '\0';
    r->line_no++;
    return 1;
}

static int is_blank(const char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    return *s == '\0';
}

/* Strict number: the whole token must parse and be finite. */
static int parse_number(const char *tok, double *out) {
    if (!tok || !*tok) return -1;
    char *end;
    errno = 0;
    double v = strtod(tok, &end);
    if (end == tok || *end != '\0' || errno == ERANGE || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static int line_error(wk_err *err, const char *what, size_t line, const char *msg, const char *text) {
    return wk_err_set(err, WK_EFORMAT, "%s:%zu: %s (\"%.60s\")", what, line, msg, text);
}

static int parse_mahimahi(line_reader *r, const char *what, wk_trace *tr, wk_err *err) {
    sample_list s = {0};
    int rc = 0;
    double prev = 0;
    while (next_line(r)) {
        if (is_blank(r->line)) continue;
        char *p = r->line;
        while (isspace((unsigned char)*p)) p++;
        char *end = p + strlen(p);
        while (end > p && isspace((unsigned char)end[-1])) *--end = '\0';
        double ms;
        if (r->too_long || parse_number(p, &ms) || ms != floor(ms)) {
            rc = line_error(err, what, r->line_no, "expected an integer millisecond", r->line);
            break;
        }
        if (ms < 0) { rc = line_error(err, what, r->line_no, "negative time", r->line); break; }
        if (s.n > 0 && ms < prev) {
            rc = line_error(err, what, r->line_no, "time goes backwards", r->line);
            break;
        }
        prev = ms;
        if (samples_push(&s, ms, 0)) { rc = wk_err_set(err, WK_ENOMEM, "%s: out of memory", what); break; }
    }
    if (!rc) rc = wk_trace_from_opportunities(what, s.a, s.n, tr, err);
    samples_free(&s);
    return rc;
}

static int parse_pensieve(line_reader *r, const char *what, wk_trace *tr, wk_err *err) {
    sample_list s = {0};
    int rc = 0;
    while (next_line(r)) {
        if (is_blank(r->line)) continue;
        char *save = NULL;
        char *a = strtok_r(r->line, " \t", &save);
        char *b = strtok_r(NULL, " \t", &save);
        char *extra = strtok_r(NULL, " \t", &save);
        double t, mbps;
        if (r->too_long || !a || !b || extra) {
            rc = line_error(err, what, r->line_no, "expected two columns: seconds Mbit/s", a ? a : "");
            break;
        }
        if (parse_number(a, &t)) { rc = line_error(err, what, r->line_no, "time is not a number", a); break; }
        if (parse_number(b, &mbps)) { rc = line_error(err, what, r->line_no, "rate is not a number", b); break; }
        if (mbps < 0) { rc = line_error(err, what, r->line_no, "negative rate", b); break; }
        if (s.n > 0 && !(t > s.a[s.n - 1])) {
            rc = line_error(err, what, r->line_no, "time does not increase", a);
            break;
        }
        if (samples_push(&s, t, mbps)) { rc = wk_err_set(err, WK_ENOMEM, "%s: out of memory", what); break; }
    }
    if (!rc && s.n == 0) rc = wk_err_set(err, WK_EFORMAT, "%s: no samples", what);
    if (!rc) {
        /* the last rate holds for the interval before it (1 s for a single sample) */
        double last_dt = s.n > 1 ? s.a[s.n - 1] - s.a[s.n - 2] : 1.0;
        double period = s.a[s.n - 1] - s.a[0] + last_dt;
        rc = wk_trace_from_capacity(what, s.a, s.b, s.n, period, tr, err);
    }
    samples_free(&s);
    return rc;
}

/* Splits a CSV line in place on commas (no quoting: trace CSVs have plain numeric fields). */
static size_t split_csv(char *line, char **fields, size_t max) {
    size_t n = 0;
    char *p = line;
    while (n < max) {
        fields[n++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = '\0';
        p = c + 1;
    }
    for (size_t i = 0; i < n; i++) {
        while (isspace((unsigned char)*fields[i])) fields[i]++;
        char *e = fields[i] + strlen(fields[i]);
        while (e > fields[i] && isspace((unsigned char)e[-1])) *--e = '\0';
    }
    return n;
}

#define CSV_MAX_FIELDS 64

static int parse_csv(line_reader *r, const char *what, const char *column, wk_trace *tr, wk_err *err) {
    char *fields[CSV_MAX_FIELDS];
    if (!next_line(r)) return wk_err_set(err, WK_EFORMAT, "%s: empty file", what);
    size_t nf = split_csv(r->line, fields, CSV_MAX_FIELDS);
    int time_col = -1, rate_col = -1;
    for (size_t i = 0; i < nf; i++) {
        if (strcmp(fields[i], "time_s") == 0) time_col = (int)i;
        if (strcmp(fields[i], column ? column : "mbps") == 0) rate_col = (int)i;
    }
    if (rate_col < 0)
        return wk_err_set(err, WK_EFORMAT, "%s:1: header has no column \"%s\"", what, column ? column : "mbps");
    if (!column && time_col < 0)
        return wk_err_set(err, WK_EFORMAT, "%s:1: header has no column \"time_s\"", what);
    if (column) time_col = -1; /* a selected column is sampled once per row, rows one second apart */
    sample_list s = {0};
    int rc = 0;
    while (next_line(r)) {
        if (is_blank(r->line)) continue;
        size_t n = split_csv(r->line, fields, CSV_MAX_FIELDS);
        double t = (double)s.n, mbps;
        if (r->too_long || (int)n <= rate_col || (time_col >= 0 && (int)n <= time_col)) {
            rc = wk_err_set(err, WK_EFORMAT, "%s:%zu: too few columns", what, r->line_no);
            break;
        }
        if (time_col >= 0 && parse_number(fields[time_col], &t)) {
            rc = line_error(err, what, r->line_no, "time_s is not a number", fields[time_col]);
            break;
        }
        if (parse_number(fields[rate_col], &mbps) || mbps < 0) {
            rc = line_error(err, what, r->line_no, "rate is not a non-negative number", fields[rate_col]);
            break;
        }
        if (s.n > 0 && !(t > s.a[s.n - 1])) {
            rc = line_error(err, what, r->line_no, "time does not increase", fields[time_col >= 0 ? time_col : 0]);
            break;
        }
        if (samples_push(&s, t, mbps)) { rc = wk_err_set(err, WK_ENOMEM, "%s: out of memory", what); break; }
    }
    if (!rc && s.n == 0) rc = wk_err_set(err, WK_EFORMAT, "%s: no data rows", what);
    if (!rc) {
        double last_dt = s.n > 1 ? s.a[s.n - 1] - s.a[s.n - 2] : 1.0;
        rc = wk_trace_from_capacity(what, s.a, s.b, s.n, s.a[s.n - 1] - s.a[0] + last_dt, tr, err);
    }
    samples_free(&s);
    return rc;
}

/* Guess the format from the first non-blank line. */
static wk_trace_format sniff(const char *text, size_t len) {
    size_t i = 0;
    while (i < len && isspace((unsigned char)text[i])) i++;
    size_t end = i;
    while (end < len && text[end] != '\n') end++;
    int has_alpha = 0, has_comma = 0, fields = 0, in_field = 0;
    for (size_t k = i; k < end; k++) {
        char c = text[k];
        if (isalpha((unsigned char)c) && c != 'e' && c != 'E') has_alpha = 1;
        if (c == ',') has_comma = 1;
        int space = isspace((unsigned char)c);
        if (!space && !in_field) fields++;
        in_field = !space;
    }
    if (has_alpha || has_comma) return WK_FMT_CSV;
    return fields >= 2 ? WK_FMT_PENSIEVE : WK_FMT_MAHIMAHI;
}

int wk_trace_parse(const char *text, size_t len, const char *what, const char *column, wk_trace_format fmt,
                   wk_trace *tr, wk_err *err) {
    memset(tr, 0, sizeof *tr);
    if (fmt == WK_FMT_AUTO) fmt = column ? WK_FMT_CSV : sniff(text, len);
    line_reader *r = calloc(1, sizeof *r);
    if (!r) return wk_err_set(err, WK_ENOMEM, "%s: out of memory", what);
    r->text = text;
    r->len = len;
    int rc;
    switch (fmt) {
    case WK_FMT_MAHIMAHI: rc = parse_mahimahi(r, what, tr, err); break;
    case WK_FMT_PENSIEVE: rc = parse_pensieve(r, what, tr, err); break;
    case WK_FMT_CSV: rc = parse_csv(r, what, column, tr, err); break;
    default: rc = wk_err_set(err, WK_EINVAL, "%s: unknown trace format", what);
    }
    free(r);
    return rc;
}

int wk_trace_load(const char *spec, wk_trace_format fmt, wk_trace *tr, wk_err *err) {
    /* PATH#COLUMN selects a CSV throughput column */
    char path[4096];
    snprintf(path, sizeof path, "%s", spec);
    char *hash = strrchr(path, '#');
    const char *column = NULL;
    if (hash) { *hash = '\0'; column = hash + 1; }
    FILE *f = fopen(path, "rb");
    if (!f) return wk_err_set(err, WK_ENOTFOUND, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    int rc = 0;
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb) { free(buf); buf = NULL; }
        else buf = nb;
    }
    if (!buf) rc = wk_err_set(err, WK_ENOMEM, "%s: out of memory", path);
    else if (ferror(f)) rc = wk_err_set(err, WK_EIO, "%s: read error", path);
    fclose(f);
    if (!rc) rc = wk_trace_parse(buf, len, path, column, fmt, tr, err);
    if (!rc && column) {
        char name[256];
        snprintf(name, sizeof name, "%.200s#%.50s", tr->name, column);
        snprintf(tr->name, sizeof tr->name, "%s", name);
    }
    free(buf);
    return rc;
}

/* Capacity of one bin of width dt starting at a, Mbit/s. */
static double bin_mbps(const wk_trace *tr, double a, double dt) {
    return (wk_trace_bytes_before(tr, a + dt) - wk_trace_bytes_before(tr, a)) * 8.0 / 1e6 / dt;
}

static int write_samples(FILE *f, const wk_trace *tr, wk_trace_format fmt) {
    if (fmt == WK_FMT_CSV) fprintf(f, "time_s,mbps\n");
    const char *sep = fmt == WK_FMT_CSV ? "," : " ";
    if (tr->kind == WK_TRACE_CAPACITY) {
        /* exact unless the last segment differs in length from the one before it */
        for (size_t i = 0; i < tr->n; i++)
            fprintf(f, "%.9g%s%.9g\n", tr->t_s[i], sep, tr->rate_Bps[i] * 8.0 / 1e6);
        return 0;
    }
    const double dt = 0.1; /* opportunities become 100 ms capacity bins */
    size_t bins = (size_t)ceil(tr->period_s / dt - 1e-9);
    for (size_t b = 0; b < bins; b++) fprintf(f, "%.9g%s%.9g\n", (double)b * dt, sep, bin_mbps(tr, (double)b * dt, dt));
    return 0;
}

static void write_mahimahi(FILE *f, const wk_trace *tr) {
    if (tr->kind == WK_TRACE_OPPORTUNITIES) {
        for (size_t i = 0; i < tr->n; i++) fprintf(f, "%.0f\n", tr->t_s[i] * 1000.0);
        return;
    }
    /* one line per 1500 bytes, at the millisecond the capacity process completes that packet */
    double packets = floor(tr->cum_bytes[tr->n] / WK_MAHIMAHI_PACKET_BYTES);
    long long last_ms = 0;
    for (double k = 1; k <= packets; k++) {
        double t = wk_trace_time_to_deliver(tr, 0, k * WK_MAHIMAHI_PACKET_BYTES);
        last_ms = (long long)ceil(t * 1000.0 - 1e-6);
        fprintf(f, "%lld\n", last_ms);
    }
    long long period_ms = (long long)llround(tr->period_s * 1000.0);
    if (last_ms < period_ms) fprintf(f, "%lld\n", period_ms); /* keeps the loop period */
}

int wk_trace_save(const wk_trace *tr, const char *path, wk_trace_format fmt, wk_err *err) {
    if (fmt == WK_FMT_AUTO) fmt = tr->kind == WK_TRACE_OPPORTUNITIES ? WK_FMT_MAHIMAHI : WK_FMT_PENSIEVE;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return wk_err_set(err, WK_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    if (fmt == WK_FMT_MAHIMAHI) write_mahimahi(f, tr);
    else write_samples(f, tr, fmt);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        remove(tmp);
        return wk_err_set(err, WK_EIO, "%s: write failed (disk full?)", tmp);
    }
    if (rename(tmp, path) != 0) {
        remove(tmp);
        return wk_err_set(err, WK_EIO, "%s: cannot rename into place: %s", path, strerror(errno));
    }
    return 0;
}
