/* Unit tests for src/upstream/health.c: the circuit breaker of a model
 * (consecutive failures, failure ratio over the rolling window, open ->
 * half-open probe -> closed or open again with a longer cooldown), 429
 * cooldowns, the last resort, entries kept across a reload (health_bind),
 * and the provider slots with their cross-shard wake-up. The clock is the
 * now_ms argument: every test drives it by hand. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/loop.h"
#include "upstream/health.h"

#define T0 1000000 /* an arbitrary start of the injected clock */

static const char *YAML = "providers:\n  p1: {type: openai, base_url: \"http://h/v1\"}\n"
                          "  p2: {type: openai, base_url: \"http://h/v1\", max_inflight: 2}\n"
                          "models:\n  m1: {provider: p1}\n  m2: {provider: p2}\n"
                          "tiers:\n  t1: [m1, m2]\nrouting:\n  default_tier: t1\n";

typedef struct fix {
    health_t *h;
    config_t *cfg;
    health_model_t *m;
    cfg_circuit_t c;
} fix_t;

static config_t *load(const char *yaml)
{
    char err[4096];
    config_t *cfg = config_load_string("t.yaml", yaml, strlen(yaml), err, sizeof err, NULL, 0);
    if (cfg == NULL)
        fail_msg("config did not load:\n%s", err);
    return cfg;
}

static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof *f);
    f->h = health_new(2);
    f->cfg = load(YAML);
    health_bind(f->h, f->cfg);
    f->m = f->cfg->models[0].health;
    f->c = f->cfg->models[0].circuit; /* the built-in defaults */
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

static void fail_n(fix_t *f, int n, uint64_t now)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(health_allow(f->m, &f->c, now, NULL), HEALTH_ALLOW);
        health_report(f->m, &f->c, HEALTH_FAILED, false, now, "status_5xx");
    }
}

static void test_defaults_resolved(void **state)
{
    fix_t *f = *state;
    assert_true(f->c.enabled);
    assert_int_equal(f->c.failures, 5);
    assert_true(f->c.failure_ratio > 0.49 && f->c.failure_ratio < 0.51);
    assert_int_equal(f->c.min_requests, 20);
    assert_int_equal(f->c.window_ms, 30000);
    assert_int_equal(f->c.cooldown_ms, 30000);
    assert_int_equal(f->c.max_cooldown_ms, 300000);
    assert_int_equal(f->c.retry_after_max_ms, 60000);
    assert_non_null(f->m);
}

static void test_consecutive_failures_open(void **state)
{
    fix_t *f = *state;
    health_model_info_t in;
    uint64_t left = 0;
    fail_n(f, 4, T0);
    health_model_info(f->m, T0, &in);
    assert_int_equal(in.state, HEALTH_CLOSED);
    assert_int_equal(in.consecutive, 4);
    fail_n(f, 1, T0 + 10);
    health_model_info(f->m, T0 + 10, &in);
    assert_int_equal(in.state, HEALTH_OPEN);
    assert_true(in.cooling);
    assert_int_equal(in.trips, 1);
    assert_string_equal(in.last_failure, "status_5xx");
    assert_int_equal(health_allow(f->m, &f->c, T0 + 1010, &left), HEALTH_OPEN_SKIP);
    assert_int_equal(left, 29000);
    health_model_info(f->m, T0 + 1010, &in);
    assert_int_equal(in.skips, 1);
}

static void test_success_resets_the_count(void **state)
{
    fix_t *f = *state;
    health_model_info_t in;
    for (int round = 0; round < 10; round++) {
        fail_n(f, 4, T0 + (uint64_t)round * 100000); /* outside each other's window */
        health_report(f->m, &f->c, HEALTH_OK, false, T0 + (uint64_t)round * 100000, NULL);
    }
    health_model_info(f->m, T0 + 1000000, &in);
    assert_int_equal(in.state, HEALTH_CLOSED);
    assert_int_equal(in.trips, 0);
}

