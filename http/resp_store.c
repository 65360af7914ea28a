/* resp_store.c — LRU list of (response id, conversation JSON); a list is
 * enough because the store holds at most a few thousand entries and a
 * lookup happens once per request. */
#include "resp_store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct rs_entry {
    char *id, *json;
    size_t n;
    struct rs_entry *prev, *next;
} rs_entry;

struct resp_store {
    pthread_mutex_t mu;
    rs_entry *head, *tail;      /* head = most recent */
    size_t count, bytes, max_entries, max_bytes;
};

resp_store *resp_store_open(size_t max_entries, size_t max_bytes) {
    resp_store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->mu, NULL);
    s->max_entries = max_entries ? max_entries : 1;
    s->max_bytes = max_bytes;
    return s;
}

static void unlink_e(resp_store *s, rs_entry *e) {
    if (e->prev) e->prev->next = e->next; else s->head = e->next;
    if (e->next) e->next->prev = e->prev; else s->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_front(resp_store *s, rs_entry *e) {
    e->next = s->head;
    if (s->head) s->head->prev = e;
    s->head = e;
    if (!s->tail) s->tail = e;
}

static void drop(resp_store *s, rs_entry *e) {
    unlink_e(s, e);
    s->count--;
    s->bytes -= e->n;
    free(e->id);
    free(e->json);
    free(e);
}

void resp_store_close(resp_store *s) {
    if (!s) return;
    while (s->tail) drop(s, s->tail);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static rs_entry *find(resp_store *s, const char *id) {
    for (rs_entry *e = s->head; e; e = e->next)
        if (strcmp(e->id, id) == 0) return e;
    return NULL;
}

int resp_store_put(resp_store *s, const char *id, const char *json, size_t n) {
    if (n > s->max_bytes) return -1;
    rs_entry *e = calloc(1, sizeof *e);
    if (!e) return -1;
    e->id = strdup(id);
    e->json = malloc(n + 1);
    if (!e->id || !e->json) {
        free(e->id);
        free(e->json);
        free(e);
        return -1;
    }
    memcpy(e->json, json, n);
    e->json[n] = 0;
    e->n = n;
    pthread_mutex_lock(&s->mu);
    rs_entry *old = find(s, id);
    if (old) drop(s, old);
    push_front(s, e);
    s->count++;
    s->bytes += n;
    while (s->tail != e && (s->count > s->max_entries || s->bytes > s->max_bytes)) drop(s, s->tail);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

char *resp_store_get(resp_store *s, const char *id) {
    char *out = NULL;
    pthread_mutex_lock(&s->mu);
    rs_entry *e = find(s, id);
    if (e) {
        unlink_e(s, e);
        push_front(s, e);
        out = malloc(e->n + 1);
        if (out) memcpy(out, e->json, e->n + 1);
    }
    pthread_mutex_unlock(&s->mu);
    return out;
}

size_t resp_store_count(resp_store *s) {
    pthread_mutex_lock(&s->mu);
    size_t n = s->count;
    pthread_mutex_unlock(&s->mu);
    return n;
}
