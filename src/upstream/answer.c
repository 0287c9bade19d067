/* answer: what becomes of a sound non-streamed answer — its accounting
 * (usage or an estimate, the baseline, the model's daily cap, the budget),
 * a cascade's verdict on it (the checks, the judge through upstream/call.h,
 * escalation to the next model, the kept answer when every later model
 * fails), and its delivery to the client and the cache. The curl state
 * machine that produces answers is upstream.c; this file never touches a
 * transfer. Shard thread only. */
#include "upstream/attempt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account/budget.h"
#include "cache/cache.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/shard.h"
#include "core/util.h"
#include "http/reply.h"
#include "upstream/call.h"
#include "upstream/cascade.h"

static void spend(req_t *req, int m, double usd)
{
    const cfg_model_t *md = &req->cfg->models[m];
    if (shard_budget(req->shard) && usd > 0)
        budget_model_spent(shard_budget(req->shard), shard_budget_rds(req->shard), md->name,
                           md->daily_cap_usd, usd);
}

/* A cascade's accounting: what going straight to the chain's last model
 * would have cost for the returned answer's tokens, and the rejected
 * attempts and judges spent on their models' daily caps. */
static void cascade_account(req_t *req)
{
    const config_t *cfg = req->cfg;
    cascade_run_t *run = req->casc;
    int last = req->route.chain[req->route.n - 1];
    run->direct_usd = provider_cost(&cfg->models[last], (double)req->prompt_tokens,
                                    (double)req->completion_tokens,
                                    (double)(req->cached_tokens > 0 ? req->cached_tokens : 0));
    for (size_t i = 0; i < run->n_steps; i++) {
        const cascade_step_t *st = &run->steps[i];
        if (st->verdict == CASCADE_REJECTED)
            spend(req, st->model, st->cost_usd);
        if (st->judge_usd > 0 && cascade_cfg_judge_model(run->cfg) >= 0)
            spend(req, cascade_cfg_judge_model(run->cfg), st->judge_usd);
    }
}

/* Completes the request's accounting: when the provider gave no usage,
 * estimate it (prompt from the request's text, completion from the answer:
 * a streamed event carries about one token) and say so; then what the
 * baseline model would have cost for the same tokens. */
void upstream_account(req_t *req, size_t answer_bytes)
{
    const config_t *cfg = req->cfg;
    if (req->model < 0)
        return;
    if (req->prompt_tokens < 0 || req->completion_tokens < 0) {
        req->prompt_tokens = req->est_prompt_tokens;
        req->completion_tokens = req->stream ? (req->data_events > 2 ? req->data_events - 2 : 0)
                                             : (int64_t)(answer_bytes / 16);
        req->cached_tokens = 0;
        req->cost_usd = provider_cost(&cfg->models[req->model], (double)req->prompt_tokens,
                                      (double)req->completion_tokens, 0);
        req->cost_estimated = true;
    }
    if (req->casc != NULL)
        cascade_account(req);
    if (cfg->baseline_model >= 0)
        req->baseline_usd = provider_cost(&cfg->models[cfg->baseline_model], (double)req->prompt_tokens,
                                          (double)req->completion_tokens,
                                          (double)(req->cached_tokens > 0 ? req->cached_tokens : 0));
    /* count the model's spend as soon as the answer is complete, before the
     * client can send its next request (daily_cap_usd) */
    if (shard_budget(req->shard) && req->cost_usd > 0)
        budget_model_spent(shard_budget(req->shard), shard_budget_rds(req->shard),
                           cfg->models[req->model].name, cfg->models[req->model].daily_cap_usd,
                           req->cost_usd);
    /* a cascade's request costs every attempt and judge (each one spent on
     * its own model's cap above or in cascade_account) */
    if (req->casc != NULL)
        req->cost_usd = (req->cost_usd > 0 ? req->cost_usd : 0) + req->casc->prior_usd;
    reply_settle_budget(req);
}

/* Answers the client with a sound non-streamed answer (req->out, or
 * pr->new_body), accounts for it and stores it in the cache — unless it is
 * a cascade's answer that did not pass its checks (returned as is: the
 * last model's, or the last rejected one). Takes over pr's buffers. */
