/* tokenizer.c — DeepSeek V4 tokenizer from GGUF metadata (contract in
 * tokenizer.h): vocabulary and merge tables, byte-level BPE per pre-token
 * piece, token -> bytes decoding and streaming UTF-8 hold-back.
 *
 * The algorithm is Hugging Face tokenizers' byte-level BPE: pieces come from
 * pretokenizer.c (the official DeepSeek regex list); each piece's bytes are
 * mapped through the GPT-2 bytes_to_unicode table, one symbol per byte; then
 * the adjacent pair with the lowest merge rank is merged, ties going to the
 * leftmost pair, until no pair has a rank. tests/tokenizer/ checks that the
 * ids are identical to tokenizers.js on the same vocab/merges.
 *
 * Token classes: GGUF token types 3 (control), 4 (user-defined) and 5
 * (unused) are "special": BPE never produces them (plain text can never turn
 * into a control token), they decode to their literal string, and
 * tokenizer_special() prefers them. All other tokens are byte-level strings. */
#include "tokenizer.h"

#include "pretokenizer.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TT_NORMAL = 1, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5 };

#define BOS_STRING "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
#define EOS_STRING "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"

/* Open-addressing table of token ids keyed by their string (strings live in
 * the tokenizer's blob, so a slot is just an id; -1 = empty). */
typedef struct str_map {
    int32_t *slot;
    size_t mask;
} str_map;

/* Merge table keyed by the (left id, right id) pair. */
typedef struct merge_entry {
    uint64_t key;      /* left << 32 | right; UINT64_MAX = empty */
    int32_t rank;
    int32_t result;
} merge_entry;

struct tokenizer {
    int n_vocab;
    int32_t bos, eos;
    pretokenizer *pre;
    /* Raw GGUF token strings and their decoded bytes (one blob each). */
    char *raw;
    uint32_t *raw_off, *raw_len;
    char *dec;
    uint32_t *dec_off, *dec_len;
    uint8_t *special;            /* 1 for types 3/4/5 */
    str_map all;                 /* every token; duplicates: special beats normal, else last */
    merge_entry *merges;
    size_t merge_mask;
    int32_t byte_token[256];     /* id of the one-symbol token for each byte */
};

/* ---- GPT-2 byte <-> unicode map ------------------------------------------ */

/* Bytes that are printable and not space keep their code point; the other 68
 * are numbered from U+0100 in byte order (so ' ' -> U+0120, '\n' -> U+010A). */
static uint32_t byte_to_cp(unsigned b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return b;
    unsigned n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
    return 256 + n;
}

static size_t utf8_put(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 63));
        o[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 63));
    o[2] = (char)(0x80 | ((cp >> 6) & 63)); o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* Length of the well-formed UTF-8 sequence at s (n bytes available), per
 * Unicode Table 3-7; 0 if ill-formed. If the bytes are a valid but truncated
 * prefix, *need gets the full length (else 0). */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *need) {
    *need = 0;
    unsigned c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    for (size_t i = 1; i < len; i++) {
        if (i >= n) { *need = len; return 0; }
        unsigned b = s[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF)) return 0;
    }
    return len;
}

/* Number of bytes of the maximal ill-formed subpart at s (Unicode 3.9 "best
 * practice", the same rule as WHATWG TextDecoder): one U+FFFD each. */
static size_t utf8_bad_span(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    unsigned lo = 0x80, hi = 0xBF;
    size_t len;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 1;
    size_t i = 1;
    for (; i < len && i < n; i++) {
        unsigned b = s[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF)) break;
    }
    return i;
}

/* Decodes one code point of a known-valid sequence. */
static uint32_t utf8_cp(const unsigned char *s, size_t len) {
    if (len == 1) return s[0];
    uint32_t cp = s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) cp = cp << 6 | (s[i] & 63);
    return cp;
}

/* ---- hash tables ---------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;            /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27; x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static size_t table_size(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    return cap;
}

static int map_init(str_map *m, size_t n) {
    size_t cap = table_size(n);
    m->slot = malloc(cap * sizeof *m->slot);
    if (!m->slot) return -1;
    memset(m->slot, 0xff, cap * sizeof *m->slot);
    m->mask = cap - 1;
    return 0;
}

static int32_t *map_find_slot(const tokenizer *t, const str_map *m, const char *s, size_t n) {
    size_t i = (size_t)hash_bytes(s, n) & m->mask;
    for (;; i = (i + 1) & m->mask) {
        int32_t id = m->slot[i];
        if (id < 0) return &m->slot[i];
        if (t->raw_len[id] == n && memcmp(t->raw + t->raw_off[id], s, n) == 0) return &m->slot[i];
    }
}

/* Id stored under string s, or -1. */
static int32_t map_get(const tokenizer *t, const str_map *m, const char *s, size_t n) {
    return *map_find_slot(t, m, s, n);
}

