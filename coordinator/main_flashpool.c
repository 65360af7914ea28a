/* main_flashpool.c — the `flashpool` coordinator CLI.
 *
 *   flashpool -m MODEL -p "prompt"        one-shot generation
 *   flashpool -m MODEL                    interactive prompt
 *   flashpool -m MODEL --tokens FILE ...  token-id input (tests, debugging)
 *   flashpool serve -m MODEL ...          the HTTP API server (serve.c)
 *
 * Debug/test outputs write the layouts of ../shared/vectors: per-position
 * logits, prefill-last logits, per-layer HC states and the routing trace. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug_dump.h"
#include "engine.h"
#include "observer_chain.h"
#include "pool_cli.h"
#include "progress.h"
#include "sampler.h"
#include "serve.h"
#include "tokenizer.h"

typedef struct cli {
    const char *model, *prompt, *tokens_file;
    int ctx, threads, max_tokens, decode_mode, chunk;
    sampler_params sp;
    const char *dump_logits, *prefill_logits, *dump_prefix, *dump_positions;
    int dump_trace, quiet;
    pool_cli pool;                 /* --node, --cluster, --placement, --expert-cache-mb, --trace-routing ... */
    const fwd_observer *gen_obs;   /* observer for generated tokens (the routing trace), or NULL */
} cli;

static void usage(FILE *f) {
    fprintf(f,
        "usage: flashpool -m MODEL.gguf [options]\n"
        "       flashpool serve -m MODEL.gguf [options]   HTTP API server (flashpool serve --help)\n"
        "\n"
        "Runs DeepSeek V4 Flash on this machine (the whole model in one process).\n"
        "\n"
        "  -m, --model FILE        GGUF model (required)\n"
        "  -p, --prompt TEXT       one-shot: generate a reply to TEXT and exit\n"
        "                          (without -p and --tokens: interactive prompt)\n"
        "      --tokens FILE       token ids, one per line, instead of a text prompt\n"
        "  -n, --max-tokens N      tokens to generate (default 256; 0 with --tokens: evaluate only)\n"
        "      --ctx N             context size in tokens (default 4096)\n"
        "  -t, --threads N         CPU threads (default: all cores)\n"
        "      --chunk N           prefill batch size (default 256)\n"
        "      --decode            evaluate the prompt one token at a time (default: batched prefill)\n"
        "\n"
        "sampling (defaults as the reference engine):\n"
        "      --temp X            temperature (default 1; 0 = greedy)\n"
        "      --greedy            same as --temp 0\n"
        "      --top-p X           nucleus sampling (default 1 = off)\n"
        "      --top-k N           (default 0 = off)\n"
        "      --min-p X           (default 0.05)\n"
        "      --seed N            (default 0)\n"
        "\n"
        "debug outputs (layouts of ../shared/vectors/README.md):\n"
        "      --dump-logits FILE    logits of every prompt position, [n][vocab] f32\n"
        "      --prefill-logits FILE logits of the last prompt position, [vocab] f32\n"
        "      --dump-prefix P       write P.layers.* (with --dump-positions) and P.trace.* (with --dump-trace)\n"
        "      --dump-positions L    positions for the per-layer dump, e.g. 0-15,64-71\n"
        "      --dump-trace          record experts, weights and indexer rows of every position\n"
        "  -q, --quiet             no progress output\n"
        "  -h, --help              this help\n");
    pool_cli_usage(f);
}

