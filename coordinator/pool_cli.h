/* pool_cli.h — the pool's command-line options, shared by flashpool and
 * flashpool-bench: parse them (getopt_long codes from POOL_CLI_OPT_BASE),
 * then build cluster + placement + hot-expert cache + pool executor and the
 * routing-trace observer, and install the pool in an engine. */
#ifndef FP_POOL_CLI_H
#define FP_POOL_CLI_H

#include <getopt.h>
#include <stdio.h>
#include "cluster.h"
#include "engine.h"
#include "placement.h"
#include "pool.h"
#include "routing_trace.h"

#define POOL_CLI_OPT_BASE 3000
enum {
    POOL_OPT_NODE = POOL_CLI_OPT_BASE, POOL_OPT_CLUSTER, POOL_OPT_PLACEMENT, POOL_OPT_REPLICAS,
    POOL_OPT_SAVE_PLACEMENT, POOL_OPT_CACHE_MB, POOL_OPT_CACHE_POLICY, POOL_OPT_TRACE, POOL_OPT_STATS,
    POOL_OPT_DEADLINE, POOL_OPT_PREAD, POOL_OPT_PLAIN, POOL_OPT_CURVE_SECRET, POOL_OPT_NODE_KEY,
    POOL_OPT_RETRY, POOL_OPT_METRICS_OUT,
};

/* Splice into a struct option array. */
#define POOL_CLI_LONG_OPTIONS                                                              \
    {"node", required_argument, 0, POOL_OPT_NODE},                                         \
    {"cluster", required_argument, 0, POOL_OPT_CLUSTER},                                   \
    {"placement", required_argument, 0, POOL_OPT_PLACEMENT},                               \
    {"replicas", required_argument, 0, POOL_OPT_REPLICAS},                                 \
    {"save-placement", required_argument, 0, POOL_OPT_SAVE_PLACEMENT},                     \
    {"expert-cache-mb", required_argument, 0, POOL_OPT_CACHE_MB},                          \
    {"cache-policy", required_argument, 0, POOL_OPT_CACHE_POLICY},                         \
    {"trace-routing", required_argument, 0, POOL_OPT_TRACE},                               \
    {"pool-stats", no_argument, 0, POOL_OPT_STATS},                                        \
    {"node-deadline-ms", required_argument, 0, POOL_OPT_DEADLINE},                         \
    {"no-io-uring", no_argument, 0, POOL_OPT_PREAD},                                       \
    {"plain", no_argument, 0, POOL_OPT_PLAIN},                                             \
    {"curve-secret", required_argument, 0, POOL_OPT_CURVE_SECRET},                         \
    {"node-key", required_argument, 0, POOL_OPT_NODE_KEY},                                 \
    {"node-retry-ms", required_argument, 0, POOL_OPT_RETRY},                               \
    {"pool-metrics", required_argument, 0, POOL_OPT_METRICS_OUT}

typedef struct pool_cli {
    const char *nodes[PLACEMENT_MAX_NODES];
    int n_nodes;
    const char *node_keys[PLACEMENT_MAX_NODES];   /* --node-key, in --node order */
    int n_node_keys;
    const char *curve_secret;
    const char *cluster_file, *placement, *save_placement, *trace_routing;
    const char *metrics_out;    /* --pool-metrics FILE: Prometheus text of the pool at exit */
    double cache_mb;            /* < 0: not given */
    int cache_policy, replicas, stats, force_pread, plain;
    double deadline_ms, retry_ms;
} pool_cli;

/* Everything pool_cli_apply built; pool_cli_close frees it. */
typedef struct pool_setup {
    cluster *cl;
    placement *pl;
    pool *p;                    /* NULL: the engine keeps its local executor */
    routing_trace_writer *tw;   /* NULL: no --trace-routing */
    char curve_public[41];      /* derived from --curve-secret */
    fwd_observer trace_obs;
    int print_stats;
    const char *metrics_out;
} pool_setup;

void pool_cli_init(pool_cli *c);
/* 1 = handled, 0 = not a pool option, -1 = bad value (err filled). */
int pool_cli_option(pool_cli *c, int opt, const char *arg, char *err, size_t errlen);
void pool_cli_usage(FILE *f);
/* Build and install. log: stderr lines for pool warnings (NULL = quiet). */
int pool_cli_apply(const pool_cli *c, fp_engine *e, FILE *log, pool_setup *s, char *err, size_t errlen);
/* The observer to pass to session_eval for the trace (NULL when none). */
const fwd_observer *pool_cli_observer(const pool_setup *s);
/* Print stats if asked, close the trace (reporting a write error on stderr),
 * restore nothing: call before engine_close. Returns -1 if the trace failed. */
int pool_cli_close(pool_setup *s, FILE *f);

#endif
