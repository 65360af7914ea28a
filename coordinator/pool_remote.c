/* pool_remote.c — the pool's remote lane: one node_client link per expert
 * node; per layer one DISPATCH per node carrying only its tokens' rows and
 * its items; COMBINE outputs scattered to the items' original indices;
 * deadlines from each node's observed round trip and compute time; on a
 * miss, error or broken link the node is marked down and its work goes to a
 * replica or the local lane (cache / disk); down nodes are probed and
 * rejoin after HELLO + fingerprint + ASSIGN (design.md §3, §6). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_fingerprint.h"
#include "node_client.h"
#include "pool_internal.h"

enum { RN_DOWN = 0, RN_HELLO, RN_LOADING, RN_UP };
enum { RQ_INFLIGHT = 1, RQ_DONE, RQ_FAILED };

typedef struct rnode {
    node_client *nc;            /* NULL when down and not yet re-probed */
    int state;
    double state_since, next_probe;
    node_expert_id *assign;     /* its experts per the placement */
    int n_assign;
    int layer_items;            /* items routed to it while planning this layer */
    int ever_up;
    char why[320];              /* last reason it went down */
    /* smoothed observations; < 0 = none yet */
    double net_ms;              /* dispatch round trip minus node compute */
    double compute_ms_item;     /* node compute per item */
    double compute_ms;          /* node compute per dispatch */
    uint64_t dispatches, items, failures, rejoins, late_closed;
    /* for /metrics (pool_node_stats) */
    pool_hist rtt_hist, dispatch_hist;
    uint64_t bytes_out_closed, bytes_in_closed;     /* of links already closed */
    uint64_t deadline_misses, fo_replica, fo_local;
    /* The node announced a drain (ERROR_DRAINING without a request id): no
     * new work goes to it; once nothing of ours is in flight there it is
     * marked down, and it rejoins only when it accepts HELLO again. */
    int draining;
    /* liveness between layers/requests: when the node last said anything,
     * and when we last sent it a heartbeat */
    double last_heard, last_hb;
} rnode;

typedef struct rreq {
    uint64_t id;
    int node, state;
    int item0, n_items;         /* wire[item0 .. item0+n_items) = original item indices */
    double t_sent, deadline;
} rreq;

struct pool_remote {
    model_fingerprint fp;
    rnode *nodes;
    node_client **wset;
    int *wnode;
    uint8_t *ready;
    rreq *reqs;
    int n_reqs, cap_reqs;
    int *wire;
    int n_wire, cap_wire;
    int *tok_map;
    int cap_tok;
    block_q8_K *rows;
    size_t cap_rows;
    expert_work *witems;
    int cap_witems;
    uint64_t next_id;
    double layer_t0;
    double layer_compute_s;     /* slowest reported node compute of this layer */
};

/* A node that does not answer HELLO within this long is not running (or
 * not reachable); loading experts may take much longer and is bounded by
 * connect_timeout_s of no progress instead. */
#define HELLO_TIMEOUT_S 10.0

/* An idle up node is sent a heartbeat this often; one that has said
 * nothing (no answer, no heartbeat reply) for HB_DEAD_S is marked down,
 * so a dead node is noticed between requests, not at the next deadline. */
#define HB_EVERY_S 1.0
#define HB_DEAD_S 5.0

#define EWMA(v, x) ((v) < 0 ? (x) : 0.8 * (v) + 0.2 * (x))

static const char *node_name(const pool *p, int n) { return p->o.cl->nodes[n].name; }

void pool_hist_add(pool_hist *h, double ms) {
    static const double bound[POOL_HIST_N] = POOL_HIST_BOUNDS_MS;
    int i = 0;
    while (i < POOL_HIST_N && ms > bound[i]) i++;
    h->count[i]++;
    h->sum_ms += ms;
}

/* ---- link state ------------------------------------------------------------ */

