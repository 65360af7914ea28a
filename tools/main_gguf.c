/* main_gguf.c — flashpool-gguf: validate a GGUF v3 file and print what is in
 * it (summary, tensor directory, metadata). Opening runs the full reader
 * validation, so this doubles as a "is this file sound?" check: exit 0 when
 * the file is valid, 1 when it is refused, 2 on bad usage. */
#include "gguf.h"
#include "quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: flashpool-gguf [--tensors] [--kv] [--max-elems N] FILE.gguf\n"
            "\n"
            "Validates FILE as GGUF v3 (every length, type, dimension and offset) and\n"
            "prints a summary: version, metadata key count, tensor count, tensors and\n"
            "bytes per type, total tensor bytes, alignment and data offset.\n"
            "\n"
            "  --tensors      also list every tensor: name, type, dims, offset, bytes\n"
            "  --kv           also list every metadata key with its type and value\n"
            "  --max-elems N  array elements shown per key with --kv (default 8; 0 = all)\n"
            "  -h, --help     this text\n"
            "\n"
            "Exit status: 0 valid, 1 refused (the reason is printed), 2 usage error.\n");
}

/* Prints a GGUF string with control bytes and quotes escaped. */
static void put_str(FILE *out, const char *s, uint64_t len) {
    fputc('"', out);
    for (uint64_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void put_scalar(FILE *out, uint32_t type, const uint8_t *p) {
    switch (type) {
    case GGUF_U8: fprintf(out, "%u", p[0]); break;
    case GGUF_I8: fprintf(out, "%d", (int8_t)p[0]); break;
    case GGUF_U16: { uint16_t v; memcpy(&v, p, 2); fprintf(out, "%u", v); break; }
    case GGUF_I16: { int16_t v; memcpy(&v, p, 2); fprintf(out, "%d", v); break; }
    case GGUF_U32: { uint32_t v; memcpy(&v, p, 4); fprintf(out, "%u", v); break; }
    case GGUF_I32: { int32_t v; memcpy(&v, p, 4); fprintf(out, "%d", v); break; }
    case GGUF_F32: { float v; memcpy(&v, p, 4); fprintf(out, "%.9g", v); break; }
    case GGUF_BOOL: fputs(p[0] ? "true" : "false", out); break;
    case GGUF_U64: { uint64_t v; memcpy(&v, p, 8); fprintf(out, "%llu", (unsigned long long)v); break; }
    case GGUF_I64: { int64_t v; memcpy(&v, p, 8); fprintf(out, "%lld", (long long)v); break; }
    case GGUF_F64: { double v; memcpy(&v, p, 8); fprintf(out, "%.17g", v); break; }
    default: fputs("?", out);
    }
}

static void print_kv(const gguf_file *f, const gguf_kv *kv, uint64_t max_elems, FILE *out) {
    static const unsigned esz[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    fprintf(out, "  %.*s: ", (int)kv->key.len, kv->key.s);
    if (kv->type == GGUF_STR) {
        gguf_str s;
        memcpy(&s.len, kv->val, 8);
        fprintf(out, "string = ");
        put_str(out, (const char *)kv->val + 8, s.len);
        fputc('\n', out);
        return;
    }
    if (kv->type != GGUF_ARR) {
        fprintf(out, "%s = ", gguf_vtype_name(kv->type));
        put_scalar(out, kv->type, kv->val);
        fputc('\n', out);
        return;
    }
    fprintf(out, "array of %llu %s", (unsigned long long)kv->arr_len, gguf_vtype_name(kv->arr_type));
    if (kv->arr_type == GGUF_ARR) { /* nested: shown by shape only */
        fputc('\n', out);
        return;
    }
    uint64_t n = max_elems && kv->arr_len > max_elems ? max_elems : kv->arr_len;
    fputs(" = [", out);
    for (uint64_t i = 0; i < n; i++) {
        if (i) fputs(", ", out);
        if (kv->arr_type == GGUF_STR) {
            gguf_str s;
            if (gguf_arr_get_str(f, kv, i, &s) == 0) put_str(out, s.s, s.len);
        } else {
            put_scalar(out, kv->arr_type, kv->val + i * esz[kv->arr_type]);
        }
    }
    fputs(n < kv->arr_len ? ", ...]\n" : "]\n", out);
}

static void print_tensor(const gguf_file *f, const gguf_tensor *t, FILE *out) {
    char dims[GGUF_MAX_DIMS * 24] = "";
    size_t o = 0;
    for (uint32_t d = 0; d < t->ndim; d++)
        o += (size_t)snprintf(dims + o, sizeof dims - o, "%s%llu", d ? ", " : "", (unsigned long long)t->dims[d]);
    fprintf(out, "  %-40.*s %-8s [%s] offset %llu (file %llu) %llu bytes\n", (int)t->name.len, t->name.s,
            qtype_name((int)t->type), dims, (unsigned long long)t->offset,
            (unsigned long long)(f->data_offset + t->offset), (unsigned long long)t->nbytes);
}

int main(int argc, char **argv) {
    int want_tensors = 0, want_kv = 0;
    uint64_t max_elems = 8;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--tensors")) {
            want_tensors = 1;
        } else if (!strcmp(a, "--kv")) {
            want_kv = 1;
        } else if (!strcmp(a, "--max-elems")) {
            char *end;
            if (i + 1 >= argc || (max_elems = strtoull(argv[i + 1], &end, 10), *end) || argv[i + 1][0] == '-') {
                fprintf(stderr, "flashpool-gguf: --max-elems needs a non-negative integer\n");
                return 2;
            }
            i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "flashpool-gguf: unknown option '%s' (see --help)\n", a);
            return 2;
        } else if (path) {
            fprintf(stderr, "flashpool-gguf: one FILE only (got '%s' and '%s')\n", path, a);
            return 2;
        } else {
            path = a;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    char err[512];
    gguf_file *f = gguf_open(path, err, sizeof err);
    if (!f) {
        fprintf(stderr, "flashpool-gguf: %s: %s\n", path, err);
        return 1;
    }
    printf("%s\n", path);
    gguf_print_summary(f, stdout);
    if (want_kv) {
        printf("metadata:\n");
        for (uint64_t i = 0; i < f->n_kv; i++) print_kv(f, &f->kv[i], max_elems, stdout);
    }
    if (want_tensors) {
        printf("tensors:\n");
        for (uint64_t i = 0; i < f->n_tensors; i++) print_tensor(f, &f->tensors[i], stdout);
    }
    gguf_close(f);
    return 0;
}
