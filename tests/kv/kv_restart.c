/* kv_restart.c — end-to-end driver for the KV cache across process restarts
 * (built and run by tests/kv/run.sh, not part of the library).
 *
 * One run = one process: open the model, the disk store and the session
 * cache, serve one prompt (acquire + prefill, timed), print where the cached
 * prefix came from, the timings and a SHA-256 of the final logits, then
 * close the cache (shutdown save). Run it twice on the same --kv-disk-dir
 * with a longer prompt the second time and the second run must load the
 * first run's checkpoint from disk and produce the same logits as a cold run
 * of that prompt. */
#include <getopt.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv_disk.h"
#include "session_cache.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void log_line(void *ud, const char *msg) {
    if (ud) fprintf(stderr, "%s\n", msg);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: kv_restart -m MODEL [--kv-disk-dir DIR] [options]\n"
            "  -m, --model FILE          GGUF model\n"
            "  --kv-disk-dir DIR         disk KV store (omit: RAM only, always cold)\n"
            "  --kv-disk-space-mb N      disk budget (default 1024)\n"
            "  -n, --tokens N            prompt length (default 2100)\n"
            "  --seed S                  prompt token stream (default 1)\n"
            "  -c, --ctx N               session context (default 4096)\n"
            "  -t, --threads N           threads (default: all cores)\n"
            "  --min-tokens N            --kv-cache-min-tokens (default 512)\n"
            "  -v, --verbose             log cache decisions on stderr\n"
            "  -h, --help                this text\n"
            "Prints: source=... cached=N evaluated=N acquire_ms=X prefill_ms=Y total_ms=Z logits_sha256=H\n");
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *dir = NULL;
    int n = 2100, ctx = 4096, threads = 0, verbose = 0, min_tokens = 512;
    unsigned seed = 1;
    double disk_mb = 1024;
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'},   {"kv-disk-dir", required_argument, 0, 'D'},
        {"kv-disk-space-mb", required_argument, 0, 'S'}, {"tokens", required_argument, 0, 'n'},
        {"seed", required_argument, 0, 's'},    {"ctx", required_argument, 0, 'c'},
        {"threads", required_argument, 0, 't'}, {"min-tokens", required_argument, 0, 'M'},
        {"verbose", no_argument, 0, 'v'},       {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "m:n:c:t:vh", lo, NULL)) != -1) {
        switch (opt) {
        case 'm': model_path = optarg; break;
        case 'D': dir = optarg; break;
        case 'S': disk_mb = atof(optarg); break;
        case 'n': n = atoi(optarg); break;
        case 's': seed = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'c': ctx = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'M': min_tokens = atoi(optarg); break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model_path || n < 1 || n > ctx) {
        fprintf(stderr, "kv_restart: need -m MODEL and 1 <= --tokens <= --ctx (try --help)\n");
        return 2;
    }
    char err[1024];
    engine_opts eo = {.model_path = model_path, .n_threads = threads};
    fp_engine *e = engine_open(&eo, err, sizeof err);
    if (!e) {
        fprintf(stderr, "kv_restart: %s\n", err);
        return 1;
    }
    kv_disk *d = NULL;
    if (dir) {
        kv_disk_opts dopt = {.dir = dir, .budget_bytes = (uint64_t)(disk_mb * 1048576.0), .log = log_line,
                             .log_ud = verbose ? (void *)1 : NULL};
        kv_disk_model_fingerprint(engine_model(e), dopt.fingerprint);
        d = kv_disk_open(&dopt, err, sizeof err);
        if (!d) {
            fprintf(stderr, "kv_restart: %s\n", err);
            return 1;
        }
    }
    session_cache_opts so;
    session_cache_opts_defaults(&so);
    so.ctx = ctx;
    so.disk = d;
    so.policy.min_tokens = min_tokens;
    so.log = log_line;
    so.log_ud = verbose ? (void *)1 : NULL;
    session_cache *c = session_cache_open(e, &so, err, sizeof err);
    if (!c) {
        fprintf(stderr, "kv_restart: %s\n", err);
        return 1;
    }
    const int V = engine_model(e)->hp.n_vocab;
    int32_t *tok = malloc((size_t)n * sizeof *tok);
    uint32_t x = seed * 2654435761u + 7;
    for (int i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        tok[i] = (int32_t)((x >> 9) % (uint32_t)V);
    }
    sc_hit h;
    const double t0 = now_ms();
    fp_session *s = session_cache_acquire(c, tok, n, &h, err, sizeof err);
    const double t1 = now_ms();
    if (!s || session_cache_prefill(c, s, tok, n, NULL, err, sizeof err)) {
        fprintf(stderr, "kv_restart: %s\n", err);
        return 1;
    }
    const double t2 = now_ms();
    uint8_t dig[32];
    unsigned dl = 32;
    EVP_Digest(session_logits(s), (size_t)V * sizeof(float), dig, &dl, EVP_sha256(), NULL);
    char hx[65];
    for (int i = 0; i < 32; i++) snprintf(hx + 2 * i, 3, "%02x", dig[i]);
    printf("source=%s cached=%d evaluated=%d acquire_ms=%.1f prefill_ms=%.1f total_ms=%.1f logits_sha256=%s\n",
           h.source, h.n_cached, n - h.n_cached, t1 - t0, t2 - t1, t2 - t0, hx);
    session_cache_release(c, s, 1);
    session_cache_close(c);   /* shutdown save */
    kv_disk_close(d);
    engine_close(e);
    free(tok);
    return 0;
}
