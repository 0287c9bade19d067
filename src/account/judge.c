/* judge: judging sampled answers on the shard loop (see
 * include/account/judge.h). */
#include "account/judge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account/judge_parse.h"
#include "account/webhook.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "route/router.h"
#include "upstream/call.h"

#define MAX_EVENTS 8

typedef struct jitem {
    judge_t *j;
    config_t *cfg;          /* the request's snapshot, referenced */
    buf_t line;             /* the sample line up to its closing brace */
    char *prompt;
    char *tier, *model, *rule;
    enum judge_failure failure;
    upstream_call_t *call;  /* in flight */
    struct jitem *prev, *next;
} jitem_t;

struct judge {
    quality_t *q;
    sampler_t *s;
    struct upstream *up;
    loop_t *loop;
    webhook_t *hook;
    jitem_t *wait_head, *wait_tail; /* queued, oldest first */
    size_t n_wait;
    jitem_t *busy;                  /* in flight */
    size_t n_busy;
};

judge_t *judge_new(quality_t *q, sampler_t *s, struct upstream *up, loop_t *loop)
{
    judge_t *j = xcalloc(1, sizeof *j);
    j->q = q;
    j->s = s;
    j->up = up;
    j->loop = loop;
    j->hook = webhook_new(q, up, loop);
    return j;
}

static void item_free(jitem_t *it)
{
    buf_free(&it->line);
    free(it->prompt);
    free(it->tier);
    free(it->model);
    free(it->rule);
    config_unref(it->cfg);
    free(it);
}

/* Logs and notifies alert transitions. */
static void alerts(judge_t *j, const config_t *cfg, const quality_event_t *ev, size_t n)
{
    const cfg_alerts_t *a = cfg->obs.alerts;
    for (size_t i = 0; i < n; i++) {
        const quality_event_t *e = &ev[i];
        if (e->raised)
            log_warn("quality alert raised: %s %s %s: mean score %.2f (min %.2f), failure rate "
                     "%.2f (max %.2f) over %u samples, %u scored%s",
                     e->kind, e->name, e->reason, e->mean_score, a->min_mean_score,
                     e->failure_rate, a->max_failure_rate, e->n, e->n_scored,
                     e->demoted ? "; demoted: skipped in chains" : "");
        else
            log_info("quality alert cleared: %s %s %s: mean score %.2f, failure rate %.2f over %u "
                     "samples",
                     e->kind, e->name, e->reason, e->mean_score, e->failure_rate, e->n);
        webhook_send(j->hook, cfg, e);
    }
}

static void record(judge_t *j, const config_t *cfg, const char *tier, const char *model,
                   const char *rule, enum judge_failure f, bool scored, int score)
{
    quality_event_t ev[MAX_EVENTS];
    quality_sample_t s = {.tier = tier, .model = model, .rule = rule, .failure = f,
                          .scored = scored, .score = score};
    size_t n = quality_record(j->q, cfg->obs.alerts, &s, loop_now_ms(j->loop), ev, MAX_EVENTS);
    if (n > 0)
        alerts(j, cfg, ev, n);
}

/* Closes the line with its judge member (NULL: null) and writes it. */
static void write_line(judge_t *j, buf_t *line, const char *judge_json)
{
    int rc = buf_puts(line, ",\"judge\":");
    rc |= buf_puts(line, judge_json ? judge_json : "null");
    rc |= buf_puts(line, "}\n");
    if (rc == 0)
        sampler_write_line(j->s, buf_ptr(line), buf_len(line));
}

static void judge_error_json(buf_t *b, const config_t *cfg, const char *error, double cost,
                             uint64_t ms)
{
    const char *m = cfg->models[cfg->obs.judge->model].name;
    char num[96];
    buf_puts(b, "{\"model\":");
    json_append_string(b, m, strlen(m));
    buf_puts(b, ",\"error\":");
    json_append_string(b, error, strlen(error));
    snprintf(num, sizeof num, ",\"cost_usd\":%.10g,\"ms\":%llu}", cost > 0 ? cost : 0.0,
             (unsigned long long)ms);
    buf_puts(b, num);
}

