/* Unit tests for the routing rule engine (src/rules.c), through the router
 * (prompt_init + router_route) and through request_parse (explain output,
 * headers, client tiers): every condition type, scopes and their
 * inheritance, combinators, actions, request shapes, a huge prompt, the
 * explain JSON and configuration errors. Rules are written in YAML and
 * loaded with config_load_string; bodies are JSON parsed with cJSON. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/config.h"
#include "route/prompt.h"
#include "http/request.h"
#include "route/router.h"
#include "route/rules.h"
#include "route/textstat.h"

#define NAME "rules.yaml"

/* Three tiers over four models of two providers; the routing mapping is left
 * open so that a test can append allow_client_tier and rules to it. */
#define BASE                                                                                       \
    "providers:\n"                                                                                 \
    "  p: {type: openai, base_url: \"http://127.0.0.1:9/v1\"}\n"                                   \
    "  q: {type: openai, base_url: \"http://127.0.0.1:9/v1\"}\n"                                   \
    "models:\n"                                                                                    \
    "  small: {provider: p}\n"                                                                     \
    "  mid: {provider: p}\n"                                                                       \
    "  big: {provider: q}\n"                                                                       \
    "  gemini: {provider: q}\n"                                                                    \
    "tiers:\n"                                                                                     \
    "  budget: [small, mid]\n"                                                                     \
    "  standard: [mid, big]\n"                                                                     \
    "  premium: [big, gemini]\n"                                                                   \
    "routing:\n"                                                                                   \
    "  default_tier: standard\n"                                                                   \
    "  routable_models: [gpt-4o, gpt-4o-mini, my-app]\n"

static char errbuf[16384];

static config_t *load(const char *yaml)
{
    memset(errbuf, 'X', sizeof errbuf);
    return config_load_string(NAME, yaml, strlen(yaml), errbuf, sizeof errbuf, NULL, 0);
}

/* BASE + extra (more keys of the routing mapping); must load. */
static config_t *load_routing(const char *extra)
{
    size_t n = strlen(BASE) + strlen(extra) + 1;
    char *yaml = malloc(n);
    config_t *cfg;
    assert_non_null(yaml);
    snprintf(yaml, n, "%s%s", BASE, extra);
    cfg = load(yaml);
    if (cfg == NULL)
        fail_msg("config did not load:\n%s\n--- yaml:\n%s", errbuf, yaml);
    free(yaml);
    assert_string_equal(errbuf, "");
    return cfg;
}

/* BASE + "  rules:\n" + rules (list items indented by 4); must load. */
static config_t *load_rules(const char *rules)
{
    size_t n = strlen("  rules:\n") + strlen(rules) + 1;
    char *extra = malloc(n);
    config_t *cfg;
    assert_non_null(extra);
    snprintf(extra, n, "  rules:\n%s", rules);
    cfg = load_routing(extra);
    free(extra);
    return cfg;
}

/* ---- request headers for the rules ---- */

typedef struct hdr {
    const char *name, *value;
} hdr_t;

/* A NULL-terminated hdr_t array; names compared case-insensitively, as the
 * HTTP front end does. Remembers the last name asked for. */
static char last_asked[128];

static const char *hdr_get(void *arg, const char *name)
{
    const hdr_t *h = arg;
    snprintf(last_asked, sizeof last_asked, "%s", name);
    for (; h != NULL && h->name != NULL; h++)
        if (strcasecmp(h->name, name) == 0)
            return h->value;
    return NULL;
}

/* ---- routing a body ---- */

typedef struct outcome {
    enum router_status st;
    route_t r;
    const char *rule; /* router_rule_name, NULL unless st == ROUTER_OK */
    const char *tier; /* router_tier_name */
} outcome_t;

/* Routes a parsed body the way request_parse does: the client's model, key
 * name "", the headers, and x-router-tier as the client tier. */
static outcome_t route_root(const config_t *cfg, enum endpoint ep, const cJSON *root,
                            const hdr_t *hdrs)
{
    outcome_t o;
    prompt_t p;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    rule_ctx_t ctx = {.key_name = "", .header = hdr_get, .header_arg = (void *)(uintptr_t)hdrs};
    memset(&o, 0, sizeof o);
    if (!cJSON_IsString(model))
        fail_msg("test bug: body without a string model");
    ctx.model = model->valuestring;
    prompt_init(&p, root, ep);
    o.st = router_route(cfg, model->valuestring, &p, &ctx,
                        hdr_get((void *)(uintptr_t)hdrs, "x-router-tier"), &o.r, NULL);
    if (o.st == ROUTER_OK) {
        o.rule = router_rule_name(cfg, &o.r);
        o.tier = router_tier_name(cfg, &o.r);
    }
    prompt_free(&p);
    return o;
}

static outcome_t route_json(const config_t *cfg, enum endpoint ep, const char *body,
                            const hdr_t *hdrs)
{
    outcome_t o;
    cJSON *root = cJSON_Parse(body);
    if (root == NULL)
        fail_msg("test bug: invalid JSON body: %.300s", body);
    o = route_root(cfg, ep, root, hdrs);
    cJSON_Delete(root);
    return o;
}

/* {"model": model, "messages": [{"role": r1, "content": t1}, ...]} from the
 * NULL-terminated (role, text) pairs of ap. */
static cJSON *chat_v(const char *model, va_list ap)
{
    cJSON *root = cJSON_CreateObject(), *msgs = cJSON_CreateArray();
    const char *role;
    cJSON_AddStringToObject(root, "model", model);
    while ((role = va_arg(ap, const char *)) != NULL) {
        const char *text = va_arg(ap, const char *);
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", role);
        cJSON_AddStringToObject(m, "content", text);
        cJSON_AddItemToArray(msgs, m);
    }
    cJSON_AddItemToObject(root, "messages", msgs);
    return root;
}

static outcome_t route_chat(const config_t *cfg, const hdr_t *hdrs, const char *model, ...)
{
    outcome_t o;
    cJSON *root;
    va_list ap;
    va_start(ap, model);
    root = chat_v(model, ap);
    va_end(ap);
    o = route_root(cfg, EP_CHAT, root, hdrs);
    cJSON_Delete(root);
    return o;
}

static void check_rule(outcome_t o, const char *want, int line, const char *what)
{
    if (o.st != ROUTER_OK)
        fail_msg("line %d: router status %d, expected rule \"%s\" (%.200s)", line, (int)o.st, want,
                 what);
    if (strcmp(o.rule, want) != 0)
        fail_msg("line %d: rule \"%s\", expected \"%s\" (%.200s)", line, o.rule, want, what);
}

/* The rule that routes model "auto" with one user message text. */
#define USER_RULE(cfg, text, want)                                                                 \
    check_rule(route_chat(cfg, NULL, "auto", "user", (text), (const char *)NULL), want, __LINE__,  \
               text)
