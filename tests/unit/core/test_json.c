/* Unit tests for src/json.c: locating the top-level "model" value without a
 * parse, writing JSON string literals, and the strict body validator. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
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


/* ---- differential test: json_append_string against a frozen copy of the
 * byte-by-byte writer it replaced (main 4a606e8) ---- */

static size_t ref_utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;
    if (s[0] < 0xC2)
        return 0;
    if (s[0] < 0xE0) {
        len = 2;
        cp = s[0] & 0x1F;
    } else if (s[0] < 0xF0) {
        len = 3;
        cp = s[0] & 0x0F;
    } else if (s[0] < 0xF5) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

static int ref_append_string(buf_t *b, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)str;
    size_t start = 0;
    if (buf_append(b, "\"", 1) < 0)
        return -1;
    for (size_t i = 0; i < len;) {
        unsigned char ch = u[i];
        char esc[6];
        size_t elen = 2, skip = 1;
        if (ch >= 0x80) {
            size_t n = ref_utf8_seq(u + i, len - i);
            if (n > 0) {
                i += n;
                continue;
            }
            memcpy(esc, "\\ufffd", 6);
            elen = 6;
        } else if (ch >= 0x20 && ch != '"' && ch != '\\') {
            i++;
            continue;
        } else {
            esc[0] = '\\';
            switch (ch) {
            case '"': esc[1] = '"'; break;
            case '\\': esc[1] = '\\'; break;
            case '\n': esc[1] = 'n'; break;
            case '\r': esc[1] = 'r'; break;
            case '\t': esc[1] = 't'; break;
            default:
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[ch >> 4];
                esc[5] = hex[ch & 15];
                elen = 6;
            }
        }
        if (buf_append(b, str + start, i - start) < 0 || buf_append(b, esc, elen) < 0)
            return -1;
        i += skip;
        start = i;
    }
    if (buf_append(b, str + start, len - start) < 0)
        return -1;
    return buf_append(b, "\"", 1);
}

static uint64_t diff_rng = 0x9E3779B97F4A7C15ULL;

static uint32_t diff_rand(void)
{
    diff_rng ^= diff_rng << 13;
    diff_rng ^= diff_rng >> 7;
    diff_rng ^= diff_rng << 17;
    return (uint32_t)(diff_rng >> 11);
}

/* Fills s[0..n) with pieces chosen to hit every branch: plain runs of
 * every length around 16, each special byte, valid UTF-8 of each length,
 * invalid and cut sequences, surrogates, overlongs and random bytes. */
static void diff_fill(unsigned char *s, size_t n)
{
    static const char *pieces[] = {"\"", "\\", "\n", "\r", "\t", "\x01", "\x1f", "\x7f",
                                   "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xed\xa0\x80",
                                   "\xc0\xaf", "\xe0\x80\xaf", "\xf4\x90\x80\x80", "\xff", "\xc3",
                                   "\xe2\x82", " ", "/"};
    size_t i = 0;
    while (i < n) {
        uint32_t r = diff_rand() % 10;
        if (r < 5) {
            size_t run = diff_rand() % 40;
            for (size_t k = 0; k < run && i < n; k++)
                s[i++] = (unsigned char)(0x20 + diff_rand() % 0x5f);
        } else if (r < 8) {
            const char *p = pieces[diff_rand() % (sizeof pieces / sizeof pieces[0])];
            for (size_t k = 0; p[k] != '\0' && i < n; k++)
                s[i++] = (unsigned char)p[k];
        } else {
            s[i++] = (unsigned char)(diff_rand() & 0xff);
        }
    }
}

static void diff_one(const unsigned char *s, size_t n, size_t cap, size_t prefix)
{
    buf_t a, b;
    int ra, rb;
    buf_init(&a, cap);
    buf_init(&b, cap);
    if (prefix > 0 && prefix <= cap) {
        assert_int_equal(buf_append(&a, "{\"k\":xxxxxxxxxxxxxxxxxxxxxxxxxxxxx", prefix), 0);
        assert_int_equal(buf_append(&b, "{\"k\":xxxxxxxxxxxxxxxxxxxxxxxxxxxxx", prefix), 0);
    }
    ra = ref_append_string(&a, (const char *)s, n);
    rb = json_append_string(&b, (const char *)s, n);
    if (ra != rb || buf_len(&a) != buf_len(&b) || memcmp(buf_ptr(&a), buf_ptr(&b), buf_len(&a)) != 0)
        fail_msg("json_append_string differs from the reference (len %zu, cap %zu): rc %d vs %d, "
                 "%zu vs %zu bytes",
                 n, cap, ra, rb, buf_len(&a), buf_len(&b));
    buf_free(&a);
    buf_free(&b);
}

