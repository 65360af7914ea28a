/* test_node.c — an expert node end to end, as a separate process: the real
 * flashpool-node binary next to this test's build directory when it exists
 * (build/), otherwise a fork()ed child running the same node_server code
 * (build-asan/, where only tests are built). Over tcp://127.0.0.1:<free
 * port> and ipc://: HELLO with the right and a wrong fingerprint, ASSIGN
 * with load progress, DISPATCH with real Q8_K activations of the tiny
 * reference model whose COMBINE must equal (memcmp) experts_compute() run
 * here, not-assigned experts and wrong widths refused with the right error
 * codes, garbage frames answered with errors while the node keeps serving,
 * many requests without RSS growth, stats, drain, SHUTDOWN and SIGTERM
 * ending the process with status 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control_msg.h"
#include "expert_store.h"
#include "experts.h"
#include "frame.h"
#include "gguf.h"
#include "model_fingerprint.h"
#include "node_client.h"
#include "node_server.h"
#include "threadpool.h"

#define OPEN_MS 20000               /* failure guards only, never asserted on */
#define REPLY_WAIT_MS 20000

static const char *vectors_dir(void) {
    const char *v = getenv("FP_VECTORS");
    return v ? v : "../shared/vectors";
}

static uint64_t rs;
static uint64_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}
static float rndf(void) { return (float)((rnd() >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f; }

typedef struct fx {
    char model[PATH_MAX];
    gguf_file *f;
    expert_store *st;
    model_fingerprint fp;
    threadpool *tp;
    const quant_kernels *k;
    char node_bin[PATH_MAX];        /* "" = fork node_server */
} fx;

static fx g;

static int setup(void **state) {
    (void)state;
    char err[512];
    rs = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    if (!rs) rs = 1;
    printf("test_node: seed %llu\n", (unsigned long long)rs);
    snprintf(g.model, sizeof g.model, "%s/tiny-s1.gguf", vectors_dir());
    g.f = gguf_open(g.model, err, sizeof err);
    if (!g.f) {
        fprintf(stderr, "test_node: %s (set FP_VECTORS)\n", err);
        return -1;
    }
    g.st = expert_store_open(g.f, err, sizeof err);
    if (!g.st || model_fingerprint_compute(g.f, &g.fp, err, sizeof err)) {
        fprintf(stderr, "test_node: %s\n", err);
        return -1;
    }
    g.tp = threadpool_open(2);
    g.k = quant_kernels_best();
    /* the real binary: <dir of this test>/../flashpool-node */
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            if (strlen(self) + 20 < sizeof g.node_bin) {
                memcpy(g.node_bin, self, strlen(self));
                strcpy(g.node_bin + strlen(self), "/../flashpool-node");
                if (access(g.node_bin, X_OK) != 0) g.node_bin[0] = 0;
            }
        }
    }
    printf("test_node: node process = %s\n", g.node_bin[0] ? g.node_bin : "fork() + node_server_run");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    threadpool_close(g.tp);
    expert_store_close(g.st);
    gguf_close(g.f);
    return 0;
}

/* ---- node processes ---------------------------------------------------------- */

static int free_tcp_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || getsockname(s, (struct sockaddr *)&a, &l)) return -1;
    int port = ntohs(a.sin_port);
    close(s);
    return port;
}

static volatile sig_atomic_t child_stop;
static void child_on_term(int sig) {
    (void)sig;
    child_stop = 1;
}

static pid_t start_node(const char *endpoint, const char *extra) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0) return pid;
    /* child: dies with the test, so a failed assertion leaves no node behind */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (g.node_bin[0]) {
        const char *argv[12];
        int a = 0;
        argv[a++] = g.node_bin;
        argv[a++] = "-m";
        argv[a++] = g.model;
        argv[a++] = "--listen";
        argv[a++] = endpoint;
        argv[a++] = "--threads";
        argv[a++] = "2";
        argv[a++] = "-q";
        if (extra) argv[a++] = extra;
        argv[a] = NULL;
        execv(g.node_bin, (char *const *)argv);
        _exit(127);
    }
    /* the fork()ed server stops cleanly on SIGTERM, like flashpool-node */
    signal(SIGTERM, child_on_term);
    node_server_opts o;
    node_server_opts_default(&o);
    o.model_path = g.model;
    o.listen[0] = endpoint;
    o.n_listen = 1;
    o.threads = 2;
    o.stop = &child_stop;
    if (extra && !strcmp(extra, "--crc")) o.with_crc = 1;
    char err[512];
    node_server *s = node_server_open(&o, err, sizeof err);
    if (!s) _exit(3);
    int rc = node_server_run(s, err, sizeof err);
    node_server_close(s);
    _exit(rc ? 1 : 0);
}

