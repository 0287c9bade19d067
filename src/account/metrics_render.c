/* metrics_render: the readers of the merged per-shard series of
 * src/account/metrics.c — the Prometheus text exposition (GET /metrics) and
 * the stats JSON (GET /v1/router/stats, the dashboard). Called from any
 * thread; takes every shard's lock while it reads. */
#include "account/metrics.h"
#include "account/metrics_store.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/util.h"

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
        rc |= put_escaped(out, metrics_key_label(s->key, s->klen, i));
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
    const family_def_t *f = &metrics_families[fam];
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

/* One family with a row per Redis client (label client). */
static int put_redis_family(buf_t *out, const char *name, const char *type, const char *help,
                            const metrics_redis_t *rs, size_t n, size_t field)
{
    int rc = put_header(out, name, help, type);
    for (size_t i = 0; i < n; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&rs[i].sum + field, sizeof v);
        rc |= buf_puts(out, name);
        rc |= buf_puts(out, "{client=\"");
        rc |= buf_puts(out, rs[i].client);
        rc |= buf_puts(out, "\"} ");
        rc |= put_num(out, (double)v);
        rc |= buf_puts(out, "\n");
    }
    return rc;
}

static int render_redis(buf_t *out, const metrics_redis_t *rs, size_t n)
{
    static const struct {
        const char *name, *type, *help;
        size_t field;
    } fam[] = {
        {"llmrouter_redis_errors_total", "counter", "Redis commands that failed with an error",
         offsetof(rds_stats_t, errors)},
        {"llmrouter_redis_timeouts_total", "counter", "Redis commands that timed out",
         offsetof(rds_stats_t, timeouts)},
        {"llmrouter_redis_down_total", "counter",
         "Redis commands failed at once because the client was down or cooling down",
         offsetof(rds_stats_t, down)},
        {"llmrouter_redis_skipped_total", "counter",
         "Redis commands not sent because the request's redis.request_budget_ms was spent",
         offsetof(rds_stats_t, skipped)},
        {"llmrouter_redis_reconnects_total", "counter",
         "Redis connections that came up after the first one", offsetof(rds_stats_t, reconnects)},
        {"llmrouter_redis_connect_attempts_total", "counter", "Redis connections tried",
         offsetof(rds_stats_t, connect_attempts)},
        {"llmrouter_redis_cooldowns_total", "counter",
         "Cooldowns started after redis.cooldown_after_timeouts timeouts in a row",
         offsetof(rds_stats_t, cooldowns)},
        {"llmrouter_redis_dropped_writes_total", "counter",
         "Redis cache writes dropped (down or overloaded)", offsetof(rds_stats_t, dropped_writes)},
        {"llmrouter_redis_in_flight", "gauge", "Redis commands waiting for a reply",
         offsetof(rds_stats_t, in_flight)},
    };
    static const char *const states[3] = {"up", "down", "cooling"};
    int rc = 0;
    for (size_t f = 0; f < UTIL_ARRAY_LEN(fam); f++)
        rc |= put_redis_family(out, fam[f].name, fam[f].type, fam[f].help, rs, n, fam[f].field);
    rc |= put_header(out, "llmrouter_redis_connected",
                     "1 when some thread's Redis client accepts commands", "gauge");
    for (size_t i = 0; i < n; i++) {
        rc |= buf_puts(out, "llmrouter_redis_connected{client=\"");
        rc |= buf_puts(out, rs[i].client);
        rc |= buf_puts(out, rs[i].sum.connected ? "\"} 1\n" : "\"} 0\n");
    }
    rc |= put_header(out, "llmrouter_redis_state",
                     "Event-loop threads whose Redis client is in this state (up: commands are "
                     "sent; down: reconnecting, commands fail at once; cooling: timeouts in a "
                     "row, not tried until the cooldown ends)",
                     "gauge");
    for (size_t i = 0; i < n; i++) {
        for (int st = 0; st < 3; st++) {
            rc |= buf_puts(out, "llmrouter_redis_state{client=\"");
            rc |= buf_puts(out, rs[i].client);
            rc |= buf_puts(out, "\",state=\"");
            rc |= buf_puts(out, states[st]);
            rc |= buf_puts(out, "\"} ");
            rc |= put_num(out, (double)rs[i].n_state[st]);
            rc |= buf_puts(out, "\n");
        }
    }
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
    if (x->redis != NULL && x->n_redis > 0)
        rc |= render_redis(out, x->redis, x->n_redis);
    return rc;
}

