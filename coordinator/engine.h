/* engine.h — the coordinator's runtime facade: a model, a thread pool, the
 * kernels, an expert executor, and sessions (token history + KV state +
 * last logits). The CLI, the benchmark and the HTTP backend use only this. */
#ifndef FP_ENGINE_H
#define FP_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include "forward.h"

typedef struct fp_engine fp_engine;
typedef struct fp_session fp_session;

typedef struct engine_opts {
    const char *model_path;
    int n_threads;            /* 0 = all cores */
    int prefill_chunk;        /* tokens per layer-major batch; 0 = 256 */
} engine_opts;

fp_engine *engine_open(const engine_opts *o, char *err, size_t errlen);
void engine_close(fp_engine *e);
const model *engine_model(const fp_engine *e);
engine *engine_core(fp_engine *e);
/* Replace the expert executor (the pool installs itself here). */
void engine_set_exec(fp_engine *e, expert_exec x);

/* Memory a session of ctx tokens costs (KV state + scratch of one chunk). */
size_t engine_session_bytes(const fp_engine *e, int ctx);
/* Largest ctx whose session fits in avail bytes. */
int engine_max_ctx(const fp_engine *e, size_t avail);

typedef void (*progress_fn)(void *ud, int done, int total);

fp_session *session_open(fp_engine *e, int ctx, char *err, size_t errlen);
void session_close(fp_session *s);
void session_reset(fp_session *s);
int session_ctx(const fp_session *s);
int session_n_tokens(const fp_session *s);
const int32_t *session_tokens(const fp_session *s);
/* Logits after the last evaluated token (n_vocab floats). */
const float *session_logits(const fp_session *s);
/* Append tokens: prefilled in chunks (layer-major), logits of the last one
 * kept. all_logits (NULL or n × n_vocab) receives every position's logits. */
int session_eval(fp_session *s, const int32_t *tokens, int n, float *all_logits,
                 const fwd_observer *obs, progress_fn progress, void *pud,
                 char *err, size_t errlen);
kv_state *session_kv(fp_session *s);
fp_engine *session_engine(const fp_session *s);
/* Snapshot restore (kv_snapshot.c): after the caller has written the KV state
 * of n tokens into session_kv(s), set the token history and the logits after
 * the last token (n_vocab floats; NULL leaves them zero). -1 if n is outside
 * [0, ctx]. */
int session_set_history(fp_session *s, const int32_t *tokens, int n, const float *logits);

/* Bytes of available memory (MemAvailable), 0 if unknown. */
size_t mem_available_bytes(void);

#endif
