/* test_tokenizer.c — the tokenizer contract on a hand-built vocabulary:
 * GPT-2 byte map, merge order and leftmost tie-breaking, the DeepSeek
 * pre-tokenizer splits, plain-text handling of special strings, decode of
 * control tokens, streaming UTF-8 hold-back and U+FFFD rules, arbitrary
 * bytes (NUL, invalid UTF-8) round-tripping, megabyte inputs, load errors,
 * and the tiny-s1 test model's special ids. The comparison with Hugging Face
 * tokenizers.js on large corpora lives in tests/tokenizer/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "gguf.h"
#include "pretokenizer.h"
#include "tokenizer.h"

/* ---- a small vocabulary ---------------------------------------------------- */

/* GPT-2 bytes_to_unicode written from its definition (independently of
 * tokenizer.c): printable bytes other than space keep their code point, the
 * other 68 get U+0100.. in byte order. */
static unsigned byte_cp(unsigned b) {
    int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    if (keep) return b;
    unsigned n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
    return 256 + n;
}

/* Byte-level form of a byte string (UTF-8 of the mapped code points). */
static char *bl(const char *s) {
    static char buf[8][64];
    static int k;
    char *o = buf[k++ & 7], *p = o;
    for (; *s; s++) {
        unsigned cp = byte_cp((unsigned char)*s);
        if (cp < 0x80) *p++ = (char)cp;
        else { *p++ = (char)(0xC0 | cp >> 6); *p++ = (char)(0x80 | (cp & 63)); }
    }
    *p = 0;
    return o;
}

#define ID_BYTE(b) (2 + (b))
enum {
    ID_GT = 258, ID_HE, ID_GTHE, ID_AA, ID_AAA, ID_LT_T, ID_LT_U, ID_NORMAL_U,   /* 258..265 */
    ID_THINK, ID_USER, ID_DSML, ID_CTRL_T, ID_CTRL_U, ID_UNUSED, N_VOCAB        /* 266..271 */
};

typedef struct vocab_opts {
    int skip_byte;          /* leave this byte's token out (>= 0), else -1 */
    int with_bos_key;
} vocab_opts;

