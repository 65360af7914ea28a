/* quant_avx512.c — AVX-512 (F/BW/VL/DQ + VNNI, and VBMI + BITALG + GFNI for
 * IQ2_XXS via function target attributes) dot kernels; the Makefile builds this
 * file with the AVX-512 -m flags and quant.c only hands the table out when
 * cpuid says the CPU has all of them (Ice Lake, Zen 4 and later; older
 * AVX-512 parts use the AVX2 table).
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

/* [Σa, Σb, Σc, Σd] over the int32 lanes of four vectors: the super-block
 * sums of four blocks for the price of about one full reduction each. */
static inline __m128i hsum4_256(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

static inline __m256i fold512(__m512i a) {
    return _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
}

static inline __m128i hsum4_512(__m512i a, __m512i b, __m512i c, __m512i d) {
    return hsum4_256(fold512(a), fold512(b), fold512(c), fold512(d));
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

/* Integer part of one Q2_K super-block: lanes of *acc sum to
 * Σ_s (sc_s & 15)·Σ q2·q8, lanes of *mins to Σ_s (sc_s >> 4)·bsum_s. */
static inline void q2_K_int(const block_q2_K *w, const block_q8_K *x, __m512i *acc, __m256i *mins) {
    const __m512i m3 = _mm512_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0xf);
    const __m128i sc8 = _mm_loadu_si128((const __m128i *)w->scales);
    const __m512i scl = _mm512_broadcast_i32x4(_mm_and_si128(sc8, m4));
    const __m256i mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), m4));
    *mins = _mm256_madd_epi16(mn, _mm256_loadu_si256((const __m256i *)x->bsums));
    const __m512i qs = _mm512_loadu_si512(w->qs);
    const int8_t *q8 = x->qs;
    /* Unrolled with immediate shifts and two accumulators: the dpwssd
     * latency chain otherwise bounds the loop. */
    __m512i a[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const __m512i c = _mm512_and_si512(_mm512_srli_epi16(qs, 2 * j), m3);
        const __m512i y = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(q8 + 32 * j))),
                                             _mm256_loadu_si256((const __m256i *)(q8 + 128 + 32 * j)), 1);
        const __m512i s = _mm512_shuffle_epi8(scl, _mm512_load_si512(k_q2_scale_shuf[j]));
        a[j & 1] = _mm512_dpwssd_epi32(a[j & 1], _mm512_maddubs_epi16(c, y), s);
    }
    *acc = _mm512_add_epi32(a[0], a[1]);
}

static float dot_q2_K_avx512(const block_q2_K *w, const block_q8_K *x, int64_t n) {
    const int64_t nb = n / QK_K;
    float sumf = 0.0f;
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        /* Four super-blocks' integer sums reduced together. */
        __m512i a0, a1, a2, a3;
        __m256i m0, m1, m2, m3;
        q2_K_int(w + b, x + b, &a0, &m0);
        q2_K_int(w + b + 1, x + b + 1, &a1, &m1);
        q2_K_int(w + b + 2, x + b + 2, &a2, &m2);
        q2_K_int(w + b + 3, x + b + 3, &a3, &m3);
        int32_t is[4], ms[4];
        _mm_storeu_si128((__m128i *)is, hsum4_512(a0, a1, a2, a3));
        _mm_storeu_si128((__m128i *)ms, hsum4_256(m0, m1, m2, m3));
        for (int j = 0; j < 4; j++)
            sumf = kq_block_acc(sumf, x[b + j].d, _cvtsh_ss(w[b + j].d), _cvtsh_ss(w[b + j].dmin), is[j], ms[j]);
    }
    for (; b < nb; b++) {
        __m512i a;
        __m256i m;
        q2_K_int(w + b, x + b, &a, &m);
        sumf = kq_block_acc(sumf, x[b].d, _cvtsh_ss(w[b].d), _cvtsh_ss(w[b].dmin), _mm512_reduce_add_epi32(a),
                            hsum_i32_256(m));
    }
    return sumf;
}

/* vpermw indices: for 64-element chunk c, int16 lanes 0..15 take scale 2c
 * and lanes 16..31 take scale 2c+1. */
