/* test_quant.c — quant formats and kernels: the type table, f16/bf16
 * conversion, dequantisation of hand-built blocks (bytes laid out from the
 * model-spec tables, expected floats written out), the bit-exact activation
 * quantisers on crafted inputs, the IQ2_XXS tables, every SIMD dot against
 * the portable one (routed-expert dots bit-identical), portable dots against
 * dequantise-then-f64, and writer round-trip error bounds.
 *
 * Random inputs are fresh each run; the seed is printed and FP_SEED=<n>
 * replays a run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>
#include <cmocka.h>
#include <openssl/sha.h>

#include "quant.h"
#include "quant_isa.h"

static uint64_t rng_state;
static uint64_t rnd(void) {
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static float rndf(void) { return (float)((double)(rnd() >> 11) * 0x1p-53); } /* [0, 1) */
static float rnd_gauss(void) {
    float u = rndf(), v = rndf();
    if (u < 1e-12f) u = 1e-12f;
    return sqrtf(-2.0f * logf(u)) * cosf(6.28318530718f * v);
}
static void rnd_bytes(void *p, size_t n) {
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)rnd();
}
/* A finite, positive f16 scale in [lo, hi). */
static uint16_t rnd_scale(float lo, float hi) { return f32_to_fp16(lo + (hi - lo) * rndf()); }

static float f32_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- type table ------------------------------------------------------------- */

static void test_type_table(void **st) {
    (void)st;
    static const struct { int t; const char *name; int be, bb; } want[] = {
        {QT_F32, "F32", 1, 4},       {QT_F16, "F16", 1, 2},          {QT_BF16, "BF16", 1, 2},
        {QT_Q8_0, "Q8_0", 32, 34},   {QT_Q2_K, "Q2_K", 256, 84},     {QT_Q4_K, "Q4_K", 256, 144},
        {QT_IQ2_XXS, "IQ2_XXS", 256, 66}, {QT_I32, "I32", 1, 4},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_true(qtype_known(want[i].t));
        assert_string_equal(qtype_name(want[i].t), want[i].name);
        assert_int_equal(qtype_block_elems(want[i].t), want[i].be);
        assert_int_equal(qtype_block_bytes(want[i].t), want[i].bb);
        assert_int_equal(qtype_row_bytes(want[i].t, (int64_t)want[i].be * 7), (size_t)want[i].bb * 7);
    }
    assert_false(qtype_known(QT_Q8_K)); /* activation layout, never a tensor type */
    assert_int_equal(qtype_block_bytes(QT_Q8_K), 292);
    assert_false(qtype_known(2));
    assert_false(qtype_known(-1));
    assert_string_equal(qtype_name(99), "?");
    assert_int_equal(qtype_block_elems(99), 0);
    assert_int_equal(qtype_row_bytes(QT_Q8_0, 33), 0);
    assert_int_equal(qtype_row_bytes(QT_Q2_K, 128), 0);
    assert_int_equal(qtype_row_bytes(QT_Q8_0, -32), 0);
    assert_int_equal(qtype_row_bytes(99, 32), 0);
    assert_int_equal(qtype_row_bytes(QT_F16, 3), 6);
}

/* ---- f16 / bf16 -------------------------------------------------------------- */

