/* Unit tests for src/auth.c: keys from the environment and from a SHA-256,
 * wrong, absent and malformed Authorization values, configuration errors,
 * the constant-time compare, loopback listen addresses and the 401 body. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/auth.h"

/* sha256("test") */
#define TEST_SHA "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

typedef struct parsed {
    yaml_document_t doc;
    char err[2048], warn[2048];
    ywalk_t c;
    auth_t *a;
} parsed_t;

/* Parses yaml (a document whose root is the keys mapping). */
static void parse(parsed_t *p, const char *yaml)
{
    yaml_parser_t parser;
    memset(p, 0, sizeof *p);
    assert_true(yaml_parser_initialize(&parser));
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, strlen(yaml));
    assert_true(yaml_parser_load(&parser, &p->doc));
    yaml_parser_delete(&parser);
    p->c.file = "t.yaml";
    p->c.doc = &p->doc;
    p->c.err = p->err;
    p->c.errlen = sizeof p->err;
    p->c.warn = p->warn;
    p->c.warnlen = sizeof p->warn;
    p->a = auth_parse(&p->c, yaml_document_get_root_node(&p->doc));
}

static void done(parsed_t *p)
{
    auth_free(p->a);
    yaml_document_delete(&p->doc);
}

static void test_keys_from_env_and_hash(void **state)
{
    parsed_t p;
    const auth_key_t *k;
    (void)state;
    setenv("TEST_AUTH_KEY_A", "sk-team-a-secret", 1);
    parse(&p, "team-a: {key_env: TEST_AUTH_KEY_A, daily_usd: 5, monthly_usd: 100, rpm: 60, "
              "tpm: 100000}\n"
              "team-b: {key_sha256: \"" TEST_SHA "\", rpm: 600}\n");
    assert_non_null(p.a);
    assert_int_equal(p.c.nerr, 0);
    assert_true(auth_enabled(p.a));
    assert_int_equal(auth_count(p.a), 2);

    k = auth_check(p.a, "Bearer sk-team-a-secret");
    assert_non_null(k);
    assert_string_equal(k->name, "team-a");
    assert_true(k->daily_usd == 5.0);
    assert_true(k->monthly_usd == 100.0);
    assert_int_equal(k->rpm, 60);
    assert_int_equal(k->tpm, 100000);

    k = auth_check(p.a, "bearer   test  ");
    assert_non_null(k);
    assert_string_equal(k->name, "team-b");
    assert_int_equal(k->rpm, 600);
    assert_int_equal(k->tpm, 0);
    assert_true(k->daily_usd == 0.0);
    done(&p);
    unsetenv("TEST_AUTH_KEY_A");
}

static void test_wrong_absent_malformed(void **state)
{
    parsed_t p;
    (void)state;
    parse(&p, "b: {key_sha256: \"" TEST_SHA "\"}\n");
    assert_non_null(p.a);
    assert_null(auth_check(p.a, NULL));
    assert_null(auth_check(p.a, ""));
    assert_null(auth_check(p.a, "Bearer"));
    assert_null(auth_check(p.a, "Bearer "));
    assert_null(auth_check(p.a, "Bearer tes"));
    assert_null(auth_check(p.a, "Bearer testt"));
    assert_null(auth_check(p.a, "Bearer TEST"));
    assert_null(auth_check(p.a, "Basic test"));
    assert_null(auth_check(p.a, "Bearertest"));
    assert_null(auth_check(p.a, "test"));
    assert_non_null(auth_check(p.a, "Bearer test"));
    assert_non_null(auth_check(p.a, "BEARER\ttest"));
    {
        char big[2048];
        memcpy(big, "Bearer ", 7);
        memset(big + 7, 'x', sizeof big - 8);
        big[sizeof big - 1] = '\0';
        assert_null(auth_check(p.a, big));
    }
    done(&p);
}

