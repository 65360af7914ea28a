/* test_ring.c — the one-sided ring protocol (proto/ring.c) and the shm://
 * transport that runs it between processes.
 *
 * In-process, two ring_links joined by a loopback "one-sided ops" (memcpy
 * into the other side's ring + a completion FIFO, i.e. exactly the verbs
 * semantics): placement and wrap-around at the deterministic offsets,
 * credit exhaustion (send returns 1 and writes nothing), the in-flight
 * limit, out-of-order release reclaiming only up to the oldest held
 * message, oversize refusal, corrupted completions (sequence, length,
 * offset, kind, credits) marking the link broken without crashing,
 * handshake validation, and thousands of random-size messages released in
 * random order arriving byte-exact.
 *
 * Across processes (fork): an echo peer over shm:// with a small ring
 * (wrap-around + credit waits on every lap), two peers on one listener with
 * replies routed to the right one, a garbage handshake dropped while the
 * listener keeps serving, a killed peer reported as an error (connector)
 * or a vanished peer (listener) instead of a hang. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "ring.h"
#include "transport.h"

#define GUARD_MS 20000              /* failure guards only, never asserted on */

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

/* ---- loopback one-sided ops -------------------------------------------------- */

#define LBQ 8192
typedef struct lb_end {
    uint8_t *ring;
    uint64_t ring_bytes;
    ring_cqe q[LBQ];
    unsigned qh, qt;
    struct lb_end *peer;
    ring_link link;
    int writes;
    uint64_t last_off;
} lb_end;

static int lb_write_imm(void *ctx, uint64_t off, const struct iovec *iov, int n, size_t len, uint32_t imm, char *err,
                        size_t errlen) {
    lb_end *me = ctx, *p = me->peer;
    (void)err;
    (void)errlen;
    assert_true(off + len <= p->ring_bytes);   /* ring.c never asks for a straddling write */
    uint8_t *d = p->ring + off;
    for (int i = 0; i < n; i++) {
        memcpy(d, iov[i].iov_base, iov[i].iov_len);
        d += iov[i].iov_len;
    }
    assert_true(p->qt - p->qh < LBQ);
    p->q[p->qt++ % LBQ] = (ring_cqe){imm, (uint32_t)len, off};
    me->writes++;
    me->last_off = off;
    return 0;
}

static int lb_poll(void *ctx, ring_cqe *c, char *err, size_t errlen) {
    lb_end *me = ctx;
    (void)err;
    (void)errlen;
    if (me->qh == me->qt) return 0;
    *c = me->q[me->qh++ % LBQ];
    return 1;
}

static const ring_ops lb_ops = {lb_write_imm, lb_poll};

typedef struct lb_pair {
    lb_end a, b;
} lb_pair;

static lb_pair *pair_new(uint64_t ring_bytes, uint32_t msgs, uint64_t max_msg) {
    lb_pair *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    ring_cfg cfg;
    char e[200];
    assert_int_equal(ring_cfg_make(&cfg, ring_bytes, msgs, max_msg, e, sizeof e), 0);
    lb_end *ends[2] = {&p->a, &p->b};
    for (int i = 0; i < 2; i++) {
        lb_end *x = ends[i];
        x->peer = ends[1 - i];
        x->ring_bytes = cfg.ring_bytes;
        x->ring = aligned_alloc(RING_ALIGN, cfg.ring_bytes);
        assert_non_null(x->ring);
        memset(x->ring, 0xEE, cfg.ring_bytes);
        assert_int_equal(ring_link_init(&x->link, &cfg, x->ring, &lb_ops, x, e, sizeof e), 0);
    }
    /* the handshake each way, through its byte encoding */
    for (int i = 0; i < 2; i++) {
        uint8_t hb[RING_HS_BYTES];
        ring_hs h = {ends[i]->link.rx, 0x1000, 7}, d;
        ring_hs_encode(&h, hb);
        assert_int_equal(ring_hs_decode(hb, sizeof hb, &d, e, sizeof e), 0);
        assert_int_equal(d.addr, 0x1000);
        assert_int_equal(d.key, 7);
        assert_int_equal(ring_link_set_peer(&ends[1 - i]->link, &d.cfg, e, sizeof e), 0);
    }
    return p;
}

