/* Unit tests for src/providers/openai.c: cost arithmetic, answer checks and
 * the float -> base64 embeddings conversion. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "upstream/provider.h"

static const char YAML[] = "providers:\n"
                           "  p: {type: openai, base_url: \"http://127.0.0.1:9/v1\"}\n"
                           "models:\n"
                           "  priced: {provider: p, input_per_mtok: 2, output_per_mtok: 8, "
                           "cached_input_per_mtok: 0.5}\n"
                           "  nocache: {provider: p, input_per_mtok: 3, output_per_mtok: 15}\n"
                           "  free: {provider: p}\n"
                           "tiers:\n"
                           "  t: [priced, nocache, free]\n"
                           "routing: {default_tier: t}\n";

static config_t *g_cfg;
static int PRICED, NOCACHE, FREE;

static int setup(void **state)
{
    char err[2048];
    (void)state;
    g_cfg = config_load_string("provider.yaml", YAML, strlen(YAML), err, sizeof err, NULL, 0);
    if (g_cfg == NULL) {
        fprintf(stderr, "%s", err);
        return -1;
    }
    PRICED = config_find_model(g_cfg, "priced");
    NOCACHE = config_find_model(g_cfg, "nocache");
    FREE = config_find_model(g_cfg, "free");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    config_unref(g_cfg);
    return 0;
}

#define assert_near(a, b)                                                                          \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= 1e-12 + 1e-9 * fabs(b_)))                                           \
            fail_msg("%s = %.15g, expected %.15g", #a, a_, b_);                                    \
    } while (0)

/* ---- provider_cost ---- */

static void test_cost_arithmetic(void **state)
{
    const cfg_model_t *m = &g_cfg->models[PRICED];
    (void)state;
    /* 1M prompt at $2 + 1M completion at $8 */
    assert_near(provider_cost(m, 1e6, 1e6, 0), 10.0);
    /* 1000 prompt (200 cached) + 500 completion:
     * 800*2 + 200*0.5 + 500*8 = 1600 + 100 + 4000 = 5700 micro-USD */
    assert_near(provider_cost(m, 1000, 500, 200), 5700e-6);
    assert_near(provider_cost(m, 0, 0, 0), 0.0);
    assert_near(provider_cost(m, 0, 1, 0), 8e-6);
    assert_near(provider_cost(m, 1, 0, 0), 2e-6);
}

static void test_cost_cached_capped_at_prompt(void **state)
{
    const cfg_model_t *m = &g_cfg->models[PRICED];
    (void)state;
    /* all 100 prompt tokens cached, not 500: 100*0.5 */
    assert_near(provider_cost(m, 100, 0, 500), 50e-6);
    assert_near(provider_cost(m, 100, 0, 100), 50e-6);
    assert_near(provider_cost(m, 100, 10, 1e9), 50e-6 + 80e-6);
}

static void test_cost_cached_defaults_to_input_price(void **state)
{
    const cfg_model_t *m = &g_cfg->models[NOCACHE];
    (void)state;
    /* no cached price configured: cached tokens cost the input price */
    assert_near(provider_cost(m, 1000, 0, 400), 3000e-6);
    assert_near(provider_cost(m, 1000, 100, 0), 3000e-6 + 1500e-6);
    assert_near(provider_cost(&g_cfg->models[FREE], 1e6, 1e6, 1e5), 0.0);
}

/* ---- provider_check_answer ---- */

static int check(int m, const char *body, bool b64, provider_result_t *out, char *why, size_t wl)
{
    memset(out, 0x5A, sizeof *out);
    why[0] = '\0';
    return provider_check_answer(g_cfg, m, body, strlen(body), b64, false, out, why, wl);
}

static void test_answer_with_usage(void **state)
{
    provider_result_t r;
    char why[128];
    const char *body =
        "{\"id\":\"c1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":"
        "{\"role\":\"assistant\",\"content\":\"hi\"}}],\"usage\":{\"prompt_tokens\":1000,"
        "\"completion_tokens\":500,\"total_tokens\":1500}}";
    (void)state;
    assert_int_equal(check(PRICED, body, false, &r, why, sizeof why), 0);
    assert_near(r.cost_usd, (1000 * 2 + 500 * 8) / 1e6);
    assert_null(r.new_body);
    assert_int_equal(r.new_len, 0);
}

