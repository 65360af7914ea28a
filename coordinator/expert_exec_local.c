/* expert_exec_local.c — routed experts computed in-process from the GGUF
 * mapping. submit() does the work at once (there is nothing to overlap with
 * on one machine beyond the thread pool); wait() is a no-op. */
#include "expert_exec_local.h"

#include <stdio.h>
#include <stdlib.h>

struct expert_exec_local {
    const model *m;
    threadpool *tp;
    const quant_kernels *k;
};

expert_exec_local *expert_exec_local_open(const model *m, threadpool *tp, const quant_kernels *k) {
    expert_exec_local *x = calloc(1, sizeof(*x));
    if (!x) return NULL;
    x->m = m;
    x->tp = tp;
    x->k = k;
    return x;
}

void expert_exec_local_close(expert_exec_local *x) { free(x); }

int expert_exec_local_run(expert_exec_local *x, int layer, const block_q8_K *xq, int n_items,
                          const expert_work *items, float *out) {
    expert_slabs *slabs = malloc((size_t)n_items * sizeof(*slabs));
    if (!slabs) return -1;
    for (int i = 0; i < n_items; i++) slabs[i] = model_expert_slabs(x->m, layer, items[i].expert);
    const expert_shape s = model_expert_shape(x->m, layer);
    const int rc = experts_compute(x->tp, x->k, &s, xq, n_items, items, slabs, out);
    free(slabs);
    return rc;
}

static int local_submit(void *ud, int layer, int n_tokens, const block_q8_K *xq, int n_items,
                        const expert_work *items, float *out, char *err, size_t errlen) {
    (void)n_tokens;
    if (expert_exec_local_run(ud, layer, xq, n_items, items, out)) {
        snprintf(err, errlen, "layer %d: local expert computation failed (out of memory or unsupported expert type)", layer);
        return -1;
    }
    return 0;
}

static int local_wait(void *ud, char *err, size_t errlen) {
    (void)ud;
    (void)err;
    (void)errlen;
    return 0;
}

expert_exec expert_exec_local_iface(expert_exec_local *x) {
    expert_exec e = {.ud = x, .submit = local_submit, .wait = local_wait};
    return e;
}
