/* Unit tests for src/http/door_messages*.c (and door.c's names): the
 * conformance fixtures under tests/unit/http/fixtures/messages/ (see
 * door_fixture.h), then targeted cases: errors, count_tokens, pass-through
 * helpers, cut streams, the no-room path and bounded tool indexes. */
#include "door_fixture.h"

#include "http/door.h"
#include "http/door_messages.h"

static int req_fn(const char *body, size_t len, buf_t *out, req_error_t *err)
{
    dm_info_t info;
    return dm_request_to_chat(body, len, 0, out, &info, err);
}

static int answer_fn(const char *chat, size_t len, buf_t *out)
{
    return dm_answer_from_chat(chat, len, "req_1", "claude-via-router", out);
}

static void *s_new(void)
{
    return dm_stream_new("req_1", "claude-via-router", 42);
}

static int s_feed(void *s, const char *data, size_t len, buf_t *out)
{
    return dm_stream_feed(s, data, len, out);
}

static int s_finish(void *s, buf_t *out, bool *complete)
{
    return dm_stream_finish(s, out, complete);
}

static void s_free(void *s)
{
    dm_stream_free(s);
}

static void test_fixtures(void **state)
{
    door_ops_t ops = {"tests/unit/http/fixtures/messages", req_fn, answer_fn, s_new, s_feed,
                      s_finish, s_free, DM_AGAIN};
    (void)state;
    fx_run_all(&ops);
}

static int translate(const char *body, buf_t *out, dm_info_t *info, req_error_t *err)
{
    buf_reset(out);
    memset(err, 0, sizeof *err);
    return dm_request_to_chat(body, strlen(body), 0, out, info, err);
}

static void test_request_errors(void **state)
{
    buf_t out;
    dm_info_t info;
    req_error_t err;
    (void)state;
    buf_init(&out, 1 << 16);
    assert_int_equal(translate("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                               "\"hi\"}]}",
                               &out, &info, &err),
                     -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.param, "max_tokens");
    assert_int_equal(buf_len(&out), 0); /* nothing half-written */
    assert_int_equal(translate("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[]}", &out, &info,
                               &err),
                     -1);
    assert_string_equal(err.param, "messages");
    assert_int_equal(translate("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"tool\","
                               "\"content\":\"x\"}]}",
                               &out, &info, &err),
                     -1);
    assert_non_null(strstr(err.message, "messages.0"));
    /* a repeated key is refused before anything is read */
    assert_int_equal(translate("{\"model\":\"m\",\"model\":\"n\",\"max_tokens\":5,\"messages\":[]}",
                               &out, &info, &err),
                     -1);
    assert_string_equal(err.code, "invalid_json");
    assert_non_null(strstr(err.message, "model"));
    /* tool_use in a user turn */
    assert_int_equal(translate("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
                               "\"content\":[{\"type\":\"tool_use\",\"id\":\"a\",\"name\":\"f\","
                               "\"input\":{}}]}]}",
                               &out, &info, &err),
                     -1);
    assert_non_null(strstr(err.message, "messages.0.content.0"));
    /* an image without a usable source */
    assert_int_equal(translate("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
                               "\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"file\"}}]}]}",
                               &out, &info, &err),
                     -1);
    assert_int_equal(err.status, 400);
    /* the cap of out is a 413, not a crash or a half body */
    {
        buf_t tiny;
        buf_init(&tiny, 16);
        const char *body = "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":"
                           "\"user\",\"content\":\"hello there\"}]}";
        assert_int_equal(dm_request_to_chat(body, strlen(body), 0, &tiny, &info, &err), -1);
        assert_int_equal(err.status, 413);
        assert_int_equal(buf_len(&tiny), 0);
        buf_free(&tiny);
    }
    buf_free(&out);
}

