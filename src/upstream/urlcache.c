/* urlcache: one shard's parsed upstream URLs (see upstream/urlcache.h). A
 * linear scan by hash: a shard sees a handful of distinct URLs (models x
 * endpoints), so 64 slots compared by a 64-bit hash beat a hash table's
 * bookkeeping. */
#include "upstream/urlcache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define URLCACHE_CAP 64

struct urlcache_entry {
    char *url; /* NULL: a free slot */
    size_t len;
    uint64_t hash;
    CURLU *u;
    unsigned holds; /* transfers using u */
    uint64_t used;  /* tick of the last hold, for eviction */
};

struct urlcache {
    urlcache_entry_t e[URLCACHE_CAP];
    uint64_t tick;
};

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

urlcache_t *urlcache_new(void)
{
    return xcalloc(1, sizeof(urlcache_t));
}

static void drop(urlcache_entry_t *e)
{
    curl_url_cleanup(e->u);
    free(e->url);
    memset(e, 0, sizeof *e);
}

void urlcache_free(urlcache_t *uc)
{
    if (uc == NULL)
        return;
    for (size_t i = 0; i < URLCACHE_CAP; i++)
        if (uc->e[i].url != NULL)
            drop(&uc->e[i]);
    free(uc);
}

urlcache_entry_t *urlcache_hold(urlcache_t *uc, const char *url)
{
    size_t len = strlen(url);
    uint64_t h = fnv1a(url, len);
    urlcache_entry_t *slot = NULL;
    CURLU *u;
    for (size_t i = 0; i < URLCACHE_CAP; i++) {
        urlcache_entry_t *e = &uc->e[i];
        if (e->url == NULL) {
            if (slot == NULL || slot->url != NULL)
                slot = e; /* a free slot beats any eviction */
            continue;
        }
        if (e->hash == h && e->len == len && memcmp(e->url, url, len) == 0) {
            e->holds++;
            e->used = ++uc->tick;
            return e;
        }
        if (e->holds == 0 && (slot == NULL || (slot->url != NULL && e->used < slot->used)))
            slot = e;
    }
    if (slot == NULL)
        return NULL; /* every entry is in use: the caller passes the text */
    u = curl_url();
    if (u == NULL)
        return NULL;
    /* the flags of libcurl's own parse of a CURLOPT_URL (url.c,
     * parseurlandfillconn, 7.88: no username ban, no path-as-is) */
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) !=
        CURLUE_OK) {
        curl_url_cleanup(u);
        return NULL;
    }
    if (slot->url != NULL)
        drop(slot);
    slot->url = xmalloc(len + 1);
    memcpy(slot->url, url, len + 1);
    slot->len = len;
    slot->hash = h;
    slot->u = u;
    slot->holds = 1;
    slot->used = ++uc->tick;
    return slot;
}

CURLU *urlcache_curlu(const urlcache_entry_t *e)
{
    return e->u;
}

void urlcache_release(urlcache_t *uc, urlcache_entry_t *e)
{
    (void)uc;
    if (e != NULL && e->holds > 0)
        e->holds--;
}

size_t urlcache_size(const urlcache_t *uc)
{
    size_t n = 0;
    for (size_t i = 0; i < URLCACHE_CAP; i++)
        n += uc->e[i].url != NULL;
    return n;
}
