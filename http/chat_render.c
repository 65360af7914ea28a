/* chat_render.c — DeepSeek V4 prompt rendering into control/plain segments
 * (see chat_render.h for the rules and the deliberate choices). */
#include "chat_render.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

static const char *const SPECIAL_STR[CR_SP_COUNT] = {
    "<\xEF\xBD\x9C" "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
    "<\xEF\xBD\x9CUser\xEF\xBD\x9C>",
    "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>",
    "<think>",
    "</think>",
    "\xEF\xBD\x9C" "DSML\xEF\xBD\x9C",
};

const char *cr_special_str(cr_special s) {
    return (s >= 0 && s < CR_SP_COUNT) ? SPECIAL_STR[s] : "";
}

const char CR_THINK_MAX_PREAMBLE[] =
    "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
    "You MUST be very thorough in your thinking and comprehensively decompose the problem to "
    "resolve the root cause, rigorously stress-testing your logic against all potential paths, "
    "edge cases, and adversarial scenarios.\n"
    "Explicitly write out your entire deliberation process, documenting every intermediate step, "
    "considered alternative, and rejected hypothesis to ensure absolutely no assumption is left "
    "unchecked.\n\n";

/* The official tools template; control strings in it are control tokens.
 * "@SCHEMAS@" is replaced by the schema lines (plain text). */
static const char TOOLS_TEMPLATE[] =
    "## Tools\n\n"
    "You have access to a set of tools to help answer the user's question. You can invoke tools "
    "by writing a \"<\xEF\xBD\x9C" "DSML\xEF\xBD\x9Ctool_calls>\" block like the following:\n\n"
    "<\xEF\xBD\x9C" "DSML\xEF\xBD\x9Ctool_calls>\n"
    "<\xEF\xBD\x9C" "DSML\xEF\xBD\x9Cinvoke name=\"$TOOL_NAME\">\n"
    "<\xEF\xBD\x9C" "DSML\xEF\xBD\x9Cparameter name=\"$PARAMETER_NAME\" string=\"true|false\">"
    "$PARAMETER_VALUE</\xEF\xBD\x9C" "DSML\xEF\xBD\x9Cparameter>\n"
    "...\n"
    "</\xEF\xBD\x9C" "DSML\xEF\xBD\x9Cinvoke>\n"
    "<\xEF\xBD\x9C" "DSML\xEF\xBD\x9Cinvoke name=\"$TOOL_NAME2\">\n"
    "...\n"
    "</\xEF\xBD\x9C" "DSML\xEF\xBD\x9Cinvoke>\n"
    "</\xEF\xBD\x9C" "DSML\xEF\xBD\x9Ctool_calls>\n\n"
    "String parameters should be specified as is and set `string=\"true\"`. For all other types "
    "(numbers, booleans, arrays, objects), pass the value in JSON format and set `string=\"false\"`.\n\n"
    "If thinking_mode is enabled (triggered by <think>), you MUST output your complete reasoning "
    "inside <think>...</think> BEFORE any tool calls or final response.\n\n"
    "Otherwise, output directly after </think> with tool calls or final response.\n\n"
    "### Available Tool Schemas\n\n"
    "@SCHEMAS@\n\n"
    "You MUST strictly follow the above defined tool name and parameter schemas to invoke tool calls.\n";

/* ---- chat construction -------------------------------------------------- */

void cr_chat_init(cr_chat *c) { memset(c, 0, sizeof *c); }

static void free_msg(cr_msg *m) {
    free(m->content);
    free(m->reasoning);
    for (size_t i = 0; i < m->n_calls; i++) {
        free(m->calls[i].id);
        free(m->calls[i].name);
        free(m->calls[i].arguments);
    }
    free(m->calls);
    free(m->tool_call_id);
    free(m->replay);
}

void cr_chat_free(cr_chat *c) {
    for (size_t i = 0; i < c->n; i++) free_msg(&c->msgs[i]);
    free(c->msgs);
    for (size_t i = 0; i < c->n_tools; i++) free(c->tools[i]);
    free(c->tools);
    free(c->response_format);
    memset(c, 0, sizeof *c);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

cr_msg *cr_chat_add(cr_chat *c, cr_role role, const char *content) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        cr_msg *m = realloc(c->msgs, cap * sizeof *m);
        if (!m) return NULL;
        c->msgs = m;
        c->cap = cap;
    }
    cr_msg *m = &c->msgs[c->n];
    memset(m, 0, sizeof *m);
    m->role = role;
    if (content && !(m->content = strdup(content))) return NULL;
    c->n++;
    return m;
}

