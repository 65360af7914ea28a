/* frame.c — data-plane frame encoder and strict decoder (see frame.h), and
 * CRC32C. Decoding never allocates: it validates a buffer the transport
 * already holds and returns pointers into it. */
#include "frame.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "flashpool frames are little-endian and sent zero-copy: a little-endian host is required"
#endif

_Static_assert(sizeof(block_q8_K) == 292, "block_q8_K must match the wire layout");
_Static_assert(sizeof(expert_work) == 12, "expert_work must match the wire layout");
_Static_assert(FRAME_HDR_BYTES % 8 == 0, "payload must stay 8-byte aligned after the header");

void frame_limits_default(frame_limits *l) {
    l->max_embd = 16384;
    l->max_tokens = 8192;
    l->max_items = 8192u * 16u;
    l->max_layer = 1024;
    l->max_payload = 1ull << 30;
    l->max_protobuf = 16ull << 20;
}

uint64_t frame_dispatch_bytes(uint32_t n_tokens, uint32_t n_items, uint32_t n_embd) {
    if (n_embd == 0 || n_embd % QK_K) return 0;
    /* all factors < 2^32 and the block size < 2^9: no u64 overflow below */
    const uint64_t rows = (uint64_t)n_tokens * (n_embd / QK_K) * sizeof(block_q8_K);
    return rows + (uint64_t)n_items * sizeof(expert_work);
}

uint64_t frame_combine_bytes(uint32_t n_items, uint32_t n_embd) {
    return (uint64_t)n_items * n_embd * sizeof(float);
}

/* ---- CRC32C ---------------------------------------------------------------
 * Castagnoli polynomial, reflected (0x82F63B78), init/xorout ~0: the iSCSI
 * CRC that SSE4.2's crc32 instruction computes. */

/* Portable path, 4 bits at a time: only hosts without SSE4.2 use it. The
 * table is the CRC of each nibble value (no mutable state). */
static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x105ec76fu, 0x20bd8edeu, 0x30e349b1u, 0x417b1dbcu, 0x5125dad3u, 0x61c69362u, 0x7198540du,
    0x82f63b78u, 0x92a8fc17u, 0xa24bb5a6u, 0xb21572c9u, 0xc38d26c4u, 0xd3d3e1abu, 0xe330a81au, 0xf36e6f75u,
};

static uint32_t crc_sw(uint32_t c, const uint8_t *p, size_t n) {
    while (n--) {
        c ^= *p++;
        c = (c >> 4) ^ crc_nibble[c & 15];
        c = (c >> 4) ^ crc_nibble[c & 15];
    }
    return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const uint8_t *p, size_t n) {
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = _mm_crc32_u64(c64, v);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--) c = _mm_crc32_u8(c, *p++);
    return c;
}

#endif

uint32_t frame_crc32c(uint32_t crc, const void *p, size_t n) {
    uint32_t c = ~crc;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) return ~crc_hw(c, p, n);
#endif
    return ~crc_sw(c, p, n);
}

/* ---- encoding ------------------------------------------------------------ */

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

void frame_hdr_encode(const frame_hdr *h, uint8_t out[FRAME_HDR_BYTES]) {
    put32(out + 0, h->magic);
    put16(out + 4, h->version);
    out[6] = h->kind;
    out[7] = h->flags;
    put64(out + 8, h->request_id);
    put32(out + 16, (uint32_t)h->layer);
    put32(out + 20, h->n_tokens);
    put32(out + 24, h->n_items);
    put32(out + 28, h->n_embd);
    put32(out + 32, h->dtype);
    put32(out + 36, h->crc32c);
    put64(out + 40, h->payload_len);
    put64(out + 48, h->aux);
}

static void hdr_init(frame_hdr *h, int kind, uint64_t request_id) {
    memset(h, 0, sizeof(*h));
    h->magic = FRAME_MAGIC;
    h->version = FRAME_VERSION;
    h->kind = (uint8_t)kind;
    h->request_id = request_id;
}

