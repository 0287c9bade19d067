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
#include "core/json.h"
#include "core/util.h"

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

/* ---- the usage object read without cJSON: a differential test ----
 * The oracle is the code provider_check_answer ran before (cJSON on the
 * usage object, then cJSON_GetObjectItemCaseSensitive), kept here verbatim;
 * both must give the same tokens and the same cost, bit for bit, on many
 * generated answers: names escaped, cut by \u0000, repeated, of other
 * types; numbers of every spelling and length around cJSON's 63-byte copy;
 * strings with good and bad surrogate escapes; nested details. */
static double oracle_num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) && v->valuedouble > 0 ? v->valuedouble : 0;
}

static int oracle_usage(const config_t *cfg, int m, const char *body, size_t len,
                        provider_result_t *out)
{
    json_span_t sp[2];
    memset(out, 0, sizeof *out);
    out->cost_usd = -1;
    out->prompt_tokens = out->completion_tokens = out->cached_tokens = -1;
    if (json_find_top_key(body, len, "error", sp, 2) > 0 &&
        !(sp[0].len == 4 && memcmp(body + sp[0].off, "null", 4) == 0))
        return -1;
    if (json_find_top_key(body, len, "usage", sp, 2) == 1 && body[sp[0].off] == '{') {
        cJSON *usage = cJSON_ParseWithLength(body + sp[0].off, sp[0].len);
        if (usage != NULL) {
            const cJSON *det = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details");
            double prompt = oracle_num(usage, "prompt_tokens");
            double completion = oracle_num(usage, "completion_tokens");
            double cached = det ? oracle_num(det, "cached_tokens") : 0;
            if (cached == 0)
                cached = oracle_num(usage, "prompt_cache_hit_tokens");
            out->prompt_tokens = util_count_i64(prompt);
            out->completion_tokens = util_count_i64(completion);
            out->cached_tokens = util_count_i64(cached);
            out->cost_usd =
                provider_cost(&cfg->models[m], (double)out->prompt_tokens,
                              (double)out->completion_tokens, (double)out->cached_tokens);
        }
        cJSON_Delete(usage);
    }
    return 0;
}

static uint64_t g_rng = 0x9E3779B97F4A7C15ULL;
static unsigned rnd(unsigned n)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (unsigned)(g_rng % n);
}

static void put(char *b, size_t cap, size_t *at, const char *s)
{
    size_t n = strlen(s);
    if (*at + n < cap) {
        memcpy(b + *at, s, n);
        *at += n;
        b[*at] = '\0';
    }
}

static const char *const KEYS[] = {
    "\"prompt_tokens\"", "\"completion_tokens\"", "\"prompt_tokens_details\"",
    "\"prompt_cache_hit_tokens\"", "\"cached_tokens\"", "\"total_tokens\"",
    "\"prompt\\u005ftokens\"", "\"\\u0070rompt_tokens\"", "\"prompt_tokens\\u0000junk\"",
    "\"completion_tokens\\u0000\"", "\"prompt_tokens \"", "\"Prompt_tokens\"",
    "\"cached\\u005Ftokens\"", "\"prompt_tokens_details\\u0000\"", "\"\\u00e9\"",
    "\"prompt\\ud83d\\ude00tokens\"", "\"\"", "\"prompt_cache_hit_tokens\\/\"", "\"\\u0170rompt_tokens\"",
    "\"a_very_long_key_name_that_is_longer_than_thirty_two_bytes\"",
    "\"prompt_tokens_details_and_more_to_overflow_the_key_buffer\"",
};

static void gen_number(char *b, size_t cap, size_t *at)
{
    static const char *const NUMS[] = {"0", "1", "7", "19", "29", "-5", "-0", "1.5", "2e3", "1E2",
                                       "3.25e-1", "0.0", "1e400", "-1e400", "123456789012345",
                                       "1234567890123456", "12345678901234567890", "9007199254740993",
                                       "4.9e-324", "1.7976931348623157e308", "100000000000000000000"};
    char tmp[160];
    unsigned k = rnd(10);
    if (k < 8) {
        put(b, cap, at, NUMS[rnd(sizeof NUMS / sizeof NUMS[0])]);
        return;
    }
    /* around cJSON's 63-byte copy: 60..66 digits, integer or with a fraction */
    {
        unsigned len = 60 + rnd(7), i = 0;
        tmp[i++] = '1';
        while (i < len) {
            if (k == 9 && i == 3)
                tmp[i++] = '.';
            else
                tmp[i++] = (char)('0' + rnd(10));
        }
        tmp[i] = '\0';
        put(b, cap, at, tmp);
    }
}

