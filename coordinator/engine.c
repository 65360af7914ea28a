/* engine.c — model + threads + kernels + expert executor, and sessions on top. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "expert_exec_local.h"

struct fp_engine {
    model *m;
    threadpool *tp;
    expert_exec_local *local;
    engine core;
    int prefill_chunk;
};

struct fp_session {
    fp_engine *e;
    kv_state *kv;
    int ctx;
    int32_t *tokens;
    int n_tokens;
    float *logits;
};

fp_engine *engine_open(const engine_opts *o, char *err, size_t errlen) {
    fp_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->m = model_open(o->model_path, err, errlen);
    if (!e->m) goto bad;
    int nt = o->n_threads > 0 ? o->n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (nt < 1) nt = 1;
    e->tp = threadpool_open(nt);
    if (!e->tp) {
        snprintf(err, errlen, "cannot start %d threads", nt);
        goto bad;
    }
    const quant_kernels *k = quant_kernels_best();
    e->local = expert_exec_local_open(e->m, e->tp, k);
    if (!e->local) {
        snprintf(err, errlen, "out of memory");
        goto bad;
    }
    e->core.m = e->m;
    e->core.lc.tp = e->tp;
    e->core.lc.k = k;
    e->core.exec = expert_exec_local_iface(e->local);
    e->prefill_chunk = o->prefill_chunk > 0 ? o->prefill_chunk : 256;
    return e;
bad:
    engine_close(e);
    return NULL;
}

void engine_close(fp_engine *e) {
    if (!e) return;
    expert_exec_local_close(e->local);
    threadpool_close(e->tp);
    model_close(e->m);
    free(e);
}

const model *engine_model(const fp_engine *e) { return e->m; }
engine *engine_core(fp_engine *e) { return &e->core; }
void engine_set_exec(fp_engine *e, expert_exec x) { e->core.exec = x; }

/* Scratch of one prefill chunk, per token: the forward pass's batch buffers. */
static size_t chunk_scratch_bytes(const model_hparams *hp, int chunk) {
    const size_t E = hp->n_embd, QD = (size_t)hp->n_head * hp->head_dim;
    const size_t per_tok = 4 * (3 * 4 * E + 2 * E + 2 * QD + (size_t)hp->n_expert_used * E + 2 * (size_t)hp->n_ff +
                                4 * (size_t)hp->head_dim + 2 * (size_t)hp->q_lora + 2 * E);
    return per_tok * (size_t)chunk;
}

size_t engine_session_bytes(const fp_engine *e, int ctx) {
    const model_hparams *hp = &e->m->hp;
    const int chunk = ctx < e->prefill_chunk ? ctx : e->prefill_chunk;
    return kv_state_bytes(hp, ctx) + chunk_scratch_bytes(hp, chunk) + (size_t)ctx * sizeof(int32_t) +
           (size_t)hp->n_vocab * sizeof(float);
}

int engine_max_ctx(const fp_engine *e, size_t avail) {
    int lo = 0, hi = 1 << 24;
    while (lo < hi) {
        const int mid = lo + (hi - lo + 1) / 2;
        if (engine_session_bytes(e, mid) <= avail) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

size_t mem_available_bytes(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %zu kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

fp_session *session_open(fp_engine *e, int ctx, char *err, size_t errlen) {
    if (ctx < 1) {
        snprintf(err, errlen, "context size must be at least 1 (got %d)", ctx);
        return NULL;
    }
    fp_session *s = calloc(1, sizeof(*s));
    if (!s) goto oom;
    s->e = e;
    s->ctx = ctx;
    s->kv = kv_state_open(&e->m->hp, ctx);
    s->tokens = malloc((size_t)ctx * sizeof(int32_t));
    s->logits = calloc((size_t)e->m->hp.n_vocab, sizeof(float));
    if (!s->kv || !s->tokens || !s->logits) goto oom;
    return s;
oom:
    snprintf(err, errlen, "out of memory for a %d-token session (%.1f MiB)", ctx,
             engine_session_bytes(e, ctx) / 1048576.0);
    session_close(s);
    return NULL;
}

void session_close(fp_session *s) {
    if (!s) return;
    kv_state_close(s->kv);
    free(s->tokens);
    free(s->logits);
    free(s);
}

void session_reset(fp_session *s) {
    kv_state_reset(s->kv);
    s->n_tokens = 0;
}

int session_ctx(const fp_session *s) { return s->ctx; }
int session_n_tokens(const fp_session *s) { return s->n_tokens; }
const int32_t *session_tokens(const fp_session *s) { return s->tokens; }
const float *session_logits(const fp_session *s) { return s->logits; }
kv_state *session_kv(fp_session *s) { return s->kv; }
fp_engine *session_engine(const fp_session *s) { return s->e; }

int session_set_history(fp_session *s, const int32_t *tokens, int n, const float *logits) {
    if (n < 0 || n > s->ctx) return -1;
    if (n) memmove(s->tokens, tokens, (size_t)n * sizeof(int32_t));
    s->n_tokens = n;
    const size_t V = (size_t)s->e->m->hp.n_vocab;
    if (logits) memmove(s->logits, logits, V * sizeof(float));
    else memset(s->logits, 0, V * sizeof(float));
    return 0;
}

int session_eval(fp_session *s, const int32_t *tokens, int n, float *all_logits,
                 const fwd_observer *obs, progress_fn progress, void *pud,
                 char *err, size_t errlen) {
    if (n <= 0) return 0;
    if (s->n_tokens + n > s->ctx) {
        snprintf(err, errlen, "prompt does not fit: %d tokens in the session + %d new > context %d (raise --ctx)",
                 s->n_tokens, n, s->ctx);
        return -1;
    }
    const int V = s->e->m->hp.n_vocab;
    for (int done = 0; done < n;) {
        const int c = n - done < s->e->prefill_chunk ? n - done : s->e->prefill_chunk;
        float *dst = all_logits ? all_logits + (size_t)done * V : s->logits;
        if (forward_tokens(&s->e->core, s->kv, s->n_tokens, tokens + done, c, dst, all_logits != NULL, obs,
                           err, errlen)) {
            /* A half-applied chunk leaves the KV state inconsistent: start over. */
            session_reset(s);
            return -1;
        }
        memcpy(s->tokens + s->n_tokens, tokens + done, (size_t)c * sizeof(int32_t));
        s->n_tokens += c;
        done += c;
        if (progress) progress(pud, done, n);
    }
    if (all_logits) memcpy(s->logits, all_logits + (size_t)(n - 1) * V, (size_t)V * sizeof(float));
    return 0;
}
