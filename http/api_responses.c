/* api_responses.c — POST /v1/responses (OpenAI Responses, for Codex and the
 * openai SDK): input items into the neutral chat (messages, reasoning
 * echoes, function/custom calls and their outputs; developer messages as
 * Codex sends its system prompt), namespace and custom tools, and
 * previous_response_id through a bounded store. Streams the documented event
 * sequence with sequence_number: response.created, response.in_progress,
 * per item output_item.added -> content/summary part added -> deltas ->
 * done events -> output_item.done (the full item), then exactly one of
 * response.completed / response.incomplete / response.failed.
 *
 * Reasoning items carry the exact reasoning in encrypted_content (when the
 * client asks via include) so a stateless replay renders it byte-identically. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "api.h"
#include "json_util.h"
#include "resp_store.h"

#define OOM(e) (api_error_set((e), 500, ERRK_SERVER, NULL, "out of memory"), -1)

static const char ENC_PREFIX[] = "fpr1:";

/* ---- request ---------------------------------------------------------------- */

static char *enc_reasoning(const char *s, size_t n) {
    size_t cap = strlen(ENC_PREFIX) + 4 * ((n + 2) / 3) + 1;
    char *out = malloc(cap);
    if (!out) return NULL;
    strcpy(out, ENC_PREFIX);
    EVP_EncodeBlock((unsigned char *)out + strlen(ENC_PREFIX), (const unsigned char *)s, (int)n);
    return out;
}

/* Reasoning text we put into encrypted_content earlier, or NULL. */
static char *dec_reasoning(const char *enc) {
    if (strncmp(enc, ENC_PREFIX, strlen(ENC_PREFIX)) != 0) return NULL;
    const char *b64 = enc + strlen(ENC_PREFIX);
    size_t n = strlen(b64);
    if (n % 4) return NULL;
    unsigned char *out = malloc(n / 4 * 3 + 1);
    if (!out) return NULL;
    int k = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
    if (k < 0) { free(out); return NULL; }
    if (n >= 1 && b64[n - 1] == '=') k--;
    if (n >= 2 && b64[n - 2] == '=') k--;
    out[k] = 0;
    return (char *)out;
}

typedef struct conv_state {
    cr_msg *asst;        /* assistant turn the next call/text joins, or NULL */
    size_t asst_idx;
    char *pending_reasoning;
} conv_state;

static cr_msg *cur_assistant(gen_req *r, conv_state *cs) {
    return cs->asst ? &r->chat.msgs[cs->asst_idx] : NULL;
}

/* The assistant turn a message/call item belongs to. */
static cr_msg *assistant_for(gen_req *r, conv_state *cs) {
    cr_msg *a = cur_assistant(r, cs);
    if (a && !cs->pending_reasoning) return a;
    a = cr_chat_add(&r->chat, CR_ASSISTANT, NULL);
    if (!a) return NULL;
    a->reasoning = cs->pending_reasoning;
    cs->pending_reasoning = NULL;
    cs->asst = a;
    cs->asst_idx = r->chat.n - 1;
    return a;
}

static int reasoning_item(const cJSON *it, const char *where, conv_state *cs, api_error *e) {
    const char *enc = NULL;
    if (jget_str(it, "encrypted_content", where, &enc, e) < 0) return -1;
    char *text = enc ? dec_reasoning(enc) : NULL;
    if (!text) {
        /* Not ours: use the visible reasoning text, else the summary. */
        char path[160];
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (c && cJSON_IsArray(c) && c->child) {
            if (req_content_text(c, jpath_key(path, sizeof path, where, "content"), "\n", &text, e) < 0) return -1;
        } else {
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(it, "summary");
            if (req_content_text(s, jpath_key(path, sizeof path, where, "summary"), "\n\n", &text, e) < 0) return -1;
        }
    }
    free(cs->pending_reasoning);
    cs->pending_reasoning = text ? text : strdup("");
    cs->asst = NULL;
    return cs->pending_reasoning ? 0 : OOM(e);
}

