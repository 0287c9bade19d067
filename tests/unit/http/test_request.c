/* Unit tests for src/request.c: body validation (request_parse), the
 * forwarded body (request_build_forward) and request ids. Requests are made
 * with request_new(NULL, NULL, cfg): no shard or connection is needed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "http/request.h"

static const char YAML[] =
    "providers:\n"
    "  p: {type: openai, base_url: \"http://127.0.0.1:9/v1\"}\n"
    "models:\n"
    "  small: {provider: p, model: up-small}\n"
    "  big: {provider: p, model: 'up \"big\" \\ \xc3\xa9'}\n"
    "  lonely: {provider: p}\n"
    "tiers:\n"
    "  standard: [small, big]\n"
    "routing:\n"
    "  default_tier: standard\n"
    "  routable_models: [gpt-4o]\n";

static config_t *g_cfg;

static int setup(void **state)
{
    char err[2048];
    (void)state;
    g_cfg = config_load_string("request.yaml", YAML, strlen(YAML), err, sizeof err, NULL, 0);
    if (g_cfg == NULL) {
        fprintf(stderr, "%s", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    config_unref(g_cfg);
    return 0;
}

static req_t *new_req(enum endpoint ep, const char *body, size_t len)
{
    req_t *req = request_new(NULL, NULL, g_cfg);
    assert_non_null(req);
    req->ep = ep;
    assert_int_equal(buf_append(&req->body, body, len), 0);
    return req;
}

/* Parses body for ep; returns the request (caller frees) after checking the
 * result is success. */
static req_t *parse_ok(enum endpoint ep, const char *body)
{
    req_error_t err;
    req_t *req = new_req(ep, body, strlen(body));
    memset(&err, 0, sizeof err);
    if (request_parse(req, &err, NULL) != 0)
        fail_msg("rejected (%u %s): %s\nbody: %.300s", err.status, err.code ? err.code : "-",
                 err.message, body);
    return req;
}

/* Parses body for ep, expects failure with status, code and param (NULL =
 * JSON null). */
static void parse_fail(enum endpoint ep, const char *body, size_t len, unsigned status,
                       const char *code, const char *param)
{
    req_error_t err;
    req_t *req = new_req(ep, body, len);
    memset(&err, 0, sizeof err);
    if (request_parse(req, &err, NULL) != -1) {
        request_free(req);
        fail_msg("accepted, expected %u %s: %.300s", status, code, body);
    }
    request_free(req);
    assert_int_equal(err.status, status);
    assert_non_null(err.code);
    assert_string_equal(err.code, code);
    assert_non_null(err.type);
    assert_string_equal(err.type, "invalid_request_error");
    if (param == NULL)
        assert_null(err.param);
    else {
        assert_non_null(err.param);
        assert_string_equal(err.param, param);
    }
    assert_true(strlen(err.message) > 0);
    assert_true(strlen(err.message) < sizeof err.message);
}

#define FAIL(ep, body, status, code, param) parse_fail(ep, body, strlen(body), status, code, param)

static int M(const char *name)
{
    return config_find_model(g_cfg, name);
}

#define CHAT_MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

/* ---- request_new / request_free ---- */

static void test_request_new_without_shard(void **state)
{
    req_t *req;
    (void)state;
    assert_int_equal(atomic_load(&g_cfg->refs), 1);
    req = request_new(NULL, NULL, g_cfg);
    assert_non_null(req);
    assert_null(req->shard);
    assert_null(req->conn);
    assert_ptr_equal(req->cfg, g_cfg);
    assert_int_equal(atomic_load(&g_cfg->refs), 2);
    assert_int_equal(req->model, -1);
    assert_true(req->cost_usd < 0);
    assert_int_equal(req->body.cap, g_cfg->max_body_bytes);
    assert_int_equal(buf_len(&req->body), 0);
    assert_null(req->fwd_body);
    request_free(req);
    assert_int_equal(atomic_load(&g_cfg->refs), 1);
    request_free(NULL);
}

/* ---- request_parse ---- */