int frame_build_dispatch(uint8_t hdr_buf[FRAME_HDR_BYTES], struct iovec iov[3], uint64_t request_id,
                         int layer, int n_tokens, int n_embd, const block_q8_K *xq, int n_items,
                         const expert_work *items, int with_crc) {
    if (layer < 0 || n_tokens < 0 || n_items < 0 || n_embd <= 0 || n_embd % QK_K) return -1;
    frame_hdr h;
    hdr_init(&h, FRAME_DISPATCH, request_id);
    h.layer = layer;
    h.n_tokens = (uint32_t)n_tokens;
    h.n_items = (uint32_t)n_items;
    h.n_embd = (uint32_t)n_embd;
    h.dtype = FRAME_DT_Q8K_ITEMS;
    const size_t xb = (size_t)n_tokens * (size_t)(n_embd / QK_K) * sizeof(block_q8_K);
    const size_t ib = (size_t)n_items * sizeof(expert_work);
    h.payload_len = xb + ib;
    if (with_crc) {
        h.flags |= FRAME_F_CRC;
        h.crc32c = frame_crc32c(frame_crc32c(0, xq, xb), items, ib);
    }
    frame_hdr_encode(&h, hdr_buf);
    iov[0] = (struct iovec){hdr_buf, FRAME_HDR_BYTES};
    iov[1] = (struct iovec){(void *)xq, xb};
    iov[2] = (struct iovec){(void *)items, ib};
    return 3;
}

int frame_build_combine(uint8_t hdr_buf[FRAME_HDR_BYTES], struct iovec iov[2], uint64_t request_id,
                        int layer, int n_items, int n_embd, const float *out, uint64_t compute_ns,
                        int with_crc) {
    if (layer < 0 || n_items < 0 || n_embd <= 0 || n_embd % QK_K) return -1;
    frame_hdr h;
    hdr_init(&h, FRAME_COMBINE, request_id);
    h.layer = layer;
    h.n_items = (uint32_t)n_items;
    h.n_embd = (uint32_t)n_embd;
    h.dtype = FRAME_DT_F32;
    h.aux = compute_ns;
    const size_t ob = (size_t)n_items * (size_t)n_embd * sizeof(float);
    h.payload_len = ob;
    if (with_crc) {
        h.flags |= FRAME_F_CRC;
        h.crc32c = frame_crc32c(0, out, ob);
    }
    frame_hdr_encode(&h, hdr_buf);
    iov[0] = (struct iovec){hdr_buf, FRAME_HDR_BYTES};
    iov[1] = (struct iovec){(void *)out, ob};
    return 2;
}

int frame_build_protobuf(uint8_t hdr_buf[FRAME_HDR_BYTES], struct iovec iov[2], int kind,
                         uint64_t request_id, uint64_t aux, const void *pb, size_t pb_len, int with_crc) {
    if (kind != FRAME_ERROR && kind != FRAME_CONTROL) return -1;
    frame_hdr h;
    hdr_init(&h, kind, request_id);
    h.dtype = FRAME_DT_PROTOBUF;
    h.aux = aux;
    h.payload_len = pb_len;
    if (with_crc) {
        h.flags |= FRAME_F_CRC;
        h.crc32c = frame_crc32c(0, pb, pb_len);
    }
    frame_hdr_encode(&h, hdr_buf);
    iov[0] = (struct iovec){hdr_buf, FRAME_HDR_BYTES};
    iov[1] = (struct iovec){(void *)pb, pb_len};
    return 2;
}

/* ---- decoding ------------------------------------------------------------ */

const char *frame_err_name(int e) {
    switch (e) {
    case FRAME_OK: return "ok";
    case FRAME_E_TRUNCATED: return "truncated";
    case FRAME_E_MAGIC: return "bad magic";
    case FRAME_E_VERSION: return "unsupported version";
    case FRAME_E_KIND: return "bad kind";
    case FRAME_E_LIMIT: return "over limit";
    case FRAME_E_LENGTH: return "length mismatch";
    case FRAME_E_CRC: return "crc mismatch";
    case FRAME_E_CONTENT: return "invalid content";
    case FRAME_E_ALIGN: return "misaligned";
    default: return "?";
    }
}

