/* forward.c — the DeepSeek V4 Flash forward pass (model-spec §4), layer-major
 * over a batch of tokens.
 *
 * Read top to bottom: forward_tokens() embeds the batch, then for each layer
 * runs attention_sublayer() and ffn_sublayer(), then output_head(). Every
 * per-token projection is batched through linear_rows(), whose results do not
 * depend on the batch size; the only sequential part is the attention
 * recurrence (raw window, compressors, indexer), which must see the cache as
 * it is at each token. */
#include "forward.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"

/* ======================================================================
 * Scratch for one batch
 * ====================================================================== */

typedef struct scratch {
    int n;
    float *H, *Hin;          /* [n][4E] HC state, and the state that entered the sublayer */
    float *flat;             /* [n][4E] RMSNorm0(H) for the HC control projection */
    float *mix;              /* [n][24] */
    float *pre, *post, *comb;/* [n][4], [n][4], [n][16] */
    float *x, *a;            /* [n][E] sublayer input, normed input */
    float *qr, *qn;          /* [n][q_lora] */
    float *q;                /* [n][n_head*head_dim] */
    float *kv;               /* [n][head_dim] */
    float *ckv, *csc;        /* [n][2*head_dim] attention compressor projections */
    float *ikv, *isc;        /* [n][2*idx_head_dim] indexer compressor projections */
    float *heads;            /* [n][n_head*head_dim] */
    float *low;              /* [n][groups*o_lora] */
    float *out;              /* [n][E] sublayer output */
    float *rlogit;           /* [n][n_expert] */
    float *sg, *su;          /* [n][n_ff] shared expert */
    float *shared;           /* [n][E] */
    float *routed;           /* [n*used][E] per-(token, slot) expert outputs */
    block_q8_K *xq;          /* [n][E/256] */
    expert_work *items;      /* [n*used] */
    /* indexer (one token at a time) */
    float *iq, *iw, *iscore; /* [idx_heads*128], [idx_heads], [cap] */
    int32_t *isel;           /* [cap] */
    unsigned char *allowed;  /* [cap] */
    int cap_comp;
} scratch;

static void scratch_free(scratch *s) {
    float **fs[] = {&s->H, &s->Hin, &s->flat, &s->mix, &s->pre, &s->post, &s->comb, &s->x, &s->a,
                    &s->qr, &s->qn, &s->q, &s->kv, &s->ckv, &s->csc, &s->ikv, &s->isc, &s->heads,
                    &s->low, &s->out, &s->rlogit, &s->sg, &s->su, &s->shared, &s->routed,
                    &s->iq, &s->iw, &s->iscore};
    for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++) free(*fs[i]);
    free(s->xq);
    free(s->items);
    free(s->isel);
    free(s->allowed);
    memset(s, 0, sizeof(*s));
}