static int append_to(char **dst, const char *text, const char *sep) {
    if (!text) return 0;
    size_t a = *dst ? strlen(*dst) : 0, b = strlen(text);
    size_t s = (a && b && sep) ? strlen(sep) : 0;
    char *p = realloc(*dst, a + s + b + 1);
    if (!p) return -1;
    if (s) memcpy(p + a, sep, s);
    memcpy(p + a + s, text, b + 1);
    *dst = p;
    return 0;
}

int cr_msg_append(cr_msg *m, const char *text, const char *sep) {
    return append_to(&m->content, text, sep);
}

int cr_msg_append_reasoning(cr_msg *m, const char *text, const char *sep) {
    if (!m->reasoning && text && !(m->reasoning = strdup(""))) return -1;
    return append_to(&m->reasoning, text, sep);
}

int cr_msg_add_call(cr_msg *m, const char *id, const char *name, const char *arguments) {
    cr_call *c = realloc(m->calls, (m->n_calls + 1) * sizeof *c);
    if (!c) return -1;
    m->calls = c;
    cr_call *k = &c[m->n_calls];
    k->id = dup_or_null(id);
    k->name = dup_or_null(name ? name : "");
    k->arguments = dup_or_null(arguments);
    if ((id && !k->id) || !k->name || (arguments && !k->arguments)) return -1;
    m->n_calls++;
    return 0;
}

int cr_chat_add_tool(cr_chat *c, const cJSON *fn) {
    if (c->n_tools == c->cap_tools) {
        size_t cap = c->cap_tools ? c->cap_tools * 2 : 8;
        char **t = realloc(c->tools, cap * sizeof *t);
        if (!t) return -1;
        c->tools = t;
        c->cap_tools = cap;
    }
    strbuf b = STRBUF_INIT;
    json_print_py(&b, fn);
    if (b.oom) { sb_free(&b); return -1; }
    c->tools[c->n_tools++] = sb_steal(&b);
    return 0;
}

int cr_chat_set_response_format(cr_chat *c, const cJSON *rf) {
    strbuf b = STRBUF_INIT;
    json_print_py(&b, rf);
    if (b.oom) { sb_free(&b); return -1; }
    free(c->response_format);
    c->response_format = sb_steal(&b);
    return 0;
}

/* ---- segments ----------------------------------------------------------- */

void cr_prompt_free(cr_prompt *p) {
    sb_free(&p->text);
    free(p->segs);
    memset(p, 0, sizeof *p);
}

static void push_seg(cr_prompt *p, int special, size_t off, size_t len) {
    /* Adjacent plain text merges: BPE must see one run, exactly as the
     * official encoder tokenizes one string. */
    if (special < 0 && p->n_segs && p->segs[p->n_segs - 1].special < 0 &&
        p->segs[p->n_segs - 1].off + p->segs[p->n_segs - 1].len == off) {
        p->segs[p->n_segs - 1].len += len;
        return;
    }
    if (p->n_segs == p->cap_segs) {
        size_t cap = p->cap_segs ? p->cap_segs * 2 : 32;
        cr_seg *s = realloc(p->segs, cap * sizeof *s);
        if (!s) { p->text.oom = 1; return; }
        p->segs = s;
        p->cap_segs = cap;
    }
    p->segs[p->n_segs++] = (cr_seg){special, off, len};
}

void cr_put_text(cr_prompt *p, const char *s, size_t n) {
    if (!n) return;
    size_t off = p->text.n;
    sb_append(&p->text, s, n);
    push_seg(p, -1, off, n);
}

void cr_put_special(cr_prompt *p, cr_special sp) {
    size_t off = p->text.n, n = strlen(SPECIAL_STR[sp]);
    sb_append(&p->text, SPECIAL_STR[sp], n);
    push_seg(p, (int)sp, off, n);
}

static void put_str(cr_prompt *p, const char *s) { cr_put_text(p, s, s ? strlen(s) : 0); }

void cr_put_model_text(cr_prompt *p, const char *s, size_t n) {
    size_t i = 0, start = 0;
    while (i < n) {
        int hit = -1;
        if (s[i] == '<' || (unsigned char)s[i] == 0xEF) {
            for (int k = 0; k < CR_SP_COUNT; k++) {
                size_t L = strlen(SPECIAL_STR[k]);
                if (L <= n - i && memcmp(s + i, SPECIAL_STR[k], L) == 0) { hit = k; break; }
            }
        }
        if (hit >= 0) {
            cr_put_text(p, s + start, i - start);
            cr_put_special(p, (cr_special)hit);
            i += strlen(SPECIAL_STR[hit]);
            start = i;
        } else {
            i++;
        }
    }
    cr_put_text(p, s + start, n - start);
}

static void put_model_str(cr_prompt *p, const char *s) { cr_put_model_text(p, s, strlen(s)); }