static void test_valid_chat(void **state)
{
    const char *body = "{\"model\":\"auto\"," CHAT_MSGS "}";
    req_t *req;
    (void)state;
    req = parse_ok(EP_CHAT, body);
    assert_false(req->stream);
    assert_false(req->want_base64);
    assert_int_equal(req->model_span.off, 9);
    assert_int_equal(req->model_span.len, 6);
    assert_int_equal(req->route.tier, config_find_tier(g_cfg, "standard"));
    assert_int_equal(req->route.n, 2);
    assert_int_equal(req->route.chain[0], M("small"));
    assert_int_equal(req->route.chain[1], M("big"));
    request_free(req);

    /* a model name: that model first */
    req = parse_ok(EP_CHAT, "{\"model\":\"big\",\"stream\":true," CHAT_MSGS "}");
    assert_true(req->stream);
    assert_int_equal(req->route.n, 2);
    assert_int_equal(req->route.chain[0], M("big"));
    assert_int_equal(req->route.chain[1], M("small"));
    request_free(req);

    /* routable name, stream null/false, extra unknown fields and a system message */
    req = parse_ok(EP_CHAT, "{\"stream\":null,\"model\":\"gpt-4o\",\"temperature\":0.2,"
                            "\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
                            "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}],"
                            "\"tools\":[{\"model\":\"not this one\"}]}");
    assert_false(req->stream);
    assert_int_equal(req->route.chain[0], M("small"));
    request_free(req);

    req = parse_ok(EP_CHAT, "{\"model\":\"lonely\",\"stream\":false," CHAT_MSGS "}");
    assert_false(req->stream);
    assert_int_equal(req->route.n, 1);
    assert_int_equal(req->route.tier, -1);
    assert_int_equal(req->route.chain[0], M("lonely"));
    request_free(req);
}

static void test_invalid_json(void **state)
{
    (void)state;
    FAIL(EP_CHAT, "{\"model\":", 400, "invalid_json", NULL);
    FAIL(EP_CHAT, "{\"model\":\"auto\",}", 400, "invalid_json", NULL);
    FAIL(EP_CHAT, "not json", 400, "invalid_json", NULL);
    FAIL(EP_CHAT, "{'model':'auto'}", 400, "invalid_json", NULL);
    parse_fail(EP_CHAT, "", 0, 400, "invalid_json", NULL);
}

/* A valid object followed by more bytes is not valid JSON. */
static void test_trailing_garbage_rejected(void **state)
{
    (void)state;
    FAIL(EP_CHAT, "{\"model\":\"auto\"," CHAT_MSGS "}}", 400, "invalid_json", NULL);
    FAIL(EP_CHAT, "{\"model\":\"auto\"," CHAT_MSGS "} {\"model\":\"big\"}", 400, "invalid_json",
         NULL);
}

static void test_top_level_not_object(void **state)
{
    (void)state;
    FAIL(EP_CHAT, "[{\"model\":\"auto\"," CHAT_MSGS "}]", 400, "invalid_json", NULL);
    FAIL(EP_CHAT, "\"auto\"", 400, "invalid_json", NULL);
    FAIL(EP_CHAT, "42", 400, "invalid_json", NULL);
    FAIL(EP_CHAT, "null", 400, "invalid_json", NULL);
}

static void test_model_missing_or_wrong_type(void **state)
{
    (void)state;
    FAIL(EP_CHAT, "{" CHAT_MSGS "}", 400, "missing_required_parameter", "model");
    FAIL(EP_CHAT, "{\"Model\":\"auto\"," CHAT_MSGS "}", 400, "missing_required_parameter", "model");
    FAIL(EP_CHAT, "{\"model\":42," CHAT_MSGS "}", 400, "invalid_type", "model");
    FAIL(EP_CHAT, "{\"model\":null," CHAT_MSGS "}", 400, "invalid_type", "model");
    FAIL(EP_CHAT, "{\"model\":[\"auto\"]," CHAT_MSGS "}", 400, "invalid_type", "model");
    FAIL(EP_CHAT, "{\"model\":{\"name\":\"auto\"}," CHAT_MSGS "}", 400, "invalid_type", "model");
    FAIL(EP_CHAT, "{\"model\":\"\"," CHAT_MSGS "}", 400, "invalid_type", "model");
}