static void pair_free(lb_pair *p) {
    ring_link_free(&p->a.link);
    ring_link_free(&p->b.link);
    free(p->a.ring);
    free(p->b.ring);
    free(p);
}

static int send_fill(lb_end *x, size_t len, uint8_t v) {
    uint8_t *b = malloc(len ? len : 1);
    memset(b, v, len);
    struct iovec iov = {b, len};
    char e[200];
    int r = ring_send(&x->link, &iov, 1, e, sizeof e);
    free(b);
    return r;
}

/* progress + next, asserting a message is there */
static ring_msg recv_one(lb_end *x) {
    char e[200];
    ring_msg m;
    assert_int_equal(ring_progress(&x->link, e, sizeof e), 0);
    assert_int_equal(ring_next(&x->link, &m), 1);
    return m;
}

static void test_handshake(void **state) {
    (void)state;
    char e[200];
    ring_cfg c;
    ring_hs h, d;
    uint8_t b[RING_HS_BYTES];
    assert_int_equal(ring_cfg_make(&c, 0, 0, 0, e, sizeof e), 0);
    assert_int_equal(c.ring_bytes, 64ull << 20);
    assert_int_equal(c.ring_msgs, 256);
    assert_int_equal(c.max_msg, 32ull << 20);
    assert_int_equal(ring_cfg_make(&c, 0, 0, 100ull << 20, e, sizeof e), 0);   /* grows the ring */
    assert_int_equal(c.ring_bytes, 256ull << 20);
    assert_int_equal(ring_cfg_make(&c, 12345, 0, 0, e, sizeof e), -1);        /* not a power of two */
    assert_int_equal(ring_cfg_make(&c, 4096, 0, 4000, e, sizeof e), -1);      /* over half the ring */
    assert_int_equal(ring_cfg_make(&c, 8192, 16, 4096, e, sizeof e), 0);
    h = (ring_hs){c, 0xdeadbeef00ull, 0x1234};
    ring_hs_encode(&h, b);
    assert_int_equal(ring_hs_decode(b, sizeof b, &d, e, sizeof e), 0);
    assert_int_equal(d.cfg.ring_bytes, 8192);
    assert_int_equal(d.cfg.ring_msgs, 16);
    assert_int_equal(d.cfg.max_msg, 4096);
    assert_int_equal(d.addr, 0xdeadbeef00ull);
    assert_int_equal(d.key, 0x1234);
    assert_int_equal(ring_hs_decode(b, sizeof b - 1, &d, e, sizeof e), -1);   /* short */
    uint8_t x[RING_HS_BYTES];
    memcpy(x, b, sizeof x);
    x[0] ^= 1;
    assert_int_equal(ring_hs_decode(x, sizeof x, &d, e, sizeof e), -1);       /* magic */
    memcpy(x, b, sizeof x);
    x[4] = 9;
    assert_int_equal(ring_hs_decode(x, sizeof x, &d, e, sizeof e), -1);       /* version */
    assert_non_null(strstr(e, "version"));
    memcpy(x, b, sizeof x);
    x[8] = 1;                                                                  /* ring 8193 */
    assert_int_equal(ring_hs_decode(x, sizeof x, &d, e, sizeof e), -1);
    memcpy(x, b, sizeof x);
    memset(x + 24, 0, 4);                                                      /* 0 messages */
    assert_int_equal(ring_hs_decode(x, sizeof x, &d, e, sizeof e), -1);
    memcpy(x, b, sizeof x);
    x[17] = 0x30;                                                              /* max_msg 12 KiB > ring/2 */
    assert_int_equal(ring_hs_decode(x, sizeof x, &d, e, sizeof e), -1);
}

