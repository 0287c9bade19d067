/* Unit tests for src/metrics.c: observing hand-built requests on two
 * shards, the Prometheus text format (checked by a strict parser written
 * here), label escaping, failover reasons, quantiles and the stats JSON. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "account/metrics.h"
#include "http/request.h"

static const char YAML[] =
    "providers:\n"
    "  good: {type: openai, base_url: \"http://127.0.0.1:9/v1\"}\n"
    "  p500: {type: openai, base_url: \"http://127.0.0.1:9/sim/v1\"}\n"
    "models:\n"
    "  good-mini: {provider: good, model: sim-mini, input_per_mtok: 0.15, output_per_mtok: 0.60}\n"
    "  good-large: {provider: good, model: sim-large, input_per_mtok: 2.5, output_per_mtok: 10}\n"
    "  m500: {provider: p500, model: sim-500}\n"
    "tiers:\n"
    "  standard: [good-mini, good-large]\n"
    "  f500: [m500, good-mini]\n"
    "routing:\n"
    "  default_tier: standard\n"
    "  rules:\n"
    "    - name: tagged\n"
    "      when: {keywords: [zebracorn]}\n"
    "      tier: standard\n"
    "      tags: [alpha, beta]\n";

/* ------------------------------------------------------------ strict parser */

#define MAX_SAMPLES 4096
#define MAX_FAMS 256

typedef struct sample {
    char name[128];
    char labels[1024]; /* raw text between the braces, "" when none */
    double v;
} sample_t;

typedef struct fam {
    char name[128];
    char type[16];
    bool help, has_type, has_samples;
} fam_t;

typedef struct expo {
    sample_t s[MAX_SAMPLES];
    size_t n;
    fam_t f[MAX_FAMS];
    size_t nf;
} expo_t;

static bool name_ok(const char *p, size_t n, bool colon)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

static fam_t *fam_find(expo_t *e, const char *name)
{
    for (size_t i = 0; i < e->nf; i++)
        if (strcmp(e->f[i].name, name) == 0)
            return &e->f[i];
    return NULL;
}

/* The family a sample name belongs to (histogram suffixes stripped when
 * the base is a histogram). */
static fam_t *fam_of(expo_t *e, const char *name)
{
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    fam_t *f = fam_find(e, name);
    if (f != NULL)
        return f;
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(name), k = strlen(sfx[i]);
        char base[128];
        if (n > k && strcmp(name + n - k, sfx[i]) == 0 && n - k < sizeof base) {
            memcpy(base, name, n - k);
            base[n - k] = '\0';
            f = fam_find(e, base);
            if (f != NULL && strcmp(f->type, "histogram") == 0)
                return f;
        }
    }
    return NULL;
}

/* Checks {labels}: name="value" pairs, escapes only \\ \" \n. Returns the
 * length consumed including braces, or -1. */
static int parse_labels(const char *p, char *raw, size_t rawlen)
{
    const char *start = p;
    if (*p != '{')
        return -1;
    p++;
    while (*p != '}') {
        const char *n = p;
        while (*p && *p != '=')
            p++;
        if (*p != '=' || !name_ok(n, (size_t)(p - n), false) || p[1] != '"')
            return -1;
        p += 2;
        while (*p != '"') {
            if (*p == '\0' || *p == '\n')
                return -1;
            if (*p == '\\') {
                if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                    return -1;
                p++;
            }
            p++;
        }
        p++;
        if (*p == ',')
            p++;
        else if (*p != '}')
            return -1;
    }
    size_t len = (size_t)(p - start) - 1;
    if (len >= rawlen)
        return -1;
    memcpy(raw, start + 1, len);
    raw[len] = '\0';
    return (int)(p - start) + 1;
}

static bool value_ok(const char *s, double *v)
{
    char *end;
    if (strcmp(s, "+Inf") == 0) {
        *v = INFINITY;
        return true;
    }
    if (strcmp(s, "NaN") == 0) {
        *v = NAN;
        return true;
    }
    *v = strtod(s, &end);
    return end != s && *end == '\0';
}

/* Removes le="..." from labels (in place result in out). Returns the le
 * value in le, or false when there is none. */
static bool split_le(const char *labels, char *out, size_t outlen, char *le, size_t lelen)
{
    const char *p = strstr(labels, "le=\"");
    if (p == NULL || (p != labels && p[-1] != ','))
        return false;
    const char *q = strchr(p + 4, '"');
    snprintf(le, lelen, "%.*s", (int)(q - p - 4), p + 4);
    size_t pre = (size_t)(p - labels);
    if (pre > 0)
        pre--; /* the comma before */
    snprintf(out, outlen, "%.*s%s", (int)pre, labels, q[1] == ',' ? q + 1 : q + 1);
    return true;
}

