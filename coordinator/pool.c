/* pool.c — the pool expert executor: per-layer grouping of routed work by
 * where each expert lives, the local lane (hot-expert cache and io_uring
 * disk reads, computed with experts_compute) and the glue to the remote lane
 * (pool_remote.c: DISPATCH/COMBINE with expert nodes, deadlines, failover).
 * See pool.h for the contract. */
#include "clock.h"
#include "pool.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "expert_io.h"
#include "pool_internal.h"

/* ---- small helpers --------------------------------------------------------- */

double pool_now(void) {
    return fp_now_s();
}

int pool_fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

void pool_logf(pool *p, const char *fmt, ...) {
    if (!p->o.log) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->o.log(p->o.log_ud, msg);
}

void pool_opts_default(pool_opts *o) {
    memset(o, 0, sizeof(*o));
    o->cache_policy = CACHE_LFU;
    o->cache_remote = 1;
}

/* io tags: kind | slot | layer | expert. */
enum { TK_STREAM = 1, TK_FILL_GROUP = 2, TK_FILL_BG = 3 };

static uint64_t mktag(int kind, int slot, int layer, int expert) {
    return ((uint64_t)kind << 56) | ((uint64_t)(slot & 0xffff) << 40) | ((uint64_t)(layer & 0xffff) << 24) |
           (uint64_t)(expert & 0xffffff);
}
static int tag_kind(uint64_t t) { return (int)(t >> 56); }
static int tag_slot(uint64_t t) { return (int)((t >> 40) & 0xffff); }
static int tag_layer(uint64_t t) { return (int)((t >> 24) & 0xffff); }
static int tag_expert(uint64_t t) { return (int)(t & 0xffffff); }

/* File offsets of one expert's three slabs. Pointer arithmetic only: the
 * mapping's expert region is never dereferenced. */
static void expert_segs(const pool *p, int layer, int expert, uint8_t *dst, expert_io_seg seg[3]) {
    const expert_slabs s = model_expert_slabs(p->m, layer, expert);
    const uint8_t *base = p->m->gguf->base;
    const size_t gb = p->gate_bytes[layer];
    seg[0] = (expert_io_seg){dst, gb, (uint64_t)((const uint8_t *)s.gate - base)};
    seg[1] = (expert_io_seg){dst + gb, gb, (uint64_t)((const uint8_t *)s.up - base)};
    seg[2] = (expert_io_seg){dst + 2 * gb, p->down_bytes[layer], (uint64_t)((const uint8_t *)s.down - base)};
}

/* ---- open / close ---------------------------------------------------------- */

/* Drop the routed-expert tensors from this process's RSS and tell the kernel
 * not to read ahead into them: the pool reads experts with pread/io_uring. */