static void test_answer_with_cached_tokens(void **state)
{
    provider_result_t r;
    char why[128];
    (void)state;
    /* OpenAI: usage.prompt_tokens_details.cached_tokens */
    assert_int_equal(check(PRICED,
                           "{\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":500,"
                           "\"prompt_tokens_details\":{\"cached_tokens\":200}}}",
                           false, &r, why, sizeof why),
                     0);
    assert_near(r.cost_usd, 5700e-6);
    /* DeepSeek: usage.prompt_cache_hit_tokens */
    assert_int_equal(check(PRICED,
                           "{\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":500,"
                           "\"prompt_cache_hit_tokens\":200}}",
                           false, &r, why, sizeof why),
                     0);
    assert_near(r.cost_usd, 5700e-6);
    /* more cached than prompt: capped */
    assert_int_equal(check(PRICED,
                           "{\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":0,"
                           "\"prompt_tokens_details\":{\"cached_tokens\":900}}}",
                           false, &r, why, sizeof why),
                     0);
    assert_near(r.cost_usd, 50e-6);
    /* embeddings usage has no completion tokens */
    assert_int_equal(check(NOCACHE,
                           "{\"object\":\"list\",\"data\":[],\"usage\":{\"prompt_tokens\":10,"
                           "\"total_tokens\":10}}",
                           false, &r, why, sizeof why),
                     0);
    assert_near(r.cost_usd, 30e-6);
}

static void test_answer_odd_usage_values(void **state)
{
    provider_result_t r;
    char why[128];
    (void)state;
    /* negative or non-numeric counts count as zero; a cost is still known */
    assert_int_equal(check(PRICED,
                           "{\"usage\":{\"prompt_tokens\":-5,\"completion_tokens\":\"7\"}}",
                           false, &r, why, sizeof why),
                     0);
    assert_near(r.cost_usd, 0.0);
    assert_false(r.cost_usd < 0);
}

static void test_answer_without_usage(void **state)
{
    provider_result_t r;
    char why[128];
    (void)state;
    assert_int_equal(check(PRICED, "{\"choices\":[]}", false, &r, why, sizeof why), 0);
    assert_true(r.cost_usd < 0);
    assert_null(r.new_body);
    assert_int_equal(check(PRICED, "{\"choices\":[],\"usage\":null}", false, &r, why, sizeof why),
                     0);
    assert_true(r.cost_usd < 0);
    assert_int_equal(check(PRICED, "{\"usage\":[1,2]}", false, &r, why, sizeof why), 0);
    assert_true(r.cost_usd < 0);
    /* "error": null is not an error */
    assert_int_equal(check(PRICED, "{\"error\":null,\"choices\":[]}", false, &r, why, sizeof why),
                     0);
}

static void test_answer_invalid_json(void **state)
{
    provider_result_t r;
    char why[128];
    static const char *const bad[] = {"", "not json", "{\"choices\":[", "[1,2,3]", "\"str\"",
                                      "null", "42"};
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (check(PRICED, bad[i], false, &r, why, sizeof why) != -1)
            fail_msg("answer \"%s\" accepted", bad[i]);
        assert_true(strlen(why) > 0);
        assert_true(r.cost_usd < 0);
        assert_null(r.new_body);
    }
}

static void test_answer_error_object(void **state)
{
    provider_result_t r;
    char why[128];
    (void)state;
    assert_int_equal(check(PRICED,
                           "{\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}",
                           false, &r, why, sizeof why),
                     -1);
    assert_non_null(strstr(why, "error"));
    assert_null(r.new_body);
    assert_int_equal(check(PRICED, "{\"error\":\"boom\",\"usage\":{\"prompt_tokens\":1}}", false,
                           &r, why, sizeof why),
                     -1);
    /* why is bounded by its length */
    memset(why, 'X', sizeof why);
    assert_int_equal(provider_check_answer(g_cfg, PRICED, "nope", 4, false, false, &r, why, 5), -1);
    assert_true(memchr(why, '\0', 5) != NULL);
    assert_int_equal(why[5], 'X');
}

/* ---- embeddings: floats -> base64 ---- */

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes standard padded base64; returns the byte count or -1. */
static long b64decode(const char *s, unsigned char *out, size_t cap)
{
    size_t n = strlen(s), o = 0;
    if (n % 4 != 0)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++) {
            v[k] = s[i + k] == '=' && i + 4 == n && k >= 2 ? 0 : b64val(s[i + k]);
            if (v[k] < 0)
                return -1;
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        int bytes = s[i + 2] == '=' ? 1 : s[i + 3] == '=' ? 2 : 3;
        for (int k = 0; k < bytes; k++) {
            if (o >= cap)
                return -1;
            out[o++] = (unsigned char)(x >> (16 - 8 * k));
        }
    }
    return (long)o;
}

/* Checks that item i of the answer's data has a base64 embedding decoding to
 * the little-endian float32 values want[0..n). */
