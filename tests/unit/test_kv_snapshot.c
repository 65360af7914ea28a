/* test_kv_snapshot.c — session snapshots on the tiny model: a FULL snapshot
 * taken after k tokens and restored into a fresh session continues with
 * logits bit-identical (memcmp) to an uninterrupted session, for k on both
 * sides of every compressor boundary (ratio 4 and 128) and of the 128-row
 * window; the snapshot of a restored session equals the original byte for
 * byte; damaged / foreign / oversized snapshots are refused and leave an
 * empty, still usable session; TAIL snapshots rewind in place and fork.
 * Model: $FP_VECTORS/tiny-cond-s1.gguf (default ../shared/vectors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kv_snapshot.h"

#define NTOK 264   /* > 2 ratio-128 windows (the second row is emitted at 255) */

typedef struct fixture {
    fp_engine *e;
    int V;
    int32_t tok[NTOK];
    float *base;   /* [NTOK][V] logits of one uninterrupted session */
} fixture;

static void vec_path(char *buf, size_t n, const char *name) {
    const char *d = getenv("FP_VECTORS");
    snprintf(buf, n, "%s/%s", d && *d ? d : "../shared/vectors", name);
}

/* The vector set's tokens, then a deterministic tail of in-vocab ids. */
static void load_tokens(int32_t *tok, int n, int vocab) {
    char p[512];
    vec_path(p, sizeof p, "tiny-cond-s1.tokens.txt");
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    int i = 0;
    while (i < n && fscanf(f, "%d", &tok[i]) == 1) i++;
    fclose(f);
    uint32_t x = 12345;
    for (; i < n; i++) {
        x = x * 1103515245u + 12345u;
        tok[i] = (int32_t)((x >> 8) % (uint32_t)vocab);
    }
}

static int setup(void **st) {
    fixture *fx = calloc(1, sizeof *fx);
    char p[512], err[512];
    vec_path(p, sizeof p, "tiny-cond-s1.gguf");
    engine_opts o = {.model_path = p, .n_threads = 2};
    fx->e = engine_open(&o, err, sizeof err);
    if (!fx->e) {
        fprintf(stderr, "engine_open: %s\n", err);
        return -1;
    }
    fx->V = engine_model(fx->e)->hp.n_vocab;
    load_tokens(fx->tok, NTOK, fx->V);
    fx->base = malloc((size_t)NTOK * fx->V * sizeof(float));
    fp_session *s = session_open(fx->e, 512, err, sizeof err);
    if (!s || session_eval(s, fx->tok, NTOK, fx->base, NULL, NULL, NULL, err, sizeof err)) return -1;
    session_close(s);
    *st = fx;
    return 0;
}

static int teardown(void **st) {
    fixture *fx = *st;
    engine_close(fx->e);
    free(fx->base);
    free(fx);
    return 0;
}

static const float *base_row(const fixture *fx, int p) { return fx->base + (size_t)p * fx->V; }

/* Continue s from its length k to min(end, NTOK) and compare the logits of
 * every position with the uninterrupted session. */
static void continue_and_compare(fixture *fx, fp_session *s, int end) {
    char err[512];
    const int k = session_n_tokens(s);
    if (end > NTOK) end = NTOK;
    assert_memory_equal(session_logits(s), base_row(fx, k - 1), (size_t)fx->V * sizeof(float));
    if (k >= end) return;
    float *out = malloc((size_t)(end - k) * fx->V * sizeof(float));
    assert_int_equal(session_eval(s, fx->tok + k, end - k, out, NULL, NULL, NULL, err, sizeof err), 0);
    for (int p = k; p < end; p++)
        if (memcmp(out + (size_t)(p - k) * fx->V, base_row(fx, p), (size_t)fx->V * sizeof(float)) != 0)
            fail_msg("k=%d: logits at position %d differ from the uninterrupted session", k, p);
    free(out);
}

