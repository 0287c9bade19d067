/* accesslog: JSON-lines access log and quality sampler. See
 * include/accesslog.h. Both write through a logfile_t: a descriptor, the
 * path it was opened from (for reopen), and a read-write lock — writers hold
 * it shared around write(2), reopen holds it exclusively while it swaps the
 * descriptor, so no writer ever writes to a closed (or reused) descriptor. */
#include "account/accesslog.h"
#include "http/door.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/json.h"
#include "account/metrics.h"
#include "route/experiment.h"
#include "route/router.h"
#include "route/rules.h"
#include "core/util.h"
#include "upstream/cascade.h"
#include "route/classifier.h"

typedef struct logfile {
    pthread_rwlock_t lock;
    int fd;     /* -1: off */
    bool owned; /* opened here (closed here, reopened on rotation) */
    char *path;
} logfile_t;

struct accesslog {
    logfile_t f;
};

struct sampler {
    logfile_t f;
    double rate;
};

static int open_append(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0 && err != NULL)
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return fd;
}

static int logfile_init(logfile_t *f, const char *target, char *err, size_t errlen)
{
    f->fd = -1;
    f->owned = false;
    f->path = NULL;
    if (strcmp(target, "stdout") == 0) {
        f->fd = STDOUT_FILENO;
    } else if (strcmp(target, "stderr") == 0) {
        f->fd = STDERR_FILENO;
    } else if (strcmp(target, "off") != 0 && target[0] != '\0') {
        f->fd = open_append(target, err, errlen);
        if (f->fd < 0)
            return -1;
        f->owned = true;
        f->path = xstrdup(target);
    }
    pthread_rwlock_init(&f->lock, NULL);
    return 0;
}

static void logfile_write(logfile_t *f, const char *p, size_t n)
{
    pthread_rwlock_rdlock(&f->lock);
    /* one write per line; a short write to a regular file only happens when
     * the disk is full, and then the rest would fail too */
    if (f->fd >= 0) {
        ssize_t w;
        do
            w = write(f->fd, p, n);
        while (w < 0 && errno == EINTR);
    }
    pthread_rwlock_unlock(&f->lock);
}

static int logfile_reopen(logfile_t *f)
{
    if (!f->owned)
        return 0;
    int fd = open_append(f->path, NULL, 0);
    if (fd < 0)
        return -1;
    pthread_rwlock_wrlock(&f->lock);
    int old = f->fd;
    f->fd = fd;
    pthread_rwlock_unlock(&f->lock);
    close(old);
    return 0;
}

static void logfile_fini(logfile_t *f)
{
    if (f->owned && f->fd >= 0)
        close(f->fd);
    free(f->path);
    pthread_rwlock_destroy(&f->lock);
}

/* ------------------------------------------------------------ formatting */

static int put_time(buf_t *out)
{
    struct timespec ts;
    struct tm tm;
    char s[128];
    int year, f[6];
    char *o = s;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    year = tm.tm_year + 1900;
    if (year < 0 || year > 9999) {
        snprintf(s, sizeof s, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\"", year, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(ts.tv_nsec / 1000000) % 1000);
        return buf_puts(out, s);
    }
    /* the same "YYYY-MM-DDTHH:MM:SS.mmmZ" without the format machinery */
    f[0] = tm.tm_mon + 1;
    f[1] = tm.tm_mday;
    f[2] = tm.tm_hour;
    f[3] = tm.tm_min;
    f[4] = tm.tm_sec;
    f[5] = (int)((ts.tv_nsec / 1000000) % 1000);
    *o++ = '"';
    *o++ = (char)('0' + year / 1000);
    *o++ = (char)('0' + year / 100 % 10);
    *o++ = (char)('0' + year / 10 % 10);
    *o++ = (char)('0' + year % 10);
    for (int i = 0; i < 5; i++) {
        *o++ = "--T::"[i];
        *o++ = (char)('0' + f[i] / 10 % 10);
        *o++ = (char)('0' + f[i] % 10);
    }
    *o++ = '.';
    *o++ = (char)('0' + f[5] / 100);
    *o++ = (char)('0' + f[5] / 10 % 10);
    *o++ = (char)('0' + f[5] % 10);
    *o++ = 'Z';
    *o++ = '"';
    *o = '\0';
    return buf_puts(out, s);
}

