/* health: what llmrouter knows about its upstreams beyond one request and
 * one configuration snapshot. Per model a circuit breaker (closed, open,
 * half-open with one probe) and the cooldown a 429 asked for; per provider
 * its concurrency slots over all shards and the requests waiting for one.
 * Entries are keyed by name and live as long as the process-wide health_t,
 * so a reload keeps them: health_bind points each model and provider of a
 * new snapshot at its entry (creating the missing ones) before the
 * snapshot is published, and the request path reaches them in O(1) through
 * cfg->models[m].health / cfg->providers[p].health.
 *
 * Thread rules: health_new, health_free and health_bind on the main thread
 * (bind may run while the shards use the entries it already made: entries
 * are only ever added, published with release stores, and freed by
 * health_free once no shard runs). A model's state is guarded by its own
 * mutex, held for a few instructions and never across I/O; a provider's
 * counters are atomics. A provider's wait queue of shard s is touched by
 * shard s only. Clocks are passed in (now_ms, monotonic milliseconds: the
 * shards pass loop_now_ms, tests any value). See docs/internals/health.md. */
#ifndef LLMROUTER_UPSTREAM_HEALTH_H
#define LLMROUTER_UPSTREAM_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/loop.h"

typedef struct health health_t;
typedef struct health_model health_model_t;
typedef struct health_provider health_provider_t;

/* A process-wide table for n_shards shards (1..256); aborts on
 * out-of-memory. Free with health_free once no shard runs. */
health_t *health_new(unsigned n_shards);
void health_free(health_t *h);

/* Points cfg's models and providers at their entries (made on first
 * sight of a name). Main thread, before cfg is published. */
void health_bind(health_t *h, config_t *cfg);

/* Shard s's loop, woken when a provider slot frees and s has waiters
 * (borrowed; set before the shard starts, NULL when it stops). */
void health_set_shard_loop(health_t *h, unsigned shard, loop_t *loop);
unsigned health_shards(const health_t *h);

/* ---- the circuit breaker of a model ---- */

enum health_state { HEALTH_CLOSED = 0, HEALTH_OPEN = 1, HEALTH_HALF_OPEN = 2 };

enum health_verdict {
    HEALTH_ALLOW = 0,    /* closed: try it */
    HEALTH_PROBE,        /* half-open: try it; this attempt is the probe */
    HEALTH_OPEN_SKIP,    /* open: skip (*left_ms until a probe may go) */
    HEALTH_PROBING_SKIP, /* half-open and a probe is out: skip */
    HEALTH_RATE_SKIP,    /* cooling down after a 429: skip (*left_ms) */
};

enum health_outcome {
    HEALTH_OK = 0,  /* an answer (or a committed stream) */
    HEALTH_FAILED,  /* an attempt that failed over: 5xx, 401/403, timeout, transport, invalid */
    HEALTH_NEUTRAL, /* says nothing: a client-fault 4xx passed through, a cancelled attempt */
};

/* May model h be tried now under c? A skip is counted. *left_ms (may be
 * NULL) gets the time until the cooldown ends (0 when none). A PROBE
 * verdict must be followed by exactly one health_report or
 * health_rate_limited with probe = true. h NULL: always HEALTH_ALLOW. */
enum health_verdict health_allow(health_model_t *h, const cfg_circuit_t *c, uint64_t now_ms,
                                 uint64_t *left_ms);

/* A chain's last resort (every other model failed or was cooling down):
 * the attempt goes ahead whatever the state. Returns true when it took the
 * free probe slot (then report with probe = true). */
bool health_force(health_model_t *h, const cfg_circuit_t *c, uint64_t now_ms);

/* The outcome of an attempt on h. probe: the attempt was the probe (it
 * closes the circuit on HEALTH_OK and opens it again, for longer, on
 * HEALTH_FAILED). Outside probes, failures count toward opening only
 * while the circuit is closed. reason (static string, may be NULL) is kept
 * as the last failure's reason. */
void health_report(health_model_t *h, const cfg_circuit_t *c, enum health_outcome o, bool probe,
                   uint64_t now_ms, const char *reason);

