/* chat_render.h — DeepSeek V4 prompt rendering (official encoding_dsv4.py
 * behaviour, serving-spec §2 and design §8) from an API-neutral chat: ordered
 * messages, tool schemas and a thinking mode.
 *
 * The output is a list of segments: literal control tokens (looked up by
 * their string in the tokenizer) and plain text (BPE-encoded without special
 * recognition). Message bodies are always plain text, so nothing a user or a
 * tool sends can become a control token. The concatenated text is exactly
 * the string the official encoder would build.
 *
 * Deliberate choices where the official encoder is silent or breaks for
 * API traffic (documented in the report and tested in test_render.c):
 *  - system messages anywhere in the list are hoisted, in order, into the
 *    system region (Claude Code sends them mid-conversation; rendered in
 *    place the official encoder would drop the next <｜Assistant｜>);
 *  - request-level tools attach to the system region as
 *    system_text + "\n\n" + tools block (what vLLM does with the official
 *    encoder: an empty system message carrying the tools when none exists);
 *  - developer messages are user-side turns (official) and are never dropped;
 *  - a trailing assistant message is continued: rendered without EOS and the
 *    model generates its continuation (Anthropic prefill semantics). */
#ifndef FP_CHAT_RENDER_H
#define FP_CHAT_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <cJSON.h>

#include "strbuf.h"

typedef enum cr_think { CR_THINK_NONE = 0, CR_THINK_HIGH, CR_THINK_MAX } cr_think;
typedef enum cr_role { CR_SYSTEM, CR_DEVELOPER, CR_USER, CR_ASSISTANT, CR_TOOL } cr_role;

/* One historical tool call. arguments is the JSON text the client sent (an
 * object, possibly invalid); NULL means "{}". */
typedef struct cr_call {
    char *id, *name, *arguments;
} cr_call;

typedef struct cr_msg {
    cr_role role;
    char *content;          /* NULL renders as "" */
    char *reasoning;        /* assistant only; NULL = none */
    cr_call *calls;         /* assistant only */
    size_t n_calls;
    char *tool_call_id;     /* tool only */
    char *replay;           /* exact sampled DSML block (incl. its leading
                               separator) rendered instead of the canonical
                               calls; set from the replay store */
} cr_msg;

typedef struct cr_chat {
    cr_msg *msgs;
    size_t n, cap;
    char **tools;           /* one json.dumps line per tool function object */
    size_t n_tools, cap_tools;
    char *response_format;  /* json.dumps of the requested reply schema, or NULL */
    cr_think think;
} cr_chat;

void cr_chat_init(cr_chat *c);
void cr_chat_free(cr_chat *c);
/* Appends a message (content copied, may be NULL). NULL on OOM. The pointer
 * is valid until the next cr_chat_add. */
cr_msg *cr_chat_add(cr_chat *c, cr_role role, const char *content);
/* Appends text to m->content, with sep in between when both are non-empty. */
int cr_msg_append(cr_msg *m, const char *text, const char *sep);
int cr_msg_append_reasoning(cr_msg *m, const char *text, const char *sep);
int cr_msg_add_call(cr_msg *m, const char *id, const char *name, const char *arguments);
/* Adds one tool: fn is the function object ({"name","description",
 * "parameters",...}); it is stored as Python json.dumps text. */
int cr_chat_add_tool(cr_chat *c, const cJSON *fn);
/* Requests a reply format (official "## Response Format" section after the
 * tools); rf is stored as Python json.dumps text. */
int cr_chat_set_response_format(cr_chat *c, const cJSON *rf);

/* ---- rendering ---------------------------------------------------------- */

typedef enum cr_special {
    CR_SP_BOS = 0, CR_SP_EOS, CR_SP_USER, CR_SP_ASSISTANT,
    CR_SP_THINK, CR_SP_THINK_END, CR_SP_DSML, CR_SP_COUNT
} cr_special;

/* The literal string of a control token ("<｜User｜>", "<think>", ...). */
const char *cr_special_str(cr_special s);

typedef struct cr_seg {
    int special;            /* cr_special, or -1 for plain text */
    size_t off, len;        /* byte range in cr_prompt.text */
} cr_seg;

typedef struct cr_prompt {
    strbuf text;            /* the whole rendered string */
    cr_seg *segs;
    size_t n_segs, cap_segs;
    bool gen_in_thinking;   /* the prompt ends with <think>: output starts as reasoning */
    bool continues;         /* the last message was an assistant message left open */
} cr_prompt;

void cr_prompt_free(cr_prompt *p);
/* Segment builders (also used by tests and the completions endpoint). */
void cr_put_text(cr_prompt *p, const char *s, size_t n);
void cr_put_special(cr_prompt *p, cr_special sp);
/* Text produced by the model or by our own templates: occurrences of the
 * seven control strings become control segments. */
void cr_put_model_text(cr_prompt *p, const char *s, size_t n);

/* Renders the chat. 0, or -1 with err (OOM). */
int cr_render(const cr_chat *c, cr_prompt *out, char *err, size_t errlen);

/* Canonical DSML block for calls (official encoder format, leading "\n\n"),
 * appended as segments. */
void cr_put_canonical_calls(cr_prompt *p, const cr_call *calls, size_t n);

/* The fixed preamble Think Max inserts right after BOS. */
extern const char CR_THINK_MAX_PREAMBLE[];

#endif
