/* frame.h — the data-plane frame between a coordinator and an expert node
 * (design.md §4, docs/protocol.md).
 *
 * A frame is a fixed 56-byte little-endian header followed by raw payload
 * bytes, so a transport moves it as a list of iovecs without copying or
 * re-encoding:
 *
 *   off size field
 *    0   4   magic        "FPL1" = 0x314C5046
 *    4   2   version      FRAME_VERSION
 *    6   1   kind         enum frame_kind
 *    7   1   flags        FRAME_F_*
 *    8   8   request_id   chosen by the coordinator, echoed by the node
 *   16   4   layer        i32 (DISPATCH/COMBINE), else 0
 *   20   4   n_tokens     DISPATCH: activation rows
 *   24   4   n_items      DISPATCH/COMBINE: (token, expert) items
 *   28   4   n_embd       DISPATCH/COMBINE: row width
 *   32   4   dtype        enum frame_dtype of the payload
 *   36   4   crc32c       CRC32C of the payload when FRAME_F_CRC, else 0
 *   40   8   payload_len  bytes after the header
 *   48   8   aux          COMBINE: node compute time in ns; ERROR: error code
 *
 * Payloads:
 *   DISPATCH (dtype Q8K_ITEMS): n_tokens × (n_embd/256) block_q8_K (292 B
 *            each, exactly quant.h's layout), then n_items × {token i32,
 *            expert i32, weight f32} (= expert_work).
 *   COMBINE  (dtype F32): n_items × n_embd f32, in the DISPATCH's item order.
 *   ERROR    (dtype PROTOBUF): a packed fp.Error (flashpool.proto).
 *   CONTROL  (dtype PROTOBUF): a packed fp.Control.
 *
 * The decoder trusts nothing: every count is checked against frame_limits
 * and the payload length must equal what the counts imply before anything
 * is allocated or read; DISPATCH content is validated too (token indices,
 * finite weights and scales, Q8_K quants in [-127, 127] with matching
 * bsums). Hosts must be little-endian (checked at compile time). */
#ifndef FP_FRAME_H
#define FP_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include "experts.h"
#include "quant.h"

#define FRAME_MAGIC 0x314C5046u     /* bytes "FPL1" */
#define FRAME_VERSION 1
#define FRAME_HDR_BYTES 56

enum frame_kind {
    FRAME_DISPATCH = 1,
    FRAME_COMBINE = 2,
    FRAME_ERROR = 3,
    FRAME_CONTROL = 4,
};

enum frame_dtype {
    FRAME_DT_NONE = 0,
    FRAME_DT_Q8K_ITEMS = 1,         /* DISPATCH payload */
    FRAME_DT_F32 = 2,               /* COMBINE payload */
    FRAME_DT_PROTOBUF = 3,          /* ERROR / CONTROL payload */
};

enum frame_flags {
    FRAME_F_CRC = 1,                /* crc32c field covers the payload */
};
#define FRAME_F_KNOWN (FRAME_F_CRC)

typedef struct frame_hdr {
    uint32_t magic;
    uint16_t version;
    uint8_t kind, flags;
    uint64_t request_id;
    int32_t layer;
    uint32_t n_tokens, n_items, n_embd;
    uint32_t dtype;
    uint32_t crc32c;
    uint64_t payload_len;
    uint64_t aux;
} frame_hdr;

/* What a receiver accepts. Everything outside is refused before any
 * allocation. frame_limits_default: n_embd <= 16384, n_tokens <= 8192,
 * n_items <= 8192 × 16, max_layer 1024, protobuf payloads <= 16 MiB,
 * any payload <= 1 GiB. */
typedef struct frame_limits {
    uint32_t max_embd;
    uint32_t max_tokens;
    uint32_t max_items;
    int32_t max_layer;              /* layer must be in [0, max_layer) */
    uint64_t max_payload;
    uint64_t max_protobuf;
} frame_limits;

void frame_limits_default(frame_limits *l);

/* Bytes of the payloads the counts imply; 0 on overflow or bad n_embd. */
uint64_t frame_dispatch_bytes(uint32_t n_tokens, uint32_t n_items, uint32_t n_embd);
uint64_t frame_combine_bytes(uint32_t n_items, uint32_t n_embd);

