/* quant_avx512.c — AVX-512 (F/BW/VL/DQ + VNNI) dot kernels; the Makefile
 * builds this file with the matching -m flags and quant.c only hands the
 * table out when cpuid says the CPU has them.
 *
 * Same contract as quant_avx2.c: the routed-expert dots compute exact
 * integer super-block sums (maddubs into int16, then vpdpwssd multiplies by
 * the sub-block scales and accumulates in int32) and finish with the shared
 * float helper from quant_isa.h, so they equal the portable kernels bit for
 * bit. The dense dots use VNNI / 16-wide FMAs with several accumulators. */
#include "quant_isa.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512VNNI__) && defined(__F16C__) && defined(__FMA__)
#include <immintrin.h>
#include <string.h>

static inline int32_t hsum_i32_256(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline float hsum_ps_256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One Q8_0 block with VNNI: |w| (unsigned) · (x with w's sign) summed per
 * 4 bytes straight into int32. */
static inline __m256 q8_0_block(const block_q8_0 *w, const block_q8_0a *x, __m256 acc) {
    const __m256i wq = _mm256_loadu_si256((const __m256i *)w->qs);
    const __m256i xq = _mm256_loadu_si256((const __m256i *)x->qs);
    const __m256i p32 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(wq), _mm256_sign_epi8(xq, wq));
    const __m256 s = _mm256_set1_ps(_cvtsh_ss(w->d) * x->d);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), s, acc);
}

static float dot_q8_0_avx512(const block_q8_0 *w, const block_q8_0a *x, int64_t n) {
    const int64_t nb = n / QK8_0;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        a0 = q8_0_block(w + b, x + b, a0);
        a1 = q8_0_block(w + b + 1, x + b + 1, a1);
        a2 = q8_0_block(w + b + 2, x + b + 2, a2);
        a3 = q8_0_block(w + b + 3, x + b + 3, a3);
    }
    for (; b < nb; b++) a0 = q8_0_block(w + b, x + b, a0);
    return hsum_ps_256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

static float dot_f16_avx512(const uint16_t *w, const float *x, int64_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i))), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i + 16))), _mm512_loadu_ps(x + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i + 32))), _mm512_loadu_ps(x + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i + 48))), _mm512_loadu_ps(x + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16)
        a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i))), _mm512_loadu_ps(x + i), a0);
    const __m512 s = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
    float sum = hsum_ps_256(_mm256_add_ps(_mm512_castps512_ps256(s), _mm512_extractf32x8_ps(s, 1)));
    for (; i < n; i++) sum += _cvtsh_ss(w[i]) * x[i];
    return sum;
}

/* pshufb masks over the 16 Q2_K scale bytes broadcast to all four 128-bit
 * lanes: for step j the lanes hold sub-blocks 2j, 2j+1, 8+2j, 9+2j (the
 * elements 32j.., 32j+16.., 128+32j.., 128+32j+16..). */
#define Q2S(a) a, -1, a, -1, a, -1, a, -1, a, -1, a, -1, a, -1, a, -1
#define Q2J(j) {Q2S(2 * (j)), Q2S(2 * (j) + 1), Q2S(8 + 2 * (j)), Q2S(9 + 2 * (j))}
static const int8_t k_q2_scale_shuf[4][64] __attribute__((aligned(64))) = {Q2J(0), Q2J(1), Q2J(2), Q2J(3)};

static float dot_q2_K_avx512(const block_q2_K *w, const block_q8_K *x, int64_t n) {
    const __m512i m3 = _mm512_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0xf);
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)w[b].scales);
        const __m512i scl = _mm512_broadcast_i32x4(_mm_and_si128(sc8, m4));
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), m4));
        const __m256i summsv = _mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)x[b].bsums));
        const __m512i qs = _mm512_loadu_si512(w[b].qs);
        const int8_t *q8 = x[b].qs;
        __m512i acc = _mm512_setzero_si512();
        for (int j = 0; j < 4; j++) {
            const __m512i c = _mm512_and_si512(_mm512_srli_epi16(qs, 2 * j), m3);
            const __m512i y = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(q8 + 32 * j))),
                                                 _mm256_loadu_si256((const __m256i *)(q8 + 128 + 32 * j)), 1);
            const __m512i s = _mm512_shuffle_epi8(scl, _mm512_load_si512(k_q2_scale_shuf[j]));
            acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(c, y), s);
        }
        sumf = kq_block_acc(sumf, x[b].d, _cvtsh_ss(w[b].d), _cvtsh_ss(w[b].dmin), _mm512_reduce_add_epi32(acc),
                            hsum_i32_256(summsv));
    }
    return sumf;
}

