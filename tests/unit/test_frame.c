/* test_frame.c — fuzz-style test of the data-plane frame decoder
 * (proto/frame.c) run directly, without processes or sockets, so that
 * ASan sees every read: valid DISPATCH / COMBINE / CONTROL / ERROR frames
 * decode to exactly what was encoded; then thousands of damaged frames —
 * every truncation, oversized buffers, headers announcing huge counts,
 * random garbage, random bit flips with and without CRC — are each either
 * refused with a named error or decoded into a view that stays inside the
 * buffer and satisfies the documented content rules. Each mutated frame is
 * copied into a buffer of exactly its length so an over-read is an ASan
 * error, not a silent pass. (test_node.c covers the node's reaction to
 * garbage on a live link; this file covers the decoder itself.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "control_msg.h"
#include "frame.h"

#define E 512                       /* row width: 2 Q8_K blocks */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {         /* xorshift64*: deterministic cases */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

/* A frame flattened into one malloc'd buffer (as a transport delivers it). */
typedef struct flat {
    uint8_t *buf;
    size_t len;
} flat;

static flat flatten(const struct iovec *iov, int n) {
    flat f = {NULL, 0};
    for (int i = 0; i < n; i++) f.len += iov[i].iov_len;
    f.buf = malloc(f.len);
    assert_non_null(f.buf);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        memcpy(f.buf + o, iov[i].iov_base, iov[i].iov_len);
        o += iov[i].iov_len;
    }
    return f;
}

typedef struct fixture {
    int n_tokens, n_items;
    block_q8_K *xq;
    expert_work *items;
    float *out;
    uint8_t pb[256];
    size_t pb_len;
    flat dispatch, dispatch_crc, combine, combine_crc, control, error;
} fixture;

static fixture fx;

static void make_fixture(void) {
    fx.n_tokens = 3;
    fx.n_items = 5;
    float *x = malloc(sizeof(float) * E * (size_t)fx.n_tokens);
    for (int i = 0; i < E * fx.n_tokens; i++) x[i] = (float)((int)(rnd() % 2001) - 1000) / 97.0f;
    fx.xq = malloc(sizeof(block_q8_K) * (E / QK_K) * (size_t)fx.n_tokens);
    for (int t = 0; t < fx.n_tokens; t++) quantize_row_q8_K(x + (size_t)t * E, fx.xq + (size_t)t * (E / QK_K), E);
    free(x);
    fx.items = malloc(sizeof(expert_work) * (size_t)fx.n_items);
    for (int i = 0; i < fx.n_items; i++) {
        fx.items[i].token = i % fx.n_tokens;
        fx.items[i].expert = 7 * i + 1;
        fx.items[i].weight = 0.125f * (float)(i + 1);
    }
    fx.out = malloc(sizeof(float) * E * (size_t)fx.n_items);
    for (int i = 0; i < E * fx.n_items; i++) fx.out[i] = (float)i * 0.5f - 3.0f;

    uint8_t hdr[FRAME_HDR_BYTES];
    struct iovec iov[3];
    int n = frame_build_dispatch(hdr, iov, 41, 2, fx.n_tokens, E, fx.xq, fx.n_items, fx.items, 0);
    assert_int_equal(n, 3);
    fx.dispatch = flatten(iov, n);
    n = frame_build_dispatch(hdr, iov, 42, 2, fx.n_tokens, E, fx.xq, fx.n_items, fx.items, 1);
    fx.dispatch_crc = flatten(iov, n);
    n = frame_build_combine(hdr, iov, 43, 2, fx.n_items, E, fx.out, 12345, 0);
    assert_int_equal(n, 2);
    fx.combine = flatten(iov, n);
    n = frame_build_combine(hdr, iov, 44, 2, fx.n_items, E, fx.out, 12345, 1);
    fx.combine_crc = flatten(iov, n);

    Fp__Heartbeat hb = FP__HEARTBEAT__INIT;
    hb.seq = 99;
    hb.time_ns = 123456789;
    Fp__Control c = FP__CONTROL__INIT;
    c.body_case = FP__CONTROL__BODY_HEARTBEAT;
    c.heartbeat = &hb;
    fx.pb_len = fp__control__get_packed_size(&c);
    assert_true(fx.pb_len <= sizeof fx.pb);
    fp__control__pack(&c, fx.pb);
    n = frame_build_protobuf(hdr, iov, FRAME_CONTROL, 45, 0, fx.pb, fx.pb_len, 0);
    assert_int_equal(n, 2);
    fx.control = flatten(iov, n);

    Fp__Error pe = FP__ERROR__INIT;
    pe.code = FP__ERROR__CODE__ERROR_FINGERPRINT;
    pe.message = "model differs";
    uint8_t epb[128];
    const size_t elen = fp__error__pack(&pe, epb);
    n = frame_build_protobuf(hdr, iov, FRAME_ERROR, 46, (uint64_t)pe.code, epb, elen, 1);
    fx.error = flatten(iov, n);
}

