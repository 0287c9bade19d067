/* Unit tests for src/json.c: locating the top-level "model" value without a
 * parse, and writing JSON string literals. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"

/* Finds exactly one "model" in s and checks the span's text. */
static void expect_one(const char *s, const char *value)
{
    json_span_t sp[4];
    int n = json_find_top_key(s, strlen(s), "model", sp, 4);
    if (n != 1)
        fail_msg("expected 1 top-level \"model\" in %s, found %d", s, n);
    if (sp[0].len != strlen(value) || memcmp(s + sp[0].off, value, sp[0].len) != 0)
        fail_msg("in %s: span is \"%.*s\", expected \"%s\"", s, (int)sp[0].len, s + sp[0].off,
                 value);
}

static void test_simple(void **state)
{
    const char *s = "{\"model\":\"gpt-4o\",\"messages\":[]}";
    json_span_t sp[1];
    (void)state;
    assert_int_equal(json_find_top_key(s, strlen(s), "model", sp, 1), 1);
    assert_int_equal(sp[0].off, 9);
    assert_int_equal(sp[0].len, 8); /* quotes included */
}

static void test_whitespace_everywhere(void **state)
{
    (void)state;
    expect_one("  \n\t{ \r\n \"model\"  \t:\n  \"auto\"  \n, \"x\" : 1 }  ", "\"auto\"");
    expect_one("{\"model\"\n:\n\"a\"}", "\"a\"");
    expect_one("{\"model\":\"a\"\n}", "\"a\"");
}

static void test_model_not_first_nor_last(void **state)
{
    (void)state;
    expect_one("{\"temperature\":0.5,\"model\":\"mid\",\"stream\":true}", "\"mid\"");
    expect_one("{\"a\":1,\"b\":[1,2,3],\"model\":\"last\"}", "\"last\"");
    expect_one("{\"model\":\"first\",\"a\":{\"b\":2}}", "\"first\"");
}

static void test_nested_model_keys_ignored(void **state)
{
    (void)state;
    expect_one("{\"meta\":{\"model\":\"inner\"},\"model\":\"outer\"}", "\"outer\"");
    expect_one("{\"messages\":[{\"role\":\"user\",\"model\":\"x\"},{\"model\":{\"model\":1}}],"
               "\"model\":\"outer\",\"tools\":[[{\"model\":\"deep\"}]]}",
               "\"outer\"");
    /* only nested ones: nothing found at the top level */
    {
        const char *s = "{\"a\":{\"model\":\"inner\"},\"b\":[\"model\",{\"model\":2}]}";
        json_span_t sp[2];
        assert_int_equal(json_find_top_key(s, strlen(s), "model", sp, 2), 0);
    }
}

static void test_strings_with_escapes_and_braces(void **state)
{
    (void)state;
    /* a string value that looks like a "model" key, with braces and quotes */
    expect_one("{\"content\":\"say \\\"model\\\": \\\"evil\\\" } { ] [\",\"model\":\"good\"}",
               "\"good\"");
    /* escaped backslash right before the closing quote */
    expect_one("{\"p\":\"ends with backslash \\\\\",\"model\":\"m\"}", "\"m\"");
    /* the model value itself contains escapes */
    expect_one("{\"model\":\"we\\\"ird\\\\\",\"x\":1}", "\"we\\\"ird\\\\\"");
    /* a key that merely contains model */
    expect_one("{\"model_name\":\"no\",\"xmodel\":\"no\",\"model\":\"yes\"}", "\"yes\"");
    /* unicode escapes and raw UTF-8 in an earlier string */
    expect_one("{\"c\":\"\\u007d \xe2\x98\x83 }\",\"model\":\"u\"}", "\"u\"");
}

static void test_non_string_values(void **state)
{
    (void)state;
    expect_one("{\"model\":42,\"x\":1}", "42");
    expect_one("{\"model\":-1.5e3}", "-1.5e3");
    expect_one("{\"model\":null }", "null");
    expect_one("{\"model\":true,\"a\":false}", "true");
    expect_one("{\"model\":{\"a\":\"}\",\"b\":[1,{}]},\"x\":2}", "{\"a\":\"}\",\"b\":[1,{}]}");
    expect_one("{\"model\":[1,[2,\"]\"],3] , \"x\":2}", "[1,[2,\"]\"],3]");
}

