/* judge: a shard's judging of sampled answers, off the request path. A
 * finished request picked for judging (observability.judge.rate, decided
 * when it was routed) hands its sample here from its completion: the line
 * is formatted at once (the request is freed right after), the prompt
 * built (question and answer truncated), and the sample waits in the
 * shard's bounded queue (full: dropped and counted) until one of the
 * shard's `concurrency` judge calls is free (upstream/call.h, on the
 * shard's curl multi). The line is written when the judge answers or fails
 * — with "judge": {"model", "score", "reason", "cost_usd", "ms"} or
 * {"model", "error", ...} — and the score goes to the process-wide quality
 * record (account/quality.h), whose alert transitions are logged and sent
 * to the webhook (account/webhook.h). A sample not judged is written at once
 * with "judge": null. Shard thread only; judge_free after the shard's
 * upstream is gone. */
#ifndef LLMROUTER_JUDGE_H
#define LLMROUTER_JUDGE_H

#include <stdbool.h>
#include <stddef.h>

#include "account/accesslog.h"
#include "account/quality.h"
#include "core/loop.h"
#include "http/request.h"

typedef struct judge judge_t;
struct upstream;

/* q, s (may be NULL: nothing written), up and loop borrowed. */
judge_t *judge_new(quality_t *q, sampler_t *s, struct upstream *up, loop_t *loop);
/* Pending samples are written with "judge": {"error": "shutdown"}. */
void judge_free(judge_t *j);

/* A finished, sampled request (bodies borrowed; on its shard thread). */
void judge_sample(judge_t *j, const req_t *req, const char *body, size_t len, const char *resp,
                  size_t rlen);

/* Samples waiting and judge calls in flight (tests). */
size_t judge_pending(const judge_t *j);

#endif