/* Parses text strictly; fails the test with the offending line. */
static void expo_parse(expo_t *e, const char *text)
{
    char line[4096];
    const char *p = text;
    memset(e, 0, sizeof *e);
    assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
    while (*p) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        size_t n = (size_t)(nl - p);
        assert_true(n < sizeof line);
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl + 1;
        if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
            char *name = line + 7, *sp = strchr(name, ' ');
            assert_non_null(sp);
            *sp = '\0';
            if (!name_ok(name, strlen(name), true))
                fail_msg("bad metric name in: %s", name);
            fam_t *f = fam_find(e, name);
            if (f == NULL) {
                assert_true(e->nf < MAX_FAMS);
                f = &e->f[e->nf++];
                snprintf(f->name, sizeof f->name, "%s", name);
            }
            if (f->has_samples)
                fail_msg("HELP/TYPE after samples of %s", name);
            if (line[2] == 'H') {
                assert_false(f->help);
                f->help = true;
            } else {
                assert_false(f->has_type);
                f->has_type = true;
                snprintf(f->type, sizeof f->type, "%s", sp + 1);
                if (strcmp(f->type, "counter") && strcmp(f->type, "gauge") &&
                    strcmp(f->type, "histogram"))
                    fail_msg("bad type %s", f->type);
                if (strcmp(f->type, "counter") == 0 &&
                    (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total") != 0))
                    fail_msg("counter without _total: %s", name);
            }
            continue;
        }
        if (line[0] == '#' || line[0] == '\0')
            fail_msg("unexpected line: '%s'", line);
        assert_true(e->n < MAX_SAMPLES);
        sample_t *s = &e->s[e->n++];
        size_t k = 0;
        while (line[k] && line[k] != '{' && line[k] != ' ')
            k++;
        if (!name_ok(line, k, true) || k >= sizeof s->name)
            fail_msg("bad sample name: %s", line);
        memcpy(s->name, line, k);
        s->name[k] = '\0';
        if (line[k] == '{') {
            int used = parse_labels(line + k, s->labels, sizeof s->labels);
            if (used < 0)
                fail_msg("bad labels: %s", line);
            k += (size_t)used;
        }
        if (line[k] != ' ' || !value_ok(line + k + 1, &s->v))
            fail_msg("bad value: %s", line);
        fam_t *f = fam_of(e, s->name);
        if (f == NULL || !f->help || !f->has_type)
            fail_msg("sample before HELP and TYPE: %s", line);
        f->has_samples = true;
    }
    /* histograms: cumulative buckets ending with +Inf == _count */
    for (size_t i = 0; i < e->n; i++) {
        sample_t *s = &e->s[i];
        fam_t *f = fam_of(e, s->name);
        if (strcmp(f->type, "histogram") != 0 || strstr(s->name, "_count") == NULL)
            continue;
        double prev = -1, inf = -1;
        bool last_inf = false;
        for (size_t j = 0; j < e->n; j++) {
            char rest[1024], le[64];
            sample_t *b = &e->s[j];
            size_t bn = strlen(f->name);
            if (strncmp(b->name, f->name, bn) != 0 || strcmp(b->name + bn, "_bucket") != 0)
                continue;
            if (!split_le(b->labels, rest, sizeof rest, le, sizeof le))
                fail_msg("bucket without le: %s", b->labels);
            if (strcmp(rest, s->labels) != 0)
                continue;
            if (b->v < prev)
                fail_msg("buckets not cumulative: %s{%s}", b->name, b->labels);
            prev = b->v;
            last_inf = strcmp(le, "+Inf") == 0;
            if (last_inf)
                inf = b->v;
        }
        if (!last_inf || inf != s->v)
            fail_msg("histogram %s{%s}: +Inf bucket %g, count %g", f->name, s->labels, inf, s->v);
    }
}

/* The value of name{labels} (raw label text), or NAN. */
static double expo_get(const expo_t *e, const char *name, const char *labels)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->s[i].name, name) == 0 && strcmp(e->s[i].labels, labels) == 0)
            return e->s[i].v;
    return NAN;
}

/* ------------------------------------------------------------ fixtures */

typedef struct fx {
    config_t *cfg;
    metrics_t *shard[2];
    expo_t *e;
} fx_t;

