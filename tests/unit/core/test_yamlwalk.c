/* Unit tests for src/yamlwalk.c: the edit distance and the "did you mean"
 * suggestion of unknown keys. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "core/yamlwalk.h"

static size_t dist(const char *a, const char *b)
{
    return yw_edit_distance(a, strlen(a), b, strlen(b));
}

static void test_edit_distance(void **state)
{
    char longw[YW_EDIT_MAX + 2];
    (void)state;
    assert_int_equal(dist("", ""), 0);
    assert_int_equal(dist("threads", "threads"), 0);
    assert_int_equal(dist("thread", "threads"), 1);     /* insertion */
    assert_int_equal(dist("threadsx", "threads"), 1);   /* deletion */
    assert_int_equal(dist("threxds", "threads"), 1);    /* substitution */
    assert_int_equal(dist("thraeds", "threads"), 1);    /* adjacent transposition */
    assert_int_equal(dist("Listen", "listen"), 0);      /* case is not a typo */
    assert_int_equal(dist("kitten", "sitting"), 3);
    assert_int_equal(dist("", "abc"), 3);
    assert_int_equal(dist("ca", "abc"), 3);              /* OSA, not unrestricted Damerau */
    memset(longw, 'a', sizeof longw - 1);
    longw[sizeof longw - 1] = '\0';
    assert_true(dist(longw, "a") == SIZE_MAX);
}

static const char *suggest(const char *key, const char *list, char *out, size_t outlen)
{
    size_t n = 0;
    const char *s = yw_suggest(key, list, &n);
    if (s == NULL)
        return NULL;
    assert_true(n < outlen);
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

static void test_suggest(void **state)
{
    static const char *server = "listen, threads, max_body_bytes, max_response_bytes, "
                                "max_connections, connection_timeout_s, shutdown_grace_ms, "
                                "log_level, allow_unauthenticated_public";
    char buf[64];
    (void)state;
    assert_string_equal(suggest("thraeds", server, buf, sizeof buf), "threads");
    assert_string_equal(suggest("lsiten", server, buf, sizeof buf), "listen");
    assert_string_equal(suggest("loglevel", server, buf, sizeof buf), "log_level");
    assert_string_equal(suggest("max_conections", server, buf, sizeof buf), "max_connections");
    assert_string_equal(suggest("ttl", "backend, ttl_s, max_bytes", buf, sizeof buf), "ttl_s");
    assert_string_equal(suggest("rpn", "key_env, key_sha256, daily_usd, monthly_usd, rpm, tpm", buf,
                                sizeof buf),
                        "rpm"); /* first of equally near words */
    assert_null(suggest("bogus", server, buf, sizeof buf));
    assert_null(suggest("ab", "rpm, tpm", buf, sizeof buf));
    assert_string_equal(suggest("tier", "server, providers, models, tiers", buf, sizeof buf),
                        "tiers");
    assert_null(suggest("x", "", buf, sizeof buf));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edit_distance),
        cmocka_unit_test(test_suggest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
