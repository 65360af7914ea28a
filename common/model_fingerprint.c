/* model_fingerprint.c — file size + SHA-256 of the GGUF bytes before the
 * tensor data + the set of tensor types (see model_fingerprint.h). SHA-256
 * is OpenSSL's EVP digest. */
#include "model_fingerprint.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include "quant.h"

int model_fingerprint_compute(const gguf_file *f, model_fingerprint *fp, char *err, size_t errlen) {
    memset(fp, 0, sizeof(*fp));
    fp->file_size = f->size;
    if (f->data_offset > f->size) {
        snprintf(err, errlen, "tensor data offset %llu beyond the file size %zu",
                 (unsigned long long)f->data_offset, f->size);
        return -1;
    }
    unsigned int dlen = 0;
    if (EVP_Digest(f->base, (size_t)f->data_offset, fp->sha256, &dlen, EVP_sha256(), NULL) != 1 || dlen != 32) {
        snprintf(err, errlen, "SHA-256 of the GGUF header failed (OpenSSL EVP_Digest)");
        return -1;
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const uint32_t t = f->tensors[i].type;
        int j = 0;
        while (j < fp->n_types && fp->types[j] < t) j++;
        if (j < fp->n_types && fp->types[j] == t) continue;
        if (fp->n_types == FP_FINGERPRINT_MAX_TYPES) {
            snprintf(err, errlen, "more than %d distinct tensor types", FP_FINGERPRINT_MAX_TYPES);
            return -1;
        }
        memmove(&fp->types[j + 1], &fp->types[j], (size_t)(fp->n_types - j) * sizeof(fp->types[0]));
        fp->types[j] = t;
        fp->n_types++;
    }
    return 0;
}

int model_fingerprint_equal(const model_fingerprint *a, const model_fingerprint *b) {
    return a->file_size == b->file_size && !memcmp(a->sha256, b->sha256, 32) && a->n_types == b->n_types &&
           !memcmp(a->types, b->types, (size_t)a->n_types * sizeof(a->types[0]));
}

static void types_str(const model_fingerprint *fp, char *out, size_t outlen) {
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < fp->n_types && o < outlen; i++) {
        int n = snprintf(out + o, outlen - o, "%s%s", i ? "," : "", qtype_name((int)fp->types[i]));
        if (n < 0) break;
        o += (size_t)n;
    }
}

static void sha_hex(const uint8_t *sha, int bytes, char *out) {
    for (int i = 0; i < bytes; i++) sprintf(out + 2 * i, "%02x", sha[i]);
}

void model_fingerprint_str(const model_fingerprint *fp, char *out, size_t outlen) {
    char hex[65], types[256];
    sha_hex(fp->sha256, 8, hex);
    types_str(fp, types, sizeof types);
    snprintf(out, outlen, "size %llu, sha256 %s…, types %s", (unsigned long long)fp->file_size, hex, types);
}

void model_fingerprint_diff(const model_fingerprint *ours, const model_fingerprint *theirs,
                            char *out, size_t outlen) {
    char a[65], b[65];
    out[0] = 0;
    if (ours->file_size != theirs->file_size) {
        snprintf(out, outlen, "file size %llu here vs %llu there", (unsigned long long)ours->file_size,
                 (unsigned long long)theirs->file_size);
    } else if (memcmp(ours->sha256, theirs->sha256, 32)) {
        sha_hex(ours->sha256, 8, a);
        sha_hex(theirs->sha256, 8, b);
        snprintf(out, outlen, "header sha256 %s… here vs %s… there", a, b);
    } else if (!model_fingerprint_equal(ours, theirs)) {
        char ta[256], tb[256];
        types_str(ours, ta, sizeof ta);
        types_str(theirs, tb, sizeof tb);
        snprintf(out, outlen, "tensor types %s here vs %s there", ta, tb);
    }
}
