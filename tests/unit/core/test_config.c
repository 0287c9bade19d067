/* Unit tests for src/config.c: loading, defaults, environment expansion,
 * error reporting (FILE:LINE:COL), key handling, derived data, refcounting
 * and the published snapshot. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "core/config.h"
#include "core/log.h"
#include "http/auth.h"

#define NAME "t.yaml"
#define BUFSZ 8192

#define PROV "providers:\n  p1: {type: openai, base_url: \"http://h/v1\"}\n"
#define MODELS "models:\n  m1: {provider: p1}\n  m2: {provider: p1}\n"
#define TIERS "tiers:\n  t1: [m1, m2]\n"
#define ROUTING "routing:\n  default_tier: t1\n"
#define VALID PROV MODELS TIERS ROUTING

static char errbuf[BUFSZ], warnbuf[BUFSZ];

static config_t *load(const char *yaml)
{
    memset(errbuf, 'X', sizeof errbuf);
    memset(warnbuf, 'X', sizeof warnbuf);
    return config_load_string(NAME, yaml, strlen(yaml), errbuf, sizeof errbuf, warnbuf,
                              sizeof warnbuf);
}

static config_t *load_ok(const char *yaml)
{
    config_t *cfg = load(yaml);
    if (cfg == NULL)
        fail_msg("config did not load:\n%s", errbuf);
    assert_string_equal(errbuf, "");
    return cfg;
}

/* 1-based line and column of the nth (1-based) occurrence of needle. */
static void pos_of(const char *yaml, const char *needle, int nth, int *line, int *col)
{
    const char *p = yaml;
    for (int i = 0; i < nth; i++) {
        p = strstr(i ? p + 1 : p, needle);
        if (p == NULL)
            fail_msg("test bug: \"%s\" not in the YAML", needle);
    }
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

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Every error line reads "t.yaml:LINE:COL: message". */
static void assert_all_located(const char *buf)
{
    const char *line = buf;
    assert_true(strlen(buf) > 0);
    while (*line) {
        const char *end = strchr(line, '\n'), *p = line + strlen(NAME);
        int ok = strncmp(line, NAME ":", strlen(NAME) + 1) == 0;
        if (end == NULL)
            fail_msg("error output does not end with a newline: %s", buf);
        for (int part = 0; ok && part < 2; part++) {
            ok = *p++ == ':' && isdigit((unsigned char)*p);
            while (ok && isdigit((unsigned char)*p))
                p++;
        }
        ok = ok && p[0] == ':' && p[1] == ' ' && p + 2 < end;
        if (!ok)
            fail_msg("error line without FILE:LINE:COL: %.*s", (int)(end - line), line);
        line = end + 1;
    }
}

/* The load fails and some line "t.yaml:L:C: ..." (L:C = position of the nth
 * occurrence of at in the YAML) contains msg. */
static void expect_error_at_nth(const char *yaml, const char *at, int nth, const char *msg)
{
    char prefix[64];
    int line, col;
    const char *p;
    config_t *cfg = load(yaml);
    if (cfg != NULL) {
        config_unref(cfg);
        fail_msg("config loaded, expected an error containing: %s", msg);
    }
    pos_of(yaml, at, nth, &line, &col);
    snprintf(prefix, sizeof prefix, NAME ":%d:%d: ", line, col);
    for (p = errbuf; *p; p = strchr(p, '\n') + 1) {
        const char *end = strchr(p, '\n');
        assert_non_null(end);
        if (strncmp(p, prefix, strlen(prefix)) == 0) {
            const char *hit = strstr(p, msg);
            if (hit != NULL && hit < end)
                break;
        }
    }
    if (*p == '\0')
        fail_msg("no error \"%s%s...\" in:\n%s", prefix, msg, errbuf);
    assert_all_located(errbuf);
}

static void expect_error_at(const char *yaml, const char *at, const char *msg)
{
    expect_error_at_nth(yaml, at, 1, msg);
}

/* The load fails and the output contains msg (position not checked). */
static void expect_error(const char *yaml, const char *msg)
{
    config_t *cfg = load(yaml);
    if (cfg != NULL) {
        config_unref(cfg);
        fail_msg("config loaded, expected an error containing: %s", msg);
    }
    if (strstr(errbuf, msg) == NULL)
        fail_msg("no error \"%s\" in:\n%s", msg, errbuf);
}

static bool has_header(const config_t *cfg, size_t prov, const char *h)
{
    for (const struct curl_slist *l = cfg->providers[prov].headers; l; l = l->next)
        if (strcmp(l->data, h) == 0)
            return true;
    return false;
}

static bool has_header_prefix(const config_t *cfg, size_t prov, const char *h)
{
    for (const struct curl_slist *l = cfg->providers[prov].headers; l; l = l->next)
        if (strncmp(l->data, h, strlen(h)) == 0)
            return true;
    return false;
}

/* ---- valid configurations and defaults ---- */

static const char FULL[] = "providers:\n"
                           "  p1:\n"
                           "    type: openai\n"
                           "    base_url: \"http://127.0.0.1:9/v1//\"\n"
                           "  p2:\n"
                           "    type: openai\n"
                           "    base_url: https://api.example.com\n"
                           "    connect_timeout_ms: 100\n"
                           "    first_byte_timeout_ms: 200\n"
                           "    idle_timeout_ms: 300\n"
                           "    timeout_ms: 400\n"
                           "models:\n"
                           "  m1:\n"
                           "    provider: p1\n"
                           "    input_per_mtok: 1.5\n"
                           "    output_per_mtok: 6\n"
                           "  m2:\n"
                           "    provider: p2\n"
                           "    model: upstream-m2\n"
                           "    cached_input_per_mtok: 0.25\n"
                           "    input_per_mtok: 2\n"
                           "  m3: {provider: p1}\n"
                           "tiers:\n"
                           "  t1: [m1, m2]\n"
                           "  t2: [m2, m1]\n"
                           "routing:\n"
                           "  default_tier: t2\n";

static void test_minimal_config_and_defaults(void **state)
{
    config_t *cfg;
    const cfg_model_t *m1, *m2, *m3;
    (void)state;
    cfg = load_ok(FULL);
    /* m3 has no price (and no price-table entry): one warning names it */
    assert_non_null(strstr(warnbuf, "1 model without a price"));
    assert_non_null(strstr(warnbuf, ": m3;"));
    assert_int_equal(count_lines(warnbuf), 1);
    assert_string_equal(cfg->path, NAME);
    assert_int_equal(atomic_load(&cfg->refs), 1);
    /* server defaults */
    assert_string_equal(cfg->listen_host, "127.0.0.1");
    assert_int_equal(cfg->listen_port, 8080);
    assert_int_equal(cfg->max_body_bytes, 4u << 20);
    assert_int_equal(cfg->max_response_bytes, 32u << 20);
    assert_int_equal(cfg->max_connections, 10000);
    assert_int_equal(cfg->connection_timeout_s, 60);
    assert_int_equal(cfg->shutdown_grace_ms, 5000);
    assert_int_equal(cfg->log_level, LOG_INFO);
    assert_true(cfg->threads >= 1);
    /* providers */
    assert_int_equal(cfg->n_providers, 2);
    assert_string_equal(cfg->providers[0].name, "p1");
    assert_int_equal(cfg->providers[0].type, PROVIDER_OPENAI);
    assert_string_equal(cfg->providers[0].base_url, "http://127.0.0.1:9/v1");
    assert_null(cfg->providers[0].api_key_env);
    assert_false(cfg->providers[0].key_missing);
    assert_int_equal(cfg->providers[0].connect_timeout_ms, 5000);
    assert_int_equal(cfg->providers[0].first_byte_timeout_ms, 60000);
    assert_int_equal(cfg->providers[0].idle_timeout_ms, 120000);
    assert_int_equal(cfg->providers[0].timeout_ms, 600000);
    assert_true(has_header(cfg, 0, "Content-Type: application/json"));
    assert_true(has_header(cfg, 0, "Expect:"));
    assert_false(has_header_prefix(cfg, 0, "Authorization:"));
    assert_string_equal(cfg->providers[1].base_url, "https://api.example.com");
    assert_int_equal(cfg->providers[1].connect_timeout_ms, 100);
    assert_int_equal(cfg->providers[1].first_byte_timeout_ms, 200);
    assert_int_equal(cfg->providers[1].idle_timeout_ms, 300);
    assert_int_equal(cfg->providers[1].timeout_ms, 400);
    /* models */
    assert_int_equal(cfg->n_models, 3);
    m1 = &cfg->models[config_find_model(cfg, "m1")];
    m2 = &cfg->models[config_find_model(cfg, "m2")];
    m3 = &cfg->models[config_find_model(cfg, "m3")];
    assert_string_equal(m1->upstream, "m1"); /* defaults to its key */
    assert_string_equal(m2->upstream, "upstream-m2");
    assert_int_equal(m1->provider, 0);
    assert_int_equal(m2->provider, 1);
    assert_true(m1->input_per_mtok == 1.5);
    assert_true(m1->output_per_mtok == 6.0);
    assert_true(m1->cached_input_per_mtok == 1.5); /* defaults to the input price */
    assert_true(m2->input_per_mtok == 2.0);
    assert_true(m2->cached_input_per_mtok == 0.25); /* given before input: kept */
    assert_true(m3->input_per_mtok == 0.0 && m3->output_per_mtok == 0.0);
    /* tiers: a model's tier is the first tier listing it */
    assert_int_equal(cfg->n_tiers, 2);
    assert_int_equal(config_find_tier(cfg, "t1"), 0);
    assert_int_equal(config_find_tier(cfg, "t2"), 1);
    assert_int_equal(m1->tier, 0);
    assert_int_equal(m2->tier, 0); /* t2 lists it first, but t1 comes first */
    assert_int_equal(m3->tier, -1);
    assert_int_equal(cfg->tiers[1].n_models, 2);
    assert_int_equal(cfg->tiers[1].models[0], config_find_model(cfg, "m2"));
    assert_int_equal(cfg->tiers[1].models[1], config_find_model(cfg, "m1"));
    assert_int_equal(cfg->default_tier, 1);
    assert_int_equal(cfg->n_routable, 0);
    assert_int_equal(config_find_model(cfg, "nope"), -1);
    assert_int_equal(config_find_tier(cfg, "m1"), -1);
    config_unref(cfg);
}

static void test_server_section(void **state)
{
    config_t *cfg;
    (void)state;
    cfg = load_ok("server:\n"
                  "  listen: \"0.0.0.0:9999\"\n"
                  "  threads: 3\n"
                  "  max_body_bytes: 1024\n"
                  "  max_response_bytes: 2048\n"
                  "  max_connections: 7\n"
                  "  connection_timeout_s: 9\n"
                  "  shutdown_grace_ms: 0\n"
                  "  log_level: debug\n" VALID);
    assert_string_equal(cfg->listen_host, "0.0.0.0");
    assert_int_equal(cfg->listen_port, 9999);
    assert_int_equal(cfg->threads, 3);
    assert_int_equal(cfg->max_body_bytes, 1024);
    assert_int_equal(cfg->max_response_bytes, 2048);
    assert_int_equal(cfg->max_connections, 7);
    assert_int_equal(cfg->connection_timeout_s, 9);
    assert_int_equal(cfg->shutdown_grace_ms, 0);
    assert_int_equal(cfg->log_level, LOG_DEBUG);
    config_unref(cfg);

    /* threads: 0 = one per CPU, resolved */
    cfg = load_ok("server: {threads: 0}\n" VALID);
    assert_true(cfg->threads >= 1);
    config_unref(cfg);
}

static void test_listen_forms(void **state)
{
    static const struct {
        const char *listen, *host;
        unsigned port;
    } ok[] = {
        {"\"[::1]:9000\"", "::1", 9000},
        {"\":7000\"", "0.0.0.0", 7000},
        {"localhost:1", "localhost", 1},
        {"\"10.0.0.1:65535\"", "10.0.0.1", 65535},
    };
    (void)state;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char yaml[1024];
        config_t *cfg;
        snprintf(yaml, sizeof yaml, "server:\n  listen: %s\n" VALID, ok[i].listen);
        cfg = load_ok(yaml);
        assert_string_equal(cfg->listen_host, ok[i].host);
        assert_int_equal(cfg->listen_port, ok[i].port);
        config_unref(cfg);
    }
}

