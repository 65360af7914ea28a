/* threadpool.h — a tiny fork/join pool: run fn(ctx, i, n) for i in [0, n)
 * on n workers (the caller is worker 0) and wait for all. Owns only the
 * worker threads; callers split their own work by index. */
#ifndef FP_THREADPOOL_H
#define FP_THREADPOOL_H

typedef struct threadpool threadpool;
typedef void (*threadpool_fn)(void *ctx, int ith, int nth);

threadpool *threadpool_open(int n_threads);   /* n_threads >= 1; NULL on failure */
void threadpool_close(threadpool *tp);
int threadpool_size(const threadpool *tp);
/* Runs fn on every worker (ith = 0..nth-1) and returns when all are done.
 * Not reentrant: one run at a time per pool. */
void threadpool_run(threadpool *tp, threadpool_fn fn, void *ctx);

#endif