/* "<｜DSML｜" + name */
static void put_dsml_open(cr_prompt *p, const char *tag) {
    cr_put_text(p, "<", 1);
    cr_put_special(p, CR_SP_DSML);
    put_str(p, tag);
}

static void put_dsml_close(cr_prompt *p, const char *tag) {
    cr_put_text(p, "</", 2);
    cr_put_special(p, CR_SP_DSML);
    put_str(p, tag);
}

/* One parameter line of the canonical (official) rendering. */
static void put_param(cr_prompt *p, const char *key, const cJSON *v) {
    put_dsml_open(p, "parameter name=\"");
    put_str(p, key);
    if (cJSON_IsString(v)) {
        put_str(p, "\" string=\"true\">");
        put_str(p, v->valuestring);
    } else {
        put_str(p, "\" string=\"false\">");
        strbuf b = STRBUF_INIT;
        json_print_py(&b, v);
        cr_put_text(p, b.s ? b.s : "", b.n);
        if (b.oom) p->text.oom = 1;
        sb_free(&b);
    }
    put_dsml_close(p, "parameter>");
}

void cr_put_canonical_calls(cr_prompt *p, const cr_call *calls, size_t n) {
    cr_put_text(p, "\n\n", 2);
    put_dsml_open(p, "tool_calls>\n");
    for (size_t i = 0; i < n; i++) {
        if (i) put_str(p, "\n");
        put_dsml_open(p, "invoke name=\"");
        put_str(p, calls[i].name);
        put_str(p, "\">\n");
        const char *args = calls[i].arguments ? calls[i].arguments : "{}";
        cJSON *obj = json_parse_n(args, strlen(args));
        if (obj && cJSON_IsObject(obj)) {
            int first = 1;
            for (const cJSON *m = obj->child; m; m = m->next) {
                if (!first) put_str(p, "\n");
                first = 0;
                put_param(p, m->string ? m->string : "", m);
            }
        } else {
            /* The official encoder wraps unparsable arguments in one string
             * parameter named "arguments". */
            cJSON *s = cJSON_CreateString(args);
            if (s) put_param(p, "arguments", s);
            else p->text.oom = 1;
            cJSON_Delete(s);
        }
        cJSON_Delete(obj);
        put_str(p, "\n");
        put_dsml_close(p, "invoke>");
    }
    put_str(p, "\n");
    put_dsml_close(p, "tool_calls>");
}

static void put_tools_block(cr_prompt *p, const cr_chat *c) {
    const char *mark = strstr(TOOLS_TEMPLATE, "@SCHEMAS@");
    cr_put_model_text(p, TOOLS_TEMPLATE, (size_t)(mark - TOOLS_TEMPLATE));
    for (size_t i = 0; i < c->n_tools; i++) {
        if (i) put_str(p, "\n");
        put_str(p, c->tools[i]);
    }
    put_model_str(p, mark + strlen("@SCHEMAS@"));
}

/* ---- rendering ---------------------------------------------------------- */

typedef enum { U_USER, U_DEV, U_ASSIST } unit_kind;

/* A turn after merging: consecutive user/tool messages form one user turn
 * whose parts are joined with "\n\n" (official merge_tool_messages). */
typedef struct unit {
    unit_kind kind;
    size_t first, count;      /* U_USER: message indices in `order`; else one message */
} unit;

/* Within one merged user turn, tool results are re-ordered by the call order
 * of the most recent assistant message with tool calls (official
 * sort_tool_results_by_call_order); other parts keep their place. */
static void sort_tool_parts(const cr_chat *c, size_t *idx, size_t count, const cr_msg *last_calls) {
    if (!last_calls) return;
    size_t n_tool = 0;
    for (size_t i = 0; i < count; i++) n_tool += c->msgs[idx[i]].role == CR_TOOL;
    if (n_tool < 2) return;
    size_t *tools = malloc(n_tool * sizeof *tools), *keys = malloc(n_tool * sizeof *keys);
    if (!tools || !keys) { free(tools); free(keys); return; }
    size_t t = 0;
    for (size_t i = 0; i < count; i++) {
        const cr_msg *m = &c->msgs[idx[i]];
        if (m->role != CR_TOOL) continue;
        size_t key = 0;   /* unknown ids sort as 0, like the official encoder */
        for (size_t k = 0; m->tool_call_id && k < last_calls->n_calls; k++)
            if (last_calls->calls[k].id && strcmp(last_calls->calls[k].id, m->tool_call_id) == 0) {
                key = k;
                break;
            }
        tools[t] = idx[i];
        keys[t] = key;
        t++;
    }
    /* stable insertion sort by key */
    for (size_t i = 1; i < n_tool; i++) {
        size_t kt = tools[i], kk = keys[i], j = i;
        while (j > 0 && keys[j - 1] > kk) { tools[j] = tools[j - 1]; keys[j] = keys[j - 1]; j--; }
        tools[j] = kt;
        keys[j] = kk;
    }
    t = 0;
    for (size_t i = 0; i < count; i++)
        if (c->msgs[idx[i]].role == CR_TOOL) idx[i] = tools[t++];
    free(tools);
    free(keys);
}

