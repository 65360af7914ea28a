/* transport_rdma.c — rdma://HOST:PORT: the ring protocol (ring.h) over RC
 * queue pairs set up with librdmacm. This file is only the thin verbs layer;
 * rings, placement, credits, wrap-around and validation are ring.c, which
 * the shm:// transport runs in the unit and pool tests.
 *
 * UNTESTED ON REAL HARDWARE: the machine this was written on has no RDMA
 * device, so this file is compiled and linked but has never moved a byte.
 * Here it fails at open with "no RDMA device". See docs/transports.md for
 * what that leaves unverified (verbs calls, work-request sizing, event
 * handling on a real fabric).
 *
 * Per connection: a protection domain; our receive ring registered for
 * REMOTE_WRITE; a send staging buffer the size of the peer's ring (the
 * bytes are copied there at the same offset they will have remotely, so
 * credits also guarantee the staging slot is free: a user's iovecs are
 * never registered); a send CQ reaped on every post, a receive CQ with a
 * completion channel for sleeping. Every message is one
 * IBV_WR_RDMA_WRITE_WITH_IMM (data) and every credit a zero-byte one, so
 * each consumes one posted receive at the peer; receives are reposted as
 * they complete. Both sides cap their in-flight messages at the smaller
 * ring_msgs of the two, which bounds the receives a side needs at
 * 2 x ring_msgs. The handshake (ring_hs: ring size, limits, address,
 * rkey) travels as rdma_cm private data in CONNECT and ACCEPT.
 *
 * rdma:// carries no encryption or authentication beyond the fabric's own:
 * CurveZMQ keys are refused rather than silently dropped. */
#include "transport_impl.h"
#include "ring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <netdb.h>
#include <poll.h>
#include <rdma/rdma_cma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define RD_CONNECT_MS 5000
#define TAG_CM 0u
#define TAG_EFD 1u

typedef struct rd_conn {
    uint64_t id;                    /* peer id (>= 2) */
    struct rdma_cm_id *cm;
    struct ibv_pd *pd;
    struct ibv_comp_channel *ch;
    struct ibv_cq *scq, *rcq;
    int qp_ok;
    uint8_t *rx, *stage;
    struct ibv_mr *rx_mr, *st_mr;
    uint64_t stage_bytes;
    uint64_t peer_addr;
    uint32_t peer_rkey;
    uint32_t sq_out, sq_max, rq_depth;
    ring_link link;
    int link_ok, established, dead, held, in_epoll;
    char why[200];
} rd_conn;

typedef struct rd_t {
    transport base;
    int listen;
    struct rdma_event_channel *ev;
    struct rdma_cm_id *lid;         /* listening id */
    int ep, efd;
    ring_cfg cfg;
    rd_conn **c;
    int n, cap, rr;
    uint64_t next_id;
} rd_t;

/* ---- one-sided ops --------------------------------------------------------- */

static int reap_send(rd_conn *c, char *err, size_t errlen) {
    struct ibv_wc wc[16];
    int k;
    while ((k = ibv_poll_cq(c->scq, 16, wc)) > 0)
        for (int i = 0; i < k; i++) {
            c->sq_out--;
            if (wc[i].status != IBV_WC_SUCCESS) {
                snprintf(err, errlen, "rdma write failed: %s", ibv_wc_status_str(wc[i].status));
                return -1;
            }
        }
    if (k < 0) {
        snprintf(err, errlen, "ibv_poll_cq (send) failed");
        return -1;
    }
    return 0;
}

