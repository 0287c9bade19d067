/* shard: a loop thread with its own HTTP daemon and curl multi handle.
 * Each iteration: I/O callbacks (curl sockets, client hang-ups) and timers
 * run first, then the hook runs the HTTP daemon once (sending whatever the
 * upstream side produced) and then resumes paused upstream transfers whose
 * client drained its buffer (deferred so that an unpause, which may call the
 * curl write callback synchronously, never runs inside a libmicrohttpd
 * callback). */
#include "core/shard.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "cache/cache.h"
#include "account/budget.h"
#include "core/log.h"
#include "account/observe.h"
#include "account/otel.h"
#include "core/rds.h"
#include "http/request.h"
#include "http/reply.h"
#include "http/gate.h"
#include "http/server.h"
#include "upstream/upstream.h"
#include "upstream/admit.h"
#include "upstream/health.h"
#include "core/util.h"
#include "route/classifier.h"

struct shard {
    unsigned id;
    pthread_t thread;
    bool started;
    loop_t *loop;
    struct MHD_Daemon *mhd;
    struct gate *gate; /* accepts and checks connections before the daemon gets them */
    loop_io_t mhd_io;
    upstream_t *up;
    cache_ctx_t cache;
    observe_t *obs;
    struct otel *otel; /* OpenTelemetry export of finished requests, NULL without obs */
    budget_t *budget;
    health_t *health;
    rds_t *budget_rds;
    struct classifier_cache *classifier_cache; /* routing.classifier decisions, NULL until used */
    uint64_t stats_ms; /* last copy of the Redis counters for /metrics */
    enum rds_state rds_state[2]; /* the states in that copy (cache, budgets) */
    config_t *cfg;
    unsigned cfg_gen;
    req_t *live;
    size_t n_live;
    req_t *unpause;
    atomic_bool stop_requested;
    bool draining;          /* the grace period runs (stop_deadline set) */
    bool cut;               /* the grace period ended: what was open was ended */
    uint64_t stop_deadline; /* end of the grace period */
    uint64_t flush_deadline; /* end of the time the cut answers get to leave */
    uint64_t rng;
};

static void on_mhd_io(loop_t *loop, loop_io_t *io, uint32_t events)
{
    /* The hook runs the daemon right after this batch. */
    (void)loop;
    (void)io;
    (void)events;
}

loop_t *shard_loop(shard_t *s)
{
    return s->loop;
}

struct upstream *shard_upstream(shard_t *s)
{
    return s->up;
}

const struct cache_ctx *shard_cache(shard_t *s)
{
    return &s->cache;
}

struct observe *shard_observe(shard_t *s)
{
    return s->obs;
}

struct otel *shard_otel(shard_t *s)
{
    return s->otel;
}

struct budget *shard_budget(shard_t *s)
{
    return s->budget;
}

struct rds *shard_budget_rds(shard_t *s)
{
    return s->budget_rds;
}

struct health *shard_health(shard_t *s)
{
    return s->health;
}

struct classifier_cache **shard_classifier_cache(shard_t *s)
{
    return &s->classifier_cache;
}

unsigned shard_id(const shard_t *s)
{
    return s->id;
}

config_t *shard_config(shard_t *s)
{
    return s->cfg;
}

bool shard_stopping(const shard_t *s)
{
    return atomic_load(&((shard_t *)s)->stop_requested);
}

uint64_t shard_random(shard_t *s)
{
    /* xorshift64*: request ids need to be unique, not secret */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 0x2545F4914F6CDD1DULL;
}

void shard_link(shard_t *s, req_t *req)
{
    req->prev = NULL;
    req->next = s->live;
    if (s->live)
        s->live->prev = req;
    s->live = req;
    s->n_live++;
}

void shard_unlink(shard_t *s, req_t *req)
{
    if (req->prev)
        req->prev->next = req->next;
    else if (s->live == req)
        s->live = req->next;
    if (req->next)
        req->next->prev = req->prev;
    req->prev = req->next = NULL;
    s->n_live--;
}

void shard_queue_unpause(shard_t *s, req_t *req)
{
    if (req->in_unpause)
        return;
    req->in_unpause = true;
    req->unpause_next = s->unpause;
    s->unpause = req;
}

void shard_dequeue_unpause(shard_t *s, req_t *req)
{
    if (!req->in_unpause)
        return;
    for (req_t **pp = &s->unpause; *pp; pp = &(*pp)->unpause_next) {
        if (*pp == req) {
            *pp = req->unpause_next;
            break;
        }
    }
    req->in_unpause = false;
    req->unpause_next = NULL;
}

