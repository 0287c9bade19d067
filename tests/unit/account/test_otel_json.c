/* Unit tests for src/account/otel_json.c and src/core/config_otel.c: the
 * W3C traceparent parser, the GenAI provider names, a request's spans in
 * OTLP JSON (types, ids, parent links, no content by default), the batch
 * envelope, and the observability.otlp section's defaults. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account/otel.h"
#include "account/otel_json.h"
#include "core/config.h"
#include "core/config_otel.h"
#include "http/request.h"

static const char YAML[] =
    "providers:\n"
    "  good: {type: openai, base_url: \"http://127.0.0.1:9/v1\"}\n"
    "  ds: {type: openai, base_url: \"https://api.deepseek.com/v1\"}\n"
    "  ant: {type: anthropic, base_url: \"https://api.anthropic.com/v1\"}\n"
    "  az: {type: openai, base_url: \"https://x.openai.azure.com/openai/v1\"}\n"
    "models:\n"
    "  good-mini: {provider: good, model: sim-mini, input_per_mtok: 0.15, output_per_mtok: 0.60}\n"
    "  m500: {provider: ds, model: deepseek-chat}\n"
    "  claude: {provider: ant, model: claude-x}\n"
    "  azm: {provider: az, model: gpt-4o}\n"
    "tiers:\n"
    "  standard: [good-mini]\n"
    "  f500: [m500, good-mini]\n"
    "routing:\n"
    "  default_tier: standard\n"
    "observability:\n"
    "  otlp:\n"
    "    endpoint: \"http://127.0.0.1:4318/v1/traces\"\n"
    "    headers: {Authorization: \"Basic abc\"}\n";

static config_t *load(void)
{
    char err[2048];
    config_t *cfg = config_load_string("otel.yaml", YAML, strlen(YAML), err, sizeof err, NULL, 0);
    if (cfg == NULL)
        fail_msg("%s", err);
    return cfg;
}

static void test_traceparent(void **state)
{
    uint8_t t[16], s[8], f = 0;
    (void)state;
    assert_int_equal(otel_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                            t, s, &f), 0);
    assert_int_equal(t[0], 0x4b);
    assert_int_equal(t[15], 0x36);
    assert_int_equal(s[7], 0xb7);
    assert_int_equal(f, 1);
    /* a later version may add fields */
    assert_int_equal(otel_traceparent_parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x",
                                            t, s, &f), 0);
    assert_int_equal(f, 0);
    /* invalid: zero ids, upper case, version ff, 00 with extra, short */
    assert_int_equal(otel_traceparent_parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                                            t, s, &f), -1);
    assert_int_equal(otel_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                                            t, s, &f), -1);
    assert_int_equal(otel_traceparent_parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                                            t, s, &f), -1);
    assert_int_equal(otel_traceparent_parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                            t, s, &f), -1);
    assert_int_equal(otel_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                                            t, s, &f), -1);
    assert_int_equal(otel_traceparent_parse("00-4bf9", t, s, &f), -1);
    assert_int_equal(otel_traceparent_parse(NULL, t, s, &f), -1);
}

static void test_provider_names(void **state)
{
    config_t *cfg = load();
    (void)state;
    assert_string_equal(otel_provider_name(cfg, config_find_model(cfg, "good-mini")), "openai");
    assert_string_equal(otel_provider_name(cfg, config_find_model(cfg, "m500")), "deepseek");
    assert_string_equal(otel_provider_name(cfg, config_find_model(cfg, "claude")), "anthropic");
    assert_string_equal(otel_provider_name(cfg, config_find_model(cfg, "azm")), "azure.ai.openai");
    assert_null(otel_provider_name(cfg, -1));
    config_unref(cfg);
}

static const cJSON *attr(const cJSON *span, const char *key, const char *kind)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(span, "attributes"))
    {
        if (strcmp(cJSON_GetObjectItemCaseSensitive(a, "key")->valuestring, key) == 0) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(a, "value"), kind);
            if (v == NULL)
                fail_msg("%s is not a %s", key, kind);
            return v;
        }
    }
    return NULL;
}

