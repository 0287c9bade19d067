/* metrics: per-shard request metrics merged at scrape time. See
 * include/metrics.h for the thread rules and docs/internals/metrics.md for
 * the list of metrics.
 *
 * A series is (family, label values) -> a counter (double) or a histogram.
 * Its key is the label values in the family's label order, each followed by
 * a NUL, so two series of a family are the same exactly when their keys
 * compare equal. Scrapes lock every shard, collect one family at a time,
 * sort by key and merge equal neighbours. */
#include "account/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "route/router.h"
#include "core/util.h"

const double metrics_buckets[METRICS_N_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                   0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                                   5,      10,    30,     60};

/* longest label value kept (longer config names are cut) */
#define LABEL_MAX 128
#define MAX_LABELS 5
#define KEY_MAX (MAX_LABELS * (LABEL_MAX + 1))

enum family {
    F_REQUESTS,
    F_ERRORS,
    F_STREAMS,
    F_CACHE,
    F_PROMPT_TOKENS,
    F_COMPLETION_TOKENS,
    F_CACHED_TOKENS,
    F_COST,
    F_BASELINE,
    F_SAVINGS,
    F_ESTIMATED,
    F_ATTEMPTS,
    F_FAILOVERS,
    F_DURATION,
    F_UPSTREAM,
    F_TTFB,
    F_OVERHEAD,
    F_EXPLAIN,
    F_COUNT
};

typedef struct family_def {
    const char *name;
    const char *help;
    bool histogram;
    int n_labels;
    const char *labels[MAX_LABELS];
} family_def_t;

static const family_def_t FAMILIES[F_COUNT] = {
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
};

typedef struct hist {
    uint64_t b[METRICS_N_BUCKETS + 1]; /* per bucket, the last is +Inf */
    double sum;
    uint64_t count;
} hist_t;

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
static series_t *series_get(metrics_t *m, int fam, const char *const *vals)
{
    char key[KEY_MAX];
    size_t klen = key_build(key, vals, FAMILIES[fam].n_labels);
    uint32_t h = hash_key(fam, key, klen);
    series_t *s;

    for (s = m->tab[h & (m->n_tab - 1)]; s != NULL; s = s->next)
        if (s->hash == h && s->fam == fam && s->klen == klen && memcmp(s->key, key, klen) == 0)
            return s;
    if (m->n >= m->n_tab)
        grow(m);
    s = xcalloc(1, sizeof *s + klen);
    s->hash = h;
    s->fam = (uint16_t)fam;
    s->klen = (uint16_t)klen;
    memcpy(s->key, key, klen);
    if (FAMILIES[fam].histogram)
        s->h = xcalloc(1, sizeof *s->h);
    size_t j = h & (m->n_tab - 1);
    s->next = m->tab[j];
    m->tab[j] = s;
    m->n++;
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

    snprintf(status, sizeof status, "%u", req->resp_status);
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
    if (req->cost_usd >= 0) {
        add(m, F_COST, (const char *[]){model, tier, key}, req->cost_usd);
        if (req->baseline_usd >= 0) {
            add(m, F_BASELINE, (const char *[]){model, tier, key}, req->baseline_usd);
            add(m, F_SAVINGS, (const char *[]){model, tier, key}, req->baseline_usd - req->cost_usd);
        }
    }
    if (req->cost_estimated)
        add(m, F_ESTIMATED, (const char *[]){model}, 1);
    for (size_t i = 0; req->attempts != NULL && i < req->n_attempts; i++) {
        const attempt_t *a = &req->attempts[i];
        const char *from = model_name(cfg, a->model);
        const char *result = a->error[0] == '\0' ? "ok" : metrics_failover_reason(a->status, a->error);
        add(m, F_ATTEMPTS, (const char *[]){from, provider_name(cfg, a->model), result}, 1);
        if (a->error[0] != '\0' && i + 1 < req->n_attempts)
            add(m, F_FAILOVERS,
                (const char *[]){from, model_name(cfg, req->attempts[i + 1].model), result}, 1);
    }
    observe_hist(m, F_DURATION, (const char *[]){model}, total);
    if (req->t_upstream_us != 0) {
        observe_hist(m, F_UPSTREAM, (const char *[]){model}, upstream);
        if (req->t_first_byte_us >= req->t_upstream_us)
            observe_hist(m, F_TTFB, (const char *[]){model},
                         req->t_first_byte_us - req->t_upstream_us);
    }
    observe_hist(m, F_OVERHEAD, (const char *[]){NULL}, total > upstream ? total - upstream : 0);
    pthread_mutex_unlock(&m->lock);
}

