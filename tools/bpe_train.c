/* bpe_train.c — greedy byte-level BPE training for test vocabularies (see
 * bpe_train.h). Pieces come from the real pre-tokenizer, so merges never
 * cross a piece boundary, as in the real DeepSeek vocabulary. Pair counts
 * are kept incrementally: applying a merge re-counts only the words listed
 * under that pair, and the most frequent pair comes from a lazy max-heap.
 * A few MB of corpus train in a second or two. */
#include "bpe_train.h"

#include "gguf.h"
#include "pretokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_HEAD 3
static const char *const HEAD_TOKENS[N_HEAD] = {
    "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<\xef\xbd\x9c\xe2\x96\x81pad\xe2\x96\x81\xef\xbd\x9c>",
};
#define N_TAIL 5
static const char *const TAIL_TOKENS[N_TAIL] = {
    "<\xef\xbd\x9cUser\xef\xbd\x9c>",
    "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>",
    "<think>",
    "</think>",
    "\xef\xbd\x9c" "DSML\xef\xbd\x9c",
};

/* ---- small containers ----------------------------------------------------- */

typedef struct word {
    int32_t *sym;
    size_t n;
    int64_t freq;
} word;

typedef struct pair_entry {
    uint64_t key;        /* left << 32 | right; UINT64_MAX = empty */
    int64_t count;
    int banned;
    uint32_t *wl;        /* words that contained the pair when counted (may be stale) */
    uint32_t wl_n, wl_cap;
    uint32_t dirty;      /* epoch in which the count last changed */
} pair_entry;

typedef struct heap_item {
    int64_t count;
    uint64_t key;
} heap_item;

typedef struct trainer {
    const char *text;
    /* unique pieces: open addressing over (offset, length) into text */
    size_t *pc_off, *pc_len;
    int64_t *pc_count;
    size_t pc_mask, pc_n;
    word *words;
    size_t n_words;
    pair_entry *pairs;
    size_t pair_mask, pair_n;
    /* max-heap of (count, key) snapshots, pushed once per changed pair per
     * merge; an item is live only while it still equals the pair's count */
    heap_item *heap;
    size_t heap_n, heap_cap;
    uint32_t *seen;      /* per word: last merge that visited it */
    uint64_t *dirty;     /* pairs whose count changed in this epoch */
    size_t dirty_n, dirty_cap;
    uint32_t epoch;
    /* token strings and a string -> id table */
    char **tok;
    size_t n_tok, tok_cap;
    int32_t *tmap;
    size_t tmap_mask;
    char **mrg;
    size_t n_mrg, mrg_cap;
} trainer;

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27; x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static int piece_add(void *ctx, const char *p, size_t len) {
    trainer *t = ctx;
    if (t->pc_n * 2 >= t->pc_mask) { /* grow */
        size_t cap = (t->pc_mask + 1) * 2;
        size_t *off = malloc(cap * sizeof *off), *ln = malloc(cap * sizeof *ln);
        int64_t *cnt = malloc(cap * sizeof *cnt);
        if (!off || !ln || !cnt) { free(off); free(ln); free(cnt); return 1; }   /* 1 = OOM */
        for (size_t i = 0; i < cap; i++) ln[i] = 0;
        for (size_t i = 0; i <= t->pc_mask; i++) {
            if (!t->pc_len[i]) continue;
            size_t j = (size_t)fnv(t->text + t->pc_off[i], t->pc_len[i]) & (cap - 1);
            while (ln[j]) j = (j + 1) & (cap - 1);
            off[j] = t->pc_off[i]; ln[j] = t->pc_len[i]; cnt[j] = t->pc_count[i];
        }
        free(t->pc_off); free(t->pc_len); free(t->pc_count);
        t->pc_off = off; t->pc_len = ln; t->pc_count = cnt;
        t->pc_mask = cap - 1;
    }
    size_t j = (size_t)fnv(p, len) & t->pc_mask;
    for (;; j = (j + 1) & t->pc_mask) {
        if (!t->pc_len[j]) {
            t->pc_off[j] = (size_t)(p - t->text); t->pc_len[j] = len; t->pc_count[j] = 1;
            t->pc_n++;
            return 0;
        }
        if (t->pc_len[j] == len && memcmp(t->text + t->pc_off[j], p, len) == 0) {
            t->pc_count[j]++;
            return 0;
        }
    }
}

static pair_entry *pair_slot(pair_entry *tab, size_t mask, uint64_t key) {
    size_t i = (size_t)mix64(key) & mask;
    while (tab[i].key != UINT64_MAX && tab[i].key != key) i = (i + 1) & mask;
    return &tab[i];
}

