/* linear.c — threaded dense projections (see linear.h). Rows are split into
 * contiguous ranges per thread; for a batch, each weight row is read once
 * and dotted with every token while it is in cache. */
#include "linear.h"

#include <stdlib.h>

typedef struct {
    const linear_ctx *lc;
    const tensor_view *w;
    int64_t row0, rows;
    const float *x;
    int64_t x_stride;
    const block_q8_0a *xq;
    float *y;
    int64_t y_stride;
    int n_tok;
} lin_job;

static void lin_worker(void *vctx, int ith, int nth) {
    const lin_job *j = vctx;
    const int64_t n = j->w->ne0;
    const int64_t r0 = j->rows * ith / nth, r1 = j->rows * (ith + 1) / nth;
    const quant_kernels *k = j->lc->k;
    if (j->w->type == QT_Q8_0) {
        const size_t rb = qtype_row_bytes(QT_Q8_0, n);
        const int64_t nb = n / QK8_0;
        for (int64_t r = r0; r < r1; r++) {
            const block_q8_0 *row = (const block_q8_0 *)((const uint8_t *)j->w->data + (size_t)(j->row0 + r) * rb);
            for (int t = 0; t < j->n_tok; t++)
                j->y[(int64_t)t * j->y_stride + r] = k->dot_q8_0(row, j->xq + (int64_t)t * nb, n);
        }
    } else if (j->w->type == QT_F16) {
        for (int64_t r = r0; r < r1; r++) {
            const uint16_t *row = (const uint16_t *)j->w->data + (size_t)(j->row0 + r) * n;
            for (int t = 0; t < j->n_tok; t++)
                j->y[(int64_t)t * j->y_stride + r] = k->dot_f16(row, j->x + (int64_t)t * j->x_stride, n);
        }
    } else {
        /* F32 weights (small vectors only): double accumulation like the reference. */
        for (int64_t r = r0; r < r1; r++) {
            const float *row = (const float *)j->w->data + (size_t)(j->row0 + r) * n;
            for (int t = 0; t < j->n_tok; t++) {
                const float *xt = j->x + (int64_t)t * j->x_stride;
                double acc = 0.0;
                for (int64_t i = 0; i < n; i++) acc += (double)row[i] * xt[i];
                j->y[(int64_t)t * j->y_stride + r] = (float)acc;
            }
        }
    }
}

static void run(const linear_ctx *lc, lin_job *j) {
    /* Tiny projections are not worth waking the pool. */
    if (lc->tp && j->rows * j->w->ne0 * j->n_tok >= 65536) threadpool_run(lc->tp, lin_worker, j);
    else lin_worker(j, 0, 1);
}

void linear_q8_0_prequant(const linear_ctx *lc, const tensor_view *w, int64_t row0, int64_t rows,
                          const block_q8_0a *xq, float *y, int64_t y_stride, int n_tok) {
    lin_job j = {.lc = lc, .w = w, .row0 = row0, .rows = rows, .xq = xq, .y = y,
                 .y_stride = y_stride, .n_tok = n_tok};
    run(lc, &j);
}

void linear_rows(const linear_ctx *lc, const tensor_view *w, int64_t row0, int64_t rows,
                 const float *x, int64_t x_stride, float *y, int64_t y_stride, int n_tok) {
    if (w->type == QT_Q8_0) {
        const int64_t nb = w->ne0 / QK8_0;
        block_q8_0a *xq = malloc((size_t)(nb * n_tok) * sizeof(*xq));
        if (!xq) abort();   /* a few KB per token; treat as fatal like any OOM in the hot path */
        for (int t = 0; t < n_tok; t++) quantize_row_q8_0a(x + (int64_t)t * x_stride, xq + (int64_t)t * nb, w->ne0);
        linear_q8_0_prequant(lc, w, row0, rows, xq, y, y_stride, n_tok);
        free(xq);
        return;
    }
    lin_job j = {.lc = lc, .w = w, .row0 = row0, .rows = rows, .x = x, .x_stride = x_stride,
                 .y = y, .y_stride = y_stride, .n_tok = n_tok};
    run(lc, &j);
}

void linear(const linear_ctx *lc, const tensor_view *w, const float *x, float *y) {
    linear_rows(lc, w, 0, w->ne1, x, w->ne0, y, w->ne1, 1);
}
