/* test_placement.c — placement strategies, the placement JSON file (round
 * trip, name mapping, every validation error), RAM budgets, and the cluster
 * file parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cluster.h"
#include "placement.h"

static void test_round_robin(void **st) {
    (void)st;
    char err[256];
    placement *p = placement_round_robin(3, 5, 3, 2, err, sizeof err);
    assert_non_null(p);
    assert_int_equal(placement_validate(p, err, sizeof err), 0);
    for (int l = 0; l < 3; l++)
        for (int e = 0; e < 5; e++) {
            const int g = l * 5 + e;
            assert_int_equal(placement_count(p, l, e), 2);
            assert_int_equal(placement_nodes(p, l, e)[0], g % 3);
            assert_int_equal(placement_nodes(p, l, e)[1], (g + 1) % 3);
        }
    /* 15 experts x 2 replicas over 3 nodes: 10 each. */
    size_t lb[3] = {100, 100, 100};
    uint64_t bytes[3];
    placement_node_bytes(p, lb, bytes);
    for (int n = 0; n < 3; n++) assert_int_equal(bytes[n], 1000);
    placement_free(p);
}

static void test_contiguous(void **st) {
    (void)st;
    char err[256];
    placement *p = placement_contiguous(4, 8, 2, 1, err, sizeof err);
    assert_non_null(p);
    for (int l = 0; l < 4; l++)
        for (int e = 0; e < 8; e++) {
            assert_int_equal(placement_count(p, l, e), 1);
            assert_int_equal(placement_nodes(p, l, e)[0], l < 2 ? 0 : 1);
        }
    placement_free(p);
    /* Uneven: 5 layers on 2 nodes still gives every node a contiguous run. */
    p = placement_contiguous(5, 4, 2, 2, err, sizeof err);
    assert_non_null(p);
    int last = 0;
    for (int l = 0; l < 5; l++)
        for (int e = 0; e < 4; e++) {
            const int home = placement_nodes(p, l, e)[0];
            assert_true(home >= last);
            last = home;
            assert_int_equal(placement_nodes(p, l, e)[1], (home + 1) % 2);
        }
    assert_int_equal(last, 1);
    placement_free(p);
}

static void test_builtin_errors(void **st) {
    (void)st;
    char err[256] = "";
    assert_null(placement_round_robin(3, 4, 2, 3, err, sizeof err));
    assert_non_null(strstr(err, "replicas"));
    err[0] = 0;
    assert_null(placement_contiguous(3, 4, 0, 1, err, sizeof err));
    assert_non_null(strstr(err, "at least one node"));
}

static void test_add_and_validate(void **st) {
    (void)st;
    char err[256];
    placement *p = placement_new(2, 3, 2);
    assert_int_equal(placement_add(p, 0, 1, 1), 0);
    assert_int_equal(placement_add(p, 0, 1, 1), -1);   /* duplicate */
    assert_int_equal(placement_add(p, 0, 1, 2), -1);   /* no node 2 */
    assert_int_equal(placement_add(p, 2, 0, 0), -1);   /* no layer 2 */
    assert_int_equal(placement_count(p, 0, 0), 0);     /* coordinator only */
    assert_int_equal(placement_validate(p, err, sizeof err), 0);
    /* Corrupt by hand: validation must catch what placement_add refuses. */
    p->nodes[(1 * 3 + 2) * PLACEMENT_MAX_REPLICAS] = 7;
    p->n_rep[1 * 3 + 2] = 1;
    assert_int_equal(placement_validate(p, err, sizeof err), -1);
    assert_non_null(strstr(err, "layer 1 expert 2"));
    placement_free(p);
}

static void test_budgets(void **st) {
    (void)st;
    char err[256];
    placement *p = placement_contiguous(2, 4, 2, 1, err, sizeof err);
    const size_t lb[2] = {1 << 20, 2 << 20};
    char *names[2] = {"alpha", "beta"};
    uint64_t budget[2] = {4 << 20, 8 << 20};
    assert_int_equal(placement_check_budgets(p, lb, budget, names, err, sizeof err), 0);
    budget[1] = (8 << 20) - 1;
    assert_int_equal(placement_check_budgets(p, lb, budget, names, err, sizeof err), -1);
    assert_non_null(strstr(err, "beta"));
    budget[1] = 0;   /* unlimited */
    assert_int_equal(placement_check_budgets(p, lb, budget, names, err, sizeof err), 0);
    placement_free(p);
}

static void test_save_load_roundtrip(void **st) {
    (void)st;
    char err[512], path[] = "/tmp/fp_test_placement_XXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    placement *p = placement_round_robin(3, 6, 3, 2, err, sizeof err);
    placement_add(p, 2, 5, 2);   /* already there -> refused, stays 2 replicas */
    char *names[3] = {"a", "b", "c"};
    assert_int_equal(placement_save(p, path, names, err, sizeof err), 0);
    placement *q = placement_load(path, 3, 6, names, 3, err, sizeof err);
    assert_non_null(q);
    assert_memory_equal(p->n_rep, q->n_rep, 18);
    assert_memory_equal(p->nodes, q->nodes, 18 * PLACEMENT_MAX_REPLICAS * sizeof(uint16_t));
    placement_free(q);
    /* The cluster lists the same nodes in another order: experts follow names. */
    char *reordered[3] = {"c", "a", "b"};
    q = placement_load(path, 3, 6, reordered, 3, err, sizeof err);
    assert_non_null(q);
    for (int l = 0; l < 3; l++)
        for (int e = 0; e < 6; e++)
            for (int r = 0; r < 2; r++) {
                const char *want = names[placement_nodes(p, l, e)[r]];
                assert_string_equal(reordered[placement_nodes(q, l, e)[r]], want);
            }
    placement_free(q);
    /* Wrong model shape. */
    assert_null(placement_load(path, 4, 6, names, 3, err, sizeof err));
    assert_non_null(strstr(err, "3 layers x 6 experts"));
    /* A node missing from the cluster. */
    char *two[2] = {"a", "b"};
    assert_null(placement_load(path, 3, 6, two, 2, err, sizeof err));
    assert_non_null(strstr(err, "\"c\" is not a node of the cluster"));
    unlink(path);
    placement_free(p);
}

