/* prompt_tokens.h — turns a rendered prompt (control + plain segments) into
 * token ids with the GGUF tokenizer: control segments by their special-token
 * id, plain segments with plain-text BPE (never special-recognising). Kept
 * apart from chat_render.c so rendering is testable without a tokenizer. */
#ifndef FP_PROMPT_TOKENS_H
#define FP_PROMPT_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "chat_render.h"
#include "tokenizer.h"

typedef struct cr_special_ids {
    int32_t id[CR_SP_COUNT];
} cr_special_ids;

/* Looks up the seven control tokens; -1 with err naming a missing one. */
int cr_special_ids_load(const tokenizer *t, cr_special_ids *ids, char *err, size_t errlen);

/* Appends the prompt's token ids to out. 0 / -1 with err. */
int cr_tokenize(const cr_prompt *p, const tokenizer *t, const cr_special_ids *ids,
                tok_ids *out, char *err, size_t errlen);

/* Which control token an id is, or -1. */
int cr_special_of(const cr_special_ids *ids, int32_t id);

#endif
