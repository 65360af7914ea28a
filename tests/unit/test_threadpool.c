/* test_threadpool.c — the fork/join pool runs every index exactly once per
 * run (hot back-to-back runs, runs after the workers went to sleep, runs
 * where workers finish long after the caller), and the matvec helpers give
 * the same bits for 1, 2 and 3 threads and for any split into row ranges.
 *
 * Random inputs are fresh each run; the seed is printed and FP_SEED=<n>
 * replays a run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>
#include <stdatomic.h>
#include <cmocka.h>

#include "matvec.h"
#include "quant.h"
#include "threadpool.h"

static uint64_t rng_state;
static uint64_t rnd(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static float rnd_gauss(void) {
    float u = (float)((double)(rnd() >> 11) * 0x1p-53), v = (float)((double)(rnd() >> 11) * 0x1p-53);
    if (u < 1e-12f) u = 1e-12f;
    return sqrtf(-2.0f * logf(u)) * cosf(6.28318530718f * v);
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* ---- pool ------------------------------------------------------------------ */

typedef struct {
    atomic_int count[8];
    atomic_int bad_nth;
    int expect_nth;
    long slow_us; /* workers (ith > 0) sleep this long: the caller must wait */
} count_ctx;

static void count_fn(void *vctx, int ith, int nth) {
    count_ctx *c = vctx;
    if (nth != c->expect_nth || ith < 0 || ith >= nth) atomic_fetch_add(&c->bad_nth, 1);
    if (c->slow_us && ith > 0) sleep_us(c->slow_us);
    atomic_fetch_add(&c->count[ith & 7], 1);
}

static void check_runs(threadpool *tp, int runs, long slow_us, long gap_us) {
    count_ctx c;
    memset(&c, 0, sizeof c);
    c.expect_nth = threadpool_size(tp);
    c.slow_us = slow_us;
    for (int r = 0; r < runs; r++) {
        threadpool_run(tp, count_fn, &c);
        /* Every index has run by the time run() returns. */
        for (int i = 0; i < c.expect_nth; i++) assert_int_equal(atomic_load(&c.count[i]), r + 1);
        if (gap_us) sleep_us(gap_us);
    }
    assert_int_equal(atomic_load(&c.bad_nth), 0);
    for (int i = c.expect_nth; i < 8; i++) assert_int_equal(atomic_load(&c.count[i]), 0);
}

static void test_pool_indices(void **st) {
    (void)st;
    assert_null(threadpool_open(0));
    assert_null(threadpool_open(-3));
    assert_int_equal(threadpool_size(NULL), 1);
    for (int n = 1; n <= 4; n++) {
        threadpool *tp = threadpool_open(n);
        assert_non_null(tp);
        assert_int_equal(threadpool_size(tp), n);
        check_runs(tp, 2000, 0, 0);    /* hot: workers spinning */
        check_runs(tp, 5, 0, 3000);    /* workers asleep on the condvar between runs (> 1 ms spin) */
        check_runs(tp, 5, 3000, 0);    /* caller sleeps waiting for slow workers (> 2 ms spin) */
        threadpool_close(tp);
    }
    threadpool_close(NULL);
}

/* Opening and closing right away, and closing with sleeping workers. */
static void test_pool_lifecycle(void **st) {
    (void)st;
    for (int i = 0; i < 20; i++) {
        threadpool *tp = threadpool_open(1 + i % 4);
        assert_non_null(tp);
        if (i % 2) check_runs(tp, 3, 0, 0);
        if (i % 5 == 0) sleep_us(1000);
        threadpool_close(tp);
    }
}

/* ---- matvec ----------------------------------------------------------------- */

typedef struct {
    int type;
    int64_t rows, cols;
    void *w;
    void *xq;
} mv_case;