static int setup(void **state) {
    (void)state;
    make_fixture();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    flat *all[] = {&fx.dispatch, &fx.dispatch_crc, &fx.combine, &fx.combine_crc, &fx.control, &fx.error};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]->buf);
    free(fx.xq);
    free(fx.items);
    free(fx.out);
    return 0;
}

/* Decode buf[0..len) from an exactly sized copy. On FRAME_OK, check the
 * view against the decoder's promises and touch every byte it points at
 * (ASan catches a view that reaches outside the buffer). Returns the code. */
static int decode_checked(const uint8_t *src, size_t len, const frame_limits *lim) {
    uint8_t *b = malloc(len ? len : 1);
    assert_non_null(b);
    if (len) memcpy(b, src, len);
    frame_view v;
    char err[256] = "";
    const int rc = frame_decode(b, len, lim, &v, err, sizeof err);
    assert_true(rc >= FRAME_OK && rc <= FRAME_E_ALIGN);
    assert_non_null(frame_err_name(rc));
    if (rc != FRAME_OK) {
        assert_true(err[0] != '\0');            /* every refusal says why */
    } else {
        assert_int_equal(v.h.magic, FRAME_MAGIC);
        assert_int_equal(v.h.version, FRAME_VERSION);
        assert_int_equal(len, FRAME_HDR_BYTES + v.h.payload_len);
        assert_true(v.payload == b + FRAME_HDR_BYTES);
        volatile uint8_t sink = 0;
        for (uint64_t i = 0; i < v.h.payload_len; i++) sink ^= v.payload[i];
        (void)sink;
        if (v.h.kind == FRAME_DISPATCH) {
            assert_true(v.h.n_embd % QK_K == 0 && v.h.n_embd <= lim->max_embd);
            assert_true(v.h.n_tokens <= lim->max_tokens && v.h.n_items <= lim->max_items);
            assert_int_equal(v.h.payload_len, frame_dispatch_bytes(v.h.n_tokens, v.h.n_items, v.h.n_embd));
            const size_t nb = (size_t)v.h.n_tokens * (v.h.n_embd / QK_K);
            for (size_t k = 0; k < nb; k++) {
                int sum[QK_K / 16] = {0};
                for (int q = 0; q < QK_K; q++) {
                    assert_true(v.xq[k].qs[q] >= -127);
                    sum[q / 16] += v.xq[k].qs[q];
                }
                for (int g = 0; g < QK_K / 16; g++) assert_int_equal(sum[g], v.xq[k].bsums[g]);
            }
            for (uint32_t i = 0; i < v.h.n_items; i++) {
                assert_true(v.items[i].token >= 0 && (uint32_t)v.items[i].token < v.h.n_tokens);
                assert_true(v.items[i].weight == v.items[i].weight);   /* not NaN */
            }
        } else if (v.h.kind == FRAME_COMBINE) {
            assert_int_equal(v.h.payload_len, frame_combine_bytes(v.h.n_items, v.h.n_embd));
        } else if (v.h.kind == FRAME_CONTROL) {
            Fp__Control *c = control_unpack(&v);    /* may be NULL on damaged bytes: fine */
            if (c) fp__control__free_unpacked(c, NULL);
        } else {
            assert_int_equal(v.h.kind, FRAME_ERROR);
            Fp__Error *pe = control_unpack_error(&v);
            if (pe) fp__error__free_unpacked(pe, NULL);
        }
    }
    free(b);
    return rc;
}