static void test_load_from_file(void **state)
{
    char path[] = "/tmp/llmrouter-test-config-XXXXXX";
    int fd = mkstemp(path);
    config_t *cfg;
    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, VALID, strlen(VALID)), (ssize_t)strlen(VALID));
    close(fd);
    cfg = config_load(path, errbuf, sizeof errbuf, warnbuf, sizeof warnbuf);
    unlink(path);
    if (cfg == NULL)
        fail_msg("%s", errbuf);
    assert_string_equal(cfg->path, path);
    assert_int_equal(cfg->n_models, 2);
    config_unref(cfg);

    cfg = config_load("/nonexistent/llmrouter.yaml", errbuf, sizeof errbuf, NULL, 0);
    assert_null(cfg);
    assert_non_null(strstr(errbuf, "/nonexistent/llmrouter.yaml"));
    assert_non_null(strstr(errbuf, "cannot open"));
}

/* ---- environment expansion ---- */

static void test_env_expansion(void **state)
{
    config_t *cfg;
    const char *yaml = "server:\n"
                       "  listen: \"${LLMR_T_HOST}:${LLMR_T_PORT:-9090}\"\n"
                       "providers:\n"
                       "  p1: {type: openai, base_url: \"${LLMR_T_URL:-http://default.example}/v$$1\"}\n"
                       "models:\n"
                       "  m1: {provider: p1, model: \"a${LLMR_T_NOPE:-}b$$\"}\n"
                       "  m2: {provider: p1, model: \"${LLMR_T_HOST:-unused}-$${X}\"}\n"
                       "tiers: {t1: [m1, m2]}\n"
                       "routing: {default_tier: \"${LLMR_T_TIER:-t1}\"}\n";
    (void)state;
    setenv("LLMR_T_HOST", "10.1.2.3", 1);
    setenv("LLMR_T_PORT", "", 1); /* empty counts as unset */
    unsetenv("LLMR_T_URL");
    unsetenv("LLMR_T_NOPE");
    unsetenv("LLMR_T_TIER");
    cfg = load_ok(yaml);
    assert_string_equal(cfg->listen_host, "10.1.2.3");
    assert_int_equal(cfg->listen_port, 9090);
    assert_string_equal(cfg->providers[0].base_url, "http://default.example/v$1");
    assert_string_equal(cfg->models[0].upstream, "ab$");
    assert_string_equal(cfg->models[1].upstream, "10.1.2.3-${X}");
    assert_int_equal(cfg->default_tier, 0);
    config_unref(cfg);

    setenv("LLMR_T_PORT", "7777", 1);
    setenv("LLMR_T_URL", "https://set.example/", 1);
    cfg = load_ok(yaml);
    assert_int_equal(cfg->listen_port, 7777);
    assert_string_equal(cfg->providers[0].base_url, "https://set.example//v$1");
    config_unref(cfg);
    unsetenv("LLMR_T_HOST");
    unsetenv("LLMR_T_PORT");
    unsetenv("LLMR_T_URL");
}

