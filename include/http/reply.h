/* reply: how a request is answered (src/http/reply.c). The cache and the
 * upstream answer through the first group only; the second is for the
 * front end (server.c). Every function runs on the request's shard
 * thread. */
#ifndef LLMROUTER_HTTP_REPLY_H
#define LLMROUTER_HTTP_REPLY_H

#include <microhttpd.h>
#include <stddef.h>

#include "http/request.h"

/* ---- for the stages that answer a request ---- */

/* Prepares a complete response for req and resumes its connection.
 * Takes ownership of body (malloc'd). ctype NULL means application/json. */
void reply_send(req_t *req, unsigned status, char *body, size_t len, const char *ctype);

/* Same with an OpenAI error body. extra_json as in apierror_body. */
void reply_error(req_t *req, const req_error_t *err, const char *extra_json);

/* Streaming: the first upstream event arrived; send 200 + text/event-stream
 * and start draining req->out. */
void reply_stream_begin(req_t *req);

/* Streaming: new bytes (or the end) are available; wake the writer. */
void reply_stream_wake(req_t *req);

/* Settles the request's budget reservation with its actual cost, once:
 * called when the answer is complete (so that the client's next request,
 * on any instance, sees the spend) and again harmlessly at completion. */
void reply_settle_budget(req_t *req);

/* Shutdown: resume a suspended connection after marking it gone (the
 * caller has cancelled its upstream). */
void reply_release(req_t *req);

/* Shutdown, end of the grace period: a request not answered yet (state
 * RS_UPSTREAM) stops whatever it waits for (provider, classifier, judge,
 * Redis) and is answered 503 server_shutting_down in its door's shape. */
void reply_shutdown(req_t *req);

/* ---- for the front end ---- */

/* The request header name (case-insensitive), or NULL. Borrowed from
 * libmicrohttpd, valid while the request lives. */
const char *reply_header(req_t *req, const char *name);

/* The headers of every answer: x-request-id, the x-router-* headers of a
 * routed request, content type, CORS. */
void reply_add_headers(req_t *req, struct MHD_Response *r, const char *ctype);

/* Queues the prepared req->response (state RS_READY). */
enum MHD_Result reply_queue_ready(req_t *req);

/* Suspends the connection while an upstream, cache or budget lookup works,
 * and arms the hang-up watch. */
void reply_suspend(req_t *req);

#endif
