/* test_experts_split.c — experts_compute() gives the same bits for an item
 * whether it is computed alone, in one call with all items, or in any other
 * grouping, and with 1 or 2 threads. This is what lets the pool place an
 * expert anywhere without changing the model's output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "experts.h"
#include "model.h"

static const char *vectors_dir(void) {
    const char *v = getenv("FP_VECTORS");
    return v ? v : "../shared/vectors";
}

static uint64_t rng_state;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_grouping_invariance(void **st) {
    (void)st;
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/tiny-s1.gguf", vectors_dir());
    model *m = model_open(path, err, sizeof err);
    assert_non_null(m);
    const int E = m->hp.n_embd, NT = 5, NI = 18;
    /* Random activations, quantised the way the engine does. */
    float *x = malloc((size_t)NT * E * sizeof(float));
    block_q8_K *xq = malloc((size_t)NT * (E / QK_K) * sizeof(block_q8_K));
    for (int i = 0; i < NT * E; i++) x[i] = (float)((int64_t)(rnd() % 20001) - 10000) / 2500.0f;
    for (int t = 0; t < NT; t++) quantize_row_q8_K(x + (size_t)t * E, xq + (size_t)t * (E / QK_K), E);
    const int layer = 3;
    expert_work items[NI];
    expert_slabs slabs[NI];
    for (int i = 0; i < NI; i++) {
        items[i].token = (int)(rnd() % NT);
        items[i].expert = (int)(rnd() % (uint64_t)m->hp.n_expert);
        items[i].weight = 0.1f + (float)(rnd() % 1000) / 700.0f;
        slabs[i] = model_expert_slabs(m, layer, items[i].expert);
    }
    const expert_shape s = model_expert_shape(m, layer);
    const quant_kernels *k = quant_kernels_best();
    float *all = malloc((size_t)NI * E * sizeof(float)), *part = malloc((size_t)NI * E * sizeof(float));
    threadpool *tp = threadpool_open(2);
    assert_int_equal(experts_compute(NULL, k, &s, xq, NI, items, slabs, all), 0);
    for (int trial = 0; trial < 6; trial++) {
        /* Split the items into random contiguous groups, each its own call. */
        memset(part, 0xff, (size_t)NI * E * sizeof(float));
        for (int i = 0; i < NI;) {
            const int g = 1 + (int)(rnd() % 5), n = i + g > NI ? NI - i : g;
            assert_int_equal(experts_compute(trial & 1 ? tp : NULL, k, &s, xq, n, items + i, slabs + i,
                                             part + (size_t)i * E), 0);
            i += n;
        }
        assert_memory_equal(all, part, (size_t)NI * E * sizeof(float));
    }
    /* Every ISA this CPU has gives the same bits as the portable kernels. */
    const quant_kernels *portable = quant_kernels_for(QISA_PORTABLE);
    assert_non_null(portable);
    assert_int_equal(experts_compute(tp, portable, &s, xq, NI, items, slabs, part), 0);
    assert_memory_equal(all, part, (size_t)NI * E * sizeof(float));
    /* And the outputs are not trivially zero. */
    double ss = 0;
    for (int i = 0; i < NI * E; i++) ss += (double)all[i] * all[i];
    assert_true(ss > 0);
    threadpool_close(tp);
    free(all);
    free(part);
    free(x);
    free(xq);
    model_close(m);
}

int main(void) {
    rng_state = (uint64_t)time(NULL) * 2654435761u + 1;
    if (getenv("FP_SEED")) rng_state = strtoull(getenv("FP_SEED"), NULL, 10);
    fprintf(stderr, "test_experts_split: seed %llu\n", (unsigned long long)rng_state);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_grouping_invariance)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
