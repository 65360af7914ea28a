/* api_anthropic.c — POST /v1/messages (Anthropic Messages, for Claude Code and
 * the Anthropic SDK) and /v1/messages/count_tokens: block-structured
 * messages into the neutral chat; streamed events message_start, ping,
 * content_block_start/delta/stop per block (thinking, text, tool_use with
 * input_json_delta), message_delta, message_stop; the non-streaming message.
 *
 * Accepts what Claude Code sends: system as string or blocks (billing
 * header blocks "x-anthropic-..." are dropped: they change per conversation
 * and are not instructions), role "system" messages inside messages,
 * non-alternating roles, cache_control anywhere, thinking/adaptive,
 * output_config.effort, context_management, metadata. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "json_util.h"

#define OOM(e) (api_error_set((e), 500, ERRK_SERVER, NULL, "out of memory"), -1)

static const char SIGNATURE[] = "flashpool";

/* System prompt: string or array of text blocks, joined with "\n\n". */
static int parse_system(const cJSON *body, gen_req *r, api_error *e) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(body, "system");
    if (!s || cJSON_IsNull(s)) return 0;
    strbuf b = STRBUF_INIT;
    if (cJSON_IsString(s)) {
        sb_puts(&b, s->valuestring);
    } else if (cJSON_IsArray(s)) {
        int i = 0, first = 1;
        for (const cJSON *blk = s->child; blk; blk = blk->next, i++) {
            char where[64];
            jpath_idx(where, sizeof where, "system", i);
            const char *text = NULL;
            if (cJSON_IsString(blk)) text = blk->valuestring;
            else if (!cJSON_IsObject(blk) || jget_str(blk, "text", where, &text, e) < 0 || !text) {
                if (!e->status)
                    api_error_set(e, 400, ERRK_INVALID, where, "'%s' must be a text block", where);
                sb_free(&b);
                return -1;
            }
            if (strncmp(text, "x-anthropic-", 12) == 0) continue;
            if (!first) sb_puts(&b, "\n\n");
            first = 0;
            sb_puts(&b, text);
        }
    } else {
        api_error_set(e, 400, ERRK_INVALID, "system", "'system' must be a string or an array of text blocks");
        return -1;
    }
    cr_msg *m = cr_chat_add(&r->chat, CR_SYSTEM, sb_str(&b));
    sb_free(&b);
    return m ? 0 : OOM(e);
}

/* tool_result content: string or blocks (text joined "\n\n", others noted). */
static int tool_result_text(const cJSON *blk, const char *where, char **out, api_error *e) {
    char path[160];
    return req_content_text(cJSON_GetObjectItemCaseSensitive(blk, "content"),
                        jpath_key(path, sizeof path, where, "content"), "\n\n", out, e);
}