int metrics_render(metrics_t *const *shards, size_t n, const metrics_extra_t *extra, buf_t *out)
{
    int rc = 0;
    metrics_lock_all(shards, n);
    for (int fam = 0; fam < F_COUNT; fam++) {
        merged_t *rows;
        size_t k = metrics_collect(shards, n, fam, &rows);
        rc |= render_family(out, fam, rows, k);
        free(rows);
    }
    metrics_unlock_all(shards, n);
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
    double score_sum, score_n; /* complexity scores computed for this row's requests */
    double unpriced; /* answers of a model without a price (their cost is unknown) */
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
    if (!full) {
        rc |= put_field(out, "scored_requests", r->score_n, true);
        if (r->score_n > 0)
            rc |= put_field(out, "mean_score", r->score_sum / r->score_n, true);
        else
            rc |= buf_puts(out, ",\"mean_score\":null");
    }
    if (full) {
        rc |= put_field(out, "streams", r->streams, true);
        rc |= put_field(out, "cache_hits", r->hits, true);
        rc |= put_field(out, "cache_misses", r->misses, true);
        rc |= put_field(out, "cache_hit_rate",
                        r->hits + r->misses > 0 ? r->hits / (r->hits + r->misses) : 0, true);
        rc |= put_field(out, "prompt_tokens", r->prompt_tokens, true);
        rc |= put_field(out, "completion_tokens", r->completion_tokens, true);
        rc |= put_field(out, "unpriced_requests", r->unpriced, true);
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

/* ,"experiments":[{"experiment","arm","requests","errors","success_rate",
 * "cost_usd","cost_per_request","keyless"}]: per arm of an experiment,
 * from the merged experiment families (f, k as in metrics_stats_json). */
static int put_experiments(buf_t *out, merged_t *const *f, const size_t *k)
{
    int rc = buf_puts(out, ",\"experiments\":[");
    bool first = true;
    /* F_EXP_REQUESTS is sorted by key: an arm's status classes are neighbours */
    for (size_t i = 0; i < k[F_EXP_REQUESTS];) {
        const merged_t *s = &f[F_EXP_REQUESTS][i];
        const char *e = metrics_key_label(s->key, s->klen, 0);
        const char *a = metrics_key_label(s->key, s->klen, 1);
        double req = 0, err = 0, cost = 0, keyless = 0;
        char num[256];
        for (; i < k[F_EXP_REQUESTS]; i++) {
            const merged_t *t = &f[F_EXP_REQUESTS][i];
            const char *cls = metrics_key_label(t->key, t->klen, 2);
            if (strcmp(metrics_key_label(t->key, t->klen, 0), e) != 0 ||
                strcmp(metrics_key_label(t->key, t->klen, 1), a) != 0)
                break;
            req += t->value;
            if (cls[0] != '2')
                err += t->value;
        }
        for (size_t j = 0; j < k[F_EXP_COST]; j++) {
            const merged_t *t = &f[F_EXP_COST][j];
            if (strcmp(metrics_key_label(t->key, t->klen, 0), e) == 0 &&
                strcmp(metrics_key_label(t->key, t->klen, 1), a) == 0)
                cost += t->value;
        }
        for (size_t j = 0; j < k[F_EXP_KEYLESS]; j++) {
            const merged_t *t = &f[F_EXP_KEYLESS][j];
            if (strcmp(metrics_key_label(t->key, t->klen, 0), e) == 0 &&
                strcmp(metrics_key_label(t->key, t->klen, 1), a) == 0)
                keyless += t->value;
        }
        rc |= buf_puts(out, first ? "{\"experiment\":" : ",{\"experiment\":");
        first = false;
        rc |= json_append_string(out, e, strlen(e));
        rc |= buf_puts(out, ",\"arm\":");
        rc |= json_append_string(out, a, strlen(a));
        snprintf(num, sizeof num,
                 ",\"requests\":%.0f,\"errors\":%.0f,\"success_rate\":%.6g,\"cost_usd\":%.10g,"
                 "\"cost_per_request\":%.10g,\"keyless\":%.0f}",
                 req, err, req > 0 ? (req - err) / req : 0, cost, req > 0 ? cost / req : 0,
                 keyless);
        rc |= buf_puts(out, num);
    }
    return rc | buf_puts(out, "]");
}

int metrics_stats_json(metrics_t *const *shards, size_t n, buf_t *out)
{
    rows_t models = {0}, tiers = {0};
    row_t total = {.name = "total"};
    merged_t *f[F_COUNT];
    size_t k[F_COUNT];
    int rc = 0;

    metrics_lock_all(shards, n);
    for (int fam = 0; fam < F_COUNT; fam++)
        k[fam] = metrics_collect(shards, n, fam, &f[fam]);

    /* label positions: see metrics_families */
    for (size_t i = 0; i < k[F_REQUESTS]; i++) {
        const merged_t *s = &f[F_REQUESTS][i];
        row_get(&models, metrics_key_label(s->key, s->klen, 0))->requests += s->value;
        row_get(&tiers, metrics_key_label(s->key, s->klen, 2))->requests += s->value;
    }
    for (size_t i = 0; i < k[F_ERRORS]; i++) {
        const merged_t *s = &f[F_ERRORS][i];
        row_get(&models, metrics_key_label(s->key, s->klen, 0))->errors += s->value;
        row_get(&tiers, metrics_key_label(s->key, s->klen, 1))->errors += s->value;
    }
    for (size_t i = 0; i < k[F_STREAMS]; i++)
        row_get(&models, metrics_key_label(f[F_STREAMS][i].key, f[F_STREAMS][i].klen, 0))->streams +=
            f[F_STREAMS][i].value;
    for (size_t i = 0; i < k[F_CACHE]; i++) {
        const merged_t *s = &f[F_CACHE][i];
        row_t *r = row_get(&models, metrics_key_label(s->key, s->klen, 0));
        const char *res = metrics_key_label(s->key, s->klen, 1);
        if (strcmp(res, "hit") == 0)
            r->hits += s->value;
        else if (strcmp(res, "miss") == 0)
            r->misses += s->value;
    }
    for (size_t i = 0; i < k[F_PROMPT_TOKENS]; i++)
        row_get(&models, metrics_key_label(f[F_PROMPT_TOKENS][i].key, f[F_PROMPT_TOKENS][i].klen, 0))
            ->prompt_tokens += f[F_PROMPT_TOKENS][i].value;
    for (size_t i = 0; i < k[F_COMPLETION_TOKENS]; i++)
        row_get(&models,
                metrics_key_label(f[F_COMPLETION_TOKENS][i].key, f[F_COMPLETION_TOKENS][i].klen, 0))
            ->completion_tokens += f[F_COMPLETION_TOKENS][i].value;
    for (int fam = F_COST; fam <= F_SAVINGS; fam++) {
        for (size_t i = 0; i < k[fam]; i++) {
            const merged_t *s = &f[fam][i];
            row_t *rm = row_get(&models, metrics_key_label(s->key, s->klen, 0));
            row_t *rt = row_get(&tiers, metrics_key_label(s->key, s->klen, 1));
            double *dm = fam == F_COST ? &rm->cost : fam == F_BASELINE ? &rm->baseline : &rm->savings;
            double *dt = fam == F_COST ? &rt->cost : fam == F_BASELINE ? &rt->baseline : &rt->savings;
            *dm += s->value;
            *dt += s->value;
        }
    }
    for (size_t i = 0; i < k[F_UNPRICED]; i++)
        row_get(&models, metrics_key_label(f[F_UNPRICED][i].key, f[F_UNPRICED][i].klen, 0))
            ->unpriced += f[F_UNPRICED][i].value;
    for (size_t i = 0; i < k[F_SCORE_SUM]; i++)
        row_get(&tiers, metrics_key_label(f[F_SCORE_SUM][i].key, f[F_SCORE_SUM][i].klen, 0))
            ->score_sum += f[F_SCORE_SUM][i].value;
    for (size_t i = 0; i < k[F_SCORE_COUNT]; i++)
        row_get(&tiers, metrics_key_label(f[F_SCORE_COUNT][i].key, f[F_SCORE_COUNT][i].klen, 0))
            ->score_n += f[F_SCORE_COUNT][i].value;
    for (size_t i = 0; i < k[F_DURATION]; i++)
        hist_into(row_get(&models, metrics_key_label(f[F_DURATION][i].key, f[F_DURATION][i].klen, 0))->dur,
                  &f[F_DURATION][i].h);
    for (size_t i = 0; i < k[F_UPSTREAM]; i++)
        hist_into(row_get(&models, metrics_key_label(f[F_UPSTREAM][i].key, f[F_UPSTREAM][i].klen, 0))->up,
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
        total.unpriced += r->unpriced;
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
    /* requests per door: the label values are a fixed set */
    rc |= buf_puts(out, ",\"doors\":{");
    {
        static const char *const doors[] = {"chat", "completions", "embeddings", "messages",
                                            "responses"};
        char num[64];
        for (size_t d = 0; d < sizeof doors / sizeof doors[0]; d++) {
            double v = 0;
            for (size_t i = 0; i < k[F_DOOR_REQUESTS]; i++) {
                const merged_t *s = &f[F_DOOR_REQUESTS][i];
                if (strcmp(metrics_key_label(s->key, s->klen, 0), doors[d]) == 0)
                    v += s->value;
            }
            snprintf(num, sizeof num, "%s\"%s\":%.0f", d ? "," : "", doors[d], v);
            rc |= buf_puts(out, num);
        }
    }
    rc |= buf_puts(out, "}");
    rc |= put_experiments(out, f, k);
    rc |= buf_puts(out, "}");
    metrics_unlock_all(shards, n);

    for (int fam = 0; fam < F_COUNT; fam++)
        free(f[fam]);
    free(models.v);
    free(tiers.v);
    return rc ? -1 : 0;
}
