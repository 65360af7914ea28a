/* node_server.h — the expert node's service loop (flashpool-node).
 *
 * Listens on one or more endpoints (transport.h), answers HELLO after
 * checking the coordinator's model fingerprint against its own file, loads
 * the experts an ASSIGN names into its own RAM (expert_set.h) with
 * LoadProgress reports, computes DISPATCH frames with experts_compute()
 * (the coordinator's own function: same bits) and answers COMBINE with the
 * same request id. Every frame is validated; a bad one gets an ERROR frame
 * and the loop keeps serving. Single-threaded service loop; compute is
 * spread over a thread pool. */
#ifndef FP_NODE_SERVER_H
#define FP_NODE_SERVER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include "transport.h"

#define NODE_MAX_LISTEN 4

typedef void (*node_log_fn)(void *ud, const char *msg);

typedef struct node_server_opts {
    const char *model_path;
    const char *listen[NODE_MAX_LISTEN];
    int n_listen;
    const char *name;               /* NULL = hostname */
    int threads;                    /* compute threads; 0 = online CPUs */
    uint64_t ram_limit;             /* bytes of experts this node may hold; 0 = no limit */
    int with_crc;                   /* CRC32C on COMBINE payloads */
    transport_opts tp;              /* CurveZMQ keys, ring sizes, ... */
    node_log_fn log;                /* NULL = silent */
    void *log_ud;
    /* Set (from a signal handler) to stop: the frame being handled is
     * finished and answered, then node_server_run returns 0. */
    volatile sig_atomic_t *stop;
    /* Set (from a signal handler; NULL = none) while the operator wants this
     * node drained: the dispatch in hand finishes, every coordinator that
     * said HELLO gets an unsolicited ERROR_DRAINING (request id 0) so it
     * routes around this node, and new DISPATCH and HELLO are refused with
     * ERROR_DRAINING. Clearing it lets coordinators rejoin at their next
     * probe. See docs/resilience.md. */
    volatile sig_atomic_t *drain;
    /* A coordinator that said HELLO and then nothing (no frame, no
     * heartbeat) for this long is taken for dead: its HELLO is forgotten
     * (it must HELLO again; held experts stay). 0 = never. */
    double peer_timeout_s;
} node_server_opts;

void node_server_opts_default(node_server_opts *o);

typedef struct node_server node_server;

/* Opens the model (validates the GGUF and the routed-expert tensors),
 * computes its fingerprint, starts the thread pool and binds every
 * listen endpoint. NULL with err on failure. */
node_server *node_server_open(const node_server_opts *o, char *err, size_t errlen);
/* Serve until *stop or a SHUTDOWN message. 0, or -1 with err when a
 * transport fails beyond recovery. */
int node_server_run(node_server *s, char *err, size_t errlen);
void node_server_close(node_server *s);

/* The endpoint actually bound for listen[i] (ports resolved). */
const char *node_server_endpoint(const node_server *s, int i);

#endif