static int parse_blocks(const cJSON *content, const char *where, cr_role role, gen_req *r, api_error *e) {
    char path[160];
    jpath_key(path, sizeof path, where, "content");
    if (cJSON_IsString(content) || !content || cJSON_IsNull(content)) {
        cr_role rr = role;
        cr_msg *m = cr_chat_add(&r->chat, rr, cJSON_IsString(content) ? content->valuestring : "");
        return m ? 0 : OOM(e);
    }
    if (!cJSON_IsArray(content)) {
        api_error_set(e, 400, ERRK_INVALID, path, "'%s' must be a string or an array of blocks", path);
        return -1;
    }
    cr_msg *asst = NULL;
    int i = 0;
    for (const cJSON *blk = content->child; blk; blk = blk->next, i++) {
        char bp[192];
        jpath_idx(bp, sizeof bp, path, i);
        if (!cJSON_IsObject(blk)) {
            api_error_set(e, 400, ERRK_INVALID, bp, "'%s' must be a content block object", bp);
            return -1;
        }
        const char *type = NULL, *text = NULL;
        int rc = jget_str(blk, "type", bp, &type, e);
        if (rc < 0) return -1;
        if (!rc) {
            api_error_set(e, 400, ERRK_INVALID, bp, "'%s.type' is required", bp);
            return -1;
        }
        if (role == CR_ASSISTANT) {
            if (!asst && !(asst = cr_chat_add(&r->chat, CR_ASSISTANT, NULL))) return OOM(e);
            if (!strcmp(type, "text")) {
                if (jget_str(blk, "text", bp, &text, e) < 0) return -1;
                if (cr_msg_append(asst, text ? text : "", "") < 0) return OOM(e);
            } else if (!strcmp(type, "thinking")) {
                if (jget_str(blk, "thinking", bp, &text, e) < 0) return -1;
                if (cr_msg_append_reasoning(asst, text ? text : "", "") < 0) return OOM(e);
            } else if (!strcmp(type, "tool_use")) {
                const char *id = NULL, *name = NULL;
                if (jget_str(blk, "id", bp, &id, e) < 0 || jget_str(blk, "name", bp, &name, e) < 0) return -1;
                if (!name) {
                    api_error_set(e, 400, ERRK_INVALID, bp, "'%s.name' is required", bp);
                    return -1;
                }
                const cJSON *input = cJSON_GetObjectItemCaseSensitive(blk, "input");
                strbuf a = STRBUF_INIT;
                if (input && !cJSON_IsNull(input)) json_print_compact(&a, input);
                else sb_puts(&a, "{}");
                rc = cr_msg_add_call(asst, id, name, sb_str(&a));
                sb_free(&a);
                if (rc < 0) return OOM(e);
            }
            /* redacted_thinking, server tool blocks: nothing the model can use */
            continue;
        }
        /* user (or system) side: each block is its own part of the turn */
        if (!strcmp(type, "tool_result")) {
            const char *id = NULL;
            char *t = NULL;
            if (jget_str(blk, "tool_use_id", bp, &id, e) < 0) return -1;
            if (tool_result_text(blk, bp, &t, e) < 0) return -1;
            cr_msg *m = cr_chat_add(&r->chat, role == CR_SYSTEM ? CR_SYSTEM : CR_TOOL, NULL);
            if (!m) { free(t); return OOM(e); }
            m->content = t;
            if (id && !(m->tool_call_id = strdup(id))) return OOM(e);
        } else if (!strcmp(type, "text")) {
            if (jget_str(blk, "text", bp, &text, e) < 0) return -1;
            if (!cr_chat_add(&r->chat, role, text ? text : "")) return OOM(e);
        } else {
            char note[96];
            snprintf(note, sizeof note, "[Unsupported %s]", type);
            if (!cr_chat_add(&r->chat, role, note)) return OOM(e);
        }
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
        if (!strcmp(role, "user")) cr = CR_USER;
        else if (!strcmp(role, "assistant")) cr = CR_ASSISTANT;
        else if (!strcmp(role, "system")) cr = CR_SYSTEM;
        else {
            api_error_set(e, 400, ERRK_INVALID, where, "'%s.role' must be user or assistant", where);
            return -1;
        }
        if (parse_blocks(cJSON_GetObjectItemCaseSensitive(m, "content"), where, cr, r, e) < 0) return -1;
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
        const char *name = NULL, *desc = NULL;
        const cJSON *schema = NULL;
        if ((rc = jget_str(t, "name", where, &name, e)) < 0) return -1;
        if (!rc) {
            api_error_set(e, 400, ERRK_INVALID, where, "'%s.name' is required", where);
            return -1;
        }
        if (jget_str(t, "description", where, &desc, e) < 0) return -1;
        if (jget_obj(t, "input_schema", where, &schema, e) < 0) return -1;
        if (!schema) continue;   /* server tools (web search, ...) cannot run here */
        cJSON *fn = cJSON_CreateObject();
        cJSON_AddStringToObject(fn, "name", name);
        if (desc) cJSON_AddStringToObject(fn, "description", desc);
        cJSON_AddItemToObject(fn, "parameters", cJSON_Duplicate(schema, 1));
        rc = cr_chat_add_tool(&r->chat, fn);
        cJSON_Delete(fn);
        if (rc < 0) return OOM(e);
    }
    return 0;
}

