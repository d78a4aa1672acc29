/* Quality tables: TSV parsing and interpolation. */
#include "sim/quality.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model_spec.h"

static int parse_row(char *line, const char *path, int line_no, wk_quality_table *t, wk_err *err) {
    char fam[32];
    double c, a, f;
    char extra;
    if (sscanf(line, "%31s %lf %lf %lf %c", fam, &c, &a, &f, &extra) != 4)
        return wk_err_set(err, WK_EFORMAT, "%s:%d: expected: family coverage accept f1_rel", path, line_no);
    if (c < 0 || c > 1 || a < 0 || a > 1 || f < 0 || f > 1.5)
        return wk_err_set(err, WK_EFORMAT, "%s:%d: coverage and accept must be in [0,1], f1_rel in [0,1.5]", path,
                          line_no);
    if (t->n == WK_QUALITY_MAX_ROWS) return wk_err_set(err, WK_EFORMAT, "%s:%d: more than %d rows", path, line_no,
                                                       WK_QUALITY_MAX_ROWS);
    wk_quality_row *r = &t->rows[t->n];
    if (t->n > 0 && strcmp(t->rows[t->n - 1].family, fam) == 0 && !(c > t->rows[t->n - 1].coverage))
        return wk_err_set(err, WK_EFORMAT, "%s:%d: coverage must increase within a family", path, line_no);
    snprintf(r->family, sizeof r->family, "%s", fam);
    r->coverage = c;
    r->accept = a;
    r->f1_rel = f;
    t->n++;
    return 0;
}

int wk_quality_load(const char *path, wk_quality_table *t, wk_err *err) {
    FILE *f = fopen(path, "r");
    if (!f) return wk_err_set(err, WK_ENOTFOUND, "%s: cannot open: %s", path, strerror(errno));
    memset(t, 0, sizeof *t);
    char line[512];
    int line_no = 0, rc = 0, header = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        line_no++;
        if (line[0] == '#') {
            char *src = strstr(line, "source=");
            if (src && !t->source[0]) sscanf(src + 7, "%15[a-z]", t->source);
            continue;
        }
        if (strspn(line, " \t\r\n") == strlen(line)) continue;
        if (!header) {
            header = 1;
            if (strncmp(line, "family", 6) != 0)
                rc = wk_err_set(err, WK_EFORMAT, "%s:%d: expected the header `family coverage accept f1_rel`", path,
                                line_no);
            continue;
        }
        rc = parse_row(line, path, line_no, t, err);
    }
    fclose(f);
    if (!rc && strcmp(t->source, "measured") != 0 && strcmp(t->source, "assumed") != 0)
        rc = wk_err_set(err, WK_EFORMAT, "%s: first comment must say source=measured or source=assumed", path);
    if (!rc && t->n == 0) rc = wk_err_set(err, WK_EFORMAT, "%s: no rows", path);
    return rc;
}

int wk_quality_save(const char *path, const wk_quality_table *t, const char *provenance, wk_err *err) {
    FILE *f = fopen(path, "w");
    if (!f) return wk_err_set(err, WK_EIO, "%s: cannot create: %s", path, strerror(errno));
    fprintf(f, "# source=%s\n", t->source);
    for (const char *s = provenance; s && *s;) {
        size_t k = strcspn(s, "\n");
        fprintf(f, "# %.*s\n", (int)k, s);
        s += k + (s[k] == '\n');
    }
    fputs("family\tcoverage\taccept\tf1_rel\n", f);
    for (size_t i = 0; i < t->n; i++)
        fprintf(f, "%s\t%.4f\t%.4f\t%.4f\n", t->rows[i].family, t->rows[i].coverage, t->rows[i].accept, t->rows[i].f1_rel);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return wk_err_set(err, WK_EIO, "%s: write failed", path);
    return 0;
}

int wk_quality_load_default(wk_quality_table *t, wk_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/models/quality/assumed.tsv", wk_data_dir());
    return wk_quality_load(path, t, err);
}

static int lookup_family(const wk_quality_table *t, const char *family, double c, double *accept, double *f1) {
    const wk_quality_row *prev = NULL;
    for (size_t i = 0; i < t->n; i++) {
        const wk_quality_row *r = &t->rows[i];
        if (strcmp(r->family, family) != 0) continue;
        if (c <= r->coverage) {
            if (!prev) { *accept = r->accept; *f1 = r->f1_rel; return 0; }
            double w = (c - prev->coverage) / (r->coverage - prev->coverage);
            *accept = prev->accept + w * (r->accept - prev->accept);
            *f1 = prev->f1_rel + w * (r->f1_rel - prev->f1_rel);
            return 0;
        }
        prev = r;
    }
    if (!prev) return -1;
    *accept = prev->accept;
    *f1 = prev->f1_rel;
    return 0;
}

int wk_quality_lookup(const wk_quality_table *t, const char *family, double coverage, double *accept, double *f1_rel) {
    if (lookup_family(t, family, coverage, accept, f1_rel) == 0) return 0;
    /* a local prefill computes the exact cache: it answers as full KV does */
    if (strcmp(family, "prefill") == 0 && lookup_family(t, "full", coverage, accept, f1_rel) == 0) return 0;
    return lookup_family(t, "default", coverage, accept, f1_rel);
}

double wk_quality_draw(uint64_t seed) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}
