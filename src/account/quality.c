/* quality: judged scores, judge spend and drift windows, process-wide (see
 * include/account/quality.h). Series and windows are kept in small arrays
 * searched by name: their number is bounded by the names of the
 * configurations loaded (tiers x models x rules for the scores, models +
 * rules for the windows). */
#include "account/quality.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/json.h"
#include "core/log.h"
#include "core/util.h"

#define MAX_SERIES 4096
#define MAX_WINDOWS 1024
#define MAX_WINDOW_S_ENTRIES 10000 /* a time window's bound */

typedef struct series {
    char *tier, *model, *rule;
    uint64_t count;
    double sum;
    uint64_t hist[10]; /* scores 1..10 */
    uint64_t failures[JUDGE_FAIL_N];
} series_t;

typedef struct entry {
    uint64_t t_ms;
    int8_t score; /* 0: none */
    bool failed;
} entry_t;

enum { R_MEAN = 0, R_FAIL, R_N };
static const char *const reason_name[R_N] = {"mean_score", "failure_rate"};

typedef struct window {
    bool is_model;
    char *name;
    entry_t *ring;
    unsigned cap, head, n; /* entries ring[(head - n + i) % cap] */
    bool alert[R_N];
    uint64_t alert_since_ms[R_N];
    bool demoted;
    uint64_t demoted_until_ms;
    double mean, fail_rate; /* last computed */
    unsigned last_n, last_scored;
} window_t;

struct quality {
    pthread_mutex_t lock;
    series_t *series;
    size_t n_series;
    window_t *win;
    size_t n_win;
    atomic_uint n_demoted;
    uint64_t drops[QDROP_N], jerrs[QJERR_N];
    uint64_t judged;
    double cost_total, spend_today;
    int64_t spend_day; /* days since the epoch of spend_today */
    uint64_t hook_ok, hook_failed, hook_dropped;
};

static const char *const drop_name[QDROP_N] = {"queue_full", "daily_cap", "no_answer", "shutdown"};
static const char *const jerr_name[QJERR_N] = {"timeout", "http", "connect", "unparsable", "other"};

const char *quality_jerr_name(enum quality_jerr e)
{
    return (unsigned)e < QJERR_N ? jerr_name[e] : "other";
}

quality_t *quality_new(void)
{
    quality_t *q = xcalloc(1, sizeof *q);
    pthread_mutex_init(&q->lock, NULL);
    q->spend_day = -1;
    return q;
}

void quality_free(quality_t *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->n_series; i++) {
        free(q->series[i].tier);
        free(q->series[i].model);
        free(q->series[i].rule);
    }
    free(q->series);
    for (size_t i = 0; i < q->n_win; i++) {
        free(q->win[i].name);
        free(q->win[i].ring);
    }
    free(q->win);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

static series_t *series_get(quality_t *q, const char *tier, const char *model, const char *rule)
{
    series_t *s;
    for (size_t i = 0; i < q->n_series; i++) {
        s = &q->series[i];
        if (strcmp(s->tier, tier) == 0 && strcmp(s->model, model) == 0 &&
            strcmp(s->rule, rule) == 0)
            return s;
    }
    if (q->n_series >= MAX_SERIES)
        return NULL;
    q->series = xrealloc(q->series, (q->n_series + 1) * sizeof *q->series);
    s = &q->series[q->n_series++];
    memset(s, 0, sizeof *s);
    s->tier = xstrdup(tier);
    s->model = xstrdup(model);
    s->rule = xstrdup(rule);
    return s;
}

static window_t *window_get(quality_t *q, bool is_model, const char *name, bool create)
{
    window_t *w;
    for (size_t i = 0; i < q->n_win; i++)
        if (q->win[i].is_model == is_model && strcmp(q->win[i].name, name) == 0)
            return &q->win[i];
    if (!create || q->n_win >= MAX_WINDOWS)
        return NULL;
    q->win = xrealloc(q->win, (q->n_win + 1) * sizeof *q->win);
    w = &q->win[q->n_win++];
    memset(w, 0, sizeof *w);
    w->is_model = is_model;
    w->name = xstrdup(name);
    w->mean = -1;
    return w;
}