static int parse_common(const cJSON *body, gen_req *r, srv_ctx *ctx, api_error *e) {
    const cJSON *msgs;
    int rc = jget_arr(body, "messages", "", &msgs, e);
    if (rc < 0) return -1;
    if (!rc || !msgs->child) {
        api_error_set(e, 400, ERRK_INVALID, "messages", "'messages' is required and must not be empty");
        return -1;
    }
    if (parse_system(body, r, e) < 0) return -1;
    if (parse_messages(msgs, r, e) < 0) return -1;
    if (parse_tools(body, r, e) < 0) return -1;
    r->tools_active = r->chat.n_tools > 0;
    const cJSON *tc;
    if ((rc = jget_obj(body, "tool_choice", "", &tc, e)) < 0) return -1;
    if (rc) {
        const char *type = NULL;
        if (jget_str(tc, "type", "tool_choice", &type, e) < 0) return -1;
        if (type && !strcmp(type, "none")) r->tools_active = false;
    }
    const char *effort = NULL;
    const cJSON *oc;
    if ((rc = jget_obj(body, "output_config", "", &oc, e)) < 0) return -1;
    if (rc && jget_str(oc, "effort", "output_config", &effort, e) < 0) return -1;
    const char *effort_param = "output_config.effort";
    if (!effort) {
        if (jget_str(body, "reasoning_effort", "", &effort, e) < 0) return -1;
        effort_param = "reasoning_effort";
    }
    return req_parse_thinking(body, r, ctx, effort, effort_param, false, e);
}

int api_anthropic_parse(const cJSON *body, gen_req *r, srv_ctx *ctx, api_error *e) {
    static const char *const max_keys[] = {"max_tokens", NULL};
    if (req_parse_sampling(body, r, max_keys, "stop_sequences", e) < 0) return -1;
    return parse_common(body, r, ctx, e);
}

int api_anthropic_count_tokens(const cJSON *body, srv_ctx *ctx, strbuf *out, api_error *e) {
    job *j = job_new(ctx, &API_ANTHROPIC_OPS);
    if (!j) return OOM(e);
    gen_req_init(&j->req, API_ANTHROPIC);
    j->count_only = true;   /* counting a prompt that is too long is still useful */
    int rc = -1;
    if (parse_common(body, &j->req, ctx, e) == 0 && job_prepare(j, e) == 0) {
        sb_printf(out, "{\"input_tokens\":%zu}\n", j->ids.n);
        rc = 0;
    }
    job_unref(j);
    return rc;
}

/* ---- output ----------------------------------------------------------------- */

static void event(job *j, const char *type, cJSON *o) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "type", type);
    for (cJSON *c = o ? o->child : NULL; c;) {
        cJSON *next = c->next;
        cJSON_AddItemToObject(t, c->string, cJSON_DetachItemViaPointer(o, c));
        c = next;
    }
    cJSON_Delete(o);
    sse_json(j, type, t);
}

static cJSON *usage(const job *j, bool final) {
    cJSON *u = cJSON_CreateObject();
    size_t p = final ? j->result.prompt_tokens : j->ids.n, cached = final ? j->result.cached_tokens : 0;
    cJSON_AddNumberToObject(u, "input_tokens", (double)(p - cached));
    cJSON_AddNumberToObject(u, "cache_creation_input_tokens", 0);
    cJSON_AddNumberToObject(u, "cache_read_input_tokens", (double)cached);
    cJSON_AddNumberToObject(u, "output_tokens", (double)(final ? j->result.completion_tokens : 0));
    return u;
}

static void anth_begin(job *j) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", j->id);
    cJSON_AddStringToObject(m, "type", "message");
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON_AddStringToObject(m, "model", j->req.model);
    cJSON_AddArrayToObject(m, "content");
    cJSON_AddNullToObject(m, "stop_reason");
    cJSON_AddNullToObject(m, "stop_sequence");
    cJSON_AddItemToObject(m, "usage", usage(j, false));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "message", m);
    event(j, "message_start", o);
    event(j, "ping", NULL);
}

