/* Unit tests for src/cachekey.c: the canonical form of a request body and
 * the key built from it — what must share an entry (key order, whitespace,
 * number spelling, escapes, skipped fields) and what must not (any other
 * difference, numbers a double cannot hold exactly, the route and scope). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "cache/cachekey.h"

/* Key of body for the chat endpoint, tier "standard", no scope; returns the
 * result of cachekey_compute. */
static int key_of(const char *body, uint8_t key[CACHEKEY_LEN])
{
    cJSON *root = cJSON_Parse(body);
    int rc;
    if (root == NULL)
        fail_msg("test body is not JSON: %s", body);
    rc = cachekey_compute(root, "/chat/completions", "tier:standard", "", key);
    cJSON_Delete(root);
    return rc;
}

static void expect_same(const char *a, const char *b)
{
    uint8_t ka[CACHEKEY_LEN], kb[CACHEKEY_LEN];
    assert_int_equal(key_of(a, ka), 0);
    assert_int_equal(key_of(b, kb), 0);
    if (memcmp(ka, kb, CACHEKEY_LEN) != 0)
        fail_msg("different keys for\n  %s\n  %s", a, b);
}

static void expect_different(const char *a, const char *b)
{
    uint8_t ka[CACHEKEY_LEN], kb[CACHEKEY_LEN];
    assert_int_equal(key_of(a, ka), 0);
    assert_int_equal(key_of(b, kb), 0);
    if (memcmp(ka, kb, CACHEKEY_LEN) == 0)
        fail_msg("same key for\n  %s\n  %s", a, b);
}

static void expect_no_key(const char *body)
{
    uint8_t k[CACHEKEY_LEN];
    if (key_of(body, k) != -1)
        fail_msg("a key was computed for %s", body);
}

static void test_canonical_form(void **state)
{
    static const char *const skip[] = {"model", NULL};
    cJSON *root = cJSON_Parse("{ \"b\" : [1.0, 1e0, -0, 2.5e-1, \"\\u00e9\\n\"], \"a\":{\"z\":null,"
                              "\"y\":true}, \"model\":\"x\" }");
    buf_t b;
    (void)state;
    buf_init(&b, 4096);
    assert_int_equal(cachekey_canonical(root, skip, &b), 0);
    assert_string_equal(buf_cstr(&b), "{\"a\":{\"y\":true,\"z\":null},\"b\":[1,1,0,0.25,\"\xc3\xa9\\n\"]}");
    cJSON_Delete(root);
    buf_free(&b);
}

static void test_equal_requests_share_a_key(void **state)
{
    (void)state;
    expect_same("{\"model\":\"auto\",\"temperature\":0,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                "{ \"messages\" : [ {\"content\":\"hi\",\"role\":\"user\"} ] ,\"temperature\":0.0e5,"
                "\"model\":\"gpt-4o\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                "\"user\":\"u-1\"}");
    /* escapes are decoded before the key is made */
    expect_same("{\"messages\":[{\"content\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}]}",
                "{\"messages\":[{\"content\":\"caf\\u00e9 \\ud83d\\ude00\"}]}");
}

static void test_any_other_difference_splits(void **state)
{
    (void)state;
    expect_different("{\"temperature\":0}", "{\"temperature\":0,\"seed\":1}");
    expect_different("{\"seed\":1}", "{\"seed\":2}");
    expect_different("{\"x_vendor\":{\"a\":1}}", "{\"x_vendor\":{\"a\":2}}");
    expect_different("{\"messages\":[\"a\",\"b\"]}", "{\"messages\":[\"b\",\"a\"]}");
    expect_different("{\"a\":\"1\"}", "{\"a\":1}");
    expect_different("{\"a\":null}", "{}");
    /* a nested "model" is not the routed model: it counts */
    expect_different("{\"x\":{\"model\":\"a\"}}", "{\"x\":{\"model\":\"b\"}}");
    /* seeds up to 2^53 are exact */
    expect_different("{\"seed\":9007199254740991}", "{\"seed\":9007199254740990}");
}

/* cJSON holds numbers as doubles: 1e400 and 1e401 are both infinity (the
 * canonical writer would print null for both), and 2^53 + 1 reads as 2^53.
 * A provider may tell them apart, so such bodies get no key at all. */
static void test_inexact_numbers_get_no_key(void **state)
{
    (void)state;
    expect_no_key("{\"temperature\":0,\"x\":1e400}");
    expect_no_key("{\"temperature\":0,\"x\":-1e400}");
    expect_no_key("{\"seed\":9007199254740993}");
    expect_no_key("{\"messages\":[{\"content\":\"x\",\"n\":[1,2,-9007199254740992]}]}");
}

static void test_route_and_scope_split(void **state)
{
    cJSON *root = cJSON_Parse("{\"temperature\":0}");
    uint8_t k[4][CACHEKEY_LEN];
    (void)state;
    assert_int_equal(cachekey_compute(root, "/chat/completions", "tier:a", "", k[0]), 0);
    assert_int_equal(cachekey_compute(root, "/chat/completions", "tier:b", "", k[1]), 0);
    assert_int_equal(cachekey_compute(root, "/completions", "tier:a", "", k[2]), 0);
    assert_int_equal(cachekey_compute(root, "/chat/completions", "tier:a", "s", k[3]), 0);
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            assert_memory_not_equal(k[i], k[j], CACHEKEY_LEN);
    /* the parts are length-prefixed: moving a byte between them changes the key */
    assert_int_equal(cachekey_compute(root, "/chat/completions", "tier:ab", "", k[0]), 0);
    assert_int_equal(cachekey_compute(root, "/chat/completions", "tier:a", "b", k[1]), 0);
    assert_memory_not_equal(k[0], k[1], CACHEKEY_LEN);
    cJSON_Delete(root);
}

static void test_hex(void **state)
{
    uint8_t k[CACHEKEY_LEN];
    char hex[2 * CACHEKEY_LEN + 1];
    (void)state;
    for (int i = 0; i < CACHEKEY_LEN; i++)
        k[i] = (uint8_t)(i * 17);
    cachekey_hex(k, hex);
    assert_int_equal(strlen(hex), 64);
    assert_memory_equal(hex, "00112233445566778899aabbccddeeff", 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_form),
        cmocka_unit_test(test_equal_requests_share_a_key),
        cmocka_unit_test(test_any_other_difference_splits),
        cmocka_unit_test(test_inexact_numbers_get_no_key),
        cmocka_unit_test(test_route_and_scope_split),
        cmocka_unit_test(test_hex),
    };
    return cmocka_run_group_tests_name("cachekey", tests, NULL, NULL);
}
