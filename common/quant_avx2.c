/* quant_avx2.c — AVX2 (+FMA, F16C) dot kernels; the Makefile builds this file
 * with -mavx2 -mfma -mf16c and quant.c only hands the table out when cpuid
 * says the CPU has them.
 *
 * Routed-expert dots (Q2_K/Q4_K/IQ2_XXS × Q8_K): the vector code produces
 * only the exact integer sums of each super-block; the float step is the
 * shared helper from quant_isa.h, so results equal the portable kernels bit
 * for bit. Dense dots (Q8_0, F16) keep several float accumulators: they
 * differ from portable by rounding only, and are deterministic. */
#include "quant_isa.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#include <string.h>

static inline int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One Q8_0 block: |w| (unsigned) times x carrying w's sign, pairwise into
 * int16 (at most 2·128·127, no saturation), then into int32 lanes. */
static inline __m256 q8_0_block(const block_q8_0 *w, const block_q8_0a *x, __m256 acc) {
    const __m256i wq = _mm256_loadu_si256((const __m256i *)w->qs);
    const __m256i xq = _mm256_loadu_si256((const __m256i *)x->qs);
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_abs_epi8(wq), _mm256_sign_epi8(xq, wq));
    const __m256i p32 = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
    const __m256 s = _mm256_set1_ps(_cvtsh_ss(w->d) * x->d);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), s, acc);
}

static float dot_q8_0_avx2(const block_q8_0 *w, const block_q8_0a *x, int64_t n) {
    const int64_t nb = n / QK8_0;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        a0 = q8_0_block(w + b, x + b, a0);
        a1 = q8_0_block(w + b + 1, x + b + 1, a1);
    }
    if (b < nb) a0 = q8_0_block(w + b, x + b, a0);
    return hsum_ps(_mm256_add_ps(a0, a1));
}

static float dot_f16_avx2(const uint16_t *w, const float *x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i))), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8))), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 16))), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 24))), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i))), _mm256_loadu_ps(x + i), a0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += _cvtsh_ss(w[i]) * x[i];
    return sum;
}

/* pshufb masks turning the 16 Q2_K scale bytes (broadcast to both lanes)
 * into int16 lanes: low lane = sub-block 2p, high lane = sub-block 2p+1. */
#define Q2S(a) a, -1, a, -1, a, -1, a, -1, a, -1, a, -1, a, -1, a, -1
#define Q2P(p) {Q2S(2 * (p)), Q2S(2 * (p) + 1)}
static const int8_t k_q2_scale_shuf[8][32] __attribute__((aligned(32))) = {
    Q2P(0), Q2P(1), Q2P(2), Q2P(3), Q2P(4), Q2P(5), Q2P(6), Q2P(7),
};

static float dot_q2_K_avx2(const block_q2_K *w, const block_q8_K *x, int64_t n) {
    const __m256i m3 = _mm256_set1_epi8(3), m4 = _mm256_set1_epi8(0xf);
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const __m256i sc8 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)w[b].scales));
        const __m256i scl = _mm256_and_si256(sc8, m4);
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(_mm256_castsi256_si128(sc8), 4),
                                                                 _mm256_castsi256_si128(m4)));
        const __m256i summsv = _mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)x[b].bsums));
        __m256i acc = _mm256_setzero_si256();
        const int8_t *q8 = x[b].qs;
        for (int k = 0; k < 2; k++) {
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * k));
            for (int j = 0; j < 4; j++) {
                const __m256i c = _mm256_and_si256(_mm256_srli_epi16(qb, 2 * j), m3);
                const __m256i p = _mm256_maddubs_epi16(c, _mm256_loadu_si256((const __m256i *)(q8 + 128 * k + 32 * j)));
                const __m256i s = _mm256_shuffle_epi8(scl, _mm256_load_si256((const __m256i *)k_q2_scale_shuf[4 * k + j]));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, s));
            }
        }
        sumf = kq_block_acc(sumf, x[b].d, _cvtsh_ss(w[b].d), _cvtsh_ss(w[b].dmin), hsum_i32(acc), hsum_i32(summsv));
    }
    return sumf;
}

