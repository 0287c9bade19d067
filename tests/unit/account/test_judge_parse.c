/* Unit tests for src/account/judge_parse.c: the judge's answer read as a
 * score, the prompt's truncation, a sample's hard failure. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account/judge_parse.h"

static int parse(const char *t, char *reason)
{
    int s = -1;
    char r[64];
    if (judge_parse_score(t, &s, r, sizeof r) < 0)
        return -1;
    if (reason != NULL)
        snprintf(reason, 64, "%s", r);
    return s;
}

static void test_json_answers(void **state)
{
    char r[64];
    (void)state;
    assert_int_equal(parse("{\"score\": 7, \"reason\": \"mostly right\"}", r), 7);
    assert_string_equal(r, "mostly right");
    assert_int_equal(parse("```json\n{\"score\":9,\"reason\":\"good\"}\n```", r), 9);
    assert_string_equal(r, "good");
    assert_int_equal(parse("Here you go: {\"score\": \"4\"} done", r), 4);
    assert_string_equal(r, "");
    assert_int_equal(parse("{\"score\": 6.6, \"reason\": \"x\\ny\"}", r), 7); /* rounded */
    assert_string_equal(r, "x"); /* one line */
    assert_int_equal(parse("{\"score\": 0}", NULL), -1);  /* out of range */
    assert_int_equal(parse("{\"score\": 11}", NULL), -1);
    assert_int_equal(parse("{\"grade\": 5}", NULL), -1);
}

static void test_text_answers(void **state)
{
    char r[64];
    (void)state;
    assert_int_equal(parse("Score: 7 \xe2\x80\x94 clear and correct", r), 7);
    assert_string_equal(r, "clear and correct");
    assert_int_equal(parse("score=3/10. Wrong unit.", r), 3);
    assert_string_equal(r, "Wrong unit.");
    assert_int_equal(parse("**Score**: 8\nreason on the next line", r), 8);
    assert_int_equal(parse("8/10 - fine", r), 8);
    assert_string_equal(r, "fine");
    assert_int_equal(parse("10", NULL), 10);
    assert_int_equal(parse("I would rather not grade this.", NULL), -1);
    assert_int_equal(parse("3/5", NULL), -1); /* not out of 10 */
    assert_int_equal(parse("42 is the answer", NULL), -1);
    assert_int_equal(parse("", NULL), -1);
    assert_int_equal(judge_parse_score(NULL, &(int){0}, r, sizeof r), -1);
}

static void test_reason_capped_on_utf8(void **state)
{
    int s;
    char r[8];
    (void)state;
    /* "aaaaaa" then e-acute (2 bytes): 7 bytes room cut before the sequence */
    assert_int_equal(judge_parse_score("{\"score\":5,\"reason\":\"aaaaaa\xc3\xa9\"}", &s, r, sizeof r), 0);
    assert_string_equal(r, "aaaaaa");
}

static void test_prompt(void **state)
{
    const char *req = "{\"model\":\"auto\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief\"},"
                      "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"What is 2+2?\"}]}]}";
    const char *resp = "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"Four, "
                       "obviously and without any doubt\"},\"finish_reason\":\"stop\"}]}";
    char *p;
    (void)state;
    p = judge_prompt(req, strlen(req), resp, strlen(resp), 4096);
    assert_non_null(p);
    assert_non_null(strstr(p, "Question:\nsystem: Be brief\nuser: What is 2+2?"));
    assert_non_null(strstr(p, "\n\nAnswer:\nFour, obviously"));
    free(p);
    p = judge_prompt(req, strlen(req), resp, strlen(resp), 10);
    assert_non_null(strstr(p, "Answer:\nFour, obvi [truncated]"));
    free(p);
    /* no answer text: nothing to judge */
    assert_null(judge_prompt(req, strlen(req), "{\"choices\":[]}", 14, 100));
    assert_null(judge_prompt(req, strlen(req), NULL, 0, 100));
}

static enum judge_failure failure_of(unsigned st, const char *req, const char *resp)
{
    return judge_answer_failure(st, req, req ? strlen(req) : 0, resp, resp ? strlen(resp) : 0);
}

static void test_failures(void **state)
{
    const char *json_req = "{\"messages\":[],\"response_format\":{\"type\":\"json_object\"}}";
    (void)state;
    assert_int_equal(failure_of(502, NULL, NULL), JUDGE_FAIL_ERROR);
    assert_int_equal(failure_of(429, NULL, NULL), JUDGE_FAIL_NONE);
    assert_int_equal(failure_of(200, "{}", "{\"choices\":[{\"message\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}"),
                     JUDGE_FAIL_NONE);
    assert_int_equal(failure_of(200, "{}", "{\"choices\":[{\"message\":{\"content\":\"hi\"},\"finish_reason\":\"length\"}]}"),
                     JUDGE_FAIL_TRUNCATED);
    assert_int_equal(failure_of(200, "{}", "{\"choices\":[{\"message\":{\"content\":null,\"refusal\":\"no\"},\"finish_reason\":\"stop\"}]}"),
                     JUDGE_FAIL_REFUSAL);
    assert_int_equal(failure_of(200, "{}", "{\"choices\":[{\"message\":{\"content\":\"\"},\"finish_reason\":\"content_filter\"}]}"),
                     JUDGE_FAIL_REFUSAL);
    assert_int_equal(failure_of(200, json_req, "{\"choices\":[{\"message\":{\"content\":\"{not json\"},\"finish_reason\":\"stop\"}]}"),
                     JUDGE_FAIL_JSON);
    assert_int_equal(failure_of(200, json_req, "{\"choices\":[{\"message\":{\"content\":\"{\\\"a\\\":1}\"},\"finish_reason\":\"stop\"}]}"),
                     JUDGE_FAIL_NONE);
    assert_int_equal(failure_of(200, "{}", "{\"choices\":[{\"message\":{\"content\":\"{not json\"},\"finish_reason\":\"stop\"}]}"),
                     JUDGE_FAIL_NONE);
    assert_string_equal(judge_failure_name(JUDGE_FAIL_JSON), "invalid_json");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_answers),       cmocka_unit_test(test_text_answers),
        cmocka_unit_test(test_reason_capped_on_utf8), cmocka_unit_test(test_prompt),
        cmocka_unit_test(test_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
