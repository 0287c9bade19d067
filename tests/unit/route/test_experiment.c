/* Unit tests for src/route/experiment.c: the hash is the documented
 * FNV-1a + fmix64 (values computed by an independent Python
 * implementation), the assignment follows the weights on 2,000 keys, is a
 * pure function of (experiment, key), and depends on the experiment's name;
 * and for the `experiments:` section's parsing through config_load_string. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "route/experiment.h"

static void test_hash_values(void **state)
{
    (void)state;
    assert_true(experiment_hash("e1", "alice", 5) == 0x143ffcff695bca01ull);
    assert_true(experiment_hash("exp", "", 0) == 0x1ec03517a9229d57ull);
}

static experiment_t two_arms(const char *name, double w0, double w1, exp_arm_t arms[2])
{
    memset(arms, 0, 2 * sizeof *arms);
    arms[0].name = "a";
    arms[0].weight = w0;
    arms[1].name = "b";
    arms[1].weight = w1;
    experiment_t e = {.name = (char *)name, .arms = arms, .n_arms = 2};
    experiment_finish(&e);
    return e;
}

static void test_weights_respected(void **state)
{
    exp_arm_t arms[2];
    experiment_t e = two_arms("split", 1, 3, arms);
    size_t n0 = 0;
    (void)state;
    assert_true(arms[0].upper == 0.25 && arms[1].upper == 1);
    for (int i = 0; i < 2000; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "user-%d", i);
        n0 += experiment_pick(&e, key, (size_t)n) == 0;
    }
    /* expected 500, binomial sd 19.4: within 4 sd */
    if (n0 < 422 || n0 > 578)
        fail_msg("arm a got %zu of 2000 keys, expected about 500", n0);
}

static void test_stable_and_name_dependent(void **state)
{
    exp_arm_t arms[2], arms2[2];
    experiment_t e = two_arms("one", 1, 1, arms), f = two_arms("two", 1, 1, arms2);
    size_t same = 0;
    (void)state;
    for (int i = 0; i < 1000; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "k%d", i);
        size_t a = experiment_pick(&e, key, (size_t)n);
        assert_int_equal(a, experiment_pick(&e, key, (size_t)n));
        same += a == experiment_pick(&f, key, (size_t)n);
    }
    /* two experiments split the same keys independently: about half agree */
    if (same < 400 || same > 600)
        fail_msg("%zu of 1000 keys in the same arm of two experiments", same);
}

static const char *BASE = "providers:\n  p: {type: openai, base_url: \"http://127.0.0.1:9/v1\"}\n"
                          "models:\n  m1: {provider: p, model: x}\n  m2: {provider: p, model: y}\n"
                          "tiers:\n  cheap: [m1]\n  strong: [m2]\n"
                          "routing:\n  default_tier: cheap\n  rules:\n"
                          "    - name: hard\n      when: {complexity: {min: 0.5}}\n      tier: strong\n";

static config_t *load(const char *exp, char *err, size_t n)
{
    char text[4096];
    snprintf(text, sizeof text, "%s%s", BASE, exp);
    return config_load_string("t.yaml", text, strlen(text), err, n, NULL, 0);
}

static void test_config(void **state)
{
    char err[4096];
    config_t *cfg;
    (void)state;
    cfg = load("experiments:\n  e1:\n    key: header:X-Team\n    arms:\n"
               "      control: {weight: 3}\n"
               "      lean: {rules: [], complexity: {hard: {min: 0.7}}, tiers: {strong: cheap},"
               " cascade: false}\n",
               err, sizeof err);
    if (cfg == NULL)
        fail_msg("%s", err);
    const experiments_t *x = cfg->experiments;
    assert_int_equal(x->n, 1);
    assert_int_equal(x->active, 0);
    assert_int_equal(x->v[0].key, EXP_KEY_HEADER);
    assert_string_equal(x->v[0].header, "x-team");
    assert_int_equal(x->v[0].n_arms, 2);
    assert_true(x->v[0].arms[0].upper == 0.75);
    const exp_arm_t *lean = &x->v[0].arms[1];
    assert_true(lean->has_rules && lean->n_rules == 0);
    assert_true(lean->band_lo[0] == 0.7 && lean->band_hi[0] == 1);
    assert_int_equal(lean->tier_map[1], 0);
    assert_true(lean->no_cascade);
    config_unref(cfg);

    cfg = load("experiments:\n  - name: e1\n    key: user\n    arms:\n"
               "      - {name: a, weight: -1}\n      - {name: a, tiers: {nope: cheap}}\n",
               err, sizeof err);
    assert_null(cfg);
    assert_non_null(strstr(err, "t.yaml:19:"));
    assert_non_null(strstr(err, "weight: expected a number above 0"));
    assert_non_null(strstr(err, "arm \"a\" is defined twice"));
    assert_non_null(strstr(err, "no tier named \"nope\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_values),
        cmocka_unit_test(test_weights_respected),
        cmocka_unit_test(test_stable_and_name_dependent),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
