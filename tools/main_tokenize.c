/* main_tokenize.c — flashpool-tokenize: the tokenizer from the command line.
 * Encodes and decodes line by line (JSON strings / JSON id arrays, or hex for
 * arbitrary bytes), shows pre-tokenizer pieces, prints special-token ids,
 * and trains small synthetic vocabularies. It is the C side of the
 * tests/tokenizer cross-check against Hugging Face tokenizers.js. */
#include "bpe_train.h"
#include "gguf.h"
#include "pretokenizer.h"
#include "tokenizer.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: flashpool-tokenize [MODE] [options]\n"
            "\n"
            "Modes (default: encode). Input is read from stdin, one item per line;\n"
            "one result line is written per input line.\n"
            "  encode   line = JSON string of text; prints its token ids as a JSON array.\n"
            "           Text is plain text: special-token strings in it are NOT control tokens.\n"
            "  decode   line = JSON array of token ids; prints the text as a JSON string,\n"
            "           produced by the streaming decoder (ill-formed UTF-8 -> U+FFFD).\n"
            "  pieces   line = JSON string; prints the pre-tokenizer pieces as a JSON array\n"
            "           of strings (needs no model).\n"
            "  info     prints vocabulary size, BOS/EOS and the DeepSeek special-token ids.\n"
            "  train    learns a synthetic byte-level BPE vocabulary from a corpus and\n"
            "           writes it as a GGUF (for tests; needs --corpus and --out).\n"
            "\n"
            "Options:\n"
            "  -m, --model FILE.gguf  model (or tokenizer-only GGUF) to read tokenizer.ggml.*\n"
            "                         from; required by encode, decode and info\n"
            "  --raw                  encode/pieces: each line is plain text (the newline is\n"
            "                         not part of it), not JSON\n"
            "  --hex                  text is hex-encoded bytes instead of JSON strings: input\n"
            "                         of encode/pieces, output of decode/pieces (any bytes,\n"
            "                         NUL and invalid UTF-8 included)\n"
            "  --corpus FILE          train: UTF-8 text to learn from\n"
            "  --merges N             train: number of merges to learn (default 4000)\n"
            "  --out FILE.gguf        train: where to write the vocabulary\n"
            "  -h, --help             this text\n"
            "\n"
            "Examples:\n"
            "  echo '\"Hello, 世界!\"' | flashpool-tokenize -m model.gguf\n"
            "  echo '[0,1,2]' | flashpool-tokenize decode -m model.gguf\n"
            "  flashpool-tokenize train --corpus text.txt --merges 6000 --out vocab.gguf\n"
            "\n"
            "Exit status: 0 ok, 1 error (message on stderr), 2 usage error.\n");
}

typedef struct opts {
    const char *mode, *model, *corpus, *out;
    size_t merges;
    int raw, hex;
} opts;

/* JSON string output. cJSON cannot print a string containing NUL, which a
 * decode can legitimately produce, hence this small writer. Input here is
 * always valid UTF-8 (the stream decoder guarantees it), so only quotes,
 * backslashes and control characters need escaping. */
static void put_json_string(FILE *o, const char *s, size_t n) {
    fputc('"', o);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fprintf(o, "\\%c", c);
        else if (c == '\n') fputs("\\n", o);
        else if (c == '\r') fputs("\\r", o);
        else if (c == '\t') fputs("\\t", o);
        else if (c < 0x20) fprintf(o, "\\u%04x", c);
        else fputc(c, o);
    }
    fputc('"', o);
}

static void put_hex(FILE *o, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) fprintf(o, "%02x", (unsigned char)s[i]);
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* cJSON decodes "\u0000" into a NUL that then silently ends its C string;
 * refuse such lines instead (an escape is a 'u0000' after an odd number of
 * backslashes). */
static int has_nul_escape(const char *line, size_t n) {
    for (size_t i = 0; i + 5 <= n; i++) {
        if (memcmp(line + i, "u0000", 5) != 0) continue;
        size_t k = 0;
        while (k < i && line[i - 1 - k] == '\\') k++;
        if (k % 2 == 1) return 1;
    }
    return 0;
}

/* Turns one input line into text bytes (in *buf, malloc'd). 0 / -1 with a
 * message naming the line. */
