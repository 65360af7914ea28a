/* metrics.h — Prometheus text exposition (format 0.0.4) of the coordinator's
 * counters for GET /metrics: pool per-node histograms and counters, the
 * hot-expert cache, the session cache, and the HTTP server's own counters.
 *
 * Usage (from a GET /metrics handler, e.g. in coordinator/serve.c):
 *
 *     pool_stats ps;            pool_get_stats(pool, &ps);          (optional)
 *     session_cache_stats ss;   session_cache_stats_get(sc, &ss);   (optional)
 *     metrics_server srv = {0}; fill from the server's own counters
 *     metrics_inputs in = {.pool = &ps, .sessions = &ss, .server = &srv};
 *     char *text; size_t len;
 *     if (metrics_render(&in, &text, &len, err, sizeof err) == 0) {
 *         respond 200, Content-Type: "text/plain; version=0.0.4; charset=utf-8",
 *         body text[0..len); then free(text);
 *     }
 *
 * Every pointer in metrics_inputs may be NULL: that family is left out. The
 * caller owns the inputs (they are only read) and must take them under its
 * own locks; rendering is pure and allocation is the only failure. */
#ifndef FP_METRICS_H
#define FP_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "pool.h"
#include "session_cache.h"

#define METRICS_MAX_ENDPOINTS 16

/* One (endpoint, status) request counter, e.g. {"/v1/chat/completions", 200, 17}. */
typedef struct metrics_request_count {
    const char *endpoint;           /* label value; escaped on output */
    int status;                     /* HTTP status code */
    uint64_t count;
} metrics_request_count;

/* Counters the HTTP server keeps itself. */
typedef struct metrics_server {
    uint64_t prompt_tokens, generated_tokens;   /* totals since start */
    double prefill_tok_s, decode_tok_s;         /* recent rates (gauges; the server chooses the window) */
    int queue_depth;                            /* requests waiting for a slot */
    int in_flight;                              /* requests being served */
    const metrics_request_count *requests;      /* [n_requests] */
    int n_requests;
} metrics_server;

typedef struct metrics_inputs {
    const pool_stats *pool;                 /* NULL: no pool families */
    const session_cache_stats *sessions;    /* NULL: no session families */
    const metrics_server *server;           /* NULL: no server families */
} metrics_inputs;

/* Renders the exposition text into a new NUL-terminated buffer (*out, free()
 * it; *len excludes the NUL). 0, or -1 with err (out of memory). */
int metrics_render(const metrics_inputs *in, char **out, size_t *len, char *err, size_t errlen);

#endif
