/* gguf.c — GGUF v3 reader: maps a file (or takes a caller buffer), validates
 * the whole header and tensor directory before anything is exposed, and
 * answers key/tensor lookups. Tensor data is never read or copied here, so
 * opening an 80 GB model touches only its header pages.
 *
 * Hostile-input rules this file keeps (the fuzz tests hold it to them):
 *   - every read goes through a cursor that checks the remaining bytes first;
 *   - no allocation is sized by a count from the file before that count has
 *     been bounded by the bytes left (and tables grow as entries are parsed);
 *   - every size/offset sum and product uses checked arithmetic.
 * The writer lives in gguf_write.c. */
#include "errmsg.h"
#include "gguf.h"

#include "quant.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c reads little-endian values in place; big-endian hosts are not supported"
#endif

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */
#define GGUF_DEFAULT_ALIGN 32u
#define GGUF_MAX_NEST 8        /* array-of-array depth, as ds4 allows */
#define GGUF_MAX_TNAME 64      /* tensor name bytes (GGUF spec limit) */
#define GGUF_MAX_KEY 65535     /* key bytes (GGUF spec limit) */
#define GGUF_MAX_COUNT 0x7fffffffu /* tables index entries with u32 */

/* Minimum bytes one directory entry can occupy; used to bound counts read
 * from the header before any table is sized by them.
 * kv: key length (8) + 1 key byte + type (4) + smallest value (1).
 * tensor: name length (8) + 1 name byte + ndim (4) + one dim (8) + type (4) + offset (8). */
#define KV_MIN_BYTES 14u
#define TENSOR_MIN_BYTES 33u

/* The private part of an open file. The public struct is the first member,
 * so the gguf_file pointer handed out converts back to this. */
typedef struct gguf_priv {
    gguf_file pub;
    uint64_t **str_idx;   /* per kv: for top-level string arrays, the file
                             offset of each element's length prefix (makes
                             gguf_arr_get_str O(1)); NULL for other kvs */
    uint32_t *kv_hash;    /* open addressing, slot = kv index + 1, 0 = empty */
    uint32_t *t_hash;     /* same for tensor names */
    size_t kv_mask, t_mask;
} gguf_priv;

static const size_t k_scalar_size[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* ---- error text ---------------------------------------------------------- */

/* Printable rendering of a (possibly hostile) name for error messages:
 * non-printable bytes become \xNN and long names are cut. */
#define SHOW_MAX 80
typedef struct { char s[SHOW_MAX * 4 + 8]; } showbuf;
static const char *show(const uint8_t *p, uint64_t len, showbuf *b) {
    size_t o = 0;
    uint64_t n = len < SHOW_MAX ? len : SHOW_MAX;
    for (uint64_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            b->s[o++] = (char)c;
        } else {
            static const char hx[] = "0123456789abcdef";
            b->s[o++] = '\\';
            b->s[o++] = 'x';
            b->s[o++] = hx[c >> 4];
            b->s[o++] = hx[c & 15];
        }
    }
    if (n < len) {
        memcpy(b->s + o, "...", 3);
        o += 3;
    }
    b->s[o] = 0;
    return b->s;
}

const char *gguf_vtype_name(uint32_t t) {
    static const char *n[13] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
    return t < 13 ? n[t] : "?";
}

/* ---- bounded cursor ------------------------------------------------------ */

typedef struct rd {
    const uint8_t *b;
    uint64_t size, pos;
    char *err;
    size_t errlen;
    char what[SHOW_MAX * 4 + 48]; /* "key 'x'" / "tensor 'y'": prefix for messages */
} rd;

static int rfail(rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rfail(rd *r, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->what[0])
        fp_fail(r->err, r->errlen, "%s: %s", r->what, msg);
    else
        fp_fail(r->err, r->errlen, "%s", msg);
    return -1;
}

static uint64_t left(const rd *r) { return r->size - r->pos; }

