/* Unit tests for src/upstream/retry.c: the default failure policy (today's
 * failover rules), the policy entries, the backoff with full jitter, the
 * decision for one failed attempt (stale connection, retries spent,
 * Retry-After and its cap, the deadline) and the deadline header. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "upstream/retry.h"

/* The rule upstream.c had before the policy existed. */
static bool old_failover(unsigned s)
{
    return s == 401 || s == 403 || s == 408 || s == 429 || s >= 500 || s < 200 ||
           (s >= 300 && s < 400);
}

static void test_default_policy_is_todays_rule(void **state)
{
    cfg_retry_t p;
    (void)state;
    retry_policy_default(&p);
    for (unsigned s = 300; s < 600; s++) {
        enum retry_action a = retry_action_of(&p, RETRY_KIND_STATUS, s);
        if (old_failover(s))
            assert_int_not_equal(a, RETRY_ACT_PASS);
        else
            assert_int_equal(a, RETRY_ACT_PASS);
    }
    /* outside 300..599: no policy, fail over */
    assert_int_equal(retry_action_of(&p, RETRY_KIND_STATUS, 0), RETRY_ACT_FAILOVER);
    assert_int_equal(retry_action_of(&p, RETRY_KIND_STATUS, 199), RETRY_ACT_FAILOVER);
    assert_int_equal(retry_action_of(&p, RETRY_KIND_STATUS, 600), RETRY_ACT_FAILOVER);
    /* retryable when retries > 0 */
    assert_int_equal(retry_action_of(&p, RETRY_KIND_STATUS, 429), RETRY_ACT_RETRY);
    assert_int_equal(retry_action_of(&p, RETRY_KIND_STATUS, 503), RETRY_ACT_RETRY);
    assert_int_equal(retry_action_of(&p, RETRY_KIND_STATUS, 529), RETRY_ACT_RETRY);
    assert_int_equal(retry_action_of(&p, RETRY_KIND_STATUS, 501), RETRY_ACT_FAILOVER);
    assert_int_equal(retry_action_of(&p, RETRY_KIND_STATUS, 401), RETRY_ACT_FAILOVER);
    assert_int_equal(retry_action_of(&p, RETRY_KIND_STATUS, 301), RETRY_ACT_FAILOVER);
    assert_int_equal(retry_action_of(&p, RETRY_KIND_CONNECT, 0), RETRY_ACT_RETRY);
    assert_int_equal(retry_action_of(&p, RETRY_KIND_RESET, 0), RETRY_ACT_RETRY);
    assert_int_equal(retry_action_of(&p, RETRY_KIND_STALE, 0), RETRY_ACT_RETRY);
    assert_int_equal(retry_action_of(&p, RETRY_KIND_TIMEOUT, 0), RETRY_ACT_FAILOVER);
    assert_int_equal(retry_action_of(&p, RETRY_KIND_INVALID, 0), RETRY_ACT_FAILOVER);
    assert_int_equal(p.retries, 0);
    assert_int_equal(p.backoff_ms, 200);
    assert_int_equal(p.backoff_max_ms, 2000);
    assert_int_equal(p.after_max_ms, 2000);
}

static void test_kinds_never_pass_through(void **state)
{
    cfg_retry_t p;
    (void)state;
    retry_policy_default(&p);
    p.kind[RETRY_KIND_TIMEOUT] = RETRY_ACT_PASS; /* config_upstream.c refuses it; still */
    assert_int_equal(retry_action_of(&p, RETRY_KIND_TIMEOUT, 0), RETRY_ACT_FAILOVER);
    assert_int_equal(retry_action_of(&p, (enum retry_kind)99, 0), RETRY_ACT_FAILOVER);
}

