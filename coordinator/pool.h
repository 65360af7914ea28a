/* pool.h — the pool expert executor (an expert_exec, see expert_exec.h).
 *
 * For each layer it groups the routed (token, expert) items by where each
 * expert lives: the hot-expert cache (computed here), an expert node (one
 * DISPATCH per node with only the activations of that node's tokens), or
 * nowhere but the coordinator's GGUF (read with io_uring and computed here:
 * "SSD streaming" when there are no nodes). submit() sends the dispatches
 * and starts the disk reads, then returns so the engine computes the shared
 * expert while they are in flight; wait() computes the local experts,
 * collects the COMBINE frames and scatters every item's output to its
 * original index. A node that errors, disconnects or misses its deadline is
 * marked down and its work goes to a replica, else is computed locally; the
 * request continues with the same bits (design.md §3, §6).
 *
 * Memory: the expert region of the model's mapping is never touched (and is
 * dropped from RSS at open), so the coordinator holds dense weights + cache
 * budget + stream_slots experts + KV/scratch. */
#ifndef FP_POOL_H
#define FP_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "cluster.h"
#include "expert_cache.h"
#include "expert_exec.h"
#include "model.h"
#include "placement.h"

typedef struct pool pool;

typedef void (*pool_log_fn)(void *ud, const char *msg);

typedef struct pool_opts {
    const cluster *cl;          /* NULL or no nodes: everything local */
    const placement *pl;        /* required when there are nodes */
    size_t cache_bytes;         /* hot-expert cache budget (0 = none) */
    int cache_policy;           /* CACHE_LFU (default) or CACHE_LRU */
    int cache_remote;           /* 1: experts served by nodes may enter the cache too */
    int stream_slots;           /* uncached experts read from disk at once; 0 = 2 x n_expert_used */
    int force_pread;            /* do not try io_uring */
    double deadline_floor_ms;   /* minimum dispatch deadline; 0 = default (1000) */
    double probe_interval_s;    /* how often a down node is retried; 0 = default (2) */
    /* Node links: CurveZMQ with the coordinator's key pair (Z85) and each
     * node's server_key from the cluster, unless plain = 1 (trusted
     * networks and tests only: no authentication, no encryption). */
    int plain;
    const char *curve_public, *curve_secret;
    int with_crc;               /* CRC32C on DISPATCH payloads */
    double connect_timeout_s;   /* HELLO + initial expert load; 0 = default (600) */
    pool_log_fn log;            /* warnings (slow link, node down/up); NULL = silent */
    void *log_ud;
} pool_opts;

void pool_opts_default(pool_opts *o);

/* Latency histogram with fixed upper bounds (ms), for /metrics
 * (coordinator/metrics.h). count[i] is NOT cumulative: observations in
 * (bound[i-1], bound[i]]; count[POOL_HIST_N] is above the last bound. */
#define POOL_HIST_N 12
#define POOL_HIST_BOUNDS_MS {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000}
typedef struct pool_hist {
    uint64_t count[POOL_HIST_N + 1];
    double sum_ms;
} pool_hist;
void pool_hist_add(pool_hist *h, double ms);

typedef struct pool_node_stats {
    char name[CLUSTER_NAME_MAX];
    int up;
    int draining;               /* the node announced a drain: no new work until it rejoins */
    uint64_t dispatches, items, failures, late_dropped, rejoins;
    double rtt_ms;              /* smoothed dispatch round trip, node compute excluded */
    double compute_ms;          /* smoothed node compute per dispatch (as reported) */
    /* for /metrics */
    pool_hist rtt_hist;         /* per answered dispatch: round trip minus node compute */
    pool_hist dispatch_hist;    /* per answered dispatch: DISPATCH sent -> COMBINE received */
    uint64_t bytes_sent, bytes_recv;    /* frames on the link(s) to this node, all incarnations */
    uint64_t deadline_misses;   /* dispatches that got no answer in time */
    uint64_t failover_replica;  /* its failed groups re-sent to another holder */
    uint64_t failover_local;    /* its failed groups computed on this machine */
} pool_node_stats;

typedef struct pool_stats {
    uint64_t layers, items;
    uint64_t items_cached, items_disk, items_remote;
    uint64_t fallback_items;        /* items that did not run where the placement put them first:
                                     * their node failed or was down (replica or local instead) */
    uint64_t redispatches;          /* dispatches re-sent to a replica */
    uint64_t disk_reads, disk_bytes;
    double wait_s;                  /* time spent inside wait() */
    double remote_wait_s;           /* of which waiting for COMBINE frames */
    uint64_t remote_layers;         /* layers that had remote work */
    double layer_rt_s;              /* sum over those of first-dispatch-sent to last-combine-received */
    /* the same for one-token (decode) layers, and the node compute inside
     * them (per layer the slowest request's reported compute time): their
     * difference is what the network and protocol cost per layer */
    uint64_t decode_remote_layers;
    double decode_layer_rt_s, decode_node_compute_s;
    /* the longest one layer waited for its remote work, failover (replica
     * or local compute) included: the worst stall a node fault caused */
    double max_layer_wait_s;
    expert_cache_stats cache;
    int n_nodes;
    pool_node_stats *nodes;         /* [n_nodes], owned by the pool, valid until the next call */
    const char *io_backend;         /* "io_uring" or "pread" */
} pool_stats;

/* tp/k: the engine's thread pool and kernels (engine_core(e)->lc). The model
 * must outlive the pool. With nodes, connects to each (HELLO + fingerprint)
 * and assigns them their experts; a node that cannot be reached at open is an
 * error (the placement expects it), later failures are not. */
pool *pool_open(const model *m, threadpool *tp, const quant_kernels *k, const pool_opts *o,
                char *err, size_t errlen);
void pool_close(pool *p);
expert_exec pool_exec(pool *p);
void pool_get_stats(pool *p, pool_stats *st);
/* Between requests (same thread as the engine, never during a forward):
 * heartbeats idle nodes (a silent one is marked down), probes down nodes
 * and finishes rejoins, so node state is current when the next request
 * starts and nodes see a live coordinator. A server should call it about
 * once a second while idle; during generation every layer does this. */
void pool_tick(pool *p);
/* A short human summary of pool_get_stats. */
void pool_print_stats(pool *p, FILE *f);

#endif
