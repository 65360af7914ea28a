/* serve.c — `flashpool serve`: option parsing, setup (engine → expert pool →
 * tokenizer → KV cache → engine backend → HTTP server), the run loop until
 * SIGINT/SIGTERM, the ordered shutdown (stop accepting and cancel the
 * running generation, save KV checkpoints, close the pool), and /metrics.
 *
 * Signals: SIGINT/SIGTERM are blocked before any thread starts (so every
 * server thread inherits the mask) and taken with sigwait() by the main
 * thread: no handler, no global flag. */
#include "serve.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_engine.h"
#include "engine.h"
#include "errmsg.h"
#include "kv_cli.h"
#include "metrics.h"
#include "pool_cli.h"
#include "progress.h"
#include "server.h"
#include "tokenizer.h"

typedef struct serve_opts {
    const char *model, *port_file, *test_script, *log_tokens, *model_id;
    int ctx, threads, chunk, quiet;
    server_config http;
    pool_cli pool;
    kv_cli kv;
} serve_opts;

/* Shared between the HTTP threads (/metrics) and the engine worker. */
typedef struct serve_state {
    fp_backend *backend;
    session_cache *cache;
    server *srv;               /* set once listening */
    pool *pool;                /* NULL: local experts */
    pthread_mutex_t mu;        /* guards the pool snapshot and srv */
    pool_stats pst;            /* taken on the engine worker after each request */
    pool_node_stats *nodes;    /* [pst.n_nodes], our copy */
    int have_pst;
    int quiet;
} serve_state;

static void usage(FILE *f) {
    fprintf(f,
        "usage: flashpool serve -m MODEL.gguf [options]\n"
        "\n"
        "Serves the OpenAI (chat/completions, completions, Responses) and Anthropic\n"
        "(Messages) HTTP APIs on the engine, with KV prefix reuse across requests and,\n"
        "with --node/--cluster, the routed experts on a pool of flashpool-node processes.\n"
        "Endpoints: /v1/chat/completions /v1/completions /v1/responses /v1/messages\n"
        "/v1/messages/count_tokens /v1/models /health /metrics (Prometheus text).\n"
        "SIGINT/SIGTERM: stop accepting, cancel the running request, save KV checkpoints\n"
        "(with --kv-disk-dir), close the pool, exit 0.\n"
        "\n"
        "  -m, --model FILE        GGUF model (required)\n"
        "      --host ADDR         listen address (default 127.0.0.1; 0.0.0.0 for all)\n"
        "      --port N            listen port (default 8080; 0 = any free port)\n"
        "      --port-file PATH    write the bound port to PATH once listening\n"
        "      --ctx N             context size in tokens per session (default 4096)\n"
        "  -t, --threads N         CPU threads (default: all cores)\n"
        "      --chunk N           prefill batch size (default 256)\n"
        "      --api-key KEY       require 'Authorization: Bearer KEY' or 'x-api-key: KEY'\n"
        "      --cors              send Access-Control-Allow-* headers\n"
        "      --max-body BYTES    request body limit (default 33554432)\n"
        "      --max-queue N       requests waiting for the engine before 503 (default 16)\n"
        "      --keepalive-ms N    SSE keep-alive interval during long prefills (default 5000)\n"
        "      --think MODE        default thinking mode: none, high, max (default high)\n"
        "      --model-id ID       model id reported by /v1/models (default deepseek-v4-flash)\n"
        "  -q, --quiet             no progress or request log lines\n"
        "  -h, --help              this help\n"
        "\n"
        "debugging and tests:\n"
        "      --log-tokens FILE   append each request's prompt and output token ids to FILE\n"
        "      --test-script FILE  TEST-ONLY, never in production: FILE holds scripted replies\n"
        "                          separated by lines '%%%%'; request k emits reply k instead of\n"
        "                          sampling (control strings become control tokens), the engine\n"
        "                          still evaluates every token; later requests sample normally\n");
    pool_cli_usage(f);
    kv_cli_usage(f);
}

