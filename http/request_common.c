/* request_common.c — request pieces shared by the four APIs: sampling and
 * length fields, stop lists, thinking-mode selection (serving-spec 4.4),
 * content flattening, tool-name aliases, and job_prepare (exact-replay
 * attachment, rendering, tokenizing, context checks, sampler settings). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "api.h"
#include "json_util.h"
#include "tool_replay.h"

void gen_req_init(gen_req *r, api_kind api) {
    memset(r, 0, sizeof *r);
    r->api = api;
    cr_chat_init(&r->chat);
    r->temperature = 1.0f;
    r->top_p = 1.0f;
    r->min_p = 0.05f;
    r->max_tokens = -1;
    r->store = true;
}

void gen_req_free(gen_req *r) {
    cr_chat_free(&r->chat);
    free(r->model);
    for (size_t i = 0; i < r->n_aliases; i++) {
        free(r->aliases[i].model_name);
        free(r->aliases[i].wire_name);
        free(r->aliases[i].ns);
    }
    free(r->aliases);
    for (size_t i = 0; i < r->n_stops; i++) free(r->stops[i]);
    free(r->stops);
    free(r->cache_hint);
    free(r->instructions);
    free(r->previous_response_id);
    cJSON_Delete(r->conversation);
    cJSON_Delete(r->echo);
    memset(r, 0, sizeof *r);
}

static int range_check(double v, double lo, double hi, const char *name, api_error *e) {
    if (isnan(v) || v < lo || v > hi) {
        api_error_set(e, 400, ERRK_INVALID, name, "'%s' must be between %g and %g", name, lo, hi);
        return -1;
    }
    return 0;
}

static int add_stop(gen_req *r, const char *s, api_error *e, const char *param) {
    if (!s[0]) return 0;   /* empty stop strings are ignored */
    if (strlen(s) > 1024) {
        api_error_set(e, 400, ERRK_INVALID, param, "stop sequences are limited to 1024 bytes");
        return -1;
    }
    if (r->n_stops >= 64) {
        api_error_set(e, 400, ERRK_INVALID, param, "at most 64 stop sequences are supported");
        return -1;
    }
    char **n = realloc(r->stops, (r->n_stops + 1) * sizeof *n);
    if (!n) { api_error_set(e, 500, ERRK_SERVER, NULL, "out of memory"); return -1; }
    r->stops = n;
    if (!(r->stops[r->n_stops] = strdup(s))) { api_error_set(e, 500, ERRK_SERVER, NULL, "out of memory"); return -1; }
    r->n_stops++;
    return 0;
}

