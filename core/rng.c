/* xoshiro256** (Blackman and Vigna) with splitmix64 seeding; normal and exponential draws. */
#include "core/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void wk_rng_seed(wk_rng *rng, uint64_t seed) {
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
    rng->spare = 0;
    rng->has_spare = 0;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t wk_rng_next(wk_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double wk_rng_uniform(wk_rng *rng) { return (double)(wk_rng_next(rng) >> 11) * 0x1.0p-53; }

uint64_t wk_rng_below(wk_rng *rng, uint64_t n) {
    /* reject the top partial bucket so every residue is equally likely */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do v = wk_rng_next(rng);
    while (v >= limit);
    return v % n;
}

double wk_rng_normal(wk_rng *rng) {
    double u1 = 1.0 - wk_rng_uniform(rng); /* (0, 1]: log stays finite */
    double u2 = wk_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double wk_rng_normal_polar(wk_rng *rng) {
    if (rng->has_spare) {
        rng->has_spare = 0;
        return rng->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * wk_rng_uniform(rng) - 1.0;
        v = 2.0 * wk_rng_uniform(rng) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double f = sqrt(-2.0 * log(s) / s);
    rng->spare = v * f;
    rng->has_spare = 1;
    return u * f;
}

double wk_rng_exponential(wk_rng *rng, double mean) { return -mean * log(1.0 - wk_rng_uniform(rng)); }