static int rd_write_imm(void *ctx, uint64_t off, const struct iovec *iov, int n, size_t len, uint32_t imm,
                        char *err, size_t errlen) {
    rd_conn *c = ctx;
    if (c->dead) {
        snprintf(err, errlen, "%s", c->why);
        return -1;
    }
    if (off > c->stage_bytes || len > c->stage_bytes - off) {
        snprintf(err, errlen, "rdma: write of %zu bytes at %llu outside the peer ring", len, (unsigned long long)off);
        return -1;
    }
    if (reap_send(c, err, errlen)) return -1;
    /* the send queue drains at wire speed: wait for a slot (bounded) */
    for (int64_t end = transport_now_ms() + 1000; c->sq_out >= c->sq_max;) {
        if (transport_now_ms() > end) {
            snprintf(err, errlen, "rdma: send queue stuck full for 1 s");
            return -1;
        }
        if (reap_send(c, err, errlen)) return -1;
    }
    uint8_t *d = c->stage + off;
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len) memcpy(d, iov[i].iov_base, iov[i].iov_len);
        d += iov[i].iov_len;
    }
    struct ibv_sge sge = {(uintptr_t)(c->stage + off), (uint32_t)len, c->st_mr->lkey};
    struct ibv_send_wr wr, *bad = NULL;
    memset(&wr, 0, sizeof wr);
    wr.opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
    wr.sg_list = len ? &sge : NULL;
    wr.num_sge = len ? 1 : 0;
    wr.imm_data = htonl(imm);
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.wr.rdma.remote_addr = c->peer_addr + off;
    wr.wr.rdma.rkey = c->peer_rkey;
    const int e = ibv_post_send(c->cm->qp, &wr, &bad);
    if (e) {
        snprintf(err, errlen, "ibv_post_send: %s", strerror(e));
        return -1;
    }
    c->sq_out++;
    return 0;
}

static int post_recv(rd_conn *c) {
    struct ibv_recv_wr wr, *bad = NULL;
    memset(&wr, 0, sizeof wr);      /* WRITE WITH IMM needs no receive buffer */
    return ibv_post_recv(c->cm->qp, &wr, &bad);
}

static int rd_poll(void *ctx, ring_cqe *q, char *err, size_t errlen) {
    rd_conn *c = ctx;
    struct ibv_wc wc;
    const int k = ibv_poll_cq(c->rcq, 1, &wc);
    if (k == 0) return 0;
    if (k < 0) {
        snprintf(err, errlen, "ibv_poll_cq (receive) failed");
        return -1;
    }
    if (wc.status != IBV_WC_SUCCESS) {
        snprintf(err, errlen, "rdma receive completion: %s", ibv_wc_status_str(wc.status));
        return -1;
    }
    if (wc.opcode != IBV_WC_RECV_RDMA_WITH_IMM || !(wc.wc_flags & IBV_WC_WITH_IMM)) {
        snprintf(err, errlen, "rdma: peer sent a completion that is not a write with immediate");
        return -1;
    }
    q->imm = ntohl(wc.imm_data);
    q->len = wc.byte_len;
    q->off = RING_OFF_UNKNOWN;      /* RDMA does not tell where the peer wrote */
    if (post_recv(c)) {
        snprintf(err, errlen, "ibv_post_recv failed");
        return -1;
    }
    return 1;
}

static const ring_ops rd_ops = {rd_write_imm, rd_poll};

/* ---- connection resources ---------------------------------------------------- */

static void conn_free(rd_t *t, rd_conn *c) {
    if (!c) return;
    if (c->in_epoll && c->ch) epoll_ctl(t->ep, EPOLL_CTL_DEL, c->ch->fd, NULL);
    if (c->link_ok) ring_link_free(&c->link);
    if (c->qp_ok) rdma_destroy_qp(c->cm);
    if (c->rx_mr) ibv_dereg_mr(c->rx_mr);
    if (c->st_mr) ibv_dereg_mr(c->st_mr);
    if (c->scq) ibv_destroy_cq(c->scq);
    if (c->rcq) ibv_destroy_cq(c->rcq);
    if (c->ch) ibv_destroy_comp_channel(c->ch);
    if (c->pd) ibv_dealloc_pd(c->pd);
    if (c->cm) rdma_destroy_id(c->cm);
    free(c->rx);
    free(c->stage);
    free(c);
}

