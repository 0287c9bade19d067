/* metrics: request metrics for Prometheus (GET /metrics) and the JSON of
 * GET /v1/router/stats. Each shard owns one metrics_t and records its
 * finished requests into it; a scrape merges all shards. A metrics_t is a
 * hash map from (family, label values) to a counter or a latency histogram,
 * guarded by its own mutex: taken by metrics_observe on the shard thread
 * (uncontended) and by the scraper, which holds every shard's mutex while it
 * merges (in index order; observe takes only its own, so no deadlock).
 *
 * Label values come from configuration names (models, providers, tiers,
 * rules, key names) and a small fixed set (status codes, failover reasons,
 * cache results), so the number of series is bounded by the configurations
 * the process has loaded. Invariants and the metric list: docs/internals/
 * metrics.md. Thread rules: metrics_observe on the owning shard's thread;
 * metrics_render / metrics_stats_json on any thread; metrics_new/free when no
 * other thread uses the object. */
#ifndef LLMROUTER_METRICS_H
#define LLMROUTER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "cache/memcache.h"
#include "core/rds.h"
#include "http/request.h"

typedef struct metrics metrics_t;

/* Upper bounds (seconds) of the latency histogram buckets, +Inf excluded. */
#define METRICS_N_BUCKETS 16
extern const double metrics_buckets[METRICS_N_BUCKETS];

/* Process-wide values the caller gathers at scrape time; all borrowed for
 * the duration of metrics_render. NULL pointers omit their metrics. */
typedef struct metrics_extra {
    const mcache_stats_t *mcache; /* memory cache, NULL when not in use */
    const rds_stats_t *redis;     /* Redis client stats summed over the shards, NULL when not in use */
    double uptime_s;              /* seconds since the process started */
    unsigned config_generation;   /* config_generation() */
    uint64_t config_reloads;      /* successful reloads since start */
    uint64_t config_reload_errors; /* reloads refused (invalid file) */
    const char *version;          /* LLMROUTER_VERSION; NULL omits build_info */
    unsigned shards;              /* number of shards (0 omits the gauge) */
} metrics_extra_t;

/* A new, empty metrics object (aborts on out-of-memory). Free with
 * metrics_free. */
metrics_t *metrics_new(void);
/* Frees m and every series. NULL is a no-op. */
void metrics_free(metrics_t *m);

/* Records one finished request: call it once per request, on the request's
 * shard thread, when the request completes (before request_free). cfg is the
 * request's snapshot (req->cfg); req is read only; now_us is util_now_us()
 * at completion (same clock as req->t_*_us). */
void metrics_observe(metrics_t *m, const config_t *cfg, const req_t *req, uint64_t now_us);

/* Appends the Prometheus text exposition format 0.0.4 of the merged shards
 * (shards[0..n), borrowed; NULL entries are skipped) and of extra (may be
 * NULL) to out. Content-Type: "text/plain; version=0.0.4; charset=utf-8".
 * Returns 0, or -1 if out's cap was reached (out then holds a prefix). */
int metrics_render(metrics_t *const *shards, size_t n, const metrics_extra_t *extra, buf_t *out);

/* Appends the JSON object of GET /v1/router/stats to out: "totals", "models"
 * (array sorted by name) and "tiers" (array sorted by name). Returns 0 or -1
 * if out's cap was reached. */
int metrics_stats_json(metrics_t *const *shards, size_t n, buf_t *out);

/* Failover reason of an attempt (status, error string) — one of "status_429",
 * "status_5xx", "status_401", "status_403", "timeout", "connect",
 * "invalid_answer", "stale_connection", "error_event", "cooling_down"
 * (skipped: circuit open or a 429's cooldown), "busy" (skipped: provider at
 * max_inflight), "other". A static string. */
const char *metrics_failover_reason(unsigned status, const char *error);

/* The q-quantile (0..1) of a histogram with METRICS_N_BUCKETS + 1 per-bucket
 * (not cumulative) counts, interpolated linearly inside the bucket like
 * Prometheus' histogram_quantile. Returns -1 when the histogram is empty. */
double metrics_quantile(const uint64_t counts[METRICS_N_BUCKETS + 1], double q);

#endif