static void test_wrap_around(void **state) {
    (void)state;
    lb_pair *p = pair_new(4096, 16, 2048);
    char e[200];
    /* 1000 -> [0,1024), 1500 -> [1024,2560), 1000 -> [2560,3584); then 1600
     * does not fit before 4096: the 512-byte tail is skipped and it goes at
     * 0, once the first two are freed (the third stays held, so no rewind) */
    assert_int_equal(send_fill(&p->a, 1000, 1), 0);
    assert_int_equal(p->a.last_off, 0);
    assert_int_equal(send_fill(&p->a, 1500, 2), 0);
    assert_int_equal(p->a.last_off, 1024);
    assert_int_equal(send_fill(&p->a, 1000, 3), 0);
    assert_int_equal(p->a.last_off, 2560);
    assert_int_equal(send_fill(&p->a, 1600, 4), 1);        /* pad 512 + 1600 > free 512 */
    assert_int_equal(p->a.writes, 3);                      /* nothing written on "no room" */
    ring_msg m1 = recv_one(&p->b), m2 = recv_one(&p->b), m3 = recv_one(&p->b);
    assert_ptr_equal(m1.data, p->b.ring);
    assert_int_equal(m1.len, 1000);
    assert_ptr_equal(m2.data, p->b.ring + 1024);
    assert_int_equal(m2.len, 1500);
    assert_ptr_equal(m3.data, p->b.ring + 2560);
    assert_int_equal(ring_release(&p->b.link, m1.token, e, sizeof e), 0);
    assert_int_equal(ring_release(&p->b.link, m2.token, e, sizeof e), 0);
    assert_int_equal(ring_progress(&p->a.link, e, sizeof e), 0);  /* credits in */
    assert_int_equal(send_fill(&p->a, 1600, 4), 0);
    assert_int_equal(p->a.last_off, 0);                    /* wrapped: never straddles */
    ring_msg m4 = recv_one(&p->b);
    assert_ptr_equal(m4.data, p->b.ring);
    assert_int_equal(m4.len, 1600);
    for (size_t i = 0; i < m4.len; i++) assert_int_equal(m4.data[i], 4);
    for (size_t i = 0; i < m3.len; i++) assert_int_equal(m3.data[i], 3);   /* untouched */
    /* the skipped tail counts as used until the wrapped message is freed */
    assert_int_equal(p->a.link.tx_head - p->a.link.tx_tail, 1024 + 512 + 1600);
    assert_int_equal(ring_release(&p->b.link, m4.token, e, sizeof e), 0);
    assert_int_equal(ring_progress(&p->a.link, e, sizeof e), 0);
    assert_int_equal(p->a.link.tx_head - p->a.link.tx_tail, 1024 + 512 + 1600);   /* m3 still held */
    assert_int_equal(ring_release(&p->b.link, m3.token, e, sizeof e), 0);
    assert_int_equal(ring_progress(&p->a.link, e, sizeof e), 0);
    assert_int_equal(p->a.link.tx_head, p->a.link.tx_tail);
    assert_int_equal(p->a.link.tx_head, 4096 + 1600);
    pair_free(p);
}

/* With everything credited back, the next message starts at offset 0 again. */
static void test_rewind(void **state) {
    (void)state;
    lb_pair *p = pair_new(4096, 16, 2048);
    char e[200];
    for (int i = 0; i < 50; i++) {                         /* request/response: always offset 0 */
        assert_int_equal(send_fill(&p->a, 100 + (size_t)i, (uint8_t)i), 0);
        assert_int_equal(p->a.last_off, 0);
        ring_msg m = recv_one(&p->b);
        assert_ptr_equal(m.data, p->b.ring);
        assert_int_equal(m.data[0], i);
        assert_int_equal(ring_release(&p->b.link, m.token, e, sizeof e), 0);
        assert_int_equal(ring_progress(&p->a.link, e, sizeof e), 0);
    }
    /* two in flight: the second follows the first, no rewind */
    assert_int_equal(send_fill(&p->a, 100, 1), 0);
    assert_int_equal(send_fill(&p->a, 100, 2), 0);
    assert_int_equal(p->a.last_off, 128 + 4096 * 0);
    ring_msg m1 = recv_one(&p->b), m2 = recv_one(&p->b);
    assert_ptr_equal(m2.data, p->b.ring + 128);
    assert_int_equal(ring_release(&p->b.link, m2.token, e, sizeof e), 0);
    assert_int_equal(ring_release(&p->b.link, m1.token, e, sizeof e), 0);
    assert_false(p->b.link.broken);
    pair_free(p);

    /* a peer rewinding while we still hold a message is refused */
    p = pair_new(4096, 16, 2048);
    assert_int_equal(send_fill(&p->a, 100, 1), 0);
    p->b.q[p->b.qt++ % LBQ] = (ring_cqe){RING_IMM(RING_IMM_DATA, RING_REWIND | 1), 10, 0};
    assert_int_equal(ring_progress(&p->b.link, e, sizeof e), -1);
    assert_non_null(strstr(p->b.link.why, "rewound"));
    pair_free(p);
}

