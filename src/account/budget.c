/* budget: per-key budgets and rate limits, per-model daily caps (see
 * include/budget.h). Amounts are integers in nano-USD, so sums are exact and
 * Redis can add them with INCRBY. Local counters: a fixed table of stripes,
 * each a mutex and a chained list of entries (one per key name and one per
 * capped model name); entries are created on first use and live as long as
 * the budget_t (their number is bounded by the names configured). */
#include "account/budget.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/apierror.h"
#include "core/log.h"
#include "upstream/provider.h"
#include "core/util.h"

#define N_STRIPES 64
#define NUSD 1e9

typedef struct entry {
    struct entry *next;
    char kind; /* 'k' key, 'm' model */
    char *name;
    int64_t minute; /* window of reqs/toks */
    uint64_t reqs, toks;
    int64_t day;
    int64_t day_nusd; /* spent + reserved */
    int32_t month;
    int64_t month_nusd;
} entry_t;

typedef struct stripe {
    pthread_mutex_t mu;
    entry_t *head;
} stripe_t;

struct budget_op {
    budget_t *b;
    rds_t *rds;
    rds_op_t *rop;
    budget_op_t *prev, *next; /* b's list of pending operations */
    enum { OP_ADMIT, OP_SETTLE, OP_MODEL } kind;
    bool tried_eval;
    uint64_t deadline_ms;  /* admit: the request waits for Redis until then; 0: no bound */
    const auth_key_t *key; /* admit: borrowed for the op's life */
    char *model;           /* model: name */
    budget_verdict_t v;    /* admit: the reservation asked for */
    budget_admit_cb cb;
    void *arg;
    int argc;
    char *argv[16];
    size_t argvlen[16];
};

struct budget {
    budget_cfg_t cfg;
    bool has_redis;
    rds_addr_t addr;
    budget_clock_fn clock;
    void *clock_arg;
    stripe_t stripes[N_STRIPES];
    char sha_admit[41], sha_settle[41], sha_model[41];
    pthread_mutex_t ops_mu;
    budget_op_t *ops;
    atomic_uint_fast64_t admitted, rejected[BUDGET_N_CODES], model_skips, redis_ok,
        redis_fallbacks, redis_outages;
    atomic_bool redis_down;
};

/* ---- Lua scripts (Redis mode) ---- */

/* KEYS: minute hash, day, month. ARGV: rpm, tpm, daily cap, monthly cap
 * (nano-USD, 0 = none), tokens, cost (nano-USD), day ttl, month ttl.
 * Returns {code, 0}: 0 admitted and reserved, else the budget_code. */
static const char LUA_ADMIT[] =
    "local rpm,tpm=tonumber(ARGV[1]),tonumber(ARGV[2])\n"
    "local dcap,mcap=tonumber(ARGV[3]),tonumber(ARGV[4])\n"
    "local tok,cost=tonumber(ARGV[5]),tonumber(ARGV[6])\n"
    "local r=tonumber(redis.call('HGET',KEYS[1],'r') or '0')\n"
    "local t=tonumber(redis.call('HGET',KEYS[1],'t') or '0')\n"
    "if rpm>0 and r+1>rpm then return {1,r} end\n"
    "if tpm>0 and t>0 and t+tok>tpm then return {2,t} end\n"
    "local d=tonumber(redis.call('GET',KEYS[2]) or '0')\n"
    "if dcap>0 and cost>0 and d+cost>dcap then return {3,d} end\n"
    "local m=tonumber(redis.call('GET',KEYS[3]) or '0')\n"
    "if mcap>0 and cost>0 and m+cost>mcap then return {4,m} end\n"
    "redis.call('HINCRBY',KEYS[1],'r',1)\n"
    "redis.call('HINCRBY',KEYS[1],'t',ARGV[5])\n"
    "redis.call('EXPIRE',KEYS[1],120)\n"
    "if cost>0 then\n"
    " redis.call('INCRBY',KEYS[2],ARGV[6]) redis.call('EXPIRE',KEYS[2],ARGV[7])\n"
    " redis.call('INCRBY',KEYS[3],ARGV[6]) redis.call('EXPIRE',KEYS[3],ARGV[8])\n"
    "end\n"
    "return {0,0}\n";

