/* main_bench.c — `flashpool-bench`: context-frontier benchmark.
 *
 * Walks one fixed pseudo-random token sequence through a session: prefill
 * up to each frontier (e.g. 512, 1024, 2048), then decode --gen tokens
 * there. One CSV row per frontier: prefill tok/s of the new interval, decode
 * tok/s, KV bytes, bytes touched per decoded token (see bytes_per_token),
 * and how close decode comes to the memory-bandwidth roofline measured on
 * this machine (best bandwidth seen, with the lowest as the spread). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "membw.h"
#include "pool_cli.h"
#include "progress.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: flashpool-bench -m MODEL.gguf [options]\n"
        "\n"
        "  -m, --model FILE       GGUF model (required)\n"
        "      --frontiers LIST   context frontiers (default 128,512,1024)\n"
        "      --gen N            decoded tokens measured at each frontier (default 8)\n"
        "  -t, --threads N        CPU threads (default: all cores)\n"
        "      --chunk N          prefill batch size (default 256)\n"
        "      --seed N           token sequence seed (default 1)\n"
        "      --membw-mb N       buffer for the bandwidth measurement (default 1024)\n"
        "  -h, --help\n"
        "\n"
        "Output: CSV on stdout, one row per frontier. weight_bytes_per_token counts what a\n"
        "decode step reads (dense weights, the experts used, the output head, one table\n"
        "row, the indexer only once it runs, the KV rows attended). roofline_ms is that\n"
        "divided by membw_gb_s, the best read bandwidth measured at start and around\n"
        "every decode run; membw_low_gb_s is the lowest reading around that run.\n");
    pool_cli_usage(f);
}

static double tv_bytes(const tensor_view *t) {
    return t->data ? (double)qtype_row_bytes(t->type, t->ne0) * (double)t->ne1 * (double)t->ne2 : 0.0;
}

/* Bytes one decoded token at position `pos` reads from memory: exactly the
 * tensors the forward pass touches for it, not the file's size.
 *  - every dense tensor of every layer (HC, norms, attention projections,
 *    router, shared expert), plus the n_used routed experts;
 *  - compressor weights only on compressed layers, one row of their
 *    positional table; the indexer's q projection and head weights only once
 *    there are more than top_k compressed rows (before that it does not run);
 *  - one row of the hash-routing table (not the whole table), one embedding
 *    row, the output HC head and the vocabulary head;
 *  - the KV state attention reads: the raw window, the compressed rows, and
 *    the indexer keys when the indexer runs (f32 rows). */
static double bytes_per_token(const model *m, int64_t pos) {
    const model_hparams *hp = &m->hp;
    double b = (double)qtype_row_bytes(m->token_embd.type, hp->n_embd);
    b += tv_bytes(&m->output_hc_base) + tv_bytes(&m->output_hc_fn) + tv_bytes(&m->output_hc_scale) +
         tv_bytes(&m->output_norm) + tv_bytes(&m->output);
    const double n_raw = pos + 1 < hp->n_swa ? (double)(pos + 1) : (double)hp->n_swa;
    for (int l = 0; l < hp->n_layer; l++) {
        const layer_weights *w = &m->layers[l];
        const tensor_view *dense[] = {
            &w->hc_attn_fn, &w->hc_attn_scale, &w->hc_attn_base, &w->attn_norm, &w->attn_q_a,
            &w->attn_q_a_norm, &w->attn_q_b, &w->attn_kv, &w->attn_kv_a_norm, &w->attn_sinks,
            &w->attn_output_a, &w->attn_output_b, &w->hc_ffn_fn, &w->hc_ffn_scale, &w->hc_ffn_base,
            &w->ffn_norm, &w->ffn_gate_inp, &w->exp_probs_b, &w->gate_shexp, &w->up_shexp, &w->down_shexp,
        };
        for (size_t i = 0; i < sizeof(dense) / sizeof(dense[0]); i++) b += tv_bytes(dense[i]);
        b += n_raw * hp->head_dim * 4.0;
        const int ratio = hp->compress_ratio[l];
        if (ratio) {
            b += tv_bytes(&w->comp_kv) + tv_bytes(&w->comp_gate) + tv_bytes(&w->comp_norm) +
                 (double)qtype_row_bytes(w->comp_ape.type, w->comp_ape.ne0);
            b += (double)((pos + 1) / ratio) * hp->head_dim * 4.0;
        }
        if (ratio == 4) {
            b += tv_bytes(&w->idx_kv) + tv_bytes(&w->idx_gate) + tv_bytes(&w->idx_norm) +
                 (double)qtype_row_bytes(w->idx_ape.type, w->idx_ape.ne0);
            const int64_t n_idx = (pos + 1) / 4;
            if (n_idx > hp->idx_top_k)
                b += tv_bytes(&w->idx_q_b) + tv_bytes(&w->idx_proj) + (double)n_idx * hp->idx_head_dim * 4.0;
        }
        if (l < hp->n_hash_layer) b += (double)hp->n_expert_used * sizeof(int32_t);
        const expert_shape s = model_expert_shape(m, l);
        b += hp->n_expert_used * (2.0 * expert_gate_bytes(&s) + expert_down_bytes(&s));
    }
    return b;
}

