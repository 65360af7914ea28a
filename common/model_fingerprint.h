/* model_fingerprint.h — identity of a GGUF model file, compared by an
 * expert node against its coordinator's before it serves (design.md §4):
 * the file size, the SHA-256 of every byte before the tensor data (header,
 * metadata and tensor directory, so names, shapes, types and offsets are all
 * covered) and the set of tensor types. Hashing ~1 MB of header instead of
 * 81 GB of weights keeps HELLO instant; a file whose directory matches but
 * whose weights differ is not detected (documented in docs/protocol.md). */
#ifndef FP_MODEL_FINGERPRINT_H
#define FP_MODEL_FINGERPRINT_H

#include <stddef.h>
#include <stdint.h>
#include "gguf.h"

#define FP_FINGERPRINT_MAX_TYPES 32

typedef struct model_fingerprint {
    uint64_t file_size;
    uint8_t sha256[32];
    int n_types;
    uint32_t types[FP_FINGERPRINT_MAX_TYPES];   /* distinct tensor types, ascending */
} model_fingerprint;

/* From an open file (f->size and the bytes [0, f->data_offset)). 0, or -1
 * with err (OpenSSL failure, too many distinct types). */
int model_fingerprint_compute(const gguf_file *f, model_fingerprint *fp, char *err, size_t errlen);

int model_fingerprint_equal(const model_fingerprint *a, const model_fingerprint *b);

/* "size 20428960, sha256 ab12…(16 hex), types F32,F16,Q8_0,..." */
void model_fingerprint_str(const model_fingerprint *fp, char *out, size_t outlen);

/* One line saying how a (ours) and b (theirs) differ; "" when equal. */
void model_fingerprint_diff(const model_fingerprint *ours, const model_fingerprint *theirs,
                            char *out, size_t outlen);

#endif
