/* metrics.c — renders pool, expert-cache, session-cache and server counters
 * as Prometheus text exposition (see metrics.h). Names follow Prometheus
 * conventions: *_total counters, base units (seconds, bytes), one # HELP and
 * # TYPE per family, histogram buckets cumulative with le="+Inf" = _count. */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Label values may hold any text (node names come from a user's cluster
 * file, endpoints from requests): escape \ " and newline as the format asks. */
static void put_label(FILE *f, const char *v) {
    for (; v && *v; v++) {
        if (*v == '\\') fputs("\\\\", f);
        else if (*v == '"') fputs("\\\"", f);
        else if (*v == '\n') fputs("\\n", f);
        else fputc(*v, f);
    }
}

static void family(FILE *f, const char *name, const char *type, const char *help) {
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample without labels. */
static void sample_u(FILE *f, const char *name, uint64_t v) { fprintf(f, "%s %llu\n", name, (unsigned long long)v); }
static void sample_d(FILE *f, const char *name, double v) { fprintf(f, "%s %.17g\n", name, v); }

static void one_u(FILE *f, const char *name, const char *type, const char *help, uint64_t v) {
    family(f, name, type, help);
    sample_u(f, name, v);
}
static void one_d(FILE *f, const char *name, const char *type, const char *help, double v) {
    family(f, name, type, help);
    sample_d(f, name, v);
}

/* name{node="..."} v for every node; get picks the value. */
typedef uint64_t (*node_u_fn)(const pool_node_stats *s);
static void per_node_u(FILE *f, const pool_stats *ps, const char *name, const char *type, const char *help,
                       node_u_fn get) {
    family(f, name, type, help);
    for (int n = 0; n < ps->n_nodes; n++) {
        fprintf(f, "%s{node=\"", name);
        put_label(f, ps->nodes[n].name);
        fprintf(f, "\"} %llu\n", (unsigned long long)get(&ps->nodes[n]));
    }
}

#define NODE_GETTER(field) \
    static uint64_t get_##field(const pool_node_stats *s) { return (uint64_t)s->field; }
NODE_GETTER(up)
NODE_GETTER(draining)
NODE_GETTER(dispatches)
NODE_GETTER(items)
NODE_GETTER(failures)
NODE_GETTER(rejoins)
NODE_GETTER(late_dropped)
NODE_GETTER(deadline_misses)
NODE_GETTER(bytes_sent)
NODE_GETTER(bytes_recv)

/* A pool_hist (ms, per-bucket counts) as a Prometheus histogram in seconds. */
static void hist_node(FILE *f, const char *name, const char *node, const pool_hist *h) {
    static const double bound[POOL_HIST_N] = POOL_HIST_BOUNDS_MS;
    uint64_t cum = 0;
    for (int i = 0; i <= POOL_HIST_N; i++) {
        cum += h->count[i];
        fprintf(f, "%s_bucket{node=\"", name);
        put_label(f, node);
        if (i < POOL_HIST_N) fprintf(f, "\",le=\"%g\"} %llu\n", bound[i] * 1e-3, (unsigned long long)cum);
        else fprintf(f, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    fprintf(f, "%s_sum{node=\"", name);
    put_label(f, node);
    fprintf(f, "\"} %.17g\n%s_count{node=\"", h->sum_ms * 1e-3, name);
    put_label(f, node);
    fprintf(f, "\"} %llu\n", (unsigned long long)cum);
}

static void render_pool(FILE *f, const pool_stats *ps) {
    family(f, "flashpool_pool_items_total", "counter", "Routed (token, expert) items by where they were computed.");
    fprintf(f, "flashpool_pool_items_total{where=\"cache\"} %llu\n", (unsigned long long)ps->items_cached);
    fprintf(f, "flashpool_pool_items_total{where=\"disk\"} %llu\n", (unsigned long long)ps->items_disk);
    fprintf(f, "flashpool_pool_items_total{where=\"node\"} %llu\n", (unsigned long long)ps->items_remote);
    one_u(f, "flashpool_pool_layers_total", "counter", "MoE layers computed by the pool.", ps->layers);
    one_u(f, "flashpool_pool_fallback_items_total", "counter",
          "Items not computed where the placement put them first (their node failed or was down).",
          ps->fallback_items);
    one_u(f, "flashpool_pool_redispatches_total", "counter", "Dispatches re-sent to a replica after a failure.",
          ps->redispatches);
    one_u(f, "flashpool_pool_disk_reads_total", "counter", "Expert reads from the model file.", ps->disk_reads);
    one_u(f, "flashpool_pool_disk_read_bytes_total", "counter", "Bytes of experts read from the model file.",
          ps->disk_bytes);
    one_d(f, "flashpool_pool_wait_seconds_total", "counter", "Time spent waiting for expert results.", ps->wait_s);
    one_d(f, "flashpool_pool_remote_wait_seconds_total", "counter", "Of which waiting for expert nodes.",
          ps->remote_wait_s);

    const expert_cache_stats *c = &ps->cache;
    one_u(f, "flashpool_expert_cache_lookups_total", "counter", "Hot-expert cache lookups.", c->lookups);
    one_u(f, "flashpool_expert_cache_hits_total", "counter", "Hot-expert cache hits.", c->hits);
    one_u(f, "flashpool_expert_cache_misses_total", "counter", "Hot-expert cache misses.", c->misses);
    one_u(f, "flashpool_expert_cache_evictions_total", "counter", "Experts evicted from the hot-expert cache.",
          c->evictions);
    one_u(f, "flashpool_expert_cache_bytes", "gauge", "Bytes of experts held in the hot-expert cache.",
          (uint64_t)c->bytes_used);
    one_u(f, "flashpool_expert_cache_budget_bytes", "gauge", "Hot-expert cache budget.", (uint64_t)c->budget);
    one_u(f, "flashpool_expert_cache_experts", "gauge", "Experts resident in the hot-expert cache.",
          (uint64_t)(c->resident > 0 ? c->resident : 0));

    if (ps->n_nodes <= 0 || !ps->nodes) return;
    per_node_u(f, ps, "flashpool_node_up", "gauge", "1 if the expert node is up and used.", get_up);
    per_node_u(f, ps, "flashpool_node_draining", "gauge", "1 if the node announced a drain.", get_draining);
    per_node_u(f, ps, "flashpool_node_dispatches_total", "counter", "DISPATCH frames sent to the node.",
               get_dispatches);
    per_node_u(f, ps, "flashpool_node_items_total", "counter", "Items sent to the node.", get_items);
    per_node_u(f, ps, "flashpool_node_down_total", "counter", "Times the node was marked down.", get_failures);
    per_node_u(f, ps, "flashpool_node_rejoins_total", "counter", "Times the node came back (live rejoin).",
               get_rejoins);
    per_node_u(f, ps, "flashpool_node_late_answers_dropped_total", "counter",
               "Answers that arrived after failover (recognised by request id and dropped).", get_late_dropped);
    per_node_u(f, ps, "flashpool_node_deadline_misses_total", "counter", "Dispatches not answered by their deadline.",
               get_deadline_misses);
    per_node_u(f, ps, "flashpool_node_sent_bytes_total", "counter", "Bytes sent to the node.", get_bytes_sent);
    per_node_u(f, ps, "flashpool_node_received_bytes_total", "counter", "Bytes received from the node.",
               get_bytes_recv);
    family(f, "flashpool_node_failovers_total", "counter",
           "Expert groups of a failed node re-routed, by destination (another replica or this machine).");
    for (int n = 0; n < ps->n_nodes; n++) {
        const pool_node_stats *s = &ps->nodes[n];
        fputs("flashpool_node_failovers_total{node=\"", f);
        put_label(f, s->name);
        fprintf(f, "\",to=\"replica\"} %llu\n", (unsigned long long)s->failover_replica);
        fputs("flashpool_node_failovers_total{node=\"", f);
        put_label(f, s->name);
        fprintf(f, "\",to=\"local\"} %llu\n", (unsigned long long)s->failover_local);
    }
    family(f, "flashpool_node_rtt_seconds", "histogram",
           "Dispatch round trip minus the node's reported compute time (network and protocol).");
    for (int n = 0; n < ps->n_nodes; n++) hist_node(f, "flashpool_node_rtt_seconds", ps->nodes[n].name, &ps->nodes[n].rtt_hist);
    family(f, "flashpool_node_dispatch_seconds", "histogram", "DISPATCH sent to COMBINE received.");
    for (int n = 0; n < ps->n_nodes; n++)
        hist_node(f, "flashpool_node_dispatch_seconds", ps->nodes[n].name, &ps->nodes[n].dispatch_hist);
}

static void render_sessions(FILE *f, const session_cache_stats *s) {
    one_u(f, "flashpool_sessions", "gauge", "KV sessions held in RAM.", (uint64_t)(s->sessions > 0 ? s->sessions : 0));
    one_u(f, "flashpool_sessions_busy", "gauge", "KV sessions serving a request now.",
          (uint64_t)(s->busy > 0 ? s->busy : 0));
    one_u(f, "flashpool_sessions_max", "gauge", "KV sessions the RAM budget holds.",
          (uint64_t)(s->max_sessions > 0 ? s->max_sessions : 0));
    one_u(f, "flashpool_session_ram_bytes", "gauge", "RAM used by KV sessions.", s->ram_used);
    one_u(f, "flashpool_session_ram_budget_bytes", "gauge", "RAM budget for KV sessions.", s->ram_budget);
    family(f, "flashpool_session_cache_hits_total", "counter", "Prompt prefix found, by where.");
    fprintf(f, "flashpool_session_cache_hits_total{kind=\"memory\"} %llu\n", (unsigned long long)s->hit_memory);
    fprintf(f, "flashpool_session_cache_hits_total{kind=\"fork\"} %llu\n", (unsigned long long)s->hit_fork);
    fprintf(f, "flashpool_session_cache_hits_total{kind=\"rewind\"} %llu\n", (unsigned long long)s->hit_rewind);
    fprintf(f, "flashpool_session_cache_hits_total{kind=\"disk\"} %llu\n", (unsigned long long)s->hit_disk);
    one_u(f, "flashpool_session_cache_misses_total", "counter", "Prompts with no cached prefix.", s->miss);
    one_u(f, "flashpool_session_cache_evictions_total", "counter", "KV sessions evicted from RAM.", s->evictions);
    one_u(f, "flashpool_session_cache_saves_total", "counter", "KV sessions saved to disk.", s->saves);
    one_u(f, "flashpool_session_tokens_cached_total", "counter", "Prompt tokens served from cached KV.",
          s->tokens_cached);
    one_u(f, "flashpool_session_tokens_evaluated_total", "counter", "Prompt tokens evaluated.", s->tokens_evaluated);
}

static void render_server(FILE *f, const metrics_server *s) {
    one_u(f, "flashpool_prompt_tokens_total", "counter", "Prompt tokens received.", s->prompt_tokens);
    one_u(f, "flashpool_generated_tokens_total", "counter", "Tokens generated.", s->generated_tokens);
    one_d(f, "flashpool_prefill_tokens_per_second", "gauge", "Recent prompt processing rate.", s->prefill_tok_s);
    one_d(f, "flashpool_decode_tokens_per_second", "gauge", "Recent generation rate.", s->decode_tok_s);
    one_u(f, "flashpool_queue_depth", "gauge", "Requests waiting for a slot.",
          (uint64_t)(s->queue_depth > 0 ? s->queue_depth : 0));
    one_u(f, "flashpool_requests_in_flight", "gauge", "Requests being served.",
          (uint64_t)(s->in_flight > 0 ? s->in_flight : 0));
    family(f, "flashpool_http_requests_total", "counter", "HTTP requests by endpoint and status code.");
    for (int i = 0; i < s->n_requests && s->requests; i++) {
        fputs("flashpool_http_requests_total{endpoint=\"", f);
        put_label(f, s->requests[i].endpoint);
        fprintf(f, "\",code=\"%d\"} %llu\n", s->requests[i].status, (unsigned long long)s->requests[i].count);
    }
}

int metrics_render(const metrics_inputs *in, char **out, size_t *len, char *err, size_t errlen) {
    char *buf = NULL;
    size_t n = 0;
    *out = NULL;
    *len = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return snprintf(err, errlen, "metrics: out of memory"), -1;
    if (in->pool) render_pool(f, in->pool);
    if (in->sessions) render_sessions(f, in->sessions);
    if (in->server) render_server(f, in->server);
    const int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        free(buf);
        return snprintf(err, errlen, "metrics: out of memory rendering"), -1;
    }
    *out = buf;
    *len = n;
    return 0;
}
