/* gen_queue.c — bounded job FIFO + the one worker thread that runs the
 * backend (see gen_queue.h). Token callbacks decode bytes, push them
 * through gen_text (reasoning/answer/DSML/stops), and the API's stream
 * formatter writes events into the job's output channel. */
#include "clock.h"
#include "gen_queue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct gen_queue {
    srv_ctx *ctx;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job **q;
    size_t cap, head, n;
    atomic_bool stop;
    bool busy, started;
    gen_queue_log_fn log;
    void *log_ud;
};

typedef struct run_ctx {
    gen_queue *e;
    job *j;
} run_ctx;

static fp_tok_action cb_token(void *ud, int32_t id, float logprob) {
    (void)logprob;
    run_ctx *rc = ud;
    size_t n = 0;
    const char *bytes = tokenizer_token_bytes(rc->e->ctx->tok, id, &n);
    if (!bytes) return FP_TOK_CONTINUE;
    if (rc->j->gen.in_thinking) rc->j->reasoning_tokens++;
    return gen_text_feed(&rc->j->gen, bytes, n);
}

static void cb_prefill(void *ud, size_t done, size_t total) {
    run_ctx *rc = ud;
    rc->j->prefill_done = done;
    rc->j->prefill_total = total;
    if (rc->j->req.stream && rc->j->ops->on_prefill) rc->j->ops->on_prefill(rc->j);
}

static int cb_cancelled(void *ud) {
    run_ctx *rc = ud;
    return atomic_load(&rc->j->cancelled) || atomic_load(&rc->e->stop);
}

static void run_job(gen_queue *e, job *j) {
    double t0 = fp_now_s();
    run_ctx rc = {e, j};
    fp_gen_callbacks cb = {&rc, cb_token, cb_prefill, cb_cancelled};
    memset(&j->result, 0, sizeof j->result);
    if (atomic_load(&j->cancelled)) {
        j->result.finish = FP_FINISH_CANCEL;
    } else if (atomic_load(&e->stop)) {
        j->result.finish = FP_FINISH_ERROR;
        snprintf(j->result.error, sizeof j->result.error, "server shutting down");
    } else if (j->gen_request.max_tokens <= 0) {
        /* max_tokens 0: nothing to generate. */
        j->result.finish = FP_FINISH_LENGTH;
        j->result.prompt_tokens = j->gen_request.n_prompt;
    } else {
        fp_backend *b = e->ctx->backend;
        b->ops->generate(b, &j->gen_request, &cb, &j->result);
        if (!j->result.prompt_tokens) j->result.prompt_tokens = j->gen_request.n_prompt;
    }
    gen_text_finish(&j->gen);
    if (j->result.finish != FP_FINISH_CANCEL) j->ops->finish(j);
    if (e->log) {
        static const char *const names[] = {"stop", "length", "cancel", "error"};
        char line[512];
        snprintf(line, sizeof line,
                 "%s prompt=%zu cached=%zu completion=%zu finish=%s%s%s calls=%zu %.3fs%s%s", j->id,
                 j->result.prompt_tokens, j->result.cached_tokens, j->result.completion_tokens,
                 names[j->result.finish], j->gen.stopped ? "(stop-seq)" : "",
                 j->gen.dsml.failed ? "(bad-dsml)" : "", gen_text_n_calls(&j->gen), fp_now_s() - t0,
                 j->result.finish == FP_FINISH_ERROR ? " error=" : "",
                 j->result.finish == FP_FINISH_ERROR ? j->result.error : "");
        e->log(e->log_ud, line);
    }
    job_set_done(j);
}

static void *worker(void *arg) {
    gen_queue *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->n && !atomic_load(&e->stop)) pthread_cond_wait(&e->cv, &e->mu);
        if (!e->n && atomic_load(&e->stop)) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        job *j = e->q[e->head];
        e->head = (e->head + 1) % e->cap;
        e->n--;
        e->busy = true;
        pthread_mutex_unlock(&e->mu);
        run_job(e, j);
        job_unref(j);
        pthread_mutex_lock(&e->mu);
        e->busy = false;
        pthread_mutex_unlock(&e->mu);
    }
    return NULL;
}

gen_queue *gen_queue_open(srv_ctx *ctx, size_t max_queue, gen_queue_log_fn log, void *log_ud,
                    char *err, size_t errlen) {
    gen_queue *e = calloc(1, sizeof *e);
    if (!e) { snprintf(err, errlen, "out of memory"); return NULL; }
    e->ctx = ctx;
    atomic_init(&e->stop, false);
    e->cap = max_queue ? max_queue : 1;
    e->q = calloc(e->cap, sizeof *e->q);
    e->log = log;
    e->log_ud = log_ud;
    if (!e->q) { free(e); snprintf(err, errlen, "out of memory"); return NULL; }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (pthread_create(&e->th, NULL, worker, e) != 0) {
        snprintf(err, errlen, "cannot start the engine worker thread");
        free(e->q);
        free(e);
        return NULL;
    }
    e->started = true;
    return e;
}

void gen_queue_stop(gen_queue *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    atomic_store(&e->stop, true);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->started) pthread_join(e->th, NULL);
    e->started = false;
}

void gen_queue_close(gen_queue *e) {
    if (!e) return;
    gen_queue_stop(e);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e->q);
    free(e);
}

int gen_queue_submit(gen_queue *e, job *j) {
    pthread_mutex_lock(&e->mu);
    if (atomic_load(&e->stop) || e->n == e->cap) {
        pthread_mutex_unlock(&e->mu);
        return -1;
    }
    job_ref(j);
    e->q[(e->head + e->n) % e->cap] = j;
    e->n++;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

size_t gen_queue_queued(gen_queue *e) {
    pthread_mutex_lock(&e->mu);
    size_t n = e->n;
    pthread_mutex_unlock(&e->mu);
    return n;
}

bool gen_queue_busy(gen_queue *e) {
    pthread_mutex_lock(&e->mu);
    bool b = e->busy;
    pthread_mutex_unlock(&e->mu);
    return b;
}
