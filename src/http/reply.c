/* reply: how a request is answered — the interface the front end gives
 * the stages that answer a request (the cache, the upstream): a complete
 * answer or an OpenAI error, a stream's start and wake-ups with backpressure
 * (libmicrohttpd's content reader drains req->out), the budget settlement,
 * and the connection's suspend/resume with hang-up detection while
 * suspended. Every function runs on the request's shard thread. */
#include "http/reply.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "account/budget.h"
#include "account/otel.h"
#include "cache/cache.h"
#include "core/log.h"
#include "core/shard.h"
#include "core/util.h"
#include "http/apierror.h"
#include "http/cors.h"
#include "http/door_wire.h"
#include "route/classifier.h"
#include "upstream/call.h"
#include "route/experiment.h"
#include "upstream/cascade.h"
#include "upstream/redact.h"
#include "upstream/upstream.h"

#define STREAM_BLOCK_SIZE 1024 /* MHD callocs it per streamed response */

/* ---- CORS (server.cors) ---- */

const char *reply_header(req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

/* On every answer while CORS is on: Vary: Origin (the answer depends on
 * it), and for an allowed origin the headers that let the page read it. */
static void add_cors(req_t *req, struct MHD_Response *r)
{
    const cfg_cors_t *c = &req->cfg->cors;
    const char *origin;
    if (!c->enabled)
        return;
    MHD_add_response_header(r, "Vary", "Origin");
    origin = reply_header(req, "origin");
    if (!cors_origin_allowed(c, origin))
        return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
    if (c->allow_credentials)
        MHD_add_response_header(r, "Access-Control-Allow-Credentials", "true");
    MHD_add_response_header(r, "Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
}

/* ---- responses ---- */


/* x-router-skipped: the models of the chain that were not called and why
 * ("m503 (cooling down (27 s left)), mx (environment variable K is not
 * set)"), from the attempt records; absent when none was skipped. */
static void add_skipped(req_t *req, struct MHD_Response *r)
{
    char v[1024];
    size_t o = 0;
    for (size_t i = 0; req->attempts != NULL && i < req->n_attempts; i++) {
        const attempt_t *a = &req->attempts[i];
        int n;
        if (strncmp(a->error, "skipped: ", 9) != 0 || o >= sizeof v)
            continue;
        n = snprintf(v + o, sizeof v - o, "%s%s (%s)", o ? ", " : "", req->cfg->models[a->model].name,
                     a->error + 9);
        if (n < 0 || (size_t)n >= sizeof v - o) {
            v[o] = '\0'; /* whole entries only */
            break;
        }
        o += (size_t)n;
    }
    if (o > 0)
        MHD_add_response_header(r, "x-router-skipped", v);
}

void reply_add_headers(req_t *req, struct MHD_Response *r, const char *ctype)
{
    const config_t *cfg = req->cfg;
    char num[32];
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, "x-request-id", req->id);
    if (shard_stopping(req->shard)) /* draining: keep-alive clients move on */
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    add_cors(req, r);
    if (req->route.n == 0)
        return;
    MHD_add_response_header(r, "x-cache", req->cache_x == CACHE_X_HIT    ? "HIT"
                                          : req->cache_x == CACHE_X_MISS ? "MISS"
                                                                         : "BYPASS");
    if (req->cache_x == CACHE_X_HIT) {
        snprintf(num, sizeof num, "%lld", (long long)req->cache_age_s);
        MHD_add_response_header(r, MHD_HTTP_HEADER_AGE, num);
    }
    MHD_add_response_header(r, "x-router-tier", router_tier_name(cfg, &req->route));
    MHD_add_response_header(r, "x-router-rule", router_rule_name(cfg, &req->route));
    {
        const experiment_t *e = NULL;
        const exp_arm_t *a = experiment_arm_of(cfg, req->exp_arm, &e);
        if (a != NULL) {
            char v[160];
            snprintf(v, sizeof v, "%s/%s", e->name, a->name);
            MHD_add_response_header(r, "x-router-arm", v);
        }
    }
    if (req->score >= 0) { /* only when a rule computed it */
        buf_fmt_fixed(num, sizeof num, req->score, 3);
        MHD_add_response_header(r, "x-router-score", num);
    }
    if (req->model >= 0) {
        const cfg_model_t *m = &cfg->models[req->model];
        MHD_add_response_header(r, "x-router-model", m->name);
        MHD_add_response_header(r, "x-router-provider", cfg->providers[m->provider].name);
    }
    {
        /* snprintf's "%zu", without the format machinery */
        char d[24];
        size_t n = 0, o = 0, v = req->n_attempts;
        do {
            d[n++] = (char)('0' + v % 10);
            v /= 10;
        } while (v > 0);
        while (n > 0)
            num[o++] = d[--n];
        num[o] = '\0';
    }
    MHD_add_response_header(r, "x-router-attempts", num);
    add_skipped(req, r);
    if (req->casc != NULL && req->casc->n_steps > 0) {
        char steps[1024];
        if (cascade_header(cfg, req->casc, steps, sizeof steps) > 0)
            MHD_add_response_header(r, "x-router-cascade", steps);
    }
    if (req->cls_result != CLASSIFIER_NONE) {
        /* the label, "cached:<label>", or why the rules fell back */
        char v[48];
        const cfg_classifier_t *cl = &cfg->classifier;
        bool have = req->cls_label >= 0 && (size_t)req->cls_label < cl->n_labels;
        if (req->cls_result == CLASSIFIER_OK && have)
            snprintf(v, sizeof v, "%s", cl->labels[req->cls_label]);
        else if (req->cls_result == CLASSIFIER_CACHED && have)
            snprintf(v, sizeof v, "cached:%s", cl->labels[req->cls_label]);
        else
            snprintf(v, sizeof v, "%s", classifier_result_name((enum classifier_result)req->cls_result));
        MHD_add_response_header(r, "x-router-classifier", v);
    }
    if (request_unpriced(req)) {
        /* no price from the configuration or the price table: unknown, not free */
        MHD_add_response_header(r, "x-router-cost-usd", "unpriced");
    } else if (request_cost_total(req) >= 0) {
        buf_fmt_fixed(num, sizeof num, request_cost_total(req), 10);
        MHD_add_response_header(r, "x-router-cost-usd", num);
        if (req->cost_estimated)
            MHD_add_response_header(r, "x-router-cost-estimated", "true");
    }
}

static void resume(req_t *req)
{
    if (req->suspended) {
        req->suspended = false;
        MHD_resume_connection(req->conn);
    }
}

static void set_ready(req_t *req, struct MHD_Response *r, unsigned status)
{
    if (req->response)
        MHD_destroy_response(req->response);
    req->response = r;
    req->resp_status = status;
    req->state = RS_READY;
    resume(req);
}

void reply_send(req_t *req, unsigned status, char *body, size_t len, const char *ctype)
{
    struct MHD_Response *r;
    /* the one place plain answers leave: in the door's format, and never
     * with a provider's key in it (a provider's error may repeat it) */
    if (status == 200 && req->cfg->obs.otlp != NULL)
        otel_note_answer(req, body, len); /* response model, finish reasons: for its span */
    doorwire_reply(req, &status, &body, &len, &ctype);
    /* providers repeat a key in their error bodies, never in an answer: a
     * 2xx is not scanned (it would cost a pass over every answer per provider) */
    if (status >= 300)
        redact_keys(req->cfg, body, len);
    r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        log_error("request %s: cannot create a response", req->id);
        req->client_gone = true;
        resume(req);
        return;
    }
    reply_add_headers(req, r, ctype ? ctype : "application/json");
    /* the chain was exhausted, or the deadline passed: an SDK's own
     * retries would stack on llmrouter's */
    if ((status == 502 || status == 504) && req->model < 0)
        MHD_add_response_header(r, "x-should-retry", "false");
    if ((status == 429 || status == 503) && req->rl_answer) {
        /* every provider rate-limited us (or was at its max_inflight):
         * let the SDK back off and retry */
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)((req->rl_retry_ms + 999) / 1000));
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, num);
        snprintf(num, sizeof num, "%lld", (long long)req->rl_retry_ms);
        MHD_add_response_header(r, "retry-after-ms", num);
    }
    set_ready(req, r, status);
}

