/* main_cachesim.c — `flashpool-cachesim`: replays a recorded routing trace
 * (`flashpool --trace-routing FILE`) through the coordinator's hot-expert
 * cache policies at several RAM budgets and prints their hit rates next to
 * Belady's optimum (design.md §5). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expert_cache.h"
#include "model.h"
#include "routing_trace.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: flashpool-cachesim --trace FILE (-m MODEL.gguf | --expert-mb X) [options]\n"
        "\n"
        "Hit rate of the hot-expert cache policies on a routing trace, at several\n"
        "budgets, against Belady's optimum (the best any policy could do).\n"
        "\n"
        "      --trace FILE        routing trace written by flashpool --trace-routing\n"
        "  -m, --model FILE        the model the trace came from (gives expert sizes)\n"
        "      --expert-mb X       or: size of one expert in MiB (all layers alike)\n"
        "      --budgets-mb LIST   cache budgets in MiB, e.g. 64,256,1024\n"
        "                          (default: 1,2,5,10,25,50%% of all experts)\n"
        "      --age N             LFU aging period in accesses (default: 4 x layers x experts)\n"
        "      --per-token         one cache access group per token and layer, even in\n"
        "                          prefill batches (default: the batches the pool saw)\n"
        "  -h, --help\n"
        "\n"
        "Output: a table on stdout; hit rate = hits / expert accesses.\n");
}

int main(int argc, char **argv) {
    const char *trace_path = NULL, *model_path = NULL, *budgets = NULL;
    double expert_mb = 0;
    unsigned long long age = 0;
    int per_token = 0;
    enum { O_TRACE = 1000, O_EMB, O_BUD, O_AGE, O_PT };
    static const struct option opts[] = {
        {"trace", required_argument, 0, O_TRACE}, {"model", required_argument, 0, 'm'},
        {"expert-mb", required_argument, 0, O_EMB}, {"budgets-mb", required_argument, 0, O_BUD},
        {"age", required_argument, 0, O_AGE}, {"per-token", no_argument, 0, O_PT},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        switch (o) {
        case O_TRACE: trace_path = optarg; break;
        case 'm': model_path = optarg; break;
        case O_EMB: expert_mb = strtod(optarg, NULL); break;
        case O_BUD: budgets = optarg; break;
        case O_AGE: age = strtoull(optarg, NULL, 10); break;
        case O_PT: per_token = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!trace_path || (!model_path && expert_mb <= 0)) {
        fprintf(stderr, "flashpool-cachesim: need --trace FILE and either -m MODEL.gguf or --expert-mb X (see --help)\n");
        return 2;
    }
    char err[1024];
    routing_trace *t = routing_trace_read(trace_path, err, sizeof err);
    if (!t) {
        fprintf(stderr, "flashpool-cachesim: %s\n", err);
        return 1;
    }
    size_t *lb = malloc((size_t)t->n_layer * sizeof(size_t));
    if (!lb) return 1;
    if (model_path) {
        model *m = model_open(model_path, err, sizeof err);
        if (!m) {
            fprintf(stderr, "flashpool-cachesim: %s\n", err);
            return 1;
        }
        if (m->hp.n_layer != t->n_layer || m->hp.n_expert != t->n_expert) {
            fprintf(stderr, "flashpool-cachesim: the trace is for %d layers x %d experts but %s has %d x %d\n",
                    t->n_layer, t->n_expert, model_path, m->hp.n_layer, m->hp.n_expert);
            return 1;
        }
        for (int l = 0; l < t->n_layer; l++) {
            const expert_shape s = model_expert_shape(m, l);
            lb[l] = 2 * expert_gate_bytes(&s) + expert_down_bytes(&s);
        }
        model_close(m);
    } else {
        for (int l = 0; l < t->n_layer; l++) lb[l] = (size_t)(expert_mb * 1048576.0);
    }
    size_t maxb = 0, total = 0;
    for (int l = 0; l < t->n_layer; l++) {
        if (lb[l] > maxb) maxb = lb[l];
        total += lb[l] * (size_t)t->n_expert;
    }
    double bud[64];
    int nb = 0;
    if (budgets) {
        for (const char *p = budgets; *p && nb < 64;) {
            bud[nb] = strtod(p, NULL) * 1048576.0;
            if (bud[nb] <= 0) {
                fprintf(stderr, "flashpool-cachesim: --budgets-mb must be positive numbers\n");
                return 2;
            }
            nb++;
            p = strchr(p, ',');
            if (!p) break;
            p++;
        }
    } else {
        const double pct[] = {1, 2, 5, 10, 25, 50};
        for (int i = 0; i < 6; i++) bud[nb++] = (double)total * pct[i] / 100.0;
    }
    cache_trace ct;
    if (routing_trace_to_cache_trace(t, per_token, &ct)) {
        fprintf(stderr, "flashpool-cachesim: out of memory\n");
        return 1;
    }
    printf("# trace %s: %zu records, %zu expert accesses in %zu groups; %d layers x %d experts, "
           "expert %.2f MiB, all experts %.1f MiB\n",
           trace_path, t->n_rec, ct.n_keys, ct.n_groups, t->n_layer, t->n_expert, maxb / 1048576.0,
           total / 1048576.0);
    printf("%12s %7s %8s %9s %9s %9s %11s\n", "budget_mib", "slots", "pct_all", "lru_hit%", "lfu_hit%",
           "belady%", "lfu/belady");
    const double n = ct.n_keys ? (double)ct.n_keys : 1.0;
    for (int i = 0; i < nb; i++) {
        const size_t b = (size_t)bud[i];
        const uint64_t lru = cache_simulate(&ct, t->n_layer, t->n_expert, lb, b, CACHE_LRU, age);
        const uint64_t lfu = cache_simulate(&ct, t->n_layer, t->n_expert, lb, b, CACHE_LFU, age);
        const uint64_t opt = cache_belady(&ct, b / maxb);
        printf("%12.1f %7zu %7.1f%% %8.2f%% %8.2f%% %8.2f%% %11.3f\n", b / 1048576.0, b / maxb,
               100.0 * (double)b / (double)total, 100.0 * (double)lru / n, 100.0 * (double)lfu / n,
               100.0 * (double)opt / n, opt ? (double)lfu / (double)opt : 1.0);
    }
    cache_trace_free(&ct);
    routing_trace_free(t);
    free(lb);
    return 0;
}