static int pairs_grow(trainer *t) {
    size_t cap = t->pairs ? (t->pair_mask + 1) * 2 : 1u << 16;
    pair_entry *tab = calloc(cap, sizeof *tab);
    if (!tab) return -1;
    for (size_t i = 0; i < cap; i++) tab[i].key = UINT64_MAX;
    if (t->pairs)
        for (size_t i = 0; i <= t->pair_mask; i++)
            if (t->pairs[i].key != UINT64_MAX) *pair_slot(tab, cap - 1, t->pairs[i].key) = t->pairs[i];
    free(t->pairs);
    t->pairs = tab;
    t->pair_mask = cap - 1;
    return 0;
}

static int heap_before(const heap_item *a, const heap_item *b) {
    return a->count > b->count || (a->count == b->count && a->key < b->key);
}

static int heap_push(trainer *t, int64_t count, uint64_t key) {
    if (t->heap_n == t->heap_cap) {
        size_t cap = t->heap_cap ? t->heap_cap * 2 : 1u << 16;
        heap_item *h = realloc(t->heap, cap * sizeof *h);
        if (!h) return -1;
        t->heap = h;
        t->heap_cap = cap;
    }
    heap_item it = {count, key};
    size_t i = t->heap_n++;
    while (i > 0 && heap_before(&it, &t->heap[(i - 1) / 2])) {
        t->heap[i] = t->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    t->heap[i] = it;
    return 0;
}

static heap_item heap_pop(trainer *t) {
    heap_item top = t->heap[0], last = t->heap[--t->heap_n];
    size_t i = 0, n = t->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_before(&t->heap[c + 1], &t->heap[c])) c++;
        if (!heap_before(&t->heap[c], &last)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n) t->heap[i] = last;
    return top;
}

/* Adds delta * freq for every adjacent pair of word wi; when adding, also
 * notes wi in the pair's word list. */
static int pairs_count_word(trainer *t, uint32_t wi, int64_t delta) {
    const word *w = &t->words[wi];
    for (size_t i = 0; i + 1 < w->n; i++) {
        if (t->pair_n * 2 >= t->pair_mask && pairs_grow(t) != 0) return -1;
        uint64_t key = (uint64_t)(uint32_t)w->sym[i] << 32 | (uint32_t)w->sym[i + 1];
        pair_entry *e = pair_slot(t->pairs, t->pair_mask, key);
        if (e->key == UINT64_MAX) {
            memset(e, 0, sizeof *e);
            e->key = key;
            t->pair_n++;
        }
        e->count += delta * w->freq;
        if (e->dirty != t->epoch) {
            e->dirty = t->epoch;
            if (t->dirty_n == t->dirty_cap) {
                size_t cap = t->dirty_cap ? t->dirty_cap * 2 : 1024;
                uint64_t *d = realloc(t->dirty, cap * sizeof *d);
                if (!d) return -1;
                t->dirty = d;
                t->dirty_cap = cap;
            }
            t->dirty[t->dirty_n++] = key;
        }
        if (delta > 0 && (e->wl_n == 0 || e->wl[e->wl_n - 1] != wi)) {
            if (e->wl_n == e->wl_cap) {
                uint32_t cap = e->wl_cap ? e->wl_cap * 2 : 4;
                uint32_t *p = realloc(e->wl, cap * sizeof *p);
                if (!p) return -1;
                e->wl = p;
                e->wl_cap = cap;
            }
            e->wl[e->wl_n++] = wi;
        }
    }
    return 0;
}

/* One heap item per pair changed since the last flush, at its new count. */
static int flush_dirty(trainer *t) {
    for (size_t i = 0; i < t->dirty_n; i++) {
        const pair_entry *e = pair_slot(t->pairs, t->pair_mask, t->dirty[i]);
        if (e->count >= 2 && heap_push(t, e->count, e->key) != 0) return -1;
    }
    t->dirty_n = 0;
    t->epoch++;
    return 0;
}

static int32_t tok_find(const trainer *t, const char *s) {
    size_t i = (size_t)fnv(s, strlen(s)) & t->tmap_mask;
    for (; t->tmap[i] >= 0; i = (i + 1) & t->tmap_mask)
        if (strcmp(t->tok[t->tmap[i]], s) == 0) return t->tmap[i];
    return -1;
}

