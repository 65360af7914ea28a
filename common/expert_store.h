/* expert_store.h — where every routed expert of a DS4-layout GGUF lives.
 *
 * From an open gguf_file: the per-layer expert_shape (n_embd, n_ff, the
 * three tensor types, SwiGLU clamp from deepseek4.swiglu_clamp_exp[layer])
 * and, for (layer, expert), the three slabs as pointers into the mapping
 * (tensor data + expert × per-expert bytes) or as file offsets for
 * pread/io_uring. Tensors: blk.L.ffn_{gate,up}_exps.weight [n_embd, n_ff,
 * n_expert] and blk.L.ffn_down_exps.weight [n_ff, n_embd, n_expert], types
 * IQ2_XXS / Q2_K / Q4_K, gate and up of one type; all validated at open.
 * Needs only the GGUF (no dense model): used by flashpool-node. */
#ifndef FP_EXPERT_STORE_H
#define FP_EXPERT_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "experts.h"
#include "gguf.h"

typedef struct expert_store expert_store;

/* f must outlive the store. NULL with err naming the key/tensor at fault. */
expert_store *expert_store_open(const gguf_file *f, char *err, size_t errlen);
void expert_store_close(expert_store *s);

int expert_store_n_layer(const expert_store *s);
int expert_store_n_expert(const expert_store *s);
int expert_store_n_embd(const expert_store *s);
const expert_shape *expert_store_shape(const expert_store *s, int layer);

/* Bytes of one expert of layer (gate + up + down). */
size_t expert_store_expert_bytes(const expert_store *s, int layer);

/* Slabs inside the mapping. Callers pass 0 <= layer < n_layer and
 * 0 <= expert < n_expert (checked by expert_store_valid). */
int expert_store_valid(const expert_store *s, int layer, int expert);
expert_slabs expert_store_slabs(const expert_store *s, int layer, int expert);

/* File offsets and lengths of gate, up, down (in that order). */
void expert_store_offsets(const expert_store *s, int layer, int expert, uint64_t off[3], size_t len[3]);

#endif
