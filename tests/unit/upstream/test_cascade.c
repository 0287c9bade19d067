/* Unit tests for src/upstream/cascade.c: the checks on a complete answer,
 * the JSON-Schema subset validator, the judge's score, the tier's
 * configuration (defaults, price order, errors with positions) and the
 * x-router-cascade value. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/jsonschema.h"
#include "upstream/cascade.h"

static const char HEAD[] = "providers:\n"
                           "  p: {type: openai, base_url: \"http://127.0.0.1:9/v1\"}\n"
                           "models:\n"
                           "  big: {provider: p, input_per_mtok: 10, output_per_mtok: 40}\n"
                           "  mid: {provider: p, input_per_mtok: 1, output_per_mtok: 4}\n"
                           "  cheap: {provider: p, input_per_mtok: 0.1, output_per_mtok: 0.4}\n"
                           "tiers:\n";

static config_t *load(const char *tiers, char *err, size_t errlen)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "%s%srouting: {default_tier: t}\n", HEAD, tiers);
    return config_load_string("c.yaml", yaml, strlen(yaml), err, errlen, NULL, 0);
}

static config_t *g_cfg;
static const cascade_cfg_t *g_cc; /* tier t's checks: defaults + must_not_match "FORBIDDEN" */

static int setup(void **state)
{
    char err[2048];
    (void)state;
    g_cfg = load("  t: {models: [big, cheap, mid], cascade: true, checks: {must_not_match: "
                 "\"FORBIDDEN\"}}\n",
                 err, sizeof err);
    if (g_cfg == NULL) {
        fprintf(stderr, "%s", err);
        return -1;
    }
    g_cc = g_cfg->tiers[0].cascade;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    config_unref(g_cfg);
    return 0;
}

static void test_price_order(void **state)
{
    char err[2048];
    config_t *c;
    (void)state;
    assert_int_equal(g_cfg->tiers[0].n_models, 3);
    assert_string_equal(g_cfg->models[g_cfg->tiers[0].models[0]].name, "cheap");
    assert_string_equal(g_cfg->models[g_cfg->tiers[0].models[1]].name, "mid");
    assert_string_equal(g_cfg->models[g_cfg->tiers[0].models[2]].name, "big");
    c = load("  t: {models: [big, cheap], cascade: true, order: as_written}\n  l: [mid, big]\n",
             err, sizeof err);
    assert_non_null(c);
    assert_string_equal(c->models[c->tiers[0].models[0]].name, "big");
    assert_null(c->tiers[1].cascade); /* the list form is a plain chain */
    config_unref(c);
}

static void expect_error(const char *tier, const char *where, const char *msg)
{
    char err[2048];
    config_t *c = load(tier, err, sizeof err);
    if (c != NULL) {
        config_unref(c);
        fail_msg("accepted: %s", tier);
    }
    if (strstr(err, where) == NULL || strstr(err, msg) == NULL)
        fail_msg("expected %s ... %s in: %s", where, msg, err);
}

static void test_config_errors(void **state)
{
    (void)state;
    expect_error("  t: {models: [mid], cascade: true}\n", "c.yaml:8:", "at least 2 models");
    expect_error("  t: {models: [mid, big], cascade: true, checks: {judge: {model: mid, "
                 "threshold: -0.1}}}\n",
                 "c.yaml:8:", "from 0 to 1");
    expect_error("  t: {models: [mid, big], cascade: true, checks: {judge: {model: x}}}\n",
                 "c.yaml:8:", "no model named \"x\"");
    expect_error("  t: {models: [mid, big], cascade: true, checks: {judge: {threshold: 0.5}}}\n",
                 "c.yaml:8:", "missing \"model\"");
    expect_error("  t: {models: [mid, big], cascade: true, checks: {must_match: \"[a\"}}\n",
                 "c.yaml:8:", "invalid regular expression");
    expect_error("  t: {models: [mid, big], cascade: true, checks: {jsn: true}}\n", "c.yaml:8:",
                 "unknown key \"jsn\"");
    expect_error("  t: {models: [mid, big], checks: {json: true}}\n", "c.yaml:8:",
                 "only a cascade tier has checks");
    expect_error("  t: {models: [mid, big], cascade: true, order: cheapest}\n", "c.yaml:8:",
                 "expected price or as_written");
    expect_error("  t: {cascade: true}\n", "c.yaml:8:", "missing \"models\"");
}