/* ------------------------------------------------------------ merging */

typedef struct merged {
    const char *key;
    size_t klen;
    double value;
    hist_t h;
} merged_t;

static int cmp_series(const void *a, const void *b)
{
    const series_t *x = *(series_t *const *)a, *y = *(series_t *const *)b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    if (c != 0)
        return c;
    return x->klen < y->klen ? -1 : x->klen > y->klen;
}

/* The series of family fam over all shards (whose locks the caller holds),
 * merged by key and sorted. Returns the count; *out is freed by the caller
 * (keys point into the shards' series). */
static size_t collect(metrics_t *const *shards, size_t n, int fam, merged_t **out)
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

static void lock_all(metrics_t *const *shards, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (shards[i] != NULL)
            pthread_mutex_lock(&shards[i]->lock);
}

static void unlock_all(metrics_t *const *shards, size_t n)
{
    for (size_t i = n; i-- > 0;)
        if (shards[i] != NULL)
            pthread_mutex_unlock(&shards[i]->lock);
}

/* Label value idx of a key (NUL-terminated inside the key). */
static const char *key_label(const char *key, size_t klen, int idx)
{
    size_t off = 0;
    for (int i = 0; i < idx && off < klen; i++)
        off += strlen(key + off) + 1;
    return off < klen ? key + off : "-";
}

/* ------------------------------------------------------------ exposition */

static int put_num(buf_t *out, double v)
{
    char s[64];
    if (isnan(v))
        return buf_puts(out, "NaN");
    if (isinf(v))
        return buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    snprintf(s, sizeof s, "%.15g", v);
    return buf_puts(out, s);
}

static int put_escaped(buf_t *out, const char *v)
{
    int rc = 0;
    for (const char *p = v; *p != '\0'; p++) {
        if (*p == '\\')
            rc |= buf_puts(out, "\\\\");
        else if (*p == '"')
            rc |= buf_puts(out, "\\\"");
        else if (*p == '\n')
            rc |= buf_puts(out, "\\n");
        else
            rc |= buf_append(out, p, 1);
    }
    return rc;
}

/* {a="x",b="y"[,le="..."]} — nothing when there is no label at all. */
static int put_labels(buf_t *out, const family_def_t *f, const merged_t *s, const char *le)
{
    int rc = 0;
    if (f->n_labels == 0 && le == NULL)
        return 0;
    rc |= buf_puts(out, "{");
    for (int i = 0; i < f->n_labels; i++) {
        rc |= buf_puts(out, i ? ",": "");
        rc |= buf_puts(out, f->labels[i]);
        rc |= buf_puts(out, "=\"");
        rc |= put_escaped(out, key_label(s->key, s->klen, i));
        rc |= buf_puts(out, "\"");
    }
    if (le != NULL) {
        rc |= buf_puts(out, f->n_labels ? ",le=\"" : "le=\"");
        rc |= buf_puts(out, le);
        rc |= buf_puts(out, "\"");
    }
    rc |= buf_puts(out, "}");
    return rc;
}

static int put_header(buf_t *out, const char *name, const char *help, const char *type)
{
    int rc = buf_puts(out, "# HELP ");
    rc |= buf_puts(out, name);
    rc |= buf_puts(out, " ");
    rc |= buf_puts(out, help);
    rc |= buf_puts(out, "\n# TYPE ");
    rc |= buf_puts(out, name);
    rc |= buf_puts(out, " ");
    rc |= buf_puts(out, type);
    rc |= buf_puts(out, "\n");
    return rc;
}

