/* test_gguf_fuzz.c — mutation fuzzing of the GGUF reader inside the unit
 * suite. Valid seeds (a small writer-made file, and one carrying every
 * metadata entry of the tiny-s1 vector model) plus the first 64 KiB of that
 * model are truncated at every interesting length and mutated thousands of
 * times: byte flips, length/count/type fields overwritten with extreme values,
 * chunk copies. Each mutant sits in an exact-size heap buffer (so ASan flags
 * any over-read) and must be either refused with a message, or accepted with
 * every invariant the reader promises holding (all tensors inside the buffer,
 * aligned, non-overlapping; every lookup consistent).
 * A fresh seed each run; FP_SEED=<n> reproduces one. FP_FUZZ_ITERS overrides
 * the mutant count (default 6000). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "gguf.h"
#include "quant.h"

typedef struct {
    uint8_t *p;
    size_t n;
    size_t *u64_at, *u32_at; /* offsets of length/count/offset and type fields */
    size_t n64, n32;
    int valid;               /* the seed itself must be accepted */
} seed_t;

enum { NSEEDS = 3 };
static seed_t g_seeds[NSEEDS];
static uint64_t g_rng;
static unsigned long g_accepted, g_rejected;
static FILE *g_null;

static uint64_t rnd(void) { /* splitmix64 */
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint64_t rndn(uint64_t n) { return n ? rnd() % n : 0; }

static void vec_path(char *buf, size_t n, const char *name) {
    const char *d = getenv("FP_VECTORS");
    snprintf(buf, n, "%s/%s", d && *d ? d : "../shared/vectors", name);
}

static void push(size_t **v, size_t *n, size_t x) {
    *v = realloc(*v, (*n + 1) * sizeof **v);
    assert_non_null(*v);
    (*v)[(*n)++] = x;
}

/* Records where the structural fields of an accepted file are, so mutations
 * can aim at them. Positions >= limit are skipped (for the prefix seed). */
static void index_fields(seed_t *s, const gguf_file *f, size_t limit) {
    const uint8_t *b = f->base;
#define AT64(x) do { size_t o_ = (size_t)(x); if (o_ + 8 <= limit) push(&s->u64_at, &s->n64, o_); } while (0)
#define AT32(x) do { size_t o_ = (size_t)(x); if (o_ + 4 <= limit) push(&s->u32_at, &s->n32, o_); } while (0)
    AT64(8);
    AT64(16);
    AT32(4);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        size_t k = (size_t)((const uint8_t *)kv->key.s - b);
        AT64(k - 8);
        AT32(k + kv->key.len);
        if (kv->type == GGUF_STR) AT64(kv->val - b);
        if (kv->type == GGUF_ARR) {
            AT32(kv->val - b - 12);
            AT64(kv->val - b - 8);
            if (kv->arr_type == GGUF_STR)
                for (uint64_t j = 0; j < kv->arr_len; j++) {
                    if (j == 40 && kv->arr_len > 80) j = kv->arr_len - 40; /* ends only */
                    gguf_str e;
                    assert_int_equal(gguf_arr_get_str(f, kv, j, &e), 0);
                    AT64((const uint8_t *)e.s - b - 8);
                }
            if (kv->arr_type == GGUF_ARR) { /* first nested header */
                AT32(kv->val - b);
                AT64(kv->val - b + 4);
            }
        }
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        size_t k = (size_t)((const uint8_t *)t->name.s - b);
        AT64(k - 8);
        size_t p = k + t->name.len;
        AT32(p);
        p += 4;
        for (uint32_t d = 0; d < t->ndim; d++, p += 8) AT64(p);
        AT32(p);
        AT64(p + 4);
    }
#undef AT64
#undef AT32
}

static uint8_t *read_file(const char *path, size_t max, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    uint8_t *b = malloc(max);
    assert_non_null(b);
    *n = fread(b, 1, max, fp);
    fclose(fp);
    return b;
}

