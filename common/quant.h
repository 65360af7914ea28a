/* quant.h — GGML tensor types, block layouts, and the kernels over them.
 *
 * Owns: the byte layout of every quant format flashpool reads (F32, F16,
 * BF16, Q8_0, Q2_K, Q4_K, IQ2_XXS, I32) and the activation blocks it makes
 * (Q8_0 activations with an f32 scale, Q8_K); dequantisation, quantisation,
 * and the dot products the engine needs, with a portable C path and SIMD
 * paths chosen at run time.
 *
 * Determinism contract (design.md §3): the routed-expert dots
 * (Q2_K/Q4_K/IQ2_XXS × Q8_K) give the SAME BITS on every ISA path: SIMD code
 * only produces exact integer per-block sums; scaling and accumulation in
 * float happen in block order exactly as the portable code does them. The
 * dense dots (Q8_0, F16) may differ from portable within float rounding, but
 * are deterministic for one machine and independent of thread count. */
#ifndef FP_QUANT_H
#define FP_QUANT_H

#include <stddef.h>
#include <stdint.h>

#define QK8_0 32
#define QK_K 256

enum qtype {
    QT_F32 = 0,
    QT_F16 = 1,
    QT_Q8_0 = 8,
    QT_Q2_K = 10,
    QT_Q4_K = 12,
    QT_Q8_K = 15,
    QT_IQ2_XXS = 16,
    QT_I32 = 26,
    QT_BF16 = 30,
};

/* Weight blocks, exactly as stored in GGUF files (little-endian). */
typedef struct { uint16_t d; int8_t qs[QK8_0]; } block_q8_0;                          /* 34 B */
typedef struct { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; uint16_t d, dmin; } block_q2_K; /* 84 B */
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[QK_K / 2]; } block_q4_K;  /* 144 B */
typedef struct { uint16_t d; uint16_t qs[QK_K / 8]; } block_iq2_xxs;                   /* 66 B */

/* Activation blocks (never stored in a GGUF). Q8_0 activations keep the
 * scale as f32 (model-spec 3.7), unlike Q8_0 weights. */
typedef struct { float d; int8_t qs[QK8_0]; } block_q8_0a;                             /* 36 B */
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K;     /* 292 B */

/* ---- type table ---------------------------------------------------------- */
int qtype_known(int type);                   /* 1 for the types above (Q8_K excluded: not a tensor type) */
const char *qtype_name(int type);            /* "Q8_0", ...; "?" for unknown */
int qtype_block_elems(int type);             /* 0 for unknown */
int qtype_block_bytes(int type);             /* 0 for unknown */
/* Bytes of a row of n elements; 0 when n is not a multiple of the block. */
size_t qtype_row_bytes(int type, int64_t n);

/* ---- scalar conversions -------------------------------------------------- */
float fp16_to_f32(uint16_t h);               /* exact */
uint16_t f32_to_fp16(float f);               /* round to nearest even */
float bf16_to_f32(uint16_t h);
float f16_round(float f);                    /* f32 -> f16 -> f32 */

/* ---- dequantise / quantise (portable; not hot paths) -------------------- */
/* Dequantise n elements (a multiple of the type's block) of any weight type. */
int dequantize_row(int type, const void *src, float *dst, int64_t n);
/* Weight quantisers used by writers (flashpool-mkmodel, tests). n multiple of block. */
void quantize_row_q8_0(const float *x, block_q8_0 *y, int64_t n);
void quantize_row_q2_K(const float *x, block_q2_K *y, int64_t n);
void quantize_row_q4_K(const float *x, block_q4_K *y, int64_t n);
/* IQ2_XXS: nearest-grid-point search (slow; fine for tests and small files). */
void quantize_row_iq2_xxs(const float *x, block_iq2_xxs *y, int64_t n);

/* Activation quantisers, bit-exact with the reference (model-spec 3.7):
 * Q8_0a: per 32, d = amax/127 (f32), q = clamp(lrintf(x/d)) round-half-even.
 * Q8_K:  per 256, m = element with largest |x| (first on ties), iscale = -127/m,
 *        q = clamp(lrintf(iscale*x), -128, 127), d = 1/iscale, bsums per 16. */
void quantize_row_q8_0a(const float *x, block_q8_0a *y, int64_t n);
void quantize_row_q8_K(const float *x, block_q8_K *y, int64_t n);
/* Both produce quants in [-127, 127] (|x·id| <= 127); the SIMD IQ2_XXS dot
 * relies on that (it negates activation bytes), so activation blocks from
 * elsewhere (the wire) must not carry -128. */

/* The 256-entry IQ2_XXS codebook (public GGML table) and its sign table. */
extern const uint64_t iq2xxs_grid[256];
extern const uint8_t ksigns_iq2xs[128];

/* ---- dot-product kernels ------------------------------------------------- */
enum quant_isa { QISA_PORTABLE = 0, QISA_AVX2 = 1, QISA_AVX512 = 2, QISA_COUNT = 3 };

typedef struct quant_kernels {
    const char *name;                          /* "portable", "avx2", "avx512" */
    /* n = number of elements (multiple of the block size). */
    float (*dot_q8_0)(const block_q8_0 *w, const block_q8_0a *x, int64_t n);
    float (*dot_f16)(const uint16_t *w, const float *x, int64_t n);
    float (*dot_q2_K)(const block_q2_K *w, const block_q8_K *x, int64_t n);
    float (*dot_q4_K)(const block_q4_K *w, const block_q8_K *x, int64_t n);
    float (*dot_iq2_xxs)(const block_iq2_xxs *w, const block_q8_K *x, int64_t n);
} quant_kernels;

/* Kernels for one ISA, or NULL when this CPU (or this build) lacks it. */
const quant_kernels *quant_kernels_for(enum quant_isa isa);
/* The fastest available; FP_ISA=portable|avx2|avx512 in the environment caps it. */
const quant_kernels *quant_kernels_best(void);
/* "portable", "avx2", "avx512" <-> enum quant_isa; -1 for an unknown name. */
const char *quant_isa_name(enum quant_isa isa);
int quant_isa_from_name(const char *name);

#endif