int cr_render(const cr_chat *c, cr_prompt *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    size_t *order = malloc((c->n + 1) * sizeof *order);
    unit *units = malloc((c->n + 1) * sizeof *units);
    if (!order || !units) {
        free(order);
        free(units);
        snprintf(err, errlen, "out of memory rendering the prompt");
        return -1;
    }
    /* Group non-system messages into turns. */
    size_t n_order = 0, n_units = 0;
    const cr_msg *last_calls = NULL;
    for (size_t i = 0; i < c->n; i++) {
        const cr_msg *m = &c->msgs[i];
        if (m->role == CR_SYSTEM) continue;
        if (m->role == CR_USER || m->role == CR_TOOL) {
            if (!n_units || units[n_units - 1].kind != U_USER)
                units[n_units++] = (unit){U_USER, n_order, 0};
            order[n_order++] = i;
            units[n_units - 1].count++;
        } else {
            if (m->role == CR_ASSISTANT && m->n_calls) last_calls = m;
            units[n_units++] = (unit){m->role == CR_DEVELOPER ? U_DEV : U_ASSIST, n_order, 1};
            order[n_order++] = i;
        }
    }
    /* Tool-result ordering uses the assistant calls preceding each turn. */
    last_calls = NULL;
    for (size_t u = 0; u < n_units; u++) {
        if (units[u].kind == U_ASSIST) {
            const cr_msg *m = &c->msgs[order[units[u].first]];
            if (m->n_calls) last_calls = m;
        } else if (units[u].kind == U_USER) {
            sort_tool_parts(c, order + units[u].first, units[u].count, last_calls);
        }
    }

    const bool thinking = c->think != CR_THINK_NONE;
    /* Historical reasoning is dropped unless tools are defined (official). */
    const bool drop = c->n_tools == 0;
    long last_user = -1;
    for (size_t u = 0; u < n_units; u++)
        if (units[u].kind != U_ASSIST) last_user = (long)u;

    cr_put_special(out, CR_SP_BOS);
    if (c->think == CR_THINK_MAX) put_str(out, CR_THINK_MAX_PREAMBLE);

    bool first_sys = true;
    for (size_t i = 0; i < c->n; i++) {
        if (c->msgs[i].role != CR_SYSTEM) continue;
        if (!first_sys) put_str(out, "\n\n");
        first_sys = false;
        put_str(out, c->msgs[i].content);
    }
    if (c->n_tools) {
        put_str(out, "\n\n");
        put_tools_block(out, c);
    }
    if (c->response_format) {
        put_str(out, "\n\n## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n");
        put_str(out, c->response_format);
    }

    out->gen_in_thinking = false;
    out->continues = false;
    for (size_t u = 0; u < n_units; u++) {
        const unit *un = &units[u];
        const bool last = u + 1 == n_units;
        if (un->kind == U_USER || un->kind == U_DEV) {
            cr_put_special(out, CR_SP_USER);
            for (size_t k = 0; k < un->count; k++) {
                const cr_msg *m = &c->msgs[order[un->first + k]];
                if (k) put_str(out, "\n\n");
                if (m->role == CR_TOOL) {
                    put_str(out, "<tool_result>");
                    put_str(out, m->content);
                    put_str(out, "</tool_result>");
                } else {
                    put_str(out, m->content);
                }
            }
            /* <｜Assistant｜> follows a user-side turn only when an assistant
             * turn (or the generation) comes next. */
            if (last || units[u + 1].kind == U_ASSIST) {
                cr_put_special(out, CR_SP_ASSISTANT);
                const bool open = thinking && (!drop || (long)u >= last_user);
                cr_put_special(out, open ? CR_SP_THINK : CR_SP_THINK_END);
                if (last) out->gen_in_thinking = open;
            }
        } else {
            const cr_msg *m = &c->msgs[order[un->first]];
            if (thinking && (!drop || (long)u > last_user)) {
                put_str(out, m->reasoning);
                cr_put_special(out, CR_SP_THINK_END);
            }
            put_str(out, m->content);
            if (m->replay) put_model_str(out, m->replay);
            else if (m->n_calls) cr_put_canonical_calls(out, m->calls, m->n_calls);
            if (last) out->continues = true;
            else cr_put_special(out, CR_SP_EOS);
        }
    }
    free(order);
    free(units);
    if (out->text.oom) {
        snprintf(err, errlen, "out of memory rendering the prompt");
        cr_prompt_free(out);
        return -1;
    }
    return 0;
}
