/* node_client.c — the coordinator's side of one expert-node link (see
 * node_client.h): HELLO/fingerprint, ASSIGN with load progress, DISPATCH
 * and COMBINE by request id, heartbeats, stats, drain, shutdown. Every
 * frame from the node is decoded strictly and checked against what was
 * asked for before it becomes an event. */
#include "clock.h"
#include "errmsg.h"
#include "node_client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "control_msg.h"

#define CTRL_ID_BIT (1ull << 63)
#define CTRL_SEND_MS 1000           /* control messages wait this long for queue room */

enum { ST_HELLO = 0, ST_READY = 1, ST_FAILED = 2 };

typedef struct outstanding {
    uint64_t id;                    /* 0 = free slot */
    int layer, n_items, n_embd;
    double t_sent;
} outstanding;

struct node_client {
    transport *t;
    char endpoint[256];
    model_fingerprint fp;
    node_client_opts o;
    frame_limits lim;
    int state;
    node_info info;
    outstanding *out;
    int n_out, cap_out;
    uint64_t next_ctrl;
    uint64_t hb_seq;
    uint64_t hello_id, assign_id, hb_id, stats_id;   /* ids of the last control requests */
    /* events received while a blocking helper waited for something else */
    node_event *stash;
    int st_head, st_count, st_cap;
    node_client_counters ctr;
};

const char *node_error_name(int code) {
    if (code == NODE_ERR_LINK) return "link failure";
    if (code == NODE_ERR_TIMEOUT) return "timeout";
    return control_error_name(code);
}

void node_client_opts_default(node_client_opts *o) {
    memset(o, 0, sizeof(*o));
    transport_opts_default(&o->tp);
}

/* ---- outstanding dispatches ------------------------------------------------ */

static outstanding *out_find(node_client *c, uint64_t id) {
    for (int i = 0; i < c->cap_out; i++)
        if (c->out[i].id == id) return &c->out[i];
    return NULL;
}

static void out_remove(node_client *c, outstanding *o) {
    o->id = 0;
    c->n_out--;
}

/* ---- stash ----------------------------------------------------------------- */

static int stash_push(node_client *c, const node_event *ev) {
    if (c->st_count == c->st_cap) {
        int nc = c->st_cap ? 2 * c->st_cap : 16;
        node_event *ns = malloc((size_t)nc * sizeof(*ns));
        if (!ns) return -1;
        for (int i = 0; i < c->st_count; i++) ns[i] = c->stash[(c->st_head + i) % c->st_cap];
        free(c->stash);
        c->stash = ns;
        c->st_head = 0;
        c->st_cap = nc;
    }
    c->stash[(c->st_head + c->st_count) % c->st_cap] = *ev;
    c->st_count++;
    return 0;
}

static int stash_pop(node_client *c, node_event *ev) {
    if (!c->st_count) return 0;
    *ev = c->stash[c->st_head];
    c->st_head = (c->st_head + 1) % c->st_cap;
    c->st_count--;
    return 1;
}

/* ---- sending ----------------------------------------------------------------- */

static int send_ctrl(node_client *c, const Fp__Control *m, uint64_t *id_out, char *err, size_t errlen) {
    const uint64_t id = CTRL_ID_BIT | ++c->next_ctrl;
    char e[256];
    int r = control_send(c->t, NULL, id, m, CTRL_SEND_MS, e, sizeof e);
    if (r == 1) return fp_fail(err, errlen, "node %s: send queue full", c->endpoint);
    if (r < 0) return fp_fail(err, errlen, "node %s: %s", c->endpoint, e);
    if (id_out) *id_out = id;
    return 0;
}