static void pump(judge_t *j);

static void unlink_busy(judge_t *j, jitem_t *it)
{
    if (it->prev != NULL)
        it->prev->next = it->next;
    else
        j->busy = it->next;
    if (it->next != NULL)
        it->next->prev = it->prev;
    it->prev = it->next = NULL;
    j->n_busy--;
}

static enum quality_jerr error_kind(const upstream_call_result_t *r)
{
    if (r->error == NULL)
        return QJERR_OTHER;
    if (strstr(r->error, "imeout") != NULL || strstr(r->error, "timed out") != NULL)
        return QJERR_TIMEOUT;
    if (r->status >= 300 || strncmp(r->error, "HTTP ", 5) == 0)
        return QJERR_HTTP;
    if (strstr(r->error, "onnect") != NULL || strstr(r->error, "resolve") != NULL)
        return QJERR_CONNECT;
    return QJERR_OTHER;
}

static void on_judged(void *arg, const upstream_call_result_t *r)
{
    jitem_t *it = arg;
    judge_t *j = it->j;
    const config_t *cfg = it->cfg;
    const char *jm = cfg->models[cfg->obs.judge->model].name;
    uint64_t ms = r->elapsed_us / 1000;
    double cost = r->cost_usd > 0 ? r->cost_usd : 0;
    buf_t b;
    int score = 0;
    char reason[256];
    bool scored = false;
    it->call = NULL;
    unlink_busy(j, it);
    quality_add_spend(j->q, cost);
    buf_init(&b, 4096);
    if (r->ok && judge_parse_score(r->content, &score, reason, sizeof reason) == 0) {
        char num[96];
        scored = true;
        buf_puts(&b, "{\"model\":");
        json_append_string(&b, jm, strlen(jm));
        snprintf(num, sizeof num, ",\"score\":%d,\"reason\":", score);
        buf_puts(&b, num);
        json_append_string(&b, reason, strlen(reason));
        snprintf(num, sizeof num, ",\"cost_usd\":%.10g,\"ms\":%llu}", cost,
                 (unsigned long long)ms);
        buf_puts(&b, num);
    } else {
        enum quality_jerr e = r->ok ? QJERR_UNPARSABLE : error_kind(r);
        char why[64];
        quality_count_judge_error(j->q, e);
        if (e == QJERR_HTTP && r->status > 0)
            snprintf(why, sizeof why, "http_%u", r->status);
        else
            snprintf(why, sizeof why, "%s", quality_jerr_name(e));
        judge_error_json(&b, cfg, why, cost, ms);
        log_debug("judge: no score for a sample of %s: %s", it->model,
                  r->ok ? "unparsable answer" : (r->error ? r->error : "failed"));
    }
    write_line(j, &it->line, buf_cstr(&b));
    buf_free(&b);
    record(j, cfg, it->tier, it->model, it->rule, it->failure, scored, score);
    item_free(it);
    pump(j);
}

/* Starts queued samples while calls are free. */
static void pump(judge_t *j)
{
    while (j->wait_head != NULL && j->n_busy < j->wait_head->cfg->obs.judge->concurrency) {
        jitem_t *it = j->wait_head;
        const cfg_judge_t *jc = it->cfg->obs.judge;
        const char *rubric = jc->rubric ? jc->rubric : judge_default_rubric();
        size_t len;
        char *body;
        j->wait_head = it->next;
        if (j->wait_head == NULL)
            j->wait_tail = NULL;
        it->next = NULL;
        j->n_wait--;
        if (!quality_spend_ok(j->q, jc->daily_spend_usd)) {
            quality_count_drop(j->q, QDROP_DAILY_CAP);
            write_line(j, &it->line, NULL);
            record(j, it->cfg, it->tier, it->model, it->rule, it->failure, false, 0);
            item_free(it);
            continue;
        }
        body = upstream_call_chat_body(it->cfg, jc->model, rubric, it->prompt, jc->max_tokens, &len);
        it->call = upstream_call_start(j->up, it->cfg, jc->model, body, len, jc->timeout_ms,
                                       on_judged, it);
        free(body);
        if (it->call == NULL) {
            buf_t b;
            quality_count_judge_error(j->q, QJERR_CONNECT);
            buf_init(&b, 4096);
            judge_error_json(&b, it->cfg, "unavailable", 0, 0);
            write_line(j, &it->line, buf_cstr(&b));
            buf_free(&b);
            record(j, it->cfg, it->tier, it->model, it->rule, it->failure, false, 0);
            item_free(it);
            continue;
        }
        it->next = j->busy;
        if (j->busy != NULL)
            j->busy->prev = it;
        j->busy = it;
        j->n_busy++;
    }
}

