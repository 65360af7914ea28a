/* test_mkmodel.c — flashpool-mkmodel: the tiny preset against the reference
 * model tiny-s1.gguf (same tensor directory, same metadata bytes, same
 * vocabulary and special-token ids as its manifest), determinism (same seed
 * -> same bytes at any thread count; other seed -> other weights; a tensor's
 * bytes independent of the rest of the file), the init statistics of every
 * rule including --cond and --expert-type q4, the sampler, and the CLI
 * precedence rules.
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
#include <math.h>

#include "gguf.h"
/* tools/ is not on the compiler include path */
#include "../../tools/mkmodel_gen.h"
#include "../../tools/mkmodel_kquant.h"
#include "../../tools/mkmodel_opts.h"
#include "../../tools/mkmodel_plan.h"
#include "../../tools/mkmodel_vocab.h"
#include "../../tools/mkmodel_write.h"
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

/* Scratch directory: tmpfs when there is one (the writer fsyncs). */
static char g_dir[64];
static char g_tiny[128]; /* tiny preset, seed 1, 2 threads: shared by several tests */

static void tiny_config(mkmodel_config *c, uint64_t seed) {
    memset(c, 0, sizeof *c);
    snprintf(c->preset, sizeof c->preset, "tiny");
    assert_int_equal(mkmodel_preset("tiny", &c->shape), 0);
    mkmodel_scales_default(&c->scales);
    c->seed = seed;
    c->expert_type = MKMODEL_EXPERTS_IQ2;
}

static void write_model(const mkmodel_config *c, const char *name, int threads, char *path, size_t n) {
    char err[512] = "";
    mkmodel_result res;
    snprintf(path, n, "%s/%s", g_dir, name);
    int rc = mkmodel_write(c, path, threads, NULL, NULL, &res, err, sizeof err);
    if (rc) fprintf(stderr, "mkmodel_write: %s\n", err);
    assert_int_equal(rc, 0);
    assert_true(res.file_bytes > 0);
}

static int setup_group(void **state) {
    (void)state;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/fp_test_mkmodel_XXXXXX", base);
    if (!mkdtemp(g_dir)) return -1;
    mkmodel_config c;
    tiny_config(&c, 1);
    char err[512] = "";
    snprintf(g_tiny, sizeof g_tiny, "%s/tiny-s1.gguf", g_dir);
    return mkmodel_write(&c, g_tiny, 2, NULL, NULL, NULL, err, sizeof err);
}

static int teardown_group(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static gguf_file *open_ok(const char *path) {
    char err[512] = "";
    gguf_file *f = gguf_open(path, err, sizeof err);
    if (!f) fprintf(stderr, "gguf_open %s: %s\n", path, err);
    assert_non_null(f);
    return f;
}

/* Dequantised values of tensor name (caller frees). */
static float *tensor_f32(const gguf_file *f, const char *name, uint64_t *n) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    assert_non_null(t);
    float *x = malloc(t->nelem * sizeof *x);
    assert_non_null(x);
    assert_int_equal(dequantize_row((int)t->type, t->data, x, (int64_t)t->nelem), 0);
    *n = t->nelem;
    return x;
}

static void moments(const float *x, uint64_t n, double *mean, double *std) {
    double s = 0, s2 = 0;
    for (uint64_t i = 0; i < n; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
    }
    *mean = s / (double)n;
    *std = sqrt(s2 / (double)n - *mean * *mean);
}

/* Mean and std over blk.L.<suffix> of every layer. */
static void layer_moments(const gguf_file *f, const char *suffix, uint32_t layers, double *mean, double *std) {
    double s = 0, s2 = 0, cnt = 0;
    for (uint32_t il = 0; il < layers; il++) {
        char name[96];
        snprintf(name, sizeof name, "blk.%u.%s", il, suffix);
        uint64_t n;
        float *x = tensor_f32(f, name, &n);
        for (uint64_t i = 0; i < n; i++) {
            s += x[i];
            s2 += (double)x[i] * x[i];
        }
        cnt += (double)n;
        free(x);
    }
    *mean = s / cnt;
    *std = sqrt(s2 / cnt - *mean * *mean);
}

