/* server.c — libmicrohttpd daemon, routing, limits, auth, CORS, the
 * model/health endpoints and the glue from HTTP to jobs (see server.h).
 *
 * Threading: MHD runs one thread per connection, so a handler may block:
 * a non-streaming request waits for its job; a streaming response's content
 * reader waits on the job's output channel. Both poll the client socket for
 * hang-up so a client that goes away cancels its generation (queued or
 * running), and a quiet stream gets a keep-alive every keepalive_ms of wall
 * clock — during queueing, prefill, reasoning and withheld tool calls. */
#include "clock.h"
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "api.h"
#include "gen_queue.h"
#include "json_util.h"
#include "resp_store.h"
#include "tool_replay.h"

struct server {
    server_config cfg;
    srv_ctx ctx;
    gen_queue *eng;
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t stats_mu;    /* guards requests (connection threads finish concurrently) */
    server_request_count requests[SERVER_STATS_MAX];
    int n_requests;
};

typedef struct conn {
    char method[16], path[128];   /* for the log line */
    strbuf body;
    size_t received;
    bool too_large;
    int status;
    double t0;
} conn;

typedef struct stream_ctx {
    server *s;
    job *j;
    double last_write;
} stream_ctx;

void server_config_defaults(server_config *c) {
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 8000;
    c->max_body_bytes = 32u << 20;
    c->max_header_bytes = 64u << 10;
    c->max_connections = 64;
    c->max_queue = 16;
    c->keepalive_ms = 5000;
    c->replay_max_ids = 100000;
    c->replay_max_bytes = 256u << 20;
    c->responses_max = 1024;
    c->responses_max_bytes = 256u << 20;
    c->default_think = CR_THINK_HIGH;
}

static void logf_(server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(server *s, const char *fmt, ...) {
    if (!s->cfg.log) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->cfg.log(s->cfg.log_ud, line);
}

/* The peer closed or reset the connection (no more data will be read). */
static bool client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {fd, POLLRDHUP, 0};
    if (poll(&p, 1, 0) <= 0) return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

static int conn_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? (int)ci->connect_fd : -1;
}

/* ---- responses ----------------------------------------------------------- */

static void add_common_headers(server *s, struct MHD_Response *r) {
    if (s->cfg.cors) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        MHD_add_response_header(r, "Access-Control-Allow-Headers", "*");
        MHD_add_response_header(r, "Access-Control-Max-Age", "86400");
    }
}

