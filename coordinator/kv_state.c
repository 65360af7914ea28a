/* kv_state.c — allocation and reset of a session's per-layer attention state. */
#include "kv_state.h"

#include <stdlib.h>
#include <string.h>
#include "ops.h"

static int comp_cap(int ctx, int ratio) { return ratio ? ctx / ratio + 2 : 0; }

static size_t compressor_bytes(int ratio, int head_dim) {
    const int coff = ratio == 4 ? 2 : 1;
    return ratio ? 2 * (size_t)coff * ratio * coff * head_dim * sizeof(float) : 0;
}

size_t kv_state_bytes(const model_hparams *hp, int ctx) {
    size_t b = sizeof(kv_state);
    for (int l = 0; l < hp->n_layer; l++) {
        const int r = hp->compress_ratio[l];
        b += (size_t)hp->n_swa * hp->head_dim * sizeof(float);
        b += (size_t)comp_cap(ctx, r) * hp->head_dim * sizeof(float);
        b += compressor_bytes(r, hp->head_dim);
        if (r == 4) {
            b += (size_t)comp_cap(ctx, r) * hp->idx_head_dim * sizeof(float);
            b += compressor_bytes(r, hp->idx_head_dim);
        }
    }
    return b;
}

void compressor_reset(compressor_state *c) {
    if (!c->s_kv) return;
    const size_t n = (size_t)c->rows * c->width;
    memset(c->s_kv, 0, n * sizeof(float));
    for (size_t i = 0; i < n; i++) c->s_sc[i] = FP_NEG_INF;
}

static int compressor_open(compressor_state *c, int ratio, int head_dim) {
    const int coff = ratio == 4 ? 2 : 1;
    c->ratio = ratio;
    c->head_dim = head_dim;
    c->width = coff * head_dim;
    c->rows = coff * ratio;
    c->s_kv = malloc((size_t)c->rows * c->width * sizeof(float));
    c->s_sc = malloc((size_t)c->rows * c->width * sizeof(float));
    if (!c->s_kv || !c->s_sc) return -1;
    compressor_reset(c);
    return 0;
}

kv_state *kv_state_open(const model_hparams *hp, int ctx) {
    kv_state *kv = calloc(1, sizeof(*kv));
    if (!kv) return NULL;
    kv->n_layer = hp->n_layer;
    kv->n_swa = hp->n_swa;
    kv->head_dim = hp->head_dim;
    kv->idx_head_dim = hp->idx_head_dim;
    kv->ctx = ctx;
    for (int l = 0; l < hp->n_layer; l++) {
        layer_kv *L = &kv->layers[l];
        L->ratio = hp->compress_ratio[l];
        L->raw = calloc((size_t)hp->n_swa * hp->head_dim, sizeof(float));
        if (!L->raw) goto oom;
        if (L->ratio) {
            L->cap_comp = comp_cap(ctx, L->ratio);
            L->comp = malloc((size_t)L->cap_comp * hp->head_dim * sizeof(float));
            if (!L->comp || compressor_open(&L->attn, L->ratio, hp->head_dim)) goto oom;
        }
        if (L->ratio == 4) {
            L->idx = malloc((size_t)L->cap_comp * hp->idx_head_dim * sizeof(float));
            if (!L->idx || compressor_open(&L->idxc, 4, hp->idx_head_dim)) goto oom;
        }
    }
    return kv;
oom:
    kv_state_close(kv);
    return NULL;
}

void kv_state_reset(kv_state *kv) {
    for (int l = 0; l < kv->n_layer; l++) {
        layer_kv *L = &kv->layers[l];
        L->n_comp = L->n_idx = 0;
        compressor_reset(&L->attn);
        compressor_reset(&L->idxc);
    }
}

void kv_state_close(kv_state *kv) {
    if (!kv) return;
    for (int l = 0; l < kv->n_layer; l++) {
        layer_kv *L = &kv->layers[l];
        free(L->raw);
        free(L->comp);
        free(L->idx);
        free(L->attn.s_kv);
        free(L->attn.s_sc);
        free(L->idxc.s_kv);
        free(L->idxc.s_sc);
    }
    free(kv);
}