static void test_fp16_known(void **st) {
    (void)st;
    static const struct { uint16_t h; float f; } k[] = {
        {0x3c00, 1.0f},      {0xc000, -2.0f},          {0x3800, 0.5f},          {0x7bff, 65504.0f},
        {0x0001, 0x1p-24f},  {0x03ff, 1023 * 0x1p-24f}, {0x0400, 0x1p-14f},     {0x8001, -0x1p-24f},
        {0x3555, 0.333251953125f}, {0x0000, 0.0f},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        assert_true(fp16_to_f32(k[i].h) == k[i].f);
        assert_int_equal(f32_to_fp16(k[i].f), k[i].h);
    }
    /* Signed zero, infinities, NaN. */
    assert_true(signbit(fp16_to_f32(0x8000)) && fp16_to_f32(0x8000) == 0.0f);
    assert_int_equal(f32_to_fp16(-0.0f), 0x8000);
    assert_true(isinf(fp16_to_f32(0x7c00)) && fp16_to_f32(0x7c00) > 0);
    assert_true(isinf(fp16_to_f32(0xfc00)) && fp16_to_f32(0xfc00) < 0);
    assert_true(isnan(fp16_to_f32(0x7e00)));
    assert_true(isnan(fp16_to_f32(0x7c01)));
    assert_int_equal(f32_to_fp16(INFINITY), 0x7c00);
    assert_int_equal(f32_to_fp16(-INFINITY), 0xfc00);
    const uint16_t hn = f32_to_fp16(NAN);
    assert_true((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0);
    /* Round to nearest, ties to even. */
    assert_int_equal(f32_to_fp16(1.0f + 0x1p-11f), 0x3c00);            /* tie, even below */
    assert_int_equal(f32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);        /* tie, even above */
    assert_int_equal(f32_to_fp16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01); /* just past the tie */
    assert_int_equal(f32_to_fp16(65519.0f), 0x7bff);
    assert_int_equal(f32_to_fp16(65520.0f), 0x7c00);                   /* tie to even = overflow */
    assert_int_equal(f32_to_fp16(1e6f), 0x7c00);
    assert_int_equal(f32_to_fp16(0x1p-25f), 0x0000);                   /* subnormal tie to even (0) */
    assert_int_equal(f32_to_fp16(3 * 0x1p-25f), 0x0002);               /* subnormal tie to even (2) */
    assert_int_equal(f32_to_fp16(0x1p-25f + 0x1p-40f), 0x0001);
    assert_int_equal(f32_to_fp16(1023.5f * 0x1p-24f), 0x0400);         /* rounds up into the normals */
    assert_int_equal(f32_to_fp16(f32_of(0x00000001)), 0x0000);         /* f32 subnormal */
    assert_int_equal(f32_to_fp16(-1e-30f), 0x8000);
    assert_true(f16_round(1.0f + 0x1p-12f) == 1.0f);
    assert_true(f16_round(0.1f) == fp16_to_f32(0x2e66));
    /* bf16 is the top half of an f32. */
    assert_true(bf16_to_f32(0x3f80) == 1.0f);
    assert_true(bf16_to_f32(0xc0a0) == -5.0f);
    assert_true(isinf(bf16_to_f32(0x7f80)));
    assert_true(bf16_to_f32(0x0001) == f32_of(0x00010000));
}

/* Every non-NaN half survives f16 -> f32 -> f16; the f32 value is ordered. */
static void test_fp16_exhaustive(void **st) {
    (void)st;
    float prev = -INFINITY;
    for (int h = 0xfc00; h >= 0x8000; h--) { /* -inf .. -0 ascending */
        const float f = fp16_to_f32((uint16_t)h);
        assert_int_equal(f32_to_fp16(f), h);
        assert_true(f >= prev);
        prev = f;
    }
    for (int h = 0; h <= 0x7c00; h++) {
        const float f = fp16_to_f32((uint16_t)h);
        assert_int_equal(f32_to_fp16(f), h);
        assert_true(f >= prev);
        prev = f;
    }
    for (int h = 0x7c01; h < 0x7fff; h += 37) assert_true(isnan(fp16_to_f32((uint16_t)h)));
}

/* Random f32 -> nearest half (ties to even), checked against neighbours in
 * double, plus hardware F16C as a second oracle when the CPU has it. */
#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("f16c"))) static uint16_t hw_f32_to_fp16(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
#endif
static void test_fp16_round_random(void **st) {
    (void)st;
#if defined(__x86_64__)
    const int hw = __builtin_cpu_supports("f16c");
#endif
    for (int i = 0; i < 200000; i++) {
        /* Exponents spanning subnormal halves to overflow. */
        const uint32_t u = (uint32_t)(rnd() & 0x80000000u) | (uint32_t)((96 + rnd() % 50) << 23) | (uint32_t)(rnd() & 0x7fffff);
        const float f = f32_of(u);
        const uint16_t h = f32_to_fp16(f);
#if defined(__x86_64__)
        if (hw) assert_int_equal(h, hw_f32_to_fp16(f));
#endif
        if ((h & 0x7fff) >= 0x7c00) {
            assert_true(fabsf(f) >= 65520.0f);
            continue;
        }
        const double e = fabs((double)fp16_to_f32(h) - f);
        const double up = fabs((double)fp16_to_f32((uint16_t)(h + 1)) - f);
        assert_true(e <= up);
        if ((h & 0x7fff) != 0) {
            const double dn = fabs((double)fp16_to_f32((uint16_t)(h - 1)) - f);
            assert_true(e <= dn);
            if (e == dn || e == up) assert_int_equal(h & 1, 0); /* ties go to even */
        }
    }
}

/* ---- IQ2_XXS tables ----------------------------------------------------------- */

static void test_iq2_tables(void **st) {
    (void)st;
    assert_true(iq2xxs_grid[0] == 0x0808080808080808ULL);
    assert_true(iq2xxs_grid[255] == 0x2b2b2b1908081908ULL);
    uint8_t bytes[2048];
    for (int i = 0; i < 256; i++)
        for (int j = 0; j < 8; j++) {
            bytes[8 * i + j] = (uint8_t)(iq2xxs_grid[i] >> (8 * j));
            assert_true(bytes[8 * i + j] == 8 || bytes[8 * i + j] == 25 || bytes[8 * i + j] == 43);
        }
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(bytes, sizeof bytes, md);
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) sprintf(hex + 2 * i, "%02x", md[i]);
    assert_string_equal(hex, "05826b5d3e472a3a78f196be62ac78acf81df0f909626e12ab9fa2a5d490dd54");
    /* Grid entries are distinct. */
    for (int i = 1; i < 256; i++) assert_true(iq2xxs_grid[i] != iq2xxs_grid[i - 1]);
    /* The 2-bit code table the AVX-512 kernel uses is the same grid. */
    for (int i = 0; i < 256; i++)
        for (int j = 0; j < 8; j++) {
            static const uint8_t val[4] = {8, 25, 43, 0};
            const int c = (iq2xxs_grid_codes[i] >> (2 * j)) & 3;
            assert_true(c < 3);
            assert_int_equal(val[c], bytes[8 * i + j]);
        }
    /* ksigns: low 7 bits = index, bit 7 makes the popcount even. */
    assert_int_equal(ksigns_iq2xs[0], 0);
    assert_int_equal(ksigns_iq2xs[1], 129);
    assert_int_equal(ksigns_iq2xs[3], 3);
    assert_int_equal(ksigns_iq2xs[64], 192);
    assert_int_equal(ksigns_iq2xs[127], 255);
    for (int s = 0; s < 128; s++) {
        assert_int_equal(ksigns_iq2xs[s] & 127, s);
        int pc = 0;
        for (int b = 0; b < 8; b++) pc += (ksigns_iq2xs[s] >> b) & 1;
        assert_int_equal(pc % 2, 0);
    }
}

/* ---- dequantisation of hand-built blocks ------------------------------------------ */

static void test_dequant_q8_0(void **st) {
    (void)st;
    block_q8_0 b[2];
    memset(b, 0, sizeof b);
    b[0].d = 0x3800; /* 0.5 */
    b[0].qs[0] = -128;
    b[0].qs[1] = -1;
    b[0].qs[5] = 3;
    b[0].qs[31] = 127;
    b[1].d = 0xc400; /* -4 */
    b[1].qs[7] = 9;
    float y[64];
    assert_int_equal(dequantize_row(QT_Q8_0, b, y, 64), 0);
    assert_true(y[0] == -64.0f && y[1] == -0.5f && y[5] == 1.5f && y[31] == 63.5f && y[2] == 0.0f);
    assert_true(y[32 + 7] == -36.0f && y[32] == 0.0f);
    assert_int_equal(dequantize_row(QT_Q8_0, b, y, 33), -1);
}