static void test_env_unset_without_default(void **state)
{
    (void)state;
    unsetenv("LLMR_T_UNSET_1");
    expect_error_at(PROV "models:\n  m1: {provider: p1, model: \"x-${LLMR_T_UNSET_1}\"}\n"
                         "tiers: {t1: [m1]}\n" ROUTING,
                    "\"x-${", "environment variable LLMR_T_UNSET_1 is not set");
    /* set but empty is the same as unset */
    setenv("LLMR_T_UNSET_1", "", 1);
    expect_error(PROV "models:\n  m1: {provider: p1, model: \"${LLMR_T_UNSET_1}\"}\n"
                      "tiers: {t1: [m1]}\n" ROUTING,
                 "LLMR_T_UNSET_1 is not set");
    unsetenv("LLMR_T_UNSET_1");
}

static void test_env_bad_references(void **state)
{
    (void)state;
    expect_error_at(PROV "models:\n  m1: {provider: p1, model: \"a${LLMR_T_X\"}\n"
                         "tiers: {t1: [m1]}\n" ROUTING,
                    "\"a${", "unterminated ${");
    expect_error_at(PROV "models:\n  m1: {provider: p1, model: \"a${}\"}\n"
                         "tiers: {t1: [m1]}\n" ROUTING,
                    "\"a${}", "bad environment reference");
    expect_error_at(PROV "models:\n  m1: {provider: p1, model: \"${:-x}\"}\n"
                         "tiers: {t1: [m1]}\n" ROUTING,
                    "\"${:-x}", "bad environment reference");
}

/* ---- errors ---- */

static void test_yaml_syntax_error(void **state)
{
    (void)state;
    assert_null(load("providers:\n\tp1: x\n"));
    assert_non_null(strstr(errbuf, "YAML syntax error"));
    assert_true(strncmp(errbuf, NAME ":2:", strlen(NAME ":2:")) == 0);
    assert_all_located(errbuf);

    assert_null(load(PROV "tiers: [m1, m2\nrouting: {default_tier: t1}\n"));
    assert_non_null(strstr(errbuf, "YAML syntax error"));
    assert_all_located(errbuf);

    assert_null(load("a: b: c\n"));
    assert_non_null(strstr(errbuf, "YAML syntax error"));
    assert_true(strncmp(errbuf, NAME ":1:", strlen(NAME ":1:")) == 0);
}

static void test_unknown_keys(void **state)
{
    const char *y1 = "server:\n  listn: \"1.2.3.4:5\"\n" VALID;
    const char *y2 = VALID "tier: {}\n";
    const char *y3 = "providers:\n  p1: {type: openai, base-url: \"http://h\"}\n" MODELS TIERS ROUTING;
    const char *y4 = PROV "models:\n  m1: {provider: p1, price: 3}\n  m2: {provider: p1}\n" TIERS ROUTING;
    const char *y5 = PROV MODELS TIERS "routing:\n  default_tier: t1\n  rulez: []\n";
    (void)state;
    expect_error_at(y1, "listn", "unknown key \"listn\" in server (expected one of: listen, threads");
    expect_error_at(y2, "tier: {}", "unknown key \"tier\" in the top level (expected one of: server, "
                                 "providers, models, tiers, routing, cache, observability, keys, budgets, redis, experiments, catalog)");
    expect_error_at(y3, "base-url", "unknown key \"base-url\" in providers.p1 (expected one of: type, "
                                    "base_url, api_key_env");
    expect_error_at(y4, "price", "unknown key \"price\" in models.m1 (expected one of: provider, model, "
                                 "input_per_mtok");
    expect_error_at(y5, "rulez", "unknown key \"rulez\" in routing (expected one of: default_tier, "
                                 "routable_models, allow_client_tier, baseline_model, rules, scorer, "
                                 "classifier, circuit, deadline_ms, max_deadline_ms)");
}

/* An unknown key that is a typo of a valid one names it; the message keeps
 * its position and the list of valid keys. */
static void test_unknown_key_suggestion(void **state)
{
    (void)state;
    expect_error_at("server:\n  thraeds: 2\n" VALID, "thraeds",
                    "unknown key \"thraeds\" in server (expected one of: listen, threads");
    assert_non_null(strstr(errbuf, "did you mean \"threads\"?"));
    expect_error_at("server:\n  Listen: \"1.2.3.4:5\"\n" VALID, "Listen", "did you mean \"listen\"?");
    expect_error_at(PROV MODELS TIERS ROUTING "cahce: {backend: off}\n", "cahce",
                    "in the top level (expected one of: server");
    assert_non_null(strstr(errbuf, "did you mean \"cache\"?"));
    expect_error_at("providers:\n  p1: {type: openai, base-url: \"http://h\"}\n" MODELS TIERS ROUTING,
                    "base-url", "did you mean \"base_url\"?");
    expect_error_at(PROV "models:\n  m1: {provider: p1, input_per_mtk: 3}\n  m2: {provider: p1}\n" TIERS
                    ROUTING, "input_per_mtk", "did you mean \"input_per_mtok\"?");
    /* the keys valid at that place: "threads" is not suggested at the top */
    expect_error_at(VALID "threads: 2\n", "threads", "unknown key \"threads\" in the top level");
    assert_null(strstr(errbuf, "did you mean"));
    /* nothing close: no suggestion */
    expect_error_at("server:\n  bogus: 1\n" VALID, "bogus", "unknown key \"bogus\" in server");
    assert_null(strstr(errbuf, "did you mean"));
}

/* libyaml's message for a tab in the indentation does not mention tabs. */
static void test_tab_indentation_named(void **state)
{
    config_t *cfg;
    (void)state;
    cfg = load("server:\n\tthreads: 2\n" VALID);
    assert_null(cfg);
    assert_non_null(strstr(errbuf, NAME ":2:1: YAML syntax error: tabs are not allowed for "
                                   "indentation in YAML (line 2 column 1)"));
    cfg = load(PROV MODELS "tiers:\n  t1:\n    - m1\n  \t- m2\n" ROUTING);
    assert_null(cfg);
    assert_non_null(strstr(errbuf, "tabs are not allowed for indentation in YAML (line 9 column 3)"));
    /* a tab inside a value is fine, and another syntax error does not blame tabs */
    cfg = load_ok(PROV "models:\n  m1: {provider: p1, model: \"a\tb\"}\n  m2: {provider: p1}\n" TIERS
                  ROUTING);
    config_unref(cfg);
    assert_null(load("a: b: c\n"));
    assert_null(strstr(errbuf, "tab"));
}

/* Port 0 is accepted (an ephemeral port, chosen when the daemon starts). */
static void test_listen_port_zero(void **state)
{
    config_t *cfg;
    (void)state;
    cfg = load_ok("server:\n  listen: \"127.0.0.1:0\"\n" VALID);
    assert_int_equal(cfg->listen_port, 0);
    assert_string_equal(cfg->listen_host, "127.0.0.1");
    config_unref(cfg);
    cfg = load_ok("server:\n  listen: \"[::1]:0\"\n" VALID);
    assert_int_equal(cfg->listen_port, 0);
    assert_string_equal(cfg->listen_host, "::1");
    config_unref(cfg);
}

/* config_load reads the file itself; a tab is named there too. */
static void test_load_file_tab(void **state)
{
    char path[] = "/tmp/llmrouter-test-config-XXXXXX";
    int fd = mkstemp(path);
    const char *y = "server:\n\tthreads: 2\n";
    config_t *cfg;
    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, y, strlen(y)), (ssize_t)strlen(y));
    close(fd);
    cfg = config_load(path, errbuf, sizeof errbuf, warnbuf, sizeof warnbuf);
    unlink(path);
    assert_null(cfg);
    assert_non_null(strstr(errbuf, ":2:1: YAML syntax error: tabs are not allowed"));
    assert_non_null(strstr(errbuf, path));
}

/* /readyz: every tier and every rule's explicit chain needs a model whose
 * provider key is set. */
