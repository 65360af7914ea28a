/* quant.c — quant formats: type table, f16/bf16 conversion, dequantisation,
 * weight quantisers, the bit-exact activation quantisers, the portable dot
 * kernels and the run-time choice of kernel table (see quant.h).
 *
 * The portable dots define the float order every SIMD path must reproduce
 * for the routed-expert formats (quant_isa.h holds the shared per-block
 * steps). The IQ2_XXS codebook is in iq2xxs_grid.c, the SIMD kernels in
 * quant_avx2.c / quant_avx512.c. */
#include "quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant_isa.h"

/* ---- type table ----------------------------------------------------------- */

typedef struct { int type; const char *name; int elems, bytes; } qtype_info;

static const qtype_info k_types[] = {
    {QT_F32, "F32", 1, 4},
    {QT_F16, "F16", 1, 2},
    {QT_Q8_0, "Q8_0", QK8_0, (int)sizeof(block_q8_0)},
    {QT_Q2_K, "Q2_K", QK_K, (int)sizeof(block_q2_K)},
    {QT_Q4_K, "Q4_K", QK_K, (int)sizeof(block_q4_K)},
    {QT_Q8_K, "Q8_K", QK_K, (int)sizeof(block_q8_K)},
    {QT_IQ2_XXS, "IQ2_XXS", QK_K, (int)sizeof(block_iq2_xxs)},
    {QT_I32, "I32", 1, 4},
    {QT_BF16, "BF16", 1, 2},
};

_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 layout");
_Static_assert(sizeof(block_q2_K) == 84, "block_q2_K layout");
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K layout");
_Static_assert(sizeof(block_iq2_xxs) == 66, "block_iq2_xxs layout");
_Static_assert(sizeof(block_q8_0a) == 36, "block_q8_0a layout");
_Static_assert(sizeof(block_q8_K) == 292, "block_q8_K layout");

static const qtype_info *type_info(int type) {
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++)
        if (k_types[i].type == type) return &k_types[i];
    return NULL;
}

int qtype_known(int type) { return type != QT_Q8_K && type_info(type) != NULL; }

const char *qtype_name(int type) {
    const qtype_info *t = type_info(type);
    return t ? t->name : "?";
}

int qtype_block_elems(int type) {
    const qtype_info *t = type_info(type);
    return t ? t->elems : 0;
}

int qtype_block_bytes(int type) {
    const qtype_info *t = type_info(type);
    return t ? t->bytes : 0;
}

size_t qtype_row_bytes(int type, int64_t n) {
    const qtype_info *t = type_info(type);
    if (!t || n < 0 || n % t->elems) return 0;
    return (size_t)(n / t->elems) * (size_t)t->bytes;
}

/* ---- scalar conversions ----------------------------------------------------- */

static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

float fp16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0) {
        /* Zero or subnormal: man·2^-24 is exact in f32. */
        const float v = (float)man * 0x1p-24f;
        return bits_f32(f32_bits(v) | sign);
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | man << 13);
    return bits_f32(sign | (exp + 112) << 23 | man << 13);
}

uint16_t f32_to_fp16(float f) {
    const uint32_t u = f32_bits(f);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | (a >> 13 & 0x3ffu)); /* NaN stays (quiet) NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
    if (a < 0x38800000u) {
        /* Below the smallest normal: count units of 2^-24 (exact scaling),
         * round to nearest even; 1024 units is the smallest normal. */
        const float units = bits_f32(a) * 0x1p24f;
        return (uint16_t)(sign | (uint16_t)nearbyintf(units));
    }
    /* Normal: rebias, round the 13 dropped bits to nearest even; a carry
     * into the exponent is the correct result. */
    const uint32_t r = a - (112u << 23);
    return (uint16_t)(sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13));
}

float bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

float f16_round(float f) { return fp16_to_f32(f32_to_fp16(f)); }

/* ---- dequantisation ------------------------------------------------------------ */

static void dequant_q8_0(const block_q8_0 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = fp16_to_f32(b[i].d);
        for (int j = 0; j < QK8_0; j++) y[i * QK8_0 + j] = d * (float)b[i].qs[j];
    }
}

