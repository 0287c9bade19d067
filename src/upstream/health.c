/* health: per-model circuit breakers and 429 cooldowns, per-provider
 * concurrency slots and wait queues, in one process-wide table keyed by
 * name (see include/upstream/health.h and docs/internals/health.md).
 *
 * The breaker of a model:
 *   CLOSED --(failures in a row >= failures, or failed share of the window
 *            > failure_ratio over >= min_requests attempts)--> OPEN
 *   OPEN --(cooldown over: the next health_allow)--> HALF_OPEN, one probe
 *   HALF_OPEN --(probe ok)--> CLOSED;  --(probe failed)--> OPEN, cooldown x2
 * The cooldown doubles on a failed probe and on a trip within window_ms of
 * the last close, up to max_cooldown_ms; it starts again from cooldown_ms
 * after a trip that follows a longer closed period. */
#include "upstream/health.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define HEALTH_BUCKETS 10              /* the rolling window, in tenths */
#define PROBE_STALE_MS (10 * 60 * 1000) /* a probe that never reported: backstop */
#define MAX_SHARDS 256

struct health_model {
    char *name;
    pthread_mutex_t lock;
    /* under lock */
    enum health_state state;
    uint64_t open_until;  /* OPEN: when a probe may go */
    uint64_t rate_until;  /* a 429's cooldown ends */
    bool probing;         /* HALF_OPEN: the probe is out */
    uint64_t probe_since;
    uint32_t consecutive;
    uint32_t level;       /* doublings of the cooldown */
    uint64_t cooldown;    /* the last open period */
    uint64_t closed_at;   /* last close by a probe, 0 never */
    uint32_t bucket_ms;   /* width the buckets were filled with */
    struct {
        uint64_t epoch;
        uint32_t total, failed;
    } b[HEALTH_BUCKETS];
    uint64_t trips, skips, probes;
    const char *last_failure;
    /* load balancing (atomics, no lock): attempts under way, EWMA of the
     * time to an answer's start in microseconds (0: no sample yet) */
    atomic_uint lb_inflight;
    atomic_ullong lb_ewma_us;
    health_model_t *next; /* immutable once published */
};

typedef struct wait_q {
    health_wait_t *head, *tail;
    size_t n;
} wait_q_t;

struct health_provider {
    char *name;
    health_t *owner;
    atomic_uint inflight;
    atomic_uint waiting;          /* queued over all shards */
    atomic_ullong mask[MAX_SHARDS / 64]; /* shards with a waiter */
    atomic_ullong queue_timeouts, queue_full;
    wait_q_t *q;                  /* per shard; q[s] touched by shard s only */
    health_provider_t *next;      /* immutable once published */
};

struct health {
    unsigned n_shards;
    _Atomic(loop_t *) loops[MAX_SHARDS];
    _Atomic(health_model_t *) models;
    _Atomic(health_provider_t *) providers;
};

health_t *health_new(unsigned n_shards)
{
    health_t *h = xcalloc(1, sizeof *h);
    if (n_shards < 1)
        n_shards = 1;
    h->n_shards = n_shards > MAX_SHARDS ? MAX_SHARDS : n_shards;
    return h;
}

void health_free(health_t *h)
{
    health_model_t *m, *mn;
    health_provider_t *p, *pn;
    if (h == NULL)
        return;
    for (m = atomic_load(&h->models); m; m = mn) {
        mn = m->next;
        pthread_mutex_destroy(&m->lock);
        free(m->name);
        free(m);
    }
    for (p = atomic_load(&h->providers); p; p = pn) {
        pn = p->next;
        free(p->q);
        free(p->name);
        free(p);
    }
    free(h);
}

unsigned health_shards(const health_t *h)
{
    return h->n_shards;
}

void health_set_shard_loop(health_t *h, unsigned shard, loop_t *loop)
{
    if (shard < h->n_shards)
        atomic_store(&h->loops[shard], loop);
}

static health_model_t *model_entry(health_t *h, const char *name)
{
    health_model_t *m;
    for (m = atomic_load(&h->models); m; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m;
    m = xcalloc(1, sizeof *m);
    m->name = xstrdup(name);
    pthread_mutex_init(&m->lock, NULL);
    m->last_failure = "";
    m->next = atomic_load(&h->models);
    atomic_store_explicit(&h->models, m, memory_order_release);
    return m;
}

static health_provider_t *provider_entry(health_t *h, const char *name)
{
    health_provider_t *p;
    for (p = atomic_load(&h->providers); p; p = p->next)
        if (strcmp(p->name, name) == 0)
            return p;
    p = xcalloc(1, sizeof *p);
    p->name = xstrdup(name);
    p->owner = h;
    p->q = xcalloc(h->n_shards, sizeof *p->q);
    p->next = atomic_load(&h->providers);
    atomic_store_explicit(&h->providers, p, memory_order_release);
    return p;
}

void health_bind(health_t *h, config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_providers; i++)
        cfg->providers[i].health = provider_entry(h, cfg->providers[i].name);
    for (size_t i = 0; i < cfg->n_models; i++)
        cfg->models[i].health = model_entry(h, cfg->models[i].name);
}

