/* ring.h — the protocol logic shared by the one-sided ring transports
 * (shm://, rdma://; design.md §4, docs/transports.md).
 *
 * Each side of a link owns a RECEIVE ring (a power-of-two byte array) that
 * the peer writes into with one-sided "write + immediate" operations: the
 * data lands at an offset the sender chose, then a 32-bit immediate and the
 * byte count appear in the receiver's completion queue (RDMA WRITE WITH
 * IMMEDIATE; the shm transport emulates exactly that). Nothing else moves.
 *
 * Placement is deterministic, so the receiver can check it: message k goes
 * at the sender's running position rounded to RING_ALIGN; if it would cross
 * the end of the ring, the rest of the ring is skipped (an implicit pad) and
 * it goes at offset 0. A message never straddles the end.
 *
 * Flow control is by credits: the sender remembers the extent (pad + bytes)
 * of each message in flight; when the receiver releases messages (in any
 * order) it reclaims space up to the oldest message still held and sends a
 * zero-byte write whose immediate says "n more messages freed". The sender
 * then frees those n extents. A sender never has more than the peer's
 * ring_msgs messages or ring_bytes bytes in flight.
 *
 * Rewind: when every message sent has been credited back, the sender
 * starts the next one at offset 0 again (flag in the immediate; the
 * receiver checks it holds nothing and moves its own position the same
 * way). A request/response link then reuses the same cache-warm bytes
 * instead of walking the whole ring (flashpool-ringbench: ~4x faster
 * round trips with 64 MiB rings).
 *
 * Immediate (32 bits): top 2 bits kind, low 30 bits
 *   DATA:   bit 29 rewind, bits 0..28 message sequence number mod 2^29
 *           (checked against the expected)
 *   CREDIT: number of messages freed (1 .. in flight)
 * Everything the peer sends is untrusted: a wrong kind, sequence, length,
 * offset, extent or credit count marks the link broken (ring_link.broken,
 * with the reason) and nothing more is read from it; it never crashes.
 *
 * The transport supplies the two one-sided operations (ring_ops) and the
 * memory; ring.c owns all the bookkeeping. The connection handshake
 * exchanges a ring_hs (sizes, limits, the ring's address and key) encoded
 * as RING_HS_BYTES little-endian bytes, small enough for rdma_cm private
 * data (56 bytes). */
#ifndef FP_RING_H
#define FP_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define RING_ALIGN 64u              /* message start alignment (cache line) */
#define RING_MIN_BYTES 4096u
#define RING_MAX_BYTES (1ull << 32) /* lengths travel as 32-bit byte counts */
#define RING_MAX_MSGS (1u << 20)
#define RING_OFF_UNKNOWN UINT64_MAX /* completion without a claimed offset (RDMA) */

#define RING_IMM_DATA 1u
#define RING_IMM_CREDIT 2u
#define RING_REWIND (1u << 29)
#define RING_SEQ_MASK (RING_REWIND - 1)
#define RING_IMM(kind, v) (((uint32_t)(kind) << 30) | ((uint32_t)(v) & 0x3fffffffu))

/* One completion read from the local completion queue. off is where the
 * writer claims it wrote (shm records carry it; RDMA does not: UNKNOWN). */
typedef struct ring_cqe {
    uint32_t imm;
    uint32_t len;
    uint64_t off;
} ring_cqe;

/* The one-sided operations a transport provides. */
typedef struct ring_ops {
    /* Write the iovecs (len bytes in total, possibly 0) into the PEER's
     * receive ring at byte offset off, then deliver (imm, len, off) to the
     * peer's completion queue, ordered after the data. The buffers may be
     * reused once it returns. 0 / -1 with err (link failed). */
    int (*write_imm)(void *ctx, uint64_t off, const struct iovec *iov, int n, size_t len, uint32_t imm,
                     char *err, size_t errlen);
    /* Next completion from the LOCAL completion queue: 1 filled, 0 none,
     * -1 link failed (err filled). Never blocks. */
    int (*poll)(void *ctx, ring_cqe *c, char *err, size_t errlen);
} ring_ops;

