/* ops.c — numeric primitives of the forward pass (see ops.h). The float
 * operation order mirrors the reference CPU path on purpose: reordering a
 * sum is "correct" but moves results around inside the noise floor that the
 * reference vectors are checked against. */
#include "ops.h"

#include <math.h>
#include <string.h>
#include "quant.h"

float op_sigmoid(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    const float e = expf(x);
    return e / (1.0f + e);
}

float op_silu(float x) { return x * op_sigmoid(x); }

float op_softplus(float x) {
    if (x > 20.0f) return x;
    if (x < -20.0f) return expf(x);
    return log1pf(expf(x));
}

void op_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    if (w) for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
    else for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale;
}

void op_headnorm(float *x, int n_head, int head_dim, float eps) {
    for (int h = 0; h < n_head; h++) op_rmsnorm(x + (int64_t)h * head_dim, x + (int64_t)h * head_dim, NULL, head_dim, eps);
}

/* ---- RoPE with YaRN blending on compressed layers ---------------------- */

static float yarn_corr_dim(int n_dims, uint64_t n_ctx_orig, float n_rot, float base) {
    return (float)n_dims * logf((float)n_ctx_orig / (n_rot * 2.0f * (float)M_PI)) / (2.0f * logf(base));
}

rope_params rope_for_layer(const model_hparams *hp, int layer) {
    const int compressed = hp->compress_ratio[layer] != 0;
    rope_params rp = {0};
    rp.n_rot = hp->n_rot;
    rp.freq_base = compressed && hp->compress_rope_base > 0.0f ? hp->compress_rope_base : hp->rope_base;
    rp.freq_scale = compressed && hp->rope_scale_factor > 0.0f ? 1.0f / hp->rope_scale_factor : 1.0f;
    rp.ext_factor = compressed && hp->rope_scale_factor > 1.0f ? 1.0f : 0.0f;
    rp.attn_factor = 1.0f;
    /* DeepSeek V4 interpolates without YaRN's magnitude change: pre-divide
     * by the factor the blend below multiplies in, so the two cancel. */
    if (rp.ext_factor != 0.0f && rp.freq_scale > 0.0f) rp.attn_factor /= 1.0f + 0.1f * logf(1.0f / rp.freq_scale);
    rp.beta_fast = hp->yarn_beta_fast;
    rp.beta_slow = hp->yarn_beta_slow;
    rp.n_ctx_orig = compressed ? hp->rope_orig_ctx : 0;
    return rp;
}

void op_rope_tail(float *x, int n_head, int head_dim, int64_t pos, const rope_params *rp, int inverse) {
    const int n_rot = rp->n_rot, n_nope = head_dim - n_rot;
    const float theta_scale = powf(rp->freq_base, -2.0f / (float)n_rot);
    const float sin_sign = inverse ? -1.0f : 1.0f;
    float lo = 0.0f, hi = 0.0f;
    if (rp->ext_factor != 0.0f) {
        lo = fmaxf(0.0f, floorf(yarn_corr_dim(n_rot, rp->n_ctx_orig, rp->beta_fast, rp->freq_base)));
        hi = fminf((float)(n_rot - 1), ceilf(yarn_corr_dim(n_rot, rp->n_ctx_orig, rp->beta_slow, rp->freq_base)));
    }
    for (int h = 0; h < n_head; h++) {
        float *tail = x + (int64_t)h * head_dim + n_nope;
        /* Angles by repeated multiplication, like the reference: at long
         * positions this rounds differently from pos*pow(b, -2p/n). */
        float theta_extrap = (float)pos;
        for (int i = 0; i < n_rot; i += 2) {
            const float theta_interp = rp->freq_scale * theta_extrap;
            float theta = theta_interp, mscale = rp->attn_factor;
            if (rp->ext_factor != 0.0f) {
                const float y = ((float)(i / 2) - lo) / fmaxf(0.001f, hi - lo);
                const float ramp = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * rp->ext_factor;
                theta = theta_interp * (1.0f - ramp) + theta_extrap * ramp;
                mscale *= 1.0f + 0.1f * logf(1.0f / rp->freq_scale);
            }
            const float c = cosf(theta) * mscale, s = sin_sign * sinf(theta) * mscale;
            const float x0 = tail[i], x1 = tail[i + 1];
            tail[i] = x0 * c - x1 * s;
            tail[i + 1] = x0 * s + x1 * c;
            theta_extrap *= theta_scale;
        }
    }
}

/* ---- FP8 / FP4 simulations of the official graph's KV storage ---------- */

static float e4m3_value(int i) {
    const int e = (i >> 3) & 15, m = i & 7;
    if (e == 0) return (float)m * 0.001953125f;
    return (1.0f + (float)m * 0.125f) * ldexpf(1.0f, e - 7);
}

/* Nearest E4M3FN magnitude (codes 0..126), ties to the even code. */
static float e4m3_round(float x) {
    const float sign = x < 0.0f ? -1.0f : 1.0f;
    const float ax = fminf(fabsf(x), 448.0f);
    int lo = 0, hi = 126;
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (e4m3_value(mid) <= ax) lo = mid;
        else hi = mid - 1;
    }
    int best = lo;
    if (best < 126) {
        const float d0 = fabsf(ax - e4m3_value(best)), d1 = fabsf(ax - e4m3_value(best + 1));
        if (d1 < d0 || (d1 == d0 && (best & 1))) best++;
    }
    return sign * e4m3_value(best);
}