/* PD, CQs, QP, our registered receive ring, posted receives. */
static int conn_verbs(rd_t *t, rd_conn *c, char *err, size_t errlen) {
    struct ibv_context *v = c->cm->verbs;
    const uint32_t m = t->cfg.ring_msgs;
    c->sq_max = 2 * m + 8;
    c->rq_depth = 2 * m + 8;
    if (!(c->pd = ibv_alloc_pd(v)) || !(c->ch = ibv_create_comp_channel(v))) {
        snprintf(err, errlen, "ibv_alloc_pd/ibv_create_comp_channel: %s", strerror(errno));
        return -1;
    }
    fcntl(c->ch->fd, F_SETFL, fcntl(c->ch->fd, F_GETFL) | O_NONBLOCK);
    if (!(c->scq = ibv_create_cq(v, (int)c->sq_max, NULL, NULL, 0)) ||
        !(c->rcq = ibv_create_cq(v, (int)c->rq_depth, c, c->ch, 0))) {
        snprintf(err, errlen, "ibv_create_cq: %s", strerror(errno));
        return -1;
    }
    struct ibv_qp_init_attr qa;
    memset(&qa, 0, sizeof qa);
    qa.send_cq = c->scq;
    qa.recv_cq = c->rcq;
    qa.qp_type = IBV_QPT_RC;
    qa.cap.max_send_wr = c->sq_max;
    qa.cap.max_recv_wr = c->rq_depth;
    qa.cap.max_send_sge = 1;
    qa.cap.max_recv_sge = 1;
    if (rdma_create_qp(c->cm, c->pd, &qa)) {
        snprintf(err, errlen, "rdma_create_qp: %s", strerror(errno));
        return -1;
    }
    c->qp_ok = 1;
    c->rx = aligned_alloc(4096, t->cfg.ring_bytes);
    if (!c->rx) {
        snprintf(err, errlen, "out of memory (receive ring of %llu bytes)", (unsigned long long)t->cfg.ring_bytes);
        return -1;
    }
    c->rx_mr = ibv_reg_mr(c->pd, c->rx, t->cfg.ring_bytes, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
    if (!c->rx_mr) {
        snprintf(err, errlen, "ibv_reg_mr (receive ring): %s (locked-memory limit? see ulimit -l)", strerror(errno));
        return -1;
    }
    if (ring_link_init(&c->link, &t->cfg, c->rx, &rd_ops, c, err, errlen)) return -1;
    c->link_ok = 1;
    for (uint32_t i = 0; i < c->rq_depth; i++)
        if (post_recv(c)) {
            snprintf(err, errlen, "ibv_post_recv failed");
            return -1;
        }
    if (ibv_req_notify_cq(c->rcq, 0)) {
        snprintf(err, errlen, "ibv_req_notify_cq failed");
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = c->id};
    if (epoll_ctl(t->ep, EPOLL_CTL_ADD, c->ch->fd, &ev)) {
        snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
        return -1;
    }
    c->in_epoll = 1;
    return 0;
}

/* Apply the peer's handshake: staging buffer, remote address and key. */
static int conn_peer(rd_t *t, rd_conn *c, const void *pd, size_t pdlen, char *err, size_t errlen) {
    ring_hs h;
    if (!pd || ring_hs_decode(pd, pdlen, &h, err, errlen)) {
        if (!pd) snprintf(err, errlen, "rdma: peer sent no ring handshake");
        return -1;
    }
    /* both sides keep at most the smaller ring_msgs in flight: that bounds
     * the receives each must have posted (data + credits) */
    if (h.cfg.ring_msgs > t->cfg.ring_msgs) h.cfg.ring_msgs = t->cfg.ring_msgs;
    c->stage_bytes = h.cfg.ring_bytes;
    c->stage = aligned_alloc(4096, c->stage_bytes);
    if (!c->stage) {
        snprintf(err, errlen, "out of memory (send staging of %llu bytes)", (unsigned long long)c->stage_bytes);
        return -1;
    }
    c->st_mr = ibv_reg_mr(c->pd, c->stage, c->stage_bytes, IBV_ACCESS_LOCAL_WRITE);
    if (!c->st_mr) {
        snprintf(err, errlen, "ibv_reg_mr (send staging): %s", strerror(errno));
        return -1;
    }
    c->peer_addr = h.addr;
    c->peer_rkey = h.key;
    return ring_link_set_peer(&c->link, &h.cfg, err, errlen);
}

static void our_hs(const rd_t *t, const rd_conn *c, uint8_t out[RING_HS_BYTES]) {
    ring_hs h = {t->cfg, (uint64_t)(uintptr_t)c->rx, c->rx_mr->rkey};
    ring_hs_encode(&h, out);
}

static int add_conn(rd_t *t, rd_conn *c) {
    if (t->n == t->cap) {
        int nc = t->cap ? 2 * t->cap : 8;
        rd_conn **p = realloc(t->c, (size_t)nc * sizeof(*p));
        if (!p) return -1;
        t->c = p;
        t->cap = nc;
    }
    t->c[t->n++] = c;
    return 0;
}

static void conn_kill(rd_conn *c, const char *why) {
    if (c->dead) return;
    c->dead = 1;
    snprintf(c->why, sizeof c->why, "%s", why);
    if (c->established) rdma_disconnect(c->cm);
}

static void reap(rd_t *t) {
    if (!t->listen) return;
    int k = 0;
    for (int i = 0; i < t->n; i++) {
        if (t->c[i]->dead && t->c[i]->held == 0) conn_free(t, t->c[i]);
        else t->c[k++] = t->c[i];
    }
    t->n = k;
}

/* ---- connection manager events ------------------------------------------------ */

static void on_connect_request(rd_t *t, struct rdma_cm_event *ev) {
    char e[200];
    rd_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        rdma_reject(ev->id, NULL, 0);
        rdma_destroy_id(ev->id);
        return;
    }
    c->cm = ev->id;
    c->cm->context = c;
    c->id = t->next_id++;
    if (conn_verbs(t, c, e, sizeof e) ||
        conn_peer(t, c, ev->param.conn.private_data, ev->param.conn.private_data_len, e, sizeof e) ||
        add_conn(t, c)) {
        rdma_reject(ev->id, NULL, 0);
        conn_free(t, c);            /* destroys the id */
        return;
    }
    uint8_t hs[RING_HS_BYTES];
    our_hs(t, c, hs);
    struct rdma_conn_param p;
    memset(&p, 0, sizeof p);
    p.private_data = hs;
    p.private_data_len = RING_HS_BYTES;
    p.rnr_retry_count = 7;
    if (rdma_accept(ev->id, &p)) conn_kill(c, "rdma_accept failed");
}