static entry_t *window_at(window_t *w, unsigned i)
{
    return &w->ring[(w->head + w->cap - w->n + i) % w->cap];
}

static void window_push(window_t *w, const cfg_alerts_t *a, const entry_t *e)
{
    unsigned cap = a->window_s > 0 ? MAX_WINDOW_S_ENTRIES : a->window;
    if (w->cap != cap) { /* first use, or the window's size was reloaded */
        free(w->ring);
        w->ring = xcalloc(cap, sizeof *w->ring);
        w->cap = cap;
        w->head = w->n = 0;
    }
    w->ring[w->head] = *e;
    w->head = (w->head + 1) % w->cap;
    if (w->n < w->cap)
        w->n++;
    /* a time window: entries older than window_s leave */
    while (a->window_s > 0 && w->n > 0 &&
           window_at(w, 0)->t_ms + (uint64_t)a->window_s * 1000 < e->t_ms)
        w->n--;
}

static void fill_event(quality_event_t *ev, const window_t *w, int r, bool raised)
{
    memset(ev, 0, sizeof *ev);
    snprintf(ev->kind, sizeof ev->kind, "%s", w->is_model ? "model" : "rule");
    snprintf(ev->name, sizeof ev->name, "%s", w->name);
    snprintf(ev->reason, sizeof ev->reason, "%s", reason_name[r]);
    ev->raised = raised;
    ev->demoted = w->demoted;
    ev->mean_score = w->mean;
    ev->failure_rate = w->fail_rate;
    ev->n = w->last_n;
    ev->n_scored = w->last_scored;
}

/* Recomputes w's figures and its alerts; appends transitions to ev. */
static size_t window_decide(quality_t *q, window_t *w, const cfg_alerts_t *a, uint64_t now,
                            quality_event_t *ev, size_t max)
{
    unsigned failed = 0, scored = 0;
    double sum = 0;
    size_t n_ev = 0;
    bool cross[R_N], ok[R_N], was_alert = w->alert[R_MEAN] || w->alert[R_FAIL];
    for (unsigned i = 0; i < w->n; i++) {
        const entry_t *e = window_at(w, i);
        failed += e->failed;
        if (e->score > 0) {
            scored++;
            sum += e->score;
        }
    }
    w->last_n = w->n;
    w->last_scored = scored;
    w->mean = scored > 0 ? sum / scored : -1;
    w->fail_rate = w->n > 0 ? (double)failed / w->n : 0;
    cross[R_MEAN] = scored >= a->min_samples && a->min_mean_score > 0 && w->mean < a->min_mean_score;
    ok[R_MEAN] = scored >= a->min_samples && !cross[R_MEAN];
    cross[R_FAIL] = w->n >= a->min_samples && w->fail_rate > a->max_failure_rate;
    ok[R_FAIL] = w->n >= a->min_samples && !cross[R_FAIL];
    for (int r = 0; r < R_N; r++) {
        if (!w->alert[r] && cross[r]) {
            w->alert[r] = true;
            w->alert_since_ms[r] = now;
            if (n_ev < max)
                fill_event(&ev[n_ev++], w, r, true);
        } else if (w->alert[r] && ok[r]) {
            w->alert[r] = false;
            if (n_ev < max)
                fill_event(&ev[n_ev++], w, r, false);
        }
    }
    if (w->is_model && a->demote) {
        bool crossing = cross[R_MEAN] || cross[R_FAIL];
        if (crossing && !w->demoted) {
            /* raised now, or still crossing after a cooldown: (again) skipped */
            w->demoted = true;
            w->demoted_until_ms = now + (uint64_t)a->demote_cooldown_s * 1000;
            atomic_fetch_add(&q->n_demoted, 1);
            for (size_t i = 0; i < n_ev; i++)
                ev[i].demoted = true;
            if (was_alert)
                log_warn("quality: model %s still in alert after its cooldown: demoted again for %u s",
                         w->name, a->demote_cooldown_s);
        }
    }
    return n_ev;
}