static int put_key(buf_t *out, const char *key)
{
    int rc = buf_puts(out, ",\"");
    rc |= buf_puts(out, key);
    rc |= buf_puts(out, "\":");
    return rc;
}

static int put_str(buf_t *out, const char *key, const char *v)
{
    int rc = put_key(out, key);
    if (v == NULL)
        return rc | buf_puts(out, "null");
    return rc | json_append_string(out, v, strlen(v));
}

static int put_int(buf_t *out, const char *key, int64_t v)
{
    char s[32];
    int rc = put_key(out, key);
    if (v < 0)
        return rc | buf_puts(out, "null");
    {
        /* snprintf's "%lld" of v >= 0, without the format machinery */
        char d[24];
        size_t n = 0, o = 0;
        uint64_t u = (uint64_t)v;
        do {
            d[n++] = (char)('0' + (int)(u % 10));
            u /= 10;
        } while (u > 0);
        while (n > 0)
            s[o++] = d[--n];
        s[o] = '\0';
    }
    return rc | buf_puts(out, s);
}

/* a number, or null when v < 0 or not finite */
static int put_num(buf_t *out, const char *key, double v, const char *fmt)
{
    char s[64];
    int rc = put_key(out, key);
    if (!(v >= 0) || !isfinite(v))
        return rc | buf_puts(out, "null");
    snprintf(s, sizeof s, fmt, v);
    return rc | buf_puts(out, s);
}

/* the same with "%.<decimals>f" (exact, without printf: core/buf.h) */
static int put_fixed(buf_t *out, const char *key, double v, int decimals)
{
    char s[64];
    int rc = put_key(out, key);
    if (!(v >= 0) || !isfinite(v))
        return rc | buf_puts(out, "null");
    buf_fmt_fixed(s, sizeof s, v, decimals);
    return rc | buf_puts(out, s);
}

static int put_bool(buf_t *out, const char *key, bool v)
{
    return put_key(out, key) | buf_puts(out, v ? "true" : "false");
}

static const char *model_of(const config_t *cfg, int m)
{
    return m >= 0 && (size_t)m < cfg->n_models ? cfg->models[m].name : NULL;
}

static const char *provider_of(const config_t *cfg, int m)
{
    if (m < 0 || (size_t)m >= cfg->n_models)
        return NULL;
    int p = cfg->models[m].provider;
    return p >= 0 && (size_t)p < cfg->n_providers ? cfg->providers[p].name : NULL;
}

/* Common head of both formats: time, request_id, rule, tier, model, provider. */
static int put_head(buf_t *out, const config_t *cfg, const req_t *req)
{
    int rc = buf_puts(out, "{\"time\":");
    rc |= put_time(out);
    rc |= put_str(out, "request_id", req->id);
    /* a request answered before routing (400, 405, 413, ...) has no rule
     * and no tier: null, not the name of whatever index 0 is */
    bool routed = router_routed(&req->route);
    rc |= put_str(out, "rule", routed ? router_rule_name(cfg, &req->route) : NULL);
    rc |= put_str(out, "tier", routed ? router_tier_name(cfg, &req->route) : NULL);
    rc |= put_fixed(out, "score", req->score, 3); /* null: no rule computed it */
    rc |= put_str(out, "model", model_of(cfg, req->model));
    rc |= put_str(out, "provider", provider_of(cfg, req->model));
    {
        /* only requests in an experiment carry its arm */
        const experiment_t *e = NULL;
        const exp_arm_t *a = experiment_arm_of(cfg, req->exp_arm, &e);
        if (a != NULL) {
            rc |= put_str(out, "experiment", e->name);
            rc |= put_str(out, "arm", a->name);
            if (req->exp_keyless)
                rc |= put_bool(out, "arm_keyless", true);
        }
    }
    return rc;
}

