/* ring.c — ring placement, credits, completion handling and handshake
 * validation shared by the shm and RDMA transports (see ring.h for the
 * protocol; docs/transports.md for the why). No I/O of its own: the
 * transport's ring_ops move the bytes. */
#include "ring.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMM_MASK 0x3fffffffu

static int is_pow2(uint64_t v) { return v && !(v & (v - 1)); }
static uint64_t align_up(uint64_t v) { return (v + RING_ALIGN - 1) & ~(uint64_t)(RING_ALIGN - 1); }
static uint64_t round_up_ring(uint64_t v, uint64_t ring_bytes) { return (v + ring_bytes - 1) & ~(ring_bytes - 1); }

int ring_cfg_make(ring_cfg *c, uint64_t ring_bytes, uint32_t ring_msgs, uint64_t max_msg, char *err,
                  size_t errlen) {
    if (!ring_bytes) {
        ring_bytes = 64ull << 20;
        /* a caller asking for large messages gets a ring that holds two */
        while (max_msg && ring_bytes / 2 < max_msg && ring_bytes < RING_MAX_BYTES) ring_bytes <<= 1;
    }
    if (!ring_msgs) ring_msgs = 256;
    if (!max_msg) max_msg = ring_bytes / 2;
    if (!is_pow2(ring_bytes) || ring_bytes < RING_MIN_BYTES || ring_bytes > RING_MAX_BYTES) {
        snprintf(err, errlen, "ring size %llu: must be a power of two from %u bytes to 4 GiB",
                 (unsigned long long)ring_bytes, RING_MIN_BYTES);
        return -1;
    }
    if (ring_msgs > RING_MAX_MSGS) {
        snprintf(err, errlen, "ring messages %u: at most %u", ring_msgs, RING_MAX_MSGS);
        return -1;
    }
    if (max_msg > ring_bytes / 2) {
        snprintf(err, errlen, "largest message %llu bytes: at most half the ring (%llu); raise ring_bytes",
                 (unsigned long long)max_msg, (unsigned long long)(ring_bytes / 2));
        return -1;
    }
    c->ring_bytes = ring_bytes;
    c->ring_msgs = ring_msgs;
    c->max_msg = max_msg;
    return 0;
}

/* ---- handshake ------------------------------------------------------------ */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

void ring_hs_encode(const ring_hs *h, uint8_t out[RING_HS_BYTES]) {
    put32(out, RING_HS_MAGIC);
    put16(out + 4, RING_HS_VERSION);
    put16(out + 6, 0);
    put64(out + 8, h->cfg.ring_bytes);
    put64(out + 16, h->cfg.max_msg);
    put32(out + 24, h->cfg.ring_msgs);
    put32(out + 28, h->key);
    put64(out + 32, h->addr);
}

int ring_hs_decode(const void *buf, size_t len, ring_hs *h, char *err, size_t errlen) {
    const uint8_t *p = buf;
    if (len < RING_HS_BYTES) {
        snprintf(err, errlen, "ring handshake: %zu bytes, expected %d", len, RING_HS_BYTES);
        return -1;
    }
    if (get32(p) != RING_HS_MAGIC) {
        snprintf(err, errlen, "ring handshake: bad magic (not a flashpool ring peer)");
        return -1;
    }
    if (get16(p + 4) != RING_HS_VERSION) {
        snprintf(err, errlen, "ring handshake: version %u, this build speaks %u", get16(p + 4), RING_HS_VERSION);
        return -1;
    }
    ring_cfg c;
    char e[160];
    const uint64_t rb = get64(p + 8), mm = get64(p + 16);
    const uint32_t rm = get32(p + 24);
    /* all three must be given explicitly: no defaults filled in for a peer */
    if (!rb || !mm || !rm || ring_cfg_make(&c, rb, rm, mm, e, sizeof e)) {
        snprintf(err, errlen, "ring handshake: peer ring invalid (%s)", rb && mm && rm ? e : "zero size");
        return -1;
    }
    h->cfg = c;
    h->key = get32(p + 28);
    h->addr = get64(p + 32);
    return 0;
}

/* ---- the link --------------------------------------------------------------- */

static int broken(ring_link *l, char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int broken(ring_link *l, char *err, size_t errlen, const char *fmt, ...) {
    if (!l->broken) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(l->why, sizeof l->why, fmt, ap);
        va_end(ap);
        l->broken = 1;
    }
    snprintf(err, errlen, "%s", l->why);
    return -1;
}

