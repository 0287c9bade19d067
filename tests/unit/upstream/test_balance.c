/* Unit tests for src/upstream/balance.c and the load-balancing view of
 * src/upstream/health.c: the weighted draw's distribution (deterministic
 * RNG), rendezvous stickiness (stable per key; removing a member moves only
 * its keys), the latency EWMA, outstanding counts, and balance_route on a
 * configured group (an open circuit goes last, a pinned model stays first,
 * sticky by user, least_outstanding and latency orders). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "route/router.h"
#include "upstream/balance.h"
#include "upstream/health.h"

static void weighted_distribution(void **state)
{
    const uint32_t w[3] = {1, 3, 6};
    size_t first[3] = {0}, order[3];
    uint64_t rng = 42;
    const size_t n = 100000;
    (void)state;
    for (size_t i = 0; i < n; i++) {
        bool seen[3] = {false};
        balance_weighted_order(w, 3, &rng, order);
        for (size_t k = 0; k < 3; k++) {
            assert_true(order[k] < 3);
            assert_false(seen[order[k]]); /* a permutation */
            seen[order[k]] = true;
        }
        first[order[0]]++;
    }
    for (size_t k = 0; k < 3; k++) {
        double p = w[k] / 10.0, sd = sqrt((double)n * p * (1 - p));
        assert_true(fabs((double)first[k] - (double)n * p) <= 4 * sd);
    }
}

static void weighted_second_pick_excludes_first(void **state)
{
    /* after the heavy member is drawn, the two light ones split 1:1 */
    const uint32_t w[3] = {1, 1, 1000000};
    size_t order[3], second[3] = {0};
    uint64_t rng = 7;
    (void)state;
    for (int i = 0; i < 20000; i++) {
        balance_weighted_order(w, 3, &rng, order);
        if (order[0] == 2)
            second[order[1]]++;
    }
    assert_int_equal(second[2], 0);
    assert_true(second[0] > 9000 && second[1] > 9000);
}

static void rendezvous_sticky_and_minimal_moves(void **state)
{
    const char *names3[3] = {"east", "west", "oai"}, *names2[2] = {"east", "oai"};
    const uint32_t w3[3] = {1, 1, 1}, w2[2] = {1, 1};
    size_t top[3] = {0}, moved_wrongly = 0, moved = 0;
    (void)state;
    for (int i = 0; i < 3000; i++) {
        char key[32];
        size_t o1[3], o2[3], r[2];
        snprintf(key, sizeof key, "key-%d", i);
        balance_rendezvous_order(key, strlen(key), names3, w3, 3, o1);
        balance_rendezvous_order(key, strlen(key), names3, w3, 3, o2);
        assert_memory_equal(o1, o2, sizeof o1); /* stable */
        top[o1[0]]++;
        /* "west" (1) removed */
        balance_rendezvous_order(key, strlen(key), names2, w2, 2, r);
        {
            const char *before = names3[o1[0]], *after = names2[r[0]];
            if (o1[0] == 1) {
                moved++;
                /* its keys go to their second choice */
                assert_string_equal(after, names3[o1[1]]);
            } else if (strcmp(before, after) != 0) {
                moved_wrongly++;
            }
        }
    }
    assert_int_equal(moved_wrongly, 0);
    assert_true(moved > 800 && moved < 1200);
    for (int k = 0; k < 3; k++)
        assert_true(top[k] > 800 && top[k] < 1200);
}

static void rendezvous_weights(void **state)
{
    const char *names[2] = {"a", "b"};
    const uint32_t w[2] = {1, 3};
    size_t top[2] = {0}, o[2];
    (void)state;
    for (int i = 0; i < 8000; i++) {
        char key[32];
        snprintf(key, sizeof key, "u%d", i);
        balance_rendezvous_order(key, strlen(key), names, w, 2, o);
        top[o[0]]++;
    }
    /* 1:3 within 4 sd (sd ~ 39) */
    assert_true(fabs((double)top[1] - 6000.0) < 160.0);
}

