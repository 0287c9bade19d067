/* admit: the request side of circuit breaking, 429 cooldowns and provider
 * concurrency limits (see include/upstream/admit.h). The state itself is
 * process-wide in upstream/health.c; this file decides, per attempt, what
 * a request does with it, and keeps the per-request bookkeeping
 * (req->adm_*). Shard thread only. */
#include "upstream/admit.h"
#include "core/util.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "account/metrics.h"
#include "account/observe.h"
#include "account/quality.h"
#include "core/config_quality.h"
#include "core/log.h"
#include "core/shard.h"
#include "upstream/attempt.h"
#include "upstream/cascade.h"
#include "upstream/chain.h"
#include "upstream/health.h"

static uint64_t now_ms(const req_t *req)
{
    return loop_now_ms(shard_loop(req->shard));
}

static const cfg_provider_t *provider_of(const req_t *req, int m)
{
    return &req->cfg->providers[req->cfg->models[m].provider];
}

void upstream_admit_begin(req_t *req)
{
    req->adm_cooling = -1;
    req->adm_cooling_left = 0;
    req->adm_forcing = req->adm_forced = false;
    req->adm_busy = false;
}

/* A probe held by an attempt that will not run: another request probes. */
static void drop_probe(req_t *req)
{
    if (req->adm_model != NULL && req->adm_probe)
        health_report(req->adm_model, &req->cfg->models[req->model].circuit, HEALTH_NEUTRAL, true,
                      now_ms(req), NULL);
    req->adm_model = NULL;
    req->adm_probe = false;
}

static void skip(req_t *req, int m, const char *why)
{
    upstream_record(req, m, 0, why);
    if (req->casc != NULL)
        cascade_add_step(req->casc, m, CASCADE_FAILED, CASCADE_OK, 0);
}

static void on_queue_timer(loop_t *loop, loop_timer_t *t);

/* The attempt on m goes ahead: counted as outstanding on m (for a group's
 * least_outstanding) until its transfer ends (upstream_admit_release_slot). */
static enum admit_result go(req_t *req, int m)
{
    if (req->adm_lb == NULL) {
        req->adm_lb = req->cfg->models[m].health;
        health_lb_start(req->adm_lb);
    }
    return ADMIT_GO;
}

/* The breaker said go (probe: as the probe); now the provider's slot. */
static enum admit_result take_slot(req_t *req, int m, bool probe)
{
    const cfg_provider_t *p = provider_of(req, m);
    health_provider_t *hp = p->health;
    unsigned shard = shard_id(req->shard);
    char why[112];

    req->adm_model = req->cfg->models[m].health;
    req->adm_probe = probe;
    if (hp == NULL)
        return go(req, m); /* not bound (tools, tests): no limits */
    /* first come, first served on this shard: no overtaking its waiters */
    if (health_wait_len(hp, shard) == 0 && health_slot_acquire(hp, p->max_inflight)) {
        req->adm_slot = hp;
        return go(req, m);
    }
    if (health_wait_len(hp, shard) >= p->max_queue) {
        health_count_queue_full(hp);
        drop_probe(req);
        snprintf(why, sizeof why,
                 "skipped: provider %s is at max_inflight (%u) and its queue is full", p->name,
                 p->max_inflight);
        req->adm_busy = true;
        skip(req, m, why);
        return ADMIT_SKIP;
    }
    health_wait_push(hp, shard, &req->adm_wait);
    /* a slot freed between the first try and the push woke nobody (a
     * waiter behind others is served by the kick that serves them) */
    if (health_wait_head(hp, shard) == &req->adm_wait &&
        health_slot_acquire(hp, p->max_inflight)) {
        health_wait_remove(hp, shard, &req->adm_wait);
        req->adm_slot = hp;
        return go(req, m);
    }
    req->adm_wait_p = hp;
    req->adm_wait_since = now_ms(req);
    req->attempt_failed = false; /* the last failure is recorded already */
    req->timer.cb = on_queue_timer;
    req->timer.arg = req;
    {
        /* the request's deadline (upstream/retry.h) bounds the wait too */
        uint64_t wait = p->queue_timeout_ms, now = util_now_us();
        req->adm_wait_deadline = false;
        if (req->deadline_us != 0 && (req->deadline_us <= now ||
                                      (req->deadline_us - now) / 1000 < wait)) {
            wait = req->deadline_us <= now ? 0 : (req->deadline_us - now + 999) / 1000;
            req->adm_wait_deadline = true;
        }
        loop_timer_start(shard_loop(req->shard), &req->timer, wait);
    }
    return ADMIT_QUEUED;
}

