/* transport_shm.c — shm://NAME: the one-sided ring protocol (ring.h)
 * between processes on one host, with the same write + immediate + credit
 * semantics as the RDMA transport, so the shared ring logic runs in tests.
 *
 * Rendezvous: the listener binds the abstract unix socket
 * "\0flashpool-shm:NAME" (no file to clean up after a crash; gone when the
 * process dies). A connecting process and the listener each create a
 * sealed memfd holding THEIR receive region and an eventfd, and pass both
 * to the other side with SCM_RIGHTS, together with a ring_hs. Only
 * processes of the same user (or root) are accepted, both ways
 * (SO_PEERCRED), so another user cannot squat a name.
 *
 * Receive region (owned by the receiver, written by the peer):
 *   [0, 4096)           control: prod (peer writes), cons + armed (owner)
 *   [4096, data_off)    completion records {imm, len, off}, Q of them
 *   [data_off, +R)      the receive ring
 * "write with immediate" = memcpy into the peer's ring, a record, a release
 * store of prod, and an eventfd signal if the peer said it is about to
 * sleep (armed); Dekker-style fences make the wake-up race-free.
 *
 * The unix socket stays open for the life of the link: its hang-up is how
 * a dead peer is noticed (a listener drops that peer; a connector reports
 * an error after handing out what already arrived). A listener serves many
 * peers, one ring pair each, all signalling one eventfd; transport_wait_any
 * polls a single epoll fd per transport. */
#include "transport_impl.h"
#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SHM_CTL_BYTES 4096u
#define SHM_HS_TIMEOUT_MS 5000        /* connector waiting for the listener */
#define SHM_ACCEPT_TIMEOUT_MS 1000    /* listener waiting for a new peer: bounds a stall */
#define TAG_LISTEN 0u
#define TAG_EFD 1u

typedef struct shm_ctl {
    _Atomic uint32_t prod;          /* written by the peer */
    uint8_t pad0[60];
    _Atomic uint32_t cons;          /* written by the owner */
    _Atomic uint32_t armed;         /* owner: "about to sleep, signal me" */
} shm_ctl;

typedef struct shm_rec {
    uint32_t imm, len;
    uint64_t off;
} shm_rec;

typedef struct shm_conn {
    uint64_t id;                    /* peer id on a listener (>= 2) */
    int sock, peer_efd;
    uint8_t *own;                   /* our receive region */
    size_t own_len;
    uint32_t own_q, own_cons;
    uint8_t *peer;                  /* the peer's receive region */
    size_t peer_len;
    uint64_t peer_data_off;
    uint32_t peer_q, peer_prod;
    ring_link link;
    int link_ok;
    int dead;
    int held;                       /* messages handed out, not released */
    char why[200];
} shm_conn;

typedef struct shm_t {
    transport base;
    int listen;
    int lsock, efd, ep;
    int armed;
    ring_cfg cfg;
    shm_conn **c;
    int n, cap, rr;
    uint64_t next_id;
} shm_t;

static int sfail(char *err, size_t errlen, const char *what) {
    snprintf(err, errlen, "%s: %s", what, strerror(errno));
    return -1;
}

static uint32_t q_for(uint32_t ring_msgs) {
    /* data records (<= peer's ring_msgs in flight) + credits (<= ours) */
    uint32_t q = 8;
    while (q < 2 * ring_msgs + 4) q <<= 1;
    return q;
}
static uint64_t data_off_for(uint32_t q) { return (SHM_CTL_BYTES + (uint64_t)q * sizeof(shm_rec) + 4095) & ~4095ull; }

/* ---- one-sided ops ---------------------------------------------------------- */

