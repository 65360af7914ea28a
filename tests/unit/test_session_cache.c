/* test_session_cache.c — live sessions on the tiny model: two alternating
 * conversations both stay cached (each second turn evaluates only its new
 * suffix); a diverging or repeated request rewinds (in place when no slot is
 * free) or forks (when one is) from a rewind point; LRU eviction to disk and
 * a later disk hit; cold / continued / evict / shutdown saves at the lengths
 * the policy says; busy and bad-use errors. Every reused state is checked
 * against a fresh session fed the same tokens (logits memcmp). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <dirent.h>
#include <unistd.h>

#include "kv_snapshot.h"
#include "kv_cli.h"
#include "session_cache.h"

#define CTX 400

#define NREF 2

typedef struct fixture {
    fp_engine *e;
    int V;
    fp_session *ref[NREF];   /* plain sessions for reference logits */
    int ref_next;
} fixture;

static void vec_path(char *buf, size_t n, const char *name) {
    const char *d = getenv("FP_VECTORS");
    snprintf(buf, n, "%s/%s", d && *d ? d : "../shared/vectors", name);
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
    for (int i = 0; i < NREF; i++)
        if (!(fx->ref[i] = session_open(fx->e, CTX, err, sizeof err))) return -1;
    *st = fx;
    return 0;
}

static int teardown(void **st) {
    fixture *fx = *st;
    for (int i = 0; i < NREF; i++) session_close(fx->ref[i]);
    engine_close(fx->e);
    free(fx);
    return 0;
}

/* Deterministic "conversation" tokens: seed picks the stream. */
static void gen(int32_t *t, int n, uint32_t seed, int vocab) {
    uint32_t x = seed * 2654435761u + 1;
    for (int i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        t[i] = (int32_t)((x >> 9) % (uint32_t)vocab);
    }
}

static void cat(int32_t *dst, int *n, const int32_t *src, int k) {
    memcpy(dst + *n, src, (size_t)k * sizeof *src);
    *n += k;
}

/* s holds toks[0..n) and its logits are those a plain session gets for
 * them. The plain sessions are extended when they already hold a prefix
 * (prefill and decode give the same bits), to keep the test fast. */
