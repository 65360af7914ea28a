/* node_client.h — the coordinator's side of ONE expert node link.
 *
 * Life of a link:
 *   node_client_connect()      open the transport, send HELLO (version +
 *                              model fingerprint); returns at once
 *   ... NODE_EV_HELLO          the node accepted (node_client_info() filled)
 *       or NODE_EV_ERROR       refused: ERROR_FINGERPRINT / ERROR_VERSION
 *   node_client_assign_send()  the experts this node must hold
 *   ... NODE_EV_LOAD           progress; the last one has finished = 1
 *   node_client_dispatch()     one DISPATCH per layer; returns after queuing
 *   ... NODE_EV_RESULT         the COMBINE for a request id (outputs in
 *                              place until node_client_release)
 *       or NODE_EV_ERROR       the node refused that request (code, message)
 *
 * Everything the node sends arrives through node_client_poll() as events,
 * so a pool can run many links from one thread: node_client_wait_any() over
 * all of them, then poll each with timeout 0. The blocking helpers
 * (node_client_open, node_client_assign, node_client_heartbeat,
 * node_client_stats, node_client_drain, node_client_shutdown) are built on
 * the same calls; results that arrive meanwhile are kept and returned by
 * the next node_client_poll, never lost.
 *
 * Request ids: the caller picks DISPATCH ids (non-zero, top bit clear; the
 * client uses ids with the top bit set for its own control messages). The
 * client remembers outstanding dispatches; a COMBINE whose id is unknown
 * (forgotten with node_client_forget after a deadline, or never sent) is
 * dropped and counted as late, and a COMBINE whose counts differ from its
 * DISPATCH is turned into a NODE_EV_ERROR (ERROR_PROTOCOL). Every frame is
 * decoded with frame_decode (untrusted input).
 *
 * Errors are returned (with err filled), never printed. */
#ifndef FP_NODE_CLIENT_H
#define FP_NODE_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include "experts.h"
#include "model_fingerprint.h"
#include "quant.h"
#include "transport.h"

typedef struct node_client node_client;

/* fp.Error codes (flashpool.proto), repeated here so callers need not
 * include the generated header. */
enum node_error_code {
    NODE_ERR_NONE = 0,
    NODE_ERR_PROTOCOL = 1,
    NODE_ERR_VERSION = 2,
    NODE_ERR_FINGERPRINT = 3,
    NODE_ERR_NOT_READY = 4,
    NODE_ERR_NOT_ASSIGNED = 5,
    NODE_ERR_SHAPE = 6,
    NODE_ERR_NO_MEMORY = 7,
    NODE_ERR_LOADING = 8,
    NODE_ERR_DRAINING = 9,
    NODE_ERR_INTERNAL = 10,
    NODE_ERR_IO = 11,
    NODE_ERR_AUTH = 12,
    NODE_ERR_LINK = 100,            /* client-side: the transport failed */
    NODE_ERR_TIMEOUT = 101,         /* client-side: a blocking helper timed out */
};
const char *node_error_name(int code);

typedef struct node_client_opts {
    const char *name;               /* coordinator name sent in HELLO; NULL = "coordinator" */
    int with_crc;                   /* CRC32C on DISPATCH payloads */
    int max_outstanding;            /* dispatches remembered at once; 0 = 64 */
    transport_opts tp;              /* transport options (CurveZMQ keys, ring sizes, ...) */
} node_client_opts;

void node_client_opts_default(node_client_opts *o);

/* What the node said about itself in HELLO_REPLY. */
typedef struct node_info {
    char name[64];
    char isa[16];
    uint32_t proto_version;
    uint64_t capabilities;
    uint64_t ram_bytes;
    uint32_t threads;
    uint32_t n_layer, n_expert, n_embd;
    uint64_t assigned_experts;
} node_info;

/* fp.Stats. */
typedef struct node_stats {
    uint64_t requests, items, bytes_in, bytes_out, compute_ns, rss_bytes, errors;
    uint64_t assigned_experts, assigned_bytes;
} node_stats;

/* Counters kept by the client itself. */
typedef struct node_client_counters {
    uint64_t dispatches, results, errors;
    uint64_t late_dropped;          /* COMBINE/ERROR for an id not outstanding */
    uint64_t bad_frames;            /* undecodable frames from the node (dropped) */
    uint64_t bytes_out, bytes_in;
} node_client_counters;

enum node_event_kind {
    NODE_EV_NONE = 0,
    NODE_EV_HELLO = 1,              /* HELLO accepted; node_client_info() valid */
    NODE_EV_LOAD = 2,               /* load progress of the last ASSIGN */
    NODE_EV_RESULT = 3,             /* COMBINE for request_id */
    NODE_EV_ERROR = 4,              /* an Error (request_id = the DISPATCH it answers, or 0) */
    NODE_EV_HEARTBEAT = 5,          /* reply to node_client_heartbeat_send */
    NODE_EV_STATS = 6,              /* reply to node_client_stats_send */
    NODE_EV_ACK = 7,                /* reply to DRAIN / SHUTDOWN */
};

