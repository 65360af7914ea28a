/* test_expert_cache.c — the hot-expert cache (LRU and LFU-with-aging
 * behaviour, pinning, budgets, failed fills), trace replay against an
 * independent LRU model, Belady's optimum (hand-checked cases and as an upper
 * bound), and expert_io reads through io_uring and the pread fallback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "expert_cache.h"
#include "expert_io.h"

#define NL 2
#define NE 8
static const size_t LB[NL] = {100, 100};

/* Access one expert the way the pool does; returns 1 on a hit. */
static int touch(expert_cache *c, int l, int e) {
    const void *buf;
    const cache_state s = expert_cache_lookup(c, l, e, &buf);
    if (s == CACHE_MISS) {
        if (expert_cache_admit(c, l, e)) {
            expert_cache_filled(c, l, e, 1);
            expert_cache_unpin(c, l, e);
        }
        return 0;
    }
    expert_cache_unpin(c, l, e);
    return s == CACHE_READY;
}

static void test_lru(void **st) {
    (void)st;
    expert_cache *c = expert_cache_open(300, NL, NE, LB, CACHE_LRU, 0, 1);
    assert_non_null(c);
    assert_int_equal(touch(c, 0, 1), 0);
    assert_int_equal(touch(c, 0, 2), 0);
    assert_int_equal(touch(c, 1, 3), 0);
    assert_int_equal(touch(c, 0, 1), 1);       /* 0/1 now most recent */
    assert_int_equal(touch(c, 1, 4), 0);       /* evicts 0/2 */
    assert_false(expert_cache_contains(c, 0, 2));
    assert_true(expert_cache_contains(c, 0, 1));
    assert_true(expert_cache_contains(c, 1, 3));
    assert_true(expert_cache_contains(c, 1, 4));
    expert_cache_stats s;
    expert_cache_stats_get(c, &s);
    assert_int_equal(s.lookups, 5);
    assert_int_equal(s.hits, 1);
    assert_int_equal(s.evictions, 1);
    assert_int_equal(s.bytes_used, 300);
    assert_int_equal(s.resident, 3);
    expert_cache_close(c);
}

static void test_lfu_keeps_hot_set(void **st) {
    (void)st;
    /* Two hot experts used every step, then a scan of cold ones: LRU loses
     * the hot set, LFU keeps it. */
    for (int pol = 0; pol < 2; pol++) {
        expert_cache *c = expert_cache_open(200, NL, NE, LB, pol, 1000, 1);
        for (int i = 0; i < 5; i++) {
            touch(c, 0, 0);
            touch(c, 0, 1);
        }
        for (int e = 2; e < 8; e++) touch(c, 1, e);
        int hits = touch(c, 0, 0) + touch(c, 0, 1);
        if (pol == CACHE_LFU) assert_int_equal(hits, 2);
        else assert_int_equal(hits, 0);
        expert_cache_close(c);
    }
}

static void test_lfu_aging(void **st) {
    (void)st;
    /* With aging, an expert that was hot long ago is eventually displaced by
     * one that is hot now; without (huge period), it never is. */
    for (int aged = 0; aged < 2; aged++) {
        expert_cache *c = expert_cache_open(100, NL, NE, LB, CACHE_LFU, aged ? 8 : 1000000, 1);
        for (int i = 0; i < 20; i++) touch(c, 0, 0);
        for (int i = 0; i < 15; i++) touch(c, 0, 5);
        if (aged) assert_true(expert_cache_contains(c, 0, 5));
        else assert_true(expert_cache_contains(c, 0, 0));
        expert_cache_close(c);
    }
}