static int wait_exit(pid_t pid) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- activations and the local reference --------------------------------------- */

typedef struct batch {
    int n_tokens, n_items, n_embd, layer;
    block_q8_K *xq;
    expert_work *items;
} batch;

static void make_batch(batch *b, int layer, int n_tokens, int n_items, const int *experts, int n_experts) {
    const int E = expert_store_n_embd(g.st);
    b->layer = layer;
    b->n_tokens = n_tokens;
    b->n_items = n_items;
    b->n_embd = E;
    b->xq = malloc((size_t)n_tokens * (E / QK_K) * sizeof(block_q8_K));
    b->items = malloc((size_t)(n_items ? n_items : 1) * sizeof(expert_work));
    float *x = malloc((size_t)E * sizeof(float));
    for (int t = 0; t < n_tokens; t++) {
        for (int i = 0; i < E; i++) x[i] = rndf() * 3.0f;
        quantize_row_q8_K(x, b->xq + (size_t)t * (E / QK_K), E);
    }
    for (int i = 0; i < n_items; i++)
        b->items[i] = (expert_work){(int32_t)(rnd() % (uint64_t)n_tokens),
                                    experts[rnd() % (uint64_t)n_experts], 0.25f + (float)(rnd() % 1000) / 1000.0f};
    free(x);
}

static void free_batch(batch *b) {
    free(b->xq);
    free(b->items);
}

static float *local_compute(const batch *b) {
    float *out = malloc((size_t)b->n_items * b->n_embd * sizeof(float));
    expert_slabs *sl = malloc((size_t)b->n_items * sizeof(*sl));
    for (int i = 0; i < b->n_items; i++) sl[i] = expert_store_slabs(g.st, b->layer, b->items[i].expert);
    assert_int_equal(experts_compute(g.tp, g.k, expert_store_shape(g.st, b->layer), b->xq, b->n_items, b->items, sl,
                                     out),
                     0);
    free(sl);
    return out;
}

static void dispatch_and_check(node_client *c, uint64_t id, const batch *b) {
    char err[512];
    assert_int_equal(node_client_dispatch(c, id, b->layer, b->n_tokens, b->n_embd, b->xq, b->n_items, b->items, err,
                                          sizeof err),
                     0);
    node_event ev;
    int r = node_client_wait_result(c, id, &ev, REPLY_WAIT_MS, err, sizeof err);
    if (r != 1) fail_msg("no result for %llu: %s", (unsigned long long)id, r < 0 ? err : "timeout");
    if (ev.kind != NODE_EV_RESULT) fail_msg("request %llu: %s (%s)", (unsigned long long)id, ev.message,
                                            node_error_name(ev.code));
    assert_int_equal(ev.request_id, id);
    assert_int_equal(ev.n_items, b->n_items);
    assert_int_equal(ev.n_embd, b->n_embd);
    float *ref = local_compute(b);
    assert_memory_equal(ev.out, ref, (size_t)b->n_items * b->n_embd * sizeof(float));
    free(ref);
    node_client_release(c, &ev);
}

static int expect_error(node_client *c, uint64_t id) {
    node_event ev;
    char err[512];
    int r = node_client_wait_result(c, id, &ev, REPLY_WAIT_MS, err, sizeof err);
    if (r != 1) fail_msg("no answer for %llu: %s", (unsigned long long)id, r < 0 ? err : "timeout");
    if (ev.kind != NODE_EV_ERROR) {
        node_client_release(c, &ev);
        fail_msg("request %llu: expected an error, got a result", (unsigned long long)id);
    }
    return ev.code;
}

/* The experts this test assigns: layer 3 {0, 2, 5, 7}, layer 4 all. */
static int assign_ids(node_expert_id *ids) {
    int n = 0;
    static const int l3[] = {0, 2, 5, 7};
    for (int i = 0; i < 4; i++) ids[n++] = (node_expert_id){3, l3[i]};
    for (int e = 0; e < expert_store_n_expert(g.st); e++) ids[n++] = (node_expert_id){4, e};
    return n;
}