static int need(rd *r, uint64_t n, const char *field) {
    if (n > left(r))
        return rfail(r, "%s (%llu bytes at offset %llu) extends past end of file (size %llu)", field,
                     (unsigned long long)n, (unsigned long long)r->pos, (unsigned long long)r->size);
    return 0;
}

static int rd_u32(rd *r, uint32_t *v, const char *field) {
    if (need(r, 4, field)) return -1;
    memcpy(v, r->b + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int rd_u64(rd *r, uint64_t *v, const char *field) {
    if (need(r, 8, field)) return -1;
    memcpy(v, r->b + r->pos, 8);
    r->pos += 8;
    return 0;
}

/* A GGUF string: u64 length then bytes. The string stays in the mapping. */
static int rd_str(rd *r, gguf_str *s, const char *field) {
    uint64_t len;
    uint64_t at = r->pos;
    if (rd_u64(r, &len, field)) return -1;
    if (len > left(r))
        return rfail(r, "%s length %llu at offset %llu extends past end of file (size %llu)", field,
                     (unsigned long long)len, (unsigned long long)at, (unsigned long long)r->size);
    s->len = len;
    s->s = (const char *)(r->b + r->pos);
    r->pos += len;
    return 0;
}

/* ---- growable u64 vector (string-array index) ---------------------------- */

typedef struct { uint64_t *v; uint64_t n, cap; } u64vec;

static int u64vec_push(u64vec *a, uint64_t x) {
    if (a->n == a->cap) {
        uint64_t nc = a->cap ? a->cap * 2 : 64;
        uint64_t *nv = realloc(a->v, nc * sizeof *nv);
        if (!nv) return -1;
        a->v = nv;
        a->cap = nc;
    }
    a->v[a->n++] = x;
    return 0;
}

/* ---- values --------------------------------------------------------------- */

/* Skips one value of type t at the cursor, checking every length against the
 * bytes left. depth counts enclosing arrays. When idx is non-NULL and the
 * value is a string array, the offset of each element is recorded there. */
static int skip_value(rd *r, uint32_t t, int depth, u64vec *idx) {
    if (t > GGUF_F64) return rfail(r, "value type %u is not a GGUF type (0..12)", t);
    if (t == GGUF_STR) {
        gguf_str s;
        return rd_str(r, &s, "string value");
    }
    if (t != GGUF_ARR) {
        if (need(r, k_scalar_size[t], "value")) return -1;
        if (t == GGUF_BOOL && r->b[r->pos] > 1)
            return rfail(r, "bool value %u at offset %llu is neither 0 nor 1", r->b[r->pos],
                         (unsigned long long)r->pos);
        r->pos += k_scalar_size[t];
        return 0;
    }
    if (depth >= GGUF_MAX_NEST) return rfail(r, "arrays nested deeper than %d", GGUF_MAX_NEST);
    uint32_t et;
    uint64_t n;
    uint64_t at = r->pos;
    if (rd_u32(r, &et, "array element type") || rd_u64(r, &n, "array length")) return -1;
    if (et > GGUF_F64) return rfail(r, "array element type %u is not a GGUF type (0..12)", et);
    if (et != GGUF_STR && et != GGUF_ARR) {
        uint64_t es = k_scalar_size[et];
        if (n > left(r) / es)
            return rfail(r, "array of %llu %s at offset %llu extends past end of file (size %llu)",
                         (unsigned long long)n, gguf_vtype_name(et), (unsigned long long)at,
                         (unsigned long long)r->size);
        if (et == GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (r->b[r->pos + i] > 1)
                    return rfail(r, "bool array element %llu is %u, neither 0 nor 1", (unsigned long long)i,
                                 r->b[r->pos + i]);
        r->pos += n * es;
        return 0;
    }
    /* Variable-size elements: each takes at least 8 (string length) or 12
     * (nested array header) bytes, which bounds n before we loop or index. */
    uint64_t minsz = et == GGUF_STR ? 8 : 12;
    if (n > left(r) / minsz)
        return rfail(r, "array of %llu %s at offset %llu cannot fit in the %llu bytes left in the file",
                     (unsigned long long)n, gguf_vtype_name(et), (unsigned long long)at,
                     (unsigned long long)left(r));
    for (uint64_t i = 0; i < n; i++) {
        if (idx && u64vec_push(idx, r->pos)) return rfail(r, "out of memory indexing a string array");
        if (skip_value(r, et, depth + 1, NULL)) return -1;
    }
    return 0;
}

/* Keys and tensor names must be non-empty and free of control bytes, so they
 * can be printed and compared as C strings safely. */
static int name_ok(const gguf_str *s) {
    if (s->len == 0) return 0;
    for (uint64_t i = 0; i < s->len; i++) {
        uint8_t c = (uint8_t)s->s[i];
        if (c < 0x20 || c == 0x7f) return 0;
    }
    return 1;
}

/* ---- name hash tables ----------------------------------------------------- */

static uint64_t hash_bytes(const char *s, uint64_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (uint64_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int str_eq(const gguf_str *a, const char *s, uint64_t n) {
    return a->len == n && memcmp(a->s, s, n) == 0;
}

/* Table sized to a power of two at least twice n. Returns NULL on OOM. */
static uint32_t *table_new(uint64_t n, size_t *mask) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    *mask = cap - 1;
    return calloc(cap, sizeof(uint32_t));
}

/* Inserts entry i (name s) unless an equal name is present; returns the
 * index of the existing entry, or -1 when inserted. */
static int64_t table_insert(uint32_t *tab, size_t mask, const gguf_str *names, size_t stride, uint64_t i) {
    const gguf_str *s = (const gguf_str *)((const char *)names + i * stride);
    size_t h = (size_t)hash_bytes(s->s, s->len) & mask;
    while (tab[h]) {
        uint64_t j = tab[h] - 1;
        const gguf_str *o = (const gguf_str *)((const char *)names + j * stride);
        if (str_eq(o, s->s, s->len)) return (int64_t)j;
        h = (h + 1) & mask;
    }
    tab[h] = (uint32_t)(i + 1);
    return -1;
}

static int64_t table_find(const uint32_t *tab, size_t mask, const gguf_str *names, size_t stride,
                          const char *key) {
    if (!tab || !key) return -1;
    size_t n = strlen(key);
    size_t h = (size_t)hash_bytes(key, n) & mask;
    while (tab[h]) {
        uint64_t j = tab[h] - 1;
        const gguf_str *o = (const gguf_str *)((const char *)names + j * stride);
        if (str_eq(o, key, n)) return (int64_t)j;
        h = (h + 1) & mask;
    }
    return -1;
}

/* ---- open ----------------------------------------------------------------- */

static void free_priv(gguf_priv *p) {
    if (!p) return;
    if (p->str_idx)
        for (uint64_t i = 0; i < p->pub.n_kv; i++) free(p->str_idx[i]);
    free(p->str_idx);
    free(p->kv_hash);
    free(p->t_hash);
    free(p->pub.kv);
    free(p->pub.tensors);
    free(p);
}

static int cmp_by_offset(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return 0;
}

/* Parses n_kv records. f->n_kv counts the entries allocated so far, so a
 * failure part-way leaves a state free_priv can release. */
static int parse_kvs(rd *r, gguf_priv *p, uint64_t n_kv) {
    gguf_file *f = &p->pub;
    showbuf sb;
    /* Tables grow as entries parse, so a lying count costs nothing. */
    uint64_t cap = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        if (i == cap) {
            uint64_t nc = cap ? cap * 2 : 64;
            if (nc > n_kv) nc = n_kv;
            gguf_kv *nk = realloc(f->kv, nc * sizeof *nk);
            uint64_t **ns = realloc(p->str_idx, nc * sizeof *ns);
            if (ns) p->str_idx = ns;
            if (nk) f->kv = nk;
            if (!nk || !ns) return rfail(r, "out of memory reading %llu metadata keys", (unsigned long long)n_kv);
            memset(f->kv + cap, 0, (nc - cap) * sizeof *nk);
            memset(p->str_idx + cap, 0, (nc - cap) * sizeof *ns);
            cap = nc;
        }
        f->n_kv = i + 1;
        gguf_kv *kv = &f->kv[i];
        snprintf(r->what, sizeof r->what, "metadata key #%llu", (unsigned long long)i);
        if (rd_str(r, &kv->key, "key")) return -1;
        if (kv->key.len > GGUF_MAX_KEY)
            return rfail(r, "key is %llu bytes long (limit %d)", (unsigned long long)kv->key.len, GGUF_MAX_KEY);
        if (!name_ok(&kv->key))
            return rfail(r, "key '%s' is empty or contains control bytes",
                         show((const uint8_t *)kv->key.s, kv->key.len, &sb));
        snprintf(r->what, sizeof r->what, "key '%s'", show((const uint8_t *)kv->key.s, kv->key.len, &sb));
        if (rd_u32(r, &kv->type, "value type")) return -1;
        if (kv->type > GGUF_F64) return rfail(r, "value type %u is not a GGUF type (0..12)", kv->type);
        uint64_t at = r->pos;
        if (kv->type == GGUF_ARR) {
            if (need(r, 12, "array header")) return -1;
            memcpy(&kv->arr_type, r->b + at, 4);
            memcpy(&kv->arr_len, r->b + at + 4, 8);
            u64vec idx = {0};
            if (skip_value(r, GGUF_ARR, 0, kv->arr_type == GGUF_STR ? &idx : NULL)) {
                free(idx.v);
                return -1;
            }
            kv->val = r->b + at + 12; /* the first element, past the array header */
            p->str_idx[i] = idx.v;
        } else {
            if (skip_value(r, kv->type, 0, NULL)) return -1;
            kv->val = r->b + at; /* for strings: the length prefix */
        }
    }
    r->what[0] = 0;
    return 0;
}

static gguf_file *parse(const uint8_t *b, size_t size, char *err, size_t errlen) {
    rd r = {.b = b, .size = size, .pos = 0, .err = err, .errlen = errlen};
    showbuf sb;
    uint32_t magic, version;
    if (size < 24) {
        fp_fail(err, errlen, "file is %zu bytes, too short for a GGUF header (24 bytes)", size);
        return NULL;
    }
    memcpy(&magic, b, 4);
    if (magic != GGUF_MAGIC) {
        fp_fail(err, errlen, "bad magic %02x %02x %02x %02x: not a GGUF file", b[0], b[1], b[2], b[3]);
        return NULL;
    }
    memcpy(&version, b + 4, 4);
    if (version != 3) {
        fp_fail(err, errlen, "GGUF version %u is not supported (only version 3)", version);
        return NULL;
    }
    r.pos = 8;
    gguf_priv *p = calloc(1, sizeof *p);
    if (!p) {
        fp_fail(err, errlen, "out of memory");
        return NULL;
    }
    gguf_file *f = &p->pub;
    f->base = b;
    f->size = size;
    f->version = version;
    uint64_t n_tensors, n_kv;
    rd_u64(&r, &n_tensors, "tensor count");
    rd_u64(&r, &n_kv, "metadata key count");
    if (n_kv > GGUF_MAX_COUNT || n_kv > left(&r) / KV_MIN_BYTES) {
        rfail(&r, "metadata key count %llu cannot fit in a %zu-byte file", (unsigned long long)n_kv, size);
        goto bad;
    }
    if (n_tensors > GGUF_MAX_COUNT || n_tensors > (left(&r) - n_kv * KV_MIN_BYTES) / TENSOR_MIN_BYTES) {
        rfail(&r, "tensor count %llu cannot fit in a %zu-byte file", (unsigned long long)n_tensors, size);
        goto bad;
    }
    if (parse_kvs(&r, p, n_kv)) goto bad;

    /* Unique keys, then general.alignment. */
    p->kv_hash = table_new(n_kv, &p->kv_mask);
    if (!p->kv_hash) {
        fp_fail(err, errlen, "out of memory");
        goto bad;
    }
    for (uint64_t i = 0; i < n_kv; i++) {
        int64_t j = table_insert(p->kv_hash, p->kv_mask, &f->kv[0].key, sizeof(gguf_kv), i);
        if (j >= 0) {
            fp_fail(err, errlen, "key '%s' appears twice (entries #%lld and #%llu)",
                    show((const uint8_t *)f->kv[i].key.s, f->kv[i].key.len, &sb), (long long)j,
                    (unsigned long long)i);
            goto bad;
        }
    }
    f->alignment = GGUF_DEFAULT_ALIGN;
    int64_t ai = table_find(p->kv_hash, p->kv_mask, n_kv ? &f->kv[0].key : NULL, sizeof(gguf_kv),
                            "general.alignment");
    if (ai >= 0) {
        const gguf_kv *kv = &f->kv[ai];
        uint32_t a;
        if (kv->type != GGUF_U32) {
            fp_fail(err, errlen, "key 'general.alignment' has type %s, must be u32", gguf_vtype_name(kv->type));
            goto bad;
        }
        memcpy(&a, kv->val, 4);
        if (a == 0 || (a & (a - 1))) {
            fp_fail(err, errlen, "key 'general.alignment' is %u, must be a non-zero power of two", a);
            goto bad;
        }
        f->alignment = a;
    }

    /* Tensor directory. */
    uint64_t cap = 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        if (i == cap) {
            uint64_t nc = cap ? cap * 2 : 256;
            if (nc > n_tensors) nc = n_tensors;
            gguf_tensor *nt = realloc(f->tensors, nc * sizeof *nt);
            if (!nt) {
                fp_fail(err, errlen, "out of memory reading %llu tensors", (unsigned long long)n_tensors);
                goto bad;
            }
            f->tensors = nt;
            memset(f->tensors + cap, 0, (nc - cap) * sizeof *nt);
            cap = nc;
        }
        f->n_tensors = i + 1;
        gguf_tensor *t = &f->tensors[i];
        snprintf(r.what, sizeof r.what, "tensor #%llu", (unsigned long long)i);
        if (rd_str(&r, &t->name, "name")) goto bad;
        if (!name_ok(&t->name) || t->name.len > GGUF_MAX_TNAME) {
            rfail(&r, "name '%s' (%llu bytes) is empty, longer than %d bytes or contains control bytes",
                  show((const uint8_t *)t->name.s, t->name.len, &sb), (unsigned long long)t->name.len,
                  GGUF_MAX_TNAME);
            goto bad;
        }
        snprintf(r.what, sizeof r.what, "tensor '%s'", show((const uint8_t *)t->name.s, t->name.len, &sb));
        if (rd_u32(&r, &t->ndim, "dimension count")) goto bad;
        if (t->ndim < 1 || t->ndim > GGUF_MAX_DIMS) {
            rfail(&r, "has %u dimensions (must be 1..%d)", t->ndim, GGUF_MAX_DIMS);
            goto bad;
        }
        uint64_t nelem = 1;
        for (uint32_t d = 0; d < t->ndim; d++) {
            if (rd_u64(&r, &t->dims[d], "dimension")) goto bad;
            if (t->dims[d] == 0) {
                rfail(&r, "dimension %u is 0", d);
                goto bad;
            }
            if (__builtin_mul_overflow(nelem, t->dims[d], &nelem)) {
                rfail(&r, "element count overflows 64 bits at dimension %u", d);
                goto bad;
            }
        }
        t->nelem = nelem;
        if (rd_u32(&r, &t->type, "type") || rd_u64(&r, &t->offset, "data offset")) goto bad;
        if (t->type > 0x7fffffffu || !qtype_known((int)t->type)) {
            rfail(&r, "tensor type %u is not one this reader knows", t->type);
            goto bad;
        }
        uint64_t be = (uint64_t)qtype_block_elems((int)t->type), bb = (uint64_t)qtype_block_bytes((int)t->type);
        if (be == 0 || bb == 0) {
            rfail(&r, "tensor type %u has no block layout", t->type);
            goto bad;
        }
        if (t->dims[0] % be) {
            rfail(&r, "dimension 0 (%llu) is not a multiple of the %s block size %llu",
                  (unsigned long long)t->dims[0], qtype_name((int)t->type), (unsigned long long)be);
            goto bad;
        }
        if (__builtin_mul_overflow(nelem / be, bb, &t->nbytes)) {
            rfail(&r, "byte size overflows 64 bits");
            goto bad;
        }
    }
    r.what[0] = 0;

    /* Data start, then every tensor inside the file and aligned. */
    uint64_t dir_end = r.pos;
    f->data_offset = (dir_end + f->alignment - 1) & ~(uint64_t)(f->alignment - 1);
    for (uint64_t i = 0; i < n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        const char *nm = show((const uint8_t *)t->name.s, t->name.len, &sb);
        if (t->offset % f->alignment) {
            fp_fail(err, errlen, "tensor '%s': data offset %llu is not a multiple of the alignment %u", nm,
                    (unsigned long long)t->offset, f->alignment);
            goto bad;
        }
        uint64_t start, end;
        if (__builtin_add_overflow(f->data_offset, t->offset, &start) ||
            __builtin_add_overflow(start, t->nbytes, &end) || end > size) {
            fp_fail(err, errlen,
                    "tensor '%s': data [offset %llu, %llu bytes] extends past end of file (size %zu; data "
                    "starts at %llu)",
                    nm, (unsigned long long)t->offset, (unsigned long long)t->nbytes, size,
                    (unsigned long long)f->data_offset);
            goto bad;
        }
        t->data = b + start;
    }

    /* Unique tensor names. */
    p->t_hash = table_new(n_tensors, &p->t_mask);
    if (!p->t_hash) {
        fp_fail(err, errlen, "out of memory");
        goto bad;
    }
    for (uint64_t i = 0; i < n_tensors; i++) {
        int64_t j = table_insert(p->t_hash, p->t_mask, &f->tensors[0].name, sizeof(gguf_tensor), i);
        if (j >= 0) {
            fp_fail(err, errlen, "tensor '%s' appears twice (entries #%lld and #%llu)",
                    show((const uint8_t *)f->tensors[i].name.s, f->tensors[i].name.len, &sb), (long long)j,
                    (unsigned long long)i);
            goto bad;
        }
    }

    /* No two tensors share bytes: sort by offset and compare neighbours. */
    if (n_tensors > 1) {
        gguf_tensor **ord = malloc(n_tensors * sizeof *ord);
        if (!ord) {
            fp_fail(err, errlen, "out of memory");
            goto bad;
        }
        for (uint64_t i = 0; i < n_tensors; i++) ord[i] = &f->tensors[i];
        qsort(ord, n_tensors, sizeof *ord, cmp_by_offset);
        for (uint64_t i = 1; i < n_tensors; i++) {
            const gguf_tensor *a = ord[i - 1], *c = ord[i];
            if (c->offset - a->offset < a->nbytes) {
                showbuf sb2;
                fp_fail(err, errlen, "tensor '%s' [offset %llu, %llu bytes] overlaps tensor '%s' [offset %llu]",
                        show((const uint8_t *)a->name.s, a->name.len, &sb), (unsigned long long)a->offset,
                        (unsigned long long)a->nbytes, show((const uint8_t *)c->name.s, c->name.len, &sb2),
                        (unsigned long long)c->offset);
                free(ord);
                goto bad;
            }
        }
        free(ord);
    }
    return f;
bad:
    free_priv(p);
    return NULL;
}

gguf_file *gguf_open_buffer(const void *buf, size_t size, char *err, size_t errlen) {
    if (!buf && size) {
        fp_fail(err, errlen, "NULL buffer");
        return NULL;
    }
    if (!buf) {
        fp_fail(err, errlen, "file is 0 bytes, too short for a GGUF header (24 bytes)");
        return NULL;
    }
    return parse(buf, size, err, errlen);
}

gguf_file *gguf_open(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fp_fail(err, errlen, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fp_fail(err, errlen, "cannot stat: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        fp_fail(err, errlen, "not a regular file");
        close(fd);
        return NULL;
    }
    if (st.st_size < 24) {
        fp_fail(err, errlen, "file is %lld bytes, too short for a GGUF header (24 bytes)", (long long)st.st_size);
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int merr = errno;
    close(fd); /* the mapping keeps the file referenced */
    if (m == MAP_FAILED) {
        fp_fail(err, errlen, "cannot mmap %zu bytes: %s", size, strerror(merr));
        return NULL;
    }
    gguf_file *f = parse(m, size, err, errlen);
    if (!f) {
        munmap(m, size);
        return NULL;
    }
    f->mapped = 1;
    return f;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->mapped) munmap((void *)f->base, f->size);
    free_priv((gguf_priv *)f);
}

/* ---- lookups -------------------------------------------------------------- */

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key) {
    if (!f) return NULL;
    const gguf_priv *p = (const gguf_priv *)f;
    int64_t i = table_find(p->kv_hash, p->kv_mask, f->n_kv ? &f->kv[0].key : NULL, sizeof(gguf_kv), key);
    return i < 0 ? NULL : &f->kv[i];
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    if (!f) return NULL;
    const gguf_priv *p = (const gguf_priv *)f;
    int64_t i = table_find(p->t_hash, p->t_mask, f->n_tensors ? &f->tensors[0].name : NULL,
                           sizeof(gguf_tensor), name);
    return i < 0 ? NULL : &f->tensors[i];
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv || kv->type != GGUF_U32) return -1;
    memcpy(out, kv->val, 4);
    return 0;
}

int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return -1;
    if (kv->type == GGUF_U64) {
        memcpy(out, kv->val, 8);
        return 0;
    }
    if (kv->type == GGUF_U32) {
        uint32_t v;
        memcpy(&v, kv->val, 4);
        *out = v;
        return 0;
    }
    return -1;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return -1;
    switch (kv->type) {
    case GGUF_F32: memcpy(out, kv->val, 4); return 0;
    case GGUF_F64: {
        double d;
        memcpy(&d, kv->val, 8);
        *out = (float)d;
        return 0;
    }
    case GGUF_U32: {
        uint32_t v;
        memcpy(&v, kv->val, 4);
        *out = (float)v;
        return 0;
    }
    case GGUF_I32: {
        int32_t v;
        memcpy(&v, kv->val, 4);
        *out = (float)v;
        return 0;
    }
    default: return -1;
    }
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv || kv->type != GGUF_BOOL) return -1;
    *out = kv->val[0] != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv || kv->type != GGUF_STR) return -1;
    memcpy(&out->len, kv->val, 8); /* val is the length prefix */
    out->s = (const char *)kv->val + 8;
    return 0;
}

