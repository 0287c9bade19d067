/* Unit tests for src/core/presets.c and config_presets.c: every preset's
 * URL, auth header and quirk flags as a loaded provider has them; Azure's
 * URL (resource, per-model deployment, api-version); a base_url with a
 * query; query: encoded; headers: sent, secrets from ${VAR}, CR/LF refused;
 * each override; each mistake at its FILE:LINE:COL. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/presets.h"
#include "upstream/redact.h"

#define NAME "t.yaml"
#define BUFSZ 8192
#define TAIL "tiers:\n  t1: [m1]\nrouting:\n  default_tier: t1\n"

static char errbuf[BUFSZ], warnbuf[BUFSZ];

static config_t *load(const char *yaml)
{
    return config_load_string(NAME, yaml, strlen(yaml), errbuf, sizeof errbuf, warnbuf,
                              sizeof warnbuf);
}

static config_t *load_ok(const char *yaml)
{
    config_t *cfg = load(yaml);
    if (cfg == NULL)
        fail_msg("config did not load:\n%s\n%s", errbuf, yaml);
    return cfg;
}

/* The load fails with "t.yaml:L:C: ...msg..." at the first occurrence of at. */
static void expect_error_at(const char *yaml, const char *at, const char *msg)
{
    const char *p = strstr(yaml, at);
    int line = 1, col = 1;
    char prefix[64];
    config_t *cfg;
    if (p == NULL)
        fail_msg("test bug: \"%s\" not in the YAML", at);
    for (const char *q = yaml; q < p; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    cfg = load(yaml);
    if (cfg != NULL) {
        config_unref(cfg);
        fail_msg("config loaded, expected an error containing: %s", msg);
    }
    snprintf(prefix, sizeof prefix, NAME ":%d:%d: ", line, col);
    for (p = errbuf; *p; p = strchr(p, '\n') + 1) {
        const char *end = strchr(p, '\n'), *hit;
        assert_non_null(end);
        hit = strstr(p, msg);
        if (strncmp(p, prefix, strlen(prefix)) == 0 && hit != NULL && hit < end)
            return;
    }
    fail_msg("no error \"%s%s...\" in:\n%s", prefix, msg, errbuf);
}

/* A one-provider config with the given provider and model bodies. */
static config_t *one(const char *prov, const char *model)
{
    char y[2048];
    snprintf(y, sizeof y, "providers:\n  p1: {%s}\nmodels:\n  m1: {provider: p1%s%s}\n" TAIL, prov,
             model[0] ? ", " : "", model);
    return load_ok(y);
}

static void url_of(const config_t *cfg, const char *path, char *buf, size_t len)
{
    assert_int_equal(presets_url(&cfg->providers[0], &cfg->models[0], path, buf, len), 0);
}

/* The header line starting with name (case-sensitive), or NULL. */
static const char *header(const cfg_provider_t *p, const char *name)
{
    for (const struct curl_slist *h = p->headers; h != NULL; h = h->next)
        if (strncmp(h->data, name, strlen(name)) == 0 && h->data[strlen(name)] == ':')
            return h->data;
    return NULL;
}

static int count_auth(const cfg_provider_t *p)
{
    int n = 0;
    for (const struct curl_slist *h = p->headers; h != NULL; h = h->next)
        n += strncmp(h->data, "Authorization:", 14) == 0 || strncmp(h->data, "api-key:", 8) == 0 ||
             strncmp(h->data, "x-api-key:", 10) == 0;
    return n;
}

static const struct {
    const char *preset, *url, *env, *auth;
    unsigned quirks;
    enum provider_type type;
} want[] = {
    {"openai", "https://api.openai.com/v1/chat/completions", "OPENAI_API_KEY",
     "Authorization: Bearer k-0123456789", 0, PROVIDER_OPENAI},
    {"anthropic", "https://api.anthropic.com/v1/messages", "ANTHROPIC_API_KEY",
     "x-api-key: k-0123456789", 0, PROVIDER_ANTHROPIC},
    {"gemini", "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions",
     "GEMINI_API_KEY", "Authorization: Bearer k-0123456789", QUIRK_TOOL_INDEX | QUIRK_ARRAY_ERRORS,
     PROVIDER_OPENAI},
    {"deepseek", "https://api.deepseek.com/v1/chat/completions", "DEEPSEEK_API_KEY",
     "Authorization: Bearer k-0123456789", 0, PROVIDER_OPENAI},
    {"mistral", "https://api.mistral.ai/v1/chat/completions", "MISTRAL_API_KEY",
     "Authorization: Bearer k-0123456789", QUIRK_FLAT_ERRORS | QUIRK_TOOL_ID9, PROVIDER_OPENAI},
    {"groq", "https://api.groq.com/openai/v1/chat/completions", "GROQ_API_KEY",
     "Authorization: Bearer k-0123456789", QUIRK_DROP_PARAMS, PROVIDER_OPENAI},
    {"openrouter", "https://openrouter.ai/api/v1/chat/completions", "OPENROUTER_API_KEY",
     "Authorization: Bearer k-0123456789", 0, PROVIDER_OPENAI},
    {"together", "https://api.together.xyz/v1/chat/completions", "TOGETHER_API_KEY",
     "Authorization: Bearer k-0123456789", 0, PROVIDER_OPENAI},
    {"fireworks", "https://api.fireworks.ai/inference/v1/chat/completions", "FIREWORKS_API_KEY",
     "Authorization: Bearer k-0123456789", 0, PROVIDER_OPENAI},
    {"xai", "https://api.x.ai/v1/chat/completions", "XAI_API_KEY",
     "Authorization: Bearer k-0123456789", 0, PROVIDER_OPENAI},
    {"ollama", "http://127.0.0.1:11434/v1/chat/completions", NULL, NULL, 0, PROVIDER_OPENAI},
    {"vllm", "http://127.0.0.1:8000/v1/chat/completions", NULL, NULL, 0, PROVIDER_OPENAI},
    {"llamacpp", "http://127.0.0.1:8080/v1/chat/completions", NULL, NULL, 0, PROVIDER_OPENAI},
};

static void test_every_preset(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char prov[128], url[512];
        config_t *cfg;
        const cfg_provider_t *p;
        if (want[i].env)
            setenv(want[i].env, "k-0123456789", 1);
        snprintf(prov, sizeof prov, "preset: %s", want[i].preset);
        cfg = one(prov, "");
        p = &cfg->providers[0];
        url_of(cfg, want[i].type == PROVIDER_ANTHROPIC ? "/messages" : "/chat/completions", url,
               sizeof url);
        assert_string_equal(url, want[i].url);
        assert_int_equal(p->type, want[i].type);
        assert_int_equal(p->quirks, want[i].quirks);
        if (want[i].env == NULL) {
            assert_null(p->api_key_env);
            assert_int_equal(count_auth(p), 0);
        } else {
            const char *name = strchr(want[i].auth, ':');
            char hn[32];
            snprintf(hn, sizeof hn, "%.*s", (int)(name - want[i].auth), want[i].auth);
            assert_string_equal(p->api_key_env, want[i].env);
            assert_non_null(header(p, hn));
            assert_string_equal(header(p, hn), want[i].auth);
            assert_int_equal(count_auth(p), 1); /* one credential, never two */
            unsetenv(want[i].env);
        }
        assert_string_equal(p->preset, want[i].preset);
        config_unref(cfg);
    }
}

