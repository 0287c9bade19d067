/* metrics: per-shard request metrics merged at scrape time. See
 * include/metrics.h for the thread rules and docs/internals/metrics.md for
 * the list of metrics.
 *
 * A series is (family, label values) -> a counter (double) or a histogram.
 * Its key is the label values in the family's label order, each followed by
 * a NUL, so two series of a family are the same exactly when their keys
 * compare equal. Scrapes lock every shard, collect one family at a time,
 * sort by key and merge equal neighbours. The readers of the merged series
 * (exposition, stats JSON) are in metrics_render.c. */
#include "upstream/balance.h"
#include "account/metrics.h"
#include "account/metrics_store.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "http/door.h"
#include "route/classifier.h"
#include "route/experiment.h"
#include "route/router.h"
#include "upstream/cascade.h"
#include "core/util.h"

const double metrics_buckets[METRICS_N_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                   0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                                   5,      10,    30,     60};

/* longest label value kept (longer config names are cut) */
#define LABEL_MAX 128
#define KEY_MAX (MAX_LABELS * (LABEL_MAX + 1))


const family_def_t metrics_families[F_COUNT] = {
    [F_REQUESTS] = {"llmrouter_requests_total",
                    "Finished requests by the model that answered, its provider, tier, rule and "
                    "HTTP status",
                    false,
                    5,
                    {"model", "provider", "tier", "rule", "status"}},
    [F_ERRORS] = {"llmrouter_errors_total",
                  "Finished requests answered with an HTTP status >= 400",
                  false,
                  3,
                  {"model", "tier", "status"}},
    [F_STREAMS] = {"llmrouter_streams_total", "Finished streamed requests", false, 1, {"model"}},
    [F_CACHE] = {"llmrouter_cache_requests_total",
                 "Requests by response cache result (hit, miss, bypass)",
                 false,
                 2,
                 {"model", "result"}},
    [F_PROMPT_TOKENS] = {"llmrouter_prompt_tokens_total", "Prompt tokens", false, 1, {"model"}},
    [F_COMPLETION_TOKENS] = {"llmrouter_completion_tokens_total",
                             "Completion tokens",
                             false,
                             1,
                             {"model"}},
    [F_CACHED_TOKENS] = {"llmrouter_cached_tokens_total",
                         "Prompt tokens the provider served from its prompt cache",
                         false,
                         1,
                         {"model"}},
    [F_COST] = {"llmrouter_cost_usd_total",
                "Spend in US dollars (requests with a known cost)",
                false,
                3,
                {"model", "tier", "key"}},
    [F_BASELINE] = {"llmrouter_baseline_cost_usd_total",
                    "What routing.baseline_model would have cost for the same requests (requests "
                    "with a known cost and baseline)",
                    false,
                    3,
                    {"model", "tier", "key"}},
    [F_SAVINGS] = {"llmrouter_savings_usd_total",
                   "Baseline cost minus cost (requests with a known cost and baseline)",
                   false,
                   3,
                   {"model", "tier", "key"}},
    [F_ESTIMATED] = {"llmrouter_cost_estimated_requests_total",
                     "Requests whose tokens were estimated, not reported by the provider",
                     false,
                     1,
                     {"model"}},
    [F_ATTEMPTS] = {"llmrouter_upstream_attempts_total",
                    "Upstream attempts by model and result (ok or a failover reason)",
                    false,
                    3,
                    {"model", "provider", "result"}},
    [F_FAILOVERS] = {"llmrouter_failovers_total",
                     "Failovers from one model to the next of the chain, by reason",
                     false,
                     3,
                     {"from", "to", "reason"}},
    [F_RETRIES] = {"llmrouter_upstream_retries_total",
                   "Retries of a model after a failed attempt, by the reason of the failure",
                   false,
                   3,
                   {"model", "provider", "reason"}},
    [F_DURATION] = {"llmrouter_request_duration_seconds",
                    "Time from the first request byte to completion",
                    true,
                    1,
                    {"model"}},
    [F_UPSTREAM] = {"llmrouter_upstream_latency_seconds",
                    "Time from the first upstream attempt to the end of the upstream answer",
                    true,
                    1,
                    {"model"}},
    [F_TTFB] = {"llmrouter_time_to_first_byte_seconds",
                "Time from the first upstream attempt to the answer's headers (plain) or first "
                "event (stream)",
                true,
                1,
                {"model"}},
    [F_OVERHEAD] = {"llmrouter_router_overhead_seconds",
                    "Request time not spent waiting for an upstream",
                    true,
                    0,
                    {NULL}},
    [F_EXPLAIN] = {"llmrouter_explain_requests_total",
                   "POST /v1/router/explain calls (routing explained, no model called), by HTTP "
                   "status; not counted in llmrouter_requests_total",
                   false,
                   1,
                   {"status"}},
    [F_CASCADE_STEPS] = {"llmrouter_cascade_steps_total",
                         "Steps of cascade tiers by model and verdict (accepted, rejected, failed, "
                         "final) and the check that rejected the answer",
                         false,
                         4,
                         {"tier", "model", "verdict", "reason"}},
    [F_CASCADE_COST] = {"llmrouter_cascade_cost_usd_total",
                        "What cascade requests cost, every attempt and judge included",
                        false,
                        1,
                        {"tier"}},
    [F_CASCADE_DIRECT] = {"llmrouter_cascade_direct_cost_usd_total",
                          "What the same cascade requests would have cost on the tier's last "
                          "model alone (the returned answers' tokens at its prices)",
                          false,
                          1,
                          {"tier"}},
    [F_CLASSIFIER_CALLS] = {"llmrouter_classifier_requests_total",
                            "Requests that needed routing.classifier's label, by result (ok, "
                            "cache_hit, timeout, error, garbage); all but ok and cache_hit fell "
                            "back",
                            false,
                            2,
                            {"model", "result"}},
    [F_CLASSIFIER_COST] = {"llmrouter_classifier_cost_usd_total",
                           "What the classifier calls cost (also in llmrouter_cost_usd_total "
                           "under the classifier's model)",
                           false,
                           1,
                           {"model"}},
    [F_SCORE_SUM] = {"llmrouter_complexity_score_sum_total",
                     "Sum of the complexity scores of the requests whose rules computed one, by "
                     "tier and rule (divide by llmrouter_complexity_scored_requests_total for the mean)",
                     false,
                     2,
                     {"tier", "rule"}},
    [F_SCORE_COUNT] = {"llmrouter_complexity_scored_requests_total",
                       "Requests whose rules computed a complexity score, by tier and rule",
                       false,
                       2,
                       {"tier", "rule"}},
    /* apart from llmrouter_requests_total: a door label there would multiply
     * its model x provider x tier x rule x status series by five */
    [F_DOOR_REQUESTS] = {"llmrouter_door_requests_total",
                         "Finished requests by the door they came through (chat, completions, "
                         "embeddings, messages, responses) and HTTP status class",
                         false,
                         2,
                         {"door", "status_class"}},
    /* experiments (route/experiment.h): the active experiment's arms */
    [F_EXP_REQUESTS] = {"llmrouter_experiment_requests_total",
                        "Finished requests routed by an experiment's arm, by HTTP status class",
                        false,
                        3,
                        {"experiment", "arm", "status_class"}},
    [F_EXP_COST] = {"llmrouter_experiment_cost_usd_total",
                    "What the requests of each experiment arm cost (requests with a known cost)",
                    false,
                    2,
                    {"experiment", "arm"}},
    [F_EXP_KEYLESS] = {"llmrouter_experiment_keyless_requests_total",
                       "Requests of an experiment without its key (the request id chose the arm)",
                       false,
                       2,
                       {"experiment", "arm"}},
    /* groups of equivalent models (upstream/balance.h) */
    [F_GROUP_PICKS] = {"llmrouter_group_picks_total",
                       "Requests that reached a provider, by the member of a tier's group of "
                       "equivalent models tried first",
                       false,
                       2,
                       {"tier", "model"}},
    [F_UNPRICED] = {"llmrouter_unpriced_requests_total",
                    "Answers from models with no price in the configuration or the price table "
                    "(their cost is unknown and left out of the cost, baseline and savings totals)",
                    false,
                    1,
                    {"model"}},
};


