/* sampler.c — token sampling (see sampler.h). Filters apply in the usual
 * order: temperature, top-k, softmax, min-p, top-p, then a draw from a
 * splitmix64 stream seeded per request. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>

sampler_params sampler_defaults(void) {
    sampler_params p = {.temperature = 1.0f, .top_p = 1.0f, .min_p = 0.05f, .top_k = 0, .seed = 0};
    return p;
}

int sampler_init(sampler *s, const sampler_params *p, int n_vocab) {
    s->p = *p;
    s->rng = p->seed ^ 0x9e3779b97f4a7c15ull;
    s->n_vocab = n_vocab;
    s->prob = malloc((size_t)n_vocab * sizeof(float));
    s->cand = malloc((size_t)n_vocab * sizeof(*s->cand));
    if (!s->prob || !s->cand) {
        sampler_free(s);
        return -1;
    }
    return 0;
}

void sampler_free(sampler *s) {
    free(s->prob);
    free(s->cand);
    s->prob = NULL;
    s->cand = NULL;
}

int32_t sampler_argmax(const float *logits, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++) if (logits[i] > logits[best]) best = i;
    return best;
}

static double next_unit(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* Most probable first; lower id first on ties, so sampling is reproducible. */
static int cmp_desc(const void *a, const void *b) {
    const struct sampler_cand *x = a, *y = b;
    if (x->p > y->p) return -1;
    if (x->p < y->p) return 1;
    return (x->id > y->id) - (x->id < y->id);
}

int32_t sampler_sample(sampler *s, const float *logits, float *p_out) {
    const int n = s->n_vocab;
    if (s->p.temperature <= 0.0f) {
        const int32_t t = sampler_argmax(logits, n);
        if (p_out) *p_out = 1.0f;
        return t;
    }
    const float mx = logits[sampler_argmax(logits, n)];
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        s->prob[i] = expf((logits[i] - mx) / s->p.temperature);
        sum += s->prob[i];
    }
    int m = 0;
    const float top = 1.0f / (float)sum;   /* probability of the arg-max token */
    for (int i = 0; i < n; i++) {
        s->prob[i] = (float)(s->prob[i] / sum);
        if (s->p.min_p > 0.0f && s->prob[i] < s->p.min_p * top) continue;
        s->cand[m].p = s->prob[i];
        s->cand[m++].id = i;
    }
    qsort(s->cand, (size_t)m, sizeof(*s->cand), cmp_desc);
    if (s->p.top_k > 0 && m > s->p.top_k) m = s->p.top_k;
    double mass = 0.0;
    int keep = m;
    if (s->p.top_p < 1.0f) {
        for (int i = 0; i < m; i++) {
            mass += s->cand[i].p;
            if (mass >= s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    double total = 0.0;
    for (int i = 0; i < keep; i++) total += s->cand[i].p;
    double r = next_unit(&s->rng) * total;
    int32_t pick = s->cand[keep - 1].id;
    for (int i = 0; i < keep; i++) {
        r -= s->cand[i].p;
        if (r <= 0.0) {
            pick = s->cand[i].id;
            break;
        }
    }
    if (p_out) *p_out = (float)(s->prob[pick] / total);
    return pick;
}