static void fail_node_reqs(pool *p, int n) {
    pool_remote *r = p->rem;
    for (int i = 0; i < r->n_reqs; i++)
        if (r->reqs[i].node == n && r->reqs[i].state == RQ_INFLIGHT) {
            if (r->nodes[n].nc) node_client_forget(r->nodes[n].nc, r->reqs[i].id);
            r->reqs[i].state = RQ_FAILED;
        }
}

static void close_link(pool *p, int n) {
    rnode *nd = &p->rem->nodes[n];
    if (!nd->nc) return;
    node_client_counters c;
    node_client_get_counters(nd->nc, &c);
    nd->late_closed += c.late_dropped;
    nd->bytes_out_closed += c.bytes_out;
    nd->bytes_in_closed += c.bytes_in;
    node_client_close(nd->nc);
    nd->nc = NULL;
}

/* Mark down: its in-flight work of this layer fails over; the link stays
 * open on a deadline miss so a late COMBINE is recognised and dropped, and
 * is replaced at the next probe. */
static void node_down(pool *p, int n, int keep_link, const char *why) {
    rnode *nd = &p->rem->nodes[n];
    const int was_up = nd->state == RN_UP;
    fail_node_reqs(p, n);
    if (!keep_link) close_link(p, n);
    nd->state = RN_DOWN;
    nd->next_probe = pool_now() + p->o.probe_interval_s;
    snprintf(nd->why, sizeof nd->why, "%s", why);
    if (was_up) {
        nd->failures++;
        pool_logf(p, "node %s is down (%s); its experts go to replicas or this machine until it rejoins",
                  node_name(p, n), why);
    }
}

static int node_connect(pool *p, int n, char *err, size_t errlen) {
    rnode *nd = &p->rem->nodes[n];
    close_link(p, n);
    node_client_opts o;
    node_client_opts_default(&o);
    o.name = "coordinator";
    o.with_crc = p->o.with_crc;
    if (!p->o.plain) {
        o.tp.curve_public = p->o.curve_public;
        o.tp.curve_secret = p->o.curve_secret;
        o.tp.curve_server_key = p->o.cl->nodes[n].server_key;
    }
    char sub[256];
    nd->nc = node_client_connect(p->o.cl->nodes[n].endpoint, &p->rem->fp, &o, sub, sizeof sub);
    nd->state_since = pool_now();
    if (!nd->nc) {
        nd->state = RN_DOWN;
        nd->next_probe = nd->state_since + p->o.probe_interval_s;
        snprintf(nd->why, sizeof nd->why, "cannot connect: %s", sub);
        return pool_fail(err, errlen, "node %s (%s): %s", node_name(p, n), p->o.cl->nodes[n].endpoint, nd->why);
    }
    nd->state = RN_HELLO;
    return 0;
}

static int find_req(const pool_remote *r, int n, uint64_t id) {
    for (int i = 0; i < r->n_reqs; i++)
        if (r->reqs[i].id == id && r->reqs[i].node == n) return i;
    return -1;
}

static void on_result(pool *p, int n, node_event *ev) {
    pool_remote *r = p->rem;
    rnode *nd = &r->nodes[n];
    const int i = find_req(r, n, ev->request_id);
    if (i < 0 || r->reqs[i].state != RQ_INFLIGHT) return;   /* late: already failed over */
    rreq *q = &r->reqs[i];
    if (ev->n_items != q->n_items || ev->n_embd != p->E || ev->layer != p->layer) {
        char why[160];
        snprintf(why, sizeof why, "answered request %llu with %d items x %d for layer %d (asked %d x %d, layer %d)",
                 (unsigned long long)q->id, ev->n_items, ev->n_embd, ev->layer, q->n_items, p->E, p->layer);
        node_down(p, n, 0, why);
        return;
    }
    for (int j = 0; j < q->n_items; j++)
        memcpy(p->out + (size_t)r->wire[q->item0 + j] * p->E, ev->out + (size_t)j * p->E, (size_t)p->E * sizeof(float));
    q->state = RQ_DONE;
    const double comp = (double)ev->compute_ns * 1e-6;
    if (comp * 1e-3 > r->layer_compute_s) r->layer_compute_s = comp * 1e-3;
    const double net = ev->rtt_ms - comp > 0 ? ev->rtt_ms - comp : 0;
    nd->net_ms = EWMA(nd->net_ms, net);
    nd->compute_ms = EWMA(nd->compute_ms, comp);
    nd->compute_ms_item = EWMA(nd->compute_ms_item, comp / (q->n_items > 0 ? q->n_items : 1));
    pool_hist_add(&nd->dispatch_hist, ev->rtt_ms);
    pool_hist_add(&nd->rtt_hist, net);
}