static int line_text(const opts *o, char *line, size_t n, size_t lineno, char **buf, size_t *len) {
    *buf = NULL;
    if (o->raw) {
        if (!(*buf = malloc(n + 1))) return -1;
        memcpy(*buf, line, n);
        *len = n;
        return 0;
    }
    if (o->hex) {
        if (n % 2) {
            fprintf(stderr, "flashpool-tokenize: line %zu: odd number of hex digits\n", lineno);
            return -1;
        }
        if (!(*buf = malloc(n / 2 + 1))) return -1;
        for (size_t i = 0; i < n; i += 2) {
            int hi = hexval(line[i]), lo = hexval(line[i + 1]);
            if (hi < 0 || lo < 0) {
                fprintf(stderr, "flashpool-tokenize: line %zu: not hex\n", lineno);
                free(*buf);
                return -1;
            }
            (*buf)[i / 2] = (char)(hi << 4 | lo);
        }
        *len = n / 2;
        return 0;
    }
    cJSON *j = cJSON_ParseWithLength(line, n);
    if (!j || !cJSON_IsString(j)) {
        fprintf(stderr, "flashpool-tokenize: line %zu: expected a JSON string (use --raw for plain"
                " text)\n", lineno);
        cJSON_Delete(j);
        return -1;
    }
    if (has_nul_escape(line, n)) {
        fprintf(stderr, "flashpool-tokenize: line %zu: U+0000 cannot pass through JSON here; use"
                " --hex\n", lineno);
        cJSON_Delete(j);
        return -1;
    }
    *len = strlen(j->valuestring);
    *buf = malloc(*len + 1);
    if (*buf) memcpy(*buf, j->valuestring, *len);
    cJSON_Delete(j);
    return *buf ? 0 : -1;
}

static int do_encode(const opts *o, const tokenizer *t, char *line, size_t n, size_t lineno) {
    char *text;
    size_t len;
    if (line_text(o, line, n, lineno, &text, &len) != 0) return -1;
    tok_ids ids = {0};
    int rc = tokenizer_encode(t, text, len, &ids);
    free(text);
    if (rc != 0) {
        fprintf(stderr, "flashpool-tokenize: line %zu: encoding failed\n", lineno);
        free(ids.ids);
        return -1;
    }
    putchar('[');
    for (size_t i = 0; i < ids.n; i++) printf(i ? ",%d" : "%d", ids.ids[i]);
    puts("]");
    free(ids.ids);
    return 0;
}

static int do_decode(const opts *o, const tokenizer *t, char *line, size_t n, size_t lineno) {
    cJSON *j = cJSON_ParseWithLength(line, n);
    if (!j || !cJSON_IsArray(j)) {
        fprintf(stderr, "flashpool-tokenize: line %zu: expected a JSON array of token ids\n", lineno);
        cJSON_Delete(j);
        return -1;
    }
    size_t cap = 256, used = 0;
    char *buf = malloc(cap);
    tok_stream st = {0};
    int rc = buf ? 0 : -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
        if (rc) break;
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (v < 0 || v >= tokenizer_n_vocab(t) || v != (double)(int32_t)v) {
            fprintf(stderr, "flashpool-tokenize: line %zu: %s is not a token id (vocabulary has"
                    " %d)\n", lineno, cJSON_IsNumber(e) ? "value" : "non-number", tokenizer_n_vocab(t));
            cJSON_Delete(j);
            free(buf);
            return -1;
        }
        size_t tl;
        tokenizer_token_bytes(t, (int32_t)v, &tl);
        size_t need = 3 * (tl + 8);          /* worst case: every byte -> U+FFFD */
        if (cap - used < need) {
            while (cap - used < need) cap *= 2;
            char *p = realloc(buf, cap);
            if (!p) { rc = -1; break; }
            buf = p;
        }
        int w = tok_stream_push(&st, t, (int32_t)v, buf + used, cap - used);
        if (w < 0) { rc = -1; break; }
        used += (size_t)w;
    }
    if (rc == 0) {
        if (cap - used < 16) {
            char *p = realloc(buf, cap + 16);
            if (p) { buf = p; cap += 16; }
        }
        int w = tok_stream_flush(&st, buf + used, cap - used);
        if (w < 0) rc = -1;
        else used += (size_t)w;
    }
    if (rc == 0) {
        if (o->hex) put_hex(stdout, buf, used);
        else put_json_string(stdout, buf, used);
        putchar('\n');
    } else
        fprintf(stderr, "flashpool-tokenize: line %zu: decoding failed\n", lineno);
    free(buf);
    cJSON_Delete(j);
    return rc;
}

typedef struct piece_out { const opts *o; int first; } piece_out;

static int print_piece(void *ctx, const char *p, size_t len) {
    piece_out *po = ctx;
    if (!po->first) putchar(',');
    po->first = 0;
    if (po->o->hex) { putchar('"'); put_hex(stdout, p, len); putchar('"'); }
    else put_json_string(stdout, p, len);
    return 0;
}

static int do_pieces(const opts *o, const pretokenizer *pre, char *line, size_t n, size_t lineno) {
    char *text, err[256];
    size_t len;
    if (line_text(o, line, n, lineno, &text, &len) != 0) return -1;
    piece_out po = {o, 1};
    putchar('[');
    int rc = pretokenizer_split(pre, text, len, print_piece, &po, err, sizeof err);
    puts("]");
    free(text);
    if (rc != 0) fprintf(stderr, "flashpool-tokenize: line %zu: %s\n", lineno, err);
    return rc;
}