/* Reads integer element i of a fixed-size array; 1 if the type is not an
 * integer type. */
static int arr_int(const gguf_kv *kv, uint64_t i, int64_t *si, uint64_t *ui, int *is_signed) {
    const uint8_t *p = kv->val + i * k_scalar_size[kv->arr_type];
    *is_signed = 1;
    switch (kv->arr_type) {
    case GGUF_U8: *si = p[0]; return 0;
    case GGUF_I8: *si = (int8_t)p[0]; return 0;
    case GGUF_U16: { uint16_t v; memcpy(&v, p, 2); *si = v; return 0; }
    case GGUF_I16: { int16_t v; memcpy(&v, p, 2); *si = v; return 0; }
    case GGUF_U32: { uint32_t v; memcpy(&v, p, 4); *si = v; return 0; }
    case GGUF_I32: { int32_t v; memcpy(&v, p, 4); *si = v; return 0; }
    case GGUF_I64: { int64_t v; memcpy(&v, p, 8); *si = v; return 0; }
    case GGUF_U64: { memcpy(ui, p, 8); *is_signed = 0; return 0; }
    default: return 1;
    }
}

int gguf_arr_get_i64(const gguf_kv *kv, uint64_t i, int64_t *out) {
    if (!kv || kv->type != GGUF_ARR || i >= kv->arr_len) return -1;
    int64_t s;
    uint64_t u;
    int sg;
    if (arr_int(kv, i, &s, &u, &sg)) return -1;
    if (!sg) {
        if (u > (uint64_t)INT64_MAX) return -1;
        s = (int64_t)u;
    }
    *out = s;
    return 0;
}