#define Q4I(a) a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a
#define Q4C(c) {Q4I(2 * (c)), Q4I(2 * (c) + 1)}
static const int16_t k_q4_scale_idx[4][32] __attribute__((aligned(64))) = {Q4C(0), Q4C(1), Q4C(2), Q4C(3)};

/* Integer part of one Q4_K super-block (as q2_K_int). */
static inline void q4_K_int(const block_q4_K *w, const block_q8_K *x, __m512i *acc, __m256i *mins) {
    const __m256i m4 = _mm256_set1_epi8(0xf);
    uint8_t sc[8], mn[8];
    q4k_unpack_scales(w->scales, sc, mn);
    __m128i m8 = _mm_loadl_epi64((const __m128i *)mn);
    m8 = _mm_unpacklo_epi8(m8, m8);
    *mins = _mm256_madd_epi16(_mm256_cvtepu8_epi16(m8), _mm256_loadu_si256((const __m256i *)x->bsums));
    const __m512i sc16 = _mm512_zextsi128_si512(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sc)));
    const int8_t *q8 = x->qs;
    __m512i a[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        /* Low nibbles are elements 64c..64c+31, high nibbles the next 32:
         * side by side they line up with 64 contiguous activations. */
        const __m256i q = _mm256_loadu_si256((const __m256i *)(w->qs + 32 * c));
        const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(q, m4)),
                                             _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), 1);
        const __m512i p = _mm512_maddubs_epi16(v, _mm512_loadu_si512(q8 + 64 * c));
        const __m512i s = _mm512_permutexvar_epi16(_mm512_load_si512(k_q4_scale_idx[c]), sc16);
        a[c & 1] = _mm512_dpwssd_epi32(a[c & 1], p, s);
    }
    *acc = _mm512_add_epi32(a[0], a[1]);
}

static float dot_q4_K_avx512(const block_q4_K *w, const block_q8_K *x, int64_t n) {
    const int64_t nb = n / QK_K;
    float sumf = 0.0f;
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        /* Four super-blocks' integer sums reduced together. */
        __m512i a0, a1, a2, a3;
        __m256i m0, m1, m2, m3;
        q4_K_int(w + b, x + b, &a0, &m0);
        q4_K_int(w + b + 1, x + b + 1, &a1, &m1);
        q4_K_int(w + b + 2, x + b + 2, &a2, &m2);
        q4_K_int(w + b + 3, x + b + 3, &a3, &m3);
        int32_t is[4], ms[4];
        _mm_storeu_si128((__m128i *)is, hsum4_512(a0, a1, a2, a3));
        _mm_storeu_si128((__m128i *)ms, hsum4_256(m0, m1, m2, m3));
        for (int j = 0; j < 4; j++)
            sumf = kq_block_acc(sumf, x[b + j].d, _cvtsh_ss(w[b + j].d), _cvtsh_ss(w[b + j].dmin), is[j], ms[j]);
    }
    for (; b < nb; b++) {
        __m512i a;
        __m256i m;
        q4_K_int(w + b, x + b, &a, &m);
        sumf = kq_block_acc(sumf, x[b].d, _cvtsh_ss(w[b].d), _cvtsh_ss(w[b].dmin), _mm512_reduce_add_epi32(a),
                            hsum_i32_256(m));
    }
    return sumf;
}

/* IQ2_XXS without per-weight table loads (needs AVX512-VBMI, BITALG and
 * GFNI; this table is only offered on CPUs with all three). Per super-block:
 *  - the 32 grid indices become word lanes and are looked up in
 *    iq2xxs_grid_codes (2 bits per weight, 512 bytes = eight registers)
 *    with four two-register word permutes and a blend on index bits 6-7;
 *  - the 32 sign indices (7 bits each, in the aux words) are cut out with
 *    one multishift and mapped through ksigns_iq2xs with one 128-entry byte
 *    permute;
 * both land transposed (see the layout note below), so per pair of
 * sub-blocks one multishift expands every group's code to its 8 bytes, a
 * GF(2) affine map turns codes into 8/25/43, one bit-shuffle yields the
 * 64-bit sign mask, the activations are negated under it, then maddubs and
 * vpdpwssd by 2·ls+1. */
