/* Unit tests for src/accesslog.c: the access log line (JSON, every field,
 * nothing secret), file append and reopen after rotation, and the quality
 * sampler. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "account/accesslog.h"
#include "core/config.h"
#include "http/request.h"

static const char YAML[] =
    "providers:\n"
    "  good: {type: openai, base_url: \"http://127.0.0.1:9/v1\"}\n"
    "  p500: {type: openai, base_url: \"http://127.0.0.1:9/sim/v1\"}\n"
    "models:\n"
    "  good-mini: {provider: good, model: sim-mini, input_per_mtok: 0.15, output_per_mtok: 0.60}\n"
    "  m500: {provider: p500, model: sim-500}\n"
    "tiers:\n"
    "  standard: [good-mini]\n"
    "  f500: [m500, good-mini]\n"
    "routing:\n"
    "  default_tier: standard\n"
    "  rules:\n"
    "    - name: tagged\n"
    "      when: {keywords: [zebracorn]}\n"
    "      tier: f500\n"
    "      tags: [alpha, \"be\\\"ta\"]\n";

#define PROMPT "the zebracorn secret prompt text"
#define AUTH "Bearer sk-very-secret-value"

typedef struct fx {
    config_t *cfg;
    char dir[64];
} fx_t;

static int setup(void **state)
{
    char err[2048];
    fx_t *fx = calloc(1, sizeof *fx);
    fx->cfg = config_load_string("al.yaml", YAML, strlen(YAML), err, sizeof err, NULL, 0);
    if (fx->cfg == NULL) {
        fprintf(stderr, "%s", err);
        free(fx);
        return -1;
    }
    snprintf(fx->dir, sizeof fx->dir, "/tmp/test_accesslog.XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", fx->dir);
    config_unref(fx->cfg);
    free(fx);
    return 0;
}

static const char *hdr(void *arg, const char *name)
{
    (void)arg;
    return strcmp(name, "authorization") == 0 || strcmp(name, "Authorization") == 0 ? AUTH : NULL;
}

/* A streamed request routed by rule "tagged" to f500: m500 failed with 500,
 * good-mini answered. The body holds the prompt; a header the key. */
static void make_req(req_t *r, config_t *cfg, attempt_t *att)
{
    static const char body[] = "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"" PROMPT "\"}]}";
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->ep = EP_CHAT;
    snprintf(r->id, sizeof r->id, "abc-123");
    snprintf(r->method, sizeof r->method, "POST");
    snprintf(r->path, sizeof r->path, "/v1/chat/completions");
    r->header = hdr;
    buf_init(&r->body, 4096);
    assert_int_equal(buf_append(&r->body, body, sizeof body - 1), 0);
    r->stream = true;
    r->route.tier = config_find_tier(cfg, "f500");
    r->route.rule = 0;
    att[0] = (attempt_t){.model = config_find_model(cfg, "m500"), .status = 500};
    snprintf(att[0].error, sizeof att[0].error, "HTTP 500");
    att[1] = (attempt_t){.model = config_find_model(cfg, "good-mini"), .status = 200};
    r->attempts = att;
    r->n_attempts = 2;
    r->model = att[1].model;
    r->resp_status = 200;
    r->cost_usd = 0.00025;
    r->baseline_usd = 0.001;
    r->prompt_tokens = 12;
    r->completion_tokens = 30;
    r->cached_tokens = -1;
    r->cost_estimated = true;
    r->key_name = "team-a";
    r->cache_x = CACHE_X_MISS;
    r->t_start_us = 5000000;
    r->t_upstream_us = 5002000;
    r->t_first_byte_us = 5052000;
    r->t_end_us = 5302000;
}

static cJSON *parse_line(const char *s, size_t n)
{
    assert_true(n > 1 && s[n - 1] == '\n');
    assert_null(memchr(s, '\n', n - 1)); /* one line */
    cJSON *j = cJSON_ParseWithLength(s, n - 1);
    assert_non_null(j);
    return j;
}

