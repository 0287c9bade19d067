/* Unit tests for src/dashboard.c: the page is self-contained and carries
 * the element ids the integration test and users rely on. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "account/dashboard.h"

static void test_page_self_contained(void **state)
{
    (void)state;
    size_t len = 0;
    const char *p = dashboard_html(&len);
    assert_non_null(p);
    assert_int_equal(strlen(p), len);
    assert_true(strncmp(p, "<!doctype html>", 15) == 0);
    assert_null(strstr(p, "http://"));
    assert_null(strstr(p, "https://"));
    assert_null(strstr(p, "<script src"));
    /* the one <link> is the inline favicon (no request: see dashboard.c) */
    for (const char *l = strstr(p, "<link"); l != NULL; l = strstr(l + 1, "<link"))
        assert_true(strncmp(l, "<link rel=\"icon\" href=\"data:,\">", 31) == 0);
    assert_null(strstr(p, "@import"));
    static const char *const ids[] = {"id=\"total-requests\"", "id=\"total-cost\"",
                                      "id=\"total-savings\"", "id=\"total-baseline\"",
                                      "id=\"cache-hit-rate\"", "id=\"models\"", "id=\"tiers\""};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
        if (strstr(p, ids[i]) == NULL)
            fail_msg("missing %s", ids[i]);
    assert_non_null(strstr(p, "/v1/router/stats"));
    assert_non_null(strstr(p, "</html>"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_self_contained),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