/* Starts w on a fresh temp path (path must hold 32 bytes). */
static void begin_tmp(gguf_writer *w, char *path) {
    snprintf(path, 32, "/tmp/fp_gguf_fuzz_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char err[512];
    if (gguf_writer_begin(w, path, err, sizeof err)) fail_msg("begin: %s", err);
}

/* Finishes w and reads the file back whole. */
static uint8_t *finish_read(gguf_writer *w, const char *path, size_t *n) {
    char err[512];
    if (gguf_writer_finish(w, err, sizeof err)) fail_msg("finish: %s", err);
    gguf_writer_free(w);
    uint8_t *b = read_file(path, 1 << 22, n);
    assert_non_null(b);
    unlink(path);
    return b;
}

static void put_random(gguf_writer *w, uint64_t n) {
    char err[512];
    uint8_t buf[4096];
    for (uint64_t i = 0; i < n && i < sizeof buf; i++) buf[i] = (uint8_t)rnd();
    if (gguf_writer_put(w, buf, (size_t)n, err, sizeof err)) fail_msg("put: %s", err);
}

static void make_seeds(void) {
    char err[512] = "";
    /* Seed 0: small, every kind of entry the reader handles. */
    {
        uint8_t nested[128];
        size_t nn = 0;
#define NB(v, k) do { memcpy(nested + nn, &(v), k); nn += k; } while (0)
        uint32_t magic = 0x46554747u, ver = 3, t_arr = GGUF_ARR, t_u16 = GGUF_U16;
        uint64_t zero = 0, one = 1, two = 2, klen = 6;
        uint16_t e0 = 7, e1 = 9;
        NB(magic, 4); NB(ver, 4); NB(zero, 8); NB(one, 8);
        NB(klen, 8); memcpy(nested + nn, "nested", 6); nn += 6;
        NB(t_arr, 4); NB(t_arr, 4); NB(two, 8);
        NB(t_u16, 4); NB(two, 8); NB(e0, 2); NB(e1, 2);
        NB(t_u16, 4); NB(zero, 8);
#undef NB
        gguf_file *src = gguf_open_buffer(nested, nn, err, sizeof err);
        if (!src) fail_msg("nested seed: %s", err);
        gguf_writer *w = gguf_writer_new(32);
        gguf_w_str(w, "general.architecture", "deepseek4");
        gguf_w_u32(w, "deepseek4.block_count", 5);
        gguf_w_bool(w, "flag", 1);
        gguf_w_u64(w, "big", 1ull << 40);
        const float fa[4] = {1, 2, 3, 4};
        gguf_w_arr_f32(w, "floats", fa, 4);
        const uint8_t ba[3] = {0, 1, 1};
        gguf_w_arr(w, "bools", GGUF_BOOL, ba, 3);
        const char *toks[12] = {"<s>", "</s>", "a", "b", "", "hello", "x y", "\xc4\xa0t", "z", "zz", "zzz", "q"};
        gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 12);
        gguf_w_kv_copy(w, src, gguf_find_kv(src, "nested"));
        const struct { const char *n; uint32_t t, nd; uint64_t d[3]; } ts[] = {
            {"f32", QT_F32, 1, {5}},          {"f16", QT_F16, 2, {16, 2}},
            {"q8", QT_Q8_0, 2, {32, 2}},      {"q2k", QT_Q2_K, 1, {256}},
            {"iq2", QT_IQ2_XXS, 1, {256}},    {"i32", QT_I32, 3, {2, 1, 2}},
        };
        uint64_t nb[6];
        for (int i = 0; i < 6; i++) {
            gguf_w_tensor(w, ts[i].n, ts[i].t, ts[i].nd, ts[i].d);
            uint64_t ne = 1;
            for (uint32_t k = 0; k < ts[i].nd; k++) ne *= ts[i].d[k];
            nb[i] = ne / (uint64_t)qtype_block_elems((int)ts[i].t) * (uint64_t)qtype_block_bytes((int)ts[i].t);
        }
        char path[32];
        begin_tmp(w, path);
        for (int i = 0; i < 6; i++) put_random(w, nb[i]);
        g_seeds[0].p = finish_read(w, path, &g_seeds[0].n);
        g_seeds[0].valid = 1;
        gguf_close(src);
    }
    /* Seed 1: the vector model's full metadata (real vocab and merges) with
     * two small tensors; seed 2: the model's first 64 KiB as is. */
    char vpath[512];
    vec_path(vpath, sizeof vpath, "tiny-s1.gguf");
    gguf_file *v = gguf_open(vpath, err, sizeof err);
    if (!v) fail_msg("%s: %s", vpath, err);
    {
        gguf_writer *w = gguf_writer_new(32);
        for (uint64_t i = 0; i < v->n_kv; i++) gguf_w_kv_copy(w, v, &v->kv[i]);
        uint64_t d1[2] = {32, 2}, d2[1] = {256};
        gguf_w_tensor(w, "token_embd.weight", QT_Q8_0, 2, d1);
        gguf_w_tensor(w, "blk.0.ffn_down_exps.weight", QT_Q2_K, 1, d2);
        char path[32];
        begin_tmp(w, path);
        put_random(w, 68);
        put_random(w, 84);
        g_seeds[1].p = finish_read(w, path, &g_seeds[1].n);
        g_seeds[1].valid = 1;
    }
    g_seeds[2].p = read_file(vpath, 65536, &g_seeds[2].n);
    assert_int_equal(g_seeds[2].n, 65536);
    index_fields(&g_seeds[2], v, 65536);
    gguf_close(v);
    for (int i = 0; i < 2; i++) {
        gguf_file *f = gguf_open_buffer(g_seeds[i].p, g_seeds[i].n, err, sizeof err);
        if (!f) fail_msg("seed %d refused: %s", i, err);
        index_fields(&g_seeds[i], f, g_seeds[i].n);
        gguf_close(f);
    }
}

