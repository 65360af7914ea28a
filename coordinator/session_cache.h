/* session_cache.h — several live sessions under a RAM budget, with prefix
 * reuse, in-RAM rewind points, and the disk store as the second tier.
 *
 * Owns the sessions (and their rewind points) and the decision, for each
 * request, of which state to start from:
 *
 *   memory         a live session whose tokens are all a prefix of the
 *                  request: only the new suffix is evaluated;
 *   memory-fork    a live session shares a prefix with the request, and it
 *                  holds a rewind point inside that prefix: a new session is
 *                  made from the point (the original stays intact);
 *   memory-rewind  the same when no session slot is free: the donor itself
 *                  is rewound (saved to disk first when it is long enough);
 *   disk           the longest checkpoint on disk beats every live option;
 *   none           cold prefill.
 *
 * Why rewind points: compressed rows and compressor frontiers cannot be
 * rewound in place (a ring slot, a frontier row is overwritten by later
 * tokens), so a session keeps a few TAIL snapshots (kv_snapshot.h): raw
 * window + frontiers + logits, a size independent of the context length. A
 * TAIL snapshot plus the session's own (prefix-stable) compressed rows is the
 * exact state at that point. They are taken at the end of every prompt (so a
 * regenerated answer, or a client replaying history without the hidden
 * reasoning, rewinds to where the prompt ended) and at the cold-save anchor
 * (so another conversation sharing the system prompt forks from it).
 *
 * Sessions are evicted least-recently-used when a new one is needed and the
 * budget is full; an evicted session is first saved to disk (reason evict)
 * if it has >= policy.min_tokens tokens. Saves follow the reference policy:
 * cold (cache miss; prefill stops at the cold length, saves, continues),
 * continued (every policy step tokens while growing), evict, shutdown.
 *
 * Usage from the HTTP backend (one request):
 *   s = session_cache_acquire(c, prompt, n, &hit, err, len);   // busy now
 *   session_cache_prefill(c, s, prompt, n, &progress, err, len);
 *   loop: sample from session_logits(s); session_cache_extend(c, s, &tok, 1, ...);
 *   session_cache_release(c, s, ok);
 * Thread-safe: each acquired session belongs to its caller until released. */
#ifndef FP_SESSION_CACHE_H
#define FP_SESSION_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "engine.h"
#include "kv_disk.h"

typedef struct session_cache session_cache;

typedef struct session_cache_opts {
    int ctx;                   /* tokens per session (--ctx) */
    uint64_t ram_bytes;        /* --kv-ram-mb: sessions + rewind points; 0 = one session */
    int max_sessions;          /* also cap the count; 0 = the budget decides */
    int rewind_points;         /* TAIL snapshots kept per session; 0 = off (3) */
    int rewind_min_tokens;     /* no rewind point for shorter prompts (64) */
    int cancel_chunk;          /* a cancellable prefill polls every this many tokens (256) */
    kv_disk *disk;             /* second tier, not owned; NULL = RAM only */
    kv_policy policy;
    const fwd_observer *obs;   /* passed to every evaluation (routing trace); NULL = none */
    kv_log_fn log;
    void *log_ud;
} session_cache_opts;

void session_cache_opts_defaults(session_cache_opts *o);

typedef struct sc_hit {
    int n_cached;              /* request tokens already evaluated in the session */
    const char *source;        /* "memory", "memory-fork", "memory-rewind", "disk", "none" */
} sc_hit;

typedef struct session_cache_stats {
    int sessions, busy, max_sessions;
    uint64_t ram_used, ram_budget, per_session_bytes;
    uint64_t hit_memory, hit_fork, hit_rewind, hit_disk, miss, evictions;
    uint64_t tokens_cached, tokens_evaluated, saves;
} session_cache_stats;

/* RAM one session of ctx tokens costs, rewind points included. */
uint64_t session_cache_session_bytes(fp_engine *e, int ctx, int rewind_points);

/* Fails (err) if the budget cannot hold one session of o->ctx tokens. */
session_cache *session_cache_open(fp_engine *e, const session_cache_opts *o, char *err, size_t errlen);
/* Saves every session with >= min tokens to disk (reason shutdown), then
 * frees them. Call after every acquired session was released. */
void session_cache_close(session_cache *c);

/* A session for this prompt, holding hit->n_cached of its first tokens
 * (0 <= n_cached <= n; when n_cached == n, session_logits is already the
 * prediction after the prompt). NULL + err when n is 0 or > ctx, or when
 * every slot is busy. */
fp_session *session_cache_acquire(session_cache *c, const int32_t *tokens, int n, sc_hit *hit, char *err,
                                  size_t errlen);
/* Progress and cancellation of a prefill. All fields may be NULL. */
typedef struct sc_progress {
    progress_fn progress;      /* (ud, done, total) of the tokens being evaluated */
    int (*cancelled)(void *ud);/* polled every opts.cancel_chunk tokens; nonzero = stop */
    void *ud;
} sc_progress;

/* Evaluate the rest of the prompt (the session must hold a prefix of it),
 * saving checkpoints as the policy says; leaves a rewind point at n.
 * Returns 0, -1 on error (err; the session is then empty), or 1 when
 * cancelled: the session holds a valid, shorter prefix of the prompt, which
 * stays cached if released with ok = 1 (a retried request resumes there). */
int session_cache_prefill(session_cache *c, fp_session *s, const int32_t *tokens, int n, const sc_progress *p,
                          char *err, size_t errlen);
/* Append tokens (decode), with continued saves at the policy step. */
int session_cache_extend(session_cache *c, fp_session *s, const int32_t *tokens, int n, char *err,
                         size_t errlen);
/* Give the session back. ok = 0 (error, cancelled mid-evaluation) drops its
 * state; otherwise it stays live for the next request. */
void session_cache_release(session_cache *c, fp_session *s, int ok);

void session_cache_stats_get(session_cache *c, session_cache_stats *st);

#endif