/* Parses body for ep, expects 400 invalid_json (param null) with a message
 * containing every one of the NULL-terminated strings that follow. */
static void expect_invalid_json(enum endpoint ep, const char *body, size_t len, ...)
{
    req_error_t err;
    req_t *req = new_req(ep, body, len);
    va_list ap;
    const char *want;
    memset(&err, 0, sizeof err);
    if (request_parse(req, &err, NULL) != -1) {
        request_free(req);
        fail_msg("accepted: %.*s", (int)len, body);
    }
    request_free(req);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.code, "invalid_json");
    assert_string_equal(err.type, "invalid_request_error");
    assert_null(err.param);
    va_start(ap, len);
    while ((want = va_arg(ap, const char *)) != NULL)
        if (strstr(err.message, want) == NULL)
            fail_msg("message \"%s\" lacks \"%s\"", err.message, want);
    va_end(ap);
}

#define BADJSON(ep, body, ...) expect_invalid_json(ep, body, sizeof body - 1, __VA_ARGS__, NULL)

/* A duplicate top-level key is read first-wins by cJSON and last-wins by
 * most providers: the router and the provider would act on different
 * requests. Every repeated key is refused, whatever the endpoint. */
static void test_duplicate_model_keys(void **state)
{
    (void)state;
    BADJSON(EP_CHAT, "{\"model\":\"auto\"," CHAT_MSGS ",\"model\":\"big\"}", "\"model\"", "byte 60");
}

static void test_duplicate_keys_rejected_everywhere(void **state)
{
    (void)state;
    BADJSON(EP_CHAT, "{\"model\":\"auto\"," CHAT_MSGS ",\"stream\":false,\"stream\":true}",
            "repeats the key \"stream\"");
    BADJSON(EP_CHAT,
            "{\"model\":\"auto\"," CHAT_MSGS ",\"temperature\":0,\"temperature\":1.5}",
            "\"temperature\"");
    BADJSON(EP_CHAT, "{\"model\":\"auto\"," CHAT_MSGS ",\"stream\":false,\"str\\u0065am\":true}",
            "str\\u0065am");
    BADJSON(EP_CHAT,
            "{\"model\":\"auto\"," CHAT_MSGS
            ",\"stream\":true,\"stream_options\":{\"include_usage\":false,\"include_usage\":true}}",
            "include_usage");
    BADJSON(EP_CHAT,
            "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"role\":\"system\","
            "\"content\":\"hi\"}]}",
            "\"role\"");
    BADJSON(EP_COMPLETIONS, "{\"model\":\"auto\",\"prompt\":\"a\",\"prompt\":\"b\"}", "\"prompt\"");
    BADJSON(EP_EMBEDDINGS, "{\"model\":\"auto\",\"input\":\"a\",\"encoding_format\":\"float\","
            "\"encoding_format\":\"base64\"}", "encoding_format");
}

/* "mod\u0065l" is the key "model" once decoded: a body with both spellings
 * has two model keys. cJSON (here) takes the first, many upstream parsers the
 * last, so accepting it would let a client choose the upstream model past the
 * router. It must be rejected like any duplicate. */
static void test_escaped_duplicate_model_key_rejected(void **state)
{
    (void)state;
    BADJSON(EP_CHAT, "{\"model\":\"auto\"," CHAT_MSGS ",\"mod\\u0065l\":\"some-other-model\"}",
            "mod\\u0065l");
    /* alone, the escaped spelling would escape the splice: refused too */
    FAIL(EP_CHAT, "{\"mod\\u0065l\":\"auto\"," CHAT_MSGS "}", 400, "invalid_value", "model");
}

/* cJSON skips any byte <= 0x20 as whitespace; the splice that rewrites
 * "model" (and a provider) do not. Only SP, HT, LF and CR are whitespace. */