static int put_sample(buf_t *out, const char *name, const char *suffix, const family_def_t *f,
                      const merged_t *s, const char *le, double v)
{
    int rc = buf_puts(out, name);
    rc |= buf_puts(out, suffix);
    rc |= put_labels(out, f, s, le);
    rc |= buf_puts(out, " ");
    rc |= put_num(out, v);
    rc |= buf_puts(out, "\n");
    return rc;
}

static int render_family(buf_t *out, int fam, const merged_t *rows, size_t n)
{
    const family_def_t *f = &FAMILIES[fam];
    int rc = put_header(out, f->name, f->help, f->histogram ? "histogram" : "counter");
    for (size_t i = 0; i < n; i++) {
        const merged_t *s = &rows[i];
        if (!f->histogram) {
            rc |= put_sample(out, f->name, "", f, s, NULL, s->value);
            continue;
        }
        uint64_t cum = 0;
        for (int b = 0; b < METRICS_N_BUCKETS; b++) {
            char le[32];
            snprintf(le, sizeof le, "%g", metrics_buckets[b]);
            cum += s->h.b[b];
            rc |= put_sample(out, f->name, "_bucket", f, s, le, (double)cum);
        }
        cum += s->h.b[METRICS_N_BUCKETS];
        rc |= put_sample(out, f->name, "_bucket", f, s, "+Inf", (double)cum);
        rc |= put_sample(out, f->name, "_sum", f, s, NULL, s->h.sum);
        rc |= put_sample(out, f->name, "_count", f, s, NULL, (double)s->h.count);
    }
    return rc;
}

static int put_simple(buf_t *out, const char *name, const char *type, const char *help, double v)
{
    int rc = put_header(out, name, help, type);
    rc |= buf_puts(out, name);
    rc |= buf_puts(out, " ");
    rc |= put_num(out, v);
    rc |= buf_puts(out, "\n");
    return rc;
}

static int render_extra(buf_t *out, const metrics_extra_t *x)
{
    int rc = 0;
    if (x->version != NULL) {
        rc |= put_header(out, "llmrouter_build_info", "Build information (always 1)", "gauge");
        rc |= buf_puts(out, "llmrouter_build_info{version=\"");
        rc |= put_escaped(out, x->version);
        rc |= buf_puts(out, "\"} 1\n");
    }
    rc |= put_simple(out, "llmrouter_uptime_seconds", "gauge", "Seconds since the process started",
                     x->uptime_s);
    rc |= put_simple(out, "llmrouter_config_generation", "gauge",
                     "Generation of the configuration in use (changes on every reload)",
                     (double)x->config_generation);
    rc |= put_simple(out, "llmrouter_config_reloads_total", "counter",
                     "Successful configuration reloads", (double)x->config_reloads);
    rc |= put_simple(out, "llmrouter_config_reload_errors_total", "counter",
                     "Configuration reloads refused because the file was invalid",
                     (double)x->config_reload_errors);
    if (x->shards > 0)
        rc |= put_simple(out, "llmrouter_shards", "gauge", "Event-loop threads", (double)x->shards);
    if (x->mcache != NULL) {
        const mcache_stats_t *c = x->mcache;
        rc |= put_simple(out, "llmrouter_memcache_entries", "gauge", "Entries in the memory cache",
                         (double)c->entries);
        rc |= put_simple(out, "llmrouter_memcache_bytes", "gauge",
                         "Bytes held by the memory cache", (double)c->bytes);
        rc |= put_simple(out, "llmrouter_memcache_max_bytes", "gauge",
                         "Byte bound of the memory cache", (double)c->max_bytes);
        rc |= put_simple(out, "llmrouter_memcache_hits_total", "counter", "Memory cache hits",
                         (double)c->hits);
        rc |= put_simple(out, "llmrouter_memcache_misses_total", "counter",
                         "Memory cache misses", (double)c->misses);
        rc |= put_simple(out, "llmrouter_memcache_inserts_total", "counter",
                         "Memory cache inserts", (double)c->inserts);
        rc |= put_simple(out, "llmrouter_memcache_evictions_total", "counter",
                         "Memory cache entries evicted to stay under the byte bound",
                         (double)c->evictions);
        rc |= put_simple(out, "llmrouter_memcache_expired_total", "counter",
                         "Memory cache entries dropped after their TTL", (double)c->expired);
    }
    if (x->redis != NULL) {
        const rds_stats_t *r = x->redis;
        rc |= put_simple(out, "llmrouter_redis_errors_total", "counter",
                         "Redis commands that failed with an error", (double)r->errors);
        rc |= put_simple(out, "llmrouter_redis_timeouts_total", "counter",
                         "Redis commands that timed out", (double)r->timeouts);
        rc |= put_simple(out, "llmrouter_redis_down_total", "counter",
                         "Redis commands failed because the connection was down", (double)r->down);
        rc |= put_simple(out, "llmrouter_redis_reconnects_total", "counter",
                         "Redis reconnections after the first connect", (double)r->reconnects);
        rc |= put_simple(out, "llmrouter_redis_dropped_writes_total", "counter",
                         "Redis cache writes dropped (down or overloaded)",
                         (double)r->dropped_writes);
        rc |= put_simple(out, "llmrouter_redis_in_flight", "gauge",
                         "Redis commands waiting for a reply", (double)r->in_flight);
        rc |= put_simple(out, "llmrouter_redis_connected", "gauge",
                         "1 when the Redis connection accepts commands",
                         r->connected ? 1 : 0);
    }
    return rc;
}

