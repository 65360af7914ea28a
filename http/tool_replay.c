/* tool_replay.c — bounded, LRU, thread-safe map tool id -> sampled DSML block
 * (see tool_replay.h). Blocks are shared between the ids of one turn and
 * reference-counted; memory accounting counts each block once. */
#include "tool_replay.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct block {
    char *s;
    size_t n;
    int refs;
} block;

typedef struct entry {
    char *id;
    block *b;
    struct entry *hnext;           /* hash chain */
    struct entry *prev, *next;     /* LRU list, head = most recent */
} entry;

struct tool_replay {
    pthread_mutex_t mu;
    entry **buckets;
    size_t n_buckets;
    entry *head, *tail;
    size_t n_ids, bytes, max_ids, max_bytes;
};

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

tool_replay *tool_replay_open(size_t max_ids, size_t max_bytes) {
    tool_replay *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    size_t nb = 64;
    while (nb < max_ids && nb < ((size_t)1 << 20)) nb *= 2;
    r->buckets = calloc(nb, sizeof *r->buckets);
    if (!r->buckets) { free(r); return NULL; }
    r->n_buckets = nb;
    r->max_ids = max_ids ? max_ids : 1;
    r->max_bytes = max_bytes;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void block_unref(tool_replay *r, block *b) {
    if (--b->refs == 0) {
        r->bytes -= b->n;
        free(b->s);
        free(b);
    }
}

static void lru_unlink(tool_replay *r, entry *e) {
    if (e->prev) e->prev->next = e->next; else r->head = e->next;
    if (e->next) e->next->prev = e->prev; else r->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(tool_replay *r, entry *e) {
    e->prev = NULL;
    e->next = r->head;
    if (r->head) r->head->prev = e;
    r->head = e;
    if (!r->tail) r->tail = e;
}

static entry **find_slot(tool_replay *r, const char *id) {
    entry **pp = &r->buckets[hash(id) & (r->n_buckets - 1)];
    while (*pp && strcmp((*pp)->id, id) != 0) pp = &(*pp)->hnext;
    return pp;
}

static void remove_entry(tool_replay *r, entry *e) {
    entry **pp = find_slot(r, e->id);
    if (*pp == e) *pp = e->hnext;
    lru_unlink(r, e);
    r->bytes -= strlen(e->id);
    r->n_ids--;
    block_unref(r, e->b);
    free(e->id);
    free(e);
}

void tool_replay_close(tool_replay *r) {
    if (!r) return;
    while (r->tail) remove_entry(r, r->tail);
    free(r->buckets);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int tool_replay_put(tool_replay *r, const char *const *ids, size_t n_ids,
                    const char *blk, size_t len) {
    if (!n_ids) return 0;
    if (len > r->max_bytes) return -1;
    block *b = malloc(sizeof *b);
    char *copy = malloc(len + 1);
    if (!b || !copy) { free(b); free(copy); return -1; }
    memcpy(copy, blk, len);
    copy[len] = 0;
    *b = (block){copy, len, 1};   /* our own reference while inserting */
    pthread_mutex_lock(&r->mu);
    r->bytes += len;
    int rc = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (!ids[i] || !ids[i][0]) continue;
        entry **pp = find_slot(r, ids[i]);
        if (*pp) remove_entry(r, *pp);
        entry *e = calloc(1, sizeof *e);
        if (!e || !(e->id = strdup(ids[i]))) { free(e); rc = -1; break; }
        e->b = b;
        b->refs++;
        pp = find_slot(r, ids[i]);
        e->hnext = *pp;
        *pp = e;
        lru_push_front(r, e);
        r->n_ids++;
        r->bytes += strlen(e->id);
    }
    /* Evict least recently used ids until within budget; never the ids
     * just stored unless they alone exceed it. */
    while (r->tail && (r->n_ids > r->max_ids || r->bytes > r->max_bytes) && r->tail->b != b)
        remove_entry(r, r->tail);
    block_unref(r, b);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

char *tool_replay_get(tool_replay *r, const char *const *ids, size_t n_ids) {
    if (!n_ids) return NULL;
    char *out = NULL;
    pthread_mutex_lock(&r->mu);
    block *b = NULL;
    size_t i;
    for (i = 0; i < n_ids; i++) {
        if (!ids[i]) break;
        entry *e = *find_slot(r, ids[i]);
        if (!e || (b && e->b != b)) break;
        b = e->b;
    }
    if (i == n_ids && b) {
        for (i = 0; i < n_ids; i++) {
            entry *e = *find_slot(r, ids[i]);
            lru_unlink(r, e);
            lru_push_front(r, e);
        }
        out = malloc(b->n + 1);
        if (out) memcpy(out, b->s, b->n + 1);
    }
    pthread_mutex_unlock(&r->mu);
    return out;
}

size_t tool_replay_ids(tool_replay *r) {
    pthread_mutex_lock(&r->mu);
    size_t n = r->n_ids;
    pthread_mutex_unlock(&r->mu);
    return n;
}

size_t tool_replay_bytes(tool_replay *r) {
    pthread_mutex_lock(&r->mu);
    size_t n = r->bytes;
    pthread_mutex_unlock(&r->mu);
    return n;
}
