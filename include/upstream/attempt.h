/* attempt: what upstream.c (the curl state machine), stream.c (a streamed
 * answer) and answer.c (what becomes of a sound answer) share; private to
 * the three. Shard thread only. */
#ifndef LLMROUTER_UPSTREAM_ATTEMPT_H
#define LLMROUTER_UPSTREAM_ATTEMPT_H

#include <stdbool.h>
#include <stddef.h>

#include "http/request.h"
#include "upstream/provider.h"
#include "upstream/upstream.h"

#define UPSTREAM_STREAM_OUT_CAP (64 * 1024) /* a stream's output buffer */

/* The stream path of a 2xx streamed attempt: OpenAI chunks p[0..n) (as
 * received, or translated from another format), held until the first data
 * event proves sound, then committed and queued for the client. Returns n,
 * CURL_WRITEFUNC_PAUSE when the client's queue is full (nothing taken), or
 * 0 when the attempt failed. */
size_t upstream_stream_write(req_t *req, const char *p, size_t n);

/* Marks the current attempt failed (fmt has one %s for arg). */
void upstream_fail_attempt(req_t *req, const char *fmt, const char *arg);

/* Takes req's transfer off the multi (pooling the handle when reusable)
 * and stops its timer. */
void upstream_end_transfer(upstream_t *up, req_t *req, bool reusable);

/* Ends a committed stream: [DONE] when the upstream ended cleanly and every
 * choice finished, else the error event (error: why, or NULL for a clean
 * end). */
void upstream_finish_stream(upstream_t *up, req_t *req, const char *error, bool reusable);

/* Starts the attempt on model m, admitted already (upstream/admit.h).
 * Returns 0, or -1 when it could not start: recorded, slot and probe given
 * back; the caller goes on down the chain. */
int upstream_begin(upstream_t *up, req_t *req, int m);

/* Tries the next usable model of req's chain, or answers the exhausted
 * chain (upstream/chain.h). */
void upstream_next_attempt(upstream_t *up, req_t *req);

/* Completes req's accounting once its answer is complete: usage or an
 * estimate (answer_bytes long), the baseline, the model's daily cap, a
 * cascade's attempts, the budget settlement. */
void upstream_account(req_t *req, size_t answer_bytes);

/* Delivers a sound answer (pr from provider_check_answer; its new_body and
 * compact are consumed): accounting, cache (unless a cascade did not accept
 * it), sample, reply. */
void upstream_deliver(upstream_t *up, req_t *req, provider_result_t *pr);

/* A cascade whose later models all failed: delivers the last rejected
 * answer instead of a 502. */
void upstream_deliver_kept(upstream_t *up, req_t *req);

/* A cascade's verdict on a sound answer. Returns false when it is to be
 * delivered now (accepted, or the last model's), true when the request went
 * on (escalated, or waiting for the judge). */
bool upstream_cascade_step(upstream_t *up, req_t *req, provider_result_t *pr);

#endif