const char *health_state_name(enum health_state s)
{
    return s == HEALTH_OPEN ? "open" : s == HEALTH_HALF_OPEN ? "half_open" : "closed";
}

/* ---- the breaker (under m->lock) ---- */

static void window_reset(health_model_t *m)
{
    memset(m->b, 0, sizeof m->b);
}

static void window_add(health_model_t *m, const cfg_circuit_t *c, bool failed, uint64_t now)
{
    uint32_t w = c->window_ms / HEALTH_BUCKETS;
    uint64_t epoch;
    if (w == 0)
        w = 1;
    if (w != m->bucket_ms) { /* the window changed (reload): start again */
        window_reset(m);
        m->bucket_ms = w;
    }
    epoch = now / w + 1; /* 0 marks an unused bucket */
    if (m->b[epoch % HEALTH_BUCKETS].epoch != epoch) {
        m->b[epoch % HEALTH_BUCKETS].epoch = epoch;
        m->b[epoch % HEALTH_BUCKETS].total = m->b[epoch % HEALTH_BUCKETS].failed = 0;
    }
    m->b[epoch % HEALTH_BUCKETS].total++;
    m->b[epoch % HEALTH_BUCKETS].failed += failed;
}

static void window_sum(const health_model_t *m, uint64_t now, uint64_t *total, uint64_t *failed)
{
    uint64_t epoch = now / (m->bucket_ms ? m->bucket_ms : 1) + 1;
    *total = *failed = 0;
    for (int i = 0; i < HEALTH_BUCKETS; i++) {
        if (m->b[i].epoch == 0 || m->b[i].epoch + HEALTH_BUCKETS <= epoch)
            continue; /* unused, or older than the window */
        *total += m->b[i].total;
        *failed += m->b[i].failed;
    }
}

static uint64_t cooldown_of(const cfg_circuit_t *c, uint32_t level)
{
    uint64_t d = c->cooldown_ms;
    for (uint32_t i = 0; i < level && d < c->max_cooldown_ms; i++)
        d *= 2;
    return d < c->max_cooldown_ms ? d : c->max_cooldown_ms;
}

static void open_circuit(health_model_t *m, const cfg_circuit_t *c, uint64_t now)
{
    m->state = HEALTH_OPEN;
    m->cooldown = cooldown_of(c, m->level);
    m->open_until = now + m->cooldown;
    m->probing = false;
    m->consecutive = 0;
    m->trips++;
    window_reset(m);
}

static uint64_t left_of(const health_model_t *m, uint64_t now)
{
    uint64_t until = m->rate_until;
    if (m->state == HEALTH_OPEN && m->open_until > until)
        until = m->open_until;
    return until > now ? until - now : 0;
}

enum health_verdict health_allow(health_model_t *m, const cfg_circuit_t *c, uint64_t now,
                                 uint64_t *left_ms)
{
    enum health_verdict v = HEALTH_ALLOW;
    if (left_ms)
        *left_ms = 0;
    if (m == NULL || !c->enabled)
        return HEALTH_ALLOW;
    pthread_mutex_lock(&m->lock);
    if (m->state == HEALTH_OPEN && now < m->open_until)
        v = HEALTH_OPEN_SKIP;
    else if (m->state == HEALTH_HALF_OPEN && m->probing && now - m->probe_since < PROBE_STALE_MS)
        v = HEALTH_PROBING_SKIP;
    else if (now < m->rate_until)
        v = HEALTH_RATE_SKIP;
    else if (m->state != HEALTH_CLOSED) {
        m->state = HEALTH_HALF_OPEN;
        m->probing = true;
        m->probe_since = now;
        m->probes++;
        v = HEALTH_PROBE;
    }
    if (v == HEALTH_OPEN_SKIP || v == HEALTH_PROBING_SKIP || v == HEALTH_RATE_SKIP) {
        m->skips++;
        if (left_ms)
            *left_ms = left_of(m, now);
    }
    pthread_mutex_unlock(&m->lock);
    return v;
}

