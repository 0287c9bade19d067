/* Unit tests for classifier routing's pure parts (src/route/classifier.c)
 * and the rules' three-valued `classify` condition and action
 * (src/route/rules.c through router_route): the prompt, label parsing, the
 * decision cache (hits, TTL, bound, a reload's labels), which rules ask for
 * the label and which do not, the fallback, explain, and configuration
 * errors with positions. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/config.h"
#include "http/request.h"
#include "route/classifier.h"
#include "route/prompt.h"
#include "route/router.h"
#include "route/rules.h"

#define NAME "cls.yaml"

#define BASE                                                                                       \
    "providers:\n"                                                                                 \
    "  p: {type: openai, base_url: \"http://127.0.0.1:9/v1\"}\n"                                   \
    "models:\n"                                                                                    \
    "  small: {provider: p}\n"                                                                     \
    "  big: {provider: p}\n"                                                                       \
    "tiers:\n"                                                                                     \
    "  budget: [small]\n"                                                                          \
    "  standard: [small, big]\n"                                                                   \
    "  premium: [big]\n"                                                                           \
    "routing:\n"                                                                                   \
    "  default_tier: standard\n"

#define CLASSIFIER                                                                                 \
    "  classifier:\n"                                                                              \
    "    model: small\n"                                                                           \
    "    labels: {simple: budget, code: premium, reasoning: premium}\n"

static char errbuf[16384];

static config_t *load(const char *extra)
{
    char yaml[8192];
    snprintf(yaml, sizeof yaml, "%s%s", BASE, extra);
    return config_load_string(NAME, yaml, strlen(yaml), errbuf, sizeof errbuf, NULL, 0);
}

static config_t *load_ok(const char *extra)
{
    config_t *cfg = load(extra);
    if (cfg == NULL)
        fail_msg("config did not load:\n%s", errbuf);
    return cfg;
}

/* ---- prompt, labels, key ---- */

static void test_prompt(void **state)
{
    config_t *cfg = load_ok(CLASSIFIER);
    char *p = classifier_system_prompt(&cfg->classifier);
    (void)state;
    assert_non_null(strstr(p, "simple, code, reasoning"));
    free(p);
    config_unref(cfg);

    cfg = load_ok(CLASSIFIER "    prompt: \"Pick one of {labels}. Only {labels}!\"\n");
    p = classifier_system_prompt(&cfg->classifier);
    assert_string_equal(p, "Pick one of simple, code, reasoning. Only simple, code, reasoning!");
    free(p);
    config_unref(cfg);
}

static void test_parse_label(void **state)
{
    config_t *cfg = load_ok(CLASSIFIER);
    const cfg_classifier_t *cl = &cfg->classifier;
    (void)state;
    assert_int_equal(classifier_parse_label(cl, "code"), 1);
    assert_int_equal(classifier_parse_label(cl, "  Code.\n"), 1);
    assert_int_equal(classifier_parse_label(cl, "\"reasoning\""), 2);
    assert_int_equal(classifier_parse_label(cl, "`simple`"), 0);
    assert_int_equal(classifier_parse_label(cl, "SIMPLE"), 0);
    /* anything more than one label is garbage */
    assert_int_equal(classifier_parse_label(cl, "code, I think"), -1);
    assert_int_equal(classifier_parse_label(cl, "The label is code"), -1);
    assert_int_equal(classifier_parse_label(cl, "codes"), -1);
    assert_int_equal(classifier_parse_label(cl, ""), -1);
    assert_int_equal(classifier_parse_label(cl, "..."), -1);
    assert_int_equal(classifier_parse_label(cl, NULL), -1);
    config_unref(cfg);
}

static void test_input_len(void **state)
{
    const char *s = "ab\xc3\xa9z"; /* "abéz" */
    (void)state;
    assert_int_equal(classifier_input_len(s, 5, 10), 5);
    assert_int_equal(classifier_input_len(s, 5, 4), 4);
    /* never half a character: cutting after the é's first byte backs off */
    assert_int_equal(classifier_input_len(s, 5, 3), 2);
}

static void test_key(void **state)
{
    uint64_t a = classifier_key("m", "sys", "hello", 5);
    (void)state;
    assert_true(a == classifier_key("m", "sys", "hello", 5));
    assert_true(a != classifier_key("m", "sys", "hellp", 5));
    assert_true(a != classifier_key("m", "sys2", "hello", 5));
    assert_true(a != classifier_key("n", "sys", "hello", 5));
    /* the parts are delimited */
    assert_true(classifier_key("m", "ab", "c", 1) != classifier_key("m", "a", "bc", 2));
}