static void ewma(void **state)
{
    uint64_t e = 0;
    (void)state;
    assert_int_equal(health_ewma_next(0, 1000), 1000);
    assert_int_equal(health_ewma_next(1000, 2000), 1200);
    assert_int_equal(health_ewma_next(1000, 0), 1000 - 999 / 5);
    for (int i = 0; i < 60; i++)
        e = health_ewma_next(e, 50000);
    assert_true(e == 50000);
    for (int i = 0; i < 60; i++)
        e = health_ewma_next(e, 1000);
    assert_true(e >= 1000 && e < 1010); /* converges from above */
}

static const char *YAML =
    "providers:\n  p: {type: openai, base_url: \"http://h/v1\"}\n"
    "models:\n  a: {provider: p}\n  b: {provider: p}\n  c: {provider: p}\n  d: {provider: p}\n"
    "tiers:\n"
    "  w:\n    - any: [a, b, c]\n    - d\n"
    "  lo:\n    - any: [a, b]\n      strategy: least_outstanding\n"
    "  lat:\n    - any: [a, b, c]\n      strategy: latency\n"
    "  st:\n    - any: [a, b, c]\n      sticky: user\n"
    "  sk:\n    - any: [a, b, c]\n      sticky: key\n"
    "  sh:\n    - any: [a, b, c]\n      sticky: header:X-Session\n"
    "routing:\n  default_tier: w\n  circuit: {failures: 1}\n";

typedef struct fix {
    health_t *h;
    config_t *cfg;
} fix_t;

