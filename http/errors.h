/* errors.h — one error value for every API, rendered in the API's own shape:
 * OpenAI {"error":{"message","type","param","code"}} and Anthropic
 * {"type":"error","error":{"type","message"}}. Parsers fill an api_error; the
 * server turns it into a status line + body (and SSE error events). */
#ifndef FP_ERRORS_H
#define FP_ERRORS_H

#include "strbuf.h"

typedef enum api_shape { SHAPE_OPENAI, SHAPE_ANTHROPIC } api_shape;

typedef enum api_err_kind {
    ERRK_INVALID = 0,     /* 400 malformed JSON, wrong field types, bad values */
    ERRK_AUTH,            /* 401 */
    ERRK_NOT_FOUND,       /* 404 unknown endpoint / model / response id */
    ERRK_METHOD,          /* 405 */
    ERRK_TOO_LARGE,       /* 413 body over the limit */
    ERRK_UNSUPPORTED_MEDIA, /* 415 compressed bodies */
    ERRK_CONTEXT,         /* 400 prompt does not fit the context */
    ERRK_OVERLOADED,      /* 503 queue full / shutting down (retryable) */
    ERRK_SERVER,          /* 500 backend failure */
} api_err_kind;

typedef struct api_error {
    int status;            /* 0 = no error */
    api_err_kind kind;
    char param[128];       /* offending field path, "" if none */
    char message[512];
    long long n_prompt, n_ctx;   /* ERRK_CONTEXT only */
} api_error;

void api_error_set(api_error *e, int status, api_err_kind kind, const char *param,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The "type" string each API uses for this kind. */
const char *api_error_type(api_shape shape, api_err_kind kind);
/* Full JSON body (with trailing newline). */
void api_error_body(strbuf *out, api_shape shape, const api_error *e);
/* Just the inner object for SSE error events: OpenAI {"error":{...}},
 * Anthropic {"type":"error","error":{...}} (no newline). */
void api_error_json(strbuf *out, api_shape shape, const api_error *e);

#endif
