/* observe: metrics, access log and sampler glue. */
#include "observe.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accesslog.h"
#include "memcache.h"
#include "metrics.h"
#include "rds.h"
#include "util.h"
#include "version.h"

struct observe {
    metrics_t **m;
    unsigned n;
    accesslog_t *log;
    sampler_t *sampler;
    struct mcache *mem;
    pthread_mutex_t redis_lock;
    rds_stats_t *redis; /* per shard, copied in by the shard thread */
    bool have_redis;
    uint64_t started_us;
    atomic_ullong reloads, reload_errors;
};

observe_t *observe_new(const config_t *cfg, unsigned shards, struct mcache *mem, char *err,
                       size_t errlen)
{
    observe_t *o = xcalloc(1, sizeof *o);
    o->n = shards;
    o->m = xcalloc(shards, sizeof *o->m);
    for (unsigned i = 0; i < shards; i++)
        o->m[i] = metrics_new();
    o->redis = xcalloc(shards, sizeof *o->redis);
    pthread_mutex_init(&o->redis_lock, NULL);
    o->mem = mem;
    o->started_us = util_now_us();
    o->log = accesslog_open(cfg->obs.access_log, err, errlen);
    if (o->log == NULL)
        goto fail;
    if (cfg->obs.sample_rate > 0) {
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
    for (unsigned i = 0; i < o->n; i++)
        metrics_free(o->m[i]);
    free(o->m);
    free(o->redis);
    pthread_mutex_destroy(&o->redis_lock);
    accesslog_close(o->log);
    sampler_close(o->sampler);
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

void observe_sample(observe_t *o, const req_t *req, const char *request_body, size_t len,
                    const char *response_body, size_t rlen)
{
    if (o != NULL)
        sampler_write(o->sampler, req->cfg, req, request_body, len, response_body, rlen);
}

void observe_set_redis(observe_t *o, unsigned shard, const rds_stats_t *st)
{
    pthread_mutex_lock(&o->redis_lock);
    o->redis[shard] = *st;
    o->have_redis = true;
    pthread_mutex_unlock(&o->redis_lock);
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
    rds_stats_t rs;
    bool have_redis;
    memset(&rs, 0, sizeof rs);
    if (o->mem) {
        mcache_get_stats(o->mem, &ms);
        extra.mcache = &ms;
    }
    pthread_mutex_lock(&o->redis_lock);
    have_redis = o->have_redis;
    for (unsigned i = 0; i < o->n; i++) {
        rs.ok += o->redis[i].ok;
        rs.nil += o->redis[i].nil;
        rs.errors += o->redis[i].errors;
        rs.timeouts += o->redis[i].timeouts;
        rs.down += o->redis[i].down;
        rs.reconnects += o->redis[i].reconnects;
        rs.dropped_writes += o->redis[i].dropped_writes;
        rs.connected = rs.connected || o->redis[i].connected;
    }
    pthread_mutex_unlock(&o->redis_lock);
    if (have_redis)
        extra.redis = &rs;
    extra.uptime_s = (double)(util_now_us() - o->started_us) / 1e6;
    extra.config_generation = config_generation();
    extra.config_reloads = atomic_load(&o->reloads);
    extra.config_reload_errors = atomic_load(&o->reload_errors);
    extra.version = LLMROUTER_VERSION;
    extra.shards = o->n;
    return metrics_render(o->m, o->n, &extra, out);
}

int observe_render_stats(observe_t *o, buf_t *out)
{
    return metrics_stats_json(o->m, o->n, out);
}
