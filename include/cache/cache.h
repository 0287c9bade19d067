/* cache: the response cache's policy and flow for one request — whether a
 * request may be served from or stored in the cache (client headers, rule
 * and config settings, deterministic sampling only by default), its key,
 * the lookup (embedded memory store: synchronous; Redis: asynchronous and
 * bounded by a short timeout, a failure is a miss) and the store of a
 * complete answer. The stored value is one line of metadata followed by the
 * compact, non-streamed answer; a streamed request that hits is answered
 * with an SSE replay of it. Shard thread only (the memory store itself is
 * thread-safe). */
#ifndef LLMROUTER_CACHE_H
#define LLMROUTER_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "cache/memcache.h"
#include "http/request.h"

struct cJSON;
struct rds;

/* The backends a shard uses: the process-wide memory store (NULL when off)
 * and the shard's Redis client (NULL unless the backend is redis). */
typedef struct cache_ctx {
    mcache_t *mem;
    struct rds *rds;
} cache_ctx_t;

/* Decides lookup/store for a parsed, routed request and computes its key
 * (request_parse calls it with the body's root). */
void cache_prepare(req_t *req, const struct cJSON *root);

/* Starts the lookup. Returns true when the request is taken care of: a hit
 * was answered, or a Redis lookup is pending (its end either answers or
 * calls upstream_start). Returns false to go upstream now. */
bool cache_begin(req_t *req, const cache_ctx_t *cc);

/* Cancels a pending Redis lookup (the client left). */
void cache_cancel(req_t *req, const cache_ctx_t *cc);

/* Stores a complete answer (compact JSON body) when the request allows it
 * and completion_storable accepts it. */
void cache_store(req_t *req, const cache_ctx_t *cc, const char *body, size_t len);

/* Streaming: called once the stream commits (first event at absolute
 * offset first, bytes [first, first+len) already received) and for every
 * later chunk of bytes; feeds complete data events to the assembler. */
void cache_stream_begin(req_t *req, uint64_t first, const char *bytes, size_t len);
void cache_stream_bytes(req_t *req, const char *bytes, size_t len);
/* A complete data event [start, end) (absolute offsets) was scanned. */
void cache_stream_event(req_t *req, uint64_t start, uint64_t end, bool is_done);
/* The stream ended cleanly: store the assembled answer. */
void cache_stream_end(req_t *req, const cache_ctx_t *cc);

/* Frees what the cache attached to the request. */
void cache_req_free(req_t *req);

#endif