static void test_readiness(void **state)
{
    const char *two = "providers:\n"
                      "  keyed: {type: openai, base_url: \"http://h\", api_key_env: LLMR_T_READY_UNSET}\n"
                      "  open: {type: openai, base_url: \"http://h\"}\n"
                      "models:\n  k1: {provider: keyed}\n  o1: {provider: open}\n";
    char yaml[2048];
    config_t *cfg;
    cJSON *j, *t;
    (void)state;
    unsetenv("LLMR_T_READY_UNSET");
    snprintf(yaml, sizeof yaml, "%stiers:\n  mixed: [k1, o1]\n  dead: [k1]\nrouting:\n  default_tier: mixed\n",
             two);
    cfg = load_ok(yaml);
    assert_false(cfg->ready);
    assert_int_equal(strlen(cfg->ready_json), cfg->ready_json_len);
    j = cJSON_Parse(cfg->ready_json);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "status")->valuestring, "not_ready");
    t = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tiers"), 1);
    assert_string_equal(cJSON_GetObjectItem(t, "name")->valuestring, "dead");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(t, "ready")));
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(t, "missing"), 0)->valuestring,
                        "model k1: provider keyed's api_key_env LLMR_T_READY_UNSET is not set");
    t = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tiers"), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(t, "ready")));
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(t, "usable_models"), 0)->valuestring,
                        "o1");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code")->valuestring,
                        "not_ready");
    assert_non_null(strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message")->valuestring,
                           "tier dead has no usable model"));
    cJSON_Delete(j);
    /* the warnings say what to do, and that a reload does not help */
    assert_non_null(strstr(warnbuf, "tier \"dead\" has no usable model"));
    assert_non_null(strstr(warnbuf, "restart"));
    assert_null(strstr(warnbuf, "until it is set and the configuration reloaded"));
    config_unref(cfg);

    /* a rule's explicit chain counts too */
    snprintf(yaml, sizeof yaml,
             "%stiers:\n  mixed: [k1, o1]\nrouting:\n  default_tier: mixed\n  rules:\n"
             "    - {name: r1, when: {keywords: [x]}, chain: [k1]}\n",
             two);
    cfg = load_ok(yaml);
    assert_false(cfg->ready);
    assert_non_null(strstr(cfg->ready_json, "\"rules\":[{\"name\":\"r1\",\"ready\":false"));
    config_unref(cfg);

    /* the key set: ready, 200 body lists every tier */
    setenv("LLMR_T_READY_UNSET", "sk-x", 1);
    snprintf(yaml, sizeof yaml, "%stiers:\n  mixed: [k1, o1]\n  dead: [k1]\nrouting:\n  default_tier: mixed\n",
             two);
    cfg = load_ok(yaml);
    assert_true(cfg->ready);
    j = cJSON_Parse(cfg->ready_json);
    assert_string_equal(cJSON_GetObjectItem(j, "status")->valuestring, "ready");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tiers")), 2);
    assert_null(cJSON_GetObjectItem(j, "error"));
    assert_null(strstr(cfg->ready_json, "sk-x"));
    cJSON_Delete(j);
    config_unref(cfg);
    unsetenv("LLMR_T_READY_UNSET");
}

/* observability.admin_key_* / metrics_token_*: parsed, checked against the
 * proxy keys, and a warning when keys lock the admin endpoints for good. */
static void test_admin_keys(void **state)
{
    config_t *cfg;
    (void)state;
    setenv("LLMR_T_ADMIN", "adm", 1);
    setenv("LLMR_T_KEY", "k1", 1);
    cfg = load_ok(VALID "observability:\n  admin_key_env: LLMR_T_ADMIN\n  metrics_token_sha256: \""
                  "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n"
                  "keys:\n  k: {key_env: LLMR_T_KEY}\n");
    assert_non_null(cfg->obs.admin_key);
    assert_true(cfg->obs.admin_key->usable);
    assert_non_null(cfg->obs.metrics_token);
    assert_true(auth_admin_check(cfg->auth, cfg->obs.admin_key, cfg->obs.metrics_token, false,
                                 "Bearer adm"));
    assert_false(auth_admin_check(cfg->auth, cfg->obs.admin_key, cfg->obs.metrics_token, false,
                                  "Bearer k1"));
    assert_null(strstr(warnbuf, "no usable admin key"));
    config_unref(cfg);

    /* keys but nothing that opens the admin endpoints: a warning */
    cfg = load_ok(VALID "keys:\n  k: {key_env: LLMR_T_KEY}\n");
    assert_null(cfg->obs.admin_key);
    assert_non_null(strstr(warnbuf, "no usable admin key"));
    assert_non_null(strstr(warnbuf, "and /metrics answer 401"));
    config_unref(cfg);
    cfg = load_ok(VALID "keys:\n  k: {key_env: LLMR_T_KEY, admin: true}\n");
    assert_null(strstr(warnbuf, "no usable admin key"));
    config_unref(cfg);

    /* the admin key may not be a proxy key's secret */
    setenv("LLMR_T_ADMIN", "k1", 1);
    expect_error_at(VALID "observability:\n  admin_key_env: LLMR_T_ADMIN\nkeys:\n  k: {key_env: LLMR_T_KEY}\n",
                    "LLMR_T_ADMIN", "observability.admin_key: same secret as proxy key \"k\"");
    expect_error_at(VALID "observability:\n  admin_key_env: LLMR_T_ADMIN\n  admin_key_sha256: \"00\"\n",
                    "admin_key_sha256", "give one of admin_key_env or admin_key_sha256");
    expect_error_at(VALID "observability:\n  admin_key_sha256: \"00\"\n", "\"00\"",
                    "expected 64 hexadecimal digits");
    expect_error_at(VALID "observability:\n  admin_kye_env: x\n", "admin_kye_env", "did you mean \"admin_key_env\"?");
    unsetenv("LLMR_T_ADMIN");
    unsetenv("LLMR_T_KEY");
}

static void test_duplicate_keys(void **state)
{
    const char *y1 = "providers:\n"
                     "  p1:\n"
                     "    type: openai\n"
                     "    base_url: \"http://a\"\n"
                     "    type: openai\n" MODELS TIERS ROUTING;
    const char *y2 = PROV "models:\n  m1: {provider: p1}\n  m2: {provider: p1}\n  m1: {provider: p1}\n"
                          TIERS ROUTING;
    const char *y3 = VALID "tiers: {t9: [m1]}\n";
    (void)state;
    expect_error_at_nth(y1, "type", 2, "duplicate key \"type\" (first at line 3)");
    expect_error_at_nth(y2, "m1:", 2, "duplicate key \"m1\" (first at line 4)");
    expect_error_at_nth(y3, "tiers:", 2, "duplicate key \"tiers\" (first at line 6)");
}

static void test_wrong_types(void **state)
{
    (void)state;
    expect_error_at("server: [a, b]\n" VALID, "[a, b]", "server: expected a mapping, found a list");
    expect_error_at(PROV "models:\n  - m1\n" TIERS ROUTING, "- m1",
                    "models: expected a mapping, found a list");
    /* a mapping is the cascade form of a tier (docs/configuration.md) */
    expect_error_at(PROV MODELS "tiers:\n  t1: {m1: 1}\n" ROUTING, "{m1: 1}",
                    "tiers.t1: missing \"models\"");
    expect_error_at(PROV MODELS "tiers:\n  t1: 5\n" ROUTING, "5\n",
                    "tiers.t1: expected a list, found a scalar");
    expect_error_at("providers:\n  p1: {type: openai, base_url: [x]}\n" MODELS TIERS ROUTING, "[x]",
                    "providers.p1.base_url: expected a string, found a list");
    expect_error_at(PROV "models:\n  m1: openai\n" TIERS ROUTING, "openai\n",
                    "models.m1: expected a mapping, found a scalar");
    expect_error_at("- a\n- b\n", "- a", "top level: expected a mapping, found a list");
    expect_error_at(PROV MODELS TIERS "routing:\n  default_tier: t1\n  routable_models: gpt-4o\n",
                    "gpt-4o", "routing.routable_models: expected a list");
}

