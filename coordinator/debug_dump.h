/* debug_dump.h — a forward-pass observer that records hidden states, routing
 * and indexer choices and writes them in the layouts of the reference
 * vectors (../shared/vectors/README.md), so the comparison tools can say
 * which layer and stage first departs from the reference. */
#ifndef FP_DEBUG_DUMP_H
#define FP_DEBUG_DUMP_H

#include <stdint.h>
#include "forward.h"

typedef struct debug_dump debug_dump;

/* positions: "0-15,64-71" style list for the per-layer dump (NULL = none);
 * trace: record routing and indexer for every position < n_pos. */
debug_dump *debug_dump_open(const model *m, const char *positions, int n_pos, int trace,
                            char *err, size_t errlen);
void debug_dump_close(debug_dump *d);
fwd_observer debug_dump_observer(debug_dump *d);
/* Token at each position (for the JSON header). */
void debug_dump_set_token(debug_dump *d, int64_t pos, int32_t token);
/* Write PREFIX.layers.{json,hc.f32,final.f32} and/or PREFIX.trace.{json,...}. */
int debug_dump_write(debug_dump *d, const char *prefix, char *err, size_t errlen);

#endif
