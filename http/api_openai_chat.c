/* api_openai_chat.c — POST /v1/chat/completions: request parsing into the
 * neutral chat, streamed chunks (role, reasoning_content, content,
 * tool_calls, finish chunk with finish_reason, optional usage chunk, [DONE])
 * and the non-streaming chat.completion body. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "json_util.h"

#define OOM(e) (api_error_set((e), 500, ERRK_SERVER, NULL, "out of memory"), -1)

/* arguments: a JSON string (kept as sent) or any JSON value (printed compact). */
static int call_arguments(const cJSON *fn, const char *where, char **out, api_error *e) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
    *out = NULL;
    if (!a || cJSON_IsNull(a)) return 0;
    if (cJSON_IsString(a)) {
        *out = strdup(a->valuestring);
    } else {
        strbuf b = STRBUF_INIT;
        json_print_compact(&b, a);
        *out = sb_steal(&b);
    }
    (void)where;
    return *out ? 0 : OOM(e);
}

static int parse_tool_calls(const cJSON *m, const char *where, cr_msg *msg, api_error *e) {
    const cJSON *tc;
    int rc = jget_arr(m, "tool_calls", where, &tc, e);
    if (rc <= 0) return rc;
    int i = 0;
    for (const cJSON *c = tc->child; c; c = c->next, i++) {
        char path[160], fpath[200];
        jpath_idx(path, sizeof path, jpath_key(fpath, sizeof fpath, where, "tool_calls"), i);
        if (!cJSON_IsObject(c)) {
            api_error_set(e, 400, ERRK_INVALID, path, "'%s' must be an object", path);
            return -1;
        }
        const char *id = NULL, *name = NULL;
        const cJSON *fn;
        if (jget_str(c, "id", path, &id, e) < 0) return -1;
        if ((rc = jget_obj(c, "function", path, &fn, e)) < 0) return -1;
        if (!rc) {
            api_error_set(e, 400, ERRK_INVALID, path, "'%s.function' is required", path);
            return -1;
        }
        jpath_key(fpath, sizeof fpath, path, "function");
        if ((rc = jget_str(fn, "name", fpath, &name, e)) < 0) return -1;
        if (!rc) {
            api_error_set(e, 400, ERRK_INVALID, fpath, "'%s.name' is required", fpath);
            return -1;
        }
        char *args;
        if (call_arguments(fn, fpath, &args, e) < 0) return -1;
        rc = cr_msg_add_call(msg, id, name, args);
        free(args);
        if (rc < 0) return OOM(e);
    }
    return 0;
}

static int parse_messages(const cJSON *msgs, gen_req *r, api_error *e) {
    int i = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, i++) {
        char where[64];
        jpath_idx(where, sizeof where, "messages", i);
        if (!cJSON_IsObject(m)) {
            api_error_set(e, 400, ERRK_INVALID, where, "'%s' must be an object", where);
            return -1;
        }
        const char *role = NULL;
        int rc = jget_str(m, "role", where, &role, e);
        if (rc < 0) return -1;
        if (!rc) {
            api_error_set(e, 400, ERRK_INVALID, where, "'%s.role' is required", where);
            return -1;
        }
        cr_role cr;
        if (!strcmp(role, "system")) cr = CR_SYSTEM;
        else if (!strcmp(role, "developer")) cr = CR_DEVELOPER;
        else if (!strcmp(role, "user")) cr = CR_USER;
        else if (!strcmp(role, "assistant")) cr = CR_ASSISTANT;
        else if (!strcmp(role, "tool") || !strcmp(role, "function")) cr = CR_TOOL;
        else {
            api_error_set(e, 400, ERRK_INVALID, where, "'%s.role' has unknown role '%s'", where, role);
            return -1;
        }
        char path[96], *text = NULL;
        if (req_content_text(cJSON_GetObjectItemCaseSensitive(m, "content"),
                         jpath_key(path, sizeof path, where, "content"), "\n\n", &text, e) < 0)
            return -1;
        cr_msg *msg = cr_chat_add(&r->chat, cr, NULL);
        if (!msg) { free(text); return OOM(e); }
        msg->content = text;
        if (cr == CR_ASSISTANT) {
            char *reasoning = NULL;
            if (req_content_text(cJSON_GetObjectItemCaseSensitive(m, "reasoning_content"),
                             jpath_key(path, sizeof path, where, "reasoning_content"), "", &reasoning, e) < 0)
                return -1;
            msg->reasoning = reasoning;
            if (parse_tool_calls(m, where, msg, e) < 0) return -1;
        } else if (cr == CR_TOOL) {
            const char *id = NULL;
            if (jget_str(m, !strcmp(role, "function") ? "name" : "tool_call_id", where, &id, e) < 0) return -1;
            if (id && !(msg->tool_call_id = strdup(id))) return OOM(e);
        }
    }
    return 0;
}