static void test_dequant_q2_K(void **st) {
    (void)st;
    block_q2_K b;
    memset(&b, 0, sizeof b);
    b.d = 0x4000;    /* 2.0 */
    b.dmin = 0x3400; /* 0.25 */
    /* qs[0] packs codes for elements 0, 32, 64, 96 (shift 0, 2, 4, 6). */
    b.qs[0] = (0 << 0) | (1 << 2) | (2 << 4) | (3 << 6);
    b.qs[33] = 0x03;    /* element 128 + 1 (k = 1, j = 0, l = 1): code 3 */
    b.qs[63] = 0x80;    /* element 128 + 96 + 31 = 255: code 2 */
    b.scales[0] = 0x21; /* elements 0..15: scale 1, min 2 */
    b.scales[2] = 0x03; /* 32..47: scale 3, min 0 */
    b.scales[4] = 0x15; /* 64..79: scale 5, min 1 */
    b.scales[6] = 0xf0; /* 96..111: scale 0, min 15 */
    b.scales[8] = 0x0f; /* 128..143: scale 15 */
    b.scales[15] = 0x47; /* 240..255: scale 7, min 4 */
    float y[256];
    assert_int_equal(dequantize_row(QT_Q2_K, &b, y, 256), 0);
    assert_true(y[0] == -0.5f);      /* 2·1·0 − 0.25·2 */
    assert_true(y[1] == -0.5f);
    assert_true(y[32] == 6.0f);      /* 2·3·1 */
    assert_true(y[64] == 19.75f);    /* 2·5·2 − 0.25 */
    assert_true(y[96] == -3.75f);    /* 0 − 0.25·15 */
    assert_true(y[129] == 90.0f);    /* 2·15·3 */
    assert_true(y[128] == 0.0f);
    assert_true(y[255] == 27.0f);    /* 2·7·2 − 0.25·4 */
    assert_true(y[254] == -1.0f);
    assert_true(y[16] == 0.0f);      /* scales[1] = 0 */
}

static void test_dequant_q4_K(void **st) {
    (void)st;
    block_q4_K b;
    memset(&b, 0, sizeof b);
    b.d = 0x3c00;    /* 1.0 */
    b.dmin = 0x3800; /* 0.5 */
    /* Sub-block 0: scale 1, min 2 (scales[0], scales[4]). Sub-block 5:
     * scale 42 = 0b10'1010, min 19 = 0b01'0011 -> low nibbles in
     * scales[9], high bits in scales[1] >> 6 and scales[5] >> 6. */
    b.scales[0] = 1;
    b.scales[4] = 2;
    b.scales[9] = 0x3a;
    b.scales[1] = 0x80;
    b.scales[5] = 0x40;
    /* Sub-block 7: scale 63, min 0: scales[11] low nibble 15, scales[3] bits 6-7 = 3. */
    b.scales[11] = 0x0f;
    b.scales[3] = 0xc0;
    b.qs[0] = 0x05;  /* element 0 (low nibble), element 32 (high nibble) = 0 */
    b.qs[64] = 0x70; /* element 160: chunk 2, high nibble -> sub-block 5 */
    b.qs[127] = 0xf0; /* element 255: chunk 3, high nibble, l = 31 -> sub-block 7 */
    float y[256];
    assert_int_equal(dequantize_row(QT_Q4_K, &b, y, 256), 0);
    assert_true(y[0] == 4.0f);      /* 1·1·5 − 0.5·2 */
    assert_true(y[1] == -1.0f);
    assert_true(y[32] == 0.0f);     /* sub-block 1: scale 0, min 0 */
    assert_true(y[160] == 284.5f);  /* 42·7 − 0.5·19 */
    assert_true(y[161] == -9.5f);
    assert_true(y[128] == 0.0f);    /* sub-block 4 */
    assert_true(y[255] == 945.0f);  /* 63·15 */
    assert_true(y[224] == 0.0f);
}

static void test_dequant_iq2_xxs(void **st) {
    (void)st;
    block_iq2_xxs b;
    memset(&b, 0, sizeof b);
    b.d = 0x3c00; /* 1.0 */
    /* Sub-block 0: grid indices 0, 255, 1, 2; signs per group 1, 0, 3, 0;
     * ls = 5 -> db = (0.5 + 5)·0.25 = 1.375. */
    uint8_t sb0[8] = {0, 255, 1, 2, 0, 0, 0, 0};
    const uint32_t aux0 = 1u | 0u << 7 | 3u << 14 | 0u << 21 | 5u << 28;
    memcpy(sb0 + 4, &aux0, 4);
    memcpy(&b.qs[0], sb0, 8);
    /* Sub-block 7: index 255 in group 3 with sign pattern 127, ls = 15. */
    uint8_t sb7[8] = {0, 0, 0, 255, 0, 0, 0, 0};
    const uint32_t aux7 = 127u << 21 | 15u << 28;
    memcpy(sb7 + 4, &aux7, 4);
    memcpy(&b.qs[28], sb7, 8);
    float y[256];
    assert_int_equal(dequantize_row(QT_IQ2_XXS, &b, y, 256), 0);
    /* Group 0: grid 0 = all 8s; ksigns[1] = 129 negates weights 0 and 7. */
    assert_true(y[0] == -11.0f && y[7] == -11.0f);
    for (int j = 1; j < 7; j++) assert_true(y[j] == 11.0f);
    /* Group 1: grid 255 = bytes 08 19 08 08 19 2b 2b 2b, no signs. */
    const float g255[8] = {11.0f, 34.375f, 11.0f, 11.0f, 34.375f, 59.125f, 59.125f, 59.125f};
    for (int j = 0; j < 8; j++) assert_true(y[8 + j] == g255[j]);
    /* Group 2: grid 1 = 2b then 08s; ksigns[3] = 3 negates weights 0, 1. */
    assert_true(y[16] == -59.125f && y[17] == -11.0f && y[18] == 11.0f && y[23] == 11.0f);
    /* Group 3: grid 2 = 19 19 08 ...; no signs. */
    assert_true(y[24] == 34.375f && y[25] == 34.375f && y[26] == 11.0f);
    /* Sub-block 7: db = 15.5·0.25 = 3.875; group 3, ksigns[127] = 255: all negative. */
    for (int j = 0; j < 8; j++) assert_true(y[224 + 24 + j] == -3.875f * (float)(uint8_t)(iq2xxs_grid[255] >> (8 * j)));
    assert_true(y[224] == 31.0f); /* group 0, grid 0 (8s), db 3.875 */
    /* A zero-scale block is all zeros. */
    b.d = 0;
    assert_int_equal(dequantize_row(QT_IQ2_XXS, &b, y, 256), 0);
    for (int i = 0; i < 256; i++) assert_true(y[i] == 0.0f);
}

