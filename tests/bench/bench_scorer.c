/* Benchmark of the complexity scorer: what a `complexity` condition adds to
 * one routing decision, on prompts of about 100, 2,000 and 20,000 tokens of
 * mixed text (prose, a question, numbers, an operator, a code fence). Not
 * part of `make test`; `make bench` builds and runs it.
 *
 * Three lines per size, each the median ns per decision over 7 repetitions
 * of prompt_init + router_route + prompt_free on a fresh prompt (so every
 * lazily computed feature is paid, as in the daemon):
 *   - baseline: one rule that looks at a header only (no text is read);
 *   - complexity: one rule `complexity: {min: 0.5}` — the text statistics,
 *     the language, the scorer's pass and the logistic score;
 *   - tokens+complexity: a `min_tokens` rule before it, as in the shipped
 *     configuration, so the statistics are shared and the scorer's own share
 *     shows as the difference to a `min_tokens` rule alone.
 * The scorer's cost is complexity - baseline.
 *
 * bench_scorer TOKENS ITERATIONS runs only the complexity case of that size
 * (for valgrind --tool=callgrind). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/util.h"
#include "route/prompt.h"
#include "route/router.h"
#include "route/rules.h"

static const char *const TEXT[] = {
    "the", "report", "describes", "how", "our", "team", "planned", "the", "spring", "release",
    "and", "which", "customers", "asked", "for", "better", "search", "results", "in", "their",
    "daily", "work", "while", "the", "budget", "of", "1200", "stayed", "within", "limits",
    "agreed", "with", "Finance", "so", "x", "=", "2", "and", "must", "explain", "why",
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

static config_t *make_config(const char *rules)
{
    char yaml[2048], err[2048];
    config_t *cfg;
    snprintf(yaml, sizeof yaml,
             "providers: {p: {type: openai, base_url: \"http://127.0.0.1:1\"}}\n"
             "models: {a: {provider: p}, b: {provider: p}}\n"
             "tiers: {cheap: [a], premium: [b]}\n"
             "routing:\n  default_tier: cheap\n  rules:\n%s",
             rules);
    cfg = config_load_string("bench", yaml, strlen(yaml), err, sizeof err, NULL, 0);
    if (cfg == NULL) {
        fprintf(stderr, "%s", err);
        exit(1);
    }
    return cfg;
}

static char *make_body(size_t target_tokens)
{
    buf_t text, body;
    size_t i = 0;
    char *out;
    buf_init(&text, target_tokens * 8 + 256);
    while (buf_len(&text) < target_tokens * 4) {
        buf_puts(&text, TEXT[i++ % UTIL_ARRAY_LEN(TEXT)]);
        buf_puts(&text, i % 23 == 0 ? "?\\n" : i % 61 == 0 ? "\\n```\\nint f(void) {\\n```\\n" : " ");
    }
    buf_init(&body, buf_len(&text) + 256);
    buf_puts(&body, "{\"model\":\"auto\",\"messages\":[{\"role\":\"system\",\"content\":\"You are "
                    "a helpful assistant.\"},{\"role\":\"user\",\"content\":\"");
    buf_append(&body, buf_ptr(&text), buf_len(&text));
    buf_puts(&body, "\"}]}");
    buf_free(&text);
    out = xstrdup(buf_cstr(&body));
    buf_free(&body);
    return out;
}

static uint64_t run(const config_t *cfg, const cJSON *root, size_t iters)
{
    rule_ctx_t ctx = {.model = "auto", .key_name = ""};
    uint64_t rep[7];
    route_t r;
    for (int k = 0; k < 7; k++) {
        uint64_t t0 = now_ns();
        for (size_t i = 0; i < iters; i++) {
            prompt_t p;
            prompt_init(&p, root, EP_CHAT);
            router_route(cfg, "auto", &p, &ctx, NULL, &r, NULL);
            prompt_free(&p);
        }
        rep[k] = (now_ns() - t0) / iters;
    }
    qsort(rep, 7, sizeof *rep, cmp_u64);
    return rep[3];
}

int main(int argc, char **argv)
{
    config_t *base = make_config("    - {name: h, tier: premium, when: {header: {x-hint: premium}}}\n");
    config_t *cx = make_config("    - {name: c, tier: premium, when: {complexity: {min: 0.5}}}\n");
    config_t *tok = make_config("    - {name: t, tier: premium, when: {min_tokens: 100000}}\n");
    config_t *both = make_config("    - {name: t, tier: premium, when: {min_tokens: 100000}}\n"
                                 "    - {name: c, tier: premium, when: {complexity: {min: 0.5}}}\n");
    static const size_t sizes[] = {100, 2000, 20000};
    if (argc == 3) {
        char *json = make_body((size_t)strtoul(argv[1], NULL, 10));
        cJSON *root = cJSON_Parse(json);
        printf("complexity rule: %llu ns\n",
               (unsigned long long)run(cx, root, (size_t)strtoul(argv[2], NULL, 10)));
        cJSON_Delete(root);
        free(json);
        goto out;
    }
    printf("complexity scorer: ns per routing decision (median of 7 repetitions, one core)\n");
    for (size_t i = 0; i < UTIL_ARRAY_LEN(sizes); i++) {
        char *json = make_body(sizes[i]);
        cJSON *root = cJSON_Parse(json);
        size_t iters = sizes[i] >= 20000 ? 200 : sizes[i] >= 2000 ? 2000 : 20000;
        uint64_t b = run(base, root, iters), c = run(cx, root, iters), t = run(tok, root, iters),
                 tc = run(both, root, iters);
        printf("%6zu tokens (%7zu B): header rule %6llu  complexity %7llu  (scorer adds %7llu ns, "
               "%.2f ns/B)  min_tokens %7llu  min_tokens+complexity %7llu (+%llu)\n",
               sizes[i], strlen(json), (unsigned long long)b, (unsigned long long)c,
               (unsigned long long)(c - b), (double)(c - b) / (double)strlen(json),
               (unsigned long long)t, (unsigned long long)tc, (unsigned long long)(tc - t));
        cJSON_Delete(root);
        free(json);
    }
out:
    config_unref(base);
    config_unref(cx);
    config_unref(tok);
    config_unref(both);
    return 0;
}