int req_parse_sampling(const cJSON *body, gen_req *r, const char *const *max_keys,
                       const char *stop_key, api_error *e) {
    double d;
    long long ll;
    bool b;
    int rc;
    if ((rc = jget_num(body, "temperature", "", &d, e)) < 0) return -1;
    if (rc && range_check(d, 0, 2, "temperature", e) < 0) return -1;
    if (rc) r->temperature = (float)d;
    if ((rc = jget_num(body, "top_p", "", &d, e)) < 0) return -1;
    if (rc && range_check(d, 0, 1, "top_p", e) < 0) return -1;
    if (rc) r->top_p = d > 0 ? (float)d : 1.0f;
    if ((rc = jget_num(body, "min_p", "", &d, e)) < 0) return -1;
    if (rc && range_check(d, 0, 1, "min_p", e) < 0) return -1;
    if (rc) r->min_p = (float)d;
    if ((rc = jget_int(body, "top_k", "", &ll, e)) < 0) return -1;
    if (rc && (ll < 0 || ll > 1000000)) {
        api_error_set(e, 400, ERRK_INVALID, "top_k", "'top_k' must be a non-negative integer");
        return -1;
    }
    if (rc) r->top_k = (int)ll;
    if ((rc = jget_int(body, "seed", "", &ll, e)) < 0) return -1;
    if (rc) { r->seed = (uint64_t)ll; r->seed_set = ll != 0; }
    for (int i = 0; max_keys && max_keys[i]; i++) {
        if ((rc = jget_int(body, max_keys[i], "", &ll, e)) < 0) return -1;
        if (!rc) continue;
        if (ll < 0) {
            api_error_set(e, 400, ERRK_INVALID, max_keys[i], "'%s' must not be negative", max_keys[i]);
            return -1;
        }
        r->max_tokens = ll;
        break;
    }
    if ((rc = jget_bool(body, "stream", "", &b, e)) < 0) return -1;
    if (rc) r->stream = b;
    const cJSON *so;
    if ((rc = jget_obj(body, "stream_options", "", &so, e)) < 0) return -1;
    if (rc && jget_bool(so, "include_usage", "stream_options", &b, e) < 0) return -1;
    if (rc && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"))) r->include_usage = true;
    if (stop_key) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(body, stop_key);
        if (st && !cJSON_IsNull(st)) {
            if (cJSON_IsString(st)) {
                if (add_stop(r, st->valuestring, e, stop_key) < 0) return -1;
            } else if (cJSON_IsArray(st)) {
                int i = 0;
                for (const cJSON *x = st->child; x; x = x->next, i++) {
                    char path[64];
                    if (!cJSON_IsString(x)) {
                        api_error_set(e, 400, ERRK_INVALID, jpath_idx(path, sizeof path, stop_key, i),
                                      "'%s' must be a string", path);
                        return -1;
                    }
                    if (add_stop(r, x->valuestring, e, stop_key) < 0) return -1;
                }
            } else {
                api_error_set(e, 400, ERRK_INVALID, stop_key,
                              "'%s' must be a string or an array of strings", stop_key);
                return -1;
            }
        }
    }
    const char *model;
    if ((rc = jget_str(body, "model", "", &model, e)) < 0) return -1;
    if (rc && !(r->model = strdup(model))) { api_error_set(e, 500, ERRK_SERVER, NULL, "out of memory"); return -1; }
    return 0;
}

int req_parse_thinking(const cJSON *body, gen_req *r, const srv_ctx *ctx, const char *effort,
                       const char *effort_param, bool allow_think_field, api_error *e) {
    bool enabled = ctx->default_think != CR_THINK_NONE, explicit_ = false, is_max = false;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "thinking");
    if (t && !cJSON_IsNull(t)) {
        if (cJSON_IsBool(t)) {
            enabled = cJSON_IsTrue(t);
            explicit_ = true;
        } else if (cJSON_IsObject(t)) {
            const char *type = NULL;
            if (jget_str(t, "type", "thinking", &type, e) < 0) return -1;
            /* "adaptive" (Claude Code) and unknown types leave the default. */
            if (type && strcmp(type, "enabled") == 0) { enabled = true; explicit_ = true; }
            else if (type && strcmp(type, "disabled") == 0) { enabled = false; explicit_ = true; }
        } else {
            api_error_set(e, 400, ERRK_INVALID, "thinking", "'thinking' must be a boolean or an object");
            return -1;
        }
    }
    if (allow_think_field) {
        bool b;
        int rc = jget_bool(body, "think", "", &b, e);
        if (rc < 0) return -1;
        if (rc) { enabled = b; explicit_ = true; }
    }
    if (effort) {
        static const char *const known[] = {"none", "minimal", "low", "medium", "high", "xhigh", "max"};
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof *known; i++) ok |= strcmp(effort, known[i]) == 0;
        if (!ok) {
            api_error_set(e, 400, ERRK_INVALID, effort_param,
                          "'%s' must be one of none, minimal, low, medium, high, xhigh, max", effort_param);
            return -1;
        }
        /* An effort asks for thinking unless thinking was switched off explicitly. */
        if (strcmp(effort, "none") == 0) enabled = false;
        else if (!explicit_) enabled = true;
        is_max = strcmp(effort, "max") == 0;
        if (r->api == API_RESPONSES) explicit_ = true;
    } else {
        is_max = ctx->default_think == CR_THINK_MAX;
    }
    if (!explicit_ && r->model) {
        if (strcmp(r->model, "deepseek-chat") == 0) enabled = false;
        else if (strcmp(r->model, "deepseek-reasoner") == 0) enabled = true;
    }
    if (!enabled) r->chat.think = CR_THINK_NONE;
    /* Think Max needs a long context (serving-spec 2.1). */
    else if (is_max && ctx->backend->n_ctx >= 393216)
        r->chat.think = CR_THINK_MAX;
    else r->chat.think = CR_THINK_HIGH;
    return 0;
}