static int setup(void **state)
{
    char err[2048];
    fx_t *fx = calloc(1, sizeof *fx);
    fx->cfg = config_load_string("metrics.yaml", YAML, strlen(YAML), err, sizeof err, NULL, 0);
    if (fx->cfg == NULL) {
        fprintf(stderr, "%s", err);
        free(fx);
        return -1;
    }
    fx->shard[0] = metrics_new();
    fx->shard[1] = metrics_new();
    fx->e = calloc(1, sizeof *fx->e);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    metrics_free(fx->shard[0]);
    metrics_free(fx->shard[1]);
    config_unref(fx->cfg);
    free(fx->e);
    free(fx);
    return 0;
}

static int M(const config_t *cfg, const char *name)
{
    int i = config_find_model(cfg, name);
    if (i < 0)
        fail_msg("no model %s", name);
    return i;
}

/* A finished 200 request on tier standard answered by good-mini. Times are
 * relative to T0 (microseconds). */
#define T0 1000000000ull
static void base_req(req_t *r, config_t *cfg, attempt_t *att)
{
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->ep = EP_CHAT;
    snprintf(r->id, sizeof r->id, "req-1");
    snprintf(r->method, sizeof r->method, "POST");
    snprintf(r->path, sizeof r->path, "/v1/chat/completions");
    r->route.tier = config_find_tier(cfg, "standard");
    r->route.rule = ROUTE_RULE_DEFAULT;
    r->model = M(cfg, "good-mini");
    r->resp_status = 200;
    r->cost_usd = 0.001;
    r->baseline_usd = 0.004;
    r->prompt_tokens = 100;
    r->completion_tokens = 20;
    r->cached_tokens = -1;
    r->key_name = "";
    r->cache_x = CACHE_X_BYPASS;
    r->t_start_us = T0;
    r->t_upstream_us = T0 + 1000;     /* 1 ms routing */
    r->t_first_byte_us = T0 + 41000;  /* 40 ms TTFB */
    r->t_end_us = T0 + 201000;        /* 200 ms upstream */
    att[0] = (attempt_t){.model = r->model, .status = 200};
    r->attempts = att;
    r->n_attempts = 1;
}

static char *render(fx_t *fx, const metrics_extra_t *x)
{
    buf_t b;
    buf_init(&b, 1 << 22);
    assert_int_equal(metrics_render(fx->shard, 2, x, &b), 0);
    char *s = strdup(buf_cstr(&b));
    buf_free(&b);
    return s;
}

/* Shard 0: 3 plain requests, 1 stream, 1 failover (f500), 1 cache hit;
 * shard 1: 2 plain, 1 error (502 after all attempts). */
static void observe_mix(fx_t *fx)
{
    config_t *cfg = fx->cfg;
    req_t r;
    attempt_t att[4];
    uint64_t end = T0 + 205000; /* 4 ms after the upstream ended */

    for (int i = 0; i < 3; i++) {
        base_req(&r, cfg, att);
        metrics_observe(fx->shard[0], cfg, &r, end);
    }
    base_req(&r, cfg, att);
    r.stream = true;
    metrics_observe(fx->shard[0], cfg, &r, end);

    base_req(&r, cfg, att);
    r.route.tier = config_find_tier(cfg, "f500");
    r.route.rule = ROUTE_RULE_EXPLICIT;
    att[0] = (attempt_t){.model = M(cfg, "m500"), .status = 500};
    snprintf(att[0].error, sizeof att[0].error, "HTTP 500");
    att[1] = (attempt_t){.model = M(cfg, "good-mini"), .status = 200};
    r.n_attempts = 2;
    metrics_observe(fx->shard[0], cfg, &r, end);

    base_req(&r, cfg, att);
    r.cache_x = CACHE_X_HIT;
    r.cost_usd = 0;
    r.baseline_usd = 0;
    r.t_upstream_us = r.t_first_byte_us = r.t_end_us = 0;
    r.n_attempts = 0;
    metrics_observe(fx->shard[0], cfg, &r, T0 + 300);

    for (int i = 0; i < 2; i++) {
        base_req(&r, cfg, att);
        r.cache_x = CACHE_X_MISS;
        metrics_observe(fx->shard[1], cfg, &r, end);
    }
    base_req(&r, cfg, att);
    r.route.tier = config_find_tier(cfg, "f500");
    r.route.rule = ROUTE_RULE_EXPLICIT;
    r.model = M(cfg, "good-mini");
    att[0] = (attempt_t){.model = M(cfg, "m500"), .status = 500};
    snprintf(att[0].error, sizeof att[0].error, "HTTP 500");
    att[1] = (attempt_t){.model = M(cfg, "good-mini"), .status = 0};
    snprintf(att[1].error, sizeof att[1].error, "Timeout was reached");
    r.n_attempts = 2;
    r.resp_status = 502;
    r.cost_usd = -1;
    r.baseline_usd = -1;
    r.prompt_tokens = r.completion_tokens = -1;
    metrics_observe(fx->shard[1], cfg, &r, end);
}