static void assert_logits_fresh(fixture *fx, fp_session *s, const int32_t *toks, int n) {
    char err[512];
    fp_session *r = NULL;
    for (int i = 0; i < NREF; i++) {
        const int m = session_n_tokens(fx->ref[i]);
        if (m <= n && !memcmp(session_tokens(fx->ref[i]), toks, (size_t)m * sizeof *toks) &&
            (!r || m > session_n_tokens(r)))
            r = fx->ref[i];
    }
    if (!r) {
        r = fx->ref[fx->ref_next];
        fx->ref_next = (fx->ref_next + 1) % NREF;
        session_reset(r);
    }
    const int m = session_n_tokens(r);
    if (n > m) assert_int_equal(session_eval(r, toks + m, n - m, NULL, NULL, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(session_n_tokens(s), n);
    assert_memory_equal(session_tokens(s), toks, (size_t)n * sizeof(int32_t));
    assert_memory_equal(session_logits(s), session_logits(r), (size_t)fx->V * sizeof(float));
}

static session_cache *open_cache(fixture *fx, int max_sessions, kv_disk *disk, const kv_policy *pol) {
    session_cache_opts o;
    session_cache_opts_defaults(&o);
    o.ctx = CTX;
    o.ram_bytes = 1ull << 34;
    o.max_sessions = max_sessions;
    o.rewind_min_tokens = 16;
    o.cancel_chunk = 32;
    o.disk = disk;
    if (pol) o.policy = *pol;
    char err[512];
    session_cache *c = session_cache_open(fx->e, &o, err, sizeof err);
    if (!c) fail_msg("session_cache_open: %s", err);
    return c;
}

/* One request: acquire, prefill, decode `k_gen` given tokens, release. */
static fp_session *turn(fixture *fx, session_cache *c, const int32_t *p, int n, const int32_t *g, int k_gen,
                        const char *want_src, int want_cached) {
    char err[512];
    sc_hit h;
    session_cache_stats a, b;
    session_cache_stats_get(c, &a);
    fp_session *s = session_cache_acquire(c, p, n, &h, err, sizeof err);
    if (!s) fail_msg("acquire: %s", err);
    if (strcmp(h.source, want_src) || h.n_cached != want_cached)
        fail_msg("acquire: got %s/%d, want %s/%d", h.source, h.n_cached, want_src, want_cached);
    assert_int_equal(session_cache_prefill(c, s, p, n, NULL, err, sizeof err), 0);
    session_cache_stats_get(c, &b);
    assert_int_equal(b.tokens_evaluated - a.tokens_evaluated, n - want_cached);   /* only the suffix */
    assert_logits_fresh(fx, s, p, n);
    if (k_gen) assert_int_equal(session_cache_extend(c, s, g, k_gen, err, sizeof err), 0);
    session_cache_release(c, s, 1);
    return s;
}

static void test_alternating_conversations(void **st) {
    fixture *fx = *st;
    session_cache *c = open_cache(fx, 2, NULL, NULL);
    int32_t a[CTX], b[CTX], ga[8], gb[8], more[40];
    int na = 0, nb = 0;
    gen(a, 48, 1, fx->V);
    na = 48;
    gen(b, 40, 2, fx->V);
    nb = 40;
    if (a[0] == b[0]) b[0] = (b[0] + 1) % fx->V;
    gen(ga, 8, 3, fx->V);
    gen(gb, 8, 4, fx->V);
    fp_session *sa = turn(fx, c, a, na, ga, 8, "none", 0);
    fp_session *sb = turn(fx, c, b, nb, gb, 8, "none", 0);
    assert_ptr_not_equal(sa, sb);
    for (int round = 0; round < 3; round++) {
        /* Next turn = history + what the model said + the new user text. */
        cat(a, &na, ga, 8);
        const int ca = na;
        gen(more, 16, 10 + round, fx->V);
        cat(a, &na, more, 16);
        gen(ga, 8, 40 + round, fx->V);
        assert_ptr_equal(turn(fx, c, a, na, ga, 8, "memory", ca), sa);
        cat(b, &nb, gb, 8);
        const int cb = nb;
        gen(more, 12, 20 + round, fx->V);
        cat(b, &nb, more, 12);
        gen(gb, 8, 50 + round, fx->V);
        assert_ptr_equal(turn(fx, c, b, nb, gb, 8, "memory", cb), sb);
    }
    session_cache_stats s;
    session_cache_stats_get(c, &s);
    assert_int_equal(s.sessions, 2);
    assert_int_equal(s.miss, 2);
    assert_int_equal(s.hit_memory, 6);
    assert_int_equal(s.evictions, 0);
    session_cache_close(c);
}

static void test_rewind_in_place(void **st) {
    fixture *fx = *st;
    session_cache *c = open_cache(fx, 1, NULL, NULL);
    int32_t p[CTX], g[10], alt[20];
    gen(p, 48, 5, fx->V);
    gen(g, 10, 6, fx->V);
    gen(alt, 20, 7, fx->V);
    fp_session *s = turn(fx, c, p, 48, g, 10, "none", 0);
    /* The client replays the history without the 10 hidden tokens. */
    memcpy(p + 48, alt, sizeof alt);
    assert_ptr_equal(turn(fx, c, p, 68, g, 5, "memory-rewind", 48), s);
    /* Regenerate: the same prompt again, fully cached with its logits. */
    char err[512];
    sc_hit h;
    assert_ptr_equal(session_cache_acquire(c, p, 68, &h, err, sizeof err), s);
    assert_string_equal(h.source, "memory-rewind");
    assert_int_equal(h.n_cached, 68);
    assert_logits_fresh(fx, s, p, 68);
    assert_int_equal(session_cache_prefill(c, s, p, 68, NULL, err, sizeof err), 0);
    session_cache_release(c, s, 1);
    /* A prefix shorter than every rewind point is a miss. */
    int32_t q[30];
    memcpy(q, p, 10 * sizeof *q);
    gen(q + 10, 20, 8, fx->V);
    turn(fx, c, q, 30, NULL, 0, "none", 0);
    session_cache_close(c);
}

static void test_fork_keeps_donor(void **st) {
    fixture *fx = *st;
    session_cache *c = open_cache(fx, 2, NULL, NULL);
    int32_t a[CTX], b[CTX], g[10];
    gen(a, 48, 11, fx->V);
    gen(g, 10, 12, fx->V);
    fp_session *sa = turn(fx, c, a, 48, g, 10, "none", 0);
    memcpy(b, a, 48 * sizeof *a);
    gen(b + 48, 25, 13, fx->V);
    fp_session *sb = turn(fx, c, b, 73, NULL, 0, "memory-fork", 48);
    assert_ptr_not_equal(sa, sb);
    /* The donor still extends without any rewind. */
    memcpy(a + 48, g, sizeof g);
    gen(a + 58, 5, 14, fx->V);
    assert_ptr_equal(turn(fx, c, a, 63, NULL, 0, "memory", 58), sa);
    session_cache_close(c);
}

static void mk_dir(char *dir) {
    strcpy(dir, "/tmp/fp_sc_XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void rm_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char p[1024];
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

static void test_disk_tier_and_policy(void **st) {
    fixture *fx = *st;
    char dir[64], err[512];
    mk_dir(dir);
    kv_disk_opts dopt = {.dir = dir, .budget_bytes = 256u << 20};
    kv_disk_model_fingerprint(engine_model(fx->e), dopt.fingerprint);
    kv_disk *d = kv_disk_open(&dopt, err, sizeof err);
    assert_non_null(d);
    kv_policy pol;
    kv_policy_defaults(&pol);
    pol.min_tokens = 8;
    pol.cold_max_tokens = 1000;
    pol.boundary_trim = 4;
    pol.boundary_align = 16;
    pol.continued_interval = 32;   /* step 32 */
    session_cache *c = open_cache(fx, 1, d, &pol);

    int32_t a[CTX], b[CTX], g[10];
    gen(a, 70, 21, fx->V);
    gen(b, 40, 22, fx->V);
    if (a[0] == b[0]) b[0] = (b[0] + 1) % fx->V;
    gen(g, 10, 23, fx->V);
    /* Cold miss: continued save at 32, cold save at align_down(70-4, 16) = 64. */
    turn(fx, c, a, 70, g, 10, "none", 0);
    assert_true(kv_disk_contains(d, a, 32));
    assert_true(kv_disk_contains(d, a, 64));
    assert_false(kv_disk_contains(d, a, 70));
    memcpy(a + 70, g, sizeof g);
    /* Another conversation evicts it: saved whole (80 tokens) first. */
    turn(fx, c, b, 40, NULL, 0, "none", 0);
    assert_true(kv_disk_contains(d, a, 80));
    assert_true(kv_disk_contains(d, b, 32));   /* its own cold save: align_down(36, 16) */
    /* Back to the first conversation: from disk, only the suffix evaluated. */
    gen(a + 80, 6, 24, fx->V);
    turn(fx, c, a, 86, NULL, 0, "disk", 80);
    /* A third one shares the first 66 tokens only: the live session (a, 86
     * tokens) has no rewind point inside them; disk has the cold one (64). */
    int32_t x[CTX];
    memcpy(x, a, 66 * sizeof *x);
    gen(x + 66, 10, 25, fx->V);
    x[66] = (a[66] + 1) % fx->V;
    turn(fx, c, x, 76, NULL, 0, "disk", 64);
    session_cache_stats s;
    session_cache_stats_get(c, &s);
    assert_int_equal(s.hit_disk, 2);
    assert_int_equal(s.evictions, 3);
    /* Continued saves while decoding: 76 + 30 crosses 96. */
    char e2[512];
    sc_hit h;
    fp_session *ss = session_cache_acquire(c, x, 76, &h, e2, sizeof e2);
    assert_non_null(ss);
    assert_string_equal(h.source, "memory");
    int32_t dec[30];
    gen(dec, 30, 26, fx->V);
    for (int i = 0; i < 30; i++) assert_int_equal(session_cache_extend(c, ss, dec + i, 1, e2, sizeof e2), 0);
    memcpy(x + 76, dec, sizeof dec);
    assert_true(kv_disk_contains(d, x, 96));
    assert_false(kv_disk_contains(d, x, 95));
    session_cache_release(c, ss, 1);
    /* Shutdown saves the live session. */
    session_cache_close(c);
    assert_true(kv_disk_contains(d, x, 106));
    kv_disk_close(d);
    rm_dir(dir);
}

typedef struct cancel_state {
    int polls, cancel_at, last_done, last_total;
} cancel_state;

static int cancel_cb(void *ud) {
    cancel_state *cs = ud;
    return ++cs->polls >= cs->cancel_at;
}

static void progress_cb(void *ud, int done, int total) {
    cancel_state *cs = ud;
    assert_true(done >= cs->last_done);
    cs->last_done = done;
    cs->last_total = total;
}

static void test_cancelled_prefill_resumes(void **st) {
    fixture *fx = *st;
    char err[512];
    session_cache *c = open_cache(fx, 1, NULL, NULL);
    int32_t p[50];
    gen(p, 50, 41, fx->V);
    sc_hit h;
    fp_session *s = session_cache_acquire(c, p, 50, &h, err, sizeof err);
    assert_non_null(s);
    cancel_state cs = {.cancel_at = 2};
    const sc_progress pr = {progress_cb, cancel_cb, &cs};
    assert_int_equal(session_cache_prefill(c, s, p, 50, &pr, err, sizeof err), 1);
    assert_non_null(strstr(err, "cancelled"));
    assert_int_equal(session_n_tokens(s), 32);
    assert_int_equal(cs.last_done, 32);
    assert_int_equal(cs.last_total, 50);
    session_cache_release(c, s, 1);
    /* The retry resumes after the evaluated part. */
    cs = (cancel_state){.cancel_at = 1000};
    assert_ptr_equal(session_cache_acquire(c, p, 50, &h, err, sizeof err), s);
    assert_string_equal(h.source, "memory");
    assert_int_equal(h.n_cached, 32);
    assert_int_equal(session_cache_prefill(c, s, p, 50, &pr, err, sizeof err), 0);
    assert_int_equal(cs.last_done, 50 - 32);
    assert_int_equal(cs.last_total, 50 - 32);
    assert_logits_fresh(fx, s, p, 50);
    session_cache_release(c, s, 1);
    session_cache_close(c);
}

static void test_errors_and_budget(void **st) {
    fixture *fx = *st;
    char err[512];
    session_cache *c = open_cache(fx, 1, NULL, NULL);
    int32_t a[CTX + 1], b[50];
    gen(a, CTX + 1, 31, fx->V);
    gen(b, 50, 32, fx->V);
    sc_hit h;
    assert_null(session_cache_acquire(c, a, CTX + 1, &h, err, sizeof err));
    assert_non_null(strstr(err, "--ctx"));
    assert_null(session_cache_acquire(c, a, 0, &h, err, sizeof err));
    fp_session *s = session_cache_acquire(c, a, 50, &h, err, sizeof err);
    assert_non_null(s);
    assert_null(session_cache_acquire(c, b, 50, &h, err, sizeof err));
    assert_non_null(strstr(err, "busy"));
    assert_int_equal(session_cache_prefill(c, s, a, 50, NULL, err, sizeof err), 0);
    assert_int_not_equal(session_cache_prefill(c, s, b, 40, NULL, err, sizeof err), 0);
    assert_non_null(strstr(err, "prefix"));
    /* A failed request drops the state. */
    session_cache_release(c, s, 0);
    assert_int_not_equal(session_cache_extend(c, s, b, 1, err, sizeof err), 0);
    assert_non_null(strstr(err, "not acquired"));
    s = session_cache_acquire(c, a, 50, &h, err, sizeof err);
    assert_string_equal(h.source, "none");
    session_cache_release(c, s, 1);
    session_cache_close(c);

    /* The RAM budget decides the number of sessions. */
    session_cache_opts o;
    session_cache_opts_defaults(&o);
    o.ctx = CTX;
    const uint64_t per = engine_session_bytes(fx->e, CTX) +
                         (uint64_t)o.rewind_points * kv_snapshot_bytes(&engine_model(fx->e)->hp, CTX, KV_SNAP_TAIL);
    assert_int_equal(session_cache_session_bytes(fx->e, CTX, o.rewind_points), per);
    o.ram_bytes = per * 5 / 2;
    c = session_cache_open(fx->e, &o, err, sizeof err);
    assert_non_null(c);
    session_cache_stats stt;
    session_cache_stats_get(c, &stt);
    assert_int_equal(stt.max_sessions, 2);
    assert_int_equal(stt.per_session_bytes, per);
    session_cache_close(c);
    o.ram_bytes = per - 1;
    assert_null(session_cache_open(fx->e, &o, err, sizeof err));
    assert_non_null(strstr(err, "--kv-ram-mb"));
}

static void test_kv_cli(void **st) {
    fixture *fx = *st;
    char err[512], dir[64];
    kv_cli k;
    kv_cli_init(&k);
    assert_int_equal(kv_cli_option(&k, KV_OPT_MIN_TOKENS, "16", err, sizeof err), 1);
    assert_int_equal(k.policy.min_tokens, 16);
    assert_int_equal(kv_cli_option(&k, KV_OPT_MIN_TOKENS, "0", err, sizeof err), -1);
    assert_non_null(strstr(err, "--kv-cache-min-tokens"));
    assert_int_equal(kv_cli_option(&k, KV_OPT_DISK_MB, "-3", err, sizeof err), -1);
    assert_int_equal(kv_cli_option(&k, KV_OPT_RAM_MB, "12x", err, sizeof err), -1);
    assert_int_equal(kv_cli_option(&k, KV_OPT_ALIGN, "0", err, sizeof err), 1);
    assert_int_equal(kv_cli_option(&k, KV_OPT_REWIND, "65", err, sizeof err), -1);
    assert_int_equal(kv_cli_option(&k, 'm', "x", err, sizeof err), 0);
    /* cold-max below min is refused when applying */
    assert_int_equal(kv_cli_option(&k, KV_OPT_COLD_MAX, "8", err, sizeof err), 1);
    kv_setup su;
    assert_int_not_equal(kv_cli_apply(&k, fx->e, CTX, NULL, NULL, NULL, &su, err, sizeof err), 0);
    assert_non_null(strstr(err, "cold-max"));
    assert_int_equal(kv_cli_option(&k, KV_OPT_COLD_MAX, "0", err, sizeof err), 1);
    mk_dir(dir);
    assert_int_equal(kv_cli_option(&k, KV_OPT_DISK_DIR, dir, err, sizeof err), 1);
    assert_int_equal(kv_cli_option(&k, KV_OPT_DISK_MB, "64", err, sizeof err), 1);
    assert_int_equal(kv_cli_apply(&k, fx->e, CTX, NULL, NULL, NULL, &su, err, sizeof err), 0);
    assert_non_null(su.disk);
    session_cache_stats cs;
    session_cache_stats_get(su.cache, &cs);
    assert_true(cs.max_sessions >= 1 && cs.max_sessions <= 4);   /* auto RAM budget */
    int32_t p[40];
    gen(p, 40, 61, fx->V);
    sc_hit h;
    fp_session *s = session_cache_acquire(su.cache, p, 40, &h, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(session_cache_prefill(su.cache, s, p, 40, NULL, err, sizeof err), 0);
    session_cache_release(su.cache, s, 1);
    kv_disk *d = su.disk;
    session_cache_close(su.cache);   /* shutdown save (40 >= min 16) */
    assert_true(kv_disk_contains(d, p, 40));
    su.cache = NULL;
    kv_cli_close(&su);
    rm_dir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alternating_conversations),
        cmocka_unit_test(test_rewind_in_place),
        cmocka_unit_test(test_fork_keeps_donor),
        cmocka_unit_test(test_disk_tier_and_policy),
        cmocka_unit_test(test_cancelled_prefill_resumes),
        cmocka_unit_test(test_errors_and_budget),
        cmocka_unit_test(test_kv_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
