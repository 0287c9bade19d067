/* retry: the failure policy of a provider and the timing of retries. A
 * policy is a table from every outcome (HTTP 300..599 and the kinds of
 * enum retry_kind) to an action, filled with the defaults and then with
 * what the configuration lists (core/config_upstream.c). The decision for
 * one failed attempt (retry_decide) and the request's deadline are pure
 * functions of their inputs, so the unit tests pin them down exactly
 * (tests/unit/upstream/test_retry.c). */
#include "upstream/retry.h"

#include <string.h>
#include <strings.h>

#include "core/util.h"

_Static_assert(RETRY_KIND_COUNT <= sizeof(((cfg_retry_t *)0)->kind),
               "cfg_retry_t.kind holds every retry kind");

static const char *const kind_names[RETRY_KIND_COUNT] = {
    [RETRY_KIND_STATUS] = "status",   [RETRY_KIND_TIMEOUT] = "timeout",
    [RETRY_KIND_CONNECT] = "connect", [RETRY_KIND_RESET] = "reset",
    [RETRY_KIND_INVALID] = "invalid_answer", [RETRY_KIND_STALE] = "stale_connection",
};

const char *retry_kind_name(enum retry_kind kind)
{
    return (unsigned)kind < RETRY_KIND_COUNT ? kind_names[kind] : "?";
}

void retry_policy_default(cfg_retry_t *p)
{
    static const unsigned retryable[] = {408, 429, 500, 502, 503, 504, 529};
    memset(p, 0, sizeof *p);
    for (unsigned s = 300; s < 600; s++) {
        /* today's rule (upstream.c before retries): a client-fault 4xx is
         * the client's answer; a bad key (401/403), a timeout (408), a rate
         * limit, a redirect or a server error is the provider's problem */
        bool pass = s >= 400 && s < 500 && s != 401 && s != 403 && s != 408 && s != 429;
        p->status[s - 300] = pass ? RETRY_ACT_PASS : RETRY_ACT_FAILOVER;
    }
    for (size_t i = 0; i < UTIL_ARRAY_LEN(retryable); i++)
        p->status[retryable[i] - 300] = RETRY_ACT_RETRY;
    p->kind[RETRY_KIND_TIMEOUT] = RETRY_ACT_FAILOVER;
    p->kind[RETRY_KIND_INVALID] = RETRY_ACT_FAILOVER;
    p->kind[RETRY_KIND_CONNECT] = RETRY_ACT_RETRY;
    p->kind[RETRY_KIND_RESET] = RETRY_ACT_RETRY;
    p->kind[RETRY_KIND_STALE] = RETRY_ACT_RETRY;
    p->retries = 0;
    p->backoff_ms = RETRY_DEFAULT_BACKOFF_MS;
    p->backoff_max_ms = RETRY_DEFAULT_BACKOFF_MAX_MS;
    p->after_max_ms = RETRY_DEFAULT_AFTER_MAX_MS;
}

int retry_parse_item(const char *s, enum retry_kind *kind, unsigned *lo, unsigned *hi)
{
    size_t n = strlen(s);
    uint64_t v;
    for (int k = RETRY_KIND_TIMEOUT; k < RETRY_KIND_COUNT; k++)
        if (strcmp(s, kind_names[k]) == 0) {
            *kind = (enum retry_kind)k;
            return 0;
        }
    if (n == 3 && s[0] >= '3' && s[0] <= '5' && (s[1] == 'x' || s[1] == 'X') &&
        (s[2] == 'x' || s[2] == 'X')) {
        *kind = RETRY_KIND_STATUS;
        *lo = (unsigned)(s[0] - '0') * 100;
        *hi = *lo + 99;
        return 0;
    }
    if (n == 3 && util_parse_u64(s, n, &v) == 0 && v >= 300 && v <= 599) {
        *kind = RETRY_KIND_STATUS;
        *lo = *hi = (unsigned)v;
        return 0;
    }
    return -1;
}

enum retry_action retry_action_of(const cfg_retry_t *p, enum retry_kind kind, unsigned status)
{
    if (kind == RETRY_KIND_STATUS)
        return status >= 300 && status < 600 ? (enum retry_action)p->status[status - 300]
                                             : RETRY_ACT_FAILOVER;
    if ((unsigned)kind >= RETRY_KIND_COUNT)
        return RETRY_ACT_FAILOVER;
    /* nothing to pass through without an answer */
    return p->kind[kind] == RETRY_ACT_RETRY ? RETRY_ACT_RETRY : RETRY_ACT_FAILOVER;
}

uint32_t retry_backoff_ms(uint32_t base_ms, uint32_t max_ms, unsigned n, uint32_t rnd)
{
    uint64_t window = base_ms;
    for (unsigned i = 1; i < n && window < max_ms; i++)
        window *= 2;
    if (window > max_ms)
        window = max_ms;
    return (uint32_t)(rnd % (window + 1));
}

retry_plan_t retry_decide(const cfg_retry_t *p, const retry_input_t *in)
{
    retry_plan_t r = {0};
    uint64_t delay;
    if (retry_action_of(p, in->kind, in->status) != RETRY_ACT_RETRY)
        return r;
    if (in->kind == RETRY_KIND_STALE && !in->stale_free_used) {
        /* the idle keep-alive close race: the provider closed a pooled
         * connection as the request went out; a new connection, at once */
        r.free_retry = true;
        delay = 0;
    } else if (in->used >= in->retries) {
        r.why_not = in->retries > 0 ? "its retries are spent" : NULL;
        return r;
    } else {
        delay = retry_backoff_ms(p->backoff_ms, p->backoff_max_ms, in->used + 1, in->rnd);
    }
    if (in->retry_after_ms >= 0 && !r.free_retry) {
        if (in->retry_after_ms > (int64_t)p->after_max_ms) {
            /* the provider asks for a longer pause than is worth waiting:
             * the next model is the better bet */
            r.free_retry = false;
            r.why_not = "its Retry-After is over retry_after_max_ms";
            return r;
        }
        if ((uint64_t)in->retry_after_ms > delay)
            delay = (uint64_t)in->retry_after_ms;
    }
    if (in->time_left_ms >= 0 && (int64_t)delay >= in->time_left_ms) {
        r.free_retry = false;
        r.why_not = "the wait would pass the deadline";
        return r;
    }
    r.retry = true;
    r.fresh_connect = in->kind == RETRY_KIND_STALE;
    r.delay_ms = (uint32_t)delay;
    return r;
}

int retry_deadline_ms(const char *header, uint32_t cfg_ms, uint32_t max_ms, uint32_t *out)
{
    uint64_t v;
    if (header == NULL) {
        *out = cfg_ms;
        return 0;
    }
    if (util_parse_u64(header, strlen(header), &v) < 0 || v == 0)
        return -1;
    *out = v > max_ms ? max_ms : (uint32_t)v;
    return 0;
}