static void dequant_q2_K(const block_q2_K *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK_K) {
        const float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
        for (int n = 0; n < QK_K; n++) {
            const int k = n / 128, j = (n % 128) / 32, l = n % 32, s = n / 16;
            const int q = (b[i].qs[32 * k + l] >> (2 * j)) & 3;
            const float dl = d * (float)(b[i].scales[s] & 0xf), ml = dmin * (float)(b[i].scales[s] >> 4);
            y[n] = dl * (float)q - ml;
        }
    }
}

static void dequant_q4_K(const block_q4_K *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK_K) {
        const float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
        uint8_t sc[8], mn[8];
        q4k_unpack_scales(b[i].scales, sc, mn);
        for (int n = 0; n < QK_K; n++) {
            const int c = n / 64, h = (n % 64) / 32, l = n % 32, s = n / 32;
            const int q = (b[i].qs[32 * c + l] >> (4 * h)) & 0xf;
            const float d1 = d * (float)sc[s], m1 = dmin * (float)mn[s];
            y[n] = d1 * (float)q - m1;
        }
    }
}

static void dequant_iq2_xxs(const block_iq2_xxs *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK_K) {
        const float d = fp16_to_f32(b[i].d);
        for (int sb = 0; sb < QK_K / 32; sb++) {
            uint8_t g[4];
            uint32_t aux;
            memcpy(g, &b[i].qs[4 * sb], 4);
            memcpy(&aux, &b[i].qs[4 * sb + 2], 4);
            const float db = d * (0.5f + (float)(aux >> 28)) * 0.25f;
            for (int l = 0; l < 4; l++) {
                const uint8_t signs = ksigns_iq2xs[(aux >> (7 * l)) & 127];
                const uint64_t gv = iq2xxs_grid[g[l]];
                for (int j = 0; j < 8; j++) {
                    const float v = db * (float)(uint8_t)(gv >> (8 * j));
                    y[32 * sb + 8 * l + j] = (signs >> j) & 1 ? -v : v;
                }
            }
        }
    }
}

int dequantize_row(int type, const void *src, float *dst, int64_t n) {
    const qtype_info *t = type_info(type);
    if (!t || n < 0 || n % t->elems) return -1;
    const int64_t nb = n / t->elems;
    switch (type) {
    case QT_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return 0;
    case QT_F16: {
        const uint16_t *h = src;
        for (int64_t i = 0; i < n; i++) dst[i] = fp16_to_f32(h[i]);
        return 0;
    }
    case QT_BF16: {
        const uint16_t *h = src;
        for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(h[i]);
        return 0;
    }
    case QT_I32: {
        /* Value conversion (I32 tensors hold integers such as token ids). */
        const int32_t *v = src;
        for (int64_t i = 0; i < n; i++) dst[i] = (float)v[i];
        return 0;
    }
    case QT_Q8_0: dequant_q8_0(src, dst, nb); return 0;
    case QT_Q2_K: dequant_q2_K(src, dst, nb); return 0;
    case QT_Q4_K: dequant_q4_K(src, dst, nb); return 0;
    case QT_IQ2_XXS: dequant_iq2_xxs(src, dst, nb); return 0;
    case QT_Q8_K: {
        const block_q8_K *b = src;
        for (int64_t i = 0; i < nb; i++)
            for (int j = 0; j < QK_K; j++) dst[i * QK_K + j] = b[i].d * (float)b[i].qs[j];
        return 0;
    }
    default: return -1;
    }
}

/* ---- weight quantisers ------------------------------------------------------------ */

/* clamp(lrintf(v), lo, hi) for lo < 0 < hi or lo = 0 — the same result
 * (round half to even, NaN to lo) without a libm call: inside the clamp
 * range |v| < 2^22, where adding and removing 1.5·2^23 rounds to an
 * integer in the current (nearest-even) rounding mode, as lrintf does. */
static inline int rne_clamp(float v, int lo, int hi) {
    if (!(v >= (float)lo)) return lo;
    if (v >= (float)hi) return hi;
    return (int)((v + 12582912.0f) - 12582912.0f);
}

static inline float maxf(float a, float b) { return a > b ? a : b; }
static inline float minf(float a, float b) { return a < b ? a : b; }

void quantize_row_q8_0(const float *x, block_q8_0 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = maxf(amax, fabsf(x[j]));
        /* Quantise against the f16-rounded scale the reader will use. */
        y[i].d = f32_to_fp16(amax / 127.0f);
        const float d = fp16_to_f32(y[i].d);
        const float id = d > 0.0f && isfinite(d) ? 1.0f / d : 0.0f;
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = (int8_t)rne_clamp(x[j] * id, -127, 127);
    }
}