int req_add_alias(gen_req *r, const char *model_name, const char *wire_name, const char *ns, bool custom) {
    tool_alias *a = realloc(r->aliases, (r->n_aliases + 1) * sizeof *a);
    if (!a) return -1;
    r->aliases = a;
    tool_alias *x = &a[r->n_aliases];
    x->model_name = strdup(model_name);
    x->wire_name = strdup(wire_name);
    x->ns = ns ? strdup(ns) : NULL;
    x->custom = custom;
    if (!x->model_name || !x->wire_name || (ns && !x->ns)) {
        free(x->model_name);
        free(x->wire_name);
        free(x->ns);
        return -1;
    }
    r->n_aliases++;
    return 0;
}

const tool_alias *req_alias(const gen_req *r, const char *model_name) {
    for (size_t i = 0; i < r->n_aliases; i++)
        if (strcmp(r->aliases[i].model_name, model_name) == 0) return &r->aliases[i];
    return NULL;
}

int req_content_text(const cJSON *v, const char *where, const char *sep, char **out, api_error *e) {
    *out = NULL;
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsString(v)) {
        if (!(*out = strdup(v->valuestring))) goto oom;
        return 0;
    }
    if (!cJSON_IsArray(v)) {
        api_error_set(e, 400, ERRK_INVALID, where, "'%s' must be a string or an array of content parts", where);
        return -1;
    }
    strbuf b = STRBUF_INIT;
    int i = 0, first = 1;
    for (const cJSON *p = v->child; p; p = p->next, i++) {
        char path[160];
        jpath_idx(path, sizeof path, where, i);
        const char *text = NULL, *type = NULL;
        if (cJSON_IsString(p)) {
            text = p->valuestring;
        } else if (cJSON_IsObject(p)) {
            if (jget_str(p, "type", path, &type, e) < 0 || jget_str(p, "text", path, &text, e) < 0) {
                sb_free(&b);
                return -1;
            }
            if (type && !text && strcmp(type, "text") != 0 && strcmp(type, "input_text") != 0 &&
                strcmp(type, "output_text") != 0) {
                /* Images, files, audio: the model cannot see them; say so. */
                if (!first && sep) sb_puts(&b, sep);
                first = 0;
                sb_printf(&b, "[Unsupported %s]", type);
                continue;
            }
            if (!text) {
                api_error_set(e, 400, ERRK_INVALID, path, "'%s' must have a 'text' string", path);
                sb_free(&b);
                return -1;
            }
        } else {
            api_error_set(e, 400, ERRK_INVALID, path, "'%s' must be a content part object", path);
            sb_free(&b);
            return -1;
        }
        if (!first && sep) sb_puts(&b, sep);
        first = 0;
        sb_puts(&b, text);
    }
    if (b.oom) { sb_free(&b); goto oom; }
    *out = sb_steal(&b);
    return 0;
oom:
    api_error_set(e, 500, ERRK_SERVER, NULL, "out of memory");
    return -1;
}

/* ---- job preparation ------------------------------------------------------ */

static void sink_reasoning(void *ud, const char *s, size_t n) {
    job *j = ud;
    if (j->ops->on_reasoning) j->ops->on_reasoning(j, s, n);
}

static void sink_content(void *ud, const char *s, size_t n) {
    job *j = ud;
    if (j->ops->on_content) j->ops->on_content(j, s, n);
}

