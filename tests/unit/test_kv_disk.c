/* test_kv_disk.c — the disk KV store on the tiny model: policy arithmetic
 * (the reference's worked examples), save / restart / longest-prefix load
 * continuing bit-identically in a new engine instance, files for another
 * model / of an unknown version / truncated / with a corrupt header or
 * payload skipped with a reason (and the store keeps working), the byte
 * budget never exceeded over many saves with LRU order honoured, a writer
 * killed mid-write (fork + SIGSTOP + SIGKILL) leaving nothing loadable, and
 * the directory lock. Model: $FP_VECTORS/tiny-cond-s1.gguf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <dirent.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kv_disk.h"
#include "kv_snapshot.h"

#define NTOK 264

typedef struct fixture {
    fp_engine *e;
    int V;
    int32_t tok[NTOK];
    float *base;   /* [NTOK][V] uninterrupted logits */
    uint8_t fp[32];
    char model_path[512];
} fixture;

static void vec_path(char *buf, size_t n, const char *name) {
    const char *d = getenv("FP_VECTORS");
    snprintf(buf, n, "%s/%s", d && *d ? d : "../shared/vectors", name);
}

static void load_tokens(int32_t *tok, int n, int vocab) {
    char p[512];
    vec_path(p, sizeof p, "tiny-cond-s1.tokens.txt");
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    int i = 0;
    while (i < n && fscanf(f, "%d", &tok[i]) == 1) i++;
    fclose(f);
    uint32_t x = 777;
    for (; i < n; i++) {
        x = x * 1103515245u + 12345u;
        tok[i] = (int32_t)((x >> 8) % (uint32_t)vocab);
    }
}

static int setup(void **st) {
    fixture *fx = calloc(1, sizeof *fx);
    char err[512];
    vec_path(fx->model_path, sizeof fx->model_path, "tiny-cond-s1.gguf");
    engine_opts o = {.model_path = fx->model_path, .n_threads = 2};
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
    kv_disk_model_fingerprint(engine_model(fx->e), fx->fp);
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

/* ---- helpers ------------------------------------------------------------- */

typedef struct logbuf {
    char text[1 << 16];
    size_t len;
} logbuf;

static void log_cb(void *ud, const char *msg) {
    logbuf *l = ud;
    const int w = snprintf(l->text + l->len, sizeof l->text - l->len, "%s\n", msg);
    if (w > 0 && l->len + (size_t)w < sizeof l->text) l->len += (size_t)w;
}

static int log_has(const logbuf *l, const char *s) { return strstr(l->text, s) != NULL; }

static void mk_dir(char *dir) {
    strcpy(dir, "/tmp/fp_kvdisk_XXXXXX");
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

/* Bytes of every file in dir except the lock; *count = checkpoint files. */
static uint64_t dir_bytes(const char *dir, int *count, int *tmps) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    uint64_t total = 0;
    int n = 0, t = 0;
    char p[1024];
    struct stat sb;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (stat(p, &sb) || !S_ISREG(sb.st_mode)) continue;
        total += (uint64_t)sb.st_size;
        if (strstr(de->d_name, ".tmp.")) t++;
        else if (strstr(de->d_name, KV_DISK_SUFFIX)) n++;
    }
    closedir(d);
    if (count) *count = n;
    if (tmps) *tmps = t;
    return total;
}

