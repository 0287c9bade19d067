/* upstream: forwards a request down its failover chain with libcurl's multi
 * interface, driven by the shard's loop (multi_socket). Decides failover
 * before the first byte reaches the client, streams SSE through req->out
 * with backpressure (pausing the transfer when the client is slow), and
 * hands finished answers to reply_send/reply_error. One per shard; shard thread
 * only. */
#ifndef LLMROUTER_UPSTREAM_H
#define LLMROUTER_UPSTREAM_H

#include "core/loop.h"
#include "http/request.h"

typedef struct upstream upstream_t;
struct shard;

upstream_t *upstream_new(struct shard *shard, loop_t *loop);
/* All transfers must have been cancelled. */
void upstream_free(upstream_t *up);

/* Starts req on the first usable model of its route. Every outcome — an
 * answer, a stream, or the 502 when the chain is exhausted — is delivered
 * through reply_send() or reply_stream_begin(); never synchronously from this call
 * except when no model can be tried at all. */
void upstream_start(upstream_t *up, req_t *req);

/* Aborts req's transfer (client gone or shutdown). Safe when none. */
void upstream_cancel(upstream_t *up, req_t *req);

/* Shutdown: ends req's committed, still open stream now, with the stream's
 * error event in the door's shape (why says what happened), as a broken
 * upstream would; the transfer is aborted. Implemented in stream.c. */
void upstream_stream_abort(upstream_t *up, req_t *req, const char *why);

/* Resumes a transfer paused by backpressure (called by the shard after the
 * HTTP daemon ran). */
void upstream_unpause(upstream_t *up, req_t *req);

#endif
