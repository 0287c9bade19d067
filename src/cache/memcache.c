/* memcache: striped, byte-bounded LRU store with TTLs.
 *
 * The key is already a SHA-256, so its first bytes pick the stripe and its
 * next bytes the bucket. Each stripe owns max_bytes / STRIPES. An entry is
 * unlinked from its stripe when evicted, expired or replaced, and freed when
 * its last reference goes (a request may still be sending it). */
#include "cache/memcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define STRIPES 16
#define ENTRY_OVERHEAD (sizeof(mcache_entry_t) + 32)

typedef struct stripe {
    pthread_mutex_t lock;
    mcache_entry_t **buckets;
    size_t nbuckets; /* power of two */
    size_t entries, bytes, max_bytes;
    /* sentinel: lru->_next is the most recently used. Allocated apart: an
     * entry ends in a flexible array, so it cannot sit inside a struct. */
    mcache_entry_t *lru;
    uint64_t hits, misses, inserts, evictions, expired;
} stripe_t;

struct mcache {
    stripe_t s[STRIPES];
    size_t max_bytes;
};

static size_t cost(const mcache_entry_t *e)
{
    return e->len + ENTRY_OVERHEAD;
}

static size_t bucket_of(const stripe_t *st, const uint8_t *key)
{
    uint64_t h;
    memcpy(&h, key + 8, sizeof h);
    return (size_t)(h & (st->nbuckets - 1));
}

mcache_t *mcache_new(size_t max_bytes)
{
    mcache_t *c = xcalloc(1, sizeof *c);
    c->max_bytes = max_bytes;
    for (int i = 0; i < STRIPES; i++) {
        stripe_t *st = &c->s[i];
        pthread_mutex_init(&st->lock, NULL);
        st->nbuckets = 256;
        st->buckets = xcalloc(st->nbuckets, sizeof *st->buckets);
        st->max_bytes = max_bytes / STRIPES;
        st->lru = xcalloc(1, sizeof *st->lru);
        st->lru->_next = st->lru->_prev = st->lru;
    }
    return c;
}

static void entry_unref(mcache_entry_t *e)
{
    if (atomic_fetch_sub_explicit(&e->_refs, 1, memory_order_acq_rel) == 1)
        free(e);
}

void mcache_release(mcache_entry_t *e)
{
    if (e != NULL)
        entry_unref(e);
}

void mcache_free(mcache_t *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < STRIPES; i++) {
        stripe_t *st = &c->s[i];
        mcache_entry_t *e = st->lru->_next;
        while (e != st->lru) {
            mcache_entry_t *n = e->_next;
            entry_unref(e);
            e = n;
        }
        free(st->buckets);
        free(st->lru);
        pthread_mutex_destroy(&st->lock);
    }
    free(c);
}

static stripe_t *stripe_of(mcache_t *c, const uint8_t *key)
{
    return &c->s[key[0] % STRIPES];
}

/* Unlinks e from its stripe (lock held) and drops the stripe's reference. */
static void unlink_entry(stripe_t *st, mcache_entry_t *e)
{
    mcache_entry_t **pp = &st->buckets[bucket_of(st, e->key)];
    while (*pp && *pp != e)
        pp = &(*pp)->_hnext;
    if (*pp)
        *pp = e->_hnext;
    e->_prev->_next = e->_next;
    e->_next->_prev = e->_prev;
    st->entries--;
    st->bytes -= cost(e);
    entry_unref(e);
}

static void to_front(stripe_t *st, mcache_entry_t *e)
{
    e->_prev->_next = e->_next;
    e->_next->_prev = e->_prev;
    e->_next = st->lru->_next;
    e->_prev = st->lru;
    st->lru->_next->_prev = e;
    st->lru->_next = e;
}

static mcache_entry_t *find(stripe_t *st, const uint8_t *key)
{
    mcache_entry_t *e = st->buckets[bucket_of(st, key)];
    while (e && memcmp(e->key, key, CACHEKEY_LEN) != 0)
        e = e->_hnext;
    return e;
}

mcache_entry_t *mcache_get(mcache_t *c, const uint8_t key[CACHEKEY_LEN], uint64_t now_ms)
{
    stripe_t *st = stripe_of(c, key);
    mcache_entry_t *e;
    pthread_mutex_lock(&st->lock);
    e = find(st, key);
    if (e && e->expires_ms <= now_ms) {
        unlink_entry(st, e);
        st->expired++;
        e = NULL;
    }
    if (e) {
        to_front(st, e);
        atomic_fetch_add_explicit(&e->_refs, 1, memory_order_relaxed);
        st->hits++;
    } else {
        st->misses++;
    }
    pthread_mutex_unlock(&st->lock);
    return e;
}

static void grow(stripe_t *st)
{
    size_t n = st->nbuckets * 2;
    mcache_entry_t **b = xcalloc(n, sizeof *b);
    for (size_t i = 0; i < st->nbuckets; i++) {
        mcache_entry_t *e = st->buckets[i];
        while (e) {
            mcache_entry_t *next = e->_hnext;
            uint64_t h;
            size_t k;
            memcpy(&h, e->key + 8, sizeof h);
            k = (size_t)(h & (n - 1));
            e->_hnext = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(st->buckets);
    st->buckets = b;
    st->nbuckets = n;
}

void mcache_put(mcache_t *c, const uint8_t key[CACHEKEY_LEN], const char *value, size_t len,
                unsigned ttl_s, int64_t created, uint64_t now_ms)
{
    stripe_t *st = stripe_of(c, key);
    mcache_entry_t *e, *old;
    size_t b;
    if (len + ENTRY_OVERHEAD > st->max_bytes || ttl_s == 0)
        return;
    e = malloc(sizeof *e + len);
    if (e == NULL)
        return; /* the cache is an optimisation: never fail for it */
    atomic_init(&e->_refs, 1); /* the stripe's reference */
    memcpy(e->key, key, CACHEKEY_LEN);
    e->created = created;
    e->expires_ms = now_ms + (uint64_t)ttl_s * 1000u;
    e->len = len;
    memcpy(e->value, value, len);
    pthread_mutex_lock(&st->lock);
    old = find(st, key);
    if (old)
        unlink_entry(st, old);
    /* evict from the cold end until it fits */
    while (st->bytes + cost(e) > st->max_bytes && st->lru->_prev != st->lru) {
        unlink_entry(st, st->lru->_prev);
        st->evictions++;
    }
    if (st->entries + 1 > st->nbuckets)
        grow(st);
    b = bucket_of(st, key);
    e->_hnext = st->buckets[b];
    st->buckets[b] = e;
    e->_prev = st->lru;
    e->_next = st->lru->_next;
    st->lru->_next->_prev = e;
    st->lru->_next = e;
    st->entries++;
    st->bytes += cost(e);
    st->inserts++;
    pthread_mutex_unlock(&st->lock);
}

void mcache_get_stats(mcache_t *c, mcache_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->max_bytes = c->max_bytes;
    for (int i = 0; i < STRIPES; i++) {
        stripe_t *st = &c->s[i];
        pthread_mutex_lock(&st->lock);
        out->entries += st->entries;
        out->bytes += st->bytes;
        out->hits += st->hits;
        out->misses += st->misses;
        out->inserts += st->inserts;
        out->evictions += st->evictions;
        out->expired += st->expired;
        pthread_mutex_unlock(&st->lock);
    }
}