/* ... with the messages given as (role, text) pairs. */
#define MSGS_RULE(cfg, want, ...)                                                                  \
    check_rule(route_chat(cfg, NULL, "auto", __VA_ARGS__, (const char *)NULL), want, __LINE__,     \
               #__VA_ARGS__)
/* ... of a chat body in JSON. */
#define JSON_RULE(cfg, body, want)                                                                 \
    check_rule(route_json(cfg, EP_CHAT, body, NULL), want, __LINE__, body)

static int M(const config_t *cfg, const char *name)
{
    int i = config_find_model(cfg, name);
    if (i < 0)
        fail_msg("test bug: no model %s", name);
    return i;
}

static void check_chain(const config_t *cfg, const route_t *r, const char *const *names, size_t n)
{
    if (r->n != n)
        fail_msg("chain of %zu models, expected %zu", r->n, n);
    for (size_t i = 0; i < n; i++)
        if (r->chain[i] != M(cfg, names[i]))
            fail_msg("chain[%zu] is %s, expected %s", i, cfg->models[r->chain[i]].name, names[i]);
}

/* A string of n copies of unit (at most 64 KiB), for length tests. */
static const char *rep(const char *unit, size_t n)
{
    static char out[4][65536];
    static unsigned k;
    char *b = out[k++ % 4];
    size_t u = strlen(unit), o = 0;
    assert_true(u * n < sizeof out[0]);
    for (size_t i = 0; i < n; i++, o += u)
        memcpy(b + o, unit, u);
    b[o] = '\0';
    return b;
}

/* ================= length ================= */

static void test_tokens_boundaries_inclusive(void **state)
{
    /* ASCII text: ceil(bytes / 4) tokens */
    config_t *cfg =
        load_rules("    - {name: short, when: {max_tokens: 3}, tier: budget}\n"
                   "    - {name: long, when: {min_tokens: 5}, tier: premium}\n"
                   "    - {name: exact, when: {min_tokens: 4, max_tokens: 4}, tier: premium}\n");
    (void)state;
    USER_RULE(cfg, "", "short");
    USER_RULE(cfg, "a", "short");
    USER_RULE(cfg, rep("a", 12), "short"); /* 3 tokens: max_tokens is inclusive */
    USER_RULE(cfg, rep("a", 13), "exact"); /* 4 */
    USER_RULE(cfg, rep("a", 16), "exact"); /* 4 */
    USER_RULE(cfg, rep("a", 17), "long");  /* 5: min_tokens is inclusive */
    USER_RULE(cfg, rep("a", 4000), "long");
    /* CJK: about one token per character */
    USER_RULE(cfg, "\xe4\xbd\xa0\xe5\xa5\xbd", "short"); /* 你好 */
    USER_RULE(cfg, rep("\xe4\xbd\xa0", 5), "long");
    /* the default scope is the last user message only */
    MSGS_RULE(cfg, "short", "user", rep("a", 400), "assistant", rep("b", 400), "user", "hi");
    MSGS_RULE(cfg, "long", "user", "hi", "assistant", "ok", "user", rep("a", 400));
    MSGS_RULE(cfg, "short", "system", rep("s", 400), "user", "hi");
    config_unref(cfg);
}

static void test_tokens_zero_and_absent_text(void **state)
{
    config_t *cfg = load_rules("    - {name: empty, when: {max_tokens: 0}, tier: budget}\n");
    (void)state;
    USER_RULE(cfg, "", "empty");
    USER_RULE(cfg, "x", "default");
    /* no user message at all: the last user message is empty */
    MSGS_RULE(cfg, "empty", "system", "a long system prompt", "assistant", "hello there");
    config_unref(cfg);
}

static void test_tokens_user_scope(void **state)
{
    /* every user message; the estimate of a scope is the sum of its
     * messages' estimates: "aaaa" + "bbbbb" = 1 + 2 = 3 tokens */
    config_t *cfg = load_rules(
        "    - {name: u3, when: {scope: user, min_tokens: 3, max_tokens: 3}, tier: budget}\n"
        "    - {name: u4, when: {scope: user, min_tokens: 4}, tier: premium}\n");
    (void)state;
    MSGS_RULE(cfg, "u3", "user", "aaaa", "assistant", rep("x", 100), "user", "bbbbb");
    MSGS_RULE(cfg, "u3", "system", rep("x", 100), "user", "aaaa", "user", "bbbbb");
    MSGS_RULE(cfg, "u3", "user", "a", "user", "b", "user", "c");
    MSGS_RULE(cfg, "u4", "user", "aaaa", "user", "bbbbb", "user", "c");
    /* the join does not add a token: "aaaa" + "bbbb" is 2, not ceil(9 / 4) */
    MSGS_RULE(cfg, "default", "user", "aaaa", "user", "bbbb");
    MSGS_RULE(cfg, "default", "user", "aaaa");
    /* system and assistant text is not user text */
    MSGS_RULE(cfg, "default", "system", rep("x", 100), "assistant", rep("y", 100), "user", "hi");
    config_unref(cfg);
}

static void test_tokens_system_scope(void **state)
{
    /* system and developer messages: "aaaa" + "bbbbbbbbb" = 1 + 3 = 4 tokens */
    config_t *cfg = load_rules(
        "    - {name: s4, when: {scope: system, min_tokens: 4, max_tokens: 4}, tier: budget}\n"
        "    - {name: none, when: {scope: system, max_tokens: 0}, tier: premium}\n");
    (void)state;
    MSGS_RULE(cfg, "s4", "system", "aaaa", "user", rep("u", 200), "developer", "bbbbbbbbb");
    MSGS_RULE(cfg, "default", "system", "aaaa", "user", "hello");
    MSGS_RULE(cfg, "none", "user", rep("u", 200), "assistant", rep("a", 200));
    config_unref(cfg);
}

static void test_tokens_conversation_scope(void **state)
{
    /* every message: 4 x 1 token, plus the chat overhead of 4 messages:
     * 3 x 4 + 3 = 15 -> 19 */
    config_t *cfg =
        load_rules("    - {name: c19, when: {scope: conversation, min_tokens: 19, max_tokens: 19}, "
                   "tier: budget}\n"
                   "    - {name: c20, when: {scope: conversation, min_tokens: 20}, tier: premium}\n"
                   "    - {name: c6, when: {scope: conversation, max_tokens: 6}, tier: premium}\n");
    (void)state;
    assert_int_equal(ts_chat_overhead(4), 15);
    MSGS_RULE(cfg, "c19", "system", "aaaa", "user", "bbbb", "assistant", "cccc", "user", "dddd");
    MSGS_RULE(cfg, "c20", "system", "aaaa", "user", "bbbb", "assistant", "cccc", "user", "ddddd");
    /* messages without text still count in the overhead */
    MSGS_RULE(cfg, "c19", "system", "aaaa", "user", "bbbb", "assistant", "cccccccc", "user", "");
    /* one message of 0 tokens still costs the overhead: 3 + 3 = 6 */
    MSGS_RULE(cfg, "c6", "user", "");
    MSGS_RULE(cfg, "default", "user", "a"); /* 1 + 6 = 7 */
    config_unref(cfg);
}

static void test_scope_inherited_by_nested_combinators(void **state)
{
    /* scope: system at the top reaches conditions three levels down */
    config_t *cfg = load_rules("    - name: deep\n"
                               "      when:\n"
                               "        scope: system\n"
                               "        all:\n"
                               "          - any:\n"
                               "              - not: {max_tokens: 2}\n"
                               "              - keywords: [never-there]\n"
                               "          - keywords: [alpha]\n"
                               "      tier: premium\n");
    (void)state;
    MSGS_RULE(cfg, "deep", "system", "alpha alpha alpha", "user", "hi");
    /* the same text in the user message does not count */
    MSGS_RULE(cfg, "default", "system", "hi", "user", "alpha alpha alpha");
    /* system long enough but without alpha; alpha but short */
    MSGS_RULE(cfg, "default", "system", "beta beta beta beta", "user", "alpha");
    MSGS_RULE(cfg, "default", "system", "alpha", "user", "alpha alpha alpha alpha");
    config_unref(cfg);
}

static void test_scope_override_in_nested_mapping(void **state)
{
    config_t *cfg = load_rules("    - name: override\n"
                               "      when:\n"
                               "        scope: system\n"
                               "        keywords: [gamma]\n"
                               "        all:\n"
                               "          - scope: user\n"
                               "            any:\n"
                               "              - not:\n"
                               "                  keywords: [beta]\n"
                               "              - {scope: conversation, min_tokens: 1000}\n"
                               "      tier: budget\n");
    (void)state;
    /* gamma in system; no beta in the user messages (user scope, inherited by not) */
    MSGS_RULE(cfg, "override", "system", "gamma beta", "user", "hello");
    /* beta in a user message: the not fails; the conversation is short */
    MSGS_RULE(cfg, "default", "system", "gamma", "user", "beta");
    /* beta in an earlier user message: scope user sees every user message */
    MSGS_RULE(cfg, "default", "system", "gamma", "user", "beta", "user", "hello");
    /* conversation long enough rescues the any */
    MSGS_RULE(cfg, "override", "system", "gamma", "user", "beta", "assistant", rep("z", 4000));
    /* gamma only in the user message: top level reads system */
    MSGS_RULE(cfg, "default", "system", "hello", "user", "gamma");
    config_unref(cfg);
}

/* ================= keywords ================= */

static void test_keywords_any(void **state)
{
    config_t *cfg = load_rules("    - name: kw\n"
                               "      when: {keywords: [prove, \"step by step\", c++, Theorem]}\n"
                               "      tier: premium\n");
    (void)state;
    USER_RULE(cfg, "Please PROVE this", "kw");
    USER_RULE(cfg, "Prove it", "kw");
    USER_RULE(cfg, "prove:", "kw");
    USER_RULE(cfg, "(prove)", "kw");
    USER_RULE(cfg, "a theorem about primes", "kw"); /* keyword in capitals, text in lower */
    USER_RULE(cfg, "think Step By Step please", "kw");
    USER_RULE(cfg, "written in c++11", "kw"); /* edge '+' needs no boundary */
    USER_RULE(cfg, "line one\nprove\nline three", "kw");
    /* word boundaries */
    USER_RULE(cfg, "improve this", "default");
    USER_RULE(cfg, "a proven method", "default");
    USER_RULE(cfg, "prove_it", "default");
    USER_RULE(cfg, "prove2", "default");
    USER_RULE(cfg, "theorems", "default");
    USER_RULE(cfg, "abc++ code", "default");
    /* multi-word keywords match literally */
    USER_RULE(cfg, "step  by step", "default");
    USER_RULE(cfg, "stepbystep", "default");
    USER_RULE(cfg, "", "default");
    config_unref(cfg);
}

static void test_keywords_all(void **state)
{
    config_t *cfg =
        load_rules("    - {name: both, when: {keywords_all: [alpha, beta]}, tier: premium}\n"
                   "    - {name: one, when: {keywords: [alpha, beta]}, tier: budget}\n");
    (void)state;
    USER_RULE(cfg, "alpha and beta", "both");
    USER_RULE(cfg, "BETA, then Alpha", "both");
    USER_RULE(cfg, "alpha only", "one");
    USER_RULE(cfg, "only beta", "one");
    USER_RULE(cfg, "alphabet betamax", "default");
    USER_RULE(cfg, "gamma", "default");
    config_unref(cfg);
}

static void test_keywords_cjk(void **state)
{
    /* 翻译 (translate), 証明 (prove, Japanese), 번역 (translation, Korean) */
    config_t *cfg = load_rules("    - name: cjk\n"
                               "      when: {keywords: [\"\xe7\xbf\xbb\xe8\xaf\x91\", "
                               "\"\xe8\xa8\xbc\xe6\x98\x8e\", \"\xeb\xb2\x88\xec\x97\xad\"]}\n"
                               "      tier: budget\n");
    (void)state;
    /* 请把这句话翻译成英文 */
    USER_RULE(cfg,
              "\xe8\xaf\xb7\xe6\x8a\x8a\xe8\xbf\x99\xe5\x8f\xa5\xe8\xaf\x9d\xe7\xbf\xbb\xe8\xaf\x91"
              "\xe6\x88\x90\xe8\x8b\xb1\xe6\x96\x87",
              "cjk");
    /* この定理を証明してください */
    USER_RULE(cfg,
              "\xe3\x81\x93\xe3\x81\xae\xe5\xae\x9a\xe7\x90\x86\xe3\x82\x92\xe8\xa8\xbc\xe6\x98\x8e"
              "\xe3\x81\x97\xe3\x81\xa6\xe3\x81\x8f\xe3\x81\xa0\xe3\x81\x95\xe3\x81\x84",
              "cjk");
    /* 이 문장을 번역해 주세요 */
    USER_RULE(
        cfg,
        "\xec\x9d\xb4 \xeb\xac\xb8\xec\x9e\xa5\xec\x9d\x84 \xeb\xb2\x88\xec\x97\xad\xed\x95\xb4 "
        "\xec\xa3\xbc\xec\x84\xb8\xec\x9a\x94",
        "cjk");
    /* next to ASCII letters too: no boundary needed at a CJK edge */
    USER_RULE(cfg, "abc\xe7\xbf\xbb\xe8\xaf\x91xyz", "cjk");
    /* 翻 alone is not 翻译 */
    USER_RULE(cfg, "\xe7\xbf\xbb\xe5\x8f\xa5", "default");
    config_unref(cfg);
}

static void test_keywords_only_in_other_scope(void **state)
{
    config_t *cfg =
        load_rules("    - {name: last, when: {keywords: [secret]}, tier: budget}\n"
                   "    - {name: sys, when: {scope: system, keywords: [hidden]}, tier: premium}\n");
    (void)state;
    MSGS_RULE(cfg, "default", "system", "the secret word", "user", "hello");
    MSGS_RULE(cfg, "default", "user", "the secret word", "assistant", "ok", "user", "hello");
    MSGS_RULE(cfg, "default", "user", "hello", "assistant", "secret");
    MSGS_RULE(cfg, "last", "user", "hello", "assistant", "ok", "user", "secret");
    MSGS_RULE(cfg, "default", "user", "hidden", "assistant", "hidden");
    MSGS_RULE(cfg, "sys", "developer", "hidden", "user", "hello");
    config_unref(cfg);
}

/* Keywords of several rules share one automaton: duplicates across rules
 * (after case folding) and ids past 64 still work. */
static void test_keywords_shared_automaton(void **state)
{
    char rules[8192];
    size_t o = 0;
    config_t *cfg;
    (void)state;
    o +=
        (size_t)snprintf(rules + o, sizeof rules - o,
                         "    - {name: both, when: {keywords_all: [prove, lemma]}, tier: premium}\n"
                         "    - {name: many, when: {keywords: [");
    for (int i = 0; i < 70; i++)
        o += (size_t)snprintf(rules + o, sizeof rules - o, "%sword%d", i ? ", " : "", i);
    o += (size_t)snprintf(rules + o, sizeof rules - o,
                          "]}, tier: budget}\n"
                          "    - {name: again, when: {keywords: [PROVE]}, tier: budget}\n"
                          "    - {name: late, when: {keywords: [target]}, tier: premium}\n");
    cfg = load_rules(rules);
    USER_RULE(cfg, "prove the lemma", "both");
    USER_RULE(cfg, "prove it", "again");
    USER_RULE(cfg, "lemma", "default");
    USER_RULE(cfg, "word0", "many");
    USER_RULE(cfg, "word63", "many");
    USER_RULE(cfg, "word64", "many");
    USER_RULE(cfg, "word69", "many");
    USER_RULE(cfg, "word70", "default");
    USER_RULE(cfg, "the target", "late"); /* keyword id 72: the second hit word */
    config_unref(cfg);
}

/* ================= regular expressions ================= */

static void test_regex_case_and_anchors(void **state)
{
    config_t *cfg =
        load_rules("    - {name: ci, when: {regex: 'hello\\s+world'}, tier: premium}\n"
                   "    - {name: cs, when: {regex: '(?-i)Exact'}, tier: budget}\n"
                   "    - {name: start, when: {regex: '^fix'}, tier: budget}\n"
                   "    - {name: end, when: {regex: 'bug$'}, tier: budget}\n"
                   "    - {name: list, when: {regex: ['zzz\\d+', '^q{3}$']}, tier: premium}\n");
    (void)state;
    USER_RULE(cfg, "HELLO   World", "ci");
    USER_RULE(cfg, "say hello\tworld!", "ci");
    USER_RULE(cfg, "helloworld", "default");
    USER_RULE(cfg, "the Exact word", "cs");
    USER_RULE(cfg, "the exact word", "default");
    USER_RULE(cfg, "EXACT", "default");
    USER_RULE(cfg, "fix this", "start");
    USER_RULE(cfg, "Fix this", "start");
    USER_RULE(cfg, "please fix this", "default");
    USER_RULE(cfg, "there is a bug", "end");
    USER_RULE(cfg, "there is a BUG", "end");
    USER_RULE(cfg, "bug here", "default");
    USER_RULE(cfg, "abc zzz42", "list");
    USER_RULE(cfg, "QQQ", "list");
    USER_RULE(cfg, "qqqq", "default");
    config_unref(cfg);
}

static void test_regex_unicode_text(void **state)
{
    /* привет; ^.{3}$ counts code points, not bytes */
    config_t *cfg =
        load_rules("    - {name: ru, when: {regex: "
                   "'\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82'}, tier: budget}\n"
                   "    - {name: three, when: {regex: '^.{3}$'}, tier: premium}\n"
                   "    - {name: accent, when: {regex: 'caf\xc3\xa9'}, tier: premium}\n");
    (void)state;
    /* ПРИВЕТ мир: Unicode case folding */
    USER_RULE(cfg, "\xd0\x9f\xd0\xa0\xd0\x98\xd0\x92\xd0\x95\xd0\xa2 \xd0\xbc\xd0\xb8\xd1\x80",
              "ru");
    USER_RULE(
        cfg,
        "\xd1\x81\xd0\xba\xd0\xb0\xd0\xb6\xd0\xb8 \xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82",
        "ru");
    USER_RULE(cfg, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
              "three"); /* 日本語: 3 code points, 9 bytes */
    USER_RULE(cfg, "\xe6\x97\xa5\xe6\x9c\xac", "default");
    USER_RULE(cfg, "abc", "three");
    USER_RULE(cfg, "A CAF\xc3\x89 au lait", "accent"); /* É folds to é */
    USER_RULE(cfg, "cafe", "default");
    config_unref(cfg);
}

/* Docs: patterns are "Unicode-aware by default": \w, \b and [[:alpha:]] are
 * expected to know non-ASCII letters. */
static void test_regex_unicode_classes(void **state)
{
    static const struct {
        const char *pattern, *text;
    } cases[] = {
        {"^\\w+$", "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82"}, /* привет */
        {"\\bcaf\xc3\xa9\\b", "un caf\xc3\xa9 noir"},                   /* café */
        {"^[[:alpha:]]+$", "\xc3\xa9t\xc3\xa9"},                        /* été */
        {"\\b\xd0\xbc\xd0\xb8\xd1\x80\\b",
         "\xd0\xb2\xd0\xb5\xd1\x81\xd1\x8c \xd0\xbc\xd0\xb8\xd1\x80"}, /* \bмир\b in "весь мир" */
    };
    char failed[1024] = "";
    size_t o = 0;
    config_t *cfg = load_rules("    - {name: word, when: {regex: '^\\w+$'}, tier: budget}\n");
    (void)state;
    /* ASCII text: \w, \b work */
    USER_RULE(cfg, "hello", "word");
    USER_RULE(cfg, "hello world", "default");
    config_unref(cfg);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rules[256];
        outcome_t r;
        snprintf(rules, sizeof rules, "    - {name: hit, when: {regex: '%s'}, tier: premium}\n",
                 cases[i].pattern);
        cfg = load_rules(rules);
        r = route_chat(cfg, NULL, "auto", "user", cases[i].text, (const char *)NULL);
        assert_int_equal(r.st, ROUTER_OK);
        if (strcmp(r.rule, "hit") != 0)
            o += (size_t)snprintf(failed + o, sizeof failed - o, " /%s/ on \"%s\";",
                                  cases[i].pattern, cases[i].text);
        config_unref(cfg);
    }
    if (o > 0)
        fail_msg("Unicode letters are not word characters for:%s", failed);
}

/* Regexes are prefiltered by a plain literal that every match must contain
 * (docs/routing.md): the prefilter skips only patterns that cannot match. */