typedef struct prog { uint64_t calls, last_done, total; } prog;
static void on_progress(void *ud, uint64_t done, uint64_t total, uint64_t bytes) {
    prog *p = ud;
    (void)bytes;
    assert_true(done >= p->last_done);
    p->calls++;
    p->last_done = done;
    p->total = total;
}

static node_client *open_assigned(const char *ep, int *n_assigned) {
    char err[512];
    node_client *c = node_client_open(ep, &g.fp, NULL, OPEN_MS, err, sizeof err);
    /* shm:// connects synchronously (ZeroMQ retries in the background): wait for the node to listen */
    for (int i = 0; !c && !strncmp(ep, "shm://", 6) && i < 1000; i++) {
        usleep(20000);
        c = node_client_open(ep, &g.fp, NULL, OPEN_MS, err, sizeof err);
    }
    if (!c) fail_msg("open %s: %s", ep, err);
    assert_true(node_client_ready(c));
    const node_info *ni = node_client_info(c);
    assert_int_equal(ni->n_layer, (uint32_t)expert_store_n_layer(g.st));
    assert_int_equal(ni->n_expert, (uint32_t)expert_store_n_expert(g.st));
    assert_int_equal(ni->n_embd, (uint32_t)expert_store_n_embd(g.st));
    node_expert_id ids[300];
    int n = assign_ids(ids);
    prog p = {0};
    if (node_client_assign(c, ids, n, on_progress, &p, OPEN_MS, err, sizeof err)) fail_msg("assign: %s", err);
    assert_true(p.calls >= 1);
    assert_int_equal(p.last_done, (uint64_t)n);
    assert_int_equal(p.total, (uint64_t)n);
    *n_assigned = n;
    return c;
}

/* ---- tests ------------------------------------------------------------------------- */