static int setup(void **state) {
    (void)state;
    const char *e = getenv("FP_SEED");
    uint64_t seed;
    if (e && *e) {
        seed = strtoull(e, NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    }
    printf("test_gguf_fuzz: seed %llu (rerun with FP_SEED=%llu)\n", (unsigned long long)seed,
           (unsigned long long)seed);
    fflush(stdout);
    g_rng = seed;
    g_null = fopen("/dev/null", "w");
    make_seeds();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int i = 0; i < NSEEDS; i++) {
        free(g_seeds[i].p);
        free(g_seeds[i].u64_at);
        free(g_seeds[i].u32_at);
    }
    fclose(g_null);
    printf("test_gguf_fuzz: %lu mutants accepted, %lu refused\n", g_accepted, g_rejected);
    return 0;
}

static int cmp_off(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The reader's promises about an accepted buffer. */
static void check_accepted(const gguf_file *f, const uint8_t *buf, size_t n) {
    assert_ptr_equal(f->base, buf);
    assert_int_equal(f->size, n);
    assert_int_equal(f->version, 3);
    assert_true(f->alignment && !(f->alignment & (f->alignment - 1)));
    assert_int_equal(f->data_offset % f->alignment, 0);
    assert_true(f->data_offset >= 24);
    char name[GGUF_MAX_DIMS * 8 + 80];
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        assert_true(t->name.len >= 1 && t->name.len <= 64);
        assert_true((const uint8_t *)t->name.s >= buf && (const uint8_t *)t->name.s + t->name.len <= buf + n);
        memcpy(name, t->name.s, t->name.len);
        name[t->name.len] = 0;
        assert_ptr_equal(gguf_find_tensor(f, name), t);
        assert_true(t->ndim >= 1 && t->ndim <= GGUF_MAX_DIMS);
        assert_true(qtype_known((int)t->type));
        uint64_t ne = 1;
        for (uint32_t d = 0; d < t->ndim; d++) {
            assert_true(t->dims[d] > 0);
            assert_false(__builtin_mul_overflow(ne, t->dims[d], &ne));
        }
        assert_int_equal(t->nelem, ne);
        uint64_t be = (uint64_t)qtype_block_elems((int)t->type);
        assert_int_equal(t->dims[0] % be, 0);
        assert_int_equal(t->nbytes, ne / be * (uint64_t)qtype_block_bytes((int)t->type));
        assert_int_equal(t->offset % f->alignment, 0);
        /* Inside the buffer, computed without pointer overflow. */
        assert_true(f->data_offset <= n);
        assert_true(t->offset <= n - f->data_offset);
        assert_true(t->nbytes <= n - f->data_offset - t->offset);
        assert_ptr_equal(t->data, buf + f->data_offset + t->offset);
        if (t->nbytes) { /* touch both ends: ASan would flag an escape */
            volatile uint8_t x = t->data[0];
            x = t->data[t->nbytes - 1];
            (void)x;
        }
    }
    if (f->n_tensors > 1) {
        const gguf_tensor **o = malloc(f->n_tensors * sizeof *o);
        for (uint64_t i = 0; i < f->n_tensors; i++) o[i] = &f->tensors[i];
        qsort(o, f->n_tensors, sizeof *o, cmp_off);
        for (uint64_t i = 1; i < f->n_tensors; i++) assert_true(o[i - 1]->offset + o[i - 1]->nbytes <= o[i]->offset);
        free(o);
    }
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        assert_true(kv->key.len >= 1);
        assert_true((const uint8_t *)kv->key.s + kv->key.len <= buf + n);
        char *key = malloc(kv->key.len + 1);
        memcpy(key, kv->key.s, kv->key.len);
        key[kv->key.len] = 0;
        assert_int_equal(strlen(key), kv->key.len); /* no NUL inside */
        assert_ptr_equal(gguf_find_kv(f, key), kv);
        assert_true(kv->type <= GGUF_F64);
        const uint8_t *raw;
        size_t rn = gguf_kv_raw(f, kv, &raw);
        assert_true(rn > 0);
        assert_true(raw >= buf && rn <= n && raw + rn <= buf + n);
        uint32_t u32;
        uint64_t u64;
        float fl;
        int bl;
        gguf_str s;
        if (gguf_get_u32(f, key, &u32) == 0) assert_int_equal(kv->type, GGUF_U32);
        if (gguf_get_u64(f, key, &u64) == 0) assert_true(kv->type == GGUF_U32 || kv->type == GGUF_U64);
        (void)gguf_get_f32(f, key, &fl);
        if (gguf_get_bool(f, key, &bl) == 0) assert_true(bl == 0 || bl == 1);
        if (gguf_get_str(f, key, &s) == 0) assert_true((const uint8_t *)s.s + s.len <= buf + n);
        if (kv->type == GGUF_ARR && kv->arr_len) {
            int64_t iv;
            double dv;
            (void)gguf_arr_get_i64(kv, 0, &iv);
            (void)gguf_arr_get_i64(kv, kv->arr_len - 1, &iv);
            (void)gguf_arr_get_f64(kv, kv->arr_len - 1, &dv);
            if (kv->arr_type == GGUF_STR)
                for (uint64_t j = 0; j < kv->arr_len; j++) {
                    assert_int_equal(gguf_arr_get_str(f, kv, j, &s), 0);
                    assert_true((const uint8_t *)s.s >= buf && s.len <= n &&
                                (const uint8_t *)s.s + s.len <= raw + rn);
                }
        }
        free(key);
    }
    gguf_print_summary(f, g_null);
}

