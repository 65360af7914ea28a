/* model.c — bind a deepseek4 GGUF: read hyperparameters from metadata, then
 * find and validate every tensor (name, dims, type) against those values.
 * A file that does not match is refused with a message naming the tensor or
 * key, before any inference code touches it. */
#include "errmsg.h"
#include "model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A "deepseek4."

static int req_u32(const gguf_file *f, const char *key, int *out, char *err, size_t errlen) {
    uint32_t v;
    if (gguf_get_u32(f, key, &v) != 0)
        return fp_fail(err, errlen, "metadata key '%s' is missing or not UINT32", key);
    if (v > (1u << 30)) return fp_fail(err, errlen, "metadata key '%s' = %u is out of range", key, v);
    *out = (int)v;
    return 0;
}

static int req_f32(const gguf_file *f, const char *key, float *out, char *err, size_t errlen) {
    if (gguf_get_f32(f, key, out) != 0)
        return fp_fail(err, errlen, "metadata key '%s' is missing or not a number", key);
    return 0;
}

static int read_hparams(const gguf_file *f, model_hparams *hp, char *err, size_t errlen) {
    gguf_str arch;
    if (gguf_get_str(f, "general.architecture", &arch) != 0 || arch.len != 9 ||
        memcmp(arch.s, "deepseek4", 9) != 0)
        return fp_fail(err, errlen, "general.architecture is not 'deepseek4': not a DeepSeek V4 Flash GGUF");
    struct { const char *key; int *dst; } u32s[] = {
        {A "block_count", &hp->n_layer}, {A "embedding_length", &hp->n_embd},
        {A "vocab_size", &hp->n_vocab}, {A "attention.head_count", &hp->n_head},
        {A "attention.key_length", &hp->head_dim}, {A "rope.dimension_count", &hp->n_rot},
        {A "attention.q_lora_rank", &hp->q_lora}, {A "attention.output_lora_rank", &hp->o_lora},
        {A "attention.output_group_count", &hp->n_out_group}, {A "expert_count", &hp->n_expert},
        {A "expert_used_count", &hp->n_expert_used}, {A "expert_feed_forward_length", &hp->n_ff},
        {A "hash_layer_count", &hp->n_hash_layer}, {A "attention.sliding_window", &hp->n_swa},
        {A "attention.indexer.head_count", &hp->idx_n_head},
        {A "attention.indexer.key_length", &hp->idx_head_dim},
        {A "attention.indexer.top_k", &hp->idx_top_k}, {A "hyper_connection.count", &hp->n_hc},
        {A "hyper_connection.sinkhorn_iterations", &hp->sinkhorn_iters},
    };
    for (size_t i = 0; i < sizeof(u32s) / sizeof(u32s[0]); i++)
        if (req_u32(f, u32s[i].key, u32s[i].dst, err, errlen)) return -1;
    int kv_heads, vlen, shared;
    if (req_u32(f, A "attention.head_count_kv", &kv_heads, err, errlen) ||
        req_u32(f, A "attention.value_length", &vlen, err, errlen) ||
        req_u32(f, A "expert_shared_count", &shared, err, errlen))
        return -1;
    if (kv_heads != 1) return fp_fail(err, errlen, "%sattention.head_count_kv = %d, expected 1", A, kv_heads);
    if (vlen != hp->head_dim) return fp_fail(err, errlen, "value_length %d != key_length %d", vlen, hp->head_dim);
    if (shared != 1) return fp_fail(err, errlen, "%sexpert_shared_count = %d, expected 1", A, shared);

    struct { const char *key; float *dst; } f32s[] = {
        {A "rope.freq_base", &hp->rope_base}, {A "rope.scaling.factor", &hp->rope_scale_factor},
        {A "rope.scaling.yarn_beta_fast", &hp->yarn_beta_fast},
        {A "rope.scaling.yarn_beta_slow", &hp->yarn_beta_slow},
        {A "attention.compress_rope_freq_base", &hp->compress_rope_base},
        {A "expert_weights_scale", &hp->expert_weight_scale},
        {A "attention.layer_norm_rms_epsilon", &hp->rms_eps},
        {A "hyper_connection.epsilon", &hp->hc_eps},
    };
    for (size_t i = 0; i < sizeof(f32s) / sizeof(f32s[0]); i++)
        if (req_f32(f, f32s[i].key, f32s[i].dst, err, errlen)) return -1;
    if (gguf_get_u64(f, A "rope.scaling.original_context_length", &hp->rope_orig_ctx) != 0)
        return fp_fail(err, errlen, "metadata key '%srope.scaling.original_context_length' is missing", A);
    int norm = 0;
    if (gguf_get_bool(f, A "expert_weights_norm", &norm) != 0 || !norm)
        return fp_fail(err, errlen, "%sexpert_weights_norm must be present and true", A);
    uint32_t ctx = 0;
    hp->ctx_train = gguf_get_u32(f, A "context_length", &ctx) == 0 ? ctx : 0;

    /* Shape sanity: everything the kernels and loops below rely on. */
    if (hp->n_layer < 1 || hp->n_layer > FP_MAX_LAYERS)
        return fp_fail(err, errlen, "block_count %d not in 1..%d", hp->n_layer, FP_MAX_LAYERS);
    if (hp->n_hc != FP_N_HC) return fp_fail(err, errlen, "hyper_connection.count %d, only 4 is supported", hp->n_hc);
    if (hp->n_embd % 256 || hp->n_ff % 256 || hp->n_embd <= 0 || hp->n_ff <= 0)
        return fp_fail(err, errlen, "embedding_length %d and expert_feed_forward_length %d must be multiples of 256", hp->n_embd, hp->n_ff);
    if (hp->n_expert < 1 || hp->n_expert > FP_MAX_EXPERTS || hp->n_expert_used < 1 ||
        hp->n_expert_used > hp->n_expert || hp->n_expert_used > 16)
        return fp_fail(err, errlen, "expert_count %d / expert_used_count %d unsupported", hp->n_expert, hp->n_expert_used);
    if (hp->n_rot % 2 || hp->n_rot > hp->head_dim || (hp->head_dim - hp->n_rot) % 64)
        return fp_fail(err, errlen, "head_dim %d / rope dims %d: head_dim-rot must be a multiple of 64", hp->head_dim, hp->n_rot);
    if (hp->head_dim > 1024 || hp->head_dim < 64)
        return fp_fail(err, errlen, "attention key_length %d not in 64..1024", hp->head_dim);
    if (hp->idx_head_dim != 128) return fp_fail(err, errlen, "indexer key_length %d, only 128 is supported", hp->idx_head_dim);
    if (hp->n_rot > hp->idx_head_dim) return fp_fail(err, errlen, "rope dims exceed the indexer head");
    if (hp->n_out_group < 1 || hp->n_head % hp->n_out_group)
        return fp_fail(err, errlen, "head_count %d is not a multiple of output_group_count %d", hp->n_head, hp->n_out_group);
    if (hp->q_lora % 32 || (hp->head_dim * (hp->n_head / hp->n_out_group)) % 32 || hp->o_lora % 32)
        return fp_fail(err, errlen, "q/o LoRA ranks and group widths must be multiples of 32");
    if (hp->n_swa < 1 || hp->idx_top_k < 1 || hp->sinkhorn_iters < 1)
        return fp_fail(err, errlen, "sliding_window, indexer top_k and sinkhorn_iterations must be positive");
    if (hp->n_hash_layer > hp->n_layer) return fp_fail(err, errlen, "hash_layer_count exceeds block_count");

    const gguf_kv *cr = gguf_find_kv(f, A "attention.compress_ratios");
    if (!cr || cr->type != GGUF_ARR || cr->arr_len < (uint64_t)hp->n_layer)
        return fp_fail(err, errlen, "%sattention.compress_ratios missing or shorter than block_count", A);
    const gguf_kv *cl = gguf_find_kv(f, A "swiglu_clamp_exp");
    if (!cl || cl->type != GGUF_ARR || cl->arr_len < (uint64_t)hp->n_layer)
        return fp_fail(err, errlen, "%sswiglu_clamp_exp missing or shorter than block_count", A);
    for (int l = 0; l < hp->n_layer; l++) {
        int64_t r;
        double c;
        if (gguf_arr_get_i64(cr, l, &r) != 0 || (r != 0 && r != 4 && (r < 2 || r > 65536)))
            return fp_fail(err, errlen, "compress_ratios[%d] invalid", l);
        if (gguf_arr_get_f64(cl, l, &c) != 0) return fp_fail(err, errlen, "swiglu_clamp_exp[%d] invalid", l);
        hp->compress_ratio[l] = (int)r;
        hp->swiglu_clamp[l] = (float)c;
    }
    return 0;
}