static void test_control_bytes_between_tokens_rejected(void **state)
{
    (void)state;
    BADJSON(EP_CHAT, "{\"model\" :\x01\x01 \"auto\", " CHAT_MSGS "}", "control character",
            "0x01", "byte 10");
    BADJSON(EP_CHAT, "{\"model\":\"auto\",\x0b" CHAT_MSGS "}", "0x0B", "byte 16");
    BADJSON(EP_COMPLETIONS, "{\"model\":\"auto\",\"prompt\":\"x\"\x1f}", "0x1F");
    BADJSON(EP_EMBEDDINGS, "\x7f{\"model\":\"auto\",\"input\":\"x\"}", "0x7F", "byte 0");
    expect_invalid_json(EP_CHAT, "{\"model\":\"auto\"," CHAT_MSGS "}\0", 61, "0x00", "byte 60", NULL);
}

static void test_messages_validation(void **state)
{
    (void)state;
    FAIL(EP_CHAT, "{\"model\":\"auto\"}", 400, "missing_required_parameter", "messages");
    FAIL(EP_CHAT, "{\"model\":\"auto\",\"messages\":[]}", 400, "invalid_value", "messages");
    FAIL(EP_CHAT, "{\"model\":\"auto\",\"messages\":\"hi\"}", 400, "invalid_value", "messages");
    FAIL(EP_CHAT, "{\"model\":\"auto\",\"messages\":{\"role\":\"user\"}}", 400, "invalid_value",
         "messages");
    FAIL(EP_CHAT, "{\"model\":\"auto\",\"messages\":null}", 400, "invalid_value", "messages");
    /* each message: an object with a string role */
    FAIL(EP_CHAT, "{\"model\":\"auto\",\"messages\":[{\"content\":\"hi\"}]}", 400, "invalid_value",
         "messages");
    FAIL(EP_CHAT,
         "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"content\":\"b\"}]}",
         400, "invalid_value", "messages");
    FAIL(EP_CHAT, "{\"model\":\"auto\",\"messages\":[{\"role\":7}]}", 400, "invalid_value",
         "messages");
    FAIL(EP_CHAT, "{\"model\":\"auto\",\"messages\":[\"user\"]}", 400, "invalid_value", "messages");
    FAIL(EP_CHAT, "{\"model\":\"auto\",\"messages\":[[{\"role\":\"user\"}]]}", 400, "invalid_value",
         "messages");
}

static void test_stream_must_be_boolean(void **state)
{
    (void)state;
    FAIL(EP_CHAT, "{\"model\":\"auto\",\"stream\":\"true\"," CHAT_MSGS "}", 400, "invalid_type",
         "stream");
    FAIL(EP_CHAT, "{\"model\":\"auto\",\"stream\":1," CHAT_MSGS "}", 400, "invalid_type", "stream");
    FAIL(EP_COMPLETIONS, "{\"model\":\"auto\",\"stream\":{},\"prompt\":\"x\"}", 400, "invalid_type",
         "stream");
}

static void test_completions(void **state)
{
    req_t *req;
    (void)state;
    FAIL(EP_COMPLETIONS, "{\"model\":\"auto\"}", 400, "missing_required_parameter", "prompt");
    /* messages are not what completions need */
    FAIL(EP_COMPLETIONS, "{\"model\":\"auto\"," CHAT_MSGS "}", 400, "missing_required_parameter",
         "prompt");
    req = parse_ok(EP_COMPLETIONS, "{\"model\":\"small\",\"prompt\":\"Once\",\"stream\":true}");
    assert_true(req->stream);
    assert_int_equal(req->route.chain[0], M("small"));
    request_free(req);
    req = parse_ok(EP_COMPLETIONS, "{\"model\":\"auto\",\"prompt\":[\"a\",\"b\"]}");
    request_free(req);
}

static void test_embeddings(void **state)
{
    req_t *req;
    (void)state;
    FAIL(EP_EMBEDDINGS, "{\"model\":\"auto\"}", 400, "missing_required_parameter", "input");
    FAIL(EP_EMBEDDINGS, "{\"model\":\"auto\",\"prompt\":\"x\"}", 400, "missing_required_parameter",
         "input");
    req = parse_ok(EP_EMBEDDINGS, "{\"model\":\"auto\",\"input\":\"hello\"}");
    assert_false(req->want_base64);
    assert_false(req->stream);
    request_free(req);
    req = parse_ok(EP_EMBEDDINGS,
                   "{\"model\":\"auto\",\"input\":[\"a\",\"b\"],\"encoding_format\":\"base64\"}");
    assert_true(req->want_base64);
    request_free(req);
    req = parse_ok(EP_EMBEDDINGS, "{\"model\":\"auto\",\"input\":\"a\",\"encoding_format\":\"float\"}");
    assert_false(req->want_base64);
    request_free(req);
    /* embeddings never stream */
    req = parse_ok(EP_EMBEDDINGS, "{\"model\":\"auto\",\"input\":\"a\",\"stream\":true}");
    assert_false(req->stream);
    request_free(req);
}

