/* upstream: libcurl multi_socket driven by the shard loop.
 *
 * Per attempt: a new easy handle POSTs req->fwd_body to the model's
 * provider. The header callback classifies the status as soon as headers
 * end: 2xx goes on, a client-fault 4xx is passed through as is, anything
 * else aborts the transfer and fails over. A non-streamed answer is
 * collected whole (capped) and checked before the client sees it. A stream
 * is held back until its first data event proves sound (valid JSON, not an
 * error), then committed: after that no failover, and an abnormal end
 * becomes a final `data: {"error":...}` event. See
 * docs/internals/upstream.md. */
#include "upstream/upstream.h"
#include "upstream/antwire.h"
#include "upstream/quirks.h"
#include "http/door.h"
#include "http/door_wire.h"
#include "upstream/call.h"
#include "upstream/cascade.h"
#include "upstream/attempt.h"
#include "upstream/chain.h"
#include "upstream/fit.h"
#include "upstream/owner.h"
#include "upstream/admit.h"
#include "upstream/retry.h"
#include "upstream/urlcache.h"

#include <curl/curl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "http/apierror.h"
#include "account/budget.h"
#include "cache/cache.h"
#include "core/json.h"
#include "core/log.h"
#include "core/presets.h"
#include "upstream/provider.h"
#include "http/reply.h"
#include "core/curlloop.h"
#include "core/shard.h"
#include "core/util.h"

#define CURL_BUF_SIZE (8 * 1024) /* per handle; small matters at 10,000 streams */


#define EASY_POOL 256

struct upstream {
    shard_t *shard;
    loop_t *loop;
    curlloop_t cl; /* the multi handle on the shard's loop */
    CURLM *multi;  /* cl.multi */
    CURL *pool[EASY_POOL]; /* idle easy handles, options that never change set */
    urlcache_t *urls;      /* parsed upstream URLs (CURLOPT_CURLU) */
    struct upstream_call *calls; /* llmrouter's own calls in flight (call.c) */
    size_t n_pool;
};

static void check_done(upstream_t *up);
static int start_transfer(upstream_t *up, req_t *req, int m);
static size_t on_header(char *p, size_t size, size_t nmemb, void *ud);
static size_t on_write(char *p, size_t size, size_t nmemb, void *ud);
static int on_prereq(void *ud, char *remote_ip, char *local_ip, int remote_port, int local_port);

static void on_multi_done(void *arg)
{
    check_done(arg);
}

upstream_t *upstream_new(struct shard *shard, loop_t *loop)
{
    upstream_t *up = xcalloc(1, sizeof *up);
    up->shard = shard;
    up->loop = loop;
    if (curlloop_init(&up->cl, loop, 1024L, on_multi_done, up, "upstream") < 0) {
        free(up);
        return NULL;
    }
    up->multi = up->cl.multi;
    up->urls = urlcache_new();
    return up;
}

CURLM *upstream_multi(upstream_t *up)
{
    return up->multi;
}

struct upstream_call **upstream_calls(upstream_t *up)
{
    return &up->calls;
}

void upstream_free(upstream_t *up)
{
    if (up == NULL)
        return;
    upstream_call_cancel_all(up);
    while (up->n_pool > 0)
        curl_easy_cleanup(up->pool[--up->n_pool]);
    curlloop_fini(&up->cl);
    urlcache_free(up->urls); /* after the last handle that could use one */
    free(up);
}

/* ---- one attempt ---- */

/* reuse: only a handle whose transfer ran to its end normally goes back to
 * the pool (a cancelled or paused one is freed) */
void upstream_end_transfer(upstream_t *up, req_t *req, bool reusable)
{
    if (req->easy != NULL) {
        curl_multi_remove_handle(up->multi, req->easy);
        if (reusable && !req->up_paused && up->n_pool < EASY_POOL) {
            /* an idle handle points at no cache entry: the next transfer
             * sets its own (start_transfer) */
            curl_easy_setopt(req->easy, CURLOPT_CURLU, NULL);
            up->pool[up->n_pool++] = req->easy;
        } else {
            curl_easy_cleanup(req->easy);
        }
        req->easy = NULL;
        urlcache_release(up->urls, req->up_owner.url);
        req->up_owner.url = NULL;
    }
    loop_timer_stop(up->loop, &req->timer);
    upstream_admit_release_slot(req);
    if (req->in_unpause)
        shard_dequeue_unpause(up->shard, req);
    req->up_paused = false;
}

