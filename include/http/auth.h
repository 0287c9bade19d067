/* auth: proxy keys. Clients authenticate with "Authorization: Bearer KEY";
 * keys are configured by name (`keys:` section) with the secret in an
 * environment variable (key_env) or given as its SHA-256 (key_sha256). Only
 * SHA-256 digests are kept in memory. A presented token is hashed and
 * compared with every configured digest in constant time, so the time taken
 * does not depend on which key matched nor on how many bytes matched.
 * Each key also carries its budgets and rate limits (enforced by budget.c).
 *
 * An auth_t is built once at configuration load and is immutable
 * afterwards: any thread may call auth_check/auth_enabled concurrently.
 * auth_parse/auth_free run on the thread that loads the configuration. */
#ifndef LLMROUTER_AUTH_H
#define LLMROUTER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/yamlwalk.h"

typedef struct auth_key {
    char *name;            /* the key's configured name (owned by the auth_t) */
    uint8_t sha256[32];    /* digest of the secret */
    bool usable;           /* false when key_env names an unset/empty variable */
    double daily_usd;      /* per UTC day, 0 = unlimited */
    double monthly_usd;    /* per UTC calendar month, 0 = unlimited */
    uint32_t rpm;          /* requests per minute, 0 = unlimited */
    uint32_t tpm;          /* tokens per minute, 0 = unlimited */
} auth_key_t;

typedef struct auth auth_t;

/* Parses the `keys:` mapping (map: its value node) into a new table.
 * Errors and warnings go to c (an unset key_env is a warning: that key never
 * matches, so its clients get 401). Returns the table (caller frees with
 * auth_free), or NULL when map has errors (counted in c->nerr). An empty
 * mapping gives a table with no keys (auth_enabled false). */
auth_t *auth_parse(ywalk_t *c, yaml_node_t *map);

/* Frees the table and every key in it; NULL is a no-op. Pointers returned by
 * auth_check/auth_key_at become invalid. */
void auth_free(auth_t *a);

/* True when at least one key is configured (even an unusable one): every
 * request must then present a valid key. NULL: false. */
bool auth_enabled(const auth_t *a);

/* Number of keys, and the i-th (borrowed; valid as long as a). */
size_t auth_count(const auth_t *a);
const auth_key_t *auth_key_at(const auth_t *a, size_t i);

/* The key presented in an Authorization header value ("Bearer TOKEN",
 * scheme case-insensitive, surrounding blanks ignored), or NULL when the
 * header is NULL, malformed, or matches no usable key. The comparison runs
 * over every key whatever matches. Borrowed; valid as long as a. */
const auth_key_t *auth_check(const auth_t *a, const char *authorization);

/* Constant-time equality of n bytes: the time depends only on n. */
bool auth_ct_equal(const void *x, const void *y, size_t n);

/* True when host (a listen address as configured: "127.0.0.1", "::1",
 * "[::1]", "localhost", any 127.0.0.0/8 address, "::ffff:127.x.y.z") can only
 * be reached from this machine. Wildcards ("0.0.0.0", "::", "") and every
 * other address are not loopback. No DNS. */
bool auth_listen_is_loopback(const char *host);

/* The 401 answer: body in OpenAI's shape (type invalid_request_error, code
 * invalid_api_key), malloc'd, caller frees; *len gets its length. missing:
 * no Authorization header at all (changes only the message). */
char *auth_error_body(bool missing, size_t *len);

#endif