int ring_link_init(ring_link *l, const ring_cfg *rx, uint8_t *rx_base, const ring_ops *ops, void *ctx, char *err,
                   size_t errlen) {
    memset(l, 0, sizeof(*l));
    if (!rx_base || ((uintptr_t)rx_base & (RING_ALIGN - 1))) {
        snprintf(err, errlen, "ring: receive ring missing or not %u-byte aligned", RING_ALIGN);
        return -1;
    }
    l->rx = *rx;
    l->rx_base = rx_base;
    l->ops = *ops;
    l->ctx = ctx;
    l->rx_slot = calloc(rx->ring_msgs, sizeof(*l->rx_slot));
    if (!l->rx_slot) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void ring_link_free(ring_link *l) {
    free(l->rx_slot);
    free(l->tx_ext);
    l->rx_slot = NULL;
    l->tx_ext = NULL;
}

int ring_link_set_peer(ring_link *l, const ring_cfg *peer, char *err, size_t errlen) {
    free(l->tx_ext);
    l->tx = *peer;
    l->tx_ext = calloc(peer->ring_msgs, sizeof(*l->tx_ext));
    if (!l->tx_ext) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    l->tx_ready = 1;
    return 0;
}

/* Where a message of ext bytes goes when the running position is head:
 * returns the offset and sets *pad to the bytes skipped at the end. */
static uint64_t place(uint64_t head, uint64_t ring_bytes, uint64_t ext, uint64_t *pad) {
    const uint64_t pos = head & (ring_bytes - 1);
    *pad = pos + ext > ring_bytes ? ring_bytes - pos : 0;
    return *pad ? 0 : pos;
}

int ring_send(ring_link *l, const struct iovec *iov, int n, char *err, size_t errlen) {
    if (l->broken) return broken(l, err, errlen, "%s", l->why);
    if (!l->tx_ready) {
        snprintf(err, errlen, "ring: send before the handshake");
        return -1;
    }
    size_t len = 0;
    for (int i = 0; i < n; i++) len += iov[i].iov_len;
    if (n < 0 || len > l->tx.max_msg) {
        snprintf(err, errlen, "message of %zu bytes is over the peer's limit of %llu bytes", len,
                 (unsigned long long)l->tx.max_msg);
        return -1;
    }
    if (l->tx_seq - l->tx_acked >= l->tx.ring_msgs) {
        l->no_room++;
        return 1;
    }
    const uint64_t ext = align_up(len);
    /* everything credited back: start again at offset 0, whose cache lines
     * are still warm (a request/response link then never walks the ring) */
    const int rewind = l->tx_acked == l->tx_seq && (l->tx_head & (l->tx.ring_bytes - 1));
    const uint64_t head = rewind ? round_up_ring(l->tx_head, l->tx.ring_bytes) : l->tx_head;
    uint64_t pad;
    const uint64_t off = place(head, l->tx.ring_bytes, ext, &pad);
    if (l->tx_head - l->tx_tail + pad + ext > l->tx.ring_bytes) {    /* rewind: both 0 */
        l->no_room++;
        return 1;
    }
    const uint32_t imm = RING_IMM(RING_IMM_DATA, (l->tx_seq & RING_SEQ_MASK) | (rewind ? RING_REWIND : 0));
    if (l->ops.write_imm(l->ctx, off, iov, n, len, imm, err, errlen)) return broken(l, err, errlen, "%s", err);
    if (rewind) l->tx_head = l->tx_tail = head;
    l->tx_ext[l->tx_seq % l->tx.ring_msgs] = pad + ext;
    l->tx_head += pad + ext;
    l->tx_seq++;
    l->msgs_sent++;
    return 0;
}

static int on_data(ring_link *l, const ring_cqe *c, char *err, size_t errlen) {
    const uint32_t v = c->imm & RING_SEQ_MASK;
    if (l->rx_seq - l->rx_freed >= l->rx.ring_msgs)
        return broken(l, err, errlen, "peer overran credits: more than %u messages in flight", l->rx.ring_msgs);
    if (v != (l->rx_seq & RING_SEQ_MASK))
        return broken(l, err, errlen, "peer message sequence %u, expected %u", v, l->rx_seq & RING_SEQ_MASK);
    if (c->imm & RING_REWIND) {
        /* legal only when the peer had every message credited back: then we
         * had released them all, and both sides restart at offset 0 */
        if (l->rx_freed != l->rx_seq || !(l->rx_head & (l->rx.ring_bytes - 1)))
            return broken(l, err, errlen, "peer rewound its ring while %u messages are held",
                          l->rx_seq - l->rx_freed);
        l->rx_head = l->rx_tail = round_up_ring(l->rx_head, l->rx.ring_bytes);
    }
    if (c->len > l->rx.max_msg)
        return broken(l, err, errlen, "peer message of %u bytes over the limit of %llu", c->len,
                      (unsigned long long)l->rx.max_msg);
    const uint64_t ext = align_up(c->len);
    uint64_t pad;
    const uint64_t off = place(l->rx_head, l->rx.ring_bytes, ext, &pad);
    if (c->off != RING_OFF_UNKNOWN && c->off != off)
        return broken(l, err, errlen, "peer wrote at ring offset %llu, protocol says %llu",
                      (unsigned long long)c->off, (unsigned long long)off);
    if (l->rx_head - l->rx_tail + pad + ext > l->rx.ring_bytes)
        return broken(l, err, errlen, "peer overran credits: %llu bytes in a ring of %llu",
                      (unsigned long long)(l->rx_head - l->rx_tail + pad + ext),
                      (unsigned long long)l->rx.ring_bytes);
    ring_slot *s = &l->rx_slot[l->rx_seq % l->rx.ring_msgs];
    s->ext = pad + ext;
    s->off = off;
    s->len = c->len;
    s->held = 1;
    l->rx_head += pad + ext;
    l->rx_seq++;
    l->msgs_recv++;
    return 0;
}

static int on_credit(ring_link *l, const ring_cqe *c, char *err, size_t errlen) {
    const uint32_t v = c->imm & IMM_MASK;
    if (c->len != 0) return broken(l, err, errlen, "peer credit carries %u bytes", c->len);
    if (!l->tx_ready || v == 0 || v > l->tx_seq - l->tx_acked)
        return broken(l, err, errlen, "peer credit for %u messages, %u in flight", v, l->tx_seq - l->tx_acked);
    for (uint32_t i = 0; i < v; i++) {
        l->tx_tail += l->tx_ext[l->tx_acked % l->tx.ring_msgs];
        l->tx_acked++;
    }
    l->credits_recv++;
    return 0;
}

int ring_progress(ring_link *l, char *err, size_t errlen) {
    if (l->broken) return broken(l, err, errlen, "%s", l->why);
    for (;;) {
        ring_cqe c;
        const int r = l->ops.poll(l->ctx, &c, err, errlen);
        if (r < 0) return broken(l, err, errlen, "%s", err);
        if (r == 0) return 0;
        const uint32_t kind = c.imm >> 30;
        int bad;
        if (kind == RING_IMM_DATA) bad = on_data(l, &c, err, errlen);
        else if (kind == RING_IMM_CREDIT) bad = on_credit(l, &c, err, errlen);
        else bad = broken(l, err, errlen, "peer completion of unknown kind %u", kind);
        if (bad) return -1;
    }
}

int ring_next(ring_link *l, ring_msg *m) {
    if (l->rx_next == l->rx_seq) return 0;
    const ring_slot *s = &l->rx_slot[l->rx_next % l->rx.ring_msgs];
    m->data = l->rx_base + s->off;
    m->len = s->len;
    m->token = l->rx_next++;
    return 1;
}

uint32_t ring_pending(const ring_link *l) { return l->rx_seq - l->rx_next; }

int ring_release(ring_link *l, uint32_t token, char *err, size_t errlen) {
    ring_slot *s = &l->rx_slot[token % l->rx.ring_msgs];
    if (token - l->rx_freed >= l->rx_next - l->rx_freed || !s->held) {
        snprintf(err, errlen, "ring: release of message %u that is not held", token);
        return -1;
    }
    s->held = 0;
    uint32_t n = 0;
    while (l->rx_freed != l->rx_next && !l->rx_slot[l->rx_freed % l->rx.ring_msgs].held) {
        l->rx_tail += l->rx_slot[l->rx_freed % l->rx.ring_msgs].ext;
        l->rx_freed++;
        n++;
    }
    if (!n || l->broken) return 0;  /* a broken link takes no credits back */
    if (l->ops.write_imm(l->ctx, 0, NULL, 0, 0, RING_IMM(RING_IMM_CREDIT, n), err, errlen))
        return broken(l, err, errlen, "%s", err);
    l->credits_sent++;
    return 0;
}
