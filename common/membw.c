/* membw.c — streaming-read bandwidth measurement (see membw.h). The buffer
 * is written first so every page is resident, then summed with wide
 * independent accumulators so the loop is bound by memory, not by adds. */
#include "membw.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

typedef struct {
    const uint8_t *buf;
    size_t bytes;
    uint64_t sink[64];
} bw_job;

#if defined(__x86_64__)
__attribute__((target("avx2")))
static uint64_t sum_avx2(const uint8_t *p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    return (uint64_t)_mm256_extract_epi64(a0, 0) + (uint64_t)_mm256_extract_epi64(a0, 3);
}
#endif

static uint64_t sum_portable(const uint8_t *p, size_t n) {
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    const uint64_t *q = (const uint64_t *)p;
    for (size_t i = 0; i + 4 <= n / 8; i += 4) {
        a0 += q[i];
        a1 += q[i + 1];
        a2 += q[i + 2];
        a3 += q[i + 3];
    }
    return a0 + a1 + a2 + a3;
}

static void bw_worker(void *vctx, int ith, int nth) {
    bw_job *j = vctx;
    size_t chunk = (j->bytes / (size_t)nth) & ~(size_t)127;
    const uint8_t *p = j->buf + chunk * (size_t)ith;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) {
        j->sink[ith & 63] += sum_avx2(p, chunk);
        return;
    }
#endif
    j->sink[ith & 63] += sum_portable(p, chunk);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double membw_measure(threadpool *tp, size_t bytes, int reps) {
    bytes &= ~(size_t)4095;
    uint8_t *buf = aligned_alloc(4096, bytes);
    if (!buf) return 0.0;
    memset(buf, 1, bytes);
    bw_job j = {.buf = buf, .bytes = bytes};
    double best = 0.0;
    for (int r = 0; r < reps; r++) {
        const double t0 = now_s();
        if (tp) threadpool_run(tp, bw_worker, &j);
        else bw_worker(&j, 0, 1);
        const double bw = (double)bytes / (now_s() - t0);
        if (bw > best) best = bw;
    }
    free(buf);
    return best;
}
