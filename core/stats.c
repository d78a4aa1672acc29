/* Percentiles and sorting. */
#include "core/stats.h"

#include <math.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void wk_sort_doubles(double *v, size_t n) { qsort(v, n, sizeof *v, cmp_double); }

double wk_percentile_sorted(const double *v, size_t n, double q) {
    if (n == 1) return v[0];
    double pos = q * (double)(n - 1);
    size_t i = (size_t)floor(pos);
    if (i + 1 >= n) return v[n - 1];
    return v[i] + (pos - (double)i) * (v[i + 1] - v[i]);
}
