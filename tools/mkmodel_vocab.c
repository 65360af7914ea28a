/* mkmodel_vocab.c — builds the synthetic byte-level BPE vocabulary of
 * flashpool-mkmodel files (see mkmodel_vocab.h): pre-tokenizes a built-in
 * text with PCRE2, learns merges greedily, and lays out the token table.
 *
 * The trainer reproduces make_tiny_gguf.py's exactly, because the token ids
 * of the chat tokens (and every merge rank) must agree with the reference
 * vectors: words and pairs are kept in first-seen order, the most frequent
 * pair wins, ties go to the pair whose concatenation is smallest by code
 * point (a longer string beats its own prefix), and then to the first seen;
 * training stops when no pair occurs twice. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "errmsg.h"
#include "mkmodel_vocab.h"

#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FW "\xef\xbd\x9c" /* U+FF5C fullwidth vertical line of DeepSeek's special tokens */
#define SP "\xe2\x96\x81" /* U+2581 lower one-eighth block, their word separator */

const char *const mkmodel_special_names[MKMODEL_SP_COUNT] = {
    "<" FW "begin" SP "of" SP "sentence" FW ">",
    "<" FW "end" SP "of" SP "sentence" FW ">",
    "<" FW "User" FW ">",
    "<" FW "Assistant" FW ">",
    "<think>",
    "</think>",
    FW "DSML" FW,
};

/* The training text of make_tiny_gguf.py, byte for byte. */
static const char k_train_text[] =
    "\n"
    "The pool serves one large model from many small machines. Each node keeps a\n"
    "share of the experts in memory, and the coordinator keeps the attention and\n"
    "the router weights. When a token arrives, the router picks six experts, the\n"
    "coordinator sends the hidden state to the nodes that hold them, and the\n"
    "answers come back to be summed. The cache keeps the hottest experts close,\n"
    "so most tokens never leave the coordinator at all. Tests compare the logits\n"
    "of the pool with the logits of a reference engine on the same tiny model,\n"
    "and the two must agree within the stated tolerance for every position of\n"
    "the prompt. The quick brown fox jumps over the lazy dog; then the dog\n"
    "sleeps in the sun, and the fox runs into the forest to find its friends.\n"
    "def main(): return 0  # code, numbers 12345 and punctuation: (a, b) -> {c}.\n";

/* The pre-tokenizer of the trainer (letters, 1-3 digits, other symbols,
 * each with an optional leading space; whitespace runs). */
static const char k_pretok[] = " ?[A-Za-z]+| ?[0-9]{1,3}| ?[^\\sA-Za-z0-9]+|\\s+";

/* GPT-2's byte-to-character map: printable Latin-1 bytes stand for
 * themselves, the others get code points 256, 257, ... in byte order.
 * Writes the UTF-8 of byte b's character (2 or 3 bytes with the NUL). */
static void byte_char(int b, char out[3]) {
    int keep = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    unsigned cp = (unsigned)b;
    if (!keep) {
        unsigned extra = 0;
        for (int i = 0; i < b; i++)
            if (!((i >= 0x21 && i <= 0x7e) || (i >= 0xa1 && i <= 0xac) || (i >= 0xae && i <= 0xff))) extra++;
        cp = 256 + extra;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        out[2] = 0;
    }
}

/* ---- trainer state ------------------------------------------------------- */

typedef struct word { int *sym; size_t n; long count; } word;
typedef struct pair { int a, b; long count; } pair;

typedef struct trainer {
    char **syms;        /* interned symbol strings; id = index */
    size_t n_syms, cap_syms;
    word *words;
    size_t n_words, cap_words;
    int (*merges)[2];
    size_t n_merges, cap_merges;
} trainer;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, nc * elem);
    if (!np) return -1;
    *p = np;
    *cap = nc;
    return 0;
}