static int scratch_alloc(scratch *s, const model_hparams *hp, int n, int cap_comp) {
    memset(s, 0, sizeof(*s));
    s->n = n;
    s->cap_comp = cap_comp;
    const size_t N = (size_t)n, E = hp->n_embd, HC = FP_N_HC * E, QD = (size_t)hp->n_head * hp->head_dim;
    const size_t U = hp->n_expert_used;
#define AL(p, cnt) if (!((p) = malloc((cnt) * sizeof(*(p))))) goto oom
    AL(s->H, N * HC); AL(s->Hin, N * HC); AL(s->flat, N * HC); AL(s->mix, N * 24);
    AL(s->pre, N * 4); AL(s->post, N * 4); AL(s->comb, N * 16);
    AL(s->x, N * E); AL(s->a, N * E); AL(s->qr, N * hp->q_lora); AL(s->qn, N * hp->q_lora);
    AL(s->q, N * QD); AL(s->kv, N * hp->head_dim);
    AL(s->ckv, N * 2 * hp->head_dim); AL(s->csc, N * 2 * hp->head_dim);
    AL(s->ikv, N * 2 * hp->idx_head_dim); AL(s->isc, N * 2 * hp->idx_head_dim);
    AL(s->heads, N * QD); AL(s->low, N * hp->n_out_group * hp->o_lora); AL(s->out, N * E);
    AL(s->rlogit, N * hp->n_expert); AL(s->sg, N * hp->n_ff); AL(s->su, N * hp->n_ff);
    AL(s->shared, N * E); AL(s->routed, N * U * E); AL(s->xq, N * (E / QK_K)); AL(s->items, N * U);
    AL(s->iq, (size_t)hp->idx_n_head * hp->idx_head_dim); AL(s->iw, (size_t)hp->idx_n_head);
    AL(s->iscore, (size_t)cap_comp + 1); AL(s->isel, (size_t)cap_comp + 1);
    AL(s->allowed, (size_t)cap_comp + 1);
#undef AL
    return 0;
oom:
    scratch_free(s);
    return -1;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static float dot_f32(const float *a, const float *b, int n) {
    float acc = 0.0f;
    for (int i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

/* ======================================================================
 * Hyper-connection pre step for the whole batch (model-spec 4.3)
 * ====================================================================== */

static void hc_pre_batch(const engine *e, scratch *s, const tensor_view *fn, const tensor_view *scale,
                         const tensor_view *base) {
    const model_hparams *hp = &e->m->hp;
    const int E = hp->n_embd, HC = FP_N_HC * E;
    memcpy(s->Hin, s->H, (size_t)s->n * HC * sizeof(float));
    for (int t = 0; t < s->n; t++) op_rmsnorm(s->flat + (size_t)t * HC, s->H + (size_t)t * HC, NULL, HC, hp->rms_eps);
    linear_rows(&e->lc, fn, 0, fn->ne1, s->flat, HC, s->mix, 24, s->n);
    for (int t = 0; t < s->n; t++) {
        op_hc_split(s->pre + 4 * t, s->post + 4 * t, s->comb + 16 * t, s->mix + 24 * t,
                    scale->data, base->data, hp->sinkhorn_iters, 1.0e-6f);
        op_hc_weighted_sum(s->x + (size_t)t * E, s->Hin + (size_t)t * HC, s->pre + 4 * t, E);
    }
}

static void hc_post_batch(const engine *e, scratch *s) {
    const int E = e->m->hp.n_embd, HC = FP_N_HC * E;
    for (int t = 0; t < s->n; t++)
        op_hc_post(s->H + (size_t)t * HC, s->out + (size_t)t * E, s->Hin + (size_t)t * HC,
                   s->post + 4 * t, s->comb + 16 * t, E);
}

/* ======================================================================
 * Compressor (model-spec 4.8): one token's projections into the frontier;
 * on a window boundary, pool, norm, RoPE, quantise-simulate and emit a row.
 * ====================================================================== */

static int compressor_step(compressor_state *c, const float *kv_cur, const float *sc_cur,
                           const tensor_view *ape, const float *norm, int64_t pos, float eps,
                           const rope_params *rp, int is_indexer, float *out) {
    const int R = c->ratio, W = c->width, D = c->head_dim;
    const int pos_mod = (int)(pos % R);
    const int row = R == 4 ? R + pos_mod : pos_mod;
    const uint16_t *ape_row = (const uint16_t *)ape->data + (size_t)pos_mod * W;
    memcpy(c->s_kv + (size_t)row * W, kv_cur, (size_t)W * sizeof(float));
    for (int j = 0; j < W; j++) c->s_sc[(size_t)row * W + j] = sc_cur[j] + fp16_to_f32(ape_row[j]);
    if ((pos + 1) % R != 0) return 0;

    /* Softmax-pool each output dimension over the window; ratio 4 also pools
     * the previous window through the first half of the width. */
    for (int j = 0; j < D; j++) {
        float mx = FP_NEG_INF;
        if (R == 4) {
            for (int r = 0; r < 4; r++) {
                const float sp = c->s_sc[(size_t)r * W + j], sc = c->s_sc[(size_t)(4 + r) * W + D + j];
                if (sp > mx) mx = sp;
                if (sc > mx) mx = sc;
            }
        } else {
            for (int r = 0; r < R; r++) if (c->s_sc[(size_t)r * W + j] > mx) mx = c->s_sc[(size_t)r * W + j];
        }
        if (mx <= FP_NEG_INF * 0.5f) {
            out[j] = 0.0f;
            continue;
        }
        float denom = 0.0f, sum = 0.0f;
        if (R == 4) {
            for (int r = 0; r < 4; r++) {
                const float wp = expf(c->s_sc[(size_t)r * W + j] - mx);
                const float wc = expf(c->s_sc[(size_t)(4 + r) * W + D + j] - mx);
                denom += wp + wc;
                sum += wp * c->s_kv[(size_t)r * W + j];
                sum += wc * c->s_kv[(size_t)(4 + r) * W + D + j];
            }
        } else {
            for (int r = 0; r < R; r++) {
                const float w = expf(c->s_sc[(size_t)r * W + j] - mx);
                denom += w;
                sum += w * c->s_kv[(size_t)r * W + j];
            }
        }
        out[j] = denom > 0.0f ? sum / denom : 0.0f;
    }
    op_rmsnorm(out, out, norm, D, eps);
    op_rope_tail(out, 1, D, pos + 1 - R, rp, 0);
    if (is_indexer) op_indexer_qat(out);
    else op_fp8_kv_sim(out, D, rp->n_rot);
    if (R == 4) {
        /* The current window becomes the previous one. */
        memcpy(c->s_kv, c->s_kv + (size_t)4 * W, (size_t)4 * W * sizeof(float));
        memcpy(c->s_sc, c->s_sc + (size_t)4 * W, (size_t)4 * W * sizeof(float));
    }
    op_f16_round(out, D);
    return 1;
}

/* ======================================================================
 * Indexer (model-spec 4.9): which compressed rows a ratio-4 layer attends to
 * once there are more than top_k of them.
 * ====================================================================== */

typedef struct { float score; int32_t idx; } scored;

static int cmp_scored(const void *pa, const void *pb) {
    const scored *a = pa, *b = pb;
    if (a->score > b->score) return -1;
    if (a->score < b->score) return 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

static int indexer_select(const engine *e, scratch *s, const layer_weights *w, const layer_kv *L,
                          int t, int64_t pos, const rope_params *rp) {
    const model_hparams *hp = &e->m->hp;
    const int n = L->n_idx, nh = hp->idx_n_head, D = hp->idx_head_dim;
    linear(&e->lc, &w->idx_q_b, s->qn + (size_t)t * hp->q_lora, s->iq);
    op_rope_tail(s->iq, nh, D, pos, rp, 0);
    for (int h = 0; h < nh; h++) op_indexer_qat(s->iq + (size_t)h * D);
    linear(&e->lc, &w->idx_proj, s->a + (size_t)t * hp->n_embd, s->iw);
    const float scale = 1.0f / sqrtf((float)(D * nh));
    for (int h = 0; h < nh; h++) s->iw[h] *= scale;
    scored *sc = malloc((size_t)n * sizeof(*sc));
    if (!sc) return -1;
    for (int c = 0; c < n; c++) {
        const float *k = L->idx + (size_t)c * D;
        float acc = 0.0f;
        for (int h = 0; h < nh; h++) {
            float d = dot_f32(k, s->iq + (size_t)h * D, D);
            if (d < 0.0f) d = 0.0f;
            acc += d * s->iw[h];
        }
        sc[c].score = acc;
        sc[c].idx = c;
    }
    /* Highest scores first, lowest index on ties: the same set as the
     * reference's repeated strict-greater scan. */
    qsort(sc, (size_t)n, sizeof(*sc), cmp_scored);
    memset(s->allowed, 0, (size_t)n);
    for (int k = 0; k < hp->idx_top_k; k++) s->allowed[sc[k].idx] = 1;
    free(sc);
    return 0;
}

/* ======================================================================
 * Sink attention over the raw window and the visible compressed rows
 * (model-spec 4.10), parallel over heads.
 * ====================================================================== */

typedef struct {
    const model_hparams *hp;
    const float *q;            /* this token's [n_head][head_dim] */
    float *heads;              /* output [n_head][head_dim] */
    const float *sinks;
    const float *raw;          /* ring */
    int64_t pos;
    int n_raw;
    const float *comp;
    int n_comp;
    const unsigned char *allowed;   /* NULL = all compressed rows */
} attn_job;

/* Lanes of a block of heads. Each lane keeps its own accumulator and adds
 * the products in index order, so a lane's result is exactly the scalar
 * `acc += q[i] * k[i]` loop (mul then add, no contraction): vectorising
 * across heads, not within a dot, changes no bits. */
#define ATT_HB 16
typedef float att_v __attribute__((vector_size(ATT_HB * sizeof(float))));

static void attn_worker(void *vctx, int ith, int nth) {
    const attn_job *j = vctx;
    const int D = j->hp->head_dim, S = j->hp->n_swa, NH = j->hp->n_head;
    const float kq_scale = 1.0f / sqrtf((float)D);
    const int n_total = j->n_raw + j->n_comp;
    const int n_blocks = (NH + ATT_HB - 1) / ATT_HB;
    const int b0 = n_blocks * ith / nth, b1 = n_blocks * (ith + 1) / nth;
    if (b0 >= b1) return;
    /* score[h][r] for the block, and the block's q transposed to [D][ATT_HB]. */
    float *score = malloc((size_t)(n_total > 0 ? n_total : 1) * ATT_HB * sizeof(float));
    att_v *qt = aligned_alloc(64, (size_t)D * sizeof(att_v));
    if (!score || !qt) abort();
    for (int blk = b0; blk < b1; blk++) {
        const int h0 = blk * ATT_HB, nh = NH - h0 < ATT_HB ? NH - h0 : ATT_HB;
        for (int i = 0; i < D; i++) {
            att_v v = {0};
            for (int h = 0; h < nh; h++) v[h] = j->q[(size_t)(h0 + h) * D + i];
            qt[i] = v;
        }
        for (int r = 0; r < n_total; r++) {
            const float *k;
            if (r < j->n_raw) {
                const int64_t p = j->pos - j->n_raw + 1 + r;     /* oldest first */
                k = j->raw + (size_t)(p % S) * D;
            } else if (j->allowed && !j->allowed[r - j->n_raw]) {
                for (int h = 0; h < nh; h++) score[(size_t)h * n_total + r] = FP_NEG_INF;
                continue;
            } else {
                k = j->comp + (size_t)(r - j->n_raw) * D;
            }
            att_v acc = {0};
            for (int i = 0; i < D; i++) acc += qt[i] * k[i];
            for (int h = 0; h < nh; h++) score[(size_t)h * n_total + r] = acc[h] * kq_scale;
        }
        for (int h = 0; h < nh; h++) {
            const int hh = h0 + h;
            float *sc = score + (size_t)h * n_total;
            float mx = j->sinks[hh];
            for (int r = 0; r < n_total; r++)
                if (sc[r] > mx) mx = sc[r];
            float *oh = j->heads + (size_t)hh * D;
            memset(oh, 0, (size_t)D * sizeof(float));
            float denom = expf(j->sinks[hh] - mx);
            for (int r = 0; r < n_total; r++) {
                if (r >= j->n_raw && sc[r] <= FP_NEG_INF * 0.5f) continue;
                const int64_t p = j->pos - j->n_raw + 1 + r;
                const float *kv = r < j->n_raw ? j->raw + (size_t)(p % S) * D : j->comp + (size_t)(r - j->n_raw) * D;
                const float wgt = expf(sc[r] - mx);
                denom += wgt;
                int i = 0;
                if (D % ATT_HB == 0) {
                    att_v wv = {0};
                    wv += wgt;
                    for (; i < D; i += ATT_HB) {
                        att_v o, k;
                        memcpy(&o, oh + i, sizeof o);
                        memcpy(&k, kv + i, sizeof k);
                        o += wv * k;
                        memcpy(oh + i, &o, sizeof o);
                    }
                }
                for (; i < D; i++) oh[i] += wgt * kv[i];
            }
            const float inv = 1.0f / denom;
            for (int i = 0; i < D; i++) oh[i] *= inv;
        }
    }
    free(qt);
    free(score);
}

/* ======================================================================
 * Attention sublayer (model-spec 4.6-4.11)
 * ====================================================================== */

static int attention_sublayer(const engine *e, scratch *s, kv_state *kv, int l, int64_t pos0,
                              const fwd_observer *obs) {
    const model_hparams *hp = &e->m->hp;
    const layer_weights *w = &e->m->layers[l];
    layer_kv *L = &kv->layers[l];
    const int n = s->n, E = hp->n_embd, D = hp->head_dim, QD = hp->n_head * D;
    const rope_params rp = rope_for_layer(hp, l);

    hc_pre_batch(e, s, &w->hc_attn_fn, &w->hc_attn_scale, &w->hc_attn_base);
    for (int t = 0; t < n; t++) op_rmsnorm(s->a + (size_t)t * E, s->x + (size_t)t * E, w->attn_norm.data, E, hp->rms_eps);

    /* Batched projections: low-rank Q, the shared K=V row, compressor inputs. */
    /* Everything that reads the normed input goes in one pool pass. */
    linear_task in[6];
    int n_in = 0;
#define TASK(W, ROWS, Y) in[n_in++] = (linear_task){.w = (W), .rows = (ROWS), .x = s->a, .x_stride = E, .y = (Y), .y_stride = (ROWS)}
    TASK(&w->attn_q_a, hp->q_lora, s->qr);
    TASK(&w->attn_kv, D, s->kv);
    if (L->ratio) {
        TASK(&w->comp_kv, L->attn.width, s->ckv);
        TASK(&w->comp_gate, L->attn.width, s->csc);
    }
    if (L->ratio == 4) {
        TASK(&w->idx_kv, L->idxc.width, s->ikv);
        TASK(&w->idx_gate, L->idxc.width, s->isc);
    }
#undef TASK
    linear_multi(&e->lc, in, n_in, n);
    for (int t = 0; t < n; t++)
        op_rmsnorm(s->qn + (size_t)t * hp->q_lora, s->qr + (size_t)t * hp->q_lora, w->attn_q_a_norm.data, hp->q_lora, hp->rms_eps);
    linear_rows(&e->lc, &w->attn_q_b, 0, QD, s->qn, hp->q_lora, s->q, QD, n);
    for (int t = 0; t < n; t++) op_headnorm(s->q + (size_t)t * QD, hp->n_head, D, hp->rms_eps);
    for (int t = 0; t < n; t++) op_rmsnorm(s->kv + (size_t)t * D, s->kv + (size_t)t * D, w->attn_kv_a_norm.data, D, hp->rms_eps);

    /* The recurrence: each token sees the cache exactly as it is at its turn. */
    float crow[1024];
    for (int t = 0; t < n; t++) {
        const int64_t pos = pos0 + t;
        float *q = s->q + (size_t)t * QD, *kvr = s->kv + (size_t)t * D;
        op_rope_tail(q, hp->n_head, D, pos, &rp, 0);
        op_rope_tail(kvr, 1, D, pos, &rp, 0);
        op_fp8_kv_sim(kvr, D, hp->n_rot);
        float *slot = L->raw + (size_t)(pos % hp->n_swa) * D;
        for (int i = 0; i < D; i++) slot[i] = f16_round(kvr[i]);

        if (L->ratio) {
            if (L->n_comp >= L->cap_comp) return -2;
            if (compressor_step(&L->attn, s->ckv + (size_t)t * L->attn.width, s->csc + (size_t)t * L->attn.width,
                                &w->comp_ape, w->comp_norm.data, pos, hp->rms_eps, &rp, 0, crow))
                memcpy(L->comp + (size_t)L->n_comp++ * D, crow, (size_t)D * sizeof(float));
        }
        const unsigned char *allowed = NULL;
        if (L->ratio == 4) {
            const int ID = hp->idx_head_dim;
            if (compressor_step(&L->idxc, s->ikv + (size_t)t * L->idxc.width, s->isc + (size_t)t * L->idxc.width,
                                &w->idx_ape, w->idx_norm.data, pos, hp->rms_eps, &rp, 1, crow))
                memcpy(L->idx + (size_t)L->n_idx++ * ID, crow, (size_t)ID * sizeof(float));
            if (L->n_idx > hp->idx_top_k) {
                if (indexer_select(e, s, w, L, t, pos, &rp)) return -1;
                allowed = s->allowed;
            }
            if (obs && obs->on_indexer) {
                int k = 0;
                for (int c = 0; c < L->n_comp; c++)
                    if (!allowed || allowed[c]) s->isel[k++] = c;
                obs->on_indexer(obs->ud, pos, l, L->n_comp, s->isel, k);
            }
        }
        attn_job aj = {
            .hp = hp, .q = q, .heads = s->heads + (size_t)t * QD, .sinks = w->attn_sinks.data,
            .raw = L->raw, .pos = pos, .n_raw = (int)(pos + 1 < hp->n_swa ? pos + 1 : hp->n_swa),
            .comp = L->comp, .n_comp = L->ratio ? L->n_comp : 0, .allowed = allowed,
        };
        if (e->lc.tp && hp->n_head > ATT_HB) threadpool_run(e->lc.tp, attn_worker, &aj);
        else attn_worker(&aj, 0, 1);
        /* Undo the rotation on the aggregated values before projecting out. */
        op_rope_tail(s->heads + (size_t)t * QD, hp->n_head, D, pos, &rp, 1);
    }

    /* Grouped output projection: group g reads heads [g*hpg, (g+1)*hpg). */
    const int G = hp->n_out_group, R = hp->o_lora, gin = D * (hp->n_head / G);
    linear_task grp[64];
    for (int g0 = 0; g0 < G; g0 += 64) {
        const int ng = G - g0 < 64 ? G - g0 : 64;
        for (int g = g0; g < g0 + ng; g++)
            grp[g - g0] = (linear_task){.w = &w->attn_output_a, .row0 = (int64_t)g * R, .rows = R,
                                        .x = s->heads + (size_t)g * gin, .x_stride = QD,
                                        .y = s->low + (size_t)g * R, .y_stride = (int64_t)G * R};
        linear_multi(&e->lc, grp, ng, n);
    }
    linear_rows(&e->lc, &w->attn_output_b, 0, E, s->low, (int64_t)G * R, s->out, E, n);
    hc_post_batch(e, s);
    if (obs && obs->on_hc)
        for (int t = 0; t < n; t++) obs->on_hc(obs->ud, pos0 + t, 1 + 2 * l, s->H + (size_t)t * FP_N_HC * E);
    return 0;
}

/* ======================================================================
 * FFN sublayer (model-spec 4.12): router, routed experts via the executor,
 * shared expert computed while the routed work is in flight.
 * ====================================================================== */

static void route_token(const model_hparams *hp, const layer_weights *w, int l, int32_t token,
                        const float *logits, int32_t *ids, float *wts) {
    float p[FP_MAX_EXPERTS];
    const int NE = hp->n_expert, U = hp->n_expert_used;
    for (int i = 0; i < NE; i++) p[i] = sqrtf(op_softplus(logits[i]));
    if (l < hp->n_hash_layer) {
        const int32_t *row = (const int32_t *)w->tid2eid.data + (size_t)token * U;
        for (int i = 0; i < U; i++) ids[i] = row[i];
    } else {
        float sel[FP_MAX_EXPERTS];
        memcpy(sel, p, (size_t)NE * sizeof(float));
        if (w->exp_probs_b.data)
            for (int i = 0; i < NE; i++) sel[i] += ((const float *)w->exp_probs_b.data)[i];
        /* Insertion top-k: strictly greater wins, so the earlier index wins ties. */
        for (int i = 0; i < U; i++) ids[i] = -1;
        for (int i = 0; i < NE; i++)
            for (int j = 0; j < U; j++)
                if (ids[j] < 0 || sel[i] > sel[ids[j]]) {
                    for (int m = U - 1; m > j; m--) ids[m] = ids[m - 1];
                    ids[j] = i;
                    break;
                }
    }
    float sum = 0.0f;
    for (int i = 0; i < U; i++) {
        wts[i] = p[ids[i]];
        sum += wts[i];
    }
    if (sum < 6.103515625e-5f) sum = 6.103515625e-5f;
    for (int i = 0; i < U; i++) wts[i] = wts[i] / sum * hp->expert_weight_scale;
}

static void swiglu_shared(float *g, const float *u, int64_t n, float clamp) {
    for (int64_t i = 0; i < n; i++) {
        float gv = g[i], uv = u[i];
        if (clamp > 1.0e-6f) {
            if (gv > clamp) gv = clamp;
            if (uv > clamp) uv = clamp;
            if (uv < -clamp) uv = -clamp;
        }
        g[i] = op_silu(gv) * uv;
    }
}

static int ffn_sublayer(const engine *e, scratch *s, int l, int64_t pos0, const int32_t *tokens,
                        const fwd_observer *obs, char *err, size_t errlen) {
    const model_hparams *hp = &e->m->hp;
    const layer_weights *w = &e->m->layers[l];
    const int n = s->n, E = hp->n_embd, U = hp->n_expert_used, F = hp->n_ff;

    hc_pre_batch(e, s, &w->hc_ffn_fn, &w->hc_ffn_scale, &w->hc_ffn_base);
    for (int t = 0; t < n; t++) op_rmsnorm(s->a + (size_t)t * E, s->x + (size_t)t * E, w->ffn_norm.data, E, hp->rms_eps);

    /* Router, then the routed work list in slot order. */
    linear_rows(&e->lc, &w->ffn_gate_inp, 0, hp->n_expert, s->a, E, s->rlogit, hp->n_expert, n);
    for (int t = 0; t < n; t++) {
        int32_t ids[16];
        float wts[16];
        route_token(hp, w, l, tokens[t], s->rlogit + (size_t)t * hp->n_expert, ids, wts);
        for (int k = 0; k < U; k++) s->items[t * U + k] = (expert_work){.token = t, .expert = ids[k], .weight = wts[k]};
        if (obs && obs->on_route) obs->on_route(obs->ud, pos0 + t, l, ids, wts, U);
        quantize_row_q8_K(s->a + (size_t)t * E, s->xq + (size_t)t * (E / QK_K), E);
    }
    if (e->exec.submit(e->exec.ud, l, n, s->xq, n * U, s->items, s->routed, err, errlen)) return -1;

    /* Shared expert while routed experts are in flight elsewhere. */
    const linear_task gu[2] = {
        {.w = &w->gate_shexp, .rows = F, .x = s->a, .x_stride = E, .y = s->sg, .y_stride = F},
        {.w = &w->up_shexp, .rows = F, .x = s->a, .x_stride = E, .y = s->su, .y_stride = F},
    };
    linear_multi(&e->lc, gu, 2, n);
    swiglu_shared(s->sg, s->su, (int64_t)n * F, hp->swiglu_clamp[l]);
    linear_rows(&e->lc, &w->down_shexp, 0, E, s->sg, F, s->shared, E, n);

    if (e->exec.wait(e->exec.ud, err, errlen)) return -1;

    /* Canonical combine: routed outputs in slot order, then + shared. */
    for (int t = 0; t < n; t++) {
        float *o = s->out + (size_t)t * E;
        const float *sh = s->shared + (size_t)t * E;
        for (int d = 0; d < E; d++) {
            float acc = 0.0f;
            for (int k = 0; k < U; k++) acc += s->routed[(size_t)(t * U + k) * E + d];
            o[d] = acc + sh[d];
        }
    }
    hc_post_batch(e, s);
    if (obs && obs->on_hc)
        for (int t = 0; t < n; t++) obs->on_hc(obs->ud, pos0 + t, 2 + 2 * l, s->H + (size_t)t * FP_N_HC * E);
    return 0;
}

/* ======================================================================
 * Output head (model-spec 4.13)
 * ====================================================================== */

static void output_head(const engine *e, scratch *s, int t, int64_t pos, float *logits, const fwd_observer *obs) {
    const model *m = e->m;
    const model_hparams *hp = &m->hp;
    const int E = hp->n_embd, HC = FP_N_HC * E;
    const float *H = s->H + (size_t)t * HC;
    float o[FP_N_HC], wts[FP_N_HC];
    float *flat = s->flat, *z = s->x, *zn = s->a;   /* reuse scratch rows of token 0 */
    op_rmsnorm(flat, H, NULL, HC, hp->rms_eps);
    linear(&e->lc, &m->output_hc_fn, flat, o);
    const float sc = ((const float *)m->output_hc_scale.data)[0];
    for (int i = 0; i < FP_N_HC; i++) wts[i] = op_sigmoid(o[i] * sc + ((const float *)m->output_hc_base.data)[i]) + hp->hc_eps;
    op_hc_weighted_sum(z, H, wts, E);
    op_rmsnorm(zn, z, m->output_norm.data, E, hp->rms_eps);
    if (obs && obs->on_final) obs->on_final(obs->ud, pos, z, zn);
    if (logits) linear(&e->lc, &m->output, zn, logits);
}

/* ======================================================================
 * Entry point
 * ====================================================================== */

int forward_tokens(const engine *e, kv_state *kv, int64_t pos0, const int32_t *tokens, int n,
                   float *logits_out, int all_logits, const fwd_observer *obs,
                   char *err, size_t errlen) {
    const model *m = e->m;
    const model_hparams *hp = &m->hp;
    if (n <= 0) return fail(err, errlen, "no tokens to evaluate");
    if (pos0 + n > kv->ctx)
        return fail(err, errlen, "context full: %lld tokens + %d new exceed the context size %d (use a larger --ctx)",
                    (long long)pos0, n, kv->ctx);
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= hp->n_vocab)
            return fail(err, errlen, "token id %d at position %lld is outside the vocabulary (0..%d)",
                        tokens[t], (long long)(pos0 + t), hp->n_vocab - 1);
    int cap = 0;
    for (int l = 0; l < hp->n_layer; l++) if (kv->layers[l].cap_comp > cap) cap = kv->layers[l].cap_comp;
    scratch s;
    if (scratch_alloc(&s, hp, n, cap)) return fail(err, errlen, "out of memory for a batch of %d tokens", n);

    const int E = hp->n_embd, HC = FP_N_HC * E;
    for (int t = 0; t < n; t++) {
        const uint16_t *row = (const uint16_t *)m->token_embd.data + (size_t)tokens[t] * E;
        float *H = s.H + (size_t)t * HC;
        for (int d = 0; d < E; d++) H[d] = fp16_to_f32(row[d]);
        for (int h = 1; h < FP_N_HC; h++) memcpy(H + (size_t)h * E, H, (size_t)E * sizeof(float));
        if (obs && obs->on_hc) obs->on_hc(obs->ud, pos0 + t, 0, H);
    }
    int rc = 0;
    for (int l = 0; l < hp->n_layer && rc == 0; l++) {
        rc = attention_sublayer(e, &s, kv, l, pos0, obs);
        if (rc == -2) rc = fail(err, errlen, "layer %d: compressed KV capacity exceeded", l);
        else if (rc) rc = fail(err, errlen, "layer %d: out of memory in attention", l);
        if (rc == 0) rc = ffn_sublayer(e, &s, l, pos0, tokens, obs, err, errlen);
    }
    if (rc == 0) {
        const int64_t V = hp->n_vocab;
        for (int t = all_logits ? 0 : n - 1; t < n; t++)
            output_head(e, &s, t, pos0 + t, logits_out ? logits_out + (all_logits ? (size_t)t * V : 0) : NULL, obs);
    }
    scratch_free(&s);
    return rc;
}
