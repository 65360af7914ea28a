/* clock.h — monotonic time for timeouts, progress and benchmarks. */
#ifndef FP_CLOCK_H
#define FP_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t fp_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline int64_t fp_now_ms(void) { return (int64_t)(fp_now_ns() / 1000000u); }

static inline double fp_now_s(void) { return (double)fp_now_ns() * 1e-9; }

#endif