/* Writes the test vocabulary to a temp GGUF and opens a tokenizer on it. */
static tokenizer *open_vocab(vocab_opts vo, char *err, size_t errlen) {
    static char toks[N_VOCAB][48];
    const char *tp[N_VOCAB];
    int32_t types[N_VOCAB];
    strcpy(toks[0], "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>");
    strcpy(toks[1], "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>");
    for (unsigned b = 0; b < 256; b++) {
        char one[2] = {(char)b, 0};
        if (b == 0) strcpy(toks[ID_BYTE(0)], "\xc4\x80");       /* U+0100 */
        else strcpy(toks[ID_BYTE(b)], bl(one));
        if ((int)b == vo.skip_byte) strcpy(toks[ID_BYTE(b)], "<removed>");
    }
    strcpy(toks[ID_GT], bl(" t"));
    strcpy(toks[ID_HE], "he");
    strcpy(toks[ID_GTHE], bl(" the"));
    strcpy(toks[ID_AA], "aa");
    strcpy(toks[ID_AAA], "aaa");
    strcpy(toks[ID_LT_T], "<t");
    strcpy(toks[ID_LT_U], "<u");
    strcpy(toks[ID_NORMAL_U], "yq");                /* same string as control ID_CTRL_U */
    strcpy(toks[ID_THINK], "<think>");
    strcpy(toks[ID_USER], "<\xef\xbd\x9cUser\xef\xbd\x9c>");
    strcpy(toks[ID_DSML], "\xef\xbd\x9c" "DSML\xef\xbd\x9c");
    strcpy(toks[ID_CTRL_T], "zq");                  /* control only: no normal "zq" */
    strcpy(toks[ID_CTRL_U], "yq");
    strcpy(toks[ID_UNUSED], "<\xef\xbd\x9cunused\xef\xbd\x9c>");
    for (int i = 0; i < N_VOCAB; i++) {
        tp[i] = toks[i];
        types[i] = (i < 2 || i >= ID_THINK) ? 3 : 1;
    }
    types[ID_UNUSED] = 5;
    char m[10][48];
    snprintf(m[0], 48, "%s t", bl(" "));          /* rank 0: Ġ t */
    strcpy(m[1], "h e");                           /* rank 1 */
    snprintf(m[2], 48, "%s he", bl(" t"));        /* rank 2: Ġt he */
    strcpy(m[3], "a a");                           /* rank 3 */
    strcpy(m[4], "aa a");                          /* rank 4 */
    strcpy(m[5], "z q");                           /* rank 5: result only a control token: skipped */
    strcpy(m[6], "y q");                           /* rank 6: result is the normal "yq" */
    strcpy(m[7], "< t");
    strcpy(m[8], "< u");
    strcpy(m[9], "x nosuchtoken");                 /* unknown half: ignored */
    const char *mp[10];
    for (int i = 0; i < 10; i++) mp[i] = m[i];

    char path[] = "/tmp/test_tokenizer_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    gguf_writer *w = gguf_writer_new(32);
    gguf_w_arr_str(w, "tokenizer.ggml.tokens", tp, N_VOCAB);
    gguf_w_arr_i32(w, "tokenizer.ggml.token_type", types, N_VOCAB);
    gguf_w_arr_str(w, "tokenizer.ggml.merges", mp, 10);
    if (vo.with_bos_key) {
        gguf_w_u32(w, "tokenizer.ggml.bos_token_id", ID_USER);   /* deliberately unusual */
        gguf_w_u32(w, "tokenizer.ggml.eos_token_id", ID_DSML);
    }
    char werr[256];
    assert_int_equal(gguf_writer_begin(w, path, werr, sizeof werr), 0);
    assert_int_equal(gguf_writer_finish(w, werr, sizeof werr), 0);
    gguf_writer_free(w);
    gguf_file *g = gguf_open(path, werr, sizeof werr);
    unlink(path);
    assert_non_null(g);
    tokenizer *t = tokenizer_open(g, err, errlen);
    gguf_close(g);
    return t;
}

static int setup(void **st) {
    char err[256] = "";
    tokenizer *t = open_vocab((vocab_opts){-1, 0}, err, sizeof err);
    if (!t) fprintf(stderr, "tokenizer_open: %s\n", err);
    *st = t;
    return t ? 0 : -1;
}

static int teardown(void **st) {
    tokenizer_close(*st);
    return 0;
}

/* Encodes and compares with the expected id list. */
static void expect_ids(const tokenizer *t, const char *text, size_t len, const int32_t *want, size_t n) {
    tok_ids ids = {0};
    assert_int_equal(tokenizer_encode(t, text, len, &ids), 0);
    if (ids.n != n) {
        fprintf(stderr, "encode(%.*s): %zu ids, want %zu:", (int)len, text, ids.n, n);
        for (size_t i = 0; i < ids.n; i++) fprintf(stderr, " %d", ids.ids[i]);
        fprintf(stderr, "\n");
    }
    assert_int_equal(ids.n, n);
    for (size_t i = 0; i < n; i++) assert_int_equal(ids.ids[i], want[i]);
    free(ids.ids);
}
#define EXPECT(t, s, ...) do { \
        const int32_t w_[] = {__VA_ARGS__}; \
        expect_ids(t, s, strlen(s), w_, sizeof w_ / sizeof w_[0]); \
    } while (0)

