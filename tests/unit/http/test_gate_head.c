/* Unit tests for src/http/gate_head.c (the check of a request head before
 * libmicrohttpd parses it), src/http/gate_ips.c (connections per client
 * address) and the server.request_timeout_ms / max_connections_per_ip keys
 * of src/core/config_schema.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/config.h"
#include "http/gate_head.h"
#include "http/gate_ips.h"

static const gate_limits_t LIM = {16384, 65536};

/* The whole of s at once. */
static enum gate_head_result check_all(const char *s, size_t n, gate_head_t *h, gate_verdict_t *v)
{
    memset(h, 0, sizeof *h);
    return gate_head_check(h, s, n, false, &LIM, v);
}

#define CHECK_STR(s, h, v) check_all((s), sizeof(s) - 1, (h), (v))

static void expect_refusal(const char *s, size_t n, unsigned status, const char *code)
{
    gate_head_t h;
    gate_verdict_t v;
    enum gate_head_result r = check_all(s, n, &h, &v);
    if (r != GATE_HEAD_REFUSE)
        fail_msg("not refused (%d): %.60s", (int)r, s);
    if (v.status != status || strcmp(v.code, code) != 0)
        fail_msg("%.60s: got %u %s (%s), expected %u %s", s, v.status, v.code, v.message, status, code);
}

#define REFUSED(s, status, code) expect_refusal((s), sizeof(s) - 1, (status), (code))

static void test_sound_heads_pass(void **state)
{
    static const char *const ok[] = {
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /healthz HTTP/1.0\r\n\r\n",
        "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 12\r\n\r\n{\"a\":1}",
        "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n",
        "POST /x HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", /* equal: one length */
        "GET /x HTTP/1.1\nHost: x\n\n",                                      /* bare LF lines */
        "\r\n\r\nGET /x HTTP/1.1\r\n\r\n",                                    /* leading blank lines */
        "GET /x?a=1&b HTTP/1.1\r\nCookie: a=1; b=2\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n",
        "GET /x HTTP/1.1\r\nX-Bin: caf\xc3\xa9 \x7f\r\n\r\n",                  /* obs-text, DEL */
        "OPTIONS * HTTP/1.1\r\n\r\n",
    };
    (void)state;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        gate_head_t h;
        gate_verdict_t v;
        enum gate_head_result r = check_all(ok[i], strlen(ok[i]), &h, &v);
        if (r != GATE_HEAD_PASS)
            fail_msg("refused (%d): %s: %u %s", (int)r, ok[i], v.status, r ? v.message : "");
    }
}

static void test_head_len_probe_and_door(void **state)
{
    gate_head_t h;
    gate_verdict_t v;
    (void)state;
    assert_int_equal(CHECK_STR("GET /healthz HTTP/1.1\r\n\r\nBODY", &h, &v), GATE_HEAD_PASS);
    assert_int_equal(h.head_len, 25);
    assert_true(h.probe);
    assert_int_equal(CHECK_STR("HEAD /v1/readyz?x=1 HTTP/1.1\r\n\r\n", &h, &v), GATE_HEAD_PASS);
    assert_true(h.probe);
    assert_int_equal(CHECK_STR("GET /metrics HTTP/1.1\r\n\r\n", &h, &v), GATE_HEAD_PASS);
    assert_true(h.probe);
    assert_int_equal(CHECK_STR("POST /healthz HTTP/1.1\r\n\r\n", &h, &v), GATE_HEAD_PASS);
    assert_false(h.probe);
    assert_int_equal(CHECK_STR("GET /healthzz HTTP/1.1\r\n\r\n", &h, &v), GATE_HEAD_PASS);
    assert_false(h.probe);
    assert_int_equal(CHECK_STR("GET /v1/messages HTTP/1.1\r\n\r\n", &h, &v), GATE_HEAD_PASS);
    assert_true(h.messages);
    assert_int_equal(CHECK_STR("GET /messages/count_tokens HTTP/1.1\r\n\r\n", &h, &v), GATE_HEAD_PASS);
    assert_true(h.messages);
    assert_int_equal(CHECK_STR("GET /v1/messagesx HTTP/1.1\r\n\r\n", &h, &v), GATE_HEAD_PASS);
    assert_false(h.messages);
    /* the door is known once the request line is: refusals use its shape */
    assert_int_equal(CHECK_STR("POST /v1/messages HTTP/1.1\r\nX : y\r\n\r\n", &h, &v),
                     GATE_HEAD_REFUSE);
    assert_true(h.messages);
}