static void test_azure(void **state)
{
    char url[512];
    config_t *cfg;
    size_t klen;
    (void)state;
    setenv("AZURE_OPENAI_API_KEY", "az-secret-0123456789", 1);
    cfg = one("preset: azure, resource: my-res", "model: gpt-4o, deployment: prod-4o");
    url_of(cfg, "/chat/completions", url, sizeof url);
    assert_string_equal(url, "https://my-res.openai.azure.com/openai/deployments/prod-4o/"
                             "chat/completions?api-version=2024-10-21");
    assert_string_equal(header(&cfg->providers[0], "api-key"), "api-key: az-secret-0123456789");
    assert_int_equal(count_auth(&cfg->providers[0]), 1);
    /* the key is masked in provider text */
    assert_string_equal(redact_provider_key(&cfg->providers[0], &klen), "az-secret-0123456789");
    config_unref(cfg);
    /* deployment defaults to the upstream name; api_version overrides */
    cfg = one("preset: azure, resource: r2, api_version: 2025-01-01-preview", "model: gpt-4o-mini");
    url_of(cfg, "/embeddings", url, sizeof url);
    assert_string_equal(url, "https://r2.openai.azure.com/openai/deployments/gpt-4o-mini/"
                             "embeddings?api-version=2025-01-01-preview");
    config_unref(cfg);
    /* a deployment with odd bytes is encoded in the path */
    cfg = one("preset: azure, resource: r3", "deployment: \"a b/c\"");
    url_of(cfg, "/chat/completions", url, sizeof url);
    assert_string_equal(url, "https://r3.openai.azure.com/openai/deployments/a%20b%2Fc/"
                             "chat/completions?api-version=2024-10-21");
    config_unref(cfg);
    unsetenv("AZURE_OPENAI_API_KEY");
    expect_error_at("providers:\n  p1: {preset: azure}\nmodels:\n  m1: {provider: p1}\n" TAIL,
                    "{preset: azure}", "preset azure needs \"resource\"");
}

