/* The project's random numbers: xoshiro256** seeded through splitmix64, with explicit state passed
 * to every call (no global state), so that generated traces, tasks and synthetic tensors are the
 * same on every platform for a given seed. */
#ifndef WIKV_CORE_RNG_H
#define WIKV_CORE_RNG_H

#include <stdint.h>

typedef struct wk_rng {
    uint64_t s[4];
    double spare;    /* wk_rng_normal_polar's second value */
    int has_spare;
} wk_rng;

void wk_rng_seed(wk_rng *rng, uint64_t seed);
uint64_t wk_rng_next(wk_rng *rng);
double wk_rng_uniform(wk_rng *rng);                   /* [0, 1), 53 random bits */
uint64_t wk_rng_below(wk_rng *rng, uint64_t n);      /* uniform in [0, n) without modulo bias; n > 0 */
double wk_rng_normal(wk_rng *rng);                    /* standard normal, Box-Muller, one value per call */
double wk_rng_normal_polar(wk_rng *rng);              /* standard normal, Marsaglia's polar method */
double wk_rng_exponential(wk_rng *rng, double mean);

#endif
