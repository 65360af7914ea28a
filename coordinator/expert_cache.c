/* expert_cache.c — hot-expert cache bookkeeping and replacement policies
 * (LRU, LFU with aging), plus trace replay and Belady's optimum for
 * measuring them (see expert_cache.h). */
#include "expert_cache.h"

#include <stdlib.h>
#include <string.h>

typedef struct centry {
    int32_t key;
    int state;              /* CACHE_READY or CACHE_FILLING */
    int pins;
    uint64_t last;          /* clock of the last access */
    size_t bytes;
    void *buf;
} centry;

struct expert_cache {
    int policy, alloc;
    int n_layer, n_expert;
    size_t n_keys;
    size_t *lbytes;         /* [n_layer] */
    size_t budget, used;
    int32_t *slot_of;       /* [n_keys] entry index or -1 */
    uint32_t *freq;         /* [n_keys] aged access counts (LFU) */
    centry *ent;
    int n_ent, cap_ent;
    uint64_t clock, since_age, age_period;
    expert_cache_stats st;
};

int expert_cache_parse_policy(const char *name) {
    if (strcmp(name, "lru") == 0) return CACHE_LRU;
    if (strcmp(name, "lfu") == 0) return CACHE_LFU;
    return -1;
}

const char *expert_cache_policy_name(int policy) { return policy == CACHE_LRU ? "lru" : "lfu"; }

expert_cache *expert_cache_open(size_t budget, int n_layer, int n_expert, const size_t *layer_expert_bytes,
                                int policy, uint64_t age_period, int alloc) {
    if (n_layer < 1 || n_expert < 1 || (policy != CACHE_LRU && policy != CACHE_LFU)) return NULL;
    expert_cache *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->policy = policy;
    c->alloc = alloc;
    c->n_layer = n_layer;
    c->n_expert = n_expert;
    c->n_keys = (size_t)n_layer * n_expert;
    c->budget = budget;
    c->lbytes = malloc((size_t)n_layer * sizeof(size_t));
    c->slot_of = malloc(c->n_keys * sizeof(int32_t));
    c->freq = calloc(c->n_keys, sizeof(uint32_t));
    if (!c->lbytes || !c->slot_of || !c->freq) {
        expert_cache_close(c);
        return NULL;
    }
    size_t maxb = 1;
    for (int l = 0; l < n_layer; l++) {
        c->lbytes[l] = layer_expert_bytes[l];
        if (c->lbytes[l] > maxb) maxb = c->lbytes[l];
    }
    for (size_t k = 0; k < c->n_keys; k++) c->slot_of[k] = -1;
    /* Aging horizon: long enough that an expert's count reflects many tokens
     * (every key seen a few times on average), short enough to follow a
     * change of topic. Measured with flashpool-cachesim. */
    c->age_period = age_period ? age_period : 4 * c->n_keys;
    c->st.budget = budget;
    (void)maxb;
    return c;
}

void expert_cache_close(expert_cache *c) {
    if (!c) return;
    for (int i = 0; i < c->n_ent; i++) free(c->ent[i].buf);
    free(c->ent);
    free(c->lbytes);
    free(c->slot_of);
    free(c->freq);
    free(c);
}

static size_t key_of(const expert_cache *c, int layer, int expert) { return (size_t)layer * c->n_expert + expert; }

static void age(expert_cache *c) {
    for (size_t k = 0; k < c->n_keys; k++) c->freq[k] >>= 1;
    c->since_age = 0;
}

cache_state expert_cache_lookup(expert_cache *c, int layer, int expert, const void **buf) {
    const size_t k = key_of(c, layer, expert);
    c->clock++;
    c->st.lookups++;
    if (c->freq[k] < UINT32_MAX) c->freq[k]++;
    if (++c->since_age >= c->age_period) age(c);
    const int32_t i = c->slot_of[k];
    if (i < 0) {
        c->st.misses++;
        if (buf) *buf = NULL;
        return CACHE_MISS;
    }
    centry *e = &c->ent[i];
    e->last = c->clock;
    e->pins++;
    if (buf) *buf = e->buf;
    if (e->state == CACHE_READY) c->st.hits++;
    else c->st.misses++;   /* a fill in flight still costs the wait */
    return (cache_state)e->state;
}