static const cJSON *get(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    if (v == NULL)
        fail_msg("field %s missing", k);
    return v;
}

/* The access log's time as snprintf formats it (the reference). */
static void time_stamp(char *s, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(s, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(ts.tv_nsec / 1000000) % 1000);
}

static void test_line_fields(void **state)
{
    fx_t *fx = *state;
    req_t r;
    attempt_t att[2];
    buf_t b;
    make_req(&r, fx->cfg, att);
    buf_init(&b, ACCESSLOG_MAX_LINE);
    char before[64], after[64];
    time_stamp(before, sizeof before);
    assert_int_equal(accesslog_format(fx->cfg, &r, 5310000, &b), 0);
    time_stamp(after, sizeof after);
    const char *line = buf_cstr(&b);
    assert_null(strstr(line, "zebracorn"));
    assert_null(strstr(line, "secret"));
    assert_null(strstr(line, "sk-"));
    cJSON *j = parse_line(line, buf_len(&b));

    const char *t = get(j, "time")->valuestring;
    assert_int_equal(strlen(t), 24); /* 2025-01-02T03:04:05.678Z */
    assert_true(t[4] == '-' && t[10] == 'T' && t[19] == '.' && t[23] == 'Z');
    /* what snprintf makes of the clock just before or just after */
    if (strcmp(t, before) != 0 && strcmp(t, after) != 0)
        fail_msg("time %s, neither %s nor %s", t, before, after);
    assert_string_equal(get(j, "request_id")->valuestring, "abc-123");
    assert_string_equal(get(j, "key")->valuestring, "team-a");
    assert_string_equal(get(j, "method")->valuestring, "POST");
    assert_string_equal(get(j, "path")->valuestring, "/v1/chat/completions");
    assert_int_equal(get(j, "status")->valueint, 200);
    assert_string_equal(get(j, "rule")->valuestring, "tagged");
    assert_string_equal(get(j, "tier")->valuestring, "f500");
    assert_string_equal(get(j, "model")->valuestring, "good-mini");
    assert_string_equal(get(j, "provider")->valuestring, "good");
    assert_int_equal(get(j, "attempts")->valueint, 2);
    assert_true(cJSON_IsTrue(get(j, "stream")));
    assert_string_equal(get(j, "cache")->valuestring, "MISS");
    assert_int_equal(get(j, "prompt_tokens")->valueint, 12);
    assert_int_equal(get(j, "completion_tokens")->valueint, 30);
    assert_true(cJSON_IsNull(get(j, "cached_tokens")));
    assert_float_equal(get(j, "cost_usd")->valuedouble, 0.00025, 1e-12);
    assert_float_equal(get(j, "baseline_cost_usd")->valuedouble, 0.001, 1e-12);
    assert_float_equal(get(j, "savings_usd")->valuedouble, 0.00075, 1e-12);
    assert_true(cJSON_IsTrue(get(j, "cost_estimated")));
    assert_float_equal(get(j, "total_ms")->valuedouble, 310.0, 1e-9);
    assert_float_equal(get(j, "upstream_ms")->valuedouble, 300.0, 1e-9);
    assert_float_equal(get(j, "ttfb_ms")->valuedouble, 50.0, 1e-9);
    assert_float_equal(get(j, "overhead_ms")->valuedouble, 10.0, 1e-9);
    const cJSON *tags = get(j, "tags");
    assert_int_equal(cJSON_GetArraySize(tags), 2);
    assert_string_equal(cJSON_GetArrayItem(tags, 0)->valuestring, "alpha");
    assert_string_equal(cJSON_GetArrayItem(tags, 1)->valuestring, "be\"ta");
    const cJSON *fo = get(j, "failovers");
    assert_int_equal(cJSON_GetArraySize(fo), 1);
    const cJSON *f0 = cJSON_GetArrayItem(fo, 0);
    assert_string_equal(get(f0, "from")->valuestring, "m500");
    assert_string_equal(get(f0, "to")->valuestring, "good-mini");
    assert_string_equal(get(f0, "reason")->valuestring, "status_5xx");
    cJSON_Delete(j);
    buf_free(&b);
    buf_free(&r.body);
}