size_t quality_record(quality_t *q, const cfg_alerts_t *a, const quality_sample_t *s,
                      uint64_t now_ms, quality_event_t *ev, size_t max)
{
    size_t n_ev = 0;
    series_t *se;
    pthread_mutex_lock(&q->lock);
    se = series_get(q, s->tier, s->model, s->rule);
    if (se != NULL) {
        if (s->scored && s->score >= 1 && s->score <= 10) {
            se->count++;
            se->sum += s->score;
            se->hist[s->score - 1]++;
        }
        if ((unsigned)s->failure < JUDGE_FAIL_N && s->failure != JUDGE_FAIL_NONE)
            se->failures[s->failure]++;
    }
    if (s->scored)
        q->judged++;
    if (a != NULL) {
        entry_t e = {.t_ms = now_ms,
                     .score = (int8_t)(s->scored ? s->score : 0),
                     .failed = s->failure != JUDGE_FAIL_NONE};
        for (int k = 0; k < 2; k++) {
            const char *name = k == 0 ? s->model : s->rule;
            window_t *w;
            if (name == NULL || strcmp(name, "-") == 0)
                continue;
            w = window_get(q, k == 0, name, true);
            if (w == NULL)
                continue;
            window_push(w, a, &e);
            n_ev += window_decide(q, w, a, now_ms, ev + n_ev, max - n_ev);
        }
    }
    pthread_mutex_unlock(&q->lock);
    return n_ev;
}

void quality_count_drop(quality_t *q, enum quality_drop why)
{
    pthread_mutex_lock(&q->lock);
    if ((unsigned)why < QDROP_N)
        q->drops[why]++;
    pthread_mutex_unlock(&q->lock);
}

void quality_count_judge_error(quality_t *q, enum quality_jerr why)
{
    pthread_mutex_lock(&q->lock);
    if ((unsigned)why < QJERR_N)
        q->jerrs[why]++;
    pthread_mutex_unlock(&q->lock);
}

static int64_t today(void)
{
    return (int64_t)time(NULL) / 86400;
}

void quality_add_spend(quality_t *q, double usd)
{
    int64_t d = today();
    if (!(usd > 0))
        return;
    pthread_mutex_lock(&q->lock);
    if (d != q->spend_day) {
        q->spend_day = d;
        q->spend_today = 0;
    }
    q->spend_today += usd;
    q->cost_total += usd;
    pthread_mutex_unlock(&q->lock);
}

bool quality_spend_ok(quality_t *q, double cap_usd)
{
    bool ok;
    int64_t d = today();
    pthread_mutex_lock(&q->lock);
    ok = d != q->spend_day || q->spend_today < cap_usd;
    pthread_mutex_unlock(&q->lock);
    return ok;
}

void quality_count_webhook(quality_t *q, bool ok, bool dropped)
{
    pthread_mutex_lock(&q->lock);
    if (dropped)
        q->hook_dropped++;
    else if (ok)
        q->hook_ok++;
    else
        q->hook_failed++;
    pthread_mutex_unlock(&q->lock);
}

bool quality_demoted(quality_t *q, const char *model, uint64_t now_ms)
{
    window_t *w;
    bool d = false;
    if (q == NULL || atomic_load(&q->n_demoted) == 0)
        return false;
    pthread_mutex_lock(&q->lock);
    w = window_get(q, true, model, false);
    if (w != NULL && w->demoted) {
        if (now_ms >= w->demoted_until_ms) {
            /* the cooldown is over: traffic again, judged afresh */
            w->demoted = false;
            w->n = 0;
            atomic_fetch_sub(&q->n_demoted, 1);
            log_info("quality: model %s: demotion cooldown over, getting traffic again "
                     "(its alert clears when a fresh window is back over the thresholds)",
                     w->name);
        } else {
            d = true;
        }
    }
    pthread_mutex_unlock(&q->lock);
    return d;
}