/* Non-blocking: handle every pending connection-manager event. */
static void cm_pump(rd_t *t) {
    struct rdma_cm_event *ev;
    while (rdma_get_cm_event(t->ev, &ev) == 0) {
        rd_conn *c = ev->id ? ev->id->context : NULL;
        const enum rdma_cm_event_type type = ev->event;
        if (type == RDMA_CM_EVENT_CONNECT_REQUEST && t->listen) {
            on_connect_request(t, ev);
            rdma_ack_cm_event(ev);
            continue;
        }
        rdma_ack_cm_event(ev);
        if (!c) continue;
        if (type == RDMA_CM_EVENT_ESTABLISHED) c->established = 1;
        else if (type == RDMA_CM_EVENT_DISCONNECTED || type == RDMA_CM_EVENT_DEVICE_REMOVAL ||
                 type == RDMA_CM_EVENT_REJECTED || type == RDMA_CM_EVENT_UNREACHABLE ||
                 type == RDMA_CM_EVENT_CONNECT_ERROR) {
            const int est = c->established;
            c->established = 0;
            conn_kill(c, type == RDMA_CM_EVENT_DISCONNECTED ? "rdma peer disconnected" : rdma_event_str(type));
            if (est && type == RDMA_CM_EVENT_DISCONNECTED) rdma_disconnect(c->cm);
        }
    }
    reap(t);
}

/* Blocking wait for one event on the connector's id (open only). */
static int wait_event(rd_t *t, enum rdma_cm_event_type want, struct rdma_cm_event **out, char *err,
                      size_t errlen) {
    struct pollfd p = {t->ev->fd, POLLIN, 0};
    const int r = poll(&p, 1, RD_CONNECT_MS);
    if (r <= 0) {
        snprintf(err, errlen, "rdma: no %s within %d ms", rdma_event_str(want), RD_CONNECT_MS);
        return -1;
    }
    if (rdma_get_cm_event(t->ev, out)) {
        snprintf(err, errlen, "rdma_get_cm_event: %s", strerror(errno));
        return -1;
    }
    if ((*out)->event != want) {
        snprintf(err, errlen, "rdma: %s while waiting for %s", rdma_event_str((*out)->event), rdma_event_str(want));
        rdma_ack_cm_event(*out);
        return -1;
    }
    return 0;
}

