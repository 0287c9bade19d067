/* observe: metrics, access log and sampler glue. */
#include "account/observe.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account/accesslog.h"
#include "account/budget.h"
#include "account/judge.h"
#include "account/quality.h"
#include "core/config_quality.h"
#include "core/shard.h"
#include "route/router.h"
#include "cache/memcache.h"
#include "account/metrics.h"
#include "account/otel.h"
#include "core/rds.h"
#include "core/util.h"
#include "core/version.h"
#include "http/gate_stats.h"
#include "upstream/health_view.h"

struct observe {
    metrics_t **m;
    unsigned n;
    accesslog_t *log;
    sampler_t *sampler;
    struct mcache *mem;
    pthread_mutex_t redis_lock;
    rds_stats_t *redis[OBSERVE_REDIS_N]; /* per shard, copied in by the shard thread */
    bool have_redis[OBSERVE_REDIS_N];
    uint64_t started_us;
    atomic_ullong reloads, reload_errors;
    budget_t *budget;
    otel_stats_t *otel; /* the OpenTelemetry exporters' counters (account/otel.h) */
    quality_t *quality;  /* judged scores, drift, demotion (process-wide) */
    judge_t **judges;    /* per shard, made on its thread at its first sample */
};

struct otel_stats *observe_otel_stats(observe_t *o)
{
    return o != NULL ? o->otel : NULL;
}

void observe_set_budget(observe_t *o, struct budget *b)
{
    o->budget = b;
}

/* Budget counters (process-wide, kept by budget.c) in exposition format. */
static void render_budget(budget_t *b, buf_t *out)
{
    budget_stats_t st;
    char line[256];
    budget_get_stats(b, &st);
    buf_puts(out, "# HELP llmrouter_budget_admitted_total Requests admitted by the key budgets and limits.\n"
                  "# TYPE llmrouter_budget_admitted_total counter\n");
    snprintf(line, sizeof line, "llmrouter_budget_admitted_total %llu\n", (unsigned long long)st.admitted);
    buf_puts(out, line);
    buf_puts(out, "# HELP llmrouter_budget_rejected_total Requests refused with 429, by reason.\n"
                  "# TYPE llmrouter_budget_rejected_total counter\n");
    for (int c = 1; c < BUDGET_N_CODES; c++) {
        snprintf(line, sizeof line, "llmrouter_budget_rejected_total{code=\"%s\"} %llu\n",
                 budget_code_name((enum budget_code)c), (unsigned long long)st.rejected[c]);
        buf_puts(out, line);
    }
    snprintf(line, sizeof line,
             "# HELP llmrouter_budget_model_skips_total Models skipped in a chain because their daily cap was spent.\n"
             "# TYPE llmrouter_budget_model_skips_total counter\nllmrouter_budget_model_skips_total %llu\n",
             (unsigned long long)st.model_skips);
    buf_puts(out, line);
    snprintf(line, sizeof line,
             "# HELP llmrouter_budget_redis_fallbacks_total Budget decisions taken locally because Redis failed.\n"
             "# TYPE llmrouter_budget_redis_fallbacks_total counter\nllmrouter_budget_redis_fallbacks_total %llu\n",
             (unsigned long long)st.redis_fallbacks);
    buf_puts(out, line);
    snprintf(line, sizeof line,
             "# HELP llmrouter_budget_redis_down 1 while the budget counters' Redis is unreachable.\n"
             "# TYPE llmrouter_budget_redis_down gauge\nllmrouter_budget_redis_down %d\n",
             st.redis_down ? 1 : 0);
    buf_puts(out, line);
}

observe_t *observe_new(const config_t *cfg, unsigned shards, struct mcache *mem, char *err,
                       size_t errlen)
{
    observe_t *o = xcalloc(1, sizeof *o);
    o->n = shards;
    o->m = xcalloc(shards, sizeof *o->m);
    for (unsigned i = 0; i < shards; i++)
        o->m[i] = metrics_new();
    for (int k = 0; k < OBSERVE_REDIS_N; k++)
        o->redis[k] = xcalloc(shards, sizeof *o->redis[k]);
    pthread_mutex_init(&o->redis_lock, NULL);
    o->mem = mem;
    o->started_us = util_now_us();
    o->otel = otel_stats_new();
    o->log = accesslog_open(cfg->obs.access_log, err, errlen);
    if (o->log == NULL)
        goto fail;
    o->quality = quality_new();
    o->judges = xcalloc(shards, sizeof *o->judges);
    if (cfg->obs.sample_rate > 0 || cfg->obs.judge != NULL || cfg->obs.alerts != NULL) {
        o->sampler = sampler_open(cfg->obs.sample_file, cfg->obs.sample_rate, err, errlen);
        if (o->sampler == NULL)
            goto fail;
    }
    return o;
fail:
    observe_free(o);
    return NULL;
}

