/* membw.h — measured memory read bandwidth of this machine: the roofline
 * every decode-speed figure is compared against. */
#ifndef FP_MEMBW_H
#define FP_MEMBW_H

#include <stddef.h>
#include "threadpool.h"

/* Best-of-`reps` streaming read of a `bytes` buffer split across the pool's
 * threads (tp may be NULL for one thread). Returns bytes/second, 0 on OOM. */
double membw_measure(threadpool *tp, size_t bytes, int reps);

#endif
