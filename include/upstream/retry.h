/* retry: what a failed upstream attempt leads to — the failure policy of a
 * provider (retry the same model, fail over to the next one, or pass the
 * answer through to the client), the exponential backoff with full jitter
 * between retries, a provider's Retry-After honoured up to a cap, and the
 * request's deadline. Pure functions over the configuration snapshot and
 * the numbers the caller passes in: no clock, no randomness of its own, no
 * I/O; any thread. The state machine that acts on the decisions (timers,
 * transfers) is upstream.c; see docs/internals/upstream.md. */
#ifndef LLMROUTER_UPSTREAM_RETRY_H
#define LLMROUTER_UPSTREAM_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

/* How an attempt failed. RETRY_KIND_STATUS: the provider answered an HTTP
 * status (looked up in the policy by code); the others have no answer to
 * pass through. Their configuration names are retry_kind_name's. */
enum retry_kind {
    RETRY_KIND_STATUS = 0,
    RETRY_KIND_TIMEOUT,  /* first_byte_timeout_ms, idle_timeout_ms, timeout_ms */
    RETRY_KIND_CONNECT,  /* no connection: refused, unresolvable, connect timeout (nothing sent) */
    RETRY_KIND_RESET,    /* the connection broke after the request went out */
    RETRY_KIND_INVALID,  /* a 2xx whose answer is unusable (bad JSON, error event, too large) */
    RETRY_KIND_STALE,    /* a reused keep-alive connection closed before any response byte */
    RETRY_KIND_COUNT
};

/* What the policy does with an outcome. */
enum retry_action { RETRY_ACT_FAILOVER = 0, RETRY_ACT_RETRY, RETRY_ACT_PASS };

/* Defaults of a provider's retry settings (docs/configuration.md). */
#define RETRY_DEFAULT_BACKOFF_MS 200
#define RETRY_DEFAULT_BACKOFF_MAX_MS 2000
#define RETRY_DEFAULT_AFTER_MAX_MS 2000
#define RETRY_MAX_RETRIES 10

/* "timeout", "connect", "reset", "invalid_answer", "stale_connection"
 * ("status" for RETRY_KIND_STATUS). A static string. */
const char *retry_kind_name(enum retry_kind kind);

/* Fills p with the default policy: today's failover rules (401, 403, 408,
 * 429, 3xx, 5xx and every transport failure fail over, other 4xx pass
 * through), with 408, 429, 500, 502, 503, 504, 529, connect, reset and
 * stale_connection marked as retryable — which only matters with retries
 * > 0, except stale_connection, which gets one retry of its own. */
void retry_policy_default(cfg_retry_t *p);

/* One entry of retry_on / failover_on / pass_through: an HTTP status
 * "300".."599", a class "3xx".."5xx" (any case), or a kind name. Returns 0
 * and sets *lo..*hi to the statuses it covers (kind RETRY_KIND_STATUS), or
 * *kind to the named kind; -1 when s is none of them. */
int retry_parse_item(const char *s, enum retry_kind *kind, unsigned *lo, unsigned *hi);

/* The action for an attempt that failed with kind (and, for
 * RETRY_KIND_STATUS, HTTP status; a status outside 300..599 fails over). */
enum retry_action retry_action_of(const cfg_retry_t *p, enum retry_kind kind, unsigned status);

/* The wait before retry number n (1 for the first retry): full jitter over
 * an exponential window, uniform in [0, min(max_ms, base_ms * 2^(n-1))],
 * from the random value rnd (any 32 bits). */
uint32_t retry_backoff_ms(uint32_t base_ms, uint32_t max_ms, unsigned n, uint32_t rnd);

/* What the caller knows about the failed attempt and its model. */
typedef struct retry_input {
    enum retry_kind kind;
    unsigned status;        /* RETRY_KIND_STATUS: the HTTP status */
    int64_t retry_after_ms; /* the answer's Retry-After / retry-after-ms, -1 none */
    unsigned retries;       /* the model's `retries` */
    unsigned used;          /* retries of this model so far that counted against them */
    bool stale_free_used;   /* this model's free stale_connection retry is spent */
    int64_t time_left_ms;   /* until the request's deadline; -1 without one */
    uint32_t rnd;           /* random bits for the jitter */
} retry_input_t;

typedef struct retry_plan {
    bool retry;         /* retry the same model (else fail over) */
    bool free_retry;    /* it is the free stale_connection retry (not counted against retries) */
    bool fresh_connect; /* on a new connection */
    uint32_t delay_ms;  /* wait this long first */
    const char *why_not; /* !retry and the policy said retry: why not (static), else NULL */
} retry_plan_t;

/* Decides whether a failed attempt is retried, and after how long: the
 * policy must say retry; a stale connection's first retry is free and
 * immediate, on a fresh connection; otherwise a retry needs used < retries,
 * waits retry_backoff_ms (at least the provider's Retry-After, and a
 * Retry-After over after_max_ms fails over at once) and must start before
 * the deadline. */
retry_plan_t retry_decide(const cfg_retry_t *p, const retry_input_t *in);

/* The deadline of a request in ms (0 = none): cfg_ms (routing.deadline_ms)
 * unless the client sent x-router-deadline-ms (header, NULL when absent), a
 * whole number of ms >= 1, capped at max_ms (routing.max_deadline_ms).
 * Returns 0, or -1 when the header is not such a number. */
int retry_deadline_ms(const char *header, uint32_t cfg_ms, uint32_t max_ms, uint32_t *out);

#endif
