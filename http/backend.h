/* backend.h — the generation backend the HTTP server drives. The server owns
 * everything before token ids (parsing, rendering, tokenizing) and after them
 * (decoding, reasoning/answer split, DSML tool calls, stop sequences, API
 * events); the backend owns only "prompt ids in, sampled ids out".
 *
 * Threading contract: the server calls generate() from ONE engine worker
 * thread, one request at a time, so a backend needs no locking of its own
 * for this. All callbacks run on that same thread, synchronously, inside
 * generate(). The backend may keep state between calls (live KV sessions,
 * prefix caches): that is what cached_tokens reports.
 *
 * Implementations: the real engine (coordinator, by the engine team) and
 * backend_scripted.c (tests: scripted tokens, no model). */
#ifndef FP_BACKEND_H
#define FP_BACKEND_H

#include <stddef.h>
#include <stdint.h>

/* What the server wants after each token. */
typedef enum fp_tok_action {
    FP_TOK_CONTINUE = 0,   /* sample the next token with the request's sampler */
    FP_TOK_GREEDY = 1,     /* sample the next token greedily (inside DSML syntax) */
    FP_TOK_STOP = 2,       /* stop now: finish = FP_FINISH_STOP (stop sequence,
                              tool-call block closed) */
} fp_tok_action;

typedef enum fp_finish {
    FP_FINISH_STOP = 0,    /* a stop token (EOS) was sampled, or on_token said STOP */
    FP_FINISH_LENGTH,      /* max_tokens reached or the context is full */
    FP_FINISH_CANCEL,      /* cancelled() returned nonzero (client went away) */
    FP_FINISH_ERROR,       /* failure; fp_gen_result.error says why */
} fp_finish;

typedef struct fp_sampling {
    float temperature;     /* <= 0: greedy */
    float top_p;           /* (0,1]; 1 = off */
    float min_p;           /* 0 = off; relative to the best token */
    int top_k;             /* 0 = off */
    uint64_t seed;         /* always set by the server (random when the client gave none) */
} fp_sampling;

typedef struct fp_gen_request {
    const int32_t *prompt;     /* full prompt token ids (BOS first) */
    size_t n_prompt;
    fp_sampling sampling;
    int max_tokens;            /* > 0; the server already clamped it to ctx - n_prompt */
    const int32_t *stop_ids;   /* tokens that end generation (EOS); not reported via on_token */
    size_t n_stop_ids;
    const char *cache_hint;    /* optional conversation key (prompt_cache_key, session
                                  header) a backend may use to pick a live session; may be NULL */
} fp_gen_request;

typedef struct fp_gen_callbacks {
    void *ud;
    /* Every sampled token except stop tokens, in order. logprob is the
     * token's log-probability under the sampling distribution (NAN if the
     * backend does not compute it). The return value steers the next step. */
    fp_tok_action (*on_token)(void *ud, int32_t id, float logprob);
    /* Prefill progress, called at least once per prefill chunk (done of total
     * prompt tokens still to evaluate). May be NULL. */
    void (*on_prefill)(void *ud, size_t done, size_t total);
    /* Polled by the backend between prefill chunks and decode steps; nonzero
     * means abandon the request and return FP_FINISH_CANCEL. May be NULL. */
    int (*cancelled)(void *ud);
} fp_gen_callbacks;

typedef struct fp_gen_result {
    fp_finish finish;
    size_t prompt_tokens;      /* tokens of the prompt as evaluated */
    size_t cached_tokens;      /* of those, reused from earlier state (no compute) */
    size_t completion_tokens;  /* sampled tokens, stop token excluded */
    char error[256];           /* FP_FINISH_ERROR only */
} fp_gen_result;

typedef struct fp_backend fp_backend;

typedef struct fp_backend_ops {
    /* Runs one request to completion. Returns 0 when the request ran (any
     * finish, including ERROR after partial output), -1 if it could not start
     * (result->error set, finish = ERROR). */
    int (*generate)(fp_backend *b, const fp_gen_request *req, const fp_gen_callbacks *cb,
                    fp_gen_result *result);
    void (*close)(fp_backend *b);
} fp_backend_ops;

struct fp_backend {
    const fp_backend_ops *ops;
    void *impl;                /* backend's own state */
    size_t n_ctx;              /* context size in tokens (prompt + output must fit) */
    const char *model_id;      /* id reported by /v1/models, e.g. "deepseek-v4-flash" */
};

static inline void fp_backend_close(fp_backend *b) {
    if (b && b->ops && b->ops->close) b->ops->close(b);
}

/* ---- test backend (backend_scripted.c) ---------------------------------- */

struct tokenizer;

typedef struct fp_scripted_opts {
    size_t n_ctx;              /* reported context size (default 8192) */
    int token_delay_ms;        /* sleep per generated token (streaming tests) */
    int prefill_delay_ms;      /* sleep per prefill chunk of 64 tokens */
} fp_scripted_opts;

/* A backend that ignores the model and replays scripted text, tokenized with
 * the given tokenizer (control strings as control tokens). The script is
 * picked from the prompt's text; see backend_scripted.c for the directives. */
fp_backend *fp_backend_scripted_open(const struct tokenizer *t, const fp_scripted_opts *o,
                                     char *err, size_t errlen);

#endif
