/* backend_engine.c — fp_backend over the session cache and the engine (see
 * backend_engine.h): prefix reuse, prefill with progress/cancel, the decode
 * loop with the request's sampler, logprobs, and the TEST-ONLY scripted
 * token source. */
#include "clock.h"
#include "backend_engine.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_render.h"
#include "model.h"
#include "sampler.h"

typedef struct script_reply {
    int32_t *ids;
    size_t n;
} script_reply;

typedef struct engine_backend {
    fp_engine_backend_opts o;
    int n_vocab;
    script_reply *replies;      /* TEST-ONLY scripted replies */
    size_t n_replies, next_reply;
    pthread_mutex_t mu;         /* guards st (read by the metrics thread) */
    fp_engine_backend_stats st;
} engine_backend;

/* log softmax(logits)[id], in double for the sum. */
static float log_prob_of(const float *logits, int n, int32_t id) {
    float mx = logits[0];
    for (int i = 1; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)(logits[i] - mx));
    return (float)((double)(logits[id] - mx) - log(sum));
}

/* Tokenizes one scripted reply: the chat control strings become control
 * tokens, everything else is plain BPE text. */
static int encode_reply(const tokenizer *t, const char *text, size_t n, tok_ids *out) {
    size_t i = 0, start = 0;
    while (i < n) {
        int hit = -1;
        for (int k = 0; k < CR_SP_COUNT; k++) {
            const char *s = cr_special_str((cr_special)k);
            const size_t l = strlen(s);
            if (l <= n - i && memcmp(text + i, s, l) == 0) { hit = k; break; }
        }
        if (hit < 0) { i++; continue; }
        const char *s = cr_special_str((cr_special)hit);
        const int32_t id = tokenizer_special(t, s);
        if (id < 0) return -1;
        if (i > start && tokenizer_encode(t, text + start, i - start, out) < 0) return -1;
        if (tok_ids_push(out, id) < 0) return -1;
        i += strlen(s);
        start = i;
    }
    if (n > start && tokenizer_encode(t, text + start, n - start, out) < 0) return -1;
    return 0;
}

static int load_script(engine_backend *eb, const char *text, char *err, size_t errlen) {
    if (!eb->o.tok) return snprintf(err, errlen, "the test script needs a tokenizer"), -1;
    const char *p = text;
    for (;;) {
        /* A reply runs to the next line holding exactly "%%" (or the end). */
        const char *sep = NULL, *q = p;
        while ((q = strstr(q, "%%")) != NULL) {
            const bool bol = q == text || q[-1] == '\n';
            const bool eol = q[2] == '\n' || q[2] == 0;
            if (bol && eol) { sep = q; break; }
            q += 2;
        }
        size_t len = sep ? (size_t)(sep - p) : strlen(p);
        if (len && p[len - 1] == '\n') len--;   /* the separator's line break */
        tok_ids ids = {0};
        if (encode_reply(eb->o.tok, p, len, &ids) < 0) {
            free(ids.ids);
            return snprintf(err, errlen, "cannot tokenize the test script (control token missing?)"), -1;
        }
        script_reply *r = realloc(eb->replies, (eb->n_replies + 1) * sizeof *r);
        if (!r) { free(ids.ids); return snprintf(err, errlen, "out of memory"), -1; }
        eb->replies = r;
        eb->replies[eb->n_replies++] = (script_reply){ids.ids, ids.n};
        if (!sep) break;
        p = sep + 2;
        if (*p == '\n') p++;
        if (!*p) break;
    }
    return 0;
}

typedef struct prefill_bridge {
    const fp_gen_callbacks *cb;
} prefill_bridge;

static void bridge_progress(void *ud, int done, int total) {
    const prefill_bridge *pb = ud;
    if (pb->cb->on_prefill) pb->cb->on_prefill(pb->cb->ud, (size_t)done, (size_t)total);
}

static int bridge_cancelled(void *ud) {
    const prefill_bridge *pb = ud;
    return pb->cb->cancelled ? pb->cb->cancelled(pb->cb->ud) : 0;
}

static void log_ids(FILE *f, const char *name, const int32_t *ids, size_t n) {
    fprintf(f, " %s=[", name);
    for (size_t i = 0; i < n; i++) fprintf(f, i ? ",%d" : "%d", ids[i]);
    fputc(']', f);
}

static bool is_stop(const fp_gen_request *req, int32_t id) {
    for (size_t i = 0; i < req->n_stop_ids; i++)
        if (req->stop_ids[i] == id) return true;
    return false;
}

