/* Greedy / temperature / top-p sampling over one logits row. */
#include "exec/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int wk_sampler_init(wk_sampler *s, int vocab, float temperature, float top_p, uint64_t seed) {
    memset(s, 0, sizeof *s);
    if (vocab < 1 || !(temperature >= 0)) return -1;
    s->vocab = vocab;
    s->temperature = temperature;
    s->top_p = top_p;
    s->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
    s->probs = malloc((size_t)vocab * sizeof *s->probs);
    s->order = malloc((size_t)vocab * sizeof *s->order);
    if (!s->probs || !s->order) {
        wk_sampler_free(s);
        return -1;
    }
    return 0;
}

void wk_sampler_free(wk_sampler *s) {
    free(s->probs);
    free(s->order);
    s->probs = NULL;
    s->order = NULL;
}

int wk_sampler_argmax(const float *logits, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

/* Uniform in [0, 1) from xorshift64*. */
static float next_uniform(wk_sampler *s) {
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (float)((s->rng * 0x2545F4914F6CDD1Dull) >> 40) / 16777216.0f;
}


/* Descending probability, then ascending index (deterministic order). */
static int cmp_desc(const void *a, const void *b) {
    const wk_prob_index *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->i - y->i;
}

int wk_sampler_sample(wk_sampler *s, const float *logits) {
    if (s->temperature <= 0.0f) return wk_sampler_argmax(logits, s->vocab);
    int n = s->vocab;
    float mx = logits[wk_sampler_argmax(logits, n)];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        s->probs[i] = expf((logits[i] - mx) / s->temperature);
        sum += s->probs[i];
    }
    for (int i = 0; i < n; i++) s->probs[i] = (float)(s->probs[i] / sum);
    float r = next_uniform(s), cdf = 0;
    if (s->top_p > 0.0f && s->top_p < 1.0f) {
        /* top-p: keep the smallest prefix of descending probabilities whose mass reaches top_p. */
        for (int i = 0; i < n; i++) s->order[i] = (wk_prob_index){s->probs[i], i};
        qsort(s->order, (size_t)n, sizeof *s->order, cmp_desc);
        int m = n;
        float mass = 0;
        int keep = 0;
        while (keep < m && mass < s->top_p) mass += s->order[keep++].p;
        r *= mass;
        for (int i = 0; i < keep; i++) {
            cdf += s->order[i].p;
            if (r < cdf) return s->order[i].i;
        }
        return s->order[keep - 1].i;
    }
    for (int i = 0; i < n; i++) {
        cdf += s->probs[i];
        if (r < cdf) return i;
    }
    return n - 1;
}
