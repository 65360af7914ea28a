/* matvec.h — matrix-vector products y = W·x over a weight matrix in any
 * supported quant type, for a row range or split across a thread pool.
 *
 * W is row-major: `rows` rows of qtype_row_bytes(type, cols) bytes each.
 * The activation is given already in the form the type's dot kernel takes
 * (matvec_act_bytes / matvec_quantize_act make it), so one quantised x can
 * serve several matrices, as the reference does. Every row is computed by
 * exactly one thread with one kernel call, so results do not depend on the
 * number of threads. */
#ifndef FP_MATVEC_H
#define FP_MATVEC_H

#include <stddef.h>
#include <stdint.h>

#include "quant.h"
#include "threadpool.h"

/* What a weight type's dot takes as x. */
enum matvec_act {
    MV_ACT_NONE = -1, /* type not supported */
    MV_ACT_F32 = 0,   /* F32 (double accumulation) and F16 weights: f32 x */
    MV_ACT_Q8_0A,     /* Q8_0 weights: block_q8_0a per 32 */
    MV_ACT_Q8_K,      /* Q2_K, Q4_K, IQ2_XXS weights: block_q8_K per 256 */
};

enum matvec_act matvec_act_kind(int type);
/* Bytes of the activation for one x of `cols` values; 0 when unsupported or
 * cols is not a multiple of the weight block. */
size_t matvec_act_bytes(int type, int64_t cols);
/* x (cols floats) -> xq (matvec_act_bytes bytes) with the reference
 * quantiser for that type (a copy for f32). Returns 0, or -1 as above. */
int matvec_quantize_act(int type, const float *x, int64_t cols, void *xq);

/* y[r] = row r of w · x for r in [row0, row1) (y indexed by absolute row).
 * Returns 0, or -1 (nothing written) for an unsupported type, a bad column
 * count or a bad range. */
int matvec_rows(const quant_kernels *k, int type, const void *w, int64_t rows, int64_t cols, const void *xq,
                int64_t row0, int64_t row1, float *y);

/* All rows, shared out over tp (NULL: the calling thread alone). Small
 * products run on the caller only: waking workers would cost more. */
int matvec(threadpool *tp, const quant_kernels *k, int type, const void *w, int64_t rows, int64_t cols,
           const void *xq, float *y);

#endif