static void test_duplicates_counted(void **state)
{
    const char *s = "{\"model\":\"a\",\"x\":{\"model\":\"n\"},\"model\":\"bb\"}";
    json_span_t sp[2];
    (void)state;
    assert_int_equal(json_find_top_key(s, strlen(s), "model", sp, 2), 2);
    assert_memory_equal(s + sp[0].off, "\"a\"", 3);
    assert_int_equal(sp[0].len, 3);
    assert_memory_equal(s + sp[1].off, "\"bb\"", 4);
    assert_int_equal(sp[1].len, 4);
}

static void test_count_exceeds_max(void **state)
{
    const char *s = "{\"model\":1,\"model\":2,\"model\":3}";
    json_span_t sp[2] = {{999, 999}, {999, 999}};
    json_span_t guard = {777, 777};
    (void)state;
    /* found is 3, but only max spans are written */
    assert_int_equal(json_find_top_key(s, strlen(s), "model", sp, 1), 3);
    assert_memory_equal(s + sp[0].off, "1", 1);
    assert_int_equal(sp[1].off, 999);
    assert_int_equal(guard.off, 777);
}

static void test_non_object_top_level(void **state)
{
    json_span_t sp[1];
    static const char *bad[] = {"[{\"model\":\"a\"}]", "\"model\"", "42", "null", "", "   ",
                                "  [ ]"};
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (json_find_top_key(bad[i], strlen(bad[i]), "model", sp, 1) != -1)
            fail_msg("top level \"%s\" should give -1", bad[i]);
}

static void test_empty_object_and_absent(void **state)
{
    json_span_t sp[1];
    (void)state;
    assert_int_equal(json_find_top_key("{}", 2, "model", sp, 1), 0);
    assert_int_equal(json_find_top_key(" { } ", 5, "model", sp, 1), 0);
    assert_int_equal(json_find_top_key("{\"modelx\":1,\"mode\":2}", 21, "model", sp, 1), 0);
}

static void test_length_bound_respected(void **state)
{
    /* The text after n must not be looked at. */
    const char *s = "{\"a\":1}{\"model\":\"x\"}";
    json_span_t sp[1];
    (void)state;
    assert_int_equal(json_find_top_key(s, 7, "model", sp, 1), 0);
}

/* Splicing a span yields exactly the original bytes around a new value. */
static void test_splice(void **state)
{
    const char *s = "{ \"messages\" : [{\"role\":\"user\",\"content\":\"h\xc3\xa9llo \\\"model\\\"\"}],"
                    "  \"model\"  :  \"auto\" ,\"n\":1 }";
    const char *want = "{ \"messages\" : [{\"role\":\"user\",\"content\":\"h\xc3\xa9llo \\\"model\\\"\"}],"
                       "  \"model\"  :  \"gpt-4o-mini\" ,\"n\":1 }";
    json_span_t sp[1];
    buf_t b;
    size_t n = strlen(s);
    (void)state;
    assert_int_equal(json_find_top_key(s, n, "model", sp, 1), 1);
    buf_init(&b, 1024);
    assert_int_equal(buf_append(&b, s, sp[0].off), 0);
    assert_int_equal(json_append_string(&b, "gpt-4o-mini", 11), 0);
    assert_int_equal(buf_append(&b, s + sp[0].off + sp[0].len, n - sp[0].off - sp[0].len), 0);
    assert_string_equal(buf_cstr(&b), want);
    buf_free(&b);
}

/* ---- json_append_string ---- */

static char *quote(const char *s, size_t n, size_t cap, int *rc)
{
    buf_t b;
    char *out;
    buf_init(&b, cap);
    *rc = json_append_string(&b, s, n);
    out = strdup(buf_cstr(&b));
    buf_free(&b);
    return out;
}

/* Printable form of s for failure messages (no raw non-ASCII bytes). */
static const char *printable(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 5 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch < 0x7f)
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, cap - o, "<%02x>", ch);
    }
    out[o] = '\0';
    return out;
}

