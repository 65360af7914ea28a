/* pool_cli.c — pool command-line options and setup (see pool_cli.h). */
#include "pool_cli.h"
#include "metrics.h"

#include <stdlib.h>
#include <string.h>
#include <zmq.h>

void pool_cli_init(pool_cli *c) {
    memset(c, 0, sizeof(*c));
    c->cache_mb = -1;
    c->cache_policy = CACHE_LFU;
    c->replicas = 1;
}

static int parse_num(const char *s, double lo, double hi, double *out) {
    char *end;
    const double v = strtod(s, &end);
    if (end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int pool_cli_option(pool_cli *c, int opt, const char *arg, char *err, size_t errlen) {
    double v;
    switch (opt) {
    case POOL_OPT_NODE:
        if (c->n_nodes >= PLACEMENT_MAX_NODES) return snprintf(err, errlen, "at most %d --node", PLACEMENT_MAX_NODES), -1;
        c->nodes[c->n_nodes++] = arg;
        return 1;
    case POOL_OPT_CLUSTER: c->cluster_file = arg; return 1;
    case POOL_OPT_PLACEMENT: c->placement = arg; return 1;
    case POOL_OPT_SAVE_PLACEMENT: c->save_placement = arg; return 1;
    case POOL_OPT_TRACE: c->trace_routing = arg; return 1;
    case POOL_OPT_METRICS_OUT: c->metrics_out = arg; return 1;
    case POOL_OPT_STATS: c->stats = 1; return 1;
    case POOL_OPT_PREAD: c->force_pread = 1; return 1;
    case POOL_OPT_PLAIN: c->plain = 1; return 1;
    case POOL_OPT_CURVE_SECRET:
        if (strlen(arg) != 40) return snprintf(err, errlen, "--curve-secret wants a 40-character Z85 secret key"), -1;
        c->curve_secret = arg;
        return 1;
    case POOL_OPT_NODE_KEY:
        if (strlen(arg) != 40) return snprintf(err, errlen, "--node-key wants a 40-character Z85 public key"), -1;
        if (c->n_node_keys >= PLACEMENT_MAX_NODES) return snprintf(err, errlen, "too many --node-key"), -1;
        c->node_keys[c->n_node_keys++] = arg;
        return 1;
    case POOL_OPT_REPLICAS:
        if (parse_num(arg, 1, PLACEMENT_MAX_REPLICAS, &v) || v != (int)v)
            return snprintf(err, errlen, "--replicas wants an integer 1..%d", PLACEMENT_MAX_REPLICAS), -1;
        c->replicas = (int)v;
        return 1;
    case POOL_OPT_CACHE_MB:
        if (parse_num(arg, 0, 1e9, &v)) return snprintf(err, errlen, "--expert-cache-mb wants a size in MiB (>= 0)"), -1;
        c->cache_mb = v;
        return 1;
    case POOL_OPT_CACHE_POLICY:
        if ((c->cache_policy = expert_cache_parse_policy(arg)) < 0)
            return snprintf(err, errlen, "--cache-policy is lfu or lru (got '%s')", arg), -1;
        return 1;
    case POOL_OPT_RETRY:
        if (parse_num(arg, 10, 3.6e6, &c->retry_ms)) return snprintf(err, errlen, "--node-retry-ms wants milliseconds >= 10"), -1;
        return 1;
    case POOL_OPT_DEADLINE:
        if (parse_num(arg, 1, 3.6e6, &c->deadline_ms)) return snprintf(err, errlen, "--node-deadline-ms wants milliseconds >= 1"), -1;
        return 1;
    default: return 0;
    }
}

void pool_cli_usage(FILE *f) {
    fprintf(f,
        "\n"
        "expert pool (routed experts on other machines, hot-expert cache, SSD streaming):\n"
        "      --node ENDPOINT     an expert node, e.g. tcp://10.0.0.2:7070 (repeatable)\n"
        "      --cluster FILE      nodes from a cluster JSON file (name, endpoint, ram_mb)\n"
        "      --placement P       round-robin (default), contiguous, or a placement JSON file\n"
        "      --replicas N        copies of each expert for built-in placements (default 1)\n"
        "      --save-placement F  write the placement in use as JSON (to edit and reuse)\n"
        "      --expert-cache-mb N hot-expert cache in MiB on this machine; without nodes\n"
        "                          this streams the other experts from disk (RSS ~ dense + N)\n"
        "      --cache-policy P    lfu (default, LFU with aging) or lru\n"
        "      --node-deadline-ms N  minimum time a node gets before failover (default 1000)\n"
        "      --curve-secret KEY  CurveZMQ: this coordinator's secret key (Z85); node links are\n"
        "                          authenticated and encrypted (the default; nodes must allow our key)\n"
        "      --node-key KEY      CurveZMQ: public key of the matching --node, in order (or\n"
        "                          server_key in the cluster file)\n"
        "      --node-retry-ms N   how often a down node is probed to rejoin (default 2000)\n"
        "      --plain             node links without CurveZMQ (trusted networks and tests only)\n"
        "      --no-io-uring       read experts with pread\n"
        "      --trace-routing F   record every position's experts and weights (JSONL)\n"
        "      --pool-stats        print pool statistics at exit\n"
        "      --pool-metrics FILE write the pool's Prometheus metrics (as GET /metrics\n"
        "                          would show them) to FILE at exit\n");
}

static void log_line(void *ud, const char *msg) { fprintf((FILE *)ud, "flashpool: pool: %s\n", msg); }

int pool_cli_apply(const pool_cli *c, fp_engine *e, FILE *log, pool_setup *s, char *err, size_t errlen) {
    memset(s, 0, sizeof(*s));
    s->print_stats = c->stats;
    s->metrics_out = c->metrics_out;
    const model *m = engine_model(e);
    char sub[768];
    if (c->n_nodes && c->cluster_file) return snprintf(err, errlen, "give nodes with --node or --cluster, not both"), -1;
    if (c->cluster_file) {
        if (!(s->cl = cluster_load(c->cluster_file, sub, sizeof sub))) return snprintf(err, errlen, "%s", sub), -1;
    } else if (c->n_nodes) {
        if (!(s->cl = cluster_new())) return snprintf(err, errlen, "out of memory"), -1;
        if (c->n_node_keys && c->n_node_keys != c->n_nodes)
            return snprintf(err, errlen, "%d --node-key for %d --node: give one key per node, in the same order",
                            c->n_node_keys, c->n_nodes), -1;
        for (int i = 0; i < c->n_nodes; i++)
            if (cluster_add(s->cl, NULL, c->nodes[i], 0, c->n_node_keys ? c->node_keys[i] : NULL, sub, sizeof sub))
                return snprintf(err, errlen, "--node %s: %s", c->nodes[i], sub), -1;
    }
    const int nn = s->cl ? s->cl->n_nodes : 0;
    if (c->n_node_keys && c->cluster_file)
        return snprintf(err, errlen, "with --cluster, give node keys as server_key in the file, not --node-key"), -1;
    if (c->curve_secret && c->plain) return snprintf(err, errlen, "--plain and --curve-secret contradict each other"), -1;
    if (c->plain && nn)     /* printed even with -q: the operator should not forget it */
        fprintf(stderr, "flashpool: warning: --plain: node links are neither authenticated nor encrypted "
                        "(trusted networks only; see flashpool-keygen for CurveZMQ)\n");
    if (c->curve_secret && zmq_curve_public(s->curve_public, c->curve_secret) != 0)
        return snprintf(err, errlen, "--curve-secret is not a valid Z85 CurveZMQ secret key"), -1;
    if (!nn && (c->placement || c->save_placement))
        return snprintf(err, errlen, "--placement/--save-placement need expert nodes (--node or --cluster)"), -1;
    if (nn) {
        const char *pa = c->placement ? c->placement : "round-robin";
        if (strcmp(pa, "round-robin") == 0)
            s->pl = placement_round_robin(m->hp.n_layer, m->hp.n_expert, nn, c->replicas, sub, sizeof sub);
        else if (strcmp(pa, "contiguous") == 0)
            s->pl = placement_contiguous(m->hp.n_layer, m->hp.n_expert, nn, c->replicas, sub, sizeof sub);
        else
            s->pl = placement_load(pa, m->hp.n_layer, m->hp.n_expert, s->cl->names, nn, sub, sizeof sub);
        if (!s->pl) return snprintf(err, errlen, "placement: %s", sub), -1;
        if (c->save_placement && placement_save(s->pl, c->save_placement, s->cl->names, sub, sizeof sub))
            return snprintf(err, errlen, "%s", sub), -1;
    }
    if (nn || c->cache_mb >= 0) {
        pool_opts o;
        pool_opts_default(&o);
        o.cl = s->cl;
        o.pl = s->pl;
        o.cache_bytes = c->cache_mb > 0 ? (size_t)(c->cache_mb * 1048576.0) : 0;
        o.cache_policy = c->cache_policy;
        o.force_pread = c->force_pread;
        o.deadline_floor_ms = c->deadline_ms;
        o.plain = c->plain;
        o.probe_interval_s = c->retry_ms * 1e-3;
        if (c->curve_secret) {
            o.curve_secret = c->curve_secret;
            o.curve_public = s->curve_public;
        }
        o.log = log ? log_line : NULL;
        o.log_ud = log;
        engine *core = engine_core(e);
        s->p = pool_open(m, core->lc.tp, core->lc.k, &o, sub, sizeof sub);
        if (!s->p) return snprintf(err, errlen, "%s", sub), -1;
        engine_set_exec(e, pool_exec(s->p));
    }
    if (c->trace_routing) {
        if (!(s->tw = routing_trace_create(c->trace_routing, m, sub, sizeof sub))) return snprintf(err, errlen, "%s", sub), -1;
        s->trace_obs = routing_trace_observer(s->tw);
    }
    return 0;
}

const fwd_observer *pool_cli_observer(const pool_setup *s) { return s->tw ? &s->trace_obs : NULL; }

/* The pool's part of /metrics, for tests and batch runs without a server. */
static int write_metrics(pool *p, const char *path, char *err, size_t errlen) {
    pool_stats st;
    pool_get_stats(p, &st);
    metrics_inputs in = {.pool = &st};
    char *text;
    size_t len;
    if (metrics_render(&in, &text, &len, err, errlen)) return -1;
    FILE *o = fopen(path, "w");
    int rc = 0;
    if (!o || fwrite(text, 1, len, o) != len) rc = -1;
    if (o && fclose(o) != 0) rc = -1;
    if (rc) snprintf(err, errlen, "%s: cannot write", path);
    free(text);
    return rc;
}

int pool_cli_close(pool_setup *s, FILE *f) {
    int rc = 0;
    if (s->p && s->print_stats) {
        pool_print_stats(s->p, f);
        pool_stats st;
        pool_get_stats(s->p, &st);
        if (st.n_nodes > 0)
            fprintf(f, "pool: worst layer stall %.1f ms (one layer waiting for nodes, failover included)\n",
                    st.max_layer_wait_s * 1e3);
    }
    char err[512];
    if (s->p && s->metrics_out && write_metrics(s->p, s->metrics_out, err, sizeof err)) {
        fprintf(f, "flashpool: --pool-metrics: %s\n", err);
        rc = -1;
    }
    if (routing_trace_close(s->tw, err, sizeof err)) {
        fprintf(f, "flashpool: %s\n", err);
        rc = -1;
    }
    pool_close(s->p);
    placement_free(s->pl);
    cluster_free(s->cl);
    memset(s, 0, sizeof(*s));
    return rc;
}
