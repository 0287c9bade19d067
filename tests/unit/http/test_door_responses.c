/* Unit tests for src/http/door_responses.c and door_responses_out.c: the
 * conformance fixtures under tests/unit/http/fixtures/responses/ (see
 * door_fixture.h), then targeted cases: stateful requests refused,
 * pass-through check, sequence numbers, the held-bytes cap and the no-room
 * path. */
#include "door_fixture.h"

#include "http/door.h"
#include "http/door_responses.h"

static int req_fn(const char *body, size_t len, buf_t *out, req_error_t *err)
{
    dr_info_t info;
    return dr_request_to_chat(body, len, out, &info, err);
}

static int answer_fn(const char *chat, size_t len, buf_t *out)
{
    return dr_answer_from_chat(chat, len, "req_1", "auto", 1700000000, out);
}

static void *s_new(void)
{
    return dr_stream_new("req_1", "auto", 1700000000, 1 << 20);
}

static int s_feed(void *s, const char *data, size_t len, buf_t *out)
{
    return dr_stream_feed(s, data, len, out);
}

static int s_finish(void *s, buf_t *out, bool *complete)
{
    return dr_stream_finish(s, out, complete);
}

static void s_free(void *s)
{
    dr_stream_free(s);
}

static void test_fixtures(void **state)
{
    door_ops_t ops = {"tests/unit/http/fixtures/responses", req_fn, answer_fn, s_new, s_feed,
                      s_finish, s_free, DR_AGAIN};
    (void)state;
    fx_run_all(&ops);
}

static int translate(const char *body, buf_t *out, dr_info_t *info, req_error_t *err)
{
    buf_reset(out);
    memset(err, 0, sizeof *err);
    return dr_request_to_chat(body, strlen(body), out, info, err);
}

static void test_stateful_refused(void **state)
{
    static const struct {
        const char *body, *param;
    } cases[] = {
        {"{\"model\":\"m\",\"input\":\"hi\",\"store\":true}", "store"},
        {"{\"model\":\"m\",\"input\":\"hi\",\"previous_response_id\":\"resp_1\"}",
         "previous_response_id"},
        {"{\"model\":\"m\",\"input\":\"hi\",\"conversation\":\"conv_1\"}", "conversation"},
        {"{\"model\":\"m\",\"input\":\"hi\",\"background\":true}", "background"},
        {"{\"model\":\"m\",\"input\":\"hi\",\"prompt\":{\"id\":\"pmpt_1\"}}", "prompt"},
    };
    buf_t out;
    dr_info_t info;
    req_error_t err;
    (void)state;
    buf_init(&out, 1 << 16);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_int_equal(translate(cases[i].body, &out, &info, &err), -1);
        assert_int_equal(err.status, 400);
        assert_string_equal(err.param, cases[i].param);
        assert_non_null(strstr(err.message, cases[i].param));
        assert_non_null(strstr(err.message, "stateless"));
        assert_int_equal(buf_len(&out), 0);
        assert_int_equal(dr_pass_through_check(cases[i].body, strlen(cases[i].body), &err), -1);
    }
    /* store: false and store left out are fine; left out is noted */
    assert_int_equal(translate("{\"model\":\"m\",\"input\":\"hi\",\"store\":false}", &out, &info,
                               &err),
                     0);
    assert_false(info.store_absent);
    assert_int_equal(translate("{\"model\":\"m\",\"input\":\"hi\"}", &out, &info, &err), 0);
    assert_true(info.store_absent);
    buf_free(&out);
}

static void test_unsupported(void **state)
{
    buf_t out;
    dr_info_t info;
    req_error_t err;
    const char *web = "{\"model\":\"m\",\"input\":\"hi\",\"tools\":[{\"type\":\"web_search\"}]}";
    (void)state;
    buf_init(&out, 1 << 16);
    assert_int_equal(translate(web, &out, &info, &err), -1);
    assert_string_equal(err.param, "tools");
    assert_non_null(strstr(err.message, "'web_search'"));
    /* ... which a native Responses provider can take as is */
    assert_int_equal(dr_pass_through_check(web, strlen(web), &err), 0);
    assert_int_equal(translate("{\"model\":\"m\",\"input\":[{\"type\":\"item_reference\",\"id\":"
                               "\"x\"}]}",
                               &out, &info, &err),
                     -1);
    assert_non_null(strstr(err.message, "input[0]"));
    assert_int_equal(translate("{\"model\":\"m\",\"input\":[{\"type\":\"computer_call\"}]}", &out,
                               &info, &err),
                     -1);
    assert_non_null(strstr(err.message, "computer_call"));
    assert_int_equal(translate("{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{"
                               "\"type\":\"input_image\",\"file_id\":\"file_1\"}]}]}",
                               &out, &info, &err),
                     -1);
    assert_non_null(strstr(err.message, "file_id"));
    assert_int_equal(translate("{\"model\":\"m\"}", &out, &info, &err), -1);
    assert_string_equal(err.param, "input");
    assert_int_equal(translate("{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":"
                               "\"json_schema\"}}}",
                               &out, &info, &err),
                     -1);
    assert_string_equal(err.param, "text.format");
    assert_int_equal(translate("{\"model\":\"m\",\"input\":[{\"type\":\"reasoning\",\"id\":\"rs\","
                               "\"summary\":[]}]}",
                               &out, &info, &err),
                     -1);
    buf_free(&out);
}