/* ---- the transport ---------------------------------------------------------------- */

static void drain_wakeups(rd_t *t) {
    uint64_t v;
    while (read(t->efd, &v, sizeof v) > 0) {
    }
    for (int i = 0; i < t->n; i++) {
        rd_conn *c = t->c[i];
        struct ibv_cq *cq;
        void *cctx;
        int acks = 0;
        while (c->ch && ibv_get_cq_event(c->ch, &cq, &cctx) == 0) acks++;
        if (acks) ibv_ack_cq_events(c->rcq, (unsigned)acks);
    }
}

static int conn_recv(rd_t *t, rd_conn *c, tp_msg *m, char *err, size_t errlen) {
    if (c->dead && !ring_pending(&c->link)) return 0;
    if (!c->dead && ring_progress(&c->link, err, errlen)) {
        conn_kill(c, c->link.why);
        return -1;
    }
    ring_msg rm;
    if (!ring_next(&c->link, &rm)) return 0;
    m->data = rm.data;
    m->len = rm.len;
    m->priv = c;
    m->priv_u64 = rm.token;
    c->held++;
    if (t->listen) {
        m->peer.len = 8;
        memcpy(m->peer.id, &c->id, 8);
    }
    return 1;
}

static int rd_try_recv(transport *tb, tp_msg *m, char *err, size_t errlen) {
    rd_t *t = (rd_t *)tb;
    char e[200];
    drain_wakeups(t);
    cm_pump(t);
    if (!t->listen) {
        rd_conn *c = t->c[0];
        if (conn_recv(t, c, m, e, sizeof e) == 1) return 1;
        if (!c->dead) return 0;
        snprintf(err, errlen, "%s", c->why);
        return -1;
    }
    for (int k = 0; k < t->n; k++) {
        const int i = (t->rr + k) % t->n;
        if (conn_recv(t, t->c[i], m, e, sizeof e) == 1) {
            t->rr = i + 1;
            return 1;
        }
    }
    reap(t);
    return 0;
}

static void rd_release(transport *tb, tp_msg *m) {
    rd_t *t = (rd_t *)tb;
    rd_conn *c = m->priv;
    if (!c) return;
    c->held--;
    char e[200];
    if (!c->dead && ring_release(&c->link, (uint32_t)m->priv_u64, e, sizeof e) && c->link.broken)
        conn_kill(c, c->link.why);
    reap(t);
}

static rd_conn *find_id(rd_t *t, uint64_t id) {
    for (int i = 0; i < t->n; i++)
        if (t->c[i]->id == id && !t->c[i]->dead) return t->c[i];
    return NULL;
}

static int rd_send(transport *tb, const tp_peer *to, const struct iovec *iov, int n, int timeout_ms, char *err,
                   size_t errlen) {
    rd_t *t = (rd_t *)tb;
    rd_conn *c;
    if (t->listen) {
        uint64_t id;
        if (!to || to->len != 8) {
            snprintf(err, errlen, "send on a listening transport needs a peer");
            return -1;
        }
        memcpy(&id, to->id, 8);
        if (!(c = find_id(t, id))) {
            snprintf(err, errlen, "peer is gone (disconnected)");
            return -1;
        }
    } else {
        c = t->c[0];
    }
    const int64_t end = transport_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        if (c->dead) {
            snprintf(err, errlen, "%s", c->why);
            return -1;
        }
        int r = ring_send(&c->link, iov, n, err, errlen);
        if (r == 1) {
            if (ring_progress(&c->link, err, errlen)) {
                conn_kill(c, c->link.why);
                return -1;
            }
            r = ring_send(&c->link, iov, n, err, errlen);
        }
        if (r < 0 && c->link.broken) conn_kill(c, c->link.why);
        if (r != 1) return r;
        if (timeout_ms == 0 || (timeout_ms > 0 && transport_now_ms() >= end)) return 1;
        cm_pump(t);                 /* notice a disconnect while waiting */
    }
}

