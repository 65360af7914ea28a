/* expert_store.c — per-layer routed-expert shapes and slab locations read
 * straight from the GGUF directory (see expert_store.h). */
#include "errmsg.h"
#include "expert_store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KP "deepseek4."

typedef struct store_layer {
    expert_shape shape;
    const gguf_tensor *t[3];        /* gate, up, down */
    size_t bytes[3];                /* per-expert bytes of each */
} store_layer;

struct expert_store {
    const gguf_file *f;
    int n_layer, n_expert, n_embd, n_ff;
    store_layer *layers;
};

static int get_count(const gguf_file *f, const char *key, int lo, int hi, int *out, char *err, size_t errlen) {
    uint64_t v;
    if (gguf_get_u64(f, key, &v) != 0) return fp_fail(err, errlen, "metadata %s missing or not an unsigned integer", key);
    if (v < (uint64_t)lo || v > (uint64_t)hi)
        return fp_fail(err, errlen, "metadata %s = %llu outside %d..%d", key, (unsigned long long)v, lo, hi);
    *out = (int)v;
    return 0;
}

static int routed_type(uint32_t t) { return t == QT_IQ2_XXS || t == QT_Q2_K || t == QT_Q4_K; }

static int bind_tensor(expert_store *s, int l, int which, char *err, size_t errlen) {
    static const char *const names[3] = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s.weight", l, names[which]);
    const gguf_tensor *t = gguf_find_tensor(s->f, name);
    if (!t) return fp_fail(err, errlen, "tensor %s missing", name);
    const uint64_t d0 = which == 2 ? (uint64_t)s->n_ff : (uint64_t)s->n_embd;
    const uint64_t d1 = which == 2 ? (uint64_t)s->n_embd : (uint64_t)s->n_ff;
    if (t->ndim != 3 || t->dims[0] != d0 || t->dims[1] != d1 || t->dims[2] != (uint64_t)s->n_expert)
        return fp_fail(err, errlen, "tensor %s: dims must be [%llu, %llu, %d]", name, (unsigned long long)d0,
                    (unsigned long long)d1, s->n_expert);
    if (!routed_type(t->type))
        return fp_fail(err, errlen, "tensor %s: type %s, routed experts must be IQ2_XXS, Q2_K or Q4_K", name,
                    qtype_name((int)t->type));
    const size_t per = qtype_row_bytes((int)t->type, (int64_t)d0) * (size_t)d1;
    if (per == 0 || t->nbytes != (uint64_t)per * (uint64_t)s->n_expert)
        return fp_fail(err, errlen, "tensor %s: %llu bytes, expected %d experts of %zu", name,
                    (unsigned long long)t->nbytes, s->n_expert, per);
    s->layers[l].t[which] = t;
    s->layers[l].bytes[which] = per;
    return 0;
}

expert_store *expert_store_open(const gguf_file *f, char *err, size_t errlen) {
    expert_store *s = calloc(1, sizeof(*s));
    if (!s) {
        fp_fail(err, errlen, "out of memory");
        return NULL;
    }
    s->f = f;
    gguf_str arch;
    if (gguf_get_str(f, "general.architecture", &arch) != 0 || arch.len != 9 || memcmp(arch.s, "deepseek4", 9)) {
        fp_fail(err, errlen, "general.architecture is not deepseek4");
        goto bad;
    }
    if (get_count(f, KP "block_count", 1, 4096, &s->n_layer, err, errlen) ||
        get_count(f, KP "expert_count", 1, 65536, &s->n_expert, err, errlen) ||
        get_count(f, KP "embedding_length", 256, 1 << 20, &s->n_embd, err, errlen) ||
        get_count(f, KP "expert_feed_forward_length", 256, 1 << 20, &s->n_ff, err, errlen))
        goto bad;
    if (s->n_embd % QK_K || s->n_ff % QK_K) {
        fp_fail(err, errlen, "embedding_length %d and expert_feed_forward_length %d must be multiples of 256",
             s->n_embd, s->n_ff);
        goto bad;
    }
    const gguf_kv *cl = gguf_find_kv(f, KP "swiglu_clamp_exp");
    if (!cl || cl->type != GGUF_ARR || cl->arr_len < (uint64_t)s->n_layer) {
        fp_fail(err, errlen, KP "swiglu_clamp_exp missing or shorter than block_count");
        goto bad;
    }
    s->layers = calloc((size_t)s->n_layer, sizeof(*s->layers));
    if (!s->layers) {
        fp_fail(err, errlen, "out of memory");
        goto bad;
    }
    for (int l = 0; l < s->n_layer; l++) {
        double c;
        if (gguf_arr_get_f64(cl, (uint64_t)l, &c) != 0 || !(c == c)) {
            fp_fail(err, errlen, KP "swiglu_clamp_exp[%d] invalid", l);
            goto bad;
        }
        for (int w = 0; w < 3; w++)
            if (bind_tensor(s, l, w, err, errlen)) goto bad;
        store_layer *L = &s->layers[l];
        if (L->t[0]->type != L->t[1]->type) {
            fp_fail(err, errlen, "blk.%d: routed gate (%s) and up (%s) experts must share a type", l,
                 qtype_name((int)L->t[0]->type), qtype_name((int)L->t[1]->type));
            goto bad;
        }
        L->shape = (expert_shape){
            .n_embd = s->n_embd, .n_ff = s->n_ff,
            .type_gate = (int)L->t[0]->type, .type_up = (int)L->t[1]->type, .type_down = (int)L->t[2]->type,
            .clamp = (float)c,
        };
    }
    return s;
bad:
    expert_store_close(s);
    return NULL;
}

void expert_store_close(expert_store *s) {
    if (!s) return;
    free(s->layers);
    free(s);
}

int expert_store_n_layer(const expert_store *s) { return s->n_layer; }
int expert_store_n_expert(const expert_store *s) { return s->n_expert; }
int expert_store_n_embd(const expert_store *s) { return s->n_embd; }
const expert_shape *expert_store_shape(const expert_store *s, int layer) { return &s->layers[layer].shape; }

int expert_store_valid(const expert_store *s, int layer, int expert) {
    return layer >= 0 && layer < s->n_layer && expert >= 0 && expert < s->n_expert;
}

size_t expert_store_expert_bytes(const expert_store *s, int layer) {
    const store_layer *L = &s->layers[layer];
    return L->bytes[0] + L->bytes[1] + L->bytes[2];
}

expert_slabs expert_store_slabs(const expert_store *s, int layer, int expert) {
    const store_layer *L = &s->layers[layer];
    expert_slabs e = {
        .gate = L->t[0]->data + (size_t)expert * L->bytes[0],
        .up = L->t[1]->data + (size_t)expert * L->bytes[1],
        .down = L->t[2]->data + (size_t)expert * L->bytes[2],
    };
    return e;
}

void expert_store_offsets(const expert_store *s, int layer, int expert, uint64_t off[3], size_t len[3]) {
    const store_layer *L = &s->layers[layer];
    for (int w = 0; w < 3; w++) {
        off[w] = s->f->data_offset + L->t[w]->offset + (uint64_t)expert * L->bytes[w];
        len[w] = L->bytes[w];
    }
}