static void block_start(job *j, cJSON *block) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", j->st.next_index);
    cJSON_AddItemToObject(o, "content_block", block);
    event(j, "content_block_start", o);
    j->st.open_index = j->st.next_index++;
}

static void block_delta(job *j, int index, cJSON *delta) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", index);
    cJSON_AddItemToObject(o, "delta", delta);
    event(j, "content_block_delta", o);
}

static void block_stop(job *j, int index) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", index);
    event(j, "content_block_stop", o);
}

static void close_open(job *j) {
    if (j->st.open_kind == 1) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "type", "signature_delta");
        cJSON_AddStringToObject(d, "signature", SIGNATURE);
        block_delta(j, j->st.open_index, d);
    }
    if (j->st.open_kind) block_stop(j, j->st.open_index);
    j->st.open_kind = 0;
}

static void open_kind(job *j, int kind) {
    if (j->st.open_kind == kind) return;
    close_open(j);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", kind == 1 ? "thinking" : "text");
    cJSON_AddStringToObject(b, kind == 1 ? "thinking" : "text", "");
    if (kind == 1) cJSON_AddStringToObject(b, "signature", "");
    block_start(j, b);
    j->st.open_kind = kind;
}

static void delta(job *j, int kind, const char *s, size_t n) {
    if (!j->req.stream || !n) return;
    open_kind(j, kind);
    cJSON *d = cJSON_CreateObject();
    char *t = strndup(s, n);
    cJSON_AddStringToObject(d, "type", kind == 1 ? "thinking_delta" : "text_delta");
    cJSON_AddStringToObject(d, kind == 1 ? "thinking" : "text", t ? t : "");
    free(t);
    block_delta(j, j->st.open_index, d);
}

static void anth_reasoning(job *j, const char *s, size_t n) { delta(j, 1, s, n); }

/* Claude Code aborts a stream after 300 s without an event other than ping
 * (its stream watchdog skips pings; seen on a 58k-token prefill), and then
 * retries the whole request. With thinking on the reply starts with the
 * thinking block anyway, so open it while the prompt is evaluated and send
 * an empty thinking_delta per prefill step: real progress events, no text. */
static void anth_prefill(job *j) {
    if (j->req.chat.think == CR_THINK_NONE || j->st.open_kind == 2) return;
    open_kind(j, 1);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "type", "thinking_delta");
    cJSON_AddStringToObject(d, "thinking", "");
    block_delta(j, j->st.open_index, d);
}
static void anth_content(job *j, const char *s, size_t n) { delta(j, 2, s, n); }

static const char *stop_reason(const job *j) {
    if (gen_text_n_calls(&j->gen)) return "tool_use";
    if (j->gen.stopped) return "stop_sequence";
    if (j->result.finish == FP_FINISH_LENGTH) return "max_tokens";
    return "end_turn";
}

