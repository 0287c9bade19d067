/* classifier: the pure parts of classifier routing (routing.classifier) —
 * the prompt a cheap model is asked with, reading its answer as one of the
 * configured labels, and the decision cache. The call itself (an
 * upstream_call on the request's shard) and the re-routing are the HTTP
 * front end's (src/http/server.c); the rules read the label through
 * rule_ctx_t (route/rules.h).
 *
 * The decision cache is per shard (one per loop thread, reached through
 * shard_classifier_cache()): no lock on the request path, at the price of a
 * prompt being classified once per shard. It is a fixed set-associative
 * table — entries are allocated once, an insert replaces an expired or the
 * soonest-to-expire entry of its set — so it never grows. Not thread-safe:
 * only its shard's thread touches it. Everything else here is a pure
 * function of its arguments, any thread. */
#ifndef LLMROUTER_ROUTE_CLASSIFIER_H
#define LLMROUTER_ROUTE_CLASSIFIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

/* What classifying a request came to (access log, metrics, the
 * x-router-classifier header). */
enum classifier_result {
    CLASSIFIER_NONE = 0, /* not classified (no rule needed it) */
    CLASSIFIER_OK,       /* the model answered a label */
    CLASSIFIER_CACHED,   /* the label came from the decision cache */
    CLASSIFIER_TIMEOUT,  /* no answer within timeout_ms */
    CLASSIFIER_ERROR,    /* the call failed (HTTP error, connect, not a completion, not started) */
    CLASSIFIER_GARBAGE,  /* an answer that is none of the labels */
};

/* "ok", "cache_hit", "timeout", "error", "garbage"; "none" for NONE. */
const char *classifier_result_name(enum classifier_result r);

/* The system prompt: routing.classifier.prompt with every "{labels}"
 * replaced by the labels ("simple, code, reasoning"), or the built-in one
 * naming them. malloc'd; the caller frees. */
char *classifier_system_prompt(const cfg_classifier_t *cl);

/* How many bytes of text[0..len) are sent: at most max, cut back to a
 * UTF-8 character boundary. */
size_t classifier_input_len(const char *text, size_t len, size_t max);

/* The label the answer names, as an index into cl->labels, or -1. The
 * answer must be exactly one label — case, surrounding white space,
 * quotes, backticks and one final '.' aside; anything else is garbage
 * (a model that explains itself is not trusted to have chosen). content
 * may be NULL. */
int classifier_parse_label(const cfg_classifier_t *cl, const char *content);

/* The decision-cache key of a routed text under one system prompt and
 * classifier model (so a reload that changes either starts afresh):
 * 64-bit FNV-1a, not collision-resistant against a crafted prompt — the
 * worst a collision does is route one request to another label's tier. */
uint64_t classifier_key(const char *model, const char *system, const char *text, size_t len);

typedef struct classifier_cache classifier_cache_t;

/* A cache of about entries decisions (rounded up to a multiple of its set
 * size); NULL when entries is 0. Free with classifier_cache_free. */
classifier_cache_t *classifier_cache_new(size_t entries);
void classifier_cache_free(classifier_cache_t *c);
/* How many decisions c holds at most (0 for NULL). */
size_t classifier_cache_capacity(const classifier_cache_t *c);
/* The cache in *slot, replaced by an empty one when it does not have room
 * for entries (first use, or a reload changed cache_entries); NULL when
 * entries is 0. The slot owns it. */
classifier_cache_t *classifier_cache_sized(classifier_cache_t **slot, size_t entries);

/* The label cached under key and not expired at now_ms, as an index into
 * cl->labels, or -1 (also when the cached label is no longer configured).
 * c may be NULL. */
int classifier_cache_get(classifier_cache_t *c, const cfg_classifier_t *cl, uint64_t key,
                         uint64_t now_ms);
/* Remembers label (copied) under key until expires_ms. c may be NULL. */
void classifier_cache_put(classifier_cache_t *c, uint64_t key, const char *label,
                          uint64_t expires_ms);

#endif