static size_t kv_bytes_used(fp_session *s) {
    const kv_state *kv = session_kv(s);
    const int n = session_n_tokens(s);
    size_t b = 0;
    for (int l = 0; l < kv->n_layer; l++) {
        const layer_kv *L = &kv->layers[l];
        b += (size_t)(n < kv->n_swa ? n : kv->n_swa) * kv->head_dim * 4;
        b += (size_t)L->n_comp * kv->head_dim * 4 + (size_t)L->n_idx * kv->idx_head_dim * 4;
        b += 2 * (size_t)L->attn.rows * L->attn.width * 4 + 2 * (size_t)L->idxc.rows * L->idxc.width * 4;
    }
    return b;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *frontiers = "128,512,1024";
    int gen = 8, threads = 0, chunk = 0, membw_mb = 1024;
    unsigned long long seed = 1;
    enum { O_FR = 1000, O_GEN, O_CHUNK, O_SEED, O_BW };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"frontiers", required_argument, 0, O_FR},
        {"gen", required_argument, 0, O_GEN}, {"threads", required_argument, 0, 't'},
        {"chunk", required_argument, 0, O_CHUNK}, {"seed", required_argument, 0, O_SEED},
        {"membw-mb", required_argument, 0, O_BW}, {"help", no_argument, 0, 'h'}, POOL_CLI_LONG_OPTIONS,
        {0, 0, 0, 0},
    };
    pool_cli pc;
    pool_cli_init(&pc);
    char perr[256];
    int o;
    while ((o = getopt_long(argc, argv, "m:t:h", opts, NULL)) != -1) {
        switch (o) {
        case 'm': model_path = optarg; break;
        case O_FR: frontiers = optarg; break;
        case O_GEN: gen = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case O_CHUNK: chunk = atoi(optarg); break;
        case O_SEED: seed = strtoull(optarg, NULL, 10); break;
        case O_BW: membw_mb = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        default: {
            const int pr = pool_cli_option(&pc, o, optarg, perr, sizeof perr);
            if (pr > 0) break;
            if (pr < 0) fprintf(stderr, "flashpool-bench: %s\n", perr);
            else usage(stderr);
            return 2;
        }
        }
    }
    if (!model_path) {
        fprintf(stderr, "flashpool-bench: no model: use -m MODEL.gguf (see --help)\n");
        return 2;
    }
    int fr[64], nfr = 0;
    for (const char *p = frontiers; *p && nfr < 64;) {
        fr[nfr] = atoi(p);
        if (fr[nfr] <= 0 || (nfr && fr[nfr] <= fr[nfr - 1])) {
            fprintf(stderr, "flashpool-bench: --frontiers must be increasing positive numbers\n");
            return 2;
        }
        nfr++;
        p = strchr(p, ',');
        if (!p) break;
        p++;
    }
    char err[1024];
    engine_opts eo = {.model_path = model_path, .n_threads = threads, .prefill_chunk = chunk};
    fprintf(stderr, "flashpool-bench: loading %s\n", model_path);
    fp_engine *e = engine_open(&eo, err, sizeof err);
    if (!e) {
        fprintf(stderr, "flashpool-bench: %s\n", err);
        return 1;
    }
    pool_setup ps;
    if (pool_cli_apply(&pc, e, stderr, &ps, err, sizeof err)) {
        fprintf(stderr, "flashpool-bench: %s\n", err);
        pool_cli_close(&ps, stderr);
        engine_close(e);
        return 1;
    }
    const fwd_observer *tobs = pool_cli_observer(&ps);
    const model *m = engine_model(e);
    const int ctx = fr[nfr - 1] + gen * nfr + 1;
    fp_session *s = session_open(e, ctx, err, sizeof err);
    if (!s) {
        fprintf(stderr, "flashpool-bench: %s\n", err);
        pool_cli_close(&ps, stderr);
        engine_close(e);
        return 1;
    }
    fprintf(stderr, "flashpool-bench: measuring memory bandwidth (%d MiB)\n", membw_mb);
    /* Other processes share this host's memory bus: the bandwidth is measured
     * again around every decode run and the BEST figure seen so far is the
     * roofline (a contended low reading would flatter the percentage). The
     * lowest reading next to each run is printed too, as the spread. */
    threadpool *btp = engine_core(e)->lc.tp;
    double bw = membw_measure(btp, (size_t)membw_mb << 20, 5);
    int32_t *seq = malloc((size_t)ctx * sizeof(int32_t));
    uint64_t x = seed;
    for (int i = 0; i < ctx; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        seq[i] = (int32_t)((x >> 33) % (uint64_t)m->hp.n_vocab);
    }
    printf("model,layers,experts,threads,frontier,prefill_tokens,prefill_tok_s,decode_tokens,decode_tok_s,"
           "ms_per_token,kv_bytes,weight_bytes_per_token,membw_gb_s,roofline_ms,roofline_pct,membw_low_gb_s\n");
    int rc = 0;
    for (int f = 0; f < nfr && rc == 0; f++) {
        const int n_pre = fr[f] - session_n_tokens(s);
        double pre_tps = 0;
        if (n_pre > 0) {
            progress pg;
            progress_begin(&pg, "prefill");
            const double t0 = now_seconds();
            if (session_eval(s, seq + session_n_tokens(s), n_pre, NULL, tobs,
                             progress_cb, &pg, err, sizeof err)) {
                fprintf(stderr, "flashpool-bench: %s\n", err);
                rc = 1;
                break;
            }
            progress_end(&pg);
            pre_tps = n_pre / (now_seconds() - t0);
        }
        double bw_lo = membw_measure(btp, (size_t)membw_mb << 20, 3);
        if (bw_lo > bw) bw = bw_lo;
        double bpt = 0;   /* mean over the positions about to be decoded */
        for (int g = 0; g < gen; g++) bpt += bytes_per_token(m, session_n_tokens(s) + g) / gen;
        const double t0 = now_seconds();
        for (int g = 0; g < gen; g++) {
            const int32_t tok = seq[session_n_tokens(s)];
            if (session_eval(s, &tok, 1, NULL, tobs, NULL, NULL, err, sizeof err)) {
                fprintf(stderr, "flashpool-bench: %s\n", err);
                rc = 1;
                break;
            }
        }
        const double dt = (now_seconds() - t0) / (gen > 0 ? gen : 1);
        const double bw_after = membw_measure(btp, (size_t)membw_mb << 20, 3);
        if (bw_after > bw) bw = bw_after;
        if (bw_after < bw_lo) bw_lo = bw_after;
        const double roof = bpt / bw;
        printf("%s,%d,%d,%d,%d,%d,%.2f,%d,%.3f,%.2f,%zu,%.0f,%.2f,%.2f,%.1f,%.2f\n",
               strrchr(model_path, '/') ? strrchr(model_path, '/') + 1 : model_path, m->hp.n_layer,
               m->hp.n_expert, threadpool_size(engine_core(e)->lc.tp), fr[f], n_pre, pre_tps, gen,
               gen > 0 ? 1.0 / dt : 0.0, dt * 1e3, kv_bytes_used(s), bpt, bw / 1e9, roof * 1e3,
               gen > 0 ? 100.0 * roof / dt : 0.0, bw_lo / 1e9);
        fflush(stdout);
    }
    free(seq);
    session_close(s);
    if (pool_cli_close(&ps, stderr)) rc = 1;
    engine_close(e);
    return rc;
}
