/* node_server.c — the expert node's service loop (see node_server.h):
 * per-peer HELLO state, ASSIGN/load progress, DISPATCH -> experts_compute
 * -> COMBINE, heartbeats, stats, drain, shutdown, and an ERROR frame for
 * everything refused. */
#include "clock.h"
#include "node_server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "control_msg.h"
#include "expert_set.h"
#include "expert_store.h"
#include "experts.h"
#include "frame.h"
#include "gguf.h"
#include "model_fingerprint.h"
#include "quant.h"
#include "threadpool.h"

#define MAX_PEERS 64
#define REPLY_MS 2000               /* how long a reply may wait for queue room */
#define LOG_ERR_FIRST 20            /* refused frames logged one by one, then every 1000th */
#define PROGRESS_EVERY_MS 100

typedef struct peer_state {
    tp_peer id;
    int tidx;                       /* which listen transport */
    int hello_ok;
    uint64_t last_used;
    uint64_t last_seen_ns;          /* last frame from it */
} peer_state;

struct node_server {
    node_server_opts o;
    char name[64];
    gguf_file *f;
    expert_store *st;
    expert_set *set;
    model_fingerprint fp;
    threadpool *tp;
    const quant_kernels *k;
    int n_threads;
    transport *t[NODE_MAX_LISTEN];
    int n_t;
    frame_limits lim;
    peer_state peers[MAX_PEERS];
    uint64_t tick;
    int draining, shutdown;
    int drain_sig;                  /* operator drain (opts.drain) in effect */
    /* compute scratch, grown as needed */
    float *out;
    size_t out_cap;
    expert_slabs *slabs;
    int slabs_cap;
    /* stats */
    uint64_t requests, items, bytes_in, bytes_out, compute_ns, errors;
};

__attribute__((format(printf, 2, 3))) static void logf_(node_server *s, const char *fmt, ...) {
    if (!s->o.log) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    s->o.log(s->o.log_ud, buf);
}

void node_server_opts_default(node_server_opts *o) {
    memset(o, 0, sizeof(*o));
    transport_opts_default(&o->tp);
}

static uint64_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, res = 0;
    if (!f) return 0;
    if (fscanf(f, "%llu %llu", &size, &res) != 2) res = 0;
    fclose(f);
    return res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static uint64_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024ull;
}

/* ---- open / close -------------------------------------------------------------- */

node_server *node_server_open(const node_server_opts *o, char *err, size_t errlen) {
    node_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->o = *o;
    frame_limits_default(&s->lim);
    if (o->name) snprintf(s->name, sizeof s->name, "%s", o->name);
    else if (gethostname(s->name, sizeof s->name - 1) != 0) snprintf(s->name, sizeof s->name, "node");
    char e[512];
    if (!o->model_path) {
        snprintf(err, errlen, "no model file given");
        goto bad;
    }
    s->f = gguf_open(o->model_path, e, sizeof e);
    if (!s->f) {
        snprintf(err, errlen, "%s: %s", o->model_path, e);
        goto bad;
    }
    s->st = expert_store_open(s->f, e, sizeof e);
    if (!s->st) {
        snprintf(err, errlen, "%s: %s", o->model_path, e);
        goto bad;
    }
    if (model_fingerprint_compute(s->f, &s->fp, e, sizeof e)) {
        snprintf(err, errlen, "%s: %s", o->model_path, e);
        goto bad;
    }
    s->set = expert_set_open(o->model_path, s->st, err, errlen);
    if (!s->set) goto bad;
    s->n_threads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (s->n_threads < 1) s->n_threads = 1;
    s->tp = threadpool_open(s->n_threads);
    s->k = quant_kernels_best();
    if (!s->tp || !s->k) {
        snprintf(err, errlen, "cannot start %d compute threads", s->n_threads);
        goto bad;
    }
    if (o->n_listen < 1 || o->n_listen > NODE_MAX_LISTEN) {
        snprintf(err, errlen, "give 1..%d listen endpoints", NODE_MAX_LISTEN);
        goto bad;
    }
    for (int i = 0; i < o->n_listen; i++) {
        s->t[i] = transport_listen(o->listen[i], &o->tp, e, sizeof e);
        if (!s->t[i]) {
            snprintf(err, errlen, "%s", e);
            goto bad;
        }
        s->n_t++;
    }
    return s;
bad:
    node_server_close(s);
    return NULL;
}

