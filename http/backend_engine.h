/* backend_engine.h — the production generation backend: the HTTP server's
 * fp_backend (backend.h) over the real engine through the session cache
 * (coordinator/session_cache.h), so prompts reuse live or on-disk KV state
 * and only the new suffix is evaluated.
 *
 * One request: acquire the session that best matches the prompt, prefill the
 * rest (progress and cancellation mapped to the server's callbacks), then
 * sample / evaluate one token at a time until a stop id, on_token's STOP,
 * max_tokens or a full context; release the session (it stays live).
 *
 * TEST-ONLY: a scripted token source (test_script) replaces the sampler's
 * choices for the next requests while the engine still evaluates every
 * token, so tests can make the model "emit" a DSML tool call and everything
 * after the sampler runs the production path. Never set it in production. */
#ifndef FP_BACKEND_ENGINE_H
#define FP_BACKEND_ENGINE_H

#include <stdint.h>
#include <stdio.h>

#include "backend.h"
#include "engine.h"
#include "session_cache.h"
#include "tokenizer.h"

typedef struct fp_engine_backend_opts {
    fp_engine *engine;          /* not owned */
    session_cache *cache;       /* not owned; sessions of n_ctx tokens */
    const tokenizer *tok;       /* not owned; needed for test_script */
    size_t n_ctx;
    const char *model_id;       /* default "deepseek-v4-flash" */
    /* TEST-ONLY: replies separated by lines holding exactly "%%"; request k
     * (counted from open) gets reply k while any remain, then the sampler
     * takes over again. The seven chat control strings become control
     * tokens. A reply ends as if EOS was sampled. NULL = off. */
    const char *test_script;
    FILE *token_log;            /* debug: "tokens prompt=[..] output=[..]" per request; NULL = off */
    /* Called on the engine worker after every request (the only thread that
     * touches the engine then): e.g. to snapshot executor statistics that are
     * not safe to read while it runs. NULL = none. */
    void (*after_request)(void *ud);
    void *after_ud;
} fp_engine_backend_opts;

typedef struct fp_engine_backend_stats {
    uint64_t requests, errors, cancelled;
    uint64_t prompt_tokens, cached_tokens, evaluated_tokens, completion_tokens;
    double prefill_seconds, decode_seconds;
    double last_prefill_tok_s;  /* rate of the last request that evaluated prompt tokens */
    double last_decode_tok_s;   /* rate of the last request that generated tokens */
    int scripted_left;          /* TEST-ONLY replies not used yet */
} fp_engine_backend_stats;

fp_backend *fp_backend_engine_open(const fp_engine_backend_opts *o, char *err, size_t errlen);
/* Counters so far; safe to call from any thread while generate() runs. */
void fp_backend_engine_stats(fp_backend *b, fp_engine_backend_stats *st);

#endif
