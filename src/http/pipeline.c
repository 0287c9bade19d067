/* pipeline: what a request does once its body is in — the count_tokens and
 * explain answers, the parse and routing (request_parse), the classifier's
 * label when a rule needs it (an upstream_call bounded by its timeout; the
 * rules run again with the label or fall back), quality sampling, the
 * per-key budget admission (possibly waiting for Redis), then the cache and
 * the providers. Every step either answers the client (reply_*) or hands
 * the request on; nothing here blocks. Shard thread only. */
#include "http/pipeline.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account/budget.h"
#include "account/observe.h"
#include "cache/cache.h"
#include "core/shard.h"
#include "core/util.h"
#include "http/door_wire.h"
#include "http/reply.h"
#include "route/classifier.h"
#include "route/rules.h"
#include "upstream/call.h"
#include "upstream/provider.h"
#include "upstream/upstream.h"

_Static_assert(sizeof(budget_ticket_t) <= sizeof(((req_t *)0)->budget_ticket),
               "req_t.budget_ticket too small");

/* After admission: the cache, then the providers. */
static void go_on(req_t *req)
{
    if (cache_begin(req, shard_cache(req->shard)))
        return; /* answered from the cache, or a Redis lookup is pending */
    upstream_start(shard_upstream(req->shard), req);
}

static void refuse(req_t *req, const budget_verdict_t *v)
{
    size_t len;
    char *body = budget_error_body(v, req->auth_key, &len);
    char num[24];
    reply_send(req, 429, body, len, NULL);
    if (req->response) {
        snprintf(num, sizeof num, "%u", v->retry_after_s);
        MHD_add_response_header(req->response, MHD_HTTP_HEADER_RETRY_AFTER, num);
        if (!v->should_retry)
            MHD_add_response_header(req->response, "x-should-retry", "false");
    }
}

static void on_budget(void *arg, const budget_verdict_t *v)
{
    req_t *req = arg;
    req->budget_op = NULL;
    if (v->code != BUDGET_OK) {
        refuse(req, v);
        return;
    }
    memcpy(req->budget_ticket, &v->ticket, sizeof v->ticket);
    req->budget_admitted = true;
    go_on(req);
}

/* Per-key budgets and rate limits: reserve the estimated cost before any
 * provider is called. Returns 0 to go on now, 1 when the request is taken
 * care of (refused, or waiting for Redis). */
static int admit(req_t *req)
{
    const config_t *cfg = req->cfg;
    budget_t *b = shard_budget(req->shard);
    budget_verdict_t v;
    struct rds *rds;
    int m0 = req->route.n ? req->route.chain[0] : -1;
    uint32_t max_out = 0, est_tok;
    double est = 0;
    int rc;
    if (b == NULL || req->auth_key == NULL)
        return 0;
    for (size_t i = 0; i < req->route.n; i++) {
        int m = req->route.chain[i];
        if (budget_model_allowed(b, cfg->models[m].name, cfg->models[m].daily_cap_usd)) {
            m0 = m;
            break;
        }
    }
    if (req->max_output > 0)
        max_out = req->max_output > UINT32_MAX ? UINT32_MAX : (uint32_t)req->max_output;
    if (m0 >= 0)
        est = req->ep == EP_EMBEDDINGS
                  ? provider_cost(&cfg->models[m0], req->est_prompt_tokens, 0, 0)
                  : budget_estimate_usd(b, &cfg->models[m0], req->est_prompt_tokens, max_out);
    est_tok = req->est_prompt_tokens + (max_out ? max_out : budget_default_max_output_tokens(b));
    rds = shard_budget_rds(req->shard);
    rc = budget_admit(b, rds, rds ? request_redis_wait_ms(req, util_now_ms()) : RDS_WAIT_ANY,
                      req->auth_key, est, est_tok, &v, on_budget, req, &req->budget_op);
    if (rc == BUDGET_PENDING)
        return 1;
    if (v.code != BUDGET_OK) {
        refuse(req, &v);
        return 1;
    }
    memcpy(req->budget_ticket, &v.ticket, sizeof v.ticket);
    req->budget_admitted = true;
    return 0;
}

/* Parsed and routed: sampling, budgets, then the cache and the providers. */
static void routed(req_t *req)
{
    req->sampled = observe_sample_pick(shard_observe(req->shard), shard_random(req->shard));
    req->judge_pick = observe_judge_pick(shard_observe(req->shard), req, shard_random(req->shard));
    req->sampled = req->sampled || req->judge_pick;
    req->state = RS_UPSTREAM;
    if (admit(req) != 0)
        return; /* refused (429), or a Redis budget check is pending */
    go_on(req);
}

/* ---- classifier routing ----
 * A rule needed the classifier's label (request_parse said so): the
 * decision cache, else one upstream_call to routing.classifier.model
 * bounded by its timeout_ms, then the rules run again with the label — or,
 * on a timeout, an error or an answer that is no label, with classify
 * conditions and actions not matching (the fallback). The classifier never
 * fails the client's request. */