static int do_info(const tokenizer *t) {
    static const char *const names[] = {
        "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
        "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
        "<\xef\xbd\x9cUser\xef\xbd\x9c>", "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>",
        "<think>", "</think>", "\xef\xbd\x9c" "DSML\xef\xbd\x9c",
    };
    printf("vocab %d\nbos %d\neos %d\n", tokenizer_n_vocab(t), tokenizer_bos(t), tokenizer_eos(t));
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        printf("special %s %d\n", names[i], tokenizer_special(t, names[i]));
    return 0;
}

static int do_train(const opts *o) {
    if (!o->corpus || !o->out) {
        fprintf(stderr, "flashpool-tokenize: train needs --corpus FILE and --out FILE.gguf\n");
        return 2;
    }
    FILE *f = fopen(o->corpus, "rb");
    if (!f) {
        fprintf(stderr, "flashpool-tokenize: cannot open corpus %s: %s\n", o->corpus, strerror(errno));
        return 1;
    }
    size_t cap = 1 << 20, len = 0, r;
    char *text = malloc(cap);
    while (text && (r = fread(text + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            char *p = realloc(text, cap *= 2);
            if (!p) { free(text); text = NULL; }
            else text = p;
        }
    }
    fclose(f);
    if (!text) {
        fprintf(stderr, "flashpool-tokenize: out of memory reading %s\n", o->corpus);
        return 1;
    }
    bpe_vocab v;
    char err[512];
    int rc = bpe_train(text, len, o->merges, &v, err, sizeof err);
    free(text);
    if (rc != 0) {
        fprintf(stderr, "flashpool-tokenize: %s\n", err);
        return 1;
    }
    rc = bpe_vocab_write_gguf(&v, o->out, err, sizeof err);
    if (rc != 0) fprintf(stderr, "flashpool-tokenize: writing %s: %s\n", o->out, err);
    else fprintf(stderr, "flashpool-tokenize: %s: %zu tokens, %zu merges\n", o->out, v.n_tokens, v.n_merges);
    bpe_vocab_free(&v);
    return rc ? 1 : 0;
}

int main(int argc, char **argv) {
    opts o = {.mode = "encode", .merges = 4000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && more) o.model = argv[++i];
        else if (!strcmp(a, "--raw")) o.raw = 1;
        else if (!strcmp(a, "--hex")) o.hex = 1;
        else if (!strcmp(a, "--corpus") && more) o.corpus = argv[++i];
        else if (!strcmp(a, "--out") && more) o.out = argv[++i];
        else if (!strcmp(a, "--merges") && more) {
            char *end;
            unsigned long long v = strtoull(argv[++i], &end, 10);
            if (*end || v == 0 || v > 1000000) {
                fprintf(stderr, "flashpool-tokenize: --merges wants 1..1000000\n");
                return 2;
            }
            o.merges = (size_t)v;
        } else if (a[0] != '-' && (!strcmp(a, "encode") || !strcmp(a, "decode") || !strcmp(a, "pieces") ||
                                   !strcmp(a, "info") || !strcmp(a, "train")))
            o.mode = a;
        else {
            fprintf(stderr, "flashpool-tokenize: unknown or incomplete argument '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (o.raw && o.hex) {
        fprintf(stderr, "flashpool-tokenize: --raw and --hex exclude each other\n");
        return 2;
    }
    if (!strcmp(o.mode, "train")) return do_train(&o);

    char err[512];
    pretokenizer *pre = NULL;
    tokenizer *t = NULL;
    if (!strcmp(o.mode, "pieces")) {
        if (!(pre = pretokenizer_open(err, sizeof err))) {
            fprintf(stderr, "flashpool-tokenize: %s\n", err);
            return 1;
        }
    } else {
        if (!o.model) {
            fprintf(stderr, "flashpool-tokenize: %s needs --model FILE.gguf (see --help)\n", o.mode);
            return 2;
        }
        gguf_file *g = gguf_open(o.model, err, sizeof err);
        if (!g) {
            fprintf(stderr, "flashpool-tokenize: %s: %s\n", o.model, err);
            return 1;
        }
        t = tokenizer_open(g, err, sizeof err);
        gguf_close(g);
        if (!t) {
            fprintf(stderr, "flashpool-tokenize: %s: %s\n", o.model, err);
            return 1;
        }
    }
    int rc = 0;
    if (!strcmp(o.mode, "info")) {
        rc = do_info(t);
    } else {
        char *line = NULL;
        size_t lcap = 0, lineno = 0;
        ssize_t n;
        while (rc == 0 && (n = getline(&line, &lcap, stdin)) >= 0) {
            lineno++;
            if (n > 0 && line[n - 1] == '\n') n--;
            if (!strcmp(o.mode, "encode")) rc = do_encode(&o, t, line, (size_t)n, lineno);
            else if (!strcmp(o.mode, "decode")) rc = do_decode(&o, t, line, (size_t)n, lineno);
            else rc = do_pieces(&o, pre, line, (size_t)n, lineno);
        }
        free(line);
    }
    if (fflush(stdout) != 0) rc = -1;
    tokenizer_close(t);
    pretokenizer_close(pre);
    return rc ? 1 : 0;
}