static void test_full_roundtrip_bit_identical(void **st) {
    fixture *fx = *st;
    char err[512];
    /* Both sides of the ratio-4 boundary (3,4,5), of the window and the
     * first ratio-128 row (127,128,129), and mid-window (200), continued
     * past the next rows; from 200 past the second ratio-128 row (255),
     * which needs the restored partial frontier of 72 positions. */
    const int ks[] = {1, 3, 4, 5, 127, 128, 129, 200};
    fp_session *a = session_open(fx->e, 300, err, sizeof err);
    fp_session *b = session_open(fx->e, 700, err, sizeof err);   /* other ctx: other capacity */
    assert_non_null(a);
    assert_non_null(b);
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        const int k = ks[i];
        const int m = session_n_tokens(a);
        assert_int_equal(session_eval(a, fx->tok + m, k - m, NULL, NULL, NULL, NULL, err, sizeof err), 0);
        void *buf, *buf2;
        size_t len, len2;
        assert_int_equal(kv_snapshot_save_buf(a, KV_SNAP_FULL, &buf, &len, err, sizeof err), 0);
        assert_int_equal(len, kv_snapshot_size(a, KV_SNAP_FULL));
        assert_int_equal(len, kv_snapshot_bytes(&engine_model(fx->e)->hp, k, KV_SNAP_FULL));
        /* b holds unrelated state first: restore must replace all of it. */
        session_reset(b);
        assert_int_equal(session_eval(b, fx->tok + 7, 5, NULL, NULL, NULL, NULL, err, sizeof err), 0);
        assert_int_equal(kv_snapshot_load_buf(b, buf, len, err, sizeof err), 0);
        assert_int_equal(session_n_tokens(b), k);
        assert_memory_equal(session_tokens(b), fx->tok, (size_t)k * sizeof(int32_t));
        /* Saving the restored session reproduces the snapshot exactly. */
        assert_int_equal(kv_snapshot_save_buf(b, KV_SNAP_FULL, &buf2, &len2, err, sizeof err), 0);
        assert_int_equal(len2, len);
        assert_memory_equal(buf2, buf, len);
        continue_and_compare(fx, b, k == 200 ? NTOK : k + 24);
        free(buf);
        free(buf2);
    }
    session_close(a);
    session_close(b);
}

static void test_file_roundtrip(void **st) {
    fixture *fx = *st;
    char err[512];
    fp_session *a = session_open(fx->e, 300, err, sizeof err);
    fp_session *b = session_open(fx->e, 300, err, sizeof err);
    assert_int_equal(session_eval(a, fx->tok, 21, NULL, NULL, NULL, NULL, err, sizeof err), 0);
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(kv_snapshot_save_file(a, f, err, sizeof err), 0);
    assert_int_equal((size_t)ftell(f), kv_snapshot_size(a, KV_SNAP_FULL));
    rewind(f);
    assert_int_equal(kv_snapshot_load_file(b, f, err, sizeof err), 0);
    fclose(f);
    continue_and_compare(fx, b, 21 + 16);
    session_close(a);
    session_close(b);
}

/* After a refused load the session is empty and works normally. */
static void assert_usable_empty(fixture *fx, fp_session *s) {
    char err[512];
    assert_int_equal(session_n_tokens(s), 0);
    assert_int_equal(session_eval(s, fx->tok, 9, NULL, NULL, NULL, NULL, err, sizeof err), 0);
    assert_memory_equal(session_logits(s), base_row(fx, 8), (size_t)fx->V * sizeof(float));
    session_reset(s);
}

static void test_rejects_bad_snapshots(void **st) {
    fixture *fx = *st;
    char err[512];
    fp_session *a = session_open(fx->e, 300, err, sizeof err);
    fp_session *b = session_open(fx->e, 300, err, sizeof err);
    fp_session *small = session_open(fx->e, 30, err, sizeof err);
    assert_int_equal(session_eval(a, fx->tok, 40, NULL, NULL, NULL, NULL, err, sizeof err), 0);
    void *buf;
    size_t len;
    assert_int_equal(kv_snapshot_save_buf(a, KV_SNAP_FULL, &buf, &len, err, sizeof err), 0);
    uint8_t *bad = malloc(len + 4);

    /* Every truncation point in the headers, then strides through the data. */
    for (size_t cut = 0; cut < len; cut += cut < 400 ? 1 : 997) {
        err[0] = 0;
        assert_int_not_equal(kv_snapshot_load_buf(b, buf, cut, err, sizeof err), 0);
        assert_true(err[0] != 0);
        assert_int_equal(session_n_tokens(b), 0);
    }
    assert_usable_empty(fx, b);

    /* Trailing bytes. */
    memcpy(bad, buf, len);
    memset(bad + len, 0, 4);
    assert_int_not_equal(kv_snapshot_load_buf(b, bad, len + 4, err, sizeof err), 0);
    assert_non_null(strstr(err, "trailing"));
    assert_usable_empty(fx, b);

    struct { size_t off; uint32_t val; const char *why; } cases[] = {
        {0, 0x12345678u, "magic"},
        {4, 2u, "version"},
        {8, 7u, "kind"},
        {12, 4u, "model shape"},           /* n_layer */
        {16, 64u, "model shape"},          /* n_swa */
        {28, 1000u, "model shape"},        /* n_vocab */
        {32, 160u, "record"},              /* token count disagrees with the layer records */
        {40 + 2 * 32 + 8, 3u, "record"},   /* layer 2 n_comp */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(bad, buf, len);
        memcpy(bad + cases[i].off, &cases[i].val, 4);
        assert_int_not_equal(kv_snapshot_load_buf(b, bad, len, err, sizeof err), 0);
        if (!strstr(err, cases[i].why)) fail_msg("case %zu: '%s' does not mention '%s'", i, err, cases[i].why);
        assert_usable_empty(fx, b);
    }

    /* A token id outside the vocabulary (first token, right after the records). */
    memcpy(bad, buf, len);
    const int32_t oob = 999999;
    memcpy(bad + 40 + 5 * 32, &oob, 4);
    assert_int_not_equal(kv_snapshot_load_buf(b, bad, len, err, sizeof err), 0);
    assert_non_null(strstr(err, "vocabulary"));
    assert_usable_empty(fx, b);

    /* More tokens than the target session's context. */
    assert_int_not_equal(kv_snapshot_load_buf(small, buf, len, err, sizeof err), 0);
    assert_non_null(strstr(err, "context"));

    /* A TAIL snapshot is not a full state. */
    void *tail;
    size_t tlen;
    assert_int_equal(kv_snapshot_save_buf(a, KV_SNAP_TAIL, &tail, &tlen, err, sizeof err), 0);
    assert_true(tlen < len);
    assert_int_not_equal(kv_snapshot_load_buf(b, tail, tlen, err, sizeof err), 0);
    assert_non_null(strstr(err, "donor"));
    free(tail);

    free(bad);
    free(buf);
    session_close(a);
    session_close(b);
    session_close(small);
}

