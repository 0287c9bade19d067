/* Unit tests for src/core/buf.c buf_fmt_fixed, which writes the
 * x-router-score and x-router-cost-usd headers, against snprintf's "%.*f"
 * on millions of values: random magnitudes, random bit patterns, exact
 * ties (rounded to even), the ends of the exact range and the values that
 * fall back to snprintf. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static unsigned long checked;

static void same(double x, int d, size_t cap)
{
    char want[64], got[64];
    int k = snprintf(want, cap, "%.*f", d, x);
    size_t wl = k < 0 ? 0 : (size_t)k < cap ? (size_t)k : cap - 1;
    memset(got, 'Z', sizeof got);
    size_t gl = buf_fmt_fixed(got, cap, x, d);
    if (gl != wl || strcmp(got, want) != 0)
        fail_msg("%.17g (%a) with %d decimals, cap %zu: got \"%s\" (%zu), want \"%s\" (%zu)", x, x,
                 d, cap, got, gl, want, wl);
    checked++;
}

static void all_decimals(double x)
{
    for (int d = 0; d <= 11; d++)
        same(x, d, 32);
}

static void test_random_magnitudes(void **state)
{
    (void)state;
    for (int i = 0; i < 150000; i++) {
        /* 10^-14 .. 2^41: around and past the exact range's top */
        double mant = (double)(next() >> 11) / 9007199254740992.0;
        int ex = (int)(next() % 88) - 47;
        all_decimals(ldexp(mant, ex));
    }
    for (int i = 0; i < 300000; i++) {
        double x = (double)(next() % 100000000) / 1e6; /* what a score or a cost looks like */
        same(x, 3, 32);
        same(x, 10, 32);
        same(x / 1e4, 10, 32);
    }
}

static void test_random_bits(void **state)
{
    (void)state;
    for (int i = 0; i < 300000; i++) {
        uint64_t b = next();
        double x;
        memcpy(&x, &b, sizeof x);
        same(x, 3, 32);
        same(x, 10, 32);
        b &= ~(1ull << 63); /* positive: more of them on the exact path */
        memcpy(&x, &b, sizeof x);
        same(x, 3, 32);
        same(x, 10, 32);
    }
}

static void test_ties_and_edges(void **state)
{
    (void)state;
    /* (2k+1) / 2^j: exact ties for every d with 2^j dividing 2 * 10^d */
    for (int j = 1; j <= 45; j++)
        for (uint64_t k = 0; k < 700; k++)
            all_decimals(ldexp((double)(2 * k + 1), -j));
    /* n + 0.5 * 10^-d and its neighbours, for every d */
    for (int d = 0; d <= 10; d++)
        for (int n = 0; n < 3000; n++) {
            double x = ((double)n + 0.5) / pow(10, d);
            same(x, d, 32);
            same(nextafter(x, 0), d, 32);
            same(nextafter(x, 1e300), d, 32);
        }
    const double edge[] = {0.0, -0.0, DBL_MIN, DBL_MIN / 3, DBL_TRUE_MIN, DBL_EPSILON, 0.5, 1.0,
                           0.9995, 0.0005, 0.00049999999999999, 9.9999999999, 0.00000000005,
                           1099511627776.0, nextafter(1099511627776.0, 0), 4503599627370496.0,
                           1e300, -1.0, -0.0004, INFINITY, -INFINITY, NAN, DBL_MAX};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        all_decimals(edge[i]);
        same(edge[i], -1, 32);
        same(edge[i], 3, 4); /* cut: what snprintf keeps */
        same(edge[i], 10, 8);
        same(edge[i], 3, 2);
    }
    print_message("%lu values compared with snprintf\n", checked);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_magnitudes),
        cmocka_unit_test(test_random_bits),
        cmocka_unit_test(test_ties_and_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
