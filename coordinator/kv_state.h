/* kv_state.h — the per-layer attention state of one session (model-spec §5):
 * the raw sliding window (a ring of n_swa rows), compressed KV rows, the
 * compressor frontiers, and for ratio-4 layers the indexer keys and their
 * compressor frontier. Rows are stored as f32 holding f16-rounded values,
 * exactly as the reference keeps them, so snapshots restore bit-exactly. */
#ifndef FP_KV_STATE_H
#define FP_KV_STATE_H

#include <stddef.h>
#include <stdint.h>
#include "model.h"

typedef struct compressor_state {
    int ratio, head_dim, width, rows;   /* rows = coff*ratio, width = coff*head_dim */
    float *s_kv, *s_sc;                 /* [rows][width] each */
} compressor_state;

typedef struct layer_kv {
    int ratio;
    float *raw;            /* [n_swa][head_dim] ring; row of position p at p % n_swa */
    float *comp;           /* [cap_comp][head_dim] */
    int n_comp, cap_comp;
    compressor_state attn;
    float *idx;            /* [cap_comp][idx_head_dim] (ratio 4 only) */
    int n_idx;
    compressor_state idxc;
} layer_kv;

typedef struct kv_state {
    int n_layer, n_swa, head_dim, idx_head_dim, ctx;
    layer_kv layers[FP_MAX_LAYERS];
} kv_state;

/* Bytes that kv_state_open would allocate for ctx tokens. */
size_t kv_state_bytes(const model_hparams *hp, int ctx);
kv_state *kv_state_open(const model_hparams *hp, int ctx);   /* NULL on OOM */
void kv_state_close(kv_state *kv);
/* Forget everything (fresh session). */
void kv_state_reset(kv_state *kv);
/* Bring the compressor frontier rows that are not yet overwritten back to
 * (0, -1e30) after a prefill: no numerical effect, canonical saved state. */
void compressor_reset(compressor_state *c);

#endif