static int call_item(const cJSON *it, const char *where, bool custom, gen_req *r, conv_state *cs,
                     api_error *e) {
    const char *call_id = NULL, *id = NULL, *name = NULL, *ns = NULL, *args = NULL;
    if (jget_str(it, "call_id", where, &call_id, e) < 0 || jget_str(it, "id", where, &id, e) < 0 ||
        jget_str(it, "name", where, &name, e) < 0 || jget_str(it, "namespace", where, &ns, e) < 0)
        return -1;
    if (!name) {
        api_error_set(e, 400, ERRK_INVALID, where, "'%s.name' is required", where);
        return -1;
    }
    strbuf a = STRBUF_INIT;
    if (custom) {
        const char *input = NULL;
        if (jget_str(it, "input", where, &input, e) < 0) return -1;
        sb_puts(&a, "{\"input\":");
        json_escape(&a, input ? input : "", input ? strlen(input) : 0);
        sb_putc(&a, '}');
    } else {
        if (jget_str(it, "arguments", where, &args, e) < 0) return -1;
        sb_puts(&a, args ? args : "{}");
    }
    char model_name[512];
    if (ns) snprintf(model_name, sizeof model_name, "%s.%s", ns, name);
    else snprintf(model_name, sizeof model_name, "%s", name);
    cr_msg *m = assistant_for(r, cs);
    int rc = m ? cr_msg_add_call(m, call_id ? call_id : id, model_name, sb_str(&a)) : -1;
    sb_free(&a);
    return rc < 0 ? OOM(e) : 0;
}

static int items_to_chat(const cJSON *items, gen_req *r, api_error *e) {
    conv_state cs = {0};
    int i = 0, rc = 0;
    for (const cJSON *it = items->child; it && rc == 0; it = it->next, i++) {
        char where[64], path[160];
        jpath_idx(where, sizeof where, "input", i);
        if (!cJSON_IsObject(it)) {
            api_error_set(e, 400, ERRK_INVALID, where, "'%s' must be an object", where);
            rc = -1;
            break;
        }
        const char *type = NULL, *role = NULL;
        if (jget_str(it, "type", where, &type, e) < 0 || jget_str(it, "role", where, &role, e) < 0) {
            rc = -1;
            break;
        }
        if (!type) type = "message";
        if (!strcmp(type, "message")) {
            if (!role) {
                api_error_set(e, 400, ERRK_INVALID, where, "'%s.role' is required", where);
                rc = -1;
                break;
            }
            cr_role cr;
            if (!strcmp(role, "user")) cr = CR_USER;
            else if (!strcmp(role, "assistant")) cr = CR_ASSISTANT;
            else if (!strcmp(role, "system")) cr = CR_SYSTEM;
            else if (!strcmp(role, "developer")) cr = CR_DEVELOPER;
            else {
                api_error_set(e, 400, ERRK_INVALID, where, "'%s.role' has unknown role '%s'", where, role);
                rc = -1;
                break;
            }
            char *text = NULL;
            if (req_content_text(cJSON_GetObjectItemCaseSensitive(it, "content"),
                             jpath_key(path, sizeof path, where, "content"), cr == CR_ASSISTANT ? "" : "\n\n",
                             &text, e) < 0) {
                rc = -1;
                break;
            }
            if (cr == CR_ASSISTANT) {
                cr_msg *m = assistant_for(r, &cs);
                rc = m ? cr_msg_append(m, text ? text : "", "") : -1;
                free(text);
                if (rc < 0) { rc = OOM(e); break; }
            } else {
                cr_msg *m = cr_chat_add(&r->chat, cr, NULL);
                if (!m) { free(text); rc = OOM(e); break; }
                m->content = text;
                cs.asst = NULL;
            }
        } else if (!strcmp(type, "reasoning")) {
            rc = reasoning_item(it, where, &cs, e);
        } else if (!strcmp(type, "function_call") || !strcmp(type, "custom_tool_call")) {
            rc = call_item(it, where, !strcmp(type, "custom_tool_call"), r, &cs, e);
        } else if (!strcmp(type, "function_call_output") || !strcmp(type, "custom_tool_call_output")) {
            const char *call_id = NULL;
            char *text = NULL;
            if (jget_str(it, "call_id", where, &call_id, e) < 0 ||
                req_content_text(cJSON_GetObjectItemCaseSensitive(it, "output"),
                             jpath_key(path, sizeof path, where, "output"), "\n\n", &text, e) < 0) {
                rc = -1;
                break;
            }
            cr_msg *m = cr_chat_add(&r->chat, CR_TOOL, NULL);
            if (!m) { free(text); rc = OOM(e); break; }
            m->content = text;
            if (call_id && !(m->tool_call_id = strdup(call_id))) { rc = OOM(e); break; }
            cs.asst = NULL;
        } else if (!strcmp(type, "item_reference")) {
            api_error_set(e, 400, ERRK_INVALID, where, "item_reference inputs are not supported; send the items");
            rc = -1;
        }
        /* Hosted-tool items (web_search_call, ...) and compaction markers carry
         * nothing the model can use here; they are skipped. */
    }
    free(cs.pending_reasoning);   /* reasoning with no turn after it */
    return rc;
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
        const char *type = NULL;
        if (jget_str(t, "type", where, &type, e) < 0) return -1;
        if (!type) type = "function";
        const cJSON *list = NULL;
        const char *ns = NULL;
        if (!strcmp(type, "namespace")) {
            if (jget_str(t, "name", where, &ns, e) < 0 || jget_arr(t, "tools", where, &list, e) < 0) return -1;
            if (!ns || !list) continue;
        } else if (strcmp(type, "function") && strcmp(type, "custom")) {
            continue;   /* hosted tools (web_search, ...) cannot run here */
        }
        for (const cJSON *f = list ? list->child : t; f; f = list ? f->next : NULL) {
            const char *ftype = NULL, *name = NULL, *desc = NULL;
            const cJSON *params = NULL;
            if (!cJSON_IsObject(f)) continue;
            if (jget_str(f, "type", where, &ftype, e) < 0 || jget_str(f, "name", where, &name, e) < 0 ||
                jget_str(f, "description", where, &desc, e) < 0 ||
                jget_obj(f, "parameters", where, &params, e) < 0)
                return -1;
            if (!ftype) ftype = "function";
            if (!name) {
                api_error_set(e, 400, ERRK_INVALID, where, "'%s.name' is required", where);
                return -1;
            }
            bool custom = !strcmp(ftype, "custom");
            if (!custom && strcmp(ftype, "function")) continue;
            char model_name[512];
            if (ns) snprintf(model_name, sizeof model_name, "%s.%s", ns, name);
            else snprintf(model_name, sizeof model_name, "%s", name);
            cJSON *fn = cJSON_CreateObject();
            cJSON_AddStringToObject(fn, "name", model_name);
            if (desc) cJSON_AddStringToObject(fn, "description", desc);
            if (custom) {
                /* Free-form tools take one raw string. */
                cJSON *p = cJSON_AddObjectToObject(fn, "parameters");
                cJSON_AddStringToObject(p, "type", "object");
                cJSON *props = cJSON_AddObjectToObject(p, "properties");
                cJSON *in = cJSON_AddObjectToObject(props, "input");
                cJSON_AddStringToObject(in, "type", "string");
                cJSON *req = cJSON_AddArrayToObject(p, "required");
                cJSON_AddItemToArray(req, cJSON_CreateString("input"));
            } else if (params) {
                cJSON_AddItemToObject(fn, "parameters", cJSON_Duplicate(params, 1));
            }
            rc = cr_chat_add_tool(&r->chat, fn);
            cJSON_Delete(fn);
            if (rc < 0 || req_add_alias(r, model_name, name, ns, custom) < 0) return OOM(e);
        }
    }
    return 0;
}