/* The untouched frames decode to what was encoded. */
static void test_roundtrip(void **state) {
    (void)state;
    frame_limits lim;
    frame_limits_default(&lim);
    frame_view v;
    char err[256];
    assert_int_equal(frame_decode(fx.dispatch.buf, fx.dispatch.len, &lim, &v, err, sizeof err), FRAME_OK);
    assert_int_equal(v.h.kind, FRAME_DISPATCH);
    assert_int_equal(v.h.request_id, 41);
    assert_int_equal(v.h.layer, 2);
    assert_int_equal(v.h.n_tokens, fx.n_tokens);
    assert_int_equal(v.h.n_items, fx.n_items);
    assert_int_equal(v.h.n_embd, E);
    assert_memory_equal(v.xq, fx.xq, sizeof(block_q8_K) * (E / QK_K) * (size_t)fx.n_tokens);
    assert_memory_equal(v.items, fx.items, sizeof(expert_work) * (size_t)fx.n_items);

    assert_int_equal(frame_decode(fx.combine_crc.buf, fx.combine_crc.len, &lim, &v, err, sizeof err), FRAME_OK);
    assert_int_equal(v.h.kind, FRAME_COMBINE);
    assert_int_equal(v.h.request_id, 44);
    assert_int_equal(v.h.aux, 12345);
    assert_true(v.h.flags & FRAME_F_CRC);
    assert_memory_equal(v.out, fx.out, sizeof(float) * E * (size_t)fx.n_items);

    assert_int_equal(frame_decode(fx.control.buf, fx.control.len, &lim, &v, err, sizeof err), FRAME_OK);
    assert_int_equal(v.h.kind, FRAME_CONTROL);
    Fp__Control *c = control_unpack(&v);
    assert_non_null(c);
    assert_int_equal(c->body_case, FP__CONTROL__BODY_HEARTBEAT);
    assert_int_equal(c->heartbeat->seq, 99);
    assert_int_equal(c->heartbeat->time_ns, 123456789);
    fp__control__free_unpacked(c, NULL);

    assert_int_equal(frame_decode(fx.error.buf, fx.error.len, &lim, &v, err, sizeof err), FRAME_OK);
    Fp__Error *pe = control_unpack_error(&v);
    assert_non_null(pe);
    assert_int_equal(pe->code, FP__ERROR__CODE__ERROR_FINGERPRINT);
    assert_string_equal(pe->message, "model differs");
    fp__error__free_unpacked(pe, NULL);
}

/* Every prefix of every valid frame is refused as truncated (or, shorter
 * than a header, as truncated too); the header-only decoder agrees on
 * the header part. Extra trailing bytes are refused as well. */
static void test_truncated_and_oversized(void **state) {
    (void)state;
    frame_limits lim;
    frame_limits_default(&lim);
    const flat *all[] = {&fx.dispatch, &fx.dispatch_crc, &fx.combine, &fx.combine_crc, &fx.control, &fx.error};
    int cases = 0;
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        const flat *f = all[k];
        for (size_t len = 0; len < f->len; len++) {
            assert_int_not_equal(decode_checked(f->buf, len, &lim), FRAME_OK);
            cases++;
        }
        frame_hdr h;
        char err[128];
        assert_int_equal(frame_decode_hdr(f->buf, FRAME_HDR_BYTES - 1, &lim, &h, err, sizeof err),
                         FRAME_E_TRUNCATED);
        assert_int_equal(frame_decode_hdr(f->buf, FRAME_HDR_BYTES, &lim, &h, err, sizeof err), FRAME_OK);
        uint8_t *big = calloc(f->len + 64, 1);
        memcpy(big, f->buf, f->len);
        for (size_t extra = 4; extra <= 64; extra += 4) {
            assert_int_not_equal(decode_checked(big, f->len + extra, &lim), FRAME_OK);
            cases++;
        }
        free(big);
    }
    assert_true(cases > 1000);
}

