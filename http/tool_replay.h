/* tool_replay.h — exact DSML replay map (serving-spec §3.7): each tool-call id
 * the server hands out maps to the exact bytes the model sampled for the tool
 * call block of that turn (all calls of one turn share one block). When a
 * client sends the calls back (as JSON, often re-serialised), the renderer
 * uses these bytes instead of the canonical rendering, so the next prompt
 * repeats what the model actually produced and the KV prefix still matches.
 *
 * Bounded by id count and total bytes; least recently used ids go first.
 * Thread-safe (HTTP threads look up, the engine worker stores). */
#ifndef FP_TOOL_REPLAY_H
#define FP_TOOL_REPLAY_H

#include <stddef.h>

typedef struct tool_replay tool_replay;

tool_replay *tool_replay_open(size_t max_ids, size_t max_bytes);
void tool_replay_close(tool_replay *r);

/* Remembers block for every id (ids of one turn). 0 / -1 on OOM or when the
 * block alone exceeds the byte budget (then nothing is stored). */
int tool_replay_put(tool_replay *r, const char *const *ids, size_t n_ids,
                    const char *block, size_t len);

/* If every id is known and all map to the same block, returns a malloc'd
 * NUL-terminated copy of it (and marks the ids recently used); else NULL. */
char *tool_replay_get(tool_replay *r, const char *const *ids, size_t n_ids);

size_t tool_replay_ids(tool_replay *r);
size_t tool_replay_bytes(tool_replay *r);

#endif