/* Request fields echoed in every response object. */
static cJSON *make_echo(const cJSON *body) {
    static const char *const keys[] = {"instructions", "max_output_tokens", "parallel_tool_calls",
                                       "previous_response_id", "temperature", "tool_choice", "tools",
                                       "top_p", "metadata", "text", "reasoning", NULL};
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; keys[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, keys[i]);
        if (v) cJSON_AddItemToObject(o, keys[i], cJSON_Duplicate(v, 1));
    }
    return o;
}

int api_responses_parse(const cJSON *body, gen_req *r, srv_ctx *ctx, api_error *e) {
    static const char *const max_keys[] = {"max_output_tokens", "max_tokens", NULL};
    if (req_parse_sampling(body, r, max_keys, NULL, e) < 0) return -1;
    const char *instr = NULL, *prev = NULL, *key = NULL;
    int rc;
    if (jget_str(body, "instructions", "", &instr, e) < 0) return -1;
    if (jget_str(body, "previous_response_id", "", &prev, e) < 0) return -1;
    if (jget_str(body, "prompt_cache_key", "", &key, e) < 0) return -1;
    const cJSON *conv = cJSON_GetObjectItemCaseSensitive(body, "conversation");
    if (conv && !cJSON_IsNull(conv)) {
        api_error_set(e, 400, ERRK_INVALID, "conversation",
                      "'conversation' is not supported; use previous_response_id or send the full input");
        return -1;
    }
    if (instr && !cr_chat_add(&r->chat, CR_SYSTEM, instr)) return OOM(e);

    r->conversation = cJSON_CreateArray();
    if (!r->conversation) return OOM(e);
    if (prev) {
        char *stored = r->api == API_RESPONSES && ctx->responses ? resp_store_get(ctx->responses, prev) : NULL;
        cJSON *items = stored ? cJSON_Parse(stored) : NULL;
        free(stored);
        if (!items) {
            api_error_set(e, 400, ERRK_INVALID, "previous_response_id",
                          "Previous response with id '%s' not found.", prev);
            return -1;
        }
        for (cJSON *c = items->child; c;) {
            cJSON *next = c->next;
            cJSON_AddItemToArray(r->conversation, cJSON_DetachItemViaPointer(items, c));
            c = next;
        }
        cJSON_Delete(items);
        if (!(r->previous_response_id = strdup(prev))) return OOM(e);
    }
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(body, "input");
    if (cJSON_IsString(input)) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "type", "message");
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", input->valuestring);
        cJSON_AddItemToArray(r->conversation, m);
    } else if (cJSON_IsArray(input)) {
        for (const cJSON *c = input->child; c; c = c->next)
            cJSON_AddItemToArray(r->conversation, cJSON_Duplicate(c, 1));
    } else if (!input || cJSON_IsNull(input)) {
        api_error_set(e, 400, ERRK_INVALID, "input", "'input' is required");
        return -1;
    } else {
        api_error_set(e, 400, ERRK_INVALID, "input", "'input' must be a string or an array of items");
        return -1;
    }
    if (items_to_chat(r->conversation, r, e) < 0) return -1;
    if (parse_tools(body, r, e) < 0) return -1;
    r->tools_active = r->chat.n_tools > 0;
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(body, "tool_choice");
    if (cJSON_IsString(tc)) {
        if (!strcmp(tc->valuestring, "none")) r->tools_active = false;
        else if (strcmp(tc->valuestring, "auto") && strcmp(tc->valuestring, "required")) {
            api_error_set(e, 400, ERRK_INVALID, "tool_choice", "'tool_choice' must be none, auto or required");
            return -1;
        }
    } else if (tc && !cJSON_IsNull(tc) && !cJSON_IsObject(tc)) {
        api_error_set(e, 400, ERRK_INVALID, "tool_choice", "'tool_choice' must be a string or an object");
        return -1;
    }
    const cJSON *reasoning;
    const char *effort = NULL, *summary = NULL;
    if ((rc = jget_obj(body, "reasoning", "", &reasoning, e)) < 0) return -1;
    if (rc && (jget_str(reasoning, "effort", "reasoning", &effort, e) < 0 ||
               jget_str(reasoning, "summary", "reasoning", &summary, e) < 0))
        return -1;
    r->want_summary = summary && strcmp(summary, "none") != 0;
    if (req_parse_thinking(body, r, ctx, effort, "reasoning.effort", false, e) < 0) return -1;
    const cJSON *inc;
    if ((rc = jget_arr(body, "include", "", &inc, e)) < 0) return -1;
    for (const cJSON *x = rc ? inc->child : NULL; x; x = x->next)
        if (cJSON_IsString(x) && !strcmp(x->valuestring, "reasoning.encrypted_content")) r->want_encrypted = true;
    const cJSON *text, *fmt = NULL;
    if ((rc = jget_obj(body, "text", "", &text, e)) < 0) return -1;
    if (rc && jget_obj(text, "format", "text", &fmt, e) < 0) return -1;
    if (fmt) {
        const char *type = NULL;
        if (jget_str(fmt, "type", "text.format", &type, e) < 0) return -1;
        if ((!type || strcmp(type, "text") != 0) && cr_chat_set_response_format(&r->chat, fmt) < 0) return OOM(e);
    }
    bool store;
    if ((rc = jget_bool(body, "store", "", &store, e)) < 0) return -1;
    if (rc) r->store = store;
    if (key && !(r->cache_hint = strdup(key))) return OOM(e);
    if (!(r->echo = make_echo(body))) return OOM(e);
    return 0;
}

