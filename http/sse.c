/* sse.c — server-sent-event framing into a job's output channel, and random
 * ids for responses and tool calls. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "api.h"
#include "json_util.h"

void sse_event(job *j, const char *event, const strbuf *json) {
    strbuf b = STRBUF_INIT;
    if (event) sb_printf(&b, "event: %s\n", event);
    sb_puts(&b, "data: ");
    sb_append(&b, json->s ? json->s : "", json->n);
    sb_puts(&b, "\n\n");
    job_emit(j, b.s ? b.s : "", b.n);
    sb_free(&b);
}

void sse_data_raw(job *j, const char *data) {
    strbuf b = STRBUF_INIT;
    sb_printf(&b, "data: %s\n\n", data);
    job_emit(j, b.s ? b.s : "", b.n);
    sb_free(&b);
}

void http_make_id(char *out, size_t cap, const char *prefix, int nhex) {
    unsigned char raw[32];
    int nb = (nhex + 1) / 2;
    if (nb > (int)sizeof raw) nb = sizeof raw;
    if (RAND_bytes(raw, nb) != 1) {
        /* Fallback keeps ids unique within the process, not secret. */
        static _Atomic unsigned long counter;
        unsigned long c = ++counter;
        unsigned long long t = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 32);
        for (int i = 0; i < nb; i++) raw[i] = (unsigned char)((t >> (8 * (i % 8))) ^ (c >> (8 * (i % 4))) ^ i);
    }
    static const char hx[] = "0123456789abcdef";
    size_t k = snprintf(out, cap, "%s", prefix);
    for (int i = 0; i < nhex && k + 1 < cap; i++, k++) out[k] = hx[(raw[i / 2] >> ((i % 2) ? 0 : 4)) & 15];
    if (k < cap) out[k] = 0;
}

void sse_json(job *j, const char *event, cJSON *o) {
    strbuf b = STRBUF_INIT;
    json_print_compact(&b, o);
    cJSON_Delete(o);
    sse_event(j, event, &b);
    sb_free(&b);
}

void job_set_body(job *j, int status, cJSON *o) {
    strbuf b = STRBUF_INIT;
    json_print_compact(&b, o);
    cJSON_Delete(o);
    sb_putc(&b, '\n');
    pthread_mutex_lock(&j->mu);
    j->status = status;
    sb_free(&j->out);
    j->out = b;
    pthread_mutex_unlock(&j->mu);
}

void job_set_error_body(job *j, const api_error *e) {
    strbuf b = STRBUF_INIT;
    api_error_body(&b, j->ops->shape, e);
    pthread_mutex_lock(&j->mu);
    j->status = e->status;
    sb_free(&j->out);
    j->out = b;
    pthread_mutex_unlock(&j->mu);
}

cJSON *job_usage_openai(const job *j) {
    cJSON *u = cJSON_CreateObject();
    size_t p = j->result.prompt_tokens, c = j->result.completion_tokens;
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)p);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)c);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(p + c));
    cJSON *pd = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(pd, "cached_tokens", (double)j->result.cached_tokens);
    cJSON *cd = cJSON_AddObjectToObject(u, "completion_tokens_details");
    cJSON_AddNumberToObject(cd, "reasoning_tokens", (double)j->reasoning_tokens);
    return u;
}