static void expect_quoted(const char *in, size_t n, const char *want)
{
    int rc;
    char *got = quote(in, n, 4096, &rc);
    char p1[512], p2[512];
    assert_int_equal(rc, 0);
    if (strcmp(got, want) != 0)
        fail_msg("got %s, expected %s", printable(got, p1, sizeof p1),
                 printable(want, p2, sizeof p2));
    free(got);
}

static void test_append_plain(void **state)
{
    (void)state;
    expect_quoted("hello", 5, "\"hello\"");
    expect_quoted("", 0, "\"\"");
}

static void test_append_escapes(void **state)
{
    (void)state;
    expect_quoted("a\"b", 3, "\"a\\\"b\"");
    expect_quoted("a\\b", 3, "\"a\\\\b\"");
    expect_quoted("\"\\\"", 3, "\"\\\"\\\\\\\"\"");
    expect_quoted("l1\nl2\r\tx", 8, "\"l1\\nl2\\r\\tx\"");
    expect_quoted("/", 1, "\"/\"");
}

static void test_append_control_chars(void **state)
{
    char in[32];
    int rc;
    char *got;
    (void)state;
    expect_quoted("\x01", 1, "\"\\u0001\"");
    expect_quoted("\x1f", 1, "\"\\u001f\"");
    expect_quoted("a\bb\fc", 5, "\"a\\u0008b\\u000cc\"");
    /* an embedded NUL is data, not a terminator */
    expect_quoted("x\0y", 3, "\"x\\u0000y\"");
    /* every control char comes out as \uXXXX or a short escape, never raw */
    for (int i = 0; i < 32; i++)
        in[i] = (char)i;
    got = quote(in, 32, 4096, &rc);
    assert_int_equal(rc, 0);
    for (const char *p = got; *p; p++)
        if ((unsigned char)*p < 0x20)
            fail_msg("raw control byte 0x%02x in %s", (unsigned char)*p, got);
    assert_non_null(strstr(got, "\\u000b"));
    assert_non_null(strstr(got, "\\u0000"));
    free(got);
}

