/* Benchmark of one routing decision: 50 rules (keywords, regexes, length,
 * language, combinators) on prompts of about 100, 2,000 and 20,000 tokens.
 * Not part of `make test`; `make bench` builds and runs it.
 *
 * A "decision" is what the daemon does per routed request after it parsed
 * the body: prompt_init (shape of the request), router_route (lazily: the
 * scope's text, its token/script statistics, one keyword scan, the regexes,
 * the language when a rule asks) and prompt_free. The prompt is built so that
 * no rule matches — every one of the 50 rules is evaluated, the worst case —
 * and, separately, so that the 31st rule matches. The cost of parsing the
 * JSON body (cJSON) is reported on its own line, since the daemon pays it for
 * every request, routed or not.
 *
 * Output: median ns per decision over 7 repetitions, and ns per prompt byte. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/config.h"
#include "route/prompt.h"
#include "route/router.h"
#include "route/rules.h"
#include "core/util.h"

static const char *const PROSE[] = {
    "the", "report", "describes", "how", "our", "team", "planned", "the", "spring", "release", "and",
    "which", "customers", "asked", "for", "better", "search", "results", "in", "their", "daily",
    "work", "while", "the", "budget", "stayed", "within", "the", "limits", "agreed", "last",
    "year", "with", "finance", "so", "that", "every", "department", "could", "plan", "ahead",
    "of", "the", "summer", "holidays", "without", "surprises", "about", "costs", "or", "delays",
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* 50 rules: 20 keyword rules, 10 regex rules, 8 length rules, 6 language or
 * script rules, 6 combinators. Keywords are words that do not occur in the
 * prose above, so with `match` unset no rule fires. */
static char *make_config(void)
{
    buf_t b;
    static const char *kw[] = {"prove", "theorem", "lemma", "integral", "derivative", "eigenvalue",
                               "segfault", "refactor", "stacktrace", "kubernetes", "translate",
                               "translation", "haiku", "sonnet", "recipe", "itinerary", "diagnosis",
                               "symptom", "lawsuit", "contract", "invoice", "spreadsheet", "regex",
                               "sql", "python", "javascript", "golang", "rustlang", "compiler",
                               "benchmark"};
    char line[512];
    buf_init(&b, 1 << 20);
    buf_puts(&b, "providers: {p: {type: openai, base_url: \"http://127.0.0.1:1\"}}\n"
                 "models: {a: {provider: p}, b: {provider: p}, c: {provider: p}}\n"
                 "tiers: {budget: [a], standard: [b], premium: [c]}\n"
                 "routing:\n  default_tier: standard\n  rules:\n");
    for (int i = 0; i < 20; i++) {
        snprintf(line, sizeof line,
                 "    - {name: kw%d, tier: %s, when: {keywords: [\"%s%d\", \"%s\", \"%s step%d\", "
                 "\"%s\", \"%s%d\"]}}\n",
                 i, i % 2 ? "premium" : "budget", kw[i % 30], i, kw[(i + 7) % 30], kw[(i + 3) % 30], i,
                 kw[(i + 11) % 30], kw[(i + 13) % 30], i);
        buf_puts(&b, line);
    }
    for (int i = 0; i < 10; i++) {
        snprintf(line, sizeof line,
                 "    - {name: re%d, tier: premium, when: {regex: '\\b(%s|%s)\\s+(is|are)\\s+wrong%d\\b'}}\n",
                 i, kw[i], kw[i + 10], i);
        buf_puts(&b, line);
    }
    /* rule 31 of 50 (index 30) fires when the prompt says "zebracorn" */
    buf_puts(&b, "    - {name: target, tier: premium, when: {keywords: [zebracorn]}}\n");
    for (int i = 0; i < 8; i++) {
        snprintf(line, sizeof line,
                 "    - {name: len%d, tier: budget, when: {scope: %s, max_tokens: %d, "
                 "keywords: [\"%s\"]}}\n",
                 i, i % 2 ? "conversation" : "last_user", 10 + i, kw[(i + 5) % 30]);
        buf_puts(&b, line);
    }
    for (int i = 0; i < 6; i++) {
        static const char *langs[] = {"zh", "ja", "ko", "ru", "ar", "de"};
        snprintf(line, sizeof line, "    - {name: lang%d, tier: budget, when: {language: %s}}\n", i,
                 langs[i]);
        buf_puts(&b, line);
    }
    for (int i = 0; i < 5; i++) {
        snprintf(line, sizeof line,
                 "    - name: combo%d\n      tier: premium\n      when:\n        any:\n"
                 "          - {all: [{min_tokens: 5}, {keywords: [\"%s\"]}]}\n"
                 "          - {not: {script: latin}}\n"
                 "          - {regex: '```\\s*%s'}\n",
                 i, kw[(i + 17) % 30], kw[(i + 19) % 30]);
        buf_puts(&b, line);
    }
    return buf_cstr(&b);
}