/* Id of symbol s (taken over when new, freed otherwise); -1 on OOM. */
static int intern(trainer *t, char *s) {
    for (size_t i = 0; i < t->n_syms; i++)
        if (strcmp(t->syms[i], s) == 0) {
            free(s);
            return (int)i;
        }
    if (grow((void **)&t->syms, &t->cap_syms, t->n_syms + 1, sizeof *t->syms)) {
        free(s);
        return -1;
    }
    t->syms[t->n_syms] = s;
    return (int)t->n_syms++;
}

/* Adds count occurrences of the symbol sequence sym[0..n) (taken over), merging
 * with an equal word already present, as a dict keyed by the tuple would. */
static int add_word(word **ws, size_t *nw, size_t *cap, int *sym, size_t n, long count) {
    for (size_t i = 0; i < *nw; i++)
        if ((*ws)[i].n == n && memcmp((*ws)[i].sym, sym, n * sizeof *sym) == 0) {
            (*ws)[i].count += count;
            free(sym);
            return 0;
        }
    if (grow((void **)ws, cap, *nw + 1, sizeof **ws)) {
        free(sym);
        return -1;
    }
    (*ws)[(*nw)++] = (word){sym, n, count};
    return 0;
}

/* Byte i of syms[a] followed by syms[b], or -1 past the end. */
static int cat_at(const trainer *t, const pair *p, size_t i, size_t la, size_t lb) {
    if (i < la) return (unsigned char)t->syms[p->a][i];
    if (i < la + lb) return (unsigned char)t->syms[p->b][i - la];
    return -1;
}

/* 1 when p beats q: more frequent, or equally frequent with the
 * concatenation that is smaller by code point (UTF-8 byte order is code point
 * order), or a longer concatenation that q's is a prefix of. */
static int pair_better(const trainer *t, const pair *p, const pair *q) {
    if (p->count != q->count) return p->count > q->count;
    size_t pa = strlen(t->syms[p->a]), pb = strlen(t->syms[p->b]);
    size_t qa = strlen(t->syms[q->a]), qb = strlen(t->syms[q->b]);
    for (size_t i = 0;; i++) {
        int x = cat_at(t, p, i, pa, pb), y = cat_at(t, q, i, qa, qb);
        if (x == y) {
            if (x < 0) return 0; /* the same string: the first seen stays */
            continue;
        }
        if (x < 0) return 0; /* p is a prefix of q: q wins */
        if (y < 0) return 1;
        return x < y;
    }
}

/* Counts adjacent pairs in first-seen order and returns the best one;
 * 0 when there is none, -1 on OOM. */
static int best_pair(const trainer *t, pair *best) {
    pair *ps = NULL;
    size_t np = 0, cap = 0;
    /* open-addressing index over ps, sized for every pair occurrence */
    size_t occ = 0;
    for (size_t w = 0; w < t->n_words; w++) occ += t->words[w].n;
    size_t hcap = 64;
    while (hcap < 2 * occ + 2) hcap *= 2;
    int *h = malloc(hcap * sizeof *h);
    if (!h) return -1;
    memset(h, 0xff, hcap * sizeof *h);
    int rc = 0;
    for (size_t w = 0; w < t->n_words && rc == 0; w++) {
        const word *wd = &t->words[w];
        for (size_t i = 0; i + 1 < wd->n; i++) {
            int a = wd->sym[i], b = wd->sym[i + 1];
            size_t k = ((size_t)a * 0x9e3779b1u ^ (size_t)b * 0x85ebca6bu) & (hcap - 1);
            while (h[k] >= 0 && (ps[h[k]].a != a || ps[h[k]].b != b)) k = (k + 1) & (hcap - 1);
            if (h[k] >= 0) {
                ps[h[k]].count += wd->count;
                continue;
            }
            if (grow((void **)&ps, &cap, np + 1, sizeof *ps)) {
                rc = -1;
                break;
            }
            ps[np] = (pair){a, b, wd->count};
            h[k] = (int)np++;
        }
    }
    if (rc == 0 && np) {
        size_t bi = 0;
        for (size_t i = 1; i < np; i++)
            if (pair_better(t, &ps[i], &ps[bi])) bi = i;
        *best = ps[bi];
        rc = 1;
    }
    free(h);
    free(ps);
    return rc;
}