/* One event from node n, whatever its state. */
static void on_event(pool *p, int n, node_event *ev) {
    rnode *nd = &p->rem->nodes[n];
    char sub[256], why[320];
    switch (ev->kind) {
    case NODE_EV_HELLO:
        if (nd->state != RN_HELLO) break;
        if (node_client_assign_send(nd->nc, nd->assign, nd->n_assign, sub, sizeof sub)) {
            snprintf(why, sizeof why, "ASSIGN failed: %s", sub);
            node_down(p, n, 0, why);
            break;
        }
        nd->state = RN_LOADING;
        nd->state_since = pool_now();
        break;
    case NODE_EV_LOAD:
        if (nd->state != RN_LOADING) break;
        nd->state_since = pool_now();      /* progress resets the load timeout */
        if (!ev->finished) break;
        nd->state = RN_UP;
        nd->draining = 0;
        if (nd->ever_up) {
            nd->rejoins++;
            pool_logf(p, "node %s rejoined (%d experts)", node_name(p, n), nd->n_assign);
        }
        nd->ever_up = 1;
        break;
    case NODE_EV_RESULT:
        on_result(p, n, ev);
        break;
    case NODE_EV_ERROR: {
        if (!ev->request_id && ev->code == NODE_ERR_DRAINING && nd->state == RN_UP) {
            /* announced drain: in-flight work may still finish (service_nodes
             * marks it down once idle) */
            if (!nd->draining) pool_logf(p, "node %s is draining: no new work goes to it", node_name(p, n));
            nd->draining = 1;
            break;
        }
        const int i = ev->request_id ? find_req(p->rem, n, ev->request_id) : -1;
        /* late (already failed over); while joining, any refusal (e.g. a
         * drained node answering HELLO) ends this attempt */
        if (nd->state == RN_UP && ev->request_id && (i < 0 || p->rem->reqs[i].state != RQ_INFLIGHT)) break;
        snprintf(why, sizeof why, "%s: %s", node_error_name(ev->code), ev->message);
        node_down(p, n, 0, why);
        break;
    }
    default:
        break;
    }
}

/* Handle everything node n has for us now. */
static void drain_events(pool *p, int n) {
    rnode *nd = &p->rem->nodes[n];
    char err[256];
    while (nd->nc) {
        node_event ev;
        const int rc = node_client_poll(nd->nc, &ev, 0, err, sizeof err);
        if (rc == 0) return;
        if (rc < 0) {
            char why[320];
            snprintf(why, sizeof why, "link failed: %s", err);
            node_down(p, n, 0, why);
            return;
        }
        nd->last_heard = pool_now();
        on_event(p, n, &ev);
        if (ev.kind == NODE_EV_RESULT && nd->nc) node_client_release(nd->nc, &ev);
    }
}

/* Idle up node: heartbeat it now and then; mark it down when it has been
 * silent too long (it answers heartbeats, so silence means dead or cut off). */