static void test_unsupported_blocks(void **state)
{
    buf_t out;
    dm_info_t info;
    req_error_t err;
    (void)state;
    buf_init(&out, 1 << 16);
    assert_int_equal(translate("{\"model\":\"m\",\"max_tokens\":5,\"top_k\":3,\"messages\":[{"
                               "\"role\":\"user\",\"content\":[{\"type\":\"document\",\"source\":{}},"
                               "{\"type\":\"text\",\"text\":\"sum it up\"}]}],\"tools\":[{\"type\":"
                               "\"web_search_20250305\",\"name\":\"web_search\"}]}",
                               &out, &info, &err),
                     0);
    assert_string_equal(info.unsupported, "document");
    assert_true(info.dropped & DM_DROP_UNSUPPORTED);
    assert_true(info.dropped & DM_DROP_TOP_K);
    assert_true(dm_can_pass_through(&info));
    assert_int_equal(dm_check_translatable(&info, &err), -1);
    assert_int_equal(err.status, 400);
    assert_non_null(strstr(err.message, "document"));
    /* the text still reaches the rules; no tools were left to send */
    assert_non_null(strstr(buf_cstr(&out), "\"sum it up\""));
    assert_null(strstr(buf_cstr(&out), "\"tools\""));
    /* thinking and cache_control are documented losses, not errors */
    assert_int_equal(translate("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
                               "\"content\":[{\"type\":\"text\",\"text\":\"a\",\"cache_control\":{"
                               "\"type\":\"ephemeral\"}}]},{\"role\":\"assistant\",\"content\":[{"
                               "\"type\":\"thinking\",\"thinking\":\"t\",\"signature\":\"s\"},{"
                               "\"type\":\"text\",\"text\":\"b\"}]}]}",
                               &out, &info, &err),
                     0);
    assert_int_equal(info.dropped, DM_DROP_CACHE_CONTROL | DM_DROP_THINKING);
    assert_int_equal(dm_check_translatable(&info, &err), 0);
    assert_null(strstr(buf_cstr(&out), "signature"));
    buf_free(&out);
}

static void test_error_bodies(void **state)
{
    static const struct {
        unsigned status;
        const char *type;
    } table[] = {{400, "invalid_request_error"}, {401, "authentication_error"},
                 {403, "permission_error"},      {404, "not_found_error"},
                 {413, "request_too_large"},     {429, "rate_limit_error"},
                 {500, "api_error"},             {502, "api_error"},
                 {529, "overloaded_error"},      {422, "invalid_request_error"}};
    buf_t out;
    cJSON *v;
    (void)state;
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        assert_string_equal(dm_error_type_for_status(table[i].status), table[i].type);
    buf_init(&out, 4096);
    {
        const char *oai = "{\"error\":{\"message\":\"All upstreams failed: a, b\",\"type\":"
                          "\"server_error\",\"param\":null,\"code\":\"all_upstreams_failed\"}}";
        assert_int_equal(dm_error_from_openai(502, oai, strlen(oai), "req_9", &out), 0);
    }
    v = cJSON_Parse(buf_cstr(&out));
    assert_string_equal(cJSON_GetObjectItem(v, "type")->valuestring, "error");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(v, "error"), "type")->valuestring,
                        "api_error");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(v, "error"), "message")->valuestring,
        "All upstreams failed: a, b");
    assert_string_equal(cJSON_GetObjectItem(v, "request_id")->valuestring, "req_9");
    cJSON_Delete(v);
    /* a body of another shape is not echoed */
    buf_reset(&out);
    assert_int_equal(dm_error_from_openai(429, "<html>secret</html>", 19, NULL, &out), 0);
    assert_null(strstr(buf_cstr(&out), "secret"));
    assert_non_null(strstr(buf_cstr(&out), "rate_limit_error"));
    assert_null(strstr(buf_cstr(&out), "request_id"));
    /* out's cap: -1 and nothing left behind */
    {
        buf_t tiny;
        buf_init(&tiny, 10);
        assert_int_equal(dm_error_body(400, "x", NULL, &tiny), -1);
        assert_int_equal(buf_len(&tiny), 0);
        assert_int_equal(dm_error_event("x", &tiny), -1);
        assert_int_equal(buf_len(&tiny), 0);
        buf_free(&tiny);
    }
    /* the stream's error event: Anthropic's shape, one event */
    buf_reset(&out);
    assert_int_equal(dm_error_event("cut \"short\"", &out), 0);
    assert_string_equal(buf_cstr(&out), "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
                                        "\"api_error\",\"message\":\"cut \\\"short\\\"\"}}\n\n");
    buf_free(&out);
}