/* Applies merge (a, b) -> m to every word, left to right, non-overlapping. */
static int apply_merge(trainer *t, int a, int b, int m) {
    word *nw = NULL;
    size_t n_nw = 0, cap = 0;
    for (size_t w = 0; w < t->n_words; w++) {
        const word *wd = &t->words[w];
        int *out = malloc((wd->n ? wd->n : 1) * sizeof *out);
        if (!out) goto oom;
        size_t k = 0;
        for (size_t i = 0; i < wd->n;) {
            if (i + 1 < wd->n && wd->sym[i] == a && wd->sym[i + 1] == b) {
                out[k++] = m;
                i += 2;
            } else {
                out[k++] = wd->sym[i++];
            }
        }
        if (add_word(&nw, &n_nw, &cap, out, k, wd->count)) goto oom;
    }
    for (size_t w = 0; w < t->n_words; w++) free(t->words[w].sym);
    free(t->words);
    t->words = nw;
    t->n_words = n_nw;
    t->cap_words = cap;
    return 0;
oom:
    for (size_t w = 0; w < n_nw; w++) free(nw[w].sym);
    free(nw);
    return -1;
}

static void trainer_free(trainer *t) {
    for (size_t i = 0; i < t->n_syms; i++) free(t->syms[i]);
    free(t->syms);
    for (size_t w = 0; w < t->n_words; w++) free(t->words[w].sym);
    free(t->words);
    free(t->merges);
}

/* Splits the training text into words of byte symbols (ids 0..255 are the
 * byte characters). */
static int load_words(trainer *t, char *err, size_t errlen) {
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)k_pretok, PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
    if (!re) {
        fp_fail(err, errlen, "pre-tokenizer pattern does not compile (PCRE2 error %d)", ec);
        return -1;
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) {
        pcre2_code_free(re);
        fp_fail(err, errlen, "out of memory");
        return -1;
    }
    const size_t len = sizeof k_train_text - 1;
    int rc = 0;
    for (size_t off = 0; off < len;) {
        int m = pcre2_match(re, (PCRE2_SPTR)k_train_text, len, off, 0, md, NULL);
        if (m < 0) break; /* PCRE2_ERROR_NOMATCH: no more words */
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t s = ov[0], e = ov[1];
        if (e <= s) { /* the pattern has no empty alternative; be safe anyway */
            off = s + 1;
            continue;
        }
        int *sym = malloc((e - s) * sizeof *sym);
        if (!sym) {
            rc = -1;
            break;
        }
        for (size_t i = s; i < e; i++) sym[i - s] = (unsigned char)k_train_text[i];
        if (add_word(&t->words, &t->n_words, &t->cap_words, sym, e - s, 1)) {
            rc = -1;
            break;
        }
        off = e;
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    if (rc) fp_fail(err, errlen, "out of memory");
    return rc;
}

static int train(trainer *t, size_t max_merges, char *err, size_t errlen) {
    for (int b = 0; b < 256; b++) {
        char bc[3];
        byte_char(b, bc);
        char *s = strdup(bc);
        if (!s || intern(t, s) != b) {
            fp_fail(err, errlen, "out of memory");
            return -1;
        }
    }
    if (load_words(t, err, errlen)) return -1;
    while (t->n_merges < max_merges) {
        pair best;
        int r = best_pair(t, &best);
        if (r < 0) goto oom;
        if (r == 0 || best.count < 2) break;
        size_t la = strlen(t->syms[best.a]), lb = strlen(t->syms[best.b]);
        char *cat = malloc(la + lb + 1);
        if (!cat) goto oom;
        memcpy(cat, t->syms[best.a], la);
        memcpy(cat + la, t->syms[best.b], lb + 1);
        int m = intern(t, cat);
        if (m < 0 || grow((void **)&t->merges, &t->cap_merges, t->n_merges + 1, sizeof *t->merges)) goto oom;
        t->merges[t->n_merges][0] = best.a;
        t->merges[t->n_merges][1] = best.b;
        t->n_merges++;
        if (apply_merge(t, best.a, best.b, m)) goto oom;
    }
    return 0;
oom:
    fp_fail(err, errlen, "out of memory training the vocabulary");
    return -1;
}

