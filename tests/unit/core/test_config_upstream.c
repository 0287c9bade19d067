/* Unit tests for src/core/config_upstream.c (and the routing deadline
 * keys): retries and their backoff per provider, the model's retries
 * inherited or its own, the policy lists applied over the defaults (a
 * status beats its class), and every mistake reported at its
 * FILE:LINE:COL. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "upstream/retry.h"

#define NAME "t.yaml"
#define BUFSZ 8192

#define MODELS "models:\n  m1: {provider: p1}\n  m2: {provider: p1, retries: 0}\n"
#define TIERS "tiers:\n  t1: [m1, m2]\n"
#define ROUTING "routing:\n  default_tier: t1\n"

static char errbuf[BUFSZ], warnbuf[BUFSZ];

static config_t *load(const char *yaml)
{
    return config_load_string(NAME, yaml, strlen(yaml), errbuf, sizeof errbuf, warnbuf,
                              sizeof warnbuf);
}

static config_t *load_ok(const char *yaml)
{
    config_t *cfg = load(yaml);
    if (cfg == NULL)
        fail_msg("config did not load:\n%s", errbuf);
    return cfg;
}

/* The load fails with an error "t.yaml:L:C: ...msg..." where L:C is the
 * position of the first occurrence of at. */
static void expect_error_at(const char *yaml, const char *at, const char *msg)
{
    const char *p = strstr(yaml, at);
    int line = 1, col = 1;
    char prefix[64];
    config_t *cfg;
    if (p == NULL)
        fail_msg("test bug: \"%s\" not in the YAML", at);
    for (const char *q = yaml; q < p; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    cfg = load(yaml);
    if (cfg != NULL) {
        config_unref(cfg);
        fail_msg("config loaded, expected an error containing: %s", msg);
    }
    snprintf(prefix, sizeof prefix, NAME ":%d:%d: ", line, col);
    for (p = errbuf; *p; p = strchr(p, '\n') + 1) {
        const char *end = strchr(p, '\n'), *hit;
        assert_non_null(end);
        hit = strstr(p, msg);
        if (strncmp(p, prefix, strlen(prefix)) == 0 && hit != NULL && hit < end)
            return;
    }
    fail_msg("no error \"%s%s...\" in:\n%s", prefix, msg, errbuf);
}

static void test_defaults(void **state)
{
    config_t *cfg = load_ok("providers:\n  p1: {type: openai, base_url: \"http://h/v1\"}\n" MODELS
                            TIERS ROUTING);
    const cfg_retry_t *r = &cfg->providers[0].retry;
    (void)state;
    assert_int_equal(r->retries, 0);
    assert_int_equal(r->backoff_ms, 200);
    assert_int_equal(r->backoff_max_ms, 2000);
    assert_int_equal(r->after_max_ms, 2000);
    assert_int_equal(retry_action_of(r, RETRY_KIND_STATUS, 404), RETRY_ACT_PASS);
    assert_int_equal(retry_action_of(r, RETRY_KIND_STATUS, 401), RETRY_ACT_FAILOVER);
    assert_int_equal(retry_action_of(r, RETRY_KIND_STALE, 0), RETRY_ACT_RETRY);
    assert_int_equal(cfg->models[0].retries, 0);
    assert_int_equal(cfg->deadline_ms, 0);
    assert_int_equal(cfg->max_deadline_ms, 600000);
    config_unref(cfg);
}

static void test_keys_and_inheritance(void **state)
{
    config_t *cfg = load_ok(
        "providers:\n"
        "  p1: {type: openai, base_url: \"http://h/v1\", retries: 3, retry_backoff_ms: 100,\n"
        "       retry_backoff_max_ms: 800, retry_after_max_ms: 5000}\n"
        "models:\n  m1: {provider: p1}\n  m2: {provider: p1, retries: 0}\n"
        "  m3: {retries: 7, provider: p1}\n"
        "tiers:\n  t1: [m1, m2, m3]\n"
        "routing:\n  default_tier: t1\n  deadline_ms: 30000\n  max_deadline_ms: 60000\n");
    const cfg_retry_t *r = &cfg->providers[0].retry;
    (void)state;
    assert_int_equal(r->retries, 3);
    assert_int_equal(r->backoff_ms, 100);
    assert_int_equal(r->backoff_max_ms, 800);
    assert_int_equal(r->after_max_ms, 5000);
    assert_int_equal(cfg->models[0].retries, 3); /* inherited */
    assert_int_equal(cfg->models[1].retries, 0); /* its own */
    assert_int_equal(cfg->models[2].retries, 7); /* its own, written before provider */
    assert_int_equal(cfg->deadline_ms, 30000);
    assert_int_equal(cfg->max_deadline_ms, 60000);
    config_unref(cfg);
}

static void test_policy_lists(void **state)
{
    config_t *cfg = load_ok("providers:\n"
                            "  p1:\n"
                            "    type: openai\n"
                            "    base_url: \"http://h/v1\"\n"
                            "    retry_on: [503, timeout, 404]\n"
                            "    failover_on: [5xx, stale_connection, 4xx]\n"
                            "    pass_through: [401, 3xx]\n"
                            "  p2: {type: openai, base_url: \"http://h/v1\", retry_on: 5XX}\n" MODELS
                            TIERS ROUTING);
    const cfg_retry_t *r = &cfg->providers[0].retry, *r2 = &cfg->providers[1].retry;
    (void)state;
    assert_int_equal(retry_action_of(r, RETRY_KIND_STATUS, 503), RETRY_ACT_RETRY); /* code > class */
    assert_int_equal(retry_action_of(r, RETRY_KIND_STATUS, 502), RETRY_ACT_FAILOVER);
    assert_int_equal(retry_action_of(r, RETRY_KIND_STATUS, 429), RETRY_ACT_FAILOVER); /* 4xx */
    assert_int_equal(retry_action_of(r, RETRY_KIND_STATUS, 404), RETRY_ACT_RETRY);
    assert_int_equal(retry_action_of(r, RETRY_KIND_STATUS, 422), RETRY_ACT_FAILOVER);
    assert_int_equal(retry_action_of(r, RETRY_KIND_STATUS, 401), RETRY_ACT_PASS);
    assert_int_equal(retry_action_of(r, RETRY_KIND_STATUS, 302), RETRY_ACT_PASS);
    assert_int_equal(retry_action_of(r, RETRY_KIND_TIMEOUT, 0), RETRY_ACT_RETRY);
    assert_int_equal(retry_action_of(r, RETRY_KIND_STALE, 0), RETRY_ACT_FAILOVER);
    assert_int_equal(retry_action_of(r, RETRY_KIND_CONNECT, 0), RETRY_ACT_RETRY); /* default */
    /* one scalar instead of a list; the rest keeps its defaults */
    assert_int_equal(retry_action_of(r2, RETRY_KIND_STATUS, 501), RETRY_ACT_RETRY);
    assert_int_equal(retry_action_of(r2, RETRY_KIND_STATUS, 404), RETRY_ACT_PASS);
    config_unref(cfg);
}

#define P1(extra) "providers:\n  p1: {type: openai, base_url: \"http://h/v1\", " extra "}\n"

static void test_errors_have_positions(void **state)
{
    (void)state;
    expect_error_at(P1("retry_on: [503, timout]") MODELS TIERS ROUTING, "timout]",
                    "did you mean \"timeout\"?");
    expect_error_at(P1("failover_on: [200]") MODELS TIERS ROUTING, "200]",
                    "\"200\" is not an HTTP status (300-599)");
    expect_error_at(P1("failover_on: [6xx]") MODELS TIERS ROUTING, "6xx]", "status class");
    expect_error_at(P1("pass_through: [timeout]") MODELS TIERS ROUTING, "timeout]",
                    "leaves no answer to pass through");
    expect_error_at(P1("retry_on: [503], failover_on: [429, 503]") MODELS TIERS ROUTING,
                    "503]}", "\"503\" is also listed in retry_on");
    expect_error_at(P1("retry_on: [5xx, 5xx]") MODELS TIERS ROUTING, "5xx]",
                    "\"5xx\" is listed twice");
    expect_error_at(P1("retry_on: {a: 1}") MODELS TIERS ROUTING, "{a: 1}", "retry_on");
    expect_error_at(P1("retries: 11") MODELS TIERS ROUTING, "11", "retries");
    expect_error_at(P1("retries: -1") MODELS TIERS ROUTING, "-1", "retries");
    expect_error_at("providers:\n  p1: {type: openai, base_url: \"http://h/v1\", retry_backoff_ms: "
                    "500, retry_backoff_max_ms: 100}\n" MODELS TIERS ROUTING,
                    "{type", "retry_backoff_ms (500) is over retry_backoff_max_ms (100)");
    expect_error_at(P1("retry_ons: [503]") MODELS TIERS ROUTING, "retry_ons",
                    "did you mean \"retry_on\"?");
    expect_error_at(P1("x: 1") "models:\n  m1: {provider: p1, retries: 99}\n" TIERS ROUTING,
                    "99", "models.m1.retries");
    expect_error_at(P1("x: 1") "models:\n  m1: {provider: p1, retrys: 1}\n" TIERS ROUTING,
                    "retrys", "did you mean \"retries\"?");
    expect_error_at(P1("retries: 1") MODELS TIERS
                    "routing:\n  default_tier: t1\n  deadline_ms: 700000\n",
                    "default_tier", "routing.deadline_ms (700000) is over routing.max_deadline_ms");
    expect_error_at(P1("retries: 1") MODELS TIERS
                    "routing:\n  default_tier: t1\n  max_deadline_ms: 0\n",
                    "0\n", "routing.max_deadline_ms");
    expect_error_at(P1("retries: 1") MODELS TIERS
                    "routing:\n  default_tier: t1\n  dedline_ms: 10\n",
                    "dedline_ms", "did you mean \"deadline_ms\"?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_keys_and_inheritance),
        cmocka_unit_test(test_policy_lists),
        cmocka_unit_test(test_errors_have_positions),
    };
    return cmocka_run_group_tests_name("config_upstream", tests, NULL, NULL);
}