static void test_parse_item(void **state)
{
    enum retry_kind k;
    unsigned lo = 0, hi = 0;
    (void)state;
    assert_int_equal(retry_parse_item("429", &k, &lo, &hi), 0);
    assert_int_equal(k, RETRY_KIND_STATUS);
    assert_int_equal(lo, 429);
    assert_int_equal(hi, 429);
    assert_int_equal(retry_parse_item("5xx", &k, &lo, &hi), 0);
    assert_int_equal(k, RETRY_KIND_STATUS);
    assert_int_equal(lo, 500);
    assert_int_equal(hi, 599);
    assert_int_equal(retry_parse_item("3XX", &k, &lo, &hi), 0);
    assert_int_equal(lo, 300);
    assert_int_equal(retry_parse_item("timeout", &k, &lo, &hi), 0);
    assert_int_equal(k, RETRY_KIND_TIMEOUT);
    assert_int_equal(retry_parse_item("stale_connection", &k, &lo, &hi), 0);
    assert_int_equal(k, RETRY_KIND_STALE);
    assert_int_equal(retry_parse_item("invalid_answer", &k, &lo, &hi), 0);
    assert_int_equal(k, RETRY_KIND_INVALID);
    assert_int_equal(retry_parse_item("connect", &k, &lo, &hi), 0);
    assert_int_equal(retry_parse_item("reset", &k, &lo, &hi), 0);
    assert_int_equal(k, RETRY_KIND_RESET);
    static const char *bad[] = {"",    "200", "2xx", "6xx", "600", "299", "0429", "42",
                                "5x",  "5xxx", "status", "Timeout", "x5x", "1xx", "+429", " 429"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (retry_parse_item(bad[i], &k, &lo, &hi) == 0)
            fail_msg("\"%s\" parsed", bad[i]);
    assert_string_equal(retry_kind_name(RETRY_KIND_STALE), "stale_connection");
    assert_string_equal(retry_kind_name(RETRY_KIND_INVALID), "invalid_answer");
}

static void test_backoff_full_jitter(void **state)
{
    (void)state;
    /* windows 200, 400, 800, 1600, then the cap 2000 */
    assert_int_equal(retry_backoff_ms(200, 2000, 1, 0), 0);
    assert_int_equal(retry_backoff_ms(200, 2000, 1, 200), 200);
    assert_int_equal(retry_backoff_ms(200, 2000, 1, 201), 0);
    assert_int_equal(retry_backoff_ms(200, 2000, 2, 400), 400);
    assert_int_equal(retry_backoff_ms(200, 2000, 3, 800), 800);
    assert_int_equal(retry_backoff_ms(200, 2000, 4, 1600), 1600);
    assert_int_equal(retry_backoff_ms(200, 2000, 5, 2000), 2000);
    assert_int_equal(retry_backoff_ms(200, 2000, 5, 2001), 0);
    assert_int_equal(retry_backoff_ms(200, 2000, 11, 2000), 2000);
    assert_int_equal(retry_backoff_ms(200, 2000, 1000, 2000), 2000); /* no overflow */
    /* every value within its window, whatever the random bits */
    for (unsigned n = 1; n <= 11; n++) {
        uint64_t w = 200ull << (n - 1);
        if (w > 2000)
            w = 2000;
        for (uint32_t r = 0; r < 5000; r += 7) {
            uint32_t d = retry_backoff_ms(200, 2000, n, r * 2654435761u);
            assert_true(d <= w);
        }
        assert_true(retry_backoff_ms(200, 2000, n, UINT32_MAX) <= w);
    }
    /* a base over the cap is cut to it */
    assert_true(retry_backoff_ms(5000, 300, 1, UINT32_MAX) <= 300);
}

static retry_input_t input(enum retry_kind kind, unsigned status)
{
    retry_input_t in = {.kind = kind, .status = status, .retry_after_ms = -1, .retries = 2,
                        .used = 0, .stale_free_used = false, .time_left_ms = -1, .rnd = 150};
    return in;
}

static void test_decide_retries(void **state)
{
    cfg_retry_t p;
    retry_input_t in = input(RETRY_KIND_STATUS, 503);
    retry_plan_t r;
    (void)state;
    retry_policy_default(&p);
    r = retry_decide(&p, &in);
    assert_true(r.retry);
    assert_false(r.free_retry);
    assert_false(r.fresh_connect);
    assert_int_equal(r.delay_ms, 150); /* 150 % 201 */
    in.used = 1;
    in.rnd = 399;
    r = retry_decide(&p, &in);
    assert_true(r.retry);
    assert_int_equal(r.delay_ms, 399); /* the second window is 400 */
    in.used = 2;
    r = retry_decide(&p, &in);
    assert_false(r.retry);
    assert_non_null(r.why_not);
    /* retries: 0 — the policy says retry, nothing to say about it */
    in = input(RETRY_KIND_STATUS, 503);
    in.retries = 0;
    r = retry_decide(&p, &in);
    assert_false(r.retry);
    assert_null(r.why_not);
    /* not retryable: fail over or pass through */
    in = input(RETRY_KIND_STATUS, 501);
    assert_false(retry_decide(&p, &in).retry);
    in = input(RETRY_KIND_STATUS, 400);
    assert_false(retry_decide(&p, &in).retry);
    in = input(RETRY_KIND_TIMEOUT, 0);
    assert_false(retry_decide(&p, &in).retry);
    in = input(RETRY_KIND_CONNECT, 0);
    assert_true(retry_decide(&p, &in).retry);
}

static void test_decide_stale_connection(void **state)
{
    cfg_retry_t p;
    retry_input_t in = input(RETRY_KIND_STALE, 0);
    retry_plan_t r;
    (void)state;
    retry_policy_default(&p);
    in.retries = 0;
    r = retry_decide(&p, &in);
    assert_true(r.retry); /* free, even with retries: 0 */
    assert_true(r.free_retry);
    assert_true(r.fresh_connect);
    assert_int_equal(r.delay_ms, 0);
    in.stale_free_used = true;
    assert_false(retry_decide(&p, &in).retry); /* once */
    in.retries = 1;
    r = retry_decide(&p, &in);
    assert_true(r.retry); /* then counted like any other */
    assert_false(r.free_retry);
    assert_true(r.fresh_connect);
    /* the policy turns it off */
    p.kind[RETRY_KIND_STALE] = RETRY_ACT_FAILOVER;
    in = input(RETRY_KIND_STALE, 0);
    assert_false(retry_decide(&p, &in).retry);
    /* not even the free retry once the deadline passed */
    retry_policy_default(&p);
    in = input(RETRY_KIND_STALE, 0);
    in.time_left_ms = 0;
    assert_false(retry_decide(&p, &in).retry);
}

static void test_decide_retry_after(void **state)
{
    cfg_retry_t p;
    retry_input_t in = input(RETRY_KIND_STATUS, 429);
    retry_plan_t r;
    (void)state;
    retry_policy_default(&p);
    in.retry_after_ms = 1000;
    r = retry_decide(&p, &in);
    assert_true(r.retry);
    assert_int_equal(r.delay_ms, 1000); /* at least what the provider asked */
    in.rnd = 190;
    in.retry_after_ms = 10;
    assert_int_equal(retry_decide(&p, &in).delay_ms, 190); /* the backoff when longer */
    in.retry_after_ms = 2000;
    assert_true(retry_decide(&p, &in).retry); /* the cap itself */
    in.retry_after_ms = 2001;
    r = retry_decide(&p, &in);
    assert_false(r.retry); /* over retry_after_max_ms: fail over now */
    assert_non_null(strstr(r.why_not, "retry_after_max_ms"));
    p.after_max_ms = 0;
    in.retry_after_ms = 0;
    assert_true(retry_decide(&p, &in).retry);
}

static void test_decide_deadline(void **state)
{
    cfg_retry_t p;
    retry_input_t in = input(RETRY_KIND_STATUS, 503);
    retry_plan_t r;
    (void)state;
    retry_policy_default(&p);
    in.rnd = 150;
    in.time_left_ms = 151;
    assert_true(retry_decide(&p, &in).retry);
    in.time_left_ms = 150; /* the wait would end at the deadline: not waited */
    r = retry_decide(&p, &in);
    assert_false(r.retry);
    assert_non_null(strstr(r.why_not, "deadline"));
    in.status = 429;
    in.retry_after_ms = 1000;
    in.time_left_ms = 600;
    assert_false(retry_decide(&p, &in).retry);
}

static void test_deadline_header(void **state)
{
    uint32_t out = 7;
    (void)state;
    assert_int_equal(retry_deadline_ms(NULL, 0, 600000, &out), 0);
    assert_int_equal(out, 0);
    assert_int_equal(retry_deadline_ms(NULL, 30000, 600000, &out), 0);
    assert_int_equal(out, 30000);
    assert_int_equal(retry_deadline_ms("1500", 30000, 600000, &out), 0);
    assert_int_equal(out, 1500); /* the header wins, shorter */
    assert_int_equal(retry_deadline_ms("90000", 30000, 600000, &out), 0);
    assert_int_equal(out, 90000); /* or longer, up to the cap */
    assert_int_equal(retry_deadline_ms("700000", 30000, 600000, &out), 0);
    assert_int_equal(out, 600000);
    assert_int_equal(retry_deadline_ms("99999999999", 0, 4000, &out), 0);
    assert_int_equal(out, 4000);
    static const char *bad[] = {"", "0", "-1", "1.5", "abc", " 10", "10ms", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (retry_deadline_ms(bad[i], 0, 4000, &out) == 0)
            fail_msg("\"%s\" accepted", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_policy_is_todays_rule),
        cmocka_unit_test(test_kinds_never_pass_through),
        cmocka_unit_test(test_parse_item),
        cmocka_unit_test(test_backoff_full_jitter),
        cmocka_unit_test(test_decide_retries),
        cmocka_unit_test(test_decide_stale_connection),
        cmocka_unit_test(test_decide_retry_after),
        cmocka_unit_test(test_decide_deadline),
        cmocka_unit_test(test_deadline_header),
    };
    return cmocka_run_group_tests_name("retry", tests, NULL, NULL);
}