/* Least-squares fit of x ≈ scale·q − mn with q in [0, nmax], scale >= 0,
 * mn >= 0 (the K-quant affine form). A few assign/refit rounds from several
 * starting ranges; keeps the lowest squared error. */
static void fit_scale_min(const float *x, int n, int nmax, float *scale, float *mn) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) {
        lo = minf(lo, x[i]);
        hi = maxf(hi, x[i]);
    }
    if (lo > 0.0f) lo = 0.0f;
    if (!(hi > lo)) {
        *scale = 0.0f;
        *mn = -lo;
        return;
    }
    float best_err = INFINITY, best_s = (hi - lo) / (float)nmax, best_off = lo;
    uint8_t q[QK_K];
    /* Sums in f32 are plenty for n <= 32 values. */
    for (int start = 0; start < 2; start++) {
        float s = (hi - lo) / ((float)nmax + 0.4f * (float)start), off = lo;
        for (int it = 0; it < 5; it++) {
            const float is = 1.0f / s;
            float sq = 0, sqq = 0, sx = 0, sxq = 0, err = 0;
            int changed = it == 0;
            for (int i = 0; i < n; i++) {
                const uint8_t qi = (uint8_t)rne_clamp((x[i] - off) * is, 0, nmax);
                if (it == 0 || qi != q[i]) changed = 1; /* q[] is unset before the first pass */
                q[i] = qi;
                const float e = s * (float)qi + off - x[i];
                err += e * e;
                sq += (float)qi;
                sqq += (float)(qi * qi);
                sx += x[i];
                sxq += x[i] * (float)qi;
            }
            if (err < best_err) {
                best_err = err;
                best_s = s;
                best_off = off;
            }
            if (!changed) break; /* the refit would land on the same point */
            const float det = (float)n * sqq - sq * sq;
            if (det <= 0) break;
            float ns = ((float)n * sxq - sq * sx) / det, noff = (sx - ns * sq) / (float)n;
            if (noff > 0) {
                noff = 0;
                ns = sqq > 0 ? sxq / sqq : 0;
            }
            if (!(ns > 0)) break;
            s = ns;
            off = noff;
        }
    }
    *scale = best_s;
    *mn = -best_off;
}

/* Shared tail of the K-quant writers: quantise per-sub-block scales/mins to
 * `sbits` bits against f16 super-scales, then re-pick every code with the
 * scales the reader will see. sub = sub-block length. Writes codes to q. */
static void kquant_block(const float *x, int sub, int nmax, int smax, uint16_t *d16, uint16_t *dmin16,
                         uint8_t *ls, uint8_t *lm, uint8_t *q) {
    const int nsub = QK_K / sub;
    float sc[16], mn[16], maxsc = 0.0f, maxmn = 0.0f;
    for (int s = 0; s < nsub; s++) {
        fit_scale_min(x + s * sub, sub, nmax, &sc[s], &mn[s]);
        maxsc = maxf(maxsc, sc[s]);
        maxmn = maxf(maxmn, mn[s]);
    }
    *d16 = f32_to_fp16(maxsc / (float)smax);
    *dmin16 = f32_to_fp16(maxmn / (float)smax);
    const float d = fp16_to_f32(*d16), dmin = fp16_to_f32(*dmin16);
    for (int s = 0; s < nsub; s++) {
        ls[s] = (uint8_t)(d > 0.0f ? rne_clamp(sc[s] / d, 0, smax) : 0);
        lm[s] = (uint8_t)(dmin > 0.0f ? rne_clamp(mn[s] / dmin, 0, smax) : 0);
        const float ds = d * (float)ls[s], ms = dmin * (float)lm[s];
        for (int i = 0; i < sub; i++) {
            const float v = x[s * sub + i];
            q[s * sub + i] = (uint8_t)(ds > 0.0f ? rne_clamp((v + ms) / ds, 0, nmax) : 0);
        }
    }
}

void quantize_row_q2_K(const float *x, block_q2_K *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        uint8_t ls[16], lm[16], q[QK_K];
        kquant_block(x, 16, 3, 15, &y[i].d, &y[i].dmin, ls, lm, q);
        for (int s = 0; s < 16; s++) y[i].scales[s] = (uint8_t)(ls[s] | lm[s] << 4);
        memset(y[i].qs, 0, sizeof y[i].qs);
        for (int e = 0; e < QK_K; e++) {
            const int k = e / 128, j = (e % 128) / 32, l = e % 32;
            y[i].qs[32 * k + l] |= (uint8_t)(q[e] << (2 * j));
        }
    }
}