/* Find a tensor and check its type set and dims. types: bitmask of 1<<qtype. */
static int bind(const gguf_file *f, tensor_view *tv, const char *name, uint64_t types,
                int nd, int64_t d0, int64_t d1, int64_t d2, int optional, char *err, size_t errlen) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    memset(tv, 0, sizeof(*tv));
    if (!t) {
        if (optional) return 0;
        return fp_fail(err, errlen, "tensor '%s' is missing: this GGUF is not a complete deepseek4 model", name);
    }
    if (t->type >= 64 || !(types & (1ull << t->type)))
        return fp_fail(err, errlen, "tensor '%s' has type %s, which this engine does not accept there",
                    name, qtype_name((int)t->type));
    int64_t want[3] = {d0, d1, d2};
    if ((int)t->ndim != nd) return fp_fail(err, errlen, "tensor '%s' has %u dims, expected %d", name, t->ndim, nd);
    for (int i = 0; i < nd; i++)
        if ((int64_t)t->dims[i] != want[i])
            return fp_fail(err, errlen, "tensor '%s' dim %d is %llu, expected %lld (shape from metadata)",
                        name, i, (unsigned long long)t->dims[i], (long long)want[i]);
    tv->data = t->data;
    tv->type = (int)t->type;
    tv->ne0 = d0;
    tv->ne1 = nd > 1 ? d1 : 1;
    tv->ne2 = nd > 2 ? d2 : 1;
    return 0;
}

