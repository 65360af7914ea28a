/* expert_exec_local.h — the single-process expert executor: every routed
 * expert is computed on this machine straight from the model's mapping. */
#ifndef FP_EXPERT_EXEC_LOCAL_H
#define FP_EXPERT_EXEC_LOCAL_H

#include "expert_exec.h"
#include "model.h"

typedef struct expert_exec_local expert_exec_local;

expert_exec_local *expert_exec_local_open(const model *m, threadpool *tp, const quant_kernels *k);
void expert_exec_local_close(expert_exec_local *x);
expert_exec expert_exec_local_iface(expert_exec_local *x);

/* The building block the pool reuses for cached and disk-fallback experts:
 * compute items whose slabs the caller supplies. */
int expert_exec_local_run(expert_exec_local *x, int layer, const block_q8_K *xq, int n_items,
                          const expert_work *items, float *out);

#endif