int gguf_arr_get_f64(const gguf_kv *kv, uint64_t i, double *out) {
    if (!kv || kv->type != GGUF_ARR || i >= kv->arr_len) return -1;
    const uint8_t *p = kv->val;
    if (kv->arr_type == GGUF_F32) {
        float v;
        memcpy(&v, p + i * 4, 4);
        *out = v;
        return 0;
    }
    if (kv->arr_type == GGUF_F64) {
        memcpy(out, p + i * 8, 8);
        return 0;
    }
    int64_t s;
    uint64_t u;
    int sg;
    if (arr_int(kv, i, &s, &u, &sg)) return -1;
    *out = sg ? (double)s : (double)u;
    return 0;
}

int gguf_arr_get_str(const gguf_file *f, const gguf_kv *kv, uint64_t i, gguf_str *out) {
    if (!f || !kv || kv < f->kv || kv >= f->kv + f->n_kv) return -1;
    if (kv->type != GGUF_ARR || kv->arr_type != GGUF_STR || i >= kv->arr_len) return -1;
    const gguf_priv *p = (const gguf_priv *)f;
    const uint64_t *idx = p->str_idx[kv - f->kv];
    if (!idx) return -1;
    memcpy(&out->len, f->base + idx[i], 8);
    out->s = (const char *)f->base + idx[i] + 8;
    return 0;
}