void quantize_row_q4_K(const float *x, block_q4_K *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        uint8_t ls[8], lm[8], q[QK_K];
        kquant_block(x, 32, 15, 63, &y[i].d, &y[i].dmin, ls, lm, q);
        memset(y[i].scales, 0, sizeof y[i].scales);
        for (int s = 0; s < 4; s++) {
            y[i].scales[s] = ls[s];
            y[i].scales[s + 4] = lm[s];
        }
        for (int s = 4; s < 8; s++) {
            y[i].scales[s + 4] = (uint8_t)((ls[s] & 0xf) | (lm[s] & 0xf) << 4);
            y[i].scales[s - 4] |= (uint8_t)((ls[s] >> 4) << 6);
            y[i].scales[s] |= (uint8_t)((lm[s] >> 4) << 6);
        }
        for (int e = 0; e < QK_K; e++) {
            const int c = e / 64, h = (e % 64) / 32, l = e % 32;
            if (h == 0) y[i].qs[32 * c + l] = q[e];
            else y[i].qs[32 * c + l] |= (uint8_t)(q[e] << 4);
        }
    }
}

/* IQ2_XXS writer helpers. A group of 8 weights is sign pattern × grid point;
 * the pattern must have an even number of negatives, so when x has an odd
 * count the smallest |x| is given the wrong sign (its target becomes −|x|). */
typedef struct {
    float g[256][8];   /* grid bytes as floats */
    float gg[256];     /* Σ g² per entry */
} iq2_tables;

static void iq2_tables_init(iq2_tables *t) {
    for (int e = 0; e < 256; e++) {
        t->gg[e] = 0.0f;
        for (int j = 0; j < 8; j++) {
            t->g[e][j] = (float)(uint8_t)(iq2xxs_grid[e] >> (8 * j));
            t->gg[e] += t->g[e][j] * t->g[e][j];
        }
    }
}

/* Best grid entry for targets t at scale s; returns its squared error. */
static float iq2_best_entry(const iq2_tables *tb, const float t[8], float s, int *best) {
    float tt = 0.0f;
    for (int j = 0; j < 8; j++) tt += t[j] * t[j];
    float best_e = INFINITY;
    *best = 0;
    for (int e = 0; e < 256; e++) {
        float gt = 0.0f;
        for (int j = 0; j < 8; j++) gt += tb->g[e][j] * t[j];
        const float err = s * s * tb->gg[e] - 2.0f * s * gt + tt;
        if (err < best_e) {
            best_e = err;
            *best = e;
        }
    }
    return best_e;
}

/* Squared error of sub-block targets t[32] at scale s; fills entries. */
static float iq2_sub_error(const iq2_tables *tb, const float t[32], float s, int ent[4]) {
    float err = 0.0f;
    for (int l = 0; l < 4; l++) err += iq2_best_entry(tb, t + 8 * l, s, &ent[l]);
    return err;
}

