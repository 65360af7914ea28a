/* expert_exec.h — the seam where routed-expert work leaves the dense path.
 *
 * The engine, per layer, quantises each token's FFN input to Q8_K once,
 * builds the list of (token, expert, weight) items in router slot order, and
 * hands them to an executor: submit() starts the work (a pool sends
 * DISPATCH frames, a local executor may compute right away), the engine then
 * computes the shared expert, and wait() returns when out[] holds every
 * item's n_embd-wide output. The engine sums the outputs itself in slot
 * order, so the result is the same bits whichever executor ran them.
 *
 * Executors: the local one (expert_exec_local.c: experts from the model's
 * own mapping) and the pool (coordinator/pool*.c: expert nodes, hot-expert
 * cache, disk fallback). */
#ifndef FP_EXPERT_EXEC_H
#define FP_EXPERT_EXEC_H

#include "experts.h"

typedef struct expert_exec {
    void *ud;
    /* xq: n_tokens rows of n_embd/256 Q8_K blocks (valid until wait returns).
     * out: n_items × n_embd floats. Return 0, or -1 with err filled. */
    int (*submit)(void *ud, int layer, int n_tokens, const block_q8_K *xq,
                  int n_items, const expert_work *items, float *out,
                  char *err, size_t errlen);
    int (*wait)(void *ud, char *err, size_t errlen);
} expert_exec;

#endif
