/* test_routing_trace.c — routing traces: what the observer writes reads back
 * exactly (weights bit-for-bit), the reader rejects damaged files naming the
 * line, prefill batches become single cache-access groups, and an observer
 * chain calls both observers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "observer_chain.h"
#include "routing_trace.h"

static model fake_model(void) {
    model m;
    memset(&m, 0, sizeof m);
    snprintf(m.path, sizeof m.path, "dir/odd \"name\".gguf");
    m.hp.n_layer = 3;
    m.hp.n_expert = 8;
    m.hp.n_expert_used = 2;
    return m;
}

static void tmpname(char *buf, size_t n) {
    snprintf(buf, n, "/tmp/fp_test_trace_XXXXXX");
    const int fd = mkstemp(buf);
    assert_true(fd >= 0);
    close(fd);
}

static void test_roundtrip_and_groups(void **st) {
    (void)st;
    char path[64], err[512];
    tmpname(path, sizeof path);
    model m = fake_model();
    routing_trace_writer *w = routing_trace_create(path, &m, err, sizeof err);
    assert_non_null(w);
    fwd_observer o = routing_trace_observer(w);
    assert_null(o.on_hc);
    /* A 2-token prefill (layer-major), then one decoded token. */
    const float wts[2] = {0.1f / 3.0f, 1.2345678e-7f};
    const int32_t ex[3][2][2] = {{{1, 2}, {2, 3}}, {{4, 5}, {5, 4}}, {{0, 7}, {7, 6}}};
    for (int l = 0; l < 3; l++)
        for (int t = 0; t < 2; t++) o.on_route(o.ud, t, l, ex[l][t], wts, 2);
    for (int l = 0; l < 3; l++) o.on_route(o.ud, 2, l, ex[l][0], wts, 2);
    assert_int_equal(routing_trace_close(w, err, sizeof err), 0);

    routing_trace *t = routing_trace_read(path, err, sizeof err);
    assert_non_null(t);
    assert_int_equal(t->n_layer, 3);
    assert_int_equal(t->n_expert, 8);
    assert_int_equal(t->n_used, 2);
    assert_int_equal(t->n_rec, 9);
    assert_int_equal(t->rec[1].pos, 1);
    assert_int_equal(t->rec[1].layer, 0);
    assert_int_equal(t->rec[1].experts[1], 3);
    assert_memory_equal(t->rec[4].weights, wts, sizeof wts);   /* exact f32 round trip */
    assert_int_equal(t->rec[8].pos, 2);
    assert_int_equal(t->rec[8].layer, 2);

    cache_trace ct;
    assert_int_equal(routing_trace_to_cache_trace(t, 0, &ct), 0);
    /* Groups: 3 prefill layers (distinct experts of both tokens) + 3 decode layers. */
    assert_int_equal(ct.n_groups, 6);
    const size_t want_end[6] = {3, 5, 8, 10, 12, 14};
    for (int g = 0; g < 6; g++) assert_int_equal(ct.group_end[g], want_end[g]);
    const uint32_t want0[3] = {1, 2, 3};          /* layer 0: 1,2 then 2(dup),3 */
    assert_memory_equal(ct.keys, want0, sizeof want0);
    assert_int_equal(ct.keys[3], 8 + 4);          /* layer 1 key = 1*8 + 4 */
    cache_trace_free(&ct);
    assert_int_equal(routing_trace_to_cache_trace(t, 1, &ct), 0);
    assert_int_equal(ct.n_groups, 9);
    assert_int_equal(ct.n_keys, 18);
    cache_trace_free(&ct);
    routing_trace_free(t);
    unlink(path);
}

static void expect_bad(const char *content, const char *needle) {
    char path[64], err[512] = "";
    tmpname(path, sizeof path);
    FILE *f = fopen(path, "w");
    fputs(content, f);
    fclose(f);
    routing_trace *t = routing_trace_read(path, err, sizeof err);
    unlink(path);
    if (t) fail_msg("accepted: %s", content);
    if (!strstr(err, needle)) fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

#define H "{\"format\":\"flashpool-routing-trace\",\"version\":1,\"n_layer\":2,\"n_expert\":4,\"n_used\":2}\n"

static void test_reader_errors(void **st) {
    (void)st;
    expect_bad("", "empty file");
    expect_bad("{\"format\":\"other\"}\n", "line 1");
    expect_bad("{\"format\":\"flashpool-routing-trace\",\"version\":2,\"n_layer\":2,\"n_expert\":4,\"n_used\":2}\n",
               "version");
    expect_bad(H "{\"pos\":0,\"layer\":2,\"experts\":[0,1],\"weights\":[1,1]}\n", ":2: \"layer\"");
    expect_bad(H "{\"pos\":0,\"layer\":0,\"experts\":[0,1],\"weights\":[1]}\n", ":2: \"experts\" and \"weights\"");
    expect_bad(H "{\"pos\":0,\"layer\":0,\"experts\":[0,1],\"weights\":[1,1]}\n"
                 "{\"pos\":1,\"layer\":0,\"experts\":[0,4],\"weights\":[1,1]}\n", ":3: experts[1]");
    expect_bad(H "{\"pos\":-1,\"layer\":0,\"experts\":[0],\"weights\":[1]}\n", "\"pos\"");
    expect_bad(H "not json\n", ":2: not a JSON object");
    char err[256];
    assert_null(routing_trace_read("/nonexistent/trace.jsonl", err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
}

static int calls_a, calls_b;
static void route_a(void *ud, int64_t pos, int layer, const int32_t *e, const float *w, int n) {
    (void)pos; (void)layer; (void)e; (void)w; (void)n;
    assert_ptr_equal(ud, &calls_a);
    calls_a++;
}
static void route_b(void *ud, int64_t pos, int layer, const int32_t *e, const float *w, int n) {
    (void)pos; (void)layer; (void)e; (void)w; (void)n;
    assert_ptr_equal(ud, &calls_b);
    calls_b += 10;
}
static void final_a(void *ud, int64_t pos, const float *c, const float *n) {
    (void)ud; (void)pos; (void)c; (void)n;
    calls_a += 100;
}

static void test_observer_chain(void **st) {
    (void)st;
    fwd_observer a = {.ud = &calls_a, .on_route = route_a, .on_final = final_a};
    fwd_observer b = {.ud = &calls_b, .on_route = route_b};
    observer_chain ch;
    fwd_observer o = observer_chain_make(&ch, &a, &b);
    assert_null(o.on_hc);          /* nobody observes HC: the engine may skip it */
    assert_null(o.on_indexer);
    const int32_t e[1] = {0};
    const float w[1] = {1};
    o.on_route(o.ud, 0, 0, e, w, 1);
    o.on_final(o.ud, 0, w, w);
    assert_int_equal(calls_a, 101);
    assert_int_equal(calls_b, 10);
    o = observer_chain_make(&ch, NULL, &b);
    o.on_route(o.ud, 0, 0, e, w, 1);
    assert_int_equal(calls_b, 20);
    assert_null(o.on_final);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_groups),
        cmocka_unit_test(test_reader_errors),
        cmocka_unit_test(test_observer_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