node_client *node_client_connect(const char *endpoint, const model_fingerprint *fp, const node_client_opts *o,
                                 char *err, size_t errlen) {
    node_client_opts d;
    if (!o) {
        node_client_opts_default(&d);
        o = &d;
    }
    node_client *c = calloc(1, sizeof(*c));
    if (!c) {
        fp_fail(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint ? endpoint : "");
    c->fp = *fp;
    c->o = *o;
    c->o.name = NULL;               /* not kept: the caller's string */
    frame_limits_default(&c->lim);
    c->cap_out = o->max_outstanding > 0 ? o->max_outstanding : 64;
    c->out = calloc((size_t)c->cap_out, sizeof(*c->out));
    if (!c->out) {
        fp_fail(err, errlen, "out of memory");
        goto bad;
    }
    char e[256];
    c->t = transport_connect(endpoint, &o->tp, e, sizeof e);
    if (!c->t) {
        fp_fail(err, errlen, "node %s: %s", c->endpoint, e);
        goto bad;
    }
    Fp__ModelFingerprint pfp;
    control_fp_to_pb(&c->fp, &pfp);
    Fp__Hello h = FP__HELLO__INIT;
    h.proto_version = FRAME_VERSION;
    h.node_name = (char *)(o->name ? o->name : "coordinator");
    h.capabilities = FP__CAPABILITY__CAP_CRC32C;
    h.fingerprint = &pfp;
    Fp__Control m = FP__CONTROL__INIT;
    m.body_case = FP__CONTROL__BODY_HELLO;
    m.hello = &h;
    if (send_ctrl(c, &m, &c->hello_id, err, errlen)) goto bad;
    return c;
bad:
    node_client_close(c);
    return NULL;
}

void node_client_close(node_client *c) {
    if (!c) return;
    node_event ev;
    while (stash_pop(c, &ev)) node_client_release(c, &ev);
    free(c->stash);
    transport_close(c->t);
    free(c->out);
    free(c);
}

const char *node_client_endpoint(const node_client *c) { return c->endpoint; }
int node_client_ready(const node_client *c) { return c->state == ST_READY; }
const node_info *node_client_info(const node_client *c) { return &c->info; }
void node_client_get_counters(const node_client *c, node_client_counters *out) { *out = c->ctr; }
int node_client_outstanding(const node_client *c) { return c->n_out; }

void node_client_release(node_client *c, node_event *ev) {
    if (ev->msg.priv || ev->msg.data) transport_release(c->t, &ev->msg);
    ev->out = NULL;
}

/* ---- receiving ---------------------------------------------------------------- */

static void copy_str(char *dst, size_t n, const char *s) { snprintf(dst, n, "%s", s ? s : ""); }

static int hello_reply(node_client *c, const Fp__HelloReply *r, node_event *ev) {
    memset(ev, 0, sizeof(*ev));
    model_fingerprint theirs;
    ev->kind = NODE_EV_ERROR;
    if (r->proto_version != FRAME_VERSION) {
        ev->code = NODE_ERR_VERSION;
        snprintf(ev->message, sizeof ev->message, "node speaks protocol version %u, we speak %d",
                 r->proto_version, FRAME_VERSION);
    } else if (control_fp_from_pb(r->fingerprint, &theirs) || !model_fingerprint_equal(&theirs, &c->fp)) {
        ev->code = NODE_ERR_FINGERPRINT;
        char d[200];
        model_fingerprint_diff(&c->fp, &theirs, d, sizeof d);
        snprintf(ev->message, sizeof ev->message, "node accepted HELLO but reports another model: %s", d);
    } else {
        ev->kind = NODE_EV_HELLO;
        node_info *i = &c->info;
        copy_str(i->name, sizeof i->name, r->node_name);
        copy_str(i->isa, sizeof i->isa, r->isa);
        i->proto_version = r->proto_version;
        i->capabilities = r->capabilities;
        i->ram_bytes = r->ram_bytes;
        i->threads = r->threads;
        i->n_layer = r->n_layer;
        i->n_expert = r->n_expert;
        i->n_embd = r->n_embd;
        i->assigned_experts = r->assigned_experts;
        c->state = ST_READY;
        return 1;
    }
    c->state = ST_FAILED;
    return 1;
}

/* Turn one received frame into an event. 1 = event, 0 = consumed silently. */
static int frame_to_event(node_client *c, tp_msg *m, node_event *ev) {
    frame_view v;
    char e[256];
    memset(ev, 0, sizeof(*ev));
    c->ctr.bytes_in += m->len;
    if (frame_decode(m->data, m->len, &c->lim, &v, e, sizeof e) != FRAME_OK) {
        c->ctr.bad_frames++;
        transport_release(c->t, m);
        return 0;
    }
    const uint64_t id = v.h.request_id;
    if (v.h.kind == FRAME_COMBINE) {
        outstanding *o = out_find(c, id);
        if (!id || !o) {
            c->ctr.late_dropped++;
            transport_release(c->t, m);
            return 0;
        }
        ev->request_id = id;
        ev->rtt_ms = (fp_now_s() - o->t_sent) * 1e3;
        if ((int)v.h.n_items != o->n_items || (int)v.h.n_embd != o->n_embd || v.h.layer != o->layer) {
            ev->kind = NODE_EV_ERROR;
            ev->code = NODE_ERR_PROTOCOL;
            snprintf(ev->message, sizeof ev->message,
                     "COMBINE for layer %d with %u items × %u, dispatched layer %d with %d items × %d", v.h.layer,
                     v.h.n_items, v.h.n_embd, o->layer, o->n_items, o->n_embd);
            c->ctr.errors++;
            out_remove(c, o);
            transport_release(c->t, m);
            return 1;
        }
        ev->kind = NODE_EV_RESULT;
        ev->layer = v.h.layer;
        ev->n_items = (int)v.h.n_items;
        ev->n_embd = (int)v.h.n_embd;
        ev->out = v.out;
        ev->compute_ns = v.h.aux;
        ev->msg = *m;
        c->ctr.results++;
        out_remove(c, o);
        return 1;
    }
    if (v.h.kind == FRAME_ERROR) {
        Fp__Error *pe = control_unpack_error(&v);
        if (!pe) {
            c->ctr.bad_frames++;
            transport_release(c->t, m);
            return 0;
        }
        ev->kind = NODE_EV_ERROR;
        ev->request_id = id;
        ev->code = (int)pe->code;
        copy_str(ev->message, sizeof ev->message, pe->message);
        fp__error__free_unpacked(pe, NULL);
        transport_release(c->t, m);
        if (id && !(id & CTRL_ID_BIT)) {
            outstanding *o = out_find(c, id);
            if (!o) {
                c->ctr.late_dropped++;
                return 0;
            }
            ev->rtt_ms = (fp_now_s() - o->t_sent) * 1e3;
            out_remove(c, o);
        }
        if (c->state == ST_HELLO) c->state = ST_FAILED;
        c->ctr.errors++;
        return 1;
    }
    if (v.h.kind == FRAME_DISPATCH) {       /* nodes never send these */
        c->ctr.bad_frames++;
        transport_release(c->t, m);
        return 0;
    }
    Fp__Control *pc = control_unpack(&v);
    transport_release(c->t, m);
    if (!pc) {
        c->ctr.bad_frames++;
        return 0;
    }
    int r = 1;
    ev->request_id = id;
    switch (pc->body_case) {
    case FP__CONTROL__BODY_HELLO_REPLY:
        if (c->state != ST_HELLO) {
            r = 0;
            break;
        }
        hello_reply(c, pc->hello_reply, ev);
        ev->request_id = id;
        break;
    case FP__CONTROL__BODY_LOAD_PROGRESS:
        ev->kind = NODE_EV_LOAD;
        ev->done = pc->load_progress->done;
        ev->total = pc->load_progress->total;
        ev->bytes = pc->load_progress->bytes;
        ev->finished = pc->load_progress->finished;
        break;
    case FP__CONTROL__BODY_HEARTBEAT:
        if (!pc->heartbeat->reply) {            /* the node's heartbeat: echo it */
            Fp__Heartbeat hb = *pc->heartbeat;
            hb.reply = 1;
            Fp__Control m2 = FP__CONTROL__INIT;
            m2.body_case = FP__CONTROL__BODY_HEARTBEAT;
            m2.heartbeat = &hb;
            char e2[128];
            control_send(c->t, NULL, id, &m2, 0, e2, sizeof e2);
            r = 0;
            break;
        }
        ev->kind = NODE_EV_HEARTBEAT;
        ev->seq = pc->heartbeat->seq;
        ev->rtt_ms = (double)(fp_now_ns() - pc->heartbeat->time_ns) * 1e-6;
        break;
    case FP__CONTROL__BODY_STATS: {
        const Fp__Stats *s = pc->stats;
        ev->kind = NODE_EV_STATS;
        ev->stats = (node_stats){s->requests, s->items, s->bytes_in, s->bytes_out, s->compute_ns,
                                 s->rss_bytes, s->errors, s->assigned_experts, s->assigned_bytes};
        break;
    }
    case FP__CONTROL__BODY_ACK:
        ev->kind = NODE_EV_ACK;
        break;
    case FP__CONTROL__BODY_ERROR:
        ev->kind = NODE_EV_ERROR;
        ev->code = (int)pc->error->code;
        copy_str(ev->message, sizeof ev->message, pc->error->message);
        if (c->state == ST_HELLO) c->state = ST_FAILED;
        c->ctr.errors++;
        break;
    default:
        c->ctr.bad_frames++;
        r = 0;
        break;
    }
    fp__control__free_unpacked(pc, NULL);
    return r;
}

/* Next event from the wire (not the stash). */
static int wire_event(node_client *c, node_event *ev, int timeout_ms, char *err, size_t errlen) {
    const int64_t end = timeout_ms < 0 ? 0 : fp_now_ms() + timeout_ms;
    for (;;) {
        int left = -1;
        if (timeout_ms >= 0) {
            int64_t l = end - fp_now_ms();
            left = l < 0 ? 0 : (int)l;
        }
        tp_msg m;
        char e[256];
        int r = transport_recv(c->t, &m, left, e, sizeof e);
        if (r < 0) {
            c->state = ST_FAILED;
            return fp_fail(err, errlen, "node %s: %s", c->endpoint, e);
        }
        if (r == 0) return 0;
        if (frame_to_event(c, &m, ev)) return 1;
        if (timeout_ms >= 0 && fp_now_ms() >= end) return 0;
    }
}

int node_client_poll(node_client *c, node_event *ev, int timeout_ms, char *err, size_t errlen) {
    if (stash_pop(c, ev)) return 1;
    return wire_event(c, ev, timeout_ms, err, errlen);
}

int node_client_wait_any(node_client *const *cs, int n, int timeout_ms, uint8_t *ready, char *err, size_t errlen) {
    int stashed = 0;
    for (int i = 0; i < n; i++) stashed += cs[i]->st_count > 0;
    if (stashed) timeout_ms = 0;
    transport *ts[256];
    if (n > 256) return fp_fail(err, errlen, "node_client_wait_any: at most 256 clients");
    for (int i = 0; i < n; i++) ts[i] = cs[i]->t;
    int r = transport_wait_any(ts, n, timeout_ms, ready, err, errlen);
    if (r < 0) return -1;
    if (stashed) {
        r = 0;
        for (int i = 0; i < n; i++) {
            int rd = (ready && ready[i]) || cs[i]->st_count > 0;
            if (ready) ready[i] = (uint8_t)rd;
            r += rd;
        }
    }
    return r;
}

/* Wait for the event of kind want (or an ERROR) answering request id;
 * other events are stashed for node_client_poll. 1 found, 0 timeout, -1
 * link failure. */
static int wait_for(node_client *c, int want, uint64_t id, node_event *ev, int timeout_ms, char *err, size_t errlen) {
    const int64_t end = timeout_ms < 0 ? 0 : fp_now_ms() + timeout_ms;
    for (int i = 0; i < c->st_count; i++) {
        node_event *s = &c->stash[(c->st_head + i) % c->st_cap];
        if (s->request_id == id && (s->kind == want || s->kind == NODE_EV_ERROR)) {
            *ev = *s;
            for (int j = i; j + 1 < c->st_count; j++)
                c->stash[(c->st_head + j) % c->st_cap] = c->stash[(c->st_head + j + 1) % c->st_cap];
            c->st_count--;
            return 1;
        }
    }
    for (;;) {
        int left = -1;
        if (timeout_ms >= 0) {
            int64_t l = end - fp_now_ms();
            if (l < 0) return 0;
            left = (int)l;
        }
        int r = wire_event(c, ev, left, err, errlen);
        if (r <= 0) return r;
        if (ev->request_id == id && (ev->kind == want || ev->kind == NODE_EV_ERROR)) return 1;
        if (stash_push(c, ev)) {
            node_client_release(c, ev);
            return fp_fail(err, errlen, "out of memory");
        }
    }
}

static int ev_error(node_client *c, const node_event *ev, const char *what, char *err, size_t errlen) {
    return fp_fail(err, errlen, "node %s refused %s: %s (%s)", c->endpoint, what, ev->message, node_error_name(ev->code));
}

node_client *node_client_open(const char *endpoint, const model_fingerprint *fp, const node_client_opts *o,
                              int timeout_ms, char *err, size_t errlen) {
    node_client *c = node_client_connect(endpoint, fp, o, err, errlen);
    if (!c) return NULL;
    node_event ev;
    int r = wait_for(c, NODE_EV_HELLO, c->hello_id, &ev, timeout_ms, err, errlen);
    if (r == 1 && ev.kind == NODE_EV_HELLO) return c;
    if (r == 1) ev_error(c, &ev, "HELLO", err, errlen);
    else if (r == 0) fp_fail(err, errlen, "node %s: no answer to HELLO within %d ms (is flashpool-node running there?)",
                          endpoint, timeout_ms);
    node_client_close(c);
    return NULL;
}

/* ---- data plane ------------------------------------------------------------------ */

int node_client_dispatch(node_client *c, uint64_t request_id, int layer, int n_tokens, int n_embd,
                         const block_q8_K *xq, int n_items, const expert_work *items, char *err, size_t errlen) {
    if (c->state != ST_READY) return fp_fail(err, errlen, "node %s: not ready (no accepted HELLO)", c->endpoint);
    if (!request_id || (request_id & CTRL_ID_BIT))
        return fp_fail(err, errlen, "dispatch id %llu: must be non-zero with the top bit clear",
                    (unsigned long long)request_id);
    if (n_tokens < 1 || (uint32_t)n_tokens > c->lim.max_tokens || n_items < 0 ||
        (uint32_t)n_items > c->lim.max_items || n_embd <= 0 || n_embd % QK_K || (uint32_t)n_embd > c->lim.max_embd ||
        layer < 0 || layer >= c->lim.max_layer)
        return fp_fail(err, errlen, "dispatch: counts out of range (layer %d, %d tokens, %d items, n_embd %d)", layer,
                    n_tokens, n_items, n_embd);
    if (out_find(c, request_id)) return fp_fail(err, errlen, "dispatch id %llu already outstanding",
                                             (unsigned long long)request_id);
    outstanding *slot = out_find(c, 0);
    if (!slot) return fp_fail(err, errlen, "node %s: %d dispatches outstanding (the limit)", c->endpoint, c->cap_out);
    uint8_t hdr[FRAME_HDR_BYTES];
    struct iovec iov[3];
    int ni = frame_build_dispatch(hdr, iov, request_id, layer, n_tokens, n_embd, xq, n_items, items, c->o.with_crc);
    char e[256];
    /* Stamped before the send: a preemption right after it (2 busy cores)
     * must not make the round trip look shorter than the node's compute. */
    const double t_send = fp_now_s();
    int r = transport_send(c->t, NULL, iov, ni, 0, e, sizeof e);
    if (r == 1) return fp_fail(err, errlen, "node %s: send queue full (node not keeping up or gone)", c->endpoint);
    if (r < 0) return fp_fail(err, errlen, "node %s: %s", c->endpoint, e);
    *slot = (outstanding){request_id, layer, n_items, n_embd, t_send};
    c->n_out++;
    c->ctr.dispatches++;
    for (int i = 0; i < ni; i++) c->ctr.bytes_out += iov[i].iov_len;
    return 0;
}

void node_client_forget(node_client *c, uint64_t request_id) {
    outstanding *o = request_id ? out_find(c, request_id) : NULL;
    if (o) out_remove(c, o);
}

int node_client_wait_result(node_client *c, uint64_t request_id, node_event *ev, int timeout_ms, char *err,
                            size_t errlen) {
    return wait_for(c, NODE_EV_RESULT, request_id, ev, timeout_ms, err, errlen);
}

/* ---- control plane ----------------------------------------------------------------- */

int node_client_assign_send(node_client *c, const node_expert_id *ids, int n, char *err, size_t errlen) {
    if (c->state != ST_READY) return fp_fail(err, errlen, "node %s: not ready (no accepted HELLO)", c->endpoint);
    if (n < 0) return fp_fail(err, errlen, "assign: negative count");
    Fp__ExpertId *e = calloc((size_t)(n ? n : 1), sizeof(*e));
    Fp__ExpertId **pe = calloc((size_t)(n ? n : 1), sizeof(*pe));
    if (!e || !pe) {
        free(e);
        free(pe);
        return fp_fail(err, errlen, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        fp__expert_id__init(&e[i]);
        if (ids[i].layer < 0 || ids[i].expert < 0) {
            free(e);
            free(pe);
            return fp_fail(err, errlen, "assign: negative layer/expert at %d", i);
        }
        e[i].layer = (uint32_t)ids[i].layer;
        e[i].expert = (uint32_t)ids[i].expert;
        pe[i] = &e[i];
    }
    Fp__Assign a = FP__ASSIGN__INIT;
    a.n_experts = (size_t)n;
    a.experts = pe;
    Fp__Control m = FP__CONTROL__INIT;
    m.body_case = FP__CONTROL__BODY_ASSIGN;
    m.assign = &a;
    int r = send_ctrl(c, &m, &c->assign_id, err, errlen);
    free(e);
    free(pe);
    return r;
}

int node_client_assign(node_client *c, const node_expert_id *ids, int n, node_progress_fn fn, void *ud,
                       int timeout_ms, char *err, size_t errlen) {
    if (node_client_assign_send(c, ids, n, err, errlen)) return -1;
    const int64_t end = timeout_ms < 0 ? 0 : fp_now_ms() + timeout_ms;
    for (;;) {
        int left = -1;
        if (timeout_ms >= 0) {
            int64_t l = end - fp_now_ms();
            left = l < 0 ? 0 : (int)l;
        }
        node_event ev;
        int r = wait_for(c, NODE_EV_LOAD, c->assign_id, &ev, left, err, errlen);
        if (r < 0) return -1;
        if (r == 0) return fp_fail(err, errlen, "node %s: loading %d experts did not finish within %d ms", c->endpoint,
                                n, timeout_ms);
        if (ev.kind == NODE_EV_ERROR) return ev_error(c, &ev, "ASSIGN", err, errlen);
        if (fn) fn(ud, ev.done, ev.total, ev.bytes);
        if (ev.finished) return 0;
    }
}

int node_client_heartbeat_send(node_client *c, uint64_t *seq, char *err, size_t errlen) {
    Fp__Heartbeat hb = FP__HEARTBEAT__INIT;
    hb.seq = ++c->hb_seq;
    hb.time_ns = fp_now_ns();
    Fp__Control m = FP__CONTROL__INIT;
    m.body_case = FP__CONTROL__BODY_HEARTBEAT;
    m.heartbeat = &hb;
    if (seq) *seq = hb.seq;
    return send_ctrl(c, &m, &c->hb_id, err, errlen);
}

int node_client_heartbeat(node_client *c, double *rtt_ms, int timeout_ms, char *err, size_t errlen) {
    uint64_t seq;
    if (node_client_heartbeat_send(c, &seq, err, errlen)) return -1;
    const int64_t end = timeout_ms < 0 ? 0 : fp_now_ms() + timeout_ms;
    for (;;) {
        int left = -1;
        if (timeout_ms >= 0) {
            int64_t l = end - fp_now_ms();
            left = l < 0 ? 0 : (int)l;
        }
        node_event ev;
        int r = wait_for(c, NODE_EV_HEARTBEAT, c->hb_id, &ev, left, err, errlen);
        if (r < 0) return -1;
        if (r == 0) return fp_fail(err, errlen, "node %s: no heartbeat reply within %d ms", c->endpoint, timeout_ms);
        if (ev.kind == NODE_EV_ERROR) return ev_error(c, &ev, "HEARTBEAT", err, errlen);
        if (ev.seq != seq) continue;        /* an older heartbeat's reply */
        if (rtt_ms) *rtt_ms = ev.rtt_ms;
        return 0;
    }
}

int node_client_stats_send(node_client *c, char *err, size_t errlen) {
    Fp__StatsRequest sr = FP__STATS_REQUEST__INIT;
    Fp__Control m = FP__CONTROL__INIT;
    m.body_case = FP__CONTROL__BODY_STATS_REQUEST;
    m.stats_request = &sr;
    return send_ctrl(c, &m, &c->stats_id, err, errlen);
}

int node_client_stats(node_client *c, node_stats *st, int timeout_ms, char *err, size_t errlen) {
    if (node_client_stats_send(c, err, errlen)) return -1;
    node_event ev;
    int r = wait_for(c, NODE_EV_STATS, c->stats_id, &ev, timeout_ms, err, errlen);
    if (r < 0) return -1;
    if (r == 0) return fp_fail(err, errlen, "node %s: no stats reply within %d ms", c->endpoint, timeout_ms);
    if (ev.kind == NODE_EV_ERROR) return ev_error(c, &ev, "STATS", err, errlen);
    *st = ev.stats;
    return 0;
}

static int ack_call(node_client *c, int body, const char *what, int timeout_ms, char *err, size_t errlen) {
    Fp__Drain d = FP__DRAIN__INIT;
    Fp__Shutdown s = FP__SHUTDOWN__INIT;
    Fp__Control m = FP__CONTROL__INIT;
    m.body_case = (Fp__Control__BodyCase)body;
    if (body == FP__CONTROL__BODY_DRAIN) m.drain = &d;
    else m.shutdown = &s;
    uint64_t id;
    if (send_ctrl(c, &m, &id, err, errlen)) return -1;
    node_event ev;
    int r = wait_for(c, NODE_EV_ACK, id, &ev, timeout_ms, err, errlen);
    if (r < 0) return -1;
    if (r == 0) return fp_fail(err, errlen, "node %s: no %s acknowledgement within %d ms", c->endpoint, what, timeout_ms);
    if (ev.kind == NODE_EV_ERROR) return ev_error(c, &ev, what, err, errlen);
    return 0;
}

int node_client_drain(node_client *c, int timeout_ms, char *err, size_t errlen) {
    return ack_call(c, FP__CONTROL__BODY_DRAIN, "DRAIN", timeout_ms, err, errlen);
}

int node_client_shutdown(node_client *c, int timeout_ms, char *err, size_t errlen) {
    return ack_call(c, FP__CONTROL__BODY_SHUTDOWN, "SHUTDOWN", timeout_ms, err, errlen);
}