/* ------------------------------------------------------------ tests */

static void test_render_is_valid_and_merged(void **state)
{
    fx_t *fx = *state;
    observe_mix(fx);
    char *text = render(fx, NULL);
    expo_t *e = fx->e;
    expo_parse(e, text);

    assert_true(expo_get(e, "llmrouter_requests_total",
                         "model=\"good-mini\",provider=\"good\",tier=\"standard\",rule=\"default\","
                         "status=\"200\"") == 3 + 1 + 1 + 2);
    assert_true(expo_get(e, "llmrouter_requests_total",
                         "model=\"good-mini\",provider=\"good\",tier=\"f500\",rule=\"explicit\","
                         "status=\"200\"") == 1);
    assert_true(expo_get(e, "llmrouter_requests_total",
                         "model=\"good-mini\",provider=\"good\",tier=\"f500\",rule=\"explicit\","
                         "status=\"502\"") == 1);
    assert_true(expo_get(e, "llmrouter_errors_total",
                         "model=\"good-mini\",tier=\"f500\",status=\"502\"") == 1);
    assert_true(expo_get(e, "llmrouter_streams_total", "model=\"good-mini\"") == 1);
    assert_true(expo_get(e, "llmrouter_failovers_total",
                         "from=\"m500\",to=\"good-mini\",reason=\"status_5xx\"") == 2);
    /* the last attempt of an exhausted chain is not a failover */
    assert_true(isnan(expo_get(e, "llmrouter_failovers_total",
                               "from=\"good-mini\",to=\"-\",reason=\"timeout\"")));
    assert_true(expo_get(e, "llmrouter_upstream_attempts_total",
                         "model=\"good-mini\",provider=\"good\",result=\"timeout\"") == 1);
    assert_true(expo_get(e, "llmrouter_upstream_attempts_total",
                         "model=\"m500\",provider=\"p500\",result=\"status_5xx\"") == 2);
    assert_true(expo_get(e, "llmrouter_cache_requests_total", "model=\"good-mini\",result=\"hit\"") == 1);
    assert_true(expo_get(e, "llmrouter_cache_requests_total", "model=\"good-mini\",result=\"miss\"") == 2);
    assert_true(expo_get(e, "llmrouter_cache_requests_total",
                         "model=\"good-mini\",result=\"bypass\"") == 6);
    /* 8 requests with usage (the cache hit counts its tokens too, the error none) */
    assert_true(expo_get(e, "llmrouter_prompt_tokens_total", "model=\"good-mini\"") == 800);
    assert_true(expo_get(e, "llmrouter_completion_tokens_total", "model=\"good-mini\"") == 160);
    double cost = expo_get(e, "llmrouter_cost_usd_total", "model=\"good-mini\",tier=\"standard\",key=\"-\"");
    assert_true(fabs(cost - 0.006) < 1e-12);
    double saved = expo_get(e, "llmrouter_savings_usd_total",
                            "model=\"good-mini\",tier=\"standard\",key=\"-\"");
    assert_true(fabs(saved - 0.018) < 1e-12);
    /* histograms: 8 upstream calls, 0.2 s each -> in the 0.25 bucket */
    assert_true(expo_get(e, "llmrouter_upstream_latency_seconds_count", "model=\"good-mini\"") == 8);
    assert_true(expo_get(e, "llmrouter_upstream_latency_seconds_bucket",
                         "model=\"good-mini\",le=\"0.1\"") == 0);
    assert_true(expo_get(e, "llmrouter_upstream_latency_seconds_bucket",
                         "model=\"good-mini\",le=\"0.25\"") == 8);
    assert_true(fabs(expo_get(e, "llmrouter_upstream_latency_seconds_sum", "model=\"good-mini\"") -
                     1.6) < 1e-9);
    assert_true(expo_get(e, "llmrouter_time_to_first_byte_seconds_bucket",
                         "model=\"good-mini\",le=\"0.05\"") == 8);
    assert_true(expo_get(e, "llmrouter_request_duration_seconds_count", "model=\"good-mini\"") == 9);
    /* overhead: 1 ms before + 4 ms after the upstream = 5 ms; the hit 0.3 ms */
    assert_true(expo_get(e, "llmrouter_router_overhead_seconds_count", "") == 9);
    assert_true(expo_get(e, "llmrouter_router_overhead_seconds_bucket", "le=\"0.0005\"") == 1);
    assert_true(expo_get(e, "llmrouter_router_overhead_seconds_bucket", "le=\"0.005\"") == 9);
    free(text);
}