static void test_dequant_plain(void **st) {
    (void)st;
    const uint16_t h[3] = {0x3c00, 0xc200, 0x0001};
    const uint16_t bf[2] = {0x4040, 0xbf00};
    const int32_t iv[2] = {-7, 123456};
    const float fv[2] = {1.5f, -0.0f};
    float y[3];
    assert_int_equal(dequantize_row(QT_F16, h, y, 3), 0);
    assert_true(y[0] == 1.0f && y[1] == -3.0f && y[2] == 0x1p-24f);
    assert_int_equal(dequantize_row(QT_BF16, bf, y, 2), 0);
    assert_true(y[0] == 3.0f && y[1] == -0.5f);
    assert_int_equal(dequantize_row(QT_I32, iv, y, 2), 0);
    assert_true(y[0] == -7.0f && y[1] == 123456.0f);
    assert_int_equal(dequantize_row(QT_F32, fv, y, 2), 0);
    assert_true(y[0] == 1.5f && y[1] == 0.0f);
    assert_int_equal(dequantize_row(77, fv, y, 2), -1);
}

/* ---- activation quantisers --------------------------------------------------------- */

static void test_q8_0a_crafted(void **st) {
    (void)st;
    float x[64] = {0};
    /* amax = 127 -> d = 1, id = 1: the quants are lrintf(x) exactly. */
    const float v[] = {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f, -127.0f, 3.49f, -3.51f};
    const int8_t q[] = {127, 0, 2, 2, 0, -2, -2, 126, -127, 3, -4};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) x[i] = v[i];
    /* Block 1 stays zero. */
    block_q8_0a y[2];
    memset(y, 0x55, sizeof y);
    quantize_row_q8_0a(x, y, 64);
    assert_true(y[0].d == 1.0f);
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) assert_int_equal(y[0].qs[i], q[i]);
    for (size_t i = sizeof q; i < 32; i++) assert_int_equal(y[0].qs[i], 0);
    assert_true(y[1].d == 0.0f);
    for (int i = 0; i < 32; i++) assert_int_equal(y[1].qs[i], 0);
    /* The scale stays f32 (not rounded to f16): amax = 1 -> d = 1/127. */
    float x2[32] = {1.0f, -1.0f, 0.3f};
    quantize_row_q8_0a(x2, y, 32);
    assert_true(y[0].d == 1.0f / 127.0f);
    assert_true(y[0].d != f16_round(1.0f / 127.0f));
    assert_int_equal(y[0].qs[0], 127);
    assert_int_equal(y[0].qs[1], -127);
    assert_int_equal(y[0].qs[2], (int)lrintf(0.3f * (1.0f / (1.0f / 127.0f))));
}

static void test_q8_K_crafted(void **st) {
    (void)st;
    float x[512] = {0};
    /* Block 0: the max |x| is -127 at 5 and +127 at 9: the first wins, so
     * iscale = −127/−127 = 1 and the quants are lrintf(x) (ties to even). */
    x[5] = -127.0f;
    x[9] = 127.0f;
    x[0] = 0.5f;
    x[1] = 1.5f;
    x[2] = 2.5f;
    x[3] = -3.5f;
    x[4] = -0.5f;
    x[16] = 100.0f;
    x[17] = -20.0f;
    /* Block 1: zero. */
    block_q8_K y[2];
    memset(y, 0x55, sizeof y);
    quantize_row_q8_K(x, y, 512);
    assert_true(y[0].d == 1.0f);
    const int8_t want[] = {0, 2, 2, -4, 0, -127, 0, 0, 0, 127};
    for (size_t i = 0; i < sizeof want; i++) assert_int_equal(y[0].qs[i], want[i]);
    assert_int_equal(y[0].bsums[0], 0);
    assert_int_equal(y[0].bsums[1], 80);
    for (int s = 2; s < 16; s++) assert_int_equal(y[0].bsums[s], 0);
    assert_true(y[1].d == 0.0f);
    for (int i = 0; i < 256; i++) assert_int_equal(y[1].qs[i], 0);
    for (int s = 0; s < 16; s++) assert_int_equal(y[1].bsums[s], 0);
    /* Positive max: iscale = −127/2 < 0, so d < 0 and the max maps to −127. */
    float x2[256] = {0};
    x2[7] = 2.0f;
    x2[8] = -2.0f;
    x2[9] = 1.0f;
    quantize_row_q8_K(x2, y, 256);
    assert_true(y[0].d == 1.0f / (-127.0f / 2.0f));
    assert_int_equal(y[0].qs[7], -127);
    assert_int_equal(y[0].qs[8], 127);
    assert_int_equal(y[0].qs[9], -64); /* −63.5 ties to even */
    assert_int_equal(y[0].bsums[0], -64);
}

