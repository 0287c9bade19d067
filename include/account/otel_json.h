/* otel_json: a finished request as OpenTelemetry spans in the OTLP/HTTP
 * JSON encoding — one SERVER span for the request, following the GenAI
 * semantic conventions (gen_ai.*) plus llmrouter.* attributes, and one
 * CLIENT span per upstream attempt — and the envelope a batch of them is
 * sent in (resourceSpans → scopeSpans → spans). Also the W3C traceparent
 * header. Pure functions of their arguments; private to account/otel.c
 * and its tests; any thread. */
#ifndef LLMROUTER_OTEL_JSON_H
#define LLMROUTER_OTEL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config_otel.h"
#include "http/request.h"

typedef struct otel_ids {
    uint8_t trace[16];  /* the trace: the incoming traceparent's, else random */
    uint8_t parent[8];  /* the incoming traceparent's span, when has_parent */
    bool has_parent;
    uint8_t span[8];    /* the request's span */
} otel_ids_t;

/* Parses a W3C traceparent value ("00-<32 hex>-<16 hex>-<2 hex>"; later
 * versions may append fields after a '-'). Returns 0 and fills trace, span
 * and *flags, or -1 when it is not one (all-zero ids are invalid, so is
 * version ff). */
int otel_traceparent_parse(const char *s, uint8_t trace[16], uint8_t span[8], uint8_t *flags);

/* xorshift64* step for ids (state must not be 0). */
uint64_t otel_rand(uint64_t *state);

/* Appends req's spans to out as JSON objects separated by commas (no
 * leading comma): the request span first, then one per attempt (child span
 * ids drawn from *rng). now_us ends the request span (util_now_us clock);
 * wall_off_ns converts that clock to Unix nanoseconds. prov_names, when
 * not NULL, holds otel_provider_name of each model of req->cfg (a cache:
 * the host match costs ~2,000 instructions). Returns the number of spans,
 * or -1 when out's cap was reached. */
int otel_spans_format(const req_t *req, const cfg_otlp_t *o, const otel_ids_t *ids,
                      uint64_t now_us, int64_t wall_off_ns, uint64_t *rng,
                      const char *const *prov_names, buf_t *out);

/* The batch envelope around spans joined with commas:
 * {"resourceSpans":[{"resource":{"attributes":[service.name, ...]},
 *  "scopeSpans":[{"scope":{"name":"llmrouter","version":V},"spans":[  ...  ]}]}]} */
int otel_envelope_head(const cfg_otlp_t *o, buf_t *out);
int otel_envelope_tail(buf_t *out);

/* The GenAI provider name of model m's provider: "anthropic" for type
 * anthropic, else from its base URL's host (openai, azure.ai.openai,
 * deepseek, groq, mistral_ai, x_ai, perplexity, gcp.gemini, ...), "openai"
 * for any other OpenAI-compatible API. Static string. */
const char *otel_provider_name(const config_t *cfg, int m);

#endif