/* "cascade": {"steps": [{model, verdict, reason, cost_usd, judge_score}],
 * "direct_cost_usd"}: what each step of a cascade tier came to, and what
 * the chain's last model would have cost for the returned answer. */
static int put_cascade(buf_t *out, const config_t *cfg, const cascade_run_t *run)
{
    int rc = put_key(out, "cascade") | buf_puts(out, "{\"steps\":[");
    for (size_t i = 0; i < run->n_steps; i++) {
        const cascade_step_t *s = &run->steps[i];
        const char *m = model_of(cfg, s->model);
        rc |= buf_puts(out, i ? ",{\"model\":" : "{\"model\":");
        rc |= m ? json_append_string(out, m, strlen(m)) : buf_puts(out, "null");
        rc |= put_str(out, "verdict", cascade_verdict_name(s->verdict));
        rc |= put_str(out, "reason", s->reason != CASCADE_OK ? cascade_reason_name(s->reason) : NULL);
        rc |= put_num(out, "cost_usd", s->cost_usd, "%.10g");
        rc |= put_num(out, "judge_score", s->judge_score, "%.4g");
        rc |= buf_puts(out, "}");
    }
    rc |= buf_puts(out, "]");
    rc |= put_num(out, "direct_cost_usd", run->direct_usd, "%.10g");
    return rc | buf_puts(out, "}");
}

/* "classifier": {result, label, model, cost_usd, prompt_tokens,
 * completion_tokens, ms, error}: what asking routing.classifier came to
 * (its cost is also in the request's cost_usd). */
static int put_classifier(buf_t *out, const config_t *cfg, const req_t *req)
{
    const cfg_classifier_t *cl = &cfg->classifier;
    bool have = req->cls_label >= 0 && (size_t)req->cls_label < cl->n_labels;
    int rc = put_key(out, "classifier") | buf_puts(out, "{\"result\":");
    const char *res = classifier_result_name((enum classifier_result)req->cls_result);
    rc |= json_append_string(out, res, strlen(res));
    rc |= put_str(out, "label", have ? cl->labels[req->cls_label] : NULL);
    rc |= put_str(out, "model", cl->enabled ? model_of(cfg, cl->model) : NULL);
    rc |= put_num(out, "cost_usd", req->cls_cost_usd, "%.10g");
    rc |= put_int(out, "prompt_tokens", req->cls_prompt_tokens);
    rc |= put_int(out, "completion_tokens", req->cls_completion_tokens);
    rc |= put_num(out, "ms", req->cls_result == CLASSIFIER_CACHED ? 0 : (double)req->cls_us / 1000.0,
                  "%.3f");
    rc |= put_str(out, "error", req->cls_error[0] ? req->cls_error : NULL);
    return rc | buf_puts(out, "}");
}

static double ms_between(uint64_t from, uint64_t to)
{
    if (from == 0 || to == 0 || to < from)
        return -1;
    return (double)(to - from) / 1000.0;
}

