/* test_metrics.c — coordinator/metrics.c: the rendered text is valid
 * Prometheus exposition (every line a # HELP / # TYPE comment or a sample
 * `name{label="v",...} value`, each sample's family typed before use, label
 * values escaped), counters end in _total, histogram buckets are cumulative
 * and monotonic with le="+Inf" equal to _count, and the input values come
 * out where they belong. */
#include <ctype.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "metrics.h"

#define MAX_FAM 256

typedef struct fam {
    char name[128], type[32];
    int help;
} fam;

typedef struct parsed {
    fam f[MAX_FAM];
    int n_fam, n_samples;
} parsed;

static fam *find_fam(parsed *p, const char *name) {
    for (int i = 0; i < p->n_fam; i++)
        if (!strcmp(p->f[i].name, name)) return &p->f[i];
    return NULL;
}

static int name_char(int c, int first) { return isalpha(c) || c == '_' || c == ':' || (!first && isdigit(c)); }

/* The family a sample belongs to: histogram suffixes map to their base. */
static fam *family_of(parsed *p, const char *metric) {
    fam *f = find_fam(p, metric);
    if (f) return f;
    static const char *suf[] = {"_bucket", "_sum", "_count"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(metric), k = strlen(suf[i]);
        if (n > k && !strcmp(metric + n - k, suf[i])) {
            char base[128];
            snprintf(base, sizeof base, "%.*s", (int)(n - k), metric);
            f = find_fam(p, base);
            if (f && !strcmp(f->type, "histogram")) return f;
        }
    }
    return NULL;
}

/* Parses one sample line; fails the test on any syntax error. */
static void parse_sample(parsed *p, const char *line) {
    const char *s = line;
    char metric[128];
    size_t n = 0;
    assert_true(name_char((unsigned char)*s, 1));
    while (name_char((unsigned char)*s, 0) && n < sizeof metric - 1) metric[n++] = *s++;
    metric[n] = 0;
    if (*s == '{') {
        s++;
        for (;;) {
            assert_true(name_char((unsigned char)*s, 1));
            while (name_char((unsigned char)*s, 0)) s++;
            assert_int_equal(*s++, '=');
            assert_int_equal(*s++, '"');
            while (*s && *s != '"') {
                if (*s == '\\') {
                    s++;
                    assert_true(*s == '\\' || *s == '"' || *s == 'n');
                }
                assert_true(*s != '\n');
                s++;
            }
            assert_int_equal(*s++, '"');
            if (*s == ',') { s++; continue; }
            assert_int_equal(*s++, '}');
            break;
        }
    }
    assert_int_equal(*s++, ' ');
    char *end;
    double v = strtod(s, &end);
    assert_true(end != s);
    assert_int_equal(*end, 0);
    assert_false(isnan(v));
    fam *f = family_of(p, metric);
    if (!f) {
        fail_msg("sample %s before its # TYPE", metric);
        return;
    }
    if (!strcmp(f->type, "counter")) {
        assert_true(v >= 0);
        size_t m = strlen(f->name);
        assert_true(m > 6 && !strcmp(f->name + m - 6, "_total"));
    }
    p->n_samples++;
}

static void parse_all(parsed *p, const char *text, size_t len) {
    memset(p, 0, sizeof(*p));
    assert_int_equal(strlen(text), len);
    assert_true(len == 0 || text[len - 1] == '\n');
    const char *s = text;
    while (*s) {
        const char *nl = strchr(s, '\n');
        assert_non_null(nl);
        char line[1024];
        assert_true((size_t)(nl - s) < sizeof line);
        memcpy(line, s, (size_t)(nl - s));
        line[nl - s] = 0;
        s = nl + 1;
        if (!strncmp(line, "# HELP ", 7)) {
            char name[128];
            assert_int_equal(sscanf(line + 7, "%127s", name), 1);
            assert_null(find_fam(p, name));         /* one HELP per family, before TYPE */
            assert_true(p->n_fam < MAX_FAM);
            snprintf(p->f[p->n_fam].name, sizeof p->f[0].name, "%s", name);
            p->f[p->n_fam++].help = 1;
        } else if (!strncmp(line, "# TYPE ", 7)) {
            char name[128], type[32];
            assert_int_equal(sscanf(line + 7, "%127s %31s", name, type), 2);
            fam *f = find_fam(p, name);
            assert_non_null(f);
            assert_int_equal(f->type[0], 0);
            assert_true(!strcmp(type, "counter") || !strcmp(type, "gauge") || !strcmp(type, "histogram"));
            snprintf(f->type, sizeof f->type, "%s", type);
        } else {
            assert_true(line[0] != '#' && line[0] != 0);
            parse_sample(p, line);
        }
    }
}