#define SCIDX(sp) {Q4I(2 * (sp)), Q4I(2 * (sp) + 1)}
static const int16_t k_iq2_scale_idx[4][32] __attribute__((aligned(64))) = {SCIDX(0), SCIDX(1), SCIDX(2), SCIDX(3)};
/* Layout trick: word lane 4g+sp holds the code of group 8sp+g (g = 0..7,
 * sp = pair 0..3), so qword g carries that group for every pair and one
 * multishift per pair expands group 8sp+g straight into qword g, which is
 * where its 8 activations sit. Group i = 4b+l has its grid index at qs
 * byte 8b+l, with b = 2sp + g/4 and l = g%4; odd bytes are masked to 0. */
#define GIX(g, sp) (8 * (2 * (sp) + (g) / 4) + (g) % 4), 0
#define GIG(g) GIX(g, 0), GIX(g, 1), GIX(g, 2), GIX(g, 3)
static const uint8_t k_iq2_gidx_sel[64] __attribute__((aligned(64))) = {
    GIG(0), GIG(1), GIG(2), GIG(3), GIG(4), GIG(5), GIG(6), GIG(7),
};
/* Signs the same way: byte 8g+sp <- sign index of group 8sp+g, which the
 * multishift below leaves at byte 8b+l (b = 2sp + g/4, l = g%4); bytes
 * 8g+4..8g+7 are unused. */
#define SGX(g, sp) (8 * (2 * (sp) + (g) / 4) + (g) % 4)
#define SGG(g) SGX(g, 0), SGX(g, 1), SGX(g, 2), SGX(g, 3), 0, 0, 0, 0
static const uint8_t k_iq2_sign_sel[64] __attribute__((aligned(64))) = {
    SGG(0), SGG(1), SGG(2), SGG(3), SGG(4), SGG(5), SGG(6), SGG(7),
};

typedef struct {
    __m512i t[8];           /* iq2xxs_grid_codes, 32 words each */
    __m512i ks0, ks1;       /* ksigns_iq2xs */
    __m512i code_map, gsel, ssel, ctrl_signs, bit6, bit7, one64;
    __m512i ctrl_codes[4];  /* per pair: byte j <- bits 16sp+2j.. */
    __m512i ctrl_mask[4];   /* per pair: mask bit 8g+j <- bit 8sp+j of qword g */
} iq2_consts;

__attribute__((target("avx512vbmi,gfni"))) static inline void iq2_consts_init(iq2_consts *k) {
    for (int i = 0; i < 8; i++) k->t[i] = _mm512_loadu_si512(iq2xxs_grid_codes + 32 * i);
    k->ks0 = _mm512_loadu_si512(ksigns_iq2xs);
    k->ks1 = _mm512_loadu_si512(ksigns_iq2xs + 64);
    /* Output bit i of the affine map takes the input bits in byte 7-i:
     * 8 ^ (bit0 ? 17 : 0) ^ (bit1 ? 35 : 0) = 8, 25, 43 for codes 0, 1, 2. */
    k->code_map = _mm512_set1_epi64(0x0302000001020000LL);
    k->gsel = _mm512_load_si512(k_iq2_gidx_sel);
    k->ssel = _mm512_load_si512(k_iq2_sign_sel);
    k->ctrl_signs = _mm512_set1_epi64(0x352e2720LL); /* byte l <- bits 32+7l.. */
    for (int sp = 0; sp < 4; sp++) {
        k->ctrl_codes[sp] = _mm512_set1_epi64((long long)(0x0e0c0a0806040200ULL + 0x1010101010101010ULL * (uint64_t)sp));
        k->ctrl_mask[sp] = _mm512_set1_epi64((long long)(0x0706050403020100ULL + 0x0808080808080808ULL * (uint64_t)sp));
    }
    k->bit6 = _mm512_set1_epi16(0x40);
    k->bit7 = _mm512_set1_epi16(0x80);
    k->one64 = _mm512_set1_epi64(1);
}

/* Integer part of one IQ2_XXS super-block: lanes sum to
 * Σ_b (2·ls_b+1)·Σ signed-grid·q8. */