static enum MHD_Result send_bytes(server *s, struct MHD_Connection *c, conn *cs, int status,
                                  const char *ctype, const char *body, size_t n) {
    struct MHD_Response *r = MHD_create_response_from_buffer(n, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    if (ctype) MHD_add_response_header(r, "Content-Type", ctype);
    add_common_headers(s, r);
    if (status == 503 || status == 429) MHD_add_response_header(r, "Retry-After", "1");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    if (status == 405) MHD_add_response_header(r, "Allow", "GET, POST, OPTIONS");
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    cs->status = status;
    return rc;
}

static enum MHD_Result send_json(server *s, struct MHD_Connection *c, conn *cs, int status, const strbuf *b) {
    return send_bytes(s, c, cs, status, "application/json", sb_str(b), b->n);
}

static enum MHD_Result send_error(server *s, struct MHD_Connection *c, conn *cs, api_shape shape,
                                  const api_error *e) {
    strbuf b = STRBUF_INIT;
    api_error_body(&b, shape, e);
    enum MHD_Result rc = send_json(s, c, cs, e->status, &b);
    sb_free(&b);
    return rc;
}

/* ---- streaming ----------------------------------------------------------- */

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_ctx *sc = cls;
    job *j = sc->j;
    const double keepalive = sc->s->cfg.keepalive_ms / 1000.0;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        size_t avail = j->out.n - j->out_off;
        if (avail) {
            size_t n = avail < max ? avail : max;
            memcpy(buf, j->out.s + j->out_off, n);
            j->out_off += n;
            if (j->out_off == j->out.n) {
                sb_reset(&j->out);
                j->out_off = 0;
            }
            pthread_mutex_unlock(&j->mu);
            sc->last_write = fp_now_s();
            return (ssize_t)n;
        }
        if (j->done) {
            pthread_mutex_unlock(&j->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (client_gone(j->client_fd)) {
            atomic_store(&j->cancelled, 1);
            pthread_mutex_unlock(&j->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        double t = fp_now_s();
        if (t - sc->last_write >= keepalive) {
            const char *ka = j->ops->keepalive;
            size_t n = strlen(ka);
            if (n > max) n = max;
            memcpy(buf, ka, n);
            pthread_mutex_unlock(&j->mu);
            sc->last_write = t;
            return (ssize_t)n;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    }
}

static void sse_free(void *cls) {
    stream_ctx *sc = cls;
    pthread_mutex_lock(&sc->j->mu);
    bool done = sc->j->done;
    pthread_mutex_unlock(&sc->j->mu);
    if (!done) atomic_store(&sc->j->cancelled, 1);   /* the client went away */
    job_unref(sc->j);
    free(sc);
}

/* ---- generation ------------------------------------------------------------ */

typedef int (*parse_fn)(const cJSON *, gen_req *, srv_ctx *, api_error *);

static enum MHD_Result generate(server *s, struct MHD_Connection *c, conn *cs, api_kind kind,
                                const cJSON *body) {
    static const struct { parse_fn parse; const api_ops *ops; const char *prefix; } K[] = {
        [API_CHAT] = {api_chat_parse, &API_CHAT_OPS, "chatcmpl-"},
        [API_COMPLETIONS] = {api_completions_parse, &API_COMPLETIONS_OPS, "cmpl-"},
        [API_RESPONSES] = {api_responses_parse, &API_RESPONSES_OPS, "resp_"},
        [API_ANTHROPIC] = {api_anthropic_parse, &API_ANTHROPIC_OPS, "msg_"},
    };
    api_error e = {0};
    job *j = job_new(&s->ctx, K[kind].ops);
    if (!j) {
        api_error_set(&e, 500, ERRK_SERVER, NULL, "out of memory");
        return send_error(s, c, cs, K[kind].ops->shape, &e);
    }
    gen_req_init(&j->req, kind);
    int rc = K[kind].parse(body, &j->req, &s->ctx, &e);
    if (rc == 0 && !j->req.model && !(j->req.model = strdup(s->ctx.backend->model_id))) {
        api_error_set(&e, 500, ERRK_SERVER, NULL, "out of memory");
        rc = -1;
    }
    if (rc == 0) rc = job_prepare(j, &e);
    if (rc < 0) {
        job_unref(j);
        return send_error(s, c, cs, K[kind].ops->shape, &e);
    }
    http_make_id(j->id, sizeof j->id, K[kind].prefix, 24);
    j->client_fd = conn_fd(c);

    if (j->req.stream) {
        j->ops->stream_begin(j);
        if (gen_queue_submit(s->eng, j) < 0) {
            job_unref(j);
            api_error_set(&e, 503, ERRK_OVERLOADED, NULL, "the server is busy (generation queue full); retry shortly");
            return send_error(s, c, cs, K[kind].ops->shape, &e);
        }
        stream_ctx *sc = calloc(1, sizeof *sc);
        struct MHD_Response *r =
            sc ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_reader, sc, sse_free) : NULL;
        if (!r) {
            atomic_store(&j->cancelled, 1);
            job_unref(j);
            free(sc);
            return MHD_NO;
        }
        sc->s = s;
        sc->j = j;   /* the response owns our reference now */
        sc->last_write = fp_now_s();
        MHD_add_response_header(r, "Content-Type", "text/event-stream; charset=utf-8");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        MHD_add_response_header(r, "X-Accel-Buffering", "no");
        add_common_headers(s, r);
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        cs->status = 200;
        return ret;
    }

    if (gen_queue_submit(s->eng, j) < 0) {
        job_unref(j);
        api_error_set(&e, 503, ERRK_OVERLOADED, NULL, "the server is busy (generation queue full); retry shortly");
        return send_error(s, c, cs, K[kind].ops->shape, &e);
    }
    pthread_mutex_lock(&j->mu);
    while (!j->done) {
        if (client_gone(j->client_fd)) {
            atomic_store(&j->cancelled, 1);
            pthread_mutex_unlock(&j->mu);
            job_unref(j);
            cs->status = 499;   /* client closed request (log only) */
            return MHD_NO;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    }
    pthread_mutex_unlock(&j->mu);
    enum MHD_Result ret = send_json(s, c, cs, j->status, &j->out);
    job_unref(j);
    return ret;
}

/* ---- small endpoints ------------------------------------------------------- */

static cJSON *model_obj(server *s) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", s->ctx.backend->model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", 1767225600);
    cJSON_AddStringToObject(m, "owned_by", "flashpool");
    cJSON_AddStringToObject(m, "type", "model");
    cJSON_AddStringToObject(m, "display_name", "DeepSeek V4 Flash");
    cJSON_AddStringToObject(m, "created_at", "2026-01-01T00:00:00Z");
    cJSON_AddNumberToObject(m, "context_length", (double)s->ctx.backend->n_ctx);
    return m;
}

static enum MHD_Result send_obj(server *s, struct MHD_Connection *c, conn *cs, int status, cJSON *o) {
    strbuf b = STRBUF_INIT;
    json_print_compact(&b, o);
    sb_putc(&b, '\n');
    cJSON_Delete(o);
    enum MHD_Result rc = send_json(s, c, cs, status, &b);
    sb_free(&b);
    return rc;
}

static bool auth_ok(server *s, struct MHD_Connection *c) {
    const char *key = s->cfg.api_key;
    if (!key || !key[0]) return true;
    const char *got = NULL;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (h && strncasecmp(h, "Bearer ", 7) == 0) got = h + 7;
    if (!got) got = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-api-key");
    if (!got) return false;
    size_t a = strlen(got), b = strlen(key);
    /* constant time for equal lengths; the length itself is not secret */
    return a == b && CRYPTO_memcmp(got, key, a) == 0;
}

static enum MHD_Result handle(server *s, struct MHD_Connection *c, conn *cs, const char *url,
                              const char *method) {
    char path[512];
    snprintf(path, sizeof path, "%s", url);
    size_t pl = strlen(path);
    if (pl > 1 && path[pl - 1] == '/') path[--pl] = 0;
    const api_shape shape = strncmp(path, "/v1/messages", 12) == 0 ? SHAPE_ANTHROPIC : SHAPE_OPENAI;
    const bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    const bool post = !strcmp(method, "POST");
    api_error e = {0};

    if (!strcmp(method, "OPTIONS")) return send_bytes(s, c, cs, 204, NULL, "", 0);
    if (s->cfg.metrics && !strcmp(path, "/metrics")) {
        if (!auth_ok(s, c)) {
            api_error_set(&e, 401, ERRK_AUTH, NULL,
                          "invalid or missing API key (send 'Authorization: Bearer KEY' or 'x-api-key: KEY')");
            return send_error(s, c, cs, shape, &e);
        }
        if (!get) goto method;
        strbuf b = STRBUF_INIT;
        const int mrc = s->cfg.metrics(s->cfg.metrics_ud, &b);
        enum MHD_Result rc = mrc == 0 && !b.oom
            ? send_bytes(s, c, cs, 200, "text/plain; version=0.0.4; charset=utf-8", sb_str(&b), b.n)
            : send_bytes(s, c, cs, 500, "text/plain; charset=utf-8", "metrics unavailable\n", 20);
        sb_free(&b);
        return rc;
    }
    if (get && (!strcmp(path, "/") || !strcmp(path, "/health"))) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", "ok");
        cJSON_AddStringToObject(o, "model", s->ctx.backend->model_id);
        cJSON_AddNumberToObject(o, "n_ctx", (double)s->ctx.backend->n_ctx);
        cJSON_AddNumberToObject(o, "queued", (double)gen_queue_queued(s->eng));
        cJSON_AddBoolToObject(o, "busy", gen_queue_busy(s->eng));
        return send_obj(s, c, cs, 200, o);
    }
    if (!auth_ok(s, c)) {
        api_error_set(&e, 401, ERRK_AUTH, NULL,
                      "invalid or missing API key (send 'Authorization: Bearer KEY' or 'x-api-key: KEY')");
        return send_error(s, c, cs, shape, &e);
    }
    if (cs->too_large) {
        api_error_set(&e, 413, ERRK_TOO_LARGE, NULL, "request body of %zu bytes exceeds the limit of %zu bytes",
                      cs->received, s->cfg.max_body_bytes);
        return send_error(s, c, cs, shape, &e);
    }
    if (!strcmp(path, "/v1/models")) {
        if (!get) goto method;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "object", "list");
        cJSON *data = cJSON_AddArrayToObject(o, "data");
        cJSON_AddItemToArray(data, model_obj(s));
        cJSON_AddFalseToObject(o, "has_more");
        cJSON_AddStringToObject(o, "first_id", s->ctx.backend->model_id);
        cJSON_AddStringToObject(o, "last_id", s->ctx.backend->model_id);
        return send_obj(s, c, cs, 200, o);
    }
    if (!strncmp(path, "/v1/models/", 11)) {
        if (!get) goto method;
        if (strcmp(path + 11, s->ctx.backend->model_id) == 0) return send_obj(s, c, cs, 200, model_obj(s));
        api_error_set(&e, 404, ERRK_NOT_FOUND, "model", "The model '%s' does not exist", path + 11);
        return send_error(s, c, cs, shape, &e);
    }
    static const struct { const char *path; int kind; } GEN[] = {
        {"/v1/chat/completions", API_CHAT}, {"/v1/completions", API_COMPLETIONS},
        {"/v1/responses", API_RESPONSES},   {"/v1/messages", API_ANTHROPIC},
        {"/v1/messages/count_tokens", -1},
    };
    for (size_t i = 0; i < sizeof GEN / sizeof *GEN; i++) {
        if (strcmp(path, GEN[i].path) != 0) continue;
        if (!post) goto method;
        const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
        if (enc && strcasecmp(enc, "identity") != 0) {
            api_error_set(&e, 415, ERRK_UNSUPPORTED_MEDIA, NULL,
                          "compressed request bodies (Content-Encoding: %s) are not supported", enc);
            return send_error(s, c, cs, shape, &e);
        }
        if (!cs->body.n) {
            api_error_set(&e, 400, ERRK_INVALID, NULL, "the request body must be a JSON object");
            return send_error(s, c, cs, shape, &e);
        }
        const char *end = NULL;
        cJSON *body = cJSON_ParseWithLengthOpts(cs->body.s, cs->body.n, &end, 0);
        if (body && end) {
            for (const char *p = end; p < cs->body.s + cs->body.n; p++)
                if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
                    cJSON_Delete(body);
                    body = NULL;
                    break;
                }
        }
        if (!body) {
            /* cJSON reports the failure position through end (its global
             * error pointer is shared between threads). */
            size_t at = end && end >= cs->body.s && end <= cs->body.s + cs->body.n
                            ? (size_t)(end - cs->body.s) : cs->body.n;
            api_error_set(&e, 400, ERRK_INVALID, NULL, "the request body is not valid JSON (error near byte %zu)", at);
            return send_error(s, c, cs, shape, &e);
        }
        if (!cJSON_IsObject(body)) {
            cJSON_Delete(body);
            api_error_set(&e, 400, ERRK_INVALID, NULL, "the request body must be a JSON object");
            return send_error(s, c, cs, shape, &e);
        }
        enum MHD_Result rc;
        if (GEN[i].kind < 0) {
            strbuf out = STRBUF_INIT;
            if (api_anthropic_count_tokens(body, &s->ctx, &out, &e) == 0) rc = send_json(s, c, cs, 200, &out);
            else rc = send_error(s, c, cs, shape, &e);
            sb_free(&out);
        } else {
            rc = generate(s, c, cs, (api_kind)GEN[i].kind, body);
        }
        cJSON_Delete(body);
        return rc;
    }
    api_error_set(&e, 404, ERRK_NOT_FOUND, NULL, "unknown endpoint: %s %s", method, path);
    return send_error(s, c, cs, shape, &e);
