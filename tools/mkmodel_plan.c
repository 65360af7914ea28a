/* mkmodel_plan.c — shapes, presets, weight-scale knobs and the tensor plan
 * of a synthetic deepseek4 GGUF (see mkmodel_plan.h). The plan mirrors
 * make_tiny_gguf.py's: same names in the same order, same dims and types,
 * same init rule per tensor, so the two tools' files share one directory. */
#include "mkmodel_plan.h"

#include "quant.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F(x) {#x, offsetof(mkmodel_shape, x)}
const mkmodel_field mkmodel_shape_fields[] = {
    F(layers), F(embd), F(vocab), F(heads), F(head_dim), F(rot), F(out_groups),
    F(lora_q), F(lora_o), F(experts), F(experts_used), F(ff_exp), F(hash_layers),
    F(swa), F(indexer_heads), F(indexer_head_dim), F(indexer_top_k), F(hc),
    F(sinkhorn_iters), F(long_ratio), F(ctx), {NULL, 0},
};
#undef F

uint32_t *mkmodel_shape_field(mkmodel_shape *s, const mkmodel_field *f) {
    return (uint32_t *)((char *)s + f->offset);
}

int mkmodel_preset(const char *name, mkmodel_shape *s) {
    /* tiny: the smallest shape that still runs every DS4 code path — two
     * dense-window layers, a hash-routed ratio-4 (indexer) layer, a
     * ratio-128 layer and a top-k routed ratio-4 layer; it is the shape of
     * the reference vectors. real: DeepSeek V4 Flash widths with few layers
     * and experts (everything per layer is full size). */
    static const mkmodel_shape tiny = {
        .layers = 5, .embd = 256, .vocab = 512, .heads = 8, .head_dim = 512, .rot = 64,
        .out_groups = 4, .lora_q = 256, .lora_o = 128, .experts = 16, .experts_used = 6,
        .ff_exp = 256, .hash_layers = 3, .swa = 128, .indexer_heads = 4,
        .indexer_head_dim = 128, .indexer_top_k = 16, .hc = 4, .sinkhorn_iters = 20,
        .long_ratio = 128, .ctx = 4096,
    };
    static const mkmodel_shape real = {
        .layers = 4, .embd = 4096, .vocab = 129280, .heads = 64, .head_dim = 512, .rot = 64,
        .out_groups = 8, .lora_q = 1024, .lora_o = 1024, .experts = 16, .experts_used = 6,
        .ff_exp = 2048, .hash_layers = 3, .swa = 128, .indexer_heads = 64,
        .indexer_head_dim = 128, .indexer_top_k = 512, .hc = 4, .sinkhorn_iters = 20,
        .long_ratio = 128, .ctx = 1048576,
    };
    if (!name) return -1;
    if (strcmp(name, "tiny") == 0) *s = tiny;
    else if (strcmp(name, "real") == 0) *s = real;
    else return -1;
    return 0;
}

void mkmodel_scales_default(mkmodel_scales *sc) {
    /* The original model's scales: expert_gain 4 makes the SwiGLU clamp hit
     * now and then, everything else keeps unit-scale activations. */
    sc->expert_gain = 4.0f;
    sc->gain = 1.0f;
    sc->attn_gain = -1.0f;
    sc->ffn_gain = -1.0f;
    sc->router_scale = 1.0f;
    sc->router_bias_std = 0.1f;
    sc->indexer_scale = 1.0f;
    sc->head_gain = 1.0f;
    sc->sink_mean = 0.0f;
}

void mkmodel_scales_apply_cond(mkmodel_scales *sc) {
    /* Each sublayer adds only a small update to the residual stream, so the
     * ~2% quantisation noise two correct engines produce inside a sublayer
     * is attenuated at the logits instead of amplified layer by layer. The
     * FFN gets a smaller gain because expert_gain 4 makes its raw output
     * ~10x larger; sinks get mean 2 so that they carry weight. */
    sc->gain = 0.03f;
    sc->ffn_gain = 0.001f;
    sc->sink_mean = 2.0f;
}

uint32_t mkmodel_compress_ratio(const mkmodel_shape *s, uint32_t layer) {
    if (layer < 2) return 0;
    return layer % 2 == 0 ? 4 : s->long_ratio;
}

typedef struct errbuf { char *p; size_t cap, len; int n; } errbuf;

