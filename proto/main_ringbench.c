/* main_ringbench.c — flashpool-ringbench: round-trip latency of one
 * DISPATCH -> COMBINE exchange (real frames from proto/frame.h, decoded on
 * both ends as the node and the coordinator do) over any transport
 * endpoint, by default shm:// against ZeroMQ tcp:// loopback. A forked
 * child plays the node (listens, answers each DISPATCH with a COMBINE of
 * the matching size, no expert compute); the parent is the coordinator.
 * CSV on stdout, one row per endpoint and wait mode. */
#include "frame.h"
#include "quant.h"
#include "transport.h"

#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_EP 8
#define WAIT_MS 10000

typedef struct bench_opts {
    const char *ep[MAX_EP];
    int n_ep;
    int n_embd, tokens, items, iters, warmup;
    int spin;                       /* -1 both, 0 sleep in poll, 1 busy-poll */
    uint64_t ring_bytes;
} bench_opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: flashpool-ringbench [options]\n\n"
            "Round-trip latency of a DISPATCH -> COMBINE exchange between two processes\n"
            "(a forked child answers like an expert node, without computing). CSV on stdout.\n\n"
            "  -e, --endpoint EP   transport endpoint to measure (repeatable; the child listens\n"
            "                      there). Default: shm://fp-ringbench-PID and tcp://127.0.0.1:0\n"
            "      --n-embd N      model width (default 4096, DeepSeek V4 Flash)\n"
            "      --tokens N      tokens in the DISPATCH (default 1: decode)\n"
            "      --items N       (token, expert) pairs = COMBINE rows (default 6)\n"
            "  -n, --iters N       measured round trips (default 5000)\n"
            "      --warmup N      unmeasured round trips first (default 500)\n"
            "      --wait MODE     sleep (block in poll), spin (busy-poll both ends) or both\n"
            "                      (default both)\n"
            "      --ring-mb N     ring transports: bytes of each ring (default 64)\n"
            "  -h, --help          this help\n\n"
            "Columns: transport,endpoint,wait,n_embd,tokens,items,dispatch_bytes,combine_bytes,\n"
            "iters,min_us,p50_us,p90_us,p99_us,mean_us\n");
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Receive with either a blocking wait or a busy loop of zero-timeout polls. */
static int recv_msg(transport *t, tp_msg *m, int spin, char *err, size_t errlen) {
    if (!spin) return transport_recv(t, m, WAIT_MS, err, errlen);
    const double end = now_us() + WAIT_MS * 1e3;
    for (;;) {
        int r = transport_recv(t, m, 0, err, errlen);
        if (r != 0) return r;
        if (now_us() > end) return 0;
    }
}

/* The node's side: answer every DISPATCH with a COMBINE; an empty message ends. */
static int serve(const char *ep, const transport_opts *to, const bench_opts *o, int spin, int report_fd) {
    char e[256];
    transport *t = transport_listen(ep, to, e, sizeof e);
    char line[300];
    int len = snprintf(line, sizeof line, "%s\n", t ? transport_endpoint(t) : e);
    if (write(report_fd, line, (size_t)len) != len || !t) return 2;
    close(report_fd);
    frame_limits lim;
    frame_limits_default(&lim);
    float *out = calloc((size_t)o->items * o->n_embd, sizeof(float));
    if (!out) return 3;
    for (;;) {
        tp_msg m;
        int r = recv_msg(t, &m, spin, e, sizeof e);
        if (r != 1) {
            fprintf(stderr, "ringbench child: %s\n", r ? e : "nothing received for 10 s");
            return 4;
        }
        if (m.len == 0) {
            transport_release(t, &m);
            break;
        }
        frame_view v;
        if (frame_decode(m.data, m.len, &lim, &v, e, sizeof e) != FRAME_OK) {
            fprintf(stderr, "ringbench child: %s\n", e);
            return 5;
        }
        uint8_t hdr[FRAME_HDR_BYTES];
        struct iovec iov[2];
        int ni = frame_build_combine(hdr, iov, v.h.request_id, (int)v.h.layer, (int)v.h.n_items, (int)v.h.n_embd,
                                     out, 0, 0);
        tp_peer peer = m.peer;
        transport_release(t, &m);
        if (ni < 0 || transport_send(t, &peer, iov, ni, WAIT_MS, e, sizeof e) != 0) {
            fprintf(stderr, "ringbench child: send: %s\n", e);
            return 6;
        }
    }
    free(out);
    transport_close(t);
    return 0;
}

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run_one(const char *ep, const bench_opts *o, int spin) {
    transport_opts to;
    transport_opts_default(&to);
    to.ring_bytes = o->ring_bytes;
    int pfd[2];
    if (pipe(pfd)) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(pfd[0]);
        _exit(serve(ep, &to, o, spin, pfd[1]));
    }
    close(pfd[1]);
    char bound[300] = "";
    FILE *pf = fdopen(pfd[0], "r");
    if (!pf || !fgets(bound, sizeof bound, pf)) bound[0] = 0;
    if (pf) fclose(pf);
    bound[strcspn(bound, "\n")] = 0;
    char e[256];
    transport *t = NULL;
    if (!strstr(bound, "://")) snprintf(e, sizeof e, "child could not listen: %s", bound);
    else t = transport_connect(bound, &to, e, sizeof e);
    if (!t) {
        fprintf(stderr, "flashpool-ringbench: %s: %s\n", ep, e);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    /* a valid decode-sized DISPATCH: quantised activations and routed pairs */
    const int nb = o->n_embd / QK_K;
    float *x = malloc((size_t)o->n_embd * sizeof(float));
    block_q8_K *xq = malloc((size_t)o->tokens * nb * sizeof(block_q8_K));
    expert_work *items = malloc((size_t)o->items * sizeof(expert_work));
    double *rtt = malloc((size_t)o->iters * sizeof(double));
    for (int i = 0; i < o->n_embd; i++) x[i] = sinf((float)i * 0.37f);
    for (int k = 0; k < o->tokens; k++) quantize_row_q8_K(x, xq + (size_t)k * nb, o->n_embd);
    for (int i = 0; i < o->items; i++) items[i] = (expert_work){i % o->tokens, i, 0.25f};
    frame_limits lim;
    frame_limits_default(&lim);
    int rc = 0;
    for (int it = 0; it < o->warmup + o->iters && !rc; it++) {
        uint8_t hdr[FRAME_HDR_BYTES];
        struct iovec iov[3];
        const int ni = frame_build_dispatch(hdr, iov, (uint64_t)it + 1, 3, o->tokens, o->n_embd, xq, o->items,
                                            items, 0);
        const double t0 = now_us();
        tp_msg m;
        if (ni < 0 || transport_send(t, NULL, iov, ni, WAIT_MS, e, sizeof e) != 0 ||
            recv_msg(t, &m, spin, e, sizeof e) != 1) {
            fprintf(stderr, "flashpool-ringbench: %s: round trip %d: %s\n", ep, it, e);
            rc = -1;
            break;
        }
        frame_view v;
        if (frame_decode(m.data, m.len, &lim, &v, e, sizeof e) != FRAME_OK || v.h.request_id != (uint64_t)it + 1) {
            fprintf(stderr, "flashpool-ringbench: %s: bad COMBINE: %s\n", ep, e);
            rc = -1;
        }
        transport_release(t, &m);
        if (it >= o->warmup) rtt[it - o->warmup] = now_us() - t0;
    }
    struct iovec end = {NULL, 0};
    transport_send(t, NULL, &end, 1, WAIT_MS, e, sizeof e);
    int status = 0;
    waitpid(pid, &status, 0);
    const char *kind = transport_kind(t);   /* a static string */
    transport_close(t);
    if (!rc) {
        qsort(rtt, (size_t)o->iters, sizeof(double), cmp_d);
        double sum = 0;
        for (int i = 0; i < o->iters; i++) sum += rtt[i];
        const int n = o->iters;
        printf("%s,%s,%s,%d,%d,%d,%llu,%llu,%d,%.2f,%.2f,%.2f,%.2f,%.2f\n", kind, bound,
               spin ? "spin" : "sleep", o->n_embd, o->tokens, o->items,
               (unsigned long long)(FRAME_HDR_BYTES + frame_dispatch_bytes((uint32_t)o->tokens, (uint32_t)o->items,
                                                                         (uint32_t)o->n_embd)),
               (unsigned long long)(FRAME_HDR_BYTES + frame_combine_bytes((uint32_t)o->items, (uint32_t)o->n_embd)),
               n, rtt[0], rtt[n / 2], rtt[n * 9 / 10], rtt[n * 99 / 100], sum / n);
        fflush(stdout);
    }
    free(x);
    free(xq);
    free(items);
    free(rtt);
    return rc;
}