static void test_line_unknowns_are_null(void **state)
{
    fx_t *fx = *state;
    req_t r;
    attempt_t att[2];
    buf_t b;
    make_req(&r, fx->cfg, att);
    /* refused before routing: no model, no upstream, no usage, keys off */
    r.model = -1;
    r.route.tier = -1;
    r.route.rule = ROUTE_RULE_DEFAULT;
    r.n_attempts = 0;
    r.attempts = NULL;
    r.resp_status = 400;
    r.cost_usd = r.baseline_usd = -1;
    r.prompt_tokens = r.completion_tokens = -1;
    r.t_upstream_us = r.t_first_byte_us = r.t_end_us = 0;
    r.key_name = "";
    r.cache_x = CACHE_X_BYPASS;
    r.stream = false;
    buf_init(&b, ACCESSLOG_MAX_LINE);
    assert_int_equal(accesslog_format(fx->cfg, &r, 5001500, &b), 0);
    cJSON *j = parse_line(buf_cstr(&b), buf_len(&b));
    static const char *const nulls[] = {"model", "provider", "key", "prompt_tokens",
                                        "completion_tokens", "cost_usd", "baseline_cost_usd",
                                        "savings_usd", "upstream_ms", "ttfb_ms"};
    for (size_t i = 0; i < sizeof nulls / sizeof *nulls; i++)
        if (!cJSON_IsNull(get(j, nulls[i])))
            fail_msg("%s is not null", nulls[i]);
    assert_float_equal(get(j, "total_ms")->valuedouble, 1.5, 1e-9);
    assert_float_equal(get(j, "overhead_ms")->valuedouble, 1.5, 1e-9);
    assert_string_equal(get(j, "tier")->valuestring, "none");
    assert_string_equal(get(j, "cache")->valuestring, "BYPASS");
    assert_true(cJSON_IsFalse(get(j, "stream")));
    assert_int_equal(cJSON_GetArraySize(get(j, "tags")), 0);
    assert_int_equal(cJSON_GetArraySize(get(j, "failovers")), 0);
    cJSON_Delete(j);
    buf_free(&b);
    buf_free(&r.body);
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *s = calloc(1, 1 << 20);
    *n = fread(s, 1, (1 << 20) - 1, f);
    fclose(f);
    return s;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_file_append_and_reopen(void **state)
{
    fx_t *fx = *state;
    char path[128], rotated[140], err[256];
    req_t r;
    attempt_t att[2];
    size_t n;
    make_req(&r, fx->cfg, att);
    snprintf(path, sizeof path, "%s/access.log", fx->dir);
    snprintf(rotated, sizeof rotated, "%s.1", path);

    FILE *f = fopen(path, "w");
    fputs("{\"earlier\":true}\n", f);
    fclose(f);
    accesslog_t *a = accesslog_open(path, err, sizeof err);
    assert_non_null(a);
    accesslog_write(a, fx->cfg, &r, 5310000);
    accesslog_write(a, fx->cfg, &r, 5310000);
    assert_int_equal(rename(path, rotated), 0);
    accesslog_write(a, fx->cfg, &r, 5310000); /* still to the moved file */
    assert_int_equal(accesslog_reopen(a), 0);
    accesslog_write(a, fx->cfg, &r, 5310000);
    accesslog_close(a);

    char *old = slurp(rotated, &n);
    assert_int_equal(count_lines(old), 4);
    assert_non_null(strstr(old, "{\"earlier\":true}\n{\"time\""));
    assert_null(strstr(old, "zebracorn"));
    assert_null(strstr(old, "sk-very"));
    char *cur = slurp(path, &n);
    assert_int_equal(count_lines(cur), 1);
    cJSON *j = parse_line(cur, n);
    cJSON_Delete(j);
    free(old);
    free(cur);

    /* unwritable path: NULL and a message */
    assert_null(accesslog_open("/nonexistent-dir/x.log", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent-dir/x.log"));
    /* off: writes are no-ops; NULL is a no-op too */
    a = accesslog_open("off", err, sizeof err);
    assert_non_null(a);
    accesslog_write(a, fx->cfg, &r, 5310000);
    assert_int_equal(accesslog_reopen(a), 0);
    accesslog_close(a);
    accesslog_write(NULL, fx->cfg, &r, 5310000);
    accesslog_close(NULL);
    buf_free(&r.body);
}

static void test_sampler(void **state)
{
    fx_t *fx = *state;
    char path[128], err[256];
    req_t r;
    attempt_t att[2];
    size_t n;
    make_req(&r, fx->cfg, att);
    snprintf(path, sizeof path, "%s/samples.jsonl", fx->dir);

    sampler_t *none = sampler_open(path, 0, err, sizeof err);
    sampler_t *half = sampler_open(path, 0.5, err, sizeof err);
    sampler_t *all = sampler_open(path, 1.0, err, sizeof err);
    assert_non_null(none);
    assert_non_null(half);
    assert_non_null(all);
    int picked = 0;
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 10000; i++) {
        x ^= x << 13; /* xorshift64 */
        x ^= x >> 7;
        x ^= x << 17;
        assert_false(sampler_pick(none, x));
        assert_true(sampler_pick(all, x));
        picked += sampler_pick(half, x);
    }
    assert_true(picked > 4500 && picked < 5500);
    assert_false(sampler_pick(NULL, x));

    static const char req_body[] = "{\"model\": \"auto\",\n  \"messages\": [{\"role\": \"user\", "
                                   "\"content\": \"line one\\nline two\"}]}\r\n";
    static const char answer[] = "{\"id\":\"c1\",\"choices\":[{\"message\":{\"content\":\"hi\"}}]}";
    static const char events[] = "data: {\"x\":1}\n\ndata: [DONE]\n\n";
    sampler_write(all, fx->cfg, &r, req_body, sizeof req_body - 1, answer, sizeof answer - 1);
    sampler_write(all, fx->cfg, &r, req_body, sizeof req_body - 1, events, sizeof events - 1);
    sampler_write(NULL, fx->cfg, &r, req_body, sizeof req_body - 1, answer, sizeof answer - 1);
    sampler_close(none);
    sampler_close(half);
    sampler_close(all);

    char *text = slurp(path, &n);
    assert_int_equal(count_lines(text), 2);
    char *nl = strchr(text, '\n');
    cJSON *j = parse_line(text, (size_t)(nl - text) + 1);
    assert_string_equal(get(j, "request_id")->valuestring, "abc-123");
    assert_string_equal(get(j, "rule")->valuestring, "tagged");
    assert_string_equal(get(j, "tier")->valuestring, "f500");
    assert_string_equal(get(j, "model")->valuestring, "good-mini");
    assert_string_equal(get(j, "provider")->valuestring, "good");
    assert_non_null(get(j, "time"));
    const cJSON *rq = get(j, "request");
    assert_true(cJSON_IsObject(rq));
    const cJSON *msg = cJSON_GetArrayItem(get(rq, "messages"), 0);
    assert_string_equal(get(msg, "content")->valuestring, "line one\nline two");
    assert_string_equal(get(get(j, "response"), "id")->valuestring, "c1");
    cJSON_Delete(j);
    j = parse_line(nl + 1, n - (size_t)(nl + 1 - text));
    assert_true(cJSON_IsString(get(j, "response")));
    assert_string_equal(get(j, "response")->valuestring, events);
    cJSON_Delete(j);
    free(text);

    assert_null(sampler_open("/nonexistent-dir/s.jsonl", 1, err, sizeof err));
    buf_free(&r.body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_line_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_unknowns_are_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_append_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sampler, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