static void test_credit_exhaustion(void **state) {
    (void)state;
    lb_pair *p = pair_new(8192, 64, 4096);
    char e[200];
    int sent = 0;
    while (send_fill(&p->a, 1000, (uint8_t)sent) == 0) sent++;
    assert_int_equal(sent, 8);                             /* 8 x 1024-byte extents fill 8 KiB */
    const int w = p->a.writes;
    assert_int_equal(send_fill(&p->a, 1, 0), 1);
    assert_int_equal(p->a.writes, w);
    assert_true(p->a.link.no_room >= 2);
    /* a receiver that only looks does not free anything */
    ring_msg m[8];
    for (int i = 0; i < 8; i++) m[i] = recv_one(&p->b);
    assert_int_equal(ring_progress(&p->a.link, e, sizeof e), 0);
    assert_int_equal(send_fill(&p->a, 1, 0), 1);
    assert_int_equal(ring_release(&p->b.link, m[0].token, e, sizeof e), 0);
    assert_int_equal(ring_progress(&p->a.link, e, sizeof e), 0);
    assert_int_equal(send_fill(&p->a, 1000, 9), 0);        /* exactly the freed extent */
    assert_int_equal(send_fill(&p->a, 1, 0), 1);
    for (int i = 1; i < 8; i++) assert_int_equal(ring_release(&p->b.link, m[i].token, e, sizeof e), 0);
    ring_msg last = recv_one(&p->b);
    assert_int_equal(last.data[0], 9);
    assert_int_equal(ring_release(&p->b.link, last.token, e, sizeof e), 0);
    /* releasing twice is refused without hurting the link */
    assert_int_equal(ring_release(&p->b.link, last.token, e, sizeof e), -1);
    assert_false(p->b.link.broken);
    pair_free(p);

    /* the in-flight message limit binds before the bytes do */
    p = pair_new(1 << 20, 4, 0);
    for (int i = 0; i < 4; i++) assert_int_equal(send_fill(&p->a, 8, 1), 0);
    assert_int_equal(send_fill(&p->a, 8, 1), 1);
    ring_msg x = recv_one(&p->b);
    assert_int_equal(ring_release(&p->b.link, x.token, e, sizeof e), 0);
    assert_int_equal(ring_progress(&p->a.link, e, sizeof e), 0);
    assert_int_equal(send_fill(&p->a, 8, 1), 0);
    pair_free(p);
}

static void test_out_of_order_release(void **state) {
    (void)state;
    lb_pair *p = pair_new(8192, 16, 4096);
    char e[200];
    for (int i = 0; i < 3; i++) assert_int_equal(send_fill(&p->a, 2000, (uint8_t)(10 + i)), 0);
    ring_msg m[3];
    for (int i = 0; i < 3; i++) m[i] = recv_one(&p->b);
    const uint64_t used = p->a.link.tx_head - p->a.link.tx_tail;
    assert_int_equal(used, 3 * 2048);
    assert_int_equal(ring_release(&p->b.link, m[2].token, e, sizeof e), 0);
    assert_int_equal(ring_release(&p->b.link, m[1].token, e, sizeof e), 0);
    assert_int_equal(p->b.link.credits_sent, 0);           /* the oldest is still held */
    assert_int_equal(ring_progress(&p->a.link, e, sizeof e), 0);
    assert_int_equal(p->a.link.tx_head - p->a.link.tx_tail, used);
    for (size_t i = 0; i < m[0].len; i++) assert_int_equal(m[0].data[i], 10);  /* not overwritten */
    assert_int_equal(ring_release(&p->b.link, m[0].token, e, sizeof e), 0);
    assert_int_equal(p->b.link.credits_sent, 1);           /* one credit for all three */
    assert_int_equal(ring_progress(&p->a.link, e, sizeof e), 0);
    assert_int_equal(p->a.link.tx_head, p->a.link.tx_tail);
    assert_int_equal(p->a.link.credits_recv, 1);
    pair_free(p);
}