static void heartbeat(pool *p, int n, double now) {
    rnode *nd = &p->rem->nodes[n];
    if (nd->last_heard < nd->state_since) nd->last_heard = nd->state_since;
    if (nd->last_hb > nd->last_heard && now - nd->last_heard > HB_DEAD_S) {
        char why[160];
        snprintf(why, sizeof why, "silent for %.1f s (no heartbeat reply)", now - nd->last_heard);
        node_down(p, n, 0, why);
        return;
    }
    if (now - nd->last_hb < HB_EVERY_S || now - nd->last_heard < HB_EVERY_S) return;
    char err[256];
    uint64_t seq;
    nd->last_hb = now;
    if (node_client_heartbeat_send(nd->nc, &seq, err, sizeof err)) {
        char why[320];
        snprintf(why, sizeof why, "heartbeat not sent: %s", err);
        node_down(p, n, 0, why);
    }
}

/* Probe down nodes whose time has come; time out stuck HELLO/ASSIGN. */
static void service_nodes(pool *p) {
    const double now = pool_now();
    for (int n = 0; n < p->n_nodes; n++) {
        rnode *nd = &p->rem->nodes[n];
        if (nd->state == RN_HELLO || nd->state == RN_LOADING) {
            drain_events(p, n);
            if (nd->state == RN_HELLO && now - nd->state_since > HELLO_TIMEOUT_S)
                node_down(p, n, 0, "no answer to HELLO");
            else if (nd->state == RN_LOADING && now - nd->state_since > p->o.connect_timeout_s)
                node_down(p, n, 0, "expert load stalled");
        } else if (nd->state == RN_DOWN && now >= nd->next_probe) {
            char err[256];
            if (nd->nc) drain_events(p, n);     /* count late answers before replacing the link */
            node_connect(p, n, err, sizeof err);
        } else if (nd->state == RN_UP && nd->nc && node_client_outstanding(nd->nc) == 0) {
            drain_events(p, n);                 /* errors / stray frames between layers */
            if (nd->state == RN_UP && nd->draining) node_down(p, n, 0, "drained (the node asked)");
            if (nd->state == RN_UP) heartbeat(p, n, now);
        }
    }
}

void pool_tick(pool *p) {
    if (p && p->rem && !p->active) service_nodes(p);
}

/* ---- open / close ---------------------------------------------------------- */