static void test_count_tokens(void **state)
{
    buf_t out;
    req_error_t err;
    cJSON *v;
    double small, big;
    const char *a = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}";
    const char *b = "{\"model\":\"m\",\"system\":\"You are a careful assistant who reads every "
                    "line.\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],\"tools\":[{"
                    "\"name\":\"get_weather\",\"description\":\"Weather for a city\","
                    "\"input_schema\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":"
                    "\"string\"}}}}]}";
    (void)state;
    buf_init(&out, 256);
    /* no max_tokens needed for counting */
    assert_int_equal(dm_count_tokens(a, strlen(a), &out, &err), 0);
    v = cJSON_Parse(buf_cstr(&out));
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(v, "input_tokens")));
    small = cJSON_GetObjectItem(v, "input_tokens")->valuedouble;
    cJSON_Delete(v);
    assert_true(small >= 2 && small < 20);
    buf_reset(&out);
    assert_int_equal(dm_count_tokens(b, strlen(b), &out, &err), 0);
    v = cJSON_Parse(buf_cstr(&out));
    big = cJSON_GetObjectItem(v, "input_tokens")->valuedouble;
    cJSON_Delete(v);
    /* the system prompt and the tool definitions count */
    assert_true(big > small + 20);
    buf_reset(&out);
    assert_int_equal(dm_count_tokens("[]", 2, &out, &err), -1);
    assert_int_equal(err.status, 400);
    buf_free(&out);
}

static void test_replace_model(void **state)
{
    buf_t out;
    const char *body = "{\"model\" : \"auto\",\"messages\":[{\"role\":\"assistant\",\"content\":[{"
                       "\"type\":\"thinking\",\"thinking\":\"x\",\"signature\":\"Ab+/=\\u00e9\"}]}]}";
    (void)state;
    buf_init(&out, 4096);
    assert_int_equal(door_replace_model(body, strlen(body), "claude-sonnet-4-5", false, &out), 0);
    /* every other byte as it was: the signature survives byte for byte */
    assert_string_equal(buf_cstr(&out),
                        "{\"model\" : \"claude-sonnet-4-5\",\"messages\":[{\"role\":\"assistant\","
                        "\"content\":[{\"type\":\"thinking\",\"thinking\":\"x\",\"signature\":"
                        "\"Ab+/=\\u00e9\"}]}]}");
    buf_reset(&out);
    assert_int_equal(door_replace_model("{\"input\":\"x\"}", 13, "m", false, &out), -1);
    buf_reset(&out);
    assert_int_equal(door_replace_model("{\"model\":\"a\",\"input\":\"x\"} ", 26, "gpt-5", true, &out),
                     0);
    assert_string_equal(buf_cstr(&out), "{\"model\":\"gpt-5\",\"input\":\"x\",\"store\":false} ");
    buf_reset(&out);
    assert_int_equal(door_replace_model("{\"model\":\"a\",\"store\":false}", 27, "b", true, &out), 0);
    assert_string_equal(buf_cstr(&out), "{\"model\":\"b\",\"store\":false}");
    buf_free(&out);
}

static void test_door_for_path(void **state)
{
    bool ct;
    (void)state;
    assert_int_equal(door_for_path("/v1/messages", &ct), DOOR_MESSAGES);
    assert_false(ct);
    assert_int_equal(door_for_path("/messages/count_tokens", &ct), DOOR_MESSAGES);
    assert_true(ct);
    assert_int_equal(door_for_path("/v1/responses", NULL), DOOR_RESPONSES);
    assert_int_equal(door_for_path("/responses", NULL), DOOR_RESPONSES);
    assert_int_equal(door_for_path("/v1/chat/completions", &ct), DOOR_CHAT);
    assert_int_equal(door_for_path("/v1/messagesx", NULL), DOOR_CHAT);
    assert_string_equal(door_name(DOOR_RESPONSES), "responses");
}

static void test_door_labels(void **state)
{
    (void)state;
    assert_string_equal(door_label(DOOR_CHAT, EP_CHAT), "chat");
    assert_string_equal(door_label(DOOR_CHAT, EP_COMPLETIONS), "completions");
    assert_string_equal(door_label(DOOR_CHAT, EP_EMBEDDINGS), "embeddings");
    assert_string_equal(door_label(DOOR_MESSAGES, EP_CHAT), "messages");
    assert_string_equal(door_label(DOOR_RESPONSES, EP_CHAT), "responses");
}

static void feed(dm_stream_t *s, const char *data, buf_t *out)
{
    assert_int_equal(dm_stream_feed(s, data, strlen(data), out), 0);
}