/* Random inputs: quants in [−127, 127], bsums consistent, q·d within half a step. */
static void test_act_quant_random(void **st) {
    (void)st;
    enum { N = 1024 };
    float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = rnd_gauss() * (i < 512 ? 1e-3f : 50.0f);
    block_q8_K qk[N / QK_K];
    quantize_row_q8_K(x, qk, N);
    assert_int_equal(dequantize_row(QT_Q8_K, qk, y, N), 0);
    for (int b = 0; b < N / QK_K; b++) {
        for (int s = 0; s < 16; s++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) {
                const int v = qk[b].qs[16 * s + j];
                assert_true(v >= -127 && v <= 127);
                sum += v;
            }
            assert_int_equal(qk[b].bsums[s], sum);
        }
        for (int j = 0; j < QK_K; j++) assert_true(fabsf(y[b * QK_K + j] - x[b * QK_K + j]) <= 0.5001f * fabsf(qk[b].d));
    }
    block_q8_0a qa[N / QK8_0];
    quantize_row_q8_0a(x, qa, N);
    for (int b = 0; b < N / QK8_0; b++)
        for (int j = 0; j < QK8_0; j++) {
            assert_true(qa[b].qs[j] >= -127);
            assert_true(fabsf(qa[b].d * qa[b].qs[j] - x[b * QK8_0 + j]) <= 0.5001f * qa[b].d);
        }
    /* The reference formulas written out with lrintf, on inputs full of
     * exact halves (x = k/2 · 2^e makes x·id land on ties often). */
    for (int i = 0; i < N; i++) x[i] = (float)((int)(rnd() % 255) - 127) * 0.5f * (i % 3 == 0 ? 1.0f : 0.25f);
    for (int b = 0; b < N / QK_K; b++) x[b * QK_K + (int)(rnd() % QK_K)] = (rnd() & 1) ? 63.5f : -63.5f;
    quantize_row_q8_K(x, qk, N);
    quantize_row_q8_0a(x, qa, N);
    for (int b = 0; b < N / QK_K; b++) {
        float amax = 0, m = 0;
        for (int j = 0; j < QK_K; j++)
            if (fabsf(x[b * QK_K + j]) > amax) amax = fabsf(x[b * QK_K + j]), m = x[b * QK_K + j];
        const float iscale = -127.0f / m;
        for (int j = 0; j < QK_K; j++) {
            long q = lrintf(iscale * x[b * QK_K + j]);
            q = q < -128 ? -128 : q > 127 ? 127 : q;
            assert_int_equal(qk[b].qs[j], q);
        }
        assert_true(qk[b].d == 1.0f / iscale);
    }
    for (int b = 0; b < N / QK8_0; b++) {
        float amax = 0;
        for (int j = 0; j < QK8_0; j++) amax = fabsf(x[b * QK8_0 + j]) > amax ? fabsf(x[b * QK8_0 + j]) : amax;
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        assert_true(qa[b].d == d);
        for (int j = 0; j < QK8_0; j++) {
            long q = lrintf(x[b * QK8_0 + j] * id);
            q = q < -128 ? -128 : q > 127 ? 127 : q;
            assert_int_equal(qa[b].qs[j], q);
        }
    }
}

/* ---- random weight blocks -------------------------------------------------------------- */

static void rnd_q8_0(block_q8_0 *b, int64_t nb) {
    rnd_bytes(b, (size_t)nb * sizeof *b);
    for (int64_t i = 0; i < nb; i++) b[i].d = rnd_scale(1e-3f, 2e-2f);
}
static void rnd_q2_K(block_q2_K *b, int64_t nb) {
    rnd_bytes(b, (size_t)nb * sizeof *b);
    for (int64_t i = 0; i < nb; i++) {
        b[i].d = rnd_scale(1e-3f, 1e-2f);
        b[i].dmin = rnd_scale(1e-3f, 1e-2f);
    }
}
static void rnd_q4_K(block_q4_K *b, int64_t nb) {
    rnd_bytes(b, (size_t)nb * sizeof *b);
    for (int64_t i = 0; i < nb; i++) {
        b[i].d = rnd_scale(1e-4f, 1e-3f);
        b[i].dmin = rnd_scale(1e-4f, 1e-3f);
    }
}
static void rnd_iq2_xxs(block_iq2_xxs *b, int64_t nb) {
    rnd_bytes(b, (size_t)nb * sizeof *b);
    for (int64_t i = 0; i < nb; i++) b[i].d = rnd_scale(1e-3f, 1e-2f);
}
/* Raw Q8_K activations: every quant in [−127, 127] (what the quantiser
 * produces), including long runs of the extremes. */
static void rnd_q8_K(block_q8_K *b, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const int mode = (int)(rnd() % 4);
        for (int j = 0; j < QK_K; j++) {
            int v = (int)(rnd() % 255) - 127;
            if (mode == 1) v = rnd() & 1 ? 127 : -127;
            b[i].qs[j] = (int8_t)v;
        }
        for (int s = 0; s < 16; s++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += b[i].qs[16 * s + j];
            b[i].bsums[s] = (int16_t)sum;
        }
        b[i].d = (rnd() & 1 ? 1.0f : -1.0f) * (1e-3f + rndf());
    }
}

static const quant_kernels *isa_or_skip(enum quant_isa isa) { return quant_kernels_for(isa); }

/* First-order rounding bound of summing terms t[] left to right in f32,
 * each term itself carrying a few roundings: ε·(Σ_k |prefix_k| + 3·Σ|t_k|). */
#define EPS32 1.2e-7
static double chain_bound(const double *t, int64_t n) {
    double s = 0, b = 0, m = 0;
    for (int64_t k = 0; k < n; k++) {
        s += t[k];
        b += fabs(s);
        m += fabs(t[k]);
    }
    return EPS32 * (b + 3 * m);
}