static int shm_write_imm(void *ctx, uint64_t off, const struct iovec *iov, int n, size_t len, uint32_t imm,
                         char *err, size_t errlen) {
    shm_conn *c = ctx;
    if (c->dead) {
        snprintf(err, errlen, "%s", c->why);
        return -1;
    }
    const uint64_t ring = c->peer_len - c->peer_data_off;
    if (off > ring || len > ring - off) {
        snprintf(err, errlen, "shm: write of %zu bytes at %llu outside the peer ring", len, (unsigned long long)off);
        return -1;
    }
    uint8_t *d = c->peer + c->peer_data_off + off;
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len) memcpy(d, iov[i].iov_base, iov[i].iov_len);
        d += iov[i].iov_len;
    }
    shm_ctl *ctl = (shm_ctl *)c->peer;
    const uint32_t cons = atomic_load_explicit(&ctl->cons, memory_order_acquire);
    if (c->peer_prod - cons >= c->peer_q) {
        snprintf(err, errlen, "shm: the peer's completion queue is %s", c->peer_prod - cons == c->peer_q ? "full" : "corrupt");
        return -1;
    }
    shm_rec *r = (shm_rec *)(c->peer + SHM_CTL_BYTES) + (c->peer_prod & (c->peer_q - 1));
    r->imm = imm;
    r->len = (uint32_t)len;
    r->off = off;
    c->peer_prod++;
    atomic_store_explicit(&ctl->prod, c->peer_prod, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&ctl->armed, memory_order_relaxed)) {
        const uint64_t one = 1;
        if (write(c->peer_efd, &one, sizeof one) < 0 && errno != EAGAIN) {
            snprintf(err, errlen, "shm: signalling the peer: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int shm_poll(void *ctx, ring_cqe *q, char *err, size_t errlen) {
    shm_conn *c = ctx;
    shm_ctl *ctl = (shm_ctl *)c->own;
    const uint32_t prod = atomic_load_explicit(&ctl->prod, memory_order_acquire);
    if (prod == c->own_cons) return 0;
    if (prod - c->own_cons > c->own_q) {
        snprintf(err, errlen, "shm: peer's completion index %u is %u ahead of ours (queue of %u)", prod,
                 prod - c->own_cons, c->own_q);
        return -1;
    }
    /* copy out once: the peer can still scribble on the record */
    const volatile shm_rec *r = (const shm_rec *)(c->own + SHM_CTL_BYTES) + (c->own_cons & (c->own_q - 1));
    q->imm = r->imm;
    q->len = r->len;
    q->off = r->off;
    c->own_cons++;
    atomic_store_explicit(&ctl->cons, c->own_cons, memory_order_release);
    return 1;
}

static const ring_ops shm_ops = {shm_write_imm, shm_poll};

/* ---- connection setup -------------------------------------------------------- */

static void conn_free(shm_conn *c) {
    if (!c) return;
    if (c->link_ok) ring_link_free(&c->link);
    if (c->own) munmap(c->own, c->own_len);
    if (c->peer) munmap(c->peer, c->peer_len);
    if (c->sock >= 0) close(c->sock);
    if (c->peer_efd >= 0) close(c->peer_efd);
    free(c);
}

static int peer_uid_ok(int sock, char *err, size_t errlen) {
    struct ucred cr;
    socklen_t l = sizeof cr;
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &l) != 0) return sfail(err, errlen, "SO_PEERCRED");
    if (cr.uid != geteuid() && cr.uid != 0 && geteuid() != 0) {
        snprintf(err, errlen, "shm peer runs as uid %u, we as uid %u: refused", (unsigned)cr.uid,
                 (unsigned)geteuid());
        return -1;
    }
    return 0;
}

