/* test_pool_local.c — the pool executor without nodes (hot-expert cache +
 * disk reads through io_uring or pread) gives every item the same bits as
 * the in-process executor over the mapping, for cache budgets from none to
 * everything, one or many stream slots, both policies, repeated layers (so
 * cache hits, background fills and evictions all happen), and the errors it
 * must return. Uses the tiny reference model (FP_VECTORS). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "expert_exec_local.h"
#include "pool.h"

static const char *vectors_dir(void) {
    const char *v = getenv("FP_VECTORS");
    return v ? v : "../shared/vectors";
}

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

typedef struct fixture {
    model *m;
    threadpool *tp;
    const quant_kernels *k;
    expert_exec_local *ref;
} fixture;

static int setup(void **st) {
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/tiny-s1.gguf", vectors_dir());
    fixture *f = calloc(1, sizeof(*f));
    f->m = model_open(path, err, sizeof err);
    if (!f->m) {
        fprintf(stderr, "test_pool_local: %s\n", err);
        return -1;
    }
    f->tp = threadpool_open(2);
    f->k = quant_kernels_best();
    f->ref = expert_exec_local_open(f->m, f->tp, f->k);
    *st = f;
    return 0;
}

static int teardown(void **st) {
    fixture *f = *st;
    expert_exec_local_close(f->ref);
    threadpool_close(f->tp);
    model_close(f->m);
    free(f);
    return 0;
}

/* Several layer calls with random tokens/experts through the pool; every
 * output must equal the reference bit for bit. */
static void run_case(fixture *f, size_t cache_bytes, int policy, int slots, int force_pread, int n_tokens) {
    pool_opts o;
    pool_opts_default(&o);
    o.cache_bytes = cache_bytes;
    o.cache_policy = policy;
    o.stream_slots = slots;
    o.force_pread = force_pread;
    char err[512];
    pool *p = pool_open(f->m, f->tp, f->k, &o, err, sizeof err);
    if (!p) fail_msg("pool_open: %s", err);
    expert_exec x = pool_exec(p);
    const int E = f->m->hp.n_embd, U = f->m->hp.n_expert_used, NE = f->m->hp.n_expert;
    const int n_items = n_tokens * U;
    float *xf = malloc((size_t)E * sizeof(float));
    block_q8_K *xq = malloc((size_t)n_tokens * (E / QK_K) * sizeof(block_q8_K));
    expert_work *items = malloc((size_t)n_items * sizeof(*items));
    float *out = malloc((size_t)n_items * E * sizeof(float)), *want = malloc((size_t)n_items * E * sizeof(float));
    for (int round = 0; round < 12; round++) {
        const int layer = (int)(rnd() % (uint64_t)f->m->hp.n_layer);
        for (int t = 0; t < n_tokens; t++) {
            for (int d = 0; d < E; d++) xf[d] = (float)((int64_t)(rnd() % 20001) - 10000) / 4000.0f;
            quantize_row_q8_K(xf, xq + (size_t)t * (E / QK_K), E);
            /* Skewed choice so some experts repeat across rounds (cache hits). */
            for (int k = 0; k < U; k++) {
                int e;
                int dup;
                do {
                    e = rnd() % 3 ? (int)(rnd() % 5) : (int)(rnd() % (uint64_t)NE);
                    dup = 0;
                    for (int j = 0; j < k; j++) dup |= items[t * U + j].expert == e;
                } while (dup);
                items[t * U + k] = (expert_work){.token = t, .expert = e, .weight = 0.05f + (float)(rnd() % 100) / 60.0f};
            }
        }
        memset(out, 0xff, (size_t)n_items * E * sizeof(float));
        assert_int_equal(x.submit(x.ud, layer, n_tokens, xq, n_items, items, out, err, sizeof err), 0);
        assert_int_equal(x.wait(x.ud, err, sizeof err), 0);
        assert_int_equal(expert_exec_local_run(f->ref, layer, xq, n_items, items, want), 0);
        assert_memory_equal(out, want, (size_t)n_items * E * sizeof(float));
    }
    pool_stats s;
    pool_get_stats(p, &s);
    assert_int_equal(s.items, 12 * (uint64_t)n_items);
    assert_int_equal(s.items_cached + s.items_disk, s.items);
    assert_int_equal(s.items_remote, 0);
    if (cache_bytes == 0) assert_int_equal(s.items_cached, 0);
    if (cache_bytes >= f->m->expert_bytes) assert_true(s.items_cached > 0);
    assert_true(s.cache.bytes_used <= cache_bytes);
    if (force_pread) assert_string_equal(s.io_backend, "pread");
    pool_close(p);
    free(xf);
    free(xq);
    free(items);
    free(out);
    free(want);
}