/* vpermw indices: for 64-element chunk c, int16 lanes 0..15 take scale 2c
 * and lanes 16..31 take scale 2c+1. */
#define Q4I(a) a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a
#define Q4C(c) {Q4I(2 * (c)), Q4I(2 * (c) + 1)}
static const int16_t k_q4_scale_idx[4][32] __attribute__((aligned(64))) = {Q4C(0), Q4C(1), Q4C(2), Q4C(3)};

static float dot_q4_K_avx512(const block_q4_K *w, const block_q8_K *x, int64_t n) {
    const __m256i m4 = _mm256_set1_epi8(0xf);
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t sc[8], mn[8];
        q4k_unpack_scales(w[b].scales, sc, mn);
        __m128i m8 = _mm_loadl_epi64((const __m128i *)mn);
        m8 = _mm_unpacklo_epi8(m8, m8);
        const __m256i summsv = _mm256_madd_epi16(_mm256_cvtepu8_epi16(m8), _mm256_loadu_si256((const __m256i *)x[b].bsums));
        const __m512i sc16 = _mm512_zextsi128_si512(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sc)));
        const int8_t *q8 = x[b].qs;
        __m512i acc = _mm512_setzero_si512();
        for (int c = 0; c < 4; c++) {
            /* Low nibbles are elements 64c..64c+31, high nibbles the next 32:
             * side by side they line up with 64 contiguous activations. */
            const __m256i q = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * c));
            const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(q, m4)),
                                                 _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), 1);
            const __m512i p = _mm512_maddubs_epi16(v, _mm512_loadu_si512(q8 + 64 * c));
            const __m512i s = _mm512_permutexvar_epi16(_mm512_load_si512(k_q4_scale_idx[c]), sc16);
            acc = _mm512_dpwssd_epi32(acc, p, s);
        }
        sumf = kq_block_acc(sumf, x[b].d, _cvtsh_ss(w[b].d), _cvtsh_ss(w[b].dmin), _mm512_reduce_add_epi32(acc),
                            hsum_i32_256(summsv));
    }
    return sumf;
}

static float dot_iq2_xxs_avx512(const block_iq2_xxs *w, const block_q8_K *x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t *qs = (const uint8_t *)w[b].qs;
        const int8_t *q8 = x[b].qs;
        __m512i acc = _mm512_setzero_si512();
        for (int sp = 0; sp < 4; sp++) {
            /* Two sub-blocks (64 weights) per step. */
            const uint8_t *g = qs + 16 * sp;
            uint32_t aux0, aux1;
            memcpy(&aux0, g + 4, 4);
            memcpy(&aux1, g + 12, 4);
            const __m512i gv = _mm512_set_epi64((long long)iq2xxs_grid[g[11]], (long long)iq2xxs_grid[g[10]],
                                                (long long)iq2xxs_grid[g[9]], (long long)iq2xxs_grid[g[8]],
                                                (long long)iq2xxs_grid[g[3]], (long long)iq2xxs_grid[g[2]],
                                                (long long)iq2xxs_grid[g[1]], (long long)iq2xxs_grid[g[0]]);
            const __mmask64 neg = (uint64_t)iq2_signs32(aux0) | (uint64_t)iq2_signs32(aux1) << 32;
            const __m512i y = _mm512_loadu_si512(q8 + 64 * sp);
            const __m512i ys = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
            const __m512i s = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)(2 * (aux0 >> 28) + 1))),
                                                 _mm256_set1_epi16((short)(2 * (aux1 >> 28) + 1)), 1);
            acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(gv, ys), s);
        }
        sumf = iq2_block_acc(sumf, x[b].d, _cvtsh_ss(w[b].d), _mm512_reduce_add_epi32(acc));
    }
    return iq2_finish(sumf);
}

static const quant_kernels k_avx512 = {
    .name = "avx512",
    .dot_q8_0 = dot_q8_0_avx512,
    .dot_f16 = dot_f16_avx512,
    .dot_q2_K = dot_q2_K_avx512,
    .dot_q4_K = dot_q4_K_avx512,
    .dot_iq2_xxs = dot_iq2_xxs_avx512,
};

const quant_kernels *quant_kernels_avx512_table(void) { return &k_avx512; }

#else

const quant_kernels *quant_kernels_avx512_table(void) { return NULL; }

#endif