static char *answer(const char *content_json, const char *finish, const char *extra)
{
    char *s = malloc(4096);
    snprintf(s, 4096,
             "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":%s%s},"
             "\"finish_reason\":\"%s\"}]}",
             content_json, extra ? extra : "", finish);
    return s;
}

static enum cascade_reason check(const cascade_ask_t *ask, const char *content_json,
                                 const char *finish, const char *extra)
{
    char *a = answer(content_json, finish, extra);
    enum cascade_reason r = cascade_check(g_cc, ask, a, strlen(a), NULL, NULL, 0);
    free(a);
    return r;
}

static void test_checks(void **state)
{
    cascade_ask_t plain = {0}, js = {0}, schema = {0};
    static const char B_JSON[] = "{\"model\":\"t\",\"messages\":[{\"role\":\"user\",\"content\":"
                                 "\"q\"}],\"response_format\":{\"type\":\"json_object\"}}";
    static const char B_SCHEMA[] =
        "{\"model\":\"t\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
        "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":"
        "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"],"
        "\"additionalProperties\":false}}}}";
    (void)state;
    cascade_ask_init(&js, B_JSON, strlen(B_JSON));
    cascade_ask_init(&schema, B_SCHEMA, strlen(B_SCHEMA));
    assert_true(js.want_json);
    assert_null(js.schema);
    assert_non_null(schema.schema);
    assert_string_equal(schema.question, "q");

    assert_int_equal(check(&plain, "\"Paris.\"", "stop", NULL), CASCADE_OK);
    assert_int_equal(check(&plain, "\"  \\n\"", "stop", NULL), CASCADE_EMPTY);
    assert_int_equal(check(&plain, "null", "stop", NULL), CASCADE_EMPTY);
    assert_int_equal(check(&plain, "\"Par\"", "length", NULL), CASCADE_LENGTH);
    assert_int_equal(check(&plain, "\"Par\"", "content_filter", NULL), CASCADE_LENGTH);
    assert_int_equal(check(&plain, "null", "tool_calls",
                           ",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\"}]"),
                     CASCADE_OK);
    assert_int_equal(check(&plain, "\"I'm sorry, but I can't help with that.\"", "stop", NULL),
                     CASCADE_REFUSAL);
    /* the typographic apostrophe and capitals */
    assert_int_equal(check(&plain, "\"I\xe2\x80\x99M SORRY, BUT I CAN\xe2\x80\x99T do it\"", "stop",
                           NULL),
                     CASCADE_REFUSAL);
    /* a phrase deep inside a long answer is not a refusal */
    {
        char long_text[600];
        memset(long_text, 'x', sizeof long_text);
        long_text[0] = '"';
        memcpy(long_text + 400, " i can't help with", 18);
        long_text[598] = '"';
        long_text[599] = '\0';
        assert_int_equal(check(&plain, long_text, "stop", NULL), CASCADE_OK);
    }
    assert_int_equal(check(&plain, "null", "stop", ",\"refusal\":\"No.\""), CASCADE_REFUSAL);
    assert_int_equal(check(&plain, "\"this is FORBIDDEN\"", "stop", NULL), CASCADE_REGEX);
    assert_int_equal(check(&plain, "\"{not json\"", "stop", NULL), CASCADE_OK);
    assert_int_equal(check(&js, "\"{not json\"", "stop", NULL), CASCADE_JSON);
    assert_int_equal(check(&js, "\"{\\\"b\\\":1}\"", "stop", NULL), CASCADE_OK);
    assert_int_equal(check(&schema, "\"{\\\"b\\\":1}\"", "stop", NULL), CASCADE_SCHEMA);
    assert_int_equal(check(&schema, "\"{\\\"a\\\":1.5}\"", "stop", NULL), CASCADE_SCHEMA);
    assert_int_equal(check(&schema, "\"{\\\"a\\\":2}\"", "stop", NULL), CASCADE_OK);
    {
        static const char none[] = "{\"choices\":[]}";
        static const char two[] = "{\"choices\":[{\"message\":{\"content\":\"a\"},\"finish_reason\":"
                                  "\"stop\"},{\"message\":{\"content\":\"b\"},\"finish_reason\":"
                                  "\"length\"}]}";
        char *content = NULL;
        assert_int_equal(cascade_check(g_cc, &plain, none, strlen(none), NULL, NULL, 0),
                         CASCADE_EMPTY);
        /* every choice is checked */
        assert_int_equal(cascade_check(g_cc, &plain, two, strlen(two), &content, NULL, 0),
                         CASCADE_LENGTH);
        assert_null(content);
    }
    cascade_ask_free(&js);
    cascade_ask_free(&schema);
}