static void test_no_cache(void **st) { run_case(*st, 0, CACHE_LFU, 0, 0, 1); }
static void test_one_slot_prefill(void **st) { run_case(*st, 0, CACHE_LFU, 1, 0, 9); }
static void test_small_cache_lfu(void **st) { run_case(*st, 3 * 56 * 1024, CACHE_LFU, 2, 0, 3); }
static void test_small_cache_lru_pread(void **st) { run_case(*st, 3 * 56 * 1024, CACHE_LRU, 0, 1, 4); }
static void test_everything_cached(void **st) {
    fixture *f = *st;
    run_case(f, f->m->expert_bytes + 4096, CACHE_LRU, 0, 0, 2);
}

static void test_errors(void **st) {
    fixture *f = *st;
    pool_opts o;
    pool_opts_default(&o);
    char err[512];
    pool *p = pool_open(f->m, f->tp, f->k, &o, err, sizeof err);
    assert_non_null(p);
    expert_exec x = pool_exec(p);
    const int E = f->m->hp.n_embd;
    block_q8_K xq[1];
    float *xf = calloc((size_t)E, sizeof(float)), *out = malloc(2 * (size_t)E * sizeof(float));
    xf[0] = 1;
    quantize_row_q8_K(xf, xq, E);
    expert_work bad[2] = {{0, 1, 1.0f}, {0, f->m->hp.n_expert, 1.0f}};
    assert_int_equal(x.submit(x.ud, 0, 1, xq, 2, bad, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "out of range"));
    /* The failed layer was reset: the next one works. */
    assert_int_equal(x.submit(x.ud, 0, 1, xq, 1, bad, out, err, sizeof err), 0);
    assert_int_equal(x.submit(x.ud, 0, 1, xq, 1, bad, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "without wait"));
    assert_int_equal(x.wait(x.ud, err, sizeof err), 0);
    assert_int_equal(x.wait(x.ud, err, sizeof err), -1);
    assert_int_equal(x.submit(x.ud, f->m->hp.n_layer, 1, xq, 1, bad, out, err, sizeof err), -1);
    pool_close(p);
    /* Nodes without a placement. */
    cluster *cl = cluster_new();
    cluster_add(cl, NULL, "tcp://127.0.0.1:1", 0, NULL, err, sizeof err);
    o.cl = cl;
    assert_null(pool_open(f->m, f->tp, f->k, &o, err, sizeof err));
    assert_non_null(strstr(err, "placement"));
    /* A placement over more RAM than a node has. */
    cl->nodes[0].ram_bytes = 1 << 20;
    o.pl = placement_round_robin(f->m->hp.n_layer, f->m->hp.n_expert, 1, 1, err, sizeof err);
    assert_null(pool_open(f->m, f->tp, f->k, &o, err, sizeof err));
    assert_non_null(strstr(err, "RAM budget"));
    placement_free((placement *)o.pl);
    cluster_free(cl);
    free(xf);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_cache),
        cmocka_unit_test(test_one_slot_prefill),
        cmocka_unit_test(test_small_cache_lfu),
        cmocka_unit_test(test_small_cache_lru_pread),
        cmocka_unit_test(test_everything_cached),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