int pool_remote_open(pool *p, char *err, size_t errlen) {
    if (!p->o.plain && (!p->o.curve_public || !p->o.curve_secret))
        return pool_fail(err, errlen, "node links are encrypted with CurveZMQ: give this coordinator's key "
                                      "(--curve-secret) and each node's public key (--node-key, or server_key in "
                                      "the cluster file), or --plain on a trusted network");
    if (!p->o.plain)
        for (int n = 0; n < p->n_nodes; n++)
            if (!p->o.cl->nodes[n].server_key[0])
                return pool_fail(err, errlen, "node %s has no public key (--node-key or server_key in the cluster "
                                              "file; needed for CurveZMQ; or use --plain on a trusted network)",
                                 node_name(p, n));
    if (p->o.connect_timeout_s <= 0) p->o.connect_timeout_s = 600;
    pool_remote *r = calloc(1, sizeof(*r));
    if (!r) return pool_fail(err, errlen, "out of memory");
    p->rem = r;
    char sub[256];
    if (model_fingerprint_compute(p->m->gguf, &r->fp, sub, sizeof sub))
        return pool_fail(err, errlen, "model fingerprint: %s", sub);
    const int N = p->n_nodes;
    r->nodes = calloc((size_t)N, sizeof(*r->nodes));
    r->wset = calloc((size_t)N, sizeof(*r->wset));
    r->wnode = calloc((size_t)N, sizeof(int));
    r->ready = calloc((size_t)N, 1);
    p->node_stats = calloc((size_t)N, sizeof(*p->node_stats));
    if (!r->nodes || !r->wset || !r->wnode || !r->ready || !p->node_stats) return pool_fail(err, errlen, "out of memory");
    const placement *pl = p->o.pl;
    for (int n = 0; n < N; n++) {
        rnode *nd = &r->nodes[n];
        nd->net_ms = nd->compute_ms_item = nd->compute_ms = -1;
        int cnt = 0;
        for (int l = 0; l < p->n_layer; l++)
            for (int e = 0; e < p->n_expert; e++)
                for (int k = 0; k < placement_count(pl, l, e); k++) cnt += placement_nodes(pl, l, e)[k] == n;
        nd->assign = malloc((size_t)(cnt ? cnt : 1) * sizeof(node_expert_id));
        if (!nd->assign) return pool_fail(err, errlen, "out of memory");
        for (int l = 0; l < p->n_layer; l++)
            for (int e = 0; e < p->n_expert; e++)
                for (int k = 0; k < placement_count(pl, l, e); k++)
                    if (placement_nodes(pl, l, e)[k] == n) nd->assign[nd->n_assign++] = (node_expert_id){l, e};
        if (node_connect(p, n, err, errlen)) return -1;
    }
    /* Every node must come up once: HELLO, fingerprint, experts loaded. */
    for (;;) {
        int pending = 0, k = 0;
        for (int n = 0; n < N; n++) {
            rnode *nd = &r->nodes[n];
            if (nd->state == RN_DOWN)
                return pool_fail(err, errlen, "node %s (%s): %s", node_name(p, n), p->o.cl->nodes[n].endpoint, nd->why);
            if (nd->state != RN_UP) {
                pending++;
                r->wset[k] = nd->nc;
                r->wnode[k++] = n;
            }
        }
        if (!pending) break;
        if (node_client_wait_any(r->wset, k, 200, r->ready, sub, sizeof sub) < 0)
            return pool_fail(err, errlen, "waiting for nodes: %s", sub);
        for (int i = 0; i < k; i++) drain_events(p, r->wnode[i]);
        const double now = pool_now();
        for (int n = 0; n < N; n++) {
            rnode *nd = &r->nodes[n];
            if (nd->state == RN_HELLO && now - nd->state_since > HELLO_TIMEOUT_S)
                return pool_fail(err, errlen, "node %s (%s): no answer to HELLO after %.0f s (is flashpool-node "
                                              "running there, with the same --plain / CURVE setting?)",
                                 node_name(p, n), p->o.cl->nodes[n].endpoint, HELLO_TIMEOUT_S);
            if (nd->state == RN_LOADING && now - nd->state_since > p->o.connect_timeout_s)
                return pool_fail(err, errlen, "node %s (%s): expert load made no progress for %.0f s",
                                 node_name(p, n), p->o.cl->nodes[n].endpoint, p->o.connect_timeout_s);
        }
    }
    for (int n = 0; n < N; n++) {
        double rtt;
        if (node_client_heartbeat(r->nodes[n].nc, &rtt, 2000, sub, sizeof sub) == 0 && rtt > 1.0)
            pool_logf(p, "node %s: round trip %.2f ms exceeds 1 ms; every token pays it once per layer "
                         "(Wi-Fi or a routed link? use wired Ethernet)", node_name(p, n), rtt);
    }
    return 0;
}

void pool_remote_close(pool *p) {
    pool_remote *r = p->rem;
    if (!r) return;
    for (int n = 0; r->nodes && n < p->n_nodes; n++) {
        close_link(p, n);
        free(r->nodes[n].assign);
    }
    free(r->nodes);
    free(r->wset);
    free(r->wnode);
    free(r->ready);
    free(r->reqs);
    free(r->wire);
    free(r->tok_map);
    free(r->rows);
    free(r->witems);
    free(r);
    p->rem = NULL;
}

/* ---- per layer ------------------------------------------------------------- */

void pool_remote_begin_layer(pool *p) {
    pool_remote *r = p->rem;
    service_nodes(p);
    r->n_reqs = 0;
    r->n_wire = 0;
    r->layer_t0 = 0;
    r->layer_compute_s = 0;
    for (int n = 0; n < p->n_nodes; n++) r->nodes[n].layer_items = 0;
}