static void add_err(errbuf *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_err(errbuf *e, const char *fmt, ...) {
    e->n++;
    if (!e->p || !e->cap || e->len + 1 >= e->cap) return;
    if (e->len) e->len += (size_t)snprintf(e->p + e->len, e->cap - e->len, "; ");
    if (e->len >= e->cap) { e->len = e->cap - 1; return; }
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(e->p + e->len, e->cap - e->len, fmt, ap);
    va_end(ap);
    if (k > 0) e->len += (size_t)k;
    if (e->len >= e->cap) e->len = e->cap - 1;
}

int mkmodel_check_shape(const mkmodel_shape *s, char *err, size_t errlen) {
    errbuf e = {err, errlen, 0, 0};
    if (err && errlen) err[0] = 0;
    for (const mkmodel_field *f = mkmodel_shape_fields; f->name; f++) {
        uint32_t v = *mkmodel_shape_field((mkmodel_shape *)s, f);
        if (v == 0 && strcmp(f->name, "hash_layers") != 0) add_err(&e, "%s must be at least 1", f->name);
    }
    if (e.n) return -1; /* the rules below divide by these */
    if (s->embd % QK_K) add_err(&e, "embd must be a multiple of 256 (routed experts are K-quants)");
    if (s->ff_exp % QK_K) add_err(&e, "ff_exp must be a multiple of 256");
    if (s->lora_q % QK8_0) add_err(&e, "lora_q must be a multiple of 32 (Q8_0 rows)");
    if ((uint64_t)s->out_groups * s->lora_o % QK8_0) add_err(&e, "out_groups*lora_o must be a multiple of 32");
    if (s->heads % s->out_groups) add_err(&e, "heads must be a multiple of out_groups");
    else if ((uint64_t)s->head_dim * (s->heads / s->out_groups) % QK8_0)
        add_err(&e, "head_dim*heads/out_groups must be a multiple of 32");
    if (s->rot % 2 || s->rot > s->head_dim || (s->head_dim - s->rot) % 64)
        add_err(&e, "rot must be even and head_dim-rot a multiple of 64 (FP8 KV blocks)");
    if (s->indexer_head_dim != 128) add_err(&e, "indexer_head_dim must be 128 (Hadamard rotation width)");
    if (s->head_dim == s->indexer_head_dim) add_err(&e, "head_dim must differ from indexer_head_dim");
    if (s->hc != 4) add_err(&e, "hc must be 4");
    if (s->experts > 256) add_err(&e, "experts must be at most 256 (the DeepSeek V4 Flash router width)");
    if (s->experts_used > s->experts) add_err(&e, "experts_used must not exceed experts");
    if (s->hash_layers > s->layers) add_err(&e, "hash_layers must not exceed layers");
    if (s->long_ratio == 4 || s->long_ratio < 2) add_err(&e, "long_ratio must be >= 2 and != 4");
    if (s->vocab < 2 + 256 + 5) add_err(&e, "vocab must be at least 263 (BOS, EOS, 256 bytes, 5 chat tokens)");
    uint64_t q_dim = (uint64_t)s->heads * s->head_dim;
    uint64_t low = (uint64_t)s->out_groups * s->lora_o;
    if (s->embd > q_dim || s->lora_q > q_dim || low > q_dim || s->ff_exp > q_dim)
        add_err(&e, "heads*head_dim must be >= embd, lora_q, out_groups*lora_o and ff_exp "
                    "(ds4's CPU decode scratch sizes its activation buffer by it)");
    /* Keep every tensor's element count far from overflow and every row
     * length well inside what the reader accepts. */
    if (q_dim > (1u << 24) || s->embd > (1u << 20) || s->vocab > (1u << 22) || s->layers > 1024)
        add_err(&e, "shape is unreasonably large (heads*head_dim <= 2^24, embd <= 2^20, "
                    "vocab <= 2^22, layers <= 1024)");
    return e.n ? -1 : 0;
}

typedef struct planner {
    mkmodel_plan *p;
    size_t cap;
    int failed;
    char *err;
    size_t errlen;
} planner;

static mkmodel_tensor *add(planner *pl, const char *name, uint32_t type, int init, uint32_t ndim,
                           uint64_t d0, uint64_t d1, uint64_t d2) {
    if (pl->failed) return NULL;
    if (pl->p->n == pl->cap) {
        size_t nc = pl->cap ? pl->cap * 2 : 64;
        mkmodel_tensor *nt = realloc(pl->p->t, nc * sizeof *nt);
        if (!nt) {
            snprintf(pl->err, pl->errlen, "out of memory planning tensors");
            pl->failed = 1;
            return NULL;
        }
        pl->p->t = nt;
        pl->cap = nc;
    }
    mkmodel_tensor *t = &pl->p->t[pl->p->n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->init = init;
    t->ndim = ndim;
    t->dims[0] = d0;
    t->dims[1] = d1;
    t->dims[2] = d2;
    t->nelem = d0 * (ndim > 1 ? d1 : 1) * (ndim > 2 ? d2 : 1);
    t->nbytes = t->nelem / (uint64_t)qtype_block_elems((int)type) * (uint64_t)qtype_block_bytes((int)type);
    t->std = 1.0f;
    pl->p->data_bytes += t->nbytes;
    pl->p->n++;
    return t;
}

/* Shorthands for the init rules. */
static void fan_in(planner *pl, const char *name, uint32_t type, float gain, uint32_t ndim, uint64_t d0,
                   uint64_t d1, uint64_t d2) {
    mkmodel_tensor *t = add(pl, name, type, MKMODEL_INIT_FAN_IN, ndim, d0, d1, d2);
    if (t) t->std = (float)(gain / sqrt((double)d0));
}
static void normal(planner *pl, const char *name, uint32_t type, float mean, float std, uint32_t ndim,
                   uint64_t d0, uint64_t d1) {
    mkmodel_tensor *t = add(pl, name, type, MKMODEL_INIT_NORMAL, ndim, d0, d1, 0);
    if (t) {
        t->mean = mean;
        t->std = std;
    }
}
static void uniform(planner *pl, const char *name, uint64_t d0, float lo, float hi) {
    mkmodel_tensor *t = add(pl, name, QT_F32, MKMODEL_INIT_UNIFORM, 1, d0, 0, 0);
    if (t) {
        t->lo = lo;
        t->hi = hi;
    }
}

int mkmodel_plan_build(const mkmodel_config *c, mkmodel_plan *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (mkmodel_check_shape(&c->shape, err, errlen)) return -1;
    const mkmodel_shape *s = &c->shape;
    const mkmodel_scales *sc = &c->scales;
    planner pl = {out, 0, 0, err, errlen};
    const uint64_t hc_dim = (uint64_t)s->hc * s->embd;
    const uint64_t mix = 2u * s->hc + (uint64_t)s->hc * s->hc;
    const uint64_t q_dim = (uint64_t)s->heads * s->head_dim;
    const uint64_t group_in = (uint64_t)s->head_dim * (s->heads / s->out_groups);
    const uint64_t low = (uint64_t)s->out_groups * s->lora_o;
    const float attn_gain = sc->attn_gain < 0 ? sc->gain : sc->attn_gain;
    const float ffn_gain = sc->ffn_gain < 0 ? sc->gain : sc->ffn_gain;
    const uint32_t t_gate = c->expert_type == MKMODEL_EXPERTS_Q4 ? QT_Q4_K : QT_IQ2_XXS;
    const uint32_t t_down = c->expert_type == MKMODEL_EXPERTS_Q4 ? QT_Q4_K : QT_Q2_K;
    char n[MKMODEL_NAME_MAX];
#define NM(suffix) (snprintf(n, sizeof n, "blk.%u." suffix, il), n)

    normal(&pl, "token_embd.weight", QT_F16, 0.0f, 1.0f, 2, s->embd, s->vocab);
    for (uint32_t il = 0; il < s->layers; il++) {
        const uint32_t ratio = mkmodel_compress_ratio(s, il);
        fan_in(&pl, NM("hc_attn_fn.weight"), QT_F16, 1.0f, 2, hc_dim, mix, 0);
        uniform(&pl, NM("hc_attn_scale.weight"), 3, 0.5f, 1.5f);
        normal(&pl, NM("hc_attn_base.weight"), QT_F32, 0.0f, 0.5f, 1, mix, 0);
        uniform(&pl, NM("attn_norm.weight"), s->embd, 0.8f, 1.2f);
        fan_in(&pl, NM("attn_q_a.weight"), QT_Q8_0, 1.0f, 2, s->embd, s->lora_q, 0);
        uniform(&pl, NM("attn_q_a_norm.weight"), s->lora_q, 0.8f, 1.2f);
        fan_in(&pl, NM("attn_q_b.weight"), QT_Q8_0, 1.0f, 2, s->lora_q, q_dim, 0);
        fan_in(&pl, NM("attn_kv.weight"), QT_Q8_0, 1.0f, 2, s->embd, s->head_dim, 0);
        uniform(&pl, NM("attn_kv_a_norm.weight"), s->head_dim, 0.8f, 1.2f);
        normal(&pl, NM("attn_sinks.weight"), QT_F32, sc->sink_mean, 1.0f, 1, s->heads, 0);
        fan_in(&pl, NM("attn_output_a.weight"), QT_Q8_0, 1.0f, 2, group_in, low, 0);
        fan_in(&pl, NM("attn_output_b.weight"), QT_Q8_0, attn_gain, 2, low, s->embd, 0);
        if (ratio) {
            /* ratio-4 compressors keep two overlapping windows: twice the width */
            const uint64_t width = (ratio == 4 ? 2u : 1u) * s->head_dim;
            normal(&pl, NM("attn_compressor_ape.weight"), QT_F16, 0.0f, 0.5f, 2, width, ratio);
            fan_in(&pl, NM("attn_compressor_kv.weight"), QT_F16, 1.0f, 2, s->embd, width, 0);
            fan_in(&pl, NM("attn_compressor_gate.weight"), QT_F16, 1.0f, 2, s->embd, width, 0);
            uniform(&pl, NM("attn_compressor_norm.weight"), s->head_dim, 0.8f, 1.2f);
        }
        if (ratio == 4) {
            const uint64_t iw = 2u * s->indexer_head_dim;
            fan_in(&pl, NM("indexer.attn_q_b.weight"), QT_F16, sc->indexer_scale, 2, s->lora_q,
                   (uint64_t)s->indexer_heads * s->indexer_head_dim, 0);
            fan_in(&pl, NM("indexer.proj.weight"), QT_F16, sc->indexer_scale, 2, s->embd, s->indexer_heads, 0);
            normal(&pl, NM("indexer_compressor_ape.weight"), QT_F16, 0.0f, 0.5f, 2, iw, ratio);
            fan_in(&pl, NM("indexer_compressor_kv.weight"), QT_F16, 1.0f, 2, s->embd, iw, 0);
            fan_in(&pl, NM("indexer_compressor_gate.weight"), QT_F16, 1.0f, 2, s->embd, iw, 0);
            uniform(&pl, NM("indexer_compressor_norm.weight"), s->indexer_head_dim, 0.8f, 1.2f);
        }
        fan_in(&pl, NM("hc_ffn_fn.weight"), QT_F16, 1.0f, 2, hc_dim, mix, 0);
        uniform(&pl, NM("hc_ffn_scale.weight"), 3, 0.5f, 1.5f);
        normal(&pl, NM("hc_ffn_base.weight"), QT_F32, 0.0f, 0.5f, 1, mix, 0);
        uniform(&pl, NM("ffn_norm.weight"), s->embd, 0.8f, 1.2f);
        fan_in(&pl, NM("ffn_gate_inp.weight"), QT_F16, sc->router_scale, 2, s->embd, s->experts, 0);
        if (il < s->hash_layers) {
            mkmodel_tensor *t = add(&pl, NM("ffn_gate_tid2eid.weight"), QT_I32, MKMODEL_INIT_TID2EID, 2,
                                    s->experts_used, s->vocab, 0);
            if (t) t->n_expert = s->experts;
        } else {
            normal(&pl, NM("exp_probs_b.bias"), QT_F32, 0.0f, sc->router_bias_std, 1, s->experts, 0);
        }
        fan_in(&pl, NM("ffn_gate_exps.weight"), t_gate, sc->expert_gain, 3, s->embd, s->ff_exp, s->experts);
        fan_in(&pl, NM("ffn_up_exps.weight"), t_gate, sc->expert_gain, 3, s->embd, s->ff_exp, s->experts);
        fan_in(&pl, NM("ffn_down_exps.weight"), t_down, ffn_gain, 3, s->ff_exp, s->embd, s->experts);
        fan_in(&pl, NM("ffn_gate_shexp.weight"), QT_Q8_0, sc->expert_gain, 2, s->embd, s->ff_exp, 0);
        fan_in(&pl, NM("ffn_up_shexp.weight"), QT_Q8_0, sc->expert_gain, 2, s->embd, s->ff_exp, 0);
        fan_in(&pl, NM("ffn_down_shexp.weight"), QT_Q8_0, ffn_gain, 2, s->ff_exp, s->embd, 0);
    }
#undef NM
    normal(&pl, "output_hc_base.weight", QT_F32, 0.0f, 0.5f, 1, s->hc, 0);
    fan_in(&pl, "output_hc_fn.weight", QT_F16, 1.0f, 2, hc_dim, s->hc, 0);
    uniform(&pl, "output_hc_scale.weight", 1, 0.5f, 1.5f);
    uniform(&pl, "output_norm.weight", s->embd, 0.8f, 1.2f);
    fan_in(&pl, "output.weight", QT_Q8_0, sc->head_gain, 2, s->embd, s->vocab, 0);
    if (pl.failed) {
        mkmodel_plan_free(out);
        return -1;
    }
    return 0;
}

void mkmodel_plan_free(mkmodel_plan *p) {
    if (!p) return;
    free(p->t);
    memset(p, 0, sizeof *p);
}
