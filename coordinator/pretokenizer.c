/* pretokenizer.c — the DeepSeek V3/V4 pre-tokenizer run by PCRE2.
 *
 * Source of the patterns: the "pre_tokenizer" of the official
 * deepseek-ai/DeepSeek-V3 tokenizer.json (commit e815299; V4 keeps it), as
 * quoted in /work/shared/docs/serving-spec.md section 1.3 and in the
 * tokenizer.json excerpt that section's Appendix A points to. It is a
 * Sequence of three Split pre-tokenizers, all with behavior "Isolated" and
 * invert false, followed by ByteLevel(add_prefix_space=false,
 * use_regex=false); there is no normalizer. "Isolated" keeps both the
 * matches and the gaps between them as pieces, and a Sequence applies each
 * split to every piece the previous one produced, so lookaheads such as
 * \s+(?!\S) never see past the end of the current piece. That is what
 * split_stage does: the subject handed to PCRE2 is always the piece alone.
 *
 * One deliberate translation: the official file is interpreted by Hugging
 * Face tokenizers with Oniguruma, where \s is the Unicode White_Space
 * property. PCRE2's \s (with PCRE2_UCP) also matches U+180E and without UCP
 * only ASCII, and JavaScript's \s adds U+FEFF; tokenizers.js rewrites \s to
 * \p{White_Space} for exactly this reason. We do the same rewrite, so all
 * three agree. Everything else is passed to PCRE2 verbatim. */
#include "pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_STAGES 3

/* The three Split regexes exactly as they read in tokenizer.json after JSON
 * unescaping (the \r and \n inside classes are the raw CR/LF characters
 * there, as they are here). Stage 2's class is U+4E00-U+9FA5 (CJK unified),
 * U+3040-U+309F (hiragana block) and U+30A0-U+30FF (katakana block). */
static const char *const OFFICIAL_PATTERNS[N_STAGES] = {
    "\\p{N}{1,3}",
    "[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+"
    "|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*"
    "|\\s*[\r\n]+"
    "|\\s+(?!\\S)"
    "|\\s+",
};

/* Upper bound for the JIT backtracking stack of one split call. The patterns
 * are simple repeats, so this is never approached on real text; it exists so
 * a pathological input fails with a message instead of overflowing. */
#define JIT_STACK_START (32u * 1024u)
#define JIT_STACK_MAX (8u * 1024u * 1024u)

struct pretokenizer {
    pcre2_code *re[N_STAGES];
};

/* Oniguruma's \s / \S -> \p{White_Space} / \P{White_Space} (see the banner).
 * An escaped backslash is copied as a pair so "\\s" stays a backslash + s. */
static char *rewrite_whitespace_class(const char *pat) {
    size_t n = strlen(pat), cap = n * 8 + 1;
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (pat[i] == '\\' && i + 1 < n) {
            char c = pat[i + 1];
            const char *rep = c == 's' ? "\\p{White_Space}" : c == 'S' ? "\\P{White_Space}" : NULL;
            if (rep) {
                size_t rl = strlen(rep);
                memcpy(out + o, rep, rl);
                o += rl;
            } else {
                out[o++] = pat[i];
                out[o++] = c;
            }
            i++;
            continue;
        }
        out[o++] = pat[i];
    }
    out[o] = '\0';
    return out;
}

pretokenizer *pretokenizer_open(char *err, size_t errlen) {
    pretokenizer *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "pretokenizer: out of memory");
        return NULL;
    }
    for (int k = 0; k < N_STAGES; k++) {
        char *pat = rewrite_whitespace_class(OFFICIAL_PATTERNS[k]);
        if (!pat) {
            snprintf(err, errlen, "pretokenizer: out of memory");
            pretokenizer_close(p);
            return NULL;
        }
        int ec;
        PCRE2_SIZE eoff;
        /* MATCH_INVALID_UTF: arbitrary bytes are legal subjects; an invalid
         * sequence simply matches nothing (PCRE2 >= 10.34). */
        p->re[k] = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec, &eoff, NULL);
        free(pat);
        if (!p->re[k]) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof msg);
            snprintf(err, errlen, "pretokenizer: regex %d does not compile at offset %zu: %s"
                     " (PCRE2 too old? 10.34+ with Unicode support is needed)",
                     k + 1, (size_t)eoff, (const char *)msg);
            pretokenizer_close(p);
            return NULL;
        }
        /* Without JIT support (unusual platforms) pcre2_match interprets the
         * same pattern with the same result, only slower; so no error. */
        (void)pcre2_jit_compile(p->re[k], PCRE2_JIT_COMPLETE);
    }
    return p;
}

void pretokenizer_close(pretokenizer *p) {
    if (!p) return;
    for (int k = 0; k < N_STAGES; k++) pcre2_code_free(p->re[k]);
    free(p);
}

typedef struct split_state {
    const pretokenizer *p;
    pcre2_match_data *md[N_STAGES];
    pcre2_match_context *mctx;
    pretok_piece_fn fn;
    void *ctx;
    char *err;
    size_t errlen;
} split_state;

static int emit(split_state *s, int k, const char *text, size_t len);

/* Split text by stage k's regex ("Isolated": matches and gaps are both
 * pieces) and hand every piece to stage k+1. */
static int split_stage(split_state *s, int k, const char *text, size_t len) {
    size_t pos = 0;
    while (pos < len) {
        int rc = pcre2_match(s->p->re[k], (PCRE2_SPTR)text, len, pos, 0, s->md[k], s->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            snprintf(s->err, s->errlen, "pretokenizer: regex %d failed on a %zu-byte piece: %s",
                     k + 1, len, (const char *)msg);
            return -1;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md[k]);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) {
            /* None of the official patterns can match the empty string. */
            snprintf(s->err, s->errlen, "pretokenizer: regex %d matched empty text", k + 1);
            return -1;
        }
        int r;
        if (ms > pos && (r = emit(s, k, text + pos, ms - pos)) != 0) return r;
        if ((r = emit(s, k, text + ms, me - ms)) != 0) return r;
        pos = me;
    }
    return pos < len ? emit(s, k, text + pos, len - pos) : 0;
}

static int emit(split_state *s, int k, const char *text, size_t len) {
    if (k + 1 == N_STAGES) return s->fn(s->ctx, text, len);
    return split_stage(s, k + 1, text, len);
}

int pretokenizer_split(const pretokenizer *p, const char *text, size_t len,
                       pretok_piece_fn fn, void *ctx, char *err, size_t errlen) {
    if (len == 0) return 0;
    split_state s = {.p = p, .fn = fn, .ctx = ctx, .err = err, .errlen = errlen};
    /* Per-call match state keeps the compiled patterns read-only, so one
     * pretokenizer serves any number of threads. */
    pcre2_jit_stack *js = NULL;
    int rc = -1;
    for (int k = 0; k < N_STAGES; k++) {
        s.md[k] = pcre2_match_data_create_from_pattern(p->re[k], NULL);
        if (!s.md[k]) goto oom;
    }
    s.mctx = pcre2_match_context_create(NULL);
    js = pcre2_jit_stack_create(JIT_STACK_START, JIT_STACK_MAX, NULL);
    if (!s.mctx || !js) goto oom;
    pcre2_jit_stack_assign(s.mctx, NULL, js);
    rc = split_stage(&s, 0, text, len);
    goto done;
oom:
    snprintf(err, errlen, "pretokenizer: out of memory");
done:
    for (int k = 0; k < N_STAGES; k++) pcre2_match_data_free(s.md[k]);
    pcre2_match_context_free(s.mctx);
    pcre2_jit_stack_free(js);
    return rc;
}