static merge_entry *merge_slot(merge_entry *tab, size_t mask, uint64_t key) {
    size_t i = (size_t)mix64(key) & mask;
    while (tab[i].key != UINT64_MAX && tab[i].key != key) i = (i + 1) & mask;
    return &tab[i];
}

static const merge_entry *merge_find(const tokenizer *t, int32_t left, int32_t right) {
    if (!t->merges) return NULL;
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    const merge_entry *e = merge_slot(t->merges, t->merge_mask, key);
    return e->key == key ? e : NULL;
}

/* ---- open / close --------------------------------------------------------- */

static tokenizer *fail(tokenizer *t, char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    tokenizer_close(t);
    return NULL;
}

void tokenizer_close(tokenizer *t) {
    if (!t) return;
    pretokenizer_close(t->pre);
    free(t->raw); free(t->raw_off); free(t->raw_len);
    free(t->dec); free(t->dec_off); free(t->dec_len);
    free(t->special);
    free(t->all.slot);
    free(t->merges);
    free(t);
}

/* Decoded bytes of a byte-level token string: each code point back through
 * the inverse byte map. Returns 0, or -1 if some code point is not in the
 * map (then the caller keeps the literal string). */
static int byte_decode(const int16_t *inv, const char *s, size_t n, char *out, size_t *outlen) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t need, l = utf8_seq((const unsigned char *)s + i, n - i, &need);
        if (l == 0) return -1;
        uint32_t cp = utf8_cp((const unsigned char *)s + i, l);
        if (cp >= 512 || inv[cp] < 0) return -1;
        out[o++] = (char)inv[cp];
        i += l;
    }
    *outlen = o;
    return 0;
}

static int load_tokens(tokenizer *t, const gguf_file *f, char *err, size_t errlen) {
    const gguf_kv *tk = gguf_find_kv(f, "tokenizer.ggml.tokens");
    if (!tk || tk->type != GGUF_ARR || tk->arr_type != GGUF_STR) {
        snprintf(err, errlen, "tokenizer: GGUF has no tokenizer.ggml.tokens string array"
                 " (is this a model file with an embedded tokenizer?)");
        return -1;
    }
    if (tk->arr_len == 0 || tk->arr_len > (1u << 30)) {
        snprintf(err, errlen, "tokenizer: tokenizer.ggml.tokens has %llu entries (need 1..2^30)",
                 (unsigned long long)tk->arr_len);
        return -1;
    }
    size_t n = (size_t)tk->arr_len;
    t->n_vocab = (int)n;
    const gguf_kv *ty = gguf_find_kv(f, "tokenizer.ggml.token_type");
    if (ty && (ty->type != GGUF_ARR || ty->arr_len != n)) {
        snprintf(err, errlen, "tokenizer: tokenizer.ggml.token_type must be an integer array of %zu"
                 " entries (one per token)", n);
        return -1;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        gguf_str s;
        if (gguf_arr_get_str(f, tk, i, &s) != 0) {
            snprintf(err, errlen, "tokenizer: tokenizer.ggml.tokens[%zu] is unreadable", i);
            return -1;
        }
        total += (size_t)s.len;
        if (total > 0xFFFFFFF0u) {
            snprintf(err, errlen, "tokenizer: token strings exceed 4 GiB in total");
            return -1;
        }
    }
    t->raw = malloc(total + 1);
    t->dec = malloc(total + 1);
    t->raw_off = malloc(n * sizeof *t->raw_off);
    t->raw_len = malloc(n * sizeof *t->raw_len);
    t->dec_off = malloc(n * sizeof *t->dec_off);
    t->dec_len = malloc(n * sizeof *t->dec_len);
    t->special = calloc(n, 1);
    if (!t->raw || !t->dec || !t->raw_off || !t->raw_len || !t->dec_off || !t->dec_len || !t->special) {
        snprintf(err, errlen, "tokenizer: out of memory for %zu tokens", n);
        return -1;
    }
    int16_t inv[512];
    memset(inv, 0xff, sizeof inv);
    for (unsigned b = 0; b < 256; b++) inv[byte_to_cp(b)] = (int16_t)b;
    size_t off = 0, doff = 0;
    for (size_t i = 0; i < n; i++) {
        gguf_str s;
        gguf_arr_get_str(f, tk, i, &s);
        memcpy(t->raw + off, s.s, (size_t)s.len);
        t->raw_off[i] = (uint32_t)off;
        t->raw_len[i] = (uint32_t)s.len;
        if (ty) {
            int64_t v;
            if (gguf_arr_get_i64(ty, i, &v) != 0) {
                snprintf(err, errlen, "tokenizer: tokenizer.ggml.token_type[%zu] is not an integer", i);
                return -1;
            }
            t->special[i] = v == TT_CONTROL || v == TT_USER_DEFINED || v == TT_UNUSED;
        }
        /* Decoded form: specials (and, defensively, strings that are not
         * byte-level at all) are their literal text. Never longer than raw. */
        size_t dl;
        if (t->special[i] || byte_decode(inv, s.s, (size_t)s.len, t->dec + doff, &dl) != 0) {
            memcpy(t->dec + doff, s.s, (size_t)s.len);
            dl = (size_t)s.len;
        }
        t->dec_off[i] = (uint32_t)doff;
        t->dec_len[i] = (uint32_t)dl;
        off += (size_t)s.len;
        doff += dl;
    }
    return 0;
}

