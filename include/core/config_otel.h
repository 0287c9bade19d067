/* config_otel: the `observability.otlp` section — where and how finished
 * requests are exported as OpenTelemetry spans (OTLP/HTTP, JSON encoding;
 * account/otel.h does the exporting). Part of the configuration loader:
 * parsed into an immutable snapshot, read by every shard thread. */
#ifndef LLMROUTER_CONFIG_OTEL_H
#define LLMROUTER_CONFIG_OTEL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/yamlwalk.h"

struct config;
struct curl_slist;

typedef struct cfg_otlp {
    char *endpoint;              /* full URL of the traces endpoint (…/v1/traces) */
    /* Content-Type: application/json, no Expect, then the configured
     * headers ("Name: value", values ${ENV}-expanded — secrets: never
     * logged). Read-only, shared by all shards. */
    struct curl_slist *headers;
    uint32_t n_headers;          /* configured ones */
    uint32_t batch_max_spans;    /* spans per POST, default 256 */
    uint32_t flush_interval_ms;  /* a partial batch waits at most this long, default 1000 */
    uint32_t queue_max_spans;    /* per shard; over it spans are dropped, default 4096 */
    uint32_t timeout_ms;         /* one POST, connect included, default 2000 */
    char *service_name;          /* resource service.name, default "llmrouter" */
    double sample_rate;          /* share of root requests exported, default 1 */
    bool capture_content;        /* prompt (and sampled answer) text in spans, default false */
} cfg_otlp_t;

/* Parses `otlp:` (value node v) into a new cfg_otlp_t stored in *out
 * (replacing nothing: *out must be NULL). Problems are recorded in c with
 * their position; *out stays NULL after an error. */
void config_parse_otlp(ywalk_t *c, yaml_node_t *v, cfg_otlp_t **out);

/* Frees what config_parse_otlp made. NULL is allowed. */
void config_otlp_free(cfg_otlp_t *o);

#endif