static int engine_generate(fp_backend *b, const fp_gen_request *req, const fp_gen_callbacks *cb,
                           fp_gen_result *res) {
    engine_backend *eb = b->impl;
    memset(res, 0, sizeof *res);
    res->prompt_tokens = req->n_prompt;
    pthread_mutex_lock(&eb->mu);
    eb->st.requests++;
    pthread_mutex_unlock(&eb->mu);
    char err[256] = "";
    if (req->n_prompt == 0 || req->n_prompt >= b->n_ctx) {
        res->finish = FP_FINISH_ERROR;
        snprintf(res->error, sizeof res->error, "prompt of %zu tokens does not fit the context of %zu tokens",
                 req->n_prompt, b->n_ctx);
        goto fail_early;
    }
    sc_hit hit;
    fp_session *s = session_cache_acquire(eb->o.cache, req->prompt, (int)req->n_prompt, &hit, err, sizeof err);
    if (!s) {
        res->finish = FP_FINISH_ERROR;
        snprintf(res->error, sizeof res->error, "no KV session: %.200s", err);
        goto fail_early;
    }
    res->cached_tokens = (size_t)hit.n_cached;

    /* TEST-ONLY: this request's scripted reply, if any are left. */
    const script_reply *forced = NULL;
    pthread_mutex_lock(&eb->mu);
    if (eb->next_reply < eb->n_replies) forced = &eb->replies[eb->next_reply++];
    pthread_mutex_unlock(&eb->mu);

    const double t0 = fp_now_s();
    prefill_bridge pb = {cb};
    sc_progress pr = {bridge_progress, bridge_cancelled, &pb};
    const int prc = session_cache_prefill(eb->o.cache, s, req->prompt, (int)req->n_prompt, &pr, err, sizeof err);
    const double t1 = fp_now_s();
    pthread_mutex_lock(&eb->mu);
    eb->st.prompt_tokens += req->n_prompt;
    eb->st.cached_tokens += res->cached_tokens;
    eb->st.evaluated_tokens += req->n_prompt - res->cached_tokens;
    eb->st.prefill_seconds += t1 - t0;
    if (prc == 0 && req->n_prompt > res->cached_tokens && t1 > t0)
        eb->st.last_prefill_tok_s = (double)(req->n_prompt - res->cached_tokens) / (t1 - t0);
    pthread_mutex_unlock(&eb->mu);
    if (prc < 0) {
        session_cache_release(eb->o.cache, s, 0);
        res->finish = FP_FINISH_ERROR;
        snprintf(res->error, sizeof res->error, "prefill failed: %.200s", err);
        goto fail_ran;
    }
    if (prc > 0) {
        session_cache_release(eb->o.cache, s, 1);   /* the evaluated prefix stays cached */
        res->finish = FP_FINISH_CANCEL;
        pthread_mutex_lock(&eb->mu);
        eb->st.cancelled++;
        pthread_mutex_unlock(&eb->mu);
        if (eb->o.after_request) eb->o.after_request(eb->o.after_ud);
        return 0;
    }

    sampler smp;
    sampler_params sp = {
        .temperature = req->sampling.temperature,
        .top_p = req->sampling.top_p > 0 ? req->sampling.top_p : 1.0f,
        .min_p = req->sampling.min_p,
        .top_k = req->sampling.top_k,
        .seed = req->sampling.seed,
    };
    if (sampler_init(&smp, &sp, eb->n_vocab)) {
        session_cache_release(eb->o.cache, s, 1);
        res->finish = FP_FINISH_ERROR;
        snprintf(res->error, sizeof res->error, "out of memory for the sampler");
        goto fail_ran;
    }
    tok_ids out = {0};
    bool greedy = false, ok = true;
    res->finish = FP_FINISH_STOP;
    for (;;) {
        if (cb->cancelled && cb->cancelled(cb->ud)) { res->finish = FP_FINISH_CANCEL; break; }
        if ((int)res->completion_tokens >= req->max_tokens) { res->finish = FP_FINISH_LENGTH; break; }
        const float *logits = session_logits(s);
        int32_t id;
        float lp;
        if (forced) {
            if (res->completion_tokens >= forced->n) break;   /* as if EOS was sampled */
            id = forced->ids[res->completion_tokens];
            lp = log_prob_of(logits, eb->n_vocab, id);
        } else if (greedy || sp.temperature <= 0) {
            id = sampler_argmax(logits, eb->n_vocab);
            lp = log_prob_of(logits, eb->n_vocab, id);
        } else {
            float p = 1.0f;
            id = sampler_sample(&smp, logits, &p);
            lp = p > 0 ? logf(p) : -INFINITY;
        }
        if (is_stop(req, id)) break;
        res->completion_tokens++;
        if (eb->o.token_log) tok_ids_push(&out, id);
        const fp_tok_action a = cb->on_token ? cb->on_token(cb->ud, id, lp) : FP_TOK_CONTINUE;
        if (a == FP_TOK_STOP) break;
        greedy = a == FP_TOK_GREEDY;
        if ((int)res->completion_tokens >= req->max_tokens) { res->finish = FP_FINISH_LENGTH; break; }
        if (session_n_tokens(s) >= session_ctx(s)) { res->finish = FP_FINISH_LENGTH; break; }
        if (session_cache_extend(eb->o.cache, s, &id, 1, err, sizeof err)) {
            res->finish = FP_FINISH_ERROR;
            snprintf(res->error, sizeof res->error, "decode failed: %.200s", err);
            ok = false;
            break;
        }
    }
    const double t2 = fp_now_s();
    sampler_free(&smp);
    session_cache_release(eb->o.cache, s, ok);
    if (eb->o.token_log) {
        fprintf(eb->o.token_log, "tokens cached=%zu%s", res->cached_tokens, forced ? " scripted=1" : "");
        log_ids(eb->o.token_log, "prompt", req->prompt, req->n_prompt);
        log_ids(eb->o.token_log, "output", out.ids, out.n);
        fputc('\n', eb->o.token_log);
        fflush(eb->o.token_log);
    }
    free(out.ids);
    pthread_mutex_lock(&eb->mu);
    eb->st.completion_tokens += res->completion_tokens;
    eb->st.decode_seconds += t2 - t1;
    if (res->completion_tokens > 0 && t2 > t1) eb->st.last_decode_tok_s = (double)res->completion_tokens / (t2 - t1);
    if (res->finish == FP_FINISH_ERROR) eb->st.errors++;
    if (res->finish == FP_FINISH_CANCEL) eb->st.cancelled++;
    pthread_mutex_unlock(&eb->mu);
    if (eb->o.after_request) eb->o.after_request(eb->o.after_ud);
    return 0;

fail_early:
    pthread_mutex_lock(&eb->mu);
    eb->st.errors++;
    pthread_mutex_unlock(&eb->mu);
    return -1;
fail_ran:   /* the prompt was (partly) evaluated, nothing generated */
    pthread_mutex_lock(&eb->mu);
    eb->st.errors++;
    pthread_mutex_unlock(&eb->mu);
    if (eb->o.after_request) eb->o.after_request(eb->o.after_ud);
    return -1;
}