static float dot_q4_K_avx2(const block_q4_K *w, const block_q8_K *x, int64_t n) {
    const __m256i m4 = _mm256_set1_epi8(0xf);
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t sc[8], mn[8];
        q4k_unpack_scales(w[b].scales, sc, mn);
        /* Σ_s mn[s]·(bsums[2s] + bsums[2s+1]): each min repeated twice. */
        __m128i m8 = _mm_loadl_epi64((const __m128i *)mn);
        m8 = _mm_unpacklo_epi8(m8, m8);
        const __m256i summsv = _mm256_madd_epi16(_mm256_cvtepu8_epi16(m8), _mm256_loadu_si256((const __m256i *)x[b].bsums));
        __m256i acc = _mm256_setzero_si256();
        const int8_t *q8 = x[b].qs;
        for (int c = 0; c < 4; c++) {
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * c));
            const __m256i lo = _mm256_and_si256(qb, m4), hi = _mm256_and_si256(_mm256_srli_epi16(qb, 4), m4);
            const __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(q8 + 64 * c)));
            const __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 64 * c + 32)));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p0, _mm256_set1_epi16(sc[2 * c])));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p1, _mm256_set1_epi16(sc[2 * c + 1])));
        }
        sumf = kq_block_acc(sumf, x[b].d, _cvtsh_ss(w[b].d), _cvtsh_ss(w[b].dmin), hsum_i32(acc), hsum_i32(summsv));
    }
    return sumf;
}

static float dot_iq2_xxs_avx2(const block_iq2_xxs *w, const block_q8_K *x, int64_t n) {
    /* Byte j of a sign mask lane tests bit (j mod 8) of the mask byte that
     * pshufb copied there (bytes 0,1 to the low lane, 2,3 to the high). */
    const __m256i bitsel = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        __m256i acc = _mm256_setzero_si256();
        const uint8_t *qs = (const uint8_t *)w[b].qs;
        for (int sb = 0; sb < 8; sb++) {
            uint32_t aux;
            memcpy(&aux, qs + 8 * sb + 4, 4);
            const uint8_t *g = qs + 8 * sb;
            const __m256i gv = _mm256_set_epi64x((long long)iq2xxs_grid[g[3]], (long long)iq2xxs_grid[g[2]],
                                                 (long long)iq2xxs_grid[g[1]], (long long)iq2xxs_grid[g[0]]);
            __m256i sm = _mm256_shuffle_epi8(_mm256_set1_epi32((int)iq2_signs32(aux)), spread);
            sm = _mm256_cmpeq_epi8(_mm256_and_si256(sm, bitsel), bitsel);
            const __m256i y = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * sb));
            const __m256i ys = _mm256_sub_epi8(_mm256_xor_si256(y, sm), sm);
            const __m256i p = _mm256_maddubs_epi16(gv, ys);
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16((short)(2 * (aux >> 28) + 1))));
        }
        sumf = iq2_block_acc(sumf, x[b].d, _cvtsh_ss(w[b].d), hsum_i32(acc));
    }
    return iq2_finish(sumf);
}

static const quant_kernels k_avx2 = {
    .name = "avx2",
    .dot_q8_0 = dot_q8_0_avx2,
    .dot_f16 = dot_f16_avx2,
    .dot_q2_K = dot_q2_K_avx2,
    .dot_q4_K = dot_q4_K_avx2,
    .dot_iq2_xxs = dot_iq2_xxs_avx2,
};

const quant_kernels *quant_kernels_avx2_table(void) { return &k_avx2; }

#else

const quant_kernels *quant_kernels_avx2_table(void) { return NULL; }

#endif