static void test_append_keeps_utf8(void **state)
{
    (void)state;
    expect_quoted("caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80", 14,
                  "\"caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80\"");
    /* DEL is a valid character */
    expect_quoted("a\x7f", 2, "\"a\x7f\"");
    /* boundaries of the valid ranges */
    expect_quoted("\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", 18,
                  "\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"");
}

/* Bytes that are not valid UTF-8 become \ufffd (one per bad byte), so the
 * output is always valid JSON; valid neighbours are kept. */
static void test_append_replaces_invalid_utf8(void **state)
{
    (void)state;
    expect_quoted("\xff", 1, "\"\\ufffd\"");
    expect_quoted("a\xfe\xff" "b", 4, "\"a\\ufffd\\ufffdb\"");
    /* lone continuation byte */
    expect_quoted("\x80", 1, "\"\\ufffd\"");
    /* overlong encodings of '/' and NUL */
    expect_quoted("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");
    expect_quoted("\xe0\x80\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"");
    /* UTF-16 surrogate encoded in UTF-8 */
    expect_quoted("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"");
    /* above U+10FFFF */
    expect_quoted("\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
    /* truncated sequence at the end of the input, then valid text after a bad lead */
    expect_quoted("ok\xe2\x98", 4, "\"ok\\ufffd\\ufffd\"");
    expect_quoted("\xe2x\xc3\xa9", 4, "\"\\ufffdx\xc3\xa9\"");
    /* the length bound is respected: a sequence cut by len is invalid */
    expect_quoted("\xc3\xa9", 1, "\"\\ufffd\"");
}

static void test_append_respects_cap(void **state)
{
    buf_t b;
    (void)state;
    /* "abc" needs 5 bytes quoted */
    buf_init(&b, 5);
    assert_int_equal(json_append_string(&b, "abc", 3), 0);
    assert_string_equal(buf_cstr(&b), "\"abc\"");
    buf_free(&b);

    buf_init(&b, 4);
    assert_int_equal(json_append_string(&b, "abc", 3), -1);
    assert_true(buf_len(&b) <= 4);
    buf_free(&b);

    /* escapes expand: "\n" needs 4 bytes, "\x01" needs 8 */
    buf_init(&b, 3);
    assert_int_equal(json_append_string(&b, "\n", 1), -1);
    buf_free(&b);
    buf_init(&b, 4);
    assert_int_equal(json_append_string(&b, "\n", 1), 0);
    buf_free(&b);
    buf_init(&b, 7);
    assert_int_equal(json_append_string(&b, "\x01", 1), -1);
    assert_true(buf_len(&b) <= 7);
    buf_free(&b);
    buf_init(&b, 8);
    assert_int_equal(json_append_string(&b, "\x01", 1), 0);
    assert_string_equal(buf_cstr(&b), "\"\\u0001\"");
    buf_free(&b);
    /* a replaced invalid byte needs 6 bytes */
    buf_init(&b, 7);
    assert_int_equal(json_append_string(&b, "\xff", 1), -1);
    buf_free(&b);
    buf_init(&b, 8);
    assert_int_equal(json_append_string(&b, "\xff", 1), 0);
    buf_free(&b);
}

static void test_append_after_existing_content(void **state)
{
    buf_t b;
    (void)state;
    buf_init(&b, 64);
    assert_int_equal(buf_append(&b, "{\"k\":", 5), 0);
    assert_int_equal(json_append_string(&b, "v\"", 2), 0);
    assert_int_equal(buf_append(&b, "}", 1), 0);
    assert_string_equal(buf_cstr(&b), "{\"k\":\"v\\\"\"}");
    buf_free(&b);
}


static void test_validate(void **state)
{
    static const char *valid[] = {
        "{}", "[]", " {\"a\":1} ", "{\"a\":[1,2.5,-3e+2,true,false,null,\"x\\n\\u00e9\"]}", "\"s\"",
        "0", "-0.0e0", "[[[[]]]]", "{\"a\":{\"b\":{}},\"c\":[{}]}", "\n\t{ \"k\" : \"v\" }\r\n",
    };
    static const char *invalid[] = {
        "", " ", "{", "}", "[1,]", "{\"a\":}", "{\"a\" 1}", "{a:1}", "[01]", "[1.]", "[.5]", "[1e]",
        "\"abc", "\"a\\x\"", "\"\\u12g4\"", "[tru]", "{\"a\":1,}", "{} {}", "[1]]", "{\"a\":1]",
        "\"\x01\"", "nul", "[\"a\" \"b\"]", "{\"a\":1 \"b\":2}",
    };
    int obj;
    (void)state;
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++) {
        if (json_validate(valid[i], strlen(valid[i]), &obj) != 1)
            fail_msg("valid JSON rejected: %s", valid[i]);
    }
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        if (json_validate(invalid[i], strlen(invalid[i]), &obj) != 0)
            fail_msg("invalid JSON accepted: %s", invalid[i]);
    }
    assert_int_equal(json_validate(" {\"a\":[]}", 9, &obj), 1);
    assert_int_equal(obj, 1);
    assert_int_equal(json_validate("[{}]", 4, &obj), 1);
    assert_int_equal(obj, 0);
    /* a 1,001-deep nesting is refused, 1,000 accepted */
    {
        char deep[2002];
        memset(deep, '[', 1000);
        memset(deep + 1000, ']', 1000);
        assert_int_equal(json_validate(deep, 2000, &obj), 1);
        memset(deep, '[', 1001);
        memset(deep + 1001, ']', 1001);
        assert_int_equal(json_validate(deep, 2002, &obj), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_whitespace_everywhere),
        cmocka_unit_test(test_model_not_first_nor_last),
        cmocka_unit_test(test_nested_model_keys_ignored),
        cmocka_unit_test(test_strings_with_escapes_and_braces),
        cmocka_unit_test(test_non_string_values),
        cmocka_unit_test(test_duplicates_counted),
        cmocka_unit_test(test_count_exceeds_max),
        cmocka_unit_test(test_non_object_top_level),
        cmocka_unit_test(test_empty_object_and_absent),
        cmocka_unit_test(test_length_bound_respected),
        cmocka_unit_test(test_splice),
        cmocka_unit_test(test_append_plain),
        cmocka_unit_test(test_append_escapes),
        cmocka_unit_test(test_append_control_chars),
        cmocka_unit_test(test_append_keeps_utf8),
        cmocka_unit_test(test_append_replaces_invalid_utf8),
        cmocka_unit_test(test_append_respects_cap),
        cmocka_unit_test(test_append_after_existing_content),
    };
    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
