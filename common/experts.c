/* experts.c — routed-expert computation (see experts.h).
 *
 * Shared by the coordinator (local/cached/disk experts) and flashpool-node so
 * that one (token, expert) output has the same bits wherever it is computed:
 * every output element is one dot product computed by one thread, the dots
 * themselves are ISA-independent (quant.h determinism contract), and the
 * SwiGLU/Q8_K steps are plain scalar code. */
#include "experts.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t expert_gate_bytes(const expert_shape *s) {
    return qtype_row_bytes(s->type_gate, s->n_embd) * (size_t)s->n_ff;
}

size_t expert_down_bytes(const expert_shape *s) {
    return qtype_row_bytes(s->type_down, s->n_ff) * (size_t)s->n_embd;
}

/* Same piecewise form as the reference: never overflows expf. */
static float sigmoid_f(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

typedef float (*kdot_fn)(const void *w, const block_q8_K *x, int64_t n);

static kdot_fn pick_dot(const quant_kernels *k, int type) {
    switch (type) {
    case QT_IQ2_XXS: return (kdot_fn)k->dot_iq2_xxs;
    case QT_Q2_K: return (kdot_fn)k->dot_q2_K;
    case QT_Q4_K: return (kdot_fn)k->dot_q4_K;
    default: return NULL;
    }
}

typedef struct {
    const expert_shape *s;
    const block_q8_K *xq;       /* [n_tokens][n_embd/256] */
    const expert_work *items;
    const expert_slabs *slabs;
    int n_items;
    kdot_fn dot_gate, dot_up, dot_down;
    float *mid;                 /* [n_items][n_ff] */
    block_q8_K *midq;           /* [n_items][n_ff/256] */
    float *out;                 /* [n_items][n_embd] */
} experts_ctx;

/* Phase 1: gate/up rows of every item, clamp, SwiGLU, route weight. */
static void phase_mid(void *vctx, int ith, int nth) {
    experts_ctx *c = vctx;
    const expert_shape *s = c->s;
    const size_t gate_row = qtype_row_bytes(s->type_gate, s->n_embd);
    const size_t up_row = qtype_row_bytes(s->type_up, s->n_embd);
    const int64_t total = (int64_t)c->n_items * s->n_ff;
    const int64_t r0 = total * ith / nth, r1 = total * (ith + 1) / nth;
    const int nb = s->n_embd / QK_K;
    for (int64_t idx = r0; idx < r1; idx++) {
        const int it = (int)(idx / s->n_ff);
        const int64_t row = idx - (int64_t)it * s->n_ff;
        const block_q8_K *x = c->xq + (size_t)c->items[it].token * nb;
        float g = c->dot_gate((const uint8_t *)c->slabs[it].gate + row * gate_row, x, s->n_embd);
        float u = c->dot_up((const uint8_t *)c->slabs[it].up + row * up_row, x, s->n_embd);
        if (s->clamp > 1.0e-6f) {
            if (g > s->clamp) g = s->clamp;
            if (u > s->clamp) u = s->clamp;
            if (u < -s->clamp) u = -s->clamp;
        }
        c->mid[idx] = g * sigmoid_f(g) * u * c->items[it].weight;
    }
}

/* Phase 2: each item's mid quantised to Q8_K (one item per thread slice). */
static void phase_quant(void *vctx, int ith, int nth) {
    experts_ctx *c = vctx;
    const int nbf = c->s->n_ff / QK_K;
    for (int it = ith; it < c->n_items; it += nth)
        quantize_row_q8_K(c->mid + (size_t)it * c->s->n_ff, c->midq + (size_t)it * nbf, c->s->n_ff);
}

/* Phase 3: down projection rows of every item. */
static void phase_down(void *vctx, int ith, int nth) {
    experts_ctx *c = vctx;
    const expert_shape *s = c->s;
    const size_t down_row = qtype_row_bytes(s->type_down, s->n_ff);
    const int64_t total = (int64_t)c->n_items * s->n_embd;
    const int64_t r0 = total * ith / nth, r1 = total * (ith + 1) / nth;
    const int nbf = s->n_ff / QK_K;
    for (int64_t idx = r0; idx < r1; idx++) {
        const int it = (int)(idx / s->n_embd);
        const int64_t row = idx - (int64_t)it * s->n_embd;
        c->out[idx] = c->dot_down((const uint8_t *)c->slabs[it].down + row * down_row,
                                  c->midq + (size_t)it * nbf, s->n_ff);
    }
}

static void run(threadpool *tp, threadpool_fn fn, void *ctx) {
    if (tp) threadpool_run(tp, fn, ctx);
    else fn(ctx, 0, 1);
}

int experts_compute(threadpool *tp, const quant_kernels *k, const expert_shape *s,
                    const block_q8_K *xq, int n_items, const expert_work *items,
                    const expert_slabs *slabs, float *out) {
    if (n_items <= 0) return 0;
    if (s->n_embd % QK_K || s->n_ff % QK_K) return -1;
    experts_ctx c = {
        .s = s, .xq = xq, .items = items, .slabs = slabs, .n_items = n_items,
        .dot_gate = pick_dot(k, s->type_gate), .dot_up = pick_dot(k, s->type_up),
        .dot_down = pick_dot(k, s->type_down), .out = out,
    };
    if (!c.dot_gate || !c.dot_up || !c.dot_down) return -1;
    c.mid = malloc((size_t)n_items * s->n_ff * sizeof(float));
    c.midq = malloc((size_t)n_items * (s->n_ff / QK_K) * sizeof(block_q8_K));
    if (!c.mid || !c.midq) {
        free(c.mid);
        free(c.midq);
        return -1;
    }
    run(tp, phase_mid, &c);
    run(tp, phase_quant, &c);
    run(tp, phase_down, &c);
    free(c.mid);
    free(c.midq);
    return 0;
}