static void classified(req_t *req, enum classifier_result res, int label)
{
    req_error_t err = {0};
    int rc;
    req->cls_result = (int)res;
    req->cls_label = label;
    req->cls_state = label >= 0 ? RULE_LABEL_KNOWN : RULE_LABEL_FALLBACK;
    rc = request_parse(req, &err, NULL);
    if (rc == REQUEST_NEED_LABEL) { /* cannot happen with a known or failed label */
        err.status = 500;
        err.type = "server_error";
        err.code = "internal_error";
        snprintf(err.message, sizeof err.message, "Routing did not settle after classification.");
        rc = -1;
    }
    if (rc < 0) {
        reply_error(req, &err, NULL);
        return;
    }
    routed(req);
}

static void on_classifier(void *arg, const upstream_call_result_t *res)
{
    req_t *req = arg;
    const config_t *cfg = req->cfg;
    const cfg_classifier_t *cl = &cfg->classifier;
    enum classifier_result r;
    int label = -1;
    req->cls_call = NULL;
    req->cls_us = res->elapsed_us;
    req->cls_cost_usd = res->cost_usd;
    req->cls_prompt_tokens = res->prompt_tokens;
    req->cls_completion_tokens = res->completion_tokens;
    if (!res->ok) {
        const char *e = res->error ? res->error : "failed";
        r = strstr(e, "imeout") || strstr(e, "timed out") ? CLASSIFIER_TIMEOUT : CLASSIFIER_ERROR;
        snprintf(req->cls_error, sizeof req->cls_error, "%s", e);
    } else {
        label = classifier_parse_label(cl, res->content);
        r = label >= 0 ? CLASSIFIER_OK : CLASSIFIER_GARBAGE;
        if (label >= 0)
            classifier_cache_put(*shard_classifier_cache(req->shard), req->cls_key,
                                 cl->labels[label],
                                 util_now_ms() + (uint64_t)cl->cache_ttl_s * 1000);
    }
    /* the classifier model's daily cap counts its calls too */
    if (res->cost_usd > 0 && shard_budget(req->shard))
        budget_model_spent(shard_budget(req->shard), shard_budget_rds(req->shard),
                           cfg->models[cl->model].name, cfg->models[cl->model].daily_cap_usd,
                           res->cost_usd);
    classified(req, r, label);
}

static void classify(req_t *req)
{
    const config_t *cfg = req->cfg;
    const cfg_classifier_t *cl = &cfg->classifier;
    classifier_cache_t *cache = classifier_cache_sized(shard_classifier_cache(req->shard),
                                                       cl->cache_entries);
    char *sys = classifier_system_prompt(cl), *body;
    size_t len;
    int label;
    req->cls_key = classifier_key(cfg->models[cl->model].upstream, sys, req->cls_text, req->cls_len);
    label = classifier_cache_get(cache, cl, req->cls_key, util_now_ms());
    if (label >= 0) {
        free(sys);
        classified(req, CLASSIFIER_CACHED, label);
        return;
    }
    body = upstream_call_chat_body(cfg, cl->model, sys, req->cls_text, cl->max_tokens, &len);
    free(sys);
    req->state = RS_UPSTREAM; /* suspended until the label (or its failure) */
    req->cls_call = upstream_call_start(shard_upstream(req->shard), req->cfg, cl->model, body, len,
                                        cl->timeout_ms, on_classifier, req);
    free(body);
    if (req->cls_call == NULL) {
        snprintf(req->cls_error, sizeof req->cls_error, "the call could not start (no key?)");
        classified(req, CLASSIFIER_ERROR, -1);
    }
}

void pipeline_body_complete(req_t *req)
{
    int rc;
    req_error_t err = {0};
    if (req->too_large) {
        err.status = 413;
        err.code = "request_too_large";
        snprintf(err.message, sizeof err.message,
                 "The request body is larger than the limit of %zu bytes.",
                 req->cfg->max_body_bytes);
        reply_error(req, &err, NULL);
        return;
    }
    if (req->door_count_tokens) {
        buf_t out;
        buf_init(&out, 4096);
        if (doorwire_count_tokens(req, &out, &err) < 0) {
            buf_free(&out);
            reply_error(req, &err, NULL);
            return;
        }
        buf_cstr(&out);
        reply_send(req, 200, out.data, buf_len(&out), NULL);
        return;
    }
    if (req->explain_only) {
        buf_t out;
        buf_init(&out, (size_t)1 << 30);
        if (request_parse(req, &err, &out) < 0) {
            buf_free(&out);
            reply_error(req, &err, NULL);
            return;
        }
        buf_cstr(&out);
        reply_send(req, 200, out.data, buf_len(&out), NULL);
        return;
    }
    rc = request_parse(req, &err, NULL);
    if (rc < 0) {
        reply_error(req, &err, NULL);
        return;
    }
    if (rc == REQUEST_NEED_LABEL) {
        classify(req);
        return;
    }
    routed(req);
}