static void test_unknown_model(void **state)
{
    req_error_t err;
    const char *body = "{\"model\":\"gpt-5-ultra\"," CHAT_MSGS "}";
    req_t *req = new_req(EP_CHAT, body, strlen(body));
    (void)state;
    assert_int_equal(request_parse(req, &err, NULL), -1);
    request_free(req);
    assert_int_equal(err.status, 404);
    assert_string_equal(err.code, "model_not_found");
    assert_string_equal(err.param, "model");
    assert_string_equal(err.type, "invalid_request_error");
    assert_non_null(strstr(err.message, "gpt-5-ultra"));
    /* it lists the known names: auto, tiers and models */
    assert_non_null(strstr(err.message, "auto"));
    assert_non_null(strstr(err.message, "standard"));
    assert_non_null(strstr(err.message, "small"));
    assert_non_null(strstr(err.message, "big"));
    assert_non_null(strstr(err.message, "lonely"));
}

static void test_unknown_model_long_name(void **state)
{
    char body[2048], name[1001];
    req_error_t err;
    req_t *req;
    (void)state;
    memset(name, 'z', 1000);
    name[1000] = '\0';
    snprintf(body, sizeof body, "{\"model\":\"%s\"," CHAT_MSGS "}", name);
    req = new_req(EP_CHAT, body, strlen(body));
    assert_int_equal(request_parse(req, &err, NULL), -1);
    request_free(req);
    assert_int_equal(err.status, 404);
    assert_true(strlen(err.message) < sizeof err.message);
    assert_non_null(strstr(err.message, "zzzz"));
    /* the echoed name is bounded; the known names still fit */
    assert_null(strstr(err.message, name));
    assert_non_null(strstr(err.message, "lonely"));
}

static void test_deep_nesting(void **state)
{
    const size_t depth = 100000;
    const char *pre = "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":";
    const char *post = "}]}";
    size_t len = strlen(pre) + 2 * depth + strlen(post), o = 0;
    char *body = malloc(len);
    (void)state;
    assert_non_null(body);
    memcpy(body, pre, strlen(pre));
    o = strlen(pre);
    memset(body + o, '[', depth);
    memset(body + o + depth, ']', depth);
    o += 2 * depth;
    memcpy(body + o, post, strlen(post));
    parse_fail(EP_CHAT, body, len, 400, "invalid_json", NULL);
    /* nesting at the very top */
    memset(body, '[', depth);
    memset(body + depth, ']', depth);
    parse_fail(EP_CHAT, body, 2 * depth, 400, "invalid_json", NULL);
    memset(body, '{', depth);
    parse_fail(EP_CHAT, body, depth, 400, "invalid_json", NULL);
    free(body);
}

/* Invalid UTF-8 used to be forwarded as is and keyed in the cache as
 * U+FFFD, so "secret \xfe" was answered from the entry of "secret \xff".
 * It is refused, wherever it is. */
