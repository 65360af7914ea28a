/* gen_queue.h — the single engine worker: a bounded FIFO of jobs run one
 * at a time through the backend, so HTTP threads keep serving /health,
 * /v1/models and errors while a request generates. */
#ifndef FP_GEN_QUEUE_H
#define FP_GEN_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "api.h"

typedef struct gen_queue gen_queue;

/* Log line callback (may be NULL); called from the worker thread. */
typedef void (*gen_queue_log_fn)(void *ud, const char *line);

gen_queue *gen_queue_open(srv_ctx *ctx, size_t max_queue, gen_queue_log_fn log, void *log_ud,
                    char *err, size_t errlen);
/* Stops the worker: the running job is cancelled, queued jobs finish with an
 * error, later submissions are refused; then joins the thread. */
void gen_queue_stop(gen_queue *e);
/* gen_queue_stop (if not done) and free. */
void gen_queue_close(gen_queue *e);
/* Queues j (takes a reference). -1 when the queue is full or shutting down. */
int gen_queue_submit(gen_queue *e, job *j);
size_t gen_queue_queued(gen_queue *e);
bool gen_queue_busy(gen_queue *e);

#endif
