/* otel_json: spans of a finished request in OTLP/HTTP JSON (see
 * account/otel_json.h). The OTLP JSON mapping: trace and span ids as hex
 * strings (not base64), 64-bit integers (times, intValue) as decimal
 * strings, enums (kind, status code) as numbers. */
#include "account/otel_json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "account/metrics.h"
#include "core/json.h"
#include "core/version.h"
#include "http/door.h"
#include "route/experiment.h"
#include "route/router.h"

#define OTEL_CONTENT_MAX (16 * 1024) /* capture_content: bytes of text per attribute */

enum { SPAN_KIND_SERVER = 2, SPAN_KIND_CLIENT = 3 };
enum { STATUS_UNSET = 0, STATUS_ERROR = 2 };

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* upper case is invalid in traceparent */
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
    unsigned any = 0;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
        any |= out[i];
    }
    return any ? 0 : -1;
}

int otel_traceparent_parse(const char *s, uint8_t trace[16], uint8_t span[8], uint8_t *flags)
{
    uint8_t ver, fl;
    size_t n;
    if (s == NULL)
        return -1;
    while (*s == ' ' || *s == '\t')
        s++;
    n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    /* 2 + 1 + 32 + 1 + 16 + 1 + 2 */
    if (n < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-')
        return -1;
    if (hexval(s[0]) < 0 || hexval(s[1]) < 0 || hexval(s[53]) < 0 || hexval(s[54]) < 0)
        return -1;
    ver = (uint8_t)(hexval(s[0]) << 4 | hexval(s[1]));
    fl = (uint8_t)(hexval(s[53]) << 4 | hexval(s[54]));
    if (ver == 0xff || (ver == 0 && n != 55) || (n > 55 && s[55] != '-'))
        return -1;
    if (unhex(s + 3, trace, 16) < 0 || unhex(s + 36, span, 8) < 0)
        return -1;
    *flags = fl;
    return 0;
}

uint64_t otel_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* ---- writers ---- */

static int put_hex(buf_t *b, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char s[40];
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 15];
    }
    s[2 * n] = '\0';
    return buf_puts(b, "\"") | buf_puts(b, s) | buf_puts(b, "\"");
}

/* Decimal digits of v, written backwards ending at end; returns the first.
 * (snprintf costs ~700 instructions a number; spans have a dozen.) */
static char *fmt_u64(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return end;
}

