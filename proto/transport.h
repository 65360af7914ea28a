/* transport.h — moving whole messages between a coordinator and a node.
 *
 * One small interface, several implementations chosen by the endpoint
 * scheme (design.md §4):
 *   tcp://HOST:PORT, ipc:///PATH, inproc://NAME   ZeroMQ ROUTER (listen) /
 *                                                 DEALER (connect)
 *   shm://NAME                                    memfd ring between two
 *                                                 processes on one host
 *   rdma://HOST:PORT                              RC queue pairs (librdmacm)
 *
 * Messages are atomic byte strings (a frame, proto/frame.h). send() takes
 * scatter/gather iovecs; recv() hands out one contiguous received message
 * that stays valid until transport_release(). This is the shape a one-sided
 * RDMA transport needs: the sender writes the iovecs straight into the
 * peer's pre-registered ring (WRITE WITH IMMEDIATE), the receiver reads the
 * message in place and returns ring space (credits) on release
 * (proto/ring.h holds that shared logic).
 *
 * A listening transport talks to many peers; each received message names
 * its peer, and replies go to that peer. A connected transport has exactly
 * one peer (pass NULL as the peer to send).
 *
 * Threading: one transport is used by one thread at a time. */
#ifndef FP_TRANSPORT_H
#define FP_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct transport transport;

#define TRANSPORT_PEER_MAX 32

/* Who sent a message (opaque; compare with transport_peer_eq). */
typedef struct tp_peer {
    uint8_t len;
    uint8_t id[TRANSPORT_PEER_MAX - 1];
} tp_peer;

/* One received message. data/len are valid until transport_release. */
typedef struct tp_msg {
    const uint8_t *data;
    size_t len;
    tp_peer peer;
    /* owned by the transport */
    void *priv;
    uint64_t priv_u64;
} tp_msg;

typedef struct transport_opts {
    /* Largest message accepted. The ZeroMQ transport sets ZMQ_MAXMSGSIZE so
     * a peer cannot make us allocate more; the ring transports size their
     * rings from it. Default 256 MiB (zmq) / ring_bytes/2 (rings). */
    uint64_t max_msg;
    /* ring transports (shm, rdma): bytes of each direction's receive ring
     * (power of two; default 64 MiB) and messages in flight (default 256). */
    uint64_t ring_bytes;
    uint32_t ring_msgs;
    /* ZeroMQ: send each iovec as its own message part (ZMQ_SNDMORE) instead
     * of gathering them into one part; the receiver then joins the parts
     * (one copy). Default 0: one gathered part, received zero-copy. */
    int zmq_multipart;
    /* ZeroMQ context (void * from zmq_ctx_new) shared by both ends of an
     * inproc:// link, which requires one; NULL = the transport makes its
     * own (tcp://, ipc://). Not owned. */
    void *zmq_ctx;
    /* ms a closing transport keeps trying to deliver queued messages
     * (ZMQ_LINGER); 0 = default 200, < 0 = drop at once. */
    int linger_ms;
    /* ZeroMQ transport heartbeat (ZMTP PING): interval and timeout in ms;
     * 0 = defaults (1000 / 5000); < 0 disables. */
    int heartbeat_ivl_ms, heartbeat_timeout_ms;
    /* CurveZMQ (design.md §7), Z85 text (40 chars) or NULL for none.
     * Listener: own secret key (curve_secret) and, when allowed_clients is
     * non-NULL, only those client public keys are accepted.
     * Connector: own key pair and the listener's public key. */
    const char *curve_public;
    const char *curve_secret;
    const char *curve_server_key;
    const char *const *allowed_clients;
    int n_allowed_clients;
} transport_opts;

void transport_opts_default(transport_opts *o);

/* Open by scheme. NULL on failure with a one-line reason in err (an unknown
 * scheme, a bad address, a port in use, ...). */
transport *transport_listen(const char *endpoint, const transport_opts *o, char *err, size_t errlen);
transport *transport_connect(const char *endpoint, const transport_opts *o, char *err, size_t errlen);
/* Closes every connection; messages not yet released become invalid. */
void transport_close(transport *t);

/* "zmq", "shm", "rdma". */
const char *transport_kind(const transport *t);
/* The endpoint actually bound (tcp://127.0.0.1:0 resolves the port). */
const char *transport_endpoint(const transport *t);

/* Send one message made of iov[0..n). to: the peer (from a received
 * tp_msg) on a listening transport, NULL on a connected one. The buffers
 * may be reused once send returns. Waits up to timeout_ms for flow control
 * (ring credits, ZeroMQ high-water mark); 0 = do not wait.
 * Returns 0 sent, 1 no room within the timeout (nothing sent), -1 error
 * (peer gone, message too large, ...) with err filled. */
int transport_send(transport *t, const tp_peer *to, const struct iovec *iov, int n, int timeout_ms,
                   char *err, size_t errlen);

/* Receive the next message, waiting up to timeout_ms (0 = poll, < 0 =
 * forever). Returns 1 with *m filled, 0 on timeout, -1 on a transport
 * failure with err filled. Malformed traffic below the message level
 * (oversized messages, broken rings) is dropped and never returned. */
int transport_recv(transport *t, tp_msg *m, int timeout_ms, char *err, size_t errlen);
/* Give a received message back. Any order is allowed; ring space is
 * reclaimed up to the oldest message still held. */
void transport_release(transport *t, tp_msg *m);

/* Wait until at least one of ts[0..n) may have a message to receive, up to
 * timeout_ms (< 0 = forever). ready[i] (may be NULL) is set to 1 for those
 * that may. Returns the number ready (0 on timeout) or -1 with err. A
 * "ready" transport can still return 0 from a 0-timeout recv. */
int transport_wait_any(transport *const *ts, int n, int timeout_ms, uint8_t *ready,
                       char *err, size_t errlen);

int transport_peer_eq(const tp_peer *a, const tp_peer *b);
/* Printable peer id (hex) for logs. */
void transport_peer_str(const tp_peer *p, char *out, size_t outlen);

/* CurveZMQ key pair as Z85 text (41 bytes each incl. NUL). 0 / -1. */
int transport_curve_keypair(char public_z85[41], char secret_z85[41], char *err, size_t errlen);

#endif