static int setup(void **state)
{
    char err[4096];
    fix_t *f = calloc(1, sizeof *f);
    f->cfg = config_load_string("t.yaml", YAML, strlen(YAML), err, sizeof err, NULL, 0);
    if (f->cfg == NULL)
        fail_msg("config did not load:\n%s", err);
    f->h = health_new(1);
    health_bind(f->h, f->cfg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    config_unref(f->cfg);
    health_free(f->h);
    free(f);
    return 0;
}

static int idx(const config_t *cfg, const char *name)
{
    int i = config_find_model(cfg, name);
    assert_true(i >= 0);
    return i;
}

static void route_tier(const config_t *cfg, const char *tier, route_t *r)
{
    assert_int_equal(router_resolve(cfg, tier, r), ROUTER_OK);
}

static void group_parsed(void **state)
{
    fix_t *f = *state;
    const cfg_tier_t *t = &f->cfg->tiers[config_find_tier(f->cfg, "w")];
    assert_int_equal(t->n_models, 4);
    assert_int_equal(t->n_groups, 1);
    assert_int_equal(t->groups[0].first, 0);
    assert_int_equal(t->groups[0].n, 3);
    assert_int_equal(t->models[3], idx(f->cfg, "d"));
}

static void open_circuit_goes_last_and_pinned_stays(void **state)
{
    fix_t *f = *state;
    const config_t *cfg = f->cfg;
    int a = idx(cfg, "a"), d = idx(cfg, "d");
    route_t r;
    balance_in_t in = {.now_ms = 1000};
    health_report(cfg->models[a].health, &cfg->models[a].circuit, HEALTH_FAILED, false, 1000, "x");
    for (int i = 0; i < 200; i++) {
        in.rnd = (uint64_t)i * 977;
        route_tier(cfg, "w", &r);
        balance_route(cfg, &r, &in);
        assert_int_equal(r.n, 4);
        assert_int_equal(r.chain[2], a); /* open: last of the group */
        assert_int_equal(r.chain[3], d); /* the next entry after the group */
        assert_int_not_equal(balance_group_pick(cfg, &r, 0), a);
    }
    /* the client named "a": it stays first, the rest of the group follows */
    assert_int_equal(router_resolve(cfg, "a", &r), ROUTER_OK);
    balance_route(cfg, &r, &in);
    assert_int_equal(r.chain[0], a);
    assert_int_equal(r.pinned, 1);
    assert_int_equal(r.chain[3], d);
}

static void least_outstanding_and_latency(void **state)
{
    fix_t *f = *state;
    const config_t *cfg = f->cfg;
    int a = idx(cfg, "a"), b = idx(cfg, "b"), c = idx(cfg, "c");
    route_t r;
    balance_in_t in = {.now_ms = 1000};
    health_lb_start(cfg->models[a].health);
    health_lb_start(cfg->models[a].health);
    for (int i = 0; i < 50; i++) {
        in.rnd = (uint64_t)i;
        route_tier(cfg, "lo", &r);
        balance_route(cfg, &r, &in);
        assert_int_equal(r.chain[0], b);
    }
    health_lb_end(cfg->models[a].health);
    health_lb_end(cfg->models[a].health);
    health_lb_latency(cfg->models[a].health, 90000);
    health_lb_latency(cfg->models[b].health, 5000);
    health_lb_latency(cfg->models[c].health, 40000);
    {
        int first_b = 0;
        for (int i = 0; i < 400; i++) {
            in.rnd = (uint64_t)i * 31;
            route_tier(cfg, "lat", &r);
            balance_route(cfg, &r, &in);
            first_b += r.chain[0] == b;
        }
        /* 1 in 20 explores by weight: b first in ~95% + 5%/3 */
        assert_true(first_b > 340);
    }
}

static void sticky_user(void **state)
{
    fix_t *f = *state;
    const config_t *cfg = f->cfg;
    route_t r;
    balance_in_t in = {.now_ms = 1000, .user = "alice"};
    int first = -1;
    for (int i = 0; i < 50; i++) {
        in.rnd = (uint64_t)i * 131;
        route_tier(cfg, "st", &r);
        balance_route(cfg, &r, &in);
        if (first < 0)
            first = r.chain[0];
        assert_int_equal(r.chain[0], first);
    }
}

static const char *hdr(void *arg, const char *name)
{
    /* the configured name arrives lower-cased */
    return strcmp(name, "x-session") == 0 ? arg : NULL;
}

static int first_of(const config_t *cfg, const char *tier, balance_in_t *in, uint64_t rnd)
{
    route_t r;
    route_tier(cfg, tier, &r);
    in->rnd = rnd;
    balance_route(cfg, &r, in);
    return r.chain[0];
}

static void sticky_key_header_and_unhealthy(void **state)
{
    fix_t *f = *state;
    const config_t *cfg = f->cfg;
    balance_in_t in = {.now_ms = 1000, .key_name = "team-a", .header = hdr,
                       .header_arg = (void *)"sess-9"};
    int k = first_of(cfg, "sk", &in, 1), h = first_of(cfg, "sh", &in, 1), seen[3] = {0};
    for (uint64_t i = 2; i < 40; i++) {
        assert_int_equal(first_of(cfg, "sk", &in, i), k);
        assert_int_equal(first_of(cfg, "sh", &in, i), h);
    }
    /* without the header: the strategy (weighted random) spreads them */
    in.header_arg = NULL;
    for (uint64_t i = 0; i < 300; i++)
        seen[first_of(cfg, "sh", &in, i * 7919)]++;
    assert_true(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
    /* the key's member opens: the key moves to one other member and stays */
    health_report(cfg->models[k].health, &cfg->models[k].circuit, HEALTH_FAILED, false, 1000, "x");
    {
        int moved = first_of(cfg, "sk", &in, 1);
        assert_int_not_equal(moved, k);
        for (uint64_t i = 2; i < 40; i++)
            assert_int_equal(first_of(cfg, "sk", &in, i), moved);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(weighted_distribution),
        cmocka_unit_test(weighted_second_pick_excludes_first),
        cmocka_unit_test(rendezvous_sticky_and_minimal_moves),
        cmocka_unit_test(rendezvous_weights),
        cmocka_unit_test(ewma),
        cmocka_unit_test_setup_teardown(group_parsed, setup, teardown),
        cmocka_unit_test_setup_teardown(open_circuit_goes_last_and_pinned_stays, setup, teardown),
        cmocka_unit_test_setup_teardown(least_outstanding_and_latency, setup, teardown),
        cmocka_unit_test_setup_teardown(sticky_user, setup, teardown),
        cmocka_unit_test_setup_teardown(sticky_key_header_and_unhealthy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