int main(int argc, char **argv) {
    bench_opts o = {.n_embd = 4096, .tokens = 1, .items = 6, .iters = 5000, .warmup = 500, .spin = -1};
    static const struct option lo[] = {
        {"endpoint", required_argument, 0, 'e'}, {"n-embd", required_argument, 0, 1},
        {"tokens", required_argument, 0, 2},     {"items", required_argument, 0, 3},
        {"iters", required_argument, 0, 'n'},    {"warmup", required_argument, 0, 4},
        {"wait", required_argument, 0, 5},       {"ring-mb", required_argument, 0, 6},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "e:n:h", lo, NULL)) != -1) {
        switch (c) {
        case 'e':
            if (o.n_ep == MAX_EP) {
                fprintf(stderr, "flashpool-ringbench: at most %d endpoints\n", MAX_EP);
                return 2;
            }
            o.ep[o.n_ep++] = optarg;
            break;
        case 1: o.n_embd = atoi(optarg); break;
        case 2: o.tokens = atoi(optarg); break;
        case 3: o.items = atoi(optarg); break;
        case 'n': o.iters = atoi(optarg); break;
        case 4: o.warmup = atoi(optarg); break;
        case 5:
            o.spin = !strcmp(optarg, "spin") ? 1 : !strcmp(optarg, "sleep") ? 0 : !strcmp(optarg, "both") ? -1 : -2;
            if (o.spin == -2) {
                fprintf(stderr, "flashpool-ringbench: --wait takes sleep, spin or both\n");
                return 2;
            }
            break;
        case 6: o.ring_bytes = (uint64_t)atoll(optarg) << 20; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || o.n_embd <= 0 || o.n_embd % QK_K || o.tokens < 1 || o.items < 1 || o.iters < 1 ||
        o.warmup < 0) {
        fprintf(stderr, "flashpool-ringbench: bad arguments (n_embd a multiple of 256, counts >= 1); see --help\n");
        return 2;
    }
    char shm_ep[64];
    if (!o.n_ep) {
        snprintf(shm_ep, sizeof shm_ep, "shm://fp-ringbench-%d", (int)getpid());
        o.ep[o.n_ep++] = shm_ep;
        o.ep[o.n_ep++] = "tcp://127.0.0.1:0";
    }
    printf("transport,endpoint,wait,n_embd,tokens,items,dispatch_bytes,combine_bytes,iters,min_us,p50_us,p90_us,"
           "p99_us,mean_us\n");
    int bad = 0;
    for (int i = 0; i < o.n_ep; i++)
        for (int s = 0; s < 2; s++)
            if (o.spin < 0 || o.spin == s) bad |= run_one(o.ep[i], &o, s) != 0;
    return bad ? 1 : 0;
}
