/* Next-token choice from a logits row: greedy (temperature 0) or temperature sampling with optional
 * top-p, from a seeded generator held in the sampler (no global state, reproducible by seed). */
#ifndef WIKV_EXEC_SAMPLER_H
#define WIKV_EXEC_SAMPLER_H

#include <stdint.h>

typedef struct wk_prob_index {
    float p;
    int i;
} wk_prob_index;

typedef struct wk_sampler {
    float temperature; /* 0 = greedy */
    float top_p;       /* 0 or >= 1 = off */
    uint64_t rng;      /* xorshift64* state, never 0 */
    float *probs;      /* scratch [vocab] (allocated by init) */
    wk_prob_index *order; /* scratch [vocab] for top-p */
    int vocab;
} wk_sampler;

int wk_sampler_init(wk_sampler *s, int vocab, float temperature, float top_p, uint64_t seed);
void wk_sampler_free(wk_sampler *s);
/* Index of the largest logit (lowest index on ties). */
int wk_sampler_argmax(const float *logits, int n);
int wk_sampler_sample(wk_sampler *s, const float *logits);

#endif