static int parse_num(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* 0 ok, 1 = --help printed, -1 usage error (printed). */
static int parse_args(int argc, char **argv, serve_opts *o) {
    enum { O_HOST = 1000, O_PORT, O_PORT_FILE, O_CTX, O_CHUNK, O_API_KEY, O_CORS, O_MAX_BODY, O_MAX_QUEUE,
           O_KEEPALIVE, O_THINK, O_MODEL_ID, O_LOG_TOKENS, O_TEST_SCRIPT };
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'}, {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT}, {"port-file", required_argument, 0, O_PORT_FILE},
        {"ctx", required_argument, 0, O_CTX}, {"threads", required_argument, 0, 't'},
        {"chunk", required_argument, 0, O_CHUNK}, {"api-key", required_argument, 0, O_API_KEY},
        {"cors", no_argument, 0, O_CORS}, {"max-body", required_argument, 0, O_MAX_BODY},
        {"max-queue", required_argument, 0, O_MAX_QUEUE}, {"keepalive-ms", required_argument, 0, O_KEEPALIVE},
        {"think", required_argument, 0, O_THINK}, {"model-id", required_argument, 0, O_MODEL_ID},
        {"log-tokens", required_argument, 0, O_LOG_TOKENS}, {"test-script", required_argument, 0, O_TEST_SCRIPT},
        {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'},
        POOL_CLI_LONG_OPTIONS, KV_CLI_LONG_OPTIONS, {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    o->ctx = 4096;
    server_config_defaults(&o->http);
    o->http.port = 8080;
    pool_cli_init(&o->pool);
    kv_cli_init(&o->kv);
    char err[256];
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:qh", lo, NULL)) != -1) {
        const char *bad = NULL;
        switch (c) {
        case 'm': o->model = optarg; break;
        case O_HOST: o->http.host = optarg; break;
        case O_PORT: if (parse_num(optarg, 0, 65535, &v)) bad = "--port"; else o->http.port = (int)v; break;
        case O_PORT_FILE: o->port_file = optarg; break;
        case O_CTX: if (parse_num(optarg, 16, 1 << 24, &v)) bad = "--ctx"; else o->ctx = (int)v; break;
        case 't': if (parse_num(optarg, 0, 4096, &v)) bad = "--threads"; else o->threads = (int)v; break;
        case O_CHUNK: if (parse_num(optarg, 0, 1 << 20, &v)) bad = "--chunk"; else o->chunk = (int)v; break;
        case O_API_KEY: o->http.api_key = optarg; break;
        case O_CORS: o->http.cors = true; break;
        case O_MAX_BODY:
            if (parse_num(optarg, 1, 1L << 40, &v)) bad = "--max-body"; else o->http.max_body_bytes = (size_t)v;
            break;
        case O_MAX_QUEUE:
            if (parse_num(optarg, 1, 1 << 20, &v)) bad = "--max-queue"; else o->http.max_queue = (size_t)v;
            break;
        case O_KEEPALIVE:
            if (parse_num(optarg, 1, 1 << 30, &v)) bad = "--keepalive-ms"; else o->http.keepalive_ms = (int)v;
            break;
        case O_THINK:
            if (!strcmp(optarg, "none")) o->http.default_think = CR_THINK_NONE;
            else if (!strcmp(optarg, "high")) o->http.default_think = CR_THINK_HIGH;
            else if (!strcmp(optarg, "max")) o->http.default_think = CR_THINK_MAX;
            else bad = "--think (none, high or max)";
            break;
        case O_MODEL_ID: o->model_id = optarg; break;
        case O_LOG_TOKENS: o->log_tokens = optarg; break;
        case O_TEST_SCRIPT: o->test_script = optarg; break;
        case 'q': o->quiet = 1; break;
        case 'h': usage(stdout); return 1;
        default: {
            int r = pool_cli_option(&o->pool, c, optarg, err, sizeof err);
            if (r == 0) r = kv_cli_option(&o->kv, c, optarg, err, sizeof err);
            if (r > 0) break;
            if (r < 0) fprintf(stderr, "flashpool serve: %s\n", err);
            else fprintf(stderr, "flashpool serve: unknown option (see flashpool serve --help)\n");
            return -1;
        }
        }
        if (bad) {
            fprintf(stderr, "flashpool serve: bad value for %s: '%s' (see --help)\n", bad, optarg);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "flashpool serve: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    if (!o->model) {
        fprintf(stderr, "flashpool serve: no model given: use -m MODEL.gguf (see --help)\n");
        return -1;
    }
    return 0;
}

static void log_line(void *ud, const char *line) {
    const serve_state *st = ud;
    if (!st->quiet) fprintf(stderr, "serve: %s\n", line);
}

static void kv_log(void *ud, const char *msg) {
    const serve_state *st = ud;
    if (!st->quiet) fprintf(stderr, "serve: kv: %s\n", msg);
}

/* Engine worker (or main thread before serving): copy the pool's counters. */
static void snapshot_pool(void *ud) {
    serve_state *st = ud;
    if (!st->pool) return;
    pool_stats ps;
    pool_get_stats(st->pool, &ps);
    pthread_mutex_lock(&st->mu);
    if (ps.n_nodes > 0 && ps.nodes) {
        pool_node_stats *n = realloc(st->nodes, (size_t)ps.n_nodes * sizeof *n);
        if (n) {
            memcpy(n, ps.nodes, (size_t)ps.n_nodes * sizeof *n);
            st->nodes = n;
        } else {
            ps.n_nodes = 0;
        }
    }
    ps.nodes = st->nodes;
    st->pst = ps;
    st->have_pst = 1;
    pthread_mutex_unlock(&st->mu);
}

/* ---- /metrics --------------------------------------------------------------
 * metrics_render (coordinator/metrics.c) renders the pool (as of the end of
 * the last request), session cache and server families; the backend's own
 * counters that it has no family for are appended here. */

static void m_head(strbuf *b, const char *name, const char *type, const char *help) {
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void m_u64(strbuf *b, const char *name, const char *help, unsigned long long v) {
    m_head(b, name, "counter", help);
    sb_printf(b, "%s %llu\n", name, v);
}

static void m_sec(strbuf *b, const char *name, const char *help, double v) {
    m_head(b, name, "counter", help);
    sb_printf(b, "%s %.6f\n", name, v);
}

static int render_metrics(void *ud, strbuf *b) {
    serve_state *st = ud;
    fp_engine_backend_stats bs;
    fp_backend_engine_stats(st->backend, &bs);
    session_cache_stats cs;
    session_cache_stats_get(st->cache, &cs);

    server_stats ss;
    memset(&ss, 0, sizeof ss);
    pthread_mutex_lock(&st->mu);
    if (st->srv) server_stats_get(st->srv, &ss);   /* srv outlives this call: see serve_main's shutdown */
    pthread_mutex_unlock(&st->mu);
    metrics_request_count rq[SERVER_STATS_MAX];
    for (int i = 0; i < ss.n_requests; i++)
        rq[i] = (metrics_request_count){server_endpoint_name(ss.requests[i].endpoint), ss.requests[i].status,
                                        ss.requests[i].count};
    metrics_server ms = {
        .prompt_tokens = bs.prompt_tokens, .generated_tokens = bs.completion_tokens,
        .prefill_tok_s = bs.last_prefill_tok_s, .decode_tok_s = bs.last_decode_tok_s,
        .queue_depth = (int)ss.queued, .in_flight = ss.busy ? 1 : 0, .requests = rq, .n_requests = ss.n_requests,
    };

    char err[128];
    char *text = NULL;
    size_t len = 0;
    pthread_mutex_lock(&st->mu);   /* the pool snapshot */
    metrics_inputs in = {.pool = st->have_pst ? &st->pst : NULL, .sessions = &cs, .server = &ms};
    const int rc = metrics_render(&in, &text, &len, err, sizeof err);
    pthread_mutex_unlock(&st->mu);
    if (rc) return -1;
    sb_append(b, text, len);
    free(text);

    m_u64(b, "flashpool_generations_total", "Generation requests run by the engine.", bs.requests);
    m_u64(b, "flashpool_generation_errors_total", "Generations that ended in an error.", bs.errors);
    m_u64(b, "flashpool_generation_cancelled_total", "Generations cancelled (client gone, shutdown).", bs.cancelled);
    m_u64(b, "flashpool_prompt_tokens_cached_total", "Prompt tokens reused from KV state (usage cached tokens).",
          bs.cached_tokens);
    m_u64(b, "flashpool_prompt_tokens_evaluated_total", "Prompt tokens evaluated by prefill.", bs.evaluated_tokens);
    m_sec(b, "flashpool_prefill_seconds_total", "Time spent in prefill.", bs.prefill_seconds);
    m_sec(b, "flashpool_decode_seconds_total", "Time spent decoding.", bs.decode_seconds);
    return b->oom ? -1 : 0;
}

static int write_port_file(const char *path, int port) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    const int bad = fprintf(f, "%d\n", port) < 0;
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) return -1;
    return 0;
}

int serve_main(int argc, char **argv) {
    serve_opts o;
    const int pr = parse_args(argc, argv, &o);
    if (pr) return pr > 0 ? 0 : 2;

    /* Block the stop signals before any thread exists: every thread inherits
     * the mask and the main thread takes them with sigwait(). */
    sigset_t stop_set;
    /* A shell starts background jobs with SIGINT ignored; an ignored signal
     * is discarded, never seen by sigwait: restore the default first. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
    signal(SIGPIPE, SIG_IGN);

    serve_state st;
    memset(&st, 0, sizeof st);
    pthread_mutex_init(&st.mu, NULL);
    st.quiet = o.quiet;
    char err[1024];
    int rc = 1;
    fp_engine *e = NULL;
    tokenizer *tok = NULL;
    kv_setup kv;
    memset(&kv, 0, sizeof kv);
    pool_setup ps;
    memset(&ps, 0, sizeof ps);
    int pool_open = 0;
    char *script = NULL;
    FILE *token_log = NULL;
    fp_backend *backend = NULL;
    server *srv = NULL;

    if (o.test_script) {
        script = fp_read_text_file(o.test_script, 16u << 20, "--test-script file", NULL, err, sizeof err);
        if (!script) goto fail;
        fprintf(stderr, "serve: WARNING: --test-script is for tests only: replies come from %s, not the model\n",
                o.test_script);
    }
    if (o.log_tokens && !(token_log = fopen(o.log_tokens, "a"))) {
        snprintf(err, sizeof err, "cannot open --log-tokens file %s: %s", o.log_tokens, strerror(errno));
        goto fail;
    }

    if (!o.quiet) fprintf(stderr, "serve: loading %s\n", o.model);
    const double t0 = now_seconds();
    engine_opts eo = {.model_path = o.model, .n_threads = o.threads, .prefill_chunk = o.chunk};
    if (!(e = engine_open(&eo, err, sizeof err))) goto fail;
    const model *m = engine_model(e);
    if (!o.quiet)
        fprintf(stderr, "serve: %d layers, %d experts/layer, vocab %d; weights %.1f MiB (dense %.1f, experts %.1f)\n",
                m->hp.n_layer, m->hp.n_expert, m->hp.n_vocab, (m->dense_bytes + m->expert_bytes) / 1048576.0,
                m->dense_bytes / 1048576.0, m->expert_bytes / 1048576.0);
    if (o.pool.n_nodes || o.pool.cluster_file) {
        if (!o.quiet) fprintf(stderr, "serve: connecting to the expert pool\n");
    }
    pool_open = 1;
    if (pool_cli_apply(&o.pool, e, o.quiet ? NULL : stderr, &ps, err, sizeof err)) goto fail;
    st.pool = ps.p;
    if (!o.quiet && ps.p) fprintf(stderr, "serve: expert pool ready (%d nodes)\n", o.pool.n_nodes);

    if (!(tok = tokenizer_open(m->gguf, err, sizeof err))) {
        fprintf(stderr, "flashpool serve: the model's tokenizer cannot be loaded\n");
        goto fail;
    }
    /* The cold-save anchor is the last User marker before the first
     * Assistant one: the system prompt + tools prefix other conversations share. */
    o.kv.policy.anchor_user = tokenizer_special(tok, "<\xef\xbd\x9cUser\xef\xbd\x9c>");
    o.kv.policy.anchor_assistant = tokenizer_special(tok, "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>");
    if (kv_cli_apply(&o.kv, e, o.ctx, pool_cli_observer(&ps), kv_log, &st, &kv, err, sizeof err)) goto fail;
    st.cache = kv.cache;
    if (!o.quiet) {
        session_cache_stats cs;
        session_cache_stats_get(kv.cache, &cs);
        fprintf(stderr, "serve: KV cache: context %d, up to %d sessions in %.1f MiB RAM%s%s\n", o.ctx,
                cs.max_sessions, cs.ram_budget / 1048576.0, o.kv.disk_dir ? ", disk tier " : "",
                o.kv.disk_dir ? o.kv.disk_dir : "");
    }

    fp_engine_backend_opts bo = {
        .engine = e, .cache = kv.cache, .tok = tok, .n_ctx = (size_t)o.ctx, .model_id = o.model_id,
        .test_script = script, .token_log = token_log, .after_request = snapshot_pool, .after_ud = &st,
    };
    if (!(backend = fp_backend_engine_open(&bo, err, sizeof err))) goto fail;
    st.backend = backend;
    snapshot_pool(&st);

    o.http.log = log_line;
    o.http.log_ud = &st;
    o.http.metrics = render_metrics;
    o.http.metrics_ud = &st;
    if (!(srv = server_open(&o.http, backend, tok, err, sizeof err))) goto fail;
    pthread_mutex_lock(&st.mu);
    st.srv = srv;
    pthread_mutex_unlock(&st.mu);
    const int port = server_port(srv);
    if (o.port_file && write_port_file(o.port_file, port)) {
        snprintf(err, sizeof err, "cannot write --port-file %s: %s", o.port_file, strerror(errno));
        goto fail;
    }
    /* Always printed (even with -q): where to find the server. */
    const int v6 = strchr(o.http.host, ':') != NULL;   /* IPv6 literals go in brackets in a URL */
    fprintf(stderr, "serve: ready in %.1f s; listening on http://%s%s%s:%d (model %s, ctx %d%s)\n",
            now_seconds() - t0, v6 ? "[" : "", o.http.host, v6 ? "]" : "", port, backend->model_id, o.ctx,
            ps.p ? ", expert pool" : "");

    int sig = 0;
    while (sigwait(&stop_set, &sig) != 0) {
    }
    fprintf(stderr, "serve: %s: shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;
    goto out;

fail:
    fprintf(stderr, "flashpool serve: %s\n", err);
out:
    pthread_mutex_lock(&st.mu);
    st.srv = NULL;
    pthread_mutex_unlock(&st.mu);
    server_close(srv);            /* stop accepting, cancel the running generation */
    fp_backend_close(backend);
    if (kv.cache && !o.quiet) fprintf(stderr, "serve: saving KV checkpoints%s\n", kv.disk ? "" : " (no disk tier)");
    kv_cli_close(&kv);            /* shutdown checkpoints, then the store */
    if (pool_open && pool_cli_close(&ps, stderr)) rc = rc ? rc : 1;
    tokenizer_close(tok);
    engine_close(e);
    if (token_log) fclose(token_log);
    free(script);
    free(st.nodes);
    pthread_mutex_destroy(&st.mu);
    if (rc == 0 && !o.quiet) fprintf(stderr, "serve: stopped\n");
    return rc;
}
