/* call: one non-streamed chat completion of llmrouter's own — a classifier's
 * label, a cascade's judge, a sampled answer's score — sent to one
 * configured model on the shard's curl multi, beside the clients'
 * transfers. No failover, no cache, no budget, no client: the caller
 * decides what a failure means and what the cost is booked to. A call
 * lives on the shard that started it; every function here runs on that
 * shard's thread. */
#ifndef LLMROUTER_UPSTREAM_CALL_H
#define LLMROUTER_UPSTREAM_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "upstream/upstream.h"

typedef struct upstream_call upstream_call_t;

/* What a call came to. Every pointer is borrowed and valid only during the
 * callback. */
typedef struct upstream_call_result {
    bool ok;              /* a 2xx answer that is a chat completion */
    unsigned status;      /* the provider's HTTP status, 0 if none */
    const char *error;    /* why not ok (timeout, connect, HTTP 503, not JSON, ...); NULL when ok */
    const char *body;     /* the answer as received (len bytes), NULL if none */
    size_t len;
    const char *content;  /* choices[0].message.content (NUL-terminated), NULL if absent */
    const char *finish_reason; /* choices[0].finish_reason, NULL if absent */
    double cost_usd;      /* from the answer's usage and the model's prices; < 0 when unknown */
    int64_t prompt_tokens, completion_tokens; /* -1 when unknown */
    uint64_t elapsed_us;  /* from start to the end of the answer (or the failure) */
} upstream_call_result_t;

/* Called exactly once per started call, from the shard loop (never from
 * upstream_call_start itself), unless the call was cancelled first. */
typedef void (*upstream_call_cb)(void *arg, const upstream_call_result_t *res);

/* Sends body[0..len) (a Chat Completions request, copied; its "model"
 * should be the model's upstream name — see upstream_call_chat_body) to
 * model m of cfg (cfg is referenced for the call's life), bounded by
 * timeout_ms for the whole exchange. Returns NULL — and never calls cb —
 * when it cannot start (no key, no handle, bad URL). */
upstream_call_t *upstream_call_start(upstream_t *up, config_t *cfg, int m, const char *body,
                                     size_t len, unsigned timeout_ms, upstream_call_cb cb,
                                     void *arg);

/* Aborts a call that has not called back yet; its callback is never
 * called. NULL is allowed. */
void upstream_call_cancel(upstream_t *up, upstream_call_t *c);

/* A request body for model m: {"model":<its upstream name>,"messages":[
 * {"role":"system","content":system} (when system is not NULL),
 * {"role":"user","content":user}],"temperature":0,"max_tokens":max_tokens}
 * (max_tokens 0: not sent). malloc'd, *len set; the caller frees. */
char *upstream_call_chat_body(const config_t *cfg, int m, const char *system, const char *user,
                              unsigned max_tokens, size_t *len);

/* A POST of body[0..len) (JSON, copied) to url with headers (a
 * NULL-terminated list of "Name: value" lines, copied; may be NULL), bounded
 * by timeout_ms: llmrouter's own calls that are not to a model (an alert
 * webhook). Any 2xx is ok (content, cost and tokens unknown). Same callback
 * rules as upstream_call_start; NULL when it cannot start. */
upstream_call_t *upstream_call_post(upstream_t *up, const char *url, const char *const *headers,
                                    const char *body, size_t len, unsigned timeout_ms,
                                    upstream_call_cb cb, void *arg);

/* Calls in flight on this upstream (for tests and metrics). */
size_t upstream_call_count(upstream_t *up);

#endif