int pool_remote_pick(pool *p, xgroup *g) {
    pool_remote *r = p->rem;
    const int cnt = placement_count(p->o.pl, p->layer, g->expert);
    const uint16_t *list = placement_nodes(p->o.pl, p->layer, g->expert);
    int best = -1;
    for (int k = 0; k < cnt; k++) {
        if (g->tried & (1u << k)) continue;
        const rnode *nd = &r->nodes[list[k]];
        if (nd->state != RN_UP || nd->draining) continue;
        /* Replicas: the least loaded in this layer; ties go to the first listed. */
        if (best < 0 || nd->layer_items < r->nodes[list[best]].layer_items) best = k;
    }
    if (best < 0) return -1;
    g->tried |= 1u << best;
    g->node = list[best];
    g->route = ROUTE_REMOTE;
    g->req = -1;
    r->nodes[g->node].layer_items += g->count;
    return 0;
}

static int grow(void **ptr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *np = realloc(*ptr, nc * elem);
    if (!np) return -1;
    *ptr = np;
    *cap = nc;
    return 0;
}

static double deadline_ms(const pool *p, const rnode *nd, int n_items) {
    double d;
    if (nd->net_ms < 0 || nd->compute_ms_item < 0) d = p->o.deadline_floor_ms + 2.0 * n_items;
    else d = 4.0 * (nd->net_ms + nd->compute_ms_item * n_items) + 20.0;
    return d > p->o.deadline_floor_ms ? d : p->o.deadline_floor_ms;
}

/* Build and send node n's DISPATCH from its unsent groups. 0 sent, 1 the
 * node failed (groups left unsent for re-routing), -1 out of memory. */
static int dispatch_node(pool *p, int n, char *err, size_t errlen) {
    pool_remote *r = p->rem;
    rnode *nd = &r->nodes[n];
    const int nb = p->E / QK_K;
    size_t cap;
    /* Its tokens, numbered in ascending order (all tokens -> rows as they are). */
    cap = (size_t)r->cap_tok;
    if (grow((void **)&r->tok_map, &cap, (size_t)p->n_tokens, sizeof(int))) return pool_fail(err, errlen, "out of memory");
    r->cap_tok = (int)cap;
    for (int t = 0; t < p->n_tokens; t++) r->tok_map[t] = -1;
    int n_items = 0;
    for (int q = 0; q < p->n_g; q++) {
        const xgroup *g = &p->g[q];
        if (g->route != ROUTE_REMOTE || g->node != n || g->req >= 0) continue;
        n_items += g->count;
        for (int j = 0; j < g->count; j++) r->tok_map[p->items[p->gitems[g->first + j]].token] = 0;
    }
    if (n_items == 0) return 0;
    int ntok = 0;
    for (int t = 0; t < p->n_tokens; t++)
        if (r->tok_map[t] == 0) r->tok_map[t] = ntok++;
        else r->tok_map[t] = -1;
    const block_q8_K *rows = p->xq;
    if (ntok < p->n_tokens) {
        cap = r->cap_rows;
        if (grow((void **)&r->rows, &cap, (size_t)ntok * nb, sizeof(block_q8_K))) return pool_fail(err, errlen, "out of memory");
        r->cap_rows = cap;
        for (int t = 0; t < p->n_tokens; t++)
            if (r->tok_map[t] >= 0)
                memcpy(r->rows + (size_t)r->tok_map[t] * nb, p->xq + (size_t)t * nb, (size_t)nb * sizeof(block_q8_K));
        rows = r->rows;
    }
    cap = (size_t)r->cap_witems;
    if (grow((void **)&r->witems, &cap, (size_t)n_items, sizeof(expert_work))) return pool_fail(err, errlen, "out of memory");
    r->cap_witems = (int)cap;
    cap = (size_t)r->cap_wire;
    if (grow((void **)&r->wire, &cap, (size_t)(r->n_wire + n_items), sizeof(int))) return pool_fail(err, errlen, "out of memory");
    r->cap_wire = (int)cap;
    cap = (size_t)r->cap_reqs;
    if (grow((void **)&r->reqs, &cap, (size_t)r->n_reqs + 1, sizeof(rreq))) return pool_fail(err, errlen, "out of memory");
    r->cap_reqs = (int)cap;
    int k = 0, retry = 0;
    for (int q = 0; q < p->n_g; q++) {
        const xgroup *g = &p->g[q];
        if (g->route != ROUTE_REMOTE || g->node != n || g->req >= 0) continue;
        retry |= (g->tried & (g->tried - 1)) != 0;   /* not its first node */
        for (int j = 0; j < g->count; j++) {
            const int orig = p->gitems[g->first + j];
            r->witems[k] = p->items[orig];
            r->witems[k].token = r->tok_map[p->items[orig].token];
            r->wire[r->n_wire + k] = orig;
            k++;
        }
    }
    const uint64_t id = ++r->next_id & 0x7fffffffffffffffull;
    char sub[256];
    /* Stamp before sending: on a busy host this thread can be preempted
     * right after the send, and a later stamp made the layer's round trip
     * look shorter than the node's own reported compute. */
    const double now = pool_now();
    if (node_client_dispatch(nd->nc, id, p->layer, ntok, p->E, rows, n_items, r->witems, sub, sizeof sub)) {
        char why[320];
        snprintf(why, sizeof why, "DISPATCH failed: %s", sub);
        node_down(p, n, 0, why);
        return 1;
    }
    const int ri = r->n_reqs++;
    r->reqs[ri] = (rreq){.id = id, .node = n, .state = RQ_INFLIGHT, .item0 = r->n_wire, .n_items = n_items,
                         .t_sent = now, .deadline = now + deadline_ms(p, nd, n_items) * 1e-3};
    r->n_wire += n_items;
    for (int q = 0; q < p->n_g; q++) {
        xgroup *g = &p->g[q];
        if (g->route == ROUTE_REMOTE && g->node == n && g->req < 0) g->req = ri;
    }
    if (r->layer_t0 <= 0) r->layer_t0 = now;
    nd->dispatches++;
    nd->items += (uint64_t)n_items;
    if (retry) p->st.redispatches++;
    return 0;
}

