/* matvec.c — matrix-vector products by row range and over a thread pool
 * (see matvec.h). Rows are handed out in chunks from a shared counter, so a
 * thread slowed by a neighbour process does not hold the others back; a
 * chunk is a contiguous run of rows, which keeps each thread's reads
 * sequential for the hardware prefetcher. */
#include "matvec.h"

#include <stdatomic.h>
#include <string.h>

enum matvec_act matvec_act_kind(int type) {
    switch (type) {
    case QT_F32:
    case QT_F16: return MV_ACT_F32;
    case QT_Q8_0: return MV_ACT_Q8_0A;
    case QT_Q2_K:
    case QT_Q4_K:
    case QT_IQ2_XXS: return MV_ACT_Q8_K;
    default: return MV_ACT_NONE;
    }
}

size_t matvec_act_bytes(int type, int64_t cols) {
    if (cols <= 0 || qtype_row_bytes(type, cols) == 0) return 0;
    switch (matvec_act_kind(type)) {
    case MV_ACT_F32: return (size_t)cols * sizeof(float);
    case MV_ACT_Q8_0A: return (size_t)(cols / QK8_0) * sizeof(block_q8_0a);
    case MV_ACT_Q8_K: return (size_t)(cols / QK_K) * sizeof(block_q8_K);
    default: return 0;
    }
}

int matvec_quantize_act(int type, const float *x, int64_t cols, void *xq) {
    if (matvec_act_bytes(type, cols) == 0) return -1;
    switch (matvec_act_kind(type)) {
    case MV_ACT_F32: memcpy(xq, x, (size_t)cols * sizeof(float)); return 0;
    case MV_ACT_Q8_0A: quantize_row_q8_0a(x, xq, cols); return 0;
    case MV_ACT_Q8_K: quantize_row_q8_K(x, xq, cols); return 0;
    default: return -1;
    }
}

/* F32 weights: double accumulation, as the reference does for them. */
static float dot_f32_double(const float *w, const float *x, int64_t n) {
    double acc = 0.0;
    for (int64_t i = 0; i < n; i++) acc += (double)w[i] * x[i];
    return (float)acc;
}

/* The unchecked inner loop shared by both entry points. */
static void rows_unchecked(const quant_kernels *k, int type, const void *w, size_t rb, int64_t cols,
                           const void *xq, int64_t row0, int64_t row1, float *y) {
    const uint8_t *base = (const uint8_t *)w;
    switch (type) {
    case QT_Q8_0:
        for (int64_t r = row0; r < row1; r++) y[r] = k->dot_q8_0((const block_q8_0 *)(base + (size_t)r * rb), xq, cols);
        break;
    case QT_F16:
        for (int64_t r = row0; r < row1; r++) y[r] = k->dot_f16((const uint16_t *)(base + (size_t)r * rb), xq, cols);
        break;
    case QT_F32:
        for (int64_t r = row0; r < row1; r++) y[r] = dot_f32_double((const float *)(base + (size_t)r * rb), xq, cols);
        break;
    case QT_Q2_K:
        for (int64_t r = row0; r < row1; r++) y[r] = k->dot_q2_K((const block_q2_K *)(base + (size_t)r * rb), xq, cols);
        break;
    case QT_Q4_K:
        for (int64_t r = row0; r < row1; r++) y[r] = k->dot_q4_K((const block_q4_K *)(base + (size_t)r * rb), xq, cols);
        break;
    case QT_IQ2_XXS:
        for (int64_t r = row0; r < row1; r++)
            y[r] = k->dot_iq2_xxs((const block_iq2_xxs *)(base + (size_t)r * rb), xq, cols);
        break;
    default: break;
    }
}

int matvec_rows(const quant_kernels *k, int type, const void *w, int64_t rows, int64_t cols, const void *xq,
                int64_t row0, int64_t row1, float *y) {
    if (!k || matvec_act_kind(type) == MV_ACT_NONE || cols <= 0) return -1;
    const size_t rb = qtype_row_bytes(type, cols);
    if (rb == 0 || row0 < 0 || row1 < row0 || row1 > rows) return -1;
    rows_unchecked(k, type, w, rb, cols, xq, row0, row1, y);
    return 0;
}

typedef struct {
    const quant_kernels *k;
    int type;
    const void *w;
    size_t rb;
    int64_t rows, cols, chunk;
    const void *xq;
    float *y;
    atomic_llong next; /* first row of the next unclaimed chunk */
} mv_job;

static void mv_worker(void *vctx, int ith, int nth) {
    (void)ith;
    (void)nth;
    mv_job *j = vctx;
    for (;;) {
        const int64_t r0 = atomic_fetch_add_explicit(&j->next, j->chunk, memory_order_relaxed);
        if (r0 >= j->rows) return;
        const int64_t r1 = r0 + j->chunk < j->rows ? r0 + j->chunk : j->rows;
        rows_unchecked(j->k, j->type, j->w, j->rb, j->cols, j->xq, r0, r1, j->y);
    }
}

/* Below this many weight bytes one thread does it all. */
#define MV_PARALLEL_MIN_BYTES (64u << 10)
/* Target bytes per chunk: long sequential runs, yet several chunks per thread. */
#define MV_CHUNK_BYTES (128u << 10)

int matvec(threadpool *tp, const quant_kernels *k, int type, const void *w, int64_t rows, int64_t cols,
           const void *xq, float *y) {
    if (!k || matvec_act_kind(type) == MV_ACT_NONE || cols <= 0 || rows < 0) return -1;
    const size_t rb = qtype_row_bytes(type, cols);
    if (rb == 0) return -1;
    const int nth = threadpool_size(tp);
    if (!tp || nth == 1 || (size_t)rows * rb < MV_PARALLEL_MIN_BYTES) {
        rows_unchecked(k, type, w, rb, cols, xq, 0, rows, y);
        return 0;
    }
    int64_t chunk = (int64_t)(MV_CHUNK_BYTES / rb);
    const int64_t fair = rows / ((int64_t)nth * 4); /* at least ~4 chunks per thread */
    if (chunk > fair) chunk = fair;
    if (chunk < 1) chunk = 1;
    mv_job j = {.k = k, .type = type, .w = w, .rb = rb, .rows = rows, .cols = cols, .chunk = chunk, .xq = xq, .y = y};
    atomic_init(&j.next, 0);
    threadpool_run(tp, mv_worker, &j);
    return 0;
}