void reply_error(req_t *req, const req_error_t *err, const char *extra_json)
{
    size_t len;
    char *body = apierror_body(err->message, err->type ? err->type
                                                       : apierror_type_for_status(err->status),
                               err->param, err->code, extra_json, &len);
    reply_send(req, err->status, body, len, NULL);
}


enum MHD_Result reply_queue_ready(req_t *req)
{
    enum MHD_Result ret = MHD_queue_response(req->conn, req->resp_status, req->response);
    if (ret != MHD_YES)
        log_error("request %s: libmicrohttpd refused the %u answer; closing the connection",
                  req->id, req->resp_status);
    MHD_destroy_response(req->response);
    req->response = NULL;
    req->state = RS_RESPONDED;
    return ret;
}

/* ---- streaming ---- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    req_t *req = cls;
    size_t n;
    (void)pos;
    if (req->client_gone)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (doorwire_translates_stream(req)) {
        ssize_t k = doorwire_stream_read(req, out, max);
        if (k != 0)
            return k < 0 ? MHD_CONTENT_READER_END_OF_STREAM : k;
        req->suspended = true;
        MHD_suspend_connection(req->conn);
        return 0;
    }
    n = buf_len(&req->out) - req->hold; /* held: an event not complete yet */
    if (n > 0) {
        if (n > max)
            n = max;
        memcpy(out, buf_ptr(&req->out), n);
        buf_consume(&req->out, n);
        req->out_off += n;
        if (req->up_paused && buf_len(&req->out) <= req->out.cap / 2)
            shard_queue_unpause(req->shard, req);
        return (ssize_t)n;
    }
    if (req->up_done) {
        if (req->tail_off < req->tail_len) {
            n = req->tail_len - req->tail_off;
            if (n > max)
                n = max;
            memcpy(out, req->tail + req->tail_off, n);
            req->tail_off += n;
            return (ssize_t)n;
        }
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    /* Nothing to send yet: suspend (returning 0 without suspending would
     * make libmicrohttpd poll in a busy loop). */
    req->suspended = true;
    MHD_suspend_connection(req->conn);
    return 0;
}