/* Sizes of one receive ring, as advertised in the handshake. */
typedef struct ring_cfg {
    uint64_t ring_bytes;            /* power of two, RING_MIN_BYTES .. RING_MAX_BYTES */
    uint32_t ring_msgs;             /* messages in flight, 1 .. RING_MAX_MSGS */
    uint64_t max_msg;               /* largest message, <= ring_bytes / 2 */
} ring_cfg;

/* Fill defaults from transport_opts-style values (0 = default: 64 MiB,
 * 256 messages, ring_bytes / 2) and validate. 0 / -1 with err. */
int ring_cfg_make(ring_cfg *c, uint64_t ring_bytes, uint32_t ring_msgs, uint64_t max_msg, char *err,
                  size_t errlen);

/* The handshake each side sends: its receive ring and how to reach it. */
#define RING_HS_MAGIC 0x47525046u   /* "FPRG" */
#define RING_HS_VERSION 1u
#define RING_HS_BYTES 40
typedef struct ring_hs {
    ring_cfg cfg;
    uint64_t addr;                  /* RDMA: virtual address; shm: data offset in the memfd */
    uint32_t key;                   /* RDMA: rkey; shm: 0 */
} ring_hs;

void ring_hs_encode(const ring_hs *h, uint8_t out[RING_HS_BYTES]);
/* Decode and validate an untrusted handshake. 0 / -1 with err. */
int ring_hs_decode(const void *buf, size_t len, ring_hs *h, char *err, size_t errlen);

/* A message handed to the user: data points into the local receive ring
 * and stays valid until ring_release(token). */
typedef struct ring_msg {
    const uint8_t *data;
    size_t len;
    uint32_t token;
} ring_msg;

typedef struct ring_slot {
    uint64_t ext;                   /* pad + aligned bytes it occupies */
    uint64_t off;                   /* where the bytes start in the ring */
    uint32_t len;
    uint8_t held;                   /* received, not yet released */
} ring_slot;

typedef struct ring_link {
    ring_ops ops;
    void *ctx;
    /* send side: the peer's receive ring */
    ring_cfg tx;
    int tx_ready;                   /* peer handshake applied */
    uint64_t tx_head, tx_tail;      /* running byte positions (written / freed) */
    uint32_t tx_seq, tx_acked;      /* messages sent / freed by credits */
    uint64_t *tx_ext;               /* [tx.ring_msgs] extent of each in-flight message */
    /* receive side: our ring */
    ring_cfg rx;
    uint8_t *rx_base;
    uint64_t rx_head, rx_tail;      /* running byte positions (received / reclaimed) */
    uint32_t rx_seq, rx_next, rx_freed; /* received / handed out / reclaimed message counts */
    ring_slot *rx_slot;             /* [rx.ring_msgs] */
    /* counters */
    uint64_t msgs_sent, msgs_recv, credits_sent, credits_recv, no_room;
    int broken;
    char why[160];
} ring_link;

/* rx_base: our receive ring (rx->ring_bytes bytes, RING_ALIGN-aligned).
 * 0 / -1 with err. */
int ring_link_init(ring_link *l, const ring_cfg *rx, uint8_t *rx_base, const ring_ops *ops, void *ctx, char *err,
                   size_t errlen);
void ring_link_free(ring_link *l);
/* Apply the peer's (decoded) handshake: sizes of the ring we write into. */
int ring_link_set_peer(ring_link *l, const ring_cfg *peer, char *err, size_t errlen);

/* Send one message. 0 sent, 1 no room now (nothing sent; credits pending),
 * -1 error (too large, link broken) with err. */
int ring_send(ring_link *l, const struct iovec *iov, int n, char *err, size_t errlen);
/* Drain the completion queue: apply credits, register arrived messages.
 * 0 ok, -1 link broken (err filled). */
int ring_progress(ring_link *l, char *err, size_t errlen);
/* Hand out the next arrived message (after ring_progress): 1 / 0 none. */
int ring_next(ring_link *l, ring_msg *m);
/* Messages arrived and not yet handed out. */
uint32_t ring_pending(const ring_link *l);
/* Give a message back (any order); sends a credit when the oldest held
 * message is freed. 0 / -1 (bad token or link failed; err filled). */
int ring_release(ring_link *l, uint32_t token, char *err, size_t errlen);

#endif
