/* quirks: a provider's departures from OpenAI's wire format, normalised
 * per the QUIRK_* flags its preset set (core/presets.h): the request body
 * (groq's rejected parameters dropped, mistral's 9-character tool-call ids),
 * error bodies (gemini's [{"error":...}], mistral's flat {"message",...})
 * and a stream's tool-call deltas (gemini: no `index`, "" ids, a tool turn
 * ending in "stop"). Shard thread only (the request's). */
#ifndef LLMROUTER_UPSTREAM_QUIRKS_H
#define LLMROUTER_UPSTREAM_QUIRKS_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "http/request.h"

/* An attempt on model m begins (after request_build_forward): rewrites
 * req->fwd_body for the provider's request quirks and sets up the stream
 * filter when one applies. Returns 0 (a body it cannot parse is left as
 * is). */
int quirks_begin(req_t *req, int m);

/* Whether this attempt's stream goes through quirks_stream_write. */
bool quirks_stream_on(const req_t *req);

/* curl's write callback for a filtered stream: rewrites complete lines,
 * then hands them to upstream_stream_write. Same returns as it (n, 0 to
 * fail, CURL_WRITEFUNC_PAUSE). */
size_t quirks_stream_write(req_t *req, const char *p, size_t n);

/* A parsed error body or event in the provider's shape turned into OpenAI's
 * {"error":{"message","type","param","code"}}: returns the new root (the
 * old one deleted) or root itself when there was nothing to do. */
cJSON *quirks_error_json(unsigned quirks, cJSON *root);

/* The error body in out (a passed-through 4xx/5xx) rewritten the same way,
 * in place. */
void quirks_error_body(req_t *req, buf_t *out);

/* The mistral id for a tool-call id: id itself when it is 9 of
 * [a-zA-Z0-9], else 9 base-62 characters of its hash (deterministic, so a
 * call and its tool message keep matching). out has 10 bytes. */
void quirks_tool_id9(const char *id, char out[10]);

/* A plain chat answer in out (before its checks): a choice with tool calls
 * ending in "stop" ends in "tool_calls", an empty tool-call id gets one
 * (QUIRK_TOOL_INDEX). In place; left as is when it cannot be parsed. */
void quirks_answer(req_t *req, buf_t *out);

/* Frees the stream filter (request_free, a new attempt). */
void quirks_free(req_t *req);

#endif