/* Concatenated decoded bytes of ids == input. */
static void expect_round_trip(const tokenizer *t, const char *text, size_t len) {
    tok_ids ids = {0};
    assert_int_equal(tokenizer_encode(t, text, len, &ids), 0);
    char *back = malloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < ids.n; i++) {
        size_t l;
        const char *b = tokenizer_token_bytes(t, ids.ids[i], &l);
        assert_non_null(b);
        assert_true(o + l <= len);
        memcpy(back + o, b, l);
        o += l;
    }
    assert_int_equal(o, len);
    assert_memory_equal(back, text, len);
    free(back);
    free(ids.ids);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_byte_map(void **st) {
    const tokenizer *t = *st;
    assert_int_equal(tokenizer_n_vocab(t), N_VOCAB);
    /* Known GPT-2 table entries: ' ' -> U+0120, '\n' -> U+010A, 0xAD -> U+0143. */
    assert_int_equal(byte_cp(' '), 0x120);
    assert_int_equal(byte_cp('\n'), 0x10A);
    assert_int_equal(byte_cp(0xAD), 0x143);
    assert_int_equal(byte_cp(0x7F), 0x121);
    for (unsigned b = 0; b < 256; b++) {
        char c = (char)b;
        /* every single byte (even NUL, even invalid UTF-8 alone) is one token */
        expect_ids(t, &c, 1, (const int32_t[]){ID_BYTE(b)}, 1);
        size_t l;
        const char *d = tokenizer_token_bytes(t, ID_BYTE(b), &l);
        assert_int_equal(l, 1);
        assert_int_equal((unsigned char)d[0], b);
    }
}

static void test_merge_order(void **st) {
    const tokenizer *t = *st;
    EXPECT(t, " the", ID_GTHE);
    EXPECT(t, "the", ID_BYTE('t'), ID_HE);
    EXPECT(t, " then", ID_GTHE, ID_BYTE('n'));
    EXPECT(t, " he", ID_BYTE(' '), ID_HE);        /* no "Ġ he" merge */
    /* "aaa": the two "a a" pairs tie at rank 3; the leftmost merges first,
     * then "aa a" (rank 4) applies. Rightmost-first would leave [a, aa]. */
    EXPECT(t, "aaa", ID_AAA);
    /* "aaaa": after the first "a a", the remaining "a a" (rank 3) beats
     * "aa a" (rank 4). */
    EXPECT(t, "aaaa", ID_AA, ID_AA);
    EXPECT(t, "aaaaa", ID_AA, ID_AAA);
}

static void test_special_strings_are_plain_text(void **st) {
    const tokenizer *t = *st;
    /* "zq": the merge "z q" would spell the control token zq; BPE never
     * produces control ids, so the merge does not fire. */
    EXPECT(t, "zq", ID_BYTE('z'), ID_BYTE('q'));
    /* "yq" exists as a normal token too: BPE reaches that one. */
    EXPECT(t, "yq", ID_NORMAL_U);
    EXPECT(t, " yq", ID_BYTE(' '), ID_NORMAL_U);
    /* "<t>" is two pieces ("<t" by the punctuation+letters rule, ">") */
    EXPECT(t, "<t>", ID_LT_T, ID_BYTE('>'));
    /* The real DeepSeek strings split like any other text. */
    const char *s = "<think>hi</think><\xef\xbd\x9cUser\xef\xbd\x9c>\xef\xbd\x9c" "DSML\xef\xbd\x9c";
    tok_ids ids = {0};
    assert_int_equal(tokenizer_encode(t, s, strlen(s), &ids), 0);
    for (size_t i = 0; i < ids.n; i++) assert_true(ids.ids[i] < ID_THINK);
    assert_true(ids.n > 10);
    free(ids.ids);
    expect_round_trip(t, s, strlen(s));
}