static void test_append_matches_reference(void **state)
{
    unsigned char s[4096];
    (void)state;
    /* every single byte, and every byte after and before plain runs of
     * lengths 0..40 (the 16-byte scan's edges) */
    for (int c = 0; c < 256; c++) {
        for (size_t run = 0; run <= 40; run++) {
            memset(s, 'a', run);
            s[run] = (unsigned char)c;
            memset(s + run + 1, 'b', run);
            diff_one(s, 2 * run + 1, 1 << 20, 0);
            diff_one(s, run + 1, 1 << 20, 0);
        }
    }
    /* all two-byte strings */
    for (int c = 0; c < 256; c++)
        for (int d = 0; d < 256; d++) {
            s[0] = (unsigned char)c;
            s[1] = (unsigned char)d;
            diff_one(s, 2, 1 << 20, 0);
        }
    /* random mixes, unbounded and at caps that cut the output anywhere */
    for (int t = 0; t < 20000; t++) {
        size_t n = diff_rand() % (t < 15000 ? 200 : sizeof s);
        diff_fill(s, n);
        diff_one(s, n, 1 << 20, diff_rand() % 8);
        diff_one(s, n, diff_rand() % (2 * n + 8), diff_rand() % 8);
    }
    /* long plain runs and long multibyte runs */
    memset(s, 'x', sizeof s);
    diff_one(s, sizeof s, 1 << 20, 0);
    for (size_t i = 0; i + 3 <= sizeof s; i += 3)
        memcpy(s + i, "\xe2\x82\xac", 3);
    diff_one(s, sizeof s - sizeof s % 3, 1 << 20, 0);
    diff_one(s, sizeof s - sizeof s % 3 - 1, 1 << 20, 0);
}

/* json_append_number against the snprintf writer it replaced (main
 * 4a606e8), on integers of every magnitude, their neighbours, fractions and
 * non-finite values. */
static void ref_append_number(buf_t *b, double d)
{
    char tmp[40];
    if (isfinite(d) && d == floor(d) && fabs(d) < 9007199254740992.0)
        snprintf(tmp, sizeof tmp, "%.0f", d == 0 ? 0.0 : d);
    else if (isfinite(d))
        snprintf(tmp, sizeof tmp, "%.17g", d);
    else
        snprintf(tmp, sizeof tmp, "null");
    assert_int_equal(buf_puts(b, tmp), 0);
}

static void number_same(double d)
{
    buf_t a, b;
    buf_init(&a, 64);
    buf_init(&b, 64);
    ref_append_number(&a, d);
    assert_int_equal(json_append_number(&b, d), 0);
    if (strcmp(buf_cstr(&a), buf_cstr(&b)) != 0)
        fail_msg("json_append_number(%.17g) wrote %s, expected %s", d, buf_cstr(&b), buf_cstr(&a));
    buf_free(&a);
    buf_free(&b);
}

