/* main_apiserve.c — flashpool-apiserve: the HTTP API (OpenAI chat /
 * completions / Responses, Anthropic Messages) over the TEST-ONLY scripted
 * backend, with a real GGUF's tokenizer. Lets the API, its clients and the
 * API test-suite run without a model; the engine-backed server lives in the
 * flashpool binary. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "gguf.h"
#include "server.h"
#include "tokenizer.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void log_line(void *ud, const char *line) {
    (void)ud;
    fprintf(stderr, "apiserve: %s\n", line);
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: flashpool-apiserve --gguf FILE.gguf [options]\n"
            "\n"
            "Serves the HTTP API with a scripted test backend (no model is run): replies\n"
            "are canned text, tool calls and errors chosen by directives in the last user\n"
            "message ([[tool]], [[stop]], [[long N]], [[slow MS]], [[unicode]], [[error]]; see\n"
            "http/backend_scripted.c). Tokens come from FILE's tokenizer, so prompt\n"
            "rendering, usage counts, streaming and tool-call parsing are the real ones.\n"
            "\n"
            "  --gguf FILE          GGUF whose tokenizer to use (required)\n"
            "  --host ADDR          listen address (default 127.0.0.1)\n"
            "  --port N             listen port (default 8000; 0 = any free port)\n"
            "  --port-file PATH     write the bound port to PATH once listening\n"
            "  --api-key KEY        require 'Authorization: Bearer KEY' or 'x-api-key: KEY'\n"
            "  --cors               send Access-Control-Allow-* headers\n"
            "  --ctx N              context size the backend reports (default 8192)\n"
            "  --max-body BYTES     request body limit (default 33554432)\n"
            "  --max-queue N        requests waiting for the engine before 503 (default 16)\n"
            "  --keepalive-ms N     SSE keep-alive interval (default 5000)\n"
            "  --token-delay-ms N   scripted backend: sleep per generated token (default 0)\n"
            "  --prefill-delay-ms N scripted backend: sleep per 64 prompt tokens (default 0)\n"
            "  --think MODE         default thinking mode: none, high, max (default high)\n"
            "  -h, --help           this text\n");
}

static int parse_size(const char *s, size_t *out) {
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end) return -1;
    *out = (size_t)v;
    return 0;
}

int main(int argc, char **argv) {
    server_config cfg;
    server_config_defaults(&cfg);
    fp_scripted_opts so = {0};
    const char *gguf_path = NULL, *port_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t n;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--cors")) { cfg.cors = true; continue; }
        if (!v) { fprintf(stderr, "flashpool-apiserve: %s needs a value (see --help)\n", a); return 2; }
        i++;
        if (!strcmp(a, "--gguf")) gguf_path = v;
        else if (!strcmp(a, "--host")) cfg.host = v;
        else if (!strcmp(a, "--port") && !parse_size(v, &n) && n < 65536) cfg.port = (int)n;
        else if (!strcmp(a, "--port-file")) port_file = v;
        else if (!strcmp(a, "--api-key")) cfg.api_key = v;
        else if (!strcmp(a, "--ctx") && !parse_size(v, &n) && n > 0) so.n_ctx = n;
        else if (!strcmp(a, "--max-body") && !parse_size(v, &n) && n > 0) cfg.max_body_bytes = n;
        else if (!strcmp(a, "--max-queue") && !parse_size(v, &n) && n > 0) cfg.max_queue = n;
        else if (!strcmp(a, "--keepalive-ms") && !parse_size(v, &n) && n > 0) cfg.keepalive_ms = (int)n;
        else if (!strcmp(a, "--token-delay-ms") && !parse_size(v, &n)) so.token_delay_ms = (int)n;
        else if (!strcmp(a, "--prefill-delay-ms") && !parse_size(v, &n)) so.prefill_delay_ms = (int)n;
        else if (!strcmp(a, "--think") && !strcmp(v, "none")) cfg.default_think = CR_THINK_NONE;
        else if (!strcmp(a, "--think") && !strcmp(v, "high")) cfg.default_think = CR_THINK_HIGH;
        else if (!strcmp(a, "--think") && !strcmp(v, "max")) cfg.default_think = CR_THINK_MAX;
        else {
            fprintf(stderr, "flashpool-apiserve: bad option or value: %s %s (see --help)\n", a, v);
            return 2;
        }
    }
    if (!gguf_path) {
        fprintf(stderr, "flashpool-apiserve: --gguf FILE is required (e.g. ../shared/vectors/tiny-s1.gguf)\n");
        return 2;
    }
    char err[512];
    gguf_file *g = gguf_open(gguf_path, err, sizeof err);
    if (!g) { fprintf(stderr, "flashpool-apiserve: %s: %s\n", gguf_path, err); return 1; }
    tokenizer *tok = tokenizer_open(g, err, sizeof err);
    gguf_close(g);
    if (!tok) { fprintf(stderr, "flashpool-apiserve: %s: tokenizer: %s\n", gguf_path, err); return 1; }
    fp_backend *b = fp_backend_scripted_open(tok, &so, err, sizeof err);
    if (!b) { fprintf(stderr, "flashpool-apiserve: %s\n", err); tokenizer_close(tok); return 1; }
    cfg.log = log_line;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    server *s = server_open(&cfg, b, tok, err, sizeof err);
    if (!s) {
        fprintf(stderr, "flashpool-apiserve: %s\n", err);
        fp_backend_close(b);
        tokenizer_close(tok);
        return 1;
    }
    fprintf(stderr, "apiserve: listening on http://%s:%d (scripted backend, ctx %zu)\n", cfg.host,
            server_port(s), b->n_ctx);
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", server_port(s)) < 0 || fclose(f) != 0 || rename(tmp, port_file) != 0) {
            fprintf(stderr, "flashpool-apiserve: cannot write --port-file %s\n", port_file);
            g_stop = 1;
        }
    }
    while (!g_stop) pause();
    fprintf(stderr, "apiserve: shutting down\n");
    server_close(s);
    fp_backend_close(b);
    tokenizer_close(tok);
    return 0;
}