/* KEYS: minute hash, day, month. ARGV: token delta, cost delta, day ttl,
 * month ttl. */
static const char LUA_SETTLE[] =
    "if ARGV[1]~='0' and redis.call('EXISTS',KEYS[1])==1 then\n"
    " redis.call('HINCRBY',KEYS[1],'t',ARGV[1]) end\n"
    "if ARGV[2]~='0' then\n"
    " redis.call('INCRBY',KEYS[2],ARGV[2]) redis.call('EXPIRE',KEYS[2],ARGV[3])\n"
    " redis.call('INCRBY',KEYS[3],ARGV[2]) redis.call('EXPIRE',KEYS[3],ARGV[4])\n"
    "end\n"
    "return 0\n";

/* KEYS: model day. ARGV: cost, ttl. Returns the day's total. */
static const char LUA_MODEL[] =
    "local v=redis.call('INCRBY',KEYS[1],ARGV[1])\n"
    "redis.call('EXPIRE',KEYS[1],ARGV[2])\n"
    "return v\n";

/* ---- time ---- */

static int64_t clock_default(void *arg)
{
    (void)arg;
    return (int64_t)time(NULL);
}

static int32_t month_of(int64_t now)
{
    time_t t = (time_t)now;
    struct tm tm;
    gmtime_r(&t, &tm);
    return (int32_t)((tm.tm_year + 1900) * 12 + tm.tm_mon);
}

/* Unix seconds at which month index mi (year*12+mon) begins. */
static int64_t month_start(int32_t mi)
{
    struct tm tm = {.tm_year = mi / 12 - 1900, .tm_mon = mi % 12, .tm_mday = 1};
    return (int64_t)timegm(&tm);
}

static int64_t nusd_of(double usd)
{
    if (!(usd > 0) || !isfinite(usd))
        return 0;
    if (usd > 9e6)
        usd = 9e6; /* Lua numbers are doubles: stay below 2^53 nano-USD */
    return (int64_t)llround(usd * NUSD);
}

/* ---- construction ---- */