static void test_non_scalar_key(void **state)
{
    (void)state;
    expect_error_at("server:\n  ? [a, b]\n  : 1\n" VALID, "[a, b]",
                    "keys must be plain strings, found a list");
}

static void test_input_length_respected(void **state)
{
    /* only the first len bytes are the document */
    const char *yaml = VALID "bogus: 1\n";
    config_t *cfg;
    (void)state;
    cfg = config_load_string(NAME, yaml, strlen(VALID), errbuf, sizeof errbuf, NULL, 0);
    if (cfg == NULL)
        fail_msg("%s", errbuf);
    config_unref(cfg);
    assert_null(config_load_string(NAME, yaml, strlen(yaml), errbuf, sizeof errbuf, NULL, 0));
    assert_non_null(strstr(errbuf, "bogus"));
}

static void test_unknown_provider(void **state)
{
    const char *y = "providers:\n  p1: {type: openai, base_url: \"http://h\"}\n"
                    "models:\n  m1: {provider: nope}\n  m2: {provider: p1}\n" TIERS ROUTING;
    (void)state;
    expect_error_at(y, "nope", "models.m1.provider: no provider named \"nope\" is defined under providers");
    /* one mistake, one error (not also "missing provider") */
    assert_int_equal(count_lines(errbuf), 1);
}

static void test_missing_required_keys(void **state)
{
    (void)state;
    expect_error_at("providers:\n  p1: {base_url: \"http://h\"}\n" MODELS TIERS ROUTING, "{base_url",
                    "providers.p1: missing \"type\"");
    expect_error_at("providers:\n  p1: {type: openai}\n" MODELS TIERS ROUTING, "{type",
                    "providers.p1: missing \"base_url\"");
    expect_error_at(PROV "models:\n  m1: {model: x}\n  m2: {provider: p1}\n" TIERS ROUTING, "{model: x}",
                    "models.m1: missing \"provider\"");
    expect_error_at("providers:\n  p1: {type: gemini, base_url: \"http://h\"}\n" MODELS TIERS ROUTING,
                    "gemini", "unknown provider type \"gemini\"");
    expect_error_at("providers:\n  p1: {type: openai, base_url: \"ftp://h\"}\n" MODELS TIERS ROUTING,
                    "\"ftp", "expected an http:// or https:// URL");
}

static void test_missing_sections(void **state)
{
    (void)state;
    expect_error_at(MODELS TIERS ROUTING, "models", "no providers are defined");
    expect_error(PROV TIERS ROUTING, "no models are defined");
    expect_error_at(PROV MODELS ROUTING, "providers", "no tiers are defined");
}

static void test_unknown_model_in_tier(void **state)
{
    (void)state;
    expect_error_at(PROV MODELS "tiers:\n  t1: [m1, ghost, m2]\n" ROUTING, "ghost",
                    "tiers.t1: no model named \"ghost\" is defined under models");
    expect_error_at(PROV MODELS "tiers:\n  t1: [m1, m2, m1]\n" ROUTING, "m1]",
                    "tiers.t1: model \"m1\" is listed twice");
}

static void test_tier_sizes(void **state)
{
    char yaml[8192];
    size_t o = 0;
    (void)state;
    expect_error_at(PROV MODELS "tiers:\n  t1: [m1]\n  t2: []\n" ROUTING, "[]",
                    "tiers.t2: a tier needs");
    o += (size_t)snprintf(yaml + o, sizeof yaml - o, PROV "models:\n");
    for (int i = 0; i < 32; i++)
        o += (size_t)snprintf(yaml + o, sizeof yaml - o, "  m%d: {provider: p1}\n", i);
    o += (size_t)snprintf(yaml + o, sizeof yaml - o, "tiers:\n  big: [");
    for (int i = 0; i < 32; i++)
        o += (size_t)snprintf(yaml + o, sizeof yaml - o, "%sm%d", i ? ", " : "", i);
    snprintf(yaml + o, sizeof yaml - o, "]\n  t1: [m1]\nrouting: {default_tier: t1}\n");
    expect_error_at(yaml, "[m0", "tiers.big: a tier needs");
    assert_non_null(strstr(errbuf, "32"));
}

static void test_default_tier_errors(void **state)
{
    const char *y1 = PROV MODELS TIERS "routing:\n  routable_models: [gpt-4o]\n";
    const char *y2 = PROV MODELS TIERS;
    const char *y3 = PROV MODELS TIERS "routing:\n  default_tier: premium\n";
    (void)state;
    expect_error_at(y1, "routable_models", "routing.default_tier is missing");
    expect_error_at(y2, "providers", "routing.default_tier is missing");
    expect_error_at(y3, "premium", "routing.default_tier: no tier named \"premium\" is defined under tiers");
}

static void test_tier_named_like_model(void **state)
{
    (void)state;
    expect_error_at(PROV MODELS "tiers:\n  t1: [m1]\n  m2: [m1]\n" ROUTING, "m2: [",
                    "tier \"m2\" has the same name as a model");
}

static void test_routable_models(void **state)
{
    config_t *cfg;
    (void)state;
    cfg = load_ok(PROV MODELS TIERS "routing:\n  default_tier: t1\n  routable_models: [gpt-4o, m1]\n");
    assert_int_equal(cfg->n_routable, 2);
    assert_string_equal(cfg->routable[0], "gpt-4o");
    assert_string_equal(cfg->routable[1], "m1");
    assert_true(config_is_routable(cfg, "auto"));
    assert_true(config_is_routable(cfg, "gpt-4o"));
    assert_true(config_is_routable(cfg, "m1"));
    assert_false(config_is_routable(cfg, "m2"));
    assert_false(config_is_routable(cfg, "t1"));
    assert_false(config_is_routable(cfg, "gpt-4"));
    assert_false(config_is_routable(cfg, "AUTO"));
    config_unref(cfg);

    expect_error_at(PROV MODELS TIERS "routing:\n  default_tier: t1\n  routable_models: [x, t1]\n",
                    "t1]", "routing.routable_models: \"t1\" is a tier name");
}

static void test_api_key_in_yaml_rejected(void **state)
{
    const char *y = "providers:\n"
                    "  p1:\n"
                    "    type: openai\n"
                    "    base_url: \"http://h\"\n"
                    "    api_key: sk-live-SECRET123\n" MODELS TIERS ROUTING;
    (void)state;
    expect_error_at(y, "api_key", "keys are never written in the configuration");
    assert_non_null(strstr(errbuf, "api_key_env"));
    assert_null(strstr(errbuf, "SECRET123"));
}

static void test_reserved_and_invalid_names(void **state)
{
    char yaml[2048], longname[130];
    (void)state;
    expect_error_at(PROV "models:\n  auto: {provider: p1}\n  m1: {provider: p1}\n  m2: {provider: p1}\n"
                         TIERS ROUTING,
                    "auto:", "\"auto\" is reserved");
    expect_error_at(PROV MODELS "tiers:\n  t1: [m1]\n  auto: [m2]\n" ROUTING, "auto:",
                    "\"auto\" is reserved");
    expect_error_at("providers:\n  auto: {type: openai, base_url: \"http://h\"}\n" MODELS TIERS ROUTING,
                    "auto:", "\"auto\" is reserved");
    expect_error_at(PROV "models:\n  \"bad name\": {provider: p1}\n" TIERS ROUTING, "\"bad name\"",
                    "may not contain spaces");
    memset(longname, 'x', 129);
    longname[129] = '\0';
    snprintf(yaml, sizeof yaml, PROV "models:\n  %s: {provider: p1}\n" TIERS ROUTING, longname);
    expect_error_at(yaml, longname, "1 to 128 characters");
}