static void test_number_matches_reference(void **state)
{
    (void)state;
    number_same(0.0);
    number_same(-0.0);
    number_same(INFINITY);
    number_same(-INFINITY);
    number_same(NAN);
    for (int e = 0; e <= 60; e++) {
        double p = ldexp(1.0, e);
        for (int k = -3; k <= 3; k++) {
            number_same(p + k);
            number_same(-(p + k));
            number_same(p + k + 0.5);
        }
    }
    for (double p = 1; p < 1e20; p *= 10) {
        number_same(p);
        number_same(p - 1);
        number_same(-p);
        number_same(1 / p);
    }
    number_same(9007199254740991.0);
    number_same(-9007199254740991.0);
    number_same(9007199254740992.0);
    number_same(1e300);
    number_same(5e-324);
    for (int t = 0; t < 200000; t++) {
        uint64_t r = (uint64_t)diff_rand() << 32 | diff_rand();
        number_same((double)(int64_t)(r >> (t % 64)) * ((t & 1) ? -1 : 1));
        number_same((double)(r >> 11) / (double)(1 + (t % 1000)));
    }
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

/* ---- json_check (strict request bodies) ---- */

/* Runs json_check with flags on the n bytes of s; returns the result and
 * the error. */
static int check_n(const char *s, size_t n, unsigned flags, json_error_t *e)
{
    int obj;
    return json_check(s, n, flags, &obj, e);
}

static void expect_strict_ok(const char *s)
{
    json_error_t e;
    if (check_n(s, strlen(s), JSON_CHECK_STRICT, &e) != 1)
        fail_msg("strict check refused %s: %s at %zu", s, e.what, e.off);
}

/* Refused in strict mode at byte off with a message containing what. */
static void expect_strict_bad(const char *s, size_t n, size_t off, const char *what)
{
    json_error_t e;
    if (check_n(s, n, JSON_CHECK_STRICT, &e) != 0)
        fail_msg("strict check accepted %.*s", (int)n, s);
    assert_non_null(e.what);
    if (e.off != off || strstr(e.what, what) == NULL)
        fail_msg("%.*s: got \"%s\" at %zu, expected \"%s\" at %zu", (int)n, s, e.what, e.off, what,
                 off);
}

#define BAD(s, off, what) expect_strict_bad(s, sizeof s - 1, off, what)

/* The splice that rewrites "model" skips only SP/HT/LF/CR; a body with any
 * other byte between tokens must never get that far. */
static void test_check_whitespace_is_rfc8259(void **state)
{
    (void)state;
    expect_strict_ok(" \t\r\n{ \"model\" :\t\"auto\" }\n");
    BAD("{\"model\" :\x01\x01 \"auto\"}", 10, "control character outside a string");
    BAD("{\"model\":\"auto\"\x0b}", 15, "control character");
    BAD("\x0c{}", 0, "control character");
    BAD("{}\x00", 2, "control character");
    BAD("\xef\xbb\xbf{}", 0, "unexpected character"); /* a BOM is not whitespace */
    BAD("{\"a\":1\xc2\xa0}", 6, "unexpected character"); /* nor is U+00A0 */
    BAD("{\"a\":1} x", 8, "unexpected data after the JSON value");
    BAD("{\"a\":1", 6, "unexpected end of input");
    BAD("{\"a\":\"x", 7, "unexpected end of input in a string");
    BAD("{\"a\":\"\x1f\"}", 6, "control character in a string");
    BAD("{\"a\":01}", 6, "unexpected character");
    BAD("{\"a\":-}", 5, "invalid number");
    BAD("{\"a\":\"\\x\"}", 6, "invalid escape");
    BAD("{\"a\":\"\\u12g4\"}", 6, "invalid \\u escape");
}

static void test_check_utf8(void **state)
{
    (void)state;
    expect_strict_ok("{\"a\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"}");
    expect_strict_ok("{\"\xc3\xa9\":\"\xed\x9f\xbf \xee\x80\x80\"}"); /* U+D7FF, U+E000 */
    BAD("{\"a\":\"secret \xff\"}", 13, "invalid UTF-8");
    BAD("{\"a\":\"secret \xfe\"}", 13, "invalid UTF-8");
    BAD("{\"a\":\"\xc0\xaf\"}", 6, "invalid UTF-8");         /* overlong '/' */
    BAD("{\"a\":\"\xc1\xbf\"}", 6, "invalid UTF-8");         /* overlong */
    BAD("{\"a\":\"\xe0\x80\xaf\"}", 6, "invalid UTF-8");     /* overlong, 3 bytes */
    BAD("{\"a\":\"\xf0\x80\x80\xaf\"}", 6, "invalid UTF-8"); /* overlong, 4 bytes */
    BAD("{\"a\":\"\xed\xa0\x80\"}", 6, "invalid UTF-8");     /* U+D800 encoded */
    BAD("{\"a\":\"\xed\xbf\xbf\"}", 6, "invalid UTF-8");     /* U+DFFF encoded */
    BAD("{\"a\":\"\xf4\x90\x80\x80\"}", 6, "invalid UTF-8"); /* U+110000 */
    BAD("{\"a\":\"\xf5\x80\x80\x80\"}", 6, "invalid UTF-8");
    BAD("{\"a\":\"\xe2\x82\"}", 6, "invalid UTF-8");         /* truncated by the quote */
    BAD("{\"a\":\"\x80\"}", 6, "invalid UTF-8");             /* stray continuation */
    BAD("{\"\xff\":1}", 2, "invalid UTF-8");                 /* in a key too */
    BAD("{\"a\":\"\xc3", 6, "invalid UTF-8");                /* truncated by the end */
}

/* Lone surrogates cannot be turned into UTF-8 (cJSON refuses some, and a
 * provider would see something else again); \u0000 would end cJSON's
 * string early. All refused in strict mode, accepted without flags. */
static void test_check_escapes(void **state)
{
    int obj;
    (void)state;
    expect_strict_ok("{\"a\":\"\\ud83d\\ude00 \\u00e9 \\uFFFF \\\" \\\\ \\/ \\b\\f\\n\\r\\t\"}");
    BAD("{\"a\":\"\\ud800\"}", 6, "unpaired UTF-16 surrogate");
    BAD("{\"a\":\"\\ud800\\u0041\"}", 6, "unpaired UTF-16 surrogate");
    BAD("{\"a\":\"\\udc00\"}", 6, "unpaired UTF-16 surrogate");
    BAD("{\"a\":\"\\ude00\\ud83d\"}", 6, "unpaired UTF-16 surrogate"); /* reversed pair */
    BAD("{\"a\":\"\\ud83d", 6, "unpaired UTF-16 surrogate");
    BAD("{\"a\":\"x\\u0000y\"}", 7, "\\u0000");
    assert_int_equal(json_validate("\"\\ud800 \\u0000\"", 15, &obj), 1);
}

static void test_check_duplicate_keys(void **state)
{
    json_error_t e;
    const char *s;
    (void)state;
    expect_strict_ok("{\"a\":1,\"A\":2,\"b\":{\"a\":1},\"c\":[{\"a\":1},{\"a\":2}],\"d\":{\"a\":{\"a\":1}}}");
    expect_strict_ok("{\"a\":{\"x\":1},\"b\":{\"x\":1},\"x\":3}"); /* siblings' keys are their own */
    BAD("{\"stream\":false,\"stream\":true}", 16, "duplicate key");
    BAD("{\"temperature\":0,\"n\":1,\"temperature\":1.5}", 23, "duplicate key");
    BAD("{\"stream\":false,\"str\\u0065am\":true}", 16, "duplicate key");
    BAD("{\"\\u0073tream\":false,\"stream\":true}", 21, "duplicate key");
    BAD("{\"a/b\":1,\"a\\/b\":2}", 9, "duplicate key");
    BAD("{\"\xc3\xa9\":1,\"\\u00e9\":2}", 8, "duplicate key");
    BAD("{\"\xf0\x9f\x98\x80\":1,\"\\ud83d\\ude00\":2}", 10, "duplicate key");
    BAD("{\"\":1,\"\":2}", 6, "duplicate key");
    /* deeper levels: stream_options, a message's fields */
    BAD("{\"stream_options\":{\"include_usage\":false,\"include_usage\":true}}", 41,
        "duplicate key");
    BAD("{\"messages\":[{\"role\":\"user\",\"content\":\"a\",\"content\":\"b\"}]}", 42,
        "duplicate key");
    /* the repeated key is reported at its second occurrence */
    s = "{\"x\":1,\"stream\":true,\"str\\u0065am\":false}";
    assert_int_equal(check_n(s, strlen(s), JSON_CHECK_STRICT, &e), 0);
    assert_int_equal(e.off, 21);
    assert_int_equal(e.key.len, strlen("str\\u0065am"));
    assert_memory_equal(s + e.key.off, "str\\u0065am", e.key.len);
    /* json_validate (answers) still allows them */
    {
        int obj;
        assert_int_equal(json_validate("{\"a\":1,\"a\":2}", 13, &obj), 1);
    }
}

/* Objects with many keys: hashed and sorted, not compared pairwise; keys
 * beyond the inline store move to the heap and back. */
static void test_check_many_keys(void **state)
{
    buf_t b;
    json_error_t e;
    char k[32];
    (void)state;
    buf_init(&b, (size_t)1 << 24);
    buf_puts(&b, "{\"outer\":[");
    for (int o = 0; o < 3; o++) {
        buf_puts(&b, o ? ",{" : "{");
        for (int i = 0; i < 5000; i++) {
            snprintf(k, sizeof k, "%s\"k%d\":%d", i ? "," : "", i, i);
            buf_puts(&b, k);
        }
        buf_puts(&b, "}");
    }
    buf_puts(&b, "]}");
    assert_int_equal(check_n(buf_ptr(&b), buf_len(&b), JSON_CHECK_STRICT, &e), 1);
    /* a repeat of k17 at the end of the last object */
    b.w -= 3; /* "}]}" */
    buf_puts(&b, ",\"k\\u0031\\u0037\":0}]}");
    assert_int_equal(check_n(buf_ptr(&b), buf_len(&b), JSON_CHECK_STRICT, &e), 0);
    assert_string_equal(e.what, "duplicate key");
    assert_memory_equal(buf_ptr(&b) + e.key.off, "k\\u0031\\u0037", e.key.len);
    buf_free(&b);
}

static void test_check_depth(void **state)
{
    char deep[2003];
    json_error_t e;
    (void)state;
    memset(deep, '[', 1000);
    memset(deep + 1000, ']', 1000);
    assert_int_equal(check_n(deep, 2000, JSON_CHECK_STRICT, &e), 1);
    memset(deep, '[', 1001);
    memset(deep + 1001, ']', 1001);
    assert_int_equal(check_n(deep, 2002, JSON_CHECK_STRICT, &e), 0);
    assert_int_equal(e.off, 1000);
    assert_non_null(strstr(e.what, "nesting"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_check_whitespace_is_rfc8259),
        cmocka_unit_test(test_check_utf8),
        cmocka_unit_test(test_check_escapes),
        cmocka_unit_test(test_check_duplicate_keys),
        cmocka_unit_test(test_check_many_keys),
        cmocka_unit_test(test_check_depth),
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
        cmocka_unit_test(test_append_matches_reference),
        cmocka_unit_test(test_number_matches_reference),
    };
    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