/* The redis section as the clients' failure policy. */
static void apply_redis_policy(shard_t *s)
{
    const cfg_redis_t *c = &s->cfg->redis;
    rds_policy_t p = RDS_POLICY_DEFAULT;
    p.cooldown_after = c->cooldown_after_timeouts;
    p.cooldown_ms = c->cooldown_ms;
    p.reconnect_max_ms = c->reconnect_max_ms;
    if (s->cache.rds)
        rds_set_policy(s->cache.rds, &p);
    if (s->budget_rds)
        rds_set_policy(s->budget_rds, &p);
}

static void adopt_config(shard_t *s)
{
    unsigned gen = config_generation();
    config_t *cfg;
    if (gen == s->cfg_gen)
        return;
    cfg = config_current();
    if (cfg == NULL)
        return;
    config_unref(s->cfg);
    s->cfg = cfg;
    s->cfg_gen = gen;
    apply_redis_policy(s);
}

/* Copies the Redis clients' counters for /metrics and /readyz: once a
 * second, and at once when a client's state changed. */
static void publish_redis(shard_t *s, uint64_t now)
{
    rds_t *cl[2] = {s->cache.rds, s->budget_rds};
    static const enum observe_redis which[2] = {OBSERVE_REDIS_CACHE, OBSERVE_REDIS_BUDGETS};
    bool due = now - s->stats_ms >= 1000;
    if (s->obs == NULL)
        return;
    for (int i = 0; i < 2; i++) {
        rds_stats_t st;
        if (cl[i] == NULL || (!due && rds_get_state(cl[i]) == s->rds_state[i]))
            continue;
        rds_get_stats(cl[i], &st);
        observe_set_redis(s->obs, s->id, which[i], &st);
        s->rds_state[i] = st.state;
    }
    if (due)
        s->stats_ms = now;
}

/* The end of the grace period: a committed stream still open ends with
 * its error event, a request not answered yet gets a 503; both leave
 * during the flush time (SHARD_FLUSH_MS) that follows. */
#define SHARD_FLUSH_MS 1000

static void cut_open(shard_t *s)
{
    unsigned streams = 0, answers = 0;
    for (req_t *r = s->live; r; r = r->next) {
        if (r->client_gone)
            continue;
        if (r->committed && !r->up_done) {
            upstream_stream_abort(s->up, r,
                                  "the server is shutting down (server.shutdown_grace_ms ended)");
            streams++;
        } else if (r->state == RS_UPSTREAM) {
            reply_shutdown(r);
            answers++;
        }
    }
    if (streams + answers > 0)
        log_warn("shutdown: the grace period ended with %u stream%s and %u request%s still open: "
                 "ended with an error",
                 streams, streams == 1 ? "" : "s", answers, answers == 1 ? "" : "s");
}

static void release_all(shard_t *s)
{
    for (req_t *r = s->live; r; r = r->next) {
        upstream_cancel(s->up, r);
        cache_cancel(r, &s->cache);
        reply_release(r);
    }
}

static bool hook(loop_t *loop, void *arg, int64_t *timeout_ms)
{
    shard_t *s = arg;
    MHD_UNSIGNED_LONG_LONG mhd_to;
    bool pending = false;

    adopt_config(s);
    publish_redis(s, loop_now_ms(loop));
    if (atomic_load(&s->stop_requested)) {
        uint64_t now = loop_now_ms(loop);
        /* Drain: the listener stays open, so that health checks see
         * /readyz 503 (server.c) and new requests get a 503 instead of a
         * refused connection, while the requests in flight finish. */
        if (!s->draining) {
            s->draining = true;
            s->stop_deadline = now + s->cfg->shutdown_grace_ms;
        }
        if (!s->cut && now >= s->stop_deadline && s->n_live > 0) {
            cut_open(s);
            s->cut = true;
            s->flush_deadline = now + SHARD_FLUSH_MS;
        }
        /* the last spans leave too, within the grace period */
        if ((s->n_live == 0 && (now >= s->stop_deadline || !otel_drain(s->otel))) ||
            (s->cut && now >= s->flush_deadline)) {
            release_all(s);
            MHD_run(s->mhd);
            loop_stop(loop);
            return false;
        }
        *timeout_ms = 50;
    }
    rds_flush(s->budget_rds); /* settles before the answers that caused them */
    rds_flush(s->cache.rds);
    MHD_run(s->mhd);
    while (s->unpause) {
        req_t *r = s->unpause;
        s->unpause = r->unpause_next;
        r->in_unpause = false;
        r->unpause_next = NULL;
        upstream_unpause(s->up, r);
        pending = true;
    }
    if (MHD_get_timeout(s->mhd, &mhd_to) == MHD_YES) {
        if (*timeout_ms < 0 || (int64_t)mhd_to < *timeout_ms)
            *timeout_ms = (int64_t)mhd_to;
    }
    return pending;
}