static void end_transfer(upstream_t *up, req_t *req)
{
    upstream_end_transfer(up, req, false);
}

static CURL *get_easy(upstream_t *up)
{
    CURL *e;
    if (up->n_pool > 0)
        return up->pool[--up->n_pool];
    e = curl_easy_init();
    if (e == NULL)
        return NULL;
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)CURL_BUF_SIZE);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    return e;
}

void upstream_cancel(upstream_t *up, req_t *req)
{
    end_transfer(up, req);
    upstream_admit_cancel(req);
    if (req->casc != NULL && req->casc->judge != NULL) {
        upstream_call_cancel(up, req->casc->judge);
        req->casc->judge = NULL;
    }
}

void upstream_fail_attempt(req_t *req, const char *fmt, const char *arg)
{
    if (req->attempt_failed)
        return;
    req->attempt_failed = true;
    snprintf(req->fail_reason, sizeof req->fail_reason, fmt, arg ? arg : "");
}

/* upstream_fail_attempt with the kind of failure the policy looks up
 * (retry.h); a failure without one is RETRY_KIND_INVALID (set by
 * start_transfer): the answer was unusable. */
static void fail_as(req_t *req, enum retry_kind kind, const char *fmt, const char *arg)
{
    if (!req->attempt_failed)
        req->fail_kind = (unsigned char)kind;
    upstream_fail_attempt(req, fmt, arg);
}

/* Milliseconds until req's deadline (rounded up; 0 once it passed), -1
 * without one. */
static int64_t deadline_left_ms(const req_t *req)
{
    uint64_t now;
    if (req->deadline_us == 0)
        return -1;
    now = util_now_us();
    return now >= req->deadline_us ? 0 : (int64_t)((req->deadline_us - now + 999) / 1000);
}

/* Arms req's timer for timeout_ms, or for the deadline when it comes
 * first (timer_deadline says which). */
static void arm_timer(loop_t *loop, req_t *req, uint64_t timeout_ms)
{
    int64_t left = deadline_left_ms(req);
    req->timer_deadline = left >= 0 && (uint64_t)left < timeout_ms;
    loop_timer_start(loop, &req->timer, req->timer_deadline ? (uint64_t)left : timeout_ms);
}

/* libcurl calls this right before it sends the request — each time it sends
 * it. libcurl 7.88 re-sends a POST by itself (Curl_retry_request, "Connection
 * died, retrying a fresh connect", up to 5 more times) when a reused
 * connection closes before the first response byte, although the provider
 * may have read and run the request. Only the first send of an attempt goes
 * out: a second one fails the attempt, and failover decides what happens. */
static int on_prereq(void *ud, char *remote_ip, char *local_ip, int remote_port, int local_port)
{
    req_t *req = ud;
    (void)remote_ip;
    (void)local_ip;
    (void)remote_port;
    (void)local_port;
    if (req->up_sends++ == 0)
        return CURL_PREREQFUNC_OK;
    /* a reused connection died before the first response byte: the
     * stale_connection kind, which the policy retries once on a fresh
     * connection by default (retry.h) */
    fail_as(req, RETRY_KIND_STALE,
            "the reused connection closed before any response (not re-sent)%s", NULL);
    return CURL_PREREQFUNC_ABORT;
}

/* The kind of a transfer that curl ended with res: nothing was sent
 * (on_prereq never ran) is a connect failure, whatever curl calls it. */