int metrics_render(metrics_t *const *shards, size_t n, const metrics_extra_t *extra, buf_t *out)
{
    int rc = 0;
    lock_all(shards, n);
    for (int fam = 0; fam < F_COUNT; fam++) {
        merged_t *rows;
        size_t k = collect(shards, n, fam, &rows);
        rc |= render_family(out, fam, rows, k);
        free(rows);
    }
    unlock_all(shards, n);
    if (extra != NULL)
        rc |= render_extra(out, extra);
    return rc ? -1 : 0;
}

/* ------------------------------------------------------------ stats JSON */

double metrics_quantile(const uint64_t counts[METRICS_N_BUCKETS + 1], double q)
{
    uint64_t total = 0, cum = 0;
    for (int i = 0; i <= METRICS_N_BUCKETS; i++)
        total += counts[i];
    if (total == 0)
        return -1;
    double rank = q * (double)total;
    for (int i = 0; i < METRICS_N_BUCKETS; i++) {
        if (counts[i] > 0 && (double)(cum + counts[i]) >= rank) {
            double lo = i ? metrics_buckets[i - 1] : 0, hi = metrics_buckets[i];
            double into = rank - (double)cum;
            if (into < 0)
                into = 0;
            return lo + (hi - lo) * into / (double)counts[i];
        }
        cum += counts[i];
    }
    return metrics_buckets[METRICS_N_BUCKETS - 1]; /* in +Inf: the highest finite bound */
}

typedef struct row {
    const char *name;
    double requests, errors, streams, cost, baseline, savings, hits, misses;
    double prompt_tokens, completion_tokens;
    uint64_t dur[METRICS_N_BUCKETS + 1];
    uint64_t up[METRICS_N_BUCKETS + 1];
} row_t;

typedef struct rows {
    row_t *v;
    size_t n, alloc;
} rows_t;

static row_t *row_get(rows_t *rs, const char *name)
{
    for (size_t i = 0; i < rs->n; i++)
        if (strcmp(rs->v[i].name, name) == 0)
            return &rs->v[i];
    if (rs->n == rs->alloc) {
        rs->alloc = rs->alloc ? rs->alloc * 2 : 16;
        rs->v = xrealloc(rs->v, rs->alloc * sizeof *rs->v);
    }
    row_t *r = &rs->v[rs->n++];
    memset(r, 0, sizeof *r);
    r->name = name;
    return r;
}

static int cmp_rows(const void *a, const void *b)
{
    return strcmp(((const row_t *)a)->name, ((const row_t *)b)->name);
}