static void gen_string(char *b, size_t cap, size_t *at)
{
    static const char *const STRS[] = {"\"x\"", "\"\"", "\"a\\\"b\"", "\"\\ud83d\\ude00\"",
                                       "\"\\udc00\"", "\"\\ud800\"", "\"\\ud800x\"",
                                       "\"\\ud800\\u0041\"", "\"\\ud800\\udbff\"", "\"\\u0000\"",
                                       "\"tab\\tnl\\n\"", "\"\\u00e9t\\u00e9\"", "\"\\ud800\\\\u\""};
    put(b, cap, at, STRS[rnd(sizeof STRS / sizeof STRS[0])]);
}

static void gen_value(char *b, size_t cap, size_t *at, int depth);

static void gen_object(char *b, size_t cap, size_t *at, int depth)
{
    unsigned n = rnd(6);
    put(b, cap, at, rnd(4) == 0 ? "{ " : "{");
    for (unsigned i = 0; i < n; i++) {
        if (i > 0)
            put(b, cap, at, rnd(4) == 0 ? " ,\n" : ",");
        put(b, cap, at, KEYS[rnd(sizeof KEYS / sizeof KEYS[0])]);
        put(b, cap, at, rnd(4) == 0 ? " : " : ":");
        gen_value(b, cap, at, depth + 1);
    }
    put(b, cap, at, rnd(4) == 0 ? " }" : "}");
}

static void gen_value(char *b, size_t cap, size_t *at, int depth)
{
    unsigned k = rnd(depth > 3 ? 6 : 9);
    if (k < 3)
        gen_number(b, cap, at);
    else if (k == 3)
        gen_string(b, cap, at);
    else if (k == 4)
        put(b, cap, at, rnd(3) == 0 ? "null" : rnd(2) ? "true" : "false");
    else if (k == 5)
        gen_number(b, cap, at);
    else if (k == 6 || k == 7)
        gen_object(b, cap, at, depth);
    else {
        unsigned n = rnd(4);
        put(b, cap, at, "[");
        for (unsigned i = 0; i < n; i++) {
            if (i > 0)
                put(b, cap, at, ",");
            gen_value(b, cap, at, depth + 1);
        }
        put(b, cap, at, "]");
    }
}

static void check_same(const char *body, size_t len, int m)
{
    provider_result_t got, want;
    char why[160];
    int vo = 0;
    if (!json_validate(body, len, &vo) || !vo)
        fail_msg("generated invalid JSON: %s", body);
    assert_int_equal(provider_check_answer(g_cfg, m, body, len, false, false, &got, why, sizeof why),
                     oracle_usage(g_cfg, m, body, len, &want));
    if (got.prompt_tokens != want.prompt_tokens || got.completion_tokens != want.completion_tokens ||
        got.cached_tokens != want.cached_tokens ||
        memcmp(&got.cost_usd, &want.cost_usd, sizeof got.cost_usd) != 0)
        fail_msg("usage differs on %s: got %lld/%lld/%lld cost %.17g, want %lld/%lld/%lld cost %.17g",
                 body, (long long)got.prompt_tokens, (long long)got.completion_tokens,
                 (long long)got.cached_tokens, got.cost_usd, (long long)want.prompt_tokens,
                 (long long)want.completion_tokens, (long long)want.cached_tokens, want.cost_usd);
}