/* ---- exposition ---- */

static int put_label(buf_t *out, const char *k, const char *v, bool first)
{
    int rc = buf_puts(out, first ? "" : ",");
    rc |= buf_puts(out, k);
    rc |= buf_puts(out, "=\"");
    for (const char *p = v; *p; p++) {
        if (*p == '\\' || *p == '"')
            rc |= buf_puts(out, "\\");
        if (*p == '\n')
            rc |= buf_puts(out, "\\n");
        else
            rc |= buf_append(out, p, 1);
    }
    return rc | buf_puts(out, "\"");
}

static int put_series_labels(buf_t *out, const series_t *s)
{
    return put_label(out, "tier", s->tier, true) | put_label(out, "model", s->model, false) |
           put_label(out, "rule", s->rule, false);
}

int quality_render_metrics(quality_t *q, buf_t *out)
{
    char num[64];
    int rc = 0;
    if (q == NULL)
        return 0;
    pthread_mutex_lock(&q->lock);
    rc |= buf_puts(out, "# HELP llmrouter_judge_score Judged quality of sampled answers (1..10), "
                        "per tier, model and rule.\n# TYPE llmrouter_judge_score histogram\n");
    for (size_t i = 0; i < q->n_series; i++) {
        const series_t *s = &q->series[i];
        uint64_t cum = 0;
        if (s->count == 0)
            continue;
        for (int b = 0; b < 10; b++) {
            cum += s->hist[b];
            rc |= buf_puts(out, "llmrouter_judge_score_bucket{");
            rc |= put_series_labels(out, s);
            snprintf(num, sizeof num, ",le=\"%d\"} %llu\n", b + 1, (unsigned long long)cum);
            rc |= buf_puts(out, num);
        }
        rc |= buf_puts(out, "llmrouter_judge_score_bucket{");
        rc |= put_series_labels(out, s);
        snprintf(num, sizeof num, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        rc |= buf_puts(out, num);
        rc |= buf_puts(out, "llmrouter_judge_score_sum{");
        rc |= put_series_labels(out, s);
        snprintf(num, sizeof num, "} %.17g\n", s->sum);
        rc |= buf_puts(out, num);
        rc |= buf_puts(out, "llmrouter_judge_score_count{");
        rc |= put_series_labels(out, s);
        snprintf(num, sizeof num, "} %llu\n", (unsigned long long)s->count);
        rc |= buf_puts(out, num);
    }
    rc |= buf_puts(out, "# HELP llmrouter_quality_failures_total Sampled answers that failed hard "
                        "(error, refusal, truncated, invalid_json).\n"
                        "# TYPE llmrouter_quality_failures_total counter\n");
    for (size_t i = 0; i < q->n_series; i++)
        for (int f = 1; f < JUDGE_FAIL_N; f++) {
            const series_t *s = &q->series[i];
            if (s->failures[f] == 0)
                continue;
            rc |= buf_puts(out, "llmrouter_quality_failures_total{");
            rc |= put_series_labels(out, s);
            rc |= put_label(out, "reason", judge_failure_name((enum judge_failure)f), false);
            snprintf(num, sizeof num, "} %llu\n", (unsigned long long)s->failures[f]);
            rc |= buf_puts(out, num);
        }
    snprintf(num, sizeof num, "%.17g\n", q->cost_total);
    rc |= buf_puts(out, "# HELP llmrouter_judge_cost_usd_total What judging sampled answers cost "
                        "(never part of a request's cost).\n"
                        "# TYPE llmrouter_judge_cost_usd_total counter\nllmrouter_judge_cost_usd_total ");
    rc |= buf_puts(out, num);
    snprintf(num, sizeof num, "%llu\n", (unsigned long long)q->judged);
    rc |= buf_puts(out, "# HELP llmrouter_judge_judged_total Samples the judge scored.\n"
                        "# TYPE llmrouter_judge_judged_total counter\nllmrouter_judge_judged_total ");
    rc |= buf_puts(out, num);
    rc |= buf_puts(out, "# HELP llmrouter_judge_dropped_total Samples not judged, by reason.\n"
                        "# TYPE llmrouter_judge_dropped_total counter\n");
    for (int d = 0; d < QDROP_N; d++) {
        snprintf(num, sizeof num, "\"} %llu\n", (unsigned long long)q->drops[d]);
        rc |= buf_puts(out, "llmrouter_judge_dropped_total{reason=\"");
        rc |= buf_puts(out, drop_name[d]);
        rc |= buf_puts(out, num);
    }
    rc |= buf_puts(out, "# HELP llmrouter_judge_errors_total Judge calls that gave no score, by reason.\n"
                        "# TYPE llmrouter_judge_errors_total counter\n");
    for (int e = 0; e < QJERR_N; e++) {
        snprintf(num, sizeof num, "\"} %llu\n", (unsigned long long)q->jerrs[e]);
        rc |= buf_puts(out, "llmrouter_judge_errors_total{reason=\"");
        rc |= buf_puts(out, jerr_name[e]);
        rc |= buf_puts(out, num);
    }
    rc |= buf_puts(out, "# HELP llmrouter_quality_alert 1 while a model's or rule's window is in "
                        "alert (reason mean_score or failure_rate).\n"
                        "# TYPE llmrouter_quality_alert gauge\n");
    for (size_t i = 0; i < q->n_win; i++)
        for (int r = 0; r < R_N; r++) {
            const window_t *w = &q->win[i];
            rc |= buf_puts(out, "llmrouter_quality_alert{");
            rc |= put_label(out, "kind", w->is_model ? "model" : "rule", true);
            rc |= put_label(out, "name", w->name, false);
            rc |= put_label(out, "reason", reason_name[r], false);
            rc |= buf_puts(out, w->alert[r] ? "} 1\n" : "} 0\n");
        }
    rc |= buf_puts(out, "# HELP llmrouter_quality_demoted 1 while a model is skipped in chains "
                        "for its quality alert.\n# TYPE llmrouter_quality_demoted gauge\n");
    for (size_t i = 0; i < q->n_win; i++) {
        const window_t *w = &q->win[i];
        if (!w->is_model)
            continue;
        rc |= buf_puts(out, "llmrouter_quality_demoted{");
        rc |= put_label(out, "model", w->name, true);
        rc |= buf_puts(out, w->demoted ? "} 1\n" : "} 0\n");
    }
    rc |= buf_puts(out, "# HELP llmrouter_alert_webhook_total Alert webhook deliveries, by result.\n"
                        "# TYPE llmrouter_alert_webhook_total counter\n");
    snprintf(num, sizeof num, "llmrouter_alert_webhook_total{result=\"ok\"} %llu\n",
             (unsigned long long)q->hook_ok);
    rc |= buf_puts(out, num);
    snprintf(num, sizeof num, "llmrouter_alert_webhook_total{result=\"failed\"} %llu\n",
             (unsigned long long)q->hook_failed);
    rc |= buf_puts(out, num);
    snprintf(num, sizeof num, "llmrouter_alert_webhook_total{result=\"dropped\"} %llu\n",
             (unsigned long long)q->hook_dropped);
    rc |= buf_puts(out, num);
    pthread_mutex_unlock(&q->lock);
    return rc ? -1 : 0;
}

/* {"NAME":{"n":N,"mean":M},...} of one dimension (0 tier, 1 model, 2 rule). */
static int put_dim(buf_t *out, const quality_t *q, int dim)
{
    int rc = buf_puts(out, "{");
    bool first = true;
    for (size_t i = 0; i < q->n_series; i++) {
        const series_t *s = &q->series[i];
        const char *name = dim == 0 ? s->tier : dim == 1 ? s->model : s->rule;
        uint64_t n = 0;
        double sum = 0;
        bool seen = false;
        char num[96];
        if (s->count == 0)
            continue;
        for (size_t k = 0; k < i && !seen; k++) { /* printed with an earlier series */
            const series_t *t = &q->series[k];
            seen = t->count > 0 && strcmp(dim == 0 ? t->tier : dim == 1 ? t->model : t->rule,
                                          name) == 0;
        }
        if (seen)
            continue;
        for (size_t k = i; k < q->n_series; k++) {
            const series_t *t = &q->series[k];
            if (strcmp(dim == 0 ? t->tier : dim == 1 ? t->model : t->rule, name) == 0) {
                n += t->count;
                sum += t->sum;
            }
        }
        rc |= buf_puts(out, first ? "" : ",");
        first = false;
        rc |= json_append_string(out, name, strlen(name));
        snprintf(num, sizeof num, ":{\"n\":%llu,\"mean\":%.4f}", (unsigned long long)n,
                 n ? sum / (double)n : 0.0);
        rc |= buf_puts(out, num);
    }
    return rc | buf_puts(out, "}");
}

int quality_stats_json(quality_t *q, buf_t *out)
{
    char num[256];
    int rc = 0;
    bool first = true;
    pthread_mutex_lock(&q->lock);
    rc |= buf_puts(out, "{\"tiers\":");
    rc |= put_dim(out, q, 0);
    rc |= buf_puts(out, ",\"models\":");
    rc |= put_dim(out, q, 1);
    rc |= buf_puts(out, ",\"rules\":");
    rc |= put_dim(out, q, 2);
    snprintf(num, sizeof num,
             ",\"judge\":{\"judged\":%llu,\"cost_usd\":%.10g,\"spend_today_usd\":%.10g,\"dropped\":{",
             (unsigned long long)q->judged, q->cost_total,
             q->spend_day == today() ? q->spend_today : 0.0);
    rc |= buf_puts(out, num);
    for (int d = 0; d < QDROP_N; d++) {
        snprintf(num, sizeof num, "%s\"%s\":%llu", d ? "," : "", drop_name[d],
                 (unsigned long long)q->drops[d]);
        rc |= buf_puts(out, num);
    }
    rc |= buf_puts(out, "},\"errors\":{");
    for (int e = 0; e < QJERR_N; e++) {
        snprintf(num, sizeof num, "%s\"%s\":%llu", e ? "," : "", jerr_name[e],
                 (unsigned long long)q->jerrs[e]);
        rc |= buf_puts(out, num);
    }
    rc |= buf_puts(out, "}},\"alerts\":[");
    for (size_t i = 0; i < q->n_win; i++)
        for (int r = 0; r < R_N; r++) {
            const window_t *w = &q->win[i];
            if (!w->alert[r])
                continue;
            rc |= buf_puts(out, first ? "{\"kind\":" : ",{\"kind\":");
            first = false;
            rc |= buf_puts(out, w->is_model ? "\"model\",\"name\":" : "\"rule\",\"name\":");
            rc |= json_append_string(out, w->name, strlen(w->name));
            snprintf(num, sizeof num,
                     ",\"reason\":\"%s\",\"mean_score\":%.4f,\"failure_rate\":%.4f,\"n\":%u,"
                     "\"n_scored\":%u,\"demoted\":%s}",
                     reason_name[r], w->mean, w->fail_rate, w->last_n, w->last_scored,
                     w->demoted ? "true" : "false");
            rc |= buf_puts(out, num);
        }
    rc |= buf_puts(out, "]}");
    pthread_mutex_unlock(&q->lock);
    return rc ? -1 : 0;
}

void quality_readyz(quality_t *q, buf_t *out)
{
    bool any = false;
    if (q == NULL || atomic_load(&q->n_demoted) == 0)
        return;
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < q->n_win; i++) {
        const window_t *w = &q->win[i];
        if (!w->is_model || !w->demoted)
            continue;
        buf_puts(out, any ? "," : ",\"demoted\":[");
        json_append_string(out, w->name, strlen(w->name));
        any = true;
    }
    if (any)
        buf_puts(out, "]");
    pthread_mutex_unlock(&q->lock);
}
