/* Unit tests for src/core/catalog.c and src/core/config_catalog.c: the
 * shipped table parses and is internally consistent; bad tables are refused
 * with their position; models take their entry (named or matched) and keep
 * what they set themselves; unpriced models are marked; and
 * upstream/fit.c's check reads it all. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/catalog.h"
#include "core/config.h"
#include "http/request.h"
#include "upstream/fit.h"

#define SHIPPED "config/catalog.yaml"

static char err[8192], warn[8192];

/* ---- the shipped table ---- */

static void shipped_table_parses_and_is_consistent(void **state)
{
    catalog_t *cat;
    static const char *const providers[] = {"openai", "azure", "anthropic", "gemini",
                                            "deepseek", "mistral", "groq", "openrouter",
                                            "together", "fireworks", "xai"};
    (void)state;
    cat = catalog_load(SHIPPED, err, sizeof err);
    if (cat == NULL)
        fail_msg("%s does not load:\n%s", SHIPPED, err);
    assert_int_equal(strlen(cat->date), 10);
    assert_true(cat->n_entries >= 30);
    for (size_t i = 0; i < sizeof providers / sizeof *providers; i++) {
        bool listed = false, has_models = false;
        for (size_t j = 0; j < cat->n_providers; j++)
            if (strcmp(cat->providers[j].name, providers[i]) == 0) {
                listed = true;
                assert_non_null(cat->providers[j].source);
                assert_true(strncmp(cat->providers[j].source, "https://", 8) == 0);
                has_models = cat->providers[j].same_as != NULL;
            }
        if (!listed)
            fail_msg("provider %s is not in the table", providers[i]);
        for (size_t j = 0; j < cat->n_entries; j++)
            has_models = has_models || strcmp(cat->entries[j].provider, providers[i]) == 0;
        if (!has_models)
            fail_msg("provider %s has no models", providers[i]);
    }
    /* what the parser checks, checked again on the result: prices >= 0,
     * cached <= input, max_output <= context, unique names */
    for (size_t i = 0; i < cat->n_entries; i++) {
        const catalog_entry_t *e = &cat->entries[i];
        assert_true(e->input >= 0 && e->output >= 0 && e->cache_write >= 0);
        assert_true(e->cached_input >= 0 && e->cached_input <= e->input);
        if (e->max_output_tokens > 0 && e->context_window > 0)
            assert_true(e->max_output_tokens <= e->context_window);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(e->name, cat->entries[j].name);
    }
    catalog_free(cat);
}

/* ---- bad tables ---- */

#define HEAD "date: 2026-01-31\nproviders:\n  p: {source: \"https://example.com/pricing\"}\nmodels:\n"

static void refused(const char *text, const char *needle)
{
    catalog_t *cat = catalog_parse("t.yaml", text, strlen(text), err, sizeof err);
    if (cat != NULL) {
        catalog_free(cat);
        fail_msg("accepted a table that should fail with \"%s\"", needle);
    }
    if (strstr(err, needle) == NULL)
        fail_msg("expected \"%s\" in:\n%s", needle, err);
}

static void bad_tables_are_refused_with_position(void **state)
{
    (void)state;
    refused(HEAD "  - {name: a, provider: p, input: -1, output: 1}\n",
            "t.yaml:5:35: models[0] (a).input: expected a non-negative number");
    refused(HEAD "  - {name: a, provider: p, input: 1, cached_input: 2, output: 1}\n",
            "t.yaml:5:52: models[0] (a): cached_input (2) is more than input (1)");
    refused(HEAD "  - {name: a, provider: p, input: 1, output: 1, context_window: 100, "
                 "max_output_tokens: 200}\n",
            "max_output_tokens (200) is more than context_window (100)");
    refused(HEAD "  - {name: a, provider: p, input: 1, output: 1, capabilities: [tools, telepathy]}\n",
            "unknown capability \"telepathy\"");
    refused(HEAD "  - {name: a, provider: p, input: 1, output: 1}\n"
                 "  - {name: a, provider: p, model: b, input: 1, output: 1}\n",
            "t.yaml:6:5: models: \"a\" is listed twice (also on line 5)");
    refused(HEAD "  - {name: a, provider: p, input: 1, output: 1}\n"
                 "  - {name: b, provider: p, model: a, input: 1, output: 1}\n",
            "p's upstream model \"a\" is also that of \"a\"");
    refused(HEAD "  - {name: a, provider: q, input: 1, output: 1}\n",
            "\"q\" is not listed under providers");
    refused(HEAD "  - {name: a, provider: p, input: 1}\n", "needs both \"input\" and \"output\"");
    refused("providers:\n  p: {source: \"https://x\"}\nmodels: []\n", "missing \"date\"");
    refused("date: 2026-13-01\nproviders:\n  p: {source: \"https://x\"}\nmodels: []\n",
            "date: expected YYYY-MM-DD");
    refused("date: 2026-01-01\nproviders:\n  p: {}\nmodels: []\n", "needs \"source\"");
    refused(HEAD "  - {name: a, provider: p, input: 1, output: 1, colour: red}\n",
            "unknown key \"colour\"");
}

