/* cors: the decisions of cross-origin resource sharing for browser clients
 * (server.cors): which origins may call the router, which request headers a
 * preflight may allow, and the response headers a page may read. Pure
 * functions on the configuration snapshot and header values; server.c adds
 * the headers. Any thread. */
#ifndef LLMROUTER_CORS_H
#define LLMROUTER_CORS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

/* Longest Origin value we match (and echo); longer ones are not allowed. */
#define CORS_MAX_ORIGIN 256
/* Longest Access-Control-Request-Headers value a preflight may carry. */
#define CORS_MAX_REQUEST_HEADERS 2048

/* Methods a preflight allows: every method the router serves. */
#define CORS_ALLOW_METHODS "GET, HEAD, POST, OPTIONS"

/* Response headers a page may read besides the CORS-safelisted ones: the
 * request id, the routing and cache headers, and the retry hints. */
#define CORS_EXPOSE_HEADERS                                                                        \
    "x-request-id, x-router-tier, x-router-rule, x-router-model, x-router-provider, "             \
    "x-router-attempts, x-router-skipped, x-router-cost-usd, x-router-cost-estimated, x-cache, age, retry-after, "   \
    "x-should-retry, x-router-arm"

/* Checks one entry of server.cors.origins: "scheme://host[:port]", or
 * a wildcard "scheme://" followed by "*.domain[:port]" for any subdomain. Returns 0, or -1
 * with a reason in why (NUL-terminated). */
int cors_check_origin_pattern(const char *s, char *why, size_t whylen);

/* Checks one entry of server.cors.allow_headers: a header name, or a prefix
 * ending in '*' ("x-stainless-*"). Returns 0, or -1 with a reason. */
int cors_check_header_pattern(const char *s, char *why, size_t whylen);

/* Whether origin (the request's Origin header, may be NULL) may call the
 * router under c. Exact entries compare case-insensitively; wildcard entries
 * need at least one more DNS label. Always false when CORS is off. */
bool cors_origin_allowed(const cfg_cors_t *c, const char *origin);

/* The value of Access-Control-Allow-Headers for a preflight that asked for
 * requested (Access-Control-Request-Headers, may be NULL): the requested
 * names that c allows, lower-cased, in order, joined by ", " (all of them
 * when c->allow_headers is NULL). Returns a malloc'd string (caller frees;
 * "" when none) with its length in *len, or NULL when requested is not a
 * comma-separated list of header names or is longer than
 * CORS_MAX_REQUEST_HEADERS. */
char *cors_allow_headers(const cfg_cors_t *c, const char *requested, size_t *len);

#endif