static void test_invalid_utf8_rejected(void **state)
{
    (void)state;
    BADJSON(EP_CHAT,
            "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"secret \xfe\"}]}",
            "invalid UTF-8", "byte 61");
    BADJSON(EP_CHAT, "{\"model\":\"auto\"," CHAT_MSGS ",\"x\":\"\xc0\xaf\"}", "invalid UTF-8");
    BADJSON(EP_CHAT, "{\"model\":\"auto\"," CHAT_MSGS ",\"x\":\"\xed\xa0\x80\"}", "invalid UTF-8");
    BADJSON(EP_CHAT, "{\"model\":\"auto\"," CHAT_MSGS ",\"\xff\":1}", "invalid UTF-8");
    BADJSON(EP_COMPLETIONS, "{\"model\":\"auto\",\"prompt\":\"\xf4\x90\x80\x80\"}", "invalid UTF-8");
    BADJSON(EP_EMBEDDINGS, "{\"model\":\"auto\",\"input\":[\"ok\",\"\xe2\x82\"]}", "invalid UTF-8");
    BADJSON(EP_CHAT, "{\"model\":\"auto\"," CHAT_MSGS ",\"x\":\"\\ud800\"}", "surrogate");
    BADJSON(EP_CHAT, "{\"model\":\"auto\"," CHAT_MSGS ",\"x\":\"a\\u0000b\"}", "\\u0000");
}

static void test_valid_utf8_and_escapes_accepted(void **state)
{
    req_t *req;
    const char *body = "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":"
                       "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \\ud83d\\ude00 \\u00e9\"}]}";
    (void)state;
    req = parse_ok(EP_CHAT, body);
    request_build_forward(req, M("small"));
    assert_non_null(memmem(req->fwd_body, req->fwd_len, "caf\xc3\xa9 \xe2\x82\xac", 9));
    request_free(req);
}

/* ---- request_build_forward ---- */

static void expect_forward(const char *body, const char *model, const char *quoted)
{
    const char *at;
    size_t pre, post, want_len;
    req_t *req = parse_ok(EP_CHAT, body);
    request_build_forward(req, M(model));
    at = body + req->model_span.off;
    pre = req->model_span.off;
    post = strlen(body) - pre - req->model_span.len;
    want_len = pre + strlen(quoted) + post;
    assert_int_equal(req->fwd_len, want_len);
    assert_memory_equal(req->fwd_body, body, pre);
    assert_memory_equal(req->fwd_body + pre, quoted, strlen(quoted));
    assert_memory_equal(req->fwd_body + pre + strlen(quoted), at + req->model_span.len, post);
    /* the client's body is untouched */
    assert_int_equal(buf_len(&req->body), strlen(body));
    assert_memory_equal(buf_ptr(&req->body), body, strlen(body));
    request_free(req);
}

static void test_forward_replaces_only_model(void **state)
{
    const char *body =
        "{ \"messages\" : [ {\"role\":\"user\",\"content\":\"h\\u00e9llo \xe2\x98\x83 \\\"model\\\": "
        "\\\"x\\\" }\"} ] ,\n\t\"model\"  :   \"auto\" ,  \"temperature\":0.50, \"n\" :1,"
        "\"meta\":{\"model\":\"inner\"}}  ";
    req_t *req;
    (void)state;
    expect_forward(body, "small", "\"up-small\"");
    /* exact expected text, spelled out */
    req = parse_ok(EP_CHAT, body);
    request_build_forward(req, M("small"));
    {
        const char *want =
            "{ \"messages\" : [ {\"role\":\"user\",\"content\":\"h\\u00e9llo \xe2\x98\x83 \\\"model\\\": "
            "\\\"x\\\" }\"} ] ,\n\t\"model\"  :   \"up-small\" ,  \"temperature\":0.50, \"n\" :1,"
            "\"meta\":{\"model\":\"inner\"}}  ";
        assert_int_equal(req->fwd_len, strlen(want));
        assert_memory_equal(req->fwd_body, want, strlen(want));
    }
    request_free(req);
}

static void test_forward_escapes_upstream_name(void **state)
{
    (void)state;
    /* big's upstream name is: up "big" \ é */
    expect_forward("{\"model\":\"big\"," CHAT_MSGS "}", "big", "\"up \\\"big\\\" \\\\ \xc3\xa9\"");
}

static void test_forward_model_first_last_and_failover(void **state)
{
    req_t *req;
    const char *body = "{" CHAT_MSGS ",\"model\":\"auto\"}";
    const char *want1 = "{" CHAT_MSGS ",\"model\":\"up-small\"}";
    const char *want2 = "{" CHAT_MSGS ",\"model\":\"lonely\"}";
    (void)state;
    expect_forward("{\"model\":\"auto\"," CHAT_MSGS "}", "small", "\"up-small\"");
    req = parse_ok(EP_CHAT, body);
    request_build_forward(req, M("small"));
    assert_int_equal(req->fwd_len, strlen(want1));
    assert_memory_equal(req->fwd_body, want1, strlen(want1));
    /* failing over rebuilds from the client's body */
    request_build_forward(req, M("lonely"));
    assert_int_equal(req->fwd_len, strlen(want2));
    assert_memory_equal(req->fwd_body, want2, strlen(want2));
    request_free(req);
}