/* ---- output ------------------------------------------------------------------- */

static void ev(job *j, const char *type, cJSON *o) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "type", type);
    cJSON_AddNumberToObject(t, "sequence_number", j->st.seq++);
    for (cJSON *c = o ? o->child : NULL; c;) {
        cJSON *next = c->next;
        cJSON_AddItemToObject(t, c->string, cJSON_DetachItemViaPointer(o, c));
        c = next;
    }
    cJSON_Delete(o);
    sse_json(j, type, t);
}

static cJSON *usage(const job *j) {
    cJSON *u = cJSON_CreateObject();
    size_t p = j->result.prompt_tokens, c = j->result.completion_tokens;
    cJSON_AddNumberToObject(u, "input_tokens", (double)p);
    cJSON *d = cJSON_AddObjectToObject(u, "input_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", (double)j->result.cached_tokens);
    cJSON_AddNumberToObject(u, "output_tokens", (double)c);
    d = cJSON_AddObjectToObject(u, "output_tokens_details");
    cJSON_AddNumberToObject(d, "reasoning_tokens", (double)j->reasoning_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(p + c));
    return u;
}

static void copy_echo(cJSON *o, const job *j, const char *key, cJSON *dflt) {
    const cJSON *v = j->req.echo ? cJSON_GetObjectItemCaseSensitive(j->req.echo, key) : NULL;
    if (v) {
        cJSON_AddItemToObject(o, key, cJSON_Duplicate(v, 1));
        cJSON_Delete(dflt);
    } else {
        cJSON_AddItemToObject(o, key, dflt ? dflt : cJSON_CreateNull());
    }
}