static void assert_near_rel(double got, double want, double rel, const char *what) {
    if (fabs(got - want) > rel * fabs(want)) {
        fprintf(stderr, "%s: got %g, want %g (+-%g%%)\n", what, got, want, rel * 100);
        fail();
    }
}

/* ---- the reference model's layout ---------------------------------------- */

static void test_layout_matches_reference(void **state) {
    (void)state;
    char ref_path[256];
    vec_path(ref_path, sizeof ref_path, "tiny-s1.gguf");
    gguf_file *ref = open_ok(ref_path);
    gguf_file *f = open_ok(g_tiny);
    /* The tensor directory: names in order, dims, types, and therefore offsets. */
    assert_int_equal(f->n_tensors, ref->n_tensors);
    assert_int_equal(f->n_tensors, 150);
    for (uint64_t i = 0; i < ref->n_tensors; i++) {
        const gguf_tensor *a = &f->tensors[i], *b = &ref->tensors[i];
        if (a->name.len != b->name.len || memcmp(a->name.s, b->name.s, a->name.len) != 0) {
            fprintf(stderr, "tensor %llu: %.*s, reference %.*s\n", (unsigned long long)i, (int)a->name.len,
                    a->name.s, (int)b->name.len, b->name.s);
            fail();
        }
        assert_int_equal(a->ndim, b->ndim);
        for (uint32_t d = 0; d < a->ndim; d++) assert_int_equal(a->dims[d], b->dims[d]);
        assert_int_equal(a->type, b->type);
        assert_int_equal(a->offset, b->offset);
    }
    /* Metadata: the same keys in the same order with the same types — and,
     * since the vocabulary and every value is the same, the same bytes. */
    assert_int_equal(f->n_kv, ref->n_kv);
    for (uint64_t i = 0; i < ref->n_kv; i++) {
        const gguf_kv *a = &f->kv[i], *b = &ref->kv[i];
        if (a->key.len != b->key.len || memcmp(a->key.s, b->key.s, a->key.len) != 0) {
            fprintf(stderr, "kv %llu: %.*s, reference %.*s\n", (unsigned long long)i, (int)a->key.len, a->key.s,
                    (int)b->key.len, b->key.s);
            fail();
        }
        assert_int_equal(a->type, b->type);
        assert_int_equal(a->arr_type, b->arr_type);
        assert_int_equal(a->arr_len, b->arr_len);
        const uint8_t *ra, *rb;
        size_t na = gguf_kv_raw(f, a, &ra), nb = gguf_kv_raw(ref, b, &rb);
        assert_int_equal(na, nb);
        if (memcmp(ra, rb, na) != 0) {
            fprintf(stderr, "kv %.*s: value differs from the reference\n", (int)a->key.len, a->key.s);
            fail();
        }
    }
    /* Integer hyperparameters are UINT32 (model-spec 2.2). */
    uint32_t v;
    assert_int_equal(gguf_get_u32(f, "deepseek4.expert_count", &v), 0);
    assert_int_equal(v, 16);
    assert_int_equal(gguf_get_u32(f, "deepseek4.vocab_size", &v), 0);
    assert_int_equal(v, 512);
    assert_int_equal(f->data_offset, ref->data_offset);
    assert_int_equal(f->size, ref->size);
    gguf_close(f);
    gguf_close(ref);
}