/* A 429 (or 529): h cools down for retry_ms (< 0: one second), capped at
 * c->retry_after_max_ms, never shortening a cooldown already running. Not
 * a breaker failure; a probe that got it leaves the circuit half-open. */
void health_rate_limited(health_model_t *h, const cfg_circuit_t *c, int64_t retry_ms, bool probe,
                         uint64_t now_ms);

/* A consistent copy of a model's state, for /metrics, /readyz, stats. */
typedef struct health_model_info {
    enum health_state state;   /* HALF_OPEN also when open and its cooldown is over */
    bool cooling;              /* health_allow would skip it now */
    uint64_t left_ms;          /* until the cooldown ends (breaker or 429); 0 none */
    uint64_t rate_left_ms;     /* of that, the 429's */
    uint32_t consecutive;      /* failures in a row while closed */
    uint64_t trips, skips, probes;
    uint64_t cooldown_ms;      /* the last open period */
    const char *last_failure;  /* reason of the last failure, "" none */
} health_model_info_t;
void health_model_info(health_model_t *h, uint64_t now_ms, health_model_info_t *out);
const char *health_state_name(enum health_state s);

/* ---- what load balancing reads (upstream/balance.h) ---- */

/* An attempt on m started / ended (paired; m NULL: no-op). Any thread. */
void health_lb_start(health_model_t *m);
void health_lb_end(health_model_t *m);
/* The time from an attempt's start to its answer's start (a stream's first
 * sound event, a plain answer's end), folded into m's EWMA. Any thread. */
void health_lb_latency(health_model_t *m, uint64_t us);
/* The EWMA step (alpha 1/5; old 0: no sample yet, the sample is taken). */
uint64_t health_ewma_next(uint64_t old, uint64_t sample_us);

typedef struct health_lb_view {
    bool usable;       /* health_allow would not skip it now (breaker, 429 cooldown) */
    unsigned inflight; /* attempts under way, all shards */
    uint64_t ewma_us;  /* 0: no sample yet */
} health_lb_view_t;
/* Reads m without counting a skip or taking a probe (m NULL: usable,
 * idle, no sample). */
void health_lb_view(health_model_t *m, const cfg_circuit_t *c, uint64_t now, health_lb_view_t *out);

/* ---- a provider's concurrency slots ---- */

/* Takes a slot when fewer than max are in use (max 0: no limit, the slot
 * is only counted). Every true return is paired with one
 * health_slot_release. Any thread. */
bool health_slot_acquire(health_provider_t *p, uint32_t max);
/* Gives a slot back and wakes the shards that have waiters for p. */
void health_slot_release(health_provider_t *p);

/* A waiter in a shard's FIFO for a provider, embedded in its owner. */
typedef struct health_wait {
    struct health_wait *next, *prev;
    bool queued;
} health_wait_t;

/* Shard `shard` only: appends w to its queue for p (counted in p's
 * waiters before this returns, so that a release after it wakes the
 * shard), removes w (safe when not queued), and the queue's head / length. */
void health_wait_push(health_provider_t *p, unsigned shard, health_wait_t *w);
void health_wait_remove(health_provider_t *p, unsigned shard, health_wait_t *w);
health_wait_t *health_wait_head(health_provider_t *p, unsigned shard);
size_t health_wait_len(const health_provider_t *p, unsigned shard);

/* Calls fn for every provider entry on whose queue shard `shard` has a
 * waiter (shard `shard` only; fn may pop and push). */
void health_each_waiting(health_t *h, unsigned shard, void (*fn)(health_provider_t *, void *),
                         void *arg);

void health_count_queue_timeout(health_provider_t *p);
void health_count_queue_full(health_provider_t *p);

typedef struct health_provider_info {
    uint64_t inflight, waiting, queue_timeouts, queue_full;
} health_provider_info_t;
void health_provider_info(const health_provider_t *p, health_provider_info_t *out);
const char *health_provider_name(const health_provider_t *p);

#endif