static bool valid(const char *schema, const char *value)
{
    cJSON *s = cJSON_Parse(schema), *v = cJSON_Parse(value);
    char why[200];
    bool ok;
    assert_non_null(s);
    assert_non_null(v);
    ok = jsonschema_valid(s, s, v, why, sizeof why);
    cJSON_Delete(s);
    cJSON_Delete(v);
    return ok;
}

static void test_schema(void **state)
{
    (void)state;
    assert_true(valid("{\"type\":[\"string\",\"null\"]}", "null"));
    assert_false(valid("{\"type\":[\"string\",\"null\"]}", "1"));
    assert_true(valid("{\"type\":\"string\",\"nullable\":true}", "null"));
    assert_true(valid("{\"type\":\"integer\"}", "3"));
    assert_false(valid("{\"type\":\"integer\"}", "3.5"));
    assert_true(valid("{\"type\":\"number\",\"minimum\":1,\"maximum\":2}", "1.5"));
    assert_false(valid("{\"type\":\"number\",\"minimum\":1}", "0.5"));
    assert_false(valid("{\"exclusiveMaximum\":2}", "2"));
    assert_false(valid("{\"multipleOf\":0.5}", "1.2"));
    assert_true(valid("{\"multipleOf\":0.1}", "0.3"));
    assert_true(valid("{\"minLength\":2,\"maxLength\":3}", "\"\xc3\xa9t\xc3\xa9\""));
    assert_false(valid("{\"maxLength\":2}", "\"abc\""));
    assert_true(valid("{\"enum\":[\"a\",{\"b\":1}]}", "{\"b\":1}"));
    assert_false(valid("{\"enum\":[\"a\"]}", "\"b\""));
    assert_false(valid("{\"const\":5}", "6"));
    assert_true(valid("{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1}",
                      "[\"x\"]"));
    assert_false(valid("{\"type\":\"array\",\"items\":{\"type\":\"string\"}}", "[\"x\",2]"));
    assert_false(valid("{\"maxItems\":1}", "[1,2]"));
    assert_false(valid("{\"prefixItems\":[{\"type\":\"string\"}],\"items\":false}", "[\"a\",1]"));
    assert_true(valid("{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", "1"));
    assert_false(valid("{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", "true"));
    assert_false(valid("{\"oneOf\":[{\"type\":\"number\"},{\"type\":\"integer\"}]}", "1"));
    assert_true(valid("{\"oneOf\":[{\"type\":\"number\"},{\"type\":\"integer\"}]}", "1.5"));
    assert_false(valid("{\"allOf\":[{\"minimum\":1},{\"maximum\":2}]}", "3"));
    assert_false(valid("{\"not\":{\"type\":\"string\"}}", "\"s\""));
    assert_false(valid("{\"required\":[\"a\"]}", "{}"));
    assert_false(valid("{\"properties\":{\"a\":{}},\"additionalProperties\":false}",
                       "{\"a\":1,\"b\":2}"));
    assert_false(valid("{\"additionalProperties\":{\"type\":\"string\"}}", "{\"b\":2}"));
    assert_false(valid("{\"maxProperties\":1}", "{\"a\":1,\"b\":2}"));
    /* $ref into $defs and definitions, and a recursive schema */
    assert_true(valid("{\"$defs\":{\"n\":{\"type\":\"integer\"}},\"properties\":{\"a\":{\"$ref\":"
                      "\"#/$defs/n\"}}}",
                      "{\"a\":1}"));
    assert_false(valid("{\"definitions\":{\"n\":{\"type\":\"integer\"}},\"properties\":{\"a\":{"
                       "\"$ref\":\"#/definitions/n\"}}}",
                       "{\"a\":\"x\"}"));
    assert_false(valid("{\"type\":\"object\",\"properties\":{\"kids\":{\"type\":\"array\",\"items\":"
                       "{\"$ref\":\"#\"}},\"name\":{\"type\":\"string\"}},\"required\":[\"name\"]}",
                       "{\"name\":\"a\",\"kids\":[{\"name\":\"b\",\"kids\":[{}]}]}"));
    /* outside the subset: never rejects */
    assert_true(valid("{\"type\":\"string\",\"pattern\":\"^x$\",\"format\":\"email\"}", "\"y\""));
    assert_true(valid("{\"$ref\":\"https://example.com/s.json\"}", "1"));
    /* a self-referencing $ref stops at the depth limit (accepted), no crash */
    assert_true(valid("{\"$ref\":\"#\"}", "1"));
    /* branches that $ref back to the root multiply at every level (3^64
     * checks without the step budget: found by fuzz_jsonschema); the
     * budget stops it and the value is accepted, and a violation outside
     * the branches is still found */
    assert_true(valid("{\"allOf\":[{\"$ref\":\"#\"},{\"$ref\":\"#\"},{\"$ref\":\"#\"}]}", "1"));
    assert_false(valid("{\"type\":\"string\",\"anyOf\":[{\"$ref\":\"#\"},{\"$ref\":\"#\"}]}", "1"));
    {
        cJSON *s = cJSON_Parse("{\"properties\":{\"a\":{\"type\":\"string\"}}}");
        cJSON *v = cJSON_Parse("{\"a\":1}");
        char why[200];
        assert_false(jsonschema_valid(s, s, v, why, sizeof why));
        assert_non_null(strstr(why, ".a"));
        cJSON_Delete(s);
        cJSON_Delete(v);
    }
}