static cJSON *response_obj(job *j, const char *status, cJSON *output, bool with_usage) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", "response");
    cJSON_AddNumberToObject(o, "created_at", (double)j->created);
    cJSON_AddStringToObject(o, "status", status);
    cJSON_AddFalseToObject(o, "background");
    if (!strcmp(status, "failed")) {
        cJSON *err = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(err, "code", "server_error");
        char msg[320];
        snprintf(msg, sizeof msg, "generation failed: %s", j->result.error);
        cJSON_AddStringToObject(err, "message", msg);
    } else {
        cJSON_AddNullToObject(o, "error");
    }
    if (!strcmp(status, "incomplete")) {
        cJSON *d = cJSON_AddObjectToObject(o, "incomplete_details");
        cJSON_AddStringToObject(d, "reason", "max_output_tokens");
    } else {
        cJSON_AddNullToObject(o, "incomplete_details");
    }
    copy_echo(o, j, "instructions", NULL);
    copy_echo(o, j, "max_output_tokens", NULL);
    cJSON_AddStringToObject(o, "model", j->req.model);
    cJSON_AddItemToObject(o, "output", output ? output : cJSON_CreateArray());
    copy_echo(o, j, "parallel_tool_calls", cJSON_CreateTrue());
    copy_echo(o, j, "previous_response_id", NULL);
    cJSON *rs = cJSON_CreateObject();
    cJSON_AddItemToObject(rs, "effort", j->req.chat.think == CR_THINK_NONE ? cJSON_CreateString("none")
                                        : j->req.chat.think == CR_THINK_MAX ? cJSON_CreateString("max")
                                                                            : cJSON_CreateString("high"));
    cJSON_AddItemToObject(rs, "summary", j->req.want_summary ? cJSON_CreateString("auto") : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "reasoning", rs);
    cJSON_AddBoolToObject(o, "store", j->req.store);
    copy_echo(o, j, "temperature", cJSON_CreateNumber(1));
    cJSON *text = cJSON_CreateObject();
    cJSON_AddItemToObject(cJSON_AddObjectToObject(text, "format"), "type", cJSON_CreateString("text"));
    copy_echo(o, j, "text", text);
    copy_echo(o, j, "tool_choice", cJSON_CreateString("auto"));
    copy_echo(o, j, "tools", cJSON_CreateArray());
    copy_echo(o, j, "top_p", cJSON_CreateNumber(1));
    cJSON_AddStringToObject(o, "truncation", "disabled");
    if (with_usage) cJSON_AddItemToObject(o, "usage", usage(j));
    else cJSON_AddNullToObject(o, "usage");
    cJSON_AddNullToObject(o, "user");
    copy_echo(o, j, "metadata", cJSON_CreateObject());
    return o;
}

static void resp_begin(job *j) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "response", response_obj(j, "in_progress", NULL, false));
    ev(j, "response.created", o);
    o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "response", response_obj(j, "in_progress", NULL, false));
    ev(j, "response.in_progress", o);
}

static cJSON *reasoning_item_obj(job *j, const char *status) {
    cJSON *it = cJSON_CreateObject();
    cJSON_AddStringToObject(it, "id", j->st.rs_id);
    cJSON_AddStringToObject(it, "type", "reasoning");
    cJSON *sum = cJSON_AddArrayToObject(it, "summary");
    const char *text = sb_str(&j->gen.reasoning);
    if (j->req.want_summary) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "type", "summary_text");
        cJSON_AddStringToObject(p, "text", text);
        cJSON_AddItemToArray(sum, p);
    }
    cJSON *content = cJSON_AddArrayToObject(it, "content");
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "reasoning_text");
    cJSON_AddStringToObject(p, "text", text);
    cJSON_AddItemToArray(content, p);
    if (j->req.want_encrypted) {
        char *enc = enc_reasoning(text, j->gen.reasoning.n);
        cJSON_AddStringToObject(it, "encrypted_content", enc ? enc : "");
        free(enc);
    }
    if (status) cJSON_AddStringToObject(it, "status", status);
    return it;
}

static cJSON *message_item_obj(job *j, const char *status) {
    cJSON *it = cJSON_CreateObject();
    cJSON_AddStringToObject(it, "id", j->st.msg_id);
    cJSON_AddStringToObject(it, "type", "message");
    cJSON_AddStringToObject(it, "status", status);
    cJSON_AddStringToObject(it, "role", "assistant");
    cJSON *content = cJSON_AddArrayToObject(it, "content");
    /* An item being opened has no parts yet; a finished one always has its text. */
    if (strcmp(status, "in_progress") != 0) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "type", "output_text");
        cJSON_AddStringToObject(p, "text", sb_str(&j->gen.content));
        cJSON_AddArrayToObject(p, "annotations");
        cJSON_AddArrayToObject(p, "logprobs");
        cJSON_AddItemToArray(content, p);
    }
    return it;
}

