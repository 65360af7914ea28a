/* resp_store.h — bounded store behind Responses previous_response_id: a
 * response id maps to the whole conversation so far as a JSON array of
 * input items (earlier items + this request's input + its output items).
 * Least recently used entries go first. Thread-safe. */
#ifndef FP_RESP_STORE_H
#define FP_RESP_STORE_H

#include <stddef.h>

typedef struct resp_store resp_store;

resp_store *resp_store_open(size_t max_entries, size_t max_bytes);
void resp_store_close(resp_store *s);
/* Stores a copy of json (replacing an entry with the same id). 0 / -1. */
int resp_store_put(resp_store *s, const char *id, const char *json, size_t n);
/* malloc'd copy of the stored JSON, or NULL when unknown. */
char *resp_store_get(resp_store *s, const char *id);
size_t resp_store_count(resp_store *s);

#endif