typedef struct series {
    struct series *next;
    uint32_t hash;
    uint16_t fam;
    uint16_t klen;
    double value;
    hist_t *h; /* histogram families only */
    char key[];
} series_t;

struct metrics {
    pthread_mutex_t lock;
    series_t **tab;
    size_t n_tab; /* power of two */
    size_t n;
    /* the series each family found last: consecutive requests mostly share
     * their labels, and checking this one costs less than building and
     * hashing the key (series live until metrics_free) */
    series_t *last[F_COUNT];
};

metrics_t *metrics_new(void)
{
    metrics_t *m = xcalloc(1, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    m->n_tab = 64;
    m->tab = xcalloc(m->n_tab, sizeof *m->tab);
    return m;
}

void metrics_free(metrics_t *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_tab; i++) {
        series_t *s = m->tab[i];
        while (s != NULL) {
            series_t *next = s->next;
            free(s->h);
            free(s);
            s = next;
        }
    }
    free(m->tab);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* ------------------------------------------------------------ series map */

static uint32_t hash_key(int fam, const char *key, size_t len)
{
    uint32_t h = 2166136261u ^ (uint32_t)fam;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 16777619u;
    }
    return h;
}

/* Builds the key of label values vals[0..n) into out (KEY_MAX bytes). */
static size_t key_build(char *out, const char *const *vals, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        const char *v = vals[i] != NULL ? vals[i] : "-";
        size_t l = strnlen(v, LABEL_MAX);
        memcpy(out + len, v, l);
        len += l;
        out[len++] = '\0';
    }
    return len;
}

