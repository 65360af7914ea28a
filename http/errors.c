/* errors.c — api_error construction and its OpenAI / Anthropic renderings. */
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json_util.h"

void api_error_set(api_error *e, int status, api_err_kind kind, const char *param,
                   const char *fmt, ...) {
    e->status = status;
    e->kind = kind;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

const char *api_error_type(api_shape shape, api_err_kind kind) {
    if (shape == SHAPE_ANTHROPIC) {
        switch (kind) {
        case ERRK_AUTH: return "authentication_error";
        case ERRK_NOT_FOUND: return "not_found_error";
        case ERRK_TOO_LARGE: return "request_too_large";
        case ERRK_OVERLOADED: return "overloaded_error";
        case ERRK_SERVER: return "api_error";
        default: return "invalid_request_error";
        }
    }
    switch (kind) {
    case ERRK_OVERLOADED:
    case ERRK_SERVER: return "server_error";
    case ERRK_AUTH: return "invalid_request_error";
    default: return "invalid_request_error";
    }
}

static const char *openai_code(const api_error *e) {
    switch (e->kind) {
    case ERRK_AUTH: return "invalid_api_key";
    case ERRK_NOT_FOUND: return "not_found";
    case ERRK_METHOD: return "method_not_allowed";
    case ERRK_TOO_LARGE: return "request_too_large";
    case ERRK_UNSUPPORTED_MEDIA: return "unsupported_media_type";
    case ERRK_CONTEXT: return "context_length_exceeded";
    case ERRK_OVERLOADED: return "server_overloaded";
    case ERRK_SERVER: return "server_error";
    default: return NULL;
    }
}

void api_error_json(strbuf *b, api_shape shape, const api_error *e) {
    if (shape == SHAPE_ANTHROPIC) {
        sb_puts(b, "{\"type\":\"error\",\"error\":{\"type\":");
        json_escape(b, api_error_type(shape, e->kind), strlen(api_error_type(shape, e->kind)));
        sb_puts(b, ",\"message\":");
        json_escape(b, e->message, strlen(e->message));
        if (e->kind == ERRK_CONTEXT)
            sb_printf(b, ",\"n_prompt_tokens\":%lld,\"n_ctx\":%lld", e->n_prompt, e->n_ctx);
        sb_puts(b, "}}");
        return;
    }
    sb_puts(b, "{\"error\":{\"message\":");
    json_escape(b, e->message, strlen(e->message));
    sb_puts(b, ",\"type\":");
    json_escape(b, api_error_type(shape, e->kind), strlen(api_error_type(shape, e->kind)));
    sb_puts(b, ",\"param\":");
    if (e->param[0]) json_escape(b, e->param, strlen(e->param));
    else sb_puts(b, "null");
    sb_puts(b, ",\"code\":");
    const char *code = openai_code(e);
    if (code) json_escape(b, code, strlen(code));
    else sb_puts(b, "null");
    if (e->kind == ERRK_CONTEXT)
        sb_printf(b, ",\"n_prompt_tokens\":%lld,\"n_ctx\":%lld", e->n_prompt, e->n_ctx);
    sb_puts(b, "}}");
}

void api_error_body(strbuf *b, api_shape shape, const api_error *e) {
    api_error_json(b, shape, e);
    sb_putc(b, '\n');
}