/* ---- decision cache ---- */

static void test_cache(void **state)
{
    config_t *cfg = load_ok(CLASSIFIER);
    const cfg_classifier_t *cl = &cfg->classifier;
    classifier_cache_t *c = classifier_cache_new(8);
    (void)state;
    assert_int_equal(classifier_cache_capacity(c), 8);
    assert_int_equal(classifier_cache_get(c, cl, 42, 1000), -1);
    classifier_cache_put(c, 42, "code", 2000);
    assert_int_equal(classifier_cache_get(c, cl, 42, 1000), 1);
    assert_int_equal(classifier_cache_get(c, cl, 43, 1000), -1);
    /* expired */
    assert_int_equal(classifier_cache_get(c, cl, 42, 2000), -1);
    assert_int_equal(classifier_cache_get(c, cl, 42, 1500), -1); /* dropped when seen expired */
    /* a label no longer configured is a miss */
    classifier_cache_put(c, 7, "poetry", 5000);
    assert_int_equal(classifier_cache_get(c, cl, 7, 1000), -1);
    /* bounded: many more keys than entries, and the table never holds more
     * than its capacity — the latest key of a set is always found */
    for (uint64_t k = 0; k < 10000; k++) {
        uint64_t key = k * 0x9E3779B97F4A7C15ULL;
        classifier_cache_put(c, key, "simple", 100000);
        assert_int_equal(classifier_cache_get(c, cl, key, 1), 0);
    }
    assert_int_equal(classifier_cache_capacity(c), 8);
    classifier_cache_free(c);
    assert_null(classifier_cache_new(0));
    classifier_cache_free(NULL);
    assert_int_equal(classifier_cache_get(NULL, cl, 1, 1), -1);
    classifier_cache_put(NULL, 1, "code", 10);
    config_unref(cfg);
}

static void test_cache_sized(void **state)
{
    classifier_cache_t *slot = NULL, *a, *b;
    (void)state;
    a = classifier_cache_sized(&slot, 16);
    assert_non_null(a);
    assert_ptr_equal(classifier_cache_sized(&slot, 16), a); /* kept */
    b = classifier_cache_sized(&slot, 64);                   /* resized */
    assert_int_equal(classifier_cache_capacity(b), 64);
    assert_null(classifier_cache_sized(&slot, 0));
    assert_null(slot);
}

/* ---- the rules: when the label is needed ---- */

#define RULES                                                                                      \
    CLASSIFIER                                                                                     \
    "  rules:\n"                                                                                   \
    "    - {name: hint, when: {header: {x-hint: yes}}, tier: premium}\n"                           \
    "    - {name: labelled, when: {keywords: [classifyme]}, classify: true}\n"                     \
    "    - {name: cond, when: {keywords: [condtest], classify: [code]}, tier: premium}\n"          \
    "    - {name: negated, when: {keywords: [negtest], not: {classify: [simple]}}, tier: budget}\n"

static const char *hint_header(void *arg, const char *name)
{
    return arg != NULL && strcmp(name, "x-hint") == 0 ? "yes" : NULL;
}

typedef struct outcome {
    enum router_status st;
    const char *rule, *tier;
    bool needed;
} outcome_t;

static outcome_t route(const config_t *cfg, const char *text, bool hint, enum rule_label state,
                       const char *label, buf_t *explain)
{
    char body[1024];
    outcome_t o = {0};
    route_t r;
    prompt_t p;
    cJSON *root;
    rule_ctx_t ctx = {.model = "auto", .key_name = "", .header = hint_header,
                      .header_arg = hint ? (void *)1 : NULL, .label_state = state, .label = -1,
                      .label_needed = &o.needed};
    for (size_t i = 0; label && i < cfg->classifier.n_labels; i++)
        if (strcmp(cfg->classifier.labels[i], label) == 0)
            ctx.label = (int)i;
    snprintf(body, sizeof body, "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
             text);
    root = cJSON_Parse(body);
    assert_non_null(root);
    prompt_init(&p, root, EP_CHAT);
    o.st = router_route(cfg, "auto", &p, &ctx, NULL, &r, explain);
    if (o.st == ROUTER_OK) {
        o.rule = router_rule_name(cfg, &r);
        o.tier = router_tier_name(cfg, &r);
    }
    prompt_free(&p);
    cJSON_Delete(root);
    return o;
}