static char *make_body(size_t target_tokens, bool match)
{
    buf_t text, body;
    size_t i = 0;
    char *out;
    buf_init(&text, target_tokens * 8 + 64);
    while (buf_len(&text) < target_tokens * 4) { /* ~4 bytes per token of English */
        const char *w = PROSE[i++ % (sizeof PROSE / sizeof *PROSE)];
        buf_puts(&text, w);
        buf_puts(&text, i % 17 == 0 ? ". " : " ");
        if (match && i == 40)
            buf_puts(&text, "zebracorn ");
    }
    buf_init(&body, buf_len(&text) * 2 + 256);
    buf_puts(&body, "{\"model\":\"auto\",\"messages\":[{\"role\":\"system\",\"content\":\"You are a "
                    "helpful assistant.\"},{\"role\":\"user\",\"content\":\"");
    buf_append(&body, buf_ptr(&text), buf_len(&text));
    buf_puts(&body, "\"}]}");
    buf_free(&text);
    out = xstrdup(buf_cstr(&body));
    buf_free(&body);
    return out;
}

static size_t g_iters; /* 0 = by size */

static void run(const config_t *cfg, size_t tokens, bool match)
{
    char *json = make_body(tokens, match);
    size_t len = strlen(json), iters = g_iters ? g_iters : tokens >= 20000 ? 200 : tokens >= 2000 ? 2000 : 20000;
    cJSON *root = cJSON_Parse(json);
    rule_ctx_t ctx = {.model = "auto", .key_name = ""};
    uint64_t rep[7], parse[7];
    route_t r;
    int rule = -9;

    for (int k = 0; k < 7; k++) {
        uint64_t t0 = now_ns();
        for (size_t i = 0; i < iters; i++) {
            prompt_t p;
            prompt_init(&p, root, EP_CHAT);
            router_route(cfg, "auto", &p, &ctx, NULL, &r, NULL);
            prompt_free(&p);
        }
        rep[k] = (now_ns() - t0) / iters;
        rule = r.rule;
        t0 = now_ns();
        for (size_t i = 0; i < iters / 4 + 1; i++)
            cJSON_Delete(cJSON_ParseWithLength(json, len));
        parse[k] = (now_ns() - t0) / (iters / 4 + 1);
    }
    qsort(rep, 7, sizeof *rep, cmp_u64);
    qsort(parse, 7, sizeof *parse, cmp_u64);
    printf("%6zu tokens (%7zu B body)  %-22s decision %8llu ns (range %llu-%llu)  %.2f ns/B   "
           "| JSON parse %8llu ns\n",
           tokens, len, match ? "rule 31 of 50 matches" : "no match (all 50 run)",
           (unsigned long long)rep[3], (unsigned long long)rep[0], (unsigned long long)rep[6],
           (double)rep[3] / (double)len, (unsigned long long)parse[3]);
    if ((match && rule != 30) || (!match && rule != ROUTE_RULE_DEFAULT))
        printf("  unexpected decision: rule %d\n", rule);
    cJSON_Delete(root);
    free(json);
}

/* bench_rules [TOKENS ITERATIONS]: only the no-match case of that size
 * (for valgrind --tool=callgrind, whose instruction counts do not depend on
 * the machine's load). */
int main(int argc, char **argv)
{
    char err[4096];
    char *yaml = make_config();
    config_t *cfg = config_load_string("bench", yaml, strlen(yaml), err, sizeof err, NULL, 0);
    static const size_t sizes[] = {100, 2000, 20000};
    if (cfg == NULL) {
        fprintf(stderr, "%s", err);
        return 1;
    }
    printf("routing decision, %zu rules (median of 7 repetitions, one core)\n", rules_count(cfg->rules));
    if (argc == 3) {
        g_iters = (size_t)strtoul(argv[2], NULL, 10);
        run(cfg, (size_t)strtoul(argv[1], NULL, 10), false);
        config_unref(cfg);
        free(yaml);
        return 0;
    }
    for (size_t i = 0; i < 3; i++)
        run(cfg, sizes[i], false);
    for (size_t i = 0; i < 3; i++)
        run(cfg, sizes[i], true);
    config_unref(cfg);
    free(yaml);
    return 0;
}