static void grow(metrics_t *m)
{
    size_t n_tab = m->n_tab * 2;
    series_t **tab = xcalloc(n_tab, sizeof *tab);
    for (size_t i = 0; i < m->n_tab; i++) {
        series_t *s = m->tab[i];
        while (s != NULL) {
            series_t *next = s->next;
            size_t j = s->hash & (n_tab - 1);
            s->next = tab[j];
            tab[j] = s;
            s = next;
        }
    }
    free(m->tab);
    m->tab = tab;
    m->n_tab = n_tab;
}

/* The series of fam with label values vals, created on first use. Called
 * with m->lock held. */
/* Whether s's key is the one key_build would make of vals[0..n). */
static bool key_is(const series_t *s, const char *const *vals, int n)
{
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const char *v = vals[i] != NULL ? vals[i] : "-";
        size_t l = strnlen(v, LABEL_MAX);
        if (off + l >= s->klen || s->key[off + l] != '\0' || memcmp(s->key + off, v, l) != 0)
            return false;
        off += l + 1;
    }
    return off == s->klen;
}

static series_t *series_get(metrics_t *m, int fam, const char *const *vals)
{
    char key[KEY_MAX];
    size_t klen;
    uint32_t h;
    series_t *s = m->last[fam];

    if (s != NULL && key_is(s, vals, metrics_families[fam].n_labels))
        return s;
    klen = key_build(key, vals, metrics_families[fam].n_labels);
    h = hash_key(fam, key, klen);
    for (s = m->tab[h & (m->n_tab - 1)]; s != NULL; s = s->next)
        if (s->hash == h && s->fam == fam && s->klen == klen && memcmp(s->key, key, klen) == 0) {
            m->last[fam] = s;
            return s;
        }
    if (m->n >= m->n_tab)
        grow(m);
    s = xcalloc(1, sizeof *s + klen);
    s->hash = h;
    s->fam = (uint16_t)fam;
    s->klen = (uint16_t)klen;
    memcpy(s->key, key, klen);
    if (metrics_families[fam].histogram)
        s->h = xcalloc(1, sizeof *s->h);
    size_t j = h & (m->n_tab - 1);
    s->next = m->tab[j];
    m->tab[j] = s;
    m->n++;
    m->last[fam] = s;
    return s;
}

static void add(metrics_t *m, int fam, const char *const *vals, double v)
{
    series_get(m, fam, vals)->value += v;
}

static void hist_add(hist_t *h, double seconds)
{
    int i = 0;
    while (i < METRICS_N_BUCKETS && seconds > metrics_buckets[i])
        i++;
    h->b[i]++;
    h->sum += seconds;
    h->count++;
}

static void observe_hist(metrics_t *m, int fam, const char *const *vals, uint64_t us)
{
    hist_add(series_get(m, fam, vals)->h, (double)us / 1e6);
}

/* ------------------------------------------------------------ observe */

/* "2xx" .. "5xx" (anything else "other"): a bounded label. */
static const char *status_class(unsigned status);

