/* model.h — a DeepSeek V4 Flash ("deepseek4") model bound to a GGUF file.
 *
 * Owns: the hyperparameters read from GGUF metadata (so the tiny test models
 * and the real 43-layer model run the same code), and the per-layer tensor
 * views, each validated by name, shape and type before use. Weights stay in
 * the read-only mapping of the GGUF; nothing is copied. */
#ifndef FP_MODEL_H
#define FP_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "gguf.h"
#include "experts.h"

#define FP_MAX_LAYERS 64
#define FP_MAX_EXPERTS 1024
#define FP_N_HC 4

typedef struct tensor_view {
    const void *data;
    int type;                 /* enum qtype */
    int64_t ne0, ne1, ne2;    /* ne0 innermost; missing dims are 1 */
} tensor_view;

typedef struct model_hparams {
    int n_layer, n_embd, n_vocab;
    int n_head, head_dim, n_rot;
    int q_lora, o_lora, n_out_group;
    int n_expert, n_expert_used, n_ff, n_hash_layer;
    int n_swa;
    int idx_n_head, idx_head_dim, idx_top_k;
    int n_hc, sinkhorn_iters;
    int compress_ratio[FP_MAX_LAYERS];
    float swiglu_clamp[FP_MAX_LAYERS];
    float rope_base, rope_scale_factor, yarn_beta_fast, yarn_beta_slow, compress_rope_base;
    uint64_t rope_orig_ctx;
    float expert_weight_scale, rms_eps, hc_eps;
    uint32_t ctx_train;
} model_hparams;

typedef struct layer_weights {
    tensor_view hc_attn_fn, hc_attn_scale, hc_attn_base;
    tensor_view attn_norm, attn_q_a, attn_q_a_norm, attn_q_b, attn_kv, attn_kv_a_norm;
    tensor_view attn_sinks, attn_output_a, attn_output_b;
    /* compressed layers (ratio != 0) */
    tensor_view comp_ape, comp_kv, comp_gate, comp_norm;
    /* ratio-4 layers: indexer */
    tensor_view idx_q_b, idx_proj, idx_ape, idx_kv, idx_gate, idx_norm;
    tensor_view hc_ffn_fn, hc_ffn_scale, hc_ffn_base;
    tensor_view ffn_norm, ffn_gate_inp, exp_probs_b;   /* exp_probs_b.data may be NULL */
    tensor_view tid2eid;                               /* hash layers only */
    tensor_view gate_exps, up_exps, down_exps;
    tensor_view gate_shexp, up_shexp, down_shexp;
} layer_weights;

typedef struct model {
    gguf_file *gguf;          /* owned */
    char path[1024];
    model_hparams hp;
    layer_weights layers[FP_MAX_LAYERS];
    tensor_view token_embd, output_hc_base, output_hc_fn, output_hc_scale, output_norm, output;
    expert_shape expert;      /* per-model routed expert shape (clamp from layer 0) */
    size_t dense_bytes;       /* bytes of every tensor except routed experts */
    size_t expert_bytes;      /* bytes of all routed experts */
} model;

/* Open, validate metadata and bind/validate every tensor. NULL + err on failure. */
model *model_open(const char *path, char *err, size_t errlen);
void model_close(model *m);

/* Slabs of one routed expert inside the mapping. */
expert_slabs model_expert_slabs(const model *m, int layer, int expert);
/* Expert shape for one layer (clamp differs per layer in principle). */
expert_shape model_expert_shape(const model *m, int layer);

#endif