int accesslog_format(const config_t *cfg, const req_t *req, uint64_t now_us, buf_t *out)
{
    static const char *const cache[] = {"BYPASS", "MISS", "HIT"};
    double total = ms_between(req->t_start_us, now_us);
    double upstream = -1, ttfb = -1, overhead = total;
    int rc;

    if (req->t_upstream_us != 0) {
        upstream = ms_between(req->t_upstream_us, req->t_end_us ? req->t_end_us : now_us);
        ttfb = ms_between(req->t_upstream_us, req->t_first_byte_us);
        if (total >= 0 && upstream >= 0)
            overhead = total > upstream ? total - upstream : 0;
    }
    rc = put_head(out, cfg, req);
    rc |= put_str(out, "key", req->key_name != NULL && req->key_name[0] ? req->key_name : NULL);
    rc |= put_str(out, "method", req->method);
    rc |= put_str(out, "path", req->path);
    rc |= put_str(out, "door", door_label((enum door)req->door, req->ep));
    if (req->explain_only)
        rc |= put_bool(out, "explain", true);
    rc |= put_int(out, "status", req->resp_status);
    rc |= put_int(out, "attempts", (int64_t)req->n_attempts);
    {
        int64_t retries = 0;
        for (size_t i = 0; req->attempts != NULL && i < req->n_attempts; i++)
            retries += req->attempts[i].retry != 0;
        rc |= put_int(out, "retries", retries);
    }
    rc |= put_bool(out, "stream", req->stream);
    rc |= put_str(out, "cache", req->cache_x <= CACHE_X_HIT ? cache[req->cache_x] : "BYPASS");
    rc |= put_int(out, "prompt_tokens", req->prompt_tokens);
    rc |= put_int(out, "completion_tokens", req->completion_tokens);
    rc |= put_int(out, "cached_tokens", req->cached_tokens);
    rc |= put_num(out, "cost_usd", request_cost_total(req), "%.10g");
    rc |= put_num(out, "baseline_cost_usd", req->baseline_usd, "%.10g");
    if (request_cost_total(req) >= 0 && req->baseline_usd >= 0) {
        char s[64];
        snprintf(s, sizeof s, "%.10g", req->baseline_usd - request_cost_total(req));
        rc |= put_key(out, "savings_usd") | buf_puts(out, s);
    } else {
        rc |= put_key(out, "savings_usd") | buf_puts(out, "null");
    }
    rc |= put_bool(out, "cost_estimated", req->cost_estimated);
    if (request_unpriced(req)) /* cost_usd is null: the model has no price */
        rc |= put_bool(out, "unpriced", true);
    rc |= put_fixed(out, "total_ms", total, 3);
    rc |= put_fixed(out, "upstream_ms", upstream, 3);
    rc |= put_fixed(out, "ttfb_ms", ttfb, 3);
    rc |= put_fixed(out, "overhead_ms", overhead, 3);
    if (req->adm_waited_ms > 0) /* waited for a provider slot (max_inflight) */
        rc |= put_fixed(out, "queue_ms", (double)req->adm_waited_ms, 0);

    rc |= put_key(out, "tags") | buf_puts(out, "[");
    if (req->route.rule >= 0 && cfg->rules != NULL &&
        (size_t)req->route.rule < rules_count(cfg->rules)) {
        const rule_action_t *a = rules_action(cfg->rules, (size_t)req->route.rule);
        for (size_t i = 0; i < a->n_tags; i++) {
            rc |= buf_puts(out, i ? "," : "");
            rc |= json_append_string(out, a->tags[i], strlen(a->tags[i]));
        }
    }
    rc |= buf_puts(out, "]");

    if (req->casc != NULL)
        rc |= put_cascade(out, cfg, req->casc);
    if (req->cls_result != CLASSIFIER_NONE)
        rc |= put_classifier(out, cfg, req);

    rc |= put_key(out, "failovers") | buf_puts(out, "[");
    bool first = true;
    for (size_t i = 0; req->attempts != NULL && i + 1 < req->n_attempts; i++) {
        const attempt_t *a = &req->attempts[i];
        if (a->error[0] == '\0' || req->attempts[i + 1].retry)
            continue; /* retries are counted in "retries", not failovers */
        rc |= buf_puts(out, first ? "{" : ",{");
        first = false;
        rc |= buf_puts(out, "\"from\":");
        const char *from = model_of(cfg, a->model), *to = model_of(cfg, req->attempts[i + 1].model);
        rc |= from ? json_append_string(out, from, strlen(from)) : buf_puts(out, "null");
        rc |= put_str(out, "to", to);
        rc |= put_str(out, "reason", metrics_failover_reason(a->status, a->error));
        rc |= put_int(out, "status", a->status ? (int64_t)a->status : -1);
        rc |= buf_puts(out, "}");
    }
    rc |= buf_puts(out, "]}\n");
    return rc ? -1 : 0;
}

/* ------------------------------------------------------------ access log */

accesslog_t *accesslog_open(const char *target, char *err, size_t errlen)
{
    accesslog_t *a = xcalloc(1, sizeof *a);
    if (logfile_init(&a->f, target != NULL ? target : "stdout", err, errlen) < 0) {
        free(a);
        return NULL;
    }
    return a;
}