static void test_bad_listen(void **state)
{
    static const char *const bad[] = {"localhost", "\"1.2.3.4:65536\"",
                                      "\"[::1]8080\"", "\"host:abc\"", "\"host:\"", "\"[::1]\"",
                                      "\"h:-1\""};
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char yaml[1024];
        snprintf(yaml, sizeof yaml, "server:\n  listen: %s\n" VALID, bad[i]);
        expect_error_at(yaml, bad[i], "server.listen: expected \"HOST:PORT\" or \"[IPv6]:PORT\"");
    }
}

static void test_out_of_range_numbers(void **state)
{
    (void)state;
    expect_error_at("server:\n  threads: 257\n" VALID, "257", "server.threads: 257 is out of range (0..256)");
    expect_error_at("server:\n  max_body_bytes: 1023\n" VALID, "1023", "server.max_body_bytes: 1023 is out of range");
    expect_error_at("server:\n  max_body_bytes: 1073741825\n" VALID, "1073741825", "out of range");
    expect_error_at("server:\n  max_connections: 0\n" VALID, "0\n", "server.max_connections: 0 is out of range");
    expect_error_at("server:\n  threads: -1\n" VALID, "-1", "server.threads: expected a whole number");
    expect_error_at("server:\n  threads: 2.5\n" VALID, "2.5", "server.threads: expected a whole number");
    expect_error_at("server:\n  threads: \"\"\n" VALID, "\"\"", "server.threads: expected a whole number");
    expect_error_at("server:\n  threads: 99999999999999999999999\n" VALID, "999", "expected a whole number");
    expect_error_at("providers:\n  p1: {type: openai, base_url: \"http://h\", connect_timeout_ms: 0}\n"
                    MODELS TIERS ROUTING, "0}", "providers.p1.connect_timeout_ms: 0 is out of range");
    expect_error_at("server:\n  log_level: verbose\n" VALID, "verbose",
                    "server.log_level: expected error, warn, info or debug");
}

static void test_bad_prices(void **state)
{
    static const char *const bad[] = {"-0.5", "abc", "nan", "inf", "1e999", "\"\"", "1.5x"};
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char yaml[1024];
        snprintf(yaml, sizeof yaml,
                 PROV "models:\n  m1: {provider: p1, input_per_mtok: %s}\n  m2: {provider: p1}\n" TIERS ROUTING,
                 bad[i]);
        expect_error_at(yaml, bad[i], "models.m1.input_per_mtok: expected a non-negative number");
    }
    expect_error_at(PROV "models:\n  m1: {provider: p1, cached_input_per_mtok: -1}\n  m2: {provider: p1}\n"
                         TIERS ROUTING,
                    "-1", "models.m1.cached_input_per_mtok: expected a non-negative number");
}

static void test_empty_document(void **state)
{
    static const char *const empty[] = {"", "# nothing but a comment\n", "~\n", "---\n", "\n\n"};
    (void)state;
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        assert_null(load(empty[i]));
        if (strstr(errbuf, "the configuration is empty") == NULL)
            fail_msg("document %zu: %s", i, errbuf);
        assert_int_equal(count_lines(errbuf), 1);
        assert_true(strncmp(errbuf, NAME ":", strlen(NAME ":")) == 0);
    }
}

/* config.h: every error is "FILE:LINE:COL: message", the empty document
 * included. */
static void test_empty_document_error_has_position(void **state)
{
    (void)state;
    assert_null(load(""));
    assert_all_located(errbuf);
}

static void test_several_errors_in_one_run(void **state)
{
    const char *y = "server:\n"
                    "  threads: 1000\n"
                    "providers:\n"
                    "  p1: {type: openai, base_url: \"ftp://x\"}\n"
                    "models:\n"
                    "  m1: {provider: p1, input_per_mtok: -1}\n"
                    "tiers:\n"
                    "  t1: [m1, ghost]\n"
                    "routing:\n"
                    "  default_tier: t1\n"
                    "  bogus: 1\n";
    (void)state;
    expect_error_at(y, "1000", "server.threads: 1000 is out of range");
    expect_error_at(y, "\"ftp", "providers.p1.base_url: expected an http");
    expect_error_at(y, "-1", "models.m1.input_per_mtok");
    expect_error_at(y, "ghost", "no model named \"ghost\"");
    expect_error_at(y, "bogus", "unknown key \"bogus\" in routing");
    assert_int_equal(count_lines(errbuf), 5);
}

static void test_small_and_null_error_buffers(void **state)
{
    char small[16];
    const char *bad = "server:\n  threads: 1000\n  bogus: 1\n" VALID;
    config_t *cfg;
    (void)state;
    memset(small, 'X', sizeof small);
    cfg = config_load_string(NAME, bad, strlen(bad), small, sizeof small, NULL, 0);
    assert_null(cfg);
    assert_true(memchr(small, '\0', sizeof small) != NULL);
    assert_true(strncmp(small, NAME ":", strlen(NAME ":")) == 0);
    /* no buffers at all: still fails cleanly */
    assert_null(config_load_string(NAME, bad, strlen(bad), NULL, 0, NULL, 0));
    cfg = config_load_string(NAME, VALID, strlen(VALID), NULL, 0, NULL, 0);
    assert_non_null(cfg);
    config_unref(cfg);
}

/* ---- keys ---- */

static const char KEYED[] = "providers:\n"
                            "  p1: {type: openai, base_url: \"http://h\", api_key_env: LLMR_T_KEY}\n"
                            "  p2: {type: openai, base_url: \"http://h2\"}\n"
                            "models:\n  m1: {provider: p1, input_per_mtok: 1}\n  m2: {provider: p2, input_per_mtok: 1}\n"
                            TIERS ROUTING;

static void test_key_missing_is_a_warning(void **state)
{
    config_t *cfg;
    (void)state;
    unsetenv("LLMR_T_KEY");
    cfg = load_ok(KEYED);
    assert_true(cfg->providers[0].key_missing);
    assert_false(cfg->providers[1].key_missing);
    assert_string_equal(cfg->providers[0].api_key_env, "LLMR_T_KEY");
    assert_non_null(strstr(warnbuf, "LLMR_T_KEY"));
    assert_non_null(strstr(warnbuf, "\"p1\""));
    assert_non_null(strstr(warnbuf, "not set"));
    assert_true(strncmp(warnbuf, NAME ":2:", strlen(NAME ":2:")) == 0);
    assert_int_equal(count_lines(warnbuf), 1);
    assert_false(has_header_prefix(cfg, 0, "Authorization:"));
    config_unref(cfg);

    setenv("LLMR_T_KEY", "", 1);
    cfg = load_ok(KEYED);
    assert_true(cfg->providers[0].key_missing);
    assert_non_null(strstr(warnbuf, "LLMR_T_KEY"));
    config_unref(cfg);
    unsetenv("LLMR_T_KEY");
}

/* type: anthropic: x-api-key + anthropic-version, never Authorization; the
 * models' Anthropic keys and their defaults; what is refused. */