static void test_render_empty_and_extra(void **state)
{
    fx_t *fx = *state;
    mcache_stats_t mc = {.entries = 3, .bytes = 1000, .max_bytes = 4096, .hits = 5, .misses = 7};
    metrics_redis_t rs[2] = {
        {.client = "cache",
         .sum = {.errors = 1, .timeouts = 2, .down = 3, .reconnects = 4, .dropped_writes = 5,
                 .connected = true},
         .n_state = {2, 0, 0}},
        {.client = "budgets",
         .sum = {.timeouts = 7, .skipped = 8, .cooldowns = 1, .connect_attempts = 9},
         .n_state = {0, 1, 1}}};
    metrics_extra_t x = {.mcache = &mc, .redis = rs, .n_redis = 2, .uptime_s = 12.5,
                         .config_generation = 3, .config_reloads = 2, .version = "0.1.0",
                         .shards = 2};
    char *text = render(fx, &x);
    expo_parse(fx->e, text);
    assert_true(expo_get(fx->e, "llmrouter_memcache_hits_total", "") == 5);
    assert_true(expo_get(fx->e, "llmrouter_memcache_entries", "") == 3);
    assert_true(expo_get(fx->e, "llmrouter_redis_timeouts_total", "client=\"cache\"") == 2);
    assert_true(expo_get(fx->e, "llmrouter_redis_dropped_writes_total", "client=\"cache\"") == 5);
    assert_true(expo_get(fx->e, "llmrouter_redis_connected", "client=\"cache\"") == 1);
    assert_true(expo_get(fx->e, "llmrouter_redis_timeouts_total", "client=\"budgets\"") == 7);
    assert_true(expo_get(fx->e, "llmrouter_redis_skipped_total", "client=\"budgets\"") == 8);
    assert_true(expo_get(fx->e, "llmrouter_redis_cooldowns_total", "client=\"budgets\"") == 1);
    assert_true(expo_get(fx->e, "llmrouter_redis_connect_attempts_total", "client=\"budgets\"") ==
                9);
    assert_true(expo_get(fx->e, "llmrouter_redis_connected", "client=\"budgets\"") == 0);
    assert_true(expo_get(fx->e, "llmrouter_redis_state", "client=\"cache\",state=\"up\"") == 2);
    assert_true(expo_get(fx->e, "llmrouter_redis_state", "client=\"budgets\",state=\"down\"") ==
                1);
    assert_true(
        expo_get(fx->e, "llmrouter_redis_state", "client=\"budgets\",state=\"cooling\"") == 1);
    assert_true(expo_get(fx->e, "llmrouter_redis_state", "client=\"budgets\",state=\"up\"") == 0);
    assert_true(expo_get(fx->e, "llmrouter_uptime_seconds", "") == 12.5);
    assert_true(expo_get(fx->e, "llmrouter_config_reloads_total", "") == 2);
    assert_true(expo_get(fx->e, "llmrouter_build_info", "version=\"0.1.0\"") == 1);
    free(text);
    /* without extras there are no process metrics */
    text = render(fx, NULL);
    expo_parse(fx->e, text);
    assert_null(strstr(text, "llmrouter_memcache"));
    assert_null(strstr(text, "llmrouter_redis"));
    free(text);
}

static void test_label_escaping(void **state)
{
    fx_t *fx = *state;
    req_t r;
    attempt_t att[2];
    base_req(&r, fx->cfg, att);
    r.key_name = "we\"ird\\key\nname";
    metrics_observe(fx->shard[1], fx->cfg, &r, T0 + 300000);
    char *text = render(fx, NULL);
    expo_parse(fx->e, text);
    assert_non_null(strstr(text, "key=\"we\\\"ird\\\\key\\nname\""));
    assert_true(expo_get(fx->e, "llmrouter_cost_usd_total",
                         "model=\"good-mini\",tier=\"standard\",key=\"we\\\"ird\\\\key\\nname\"") ==
                0.001);
    free(text);
}

static void test_unknown_model_and_rule_tags(void **state)
{
    fx_t *fx = *state;
    req_t r;
    attempt_t att[2];
    base_req(&r, fx->cfg, att);
    r.model = -1; /* refused before any attempt */
    r.route.tier = -1;
    r.route.rule = ROUTE_RULE_DEFAULT;
    r.resp_status = 400;
    r.n_attempts = 0;
    r.t_upstream_us = r.t_first_byte_us = r.t_end_us = 0;
    r.cost_usd = r.baseline_usd = -1;
    metrics_observe(fx->shard[0], fx->cfg, &r, T0 + 100);
    char *text = render(fx, NULL);
    expo_parse(fx->e, text);
    assert_true(expo_get(fx->e, "llmrouter_requests_total",
                         "model=\"-\",provider=\"-\",tier=\"none\",rule=\"default\",status=\"400\"") ==
                1);
    assert_true(isnan(expo_get(fx->e, "llmrouter_upstream_latency_seconds_count", "model=\"-\"")));
    free(text);
}