bool health_force(health_model_t *m, const cfg_circuit_t *c, uint64_t now)
{
    bool probe = false;
    if (m == NULL || !c->enabled)
        return false;
    pthread_mutex_lock(&m->lock);
    if (m->state != HEALTH_CLOSED && !(m->probing && now - m->probe_since < PROBE_STALE_MS)) {
        m->state = HEALTH_HALF_OPEN;
        m->probing = true;
        m->probe_since = now;
        m->probes++;
        probe = true;
    }
    pthread_mutex_unlock(&m->lock);
    return probe;
}

void health_report(health_model_t *m, const cfg_circuit_t *c, enum health_outcome o, bool probe,
                   uint64_t now, const char *reason)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->lock);
    if (o == HEALTH_FAILED && reason != NULL)
        m->last_failure = reason;
    if (probe) {
        m->probing = false;
        if (o == HEALTH_OK) {
            m->state = HEALTH_CLOSED;
            m->consecutive = 0;
            m->closed_at = now ? now : 1;
            window_reset(m);
        } else if (o == HEALTH_FAILED && c->enabled) {
            m->level++;
            open_circuit(m, c, now);
        }
        goto out;
    }
    if (!c->enabled || o == HEALTH_NEUTRAL || m->state != HEALTH_CLOSED)
        goto out; /* attempts that began before the trip do not reopen or close it */
    window_add(m, c, o == HEALTH_FAILED, now);
    if (o == HEALTH_OK) {
        m->consecutive = 0;
    } else {
        uint64_t total, failed;
        m->consecutive++;
        window_sum(m, now, &total, &failed);
        if ((c->failures > 0 && m->consecutive >= c->failures) ||
            (c->failure_ratio > 0 && total >= c->min_requests &&
             (double)failed > c->failure_ratio * (double)total)) {
            /* a trip soon after the last close: the trouble is back, wait longer */
            if (m->closed_at != 0 && now - m->closed_at < c->window_ms)
                m->level++;
            else
                m->level = 0;
            open_circuit(m, c, now);
        }
    }
out:
    pthread_mutex_unlock(&m->lock);
}

void health_rate_limited(health_model_t *m, const cfg_circuit_t *c, int64_t retry_ms, bool probe,
                         uint64_t now)
{
    uint64_t ms;
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->lock);
    if (probe)
        m->probing = false; /* says nothing of the breaker: another request probes */
    if (c->enabled && c->retry_after_max_ms > 0) {
        ms = retry_ms < 0 ? 1000 : (uint64_t)retry_ms;
        if (ms > c->retry_after_max_ms)
            ms = c->retry_after_max_ms;
        if (now + ms > m->rate_until)
            m->rate_until = now + ms;
    }
    pthread_mutex_unlock(&m->lock);
}

void health_model_info(health_model_t *m, uint64_t now, health_model_info_t *out)
{
    memset(out, 0, sizeof *out);
    out->last_failure = "";
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->lock);
    out->state = m->state;
    if (m->state == HEALTH_OPEN && now >= m->open_until)
        out->state = HEALTH_HALF_OPEN; /* the next request probes */
    out->left_ms = left_of(m, now);
    out->rate_left_ms = m->rate_until > now ? m->rate_until - now : 0;
    out->cooling = (m->state == HEALTH_OPEN && now < m->open_until) ||
                   (m->state == HEALTH_HALF_OPEN && m->probing &&
                    now - m->probe_since < PROBE_STALE_MS) ||
                   now < m->rate_until;
    out->consecutive = m->consecutive;
    out->trips = m->trips;
    out->skips = m->skips;
    out->probes = m->probes;
    out->cooldown_ms = m->cooldown;
    out->last_failure = m->last_failure;
    pthread_mutex_unlock(&m->lock);
}

/* ---- provider slots ---- */

bool health_slot_acquire(health_provider_t *p, uint32_t max)
{
    unsigned n;
    if (max == 0) {
        atomic_fetch_add(&p->inflight, 1);
        return true;
    }
    n = atomic_load(&p->inflight);
    while (n < max)
        if (atomic_compare_exchange_weak(&p->inflight, &n, n + 1))
            return true;
    return false;
}

void health_slot_release(health_provider_t *p)
{
    health_t *h = p->owner;
    atomic_fetch_sub(&p->inflight, 1);
    /* seq_cst against health_wait_push: either its waiter sees the free
     * slot when it tries again, or this sees the waiter */
    if (atomic_load(&p->waiting) == 0)
        return;
    for (unsigned w = 0; w < (h->n_shards + 63) / 64; w++) {
        uint64_t bits = atomic_load(&p->mask[w]);
        while (bits) {
            unsigned s = w * 64 + (unsigned)__builtin_ctzll(bits);
            loop_t *loop = atomic_load(&h->loops[s]);
            bits &= bits - 1;
            if (loop != NULL)
                loop_wakeup(loop);
        }
    }
}

