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
} server_config;

void server_config_defaults(server_config *c);

typedef struct server server;

/* Starts listening. The backend and tokenizer must outlive the server. */
server *server_open(const server_config *c, fp_backend *b, const tokenizer *t, char *err, size_t errlen);
int server_port(const server *s);
/* Stops accepting, cancels the running generation, waits for connections. */
void server_close(server *s);

#endif