static enum retry_kind curl_kind(const req_t *req, CURLcode res)
{
    if (req->up_sends == 0)
        return RETRY_KIND_CONNECT;
    return res == CURLE_OPERATION_TIMEDOUT ? RETRY_KIND_TIMEOUT : RETRY_KIND_RESET;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    req_t *req = ud;
    size_t n = size * nmemb;
    if (n >= 12 && memcmp(p, "HTTP/", 5) == 0) {
        const char *sp = memchr(p, ' ', n);
        uint64_t st;
        req->up_status = 0;
        req->up_retry_ms = -1;
        req->up_retry_exact = false;
        if (sp && (size_t)(sp - p) + 4 <= n && util_parse_u64(sp + 1, 3, &st) == 0)
            req->up_status = (unsigned)st;
        return n;
    }
    if (n > 2 || (p[0] != '\r' && p[0] != '\n')) {
        /* only a 429's, a 503's and a 529's (Anthropic's overloaded_error)
         * headers are read */
        if (req->up_status == 429 || req->up_status == 503 || req->up_status == 529)
            upstream_take_retry_header(req, p, n);
        return n;
    }
    /* end of a header block */
    if (req->up_status >= 100 && req->up_status < 200)
        return n; /* interim response; the real one follows */
    if ((req->up_status < 200 || req->up_status >= 300) &&
        retry_action_of(&req->cfg->providers[req->cfg->models[req->model].provider].retry,
                        RETRY_KIND_STATUS, req->up_status) != RETRY_ACT_PASS) {
        char st[16];
        snprintf(st, sizeof st, "%u", req->up_status);
        fail_as(req, RETRY_KIND_STATUS, "HTTP %s", st);
        return 0; /* aborts the transfer */
    }
    req->up_headers_done = true;
    req->passthrough = req->up_status < 200 || req->up_status >= 300;
    if (!req->stream || req->passthrough)
        req->t_first_byte_us = util_now_us();
    if (!req->stream || req->passthrough) {
        /* The headers arrived: from here, no body byte for idle_timeout_ms
         * fails the attempt (nothing reached the client yet) */
        loop_t *loop = shard_loop(req->shard);
        req->last_data_ms = loop_now_ms(loop);
        arm_timer(loop, req,
                  req->cfg->providers[req->cfg->models[req->model].provider].idle_timeout_ms);
        buf_free(&req->out);
        buf_init(&req->out, req->cfg->max_response_bytes);
    }
    return n;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    req_t *req = ud;
    size_t n = size * nmemb;
    if (req->attempt_failed)
        return 0;
    if (!req->stream || req->passthrough) {
        req->last_data_ms = loop_now_ms(shard_loop(req->shard));
        if (buf_append(&req->out, p, n) < 0) {
            upstream_fail_attempt(req, "answer larger than server.max_response_bytes%s", NULL);
            return 0;
        }
        return n;
    }
    if (req->ant) /* Messages events: translated, then pushed below */
        return antwire_write(req, p, n);
    if (quirks_stream_on(req)) /* tool-call deltas given indexes, then pushed */
        return quirks_stream_write(req, p, n);
    return upstream_stream_write(req, p, n);
}

static void on_req_timer(loop_t *loop, loop_timer_t *t)
{
    req_t *req = t->arg;
    upstream_t *up = shard_upstream(req->shard);
    const cfg_provider_t *p = &req->cfg->providers[req->cfg->models[req->model].provider];
    if (req->committed) {
        uint64_t idle = loop_now_ms(loop) - req->last_data_ms;
        if (req->up_paused || idle < p->idle_timeout_ms) {
            /* data flowed (or the client is the slow side): check again later */
            loop_timer_start(loop, t, req->up_paused ? p->idle_timeout_ms : p->idle_timeout_ms - idle);
            return;
        }
        upstream_finish_stream(up, req, "no data within idle_timeout_ms", false);
        return;
    }
    if (req->timer_deadline) {
        char ms[32];
        snprintf(ms, sizeof ms, "%u", req->deadline_ms);
        fail_as(req, RETRY_KIND_TIMEOUT, "no answer within the request's deadline (%s ms)", ms);
        req->deadline_hit = true;
    } else if (req->up_headers_done && (!req->stream || req->passthrough)) {
        /* a plain answer's body: idle is the time since its last bytes */
        uint64_t idle = loop_now_ms(loop) - req->last_data_ms;
        char ms[32];
        if (idle < p->idle_timeout_ms) {
            arm_timer(loop, req, p->idle_timeout_ms - idle);
            return;
        }
        snprintf(ms, sizeof ms, "%u", p->idle_timeout_ms);
        fail_as(req, RETRY_KIND_TIMEOUT, "no data within %s ms after the headers (idle_timeout_ms)",
                ms);
    } else {
        char ms[32];
        snprintf(ms, sizeof ms, "%u", p->first_byte_timeout_ms);
        fail_as(req, RETRY_KIND_TIMEOUT, "no answer within %s ms (first_byte_timeout_ms)", ms);
    }
    end_transfer(up, req);
    upstream_next_attempt(up, req);
}