/* ---- vocabulary layout ----------------------------------------------------- */

static int push_token(mkmodel_vocab *v, char *s, int32_t type) {
    if (!s) return -1;
    v->tokens[v->n_tokens] = s;
    v->types[v->n_tokens] = type;
    v->n_tokens++;
    return 0;
}

static char *fmt_dup(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_dup(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

int mkmodel_vocab_build(uint32_t n_vocab, mkmodel_vocab *v, char *err, size_t errlen) {
    memset(v, 0, sizeof *v);
    const size_t fixed = 2 + 256 + (MKMODEL_SP_COUNT - 2);
    if (n_vocab < fixed) {
        fp_fail(err, errlen, "vocab must be at least %zu (BOS, EOS, 256 bytes, %d chat tokens)", fixed,
                MKMODEL_SP_COUNT - 2);
        return -1;
    }
    trainer t = {0};
    if (train(&t, n_vocab - fixed, err, errlen)) {
        trainer_free(&t);
        return -1;
    }
    v->tokens = calloc(n_vocab, sizeof *v->tokens);
    v->types = calloc(n_vocab, sizeof *v->types);
    v->merges = calloc(t.n_merges ? t.n_merges : 1, sizeof *v->merges);
    if (!v->tokens || !v->types || !v->merges) goto oom;
    if (push_token(v, strdup(mkmodel_special_names[MKMODEL_SP_BOS]), MKMODEL_TOK_CONTROL) ||
        push_token(v, strdup(mkmodel_special_names[MKMODEL_SP_EOS]), MKMODEL_TOK_CONTROL))
        goto oom;
    for (int b = 0; b < 256; b++)
        if (push_token(v, strdup(t.syms[b]), MKMODEL_TOK_NORMAL)) goto oom;
    /* One token per merge, except a merge that spells a token already in the
     * table (the same string reached by another split) adds nothing and is
     * left out of the merge list too. */
    for (size_t i = 0; i < t.n_merges; i++) {
        const char *a = t.syms[t.merges[i][0]], *b = t.syms[t.merges[i][1]];
        char *cat = fmt_dup("%s%s", a, b);
        if (!cat) goto oom;
        int dup = 0;
        for (size_t k = 0; k < v->n_tokens && !dup; k++) dup = strcmp(v->tokens[k], cat) == 0;
        if (dup) {
            free(cat);
            continue;
        }
        push_token(v, cat, MKMODEL_TOK_NORMAL);
        if (!(v->merges[v->n_merges] = fmt_dup("%s %s", a, b))) goto oom;
        v->n_merges++;
    }
    v->special[MKMODEL_SP_BOS] = 0;
    v->special[MKMODEL_SP_EOS] = 1;
    for (int s = MKMODEL_SP_USER; s < MKMODEL_SP_COUNT; s++) {
        v->special[s] = (uint32_t)v->n_tokens;
        if (push_token(v, strdup(mkmodel_special_names[s]), MKMODEL_TOK_CONTROL)) goto oom;
    }
    for (uint32_t pad = 0; v->n_tokens < n_vocab; pad++)
        if (push_token(v, fmt_dup("<" FW "tiny" SP "unused" SP "%u" FW ">", pad), MKMODEL_TOK_UNUSED)) goto oom;
    trainer_free(&t);
    return 0;
oom:
    trainer_free(&t);
    mkmodel_vocab_free(v);
    fp_fail(err, errlen, "out of memory building a %u-token vocabulary", n_vocab);
    return -1;
}

void mkmodel_vocab_free(mkmodel_vocab *v) {
    if (!v) return;
    if (v->tokens)
        for (size_t i = 0; i < v->n_tokens; i++) free(v->tokens[i]);
    free(v->tokens);
    free(v->types);
    if (v->merges)
        for (size_t i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->merges);
    memset(v, 0, sizeof *v);
}
