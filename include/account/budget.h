/* budget: per-key budgets (USD per UTC day and per UTC calendar month) and
 * rate limits (requests and tokens per minute), and per-model daily USD
 * caps. A request reserves its estimated cost and tokens at admission
 * (budget_admit) and settles the actual amounts when it ends
 * (budget_settle), so concurrent requests cannot overrun a budget together.
 *
 * Counters are process-wide (all loop threads), kept in a striped hash
 * table (one mutex per stripe, never one global lock). With a Redis URL the
 * authoritative counters live in Redis, so several daemons enforce one
 * budget: admission is one Lua script (EVALSHA, EVAL on NOSCRIPT) that
 * checks every limit and reserves atomically; keys are
 * PREFIX key:NAME:min:YYYYMMDDHHMM (hash r, t), PREFIX key:NAME:day:YYYYMMDD,
 * PREFIX key:NAME:month:YYYYMM (integers, nano-USD) and
 * PREFIX model:NAME:day:YYYYMMDD, each expiring after its period. The local
 * counters are updated in Redis mode too, and take over when Redis fails
 * (logged once per outage, counted in budget_stats); a request never fails
 * because of Redis. Windows: fixed minute windows (UTC, aligned on the
 * minute), UTC days, UTC calendar months.
 *
 * Thread rules: a budget_t may be used from any thread at once. An rds_t
 * passed in belongs to the calling loop thread (see rds.h); callbacks run on
 * that thread. budget_free runs after every rds_t used with it is freed.
 * "No limit configured" means unlimited; a request whose estimated cost is
 * 0 (free models) is never refused by a USD budget. */
#ifndef LLMROUTER_BUDGET_H
#define LLMROUTER_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/auth.h"
#include "core/config.h"
#include "core/rds.h"
#include "core/yamlwalk.h"

typedef struct budget budget_t;
typedef struct budget_op budget_op_t;

/* The `budgets:` configuration section. */
typedef struct budget_cfg {
    char *redis_url;                    /* NULL: local counters only */
    unsigned redis_timeout_ms;          /* default 50 */
    char *key_prefix;                   /* default "llmrouter:budget:" */
    uint32_t default_max_output_tokens; /* when the request has no max_tokens; default 512 */
} budget_cfg_t;

/* Fills the defaults (call before budget_cfg_parse, or alone when the
 * section is absent). */
void budget_cfg_init(budget_cfg_t *bc);
/* Parses the `budgets:` mapping into bc (already initialised); errors go to
 * c. Returns false after an error. Keys: redis_url, redis_timeout_ms,
 * key_prefix, default_max_output_tokens. */
bool budget_cfg_parse(ywalk_t *c, yaml_node_t *map, budget_cfg_t *bc);
/* Frees what bc owns (not bc itself). */
void budget_cfg_free(budget_cfg_t *bc);
/* Parses a model's `daily_cap_usd` value (what: "models.NAME.daily_cap_usd");
 * 0 = no cap. Returns false after an error. */
bool budget_parse_model_cap(ywalk_t *c, yaml_node_t *v, const char *what, double *out);

enum budget_code {
    BUDGET_OK = 0,
    BUDGET_RPM,     /* rate_limit_rpm */
    BUDGET_TPM,     /* rate_limit_tpm */
    BUDGET_DAILY,   /* daily_budget_exceeded */
    BUDGET_MONTHLY, /* monthly_budget_exceeded */
    BUDGET_N_CODES
};

/* The API error code for a rejection ("rate_limit_rpm", ...); "ok" for OK. */
const char *budget_code_name(enum budget_code code);

/* What admission reserved; given back to budget_settle. Plain data: embed
 * it in the request. */
typedef struct budget_ticket {
    bool active;      /* something was reserved: settle once */
    bool redis;       /* reserved in Redis (else only locally) */
    int64_t nusd;     /* reserved cost, nano-USD */
    uint32_t tokens;  /* reserved tokens */
    int64_t minute;   /* unix minute of the reservation */
    int64_t day;      /* unix day (UTC) */
    int32_t month;    /* year * 12 + month - 1 (UTC) */
} budget_ticket_t;

typedef struct budget_verdict {
    enum budget_code code;   /* BUDGET_OK: admitted */
    uint32_t retry_after_s;  /* rejections: seconds until the window/period ends (>= 1) */
    bool should_retry;       /* false for USD budgets: send x-should-retry: false */
    budget_ticket_t ticket;  /* admitted: what to settle */
} budget_verdict_t;

/* Wall clock in unix seconds (UTC); tests inject their own. */
typedef int64_t (*budget_clock_fn)(void *arg);