static void put_u32(uint8_t *b, size_t off, uint32_t v) { memcpy(b + off, &v, 4); }
static void put_u64(uint8_t *b, size_t off, uint64_t v) { memcpy(b + off, &v, 8); }

/* Headers announcing huge or inconsistent sizes: refused before the
 * decoder looks for (or allocates) the payload they claim. */
static void test_oversized_counts(void **state) {
    (void)state;
    frame_limits lim;
    frame_limits_default(&lim);
    char err[256];
    frame_hdr h;
    uint8_t b[FRAME_HDR_BYTES];
    memcpy(b, fx.dispatch.buf, FRAME_HDR_BYTES);
    const struct { size_t off; int width; uint64_t v; } bad[] = {
        {20, 4, 0xFFFFFFFFu}, {24, 4, 0xFFFFFFFFu}, {28, 4, 0xFFFFFFFFu}, {28, 4, 300},
        {28, 4, 0}, {20, 4, 8193}, {24, 4, 8192u * 16 + 1}, {40, 8, UINT64_MAX},
        {40, 8, (1ull << 30) + 1}, {16, 4, 0xFFFFFFFFu}, {16, 4, 1024}, {6, 1, 0}, {6, 1, 9},
        {4, 2, 2}, {0, 4, 0}, {32, 4, FRAME_DT_F32}, {7, 1, 0x80},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t m[FRAME_HDR_BYTES];
        memcpy(m, b, sizeof m);
        if (bad[i].width == 8) put_u64(m, bad[i].off, bad[i].v);
        else if (bad[i].width == 4) put_u32(m, bad[i].off, (uint32_t)bad[i].v);
        else if (bad[i].width == 2) { uint16_t v = (uint16_t)bad[i].v; memcpy(m + bad[i].off, &v, 2); }
        else m[bad[i].off] = (uint8_t)bad[i].v;
        const int rc = frame_decode_hdr(m, sizeof m, &lim, &h, err, sizeof err);
        if (rc == FRAME_OK) fail_msg("header case %zu accepted", i);
        /* the whole-frame decoder refuses it with just the header too */
        assert_int_not_equal(decode_checked(m, sizeof m, &lim), FRAME_OK);
    }
    /* magic and version errors are named as such */
    uint8_t m[FRAME_HDR_BYTES];
    memcpy(m, b, sizeof m);
    m[0] ^= 1;
    assert_int_equal(frame_decode_hdr(m, sizeof m, &lim, &h, err, sizeof err), FRAME_E_MAGIC);
    memcpy(m, b, sizeof m);
    m[4] = 2;
    assert_int_equal(frame_decode_hdr(m, sizeof m, &lim, &h, err, sizeof err), FRAME_E_VERSION);
    assert_int_equal(h.request_id, 41);          /* usable for the error reply */
}

/* Random garbage, with and without a valid-looking header in front. */
static void test_garbage(void **state) {
    (void)state;
    frame_limits lim;
    frame_limits_default(&lim);
    uint8_t *b = malloc(8192);
    int ok = 0;
    for (int i = 0; i < 3000; i++) {
        const size_t len = rnd() % 8192;
        for (size_t j = 0; j < len; j++) b[j] = (uint8_t)rnd();
        if (i % 2 && len >= FRAME_HDR_BYTES) {   /* a plausible header, garbage counts/payload */
            put_u32(b, 0, FRAME_MAGIC);
            b[4] = FRAME_VERSION;
            b[5] = 0;
            b[6] = (uint8_t)(1 + rnd() % 4);
            b[7] = (uint8_t)(rnd() % 2);
            put_u64(b, 40, len - FRAME_HDR_BYTES);
        }
        if (decode_checked(b, len, &lim) == FRAME_OK) ok++;
    }
    /* a few garbage CONTROL/ERROR frames can be well-formed (opaque bytes
     * with a matching length); DISPATCH/COMBINE counts almost never match */
    assert_true(ok < 3000);
    free(b);
}