/* ---- SIMD vs portable ------------------------------------------------------------------ */

static void test_expert_dots_bit_identical(void **st) {
    (void)st;
    const quant_kernels *p = quant_kernels_for(QISA_PORTABLE);
    enum { MAXB = 24 };
    block_q2_K *w2 = malloc(MAXB * sizeof *w2);
    block_q4_K *w4 = malloc(MAXB * sizeof *w4);
    block_iq2_xxs *wi = malloc(MAXB * sizeof *wi);
    block_q8_K *xk = malloc(MAXB * sizeof *xk);
    float *xf = malloc(MAXB * QK_K * sizeof *xf);
    int tested = 0;
    for (int isa = QISA_AVX2; isa < QISA_COUNT; isa++) {
        const quant_kernels *k = isa_or_skip((enum quant_isa)isa);
        if (!k) continue;
        tested++;
        for (int trial = 0; trial < 60; trial++) {
            const int nb = 1 + (int)(rnd() % MAXB);
            const int64_t n = (int64_t)nb * QK_K;
            rnd_q2_K(w2, nb);
            rnd_q4_K(w4, nb);
            rnd_iq2_xxs(wi, nb);
            if (trial % 2) {
                rnd_q8_K(xk, nb);
            } else {
                for (int64_t i = 0; i < n; i++) xf[i] = rnd_gauss();
                quantize_row_q8_K(xf, xk, n);
            }
            float a, b;
            a = p->dot_q2_K(w2, xk, n), b = k->dot_q2_K(w2, xk, n);
            assert_memory_equal(&a, &b, sizeof a);
            a = p->dot_q4_K(w4, xk, n), b = k->dot_q4_K(w4, xk, n);
            assert_memory_equal(&a, &b, sizeof a);
            a = p->dot_iq2_xxs(wi, xk, n), b = k->dot_iq2_xxs(wi, xk, n);
            assert_memory_equal(&a, &b, sizeof a);
        }
    }
    fprintf(stderr, "test_quant: %d SIMD kernel table(s) compared with portable\n", tested);
    free(w2);
    free(w4);
    free(wi);
    free(xk);
    free(xf);
}

/* Dense dots may sum in another order: they must agree with portable
 * within both paths' rounding bounds (portable: one chain; SIMD: chains of
 * n/lanes terms), and repeat exactly. */
static void test_dense_dots_close(void **st) {
    (void)st;
    const quant_kernels *p = quant_kernels_for(QISA_PORTABLE);
    enum { MAXN = 4096 + 64 };
    block_q8_0 *w8 = malloc(MAXN / QK8_0 * sizeof *w8);
    block_q8_0a *x8 = malloc(MAXN / QK8_0 * sizeof *x8);
    uint16_t *wh = malloc(MAXN * sizeof *wh);
    float *xf = malloc(MAXN * sizeof *xf), *wf = malloc(MAXN * sizeof *wf);
    double *t = malloc(MAXN * sizeof *t);
    for (int isa = QISA_AVX2; isa < QISA_COUNT; isa++) {
        const quant_kernels *k = isa_or_skip((enum quant_isa)isa);
        if (!k) continue;
        for (int trial = 0; trial < 60; trial++) {
            /* Q8_0: any multiple of 32, including odd block counts. */
            const int nb = 1 + (int)(rnd() % (MAXN / QK8_0));
            const int64_t n = (int64_t)nb * QK8_0;
            rnd_q8_0(w8, nb);
            for (int64_t i = 0; i < n; i++) xf[i] = rnd_gauss();
            quantize_row_q8_0a(xf, x8, n);
            assert_int_equal(dequantize_row(QT_Q8_0, w8, wf, n), 0);
            double mag = 0;
            for (int b = 0; b < nb; b++) {
                t[b] = 0;
                for (int j = 0; j < QK8_0; j++) {
                    const double v = (double)wf[b * QK8_0 + j] * x8[b].d * x8[b].qs[j];
                    t[b] += v;
                    mag += fabs(v);
                }
            }
            float a = p->dot_q8_0(w8, x8, n), b = k->dot_q8_0(w8, x8, n);
            assert_true(fabs((double)a - b) <= chain_bound(t, nb) + EPS32 * (nb / 2 + 8) * mag + 1e-30);
            assert_true(k->dot_q8_0(w8, x8, n) == b);
            /* F16: any length (tails), values over several binades. */
            const int64_t nh = 1 + (int64_t)(rnd() % MAXN);
            mag = 0;
            for (int64_t i = 0; i < nh; i++) {
                wh[i] = f32_to_fp16(rnd_gauss() * (rnd() & 1 ? 1.0f : 1e-3f));
                xf[i] = rnd_gauss();
                t[i] = (double)fp16_to_f32(wh[i]) * xf[i];
                mag += fabs(t[i]);
            }
            a = p->dot_f16(wh, xf, nh), b = k->dot_f16(wh, xf, nh);
            assert_true(fabs((double)a - b) <= chain_bound(t, nh) + EPS32 * (nh / 32 + 16) * mag + 1e-30);
            assert_true(k->dot_f16(wh, xf, nh) == b);
        }
    }
    free(w8);
    free(x8);
    free(wh);
    free(xf);
    free(wf);
    free(t);
}

/* ---- portable vs dequantise-then-f64 ------------------------------------------------------ */

/* |x|-weighted magnitude of the K-quant terms: with the codes zeroed the
 * dequantised value is the −min part alone, so each weight splits into
 * its scale·q part and its min part without re-deriving the format. */
