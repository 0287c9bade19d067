/* observe: the process-wide observability glue — per-shard metrics, the
 * access log and the quality sampler — and what the HTTP front end serves
 * from them (GET /metrics, GET /v1/router/stats, GET /dashboard). Created by
 * the main thread before the shards start, destroyed after they stop;
 * observe_request runs on the request's shard thread, the render functions on
 * any shard thread (each shard's metrics have their own lock). */
#ifndef LLMROUTER_OBSERVE_H
#define LLMROUTER_OBSERVE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "http/request.h"

typedef struct observe observe_t;
struct mcache;
struct rds_stats;

/* One metrics object per shard; the access log and sampler from cfg's
 * observability section. NULL with a message in err on failure. */
observe_t *observe_new(const config_t *cfg, unsigned shards, struct mcache *mem, char *err,
                       size_t errlen);
void observe_free(observe_t *o);

/* A request finished (called where it is freed, on its shard thread). */
void observe_request(observe_t *o, unsigned shard, const req_t *req);
/* Whether to keep this request's bodies for the quality sampler. */
bool observe_sample_pick(observe_t *o, uint64_t rnd);
/* Whether a routed request is judged (observability.judge's rate for its
 * tier and rule; rnd: 64 random bits). A judged request is sampled. */
bool observe_judge_pick(observe_t *o, const req_t *req, uint64_t rnd);
/* The quality sample of a finished request (bodies borrowed; on its shard
 * thread): written at once, or handed to the shard's judge
 * (account/judge.h), which writes it when judged. */
void observe_sample(observe_t *o, const req_t *req, const char *request_body, size_t len,
                    const char *response_body, size_t rlen);

/* The Redis clients a shard may have. */
enum observe_redis { OBSERVE_REDIS_CACHE = 0, OBSERVE_REDIS_BUDGETS, OBSERVE_REDIS_N };

/* A shard's current counters of one Redis client (shard thread), for
 * /metrics and /readyz. */
void observe_set_redis(observe_t *o, unsigned shard, enum observe_redis which,
                       const struct rds_stats *st);
/* Appends `,"redis":{"cache":"up","budgets":"cooling"}` (each client in use:
 * "cooling" if some shard's client cools down, else "down" if some shard's
 * is down, else "up") to out, or nothing when no Redis client is in use.
 * Any thread. */
void observe_redis_readyz(observe_t *o, buf_t *out);
void observe_reloaded(observe_t *o, bool ok);
/* The budget state whose counters /metrics shows (main thread, before the
 * shards start). */
struct budget;
void observe_set_budget(observe_t *o, struct budget *b);
/* The counters the shards' OpenTelemetry exporters share (account/otel.h);
 * valid until observe_free. */
struct otel_stats;
struct otel_stats *observe_otel_stats(observe_t *o);
/* SIGHUP: reopen the log files (log rotation). Main thread. */
void observe_reopen(observe_t *o);

/* The process-wide quality record (account/quality.h): scores, drift,
 * demoted models. Any thread. */
struct quality;
struct quality *observe_quality(observe_t *o);
/* Appends `,"demoted":["model",...]` to /readyz's body (nothing when none). */
void observe_quality_readyz(observe_t *o, buf_t *out);

/* GET /metrics (Prometheus text) and GET /v1/router/stats (JSON). */
int observe_render_metrics(observe_t *o, buf_t *out);
int observe_render_stats(observe_t *o, buf_t *out);

#endif