static int put_field(buf_t *out, const char *name, double v, bool comma)
{
    char s[96];
    if (!isfinite(v))
        v = 0;
    snprintf(s, sizeof s, "%s\"%s\":%.12g", comma ? "," : "", name, v);
    return buf_puts(out, s);
}

static int put_ms(buf_t *out, const char *name, const uint64_t *h, double q)
{
    double v = metrics_quantile(h, q);
    if (v < 0) {
        int rc = buf_puts(out, ",\"");
        rc |= buf_puts(out, name);
        rc |= buf_puts(out, "\":null");
        return rc;
    }
    return put_field(out, name, v * 1000.0, true);
}

/* full: a model or the totals (cache, tokens, latency); else a tier. */
static int put_row(buf_t *out, const char *label, const row_t *r, bool full)
{
    int rc = buf_puts(out, "{\"");
    rc |= buf_puts(out, label);
    rc |= buf_puts(out, "\":");
    rc |= json_append_string(out, r->name, strlen(r->name));
    rc |= put_field(out, "requests", r->requests, true);
    rc |= put_field(out, "errors", r->errors, true);
    rc |= put_field(out, "cost_usd", r->cost, true);
    rc |= put_field(out, "baseline_cost_usd", r->baseline, true);
    rc |= put_field(out, "savings_usd", r->savings, true);
    rc |= put_field(out, "savings_percent", r->baseline > 0 ? 100.0 * r->savings / r->baseline : 0,
                    true);
    if (full) {
        rc |= put_field(out, "streams", r->streams, true);
        rc |= put_field(out, "cache_hits", r->hits, true);
        rc |= put_field(out, "cache_misses", r->misses, true);
        rc |= put_field(out, "cache_hit_rate",
                        r->hits + r->misses > 0 ? r->hits / (r->hits + r->misses) : 0, true);
        rc |= put_field(out, "prompt_tokens", r->prompt_tokens, true);
        rc |= put_field(out, "completion_tokens", r->completion_tokens, true);
        rc |= put_ms(out, "p50_ms", r->dur, 0.5);
        rc |= put_ms(out, "p95_ms", r->dur, 0.95);
        rc |= put_ms(out, "upstream_p50_ms", r->up, 0.5);
        rc |= put_ms(out, "upstream_p95_ms", r->up, 0.95);
    }
    rc |= buf_puts(out, "}");
    return rc;
}

static void hist_into(uint64_t *dst, const hist_t *h)
{
    for (int b = 0; b <= METRICS_N_BUCKETS; b++)
        dst[b] += h->b[b];
}