static void attach_replays(job *j) {
    if (!j->ctx->replay) return;
    cr_chat *c = &j->req.chat;
    for (size_t i = 0; i < c->n; i++) {
        cr_msg *m = &c->msgs[i];
        if (m->role != CR_ASSISTANT || !m->n_calls || m->replay) continue;
        const char **ids = malloc(m->n_calls * sizeof *ids);
        if (!ids) continue;
        size_t k;
        for (k = 0; k < m->n_calls && m->calls[k].id; k++) ids[k] = m->calls[k].id;
        if (k == m->n_calls) m->replay = tool_replay_get(j->ctx->replay, ids, k);
        free(ids);
    }
}

int job_prepare(job *j, api_error *e) {
    gen_req *r = &j->req;
    srv_ctx *ctx = j->ctx;
    char err[256];
    if (!r->tools_active) {
        for (size_t i = 0; i < r->chat.n_tools; i++) free(r->chat.tools[i]);
        r->chat.n_tools = 0;
    }
    attach_replays(j);
    if (r->api != API_COMPLETIONS || j->prompt.n_segs == 0) {
        if (cr_render(&r->chat, &j->prompt, err, sizeof err) < 0) {
            api_error_set(e, 500, ERRK_SERVER, NULL, "%s", err);
            return -1;
        }
    }
    /* The tokenizer is safe to share between threads. */
    int rc = cr_tokenize(&j->prompt, ctx->tok, &ctx->sp, &j->ids, err, sizeof err);
    if (rc < 0) {
        api_error_set(e, 500, ERRK_SERVER, NULL, "%s", err);
        return -1;
    }
    const size_t n_ctx = ctx->backend->n_ctx;
    if (j->ids.n >= n_ctx && !j->count_only) {
        api_error_set(e, 400, ERRK_CONTEXT,
                      r->api == API_RESPONSES ? "input" : r->api == API_COMPLETIONS ? "prompt" : "messages",
                      "Prompt has %zu tokens, but the configured context size is %zu tokens",
                      j->ids.n, n_ctx);
        e->n_prompt = (long long)j->ids.n;
        e->n_ctx = (long long)n_ctx;
        return -1;
    }
    long long room = j->ids.n < n_ctx ? (long long)(n_ctx - j->ids.n) : 0;
    long long max = r->max_tokens < 0 ? room : (r->max_tokens < room ? r->max_tokens : room);
    if (max > 0x7fffffff) max = 0x7fffffff;

    fp_gen_request *g = &j->gen_request;
    memset(g, 0, sizeof *g);
    g->prompt = j->ids.ids;
    g->n_prompt = j->ids.n;
    g->max_tokens = (int)max;
    if (r->chat.think != CR_THINK_NONE) {
        /* Thinking mode uses the model's recommended sampler; client
         * sampling fields are ignored (as the reference and the official
         * API do). */
        g->sampling = (fp_sampling){1.0f, 1.0f, 0.05f, 0, 0};
    } else {
        g->sampling = (fp_sampling){r->temperature, r->top_p, r->min_p, r->top_k, 0};
    }
    if (r->seed_set) g->sampling.seed = r->seed;
    else if (RAND_bytes((unsigned char *)&g->sampling.seed, sizeof g->sampling.seed) != 1)
        g->sampling.seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)j;
    j->stop_ids[0] = ctx->sp.id[CR_SP_EOS];
    g->stop_ids = j->stop_ids;
    g->n_stop_ids = 1;
    g->cache_hint = r->cache_hint;

    gen_sink sink = {j, sink_reasoning, sink_content};
    gen_text_init(&j->gen, j->prompt.gen_in_thinking, r->tools_active && r->chat.n_tools > 0,
                  r->stops, r->n_stops, &sink);
    if (r->api == API_COMPLETIONS) j->gen.raw = true;
    return 0;
}

const char *job_finish_reason(const job *j) {
    if (gen_text_n_calls(&j->gen)) return "tool_calls";
    if (j->result.finish == FP_FINISH_LENGTH && !j->gen.stopped) return "length";
    return "stop";
}

void job_remember_calls(job *j, const char *const *ids, size_t n) {
    if (!j->ctx->replay || !n || !j->gen.dsml.done) return;
    const strbuf *raw = &j->gen.dsml.raw;
    tool_replay_put(j->ctx->replay, ids, n, raw->s ? raw->s : "", raw->n);
}
