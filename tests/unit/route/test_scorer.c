/* Unit tests for the complexity scorer (src/route/scorer.c): each feature on
 * crafted texts, the weights file (the built-in copy equals
 * config/scorer/weights.txt; bad files are refused with line:column), score
 * bounds and determinism, the lazily cached score of prompt.c, and the
 * `complexity` rule condition with its configuration errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/config.h"
#include "route/prompt.h"
#include "route/router.h"
#include "route/rules.h"
#include "route/scorer.h"

extern const char scorer_default_weights[];

/* Features of a chat body given as JSON. */
static void feats_json(const char *json, double x[SCORER_N_FEATURES])
{
    cJSON *root = cJSON_Parse(json);
    prompt_t p;
    if (root == NULL)
        fail_msg("test bug: invalid JSON: %s", json);
    prompt_init(&p, root, EP_CHAT);
    scorer_features(&p, x);
    prompt_free(&p);
    cJSON_Delete(root);
}

/* Features of one user message. */
static void feats(const char *text, double x[SCORER_N_FEATURES])
{
    cJSON *root = cJSON_CreateObject(), *msgs = cJSON_AddArrayToObject(root, "messages"),
          *m = cJSON_CreateObject();
    char *json;
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", text);
    cJSON_AddItemToArray(msgs, m);
    json = cJSON_PrintUnformatted(root);
    feats_json(json, x);
    free(json);
    cJSON_Delete(root);
}

static double f1(const char *text, enum scorer_feature f)
{
    double x[SCORER_N_FEATURES];
    feats(text, x);
    return x[f];
}

/* log1p(n) / scale, as the scorer scales counts (compared with a tolerance:
 * the compiler may fold a constant log1p more exactly than libm computes it) */
static double cnt(double n, double scale)
{
    return log1p(n) / scale;
}

static void test_feature_names(void **state)
{
    (void)state;
    assert_string_equal(scorer_feature_name(SF_TOKENS), "tokens");
    assert_string_equal(scorer_feature_name(SF_NAMES), "names");
    assert_null(scorer_feature_name(SCORER_N_FEATURES));
    assert_null(scorer_feature_name(-1));
    for (int i = 0; i < SCORER_N_FEATURES; i++)
        for (int j = 0; j < i; j++)
            assert_string_not_equal(scorer_feature_name(i), scorer_feature_name(j));
}

static void test_feature_tokens_grow(void **state)
{
    double a = f1("short", SF_TOKENS), b;
    char big[4000];
    (void)state;
    memset(big, 'a', sizeof big - 1);
    for (size_t i = 5; i < sizeof big - 1; i += 6)
        big[i] = ' ';
    big[sizeof big - 1] = '\0';
    b = f1(big, SF_TOKENS);
    assert_true(a > 0);
    assert_true(b > a);
    assert_true(b < 1.2);
    assert_true(f1("", SF_TOKENS) == 0);
}

static void test_feature_code(void **state)
{
    double x[SCORER_N_FEATURES];
    (void)state;
    feats("Fix this:\n```python\ndef f(x):\n    return x + 1\n```\nThanks", x);
    assert_true(fabs(x[SF_CODE_FENCES] - cnt(2, 2)) < 1e-12);
    /* 6 non-empty lines, 2 inside the fence (the fence lines are not code) */
    assert_true(fabs(x[SF_CODE_LINES] - 2.0 / 6) < 1e-12);
    assert_true(x[SF_CODE_WORDS] > 0); /* "def", "return" */
    /* code-like lines without a fence: a statement ending in ';', a brace */
    feats("int main() {\n  printf(\"hi\");\n}\nand prose here", x);
    assert_true(fabs(x[SF_CODE_LINES] - 3.0 / 4) < 1e-12);
    assert_true(x[SF_CODE_FENCES] == 0);
    /* prose that starts with "if" is not code */
    assert_true(f1("If it rains we stay home", SF_CODE_LINES) == 0);
    assert_true(f1("Write a python function that reverses a string", SF_CODE_WORDS) > 0);
}