static void ckpt_path(const char *dir, const int32_t *tok, int n, char *out, size_t len) {
    uint8_t k[32];
    kv_disk_key(tok, n, k);
    char hx[65];
    for (int i = 0; i < 32; i++) snprintf(hx + 2 * i, 3, "%02x", k[i]);
    snprintf(out, len, "%s/%s%s", dir, hx, KV_DISK_SUFFIX);
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static kv_disk *open_store(fixture *fx, const char *dir, uint64_t budget, logbuf *lb) {
    char err[512];
    kv_disk_opts o = {.dir = dir, .budget_bytes = budget, .log = lb ? log_cb : NULL, .log_ud = lb};
    memcpy(o.fingerprint, fx->fp, 32);
    kv_disk *d = kv_disk_open(&o, err, sizeof err);
    if (!d) fail_msg("kv_disk_open: %s", err);
    return d;
}

/* Bring s to exactly tok[0..n). */
static void grow_to(fixture *fx, fp_session *s, int n) {
    char err[512];
    if (session_n_tokens(s) > n) session_reset(s);
    const int m = session_n_tokens(s);
    if (n > m) assert_int_equal(session_eval(s, fx->tok + m, n - m, NULL, NULL, NULL, NULL, err, sizeof err), 0);
}

/* s continues like the uninterrupted session: its logits now and for the
 * next 24 positions equal the baseline bit for bit. */
static void continue_and_compare(fixture *fx, fp_session *s) {
    char err[512];
    const int k = session_n_tokens(s), end = k + 24 < NTOK ? k + 24 : NTOK;
    assert_memory_equal(session_logits(s), fx->base + (size_t)(k - 1) * fx->V, (size_t)fx->V * sizeof(float));
    float *out = malloc((size_t)(end - k) * fx->V * sizeof(float));
    assert_int_equal(session_eval(s, fx->tok + k, end - k, out, NULL, NULL, NULL, err, sizeof err), 0);
    assert_memory_equal(out, fx->base + (size_t)k * fx->V, (size_t)(end - k) * fx->V * sizeof(float));
    free(out);
}

static uint64_t file_bytes(fixture *fx, int n) {
    return KV_DISK_HEADER_BYTES + kv_snapshot_bytes(&engine_model(fx->e)->hp, n, KV_SNAP_FULL);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_policy(void **st) {
    (void)st;
    kv_policy p;
    kv_policy_defaults(&p);
    char err[256];
    assert_int_equal(kv_policy_check(&p, err, sizeof err), 0);
    static int32_t toks[12000];
    /* serving-spec 5.6 worked examples */
    assert_int_equal(kv_policy_cold_len(&p, toks, 11011), 10240);
    assert_int_equal(kv_policy_cold_len(&p, toks, 1695), 1695);
    assert_int_equal(kv_policy_cold_len(&p, toks, 511), 0);
    assert_int_equal(kv_policy_continued_step(&p), 10240);
    p.boundary_align = 0;
    assert_int_equal(kv_policy_cold_len(&p, toks, 1695), 1663);
    assert_int_equal(kv_policy_continued_step(&p), 10000);
    p.boundary_align = 2048;
    p.cold_max_tokens = 5000;
    assert_int_equal(kv_policy_cold_len(&p, toks, 11011), 0);
    p.cold_max_tokens = 0;
    assert_int_equal(kv_policy_cold_len(&p, toks, 1000), 0);
    p.cold_max_tokens = 30000;
    p.continued_interval = 0;
    assert_int_equal(kv_policy_continued_step(&p), 0);
    /* Chat anchor: the last User marker before the first Assistant marker. */
    p.anchor_user = 7;
    p.anchor_assistant = 9;
    for (int i = 0; i < 3000; i++) toks[i] = 1;
    toks[100] = 7;
    toks[600] = 7;
    toks[700] = 9;
    toks[900] = 7;
    assert_int_equal(kv_policy_cold_len(&p, toks, 3000), 600);
    toks[600] = 1;   /* anchor 100 < min 512: trim/align instead */
    assert_int_equal(kv_policy_cold_len(&p, toks, 3000), 2048);
    /* bad knobs */
    kv_policy_defaults(&p);
    p.min_tokens = 0;
    assert_int_not_equal(kv_policy_check(&p, err, sizeof err), 0);
    kv_policy_defaults(&p);
    p.cold_max_tokens = 100;
    assert_int_not_equal(kv_policy_check(&p, err, sizeof err), 0);
    assert_non_null(strstr(err, "cold-max"));
    assert_string_equal(kv_save_reason_name(KV_SAVE_EVICT), "evict");
}

static void test_save_restart_load(void **st) {
    fixture *fx = *st;
    char dir[64], err[512];
    mk_dir(dir);
    logbuf lb = {0};
    kv_disk *d = open_store(fx, dir, 64u << 20, &lb);
    fp_session *s = session_open(fx->e, 300, err, sizeof err);
    grow_to(fx, s, 150);
    assert_int_equal(kv_disk_save(d, s, KV_SAVE_COLD, err, sizeof err), 1);
    grow_to(fx, s, 200);
    assert_int_equal(kv_disk_save(d, s, KV_SAVE_CONTINUED, err, sizeof err), 1);
    assert_int_equal(kv_disk_save(d, s, KV_SAVE_EVICT, err, sizeof err), 0);   /* already stored */
    assert_true(log_has(&lb, "already stored"));
    int nfiles, ntmp;
    dir_bytes(dir, &nfiles, &ntmp);
    assert_int_equal(nfiles, 2);
    assert_int_equal(ntmp, 0);
    kv_disk_close(d);
    session_close(s);

    /* "Restart": a new engine instance on the same model file. */
    engine_opts o = {.model_path = fx->model_path, .n_threads = 1};
    fp_engine *e2 = engine_open(&o, err, sizeof err);
    assert_non_null(e2);
    uint8_t fp2[32];
    kv_disk_model_fingerprint(engine_model(e2), fp2);
    assert_memory_equal(fp2, fx->fp, 32);
    d = open_store(fx, dir, 64u << 20, NULL);
    kv_disk_stats ks;
    kv_disk_stats_get(d, &ks);
    assert_int_equal(ks.files, 2);
    assert_int_equal(ks.skipped, 0);
    assert_int_equal(kv_disk_find(d, fx->tok, 260, 1), 200);
    assert_int_equal(kv_disk_find(d, fx->tok, 200, 1), 200);
    assert_int_equal(kv_disk_find(d, fx->tok, 180, 1), 150);
    assert_int_equal(kv_disk_find(d, fx->tok, 149, 1), 0);
    assert_int_equal(kv_disk_find(d, fx->tok, 260, 201), 0);
    assert_true(kv_disk_contains(d, fx->tok, 150));
    assert_false(kv_disk_contains(d, fx->tok, 151));
    int32_t other[NTOK];
    memcpy(other, fx->tok, sizeof other);
    other[170] = (other[170] + 1) % fx->V;
    assert_int_equal(kv_disk_find(d, other, 260, 1), 150);
    other[3] = (other[3] + 1) % fx->V;
    assert_int_equal(kv_disk_find(d, other, 260, 1), 0);

    fp_session *s2 = session_open(e2, 400, err, sizeof err);
    assert_int_equal(kv_disk_load(d, s2, other, 260, 1, err, sizeof err), 0);   /* nothing: untouched */
    assert_int_equal(kv_disk_load(d, s2, fx->tok, 260, 1, err, sizeof err), 200);
    assert_int_equal(session_n_tokens(s2), 200);
    continue_and_compare(fx, s2);   /* baseline from the first engine instance */
    kv_disk_stats_get(d, &ks);
    assert_int_equal(ks.loads, 1);
    session_close(s2);
    kv_disk_close(d);
    engine_close(e2);
    rm_dir(dir);
}

/* Recompute the header checksum after editing header fields. */
static void rehash_header(uint8_t *h) {
    unsigned len = 32;
    EVP_Digest(h, 144, h + 144, &len, EVP_sha256(), NULL);
}

static void edit_file(const char *path, long off, const void *bytes, size_t n, int rehash) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    uint8_t h[KV_DISK_HEADER_BYTES];
    assert_int_equal(fread(h, 1, sizeof h, f), sizeof h);
    if (off < (long)sizeof h) {
        memcpy(h + off, bytes, n);
        if (rehash) rehash_header(h);
        fseek(f, 0, SEEK_SET);
        assert_int_equal(fwrite(h, 1, sizeof h, f), sizeof h);
    } else {
        fseek(f, off, SEEK_SET);
        assert_int_equal(fwrite(bytes, 1, n, f), n);
    }
    fclose(f);
}

static void test_damaged_files_skipped(void **st) {
    fixture *fx = *st;
    char dir[64], err[512], p[6][512];
    mk_dir(dir);
    kv_disk *d = open_store(fx, dir, 64u << 20, NULL);
    fp_session *s = session_open(fx->e, 300, err, sizeof err);
    const int lens[6] = {60, 70, 80, 90, 100, 110};
    for (int i = 0; i < 6; i++) {
        grow_to(fx, s, lens[i]);
        assert_int_equal(kv_disk_save(d, s, KV_SAVE_CONTINUED, err, sizeof err), 1);
        ckpt_path(dir, fx->tok, lens[i], p[i], sizeof p[i]);
        assert_true(file_exists(p[i]));
    }
    kv_disk_close(d);

    const uint8_t flip = 0x5a, v2[4] = {2, 0, 0, 0};
    edit_file(p[0], 16, &flip, 1, 1);                   /* 60: another model's fingerprint */
    edit_file(p[1], 8, v2, 4, 1);                       /* 70: format version 2 */
    assert_int_equal(truncate(p[2], (off_t)(file_bytes(fx, 80) / 2)), 0);   /* 80: truncated */
    edit_file(p[3], 140, &flip, 1, 0);                  /* 90: header corrupted */
    edit_file(p[4], (long)(file_bytes(fx, 100) / 2), &flip, 1, 0);   /* 100: payload corrupted */
    /* Leftovers of a crash, a stranger, a stub named like a checkpoint. */
    char extra[600];
    snprintf(extra, sizeof extra, "%s.tmp.4242", p[5]);
    FILE *f = fopen(extra, "wb");
    fputs("half", f);
    fclose(f);
    snprintf(extra, sizeof extra, "%s/notes.txt", dir);
    f = fopen(extra, "wb");
    fputs("not mine", f);
    fclose(f);
    int32_t stub_tok[1] = {5};
    char stub[512];
    ckpt_path(dir, stub_tok, 1, stub, sizeof stub);
    f = fopen(stub, "wb");
    fputs("FPKV", f);
    fclose(f);

    logbuf lb = {0};
    d = open_store(fx, dir, 64u << 20, &lb);
    kv_disk_stats ks;
    kv_disk_stats_get(d, &ks);
    assert_int_equal(ks.files, 2);   /* 100 (payload not checked yet) and 110 */
    assert_int_equal(ks.skipped, 5);
    assert_true(log_has(&lb, "another model"));
    assert_true(log_has(&lb, "unknown format version 2"));
    assert_true(log_has(&lb, "truncated"));
    assert_true(log_has(&lb, "header checksum"));
    assert_true(log_has(&lb, "unfinished write"));
    assert_true(file_exists(p[0]) && file_exists(p[1]));      /* someone else's: left alone */
    assert_false(file_exists(p[2]) || file_exists(p[3]));     /* ours, damaged: deleted */
    assert_false(file_exists(stub));
    assert_true(file_exists(extra));                          /* foreign name: ignored */

    /* Lookups never offer the skipped ones. */
    assert_int_equal(kv_disk_find(d, fx->tok, 95, 1), 0);
    assert_int_equal(kv_disk_find(d, fx->tok, 105, 1), 100);
    /* The corrupt payload is caught on load: rejected, deleted, session reset. */
    fp_session *t = session_open(fx->e, 300, err, sizeof err);
    grow_to(fx, t, 5);
    assert_int_equal(kv_disk_load(d, t, fx->tok, 105, 1, err, sizeof err), 0);
    assert_true(log_has(&lb, "payload checksum mismatch"));
    assert_int_equal(session_n_tokens(t), 0);
    assert_false(file_exists(p[4]));
    kv_disk_stats_get(d, &ks);
    assert_int_equal(ks.rejected, 1);
    assert_int_equal(ks.files, 1);
    /* The store keeps working. */
    assert_int_equal(kv_disk_load(d, t, fx->tok, 200, 1, err, sizeof err), 110);
    continue_and_compare(fx, t);
    grow_to(fx, s, 120);
    assert_int_equal(kv_disk_save(d, s, KV_SAVE_CONTINUED, err, sizeof err), 1);
    assert_int_equal(kv_disk_find(d, fx->tok, 200, 1), 120);
    kv_disk_close(d);
    session_close(s);
    session_close(t);
    rm_dir(dir);
}

static void test_budget_never_exceeded(void **st) {
    fixture *fx = *st;
    char dir[64], err[512];
    mk_dir(dir);
    const uint64_t budget = file_bytes(fx, 250) * 7 / 2;   /* about 3.5 files */
    logbuf lb = {0};
    kv_disk *d = open_store(fx, dir, budget, &lb);
    fp_session *s = session_open(fx->e, 300, err, sizeof err);
    fp_session *t = session_open(fx->e, 300, err, sizeof err);
    grow_to(fx, s, 40);
    assert_int_equal(kv_disk_save(d, s, KV_SAVE_COLD, err, sizeof err), 1);
    int saves = 1;
    for (int n = 50; n <= 260; n += 7) {
        grow_to(fx, s, n);
        assert_int_equal(kv_disk_save(d, s, KV_SAVE_CONTINUED, err, sizeof err), 1);
        saves++;
        int nf, nt;
        const uint64_t used = dir_bytes(dir, &nf, &nt);
        assert_true(used <= budget);
        assert_int_equal(nt, 0);
        kv_disk_stats ks;
        kv_disk_stats_get(d, &ks);
        assert_int_equal(ks.bytes, used);
        assert_int_equal(ks.files, nf);
        /* Keep the 40-token checkpoint in use: LRU must keep it. */
        assert_int_equal(kv_disk_load(d, t, fx->tok, 45, 1, err, sizeof err), 40);
    }
    kv_disk_stats ks;
    kv_disk_stats_get(d, &ks);
    assert_true(ks.evictions >= (uint64_t)saves - 5);
    assert_true(kv_disk_contains(d, fx->tok, 40));
    assert_false(kv_disk_contains(d, fx->tok, 50));
    assert_true(log_has(&lb, "least recently used"));
    kv_disk_close(d);

    /* A checkpoint larger than the whole budget is not written at all. */
    logbuf lb2 = {0};
    rm_dir(dir);
    mk_dir(dir);
    d = open_store(fx, dir, file_bytes(fx, 260) - 1, &lb2);
    grow_to(fx, s, 260);
    assert_int_equal(kv_disk_save(d, s, KV_SAVE_COLD, err, sizeof err), 0);
    assert_true(log_has(&lb2, "exceeds the whole budget"));
    int nf;
    dir_bytes(dir, &nf, NULL);
    assert_int_equal(nf, 0);
    /* Reopening with a smaller budget evicts down to it. */
    grow_to(fx, s, 30);
    assert_int_equal(kv_disk_save(d, s, KV_SAVE_COLD, err, sizeof err), 1);
    grow_to(fx, s, 60);
    assert_int_equal(kv_disk_save(d, s, KV_SAVE_COLD, err, sizeof err), 1);
    kv_disk_close(d);
    d = open_store(fx, dir, file_bytes(fx, 60) + 10, NULL);
    assert_true(dir_bytes(dir, &nf, NULL) <= file_bytes(fx, 60) + 10);
    assert_int_equal(nf, 1);
    assert_true(kv_disk_contains(d, fx->tok, 60));   /* the newer one stays */
    kv_disk_close(d);
    session_close(s);
    session_close(t);
    rm_dir(dir);
}

static void stop_self(void *ud, uint64_t done, uint64_t total) {
    (void)ud;
    if (done * 2 >= total) raise(SIGSTOP);
}

static void test_killed_mid_write(void **st) {
    fixture *fx = *st;
    char dir[64], err[512];
    mk_dir(dir);
    fp_session *s = session_open(fx->e, 300, err, sizeof err);
    grow_to(fx, s, 150);
    fflush(NULL);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Child: no cmocka asserts here; only the store and the serialiser. */
        kv_disk_opts o = {.dir = dir, .budget_bytes = 64u << 20, .save_progress = stop_self};
        memcpy(o.fingerprint, fx->fp, 32);
        kv_disk *d = kv_disk_open(&o, err, sizeof err);
        if (!d) _exit(2);
        kv_disk_save(d, s, KV_SAVE_COLD, err, sizeof err);
        _exit(3);   /* not reached: killed while stopped */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
    assert_true(WIFSTOPPED(status));
    int nf = 0, nt = 0;
    dir_bytes(dir, &nf, &nt);
    assert_int_equal(nt, 1);   /* the payload is written, the header not yet */
    assert_int_equal(nf, 0);
    /* While the child lives it holds the lock. */
    kv_disk_opts o = {.dir = dir, .budget_bytes = 64u << 20};
    memcpy(o.fingerprint, fx->fp, 32);
    assert_null(kv_disk_open(&o, err, sizeof err));
    assert_non_null(strstr(err, "in use"));
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));

    /* Also as if a crash had left the unfinished bytes under the final name,
     * and a truncated copy of a finished checkpoint. */
    DIR *dh = opendir(dir);
    struct dirent *de;
    char tmp[600] = "", fin[512];
    while ((de = readdir(dh)))
        if (strstr(de->d_name, ".tmp.")) snprintf(tmp, sizeof tmp, "%s/%s", dir, de->d_name);
    closedir(dh);
    ckpt_path(dir, fx->tok, 150, fin, sizeof fin);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", tmp, fin);
    assert_int_equal(system(cmd), 0);
    char other_dir[64], trunc_src[512], trunc_dst[512];
    mk_dir(other_dir);
    kv_disk *d0 = open_store(fx, other_dir, 64u << 20, NULL);
    grow_to(fx, s, 120);
    assert_int_equal(kv_disk_save(d0, s, KV_SAVE_COLD, err, sizeof err), 1);
    kv_disk_close(d0);
    ckpt_path(other_dir, fx->tok, 120, trunc_src, sizeof trunc_src);
    ckpt_path(dir, fx->tok, 120, trunc_dst, sizeof trunc_dst);
    snprintf(cmd, sizeof cmd, "head -c %llu '%s' > '%s'", (unsigned long long)(file_bytes(fx, 120) - 100),
             trunc_src, trunc_dst);
    assert_int_equal(system(cmd), 0);
    rm_dir(other_dir);

    logbuf lb = {0};
    kv_disk *d = open_store(fx, dir, 64u << 20, &lb);
    assert_true(log_has(&lb, "unfinished write"));
    assert_true(log_has(&lb, "bad magic"));
    assert_true(log_has(&lb, "truncated"));
    kv_disk_stats ks;
    kv_disk_stats_get(d, &ks);
    assert_int_equal(ks.files, 0);
    assert_int_equal(kv_disk_find(d, fx->tok, 200, 1), 0);
    fp_session *t = session_open(fx->e, 300, err, sizeof err);
    assert_int_equal(kv_disk_load(d, t, fx->tok, 200, 1, err, sizeof err), 0);
    dir_bytes(dir, &nf, &nt);
    assert_int_equal(nf + nt, 0);
    /* And a normal save works afterwards. */
    grow_to(fx, s, 150);
    assert_int_equal(kv_disk_save(d, s, KV_SAVE_COLD, err, sizeof err), 1);
    assert_int_equal(kv_disk_load(d, t, fx->tok, 200, 1, err, sizeof err), 150);
    continue_and_compare(fx, t);
    kv_disk_close(d);
    session_close(s);
    session_close(t);
    rm_dir(dir);
}

static void test_lock_and_bad_options(void **st) {
    fixture *fx = *st;
    char dir[64], err[512], sub[128];
    mk_dir(dir);
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    kv_disk *d = open_store(fx, sub, 1 << 20, NULL);   /* mkdir -p */
    struct stat sb;
    assert_int_equal(stat(sub, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    kv_disk_opts o = {.dir = sub, .budget_bytes = 1 << 20};
    memcpy(o.fingerprint, fx->fp, 32);
    assert_null(kv_disk_open(&o, err, sizeof err));
    assert_non_null(strstr(err, "in use"));
    kv_disk_close(d);
    d = kv_disk_open(&o, err, sizeof err);
    assert_non_null(d);
    kv_disk_close(d);
    o.budget_bytes = 0;
    assert_null(kv_disk_open(&o, err, sizeof err));
    assert_non_null(strstr(err, "kv-disk-space-mb"));
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_save_restart_load),
        cmocka_unit_test(test_damaged_files_skipped),
        cmocka_unit_test(test_budget_never_exceeded),
        cmocka_unit_test(test_killed_mid_write),
        cmocka_unit_test(test_lock_and_bad_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
