/* mkmodel_kquant.h — one-pass Q2_K and Q4_K encoders for synthetic weights.
 *
 * quant.h's quantize_row_q2_K / quantize_row_q4_K search for the least-
 * squares scale and offset of every sub-block (30-50 ns per weight on the
 * development machine), which would dominate a real-width file with hundreds
 * of experts. Random weights need no such care: these encoders fit each
 * sub-block by its min and max in one pass (like make_tiny_gguf.py's Q2_K
 * writer), ~10x faster, within ~1.25x of the searched fit's RMS error. The
 * block layout is model-spec 3.3 / 3.4, as quant.h's dequantize_row reads it. */
#ifndef FP_MKMODEL_KQUANT_H
#define FP_MKMODEL_KQUANT_H

#include <stdint.h>

#include "quant.h"

/* n: a multiple of QK_K. */
void mkmodel_encode_q2_K(const float *x, block_q2_K *y, int64_t n);
void mkmodel_encode_q4_K(const float *x, block_q4_K *y, int64_t n);

#endif