void observe_free(observe_t *o)
{
    if (o == NULL)
        return;
    /* the shards (and their upstreams' calls) are gone: what still waits
     * for a judge is written as such */
    for (unsigned i = 0; o->judges != NULL && i < o->n; i++)
        judge_free(o->judges[i]);
    free(o->judges);
    quality_free(o->quality);
    for (unsigned i = 0; i < o->n; i++)
        metrics_free(o->m[i]);
    free(o->m);
    for (int k = 0; k < OBSERVE_REDIS_N; k++)
        free(o->redis[k]);
    pthread_mutex_destroy(&o->redis_lock);
    accesslog_close(o->log);
    sampler_close(o->sampler);
    otel_stats_free(o->otel);
    free(o);
}

void observe_request(observe_t *o, unsigned shard, const req_t *req)
{
    uint64_t now = util_now_us();
    if (o == NULL)
        return;
    metrics_observe(o->m[shard], req->cfg, req, now);
    accesslog_write(o->log, req->cfg, req, now);
}

bool observe_sample_pick(observe_t *o, uint64_t rnd)
{
    return o != NULL && sampler_pick(o->sampler, rnd);
}

bool observe_judge_pick(observe_t *o, const req_t *req, uint64_t rnd)
{
    const cfg_judge_t *j = req->cfg->obs.judge;
    double rate;
    bool routed = router_routed(&req->route);
    if (o == NULL || j == NULL || o->sampler == NULL)
        return false;
    rate = config_judge_rate(j, routed ? router_tier_name(req->cfg, &req->route) : NULL,
                             routed ? router_rule_name(req->cfg, &req->route) : NULL);
    if (rate <= 0)
        return false;
    return rate >= 1 || (double)(rnd >> 11) * 0x1.0p-53 < rate;
}

void observe_sample(observe_t *o, const req_t *req, const char *request_body, size_t len,
                    const char *response_body, size_t rlen)
{
    unsigned id;
    if (o == NULL)
        return;
    if (req->cfg->obs.judge == NULL && req->cfg->obs.alerts == NULL) {
        sampler_write(o->sampler, req->cfg, req, request_body, len, response_body, rlen);
        return;
    }
    id = shard_id(req->shard);
    if (o->judges[id] == NULL)
        o->judges[id] = judge_new(o->quality, o->sampler, shard_upstream(req->shard),
                                  shard_loop(req->shard));
    judge_sample(o->judges[id], req, request_body, len, response_body, rlen);
}

struct quality *observe_quality(observe_t *o)
{
    return o != NULL ? o->quality : NULL;
}

void observe_quality_readyz(observe_t *o, buf_t *out)
{
    if (o != NULL)
        quality_readyz(o->quality, out);
}

void observe_set_redis(observe_t *o, unsigned shard, enum observe_redis which,
                       const rds_stats_t *st)
{
    pthread_mutex_lock(&o->redis_lock);
    o->redis[which][shard] = *st;
    o->have_redis[which] = true;
    pthread_mutex_unlock(&o->redis_lock);
}

static const char *const redis_client_name[OBSERVE_REDIS_N] = {"cache", "budgets"};

/* Sums one client's counters over the shards; redis_lock held. */
static void redis_sum(const observe_t *o, int k, metrics_redis_t *m)
{
    memset(m, 0, sizeof *m);
    m->client = redis_client_name[k];
    for (unsigned i = 0; i < o->n; i++) {
        const rds_stats_t *r = &o->redis[k][i];
        m->sum.ok += r->ok;
        m->sum.nil += r->nil;
        m->sum.errors += r->errors;
        m->sum.timeouts += r->timeouts;
        m->sum.down += r->down;
        m->sum.skipped += r->skipped;
        m->sum.reconnects += r->reconnects;
        m->sum.connect_attempts += r->connect_attempts;
        m->sum.cooldowns += r->cooldowns;
        m->sum.dropped_writes += r->dropped_writes;
        m->sum.in_flight += r->in_flight;
        m->sum.connected = m->sum.connected || r->connected;
        if ((unsigned)r->state < 3)
            m->n_state[r->state]++;
    }
}