/* A retry of req->model starts (after its wait, or at once); when it cannot,
 * that is the attempt's failure and the chain goes on. */
static void start_retry(upstream_t *up, req_t *req)
{
    /* the failure was recorded: a skip or a failed start below records its
     * own attempt and goes on down the chain */
    req->attempt_failed = false;
    switch (upstream_admit(req, req->model)) { /* the circuit may have opened */
    case ADMIT_QUEUED:
        return; /* resumes in upstream_admit_kick, or fails over on its timer */
    case ADMIT_SKIP:
        break;
    case ADMIT_GO:
        if (upstream_begin(up, req, req->model) == 0)
            return;
        break;
    }
    upstream_next_attempt(up, req);
}

static void on_retry_timer(loop_t *loop, loop_timer_t *t)
{
    req_t *req = t->arg;
    (void)loop;
    start_retry(shard_upstream(req->shard), req);
}

/* Whether the failed attempt on req->model is retried (retry_decide); if
 * so, the retry is started at once or after its wait on req->timer (which
 * upstream_cancel stops, as for any attempt) and true is returned. */
static bool retry_scheduled(upstream_t *up, req_t *req)
{
    const cfg_model_t *md = &req->cfg->models[req->model];
    const cfg_provider_t *p = &req->cfg->providers[md->provider];
    retry_input_t in = {.kind = (enum retry_kind)req->fail_kind,
                        .status = req->up_status,
                        .retry_after_ms = -1,
                        .retries = md->retries,
                        .used = req->retry_counted,
                        .stale_free_used = req->stale_free_used,
                        .time_left_ms = deadline_left_ms(req)};
    retry_plan_t plan;
    if (req->deadline_hit)
        return false;
    if (in.kind == RETRY_KIND_STATUS &&
        (in.status == 429 || in.status == 503 || in.status == 529))
        in.retry_after_ms = req->up_retry_ms;
    util_random(&in.rnd, sizeof in.rnd);
    plan = retry_decide(&p->retry, &in);
    if (!plan.retry) {
        if (plan.why_not != NULL)
            log_info("request %s: %s not retried: %s", req->id, md->name, plan.why_not);
        return false;
    }
    req->retry_n++;
    if (plan.free_retry)
        req->stale_free_used = true;
    else
        req->retry_counted++;
    req->fresh_connect = plan.fresh_connect;
    log_info("request %s: %s failed (%s), retry %u in %u ms%s", req->id, md->name, req->fail_reason,
             (unsigned)req->retry_n, plan.delay_ms, plan.fresh_connect ? " on a new connection" : "");
    if (plan.delay_ms == 0) {
        start_retry(up, req);
        return true;
    }
    req->timer.cb = on_retry_timer;
    req->timer.arg = req;
    req->timer_deadline = false;
    loop_timer_start(up->loop, &req->timer, plan.delay_ms);
    return true;
}

/* Starts an attempt on model m. Returns 0; -1 when the transfer could not
 * start; -2 when the request cannot be sent to m as asked (req->ant_err: a
 * 400). */