/* Groups whose request failed, or that were routed to a node that failed
 * before sending: next replica, else the local lane. */
static int reroute(pool *p) {
    pool_remote *r = p->rem;
    int moved = 0;
    for (int q = 0; q < p->n_g; q++) {
        xgroup *g = &p->g[q];
        if (g->route != ROUTE_REMOTE) continue;
        const int failed = g->req >= 0 ? r->reqs[g->req].state == RQ_FAILED : r->nodes[g->node].state != RN_UP;
        if (!failed) continue;
        moved++;
        rnode *from = &r->nodes[g->node];
        from->layer_items -= g->count;
        if (pool_remote_pick(p, g) == 0) {
            p->st.fallback_items += (uint64_t)g->count;
            from->fo_replica++;
        } else {
            pool_make_local(p, g);
            from->fo_local++;
        }
    }
    return moved;
}

int pool_remote_send(pool *p, char *err, size_t errlen) {
    pool_remote *r = p->rem;
    for (;;) {
        for (int n = 0; n < p->n_nodes; n++) {
            if (r->nodes[n].state != RN_UP) continue;
            if (dispatch_node(p, n, err, errlen) < 0) return -1;
        }
        /* Anything routed to a node that failed while sending goes elsewhere;
         * a new replica may need another pass. */
        if (!reroute(p)) break;
        int unsent = 0;
        for (int q = 0; q < p->n_g; q++) unsent |= p->g[q].route == ROUTE_REMOTE && p->g[q].req < 0;
        if (!unsent) break;
    }
    for (int n = 0; n < p->n_nodes; n++) r->nodes[n].layer_items = 0;
    return 0;
}