static int parse_tools(const cJSON *body, gen_req *r, api_error *e) {
    const cJSON *tools;
    int rc = jget_arr(body, "tools", "", &tools, e);
    if (rc <= 0) return rc;
    int i = 0;
    for (const cJSON *t = tools->child; t; t = t->next, i++) {
        char where[64];
        jpath_idx(where, sizeof where, "tools", i);
        if (!cJSON_IsObject(t)) {
            api_error_set(e, 400, ERRK_INVALID, where, "'%s' must be an object", where);
            return -1;
        }
        const char *type = NULL, *name = NULL;
        if (jget_str(t, "type", where, &type, e) < 0) return -1;
        if (type && strcmp(type, "function") != 0) continue;   /* only function tools exist here */
        const cJSON *fn;
        if ((rc = jget_obj(t, "function", where, &fn, e)) < 0) return -1;
        char fpath[96];
        jpath_key(fpath, sizeof fpath, where, "function");
        if (!rc || (rc = jget_str(fn, "name", fpath, &name, e)) <= 0) {
            if (rc == 0) api_error_set(e, 400, ERRK_INVALID, fpath, "'%s.name' is required", fpath);
            return -1;
        }
        /* The official encoder renders the function object itself. */
        if (cr_chat_add_tool(&r->chat, fn) < 0) return OOM(e);
    }
    return 0;
}

int api_chat_parse(const cJSON *body, gen_req *r, srv_ctx *ctx, api_error *e) {
    static const char *const max_keys[] = {"max_completion_tokens", "max_tokens", NULL};
    if (req_parse_sampling(body, r, max_keys, "stop", e) < 0) return -1;
    const cJSON *msgs;
    int rc = jget_arr(body, "messages", "", &msgs, e);
    if (rc < 0) return -1;
    if (!rc || !msgs->child) {
        api_error_set(e, 400, ERRK_INVALID, "messages", "'messages' is required and must not be empty");
        return -1;
    }
    long long n;
    if ((rc = jget_int(body, "n", "", &n, e)) < 0) return -1;
    if (rc && n != 1) {
        api_error_set(e, 400, ERRK_INVALID, "n", "only n=1 is supported");
        return -1;
    }
    if (parse_messages(msgs, r, e) < 0) return -1;
    if (parse_tools(body, r, e) < 0) return -1;
    r->tools_active = r->chat.n_tools > 0;
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(body, "tool_choice");
    if (tc && !cJSON_IsNull(tc)) {
        if (cJSON_IsString(tc)) {
            if (!strcmp(tc->valuestring, "none")) r->tools_active = false;
            else if (strcmp(tc->valuestring, "auto") && strcmp(tc->valuestring, "required")) {
                api_error_set(e, 400, ERRK_INVALID, "tool_choice",
                              "'tool_choice' must be none, auto, required or a function object");
                return -1;
            }
        } else if (!cJSON_IsObject(tc)) {
            api_error_set(e, 400, ERRK_INVALID, "tool_choice", "'tool_choice' must be a string or an object");
            return -1;
        }
    }
    const cJSON *rf;
    if ((rc = jget_obj(body, "response_format", "", &rf, e)) < 0) return -1;
    if (rc) {
        const char *type = NULL;
        if (jget_str(rf, "type", "response_format", &type, e) < 0) return -1;
        if ((!type || strcmp(type, "text") != 0) && cr_chat_set_response_format(&r->chat, rf) < 0) return OOM(e);
    }
    const char *effort = NULL, *key = NULL;
    if (jget_str(body, "reasoning_effort", "", &effort, e) < 0) return -1;
    if (req_parse_thinking(body, r, ctx, effort, "reasoning_effort", true, e) < 0) return -1;
    if (jget_str(body, "prompt_cache_key", "", &key, e) < 0) return -1;
    if (key && !(r->cache_hint = strdup(key))) return OOM(e);
    return 0;
}

/* ---- output ----------------------------------------------------------------- */

