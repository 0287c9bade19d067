/* Unit tests for src/upstream/urlcache.c: a URL parses once and is found by
 * its text; the parse is libcurl's own (the same normalised URL as a parse
 * of the text with CURLOPT_URL's flags); held entries are never evicted,
 * unheld ones least recently used first; a full cache of held entries and
 * an unparsable URL give NULL (the caller passes the text). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/urlcache.h"

static char *full_url(CURLU *u)
{
    char *s = NULL;
    assert_int_equal(curl_url_get(u, CURLUPART_URL, &s, 0), CURLUE_OK);
    return s;
}

static void test_same_text_same_entry(void **state)
{
    urlcache_t *uc = urlcache_new();
    urlcache_entry_t *a, *b, *c;
    (void)state;
    a = urlcache_hold(uc, "http://127.0.0.1:8080/v1/chat/completions");
    b = urlcache_hold(uc, "http://127.0.0.1:8080/v1/chat/completions");
    c = urlcache_hold(uc, "http://127.0.0.1:8080/v1/completions");
    assert_non_null(a);
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, c);
    assert_int_equal(urlcache_size(uc), 2);
    urlcache_release(uc, a);
    urlcache_release(uc, b);
    urlcache_release(uc, c);
    urlcache_release(uc, NULL);
    urlcache_free(uc);
}

/* The cached parse is the one libcurl makes of the text. */
static void test_parse_is_libcurls(void **state)
{
    static const char *urls[] = {
        "http://127.0.0.1:8080/v1/chat/completions",
        "https://api.example.com/openai/deployments/prod%204o/chat/completions?tenant=a%20b%26c&api-version=2024-10-21",
        "http://h/sim/quirk=azure/openai/deployments/dq/chat/completions?api-version=2024-06-01",
        "HTTP://Example.COM:80/a/../b/./c",
        "http://[::1]:9/v1/messages",
        "example.com/v1/chat/completions",
    };
    urlcache_t *uc = urlcache_new();
    (void)state;
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        CURLU *ref = curl_url();
        urlcache_entry_t *e = urlcache_hold(uc, urls[i]);
        char *want, *got;
        assert_non_null(e);
        assert_int_equal(curl_url_set(ref, CURLUPART_URL, urls[i],
                                      CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME),
                         CURLUE_OK);
        want = full_url(ref);
        got = full_url(urlcache_curlu(e));
        assert_string_equal(got, want);
        curl_free(want);
        curl_free(got);
        curl_url_cleanup(ref);
        urlcache_release(uc, e);
    }
    urlcache_free(uc);
}

static void test_unparsable_is_null(void **state)
{
    urlcache_t *uc = urlcache_new();
    (void)state;
    assert_null(urlcache_hold(uc, "http://exa mple.com/"));
    assert_null(urlcache_hold(uc, ""));
    assert_int_equal(urlcache_size(uc), 0);
    urlcache_free(uc);
}

static void test_eviction_spares_held(void **state)
{
    urlcache_t *uc = urlcache_new();
    urlcache_entry_t *held[64], *e, *again;
    char url[64];
    (void)state;
    for (int i = 0; i < 64; i++) {
        snprintf(url, sizeof url, "http://h/%d", i);
        held[i] = urlcache_hold(uc, url);
        assert_non_null(held[i]);
    }
    assert_null(urlcache_hold(uc, "http://h/new")); /* all held */
    urlcache_release(uc, held[7]);
    urlcache_release(uc, held[3]);
    /* 3 was last held before 7: the least recently used unheld entry */
    e = urlcache_hold(uc, "http://h/new");
    assert_ptr_equal(e, held[3]);
    again = urlcache_hold(uc, "http://h/7"); /* still there */
    assert_ptr_equal(again, held[7]);
    assert_int_equal(urlcache_size(uc), 64);
    for (int i = 0; i < 64; i++)
        if (i != 7 && i != 3)
            urlcache_release(uc, held[i]);
    urlcache_release(uc, again);
    urlcache_release(uc, e);
    urlcache_free(uc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_text_same_entry),
        cmocka_unit_test(test_parse_is_libcurls),
        cmocka_unit_test(test_unparsable_is_null),
        cmocka_unit_test(test_eviction_spares_held),
    };
    return cmocka_run_group_tests_name("urlcache", tests, NULL, NULL);
}
