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
    bool admin;            /* admin: true — also opens the admin endpoints */
} auth_key_t;

/* A secret that opens the admin endpoints (/dashboard, /v1/router/stats,
 * /metrics): observability.admin_key_* or observability.metrics_token_*.
 * Only its digest is kept. */
typedef struct auth_secret {
    uint8_t sha256[32];
    bool usable; /* false when its variable is unset: it never matches */
    size_t line, col; /* where it was configured (1-based), for messages */
} auth_secret_t;

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

/* Parses one admin secret: v names an environment variable holding it
 * (from_env) or is its SHA-256 in hex. what names the key in messages
 * ("observability.admin_key_env"). Errors and warnings go to c (an unset
 * variable is a warning: the secret is kept, unusable). Returns a new
 * secret (caller frees with free()), or NULL after an error. */
auth_secret_t *auth_secret_parse(ywalk_t *c, yaml_node_t *v, const char *what, bool from_env);

/* Whether /dashboard, /v1/router/stats and /metrics need a credential:
 * when proxy keys are configured, or an admin key or metrics token is.
 * Without any (loopback-only mode) they stay open. NULLs allowed. */
bool auth_admin_gated(const auth_t *keys, const auth_secret_t *admin,
                      const auth_secret_t *metrics);

/* True when the Authorization header value opens an admin endpoint:
 * "Bearer TOKEN" or "Basic base64(ANYNAME:TOKEN)" (what a browser sends
 * after its password prompt) where TOKEN is the admin key, a proxy key with
 * admin: true, or — for /metrics only (metrics_endpoint) — the metrics
 * token. Every candidate is compared in constant time, whatever matches.
 * All pointers may be NULL (then they match nothing). */
bool auth_admin_check(const auth_t *keys, const auth_secret_t *admin,
                      const auth_secret_t *metrics, bool metrics_endpoint,
                      const char *authorization);

/* The 401 answer of an admin endpoint, in OpenAI's shape (type
 * invalid_request_error, code invalid_api_key); malloc'd, caller frees.
 * missing: no Authorization header at all. */
char *auth_admin_error_body(bool missing, bool metrics_endpoint, size_t *len);

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