void op_fp8_kv_sim(float *x, int head_dim, int n_rot) {
    for (int off = 0; off < head_dim - n_rot; off += 64) {
        float amax = 0.0f;
        for (int i = 0; i < 64; i++) amax = fmaxf(amax, fabsf(x[off + i]));
        if (amax < 1.0e-4f) amax = 1.0e-4f;
        const float scale = ldexpf(1.0f, (int)ceilf(log2f(amax / 448.0f)));
        for (int i = 0; i < 64; i++) {
            float v = x[off + i] / scale;
            v = fminf(448.0f, fmaxf(-448.0f, v));
            x[off + i] = e4m3_round(v) * scale;
        }
    }
}

static float e2m1_round(float x) {
    static const float grid[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    const float sign = x < 0.0f ? -1.0f : 1.0f;
    const float ax = fminf(fabsf(x), 6.0f);
    int best = 0;
    float bd = fabsf(ax - grid[0]);
    for (int i = 1; i < 8; i++) {
        const float d = fabsf(ax - grid[i]);
        if (d < bd || (d == bd && (i & 1) == 0 && (best & 1))) {
            best = i;
            bd = d;
        }
    }
    return sign * grid[best];
}

void op_indexer_qat(float *x) {
    for (int stride = 1; stride < 128; stride <<= 1)
        for (int base = 0; base < 128; base += 2 * stride)
            for (int i = 0; i < stride; i++) {
                const float a = x[base + i], b = x[base + stride + i];
                x[base + i] = a + b;
                x[base + stride + i] = a - b;
            }
    for (int i = 0; i < 128; i++) x[i] *= 0.08838834764831845f;
    for (int off = 0; off < 128; off += 32) {
        float amax = 0.0f;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[off + i]));
        if (amax < 7.052966104933725e-38f) amax = 7.052966104933725e-38f;
        const float scale = ldexpf(1.0f, (int)ceilf(log2f(amax / 6.0f)));
        for (int i = 0; i < 32; i++) {
            float v = x[off + i] / scale;
            v = fminf(6.0f, fmaxf(-6.0f, v));
            x[off + i] = e2m1_round(v) * scale;
        }
    }
}

void op_f16_round(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = f16_round(x[i]);
}

/* ---- hyper-connections ------------------------------------------------- */

void op_hc_split(float *pre, float *post, float *comb, const float *mix,
                 const float *scale, const float *base, int iters, float eps) {
    enum { N = FP_N_HC };
    for (int i = 0; i < N; i++) pre[i] = 1.0f / (1.0f + expf(-(mix[i] * scale[0] + base[i]))) + eps;
    for (int i = 0; i < N; i++) post[i] = 2.0f / (1.0f + expf(-(mix[N + i] * scale[1] + base[N + i])));
    float c[N * N];
    /* Row softmax (the first Sinkhorn row step), then alternate column and
     * row normalisations: 20 of each in all. c[src + dst*N]. */
    for (int dst = 0; dst < N; dst++) {
        float mx = FP_NEG_INF;
        for (int src = 0; src < N; src++) {
            const int k = src + dst * N;
            c[k] = mix[2 * N + k] * scale[2] + base[2 * N + k];
            if (c[k] > mx) mx = c[k];
        }
        float sum = 0.0f;
        for (int src = 0; src < N; src++) {
            c[src + dst * N] = expf(c[src + dst * N] - mx);
            sum += c[src + dst * N];
        }
        const float inv = 1.0f / sum;
        for (int src = 0; src < N; src++) c[src + dst * N] = c[src + dst * N] * inv + eps;
    }
    for (int it = 0; it < iters; it++) {
        if (it > 0) {
            for (int dst = 0; dst < N; dst++) {
                float sum = 0.0f;
                for (int src = 0; src < N; src++) sum += c[src + dst * N];
                const float inv = 1.0f / (sum + eps);
                for (int src = 0; src < N; src++) c[src + dst * N] *= inv;
            }
        }
        for (int src = 0; src < N; src++) {
            float sum = 0.0f;
            for (int dst = 0; dst < N; dst++) sum += c[src + dst * N];
            const float inv = 1.0f / (sum + eps);
            for (int dst = 0; dst < N; dst++) c[src + dst * N] *= inv;
        }
    }
    memcpy(comb, c, sizeof(c));
}

void op_hc_weighted_sum(float *out, const float *H, const float *w, int n_embd) {
    for (int d = 0; d < n_embd; d++) {
        float acc = 0.0f;
        for (int h = 0; h < FP_N_HC; h++) acc += H[(int64_t)h * n_embd + d] * w[h];
        out[d] = acc;
    }
}

void op_hc_post(float *out, const float *f, const float *H, const float *post, const float *comb, int n_embd) {
    for (int dst = 0; dst < FP_N_HC; dst++)
        for (int d = 0; d < n_embd; d++) {
            float acc = f[d] * post[dst];
            for (int src = 0; src < FP_N_HC; src++) acc += comb[dst + src * FP_N_HC] * H[(int64_t)src * n_embd + d];
            out[(int64_t)dst * n_embd + d] = acc;
        }
}