/* Our receive region: a sealed memfd (the peer cannot shrink it under us). */
static int make_region(shm_conn *c, const ring_cfg *cfg, int *memfd, char *err, size_t errlen) {
    c->own_q = q_for(cfg->ring_msgs);
    const uint64_t doff = data_off_for(c->own_q);
    c->own_len = (size_t)(doff + cfg->ring_bytes);
    int fd = memfd_create("flashpool-shm-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return sfail(err, errlen, "memfd_create");
    if (ftruncate(fd, (off_t)c->own_len) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        sfail(err, errlen, "shm ring memfd");
        close(fd);
        return -1;
    }
    void *p = mmap(NULL, c->own_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        sfail(err, errlen, "mmap (own ring)");
        close(fd);
        return -1;
    }
    c->own = p;
    if (ring_link_init(&c->link, cfg, c->own + doff, &shm_ops, c, err, errlen)) {
        close(fd);
        return -1;
    }
    c->link_ok = 1;
    *memfd = fd;
    return 0;
}

static int send_hs(int sock, const ring_hs *h, int memfd, int efd, char *err, size_t errlen) {
    uint8_t buf[RING_HS_BYTES];
    ring_hs_encode(h, buf);
    struct iovec iov = {buf, sizeof buf};
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(2 * sizeof(int))];
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
    const int fds[2] = {memfd, efd};
    memcpy(CMSG_DATA(cm), fds, sizeof fds);
    if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof buf) return sfail(err, errlen, "shm handshake send");
    return 0;
}

/* Receive and check the peer's handshake; maps its region. */
static int recv_hs(shm_conn *c, char *err, size_t errlen) {
    uint8_t buf[RING_HS_BYTES + 8];
    struct iovec iov = {buf, sizeof buf};
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(4 * sizeof(int))];
    } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b};
    ssize_t r;
    do r = recvmsg(c->sock, &mh, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    int fds[4], nfd = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            const int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < k && nfd < 4; i++) memcpy(&fds[nfd++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
        }
    int memfd = -1, ok = 0;
    ring_hs h;
    if (r < 0) sfail(err, errlen, errno == EAGAIN ? "shm handshake: no answer in time" : "shm handshake receive");
    else if (r == 0) snprintf(err, errlen, "shm handshake: peer closed the connection");
    else if ((mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) || nfd != 2 || r != RING_HS_BYTES)
        snprintf(err, errlen, "shm handshake: malformed (%zd bytes, %d descriptors)", r, nfd);
    else if (!ring_hs_decode(buf, (size_t)r, &h, err, errlen)) {
        memfd = fds[0];
        struct stat st;
        const uint32_t q = q_for(h.cfg.ring_msgs);
        const int seals = fcntl(memfd, F_GET_SEALS);
        if (h.addr != data_off_for(q))
            snprintf(err, errlen, "shm handshake: ring offset %llu, expected %llu", (unsigned long long)h.addr,
                     (unsigned long long)data_off_for(q));
        else if (fstat(memfd, &st) != 0 || (uint64_t)st.st_size < h.addr + h.cfg.ring_bytes)
            snprintf(err, errlen, "shm handshake: peer region smaller than its ring");
        else if (seals < 0 || !(seals & F_SEAL_SHRINK))
            snprintf(err, errlen, "shm handshake: peer region is not sealed against shrinking");
        else {
            c->peer_len = (size_t)(h.addr + h.cfg.ring_bytes);
            void *p = mmap(NULL, c->peer_len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
            if (p == MAP_FAILED) sfail(err, errlen, "mmap (peer ring)");
            else {
                c->peer = p;
                c->peer_q = q;
                c->peer_data_off = h.addr;
                c->peer_prod = atomic_load_explicit(&((shm_ctl *)c->peer)->prod, memory_order_acquire);
                if (!ring_link_set_peer(&c->link, &h.cfg, err, errlen)) {
                    c->peer_efd = fds[1];
                    fds[1] = -1;
                    ok = 1;
                }
            }
        }
    }
    for (int i = 0; i < nfd; i++)
        if (fds[i] >= 0) close(fds[i]);   /* the mapping keeps the memfd alive */
    return ok ? 0 : -1;
}

static void set_rcv_timeout(int sock, int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

/* Both sides: create our region, exchange handshakes (connector first). */
static shm_conn *conn_setup(shm_t *t, int sock, int connector, char *err, size_t errlen) {
    shm_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(sock);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->sock = sock;
    c->peer_efd = -1;
    int memfd = -1;
    set_rcv_timeout(sock, connector ? SHM_HS_TIMEOUT_MS : SHM_ACCEPT_TIMEOUT_MS);
    if (peer_uid_ok(sock, err, errlen) || make_region(c, &t->cfg, &memfd, err, errlen)) goto bad;
    ring_hs h = {t->cfg, data_off_for(c->own_q), 0};
    if (connector ? (send_hs(sock, &h, memfd, t->efd, err, errlen) || recv_hs(c, err, errlen))
                  : (recv_hs(c, err, errlen) || send_hs(sock, &h, memfd, t->efd, err, errlen)))
        goto bad;
    close(memfd);
    return c;
bad:
    if (memfd >= 0) close(memfd);
    conn_free(c);
    return NULL;
}

static int parse_name(const char *endpoint, struct sockaddr_un *a, socklen_t *alen, char *err, size_t errlen) {
    const char *name = endpoint + 6;
    const size_t n = strlen(name);
    int ok = n > 0 && n <= 80;
    for (size_t i = 0; i < n && ok; i++) {
        const char ch = name[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
             ch == '_' || ch == '-';
    }
    if (!ok) {
        snprintf(err, errlen, "endpoint '%s': shm://NAME needs a NAME of 1-80 letters, digits, '.', '_' or '-'",
                 endpoint);
        return -1;
    }
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    const int k = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "flashpool-shm:%s", name);
    *alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)k);
    return 0;
}