static void test_half_open_one_probe_then_close(void **state)
{
    fix_t *f = *state;
    uint64_t t = T0 + 30000;
    health_model_info_t in;
    fail_n(f, 5, T0);
    assert_int_equal(health_allow(f->m, &f->c, t - 1, NULL), HEALTH_OPEN_SKIP);
    health_model_info(f->m, t, &in);
    assert_int_equal(in.state, HEALTH_HALF_OPEN); /* the next request probes */
    assert_int_equal(health_allow(f->m, &f->c, t, NULL), HEALTH_PROBE);
    /* one probe at a time: the others are skipped while it is out */
    assert_int_equal(health_allow(f->m, &f->c, t + 1, NULL), HEALTH_PROBING_SKIP);
    assert_int_equal(health_allow(f->m, &f->c, t + 5000, NULL), HEALTH_PROBING_SKIP);
    health_report(f->m, &f->c, HEALTH_OK, true, t + 6000, NULL);
    health_model_info(f->m, t + 6000, &in);
    assert_int_equal(in.state, HEALTH_CLOSED);
    assert_false(in.cooling);
    assert_int_equal(in.probes, 1);
    assert_int_equal(health_allow(f->m, &f->c, t + 6001, NULL), HEALTH_ALLOW);
}

static void test_failed_probe_reopens_longer_up_to_the_cap(void **state)
{
    fix_t *f = *state;
    uint64_t t = T0, want = 30000, left;
    health_model_info_t in;
    fail_n(f, 5, t);
    for (int i = 0; i < 6; i++) {
        t += want;
        assert_int_equal(health_allow(f->m, &f->c, t, NULL), HEALTH_PROBE);
        health_report(f->m, &f->c, HEALTH_FAILED, true, t, "timeout");
        want = want * 2 > 300000 ? 300000 : want * 2;
        assert_int_equal(health_allow(f->m, &f->c, t + 1, &left), HEALTH_OPEN_SKIP);
        assert_int_equal(left, want - 1);
        health_model_info(f->m, t + 1, &in);
        assert_int_equal(in.cooldown_ms, want);
    }
    assert_int_equal(want, 300000); /* 30, 60, 120, 240, then the 300 s cap */
    health_model_info(f->m, t, &in);
    assert_int_equal(in.trips, 7);
    assert_string_equal(in.last_failure, "timeout");
}

static void test_neutral_probe_lets_another_probe(void **state)
{
    fix_t *f = *state;
    uint64_t t = T0 + 30000;
    fail_n(f, 5, T0);
    assert_int_equal(health_allow(f->m, &f->c, t, NULL), HEALTH_PROBE);
    /* the client left, or the probe got a 400 passed through */
    health_report(f->m, &f->c, HEALTH_NEUTRAL, true, t + 10, NULL);
    assert_int_equal(health_allow(f->m, &f->c, t + 20, NULL), HEALTH_PROBE);
}

static void test_stale_probe_is_reclaimed(void **state)
{
    fix_t *f = *state;
    uint64_t t = T0 + 30000;
    fail_n(f, 5, T0);
    assert_int_equal(health_allow(f->m, &f->c, t, NULL), HEALTH_PROBE);
    assert_int_equal(health_allow(f->m, &f->c, t + 599999, NULL), HEALTH_PROBING_SKIP);
    assert_int_equal(health_allow(f->m, &f->c, t + 600000, NULL), HEALTH_PROBE);
}

static void test_outcomes_of_earlier_attempts_do_not_close(void **state)
{
    fix_t *f = *state;
    health_model_info_t in;
    fail_n(f, 5, T0);
    /* attempts that began before the trip end now: neither closes it nor
     * counts */
    health_report(f->m, &f->c, HEALTH_OK, false, T0 + 100, NULL);
    health_report(f->m, &f->c, HEALTH_FAILED, false, T0 + 100, "status_5xx");
    health_model_info(f->m, T0 + 200, &in);
    assert_int_equal(in.state, HEALTH_OPEN);
    assert_int_equal(in.trips, 1);
    assert_int_equal(health_allow(f->m, &f->c, T0 + 200, NULL), HEALTH_OPEN_SKIP);
}

