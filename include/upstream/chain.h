/* chain: attempt records and the answer of an exhausted failover chain
 * (src/upstream/chain.c). Called by upstream.c on the request's shard
 * thread. */
#ifndef LLMROUTER_UPSTREAM_CHAIN_H
#define LLMROUTER_UPSTREAM_CHAIN_H

#include <stddef.h>

#include "http/request.h"

#define UPSTREAM_RETRY_DEFAULT_MS 1000 /* a provider's 429 without retry-after(-ms) */
#define UPSTREAM_RETRY_CAP_MS 60000    /* what the OpenAI SDKs honour (node: 60 s) */

#define UPSTREAM_MAX_ATTEMPTS 512 /* records per request (31 models x 12 tries fit) */

/* Records the outcome of trying model m (status 0 when there was no HTTP
 * answer; error NULL or "" for success); when m is the current model, as
 * its retry number req->retry_n. At most UPSTREAM_MAX_ATTEMPTS records. */
void upstream_record(req_t *req, int m, unsigned status, const char *error);

/* Reads one response header line p[0..n) of a 429 into req->up_retry_ms:
 * retry-after-ms wins over retry-after, as in the OpenAI SDKs. */
void upstream_take_retry_header(req_t *req, const char *p, size_t n);

/* Answers a request whose chain is exhausted: 429 all_upstreams_rate_limited
 * with the smallest retry delay of the chain (capped) when every attempt
 * that reached a provider was rate limited, else 502 all_upstreams_failed;
 * both list every attempt in the message and in error.attempts. */
void upstream_chain_failed(req_t *req);

/* Answers a request whose deadline (req->deadline_ms) passed before any
 * byte of an answer went to the client: 504 timeout_error
 * deadline_exceeded, listing every attempt like the 502. */
void upstream_deadline_failed(req_t *req);

/* Answers err (its status, type, code, param; message = intro followed by
 * every attempt, which also go to error.attempts), e.g. upstream/fit.h's 400
 * for a request no model of its chain can serve. */
void upstream_chain_refuse(req_t *req, req_error_t *err, const char *intro);

#endif