static void cooling_skip(req_t *req, int m, enum health_verdict v, uint64_t left)
{
    char why[112];
    unsigned long long s = (unsigned long long)((left + 999) / 1000);
    if (v == HEALTH_PROBING_SKIP)
        snprintf(why, sizeof why, "skipped: cooling down (a probe is in flight)");
    else if (v == HEALTH_RATE_SKIP)
        snprintf(why, sizeof why, "skipped: cooling down after a 429 (%llu s left)", s);
    else
        snprintf(why, sizeof why, "skipped: cooling down (%llu s left)", s);
    /* the last resort: the one whose cooldown ends first (a probe in
     * flight counts as ending now) */
    if (req->adm_cooling < 0 || left < req->adm_cooling_left) {
        req->adm_cooling = m;
        req->adm_cooling_left = left;
    }
    skip(req, m, why);
}

enum admit_result upstream_admit(req_t *req, int m)
{
    const cfg_model_t *md = &req->cfg->models[m];
    enum health_verdict v;
    uint64_t left = 0;

    if (req->adm_forcing) {
        req->adm_forcing = false;
        return take_slot(req, m, health_force(md->health, &md->circuit, now_ms(req)));
    }
    if (req->cfg->obs.alerts != NULL && req->cfg->obs.alerts->demote &&
        quality_demoted(observe_quality(shard_observe(req->shard)), md->name, now_ms(req))) {
        /* its judged quality is in alert (account/quality.h): skipped like a
         * cooling model, and the chain's last resort when nothing else is */
        if (req->adm_cooling < 0) {
            req->adm_cooling = m;
            req->adm_cooling_left = UINT64_MAX;
        }
        skip(req, m, "skipped: demoted (quality alert)");
        return ADMIT_SKIP;
    }
    v = health_allow(md->health, &md->circuit, now_ms(req), &left);
    if (v == HEALTH_ALLOW || v == HEALTH_PROBE)
        return take_slot(req, m, v == HEALTH_PROBE);
    cooling_skip(req, m, v, left);
    return ADMIT_SKIP;
}

void upstream_admit_done(req_t *req)
{
    health_model_t *h = req->adm_model;
    const cfg_circuit_t *c;
    uint64_t now;
    if (h == NULL || req->model < 0)
        return;
    c = &req->cfg->models[req->model].circuit;
    now = now_ms(req);
    if (!req->attempt_failed && !req->passthrough && req->n_attempts > 0) {
        /* a group's latency strategy: the attempt record just written
         * spans the transfer's start to the answer's start */
        const attempt_t *a = &req->attempts[req->n_attempts - 1];
        if (a->model == req->model && a->t1_us > a->t0_us)
            health_lb_latency(h, a->t1_us - a->t0_us);
    }
    if (!req->attempt_failed)
        health_report(h, c, req->passthrough ? HEALTH_NEUTRAL : HEALTH_OK, req->adm_probe, now,
                      NULL);
    else if (req->up_status == 429 || req->up_status == 529)
        health_rate_limited(h, c, req->up_retry_ms, req->adm_probe, now);
    else
        health_report(h, c, HEALTH_FAILED, req->adm_probe, now,
                      metrics_failover_reason(req->up_status >= 200 ? req->up_status : 0,
                                              req->fail_reason));
    req->adm_model = NULL;
    req->adm_probe = false;
}

