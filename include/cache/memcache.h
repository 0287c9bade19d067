/* memcache: the embedded response cache — a process-wide store of
 * immutable, reference-counted entries, bounded by bytes, with TTLs and LRU
 * eviction. The one piece of mutable state shared by the loop threads: it is
 * split into stripes, each with its own lock, hash table and LRU list, so a
 * lookup takes one uncontended mutex for well under a microsecond (see
 * docs/architecture.md). Every function is thread-safe. */
#ifndef LLMROUTER_MEMCACHE_H
#define LLMROUTER_MEMCACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cachekey.h"

typedef struct mcache mcache_t;

/* An entry: the stored value (bytes) and when it was stored. Immutable while
 * referenced; release it with mcache_release. */
typedef struct mcache_entry {
    atomic_uint _refs;
    uint8_t key[CACHEKEY_LEN];
    int64_t created;     /* unix seconds, for Age */
    uint64_t expires_ms; /* monotonic */
    size_t len;
    struct mcache_entry *_hnext, *_prev, *_next; /* stripe hash chain and LRU */
    char value[];        /* len bytes */
} mcache_entry_t;

typedef struct mcache_stats {
    uint64_t entries, bytes, max_bytes;
    uint64_t hits, misses, inserts, evictions, expired;
} mcache_stats_t;

/* A store of at most max_bytes (values plus per-entry overhead). */
mcache_t *mcache_new(size_t max_bytes);
/* All entries must have been released. */
void mcache_free(mcache_t *c);

/* Returns a referenced entry for key that has not expired at now_ms, or
 * NULL. Marks it most recently used. */
mcache_entry_t *mcache_get(mcache_t *c, const uint8_t key[CACHEKEY_LEN], uint64_t now_ms);
/* Drops a reference taken by mcache_get. */
void mcache_release(mcache_entry_t *e);

/* Stores a copy of value under key for ttl_s seconds (replacing an older
 * entry), evicting least recently used entries of the stripe to fit. A value
 * larger than a stripe's share of max_bytes is not stored. */
void mcache_put(mcache_t *c, const uint8_t key[CACHEKEY_LEN], const char *value, size_t len,
                unsigned ttl_s, int64_t created, uint64_t now_ms);

void mcache_get_stats(mcache_t *c, mcache_stats_t *out);

#endif
