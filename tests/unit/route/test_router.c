/* Unit tests for src/router.c: model name -> (tier, failover chain). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "route/router.h"

static const char YAML[] =
    "providers:\n"
    "  p: {type: openai, base_url: \"http://127.0.0.1:9/v1\"}\n"
    "models:\n"
    "  a: {provider: p}\n"
    "  b: {provider: p}\n"
    "  c: {provider: p}\n"
    "  d: {provider: p}\n"
    "  lonely: {provider: p}\n"
    "  gpt-4o: {provider: p}\n"
    "tiers:\n"
    "  cheap: [c, a, b]\n"
    "  premium: [b, c]\n"
    "  solo: [d]\n"
    "routing:\n"
    "  default_tier: premium\n"
    "  routable_models: [gpt-4o, gpt-3.5-turbo]\n";

static int setup(void **state)
{
    char err[2048];
    config_t *cfg = config_load_string("router.yaml", YAML, strlen(YAML), err, sizeof err, NULL, 0);
    if (cfg == NULL) {
        fprintf(stderr, "%s", err);
        return -1;
    }
    *state = cfg;
    return 0;
}

static int teardown(void **state)
{
    config_unref(*state);
    return 0;
}

static int M(const config_t *cfg, const char *name)
{
    int i = config_find_model(cfg, name);
    if (i < 0)
        fail_msg("no model %s", name);
    return i;
}

/* Resolves name and checks the tier name and the chain (model names). */
static void expect_route(const config_t *cfg, const char *name, const char *tier,
                         const char *const *chain, size_t n)
{
    route_t r;
    memset(&r, 0xAB, sizeof r);
    assert_int_equal(router_resolve(cfg, name, &r), 0);
    assert_string_equal(router_tier_name(cfg, &r), tier);
    if (r.n != n)
        fail_msg("%s: chain of %zu, expected %zu", name, r.n, n);
    for (size_t i = 0; i < n; i++)
        if (r.chain[i] != M(cfg, chain[i]))
            fail_msg("%s: chain[%zu] is %s, expected %s", name, i,
                     r.chain[i] >= 0 && (size_t)r.chain[i] < cfg->n_models
                         ? cfg->models[r.chain[i]].name
                         : "?",
                     chain[i]);
}

static void test_auto_uses_default_tier(void **state)
{
    const config_t *cfg = *state;
    static const char *const chain[] = {"b", "c"};
    route_t r;
    expect_route(cfg, "auto", "premium", chain, 2);
    assert_int_equal(router_resolve(cfg, "auto", &r), 0);
    assert_int_equal(r.tier, cfg->default_tier);
    assert_int_equal(r.tier, config_find_tier(cfg, "premium"));
}

static void test_routable_names_use_default_tier(void **state)
{
    const config_t *cfg = *state;
    static const char *const chain[] = {"b", "c"};
    expect_route(cfg, "gpt-3.5-turbo", "premium", chain, 2);
    /* routable wins over a model of the same name */
    expect_route(cfg, "gpt-4o", "premium", chain, 2);
}

static void test_tier_name_gives_its_chain(void **state)
{
    const config_t *cfg = *state;
    static const char *const cheap[] = {"c", "a", "b"};
    static const char *const solo[] = {"d"};
    route_t r;
    expect_route(cfg, "cheap", "cheap", cheap, 3);
    expect_route(cfg, "solo", "solo", solo, 1);
    assert_int_equal(router_resolve(cfg, "cheap", &r), 0);
    assert_int_equal(r.tier, config_find_tier(cfg, "cheap"));
}

static void test_model_first_then_rest_of_first_tier(void **state)
{
    const config_t *cfg = *state;
    /* a: first (only) tier is cheap [c, a, b] -> a, c, b */
    static const char *const a[] = {"a", "c", "b"};
    /* b: listed in cheap (first) and premium -> cheap's order, no duplicate b */
    static const char *const b[] = {"b", "c", "a"};
    /* c: first tier is cheap, where it is already first */
    static const char *const c[] = {"c", "a", "b"};
    static const char *const d[] = {"d"};
    expect_route(cfg, "a", "cheap", a, 3);
    expect_route(cfg, "b", "cheap", b, 3);
    expect_route(cfg, "c", "cheap", c, 3);
    expect_route(cfg, "d", "solo", d, 1);
}

