/* backend_scripted.c — TEST-ONLY generation backend: no model, it replays a
 * scripted reply chosen from the prompt text, tokenized with the real GGUF
 * tokenizer, so API tests exercise everything after the sampler (reasoning
 * split, DSML tool calls, stop sequences, SSE, usage, cancellation).
 *
 * Directives, looked up in the last user turn of the prompt:
 *   (none)          "Hello from the scripted backend."
 *   [[tool]]        a DSML call of the first declared tool (or "get_weather")
 *                   with city="Paris & \"Lyon\"" (string) and days=3 (JSON, written
 *                   " 3 " so the exact sampled bytes differ from the canonical
 *                   rendering: tests can tell exact replay from re-rendering)
 *   [[stop]]        "one two STOP three four" (for stop-sequence tests)
 *   [[long N]]      N tokens of filler (cancellation / keep-alive tests)
 *   [[unicode]]     multi-byte text that splits across tokens
 *   [[error]]       two tokens, then a backend error
 *   [[slow MS]]     (with any of the above) sleep MS per generated token
 *   [[think-dsml]]  a DSML block inside the reasoning, then plain text
 *   [[call NAME KEY=VALUE]]  a DSML call of tool NAME with one string parameter
 *                   KEY=VALUE (VALUE runs to "]]"), so real agents (tests/agents)
 *                   get a call their own tool accepts; no quotes in the syntax
 *                   because some clients (opencode) JSON-escape the user's text
 *   a tool result   "The tool said: <its text>" (when the turn holds <tool_result>)
 * When the prompt ends with <think>, the reply starts with the reasoning
 * "Thinking it over." closed by </think>. Generation ends as if EOS was sampled.
 * The last prompt+reply is remembered to report cached_tokens like a live KV
 * session would. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "backend.h"
#include "chat_render.h"
#include "strbuf.h"
#include "tokenizer.h"

typedef struct scripted {
    const tokenizer *tok;
    fp_scripted_opts o;
    int32_t sp[CR_SP_COUNT];
    int32_t *live;            /* last prompt + generated ids */
    size_t n_live;
} scripted;