/* The request's experiment arm, if any. Called with m->lock held. */
/* The member each group of the request's tier put first (under m->lock). */
static void observe_groups(metrics_t *m, const config_t *cfg, const req_t *req)
{
    const route_t *r = &req->route;
    if (req->n_attempts == 0 || r->tier < 0 || (size_t)r->tier >= cfg->n_tiers)
        return;
    for (size_t g = 0; g < cfg->tiers[r->tier].n_groups; g++) {
        int pick = balance_group_pick(cfg, r, g);
        if (pick >= 0)
            add(m, F_GROUP_PICKS,
                (const char *[]){cfg->tiers[r->tier].name, cfg->models[pick].name}, 1);
    }
}

static void observe_experiment(metrics_t *m, const config_t *cfg, const req_t *req)
{
    const experiment_t *e = NULL;
    const exp_arm_t *a = experiment_arm_of(cfg, req->exp_arm, &e);
    if (a == NULL)
        return;
    add(m, F_EXP_REQUESTS, (const char *[]){e->name, a->name, status_class(req->resp_status)}, 1);
    if (request_cost_total(req) >= 0)
        add(m, F_EXP_COST, (const char *[]){e->name, a->name}, request_cost_total(req));
    if (req->exp_keyless)
        add(m, F_EXP_KEYLESS, (const char *[]){e->name, a->name}, 1);
}

const char *metrics_failover_reason(unsigned status, const char *error)
{
    if (status == 429)
        return "status_429";
    if (status >= 500 && status < 600)
        return "status_5xx";
    if (status == 401)
        return "status_401";
    if (status == 403)
        return "status_403";
    if (status == 408)
        return "timeout";
    if (error == NULL)
        error = "";
    /* models not called (upstream/admit.c) */
    if (strncmp(error, "skipped: cooling down", 21) == 0)
        return "cooling_down";
    if (strncmp(error, "skipped: provider ", 18) == 0 && strstr(error, "max_inflight") != NULL)
        return "busy";
    if (strncmp(error, "skipped: demoted", 16) == 0)
        return "demoted"; /* account/quality.h */
    /* models that cannot serve the request (upstream/fit.h) */
    if (strncmp(error, "skipped: context_window", 23) == 0 ||
        strncmp(error, "skipped: max_output_tokens", 26) == 0)
        return "context_window";
    if (strncmp(error, "skipped: no_", 12) == 0)
        return "capability";
    /* The strings come from src/upstream.c, src/providers/openai.c and
     * curl_easy_strerror(). */
    if (strstr(error, "HTTP 429") != NULL)
        return "status_429";
    if (strncmp(error, "HTTP 5", 6) == 0)
        return "status_5xx";
    if (strstr(error, "HTTP 401") != NULL)
        return "status_401";
    if (strstr(error, "HTTP 403") != NULL)
        return "status_403";
    if (strstr(error, "reused connection") != NULL) /* upstream.c on_prereq */
        return "stale_connection";
    if (strstr(error, "error event") != NULL)
        return "error_event";
    if (strstr(error, "imeout") != NULL || strstr(error, "timed out") != NULL ||
        strstr(error, "no answer within") != NULL || strstr(error, "no data within") != NULL)
        return "timeout";
    if (strstr(error, "onnect") != NULL || strstr(error, "resolve") != NULL)
        return "connect";
    if (strstr(error, "invalid JSON") != NULL || strstr(error, "error object") != NULL ||
        strstr(error, "stream ended") != NULL || strstr(error, "no event in") != NULL ||
        strstr(error, "larger than") != NULL || strstr(error, "before any") != NULL)
        return "invalid_answer";
    return "other";
}

static const char *model_name(const config_t *cfg, int m)
{
    return m >= 0 && (size_t)m < cfg->n_models ? cfg->models[m].name : "-";
}

static const char *provider_name(const config_t *cfg, int m)
{
    if (m < 0 || (size_t)m >= cfg->n_models)
        return "-";
    int p = cfg->models[m].provider;
    return p >= 0 && (size_t)p < cfg->n_providers ? cfg->providers[p].name : "-";
}

