/* transport_zmq.c — the ZeroMQ transport: ROUTER when listening (many
 * coordinators, replies routed by peer id), DEALER when connecting; tcp://,
 * ipc:// and inproc://.
 *
 * Sending: by default the iovecs are gathered into ONE message part, which
 * costs the same single copy ZeroMQ would make of each part anyway and lets
 * the receiver read the frame in place (zero-copy receive). With
 * opts.zmq_multipart each iovec goes as its own part (ZMQ_SNDMORE) and the
 * receiver joins them; flashpool-zmqrtt measures both.
 *
 * Untrusted peers: ZMQ_MAXMSGSIZE caps every inbound part before ZeroMQ
 * allocates it (a peer over the cap is disconnected), joined multipart
 * messages are capped in parts and total bytes, and empty or oversized
 * routing ids are dropped.
 *
 * CurveZMQ (design.md §7): with curve keys the link is authenticated and
 * encrypted; a listener given allowed_clients runs a ZAP handler thread
 * (RFC 27) that accepts only those client keys. */
#include "transport_impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZMQ_MAX_PARTS 16

typedef struct zt {
    transport base;
    void *ctx;
    int own_ctx;
    void *sock;
    int listen;
    int multipart;
    uint64_t max_msg;
    /* ZAP handler (listener with allowed_clients) */
    void *zap;
    pthread_t zap_thread;
    int zap_running;
    void *zap_stop_rx, *zap_stop_tx; /* PAIR pipe that stops the thread */
    int n_allowed;
    uint8_t (*allowed)[32];
} zt;

/* A received message: one zmq_msg_t read in place, or a joined buffer. */
typedef struct zrx {
    zmq_msg_t msg;
    int has_msg;
    uint8_t *joined;
} zrx;

static int zfail(char *err, size_t errlen, const char *what) {
    snprintf(err, errlen, "%s: %s", what, zmq_strerror(errno));
    return -1;
}

static int setopt_int(void *s, int opt, int v) { return zmq_setsockopt(s, opt, &v, sizeof v); }

/* ---- ZAP handler ----------------------------------------------------------
 * ZeroMQ asks inproc://zeromq.zap.01 (in the socket's context) whether a
 * CURVE client may connect; we answer 200 for an allowed key, 400 otherwise. */

static int zap_allowed(const zt *t, const uint8_t *key, size_t len) {
    if (len != 32) return 0;
    for (int i = 0; i < t->n_allowed; i++)
        if (!memcmp(t->allowed[i], key, 32)) return 1;
    return 0;
}