static void test_regex_prefilter_keeps_matches(void **state)
{
    config_t *cfg =
        load_rules("    - {name: lit, when: {regex: '\\b(this|that) is wrong\\b'}, tier: budget}\n"
                   "    - {name: code, when: {regex: '```\\s*python'}, tier: premium}\n"
                   "    - {name: opt, when: {regex: 'colou?r scheme'}, tier: premium}\n"
                   "    - {name: rep, when: {regex: 'ab{2}cd'}, tier: premium}\n"
                   "    - {name: ks, when: {regex: 'desk lamp'}, tier: premium}\n"
                   "    - {name: cs, when: {regex: '(?-i)Mixed Case'}, tier: premium}\n"
                   "    - {name: grp, when: {regex: '(?:foo|bar)baz'}, tier: premium}\n"
                   "    - {name: alt, when: {regex: 'qux|zed'}, tier: premium}\n"
                   "    - {name: esc, when: {regex: 'a\\.b\\.c'}, tier: premium}\n");
    (void)state;
    USER_RULE(cfg, "I think THIS is WRONG.", "lit");
    USER_RULE(cfg, "that is wrongly put", "default"); /* literal present, regex fails */
    USER_RULE(cfg, "```Python\nprint(1)\n```", "code");
    USER_RULE(cfg, "a color scheme", "opt");
    USER_RULE(cfg, "a colour scheme", "opt");
    USER_RULE(cfg, "xxABBCDxx", "rep");
    /* caseless Unicode: K (U+212A KELVIN SIGN) is k, U+017F LONG S is s */
    USER_RULE(cfg, "DES\xe2\x84\xaa LAMP", "ks");
    USER_RULE(cfg, "de\xc5\xbfk lamp", "ks");
    USER_RULE(cfg, "Mixed Case", "cs");
    USER_RULE(cfg, "mixed case", "default");
    USER_RULE(cfg, "BARBAZ", "grp");
    USER_RULE(cfg, "zed", "alt");
    USER_RULE(cfg, "a.b.c", "esc");
    USER_RULE(cfg, "aXbXc", "default");
    config_unref(cfg);
}

/* Escapes that stand for other characters (\xhh, octal, \cX, \pL, \g1) and
 * POSIX classes are not literal text: the prefilter must not require their
 * spelling. Each pattern is checked twice: once with a top-level alternative
 * (no prefilter: shows that the regex itself matches) and once alone. */
/* Top-level alternations get one literal per alternative: the regex runs
 * when any of them was seen, and an alternative without a literal disables
 * the prefilter. */
static void test_regex_prefilter_alternation(void **state)
{
    config_t *cfg;
    outcome_t r;
    (void)state;
    cfg = load_rules("    - {name: alt, when: {regex: '\\bintegral of\\b|\\bsolve for [a-z]\\b'}, tier: premium}\n"
                     "    - {name: mixed, when: {regex: 'zzzqqq|^\\d+$'}, tier: budget}\n");
    r = route_chat(cfg, NULL, "auto", "user", "What is the integral of x?", (const char *)NULL);
    check_rule(r, "alt", __LINE__, "first alternative");
    r = route_chat(cfg, NULL, "auto", "user", "Please SOLVE FOR y quickly", (const char *)NULL);
    check_rule(r, "alt", __LINE__, "second alternative, other case");
    r = route_chat(cfg, NULL, "auto", "user", "integrals of motion", (const char *)NULL);
    check_rule(r, "default", __LINE__, "literal seen but no match");
    r = route_chat(cfg, NULL, "auto", "user", "12345", (const char *)NULL);
    check_rule(r, "mixed", __LINE__, "alternative without a literal still runs");
    config_unref(cfg);
}

/* Conditions run cheapest first, but the result and the explanation
 * (in the order written) do not change. */
static void test_cost_order_keeps_semantics(void **state)
{
    config_t *cfg;
    outcome_t r;
    (void)state;
    cfg = load_rules("    - {name: de-short, when: {language: de, max_tokens: 10}, tier: budget}\n"
                     "    - {name: ru, when: {language: ru}, tier: budget}\n");
    r = route_chat(cfg, NULL, "auto", "user", "Der Hund und die Katze", (const char *)NULL);
    check_rule(r, "de-short", __LINE__, "german and short");
    r = route_chat(cfg, NULL, "auto", "user",
                   "Der Hund und die Katze sind im Garten und spielen mit dem Ball den ganzen Tag",
                   (const char *)NULL);
    check_rule(r, "default", __LINE__, "german but long");
    r = route_chat(cfg, NULL, "auto", "user", "Привет, как дела? Это русский текст.", (const char *)NULL);
    check_rule(r, "ru", __LINE__, "russian");
    config_unref(cfg);
}

static void test_regex_prefilter_escapes_and_posix_classes(void **state)
{
    static const struct {
        const char *pattern, *text;
    } cases[] = {
        {"[[:digit:]]px", "width: 12px"},
        {"abc\\x41def", "abcAdef"},
        {"xyz\\101uvw", "xyzAuvw"},
        {"pre\\cAfix", "pre\x01"
                       "fix"},
        {"\\pLxyz", "axyz"},
        {"(ab)\\g1cd", "ababcd"},
    };
    char failed[2048] = "";
    size_t o = 0;
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rules[512];
        config_t *cfg;
        outcome_t r;
        snprintf(rules, sizeof rules,
                 "    - {name: control, when: {regex: '%s|qqqqqqqqqq'}, tier: premium}\n",
                 cases[i].pattern);
        cfg = load_rules(rules);
        r = route_chat(cfg, NULL, "auto", "user", cases[i].text, (const char *)NULL);
        check_rule(r, "control", __LINE__, cases[i].pattern);
        config_unref(cfg);

        snprintf(rules, sizeof rules, "    - {name: alone, when: {regex: '%s'}, tier: premium}\n",
                 cases[i].pattern);
        cfg = load_rules(rules);
        r = route_chat(cfg, NULL, "auto", "user", cases[i].text, (const char *)NULL);
        assert_int_equal(r.st, ROUTER_OK);
        if (strcmp(r.rule, "alone") != 0)
            o += (size_t)snprintf(failed + o, sizeof failed - o, " /%s/", cases[i].pattern);
        config_unref(cfg);
    }
    if (o > 0)
        fail_msg("these patterns match the text but the prefilter skipped them:%s", failed);
}

static void test_regex_invalid_utf8_text(void **state)
{
    config_t *cfg = load_rules("    - {name: hello, when: {regex: 'hello'}, tier: premium}\n"
                               "    - {name: dot, when: {regex: '^abc.{2} '}, tier: budget}\n"
                               "    - {name: any, when: {regex: '(?s)^.*$'}, tier: budget}\n");
    (void)state;
    /* abc, two invalid bytes, " hello ", a truncated sequence */
    JSON_RULE(cfg,
              "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"abc\xff\xfe "
              "hello \xc3\"}]}",
              "hello");
    /* invalid bytes cannot be matched by a pattern character: no error, no match */
    JSON_RULE(
        cfg,
        "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"abc\xff\xfe bye\"}]}",
        "default");
    /* a valid two-character run after abc matches */
    JSON_RULE(cfg,
              "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":"
              "\"abc\xc3\xa9\xc3\xa9 bye\"}]}",
              "dot");
    /* overlong encoding and a lone continuation byte only */
    JSON_RULE(
        cfg, "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc0\xaf\x80\"}]}",
        "default");
    JSON_RULE(cfg, "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"plain\"}]}",
              "any");
    config_unref(cfg);
}

/* ================= script and language ================= */

static void test_script(void **state)
{
    config_t *cfg =
        load_rules("    - {name: han, when: {script: han}, tier: premium}\n"
                   "    - {name: cjk, when: {script: cjk}, tier: premium}\n"
                   "    - {name: cyr, when: {script: cyrillic}, tier: budget}\n"
                   "    - {name: semitic, when: {script: [arabic, hebrew]}, tier: budget}\n"
                   "    - {name: lat, when: {script: latin}, tier: standard}\n"
                   "    - {name: nothing, when: {script: none}, tier: budget}\n");
    (void)state;
    USER_RULE(cfg, "\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c", "han"); /* 你好世界 */
    USER_RULE(cfg, "\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf",
              "cjk"); /* こんにちは */
    USER_RULE(cfg, "\xec\x95\x88\xeb\x85\x95\xed\x95\x98\xec\x84\xb8\xec\x9a\x94",
              "cjk"); /* 안녕하세요 */
    USER_RULE(cfg, "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\xbc\xd0\xb8\xd1\x80",
              "cyr");
    USER_RULE(cfg, "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7", "semitic"); /* مرحبا */
    USER_RULE(cfg, "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d", "semitic");         /* שלום */
    USER_RULE(cfg, "hello there", "lat");
    USER_RULE(cfg, "12345 !!! ...", "nothing");
    USER_RULE(cfg, "", "nothing");
    /* mixed: the script with the most letters wins */
    USER_RULE(cfg, "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, how are you doing today?",
              "lat");
    USER_RULE(cfg,
              "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\xbc\xd0\xb8\xd1\x80 "
              "\xd0\xb8 \xd0\xb2\xd1\x81\xd0\xb5\xd0\xbc OK",
              "cyr");
    USER_RULE(cfg, "ok \xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c", "han");
    /* the script of the last user message only */
    MSGS_RULE(cfg, "lat", "system", "\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c", "user",
              "hello");
    config_unref(cfg);
}

static void test_script_scope(void **state)
{
    config_t *cfg =
        load_rules("    - {name: sys-han, when: {scope: system, script: cjk}, tier: premium}\n");
    (void)state;
    MSGS_RULE(cfg, "sys-han", "system", "\xe4\xbd\xa0\xe5\xa5\xbd", "user", "hello");
    MSGS_RULE(cfg, "default", "system", "hello", "user", "\xe4\xbd\xa0\xe5\xa5\xbd");
    config_unref(cfg);
}

static void test_language(void **state)
{
    config_t *cfg = load_rules("    - {name: en, when: {language: en}, tier: budget}\n"
                               "    - {name: es, when: {language: es}, tier: budget}\n"
                               "    - {name: fr, when: {language: fr}, tier: budget}\n"
                               "    - {name: de, when: {language: de}, tier: budget}\n"
                               "    - {name: zh, when: {language: zh}, tier: budget}\n"
                               "    - {name: ja, when: {language: ja}, tier: budget}\n"
                               "    - {name: ko, when: {language: ko}, tier: budget}\n"
                               "    - {name: ru, when: {language: ru}, tier: budget}\n"
                               "    - {name: und, when: {language: und}, tier: budget}\n");
    (void)state;
    USER_RULE(cfg,
              "Please explain what the difference is between a list and a tuple in Python, "
              "and when you should use each of them.",
              "en");
    USER_RULE(cfg,
              "Por favor, explica cu\xc3\xa1l es la diferencia entre una lista y una tupla en "
              "Python, y cu\xc3\xa1ndo se debe usar cada una de ellas.",
              "es");
    USER_RULE(cfg,
              "Pouvez-vous m'expliquer quelle est la diff\xc3\xa9rence entre une liste et un "
              "tuple dans Python, et quand il faut les utiliser ?",
              "fr");
    USER_RULE(cfg,
              "Kannst du mir bitte erkl\xc3\xa4ren, was der Unterschied zwischen einer Liste "
              "und einem Tupel in Python ist und wann man sie verwendet?",
              "de");
    /* 请解释一下列表和元组之间的区别。 */
    USER_RULE(cfg,
              "\xe8\xaf\xb7\xe8\xa7\xa3\xe9\x87\x8a\xe4\xb8\x80\xe4\xb8\x8b\xe5\x88\x97\xe8\xa1\xa8"
              "\xe5\x92\x8c\xe5\x85\x83\xe7\xbb\x84\xe4\xb9\x8b\xe9\x97\xb4\xe7\x9a\x84\xe5\x8c\xba"
              "\xe5\x88\xab\xe3\x80\x82",
              "zh");
    /* リストとタプルの違いを説明してください。 */
    USER_RULE(cfg,
              "\xe3\x83\xaa\xe3\x82\xb9\xe3\x83\x88\xe3\x81\xa8\xe3\x82\xbf\xe3\x83\x97\xe3\x83\xab"
              "\xe3\x81\xae\xe9\x81\x95\xe3\x81\x84\xe3\x82\x92\xe8\xaa\xac\xe6\x98\x8e\xe3\x81\x97"
              "\xe3\x81\xa6\xe3\x81\x8f\xe3\x81\xa0\xe3\x81\x95\xe3\x81\x84\xe3\x80\x82",
              "ja");
    /* 리스트와 튜플의 차이를 설명해 주세요. */
    USER_RULE(
        cfg,
        "\xeb\xa6\xac\xec\x8a\xa4\xed\x8a\xb8\xec\x99\x80 \xed\x8a\x9c\xed\x94\x8c\xec\x9d\x98 "
        "\xec\xb0\xa8\xec\x9d\xb4\xeb\xa5\xbc \xec\x84\xa4\xeb\xaa\x85\xed\x95\xb4 "
        "\xec\xa3\xbc\xec\x84\xb8\xec\x9a\x94.",
        "ko");
    /* Объясни, пожалуйста, разницу между списком и кортежем. */
    USER_RULE(cfg,
              "\xd0\x9e\xd0\xb1\xd1\x8a\xd1\x8f\xd1\x81\xd0\xbd\xd0\xb8, \xd0\xbf\xd0\xbe\xd0\xb6"
              "\xd0\xb0\xd0\xbb\xd1\x83\xd0\xb9\xd1\x81\xd1\x82\xd0\xb0, \xd1\x80\xd0\xb0\xd0\xb7"
              "\xd0\xbd\xd0\xb8\xd1\x86\xd1\x83 \xd0\xbc\xd0\xb5\xd0\xb6\xd0\xb4\xd1\x83 \xd1\x81"
              "\xd0\xbf\xd0\xb8\xd1\x81\xd0\xba\xd0\xbe\xd0\xbc \xd0\xb8 \xd0\xba\xd0\xbe\xd1\x80"
              "\xd1\x82\xd0\xb5\xd0\xb6\xd0\xb5\xd0\xbc.",
              "ru");
    /* too short or no evidence */
    USER_RULE(cfg, "ok", "und");
    USER_RULE(cfg, "Hello", "und");
    USER_RULE(cfg, "", "und");
    USER_RULE(cfg, "12345", "und");
    config_unref(cfg);
}