static int parse_args(int argc, char **argv, cli *c) {
    enum { O_TOKENS = 1000, O_CTX, O_CHUNK, O_DECODE, O_TEMP, O_GREEDY, O_TOPP, O_TOPK, O_MINP, O_SEED,
           O_DLOG, O_PLOG, O_DPRE, O_DPOS, O_DTRACE };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'p'},
        {"tokens", required_argument, 0, O_TOKENS}, {"max-tokens", required_argument, 0, 'n'},
        {"ctx", required_argument, 0, O_CTX}, {"threads", required_argument, 0, 't'},
        {"chunk", required_argument, 0, O_CHUNK}, {"decode", no_argument, 0, O_DECODE},
        {"temp", required_argument, 0, O_TEMP}, {"greedy", no_argument, 0, O_GREEDY},
        {"top-p", required_argument, 0, O_TOPP}, {"top-k", required_argument, 0, O_TOPK},
        {"min-p", required_argument, 0, O_MINP}, {"seed", required_argument, 0, O_SEED},
        {"dump-logits", required_argument, 0, O_DLOG}, {"prefill-logits", required_argument, 0, O_PLOG},
        {"dump-prefix", required_argument, 0, O_DPRE}, {"dump-positions", required_argument, 0, O_DPOS},
        {"dump-trace", no_argument, 0, O_DTRACE}, {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'}, POOL_CLI_LONG_OPTIONS, {0, 0, 0, 0},
    };
    memset(c, 0, sizeof(*c));
    c->ctx = 4096;
    c->max_tokens = 256;
    c->sp = sampler_defaults();
    pool_cli_init(&c->pool);
    char perr[256];
    int o;
    while ((o = getopt_long(argc, argv, "m:p:n:t:qh", opts, NULL)) != -1) {
        switch (o) {
        case 'm': c->model = optarg; break;
        case 'p': c->prompt = optarg; break;
        case O_TOKENS: c->tokens_file = optarg; break;
        case 'n': c->max_tokens = atoi(optarg); break;
        case O_CTX: c->ctx = atoi(optarg); break;
        case 't': c->threads = atoi(optarg); break;
        case O_CHUNK: c->chunk = atoi(optarg); break;
        case O_DECODE: c->decode_mode = 1; break;
        case O_TEMP: c->sp.temperature = strtof(optarg, NULL); break;
        case O_GREEDY: c->sp.temperature = 0; break;
        case O_TOPP: c->sp.top_p = strtof(optarg, NULL); break;
        case O_TOPK: c->sp.top_k = atoi(optarg); break;
        case O_MINP: c->sp.min_p = strtof(optarg, NULL); break;
        case O_SEED: c->sp.seed = strtoull(optarg, NULL, 10); break;
        case O_DLOG: c->dump_logits = optarg; break;
        case O_PLOG: c->prefill_logits = optarg; break;
        case O_DPRE: c->dump_prefix = optarg; break;
        case O_DPOS: c->dump_positions = optarg; break;
        case O_DTRACE: c->dump_trace = 1; break;
        case 'q': c->quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        default: {
            const int pr = pool_cli_option(&c->pool, o, optarg, perr, sizeof perr);
            if (pr > 0) break;
            if (pr < 0) fprintf(stderr, "flashpool: %s\n", perr);
            else usage(stderr);
            return -1;
        }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "flashpool: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    if (!c->model) {
        fprintf(stderr, "flashpool: no model given: use -m MODEL.gguf (see --help)\n");
        return -1;
    }
    if (c->ctx < 1 || c->max_tokens < 0 || c->threads < 0 || c->chunk < 0) {
        fprintf(stderr, "flashpool: --ctx, --max-tokens, --threads and --chunk must be positive\n");
        return -1;
    }
    if (c->dump_prefix && !c->dump_positions && !c->dump_trace) {
        fprintf(stderr, "flashpool: --dump-prefix needs --dump-positions and/or --dump-trace\n");
        return -1;
    }
    return 0;
}