void quantize_row_iq2_xxs(const float *x, block_iq2_xxs *y, int64_t n) {
    iq2_tables *tb = malloc(sizeof *tb);
    if (!tb) abort(); /* 9 KB; a writer cannot continue without it */
    iq2_tables_init(tb);
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float t[QK_K], best_s[8];
        uint32_t signs7[8][4];
        for (int b = 0; b < 8; b++) {
            float amax = 0.0f;
            for (int l = 0; l < 4; l++) {
                const float *xg = x + 32 * b + 8 * l;
                float *tg = t + 32 * b + 8 * l;
                int neg = 0, smallest = 0;
                uint32_t pat = 0;
                for (int j = 0; j < 8; j++) {
                    tg[j] = fabsf(xg[j]);
                    amax = maxf(amax, tg[j]);
                    if (xg[j] < 0.0f) {
                        pat |= 1u << j;
                        neg++;
                    }
                    if (tg[j] < tg[smallest]) smallest = j;
                }
                if (neg & 1) {
                    pat ^= 1u << smallest;
                    tg[smallest] = -tg[smallest];
                }
                signs7[b][l] = pat & 127; /* bit 7 follows from the parity */
            }
            best_s[b] = 0.0f;
            if (amax == 0.0f) continue;
            float best_err = INFINITY;
            int ent[4];
            for (int c = 0; c <= 12; c++) {
                const float s = amax / 43.0f * (0.45f + 0.07f * (float)c);
                float err = iq2_sub_error(tb, t + 32 * b, s, ent);
                if (err < best_err) {
                    best_err = err;
                    best_s[b] = s;
                }
                /* Least-squares rescale for the entries just chosen. */
                float gt = 0.0f, gg = 0.0f;
                for (int l = 0; l < 4; l++)
                    for (int j = 0; j < 8; j++) {
                        gt += tb->g[ent[l]][j] * t[32 * b + 8 * l + j];
                        gg += tb->g[ent[l]][j] * tb->g[ent[l]][j];
                    }
                if (gt > 0.0f && gg > 0.0f) {
                    const float s2 = gt / gg;
                    int ent2[4];
                    err = iq2_sub_error(tb, t + 32 * b, s2, ent2);
                    if (err < best_err) {
                        best_err = err;
                        best_s[b] = s2;
                    }
                }
            }
        }
        float smax = 0.0f;
        for (int b = 0; b < 8; b++) smax = maxf(smax, best_s[b]);
        /* db = d·(0.5 + ls)·0.25 with ls <= 15: the largest scale maps to ls = 15. */
        y[i].d = f32_to_fp16(smax / (15.5f * 0.25f));
        const float d = fp16_to_f32(y[i].d);
        for (int b = 0; b < 8; b++) {
            const int ls = d > 0.0f ? rne_clamp(best_s[b] / (0.25f * d) - 0.5f, 0, 15) : 0;
            const float db = d * (0.5f + (float)ls) * 0.25f;
            int ent[4] = {0, 0, 0, 0};
            if (db > 0.0f) iq2_sub_error(tb, t + 32 * b, db, ent);
            uint8_t g[4];
            uint32_t aux = (uint32_t)ls << 28;
            for (int l = 0; l < 4; l++) {
                g[l] = (uint8_t)ent[l];
                aux |= signs7[b][l] << (7 * l);
            }
            memcpy(&y[i].qs[4 * b], g, 4);
            memcpy(&y[i].qs[4 * b + 2], &aux, 4);
        }
    }
    free(tb);
}

/* ---- activation quantisers (bit-exact with the reference, model-spec 3.7) ----- */

void quantize_row_q8_0a(const float *x, block_q8_0a *y, int64_t n) {
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) {
            const float a = fabsf(x[j]);
            if (a > amax) amax = a;
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = d;
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = (int8_t)rne_clamp(x[j] * id, -128, 127);
    }
}

void quantize_row_q8_K(const float *x, block_q8_K *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float amax = 0.0f, m = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            const float a = fabsf(x[j]);
            if (a > amax) { /* strict: the first element wins ties */
                amax = a;
                m = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.0f / m;
        for (int j = 0; j < QK_K; j++) y[i].qs[j] = (int8_t)rne_clamp(iscale * x[j], -128, 127);
        for (int s = 0; s < QK_K / 16; s++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += y[i].qs[16 * s + j];
            y[i].bsums[s] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ---- portable dot kernels ------------------------------------------------------------ */

static float dot_q8_0_portable(const block_q8_0 *w, const block_q8_0a *x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK8_0; b++) {
        int isum = 0;
        for (int j = 0; j < QK8_0; j++) isum += w[b].qs[j] * x[b].qs[j];
        sumf += (float)isum * (fp16_to_f32(w[b].d) * x[b].d);
    }
    return sumf;
}

static float dot_f16_portable(const uint16_t *w, const float *x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t i = 0; i < n; i++) sumf += fp16_to_f32(w[i]) * x[i];
    return sumf;
}

static float dot_q2_K_portable(const block_q2_K *w, const block_q8_K *x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int32_t isum = 0, summs = 0;
        for (int s = 0; s < 16; s++) {
            const int k = s / 8, j = (s % 8) / 2, l0 = (s % 2) * 16;
            int sub = 0;
            for (int l = l0; l < l0 + 16; l++)
                sub += ((w[b].qs[32 * k + l] >> (2 * j)) & 3) * x[b].qs[16 * s + l - l0];
            isum += (w[b].scales[s] & 0xf) * sub;
            summs += (w[b].scales[s] >> 4) * x[b].bsums[s];
        }
        sumf = kq_block_acc(sumf, x[b].d, fp16_to_f32(w[b].d), fp16_to_f32(w[b].dmin), isum, summs);
    }
    return sumf;
}