static void test_language_list_and_scope(void **state)
{
    config_t *cfg =
        load_rules("    - {name: romance, when: {language: [es, fr]}, tier: budget}\n"
                   "    - {name: sys-de, when: {scope: system, language: de}, tier: premium}\n");
    (void)state;
    USER_RULE(cfg, "Je ne sais pas si elle est dans la maison avec les enfants.", "romance");
    USER_RULE(cfg, "No s\xc3\xa9 si ella est\xc3\xa1 en la casa con los ni\xc3\xb1os y el perro.",
              "romance");
    USER_RULE(cfg, "I do not know if she is in the house with the children.", "default");
    MSGS_RULE(cfg, "sys-de", "system",
              "Du bist ein Assistent und antwortest immer auf Deutsch, "
              "wenn der Nutzer das will.",
              "user", "hi");
    MSGS_RULE(cfg, "default", "system", "hi", "user",
              "Du bist ein Assistent und antwortest immer auf Deutsch, wenn der Nutzer das will.");
    config_unref(cfg);
}

/* ================= request features ================= */

#define U "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static void test_response_format(void **state)
{
    config_t *cfg =
        load_rules("    - {name: schema, when: {response_format: json_schema}, tier: premium}\n"
                   "    - {name: anyjson, when: {response_format: json}, tier: budget}\n"
                   "    - {name: text, when: {response_format: [text]}, tier: standard}\n");
    (void)state;
    JSON_RULE(cfg,
              "{\"model\":\"auto\"," U ",\"response_format\":{\"type\":\"json_schema\","
              "\"json_schema\":{\"name\":\"x\",\"schema\":{}}}}",
              "schema");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"response_format\":{\"type\":\"json_object\"}}",
              "anyjson");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"response_format\":{\"type\":\"text\"}}", "text");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U "}", "text"); /* absent means text */
    config_unref(cfg);

    cfg = load_rules(
        "    - {name: obj, when: {response_format: [json_object, json_schema]}, tier: budget}\n");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"response_format\":{\"type\":\"json_object\"}}",
              "obj");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"response_format\":{\"type\":\"json_schema\"}}",
              "obj");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U "}", "default");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"response_format\":{\"type\":\"text\"}}", "default");
    config_unref(cfg);
}

static void test_tools_images_audio_stream(void **state)
{
    config_t *cfg =
        load_rules("    - {name: tools, when: {tools: true}, tier: premium}\n"
                   "    - {name: img, when: {images: true}, tier: premium}\n"
                   "    - {name: aud, when: {audio: true}, tier: premium}\n"
                   "    - {name: stream, when: {stream: true}, tier: budget}\n"
                   "    - {name: plain, when: {tools: false, images: false, audio: false, "
                   "stream: false}, tier: budget}\n");
    (void)state;
    JSON_RULE(cfg,
              "{\"model\":\"auto\"," U
              ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}",
              "tools");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"functions\":[{\"name\":\"f\"}]}", "tools");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"tools\":[]}", "plain");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"tools\":null}", "plain");
    JSON_RULE(
        cfg,
        "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
        "\"text\":\"what is "
        "this\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}}]}]}",
        "img");
    /* an image in an earlier message counts too */
    JSON_RULE(
        cfg,
        "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
        "\"image_url\":{\"url\":\"data:,\"}}]},{\"role\":\"user\",\"content\":\"and now?\"}]}",
        "img");
    JSON_RULE(cfg,
              "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_"
              "audio\","
              "\"input_audio\":{\"data\":\"AAAA\",\"format\":\"wav\"}}]}]}",
              "aud");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"stream\":true}", "stream");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"stream\":false}", "plain");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U "}", "plain");
    /* text parts only: no image, no audio */
    JSON_RULE(
        cfg,
        "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
        "\"text\":\"image_url input_audio\"}]}]}",
        "plain");
    config_unref(cfg);
}

static void test_messages_count(void **state)
{
    config_t *cfg = load_rules("    - {name: deep, when: {min_messages: 3}, tier: premium}\n"
                               "    - {name: single, when: {max_messages: 1}, tier: budget}\n");
    (void)state;
    MSGS_RULE(cfg, "single", "user", "a");
    MSGS_RULE(cfg, "default", "system", "s", "user", "a");
    MSGS_RULE(cfg, "deep", "system", "s", "user", "a", "assistant", "b");
    MSGS_RULE(cfg, "deep", "user", "a", "assistant", "b", "user", "c", "assistant", "d", "user",
              "e");
    config_unref(cfg);
}

static void test_output_tokens(void **state)
{
    config_t *cfg =
        load_rules("    - {name: big, when: {min_output_tokens: 1000}, tier: premium}\n"
                   "    - {name: tiny, when: {max_output_tokens: 100}, tier: budget}\n");
    (void)state;
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"max_tokens\":1000}", "big");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"max_tokens\":999}", "default");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"max_tokens\":100}", "tiny");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"max_tokens\":101}", "default");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"max_tokens\":0}", "tiny");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"max_completion_tokens\":4096}", "big");
    /* max_completion_tokens is preferred over max_tokens */
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"max_completion_tokens\":50,\"max_tokens\":5000}",
              "tiny");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"max_tokens\":50,\"max_completion_tokens\":5000}",
              "big");
    /* a null max_completion_tokens falls back to max_tokens */
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"max_completion_tokens\":null,\"max_tokens\":5}",
              "tiny");
    /* absent (or not a usable number) never matches either condition */
    JSON_RULE(cfg, "{\"model\":\"auto\"," U "}", "default");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"max_tokens\":\"50\"}", "default");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"max_tokens\":-1}", "default");
    config_unref(cfg);

    /* max_output_tokens: 0 is not satisfied by an absent value */
    cfg = load_rules("    - {name: zero, when: {max_output_tokens: 1000000}, tier: budget}\n");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U "}", "default");
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"max_tokens\":1e300}", "default"); /* clamped high */
    JSON_RULE(cfg, "{\"model\":\"auto\"," U ",\"max_tokens\":1000000}", "zero");
    config_unref(cfg);
}

/* ================= model, key, headers ================= */

static void test_model_and_model_regex(void **state)
{
    config_t *cfg =
        load_rules("    - {name: mini, when: {model: gpt-4o-mini}, tier: budget}\n"
                   "    - {name: app, when: {model_regex: '^MY-'}, tier: premium}\n"
                   "    - {name: list, when: {model: [auto, gpt-4o]}, tier: standard}\n");
    (void)state;
    check_rule(route_chat(cfg, NULL, "gpt-4o-mini", "user", "x", (const char *)NULL), "mini",
               __LINE__, "");
    check_rule(route_chat(cfg, NULL, "my-app", "user", "x", (const char *)NULL), "app", __LINE__,
               "");
    check_rule(route_chat(cfg, NULL, "gpt-4o", "user", "x", (const char *)NULL), "list", __LINE__,
               "");
    check_rule(route_chat(cfg, NULL, "auto", "user", "x", (const char *)NULL), "list", __LINE__,
               "");
    config_unref(cfg);

    cfg = load_rules("    - {name: mini, when: {model: gpt-4o-mini}, tier: budget}\n");
    check_rule(route_chat(cfg, NULL, "gpt-4o", "user", "x", (const char *)NULL), "default",
               __LINE__, "");
    check_rule(route_chat(cfg, NULL, "auto", "user", "x", (const char *)NULL), "default", __LINE__,
               "");
    config_unref(cfg);
}

static void test_key_and_key_regex(void **state)
{
    /* without proxy keys the key name is "" */
    config_t *cfg =
        load_rules("    - {name: alice, when: {key: [alice, bob]}, tier: premium}\n"
                   "    - {name: anon, when: {key_regex: '^$', keywords: [anon]}, tier: budget}\n"
                   "    - {name: named, when: {key_regex: '.'}, tier: premium}\n");
    (void)state;
    USER_RULE(cfg, "anon please", "anon");
    USER_RULE(cfg, "hello", "default");
    config_unref(cfg);
}

