/* forward.h — the DeepSeek V4 Flash forward pass on the coordinator.
 *
 * forward_tokens() runs n tokens at positions pos0.. through every layer,
 * layer-major (all tokens of the batch through layer L before layer L+1):
 * projections are batched, the attention/compressor/indexer recurrence runs
 * token by token in order, and routed experts go through an expert_exec (the
 * pool seam). Decode is the n = 1 case, so prefill and decode produce the
 * same bits for the same token. */
#ifndef FP_FORWARD_H
#define FP_FORWARD_H

#include <stdint.h>
#include "expert_exec.h"
#include "kv_state.h"
#include "linear.h"
#include "model.h"

/* Optional taps for debugging and the reference-vector tests. */
typedef struct fwd_observer {
    void *ud;
    /* stage 0 = embedding, 1+2L = after layer L attention, 2+2L = after layer L FFN */
    void (*on_hc)(void *ud, int64_t pos, int stage, const float *H);
    /* output head inputs: HC-collapsed vector and its RMSNorm (what the vocab projection reads) */
    void (*on_final)(void *ud, int64_t pos, const float *collapsed, const float *normed);
    void (*on_route)(void *ud, int64_t pos, int layer, const int32_t *experts, const float *weights, int n);
    /* ratio-4 layers: n_comp rows exist, rows[] (ascending) are visible */
    void (*on_indexer)(void *ud, int64_t pos, int layer, int n_comp, const int32_t *rows, int n_rows);
} fwd_observer;

typedef struct engine {
    const model *m;
    linear_ctx lc;            /* thread pool + kernels */
    expert_exec exec;         /* where routed experts run */
} engine;

/* logits_out: NULL, or n_vocab floats for the last token, or (all_logits)
 * n × n_vocab floats for every token. Returns 0, or -1 with err filled
 * (bad token id, context full, executor failure). */
int forward_tokens(const engine *e, kv_state *kv, int64_t pos0, const int32_t *tokens, int n,
                   float *logits_out, int all_logits, const fwd_observer *obs,
                   char *err, size_t errlen);

#endif