static float dot_q4_K_portable(const block_q4_K *w, const block_q8_K *x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t sc[8], mn[8];
        q4k_unpack_scales(w[b].scales, sc, mn);
        int32_t isum = 0, summs = 0;
        for (int s = 0; s < 8; s++) {
            const int c = s / 2, h = s % 2;
            int sub = 0;
            for (int l = 0; l < 32; l++) sub += ((w[b].qs[32 * c + l] >> (4 * h)) & 0xf) * x[b].qs[32 * s + l];
            isum += sc[s] * sub;
            summs += mn[s] * (x[b].bsums[2 * s] + x[b].bsums[2 * s + 1]);
        }
        sumf = kq_block_acc(sumf, x[b].d, fp16_to_f32(w[b].d), fp16_to_f32(w[b].dmin), isum, summs);
    }
    return sumf;
}

static float dot_iq2_xxs_portable(const block_iq2_xxs *w, const block_q8_K *x, int64_t n) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int32_t bsum = 0;
        for (int sb = 0; sb < 8; sb++) {
            uint8_t g[4];
            uint32_t aux;
            memcpy(g, &w[b].qs[4 * sb], 4);
            memcpy(&aux, &w[b].qs[4 * sb + 2], 4);
            const uint32_t signs = iq2_signs32(aux);
            const int8_t *q8 = x[b].qs + 32 * sb;
            int32_t sumi = 0;
            for (int l = 0; l < 4; l++) {
                const uint64_t gv = iq2xxs_grid[g[l]];
                for (int j = 0; j < 8; j++) {
                    const int v = (uint8_t)(gv >> (8 * j)) * q8[8 * l + j];
                    sumi += (signs >> (8 * l + j)) & 1 ? -v : v;
                }
            }
            bsum += (int32_t)(2 * (aux >> 28) + 1) * sumi;
        }
        sumf = iq2_block_acc(sumf, x[b].d, fp16_to_f32(w[b].d), bsum);
    }
    return iq2_finish(sumf);
}

static const quant_kernels k_portable = {
    .name = "portable",
    .dot_q8_0 = dot_q8_0_portable,
    .dot_f16 = dot_f16_portable,
    .dot_q2_K = dot_q2_K_portable,
    .dot_q4_K = dot_q4_K_portable,
    .dot_iq2_xxs = dot_iq2_xxs_portable,
};

/* ---- run-time selection ------------------------------------------------------------ */

static int cpu_has(enum quant_isa isa) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == QISA_AVX2) return avx2;
    if (isa == QISA_AVX512)
        return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vbmi") &&
               __builtin_cpu_supports("avx512bitalg") && __builtin_cpu_supports("gfni");
    return isa == QISA_PORTABLE;
#else
    return isa == QISA_PORTABLE;
#endif
}

const quant_kernels *quant_kernels_for(enum quant_isa isa) {
    switch (isa) {
    case QISA_PORTABLE: return &k_portable;
    case QISA_AVX2: return cpu_has(QISA_AVX2) ? quant_kernels_avx2_table() : NULL;
    case QISA_AVX512: return cpu_has(QISA_AVX512) ? quant_kernels_avx512_table() : NULL;
    default: return NULL;
    }
}

const char *quant_isa_name(enum quant_isa isa) {
    static const char *const names[QISA_COUNT] = {"portable", "avx2", "avx512"};
    return isa >= 0 && isa < QISA_COUNT ? names[isa] : "?";
}

int quant_isa_from_name(const char *name) {
    for (int i = 0; name && i < QISA_COUNT; i++)
        if (strcmp(name, quant_isa_name((enum quant_isa)i)) == 0) return i;
    return -1;
}

const quant_kernels *quant_kernels_best(void) {
    /* Not cached: it is a few cpuid-flag reads, and callers pick once. */
    const char *cap_s = getenv("FP_ISA");
    int cap = cap_s && *cap_s ? quant_isa_from_name(cap_s) : -1;
    if (cap < 0) cap = QISA_COUNT - 1; /* unset or unknown: no cap (tools report unknown values) */
    for (int i = cap; i > QISA_PORTABLE; i--) {
        const quant_kernels *k = quant_kernels_for((enum quant_isa)i);
        if (k) return k;
    }
    return &k_portable;
}