static int start_transfer(upstream_t *up, req_t *req, int m)
{
    const config_t *cfg = req->cfg;
    const cfg_provider_t *p = &cfg->providers[cfg->models[m].provider];
    const char *path;
    char url[2048];
    CURL *e;

    if (request_build_forward(req, m) < 0)
        return -2;
    path = p->type == PROVIDER_ANTHROPIC                         ? ANTHROPIC_PATH_MESSAGES
           : req->door_native && req->door == DOOR_RESPONSES    ? "/responses"
           : req->ep == EP_CHAT                                  ? "/chat/completions"
           : req->ep == EP_COMPLETIONS                           ? "/completions"
                                                                 : "/embeddings";
    if (presets_url(p, &cfg->models[m], path, url, sizeof url) < 0)
        return -1;
    if (req->door_native && req->door == DOOR_RESPONSES)
        req->cache_store = false; /* the cache keeps chat answers; this one is a Response */
    req->door_native_done = false;
    free(req->door_answer);
    req->door_answer = NULL;
    if (antwire_begin(req) < 0 || quirks_begin(req, m) < 0)
        return -1;
    e = get_easy(up);
    if (e == NULL)
        return -1;
    req->easy = e;
    req->fail_kind = RETRY_KIND_INVALID;
    req->up_status = 0;
    req->up_headers_done = req->passthrough = req->attempt_failed = false;
    req->committed = req->saw_done = req->up_done = req->up_paused = false;
    req->up_sends = 0;
    req->up_retry_ms = -1;
    req->up_retry_exact = false;
    req->fail_reason[0] = '\0';
    req->out_base = 0;
    sse_init(&req->sse);
    buf_free(&req->out);
    buf_init(&req->out, req->stream ? UPSTREAM_STREAM_OUT_CAP : cfg->max_response_bytes);

    /* The URL parsed once per shard (urlcache.h) and, as text, the same URL:
     * libcurl 7.88 keeps the text as the transfer's URL (its retry and
     * info paths read it) but parses only the CURLU. Without an entry
     * (unparsable, or all held) CURLU is NULL and libcurl parses the text
     * as it always did. */
    req->up_owner.url = urlcache_hold(up->urls, url);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CURLU,
                     req->up_owner.url != NULL ? urlcache_curlu(req->up_owner.url) : NULL);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->fwd_body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->fwd_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, p->headers);
    curl_easy_setopt(e, CURLOPT_PROXY, p->proxy);
    curl_easy_setopt(e, CURLOPT_NOPROXY, p->no_proxy);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)p->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)p->timeout_ms);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, req);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &req->up_owner);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, req);
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, req->fresh_connect ? 1L : 0L);
    req->fresh_connect = false;
    req->att_t0_us = util_now_us(); /* the attempt's span (account/otel.h) */
    if (curl_multi_add_handle(up->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        req->easy = NULL;
        urlcache_release(up->urls, req->up_owner.url);
        req->up_owner.url = NULL;
        return -1;
    }
    req->timer.cb = on_req_timer;
    req->timer.arg = req;
    arm_timer(up->loop, req, p->first_byte_timeout_ms);
    return 0;
}

/* True when the chain is exhausted because of the request itself: a model
 * refused it (request_build_forward) and no attempt reached a provider. The
 * client's request is the problem then, not the providers: a 400 naming the
 * field, not a 502 that invites a retry. */
static bool refused_only(const req_t *req)
{
    if (!req->ant_refused)
        return false;
    for (size_t i = 0; i < req->n_attempts; i++) {
        const char *e = req->attempts[i].error;
        if (strncmp(e, "refused", 7) != 0 && strncmp(e, "skipped", 7) != 0)
            return false;
    }
    return true;
}

int upstream_begin(upstream_t *up, req_t *req, int m)
{
    int rc = start_transfer(up, req, m);
    char why[112];
    if (rc == 0)
        return 0;
    upstream_admit_cancel(req); /* no transfer: its slot and probe go back */
    if (rc == -2) {
        /* the request as asked is not for this model (an Anthropic
         * one): the others of the chain may serve it; if none can,
         * the client gets this 400 (see refused_only) */
        req->ant_refused = true;
        snprintf(why, sizeof why, "refused: %.100s", req->ant_err.message);
        upstream_record(req, m, 0, why);
    } else {
        upstream_record(req, m, 0, "could not start the transfer");
    }
    if (req->casc != NULL)
        cascade_add_step(req->casc, m, CASCADE_FAILED, CASCADE_OK, 0);
    return -1;
}