static void serve_and_compare(const char *ep, const char *extra) {
    pid_t pid = start_node(ep, extra);
    assert_true(pid > 0);
    int n_assigned;
    node_client *c = open_assigned(ep, &n_assigned);
    char err[512];

    /* results bit-identical to local compute: decode-sized and prefill-sized */
    const int l3[] = {0, 2, 5, 7};
    int l4[16];
    for (int e = 0; e < 16; e++) l4[e] = e;
    batch b;
    make_batch(&b, 3, 1, 4, l3, 4);
    dispatch_and_check(c, 1, &b);
    free_batch(&b);
    make_batch(&b, 4, 37, 37 * 6, l4, expert_store_n_expert(g.st));
    dispatch_and_check(c, 2, &b);
    free_batch(&b);

    /* several in flight, answered by id */
    batch bs[3];
    for (int i = 0; i < 3; i++) {
        make_batch(&bs[i], 4, 2 + i, 5 + i, l4, 16);
        assert_int_equal(node_client_dispatch(c, 10 + (uint64_t)i, 4, bs[i].n_tokens, bs[i].n_embd, bs[i].xq,
                                              bs[i].n_items, bs[i].items, err, sizeof err),
                         0);
    }
    assert_int_equal(node_client_outstanding(c), 3);
    for (int i = 2; i >= 0; i--) {          /* waited for out of order: the others are kept */
        node_event ev;
        assert_int_equal(node_client_wait_result(c, 10 + (uint64_t)i, &ev, REPLY_WAIT_MS, err, sizeof err), 1);
        assert_int_equal(ev.kind, NODE_EV_RESULT);
        float *ref = local_compute(&bs[i]);
        assert_memory_equal(ev.out, ref, (size_t)bs[i].n_items * bs[i].n_embd * sizeof(float));
        free(ref);
        node_client_release(c, &ev);
        free_batch(&bs[i]);
    }
    assert_int_equal(node_client_outstanding(c), 0);

    /* an expert not assigned (layer 3 expert 1) -> NOT_ASSIGNED, node keeps serving */
    const int one[] = {1};
    make_batch(&b, 3, 1, 2, one, 1);
    assert_int_equal(node_client_dispatch(c, 20, 3, 1, b.n_embd, b.xq, 2, b.items, err, sizeof err), 0);
    assert_int_equal(expect_error(c, 20), NODE_ERR_NOT_ASSIGNED);
    free_batch(&b);
    /* a layer with nothing assigned */
    make_batch(&b, 0, 1, 1, one, 1);
    assert_int_equal(node_client_dispatch(c, 21, 0, 1, b.n_embd, b.xq, 1, b.items, err, sizeof err), 0);
    assert_int_equal(expect_error(c, 21), NODE_ERR_NOT_ASSIGNED);
    free_batch(&b);
    /* wrong width: 512-wide activations for a 256-wide model -> SHAPE */
    {
        const int E2 = 512;
        block_q8_K *xq = calloc(E2 / QK_K, sizeof(block_q8_K));
        expert_work w = {0, 0, 1.0f};
        assert_int_equal(node_client_dispatch(c, 22, 4, 1, E2, xq, 1, &w, err, sizeof err), 0);
        assert_int_equal(expect_error(c, 22), NODE_ERR_SHAPE);
        free(xq);
    }
    /* a layer past the model -> SHAPE */
    make_batch(&b, 4, 1, 1, l4, 16);
    assert_int_equal(node_client_dispatch(c, 23, 9, 1, b.n_embd, b.xq, 1, b.items, err, sizeof err), 0);
    assert_int_equal(expect_error(c, 23), NODE_ERR_SHAPE);
    dispatch_and_check(c, 24, &b);          /* still serving */
    free_batch(&b);

    /* heartbeat + stats */
    double rtt = -1;
    assert_int_equal(node_client_heartbeat(c, &rtt, REPLY_WAIT_MS, err, sizeof err), 0);
    assert_true(rtt >= 0);
    node_stats st;
    assert_int_equal(node_client_stats(c, &st, REPLY_WAIT_MS, err, sizeof err), 0);
    assert_int_equal(st.requests, 6);       /* ids 1, 2, 10, 11, 12, 24 */
    assert_int_equal(st.errors, 4);
    assert_int_equal(st.assigned_experts, (uint64_t)n_assigned);
    uint64_t want_bytes = 4 * expert_store_expert_bytes(g.st, 3) +
                          (uint64_t)expert_store_n_expert(g.st) * expert_store_expert_bytes(g.st, 4);
    assert_int_equal(st.assigned_bytes, want_bytes);

    /* reassign to a smaller set: the dropped layer is refused afterwards */
    node_expert_id small[2] = {{4, 0}, {4, 1}};
    assert_int_equal(node_client_assign(c, small, 2, NULL, NULL, OPEN_MS, err, sizeof err), 0);
    make_batch(&b, 3, 1, 1, l3, 1);
    assert_int_equal(node_client_dispatch(c, 30, 3, 1, b.n_embd, b.xq, 1, b.items, err, sizeof err), 0);
    assert_int_equal(expect_error(c, 30), NODE_ERR_NOT_ASSIGNED);
    free_batch(&b);
    const int e01[] = {0, 1};
    make_batch(&b, 4, 3, 6, e01, 2);
    dispatch_and_check(c, 31, &b);
    free_batch(&b);
    assert_int_equal(node_client_stats(c, &st, REPLY_WAIT_MS, err, sizeof err), 0);
    assert_int_equal(st.assigned_experts, 2);
    assert_int_equal(st.assigned_bytes, 2 * expert_store_expert_bytes(g.st, 4));

    /* drain: new dispatches refused until the next ASSIGN */
    assert_int_equal(node_client_drain(c, REPLY_WAIT_MS, err, sizeof err), 0);
    make_batch(&b, 4, 1, 1, e01, 2);
    assert_int_equal(node_client_dispatch(c, 40, 4, 1, b.n_embd, b.xq, 1, b.items, err, sizeof err), 0);
    assert_int_equal(expect_error(c, 40), NODE_ERR_DRAINING);
    assert_int_equal(node_client_assign(c, small, 2, NULL, NULL, OPEN_MS, err, sizeof err), 0);
    dispatch_and_check(c, 41, &b);
    free_batch(&b);

    /* SHUTDOWN ends the process with status 0 */
    assert_int_equal(node_client_shutdown(c, REPLY_WAIT_MS, err, sizeof err), 0);
    node_client_close(c);
    assert_int_equal(wait_exit(pid), 0);
}

static void test_tcp(void **state) {
    (void)state;
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_tcp_port());
    serve_and_compare(ep, NULL);
}

static void test_ipc_crc(void **state) {
    (void)state;
    char ep[128];
    snprintf(ep, sizeof ep, "ipc:///tmp/fp-test-node-%d.sock", (int)getpid());
    serve_and_compare(ep, "--crc");
    unlink(ep + 6);
}