void upstream_deliver(upstream_t *up, req_t *req, provider_result_t *pr)
{
    bool store = req->casc == NULL || req->casc->n_steps == 0 ||
                 req->casc->steps[req->casc->n_steps - 1].verdict == CASCADE_ACCEPTED;
    (void)up;
    req->cost_usd = pr->cost_usd;
    req->prompt_tokens = pr->prompt_tokens;
    req->completion_tokens = pr->completion_tokens;
    req->cached_tokens = pr->cached_tokens;
    req->t_end_us = util_now_us();
    upstream_account(req, pr->new_body ? pr->new_len : buf_len(&req->out));
    if (pr->compact != NULL) {
        if (store)
            cache_store(req, shard_cache(req->shard), pr->compact, pr->compact_len);
        free(pr->compact);
    }
    if (req->sampled)
        req->sample_resp = xstrndup(pr->new_body ? pr->new_body : buf_ptr(&req->out),
                                    pr->new_body ? pr->new_len : buf_len(&req->out));
    if (pr->new_body != NULL) {
        reply_send(req, 200, pr->new_body, pr->new_len, NULL);
    } else {
        size_t len;
        char *body = buf_detach(&req->out, &len);
        reply_send(req, req->up_status, body, len, NULL);
    }
    buf_free(&req->out);
}

/* An attempt's cost and tokens, estimated like upstream_account() does when the
 * answer carried no usage. */
static double attempt_cost(const req_t *req, const provider_result_t *pr, size_t len,
                           int64_t *tokens)
{
    if (pr->cost_usd >= 0 && pr->prompt_tokens >= 0 && pr->completion_tokens >= 0) {
        *tokens = pr->prompt_tokens + pr->completion_tokens;
        return pr->cost_usd;
    }
    *tokens = (int64_t)req->est_prompt_tokens + (int64_t)(len / 16);
    return provider_cost(&req->cfg->models[req->model], (double)req->est_prompt_tokens,
                         (double)(len / 16), 0);
}

/* A cascade step's answer failed a check: keep it (in case every later
 * model fails), count its cost and go on with the next model. */
static void escalate(upstream_t *up, req_t *req, provider_result_t *pr, enum cascade_reason r,
                     const char *detail)
{
    cascade_run_t *run = req->casc;
    size_t len = pr->new_body ? pr->new_len : buf_len(&req->out);
    int64_t tokens;
    double cost = attempt_cost(req, pr, len, &tokens);
    cascade_step_t *st = run->judge_step_open ? &run->steps[run->n_steps - 1]
                                              : cascade_add_step(run, req->model, CASCADE_REJECTED,
                                                                 r, cost);
    if (st != NULL) {
        st->verdict = CASCADE_REJECTED;
        st->reason = r;
    }
    run->judge_step_open = false;
    run->prior_usd += cost;
    run->prior_tokens += tokens;
    free(run->kept);
    if (pr->new_body != NULL) {
        run->kept = pr->new_body;
        run->kept_len = pr->new_len;
        pr->new_body = NULL;
    } else {
        run->kept = buf_detach(&req->out, &run->kept_len);
    }
    run->kept_model = req->model;
    run->kept_step = st != NULL ? (size_t)(st - run->steps) : SIZE_MAX;
    run->kept_cost = cost;
    run->kept_tokens = tokens;
    run->kept_prompt = pr->prompt_tokens;
    run->kept_completion = pr->completion_tokens;
    run->kept_cached = pr->cached_tokens;
    free(pr->compact);
    pr->compact = NULL;
    buf_free(&req->out);
    log_info("request %s: cascade: %s rejected (%s: %s), escalating", req->id,
             req->cfg->models[req->model].name, cascade_reason_name(r), detail);
    upstream_next_attempt(up, req);
}

/* Every later model failed: the last rejected answer is better than a 502. */
void upstream_deliver_kept(upstream_t *up, req_t *req)
{
    cascade_run_t *run = req->casc;
    provider_result_t pr = {.cost_usd = run->kept_cost,
                            .prompt_tokens = run->kept_prompt,
                            .completion_tokens = run->kept_completion,
                            .cached_tokens = run->kept_cached,
                            .new_body = run->kept,
                            .new_len = run->kept_len};
    if (run->kept_step < run->n_steps)
        run->steps[run->kept_step].verdict = CASCADE_FINAL;
    run->prior_usd -= run->kept_cost;
    run->prior_tokens -= run->kept_tokens;
    run->kept = NULL;
    req->model = run->kept_model;
    req->up_status = 200;
    upstream_deliver(up, req, &pr);
}