static double kquant_mag(int type, const void *w, size_t bytes, const float *wf, const float *xf, int64_t n) {
    void *z = malloc(bytes);
    float *off = malloc((size_t)n * sizeof *off);
    memcpy(z, w, bytes);
    const int64_t nb = n / QK_K;
    for (int64_t b = 0; b < nb; b++) {
        if (type == QT_Q2_K) memset(((block_q2_K *)z)[b].qs, 0, 64);
        if (type == QT_Q4_K) memset(((block_q4_K *)z)[b].qs, 0, 128);
    }
    assert_int_equal(dequantize_row(type, z, off, n), 0);
    double mag = 0;
    for (int64_t i = 0; i < n; i++) mag += fabs((double)xf[i]) * (fabs((double)wf[i] - off[i]) + fabs((double)off[i]));
    free(z);
    free(off);
    return mag;
}

static void test_portable_vs_f64(void **st) {
    (void)st;
    const quant_kernels *p = quant_kernels_for(QISA_PORTABLE);
    enum { NB = 16, N = NB * QK_K };
    block_q2_K w2[NB];
    block_q4_K w4[NB];
    block_iq2_xxs wi[NB];
    block_q8_0 w8[N / QK8_0];
    block_q8_K xk[NB];
    block_q8_0a x8[N / QK8_0];
    static float wf[N], xf[N], xr[N];
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < N; i++) xr[i] = rnd_gauss();
        quantize_row_q8_K(xr, xk, N);
        assert_int_equal(dequantize_row(QT_Q8_K, xk, xf, N), 0);
        struct { int type; const void *w; size_t bytes; float got; } c[3];
        rnd_q2_K(w2, NB);
        rnd_q4_K(w4, NB);
        rnd_iq2_xxs(wi, NB);
        c[0].type = QT_Q2_K, c[0].w = w2, c[0].bytes = sizeof w2, c[0].got = p->dot_q2_K(w2, xk, N);
        c[1].type = QT_Q4_K, c[1].w = w4, c[1].bytes = sizeof w4, c[1].got = p->dot_q4_K(w4, xk, N);
        c[2].type = QT_IQ2_XXS, c[2].w = wi, c[2].bytes = sizeof wi, c[2].got = p->dot_iq2_xxs(wi, xk, N);
        for (int t = 0; t < 3; t++) {
            assert_int_equal(dequantize_row(c[t].type, c[t].w, wf, N), 0);
            double ref = 0, mag = 0;
            for (int i = 0; i < N; i++) {
                ref += (double)wf[i] * xf[i];
                mag += fabs((double)wf[i] * xf[i]);
            }
            if (c[t].type != QT_IQ2_XXS) mag = kquant_mag(c[t].type, c[t].w, c[t].bytes, wf, xf, N);
            /* 16 blocks accumulated, a few roundings per block and per weight. */
            assert_true(fabs(ref - c[t].got) <= EPS32 * (NB + 8) * mag);
        }
        /* Q8_0 against Q8_0 activations: one f32 chain over the blocks. */
        rnd_q8_0(w8, N / QK8_0);
        quantize_row_q8_0a(xr, x8, N);
        assert_int_equal(dequantize_row(QT_Q8_0, w8, wf, N), 0);
        static double tb[N];
        double ref = 0;
        for (int b = 0; b < N / QK8_0; b++) {
            tb[b] = 0;
            for (int j = 0; j < QK8_0; j++) tb[b] += (double)wf[b * QK8_0 + j] * x8[b].d * x8[b].qs[j];
            ref += tb[b];
        }
        assert_true(fabs(ref - p->dot_q8_0(w8, x8, N)) <= chain_bound(tb, N / QK8_0));
        /* F16 against f32: one chain over the elements. */
        uint16_t wh[1000];
        ref = 0;
        for (int i = 0; i < 1000; i++) {
            wh[i] = f32_to_fp16(rnd_gauss());
            tb[i] = (double)fp16_to_f32(wh[i]) * xr[i];
            ref += tb[i];
        }
        assert_true(fabs(ref - p->dot_f16(wh, xr, 1000)) <= chain_bound(tb, 1000));
    }
    /* n = 0 is an empty sum. */
    assert_true(p->dot_q2_K(w2, xk, 0) == 0.0f);
    assert_true(p->dot_f16(NULL, NULL, 0) == 0.0f);
}

/* ---- writers: quantise -> dequantise round trips -------------------------------------------- */

static double rel_rms(const float *a, const float *b, int n) {
    double e = 0, s = 0;
    for (int i = 0; i < n; i++) {
        e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)a[i] * a[i];
    }
    return sqrt(e / s);
}

static void test_writer_round_trip(void **st) {
    (void)st;
    enum { NB = 8, N = NB * QK_K };
    static float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = rnd_gauss() * (i < N / 2 ? 0.02f : 3.0f);
    /* Q8_0: every element within half an f16-rounded step (plus the clamp
     * slack when rounding the scale to f16 shrank it). */
    block_q8_0 q8[N / QK8_0];
    quantize_row_q8_0(x, q8, N);
    assert_int_equal(dequantize_row(QT_Q8_0, q8, y, N), 0);
    for (int b = 0; b < N / QK8_0; b++) {
        float amax = 0;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(x[b * QK8_0 + j]));
        const float d = fp16_to_f32(q8[b].d);
        for (int j = 0; j < QK8_0; j++) assert_true(fabsf(x[b * QK8_0 + j] - y[b * QK8_0 + j]) <= 0.5f * d + amax * 0x1p-10f);
    }
    const double e8 = rel_rms(x, y, N);
    block_q4_K q4[NB];
    quantize_row_q4_K(x, q4, N);
    assert_int_equal(dequantize_row(QT_Q4_K, q4, y, N), 0);
    const double e4 = rel_rms(x, y, N);
    block_q2_K q2[NB];
    quantize_row_q2_K(x, q2, N);
    assert_int_equal(dequantize_row(QT_Q2_K, q2, y, N), 0);
    const double e2 = rel_rms(x, y, N);
    block_iq2_xxs qi[NB];
    quantize_row_iq2_xxs(x, qi, N);
    assert_int_equal(dequantize_row(QT_IQ2_XXS, qi, y, N), 0);
    const double ei = rel_rms(x, y, N);
    fprintf(stderr, "test_quant: writer rel. RMS error q8_0 %.4f q4_K %.4f q2_K %.4f iq2_xxs %.4f\n", e8, e4, e2, ei);
    assert_true(e8 < 0.01);
    assert_true(e4 < 0.12);
    assert_true(e2 < 0.40);
    assert_true(ei < 0.45);
    /* Per-block check for the small-magnitude half: the super-block scales
     * adapt, so the error there is relative to that block, not to 3.0. */
    quantize_row_q4_K(x, q4, N / 2);
    assert_int_equal(dequantize_row(QT_Q4_K, q4, y, N / 2), 0);
    assert_true(rel_rms(x, y, N / 2) < 0.12);
    /* All-zero input gives all-zero output. */
    memset(x, 0, sizeof x);
    quantize_row_q2_K(x, q2, N);
    quantize_row_q4_K(x, q4, N);
    quantize_row_iq2_xxs(x, qi, N);
    quantize_row_q8_0(x, q8, N);
    const struct { int t; const void *q; } z[] = {{QT_Q2_K, q2}, {QT_Q4_K, q4}, {QT_IQ2_XXS, qi}, {QT_Q8_0, q8}};
    for (size_t t = 0; t < 4; t++) {
        assert_int_equal(dequantize_row(z[t].t, z[t].q, y, N), 0);
        for (int i = 0; i < N; i++) assert_true(y[i] == 0.0f);
    }
}