/* Takes ownership of s. */
static int32_t tok_add(trainer *t, char *s) {
    if (t->n_tok == t->tok_cap) {
        size_t cap = t->tok_cap ? t->tok_cap * 2 : 512;
        char **p = realloc(t->tok, cap * sizeof *p);
        if (!p) { free(s); return -1; }
        t->tok = p;
        t->tok_cap = cap;
    }
    if ((t->n_tok + 1) * 2 > t->tmap_mask) {
        size_t cap = t->tmap ? (t->tmap_mask + 1) * 2 : 4096;
        int32_t *m = malloc(cap * sizeof *m);
        if (!m) { free(s); return -1; }
        memset(m, 0xff, cap * sizeof *m);
        free(t->tmap);
        t->tmap = m;
        t->tmap_mask = cap - 1;
        for (size_t id = 0; id < t->n_tok; id++) {
            size_t i = (size_t)fnv(t->tok[id], strlen(t->tok[id])) & t->tmap_mask;
            while (t->tmap[i] >= 0) i = (i + 1) & t->tmap_mask;
            t->tmap[i] = (int32_t)id;
        }
    }
    int32_t id = (int32_t)t->n_tok++;
    t->tok[id] = s;
    size_t i = (size_t)fnv(s, strlen(s)) & t->tmap_mask;
    while (t->tmap[i] >= 0) i = (i + 1) & t->tmap_mask;
    t->tmap[i] = id;
    return id;
}

static int is_reserved(const char *s) {
    for (int i = 0; i < N_HEAD; i++) if (strcmp(s, HEAD_TOKENS[i]) == 0) return 1;
    for (int i = 0; i < N_TAIL; i++) if (strcmp(s, TAIL_TOKENS[i]) == 0) return 1;
    return 0;
}

/* GPT-2 bytes_to_unicode (see tokenizer.c), UTF-8 encoded into o. */
static size_t byte_symbol(unsigned b, char *o) {
    unsigned cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
        unsigned n = 0;
        for (unsigned x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) { o[0] = (char)cp; o[1] = 0; return 1; }
    o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); o[2] = 0;
    return 2;
}

static void trainer_free(trainer *t) {
    free(t->pc_off); free(t->pc_len); free(t->pc_count);
    for (size_t i = 0; i < t->n_words; i++) free(t->words[i].sym);
    free(t->words);
    if (t->pairs)
        for (size_t i = 0; i <= t->pair_mask; i++)
            if (t->pairs[i].key != UINT64_MAX) free(t->pairs[i].wl);
    free(t->pairs);
    free(t->heap);
    free(t->seen);
    free(t->dirty);
    free(t->tmap);
    for (size_t i = 0; i < t->n_tok; i++) free(t->tok[i]);
    free(t->tok);
    for (size_t i = 0; i < t->n_mrg; i++) free(t->mrg[i]);
    free(t->mrg);
}

static char *dup_cat(const char *a, const char *sep, const char *b) {
    size_t la = strlen(a), ls = strlen(sep), lb = strlen(b);
    char *s = malloc(la + ls + lb + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, sep, ls);
    memcpy(s + la + ls, b, lb + 1);
    return s;
}

static int train_loop(trainer *t, size_t n_merges) {
    while (t->n_mrg < n_merges && t->heap_n) {
        heap_item top = heap_pop(t);
        pair_entry *best = pair_slot(t->pairs, t->pair_mask, top.key);
        if (best->key != top.key || best->count != top.count || best->banned) continue;  /* stale */
        uint64_t key = best->key;
        int32_t l = (int32_t)(key >> 32), r = (int32_t)(key & 0xffffffffu);
        char *merged = dup_cat(t->tok[l], "", t->tok[r]);
        if (!merged) return -1;
        if (is_reserved(merged)) {
            best->banned = 1;
            free(merged);
            continue;
        }
        int32_t m = tok_find(t, merged);
        if (m < 0) {
            if ((m = tok_add(t, merged)) < 0) return -1;
        } else
            free(merged);
        if (t->n_mrg == t->mrg_cap) {
            size_t cap = t->mrg_cap ? t->mrg_cap * 2 : 1024;
            char **p = realloc(t->mrg, cap * sizeof *p);
            if (!p) return -1;
            t->mrg = p;
            t->mrg_cap = cap;
        }
        if (!(t->mrg[t->n_mrg] = dup_cat(t->tok[l], " ", t->tok[r]))) return -1;
        t->n_mrg++;
        /* Take the word list: re-counting below appends to lists (possibly
         * this one, if the table grows it moves), so work on a detached copy. */
        uint32_t *wl = best->wl, wl_n = best->wl_n;
        best->wl = NULL;
        best->wl_n = best->wl_cap = 0;
        for (uint32_t k = 0; k < wl_n; k++) {
            uint32_t wi = wl[k];
            if (t->seen[wi] == (uint32_t)t->n_mrg) continue;
            t->seen[wi] = (uint32_t)t->n_mrg;
            word *w = &t->words[wi];
            size_t i = 0;
            while (i + 1 < w->n && !(w->sym[i] == l && w->sym[i + 1] == r)) i++;
            if (i + 1 >= w->n) continue;
            if (pairs_count_word(t, wi, -1) != 0) { free(wl); return -1; }
            size_t o = 0;
            for (i = 0; i < w->n;) {
                if (i + 1 < w->n && w->sym[i] == l && w->sym[i + 1] == r) {
                    w->sym[o++] = m;
                    i += 2;
                } else
                    w->sym[o++] = w->sym[i++];
            }
            w->n = o;
            if (pairs_count_word(t, wi, 1) != 0) { free(wl); return -1; }
        }
        free(wl);
        if (flush_dirty(t) != 0) return -1;
    }
    return 0;
}

