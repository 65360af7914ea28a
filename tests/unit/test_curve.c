/* test_curve.c — CurveZMQ node links (proto/transport_zmq.c ZAP allow-list,
 * expert-node/node_server.c): a client that completed the CURVE handshake
 * with an allowed key and then sends garbage frames gets an ERROR per frame
 * and is never served, and the node neither crashes nor stops serving: an
 * allowed coordinator still passes HELLO afterwards. (Refusal of wrong keys,
 * with the node's counters at zero, is in tests/pool/faults.sh.) */
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "control_msg.h"
#include "frame.h"
#include "gguf.h"
#include "model_fingerprint.h"
#include "node_client.h"
#include "node_server.h"
#include "transport.h"

#define WAIT_MS 20000               /* failure guard only, never asserted on */

static int free_tcp_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || getsockname(s, (struct sockaddr *)&a, &l)) return -1;
    int port = ntohs(a.sin_port);
    close(s);
    return port;
}

static void test_garbage_after_auth(void **state) {
    (void)state;
    char err[512], model[PATH_MAX];
    const char *vec = getenv("FP_VECTORS") ? getenv("FP_VECTORS") : "../shared/vectors";
    snprintf(model, sizeof model, "%s/tiny-s1.gguf", vec);
    gguf_file *f = gguf_open(model, err, sizeof err);
    if (!f) fail_msg("%s (set FP_VECTORS)", err);
    model_fingerprint fp;
    assert_int_equal(model_fingerprint_compute(f, &fp, err, sizeof err), 0);

    char npub[41], nsec[41], cpub[41], csec[41];
    assert_int_equal(transport_curve_keypair(npub, nsec, err, sizeof err), 0);
    assert_int_equal(transport_curve_keypair(cpub, csec, err, sizeof err), 0);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_tcp_port());

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        static volatile sig_atomic_t stop;
        const char *allowed[1] = {cpub};
        node_server_opts o;
        node_server_opts_default(&o);
        o.model_path = model;
        o.listen[0] = ep;
        o.n_listen = 1;
        o.threads = 1;
        o.stop = &stop;
        o.tp.curve_secret = nsec;
        o.tp.allowed_clients = allowed;
        o.tp.n_allowed_clients = 1;
        node_server *s = node_server_open(&o, err, sizeof err);
        if (!s) _exit(3);
        int rc = node_server_run(s, err, sizeof err);
        node_server_close(s);
        _exit(rc ? 1 : 0);
    }

    /* authenticated raw link: garbage of every kind */
    transport_opts to;
    transport_opts_default(&to);
    to.curve_public = cpub;
    to.curve_secret = csec;
    to.curve_server_key = npub;
    transport *raw = transport_connect(ep, &to, err, sizeof err);
    assert_non_null(raw);
    uint8_t buf[256];
    uint64_t r = 0x243F6A8885A308D3ull;
    const int N = 100;
    for (int i = 0; i < N; i++) {
        size_t len = 1 + i % 200;
        for (size_t j = 0; j < len; j++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            buf[j] = (uint8_t)r;
        }
        if (i % 3 == 0 && len >= 8) memcpy(buf, "FPF", 3);     /* plausible-looking magic, bad rest */
        struct iovec one = {buf, len};
        assert_int_equal(transport_send(raw, NULL, &one, 1, WAIT_MS, err, sizeof err), 0);
    }
    int answers = 0;
    tp_msg m;
    while (answers < N && transport_recv(raw, &m, answers ? 2000 : WAIT_MS, err, sizeof err) == 1) {
        frame_view v;
        assert_int_equal(frame_decode(m.data, m.len, NULL, &v, err, sizeof err), FRAME_OK);
        assert_int_equal(v.h.kind, FRAME_ERROR);     /* never a COMBINE or an ACK */
        transport_release(raw, &m);
        answers++;
    }
    assert_true(answers > 0);
    transport_close(raw);

    /* the node is alive and still serves an allowed coordinator */
    int status;
    assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
    node_client_opts co;
    node_client_opts_default(&co);
    co.name = "test";
    co.tp.curve_public = cpub;
    co.tp.curve_secret = csec;
    co.tp.curve_server_key = npub;
    node_client *c = node_client_connect(ep, &fp, &co, err, sizeof err);
    assert_non_null(c);
    node_event ev;
    int got = 0;
    for (int i = 0; i < 100 && !got; i++) {
        int rc = node_client_poll(c, &ev, WAIT_MS / 100, err, sizeof err);
        assert_true(rc >= 0);
        if (rc == 1) {
            assert_int_equal(ev.kind, NODE_EV_HELLO);
            got = 1;
        }
    }
    assert_true(got);
    node_client_close(c);
    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    /* it died of our SIGTERM (no handler in this child), not of a crash */
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    gguf_close(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_garbage_after_auth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
