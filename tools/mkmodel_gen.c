/* mkmodel_gen.c — the random streams, samplers and chunk encoders of
 * flashpool-mkmodel (see mkmodel_gen.h). Speed matters here: a real-width
 * file is billions of weights, so sampling is a few integer operations per
 * value and IQ2_XXS blocks are written as random codes, not searched. */
#include "mkmodel_gen.h"

#include "mkmodel_kquant.h"
#include "quant.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* Chunk size: big enough that per-chunk overhead vanishes, small enough that
 * a round of chunks balances over the workers. */
#define CHUNK_ELEMS ((uint64_t)1 << 20)

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void mkmodel_rng_seed(mkmodel_rng *r, uint64_t key) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&key);
}

uint64_t mkmodel_rng_next(mkmodel_rng *r) {
    uint64_t *s = r->s;
    const uint64_t out = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Portable popcount (the build does not assume the POPCNT instruction). */
static inline int popcount64(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (int)((x * 0x0101010101010101ull) >> 56);
}

void mkmodel_fill_uniform(mkmodel_rng *r, float *x, size_t n, float lo, float hi) {
    const float span = (hi - lo) * (1.0f / 16777216.0f);
    for (size_t i = 0; i < n; i++) x[i] = lo + (float)(mkmodel_rng_next(r) >> 40) * span;
}

/* Four xoshiro256** streams side by side as two 2-lane vectors (GCC vector
 * extensions; SSE2 on x86-64): sampling is most of the cost of a big file. */
typedef uint64_t u64x2 __attribute__((vector_size(16)));
typedef uint32_t u32x4 __attribute__((vector_size(16)));
typedef uint16_t u16x8 __attribute__((vector_size(16)));
typedef float f32x4 __attribute__((vector_size(16)));
typedef struct xo2 { u64x2 s0, s1, s2, s3; } xo2;

static inline u64x2 xo2_next(xo2 *r) {
    const u64x2 x5 = (r->s1 << 2) + r->s1; /* no 64-bit vector multiply in SSE2 */
    const u64x2 rr = (x5 << 7) | (x5 >> 57);
    const u64x2 out = (rr << 3) + rr;
    const u64x2 t = r->s1 << 17;
    r->s2 ^= r->s0;
    r->s3 ^= r->s1;
    r->s1 ^= r->s2;
    r->s0 ^= r->s3;
    r->s2 ^= t;
    r->s3 = (r->s3 << 45) | (r->s3 >> 19);
    return out;
}

static inline u64x2 popcount2(u64x2 x) {
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    x += x >> 8;
    x += x >> 16;
    x += x >> 32;
    return x & 0x7f;
}

void mkmodel_fill_normal(mkmodel_rng *r, float *x, size_t n, float mean, float std) {
    /* popcount of 64 fair bits - 32 has mean 0, variance 16 and a shape very
     * close to a Gaussian; a uniform jitter in (-1/2, 1/2) fills the gaps
     * between the integers (variance 1/12). One 64-bit draw gives the jitter
     * of four values. */
    const float k = std / sqrtf(16.0f + 1.0f / 12.0f);
    size_t i = 0;
    if (n >= 16) {
        /* Vector path: the float is built from its bits, 2^23 + p*65536 + j
         * with p the popcount and j the 16-bit jitter (exact, < 2^23), so
         * value = (that - 2^23 - 32*65536 - 32768 + 0.5) / 65536. */
        xo2 a, b;
        for (int l = 0; l < 2; l++) {
            a.s0[l] = mkmodel_rng_next(r);
            a.s1[l] = mkmodel_rng_next(r);
            a.s2[l] = mkmodel_rng_next(r);
            a.s3[l] = mkmodel_rng_next(r);
            b.s0[l] = mkmodel_rng_next(r);
            b.s1[l] = mkmodel_rng_next(r);
            b.s2[l] = mkmodel_rng_next(r);
            b.s3[l] = mkmodel_rng_next(r);
        }
        const float kv = k * (1.0f / 65536.0f);
        const float c = 8388608.0f + 32.0f * 65536.0f + 32768.0f - 0.5f;
        const u16x8 z = {0};
        for (; i + 16 <= n; i += 16) {
            const u16x8 ja = (u16x8)xo2_next(&a), jb = (u16x8)xo2_next(&b);
            /* zero-extend four 16-bit jitters to 32-bit lanes */
            const u32x4 jit[4] = {
                (u32x4)__builtin_shufflevector(ja, z, 0, 8, 1, 8, 2, 8, 3, 8),
                (u32x4)__builtin_shufflevector(ja, z, 4, 8, 5, 8, 6, 8, 7, 8),
                (u32x4)__builtin_shufflevector(jb, z, 0, 8, 1, 8, 2, 8, 3, 8),
                (u32x4)__builtin_shufflevector(jb, z, 4, 8, 5, 8, 6, 8, 7, 8),
            };
            for (int g = 0; g < 4; g++) {
                const u64x2 pa = popcount2(xo2_next(&a)), pb = popcount2(xo2_next(&b));
                const u32x4 p = __builtin_shufflevector((u32x4)pa, (u32x4)pb, 0, 2, 4, 6);
                const u32x4 bits = 0x4b000000u | (p << 16) | jit[g];
                const f32x4 f = ((f32x4)bits - c) * kv + mean;
                memcpy(x + i + 4 * g, &f, sizeof f);
            }
        }
    }
    while (i < n) {
        uint64_t j = mkmodel_rng_next(r);
        for (int l = 0; l < 4 && i < n; l++, i++) {
            int p = popcount64(mkmodel_rng_next(r)) - 32;
            float u = ((float)((j >> (16 * l)) & 0xffff) + 0.5f) * (1.0f / 65536.0f) - 0.5f;
            x[i] = mean + k * ((float)p + u);
        }
    }
}

uint64_t mkmodel_tensor_key(uint64_t seed, const char *name) {
    char buf[32 + MKMODEL_NAME_MAX];
    int n = snprintf(buf, sizeof buf, "%llu/%s", (unsigned long long)seed, name);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    uint64_t key = 0;
    if (EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen >= 8) {
        for (int i = 7; i >= 0; i--) key = key << 8 | md[i];
    } else {
        /* libcrypto cannot fail SHA-256 on a sane system; still give a
         * seed- and name-dependent key rather than a constant. */
        uint64_t h = seed;
        for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
        key = splitmix64(&h);
    }
    return key;
}

uint64_t mkmodel_chunk_elems(const mkmodel_tensor *t) {
    uint64_t unit = t->init == MKMODEL_INIT_TID2EID ? t->dims[0] : (uint64_t)qtype_block_elems((int)t->type);
    if (unit == 0) unit = 1;
    uint64_t ch = CHUNK_ELEMS / unit * unit;
    return ch ? ch : unit;
}

uint64_t mkmodel_chunk_count(const mkmodel_tensor *t) {
    uint64_t ch = mkmodel_chunk_elems(t);
    return (t->nelem + ch - 1) / ch;
}

static uint64_t chunk_n(const mkmodel_tensor *t, uint64_t c) {
    uint64_t ch = mkmodel_chunk_elems(t), e0 = c * ch;
    return e0 >= t->nelem ? 0 : (t->nelem - e0 < ch ? t->nelem - e0 : ch);
}

size_t mkmodel_chunk_bytes(const mkmodel_tensor *t, uint64_t c) {
    return qtype_row_bytes((int)t->type, (int64_t)chunk_n(t, c));
}

size_t mkmodel_chunk_max_bytes(void) { return (size_t)CHUNK_ELEMS * 4; /* F32 / I32 */ }
size_t mkmodel_scratch_elems(void) { return (size_t)CHUNK_ELEMS; }

/* Valid IQ2_XXS blocks with random codes: every grid index, sign index and
 * 4-bit scale is uniform, and d = std/46 * U(0.75, 1.25). The codebook
 * magnitudes are 8, 25 or 43, so the decoded weights have roughly the
 * requested spread. The 8 bytes of a sub-block (4 grid indices, then the u32
 * of 4 x 7 sign bits and the scale) are exactly one 64-bit draw. */
static void iq2xxs_random(mkmodel_rng *r, block_iq2_xxs *y, uint64_t nblocks, float std) {
    for (uint64_t b = 0; b < nblocks; b++) {
        float u = (float)(mkmodel_rng_next(r) >> 40) * (1.0f / 16777216.0f);
        y[b].d = f32_to_fp16(std / 46.0f * (0.75f + 0.5f * u));
        for (int s = 0; s < 8; s++) {
            uint64_t v = mkmodel_rng_next(r);
            memcpy(&y[b].qs[4 * s], &v, 8); /* little-endian host (gguf_write.c insists) */
        }
    }
}

/* ffn_gate_tid2eid: each row is `used` distinct expert ids, a uniformly
 * random ordered prefix of a permutation (partial Fisher-Yates; the
 * permutation carries over between rows, which keeps each prefix uniform). */
static void tid2eid_random(mkmodel_rng *r, int32_t *out, uint64_t rows, uint32_t used, uint32_t n_expert) {
    int32_t perm[256];
    uint32_t ne = n_expert > 256 ? 256 : n_expert;
    for (uint32_t i = 0; i < ne; i++) perm[i] = (int32_t)i;
    for (uint64_t row = 0; row < rows; row++) {
        for (uint32_t k = 0; k < used && k < ne; k++) {
            uint32_t j = k + (uint32_t)(((mkmodel_rng_next(r) >> 32) * (uint64_t)(ne - k)) >> 32);
            int32_t tmp = perm[k];
            perm[k] = perm[j];
            perm[j] = tmp;
            out[row * used + k] = perm[k];
        }
    }
}

void mkmodel_gen_chunk(const mkmodel_tensor *t, uint64_t key, uint64_t c, void *out, float *scratch) {
    mkmodel_rng r;
    /* Chunk streams: distinct splitmix64 starting points per chunk. */
    mkmodel_rng_seed(&r, key ^ (c * 0xd1b54a32d192ed03ull + 0x632be59bd9b4e019ull));
    const uint64_t n = chunk_n(t, c);
    if (t->init == MKMODEL_INIT_TID2EID) {
        tid2eid_random(&r, out, n / t->dims[0], (uint32_t)t->dims[0], t->n_expert);
        return;
    }
    if (t->type == QT_IQ2_XXS) {
        iq2xxs_random(&r, out, n / QK_K, t->std);
        return;
    }
    float *x = t->type == QT_F32 ? (float *)out : scratch;
    if (t->init == MKMODEL_INIT_UNIFORM)
        mkmodel_fill_uniform(&r, x, n, t->lo, t->hi);
    else
        mkmodel_fill_normal(&r, x, n, t->init == MKMODEL_INIT_NORMAL ? t->mean : 0.0f, t->std);
    switch (t->type) {
    case QT_F32: break;
    case QT_F16: {
        uint16_t *h = out;
        for (uint64_t i = 0; i < n; i++) h[i] = f32_to_fp16(x[i]);
        break;
    }
    case QT_Q8_0: quantize_row_q8_0(x, out, (int64_t)n); break;
    /* one-pass fits: quant.h's searched K-quant writers are ~10x slower,
     * too slow for gigabytes of experts (see mkmodel_kquant.h) */
    case QT_Q2_K: mkmodel_encode_q2_K(x, out, (int64_t)n); break;
    case QT_Q4_K: mkmodel_encode_q4_K(x, out, (int64_t)n); break;
    default: memset(out, 0, mkmodel_chunk_bytes(t, c)); break; /* the plan never asks for others */
    }
}