static void test_oversize_refused(void **state) {
    (void)state;
    lb_pair *p = pair_new(8192, 16, 1000);
    char e[200] = "";
    uint8_t b[1001] = {0};
    struct iovec iov[2] = {{b, 600}, {b, 401}};
    assert_int_equal(ring_send(&p->a.link, iov, 2, e, sizeof e), -1);
    assert_non_null(strstr(e, "limit"));
    assert_int_equal(p->a.writes, 0);
    assert_false(p->a.link.broken);
    iov[1].iov_len = 400;                                  /* exactly the limit, two parts */
    assert_int_equal(ring_send(&p->a.link, iov, 2, e, sizeof e), 0);
    ring_msg m = recv_one(&p->b);
    assert_int_equal(m.len, 1000);
    pair_free(p);
}

/* A corrupted completion marks the receiving link broken; it stays broken. */
static void corrupt_case(ring_cqe bad, const char *why_has) {
    lb_pair *p = pair_new(8192, 8, 4096);
    char e[200];
    assert_int_equal(send_fill(&p->a, 100, 1), 0);         /* one good message first */
    p->b.q[p->b.qt++ % LBQ] = bad;
    assert_int_equal(ring_progress(&p->b.link, e, sizeof e), -1);
    assert_true(p->b.link.broken);
    assert_non_null(strstr(p->b.link.why, why_has));
    assert_int_equal(ring_progress(&p->b.link, e, sizeof e), -1);
    assert_int_equal(send_fill(&p->b, 10, 1), -1);
    pair_free(p);
}

static void test_corrupt_peer(void **state) {
    (void)state;
    corrupt_case((ring_cqe){RING_IMM(RING_IMM_DATA, 5), 10, RING_OFF_UNKNOWN}, "sequence");
    corrupt_case((ring_cqe){RING_IMM(RING_IMM_DATA, 1), 5000, RING_OFF_UNKNOWN}, "limit");
    corrupt_case((ring_cqe){RING_IMM(RING_IMM_DATA, 1), 10, 4096 + 64}, "offset");
    corrupt_case((ring_cqe){RING_IMM(RING_IMM_DATA, 1), 10, 64}, "offset");  /* 128 expected */
    corrupt_case((ring_cqe){RING_IMM(3, 0), 0, 0}, "unknown kind");
    corrupt_case((ring_cqe){RING_IMM(0, 0), 0, 0}, "unknown kind");
    corrupt_case((ring_cqe){RING_IMM(RING_IMM_CREDIT, 1), 0, 0}, "credit");  /* b sent nothing */
    corrupt_case((ring_cqe){RING_IMM(RING_IMM_CREDIT, 0), 0, 0}, "credit");
    corrupt_case((ring_cqe){RING_IMM(RING_IMM_CREDIT, 1), 8, 0}, "credit");

    /* a peer ignoring credits: more bytes than the ring holds */
    lb_pair *p = pair_new(4096, 64, 2048);
    char e[200];
    for (uint32_t s = 0; s < 4; s++) p->b.q[p->b.qt++ % LBQ] = (ring_cqe){RING_IMM(RING_IMM_DATA, s), 2048, RING_OFF_UNKNOWN};
    assert_int_equal(ring_progress(&p->b.link, e, sizeof e), -1);
    assert_non_null(strstr(p->b.link.why, "overran"));
    assert_int_equal(ring_pending(&p->b.link), 2);         /* the two that fitted stay readable */
    pair_free(p);
    /* ... or more messages than the in-flight limit */
    p = pair_new(1 << 16, 2, 0);
    for (uint32_t s = 0; s < 3; s++) p->b.q[p->b.qt++ % LBQ] = (ring_cqe){RING_IMM(RING_IMM_DATA, s), 8, RING_OFF_UNKNOWN};
    assert_int_equal(ring_progress(&p->b.link, e, sizeof e), -1);
    assert_non_null(strstr(p->b.link.why, "in flight"));
    pair_free(p);
}

static void fill_pattern(uint8_t *b, size_t n, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        b[i] = (uint8_t)(x >> 24);
    }
}

