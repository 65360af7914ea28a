/* gguf_write.c — GGUF v3 writer. Metadata and the tensor directory are built
 * in memory; tensor bytes are streamed (never buffered whole) into path.tmp
 * in declaration order, each padded to the alignment; finish fsyncs and
 * renames so a reader never sees a half-written file under the final name.
 *
 * The builder calls (gguf_w_*) return nothing: the first problem (bad key,
 * duplicate, unknown tensor type, out of memory) is remembered and reported
 * by gguf_writer_begin, so callers check one return value. */
#include "errmsg.h"
#include "gguf.h"

#include "quant.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf_write.c writes host values as little-endian; big-endian hosts are not supported"
#endif

#define W_MAGIC 0x46554747u
#define W_MAX_TNAME 64
#define W_MAX_KEY 65535
#define W_OBUF (1u << 20) /* output buffer; larger puts bypass it */

typedef struct wtensor {
    char *name;
    uint32_t type, ndim;
    uint64_t dims[GGUF_MAX_DIMS];
    uint64_t offset, nbytes;
} wtensor;

typedef struct bytes {
    uint8_t *p;
    size_t len, cap;
} bytes;

enum { W_BUILD = 0, W_STREAM, W_DONE, W_FAILED };

struct gguf_writer {
    uint32_t alignment;
    char first_err[320];     /* first builder error, reported by begin */
    bytes kvs;               /* serialized metadata records */
    uint64_t n_kv;
    char **keys;             /* for duplicate detection */
    size_t key_cap;
    int has_align_key;
    uint32_t align_key_val;
    wtensor *t;
    size_t n_t, t_cap;
    uint64_t data_end;       /* next free (aligned) data offset */
    /* streaming state */
    int state;
    int fd;
    char *path, *tmp;
    size_t cur;              /* tensor being written */
    uint64_t cur_done;       /* its bytes so far */
    uint8_t *obuf;
    size_t olen;
};

static const size_t k_scalar_size[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* Records the first builder error; returns -1 for tail calls. */
static int wfail(gguf_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int wfail(gguf_writer *w, const char *fmt, ...) {
    if (w->first_err[0]) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->first_err, sizeof w->first_err, fmt, ap);
    va_end(ap);
    return -1;
}

static int put_bytes(gguf_writer *w, bytes *b, const void *p, size_t n) {
    if (n > SIZE_MAX - b->len) {
        wfail(w, "metadata too large");
        return -1;
    }
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->len + n) nc = nc > SIZE_MAX / 2 ? b->len + n : nc * 2;
        uint8_t *np = realloc(b->p, nc);
        if (!np) {
            wfail(w, "out of memory building GGUF metadata");
            return -1;
        }
        b->p = np;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static int put_u32(gguf_writer *w, bytes *b, uint32_t v) { return put_bytes(w, b, &v, 4); }
static int put_u64(gguf_writer *w, bytes *b, uint64_t v) { return put_bytes(w, b, &v, 8); }
static int put_str(gguf_writer *w, bytes *b, const char *s, size_t n) {
    return put_u64(w, b, n) || put_bytes(w, b, s, n);
}

static int name_ok(const char *s, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f) return 0;
    return 1;
}

gguf_writer *gguf_writer_new(uint32_t alignment) {
    gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->fd = -1;
    w->alignment = alignment ? alignment : 32;
    if (w->alignment & (w->alignment - 1)) wfail(w, "alignment %u is not a power of two", alignment);
    return w;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    if (w->tmp && w->state != W_DONE) unlink(w->tmp); /* abandoned or failed: leave nothing behind */
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->t);
    free(w->kvs.p);
    free(w->path);
    free(w->tmp);
    free(w->obuf);
    free(w);
}

/* Starts a metadata record: validates the key and writes key + type.
 * Returns 0 when the caller should append the value. */
