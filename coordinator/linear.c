/* linear.c — threaded dense projections (see linear.h).
 *
 * One token: the product goes straight to common/matvec.c, the one
 * matrix-vector implementation. A batch, or several projections of one
 * step: the rows of every task are cut into chunks handed out from a shared
 * counter, so a thread slowed by a neighbour process does not hold the
 * others back, and one pool wake-up covers all the tasks. Within a chunk each
 * weight row is read once and dotted with every token while it is in cache.
 * Every output element is one kernel call on one thread: the bits never
 * depend on the batch, the grouping of tasks or the thread count. */
#include "linear.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "matvec.h"

/* Target weight bytes per chunk: long sequential runs for the prefetcher,
 * yet several chunks per thread. */
#define LIN_CHUNK_BYTES (64u << 10)
/* Below this many multiply-adds one thread does it all. */
#define LIN_PARALLEL_MIN 65536

typedef struct {
    const linear_task *t;
    const void *xa;        /* the task's activations in its kernel's form */
    size_t rb;             /* weight row bytes */
    int64_t chunk;         /* rows per chunk */
    int64_t first_chunk;   /* global index of this task's first chunk */
} lin_part;

typedef struct {
    const quant_kernels *k;
    const lin_part *parts;
    int n_parts;
    int n_tok;
    int64_t n_chunks;
    atomic_llong next;
} lin_job;

/* Rows [r0, r1) of one task, every token. */
static void task_rows(const quant_kernels *k, const lin_part *p, int n_tok, int64_t r0, int64_t r1) {
    const linear_task *t = p->t;
    const int64_t n = t->w->ne0;
    const uint8_t *base = (const uint8_t *)t->w->data + (size_t)t->row0 * p->rb;
    if (t->w->type == QT_Q8_0) {
        const int64_t nb = n / QK8_0;
        const block_q8_0a *xq = p->xa;
        for (int64_t r = r0; r < r1; r++) {
            const block_q8_0 *row = (const block_q8_0 *)(base + (size_t)r * p->rb);
            for (int i = 0; i < n_tok; i++) t->y[(int64_t)i * t->y_stride + r] = k->dot_q8_0(row, xq + (int64_t)i * nb, n);
        }
    } else if (t->w->type == QT_F16) {
        for (int64_t r = r0; r < r1; r++) {
            const uint16_t *row = (const uint16_t *)(base + (size_t)r * p->rb);
            for (int i = 0; i < n_tok; i++)
                t->y[(int64_t)i * t->y_stride + r] = k->dot_f16(row, t->x + (int64_t)i * t->x_stride, n);
        }
    } else {
        /* F32 weights (small vectors only): double accumulation like the reference
         * (and like matvec.c, so one token and a batch agree). */
        for (int64_t r = r0; r < r1; r++) {
            const float *row = (const float *)(base + (size_t)r * p->rb);
            for (int i = 0; i < n_tok; i++) {
                const float *xt = t->x + (int64_t)i * t->x_stride;
                double acc = 0.0;
                for (int64_t c = 0; c < n; c++) acc += (double)row[c] * xt[c];
                t->y[(int64_t)i * t->y_stride + r] = (float)acc;
            }
        }
    }
}

static void lin_worker(void *vctx, int ith, int nth) {
    (void)ith;
    (void)nth;
    lin_job *j = vctx;
    int p = 0;
    for (;;) {
        const int64_t c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (c >= j->n_chunks) return;
        while (p + 1 < j->n_parts && j->parts[p + 1].first_chunk <= c) p++;
        while (j->parts[p].first_chunk > c) p--;
        const lin_part *pt = &j->parts[p];
        const int64_t r0 = (c - pt->first_chunk) * pt->chunk;
        const int64_t r1 = r0 + pt->chunk < pt->t->rows ? r0 + pt->chunk : pt->t->rows;
        task_rows(j->k, pt, j->n_tok, r0, r1);
    }
}

