/* Quality tables: what the simulator knows about answers produced on partial KV.
 *
 * A table maps, per policy family, the importance coverage c at a decode step (attention mass of the
 * KV usable on the device / that of the full KV, in [0, 1]) to
 *   accept(c): probability that the step passes the confidence test (paced decoding), and
 *   f1_rel(c): F1 of the answer relative to full-KV decoding.
 * Rows are linearly interpolated in c and clamped at the ends. Each request draws one uniform number
 * u from its seed; its step passes iff u < accept(c), so a request's outcome is monotone in c and the
 * whole simulation stays deterministic.
 *
 * File format (TSV, '#' comments): a header line `family  coverage  accept  f1_rel`, then rows.
 * The first comment line must say `source=measured` or `source=assumed`: measured tables come from
 * the real engine (`wikv quality measure`, exec/quality_measure.h); the bundled
 * models/quality/assumed.tsv is an assumption, and sim rows report no F1 from it. */
#ifndef WIKV_SIM_QUALITY_H
#define WIKV_SIM_QUALITY_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define WK_QUALITY_MAX_ROWS 256

typedef struct wk_quality_row {
    char family[32];
    double coverage, accept, f1_rel;
} wk_quality_row;

typedef struct wk_quality_table {
    char source[16];            /* "measured" or "assumed" */
    wk_quality_row rows[WK_QUALITY_MAX_ROWS];
    size_t n;
} wk_quality_table;

int wk_quality_load(const char *path, wk_quality_table *t, wk_err *err);
/* The bundled default (models/quality/assumed.tsv). */
int wk_quality_load_default(wk_quality_table *t, wk_err *err);
/* Writes t as a table file: `# source=SOURCE`, then `provenance` (lines, each written as a comment),
 * the header and the rows (wk_quality_load reads it back). */
int wk_quality_save(const char *path, const wk_quality_table *t, const char *provenance, wk_err *err);
/* Interpolated values for a family (prefill falls back to "full", since a local prefill computes the exact
 * cache; then any family to "default"); returns -1 if none exists. */
int wk_quality_lookup(const wk_quality_table *t, const char *family, double coverage, double *accept, double *f1_rel);
/* Uniform number in [0, 1) for a request seed (splitmix64). */
double wk_quality_draw(uint64_t seed);

#endif