/* ---- matching ---- */

static void matching_by_name_provider_alias_and_same_as(void **state)
{
    const char *t = "date: 2026-01-31\nproviders:\n"
                    "  openai: {source: \"https://o\"}\n"
                    "  azure: {source: \"https://a\", same_as: openai}\n"
                    "  groq: {source: \"https://g\"}\n"
                    "models:\n"
                    "  - {name: gpt-x, provider: openai, aliases: [gpt-x-2025], input: 1, output: 2}\n"
                    "  - {name: groq/llama, provider: groq, model: llama-8b, input: 0.1, output: 0.2}\n";
    catalog_t *cat = catalog_parse("t.yaml", t, strlen(t), err, sizeof err);
    (void)state;
    if (cat == NULL)
        fail_msg("%s", err);
    assert_ptr_equal(catalog_find(cat, "gpt-x"), &cat->entries[0]);
    assert_null(catalog_find(cat, "gpt-y"));
    assert_ptr_equal(catalog_match(cat, "openai", "gpt-x"), &cat->entries[0]);
    assert_ptr_equal(catalog_match(cat, "openai", "gpt-x-2025"), &cat->entries[0]);
    assert_ptr_equal(catalog_match(cat, "azure", "gpt-x"), &cat->entries[0]);
    assert_null(catalog_match(cat, "groq", "gpt-x"));
    assert_ptr_equal(catalog_match(cat, "groq", "llama-8b"), &cat->entries[1]);
    assert_null(catalog_match(cat, "groq", "groq/llama")); /* a name is not an upstream name */
    assert_null(catalog_match(cat, "other", "gpt-x"));
    catalog_free(cat);
}

/* ---- the configuration's side ---- */

#define CFG_HEAD                                                                                   \
    "catalog: " SHIPPED "\n"                                                                       \
    "providers:\n"                                                                                 \
    "  openai: {type: openai, base_url: \"http://h/v1\"}\n"                                       \
    "  sim: {type: openai, base_url: \"http://h/v1\"}\n"                                          \
    "  east: {preset: azure, resource: r1}\n"
#define CFG_TAIL "tiers:\n  t: [a]\nrouting:\n  default_tier: t\n"

static config_t *load_cfg(const char *models)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "%smodels:\n%s%s", CFG_HEAD, models, CFG_TAIL);
    return config_load_string("t.yaml", yaml, strlen(yaml), err, sizeof err, warn, sizeof warn);
}

static const cfg_model_t *model(const config_t *cfg, const char *name)
{
    int i = config_find_model(cfg, name);
    assert_true(i >= 0);
    return &cfg->models[i];
}

static void config_models_take_their_entry_and_keep_overrides(void **state)
{
    config_t *cfg;
    const cfg_model_t *m;
    (void)state;
    cfg = load_cfg("  a: {provider: openai, model: gpt-4o-mini}\n"              /* matched */
                   "  b: {provider: sim, model: whatever, catalog: gpt-4o}\n"    /* named */
                   "  c: {provider: sim, model: gpt-4o-mini}\n"                  /* no match */
                   "  d: {provider: openai, model: gpt-4o, input_per_mtok: 9, context_window: 1000,"
                   " capabilities: [tools]}\n"                                  /* overrides */
                   "  e: {provider: openai, model: gpt-4o, catalog: none}\n"  /* opted out */
                   "  f: {provider: east, model: gpt-4o}\n"); /* by the provider's preset */
    if (cfg == NULL)
        fail_msg("%s", err);
    m = model(cfg, "a");
    assert_string_equal(m->catalog, "gpt-4o-mini");
    assert_true(fabs(m->input_per_mtok - 0.15) < 1e-9);
    assert_true(fabs(m->cached_input_per_mtok - 0.075) < 1e-9);
    assert_int_equal(m->context_window, 128000);
    assert_int_equal(m->max_output_tokens, 16384);
    assert_true(m->caps_set);
    assert_int_equal(m->caps, CAP_TOOLS | CAP_VISION | CAP_JSON_SCHEMA);
    assert_false(m->unpriced);
    m = model(cfg, "b");
    assert_string_equal(m->catalog, "gpt-4o");
    assert_true(fabs(m->output_per_mtok - 10.0) < 1e-9);
    m = model(cfg, "c");
    assert_null(m->catalog);
    assert_true(m->unpriced);
    assert_false(m->caps_set);
    assert_int_equal(m->context_window, 0);
    m = model(cfg, "d");
    assert_true(fabs(m->input_per_mtok - 9.0) < 1e-9);
    assert_true(fabs(m->cached_input_per_mtok - 9.0) < 1e-9); /* follows the configured input */
    assert_true(fabs(m->output_per_mtok - 10.0) < 1e-9);       /* from the table */
    assert_int_equal(m->context_window, 1000);
    assert_int_equal(m->caps, CAP_TOOLS);
    m = model(cfg, "e");
    assert_null(m->catalog);
    assert_true(m->unpriced);
    m = model(cfg, "f"); /* a provider named "east" with preset: azure: azure's entries */
    assert_string_equal(m->catalog, "gpt-4o");
    assert_false(m->unpriced);
    /* one warning naming the unpriced models */
    assert_non_null(strstr(warn, "2 models without a price"));
    assert_non_null(strstr(warn, "c, e"));
    config_unref(cfg);
}