static char *fmt_i64(char *end, int64_t v)
{
    char *p = fmt_u64(end, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
    if (v < 0)
        *--p = '-';
    return p;
}

/* A quoted decimal: OTLP JSON writes 64-bit integers as strings. */
static int put_u64(buf_t *b, uint64_t v)
{
    char s[24], *p;
    s[23] = '"';
    p = fmt_u64(s + 23, v);
    *--p = '"';
    return buf_append(b, p, (size_t)(s + 24 - p));
}

/* Attributes are written after "attributes":[ ; *first tracks the comma. */
typedef struct attrs {
    buf_t *b;
    bool first;
    int rc;
} attrs_t;

/* Writes `,{"key":"KEY","value":{"KIND":` in one append (keys and kinds
 * are literals: no escaping). */
static void attr_head(attrs_t *a, const char *key, const char *kind)
{
    char s[192];
    size_t o = 0, k = strlen(key), n = strlen(kind);
    if (k + n > sizeof s - 32) {
        a->rc = -1;
        return;
    }
    if (!a->first)
        s[o++] = ',';
    memcpy(s + o, "{\"key\":\"", 8);
    o += 8;
    memcpy(s + o, key, k);
    o += k;
    memcpy(s + o, "\",\"value\":{\"", 12);
    o += 12;
    memcpy(s + o, kind, n);
    o += n;
    memcpy(s + o, "\":", 2);
    o += 2;
    a->rc |= buf_append(a->b, s, o);
    a->first = false;
}

static void attr_strn(attrs_t *a, const char *key, const char *v, size_t n)
{
    attr_head(a, key, "stringValue");
    a->rc |= json_append_string(a->b, v, n);
    a->rc |= buf_append(a->b, "}}", 2);
}

static void attr_str(attrs_t *a, const char *key, const char *v)
{
    if (v != NULL && v[0] != '\0')
        attr_strn(a, key, v, strlen(v));
}

static void attr_int(attrs_t *a, const char *key, int64_t v)
{
    char s[28], *end = s + sizeof s - 3, *p = fmt_i64(end, v);
    attr_head(a, key, "intValue");
    *--p = '"';
    memcpy(end, "\"}}", 3);
    a->rc |= buf_append(a->b, p, (size_t)(end + 3 - p));
}

static void attr_double(attrs_t *a, const char *key, double v)
{
    if (!isfinite(v))
        return;
    attr_head(a, key, "doubleValue");
    a->rc |= json_append_number(a->b, v);
    a->rc |= buf_append(a->b, "}}", 2);
}

static void attr_bool(attrs_t *a, const char *key, bool v)
{
    attr_head(a, key, "boolValue");
    a->rc |= v ? buf_append(a->b, "true}}", 6) : buf_append(a->b, "false}}", 7);
}

/* A string array from a comma-separated list. */
static void attr_strlist(attrs_t *a, const char *key, const char *csv)
{
    const char *p = csv;
    bool first = true;
    attr_head(a, key, "arrayValue");
    a->rc |= buf_puts(a->b, "{\"values\":[");
    while (*p != '\0') {
        const char *e = strchr(p, ',');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        a->rc |= buf_puts(a->b, first ? "{\"stringValue\":" : ",{\"stringValue\":");
        a->rc |= json_append_string(a->b, p, n);
        a->rc |= buf_puts(a->b, "}");
        first = false;
        p += n;
        if (*p == ',')
            p++;
    }
    a->rc |= buf_puts(a->b, "]}}}");
}

/* ---- what the attributes say ---- */

const char *otel_provider_name(const config_t *cfg, int m)
{
    static const struct {
        const char *host_part, *name;
    } known[] = {
        {"openai.azure.com", "azure.ai.openai"}, {"api.openai.com", "openai"},
        {"anthropic.com", "anthropic"},          {"deepseek.com", "deepseek"},
        {"groq.com", "groq"},                    {"mistral.ai", "mistral_ai"},
        {"api.x.ai", "x_ai"},                    {"perplexity.ai", "perplexity"},
        {"generativelanguage.googleapis.com", "gcp.gemini"},
        {"aiplatform.googleapis.com", "gcp.vertex_ai"},
        {"cohere", "cohere"},                    {"bedrock", "aws.bedrock"},
        {"models.ai.azure.com", "azure.ai.inference"},
    };
    const cfg_provider_t *p;
    const char *host, *end;
    size_t n;
    if (m < 0 || (size_t)m >= cfg->n_models)
        return NULL;
    p = &cfg->providers[cfg->models[m].provider];
    if (p->type == PROVIDER_ANTHROPIC)
        return "anthropic";
    host = strstr(p->base_url, "://");
    host = host != NULL ? host + 3 : p->base_url;
    end = strchr(host, '/');
    n = end != NULL ? (size_t)(end - host) : strlen(host);
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (memmem(host, n, known[i].host_part, strlen(known[i].host_part)) != NULL)
            return known[i].name;
    return "openai"; /* an OpenAI-compatible API */
}

static const char *operation_of(const req_t *req)
{
    switch (req->ep) {
    case EP_COMPLETIONS:
        return "text_completion";
    case EP_EMBEDDINGS:
        return "embeddings";
    default:
        return "chat";
    }
}

static const char *model_name(const config_t *cfg, int m)
{
    return m >= 0 && (size_t)m < cfg->n_models ? cfg->models[m].name : NULL;
}

static const char *provider_cfg_name(const config_t *cfg, int m)
{
    return m >= 0 && (size_t)m < cfg->n_models ? cfg->providers[cfg->models[m].provider].name
                                               : NULL;
}

/* "{operation} {model}" (the GenAI span name), the model cut to 120 bytes. */
static int put_name(buf_t *b, const char *op, const char *model)
{
    char s[160];
    size_t o = strlen(op), n = model != NULL ? strlen(model) : 0;
    memcpy(s, op, o); /* a static operation name, < 20 bytes */
    if (n > 0) {
        if (n > 120)
            n = 120;
        s[o++] = ' ';
        memcpy(s + o, model, n);
        o += n;
    }
    return json_append_string(b, s, o);
}

static void put_times(buf_t *b, int *rc, uint64_t t0_us, uint64_t t1_us, int64_t off_ns)
{
    if (t1_us < t0_us)
        t1_us = t0_us;
    *rc |= buf_puts(b, ",\"startTimeUnixNano\":");
    *rc |= put_u64(b, (uint64_t)((int64_t)(t0_us * 1000) + off_ns));
    *rc |= buf_puts(b, ",\"endTimeUnixNano\":");
    *rc |= put_u64(b, (uint64_t)((int64_t)(t1_us * 1000) + off_ns));
}

/* capture_content: the request's messages (or prompt / input) and, for a
 * sampled request, the answer — cut to OTEL_CONTENT_MAX bytes. */
static void put_content(attrs_t *a, const req_t *req)
{
    static const char *const keys[] = {"messages", "prompt", "input"};
    const char *body = buf_len(&req->body) > 0 ? buf_ptr(&req->body) : NULL;
    json_span_t sp[2];
    if (body != NULL) {
        for (size_t i = 0; i < 3; i++) {
            if (json_find_top_key(body, buf_len(&req->body), keys[i], sp, 2) == 1) {
                size_t n = sp[0].len < OTEL_CONTENT_MAX ? sp[0].len : OTEL_CONTENT_MAX;
                attr_strn(a, "gen_ai.input.messages", body + sp[0].off, n);
                break;
            }
        }
    }
    if (req->sample_resp != NULL) {
        size_t n = strlen(req->sample_resp);
        attr_strn(a, "gen_ai.output.messages", req->sample_resp,
                  n < OTEL_CONTENT_MAX ? n : OTEL_CONTENT_MAX);
    }
}

/* otel_provider_name through the cache when there is one. */
static const char *prov_name(const config_t *cfg, const char *const *names, int m)
{
    if (names != NULL && m >= 0 && (size_t)m < cfg->n_models)
        return names[m];
    return otel_provider_name(cfg, m);
}

static int request_span(const req_t *req, const cfg_otlp_t *o, const otel_ids_t *ids,
                        uint64_t now_us, int64_t off_ns, const char *const *names, buf_t *b)
{
    static const char *const cache[] = {"bypass", "miss", "hit"};
    const config_t *cfg = req->cfg;
    const char *op = operation_of(req);
    const char *served = req->model >= 0 && (size_t)req->model < cfg->n_models
                             ? cfg->models[req->model].upstream
                             : NULL;
    const char *asked = req->otel_model[0] ? req->otel_model : model_name(cfg, req->model);
    bool routed = router_routed(&req->route);
    double cost = request_cost_total(req);
    attrs_t a = {.b = b, .first = true};
    int rc = buf_puts(b, "{\"traceId\":");
    rc |= put_hex(b, ids->trace, 16);
    rc |= buf_puts(b, ",\"spanId\":");
    rc |= put_hex(b, ids->span, 8);
    if (ids->has_parent) {
        rc |= buf_puts(b, ",\"parentSpanId\":");
        rc |= put_hex(b, ids->parent, 8);
    }
    rc |= buf_puts(b, ",\"name\":");
    rc |= put_name(b, op, asked);
    rc |= buf_puts(b, ",\"kind\":2");
    put_times(b, &rc, req->t_start_us, now_us, off_ns);
    rc |= buf_puts(b, ",\"attributes\":[");

    attr_str(&a, "gen_ai.operation.name", op);
    attr_str(&a, "gen_ai.request.model", asked);
    attr_str(&a, "gen_ai.response.model", req->otel_resp_model[0] ? req->otel_resp_model : served);
    attr_str(&a, "gen_ai.provider.name", prov_name(cfg, names, req->model));
    if (req->otel_temperature >= 0)
        attr_double(&a, "gen_ai.request.temperature", req->otel_temperature);
    if (req->max_output >= 0)
        attr_int(&a, "gen_ai.request.max_tokens", req->max_output);
    if (req->otel_finish[0])
        attr_strlist(&a, "gen_ai.response.finish_reasons", req->otel_finish);
    if (req->prompt_tokens >= 0)
        attr_int(&a, "gen_ai.usage.input_tokens", req->prompt_tokens);
    if (req->completion_tokens >= 0)
        attr_int(&a, "gen_ai.usage.output_tokens", req->completion_tokens);
    attr_str(&a, "http.request.method", req->method);
    attr_str(&a, "url.path", req->path);
    attr_int(&a, "http.response.status_code", req->resp_status);
    if (req->resp_status >= 400) {
        char s[24];
        s[sizeof s - 1] = '\0';
        attr_str(&a, "error.type", fmt_u64(s + sizeof s - 1, req->resp_status));
    }
    attr_str(&a, "llmrouter.request_id", req->id);
    if (routed) {
        attr_str(&a, "llmrouter.tier", router_tier_name(cfg, &req->route));
        attr_str(&a, "llmrouter.rule", router_rule_name(cfg, &req->route));
    }
    if (req->score >= 0)
        attr_double(&a, "llmrouter.score", req->score);
    attr_str(&a, "llmrouter.model", model_name(cfg, req->model));
    attr_str(&a, "llmrouter.provider", provider_cfg_name(cfg, req->model));
    attr_int(&a, "llmrouter.attempts", (int64_t)req->n_attempts);
    attr_str(&a, "llmrouter.cache", req->cache_x <= CACHE_X_HIT ? cache[req->cache_x] : "bypass");
    if (cost >= 0)
        attr_double(&a, "llmrouter.cost_usd", cost);
    if (cost >= 0 && req->baseline_usd >= 0)
        attr_double(&a, "llmrouter.savings_usd", req->baseline_usd - cost);
    if (req->cost_estimated)
        attr_bool(&a, "llmrouter.cost_estimated", true);
    attr_str(&a, "llmrouter.door", door_label((enum door)req->door, req->ep));
    attr_bool(&a, "llmrouter.stream", req->stream);
    if (req->key_name != NULL && req->key_name[0])
        attr_str(&a, "llmrouter.key", req->key_name);
    {
        /* an experiment's arm, as in the access log */
        const experiment_t *e = NULL;
        const exp_arm_t *arm = experiment_arm_of(cfg, req->exp_arm, &e);
        if (arm != NULL) {
            attr_str(&a, "llmrouter.experiment", e->name);
            attr_str(&a, "llmrouter.arm", arm->name);
        }
    }
    if (o->capture_content)
        put_content(&a, req);
    rc |= a.rc;
    rc |= buf_puts(b, "]");
    if (req->resp_status >= 500 || req->stream_failed)
        rc |= buf_puts(b, ",\"status\":{\"code\":2}");
    return rc | buf_puts(b, "}");
}

static int attempt_span(const req_t *req, size_t i, const otel_ids_t *ids, uint64_t now_us,
                        int64_t off_ns, uint64_t *rng, const char *const *names, buf_t *b)
{
    const config_t *cfg = req->cfg;
    const attempt_t *at = &req->attempts[i];
    const char *op = operation_of(req);
    const char *up = at->model >= 0 && (size_t)at->model < cfg->n_models
                         ? cfg->models[at->model].upstream
                         : NULL;
    bool skipped = strncmp(at->error, "skipped", 7) == 0 || strncmp(at->error, "refused", 7) == 0;
    const char *outcome = at->error[0] == '\0' ? "ok" : metrics_failover_reason(at->status, at->error);
    uint64_t t1 = at->t1_us;
    uint8_t id[8];
    uint64_t r = otel_rand(rng);
    attrs_t a = {.b = b, .first = true};
    int rc;
    memcpy(id, &r, 8);
    /* the serving attempt of a stream was recorded when it committed: its
     * span lasts until the stream ended */
    if (at->error[0] == '\0' && i + 1 == req->n_attempts && req->t_end_us > t1)
        t1 = req->t_end_us;
    if (t1 > now_us)
        t1 = now_us;
    rc = buf_puts(b, "{\"traceId\":");
    rc |= put_hex(b, ids->trace, 16);
    rc |= buf_puts(b, ",\"spanId\":");
    rc |= put_hex(b, id, 8);
    rc |= buf_puts(b, ",\"parentSpanId\":");
    rc |= put_hex(b, ids->span, 8);
    rc |= buf_puts(b, ",\"name\":");
    rc |= put_name(b, op, up);
    rc |= buf_puts(b, ",\"kind\":3");
    put_times(b, &rc, at->t0_us ? at->t0_us : req->t_start_us, t1 ? t1 : now_us, off_ns);
    rc |= buf_puts(b, ",\"attributes\":[");
    attr_str(&a, "gen_ai.operation.name", op);
    attr_str(&a, "gen_ai.request.model", up);
    attr_str(&a, "gen_ai.provider.name", prov_name(cfg, names, at->model));
    attr_str(&a, "llmrouter.model", model_name(cfg, at->model));
    attr_str(&a, "llmrouter.provider", provider_cfg_name(cfg, at->model));
    if (at->status != 0)
        attr_int(&a, "http.response.status_code", at->status);
    attr_int(&a, "llmrouter.attempt.index", (int64_t)i);
    attr_int(&a, "llmrouter.attempt.retry", at->retry);
    attr_bool(&a, "llmrouter.attempt.skipped", skipped);
    attr_str(&a, "llmrouter.attempt.outcome", outcome);
    if (at->error[0] != '\0') {
        attr_str(&a, "error.type", outcome);
        attr_str(&a, "llmrouter.attempt.error", at->error);
    }
    rc |= a.rc;
    rc |= buf_puts(b, "]");
    if (at->error[0] != '\0' && !skipped) {
        rc |= buf_puts(b, ",\"status\":{\"code\":2,\"message\":");
        rc |= json_append_string(b, at->error, strlen(at->error));
        rc |= buf_puts(b, "}");
    }
    return rc | buf_puts(b, "}");
}

int otel_spans_format(const req_t *req, const cfg_otlp_t *o, const otel_ids_t *ids,
                      uint64_t now_us, int64_t wall_off_ns, uint64_t *rng,
                      const char *const *prov_names, buf_t *out)
{
    int n = 1;
    if (request_span(req, o, ids, now_us, wall_off_ns, prov_names, out) != 0)
        return -1;
    for (size_t i = 0; req->attempts != NULL && i < req->n_attempts; i++) {
        if (buf_puts(out, ",") != 0 ||
            attempt_span(req, i, ids, now_us, wall_off_ns, rng, prov_names, out) != 0)
            return -1;
        n++;
    }
    return n;
}

int otel_envelope_head(const cfg_otlp_t *o, buf_t *out)
{
    attrs_t a = {.b = out, .first = true};
    int rc = buf_puts(out, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    attr_str(&a, "service.name", o->service_name);
    attr_str(&a, "service.version", LLMROUTER_VERSION);
    attr_str(&a, "telemetry.sdk.name", "llmrouter");
    attr_str(&a, "telemetry.sdk.language", "c");
    rc |= a.rc;
    rc |= buf_puts(out, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"llmrouter\",\"version\":");
    rc |= json_append_string(out, LLMROUTER_VERSION, strlen(LLMROUTER_VERSION));
    rc |= buf_puts(out, "},\"spans\":[");
    return rc ? -1 : 0;
}

int otel_envelope_tail(buf_t *out)
{
    return buf_puts(out, "]}]}]}") ? -1 : 0;
}