static cJSON *part(const char *type, const char *text) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", type);
    cJSON_AddStringToObject(p, "text", text);
    if (!strcmp(type, "output_text")) {
        cJSON_AddArrayToObject(p, "annotations");
        cJSON_AddArrayToObject(p, "logprobs");
    }
    return p;
}

static cJSON *item_ev(job *j, int index, const char *id) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "item_id", id);
    cJSON_AddNumberToObject(o, "output_index", index);
    (void)j;
    return o;
}

static void open_reasoning(job *j) {
    http_make_id(j->st.rs_id, sizeof j->st.rs_id, "rs_", 24);
    j->st.rs_index = j->st.next_index++;
    j->st.had_reasoning_item = true;
    cJSON *it = cJSON_CreateObject();
    cJSON_AddStringToObject(it, "id", j->st.rs_id);
    cJSON_AddStringToObject(it, "type", "reasoning");
    cJSON_AddArrayToObject(it, "summary");
    cJSON_AddArrayToObject(it, "content");
    cJSON_AddStringToObject(it, "status", "in_progress");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "output_index", j->st.rs_index);
    cJSON_AddItemToObject(o, "item", it);
    ev(j, "response.output_item.added", o);
    o = item_ev(j, j->st.rs_index, j->st.rs_id);
    if (j->req.want_summary) {
        cJSON_AddNumberToObject(o, "summary_index", 0);
        cJSON_AddItemToObject(o, "part", part("summary_text", ""));
        ev(j, "response.reasoning_summary_part.added", o);
    } else {
        cJSON_AddNumberToObject(o, "content_index", 0);
        cJSON_AddItemToObject(o, "part", part("reasoning_text", ""));
        ev(j, "response.content_part.added", o);
    }
    j->st.open_kind = 1;
}

static void close_reasoning(job *j, bool complete) {
    const char *text = sb_str(&j->gen.reasoning);
    cJSON *o = item_ev(j, j->st.rs_index, j->st.rs_id);
    if (j->req.want_summary) {
        cJSON_AddNumberToObject(o, "summary_index", 0);
        cJSON_AddStringToObject(o, "text", text);
        ev(j, "response.reasoning_summary_text.done", o);
        o = item_ev(j, j->st.rs_index, j->st.rs_id);
        cJSON_AddNumberToObject(o, "summary_index", 0);
        cJSON_AddItemToObject(o, "part", part("summary_text", text));
        ev(j, "response.reasoning_summary_part.done", o);
    } else {
        cJSON_AddNumberToObject(o, "content_index", 0);
        cJSON_AddStringToObject(o, "text", text);
        ev(j, "response.reasoning_text.done", o);
        o = item_ev(j, j->st.rs_index, j->st.rs_id);
        cJSON_AddNumberToObject(o, "content_index", 0);
        cJSON_AddItemToObject(o, "part", part("reasoning_text", text));
        ev(j, "response.content_part.done", o);
    }
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "output_index", j->st.rs_index);
    cJSON_AddItemToObject(o, "item", reasoning_item_obj(j, complete ? "completed" : "incomplete"));
    ev(j, "response.output_item.done", o);
    j->st.open_kind = 0;
}

static void open_message(job *j) {
    http_make_id(j->st.msg_id, sizeof j->st.msg_id, "msg_", 24);
    j->st.msg_index = j->st.next_index++;
    j->st.had_message_item = true;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "output_index", j->st.msg_index);
    cJSON_AddItemToObject(o, "item", message_item_obj(j, "in_progress"));
    ev(j, "response.output_item.added", o);
    o = item_ev(j, j->st.msg_index, j->st.msg_id);
    cJSON_AddNumberToObject(o, "content_index", 0);
    cJSON_AddItemToObject(o, "part", part("output_text", ""));
    ev(j, "response.content_part.added", o);
    j->st.open_kind = 2;
}

static void close_message(job *j, const char *status) {
    const char *text = sb_str(&j->gen.content);
    cJSON *o = item_ev(j, j->st.msg_index, j->st.msg_id);
    cJSON_AddNumberToObject(o, "content_index", 0);
    cJSON_AddStringToObject(o, "text", text);
    cJSON_AddArrayToObject(o, "logprobs");
    ev(j, "response.output_text.done", o);
    o = item_ev(j, j->st.msg_index, j->st.msg_id);
    cJSON_AddNumberToObject(o, "content_index", 0);
    cJSON_AddItemToObject(o, "part", part("output_text", text));
    ev(j, "response.content_part.done", o);
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "output_index", j->st.msg_index);
    cJSON_AddItemToObject(o, "item", message_item_obj(j, status));
    ev(j, "response.output_item.done", o);
    j->st.open_kind = 0;
}