/* "2xx" .. "5xx" (anything else "other"): a bounded label. */
static const char *status_class(unsigned status)
{
    static const char *const cls[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    return status >= 100 && status < 600 ? cls[status / 100 - 1] : "other";
}

void metrics_observe(metrics_t *m, const config_t *cfg, const req_t *req, uint64_t now_us)
{
    char status[16];
    const char *model = model_name(cfg, req->model);
    const char *provider = provider_name(cfg, req->model);
    const char *tier = router_tier_name(cfg, &req->route);
    const char *rule = router_rule_name(cfg, &req->route);
    const char *key = req->key_name != NULL && req->key_name[0] != '\0' ? req->key_name : "-";
    uint64_t total = now_us > req->t_start_us ? now_us - req->t_start_us : 0;
    uint64_t upstream = 0;

    {
        /* snprintf's "%u", without the format machinery */
        char d[16];
        size_t n = 0, o = 0;
        unsigned v = req->resp_status;
        do {
            d[n++] = (char)('0' + v % 10);
            v /= 10;
        } while (v > 0);
        while (n > 0)
            status[o++] = d[--n];
        status[o] = '\0';
    }
    if (req->explain_only) {
        /* an explanation is not a routed request: counted apart, so that
         * request, tier and rule counts stay those of real traffic */
        pthread_mutex_lock(&m->lock);
        add(m, F_EXPLAIN, (const char *[]){status}, 1);
        pthread_mutex_unlock(&m->lock);
        return;
    }
    if (req->t_upstream_us != 0) {
        uint64_t end = req->t_end_us != 0 ? req->t_end_us : now_us;
        upstream = end > req->t_upstream_us ? end - req->t_upstream_us : 0;
    }

    pthread_mutex_lock(&m->lock);
    add(m, F_REQUESTS, (const char *[]){model, provider, tier, rule, status}, 1);
    add(m, F_DOOR_REQUESTS,
        (const char *[]){door_label((enum door)req->door, req->ep), status_class(req->resp_status)},
        1);
    if (req->score >= 0) {
        add(m, F_SCORE_SUM, (const char *[]){tier, rule}, req->score);
        add(m, F_SCORE_COUNT, (const char *[]){tier, rule}, 1);
    }
    if (req->resp_status >= 400)
        add(m, F_ERRORS, (const char *[]){model, tier, status}, 1);
    if (req->stream)
        add(m, F_STREAMS, (const char *[]){model}, 1);
    add(m, F_CACHE,
        (const char *[]){model, req->cache_x == CACHE_X_HIT    ? "hit"
                                : req->cache_x == CACHE_X_MISS ? "miss"
                                                               : "bypass"},
        1);
    if (req->prompt_tokens > 0)
        add(m, F_PROMPT_TOKENS, (const char *[]){model}, (double)req->prompt_tokens);
    if (req->completion_tokens > 0)
        add(m, F_COMPLETION_TOKENS, (const char *[]){model}, (double)req->completion_tokens);
    if (req->cached_tokens > 0)
        add(m, F_CACHED_TOKENS, (const char *[]){model}, (double)req->cached_tokens);
    if (request_unpriced(req)) {
        add(m, F_UNPRICED, (const char *[]){model}, 1);
    } else if (req->cost_usd >= 0) {
        add(m, F_COST, (const char *[]){model, tier, key}, req->cost_usd);
        if (req->baseline_usd >= 0) {
            add(m, F_BASELINE, (const char *[]){model, tier, key}, req->baseline_usd);
            add(m, F_SAVINGS, (const char *[]){model, tier, key}, req->baseline_usd - req->cost_usd);
        }
    }
    if (req->cost_estimated)
        add(m, F_ESTIMATED, (const char *[]){model}, 1);
    if (req->cls_result != 0 && cfg->classifier.enabled) {
        /* the classifier's call is booked to its own model */
        const char *cm = model_name(cfg, cfg->classifier.model);
        add(m, F_CLASSIFIER_CALLS,
            (const char *[]){cm, classifier_result_name((enum classifier_result)req->cls_result)}, 1);
        if (req->cls_cost_usd > 0) {
            add(m, F_CLASSIFIER_COST, (const char *[]){cm}, req->cls_cost_usd);
            add(m, F_COST, (const char *[]){cm, tier, key}, req->cls_cost_usd);
        }
        if (req->cls_prompt_tokens > 0)
            add(m, F_PROMPT_TOKENS, (const char *[]){cm}, (double)req->cls_prompt_tokens);
        if (req->cls_completion_tokens > 0)
            add(m, F_COMPLETION_TOKENS, (const char *[]){cm}, (double)req->cls_completion_tokens);
    }
    for (size_t i = 0; req->attempts != NULL && i < req->n_attempts; i++) {
        const attempt_t *a = &req->attempts[i];
        const char *from = model_name(cfg, a->model);
        const char *result = a->error[0] == '\0' ? "ok" : metrics_failover_reason(a->status, a->error);
        add(m, F_ATTEMPTS, (const char *[]){from, provider_name(cfg, a->model), result}, 1);
        if (a->error[0] == '\0' || i + 1 >= req->n_attempts)
            continue;
        if (req->attempts[i + 1].retry) /* the same model again: a retry, not a failover */
            add(m, F_RETRIES, (const char *[]){from, provider_name(cfg, a->model), result}, 1);
        else
            add(m, F_FAILOVERS,
                (const char *[]){from, model_name(cfg, req->attempts[i + 1].model), result}, 1);
    }
    if (req->casc != NULL) {
        const cascade_run_t *run = req->casc;
        for (size_t i = 0; i < run->n_steps; i++) {
            const cascade_step_t *st = &run->steps[i];
            add(m, F_CASCADE_STEPS,
                (const char *[]){tier, model_name(cfg, st->model), cascade_verdict_name(st->verdict),
                                 st->reason != CASCADE_OK ? cascade_reason_name(st->reason) : "-"},
                1);
        }
        if (req->cost_usd >= 0 && run->direct_usd >= 0) {
            add(m, F_CASCADE_COST, (const char *[]){tier}, req->cost_usd);
            add(m, F_CASCADE_DIRECT, (const char *[]){tier}, run->direct_usd);
        }
    }
    observe_hist(m, F_DURATION, (const char *[]){model}, total);
    if (req->t_upstream_us != 0) {
        observe_hist(m, F_UPSTREAM, (const char *[]){model}, upstream);
        if (req->t_first_byte_us >= req->t_upstream_us)
            observe_hist(m, F_TTFB, (const char *[]){model},
                         req->t_first_byte_us - req->t_upstream_us);
    }
    observe_hist(m, F_OVERHEAD, (const char *[]){NULL}, total > upstream ? total - upstream : 0);
    observe_experiment(m, cfg, req);
    observe_groups(m, cfg, req);
    pthread_mutex_unlock(&m->lock);
}

/* ------------------------------------------------------------ merging */


static int cmp_series(const void *a, const void *b)
{
    const series_t *x = *(series_t *const *)a, *y = *(series_t *const *)b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    if (c != 0)
        return c;
    return x->klen < y->klen ? -1 : x->klen > y->klen;
}

size_t metrics_collect(metrics_t *const *shards, size_t n, int fam, merged_t **out)
{
    size_t total = 0, k = 0, n_out = 0;
    for (size_t i = 0; i < n; i++)
        if (shards[i] != NULL)
            total += shards[i]->n;
    series_t **all = xmalloc((total ? total : 1) * sizeof *all);
    for (size_t i = 0; i < n; i++) {
        if (shards[i] == NULL)
            continue;
        for (size_t j = 0; j < shards[i]->n_tab; j++)
            for (series_t *s = shards[i]->tab[j]; s != NULL; s = s->next)
                if (s->fam == fam)
                    all[k++] = s;
    }
    qsort(all, k, sizeof *all, cmp_series);
    merged_t *res = xcalloc(k ? k : 1, sizeof *res);
    for (size_t i = 0; i < k; i++) {
        series_t *s = all[i];
        if (n_out == 0 || cmp_series(&all[i - 1], &all[i]) != 0) {
            res[n_out].key = s->key;
            res[n_out].klen = s->klen;
            n_out++;
        }
        merged_t *r = &res[n_out - 1];
        r->value += s->value;
        if (s->h != NULL) {
            for (int b = 0; b <= METRICS_N_BUCKETS; b++)
                r->h.b[b] += s->h->b[b];
            r->h.sum += s->h->sum;
            r->h.count += s->h->count;
        }
    }
    free(all);
    *out = res;
    return n_out;
}

void metrics_lock_all(metrics_t *const *shards, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (shards[i] != NULL)
            pthread_mutex_lock(&shards[i]->lock);
}

void metrics_unlock_all(metrics_t *const *shards, size_t n)
{
    for (size_t i = n; i-- > 0;)
        if (shards[i] != NULL)
            pthread_mutex_unlock(&shards[i]->lock);
}

/* Label values are NUL-terminated inside the key. */
const char *metrics_key_label(const char *key, size_t klen, int idx)
{
    size_t off = 0;
    for (int i = 0; i < idx && off < klen; i++)
        off += strlen(key + off) + 1;
    return off < klen ? key + off : "-";
}
