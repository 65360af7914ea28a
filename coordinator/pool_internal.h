/* pool_internal.h — state shared by pool.c (grouping, local lane) and
 * pool_remote.c (expert nodes). Not a public interface: use pool.h. */
#ifndef FP_POOL_INTERNAL_H
#define FP_POOL_INTERNAL_H

#include "expert_io.h"
#include "pool.h"

#define POOL_BG_FILLS 16            /* background cache fills in flight at most */
#define POOL_COMPUTE_BATCH 256      /* items per experts_compute call in the local lane */

enum { ROUTE_LOCAL = 0, ROUTE_REMOTE = 1 };
/* Local-lane state of a group. */
enum { L_READY = 1, L_WAIT_BG, L_QUEUED, L_READING, L_DONE };

/* One distinct expert of the layer being computed and its items. */
typedef struct xgroup {
    int32_t expert;
    int first, count;           /* its items: gitems[first .. first+count) (original indices) */
    int route;                  /* ROUTE_LOCAL / ROUTE_REMOTE */
    int node;                   /* remote: node asked now */
    int req;                    /* remote: index of its request in this layer, -1 = not sent yet */
    uint32_t tried;             /* remote: bit r = replica r of the placement already tried */
    int lstate;                 /* local: L_* */
    const void *buf;            /* local: the expert's slabs back to back */
    int slot;                   /* stream slot held, or -1 */
    int pinned;                 /* holds a cache pin */
    int admitted;               /* local read goes into a new cache entry */
} xgroup;

typedef struct pool_remote pool_remote;

struct pool {
    const model *m;
    threadpool *tp;
    const quant_kernels *k;
    pool_opts o;
    int n_layer, n_expert, E, n_nodes;
    size_t *lbytes, *gate_bytes, *down_bytes;   /* [n_layer] */
    expert_io *io;
    expert_cache *cache;
    int n_slots, n_free;
    uint8_t **slot_buf;
    int *slot_free;
    /* the layer between submit and wait */
    int active, layer, n_tokens, n_items;
    const block_q8_K *xq;
    const expert_work *items;
    float *out;
    xgroup *g;
    int n_g, cap_g;
    int *gitems;
    int cap_items;
    int *group_of;              /* [n_expert] group index or -1 */
    /* local compute scratch */
    expert_work *c_items;
    expert_slabs *c_slabs;
    int *c_orig;
    float *c_out;
    int c_cap;
    pool_remote *rem;
    pool_node_stats *node_stats;
    pool_stats st;
};

double pool_now(void);
int pool_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void pool_logf(pool *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Local lane (pool.c). */
int pool_run_local(pool *p, char *err, size_t errlen);
/* Re-route a group whose node failed to the local lane (fresh cache lookup). */
void pool_make_local(pool *p, xgroup *g);
void pool_bg_fill(pool *p, int layer, int expert);

/* Remote lane (pool_remote.c). */
int pool_remote_open(pool *p, char *err, size_t errlen);
void pool_remote_close(pool *p);
/* Start of a layer: service links (probe down nodes, finish rejoins). */
void pool_remote_begin_layer(pool *p);
/* Choose a live node holding g->expert that g has not tried; 0 and g routed
 * remote, or -1 (none). */
int pool_remote_pick(pool *p, xgroup *g);
/* One DISPATCH per node for the groups routed to it. Send failures are not
 * errors: the node is marked down and its groups re-routed. */
int pool_remote_send(pool *p, char *err, size_t errlen);
/* Collect every COMBINE of the layer; failover on deadline/error. */
int pool_remote_collect(pool *p, char *err, size_t errlen);
void pool_remote_node_stats(pool *p);

#endif