int bpe_train(const char *text, size_t len, size_t n_merges, bpe_vocab *out,
              char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    trainer t = {.text = text, .epoch = 1};
    int rc = -1;
    pretokenizer *pre = pretokenizer_open(err, errlen);
    if (!pre) return -1;
    size_t cap = 1u << 14;
    t.pc_off = malloc(cap * sizeof *t.pc_off);
    t.pc_len = calloc(cap, sizeof *t.pc_len);
    t.pc_count = malloc(cap * sizeof *t.pc_count);
    t.pc_mask = cap - 1;
    if (!t.pc_off || !t.pc_len || !t.pc_count) goto oom;
    int sr = pretokenizer_split(pre, text, len, piece_add, &t, err, errlen);
    if (sr > 0) goto oom;
    if (sr < 0) goto out;

    for (int i = 0; i < N_HEAD; i++) {
        char *s = strdup(HEAD_TOKENS[i]);
        if (!s || tok_add(&t, s) < 0) goto oom;
    }
    int32_t byte_id[256];
    for (unsigned b = 0; b < 256; b++) {
        char u[3];
        byte_symbol(b, u);
        char *s = strdup(u);
        if (!s || (byte_id[b] = tok_add(&t, s)) < 0) goto oom;
    }
    t.words = calloc(t.pc_n ? t.pc_n : 1, sizeof *t.words);
    t.seen = calloc(t.pc_n ? t.pc_n : 1, sizeof *t.seen);
    if (!t.words || !t.seen) goto oom;
    for (size_t i = 0; i <= t.pc_mask; i++) {
        if (!t.pc_len[i]) continue;
        word *w = &t.words[t.n_words++];
        w->n = t.pc_len[i];
        w->freq = t.pc_count[i];
        if (!(w->sym = malloc(w->n * sizeof *w->sym))) goto oom;
        for (size_t k = 0; k < w->n; k++) w->sym[k] = byte_id[(unsigned char)text[t.pc_off[i] + k]];
        if (pairs_count_word(&t, (uint32_t)(w - t.words), 1) != 0) goto oom;
    }
    if ((!t.pairs && pairs_grow(&t) != 0) || flush_dirty(&t) != 0) goto oom;
    if (train_loop(&t, n_merges) != 0) goto oom;
    for (int i = 0; i < N_TAIL; i++) {
        char *s = strdup(TAIL_TOKENS[i]);
        if (!s || tok_add(&t, s) < 0) goto oom;
    }

    out->n_tokens = t.n_tok;
    out->tokens = t.tok;
    out->types = malloc(t.n_tok * sizeof *out->types);
    if (!out->types) goto oom;
    for (size_t i = 0; i < t.n_tok; i++)
        out->types[i] = (i < N_HEAD || i >= t.n_tok - N_TAIL) ? 3 : 1;
    out->merges = t.mrg;
    out->n_merges = t.n_mrg;
    out->bos = 0;
    out->eos = 1;
    t.tok = NULL; t.n_tok = 0;
    t.mrg = NULL; t.n_mrg = 0;
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "bpe_train: out of memory");
out:
    if (rc != 0) {
        free(out->types);
        memset(out, 0, sizeof *out);
    }
    trainer_free(&t);
    pretokenizer_close(pre);
    return rc;
}

void bpe_vocab_free(bpe_vocab *v) {
    for (size_t i = 0; i < v->n_tokens; i++) free(v->tokens[i]);
    for (size_t i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->tokens);
    free(v->types);
    free(v->merges);
    memset(v, 0, sizeof *v);
}

int bpe_vocab_write_gguf(const bpe_vocab *v, const char *path, char *err, size_t errlen) {
    gguf_writer *w = gguf_writer_new(32);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    gguf_w_str(w, "general.name", "flashpool synthetic byte-level BPE tokenizer");
    gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_w_str(w, "tokenizer.ggml.pre", "deepseek-v3");
    gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, v->n_tokens);
    gguf_w_arr_i32(w, "tokenizer.ggml.token_type", v->types, v->n_tokens);
    gguf_w_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges, v->n_merges);
    gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    int rc = gguf_writer_begin(w, path, err, errlen);
    if (rc == 0) rc = gguf_writer_finish(w, err, errlen);
    gguf_writer_free(w);
    return rc;
}