static char *name_or_dash(const char *s)
{
    return xstrdup(s != NULL ? s : "-");
}

void judge_sample(judge_t *j, const req_t *req, const char *body, size_t len, const char *resp,
                  size_t rlen)
{
    config_t *cfg = req->cfg;
    const cfg_judge_t *jc = cfg->obs.judge;
    bool routed = router_routed(&req->route);
    const char *tier = routed ? router_tier_name(cfg, &req->route) : NULL;
    const char *rule = routed ? router_rule_name(cfg, &req->route) : NULL;
    const char *model = req->model >= 0 ? cfg->models[req->model].name : NULL;
    enum judge_failure f = judge_answer_failure(req->resp_status, body, len, resp, rlen);
    jitem_t *it;
    buf_t line;
    char *prompt = NULL;
    /* a string-escaped body grows at most 6x (\u00XX) */
    buf_init(&line, 6 * (len + rlen) + 8192);
    if (sampler_format(cfg, req, body, len, resp, rlen, &line) < 0) {
        buf_free(&line);
        return;
    }
    if (model == NULL && req->n_attempts > 0 && req->attempts[req->n_attempts - 1].model >= 0)
        model = cfg->models[req->attempts[req->n_attempts - 1].model].name;
    if (jc != NULL && req->judge_pick) {
        if (f == JUDGE_FAIL_NONE)
            prompt = judge_prompt(body, len, resp, rlen, jc->max_input_bytes);
        if (prompt == NULL)
            quality_count_drop(j->q, QDROP_NO_ANSWER);
        else if (j->n_wait >= jc->queue)
            quality_count_drop(j->q, QDROP_QUEUE_FULL);
        else if (!quality_spend_ok(j->q, jc->daily_spend_usd))
            quality_count_drop(j->q, QDROP_DAILY_CAP);
        else
            goto judge;
    }
    free(prompt);
    write_line(j, &line, NULL);
    buf_free(&line);
    if (model != NULL)
        record(j, cfg, tier ? tier : "-", model, rule ? rule : "-", f, false, 0);
    return;
judge:
    it = xcalloc(1, sizeof *it);
    it->j = j;
    it->cfg = config_ref(cfg);
    it->line = line;
    it->prompt = prompt;
    it->tier = name_or_dash(tier);
    it->model = name_or_dash(model);
    it->rule = name_or_dash(rule);
    it->failure = f;
    if (j->wait_tail != NULL)
        j->wait_tail->next = it;
    else
        j->wait_head = it;
    j->wait_tail = it;
    j->n_wait++;
    pump(j);
}

size_t judge_pending(const judge_t *j)
{
    return j != NULL ? j->n_wait + j->n_busy : 0;
}

void judge_free(judge_t *j)
{
    jitem_t *lists[2];
    if (j == NULL)
        return;
    lists[0] = j->wait_head;
    lists[1] = j->busy; /* their calls went with the upstream */
    for (int k = 0; k < 2; k++)
        while (lists[k] != NULL) {
            jitem_t *it = lists[k];
            buf_t b;
            lists[k] = it->next;
            quality_count_drop(j->q, QDROP_SHUTDOWN);
            buf_init(&b, 4096);
            judge_error_json(&b, it->cfg, "shutdown", 0, 0);
            write_line(j, &it->line, buf_cstr(&b));
            buf_free(&b);
            item_free(it);
        }
    webhook_free(j->hook);
    free(j);
}
