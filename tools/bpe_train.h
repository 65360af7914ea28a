/* bpe_train.h — trains a small byte-level BPE vocabulary (GPT-2 byte map,
 * DeepSeek pre-tokenizer) from a text corpus and writes it as a GGUF with
 * the tokenizer.ggml.* keys. For tests only: it gives the tokenizer
 * cross-check a realistic vocabulary with thousands of merges when the real
 * 129 280-token one is not at hand. */
#ifndef FP_BPE_TRAIN_H
#define FP_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

typedef struct bpe_vocab {
    char **tokens;        /* NUL-terminated token strings; index = id */
    int32_t *types;       /* GGUF token types: 1 normal, 3 control */
    size_t n_tokens;
    char **merges;        /* "left right"; index = rank */
    size_t n_merges;
    int32_t bos, eos;
} bpe_vocab;

/* Vocabulary layout (like DeepSeek's): BOS, EOS, pad (control), the 256 byte
 * symbols in byte order, one token per learned merge, then the DeepSeek chat
 * control tokens. Merges are learned greedily (most frequent adjacent pair
 * over pre-tokenizer pieces; ties to the smaller id pair, so the result is
 * deterministic) until n_merges or no pair occurs twice. A merge whose
 * result would spell a control token is never learned. 0 / -1 with err. */
int bpe_train(const char *text, size_t len, size_t n_merges, bpe_vocab *out,
              char *err, size_t errlen);
void bpe_vocab_free(bpe_vocab *v);

/* Writes tokens, token types, merges, BOS/EOS ids and the model/pre names as
 * a tensor-less GGUF v3 file. 0 / -1 with err. */
int bpe_vocab_write_gguf(const bpe_vocab *v, const char *path, char *err, size_t errlen);

#endif
