/* Unit tests for src/cors.c (origin patterns and matching, the preflight's
 * allowed headers) and for the server.cors / server.max_header_bytes keys
 * of src/config.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "http/cors.h"

static char errbuf[4096];

static config_t *load(const char *server_extra)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "server:\n  listen: \"127.0.0.1:1\"\n%s"
             "providers: {p: {type: openai, base_url: \"http://x\"}}\n"
             "models: {m: {provider: p}}\ntiers: {t: [m]}\nrouting: {default_tier: t}\n",
             server_extra);
    errbuf[0] = '\0';
    return config_load_string("test.yaml", yaml, strlen(yaml), errbuf, sizeof errbuf, NULL, 0);
}

static void test_origin_patterns(void **state)
{
    char why[160];
    static const char *const good[] = {"https://app.example.com", "http://localhost:5173",
                                       "https://*.example.org", "http://127.0.0.1:8080",
                                       "http://[::1]:3000", "chrome-extension://abcdef"};
    static const char *const bad[] = {"https://app.example.com/", "app.example.com", "https://",
                                      "https://a.com/path", "https://a.com:", "https://a.com:123456",
                                      "https://*.", "https://a b.com", "null", "https://.a.com"};
    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(cors_check_origin_pattern(good[i], why, sizeof why), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(cors_check_origin_pattern(bad[i], why, sizeof why), -1);
    assert_int_equal(cors_check_origin_pattern("https://a.com/", why, sizeof why), -1);
    assert_non_null(strstr(why, "trailing"));
}

static void test_origin_matching(void **state)
{
    char *origins[] = {"https://app.example.com", "https://*.example.org", "http://*.dev.test:8080",
                       NULL};
    cfg_cors_t c = {.enabled = true, .origins = origins, .n_origins = 3};
    (void)state;
    assert_true(cors_origin_allowed(&c, "https://app.example.com"));
    assert_true(cors_origin_allowed(&c, "HTTPS://APP.EXAMPLE.COM"));
    assert_false(cors_origin_allowed(&c, "http://app.example.com"));
    assert_false(cors_origin_allowed(&c, "https://app.example.com.evil.net"));
    assert_false(cors_origin_allowed(&c, "https://app.example.com:443"));
    assert_true(cors_origin_allowed(&c, "https://a.example.org"));
    assert_true(cors_origin_allowed(&c, "https://a.b.example.org"));
    assert_false(cors_origin_allowed(&c, "https://example.org"));
    assert_false(cors_origin_allowed(&c, "https://evilexample.org"));
    assert_false(cors_origin_allowed(&c, "https://x/.example.org"));
    assert_false(cors_origin_allowed(&c, "https://.example.org"));
    assert_true(cors_origin_allowed(&c, "http://x.dev.test:8080"));
    assert_false(cors_origin_allowed(&c, "http://x.dev.test"));
    assert_false(cors_origin_allowed(&c, NULL));
    assert_false(cors_origin_allowed(&c, ""));
    c.enabled = false;
    assert_false(cors_origin_allowed(&c, "https://app.example.com"));
}

static void test_any_origin_still_needs_an_origin(void **state)
{
    cfg_cors_t c = {.enabled = true, .any_origin = true};
    char longer[CORS_MAX_ORIGIN + 16];
    (void)state;
    assert_true(cors_origin_allowed(&c, "https://whatever.test"));
    assert_false(cors_origin_allowed(&c, "null"));
    assert_false(cors_origin_allowed(&c, "https://a.test\r\nX-Evil: 1"));
    memcpy(longer, "https://", 8);
    memset(longer + 8, 'a', sizeof longer - 9);
    longer[sizeof longer - 1] = '\0';
    assert_false(cors_origin_allowed(&c, longer));
}

static void test_allow_headers_echo_and_filter(void **state)
{
    char *list[] = {"authorization", "content-type", "x-stainless-*", NULL};
    cfg_cors_t any = {.enabled = true};
    cfg_cors_t some = {.enabled = true, .allow_headers = list, .n_allow_headers = 3};
    size_t len;
    char *s;
    (void)state;
    s = cors_allow_headers(&any, "Authorization,Content-Type, ,X-Stainless-OS", &len);
    assert_string_equal(s, "authorization, content-type, x-stainless-os");
    assert_int_equal(len, strlen(s));
    free(s);
    s = cors_allow_headers(&some, "authorization, x-stainless-retry-count, openai-project, x-evil", &len);
    assert_string_equal(s, "authorization, x-stainless-retry-count");
    free(s);
    s = cors_allow_headers(&any, NULL, &len);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    /* every element separated by a bare comma: the output is longer */
    s = cors_allow_headers(&any, "a,b,c,d,e,f,g,h", &len);
    assert_string_equal(s, "a, b, c, d, e, f, g, h");
    free(s);
    assert_null(cors_allow_headers(&any, "authorization, bad header", &len));
    assert_null(cors_allow_headers(&any, "x\r\ny", &len));
}