static void engine_backend_close(fp_backend *b) {
    if (!b) return;
    engine_backend *eb = b->impl;
    if (eb) {
        for (size_t i = 0; i < eb->n_replies; i++) free(eb->replies[i].ids);
        free(eb->replies);
        pthread_mutex_destroy(&eb->mu);
        free(eb);
    }
    free(b);
}

static const fp_backend_ops ENGINE_OPS = {engine_generate, engine_backend_close};

fp_backend *fp_backend_engine_open(const fp_engine_backend_opts *o, char *err, size_t errlen) {
    if (!o->engine || !o->cache || !o->n_ctx) {
        snprintf(err, errlen, "engine backend: engine, session cache and context size are required");
        return NULL;
    }
    engine_backend *eb = calloc(1, sizeof *eb);
    fp_backend *b = calloc(1, sizeof *b);
    if (!eb || !b) {
        free(eb);
        free(b);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    eb->o = *o;
    eb->n_vocab = engine_model(o->engine)->hp.n_vocab;
    pthread_mutex_init(&eb->mu, NULL);
    b->ops = &ENGINE_OPS;
    b->impl = eb;
    b->n_ctx = o->n_ctx;
    b->model_id = o->model_id ? o->model_id : "deepseek-v4-flash";
    if (o->test_script && load_script(eb, o->test_script, err, errlen)) {
        engine_backend_close(b);
        return NULL;
    }
    return b;
}

void fp_backend_engine_stats(fp_backend *b, fp_engine_backend_stats *st) {
    engine_backend *eb = b->impl;
    pthread_mutex_lock(&eb->mu);
    *st = eb->st;
    st->scripted_left = (int)(eb->n_replies - eb->next_reply);
    pthread_mutex_unlock(&eb->mu);
}
