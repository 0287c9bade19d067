/* antwire: an attempt on a model of a `type: anthropic` provider, wired
 * into the curl state machine (upstream.c). The translation itself is
 * upstream/anthropic.h; this module feeds it what curl delivers and hands
 * the OpenAI form on, so that everything after it — the stream's commit
 * rule, usage, finish_reason tracking, the cache, backpressure, the checks
 * and cost of a plain answer — sees a Chat Completions answer whichever
 * provider served. Private to src/upstream/. Shard thread only. */
#ifndef LLMROUTER_UPSTREAM_ANTWIRE_H
#define LLMROUTER_UPSTREAM_ANTWIRE_H

#include <stdbool.h>
#include <stddef.h>

#include "http/request.h"
#include "upstream/anthropic.h"

/* Resets req's Anthropic state for a new attempt (req->ant says whether the
 * attempt is to an Anthropic model; request_build_forward set it). Creates
 * the stream translator of a streamed attempt. Returns 0, or -1 when out of
 * memory. */
int antwire_begin(req_t *req);

/* The write callback of a streamed 2xx Anthropic attempt: raw Messages
 * events p[0..n) in, OpenAI chunks pushed into the common stream path
 * (upstream_stream_write). Returns what a curl write callback returns: n,
 * CURL_WRITEFUNC_PAUSE (curl re-delivers the same bytes later; the ones
 * already translated are skipped then), or 0 to fail the attempt. Until the
 * translator has produced content, nothing is pushed: an error event or an
 * end before content still fails over. */
size_t antwire_write(req_t *req, const char *p, size_t n);

/* Replaces the complete 2xx Messages answer in req->out by its
 * chat.completion translation; *usage gets Anthropic's counts. Returns 0,
 * or -1 with why filled (not a Messages answer, too large). */
int antwire_answer(req_t *req, anthropic_usage_t *usage, char *why, size_t whylen);

/* Replaces the Anthropic error body in req->out (a passed-through status)
 * by OpenAI's error shape. */
void antwire_error(req_t *req);

/* The cost of usage u on req's current model: cache reads at
 * cached_input_per_mtok, cache writes at cache_write_per_mtok. u NULL: the
 * stream translator's counts. < 0 when the input count is unknown. */
double antwire_cost(const req_t *req, const anthropic_usage_t *u);

/* A committed Anthropic stream's upstream ended: NULL when it was complete
 * (message_stop), else why not. *error_sent: the translator already sent the
 * client OpenAI's error event (an Anthropic error event), so no second one. */
const char *antwire_stream_end(req_t *req, bool *error_sent);

/* True for a native stream: an Anthropic model's stream behind the
 * Messages door, whose own events reach the client (req->door_rawq). */
bool antwire_native_stream(const req_t *req);

#endif