static int kv_begin(gguf_writer *w, const char *key, uint32_t type) {
    if (!w || w->first_err[0]) return -1;
    if (w->state != W_BUILD) {
        wfail(w, "key '%s' added after gguf_writer_begin", key ? key : "(null)");
        return -1;
    }
    size_t n = key ? strlen(key) : 0;
    if (!key || !name_ok(key, n) || n > W_MAX_KEY) {
        wfail(w, "metadata key '%s' is empty, too long or contains control bytes", key ? key : "(null)");
        return -1;
    }
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0) {
            wfail(w, "metadata key '%s' added twice", key);
            return -1;
        }
    if (strcmp(key, "general.alignment") == 0 && type != GGUF_U32) {
        wfail(w, "metadata key 'general.alignment' must be u32");
        return -1;
    }
    if (w->n_kv == w->key_cap) {
        size_t nc = w->key_cap ? w->key_cap * 2 : 32;
        char **nk = realloc(w->keys, nc * sizeof *nk);
        if (!nk) {
            wfail(w, "out of memory");
            return -1;
        }
        w->keys = nk;
        w->key_cap = nc;
    }
    char *dup = strdup(key);
    if (!dup) {
        wfail(w, "out of memory");
        return -1;
    }
    w->keys[w->n_kv++] = dup;
    return put_str(w, &w->kvs, key, n) || put_u32(w, &w->kvs, type);
}

void gguf_w_scalar(gguf_writer *w, const char *key, uint32_t type, const void *v) {
    if (type > GGUF_F64 || type == GGUF_STR || type == GGUF_ARR) {
        if (w) wfail(w, "key '%s': gguf_w_scalar needs a fixed-size type, got %u", key ? key : "(null)", type);
        return;
    }
    if (!v) {
        if (w) wfail(w, "key '%s': NULL value", key ? key : "(null)");
        return;
    }
    if (type == GGUF_BOOL && *(const uint8_t *)v > 1) {
        if (w) wfail(w, "key '%s': bool value must be 0 or 1", key ? key : "(null)");
        return;
    }
    if (kv_begin(w, key, type)) return;
    put_bytes(w, &w->kvs, v, k_scalar_size[type]);
    if (strcmp(key, "general.alignment") == 0) {
        w->has_align_key = 1;
        memcpy(&w->align_key_val, v, 4);
    }
}

void gguf_w_u32(gguf_writer *w, const char *key, uint32_t v) { gguf_w_scalar(w, key, GGUF_U32, &v); }
void gguf_w_u64(gguf_writer *w, const char *key, uint64_t v) { gguf_w_scalar(w, key, GGUF_U64, &v); }
void gguf_w_i32(gguf_writer *w, const char *key, int32_t v) { gguf_w_scalar(w, key, GGUF_I32, &v); }
void gguf_w_f32(gguf_writer *w, const char *key, float v) { gguf_w_scalar(w, key, GGUF_F32, &v); }
void gguf_w_bool(gguf_writer *w, const char *key, int v) {
    uint8_t b = v != 0;
    gguf_w_scalar(w, key, GGUF_BOOL, &b);
}

void gguf_w_str(gguf_writer *w, const char *key, const char *v) {
    if (!v) {
        if (w) wfail(w, "key '%s': NULL string", key ? key : "(null)");
        return;
    }
    if (kv_begin(w, key, GGUF_STR)) return;
    put_str(w, &w->kvs, v, strlen(v));
}

void gguf_w_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *v, uint64_t n) {
    if (elem_type > GGUF_F64 || elem_type == GGUF_STR || elem_type == GGUF_ARR) {
        if (w) wfail(w, "key '%s': gguf_w_arr needs a fixed-size element type, got %u", key ? key : "(null)",
                     elem_type);
        return;
    }
    if (n && !v) {
        if (w) wfail(w, "key '%s': NULL array", key ? key : "(null)");
        return;
    }
    size_t es = k_scalar_size[elem_type];
    if (n > SIZE_MAX / es) {
        if (w) wfail(w, "key '%s': array too large", key ? key : "(null)");
        return;
    }
    if (elem_type == GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (((const uint8_t *)v)[i] > 1) {
                if (w) wfail(w, "key '%s': bool element %llu is not 0 or 1", key ? key : "(null)",
                             (unsigned long long)i);
                return;
            }
    if (kv_begin(w, key, GGUF_ARR)) return;
    if (put_u32(w, &w->kvs, elem_type) || put_u64(w, &w->kvs, n)) return;
    put_bytes(w, &w->kvs, v, (size_t)n * es);
}

void gguf_w_arr_u32(gguf_writer *w, const char *key, const uint32_t *v, uint64_t n) {
    gguf_w_arr(w, key, GGUF_U32, v, n);
}
void gguf_w_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n) {
    gguf_w_arr(w, key, GGUF_I32, v, n);
}
void gguf_w_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n) {
    gguf_w_arr(w, key, GGUF_F32, v, n);
}

