/* webhook: alert notifications POSTed as JSON to observability.alerts.
 * webhook.url — one sender per shard, on the shard loop (upstream/call.h's
 * POST, a loop timer for the backoff): a bounded queue (full: dropped and
 * counted), one delivery in flight, each retried `retries` times with
 * jittered exponential backoff (250 ms doubling, capped at 10 s). Never on a
 * request's path. Shard thread only; created and freed with the shard's
 * judge (account/judge.h). */
#ifndef LLMROUTER_WEBHOOK_H
#define LLMROUTER_WEBHOOK_H

#include "account/quality.h"
#include "core/config.h"
#include "core/loop.h"

typedef struct webhook webhook_t;
struct upstream;

/* up and loop are the shard's (borrowed, outlive the sender's use); q
 * counts the outcomes. */
webhook_t *webhook_new(quality_t *q, struct upstream *up, loop_t *loop);
/* Drops what is queued. The shard's upstream must be gone already (its
 * calls cancelled) or idle: a delivery in flight is not cancelled here. */
void webhook_free(webhook_t *w);

/* Queues ev's notification for cfg's webhook (a no-op without one). The
 * body: {"event":"raised"|"cleared","kind","name","reason","mean_score",
 * "failure_rate","samples","scored","demoted","thresholds":{...},
 * "time","instance"}. */
void webhook_send(webhook_t *w, const config_t *cfg, const quality_event_t *ev);

/* The JSON body of ev (for tests): appended to out. */
int webhook_body(const config_t *cfg, const quality_event_t *ev, buf_t *out);

#endif