static void resp_reasoning(job *j, const char *s, size_t n) {
    if (!j->req.stream || !n) return;
    if (!j->st.had_reasoning_item) open_reasoning(j);
    cJSON *o = item_ev(j, j->st.rs_index, j->st.rs_id);
    char *t = strndup(s, n);
    if (j->req.want_summary) {
        cJSON_AddNumberToObject(o, "summary_index", 0);
        cJSON_AddStringToObject(o, "delta", t ? t : "");
        ev(j, "response.reasoning_summary_text.delta", o);
    } else {
        cJSON_AddNumberToObject(o, "content_index", 0);
        cJSON_AddStringToObject(o, "delta", t ? t : "");
        ev(j, "response.reasoning_text.delta", o);
    }
    free(t);
}

static void resp_content(job *j, const char *s, size_t n) {
    if (!j->req.stream || !n) return;
    if (j->st.open_kind == 1) close_reasoning(j, true);
    if (!j->st.had_message_item) open_message(j);
    cJSON *o = item_ev(j, j->st.msg_index, j->st.msg_id);
    char *t = strndup(s, n);
    cJSON_AddNumberToObject(o, "content_index", 0);
    cJSON_AddStringToObject(o, "delta", t ? t : "");
    cJSON_AddArrayToObject(o, "logprobs");
    free(t);
    ev(j, "response.output_text.delta", o);
}

/* Tool call items with fresh ids (registered for exact replay). */
static cJSON *call_items(job *j) {
    size_t n = gen_text_n_calls(&j->gen);
    cJSON *arr = cJSON_CreateArray();
    if (!n) return arr;
    char (*ids)[48] = calloc(n, sizeof *ids);
    const char **idp = calloc(n, sizeof *idp);
    for (size_t i = 0; i < n; i++) {
        const dsml_call *c = &j->gen.dsml.calls[i];
        const tool_alias *al = req_alias(&j->req, c->name);
        char item_id[48], call_id[48];
        http_make_id(item_id, sizeof item_id, al && al->custom ? "ctc_" : "fc_", 24);
        http_make_id(call_id, sizeof call_id, "call_", 24);
        if (ids && idp) {
            memcpy(ids[i], call_id, sizeof call_id);
            idp[i] = ids[i];
        }
        cJSON *it = cJSON_CreateObject();
        cJSON_AddStringToObject(it, "id", item_id);
        cJSON_AddStringToObject(it, "type", al && al->custom ? "custom_tool_call" : "function_call");
        cJSON_AddStringToObject(it, "status", "completed");
        cJSON_AddStringToObject(it, "call_id", call_id);
        cJSON_AddStringToObject(it, "name", al ? al->wire_name : c->name);
        if (al && al->ns) cJSON_AddStringToObject(it, "namespace", al->ns);
        if (al && al->custom) {
            cJSON *args = cJSON_Parse(c->args);
            const cJSON *in = cJSON_GetObjectItemCaseSensitive(args, "input");
            cJSON_AddStringToObject(it, "input", cJSON_IsString(in) ? in->valuestring : c->args);
            cJSON_Delete(args);
        } else {
            cJSON_AddStringToObject(it, "arguments", c->args);
        }
        cJSON_AddItemToArray(arr, it);
    }
    if (ids && idp) job_remember_calls(j, idp, n);
    free(ids);
    free(idp);
    return arr;
}

static void store_conversation(job *j, const cJSON *output) {
    if (!j->req.store || !j->ctx->responses || !j->req.conversation) return;
    cJSON *conv = cJSON_Duplicate(j->req.conversation, 1);
    for (const cJSON *c = output ? output->child : NULL; c; c = c->next) {
        cJSON *it = cJSON_Duplicate(c, 1);
        /* Keep the exact reasoning for replay even without include. */
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
        if (cJSON_IsString(type) && !strcmp(type->valuestring, "reasoning") &&
            !cJSON_GetObjectItemCaseSensitive(it, "encrypted_content")) {
            char *enc = enc_reasoning(sb_str(&j->gen.reasoning), j->gen.reasoning.n);
            if (enc) cJSON_AddStringToObject(it, "encrypted_content", enc);
            free(enc);
        }
        cJSON_AddItemToArray(conv, it);
    }
    strbuf b = STRBUF_INIT;
    json_print_compact(&b, conv);
    cJSON_Delete(conv);
    if (!b.oom) resp_store_put(j->ctx->responses, j->id, sb_str(&b), b.n);
    sb_free(&b);
}