static cJSON *chunk(job *j, cJSON *delta, const char *finish) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", j->req.model);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    cJSON_AddItemToObject(c, "delta", delta);
    cJSON_AddNullToObject(c, "logprobs");
    if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
    else cJSON_AddNullToObject(c, "finish_reason");
    cJSON_AddItemToArray(choices, c);
    return o;
}

static void chat_begin(job *j) {
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "role", "assistant");
    cJSON_AddStringToObject(d, "content", "");
    sse_json(j, NULL, chunk(j, d, NULL));
}

static void delta_text(job *j, const char *key, const char *s, size_t n) {
    if (!j->req.stream || !n) return;
    cJSON *d = cJSON_CreateObject();
    char *t = strndup(s, n);
    cJSON_AddStringToObject(d, key, t ? t : "");
    free(t);
    sse_json(j, NULL, chunk(j, d, NULL));
}

static void chat_reasoning(job *j, const char *s, size_t n) { delta_text(j, "reasoning_content", s, n); }
static void chat_content(job *j, const char *s, size_t n) { delta_text(j, "content", s, n); }

/* The tool_calls array; ids are fresh and registered for exact replay. */
static cJSON *tool_calls(job *j, bool with_index) {
    size_t n = gen_text_n_calls(&j->gen);
    if (!n) return NULL;
    cJSON *arr = cJSON_CreateArray();
    const char **ids = calloc(n, sizeof *ids);
    char (*idbuf)[48] = calloc(n, sizeof *idbuf);
    for (size_t i = 0; i < n; i++) {
        const dsml_call *c = &j->gen.dsml.calls[i];
        const tool_alias *al = req_alias(&j->req, c->name);
        if (idbuf) http_make_id(idbuf[i], sizeof idbuf[i], "call_", 24);
        cJSON *o = cJSON_CreateObject();
        if (with_index) cJSON_AddNumberToObject(o, "index", (double)i);
        cJSON_AddStringToObject(o, "id", idbuf ? idbuf[i] : "call_0");
        cJSON_AddStringToObject(o, "type", "function");
        cJSON *fn = cJSON_AddObjectToObject(o, "function");
        cJSON_AddStringToObject(fn, "name", al ? al->wire_name : c->name);
        cJSON_AddStringToObject(fn, "arguments", c->args);
        cJSON_AddItemToArray(arr, o);
        if (ids && idbuf) ids[i] = idbuf[i];
    }
    if (ids && idbuf) job_remember_calls(j, ids, n);
    free(ids);
    free(idbuf);
    return arr;
}

static void chat_finish(job *j) {
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
    cJSON *calls = tool_calls(j, j->req.stream);
    if (j->req.stream) {
        if (calls) {
            cJSON *d = cJSON_CreateObject();
            cJSON_AddItemToObject(d, "tool_calls", calls);
            sse_json(j, NULL, chunk(j, d, NULL));
        }
        sse_json(j, NULL, chunk(j, cJSON_CreateObject(), finish));
        if (j->req.include_usage) {
            cJSON *o = chunk(j, cJSON_CreateObject(), NULL);
            cJSON_ReplaceItemInObject(o, "choices", cJSON_CreateArray());
            cJSON_AddItemToObject(o, "usage", job_usage_openai(j));
            sse_json(j, NULL, o);
        }
        sse_data_raw(j, "[DONE]");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", "chat.completion");
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", j->req.model);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    cJSON *m = cJSON_AddObjectToObject(c, "message");
    cJSON_AddStringToObject(m, "role", "assistant");
    if (j->gen.content.n || !calls) cJSON_AddStringToObject(m, "content", sb_str(&j->gen.content));
    else cJSON_AddNullToObject(m, "content");
    if (j->gen.reasoning.n) cJSON_AddStringToObject(m, "reasoning_content", sb_str(&j->gen.reasoning));
    if (calls) cJSON_AddItemToObject(m, "tool_calls", calls);
    cJSON_AddNullToObject(c, "logprobs");
    cJSON_AddStringToObject(c, "finish_reason", finish);
    cJSON_AddItemToArray(choices, c);
    cJSON_AddItemToObject(o, "usage", job_usage_openai(j));
    job_set_body(j, 200, o);
}

const api_ops API_CHAT_OPS = {
    SHAPE_OPENAI, chat_begin, chat_reasoning, chat_content, chat_finish, ": keep-alive\n\n", NULL,
};