static void test_header_and_header_regex(void **state)
{
    config_t *cfg = load_rules(
        "    - {name: hint, when: {header: {X-Router-Hint: premium}}, tier: premium}\n"
        "    - {name: team, when: {header_regex: {x-team: '^(search|ads)$'}}, tier: budget}\n"
        "    - {name: two, when: {header: {x-a: '1', x-b: '2'}}, tier: budget}\n");
    static const hdr_t h_hint[] = {{"x-router-hint", "premium"}, {NULL, NULL}};
    static const hdr_t h_hint_case[] = {{"X-ROUTER-HINT", "Premium"}, {NULL, NULL}};
    static const hdr_t h_hint_space[] = {{"x-router-hint", "premium "}, {NULL, NULL}};
    static const hdr_t h_team[] = {{"X-Team", "ADS"}, {NULL, NULL}};
    static const hdr_t h_team_bad[] = {{"x-team", "ads-eu"}, {NULL, NULL}};
    static const hdr_t h_two[] = {{"X-B", "2"}, {"x-A", "1"}, {NULL, NULL}};
    static const hdr_t h_one[] = {{"x-a", "1"}, {NULL, NULL}};
    static const hdr_t h_empty[] = {{"x-router-hint", ""}, {NULL, NULL}};
    (void)state;
#define H(h, want)                                                                                 \
    check_rule(route_chat(cfg, h, "auto", "user", "x", (const char *)NULL), want, __LINE__, #h)
    H(h_hint, "hint");
    assert_string_equal(last_asked, "X-Router-Hint"); /* the name as configured */
    H(h_hint_case, "default"); /* values are exact: "Premium" is not "premium" */
    H(h_hint_space, "default");
    H(h_empty, "default");
    H(h_team, "team"); /* header_regex is case-insensitive by default */
    H(h_team_bad, "default");
    H(h_two, "two");
    H(h_one, "default");
    H(NULL, "default");
#undef H
    config_unref(cfg);

    /* a rule set with headers and a context without a header callback */
    cfg =
        load_rules("    - {name: hint, when: {header: {x-router-hint: premium}}, tier: premium}\n");
    {
        cJSON *root = cJSON_Parse("{\"model\":\"auto\"," U "}");
        prompt_t p;
        rule_ctx_t ctx = {.model = "auto", .key_name = ""};
        route_t r;
        prompt_init(&p, root, EP_CHAT);
        assert_int_equal(router_route(cfg, "auto", &p, &ctx, NULL, &r, NULL), ROUTER_OK);
        assert_int_equal(r.rule, ROUTE_RULE_DEFAULT);
        prompt_free(&p);
        cJSON_Delete(root);
    }
    config_unref(cfg);
}

/* ================= combinators and decisions ================= */

static void test_nesting_three_levels(void **state)
{
    config_t *cfg = load_rules("    - name: nest\n"
                               "      when:\n"
                               "        any:\n"
                               "          - keywords: [prove, theorem]\n"
                               "          - all:\n"
                               "              - regex: '```'\n"
                               "              - any:\n"
                               "                  - keywords: [review, bug]\n"
                               "                  - not: {max_tokens: 100}\n"
                               "        not: {header: {x-router-hint: cheap}}\n"
                               "      tier: premium\n");
    static const hdr_t cheap[] = {{"x-router-hint", "cheap"}, {NULL, NULL}};
    static const hdr_t other[] = {{"x-router-hint", "fast"}, {NULL, NULL}};
    char longcode[1200];
    (void)state;
    USER_RULE(cfg, "prove it", "nest");
    USER_RULE(cfg, "```int x;``` please review", "nest");
    USER_RULE(cfg, "```int x;```", "default");
    USER_RULE(cfg, "review this code", "default");
    snprintf(longcode, sizeof longcode, "```%s```", rep("x = x + 1;\n", 80));
    USER_RULE(cfg, longcode, "nest"); /* over 100 tokens */
    check_rule(route_chat(cfg, cheap, "auto", "user", "prove it", (const char *)NULL), "default",
               __LINE__, "cheap");
    check_rule(route_chat(cfg, other, "auto", "user", "prove it", (const char *)NULL), "nest",
               __LINE__, "fast");
    config_unref(cfg);
}

static void test_not_of_several_conditions(void **state)
{
    /* not: {a, b} is not (a and b) */
    config_t *cfg = load_rules(
        "    - {name: n, when: {not: {keywords: [alpha], max_tokens: 2}}, tier: budget}\n");
    (void)state;
    USER_RULE(cfg, "alpha", "default");
    USER_RULE(cfg, "alpha alpha alpha", "n");
    USER_RULE(cfg, "beta", "n");
    config_unref(cfg);
}

static void test_first_match_wins(void **state)
{
    config_t *cfg =
        load_rules("    - {name: first, when: {keywords: [alpha]}, tier: budget}\n"
                   "    - {name: second, when: {keywords: [alpha, beta]}, tier: premium}\n");
    outcome_t o;
    static const char *const budget[] = {"small", "mid"};
    static const char *const premium[] = {"big", "gemini"};
    (void)state;
    o = route_chat(cfg, NULL, "auto", "user", "alpha beta", (const char *)NULL);
    check_rule(o, "first", __LINE__, "");
    assert_int_equal(o.r.rule, 0);
    assert_int_equal(o.r.tier, config_find_tier(cfg, "budget"));
    assert_string_equal(o.tier, "budget");
    check_chain(cfg, &o.r, budget, 2);
    o = route_chat(cfg, NULL, "auto", "user", "beta", (const char *)NULL);
    check_rule(o, "second", __LINE__, "");
    assert_int_equal(o.r.rule, 1);
    check_chain(cfg, &o.r, premium, 2);
    config_unref(cfg);

    cfg = load_rules("    - {name: second, when: {keywords: [alpha, beta]}, tier: premium}\n"
                     "    - {name: first, when: {keywords: [alpha]}, tier: budget}\n");
    USER_RULE(cfg, "alpha beta", "second");
    config_unref(cfg);
}

static void test_no_match_and_explicit(void **state)
{
    config_t *cfg = load_rules("    - {name: any-text, when: {min_tokens: 0}, tier: budget}\n");
    static const char *const standard[] = {"mid", "big"};
    static const char *const premium[] = {"big", "gemini"};
    static const char *const gemini[] = {"gemini", "big"};
    outcome_t o;
    (void)state;
    /* a catch-all rule routes every routable name */
    o = route_chat(cfg, NULL, "my-app", "user", "x", (const char *)NULL);
    check_rule(o, "any-text", __LINE__, "");
    /* a tier or a model name skips the rules */
    o = route_chat(cfg, NULL, "premium", "user", "x", (const char *)NULL);
    check_rule(o, "explicit", __LINE__, "");
    assert_int_equal(o.r.rule, ROUTE_RULE_EXPLICIT);
    assert_string_equal(o.tier, "premium");
    check_chain(cfg, &o.r, premium, 2);
    o = route_chat(cfg, NULL, "gemini", "user", "x", (const char *)NULL);
    check_rule(o, "explicit", __LINE__, "");
    check_chain(cfg, &o.r, gemini, 2);
    o = route_chat(cfg, NULL, "gpt-5", "user", "x", (const char *)NULL);
    assert_int_equal(o.st, ROUTER_UNKNOWN_MODEL);
    config_unref(cfg);

    /* nothing matches: the default tier, rule "default" */
    cfg = load_rules("    - {name: never, when: {keywords: [zzzz]}, tier: budget}\n");
    o = route_chat(cfg, NULL, "auto", "user", "x", (const char *)NULL);
    check_rule(o, "default", __LINE__, "");
    assert_int_equal(o.r.rule, ROUTE_RULE_DEFAULT);
    assert_int_equal(o.r.tier, cfg->default_tier);
    assert_string_equal(o.tier, "standard");
    check_chain(cfg, &o.r, standard, 2);
    config_unref(cfg);
}

static void test_chain_action(void **state)
{
    config_t *cfg = load_rules("    - name: long-context\n"
                               "      when: {scope: conversation, min_tokens: 100}\n"
                               "      chain: [gemini, small]\n"
                               "      cache: false\n"
                               "      tags: [long, context]\n"
                               "    - {name: one, when: {keywords: [solo]}, chain: big}\n");
    static const char *const chain[] = {"gemini", "small"};
    static const char *const one[] = {"big"};
    const rule_action_t *a;
    outcome_t o;
    (void)state;
    o = route_chat(cfg, NULL, "auto", "user", rep("word ", 100), (const char *)NULL);
    check_rule(o, "long-context", __LINE__, "");
    assert_int_equal(o.r.rule, 0);
    assert_int_equal(o.r.tier, -1);
    assert_string_equal(o.tier, "custom");
    check_chain(cfg, &o.r, chain, 2);
    o = route_chat(cfg, NULL, "auto", "user", "solo", (const char *)NULL);
    check_rule(o, "one", __LINE__, "");
    assert_string_equal(o.tier, "custom");
    check_chain(cfg, &o.r, one, 1);

    assert_int_equal(rules_count(cfg->rules), 2);
    a = rules_action(cfg->rules, 0);
    assert_string_equal(a->name, "long-context");
    assert_int_equal(a->tier, -1);
    assert_int_equal(a->n_chain, 2);
    assert_int_equal(a->chain[0], M(cfg, "gemini"));
    assert_int_equal(a->chain[1], M(cfg, "small"));
    assert_int_equal(a->cache, RULE_CACHE_OFF);
    assert_int_equal(a->n_tags, 2);
    assert_string_equal(a->tags[0], "long");
    assert_string_equal(a->tags[1], "context");
    a = rules_action(cfg->rules, 1);
    assert_int_equal(a->n_chain, 1);
    assert_int_equal(a->cache, RULE_CACHE_DEFAULT);
    assert_int_equal(a->n_tags, 0);
    config_unref(cfg);
}

static void test_actions_cache_and_tags(void **state)
{
    config_t *cfg = load_rules(
        "    - {name: a, when: {stream: true}, tier: budget, cache: {ttl_s: 600}, tags: solo}\n"
        "    - {name: b, when: {stream: true}, tier: budget, cache: true}\n"
        "    - {name: c, when: {stream: true}, tier: premium, cache: {ttl_s: 31536000}}\n");
    const rule_action_t *a;
    (void)state;
    assert_int_equal(rules_count(cfg->rules), 3);
    a = rules_action(cfg->rules, 0);
    assert_int_equal(a->tier, config_find_tier(cfg, "budget"));
    assert_null(a->chain);
    assert_int_equal(a->cache, RULE_CACHE_TTL);
    assert_int_equal(a->cache_ttl_s, 600);
    assert_int_equal(a->n_tags, 1);
    assert_string_equal(a->tags[0], "solo");
    a = rules_action(cfg->rules, 1);
    assert_int_equal(a->cache, RULE_CACHE_DEFAULT);
    a = rules_action(cfg->rules, 2);
    assert_int_equal(a->tier, config_find_tier(cfg, "premium"));
    assert_int_equal(a->cache, RULE_CACHE_TTL);
    assert_int_equal(a->cache_ttl_s, 31536000);
    config_unref(cfg);

    /* no rules: none parsed, every routed request uses the default tier */
    cfg = load_routing("");
    assert_null(cfg->rules);
    assert_int_equal(rules_count(cfg->rules), 0);
    USER_RULE(cfg, "anything", "default");
    config_unref(cfg);
}

static void test_client_tier(void **state)
{
    config_t *cfg = load_routing("  allow_client_tier: true\n"
                                 "  rules:\n"
                                 "    - {name: kw, when: {keywords: [alpha]}, tier: premium}\n");
    static const hdr_t h_budget[] = {{"X-Router-Tier", "budget"}, {NULL, NULL}};
    static const hdr_t h_unknown[] = {{"x-router-tier", "gold"}, {NULL, NULL}};
    static const hdr_t h_model[] = {{"x-router-tier", "small"}, {NULL, NULL}};
    static const char *const budget[] = {"small", "mid"};
    static const char *const big[] = {"big", "mid"}; /* big, then the rest of standard */
    outcome_t o;
    (void)state;
    assert_true(cfg->allow_client_tier);
    o = route_chat(cfg, h_budget, "auto", "user", "alpha", (const char *)NULL);
    check_rule(o, "client-tier", __LINE__, "");
    assert_int_equal(o.r.rule, ROUTE_RULE_CLIENT);
    assert_string_equal(o.tier, "budget");
    check_chain(cfg, &o.r, budget, 2);
    o = route_chat(cfg, h_unknown, "auto", "user", "alpha", (const char *)NULL);
    assert_int_equal(o.st, ROUTER_UNKNOWN_TIER);
    /* a model name is not a tier */
    o = route_chat(cfg, h_model, "auto", "user", "alpha", (const char *)NULL);
    assert_int_equal(o.st, ROUTER_UNKNOWN_TIER);
    /* a request that names a model is not routed: the header is ignored */
    o = route_chat(cfg, h_unknown, "big", "user", "alpha", (const char *)NULL);
    check_rule(o, "explicit", __LINE__, "");
    check_chain(cfg, &o.r, big, 2);
    o = route_chat(cfg, NULL, "auto", "user", "alpha", (const char *)NULL);
    check_rule(o, "kw", __LINE__, "");
    config_unref(cfg);

    /* off by default: the header is ignored, even an unknown tier */
    cfg = load_rules("    - {name: kw, when: {keywords: [alpha]}, tier: premium}\n");
    assert_false(cfg->allow_client_tier);
    check_rule(route_chat(cfg, h_budget, "auto", "user", "alpha", (const char *)NULL), "kw",
               __LINE__, "");
    check_rule(route_chat(cfg, h_unknown, "auto", "user", "x", (const char *)NULL), "default",
               __LINE__, "");
    config_unref(cfg);
}

/* ================= request_parse ================= */

static req_t *new_req(config_t *cfg, enum endpoint ep, const char *body, const hdr_t *hdrs)
{
    req_t *req = request_new(NULL, NULL, cfg);
    assert_non_null(req);
    req->ep = ep;
    req->header = hdr_get;
    req->header_arg = (void *)(uintptr_t)hdrs;
    assert_int_equal(buf_append(&req->body, body, strlen(body)), 0);
    return req;
}

static void test_request_parse_routes_by_rules(void **state)
{
    config_t *cfg =
        load_routing("  allow_client_tier: true\n"
                     "  rules:\n"
                     "    - {name: hint, when: {header: {x-router-hint: premium}}, tier: premium}\n"
                     "    - {name: tr, when: {keywords: [translate]}, chain: [gemini, small]}\n");
    static const hdr_t hint[] = {{"X-Router-Hint", "premium"}, {NULL, NULL}};
    static const hdr_t gold[] = {{"x-router-tier", "gold"}, {NULL, NULL}};
    static const char *const chain[] = {"gemini", "small"};
    req_error_t err;
    req_t *req;
    (void)state;
    req = new_req(
        cfg, EP_CHAT,
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"Translate this\"}]}",
        NULL);
    assert_int_equal(request_parse(req, &err, NULL), 0);
    assert_string_equal(router_rule_name(cfg, &req->route), "tr");
    assert_string_equal(router_tier_name(cfg, &req->route), "custom");
    check_chain(cfg, &req->route, chain, 2);
    request_free(req);

    req = new_req(cfg, EP_CHAT, "{\"model\":\"auto\"," U "}", hint);
    assert_int_equal(request_parse(req, &err, NULL), 0);
    assert_string_equal(router_rule_name(cfg, &req->route), "hint");
    request_free(req);

    memset(&err, 0, sizeof err);
    req = new_req(cfg, EP_CHAT, "{\"model\":\"auto\"," U "}", gold);
    assert_int_equal(request_parse(req, &err, NULL), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.code, "unknown_tier");
    assert_non_null(strstr(err.message, "gold"));
    request_free(req);
    config_unref(cfg);
}

/* ================= request shapes ================= */

static void test_content_parts_joined(void **state)
{
    config_t *cfg =
        load_rules("    - {name: both, when: {keywords_all: [alpha, beta]}, tier: premium}\n"
                   "    - {name: joined, when: {regex: '^one\\ntwo$'}, tier: budget}\n");
    (void)state;
    JSON_RULE(
        cfg,
        "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
        "\"text\":\"alpha\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:,\"}},"
        "{\"type\":\"text\",\"text\":\"beta\"}]}]}",
        "both");
    JSON_RULE(
        cfg,
        "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
        "\"text\":\"one\"},{\"type\":\"text\",\"text\":\"two\"}]}]}",
        "joined");
    /* the keywords do not run into each other across parts: "alp" + "ha" */
    JSON_RULE(
        cfg,
        "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
        "\"text\":\"alp\"},{\"type\":\"text\",\"text\":\"ha beta\"}]}]}",
        "default");
    config_unref(cfg);
}

static void test_empty_null_and_missing_user(void **state)
{
    config_t *cfg =
        load_rules("    - {name: empty, when: {max_tokens: 0, scope: user}, tier: budget}\n"
                   "    - {name: sys, when: {scope: system, keywords: [rules]}, tier: premium}\n");
    (void)state;
    JSON_RULE(cfg, "{\"model\":\"auto\",\"messages\":[]}", "empty");
    JSON_RULE(cfg, "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":null}]}",
              "empty");
    JSON_RULE(cfg, "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\"}]}", "empty");
    JSON_RULE(cfg, "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":[]}]}",
              "empty");
    JSON_RULE(cfg, "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":42}]}",
              "empty");
    JSON_RULE(
        cfg,
        "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"},"
        "{\"text\":7},\"str\",null]}]}",
        "empty");
    JSON_RULE(cfg, "{\"model\":\"auto\",\"messages\":[{\"content\":\"no role\"}]}", "empty");
    /* only a system message: no user text, the system scope still works */
    JSON_RULE(cfg,
              "{\"model\":\"auto\",\"messages\":[{\"role\":\"system\",\"content\":\"the rules\"}]}",
              "empty");
    config_unref(cfg);

    cfg =
        load_rules("    - {name: sys, when: {scope: system, keywords: [rules]}, tier: premium}\n");
    JSON_RULE(cfg,
              "{\"model\":\"auto\",\"messages\":[{\"role\":\"system\",\"content\":\"the rules\"}]}",
              "sys");
    JSON_RULE(cfg, "{\"model\":\"auto\"}", "default");
    JSON_RULE(cfg, "{\"model\":\"auto\",\"messages\":\"the rules\"}", "default");
    config_unref(cfg);
}

