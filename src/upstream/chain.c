/* chain: what the failover loop of upstream.c records and how an exhausted
 * chain is answered: one attempt record per model tried, a 429's retry
 * headers, and the final answer (429 with retry-after when only rate limits
 * stood in the way, else 502), listing every attempt. */
#include "upstream/chain.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "http/reply.h"

/* Milliseconds from a 429's retry-after-ms (ms, may be fractional) or
 * retry-after (seconds, or an HTTP-date) value v[0..n); -1 if unusable. */
static int64_t parse_retry(const char *v, size_t n, bool ms)
{
    char tmp[64], *end;
    double d;
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n'))
        n--;
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    d = strtod(tmp, &end);
    if (end != tmp && *end == '\0') {
        if (!(d >= 0) || d > 86400e3) /* negative, NaN or absurd */
            return -1;
        return (int64_t)(ms ? d + 0.999 : d * 1000 + 0.999);
    }
    if (!ms) {
        time_t when = curl_getdate(tmp, NULL), now = time(NULL);
        if (when == -1)
            return -1;
        return when > now ? (int64_t)(when - now) * 1000 : 0;
    }
    return -1;
}

void upstream_take_retry_header(req_t *req, const char *p, size_t n)
{
    int64_t v;
    if (n > 15 && strncasecmp(p, "retry-after-ms:", 15) == 0) {
        v = parse_retry(p + 15, n - 15, true);
        if (v >= 0) {
            req->up_retry_ms = v;
            req->up_retry_exact = true;
        }
    } else if (n > 12 && strncasecmp(p, "retry-after:", 12) == 0 && !req->up_retry_exact) {
        v = parse_retry(p + 12, n - 12, false);
        if (v >= 0)
            req->up_retry_ms = v;
    }
}

void upstream_record(req_t *req, int m, unsigned status, const char *error)
{
    attempt_t *a;
    if (req->n_attempts >= req->attempts_cap) {
        /* one per model of the chain, more when models are retried or a
         * cooling one is tried last (upstream/admit.h) */
        size_t cap = req->attempts_cap ? req->attempts_cap * 2 : req->route.n + 1;
        if (cap > UPSTREAM_MAX_ATTEMPTS)
            cap = UPSTREAM_MAX_ATTEMPTS;
        if (req->n_attempts >= cap)
            return;
        req->attempts = xrealloc(req->attempts, cap * sizeof *req->attempts);
        req->attempts_cap = cap;
    }
    a = &req->attempts[req->n_attempts++];
    a->model = m;
    a->status = status;
    a->retry = m == req->model ? req->retry_n : 0;
    snprintf(a->error, sizeof a->error, "%s", error ? error : "");
    /* a skip has no transfer: it starts and ends now */
    a->t1_us = util_now_us();
    a->t0_us = req->att_t0_us != 0 && m == req->model ? req->att_t0_us : a->t1_us;
    req->att_t0_us = 0;
}

/* True when every attempt that reached a provider was answered 429 (models
 * skipped without a call — key unset, daily cap spent — do not count). */
static bool all_rate_limited(const req_t *req)
{
    size_t limited = 0;
    for (size_t i = 0; i < req->n_attempts; i++) {
        const attempt_t *a = &req->attempts[i];
        if (a->status == 429 || a->status == 529) /* 529: Anthropic overloaded */
            limited++;
        else if (strncmp(a->error, "skipped", 7) != 0)
            return false;
    }
    return limited > 0;
}

/* Appends every attempt to err->message (after its first o bytes) and, as
 * the "attempts" member, to extra. */
static void list_attempts(const req_t *req, req_error_t *err, size_t o, buf_t *extra)
{
    const config_t *cfg = req->cfg;
    buf_puts(extra, "\"attempts\":[");
    for (size_t i = 0; i < req->n_attempts; i++) {
        const attempt_t *a = &req->attempts[i];
        const cfg_model_t *m = &cfg->models[a->model];
        const char *prov = cfg->providers[m->provider].name;
        char st[16], retry[24] = "";
        int n;
        if (a->retry)
            snprintf(retry, sizeof retry, " retry %u", (unsigned)a->retry);
        if (o < sizeof err->message) {
            n = snprintf(err->message + o, sizeof err->message - o, "%s %s (%s)%s: %s",
                         i ? ";" : "", m->name, prov, retry, a->error);
            o += n > 0 ? (size_t)n : 0;
        }
        if (i)
            buf_puts(extra, ",");
        buf_puts(extra, "{\"model\":");
        json_append_string(extra, m->name, strlen(m->name));
        buf_puts(extra, ",\"provider\":");
        json_append_string(extra, prov, strlen(prov));
        snprintf(st, sizeof st, "%u", a->status);
        buf_puts(extra, ",\"status\":");
        if (a->status)
            buf_append(extra, st, strlen(st));
        else
            buf_puts(extra, "null");
        snprintf(st, sizeof st, "%u", (unsigned)a->retry);
        buf_puts(extra, ",\"retry\":");
        buf_append(extra, st, strlen(st));
        buf_puts(extra, ",\"error\":");
        json_append_string(extra, a->error, strlen(a->error));
        buf_puts(extra, "}");
    }
    buf_puts(extra, "]");
}

