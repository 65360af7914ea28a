/* expert_cache.h — the coordinator's hot-expert cache under a RAM budget.
 *
 * Owns the cached copies (one malloc'd buffer per resident expert: gate, up
 * and down slabs back to back) and the replacement policy. It does no I/O:
 * the pool reads an admitted expert into the buffer expert_cache_admit()
 * hands out (asynchronously, see expert_io.h) and reports completion.
 *
 * Policies (design.md §5; measured against Belady's optimum by
 * flashpool-cachesim on recorded routing traces):
 *   lru — admit every miss, evict the least recently used entry;
 *   lfu — LFU with aging: every (layer, expert) has an access counter,
 *         halved every `age_period` accesses so old popularity fades; a miss
 *         is admitted only if its count beats the coldest resident entry's
 *         (ties: least recently used loses). Cold one-off experts then stream
 *         from disk/nodes without flushing the hot set.
 *
 * Entries in use by the layer being computed are pinned and never evicted.
 * Single-threaded: the engine thread drives it. Also usable without buffers
 * (alloc = 0) to simulate a policy on a trace. */
#ifndef FP_EXPERT_CACHE_H
#define FP_EXPERT_CACHE_H

#include <stddef.h>
#include <stdint.h>

enum cache_policy { CACHE_LRU = 0, CACHE_LFU = 1 };

typedef struct expert_cache expert_cache;

typedef struct expert_cache_stats {
    uint64_t lookups, hits, misses, admits, bypasses, evictions, fill_failures;
    size_t bytes_used, budget;
    int resident;
} expert_cache_stats;

typedef enum { CACHE_MISS = 0, CACHE_READY = 1, CACHE_FILLING = 2 } cache_state;

/* layer_expert_bytes[n_layer]: bytes of one expert of each layer. budget 0 is
 * a valid empty cache. age_period 0 = default (8 × the number of experts
 * that fit). alloc 0: bookkeeping only (simulation; buffers are NULL).
 * Returns NULL on bad arguments or out of memory. */
expert_cache *expert_cache_open(size_t budget, int n_layer, int n_expert, const size_t *layer_expert_bytes,
                                int policy, uint64_t age_period, int alloc);
void expert_cache_close(expert_cache *c);
int expert_cache_parse_policy(const char *name);   /* "lru"/"lfu" -> enum, -1 unknown */
const char *expert_cache_policy_name(int policy);

/* Record one access and look the expert up. READY: *buf is the copy (now
 * pinned). FILLING: a read is in flight into *buf (pinned); wait for it.
 * MISS: not resident (nothing pinned). */
cache_state expert_cache_lookup(expert_cache *c, int layer, int expert, const void **buf);
/* After a MISS: whether the policy admits it. If so evicts as needed and
 * returns a pinned buffer (state FILLING) to read the expert into, else NULL
 * (bypass: compute it from a stream buffer / node). In simulation mode the
 * return is a non-NULL dummy pointer that must not be dereferenced. */
void *expert_cache_admit(expert_cache *c, int layer, int expert);
/* The read into an admitted buffer finished (ok = 1) or failed (entry dropped). */
void expert_cache_filled(expert_cache *c, int layer, int expert, int ok);
/* Drop one pin taken by lookup (READY/FILLING) or admit. */
void expert_cache_unpin(expert_cache *c, int layer, int expert);

void expert_cache_stats_get(const expert_cache *c, expert_cache_stats *st);
/* 1 if the expert is resident and READY (tests). */
int expert_cache_contains(const expert_cache *c, int layer, int expert);

/* ---- trace simulation ------------------------------------------------------
 * A trace is a sequence of groups: the distinct experts one layer of one
 * token (or prefill chunk) uses; keys are layer * n_expert + expert. */
typedef struct cache_trace {
    uint32_t *keys;         /* all groups' keys back to back */
    size_t n_keys;
    size_t *group_end;      /* group g = keys[group_end[g-1] .. group_end[g]) */
    size_t n_groups;
} cache_trace;

/* Hits of a policy replaying the trace the way the pool drives the cache
 * (lookups of a group pinned together, admitted fills complete at once). */
uint64_t cache_simulate(const cache_trace *t, int n_layer, int n_expert, const size_t *layer_expert_bytes,
                        size_t budget, int policy, uint64_t age_period);
/* Belady's optimum (MIN with bypass) for a cache of `slots` equal-size
 * entries: on a miss, keep the `slots` entries (among the residents and the
 * newcomer) whose next use is soonest. An upper bound for any policy with
 * that many slots. */
uint64_t cache_belady(const cache_trace *t, size_t slots);

#endif