/* A constant block and a block of one sign round-trip sensibly (no NaN, the
 * mean survives). */
static void test_writer_edge_blocks(void **st) {
    (void)st;
    float x[QK_K], y[QK_K];
    block_q2_K q2;
    block_q4_K q4;
    block_iq2_xxs qi;
    for (int c = 0; c < 3; c++) {
        for (int i = 0; i < QK_K; i++) x[i] = c == 0 ? -0.75f : c == 1 ? 2.0f + 0.001f * (float)(i % 7) : -(float)(i % 5) - 1.0f;
        quantize_row_q2_K(x, &q2, QK_K);
        dequantize_row(QT_Q2_K, &q2, y, QK_K);
        assert_true(rel_rms(x, y, QK_K) < 0.35);
        quantize_row_q4_K(x, &q4, QK_K);
        dequantize_row(QT_Q4_K, &q4, y, QK_K);
        assert_true(rel_rms(x, y, QK_K) < 0.1);
        quantize_row_iq2_xxs(x, &qi, QK_K);
        dequantize_row(QT_IQ2_XXS, &qi, y, QK_K);
        for (int i = 0; i < QK_K; i++) assert_false(isnan(y[i]));
        assert_true(rel_rms(x, y, QK_K) < 0.5);
    }
}

/* ---- ISA selection --------------------------------------------------------------------------- */

static void test_isa_selection(void **st) {
    (void)st;
    const quant_kernels *p = quant_kernels_for(QISA_PORTABLE);
    assert_non_null(p);
    assert_string_equal(p->name, "portable");
    assert_null(quant_kernels_for(QISA_COUNT));
    assert_int_equal(quant_isa_from_name("avx2"), QISA_AVX2);
    assert_int_equal(quant_isa_from_name("avx512"), QISA_AVX512);
    assert_int_equal(quant_isa_from_name("portable"), QISA_PORTABLE);
    assert_int_equal(quant_isa_from_name("sse9"), -1);
    assert_string_equal(quant_isa_name(QISA_AVX2), "avx2");
    const char *saved = getenv("FP_ISA");
    char *keep = saved ? strdup(saved) : NULL;
    setenv("FP_ISA", "portable", 1);
    assert_ptr_equal(quant_kernels_best(), p);
    for (int isa = QISA_AVX2; isa < QISA_COUNT; isa++) {
        setenv("FP_ISA", quant_isa_name((enum quant_isa)isa), 1);
        const quant_kernels *k = quant_kernels_for((enum quant_isa)isa);
        const quant_kernels *best = quant_kernels_best();
        if (k) assert_ptr_equal(best, k);
        if (k) assert_string_equal(k->name, quant_isa_name((enum quant_isa)isa));
        assert_non_null(best);
    }
    unsetenv("FP_ISA");
    const quant_kernels *best = quant_kernels_best();
    for (int isa = QISA_COUNT - 1; isa >= 0; isa--)
        if (quant_kernels_for((enum quant_isa)isa)) {
            assert_ptr_equal(best, quant_kernels_for((enum quant_isa)isa));
            break;
        }
    if (keep) {
        setenv("FP_ISA", keep, 1);
        free(keep);
    }
}

int main(void) {
    rng_state = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    if (getenv("FP_SEED")) rng_state = strtoull(getenv("FP_SEED"), NULL, 10);
    fprintf(stderr, "test_quant: seed %llu (FP_SEED=<n> to replay)\n", (unsigned long long)rng_state);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_fp16_known),
        cmocka_unit_test(test_fp16_exhaustive),
        cmocka_unit_test(test_fp16_round_random),
        cmocka_unit_test(test_iq2_tables),
        cmocka_unit_test(test_dequant_q8_0),
        cmocka_unit_test(test_dequant_q2_K),
        cmocka_unit_test(test_dequant_q4_K),
        cmocka_unit_test(test_dequant_iq2_xxs),
        cmocka_unit_test(test_dequant_plain),
        cmocka_unit_test(test_q8_0a_crafted),
        cmocka_unit_test(test_q8_K_crafted),
        cmocka_unit_test(test_act_quant_random),
        cmocka_unit_test(test_expert_dots_bit_identical),
        cmocka_unit_test(test_dense_dots_close),
        cmocka_unit_test(test_portable_vs_f64),
        cmocka_unit_test(test_writer_round_trip),
        cmocka_unit_test(test_writer_edge_blocks),
        cmocka_unit_test(test_isa_selection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