/* t->all serves tokenizer_special; norm (byte-level tokens only, needed just
 * while resolving merges) keeps the last id of a duplicated string, as
 * parsing a tokenizer.json vocab object does. */
static int build_maps(tokenizer *t, const gguf_file *f, str_map *norm, char *err, size_t errlen) {
    size_t n = (size_t)t->n_vocab;
    if (map_init(&t->all, n) != 0 || map_init(norm, n) != 0) {
        snprintf(err, errlen, "tokenizer: out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = t->raw + t->raw_off[i];
        int32_t *a = map_find_slot(t, &t->all, s, t->raw_len[i]);
        if (*a < 0 || t->special[i] || !t->special[*a]) *a = (int32_t)i;
        if (!t->special[i]) *map_find_slot(t, norm, s, t->raw_len[i]) = (int32_t)i;
    }
    for (unsigned b = 0; b < 256; b++) {
        char u[4];
        size_t l = utf8_put(byte_to_cp(b), u);
        t->byte_token[b] = map_get(t, norm, u, l);
        if (t->byte_token[b] < 0) {
            snprintf(err, errlen, "tokenizer: the vocabulary has no token for byte 0x%02x (\"%.*s\");"
                     " a byte-level BPE vocabulary needs all 256", b, (int)l, u);
            return -1;
        }
    }

    t->bos = t->eos = -1;
    uint64_t v;
    if (gguf_get_u64(f, "tokenizer.ggml.bos_token_id", &v) == 0 && v < n) t->bos = (int32_t)v;
    else t->bos = tokenizer_special(t, BOS_STRING);
    if (gguf_get_u64(f, "tokenizer.ggml.eos_token_id", &v) == 0 && v < n) t->eos = (int32_t)v;
    else t->eos = tokenizer_special(t, EOS_STRING);
    return 0;
}

/* Merges "left right" -> (left id, right id) -> (rank, id of left+right).
 * A merge whose halves or result are not byte-level tokens can never fire in
 * a consistent vocabulary (HF refuses such files); it is skipped. A repeated
 * pair keeps its last rank, as both HF implementations do. */
static int load_merges(tokenizer *t, const gguf_file *f, const str_map *norm, char *err, size_t errlen) {
    const gguf_kv *mk = gguf_find_kv(f, "tokenizer.ggml.merges");
    if (!mk) return 0;
    if (mk->type != GGUF_ARR || mk->arr_type != GGUF_STR || mk->arr_len > (1u << 30)) {
        snprintf(err, errlen, "tokenizer: tokenizer.ggml.merges must be a string array");
        return -1;
    }
    size_t n = (size_t)mk->arr_len, cap = table_size(n);
    t->merges = malloc(cap * sizeof *t->merges);
    char *buf = malloc(4096);
    if (!t->merges || !buf) {
        free(buf);
        snprintf(err, errlen, "tokenizer: out of memory for %zu merges", n);
        return -1;
    }
    t->merge_mask = cap - 1;
    for (size_t i = 0; i < cap; i++) t->merges[i].key = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        gguf_str s;
        if (gguf_arr_get_str(f, mk, i, &s) != 0) {
            free(buf);
            snprintf(err, errlen, "tokenizer: tokenizer.ggml.merges[%zu] is unreadable", i);
            return -1;
        }
        const char *sp = memchr(s.s, ' ', (size_t)s.len);
        if (!sp || s.len > 4096) continue;
        size_t ll = (size_t)(sp - s.s), rl = (size_t)s.len - ll - 1;
        int32_t l = map_get(t, norm, s.s, ll), r = map_get(t, norm, sp + 1, rl);
        memcpy(buf, s.s, ll);
        memcpy(buf + ll, sp + 1, rl);
        int32_t m = map_get(t, norm, buf, ll + rl);
        if (l < 0 || r < 0 || m < 0) continue;
        uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
        merge_entry *e = merge_slot(t->merges, t->merge_mask, key);
        e->key = key;
        e->rank = (int32_t)i;
        e->result = m;
    }
    free(buf);
    return 0;
}

