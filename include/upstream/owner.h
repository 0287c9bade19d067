/* owner: what upstream.c and call.c share, private to the two. Every easy
 * handle on a shard's multi carries, as CURLOPT_PRIVATE, a pointer to the
 * upstream_owner_t embedded in what owns it — a client request (req_t) or
 * one of llmrouter's own calls — so that the completion loop hands each
 * finished transfer to the right code. Shard thread only. */
#ifndef LLMROUTER_UPSTREAM_OWNER_H
#define LLMROUTER_UPSTREAM_OWNER_H

#include <curl/curl.h>

enum upstream_owner_kind { UPSTREAM_OWNER_REQ = 0, UPSTREAM_OWNER_CALL = 1 };

struct urlcache_entry;

typedef struct upstream_owner {
    unsigned char kind;
    /* the parsed URL the transfer uses (upstream/urlcache.h), held until
     * the transfer ends; NULL when it was given as text */
    struct urlcache_entry *url;
} upstream_owner_t;

struct upstream;
struct upstream_call;

/* The shard's multi handle, and the head of its list of calls in flight. */
CURLM *upstream_multi(struct upstream *up);
struct upstream_call **upstream_calls(struct upstream *up);

/* A call's transfer finished (curl_result is its CURLcode): delivers the
 * result and frees the call. */
void upstream_call_done(struct upstream *up, upstream_owner_t *owner, int curl_result);

/* Shutdown: frees every call in flight without calling back. */
void upstream_call_cancel_all(struct upstream *up);

#endif
