/* sampler.h — next-token choice from logits: greedy, temperature, top-k,
 * top-p, min-p, seeded. Defaults follow the reference (temperature 1,
 * top_p 1, min_p 0.05, top_k off). */
#ifndef FP_SAMPLER_H
#define FP_SAMPLER_H

#include <stdint.h>

typedef struct sampler_params {
    float temperature;   /* <= 0: greedy */
    float top_p;         /* 1: off */
    float min_p;         /* 0: off; relative to the top token's probability */
    int top_k;           /* 0: off */
    uint64_t seed;
} sampler_params;

sampler_params sampler_defaults(void);

typedef struct sampler {
    sampler_params p;
    uint64_t rng;
    int n_vocab;
    float *prob;         /* scratch [n_vocab] */
    struct sampler_cand { float p; int32_t id; } *cand;   /* scratch [n_vocab] */
} sampler;

int sampler_init(sampler *s, const sampler_params *p, int n_vocab);   /* 0 / -1 OOM */
void sampler_free(sampler *s);
int32_t sampler_argmax(const float *logits, int n);
/* Picks a token; writes its probability under the sampling distribution to *p_out if non-NULL. */
int32_t sampler_sample(sampler *s, const float *logits, float *p_out);

#endif