tokenizer *tokenizer_open(const gguf_file *f, char *err, size_t errlen) {
    tokenizer *t = calloc(1, sizeof *t);
    if (!t) return fail(NULL, err, errlen, "tokenizer: out of memory");
    str_map norm = {0};
    if (load_tokens(t, f, err, errlen) != 0 || build_maps(t, f, &norm, err, errlen) != 0 ||
        load_merges(t, f, &norm, err, errlen) != 0) {
        free(norm.slot);
        tokenizer_close(t);
        return NULL;
    }
    free(norm.slot);
    t->pre = pretokenizer_open(err, errlen);
    if (!t->pre) {
        tokenizer_close(t);
        return NULL;
    }
    return t;
}

int tokenizer_n_vocab(const tokenizer *t) { return t->n_vocab; }
int32_t tokenizer_bos(const tokenizer *t) { return t->bos; }
int32_t tokenizer_eos(const tokenizer *t) { return t->eos; }

int32_t tokenizer_special(const tokenizer *t, const char *str) {
    return map_get(t, &t->all, str, strlen(str));
}

const char *tokenizer_token_bytes(const tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    *len = t->dec_len[id];
    return t->dec + t->dec_off[id];
}

/* ---- encode --------------------------------------------------------------- */

int tok_ids_push(tok_ids *v, int32_t id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->ids, cap * sizeof *p);
        if (!p) return -1;
        v->ids = p;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return 0;
}

/* A candidate merge of the live symbols at left and right. Entries go stale
 * when either side is merged away; they are checked when popped. */
typedef struct cand {
    int32_t rank, left, right, left_id, right_id, result;
} cand;

/* Per-encode work arrays, grown to the longest piece seen. */
typedef struct bpe_work {
    const tokenizer *t;
    tok_ids *out;
    int32_t *id, *next, *prev;
    cand *heap;
    size_t cap, heap_cap, heap_n;
} bpe_work;