__attribute__((format(printf, 4, 5))) static int ferr(int code, char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

int frame_decode_hdr(const void *buf, size_t len, const frame_limits *lim, frame_hdr *h,
                     char *err, size_t errlen) {
    frame_limits dl;
    if (!lim) {
        frame_limits_default(&dl);
        lim = &dl;
    }
    memset(h, 0, sizeof(*h));
    if (len < FRAME_HDR_BYTES)
        return ferr(FRAME_E_TRUNCATED, err, errlen, "frame of %zu bytes is shorter than the %d-byte header",
                    len, FRAME_HDR_BYTES);
    const uint8_t *p = buf;
    h->magic = get32(p + 0);
    h->version = get16(p + 4);
    h->kind = p[6];
    h->flags = p[7];
    h->request_id = get64(p + 8);
    h->layer = (int32_t)get32(p + 16);
    h->n_tokens = get32(p + 20);
    h->n_items = get32(p + 24);
    h->n_embd = get32(p + 28);
    h->dtype = get32(p + 32);
    h->crc32c = get32(p + 36);
    h->payload_len = get64(p + 40);
    h->aux = get64(p + 48);
    if (h->magic != FRAME_MAGIC) return ferr(FRAME_E_MAGIC, err, errlen, "bad frame magic 0x%08x", h->magic);
    if (h->version != FRAME_VERSION)
        return ferr(FRAME_E_VERSION, err, errlen, "frame version %u, this build speaks version %d",
                    h->version, FRAME_VERSION);
    if (h->flags & ~FRAME_F_KNOWN) return ferr(FRAME_E_KIND, err, errlen, "unknown frame flags 0x%02x", h->flags);
    if (!(h->flags & FRAME_F_CRC) && h->crc32c)
        return ferr(FRAME_E_KIND, err, errlen, "crc32c set without the CRC flag");
    if (h->payload_len > lim->max_payload)
        return ferr(FRAME_E_LIMIT, err, errlen, "payload of %llu bytes over the limit %llu",
                    (unsigned long long)h->payload_len, (unsigned long long)lim->max_payload);
    switch (h->kind) {
    case FRAME_DISPATCH:
    case FRAME_COMBINE: {
        const int disp = h->kind == FRAME_DISPATCH;
        if (h->dtype != (disp ? FRAME_DT_Q8K_ITEMS : FRAME_DT_F32))
            return ferr(FRAME_E_KIND, err, errlen, "%s frame with payload dtype %u", disp ? "DISPATCH" : "COMBINE",
                        h->dtype);
        if (h->layer < 0 || h->layer >= lim->max_layer)
            return ferr(FRAME_E_LIMIT, err, errlen, "layer %d outside [0, %d)", h->layer, lim->max_layer);
        if (h->n_embd == 0 || h->n_embd % QK_K || h->n_embd > lim->max_embd)
            return ferr(FRAME_E_LIMIT, err, errlen, "n_embd %u (must be a multiple of 256, at most %u)",
                        h->n_embd, lim->max_embd);
        if (h->n_items > lim->max_items)
            return ferr(FRAME_E_LIMIT, err, errlen, "%u items over the limit %u", h->n_items, lim->max_items);
        if (disp && (h->n_tokens == 0 || h->n_tokens > lim->max_tokens))
            return ferr(FRAME_E_LIMIT, err, errlen, "%u tokens (must be 1..%u)", h->n_tokens, lim->max_tokens);
        if (!disp && h->n_tokens != 0)
            return ferr(FRAME_E_LENGTH, err, errlen, "COMBINE with n_tokens %u (must be 0)", h->n_tokens);
        const uint64_t want = disp ? frame_dispatch_bytes(h->n_tokens, h->n_items, h->n_embd)
                                   : frame_combine_bytes(h->n_items, h->n_embd);
        if (want != h->payload_len)
            return ferr(FRAME_E_LENGTH, err, errlen, "payload_len %llu but the counts imply %llu",
                        (unsigned long long)h->payload_len, (unsigned long long)want);
        if (want > lim->max_payload)
            return ferr(FRAME_E_LIMIT, err, errlen, "payload of %llu bytes over the limit",
                        (unsigned long long)want);
        break;
    }
    case FRAME_ERROR:
    case FRAME_CONTROL:
        if (h->dtype != FRAME_DT_PROTOBUF)
            return ferr(FRAME_E_KIND, err, errlen, "%s frame with payload dtype %u",
                        h->kind == FRAME_ERROR ? "ERROR" : "CONTROL", h->dtype);
        if (h->layer || h->n_tokens || h->n_items || h->n_embd)
            return ferr(FRAME_E_LENGTH, err, errlen, "protobuf frame with non-zero counts");
        if (h->payload_len > lim->max_protobuf)
            return ferr(FRAME_E_LIMIT, err, errlen, "protobuf payload of %llu bytes over the limit %llu",
                        (unsigned long long)h->payload_len, (unsigned long long)lim->max_protobuf);
        break;
    default:
        return ferr(FRAME_E_KIND, err, errlen, "unknown frame kind %u", h->kind);
    }
    return FRAME_OK;
}

/* Q8_K activations from the wire: finite scale, quants in [-127, 127] (the
 * SIMD IQ2_XXS dot negates activation bytes, quant.h) and bsums that are
 * the sums the kernels assume. */
static int check_q8K(const block_q8_K *b, uint64_t n, char *err, size_t errlen) {
    for (uint64_t i = 0; i < n; i++) {
        if (!isfinite(b[i].d)) return ferr(FRAME_E_CONTENT, err, errlen, "activation block %llu: scale not finite",
                                          (unsigned long long)i);
        for (int g = 0; g < QK_K / 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) {
                const int8_t q = b[i].qs[g * 16 + j];
                if (q == -128)
                    return ferr(FRAME_E_CONTENT, err, errlen, "activation block %llu: quant -128",
                                (unsigned long long)i);
                s += q;
            }
            if (s != b[i].bsums[g])
                return ferr(FRAME_E_CONTENT, err, errlen, "activation block %llu: bsums[%d] %d, quants sum to %d",
                            (unsigned long long)i, g, b[i].bsums[g], s);
        }
    }
    return FRAME_OK;
}