static void anth_finish(job *j) {
    if (j->result.finish == FP_FINISH_ERROR) {
        api_error e;
        api_error_set(&e, 500, ERRK_SERVER, NULL, "generation failed: %s", j->result.error);
        if (j->req.stream) {
            strbuf b = STRBUF_INIT;
            api_error_json(&b, SHAPE_ANTHROPIC, &e);
            sse_event(j, "error", &b);
            sb_free(&b);
        } else {
            job_set_error_body(j, &e);
        }
        return;
    }
    size_t n = gen_text_n_calls(&j->gen);
    const char **ids = calloc(n + 1, sizeof *ids);
    char (*idbuf)[48] = calloc(n + 1, sizeof *idbuf);
    for (size_t i = 0; i < n && idbuf; i++) http_make_id(idbuf[i], sizeof idbuf[i], "toolu_", 24);
    for (size_t i = 0; i < n && ids && idbuf; i++) ids[i] = idbuf[i];
    if (ids && idbuf) job_remember_calls(j, ids, n);
    const char *sr = stop_reason(j);
    const char *stop_seq = j->gen.stopped && j->gen.stop_index >= 0 ? j->req.stops[j->gen.stop_index] : NULL;

    if (j->req.stream) {
        close_open(j);
        if (j->st.next_index == 0 && !n) {
            /* Claude Code needs at least one closed block. */
            cJSON *b = cJSON_CreateObject();
            cJSON_AddStringToObject(b, "type", "text");
            cJSON_AddStringToObject(b, "text", "");
            block_start(j, b);
            block_stop(j, j->st.open_index);
        }
        for (size_t i = 0; i < n; i++) {
            const dsml_call *c = &j->gen.dsml.calls[i];
            cJSON *b = cJSON_CreateObject();
            cJSON_AddStringToObject(b, "type", "tool_use");
            cJSON_AddStringToObject(b, "id", idbuf ? idbuf[i] : "toolu_0");
            cJSON_AddStringToObject(b, "name", c->name);
            cJSON_AddObjectToObject(b, "input");
            block_start(j, b);
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "type", "input_json_delta");
            cJSON_AddStringToObject(d, "partial_json", c->args);
            block_delta(j, j->st.open_index, d);
            block_stop(j, j->st.open_index);
        }
        cJSON *o = cJSON_CreateObject();
        cJSON *d = cJSON_AddObjectToObject(o, "delta");
        cJSON_AddStringToObject(d, "stop_reason", sr);
        if (stop_seq) cJSON_AddStringToObject(d, "stop_sequence", stop_seq);
        else cJSON_AddNullToObject(d, "stop_sequence");
        cJSON_AddItemToObject(o, "usage", usage(j, true));
        event(j, "message_delta", o);
        event(j, "message_stop", NULL);
    } else {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", j->id);
        cJSON_AddStringToObject(m, "type", "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "model", j->req.model);
        cJSON *content = cJSON_AddArrayToObject(m, "content");
        if (j->gen.reasoning.n) {
            cJSON *b = cJSON_CreateObject();
            cJSON_AddStringToObject(b, "type", "thinking");
            cJSON_AddStringToObject(b, "thinking", sb_str(&j->gen.reasoning));
            cJSON_AddStringToObject(b, "signature", SIGNATURE);
            cJSON_AddItemToArray(content, b);
        }
        if (j->gen.content.n || !n) {
            cJSON *b = cJSON_CreateObject();
            cJSON_AddStringToObject(b, "type", "text");
            cJSON_AddStringToObject(b, "text", sb_str(&j->gen.content));
            cJSON_AddItemToArray(content, b);
        }
        for (size_t i = 0; i < n; i++) {
            const dsml_call *c = &j->gen.dsml.calls[i];
            cJSON *b = cJSON_CreateObject();
            cJSON_AddStringToObject(b, "type", "tool_use");
            cJSON_AddStringToObject(b, "id", idbuf ? idbuf[i] : "toolu_0");
            cJSON_AddStringToObject(b, "name", c->name);
            cJSON *input = cJSON_Parse(c->args);
            cJSON_AddItemToObject(b, "input", input ? input : cJSON_CreateObject());
            cJSON_AddItemToArray(content, b);
        }
        cJSON_AddStringToObject(m, "stop_reason", sr);
        if (stop_seq) cJSON_AddStringToObject(m, "stop_sequence", stop_seq);
        else cJSON_AddNullToObject(m, "stop_sequence");
        cJSON_AddItemToObject(m, "usage", usage(j, true));
        job_set_body(j, 200, m);
    }
    free(ids);
    free(idbuf);
}

const api_ops API_ANTHROPIC_OPS = {
    SHAPE_ANTHROPIC, anth_begin, anth_reasoning, anth_content, anth_finish,
    "event: ping\ndata: {\"type\":\"ping\"}\n\n",
    anth_prefill,
};