void accesslog_write(accesslog_t *a, const config_t *cfg, const req_t *req, uint64_t now_us)
{
    buf_t b;
    if (a == NULL || a->f.fd < 0)
        return;
    buf_init(&b, ACCESSLOG_MAX_LINE);
    buf_reserve(&b, 1024);
    if (accesslog_format(cfg, req, now_us, &b) == 0)
        logfile_write(&a->f, buf_ptr(&b), buf_len(&b));
    buf_free(&b);
}

int accesslog_reopen(accesslog_t *a)
{
    return a != NULL ? logfile_reopen(&a->f) : 0;
}

void accesslog_close(accesslog_t *a)
{
    if (a == NULL)
        return;
    logfile_fini(&a->f);
    free(a);
}

/* ------------------------------------------------------------ sampler */

sampler_t *sampler_open(const char *path, double rate, char *err, size_t errlen)
{
    sampler_t *s = xcalloc(1, sizeof *s);
    if (path == NULL || logfile_init(&s->f, path, err, errlen) < 0) {
        if (path == NULL && err != NULL)
            snprintf(err, errlen, "no sample file");
        free(s);
        return NULL;
    }
    s->rate = rate < 0 ? 0 : rate > 1 ? 1 : rate;
    return s;
}

bool sampler_pick(const sampler_t *s, uint64_t rnd)
{
    if (s == NULL || s->rate <= 0)
        return false;
    if (s->rate >= 1)
        return true;
    return (double)(rnd >> 11) * 0x1.0p-53 < s->rate;
}

/* A body as embedded JSON when it is valid JSON, else as a string. */
static int put_body(buf_t *out, const char *key, const char *p, size_t n)
{
    int is_object = 0;
    int rc = put_key(out, key);
    if (p == NULL)
        return rc | buf_puts(out, "null");
    if (n > 0 && json_validate(p, n, &is_object) == 1) {
        /* Valid JSON has no raw line breaks inside strings: every CR/LF is
         * whitespace between tokens, so replacing them keeps it one line. */
        size_t start = buf_len(out);
        rc |= buf_append(out, p, n);
        if (rc == 0) {
            char *d = out->data + out->r + start;
            for (size_t i = 0; i < n; i++)
                if (d[i] == '\n' || d[i] == '\r')
                    d[i] = ' ';
        }
        return rc;
    }
    return rc | json_append_string(out, p, n);
}

int sampler_format(const config_t *cfg, const req_t *req, const char *request_body, size_t len,
                   const char *response_body, size_t rlen, buf_t *out)
{
    int rc = put_head(out, cfg, req);
    rc |= put_int(out, "status", req->resp_status);
    rc |= put_body(out, "request", request_body, len);
    rc |= put_body(out, "response", response_body, rlen);
    return rc ? -1 : 0;
}

void sampler_write_line(sampler_t *s, const char *line, size_t n)
{
    if (s != NULL && s->f.fd >= 0)
        logfile_write(&s->f, line, n);
}

void sampler_write(sampler_t *s, const config_t *cfg, const req_t *req, const char *request_body,
                   size_t len, const char *response_body, size_t rlen)
{
    buf_t b;
    if (s == NULL || s->f.fd < 0)
        return;
    /* a string-escaped body grows at most 6x (\u00XX) */
    buf_init(&b, 6 * (len + rlen) + 4096);
    int rc = sampler_format(cfg, req, request_body, len, response_body, rlen, &b);
    rc |= buf_puts(&b, ",\"judge\":null}\n");
    if (rc == 0)
        logfile_write(&s->f, buf_ptr(&b), buf_len(&b));
    buf_free(&b);
}

int sampler_reopen(sampler_t *s)
{
    return s != NULL ? logfile_reopen(&s->f) : 0;
}

void sampler_close(sampler_t *s)
{
    if (s == NULL)
        return;
    logfile_fini(&s->f);
    free(s);
}