/* the bug of the issue: the path went after the base_url's query */
static void test_base_url_query(void **state)
{
    char url[512];
    config_t *cfg;
    (void)state;
    cfg = one("type: openai, base_url: \"https://x.example/openai/deployments/d?api-version=v1\"",
              "");
    url_of(cfg, "/chat/completions", url, sizeof url);
    assert_string_equal(url, "https://x.example/openai/deployments/d/chat/completions?api-version=v1");
    config_unref(cfg);
    /* query: added, encoded, after the base_url's own */
    cfg = one("type: openai, base_url: \"http://h/v1/?a=1\", query: {b: \"x y&z\", \"k=\": \"é\"}",
              "");
    url_of(cfg, "/chat/completions", url, sizeof url);
    assert_string_equal(url, "http://h/v1/chat/completions?a=1&b=x%20y%26z&k%3D=%C3%A9");
    config_unref(cfg);
    /* a preset's base overridden by base_url; the rest stays */
    cfg = one("preset: groq, base_url: \"http://127.0.0.1:9/openai/v1\"", "");
    url_of(cfg, "/chat/completions", url, sizeof url);
    assert_string_equal(url, "http://127.0.0.1:9/openai/v1/chat/completions");
    assert_int_equal(cfg->providers[0].quirks, QUIRK_DROP_PARAMS);
    assert_string_equal(cfg->providers[0].api_key_env, "GROQ_API_KEY");
    config_unref(cfg);
}

static void test_headers(void **state)
{
    config_t *cfg;
    char text[128];
    (void)state;
    setenv("T_HDR_SECRET", "hdr-secret-value-42", 1);
    setenv("T_KEY", "key-0123456789", 1);
    cfg = one("preset: openrouter, api_key_env: T_KEY, headers: {HTTP-Referer: \"https://app\", "
              "X-Secret: \"${T_HDR_SECRET}\"}",
              "");
    assert_string_equal(header(&cfg->providers[0], "HTTP-Referer"), "HTTP-Referer: https://app");
    assert_string_equal(header(&cfg->providers[0], "X-Secret"), "X-Secret: hdr-secret-value-42");
    assert_string_equal(header(&cfg->providers[0], "Authorization"),
                        "Authorization: Bearer key-0123456789");
    /* a header's secret is masked like the key */
    snprintf(text, sizeof text, "echo hdr-secret-value-42 and key-0123456789");
    assert_int_equal(redact_key_of(&cfg->providers[0], text, strlen(text)), 2);
    assert_null(strstr(text, "secret-value"));
    assert_null(strstr(text, "0123456789"));
    config_unref(cfg);
    /* auth_header and auth_scheme override the preset's */
    cfg = one("preset: openai, api_key_env: T_KEY, auth_header: X-Token, auth_scheme: Token", "");
    assert_string_equal(header(&cfg->providers[0], "X-Token"), "X-Token: Token key-0123456789");
    assert_null(header(&cfg->providers[0], "Authorization"));
    config_unref(cfg);
    unsetenv("T_KEY");
    setenv("T_HDR_SECRET", "bad\r\nInjected: 1", 1);
    expect_error_at("providers:\n  p1: {preset: vllm, headers: {X-A: \"${T_HDR_SECRET}\"}}\n"
                    "models:\n  m1: {provider: p1}\n" TAIL,
                    "\"${T_HDR", "providers.p1.headers.X-A: the value is empty or has a line break");
    /* the message never shows the value */
    assert_null(strstr(errbuf, "Injected"));
    unsetenv("T_HDR_SECRET");
    expect_error_at("providers:\n  p1: {preset: vllm, headers: {\"a b\": x}}\nmodels:\n"
                    "  m1: {provider: p1}\n" TAIL,
                    "\"a b\"", "is not a header name");
    expect_error_at("providers:\n  p1: {preset: vllm, headers: {Content-Type: x}}\nmodels:\n"
                    "  m1: {provider: p1}\n" TAIL,
                    "Content-Type", "llmrouter sets this header itself");
}

