/* cachekey: the response-cache key of a request — SHA-256 over a canonical
 * form of everything that can change the answer: the endpoint, the routed
 * tier or chain, the scope (a proxy key's name when the cache is per key) and
 * every body field except those known not to (model — replaced by the route
 * —, stream, stream_options, user). Canonical: object keys sorted bytewise,
 * no whitespace, numbers in one spelling, strings re-escaped, so key order,
 * spacing and number spelling never split entries, while any other field —
 * known or not — always does. Pure functions; any thread. */
#ifndef LLMROUTER_CACHEKEY_H
#define LLMROUTER_CACHEKEY_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct cJSON;

#define CACHEKEY_LEN 32

/* Appends the canonical serialisation of a JSON value to out (for tests and
 * for the key). Top-level object members named in skip (a NULL-terminated
 * list, may be NULL) are left out. Strings are expected to be valid UTF-8
 * without NUL (request bodies pass json_check's JSON_CHECK_TEXT first), so
 * the form is one-to-one. Returns 0, or -1 if out's cap was hit or a number
 * is not exactly representable (not finite, or an integer beyond 2^53):
 * such a request must not be cached. */
int cachekey_canonical(const struct cJSON *v, const char *const *skip, buf_t *out);

/* Computes the key of a request body root for endpoint (e.g.
 * "/chat/completions"), route (a tier name or an explicit chain's model
 * names) and scope ("" unless per-key caching). Returns 0 or -1. */
int cachekey_compute(const struct cJSON *root, const char *endpoint, const char *route,
                     const char *scope, uint8_t key[CACHEKEY_LEN]);

/* Lower-case hex of a key (out: 2 * CACHEKEY_LEN + 1 bytes). */
void cachekey_hex(const uint8_t key[CACHEKEY_LEN], char *out);

#endif