/* The vocabulary token for token, and the manifest's special-token ids. */
static void test_vocab_matches_manifest(void **state) {
    (void)state;
    char mpath[256];
    vec_path(mpath, sizeof mpath, "tiny-s1.gguf.json");
    size_t len;
    char *js = slurp(mpath, &len);
    assert_non_null(js);
    cJSON *m = cJSON_Parse(js);
    assert_non_null(m);
    cJSON *ids = cJSON_GetObjectItemCaseSensitive(m, "special_token_ids");
    assert_true(cJSON_IsObject(ids));

    mkmodel_vocab v;
    char err[256];
    assert_int_equal(mkmodel_vocab_build(512, &v, err, sizeof err), 0);
    assert_int_equal(v.n_tokens, 512);
    int n_ids = 0;
    for (int s = 0; s < MKMODEL_SP_COUNT; s++) {
        cJSON *id = cJSON_GetObjectItemCaseSensitive(ids, mkmodel_special_names[s]);
        assert_true(cJSON_IsNumber(id));
        assert_int_equal(v.special[s], (uint32_t)id->valueint);
        assert_string_equal(v.tokens[v.special[s]], mkmodel_special_names[s]);
        assert_int_equal(v.types[v.special[s]], MKMODEL_TOK_CONTROL);
        n_ids++;
    }
    assert_int_equal(n_ids, cJSON_GetArraySize(ids));
    cJSON *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    assert_true(cJSON_IsNumber(merges));
    assert_int_equal(v.n_merges, (size_t)merges->valueint);

    /* Every token string, type and merge of the written file is the one
     * from the reference file. */
    char ref_path[256];
    vec_path(ref_path, sizeof ref_path, "tiny-s1.gguf");
    gguf_file *ref = open_ok(ref_path);
    const gguf_kv *tok = gguf_find_kv(ref, "tokenizer.ggml.tokens");
    const gguf_kv *typ = gguf_find_kv(ref, "tokenizer.ggml.token_type");
    const gguf_kv *mer = gguf_find_kv(ref, "tokenizer.ggml.merges");
    assert_non_null(tok);
    assert_non_null(typ);
    assert_non_null(mer);
    assert_int_equal(tok->arr_len, v.n_tokens);
    assert_int_equal(mer->arr_len, v.n_merges);
    for (size_t i = 0; i < v.n_tokens; i++) {
        gguf_str s;
        int64_t t;
        assert_int_equal(gguf_arr_get_str(ref, tok, i, &s), 0);
        assert_true(gstr_eq(s, v.tokens[i]));
        assert_int_equal(gguf_arr_get_i64(typ, i, &t), 0);
        assert_int_equal(t, v.types[i]);
    }
    for (size_t i = 0; i < v.n_merges; i++) {
        gguf_str s;
        assert_int_equal(gguf_arr_get_str(ref, mer, i, &s), 0);
        assert_true(gstr_eq(s, v.merges[i]));
    }
    /* structure: BOS, EOS, the 256 byte symbols (space is U+0120), unused padding */
    assert_int_equal(v.special[MKMODEL_SP_BOS], 0);
    assert_int_equal(v.special[MKMODEL_SP_EOS], 1);
    assert_string_equal(v.tokens[2 + 'A'], "A");
    assert_string_equal(v.tokens[2 + ' '], "\xc4\xa0");
    assert_int_equal(v.types[511], MKMODEL_TOK_UNUSED);
    gguf_close(ref);
    mkmodel_vocab_free(&v);

    /* A vocabulary too small for the fixed tokens is refused; a large one
     * keeps the same ids and pads. */
    assert_int_equal(mkmodel_vocab_build(262, &v, err, sizeof err), -1);
    assert_non_null(strstr(err, "263"));
    assert_int_equal(mkmodel_vocab_build(129280, &v, err, sizeof err), 0);
    assert_int_equal(v.n_tokens, 129280);
    assert_int_equal(v.special[MKMODEL_SP_USER], 361);
    assert_int_equal(v.types[129279], MKMODEL_TOK_UNUSED);
    mkmodel_vocab_free(&v);
    cJSON_Delete(m);
    free(js);
}

/* ---- determinism ------------------------------------------------------------ */

static int files_equal(const char *a, const char *b) {
    size_t na, nb;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    assert_non_null(x);
    assert_non_null(y);
    int eq = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return eq;
}

static int tensor_bytes_equal(const gguf_file *a, const gguf_file *b, const char *name) {
    const gguf_tensor *x = gguf_find_tensor(a, name), *y = gguf_find_tensor(b, name);
    assert_non_null(x);
    assert_non_null(y);
    return x->nbytes == y->nbytes && memcmp(x->data, y->data, x->nbytes) == 0;
}