static void test_special_lookup_and_decode(void **st) {
    const tokenizer *t = *st;
    assert_int_equal(tokenizer_special(t, "<think>"), ID_THINK);
    assert_int_equal(tokenizer_special(t, "<\xef\xbd\x9cUser\xef\xbd\x9c>"), ID_USER);
    assert_int_equal(tokenizer_special(t, "\xef\xbd\x9c" "DSML\xef\xbd\x9c"), ID_DSML);
    assert_int_equal(tokenizer_special(t, "yq"), ID_CTRL_U);      /* control beats normal */
    assert_int_equal(tokenizer_special(t, "zq"), ID_CTRL_T);
    assert_int_equal(tokenizer_special(t, "<\xef\xbd\x9cunused\xef\xbd\x9c>"), ID_UNUSED);
    assert_int_equal(tokenizer_special(t, "</think>"), -1);
    assert_int_equal(tokenizer_special(t, ""), -1);
    /* No bos/eos keys in this GGUF: found by their DeepSeek strings. */
    assert_int_equal(tokenizer_bos(t), 0);
    assert_int_equal(tokenizer_eos(t), 1);
    size_t l;
    const char *b = tokenizer_token_bytes(t, 0, &l);
    assert_int_equal(l, strlen("<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"));
    assert_memory_equal(b, "<\xef\xbd\x9c" "begin", 8);
    b = tokenizer_token_bytes(t, ID_THINK, &l);
    assert_int_equal(l, 7);
    assert_memory_equal(b, "<think>", 7);
    b = tokenizer_token_bytes(t, ID_GTHE, &l);       /* byte-level: Ġ -> space */
    assert_int_equal(l, 4);
    assert_memory_equal(b, " the", 4);
    assert_null(tokenizer_token_bytes(t, -1, &l));
    assert_null(tokenizer_token_bytes(t, N_VOCAB, &l));
}

static void test_bos_eos_from_metadata(void **st) {
    (void)st;
    char err[256];
    tokenizer *t = open_vocab((vocab_opts){-1, 1}, err, sizeof err);
    assert_non_null(t);
    assert_int_equal(tokenizer_bos(t), ID_USER);
    assert_int_equal(tokenizer_eos(t), ID_DSML);
    tokenizer_close(t);
}

typedef struct pieces { char buf[512]; size_t n; char out[16][64]; size_t len[16]; } pieces;

static int collect(void *ctx, const char *p, size_t len) {
    pieces *ps = ctx;
    assert_true(ps->n < 16 && len < 64 && len > 0);
    memcpy(ps->out[ps->n], p, len);
    ps->len[ps->n++] = len;
    return 0;
}

/* Splits text and compares with want[] (NULL-terminated; text lengths by
 * strlen, so only for texts without NUL). */
static void expect_pieces(const pretokenizer *p, const char *text, size_t len, const char *const *want) {
    pieces ps = {.n = 0};
    char err[256];
    assert_int_equal(pretokenizer_split(p, text, len, collect, &ps, err, sizeof err), 0);
    size_t n = 0;
    while (want[n]) n++;
    if (ps.n != n) {
        fprintf(stderr, "pieces of \"%.*s\":", (int)len, text);
        for (size_t i = 0; i < ps.n; i++) fprintf(stderr, " [%.*s]", (int)ps.len[i], ps.out[i]);
        fprintf(stderr, "\n");
    }
    assert_int_equal(ps.n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ps.len[i], strlen(want[i]));
        assert_memory_equal(ps.out[i], want[i], ps.len[i]);
    }
}
#define PIECES(p, s, ...) expect_pieces(p, s, strlen(s), (const char *const[]){__VA_ARGS__, NULL})

