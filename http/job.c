/* job.c — one generation request in flight: owned jointly (reference
 * counted) by the HTTP connection and the engine worker; carries the output
 * channel the worker writes SSE bytes / the final body into. */
#include <stdlib.h>
#include <string.h>

#include "api.h"

job *job_new(srv_ctx *ctx, const api_ops *ops) {
    job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->ctx = ctx;
    j->ops = ops;
    j->refs = 1;
    j->client_fd = -1;
    j->status = 200;
    j->created = time(NULL);
    atomic_init(&j->cancelled, 0);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    return j;
}

void job_ref(job *j) {
    pthread_mutex_lock(&j->mu);
    j->refs++;
    pthread_mutex_unlock(&j->mu);
}

void job_unref(job *j) {
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left) return;
    gen_req_free(&j->req);
    cr_prompt_free(&j->prompt);
    free(j->ids.ids);
    gen_text_free(&j->gen);
    sb_free(&j->out);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

void job_emit(job *j, const char *s, size_t n) {
    pthread_mutex_lock(&j->mu);
    sb_append(&j->out, s, n);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

void job_set_done(job *j) {
    pthread_mutex_lock(&j->mu);
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}
