/* mkmodel_vocab.h — the synthetic GPT-2 style byte-level BPE vocabulary that
 * flashpool-mkmodel puts in its files: BOS, EOS, the 256 byte symbols, the
 * merges learnt from a small built-in English text, the DeepSeek chat
 * control tokens, then "unused" padding up to the requested size.
 *
 * It is the vocabulary make_tiny_gguf.py writes, token for token and merge
 * for merge (same training text, same pre-tokenizer pattern, same tie
 * rule), so the special-token ids agree with the reference vectors. */
#ifndef FP_MKMODEL_VOCAB_H
#define FP_MKMODEL_VOCAB_H

#include <stddef.h>
#include <stdint.h>

/* GGUF token types used here (llama.cpp's numbering). */
enum { MKMODEL_TOK_NORMAL = 1, MKMODEL_TOK_CONTROL = 3, MKMODEL_TOK_UNUSED = 5 };

/* Indices into mkmodel_vocab.special / mkmodel_special_names. */
enum { MKMODEL_SP_BOS, MKMODEL_SP_EOS, MKMODEL_SP_USER, MKMODEL_SP_ASSISTANT, MKMODEL_SP_THINK,
       MKMODEL_SP_THINK_END, MKMODEL_SP_DSML, MKMODEL_SP_COUNT };
extern const char *const mkmodel_special_names[MKMODEL_SP_COUNT];

typedef struct mkmodel_vocab {
    char **tokens;          /* NUL-terminated UTF-8; index = token id */
    int32_t *types;         /* MKMODEL_TOK_* per token */
    size_t n_tokens;
    char **merges;          /* "left right"; index = rank */
    size_t n_merges;
    uint32_t special[MKMODEL_SP_COUNT];   /* ids of mkmodel_special_names */
} mkmodel_vocab;

/* Builds a vocabulary of exactly n_vocab tokens (n_vocab >= 263).
 * 0 / -1 with err. Free with mkmodel_vocab_free. */
int mkmodel_vocab_build(uint32_t n_vocab, mkmodel_vocab *out, char *err, size_t errlen);
void mkmodel_vocab_free(mkmodel_vocab *v);

#endif