static void expect_parse_error(const char *json, const char *needle) {
    char err[512] = "";
    char *names[2] = {"n0", "n1"};
    placement *p = placement_parse(json, 2, 2, names, 2, err, sizeof err);
    if (p) fail_msg("accepted: %s", json);
    if (!strstr(err, needle)) fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

#define HDR "{\"format\":\"flashpool-placement\",\"version\":1,\"n_layer\":2,\"n_expert\":2,\"nodes\":[\"n0\",\"n1\"],"

static void test_parse_errors(void **st) {
    (void)st;
    char err[512];
    char *names[2] = {"n0", "n1"};
    /* Valid: indices, names and coordinator-only entries mixed. */
    placement *p = placement_parse(HDR "\"layers\":[[[0],[\"n1\",0]],[[],[1]]]}", 2, 2, names, 2, err, sizeof err);
    assert_non_null(p);
    assert_int_equal(placement_count(p, 0, 1), 2);
    assert_int_equal(placement_nodes(p, 0, 1)[0], 1);
    assert_int_equal(placement_nodes(p, 0, 1)[1], 0);
    assert_int_equal(placement_count(p, 1, 0), 0);
    placement_free(p);
    expect_parse_error("{", "not valid JSON");
    expect_parse_error("[]", "top level");
    expect_parse_error("{\"format\":\"x\"}", "\"format\"");
    expect_parse_error(HDR "\"layers\":[[[0],[1]]]}", "array of 2 layers");
    expect_parse_error(HDR "\"layers\":[[[0]],[[0],[1]]]}", "layers[0] must be an array of 2 experts");
    expect_parse_error(HDR "\"layers\":[[[0],[5]],[[0],[1]]]}", "layers[0][1][0]: node index 5 out of range");
    expect_parse_error(HDR "\"layers\":[[[0],[1]],[[0,0],[1]]]}", "layers[1][0]: node \"n0\" listed twice");
    expect_parse_error(HDR "\"layers\":[[[0],[1]],[[0],[\"zz\"]]]}", "\"zz\" is not in \"nodes\"");
    expect_parse_error(HDR "\"layers\":[[[0],[1]],[[0],[true]]]}", "must be a node index or name");
    expect_parse_error(HDR "\"layers\":[[[0],[1]],[[0],7]]}", "layers[1][1] must be a list");
    expect_parse_error("{\"format\":\"flashpool-placement\",\"version\":1,\"n_layer\":2,\"n_expert\":2,"
                       "\"nodes\":[\"n0\",\"n0\"],\"layers\":[]}", "listed twice");
}

static void test_cluster(void **st) {
    (void)st;
    char err[512];
    cluster *c = cluster_parse("{\"format\":\"flashpool-cluster\",\"version\":1,\"nodes\":["
                               "{\"name\":\"a\",\"endpoint\":\"tcp://10.77.0.2:7070\",\"ram_mb\":512},"
                               "{\"endpoint\":\"tcp://10.77.0.3:7070\"}]}", err, sizeof err);
    assert_non_null(c);
    assert_int_equal(c->n_nodes, 2);
    assert_string_equal(c->nodes[0].name, "a");
    assert_int_equal(c->nodes[0].ram_bytes, 512ull << 20);
    assert_string_equal(c->names[1], "tcp://10.77.0.3:7070");   /* unnamed: the endpoint */
    assert_int_equal(c->nodes[1].ram_bytes, 0);
    assert_int_equal(cluster_add(c, "b", "tcp://10.77.0.2:7070", 0, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "listed twice"));
    assert_int_equal(cluster_add(c, "a", "tcp://x:1", 0, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "used twice"));
    assert_int_equal(cluster_add(c, NULL, "10.0.0.1:7070", 0, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "tcp://"));
    assert_int_equal(cluster_add(c, NULL, "tcp://x:2", 0, "short", err, sizeof err), -1);
    assert_int_equal(cluster_add(c, NULL, "ipc:///tmp/n3", 0, NULL, err, sizeof err), 0);
    assert_int_equal(c->n_nodes, 3);
    assert_string_equal(c->names[0], "a");    /* names survive the realloc */
    cluster_free(c);
    assert_null(cluster_parse("{\"nodes\":[{\"endpoint\":\"tcp://h:1\",\"ram\":5}]}", err, sizeof err));
    assert_non_null(strstr(err, "nodes[0].ram"));
    assert_null(cluster_parse("{\"nodes\":[{\"name\":\"x\"}]}", err, sizeof err));
    assert_non_null(strstr(err, "no \"endpoint\""));
    assert_null(cluster_parse("{\"node\":[]}", err, sizeof err));
    assert_non_null(strstr(err, "unknown key \"node\""));
    assert_null(cluster_parse("{\"nodes\":[{\"endpoint\":\"tcp://h:1\",\"ram_mb\":-1}]}", err, sizeof err));
    assert_null(cluster_load("/nonexistent/cluster.json", err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_robin),       cmocka_unit_test(test_contiguous),
        cmocka_unit_test(test_builtin_errors),    cmocka_unit_test(test_add_and_validate),
        cmocka_unit_test(test_budgets),           cmocka_unit_test(test_save_load_roundtrip),
        cmocka_unit_test(test_parse_errors),      cmocka_unit_test(test_cluster),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