static void test_smuggling_refused(void **state)
{
    (void)state;
    REFUSED("POST /x HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
            "conflicting_framing");
    REFUSED("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400,
            "conflicting_framing");
    REFUSED("POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\n", 400,
            "conflicting_content_length");
    REFUSED("POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            400, "conflicting_content_length");
}

static void test_content_length_values(void **state)
{
    static const char *const bad[] = {"-1", "0, 45", "45, 45", "abc", "", "5 ", "+5", "0x10", "1e3", "1 2"};
    char req[128];
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int n = snprintf(req, sizeof req, "POST /x HTTP/1.1\r\nContent-Length: %s\r\n\r\n", bad[i]);
        expect_refusal(req, (size_t)n, 400, "invalid_content_length");
    }
    REFUSED("POST /x HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n", 413, "request_too_large");
    REFUSED("POST /x HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n", 413, "request_too_large");
    {
        gate_head_t h;
        gate_verdict_t v;
        /* over max_body_bytes: the request's own 413 (server.c), counted */
        assert_int_equal(CHECK_STR("POST /x HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", &h, &v),
                         GATE_HEAD_PASS);
        assert_int_equal(CHECK_STR("POST /x HTTP/1.1\r\nContent-Length: 65536\r\n\r\n", &h, &v),
                         GATE_HEAD_PASS);
        assert_int_equal(CHECK_STR("POST /x HTTP/1.1\r\nContent-Length: 00000000000000000000065\r\n\r\n",
                                   &h, &v),
                         GATE_HEAD_PASS);
    }
}