size_t gguf_kv_raw(const gguf_file *f, const gguf_kv *kv, const uint8_t **raw) {
    if (!f || !kv || kv < f->kv || kv >= f->kv + f->n_kv) return 0;
    /* Re-walk the (already validated) value to find its extent. */
    const uint8_t *start = kv->type == GGUF_ARR ? kv->val - 12 : kv->val;
    rd r = {.b = f->base, .size = f->size, .pos = (uint64_t)(start - f->base)};
    if (skip_value(&r, kv->type, 0, NULL)) return 0;
    *raw = start;
    return (size_t)(r.pos - (uint64_t)(start - f->base));
}

/* ---- summary -------------------------------------------------------------- */

void gguf_print_summary(const gguf_file *f, FILE *out) {
    uint64_t cnt[64] = {0}, bytes[64] = {0}, other_cnt = 0, other_bytes = 0, total = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        total += t->nbytes;
        if (t->type < 64) {
            cnt[t->type]++;
            bytes[t->type] += t->nbytes;
        } else {
            other_cnt++;
            other_bytes += t->nbytes;
        }
    }
    fprintf(out, "GGUF version %u, %zu bytes\n", f->version, f->size);
    fprintf(out, "metadata keys: %llu\n", (unsigned long long)f->n_kv);
    fprintf(out, "tensors:       %llu\n", (unsigned long long)f->n_tensors);
    fprintf(out, "alignment:     %u\n", f->alignment);
    fprintf(out, "data offset:   %llu\n", (unsigned long long)f->data_offset);
    for (int t = 0; t < 64; t++)
        if (cnt[t])
            fprintf(out, "  %-8s %6llu tensors %14llu bytes (%.2f MiB)\n", qtype_name(t),
                    (unsigned long long)cnt[t], (unsigned long long)bytes[t], (double)bytes[t] / 1048576.0);
    if (other_cnt)
        fprintf(out, "  %-8s %6llu tensors %14llu bytes\n", "other", (unsigned long long)other_cnt,
                (unsigned long long)other_bytes);
    fprintf(out, "total tensor bytes: %llu (%.2f MiB)\n", (unsigned long long)total, (double)total / 1048576.0);
}