static void test_allow_headers_cap(void **state)
{
    cfg_cors_t any = {.enabled = true};
    char *big = malloc(CORS_MAX_REQUEST_HEADERS + 2);
    size_t len;
    (void)state;
    memset(big, 'a', CORS_MAX_REQUEST_HEADERS + 1);
    big[CORS_MAX_REQUEST_HEADERS + 1] = '\0';
    assert_null(cors_allow_headers(&any, big, &len));
    free(big);
}

static void test_config_cors(void **state)
{
    config_t *cfg;
    (void)state;
    cfg = load("");
    assert_non_null(cfg);
    assert_false(cfg->cors.enabled);
    assert_int_equal(cfg->max_header_bytes, 16384);
    config_unref(cfg);

    cfg = load("  max_header_bytes: 32768\n  cors:\n    origins: [\"https://App.Example.com\", "
               "\"https://*.example.org\"]\n    allow_headers: [Authorization, \"X-Stainless-*\"]\n"
               "    max_age: 60\n    allow_credentials: true\n");
    assert_non_null(cfg);
    assert_int_equal(cfg->max_header_bytes, 32768);
    assert_true(cfg->cors.enabled);
    assert_false(cfg->cors.any_origin);
    assert_int_equal(cfg->cors.n_origins, 2);
    assert_string_equal(cfg->cors.origins[0], "https://app.example.com");
    assert_int_equal(cfg->cors.n_allow_headers, 2);
    assert_string_equal(cfg->cors.allow_headers[1], "x-stainless-*");
    assert_int_equal(cfg->cors.max_age_s, 60);
    assert_true(cfg->cors.allow_credentials);
    config_unref(cfg);

    cfg = load("  cors: {origins: \"*\", allow_headers: \"*\"}\n");
    assert_non_null(cfg);
    assert_true(cfg->cors.any_origin);
    assert_null(cfg->cors.allow_headers);
    assert_int_equal(cfg->cors.max_age_s, 600);
    config_unref(cfg);
}

static void test_config_cors_errors(void **state)
{
    static const struct {
        const char *yaml, *needle;
    } cases[] = {
        {"  cors: {origins: [\"https://a.com/\"]}\n", "trailing"},
        {"  cors: {origins: \"*\", allow_credentials: true}\n", "allow_credentials"},
        {"  cors: {origins: [\"*\", \"https://a.com\"]}\n", "list nothing else"},
        {"  cors: {max_age: 10}\n", "origins is required"},
        {"  cors: {origins: [\"https://a.com\"], max_age: 100000}\n", "max_age"},
        {"  cors: {origins: [\"https://a.com\"], allow_headers: [\"a b\"]}\n", "header name"},
        {"  cors: {origins: [\"https://a.com\"], methods: [GET]}\n", "unknown key"},
        {"  cors: [\"https://a.com\"]\n", "server.cors"},
        {"  max_header_bytes: 512\n", "max_header_bytes"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        config_t *cfg = load(cases[i].yaml);
        if (cfg != NULL)
            fail_msg("accepted: %s", cases[i].yaml);
        if (strstr(errbuf, cases[i].needle) == NULL)
            fail_msg("%s: message lacks \"%s\": %s", cases[i].yaml, cases[i].needle, errbuf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_origin_patterns),
        cmocka_unit_test(test_origin_matching),
        cmocka_unit_test(test_any_origin_still_needs_an_origin),
        cmocka_unit_test(test_allow_headers_echo_and_filter),
        cmocka_unit_test(test_allow_headers_cap),
        cmocka_unit_test(test_config_cors),
        cmocka_unit_test(test_config_cors_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