int pool_remote_collect(pool *p, char *err, size_t errlen) {
    pool_remote *r = p->rem;
    const double t0 = pool_now();
    const int had_remote = r->n_reqs > 0;
    for (;;) {
        double now = pool_now(), earliest = 0;
        int inflight = 0;
        for (int i = 0; i < r->n_reqs; i++) {
            const rreq *q = &r->reqs[i];
            if (q->state != RQ_INFLIGHT) continue;
            if (!inflight || q->deadline < earliest) earliest = q->deadline;
            inflight++;
        }
        if (!inflight) break;
        if (now >= earliest) {
            for (int i = 0; i < r->n_reqs; i++) {
                const rreq *q = &r->reqs[i];
                if (q->state != RQ_INFLIGHT || now < q->deadline) continue;
                char why[160];
                snprintf(why, sizeof why, "no COMBINE for request %llu within %.0f ms", (unsigned long long)q->id,
                         (q->deadline - q->t_sent) * 1e3);
                r->nodes[q->node].deadline_misses++;
                node_down(p, q->node, 1, why);
            }
        } else {
            int k = 0;
            for (int n = 0; n < p->n_nodes; n++) {
                int has = 0;
                for (int i = 0; i < r->n_reqs && !has; i++)
                    has = r->reqs[i].node == n && r->reqs[i].state == RQ_INFLIGHT;
                if (has && r->nodes[n].nc) {
                    r->wset[k] = r->nodes[n].nc;
                    r->wnode[k++] = n;
                }
            }
            int ms = (int)ceil((earliest - now) * 1e3);
            if (ms < 1) ms = 1;
            char sub[256];
            const int rc = node_client_wait_any(r->wset, k, ms, r->ready, sub, sizeof sub);
            if (rc < 0) return pool_fail(err, errlen, "waiting for expert nodes: %s", sub);
            for (int i = 0; i < k; i++)
                if (r->ready[i]) drain_events(p, r->wnode[i]);
        }
        if (reroute(p)) {
            if (pool_remote_send(p, err, errlen)) return -1;
            if (pool_run_local(p, err, errlen)) return -1;
        }
    }
    const double t1 = pool_now();
    p->st.remote_wait_s += t1 - t0;
    if (t1 - t0 > p->st.max_layer_wait_s) p->st.max_layer_wait_s = t1 - t0;
    if (had_remote) {
        p->st.remote_layers++;
        p->st.layer_rt_s += t1 - r->layer_t0;
        if (p->n_tokens == 1) {
            p->st.decode_remote_layers++;
            p->st.decode_layer_rt_s += t1 - r->layer_t0;
            p->st.decode_node_compute_s += r->layer_compute_s;
        }
    }
    r->layer_t0 = 0;
    return 0;
}

void pool_remote_node_stats(pool *p) {
    pool_remote *r = p->rem;
    for (int n = 0; n < p->n_nodes; n++) {
        const rnode *nd = &r->nodes[n];
        pool_node_stats *s = &p->node_stats[n];
        memset(s, 0, sizeof(*s));
        snprintf(s->name, sizeof s->name, "%s", node_name(p, n));
        s->up = nd->state == RN_UP;
        s->dispatches = nd->dispatches;
        s->items = nd->items;
        s->failures = nd->failures;
        s->rejoins = nd->rejoins;
        s->late_dropped = nd->late_closed;
        if (nd->nc) {
            node_client_counters c;
            node_client_get_counters(nd->nc, &c);
            s->late_dropped += c.late_dropped;
        }
        s->draining = nd->draining;
        s->rtt_hist = nd->rtt_hist;
        s->dispatch_hist = nd->dispatch_hist;
        s->bytes_sent = nd->bytes_out_closed;
        s->bytes_recv = nd->bytes_in_closed;
        s->deadline_misses = nd->deadline_misses;
        s->failover_replica = nd->fo_replica;
        s->failover_local = nd->fo_local;
        if (nd->nc) {
            node_client_counters c;
            node_client_get_counters(nd->nc, &c);
            s->bytes_sent += c.bytes_out;
            s->bytes_recv += c.bytes_in;
        }
        s->rtt_ms = nd->net_ms > 0 ? nd->net_ms : 0;
        s->compute_ms = nd->compute_ms > 0 ? nd->compute_ms : 0;
    }
}