#define T_F32 (1ull << QT_F32)
#define T_F16 (1ull << QT_F16)
#define T_Q8 (1ull << QT_Q8_0)
#define T_I32 (1ull << QT_I32)
#define T_ROUTED ((1ull << QT_IQ2_XXS) | (1ull << QT_Q2_K) | (1ull << QT_Q4_K))

static int bind_layer(model *m, int l, char *err, size_t errlen) {
    const gguf_file *f = m->gguf;
    const model_hparams *hp = &m->hp;
    layer_weights *w = &m->layers[l];
    const int64_t E = hp->n_embd, hc = (int64_t)hp->n_hc * E, mix = 2 * hp->n_hc + hp->n_hc * hp->n_hc;
    const int64_t qdim = (int64_t)hp->n_head * hp->head_dim;
    const int64_t grp_in = (int64_t)hp->head_dim * (hp->n_head / hp->n_out_group);
    const int ratio = hp->compress_ratio[l];
    char n[160];
#define B(field, suffix, types, nd, a, b, c, opt) \
    do { snprintf(n, sizeof n, "blk.%d.%s", l, suffix); \
         if (bind(f, &w->field, n, types, nd, a, b, c, opt, err, errlen)) return -1; } while (0)
    B(hc_attn_fn, "hc_attn_fn.weight", T_F16, 2, hc, mix, 0, 0);
    B(hc_attn_scale, "hc_attn_scale.weight", T_F32, 1, 3, 0, 0, 0);
    B(hc_attn_base, "hc_attn_base.weight", T_F32, 1, mix, 0, 0, 0);
    B(attn_norm, "attn_norm.weight", T_F32, 1, E, 0, 0, 0);
    B(attn_q_a, "attn_q_a.weight", T_Q8, 2, E, hp->q_lora, 0, 0);
    B(attn_q_a_norm, "attn_q_a_norm.weight", T_F32, 1, hp->q_lora, 0, 0, 0);
    B(attn_q_b, "attn_q_b.weight", T_Q8, 2, hp->q_lora, qdim, 0, 0);
    B(attn_kv, "attn_kv.weight", T_Q8, 2, E, hp->head_dim, 0, 0);
    B(attn_kv_a_norm, "attn_kv_a_norm.weight", T_F32, 1, hp->head_dim, 0, 0, 0);
    B(attn_sinks, "attn_sinks.weight", T_F32, 1, hp->n_head, 0, 0, 0);
    B(attn_output_a, "attn_output_a.weight", T_Q8, 2, grp_in, (int64_t)hp->n_out_group * hp->o_lora, 0, 0);
    B(attn_output_b, "attn_output_b.weight", T_Q8, 2, (int64_t)hp->n_out_group * hp->o_lora, E, 0, 0);
    if (ratio) {
        const int64_t width = (ratio == 4 ? 2 : 1) * (int64_t)hp->head_dim;
        B(comp_ape, "attn_compressor_ape.weight", T_F16, 2, width, ratio, 0, 0);
        B(comp_kv, "attn_compressor_kv.weight", T_F16, 2, E, width, 0, 0);
        B(comp_gate, "attn_compressor_gate.weight", T_F16, 2, E, width, 0, 0);
        B(comp_norm, "attn_compressor_norm.weight", T_F32, 1, hp->head_dim, 0, 0, 0);
    }
    if (ratio == 4) {
        const int64_t iw = 2 * (int64_t)hp->idx_head_dim;
        B(idx_q_b, "indexer.attn_q_b.weight", T_F16, 2, hp->q_lora, (int64_t)hp->idx_n_head * hp->idx_head_dim, 0, 0);
        B(idx_proj, "indexer.proj.weight", T_F16, 2, E, hp->idx_n_head, 0, 0);
        B(idx_ape, "indexer_compressor_ape.weight", T_F16, 2, iw, 4, 0, 0);
        B(idx_kv, "indexer_compressor_kv.weight", T_F16, 2, E, iw, 0, 0);
        B(idx_gate, "indexer_compressor_gate.weight", T_F16, 2, E, iw, 0, 0);
        B(idx_norm, "indexer_compressor_norm.weight", T_F32, 1, hp->idx_head_dim, 0, 0, 0);
    }
    B(hc_ffn_fn, "hc_ffn_fn.weight", T_F16, 2, hc, mix, 0, 0);
    B(hc_ffn_scale, "hc_ffn_scale.weight", T_F32, 1, 3, 0, 0, 0);
    B(hc_ffn_base, "hc_ffn_base.weight", T_F32, 1, mix, 0, 0, 0);
    B(ffn_norm, "ffn_norm.weight", T_F32, 1, E, 0, 0, 0);
    B(ffn_gate_inp, "ffn_gate_inp.weight", T_F16, 2, E, hp->n_expert, 0, 0);
    B(exp_probs_b, "exp_probs_b.bias", T_F32, 1, hp->n_expert, 0, 0, 1);
    if (l < hp->n_hash_layer)
        B(tid2eid, "ffn_gate_tid2eid.weight", T_I32, 2, hp->n_expert_used, hp->n_vocab, 0, 0);
    B(gate_exps, "ffn_gate_exps.weight", T_ROUTED, 3, E, hp->n_ff, hp->n_expert, 0);
    B(up_exps, "ffn_up_exps.weight", T_ROUTED, 3, E, hp->n_ff, hp->n_expert, 0);
    B(down_exps, "ffn_down_exps.weight", T_ROUTED, 3, hp->n_ff, E, hp->n_expert, 0);
    B(gate_shexp, "ffn_gate_shexp.weight", T_Q8, 2, E, hp->n_ff, 0, 0);
    B(up_shexp, "ffn_up_shexp.weight", T_Q8, 2, E, hp->n_ff, 0, 0);
    B(down_shexp, "ffn_down_shexp.weight", T_Q8, 2, hp->n_ff, E, 0, 0);
#undef B
    if (w->gate_exps.type != w->up_exps.type)
        return fp_fail(err, errlen, "blk.%d: routed gate (%s) and up (%s) experts must share a type", l,
                    qtype_name(w->gate_exps.type), qtype_name(w->up_exps.type));
    if (l < hp->n_hash_layer) {
        const int32_t *t = w->tid2eid.data;
        for (int64_t i = 0; i < (int64_t)hp->n_vocab * hp->n_expert_used; i++)
            if (t[i] < 0 || t[i] >= hp->n_expert)
                return fp_fail(err, errlen, "blk.%d.ffn_gate_tid2eid.weight: entry %lld = %d is not an expert id",
                            l, (long long)i, t[i]);
    }
    return 0;
}