static void config_catalog_errors(void **state)
{
    config_t *cfg;
    char yaml[1024];
    (void)state;
    cfg = load_cfg("  a: {provider: sim, catalog: gpt-17}\n");
    assert_null(cfg);
    if (strstr(err, "t.yaml:7:31: models.a.catalog: the price table") == NULL)
        fail_msg("%s", err);
    assert_non_null(strstr(err, "t.yaml:7:31: models.a.catalog: the price table"));
    assert_non_null(strstr(err, "has no model named \"gpt-17\""));
    cfg = load_cfg("  a: {provider: sim, capabilities: [tools, smell]}\n");
    assert_null(cfg);
    assert_non_null(strstr(err, "unknown capability \"smell\""));
    cfg = load_cfg("  a: {provider: sim, context_window: 100, max_output_tokens: 200}\n");
    assert_null(cfg);
    assert_non_null(strstr(err, "max_output_tokens (200) is more than context_window (100)"));
    snprintf(yaml, sizeof yaml, "catalog: /nonexistent/catalog.yaml\n"
                                "providers:\n  sim: {type: openai, base_url: \"http://h\"}\n"
                                "models:\n  a: {provider: sim}\n" CFG_TAIL);
    cfg = config_load_string("t.yaml", yaml, strlen(yaml), err, sizeof err, warn, sizeof warn);
    assert_null(cfg);
    assert_non_null(strstr(err, "t.yaml:1:10: catalog: the price table /nonexistent/catalog.yaml "
                                "cannot be used"));
    snprintf(yaml, sizeof yaml, "catalog: off\n"
                                "providers:\n  openai: {type: openai, base_url: \"http://h\"}\n"
                                "models:\n  a: {provider: openai, model: gpt-4o}\n" CFG_TAIL);
    cfg = config_load_string("t.yaml", yaml, strlen(yaml), err, sizeof err, warn, sizeof warn);
    assert_non_null(cfg);
    assert_null(cfg->catalog);
    assert_true(cfg->models[0].unpriced);
    config_unref(cfg);
}

/* ---- the per-attempt check (upstream/fit.c) ---- */

static void fit_checks_context_and_capabilities(void **state)
{
    cfg_model_t m = {.name = "m", .context_window = 1000, .max_output_tokens = 500,
                     .caps = CAP_TOOLS, .caps_set = true};
    req_t req;
    char why[112];
    (void)state;
    memset(&req, 0, sizeof req);
    req.ep = EP_CHAT;
    req.est_prompt_tokens = 700;
    req.max_output = -1; /* the default output (256) fits: 956 <= 1000 */
    assert_true(fit_check(&req, &m, why, sizeof why));
    req.max_output = 400; /* 1100 > 1000 */
    assert_false(fit_check(&req, &m, why, sizeof why));
    assert_string_equal(why, "context_window (about 700 prompt + 400 output tokens, 1000 allowed)");
    req.est_prompt_tokens = 10;
    req.max_output = 600;
    assert_false(fit_check(&req, &m, why, sizeof why));
    assert_string_equal(why, "max_output_tokens (600 asked, 500 allowed)");
    req.max_output = 10;
    req.needs = fit_needs(true, true, false, NULL);
    assert_false(fit_check(&req, &m, why, sizeof why));
    assert_string_equal(why, "no_vision (the request has images)");
    req.needs = fit_needs(false, false, false, "json_schema");
    assert_false(fit_check(&req, &m, why, sizeof why));
    assert_string_equal(why, "no_json_schema (the request asks for a JSON schema response_format)");
    req.needs = fit_needs(false, false, true, "json_object");
    assert_false(fit_check(&req, &m, why, sizeof why));
    assert_string_equal(why, "no_audio (the request has audio)");
    req.needs = fit_needs(true, false, false, "json_object");
    assert_true(fit_check(&req, &m, why, sizeof why));
    /* no data: assumed able */
    m.caps_set = false;
    m.context_window = 0;
    m.max_output_tokens = 0;
    req.needs = CAP_VISION | CAP_AUDIO;
    req.est_prompt_tokens = 5000000;
    assert_true(fit_check(&req, &m, why, sizeof why));
    /* embeddings are not checked */
    m.caps_set = true;
    m.context_window = 10;
    req.ep = EP_EMBEDDINGS;
    assert_true(fit_check(&req, &m, why, sizeof why));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shipped_table_parses_and_is_consistent),
        cmocka_unit_test(bad_tables_are_refused_with_position),
        cmocka_unit_test(matching_by_name_provider_alias_and_same_as),
        cmocka_unit_test(config_models_take_their_entry_and_keep_overrides),
        cmocka_unit_test(config_catalog_errors),
        cmocka_unit_test(fit_checks_context_and_capabilities),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