static int cand_less(const cand *a, const cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(bpe_work *w, cand c) {
    if (w->heap_n == w->heap_cap) {
        size_t cap = w->heap_cap ? w->heap_cap * 2 : 64;
        cand *h = realloc(w->heap, cap * sizeof *h);
        if (!h) return -1;
        w->heap = h;
        w->heap_cap = cap;
    }
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = c;
    return 0;
}

static cand heap_pop(bpe_work *w) {
    cand top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cand_less(&w->heap[c + 1], &w->heap[c])) c++;
        if (!cand_less(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

static int try_pair(bpe_work *w, int32_t left) {
    int32_t right = w->next[left];
    if (left < 0 || right < 0) return 0;
    const merge_entry *e = merge_find(w->t, w->id[left], w->id[right]);
    if (!e) return 0;
    cand c = {e->rank, left, right, w->id[left], w->id[right], e->result};
    return heap_push(w, c);
}

/* BPE over one piece. Symbols are indexed by the byte position where they
 * start, so "leftmost" is simply the smaller index. O(n log n) per piece. */
static int bpe_piece(void *ctx, const char *piece, size_t len) {
    bpe_work *w = ctx;
    const tokenizer *t = w->t;
    if (len == 1) return tok_ids_push(w->out, t->byte_token[(unsigned char)piece[0]]);
    if (len > (size_t)INT32_MAX) return -1;     /* symbol indices are int32 */
    if (len > w->cap) {
        size_t cap = len > 2 * w->cap ? len : 2 * w->cap;
        int32_t *a = realloc(w->id, cap * sizeof *a);
        if (!a) return -1;
        w->id = a;
        if (!(a = realloc(w->next, cap * sizeof *a))) return -1;
        w->next = a;
        if (!(a = realloc(w->prev, cap * sizeof *a))) return -1;
        w->prev = a;
        w->cap = cap;
    }
    int32_t n = (int32_t)len;
    for (int32_t i = 0; i < n; i++) {
        w->id[i] = t->byte_token[(unsigned char)piece[i]];
        w->prev[i] = i - 1;
        w->next[i] = i + 1 < n ? i + 1 : -1;
    }
    w->heap_n = 0;
    for (int32_t i = 0; i + 1 < n; i++)
        if (try_pair(w, i) != 0) return -1;
    while (w->heap_n) {
        cand c = heap_pop(w);
        /* Stale if the right symbol was merged into something (its slot is
         * no longer next to left) or either side changed id. */
        if (w->next[c.left] != c.right || w->id[c.left] != c.left_id || w->id[c.right] != c.right_id)
            continue;
        w->id[c.left] = c.result;
        int32_t nn = w->next[c.right];
        w->next[c.left] = nn;
        if (nn >= 0) w->prev[nn] = c.left;
        w->next[c.right] = -2;        /* dead: never matches a live "next" */
        w->id[c.right] = -1;
        if ((w->prev[c.left] >= 0 && try_pair(w, w->prev[c.left]) != 0) || try_pair(w, c.left) != 0)
            return -1;
    }
    for (int32_t i = 0; i >= 0; i = w->next[i])
        if (tok_ids_push(w->out, w->id[i]) != 0) return -1;
    return 0;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, tok_ids *out) {
    if (len == 0) return 0;
    if (!text || !out) return -1;
    bpe_work w = {.t = t, .out = out};
    char err[256];
    int rc = pretokenizer_split(t->pre, text, len, bpe_piece, &w, err, sizeof err);
    free(w.id); free(w.next); free(w.prev); free(w.heap);
    return rc == 0 ? 0 : -1;
}

/* ---- streaming decode ----------------------------------------------------- */

/* Writes the complete UTF-8 in in[0..n) to out (NULL: only count), ill-formed
 * subparts as U+FFFD. Unless final, a trailing valid-but-incomplete sequence
 * is not consumed; its length goes to *held. Returns the output size. */
static size_t utf8_clean(const unsigned char *in, size_t n, int final, char *out, size_t *held) {
    static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    size_t o = 0, i = 0;
    *held = 0;
    while (i < n) {
        size_t need, l = utf8_seq(in + i, n - i, &need);
        if (l) {
            if (out) memcpy(out + o, in + i, l);
            o += l;
            i += l;
        } else if (need && !final) {
            *held = n - i;
            break;
        } else {
            if (out) memcpy(out + o, fffd, 3);
            o += 3;
            i += utf8_bad_span(in + i, n - i);
        }
    }
    return o;
}

int tok_stream_push(tok_stream *s, const tokenizer *t, int32_t id, char *out, size_t cap) {
    size_t len;
    const char *b = tokenizer_token_bytes(t, id, &len);
    if (!b || s->n_pending < 0 || s->n_pending > 3) return -1;
    /* Pending bytes + this token, cleaned as one run; what stays incomplete
     * at the end (at most 3 bytes) becomes the new pending. */
    size_t np = (size_t)s->n_pending, n = np + len;
    unsigned char small[256], *buf = n <= sizeof small ? small : malloc(n);
    if (!buf) return -1;
    memcpy(buf, s->pending, np);
    memcpy(buf + np, b, len);
    size_t held, need = utf8_clean(buf, n, 0, NULL, &held);
    int rc = -1;
    if (need <= cap && need <= (size_t)2147483647) {
        utf8_clean(buf, n, 0, out, &held);
        memcpy(s->pending, buf + n - held, held);
        s->n_pending = (int)held;
        rc = (int)need;
    }
    if (buf != small) free(buf);
    return rc;
}

int tok_stream_flush(tok_stream *s, char *out, size_t cap) {
    size_t held;
    if (s->n_pending < 0 || s->n_pending > 3) return -1;
    size_t need = utf8_clean(s->pending, (size_t)s->n_pending, 1, NULL, &held);
    if (need > cap) return -1;
    utf8_clean(s->pending, (size_t)s->n_pending, 1, out, &held);
    s->n_pending = 0;
    return (int)need;
}