/* Creates the process-wide state. bc is copied. clock NULL = time(2).
 * Returns NULL with a message in err when bc->redis_url is invalid. Free
 * with budget_free. */
budget_t *budget_new(const budget_cfg_t *bc, budget_clock_fn clock, void *clock_arg, char *err,
                     size_t errlen);
/* Frees everything, including Redis operations still pending (their rds_t
 * must already be freed, so their callbacks can no longer run). NULL is a
 * no-op. */
void budget_free(budget_t *b);

/* Where the shared counters live, for the caller to create one rds_t per
 * loop thread (rds_new(loop, addr, budget_redis_timeout_ms(b))); NULL when
 * no redis_url is configured. */
const rds_addr_t *budget_redis_addr(const budget_t *b);
unsigned budget_redis_timeout_ms(const budget_t *b);
uint32_t budget_default_max_output_tokens(const budget_t *b);

/* The estimate to reserve: prompt_tokens at m's input price plus
 * max_output_tokens (0 = the configured default) at its output price. */
double budget_estimate_usd(const budget_t *b, const cfg_model_t *m, uint32_t prompt_tokens,
                           uint32_t max_output_tokens);

typedef void (*budget_admit_cb)(void *arg, const budget_verdict_t *v);

#define BUDGET_PENDING 1

/* Admits (or refuses) a request of key (NULL when keys are off: always
 * admitted, nothing reserved) that is estimated to cost est_usd and use
 * est_tokens (prompt + max output) tokens. wait_ms: the longest the request
 * waits for Redis (rds_get's wait_ms; RDS_WAIT_ANY for the client's
 * timeout); past it, or at once when 0, the local counters decide.
 *  - Returns 0 when the verdict is known now (local mode, rds NULL, or a key
 *    with no limits): *out is filled and cb is never called.
 *  - Returns BUDGET_PENDING (Redis mode): cb(arg, verdict) runs later on
 *    this thread, exactly once, never inside this call, unless budget_cancel
 *    is called first; *op gets the handle, valid until then.
 * Never fails: when Redis does not answer, the local counters decide. */
int budget_admit(budget_t *b, rds_t *rds, unsigned wait_ms, const auth_key_t *key,
                 double est_usd, uint32_t est_tokens, budget_verdict_t *out, budget_admit_cb cb,
                 void *arg, budget_op_t **op);

/* Cancels a pending admission (the client went away): cb is never called.
 * A reservation Redis may already have made stays counted until its period
 * ends (errs on the safe side). NULL is a no-op. */
void budget_cancel(budget_t *b, budget_op_t *op);

/* Settles an admitted request: releases the reservation and counts the
 * actual cost (actual_usd < 0: unknown, the reservation stands as the cost)
 * and tokens. Streams included: call once when the request ends, whatever
 * happened (an answer that never came costs 0). Resets t->active; a ticket
 * that is not active is a no-op. Fire and forget in Redis mode. If the
 * period of the reservation is over, only Redis' expired keys see it. */
void budget_settle(budget_t *b, rds_t *rds, const auth_key_t *key, budget_ticket_t *t,
                   double actual_usd, uint32_t actual_tokens);

/* Counts usd spent on model (its configured name) against its daily cap
 * (daily_cap_usd; 0 = no cap, then nothing is counted). In Redis mode the
 * spend is added there and the local view refreshed from the total. */
void budget_model_spent(budget_t *b, rds_t *rds, const char *model, double daily_cap_usd,
                        double usd);

/* False when model has spent its daily cap today (local view, refreshed from
 * Redis by budget_model_spent): skip it in the chain. cap <= 0: true. */
bool budget_model_allowed(budget_t *b, const char *model, double daily_cap_usd);

/* Builds the 429 body for a rejection (OpenAI shape, code =
 * budget_code_name); malloc'd, caller frees; *len gets its length. */
char *budget_error_body(const budget_verdict_t *v, const auth_key_t *key, size_t *len);

typedef struct budget_stats {
    uint64_t admitted;
    uint64_t rejected[BUDGET_N_CODES]; /* by code; [BUDGET_OK] unused */
    uint64_t model_skips;              /* budget_model_allowed returned false */
    uint64_t redis_ok;                 /* Redis answered an admission/settle */
    uint64_t redis_fallbacks;          /* decisions taken locally because Redis failed */
    uint64_t redis_outages;            /* transitions to "Redis unreachable" */
    bool redis_down;                   /* the last Redis command failed */
} budget_stats_t;

void budget_get_stats(budget_t *b, budget_stats_t *out);

#endif
