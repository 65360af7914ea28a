/* prompt_tokens.c — rendered prompt segments -> token ids (see prompt_tokens.h). */
#include "prompt_tokens.h"

#include <stdio.h>

int cr_special_ids_load(const tokenizer *t, cr_special_ids *ids, char *err, size_t errlen) {
    for (int k = 0; k < CR_SP_COUNT; k++) {
        ids->id[k] = tokenizer_special(t, cr_special_str((cr_special)k));
        if (ids->id[k] < 0) {
            snprintf(err, errlen,
                     "the model's tokenizer has no control token \"%s\"; a DeepSeek V4 GGUF is required",
                     cr_special_str((cr_special)k));
            return -1;
        }
    }
    return 0;
}

int cr_tokenize(const cr_prompt *p, const tokenizer *t, const cr_special_ids *ids,
                tok_ids *out, char *err, size_t errlen) {
    for (size_t i = 0; i < p->n_segs; i++) {
        const cr_seg *s = &p->segs[i];
        int rc;
        if (s->special >= 0) rc = tok_ids_push(out, ids->id[s->special]);
        else rc = tokenizer_encode(t, p->text.s + s->off, s->len, out);
        if (rc < 0) {
            snprintf(err, errlen, "tokenizing the prompt failed (out of memory)");
            return -1;
        }
    }
    return 0;
}

int cr_special_of(const cr_special_ids *ids, int32_t id) {
    for (int k = 0; k < CR_SP_COUNT; k++)
        if (ids->id[k] == id) return k;
    return -1;
}
