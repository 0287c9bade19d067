/* Unit tests for src/upstream/quirks.c's pure parts: mistral's 9-character
 * tool-call ids (kept when valid, else a stable hash of 9 base-62
 * characters) and the error shapes (gemini's array, mistral's flat body)
 * turned into OpenAI's, only under their flags. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/presets.h"
#include "upstream/quirks.h"

static bool id9(const char *s)
{
    if (strlen(s) != 9)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

static void test_tool_id9(void **state)
{
    char a[10], b[10], c[10];
    (void)state;
    quirks_tool_id9("abcDEF123", a);
    assert_string_equal(a, "abcDEF123"); /* already valid: kept */
    quirks_tool_id9("call_abc123XYZ_long", a);
    quirks_tool_id9("call_abc123XYZ_long", b);
    quirks_tool_id9("toolu_01A09q90qw90lq917835lq9", c);
    assert_true(id9(a));
    assert_true(id9(c));
    assert_string_equal(a, b); /* a call and its tool message map alike */
    assert_string_not_equal(a, c);
    quirks_tool_id9("", a);
    assert_true(id9(a));
    quirks_tool_id9("abc_EF123", a); /* 9 long but not alphanumeric */
    assert_true(id9(a));
    assert_string_not_equal(a, "abc_EF123");
}

static char *shape(unsigned q, const char *json)
{
    cJSON *r = quirks_error_json(q, cJSON_Parse(json));
    char *s = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    return s;
}

static void test_errors(void **state)
{
    char *s;
    (void)state;
    s = shape(QUIRK_ARRAY_ERRORS,
              "[{\"error\":{\"code\":400,\"message\":\"bad\",\"status\":\"INVALID_ARGUMENT\"}}]");
    assert_string_equal(s, "{\"error\":{\"code\":400,\"message\":\"bad\",\"status\":"
                           "\"INVALID_ARGUMENT\",\"type\":\"INVALID_ARGUMENT\",\"param\":null}}");
    free(s);
    /* not under its flag: unchanged */
    s = shape(QUIRK_FLAT_ERRORS, "[{\"error\":{\"message\":\"bad\"}}]");
    assert_string_equal(s, "[{\"error\":{\"message\":\"bad\"}}]");
    free(s);
    s = shape(QUIRK_FLAT_ERRORS, "{\"object\":\"error\",\"message\":\"m\",\"type\":"
                                 "\"invalid_request_error\",\"param\":null,\"code\":\"1000\"}");
    assert_string_equal(s, "{\"error\":{\"message\":\"m\",\"type\":\"invalid_request_error\","
                           "\"param\":null,\"code\":\"1000\"}}");
    free(s);
    /* an OpenAI error and a chunk are left alone */
    s = shape(QUIRK_FLAT_ERRORS | QUIRK_ARRAY_ERRORS, "{\"error\":{\"message\":\"m\"}}");
    assert_string_equal(s, "{\"error\":{\"message\":\"m\"}}");
    free(s);
    s = shape(QUIRK_FLAT_ERRORS, "{\"object\":\"chat.completion.chunk\",\"choices\":[]}");
    assert_string_equal(s, "{\"object\":\"chat.completion.chunk\",\"choices\":[]}");
    free(s);
    assert_null(quirks_error_json(QUIRK_ARRAY_ERRORS, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tool_id9),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