/* A retry (the same model again, attempt.retry > 0) is counted in
 * llmrouter_upstream_retries_total, not as a failover. */
static void test_retries_are_not_failovers(void **state)
{
    fx_t *fx = *state;
    config_t *cfg = fx->cfg;
    req_t r;
    attempt_t att[4];
    base_req(&r, cfg, att);
    r.model = M(cfg, "m500");
    att[0] = (attempt_t){.model = M(cfg, "m500"), .status = 503};
    snprintf(att[0].error, sizeof att[0].error, "HTTP 503");
    att[1] = (attempt_t){.model = M(cfg, "m500"), .status = 0, .retry = 1};
    snprintf(att[1].error, sizeof att[1].error,
             "the reused connection closed before any response (not re-sent)");
    att[2] = (attempt_t){.model = M(cfg, "m500"), .status = 500, .retry = 2};
    snprintf(att[2].error, sizeof att[2].error, "HTTP 500");
    att[3] = (attempt_t){.model = M(cfg, "good-mini"), .status = 200};
    r.n_attempts = 4;
    metrics_observe(fx->shard[0], cfg, &r, T0 + 205000);
    char *text = render(fx, NULL);
    expo_parse(fx->e, text);
    assert_true(expo_get(fx->e, "llmrouter_upstream_retries_total",
                         "model=\"m500\",provider=\"p500\",reason=\"status_5xx\"") == 1);
    assert_true(expo_get(fx->e, "llmrouter_upstream_retries_total",
                         "model=\"m500\",provider=\"p500\",reason=\"stale_connection\"") == 1);
    assert_true(isnan(expo_get(fx->e, "llmrouter_failovers_total",
                               "from=\"m500\",to=\"m500\",reason=\"status_5xx\"")));
    assert_true(expo_get(fx->e, "llmrouter_failovers_total",
                         "from=\"m500\",to=\"good-mini\",reason=\"status_5xx\"") == 1);
    assert_true(expo_get(fx->e, "llmrouter_upstream_attempts_total",
                         "model=\"m500\",provider=\"p500\",result=\"status_5xx\"") == 2);
    free(text);
}

static void test_failover_reasons(void **state)
{
    (void)state;
    assert_string_equal(metrics_failover_reason(429, "HTTP 429"), "status_429");
    assert_string_equal(metrics_failover_reason(503, "HTTP 503"), "status_5xx");
    assert_string_equal(metrics_failover_reason(529, "HTTP 529"), "status_5xx");
    assert_string_equal(metrics_failover_reason(401, "HTTP 401"), "status_401");
    assert_string_equal(metrics_failover_reason(403, "HTTP 403"), "status_403");
    assert_string_equal(metrics_failover_reason(0, "HTTP 429"), "status_429");
    assert_string_equal(metrics_failover_reason(0, "no answer within 400 ms (first_byte_timeout_ms)"),
                        "timeout");
    assert_string_equal(metrics_failover_reason(0, "Timeout was reached"), "timeout");
    assert_string_equal(metrics_failover_reason(0, "Couldn't connect to server"), "connect");
    assert_string_equal(metrics_failover_reason(0, "Could not resolve host: x"), "connect");
    assert_string_equal(metrics_failover_reason(200, "invalid JSON in the answer"), "invalid_answer");
    assert_string_equal(metrics_failover_reason(200, "error object in a 2xx answer"),
                        "invalid_answer");
    assert_string_equal(metrics_failover_reason(200, "stream ended before any content"),
                        "invalid_answer");
    assert_string_equal(metrics_failover_reason(200, "error event: {\"error\":{}}"), "error_event");
    assert_string_equal(metrics_failover_reason(0, "Failure when receiving data from the peer"),
                        "other");
    assert_string_equal(metrics_failover_reason(0, NULL), "other");
    /* retries (upstream/retry.c): the stale pooled connection, the deadline,
     * the idle body */
    assert_string_equal(
        metrics_failover_reason(0, "the reused connection closed before any response (not re-sent)"),
        "stale_connection");
    assert_string_equal(metrics_failover_reason(0, "no answer within the request's deadline (900 ms)"),
                        "timeout");
    assert_string_equal(
        metrics_failover_reason(200, "no data within 500 ms after the headers (idle_timeout_ms)"),
        "timeout");
}

