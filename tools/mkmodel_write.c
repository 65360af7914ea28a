/* mkmodel_write.c — metadata and the parallel streaming writer of
 * flashpool-mkmodel (see mkmodel_write.h).
 *
 * Tensor bytes are produced in rounds of ~32 MiB of chunks. While the
 * workers generate round k+1 (taking chunks from a shared counter, so the
 * load balances whatever the chunk sizes), worker 0 first hands round k to
 * the GGUF writer, in file order. Two round buffers alternate. The output
 * does not depend on the number of threads: every chunk's bytes are fixed
 * by (seed, tensor name, chunk index). */
#include "clock.h"
#include "errmsg.h"
#include "mkmodel_write.h"

#include "mkmodel_gen.h"
#include "quant.h"
#include "threadpool.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define ROUND_BYTES ((size_t)32 << 20)
#define ROUND_CHUNKS 512
#define CHUNK_ALIGN 64

/* ---- metadata ------------------------------------------------------------ */

void mkmodel_put_metadata(gguf_writer *w, const mkmodel_config *c, const mkmodel_vocab *v) {
    const mkmodel_shape *s = &c->shape;
    char name[128];
    snprintf(name, sizeof name, "flashpool synthetic deepseek4 (%s, seed %llu)", c->preset,
             (unsigned long long)c->seed);
    gguf_w_str(w, "general.architecture", "deepseek4");
    gguf_w_str(w, "general.name", name);
    gguf_w_u32(w, "general.alignment", 32);
    /* ds4 reads every integer hyperparameter as exactly UINT32. */
    const struct { const char *key; uint32_t v; } u32s[] = {
        {"deepseek4.context_length", s->ctx},
        {"deepseek4.block_count", s->layers},
        {"deepseek4.embedding_length", s->embd},
        {"deepseek4.vocab_size", s->vocab},
        {"deepseek4.attention.head_count", s->heads},
        {"deepseek4.attention.head_count_kv", 1},
        {"deepseek4.attention.key_length", s->head_dim},
        {"deepseek4.attention.value_length", s->head_dim},
        {"deepseek4.rope.dimension_count", s->rot},
        {"deepseek4.attention.q_lora_rank", s->lora_q},
        {"deepseek4.attention.output_lora_rank", s->lora_o},
        {"deepseek4.attention.output_group_count", s->out_groups},
        {"deepseek4.expert_count", s->experts},
        {"deepseek4.expert_used_count", s->experts_used},
        {"deepseek4.expert_feed_forward_length", s->ff_exp},
        {"deepseek4.expert_shared_count", 1},
        {"deepseek4.expert_group_count", 0},
        {"deepseek4.expert_group_used_count", 0},
        {"deepseek4.hash_layer_count", s->hash_layers},
        {"deepseek4.attention.sliding_window", s->swa},
        {"deepseek4.attention.indexer.head_count", s->indexer_heads},
        {"deepseek4.attention.indexer.key_length", s->indexer_head_dim},
        {"deepseek4.attention.indexer.top_k", s->indexer_top_k},
        {"deepseek4.hyper_connection.count", s->hc},
        {"deepseek4.hyper_connection.sinkhorn_iterations", s->sinkhorn_iters},
    };
    for (size_t i = 0; i < sizeof u32s / sizeof u32s[0]; i++) gguf_w_u32(w, u32s[i].key, u32s[i].v);
    gguf_w_f32(w, "deepseek4.hyper_connection.epsilon", 1e-6f);
    gguf_w_f32(w, "deepseek4.attention.layer_norm_rms_epsilon", 1e-6f);
    gguf_w_f32(w, "deepseek4.rope.freq_base", 10000.0f);
    gguf_w_str(w, "deepseek4.rope.scaling.type", "yarn");
    gguf_w_f32(w, "deepseek4.rope.scaling.factor", 16.0f);
    gguf_w_u32(w, "deepseek4.rope.scaling.original_context_length", 65536);
    gguf_w_f32(w, "deepseek4.rope.scaling.yarn_beta_fast", 32.0f);
    gguf_w_f32(w, "deepseek4.rope.scaling.yarn_beta_slow", 1.0f);
    gguf_w_f32(w, "deepseek4.attention.compress_rope_freq_base", 160000.0f);
    gguf_w_f32(w, "deepseek4.expert_weights_scale", 1.5f);
    gguf_w_bool(w, "deepseek4.expert_weights_norm", 1);
    gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_w_str(w, "tokenizer.ggml.pre", "joyai-llm");
    gguf_w_u32(w, "tokenizer.ggml.bos_token_id", v->special[MKMODEL_SP_BOS]);
    gguf_w_u32(w, "tokenizer.ggml.eos_token_id", v->special[MKMODEL_SP_EOS]);
    gguf_w_bool(w, "tokenizer.ggml.add_bos_token", 1);
    gguf_w_bool(w, "tokenizer.ggml.add_eos_token", 0);
    uint32_t *ratios = malloc(s->layers * sizeof *ratios);
    float *clamp = malloc(s->layers * sizeof *clamp);
    if (ratios && clamp) {
        for (uint32_t il = 0; il < s->layers; il++) {
            ratios[il] = mkmodel_compress_ratio(s, il);
            clamp[il] = 10.0f;
        }
        gguf_w_arr_u32(w, "deepseek4.attention.compress_ratios", ratios, s->layers);
        gguf_w_arr_f32(w, "deepseek4.swiglu_clamp_exp", clamp, s->layers);
    } else {
        /* a NULL array with n > 0 makes the writer record an error, which
         * gguf_writer_begin then reports */
        gguf_w_arr_u32(w, "deepseek4.attention.compress_ratios", NULL, s->layers);
    }
    free(ratios);
    free(clamp);
    gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, v->n_tokens);
    gguf_w_arr_i32(w, "tokenizer.ggml.token_type", v->types, v->n_tokens);
    gguf_w_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges, v->n_merges);
}