void gguf_w_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n) {
    if (n && !v) {
        if (w) wfail(w, "key '%s': NULL array", key ? key : "(null)");
        return;
    }
    for (uint64_t i = 0; i < n; i++)
        if (!v[i]) {
            if (w) wfail(w, "key '%s': string element %llu is NULL", key ? key : "(null)", (unsigned long long)i);
            return;
        }
    if (kv_begin(w, key, GGUF_ARR)) return;
    if (put_u32(w, &w->kvs, GGUF_STR) || put_u64(w, &w->kvs, n)) return;
    for (uint64_t i = 0; i < n; i++)
        if (put_str(w, &w->kvs, v[i], strlen(v[i]))) return;
}

void gguf_w_kv_copy(gguf_writer *w, const gguf_file *f, const gguf_kv *kv) {
    const uint8_t *raw;
    size_t n = gguf_kv_raw(f, kv, &raw);
    if (!n) {
        if (w) wfail(w, "gguf_w_kv_copy: the kv does not belong to that file");
        return;
    }
    char *key = malloc(kv->key.len + 1); /* validated by the reader: <= 65535 bytes, no NUL */
    if (!key) {
        if (w) wfail(w, "out of memory");
        return;
    }
    memcpy(key, kv->key.s, kv->key.len);
    key[kv->key.len] = 0;
    if (kv->type == GGUF_U32 && strcmp(key, "general.alignment") == 0)
        gguf_w_scalar(w, key, GGUF_U32, raw); /* keeps the alignment bookkeeping */
    else if (kv_begin(w, key, kv->type) == 0)
        put_bytes(w, &w->kvs, raw, n);
    free(key);
}

static int tensor_decl(gguf_writer *w, const char *name, uint32_t type, uint32_t ndim, const uint64_t *dims) {
    const char *nm = name ? name : "(null)";
    if (w->state != W_BUILD) return wfail(w, "tensor '%s' declared after gguf_writer_begin", nm);
    size_t len = name ? strlen(name) : 0;
    if (!name || !name_ok(name, len) || len > W_MAX_TNAME)
        return wfail(w, "tensor name '%s' is empty, longer than %d bytes or contains control bytes", nm,
                     W_MAX_TNAME);
    if (ndim < 1 || ndim > GGUF_MAX_DIMS || !dims)
        return wfail(w, "tensor '%s': %u dimensions (must be 1..%d)", nm, ndim, GGUF_MAX_DIMS);
    if (type > 0x7fffffffu || !qtype_known((int)type))
        return wfail(w, "tensor '%s': unknown tensor type %u", nm, type);
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0) return wfail(w, "tensor '%s' declared twice", nm);
    uint64_t nelem = 1;
    for (uint32_t d = 0; d < ndim; d++) {
        if (dims[d] == 0) return wfail(w, "tensor '%s': dimension %u is 0", nm, d);
        if (__builtin_mul_overflow(nelem, dims[d], &nelem))
            return wfail(w, "tensor '%s': element count overflows", nm);
    }
    uint64_t be = (uint64_t)qtype_block_elems((int)type), bb = (uint64_t)qtype_block_bytes((int)type);
    if (!be || !bb || dims[0] % be)
        return wfail(w, "tensor '%s': dimension 0 (%llu) is not a multiple of the %s block size %llu", nm,
                     (unsigned long long)dims[0], qtype_name((int)type), (unsigned long long)be);
    uint64_t nbytes, end, next;
    if (__builtin_mul_overflow(nelem / be, bb, &nbytes) || __builtin_add_overflow(w->data_end, nbytes, &end) ||
        __builtin_add_overflow(end, (uint64_t)w->alignment - 1, &next))
        return wfail(w, "tensor '%s': byte size overflows", nm);
    if (w->n_t == w->t_cap) {
        size_t nc = w->t_cap ? w->t_cap * 2 : 64;
        wtensor *nt = realloc(w->t, nc * sizeof *nt);
        if (!nt) return wfail(w, "out of memory");
        w->t = nt;
        w->t_cap = nc;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) return wfail(w, "out of memory");
    t->type = type;
    t->ndim = ndim;
    memcpy(t->dims, dims, ndim * sizeof *dims);
    t->offset = w->data_end;
    t->nbytes = nbytes;
    w->data_end = next & ~(uint64_t)(w->alignment - 1);
    w->n_t++;
    return 0;
}