static void test_quantile(void **state)
{
    (void)state;
    uint64_t h[METRICS_N_BUCKETS + 1] = {0};
    assert_true(metrics_quantile(h, 0.5) < 0);
    h[7] = 10; /* all in (0.05, 0.1] */
    assert_true(fabs(metrics_quantile(h, 0.5) - 0.075) < 1e-12);
    assert_true(fabs(metrics_quantile(h, 1.0) - 0.1) < 1e-12);
    memset(h, 0, sizeof h);
    h[0] = 50;  /* (0, 0.0005] */
    h[10] = 50; /* (0.5, 1] */
    assert_true(metrics_quantile(h, 0.5) <= 0.0005);
    assert_true(fabs(metrics_quantile(h, 0.95) - 0.95) < 1e-9);
    memset(h, 0, sizeof h);
    h[METRICS_N_BUCKETS] = 1; /* beyond the last bound */
    assert_true(metrics_quantile(h, 0.5) == metrics_buckets[METRICS_N_BUCKETS - 1]);
}

static const cJSON *row_named(const cJSON *arr, const char *field, const char *name)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, field);
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
            return it;
    }
    fail_msg("no row %s", name);
    return NULL;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v))
        fail_msg("%s is not a number", k);
    return v->valuedouble;
}

static void test_stats_json(void **state)
{
    fx_t *fx = *state;
    buf_t b;
    observe_mix(fx);
    buf_init(&b, 1 << 20);
    assert_int_equal(metrics_stats_json(fx->shard, 2, &b), 0);
    cJSON *j = cJSON_Parse(buf_cstr(&b));
    assert_non_null(j);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "totals");
    assert_true(num(t, "requests") == 9);
    assert_true(num(t, "errors") == 1);
    assert_true(fabs(num(t, "cost_usd") - 0.007) < 1e-9);
    assert_true(fabs(num(t, "baseline_cost_usd") - 0.028) < 1e-9);
    assert_true(fabs(num(t, "savings_usd") - 0.021) < 1e-9);
    assert_true(fabs(num(t, "savings_percent") - 75) < 1e-6);
    assert_true(num(t, "cache_hits") == 1);
    assert_true(fabs(num(t, "cache_hit_rate") - 1.0 / 3) < 1e-9);
    assert_true(num(t, "prompt_tokens") == 800);
    /* durations: 8 x 205 ms and one 0.3 ms hit -> p50 in (0.1, 0.25] */
    double p50 = num(t, "p50_ms"), p95 = num(t, "p95_ms");
    assert_true(p50 > 100 && p50 <= 250 + 1e-9);
    assert_true(p95 >= p50 && p95 <= 250 + 1e-9);
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(j, "models");
    assert_int_equal(cJSON_GetArraySize(models), 1);
    const cJSON *gm = row_named(models, "model", "good-mini");
    assert_true(num(gm, "requests") == 9);
    assert_true(num(gm, "streams") == 1);
    double up50 = num(gm, "upstream_p50_ms");
    assert_true(up50 > 100 && up50 <= 250);
    const cJSON *tiers = cJSON_GetObjectItemCaseSensitive(j, "tiers");
    assert_int_equal(cJSON_GetArraySize(tiers), 2);
    const cJSON *f500 = row_named(tiers, "tier", "f500");
    assert_true(num(f500, "requests") == 2);
    assert_true(num(f500, "errors") == 1);
    assert_true(fabs(num(f500, "cost_usd") - 0.001) < 1e-12);
    assert_true(num(row_named(tiers, "tier", "standard"), "requests") == 7);
    cJSON_Delete(j);

    /* empty: totals with null latencies, empty arrays */
    metrics_t *empty = metrics_new();
    buf_reset(&b);
    assert_int_equal(metrics_stats_json(&empty, 1, &b), 0);
    j = cJSON_Parse(buf_cstr(&b));
    assert_non_null(j);
    t = cJSON_GetObjectItemCaseSensitive(j, "totals");
    assert_true(num(t, "requests") == 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(t, "p50_ms")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "models")), 0);
    cJSON_Delete(j);
    metrics_free(empty);
    buf_free(&b);
}

static void test_many_series_grow(void **state)
{
    fx_t *fx = *state;
    req_t r;
    attempt_t att[2];
    char keys[300][16];
    for (int i = 0; i < 300; i++) {
        base_req(&r, fx->cfg, att);
        snprintf(keys[i], sizeof keys[i], "key%d", i);
        r.key_name = keys[i];
        metrics_observe(fx->shard[i & 1], fx->cfg, &r, T0 + 300000);
    }
    char *text = render(fx, NULL);
    expo_parse(fx->e, text);
    assert_true(expo_get(fx->e, "llmrouter_cost_usd_total",
                         "model=\"good-mini\",tier=\"standard\",key=\"key299\"") == 0.001);
    free(text);
}

