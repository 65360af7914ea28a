/* fuzz_gguf.c — libFuzzer target for the GGUF reader (gguf_open_buffer).
 * Any input must be refused with a message, or accepted with every promise
 * of the reader holding: all tensors inside the input, aligned and
 * non-overlapping, every name and key found again by lookup, string-array
 * elements inside the input. A broken promise aborts (a libFuzzer crash).
 * Build and run: make fuzz (top level) or make -C tests/fuzz run. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"

#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "fuzz_gguf: broken promise: %s (line %d)\n", #c, __LINE__); \
            abort();                                                               \
        }                                                                          \
    } while (0)

static void check(const gguf_file *f, const uint8_t *buf, size_t n) {
    CHECK(f->base == buf && f->size == n && f->version == 3);
    CHECK(f->alignment && !(f->alignment & (f->alignment - 1)));
    CHECK(f->data_offset % f->alignment == 0);
    char name[80];
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        CHECK(t->name.len >= 1 && t->name.len < sizeof name);
        memcpy(name, t->name.s, t->name.len);
        name[t->name.len] = 0;
        CHECK(gguf_find_tensor(f, name) == t);
        CHECK(t->ndim >= 1 && t->ndim <= GGUF_MAX_DIMS && qtype_known((int)t->type));
        CHECK(t->offset % f->alignment == 0);
        CHECK(f->data_offset <= n && t->offset <= n - f->data_offset &&
              t->nbytes <= n - f->data_offset - t->offset);
        CHECK(t->data == buf + f->data_offset + t->offset);
        for (uint64_t j = 0; j < i; j++) { /* pairwise: inputs are small */
            const gguf_tensor *u = &f->tensors[j];
            CHECK(u->offset + u->nbytes <= t->offset || t->offset + t->nbytes <= u->offset);
        }
    }
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        char *key = malloc(kv->key.len + 1);
        CHECK(key != NULL);
        memcpy(key, kv->key.s, kv->key.len);
        key[kv->key.len] = 0;
        CHECK(strlen(key) == kv->key.len && gguf_find_kv(f, key) == kv);
        free(key);
        const uint8_t *raw;
        size_t rn = gguf_kv_raw(f, kv, &raw);
        CHECK(rn > 0 && raw >= buf && raw + rn <= buf + n);
        if (kv->type == GGUF_ARR && kv->arr_type == GGUF_STR)
            for (uint64_t j = 0; j < kv->arr_len; j++) {
                gguf_str s;
                CHECK(gguf_arr_get_str(f, kv, j, &s) == 0);
                CHECK((const uint8_t *)s.s >= raw && s.len <= rn && (const uint8_t *)s.s + s.len <= raw + rn);
            }
        if (kv->type == GGUF_ARR && kv->arr_len) {
            int64_t iv;
            double dv;
            (void)gguf_arr_get_i64(kv, kv->arr_len - 1, &iv);
            (void)gguf_arr_get_f64(kv, kv->arr_len - 1, &dv);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512];
    err[0] = 0;
    gguf_file *f = gguf_open_buffer(data, size, err, sizeof err);
    if (!f) {
        CHECK(err[0] != 0);
        return 0;
    }
    check(f, data, size);
    gguf_close(f);
    return 0;
}