static void test_unset_env_is_warning_and_refused(void **state)
{
    parsed_t p;
    (void)state;
    unsetenv("TEST_AUTH_UNSET");
    parse(&p, "a: {key_env: TEST_AUTH_UNSET}\n");
    assert_non_null(p.a);
    assert_int_equal(p.c.nerr, 0);
    assert_non_null(strstr(p.warn, "TEST_AUTH_UNSET"));
    assert_true(auth_enabled(p.a)); /* fail closed */
    assert_null(auth_check(p.a, "Bearer "));
    assert_null(auth_check(p.a, "Bearer x"));
    done(&p);
}

static void test_config_errors(void **state)
{
    parsed_t p;
    (void)state;
    parse(&p, "a: {key_sha256: \"abc\"}\n");
    assert_null(p.a);
    assert_non_null(strstr(p.err, "64 hexadecimal"));
    done(&p);

    parse(&p, "a: {rpm: 5}\n");
    assert_null(p.a);
    assert_non_null(strstr(p.err, "exactly one of key_env or key_sha256"));
    done(&p);

    setenv("TEST_AUTH_X", "x", 1);
    parse(&p, "a: {key_sha256: \"" TEST_SHA "\", key_env: TEST_AUTH_X}\n");
    assert_null(p.a);
    done(&p);

    parse(&p, "a: {key_sha256: \"" TEST_SHA "\", rpn: 5}\n");
    assert_null(p.a);
    assert_non_null(strstr(p.err, "rpn"));
    done(&p);

    parse(&p, "a: {key_sha256: \"" TEST_SHA "\", daily_usd: -1}\n");
    assert_null(p.a);
    done(&p);

    setenv("TEST_AUTH_T", "test", 1);
    parse(&p, "a: {key_sha256: \"" TEST_SHA "\"}\nb: {key_env: TEST_AUTH_T}\n");
    assert_null(p.a);
    assert_non_null(strstr(p.err, "same secret"));
    done(&p);

    parse(&p, "[1, 2]\n");
    assert_null(p.a);
    done(&p);

    parse(&p, "~\n");
    assert_non_null(p.a);
    assert_false(auth_enabled(p.a));
    assert_null(auth_check(p.a, "Bearer test"));
    done(&p);
    unsetenv("TEST_AUTH_X");
    unsetenv("TEST_AUTH_T");
    assert_false(auth_enabled(NULL));
    assert_null(auth_check(NULL, "Bearer test"));
}

static void test_many_keys_each_found(void **state)
{
    char yaml[8192];
    size_t off = 0;
    parsed_t p;
    (void)state;
    for (int i = 0; i < 50; i++) {
        char var[32], val[32];
        snprintf(var, sizeof var, "TEST_AUTH_K%d", i);
        snprintf(val, sizeof val, "secret-%d", i);
        setenv(var, val, 1);
        off += (size_t)snprintf(yaml + off, sizeof yaml - off, "k%d: {key_env: %s}\n", i, var);
    }
    parse(&p, yaml);
    assert_non_null(p.a);
    for (int i = 0; i < 50; i++) {
        char hdr[48], name[16];
        const auth_key_t *k;
        snprintf(hdr, sizeof hdr, "Bearer secret-%d", i);
        snprintf(name, sizeof name, "k%d", i);
        k = auth_check(p.a, hdr);
        assert_non_null(k);
        assert_string_equal(k->name, name);
        assert_ptr_equal(k, auth_key_at(p.a, (size_t)i));
    }
    assert_null(auth_check(p.a, "Bearer secret-50"));
    done(&p);
    for (int i = 0; i < 50; i++) {
        char var[32];
        snprintf(var, sizeof var, "TEST_AUTH_K%d", i);
        unsetenv(var);
    }
}