/* Tries the next usable model of the chain, or answers 502. */
void upstream_next_attempt(upstream_t *up, req_t *req)
{
    const config_t *cfg = req->cfg;
    if (req->model >= 0 && req->attempt_failed) {
        upstream_record(req, req->model, req->up_status >= 200 ? req->up_status : 0, req->fail_reason);
        upstream_admit_done(req);
        if (req->up_status == 429 || req->up_status == 529) {
            /* a 429 (or Anthropic's 529 overloaded) without retry headers:
             * try again in a second */
            int64_t ms = req->up_retry_ms >= 0 ? req->up_retry_ms : UPSTREAM_RETRY_DEFAULT_MS;
            if (req->rl_retry_ms < 0 || ms < req->rl_retry_ms)
                req->rl_retry_ms = ms;
        }
        if (retry_scheduled(up, req))
            return;
        log_info("request %s: %s failed (%s), failing over", req->id, cfg->models[req->model].name,
                 req->fail_reason);
        if (req->casc != NULL)
            cascade_add_step(req->casc, req->model, CASCADE_FAILED, CASCADE_OK, 0);
    }
    req->retry_n = req->retry_counted = 0;
    req->stale_free_used = false;
    if (req->deadline_hit || deadline_left_ms(req) == 0) {
        req->deadline_hit = true;
        req->next_link = req->route.n; /* no time for the rest of the chain */
    }
    for (;;) {
        /* the chain, then maybe one model that was cooling down (admit.h),
         * unless the deadline passed */
        int m = req->next_link < req->route.n ? req->route.chain[req->next_link++]
                : req->deadline_hit           ? -1
                                              : upstream_admit_last_resort(req);
        const cfg_provider_t *p;
        if (m < 0)
            break;
        p = &cfg->providers[cfg->models[m].provider];
        req->model = m;
        if (fit_skip(req, m)) /* context window, capabilities (upstream/fit.h) */
            continue;
        if (p->key_missing) {
            char why[112];
            snprintf(why, sizeof why, "skipped: environment variable %s is not set", p->api_key_env);
            upstream_record(req, m, 0, why);
            if (req->casc != NULL)
                cascade_add_step(req->casc, m, CASCADE_FAILED, CASCADE_OK, 0);
            continue;
        }
        if (shard_budget(req->shard) &&
            !budget_model_allowed(shard_budget(req->shard), cfg->models[m].name,
                                  cfg->models[m].daily_cap_usd)) {
            upstream_record(req, m, 0, "skipped: the model's daily_cap_usd is spent");
            if (req->casc != NULL)
                cascade_add_step(req->casc, m, CASCADE_FAILED, CASCADE_OK, 0);
            continue;
        }
        switch (upstream_admit(req, m)) { /* circuit, cooldown, provider slot */
        case ADMIT_SKIP:
            continue; /* recorded */
        case ADMIT_QUEUED:
            return; /* resumes in upstream_admit_kick, or fails over on its timer */
        case ADMIT_GO:
            break;
        }
        if (upstream_begin(up, req, m) == 0)
            return;
    }
    if (req->casc != NULL && req->casc->kept != NULL) {
        upstream_deliver_kept(up, req);
        return;
    }
    if (req->deadline_hit) {
        upstream_deadline_failed(req);
        return;
    }
    if (fit_unservable(req)) /* no model could take it: 400 */
        return;
    if (refused_only(req)) {
        req->model = -1;
        log_info("request %s: no model of the chain can take the request as asked: %s", req->id,
                 req->ant_err.message);
        reply_error(req, &req->ant_err, NULL);
        return;
    }
    upstream_chain_failed(req);
}