static void resp_finish(job *j) {
    const bool failed = j->result.finish == FP_FINISH_ERROR;
    const bool incomplete = !failed && !gen_text_n_calls(&j->gen) && j->result.finish == FP_FINISH_LENGTH &&
                            !j->gen.stopped;
    const char *status = failed ? "failed" : incomplete ? "incomplete" : "completed";
    const bool think_done = j->gen.think_closed || j->req.chat.think == CR_THINK_NONE;
    cJSON *calls = failed ? cJSON_CreateArray() : call_items(j);

    if (!j->req.stream) {
        if (failed) {
            cJSON_Delete(calls);
            api_error e;
            api_error_set(&e, 500, ERRK_SERVER, NULL, "generation failed: %s", j->result.error);
            job_set_error_body(j, &e);
            return;
        }
        cJSON *out = cJSON_CreateArray();
        if (j->gen.reasoning.n) {
            http_make_id(j->st.rs_id, sizeof j->st.rs_id, "rs_", 24);
            cJSON_AddItemToArray(out, reasoning_item_obj(j, think_done ? "completed" : "incomplete"));
        }
        if (j->gen.content.n || !cJSON_GetArraySize(calls)) {
            http_make_id(j->st.msg_id, sizeof j->st.msg_id, "msg_", 24);
            cJSON_AddItemToArray(out, message_item_obj(j, incomplete ? "incomplete" : "completed"));
        }
        for (cJSON *c = calls->child; c;) {
            cJSON *next = c->next;
            cJSON_AddItemToArray(out, cJSON_DetachItemViaPointer(calls, c));
            c = next;
        }
        cJSON_Delete(calls);
        store_conversation(j, out);
        job_set_body(j, 200, response_obj(j, status, out, true));
        return;
    }
    if (j->st.open_kind == 1) close_reasoning(j, think_done);
    if (j->st.had_message_item) close_message(j, incomplete ? "incomplete" : "completed");
    else if (!failed && !cJSON_GetArraySize(calls)) {
        open_message(j);
        close_message(j, incomplete ? "incomplete" : "completed");
    }
    for (cJSON *c = calls->child; c; c = c->next) {
        const int index = j->st.next_index++;
        const char *item_id = cJSON_GetObjectItemCaseSensitive(c, "id")->valuestring;
        const bool custom = !strcmp(cJSON_GetObjectItemCaseSensitive(c, "type")->valuestring, "custom_tool_call");
        const char *field = custom ? "input" : "arguments";
        const char *value = cJSON_GetObjectItemCaseSensitive(c, field)->valuestring;
        cJSON *added = cJSON_Duplicate(c, 1);
        cJSON_ReplaceItemInObject(added, "status", cJSON_CreateString("in_progress"));
        cJSON_ReplaceItemInObject(added, field, cJSON_CreateString(""));
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "output_index", index);
        cJSON_AddItemToObject(o, "item", added);
        ev(j, "response.output_item.added", o);
        o = item_ev(j, index, item_id);
        cJSON_AddStringToObject(o, "delta", value);
        ev(j, custom ? "response.custom_tool_call_input.delta" : "response.function_call_arguments.delta", o);
        o = item_ev(j, index, item_id);
        if (!custom) cJSON_AddStringToObject(o, "name", cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring);
        cJSON_AddStringToObject(o, field, value);
        ev(j, custom ? "response.custom_tool_call_input.done" : "response.function_call_arguments.done", o);
        o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "output_index", index);
        cJSON_AddItemToObject(o, "item", cJSON_Duplicate(c, 1));
        ev(j, "response.output_item.done", o);
    }
    /* The final response lists every item in output_index order. */
    cJSON *out = cJSON_CreateArray();
    if (j->st.had_reasoning_item) cJSON_AddItemToArray(out, reasoning_item_obj(j, think_done ? "completed" : "incomplete"));
    if (j->st.had_message_item) cJSON_AddItemToArray(out, message_item_obj(j, incomplete ? "incomplete" : "completed"));
    for (cJSON *c = calls->child; c;) {
        cJSON *next = c->next;
        cJSON_AddItemToArray(out, cJSON_DetachItemViaPointer(calls, c));
        c = next;
    }
    cJSON_Delete(calls);
    if (!failed) store_conversation(j, out);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "response", response_obj(j, status, out, true));
    ev(j, failed ? "response.failed" : incomplete ? "response.incomplete" : "response.completed", o);
}

const api_ops API_RESPONSES_OPS = {
    SHAPE_OPENAI, resp_begin, resp_reasoning, resp_content, resp_finish, ": keep-alive\n\n", NULL,
};
