/* quant_isa.h — private glue between quant.c and its SIMD siblings
 * (quant_avx2.c, quant_avx512.c). Not part of the public quant.h contract.
 *
 * The per-block float steps of the routed-expert dots live here as inline
 * functions so every ISA path performs literally the same float operations
 * in the same order (design.md §3, the determinism contract): a SIMD kernel
 * computes the exact integer sums of a super-block and then calls the same
 * helper the portable kernel calls. f16 -> f32 conversion is exact, so it
 * does not matter which instruction performs it. */
#ifndef FP_QUANT_ISA_H
#define FP_QUANT_ISA_H

#include <stdint.h>

#include "quant.h"

/* Q2_K / Q4_K super-block: sumf += (dx·d)·isum − (dx·dmin)·summs, where isum
 * is Σ_s scale_s·Σ q·q8 and summs is Σ_s min_s·(bsums of s). */
static inline float kq_block_acc(float sumf, float dx, float d, float dmin, int32_t isum, int32_t summs) {
    const float dall = dx * d;
    const float dm = dx * dmin;
    return sumf + (dall * (float)isum - dm * (float)summs);
}

/* IQ2_XXS super-block: sumf += (d·dx)·bsum with bsum = Σ_b (2·ls_b+1)·Σ
 * signed-grid·q8; the row result is 0.125·sumf (iq2_finish). */
static inline float iq2_block_acc(float sumf, float dx, float d, int32_t bsum) {
    return sumf + (d * dx) * (float)bsum;
}
static inline float iq2_finish(float sumf) { return 0.125f * sumf; }

/* Q4_K packed scales -> eight 6-bit scales and eight 6-bit mins (model-spec
 * 3.4), done four bytes at a time. */
static inline void q4k_unpack_scales(const uint8_t s[12], uint8_t sc[8], uint8_t mn[8]) {
    uint32_t u0, u1, u2;
    __builtin_memcpy(&u0, s, 4);
    __builtin_memcpy(&u1, s + 4, 4);
    __builtin_memcpy(&u2, s + 8, 4);
    const uint32_t sc_lo = u0 & 0x3f3f3f3fu, mn_lo = u1 & 0x3f3f3f3fu;
    const uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4);
    const uint32_t mn_hi = ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4);
    __builtin_memcpy(sc, &sc_lo, 4);
    __builtin_memcpy(sc + 4, &sc_hi, 4);
    __builtin_memcpy(mn, &mn_lo, 4);
    __builtin_memcpy(mn + 4, &mn_hi, 4);
}

/* The 32 sign bits of one IQ2_XXS sub-block (bit 8l+j set = weight j of
 * group l is negative), from its aux word. */
static inline uint32_t iq2_signs32(uint32_t aux) {
    return (uint32_t)ksigns_iq2xs[aux & 127] | (uint32_t)ksigns_iq2xs[(aux >> 7) & 127] << 8 |
           (uint32_t)ksigns_iq2xs[(aux >> 14) & 127] << 16 | (uint32_t)ksigns_iq2xs[(aux >> 21) & 127] << 24;
}

/* iq2xxs_grid as 2-bit codes per weight (iq2xxs_grid.c). */
extern const uint16_t iq2xxs_grid_codes[256];

/* Kernel tables of the SIMD files; NULL when that file was built without
 * the instruction set (non-x86 builds). CPU support is checked by quant.c. */
const quant_kernels *quant_kernels_avx2_table(void);
const quant_kernels *quant_kernels_avx512_table(void);

#endif