/* True when req already had an attempt on m that reached its provider
 * (not a skip): a retry that found m's circuit just opened by its own
 * failures leaves no last resort to try. */
static bool tried(const req_t *req, int m)
{
    for (size_t i = 0; i < req->n_attempts; i++)
        if (req->attempts[i].model == m && strncmp(req->attempts[i].error, "skipped", 7) != 0)
            return true;
    return false;
}

int upstream_admit_last_resort(req_t *req)
{
    if (req->adm_forced || req->adm_cooling < 0 || tried(req, req->adm_cooling))
        return -1;
    if (req->casc != NULL && req->casc->kept != NULL)
        return -1; /* a cascade has an answer to give */
    req->adm_forced = req->adm_forcing = true;
    log_info("request %s: no model of the chain answered and %s is cooling down; trying it anyway",
             req->id, req->cfg->models[req->adm_cooling].name);
    return req->adm_cooling;
}

void upstream_admit_release_slot(req_t *req)
{
    health_lb_end(req->adm_lb);
    req->adm_lb = NULL;
    if (req->adm_slot != NULL) {
        health_slot_release(req->adm_slot);
        req->adm_slot = NULL;
    }
}

static void leave_queue(req_t *req)
{
    if (req->adm_wait_p == NULL)
        return;
    health_wait_remove(req->adm_wait_p, shard_id(req->shard), &req->adm_wait);
    req->adm_wait_p = NULL;
    req->adm_waited_ms += now_ms(req) - req->adm_wait_since;
    loop_timer_stop(shard_loop(req->shard), &req->timer);
}

void upstream_admit_cancel(req_t *req)
{
    leave_queue(req);
    drop_probe(req);
    upstream_admit_release_slot(req);
}

static void on_queue_timer(loop_t *loop, loop_timer_t *t)
{
    req_t *req = t->arg;
    health_provider_t *hp = req->adm_wait_p;
    const cfg_provider_t *p = provider_of(req, req->model);
    char why[112];
    (void)loop;
    if (hp == NULL)
        return;
    leave_queue(req);
    health_count_queue_timeout(hp);
    drop_probe(req);
    if (req->adm_wait_deadline) {
        /* the wait ended with the deadline: its 504, whatever the clocks'
         * rounding says about the last millisecond */
        req->deadline_hit = true;
        snprintf(why, sizeof why,
                 "skipped: provider %s is at max_inflight (%u): no slot before the deadline",
                 p->name, p->max_inflight);
    } else {
        snprintf(why, sizeof why, "skipped: provider %s is at max_inflight (%u): no slot within %u ms",
                 p->name, p->max_inflight, p->queue_timeout_ms);
    }
    log_info("request %s: %s", req->id, why);
    req->adm_busy = true;
    skip(req, req->model, why);
    upstream_next_attempt(shard_upstream(req->shard), req);
}

/* One provider's queue on this shard: start its waiters while slots are
 * free (a failed start goes on down the request's chain). */
static void kick_provider(health_provider_t *hp, void *arg)
{
    shard_t *s = arg;
    unsigned shard = shard_id(s);
    health_wait_t *w;
    while ((w = health_wait_head(hp, shard)) != NULL) {
        req_t *req = (req_t *)(void *)((char *)w - offsetof(req_t, adm_wait));
        if (!health_slot_acquire(hp, provider_of(req, req->model)->max_inflight))
            break;
        leave_queue(req);
        req->adm_slot = hp;
        go(req, req->model);
        if (upstream_begin(shard_upstream(s), req, req->model) < 0)
            upstream_next_attempt(shard_upstream(s), req);
    }
}

void upstream_admit_kick(loop_t *loop, void *arg)
{
    shard_t *s = arg;
    (void)loop;
    if (shard_health(s) != NULL)
        health_each_waiting(shard_health(s), shard_id(s), kick_provider, s);
}