static void test_completions_and_embeddings(void **state)
{
    config_t *cfg = load_rules(
        "    - {name: sys, when: {scope: system, max_tokens: 0, keywords: [sysword]}, tier: "
        "premium}\n"
        "    - {name: tr, when: {keywords: [translate]}, tier: budget}\n"
        "    - {name: conv, when: {scope: conversation, min_tokens: 2, max_tokens: 2}, tier: "
        "premium}\n"
        "    - {name: two, when: {scope: user, keywords_all: [first, second]}, tier: premium}\n"
        "    - {name: one-msg, when: {min_messages: 1, max_messages: 1}, tier: budget}\n");
    outcome_t o;
    (void)state;
#define EPR(ep, body, want) check_rule(route_json(cfg, ep, body, NULL), want, __LINE__, body)
    EPR(EP_COMPLETIONS, "{\"model\":\"auto\",\"prompt\":\"Translate sysword\"}", "tr");
    EPR(EP_COMPLETIONS, "{\"model\":\"auto\",\"prompt\":[\"hello\",\"please translate\"]}", "tr");
    /* no chat overhead outside chat: "aaaa" + "bbbb" = 2 tokens */
    EPR(EP_COMPLETIONS, "{\"model\":\"auto\",\"prompt\":[\"aaaa\",\"bbbb\"]}", "conv");
    EPR(EP_COMPLETIONS, "{\"model\":\"auto\",\"prompt\":[\"first word\",7,\"second word\"]}",
        "two");
    EPR(EP_COMPLETIONS, "{\"model\":\"auto\",\"prompt\":\"x\"}", "one-msg");
    EPR(EP_EMBEDDINGS, "{\"model\":\"auto\",\"input\":\"please translate\"}", "tr");
    EPR(EP_EMBEDDINGS, "{\"model\":\"auto\",\"input\":[\"first word\",\"second word\"]}", "two");
    EPR(EP_EMBEDDINGS, "{\"model\":\"auto\",\"input\":[[1,2,3]]}", "one-msg");
    /* a completions body has no "messages": the prompt is what counts */
    EPR(EP_COMPLETIONS,
        "{\"model\":\"auto\",\"prompt\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"translate\"}]}",
        "one-msg");
#undef EPR
    o = route_json(cfg, EP_EMBEDDINGS, "{\"model\":\"budget\",\"input\":\"translate\"}", NULL);
    check_rule(o, "explicit", __LINE__, "");
    config_unref(cfg);
}

/* docs/routing.md: "For /v1/completions the text is `prompt`, for
 * /v1/embeddings `input`": with the default scope (last_user), every string
 * of a prompt or input list is text, not only the last one. */
static void test_completions_list_default_scope_is_whole_prompt(void **state)
{
    config_t *cfg = load_rules("    - {name: tr, when: {keywords: [translate]}, tier: budget}\n"
                               "    - {name: long, when: {min_tokens: 5}, tier: premium}\n");
    char failed[512] = "";
    size_t o = 0;
    static const struct {
        enum endpoint ep;
        const char *body, *want;
    } cases[] = {
        {EP_COMPLETIONS, "{\"model\":\"auto\",\"prompt\":[\"please translate\",\"hello\"]}", "tr"},
        {EP_EMBEDDINGS, "{\"model\":\"auto\",\"input\":[\"translate me\",\"x\"]}", "tr"},
        /* 3 + 3 tokens: the prompt is 6 tokens long */
        {EP_COMPLETIONS, "{\"model\":\"auto\",\"prompt\":[\"aaaaaaaaaaaa\",\"bbbbbbbbbbbb\"]}",
         "long"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        outcome_t r = route_json(cfg, cases[i].ep, cases[i].body, NULL);
        assert_int_equal(r.st, ROUTER_OK);
        if (strcmp(r.rule, cases[i].want) != 0)
            o += (size_t)snprintf(failed + o, sizeof failed - o, "\n  %s -> %s, expected %s",
                                  cases[i].body, r.rule, cases[i].want);
    }
    config_unref(cfg);
    if (o > 0)
        fail_msg("only the last string of the list was read:%s", failed);
}

/* ================= a huge prompt ================= */

static void test_huge_prompt(void **state)
{
    const size_t n = (size_t)2 << 20; /* 2 MiB */
    config_t *cfg = load_rules(
        "    - {name: kw, when: {keywords: [needle], max_tokens: 400000}, tier: budget}\n"
        "    - {name: huge, when: {min_tokens: 500000, max_tokens: 600000, "
        "regex: 'needle$', keywords: [needle], language: en}, tier: premium}\n");
    char *text = malloc(n + 1);
    cJSON *root, *msgs, *m;
    buf_t ex;
    prompt_t p;
    rule_ctx_t ctx = {.model = "auto", .key_name = ""};
    route_t r;
    cJSON *why;
    (void)state;
    assert_non_null(text);
    for (size_t i = 0; i < n; i += 32)
        memcpy(text + i, "the cat sat on the mat and it.. ", 32);
    memcpy(text + n - 7, " needle", 7);
    text[n] = '\0';
    root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", "auto");
    msgs = cJSON_AddArrayToObject(root, "messages");
    m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", text);
    cJSON_AddItemToArray(msgs, m);
    free(text);

    check_rule(route_root(cfg, EP_CHAT, root, NULL), "huge", __LINE__, "2 MiB");
    prompt_init(&p, root, EP_CHAT);
    assert_int_equal(prompt_stats(&p, SCOPE_LAST_USER)->tokens, n / 4);
    assert_int_equal(prompt_stats(&p, SCOPE_CONVERSATION)->tokens, n / 4 + 6);
    buf_init(&ex, (size_t)1 << 20);
    assert_int_equal(router_route(cfg, "auto", &p, &ctx, NULL, &r, &ex), ROUTER_OK);
    assert_int_equal(r.rule, 1);
    why = cJSON_ParseWithLength(buf_ptr(&ex), buf_len(&ex));
    assert_non_null(why);
    assert_int_equal(cJSON_GetArraySize(why), 2);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(why, 1), "matched")));
    cJSON_Delete(why);
    buf_free(&ex);
    prompt_free(&p);
    cJSON_Delete(root);
    config_unref(cfg);
}

/* ================= explain ================= */

static cJSON *explain(config_t *cfg, const char *body, const hdr_t *hdrs)
{
    req_error_t err;
    buf_t out;
    cJSON *j;
    req_t *req = new_req(cfg, EP_CHAT, body, hdrs);
    buf_init(&out, (size_t)1 << 20);
    if (request_parse(req, &err, &out) != 0)
        fail_msg("rejected: %s", err.message);
    j = cJSON_ParseWithLength(buf_ptr(&out), buf_len(&out));
    if (j == NULL)
        fail_msg("explain output is not JSON: %.*s", (int)buf_len(&out), buf_ptr(&out));
    request_free(req);
    buf_free(&out);
    return j;
}

static const cJSON *get(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (v == NULL)
        fail_msg("no \"%s\" in the explain output", k);
    return v;
}

static void expect_why(const cJSON *rule, const char *const *lines, size_t n)
{
    const cJSON *why = get(rule, "why");
    assert_true(cJSON_IsArray(why));
    if ((size_t)cJSON_GetArraySize(why) != n) {
        char *s = cJSON_Print(why);
        fail_msg("rule %s: %d why lines, expected %zu: %s", get(rule, "rule")->valuestring,
                 cJSON_GetArraySize(why), n, s);
    }
    for (size_t i = 0; i < n; i++) {
        const cJSON *l = cJSON_GetArrayItem(why, (int)i);
        assert_true(cJSON_IsString(l));
        if (strcmp(l->valuestring, lines[i]) != 0)
            fail_msg("rule %s, why[%zu]: \"%s\", expected \"%s\"", get(rule, "rule")->valuestring,
                     i, l->valuestring, lines[i]);
    }
}

static const char EXPLAIN_RULES[] =
    "    - {name: hinted, when: {header: {x-router-hint: premium}}, tier: premium}\n"
    "    - name: combo\n"
    "      when:\n"
    "        any:\n"
    "          - keywords: [zzz]\n"
    "          - not: {keywords: [qqq]}\n"
    "        max_tokens: 2000\n"
    "      tier: budget\n"
    "    - name: translation\n"
    "      when: {keywords: [translate], max_tokens: 2000}\n"
    "      chain: [gemini, small]\n";

static void test_explain_json(void **state)
{
    config_t *cfg = load_rules(EXPLAIN_RULES);
    cJSON *j;
    const cJSON *tok, *rules, *dec, *chain;
    static const char *const why_hinted[] = {"no:  header x-router-hint is absent"};
    static const char *const why_combo[] = {
        "yes: all of:",
        "  yes: any of:",
        "    no:  keywords in last_user: none of 1 found",
        "    yes: not:",
        "      no:  keywords in last_user: none of 1 found",
        "  yes: max_tokens 2000: 9 estimated tokens in last_user",
    };
    static const char *const why_tr[] = {
        "yes: all of:",
        "  yes: keywords in last_user: found \"translate\"",
        "  yes: max_tokens 2000: 9 estimated tokens in last_user",
    };
    (void)state;
    j = explain(cfg,
                "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"Translate good "
                "morning into French\"}]}",
                NULL);
    assert_string_equal(get(j, "model")->valuestring, "auto");
    assert_true(cJSON_IsTrue(get(j, "routed")));
    tok = get(j, "estimated_tokens");
    /* 34 ASCII bytes: 9 tokens; one message of chat overhead: 3 + 3 */
    assert_int_equal(get(tok, "last_user")->valueint, 9);
    assert_int_equal(get(tok, "user")->valueint, 9);
    assert_int_equal(get(tok, "system")->valueint, 0);
    assert_int_equal(get(tok, "conversation")->valueint, 15);
    assert_int_equal(cJSON_GetArraySize(tok), 4);
    assert_string_equal(get(j, "script")->valuestring, "latin");
    assert_true(cJSON_IsString(get(j, "language")));
    rules = get(j, "rules");
    assert_int_equal(cJSON_GetArraySize(rules), 3);
    /* every rule is evaluated, in order, even after the first match */
    assert_string_equal(get(cJSON_GetArrayItem(rules, 0), "rule")->valuestring, "hinted");
    assert_true(cJSON_IsFalse(get(cJSON_GetArrayItem(rules, 0), "matched")));
    expect_why(cJSON_GetArrayItem(rules, 0), why_hinted, 1);
    assert_string_equal(get(cJSON_GetArrayItem(rules, 1), "rule")->valuestring, "combo");
    assert_true(cJSON_IsTrue(get(cJSON_GetArrayItem(rules, 1), "matched")));
    expect_why(cJSON_GetArrayItem(rules, 1), why_combo, 6);
    assert_string_equal(get(cJSON_GetArrayItem(rules, 2), "rule")->valuestring, "translation");
    assert_true(cJSON_IsTrue(get(cJSON_GetArrayItem(rules, 2), "matched")));
    expect_why(cJSON_GetArrayItem(rules, 2), why_tr, 3);
    dec = get(j, "decision");
    assert_string_equal(get(dec, "rule")->valuestring, "combo");
    assert_string_equal(get(dec, "tier")->valuestring, "budget");
    chain = get(dec, "chain");
    assert_int_equal(cJSON_GetArraySize(chain), 2);
    assert_string_equal(get(cJSON_GetArrayItem(chain, 0), "model")->valuestring, "small");
    assert_string_equal(get(cJSON_GetArrayItem(chain, 0), "provider")->valuestring, "p");
    assert_string_equal(get(cJSON_GetArrayItem(chain, 1), "model")->valuestring, "mid");
    cJSON_Delete(j);
    config_unref(cfg);
}

static void test_explain_combinators_no(void **state)
{
    config_t *cfg = load_rules(EXPLAIN_RULES);
    static const hdr_t hint[] = {{"x-router-hint", "Prem\"ium\\"}, {NULL, NULL}};
    static const char *const why_hinted[] = {"no:  header x-router-hint is \"Prem\"ium\\\""};
    static const char *const why_combo[] = {
        "no:  all of:",
        "  no:  any of:",
        "    no:  keywords in last_user: none of 1 found",
        "    no:  not:",
        "      yes: keywords in last_user: found \"qqq\"",
        "  yes: max_tokens 2000: 4 estimated tokens in last_user",
    };
    cJSON *j;
    const cJSON *rules, *dec, *chain, *r;
    (void)state;
    j = explain(cfg,
                "{\"model\":\"my-app\",\"messages\":[{\"role\":\"system\",\"content\":\"be "
                "brief\"},{\"role\":\"user\",\"content\":\"qqq translate it\"}]}",
                hint);
    rules = get(j, "rules");
    /* the header value with a quote and a backslash stays valid JSON */
    expect_why(cJSON_GetArrayItem(rules, 0), why_hinted, 1);
    expect_why(cJSON_GetArrayItem(rules, 1), why_combo, 6);
    assert_true(cJSON_IsFalse(get(cJSON_GetArrayItem(rules, 1), "matched")));
    assert_true(cJSON_IsTrue(get(cJSON_GetArrayItem(rules, 2), "matched")));
    /* every line of every rule says why */
    cJSON_ArrayForEach (r, rules) {
        const cJSON *l;
        assert_true(cJSON_GetArraySize(get(r, "why")) > 0);
        cJSON_ArrayForEach (l, get(r, "why")) {
            const char *s = l->valuestring;
            while (*s == ' ')
                s++;
            assert_true(strncmp(s, "yes: ", 5) == 0 || strncmp(s, "no:  ", 5) == 0);
            assert_true(strlen(s) > 5);
        }
    }
    assert_int_equal(get(get(j, "estimated_tokens"), "system")->valueint, 2);
    dec = get(j, "decision");
    assert_string_equal(get(dec, "rule")->valuestring, "translation");
    assert_string_equal(get(dec, "tier")->valuestring, "custom");
    chain = get(dec, "chain");
    assert_int_equal(cJSON_GetArraySize(chain), 2);
    assert_string_equal(get(cJSON_GetArrayItem(chain, 0), "model")->valuestring, "gemini");
    assert_string_equal(get(cJSON_GetArrayItem(chain, 0), "provider")->valuestring, "q");
    assert_string_equal(get(cJSON_GetArrayItem(chain, 1), "model")->valuestring, "small");
    assert_string_equal(get(cJSON_GetArrayItem(chain, 1), "provider")->valuestring, "p");
    cJSON_Delete(j);
    config_unref(cfg);
}

