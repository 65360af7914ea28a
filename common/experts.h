/* experts.h — routed-expert computation, shared by the coordinator and the
 * expert nodes so that an expert's output has the same bits wherever it runs.
 *
 * One (token, expert) item: gate = W_gate·x, up = W_up·x (x is the token's
 * FFN-normed activation, already quantised to Q8_K once per token),
 * mid = silu(min(gate, clamp)) · clamp(up, ±clamp) · weight, then mid is
 * quantised to Q8_K and out = W_down·mid (n_embd f32). model-spec 4.12/6.1. */
#ifndef FP_EXPERTS_H
#define FP_EXPERTS_H

#include <stdint.h>
#include "quant.h"
#include "threadpool.h"

/* Where one expert's three matrices live (a mapping, a cache copy, or a
 * node's RAM). Each pointer is the start of that expert's slab. */
typedef struct expert_slabs {
    const void *gate, *up, *down;
} expert_slabs;

typedef struct expert_shape {
    int n_embd;        /* input/output width (multiple of 256) */
    int n_ff;          /* hidden width (multiple of 256) */
    int type_gate;     /* enum qtype: IQ2_XXS, Q2_K or Q4_K */
    int type_up;
    int type_down;
    float clamp;       /* SwiGLU clamp (10); <= 1e-6 disables it */
} expert_shape;

/* One unit of routed work: token index into the activation batch, expert id,
 * routing weight (already normalised and scaled by 1.5). */
typedef struct expert_work {
    int32_t token;
    int32_t expert;
    float weight;
} expert_work;

/* Bytes of one expert's gate (or up) and down slab. */
size_t expert_gate_bytes(const expert_shape *s);
size_t expert_down_bytes(const expert_shape *s);

/* Compute n items. xq holds n_tokens rows of n_embd/256 Q8_K blocks; slabs[i]
 * are the matrices for items[i]; out[i*n_embd ...] receives item i's output.
 * Threaded over rows with tp (may be NULL); the result does not depend on the
 * thread count or on how items are split across calls. Returns 0, or -1 on
 * an unsupported type. */
int experts_compute(threadpool *tp, const quant_kernels *k, const expert_shape *s,
                    const block_q8_K *xq, int n_items, const expert_work *items,
                    const expert_slabs *slabs, float *out);

#endif