static void sleep_ms(int ms) {
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Tokenizes text where the seven control strings are control tokens. */
static int encode_script(scripted *s, const char *text, tok_ids *out) {
    size_t n = strlen(text), i = 0, start = 0;
    while (i < n) {
        int hit = -1;
        for (int k = 0; k < CR_SP_COUNT; k++) {
            const char *str = cr_special_str((cr_special)k);
            if (strncmp(text + i, str, strlen(str)) == 0) { hit = k; break; }
        }
        if (hit < 0) { i++; continue; }
        if (i > start && tokenizer_encode(s->tok, text + start, i - start, out) < 0) return -1;
        if (tok_ids_push(out, s->sp[hit]) < 0) return -1;
        i += strlen(cr_special_str((cr_special)hit));
        start = i;
    }
    if (n > start && tokenizer_encode(s->tok, text + start, n - start, out) < 0) return -1;
    return 0;
}

/* First tool name in the prompt's schema list, or NULL. */
static char *first_tool_name(const char *prompt) {
    const char *h = strstr(prompt, "### Available Tool Schemas\n\n");
    if (!h) return NULL;
    h += strlen("### Available Tool Schemas\n\n");
    const char *e = strchr(h, '\n');
    if (!e) return NULL;
    cJSON *j = cJSON_ParseWithLength(h, (size_t)(e - h));
    char *name = NULL;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (cJSON_IsString(n)) name = strdup(n->valuestring);
    cJSON_Delete(j);
    return name;
}

/* "[[call NAME KEY=VALUE]]" at p: appends the DSML call; false when malformed
 * (then the caller falls through to the other directives). */
static bool script_call(const char *p, const char *D, strbuf *out) {
    p += strlen("[[call ");
    const char *sp = strchr(p, ' '), *eq = sp ? strchr(sp + 1, '=') : NULL;
    const char *end = eq ? strstr(eq, "]]") : NULL;
    if (!end || sp == p || sp - p > 128 || eq == sp + 1 || memchr(sp + 1, ']', (size_t)(eq - sp - 1)))
        return false;
    sb_printf(out,
              "Running the tool.\n\n<%stool_calls>\n<%sinvoke name=\"%.*s\">\n"
              "<%sparameter name=\"%.*s\" string=\"true\">%.*s</%sparameter>\n"
              "</%sinvoke>\n</%stool_calls>",
              D, D, (int)(sp - p), p, D, (int)(eq - sp - 1), sp + 1, (int)(end - eq - 1), eq + 1, D, D,
              D);
    return true;
}

static void build_script(const char *prompt, strbuf *out, int *error_after, int *delay_ms) {
    const char *U = cr_special_str(CR_SP_USER), *A = cr_special_str(CR_SP_ASSISTANT);
    const char *think = cr_special_str(CR_SP_THINK), *think_end = cr_special_str(CR_SP_THINK_END);
    const char *last_u = prompt, *p;
    for (p = prompt; (p = strstr(p, U)) != NULL; p += strlen(U)) last_u = p;
    const char *last_a = strstr(last_u, A);
    size_t turn_len = last_a ? (size_t)(last_a - last_u) : strlen(last_u);
    char *turn = strndup(last_u, turn_len);
    size_t plen = strlen(prompt);
    const bool thinking = plen >= strlen(think) && strcmp(prompt + plen - strlen(think), think) == 0;
    *error_after = -1;
    const char *slow = turn ? strstr(turn, "[[slow ") : NULL;
    if (slow) *delay_ms = atoi(slow + 7);

    if (thinking) {
        sb_puts(out, "Thinking it over.");
        if (turn && strstr(turn, "[[think-dsml]]"))
            sb_printf(out, "\n\n<%sDSML%stool_calls>\n</%sDSML%stool_calls>", "\xEF\xBD\x9C",
                      "\xEF\xBD\x9C", "\xEF\xBD\x9C", "\xEF\xBD\x9C");
        sb_puts(out, think_end);
    }
    const char *D = cr_special_str(CR_SP_DSML);
    if (!turn) {
        sb_puts(out, "Hello from the scripted backend.");
    } else if ((p = strstr(turn, "[[call ")) != NULL && !strstr(turn, "<tool_result>") &&
               script_call(p, D, out)) {
        /* done: the call */
    } else if (strstr(turn, "[[tool]]")) {
        char *name = first_tool_name(prompt);
        sb_printf(out,
                  "Let me check.\n\n<%stool_calls>\n<%sinvoke name=\"%s\">\n"
                  "<%sparameter name=\"city\" string=\"true\">Paris & \"Lyon\"</%sparameter>\n"
                  "<%sparameter name=\"days\" string=\"false\"> 3 </%sparameter>\n"
                  "</%sinvoke>\n</%stool_calls>",
                  D, D, name ? name : "get_weather", D, D, D, D, D, D);
        free(name);
    } else if (strstr(turn, "[[stop]]")) {
        sb_puts(out, "one two STOP three four");
    } else if ((p = strstr(turn, "[[long ")) != NULL) {
        int n = atoi(p + 7);
        for (int i = 0; i < n; i++) sb_puts(out, "word ");
    } else if (strstr(turn, "[[unicode]]")) {
        sb_puts(out, "caf\xC3\xA9 \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82 done");
    } else if (strstr(turn, "[[error]]")) {
        sb_puts(out, "partial output");
        *error_after = 2;
    } else if ((p = strstr(turn, "<tool_result>")) != NULL) {
        p += strlen("<tool_result>");
        const char *e = strstr(p, "</tool_result>");
        sb_puts(out, "The tool said: ");
        sb_append(out, p, e ? (size_t)(e - p) : strlen(p));
    } else {
        sb_puts(out, "Hello from the scripted backend.");
    }
    free(turn);
}

static int scripted_generate(fp_backend *b, const fp_gen_request *req, const fp_gen_callbacks *cb,
                             fp_gen_result *res) {
    scripted *s = b->impl;
    memset(res, 0, sizeof *res);
    res->prompt_tokens = req->n_prompt;
    if (req->n_prompt == 0 || req->n_prompt >= b->n_ctx) {
        res->finish = FP_FINISH_ERROR;
        snprintf(res->error, sizeof res->error, "prompt of %zu tokens does not fit the context of %zu",
                 req->n_prompt, b->n_ctx);
        return -1;
    }
    /* Like a live KV session: the common prefix with the last request is free. */
    size_t common = 0;
    while (common < s->n_live && common < req->n_prompt && s->live[common] == req->prompt[common])
        common++;
    if (common == req->n_prompt) common--;   /* the last prompt token is always evaluated */
    res->cached_tokens = common;

    size_t todo = req->n_prompt - common;
    for (size_t done = 0; done < todo;) {
        if (cb->cancelled && cb->cancelled(cb->ud)) { res->finish = FP_FINISH_CANCEL; return 0; }
        size_t step = todo - done < 64 ? todo - done : 64;
        sleep_ms(s->o.prefill_delay_ms);
        done += step;
        if (cb->on_prefill) cb->on_prefill(cb->ud, done, todo);
    }

    strbuf text = STRBUF_INIT, pr = STRBUF_INIT;
    for (size_t i = 0; i < req->n_prompt; i++) {
        size_t n = 0;
        const char *t = tokenizer_token_bytes(s->tok, req->prompt[i], &n);
        if (t) sb_append(&pr, t, n);
    }
    int error_after, delay_ms = s->o.token_delay_ms;
    build_script(sb_str(&pr), &text, &error_after, &delay_ms);
    sb_free(&pr);
    tok_ids ids = {0};
    if (encode_script(s, sb_str(&text), &ids) < 0) {
        sb_free(&text);
        free(ids.ids);
        res->finish = FP_FINISH_ERROR;
        snprintf(res->error, sizeof res->error, "out of memory");
        return -1;
    }
    sb_free(&text);

    free(s->live);
    s->live = malloc((req->n_prompt + ids.n + 1) * sizeof *s->live);
    s->n_live = 0;
    if (s->live) {
        memcpy(s->live, req->prompt, req->n_prompt * sizeof *s->live);
        s->n_live = req->n_prompt;
    }
    res->finish = FP_FINISH_STOP;
    for (size_t i = 0; i < ids.n; i++) {
        if (cb->cancelled && cb->cancelled(cb->ud)) { res->finish = FP_FINISH_CANCEL; break; }
        if ((int)i == error_after) {
            res->finish = FP_FINISH_ERROR;
            snprintf(res->error, sizeof res->error, "scripted backend failure");
            break;
        }
        if ((int)res->completion_tokens >= req->max_tokens ||
            req->n_prompt + res->completion_tokens >= b->n_ctx) {
            res->finish = FP_FINISH_LENGTH;
            break;
        }
        sleep_ms(delay_ms);
        res->completion_tokens++;
        if (s->live) s->live[s->n_live++] = ids.ids[i];
        fp_tok_action a = cb->on_token ? cb->on_token(cb->ud, ids.ids[i], NAN) : FP_TOK_CONTINUE;
        if (a == FP_TOK_STOP) break;
    }
    free(ids.ids);
    return 0;
}

static void scripted_close(fp_backend *b) {
    if (!b) return;
    scripted *s = b->impl;
    if (s) free(s->live);
    free(s);
    free(b);
}

static const fp_backend_ops SCRIPTED_OPS = {scripted_generate, scripted_close};

fp_backend *fp_backend_scripted_open(const tokenizer *t, const fp_scripted_opts *o, char *err,
                                     size_t errlen) {
    scripted *s = calloc(1, sizeof *s);
    fp_backend *b = calloc(1, sizeof *b);
    if (!s || !b) {
        free(s);
        free(b);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->tok = t;
    if (o) s->o = *o;
    if (!s->o.n_ctx) s->o.n_ctx = 8192;
    for (int k = 0; k < CR_SP_COUNT; k++) {
        s->sp[k] = tokenizer_special(t, cr_special_str((cr_special)k));
        if (s->sp[k] < 0) {
            snprintf(err, errlen, "tokenizer has no control token \"%s\"", cr_special_str((cr_special)k));
            free(s);
            free(b);
            return NULL;
        }
    }
    b->ops = &SCRIPTED_OPS;
    b->impl = s;
    b->n_ctx = s->o.n_ctx;
    b->model_id = "deepseek-v4-flash";
    return b;
}