static void test_pins_and_failures(void **st) {
    (void)st;
    expert_cache *c = expert_cache_open(200, NL, NE, LB, CACHE_LRU, 0, 1);
    const void *buf;
    assert_int_equal(expert_cache_lookup(c, 0, 0, &buf), CACHE_MISS);
    void *b0 = expert_cache_admit(c, 0, 0);
    assert_non_null(b0);
    memset(b0, 0xab, 100);                           /* the buffer is really 100 bytes */
    /* A lookup while the fill is in flight reports FILLING and the buffer. */
    assert_int_equal(expert_cache_lookup(c, 0, 0, &buf), CACHE_FILLING);
    assert_ptr_equal(buf, b0);
    expert_cache_filled(c, 0, 0, 1);
    assert_int_equal(expert_cache_lookup(c, 1, 1, &buf), CACHE_MISS);
    assert_non_null(expert_cache_admit(c, 1, 1));
    /* Full and every entry pinned: a third expert is bypassed, not forced in. */
    assert_int_equal(expert_cache_lookup(c, 1, 2, &buf), CACHE_MISS);
    assert_null(expert_cache_admit(c, 1, 2));
    /* A failed fill drops the entry and frees its bytes. */
    expert_cache_filled(c, 1, 1, 0);
    assert_false(expert_cache_contains(c, 1, 1));
    expert_cache_stats s;
    expert_cache_stats_get(c, &s);
    assert_int_equal(s.bytes_used, 100);
    assert_int_equal(s.fill_failures, 1);
    assert_int_equal(s.bypasses, 1);
    /* 0/0 has two pins (admit + lookup): still pinned after one unpin. */
    expert_cache_unpin(c, 0, 0);
    assert_int_equal(expert_cache_lookup(c, 1, 3, &buf), CACHE_MISS);
    assert_non_null(expert_cache_admit(c, 1, 3));    /* free space, no eviction needed */
    assert_int_equal(expert_cache_lookup(c, 1, 4, &buf), CACHE_MISS);
    assert_null(expert_cache_admit(c, 1, 4));        /* 0/0 still pinned, 1/3 filling */
    expert_cache_unpin(c, 0, 0);
    assert_non_null(expert_cache_admit(c, 1, 4));    /* now 0/0 can go */
    assert_false(expert_cache_contains(c, 0, 0));
    expert_cache_close(c);
    /* Budget 0 and an expert larger than the budget: always bypass. */
    c = expert_cache_open(0, NL, NE, LB, CACHE_LFU, 0, 1);
    assert_int_equal(touch(c, 0, 0) + touch(c, 0, 0), 0);
    expert_cache_close(c);
    c = expert_cache_open(99, NL, NE, LB, CACHE_LRU, 0, 1);
    assert_int_equal(touch(c, 0, 0) + touch(c, 0, 0), 0);
    expert_cache_close(c);
}

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* Skewed random trace of single-key groups over NL*NE keys. */
static cache_trace make_trace(size_t n) {
    cache_trace t = {.keys = malloc(n * sizeof(uint32_t)), .n_keys = n,
                     .group_end = malloc(n * sizeof(size_t)), .n_groups = n};
    for (size_t i = 0; i < n; i++) {
        const uint32_t r = rnd() % 100;
        t.keys[i] = r < 60 ? rnd() % 3 : rnd() % (NL * NE);   /* 3 hot keys */
        t.group_end[i] = i + 1;
    }
    return t;
}

/* Independent LRU: an array ordered by recency. */
static uint64_t ref_lru(const cache_trace *t, size_t slots) {
    uint32_t order[NL * NE];
    size_t n = 0;
    uint64_t hits = 0;
    for (size_t i = 0; i < t->n_keys; i++) {
        size_t j = 0;
        while (j < n && order[j] != t->keys[i]) j++;
        if (j < n) hits++;
        else if (n < slots) j = n++;
        else j = n - 1;
        memmove(order + 1, order, j * sizeof(uint32_t));
        order[0] = t->keys[i];
    }
    return hits;
}