/* CRC32C (Castagnoli) of n bytes, continuing from crc (start with 0). No
 * Debian library provides this polynomial, so frame.c has it (SSE4.2 when
 * the CPU has it, a table otherwise; same result). */
uint32_t frame_crc32c(uint32_t crc, const void *p, size_t n);

/* ---- encoding ------------------------------------------------------------
 * Builders fill hdr_buf (FRAME_HDR_BYTES, owned by the caller) and iov[]
 * (header first, then the caller's payload buffers — nothing is copied) and
 * return the iovec count. The buffers must stay valid until the transport's
 * send returns. with_crc computes the payload CRC32C (costs a pass over it).
 * Returns -1 on counts that no decoder would accept (overflow, n_embd not a
 * multiple of 256). */
void frame_hdr_encode(const frame_hdr *h, uint8_t out[FRAME_HDR_BYTES]);

/* iov[3]: header, activations, items. */
int frame_build_dispatch(uint8_t hdr_buf[FRAME_HDR_BYTES], struct iovec iov[3], uint64_t request_id,
                         int layer, int n_tokens, int n_embd, const block_q8_K *xq, int n_items,
                         const expert_work *items, int with_crc);
/* iov[2]: header, outputs. */
int frame_build_combine(uint8_t hdr_buf[FRAME_HDR_BYTES], struct iovec iov[2], uint64_t request_id,
                        int layer, int n_items, int n_embd, const float *out, uint64_t compute_ns,
                        int with_crc);
/* iov[2]: header, protobuf bytes (ERROR: packed fp.Error, aux = its code;
 * CONTROL: packed fp.Control, aux = 0). */
int frame_build_protobuf(uint8_t hdr_buf[FRAME_HDR_BYTES], struct iovec iov[2], int kind,
                         uint64_t request_id, uint64_t aux, const void *pb, size_t pb_len, int with_crc);

/* ---- decoding ------------------------------------------------------------ */

/* Error classes a decoder reports (mapped to fp.Error codes by callers). */
enum frame_err {
    FRAME_OK = 0,
    FRAME_E_TRUNCATED = 1,          /* shorter than the header or the payload it announces */
    FRAME_E_MAGIC = 2,
    FRAME_E_VERSION = 3,            /* unknown version: answer with an ERROR_VERSION frame */
    FRAME_E_KIND = 4,
    FRAME_E_LIMIT = 5,              /* a count or length over frame_limits */
    FRAME_E_LENGTH = 6,             /* payload_len disagrees with the counts */
    FRAME_E_CRC = 7,
    FRAME_E_CONTENT = 8,            /* payload content invalid (token index, NaN, -128 quant, ...) */
    FRAME_E_ALIGN = 9,              /* payload not 4-byte aligned in memory */
};
const char *frame_err_name(int e);

/* A decoded frame: pointers into the caller's buffer (no copies). */
typedef struct frame_view {
    frame_hdr h;
    const uint8_t *payload;         /* h.payload_len bytes */
    /* DISPATCH */
    const block_q8_K *xq;           /* [n_tokens][n_embd/256] */
    const expert_work *items;       /* [n_items] */
    /* COMBINE */
    const float *out;               /* [n_items][n_embd] */
} frame_view;

/* Header only (buf holds at least FRAME_HDR_BYTES): magic, version, kind,
 * flags, dtype for the kind, counts against lim, payload_len against the
 * counts and lim. Lets a stream reader refuse a frame before reading (or
 * allocating for) its payload. Returns FRAME_OK or a frame_err with err
 * filled. The header is decoded into *h even on error when len allows
 * (request_id is then usable for the error reply). */
int frame_decode_hdr(const void *buf, size_t len, const frame_limits *lim, frame_hdr *h,
                     char *err, size_t errlen);

/* Whole frame in one buffer (len must equal FRAME_HDR_BYTES + payload_len):
 * the header checks, CRC when flagged, and content checks for DISPATCH
 * (0 <= token < n_tokens, finite weights, finite Q8_K scales, quants in
 * [-127, 127], bsums equal to the quant sums) and COMBINE (nothing beyond
 * lengths: NaN outputs are the node's honest answer). Fills *v. */
int frame_decode(const void *buf, size_t len, const frame_limits *lim, frame_view *v,
                 char *err, size_t errlen);

#endif
