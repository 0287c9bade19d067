/* webhook: alert notifications on the shard loop (see
 * include/account/webhook.h). */
#include "account/webhook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "upstream/call.h"

typedef struct hook_item {
    char *url;
    char **headers; /* NULL-terminated copies */
    char *body;
    size_t len;
    unsigned timeout_ms, retries_left, attempt;
    struct hook_item *next;
} hook_item_t;

struct webhook {
    quality_t *q;
    struct upstream *up;
    loop_t *loop;
    hook_item_t *head, *tail; /* head is the one being delivered */
    unsigned n;
    upstream_call_t *call;
    loop_timer_t timer; /* a retry's backoff */
};

static void item_free(hook_item_t *it)
{
    if (it == NULL)
        return;
    free(it->url);
    for (size_t i = 0; it->headers != NULL && it->headers[i] != NULL; i++)
        free(it->headers[i]);
    free(it->headers);
    free(it->body);
    free(it);
}

static void start(webhook_t *w);

static void on_timer(loop_t *loop, loop_timer_t *t)
{
    (void)loop;
    start(t->arg);
}

static void pop(webhook_t *w)
{
    hook_item_t *it = w->head;
    w->head = it->next;
    if (w->head == NULL)
        w->tail = NULL;
    w->n--;
    item_free(it);
}

/* The head's try failed (or could not start): backoff, or give up. */
static void failed(webhook_t *w, const char *why)
{
    hook_item_t *it = w->head;
    if (it->retries_left > 0) {
        uint64_t b = 250ull << (it->attempt < 6 ? it->attempt : 6);
        if (b > 10000)
            b = 10000;
        it->retries_left--;
        it->attempt++;
        /* full jitter over the upper half: never two tries back to back */
        {
            uint64_t r;
            util_random(&r, sizeof r);
            b = b / 2 + r % (b / 2 + 1);
        }
        log_debug("alert webhook: %s; retrying in %llu ms", why, (unsigned long long)b);
        loop_timer_start(w->loop, &w->timer, b);
        return;
    }
    log_warn("alert webhook: giving up after %u tries: %s", it->attempt + 1, why);
    quality_count_webhook(w->q, false, false);
    pop(w);
    start(w);
}

static void on_done(void *arg, const upstream_call_result_t *res)
{
    webhook_t *w = arg;
    w->call = NULL;
    if (res->ok) {
        quality_count_webhook(w->q, true, false);
        pop(w);
        start(w);
        return;
    }
    failed(w, res->error ? res->error : "failed");
}

static void start(webhook_t *w)
{
    hook_item_t *it = w->head;
    if (it == NULL || w->call != NULL || loop_timer_armed(&w->timer))
        return;
    w->call = upstream_call_post(w->up, it->url, (const char *const *)it->headers, it->body,
                                 it->len, it->timeout_ms, on_done, w);
    if (w->call == NULL)
        failed(w, "cannot start the request");
}

webhook_t *webhook_new(quality_t *q, struct upstream *up, loop_t *loop)
{
    webhook_t *w = xcalloc(1, sizeof *w);
    w->q = q;
    w->up = up;
    w->loop = loop;
    w->timer.cb = on_timer;
    w->timer.arg = w;
    return w;
}

void webhook_free(webhook_t *w)
{
    if (w == NULL)
        return;
    while (w->head != NULL)
        pop(w);
    free(w);
}

static int put_num(buf_t *out, const char *key, double v)
{
    char num[64];
    if (v < 0)
        snprintf(num, sizeof num, ",\"%s\":null", key);
    else
        snprintf(num, sizeof num, ",\"%s\":%.4f", key, v);
    return buf_puts(out, num);
}

int webhook_body(const config_t *cfg, const quality_event_t *ev, buf_t *out)
{
    const cfg_alerts_t *a = cfg->obs.alerts;
    char num[256], host[128] = "";
    int rc = buf_puts(out, ev->raised ? "{\"event\":\"raised\",\"kind\":" : "{\"event\":\"cleared\",\"kind\":");
    rc |= json_append_string(out, ev->kind, strlen(ev->kind));
    rc |= buf_puts(out, ",\"name\":");
    rc |= json_append_string(out, ev->name, strlen(ev->name));
    rc |= buf_puts(out, ",\"reason\":");
    rc |= json_append_string(out, ev->reason, strlen(ev->reason));
    rc |= put_num(out, "mean_score", ev->mean_score);
    rc |= put_num(out, "failure_rate", ev->failure_rate);
    snprintf(num, sizeof num,
             ",\"samples\":%u,\"scored\":%u,\"demoted\":%s,\"thresholds\":{\"min_mean_score\":%.4g,"
             "\"max_failure_rate\":%.4g,\"min_samples\":%u},\"time\":%lld",
             ev->n, ev->n_scored, ev->demoted ? "true" : "false", a ? a->min_mean_score : 0,
             a ? a->max_failure_rate : 0, a ? a->min_samples : 0, (long long)time(NULL));
    rc |= buf_puts(out, num);
    gethostname(host, sizeof host - 1);
    snprintf(num, sizeof num, "%s:%ld", host, (long)getpid());
    rc |= buf_puts(out, ",\"instance\":");
    rc |= json_append_string(out, num, strlen(num));
    return rc | buf_puts(out, "}");
}

void webhook_send(webhook_t *w, const config_t *cfg, const quality_event_t *ev)
{
    const cfg_alerts_t *a = cfg->obs.alerts;
    hook_item_t *it;
    buf_t b;
    if (w == NULL || a == NULL || a->webhook_url == NULL)
        return;
    if (w->n >= a->webhook_queue) {
        quality_count_webhook(w->q, false, true);
        log_warn("alert webhook: queue full (%u): notification dropped", a->webhook_queue);
        return;
    }
    it = xcalloc(1, sizeof *it);
    it->url = xstrdup(a->webhook_url);
    it->headers = xcalloc(a->n_webhook_headers + 1, sizeof(char *));
    for (size_t i = 0; i < a->n_webhook_headers; i++)
        it->headers[i] = xstrdup(a->webhook_headers[i]);
    it->timeout_ms = a->webhook_timeout_ms;
    it->retries_left = a->webhook_retries;
    buf_init(&b, 64 * 1024);
    webhook_body(cfg, ev, &b);
    it->body = buf_detach(&b, &it->len);
    buf_free(&b);
    if (w->tail != NULL)
        w->tail->next = it;
    else
        w->head = it;
    w->tail = it;
    w->n++;
    start(w);
}