/* Opens an exact-size copy of p[0..n) and checks the outcome. */
static int try_buffer(const uint8_t *p, size_t n) {
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n) memcpy(copy, p, n);
    char err[512];
    memset(err, 0x55, sizeof err);
    err[sizeof err - 1] = 0;
    err[0] = 0;
    gguf_file *f = gguf_open_buffer(n ? copy : NULL, n, err, sizeof err);
    int ok = f != NULL;
    if (f) {
        check_accepted(f, copy, n);
        gguf_close(f);
        g_accepted++;
    } else {
        assert_true(err[0] != 0);
        assert_true(strlen(err) < sizeof err);
        g_rejected++;
    }
    free(copy);
    return ok;
}

static void test_seeds_valid(void **state) {
    (void)state;
    assert_int_equal(try_buffer(g_seeds[0].p, g_seeds[0].n), 1);
    assert_int_equal(try_buffer(g_seeds[1].p, g_seeds[1].n), 1);
    assert_int_equal(try_buffer(g_seeds[2].p, g_seeds[2].n), 0); /* tensors run past 64 KiB */
    assert_true(g_seeds[0].n64 > 20 && g_seeds[1].n64 > 100 && g_seeds[2].n64 > 100);
}

/* Every truncation of the small seed; for the big seeds, every length
 * around a structural field plus a sweep. A cut valid file is only ever
 * accepted when what remains still holds every tensor. */
static void test_truncations(void **state) {
    (void)state;
    const seed_t *s = &g_seeds[0];
    char err[512];
    gguf_file *f = gguf_open_buffer(s->p, s->n, err, sizeof err);
    assert_non_null(f);
    uint64_t data_end = 0; /* end of the last tensor's bytes; only padding follows */
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        uint64_t e = f->data_offset + f->tensors[i].offset + f->tensors[i].nbytes;
        if (e > data_end) data_end = e;
    }
    gguf_close(f);
    assert_true(data_end < s->n);
    unsigned long acc = 0;
    for (size_t len = 0; len < s->n; len++) acc += (unsigned long)try_buffer(s->p, len);
    /* Exactly the prefixes that still hold every tensor are accepted. */
    assert_int_equal(acc, s->n - data_end);
    for (int k = 1; k < NSEEDS; k++) {
        s = &g_seeds[k];
        for (size_t i = 0; i < s->n64; i++)
            for (size_t len = s->u64_at[i] - 1; len <= s->u64_at[i] + 9; len++)
                if (len < s->n) try_buffer(s->p, len);
        for (size_t len = 0; len < s->n; len += 97 + rndn(64)) try_buffer(s->p, len);
    }
}

