/* mkmodel_kquant.c — one-pass min/max Q2_K and Q4_K encoders for
 * flashpool-mkmodel's synthetic routed experts (see mkmodel_kquant.h). */
#include "mkmodel_kquant.h"


/* Round half to even and clamp to [0, hi], like clamp(lrintf(v)) but without
 * libm calls (lrintf, fminf and fmaxf are not inlined without -ffast-math-
 * style flags, and they dominate a one-pass encoder): adding 1.5 * 2^23
 * leaves only the integer part, rounded in the default mode. NaN gives 0. */
static inline int round_clamp(float v, int hi) {
    if (!(v > 0.0f)) return 0;
    if (v >= (float)hi) return hi;
    return (int)((v + 12582912.0f) - 12582912.0f);
}

/* One super-block of QK_K weights as QK_K/sub sub-blocks, each
 * w = d*ls*q - dmin*lm with q in [0, nmax] and ls, lm in [0, smax]: the
 * sub-block's range [min(lo, 0), hi] spread over the nmax steps; the
 * per-sub-block step and offset rounded against the f16 super-scales the
 * reader will use; then every code picked with the rounded values. */
static void fit_block(const float *x, int sub, int nmax, int smax, uint16_t *d16, uint16_t *dmin16, uint8_t *ls,
                      uint8_t *lm, uint8_t *q) {
    const int nsub = QK_K / sub;
    float step[16], off[16], maxstep = 0.0f, maxoff = 0.0f;
    for (int s = 0; s < nsub; s++) {
        const float *v = x + s * sub;
        float lo = 0.0f, hi = v[0];
        for (int i = 0; i < sub; i++) {
            lo = v[i] < lo ? v[i] : lo;
            hi = v[i] > hi ? v[i] : hi;
        }
        off[s] = -lo;
        step[s] = hi > lo ? (hi - lo) / (float)nmax : 0.0f;
        maxstep = step[s] > maxstep ? step[s] : maxstep;
        maxoff = off[s] > maxoff ? off[s] : maxoff;
    }
    *d16 = f32_to_fp16(maxstep / (float)smax);
    *dmin16 = f32_to_fp16(maxoff / (float)smax);
    const float d = fp16_to_f32(*d16), dmin = fp16_to_f32(*dmin16);
    const float id = d > 0.0f ? 1.0f / d : 0.0f, idmin = dmin > 0.0f ? 1.0f / dmin : 0.0f;
    for (int s = 0; s < nsub; s++) {
        ls[s] = (uint8_t)round_clamp(step[s] * id, smax);
        lm[s] = (uint8_t)round_clamp(off[s] * idmin, smax);
        const float ds = d * (float)ls[s], ms = dmin * (float)lm[s];
        const float ids = ds > 0.0f ? 1.0f / ds : 0.0f;
        const float *v = x + s * sub;
        for (int i = 0; i < sub; i++) q[s * sub + i] = (uint8_t)round_clamp((v[i] + ms) * ids, nmax);
    }
}

void mkmodel_encode_q2_K(const float *x, block_q2_K *y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        uint8_t ls[16], lm[16], q[QK_K];
        fit_block(x, 16, 3, 15, &y[b].d, &y[b].dmin, ls, lm, q);
        for (int s = 0; s < 16; s++) y[b].scales[s] = (uint8_t)(ls[s] | lm[s] << 4);
        /* weight 128k + 32j + l: bits 2j of qs[32k + l] */
        for (int k = 0; k < 2; k++)
            for (int l = 0; l < 32; l++) {
                const uint8_t *c = q + 128 * k + l;
                y[b].qs[32 * k + l] = (uint8_t)(c[0] | c[32] << 2 | c[64] << 4 | c[96] << 6);
            }
    }
}

void mkmodel_encode_q4_K(const float *x, block_q4_K *y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        uint8_t ls[8], lm[8], q[QK_K];
        fit_block(x, 32, 15, 63, &y[b].d, &y[b].dmin, ls, lm, q);
        /* eight 6-bit scales and mins in 12 bytes: sub-blocks 0-3 in the low
         * 6 bits of bytes 0-3 (scale) and 4-7 (min); sub-blocks 4-7 as
         * nibbles of bytes 8-11 plus their top 2 bits in bits 6-7 of 0-7 */
        for (int s = 0; s < 4; s++) {
            y[b].scales[s] = (uint8_t)(ls[s] | (ls[s + 4] >> 4) << 6);
            y[b].scales[s + 4] = (uint8_t)(lm[s] | (lm[s + 4] >> 4) << 6);
            y[b].scales[s + 8] = (uint8_t)((ls[s + 4] & 15) | (lm[s + 4] & 15) << 4);
        }
        /* weight 64c + 32h + l: nibble h of qs[32c + l] */
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) y[b].qs[32 * c + l] = (uint8_t)(q[64 * c + l] | q[64 * c + 32 + l] << 4);
    }
}
