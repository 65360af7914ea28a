/* gguf.h — GGUF v3 reader (mmap, validate-everything-first) and writer.
 *
 * The reader maps the file read-only and validates the whole header before
 * anything is used: magic, version 3, counts, every string and array length,
 * value types, nesting, tensor names, ranks, dims, types, offsets and sizes
 * inside the file, alignment, and integer overflow. A refused file gives a
 * message naming the problem and the offending key or tensor. Tensor data is
 * never copied. */
#ifndef FP_GGUF_H
#define FP_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum gguf_vtype {
    GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4, GGUF_I32 = 5,
    GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STR = 8, GGUF_ARR = 9, GGUF_U64 = 10, GGUF_I64 = 11,
    GGUF_F64 = 12,
};

#define GGUF_MAX_DIMS 8

typedef struct gguf_str { uint64_t len; const char *s; } gguf_str;  /* not NUL-terminated */

typedef struct gguf_tensor {
    gguf_str name;
    uint32_t ndim;
    uint64_t dims[GGUF_MAX_DIMS];   /* dims[0] innermost */
    uint32_t type;                  /* enum qtype */
    uint64_t offset;                /* relative to data start */
    uint64_t nelem;
    uint64_t nbytes;
    const uint8_t *data;            /* inside the mapping */
} gguf_tensor;

typedef struct gguf_kv {
    gguf_str key;
    uint32_t type;                  /* enum gguf_vtype */
    uint32_t arr_type;              /* element type when type == GGUF_ARR */
    uint64_t arr_len;
    const uint8_t *val;             /* raw little-endian value / array payload */
} gguf_kv;

typedef struct gguf_file {
    const uint8_t *base;            /* mapping (or caller buffer) */
    size_t size;
    int mapped;                     /* 1 when we own an mmap */
    uint32_t version;
    uint64_t n_tensors, n_kv;
    uint32_t alignment;
    uint64_t data_offset;           /* file offset of tensor data */
    gguf_kv *kv;
    gguf_tensor *tensors;
} gguf_file;

/* Open and validate. On failure returns NULL and writes a one-line reason
 * (naming the key/tensor at fault) into err. */
gguf_file *gguf_open(const char *path, char *err, size_t errlen);
/* Same validation over a caller-owned buffer (used by fuzzers); buf must
 * outlive the result. */
gguf_file *gguf_open_buffer(const void *buf, size_t size, char *err, size_t errlen);
void gguf_close(gguf_file *f);

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Typed accessors: return 0 on success, -1 if missing or of the wrong type. */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);      /* exactly U32 */
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out);      /* U64 or U32 */
int gguf_get_f32(const gguf_file *f, const char *key, float *out);         /* F32/F64/U32/I32 */
int gguf_get_bool(const gguf_file *f, const char *key, int *out);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);
/* Arrays: element i of an array kv. */
int gguf_arr_get_i64(const gguf_kv *kv, uint64_t i, int64_t *out);        /* any integer elem type */
int gguf_arr_get_f64(const gguf_kv *kv, uint64_t i, double *out);         /* float or integer */
/* String arrays: O(1) after the first call (index built lazily on open). */
int gguf_arr_get_str(const gguf_file *f, const gguf_kv *kv, uint64_t i, gguf_str *out);

/* Human summary: tensor count, per-type tensor count and bytes. */
void gguf_print_summary(const gguf_file *f, FILE *out);

/* Raw stored bytes of kv's value (arrays: from the element-type field on;
 * strings: from the length prefix). Returns the byte count, 0 if kv is not
 * one of f's entries. Used to copy metadata between files. */
size_t gguf_kv_raw(const gguf_file *f, const gguf_kv *kv, const uint8_t **raw);
const char *gguf_vtype_name(uint32_t type);     /* "u32", "string", ...; "?" */

/* ---- writer -------------------------------------------------------------- */
typedef struct gguf_writer gguf_writer;
gguf_writer *gguf_writer_new(uint32_t alignment);
void gguf_writer_free(gguf_writer *w);
void gguf_w_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_w_u64(gguf_writer *w, const char *key, uint64_t v);
void gguf_w_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_w_f32(gguf_writer *w, const char *key, float v);
void gguf_w_bool(gguf_writer *w, const char *key, int v);
void gguf_w_str(gguf_writer *w, const char *key, const char *v);
void gguf_w_arr_u32(gguf_writer *w, const char *key, const uint32_t *v, uint64_t n);
void gguf_w_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
void gguf_w_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n);
void gguf_w_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n);
/* Any fixed-size scalar / array element type (not STR/ARR); host values. */
void gguf_w_scalar(gguf_writer *w, const char *key, uint32_t type, const void *v);
void gguf_w_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *v, uint64_t n);
/* Copy one metadata entry (any type, nested arrays included) from an open file. */
void gguf_w_kv_copy(gguf_writer *w, const gguf_file *f, const gguf_kv *kv);
/* Declare a tensor (data written later, in declaration order). */
void gguf_w_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t ndim, const uint64_t *dims);
/* Write header + directory to path.tmp; then stream each tensor's bytes with
 * gguf_writer_put (exactly nbytes per tensor, in order); gguf_writer_finish
 * pads, fsyncs and renames to path. All return 0 / -1 with err filled. */
int gguf_writer_begin(gguf_writer *w, const char *path, char *err, size_t errlen);
int gguf_writer_put(gguf_writer *w, const void *data, size_t n, char *err, size_t errlen);
int gguf_writer_finish(gguf_writer *w, char *err, size_t errlen);

#endif