static const uint64_t k_u64_vals[] = {0, 1, 2, 7, 8, 12, 0xff, 0xffff, 0xffffffffull, 0x100000000ull,
                                      0x7fffffffffffffffull, 0x8000000000000000ull, 0xffffffffffffffffull,
                                      0xfffffffffffffff8ull, 0xffffffffffffffe0ull};
static const uint32_t k_u32_vals[] = {0, 1, 2, 3, 7, 8, 9, 10, 11, 12, 13, 16, 26, 30, 31, 0x7fffffffu,
                                      0x80000000u, 0xffffffffu};

static void mutate(uint8_t *p, size_t *n, const seed_t *s) {
    int ops = 1 + (int)rndn(3);
    for (int o = 0; o < ops && *n; o++) {
        switch (rndn(8)) {
        case 0: /* flip bits */
            for (int k = 1 + (int)rndn(8); k > 0; k--) p[rndn(*n)] ^= (uint8_t)(1u << rndn(8));
            break;
        case 1: /* random bytes */
            for (int k = 1 + (int)rndn(4); k > 0; k--) p[rndn(*n)] = (uint8_t)rnd();
            break;
        case 2:
        case 3: { /* a length / count / dim / offset field gets an extreme or nearby value */
            if (!s->n64) break;
            size_t at = s->u64_at[rndn(s->n64)];
            if (at + 8 > *n) break;
            uint64_t v;
            memcpy(&v, p + at, 8);
            switch (rndn(5)) {
            case 0: v = k_u64_vals[rndn(sizeof k_u64_vals / sizeof k_u64_vals[0])]; break;
            case 1: v += rndn(5) - 2; break;
            case 2: v = rnd(); break;
            case 3: v = rndn(*n + 64); break;
            default: v *= 2; break;
            }
            memcpy(p + at, &v, 8);
            break;
        }
        case 4: { /* a type / ndim field */
            if (!s->n32) break;
            size_t at = s->u32_at[rndn(s->n32)];
            if (at + 4 > *n) break;
            uint32_t v = rndn(3) ? k_u32_vals[rndn(sizeof k_u32_vals / sizeof k_u32_vals[0])] : (uint32_t)rnd();
            memcpy(p + at, &v, 4);
            break;
        }
        case 5: /* the two counts */
            if (*n >= 24) {
                uint64_t v = rndn(2) ? rnd() : rndn(4096);
                memcpy(p + (rndn(2) ? 8 : 16), &v, 8);
            }
            break;
        case 6: { /* copy a chunk elsewhere (duplicates keys, names, headers) */
            size_t len = 1 + rndn(64), from = rndn(*n), to = rndn(*n);
            if (from + len > *n) len = *n - from;
            if (to + len > *n) len = *n - to;
            memmove(p + to, p + from, len);
            break;
        }
        default: /* truncate */
            *n = rndn(*n + 1);
            break;
        }
    }
}

static void test_random_mutations(void **state) {
    (void)state;
    const char *e = getenv("FP_FUZZ_ITERS");
    long iters = e && *e ? strtol(e, NULL, 10) : 6000;
    unsigned long acc0 = g_accepted, rej0 = g_rejected;
    size_t cap = 0;
    for (int i = 0; i < NSEEDS; i++)
        if (g_seeds[i].n > cap) cap = g_seeds[i].n;
    uint8_t *work = malloc(cap);
    assert_non_null(work);
    for (long it = 0; it < iters; it++) {
        /* Weighted: the small seed mutates fastest; the big ones cover the
         * real vocab and a long tensor directory. */
        const seed_t *s = &g_seeds[it % 4 == 3 ? 1 + rndn(2) : 0];
        size_t n = s->n;
        memcpy(work, s->p, n);
        mutate(work, &n, s);
        try_buffer(work, n);
    }
    free(work);
    /* Both outcomes must occur, or the mutator is not exercising the reader. */
    assert_true(g_accepted > acc0);
    assert_true(g_rejected > rej0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seeds_valid),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_random_mutations),
    };
    return cmocka_run_group_tests_name("gguf_fuzz", tests, setup, teardown);
}