void node_server_close(node_server *s) {
    if (!s) return;
    for (int i = 0; i < s->n_t; i++) transport_close(s->t[i]);
    expert_set_close(s->set);
    threadpool_close(s->tp);
    expert_store_close(s->st);
    gguf_close(s->f);
    free(s->out);
    free(s->slabs);
    free(s);
}

const char *node_server_endpoint(const node_server *s, int i) {
    return i >= 0 && i < s->n_t ? transport_endpoint(s->t[i]) : NULL;
}

/* ---- peers ------------------------------------------------------------------------ */

static peer_state *peer_get(node_server *s, int tidx, const tp_peer *id) {
    peer_state *lru = &s->peers[0];
    for (int i = 0; i < MAX_PEERS; i++) {
        peer_state *p = &s->peers[i];
        if (p->last_used && p->tidx == tidx && transport_peer_eq(&p->id, id)) {
            p->last_used = ++s->tick;
            p->last_seen_ns = fp_now_ns();
            return p;
        }
        if (p->last_used < lru->last_used) lru = p;
    }
    /* new peer: take a free or the least recently used slot (a forgotten
     * peer only has to say HELLO again) */
    memset(lru, 0, sizeof(*lru));
    lru->id = *id;
    lru->tidx = tidx;
    lru->last_used = ++s->tick;
    lru->last_seen_ns = fp_now_ns();
    return lru;
}

/* ---- replies ---------------------------------------------------------------------- */

typedef struct ctx_msg {
    node_server *s;
    int tidx;
    const tp_peer *peer;
    uint64_t id;
    char peer_str[2 * TRANSPORT_PEER_MAX + 1];
} ctx_msg;

static void reply_ctrl(ctx_msg *c, const Fp__Control *m) {
    char e[256];
    size_t n = protobuf_c_message_get_packed_size(&m->base);
    if (control_send(c->s->t[c->tidx], c->peer, c->id, m, REPLY_MS, e, sizeof e) != 0)
        logf_(c->s, "reply to %s not sent: %s", c->peer_str, e);
    else c->s->bytes_out += FRAME_HDR_BYTES + n;
}