static void test_spans(void **state)
{
    config_t *cfg = load();
    static const char body[] = "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"secret prompt\"}]}";
    req_t r;
    attempt_t att[2];
    otel_ids_t ids = {.has_parent = true};
    uint64_t rng = 42;
    buf_t b;
    cJSON *j, *span;
    int n;
    (void)state;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.ep = EP_CHAT;
    snprintf(r.id, sizeof r.id, "rid-1");
    snprintf(r.method, sizeof r.method, "POST");
    snprintf(r.path, sizeof r.path, "/v1/chat/completions");
    buf_init(&r.body, 4096);
    assert_int_equal(buf_append(&r.body, body, sizeof body - 1), 0);
    r.route.tier = config_find_tier(cfg, "f500");
    r.route.rule = -1;
    att[0] = (attempt_t){.model = config_find_model(cfg, "m500"), .status = 500, .t0_us = 1000, .t1_us = 2000};
    snprintf(att[0].error, sizeof att[0].error, "HTTP 500");
    att[1] = (attempt_t){.model = config_find_model(cfg, "good-mini"), .status = 200, .t0_us = 2000, .t1_us = 3000};
    r.attempts = att;
    r.n_attempts = 2;
    r.model = att[1].model;
    r.resp_status = 200;
    r.cost_usd = 0.5;
    r.baseline_usd = 2;
    r.prompt_tokens = 12;
    r.completion_tokens = 30;
    r.score = -1;
    r.max_output = 100;
    r.otel_temperature = 0.5;
    snprintf(r.otel_model, sizeof r.otel_model, "auto");
    snprintf(r.otel_finish, sizeof r.otel_finish, "stop,length");
    r.t_start_us = 500;
    memset(ids.trace, 0xab, 16);
    memset(ids.parent, 0x11, 8);
    memset(ids.span, 0x22, 8);

    buf_init(&b, 1 << 20);
    buf_puts(&b, "[");
    n = otel_spans_format(&r, cfg->obs.otlp, &ids, 4000, 1000000000, &rng, NULL, &b);
    buf_puts(&b, "]");
    assert_int_equal(n, 3);
    j = cJSON_ParseWithLength(buf_ptr(&b), buf_len(&b));
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(j), 3);
    span = cJSON_GetArrayItem(j, 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(span, "traceId")->valuestring,
                        "abababababababababababababababab");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(span, "parentSpanId")->valuestring,
                        "1111111111111111");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(span, "name")->valuestring, "chat auto");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(span, "kind")->valueint, 2);
    /* 500 us -> 500000 ns + 1 s */
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(span, "startTimeUnixNano")->valuestring,
                        "1000500000");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(span, "endTimeUnixNano")->valuestring,
                        "1004000000");
    assert_string_equal(attr(span, "gen_ai.usage.input_tokens", "intValue")->valuestring, "12");
    assert_true(attr(span, "gen_ai.request.temperature", "doubleValue")->valuedouble == 0.5);
    assert_true(attr(span, "llmrouter.savings_usd", "doubleValue")->valuedouble == 1.5);
    assert_string_equal(attr(span, "gen_ai.response.model", "stringValue")->valuestring, "sim-mini");
    assert_string_equal(attr(span, "llmrouter.tier", "stringValue")->valuestring, "f500");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
                         attr(span, "gen_ai.response.finish_reasons", "arrayValue"), "values")),
                     2);
    assert_null(attr(span, "gen_ai.input.messages", "stringValue"));
    assert_null(attr(span, "llmrouter.score", "doubleValue"));
    assert_null(strstr(buf_cstr(&b), "secret prompt"));
    /* children: CLIENT, parent = the request span, the failed one an error */
    span = cJSON_GetArrayItem(j, 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(span, "kind")->valueint, 3);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(span, "parentSpanId")->valuestring,
                        "2222222222222222");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(span, "name")->valuestring,
                        "chat deepseek-chat");
    assert_string_equal(attr(span, "gen_ai.provider.name", "stringValue")->valuestring, "deepseek");
    assert_string_equal(attr(span, "llmrouter.attempt.outcome", "stringValue")->valuestring,
                        "status_5xx");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(span, "status"), "code")->valueint, 2);
    assert_string_not_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(j, 1), "spanId")->valuestring,
                            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(j, 2), "spanId")->valuestring);
    cJSON_Delete(j);

    /* envelope around them */
    buf_reset(&b);
    assert_int_equal(otel_envelope_head(cfg->obs.otlp, &b), 0);
    assert_true(otel_spans_format(&r, cfg->obs.otlp, &ids, 4000, 0, &rng, NULL, &b) == 3);
    assert_int_equal(otel_envelope_tail(&b), 0);
    j = cJSON_ParseWithLength(buf_ptr(&b), buf_len(&b));
    assert_non_null(j);
    span = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(
                                  cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(
                                                         cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "resourceSpans"), 0),
                                                         "scopeSpans"),
                                                     0),
                                  "spans"),
                              2);
    assert_non_null(span);
    cJSON_Delete(j);
    buf_free(&b);
    buf_free(&r.body);
    config_unref(cfg);
}

static void test_note_answer(void **state)
{
    static const char ans[] =
        "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"content\":\"a \\\"finish_reason\\\":\\\"no\\\" ]}\"},"
        "\"finish_reason\":\"stop\"}, {\"index\":1,\"finish_reason\":\"length\",\"x\":[1,{\"y\":2}]},"
        "{\"index\":2,\"finish_reason\":null}],\"model\":\"gpt-4o-mini-2024\",\"usage\":{}}";
    req_t r;
    (void)state;
    memset(&r, 0, sizeof r);
    otel_note_answer(&r, ans, sizeof ans - 1);
    assert_string_equal(r.otel_resp_model, "gpt-4o-mini-2024");
    assert_string_equal(r.otel_finish, "stop,length");
    memset(&r, 0, sizeof r);
    otel_note_answer(&r, "{\"data\":[]}", 11);
    assert_string_equal(r.otel_finish, "");
    assert_string_equal(r.otel_resp_model, "");
}

static void test_config_defaults(void **state)
{
    config_t *cfg = load();
    const cfg_otlp_t *o = cfg->obs.otlp;
    (void)state;
    assert_non_null(o);
    assert_int_equal(o->batch_max_spans, 256);
    assert_int_equal(o->flush_interval_ms, 1000);
    assert_int_equal(o->queue_max_spans, 4096);
    assert_int_equal(o->timeout_ms, 2000);
    assert_string_equal(o->service_name, "llmrouter");
    assert_true(o->sample_rate == 1);
    assert_false(o->capture_content);
    assert_int_equal(o->n_headers, 1);
    config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traceparent),
        cmocka_unit_test(test_provider_names),
        cmocka_unit_test(test_spans),
        cmocka_unit_test(test_note_answer),
        cmocka_unit_test(test_config_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