/* ---- peers ------------------------------------------------------------------- */

static void conn_kill(shm_t *t, shm_conn *c, const char *why) {
    if (c->dead) return;
    c->dead = 1;
    snprintf(c->why, sizeof c->why, "%s", why);
    if (t->ep >= 0 && c->sock >= 0) epoll_ctl(t->ep, EPOLL_CTL_DEL, c->sock, NULL);
    if (t->listen) {                /* the listener forgets it at once; memory when released */
        close(c->sock);
        c->sock = -1;
    }
}

/* Free dead listener peers nobody holds messages of. */
static void reap(shm_t *t) {
    if (!t->listen) return;
    int k = 0;
    for (int i = 0; i < t->n; i++) {
        if (t->c[i]->dead && t->c[i]->held == 0) conn_free(t->c[i]);
        else t->c[k++] = t->c[i];
    }
    t->n = k;
}

/* Non-blocking look at a peer socket: 0 alive, -1 gone (why filled). */
static int sock_check(shm_t *t, shm_conn *c) {
    if (c->dead) return -1;
    char b;
    ssize_t r = recv(c->sock, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    conn_kill(t, c, r == 0 ? "shm peer closed the connection (process exited?)"
                    : r > 0 ? "shm peer sent bytes on the rendezvous socket after the handshake"
                            : "shm peer connection failed");
    return -1;
}

static void accept_peers(shm_t *t) {
    for (;;) {
        int s = accept4(t->lsock, NULL, NULL, SOCK_CLOEXEC);
        if (s < 0) return;
        char e[200];
        shm_conn *c = conn_setup(t, s, 0, e, sizeof e);
        if (!c) continue;           /* a failed handshake only loses that peer */
        if (t->n == t->cap) {
            int nc = t->cap ? 2 * t->cap : 8;
            shm_conn **p = realloc(t->c, (size_t)nc * sizeof(*p));
            if (!p) {
                conn_free(c);
                continue;
            }
            t->c = p;
            t->cap = nc;
        }
        c->id = t->next_id++;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = c->id};
        if (epoll_ctl(t->ep, EPOLL_CTL_ADD, c->sock, &ev) != 0) {
            conn_free(c);
            continue;
        }
        t->c[t->n++] = c;
    }
}

static shm_conn *find_id(shm_t *t, uint64_t id) {
    for (int i = 0; i < t->n; i++)
        if (t->c[i]->id == id && !t->c[i]->dead) return t->c[i];
    return NULL;
}

/* Listener: accept newcomers, notice hang-ups. */
static void service(shm_t *t) {
    struct epoll_event ev[16];
    int k = epoll_wait(t->ep, ev, 16, 0);
    for (int i = 0; i < k; i++) {
        if (ev[i].data.u64 == TAG_LISTEN) accept_peers(t);
        else if (ev[i].data.u64 != TAG_EFD) {
            shm_conn *c = find_id(t, ev[i].data.u64);
            if (c) sock_check(t, c);
        }
    }
    reap(t);
}