/* The value of the sample line that starts with `prefix ` exactly; fails if absent. */
static double value_of(const char *text, const char *prefix) {
    size_t n = strlen(prefix);
    for (const char *s = text; s && *s; s = strchr(s, '\n'), s = s ? s + 1 : NULL)
        if (!strncmp(s, prefix, n) && s[n] == ' ') return strtod(s + n + 1, NULL);
    fail_msg("no sample '%s'", prefix);
    return -1;
}

static void fill_pool(pool_stats *ps, pool_node_stats nodes[2]) {
    memset(ps, 0, sizeof(*ps));
    memset(nodes, 0, 2 * sizeof(*nodes));
    snprintf(nodes[0].name, sizeof nodes[0].name, "alpha");
    snprintf(nodes[1].name, sizeof nodes[1].name, "we\"ird\\name");
    nodes[0].up = 1;
    nodes[0].dispatches = 40;
    nodes[0].deadline_misses = 3;
    nodes[0].failover_replica = 5;
    nodes[0].failover_local = 7;
    nodes[0].bytes_sent = 123456;
    nodes[1].rejoins = 2;
    const double rtts[] = {0.05, 0.3, 0.3, 2.0, 9.0, 400.0, 5000.0};
    for (size_t i = 0; i < sizeof rtts / sizeof rtts[0]; i++) {
        pool_hist_add(&nodes[0].rtt_hist, rtts[i]);
        pool_hist_add(&nodes[0].dispatch_hist, rtts[i] + 1.0);
    }
    ps->n_nodes = 2;
    ps->nodes = nodes;
    ps->items_cached = 11;
    ps->items_disk = 22;
    ps->items_remote = 33;
    ps->cache.hits = 9;
    ps->cache.misses = 4;
    ps->cache.bytes_used = 1 << 20;
}