static void test_tail_rewind_and_fork(void **st) {
    fixture *fx = *st;
    char err[512];
    fp_session *a = session_open(fx->e, 300, err, sizeof err);
    fp_session *b = session_open(fx->e, 300, err, sizeof err);
    const int p = 130;
    assert_int_equal(session_eval(a, fx->tok, p, NULL, NULL, NULL, NULL, err, sizeof err), 0);
    void *tail;
    size_t tlen;
    assert_int_equal(kv_snapshot_save_buf(a, KV_SNAP_TAIL, &tail, &tlen, err, sizeof err), 0);
    int n = 0, kind = -1;
    assert_int_equal(kv_snapshot_peek(tail, tlen, &n, &kind), 0);
    assert_int_equal(n, p);
    assert_int_equal(kind, KV_SNAP_TAIL);
    /* a moves on by more than the window (every ring slot rewritten) and
     * past the ratio-128 row at 255. */
    assert_int_equal(session_eval(a, fx->tok + p, 130, NULL, NULL, NULL, NULL, err, sizeof err), 0);

    /* Fork into b: a stays intact. */
    assert_int_equal(session_eval(b, fx->tok + 50, 20, NULL, NULL, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(kv_snapshot_restore_tail(b, a, tail, tlen, err, sizeof err), 0);
    assert_int_equal(session_n_tokens(a), p + 130);
    continue_and_compare(fx, b, p + 24);

    /* Rewind a in place: it continues like the uninterrupted session. */
    assert_int_equal(kv_snapshot_restore_tail(a, a, tail, tlen, err, sizeof err), 0);
    assert_int_equal(session_n_tokens(a), p);
    continue_and_compare(fx, a, p + 16);
    int32_t alt[140];
    for (int i = 0; i < 140; i++) alt[i] = (fx->tok[i] + 11) % fx->V;

    /* A donor that diverged before the point is refused, dst untouched.
     * (Only the donor's token history is consulted before anything is
     * modified, so it is set directly instead of evaluated.) */
    assert_int_equal(session_set_history(b, alt, 140, NULL), 0);
    fp_session *c = session_open(fx->e, 300, err, sizeof err);
    assert_int_equal(session_eval(c, fx->tok, 10, NULL, NULL, NULL, NULL, err, sizeof err), 0);
    assert_int_not_equal(kv_snapshot_restore_tail(c, b, tail, tlen, err, sizeof err), 0);
    assert_non_null(strstr(err, "donor"));
    assert_int_equal(session_n_tokens(c), 10);
    assert_memory_equal(session_logits(c), base_row(fx, 9), (size_t)fx->V * sizeof(float));
    /* A shorter donor too. */
    assert_int_equal(session_set_history(b, fx->tok, p - 1, NULL), 0);
    assert_int_not_equal(kv_snapshot_restore_tail(c, b, tail, tlen, err, sizeof err), 0);
    /* A truncated tail buffer. */
    assert_int_not_equal(kv_snapshot_restore_tail(a, a, tail, tlen - 1, err, sizeof err), 0);

    /* TAIL size does not grow with the compressed rows (only the token ids). */
    const model_hparams *hp = &engine_model(fx->e)->hp;
    assert_int_equal(kv_snapshot_bytes(hp, 2000, KV_SNAP_TAIL) - kv_snapshot_bytes(hp, 1000, KV_SNAP_TAIL),
                     1000 * sizeof(int32_t));
    free(tail);
    session_close(a);
    session_close(b);
    session_close(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_roundtrip_bit_identical),
        cmocka_unit_test(test_file_roundtrip),
        cmocka_unit_test(test_rejects_bad_snapshots),
        cmocka_unit_test(test_tail_rewind_and_fork),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