static void test_random_roundtrip(void **state) {
    (void)state;
    lb_pair *p = pair_new(1 << 16, 32, 20000);
    char e[200];
    enum { N = 5000, HOLD = 12 };
    uint8_t *buf = malloc(20000), *want = malloc(20000);
    ring_msg held[HOLD];
    uint32_t held_seed[HOLD];
    int nh = 0, sent = 0, got = 0, waits = 0;
    while (got < N) {
        if (sent < N) {
            const size_t len = rnd() % 4 == 0 ? rnd() % 20001 : rnd() % 300;
            fill_pattern(buf, len, (uint32_t)sent);
            /* three iovecs, some empty */
            const size_t c1 = len ? rnd() % (len + 1) : 0, c2 = len - c1 ? rnd() % (len - c1 + 1) : 0;
            struct iovec iov[3] = {{buf, c1}, {buf + c1, c2}, {buf + c1 + c2, len - c1 - c2}};
            int r = ring_send(&p->a.link, iov, 3, e, sizeof e);
            assert_true(r == 0 || r == 1);
            if (r == 0) sent++;
            else waits++;
        }
        assert_int_equal(ring_progress(&p->b.link, e, sizeof e), 0);
        ring_msg m;
        while (nh < HOLD && ring_next(&p->b.link, &m)) {
            held[nh] = m;
            held_seed[nh++] = (uint32_t)got++;
        }
        /* release a random held message (out of order), check its bytes */
        if (nh && (nh == HOLD || rnd() % 2 || sent == N)) {
            const int k = (int)(rnd() % (uint64_t)nh);
            assert_int_equal((uintptr_t)held[k].data % RING_ALIGN, 0);
            fill_pattern(want, held[k].len, held_seed[k]);
            assert_memory_equal(held[k].data, want, held[k].len);
            assert_int_equal(ring_release(&p->b.link, held[k].token, e, sizeof e), 0);
            held[k] = held[nh - 1];
            held_seed[k] = held_seed[--nh];
        }
        assert_int_equal(ring_progress(&p->a.link, e, sizeof e), 0);
    }
    while (nh) assert_int_equal(ring_release(&p->b.link, held[--nh].token, e, sizeof e), 0);
    assert_int_equal(ring_progress(&p->a.link, e, sizeof e), 0);
    assert_int_equal(p->a.link.tx_head, p->a.link.tx_tail);
    assert_true(waits > 0);                                /* credits really limited the sender */
    assert_true(p->a.link.tx_head > 4 * (1 << 16));        /* and the ring wrapped many times */
    free(buf);
    free(want);
    pair_free(p);
}

/* ---- shm:// across processes --------------------------------------------------- */

static void shm_name(char *ep, size_t n, const char *what) {
    snprintf(ep, n, "shm://fp-test-ring-%d-%s", (int)getpid(), what);
}

static transport_opts small_opts(void) {
    transport_opts o;
    transport_opts_default(&o);
    o.ring_bytes = 64 << 10;
    o.ring_msgs = 16;
    return o;
}

/* Child: listen on ep, tell the parent through fd `ready`, echo every
 * message back to its sender until killed (or idle for GUARD_MS). */
static int echo_server(const char *ep, int ready) {
    transport_opts o = small_opts();
    char e[256];
    transport *t = transport_listen(ep, &o, e, sizeof e);
    if (!t) return 2;
    if (write(ready, "x", 1) != 1) return 3;
    for (;;) {
        tp_msg m;
        int r = transport_recv(t, &m, GUARD_MS, e, sizeof e);
        if (r != 1) return 4;
        struct iovec iov = {(void *)m.data, m.len};
        r = transport_send(t, &m.peer, &iov, 1, GUARD_MS, e, sizeof e);
        transport_release(t, &m);
        if (r != 0) return 5;
    }
}

static pid_t spawn_server(const char *ep) {
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(pfd[0]);
        _exit(echo_server(ep, pfd[1]));
    }
    close(pfd[1]);
    char c;
    assert_int_equal(read(pfd[0], &c, 1), 1);
    close(pfd[0]);
    return pid;
}

static int recv_from(transport *t, tp_msg *m) {
    char e[256];
    int r = transport_recv(t, m, GUARD_MS, e, sizeof e);
    if (r != 1) print_error("recv: %d %s\n", r, e);
    return r;
}