void linear_multi(const linear_ctx *lc, const linear_task *tasks, int n_tasks, int n_tok) {
    if (n_tasks <= 0 || n_tok <= 0) return;
    lin_part parts_small[16];
    lin_part *parts = n_tasks <= 16 ? parts_small : malloc((size_t)n_tasks * sizeof(*parts));
    /* Q8_0 activations of each distinct input, quantised once. */
    void *owned[16] = {0};
    void **own = n_tasks <= 16 ? owned : calloc((size_t)n_tasks, sizeof(void *));
    if (!parts || !own) abort();   /* a few hundred bytes; fatal like any OOM in the hot path */
    const int nth = lc->tp ? threadpool_size(lc->tp) : 1;
    int64_t work = 0, n_chunks = 0;
    for (int i = 0; i < n_tasks; i++) {
        const linear_task *t = &tasks[i];
        lin_part *p = &parts[i];
        p->t = t;
        p->rb = qtype_row_bytes(t->w->type, t->w->ne0);
        p->xa = t->x;
        if (t->w->type == QT_Q8_0) {
            p->xa = t->xq;
            if (!p->xa) {
                for (int q = 0; q < i && !p->xa; q++)
                    if (tasks[q].w->type == QT_Q8_0 && !tasks[q].xq && tasks[q].x == t->x &&
                        tasks[q].x_stride == t->x_stride && tasks[q].w->ne0 == t->w->ne0)
                        p->xa = parts[q].xa;
                if (!p->xa) {
                    const int64_t nb = t->w->ne0 / QK8_0;
                    block_q8_0a *xq = malloc((size_t)(nb * n_tok) * sizeof(*xq));
                    if (!xq) abort();
                    for (int k = 0; k < n_tok; k++)
                        quantize_row_q8_0a(t->x + (int64_t)k * t->x_stride, xq + (int64_t)k * nb, t->w->ne0);
                    own[i] = xq;
                    p->xa = xq;
                }
            }
        }
        int64_t chunk = (int64_t)(LIN_CHUNK_BYTES / (p->rb * (size_t)(n_tok < 8 ? n_tok : 8)));
        const int64_t fair = t->rows / ((int64_t)nth * 4);
        if (chunk > fair) chunk = fair;
        if (chunk < 1) chunk = 1;
        p->chunk = chunk;
        p->first_chunk = n_chunks;
        n_chunks += (t->rows + chunk - 1) / chunk;
        work += t->rows * t->w->ne0 * n_tok;
    }
    lin_job j = {.k = lc->k, .parts = parts, .n_parts = n_tasks, .n_tok = n_tok, .n_chunks = n_chunks};
    atomic_init(&j.next, 0);
    /* Tiny projections are not worth waking the pool. */
    if (lc->tp && nth > 1 && work >= LIN_PARALLEL_MIN) threadpool_run(lc->tp, lin_worker, &j);
    else lin_worker(&j, 0, 1);
    for (int i = 0; i < n_tasks; i++) free(own[i]);
    if (parts != parts_small) free(parts);
    if (own != owned) free(own);
}

void linear_q8_0_prequant(const linear_ctx *lc, const tensor_view *w, int64_t row0, int64_t rows,
                          const block_q8_0a *xq, float *y, int64_t y_stride, int n_tok) {
    const linear_task t = {.w = w, .row0 = row0, .rows = rows, .xq = xq, .y = y, .y_stride = y_stride};
    linear_multi(lc, &t, 1, n_tok);
}

void linear_rows(const linear_ctx *lc, const tensor_view *w, int64_t row0, int64_t rows,
                 const float *x, int64_t x_stride, float *y, int64_t y_stride, int n_tok) {
    if (n_tok == 1 && (w->type == QT_Q8_0 || w->type == QT_F16 || w->type == QT_F32)) {
        /* One token: the shared matrix-vector path (same kernels, same bits). */
        const size_t rb = qtype_row_bytes(w->type, w->ne0);
        const size_t ab = matvec_act_bytes(w->type, w->ne0);
        unsigned char stack[16384];
        void *xa = w->type == QT_Q8_0 ? (ab <= sizeof stack ? (void *)stack : malloc(ab)) : NULL;
        if (w->type == QT_Q8_0 && !xa) abort();
        if (xa) matvec_quantize_act(w->type, x, w->ne0, xa);
        matvec(lc->tp, lc->k, w->type, (const uint8_t *)w->data + (size_t)row0 * rb, rows, w->ne0,
               xa ? xa : (const void *)x, y);
        if (xa && xa != (void *)stack) free(xa);
        return;
    }
    const linear_task t = {.w = w, .row0 = row0, .rows = rows, .x = x, .x_stride = x_stride,
                           .y = y, .y_stride = y_stride};
    linear_multi(lc, &t, 1, n_tok);
}

void linear(const linear_ctx *lc, const tensor_view *w, const float *x, float *y) {
    linear_rows(lc, w, 0, w->ne1, x, w->ne0, y, w->ne1, 1);
}
