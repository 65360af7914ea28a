/* ops.h — the small numeric primitives of the DeepSeek V4 forward pass:
 * norms, RoPE/YaRN, FP8/FP4 KV simulations, hyper-connection mixing.
 * Each follows the reference's float order (model-spec §4, §6.1) so results
 * stay within its noise floor. Pure functions, no allocation. */
#ifndef FP_OPS_H
#define FP_OPS_H

#include <stdint.h>
#include "model.h"

#define FP_NEG_INF (-1.0e30f)

float op_sigmoid(float x);      /* stable piecewise form */
float op_silu(float x);
float op_softplus(float x);

/* RMSNorm with double sum of squares; w may be NULL (no weight). */
void op_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);
/* In-place per-head RMSNorm without weight. */
void op_headnorm(float *x, int n_head, int head_dim, float eps);

/* Per-layer RoPE parameters (model-spec 4.5). */
typedef struct rope_params {
    float freq_base, freq_scale, ext_factor, attn_factor, beta_fast, beta_slow;
    uint64_t n_ctx_orig;
    int n_rot;
} rope_params;
rope_params rope_for_layer(const model_hparams *hp, int layer);
/* Rotate the last n_rot dims of each of n_head heads of width head_dim. */
void op_rope_tail(float *x, int n_head, int head_dim, int64_t pos, const rope_params *rp, int inverse);

void op_fp8_kv_sim(float *x, int head_dim, int n_rot);   /* E4M3 on dims [0, head_dim-n_rot) */
void op_indexer_qat(float *x);                           /* Hadamard-128 + FP4 (E2M1) */
void op_f16_round(float *x, int64_t n);

/* HC control split: mix[24] -> pre[4], post[4], comb[16] (row-major [dst][src]
 * as the reference addresses it: comb[src + dst*4]). */
void op_hc_split(float *pre, float *post, float *comb, const float *mix,
                 const float *scale, const float *base, int iters, float eps);
/* x[d] = sum_h H[h][d] * w[h] */
void op_hc_weighted_sum(float *out, const float *H, const float *w, int n_embd);
/* H'[j][d] = f[d]*post[j] + sum_i comb[j + 4i] * H[i][d] */
void op_hc_post(float *out, const float *f, const float *H, const float *post, const float *comb, int n_embd);

#endif