static void test_anthropic_provider(void **state)
{
    config_t *cfg;
    const cfg_model_t *m1, *m2;
    const char *yaml = "providers:\n"
                       "  a: {type: anthropic, base_url: \"http://h/v1\", api_key_env: LLMR_T_AKEY}\n"
                       "  b: {type: anthropic, base_url: \"http://h/v1\", anthropic_version: \"2099-01-01\"}\n"
                       "models:\n"
                       "  m1: {provider: a, input_per_mtok: 3, cache_write_per_mtok: 3.75, "
                       "default_max_tokens: 1000}\n"
                       "  m2: {provider: b, input_per_mtok: 2}\n" TIERS ROUTING;
    (void)state;
    setenv("LLMR_T_AKEY", "sk-ant-SECRET-7", 1);
    cfg = load_ok(yaml);
    assert_int_equal(cfg->providers[0].type, PROVIDER_ANTHROPIC);
    assert_true(has_header(cfg, 0, "x-api-key: sk-ant-SECRET-7"));
    assert_true(has_header(cfg, 0, "anthropic-version: 2023-06-01"));
    assert_true(has_header(cfg, 0, "Content-Type: application/json"));
    assert_false(has_header_prefix(cfg, 0, "Authorization:"));
    assert_true(has_header(cfg, 1, "anthropic-version: 2099-01-01"));
    assert_false(has_header_prefix(cfg, 1, "x-api-key:"));
    m1 = &cfg->models[config_find_model(cfg, "m1")];
    m2 = &cfg->models[config_find_model(cfg, "m2")];
    assert_true(m1->cache_write_per_mtok == 3.75);
    assert_int_equal(m1->default_max_tokens, 1000);
    assert_true(m2->cache_write_per_mtok == 2.0); /* defaults to the input price */
    assert_int_equal(m2->default_max_tokens, 4096);
    assert_null(strstr(cfg->models_json, "SECRET"));
    config_unref(cfg);
    unsetenv("LLMR_T_AKEY");

    assert_null(load("providers:\n  p1: {type: openai, base_url: \"http://h\", anthropic_version: x}\n"
                     "models:\n  m1: {provider: p1}\n  m2: {provider: p1}\n" TIERS ROUTING));
    assert_non_null(strstr(errbuf, "anthropic_version applies only to type: anthropic"));
    assert_null(load("providers:\n  p1: {type: claude, base_url: \"http://h\"}\n"
                     "models:\n  m1: {provider: p1}\n  m2: {provider: p1}\n" TIERS ROUTING));
    assert_non_null(strstr(errbuf, "anthropic"));
    assert_null(load("providers:\n  p1: {type: anthropic, base_url: \"http://h\"}\n"
                     "models:\n  m1: {provider: p1, default_max_tokens: 0}\n  m2: {provider: p1}\n"
                     TIERS ROUTING));
    assert_non_null(strstr(errbuf, "default_max_tokens"));
}

static void test_key_present_builds_header_and_never_leaks(void **state)
{
    config_t *cfg;
    const char *bad;
    (void)state;
    setenv("LLMR_T_KEY", "sk-test-SECRET-42", 1);
    cfg = load_ok(KEYED);
    assert_false(cfg->providers[0].key_missing);
    assert_true(has_header(cfg, 0, "Authorization: Bearer sk-test-SECRET-42"));
    assert_false(has_header_prefix(cfg, 1, "Authorization:"));
    assert_string_equal(warnbuf, "");
    assert_null(strstr(cfg->models_json, "SECRET"));
    config_unref(cfg);

    /* with errors elsewhere, nothing of the key shows either */
    bad = "server:\n  bogus: 1\n"
          "providers:\n"
          "  p1: {type: openai, base_url: \"http://h\", api_key_env: LLMR_T_KEY}\n"
          "  p3: {type: openai, base_url: \"http://h\", api_key_env: LLMR_T_NOKEY}\n"
          "models:\n  m1: {provider: p1}\n  m2: {provider: p3}\n" TIERS ROUTING;
    unsetenv("LLMR_T_NOKEY");
    assert_null(load(bad));
    assert_null(strstr(errbuf, "SECRET"));
    assert_null(strstr(warnbuf, "SECRET"));
    unsetenv("LLMR_T_KEY");
}

static void test_key_with_line_break_rejected(void **state)
{
    (void)state;
    setenv("LLMR_T_KEY", "sk-abc-SECRET\r\nX-Evil: 1", 1);
    assert_null(load(KEYED));
    assert_non_null(strstr(errbuf, "LLMR_T_KEY"));
    assert_non_null(strstr(errbuf, "line break"));
    assert_null(strstr(errbuf, "SECRET"));
    assert_null(strstr(errbuf, "X-Evil"));
    assert_null(strstr(warnbuf, "SECRET"));
    unsetenv("LLMR_T_KEY");
}

/* config.h: every error is "FILE:LINE:COL: message" (the provider's position
 * is known). */
static void test_key_with_line_break_error_has_position(void **state)
{
    (void)state;
    setenv("LLMR_T_KEY", "sk-abc\nx", 1);
    assert_null(load(KEYED));
    unsetenv("LLMR_T_KEY");
    assert_all_located(errbuf);
}

/* A plausible mistake: writing the key's variable as a reference
 * (api_key_env: ${VAR}) instead of its name. The key value then becomes
 * the "variable name" and must still not be echoed into messages/logs. */
static void test_key_referenced_in_api_key_env_not_echoed(void **state)
{
    config_t *cfg;
    const char *y = "providers:\n"
                    "  p1: {type: openai, base_url: \"http://h\", api_key_env: \"${LLMR_T_KEY}\"}\n"
                    "models:\n  m1: {provider: p1}\n  m2: {provider: p1}\n" TIERS ROUTING;
    (void)state;
    setenv("LLMR_T_KEY", "sk-test-SECRET-42", 1);
    cfg = load(y);
    unsetenv("LLMR_T_KEY");
    config_unref(cfg);
    assert_null(strstr(errbuf, "SECRET"));
    assert_null(strstr(warnbuf, "SECRET"));
}

/* ---- derived data ---- */

static void test_models_json(void **state)
{
    config_t *cfg;
    cJSON *root, *data, *item;
    static const char *const ids[] = {"auto", "t1", "t2", "m1", "m2", "m3", "gpt-4o"};
    static const char *const owners[] = {"llmrouter", "llmrouter", "llmrouter", "p1", "p2", "p1",
                                         "llmrouter"};
    size_t i = 0;
    (void)state;
    cfg = load_ok("providers:\n"
                  "  p1: {type: openai, base_url: \"http://h\"}\n"
                  "  p2: {type: openai, base_url: \"http://h2\"}\n"
                  "models:\n  m1: {provider: p1}\n  m2: {provider: p2}\n  m3: {provider: p1}\n"
                  "tiers:\n  t1: [m1]\n  t2: [m2, m3]\n"
                  "routing:\n  default_tier: t1\n  routable_models: [gpt-4o, m1]\n");
    assert_non_null(cfg->models_json);
    assert_int_equal(cfg->models_json_len, strlen(cfg->models_json));
    root = cJSON_Parse(cfg->models_json);
    assert_non_null(root);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "object")->valuestring, "list");
    data = cJSON_GetObjectItemCaseSensitive(root, "data");
    assert_true(cJSON_IsArray(data));
    /* auto, the tiers, the models, then routable names that are not models
     * (m1 is listed once) */
    assert_int_equal(cJSON_GetArraySize(data), 7);
    cJSON_ArrayForEach(item, data)
    {
        cJSON *created = cJSON_GetObjectItemCaseSensitive(item, "created");
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(item, "id")->valuestring, ids[i]);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(item, "object")->valuestring, "model");
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(item, "owned_by")->valuestring,
                            owners[i]);
        assert_true(cJSON_IsNumber(created));
        assert_true((int64_t)created->valuedouble == cfg->loaded_at);
        i++;
    }
    cJSON_Delete(root);
    config_unref(cfg);
}

/* ---- lifetime ---- */

static void test_refcounting(void **state)
{
    config_t *cfg;
    (void)state;
    cfg = load_ok(VALID);
    assert_int_equal(atomic_load(&cfg->refs), 1);
    assert_ptr_equal(config_ref(cfg), cfg);
    assert_ptr_equal(config_ref(cfg), cfg);
    assert_int_equal(atomic_load(&cfg->refs), 3);
    config_unref(cfg);
    config_unref(cfg);
    assert_int_equal(atomic_load(&cfg->refs), 1);
    assert_string_equal(cfg->tiers[0].name, "t1"); /* still alive */
    config_unref(cfg);                             /* freed (ASan checks) */
    config_unref(NULL);                            /* harmless */
}

