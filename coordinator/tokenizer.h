/* tokenizer.h — DeepSeek V4 tokenizer from GGUF metadata: GPT-2 byte-level
 * BPE with the official DeepSeek pre-tokenizer regexes (PCRE2, UTF mode),
 * special tokens looked up by string, and streaming detokenisation that
 * holds back partial UTF-8 sequences. */
#ifndef FP_TOKENIZER_H
#define FP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "gguf.h"

typedef struct tokenizer tokenizer;

typedef struct tok_ids { int32_t *ids; size_t n, cap; } tok_ids;   /* growable; free(ids) */
int tok_ids_push(tok_ids *v, int32_t id);                            /* 0 / -1 on OOM */

/* Builds from tokenizer.ggml.tokens / .merges / .token_type. Copies what it
 * needs, so the gguf_file may be closed afterwards. */
tokenizer *tokenizer_open(const gguf_file *f, char *err, size_t errlen);
void tokenizer_close(tokenizer *t);

int tokenizer_n_vocab(const tokenizer *t);
int32_t tokenizer_bos(const tokenizer *t);
int32_t tokenizer_eos(const tokenizer *t);
/* Id of a special/control token by its exact string, or -1. */
int32_t tokenizer_special(const tokenizer *t, const char *str);

/* Encode text as PLAIN TEXT (special-token strings inside it are split like
 * any other text, never mapped to control ids). Appends to out. 0 / -1. */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, tok_ids *out);

/* The raw bytes a token stands for (byte-level decoded; control tokens give
 * their literal string). NULL for an id out of range. */
const char *tokenizer_token_bytes(const tokenizer *t, int32_t id, size_t *len);

/* Streaming decode: feed ids, get only complete UTF-8 out; an incomplete
 * trailing sequence is kept until the next token (or flushed at the end,
 * invalid bytes as U+FFFD). */
typedef struct tok_stream { unsigned char pending[8]; int n_pending; } tok_stream;
/* Appends decoded text to out (cap bytes); returns bytes written or -1 if cap too small. */
int tok_stream_push(tok_stream *s, const tokenizer *t, int32_t id, char *out, size_t cap);
int tok_stream_flush(tok_stream *s, char *out, size_t cap);

#endif