static void test_simulation_and_belady(void **st) {
    (void)st;
    cache_trace t = make_trace(4000);
    for (size_t slots = 1; slots <= 10; slots++) {
        const uint64_t lru = cache_simulate(&t, NL, NE, LB, slots * 100, CACHE_LRU, 0);
        const uint64_t lfu = cache_simulate(&t, NL, NE, LB, slots * 100, CACHE_LFU, 0);
        const uint64_t opt = cache_belady(&t, slots);
        assert_int_equal(lru, ref_lru(&t, slots));
        assert_true(opt >= lru);
        assert_true(opt >= lfu);
        if (slots >= 3) assert_true(lfu > lru);   /* the skew rewards frequency */
    }
    /* Enough slots for every key: only compulsory misses. */
    unsigned char seen[NL * NE] = {0};
    uint64_t distinct = 0;
    for (size_t i = 0; i < t.n_keys; i++) {
        distinct += !seen[t.keys[i]];
        seen[t.keys[i]] = 1;
    }
    assert_int_equal(cache_belady(&t, NL * NE), t.n_keys - distinct);
    free(t.keys);
    free(t.group_end);

    /* Hand-checked: a b c a d a b c with 2 slots. MIN keeps a throughout:
     * miss a, miss b, miss c (evict b, next use 6 > c's 7? no: b@6 < c@7, so
     * c is bypassed), hit a, miss d (bypass), hit a, hit b, miss c = 3 hits. */
    uint32_t k[] = {0, 1, 2, 0, 3, 0, 1, 2};
    size_t ge[8];
    for (int i = 0; i < 8; i++) ge[i] = (size_t)i + 1;
    cache_trace h = {.keys = k, .n_keys = 8, .group_end = ge, .n_groups = 8};
    assert_int_equal(cache_belady(&h, 2), 3);
    assert_int_equal(cache_belady(&h, 0), 0);
    /* LRU on it: only the a at index 3 and index 5 hit... a b c(evict a) a(miss) ... = 1 hit. */
    assert_int_equal(cache_simulate(&h, NL, NE, LB, 200, CACHE_LRU, 0), ref_lru(&h, 2));
}

/* ---- expert_io ------------------------------------------------------------- */

static void test_expert_io(void **st) {
    (void)st;
    char path[] = "/tmp/fp_test_expert_io_XXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    const size_t N = 1 << 20;
    unsigned char *data = malloc(N);
    for (size_t i = 0; i < N; i++) data[i] = (unsigned char)(i * 2654435761u >> 13);
    assert_int_equal(write(fd, data, N), (ssize_t)N);
    close(fd);
    for (int force = 0; force < 2; force++) {
        char err[256];
        expert_io *io = expert_io_open(path, 4, force, err, sizeof err);
        assert_non_null(io);
        if (force) assert_string_equal(expert_io_backend(io), "pread");
        unsigned char *dst[6];
        for (int j = 0; j < 6; j++) dst[j] = calloc(3 * 4096, 1);
        int queued = 0, done = 0;
        unsigned char got[6] = {0};
        while (done < 6) {
            while (queued < 6 && expert_io_space(io) > 0) {
                const int j = queued;
                expert_io_seg s[3] = {{dst[j], 4096, (uint64_t)j * 9000},
                                      {dst[j] + 4096, 100, 500000 + (uint64_t)j},
                                      {dst[j] + 8192, 3000, N - 3000}};
                assert_int_equal(expert_io_read(io, s, 3, 100 + (uint64_t)j), 0);
                queued++;
            }
            if (queued < 6) assert_int_equal(expert_io_space(io), 0);
            expert_io_done d[6];
            const int n = expert_io_reap(io, d, 6, 1, err, sizeof err);
            assert_true(n >= 1);
            for (int i = 0; i < n; i++) {
                assert_int_equal(d[i].status, 0);
                assert_true(d[i].tag >= 100 && d[i].tag < 106);
                got[d[i].tag - 100]++;
            }
            done += n;
        }
        for (int j = 0; j < 6; j++) {
            assert_int_equal(got[j], 1);
            assert_memory_equal(dst[j], data + (size_t)j * 9000, 4096);
            assert_memory_equal(dst[j] + 4096, data + 500000 + j, 100);
            assert_memory_equal(dst[j] + 8192, data + N - 3000, 3000);
        }
        /* Past the end of the file: an error status, not a hang or a crash. */
        expert_io_seg bad = {dst[0], 4096, N - 10};
        assert_int_equal(expert_io_read(io, &bad, 1, 7), 0);
        expert_io_done d;
        assert_int_equal(expert_io_reap(io, &d, 1, 1, err, sizeof err), 1);
        assert_int_equal(d.tag, 7);
        assert_true(d.status < 0);
        assert_int_equal(expert_io_inflight(io), 0);
        for (int j = 0; j < 6; j++) free(dst[j]);
        expert_io_close(io);
    }
    char err[256];
    assert_null(expert_io_open("/nonexistent/model.gguf", 4, 0, err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
    unlink(path);
    free(data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lru),
        cmocka_unit_test(test_lfu_keeps_hot_set),
        cmocka_unit_test(test_lfu_aging),
        cmocka_unit_test(test_pins_and_failures),
        cmocka_unit_test(test_simulation_and_belady),
        cmocka_unit_test(test_expert_io),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