method:
    api_error_set(&e, 405, ERRK_METHOD, NULL, "method %s is not allowed on %s", method, path);
    return send_error(s, c, cs, shape, &e);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size,
                                  void **con_cls) {
    (void)version;
    server *s = cls;
    conn *cs = *con_cls;
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        if (!cs) return MHD_NO;
        cs->t0 = fp_now_s();
        snprintf(cs->method, sizeof cs->method, "%s", method);
        snprintf(cs->path, sizeof cs->path, "%s", url);
        *con_cls = cs;
        /* A declared body far beyond the limit is refused without reading it. */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > 8 * (unsigned long long)s->cfg.max_body_bytes) {
            cs->too_large = true;
            cs->received = (size_t)strtoull(cl, NULL, 10);
            api_error e;
            api_error_set(&e, 413, ERRK_TOO_LARGE, NULL,
                          "request body of %zu bytes exceeds the limit of %zu bytes", cs->received,
                          s->cfg.max_body_bytes);
            return send_error(s, c, cs, strncmp(url, "/v1/messages", 12) == 0 ? SHAPE_ANTHROPIC : SHAPE_OPENAI,
                              &e);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        cs->received += *upload_size;
        /* Over the limit the rest is read and dropped, so the client gets a
         * clean 413 instead of a reset while it is still sending. */
        if (cs->received > s->cfg.max_body_bytes) {
            cs->too_large = true;
            sb_free(&cs->body);
        } else {
            sb_append(&cs->body, upload, *upload_size);
            if (cs->body.oom) cs->too_large = true;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (cs->status) return MHD_YES;   /* already answered */
    return handle(s, c, cs, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    server *s = cls;
    conn *cs = *con_cls;
    if (!cs) return;
    (void)c;
    server_endpoint ep = SRV_EP_OTHER;
    for (int e = 0; e < SRV_EP_OTHER; e++) {
        const char *p = server_endpoint_name((server_endpoint)e);
        const size_t pl = strlen(p);
        /* exact path, or with a trailing slash; /v1/models/{id} counts as /v1/models */
        if (!strncmp(cs->path, p, pl) &&
            (!cs->path[pl] || !strcmp(cs->path + pl, "/") || (e == SRV_EP_MODELS && cs->path[pl] == '/'))) {
            ep = (server_endpoint)e;
            break;
        }
    }
    pthread_mutex_lock(&s->stats_mu);
    int k = 0;
    while (k < s->n_requests && !(s->requests[k].endpoint == ep && s->requests[k].status == cs->status)) k++;
    if (k == s->n_requests && k < SERVER_STATS_MAX)
        s->requests[s->n_requests++] = (server_request_count){ep, cs->status, 0};
    if (k < s->n_requests) s->requests[k].count++;
    pthread_mutex_unlock(&s->stats_mu);
    logf_(s, "%s %s %d %.3fs%s", cs->method, cs->path, cs->status, fp_now_s() - cs->t0,
          toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)");
    sb_free(&cs->body);
    free(cs);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    server *s = cls;
    if (!s->cfg.log) return;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n') line[--n] = 0;
    char msg[600];
    snprintf(msg, sizeof msg, "http: %s", line);
    s->cfg.log(s->cfg.log_ud, msg);
}

static void engine_log(void *ud, const char *line) {
    server *s = ud;
    logf_(s, "gen %s", line);
}

server *server_open(const server_config *cfg, fp_backend *b, const tokenizer *t, char *err, size_t errlen) {
    server *s = calloc(1, sizeof *s);
    if (!s) { snprintf(err, errlen, "out of memory"); return NULL; }
    s->cfg = *cfg;
    pthread_mutex_init(&s->stats_mu, NULL);
    if (!s->cfg.host) s->cfg.host = "127.0.0.1";
    if (s->cfg.keepalive_ms <= 0) s->cfg.keepalive_ms = 5000;
    s->ctx.tok = t;
    s->ctx.backend = b;
    s->ctx.default_think = cfg->default_think;
    if (cr_special_ids_load(t, &s->ctx.sp, err, errlen) < 0) goto fail;
    if (cfg->replay_max_ids && !(s->ctx.replay = tool_replay_open(cfg->replay_max_ids, cfg->replay_max_bytes))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!(s->ctx.responses = resp_store_open(cfg->responses_max, cfg->responses_max_bytes))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!(s->eng = gen_queue_open(&s->ctx, cfg->max_queue, engine_log, s, err, errlen))) goto fail;

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ERROR_LOG;
    const char *host = s->cfg.host;
    if (!strcmp(host, "localhost")) host = "127.0.0.1";
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)cfg->port);
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)cfg->port);
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, errlen, "--host '%s' is not an IPv4/IPv6 address (use e.g. 127.0.0.1 or 0.0.0.0)", s->cfg.host);
        goto fail;
    }
    s->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)(cfg->max_connections ? cfg->max_connections : 64),
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(cfg->max_header_bytes + 32 * 1024),
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, errlen, "cannot listen on %s:%d (%s); is the port in use?", s->cfg.host, cfg->port,
                 strerror(errno));
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    return s;
fail:
    gen_queue_close(s->eng);
    tool_replay_close(s->ctx.replay);
    resp_store_close(s->ctx.responses);
    pthread_mutex_destroy(&s->stats_mu);
    free(s);
    return NULL;
}

int server_port(const server *s) { return s->port; }

void server_close(server *s) {
    if (!s) return;
    if (s->d) MHD_quiesce_daemon(s->d);
    gen_queue_stop(s->eng);    /* ends the running job; waiting connections see it done */
    if (s->d) MHD_stop_daemon(s->d);
    gen_queue_close(s->eng);
    tool_replay_close(s->ctx.replay);
    resp_store_close(s->ctx.responses);
    pthread_mutex_destroy(&s->stats_mu);
    free(s);
}

const char *server_endpoint_name(server_endpoint e) {
    static const char *const N[SRV_EP_COUNT] = {
        "/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages", "/v1/messages/count_tokens",
        "/v1/models", "/health", "/metrics", "other"};
    return (unsigned)e < SRV_EP_COUNT ? N[e] : "other";
}

void server_stats_get(server *s, server_stats *st) {
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&s->stats_mu);
    memcpy(st->requests, s->requests, sizeof st->requests);
    st->n_requests = s->n_requests;
    pthread_mutex_unlock(&s->stats_mu);
    st->queued = gen_queue_queued(s->eng);
    st->busy = gen_queue_busy(s->eng);
}