void reply_stream_begin(req_t *req)
{
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK_SIZE,
                                                               stream_reader, req, NULL);
    if (r == NULL) {
        log_error("request %s: cannot create a stream response", req->id);
        req->client_gone = true;
        resume(req);
        return;
    }
    reply_add_headers(req, r, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "x-accel-buffering", "no");
    set_ready(req, r, 200);
}

void reply_stream_wake(req_t *req)
{
    if (req->state == RS_RESPONDED)
        resume(req);
}

void reply_shutdown(req_t *req)
{
    shard_t *sh = req->shard;
    req_error_t err = {.status = 503, .type = "server_error", .code = "server_shutting_down"};
    snprintf(err.message, sizeof err.message,
             "The server is shutting down and the answer was not complete when its grace period "
             "(server.shutdown_grace_ms) ended; the request may have reached a provider.");
    if (req->state != RS_UPSTREAM || req->client_gone)
        return;
    upstream_cancel(shard_upstream(sh), req);
    if (req->cls_call != NULL) {
        upstream_call_cancel(shard_upstream(sh), req->cls_call);
        req->cls_call = NULL;
    }
    cache_cancel(req, shard_cache(sh));
    reply_settle_budget(req); /* also cancels a pending admission */
    reply_error(req, &err, NULL);
}

void reply_release(req_t *req)
{
    req->client_gone = true;
    resume(req);
}

/* ---- client disconnect detection while suspended ---- */

static void on_client_io(loop_t *loop, loop_io_t *io, uint32_t events)
{
    req_t *req = io->arg;
    (void)events;
    loop_io_del(loop, io);
    req->watching = false;
    if (!req->client_gone) {
        req->client_gone = true;
        log_debug("request %s: client closed the connection", req->id);
        upstream_cancel(shard_upstream(req->shard), req);
        cache_cancel(req, shard_cache(req->shard));
    }
    resume(req);
}

/* libmicrohttpd 0.9.75 does not notice a peer that closes while its
 * connection is suspended, so watch the socket for a hang-up ourselves. */
static void watch_client(req_t *req)
{
    const union MHD_ConnectionInfo *ci;
    if (req->watching)
        return;
    ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci == NULL)
        return;
    req->client_io.fd = ci->connect_fd;
    req->client_io.cb = on_client_io;
    req->client_io.arg = req;
    if (loop_io_set(shard_loop(req->shard), &req->client_io, EPOLLRDHUP) == 0)
        req->watching = true;
}

/* Most answers that are not streamed arrive within milliseconds (cache
 * hits, fast providers): the hang-up watch, two epoll_ctl calls, is set up
 * only for requests that are still waiting after WATCH_AFTER_MS. */
#define WATCH_AFTER_MS 20

static void on_watch_timer(loop_t *loop, loop_timer_t *t)
{
    req_t *req = t->arg;
    (void)loop;
    if (!req->client_gone)
        watch_client(req);
}

void reply_suspend(req_t *req)
{
    if (!req->suspended) {
        req->suspended = true;
        MHD_suspend_connection(req->conn);
    }
    if (!req->watching && !loop_timer_armed(&req->watch_timer)) {
        req->watch_timer.cb = on_watch_timer;
        req->watch_timer.arg = req;
        loop_timer_start(shard_loop(req->shard), &req->watch_timer, WATCH_AFTER_MS);
    }
}


/* Budgets: release the reservation and count the actual cost (once). */
void reply_settle_budget(req_t *req)
{
    shard_t *sh = req->shard;
    budget_t *b = shard_budget(sh);
    if (b == NULL)
        return;
    if (req->budget_op != NULL) {
        budget_cancel(b, req->budget_op);
        req->budget_op = NULL;
    }
    if (req->budget_admitted) {
        double actual = request_cost_total(req) >= 0 ? request_cost_total(req)
                        : req->model < 0                ? 0
                                                        : -1;
        int64_t tok = (req->prompt_tokens > 0 ? req->prompt_tokens : 0) +
                      (req->completion_tokens > 0 ? req->completion_tokens : 0) +
                      (req->casc != NULL ? req->casc->prior_tokens : 0);
        budget_settle(b, shard_budget_rds(sh), req->auth_key, (budget_ticket_t *)(void *)req->budget_ticket,
                      actual, (uint32_t)tok);
        req->budget_admitted = false;
    }
}
