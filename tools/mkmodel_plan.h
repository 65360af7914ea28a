/* mkmodel_plan.h — what flashpool-mkmodel writes: the model shape (presets
 * and overrides), the weight-scale knobs, and the resulting tensor plan
 * (names, dims, types and init rule of every tensor, in file order).
 *
 * The layout is the DeepSeek V4 Flash ("deepseek4") GGUF of model-spec §2.3,
 * tensor for tensor the same as /work/shared/tools/make_tiny_gguf.py writes,
 * so files from either tool are interchangeable for the engine. */
#ifndef FP_MKMODEL_PLAN_H
#define FP_MKMODEL_PLAN_H

#include <stddef.h>
#include <stdint.h>

/* Every shape field; the names match the CLI options (--ff-exp etc.). */
typedef struct mkmodel_shape {
    uint32_t layers, embd, vocab, heads, head_dim, rot, out_groups, lora_q, lora_o;
    uint32_t experts, experts_used, ff_exp, hash_layers, swa;
    uint32_t indexer_heads, indexer_head_dim, indexer_top_k;
    uint32_t hc, sinkhorn_iters, long_ratio, ctx;
} mkmodel_shape;

/* Weight-scale knobs. attn_gain / ffn_gain < 0 mean "use gain". */
typedef struct mkmodel_scales {
    float expert_gain;      /* std multiplier of routed and shared gate/up */
    float gain;             /* std multiplier of every sublayer output projection */
    float attn_gain;        /* ... of attn_output_b only (< 0: gain) */
    float ffn_gain;         /* ... of routed and shared ffn_down only (< 0: gain) */
    float router_scale;     /* std multiplier of ffn_gate_inp */
    float router_bias_std;  /* std of exp_probs_b.bias */
    float indexer_scale;    /* std multiplier of indexer.proj and indexer.attn_q_b */
    float head_gain;        /* std multiplier of output.weight */
    float sink_mean;        /* mean of attn_sinks (std 1) */
} mkmodel_scales;

enum mkmodel_expert_type {
    MKMODEL_EXPERTS_IQ2 = 0,    /* IQ2_XXS gate/up, Q2_K down (the released 2-bit file) */
    MKMODEL_EXPERTS_Q4 = 1,     /* Q4_K gate/up/down */
};

typedef struct mkmodel_config {
    char preset[16];            /* name shown in general.name */
    mkmodel_shape shape;
    mkmodel_scales scales;
    uint64_t seed;
    int expert_type;            /* enum mkmodel_expert_type */
} mkmodel_config;

/* Fills *s with preset "tiny" or "real"; -1 for an unknown name. */
int mkmodel_preset(const char *name, mkmodel_shape *s);
/* Field table for generic override parsing: name ("ff_exp"), offset. */
typedef struct mkmodel_field { const char *name; size_t offset; } mkmodel_field;
extern const mkmodel_field mkmodel_shape_fields[];   /* NULL-name terminated */
uint32_t *mkmodel_shape_field(mkmodel_shape *s, const mkmodel_field *f);

void mkmodel_scales_default(mkmodel_scales *sc);
/* The well-conditioned variant (--cond): gain 0.03, ffn_gain 0.001, sink_mean 2
 * on top of whatever *sc holds. */
void mkmodel_scales_apply_cond(mkmodel_scales *sc);

/* 0 when the shape is writable and loadable; else -1 with every problem listed. */
int mkmodel_check_shape(const mkmodel_shape *s, char *err, size_t errlen);
/* DS4 layer schedule: 0 for layers 0 and 1, then 4 (even) / long_ratio (odd). */
uint32_t mkmodel_compress_ratio(const mkmodel_shape *s, uint32_t layer);

enum mkmodel_init {
    MKMODEL_INIT_FAN_IN = 0,    /* N(0, gain / sqrt(dims[0])) — std holds the result */
    MKMODEL_INIT_NORMAL,        /* N(mean, std) */
    MKMODEL_INIT_UNIFORM,       /* U(lo, hi) */
    MKMODEL_INIT_TID2EID,       /* I32 rows of dims[0] distinct expert ids < n_expert */
};

#define MKMODEL_NAME_MAX 64

typedef struct mkmodel_tensor {
    char name[MKMODEL_NAME_MAX];
    uint32_t type;              /* enum qtype */
    uint32_t ndim;
    uint64_t dims[3];           /* dims[0] innermost */
    int init;                   /* enum mkmodel_init */
    float std, mean, lo, hi;
    uint32_t n_expert;          /* TID2EID only */
    uint64_t nelem, nbytes;
} mkmodel_tensor;

typedef struct mkmodel_plan {
    mkmodel_tensor *t;
    size_t n;
    uint64_t data_bytes;        /* sum of nbytes, without alignment padding */
} mkmodel_plan;

/* Builds the tensor list for c (shape must pass mkmodel_check_shape).
 * 0 / -1 with err. Free with mkmodel_plan_free. */
int mkmodel_plan_build(const mkmodel_config *c, mkmodel_plan *out, char *err, size_t errlen);
void mkmodel_plan_free(mkmodel_plan *p);

#endif