model *model_open(const char *path, char *err, size_t errlen) {
    model *m = calloc(1, sizeof(*m));
    if (!m) {
        fp_fail(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(m->path, sizeof m->path, "%s", path);
    char gerr[512];
    m->gguf = gguf_open(path, gerr, sizeof gerr);
    if (!m->gguf) {
        fp_fail(err, errlen, "%s: %s", path, gerr);
        free(m);
        return NULL;
    }
    const gguf_file *f = m->gguf;
    model_hparams *hp = &m->hp;
    if (read_hparams(f, hp, err, errlen)) goto bad;
    const int64_t E = hp->n_embd;
    if (bind(f, &m->token_embd, "token_embd.weight", T_F16, 2, E, hp->n_vocab, 0, 0, err, errlen) ||
        bind(f, &m->output_hc_base, "output_hc_base.weight", T_F32, 1, hp->n_hc, 0, 0, 0, err, errlen) ||
        bind(f, &m->output_hc_fn, "output_hc_fn.weight", T_F16, 2, (int64_t)hp->n_hc * E, hp->n_hc, 0, 0, err, errlen) ||
        bind(f, &m->output_hc_scale, "output_hc_scale.weight", T_F32, 1, 1, 0, 0, 0, err, errlen) ||
        bind(f, &m->output_norm, "output_norm.weight", T_F32, 1, E, 0, 0, 0, err, errlen) ||
        bind(f, &m->output, "output.weight", T_Q8, 2, E, hp->n_vocab, 0, 0, err, errlen))
        goto bad;
    for (int l = 0; l < hp->n_layer; l++)
        if (bind_layer(m, l, err, errlen)) goto bad;
    m->expert = model_expert_shape(m, 0);
    size_t total = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) total += f->tensors[i].nbytes;
    for (int l = 0; l < hp->n_layer; l++)
        m->expert_bytes += (size_t)hp->n_expert * (2 * expert_gate_bytes(&m->expert) + expert_down_bytes(&m->expert));
    m->dense_bytes = total - m->expert_bytes;
    return m;
bad:
    gguf_close(m->gguf);
    free(m);
    return NULL;
}

void model_close(model *m) {
    if (!m) return;
    gguf_close(m->gguf);
    free(m);
}

expert_shape model_expert_shape(const model *m, int layer) {
    const layer_weights *w = &m->layers[layer];
    expert_shape s = {
        .n_embd = m->hp.n_embd, .n_ff = m->hp.n_ff,
        .type_gate = w->gate_exps.type, .type_up = w->up_exps.type, .type_down = w->down_exps.type,
        .clamp = m->hp.swiglu_clamp[layer],
    };
    return s;
}

expert_slabs model_expert_slabs(const model *m, int layer, int expert) {
    const layer_weights *w = &m->layers[layer];
    const expert_shape s = model_expert_shape(m, layer);
    const size_t gb = expert_gate_bytes(&s), db = expert_down_bytes(&s);
    expert_slabs e = {
        .gate = (const uint8_t *)w->gate_exps.data + (size_t)expert * gb,
        .up = (const uint8_t *)w->up_exps.data + (size_t)expert * gb,
        .down = (const uint8_t *)w->down_exps.data + (size_t)expert * db,
    };
    return e;
}