void observe_redis_readyz(observe_t *o, buf_t *out)
{
    bool any = false;
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->redis_lock);
    for (int k = 0; k < OBSERVE_REDIS_N; k++) {
        metrics_redis_t m;
        enum rds_state st = RDS_STATE_UP;
        if (!o->have_redis[k])
            continue;
        redis_sum(o, k, &m);
        if (m.n_state[RDS_STATE_COOLING] > 0)
            st = RDS_STATE_COOLING;
        else if (m.n_state[RDS_STATE_DOWN] > 0)
            st = RDS_STATE_DOWN;
        buf_puts(out, any ? ",\"" : ",\"redis\":{\"");
        buf_puts(out, m.client);
        buf_puts(out, "\":\"");
        buf_puts(out, rds_state_name(st));
        buf_puts(out, "\"");
        any = true;
    }
    pthread_mutex_unlock(&o->redis_lock);
    if (any)
        buf_puts(out, "}");
}

void observe_reloaded(observe_t *o, bool ok)
{
    atomic_fetch_add(ok ? &o->reloads : &o->reload_errors, 1);
}

void observe_reopen(observe_t *o)
{
    accesslog_reopen(o->log);
    if (o->sampler)
        sampler_reopen(o->sampler);
}

int observe_render_metrics(observe_t *o, buf_t *out)
{
    metrics_extra_t extra = {0};
    mcache_stats_t ms;
    metrics_redis_t rs[OBSERVE_REDIS_N];
    size_t n_rs = 0;
    if (o->mem) {
        mcache_get_stats(o->mem, &ms);
        extra.mcache = &ms;
    }
    pthread_mutex_lock(&o->redis_lock);
    for (int k = 0; k < OBSERVE_REDIS_N; k++)
        if (o->have_redis[k])
            redis_sum(o, k, &rs[n_rs++]);
    pthread_mutex_unlock(&o->redis_lock);
    if (n_rs > 0) {
        extra.redis = rs;
        extra.n_redis = n_rs;
    }
    extra.uptime_s = (double)(util_now_us() - o->started_us) / 1e6;
    extra.config_generation = config_generation();
    extra.config_reloads = atomic_load(&o->reloads);
    extra.config_reload_errors = atomic_load(&o->reload_errors);
    extra.version = LLMROUTER_VERSION;
    extra.shards = o->n;
    if (metrics_render(o->m, o->n, &extra, out) < 0)
        return -1;
    if (o->budget)
        render_budget(o->budget, out);
    if (gate_stats_render(out) < 0)
        return -1;
    if (otel_render_metrics(o->otel, out) < 0)
        return -1;
    {
        /* circuit breakers and provider slots of the current snapshot */
        config_t *cfg = config_current();
        int rc = cfg != NULL ? health_render_metrics(cfg, util_now_ms(), out) : 0;
        config_unref(cfg);
        if (rc < 0)
            return -1;
    }
    /* judged quality, drift alerts, demotions (account/quality.h) */
    return quality_render_metrics(o->quality, out);
}

int observe_render_stats(observe_t *o, buf_t *out)
{
    config_t *cfg;
    int rc;
    if (metrics_stats_json(o->m, o->n, out) < 0)
        return -1;
    cfg = config_current();
    if (cfg == NULL || buf_len(out) == 0 || buf_ptr(out)[buf_len(out) - 1] != '}') {
        config_unref(cfg);
        return 0;
    }
    /* the stats object gets one more member: {..., "health": {...}} */
    out->w--;
    rc = buf_puts(out, ",\"health\":");
    rc |= health_stats_json(cfg, util_now_ms(), out);
    rc |= buf_puts(out, ",\"quality\":");
    rc |= quality_stats_json(o->quality, out);
    rc |= buf_puts(out, "}");
    config_unref(cfg);
    return rc ? -1 : 0;
}
