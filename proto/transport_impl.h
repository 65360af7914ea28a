/* transport_impl.h — what a transport implementation provides (private to
 * proto/transport*.c; users see transport.h). Each implementation embeds a
 * `transport` as its first member. */
#ifndef FP_TRANSPORT_IMPL_H
#define FP_TRANSPORT_IMPL_H

#include <zmq.h>
#include "transport.h"

typedef struct transport_vt {
    const char *kind;
    int (*send)(transport *t, const tp_peer *to, const struct iovec *iov, int n, int timeout_ms,
                char *err, size_t errlen);
    /* Non-blocking receive: 1 / 0 / -1 (see transport_recv). */
    int (*try_recv)(transport *t, tp_msg *m, char *err, size_t errlen);
    void (*release)(transport *t, tp_msg *m);
    /* Fill up to max zmq_pollitem_t (socket or fd, ZMQ_POLLIN) that signal
     * "a message may be receivable"; return the count (>= 1). */
    int (*poll_items)(transport *t, zmq_pollitem_t *items, int max);
    void (*close)(transport *t);
} transport_vt;

struct transport {
    const transport_vt *vt;
    char endpoint[256];
};

#define TRANSPORT_POLL_MAX 16       /* poll items one transport may ask for */

transport *transport_zmq_open(const char *endpoint, int listen, const transport_opts *o, char *err, size_t errlen);
transport *transport_shm_open(const char *endpoint, int listen, const transport_opts *o, char *err, size_t errlen);
transport *transport_rdma_open(const char *endpoint, int listen, const transport_opts *o, char *err, size_t errlen);

/* Monotonic ms, for timeouts. */
int64_t transport_now_ms(void);

#endif