static void test_transfer_encodings(void **state)
{
    (void)state;
    REFUSED("POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "invalid_transfer_encoding");
    REFUSED("POST /x HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 400, "invalid_transfer_encoding");
    REFUSED("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400, "invalid_transfer_encoding");
    REFUSED("POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
            "unsupported_transfer_encoding");
    REFUSED("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400,
            "invalid_transfer_encoding");
    REFUSED("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked \r\n\r\n", 400, "invalid_transfer_encoding");
    REFUSED("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400,
            "invalid_transfer_encoding");
    REFUSED("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
            "invalid_transfer_encoding");
    REFUSED("POST /x HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n", 400, "invalid_transfer_encoding");
    REFUSED("POST /x HTTP/1.1\r\nTransfer-Encoding: a/b\r\n\r\n", 400, "invalid_transfer_encoding");
    REFUSED("POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "invalid_transfer_encoding");
}

static void test_request_lines(void **state)
{
    (void)state;
    REFUSED("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "http_version_not_supported");
    REFUSED("GET / HTTP/2.0\r\n\r\n", 505, "http_version_not_supported");
    REFUSED("GET / HTTP/0.9\r\n\r\n", 505, "http_version_not_supported");
    REFUSED("GET /\r\n\r\n", 400, "malformed_request");
    REFUSED("GET / HTTP/1.1 \r\n\r\n", 400, "malformed_request");
    REFUSED("GET / HTTP/11\r\n\r\n", 400, "malformed_request");
    REFUSED("GET  / HTTP/1.1\r\n\r\n", 400, "malformed_request");
    REFUSED("GET /a b HTTP/1.1\r\n\r\n", 400, "malformed_request");
    REFUSED(" GET / HTTP/1.1\r\n\r\n", 400, "malformed_request");
    REFUSED("G@T / HTTP/1.1\r\n\r\n", 400, "malformed_request");
    REFUSED("GET /\xc3\xa9 HTTP/1.1\r\n\r\n", 400, "malformed_request");
    REFUSED("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n", 400, "malformed_request");
    REFUSED("GET / HTTP/1.1\rX\r\n\r\n", 400, "malformed_request");
}

static void test_header_lines(void **state)
{
    (void)state;
    REFUSED("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "malformed_request");
    REFUSED("GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", 400, "malformed_request");
    REFUSED("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400, "malformed_request");
    REFUSED("GET / HTTP/1.1\r\nno colon\r\n\r\n", 400, "malformed_request");
    REFUSED("GET / HTTP/1.1\r\n: x\r\n\r\n", 400, "malformed_request");
    REFUSED("GET / HTTP/1.1\r\nA\"b: x\r\n\r\n", 400, "malformed_request");
    REFUSED("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", 400, "malformed_request");
    REFUSED("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 400, "malformed_request");
    expect_refusal("GET / HTTP/1.1\r\nA: b\0c\r\n\r\n", 26, 400, "malformed_request");
}

/* A head fed a byte at a time: the same verdicts, and garbage refused on
 * its first byte rather than at the deadline. */
static void test_incremental(void **state)
{
    static const char good[] = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                               "Content-Length: 2\r\n\r\n{}";
    gate_head_t h;
    gate_verdict_t v;
    enum gate_head_result r = GATE_HEAD_MORE;
    size_t n;
    (void)state;
    memset(&h, 0, sizeof h);
    for (n = 1; n <= sizeof good - 1 && r == GATE_HEAD_MORE; n++)
        r = gate_head_check(&h, good, n, false, &LIM, &v);
    assert_int_equal(r, GATE_HEAD_PASS);
    assert_int_equal(h.head_len, sizeof good - 3);
    assert_int_equal(n - 1, sizeof good - 3); /* passed on its blank line's LF */

    memset(&h, 0, sizeof h);
    assert_int_equal(gate_head_check(&h, "\x16", 1, false, &LIM, &v), GATE_HEAD_REFUSE);
    memset(&h, 0, sizeof h);
    assert_int_equal(gate_head_check(&h, "GET /\x01", 6, false, &LIM, &v), GATE_HEAD_REFUSE);
    memset(&h, 0, sizeof h);
    assert_int_equal(gate_head_check(&h, "GET / HTTP/1.1\r\n ", 17, false, &LIM, &v),
                     GATE_HEAD_REFUSE);
    /* a CR at the end may be followed by its LF */
    memset(&h, 0, sizeof h);
    assert_int_equal(gate_head_check(&h, "GET / HTTP/1.1\r", 15, false, &LIM, &v), GATE_HEAD_MORE);
    assert_int_equal(gate_head_check(&h, "GET / HTTP/1.1\rX", 16, false, &LIM, &v),
                     GATE_HEAD_REFUSE);
    /* the client half-closed: an incomplete head will never complete */
    memset(&h, 0, sizeof h);
    assert_int_equal(gate_head_check(&h, "GET / HTTP/1.1\r\nHost: x\r\n", 25, true, &LIM, &v),
                     GATE_HEAD_REFUSE);
    assert_int_equal(v.status, 400);
    assert_non_null(strstr(v.message, "closed"));
}

static void test_sizes(void **state)
{
    gate_limits_t lim = {1024, 65536};
    char buf[4096];
    gate_head_t h;
    gate_verdict_t v;
    size_t n;
    (void)state;
    /* the request line alone over the limit: 414 before its end */
    n = (size_t)snprintf(buf, sizeof buf, "GET /%01100d", 0);
    memset(&h, 0, sizeof h);
    assert_int_equal(gate_head_check(&h, buf, n, false, &lim, &v), GATE_HEAD_REFUSE);
    assert_int_equal(v.status, 414);
    /* fields: charged text + 4 + 64 each, as server.c counts them */
    memset(&h, 0, sizeof h);
    n = (size_t)snprintf(buf, sizeof buf, "GET /x HTTP/1.1\r\n");
    for (int i = 0; i < 13; i++) /* 13 x (3 + 1 + 4 + 64) = 936, + 3 + 2 + 14 = 955 */
        n += (size_t)snprintf(buf + n, sizeof buf - n, "X%02d: v\r\n", i);
    n += (size_t)snprintf(buf + n, sizeof buf - n, "\r\n");
    assert_int_equal(gate_head_check(&h, buf, n, false, &lim, &v), GATE_HEAD_PASS);
    memset(&h, 0, sizeof h);
    n -= 2;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "X99: v\r\n\r\n"); /* 955 + 72 = 1027 */
    assert_int_equal(gate_head_check(&h, buf, n, false, &lim, &v), GATE_HEAD_REFUSE);
    assert_int_equal(v.status, 431);
    assert_non_null(strstr(v.message, "take 1027 bytes"));
    assert_non_null(strstr(v.message, "64 bytes per field"));
    /* a partial field too long for the limit: refused before its end */
    memset(&h, 0, sizeof h);
    n = (size_t)snprintf(buf, sizeof buf, "GET /x HTTP/1.1\r\nX-Big: %01100d", 0);
    assert_int_equal(gate_head_check(&h, buf, n, false, &lim, &v), GATE_HEAD_REFUSE);
    assert_int_equal(v.status, 431);
    /* a request line of many empty arguments is charged at least its length,
     * so it gets the same verdict whole and trickled in (fuzz_gate_head found
     * a 209-byte line that passed whole under a 200-byte limit and was
     * refused when it came a byte at a time) */
    {
        gate_limits_t small = {200, 10};
        gate_verdict_t v2;
        n = (size_t)snprintf(buf, sizeof buf, "HEAD /x?%0180d&&&&&&&&&&&&&&&& HTTP/1.1\r\n\r\n", 0);
        for (size_t i = 8; i < 8 + 180; i++)
            buf[i] = '&';
        memset(&h, 0, sizeof h);
        assert_int_equal(gate_head_check(&h, buf, n, false, &small, &v), GATE_HEAD_REFUSE);
        assert_int_equal(v.status, 414);
        memset(&h, 0, sizeof h);
        enum gate_head_result r = GATE_HEAD_MORE;
        for (size_t k = 1; k <= n && r == GATE_HEAD_MORE; k++)
            r = gate_head_check(&h, buf, k, false, &small, &v2);
        assert_int_equal(r, GATE_HEAD_REFUSE);
        assert_int_equal(v2.status, 414);
    }
    /* query arguments and cookies are charged as entries too */
    memset(&h, 0, sizeof h);
    n = (size_t)snprintf(buf, sizeof buf, "GET /x?%s HTTP/1.1\r\n\r\n",
                         "a&a&a&a&a&a&a&a&a&a&a&a&a&a&a&a");
    assert_int_equal(gate_head_check(&h, buf, n, false, &lim, &v), GATE_HEAD_REFUSE);
    assert_int_equal(v.status, 431);
    memset(&h, 0, sizeof h);
    n = (size_t)snprintf(buf, sizeof buf, "GET /x HTTP/1.1\r\nCookie: %s\r\n\r\n",
                         "a=1; b=2; c=3; d=4; e=5; f=6; g=7; h=8; i=9; j=1; k=2; l=3; m=4; n=5");
    assert_int_equal(gate_head_check(&h, buf, n, false, &lim, &v), GATE_HEAD_REFUSE);
    assert_int_equal(v.status, 431);
}

/* The framing rules on fields libmicrohttpd parsed (kept-alive requests). */
static void test_fields_api(void **state)
{
    gate_head_t h;
    gate_verdict_t v;
    (void)state;
    memset(&h, 0, sizeof h);
    assert_int_equal(gate_head_field(&h, "Host", 4, "x", 1, &v), GATE_HEAD_MORE);
    assert_int_equal(gate_head_field(&h, "Content-Length", 14, "5", 1, &v), GATE_HEAD_MORE);
    assert_int_equal(gate_head_field(&h, "Transfer-Encoding", 17, "chunked", 7, &v), GATE_HEAD_MORE);
    assert_int_equal(gate_head_framing(&h, false, &LIM, &v), GATE_HEAD_REFUSE);
    assert_string_equal(v.code, "conflicting_framing");
    memset(&h, 0, sizeof h);
    assert_int_equal(gate_head_field(&h, "content-length", 14, "5", 1, &v), GATE_HEAD_MORE);
    assert_int_equal(gate_head_field(&h, "content-length", 14, "6", 1, &v), GATE_HEAD_REFUSE);
    memset(&h, 0, sizeof h);
    assert_int_equal(gate_head_field(&h, "Transfer-Encoding", 17, "gzip", 4, &v), GATE_HEAD_MORE);
    assert_int_equal(gate_head_framing(&h, false, &LIM, &v), GATE_HEAD_REFUSE);
    assert_int_equal(v.status, 400);
    memset(&h, 0, sizeof h);
    assert_int_equal(gate_head_field(&h, "Transfer-Encoding", 17, "chunked", 7, &v), GATE_HEAD_MORE);
    assert_int_equal(gate_head_framing(&h, false, &LIM, &v), GATE_HEAD_PASS);
    memset(&h, 0, sizeof h);
    assert_int_equal(gate_head_field(&h, "Transfer-Encoding", 17, "chunked", 7, &v), GATE_HEAD_MORE);
    assert_int_equal(gate_head_framing(&h, true, &LIM, &v), GATE_HEAD_REFUSE);
}

static struct sockaddr_storage addr_of(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    return ss;
}

static void test_per_address_counts(void **state)
{
    gate_ips_t *t = gate_ips_new();
    struct sockaddr_storage a = addr_of("10.0.0.1"), mapped = addr_of("::ffff:10.0.0.1"),
                            b = addr_of("2001:db8::1");
    const struct sockaddr *sa = (const struct sockaddr *)&a, *sm = (const struct sockaddr *)&mapped,
                          *sb = (const struct sockaddr *)&b;
    (void)state;
    assert_true(gate_ips_take(t, sa, 3));
    assert_true(gate_ips_take(t, sm, 3)); /* the same client */
    assert_true(gate_ips_take(t, sa, 3));
    assert_false(gate_ips_take(t, sa, 3));
    assert_int_equal(gate_ips_count(t, sa), 3);
    assert_true(gate_ips_take(t, sb, 3));
    gate_ips_give(t, sm);
    assert_true(gate_ips_take(t, sa, 3));
    for (int i = 0; i < 3; i++)
        gate_ips_give(t, sa);
    assert_int_equal(gate_ips_count(t, sa), 0);
    gate_ips_give(t, sa); /* one too many: ignored */
    assert_int_equal(gate_ips_count(t, sa), 0);
    assert_int_equal(gate_ips_count(t, sb), 1);
    gate_ips_free(t); /* frees what is left (sb) */
}

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

static void test_config_keys(void **state)
{
    config_t *cfg;
    (void)state;
    cfg = load("");
    assert_non_null(cfg);
    assert_int_equal(cfg->request_timeout_ms, 30000);
    assert_int_equal(cfg->max_connections_per_ip, 0);
    config_unref(cfg);
    cfg = load("  request_timeout_ms: 1500\n  max_connections_per_ip: 20\n");
    assert_non_null(cfg);
    assert_int_equal(cfg->request_timeout_ms, 1500);
    assert_int_equal(cfg->max_connections_per_ip, 20);
    config_unref(cfg);
    assert_null(load("  request_timeout_ms: 5\n"));
    assert_non_null(strstr(errbuf, "server.request_timeout_ms"));
    assert_non_null(strstr(errbuf, "test.yaml:3:23"));
    assert_null(load("  request_timout_ms: 5000\n"));
    assert_non_null(strstr(errbuf, "did you mean \"request_timeout_ms\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sound_heads_pass),
        cmocka_unit_test(test_head_len_probe_and_door),
        cmocka_unit_test(test_smuggling_refused),
        cmocka_unit_test(test_content_length_values),
        cmocka_unit_test(test_transfer_encodings),
        cmocka_unit_test(test_request_lines),
        cmocka_unit_test(test_header_lines),
        cmocka_unit_test(test_incremental),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_fields_api),
        cmocka_unit_test(test_per_address_counts),
        cmocka_unit_test(test_config_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
