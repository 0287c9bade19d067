/* admit: whether a model of a request's chain may be tried now, and what
 * its outcome teaches — the request-side glue of upstream/health.h, kept
 * out of the failover loop of upstream.c, which calls it at a few points:
 *
 *   upstream_admit_begin   when the chain starts;
 *   upstream_admit         before each attempt (breaker, 429 cooldown,
 *                          provider slot: go, skip, or wait in the shard's
 *                          queue for a slot);
 *   upstream_admit_done    where an attempt's outcome is recorded;
 *   upstream_admit_last_resort  when the chain is exhausted;
 *   upstream_admit_release_slot / upstream_admit_cancel  where a transfer
 *                          ends / the request is abandoned.
 *
 * A model demoted for its judged quality (account/quality.h,
 * observability.alerts.demote) is skipped too ("skipped: demoted (quality
 * alert)") and is the chain's last resort like a cooling one.
 * Skipped models are recorded as attempts ("skipped: cooling down (N s
 * left)", "skipped: provider P is at max_inflight ..."). Shard thread only
 * (upstream_admit_kick is the shard loop's wake-up callback). See
 * docs/internals/health.md. */
#ifndef LLMROUTER_UPSTREAM_ADMIT_H
#define LLMROUTER_UPSTREAM_ADMIT_H

#include <stdbool.h>

#include "core/loop.h"
#include "http/request.h"

enum admit_result {
    ADMIT_GO = 0, /* try it now: the probe and the slot, if any, are held */
    ADMIT_SKIP,   /* recorded as a skipped attempt: go on down the chain */
    ADMIT_QUEUED, /* waiting for a provider slot; the request resumes on its own */
};

/* A new chain: no cooling candidate, no last resort taken. */
void upstream_admit_begin(req_t *req);

/* Before an attempt on model m (req->model is m). */
enum admit_result upstream_admit(req_t *req, int m);

/* The outcome of the current attempt is known (its attempt record was just
 * written: a failure that fails over, an answer, a committed stream, a
 * passed-through 4xx): tells the model's breaker. Once per attempt. */
void upstream_admit_done(req_t *req);

/* The chain is exhausted without an answer: the model to try anyway — of
 * those skipped because they were cooling down, the one whose cooldown
 * ends first — or -1 (none, or already tried). At most once per chain. */
int upstream_admit_last_resort(req_t *req);

/* The current transfer ended (any way): gives its provider slot back. */
void upstream_admit_release_slot(req_t *req);

/* The request is abandoned (client gone, shutdown): leaves the wait queue,
 * releases a probe whose outcome was not seen. Safe to call twice. */
void upstream_admit_cancel(req_t *req);

/* The shard loop's wake-up: starts this shard's queued requests whose
 * provider has a free slot again. arg is the shard_t. */
void upstream_admit_kick(loop_t *loop, void *arg);

#endif