static void disarm(shm_t *t) {
    if (!t->armed) return;
    t->armed = 0;
    for (int i = 0; i < t->n; i++) atomic_store(&((shm_ctl *)t->c[i]->own)->armed, 0);
    uint64_t v;
    while (read(t->efd, &v, sizeof v) > 0) {
    }
}

/* ---- the transport ------------------------------------------------------------ */

static int conn_recv(shm_t *t, shm_conn *c, tp_msg *m, char *err, size_t errlen) {
    /* a connector still hands out what arrived before its peer died */
    if (c->dead && (t->listen || !ring_pending(&c->link))) return 0;
    if (!c->dead && ring_progress(&c->link, err, errlen)) {
        conn_kill(t, c, c->link.why);
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

static int shm_try_recv(transport *tb, tp_msg *m, char *err, size_t errlen) {
    shm_t *t = (shm_t *)tb;
    char e[200];
    disarm(t);
    if (!t->listen) {
        shm_conn *c = t->c[0];
        const int r = conn_recv(t, c, m, e, sizeof e);
        if (r == 1) return 1;
        if (r == 0 && !sock_check(t, c)) return 0;
        snprintf(err, errlen, "%s", c->why);
        return -1;
    }
    service(t);
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

static void shm_release(transport *tb, tp_msg *m) {
    shm_t *t = (shm_t *)tb;
    shm_conn *c = m->priv;
    if (!c) return;
    c->held--;
    char e[200];
    if (!c->dead && ring_release(&c->link, (uint32_t)m->priv_u64, e, sizeof e) && c->link.broken)
        conn_kill(t, c, c->link.why);
    reap(t);
}

static int shm_send(transport *tb, const tp_peer *to, const struct iovec *iov, int n, int timeout_ms, char *err,
                    size_t errlen) {
    shm_t *t = (shm_t *)tb;
    shm_conn *c = NULL;
    if (t->listen) {
        uint64_t id;
        if (!to || to->len != 8) {
            snprintf(err, errlen, "send on a listening transport needs a peer");
            return -1;
        }
        memcpy(&id, to->id, 8);
        c = find_id(t, id);
        if (!c) {
            snprintf(err, errlen, "peer is gone (disconnected)");
            return -1;
        }
    } else {
        c = t->c[0];
    }
    if (c->dead) {
        snprintf(err, errlen, "%s", c->why);
        return -1;
    }
    const int64_t end = transport_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        int r = ring_send(&c->link, iov, n, err, errlen);
        if (r == 1) {               /* no room: take credits, try once more */
            if (ring_progress(&c->link, err, errlen)) {
                conn_kill(t, c, c->link.why);
                return -1;
            }
            r = ring_send(&c->link, iov, n, err, errlen);
        }
        if (r < 0 && c->link.broken) conn_kill(t, c, c->link.why);
        if (r != 1) return r;
        if (timeout_ms == 0 || (timeout_ms > 0 && transport_now_ms() >= end)) return 1;
        if (sock_check(t, c)) {
            snprintf(err, errlen, "%s", c->why);
            return -1;
        }
        /* credits come back as the peer releases; waiting for room is rare */
        struct timespec ts = {0, 50 * 1000};
        nanosleep(&ts, NULL);
    }
}

static int shm_poll_items(transport *tb, zmq_pollitem_t *items, int max) {
    shm_t *t = (shm_t *)tb;
    (void)max;
    /* say "signal me", then look once more: anything that arrived before
     * the peers could see the flag wakes us through our own eventfd */
    t->armed = 1;
    int wake = 0;
    for (int i = 0; i < t->n; i++) {
        shm_conn *c = t->c[i];
        atomic_store(&((shm_ctl *)c->own)->armed, 1);
        atomic_thread_fence(memory_order_seq_cst);
        const uint32_t prod = atomic_load_explicit(&((shm_ctl *)c->own)->prod, memory_order_acquire);
        if (!c->dead && (prod != c->own_cons || ring_pending(&c->link))) wake = 1;
        if (c->dead && !t->listen) wake = 1;    /* the error is "receivable" */
    }
    if (wake) {
        const uint64_t one = 1;
        if (write(t->efd, &one, sizeof one) < 0) {
            /* a full counter is readable anyway */
        }
    }
    items[0] = (zmq_pollitem_t){NULL, t->ep, ZMQ_POLLIN, 0};
    return 1;
}

static void shm_close(transport *tb) {
    shm_t *t = (shm_t *)tb;
    for (int i = 0; i < t->n; i++) conn_free(t->c[i]);
    free(t->c);
    if (t->lsock >= 0) close(t->lsock);
    if (t->efd >= 0) close(t->efd);
    if (t->ep >= 0) close(t->ep);
    free(t);
}

static const transport_vt shm_vt = {
    .kind = "shm",
    .send = shm_send,
    .try_recv = shm_try_recv,
    .release = shm_release,
    .poll_items = shm_poll_items,
    .close = shm_close,
};

transport *transport_shm_open(const char *endpoint, int as_listener, const transport_opts *o, char *err,
                             size_t errlen) {
    struct sockaddr_un a;
    socklen_t alen;
    if (parse_name(endpoint, &a, &alen, err, errlen)) return NULL;
    shm_t *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->base.vt = &shm_vt;
    snprintf(t->base.endpoint, sizeof t->base.endpoint, "%s", endpoint);
    t->listen = as_listener;
    t->lsock = t->efd = t->ep = -1;
    t->next_id = 2;
    if (ring_cfg_make(&t->cfg, o->ring_bytes, o->ring_msgs, o->max_msg, err, errlen)) goto bad;
    t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    if (t->efd < 0 || t->ep < 0) {
        sfail(err, errlen, "eventfd/epoll");
        goto bad;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_EFD};
    if (epoll_ctl(t->ep, EPOLL_CTL_ADD, t->efd, &ev) != 0) {
        sfail(err, errlen, "epoll_ctl");
        goto bad;
    }
    if (as_listener) {
        t->lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (t->lsock < 0) {
            sfail(err, errlen, "socket");
            goto bad;
        }
        if (bind(t->lsock, (struct sockaddr *)&a, alen) != 0 || listen(t->lsock, 64) != 0) {
            snprintf(err, errlen, "cannot listen on %s: %s%s", endpoint, strerror(errno),
                     errno == EADDRINUSE ? " (another process serves that name)" : "");
            goto bad;
        }
        ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = TAG_LISTEN};
        if (epoll_ctl(t->ep, EPOLL_CTL_ADD, t->lsock, &ev) != 0) {
            sfail(err, errlen, "epoll_ctl");
            goto bad;
        }
        return &t->base;
    }
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        sfail(err, errlen, "socket");
        goto bad;
    }
    if (connect(s, (struct sockaddr *)&a, alen) != 0) {
        snprintf(err, errlen, "cannot connect to %s: %s (is a flashpool-node listening on it on this host?)", endpoint,
                 strerror(errno));
        close(s);
        goto bad;
    }
    t->c = calloc(1, sizeof(*t->c));
    if (!t->c) {
        close(s);
        snprintf(err, errlen, "out of memory");
        goto bad;
    }
    t->cap = 1;
    char e[200];
    t->c[0] = conn_setup(t, s, 1, e, sizeof e);
    if (!t->c[0]) {
        snprintf(err, errlen, "%s: %s", endpoint, e);
        goto bad;
    }
    t->n = 1;
    ev = (struct epoll_event){.events = EPOLLIN | EPOLLRDHUP, .data.u64 = 2};
    if (epoll_ctl(t->ep, EPOLL_CTL_ADD, t->c[0]->sock, &ev) != 0) {
        sfail(err, errlen, "epoll_ctl");
        goto bad;
    }
    return &t->base;
bad:
    shm_close(&t->base);
    return NULL;
}
