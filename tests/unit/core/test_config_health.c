/* Unit tests for src/core/config_health.c: `circuit:` under routing, a
 * provider and a model, resolved key by key (model, provider, routing,
 * built-in); the short form `circuit: false`; a provider's max_inflight,
 * max_queue and queue_timeout_ms; errors with FILE:LINE:COL. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

static char errbuf[8192];

static config_t *load(const char *yaml)
{
    errbuf[0] = '\0';
    return config_load_string("t.yaml", yaml, strlen(yaml), errbuf, sizeof errbuf, NULL, 0);
}

#define TAIL "tiers:\n  t1: [m1, m2, m3]\n"

static void test_resolution_key_by_key(void **state)
{
    const char *yaml =
        "providers:\n"
        "  p1: {type: openai, base_url: \"http://h/v1\", "
        "circuit: {failures: 3, cooldown_ms: 1000}}\n"
        "  p2: {type: openai, base_url: \"http://h/v1\"}\n"
        "models:\n"
        "  m1: {provider: p1, circuit: {cooldown_ms: 200, retry_after_max_ms: 0}}\n"
        "  m2: {provider: p1}\n"
        "  m3: {provider: p2, circuit: false}\n" TAIL
        "routing:\n  default_tier: t1\n"
        "  circuit: {failures: 7, window_ms: 5000, failure_ratio: 0.25, min_requests: 4, "
        "max_cooldown_ms: 9000}\n";
    config_t *cfg = load(yaml);
    const cfg_circuit_t *c1, *c2, *c3;
    (void)state;
    if (cfg == NULL)
        fail_msg("%s", errbuf);
    c1 = &cfg->models[0].circuit;
    c2 = &cfg->models[1].circuit;
    c3 = &cfg->models[2].circuit;
    /* m1: its own cooldown and 429 cap, the provider's failures, routing's window */
    assert_true(c1->enabled);
    assert_int_equal(c1->cooldown_ms, 200);
    assert_int_equal(c1->retry_after_max_ms, 0);
    assert_int_equal(c1->failures, 3);
    assert_int_equal(c1->window_ms, 5000);
    assert_int_equal(c1->min_requests, 4);
    assert_true(c1->failure_ratio > 0.24 && c1->failure_ratio < 0.26);
    assert_int_equal(c1->max_cooldown_ms, 9000);
    /* m2: the provider's, then routing's */
    assert_int_equal(c2->cooldown_ms, 1000);
    assert_int_equal(c2->failures, 3);
    assert_int_equal(c2->retry_after_max_ms, 60000); /* built-in */
    /* m3: off, the rest from routing and the built-in */
    assert_false(c3->enabled);
    assert_int_equal(c3->failures, 7);
    assert_int_equal(c3->cooldown_ms, 30000);
    config_unref(cfg);
}

static void test_cap_is_at_least_the_start(void **state)
{
    const char *yaml = "providers:\n  p1: {type: openai, base_url: \"http://h/v1\"}\n"
                       "models:\n  m1: {provider: p1, circuit: {cooldown_ms: 500000}}\n"
                       "  m2: {provider: p1}\n  m3: {provider: p1}\n" TAIL
                       "routing:\n  default_tier: t1\n";
    config_t *cfg = load(yaml);
    (void)state;
    assert_non_null(cfg);
    assert_int_equal(cfg->models[0].circuit.max_cooldown_ms, 500000);
    config_unref(cfg);
}

static void test_provider_limits(void **state)
{
    const char *yaml =
        "providers:\n"
        "  p1: {type: openai, base_url: \"http://h/v1\", max_inflight: 8, max_queue: 3, "
        "queue_timeout_ms: 250}\n"
        "  p2: {type: openai, base_url: \"http://h/v1\"}\n"
        "models:\n  m1: {provider: p1}\n  m2: {provider: p2}\n  m3: {provider: p2}\n" TAIL
        "routing:\n  default_tier: t1\n";
    config_t *cfg = load(yaml);
    (void)state;
    if (cfg == NULL)
        fail_msg("%s", errbuf);
    assert_int_equal(cfg->providers[0].max_inflight, 8);
    assert_int_equal(cfg->providers[0].max_queue, 3);
    assert_int_equal(cfg->providers[0].queue_timeout_ms, 250);
    assert_int_equal(cfg->providers[1].max_inflight, 0); /* no limit */
    assert_int_equal(cfg->providers[1].max_queue, 100);
    assert_int_equal(cfg->providers[1].queue_timeout_ms, 5000);
    assert_null(cfg->providers[0].health); /* bound only by the daemon */
    config_unref(cfg);
}

static void expect_error(const char *yaml, const char *want)
{
    config_t *cfg = load(yaml);
    if (cfg != NULL) {
        config_unref(cfg);
        fail_msg("loaded, expected an error containing \"%s\"", want);
    }
    if (strstr(errbuf, want) == NULL)
        fail_msg("expected \"%s\" in:\n%s", want, errbuf);
}

static void test_errors_name_the_place(void **state)
{
    (void)state;
    expect_error("providers:\n  p1: {type: openai, base_url: \"http://h/v1\"}\n"
                 "models:\n  m1: {provider: p1, circuit: {failure_ratio: 1.5}}\n"
                 "  m2: {provider: p1}\n  m3: {provider: p1}\n" TAIL
                 "routing:\n  default_tier: t1\n",
                 "t.yaml:4:47: models.m1.circuit.failure_ratio: expected a fraction from 0 to 1");
    expect_error("providers:\n  p1: {type: openai, base_url: \"http://h/v1\"}\n"
                 "models:\n  m1: {provider: p1}\n  m2: {provider: p1}\n  m3: {provider: p1}\n" TAIL
                 "routing:\n  default_tier: t1\n  circuit: {cooldwn_ms: 5}\n",
                 "t.yaml:11:13: unknown key \"cooldwn_ms\" in routing.circuit");
    expect_error("providers:\n  p1: {type: openai, base_url: \"http://h/v1\", max_inflight: -1}\n"
                 "models:\n  m1: {provider: p1}\n  m2: {provider: p1}\n  m3: {provider: p1}\n" TAIL
                 "routing:\n  default_tier: t1\n",
                 "t.yaml:2:61: providers.p1.max_inflight: expected a whole number");
    expect_error("providers:\n  p1: {type: openai, base_url: \"http://h/v1\"}\n"
                 "models:\n  m1: {provider: p1}\n  m2: {provider: p1}\n  m3: {provider: p1}\n" TAIL
                 "routing:\n  default_tier: t1\n"
                 "  circuit: {cooldown_ms: 5000, max_cooldown_ms: 1000}\n",
                 "routing.circuit: max_cooldown_ms (1000) is below cooldown_ms (5000)");
    expect_error("providers:\n  p1: {type: openai, base_url: \"http://h/v1\", circuit: maybe}\n"
                 "models:\n  m1: {provider: p1}\n  m2: {provider: p1}\n  m3: {provider: p1}\n" TAIL
                 "routing:\n  default_tier: t1\n",
                 "providers.p1.circuit: expected true or false, found \"maybe\"");
    expect_error("providers:\n  p1: {type: openai, base_url: \"http://h/v1\", max_queu: 3}\n"
                 "models:\n  m1: {provider: p1}\n  m2: {provider: p1}\n  m3: {provider: p1}\n" TAIL
                 "routing:\n  default_tier: t1\n",
                 "did you mean \"max_queue\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolution_key_by_key),
        cmocka_unit_test(test_cap_is_at_least_the_start),
        cmocka_unit_test(test_provider_limits),
        cmocka_unit_test(test_errors_name_the_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