static void test_quirks_override(void **state)
{
    config_t *cfg;
    (void)state;
    cfg = one("preset: gemini, quirks: [tool_index]", "");
    assert_int_equal(cfg->providers[0].quirks, QUIRK_TOOL_INDEX);
    config_unref(cfg);
    cfg = one("preset: mistral, quirks: []", "");
    assert_int_equal(cfg->providers[0].quirks, 0);
    config_unref(cfg);
    cfg = one("type: openai, base_url: \"http://h\", quirks: [array_errors, flat_errors, "
              "tool_id9, drop_params]",
              "");
    assert_int_equal(cfg->providers[0].quirks,
                     QUIRK_ARRAY_ERRORS | QUIRK_FLAT_ERRORS | QUIRK_TOOL_ID9 | QUIRK_DROP_PARAMS);
    config_unref(cfg);
    expect_error_at("providers:\n  p1: {preset: gemini, quirks: [tool_indx]}\nmodels:\n"
                    "  m1: {provider: p1}\n" TAIL,
                    "[tool_indx]", "unknown quirk \"tool_indx\"; did you mean \"tool_index\"?");
}

static void test_unknown_preset(void **state)
{
    (void)state;
    expect_error_at("providers:\n  p1: {preset: mistrall}\nmodels:\n  m1: {provider: p1}\n" TAIL,
                    "mistrall", "providers.p1.preset: unknown preset \"mistrall\"; did you mean "
                                "\"mistral\"?");
    expect_error_at("providers:\n  p1: {preset: openai, resource: x}\nmodels:\n"
                    "  m1: {provider: p1}\n" TAIL,
                    "{preset: openai", "resource applies only to preset: azure");
    expect_error_at("providers:\n  p1: {preset: openai}\nmodels:\n  m1: {provider: p1, deployment: d}\n"
                    TAIL,
                    "{provider: p1, d", "models.m1: deployment applies only to a provider with "
                                        "preset: azure");
    expect_error_at("providers:\n  p1: {base_url: \"http://h\"}\nmodels:\n  m1: {provider: p1}\n" TAIL,
                    "{base_url", "missing \"type\" (expected: openai or anthropic) or \"preset\"");
}

static void test_encode(void **state)
{
    char out[16];
    size_t at = 0;
    (void)state;
    assert_int_equal(presets_encode("a-_.~Z9", out, sizeof out, &at), 0);
    assert_string_equal(out, "a-_.~Z9");
    at = 0;
    assert_int_equal(presets_encode("/?", out, sizeof out, &at), 0);
    assert_string_equal(out, "%2F%3F");
    at = 0;
    assert_int_equal(presets_encode("0123456789abcdef", out, sizeof out, &at), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_preset),    cmocka_unit_test(test_azure),
        cmocka_unit_test(test_base_url_query),  cmocka_unit_test(test_headers),
        cmocka_unit_test(test_quirks_override), cmocka_unit_test(test_unknown_preset),
        cmocka_unit_test(test_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