static void test_pretokenizer_splits(void **st) {
    (void)st;
    char err[256];
    pretokenizer *p = pretokenizer_open(err, sizeof err);
    assert_non_null(p);
    /* digits in groups of 3 (stage 1), CJK runs (stage 2), then stage 3 */
    PIECES(p, "Hello, world! 12345 \xe4\xbd\xa0\xe5\xa5\xbd",
           "Hello", ",", " world", "!", " ", "123", "45", " ", "\xe4\xbd\xa0\xe5\xa5\xbd");
    /* a whitespace run gives its last space to the next word: \s+(?!\S) */
    PIECES(p, "    int x;", "   ", " int", " x", ";");
    /* newline runs: \s*[\r\n]+ */
    PIECES(p, "a\n\n  b", "a", "\n\n", " ", " b");
    /* punctuation absorbs the newlines after it */
    PIECES(p, "end.\n\nNext", "end", ".\n\n", "Next");
    /* one ASCII punctuation char + ASCII letters */
    PIECES(p, "x.y 's", "x", ".y", " '", "s");
    /* CJK + kana run vs Latin; U+3005 (々) is not in the class */
    PIECES(p, "\xe4\xb8\xad\xe6\x96\x87" "abc\xe6\x97\xa5\xe6\x9c\xac\xe3\x82\xab\xe3\x83\x8a",
           "\xe4\xb8\xad\xe6\x96\x87", "abc", "\xe6\x97\xa5\xe6\x9c\xac\xe3\x82\xab\xe3\x83\x8a");
    /* \p{N} is Unicode: fullwidth digits group by 3 too */
    PIECES(p, "\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93\xef\xbc\x94",
           "\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93", "\xef\xbc\x94");
    /* a combining mark stays with its letter; NBSP (White_Space) before a
     * letter is the optional lead character */
    PIECES(p, "e\xcc\x81 \xc2\xa0x", "e\xcc\x81", " ", "\xc2\xa0x");
    /* \s is Unicode White_Space: NBSP joins the newline run (an ASCII-only
     * \s would give "x", "\u00a0", "\n", "y") */
    PIECES(p, "x\xc2\xa0\ny", "x", "\xc2\xa0\n", "y");
    /* U+180E is not White_Space (Oniguruma/HF semantics; PCRE2's own \s
     * with UCP says it is, which would give "x", " \u180e\n", "y") */
    PIECES(p, "x \xe1\xa0\x8e\ny", "x", " ", "\xe1\xa0\x8e", "\n", "y");
    /* invalid UTF-8 matches nothing and forms gap pieces; NUL is a Cc char
     * and may lead a word */
    expect_pieces(p, "ab\xff\xfe" "cd", 6, (const char *const[]){"ab", "\xff\xfe", "cd", NULL});
    pieces ps = {.n = 0};
    assert_int_equal(pretokenizer_split(p, "a\0b", 3, collect, &ps, err, sizeof err), 0);
    assert_int_equal(ps.n, 2);
    assert_int_equal(ps.len[1], 2);
    assert_memory_equal(ps.out[1], "\0b", 2);
    /* empty input: no pieces */
    ps.n = 0;
    assert_int_equal(pretokenizer_split(p, "", 0, collect, &ps, err, sizeof err), 0);
    assert_int_equal(ps.n, 0);
    pretokenizer_close(p);
}

static void test_arbitrary_bytes_round_trip(void **st) {
    const tokenizer *t = *st;
    uint32_t s = 12345;
    char buf[300];
    for (int iter = 0; iter < 400; iter++) {
        size_t n = 1 + (size_t)iter % 257;
        for (size_t i = 0; i < n; i++) {
            s = s * 1664525u + 1013904223u;
            unsigned r = s >> 24;
            /* mostly text-like bytes with runs of a/space/newline, some raw */
            buf[i] = r < 96 ? "aa a\n\t.t he"[r % 12] : (char)(r < 200 ? 0x20 + r % 95 : r);
        }
        expect_round_trip(t, buf, n);
    }
    const char *multi = "na\xc3\xafve \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xd8\xb3\xd9\x84\xd8\xa7\xd9\x85 \xe2\x80\x94 \xef\xbc\x91\xef\xbc\x92";
    expect_round_trip(t, multi, strlen(multi));
}

static void test_long_inputs(void **st) {
    const tokenizer *t = *st;
    /* One 1 MB piece of 'a': all "a a" merges first (leftmost), then the
     * odd tail "aa a" -> "aaa". Exercises the heap BPE at scale. */
    size_t n = 1000001;
    char *big = malloc(n);
    memset(big, 'a', n);
    tok_ids ids = {0};
    assert_int_equal(tokenizer_encode(t, big, n, &ids), 0);
    assert_int_equal(ids.n, (n - 3) / 2 + 1);
    for (size_t i = 0; i + 1 < ids.n; i++) assert_int_equal(ids.ids[i], ID_AA);
    assert_int_equal(ids.ids[ids.n - 1], ID_AAA);
    free(ids.ids);
    /* 1 MB of spaces then a word, 1 MB of CJK, 1 MB of newlines + dots:
     * long regex matches (JIT stack, backtracking) still round-trip. */
    memset(big, ' ', n - 1);
    big[n - 1] = 'x';
    expect_round_trip(t, big, n);
    for (size_t i = 0; i + 3 <= n; i += 3) memcpy(big + i, "\xe4\xb8\xad", 3);
    expect_round_trip(t, big, n / 3 * 3);
    for (size_t i = 0; i < n; i++) big[i] = "\n.\r "[i % 4];
    expect_round_trip(t, big, n);
    free(big);
}

