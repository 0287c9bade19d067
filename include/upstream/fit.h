/* fit: whether a model of a request's chain can serve the request at all —
 * its context window holds the estimated prompt plus the requested output,
 * and it has the capabilities the request uses (tools, images, audio, a JSON
 * schema response_format) — from the price and capability table
 * (core/catalog.h) or the model's own keys. Checked before each attempt
 * (upstream.c), beside the key, daily-cap and circuit skips; a model that
 * cannot serve is skipped and recorded ("skipped: context_window (...)",
 * "skipped: no_vision (...)"), and a request no model of its chain can
 * serve is answered 400, not 502. A model without data is assumed able.
 * Shard thread only; a few comparisons per attempt. */
#ifndef LLMROUTER_UPSTREAM_FIT_H
#define LLMROUTER_UPSTREAM_FIT_H

#include <stdbool.h>
#include <stddef.h>

#include "http/request.h"

/* The output a request that sets neither max_tokens nor
 * max_completion_tokens is assumed to need, for the context-window check. */
#define FIT_DEFAULT_OUTPUT_TOKENS 256

/* The CAP_* bits a parsed request needs (request.c sets req->needs). */
unsigned fit_needs(bool tools, bool images, bool audio, const char *response_format);

/* True when model m can serve req; otherwise false with why ("context_window
 * (about N tokens needed, M allowed)", "no_vision (the request has images)")
 * written to why[0..n). */
bool fit_check(const req_t *req, const cfg_model_t *m, char *why, size_t n);

/* Before an attempt on m: true when m was skipped (recorded as an attempt,
 * counted in req->fit_skips). */
bool fit_skip(req_t *req, int m);

/* The chain is exhausted and every attempt was a fit skip: answers 400
 * naming what was missing (and every model's reason in error.attempts) and
 * returns true; false otherwise (nothing done). */
bool fit_unservable(req_t *req);

#endif