static void *zap_main(void *arg) {
    zt *t = arg;
    for (;;) {
        zmq_pollitem_t it[2] = {{t->zap, 0, ZMQ_POLLIN, 0}, {t->zap_stop_rx, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(it, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (it[1].revents & ZMQ_POLLIN) break;
        if (!(it[0].revents & ZMQ_POLLIN)) continue;
        /* request: version, request id, domain, address, identity, mechanism, credentials... */
        zmq_msg_t part[8];
        int n = 0, more = 1;
        while (more && n < 8) {
            zmq_msg_init(&part[n]);
            if (zmq_msg_recv(&part[n], t->zap, 0) < 0) {
                zmq_msg_close(&part[n]);
                break;
            }
            more = zmq_msg_more(&part[n]);
            n++;
        }
        while (more) {              /* drain anything beyond 8 parts */
            zmq_msg_t x;
            zmq_msg_init(&x);
            if (zmq_msg_recv(&x, t->zap, 0) < 0) more = 0;
            else more = zmq_msg_more(&x);
            zmq_msg_close(&x);
        }
        if (n >= 6) {
            const char *mech = zmq_msg_data(&part[5]);
            int ok = zmq_msg_size(&part[5]) == 5 && !memcmp(mech, "CURVE", 5) && n >= 7 &&
                     zap_allowed(t, zmq_msg_data(&part[6]), zmq_msg_size(&part[6]));
            const char *code = ok ? "200" : "400";
            const char *text = ok ? "OK" : "client key not allowed";
            zmq_send(t->zap, "1.0", 3, ZMQ_SNDMORE);
            zmq_send(t->zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE);
            zmq_send(t->zap, code, 3, ZMQ_SNDMORE);
            zmq_send(t->zap, text, strlen(text), ZMQ_SNDMORE);
            zmq_send(t->zap, "", 0, ZMQ_SNDMORE);     /* user id */
            zmq_send(t->zap, "", 0, 0);               /* metadata */
        }
        for (int i = 0; i < n; i++) zmq_msg_close(&part[i]);
    }
    return NULL;
}

static int zap_start(zt *t, const transport_opts *o, char *err, size_t errlen) {
    t->allowed = calloc((size_t)o->n_allowed_clients, 32);
    if (!t->allowed) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < o->n_allowed_clients; i++) {
        const char *k = o->allowed_clients[i];
        if (!k || strlen(k) != 40 || !zmq_z85_decode(t->allowed[i], k)) {
            snprintf(err, errlen, "allowed client key %d is not a 40-character Z85 key", i);
            return -1;
        }
    }
    t->n_allowed = o->n_allowed_clients;
    char stop_ep[64];
    snprintf(stop_ep, sizeof stop_ep, "inproc://fp-zap-stop-%p", (void *)t);
    t->zap = zmq_socket(t->ctx, ZMQ_REP);
    t->zap_stop_rx = zmq_socket(t->ctx, ZMQ_PAIR);
    t->zap_stop_tx = zmq_socket(t->ctx, ZMQ_PAIR);
    if (!t->zap || !t->zap_stop_rx || !t->zap_stop_tx) return zfail(err, errlen, "zmq_socket (ZAP)");
    setopt_int(t->zap, ZMQ_LINGER, 0);
    setopt_int(t->zap_stop_rx, ZMQ_LINGER, 0);
    setopt_int(t->zap_stop_tx, ZMQ_LINGER, 0);
    if (zmq_bind(t->zap, "inproc://zeromq.zap.01") != 0) {
        snprintf(err, errlen, "a ZAP handler already runs in this ZeroMQ context (one allow-list per context): %s",
                 zmq_strerror(errno));
        return -1;
    }
    if (zmq_bind(t->zap_stop_rx, stop_ep) != 0 || zmq_connect(t->zap_stop_tx, stop_ep) != 0)
        return zfail(err, errlen, "ZAP stop pipe");
    if (pthread_create(&t->zap_thread, NULL, zap_main, t) != 0) {
        snprintf(err, errlen, "pthread_create (ZAP handler) failed");
        return -1;
    }
    t->zap_running = 1;
    return 0;
}

static void zap_stop(zt *t) {
    if (t->zap_running) {
        zmq_send(t->zap_stop_tx, "", 0, 0);
        pthread_join(t->zap_thread, NULL);
        t->zap_running = 0;
    }
    if (t->zap) zmq_close(t->zap);
    if (t->zap_stop_rx) zmq_close(t->zap_stop_rx);
    if (t->zap_stop_tx) zmq_close(t->zap_stop_tx);
    t->zap = t->zap_stop_rx = t->zap_stop_tx = NULL;
    free(t->allowed);
    t->allowed = NULL;
}

/* ---- the transport --------------------------------------------------------- */

static void zt_close(transport *tb) {
    zt *t = (zt *)tb;
    if (t->sock) zmq_close(t->sock);
    zap_stop(t);
    if (t->own_ctx && t->ctx) zmq_ctx_term(t->ctx);
    free(t);
}

static int zt_send(transport *tb, const tp_peer *to, const struct iovec *iov, int n, int timeout_ms,
                   char *err, size_t errlen) {
    zt *t = (zt *)tb;
    if (t->listen && (!to || to->len == 0)) {
        snprintf(err, errlen, "send on a listening transport needs a peer");
        return -1;
    }
    if (n <= 0 || n > ZMQ_MAX_PARTS) {
        snprintf(err, errlen, "send: %d iovecs (1..%d)", n, ZMQ_MAX_PARTS);
        return -1;
    }
    size_t total = 0;
    for (int i = 0; i < n; i++) total += iov[i].iov_len;
    /* wait for room: the first part decides (ZeroMQ queues multipart atomically) */
    if (timeout_ms != 0) {
        zmq_pollitem_t it = {t->sock, 0, ZMQ_POLLOUT, 0};
        const int64_t end = timeout_ms < 0 ? 0 : transport_now_ms() + timeout_ms;
        for (;;) {
            long left = -1;
            if (timeout_ms > 0) {
                int64_t l = end - transport_now_ms();
                left = l < 0 ? 0 : (long)l;
            }
            int r = zmq_poll(&it, 1, left);
            if (r > 0 || (r == 0)) break;
            if (errno != EINTR) return zfail(err, errlen, "zmq_poll (send)");
        }
    }
    int more_flag = 0;
    if (t->listen) {
        if (zmq_send(t->sock, to->id, to->len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            if (errno == EAGAIN) return 1;
            if (errno == EHOSTUNREACH) {
                snprintf(err, errlen, "peer is gone (disconnected)");
                return -1;
            }
            return zfail(err, errlen, "zmq_send (routing id)");
        }
        more_flag = 1;
    }
    if (t->multipart && n > 1) {
        for (int i = 0; i < n; i++) {
            const int last = i == n - 1;
            int fl = (last ? 0 : ZMQ_SNDMORE) | ZMQ_DONTWAIT;
            if (zmq_send(t->sock, iov[i].iov_base, iov[i].iov_len, fl) < 0) {
                if (errno == EAGAIN && i == 0 && !more_flag) return 1;
                return zfail(err, errlen, "zmq_send");
            }
        }
        return 0;
    }
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, total) != 0) return zfail(err, errlen, "zmq_msg_init_size");
    uint8_t *d = zmq_msg_data(&m);
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len) memcpy(d, iov[i].iov_base, iov[i].iov_len);
        d += iov[i].iov_len;
    }
    if (zmq_msg_send(&m, t->sock, ZMQ_DONTWAIT) < 0) {
        int e = errno;
        zmq_msg_close(&m);
        errno = e;
        if (e == EAGAIN && !more_flag) return 1;
        return zfail(err, errlen, "zmq_msg_send");
    }
    return 0;
}

