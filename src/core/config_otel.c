/* config_otel: the `observability.otlp` section (see core/config_otel.h).
 * Header values may come from the environment (${LANGFUSE_AUTH}); they are
 * secrets: no message here ever quotes a header's value. */
#include "core/config_otel.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"

#define OTLP_KEYS                                                                                  \
    "endpoint, headers, encoding, batch_max_spans, flush_interval_ms, queue_max_spans, "          \
    "timeout_ms, service_name, sample_rate, capture_content"

void config_otlp_free(cfg_otlp_t *o)
{
    if (o == NULL)
        return;
    free(o->endpoint);
    free(o->service_name);
    curl_slist_free_all(o->headers);
    free(o);
}

/* An RFC 9110 token: what a header name may be. */
static bool header_name_ok(const char *s)
{
    if (s[0] == '\0' || strlen(s) > 128)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *p) != NULL))
            return false;
    return true;
}

/* Header names llmrouter sets itself. */
static bool header_reserved(const char *s)
{
    static const char *const own[] = {"content-type", "content-length", "host", "expect",
                                      "transfer-encoding", "connection"};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (strcasecmp(s, own[i]) == 0)
            return true;
    return false;
}

static void parse_headers(ywalk_t *c, yaml_node_t *map, cfg_otlp_t *o)
{
    const char *k;
    yaml_node_t *kn, *v;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "observability.otlp.headers"))
        return;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        char what[192], *val, *line;
        size_t n;
        struct curl_slist *l;
        snprintf(what, sizeof what, "observability.otlp.headers.%.64s", k);
        if (!header_name_ok(k)) {
            yw_error(c, kn, "observability.otlp.headers: \"%.64s\" is not a header name", k);
            continue;
        }
        if (header_reserved(k)) {
            yw_error(c, kn, "%s: llmrouter sets this header itself", what);
            continue;
        }
        val = yw_str(c, v, what);
        if (val == NULL)
            continue;
        if (strpbrk(val, "\r\n") != NULL || val[0] == '\0') {
            /* the value may be a secret: name the header, not the value */
            yw_error(c, v, "%s: the value is empty or has a line break", what);
            free(val);
            continue;
        }
        n = strlen(k) + strlen(val) + 3;
        line = xmalloc(n);
        snprintf(line, n, "%s: %s", k, val);
        l = curl_slist_append(o->headers, line);
        explicit_bzero(val, strlen(val));
        explicit_bzero(line, n);
        free(val);
        free(line);
        if (l == NULL) {
            yw_error(c, v, "%s: out of memory", what);
            continue;
        }
        o->headers = l;
        o->n_headers++;
    }
}

static bool parse_rate(ywalk_t *c, yaml_node_t *v, const char *what, double *out)
{
    char *s = yw_str(c, v, what), *end = NULL;
    double d;
    bool ok = false;
    if (s == NULL)
        return false;
    errno = 0;
    d = strtod(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(d) || d < 0 || d > 1)
        yw_error(c, v, "%s: expected a fraction from 0 to 1, found \"%s\"", what, s);
    else {
        *out = d;
        ok = true;
    }
    free(s);
    return ok;
}

void config_parse_otlp(ywalk_t *c, yaml_node_t *map, cfg_otlp_t **out)
{
    const char *k;
    yaml_node_t *kn, *v;
    int nerr = c->nerr;
    cfg_otlp_t *o;
    struct curl_slist *own;
    if (*out != NULL || !yw_expect(c, map, YAML_MAPPING_NODE, "observability.otlp"))
        return;
    o = xcalloc(1, sizeof *o);
    o->batch_max_spans = 256;
    o->flush_interval_ms = 1000;
    o->queue_max_spans = 4096;
    o->timeout_ms = 2000;
    o->sample_rate = 1;
    own = curl_slist_append(NULL, "Content-Type: application/json");
    if (own != NULL)
        own = curl_slist_append(own, "Expect:");
    o->headers = own;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        char what[96];
        snprintf(what, sizeof what, "observability.otlp.%s", k);
        if (strcmp(k, "endpoint") == 0) {
            char *s = yw_str(c, v, what);
            if (s == NULL)
                continue;
            if ((strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) ||
                strpbrk(s, " \r\n\t") != NULL || strlen(s) > 2000) {
                yw_error(c, v, "%s: expected an http:// or https:// URL such as "
                               "\"http://127.0.0.1:4318/v1/traces\"", what);
                free(s);
                continue;
            }
            free(o->endpoint);
            o->endpoint = s;
        } else if (strcmp(k, "headers") == 0) {
            parse_headers(c, v, o);
        } else if (strcmp(k, "encoding") == 0) {
            char *s = yw_str(c, v, what);
            if (s != NULL && strcmp(s, "json") != 0)
                yw_error(c, v, "%s: only \"json\" is supported (OTLP/HTTP with the JSON "
                               "encoding, which the OpenTelemetry Collector, Langfuse and "
                               "Phoenix accept)", what);
            free(s);
        } else if (strcmp(k, "batch_max_spans") == 0) {
            yw_u32(c, v, what, 1, 10000, &o->batch_max_spans);
        } else if (strcmp(k, "flush_interval_ms") == 0) {
            yw_u32(c, v, what, 10, 600000, &o->flush_interval_ms);
        } else if (strcmp(k, "queue_max_spans") == 0) {
            yw_u32(c, v, what, 1, 1000000, &o->queue_max_spans);
        } else if (strcmp(k, "timeout_ms") == 0) {
            yw_u32(c, v, what, 10, 600000, &o->timeout_ms);
        } else if (strcmp(k, "service_name") == 0) {
            char *s = yw_str(c, v, what);
            if (s != NULL && (s[0] == '\0' || strlen(s) > 128)) {
                yw_error(c, v, "%s: expected a name of 1 to 128 characters", what);
                free(s);
            } else if (s != NULL) {
                free(o->service_name);
                o->service_name = s;
            }
        } else if (strcmp(k, "sample_rate") == 0) {
            parse_rate(c, v, what, &o->sample_rate);
        } else if (strcmp(k, "capture_content") == 0) {
            yw_bool(c, v, what, &o->capture_content);
        } else {
            yw_unknown_key(c, kn, "observability.otlp", OTLP_KEYS);
        }
    }
    if (o->endpoint == NULL && c->nerr == nerr)
        yw_error(c, map, "observability.otlp: endpoint is required (e.g. "
                         "\"http://127.0.0.1:4318/v1/traces\")");
    if (o->batch_max_spans > o->queue_max_spans && c->nerr == nerr)
        yw_error(c, map, "observability.otlp: batch_max_spans (%u) exceeds queue_max_spans (%u)",
                 o->batch_max_spans, o->queue_max_spans);
    if (o->service_name == NULL)
        o->service_name = xstrdup("llmrouter");
    if (own == NULL || c->nerr != nerr) {
        config_otlp_free(o);
        return;
    }
    *out = o;
}