__attribute__((target("avx512vbmi,avx512bitalg,gfni"))) static inline __m512i
iq2_xxs_int(const iq2_consts *k, const block_iq2_xxs *w, const block_q8_K *x) {
    const __m512i qs = _mm512_loadu_si512(w->qs);
    /* 32 grid codes (see the layout note above). */
    const __m512i gi = _mm512_maskz_permutexvar_epi8(0x5555555555555555ULL, k->gsel, qs);
    const __mmask32 k6 = _mm512_test_epi16_mask(gi, k->bit6), k7 = _mm512_test_epi16_mask(gi, k->bit7);
    const __m512i c01 = _mm512_mask_mov_epi16(_mm512_permutex2var_epi16(k->t[0], gi, k->t[1]), k6,
                                              _mm512_permutex2var_epi16(k->t[2], gi, k->t[3]));
    const __m512i c23 = _mm512_mask_mov_epi16(_mm512_permutex2var_epi16(k->t[4], gi, k->t[5]), k6,
                                              _mm512_permutex2var_epi16(k->t[6], gi, k->t[7]));
    const __m512i codes = _mm512_mask_mov_epi16(c01, k7, c23);
    /* 32 full sign bytes, transposed like the codes. */
    const __m512i s7 = _mm512_permutexvar_epi8(k->ssel, _mm512_multishift_epi64_epi8(k->ctrl_signs, qs));
    const __m512i sg = _mm512_permutex2var_epi8(k->ks0, s7, k->ks1);
    /* 2·ls + 1 per sub-block as eight int16. */
    const __m512i ls = _mm512_or_si512(_mm512_slli_epi64(_mm512_srli_epi64(qs, 60), 1), k->one64);
    const __m512i sc16 = _mm512_zextsi128_si512(_mm512_cvtepi64_epi16(ls));
    const int8_t *q8 = x->qs;
    __m512i acc[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
#pragma GCC unroll 4
    for (int sp = 0; sp < 4; sp++) {
        /* Each byte's low 2 bits are its code; one GF(2) affine map per
         * byte turns 0, 1, 2 into 8, 25, 43 (no shuffle port). */
        const __m512i gv = _mm512_gf2p8affine_epi64_epi8(_mm512_multishift_epi64_epi8(k->ctrl_codes[sp], codes),
                                                         k->code_map, 8);
        /* Sign mask straight from the sign bytes: bit 8g+j = bit j of the
         * sign byte of group 8sp+g. */
        const __mmask64 neg = _mm512_bitshuffle_epi64_mask(sg, k->ctrl_mask[sp]);
        const __m512i y = _mm512_loadu_si512(q8 + 64 * sp);
        const __m512i ys = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
        const __m512i s = _mm512_permutexvar_epi16(_mm512_load_si512(k_iq2_scale_idx[sp]), sc16);
        acc[sp & 1] = _mm512_dpwssd_epi32(acc[sp & 1], _mm512_maddubs_epi16(gv, ys), s);
    }
    return _mm512_add_epi32(acc[0], acc[1]);
}

__attribute__((target("avx512vbmi,avx512bitalg,gfni")))
static float dot_iq2_xxs_avx512(const block_iq2_xxs *w, const block_q8_K *x, int64_t n) {
    iq2_consts k;
    iq2_consts_init(&k);
    const int64_t nb = n / QK_K;
    float sumf = 0.0f;
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        /* Four super-blocks' integer sums reduced together. */
        const __m512i a0 = iq2_xxs_int(&k, w + b, x + b), a1 = iq2_xxs_int(&k, w + b + 1, x + b + 1);
        const __m512i a2 = iq2_xxs_int(&k, w + b + 2, x + b + 2), a3 = iq2_xxs_int(&k, w + b + 3, x + b + 3);
        int32_t bs[4];
        _mm_storeu_si128((__m128i *)bs, hsum4_512(a0, a1, a2, a3));
        for (int j = 0; j < 4; j++) sumf = iq2_block_acc(sumf, x[b + j].d, _cvtsh_ss(w[b + j].d), bs[j]);
    }
    for (; b < nb; b++)
        sumf = iq2_block_acc(sumf, x[b].d, _cvtsh_ss(w[b].d), _mm512_reduce_add_epi32(iq2_xxs_int(&k, w + b, x + b)));
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