static void test_model_in_no_tier(void **state)
{
    const config_t *cfg = *state;
    static const char *const chain[] = {"lonely"};
    route_t r;
    expect_route(cfg, "lonely", "none", chain, 1);
    assert_int_equal(router_resolve(cfg, "lonely", &r), 0);
    assert_int_equal(r.tier, -1);
}

static void test_unknown_names(void **state)
{
    const config_t *cfg = *state;
    static const char *const bad[] = {"", "Auto", "AUTO", "auto ", "gpt-4", "premium2", "A",
                                      "none", "p"};
    route_t r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r.n = 99;
        if (router_resolve(cfg, bad[i], &r) != -1)
            fail_msg("\"%s\" should be unknown", bad[i]);
        assert_int_equal(r.n, 0);
    }
}

/* A request answered before routing (400, 405, 413, ...) has no tier and no
 * rule; in a config without rules there is no rule 0 to name either (this
 * dereferenced a rule that does not exist and crashed the daemon). */
static void test_not_routed_names(void **state)
{
    const config_t *cfg = *state;
    route_t r;
    memset(&r, 0, sizeof r); /* what a zeroed request used to hold: tier 0, rule 0 */
    router_init(&r);
    assert_false(router_routed(&r));
    assert_int_equal(r.n, 0);
    assert_string_equal(router_tier_name(cfg, &r), "-");
    assert_string_equal(router_rule_name(cfg, &r), "-");
    /* a rule index the snapshot does not have is never dereferenced */
    r.rule = 0;
    assert_string_equal(router_rule_name(cfg, &r), "-");
    r.rule = 12345;
    assert_string_equal(router_rule_name(cfg, &r), "-");
    /* a failed resolution leaves the route not routed */
    assert_int_equal(router_resolve(cfg, "gpt-4", &r), ROUTER_UNKNOWN_MODEL);
    assert_false(router_routed(&r));
    assert_int_equal(router_resolve(cfg, "auto", &r), 0);
    assert_true(router_routed(&r));
    assert_string_equal(router_rule_name(cfg, &r), "default");
}

/* The longest tier the configuration accepts (31 models) routes in full. */
static void test_longest_tier(void **state)
{
    char yaml[8192];
    size_t o = 0;
    char err[1024];
    config_t *cfg;
    route_t r;
    (void)state;
    o += (size_t)snprintf(yaml + o, sizeof yaml - o,
                          "providers: {p: {type: openai, base_url: \"http://h\"}}\nmodels:\n");
    for (int i = 0; i < 31; i++)
        o += (size_t)snprintf(yaml + o, sizeof yaml - o, "  m%d: {provider: p}\n", i);
    o += (size_t)snprintf(yaml + o, sizeof yaml - o, "tiers:\n  big: [");
    for (int i = 0; i < 31; i++)
        o += (size_t)snprintf(yaml + o, sizeof yaml - o, "%sm%d", i ? ", " : "", i);
    o += (size_t)snprintf(yaml + o, sizeof yaml - o, "]\nrouting: {default_tier: big}\n");
    cfg = config_load_string("big.yaml", yaml, o, err, sizeof err, NULL, 0);
    if (cfg == NULL)
        fail_msg("%s", err);
    assert_int_equal(router_resolve(cfg, "auto", &r), 0);
    assert_int_equal(r.n, 31);
    for (size_t i = 0; i < r.n; i++)
        assert_int_equal(r.chain[i], (int)i);
    /* the requested model comes first even from the far end of the tier */
    assert_int_equal(router_resolve(cfg, "m30", &r), 0);
    assert_int_equal(r.n, 31);
    assert_int_equal(r.chain[0], 30);
    for (size_t i = 1; i < r.n; i++)
        assert_int_equal(r.chain[i], (int)i - 1);
    config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_uses_default_tier),
        cmocka_unit_test(test_routable_names_use_default_tier),
        cmocka_unit_test(test_tier_name_gives_its_chain),
        cmocka_unit_test(test_model_first_then_rest_of_first_tier),
        cmocka_unit_test(test_model_in_no_tier),
        cmocka_unit_test(test_unknown_names),
        cmocka_unit_test(test_longest_tier),
        cmocka_unit_test(test_not_routed_names),
    };
    return cmocka_run_group_tests_name("router", tests, setup, teardown);
}