/* Drop the rest of a multipart message. */
static void drain_parts(void *sock) {
    int more = 1;
    while (more) {
        zmq_msg_t x;
        zmq_msg_init(&x);
        if (zmq_msg_recv(&x, sock, ZMQ_DONTWAIT) < 0) more = 0;
        else more = zmq_msg_more(&x);
        zmq_msg_close(&x);
    }
}

static void zt_release(transport *tb, tp_msg *m);

static int zt_try_recv(transport *tb, tp_msg *m, char *err, size_t errlen) {
    zt *t = (zt *)tb;
    for (;;) {
        memset(m, 0, sizeof(*m));
        if (t->listen) {
            zmq_msg_t id;
            zmq_msg_init(&id);
            if (zmq_msg_recv(&id, t->sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&id);
                if (errno == EAGAIN || errno == EINTR) return 0;
                return zfail(err, errlen, "zmq_msg_recv");
            }
            const size_t il = zmq_msg_size(&id);
            const int more = zmq_msg_more(&id);
            if (il == 0 || il > sizeof m->peer.id || !more) {
                zmq_msg_close(&id);
                if (more) drain_parts(t->sock);
                continue;
            }
            m->peer.len = (uint8_t)il;
            memcpy(m->peer.id, zmq_msg_data(&id), il);
            zmq_msg_close(&id);
        }
        zrx *rx = calloc(1, sizeof(*rx));
        if (!rx) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        zmq_msg_init(&rx->msg);
        if (zmq_msg_recv(&rx->msg, t->sock, ZMQ_DONTWAIT) < 0) {
            const int e = errno;
            zmq_msg_close(&rx->msg);
            free(rx);
            /* a ROUTER delivers the whole message at once: EAGAIN only without an id */
            if (e == EAGAIN || e == EINTR) return 0;
            errno = e;
            return zfail(err, errlen, "zmq_msg_recv");
        }
        rx->has_msg = 1;
        if (!zmq_msg_more(&rx->msg)) {
            m->data = zmq_msg_data(&rx->msg);
            m->len = zmq_msg_size(&rx->msg);
            m->priv = rx;
            /* libzmq hands out large messages in place inside its receive
             * buffer, at whatever offset the stream put them; the frame
             * decoder reads payloads as floats and blocks, so a misaligned
             * message is copied once into malloc's (16-byte) alignment. */
            if ((uintptr_t)m->data & 15) {
                rx->joined = malloc(m->len ? m->len : 1);
                if (!rx->joined) {
                    zt_release(tb, m);
                    snprintf(err, errlen, "out of memory");
                    return -1;
                }
                memcpy(rx->joined, m->data, m->len);
                zmq_msg_close(&rx->msg);
                rx->has_msg = 0;
                m->data = rx->joined;
            }
            return 1;
        }
        /* multipart: join (bounded in parts and bytes) */
        zmq_msg_t parts[ZMQ_MAX_PARTS];
        parts[0] = rx->msg;
        rx->has_msg = 0;
        int np = 1, more = 1, bad = 0;
        uint64_t total = zmq_msg_size(&parts[0]);
        while (more) {
            if (np == ZMQ_MAX_PARTS) {
                bad = 1;
                drain_parts(t->sock);
                break;
            }
            zmq_msg_init(&parts[np]);
            if (zmq_msg_recv(&parts[np], t->sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&parts[np]);
                bad = 1;
                break;
            }
            more = zmq_msg_more(&parts[np]);
            total += zmq_msg_size(&parts[np]);
            np++;
            if (total > t->max_msg) {
                bad = 1;
                if (more) drain_parts(t->sock);
                break;
            }
        }
        if (!bad) {
            rx->joined = malloc(total ? total : 1);
            if (!rx->joined) bad = 1;
        }
        if (!bad) {
            uint8_t *d = rx->joined;
            for (int i = 0; i < np; i++) {
                memcpy(d, zmq_msg_data(&parts[i]), zmq_msg_size(&parts[i]));
                d += zmq_msg_size(&parts[i]);
            }
        }
        for (int i = 0; i < np; i++) zmq_msg_close(&parts[i]);
        if (bad) {
            free(rx->joined);
            free(rx);
            continue;               /* dropped below the message level */
        }
        m->data = rx->joined;
        m->len = (size_t)total;
        m->priv = rx;
        return 1;
    }
}