static void test_ct_equal(void **state)
{
    uint8_t a[32], b[32];
    (void)state;
    for (int i = 0; i < 32; i++)
        a[i] = b[i] = (uint8_t)(i * 7);
    assert_true(auth_ct_equal(a, b, 32));
    assert_true(auth_ct_equal(a, b, 0));
    for (int i = 0; i < 32; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (uint8_t)(1u << bit);
            assert_false(auth_ct_equal(a, b, 32));
            b[i] ^= (uint8_t)(1u << bit);
        }
    }
    assert_true(auth_ct_equal(a, b, 32));
    assert_true(auth_ct_equal("abc", "abd", 2));
    assert_false(auth_ct_equal("abc", "abd", 3));
}

static void test_loopback(void **state)
{
    (void)state;
    assert_true(auth_listen_is_loopback("127.0.0.1"));
    assert_true(auth_listen_is_loopback("127.8.9.10"));
    assert_true(auth_listen_is_loopback("::1"));
    assert_true(auth_listen_is_loopback("[::1]"));
    assert_true(auth_listen_is_loopback("localhost"));
    assert_true(auth_listen_is_loopback("LOCALHOST"));
    assert_true(auth_listen_is_loopback("::ffff:127.0.0.1"));
    assert_false(auth_listen_is_loopback("0.0.0.0"));
    assert_false(auth_listen_is_loopback("::"));
    assert_false(auth_listen_is_loopback("[::]"));
    assert_false(auth_listen_is_loopback(""));
    assert_false(auth_listen_is_loopback(NULL));
    assert_false(auth_listen_is_loopback("10.0.0.1"));
    assert_false(auth_listen_is_loopback("128.0.0.1"));
    assert_false(auth_listen_is_loopback("::ffff:10.0.0.1"));
    assert_false(auth_listen_is_loopback("example.com"));
    assert_false(auth_listen_is_loopback("localhost.evil.com"));
}

static void test_error_body(void **state)
{
    size_t len;
    char *body;
    (void)state;
    body = auth_error_body(false, &len);
    assert_non_null(body);
    assert_int_equal(strlen(body), len);
    assert_non_null(strstr(body, "\"type\":\"invalid_request_error\""));
    assert_non_null(strstr(body, "\"code\":\"invalid_api_key\""));
    assert_non_null(strstr(body, "\"param\":null"));
    free(body);
    body = auth_error_body(true, &len);
    assert_non_null(strstr(body, "didn't provide"));
    free(body);
}

/* A secret parsed from a one-scalar document. */
static auth_secret_t *secret(parsed_t *p, const char *yaml, bool from_env)
{
    yaml_parser_t parser;
    memset(p, 0, sizeof *p);
    assert_true(yaml_parser_initialize(&parser));
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, strlen(yaml));
    assert_true(yaml_parser_load(&parser, &p->doc));
    yaml_parser_delete(&parser);
    p->c.file = "t.yaml";
    p->c.doc = &p->doc;
    p->c.err = p->err;
    p->c.errlen = sizeof p->err;
    p->c.warn = p->warn;
    p->c.warnlen = sizeof p->warn;
    return auth_secret_parse(&p->c, yaml_document_get_root_node(&p->doc),
                             "observability.admin_key_env", from_env);
}

/* The admin endpoints: the admin key, a key with admin: true, the metrics
 * token for /metrics only; Bearer or Basic; a plain proxy key never. */