static void test_explain_default_explicit_and_texts(void **state)
{
    config_t *cfg = load_rules(EXPLAIN_RULES);
    cJSON *j;
    const cJSON *dec;
    (void)state;
    /* no match: decision default, language and script of the last user message */
    j = explain(cfg,
                "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"qqq "
                "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\xbc\xd0\xb8\xd1\x80\"}]}",
                NULL);
    dec = get(j, "decision");
    assert_string_equal(get(dec, "rule")->valuestring, "default");
    assert_string_equal(get(dec, "tier")->valuestring, "standard");
    assert_int_equal(cJSON_GetArraySize(get(dec, "chain")), 2);
    assert_string_equal(get(j, "script")->valuestring, "cyrillic");
    assert_string_equal(get(j, "language")->valuestring, "ru");
    cJSON_Delete(j);

    /* a named tier: not routed, no rule evaluated */
    j = explain(cfg, "{\"model\":\"premium\"," U "}", NULL);
    assert_true(cJSON_IsFalse(get(j, "routed")));
    assert_int_equal(cJSON_GetArraySize(get(j, "rules")), 0);
    dec = get(j, "decision");
    assert_string_equal(get(dec, "rule")->valuestring, "explicit");
    assert_string_equal(get(dec, "tier")->valuestring, "premium");
    assert_string_equal(get(cJSON_GetArrayItem(get(dec, "chain"), 0), "model")->valuestring, "big");
    cJSON_Delete(j);

    /* control characters and non-ASCII in the text: still valid JSON
     * (invalid UTF-8 no longer gets this far: request_parse refuses it) */
    j = explain(
        cfg,
        "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\xbf\xc3\xbe\\u0001 "
        "translate\"}]}",
        NULL);
    assert_string_equal(get(get(j, "decision"), "rule")->valuestring, "combo");
    cJSON_Delete(j);
    config_unref(cfg);

    /* client tier: no rule ran */
    cfg = load_routing("  allow_client_tier: true\n  rules:\n"
                       "    - {name: kw, when: {keywords: [alpha]}, tier: premium}\n");
    {
        static const hdr_t h[] = {{"x-router-tier", "budget"}, {NULL, NULL}};
        j = explain(cfg, "{\"model\":\"auto\"," U "}", h);
        assert_true(cJSON_IsTrue(get(j, "routed")));
        assert_int_equal(cJSON_GetArraySize(get(j, "rules")), 0);
        assert_string_equal(get(get(j, "decision"), "rule")->valuestring, "client-tier");
        assert_string_equal(get(get(j, "decision"), "tier")->valuestring, "budget");
        cJSON_Delete(j);
    }
    config_unref(cfg);

    /* no rules at all */
    cfg = load_routing("");
    j = explain(cfg, "{\"model\":\"auto\"," U "}", NULL);
    assert_int_equal(cJSON_GetArraySize(get(j, "rules")), 0);
    assert_string_equal(get(get(j, "decision"), "rule")->valuestring, "default");
    cJSON_Delete(j);
    config_unref(cfg);
}

/* The why line of each condition kind when it does not hold. */
static void test_explain_why_strings(void **state)
{
    static const char *const want[][2] = {
        {"kwall", "no:  keywords_all in last_user: \"beta\" not found"},
        {"re", "no:  regex in last_user: no pattern of 2 matches"},
        {"script", "no:  script of last_user is latin"},
        {"lang", "no:  language of last_user is und"},
        {"format", "no:  response_format is text"},
        {"tools", "no:  tools absent"},
        {"output", "no:  min_output_tokens 5: the request sets no max_tokens"},
        {"model", "no:  model is \"auto\""},
        {"key", "no:  key is \"\""},
        {"hre", "no:  header x-h is absent"},
        {"msgs", "no:  min_messages 2: 1 messages"},
        {"stream", "no:  stream is false"},
        {"images", "no:  images absent"},
        {"mre", "no:  model \"auto\" matches no pattern"},
        {"sys", "no:  keywords in system: none of 1 found"},
        {"min", "no:  min_tokens 100: 2 estimated tokens in last_user"},
    };
    config_t *cfg =
        load_rules("    - {name: kwall, when: {keywords_all: [alpha, beta]}, tier: budget}\n"
                   "    - {name: re, when: {regex: [zzz, yyy]}, tier: budget}\n"
                   "    - {name: script, when: {script: han}, tier: budget}\n"
                   "    - {name: lang, when: {language: fr}, tier: budget}\n"
                   "    - {name: format, when: {response_format: json}, tier: budget}\n"
                   "    - {name: tools, when: {tools: true}, tier: budget}\n"
                   "    - {name: output, when: {min_output_tokens: 5}, tier: budget}\n"
                   "    - {name: model, when: {model: [gpt-4o]}, tier: budget}\n"
                   "    - {name: key, when: {key: [alice]}, tier: budget}\n"
                   "    - {name: hre, when: {header_regex: {x-h: '^a$'}}, tier: budget}\n"
                   "    - {name: msgs, when: {min_messages: 2}, tier: budget}\n"
                   "    - {name: stream, when: {stream: true}, tier: budget}\n"
                   "    - {name: images, when: {images: true}, tier: budget}\n"
                   "    - {name: mre, when: {model_regex: '^gpt'}, tier: budget}\n"
                   "    - {name: sys, when: {scope: system, keywords: [alpha]}, tier: budget}\n"
                   "    - {name: min, when: {min_tokens: 100}, tier: budget}\n");
    cJSON *j;
    const cJSON *rules;
    (void)state;
    j = explain(
        cfg, "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"alpha\"}]}", NULL);
    rules = get(j, "rules");
    assert_int_equal(cJSON_GetArraySize(rules), sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const cJSON *r = cJSON_GetArrayItem(rules, (int)i);
        assert_string_equal(get(r, "rule")->valuestring, want[i][0]);
        assert_true(cJSON_IsFalse(get(r, "matched")));
        expect_why(r, &want[i][1], 1);
    }
    assert_string_equal(get(get(j, "decision"), "rule")->valuestring, "default");
    cJSON_Delete(j);
    config_unref(cfg);
}

/* Every condition kind writes a non-empty why line, and the explanation of a
 * rule set with all of them is valid JSON. */
static void test_explain_every_condition(void **state)
{
    config_t *cfg = load_rules("    - name: everything\n"
                               "      when:\n"
                               "        min_tokens: 1\n"
                               "        max_tokens: 100\n"
                               "        keywords: [hello]\n"
                               "        keywords_all: [hello, world]\n"
                               "        regex: ['w.rld', '\"quoted\\\\']\n"
                               "        script: [latin]\n"
                               "        language: [en, und]\n"
                               "        response_format: json\n"
                               "        tools: false\n"
                               "        images: false\n"
                               "        audio: false\n"
                               "        stream: false\n"
                               "        min_messages: 1\n"
                               "        max_messages: 5\n"
                               "        min_output_tokens: 10\n"
                               "        max_output_tokens: 1000\n"
                               "        model: [auto]\n"
                               "        model_regex: '^au'\n"
                               "        key: [\"\"]\n"
                               "        key_regex: '^$'\n"
                               "        header: {x-a: b}\n"
                               "        header_regex: {x-c: '^d+$'}\n"
                               "      tier: premium\n");
    static const hdr_t h[] = {{"x-a", "b"}, {"x-c", "ddd"}, {NULL, NULL}};
    cJSON *j;
    const cJSON *rule, *why, *l;
    (void)state;
    j = explain(
        cfg,
        "{\"model\":\"auto\",\"max_tokens\":500,\"response_format\":{\"type\":\"json_object\"},"
        "\"messages\":[{\"role\":\"user\",\"content\":\"hello world\"}]}",
        h);
    rule = cJSON_GetArrayItem(get(j, "rules"), 0);
    why = get(rule, "why");
    /* one "all of:" line and one line per condition */
    assert_int_equal(cJSON_GetArraySize(why), 1 + 22);
    cJSON_ArrayForEach (l, why) {
        assert_true(cJSON_IsString(l));
        if (strstr(l->valuestring, "no: ") != NULL)
            fail_msg("condition did not hold: %s", l->valuestring);
    }
    assert_true(cJSON_IsTrue(get(rule, "matched")));
    assert_string_equal(get(get(j, "decision"), "rule")->valuestring, "everything");
    cJSON_Delete(j);
    config_unref(cfg);
}

/* ================= configuration errors ================= */