static void test_shm(void **state) {
    (void)state;
    char ep[128];
    snprintf(ep, sizeof ep, "shm://fp-test-node-%d", (int)getpid());
    serve_and_compare(ep, NULL);
}

static void test_fingerprint_refused(void **state) {
    (void)state;
    char ep[64], err[512];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_tcp_port());
    pid_t pid = start_node(ep, NULL);
    model_fingerprint bad = g.fp;
    bad.sha256[rnd() % 32] ^= (uint8_t)(1u << (rnd() % 8));
    node_client *c = node_client_open(ep, &bad, NULL, OPEN_MS, err, sizeof err);
    assert_null(c);
    assert_non_null(strstr(err, "fingerprint"));
    /* a wrong size is named too */
    bad = g.fp;
    bad.file_size++;
    c = node_client_open(ep, &bad, NULL, OPEN_MS, err, sizeof err);
    assert_null(c);
    assert_non_null(strstr(err, "file size"));
    /* the right one still works, and SIGTERM then ends the node with 0 */
    c = node_client_open(ep, &g.fp, NULL, OPEN_MS, err, sizeof err);
    if (!c) fail_msg("%s", err);
    node_client_close(c);
    kill(pid, SIGTERM);
    assert_int_equal(wait_exit(pid), 0);
}

/* Garbage at the node: random bytes, truncated and oversized-count frames,
 * unknown versions/kinds, dispatches before HELLO; every one answered with
 * an ERROR frame (or dropped below the frame level), and the node serves a
 * real client afterwards. */
static void test_garbage(void **state) {
    (void)state;
    char ep[64], err[512];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_tcp_port());
    pid_t pid = start_node(ep, NULL);
    int n_assigned;
    node_client *c = open_assigned(ep, &n_assigned);

    transport *raw = transport_connect(ep, NULL, err, sizeof err);
    assert_non_null(raw);
    const int E = expert_store_n_embd(g.st);
    const int l4[] = {0, 1, 2, 3};
    batch b;
    make_batch(&b, 4, 2, 3, l4, 4);
    uint8_t hdr[FRAME_HDR_BYTES];
    struct iovec iov[3];
    frame_build_dispatch(hdr, iov, 77, 4, 2, E, b.xq, 3, b.items, 0);
    size_t good_len = iov[0].iov_len + iov[1].iov_len + iov[2].iov_len;
    uint8_t *good = malloc(good_len);
    memcpy(good, iov[0].iov_base, iov[0].iov_len);
    memcpy(good + iov[0].iov_len, iov[1].iov_base, iov[1].iov_len);
    memcpy(good + iov[0].iov_len + iov[1].iov_len, iov[2].iov_base, iov[2].iov_len);
    uint8_t *buf = malloc(good_len + 64);
    int sent = 0;
    for (int i = 0; i < 300; i++) {
        size_t len;
        const int kind = (int)(rnd() % 5);
        if (kind == 0) {                    /* random bytes */
            len = rnd() % 200;
            for (size_t j = 0; j < len; j++) buf[j] = (uint8_t)rnd();
        } else if (kind == 1) {             /* truncated */
            len = rnd() % good_len;
            memcpy(buf, good, len);
        } else if (kind == 2) {             /* a corrupted header field */
            len = good_len;
            memcpy(buf, good, len);
            buf[rnd() % FRAME_HDR_BYTES] ^= (uint8_t)(1u << (rnd() % 8));
        } else if (kind == 3) {             /* a corrupted payload byte */
            len = good_len;
            memcpy(buf, good, len);
            buf[FRAME_HDR_BYTES + rnd() % (good_len - FRAME_HDR_BYTES)] ^= (uint8_t)(1u << (rnd() % 8));
        } else {                            /* valid frame, but this link never said HELLO */
            len = good_len;
            memcpy(buf, good, len);
        }
        struct iovec one = {buf, len};
        assert_int_equal(transport_send(raw, NULL, &one, 1, 5000, err, sizeof err), 0);
        sent++;
    }
    /* the raw link gets answers (errors), never a COMBINE: it has no HELLO */
    int answers = 0;
    tp_msg m;
    while (answers < sent && transport_recv(raw, &m, answers ? 2000 : REPLY_WAIT_MS, err, sizeof err) == 1) {
        frame_view v;
        int fe = frame_decode(m.data, m.len, NULL, &v, err, sizeof err);
        assert_int_equal(fe, FRAME_OK);
        /* payload corruption inside activations can still be a valid
         * frame; the node then refuses it for lack of HELLO */
        assert_int_equal(v.h.kind, FRAME_ERROR);
        Fp__Error *pe = control_unpack_error(&v);
        assert_non_null(pe);
        assert_true(pe->code != FP__ERROR__CODE__ERROR_NONE);
        fp__error__free_unpacked(pe, NULL);
        transport_release(raw, &m);
        answers++;
    }
    assert_true(answers > 0);
    transport_close(raw);
    free(buf);
    free(good);

    /* the real client is unaffected */
    dispatch_and_check(c, 5, &b);
    free_batch(&b);
    node_stats st;
    assert_int_equal(node_client_stats(c, &st, REPLY_WAIT_MS, err, sizeof err), 0);
    assert_int_equal(st.errors, (uint64_t)answers);

    /* many requests: RSS does not keep growing */
    const int l4all[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    make_batch(&b, 4, 4, 24, l4all, 16);
    for (int i = 0; i < 50; i++) dispatch_and_check(c, 100 + (uint64_t)i, &b);
    assert_int_equal(node_client_stats(c, &st, REPLY_WAIT_MS, err, sizeof err), 0);
    const uint64_t rss0 = st.rss_bytes;
    for (int i = 0; i < 400; i++) {
        assert_int_equal(node_client_dispatch(c, 1000 + (uint64_t)i, 4, b.n_tokens, b.n_embd, b.xq, b.n_items,
                                              b.items, err, sizeof err),
                         0);
        node_event ev;
        assert_int_equal(node_client_wait_result(c, 1000 + (uint64_t)i, &ev, REPLY_WAIT_MS, err, sizeof err), 1);
        assert_int_equal(ev.kind, NODE_EV_RESULT);
        node_client_release(c, &ev);
    }
    assert_int_equal(node_client_stats(c, &st, REPLY_WAIT_MS, err, sizeof err), 0);
    printf("test_node: RSS %.1f MiB after 50 requests, %.1f MiB after 450\n", rss0 / 1048576.0,
           st.rss_bytes / 1048576.0);
#if !defined(__SANITIZE_ADDRESS__)
    /* ASan's quarantine holds freed memory on purpose, so RSS says nothing
     * there; LeakSanitizer checks the same property in that build. */
    assert_true(st.rss_bytes < rss0 + (4u << 20));
#endif
    free_batch(&b);

    node_client_close(c);
    kill(pid, SIGTERM);
    assert_int_equal(wait_exit(pid), 0);
}