static void release_expert_mapping(const model *m) {
    const long pg = sysconf(_SC_PAGESIZE);
    for (int l = 0; l < m->hp.n_layer; l++) {
        const tensor_view *t[3] = {&m->layers[l].gate_exps, &m->layers[l].up_exps, &m->layers[l].down_exps};
        for (int i = 0; i < 3; i++) {
            const expert_shape s = model_expert_shape(m, l);
            const size_t bytes = (i < 2 ? expert_gate_bytes(&s) : expert_down_bytes(&s)) * (size_t)m->hp.n_expert;
            uintptr_t a = (uintptr_t)t[i]->data, b = a + bytes;
            a = (a + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
            b &= ~((uintptr_t)pg - 1);
            if (b > a) {
                madvise((void *)a, b - a, MADV_RANDOM);
                madvise((void *)a, b - a, MADV_DONTNEED);
            }
        }
    }
}

pool *pool_open(const model *m, threadpool *tp, const quant_kernels *k, const pool_opts *o, char *err, size_t errlen) {
    pool *p = calloc(1, sizeof(*p));
    if (!p) return pool_fail(err, errlen, "out of memory"), NULL;
    p->m = m;
    p->tp = tp;
    p->k = k;
    p->o = *o;
    p->n_layer = m->hp.n_layer;
    p->n_expert = m->hp.n_expert;
    p->E = m->hp.n_embd;
    p->n_nodes = o->cl ? o->cl->n_nodes : 0;
    if (p->o.deadline_floor_ms <= 0) p->o.deadline_floor_ms = 1000;
    if (p->o.probe_interval_s <= 0) p->o.probe_interval_s = 2;
    p->lbytes = calloc((size_t)p->n_layer, sizeof(size_t));
    p->gate_bytes = calloc((size_t)p->n_layer, sizeof(size_t));
    p->down_bytes = calloc((size_t)p->n_layer, sizeof(size_t));
    p->group_of = malloc((size_t)p->n_expert * sizeof(int));
    if (!p->lbytes || !p->gate_bytes || !p->down_bytes || !p->group_of) goto oom;
    size_t maxb = 0;
    for (int l = 0; l < p->n_layer; l++) {
        const expert_shape s = model_expert_shape(m, l);
        p->gate_bytes[l] = expert_gate_bytes(&s);
        p->down_bytes[l] = expert_down_bytes(&s);
        p->lbytes[l] = 2 * p->gate_bytes[l] + p->down_bytes[l];
        if (p->lbytes[l] > maxb) maxb = p->lbytes[l];
    }
    for (int e = 0; e < p->n_expert; e++) p->group_of[e] = -1;
    if (p->n_nodes > 0) {
        if (!o->pl) {
            pool_fail(err, errlen, "expert nodes given without a placement");
            goto bad;
        }
        if (o->pl->n_layer != p->n_layer || o->pl->n_expert != p->n_expert || o->pl->n_nodes != p->n_nodes) {
            pool_fail(err, errlen, "placement is for %d layers x %d experts on %d nodes, but the model has %d x %d "
                                   "and the cluster %d nodes", o->pl->n_layer, o->pl->n_expert, o->pl->n_nodes,
                      p->n_layer, p->n_expert, p->n_nodes);
            goto bad;
        }
        char sub[512];
        if (placement_validate(o->pl, sub, sizeof sub)) {
            pool_fail(err, errlen, "placement: %s", sub);
            goto bad;
        }
        uint64_t *budget = calloc((size_t)p->n_nodes, sizeof(uint64_t));
        if (!budget) goto oom;
        for (int n = 0; n < p->n_nodes; n++) budget[n] = o->cl->nodes[n].ram_bytes;
        const int brc = placement_check_budgets(o->pl, p->lbytes, budget, o->cl->names, sub, sizeof sub);
        free(budget);
        if (brc) {
            pool_fail(err, errlen, "%s", sub);
            goto bad;
        }
    }
    p->n_slots = o->stream_slots > 0 ? o->stream_slots : 2 * m->hp.n_expert_used;
    p->slot_buf = calloc((size_t)p->n_slots, sizeof(uint8_t *));
    p->slot_free = malloc((size_t)p->n_slots * sizeof(int));
    if (!p->slot_buf || !p->slot_free) goto oom;
    for (int i = 0; i < p->n_slots; i++) {
        if (!(p->slot_buf[i] = malloc(maxb))) goto oom;
        p->slot_free[p->n_free++] = i;
    }
    /* Room for every stream slot plus background cache fills. */
    char sub[512];
    p->io = expert_io_open(m->path, p->n_slots + POOL_BG_FILLS + 8, o->force_pread, sub, sizeof sub);
    if (!p->io) {
        pool_fail(err, errlen, "%s", sub);
        goto bad;
    }
    p->cache = expert_cache_open(o->cache_bytes, p->n_layer, p->n_expert, p->lbytes, o->cache_policy, 0, 1);
    if (!p->cache) {
        pool_fail(err, errlen, "cannot create the expert cache (bad policy or out of memory)");
        goto bad;
    }
    release_expert_mapping(m);
    if (p->n_nodes > 0 && pool_remote_open(p, err, errlen)) goto bad;
    return p;
oom:
    pool_fail(err, errlen, "out of memory");
bad:
    pool_close(p);
    return NULL;
}

/* Finish background cache fills so no read targets freed memory. */
static void drain_io(pool *p) {
    if (!p->io) return;
    expert_io_done d[16];
    char err[128];
    while (expert_io_inflight(p->io) > 0) {
        const int n = expert_io_reap(p->io, d, 16, 1, err, sizeof err);
        if (n <= 0) break;
        for (int i = 0; i < n; i++)
            if (tag_kind(d[i].tag) == TK_FILL_BG) {
                expert_cache_filled(p->cache, tag_layer(d[i].tag), tag_expert(d[i].tag), d[i].status == 0);
                expert_cache_unpin(p->cache, tag_layer(d[i].tag), tag_expert(d[i].tag));
            }
    }
}

void pool_close(pool *p) {
    if (!p) return;
    pool_remote_close(p);
    drain_io(p);
    expert_io_close(p->io);
    expert_cache_close(p->cache);
    for (int i = 0; p->slot_buf && i < p->n_slots; i++) free(p->slot_buf[i]);
    free(p->slot_buf);
    free(p->slot_free);
    free(p->lbytes);
    free(p->gate_bytes);
    free(p->down_bytes);
    free(p->group_of);
    free(p->g);
    free(p->gitems);
    free(p->c_items);
    free(p->c_slabs);
    free(p->c_orig);
    free(p->c_out);
    free(p->node_stats);
    free(p);
}

/* ---- local lane ------------------------------------------------------------ */

/* Make a group local: READY from the cache, waiting on a fill in flight, or
 * queued for a disk read (into a newly admitted cache entry when the policy
 * takes it, else into a stream slot). A cache lookup was done by the caller
 * when st/buf are given; lookup = 1 asks for a fresh one. */
static void plan_local(pool *p, xgroup *g, int lookup, cache_state st, const void *buf) {
    if (lookup) st = expert_cache_lookup(p->cache, p->layer, g->expert, &buf);
    g->route = ROUTE_LOCAL;
    g->slot = -1;
    g->pinned = st != CACHE_MISS;
    g->buf = buf;
    if (st == CACHE_READY) {
        g->lstate = L_READY;
        p->st.items_cached += (uint64_t)g->count;
        return;
    }
    p->st.items_disk += (uint64_t)g->count;
    if (st == CACHE_FILLING) {
        g->lstate = L_WAIT_BG;
        return;
    }
    /* Admit only if the read can be issued now-ish: the fill is ours. */
    uint8_t *cb = expert_cache_admit(p->cache, p->layer, g->expert);
    g->lstate = L_QUEUED;
    g->admitted = cb != NULL;
    if (cb) {
        g->buf = cb;
        g->pinned = 1;
    }
}

void pool_make_local(pool *p, xgroup *g) {
    p->st.fallback_items += (uint64_t)g->count;
    p->st.items_remote -= (uint64_t)g->count;
    plan_local(p, g, 1, CACHE_MISS, NULL);
}

static int issue_reads(pool *p) {
    for (int i = 0; i < p->n_g; i++) {
        xgroup *g = &p->g[i];
        if (g->route != ROUTE_LOCAL || g->lstate != L_QUEUED) continue;
        if (expert_io_space(p->io) <= 0) break;
        uint8_t *dst;
        int slot = -1;
        if (g->admitted) {
            dst = (uint8_t *)g->buf;
        } else {
            if (p->n_free == 0) break;
            slot = p->slot_free[--p->n_free];
            dst = p->slot_buf[slot];
        }
        expert_io_seg seg[3];
        expert_segs(p, p->layer, g->expert, dst, seg);
        const uint64_t tag = mktag(g->admitted ? TK_FILL_GROUP : TK_STREAM, slot, p->layer, g->expert);
        if (expert_io_read(p->io, seg, 3, tag)) {
            if (slot >= 0) p->slot_free[p->n_free++] = slot;
            break;
        }
        g->slot = slot;
        g->buf = dst;
        g->lstate = L_READING;
        p->st.disk_reads++;
        p->st.disk_bytes += p->lbytes[p->layer];
    }
    return 0;
}

/* Start a background read of an admitted expert that a node computes now. */
void pool_bg_fill(pool *p, int layer, int expert) {
    if (expert_io_space(p->io) <= p->n_slots) return;   /* stream reads first */
    uint8_t *cb = expert_cache_admit(p->cache, layer, expert);
    if (!cb) return;
    expert_io_seg seg[3];
    expert_segs(p, layer, expert, cb, seg);
    if (expert_io_read(p->io, seg, 3, mktag(TK_FILL_BG, -1, layer, expert))) {
        expert_cache_filled(p->cache, layer, expert, 0);
        return;
    }
    p->st.disk_reads++;
    p->st.disk_bytes += p->lbytes[layer];
}

static int on_io_done(pool *p, const expert_io_done *d, char *err, size_t errlen) {
    const int kind = tag_kind(d->tag), layer = tag_layer(d->tag), expert = tag_expert(d->tag);
    xgroup *g = NULL;
    if (p->active && layer == p->layer && p->group_of[expert] >= 0) g = &p->g[p->group_of[expert]];
    if (kind == TK_FILL_BG) {
        expert_cache_filled(p->cache, layer, expert, d->status == 0);
        expert_cache_unpin(p->cache, layer, expert);
        if (d->status) pool_logf(p, "background read of layer %d expert %d failed: %s", layer, expert, strerror(-d->status));
        if (g && g->route == ROUTE_LOCAL && g->lstate == L_WAIT_BG) {
            if (d->status == 0) {
                g->lstate = L_READY;
            } else {
                /* The entry is gone; read it ourselves into a stream slot. */
                g->pinned = 0;
                g->admitted = 0;
                g->lstate = L_QUEUED;
            }
        }
        return 0;
    }
    if (!g || g->lstate != L_READING)
        return pool_fail(err, errlen, "internal: unexpected read completion for layer %d expert %d", layer, expert);
    if (d->status) {
        if (kind == TK_FILL_GROUP) {
            expert_cache_filled(p->cache, layer, expert, 0);
            g->pinned = 0;
        }
        g->lstate = L_DONE;
        return pool_fail(err, errlen, "cannot read layer %d expert %d from %s: %s", layer, expert, p->m->path,
                         strerror(-d->status));
    }
    if (kind == TK_FILL_GROUP) expert_cache_filled(p->cache, layer, expert, 1);
    (void)tag_slot;
    g->lstate = L_READY;
    return 0;
}

/* Poll (min 0) or wait for (min 1) read completions. */
static int reap(pool *p, int min_done, char *err, size_t errlen) {
    expert_io_done d[32];
    const int n = expert_io_reap(p->io, d, 32, min_done, err, errlen);
    if (n < 0) return -1;
    for (int i = 0; i < n; i++)
        if (on_io_done(p, &d[i], err, errlen)) return -1;
    return n;
}

static int ensure_compute_scratch(pool *p, int n) {
    if (n <= p->c_cap) return 0;
    expert_work *ci = realloc(p->c_items, (size_t)n * sizeof(*ci));
    if (ci) p->c_items = ci;
    expert_slabs *cs = realloc(p->c_slabs, (size_t)n * sizeof(*cs));
    if (cs) p->c_slabs = cs;
    int *co = realloc(p->c_orig, (size_t)n * sizeof(*co));
    if (co) p->c_orig = co;
    float *cf = realloc(p->c_out, (size_t)n * p->E * sizeof(*cf));
    if (cf) p->c_out = cf;
    if (!ci || !cs || !co || !cf) return -1;
    p->c_cap = n;
    return 0;
}

/* Compute every READY group, in batches of at most POOL_COMPUTE_BATCH items
 * (experts_compute gives each item the same bits however items are split). */
static int compute_ready(pool *p, char *err, size_t errlen) {
    const expert_shape shape = model_expert_shape(p->m, p->layer);
    const size_t gb = p->gate_bytes[p->layer];
    int i = 0;
    while (i < p->n_g) {
        int n = 0, first = i;
        for (; i < p->n_g; i++) {
            const xgroup *g = &p->g[i];
            if (g->route != ROUTE_LOCAL || g->lstate != L_READY) continue;
            if (n > 0 && n + g->count > POOL_COMPUTE_BATCH) break;
            if (ensure_compute_scratch(p, n + g->count)) return pool_fail(err, errlen, "out of memory");
            const uint8_t *b = g->buf;
            const expert_slabs sl = {b, b + gb, b + 2 * gb};
            for (int j = 0; j < g->count; j++) {
                const int orig = p->gitems[g->first + j];
                p->c_items[n] = p->items[orig];
                p->c_slabs[n] = sl;
                p->c_orig[n] = orig;
                n++;
            }
        }
        if (n == 0) break;
        if (experts_compute(p->tp, p->k, &shape, p->xq, n, p->c_items, p->c_slabs, p->c_out))
            return pool_fail(err, errlen, "layer %d: expert computation failed (unsupported expert type)", p->layer);
        for (int j = 0; j < n; j++)
            memcpy(p->out + (size_t)p->c_orig[j] * p->E, p->c_out + (size_t)j * p->E, (size_t)p->E * sizeof(float));
        for (int q = first; q < i; q++) {
            xgroup *g = &p->g[q];
            if (g->route != ROUTE_LOCAL || g->lstate != L_READY) continue;
            g->lstate = L_DONE;
            if (g->slot >= 0) {
                p->slot_free[p->n_free++] = g->slot;
                g->slot = -1;
            }
            if (g->pinned) {
                expert_cache_unpin(p->cache, p->layer, g->expert);
                g->pinned = 0;
            }
        }
    }
    return 0;
}

/* Run the local lane to completion: compute what is ready, keep the reads
 * flowing through the stream slots, block on the disk only when nothing is
 * ready. */
int pool_run_local(pool *p, char *err, size_t errlen) {
    for (;;) {
        if (issue_reads(p)) return -1;
        if (compute_ready(p, err, errlen)) return -1;
        int waiting = 0;
        for (int i = 0; i < p->n_g; i++)
            if (p->g[i].route == ROUTE_LOCAL && p->g[i].lstate != L_DONE) waiting++;
        if (!waiting) return 0;
        if (issue_reads(p)) return -1;
        if (expert_io_inflight(p->io) == 0)
            return pool_fail(err, errlen, "internal: layer %d has %d local experts waiting but no read in flight",
                             p->layer, waiting);
        if (reap(p, 1, err, errlen) < 0) return -1;
    }
}

/* ---- the expert_exec seam -------------------------------------------------- */

static int grow_layer_state(pool *p, int n_items) {
    if (n_items > p->cap_items) {
        int *gi = realloc(p->gitems, (size_t)n_items * sizeof(int));
        if (!gi) return -1;
        p->gitems = gi;
        p->cap_items = n_items;
    }
    if (p->cap_g < p->n_expert) {
        xgroup *g = realloc(p->g, (size_t)p->n_expert * sizeof(*g));
        if (!g) return -1;
        p->g = g;
        p->cap_g = p->n_expert;
    }
    return 0;
}

static void end_layer(pool *p) {
    for (int q = 0; q < p->n_g; q++) {
        xgroup *g = &p->g[q];
        if (g->slot >= 0) p->slot_free[p->n_free++] = g->slot;
        if (g->pinned) expert_cache_unpin(p->cache, p->layer, g->expert);
        p->group_of[g->expert] = -1;
    }
    p->n_g = 0;
    p->active = 0;
}

/* After a failure: let reads aimed at this layer's buffers land, then reset. */
static void abort_layer(pool *p) {
    expert_io_done d[16];
    char e2[128];
    while (expert_io_inflight(p->io) > 0) {
        const int n = expert_io_reap(p->io, d, 16, 1, e2, sizeof e2);
        if (n <= 0) break;
        for (int i = 0; i < n; i++) {
            const int kind = tag_kind(d[i].tag), l = tag_layer(d[i].tag), e = tag_expert(d[i].tag);
            if (kind == TK_FILL_BG || kind == TK_FILL_GROUP) expert_cache_filled(p->cache, l, e, d[i].status == 0);
            if (kind == TK_FILL_BG) expert_cache_unpin(p->cache, l, e);
        }
    }
    end_layer(p);
}

static int submit_layer(pool *p, int layer, int n_tokens, const block_q8_K *xq, int n_items,
                        const expert_work *items, float *out, char *err, size_t errlen) {
    if (layer < 0 || layer >= p->n_layer) return pool_fail(err, errlen, "layer %d out of range", layer);
    if (grow_layer_state(p, n_items)) return pool_fail(err, errlen, "out of memory");
    p->layer = layer;
    p->n_tokens = n_tokens;
    p->xq = xq;
    p->n_items = n_items;
    p->items = items;
    p->out = out;
    p->active = 1;
    p->st.layers++;
    p->st.items += (uint64_t)n_items;
    /* Background fills that finished meanwhile become usable now. */
    if (reap(p, 0, err, errlen) < 0) return -1;

    /* Group items by expert in first-use order (counting sort, stable). */
    p->n_g = 0;
    for (int i = 0; i < n_items; i++) {
        const int e = items[i].expert;
        if (e < 0 || e >= p->n_expert) return pool_fail(err, errlen, "layer %d: expert id %d out of range", layer, e);
        if (p->group_of[e] < 0) {
            p->group_of[e] = p->n_g;
            p->g[p->n_g] = (xgroup){.expert = e, .slot = -1, .node = -1, .req = -1};
            p->n_g++;
        }
        p->g[p->group_of[e]].count++;
    }
    for (int q = 0, acc = 0; q < p->n_g; q++) {
        p->g[q].first = acc;
        acc += p->g[q].count;
        p->g[q].count = 0;
    }
    for (int i = 0; i < n_items; i++) {
        xgroup *g = &p->g[p->group_of[items[i].expert]];
        p->gitems[g->first + g->count++] = i;
    }

    if (p->n_nodes > 0) pool_remote_begin_layer(p);
    /* Route each expert: cache hit -> here; else a live node holding it;
     * else the coordinator's disk. */
    for (int q = 0; q < p->n_g; q++) {
        xgroup *g = &p->g[q];
        const void *buf;
        const cache_state st = expert_cache_lookup(p->cache, layer, g->expert, &buf);
        if (st != CACHE_READY && p->n_nodes > 0 && pool_remote_pick(p, g) == 0) {
            if (st == CACHE_FILLING) expert_cache_unpin(p->cache, layer, g->expert);
            else if (p->o.cache_remote) pool_bg_fill(p, layer, g->expert);
            p->st.items_remote += (uint64_t)g->count;
            continue;
        }
        /* Placed on nodes that are all down: that is a fallback too. */
        if (st != CACHE_READY && p->n_nodes > 0 && placement_count(p->o.pl, layer, g->expert) > 0)
            p->st.fallback_items += (uint64_t)g->count;
        plan_local(p, g, 0, st, buf);
    }
    if (p->n_nodes > 0 && pool_remote_send(p, err, errlen)) return -1;
    /* Disk reads overlap with the shared expert the engine computes next. */
    return issue_reads(p);
}

static int pool_submit(void *ud, int layer, int n_tokens, const block_q8_K *xq, int n_items,
                       const expert_work *items, float *out, char *err, size_t errlen) {
    pool *p = ud;
    if (p->active) return pool_fail(err, errlen, "internal: submit without wait");
    if (submit_layer(p, layer, n_tokens, xq, n_items, items, out, err, errlen)) {
        abort_layer(p);
        return -1;
    }
    return 0;
}

static int pool_wait(void *ud, char *err, size_t errlen) {
    pool *p = ud;
    if (!p->active) return pool_fail(err, errlen, "internal: wait without submit");
    const double t0 = pool_now();
    int rc = pool_run_local(p, err, errlen);
    if (rc == 0 && p->n_nodes > 0) rc = pool_remote_collect(p, err, errlen);
    /* A failed layer must not leave reads aimed at slots a later layer reuses. */
    if (rc) abort_layer(p);
    else end_layer(p);
    p->st.wait_s += pool_now() - t0;
    return rc;
}

expert_exec pool_exec(pool *p) {
    expert_exec x = {.ud = p, .submit = pool_submit, .wait = pool_wait};
    return x;
}

void pool_get_stats(pool *p, pool_stats *st) {
    *st = p->st;
    expert_cache_stats_get(p->cache, &st->cache);
    st->io_backend = expert_io_backend(p->io);
    st->n_nodes = p->n_nodes;
    st->nodes = NULL;
    if (p->n_nodes > 0) {
        pool_remote_node_stats(p);
        st->nodes = p->node_stats;
    }
}

void pool_print_stats(pool *p, FILE *f) {
    pool_stats s;
    pool_get_stats(p, &s);
    const double it = s.items ? (double)s.items : 1.0;
    fprintf(f, "pool: %llu layer calls, %llu expert items: %.1f%% cached, %.1f%% disk, %.1f%% remote; "
               "%llu fallback items, %llu re-dispatches\n",
            (unsigned long long)s.layers, (unsigned long long)s.items, 100.0 * (double)s.items_cached / it,
            100.0 * (double)s.items_disk / it, 100.0 * (double)s.items_remote / it,
            (unsigned long long)s.fallback_items, (unsigned long long)s.redispatches);
    const double lk = s.cache.lookups ? (double)s.cache.lookups : 1.0;
    fprintf(f, "pool: cache %s %.1f/%.1f MiB, %d experts, hit rate %.1f%% (%llu/%llu); disk (%s) %llu reads, %.1f MiB\n",
            expert_cache_policy_name(p->o.cache_policy), s.cache.bytes_used / 1048576.0, s.cache.budget / 1048576.0,
            s.cache.resident, 100.0 * (double)s.cache.hits / lk, (unsigned long long)s.cache.hits,
            (unsigned long long)s.cache.lookups, s.io_backend, (unsigned long long)s.disk_reads,
            s.disk_bytes / 1048576.0);
    if (s.remote_layers)
        fprintf(f, "pool: %llu layers with remote work, mean dispatch->last combine %.3f ms\n",
                (unsigned long long)s.remote_layers, 1e3 * s.layer_rt_s / (double)s.remote_layers);
    if (s.decode_remote_layers) {
        const double n = (double)s.decode_remote_layers;
        fprintf(f, "pool: %llu one-token layers: dispatch->last combine %.3f ms, of which node compute %.3f ms, "
                   "network + protocol %.3f ms\n",
                (unsigned long long)s.decode_remote_layers, 1e3 * s.decode_layer_rt_s / n,
                1e3 * s.decode_node_compute_s / n, 1e3 * (s.decode_layer_rt_s - s.decode_node_compute_s) / n);
    }
    for (int n = 0; n < s.n_nodes; n++) {
        const pool_node_stats *ns = &s.nodes[n];
        fprintf(f, "pool: node %s %s: %llu dispatches, %llu items, rtt %.3f ms, compute %.3f ms, %llu failures, "
                   "%llu late frames dropped, %llu rejoins\n",
                ns->name, ns->up ? "up" : "DOWN", (unsigned long long)ns->dispatches, (unsigned long long)ns->items,
                ns->rtt_ms, ns->compute_ms, (unsigned long long)ns->failures, (unsigned long long)ns->late_dropped,
                (unsigned long long)ns->rejoins);
    }
}
