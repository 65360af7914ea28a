/* control_msg.c — protobuf control messages in frames (see control_msg.h). */
#include "control_msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int send_pb(transport *t, const tp_peer *to, int kind, uint64_t request_id, uint64_t aux,
                   const ProtobufCMessage *m, int timeout_ms, char *err, size_t errlen) {
    const size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t stackbuf[1024];
    uint8_t *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
    if (!buf) {
        snprintf(err, errlen, "out of memory packing a %zu-byte control message", n);
        return -1;
    }
    protobuf_c_message_pack(m, buf);
    uint8_t hdr[FRAME_HDR_BYTES];
    struct iovec iov[2];
    int ni = frame_build_protobuf(hdr, iov, kind, request_id, aux, buf, n, 0);
    int r = transport_send(t, to, iov, ni, timeout_ms, err, errlen);
    if (buf != stackbuf) free(buf);
    return r;
}

int control_send(transport *t, const tp_peer *to, uint64_t request_id, const Fp__Control *c, int timeout_ms,
                 char *err, size_t errlen) {
    return send_pb(t, to, FRAME_CONTROL, request_id, 0, &c->base, timeout_ms, err, errlen);
}

int control_send_error(transport *t, const tp_peer *to, uint64_t request_id, int code, const char *message,
                       int timeout_ms, char *err, size_t errlen) {
    Fp__Error e = FP__ERROR__INIT;
    e.code = (Fp__Error__Code)code;
    e.message = (char *)(message ? message : "");
    e.request_id = request_id;
    return send_pb(t, to, FRAME_ERROR, request_id, (uint64_t)code, &e.base, timeout_ms, err, errlen);
}

Fp__Control *control_unpack(const frame_view *v) {
    if (v->h.kind != FRAME_CONTROL) return NULL;
    return fp__control__unpack(NULL, (size_t)v->h.payload_len, v->payload);
}

Fp__Error *control_unpack_error(const frame_view *v) {
    if (v->h.kind != FRAME_ERROR) return NULL;
    return fp__error__unpack(NULL, (size_t)v->h.payload_len, v->payload);
}

void control_fp_to_pb(const model_fingerprint *fp, Fp__ModelFingerprint *pb) {
    fp__model_fingerprint__init(pb);
    pb->file_size = fp->file_size;
    pb->sha256.len = 32;
    pb->sha256.data = (uint8_t *)fp->sha256;
    pb->n_quant_types = (size_t)fp->n_types;
    pb->quant_types = (uint32_t *)fp->types;
}

int control_fp_from_pb(const Fp__ModelFingerprint *pb, model_fingerprint *fp) {
    memset(fp, 0, sizeof(*fp));
    if (!pb || pb->sha256.len != 32 || pb->n_quant_types > FP_FINGERPRINT_MAX_TYPES) return -1;
    fp->file_size = pb->file_size;
    memcpy(fp->sha256, pb->sha256.data, 32);
    fp->n_types = (int)pb->n_quant_types;
    for (size_t i = 0; i < pb->n_quant_types; i++) fp->types[i] = pb->quant_types[i];
    return 0;
}

const char *control_error_name(int code) {
    switch (code) {
    case FP__ERROR__CODE__ERROR_NONE: return "no error";
    case FP__ERROR__CODE__ERROR_PROTOCOL: return "protocol error";
    case FP__ERROR__CODE__ERROR_VERSION: return "unsupported protocol version";
    case FP__ERROR__CODE__ERROR_FINGERPRINT: return "model fingerprint mismatch";
    case FP__ERROR__CODE__ERROR_NOT_READY: return "no HELLO yet";
    case FP__ERROR__CODE__ERROR_NOT_ASSIGNED: return "expert not assigned to this node";
    case FP__ERROR__CODE__ERROR_SHAPE: return "shape mismatch";
    case FP__ERROR__CODE__ERROR_NO_MEMORY: return "out of memory";
    case FP__ERROR__CODE__ERROR_LOADING: return "still loading";
    case FP__ERROR__CODE__ERROR_DRAINING: return "draining";
    case FP__ERROR__CODE__ERROR_INTERNAL: return "internal error";
    case FP__ERROR__CODE__ERROR_IO: return "model file read error";
    case FP__ERROR__CODE__ERROR_AUTH: return "not authorised";
    default: return "unknown error";
    }
}
