/* server.h — the HTTP API server (libmicrohttpd, one thread per connection):
 * routing, body/header/connection limits, bearer / x-api-key auth, CORS,
 * /health and /v1/models, the four generation endpoints (streaming and not)
 * and /v1/messages/count_tokens. Generation runs on one engine worker thread
 * behind a bounded queue; other endpoints keep answering meanwhile. */
#ifndef FP_SERVER_H
#define FP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"
#include "chat_render.h"
#include "strbuf.h"
#include "tokenizer.h"

typedef void (*server_log_fn)(void *ud, const char *line);

typedef struct server_config {
    const char *host;            /* "127.0.0.1"; "localhost", IPv4 or IPv6 literal */
    int port;                    /* 8000; 0 picks a free port (see server_port) */
    const char *api_key;         /* NULL: no auth */
    bool cors;                   /* Access-Control-* headers on every response */
    size_t max_body_bytes;       /* 32 MiB */
    size_t max_header_bytes;     /* 64 KiB */
    unsigned max_connections;    /* 64 */
    size_t max_queue;            /* 16 requests waiting for the engine */
    int keepalive_ms;            /* SSE keep-alive after this much silence: 5000 */
    size_t replay_max_ids;       /* exact DSML replay: 100000 ids (0 disables) */
    size_t replay_max_bytes;     /* 256 MiB */
    size_t responses_max;        /* previous_response_id store: 1024 responses */
    size_t responses_max_bytes;  /* 256 MiB */
    cr_think default_think;      /* when a request does not choose: CR_THINK_HIGH */
    server_log_fn log;           /* one line per request / generation; may be NULL */
    void *log_ud;
    /* GET /metrics: append a Prometheus text exposition (format 0.0.4) to out
     * and return 0 (-1 answers 500). Called on an HTTP thread, concurrently
     * with generation. Subject to --api-key like /v1. NULL: /metrics is 404. */
    int (*metrics)(void *ud, strbuf *out);
    void *metrics_ud;
} server_config;

void server_config_defaults(server_config *c);

typedef struct server server;

/* Starts listening. The backend and tokenizer must outlive the server. */
server *server_open(const server_config *c, fp_backend *b, const tokenizer *t, char *err, size_t errlen);
int server_port(const server *s);
/* Stops accepting, cancels the running generation, waits for connections. */
void server_close(server *s);

/* Server-side counters for /metrics: finished HTTP requests by endpoint and
 * status code, and the engine queue right now. Endpoints are a fixed set
 * (unknown paths count as "other") so the label cardinality stays bounded. */
typedef enum server_endpoint {
    SRV_EP_CHAT = 0, SRV_EP_COMPLETIONS, SRV_EP_RESPONSES, SRV_EP_MESSAGES, SRV_EP_COUNT_TOKENS,
    SRV_EP_MODELS, SRV_EP_HEALTH, SRV_EP_METRICS, SRV_EP_OTHER, SRV_EP_COUNT
} server_endpoint;
#define SERVER_STATS_MAX 64          /* distinct (endpoint, status) pairs kept */
typedef struct server_request_count {
    server_endpoint endpoint;
    int status;                      /* HTTP status code */
    unsigned long long count;
} server_request_count;
typedef struct server_stats {
    server_request_count requests[SERVER_STATS_MAX];
    int n_requests;
    size_t queued;                   /* requests waiting for the engine worker */
    bool busy;                       /* a generation is running */
} server_stats;
const char *server_endpoint_name(server_endpoint e);   /* "/v1/chat/completions", ..., "other" */
void server_stats_get(server *s, server_stats *st);

#endif