/* Realistic weights via the writers (F16/F32 directly). */
static void make_case(mv_case *c, int type, int64_t rows, int64_t cols) {
    c->type = type;
    c->rows = rows;
    c->cols = cols;
    const size_t rb = qtype_row_bytes(type, cols);
    assert_true(rb > 0);
    c->w = malloc(rb * (size_t)rows);
    float *row = malloc((size_t)cols * sizeof *row);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < cols; i++) row[i] = rnd_gauss() * 0.05f;
        uint8_t *dst = (uint8_t *)c->w + (size_t)r * rb;
        switch (type) {
        case QT_F32: memcpy(dst, row, rb); break;
        case QT_F16:
            for (int64_t i = 0; i < cols; i++) ((uint16_t *)dst)[i] = f32_to_fp16(row[i]);
            break;
        case QT_Q8_0: quantize_row_q8_0(row, (block_q8_0 *)dst, cols); break;
        case QT_Q2_K: quantize_row_q2_K(row, (block_q2_K *)dst, cols); break;
        case QT_Q4_K: quantize_row_q4_K(row, (block_q4_K *)dst, cols); break;
        case QT_IQ2_XXS: /* the writer is slow: random bytes are valid blocks */
            for (size_t b = 0; b < rb; b++) dst[b] = (uint8_t)rnd();
            for (int64_t b = 0; b < cols / QK_K; b++) ((block_iq2_xxs *)dst)[b].d = f32_to_fp16(1e-3f);
            break;
        default: fail();
        }
    }
    for (int64_t i = 0; i < cols; i++) row[i] = rnd_gauss();
    const size_t ab = matvec_act_bytes(type, cols);
    assert_true(ab > 0);
    c->xq = malloc(ab);
    assert_int_equal(matvec_quantize_act(type, row, cols, c->xq), 0);
    free(row);
}

static void free_case(mv_case *c) {
    free(c->w);
    free(c->xq);
}

static void test_matvec_threads_identical(void **st) {
    (void)st;
    static const int types[] = {QT_Q8_0, QT_F16, QT_F32, QT_Q2_K, QT_Q4_K, QT_IQ2_XXS};
    threadpool *tp2 = threadpool_open(2), *tp3 = threadpool_open(3);
    assert_non_null(tp2);
    assert_non_null(tp3);
    for (int isa = 0; isa < QISA_COUNT; isa++) {
        const quant_kernels *k = quant_kernels_for((enum quant_isa)isa);
        if (!k) continue;
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            /* Enough bytes to be split across threads, odd row counts. */
            const int64_t cols = types[t] == QT_Q8_0 || types[t] == QT_F16 || types[t] == QT_F32 ? 512 + 32 * (int64_t)(rnd() % 4) : 1024;
            const int64_t rows = 301 + (int64_t)(rnd() % 200);
            mv_case c;
            make_case(&c, types[t], rows, cols);
            float *y1 = malloc((size_t)rows * sizeof *y1), *y2 = malloc((size_t)rows * sizeof *y2);
            float *y3 = malloc((size_t)rows * sizeof *y3), *yr = malloc((size_t)rows * sizeof *yr);
            memset(y2, 0xff, (size_t)rows * sizeof *y2);
            assert_int_equal(matvec(NULL, k, c.type, c.w, rows, cols, c.xq, y1), 0);
            assert_int_equal(matvec(tp2, k, c.type, c.w, rows, cols, c.xq, y2), 0);
            assert_int_equal(matvec(tp3, k, c.type, c.w, rows, cols, c.xq, y3), 0);
            assert_memory_equal(y1, y2, (size_t)rows * sizeof *y1);
            assert_memory_equal(y1, y3, (size_t)rows * sizeof *y1);
            /* Any partition into row ranges gives the same bits. */
            for (int64_t r0 = 0; r0 < rows;) {
                int64_t r1 = r0 + 1 + (int64_t)(rnd() % 97);
                if (r1 > rows) r1 = rows;
                assert_int_equal(matvec_rows(k, c.type, c.w, rows, cols, c.xq, r0, r1, yr), 0);
                r0 = r1;
            }
            assert_memory_equal(y1, yr, (size_t)rows * sizeof *y1);
            /* And it is the kernel's dot, row by row. */
            const size_t rb = qtype_row_bytes(c.type, cols);
            for (int64_t r = 0; r < rows; r += 37) {
                const void *row = (const uint8_t *)c.w + (size_t)r * rb;
                float want;
                switch (c.type) {
                case QT_Q8_0: want = k->dot_q8_0(row, c.xq, cols); break;
                case QT_F16: want = k->dot_f16(row, c.xq, cols); break;
                case QT_Q2_K: want = k->dot_q2_K(row, c.xq, cols); break;
                case QT_Q4_K: want = k->dot_q4_K(row, c.xq, cols); break;
                case QT_IQ2_XXS: want = k->dot_iq2_xxs(row, c.xq, cols); break;
                default: {
                    double acc = 0;
                    for (int64_t i = 0; i < cols; i++) acc += (double)((const float *)row)[i] * ((const float *)c.xq)[i];
                    want = (float)acc;
                }
                }
                assert_memory_equal(&want, &y1[r], sizeof want);
            }
            free(y1);
            free(y2);
            free(y3);
            free(yr);
            free_case(&c);
        }
    }
    threadpool_close(tp2);
    threadpool_close(tp3);
}