static void test_failure_ratio_over_the_window(void **state)
{
    fix_t *f = *state;
    health_model_info_t in;
    uint64_t t = T0;
    f->c.failures = 0; /* the ratio rule alone */
    /* 19 attempts, 13 failed, never 5 in a row: below min_requests */
    for (int i = 0; i < 19; i++) {
        bool failed = i % 3 != 2;
        health_report(f->m, &f->c, failed ? HEALTH_FAILED : HEALTH_OK, false, t += 100, NULL);
    }
    health_model_info(f->m, t, &in);
    assert_int_equal(in.state, HEALTH_CLOSED);
    /* the 20th, a failure: 14 of 20 failed > 50 % */
    health_report(f->m, &f->c, HEALTH_FAILED, false, t += 100, NULL);
    health_model_info(f->m, t, &in);
    assert_int_equal(in.state, HEALTH_OPEN);
}

static void test_failure_ratio_at_half_stays_closed(void **state)
{
    fix_t *f = *state;
    health_model_info_t in;
    uint64_t t = T0;
    f->c.failures = 0;
    for (int i = 0; i < 40; i++)
        health_report(f->m, &f->c, i % 2 ? HEALTH_FAILED : HEALTH_OK, false, t += 10, NULL);
    health_model_info(f->m, t, &in);
    assert_int_equal(in.state, HEALTH_CLOSED); /* 50 % is not over 50 % */
}

static void test_window_forgets_old_attempts(void **state)
{
    fix_t *f = *state;
    health_model_info_t in;
    uint64_t t = T0;
    f->c.failures = 0;
    for (int i = 0; i < 15; i++)
        health_report(f->m, &f->c, HEALTH_FAILED, false, t += 10, NULL);
    t += 31000; /* the window (30 s) moved past them */
    for (int i = 0; i < 10; i++)
        health_report(f->m, &f->c, i < 6 ? HEALTH_FAILED : HEALTH_OK, false, t += 10, NULL);
    health_model_info(f->m, t, &in);
    assert_int_equal(in.state, HEALTH_CLOSED); /* 10 in the window: below min_requests */
}

static void test_neutral_outcomes_never_count(void **state)
{
    fix_t *f = *state;
    health_model_info_t in;
    for (int i = 0; i < 100; i++)
        health_report(f->m, &f->c, HEALTH_NEUTRAL, false, T0 + (uint64_t)i, NULL);
    fail_n(f, 4, T0 + 200);
    health_model_info(f->m, T0 + 200, &in);
    assert_int_equal(in.state, HEALTH_CLOSED);
    assert_int_equal(in.consecutive, 4);
}

static void test_trip_soon_after_close_waits_longer(void **state)
{
    fix_t *f = *state;
    uint64_t t = T0 + 30000, left;
    fail_n(f, 5, T0);
    assert_int_equal(health_allow(f->m, &f->c, t, NULL), HEALTH_PROBE);
    health_report(f->m, &f->c, HEALTH_OK, true, t, NULL);
    /* the trouble is back within window_ms: 60 s this time */
    fail_n(f, 5, t + 1000);
    assert_int_equal(health_allow(f->m, &f->c, t + 1000, &left), HEALTH_OPEN_SKIP);
    assert_int_equal(left, 60000);
    /* a probe closes it; a trip long after starts from cooldown_ms again */
    t += 61000;
    assert_int_equal(health_allow(f->m, &f->c, t, NULL), HEALTH_PROBE);
    health_report(f->m, &f->c, HEALTH_OK, true, t, NULL);
    fail_n(f, 5, t + 100000);
    assert_int_equal(health_allow(f->m, &f->c, t + 100000, &left), HEALTH_OPEN_SKIP);
    assert_int_equal(left, 30000);
}