int metrics_stats_json(metrics_t *const *shards, size_t n, buf_t *out)
{
    rows_t models = {0}, tiers = {0};
    row_t total = {.name = "total"};
    merged_t *f[F_COUNT];
    size_t k[F_COUNT];
    int rc = 0;

    lock_all(shards, n);
    for (int fam = 0; fam < F_COUNT; fam++)
        k[fam] = collect(shards, n, fam, &f[fam]);

    /* label positions: see FAMILIES */
    for (size_t i = 0; i < k[F_REQUESTS]; i++) {
        const merged_t *s = &f[F_REQUESTS][i];
        row_get(&models, key_label(s->key, s->klen, 0))->requests += s->value;
        row_get(&tiers, key_label(s->key, s->klen, 2))->requests += s->value;
    }
    for (size_t i = 0; i < k[F_ERRORS]; i++) {
        const merged_t *s = &f[F_ERRORS][i];
        row_get(&models, key_label(s->key, s->klen, 0))->errors += s->value;
        row_get(&tiers, key_label(s->key, s->klen, 1))->errors += s->value;
    }
    for (size_t i = 0; i < k[F_STREAMS]; i++)
        row_get(&models, key_label(f[F_STREAMS][i].key, f[F_STREAMS][i].klen, 0))->streams +=
            f[F_STREAMS][i].value;
    for (size_t i = 0; i < k[F_CACHE]; i++) {
        const merged_t *s = &f[F_CACHE][i];
        row_t *r = row_get(&models, key_label(s->key, s->klen, 0));
        const char *res = key_label(s->key, s->klen, 1);
        if (strcmp(res, "hit") == 0)
            r->hits += s->value;
        else if (strcmp(res, "miss") == 0)
            r->misses += s->value;
    }
    for (size_t i = 0; i < k[F_PROMPT_TOKENS]; i++)
        row_get(&models, key_label(f[F_PROMPT_TOKENS][i].key, f[F_PROMPT_TOKENS][i].klen, 0))
            ->prompt_tokens += f[F_PROMPT_TOKENS][i].value;
    for (size_t i = 0; i < k[F_COMPLETION_TOKENS]; i++)
        row_get(&models,
                key_label(f[F_COMPLETION_TOKENS][i].key, f[F_COMPLETION_TOKENS][i].klen, 0))
            ->completion_tokens += f[F_COMPLETION_TOKENS][i].value;
    for (int fam = F_COST; fam <= F_SAVINGS; fam++) {
        for (size_t i = 0; i < k[fam]; i++) {
            const merged_t *s = &f[fam][i];
            row_t *rm = row_get(&models, key_label(s->key, s->klen, 0));
            row_t *rt = row_get(&tiers, key_label(s->key, s->klen, 1));
            double *dm = fam == F_COST ? &rm->cost : fam == F_BASELINE ? &rm->baseline : &rm->savings;
            double *dt = fam == F_COST ? &rt->cost : fam == F_BASELINE ? &rt->baseline : &rt->savings;
            *dm += s->value;
            *dt += s->value;
        }
    }
    for (size_t i = 0; i < k[F_DURATION]; i++)
        hist_into(row_get(&models, key_label(f[F_DURATION][i].key, f[F_DURATION][i].klen, 0))->dur,
                  &f[F_DURATION][i].h);
    for (size_t i = 0; i < k[F_UPSTREAM]; i++)
        hist_into(row_get(&models, key_label(f[F_UPSTREAM][i].key, f[F_UPSTREAM][i].klen, 0))->up,
                  &f[F_UPSTREAM][i].h);

    for (size_t i = 0; i < models.n; i++) {
        const row_t *r = &models.v[i];
        total.requests += r->requests;
        total.errors += r->errors;
        total.streams += r->streams;
        total.cost += r->cost;
        total.baseline += r->baseline;
        total.savings += r->savings;
        total.hits += r->hits;
        total.misses += r->misses;
        total.prompt_tokens += r->prompt_tokens;
        total.completion_tokens += r->completion_tokens;
        for (int b = 0; b <= METRICS_N_BUCKETS; b++) {
            total.dur[b] += r->dur[b];
            total.up[b] += r->up[b];
        }
    }
    if (models.n > 0)
        qsort(models.v, models.n, sizeof *models.v, cmp_rows);
    if (tiers.n > 0)
        qsort(tiers.v, tiers.n, sizeof *tiers.v, cmp_rows);

    /* the rows' names point into the shards' series: write before unlocking */
    rc |= buf_puts(out, "{\"totals\":");
    rc |= put_row(out, "name", &total, true);
    rc |= buf_puts(out, ",\"models\":[");
    for (size_t i = 0; i < models.n; i++) {
        rc |= buf_puts(out, i ? "," : "");
        rc |= put_row(out, "model", &models.v[i], true);
    }
    rc |= buf_puts(out, "],\"tiers\":[");
    for (size_t i = 0; i < tiers.n; i++) {
        rc |= buf_puts(out, i ? "," : "");
        rc |= put_row(out, "tier", &tiers.v[i], false);
    }
    rc |= buf_puts(out, "],\"explain_calls\":");
    {
        double explain = 0;
        char num[32];
        for (size_t i = 0; i < k[F_EXPLAIN]; i++)
            explain += f[F_EXPLAIN][i].value;
        snprintf(num, sizeof num, "%.0f", explain);
        rc |= buf_puts(out, num);
    }
    rc |= buf_puts(out, "}");
    unlock_all(shards, n);

    for (int fam = 0; fam < F_COUNT; fam++)
        free(f[fam]);
    free(models.v);
    free(tiers.v);
    return rc ? -1 : 0;
}
