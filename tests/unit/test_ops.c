/* test_ops.c — forward-pass primitives against hand-computed values:
 * E4M3/E2M1 rounding (ties to even), the Hadamard transform, Sinkhorn
 * (doubly stochastic within eps), RoPE inverse, and the router-free pieces. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ops.h"

static void test_fp8_grid(void **st) {
    (void)st;
    /* One 64-block whose amax is 448 → scale 1: values snap to the E4M3 grid. */
    float x[64] = {0};
    x[0] = 448.0f;
    x[1] = 1.0f + 1.0f / 16.0f;      /* halfway between 1 and 1.125: tie → even code (1.0) */
    x[2] = 1.0f + 3.0f / 16.0f;      /* halfway between 1.125 and 1.25: tie → even code (1.25) */
    x[3] = -3.3f;                    /* nearest: -3.25 */
    x[4] = 0.0009765625f;            /* 2^-10, halfway between 0 and 2^-9: even code 0 */
    op_fp8_kv_sim(x, 64, 0);
    assert_true(x[0] == 448.0f);
    assert_true(x[1] == 1.0f);
    assert_true(x[2] == 1.25f);
    assert_true(x[3] == -3.25f);
    assert_true(x[4] == 0.0f);
}

static void test_fp8_leaves_rope_tail(void **st) {
    (void)st;
    float x[128];
    for (int i = 0; i < 128; i++) x[i] = 0.123456f * (float)(i + 1);
    float keep[64];
    memcpy(keep, x + 64, sizeof keep);
    op_fp8_kv_sim(x, 128, 64);
    assert_memory_equal(x + 64, keep, sizeof keep);
}

static void test_hadamard_fp4(void **st) {
    (void)st;
    /* e_0 → every coefficient 1/sqrt(128) = 0.0884; FP4 with scale 2^-6 maps
     * 5.657 to the nearest E2M1 value 6 → 0.09375. */
    float x[128] = {0};
    x[0] = 1.0f;
    op_indexer_qat(x);
    for (int i = 0; i < 128; i++) assert_true(x[i] == 0.09375f);
    /* A value between grid points rounds to the nearest E2M1 step. */
    float y[128] = {0};
    for (int i = 0; i < 128; i++) y[i] = (i == 0) ? 11.3137084989f : 0.0f;   /* → 1.0 everywhere */
    op_indexer_qat(y);
    for (int i = 0; i < 128; i++) assert_true(fabsf(y[i] - 1.0f) < 1e-6f);
}

static void test_sinkhorn_doubly_stochastic(void **st) {
    (void)st;
    float mix[24], scale[3] = {0.7f, 1.1f, 0.9f}, base[24];
    for (int i = 0; i < 24; i++) {
        mix[i] = sinf((float)i * 1.7f) * 2.0f;
        base[i] = cosf((float)i * 0.3f);
    }
    float pre[4], post[4], comb[16];
    op_hc_split(pre, post, comb, mix, scale, base, 20, 1e-6f);
    for (int i = 0; i < 4; i++) {
        float rs = 0, cs = 0;
        for (int j = 0; j < 4; j++) {
            rs += comb[j + 4 * i];
            cs += comb[i + 4 * j];
        }
        assert_true(fabsf(cs - 1.0f) < 1e-4f);   /* the last step normalises columns */
        assert_true(fabsf(rs - 1.0f) < 1e-2f);
        assert_true(pre[i] > 0.0f && pre[i] < 1.0f + 2e-6f);
        assert_true(post[i] > 0.0f && post[i] < 2.0f);
    }
}

static void test_rope_inverse(void **st) {
    (void)st;
    model_hparams hp = {0};
    hp.n_rot = 64;
    hp.rope_base = 10000.0f;
    hp.compress_rope_base = 160000.0f;
    hp.rope_scale_factor = 16.0f;
    hp.yarn_beta_fast = 32.0f;
    hp.yarn_beta_slow = 1.0f;
    hp.rope_orig_ctx = 65536;
    hp.compress_ratio[1] = 4;
    for (int layer = 0; layer < 2; layer++) {
        rope_params rp = rope_for_layer(&hp, layer);
        float x[512], y[512];
        for (int i = 0; i < 512; i++) x[i] = y[i] = sinf((float)i);
        op_rope_tail(y, 1, 512, 777, &rp, 0);
        assert_memory_equal(x, y, 448 * sizeof(float));           /* non-rotated part untouched */
        assert_true(memcmp(x + 448, y + 448, 64 * sizeof(float)) != 0);
        op_rope_tail(y, 1, 512, 777, &rp, 1);
        for (int i = 448; i < 512; i++) assert_true(fabsf(x[i] - y[i]) < 1e-5f);
    }
}

static void test_rmsnorm_double_sum(void **st) {
    (void)st;
    float x[4] = {3, 4, 0, 0}, w[4] = {1, 2, 1, 1}, y[4];
    op_rmsnorm(y, x, w, 4, 0.0f);       /* rms = sqrt(25/4) = 2.5 */
    assert_true(fabsf(y[0] - 1.2f) < 1e-6f && fabsf(y[1] - 3.2f) < 1e-6f);
    assert_true(op_softplus(30.0f) == 30.0f);
    assert_true(fabsf(op_softplus(0.0f) - logf(2.0f)) < 1e-7f);
    assert_true(op_sigmoid(-100.0f) >= 0.0f && op_sigmoid(100.0f) <= 1.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp8_grid),
        cmocka_unit_test(test_fp8_leaves_rope_tail),
        cmocka_unit_test(test_hadamard_fp4),
        cmocka_unit_test(test_sinkhorn_doubly_stochastic),
        cmocka_unit_test(test_rope_inverse),
        cmocka_unit_test(test_rmsnorm_double_sum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