/* Bit flips of valid frames: 1–4 random bits anywhere. With CRC any
 * payload flip must be refused; without it the frame is refused or
 * decodes to something the content rules accept. */
static void test_bit_flips(void **state) {
    (void)state;
    frame_limits lim;
    frame_limits_default(&lim);
    const flat *all[] = {&fx.dispatch, &fx.dispatch_crc, &fx.combine, &fx.combine_crc, &fx.control, &fx.error};
    const int has_crc[] = {0, 1, 0, 1, 0, 1};
    int refused = 0, accepted = 0;
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        const flat *f = all[k];
        uint8_t *m = malloc(f->len);
        for (int i = 0; i < 1500; i++) {
            memcpy(m, f->buf, f->len);
            const int nflip = 1 + (int)(rnd() % 4);
            int payload_flipped = 0;
            size_t first = 0;
            for (int j = 0; j < nflip; j++) {
                /* half of the flips aim at the header, where the counts are */
                const size_t at = (i % 2) ? rnd() % FRAME_HDR_BYTES : rnd() % f->len;
                if (j == 0) first = at;
                m[at] ^= (uint8_t)(1u << (rnd() % 8));
                if (at >= FRAME_HDR_BYTES) payload_flipped = 1;
            }
            const int changed = memcmp(m, f->buf, f->len) != 0;
            const int rc = decode_checked(m, f->len, &lim);
            if (rc == FRAME_OK) accepted++;
            else refused++;
            /* a single flip in a CRC'd payload is always caught (CRC32C
             * detects every 1–4 bit error in frames this short) */
            if (has_crc[k] && payload_flipped && changed && first >= FRAME_HDR_BYTES && nflip == 1)
                assert_int_equal(rc, FRAME_E_CRC);
            /* a flipped magic is always refused */
            if (nflip == 1 && first < 4) assert_int_equal(rc, FRAME_E_MAGIC);
        }
        free(m);
    }
    assert_true(refused > 1000);
    assert_true(accepted > 0);   /* unprotected payload flips are legitimate data */
}

/* Content rules of DISPATCH: a bad token index, a NaN weight, a -128
 * quant, a wrong bsum, a non-finite scale are each refused as content. */
static void test_dispatch_content(void **state) {
    (void)state;
    frame_limits lim;
    frame_limits_default(&lim);
    const size_t xq_bytes = sizeof(block_q8_K) * (E / QK_K) * (size_t)fx.n_tokens;
    const size_t items_off = FRAME_HDR_BYTES + xq_bytes;
    uint8_t *m = malloc(fx.dispatch.len);
    for (int c = 0; c < 6; c++) {
        memcpy(m, fx.dispatch.buf, fx.dispatch.len);
        block_q8_K *xq = (block_q8_K *)(void *)(m + FRAME_HDR_BYTES);
        expert_work *it = (expert_work *)(void *)(m + items_off);
        switch (c) {
        case 0: it[1].token = fx.n_tokens; break;
        case 1: it[2].token = -1; break;
        case 2: it[0].weight = 0.0f / 0.0f; break;
        case 3: {   /* -128 with its bsum kept consistent: only the quant rule trips */
            const int old = xq[1].qs[5];
            xq[1].qs[5] = -128;
            xq[1].bsums[0] = (int16_t)(xq[1].bsums[0] - 128 - old);
            break;
        }
        case 4: xq[0].bsums[3]++; break;
        default: xq[2].d = 1.0f / 0.0f; break;
        }
        assert_int_equal(decode_checked(m, fx.dispatch.len, &lim), FRAME_E_CONTENT);
    }
    free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_truncated_and_oversized),
        cmocka_unit_test(test_oversized_counts),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_dispatch_content),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