static int rd_poll_items(transport *tb, zmq_pollitem_t *items, int max) {
    rd_t *t = (rd_t *)tb;
    (void)max;
    /* re-arm each receive CQ, then drain it into the ring: a completion
     * that landed before the re-arm would raise no event */
    int wake = 0;
    for (int i = 0; i < t->n; i++) {
        rd_conn *c = t->c[i];
        char e[200];
        if (c->dead) {
            wake |= !t->listen || ring_pending(&c->link) > 0;
            continue;
        }
        ibv_req_notify_cq(c->rcq, 0);
        if (ring_progress(&c->link, e, sizeof e)) conn_kill(c, c->link.why), wake = 1;
        if (ring_pending(&c->link)) wake = 1;
    }
    if (wake) {
        const uint64_t one = 1;
        if (write(t->efd, &one, sizeof one) < 0) {
            /* a saturated eventfd is readable anyway */
        }
    }
    items[0] = (zmq_pollitem_t){NULL, t->ep, ZMQ_POLLIN, 0};
    return 1;
}

static void rd_close(transport *tb) {
    rd_t *t = (rd_t *)tb;
    for (int i = 0; i < t->n; i++) {
        if (t->c[i]->established) rdma_disconnect(t->c[i]->cm);
        conn_free(t, t->c[i]);
    }
    free(t->c);
    if (t->lid) rdma_destroy_id(t->lid);
    if (t->ev) rdma_destroy_event_channel(t->ev);
    if (t->ep >= 0) close(t->ep);
    if (t->efd >= 0) close(t->efd);
    free(t);
}

static const transport_vt rd_vt = {
    .kind = "rdma",
    .send = rd_send,
    .try_recv = rd_try_recv,
    .release = rd_release,
    .poll_items = rd_poll_items,
    .close = rd_close,
};

/* rdma://HOST:PORT (HOST may be [v6], or * / empty for any when listening). */
static int parse_ep(const char *endpoint, int passive, struct addrinfo **ai, char *err, size_t errlen) {
    char host[256];
    const char *hp = endpoint + 7, *colon = strrchr(hp, ':');
    if (!colon || !colon[1]) {
        snprintf(err, errlen, "endpoint '%s': use rdma://HOST:PORT", endpoint);
        return -1;
    }
    size_t hl = (size_t)(colon - hp);
    if (hl >= 2 && hp[0] == '[' && hp[hl - 1] == ']') {
        hp++;
        hl -= 2;
    }
    if (hl >= sizeof host) hl = sizeof host - 1;
    memcpy(host, hp, hl);
    host[hl] = 0;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    const int r = getaddrinfo(hl && strcmp(host, "*") ? host : NULL, colon + 1, &hints, ai);
    if (r) {
        snprintf(err, errlen, "endpoint '%s': %s", endpoint, gai_strerror(r));
        return -1;
    }
    return 0;
}