__attribute__((format(printf, 3, 4))) static void reply_error(ctx_msg *c, int code, const char *fmt, ...) {
    char msg[400], e[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    node_server *s = c->s;
    s->errors++;
    if (s->errors <= LOG_ERR_FIRST || s->errors % 1000 == 0)
        logf_(s, "refused frame %llu from %s: %s: %s%s", (unsigned long long)c->id, c->peer_str,
              control_error_name(code), msg, s->errors == LOG_ERR_FIRST ? " (further refusals logged every 1000th)" : "");
    if (control_send_error(s->t[c->tidx], c->peer, c->id, code, msg, REPLY_MS, e, sizeof e) != 0)
        logf_(s, "error reply to %s not sent: %s", c->peer_str, e);
}

/* ---- control messages --------------------------------------------------------------- */

static void on_hello(ctx_msg *c, peer_state *p, const Fp__Hello *h) {
    node_server *s = c->s;
    if (s->drain_sig) {
        p->hello_ok = 0;
        reply_error(c, FP__ERROR__CODE__ERROR_DRAINING, "node is drained by its operator; try again later");
        return;
    }
    if (h->proto_version != FRAME_VERSION) {
        reply_error(c, FP__ERROR__CODE__ERROR_VERSION, "coordinator speaks protocol version %u, this node %d",
                    h->proto_version, FRAME_VERSION);
        return;
    }
    model_fingerprint theirs;
    if (control_fp_from_pb(h->fingerprint, &theirs)) {
        reply_error(c, FP__ERROR__CODE__ERROR_PROTOCOL, "HELLO without a valid model fingerprint");
        return;
    }
    if (!model_fingerprint_equal(&s->fp, &theirs)) {
        char d[256], mine[200];
        model_fingerprint_diff(&s->fp, &theirs, d, sizeof d);
        model_fingerprint_str(&s->fp, mine, sizeof mine);
        p->hello_ok = 0;
        /* "here" in the diff is this node; say so for the reader at the other end */
        reply_error(c, FP__ERROR__CODE__ERROR_FINGERPRINT,
                    "model fingerprint mismatch (node '%s' serves %s: %s; node file %s)", s->name, s->o.model_path,
                    d, mine);
        return;
    }
    p->hello_ok = 1;
    Fp__ModelFingerprint pfp;
    control_fp_to_pb(&s->fp, &pfp);
    Fp__HelloReply r = FP__HELLO_REPLY__INIT;
    r.proto_version = FRAME_VERSION;
    r.node_name = s->name;
    r.capabilities = FP__CAPABILITY__CAP_CRC32C;
    r.fingerprint = &pfp;
    r.ram_bytes = s->o.ram_limit ? s->o.ram_limit : mem_available() + expert_set_bytes(s->set);
    r.threads = (uint32_t)s->n_threads;
    r.isa = (char *)s->k->name;
    r.n_layer = (uint32_t)expert_store_n_layer(s->st);
    r.n_expert = (uint32_t)expert_store_n_expert(s->st);
    r.n_embd = (uint32_t)expert_store_n_embd(s->st);
    r.assigned_experts = expert_set_count(s->set);
    Fp__Control m = FP__CONTROL__INIT;
    m.body_case = FP__CONTROL__BODY_HELLO_REPLY;
    m.hello_reply = &r;
    reply_ctrl(c, &m);
    logf_(s, "HELLO from %s (%s): fingerprint ok", h->node_name ? h->node_name : "?", c->peer_str);
}

typedef struct load_ctx {
    ctx_msg *c;
    uint64_t last_ns;
} load_ctx;

static void send_progress(ctx_msg *c, uint64_t done, uint64_t total, uint64_t bytes, int finished) {
    Fp__LoadProgress lp = FP__LOAD_PROGRESS__INIT;
    lp.done = done;
    lp.total = total;
    lp.bytes = bytes;
    lp.finished = finished;
    Fp__Control m = FP__CONTROL__INIT;
    m.body_case = FP__CONTROL__BODY_LOAD_PROGRESS;
    m.load_progress = &lp;
    reply_ctrl(c, &m);
}

static int load_progress(void *ud, uint64_t done, uint64_t total, uint64_t bytes) {
    load_ctx *l = ud;
    const uint64_t t = fp_now_ns();
    if (done < total && t - l->last_ns < PROGRESS_EVERY_MS * 1000000ull && done != 0) return 0;
    l->last_ns = t;
    if (done < total) send_progress(l->c, done, total, bytes, 0);
    return l->c->s->o.stop && *l->c->s->o.stop ? 1 : 0;
}

static void on_assign(ctx_msg *c, const Fp__Assign *a) {
    node_server *s = c->s;
    const size_t n = a->n_experts;
    const size_t max = (size_t)expert_store_n_layer(s->st) * (size_t)expert_store_n_expert(s->st);
    if (n > max * 4) {
        reply_error(c, FP__ERROR__CODE__ERROR_PROTOCOL, "ASSIGN lists %zu experts, the model has %zu", n, max);
        return;
    }
    int32_t *L = malloc((n ? n : 1) * sizeof(int32_t)), *E = malloc((n ? n : 1) * sizeof(int32_t));
    if (!L || !E) {
        free(L);
        free(E);
        reply_error(c, FP__ERROR__CODE__ERROR_NO_MEMORY, "out of memory reading ASSIGN");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        /* ids past INT32_MAX become -1 and are refused as nonexistent */
        L[i] = a->experts[i]->layer > INT32_MAX ? -1 : (int32_t)a->experts[i]->layer;
        E[i] = a->experts[i]->expert > INT32_MAX ? -1 : (int32_t)a->experts[i]->expert;
    }
    const uint64_t t0 = fp_now_ns();
    load_ctx lc = {c, 0};
    int code;
    char e[300];
    int rc = expert_set_assign(s->set, L, E, (int)n, s->o.ram_limit, load_progress, &lc, &code, e, sizeof e);
    free(L);
    free(E);
    if (rc) {
        static const int map[] = {FP__ERROR__CODE__ERROR_INTERNAL, FP__ERROR__CODE__ERROR_SHAPE,
                                  FP__ERROR__CODE__ERROR_NO_MEMORY, FP__ERROR__CODE__ERROR_IO,
                                  FP__ERROR__CODE__ERROR_INTERNAL};
        reply_error(c, map[code >= 0 && code <= 4 ? code : 0], "ASSIGN failed: %s", e);
        return;
    }
    s->draining = 0;
    const uint64_t cnt = expert_set_count(s->set), bytes = expert_set_bytes(s->set);
    send_progress(c, cnt, cnt, bytes, 1);
    logf_(s, "ASSIGN: holding %llu experts, %.1f MiB (loaded in %.2f s), RSS %.1f MiB", (unsigned long long)cnt,
          bytes / 1048576.0, (fp_now_ns() - t0) * 1e-9, rss_bytes() / 1048576.0);
}

static void on_stats(ctx_msg *c) {
    node_server *s = c->s;
    Fp__Stats st = FP__STATS__INIT;
    st.requests = s->requests;
    st.items = s->items;
    st.bytes_in = s->bytes_in;
    st.bytes_out = s->bytes_out;
    st.compute_ns = s->compute_ns;
    st.rss_bytes = rss_bytes();
    st.errors = s->errors;
    st.assigned_experts = expert_set_count(s->set);
    st.assigned_bytes = expert_set_bytes(s->set);
    Fp__Control m = FP__CONTROL__INIT;
    m.body_case = FP__CONTROL__BODY_STATS;
    m.stats = &st;
    reply_ctrl(c, &m);
}

static void on_ack(ctx_msg *c) {
    Fp__Ack a = FP__ACK__INIT;
    Fp__Control m = FP__CONTROL__INIT;
    m.body_case = FP__CONTROL__BODY_ACK;
    m.ack = &a;
    reply_ctrl(c, &m);
}

static void on_control(ctx_msg *c, peer_state *p, const frame_view *v) {
    node_server *s = c->s;
    Fp__Control *m = control_unpack(v);
    if (!m) {
        reply_error(c, FP__ERROR__CODE__ERROR_PROTOCOL, "CONTROL payload is not a valid fp.Control message");
        return;
    }
    if (m->body_case == FP__CONTROL__BODY_HELLO) {
        on_hello(c, p, m->hello);
    } else if (m->body_case == FP__CONTROL__BODY_HEARTBEAT) {
        if (!m->heartbeat->reply) {     /* echo; replies to our own would be unsolicited here */
            Fp__Heartbeat hb = *m->heartbeat;
            hb.reply = 1;
            Fp__Control r = FP__CONTROL__INIT;
            r.body_case = FP__CONTROL__BODY_HEARTBEAT;
            r.heartbeat = &hb;
            reply_ctrl(c, &r);
        }
    } else if (!p->hello_ok) {
        reply_error(c, FP__ERROR__CODE__ERROR_NOT_READY, "send HELLO with a matching model fingerprint first");
    } else {
        switch (m->body_case) {
        case FP__CONTROL__BODY_ASSIGN: on_assign(c, m->assign); break;
        case FP__CONTROL__BODY_STATS_REQUEST: on_stats(c); break;
        case FP__CONTROL__BODY_DRAIN:
            s->draining = 1;
            logf_(s, "DRAIN from %s: refusing new dispatches until the next ASSIGN", c->peer_str);
            on_ack(c);
            break;
        case FP__CONTROL__BODY_SHUTDOWN:
            logf_(s, "SHUTDOWN from %s", c->peer_str);
            on_ack(c);
            s->shutdown = 1;
            break;
        default:
            reply_error(c, FP__ERROR__CODE__ERROR_PROTOCOL, "unexpected control message (body %d)", (int)m->body_case);
            break;
        }
    }
    fp__control__free_unpacked(m, NULL);
}

/* ---- dispatch ------------------------------------------------------------------------ */

static void on_dispatch(ctx_msg *c, peer_state *p, const frame_view *v) {
    node_server *s = c->s;
    const frame_hdr *h = &v->h;
    if (!p->hello_ok) {
        reply_error(c, FP__ERROR__CODE__ERROR_NOT_READY, "send HELLO with a matching model fingerprint first");
        return;
    }
    if (s->draining || s->drain_sig) {
        reply_error(c, FP__ERROR__CODE__ERROR_DRAINING, "node is draining");
        return;
    }
    if ((int)h->n_embd != expert_store_n_embd(s->st) || h->layer >= expert_store_n_layer(s->st)) {
        reply_error(c, FP__ERROR__CODE__ERROR_SHAPE, "layer %d / n_embd %u, the model has %d layers of width %d",
                    h->layer, h->n_embd, expert_store_n_layer(s->st), expert_store_n_embd(s->st));
        return;
    }
    const int n = (int)h->n_items;
    if (n > s->slabs_cap) {
        expert_slabs *ns = realloc(s->slabs, (size_t)n * sizeof(*ns));
        if (!ns) {
            reply_error(c, FP__ERROR__CODE__ERROR_NO_MEMORY, "out of memory for %d items", n);
            return;
        }
        s->slabs = ns;
        s->slabs_cap = n;
    }
    for (int i = 0; i < n; i++) {
        expert_work w;
        memcpy(&w, &v->items[i], sizeof w);
        if (expert_set_get(s->set, h->layer, w.expert, &s->slabs[i])) {
            reply_error(c, FP__ERROR__CODE__ERROR_NOT_ASSIGNED, "expert %d of layer %d (item %d) is not held here",
                        w.expert, h->layer, i);
            return;
        }
    }
    const size_t need = (size_t)n * h->n_embd;
    if (need > s->out_cap) {
        float *no = realloc(s->out, need * sizeof(float));
        if (!no) {
            reply_error(c, FP__ERROR__CODE__ERROR_NO_MEMORY, "out of memory for %d outputs", n);
            return;
        }
        s->out = no;
        s->out_cap = need;
    }
    const uint64_t t0 = fp_now_ns();
    if (experts_compute(s->tp, s->k, expert_store_shape(s->st, h->layer), v->xq, n, v->items, s->slabs, s->out)) {
        reply_error(c, FP__ERROR__CODE__ERROR_INTERNAL, "experts_compute failed (unsupported type or out of memory)");
        return;
    }
    const uint64_t dt = fp_now_ns() - t0;
    s->compute_ns += dt;
    s->requests++;
    s->items += (uint64_t)n;
    uint8_t hdr[FRAME_HDR_BYTES];
    struct iovec iov[2];
    int ni = frame_build_combine(hdr, iov, h->request_id, h->layer, n, (int)h->n_embd, s->out, dt, s->o.with_crc);
    char e[256];
    if (transport_send(s->t[c->tidx], c->peer, iov, ni, REPLY_MS, e, sizeof e) != 0)
        logf_(s, "COMBINE %llu to %s not sent: %s", (unsigned long long)h->request_id, c->peer_str, e);
    else s->bytes_out += FRAME_HDR_BYTES + iov[1].iov_len;
}

/* ---- loop ------------------------------------------------------------------------------ */

static int frame_err_code(int fe) {
    return fe == FRAME_E_VERSION ? FP__ERROR__CODE__ERROR_VERSION : FP__ERROR__CODE__ERROR_PROTOCOL;
}

static void handle(node_server *s, int tidx, tp_msg *m) {
    ctx_msg c = {.s = s, .tidx = tidx, .peer = &m->peer};
    transport_peer_str(&m->peer, c.peer_str, sizeof c.peer_str);
    s->bytes_in += m->len;
    frame_view v;
    char e[256];
    int fe = frame_decode(m->data, m->len, &s->lim, &v, e, sizeof e);
    c.id = v.h.request_id;          /* decoded even when the rest is refused */
    peer_state *p = peer_get(s, tidx, &m->peer);
    if (fe != FRAME_OK) {
        reply_error(&c, frame_err_code(fe), "%s", e);
        return;
    }
    switch (v.h.kind) {
    case FRAME_CONTROL: on_control(&c, p, &v); break;
    case FRAME_DISPATCH: on_dispatch(&c, p, &v); break;
    default:
        reply_error(&c, FP__ERROR__CODE__ERROR_PROTOCOL, "a node accepts DISPATCH and CONTROL frames, not kind %u",
                    v.h.kind);
        break;
    }
}

/* Operator drain toggled: tell every coordinator that said HELLO (an
 * ERROR_DRAINING with request id 0), forget their HELLO so they must
 * rejoin after the drain ends. */
static void check_drain(node_server *s) {
    const int want = s->o.drain && *s->o.drain;
    if (want == s->drain_sig) return;
    s->drain_sig = want;
    if (!want) {
        logf_(s, "drain ended: coordinators may rejoin");
        return;
    }
    int told = 0;
    for (int i = 0; i < MAX_PEERS; i++) {
        peer_state *p = &s->peers[i];
        if (!p->last_used || !p->hello_ok) continue;
        char e[256];
        if (control_send_error(s->t[p->tidx], &p->id, 0, FP__ERROR__CODE__ERROR_DRAINING,
                               "node is drained by its operator", REPLY_MS, e, sizeof e) == 0)
            told++;
        p->hello_ok = 0;
    }
    logf_(s, "draining: told %d coordinator(s); refusing DISPATCH and HELLO until the drain ends", told);
}

/* Coordinators silent past peer_timeout_s are taken for dead. */
static void expire_peers(node_server *s) {
    if (s->o.peer_timeout_s <= 0) return;
    const uint64_t now = fp_now_ns(), lim = (uint64_t)(s->o.peer_timeout_s * 1e9);
    for (int i = 0; i < MAX_PEERS; i++) {
        peer_state *p = &s->peers[i];
        if (!p->last_used || !p->hello_ok || now - p->last_seen_ns <= lim) continue;
        char ps[2 * TRANSPORT_PEER_MAX + 1];
        transport_peer_str(&p->id, ps, sizeof ps);
        logf_(s, "coordinator %s silent for %.0f s: taken for dead, its HELLO forgotten", ps,
              (now - p->last_seen_ns) * 1e-9);
        p->hello_ok = 0;
    }
}

int node_server_run(node_server *s, char *err, size_t errlen) {
    for (int i = 0; i < s->n_t; i++) logf_(s, "listening on %s", transport_endpoint(s->t[i]));
    while (!s->shutdown && !(s->o.stop && *s->o.stop)) {
        check_drain(s);
        expire_peers(s);
        /* wait (bounded, so a stop request is seen), then take one message
         * from each ready transport in turn */
        char e[256];
        uint8_t ready[NODE_MAX_LISTEN];
        int r = transport_wait_any(s->t, s->n_t, 200, ready, e, sizeof e);
        if (r < 0) {
            if (s->o.stop && *s->o.stop) break;
            snprintf(err, errlen, "%s", e);
            return -1;
        }
        for (int i = 0; i < s->n_t && !s->shutdown; i++) {
            tp_msg m;
            int g = transport_recv(s->t[i], &m, 0, e, sizeof e);
            if (g < 0) {
                snprintf(err, errlen, "%s: %s", transport_endpoint(s->t[i]), e);
                return -1;
            }
            if (g == 0) continue;
            handle(s, i, &m);
            transport_release(s->t[i], &m);
        }
    }
    logf_(s, "stopping: %llu requests, %llu items served, %llu frames refused", (unsigned long long)s->requests,
          (unsigned long long)s->items, (unsigned long long)s->errors);
    return 0;
}
