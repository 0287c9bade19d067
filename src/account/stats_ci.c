/* stats_ci: confidence intervals and significance tests of the offline
 * reports (see include/account/stats_ci.h for which method serves what). */
#include "account/stats_ci.h"

#include <math.h>

stats_est_t stats_wilson(size_t k, size_t n, double z)
{
    stats_est_t e = {NAN, NAN, NAN, n};
    if (n == 0)
        return e;
    double nn = (double)n, p = (double)k / nn, z2 = z * z;
    double den = 1 + z2 / nn;
    double mid = (p + z2 / (2 * nn)) / den;
    double half = z * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / den;
    e.value = p;
    e.lo = mid - half < 0 ? 0 : mid - half;
    e.hi = mid + half > 1 ? 1 : mid + half;
    return e;
}

void stats_moments_add(stats_moments_t *m, double x)
{
    double d = x - m->mean;
    m->n++;
    m->mean += d / (double)m->n;
    m->m2 += d * (x - m->mean);
}

double stats_variance(const stats_moments_t *m)
{
    return m->n < 2 ? NAN : m->m2 / (double)(m->n - 1);
}

stats_est_t stats_mean_ci(const stats_moments_t *m)
{
    stats_est_t e = {NAN, NAN, NAN, m->n};
    if (m->n == 0)
        return e;
    e.value = m->mean;
    if (m->n >= 2) {
        double half =
            stats_t_quantile(0.975, (double)(m->n - 1)) * sqrt(stats_variance(m) / (double)m->n);
        e.lo = m->mean - half;
        e.hi = m->mean + half;
    }
    return e;
}

void stats_ratio_add(stats_ratio_t *r, double c, double s)
{
    r->n++;
    r->sc += c;
    r->ss += s;
    r->scc += c * c;
    r->sss += s * s;
    r->scs += c * s;
}

stats_est_t stats_ratio_ci(const stats_ratio_t *r, double *se)
{
    stats_est_t e = {NAN, NAN, NAN, r->n};
    if (se)
        *se = NAN;
    if (r->n == 0 || r->ss <= 0)
        return e;
    double n = (double)r->n, R = r->sc / r->ss, sbar = r->ss / n;
    e.value = R;
    if (r->n >= 2) {
        /* sum of (c_i - R s_i)^2, expanded */
        double ssr = r->scc - 2 * R * r->scs + R * R * r->sss;
        double var = (ssr < 0 ? 0 : ssr) / ((n - 1) * n * sbar * sbar);
        double s = sqrt(var);
        e.lo = R - STATS_Z95 * s;
        e.hi = R + STATS_Z95 * s;
        if (se)
            *se = s;
    }
    return e;
}

stats_est_t stats_quantile_ci(const double *sorted, size_t n, double p)
{
    stats_est_t e = {NAN, NAN, NAN, n};
    if (n == 0)
        return e;
    double nn = (double)n;
    long rank = (long)ceil(p * nn); /* nearest rank, 1-based */
    long lo, hi;
    double half = STATS_Z95 * sqrt(nn * p * (1 - p));
    if (rank < 1)
        rank = 1;
    e.value = sorted[rank - 1];
    lo = (long)floor(nn * p - half);
    hi = (long)ceil(nn * p + half) + 1;
    if (lo < 1)
        lo = 1;
    if (hi > (long)n)
        hi = (long)n;
    e.lo = sorted[lo - 1];
    e.hi = sorted[hi - 1];
    return e;
}

double stats_two_prop_p(size_t k1, size_t n1, size_t k2, size_t n2)
{
    if (n1 == 0 || n2 == 0)
        return NAN;
    double p1 = (double)k1 / (double)n1, p2 = (double)k2 / (double)n2;
    double p = (double)(k1 + k2) / (double)(n1 + n2);
    double se = sqrt(p * (1 - p) * (1.0 / (double)n1 + 1.0 / (double)n2));
    if (se == 0)
        return p1 == p2 ? 1 : 0;
    return erfc(fabs(p1 - p2) / se / sqrt(2.0));
}

double stats_welch_p(const stats_moments_t *a, const stats_moments_t *b, double *t, double *df)
{
    if (t)
        *t = NAN;
    if (df)
        *df = NAN;
    if (a->n < 2 || b->n < 2)
        return NAN;
    double va = stats_variance(a) / (double)a->n, vb = stats_variance(b) / (double)b->n;
    double se2 = va + vb;
    if (se2 <= 0)
        return a->mean == b->mean ? 1 : 0;
    double tt = (a->mean - b->mean) / sqrt(se2);
    double d = se2 * se2 / (va * va / (double)(a->n - 1) + vb * vb / (double)(b->n - 1));
    if (t)
        *t = tt;
    if (df)
        *df = d;
    return stats_t_two_sided(tt, d);
}

double stats_z_p(double v1, double se1, double v2, double se2)
{
    if (!isfinite(v1) || !isfinite(v2) || !isfinite(se1) || !isfinite(se2))
        return NAN;
    double se = sqrt(se1 * se1 + se2 * se2);
    if (se == 0)
        return v1 == v2 ? 1 : 0;
    return erfc(fabs(v1 - v2) / se / sqrt(2.0));
}

/* Continued fraction of the incomplete beta function (modified Lentz). */
static double betacf(double a, double b, double x)
{
    const double tiny = 1e-300;
    double qab = a + b, qap = a + 1, qam = a - 1;
    double c = 1, d = 1 - qab * x / qap, h;
    if (fabs(d) < tiny)
        d = tiny;
    d = 1 / d;
    h = d;
    for (int m = 1; m <= 300; m++) {
        double m2 = 2.0 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-15)
            break;
    }
    return h;
}

double stats_betai(double a, double b, double x)
{
    if (x <= 0)
        return 0;
    if (x >= 1)
        return 1;
    double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log(1 - x);
    if (x < (a + 1) / (a + b + 2))
        return exp(lbt) * betacf(a, b, x) / a;
    return 1 - exp(lbt) * betacf(b, a, 1 - x) / b;
}

double stats_t_two_sided(double t, double df)
{
    if (!isfinite(t) || !(df > 0))
        return NAN;
    return stats_betai(df / 2, 0.5, df / (df + t * t));
}

double stats_t_quantile(double p, double df)
{
    /* bisection on the two-sided tail: P(T <= q) = p <=> tail(q) = 2(1-p) */
    double want = 2 * (1 - p), lo = 0, hi = 1;
    if (!(df > 0) || !(p > 0.5 && p < 1))
        return NAN;
    while (stats_t_two_sided(hi, df) > want && hi < 1e7)
        hi *= 2;
    for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
        double mid = (lo + hi) / 2;
        if (stats_t_two_sided(mid, df) > want)
            lo = mid;
        else
            hi = mid;
    }
    return (lo + hi) / 2;
}