static int read_tokens(const char *path, tok_ids *out) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "flashpool: cannot open token file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[64];
    int ln = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        char *end;
        errno = 0;
        long v = strtol(line, &end, 10);
        while (*end == ' ' || *end == '\r' || *end == '\n' || *end == '\t') end++;
        if (end == line || *end || errno || v < 0 || v > INT32_MAX) {
            fprintf(stderr, "flashpool: %s:%d: not a token id: %s", path, ln, line);
            fclose(f);
            return -1;
        }
        if (tok_ids_push(out, (int32_t)v)) {
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

static int write_floats(const char *path, const float *x, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof(float), n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "flashpool: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Generate up to max_tokens after the prompt already in the session; prints text. */
static int generate(fp_session *s, const tokenizer *tok, const cli *c, const model *m, char *err, size_t errlen) {
    sampler smp;
    if (sampler_init(&smp, &c->sp, m->hp.n_vocab)) return snprintf(err, errlen, "out of memory"), -1;
    tok_stream ts = {0};
    char buf[256];
    const double t0 = now_seconds();
    int n = 0;
    for (; n < c->max_tokens; n++) {
        const int32_t id = sampler_sample(&smp, session_logits(s), NULL);
        if (tok && id == tokenizer_eos(tok)) break;
        if (tok) {
            int k = tok_stream_push(&ts, tok, id, buf, sizeof buf);
            if (k > 0) fwrite(buf, 1, (size_t)k, stdout);
        } else {
            printf("%d\n", id);
        }
        fflush(stdout);
        if (session_n_tokens(s) >= session_ctx(s)) break;
        if (session_eval(s, &id, 1, NULL, c->gen_obs, NULL, NULL, err, errlen)) {
            sampler_free(&smp);
            return -1;
        }
    }
    if (tok) {
        int k = tok_stream_flush(&ts, buf, sizeof buf);
        if (k > 0) fwrite(buf, 1, (size_t)k, stdout);
        printf("\n");
    }
    const double dt = now_seconds() - t0;
    if (!c->quiet && n > 0) fprintf(stderr, "flashpool: %d tokens in %.2f s (%.2f tok/s)\n", n, dt, n / dt);
    sampler_free(&smp);
    return 0;
}

/* BOS + <｜User｜> + text + <｜Assistant｜> + </think>: the plain chat form
 * with thinking off (the HTTP server renders full conversations). */
static int render_prompt(const tokenizer *tok, const char *text, tok_ids *ids) {
    const int32_t user = tokenizer_special(tok, "<\xef\xbd\x9cUser\xef\xbd\x9c>");
    const int32_t asst = tokenizer_special(tok, "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>");
    const int32_t endthink = tokenizer_special(tok, "</think>");
    if (user < 0 || asst < 0 || endthink < 0) return -1;
    if (tok_ids_push(ids, tokenizer_bos(tok)) || tok_ids_push(ids, user) ||
        tokenizer_encode(tok, text, strlen(text), ids) || tok_ids_push(ids, asst) || tok_ids_push(ids, endthink))
        return -1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "serve")) return serve_main(argc - 1, argv + 1);
    cli c;
    if (parse_args(argc, argv, &c)) return 2;
    char err[1024];
    progress pg;
    if (!c.quiet) fprintf(stderr, "flashpool: loading %s\n", c.model);
    engine_opts eo = {.model_path = c.model, .n_threads = c.threads, .prefill_chunk = c.chunk};
    fp_engine *e = engine_open(&eo, err, sizeof err);
    if (!e) {
        fprintf(stderr, "flashpool: %s\n", err);
        return 1;
    }
    pool_setup ps;
    if (pool_cli_apply(&c.pool, e, stderr, &ps, err, sizeof err)) {
        fprintf(stderr, "flashpool: %s\n", err);
        pool_cli_close(&ps, stderr);
        engine_close(e);
        return 1;
    }
    c.gen_obs = pool_cli_observer(&ps);
    const model *m = engine_model(e);
    const size_t sess = engine_session_bytes(e, c.ctx), avail = mem_available_bytes();
    if (!c.quiet)
        fprintf(stderr, "flashpool: %d layers, %d experts/layer; weights mapped %.1f MiB (dense %.1f, experts %.1f); "
                        "context %d: KV state + scratch %.1f MiB\n",
                m->hp.n_layer, m->hp.n_expert, (m->dense_bytes + m->expert_bytes) / 1048576.0,
                m->dense_bytes / 1048576.0, m->expert_bytes / 1048576.0, c.ctx, sess / 1048576.0);
    if (avail && sess > avail) {
        fprintf(stderr, "flashpool: a %d-token context needs %.1f MiB but only %.1f MiB is available; "
                        "the largest context that fits is %d (use --ctx)\n",
                c.ctx, sess / 1048576.0, avail / 1048576.0, engine_max_ctx(e, avail));
        pool_cli_close(&ps, stderr);
        engine_close(e);
        return 1;
    }
    tokenizer *tok = NULL;
    if (!c.tokens_file) {
        tok = tokenizer_open(m->gguf, err, sizeof err);
        if (!tok) {
            fprintf(stderr, "flashpool: tokenizer: %s\n", err);
            pool_cli_close(&ps, stderr);
            engine_close(e);
            return 1;
        }
    }
    fp_session *s = session_open(e, c.ctx, err, sizeof err);
    int rc = 1;
    tok_ids ids = {0};
    float *all = NULL;
    debug_dump *dd = NULL;
    if (!s) {
        fprintf(stderr, "flashpool: %s\n", err);
        goto out;
    }
    if (c.tokens_file) {
        if (read_tokens(c.tokens_file, &ids)) goto out;
    } else if (c.prompt) {
        if (render_prompt(tok, c.prompt, &ids)) {
            fprintf(stderr, "flashpool: this model's vocabulary lacks the DeepSeek chat tokens\n");
            goto out;
        }
    } else {
        /* Interactive: one conversation turn per line; the session keeps the history. */
        char line[8192];
        fprintf(stderr, "flashpool: interactive; type a message, empty line or EOF to quit\n");
        for (;;) {
            fprintf(stderr, "> ");
            if (!fgets(line, sizeof line, stdin) || line[0] == '\n') break;
            line[strcspn(line, "\n")] = 0;
            ids.n = 0;
            if (session_n_tokens(s) == 0) {
                if (render_prompt(tok, line, &ids)) goto out;
            } else {
                const int32_t user = tokenizer_special(tok, "<\xef\xbd\x9cUser\xef\xbd\x9c>");
                const int32_t asst = tokenizer_special(tok, "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>");
                const int32_t endthink = tokenizer_special(tok, "</think>");
                if (tok_ids_push(&ids, tokenizer_eos(tok)) || tok_ids_push(&ids, user) ||
                    tokenizer_encode(tok, line, strlen(line), &ids) || tok_ids_push(&ids, asst) ||
                    tok_ids_push(&ids, endthink))
                    goto out;
            }
            if (session_eval(s, ids.ids, (int)ids.n, NULL, c.gen_obs, NULL, NULL, err, sizeof err) ||
                generate(s, tok, &c, m, err, sizeof err)) {
                fprintf(stderr, "flashpool: %s\n", err);
                session_reset(s);
            }
        }
        rc = 0;
        goto out;
    }
    if (ids.n == 0) {
        fprintf(stderr, "flashpool: empty prompt\n");
        goto out;
    }
    if ((int)ids.n >= c.ctx + (c.max_tokens == 0)) {
        fprintf(stderr, "flashpool: the prompt has %zu tokens but the context is %d; raise --ctx\n", ids.n, c.ctx);
        goto out;
    }
    fwd_observer obs = {0};
    if (c.dump_prefix) {
        dd = debug_dump_open(m, c.dump_positions, (int)ids.n, c.dump_trace, err, sizeof err);
        if (!dd) {
            fprintf(stderr, "flashpool: %s\n", err);
            goto out;
        }
        for (size_t i = 0; i < ids.n; i++) debug_dump_set_token(dd, (int64_t)i, ids.ids[i]);
        obs = debug_dump_observer(dd);
    }
    /* The routing trace rides along with the debug dump's observer. */
    observer_chain chain;
    if (c.gen_obs) obs = observer_chain_make(&chain, c.dump_prefix ? &obs : NULL, c.gen_obs);
    const fwd_observer *obs_p = c.dump_prefix || c.gen_obs ? &obs : NULL;
    const size_t V = (size_t)m->hp.n_vocab;
    if (c.dump_logits && !(all = malloc(ids.n * V * sizeof(float)))) {
        fprintf(stderr, "flashpool: out of memory for %zu positions of logits\n", ids.n);
        goto out;
    }
    if (!c.quiet) progress_begin(&pg, c.decode_mode ? "decode" : "prefill");
    const double t0 = now_seconds();
    if (c.decode_mode) {
        for (size_t i = 0; i < ids.n; i++) {
            if (session_eval(s, &ids.ids[i], 1, all ? all + i * V : NULL, obs_p,
                             NULL, NULL, err, sizeof err)) {
                fprintf(stderr, "\nflashpool: %s\n", err);
                goto out;
            }
            if (!c.quiet) progress_update(&pg, (int64_t)i + 1, (int64_t)ids.n);
        }
    } else if (session_eval(s, ids.ids, (int)ids.n, all, obs_p,
                            c.quiet ? NULL : progress_cb, &pg, err, sizeof err)) {
        fprintf(stderr, "\nflashpool: %s\n", err);
        goto out;
    }
    if (!c.quiet) {
        progress_end(&pg);
        const double dt = now_seconds() - t0;
        fprintf(stderr, "flashpool: %zu prompt tokens in %.2f s (%.1f tok/s)\n", ids.n, dt, ids.n / dt);
    }
    if (c.dump_logits && write_floats(c.dump_logits, all, ids.n * V)) goto out;
    if (c.prefill_logits && write_floats(c.prefill_logits, session_logits(s), V)) goto out;
    if (dd && debug_dump_write(dd, c.dump_prefix, err, sizeof err)) {
        fprintf(stderr, "flashpool: %s\n", err);
        goto out;
    }
    if (c.max_tokens > 0 && generate(s, tok, &c, m, err, sizeof err)) {
        fprintf(stderr, "flashpool: %s\n", err);
        goto out;
    }
    rc = 0;
out:
    free(all);
    free(ids.ids);
    debug_dump_close(dd);
    session_close(s);
    tokenizer_close(tok);
    if (pool_cli_close(&ps, stderr)) rc = 1;
    engine_close(e);
    return rc;
}