static void sha1_hex(const char *s, char out[41])
{
    uint8_t d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(s, strlen(s), d, &n, EVP_sha1(), NULL) != 1 || n != 20) {
        out[0] = '\0'; /* EVALSHA will fail with NOSCRIPT-like errors: EVAL follows */
        return;
    }
    for (unsigned i = 0; i < 20; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

budget_t *budget_new(const budget_cfg_t *bc, budget_clock_fn clock, void *clock_arg, char *err,
                     size_t errlen)
{
    budget_t *b = xcalloc(1, sizeof *b);
    if (err && errlen)
        err[0] = '\0';
    if (bc->redis_url != NULL && bc->redis_url[0] != '\0') {
        if (rds_url_parse(bc->redis_url, &b->addr, err, errlen) != 0) {
            free(b);
            return NULL;
        }
        b->has_redis = true;
    }
    b->cfg.redis_url = bc->redis_url ? xstrdup(bc->redis_url) : NULL;
    b->cfg.redis_timeout_ms = bc->redis_timeout_ms ? bc->redis_timeout_ms : 50;
    b->cfg.key_prefix = xstrdup(bc->key_prefix ? bc->key_prefix : "llmrouter:budget:");
    b->cfg.default_max_output_tokens =
        bc->default_max_output_tokens ? bc->default_max_output_tokens : 512;
    b->clock = clock ? clock : clock_default;
    b->clock_arg = clock_arg;
    for (size_t i = 0; i < N_STRIPES; i++)
        pthread_mutex_init(&b->stripes[i].mu, NULL);
    pthread_mutex_init(&b->ops_mu, NULL);
    sha1_hex(LUA_ADMIT, b->sha_admit);
    sha1_hex(LUA_SETTLE, b->sha_settle);
    sha1_hex(LUA_MODEL, b->sha_model);
    return b;
}

static void op_free(budget_op_t *op)
{
    for (int i = 0; i < op->argc; i++)
        free(op->argv[i]);
    free(op->model);
    free(op);
}

void budget_free(budget_t *b)
{
    if (b == NULL)
        return;
    while (b->ops != NULL) {
        budget_op_t *op = b->ops;
        b->ops = op->next;
        op_free(op);
    }
    for (size_t i = 0; i < N_STRIPES; i++) {
        entry_t *e = b->stripes[i].head;
        while (e != NULL) {
            entry_t *n = e->next;
            free(e->name);
            free(e);
            e = n;
        }
        pthread_mutex_destroy(&b->stripes[i].mu);
    }
    pthread_mutex_destroy(&b->ops_mu);
    budget_cfg_free(&b->cfg);
    free(b);
}

const rds_addr_t *budget_redis_addr(const budget_t *b)
{
    return b->has_redis ? &b->addr : NULL;
}

unsigned budget_redis_timeout_ms(const budget_t *b)
{
    return b->cfg.redis_timeout_ms;
}

uint32_t budget_default_max_output_tokens(const budget_t *b)
{
    return b->cfg.default_max_output_tokens;
}

double budget_estimate_usd(const budget_t *b, const cfg_model_t *m, uint32_t prompt_tokens,
                           uint32_t max_output_tokens)
{
    if (m == NULL)
        return 0;
    if (max_output_tokens == 0)
        max_output_tokens = b->cfg.default_max_output_tokens;
    return provider_cost(m, (double)prompt_tokens, (double)max_output_tokens, 0);
}

/* ---- local counters ---- */

static stripe_t *stripe_for(budget_t *b, char kind, const char *name)
{
    uint64_t h = 1469598103934665603ull ^ (uint8_t)kind;
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return &b->stripes[h % N_STRIPES];
}

/* The entry for (kind, name), created if absent; s's mutex must be held.
 * Rolls its windows over to now. */
static entry_t *entry_get(stripe_t *s, char kind, const char *name, int64_t now)
{
    entry_t *e;
    int64_t minute = now / 60, day = now / 86400;
    int32_t month = month_of(now);
    for (e = s->head; e != NULL; e = e->next) {
        if (e->kind == kind && strcmp(e->name, name) == 0)
            break;
    }
    if (e == NULL) {
        e = xcalloc(1, sizeof *e);
        e->kind = kind;
        e->name = xstrdup(name);
        e->minute = minute;
        e->day = day;
        e->month = month;
        e->next = s->head;
        s->head = e;
    }
    if (e->minute != minute) {
        e->minute = minute;
        e->reqs = e->toks = 0;
    }
    if (e->day != day) {
        e->day = day;
        e->day_nusd = 0;
    }
    if (e->month != month) {
        e->month = month;
        e->month_nusd = 0;
    }
    return e;
}

static bool key_has_limits(const auth_key_t *k)
{
    return k->rpm > 0 || k->tpm > 0 || k->daily_usd > 0 || k->monthly_usd > 0;
}

static void fill_retry(budget_verdict_t *v, int64_t now)
{
    int64_t r = 1;
    switch (v->code) {
    case BUDGET_RPM:
    case BUDGET_TPM:
        r = 60 - now % 60;
        break;
    case BUDGET_DAILY:
        r = 86400 - now % 86400;
        break;
    case BUDGET_MONTHLY:
        r = month_start(month_of(now) + 1) - now;
        break;
    default:
        break;
    }
    v->retry_after_s = (uint32_t)(r < 1 ? 1 : r);
    v->should_retry = v->code == BUDGET_RPM || v->code == BUDGET_TPM;
}

/* Checks and reserves locally (check false: reserve only, Redis decided). */
static enum budget_code local_admit(budget_t *b, const auth_key_t *k, budget_ticket_t *t,
                                    int64_t now, bool check)
{
    stripe_t *s = stripe_for(b, 'k', k->name);
    enum budget_code code = BUDGET_OK;
    entry_t *e;
    pthread_mutex_lock(&s->mu);
    e = entry_get(s, 'k', k->name, now);
    if (check) {
        if (k->rpm > 0 && e->reqs + 1 > k->rpm)
            code = BUDGET_RPM;
        else if (k->tpm > 0 && e->toks > 0 && e->toks + t->tokens > k->tpm)
            code = BUDGET_TPM;
        else if (k->daily_usd > 0 && t->nusd > 0 &&
                 e->day_nusd + t->nusd > nusd_of(k->daily_usd))
            code = BUDGET_DAILY;
        else if (k->monthly_usd > 0 && t->nusd > 0 &&
                 e->month_nusd + t->nusd > nusd_of(k->monthly_usd))
            code = BUDGET_MONTHLY;
    }
    if (code == BUDGET_OK) {
        e->reqs++;
        e->toks += t->tokens;
        e->day_nusd += t->nusd;
        e->month_nusd += t->nusd;
    }
    pthread_mutex_unlock(&s->mu);
    return code;
}

static void local_settle(budget_t *b, const auth_key_t *k, const budget_ticket_t *t,
                         int64_t dnusd, int64_t dtok, int64_t now)
{
    stripe_t *s = stripe_for(b, 'k', k->name);
    entry_t *e;
    pthread_mutex_lock(&s->mu);
    e = entry_get(s, 'k', k->name, now);
    /* a window that rolled over since the reservation was reset already */
    if (e->minute == t->minute)
        e->toks = (int64_t)e->toks + dtok > 0 ? (uint64_t)((int64_t)e->toks + dtok) : 0;
    if (e->day == t->day)
        e->day_nusd += dnusd;
    if (e->month == t->month)
        e->month_nusd += dnusd;
    pthread_mutex_unlock(&s->mu);
}

static void count_verdict(budget_t *b, const budget_verdict_t *v)
{
    if (v->code == BUDGET_OK)
        atomic_fetch_add(&b->admitted, 1);
    else
        atomic_fetch_add(&b->rejected[v->code], 1);
}

static void decide_locally(budget_t *b, const auth_key_t *k, budget_verdict_t *v, int64_t now)
{
    v->code = local_admit(b, k, &v->ticket, now, true);
    v->ticket.redis = false;
    v->ticket.active = v->code == BUDGET_OK;
    fill_retry(v, now);
    count_verdict(b, v);
}

/* ---- Redis ---- */

static void redis_result(budget_t *b, bool ok)
{
    if (ok) {
        atomic_fetch_add(&b->redis_ok, 1);
        if (atomic_exchange(&b->redis_down, false))
            log_info("budgets: Redis answers again; shared counters are back in use");
    } else {
        atomic_fetch_add(&b->redis_fallbacks, 1);
        if (!atomic_exchange(&b->redis_down, true)) {
            atomic_fetch_add(&b->redis_outages, 1);
            log_warn("budgets: Redis unreachable; budgets and limits are counted locally "
                     "(this instance only) until it answers again");
        }
    }
}

static void op_link(budget_t *b, budget_op_t *op)
{
    pthread_mutex_lock(&b->ops_mu);
    op->prev = NULL;
    op->next = b->ops;
    if (b->ops)
        b->ops->prev = op;
    b->ops = op;
    pthread_mutex_unlock(&b->ops_mu);
}

static void op_unlink_free(budget_t *b, budget_op_t *op)
{
    pthread_mutex_lock(&b->ops_mu);
    if (op->prev)
        op->prev->next = op->next;
    else
        b->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    pthread_mutex_unlock(&b->ops_mu);
    op_free(op);
}

static void op_arg(budget_op_t *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void op_arg(budget_op_t *op, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    s = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    op->argv[op->argc] = s;
    op->argvlen[op->argc] = (size_t)n;
    op->argc++;
}

static void ymd(int64_t day, char out[40])
{
    time_t t = (time_t)(day * 86400);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 40, "%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

/* Appends the three key arguments of a key's windows (ticket's periods). */
static void key_args(budget_t *b, budget_op_t *op, const char *name, const budget_ticket_t *t)
{
    char d[40];
    time_t mt = (time_t)(t->minute * 60);
    struct tm tm;
    gmtime_r(&mt, &tm);
    op_arg(op, "%skey:%s:min:%04d%02d%02d%02d%02d", b->cfg.key_prefix, name, tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min);
    ymd(t->day, d);
    op_arg(op, "%skey:%s:day:%s", b->cfg.key_prefix, name, d);
    op_arg(op, "%skey:%s:month:%04d%02d", b->cfg.key_prefix, name, t->month / 12,
           t->month % 12 + 1);
}

/* Keys live until their period ends plus an hour (for inspection). */
static int64_t day_ttl(const budget_ticket_t *t, int64_t now)
{
    int64_t r = (t->day + 1) * 86400 - now;
    return (r > 0 ? r : 1) + 3600;
}

static int64_t month_ttl(const budget_ticket_t *t, int64_t now)
{
    int64_t r = month_start(t->month + 1) - now;
    return (r > 0 ? r : 1) + 3600;
}

static void on_reply(void *arg, enum rds_status st, redisReply *rep);

/* Sends op's script: argv[0] and argv[1] are replaced by EVALSHA sha / EVAL
 * script. */
static void op_send(budget_op_t *op, const char *sha, const char *script)
{
    unsigned wait = RDS_WAIT_ANY;
    free(op->argv[0]);
    free(op->argv[1]);
    if (!op->tried_eval && sha[0] != '\0') {
        op->argv[0] = xstrdup("EVALSHA");
        op->argv[1] = xstrdup(sha);
    } else {
        op->tried_eval = true;
        op->argv[0] = xstrdup("EVAL");
        op->argv[1] = xstrdup(script);
    }
    op->argvlen[0] = strlen(op->argv[0]);
    op->argvlen[1] = strlen(op->argv[1]);
    if (op->deadline_ms != 0) {
        /* an EVAL after NOSCRIPT gets what is left of the same wait */
        uint64_t now = util_now_ms();
        wait = op->deadline_ms > now ? (unsigned)(op->deadline_ms - now) : 0;
    }
    op->rop = rds_command_argv(op->rds, op->argc, (const char **)op->argv, op->argvlen, wait,
                               on_reply, op);
}

static void op_resend(budget_op_t *op)
{
    budget_t *b = op->b;
    switch (op->kind) {
    case OP_ADMIT:
        op_send(op, b->sha_admit, LUA_ADMIT);
        break;
    case OP_SETTLE:
        op_send(op, b->sha_settle, LUA_SETTLE);
        break;
    case OP_MODEL:
        op_send(op, b->sha_model, LUA_MODEL);
        break;
    }
}

static budget_op_t *op_new(budget_t *b, rds_t *rds, int kind)
{
    budget_op_t *op = xcalloc(1, sizeof *op);
    op->b = b;
    op->rds = rds;
    op->kind = kind;
    op->argc = 2; /* command and script, filled by op_send */
    op->argv[0] = xstrdup("");
    op->argv[1] = xstrdup("");
    return op;
}

static void model_view_update(budget_t *b, const char *model, int64_t total, int64_t now)
{
    stripe_t *s = stripe_for(b, 'm', model);
    entry_t *e;
    pthread_mutex_lock(&s->mu);
    e = entry_get(s, 'm', model, now);
    if (total > e->day_nusd)
        e->day_nusd = total;
    pthread_mutex_unlock(&s->mu);
}

static void on_reply(void *arg, enum rds_status st, redisReply *rep)
{
    budget_op_t *op = arg;
    budget_t *b = op->b;
    int64_t now = b->clock(b->clock_arg);
    op->rop = NULL;
    if (st == RDS_ERROR && rep != NULL && rep->type == REDIS_REPLY_ERROR && !op->tried_eval &&
        rep->str != NULL && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        op->tried_eval = true;
        op_resend(op);
        return;
    }
    switch (op->kind) {
    case OP_ADMIT: {
        budget_verdict_t v = op->v;
        if (st == RDS_OK && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
            rep->element[0]->type == REDIS_REPLY_INTEGER && rep->element[0]->integer >= 0 &&
            rep->element[0]->integer < BUDGET_N_CODES) {
            redis_result(b, true);
            v.code = (enum budget_code)rep->element[0]->integer;
            v.ticket.redis = true;
            v.ticket.active = v.code == BUDGET_OK;
            if (v.code == BUDGET_OK) /* mirror, for a later fallback */
                local_admit(b, op->key, &v.ticket, now, false);
            fill_retry(&v, now);
            count_verdict(b, &v);
        } else {
            if (st == RDS_OK || st == RDS_ERROR)
                log_warn("budgets: unexpected Redis reply to the admission script%s%s",
                         rep && rep->str ? ": " : "", rep && rep->str ? rep->str : "");
            if (st == RDS_SKIPPED) /* the request had no Redis wait left: not an outage */
                atomic_fetch_add(&b->redis_fallbacks, 1);
            else
                redis_result(b, false);
            decide_locally(b, op->key, &v, now);
        }
        {
            budget_admit_cb cb = op->cb;
            void *cbarg = op->arg;
            op_unlink_free(b, op);
            cb(cbarg, &v);
        }
        return;
    }
    case OP_SETTLE:
        redis_result(b, st == RDS_OK);
        break;
    case OP_MODEL:
        redis_result(b, st == RDS_OK);
        if (st == RDS_OK && rep->type == REDIS_REPLY_INTEGER)
            model_view_update(b, op->model, rep->integer, now);
        break;
    }
    op_unlink_free(b, op);
}

/* ---- public ---- */

int budget_admit(budget_t *b, rds_t *rds, unsigned wait_ms, const auth_key_t *key,
                 double est_usd, uint32_t est_tokens, budget_verdict_t *out, budget_admit_cb cb,
                 void *arg, budget_op_t **opp)
{
    int64_t now = b->clock(b->clock_arg);
    budget_op_t *op;
    memset(out, 0, sizeof *out);
    if (opp)
        *opp = NULL;
    out->should_retry = true;
    if (key == NULL || !key_has_limits(key)) {
        atomic_fetch_add(&b->admitted, 1);
        return 0;
    }
    out->ticket.nusd = nusd_of(est_usd);
    out->ticket.tokens = est_tokens;
    out->ticket.minute = now / 60;
    out->ticket.day = now / 86400;
    out->ticket.month = month_of(now);
    if (rds == NULL || !b->has_redis || cb == NULL) {
        decide_locally(b, key, out, now);
        return 0;
    }
    op = op_new(b, rds, OP_ADMIT);
    if (wait_ms != RDS_WAIT_ANY)
        op->deadline_ms = util_now_ms() + wait_ms;
    op->key = key;
    op->v = *out;
    op->cb = cb;
    op->arg = arg;
    op_arg(op, "3");
    key_args(b, op, key->name, &out->ticket);
    op_arg(op, "%u", key->rpm);
    op_arg(op, "%u", key->tpm);
    op_arg(op, "%lld", (long long)nusd_of(key->daily_usd));
    op_arg(op, "%lld", (long long)nusd_of(key->monthly_usd));
    op_arg(op, "%u", est_tokens);
    op_arg(op, "%lld", (long long)out->ticket.nusd);
    op_arg(op, "%lld", (long long)day_ttl(&out->ticket, now));
    op_arg(op, "%lld", (long long)month_ttl(&out->ticket, now));
    op_link(b, op);
    op_resend(op);
    if (opp)
        *opp = op;
    return BUDGET_PENDING;
}

void budget_cancel(budget_t *b, budget_op_t *op)
{
    if (op == NULL)
        return;
    rds_cancel(op->rds, op->rop);
    op_unlink_free(b, op);
}

void budget_settle(budget_t *b, rds_t *rds, const auth_key_t *key, budget_ticket_t *t,
                   double actual_usd, uint32_t actual_tokens)
{
    int64_t now, dnusd, dtok;
    if (t == NULL || !t->active)
        return;
    t->active = false;
    if (key == NULL)
        return;
    now = b->clock(b->clock_arg);
    dnusd = actual_usd < 0 ? 0 : nusd_of(actual_usd) - t->nusd;
    dtok = (int64_t)actual_tokens - (int64_t)t->tokens;
    local_settle(b, key, t, dnusd, dtok, now);
    if (t->redis && rds != NULL && b->has_redis && (dnusd != 0 || dtok != 0)) {
        budget_op_t *op = op_new(b, rds, OP_SETTLE);
        op_arg(op, "3");
        key_args(b, op, key->name, t);
        op_arg(op, "%lld", (long long)dtok);
        op_arg(op, "%lld", (long long)dnusd);
        op_arg(op, "%lld", (long long)day_ttl(t, now));
        op_arg(op, "%lld", (long long)month_ttl(t, now));
        op_link(b, op);
        op_resend(op);
    }
}

void budget_model_spent(budget_t *b, rds_t *rds, const char *model, double daily_cap_usd,
                        double usd)
{
    int64_t now, n = nusd_of(usd);
    stripe_t *s;
    entry_t *e;
    if (model == NULL || !(daily_cap_usd > 0))
        return;
    now = b->clock(b->clock_arg);
    s = stripe_for(b, 'm', model);
    pthread_mutex_lock(&s->mu);
    e = entry_get(s, 'm', model, now);
    e->day_nusd += n;
    pthread_mutex_unlock(&s->mu);
    if (rds != NULL && b->has_redis) {
        budget_op_t *op = op_new(b, rds, OP_MODEL);
        budget_ticket_t t = {.day = now / 86400};
        char d[40];
        ymd(t.day, d);
        op->model = xstrdup(model);
        op_arg(op, "1");
        op_arg(op, "%smodel:%s:day:%s", b->cfg.key_prefix, model, d);
        op_arg(op, "%lld", (long long)n);
        op_arg(op, "%lld", (long long)day_ttl(&t, now));
        op_link(b, op);
        op_resend(op);
    }
}

bool budget_model_allowed(budget_t *b, const char *model, double daily_cap_usd)
{
    stripe_t *s;
    entry_t *e;
    bool ok;
    if (model == NULL || !(daily_cap_usd > 0))
        return true;
    s = stripe_for(b, 'm', model);
    pthread_mutex_lock(&s->mu);
    e = entry_get(s, 'm', model, b->clock(b->clock_arg));
    ok = e->day_nusd < nusd_of(daily_cap_usd);
    pthread_mutex_unlock(&s->mu);
    if (!ok)
        atomic_fetch_add(&b->model_skips, 1);
    return ok;
}

char *budget_error_body(const budget_verdict_t *v, const auth_key_t *key, size_t *len)
{
    char msg[320];
    const char *name = key ? key->name : "";
    switch (v->code) {
    case BUDGET_RPM:
        snprintf(msg, sizeof msg,
                 "Rate limit reached for key %s: %u requests per minute. Retry after %u s.", name,
                 key ? key->rpm : 0, v->retry_after_s);
        break;
    case BUDGET_TPM:
        snprintf(msg, sizeof msg,
                 "Rate limit reached for key %s: %u tokens per minute. Retry after %u s.", name,
                 key ? key->tpm : 0, v->retry_after_s);
        break;
    case BUDGET_DAILY:
        snprintf(msg, sizeof msg,
                 "Daily budget of key %s (%.2f USD) is exhausted; it resets at 00:00 UTC "
                 "(in %u s).",
                 name, key ? key->daily_usd : 0.0, v->retry_after_s);
        break;
    case BUDGET_MONTHLY:
        snprintf(msg, sizeof msg,
                 "Monthly budget of key %s (%.2f USD) is exhausted; it resets on the 1st at "
                 "00:00 UTC (in %u s).",
                 name, key ? key->monthly_usd : 0.0, v->retry_after_s);
        break;
    default:
        snprintf(msg, sizeof msg, "Request refused by the budget of key %s.", name);
        break;
    }
    return apierror_body(msg, v->code == BUDGET_RPM || v->code == BUDGET_TPM ? "requests"
                                                                             : "insufficient_quota",
                         NULL, budget_code_name(v->code), NULL, len);
}

void budget_get_stats(budget_t *b, budget_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->admitted = atomic_load(&b->admitted);
    for (int i = 1; i < BUDGET_N_CODES; i++)
        out->rejected[i] = atomic_load(&b->rejected[i]);
    out->model_skips = atomic_load(&b->model_skips);
    out->redis_ok = atomic_load(&b->redis_ok);
    out->redis_fallbacks = atomic_load(&b->redis_fallbacks);
    out->redis_outages = atomic_load(&b->redis_outages);
    out->redis_down = atomic_load(&b->redis_down);
}
