/* test_gguf.c — GGUF reader/writer: the reference-vector models against their
 * manifests, a lossless writer→reader round trip over every value type and
 * several tensor types, writer misuse, and one hand-built hostile file per
 * validation rule (each must be refused with a message naming the culprit).
 * Vectors: $FP_VECTORS or ../shared/vectors (tests run from the repo root). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <cJSON.h>

#include "gguf.h"
#include "quant.h"

/* ---- helpers -------------------------------------------------------------- */

static void vec_path(char *buf, size_t n, const char *name) {
    const char *d = getenv("FP_VECTORS");
    snprintf(buf, n, "%s/%s", d && *d ? d : "../shared/vectors", name);
}

static char *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
    b[n] = 0;
    fclose(fp);
    *len = (size_t)n;
    return b;
}

static int gstr_eq(gguf_str s, const char *c) { return s.len == strlen(c) && memcmp(s.s, c, s.len) == 0; }

/* A scratch directory per test run. */
static char g_dir[64];
static int setup_dir(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/fp_test_gguf_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}
static int teardown_dir(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Little hand builder for hostile files. */
typedef struct { uint8_t *p; size_t n, cap; } gb;
static void gb_put(gb *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void gb_u32(gb *b, uint32_t v) { gb_put(b, &v, 4); }
static void gb_u64(gb *b, uint64_t v) { gb_put(b, &v, 8); }
static void gb_u8(gb *b, uint8_t v) { gb_put(b, &v, 1); }
static void gb_str(gb *b, const char *s) {
    gb_u64(b, strlen(s));
    gb_put(b, s, strlen(s));
}
static void gb_hdr(gb *b, uint64_t nt, uint64_t nkv) {
    gb_put(b, "GGUF", 4);
    gb_u32(b, 3);
    gb_u64(b, nt);
    gb_u64(b, nkv);
}
static void gb_kv_u32(gb *b, const char *k, uint32_t v) {
    gb_str(b, k);
    gb_u32(b, GGUF_U32);
    gb_u32(b, v);
}
static void gb_tensor(gb *b, const char *name, uint32_t type, uint32_t nd, const uint64_t *dims, uint64_t off) {
    gb_str(b, name);
    gb_u32(b, nd);
    for (uint32_t i = 0; i < nd; i++) gb_u64(b, dims[i]);
    gb_u32(b, type);
    gb_u64(b, off);
}
static void gb_pad_zeros(gb *b, size_t align, size_t extra) {
    while (b->n % align) gb_u8(b, 0);
    for (size_t i = 0; i < extra; i++) gb_u8(b, 0);
}

/* Opens b from an exact-size heap copy (so ASan sees any over-read). */
static gguf_file *open_gb(const gb *b, void **copy, char *err, size_t errlen) {
    *copy = malloc(b->n ? b->n : 1);
    assert_non_null(*copy);
    memcpy(*copy, b->p, b->n);
    return gguf_open_buffer(*copy, b->n, err, errlen);
}

static void expect_reject(gb *b, const char *needle1, const char *needle2) {
    char err[512] = "";
    void *copy;
    gguf_file *f = open_gb(b, &copy, err, sizeof err);
    if (f) {
        gguf_close(f);
        fail_msg("accepted a file that should be refused (expected '%s')", needle1);
    }
    if (!strstr(err, needle1) || (needle2 && !strstr(err, needle2)))
        fail_msg("error '%s' lacks '%s'%s%s", err, needle1, needle2 ? " / " : "", needle2 ? needle2 : "");
    free(copy);
    free(b->p);
    memset(b, 0, sizeof *b);
}

static void expect_accept(gb *b, uint64_t nt, uint64_t nkv) {
    char err[512] = "";
    void *copy;
    gguf_file *f = open_gb(b, &copy, err, sizeof err);
    if (!f) fail_msg("refused a valid file: %s", err);
    assert_int_equal(f->n_tensors, nt);
    assert_int_equal(f->n_kv, nkv);
    assert_int_equal(f->mapped, 0);
    gguf_close(f);
    free(copy);
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- reference vectors ---------------------------------------------------- */

static void check_vector(const char *name) {
    char path[512], jpath[520], err[512] = "";
    vec_path(path, sizeof path, name);
    snprintf(jpath, sizeof jpath, "%s.json", path);
    gguf_file *f = gguf_open(path, err, sizeof err);
    if (!f) fail_msg("%s: %s", path, err);
    assert_int_equal(f->mapped, 1);
    assert_int_equal(f->version, 3);
    assert_int_equal(f->n_tensors, 150);
    assert_int_equal(f->n_kv, 50);
    assert_int_equal(f->alignment, 32);
    assert_int_equal(f->size, 20428960);

    uint32_t u;
    assert_int_equal(gguf_get_u32(f, "deepseek4.block_count", &u), 0);
    assert_int_equal(u, 5);
    assert_int_equal(gguf_get_u32(f, "deepseek4.embedding_length", &u), 0);
    assert_int_equal(u, 256);
    uint64_t u64;
    assert_int_equal(gguf_get_u64(f, "deepseek4.rope.scaling.original_context_length", &u64), 0);
    assert_int_equal(u64, 65536);
    float fl;
    assert_int_equal(gguf_get_f32(f, "deepseek4.expert_weights_scale", &fl), 0);
    assert_true(fl == 1.5f);
    assert_int_equal(gguf_get_f32(f, "deepseek4.block_count", &fl), 0); /* u32 reads as float too */
    assert_true(fl == 5.0f);
    assert_int_equal(gguf_get_u32(f, "deepseek4.expert_weights_scale", &u), -1); /* f32 is not u32 */
    assert_int_equal(gguf_get_u32(f, "no.such.key", &u), -1);
    int bl = 0;
    assert_int_equal(gguf_get_bool(f, "deepseek4.expert_weights_norm", &bl), 0);
    assert_int_equal(bl, 1);
    gguf_str s;
    assert_int_equal(gguf_get_str(f, "general.architecture", &s), 0);
    assert_true(gstr_eq(s, "deepseek4"));
    assert_int_equal(gguf_get_str(f, "deepseek4.block_count", &s), -1);

    const gguf_kv *cr = gguf_find_kv(f, "deepseek4.attention.compress_ratios");
    assert_non_null(cr);
    assert_int_equal(cr->type, GGUF_ARR);
    assert_int_equal(cr->arr_len, 5);
    const int64_t want_cr[5] = {0, 0, 4, 128, 4};
    for (int i = 0; i < 5; i++) {
        int64_t v;
        double d;
        assert_int_equal(gguf_arr_get_i64(cr, (uint64_t)i, &v), 0);
        assert_int_equal(v, want_cr[i]);
        assert_int_equal(gguf_arr_get_f64(cr, (uint64_t)i, &d), 0);
        assert_true(d == (double)want_cr[i]);
    }
    int64_t v;
    assert_int_equal(gguf_arr_get_i64(cr, 5, &v), -1); /* past the end */
    const gguf_kv *clamp = gguf_find_kv(f, "deepseek4.swiglu_clamp_exp");
    double d;
    assert_int_equal(gguf_arr_get_f64(clamp, 4, &d), 0);
    assert_true(d == 10.0);
    assert_int_equal(gguf_arr_get_i64(clamp, 0, &v), -1); /* floats are not integers */

    const gguf_kv *tok = gguf_find_kv(f, "tokenizer.ggml.tokens");
    assert_non_null(tok);
    assert_int_equal(tok->arr_type, GGUF_STR);
    assert_int_equal(tok->arr_len, 512);
    assert_int_equal(gguf_arr_get_str(f, tok, 512, &s), -1);
    assert_int_equal(gguf_arr_get_str(f, cr, 0, &s), -1); /* not a string array */
    /* Random access agrees with a sequential walk of the raw payload. */
    const uint8_t *p = tok->val;
    for (uint64_t i = 0; i < tok->arr_len; i++) {
        uint64_t len;
        memcpy(&len, p, 8);
        assert_int_equal(gguf_arr_get_str(f, tok, i, &s), 0);
        assert_int_equal(s.len, len);
        assert_ptr_equal(s.s, (const char *)p + 8);
        p += 8 + len;
    }
    const uint8_t *raw;
    assert_int_equal(gguf_kv_raw(f, tok, &raw), (size_t)(p - tok->val) + 12);

    /* Every tensor matches the writer's manifest, in order. */
    size_t jlen;
    char *js = slurp(jpath, &jlen);
    if (!js) fail_msg("cannot read %s", jpath);
    cJSON *root = cJSON_Parse(js);
    assert_non_null(root);
    cJSON *tl = cJSON_GetObjectItem(root, "tensors");
    assert_int_equal(cJSON_GetArraySize(tl), 150);
    uint64_t total = 0;
    for (int i = 0; i < 150; i++) {
        cJSON *jt = cJSON_GetArrayItem(tl, i);
        const char *nm = cJSON_GetObjectItem(jt, "name")->valuestring;
        const gguf_tensor *t = gguf_find_tensor(f, nm);
        if (!t) fail_msg("tensor %s missing", nm);
        assert_ptr_equal(t, &f->tensors[i]);
        assert_string_equal(qtype_name((int)t->type), cJSON_GetObjectItem(jt, "type")->valuestring);
        cJSON *dims = cJSON_GetObjectItem(jt, "dims");
        assert_int_equal(t->ndim, (uint32_t)cJSON_GetArraySize(dims));
        uint64_t ne = 1;
        for (uint32_t k = 0; k < t->ndim; k++) {
            assert_int_equal(t->dims[k], (uint64_t)cJSON_GetArrayItem(dims, (int)k)->valuedouble);
            ne *= t->dims[k];
        }
        assert_int_equal(t->nelem, ne);
        assert_int_equal(t->nbytes, ne / (uint64_t)qtype_block_elems((int)t->type) *
                                        (uint64_t)qtype_block_bytes((int)t->type));
        assert_ptr_equal(t->data, f->base + f->data_offset + t->offset);
        assert_int_equal(t->offset % 32, 0);
        total += t->nbytes;
    }
    /* Special tokens sit at their manifest ids. */
    cJSON *sp = cJSON_GetObjectItem(root, "special_token_ids");
    int nsp = 0;
    for (cJSON *it = sp->child; it; it = it->next, nsp++) {
        assert_int_equal(gguf_arr_get_str(f, tok, (uint64_t)it->valuedouble, &s), 0);
        if (!gstr_eq(s, it->string)) fail_msg("token %d is not %s", (int)it->valuedouble, it->string);
    }
    assert_int_equal(nsp, 7);
    cJSON_Delete(root);
    free(js);

    const gguf_tensor *g = gguf_find_tensor(f, "blk.0.ffn_gate_exps.weight");
    assert_non_null(g);
    assert_int_equal(g->type, QT_IQ2_XXS);
    assert_int_equal(g->ndim, 3);
    assert_int_equal(g->dims[0], 256);
    assert_int_equal(g->dims[1], 256);
    assert_int_equal(g->dims[2], 16);
    assert_int_equal(g->nbytes, 256 * 16 * 66);
    assert_int_equal(f->data_offset, 24128);
    assert_int_equal(total, 20404588);
    assert_null(gguf_find_tensor(f, "blk.0.ffn_gate_exps"));
    assert_null(gguf_find_tensor(f, ""));
    assert_null(gguf_find_kv(f, "deepseek4"));

    char *sum = NULL;
    size_t sumlen = 0;
    FILE *ms = open_memstream(&sum, &sumlen);
    assert_non_null(ms);
    gguf_print_summary(f, ms);
    fclose(ms);
    const char *want[] = {"GGUF version 3", "metadata keys: 50", "tensors:       150", "alignment:     32",
                          "IQ2_XXS      10 tensors        2703360 bytes", "Q2_K          5 tensors",
                          "total tensor bytes: 20404588"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(sum, want[i])) fail_msg("summary lacks '%s':\n%s", want[i], sum);
    free(sum);
    gguf_close(f);
}

static void test_vector_tiny_s1(void **state) {
    (void)state;
    check_vector("tiny-s1.gguf");
}

static void test_vector_tiny_cond_s1(void **state) {
    (void)state;
    check_vector("tiny-cond-s1.gguf");
}

/* ---- writer -> reader round trip ------------------------------------------ */

/* xorshift64*: deterministic test data. */
static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

typedef struct {
    const char *name;
    uint32_t type, ndim;
    uint64_t dims[4];
} tspec;

static const tspec k_tensors[] = {
    {"f32.a", QT_F32, 2, {7, 3}},
    {"f16.b", QT_F16, 1, {33}},
    {"q8_0.c", QT_Q8_0, 2, {64, 3}},
    {"q2_k.d", QT_Q2_K, 2, {256, 2}},
    {"q4_k.e", QT_Q4_K, 1, {512}},
    {"iq2_xxs.f", QT_IQ2_XXS, 3, {256, 1, 3}},
    {"i32.g", QT_I32, 1, {5}},
    {"bf16.h", QT_BF16, 4, {2, 1, 1, 3}},
};
#define NT (sizeof k_tensors / sizeof k_tensors[0])

static uint64_t tbytes(const tspec *t) {
    uint64_t ne = 1;
    for (uint32_t i = 0; i < t->ndim; i++) ne *= t->dims[i];
    return ne / (uint64_t)qtype_block_elems((int)t->type) * (uint64_t)qtype_block_bytes((int)t->type);
}

/* A file with a nested array kv, used as a kv_copy source. */
static void build_nested_src(gb *b) {
    gb_hdr(b, 0, 2);
    gb_str(b, "test.nested"); /* [[1,2],[3]] as u32 */
    gb_u32(b, GGUF_ARR);
    gb_u32(b, GGUF_ARR);
    gb_u64(b, 2);
    gb_u32(b, GGUF_U32);
    gb_u64(b, 2);
    gb_u32(b, 1);
    gb_u32(b, 2);
    gb_u32(b, GGUF_U32);
    gb_u64(b, 1);
    gb_u32(b, 3);
    gb_str(b, "test.nested_str"); /* [["x"],[]] */
    gb_u32(b, GGUF_ARR);
    gb_u32(b, GGUF_ARR);
    gb_u64(b, 2);
    gb_u32(b, GGUF_STR);
    gb_u64(b, 1);
    gb_str(b, "x");
    gb_u32(b, GGUF_STR);
    gb_u64(b, 0);
}

static void test_roundtrip(void **state) {
    (void)state;
    char path[256], tmp[280], err[512] = "";
    snprintf(path, sizeof path, "%s/rt.gguf", g_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);

    gb nb = {0};
    build_nested_src(&nb);
    gguf_file *src = gguf_open_buffer(nb.p, nb.n, err, sizeof err);
    if (!src) fail_msg("nested source refused: %s", err);

    gguf_writer *w = gguf_writer_new(64);
    assert_non_null(w);
    uint8_t u8 = 200, bl = 1;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int64_t i64 = -(INT64_C(1) << 62) - 7;
    double f64 = -1.25e300;
    gguf_w_scalar(w, "s.u8", GGUF_U8, &u8);
    gguf_w_scalar(w, "s.i8", GGUF_I8, &i8);
    gguf_w_scalar(w, "s.u16", GGUF_U16, &u16);
    gguf_w_scalar(w, "s.i16", GGUF_I16, &i16);
    gguf_w_u32(w, "s.u32", 4000000000u);
    gguf_w_i32(w, "s.i32", -2000000000);
    gguf_w_f32(w, "s.f32", 3.25f);
    gguf_w_bool(w, "s.bool", 1);
    gguf_w_scalar(w, "s.bool2", GGUF_BOOL, &bl);
    gguf_w_str(w, "s.str", "h\xc3\xa9llo \"x\"\n");
    gguf_w_str(w, "s.empty", "");
    gguf_w_u64(w, "s.u64", (UINT64_C(1) << 60) | 5);
    gguf_w_scalar(w, "s.i64", GGUF_I64, &i64);
    gguf_w_scalar(w, "s.f64", GGUF_F64, &f64);
    const uint32_t au32[3] = {0, 4, 4294967295u};
    const int32_t ai32[4] = {-1, 0, 1, INT32_MIN};
    const float af32[2] = {0.5f, -7.0f};
    const uint8_t au8[5] = {0, 1, 2, 254, 255};
    const int16_t ai16[2] = {-32768, 32767};
    const uint64_t au64[2] = {UINT64_MAX, 1};
    const double af64[1] = {2.5};
    const uint8_t abool[3] = {1, 0, 1};
    gguf_w_arr_u32(w, "a.u32", au32, 3);
    gguf_w_arr_i32(w, "a.i32", ai32, 4);
    gguf_w_arr_f32(w, "a.f32", af32, 2);
    gguf_w_arr(w, "a.u8", GGUF_U8, au8, 5);
    gguf_w_arr(w, "a.i16", GGUF_I16, ai16, 2);
    gguf_w_arr(w, "a.u64", GGUF_U64, au64, 2);
    gguf_w_arr(w, "a.f64", GGUF_F64, af64, 1);
    gguf_w_arr(w, "a.bool", GGUF_BOOL, abool, 3);
    gguf_w_arr_u32(w, "a.empty", NULL, 0);
    static char longs[1001];
    memset(longs, 'x', 1000);
    const char *strs[4] = {"a", "", "\xc3\xbc\xe2\x88\x82", longs};
    gguf_w_arr_str(w, "a.str", strs, 4);
    gguf_w_arr_str(w, "a.str_empty", NULL, 0);
    enum { NTOK = 3000 };
    static char tokbuf[NTOK][16];
    static const char *toks[NTOK];
    for (int i = 0; i < NTOK; i++) {
        snprintf(tokbuf[i], sizeof tokbuf[i], "tok%d", i * 7);
        toks[i] = tokbuf[i];
    }
    gguf_w_arr_str(w, "a.tokens", toks, NTOK);
    gguf_w_kv_copy(w, src, gguf_find_kv(src, "test.nested"));
    gguf_w_kv_copy(w, src, gguf_find_kv(src, "test.nested_str"));

    uint8_t *data[NT];
    uint64_t seed = 0x1234567887654321ull;
    for (size_t i = 0; i < NT; i++) {
        gguf_w_tensor(w, k_tensors[i].name, k_tensors[i].type, k_tensors[i].ndim, k_tensors[i].dims);
        uint64_t n = tbytes(&k_tensors[i]);
        data[i] = malloc(n);
        for (uint64_t k = 0; k < n; k++) data[i][k] = (uint8_t)rng_next(&seed);
    }
    if (gguf_writer_begin(w, path, err, sizeof err)) fail_msg("begin: %s", err);
    struct stat st;
    assert_int_equal(stat(tmp, &st), 0); /* streaming goes to path.tmp */
    assert_int_not_equal(stat(path, &st), 0);
    for (size_t i = 0; i < NT; i++) { /* uneven partial puts */
        uint64_t n = tbytes(&k_tensors[i]), done = 0;
        while (done < n) {
            uint64_t k = 1 + rng_next(&seed) % (n - done);
            if (gguf_writer_put(w, data[i] + done, (size_t)k, err, sizeof err)) fail_msg("put: %s", err);
            done += k;
        }
    }
    if (gguf_writer_finish(w, err, sizeof err)) fail_msg("finish: %s", err);
    gguf_writer_free(w);
    assert_int_not_equal(stat(tmp, &st), 0);

    gguf_file *f = gguf_open(path, err, sizeof err);
    if (!f) fail_msg("reopen: %s", err);
    assert_int_equal(f->alignment, 64);
    assert_int_equal(f->n_tensors, NT);
    assert_int_equal(f->n_kv, 29); /* 28 written + general.alignment added by the writer */
    uint32_t u;
    assert_int_equal(gguf_get_u32(f, "general.alignment", &u), 0);
    assert_int_equal(u, 64);

    const gguf_kv *kv;
    kv = gguf_find_kv(f, "s.u8");
    assert_int_equal(kv->type, GGUF_U8);
    assert_int_equal(kv->val[0], 200);
    kv = gguf_find_kv(f, "s.i8");
    assert_int_equal(kv->type, GGUF_I8);
    assert_int_equal((int8_t)kv->val[0], -100);
    kv = gguf_find_kv(f, "s.u16");
    assert_int_equal(kv->type, GGUF_U16);
    assert_memory_equal(kv->val, &u16, 2);
    kv = gguf_find_kv(f, "s.i16");
    assert_int_equal(kv->type, GGUF_I16);
    assert_memory_equal(kv->val, &i16, 2);
    assert_int_equal(gguf_get_u32(f, "s.u32", &u), 0);
    assert_int_equal(u, 4000000000u);
    uint64_t u64;
    assert_int_equal(gguf_get_u64(f, "s.u32", &u64), 0);
    assert_int_equal(u64, 4000000000u);
    assert_int_equal(gguf_get_u64(f, "s.u64", &u64), 0);
    assert_int_equal(u64, (UINT64_C(1) << 60) | 5);
    float fl;
    assert_int_equal(gguf_get_f32(f, "s.i32", &fl), 0);
    assert_true(fl == -2000000000.0f);
    kv = gguf_find_kv(f, "s.i32");
    assert_int_equal(kv->type, GGUF_I32);
    assert_int_equal(gguf_get_f32(f, "s.f32", &fl), 0);
    assert_true(fl == 3.25f);
    assert_int_equal(gguf_get_f32(f, "s.f64", &fl), 0);
    assert_true(fl == (float)f64);
    kv = gguf_find_kv(f, "s.f64");
    assert_int_equal(kv->type, GGUF_F64);
    assert_memory_equal(kv->val, &f64, 8);
    kv = gguf_find_kv(f, "s.i64");
    assert_int_equal(kv->type, GGUF_I64);
    assert_memory_equal(kv->val, &i64, 8);
    int b = 0;
    assert_int_equal(gguf_get_bool(f, "s.bool", &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(gguf_get_bool(f, "s.u8", &b), -1);
    gguf_str s;
    assert_int_equal(gguf_get_str(f, "s.str", &s), 0);
    assert_true(gstr_eq(s, "h\xc3\xa9llo \"x\"\n"));
    assert_int_equal(gguf_get_str(f, "s.empty", &s), 0);
    assert_int_equal(s.len, 0);

    int64_t iv;
    double dv;
    kv = gguf_find_kv(f, "a.u32");
    assert_int_equal(kv->arr_type, GGUF_U32);
    assert_int_equal(kv->arr_len, 3);
    assert_int_equal(gguf_arr_get_i64(kv, 2, &iv), 0);
    assert_int_equal(iv, 4294967295ll);
    kv = gguf_find_kv(f, "a.i32");
    assert_int_equal(gguf_arr_get_i64(kv, 3, &iv), 0);
    assert_int_equal(iv, INT32_MIN);
    kv = gguf_find_kv(f, "a.f32");
    assert_int_equal(gguf_arr_get_f64(kv, 1, &dv), 0);
    assert_true(dv == -7.0);
    kv = gguf_find_kv(f, "a.u8");
    assert_int_equal(gguf_arr_get_i64(kv, 4, &iv), 0);
    assert_int_equal(iv, 255);
    kv = gguf_find_kv(f, "a.i16");
    assert_int_equal(gguf_arr_get_i64(kv, 0, &iv), 0);
    assert_int_equal(iv, -32768);
    kv = gguf_find_kv(f, "a.u64");
    assert_int_equal(gguf_arr_get_i64(kv, 0, &iv), -1); /* does not fit int64 */
    assert_int_equal(gguf_arr_get_i64(kv, 1, &iv), 0);
    assert_int_equal(iv, 1);
    assert_int_equal(gguf_arr_get_f64(kv, 0, &dv), 0);
    assert_true(dv == (double)UINT64_MAX);
    kv = gguf_find_kv(f, "a.f64");
    assert_int_equal(gguf_arr_get_f64(kv, 0, &dv), 0);
    assert_true(dv == 2.5);
    kv = gguf_find_kv(f, "a.bool");
    assert_int_equal(kv->arr_type, GGUF_BOOL);
    assert_memory_equal(kv->val, abool, 3);
    kv = gguf_find_kv(f, "a.empty");
    assert_int_equal(kv->arr_len, 0);
    assert_int_equal(gguf_arr_get_i64(kv, 0, &iv), -1);
    kv = gguf_find_kv(f, "a.str");
    assert_int_equal(kv->arr_type, GGUF_STR);
    assert_int_equal(kv->arr_len, 4);
    for (int i = 3; i >= 0; i--) {
        assert_int_equal(gguf_arr_get_str(f, kv, (uint64_t)i, &s), 0);
        assert_true(gstr_eq(s, strs[i]));
    }
    kv = gguf_find_kv(f, "a.str_empty");
    assert_int_equal(kv->arr_type, GGUF_STR);
    assert_int_equal(kv->arr_len, 0);
    assert_int_equal(gguf_arr_get_str(f, kv, 0, &s), -1);
    kv = gguf_find_kv(f, "a.tokens");
    assert_int_equal(kv->arr_len, NTOK);
    for (uint64_t i = 0; i < NTOK; i++) {
        uint64_t j = (i * 2654435761u) % NTOK; /* scattered order */
        assert_int_equal(gguf_arr_get_str(f, kv, j, &s), 0);
        assert_true(gstr_eq(s, toks[j]));
    }
    /* kv_copy is byte-exact, nested arrays included. */
    const char *nested[2] = {"test.nested", "test.nested_str"};
    for (int i = 0; i < 2; i++) {
        const gguf_kv *a = gguf_find_kv(src, nested[i]), *c = gguf_find_kv(f, nested[i]);
        assert_non_null(c);
        assert_int_equal(c->type, GGUF_ARR);
        assert_int_equal(c->arr_type, GGUF_ARR);
        assert_int_equal(c->arr_len, 2);
        const uint8_t *ra, *rc;
        size_t na = gguf_kv_raw(src, a, &ra), nc = gguf_kv_raw(f, c, &rc);
        assert_true(na > 12);
        assert_int_equal(na, nc);
        assert_memory_equal(ra, rc, na);
        assert_int_equal(gguf_arr_get_i64(c, 0, &iv), -1); /* nested: no scalar view */
    }
    const uint8_t *foreign;
    assert_int_equal(gguf_kv_raw(src, gguf_find_kv(f, "a.u32"), &foreign), 0); /* kv of another file */

    uint64_t end = 0;
    for (size_t i = 0; i < NT; i++) {
        const gguf_tensor *t = &f->tensors[i];
        assert_true(gstr_eq(t->name, k_tensors[i].name));
        assert_ptr_equal(gguf_find_tensor(f, k_tensors[i].name), t);
        assert_int_equal(t->type, k_tensors[i].type);
        assert_int_equal(t->ndim, k_tensors[i].ndim);
        for (uint32_t k = 0; k < t->ndim; k++) assert_int_equal(t->dims[k], k_tensors[i].dims[k]);
        assert_int_equal(t->nbytes, tbytes(&k_tensors[i]));
        assert_int_equal(t->offset % 64, 0);
        assert_int_equal(t->offset, (end + 63) / 64 * 64);
        assert_memory_equal(t->data, data[i], t->nbytes);
        for (uint64_t k = end; k < t->offset; k++) assert_int_equal(f->base[f->data_offset + k], 0); /* padding */
        end = t->offset + t->nbytes;
        free(data[i]);
    }
    assert_int_equal(f->size, f->data_offset + (end + 63) / 64 * 64); /* the last tensor is padded too */
    assert_int_equal(f->data_offset % 64, 0);
    gguf_close(f);
    gguf_close(src);
    free(nb.p);
}

/* Copying every kv of a real model into a new file keeps them byte-exact. */
static void test_copy_vector_metadata(void **state) {
    (void)state;
    char vpath[512], path[256], err[512] = "";
    vec_path(vpath, sizeof vpath, "tiny-s1.gguf");
    snprintf(path, sizeof path, "%s/meta.gguf", g_dir);
    gguf_file *v = gguf_open(vpath, err, sizeof err);
    if (!v) fail_msg("%s", err);
    gguf_writer *w = gguf_writer_new(32);
    for (uint64_t i = 0; i < v->n_kv; i++) gguf_w_kv_copy(w, v, &v->kv[i]);
    const gguf_tensor *t = gguf_find_tensor(v, "blk.0.ffn_down_exps.weight");
    gguf_w_tensor(w, "copy", t->type, t->ndim, t->dims);
    if (gguf_writer_begin(w, path, err, sizeof err) || gguf_writer_put(w, t->data, t->nbytes, err, sizeof err) ||
        gguf_writer_finish(w, err, sizeof err))
        fail_msg("%s", err);
    gguf_writer_free(w);
    gguf_file *f = gguf_open(path, err, sizeof err);
    if (!f) fail_msg("%s", err);
    assert_int_equal(f->n_kv, v->n_kv); /* general.alignment copied, not added twice */
    for (uint64_t i = 0; i < v->n_kv; i++) {
        const uint8_t *ra, *rb;
        assert_int_equal(f->kv[i].key.len, v->kv[i].key.len);
        assert_memory_equal(f->kv[i].key.s, v->kv[i].key.s, v->kv[i].key.len);
        size_t na = gguf_kv_raw(v, &v->kv[i], &ra), nb = gguf_kv_raw(f, &f->kv[i], &rb);
        assert_int_equal(na, nb);
        assert_memory_equal(ra, rb, na);
    }
    assert_int_equal(f->tensors[0].nbytes, t->nbytes);
    assert_memory_equal(f->tensors[0].data, t->data, t->nbytes);
    gguf_close(f);
    gguf_close(v);
}

/* ---- writer misuse -------------------------------------------------------- */

static void expect_begin_fails(gguf_writer *w, const char *needle) {
    char path[256], err[512] = "";
    snprintf(path, sizeof path, "%s/bad.gguf", g_dir);
    assert_int_equal(gguf_writer_begin(w, path, err, sizeof err), -1);
    if (!strstr(err, needle)) fail_msg("error '%s' lacks '%s'", err, needle);
    gguf_writer_free(w);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
}

static void test_writer_errors(void **state) {
    (void)state;
    char path[256], tmp[280], err[512] = "";
    snprintf(path, sizeof path, "%s/bad.gguf", g_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    struct stat st;
    uint64_t d1[1] = {32}, d33[1] = {33};
    gguf_writer *w;

    w = gguf_writer_new(32);
    gguf_w_u32(w, "k", 1);
    gguf_w_u32(w, "k", 2);
    expect_begin_fails(w, "'k' added twice");

    w = gguf_writer_new(32);
    gguf_w_str(w, "", "x");
    expect_begin_fails(w, "empty");

    w = gguf_writer_new(32);
    gguf_w_tensor(w, "t", QT_F32, 1, d1);
    gguf_w_tensor(w, "t", QT_F32, 1, d1);
    expect_begin_fails(w, "'t' declared twice");

    w = gguf_writer_new(32);
    gguf_w_tensor(w, "t", 2, 1, d1);
    expect_begin_fails(w, "unknown tensor type 2");

    w = gguf_writer_new(32);
    gguf_w_tensor(w, "q", QT_Q8_0, 1, d33);
    expect_begin_fails(w, "not a multiple");

    w = gguf_writer_new(32);
    gguf_w_tensor(w, "z", QT_F32, 9, d1);
    expect_begin_fails(w, "dimensions");

    w = gguf_writer_new(32);
    gguf_w_tensor(w, "0123456789012345678901234567890123456789012345678901234567890123456789", QT_F32, 1, d1);
    expect_begin_fails(w, "longer than 64");

    w = gguf_writer_new(24);
    expect_begin_fails(w, "power of two");

    w = gguf_writer_new(64);
    gguf_w_u32(w, "general.alignment", 32);
    expect_begin_fails(w, "general.alignment is 32");

    w = gguf_writer_new(32);
    gguf_w_u64(w, "general.alignment", 32);
    expect_begin_fails(w, "must be u32");

    w = gguf_writer_new(32);
    uint8_t two = 2;
    gguf_w_scalar(w, "b", GGUF_BOOL, &two);
    expect_begin_fails(w, "0 or 1");

    /* Too many bytes for a tensor: refused, and nothing is left on disk. */
    w = gguf_writer_new(32);
    gguf_w_tensor(w, "a", QT_F32, 1, d1);
    gguf_w_tensor(w, "b", QT_F32, 1, d1);
    uint8_t buf[512] = {0};
    assert_int_equal(gguf_writer_put(w, buf, 4, err, sizeof err), -1); /* before begin */
    assert_int_equal(gguf_writer_begin(w, path, err, sizeof err), 0);
    assert_int_equal(gguf_writer_put(w, buf, 100, err, sizeof err), 0);
    assert_int_equal(gguf_writer_put(w, buf, 29, err, sizeof err), -1); /* 129 > 128: spans into 'b' */
    if (!strstr(err, "tensor 'a'") || !strstr(err, "1 more bytes")) fail_msg("%s", err);
    assert_int_equal(gguf_writer_put(w, buf, 28, err, sizeof err), -1); /* stopped after an error */
    assert_int_equal(gguf_writer_finish(w, err, sizeof err), -1);
    gguf_writer_free(w);
    assert_int_not_equal(stat(tmp, &st), 0);
    assert_int_not_equal(stat(path, &st), 0);

    /* Too few bytes: finish refuses, names the tensor. */
    w = gguf_writer_new(32);
    gguf_w_tensor(w, "a", QT_F32, 1, d1);
    gguf_w_tensor(w, "b", QT_F32, 1, d1);
    assert_int_equal(gguf_writer_begin(w, path, err, sizeof err), 0);
    assert_int_equal(gguf_writer_put(w, buf, 128, err, sizeof err), 0);
    assert_int_equal(gguf_writer_put(w, buf, 100, err, sizeof err), 0);
    assert_int_equal(gguf_writer_finish(w, err, sizeof err), -1);
    if (!strstr(err, "tensor 'b' got 100 of its 128 bytes")) fail_msg("%s", err);
    gguf_writer_free(w);
    assert_int_not_equal(stat(tmp, &st), 0);
    assert_int_not_equal(stat(path, &st), 0);

    /* Bytes after the last tensor. */
    w = gguf_writer_new(32);
    gguf_w_tensor(w, "a", QT_F32, 1, d1);
    assert_int_equal(gguf_writer_begin(w, path, err, sizeof err), 0);
    assert_int_equal(gguf_writer_put(w, buf, 128, err, sizeof err), 0);
    assert_int_equal(gguf_writer_put(w, buf, 1, err, sizeof err), -1);
    if (!strstr(err, "after the last tensor")) fail_msg("%s", err);
    gguf_writer_free(w);

    /* Abandoned writer (no finish): the temp file goes away. */
    w = gguf_writer_new(32);
    gguf_w_tensor(w, "a", QT_F32, 1, d1);
    assert_int_equal(gguf_writer_begin(w, path, err, sizeof err), 0);
    assert_int_equal(stat(tmp, &st), 0);
    gguf_writer_free(w);
    assert_int_not_equal(stat(tmp, &st), 0);

    /* Unwritable destination. */
    w = gguf_writer_new(32);
    assert_int_equal(gguf_writer_begin(w, "/nonexistent-dir/x.gguf", err, sizeof err), -1);
    if (!strstr(err, "cannot create")) fail_msg("%s", err);
    gguf_writer_free(w);

    /* A file with no tensors at all is valid. */
    w = gguf_writer_new(0);
    gguf_w_str(w, "general.name", "empty");
    assert_int_equal(gguf_writer_begin(w, path, err, sizeof err), 0);
    assert_int_equal(gguf_writer_finish(w, err, sizeof err), 0);
    gguf_writer_free(w);
    gguf_file *f = gguf_open(path, err, sizeof err);
    if (!f) fail_msg("%s", err);
    assert_int_equal(f->n_tensors, 0);
    assert_int_equal(f->n_kv, 2);
    assert_int_equal(f->alignment, 32);
    gguf_close(f);
}

/* ---- reader refusals ------------------------------------------------------ */

static void test_open_errors(void **state) {
    (void)state;
    char err[512] = "", path[256];
    assert_null(gguf_open("/nonexistent/x.gguf", err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
    assert_null(gguf_open(g_dir, err, sizeof err));
    assert_non_null(strstr(err, "not a regular file"));
    snprintf(path, sizeof path, "%s/empty.gguf", g_dir);
    FILE *fp = fopen(path, "w");
    fclose(fp);
    assert_null(gguf_open(path, err, sizeof err));
    assert_non_null(strstr(err, "too short"));
    err[0] = 0;
    assert_null(gguf_open_buffer(NULL, 0, err, sizeof err));
    assert_true(err[0] != 0);
}

static void test_reject_header(void **state) {
    (void)state;
    gb b = {0};
    gb_hdr(&b, 0, 0);
    expect_accept(&b, 0, 0);

    gb_hdr(&b, 0, 0);
    b.n = 23;
    expect_reject(&b, "too short", NULL);

    gb_hdr(&b, 0, 0);
    b.p[0] = 'X';
    expect_reject(&b, "bad magic", NULL);

    gb_hdr(&b, 0, 0);
    b.p[4] = 2;
    expect_reject(&b, "version 2", NULL);

    gb_hdr(&b, 0, UINT64_C(1) << 40);
    expect_reject(&b, "metadata key count 1099511627776", NULL);

    gb_hdr(&b, UINT64_MAX, 0);
    expect_reject(&b, "tensor count 18446744073709551615", NULL);

    gb_hdr(&b, 3, 0); /* three tensors cannot fit in 24 + 40 bytes */
    gb_pad_zeros(&b, 1, 40);
    expect_reject(&b, "tensor count 3", NULL);
}

static void test_reject_kv(void **state) {
    (void)state;
    gb b = {0};

    gb_hdr(&b, 0, 1); /* key length past the end */
    gb_u64(&b, 1000);
    gb_put(&b, "abcdef", 6);
    expect_reject(&b, "metadata key #0", "past end of file");

    gb_hdr(&b, 0, 1);
    gb_str(&b, "");
    gb_u32(&b, GGUF_U8);
    gb_u8(&b, 0);
    gb_pad_zeros(&b, 1, 8);
    expect_reject(&b, "empty or contains control bytes", NULL);

    gb_hdr(&b, 0, 1);
    gb_str(&b, "a\nb");
    gb_u32(&b, GGUF_U8);
    gb_u8(&b, 0);
    expect_reject(&b, "a\\x0ab", NULL);

    gb_hdr(&b, 0, 1);
    gb_str(&b, "weird.type");
    gb_u32(&b, 13);
    gb_u32(&b, 0);
    expect_reject(&b, "key 'weird.type'", "value type 13");

    gb_hdr(&b, 0, 2);
    gb_kv_u32(&b, "dup.key", 1);
    gb_kv_u32(&b, "dup.key", 2);
    expect_reject(&b, "key 'dup.key' appears twice", NULL);

    gb_hdr(&b, 0, 1);
    gb_str(&b, "flag");
    gb_u32(&b, GGUF_BOOL);
    gb_u8(&b, 2);
    gb_pad_zeros(&b, 1, 8);
    expect_reject(&b, "key 'flag'", "neither 0 nor 1");

    gb_hdr(&b, 0, 1);
    gb_str(&b, "s");
    gb_u32(&b, GGUF_STR);
    gb_u64(&b, UINT64_MAX);
    expect_reject(&b, "key 's'", "past end of file");

    gb_hdr(&b, 0, 1); /* u32 array longer than the file */
    gb_str(&b, "arr");
    gb_u32(&b, GGUF_ARR);
    gb_u32(&b, GGUF_U32);
    gb_u64(&b, UINT64_C(1) << 62);
    gb_u32(&b, 0);
    expect_reject(&b, "key 'arr'", "array of 4611686018427387904 u32");

    gb_hdr(&b, 0, 1); /* string array whose count cannot fit */
    gb_str(&b, "toks");
    gb_u32(&b, GGUF_ARR);
    gb_u32(&b, GGUF_STR);
    gb_u64(&b, 100);
    gb_str(&b, "a");
    expect_reject(&b, "key 'toks'", "array of 100 string");

    gb_hdr(&b, 0, 1); /* string element length past the end */
    gb_str(&b, "toks");
    gb_u32(&b, GGUF_ARR);
    gb_u32(&b, GGUF_STR);
    gb_u64(&b, 2);
    gb_str(&b, "a");
    gb_u64(&b, 1u << 20);
    gb_pad_zeros(&b, 1, 16);
    expect_reject(&b, "key 'toks'", "string value length 1048576");

    gb_hdr(&b, 0, 1);
    gb_str(&b, "arr");
    gb_u32(&b, GGUF_ARR);
    gb_u32(&b, 77);
    gb_u64(&b, 0);
    expect_reject(&b, "key 'arr'", "array element type 77");

    gb_hdr(&b, 0, 1);
    gb_str(&b, "arr");
    gb_u32(&b, GGUF_ARR);
    gb_u32(&b, GGUF_BOOL);
    gb_u64(&b, 3);
    gb_put(&b, "\x01\x00\x05", 3);
    expect_reject(&b, "key 'arr'", "bool array element 2");

    /* Nesting: 8 levels of arrays are fine, 9 are not. */
    for (int depth = 8; depth <= 9; depth++) {
        gb_hdr(&b, 0, 1);
        gb_str(&b, "deep");
        gb_u32(&b, GGUF_ARR);
        for (int k = 0; k < depth - 1; k++) {
            gb_u32(&b, GGUF_ARR);
            gb_u64(&b, 1);
        }
        gb_u32(&b, GGUF_U8);
        gb_u64(&b, 1);
        gb_u8(&b, 7);
        if (depth == 8)
            expect_accept(&b, 0, 1);
        else
            expect_reject(&b, "key 'deep'", "nested deeper than 8");
    }

    gb_hdr(&b, 0, 1);
    gb_kv_u32(&b, "general.alignment", 48);
    expect_reject(&b, "'general.alignment' is 48", "power of two");

    gb_hdr(&b, 0, 1);
    gb_kv_u32(&b, "general.alignment", 0);
    expect_reject(&b, "'general.alignment' is 0", NULL);

    gb_hdr(&b, 0, 1);
    gb_str(&b, "general.alignment");
    gb_u32(&b, GGUF_U64);
    gb_u64(&b, 32);
    expect_reject(&b, "general.alignment", "must be u32");
}

static void test_reject_tensors(void **state) {
    (void)state;
    gb b = {0};
    uint64_t d32[1] = {32}, d0[2] = {32, 0}, dbig[3] = {UINT64_C(1) << 32, UINT64_C(1) << 32, 2};
    uint64_t d33[1] = {33}, d9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    uint64_t dhuge[2] = {UINT64_C(1) << 62, 16};

    /* A good baseline: two F32 tensors, 128 bytes each. */
    gb_hdr(&b, 2, 0);
    gb_tensor(&b, "a", QT_F32, 1, d32, 0);
    gb_tensor(&b, "b", QT_F32, 1, d32, 128);
    gb_pad_zeros(&b, 32, 256);
    expect_accept(&b, 2, 0);

    gb_hdr(&b, 1, 0);
    gb_tensor(&b, "blk.0.attn_q_a.weight", QT_F32, 1, d32, 0);
    gb_pad_zeros(&b, 32, 100);
    expect_reject(&b, "tensor 'blk.0.attn_q_a.weight': data [offset 0, 128 bytes] extends past end of file", NULL);

    gb_hdr(&b, 1, 0);
    gb_tensor(&b, "far", QT_F32, 1, d32, UINT64_MAX - 31); /* offset + size wraps */
    gb_pad_zeros(&b, 32, 128);
    expect_reject(&b, "tensor 'far'", "past end of file");

    gb_hdr(&b, 1, 0);
    gb_tensor(&b, "mis", QT_F32, 1, d32, 16);
    gb_pad_zeros(&b, 32, 256);
    expect_reject(&b, "tensor 'mis': data offset 16 is not a multiple of the alignment 32", NULL);

    gb_hdr(&b, 1, 1); /* with alignment 16 the same offset is fine */
    gb_kv_u32(&b, "general.alignment", 16);
    gb_tensor(&b, "mis", QT_F32, 1, d32, 16);
    gb_pad_zeros(&b, 16, 256);
    expect_accept(&b, 1, 1);

    gb_hdr(&b, 2, 0);
    gb_tensor(&b, "a", QT_F32, 1, d32, 0);
    gb_tensor(&b, "b", QT_F32, 1, d32, 96);
    gb_pad_zeros(&b, 32, 256);
    expect_reject(&b, "tensor 'a' [offset 0, 128 bytes] overlaps tensor 'b'", NULL);

    gb_hdr(&b, 2, 0);
    gb_tensor(&b, "same", QT_F32, 1, d32, 0);
    gb_tensor(&b, "same", QT_F32, 1, d32, 128);
    gb_pad_zeros(&b, 32, 256);
    expect_reject(&b, "tensor 'same' appears twice", NULL);

    gb_hdr(&b, 1, 0);
    gb_tensor(&b, "", QT_F32, 1, d32, 0);
    gb_pad_zeros(&b, 32, 128);
    expect_reject(&b, "tensor #0", "empty");

    gb_hdr(&b, 1, 0);
    gb_tensor(&b, "a-name-that-is-much-longer-than-the-sixty-four-bytes-gguf-allows-x", QT_F32, 1, d32, 0);
    gb_pad_zeros(&b, 32, 128);
    expect_reject(&b, "tensor #0", "longer than 64");

    gb_hdr(&b, 1, 0);
    gb_tensor(&b, "nd0", QT_F32, 0, d32, 0);
    gb_pad_zeros(&b, 32, 128);
    expect_reject(&b, "tensor 'nd0'", "0 dimensions");

    gb_hdr(&b, 1, 0);
    gb_tensor(&b, "nd9", QT_F32, 9, d9, 0);
    gb_pad_zeros(&b, 32, 128);
    expect_reject(&b, "tensor 'nd9'", "9 dimensions");

    gb_hdr(&b, 1, 0);
    gb_tensor(&b, "zero", QT_F32, 2, d0, 0);
    gb_pad_zeros(&b, 32, 128);
    expect_reject(&b, "tensor 'zero'", "dimension 1 is 0");

    gb_hdr(&b, 1, 0);
    gb_tensor(&b, "big", QT_F32, 3, dbig, 0);
    gb_pad_zeros(&b, 32, 128);
    expect_reject(&b, "tensor 'big'", "element count overflows");

    gb_hdr(&b, 1, 0);
    gb_tensor(&b, "huge", QT_F32, 2, dhuge, 0); /* 2^66 elements... */
    gb_pad_zeros(&b, 32, 128);
    expect_reject(&b, "tensor 'huge'", "overflows");

    gb_hdr(&b, 1, 0);
    uint64_t dq[1] = {UINT64_C(1) << 62}; /* 2^62 F32 = 2^64 bytes */
    gb_tensor(&b, "bytes", QT_F32, 1, dq, 0);
    gb_pad_zeros(&b, 32, 128);
    expect_reject(&b, "tensor 'bytes'", "byte size overflows");

    gb_hdr(&b, 1, 0);
    gb_tensor(&b, "q4_1", 3, 1, d32, 0);
    gb_pad_zeros(&b, 32, 128);
    expect_reject(&b, "tensor 'q4_1'", "tensor type 3");

    gb_hdr(&b, 1, 0);
    gb_tensor(&b, "neg", 0xffffffffu, 1, d32, 0);
    gb_pad_zeros(&b, 32, 128);
    expect_reject(&b, "tensor 'neg'", "tensor type 4294967295");

    gb_hdr(&b, 1, 0);
    gb_tensor(&b, "q8", QT_Q8_0, 1, d33, 0);
    gb_pad_zeros(&b, 32, 128);
    expect_reject(&b, "tensor 'q8'", "dimension 0 (33) is not a multiple of the Q8_0 block size 32");

    /* Directory cut in the middle of the second tensor's dims (the first
     * has a long name so the count bound still passes). */
    gb_hdr(&b, 2, 0);
    gb_tensor(&b, "a-sixty-four-byte-name-a-sixty-four-byte-name-a-sixty-four-byte-", QT_F32, 1, d32, 0);
    gb_tensor(&b, "cut", QT_F32, 2, d0, 0);
    b.n -= 4 + 8 + 4 + 4; /* offset, type, half of dims[1] */
    expect_reject(&b, "tensor 'cut': dimension (8 bytes at offset", "past end of file");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_tiny_s1),
        cmocka_unit_test(test_vector_tiny_cond_s1),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_copy_vector_metadata),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_reject_header),
        cmocka_unit_test(test_reject_kv),
        cmocka_unit_test(test_reject_tensors),
    };
    return cmocka_run_group_tests_name("gguf", tests, setup_dir, teardown_dir);
}