static void test_matvec_rejects(void **st) {
    (void)st;
    const quant_kernels *k = quant_kernels_for(QISA_PORTABLE);
    float y[4], x[64] = {0};
    uint8_t w[64 * 4] = {0};
    _Alignas(16) uint8_t xq[4096];
    assert_int_equal(matvec_act_kind(QT_BF16), MV_ACT_NONE);
    assert_int_equal(matvec_act_kind(QT_Q2_K), MV_ACT_Q8_K);
    assert_int_equal(matvec_act_kind(QT_Q8_0), MV_ACT_Q8_0A);
    assert_int_equal(matvec_act_bytes(QT_Q8_0, 64), 2 * sizeof(block_q8_0a));
    assert_int_equal(matvec_act_bytes(QT_IQ2_XXS, 512), 2 * sizeof(block_q8_K));
    assert_int_equal(matvec_act_bytes(QT_F16, 5), 5 * sizeof(float));
    assert_int_equal(matvec_act_bytes(QT_Q8_0, 33), 0);
    assert_int_equal(matvec_act_bytes(QT_BF16, 32), 0);
    assert_int_equal(matvec_quantize_act(QT_Q2_K, x, 64, xq), -1); /* not a multiple of 256 */
    assert_int_equal(matvec_rows(k, QT_BF16, w, 4, 32, xq, 0, 4, y), -1);
    assert_int_equal(matvec_rows(k, QT_Q8_0, w, 4, 33, xq, 0, 4, y), -1);
    assert_int_equal(matvec_rows(k, QT_Q8_0, w, 4, 32, xq, 0, 5, y), -1);
    assert_int_equal(matvec_rows(k, QT_Q8_0, w, 4, 32, xq, 3, 2, y), -1);
    assert_int_equal(matvec_rows(NULL, QT_Q8_0, w, 4, 32, xq, 0, 4, y), -1);
    assert_int_equal(matvec(NULL, k, QT_I32, w, 4, 32, xq, y), -1);
    /* An empty range is fine and writes nothing. */
    y[0] = 42.0f;
    assert_int_equal(matvec_rows(k, QT_Q8_0, w, 4, 32, xq, 2, 2, y), 0);
    assert_true(y[0] == 42.0f);
}

int main(void) {
    rng_state = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    if (getenv("FP_SEED")) rng_state = strtoull(getenv("FP_SEED"), NULL, 10);
    fprintf(stderr, "test_threadpool: seed %llu (FP_SEED=<n> to replay)\n", (unsigned long long)rng_state);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_indices),
        cmocka_unit_test(test_pool_lifecycle),
        cmocka_unit_test(test_matvec_threads_identical),
        cmocka_unit_test(test_matvec_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
