/* expert_set.h — the experts an expert node holds in its own RAM.
 *
 * An ASSIGN names the exact set; experts no longer wanted are freed, new
 * ones are read with pread from the model file into one private allocation
 * each (gate | up | down back to back), so the node's resident memory is
 * the assigned bytes plus a small overhead: the GGUF mapping itself is only
 * touched for its header, and the page cache the reads fill is dropped
 * (posix_fadvise DONTNEED) because those pages are now duplicated. */
#ifndef FP_EXPERT_SET_H
#define FP_EXPERT_SET_H

#include <stddef.h>
#include <stdint.h>
#include "expert_store.h"

typedef struct expert_set expert_set;

/* path: the model file (read with pread); store: its directory. */
expert_set *expert_set_open(const char *path, const expert_store *store, char *err, size_t errlen);
void expert_set_close(expert_set *s);

/* Progress callback: called after each expert is loaded (and once at the
 * start with done = 0). Returning non-zero aborts the load. */
typedef int (*expert_set_progress_fn)(void *ud, uint64_t done, uint64_t total, uint64_t bytes);

/* Make the held set exactly {(layers[i], experts[i])}. Duplicates are
 * fine. On failure (invalid id, allocation, read error) the set holds the
 * experts loaded so far plus those it kept; returns -1 with err and *code
 * = 1 invalid id, 2 out of memory, 3 read error, 4 aborted. ram_limit (0 =
 * none) bounds the bytes held after the assignment. */
int expert_set_assign(expert_set *s, const int32_t *layers, const int32_t *experts, int n, uint64_t ram_limit,
                      expert_set_progress_fn fn, void *ud, int *code, char *err, size_t errlen);

/* Slabs of a held expert; 0, or -1 when it is not held (or out of range). */
int expert_set_get(const expert_set *s, int layer, int expert, expert_slabs *out);

uint64_t expert_set_count(const expert_set *s);
uint64_t expert_set_bytes(const expert_set *s);

#endif