/* Send message number i (pattern i, first 4 bytes = i). */
static int send_numbered(transport *t, uint8_t *buf, uint32_t i, size_t len) {
    char e[256];
    fill_pattern(buf, len, i);
    memcpy(buf, &i, 4);
    struct iovec iov[2] = {{buf, 4}, {buf + 4, len - 4}};
    int r = transport_send(t, NULL, iov, 2, GUARD_MS, e, sizeof e);
    if (r) print_error("send: %d %s\n", r, e);
    return r;
}

static void check_numbered(const tp_msg *m, uint32_t i, uint8_t *want) {
    uint32_t idx;
    assert_true(m->len >= 4);
    memcpy(&idx, m->data, 4);
    assert_int_equal(idx, i);
    fill_pattern(want, m->len, i);
    memcpy(want, &i, 4);
    assert_memory_equal(m->data, want, m->len);
    assert_int_equal((uintptr_t)m->data % RING_ALIGN, 0);
}

static void test_shm_echo_and_peer_killed(void **state) {
    (void)state;
    char ep[128], e[256];
    shm_name(ep, sizeof ep, "echo");
    transport_opts o = small_opts();
    transport *t = transport_connect(ep, &o, e, sizeof e);   /* nobody listens yet */
    assert_null(t);
    assert_non_null(strstr(e, "listening"));
    pid_t pid = spawn_server(ep);
    transport *l2 = transport_listen(ep, &o, e, sizeof e);   /* the name is taken */
    assert_null(l2);
    assert_non_null(strstr(e, "another process"));
    t = transport_connect(ep, &o, e, sizeof e);
    assert_non_null(t);
    assert_string_equal(transport_kind(t), "shm");
    uint8_t *buf = malloc(30000), *want = malloc(30000);
    enum { N = 4000, WINDOW = 6 };
    uint32_t sent = 0, got = 0;
    /* a window in flight: the 64 KiB rings wrap every few dozen messages
     * and credits bind both ways */
    while (got < N) {
        while (sent < N && sent - got < WINDOW) {
            const size_t len = 4 + (rnd() % 8 == 0 ? rnd() % 28000 : rnd() % 600);
            assert_int_equal(send_numbered(t, buf, sent, len), 0);
            sent++;
        }
        tp_msg m;
        assert_int_equal(recv_from(t, &m), 1);
        check_numbered(&m, got, want);
        transport_release(t, &m);
        got++;
    }
    /* the server dies: the connector gets an error, not a hang */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    tp_msg m;
    assert_int_equal(transport_wait_any(&t, 1, GUARD_MS, NULL, e, sizeof e), 1);
    assert_int_equal(transport_recv(t, &m, GUARD_MS, e, sizeof e), -1);
    assert_non_null(strstr(e, "closed"));
    /* and it stays reported: a waiter is woken for the error every time */
    assert_int_equal(transport_wait_any(&t, 1, GUARD_MS, NULL, e, sizeof e), 1);
    assert_int_equal(transport_recv(t, &m, 0, e, sizeof e), -1);
    struct iovec iov = {buf, 10};
    assert_int_equal(transport_send(t, NULL, &iov, 1, 0, e, sizeof e), -1);
    free(buf);
    free(want);
    transport_close(t);
}

static void test_shm_two_peers(void **state) {
    (void)state;
    char ep[128], e[256];
    shm_name(ep, sizeof ep, "two");
    pid_t pid = spawn_server(ep);
    transport_opts o = small_opts();
    transport *a = transport_connect(ep, &o, e, sizeof e), *b = transport_connect(ep, &o, e, sizeof e);
    assert_non_null(a);
    assert_non_null(b);
    uint8_t *buf = malloc(4096), *want = malloc(4096);
    for (uint32_t i = 0; i < 500; i++) {
        assert_int_equal(send_numbered(a, buf, 2 * i, 4 + rnd() % 3000), 0);
        assert_int_equal(send_numbered(b, buf, 2 * i + 1, 4 + rnd() % 3000), 0);
        transport *ts[2] = {a, b};
        uint8_t ready[2];
        assert_true(transport_wait_any(ts, 2, GUARD_MS, ready, e, sizeof e) >= 1);
        tp_msg m;
        assert_int_equal(recv_from(b, &m), 1);             /* each gets only its own */
        check_numbered(&m, 2 * i + 1, want);
        transport_release(b, &m);
        assert_int_equal(recv_from(a, &m), 1);
        check_numbered(&m, 2 * i, want);
        transport_release(a, &m);
    }
    transport_close(a);
    /* b still served after a went away */
    assert_int_equal(send_numbered(b, buf, 7, 100), 0);
    tp_msg m;
    assert_int_equal(recv_from(b, &m), 1);
    check_numbered(&m, 7, want);
    transport_release(b, &m);
    transport_close(b);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    free(buf);
    free(want);
}