static void feed(dr_stream_t *s, const char *data, buf_t *out)
{
    assert_int_equal(dr_stream_feed(s, data, strlen(data), out), 0);
}

/* sequence_number starts at 0 and grows by one per event, failure included. */
static void test_sequence_numbers(void **state)
{
    static fx_event_t ev[FX_MAX_EVENTS];
    buf_t out;
    bool complete = true;
    size_t n;
    dr_stream_t *s = dr_stream_new("r", "m", 1, 1 << 16);
    (void)state;
    buf_init(&out, 1 << 16);
    feed(s, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}", &out);
    feed(s, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}", &out);
    assert_int_equal(dr_stream_finish(s, &out, &complete), 0);
    assert_false(complete);
    n = fx_events(buf_ptr(&out), buf_len(&out), ev, FX_MAX_EVENTS);
    assert_true(n >= 6);
    for (size_t i = 0; i < n; i++) {
        cJSON *d = cJSON_Parse(ev[i].data);
        assert_int_equal(cJSON_GetObjectItem(d, "sequence_number")->valuedouble, (double)i);
        cJSON_Delete(d);
    }
    assert_string_equal(ev[n - 2].name, "response.failed");
    assert_string_equal(ev[n - 1].name, "error");
    /* no [DONE] on this door */
    assert_null(strstr(buf_cstr(&out), "[DONE]"));
    fx_events_free(ev, n);
    dr_stream_free(s);
    buf_free(&out);
}

/* More than max_held bytes to keep: response.failed, not a silent cut. */
static void test_held_cap(void **state)
{
    buf_t out;
    bool complete = true;
    char chunk[256];
    dr_stream_t *s = dr_stream_new("r", "m", 1, 100);
    (void)state;
    buf_init(&out, 1 << 16);
    snprintf(chunk, sizeof chunk, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%080d\"}}]}", 7);
    feed(s, chunk, &out);
    assert_null(strstr(buf_cstr(&out), "response.failed"));
    feed(s, chunk, &out);
    assert_non_null(strstr(buf_cstr(&out), "event: response.failed"));
    assert_non_null(strstr(buf_ptr(&out), "response_too_large"));
    feed(s, "[DONE]", &out);
    assert_null(strstr(buf_cstr(&out), "response.completed"));
    assert_int_equal(dr_stream_finish(s, &out, &complete), 0);
    assert_false(complete);
    dr_stream_free(s);
    buf_free(&out);
}

static void test_no_room(void **state)
{
    buf_t out;
    bool complete;
    dr_stream_t *s = dr_stream_new("r", "m", 1, 1 << 16);
    const char *c1 = "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello\"}}]}";
    const char *c2 = "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":"
                     "\"call_1\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
                     "\"finish_reason\":\"tool_calls\"}]}";
    (void)state;
    buf_init(&out, 1 << 16);
    feed(s, c1, &out);
    buf_free(&out);
    /* closing the message and opening the call does not fit: undone */
    buf_init(&out, 300);
    assert_int_equal(dr_stream_feed(s, c2, strlen(c2), &out), DR_AGAIN);
    assert_int_equal(buf_len(&out), 0);
    buf_free(&out);
    buf_init(&out, 1 << 16);
    feed(s, c2, &out);
    feed(s, "[DONE]", &out);
    assert_int_equal(dr_stream_finish(s, &out, &complete), 0);
    assert_true(complete);
    buf_cstr(&out);
    /* the text was kept whole through the undone step */
    assert_non_null(strstr(buf_ptr(&out), "\"type\":\"response.output_text.done\""));
    assert_non_null(strstr(buf_ptr(&out), "\"text\":\"hello\""));
    assert_non_null(strstr(buf_ptr(&out), "\"call_id\":\"call_1\""));
    dr_stream_free(s);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),         cmocka_unit_test(test_stateful_refused),
        cmocka_unit_test(test_unsupported),      cmocka_unit_test(test_sequence_numbers),
        cmocka_unit_test(test_held_cap),         cmocka_unit_test(test_no_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
