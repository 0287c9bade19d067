/* server: the HTTP front end on libmicrohttpd. Routes paths, reads bodies
 * under their cap, answers errors in OpenAI's shape, suspends a connection
 * while its upstream works and streams SSE back with backpressure. One daemon
 * per shard; every function runs on that shard's thread. */
#ifndef LLMROUTER_SERVER_H
#define LLMROUTER_SERVER_H

#include <stddef.h>

#include "core/config.h"
#include "http/request.h"

struct MHD_Daemon;
struct shard;

/* Starts a daemon in external-epoll mode on cfg's listen address with
 * SO_REUSEPORT. Returns NULL with a message in err on failure. */
struct MHD_Daemon *server_start(struct shard *shard, const config_t *cfg, char *err,
                                size_t errlen);

/* Prepares a complete response for req and resumes its connection.
 * Takes ownership of body (malloc'd). ctype NULL means application/json. */
void server_respond(req_t *req, unsigned status, char *body, size_t len, const char *ctype);

/* Same with an OpenAI error body. extra_json as in apierror_body. */
void server_respond_error(req_t *req, const req_error_t *err, const char *extra_json);

/* Streaming: the first upstream event arrived; send 200 + text/event-stream
 * and start draining req->out. */
void server_stream_begin(req_t *req);

/* Streaming: new bytes (or the end) are available; wake the writer. */
void server_stream_wake(req_t *req);

/* Settles the request's budget reservation with its actual cost, once:
 * called when the answer is complete (so that the client's next request,
 * on any instance, sees the spend) and again harmlessly at completion. */
void server_settle_budget(req_t *req);

/* Shutdown: resume every suspended connection of the daemon's requests after
 * marking them gone (the caller has cancelled their upstreams). */
void server_release(req_t *req);

#endif