/* Each family remembers the series it found last (metrics.c series_get):
 * label values that are prefixes of one another, empty, cut at 128 bytes,
 * or equal but for the label they sit in must still land in their own
 * series. A shuffled sequence of requests is counted here and compared
 * with the exposition, series by series. */
static void test_last_series_cache_exact(void **state)
{
    fx_t *fx = *state;
    static char names[8][160];
    const char *models[2] = {"good-mini", "good-large"};
    int want[2][8][2] = {{{0}}}; /* [shard][name][model] */
    int reqs[2][2] = {{0}};      /* [model][status 200 or 502] */
    uint32_t rnd = 12345;
    req_t r;
    attempt_t att[2];
    snprintf(names[0], sizeof names[0], "k");
    snprintf(names[1], sizeof names[1], "k1");
    snprintf(names[2], sizeof names[2], "k10");
    snprintf(names[3], sizeof names[3], "-"); /* the same series as no key */
    names[4][0] = '\0';
    memset(names[5], 'a', 127); /* 127 bytes: a series of its own */
    names[5][127] = '\0';
    memset(names[6], 'a', 128); /* cut at 128: 6 and 7 share one series */
    snprintf(names[6] + 128, sizeof names[6] - 128, "x");
    memset(names[7], 'a', 128);
    snprintf(names[7] + 128, sizeof names[7] - 128, "y");
    for (int i = 0; i < 3000; i++) {
        int k, mi, sh, st;
        rnd = rnd * 1103515245u + 12345u;
        k = (int)((rnd >> 8) % 8);
        mi = (int)((rnd >> 16) & 1);
        sh = (int)((rnd >> 17) & 1);
        st = (int)((rnd >> 18) & 1);
        base_req(&r, fx->cfg, att);
        r.key_name = names[k];
        r.model = M(fx->cfg, models[mi]);
        att[0].model = r.model;
        r.resp_status = st ? 502 : 200;
        metrics_observe(fx->shard[sh], fx->cfg, &r, T0 + 300000);
        want[sh][k][mi]++;
        reqs[mi][st]++;
    }
    char *text = render(fx, NULL);
    expo_parse(fx->e, text);
    for (int mi = 0; mi < 2; mi++) {
        /* a key name of "" or "-" is the series "-" */
        int groups[6][1] = {{0}};
        const char *label[6] = {"k", "k1", "k10", "-", names[5], names[6]};
        for (int sh = 0; sh < 2; sh++) {
            groups[0][0] += want[sh][0][mi];
            groups[1][0] += want[sh][1][mi];
            groups[2][0] += want[sh][2][mi];
            groups[3][0] += want[sh][3][mi] + want[sh][4][mi];
            groups[4][0] += want[sh][5][mi];
            groups[5][0] += want[sh][6][mi] + want[sh][7][mi];
        }
        char lv[129];
        for (int g = 0; g < 6; g++) {
            char labels[400];
            snprintf(lv, sizeof lv, "%.128s", label[g]);
            snprintf(labels, sizeof labels, "model=\"%s\",tier=\"standard\",key=\"%s\"", models[mi], lv);
            double got = expo_get(fx->e, "llmrouter_cost_usd_total", labels);
            if (!(fabs(got - groups[g][0] * 0.001) < 1e-9))
                fail_msg("%s key %s: %g, want %g", models[mi], lv, got, groups[g][0] * 0.001);
        }
        for (int st = 0; st < 2; st++) {
            char labels[400];
            snprintf(labels, sizeof labels,
                     "model=\"%s\",provider=\"good\",tier=\"standard\",rule=\"default\",status=\"%s\"",
                     models[mi], st ? "502" : "200");
            double got = expo_get(fx->e, "llmrouter_requests_total", labels);
            if (got != reqs[mi][st])
                fail_msg("%s status %d: %g requests, want %d", models[mi], st, got, reqs[mi][st]);
        }
    }
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_render_is_valid_and_merged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_render_empty_and_extra, setup, teardown),
        cmocka_unit_test_setup_teardown(test_label_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_model_and_rule_tags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries_are_not_failovers, setup, teardown),
        cmocka_unit_test(test_failover_reasons),
        cmocka_unit_test(test_quantile),
        cmocka_unit_test_setup_teardown(test_stats_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_series_grow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_series_cache_exact, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
