/* Small statistics helpers shared by trace stats, summaries and benches. */
#ifndef WIKV_CORE_STATS_H
#define WIKV_CORE_STATS_H

#include <stddef.h>

/* Percentile q in [0,1] of sorted v[0..n), linear interpolation between closest ranks (numpy's
 * default). n must be > 0. */
double wk_percentile_sorted(const double *v, size_t n, double q);
/* Sorts v ascending in place. */
void wk_sort_doubles(double *v, size_t n);

#endif