void upstream_start(upstream_t *up, req_t *req)
{
    req->t_upstream_us = util_now_us();
    req->next_link = 0;
    req->n_attempts = 0;
    req->fit_skips = 0;
    req->rl_retry_ms = -1;
    req->model = -1;
    req->deadline_us = req->deadline_ms ? req->t_start_us + (uint64_t)req->deadline_ms * 1000 : 0;
    req->deadline_hit = false;
    upstream_admit_begin(req);
    if (req->casc == NULL && cascade_applies(req))
        req->casc = cascade_run_new(req);
    upstream_next_attempt(up, req);
}

void upstream_unpause(upstream_t *up, req_t *req)
{
    (void)up;
    if (req->easy != NULL && req->up_paused) {
        req->up_paused = false;
        /* may call on_write right away */
        curl_easy_pause(req->easy, CURLPAUSE_CONT);
    }
}

static void on_done(upstream_t *up, req_t *req, CURLcode res)
{
    provider_result_t pr = {.cost_usd = -1};
    char why[112];

    if (req->committed) {
        upstream_finish_stream(up, req, res == CURLE_OK ? NULL : curl_easy_strerror(res), res == CURLE_OK);
        return;
    }
    if (!req->attempt_failed && res != CURLE_OK)
        fail_as(req, curl_kind(req, res), "%s", curl_easy_strerror(res));
    if (!req->attempt_failed && req->stream && !req->passthrough)
        upstream_fail_attempt(req, "stream ended before any event%s", NULL);
    if (!req->attempt_failed && !req->passthrough) {
        anthropic_usage_t au = {-1, -1, -1, -1};
        if (req->door_native && req->door == DOOR_MESSAGES && req->door_answer == NULL) {
            /* the client gets Anthropic's own bytes (reply.c) */
            req->door_answer = xstrndup(buf_ptr(&req->out), buf_len(&req->out));
            req->door_answer_len = buf_len(&req->out);
        }
        /* an Anthropic answer is checked, priced, cached and judged as the
         * chat.completion it becomes */
        quirks_answer(req, &req->out); /* gemini: "stop" after tool calls, "" ids */
        if (req->door_native && req->door == DOOR_RESPONSES) {
            if (doorwire_native_answer(req, buf_ptr(&req->out), buf_len(&req->out), &pr) < 0)
                upstream_fail_attempt(req, "the answer is not a Response object%s", NULL);
        } else if (req->ant && antwire_answer(req, &au, why, sizeof why) < 0)
            upstream_fail_attempt(req, "%s", why);
        else if (provider_check_answer(req->cfg, req->model, buf_ptr(&req->out),
                                       buf_len(&req->out), req->want_base64, req->cache_store, &pr,
                                       why, sizeof why) < 0)
            upstream_fail_attempt(req, "%s", why);
        else if (req->ant && antwire_cost(req, &au) >= 0)
            pr.cost_usd = antwire_cost(req, &au);
    }
    upstream_end_transfer(up, req, res == CURLE_OK);
    if (req->attempt_failed) {
        upstream_next_attempt(up, req);
        return;
    }
    upstream_record(req, req->model, req->up_status, NULL);
    upstream_admit_done(req);
    if (req->passthrough) {
        size_t len;
        char *body;
        if (req->ant) /* the client sees OpenAI's error shape */
            antwire_error(req);
        quirks_error_body(req, &req->out); /* gemini's array, mistral's flat shape */
        body = buf_detach(&req->out, &len);
        reply_send(req, req->up_status, body, len, NULL);
        return;
    }
    if (req->casc != NULL && upstream_cascade_step(up, req, &pr))
        return; /* escalated, or the judge decides */
    upstream_deliver(up, req, &pr);
}

static void check_done(upstream_t *up)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(up->multi, &left)) != NULL) {
        upstream_owner_t *o = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&o);
        if (o == NULL)
            continue;
        if (o->kind == UPSTREAM_OWNER_CALL)
            upstream_call_done(up, o, (int)msg->data.result);
        else
            on_done(up, (req_t *)(void *)((char *)o - offsetof(req_t, up_owner)), msg->data.result);
    }
}