static void test_publish_current_generation(void **state)
{
    config_t *a, *b, *cur;
    unsigned g0 = config_generation();
    (void)state;
    assert_null(config_current());
    a = load_ok(VALID);
    b = load_ok("server: {listen: \"127.0.0.1:1234\"}\n" VALID);

    config_ref(a); /* ours; publish takes over the load's reference */
    config_publish(a);
    assert_int_equal(config_generation(), g0 + 1);
    assert_int_equal(atomic_load(&a->refs), 2);
    cur = config_current();
    assert_ptr_equal(cur, a);
    assert_int_equal(atomic_load(&a->refs), 3);
    config_unref(cur);

    config_publish(b);
    assert_int_equal(config_generation(), g0 + 2);
    /* the old snapshot lost the published reference; ours keeps it alive */
    assert_int_equal(atomic_load(&a->refs), 1);
    cur = config_current();
    assert_ptr_equal(cur, b);
    assert_int_equal(cur->listen_port, 1234);
    config_unref(cur);
    config_unref(a);

    config_publish(NULL); /* drops b */
    assert_int_equal(config_generation(), g0 + 3);
    assert_null(config_current());
}

/* redis: defaults, the request budget resolved from the per-command
 * timeouts, the keys, their ranges. */
static void test_redis_section(void **state)
{
    config_t *cfg;
    (void)state;
    cfg = load_ok(VALID);
    assert_int_equal(cfg->redis.request_budget_ms, 50);
    assert_int_equal(cfg->redis.cooldown_after_timeouts, 3);
    assert_int_equal(cfg->redis.cooldown_ms, 2000);
    assert_int_equal(cfg->redis.reconnect_max_ms, 5000);
    config_unref(cfg);
    /* unset: the larger per-command timeout */
    cfg = load_ok(VALID "cache: {backend: redis, redis_url: \"redis://127.0.0.1:1/0\", "
                        "redis_timeout_ms: 120}\nbudgets: {redis_timeout_ms: 80}\n");
    assert_int_equal(cfg->redis.request_budget_ms, 120);
    config_unref(cfg);
    cfg = load_ok(VALID "budgets: {redis_timeout_ms: 300}\n");
    assert_int_equal(cfg->redis.request_budget_ms, 300);
    config_unref(cfg);
    cfg = load_ok(VALID "redis:\n  request_budget_ms: 70\n  cooldown_after_timeouts: 5\n"
                        "  cooldown_ms: 500\n  reconnect_max_ms: 800\n");
    assert_int_equal(cfg->redis.request_budget_ms, 70);
    assert_int_equal(cfg->redis.cooldown_after_timeouts, 5);
    assert_int_equal(cfg->redis.cooldown_ms, 500);
    assert_int_equal(cfg->redis.reconnect_max_ms, 800);
    config_unref(cfg);
    expect_error_at(VALID "redis:\n  request_budget_ms: 0\n", "0\n", "redis.request_budget_ms");
    expect_error_at(VALID "redis:\n  cooldown_after_timeouts: 0\n", "0\n",
                    "redis.cooldown_after_timeouts");
    expect_error_at(VALID "redis:\n  reconnect_max_ms: 50\n", "50\n", "redis.reconnect_max_ms");
    expect_error_at(VALID "redis:\n  cooldown: 5\n", "cooldown:",
                    "unknown key \"cooldown\" in redis");
    expect_error_at(VALID "redis: [1]\n", "[1]", "redis");
}

/* server.user / server.group: names that must exist; group needs user. */
static void test_server_user(void **state)
{
    config_t *cfg;
    (void)state;
    cfg = load_ok(VALID);
    assert_null(cfg->run_user);
    assert_null(cfg->run_group);
    config_unref(cfg);
    cfg = load_ok("server: {user: root, group: root}\n" VALID);
    assert_string_equal(cfg->run_user, "root");
    assert_string_equal(cfg->run_group, "root");
    config_unref(cfg);
    expect_error_at("server:\n  user: no-such-user-llmr-x\n" VALID, "no-such",
                    "server.user: no user named \"no-such-user-llmr-x\"");
    expect_error_at("server:\n  user: root\n  group: no-such-group-llmr-x\n" VALID, "no-such",
                    "server.group: no group named \"no-such-group-llmr-x\"");
    expect_error_at("server:\n  user: \"\"\n" VALID, "\"\"", "server.user: expected a user name");
    expect_error("server:\n  group: root\n" VALID, "server.group needs server.user");
}

/* A message that quotes a value read from the environment writes the
 * variable's name instead (the value may be a secret); short values,
 * which are no secrets, are quoted as they are. */
static void test_env_values_never_quoted(void **state)
{
    (void)state;
    setenv("LLMR_T_SECRET", "sk-very-secret-value-42", 1);
    setenv("LLMR_T_SHORT", "loud", 1);
    expect_error_at("server:\n  log_level: \"${LLMR_T_SECRET}\"\n" VALID, "\"${LLMR_T_SECRET}",
                    "found \"${LLMR_T_SECRET}\"");
    assert_null(strstr(errbuf, "sk-very-secret-value-42"));
    expect_error_at("providers:\n  p1: {type: openai, base_url: \"x${LLMR_T_SECRET}y\"}\n" MODELS
                    TIERS ROUTING, "\"x${", "found \"x${LLMR_T_SECRET}y\"");
    assert_null(strstr(errbuf, "sk-very-secret-value-42"));
    expect_error_at("server:\n  log_level: \"${LLMR_T_SHORT}\"\n" VALID, "\"${LLMR_T_SHORT}",
                    "found \"loud\"");
    unsetenv("LLMR_T_SECRET");
    unsetenv("LLMR_T_SHORT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_config_and_defaults),
        cmocka_unit_test(test_server_section),
        cmocka_unit_test(test_listen_forms),
        cmocka_unit_test(test_load_from_file),
        cmocka_unit_test(test_env_expansion),
        cmocka_unit_test(test_env_unset_without_default),
        cmocka_unit_test(test_env_bad_references),
        cmocka_unit_test(test_yaml_syntax_error),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_non_scalar_key),
        cmocka_unit_test(test_input_length_respected),
        cmocka_unit_test(test_unknown_provider),
        cmocka_unit_test(test_missing_required_keys),
        cmocka_unit_test(test_missing_sections),
        cmocka_unit_test(test_unknown_model_in_tier),
        cmocka_unit_test(test_tier_sizes),
        cmocka_unit_test(test_default_tier_errors),
        cmocka_unit_test(test_tier_named_like_model),
        cmocka_unit_test(test_routable_models),
        cmocka_unit_test(test_api_key_in_yaml_rejected),
        cmocka_unit_test(test_reserved_and_invalid_names),
        cmocka_unit_test(test_bad_listen),
        cmocka_unit_test(test_out_of_range_numbers),
        cmocka_unit_test(test_bad_prices),
        cmocka_unit_test(test_empty_document),
        cmocka_unit_test(test_empty_document_error_has_position),
        cmocka_unit_test(test_several_errors_in_one_run),
        cmocka_unit_test(test_small_and_null_error_buffers),
        cmocka_unit_test(test_key_missing_is_a_warning),
        cmocka_unit_test(test_key_present_builds_header_and_never_leaks),
        cmocka_unit_test(test_anthropic_provider),
        cmocka_unit_test(test_key_with_line_break_rejected),
        cmocka_unit_test(test_key_with_line_break_error_has_position),
        cmocka_unit_test(test_key_referenced_in_api_key_env_not_echoed),
        cmocka_unit_test(test_models_json),
        cmocka_unit_test(test_refcounting),
        cmocka_unit_test(test_unknown_key_suggestion),
        cmocka_unit_test(test_tab_indentation_named),
        cmocka_unit_test(test_listen_port_zero),
        cmocka_unit_test(test_load_file_tab),
        cmocka_unit_test(test_readiness),
        cmocka_unit_test(test_admin_keys),
        cmocka_unit_test(test_publish_current_generation),
        cmocka_unit_test(test_redis_section),
        cmocka_unit_test(test_server_user),
        cmocka_unit_test(test_env_values_never_quoted),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