static void test_full_render(void **state) {
    (void)state;
    pool_stats ps;
    pool_node_stats nodes[2];
    fill_pool(&ps, nodes);
    session_cache_stats ss = {.sessions = 3, .hit_memory = 5, .hit_disk = 1, .miss = 2};
    metrics_request_count rq[] = {{"/v1/chat/completions", 200, 17}, {"/v1/completions", 503, 2}};
    metrics_server srv = {.generated_tokens = 99, .decode_tok_s = 12.5, .queue_depth = 4, .requests = rq,
                          .n_requests = 2};
    metrics_inputs in = {.pool = &ps, .sessions = &ss, .server = &srv};
    char *text, err[128];
    size_t len;
    assert_int_equal(metrics_render(&in, &text, &len, err, sizeof err), 0);
    parsed *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    parse_all(p, text, len);
    assert_true(p->n_samples > 50);
    for (int i = 0; i < p->n_fam; i++) assert_true(p->f[i].help && p->f[i].type[0]);

    assert_int_equal(value_of(text, "flashpool_node_up{node=\"alpha\"}"), 1);
    assert_int_equal(value_of(text, "flashpool_node_up{node=\"we\\\"ird\\\\name\"}"), 0);
    assert_int_equal(value_of(text, "flashpool_node_deadline_misses_total{node=\"alpha\"}"), 3);
    assert_int_equal(value_of(text, "flashpool_node_failovers_total{node=\"alpha\",to=\"replica\"}"), 5);
    assert_int_equal(value_of(text, "flashpool_node_failovers_total{node=\"alpha\",to=\"local\"}"), 7);
    assert_int_equal(value_of(text, "flashpool_node_sent_bytes_total{node=\"alpha\"}"), 123456);
    assert_int_equal(value_of(text, "flashpool_node_rejoins_total{node=\"we\\\"ird\\\\name\"}"), 2);
    assert_int_equal(value_of(text, "flashpool_pool_items_total{where=\"disk\"}"), 22);
    assert_int_equal(value_of(text, "flashpool_expert_cache_hits_total"), 9);
    assert_int_equal(value_of(text, "flashpool_expert_cache_bytes"), 1 << 20);
    assert_int_equal(value_of(text, "flashpool_session_cache_hits_total{kind=\"memory\"}"), 5);
    assert_int_equal(value_of(text, "flashpool_generated_tokens_total"), 99);
    assert_true(value_of(text, "flashpool_decode_tokens_per_second") == 12.5);
    assert_int_equal(value_of(text, "flashpool_queue_depth"), 4);
    assert_int_equal(value_of(text, "flashpool_http_requests_total{endpoint=\"/v1/completions\",code=\"503\"}"), 2);

    /* rtt histogram of alpha: cumulative, monotonic, +Inf == _count == 7 */
    const char *names[] = {"flashpool_node_rtt_seconds", "flashpool_node_dispatch_seconds"};
    for (int h = 0; h < 2; h++) {
        double prev = -1, prev_le = -1;
        int buckets = 0;
        char pre[200];
        snprintf(pre, sizeof pre, "%s_bucket{node=\"alpha\",le=\"", names[h]);
        for (const char *s = strstr(text, pre); s; s = strstr(s + 1, pre)) {
            const char *le = s + strlen(pre);
            double b = strncmp(le, "+Inf", 4) ? strtod(le, NULL) : INFINITY;
            double v = strtod(strchr(le, ' ') + 1, NULL);
            assert_true(b > prev_le);
            assert_true(v >= prev);
            prev_le = b;
            prev = v;
            buckets++;
        }
        assert_int_equal(buckets, POOL_HIST_N + 1);
        assert_true(isinf(prev_le));
        assert_int_equal(prev, 7);
        snprintf(pre, sizeof pre, "%s_count{node=\"alpha\"}", names[h]);
        assert_int_equal(value_of(text, pre), 7);
    }
    /* 0.05 and 0.3 ms: le=0.0001 holds 1, le=0.0005 holds 3 */
    assert_int_equal(value_of(text, "flashpool_node_rtt_seconds_bucket{node=\"alpha\",le=\"0.0001\"}"), 1);
    assert_int_equal(value_of(text, "flashpool_node_rtt_seconds_bucket{node=\"alpha\",le=\"0.0005\"}"), 3);
    assert_int_equal(value_of(text, "flashpool_node_rtt_seconds_bucket{node=\"alpha\",le=\"1\"}"), 6);
    double sum = value_of(text, "flashpool_node_rtt_seconds_sum{node=\"alpha\"}");
    assert_true(fabs(sum - 5411.65e-3) < 1e-9);
    free(p);
    free(text);
}

static void test_partial_inputs(void **state) {
    (void)state;
    metrics_inputs none = {0};
    char *text, err[128];
    size_t len;
    assert_int_equal(metrics_render(&none, &text, &len, err, sizeof err), 0);
    assert_int_equal(len, 0);
    free(text);
    /* a pool without nodes (SSD streaming): no node families, still valid */
    pool_stats ps;
    memset(&ps, 0, sizeof ps);
    ps.items_disk = 5;
    metrics_inputs in = {.pool = &ps};
    assert_int_equal(metrics_render(&in, &text, &len, err, sizeof err), 0);
    parsed *p = calloc(1, sizeof(*p));
    parse_all(p, text, len);
    assert_null(strstr(text, "flashpool_node_"));
    assert_int_equal(value_of(text, "flashpool_pool_items_total{where=\"disk\"}"), 5);
    free(p);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_render),
        cmocka_unit_test(test_partial_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