void gguf_w_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t ndim, const uint64_t *dims) {
    if (!w || w->first_err[0]) return;
    (void)tensor_decl(w, name, type, ndim, dims);
}

/* ---- streaming ------------------------------------------------------------ */

static int write_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t k = write(fd, b, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

static int stream_fail(gguf_writer *w, char *err, size_t errlen, const char *what) {
    fp_fail(err, errlen, "%s: %s: %s", w->tmp, what, strerror(errno));
    w->state = W_FAILED;
    return -1;
}

static int flush_out(gguf_writer *w, char *err, size_t errlen) {
    if (w->olen && write_all(w->fd, w->obuf, w->olen)) return stream_fail(w, err, errlen, "write failed");
    w->olen = 0;
    return 0;
}

static int out(gguf_writer *w, const void *p, size_t n, char *err, size_t errlen) {
    if (n >= W_OBUF) { /* big chunk: skip the copy */
        if (flush_out(w, err, errlen)) return -1;
        if (write_all(w->fd, p, n)) return stream_fail(w, err, errlen, "write failed");
        return 0;
    }
    if (w->olen + n > W_OBUF && flush_out(w, err, errlen)) return -1;
    memcpy(w->obuf + w->olen, p, n);
    w->olen += n;
    return 0;
}

static int out_zeros(gguf_writer *w, uint64_t n, char *err, size_t errlen) {
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (out(w, zeros, k, err, errlen)) return -1;
        n -= k;
    }
    return 0;
}

int gguf_writer_begin(gguf_writer *w, const char *path, char *err, size_t errlen) {
    if (!w || !path) {
        fp_fail(err, errlen, "gguf_writer_begin: NULL writer or path");
        return -1;
    }
    if (w->first_err[0]) {
        fp_fail(err, errlen, "%s", w->first_err);
        return -1;
    }
    if (w->state != W_BUILD) {
        fp_fail(err, errlen, "gguf_writer_begin called twice");
        return -1;
    }
    if (w->has_align_key && w->align_key_val != w->alignment) {
        fp_fail(err, errlen, "general.alignment is %u but the writer aligns to %u", w->align_key_val, w->alignment);
        return -1;
    }
    /* Always record the alignment explicitly, even the default. */
    if (!w->has_align_key) gguf_w_u32(w, "general.alignment", w->alignment);
    bytes hdr = {0};
    put_u32(w, &hdr, W_MAGIC);
    put_u32(w, &hdr, 3);
    put_u64(w, &hdr, w->n_t);
    put_u64(w, &hdr, w->n_kv);
    put_bytes(w, &hdr, w->kvs.p, w->kvs.len);
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        put_str(w, &hdr, t->name, strlen(t->name));
        put_u32(w, &hdr, t->ndim);
        for (uint32_t d = 0; d < t->ndim; d++) put_u64(w, &hdr, t->dims[d]);
        put_u32(w, &hdr, t->type);
        put_u64(w, &hdr, t->offset);
    }
    size_t pad = (w->alignment - hdr.len % w->alignment) % w->alignment;
    for (size_t i = 0; i < pad; i++) put_bytes(w, &hdr, "", 1);
    if (w->first_err[0]) {
        free(hdr.p);
        fp_fail(err, errlen, "%s", w->first_err);
        return -1;
    }
    size_t pl = strlen(path);
    w->path = strdup(path);
    w->tmp = malloc(pl + 5);
    w->obuf = malloc(W_OBUF);
    if (!w->path || !w->tmp || !w->obuf) {
        free(hdr.p);
        fp_fail(err, errlen, "out of memory");
        return -1;
    }
    memcpy(w->tmp, path, pl);
    memcpy(w->tmp + pl, ".tmp", 5);
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        fp_fail(err, errlen, "cannot create %s: %s", w->tmp, strerror(errno));
        free(hdr.p);
        free(w->tmp);
        w->tmp = NULL; /* nothing of ours to unlink */
        w->state = W_FAILED;
        return -1;
    }
    w->state = W_STREAM;
    int rc = out(w, hdr.p, hdr.len, err, errlen);
    free(hdr.p);
    return rc;
}

