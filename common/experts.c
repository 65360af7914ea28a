/* experts.c — routed-expert computation (see experts.h).
 *
 * Shared by the coordinator (local/cached/disk experts) and flashpool-node so
 * that one (token, expert) output has the same bits wherever it is computed:
 * every output element is one dot product computed by one thread, the dots
 * themselves are ISA-independent (quant.h determinism contract), and the
 * SwiGLU/Q8_K steps are plain scalar code. */
#include "experts.h"

#include <math.h>
#include <stdatomic.h>
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

/* Work is cut into (group, row chunk) units handed out from a shared
 * counter: a thread slowed by a neighbour process does not hold the other
 * back. A group is the items sharing one expert's matrices (a prefill batch
 * routes many tokens to the same expert), so each weight row is decoded
 * from memory once and dotted with every token of the group while it is in
 * cache. Each output element is still one dot on one thread. */
typedef struct {
    const expert_shape *s;
    const block_q8_K *xq;       /* [n_tokens][n_embd/256] */
    const expert_work *items;
    const expert_slabs *slabs;
    int n_items;
    kdot_fn dot_gate, dot_up, dot_down;
    const int *order;           /* item indices grouped by matrices */
    const int *gstart;          /* group g is order[gstart[g] .. gstart[g+1]) */
    int n_groups;
    int64_t chunk_mid, chunk_down; /* rows per unit */
    int64_t units_mid, units_down;
    atomic_llong next;
    float *mid;                 /* [n_items][n_ff] */
    block_q8_K *midq;           /* [n_items][n_ff/256] */
    float *out;                 /* [n_items][n_embd] */
} experts_ctx;

