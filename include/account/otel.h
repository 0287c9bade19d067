/* otel: OpenTelemetry export of finished requests (observability.otlp).
 * A request's spans (account/otel_json.h) are built when it ends, queued
 * on its shard (bounded: over queue_max_spans they are dropped and
 * counted) and POSTed in batches (OTLP/HTTP, JSON) on the shard loop from
 * a curl multi of the exporter's own — never on the request path: a dead,
 * slow or failing collector costs the clients nothing, its spans are
 * dropped and counted. One exporter per shard, shard thread only; the
 * counters (otel_stats_t) are process-wide atomics any thread may read.
 * See docs/observability.md, "OpenTelemetry export". */
#ifndef LLMROUTER_OTEL_H
#define LLMROUTER_OTEL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/loop.h"
#include "http/request.h"

struct cJSON;

typedef struct otel_stats otel_stats_t;
typedef struct otel otel_t;

/* Process-wide counters, shared by the shards' exporters (main thread
 * creates them before the shards start, frees them after they stop). */
otel_stats_t *otel_stats_new(void);
void otel_stats_free(otel_stats_t *st);
/* Appends the llmrouter_otlp_* families (Prometheus text). Any thread. */
int otel_render_metrics(otel_stats_t *st, buf_t *out);

/* An exporter on loop (the shard's), counting into st (borrowed; outlives
 * it). NULL never. */
otel_t *otel_new(loop_t *loop, otel_stats_t *st);
/* Frees the exporter: a POST in flight is abandoned, queued spans are
 * dropped (the shard drained first: otel_drain). NULL is allowed. */
void otel_free(otel_t *x);

/* A request ended (where it is observed, before request_free): when its
 * snapshot exports and it is sampled, its spans are queued — or dropped
 * and counted when the queue is full. header looks up its request headers
 * (the traceparent); NULL for none. */
void otel_request(otel_t *x, const req_t *req);

/* Shutdown: sends what is queued now, without waiting for a full batch.
 * Returns true while an export is still under way or spans still wait
 * (call again on a later iteration), false when there is nothing left. */
bool otel_drain(otel_t *x);

/* What the spans need from the request body (request_parse, with the
 * parsed body root): the client's model and temperature. Only when the
 * request's snapshot has observability.otlp. */
void otel_note_request(req_t *req, const struct cJSON *root);
/* What they need from a stream's first event (its parsed JSON): the
 * answer's "model". */
void otel_note_stream(req_t *req, const struct cJSON *first_event);
/* What they need from a plain 200 answer (chat completions JSON, before a
 * door translates it): its "model" and the choices' finish_reason. */
void otel_note_answer(req_t *req, const char *body, size_t len);

#endif