/* ---- request_set_id ---- */

static void test_set_id_accepts_safe_ids(void **state)
{
    req_t *req = request_new(NULL, NULL, g_cfg);
    char id79[80];
    (void)state;
    request_set_id(req, "abc-DEF_1.2:3", 42);
    assert_string_equal(req->id, "abc-DEF_1.2:3");
    request_set_id(req, "x", 42);
    assert_string_equal(req->id, "x");
    memset(id79, 'a', 79);
    id79[79] = '\0';
    request_set_id(req, id79, 42);
    assert_string_equal(req->id, id79);
    request_free(req);
}

/* request.h: ids of 1 to 128 safe characters are echoed. */
static void test_set_id_accepts_128_chars(void **state)
{
    req_t *req = request_new(NULL, NULL, g_cfg);
    char id[129];
    (void)state;
    memset(id, 'b', 128);
    id[128] = '\0';
    request_set_id(req, id, 42);
    if (strcmp(req->id, id) != 0) {
        char got[sizeof req->id + 1];
        snprintf(got, sizeof got, "%s", req->id);
        request_free(req);
        fail_msg("a 128-character safe id was replaced by %s", got);
    }
    request_free(req);
}

static void test_set_id_replaces_unsafe_ids(void **state)
{
    req_t *req = request_new(NULL, NULL, g_cfg);
    char id129[130];
    static const char *const bad[] = {"has space", "new\nline", "cr\r", "", "quote\"",
                                      "semi;colon", "slash/", "\xc3\xbc", "tab\t", "a,b"};
    (void)state;
    memset(id129, 'c', 129);
    id129[129] = '\0';
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(req->id, 'Q', sizeof req->id);
        request_set_id(req, bad[i], 0x0123456789abcdefULL);
        assert_string_equal(req->id, "req_0123456789abcdef");
    }
    request_set_id(req, id129, 0x0123456789abcdefULL);
    assert_string_equal(req->id, "req_0123456789abcdef");
    request_set_id(req, NULL, 0xfedcba9876543210ULL);
    assert_string_equal(req->id, "req_fedcba9876543210");
    request_set_id(req, NULL, 0);
    assert_string_equal(req->id, "req_0000000000000000");
    request_free(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_new_without_shard),
        cmocka_unit_test(test_valid_chat),
        cmocka_unit_test(test_invalid_json),
        cmocka_unit_test(test_trailing_garbage_rejected),
        cmocka_unit_test(test_top_level_not_object),
        cmocka_unit_test(test_model_missing_or_wrong_type),
        cmocka_unit_test(test_duplicate_model_keys),
        cmocka_unit_test(test_escaped_duplicate_model_key_rejected),
        cmocka_unit_test(test_messages_validation),
        cmocka_unit_test(test_stream_must_be_boolean),
        cmocka_unit_test(test_completions),
        cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_unknown_model),
        cmocka_unit_test(test_unknown_model_long_name),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_invalid_utf8_rejected),
        cmocka_unit_test(test_valid_utf8_and_escapes_accepted),
        cmocka_unit_test(test_duplicate_keys_rejected_everywhere),
        cmocka_unit_test(test_control_bytes_between_tokens_rejected),
        cmocka_unit_test(test_forward_replaces_only_model),
        cmocka_unit_test(test_forward_escapes_upstream_name),
        cmocka_unit_test(test_forward_model_first_last_and_failover),
        cmocka_unit_test(test_set_id_accepts_safe_ids),
        cmocka_unit_test(test_set_id_accepts_128_chars),
        cmocka_unit_test(test_set_id_replaces_unsafe_ids),
    };
    return cmocka_run_group_tests_name("request", tests, setup, teardown);
}
