/* pretokenizer.h — the DeepSeek V3/V4 pre-tokenizer: text -> "words" before
 * byte-level BPE. The official tokenizer.json splits with three regexes in
 * sequence (each one applied to every piece the previous one produced,
 * matches and the gaps between them both kept); this runs the same regex
 * list with PCRE2 (UTF mode, JIT). Vocabulary-independent, so it also serves
 * the vocabulary trainer in flashpool-tokenize. */
#ifndef FP_PRETOKENIZER_H
#define FP_PRETOKENIZER_H

#include <stddef.h>

typedef struct pretokenizer pretokenizer;

pretokenizer *pretokenizer_open(char *err, size_t errlen);
void pretokenizer_close(pretokenizer *p);

/* Called once per piece, in order; the pieces tile the input exactly (their
 * concatenation is the input, none is empty). A nonzero return stops the
 * split and is returned by pretokenizer_split. */
typedef int (*pretok_piece_fn)(void *ctx, const char *piece, size_t len);

/* Splits text[0..len) (any bytes: invalid UTF-8 never matches a pattern, so
 * it ends up in gap pieces and round-trips unchanged). Safe to call from
 * several threads on one pretokenizer. Returns 0, fn's nonzero value, or -1
 * on a regex engine error (out of memory, match limit) with err filled. */
int pretokenizer_split(const pretokenizer *p, const char *text, size_t len,
                       pretok_piece_fn fn, void *ctx, char *err, size_t errlen);

#endif