transport *transport_rdma_open(const char *endpoint, int as_listener, const transport_opts *o, char *err,
                               size_t errlen) {
    if (o->curve_secret || o->curve_server_key) {
        snprintf(err, errlen, "%s: rdma:// has no CurveZMQ encryption; use --plain for rdma nodes (trusted fabric "
                 "only) or a tcp:// endpoint", endpoint);
        return NULL;
    }
    /* say plainly why nothing works on a machine without an adapter */
    int ndev = 0;
    struct ibv_device **devs = ibv_get_device_list(&ndev);
    if (devs) ibv_free_device_list(devs);
    if (ndev <= 0) {
        snprintf(err, errlen, "no RDMA device on this host (ibv_get_device_list found none); use tcp:// or, on one "
                 "host, shm://");
        return NULL;
    }
    struct addrinfo *ai = NULL;
    if (parse_ep(endpoint, as_listener, &ai, err, errlen)) return NULL;
    rd_t *t = calloc(1, sizeof(*t));
    if (!t) {
        freeaddrinfo(ai);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->base.vt = &rd_vt;
    snprintf(t->base.endpoint, sizeof t->base.endpoint, "%s", endpoint);
    t->listen = as_listener;
    t->ep = t->efd = -1;
    t->next_id = 2;
    struct rdma_cm_event *ev = NULL;
    if (ring_cfg_make(&t->cfg, o->ring_bytes, o->ring_msgs, o->max_msg, err, errlen)) goto bad;
    t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    if (t->efd < 0 || t->ep < 0 || !(t->ev = rdma_create_event_channel())) {
        snprintf(err, errlen, "%s: eventfd/epoll/rdma_create_event_channel: %s", endpoint, strerror(errno));
        goto bad;
    }
    struct epoll_event pe = {.events = EPOLLIN, .data.u64 = TAG_CM};
    struct epoll_event pf = {.events = EPOLLIN, .data.u64 = TAG_EFD};
    if (epoll_ctl(t->ep, EPOLL_CTL_ADD, t->ev->fd, &pe) || epoll_ctl(t->ep, EPOLL_CTL_ADD, t->efd, &pf)) {
        snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
        goto bad;
    }
    if (as_listener) {
        fcntl(t->ev->fd, F_SETFL, fcntl(t->ev->fd, F_GETFL) | O_NONBLOCK);
        if (rdma_create_id(t->ev, &t->lid, NULL, RDMA_PS_TCP) || rdma_bind_addr(t->lid, ai->ai_addr) ||
            rdma_listen(t->lid, 16)) {
            snprintf(err, errlen, "cannot listen on %s: %s", endpoint, strerror(errno));
            goto bad;
        }
        char host[128] = "";
        getnameinfo(rdma_get_local_addr(t->lid), sizeof(struct sockaddr_storage), host, sizeof host, NULL, 0,
                    NI_NUMERICHOST);
        snprintf(t->base.endpoint, sizeof t->base.endpoint, "rdma://%s:%u", host,
                 (unsigned)ntohs(rdma_get_src_port(t->lid)));
        freeaddrinfo(ai);
        return &t->base;
    }
    rd_conn *c = calloc(1, sizeof(*c));
    if (!c || add_conn(t, c)) {
        free(c);
        snprintf(err, errlen, "out of memory");
        goto bad;
    }
    c->id = t->next_id++;
    if (rdma_create_id(t->ev, &c->cm, c, RDMA_PS_TCP) || rdma_resolve_addr(c->cm, NULL, ai->ai_addr, RD_CONNECT_MS)) {
        snprintf(err, errlen, "%s: rdma_resolve_addr: %s", endpoint, strerror(errno));
        goto bad;
    }
    if (wait_event(t, RDMA_CM_EVENT_ADDR_RESOLVED, &ev, err, errlen)) goto bad;
    rdma_ack_cm_event(ev);
    if (rdma_resolve_route(c->cm, RD_CONNECT_MS)) {
        snprintf(err, errlen, "%s: rdma_resolve_route: %s", endpoint, strerror(errno));
        goto bad;
    }
    if (wait_event(t, RDMA_CM_EVENT_ROUTE_RESOLVED, &ev, err, errlen)) goto bad;
    rdma_ack_cm_event(ev);
    if (conn_verbs(t, c, err, errlen)) goto bad;
    uint8_t hs[RING_HS_BYTES];
    our_hs(t, c, hs);
    struct rdma_conn_param p;
    memset(&p, 0, sizeof p);
    p.private_data = hs;
    p.private_data_len = RING_HS_BYTES;
    p.retry_count = 7;
    p.rnr_retry_count = 7;
    if (rdma_connect(c->cm, &p)) {
        snprintf(err, errlen, "%s: rdma_connect: %s", endpoint, strerror(errno));
        goto bad;
    }
    if (wait_event(t, RDMA_CM_EVENT_ESTABLISHED, &ev, err, errlen)) goto bad;
    const int pr = conn_peer(t, c, ev->param.conn.private_data, ev->param.conn.private_data_len, err, errlen);
    rdma_ack_cm_event(ev);
    if (pr) goto bad;
    c->established = 1;
    fcntl(t->ev->fd, F_SETFL, fcntl(t->ev->fd, F_GETFL) | O_NONBLOCK);
    freeaddrinfo(ai);
    return &t->base;
bad:
    freeaddrinfo(ai);
    rd_close(&t->base);
    return NULL;
}
