/* shard: one loop thread owning its own libmicrohttpd daemon (external epoll,
 * suspend/resume, its own SO_REUSEPORT listener), its own curl multi handle
 * and its list of live requests. Shards share nothing but the immutable
 * config snapshot. shard_new/start/stop/join/free are called by the main
 * thread; everything else only on the shard's own thread. */
#ifndef LLMROUTER_SHARD_H
#define LLMROUTER_SHARD_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/loop.h"

typedef struct shard shard_t;
struct req;
struct upstream;

struct mcache;
struct cache_ctx;
struct observe;
struct budget;
struct rds;
struct health;
struct gate_ips;

/* Creates shard id with its loop, upstream, Redis client (when the cache
 * uses Redis) and HTTP daemon listening on the config's address. mem is the
 * process-wide memory cache (may be NULL); health the process-wide
 * breakers and provider slots (upstream/health.h; may be NULL), which
 * learns the shard's loop to wake it when a slot frees; ips the
 * process-wide connection counts per client address (http/gate_ips.h;
 * borrowed, outlives the shard). NULL on failure with a message in err. */
shard_t *shard_new(unsigned id, config_t *cfg, struct mcache *mem, struct observe *obs,
                   struct budget *budget, struct health *health, struct gate_ips *ips, char *err,
                   size_t errlen);
/* Starts the shard's thread. Returns 0 or -1. */
int shard_start(shard_t *s);
/* Asks the shard to stop: it stops accepting, lets live requests finish for
 * the configured grace period, then cancels the rest. Any thread. */
void shard_stop(shard_t *s);
void shard_join(shard_t *s);
void shard_free(shard_t *s);

/* ---- shard thread only ---- */
loop_t *shard_loop(shard_t *s);
struct upstream *shard_upstream(shard_t *s);
const struct cache_ctx *shard_cache(shard_t *s);
struct observe *shard_observe(shard_t *s);
/* This shard's OpenTelemetry exporter (account/otel.h), NULL without one. */
struct otel *shard_otel(shard_t *s);
/* The process-wide budget state (NULL never: local counters at least) and
 * this shard's Redis client for it (NULL without budgets.redis_url). */
struct budget *shard_budget(shard_t *s);
struct rds *shard_budget_rds(shard_t *s);
/* The process-wide upstream health (NULL when none was given). */
struct health *shard_health(shard_t *s);
/* The slot of this shard's classifier decision cache (route/classifier.h);
 * the shard frees what it holds. */
struct classifier_cache **shard_classifier_cache(shard_t *s);
unsigned shard_id(const shard_t *s);
/* The snapshot new requests use (borrowed). */
config_t *shard_config(shard_t *s);
bool shard_stopping(const shard_t *s);
uint64_t shard_random(shard_t *s);
void shard_link(shard_t *s, struct req *req);
void shard_unlink(shard_t *s, struct req *req);
/* Queues req's paused upstream transfer to be resumed after the HTTP daemon
 * has run (never from inside a libmicrohttpd callback: see
 * docs/internals/streaming.md). */
void shard_queue_unpause(shard_t *s, struct req *req);
void shard_dequeue_unpause(shard_t *s, struct req *req);

#endif