/* Streams ids and returns the concatenated output (flush included). */
static size_t stream_all(const tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap) {
    tok_stream s = {0};
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int w = tok_stream_push(&s, t, ids[i], out + o, cap - o);
        assert_true(w >= 0);
        o += (size_t)w;
    }
    int w = tok_stream_flush(&s, out + o, cap - o);
    assert_true(w >= 0);
    return o + (size_t)w;
}

static void test_stream_decode(void **st) {
    const tokenizer *t = *st;
    char out[64];
    tok_stream s = {0};
    /* 中 = e4 b8 ad: nothing until the last byte arrives */
    assert_int_equal(tok_stream_push(&s, t, ID_BYTE(0xe4), out, sizeof out), 0);
    assert_int_equal(tok_stream_push(&s, t, ID_BYTE(0xb8), out, sizeof out), 0);
    assert_int_equal(s.n_pending, 2);
    assert_int_equal(tok_stream_push(&s, t, ID_BYTE(0xad), out, sizeof out), 3);
    assert_memory_equal(out, "\xe4\xb8\xad", 3);
    assert_int_equal(tok_stream_flush(&s, out, sizeof out), 0);
    /* too small a buffer: -1 and nothing consumed */
    assert_int_equal(tok_stream_push(&s, t, ID_BYTE(0xf0), out, sizeof out), 0);
    assert_int_equal(tok_stream_push(&s, t, ID_BYTE(0x9f), out, sizeof out), 0);
    assert_int_equal(tok_stream_push(&s, t, ID_BYTE(0x98), out, sizeof out), 0);
    assert_int_equal(tok_stream_push(&s, t, ID_GTHE, out, 3), -1);
    assert_int_equal(s.n_pending, 3);
    /* the 3-byte emoji prefix is cut by " the": one U+FFFD for the prefix */
    assert_int_equal(tok_stream_push(&s, t, ID_GTHE, out, sizeof out), 7);
    assert_memory_equal(out, "\xef\xbf\xbd the", 7);
    assert_int_equal(tok_stream_push(&s, t, -1, out, sizeof out), -1);
    assert_int_equal(tok_stream_push(&s, t, N_VOCAB, out, sizeof out), -1);

    char buf[256];
    size_t n;
    /* truncated at the end: flush gives one U+FFFD for the whole prefix */
    n = stream_all(t, (const int32_t[]){ID_BYTE('a'), ID_BYTE(0xf0), ID_BYTE(0x9f), ID_BYTE(0x98)}, 4, buf, sizeof buf);
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "a\xef\xbf\xbd", 4);
    /* an encoded surrogate (ed a0 80) is three ill-formed bytes: three U+FFFD */
    n = stream_all(t, (const int32_t[]){ID_BYTE(0xed), ID_BYTE(0xa0), ID_BYTE(0x80)}, 3, buf, sizeof buf);
    assert_int_equal(n, 9);
    assert_memory_equal(buf, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9);
    /* lone continuation byte and overlong lead */
    n = stream_all(t, (const int32_t[]){ID_BYTE(0x80), ID_BYTE(0xc0), ID_BYTE(0xaf), ID_BYTE('z')}, 4, buf, sizeof buf);
    assert_int_equal(n, 10);
    assert_memory_equal(buf, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz", 10);
    /* control tokens come out literally, after completing text */
    n = stream_all(t, (const int32_t[]){ID_BYTE(0xc3), ID_BYTE(0xa9), ID_THINK, ID_BYTE(0xc3)}, 4, buf, sizeof buf);
    assert_int_equal(n, 2 + 7 + 3);
    assert_memory_equal(buf, "\xc3\xa9<think>\xef\xbf\xbd", 12);
    /* a partial sequence interrupted by a control token */
    n = stream_all(t, (const int32_t[]){ID_BYTE(0xe4), ID_THINK}, 2, buf, sizeof buf);
    assert_int_equal(n, 10);
    assert_memory_equal(buf, "\xef\xbf\xbd<think>", 10);
}

