/* Unit tests for src/account/stats_ci.c against figures computed by hand
 * (and cross-checked with an independent numerical integration of the t
 * density): Wilson intervals, t quantiles, the t-interval of a mean,
 * Welch's test, the two-proportion z-test, the delta-method ratio interval
 * and the order-statistic interval of a percentile. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>

#include "account/stats_ci.h"

#define assert_near(a, b, eps)                                                                     \
    do {                                                                                           \
        double got_ = (a), want_ = (b);                                                            \
        if (!(fabs(got_ - want_) <= (eps)))                                                        \
            fail_msg("%s = %.9g, expected %.9g", #a, got_, want_);                                 \
    } while (0)

static void test_wilson(void **state)
{
    (void)state;
    /* 8/10: p = 0.8, z = 1.96: (0.8 + 0.19207) / 1.38415 -/+ 1.96 sqrt(0.016 + 0.0096) / 1.38415 */
    stats_est_t e = stats_wilson(8, 10, STATS_Z95);
    assert_near(e.value, 0.8, 1e-12);
    assert_near(e.lo, 0.490162, 1e-5);
    assert_near(e.hi, 0.943318, 1e-5);
    /* 0/10: [0, z^2 / (n + z^2)] */
    e = stats_wilson(0, 10, STATS_Z95);
    assert_near(e.lo, 0, 1e-12);
    assert_near(e.hi, 3.841459 / 13.841459, 1e-6);
    e = stats_wilson(0, 0, STATS_Z95);
    assert_true(isnan(e.value) && isnan(e.lo));
}

static void test_t_quantiles(void **state)
{
    (void)state;
    assert_near(stats_t_quantile(0.975, 1), 12.706205, 1e-5);
    assert_near(stats_t_quantile(0.975, 4), 2.776445, 1e-5);
    assert_near(stats_t_quantile(0.975, 10), 2.228139, 1e-5);
    assert_near(stats_t_quantile(0.975, 30), 2.042272, 1e-5);
    assert_near(stats_t_two_sided(0, 5), 1, 1e-12);
    assert_near(stats_betai(2, 3, 0.4), 0.5248, 1e-10); /* I_0.4(2,3) = 1 - 0.6^4 - 4*0.4*0.6^3 */
}

static void test_mean_ci(void **state)
{
    stats_moments_t m = {0};
    (void)state;
    for (int i = 1; i <= 5; i++)
        stats_moments_add(&m, i);
    /* mean 3, s^2 2.5, se sqrt(0.5), half 2.776445 * 0.707107 = 1.963243 */
    stats_est_t e = stats_mean_ci(&m);
    assert_near(e.value, 3, 1e-12);
    assert_near(stats_variance(&m), 2.5, 1e-12);
    assert_near(e.lo, 1.036757, 1e-5);
    assert_near(e.hi, 4.963243, 1e-5);
    m = (stats_moments_t){0};
    stats_moments_add(&m, 7);
    e = stats_mean_ci(&m);
    assert_near(e.value, 7, 1e-12);
    assert_true(isnan(e.lo));
}

static void test_welch(void **state)
{
    stats_moments_t a = {0}, b = {0};
    double t, df;
    (void)state;
    for (int i = 1; i <= 5; i++) {
        stats_moments_add(&a, i);
        stats_moments_add(&b, 2 * i);
    }
    /* va = 2.5/5, vb = 10/5; t = -3 / sqrt(2.5); df = 2.5^2 / (0.5^2/4 + 2^2/4) */
    double p = stats_welch_p(&a, &b, &t, &df);
    assert_near(t, -1.897367, 1e-6);
    assert_near(df, 5.882353, 1e-6);
    assert_near(p, 0.107531, 1e-5);
}

static void test_two_proportions(void **state)
{
    (void)state;
    /* 45/100 vs 60/100: pooled 0.525, se sqrt(0.525 * 0.475 * 0.02) = 0.070622,
     * z = 2.12398, p = erfc(z / sqrt 2) */
    assert_near(stats_two_prop_p(45, 100, 60, 100), 0.0336721, 1e-6);
    assert_near(stats_two_prop_p(5, 10, 5, 10), 1, 1e-12);
    assert_true(isnan(stats_two_prop_p(1, 0, 1, 1)));
}

static void test_ratio(void **state)
{
    stats_ratio_t r = {0};
    double se;
    (void)state;
    /* (cost, success): (2,1) (4,1) (0,0) (6,1): R = 12 / 3 = 4; residuals
     * -2 0 0 2 -> 8; var = 8 / (3 * 4 * 0.75^2) = 1.185185 */
    stats_ratio_add(&r, 2, 1);
    stats_ratio_add(&r, 4, 1);
    stats_ratio_add(&r, 0, 0);
    stats_ratio_add(&r, 6, 1);
    stats_est_t e = stats_ratio_ci(&r, &se);
    assert_near(e.value, 4, 1e-12);
    assert_near(se, sqrt(8 / 6.75), 1e-9);
    assert_near(e.lo, 4 - STATS_Z95 * sqrt(8 / 6.75), 1e-9);
    assert_near(stats_z_p(4, se, 4, se), 1, 1e-12);
}

static void test_quantile(void **state)
{
    double v[100];
    (void)state;
    for (int i = 0; i < 100; i++)
        v[i] = i + 1;
    /* p50 of 1..100: rank 50; ranks floor(50 - 9.8) = 40 and ceil(59.8) + 1 = 61 */
    stats_est_t e = stats_quantile_ci(v, 100, 0.5);
    assert_near(e.value, 50, 0);
    assert_near(e.lo, 40, 0);
    assert_near(e.hi, 61, 0);
    /* p95: rank 95; 95 -/+ 1.96 sqrt(4.75) = 4.27: ranks 90 and 100 (capped) */
    e = stats_quantile_ci(v, 100, 0.95);
    assert_near(e.value, 95, 0);
    assert_near(e.lo, 90, 0);
    assert_near(e.hi, 100, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wilson),  cmocka_unit_test(test_t_quantiles),
        cmocka_unit_test(test_mean_ci), cmocka_unit_test(test_welch),
        cmocka_unit_test(test_two_proportions), cmocka_unit_test(test_ratio),
        cmocka_unit_test(test_quantile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