/* True when no attempt reached a provider and a model was skipped because
 * its provider was at max_inflight (upstream/admit.h). */
static bool all_busy(const req_t *req)
{
    if (!req->adm_busy)
        return false;
    for (size_t i = 0; i < req->n_attempts; i++)
        if (strncmp(req->attempts[i].error, "skipped", 7) != 0)
            return false;
    return true;
}

/* The chain is exhausted: 502 all_upstreams_failed, or, when only rate
 * limits stood in the way, 429 with the smallest retry delay of the chain so
 * that the client's SDK backs off and retries. */
void upstream_chain_failed(req_t *req)
{
    req_error_t err = {.status = 502, .type = "upstream_error", .code = "all_upstreams_failed"};
    buf_t extra;
    int n;

    if (all_rate_limited(req)) {
        err.status = 429;
        err.type = "rate_limit_error";
        err.code = "all_upstreams_rate_limited";
        req->rl_answer = true;
        if (req->rl_retry_ms < 0)
            req->rl_retry_ms = UPSTREAM_RETRY_DEFAULT_MS;
        if (req->rl_retry_ms > UPSTREAM_RETRY_CAP_MS)
            req->rl_retry_ms = UPSTREAM_RETRY_CAP_MS;
    } else if (all_busy(req)) {
        /* every provider at its concurrency limit: come back in a second */
        err.status = 503;
        err.type = "server_error";
        err.code = "all_upstreams_busy";
        req->rl_answer = true;
        req->rl_retry_ms = UPSTREAM_RETRY_DEFAULT_MS;
    }
    buf_init(&extra, 1024 + req->n_attempts * 1200); /* names <= 128, errors < 112, escaped */
    if (err.status == 503)
        n = snprintf(err.message, sizeof err.message,
                     "Every provider of the chain is at its concurrency limit (max_inflight); retry "
                     "after %lld ms:",
                     (long long)req->rl_retry_ms);
    else if (req->rl_answer)
        n = snprintf(err.message, sizeof err.message,
                     "Every upstream attempt was rate limited (%zu); retry after %lld ms:",
                     req->n_attempts, (long long)req->rl_retry_ms);
    else
        n = snprintf(err.message, sizeof err.message, "All %zu upstream attempt%s failed:",
                     req->n_attempts, req->n_attempts == 1 ? "" : "s");
    list_attempts(req, &err, n > 0 ? (size_t)n : 0, &extra);
    req->model = -1;
    log_warn("request %s: %s", req->id, err.message);
    reply_error(req, &err, buf_cstr(&extra));
    buf_free(&extra);
}

void upstream_deadline_failed(req_t *req)
{
    req_error_t err = {.status = 504, .type = "timeout_error", .code = "deadline_exceeded"};
    buf_t extra;
    int n;
    buf_init(&extra, 1024 + req->n_attempts * 1200); /* names <= 128, errors < 112, escaped */
    n = snprintf(err.message, sizeof err.message,
                 "The request's deadline of %u ms passed before an answer began (%zu upstream "
                 "attempt%s):",
                 req->deadline_ms, req->n_attempts, req->n_attempts == 1 ? "" : "s");
    list_attempts(req, &err, n > 0 ? (size_t)n : 0, &extra);
    req->model = -1;
    log_warn("request %s: %s", req->id, err.message);
    reply_error(req, &err, buf_cstr(&extra));
    buf_free(&extra);
}

void upstream_chain_refuse(req_t *req, req_error_t *err, const char *intro)
{
    buf_t extra;
    int n;
    buf_init(&extra, 1024 + req->n_attempts * 1200); /* names <= 128, errors < 112, escaped */
    n = snprintf(err->message, sizeof err->message, "%s", intro);
    list_attempts(req, err, n > 0 ? (size_t)n : 0, &extra);
    req->model = -1;
    log_info("request %s: %s", req->id, err->message);
    reply_error(req, err, buf_cstr(&extra));
    buf_free(&extra);
}