/* ---- chunk rounds -------------------------------------------------------- */

typedef struct job {
    const mkmodel_tensor *t;
    uint64_t key, c;
    size_t off, nbytes;
    int last;                   /* the tensor's final chunk */
} job;

typedef struct round {
    job jobs[ROUND_CHUNKS];
    size_t n;
    uint8_t *buf;
} round;

typedef struct cursor { size_t ti; uint64_t c; } cursor;

static size_t round_cap(void) { return ROUND_BYTES + mkmodel_chunk_max_bytes() + CHUNK_ALIGN; }

/* Takes the next chunks in file order until the round holds ROUND_BYTES. */
static void plan_round(const mkmodel_plan *p, const uint64_t *keys, cursor *cur, round *r) {
    size_t used = 0;
    r->n = 0;
    while (cur->ti < p->n && r->n < ROUND_CHUNKS && used < ROUND_BYTES) {
        const mkmodel_tensor *t = &p->t[cur->ti];
        uint64_t count = mkmodel_chunk_count(t);
        job *j = &r->jobs[r->n++];
        j->t = t;
        j->key = keys[cur->ti];
        j->c = cur->c;
        j->off = (used + CHUNK_ALIGN - 1) / CHUNK_ALIGN * CHUNK_ALIGN;
        j->nbytes = mkmodel_chunk_bytes(t, cur->c);
        j->last = cur->c + 1 == count;
        used = j->off + j->nbytes;
        if (++cur->c == count) {
            cur->ti++;
            cur->c = 0;
        }
    }
}

typedef struct run {
    round *gen;                 /* chunks to generate (NULL: none) */
    const round *put;           /* chunks to hand to the writer (NULL: none) */
    atomic_size_t next;
    atomic_int failed;
    float **scratch;            /* one per worker */
    gguf_writer *w;
    size_t tensors_done;
    uint64_t bytes_done;
    char err[512];
} run;

static void worker(void *ctx, int ith, int nth) {
    (void)nth;
    run *r = ctx;
    if (ith == 0 && r->put) {
        for (size_t i = 0; i < r->put->n; i++) {
            const job *j = &r->put->jobs[i];
            if (gguf_writer_put(r->w, r->put->buf + j->off, j->nbytes, r->err, sizeof r->err)) {
                atomic_store(&r->failed, 1);
                return;
            }
            r->bytes_done += j->nbytes;
            r->tensors_done += (size_t)j->last;
        }
    }
    if (!r->gen) return;
    for (;;) {
        if (atomic_load(&r->failed)) return;
        size_t i = atomic_fetch_add(&r->next, 1);
        if (i >= r->gen->n) return;
        const job *j = &r->gen->jobs[i];
        mkmodel_gen_chunk(j->t, j->key, j->c, r->gen->buf + j->off, r->scratch[ith]);
    }
}

