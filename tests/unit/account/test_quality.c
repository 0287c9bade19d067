/* Unit tests for src/account/quality.c: the rolling windows, alert raise
 * and clear, demotion and its cooldown, the judge's spend cap, the
 * exposition. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "account/quality.h"

static cfg_alerts_t alerts(bool demote)
{
    cfg_alerts_t a = {.window = 4, .min_samples = 3, .min_mean_score = 6,
                      .max_failure_rate = 0.5, .demote = demote, .demote_cooldown_s = 10};
    return a;
}

static size_t rec(quality_t *q, const cfg_alerts_t *a, int score, enum judge_failure f,
                  uint64_t now, quality_event_t *ev)
{
    quality_sample_t s = {.tier = "budget", .model = "cheap", .rule = "default", .failure = f,
                          .scored = score > 0, .score = score};
    return quality_record(q, a, &s, now, ev, 8);
}

static void test_mean_alert_raise_and_clear(void **state)
{
    quality_t *q = quality_new();
    cfg_alerts_t a = alerts(false);
    quality_event_t ev[8];
    (void)state;
    assert_int_equal(rec(q, &a, 3, JUDGE_FAIL_NONE, 1, ev), 0);
    assert_int_equal(rec(q, &a, 3, JUDGE_FAIL_NONE, 2, ev), 0); /* below min_samples */
    assert_int_equal(rec(q, &a, 3, JUDGE_FAIL_NONE, 3, ev), 2); /* model and rule */
    assert_true(ev[0].raised);
    assert_string_equal(ev[0].kind, "model");
    assert_string_equal(ev[0].name, "cheap");
    assert_string_equal(ev[0].reason, "mean_score");
    assert_int_equal(ev[0].n_scored, 3);
    assert_string_equal(ev[1].kind, "rule");
    assert_false(quality_demoted(q, "cheap", 4)); /* demote off */
    /* the window holds 4: (3+3+3+10)/4 = 4.75 still low, then the oldest
     * leaves: (3+3+10+10)/4 = 6.5 clears both */
    assert_int_equal(rec(q, &a, 10, JUDGE_FAIL_NONE, 4, ev), 0);
    assert_int_equal(rec(q, &a, 10, JUDGE_FAIL_NONE, 5, ev), 2);
    assert_false(ev[0].raised);
    assert_true(ev[0].mean_score == 6.5);
    quality_free(q);
}

static void test_failure_rate_and_demotion(void **state)
{
    quality_t *q = quality_new();
    cfg_alerts_t a = alerts(true);
    quality_event_t ev[8];
    buf_t b;
    (void)state;
    rec(q, &a, 0, JUDGE_FAIL_REFUSAL, 1000, ev);
    rec(q, &a, 0, JUDGE_FAIL_TRUNCATED, 1000, ev);
    assert_int_equal(rec(q, &a, 0, JUDGE_FAIL_NONE, 1000, ev), 2); /* 2/3 > 0.5 */
    assert_string_equal(ev[0].reason, "failure_rate");
    assert_true(ev[0].demoted);
    assert_true(quality_demoted(q, "cheap", 1500));
    assert_false(quality_demoted(q, "big", 1500));
    buf_init(&b, 1 << 20);
    quality_readyz(q, &b);
    assert_string_equal(buf_cstr(&b), ",\"demoted\":[\"cheap\"]");
    buf_free(&b);
    /* the cooldown over: traffic again, window empty, the alert still up */
    assert_false(quality_demoted(q, "cheap", 1000 + 10000));
    buf_init(&b, 1 << 20);
    assert_int_equal(quality_render_metrics(q, &b), 0);
    assert_non_null(strstr(buf_cstr(&b), "llmrouter_quality_alert{kind=\"model\",name=\"cheap\",reason=\"failure_rate\"} 1\n"));
    assert_non_null(strstr(buf_cstr(&b), "llmrouter_quality_demoted{model=\"cheap\"} 0\n"));
    assert_non_null(strstr(buf_cstr(&b), "llmrouter_quality_failures_total{tier=\"budget\",model=\"cheap\",rule=\"default\",reason=\"refusal\"} 1\n"));
    buf_free(&b);
    /* three sound samples: cleared, not demoted again */
    rec(q, &a, 0, JUDGE_FAIL_NONE, 12000, ev);
    rec(q, &a, 0, JUDGE_FAIL_NONE, 12000, ev);
    assert_int_equal(rec(q, &a, 0, JUDGE_FAIL_NONE, 12000, ev), 1); /* the model's; the rule's window still fails */
    assert_false(ev[0].raised);
    assert_false(quality_demoted(q, "cheap", 12001));
    quality_free(q);
}

static void test_time_window(void **state)
{
    quality_t *q = quality_new();
    cfg_alerts_t a = alerts(false);
    quality_event_t ev[8];
    (void)state;
    a.window_s = 1;
    rec(q, &a, 2, JUDGE_FAIL_NONE, 0, ev);
    rec(q, &a, 2, JUDGE_FAIL_NONE, 0, ev);
    /* the first two are older than 1 s when the third comes: no decision */
    assert_int_equal(rec(q, &a, 2, JUDGE_FAIL_NONE, 5000, ev), 0);
    quality_free(q);
}

static void test_scores_and_spend(void **state)
{
    quality_t *q = quality_new();
    quality_event_t ev[8];
    buf_t b;
    (void)state;
    rec(q, NULL, 4, JUDGE_FAIL_NONE, 0, ev);
    rec(q, NULL, 8, JUDGE_FAIL_NONE, 0, ev);
    assert_true(quality_spend_ok(q, 0.01));
    quality_add_spend(q, 0.006);
    assert_true(quality_spend_ok(q, 0.01));
    quality_add_spend(q, 0.006);
    assert_false(quality_spend_ok(q, 0.01));
    quality_count_drop(q, QDROP_QUEUE_FULL);
    quality_count_judge_error(q, QJERR_TIMEOUT);
    buf_init(&b, 1 << 20);
    assert_int_equal(quality_render_metrics(q, &b), 0);
    assert_non_null(strstr(buf_cstr(&b), "llmrouter_judge_score_bucket{tier=\"budget\",model=\"cheap\",rule=\"default\",le=\"4\"} 1\n"));
    assert_non_null(strstr(buf_cstr(&b), "llmrouter_judge_score_bucket{tier=\"budget\",model=\"cheap\",rule=\"default\",le=\"8\"} 2\n"));
    assert_non_null(strstr(buf_cstr(&b), "llmrouter_judge_score_sum{tier=\"budget\",model=\"cheap\",rule=\"default\"} 12\n"));
    assert_non_null(strstr(buf_cstr(&b), "llmrouter_judge_cost_usd_total 0.012"));
    assert_non_null(strstr(buf_cstr(&b), "llmrouter_judge_dropped_total{reason=\"queue_full\"} 1\n"));
    assert_non_null(strstr(buf_cstr(&b), "llmrouter_judge_errors_total{reason=\"timeout\"} 1\n"));
    buf_free(&b);
    buf_init(&b, 1 << 20);
    assert_int_equal(quality_stats_json(q, &b), 0);
    assert_non_null(strstr(buf_cstr(&b), "\"tiers\":{\"budget\":{\"n\":2,\"mean\":6.0000}}"));
    buf_free(&b);
    quality_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mean_alert_raise_and_clear),
        cmocka_unit_test(test_failure_rate_and_demotion),
        cmocka_unit_test(test_time_window),
        cmocka_unit_test(test_scores_and_spend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
