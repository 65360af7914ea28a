/* threadpool.c — fork/join pool (see threadpool.h).
 *
 * A run publishes (fn, ctx) and bumps a generation counter; workers notice
 * it, run their index and count down `pending`; the caller runs index 0 and
 * waits for pending == 0. Matvecs come back to back during decode, so both
 * sides spin briefly before sleeping on a condition variable: waking a
 * sleeping thread costs tens of microseconds, about a whole small matvec. */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* How long an idle side waits actively before blocking on the condition
 * variable. Waking a sleeping thread costs a few hundred microseconds on a
 * virtual machine (measured ~430 us here), about as much as a whole small
 * matvec, so workers stay awake across the gaps of a decode step (dense
 * matvecs, a network round trip to the expert nodes). After a short pure
 * spin they yield on every check, so a spinning worker costs little when
 * other threads or processes want the core. The caller is blocked in run()
 * anyway and waits longer before sleeping. */
#define PURE_SPIN_NS 20000L
#define WORKER_SPIN_NS 1000000L
#define CALLER_SPIN_NS 2000000L

struct threadpool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv_start, cv_done;
    atomic_uint gen;      /* bumped once per run (and at close) */
    atomic_int pending;   /* workers (ith >= 1) still running this run */
    atomic_int stop;
    threadpool_fn fn;     /* published before gen is bumped (release) */
    void *ctx;
};

typedef struct {
    threadpool *tp;
    int ith;
} worker_arg;

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* One step of a bounded wait started at t0; returns 0 once `limit` ns
 * have passed. Pure pause-spin at first, then yield the core each time. */
static int wait_step(unsigned it, long t0, long limit) {
    if (it < 64) {
        cpu_relax();
        return 1;
    }
    const long dt = now_ns() - t0;
    if (dt > limit) return 0;
    if (dt > PURE_SPIN_NS) sched_yield();
    else
        for (int i = 0; i < 4; i++) cpu_relax();
    return 1;
}

/* Bounded waits: true when the awaited change happened in time. */
static int spin_gen_changed(atomic_uint *v, unsigned seen) {
    const long t0 = now_ns();
    for (unsigned it = 0;; it++) {
        if (atomic_load_explicit(v, memory_order_acquire) != seen) return 1;
        if (!wait_step(it, t0, WORKER_SPIN_NS)) return 0;
    }
}

static int spin_zero(atomic_int *v) {
    const long t0 = now_ns();
    for (unsigned it = 0;; it++) {
        if (atomic_load_explicit(v, memory_order_acquire) == 0) return 1;
        if (!wait_step(it, t0, CALLER_SPIN_NS)) return 0;
    }
}

static void *worker_main(void *varg) {
    worker_arg *a = varg;
    threadpool *tp = a->tp;
    const int ith = a->ith;
    free(a);
    /* Not a load of gen: a run may start before this thread gets going,
     * and that run must not be mistaken for the state to wait past. */
    unsigned seen = 0;
    for (;;) {
        if (!spin_gen_changed(&tp->gen, seen)) {
            pthread_mutex_lock(&tp->mu);
            while (atomic_load_explicit(&tp->gen, memory_order_acquire) == seen) pthread_cond_wait(&tp->cv_start, &tp->mu);
            pthread_mutex_unlock(&tp->mu);
        }
        seen = atomic_load_explicit(&tp->gen, memory_order_acquire);
        if (atomic_load_explicit(&tp->stop, memory_order_acquire)) return NULL;
        tp->fn(tp->ctx, ith, tp->n);
        if (atomic_fetch_sub_explicit(&tp->pending, 1, memory_order_acq_rel) == 1) {
            /* Last one out: the caller may be asleep. */
            pthread_mutex_lock(&tp->mu);
            pthread_cond_signal(&tp->cv_done);
            pthread_mutex_unlock(&tp->mu);
        }
    }
}

threadpool *threadpool_open(int n_threads) {
    if (n_threads < 1) return NULL;
    threadpool *tp = calloc(1, sizeof *tp);
    if (!tp) return NULL;
    tp->n = n_threads;
    atomic_init(&tp->gen, 0);
    atomic_init(&tp->pending, 0);
    atomic_init(&tp->stop, 0);
    if (pthread_mutex_init(&tp->mu, NULL) != 0) {
        free(tp);
        return NULL;
    }
    pthread_cond_init(&tp->cv_start, NULL);
    pthread_cond_init(&tp->cv_done, NULL);
    tp->threads = calloc((size_t)n_threads, sizeof *tp->threads);
    if (!tp->threads) goto fail;
    for (int i = 1; i < n_threads; i++) {
        worker_arg *a = malloc(sizeof *a);
        if (a) {
            a->tp = tp;
            a->ith = i;
        }
        if (!a || pthread_create(&tp->threads[i], NULL, worker_main, a) != 0) {
            free(a);
            tp->n = i; /* close joins only workers 1..i-1, which exist */
            threadpool_close(tp);
            return NULL;
        }
    }
    return tp;
fail:
    pthread_cond_destroy(&tp->cv_start);
    pthread_cond_destroy(&tp->cv_done);
    pthread_mutex_destroy(&tp->mu);
    free(tp);
    return NULL;
}

void threadpool_close(threadpool *tp) {
    if (!tp) return;
    pthread_mutex_lock(&tp->mu);
    atomic_store_explicit(&tp->stop, 1, memory_order_release);
    atomic_fetch_add_explicit(&tp->gen, 1, memory_order_acq_rel);
    pthread_cond_broadcast(&tp->cv_start);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 1; i < tp->n; i++) pthread_join(tp->threads[i], NULL);
    pthread_cond_destroy(&tp->cv_start);
    pthread_cond_destroy(&tp->cv_done);
    pthread_mutex_destroy(&tp->mu);
    free(tp->threads);
    free(tp);
}

int threadpool_size(const threadpool *tp) { return tp ? tp->n : 1; }

void threadpool_run(threadpool *tp, threadpool_fn fn, void *ctx) {
    if (!tp || tp->n == 1) { /* no pool: the caller is the only worker */
        fn(ctx, 0, 1);
        return;
    }
    tp->fn = fn;
    tp->ctx = ctx;
    atomic_store_explicit(&tp->pending, tp->n - 1, memory_order_relaxed);
    /* The bump happens under the mutex so a worker that just checked gen
     * and is about to wait cannot miss the broadcast. */
    pthread_mutex_lock(&tp->mu);
    atomic_fetch_add_explicit(&tp->gen, 1, memory_order_acq_rel);
    pthread_cond_broadcast(&tp->cv_start);
    pthread_mutex_unlock(&tp->mu);
    fn(ctx, 0, tp->n);
    if (!spin_zero(&tp->pending)) {
        pthread_mutex_lock(&tp->mu);
        while (atomic_load_explicit(&tp->pending, memory_order_acquire) != 0) pthread_cond_wait(&tp->cv_done, &tp->mu);
        pthread_mutex_unlock(&tp->mu);
    }
}