static void test_when_label_needed(void **state)
{
    config_t *cfg = load_ok(RULES);
    outcome_t o;
    (void)state;
    /* an earlier rule decides: no label needed */
    o = route(cfg, "classifyme", true, RULE_LABEL_ASK, NULL, NULL);
    assert_int_equal(o.st, ROUTER_OK);
    assert_string_equal(o.rule, "hint");
    assert_false(o.needed);
    /* no rule's other conditions hold: decided without the label */
    o = route(cfg, "just a question", false, RULE_LABEL_ASK, NULL, NULL);
    assert_int_equal(o.st, ROUTER_OK);
    assert_string_equal(o.rule, "default");
    assert_false(o.needed);
    /* the action's conditions hold */
    o = route(cfg, "classifyme", false, RULE_LABEL_ASK, NULL, NULL);
    assert_int_equal(o.st, ROUTER_NEED_LABEL);
    assert_true(o.needed);
    /* a condition the others leave open, also under not */
    o = route(cfg, "condtest", false, RULE_LABEL_ASK, NULL, NULL);
    assert_int_equal(o.st, ROUTER_NEED_LABEL);
    o = route(cfg, "negtest", false, RULE_LABEL_ASK, NULL, NULL);
    assert_int_equal(o.st, ROUTER_NEED_LABEL);
    config_unref(cfg);
}

static void test_with_label(void **state)
{
    config_t *cfg = load_ok(RULES);
    outcome_t o;
    (void)state;
    o = route(cfg, "classifyme", false, RULE_LABEL_KNOWN, "code", NULL);
    assert_int_equal(o.st, ROUTER_OK);
    assert_string_equal(o.rule, "labelled");
    assert_string_equal(o.tier, "premium");
    o = route(cfg, "classifyme", false, RULE_LABEL_KNOWN, "simple", NULL);
    assert_string_equal(o.tier, "budget");
    o = route(cfg, "condtest", false, RULE_LABEL_KNOWN, "code", NULL);
    assert_string_equal(o.rule, "cond");
    o = route(cfg, "condtest", false, RULE_LABEL_KNOWN, "reasoning", NULL);
    assert_string_equal(o.rule, "default");
    o = route(cfg, "negtest", false, RULE_LABEL_KNOWN, "code", NULL);
    assert_string_equal(o.rule, "negated");
    o = route(cfg, "negtest", false, RULE_LABEL_KNOWN, "simple", NULL);
    assert_string_equal(o.rule, "default");
    config_unref(cfg);
}

static void test_fallback(void **state)
{
    config_t *cfg = load_ok(RULES);
    outcome_t o;
    (void)state;
    /* classify conditions and actions do not match; the rest of the rules go on */
    o = route(cfg, "classifyme condtest", false, RULE_LABEL_FALLBACK, NULL, NULL);
    assert_int_equal(o.st, ROUTER_OK);
    assert_string_equal(o.rule, "default");
    /* not {classify} is true when classify does not match */
    o = route(cfg, "negtest", false, RULE_LABEL_FALLBACK, NULL, NULL);
    assert_string_equal(o.rule, "negated");
    config_unref(cfg);
}

static void test_explain(void **state)
{
    config_t *cfg = load_ok(RULES);
    buf_t ex;
    outcome_t o;
    (void)state;
    buf_init(&ex, 1 << 20);
    /* asked while explaining: never waits; says it would ask */
    o = route(cfg, "classifyme", false, RULE_LABEL_ASK, NULL, &ex);
    assert_int_equal(o.st, ROUTER_OK);
    assert_string_equal(o.rule, "default");
    assert_true(o.needed);
    assert_non_null(strstr(buf_cstr(&ex), "would be the classifier label"));
    buf_free(&ex);
    buf_init(&ex, 1 << 20);
    /* every condition is shown, but a rule whose keyword fails does not
     * hang on the label */
    o = route(cfg, "nothing", false, RULE_LABEL_EXPLAIN, NULL, &ex);
    assert_false(o.needed);
    assert_non_null(strstr(buf_cstr(&ex), "needs the classifier's label"));
    buf_free(&ex);
    config_unref(cfg);
}