/* Late answers: a forgotten request's COMBINE is dropped and counted. */
static void test_late_dropped(void **state) {
    (void)state;
    char ep[64], err[512];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_tcp_port());
    pid_t pid = start_node(ep, NULL);
    int n_assigned;
    node_client *c = open_assigned(ep, &n_assigned);
    const int l4[] = {3, 4};
    batch b;
    make_batch(&b, 4, 1, 2, l4, 2);
    assert_int_equal(node_client_dispatch(c, 7, 4, 1, b.n_embd, b.xq, 2, b.items, err, sizeof err), 0);
    node_client_forget(c, 7);
    assert_int_equal(node_client_outstanding(c), 0);
    dispatch_and_check(c, 8, &b);           /* 7's answer arrives first and is dropped */
    node_client_counters ctr;
    node_client_get_counters(c, &ctr);
    assert_int_equal(ctr.late_dropped, 1);
    assert_int_equal(ctr.results, 1);
    /* duplicate / invalid ids are refused locally */
    assert_int_equal(node_client_dispatch(c, 9, 4, 1, b.n_embd, b.xq, 2, b.items, err, sizeof err), 0);
    assert_int_equal(node_client_dispatch(c, 9, 4, 1, b.n_embd, b.xq, 2, b.items, err, sizeof err), -1);
    assert_int_equal(node_client_dispatch(c, 0, 4, 1, b.n_embd, b.xq, 2, b.items, err, sizeof err), -1);
    assert_int_equal(node_client_dispatch(c, 1ull << 63, 4, 1, b.n_embd, b.xq, 2, b.items, err, sizeof err), -1);
    free_batch(&b);
    node_client_close(c);
    kill(pid, SIGTERM);
    assert_int_equal(wait_exit(pid), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp),
        cmocka_unit_test(test_ipc_crc),
        cmocka_unit_test(test_shm),
        cmocka_unit_test(test_fingerprint_refused),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_late_dropped),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
