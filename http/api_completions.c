/* api_completions.c — POST /v1/completions (legacy). Like the reference it
 * is not a raw-text endpoint: the prompt is rendered as one user turn of the
 * chat format, and the reply text is returned raw — in thinking mode that is
 * the reasoning, the literal "</think>", then the answer (serving-spec 2.7,
 * 4.6). Stop sequences apply to the answer only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "json_util.h"

int api_completions_parse(const cJSON *body, gen_req *r, srv_ctx *ctx, api_error *e) {
    static const char *const max_keys[] = {"max_tokens", NULL};
    if (req_parse_sampling(body, r, max_keys, "stop", e) < 0) return -1;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    const char *text = NULL;
    if (cJSON_IsString(p)) {
        text = p->valuestring;
    } else if (cJSON_IsArray(p) && p->child && cJSON_IsString(p->child)) {
        if (p->child->next) {
            api_error_set(e, 400, ERRK_INVALID, "prompt", "only one prompt per request is supported");
            return -1;
        }
        text = p->child->valuestring;
    } else if (!p || cJSON_IsNull(p)) {
        api_error_set(e, 400, ERRK_INVALID, "prompt", "'prompt' is required");
        return -1;
    } else {
        api_error_set(e, 400, ERRK_INVALID, "prompt", "'prompt' must be a string or an array of one string");
        return -1;
    }
    long long n;
    int rc;
    if ((rc = jget_int(body, "n", "", &n, e)) < 0) return -1;
    if (rc && n != 1) {
        api_error_set(e, 400, ERRK_INVALID, "n", "only n=1 is supported");
        return -1;
    }
    if (!cr_chat_add(&r->chat, CR_USER, text)) {
        api_error_set(e, 500, ERRK_SERVER, NULL, "out of memory");
        return -1;
    }
    const char *effort = NULL;
    if (jget_str(body, "reasoning_effort", "", &effort, e) < 0) return -1;
    return req_parse_thinking(body, r, ctx, effort, "reasoning_effort", true, e);
}

static cJSON *completion(job *j, const char *text, const char *finish, bool chunk) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", j->req.model);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    if (text) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "text", text);
        cJSON_AddNumberToObject(c, "index", 0);
        cJSON_AddNullToObject(c, "logprobs");
        if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
        else cJSON_AddNullToObject(c, "finish_reason");
        cJSON_AddItemToArray(choices, c);
    }
    if (!chunk) cJSON_AddItemToObject(o, "usage", job_usage_openai(j));
    return o;
}

static void cmpl_begin(job *j) { (void)j; }

static void cmpl_content(job *j, const char *s, size_t n) {
    if (!j->req.stream || !n) return;
    char *t = strndup(s, n);
    sse_json(j, NULL, completion(j, t ? t : "", NULL, true));
    free(t);
}

static void cmpl_finish(job *j) {
    if (j->result.finish == FP_FINISH_ERROR) {
        api_error e;
        api_error_set(&e, 500, ERRK_SERVER, NULL, "generation failed: %s", j->result.error);
        if (j->req.stream) {
            strbuf b = STRBUF_INIT;
            api_error_json(&b, SHAPE_OPENAI, &e);
            sse_event(j, NULL, &b);
            sb_free(&b);
        } else {
            job_set_error_body(j, &e);
        }
        return;
    }
    const char *finish = job_finish_reason(j);
    if (!j->req.stream) {
        job_set_body(j, 200, completion(j, sb_str(&j->gen.content), finish, false));
        return;
    }
    sse_json(j, NULL, completion(j, "", finish, true));
    if (j->req.include_usage) {
        cJSON *o = completion(j, NULL, NULL, true);
        cJSON_AddItemToObject(o, "usage", job_usage_openai(j));
        sse_json(j, NULL, o);
    }
    sse_data_raw(j, "[DONE]");
}

const api_ops API_COMPLETIONS_OPS = {
    SHAPE_OPENAI, cmpl_begin, NULL, cmpl_content, cmpl_finish, ": keep-alive\n\n", NULL,
};