int gguf_writer_put(gguf_writer *w, const void *data, size_t n, char *err, size_t errlen) {
    if (!w || w->state != W_STREAM) {
        fp_fail(err, errlen, "gguf_writer_put: writer is not streaming (call gguf_writer_begin first, or an earlier "
                          "error stopped it)");
        return -1;
    }
    if (n == 0) return 0;
    if (!data) {
        fp_fail(err, errlen, "gguf_writer_put: NULL data");
        w->state = W_FAILED;
        return -1;
    }
    if (w->cur >= w->n_t) {
        fp_fail(err, errlen, "gguf_writer_put: %zu bytes after the last tensor was complete", n);
        w->state = W_FAILED;
        return -1;
    }
    const wtensor *t = &w->t[w->cur];
    uint64_t room = t->nbytes - w->cur_done;
    /* One put never spans two tensors: a chunk that overflows the current
     * tensor is a size bug in the caller, caught here rather than silently
     * shifting every later tensor. */
    if (n > room) {
        fp_fail(err, errlen, "tensor '%s' (%llu bytes, %llu written) got %zu more bytes than it holds", t->name,
             (unsigned long long)t->nbytes, (unsigned long long)w->cur_done, (size_t)(n - room));
        w->state = W_FAILED;
        return -1;
    }
    if (out(w, data, n, err, errlen)) return -1;
    w->cur_done += n;
    if (w->cur_done == t->nbytes) {
        uint64_t a = w->alignment;
        if (out_zeros(w, (a - t->nbytes % a) % a, err, errlen)) return -1;
        w->cur++;
        w->cur_done = 0;
    }
    return 0;
}

int gguf_writer_finish(gguf_writer *w, char *err, size_t errlen) {
    if (!w || w->state != W_STREAM) {
        fp_fail(err, errlen, "gguf_writer_finish: writer is not streaming");
        return -1;
    }
    if (w->cur < w->n_t) {
        fp_fail(err, errlen, "tensor '%s' got %llu of its %llu bytes (%zu of %zu tensors complete)", w->t[w->cur].name,
             (unsigned long long)w->cur_done, (unsigned long long)w->t[w->cur].nbytes, w->cur, w->n_t);
        w->state = W_FAILED;
        return -1;
    }
    if (flush_out(w, err, errlen)) return -1;
    if (fsync(w->fd) != 0) return stream_fail(w, err, errlen, "fsync failed");
    int rc = close(w->fd);
    w->fd = -1;
    if (rc != 0) return stream_fail(w, err, errlen, "close failed");
    if (rename(w->tmp, w->path) != 0) {
        fp_fail(err, errlen, "cannot rename %s to %s: %s", w->tmp, w->path, strerror(errno));
        w->state = W_FAILED;
        return -1;
    }
    w->state = W_DONE;
    /* Make the rename itself durable. Failure here is not fatal: the data is
     * already synced and the file is in place. */
    char *dcopy = strdup(w->path);
    if (dcopy) {
        int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dcopy);
    }
    return 0;
}