/* ---- configuration errors ---- */

static void bad(const char *extra, const char *pos, const char *msg)
{
    config_t *cfg = load(extra);
    if (cfg != NULL)
        fail_msg("accepted: %s", extra);
    if (strstr(errbuf, pos) == NULL || strstr(errbuf, msg) == NULL)
        fail_msg("expected %s and \"%s\" in:\n%s", pos, msg, errbuf);
}

static void test_config_errors(void **state)
{
    (void)state;
    /* BASE has 11 lines: the classifier's keys start on line 12 */
    bad("  classifier: {model: nope, labels: {a: budget}}\n", NAME ":12:", "no model named \"nope\"");
    bad("  classifier: {model: small, labels: {a: nowhere}}\n", NAME ":12:", "no tier named \"nowhere\"");
    bad("  classifier: {model: small, labels: {a: budget}, timeout_ms: 5}\n", NAME ":12:",
        "timeout_ms");
    bad("  classifier: {model: small, labels: {Bad Label: budget}}\n", NAME ":12:", "must be 1-32");
    bad("  classifier: {model: small}\n", NAME ":12:", "missing \"labels\"");
    bad("  classifier: {labels: {a: budget}}\n", NAME ":12:", "missing \"model\"");
    bad("  classifier: {model: small, labels: {a: budget}, colour: red}\n", NAME ":12:",
        "unknown key");
    bad("  rules:\n    - {name: r, when: {classify: [a]}, tier: premium}\n", NAME ":13:",
        "needs routing.classifier");
    bad("  rules:\n    - {name: r, when: {keywords: [x]}, classify: true}\n", NAME ":13:",
        "needs routing.classifier");
    /* the rules may come before the classifier in the file */
    bad("  rules:\n    - {name: r, when: {classify: [b]}, tier: premium}\n"
        "  classifier: {model: small, labels: {a: budget}}\n",
        NAME ":13:", "\"b\" is not a label");
    bad(CLASSIFIER "  rules:\n    - {name: r, when: {keywords: [x]}, classify: true, tier: budget}\n",
        NAME ":16:", "takes the tier from the label");
}

/* The scorer's condition decides before the classifier's (both
 * conditions of one rule): a low score leaves nothing to ask. */
static void test_with_complexity(void **state)
{
    config_t *cfg = load_ok(CLASSIFIER "  rules:\n"
                                       "    - {name: hard, when: {complexity: {min: 0.99999}, "
                                       "classify: [code]}, tier: premium}\n"
                                       "    - {name: easy, when: {complexity: {max: 0.99999}, "
                                       "classify: [simple]}, tier: budget}\n");
    outcome_t o;
    (void)state;
    o = route(cfg, "hi", false, RULE_LABEL_ASK, NULL, NULL);
    assert_int_equal(o.st, ROUTER_NEED_LABEL); /* "hard" is false, "easy" needs the label */
    o = route(cfg, "hi", false, RULE_LABEL_KNOWN, "code", NULL);
    assert_string_equal(o.rule, "default");
    o = route(cfg, "hi", false, RULE_LABEL_KNOWN, "simple", NULL);
    assert_string_equal(o.rule, "easy");
    config_unref(cfg);
    cfg = load_ok(CLASSIFIER "  rules:\n"
                             "    - {name: hard, when: {complexity: {min: 0.99999}, "
                             "classify: [code]}, tier: premium}\n");
    o = route(cfg, "hi", false, RULE_LABEL_ASK, NULL, NULL);
    assert_int_equal(o.st, ROUTER_OK); /* decided by the score alone */
    assert_string_equal(o.rule, "default");
    assert_false(o.needed);
    config_unref(cfg);
}

static void test_rules_before_classifier(void **state)
{
    config_t *cfg = load_ok("  rules:\n    - {name: r, when: {classify: [code]}, tier: premium}\n" CLASSIFIER);
    (void)state;
    assert_true(cfg->classifier.enabled);
    assert_int_equal(cfg->classifier.timeout_ms, 400); /* the default */
    config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompt),
        cmocka_unit_test(test_parse_label),
        cmocka_unit_test(test_input_len),
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_cache_sized),
        cmocka_unit_test(test_when_label_needed),
        cmocka_unit_test(test_with_label),
        cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_explain),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_with_complexity),
        cmocka_unit_test(test_rules_before_classifier),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