typedef struct node_event {
    int kind;
    uint64_t request_id;
    /* NODE_EV_RESULT: outputs of the DISPATCH's items in its item order,
     * n_items × n_embd f32, valid until node_client_release(). */
    int layer, n_items, n_embd;
    const float *out;
    uint64_t compute_ns;            /* node's time inside experts_compute */
    double rtt_ms;                  /* RESULT: dispatch sent -> result received;
                                     * HEARTBEAT: round trip */
    /* NODE_EV_ERROR */
    int code;                       /* enum node_error_code */
    char message[256];
    /* NODE_EV_LOAD */
    uint64_t done, total, bytes;
    int finished;
    /* NODE_EV_HEARTBEAT */
    uint64_t seq;
    /* NODE_EV_STATS */
    node_stats stats;
    /* owned by the client */
    tp_msg msg;
} node_event;

/* Open the link and send HELLO with our fingerprint; does not wait. NULL
 * with err on a bad endpoint / transport failure. */
node_client *node_client_connect(const char *endpoint, const model_fingerprint *fp,
                                 const node_client_opts *o, char *err, size_t errlen);
/* connect + wait for the HELLO answer. A refused fingerprint gives NULL and
 * an err naming both fingerprints' difference as the node reported it. */
node_client *node_client_open(const char *endpoint, const model_fingerprint *fp,
                              const node_client_opts *o, int timeout_ms, char *err, size_t errlen);
/* Releases held results, closes the transport. NULL is fine. */
void node_client_close(node_client *c);

const char *node_client_endpoint(const node_client *c);
/* 1 once HELLO was accepted. */
int node_client_ready(const node_client *c);
const node_info *node_client_info(const node_client *c);
void node_client_get_counters(const node_client *c, node_client_counters *out);

/* Next event, waiting up to timeout_ms (0 = poll, < 0 = forever).
 * Returns 1 with *ev filled, 0 on timeout, -1 when the link itself failed
 * (err filled; the client is unusable, close it). A RESULT holds a
 * transport buffer: call node_client_release(c, ev) when done with out. */
int node_client_poll(node_client *c, node_event *ev, int timeout_ms, char *err, size_t errlen);
void node_client_release(node_client *c, node_event *ev);

/* Wait until at least one client may have an event (stashed or on the
 * wire). ready[i] (may be NULL) marks those. Returns count, 0 on timeout,
 * -1 with err. */
int node_client_wait_any(node_client *const *cs, int n, int timeout_ms, uint8_t *ready,
                         char *err, size_t errlen);

/* ---- data plane ---------------------------------------------------------- */

/* Queue one DISPATCH: n_tokens rows of Q8_K activations (n_embd/256 blocks
 * each) and n_items (token, expert, weight) items, tokens indexing the
 * rows. The buffers may be reused on return. 0, or -1 with err (link
 * failure, no HELLO yet, duplicate/invalid id, too many outstanding, counts
 * a node would refuse). The answer is a NODE_EV_RESULT / NODE_EV_ERROR with
 * the same request_id. */
int node_client_dispatch(node_client *c, uint64_t request_id, int layer, int n_tokens, int n_embd,
                         const block_q8_K *xq, int n_items, const expert_work *items,
                         char *err, size_t errlen);
/* Stop waiting for request_id (deadline missed): a late answer is dropped
 * and counted. No-op for an unknown id. */
void node_client_forget(node_client *c, uint64_t request_id);
/* Dispatches not yet answered or forgotten. */
int node_client_outstanding(const node_client *c);

/* Blocking: wait for the RESULT (or ERROR) of request_id; events of other
 * kinds are handled (control replies) or kept for the next poll (other
 * results). 1 with *ev, 0 on timeout, -1 link failure. */
int node_client_wait_result(node_client *c, uint64_t request_id, node_event *ev, int timeout_ms,
                            char *err, size_t errlen);

/* ---- control plane ------------------------------------------------------- */

/* One routed expert; after an ASSIGN the node holds exactly the listed ones. */
typedef struct node_expert_id {
    int32_t layer, expert;
} node_expert_id;

/* Send ASSIGN; progress arrives as NODE_EV_LOAD events. 0 / -1. */
int node_client_assign_send(node_client *c, const node_expert_id *ids, int n, char *err, size_t errlen);
/* Send + wait for the finished LoadProgress (progress_fn, may be NULL, sees
 * every progress event). 0, or -1 with err (node error, timeout, link). */
typedef void (*node_progress_fn)(void *ud, uint64_t done, uint64_t total, uint64_t bytes);
int node_client_assign(node_client *c, const node_expert_id *ids, int n, node_progress_fn fn, void *ud,
                       int timeout_ms, char *err, size_t errlen);

/* Heartbeat: send (the reply is a NODE_EV_HEARTBEAT with rtt_ms) or
 * send-and-wait. */
int node_client_heartbeat_send(node_client *c, uint64_t *seq, char *err, size_t errlen);
int node_client_heartbeat(node_client *c, double *rtt_ms, int timeout_ms, char *err, size_t errlen);

/* Stats: send (reply NODE_EV_STATS) or send-and-wait. */
int node_client_stats_send(node_client *c, char *err, size_t errlen);
int node_client_stats(node_client *c, node_stats *st, int timeout_ms, char *err, size_t errlen);

/* DRAIN: the node answers the dispatches it already has, refuses new ones
 * (NODE_ERR_DRAINING) until the next ASSIGN. Waits for the ACK. */
int node_client_drain(node_client *c, int timeout_ms, char *err, size_t errlen);
/* SHUTDOWN: the node acknowledges and exits. Waits for the ACK. */
int node_client_shutdown(node_client *c, int timeout_ms, char *err, size_t errlen);

#endif
