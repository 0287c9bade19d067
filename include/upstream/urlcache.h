/* urlcache: one shard's parsed upstream URLs. libcurl 7.88 parses and
 * re-normalises a CURLOPT_URL on every transfer (curl_url_set plus a
 * curl_url_get of the whole URL, ~11,000 instructions); a transfer given the
 * same URL already parsed (CURLOPT_CURLU) skips both. Entries are keyed by
 * the URL's text, so a reloaded configuration never meets a stale one; an
 * entry is held by each transfer that uses it and only an unheld one is
 * evicted (least recently used) when the cache is full. Shard thread only:
 * no handle is shared with another thread. */
#ifndef LLMROUTER_UPSTREAM_URLCACHE_H
#define LLMROUTER_UPSTREAM_URLCACHE_H

#include <curl/curl.h>

typedef struct urlcache urlcache_t;
typedef struct urlcache_entry urlcache_entry_t;

/* A cache of at most 64 URLs; aborts when out of memory. */
urlcache_t *urlcache_new(void);

/* Frees the cache and its parsed URLs: no transfer may still use one. */
void urlcache_free(urlcache_t *uc);

/* The entry of url (a NUL-terminated absolute URL), parsed as libcurl parses
 * a CURLOPT_URL (curl_url_set with CURLU_GUESS_SCHEME |
 * CURLU_NON_SUPPORT_SCHEME), held once more; NULL when url does not parse
 * (the caller passes the text to libcurl, which reports the error as before)
 * or every entry is held. */
urlcache_entry_t *urlcache_hold(urlcache_t *uc, const char *url);

/* The parsed URL of a held entry, for CURLOPT_CURLU: libcurl only reads it
 * (it works on its own copy, curl_url_dup). Valid while the entry is held. */
CURLU *urlcache_curlu(const urlcache_entry_t *e);

/* Gives back one hold of e (NULL: nothing). */
void urlcache_release(urlcache_t *uc, urlcache_entry_t *e);

/* Entries in the cache (tests). */
size_t urlcache_size(const urlcache_t *uc);

#endif