int frame_decode(const void *buf, size_t len, const frame_limits *lim, frame_view *v,
                 char *err, size_t errlen) {
    memset(v, 0, sizeof(*v));
    int rc = frame_decode_hdr(buf, len, lim, &v->h, err, errlen);
    if (rc) return rc;
    const frame_hdr *h = &v->h;
    if (len - FRAME_HDR_BYTES != h->payload_len)
        return ferr(len - FRAME_HDR_BYTES < h->payload_len ? FRAME_E_TRUNCATED : FRAME_E_LENGTH, err, errlen,
                    "frame carries %zu payload bytes, header says %llu", len - FRAME_HDR_BYTES,
                    (unsigned long long)h->payload_len);
    v->payload = (const uint8_t *)buf + FRAME_HDR_BYTES;
    if ((h->kind == FRAME_DISPATCH || h->kind == FRAME_COMBINE) && ((uintptr_t)v->payload & 3))
        return ferr(FRAME_E_ALIGN, err, errlen, "payload at a misaligned address");
    if ((h->flags & FRAME_F_CRC) && frame_crc32c(0, v->payload, h->payload_len) != h->crc32c)
        return ferr(FRAME_E_CRC, err, errlen, "payload CRC32C mismatch");
    if (h->kind == FRAME_DISPATCH) {
        const uint64_t nb = (uint64_t)h->n_tokens * (h->n_embd / QK_K);
        v->xq = (const block_q8_K *)v->payload;
        v->items = (const expert_work *)(v->payload + nb * sizeof(block_q8_K));
        for (uint32_t i = 0; i < h->n_items; i++) {
            expert_work w;
            memcpy(&w, &v->items[i], sizeof w);
            if (w.token < 0 || (uint32_t)w.token >= h->n_tokens)
                return ferr(FRAME_E_CONTENT, err, errlen, "item %u: token %d outside [0, %u)", i, w.token,
                            h->n_tokens);
            if (w.expert < 0) return ferr(FRAME_E_CONTENT, err, errlen, "item %u: expert %d", i, w.expert);
            if (!isfinite(w.weight)) return ferr(FRAME_E_CONTENT, err, errlen, "item %u: weight not finite", i);
        }
        rc = check_q8K(v->xq, nb, err, errlen);
        if (rc) return rc;
    } else if (h->kind == FRAME_COMBINE) {
        v->out = (const float *)v->payload;
    }
    return FRAME_OK;
}