static void test_open_errors(void **st) {
    (void)st;
    char err[256] = "";
    /* no tokenizer keys at all */
    char path[] = "/tmp/test_tokenizer_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    gguf_writer *w = gguf_writer_new(32);
    gguf_w_str(w, "general.name", "no tokenizer here");
    assert_int_equal(gguf_writer_begin(w, path, err, sizeof err), 0);
    assert_int_equal(gguf_writer_finish(w, err, sizeof err), 0);
    gguf_writer_free(w);
    gguf_file *g = gguf_open(path, err, sizeof err);
    unlink(path);
    assert_non_null(g);
    assert_null(tokenizer_open(g, err, sizeof err));
    assert_non_null(strstr(err, "tokenizer.ggml.tokens"));
    gguf_close(g);
    /* a vocabulary without the token for byte 0x41 */
    err[0] = 0;
    assert_null(open_vocab((vocab_opts){0x41, 0}, err, sizeof err));
    assert_non_null(strstr(err, "byte 0x41"));
}

/* The shared tiny test model, when present (FP_VECTORS or ../shared/vectors
 * relative to the repository root the tests run from). */
static void test_tiny_s1_model(void **st) {
    (void)st;
    char path[512];
    const char *vec = getenv("FP_VECTORS");
    snprintf(path, sizeof path, "%s/tiny-s1.gguf", vec ? vec : "../shared/vectors");
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "test_tiny_s1_model: %s not found, skipped\n", path);
        skip();
    }
    char err[256];
    gguf_file *g = gguf_open(path, err, sizeof err);
    assert_non_null(g);
    tokenizer *t = tokenizer_open(g, err, sizeof err);
    gguf_close(g);
    assert_non_null(t);
    /* ids from tiny-s1.gguf.json "special_token_ids" */
    assert_int_equal(tokenizer_n_vocab(t), 512);
    assert_int_equal(tokenizer_bos(t), 0);
    assert_int_equal(tokenizer_eos(t), 1);
    assert_int_equal(tokenizer_special(t, "<\xef\xbd\x9cUser\xef\xbd\x9c>"), 361);
    assert_int_equal(tokenizer_special(t, "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>"), 362);
    assert_int_equal(tokenizer_special(t, "<think>"), 363);
    assert_int_equal(tokenizer_special(t, "</think>"), 364);
    assert_int_equal(tokenizer_special(t, "\xef\xbd\x9c" "DSML\xef\xbd\x9c"), 365);
    /* its first merges are "Ġ t", "h e", "Ġt he": " the" is one token (id 260) */
    EXPECT(t, " the", 260);
    const char *s = "<\xef\xbd\x9cUser\xef\xbd\x9c> the router<think>";
    tok_ids ids = {0};
    assert_int_equal(tokenizer_encode(t, s, strlen(s), &ids), 0);
    for (size_t i = 0; i < ids.n; i++) assert_true(ids.ids[i] < 361 || ids.ids[i] > 365);
    free(ids.ids);
    expect_round_trip(t, s, strlen(s));
    tokenizer_close(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_map),
        cmocka_unit_test(test_merge_order),
        cmocka_unit_test(test_special_strings_are_plain_text),
        cmocka_unit_test(test_special_lookup_and_decode),
        cmocka_unit_test(test_bos_eos_from_metadata),
        cmocka_unit_test(test_pretokenizer_splits),
        cmocka_unit_test(test_arbitrary_bytes_round_trip),
        cmocka_unit_test(test_long_inputs),
        cmocka_unit_test(test_stream_decode),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_tiny_s1_model),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