static void pos_of(const char *yaml, const char *needle, int *line, int *col)
{
    const char *p = strstr(yaml, needle);
    if (p == NULL)
        fail_msg("test bug: \"%s\" not in the YAML", needle);
    *line = 1;
    *col = 1;
    for (const char *q = yaml; q < p; q++) {
        if (*q == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* BASE + "  rules:\n" + rules fails to load, and an error line at the
 * position of `at` (NULL: any position) contains every string of msgs. */
static void expect_rules_error(const char *rules, const char *at, const char *const *msgs, size_t n,
                               int line_of_call)
{
    char yaml[16384], prefix[64];
    config_t *cfg;
    const char *p;
    snprintf(yaml, sizeof yaml, "%s  rules:\n%s", BASE, rules);
    cfg = load(yaml);
    if (cfg != NULL) {
        config_unref(cfg);
        fail_msg("line %d: config loaded, expected an error containing \"%s\"", line_of_call,
                 msgs[0]);
    }
    if (at != NULL) {
        int l, c;
        pos_of(yaml, at, &l, &c);
        snprintf(prefix, sizeof prefix, NAME ":%d:%d: ", l, c);
    } else {
        snprintf(prefix, sizeof prefix, NAME ":");
    }
    for (p = errbuf; *p; p = strchr(p, '\n') + 1) {
        const char *end = strchr(p, '\n');
        bool all = true;
        if (end == NULL)
            fail_msg("line %d: error output does not end with a newline: %s", line_of_call, errbuf);
        if (strncmp(p, prefix, strlen(prefix)) != 0)
            continue;
        for (size_t i = 0; i < n && all; i++) {
            const char *hit = strstr(p, msgs[i]);
            all = hit != NULL && hit < end;
        }
        if (all)
            return;
    }
    fail_msg("line %d: no error \"%s...\" containing \"%s\" in:\n%s", line_of_call, prefix, msgs[0],
             errbuf);
}

#define RULES_ERROR(rules, at, ...)                                                                \
    do {                                                                                           \
        static const char *const msgs_[] = {__VA_ARGS__};                                          \
        expect_rules_error(rules, at, msgs_, sizeof msgs_ / sizeof msgs_[0], __LINE__);            \
    } while (0)

static void test_config_unknown_condition(void **state)
{
    (void)state;
    RULES_ERROR("    - {name: r, when: {keyword: [x]}, tier: budget}\n",
                "keyword:", "unknown key \"keyword\" in routing.rules[0].when",
                "expected one of: scope, min_tokens, max_tokens, keywords, keywords_all, regex, "
                "script, language, response_format, tools, images, audio, stream, min_messages, "
                "max_messages, min_output_tokens, max_output_tokens, model, model_regex, key, "
                "key_regex, header, header_regex, complexity, all, any, not");
    /* nested: the path names where */
    RULES_ERROR("    - {name: r, when: {any: [{regexp: x}]}, tier: budget}\n", "regexp",
                "unknown key \"regexp\" in routing.rules[0].when.any", "expected one of: scope,");
    RULES_ERROR("    - {name: r, when: {stream: true}, tier: budget}\n"
                "    - {name: s, when: {not: {Tools: true}}, tier: budget}\n",
                "Tools", "unknown key \"Tools\" in routing.rules[1].when.not");
    /* and unknown keys of a rule */
    RULES_ERROR("    - {name: r, when: {stream: true}, tier: budget, priority: 1}\n", "priority",
                "unknown key \"priority\" in routing.rules[0]",
                "name, when, tier, chain, cache, tags");
}

static void test_config_rule_shape(void **state)
{
    (void)state;
    RULES_ERROR("    - {when: {stream: true}, tier: budget}\n", "{when",
                "routing.rules[0]: missing \"name\"");
    RULES_ERROR("    - {name: r, tier: budget}\n", "{name: r",
                "routing.rules[0]: missing \"when\"");
    RULES_ERROR("    - {name: r, when: {stream: true}}\n", "{name: r",
                "routing.rules[0]: needs a \"tier\" or a \"chain\"");
    RULES_ERROR("    - {name: r, when: {stream: true}, tier: budget, chain: [small]}\n", "{name: r",
                "routing.rules[0]: give either \"tier\" or \"chain\", not both");
    RULES_ERROR("    - {name: r, when: {}, tier: budget}\n", "{}, tier",
                "routing.rules[0].when: no conditions");
    RULES_ERROR("    - {name: r, when: [stream], tier: budget}\n", "[stream]",
                "routing.rules[0].when: expected a mapping");
    RULES_ERROR("    - just-a-name\n", "just-a-name", "routing.rules[0]: expected a mapping");
    {
        char yaml[4096];
        config_t *cfg;
        snprintf(yaml, sizeof yaml, "%s  rules: {name: r}\n", BASE);
        cfg = load(yaml);
        assert_null(cfg);
        assert_non_null(strstr(errbuf, "routing.rules: expected a list"));
    }
}

static void test_config_duplicate_and_reserved_names(void **state)
{
    (void)state;
    RULES_ERROR("    - {name: same, when: {stream: true}, tier: budget}\n"
                "    - {name: other, when: {stream: true}, tier: budget}\n"
                "    - {name: same, when: {stream: false}, tier: premium}\n",
                "{name: same, when: {stream: false}", "two rules are named \"same\"");
    RULES_ERROR("    - {name: default, when: {stream: true}, tier: budget}\n", "{name: default",
                "the rule name \"default\" is reserved");
    RULES_ERROR("    - {name: explicit, when: {stream: true}, tier: budget}\n", "{name: explicit",
                "the rule name \"explicit\" is reserved");
    RULES_ERROR("    - {name: client-tier, when: {stream: true}, tier: budget}\n",
                "{name: client-tier", "the rule name \"client-tier\" is reserved");
}

/* "report every problem at once": a duplicate name is reported even when an
 * earlier rule has an error of its own. */
static void test_config_duplicate_after_other_error(void **state)
{
    (void)state;
    RULES_ERROR("    - {name: first, when: {keywords: []}, tier: budget}\n"
                "    - {name: same, when: {stream: true}, tier: budget}\n"
                "    - {name: same, when: {stream: false}, tier: premium}\n",
                "{name: same, when: {stream: false}", "two rules are named \"same\"");
}

static void test_config_unknown_targets(void **state)
{
    (void)state;
    RULES_ERROR("    - {name: r, when: {stream: true}, tier: gold}\n", "gold",
                "routing.rules[0].tier: no tier named \"gold\" is defined under tiers");
    RULES_ERROR("    - {name: r, when: {stream: true}, chain: [small, ghost]}\n", NULL,
                "routing.rules[0].chain: no model named \"ghost\" is defined under models");
    /* a tier name is not a model */
    RULES_ERROR("    - {name: r, when: {stream: true}, chain: [budget]}\n", NULL,
                "no model named \"budget\"");
    RULES_ERROR("    - {name: r, when: {stream: true}, chain: []}\n", "[]}", "the list is empty");
}

static void test_config_bad_values(void **state)
{
    (void)state;
    RULES_ERROR("    - {name: r, when: {script: [latin, klingon]}, tier: budget}\n", NULL,
                "routing.rules[0].when.script: unknown script \"klingon\"");
    RULES_ERROR("    - {name: r, when: {language: english}, tier: budget}\n", "english",
                "routing.rules[0].when.language: unknown language \"english\"");
    RULES_ERROR("    - {name: r, when: {response_format: yaml}, tier: budget}\n", "yaml",
                "routing.rules[0].when.response_format: expected text, json_object, json_schema or "
                "json, found \"yaml\"");
    RULES_ERROR("    - {name: r, when: {scope: everything, stream: true}, tier: budget}\n",
                "everything",
                "routing.rules[0].when.scope: expected last_user, user, system or conversation");
    RULES_ERROR("    - {name: r, when: {min_tokens: -1}, tier: budget}\n", "-1", "min_tokens");
    RULES_ERROR("    - {name: r, when: {max_tokens: lots}, tier: budget}\n", "lots",
                "routing.rules[0].when.max_tokens: expected a whole number");
    RULES_ERROR("    - {name: r, when: {tools: maybe}, tier: budget}\n", "maybe",
                "routing.rules[0].when.tools: expected true or false");
    RULES_ERROR("    - {name: r, when: {header: [x-a]}, tier: budget}\n", "[x-a]",
                "routing.rules[0].when.header: expected a mapping");
    RULES_ERROR("    - {name: r, when: {not: [{stream: true}]}, tier: budget}\n", "[{stream",
                "routing.rules[0].when.not: expected a mapping");
}

static void test_config_empty_lists(void **state)
{
    (void)state;
    RULES_ERROR("    - {name: r, when: {keywords: []}, tier: budget}\n", "[]}",
                "routing.rules[0].when.keywords: the list is empty");
    RULES_ERROR("    - {name: r, when: {keywords_all: []}, tier: budget}\n", "[]}",
                "the list is empty");
    RULES_ERROR("    - {name: r, when: {regex: []}, tier: budget}\n", "[]}", "the list is empty");
    RULES_ERROR("    - {name: r, when: {script: []}, tier: budget}\n", "[]}", "the list is empty");
    RULES_ERROR("    - {name: r, when: {language: []}, tier: budget}\n", "[]}",
                "the list is empty");
    RULES_ERROR("    - {name: r, when: {model: []}, tier: budget}\n", "[]}", "the list is empty");
    RULES_ERROR("    - {name: r, when: {any: []}, tier: budget}\n", "[]}",
                "routing.rules[0].when.any: the list is empty");
    RULES_ERROR("    - {name: r, when: {all: []}, tier: budget}\n", "[]}", "the list is empty");
    RULES_ERROR("    - {name: r, when: {keywords: [\"\"]}, tier: budget}\n", NULL,
                "keyword \"\" is empty or longer than 256 bytes");
    {
        char rules[512];
        snprintf(rules, sizeof rules, "    - {name: r, when: {keywords: [ok, %s]}, tier: budget}\n",
                 rep("k", 257));
        RULES_ERROR(rules, NULL, "is empty or longer than 256 bytes");
        snprintf(rules, sizeof rules, "    - {name: r, when: {keywords: [ok, %s]}, tier: budget}\n",
                 rep("k", 256));
        config_unref(load_rules(rules));
    }
}

/* A mapping with no condition besides scope would hold for every request. */
static void test_config_scope_only_is_not_a_condition(void **state)
{
    (void)state;
    RULES_ERROR("    - {name: r, when: {scope: conversation}, tier: budget}\n", "{scope",
                "routing.rules[0].when: no conditions");
}

/* An empty header mapping checks no header and would hold for every
 * request, like the empty lists that are rejected. */
static void test_config_empty_header_map(void **state)
{
    (void)state;
    RULES_ERROR("    - {name: r, when: {header: {}}, tier: budget}\n", NULL,
                "routing.rules[0].when.header");
}

static void test_config_bad_regex(void **state)
{
    (void)state;
    RULES_ERROR("    - {name: r, when: {regex: 'ab(cd'}, tier: budget}\n", "'ab(cd'",
                "routing.rules[0].when.regex: invalid regular expression /ab(cd/", "at offset 5");
    RULES_ERROR("    - {name: r, when: {model_regex: '[z-a]'}, tier: budget}\n", "'[z-a]'",
                "routing.rules[0].when.model_regex: invalid regular expression /[z-a]/",
                "at offset");
    RULES_ERROR("    - {name: r, when: {header_regex: {x-a: '*x'}}, tier: budget}\n", "'*x'",
                "invalid regular expression /*x/", "at offset 0");
}

/* "a bad pattern is a configuration error with its line, column": in a list,
 * the line of the bad pattern. */
static void test_config_bad_regex_in_list_position(void **state)
{
    (void)state;
    RULES_ERROR("    - name: r\n"
                "      when:\n"
                "        regex:\n"
                "          - 'fine'\n"
                "          - 'ab(cd'\n"
                "      tier: budget\n",
                "'ab(cd'", "invalid regular expression /ab(cd/", "at offset 5");
}

static void test_config_cache_and_tags(void **state)
{
    config_t *cfg;
    (void)state;
    RULES_ERROR("    - {name: r, when: {stream: true}, tier: budget, cache: {ttl_s: 0}}\n", "0}}",
                "ttl_s: 0 is out of range (1..31536000)");
    RULES_ERROR("    - {name: r, when: {stream: true}, tier: budget, cache: {ttl_s: 31536001}}\n",
                "31536001", "ttl_s: 31536001 is out of range");
    RULES_ERROR("    - {name: r, when: {stream: true}, tier: budget, cache: {ttl: 5}}\n",
                "ttl:", "unknown key \"ttl\" in routing.rules[0].cache");
    RULES_ERROR("    - {name: r, when: {stream: true}, tier: budget, cache: sometimes}\n",
                "sometimes", "routing.rules[0].cache: expected true or false");
    RULES_ERROR("    - {name: r, when: {stream: true}, tier: budget, tags: {a: b}}\n", "{a: b}",
                "routing.rules[0].tags: expected a string or a list of strings");
    cfg =
        load_rules("    - {name: r, when: {stream: true}, tier: budget, cache: false, tags: one}\n"
                   "    - {name: s, when: {stream: true}, tier: budget, tags: [x, y, z]}\n");
    assert_int_equal(rules_action(cfg->rules, 0)->cache, RULE_CACHE_OFF);
    assert_int_equal(rules_action(cfg->rules, 0)->n_tags, 1);
    assert_string_equal(rules_action(cfg->rules, 0)->tags[0], "one");
    assert_int_equal(rules_action(cfg->rules, 1)->n_tags, 3);
    assert_string_equal(rules_action(cfg->rules, 1)->tags[2], "z");
    config_unref(cfg);
}

/* Every problem is reported, each with its position. */
static void test_config_reports_every_error(void **state)
{
    char yaml[4096];
    config_t *cfg;
    int lines = 0;
    (void)state;
    snprintf(yaml, sizeof yaml,
             "%s  rules:\n"
             "    - {name: a, when: {keywords: []}, tier: budget}\n"
             "    - {name: b, when: {regex: '('}, tier: budget}\n"
             "    - {name: c, when: {script: martian}, tier: nope}\n",
             BASE);
    cfg = load(yaml);
    assert_null(cfg);
    for (const char *p = errbuf; *p; p++)
        lines += *p == '\n';
    assert_true(lines >= 4);
    assert_non_null(strstr(errbuf, "rules[0].when.keywords"));
    assert_non_null(strstr(errbuf, "rules[1].when.regex"));
    assert_non_null(strstr(errbuf, "rules[2].when.script"));
    assert_non_null(strstr(errbuf, "rules[2].tier"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_boundaries_inclusive),
        cmocka_unit_test(test_tokens_zero_and_absent_text),
        cmocka_unit_test(test_tokens_user_scope),
        cmocka_unit_test(test_tokens_system_scope),
        cmocka_unit_test(test_tokens_conversation_scope),
        cmocka_unit_test(test_scope_inherited_by_nested_combinators),
        cmocka_unit_test(test_scope_override_in_nested_mapping),
        cmocka_unit_test(test_keywords_any),
        cmocka_unit_test(test_keywords_all),
        cmocka_unit_test(test_keywords_cjk),
        cmocka_unit_test(test_keywords_only_in_other_scope),
        cmocka_unit_test(test_keywords_shared_automaton),
        cmocka_unit_test(test_regex_case_and_anchors),
        cmocka_unit_test(test_regex_unicode_text),
        cmocka_unit_test(test_regex_unicode_classes),
        cmocka_unit_test(test_regex_prefilter_keeps_matches),
        cmocka_unit_test(test_regex_prefilter_escapes_and_posix_classes),
        cmocka_unit_test(test_regex_prefilter_alternation),
        cmocka_unit_test(test_cost_order_keeps_semantics),
        cmocka_unit_test(test_regex_invalid_utf8_text),
        cmocka_unit_test(test_script),
        cmocka_unit_test(test_script_scope),
        cmocka_unit_test(test_language),
        cmocka_unit_test(test_language_list_and_scope),
        cmocka_unit_test(test_response_format),
        cmocka_unit_test(test_tools_images_audio_stream),
        cmocka_unit_test(test_messages_count),
        cmocka_unit_test(test_output_tokens),
        cmocka_unit_test(test_model_and_model_regex),
        cmocka_unit_test(test_key_and_key_regex),
        cmocka_unit_test(test_header_and_header_regex),
        cmocka_unit_test(test_nesting_three_levels),
        cmocka_unit_test(test_not_of_several_conditions),
        cmocka_unit_test(test_first_match_wins),
        cmocka_unit_test(test_no_match_and_explicit),
        cmocka_unit_test(test_chain_action),
        cmocka_unit_test(test_actions_cache_and_tags),
        cmocka_unit_test(test_client_tier),
        cmocka_unit_test(test_request_parse_routes_by_rules),
        cmocka_unit_test(test_content_parts_joined),
        cmocka_unit_test(test_empty_null_and_missing_user),
        cmocka_unit_test(test_completions_and_embeddings),
        cmocka_unit_test(test_completions_list_default_scope_is_whole_prompt),
        cmocka_unit_test(test_huge_prompt),
        cmocka_unit_test(test_explain_json),
        cmocka_unit_test(test_explain_combinators_no),
        cmocka_unit_test(test_explain_default_explicit_and_texts),
        cmocka_unit_test(test_explain_why_strings),
        cmocka_unit_test(test_explain_every_condition),
        cmocka_unit_test(test_config_unknown_condition),
        cmocka_unit_test(test_config_rule_shape),
        cmocka_unit_test(test_config_duplicate_and_reserved_names),
        cmocka_unit_test(test_config_duplicate_after_other_error),
        cmocka_unit_test(test_config_unknown_targets),
        cmocka_unit_test(test_config_bad_values),
        cmocka_unit_test(test_config_empty_lists),
        cmocka_unit_test(test_config_scope_only_is_not_a_condition),
        cmocka_unit_test(test_config_empty_header_map),
        cmocka_unit_test(test_config_bad_regex),
        cmocka_unit_test(test_config_bad_regex_in_list_position),
        cmocka_unit_test(test_config_cache_and_tags),
        cmocka_unit_test(test_config_reports_every_error),
    };
    return cmocka_run_group_tests_name("rules", tests, NULL, NULL);
}