static void expect_b64_embedding(cJSON *root, int i, const float *want, size_t n)
{
    cJSON *item = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "data"), i);
    cJSON *emb = cJSON_GetObjectItemCaseSensitive(item, "embedding");
    unsigned char raw[256];
    long got;
    assert_true(cJSON_IsString(emb));
    got = b64decode(emb->valuestring, raw, sizeof raw);
    if (got != (long)(n * 4))
        fail_msg("embedding %d: \"%s\" decodes to %ld bytes, expected %zu", i, emb->valuestring,
                 got, n * 4);
    for (size_t k = 0; k < n; k++) {
        uint32_t u = (uint32_t)raw[4 * k] | (uint32_t)raw[4 * k + 1] << 8 |
                     (uint32_t)raw[4 * k + 2] << 16 | (uint32_t)raw[4 * k + 3] << 24;
        float f;
        memcpy(&f, &u, 4);
        if (f != want[k])
            fail_msg("embedding %d[%zu] = %.9g, expected %.9g", i, k, (double)f, (double)want[k]);
    }
}

static void test_embeddings_to_base64(void **state)
{
    provider_result_t r;
    char why[128];
    cJSON *root, *item;
    /* 3, 1 and 2 floats: 12, 4 and 8 bytes cover every base64 padding case */
    const char *body = "{\"object\":\"list\",\"data\":["
                       "{\"object\":\"embedding\",\"index\":0,\"embedding\":[0.5,-1.25,3.0]},"
                       "{\"object\":\"embedding\",\"index\":1,\"embedding\":[1.0]},"
                       "{\"object\":\"embedding\",\"index\":2,\"embedding\":[-0.0078125,1e-3]}],"
                       "\"model\":\"text-embedding-3-small\","
                       "\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}";
    static const float e0[] = {0.5f, -1.25f, 3.0f}, e1[] = {1.0f}, e2[] = {-0.0078125f, 1e-3f};
    (void)state;
    assert_int_equal(check(NOCACHE, body, true, &r, why, sizeof why), 0);
    assert_near(r.cost_usd, 24e-6);
    assert_non_null(r.new_body);
    assert_int_equal(r.new_len, strlen(r.new_body));
    root = cJSON_Parse(r.new_body);
    assert_non_null(root);
    expect_b64_embedding(root, 0, e0, 3);
    expect_b64_embedding(root, 1, e1, 1);
    expect_b64_embedding(root, 2, e2, 2);
    /* the known little-endian encoding of 1.0f (00 00 80 3f) */
    item = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "data"), 1);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(item, "embedding")->valuestring,
                        "AACAPw==");
    /* everything else is kept */
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "object")->valuestring, "list");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "model")->valuestring,
                        "text-embedding-3-small");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(item, "index")->valueint, 1);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(item, "object")->valuestring, "embedding");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(root, "usage"), "prompt_tokens")
                         ->valueint,
                     8);
    cJSON_Delete(root);
    free(r.new_body);
}

static void test_embeddings_floats_kept_without_base64_request(void **state)
{
    provider_result_t r;
    char why[128];
    (void)state;
    assert_int_equal(check(NOCACHE, "{\"data\":[{\"embedding\":[0.5,1.5]}]}", false, &r, why,
                           sizeof why),
                     0);
    assert_null(r.new_body);
    assert_int_equal(r.new_len, 0);
}

static void test_embeddings_already_base64(void **state)
{
    provider_result_t r;
    char why[128];
    (void)state;
    assert_int_equal(check(NOCACHE,
                           "{\"object\":\"list\",\"data\":[{\"embedding\":\"AACAPw==\"},"
                           "{\"embedding\":\"AAAAAA==\"}],\"usage\":{\"prompt_tokens\":2}}",
                           true, &r, why, sizeof why),
                     0);
    assert_null(r.new_body);
    assert_int_equal(r.new_len, 0);
    assert_near(r.cost_usd, 6e-6);
    /* nothing to convert at all (a chat answer) */
    assert_int_equal(check(NOCACHE, "{\"choices\":[]}", true, &r, why, sizeof why), 0);
    assert_null(r.new_body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cost_arithmetic),
        cmocka_unit_test(test_cost_cached_capped_at_prompt),
        cmocka_unit_test(test_cost_cached_defaults_to_input_price),
        cmocka_unit_test(test_answer_with_usage),
        cmocka_unit_test(test_answer_with_cached_tokens),
        cmocka_unit_test(test_answer_odd_usage_values),
        cmocka_unit_test(test_answer_without_usage),
        cmocka_unit_test(test_answer_invalid_json),
        cmocka_unit_test(test_answer_error_object),
        cmocka_unit_test(test_embeddings_to_base64),
        cmocka_unit_test(test_embeddings_floats_kept_without_base64_request),
        cmocka_unit_test(test_embeddings_already_base64),
    };
    return cmocka_run_group_tests_name("provider", tests, setup, teardown);
}