static void test_deterministic(void **state) {
    (void)state;
    mkmodel_config c;
    char p1[128], p2[128], p3[128];
    tiny_config(&c, 1);
    write_model(&c, "again-1thread.gguf", 1, p1, sizeof p1);
    assert_true(files_equal(g_tiny, p1)); /* same seed, other thread count: same bytes */

    tiny_config(&c, 2);
    write_model(&c, "seed2.gguf", 3, p2, sizeof p2);
    assert_false(files_equal(g_tiny, p2));
    gguf_file *a = open_ok(g_tiny), *b = open_ok(p2);
    /* every tensor's weights change with the seed */
    for (uint64_t i = 0; i < a->n_tensors; i++) {
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)a->tensors[i].name.len, a->tensors[i].name.s);
        if (tensor_bytes_equal(a, b, name)) {
            fprintf(stderr, "%s is the same for seeds 1 and 2\n", name);
            fail();
        }
    }
    gguf_close(b);

    /* A tensor's bytes depend on seed + name + shape only: dropping the last
     * layer leaves every other tensor as it was. */
    tiny_config(&c, 1);
    c.shape.layers = 4;
    write_model(&c, "layers4.gguf", 2, p3, sizeof p3);
    b = open_ok(p3);
    assert_int_equal(b->n_tensors, a->n_tensors - 34); /* layer 4: ratio 4 with indexer */
    for (uint64_t i = 0; i < b->n_tensors; i++) {
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)b->tensors[i].name.len, b->tensors[i].name.s);
        assert_true(tensor_bytes_equal(a, b, name));
    }
    gguf_close(b);
    gguf_close(a);
    unlink(p1);
    unlink(p2);
    unlink(p3);
}

/* ---- init statistics -------------------------------------------------------- */