static void test_admin_check(void **state)
{
    parsed_t p, ps, pm;
    auth_secret_t *adm, *met;
    (void)state;
    setenv("TEST_AUTH_ADMIN", "adm-secret", 1);
    setenv("TEST_AUTH_OPS", "ops-secret", 1);
    setenv("TEST_AUTH_USER", "user-secret", 1);
    parse(&p, "user: {key_env: TEST_AUTH_USER}\nops: {key_env: TEST_AUTH_OPS, admin: true}\n");
    assert_non_null(p.a);
    adm = secret(&ps, "TEST_AUTH_ADMIN", true);
    met = secret(&pm, "\"" TEST_SHA "\"", false); /* "test" */
    assert_non_null(adm);
    assert_non_null(met);
    assert_true(adm->usable && met->usable);
    assert_int_equal(adm->line, 1);

    assert_true(auth_admin_gated(p.a, NULL, NULL));
    assert_true(auth_admin_gated(NULL, adm, NULL));
    assert_false(auth_admin_gated(NULL, NULL, NULL));

    assert_true(auth_admin_check(p.a, adm, met, false, "Bearer adm-secret"));
    assert_true(auth_admin_check(p.a, adm, met, true, "bearer  adm-secret "));
    assert_true(auth_admin_check(p.a, adm, met, false, "Bearer ops-secret"));
    assert_false(auth_admin_check(p.a, adm, met, false, "Bearer user-secret"));
    assert_false(auth_admin_check(p.a, adm, met, true, "Bearer user-secret"));
    assert_true(auth_admin_check(p.a, adm, met, true, "Bearer test"));
    assert_false(auth_admin_check(p.a, adm, met, false, "Bearer test"));
    assert_false(auth_admin_check(p.a, adm, met, false, NULL));
    assert_false(auth_admin_check(p.a, adm, met, false, "Bearer adm-secre"));
    assert_false(auth_admin_check(p.a, adm, met, false, "adm-secret"));
    /* Basic: base64("admin:adm-secret"), any user name, the key as password */
    assert_true(auth_admin_check(p.a, adm, met, false, "Basic YWRtaW46YWRtLXNlY3JldA=="));
    assert_true(auth_admin_check(p.a, adm, met, false, "Basic OmFkbS1zZWNyZXQ=")); /* ":adm-secret" */
    assert_false(auth_admin_check(p.a, adm, met, false, "Basic YWRtLXNlY3JldA=="));  /* no colon */
    assert_false(auth_admin_check(p.a, adm, met, false, "Basic YWRtaW46"));         /* "admin:" */
    assert_false(auth_admin_check(p.a, adm, met, false, "Basic !!!!"));
    assert_false(auth_admin_check(p.a, adm, met, false, "Basic YWRtaW46YWRtLXNlY3JldA="));
    /* the admin key is not a proxy key */
    assert_null(auth_check(p.a, "Bearer adm-secret"));
    /* NULL tables match nothing */
    assert_false(auth_admin_check(NULL, NULL, NULL, true, "Bearer adm-secret"));
    free(adm);
    free(met);
    yaml_document_delete(&ps.doc);
    yaml_document_delete(&pm.doc);

    /* an unset variable: a warning that says to restart, and nothing matches */
    unsetenv("TEST_AUTH_ADMIN");
    adm = secret(&ps, "TEST_AUTH_ADMIN", true);
    assert_non_null(adm);
    assert_false(adm->usable);
    assert_non_null(strstr(ps.warn, "TEST_AUTH_ADMIN is not set"));
    assert_non_null(strstr(ps.warn, "restart"));
    assert_false(auth_admin_check(NULL, adm, NULL, false, "Bearer "));
    free(adm);
    yaml_document_delete(&ps.doc);
    /* a bad digest is an error */
    assert_null(secret(&ps, "abc", false));
    assert_int_equal(ps.c.nerr, 1);
    yaml_document_delete(&ps.doc);
    done(&p);
    unsetenv("TEST_AUTH_OPS");
    unsetenv("TEST_AUTH_USER");
}

static void test_admin_error_body(void **state)
{
    size_t len;
    char *b = auth_admin_error_body(true, true, &len);
    (void)state;
    assert_int_equal(strlen(b), len);
    assert_non_null(strstr(b, "\"code\":\"invalid_api_key\""));
    assert_non_null(strstr(b, "\"param\":null"));
    assert_non_null(strstr(b, "metrics token"));
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_from_env_and_hash),
        cmocka_unit_test(test_wrong_absent_malformed),
        cmocka_unit_test(test_unset_env_is_warning_and_refused),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_many_keys_each_found),
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_error_body),
        cmocka_unit_test(test_admin_check),
        cmocka_unit_test(test_admin_error_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