void health_wait_push(health_provider_t *p, unsigned shard, health_wait_t *w)
{
    wait_q_t *q = &p->q[shard];
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    q->n++;
    w->queued = true;
    atomic_fetch_or(&p->mask[shard / 64], 1ull << (shard % 64));
    atomic_fetch_add(&p->waiting, 1);
}

void health_wait_remove(health_provider_t *p, unsigned shard, health_wait_t *w)
{
    wait_q_t *q = &p->q[shard];
    if (!w->queued)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->next = w->prev = NULL;
    w->queued = false;
    q->n--;
    atomic_fetch_sub(&p->waiting, 1);
    if (q->n == 0) /* only this shard sets its bit again */
        atomic_fetch_and(&p->mask[shard / 64], ~(1ull << (shard % 64)));
}

health_wait_t *health_wait_head(health_provider_t *p, unsigned shard)
{
    return p->q[shard].head;
}

size_t health_wait_len(const health_provider_t *p, unsigned shard)
{
    return p->q[shard].n;
}

void health_each_waiting(health_t *h, unsigned shard, void (*fn)(health_provider_t *, void *),
                         void *arg)
{
    for (health_provider_t *p = atomic_load_explicit(&h->providers, memory_order_acquire); p;
         p = p->next)
        if (p->q[shard].n > 0)
            fn(p, arg);
}

void health_count_queue_timeout(health_provider_t *p)
{
    atomic_fetch_add(&p->queue_timeouts, 1);
}

void health_count_queue_full(health_provider_t *p)
{
    atomic_fetch_add(&p->queue_full, 1);
}

void health_provider_info(const health_provider_t *p, health_provider_info_t *out)
{
    memset(out, 0, sizeof *out);
    if (p == NULL)
        return;
    out->inflight = atomic_load(&((health_provider_t *)p)->inflight);
    out->waiting = atomic_load(&((health_provider_t *)p)->waiting);
    out->queue_timeouts = atomic_load(&((health_provider_t *)p)->queue_timeouts);
    out->queue_full = atomic_load(&((health_provider_t *)p)->queue_full);
}

const char *health_provider_name(const health_provider_t *p)
{
    return p->name;
}

/* ---- load balancing's view (upstream/balance.h) ---- */

void health_lb_start(health_model_t *m)
{
    if (m != NULL)
        atomic_fetch_add_explicit(&m->lb_inflight, 1, memory_order_relaxed);
}

void health_lb_end(health_model_t *m)
{
    if (m != NULL)
        atomic_fetch_sub_explicit(&m->lb_inflight, 1, memory_order_relaxed);
}

uint64_t health_ewma_next(uint64_t old, uint64_t sample_us)
{
    if (sample_us == 0)
        sample_us = 1; /* 0 means "no sample" */
    if (old == 0)
        return sample_us;
    /* alpha = 1/5: a member's last ~10 answers weigh most */
    return sample_us >= old ? old + (sample_us - old + 4) / 5 : old - (old - sample_us) / 5;
}

void health_lb_latency(health_model_t *m, uint64_t us)
{
    uint64_t old, next;
    if (m == NULL)
        return;
    old = atomic_load_explicit(&m->lb_ewma_us, memory_order_relaxed);
    do
        next = health_ewma_next(old, us);
    while (!atomic_compare_exchange_weak_explicit(&m->lb_ewma_us, &old, next, memory_order_relaxed,
                                                  memory_order_relaxed));
}

void health_lb_view(health_model_t *m, const cfg_circuit_t *c, uint64_t now, health_lb_view_t *out)
{
    out->usable = true;
    out->inflight = 0;
    out->ewma_us = 0;
    if (m == NULL)
        return;
    out->inflight = atomic_load_explicit(&m->lb_inflight, memory_order_relaxed);
    out->ewma_us = atomic_load_explicit(&m->lb_ewma_us, memory_order_relaxed);
    if (!c->enabled)
        return;
    pthread_mutex_lock(&m->lock);
    out->usable = !((m->state == HEALTH_OPEN && now < m->open_until) ||
                    (m->state == HEALTH_HALF_OPEN && m->probing &&
                     now - m->probe_since < PROBE_STALE_MS) ||
                    now < m->rate_until);
    pthread_mutex_unlock(&m->lock);
}