static void zt_release(transport *tb, tp_msg *m) {
    (void)tb;
    zrx *rx = m->priv;
    if (!rx) return;
    if (rx->has_msg) zmq_msg_close(&rx->msg);
    free(rx->joined);
    free(rx);
}

static int zt_poll_items(transport *tb, zmq_pollitem_t *items, int max) {
    zt *t = (zt *)tb;
    (void)max;
    items[0] = (zmq_pollitem_t){t->sock, 0, ZMQ_POLLIN, 0};
    return 1;
}

static const transport_vt zt_vt = {
    .kind = "zmq",
    .send = zt_send,
    .try_recv = zt_try_recv,
    .release = zt_release,
    .poll_items = zt_poll_items,
    .close = zt_close,
};

static int z85_key(const char *k, const char *what, char *err, size_t errlen) {
    if (!k || strlen(k) != 40) {
        snprintf(err, errlen, "%s must be a 40-character Z85 CurveZMQ key", what);
        return -1;
    }
    return 0;
}

transport *transport_zmq_open(const char *endpoint, int listen, const transport_opts *o, char *err, size_t errlen) {
    zt *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->base.vt = &zt_vt;
    snprintf(t->base.endpoint, sizeof t->base.endpoint, "%s", endpoint);
    t->listen = listen;
    t->multipart = o->zmq_multipart;
    t->max_msg = o->max_msg ? o->max_msg : (256ull << 20);
    if (!strncmp(endpoint, "inproc://", 9) && !o->zmq_ctx) {
        snprintf(err, errlen, "inproc:// needs a ZeroMQ context shared by both ends (transport_opts.zmq_ctx)");
        goto bad;
    }
    t->ctx = o->zmq_ctx;
    if (!t->ctx) {
        t->ctx = zmq_ctx_new();
        t->own_ctx = 1;
        if (!t->ctx) {
            zfail(err, errlen, "zmq_ctx_new");
            goto bad;
        }
    }
    t->sock = zmq_socket(t->ctx, listen ? ZMQ_ROUTER : ZMQ_DEALER);
    if (!t->sock) {
        zfail(err, errlen, "zmq_socket");
        goto bad;
    }
    const int linger = o->linger_ms == 0 ? 200 : o->linger_ms < 0 ? 0 : o->linger_ms;
    const int64_t maxmsg = (int64_t)t->max_msg;
    const int hb_ivl = o->heartbeat_ivl_ms == 0 ? 1000 : o->heartbeat_ivl_ms;
    const int hb_to = o->heartbeat_timeout_ms == 0 ? 5000 : o->heartbeat_timeout_ms;
    if (setopt_int(t->sock, ZMQ_LINGER, linger) || zmq_setsockopt(t->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) ||
        (listen && setopt_int(t->sock, ZMQ_ROUTER_MANDATORY, 1))) {
        zfail(err, errlen, "zmq_setsockopt");
        goto bad;
    }
    if (hb_ivl > 0 && hb_to > 0 &&
        (setopt_int(t->sock, ZMQ_HEARTBEAT_IVL, hb_ivl) || setopt_int(t->sock, ZMQ_HEARTBEAT_TIMEOUT, hb_to) ||
         setopt_int(t->sock, ZMQ_HEARTBEAT_TTL, hb_to))) {
        zfail(err, errlen, "zmq_setsockopt (heartbeat)");
        goto bad;
    }
    if (listen && o->curve_secret) {
        if (z85_key(o->curve_secret, "curve_secret", err, errlen)) goto bad;
        if (o->n_allowed_clients > 0 && zap_start(t, o, err, errlen)) goto bad;
        if (setopt_int(t->sock, ZMQ_CURVE_SERVER, 1) ||
            zmq_setsockopt(t->sock, ZMQ_CURVE_SECRETKEY, o->curve_secret, 40)) {
            zfail(err, errlen, "CurveZMQ server setup");
            goto bad;
        }
    } else if (!listen && o->curve_server_key) {
        if (z85_key(o->curve_server_key, "curve_server_key", err, errlen) ||
            z85_key(o->curve_public, "curve_public (client key pair)", err, errlen) ||
            z85_key(o->curve_secret, "curve_secret (client key pair)", err, errlen))
            goto bad;
        if (zmq_setsockopt(t->sock, ZMQ_CURVE_SERVERKEY, o->curve_server_key, 40) ||
            zmq_setsockopt(t->sock, ZMQ_CURVE_PUBLICKEY, o->curve_public, 40) ||
            zmq_setsockopt(t->sock, ZMQ_CURVE_SECRETKEY, o->curve_secret, 40)) {
            zfail(err, errlen, "CurveZMQ client setup");
            goto bad;
        }
    }
    if (listen) {
        if (zmq_bind(t->sock, endpoint) != 0) {
            snprintf(err, errlen, "cannot listen on %s: %s", endpoint, zmq_strerror(errno));
            goto bad;
        }
        /* report the port actually bound (tcp://HOST:0 or :*) */
        size_t sz = sizeof t->base.endpoint;
        if (zmq_getsockopt(t->sock, ZMQ_LAST_ENDPOINT, t->base.endpoint, &sz) != 0)
            snprintf(t->base.endpoint, sizeof t->base.endpoint, "%s", endpoint);
    } else if (zmq_connect(t->sock, endpoint) != 0) {
        snprintf(err, errlen, "cannot connect to %s: %s", endpoint, zmq_strerror(errno));
        goto bad;
    }
    return &t->base;
bad:
    zt_close(&t->base);
    return NULL;
}