int mkmodel_write(const mkmodel_config *c, const char *path, int n_threads, mkmodel_progress_fn progress,
                  void *ud, mkmodel_result *res, char *err, size_t errlen) {
    const double t0 = fp_now_s();
    if (n_threads < 1) n_threads = 1;
    mkmodel_plan plan;
    mkmodel_vocab vocab;
    if (mkmodel_plan_build(c, &plan, err, errlen)) return -1;
    if (mkmodel_vocab_build(c->shape.vocab, &vocab, err, errlen)) {
        mkmodel_plan_free(&plan);
        return -1;
    }
    int rc = -1;
    gguf_writer *w = gguf_writer_new(32);
    threadpool *tp = threadpool_open(n_threads);
    uint64_t *keys = calloc(plan.n, sizeof *keys);
    round *rs = calloc(2, sizeof *rs);
    run *r = calloc(1, sizeof *r);
    int nw = tp ? threadpool_size(tp) : 0;
    if (!w || !tp || !keys || !rs || !r) {
        fp_fail(err, errlen, tp ? "out of memory" : "cannot start %d worker threads", n_threads);
        goto out;
    }
    r->scratch = calloc((size_t)nw, sizeof *r->scratch);
    if (!r->scratch) {
        fp_fail(err, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < nw; i++)
        if (!(r->scratch[i] = malloc(mkmodel_scratch_elems() * sizeof(float)))) {
            fp_fail(err, errlen, "out of memory (chunk scratch)");
            goto out;
        }
    for (int i = 0; i < 2; i++)
        if (!(rs[i].buf = aligned_alloc(CHUNK_ALIGN, round_cap()))) {
            fp_fail(err, errlen, "out of memory (round buffers)");
            goto out;
        }
    for (size_t i = 0; i < plan.n; i++) keys[i] = mkmodel_tensor_key(c->seed, plan.t[i].name);

    mkmodel_put_metadata(w, c, &vocab);
    for (size_t i = 0; i < plan.n; i++) gguf_w_tensor(w, plan.t[i].name, plan.t[i].type, plan.t[i].ndim, plan.t[i].dims);
    if (gguf_writer_begin(w, path, err, errlen)) goto out;

    r->w = w;
    mkmodel_progress pg = {0, plan.n, 0, plan.data_bytes, 0, 0};
    cursor cur = {0, 0};
    const round *put = NULL;
    for (int gi = 0;; gi ^= 1) {
        round *gen = &rs[gi];
        plan_round(&plan, keys, &cur, gen);
        if (!gen->n && !put) break;
        r->gen = gen->n ? gen : NULL;
        r->put = put;
        atomic_store(&r->next, 0);
        threadpool_run(tp, worker, r);
        if (atomic_load(&r->failed)) {
            fp_fail(err, errlen, "%s", r->err);
            goto out;
        }
        put = r->gen;
        if (progress && r->put) {
            pg.tensors_done = r->tensors_done;
            pg.bytes_done = r->bytes_done;
            pg.seconds = fp_now_s() - t0;
            progress(ud, &pg);
        }
    }
    if (progress) {
        pg.tensors_done = r->tensors_done;
        pg.bytes_done = r->bytes_done;
        pg.seconds = fp_now_s() - t0;
        pg.syncing = 1;
        progress(ud, &pg);
    }
    if (gguf_writer_finish(w, err, errlen)) goto out;
    if (res) {
        struct stat st;
        memset(res, 0, sizeof *res);
        res->n_tensors = plan.n;
        res->file_bytes = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
        res->n_merges = vocab.n_merges;
        memcpy(res->special, vocab.special, sizeof res->special);
        res->seconds = fp_now_s() - t0;
    }
    rc = 0;
out:
    if (r && r->scratch) {
        for (int i = 0; i < nw; i++) free(r->scratch[i]);
        free(r->scratch);
    }
    if (rs) {
        free(rs[0].buf);
        free(rs[1].buf);
    }
    free(rs);
    free(r);
    free(keys);
    if (tp) threadpool_close(tp);
    gguf_writer_free(w); /* removes path.tmp when the write did not complete */
    mkmodel_vocab_free(&vocab);
    mkmodel_plan_free(&plan);
    return rc;
}