static void test_usage_without_cjson_same_as_cjson(void **state)
{
    static const char *const FIXED[] = {
        "{\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":29,\"total_tokens\":48,"
        "\"prompt_tokens_details\":{\"cached_tokens\":4,\"audio_tokens\":0}}}",
        "{\"usage\":{\"prompt_tokens\":1,\"prompt_tokens\":2,\"completion_tokens\":\"3\"}}",
        "{\"usage\":{\"prompt\\u005ftokens\":5,\"completion_tokens\\u0000x\":6}}",
        "{\"usage\":{\"prompt_tokens\":5,\"x\":\"\\udc00\"}}",
        "{\"usage\":{\"prompt_tokens\":5,\"x\":\"\\ud800\\u0041\"}}",
        "{\"usage\":{\"prompt_tokens\":5,\"x\":\"\\ud83d\\ude00\"}}",
        "{\"usage\":{\"prompt_tokens\":1234567890123456789012345678901234567890123456789012345678901}}",
        "{\"usage\":{\"prompt_tokens\":123456789012345678901234567890123456789012345678901234567890123}}",
        "{\"usage\":{\"prompt_tokens\":1234567890123456789012345678901234567890123456789012345678901234}}",
        "{\"usage\":{\"prompt_tokens\":3,\"prompt_tokens_details\":[{\"cached_tokens\":2}],"
        "\"prompt_cache_hit_tokens\":1}}",
        "{\"usage\":{\"prompt_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":0},"
        "\"prompt_cache_hit_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":1}}}",
        "{\"usage\":{\"prompt_tokens\":2.5e1,\"completion_tokens\":1e400,\"prompt_tokens_details\":"
        "{\"cached_tokens\":-3}}}",
        "{\"usage\":{},\"usage\":{\"prompt_tokens\":1}}",
        "{\"usage\":[1]}",
        "{\"usage\" : { \"prompt_tokens\" : 7 , \"completion_tokens\" :\n8 } }",
    };
    char body[4096];
    (void)state;
    for (size_t i = 0; i < sizeof FIXED / sizeof FIXED[0]; i++)
        check_same(FIXED[i], strlen(FIXED[i]), PRICED);
    for (int iter = 0; iter < 30000; iter++) {
        size_t at = 0;
        body[0] = '\0';
        static const char *const TOP[] = {
            ",\"error\":null", ",\"error\":{\"message\":\"x\"}", ",\"\\u0065rror\":1",
            ",\"error\":\"s\"", ",\"error\" : null", ",\"errors\":1", ",\"usage\":null",
            ",\"usage\":{\"prompt_tokens\":3}", ",\"us\\\"age\":{\"a\":\"\\\\\"}",
            ",\"x\":\"a\\\\\\\"b\\\\\"", ",\"choices\":[{\"message\":{\"content\":\"q\\\"uoted \\\\\"}}]",
            ",\"n\":[1,2.5,true,false,null,{\"usage\":{}}]"};
        put(body, sizeof body, &at, "{\"id\":\"x\",\"choices\":[]");
        if (rnd(8) == 0) /* more members than check_fast takes from the validator */
            for (unsigned t = 28 + rnd(10); t > 0; t--)
                put(body, sizeof body, &at, ",\"f\":0");
        for (unsigned t = rnd(3); t > 0; t--)
            put(body, sizeof body, &at, TOP[rnd(sizeof TOP / sizeof TOP[0])]);
        if (rnd(16) != 0) {
            put(body, sizeof body, &at, ",\"usage\":");
            gen_object(body, sizeof body, &at, 1);
        }
        for (unsigned t = rnd(3); t > 0; t--)
            put(body, sizeof body, &at, TOP[rnd(sizeof TOP / sizeof TOP[0])]);
        put(body, sizeof body, &at, "}");
        if (at + 2 >= sizeof body)
            continue; /* cut by the buffer */
        check_same(body, at, iter % 3 == 0 ? NOCACHE : PRICED);
    }
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
        cmocka_unit_test(test_usage_without_cjson_same_as_cjson),
        cmocka_unit_test(test_answer_invalid_json),
        cmocka_unit_test(test_answer_error_object),
        cmocka_unit_test(test_embeddings_to_base64),
        cmocka_unit_test(test_embeddings_floats_kept_without_base64_request),
        cmocka_unit_test(test_embeddings_already_base64),
    };
    return cmocka_run_group_tests_name("provider", tests, setup, teardown);
}