static void remove_entry(expert_cache *c, int i) {
    centry *e = &c->ent[i];
    c->slot_of[e->key] = -1;
    c->used -= e->bytes;
    free(e->buf);
    c->ent[i] = c->ent[--c->n_ent];
    if (i < c->n_ent) c->slot_of[c->ent[i].key] = i;
}

/* The entry the policy would give up first among unpinned ready ones, -1 if none. */
static int victim(const expert_cache *c, const unsigned char *chosen) {
    int best = -1;
    for (int i = 0; i < c->n_ent; i++) {
        const centry *e = &c->ent[i];
        if (e->pins || e->state != CACHE_READY || (chosen && chosen[i])) continue;
        if (best < 0) {
            best = i;
            continue;
        }
        const centry *b = &c->ent[best];
        if (c->policy == CACHE_LFU && c->freq[e->key] != c->freq[b->key]) {
            if (c->freq[e->key] < c->freq[b->key]) best = i;
        } else if (e->last < b->last) {
            best = i;
        }
    }
    return best;
}

void *expert_cache_admit(expert_cache *c, int layer, int expert) {
    const size_t k = key_of(c, layer, expert);
    const size_t b = c->lbytes[layer];
    if (c->slot_of[k] >= 0 || b > c->budget) {
        c->st.bypasses++;
        return NULL;
    }
    /* Choose victims first; evict only if the whole set makes room and the
     * policy agrees for each of them. */
    unsigned char *chosen = NULL;
    size_t freed = 0;
    int ok = 1;
    if (c->used + b > c->budget) {
        chosen = calloc((size_t)(c->n_ent ? c->n_ent : 1), 1);
        if (!chosen) return NULL;
        while (c->used - freed + b > c->budget) {
            const int v = victim(c, chosen);
            if (v < 0 || (c->policy == CACHE_LFU && c->freq[c->ent[v].key] >= c->freq[k])) {
                ok = 0;
                break;
            }
            chosen[v] = 1;
            freed += c->ent[v].bytes;
        }
    }
    if (!ok) {
        free(chosen);
        c->st.bypasses++;
        return NULL;
    }
    void *buf = NULL;
    if (c->alloc && !(buf = malloc(b))) {
        free(chosen);
        c->st.bypasses++;
        return NULL;
    }
    if (c->n_ent == c->cap_ent) {
        const int nc = c->cap_ent ? 2 * c->cap_ent : 16;
        centry *ne = realloc(c->ent, (size_t)nc * sizeof(*ne));
        if (!ne) {
            free(buf);
            free(chosen);
            c->st.bypasses++;
            return NULL;
        }
        c->ent = ne;
        c->cap_ent = nc;
    }
    if (chosen) {
        /* Remove from the highest index down: remove_entry moves the last entry. */
        const int n_before = c->n_ent;
        for (int i = n_before - 1; i >= 0; i--)
            if (chosen[i]) {
                remove_entry(c, i);
                c->st.evictions++;
            }
        free(chosen);
    }
    const int i = c->n_ent++;
    c->ent[i] = (centry){.key = (int32_t)k, .state = CACHE_FILLING, .pins = 1, .last = c->clock, .bytes = b, .buf = buf};
    c->slot_of[k] = i;
    c->used += b;
    c->st.admits++;
    return c->alloc ? buf : (void *)c;
}

void expert_cache_filled(expert_cache *c, int layer, int expert, int ok) {
    const int32_t i = c->slot_of[key_of(c, layer, expert)];
    if (i < 0) return;
    if (ok) {
        c->ent[i].state = CACHE_READY;
        return;
    }
    c->st.fill_failures++;
    remove_entry(c, i);
}

void expert_cache_unpin(expert_cache *c, int layer, int expert) {
    const int32_t i = c->slot_of[key_of(c, layer, expert)];
    if (i >= 0 && c->ent[i].pins > 0) c->ent[i].pins--;
}

void expert_cache_stats_get(const expert_cache *c, expert_cache_stats *st) {
    *st = c->st;
    st->bytes_used = c->used;
    st->resident = c->n_ent;
}