/* Listener side: a garbage handshake is dropped, a real peer is served, and
 * once that peer is killed, sends to it fail instead of hanging. */
static void test_shm_listener_side(void **state) {
    (void)state;
    char ep[128], e[256];
    shm_name(ep, sizeof ep, "lis");
    transport_opts o = small_opts();
    transport *l = transport_listen(ep, &o, e, sizeof e);
    assert_non_null(l);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        const int k = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "flashpool-shm:%s", ep + 6);
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + k)) != 0)
            _exit(2);
        char junk[RING_HS_BYTES];
        memset(junk, 0x5a, sizeof junk);
        if (write(s, junk, sizeof junk) != (ssize_t)sizeof junk) _exit(3);
        close(s);
        transport_opts co = small_opts();
        char ce[256];
        transport *t = transport_connect(ep, &co, ce, sizeof ce);
        if (!t) _exit(4);
        struct iovec iov = {"hello", 5};
        if (transport_send(t, NULL, &iov, 1, GUARD_MS, ce, sizeof ce)) _exit(5);
        pause();
        _exit(0);
    }
    tp_msg m;
    assert_int_equal(recv_from(l, &m), 1);
    assert_int_equal(m.len, 5);
    assert_memory_equal(m.data, "hello", 5);
    tp_peer peer = m.peer;
    transport_release(l, &m);
    struct iovec iov = {"hi", 2};
    assert_int_equal(transport_send(l, &peer, &iov, 1, 0, e, sizeof e), 0);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    int r = 0;
    for (int i = 0; i < 200 && r == 0; i++) {
        assert_true(transport_recv(l, &m, 100, e, sizeof e) == 0);   /* the listener itself is fine */
        r = transport_send(l, &peer, &iov, 1, 0, e, sizeof e);
    }
    assert_int_equal(r, -1);
    assert_non_null(strstr(e, "gone"));
    transport_close(l);
}

/* rdma:// builds and links; without an adapter it must say so clearly. */
static void test_rdma_without_device(void **state) {
    (void)state;
    char e[256] = "";
    transport_opts o;
    transport_opts_default(&o);
    o.curve_secret = "0123456789012345678901234567890123456789";
    assert_null(transport_listen("rdma://127.0.0.1:0", &o, e, sizeof e));
    assert_non_null(strstr(e, "--plain"));                 /* keys are refused, not dropped */
    int ndev = 0;
    struct ibv_device **d = ibv_get_device_list(&ndev);
    if (d) ibv_free_device_list(d);
    if (ndev > 0) skip();                                  /* a real adapter: nothing to check here */
    transport_opts_default(&o);
    assert_null(transport_listen("rdma://127.0.0.1:0", &o, e, sizeof e));
    assert_non_null(strstr(e, "no RDMA device"));
    assert_null(transport_connect("rdma://127.0.0.1:7471", &o, e, sizeof e));
    assert_non_null(strstr(e, "no RDMA device"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake),
        cmocka_unit_test(test_wrap_around),
        cmocka_unit_test(test_rewind),
        cmocka_unit_test(test_credit_exhaustion),
        cmocka_unit_test(test_out_of_order_release),
        cmocka_unit_test(test_oversize_refused),
        cmocka_unit_test(test_corrupt_peer),
        cmocka_unit_test(test_random_roundtrip),
        cmocka_unit_test(test_shm_echo_and_peer_killed),
        cmocka_unit_test(test_shm_two_peers),
        cmocka_unit_test(test_shm_listener_side),
        cmocka_unit_test(test_rdma_without_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