static void test_429_cooldown(void **state)
{
    fix_t *f = *state;
    uint64_t left;
    health_model_info_t in;
    health_rate_limited(f->m, &f->c, 1500, false, T0);
    assert_int_equal(health_allow(f->m, &f->c, T0 + 500, &left), HEALTH_RATE_SKIP);
    assert_int_equal(left, 1000);
    assert_int_equal(health_allow(f->m, &f->c, T0 + 1500, NULL), HEALTH_ALLOW);
    /* not a breaker failure */
    health_model_info(f->m, T0 + 1500, &in);
    assert_int_equal(in.consecutive, 0);
    assert_int_equal(in.state, HEALTH_CLOSED);
    /* no retry-after: one second */
    health_rate_limited(f->m, &f->c, -1, false, T0 + 2000);
    assert_int_equal(health_allow(f->m, &f->c, T0 + 2999, NULL), HEALTH_RATE_SKIP);
    assert_int_equal(health_allow(f->m, &f->c, T0 + 3000, NULL), HEALTH_ALLOW);
    /* capped at retry_after_max_ms */
    health_rate_limited(f->m, &f->c, 3600000, false, T0 + 4000);
    assert_int_equal(health_allow(f->m, &f->c, T0 + 4000, &left), HEALTH_RATE_SKIP);
    assert_int_equal(left, 60000);
    /* a shorter one never shortens the running cooldown */
    health_rate_limited(f->m, &f->c, 10, false, T0 + 5000);
    assert_int_equal(health_allow(f->m, &f->c, T0 + 5000, &left), HEALTH_RATE_SKIP);
    assert_int_equal(left, 59000);
}

static void test_429_cooldown_off(void **state)
{
    fix_t *f = *state;
    f->c.retry_after_max_ms = 0;
    health_rate_limited(f->m, &f->c, 5000, false, T0);
    assert_int_equal(health_allow(f->m, &f->c, T0 + 1, NULL), HEALTH_ALLOW);
}

static void test_429_probe_stays_half_open(void **state)
{
    fix_t *f = *state;
    uint64_t t = T0 + 30000;
    health_model_info_t in;
    fail_n(f, 5, T0);
    assert_int_equal(health_allow(f->m, &f->c, t, NULL), HEALTH_PROBE);
    health_rate_limited(f->m, &f->c, 2000, true, t);
    health_model_info(f->m, t, &in);
    assert_int_equal(in.state, HEALTH_HALF_OPEN);
    assert_int_equal(health_allow(f->m, &f->c, t + 1000, NULL), HEALTH_RATE_SKIP);
    assert_int_equal(health_allow(f->m, &f->c, t + 2000, NULL), HEALTH_PROBE);
}

static void test_disabled_never_skips(void **state)
{
    fix_t *f = *state;
    f->c.enabled = false;
    fail_n(f, 50, T0);
    health_rate_limited(f->m, &f->c, 5000, false, T0);
    assert_int_equal(health_allow(f->m, &f->c, T0 + 1, NULL), HEALTH_ALLOW);
    assert_int_equal(health_allow(NULL, &f->c, T0 + 1, NULL), HEALTH_ALLOW);
}

static void test_force_takes_the_probe(void **state)
{
    fix_t *f = *state;
    health_model_info_t in;
    assert_false(health_force(f->m, &f->c, T0)); /* closed: a plain attempt */
    fail_n(f, 5, T0);
    assert_true(health_force(f->m, &f->c, T0 + 10)); /* open: the last resort probes */
    assert_false(health_force(f->m, &f->c, T0 + 20)); /* one probe at a time */
    health_report(f->m, &f->c, HEALTH_OK, true, T0 + 30, NULL);
    health_model_info(f->m, T0 + 30, &in);
    assert_int_equal(in.state, HEALTH_CLOSED);
}

static void test_reload_keeps_state(void **state)
{
    fix_t *f = *state;
    config_t *next = load("providers:\n  p0: {type: openai, base_url: \"http://x/v1\"}\n"
                          "  p1: {type: openai, base_url: \"http://h/v1\"}\n"
                          "models:\n  m0: {provider: p0}\n  m1: {provider: p1}\n"
                          "tiers:\n  t1: [m0, m1]\nrouting:\n  default_tier: t1\n");
    health_model_info_t in;
    fail_n(f, 5, T0);
    health_bind(f->h, next);
    assert_ptr_equal(next->models[1].health, f->m); /* m1, at another index */
    assert_ptr_equal(next->providers[1].health, f->cfg->providers[0].health);
    assert_non_null(next->models[0].health);
    assert_ptr_not_equal(next->models[0].health, f->m);
    health_model_info(next->models[1].health, T0 + 1, &in);
    assert_int_equal(in.state, HEALTH_OPEN);
    config_unref(next);
}

