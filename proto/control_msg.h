/* control_msg.h — sending and reading the protobuf control plane
 * (flashpool.proto) over a transport, shared by node_client.c and the
 * expert node: a packed fp.Control rides in a CONTROL frame, a packed
 * fp.Error in an ERROR frame (proto/frame.h). */
#ifndef FP_CONTROL_MSG_H
#define FP_CONTROL_MSG_H

#include <stddef.h>
#include <stdint.h>
#include "flashpool.pb-c.h"
#include "frame.h"
#include "model_fingerprint.h"
#include "transport.h"

/* Pack c into a CONTROL frame and send it. 0 / 1 (no room) / -1 (err). */
int control_send(transport *t, const tp_peer *to, uint64_t request_id, const Fp__Control *c, int timeout_ms,
                 char *err, size_t errlen);
/* An ERROR frame with a packed fp.Error {code, message, request_id}. */
int control_send_error(transport *t, const tp_peer *to, uint64_t request_id, int code, const char *message,
                       int timeout_ms, char *err, size_t errlen);

/* Unpack the payload of a decoded CONTROL / ERROR frame; NULL when it is
 * not a valid message. Free with fp__control__free_unpacked /
 * fp__error__free_unpacked (NULL allocator). */
Fp__Control *control_unpack(const frame_view *v);
Fp__Error *control_unpack_error(const frame_view *v);

/* model_fingerprint <-> fp.ModelFingerprint. to_pb points pb at fp's own
 * arrays (fp must outlive pb); from_pb validates (32-byte hash, at most
 * FP_FINGERPRINT_MAX_TYPES types) and returns 0 / -1. */
void control_fp_to_pb(const model_fingerprint *fp, Fp__ModelFingerprint *pb);
int control_fp_from_pb(const Fp__ModelFingerprint *pb, model_fingerprint *fp);

/* fp.Error.Code name ("ERROR_FINGERPRINT" -> "fingerprint mismatch"). */
const char *control_error_name(int code);

#endif
