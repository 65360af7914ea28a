/* transport.c — scheme dispatch and the parts of the transport interface
 * every implementation shares: blocking receive with a timeout on top of a
 * non-blocking try_recv, waiting on several transports at once (zmq_poll
 * over ZeroMQ sockets and plain fds alike), peer ids, CurveZMQ key pairs. */
#include "clock.h"
#include "transport_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void transport_opts_default(transport_opts *o) {
    memset(o, 0, sizeof(*o));
}

int64_t transport_now_ms(void) {
    return fp_now_ms();
}

static transport *open_any(const char *endpoint, int listen, const transport_opts *o, char *err, size_t errlen) {
    transport_opts d;
    if (!o) {
        transport_opts_default(&d);
        o = &d;
    }
    if (!endpoint || strlen(endpoint) >= sizeof(((transport *)0)->endpoint)) {
        snprintf(err, errlen, "endpoint missing or longer than 255 bytes");
        return NULL;
    }
    if (!strncmp(endpoint, "tcp://", 6) || !strncmp(endpoint, "ipc://", 6) || !strncmp(endpoint, "inproc://", 9))
        return transport_zmq_open(endpoint, listen, o, err, errlen);
    if (!strncmp(endpoint, "shm://", 6)) return transport_shm_open(endpoint, listen, o, err, errlen);
    if (!strncmp(endpoint, "rdma://", 7)) return transport_rdma_open(endpoint, listen, o, err, errlen);
    snprintf(err, errlen, "endpoint '%s': unknown scheme (use tcp://HOST:PORT, ipc:///PATH, inproc://NAME, "
             "shm://NAME or rdma://HOST:PORT)", endpoint);
    return NULL;
}

transport *transport_listen(const char *endpoint, const transport_opts *o, char *err, size_t errlen) {
    return open_any(endpoint, 1, o, err, errlen);
}

transport *transport_connect(const char *endpoint, const transport_opts *o, char *err, size_t errlen) {
    return open_any(endpoint, 0, o, err, errlen);
}

void transport_close(transport *t) {
    if (t) t->vt->close(t);
}

const char *transport_kind(const transport *t) { return t->vt->kind; }
const char *transport_endpoint(const transport *t) { return t->endpoint; }

int transport_send(transport *t, const tp_peer *to, const struct iovec *iov, int n, int timeout_ms,
                   char *err, size_t errlen) {
    return t->vt->send(t, to, iov, n, timeout_ms, err, errlen);
}

void transport_release(transport *t, tp_msg *m) {
    if (m->priv || m->data) t->vt->release(t, m);
    memset(m, 0, sizeof(*m));
}

/* zmq_poll with a timeout in ms (< 0 forever), retried on EINTR with the
 * remaining time. */
static int poll_items(zmq_pollitem_t *it, int n, int timeout_ms, char *err, size_t errlen) {
    const int64_t end = timeout_ms < 0 ? 0 : transport_now_ms() + timeout_ms;
    for (;;) {
        long left = -1;
        if (timeout_ms >= 0) {
            int64_t l = end - transport_now_ms();
            left = l < 0 ? 0 : (long)l;
        }
        int r = zmq_poll(it, n, left);
        if (r >= 0) return r;
        if (errno != EINTR) {
            snprintf(err, errlen, "zmq_poll: %s", zmq_strerror(errno));
            return -1;
        }
        if (timeout_ms >= 0 && transport_now_ms() >= end) return 0;
    }
}

int transport_recv(transport *t, tp_msg *m, int timeout_ms, char *err, size_t errlen) {
    const int64_t end = timeout_ms < 0 ? 0 : transport_now_ms() + timeout_ms;
    memset(m, 0, sizeof(*m));
    for (;;) {
        int r = t->vt->try_recv(t, m, err, errlen);
        if (r != 0) return r;
        long left = -1;
        if (timeout_ms >= 0) {
            int64_t l = end - transport_now_ms();
            if (l <= 0) return 0;
            left = (long)l;
        }
        zmq_pollitem_t it[TRANSPORT_POLL_MAX];
        int n = t->vt->poll_items(t, it, TRANSPORT_POLL_MAX);
        int p = poll_items(it, n, (int)left, err, errlen);
        if (p < 0) return -1;
        if (p == 0) {
            /* timed out: one last look (a ring may complete without an fd event) */
            return t->vt->try_recv(t, m, err, errlen);
        }
    }
}

int transport_wait_any(transport *const *ts, int n, int timeout_ms, uint8_t *ready, char *err, size_t errlen) {
    if (n <= 0) {
        snprintf(err, errlen, "transport_wait_any: no transports");
        return -1;
    }
    zmq_pollitem_t *it = malloc((size_t)n * TRANSPORT_POLL_MAX * sizeof(*it));
    int *owner = malloc((size_t)n * TRANSPORT_POLL_MAX * sizeof(*owner));
    if (!it || !owner) {
        free(it);
        free(owner);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int k = 0;
    for (int i = 0; i < n; i++) {
        int c = ts[i]->vt->poll_items(ts[i], it + k, TRANSPORT_POLL_MAX);
        for (int j = 0; j < c; j++) owner[k + j] = i;
        k += c;
    }
    int p = poll_items(it, k, timeout_ms, err, errlen);
    int count = 0;
    if (p >= 0) {
        if (ready) memset(ready, 0, (size_t)n);
        int last = -1;
        for (int j = 0; j < k; j++)
            if ((it[j].revents & ZMQ_POLLIN) && owner[j] != last) {
                if (ready) ready[owner[j]] = 1;
                count++;
                last = owner[j];    /* items of one transport are contiguous */
            }
    }
    free(it);
    free(owner);
    return p < 0 ? -1 : count;
}

int transport_peer_eq(const tp_peer *a, const tp_peer *b) {
    return a->len == b->len && !memcmp(a->id, b->id, a->len);
}

void transport_peer_str(const tp_peer *p, char *out, size_t outlen) {
    size_t o = 0;
    if (outlen) out[0] = 0;
    for (int i = 0; i < p->len && o + 3 <= outlen; i++) o += (size_t)snprintf(out + o, outlen - o, "%02x", p->id[i]);
}

int transport_curve_keypair(char public_z85[41], char secret_z85[41], char *err, size_t errlen) {
    if (zmq_curve_keypair(public_z85, secret_z85) != 0) {
        snprintf(err, errlen, "zmq_curve_keypair: %s (libzmq built without CURVE?)", zmq_strerror(errno));
        return -1;
    }
    return 0;
}