int expert_cache_contains(const expert_cache *c, int layer, int expert) {
    const int32_t i = c->slot_of[key_of(c, layer, expert)];
    return i >= 0 && c->ent[i].state == CACHE_READY;
}

/* ---- simulation ------------------------------------------------------------ */

uint64_t cache_simulate(const cache_trace *t, int n_layer, int n_expert, const size_t *layer_expert_bytes,
                        size_t budget, int policy, uint64_t age_period) {
    expert_cache *c = expert_cache_open(budget, n_layer, n_expert, layer_expert_bytes, policy, age_period, 0);
    if (!c) return 0;
    size_t g0 = 0;
    for (size_t g = 0; g < t->n_groups; g++) {
        const size_t g1 = t->group_end[g];
        for (size_t i = g0; i < g1; i++) {
            const int l = (int)(t->keys[i] / (uint32_t)n_expert), e = (int)(t->keys[i] % (uint32_t)n_expert);
            if (expert_cache_lookup(c, l, e, NULL) == CACHE_MISS && expert_cache_admit(c, l, e))
                expert_cache_filled(c, l, e, 1);
        }
        for (size_t i = g0; i < g1; i++)
            expert_cache_unpin(c, (int)(t->keys[i] / (uint32_t)n_expert), (int)(t->keys[i] % (uint32_t)n_expert));
        g0 = g1;
    }
    const uint64_t hits = c->st.hits;
    expert_cache_close(c);
    return hits;
}

/* Max-heap of (next use, key) with lazy deletion: an item is live while the
 * key is resident and its recorded next use still matches. */
typedef struct { size_t next; uint32_t key; } hitem;

static void heap_push(hitem *h, size_t *n, hitem x) {
    size_t i = (*n)++;
    while (i > 0) {
        const size_t p = (i - 1) / 2;
        if (h[p].next >= x.next) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static hitem heap_pop(hitem *h, size_t *n) {
    const hitem top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1].next > h[c].next) c++;
        if (h[c].next <= x.next) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = x;
    return top;
}

uint64_t cache_belady(const cache_trace *t, size_t slots) {
    const size_t n = t->n_keys, NEVER = (size_t)-1;
    if (n == 0 || slots == 0) return 0;
    uint32_t maxk = 0;
    for (size_t i = 0; i < n; i++) if (t->keys[i] > maxk) maxk = t->keys[i];
    size_t *next = malloc(n * sizeof(size_t)), *cur = malloc(((size_t)maxk + 1) * sizeof(size_t));
    size_t *seen = malloc(((size_t)maxk + 1) * sizeof(size_t));
    unsigned char *res = calloc((size_t)maxk + 1, 1);
    hitem *h = malloc((n + 1) * sizeof(hitem));
    uint64_t hits = 0;
    if (!next || !cur || !seen || !res || !h) goto out;
    for (uint32_t k = 0; k <= maxk; k++) seen[k] = NEVER;
    for (size_t i = n; i-- > 0;) {
        next[i] = seen[t->keys[i]];
        seen[t->keys[i]] = i;
    }
    size_t hn = 0, resident = 0;
    for (size_t i = 0; i < n; i++) {
        const uint32_t k = t->keys[i];
        if (res[k]) {
            hits++;
            cur[k] = next[i];
            heap_push(h, &hn, (hitem){next[i], k});
            continue;
        }
        if (resident < slots) {
            res[k] = 1;
            resident++;
            cur[k] = next[i];
            heap_push(h, &hn, (hitem){next[i], k});
            continue;
        }
        /* Full: the resident used farthest in the future vs the newcomer. */
        while (hn && (!res[h[0].key] || cur[h[0].key] != h[0].next)) heap_pop(h, &hn);
        if (hn && h[0].next > next[i]) {
            const hitem v = heap_pop(h, &hn);
            res[v.key] = 0;
            res[k] = 1;
            cur[k] = next[i];
            heap_push(h, &hn, (hitem){next[i], k});
        }
    }
out:
    free(next);
    free(cur);
    free(seen);
    free(res);
    free(h);
    return hits;
}