static void test_judge_score(void **state)
{
    (void)state;
    assert_true(cascade_judge_score("0.8") == 0.8);
    assert_true(cascade_judge_score(" **1**") == 1.0);
    assert_true(cascade_judge_score("7/10") == 0.7);
    assert_true(cascade_judge_score("8") == 0.8);
    assert_true(cascade_judge_score("Score: 0.8") < 0);
    assert_true(cascade_judge_score("11") < 0);
    assert_true(cascade_judge_score("") < 0);
    assert_true(cascade_judge_score(NULL) < 0);
}

static void test_judge_body_and_header(void **state)
{
    char err[2048], h[64];
    config_t *c;
    size_t len;
    char *body;
    cJSON *j;
    cascade_run_t run;
    (void)state;
    c = load("  t: {models: [big, mid], cascade: true, checks: {judge: {model: cheap, threshold: "
             "0.6, rubric: \"Grade it.\"}}}\n",
             err, sizeof err);
    assert_non_null(c);
    assert_true(cascade_cfg_judge_threshold(c->tiers[0].cascade) == 0.6);
    body = cascade_judge_body(c, c->tiers[0].cascade, "What is 2+2?", "4", &len);
    j = cJSON_Parse(body);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "model")->valuestring, "cheap");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "messages"), 0), "content")
            ->valuestring,
        "Grade it.");
    assert_non_null(strstr(body, "What is 2+2?"));
    cJSON_Delete(j);
    free(body);

    memset(&run, 0, sizeof run);
    cascade_add_step(&run, 1, CASCADE_FAILED, CASCADE_OK, 0);
    cascade_add_step(&run, 0, CASCADE_REJECTED, CASCADE_LENGTH, 0.1);
    cascade_add_step(&run, 1, CASCADE_ACCEPTED, CASCADE_OK, 0.2);
    cascade_header(c, &run, h, sizeof h);
    assert_string_equal(h, "mid:failed,big:rejected(length),mid:accepted");
    /* only whole steps fit */
    cascade_header(c, &run, h, 20);
    assert_string_equal(h, "mid:failed");
    config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_price_order),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_schema),
        cmocka_unit_test(test_judge_score),
        cmocka_unit_test(test_judge_body_and_header),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
