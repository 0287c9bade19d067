/* stats_ci: the statistics of the offline reports (`llmrouter report
 * --experiment`, `llmrouter tune`): confidence intervals and two-sided
 * significance tests, all in closed form (no resampling, so the figures
 * are reproducible and can be checked by hand). Pure functions; any
 * thread. Confidence level: 95% unless a function takes z.
 *
 *   rates (success, cache hits)   Wilson score interval; two-proportion
 *                                 z-test with the pooled proportion
 *   means (cost per request,      Student t-interval (n - 1 degrees of
 *   judged quality)               freedom); Welch's t-test
 *   ratio (cost per success)      delta method: sum(c) / sum(s) with
 *                                 Var = sum((c_i - R s_i)^2) / (n (n-1) s̄^2);
 *                                 z-test of the difference
 *   percentiles (p50, p95)        distribution-free order-statistic
 *                                 interval (normal approximation of the
 *                                 binomial ranks) */
#ifndef LLMROUTER_ACCOUNT_STATS_CI_H
#define LLMROUTER_ACCOUNT_STATS_CI_H

#include <stddef.h>

#define STATS_Z95 1.959963984540054

/* An estimate and its interval; NAN fields when undefined (no data). */
typedef struct stats_est {
    double value, lo, hi;
    size_t n;
} stats_est_t;

/* Wilson score interval of k successes out of n at quantile z. */
stats_est_t stats_wilson(size_t k, size_t n, double z);

/* Running moments (Welford) of a sample. */
typedef struct stats_moments {
    size_t n;
    double mean, m2;
} stats_moments_t;
void stats_moments_add(stats_moments_t *m, double x);
double stats_variance(const stats_moments_t *m); /* sample variance (n - 1), NAN when n < 2 */

/* Mean with its 95% Student t-interval (NAN bounds when n < 2). */
stats_est_t stats_mean_ci(const stats_moments_t *m);

/* Ratio sum(c) / sum(s) over n pairs with its 95% delta-method interval.
 * sc, ss, scc, sss, scs: sums of c, s, c^2, s^2 and c*s. */
typedef struct stats_ratio {
    size_t n;
    double sc, ss, scc, sss, scs;
} stats_ratio_t;
void stats_ratio_add(stats_ratio_t *r, double c, double s);
/* se (out, may be NULL): the standard error of the ratio. */
stats_est_t stats_ratio_ci(const stats_ratio_t *r, double *se);

/* The nearest-rank p-quantile (0 < p < 1) of sorted[0..n) with its 95%
 * distribution-free interval. */
stats_est_t stats_quantile_ci(const double *sorted, size_t n, double p);

/* Two-sided p-values. NAN when a test is undefined (empty or constant
 * samples). */
double stats_two_prop_p(size_t k1, size_t n1, size_t k2, size_t n2);
double stats_welch_p(const stats_moments_t *a, const stats_moments_t *b, double *t, double *df);
/* Difference of two estimates with standard errors se1, se2 (a z-test). */
double stats_z_p(double v1, double se1, double v2, double se2);

/* Student t distribution: two-sided tail P(|T| >= |t|) with df degrees of
 * freedom, and the quantile q with P(T <= q) = p (0.5 < p < 1). */
double stats_t_two_sided(double t, double df);
double stats_t_quantile(double p, double df);

/* The regularized incomplete beta function I_x(a, b). */
double stats_betai(double a, double b, double x);

#endif
