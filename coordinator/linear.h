/* linear.h — dense projections of the coordinator (Q8_0 and F16 weights),
 * for one token or a batch of tokens, threaded over output rows.
 *
 * Q8_0: each input row is quantised to Q8_0 activations (f32 scale,
 * round-half-even) exactly as the reference does, then integer block dots.
 * F16: f32 activations, f32 accumulation. Every output element is one dot
 * computed by one thread, so batch size and thread count never change bits:
 * prefill and decode give identical per-token projections. */
#ifndef FP_LINEAR_H
#define FP_LINEAR_H

#include "model.h"
#include "quant.h"
#include "threadpool.h"

typedef struct linear_ctx {
    threadpool *tp;
    const quant_kernels *k;
} linear_ctx;

/* Y[t][0..rows) = W[rows0 .. rows0+rows) · X[t] for t < n_tok.
 * X rows have stride x_stride floats, Y rows y_stride floats.
 * W is a 2-D tensor view (ne0 = input width). */
void linear_rows(const linear_ctx *lc, const tensor_view *w, int64_t row0, int64_t rows,
                 const float *x, int64_t x_stride, float *y, int64_t y_stride, int n_tok);

/* One projection of a fused group: rows [row0, row0+rows) of w applied to
 * n_tok input rows. Q8_0 weights take x (quantised here; tasks with the same
 * x, stride and width share one quantisation) or an already quantised xq. */
typedef struct linear_task {
    const tensor_view *w;
    int64_t row0, rows;
    const float *x;
    int64_t x_stride;
    const block_q8_0a *xq;   /* optional, Q8_0 weights only */
    float *y;
    int64_t y_stride;
} linear_task;

/* Runs every task in one pass over the thread pool (one wake-up instead of
 * one per projection). Same bits as running them one by one. */
void linear_multi(const linear_ctx *lc, const linear_task *tasks, int n_tasks, int n_tok);

/* Convenience: all rows, one token. */
void linear(const linear_ctx *lc, const tensor_view *w, const float *x, float *y);

/* Same with an input already quantised to Q8_0 activations (n_tok rows of
 * ne0/32 blocks), so one quantisation can feed several projections. */
void linear_q8_0_prequant(const linear_ctx *lc, const tensor_view *w, int64_t row0, int64_t rows,
                          const block_q8_0a *xq, float *y, int64_t y_stride, int n_tok);

#endif