shard_t *shard_new(unsigned id, config_t *cfg, struct mcache *mem, struct observe *obs,
                   struct budget *budget, struct health *health, struct gate_ips *ips, char *err,
                   size_t errlen)
{
    shard_t *s = xcalloc(1, sizeof *s);
    const union MHD_DaemonInfo *info;

    s->id = id;
    s->cfg = config_ref(cfg);
    s->cfg_gen = config_generation();
    util_random(&s->rng, sizeof s->rng);
    s->rng |= 1;
    s->loop = loop_new();
    if (s->loop == NULL) {
        snprintf(err, errlen, "cannot create an event loop");
        goto fail;
    }
    s->up = upstream_new(s, s->loop);
    if (s->up == NULL) {
        snprintf(err, errlen, "cannot create a curl multi handle");
        goto fail;
    }
    s->cache.mem = mem;
    s->obs = obs;
    if (obs != NULL)
        s->otel = otel_new(s->loop, observe_otel_stats(obs));
    s->budget = budget;
    if (budget && budget_redis_addr(budget)) {
        s->budget_rds = rds_new(s->loop, budget_redis_addr(budget), budget_redis_timeout_ms(budget));
        if (s->budget_rds == NULL) {
            snprintf(err, errlen, "cannot create the budget Redis client");
            goto fail;
        }
    }
    if (cfg->cache.backend == CACHE_BACKEND_REDIS) {
        rds_addr_t addr;
        if (rds_url_parse(cfg->cache.redis_url, &addr, err, errlen) < 0)
            goto fail;
        s->cache.rds = rds_new(s->loop, &addr, cfg->cache.redis_timeout_ms);
        if (s->cache.rds == NULL) {
            snprintf(err, errlen, "cannot create the Redis client");
            goto fail;
        }
    }
    apply_redis_policy(s);
    s->rds_state[0] = s->rds_state[1] = RDS_STATE_UP; /* published at the first iteration */
    s->stats_ms = 0;
    s->mhd = server_start(s, cfg, ips, &s->gate, err, errlen);
    if (s->mhd == NULL)
        goto fail;
    info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (info == NULL) {
        snprintf(err, errlen, "libmicrohttpd gave no epoll fd");
        goto fail;
    }
    s->mhd_io.fd = info->epoll_fd;
    s->mhd_io.cb = on_mhd_io;
    s->mhd_io.arg = s;
    if (loop_io_set(s->loop, &s->mhd_io, EPOLLIN) < 0) {
        snprintf(err, errlen, "cannot watch the HTTP daemon");
        goto fail;
    }
    loop_set_hook(s->loop, hook, s);
    /* a provider slot freed (here or on another shard): start waiters */
    loop_set_wake_cb(s->loop, upstream_admit_kick, s);
    s->health = health;
    if (health != NULL)
        health_set_shard_loop(health, id, s->loop);
    return s;
fail:
    shard_free(s);
    return NULL;
}

static void *thread_main(void *arg)
{
    shard_t *s = arg;
    char name[16];
    snprintf(name, sizeof name, "llmrouter-%u", s->id);
    pthread_setname_np(pthread_self(), name);
    loop_run(s->loop);
    return NULL;
}

int shard_start(shard_t *s)
{
    if (pthread_create(&s->thread, NULL, thread_main, s) != 0)
        return -1;
    s->started = true;
    return 0;
}

void shard_stop(shard_t *s)
{
    atomic_store(&s->stop_requested, true);
    loop_wakeup(s->loop);
}

void shard_join(shard_t *s)
{
    if (s->started) {
        pthread_join(s->thread, NULL);
        s->started = false;
    }
}

void shard_free(shard_t *s)
{
    if (s == NULL)
        return;
    if (s->health != NULL)
        health_set_shard_loop(s->health, s->id, NULL);
    if (s->mhd) {
        if (s->loop)
            loop_io_del(s->loop, &s->mhd_io);
        /* every request was released and resumed before the loop ended */
        MHD_stop_daemon(s->mhd);
    }
    gate_free(s->gate); /* after the daemon: its close notifications reach the gate */
    upstream_free(s->up);
    otel_free(s->otel);
    rds_free(s->cache.rds);
    rds_free(s->budget_rds);
    classifier_cache_free(s->classifier_cache);
    loop_free(s->loop);
    config_unref(s->cfg);
    free(s);
}