static void on_judged(void *arg, const upstream_call_result_t *res)
{
    req_t *req = arg;
    cascade_run_t *run = req->casc;
    upstream_t *up = shard_upstream(req->shard);
    provider_result_t pr = {.cost_usd = run->pending_cost,
                            .prompt_tokens = run->pending_prompt,
                            .completion_tokens = run->pending_completion,
                            .cached_tokens = run->pending_cached,
                            .new_body = run->pending_new,
                            .new_len = run->pending_new_len,
                            .compact = run->pending_compact,
                            .compact_len = run->pending_compact_len};
    cascade_step_t *st = &run->steps[run->n_steps - 1];
    double score = res->ok ? cascade_judge_score(res->content) : -1;
    char detail[96];
    run->judge = NULL;
    run->pending_new = run->pending_compact = NULL;
    st->judge_score = score;
    if (res->cost_usd > 0) {
        st->judge_usd = res->cost_usd;
        run->prior_usd += res->cost_usd;
    }
    if (res->prompt_tokens > 0)
        run->prior_tokens += res->prompt_tokens;
    if (res->completion_tokens > 0)
        run->prior_tokens += res->completion_tokens;
    if (score >= 0 && score >= cascade_cfg_judge_threshold(run->cfg)) {
        run->judge_step_open = false;
        upstream_deliver(up, req, &pr);
        return;
    }
    if (score < 0)
        snprintf(detail, sizeof detail, "%.80s",
                 res->ok ? "the judge gave no score" : res->error ? res->error : "failed");
    else
        snprintf(detail, sizeof detail, "score %.3g", score);
    escalate(up, req, &pr, score < 0 ? CASCADE_JUDGE_ERROR : CASCADE_JUDGE, detail);
}

/* Runs a cascade's checks on a sound answer. Returns false when the answer
 * is to be delivered now (accepted, or the last model's, returned as is),
 * true when the request went on (escalated, or waiting for the judge, whose
 * verdict on_judged acts on). The judge is not asked about the last model's
 * answer: it would be returned whatever the score. */
bool upstream_cascade_step(upstream_t *up, req_t *req, provider_result_t *pr)
{
    cascade_run_t *run = req->casc;
    const char *body = pr->new_body ? pr->new_body : buf_ptr(&req->out);
    size_t len = pr->new_body ? pr->new_len : buf_len(&req->out);
    bool last = req->next_link >= req->route.n;
    int judge = cascade_cfg_judge_model(run->cfg);
    char *content = NULL, detail[160];
    int64_t tokens;
    double cost = attempt_cost(req, pr, len, &tokens);
    enum cascade_reason r = cascade_check(run->cfg, &run->ask, body, len,
                                          !last && judge >= 0 ? &content : NULL, detail,
                                          sizeof detail);
    if (r == CASCADE_OK && !last && judge >= 0) {
        size_t jlen;
        char *jbody = cascade_judge_body(req->cfg, run->cfg, run->ask.question, content, &jlen);
        free(content);
        run->judge = upstream_call_start(up, req->cfg, judge, jbody, jlen,
                                         cascade_cfg_judge_timeout_ms(run->cfg), on_judged, req);
        free(jbody);
        if (run->judge != NULL) {
            /* the answer waits in req->out (or new_body) for the verdict */
            run->pending_new = pr->new_body;
            run->pending_new_len = pr->new_len;
            run->pending_compact = pr->compact;
            run->pending_compact_len = pr->compact_len;
            run->pending_cost = pr->cost_usd;
            run->pending_prompt = pr->prompt_tokens;
            run->pending_completion = pr->completion_tokens;
            run->pending_cached = pr->cached_tokens;
            cascade_add_step(run, req->model, CASCADE_ACCEPTED, CASCADE_OK, cost);
            run->judge_step_open = true;
            return true;
        }
        escalate(up, req, pr, CASCADE_JUDGE_ERROR, "the judge call could not start");
        return true;
    }
    free(content);
    if (r == CASCADE_OK) {
        cascade_add_step(run, req->model, CASCADE_ACCEPTED, CASCADE_OK, cost);
        return false;
    }
    if (last) {
        cascade_add_step(run, req->model, CASCADE_FINAL, r, cost);
        log_info("request %s: cascade: the last model %s failed a check (%s: %s); returned as is",
                 req->id, req->cfg->models[req->model].name, cascade_reason_name(r), detail);
        return false;
    }
    escalate(up, req, pr, r, detail);
    return true;
}