/* A stream cut after some text: an error event, never message_stop; the
 * daemon's own error event becomes Anthropic's, once. */
static void test_cut_streams(void **state)
{
    buf_t out;
    bool complete = true;
    dm_stream_t *s;
    (void)state;
    buf_init(&out, 1 << 16);
    s = dm_stream_new("r", "m", 10);
    feed(s, "{\"id\":\"c\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
            "\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}",
         &out);
    feed(s, "{\"error\":{\"message\":\"The upstream stream from gpt ended abnormally\",\"type\":"
            "\"server_error\",\"param\":null,\"code\":\"upstream_stream_interrupted\"}}",
         &out);
    feed(s, "[DONE]", &out); /* ignored after the end */
    assert_int_equal(dm_stream_finish(s, &out, &complete), 0);
    assert_false(complete);
    buf_cstr(&out);
    assert_non_null(strstr(buf_ptr(&out), "event: error\ndata: {\"type\":\"error\",\"error\":{"
                                          "\"type\":\"api_error\""));
    assert_null(strstr(buf_ptr(&out), "message_stop"));
    assert_null(strstr(strstr(buf_ptr(&out), "event: error") + 1, "event: error"));
    dm_stream_free(s);

    /* nothing at all, then the end: an error alone */
    buf_reset(&out);
    s = dm_stream_new("r", "m", 10);
    assert_int_equal(dm_stream_finish(s, &out, &complete), 0);
    assert_false(complete);
    assert_string_equal(buf_cstr(&out),
                        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\","
                        "\"message\":\"The upstream stream ended before the answer was "
                        "complete.\"}}\n\n");
    dm_stream_free(s);

    /* a finish_reason but no [DONE]: complete */
    buf_reset(&out);
    s = dm_stream_new("r", "m", 10);
    feed(s, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}",
         &out);
    assert_int_equal(dm_stream_finish(s, &out, &complete), 0);
    assert_true(complete);
    assert_non_null(strstr(buf_cstr(&out), "event: message_stop"));
    assert_int_equal(dm_stream_output_tokens(s), 1);
    dm_stream_free(s);
    buf_free(&out);
}

/* DM_AGAIN: nothing written, state unchanged, and feeding again works. */
static void test_no_room(void **state)
{
    buf_t out;
    dm_stream_t *s = dm_stream_new("r", "m", 1);
    const char *chunk = "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello\"}}]}";
    (void)state;
    buf_init(&out, 40);
    assert_int_equal(dm_stream_feed(s, chunk, strlen(chunk), &out), DM_AGAIN);
    assert_int_equal(buf_len(&out), 0);
    buf_free(&out);
    buf_init(&out, 4096);
    feed(s, chunk, &out);
    /* message_start came once, with the block, after the retry */
    assert_non_null(strstr(buf_cstr(&out), "event: message_start"));
    assert_null(strstr(strstr(buf_ptr(&out), "event: message_start") + 1, "event: message_start"));
    assert_non_null(strstr(buf_ptr(&out), "\"index\":0,\"delta\":{\"type\":\"text_delta\""));
    buf_free(&out);
    dm_stream_free(s);
}

/* Tool indexes beyond what is followed are dropped, never written out of
 * bounds; non-JSON data is skipped. */
static void test_tool_bounds(void **state)
{
    buf_t out;
    bool complete;
    dm_stream_t *s = dm_stream_new("r", "m", 1);
    (void)state;
    buf_init(&out, 1 << 16);
    feed(s, "not json", &out);
    assert_int_equal(buf_len(&out), 0);
    feed(s, "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":100000,\"id\":\"x\","
            "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}},{\"index\":-3}]}}]}",
         &out);
    assert_null(strstr(buf_cstr(&out), "tool_use"));
    feed(s, "[DONE]", &out);
    assert_int_equal(dm_stream_finish(s, &out, &complete), 0);
    assert_true(complete);
    dm_stream_free(s);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),        cmocka_unit_test(test_request_errors),
        cmocka_unit_test(test_unsupported_blocks), cmocka_unit_test(test_error_bodies),
        cmocka_unit_test(test_count_tokens),    cmocka_unit_test(test_replace_model),
        cmocka_unit_test(test_door_for_path),   cmocka_unit_test(test_cut_streams),
        cmocka_unit_test(test_no_room),         cmocka_unit_test(test_tool_bounds),
        cmocka_unit_test(test_door_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