static void test_init_rules(void **state) {
    (void)state;
    gguf_file *f = open_ok(g_tiny);
    uint64_t n;
    double mean, std;

    /* embeddings N(0, 1) in F16 */
    float *x = tensor_f32(f, "token_embd.weight", &n);
    moments(x, n, &mean, &std);
    assert_true(fabs(mean) < 0.01);
    assert_near_rel(std, 1.0, 0.02, "token_embd std");
    free(x);

    /* fan-in: N(0, 1/sqrt(dims[0])) */
    layer_moments(f, "attn_q_b.weight", 5, &mean, &std);
    assert_near_rel(std, 1.0 / sqrt(256.0), 0.03, "attn_q_b std");
    layer_moments(f, "attn_output_b.weight", 5, &mean, &std);
    assert_near_rel(std, 1.0 / sqrt(512.0), 0.03, "attn_output_b std");
    layer_moments(f, "hc_attn_fn.weight", 5, &mean, &std);
    assert_near_rel(std, 1.0 / sqrt(1024.0), 0.03, "hc_attn_fn std");
    layer_moments(f, "ffn_gate_shexp.weight", 5, &mean, &std); /* expert_gain 4 */
    assert_near_rel(std, 4.0 / sqrt(256.0), 0.03, "ffn_gate_shexp std");
    x = tensor_f32(f, "output.weight", &n);
    moments(x, n, &mean, &std);
    assert_near_rel(std, 1.0 / sqrt(256.0), 0.03, "output std");
    free(x);

    /* routed experts: Q2_K down (coarse: 2-bit codes), IQ2_XXS random codes
     * of roughly the target spread */
    layer_moments(f, "ffn_down_exps.weight", 5, &mean, &std);
    assert_near_rel(std, 1.0 / sqrt(256.0), 0.12, "ffn_down_exps std");
    layer_moments(f, "ffn_gate_exps.weight", 5, &mean, &std);
    assert_near_rel(std, 4.0 / sqrt(256.0), 0.3, "ffn_gate_exps std");
    assert_true(fabs(mean) < 0.01 * std + 1e-3);

    /* uniform norms in [0.8, 1.2], spanning the range */
    x = tensor_f32(f, "blk.3.attn_norm.weight", &n);
    float lo = 9, hi = -9;
    for (uint64_t i = 0; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    assert_true(lo >= 0.8f && lo < 0.82f);
    assert_true(hi < 1.2f && hi > 1.18f);
    free(x);
    x = tensor_f32(f, "blk.0.hc_ffn_scale.weight", &n);
    assert_int_equal(n, 3);
    for (uint64_t i = 0; i < n; i++) assert_true(x[i] >= 0.5f && x[i] < 1.5f);
    free(x);

    /* hash routing table: rows of 6 distinct experts < 16, every expert used */
    const gguf_tensor *t = gguf_find_tensor(f, "blk.2.ffn_gate_tid2eid.weight");
    assert_non_null(t);
    assert_int_equal(t->type, QT_I32);
    assert_int_equal(t->dims[0], 6);
    assert_int_equal(t->dims[1], 512);
    const int32_t *ids = (const int32_t *)t->data;
    int used[16] = {0};
    for (int row = 0; row < 512; row++)
        for (int k = 0; k < 6; k++) {
            int32_t e = ids[row * 6 + k];
            assert_true(e >= 0 && e < 16);
            used[e]++;
            for (int j = 0; j < k; j++) assert_int_not_equal(ids[row * 6 + j], e);
        }
    for (int e = 0; e < 16; e++) assert_true(used[e] > 512 * 6 / 16 / 2);
    assert_null(gguf_find_tensor(f, "blk.2.exp_probs_b.bias"));
    assert_non_null(gguf_find_tensor(f, "blk.3.exp_probs_b.bias"));
    assert_null(gguf_find_tensor(f, "blk.3.ffn_gate_tid2eid.weight"));

    /* sinks N(0, 1) by default */
    layer_moments(f, "attn_sinks.weight", 5, &mean, &std);
    assert_true(fabs(mean) < 0.6);
    gguf_close(f);
}

/* --cond: gain 0.03 on attn_output_b, 0.001 on routed/shared down, sinks mean 2. */
static void test_cond_scales(void **state) {
    (void)state;
    mkmodel_config c;
    char p[128];
    tiny_config(&c, 1);
    mkmodel_scales_apply_cond(&c.scales);
    write_model(&c, "cond.gguf", 2, p, sizeof p);
    gguf_file *f = open_ok(p);
    double mean, std;
    layer_moments(f, "attn_output_b.weight", 5, &mean, &std);
    assert_near_rel(std, 0.03 / sqrt(512.0), 0.03, "cond attn_output_b std");
    layer_moments(f, "ffn_down_shexp.weight", 5, &mean, &std);
    assert_near_rel(std, 0.001 / sqrt(256.0), 0.03, "cond ffn_down_shexp std");
    layer_moments(f, "ffn_down_exps.weight", 5, &mean, &std);
    assert_near_rel(std, 0.001 / sqrt(256.0), 0.12, "cond ffn_down_exps std");
    layer_moments(f, "attn_sinks.weight", 5, &mean, &std);
    assert_true(fabs(mean - 2.0) < 0.6);
    /* untouched: attention input projections */
    layer_moments(f, "attn_q_b.weight", 5, &mean, &std);
    assert_near_rel(std, 1.0 / sqrt(256.0), 0.03, "cond attn_q_b std");
    gguf_close(f);
    unlink(p);
}

/* --expert-type q4: Q4_K gate/up/down, same dims, finer weights. */
static void test_q4_experts(void **state) {
    (void)state;
    mkmodel_config c;
    char p[128];
    tiny_config(&c, 1);
    c.expert_type = MKMODEL_EXPERTS_Q4;
    write_model(&c, "q4.gguf", 2, p, sizeof p);
    gguf_file *f = open_ok(p), *ref = open_ok(g_tiny);
    static const char *const names[] = {"ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight"};
    for (int i = 0; i < 3; i++) {
        char name[96];
        snprintf(name, sizeof name, "blk.4.%s", names[i]);
        const gguf_tensor *t = gguf_find_tensor(f, name), *r = gguf_find_tensor(ref, name);
        assert_non_null(t);
        assert_int_equal(t->type, QT_Q4_K);
        assert_int_equal(t->ndim, 3);
        for (int d = 0; d < 3; d++) assert_int_equal(t->dims[d], r->dims[d]);
    }
    double mean, std;
    layer_moments(f, "ffn_gate_exps.weight", 5, &mean, &std);
    assert_near_rel(std, 4.0 / sqrt(256.0), 0.03, "q4 ffn_gate_exps std");
    layer_moments(f, "ffn_down_exps.weight", 5, &mean, &std);
    assert_near_rel(std, 1.0 / sqrt(256.0), 0.03, "q4 ffn_down_exps std");
    gguf_close(ref);
    gguf_close(f);
    unlink(p);
}

/* ---- sampler ------------------------------------------------------------------ */

static void test_normal_sampler(void **state) {
    (void)state;
    const size_t n = 1u << 20;
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    mkmodel_rng r;
    mkmodel_rng_seed(&r, 42);
    mkmodel_fill_normal(&r, x, n, 3.0f, 2.0f);
    double mean, std, over2 = 0, over3 = 0;
    moments(x, n, &mean, &std);
    for (size_t i = 0; i < n; i++) {
        double z = fabs((x[i] - 3.0) / 2.0);
        over2 += z > 2;
        over3 += z > 3;
    }
    assert_true(fabs(mean - 3.0) < 0.01);
    assert_near_rel(std, 2.0, 0.005, "sampler std");
    assert_near_rel(over2 / (double)n, 0.0455, 0.05, "P(|z|>2)"); /* Gaussian tails, not uniform sums */
    assert_near_rel(over3 / (double)n, 0.0027, 0.2, "P(|z|>3)");
    mkmodel_fill_uniform(&r, x, n, -1.0f, 3.0f);
    moments(x, n, &mean, &std);
    assert_true(fabs(mean - 1.0) < 0.01);
    assert_near_rel(std, 4.0 / sqrt(12.0), 0.01, "uniform std");
    /* streams differ by key, repeat for the same key */
    mkmodel_rng a, b;
    mkmodel_rng_seed(&a, 7);
    mkmodel_rng_seed(&b, 7);
    assert_true(mkmodel_rng_next(&a) == mkmodel_rng_next(&b));
    mkmodel_rng_seed(&b, 8);
    assert_true(mkmodel_rng_next(&a) != mkmodel_rng_next(&b));
    assert_true(mkmodel_tensor_key(1, "output.weight") != mkmodel_tensor_key(2, "output.weight"));
    assert_true(mkmodel_tensor_key(1, "output.weight") != mkmodel_tensor_key(1, "output_norm.weight"));
    free(x);
}

/* ---- one-pass K-quant encoders ---------------------------------------------- */

static double rms_err(const float *a, const float *b, size_t n) {
    double e = 0;
    for (size_t i = 0; i < n; i++) e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(e / (double)n);
}

/* Read back through quant.h's dequantiser (the engine's view of the layout),
 * the fast encoders are close to quant.h's searched fit — and exact where
 * the grid allows it. */
static void test_kquant_encoders(void **state) {
    (void)state;
    const size_t n = 64 * QK_K;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    block_q2_K *q2 = malloc(n / QK_K * sizeof *q2);
    block_q4_K *q4 = malloc(n / QK_K * sizeof *q4);
    assert_true(x && y && q2 && q4);
    mkmodel_rng r;
    mkmodel_rng_seed(&r, 5);
    mkmodel_fill_normal(&r, x, n, 0.0f, 1.0f);
    for (size_t i = 0; i < QK_K; i++) x[i] *= 1e-3f; /* a block of a different scale */

    mkmodel_encode_q2_K(x, q2, (int64_t)n);
    assert_int_equal(dequantize_row(QT_Q2_K, q2, y, (int64_t)n), 0);
    double fast2 = rms_err(x, y, n);
    quantize_row_q2_K(x, q2, (int64_t)n);
    assert_int_equal(dequantize_row(QT_Q2_K, q2, y, (int64_t)n), 0);
    double ref2 = rms_err(x, y, n);

    mkmodel_encode_q4_K(x, q4, (int64_t)n);
    assert_int_equal(dequantize_row(QT_Q4_K, q4, y, (int64_t)n), 0);
    double fast4 = rms_err(x, y, n);
    quantize_row_q4_K(x, q4, (int64_t)n);
    assert_int_equal(dequantize_row(QT_Q4_K, q4, y, (int64_t)n), 0);
    double ref4 = rms_err(x, y, n);
    fprintf(stderr, "rms error (unit normal): Q2_K fast %.4f searched %.4f, Q4_K fast %.4f searched %.4f\n", fast2,
            ref2, fast4, ref4);
    assert_true(fast2 < 0.6 && fast2 < 1.5 * ref2);
    assert_true(fast4 < 0.12 && fast4 < 1.5 * ref4);

    /* values on the grid come back exactly: q*step - offset with every code
     * used in every sub-block, where step/smax and offset/smax are f16-exact */
    for (size_t i = 0; i < QK_K; i++) x[i] = (float)(i % 4) * (15.0f / 64) - 15.0f / 32;
    mkmodel_encode_q2_K(x, q2, QK_K);
    assert_int_equal(dequantize_row(QT_Q2_K, q2, y, QK_K), 0);
    for (size_t i = 0; i < QK_K; i++) assert_true(y[i] == x[i]);
    for (size_t i = 0; i < QK_K; i++) x[i] = (float)(i % 16) * (63.0f / 1024) - 63.0f / 64;
    mkmodel_encode_q4_K(x, q4, QK_K);
    assert_int_equal(dequantize_row(QT_Q4_K, q4, y, QK_K), 0);
    for (size_t i = 0; i < QK_K; i++) assert_true(y[i] == x[i]);
    free(x);
    free(y);
    free(q2);
    free(q4);
}

/* ---- plan and options ------------------------------------------------------------ */

static void test_real_plan(void **state) {
    (void)state;
    mkmodel_config c;
    tiny_config(&c, 1);
    assert_int_equal(mkmodel_preset("real", &c.shape), 0);
    mkmodel_plan p;
    char err[512];
    assert_int_equal(mkmodel_plan_build(&c, &p, err, sizeof err), 0);
    /* model-spec 2.3/2.4 sizes of the real widths */
    const mkmodel_tensor *gate = NULL, *down = NULL, *qb = NULL, *oa = NULL, *tid = NULL;
    for (size_t i = 0; i < p.n; i++) {
        if (!strcmp(p.t[i].name, "blk.3.ffn_gate_exps.weight")) gate = &p.t[i];
        if (!strcmp(p.t[i].name, "blk.3.ffn_down_exps.weight")) down = &p.t[i];
        if (!strcmp(p.t[i].name, "blk.0.attn_q_b.weight")) qb = &p.t[i];
        if (!strcmp(p.t[i].name, "blk.2.attn_output_a.weight")) oa = &p.t[i];
        if (!strcmp(p.t[i].name, "blk.1.ffn_gate_tid2eid.weight")) tid = &p.t[i];
    }
    assert_non_null(gate);
    assert_non_null(down);
    assert_non_null(qb);
    assert_non_null(oa);
    assert_non_null(tid);
    assert_int_equal(gate->nbytes / 16, 2162688);
    assert_int_equal(down->nbytes / 16, 2752512);
    assert_int_equal(qb->dims[0], 1024);
    assert_int_equal(qb->dims[1], 32768);
    assert_int_equal(oa->dims[0], 4096);
    assert_int_equal(oa->dims[1], 8192);
    assert_int_equal(tid->dims[0], 6);
    assert_int_equal(tid->dims[1], 129280);
    mkmodel_plan_free(&p);

    /* shape rules */
    tiny_config(&c, 1);
    c.shape.embd = 300;
    assert_int_equal(mkmodel_plan_build(&c, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "embd"));
    tiny_config(&c, 1);
    c.shape.experts_used = 17;
    c.shape.hc = 3;
    assert_int_equal(mkmodel_check_shape(&c.shape, err, sizeof err), -1);
    assert_non_null(strstr(err, "experts_used"));
    assert_non_null(strstr(err, "hc must be 4"));
    tiny_config(&c, 1);
    c.shape.heads = 0;
    assert_int_equal(mkmodel_check_shape(&c.shape, err, sizeof err), -1);
    assert_non_null(strstr(err, "heads"));
}

static int parse(mkmodel_opts *o, char *err, size_t n, ...) {
    char *argv[32] = {"flashpool-mkmodel"};
    int argc = 1;
    va_list ap;
    va_start(ap, n);
    for (char *a; argc < 31 && (a = va_arg(ap, char *)) != NULL;) argv[argc++] = a;
    va_end(ap);
    return mkmodel_opts_parse(argc, argv, o, err, n);
}

static void test_options(void **state) {
    (void)state;
    mkmodel_opts o;
    char err[512];
    /* explicit options beat --cond, whatever the order; the preset comes first */
    assert_int_equal(parse(&o, err, sizeof err, "--gain", "0.5", "--cond", "--layers", "2", "--preset", "real",
                           "--out", "x.gguf", "--ffn-gain", "0.002", "--seed", "9", NULL),
                     0);
    assert_string_equal(o.cfg.preset, "real");
    assert_int_equal(o.cfg.shape.embd, 4096);
    assert_int_equal(o.cfg.shape.layers, 2);
    assert_int_equal(o.cfg.shape.hash_layers, 2); /* followed --layers */
    assert_true(o.hash_clamped);
    assert_true(o.cfg.scales.gain == 0.5f);
    assert_true(o.cfg.scales.ffn_gain == 0.002f);
    assert_true(o.cfg.scales.sink_mean == 2.0f);
    assert_int_equal(o.cfg.seed, 9);
    assert_string_equal(o.out, "x.gguf");
    assert_int_equal(o.threads, 2);
    assert_int_equal(o.cfg.expert_type, MKMODEL_EXPERTS_IQ2);

    assert_int_equal(parse(&o, err, sizeof err, "--out", "y", "--expert-type", "q4", "--ff-exp", "512",
                           "--threads", "1", NULL),
                     0);
    assert_string_equal(o.cfg.preset, "tiny");
    assert_int_equal(o.cfg.expert_type, MKMODEL_EXPERTS_Q4);
    assert_int_equal(o.cfg.shape.ff_exp, 512);
    assert_int_equal(o.threads, 1);
    assert_true(o.cfg.scales.gain == 1.0f && o.cfg.scales.ffn_gain < 0 && o.cfg.scales.sink_mean == 0.0f);

    assert_int_equal(parse(&o, err, sizeof err, "--help", NULL), 0);
    assert_true(o.help);

    /* refusals name the problem */
    assert_int_equal(parse(&o, err, sizeof err, "--preset", "tiny", NULL), -1);
    assert_non_null(strstr(err, "--out"));
    assert_int_equal(parse(&o, err, sizeof err, "--out", "x", "--bogus", "1", NULL), -1);
    assert_non_null(strstr(err, "--bogus"));
    assert_int_equal(parse(&o, err, sizeof err, "--out", "x", "--preset", "huge", NULL), -1);
    assert_non_null(strstr(err, "huge"));
    assert_int_equal(parse(&o, err, sizeof err, "--out", "x", "--layers", "two", NULL), -1);
    assert_non_null(strstr(err, "--layers"));
    assert_int_equal(parse(&o, err, sizeof err, "--out", "x", "--experts", NULL), -1);
    assert_non_null(strstr(err, "needs a value"));
    assert_int_equal(parse(&o, err, sizeof err, "--out", "x", "--gain", "-1", NULL), -1);
    assert_int_equal(parse(&o, err, sizeof err, "--out", "x", "--expert-type", "q8", NULL), -1);
    /* an explicit hash-layers count is kept, and then it must fit */
    assert_int_equal(parse(&o, err, sizeof err, "--out", "x", "--layers", "2", "--hash-layers", "3", NULL), -1);
    assert_non_null(strstr(err, "hash_layers"));
    assert_int_equal(parse(&o, err, sizeof err, "--out", "x", "--experts", "300", NULL), -1);
    assert_non_null(strstr(err, "256"));
}

/* A failed write leaves neither the file nor its .tmp behind. */
static void test_write_errors(void **state) {
    (void)state;
    mkmodel_config c;
    tiny_config(&c, 1);
    char err[512] = "", path[160];
    snprintf(path, sizeof path, "%s/no-such-dir/x.gguf", g_dir);
    assert_int_equal(mkmodel_write(&c, path, 2, NULL, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "no-such-dir"));
    c.shape.ff_exp = 100;
    snprintf(path, sizeof path, "%s/bad.gguf", g_dir);
    assert_int_equal(mkmodel_write(&c, path, 2, NULL, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "ff_exp"));
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_matches_reference),
        cmocka_unit_test(test_vocab_matches_manifest),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_init_rules),
        cmocka_unit_test(test_cond_scales),
        cmocka_unit_test(test_q4_experts),
        cmocka_unit_test(test_normal_sampler),
        cmocka_unit_test(test_kquant_encoders),
        cmocka_unit_test(test_real_plan),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_write_errors),
    };
    return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