static void test_feature_math(void **state)
{
    double x[SCORER_N_FEATURES];
    (void)state;
    feats("Solve x^2 + 3x = 10 and find $\\frac{a}{b}$ for 5 kg at 20% load", x);
    assert_true(fabs(x[SF_MATH_OPS] - cnt(3, 5)) < 1e-12);    /* ^ + = */
    assert_true(fabs(x[SF_LATEX] - cnt(3, 4)) < 1e-12);       /* $ \frac $ */
    assert_true(fabs(x[SF_NUMBERS] - cnt(5, 5)) < 1e-12);     /* 2 3 10 5 20 */
    assert_true(fabs(x[SF_UNITS] - cnt(2, 3)) < 1e-12);       /* 5 kg, 20% */
    assert_true(x[SF_DIGITS] > 0 && x[SF_DIGITS] < 1);
    assert_true(x[SF_MATH_WORDS] > 0); /* solve */
    assert_true(fabs(f1("the value 3.14159 is pi", SF_NUMBERS) - cnt(1, 5)) < 1e-12); /* one number */
    assert_true(f1("no numbers here", SF_DIGITS) == 0);
    /* a unit word without a number before it is no unit */
    assert_true(f1("kg is a unit", SF_UNITS) == 0);
}

static void test_feature_questions_and_subtasks(void **state)
{
    double x[SCORER_N_FEATURES];
    (void)state;
    feats("Why? How? 今天怎么样？", x);
    assert_true(fabs(x[SF_QUESTIONS] - cnt(3, 3)) < 1e-12); /* full-width too */
    feats("Do these:\n1. plan\n2) build\n- test\n* ship\n• celebrate\nA. not a task\n(b) nor this", x);
    assert_true(fabs(x[SF_SUBTASKS] - cnt(5, 3)) < 1e-12);
    /* multiple-choice lines are a benchmark's template, not sub-tasks */
    assert_true(f1("Which?\nA. one\nB. two\nC. three\nD. four\nAnswer:", SF_SUBTASKS) == 0);
}

static void test_feature_markers(void **state)
{
    double x[SCORER_N_FEATURES];
    (void)state;
    feats("Explain why, step by step, and prove it.", x);
    assert_true(fabs(x[SF_REASONING] - cnt(4, 3)) < 1e-12); /* explain why "by step" prove */
    feats("You must use at least three sources and exactly one table.", x);
    assert_true(fabs(x[SF_CONSTRAINTS] - cnt(3, 3)) < 1e-12); /* must, "at least", exactly */
    assert_true(x[SF_FORMAT] == 0.5);                         /* "table" in the text */
    assert_true(fabs(f1("Write a detailed essay", SF_OUTPUT_LONG) - cnt(3, 2)) < 1e-12);
    assert_true(fabs(f1("Answer briefly, in one word", SF_OUTPUT_SHORT) - cnt(2, 2)) < 1e-12);
    /* case does not matter, word boundaries do */
    assert_true(f1("EXPLAIN", SF_REASONING) > 0);
    assert_true(f1("explained unexplainable", SF_REASONING) == 0);
}

static void test_feature_shape(void **state)
{
    double x[SCORER_N_FEATURES];
    (void)state;
    feats_json("{\"model\":\"auto\",\"max_tokens\":4000,\"response_format\":{\"type\":\"json_object\"},"
               "\"messages\":[{\"role\":\"system\",\"content\":\"You are a careful assistant.\"},"
               "{\"role\":\"user\",\"content\":\"first question here\"},"
               "{\"role\":\"assistant\",\"content\":\"an answer\"},"
               "{\"role\":\"user\",\"content\":\"and now?\"}]}",
               x);
    assert_true(fabs(x[SF_DEPTH] - cnt(2, 3)) < 1e-12); /* two turns before, the system one not */
    assert_true(x[SF_SYSTEM_TOKENS] > 0);
    assert_true(x[SF_CONTEXT_TOKENS] > 0);
    assert_true(x[SF_FORMAT] == 1);
    assert_true(fabs(x[SF_MAX_OUTPUT] - cnt(4000, 10)) < 1e-12);
    /* one user message after a system prompt: no depth, no other context
     * than the system prompt */
    feats_json("{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
               "{\"role\":\"user\",\"content\":\"hello there\"}]}",
               x);
    assert_true(x[SF_DEPTH] == 0);
    assert_true(x[SF_MAX_OUTPUT] == 0);
    feats("hello there", x);
    assert_true(x[SF_CONTEXT_TOKENS] == 0 && x[SF_SYSTEM_TOKENS] == 0 && x[SF_DEPTH] == 0);
}