/* Phase 1: gate/up rows of every item, clamp, SwiGLU, route weight. */
static void phase_mid(void *vctx, int ith, int nth) {
    (void)ith;
    (void)nth;
    experts_ctx *c = vctx;
    const expert_shape *s = c->s;
    const size_t gate_row = qtype_row_bytes(s->type_gate, s->n_embd);
    const size_t up_row = qtype_row_bytes(s->type_up, s->n_embd);
    const int64_t per_group = (s->n_ff + c->chunk_mid - 1) / c->chunk_mid;
    const int nb = s->n_embd / QK_K;
    for (;;) {
        const int64_t u = atomic_fetch_add_explicit(&c->next, 1, memory_order_relaxed);
        if (u >= c->units_mid) return;
        const int g = (int)(u / per_group);
        const int64_t r0 = (u - (int64_t)g * per_group) * c->chunk_mid;
        const int64_t r1 = r0 + c->chunk_mid < s->n_ff ? r0 + c->chunk_mid : s->n_ff;
        const expert_slabs *sl = &c->slabs[c->order[c->gstart[g]]];
        for (int64_t row = r0; row < r1; row++) {
            const void *gw = (const uint8_t *)sl->gate + row * gate_row;
            const void *uw = (const uint8_t *)sl->up + row * up_row;
            for (int k = c->gstart[g]; k < c->gstart[g + 1]; k++) {
                const int it = c->order[k];
                const block_q8_K *x = c->xq + (size_t)c->items[it].token * nb;
                float gv = c->dot_gate(gw, x, s->n_embd);
                float uv = c->dot_up(uw, x, s->n_embd);
                if (s->clamp > 1.0e-6f) {
                    if (gv > s->clamp) gv = s->clamp;
                    if (uv > s->clamp) uv = s->clamp;
                    if (uv < -s->clamp) uv = -s->clamp;
                }
                c->mid[(size_t)it * s->n_ff + row] = gv * sigmoid_f(gv) * uv * c->items[it].weight;
            }
        }
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
    (void)ith;
    (void)nth;
    experts_ctx *c = vctx;
    const expert_shape *s = c->s;
    const size_t down_row = qtype_row_bytes(s->type_down, s->n_ff);
    const int64_t per_group = (s->n_embd + c->chunk_down - 1) / c->chunk_down;
    const int nbf = s->n_ff / QK_K;
    for (;;) {
        const int64_t u = atomic_fetch_add_explicit(&c->next, 1, memory_order_relaxed);
        if (u >= c->units_down) return;
        const int g = (int)(u / per_group);
        const int64_t r0 = (u - (int64_t)g * per_group) * c->chunk_down;
        const int64_t r1 = r0 + c->chunk_down < s->n_embd ? r0 + c->chunk_down : s->n_embd;
        const expert_slabs *sl = &c->slabs[c->order[c->gstart[g]]];
        for (int64_t row = r0; row < r1; row++) {
            const void *dw = (const uint8_t *)sl->down + row * down_row;
            for (int k = c->gstart[g]; k < c->gstart[g + 1]; k++) {
                const int it = c->order[k];
                c->out[(size_t)it * s->n_embd + row] = c->dot_down(dw, c->midq + (size_t)it * nbf, s->n_ff);
            }
        }
    }
}

static void run(threadpool *tp, threadpool_fn fn, void *ctx) {
    if (tp && threadpool_size(tp) > 1) threadpool_run(tp, fn, ctx);
    else fn(ctx, 0, 1);
}

/* Rows per work unit: about `bytes` of weights, at least ~4 units per thread. */
static int64_t unit_rows(int64_t rows, size_t row_bytes, size_t bytes, int64_t n_units_min) {
    int64_t r = (int64_t)(bytes / (row_bytes ? row_bytes : 1));
    const int64_t fair = rows / (n_units_min > 0 ? n_units_min : 1);
    if (r > fair) r = fair;
    return r < 1 ? 1 : r;
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
    int *order = malloc((size_t)n_items * sizeof(int)), *gstart = malloc(((size_t)n_items + 1) * sizeof(int));
    if (!c.mid || !c.midq || !order || !gstart) {
        free(c.mid);
        free(c.midq);
        free(order);
        free(gstart);
        return -1;
    }
    /* Group items by matrices, first appearance order (O(n * groups); n is a
     * batch's tokens times experts used, groups at most the layer's experts). */
    int n_groups = 0, placed = 0;
    unsigned char *done = calloc((size_t)n_items, 1);
    if (!done) {
        free(c.mid);
        free(c.midq);
        free(order);
        free(gstart);
        return -1;
    }
    for (int i = 0; i < n_items; i++) {
        if (done[i]) continue;
        gstart[n_groups++] = placed;
        for (int k = i; k < n_items; k++)
            if (!done[k] && slabs[k].gate == slabs[i].gate && slabs[k].up == slabs[i].up &&
                slabs[k].down == slabs[i].down) {
                done[k] = 1;
                order[placed++] = k;
            }
    }
    gstart[n_groups] = placed;
    free(done);
    c.order = order;
    c.gstart = gstart;
    c.n_groups = n_groups;
    const int nth = tp ? threadpool_size(tp) : 1;
    const int64_t want = (int64_t)nth * 4;
    const int64_t gmin = (want + n_groups - 1) / n_groups;
    c.chunk_mid = unit_rows(s->n_ff, qtype_row_bytes(s->type_gate, s->n_embd) + qtype_row_bytes(s->type_up, s->n_embd),
                            64u << 10, gmin);
    c.chunk_down = unit_rows(s->n_embd, qtype_row_bytes(s->type_down, s->n_ff), 64u << 10, gmin);
    c.units_mid = (int64_t)n_groups * ((s->n_ff + c.chunk_mid - 1) / c.chunk_mid);
    c.units_down = (int64_t)n_groups * ((s->n_embd + c.chunk_down - 1) / c.chunk_down);
    atomic_init(&c.next, 0);
    run(tp, phase_mid, &c);
    run(tp, phase_quant, &c);
    atomic_store(&c.next, 0);
    run(tp, phase_down, &c);
    free(c.mid);
    free(c.midq);
    free(order);
    free(gstart);
    return 0;
}
