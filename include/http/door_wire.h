/* door_wire: the front doors (http/door.h) in the daemon. A Messages or
 * Responses request is translated into the internal chat body once, before
 * validation and routing (doorwire_request); the attempt on a model that
 * speaks the door's format gets the client's own bytes instead
 * (doorwire_forward); every answer is translated back at the two places
 * answers leave: reply_send (plain answers, errors, cached stream replays:
 * doorwire_reply) and the stream reader (doorwire_stream_read), one internal
 * event at a time, so backpressure holds. Shard thread only. */
#ifndef LLMROUTER_HTTP_DOOR_WIRE_H
#define LLMROUTER_HTTP_DOOR_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "http/request.h"

/* Sets req->door (and door_count_tokens) from the path p (without /v1).
 * Returns whether p is a door's path. */
bool doorwire_path(req_t *req, const char *p);

/* Translates the door's body in req->body into a chat body (once: later
 * calls return 0). The client's bytes move to req->door_raw. Returns 0, or
 * -1 with the 4xx in *err. */
int doorwire_request(req_t *req, req_error_t *err);

/* POST /v1/messages/count_tokens: appends the answer to out. Returns 0 or
 * -1 with *err. */
int doorwire_count_tokens(req_t *req, buf_t *out, req_error_t *err);

/* For an attempt on model m: 1 when the door's own body goes to it (an
 * Anthropic model behind /v1/messages, a responses_api provider behind
 * /v1/responses): req->fwd_body is set; 0 to send the chat body as usual;
 * -1 when m cannot take this door's request (req->ant_err: the 400). */
int doorwire_forward(req_t *req, int m);

/* A plain answer leaving through reply_send: rewrites *body (malloc'd,
 * owned; replaced and freed as needed), *len, *status and *ctype into the
 * door's format. Nothing happens on the chat door. */
void doorwire_reply(req_t *req, unsigned *status, char **body, size_t *len, const char **ctype);

/* The stream reader of a door: like libmicrohttpd's content reader over
 * req->out and req->tail, translated. Returns bytes written to out, 0 when
 * nothing is ready (the caller suspends), -1 at the end of the stream. */
ssize_t doorwire_stream_read(req_t *req, char *out, size_t max);

/* Whether req's stream is translated on its way to the client (every door
 * but chat, except a Responses stream passed through from a native
 * provider). */
bool doorwire_translates_stream(const req_t *req);

/* ---- a Responses request passed through to a native provider ---- */

struct provider_result;

/* Checks a native plain answer p[0..n) (a Response object) and fills pr's
 * tokens and cost from its usage. Returns 0, or -1 when it is not a
 * Response (the attempt fails over). */
int doorwire_native_answer(req_t *req, const char *p, size_t n, struct provider_result *pr);

/* One complete event p[0..n) of a native Responses stream: notes the
 * terminal event (response.completed / incomplete / failed) and takes its
 * usage. */
void doorwire_native_event(req_t *req, const char *p, size_t n);

/* The last event of a native Responses stream cut short (why: static or
 * borrowed text): a malloc'd `event: error` in the Responses shape, *len
 * set. */
char *doorwire_native_stream_error(req_t *req, const char *why, size_t *len);

/* Frees the door state of req. */
void doorwire_free(req_t *req);

#endif