static void test_feature_language(void **state)
{
    double x[SCORER_N_FEATURES];
    (void)state;
    feats("What is the capital of the country where the river flows?", x);
    assert_true(x[SF_NON_ENGLISH] == 0 && x[SF_NON_LATIN] == 0);
    feats("¿Cuál es la capital del país donde el río es más largo que los otros?", x);
    assert_true(x[SF_NON_ENGLISH] == 1 && x[SF_NON_LATIN] == 0);
    feats("请把这句话翻译成英文：今天天气很好。", x);
    assert_true(x[SF_NON_ENGLISH] == 1 && x[SF_NON_LATIN] == 1);
}

static void test_feature_words(void **state)
{
    double x[SCORER_N_FEATURES];
    (void)state;
    feats("Ask Alice whether Paris is nice. Then stop", x);
    /* Alice and Paris; "Ask" and "Then" start sentences */
    assert_true(fabs(x[SF_NAMES] - 2.0 / 8) < 1e-12);
    feats("internationalization considerations", x);
    assert_true(x[SF_LONG_WORDS] == 1);
    assert_true(x[SF_WORD_LENGTH] == 1); /* clamped */
    assert_true(f1("a b c", SF_WORD_LENGTH) == 0);
}

static void test_features_bounded_on_junk(void **state)
{
    char junk[3000];
    double x[SCORER_N_FEATURES];
    (void)state;
    for (size_t i = 0; i < sizeof junk - 1; i++)
        junk[i] = (char)(1 + (i * 131) % 255);
    junk[sizeof junk - 1] = '\0';
    feats(junk, x);
    for (int i = 0; i < SCORER_N_FEATURES; i++)
        assert_true(isfinite(x[i]) && x[i] >= 0 && x[i] <= 3);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *b;
    long n;
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = calloc(1, (size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    fclose(f);
    return b;
}

static void test_builtin_is_the_shipped_file(void **state)
{
    char *text = read_file("config/scorer/weights.txt");
    (void)state;
    if (text == NULL)
        fail_msg("run from the repository root (make unit): config/scorer/weights.txt not found");
    /* train.py writes both; a hand edit of one of them fails here */
    assert_string_equal(text, scorer_default_weights);
    assert_non_null(scorer_builtin());
    assert_string_equal(scorer_source(scorer_builtin()), "built-in");
    free(text);
}

/* A weights file with every feature at w (and the given bias). */
static void weights(buf_t *b, const char *bias, double w)
{
    char line[96];
    buf_init(b, 1 << 20);
    buf_puts(b, "# comment\nllmrouter-scorer 1\n\nbias ");
    buf_puts(b, bias);
    buf_puts(b, "\n");
    for (int i = 0; i < SCORER_N_FEATURES; i++) {
        snprintf(line, sizeof line, "%s %g\n", scorer_feature_name(i), w);
        buf_puts(b, line);
    }
}

static void expect_bad_n(const char *text, size_t len, const char *want)
{
    char err[512];
    scorer_t *s = scorer_parse("w.txt", text, len, err, sizeof err);
    if (s != NULL)
        fail_msg("accepted: %s", text);
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void expect_bad(const char *text, const char *want)
{
    expect_bad_n(text, strlen(text), want);
}

static void test_weights_good_and_bad(void **state)
{
    buf_t b;
    char err[512], *t;
    scorer_t *s;
    double x[SCORER_N_FEATURES] = {0};
    (void)state;
    weights(&b, "0.5", 0);
    s = scorer_parse("w.txt", buf_ptr(&b), buf_len(&b), err, sizeof err);
    assert_non_null(s);
    assert_true(fabs(scorer_apply(s, x) - 1 / (1 + exp(-0.5))) < 1e-12);
    scorer_free(s);
    t = buf_cstr(&b);

    expect_bad("", "w.txt:0:1: empty weights file");
    expect_bad("bias 1\n", "w.txt:1:1: expected the header line");
    expect_bad("llmrouter-scorer 2\n", "w.txt:1:1: expected the header line");
    expect_bad("llmrouter-scorer 1\nbias 1\n", "missing feature \"tokens\"");
    expect_bad("llmrouter-scorer 1\ntokens 1\n", "missing \"bias\"");
    expect_bad("llmrouter-scorer 1\n  bogus 1\n", "w.txt:2:3: unknown feature \"bogus\"");
    expect_bad("llmrouter-scorer 1\nbias 1\nbias 2\n", "w.txt:3:1: \"bias\" is given twice");
    expect_bad("llmrouter-scorer 1\ntokens\n", "w.txt:2:7: \"tokens\" needs a value");
    expect_bad("llmrouter-scorer 1\ntokens abc\n", "w.txt:2:8: \"abc\" is not a number");
    expect_bad("llmrouter-scorer 1\ntokens nan\n", "w.txt:2:8: \"nan\" is not a number");
    expect_bad("llmrouter-scorer 1\ntokens 1e9\n", "w.txt:2:8: \"1e9\" is not a number in [-1000, 1000]");
    expect_bad("llmrouter-scorer 1\ntokens 1 2\n", "w.txt:2:10: unexpected text after the value");
    expect_bad_n("llmrouter-scorer 1\ntok\0ens 1\n", 29, "w.txt:2:1: a NUL byte");
    {
        /* every feature, then a repeated one at line 4 + N */
        buf_t d;
        char want[64];
        buf_init(&d, 1 << 20);
        buf_puts(&d, t);
        buf_puts(&d, "digits 3\n");
        snprintf(want, sizeof want, "w.txt:%d:1: \"digits\" is given twice", 5 + SCORER_N_FEATURES);
        expect_bad(buf_cstr(&d), want);
        buf_free(&d);
    }
    /* the file reader: missing file */
    assert_null(scorer_load("/nonexistent/weights.txt", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/weights.txt: No such file"));
    buf_free(&b);
}

static void test_score_bounds_and_determinism(void **state)
{
    buf_t b;
    char err[256];
    double x[SCORER_N_FEATURES], y[SCORER_N_FEATURES];
    scorer_t *hi, *lo;
    const char *hard = "Prove, step by step, that x^2 + y^2 = z^2 has infinitely many integer "
                       "solutions; list at least 3 and explain why.";
    (void)state;
    weights(&b, "1000", 1000);
    hi = scorer_parse("hi", buf_ptr(&b), buf_len(&b), err, sizeof err);
    buf_free(&b);
    weights(&b, "-1000", -1000);
    lo = scorer_parse("lo", buf_ptr(&b), buf_len(&b), err, sizeof err);
    buf_free(&b);
    assert_non_null(hi);
    assert_non_null(lo);
    feats(hard, x);
    assert_true(scorer_apply(hi, x) == 1.0);
    assert_true(scorer_apply(lo, x) == 0.0);
    feats(hard, y);
    assert_memory_equal(x, y, sizeof x);
    {
        double s = scorer_apply(scorer_builtin(), x), e = scorer_apply(scorer_builtin(), y);
        assert_true(s > 0 && s < 1 && s == e);
        /* a long, mathematical, multi-part prompt scores above a greeting */
        feats("hi", y);
        assert_true(s > scorer_apply(scorer_builtin(), y));
    }
    scorer_free(hi);
    scorer_free(lo);
}

static void test_prompt_score_cached(void **state)
{
    cJSON *root = cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":\"Why 2+2=4?\"}]}");
    prompt_t p;
    buf_t b, top;
    char err[256];
    scorer_t *one;
    double first;
    (void)state;
    weights(&b, "0", 1);
    one = scorer_parse("one", buf_ptr(&b), buf_len(&b), err, sizeof err);
    buf_free(&b);
    prompt_init(&p, root, EP_CHAT);
    assert_false(p.have_score);
    first = prompt_score(&p, scorer_builtin());
    assert_true(p.have_score);
    /* computed once: a second call does not rescore */
    assert_true(prompt_score(&p, one) == first);
    buf_init(&top, 1024);
    scorer_top_features(one, p.score_x, 2, &top);
    assert_non_null(strstr(buf_cstr(&top), " +"));
    assert_non_null(strstr(buf_cstr(&top), ", "));
    buf_free(&top);
    prompt_free(&p);
    cJSON_Delete(root);
    scorer_free(one);
}

/* ---- the complexity condition ---- */

#define CFG                                                                                        \
    "providers: {p: {type: openai, base_url: \"http://127.0.0.1:9/v1\"}}\n"                        \
    "models: {small: {provider: p}, big: {provider: p}}\n"                                         \
    "tiers: {cheap: [small], strong: [big]}\n"                                                     \
    "routing:\n"                                                                                   \
    "  default_tier: cheap\n"

static config_t *load(const char *yaml, char *err, size_t errlen)
{
    return config_load_string("r.yaml", yaml, strlen(yaml), err, errlen, NULL, 0);
}

static const char *route_text(config_t *cfg, const char *text)
{
    static char name[64];
    cJSON *root = cJSON_CreateObject(), *msgs = cJSON_AddArrayToObject(root, "messages"),
          *m = cJSON_CreateObject();
    prompt_t p;
    route_t r;
    rule_ctx_t ctx = {.model = "auto", .key_name = ""};
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", text);
    cJSON_AddItemToArray(msgs, m);
    prompt_init(&p, root, EP_CHAT);
    assert_int_equal(router_route(cfg, "auto", &p, &ctx, NULL, &r, NULL), ROUTER_OK);
    snprintf(name, sizeof name, "%s", router_rule_name(cfg, &r));
    prompt_free(&p);
    cJSON_Delete(root);
    return name;
}

static void test_condition_routes_by_band(void **state)
{
    char err[2048];
    config_t *cfg;
    const char *hard = "A committee must schedule 12 meetings over 5 days. Each day holds at "
                       "most 3 meetings, meetings 1-4 need different days, and 2*x + 3 = 11. "
                       "How many schedules exist? Why? What changes if day 3 is a holiday? "
                       "Give the count for each case and explain the reasoning in detail.";
    (void)state;
    cfg = load(CFG "  rules:\n"
                   "    - {name: hard, when: {complexity: {min: 0.2}}, tier: strong}\n"
                   "    - {name: easy, when: {complexity: {max: 0.12}}, tier: cheap}\n"
                   "    - {name: band, when: {all: [{complexity: {min: 0.12, max: 0.2}},"
                   " {not: {tools: true}}]}, tier: cheap}\n",
               err, sizeof err);
    if (cfg == NULL)
        fail_msg("%s", err);
    assert_string_equal(route_text(cfg, hard), "hard");
    assert_string_equal(route_text(cfg, "hi"), "easy");
    assert_string_equal(route_text(cfg, "What is the capital of France?"), "band");
    config_unref(cfg);
}

static void expect_cfg_error(const char *rules, const char *want)
{
    char err[2048], yaml[4096];
    config_t *cfg;
    snprintf(yaml, sizeof yaml, CFG "%s", rules);
    cfg = load(yaml, err, sizeof err);
    if (cfg != NULL) {
        config_unref(cfg);
        fail_msg("accepted: %s", rules);
    }
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void test_condition_errors(void **state)
{
    (void)state;
    expect_cfg_error("  rules: [{name: x, when: {complexity: {min: 1.5}}, tier: strong}]\n",
                     "r.yaml:6:46: routing.rules[0].when.complexity.min: expected a score between 0 and 1, found \"1.5\"");
    expect_cfg_error("  rules: [{name: x, when: {complexity: {max: -0.1}}, tier: strong}]\n",
                     "expected a score between 0 and 1, found \"-0.1\"");
    expect_cfg_error("  rules: [{name: x, when: {complexity: {min: high}}, tier: strong}]\n",
                     "found \"high\"");
    expect_cfg_error("  rules: [{name: x, when: {complexity: {min: 0.6, max: 0.4}}, tier: strong}]\n",
                     "min 0.6 is above max 0.4");
    expect_cfg_error("  rules: [{name: x, when: {complexity: {above: 0.4}}, tier: strong}]\n",
                     "above");
    expect_cfg_error("  rules: [{name: x, when: {complexity: {}}, tier: strong}]\n",
                     "expected {min: X} and/or {max: Y}");
    expect_cfg_error("  rules: [{name: x, when: {complexity: 0.5}, tier: strong}]\n",
                     "routing.rules[0].when.complexity: expected a mapping");
}

static void test_config_weights_file(void **state)
{
    char err[2048], yaml[4096], path[] = "/tmp/llmrouter-test-weights-XXXXXX";
    int fd = mkstemp(path);
    FILE *f;
    buf_t b;
    config_t *cfg;
    (void)state;
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    /* all weights 0 and bias +5: every prompt scores 0.993 */
    weights(&b, "5", 0);
    fwrite(buf_ptr(&b), 1, buf_len(&b), f);
    fclose(f);
    buf_free(&b);
    snprintf(yaml, sizeof yaml,
             CFG "  scorer: {weights: \"%s\"}\n"
                 "  rules: [{name: hard, when: {complexity: {min: 0.99}}, tier: strong}]\n",
             path);
    cfg = load(yaml, err, sizeof err);
    if (cfg == NULL)
        fail_msg("%s", err);
    assert_string_equal(route_text(cfg, "hi"), "hard");
    config_unref(cfg);
    /* the rules may come before the scorer key */
    snprintf(yaml, sizeof yaml,
             CFG "  rules: [{name: hard, when: {complexity: {min: 0.99}}, tier: strong}]\n"
                 "  scorer: {weights: \"%s\"}\n",
             path);
    cfg = load(yaml, err, sizeof err);
    assert_non_null(cfg);
    assert_string_equal(route_text(cfg, "hi"), "hard");
    config_unref(cfg);
    /* a bad weights file: the config's position and the file's */
    f = fopen(path, "w");
    fputs("llmrouter-scorer 1\nbias 1\ntokenz 2\n", f);
    fclose(f);
    snprintf(yaml, sizeof yaml, CFG "  scorer: {weights: \"%s\"}\n", path);
    assert_null(load(yaml, err, sizeof err));
    {
        char want[256];
        snprintf(want, sizeof want, "r.yaml:6:21: routing.scorer.weights: %s:3:1: unknown feature \"tokenz\"",
                 path);
        if (strstr(err, want) == NULL)
            fail_msg("error \"%s\" lacks \"%s\"", err, want);
    }
    unlink(path);
    assert_null(load(CFG "  scorer: {weights: /nonexistent/w.txt}\n", err, sizeof err));
    assert_non_null(strstr(err, "routing.scorer.weights: /nonexistent/w.txt: No such file"));
    assert_null(load(CFG "  scorer: {weight: x}\n", err, sizeof err));
    assert_non_null(strstr(err, "weight"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feature_names),
        cmocka_unit_test(test_feature_tokens_grow),
        cmocka_unit_test(test_feature_code),
        cmocka_unit_test(test_feature_math),
        cmocka_unit_test(test_feature_questions_and_subtasks),
        cmocka_unit_test(test_feature_markers),
        cmocka_unit_test(test_feature_shape),
        cmocka_unit_test(test_feature_language),
        cmocka_unit_test(test_feature_words),
        cmocka_unit_test(test_features_bounded_on_junk),
        cmocka_unit_test(test_builtin_is_the_shipped_file),
        cmocka_unit_test(test_weights_good_and_bad),
        cmocka_unit_test(test_score_bounds_and_determinism),
        cmocka_unit_test(test_prompt_score_cached),
        cmocka_unit_test(test_condition_routes_by_band),
        cmocka_unit_test(test_condition_errors),
        cmocka_unit_test(test_config_weights_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