static void test_slots(void **state)
{
    fix_t *f = *state;
    health_provider_t *p = f->cfg->providers[1].health;
    health_provider_info_t in;
    assert_true(health_slot_acquire(p, 2));
    assert_true(health_slot_acquire(p, 2));
    assert_false(health_slot_acquire(p, 2));
    health_provider_info(p, &in);
    assert_int_equal(in.inflight, 2);
    health_slot_release(p);
    assert_true(health_slot_acquire(p, 2));
    assert_true(health_slot_acquire(p, 0)); /* no limit: counted only */
    health_provider_info(p, &in);
    assert_int_equal(in.inflight, 3);
    health_slot_release(p);
    health_slot_release(p);
    health_slot_release(p);
    health_provider_info(p, &in);
    assert_int_equal(in.inflight, 0);
}

static void test_wait_queue_fifo(void **state)
{
    fix_t *f = *state;
    health_provider_t *p = f->cfg->providers[1].health;
    health_wait_t a = {0}, b = {0}, c = {0};
    health_provider_info_t in;
    health_wait_push(p, 1, &a);
    health_wait_push(p, 1, &b);
    health_wait_push(p, 1, &c);
    assert_int_equal(health_wait_len(p, 1), 3);
    assert_int_equal(health_wait_len(p, 0), 0);
    assert_ptr_equal(health_wait_head(p, 1), &a);
    health_wait_remove(p, 1, &b); /* from the middle (a client left) */
    health_wait_remove(p, 1, &b); /* twice is safe */
    health_provider_info(p, &in);
    assert_int_equal(in.waiting, 2);
    health_wait_remove(p, 1, &a);
    assert_ptr_equal(health_wait_head(p, 1), &c);
    health_wait_remove(p, 1, &c);
    assert_null(health_wait_head(p, 1));
    health_provider_info(p, &in);
    assert_int_equal(in.waiting, 0);
}

/* ---- a release on one thread wakes the loop of the shard that waits ---- */

static atomic_int woken;

static void on_wake(loop_t *loop, void *arg)
{
    (void)arg;
    atomic_store(&woken, 1);
    loop_stop(loop);
}

static void on_giveup(loop_t *loop, loop_timer_t *t)
{
    (void)t;
    loop_stop(loop);
}

static void *releaser(void *arg)
{
    health_slot_release(arg);
    return NULL;
}

static void test_release_wakes_the_waiting_shard(void **state)
{
    fix_t *f = *state;
    health_provider_t *p = f->cfg->providers[1].health;
    loop_t *loop = loop_new();
    loop_timer_t giveup = {.cb = on_giveup};
    health_wait_t w = {0};
    pthread_t th;
    assert_non_null(loop);
    loop_set_wake_cb(loop, on_wake, NULL);
    health_set_shard_loop(f->h, 1, loop);
    assert_true(health_slot_acquire(p, 1));
    health_wait_push(p, 1, &w);
    atomic_store(&woken, 0);
    pthread_create(&th, NULL, releaser, p);
    loop_timer_start(loop, &giveup, 5000);
    loop_run(loop);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&woken), 1);
    loop_timer_stop(loop, &giveup);
    /* with no waiter left, a release wakes nobody */
    health_wait_remove(p, 1, &w);
    assert_true(health_slot_acquire(p, 1));
    atomic_store(&woken, 0);
    health_slot_release(p);
    loop_timer_start(loop, &giveup, 100);
    loop_run(loop);
    assert_int_equal(atomic_load(&woken), 0);
    health_set_shard_loop(f->h, 1, NULL);
    loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults_resolved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consecutive_failures_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_success_resets_the_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_open_one_probe_then_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_probe_reopens_longer_up_to_the_cap, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_neutral_probe_lets_another_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_probe_is_reclaimed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outcomes_of_earlier_attempts_do_not_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failure_ratio_over_the_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_ratio_at_half_stays_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_forgets_old_attempts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_neutral_outcomes_never_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trip_soon_after_close_waits_longer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_cooldown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_cooldown_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_probe_stays_half_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disabled_never_skips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_force_takes_the_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_keeps_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_queue_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_wakes_the_waiting_shard, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
