/* session_cache.c — live sessions under a RAM budget: request matching
 * (longest usable prefix over live sessions, their rewind points and the
 * disk store), fork / in-place rewind from TAIL snapshots, LRU eviction to
 * disk, and the policy-driven checkpoint saves during prefill and decode. */
#include "session_cache.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "kv_snapshot.h"

typedef struct rewind_pt {
    void *buf;                 /* TAIL snapshot, capacity rp_cap */
    size_t len;
    int n_tokens;              /* 0 = slot empty */
    uint64_t taken;            /* for replacing the oldest */
} rewind_pt;

typedef struct sc_entry {
    fp_session *s;             /* NULL = slot not opened yet */
    int busy;
    uint64_t last_used;
    int cont_frontier;         /* continued saves only above this length */
    int cold_len;              /* pending cold save (set on a miss), 0 = none */
    rewind_pt *rp;
} sc_entry;

struct session_cache {
    fp_engine *e;
    session_cache_opts o;
    pthread_mutex_t mu;
    sc_entry *ent;             /* max_sessions slots, fixed: owners keep pointers */
    int max_sessions;
    size_t rp_cap;             /* bytes of one rewind point at full context */
    uint64_t per_session;
    uint64_t clock;
    session_cache_stats st;
};

static void logf_(session_cache *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(session_cache *c, const char *fmt, ...) {
    if (!c->o.log) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->o.log(c->o.log_ud, msg);
}

void session_cache_opts_defaults(session_cache_opts *o) {
    memset(o, 0, sizeof *o);
    o->ctx = 4096;
    o->rewind_points = 3;
    o->rewind_min_tokens = 64;
    o->cancel_chunk = 256;
    kv_policy_defaults(&o->policy);
}

uint64_t session_cache_session_bytes(fp_engine *e, int ctx, int rewind_points) {
    return engine_session_bytes(e, ctx) +
           (uint64_t)rewind_points * kv_snapshot_bytes(&engine_model(e)->hp, ctx, KV_SNAP_TAIL);
}

session_cache *session_cache_open(fp_engine *e, const session_cache_opts *o, char *err, size_t errlen) {
    if (o->ctx < 1) {
        snprintf(err, errlen, "context size must be at least 1 (got %d)", o->ctx);
        return NULL;
    }
    if (o->rewind_points < 0 || o->max_sessions < 0 || o->cancel_chunk < 1) {
        snprintf(err, errlen, "rewind points and session count must be >= 0, the cancel chunk >= 1");
        return NULL;
    }
    if (kv_policy_check(&o->policy, err, errlen)) return NULL;
    session_cache *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->e = e;
    c->o = *o;
    pthread_mutex_init(&c->mu, NULL);
    c->rp_cap = kv_snapshot_bytes(&engine_model(e)->hp, o->ctx, KV_SNAP_TAIL);
    c->per_session = session_cache_session_bytes(e, o->ctx, o->rewind_points);
    uint64_t n = o->ram_bytes ? o->ram_bytes / c->per_session : 1;
    if (o->max_sessions && n > (uint64_t)o->max_sessions) n = (uint64_t)o->max_sessions;
    if (n > 4096) n = 4096;
    if (n == 0) {
        snprintf(err, errlen,
                 "--kv-ram-mb %.0f is less than one session of %d tokens (%.1f MiB with %d rewind points); raise "
                 "--kv-ram-mb or lower --ctx",
                 o->ram_bytes / 1048576.0, o->ctx, c->per_session / 1048576.0, o->rewind_points);
        free(c);
        return NULL;
    }
    c->max_sessions = (int)n;
    c->ent = calloc(n, sizeof *c->ent);
    if (!c->ent) {
        snprintf(err, errlen, "out of memory");
        free(c);
        return NULL;
    }
    c->st.max_sessions = c->max_sessions;
    c->st.ram_budget = o->ram_bytes ? o->ram_bytes : c->per_session;
    c->st.per_session_bytes = c->per_session;
    logf_(c, "session cache: up to %d live sessions of %d tokens (%.1f MiB each incl. %d rewind points)",
          c->max_sessions, o->ctx, c->per_session / 1048576.0, o->rewind_points);
    return c;
}

/* ---- helpers (callers hold c->mu unless the entry is theirs, busy) ------- */

static void drop_rewind_points(session_cache *c, sc_entry *x, int above) {
    for (int i = 0; i < c->o.rewind_points; i++)
        if (x->rp[i].n_tokens > above) x->rp[i].n_tokens = 0;
}

static sc_entry *entry_of(session_cache *c, const fp_session *s) {
    for (int i = 0; i < c->max_sessions; i++)
        if (c->ent[i].s && c->ent[i].s == s) return &c->ent[i];
    return NULL;
}

static int lcp(const int32_t *a, const int32_t *b, int n) {
    int i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

/* The rewind point of x with the most tokens, at most limit. */
static int best_rewind(session_cache *c, const sc_entry *x, int limit) {
    int best = -1;
    for (int i = 0; i < c->o.rewind_points; i++) {
        const int k = x->rp[i].n_tokens;
        if (k > 0 && k <= limit && (best < 0 || k > x->rp[best].n_tokens)) best = i;
    }
    return best;
}

static void count_save(session_cache *c) {
    pthread_mutex_lock(&c->mu);
    c->st.saves++;
    pthread_mutex_unlock(&c->mu);
}

/* Checkpoint x's session to disk if the policy allows; failures are logged,
 * never fatal to the request. Returns 1 when a file was written. */
static int save(session_cache *c, sc_entry *x, int reason) {
    if (!c->o.disk || session_n_tokens(x->s) < c->o.policy.min_tokens) return 0;
    char err[512];
    const int r = kv_disk_save(c->o.disk, x->s, reason, err, sizeof err);
    if (r < 0) logf_(c, "session cache: %s save of %d tokens failed: %s", kv_save_reason_name(reason),
                     session_n_tokens(x->s), err);
    return r > 0;
}

/* Keep a TAIL snapshot of x's current state (replacing the oldest point). */
static void take_rewind_point(session_cache *c, sc_entry *x) {
    const int n = session_n_tokens(x->s);
    if (!c->o.rewind_points || n < c->o.rewind_min_tokens || n < 1) return;
    int slot = -1;
    for (int i = 0; i < c->o.rewind_points; i++) {
        if (x->rp[i].n_tokens == n) return;   /* same prefix, same state */
        if (slot < 0 || (x->rp[slot].n_tokens && (!x->rp[i].n_tokens || x->rp[i].taken < x->rp[slot].taken)))
            slot = i;
    }
    rewind_pt *r = &x->rp[slot];
    r->n_tokens = 0;
    if (!r->buf && !(r->buf = malloc(c->rp_cap))) return;
    char err[256];
    if (kv_snapshot_save_into(x->s, KV_SNAP_TAIL, r->buf, c->rp_cap, &r->len, err, sizeof err)) {
        logf_(c, "session cache: rewind point at %d tokens not kept: %s", n, err);
        return;
    }
    r->n_tokens = n;
    uint64_t top = 0;
    for (int i = 0; i < c->o.rewind_points; i++)
        if (x->rp[i].taken > top) top = x->rp[i].taken;
    r->taken = top + 1;
}

/* A session slot for a fresh start: an idle empty session, else a new one
 * within the budget, else (allow_evict) the least recently used idle one,
 * saved to disk first. NULL with err empty when nothing is free without
 * evicting, with err filled when everything is busy or on OOM. */
static sc_entry *take_slot(session_cache *c, int allow_evict, char *err, size_t errlen) {
    err[0] = 0;
    for (int i = 0; i < c->max_sessions; i++) {
        sc_entry *x = &c->ent[i];
        if (x->s && !x->busy && session_n_tokens(x->s) == 0) return x;
    }
    for (int i = 0; i < c->max_sessions; i++) {
        sc_entry *x = &c->ent[i];
        if (x->s) continue;
        x->rp = calloc((size_t)(c->o.rewind_points ? c->o.rewind_points : 1), sizeof *x->rp);
        x->s = x->rp ? session_open(c->e, c->o.ctx, err, errlen) : NULL;
        if (!x->s) {
            free(x->rp);
            x->rp = NULL;
            if (!err[0]) snprintf(err, errlen, "out of memory");
            return NULL;
        }
        c->st.sessions++;
        return x;
    }
    if (!allow_evict) return NULL;
    sc_entry *v = NULL;
    for (int i = 0; i < c->max_sessions; i++) {
        sc_entry *x = &c->ent[i];
        if (x->s && !x->busy && (!v || x->last_used < v->last_used)) v = x;
    }
    if (!v) {
        snprintf(err, errlen, "all %d sessions are busy (raise --kv-ram-mb for more)", c->max_sessions);
        return NULL;
    }
    const int n = session_n_tokens(v->s);
    if (save(c, v, KV_SAVE_EVICT)) c->st.saves++;
    logf_(c, "session cache: evicted a session of %d tokens from RAM%s", n,
          c->o.disk && n >= c->o.policy.min_tokens ? " (checkpointed to disk)" : "");
    c->st.evictions++;
    session_reset(v->s);
    drop_rewind_points(c, v, 0);
    v->cont_frontier = v->cold_len = 0;
    return v;
}

/* ---- acquire / release ------------------------------------------------------ */

fp_session *session_cache_acquire(session_cache *c, const int32_t *tokens, int n, sc_hit *hit, char *err,
                                  size_t errlen) {
    if (n < 1 || n > c->o.ctx) {
        snprintf(err, errlen, n < 1 ? "empty prompt" : "prompt of %d tokens does not fit the context of %d (raise --ctx)",
                 n, c->o.ctx);
        return NULL;
    }
    pthread_mutex_lock(&c->mu);
    int try_disk = c->o.disk != NULL, n_cached = 0;
    const char *src = "none";
    sc_entry *t = NULL;
again:;
    /* Best live option: an extendable session, or a rewind point. */
    sc_entry *best = NULL;
    int best_u = 0, best_rp = -1;
    for (int i = 0; i < c->max_sessions; i++) {
        sc_entry *x = &c->ent[i];
        if (!x->s || x->busy) continue;
        const int len = session_n_tokens(x->s);
        const int cp = lcp(session_tokens(x->s), tokens, len < n ? len : n);
        int u = len, r = -1;
        if (cp != len) {
            r = best_rewind(c, x, cp);
            u = r >= 0 ? x->rp[r].n_tokens : 0;
        }
        if (u == 0) continue;
        /* Ties: extending beats rewinding, then the most recently used. */
        if (!best || u > best_u ||
            (u == best_u && ((r < 0 && best_rp >= 0) || ((r < 0) == (best_rp < 0) && x->last_used > best->last_used)))) {
            best = x;
            best_u = u;
            best_rp = r;
        }
    }
    const int disk_len = try_disk ? kv_disk_find(c->o.disk, tokens, n, 1) : 0;
    char lerr[512];

    if (disk_len > best_u) {
        /* Pinned so that saving the session we replace cannot evict it. */
        kv_disk_pin(c->o.disk, tokens, disk_len, 1);
        t = take_slot(c, 1, err, errlen);
        if (!t) {
            kv_disk_pin(c->o.disk, tokens, disk_len, -1);
            goto fail;
        }
        int got = kv_disk_load(c->o.disk, t->s, tokens, n, 1, lerr, sizeof lerr);
        kv_disk_pin(c->o.disk, tokens, disk_len, -1);
        if (got < 0) logf_(c, "session cache: disk load failed: %s", lerr);
        if (got <= 0) {
            /* Every candidate failed verification: decide again without disk. */
            session_reset(t->s);
            try_disk = 0;
            goto again;
        }
        drop_rewind_points(c, t, 0);
        t->cont_frontier = got;
        n_cached = got;
        src = "disk";
        c->st.hit_disk++;
    } else if (best && best_rp < 0) {
        t = best;
        n_cached = best_u;
        src = "memory";
        c->st.hit_memory++;
    } else if (best) {
        const rewind_pt *r = &best->rp[best_rp];
        sc_entry *f = take_slot(c, 0, lerr, sizeof lerr);
        if (f && f->rp) {
            /* Fork: the donor keeps its whole state. */
            if (kv_snapshot_restore_tail(f->s, best->s, r->buf, r->len, lerr, sizeof lerr)) {
                logf_(c, "session cache: fork failed: %s", lerr);
                t = f;
                goto cold;
            }
            drop_rewind_points(c, f, 0);
            if (c->o.rewind_points) {
                rewind_pt *d = &f->rp[0];
                if (d->buf || (d->buf = malloc(c->rp_cap))) {
                    memcpy(d->buf, r->buf, r->len);
                    d->len = r->len;
                    d->n_tokens = r->n_tokens;
                    d->taken = 1;
                }
            }
            t = f;
            src = "memory-fork";
            c->st.hit_fork++;
        } else {
            if (!f && lerr[0]) logf_(c, "session cache: %s", lerr);
            /* No free slot: rewind the donor itself; what it loses past the
             * point goes to disk first when it is worth keeping. */
            if (save(c, best, KV_SAVE_EVICT)) c->st.saves++;
            if (kv_snapshot_restore_tail(best->s, best->s, r->buf, r->len, lerr, sizeof lerr)) {
                logf_(c, "session cache: rewind failed: %s", lerr);
                session_reset(best->s);
                drop_rewind_points(c, best, 0);
                t = best;
                goto cold;
            }
            drop_rewind_points(c, best, best_u);
            t = best;
            src = "memory-rewind";
            c->st.hit_rewind++;
        }
        t->cont_frontier = best_u;
        n_cached = best_u;
    } else {
        t = take_slot(c, 1, err, errlen);
        if (!t) goto fail;
    cold:
        session_reset(t->s);
        drop_rewind_points(c, t, 0);
        t->cont_frontier = 0;
        n_cached = 0;
        src = "none";
        c->st.miss++;
    }
    t->cold_len = n_cached == 0 && c->o.disk ? kv_policy_cold_len(&c->o.policy, tokens, n) : 0;
    t->busy = 1;
    t->last_used = ++c->clock;
    c->st.busy++;
    c->st.tokens_cached += (uint64_t)n_cached;
    pthread_mutex_unlock(&c->mu);
    if (hit) {
        hit->n_cached = n_cached;
        hit->source = src;
    }
    logf_(c, "session cache: %s, %d of %d prompt tokens cached", src, n_cached, n);
    return t->s;
fail:
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

void session_cache_release(session_cache *c, fp_session *s, int ok) {
    pthread_mutex_lock(&c->mu);
    sc_entry *x = entry_of(c, s);
    if (x && x->busy) {
        x->busy = 0;
        x->last_used = ++c->clock;
        x->cold_len = 0;
        c->st.busy--;
        if (!ok) {
            session_reset(s);
            drop_rewind_points(c, x, 0);
            x->cont_frontier = 0;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

/* ---- evaluation with checkpoint saves --------------------------------------- */

typedef struct prog_wrap {
    const sc_progress *p;
    int base, total;
} prog_wrap;

static void prog_cb(void *ud, int done, int total) {
    (void)total;
    const prog_wrap *w = ud;
    w->p->progress(w->p->ud, w->base + done, w->total);
}

/* Append k tokens to x's session, stopping at the cold-save length and at
 * the continued-save multiples to checkpoint there, and (when cancellable)
 * every cancel_chunk tokens to poll. 0, -1 error, 1 cancelled. */
static int eval_span(session_cache *c, sc_entry *x, const int32_t *toks, int k, const sc_progress *p, char *err,
                     size_t errlen) {
    fp_session *s = x->s;
    const int start = session_n_tokens(s), end = start + k;
    const int step = c->o.disk ? kv_policy_continued_step(&c->o.policy) : 0;
    const int cancellable = p && p->cancelled;
    prog_wrap pw = {p, 0, k};
    int pos = start, rc = 0;
    while (pos < end) {
        if (cancellable && p->cancelled(p->ud)) {
            rc = 1;
            break;
        }
        int next = end;
        if (x->cold_len > pos && x->cold_len < next) next = x->cold_len;
        if (step) {
            const int base = pos > x->cont_frontier ? pos : x->cont_frontier;
            const int64_t mult = ((int64_t)base / step + 1) * step;
            if (mult < next) next = (int)mult;
        }
        if (cancellable && next - pos > c->o.cancel_chunk) next = pos + c->o.cancel_chunk;
        pw.base = pos - start;
        if (session_eval(s, toks + (pos - start), next - pos, NULL, c->o.obs, p && p->progress ? prog_cb : NULL,
                         &pw, err, errlen)) {
            /* session_eval reset the session: nothing of it is reusable. */
            drop_rewind_points(c, x, 0);
            x->cont_frontier = x->cold_len = 0;
            return -1;
        }
        pos = next;
        if (pos == x->cold_len) {
            x->cold_len = 0;
            if (save(c, x, KV_SAVE_COLD)) count_save(c);
            if (pos < end) take_rewind_point(c, x);   /* e.g. a shared system prompt */
            if (step && pos % step == 0) x->cont_frontier = pos;
        } else if (step && pos % step == 0 && pos > x->cont_frontier) {
            if (save(c, x, KV_SAVE_CONTINUED)) count_save(c);
            x->cont_frontier = pos;
        }
    }
    pthread_mutex_lock(&c->mu);
    c->st.tokens_evaluated += (uint64_t)(pos - start);
    pthread_mutex_unlock(&c->mu);
    if (rc) snprintf(err, errlen, "cancelled after %d of %d tokens", pos - start, k);
    return rc;
}

static sc_entry *owned_entry(session_cache *c, fp_session *s, char *err, size_t errlen) {
    pthread_mutex_lock(&c->mu);
    sc_entry *x = entry_of(c, s);
    const int ok = x && x->busy;
    pthread_mutex_unlock(&c->mu);
    if (!ok) {
        snprintf(err, errlen, "session was not acquired from this cache (or already released)");
        return NULL;
    }
    return x;
}

int session_cache_prefill(session_cache *c, fp_session *s, const int32_t *tokens, int n, const sc_progress *p,
                          char *err, size_t errlen) {
    sc_entry *x = owned_entry(c, s, err, errlen);
    if (!x) return -1;
    const int m = session_n_tokens(s);
    if (m > n || memcmp(session_tokens(s), tokens, (size_t)m * sizeof(int32_t)) != 0) {
        snprintf(err, errlen, "the session does not hold a prefix of this prompt (%d tokens cached)", m);
        return -1;
    }
    if (x->cold_len > n) x->cold_len = 0;
    const int rc = eval_span(c, x, tokens + m, n - m, p, err, errlen);
    x->cold_len = 0;
    if (rc == 0) take_rewind_point(c, x);
    return rc;
}

int session_cache_extend(session_cache *c, fp_session *s, const int32_t *tokens, int n, char *err,
                         size_t errlen) {
    sc_entry *x = owned_entry(c, s, err, errlen);
    if (!x) return -1;
    return eval_span(c, x, tokens, n, NULL, err, errlen);
}

/* ---- stats / close ------------------------------------------------------------ */

void session_cache_stats_get(session_cache *c, session_cache_stats *st) {
    pthread_mutex_lock(&c->mu);
    *st = c->st;
    st->ram_used = (uint64_t)c->st.sessions * c->per_session;
    pthread_mutex_unlock(&c->mu);
}

void session_cache_close(session_cache *c) {
    if (!c) return;
    for (int i = 0; i < c->max_sessions; i++) {
        sc_entry *x = &c->ent[i];
        if (!x->s) continue;
        save(c, x, KV_SAVE_SHUTDOWN);
        for (int j = 0; j < c->o.rewind_points; j++) free(x->rp[j].buf);
        free(x->rp);
        session_close(x->s);
    }
    free(c->ent);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
