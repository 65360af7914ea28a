/* routing_trace.h — record and read routing traces (`--trace-routing FILE`):
 * for every position and layer, the experts the router chose and their
 * weights. Input of flashpool-cachesim and of placement planning.
 *
 * File format (JSON Lines, UTF-8, one object per line):
 *   line 1 (header):
 *     {"format":"flashpool-routing-trace","version":1,"n_layer":43,
 *      "n_expert":256,"n_used":6,"model":"<path>"}
 *   every other line, one per (position, layer), in evaluation order:
 *     {"pos":17,"layer":3,"experts":[5,9,0,12,7,3],"weights":[0.31,...]}
 * Weights are printed with 9 significant digits (they read back exactly as
 * f32). Evaluation order is layer-major within a prefill chunk (all tokens
 * of layer L, then layer L+1) and token by token in decode; a reader can
 * recover the batches the pool saw from consecutive lines of one layer.
 * Positions restart at 0 for a new session. */
#ifndef FP_ROUTING_TRACE_H
#define FP_ROUTING_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include "expert_cache.h"
#include "forward.h"

#define ROUTING_TRACE_MAX_USED 16

typedef struct routing_trace_writer routing_trace_writer;

routing_trace_writer *routing_trace_create(const char *path, const model *m, char *err, size_t errlen);
/* An observer whose on_route appends a line (other callbacks NULL). */
fwd_observer routing_trace_observer(routing_trace_writer *w);
/* Flush and close; -1 with err if any write failed. NULL is a no-op. */
int routing_trace_close(routing_trace_writer *w, char *err, size_t errlen);

typedef struct routing_record {
    int64_t pos;
    int32_t layer, n;
    int32_t experts[ROUTING_TRACE_MAX_USED];
    float weights[ROUTING_TRACE_MAX_USED];
} routing_record;

typedef struct routing_trace {
    int n_layer, n_expert, n_used;
    routing_record *rec;
    size_t n_rec;
} routing_trace;

/* Reads and validates a whole trace (header, every field, expert ids in
 * range); errors name the line. */
routing_trace *routing_trace_read(const char *path, char *err, size_t errlen);
void routing_trace_free(routing_trace *t);

/* The access sequence the pool's cache saw: one group per batch of one layer
 * (consecutive records of the same layer, distinct experts in first-use
 * order), or one group per record when per_token is set. Free with
 * cache_trace_free. */
int routing_trace_to_cache_trace(const routing_trace *t, int per_token, cache_trace *out);
void cache_trace_free(cache_trace *ct);

#endif
