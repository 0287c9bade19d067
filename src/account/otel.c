/* otel: the per-shard span exporter (see account/otel.h).
 *
 * Queue: a list of records, one per exported request (its spans as JSON
 * text, comma-joined), at most queue_max_spans spans in all; a record that
 * does not fit is dropped and counted. A batch (at most batch_max_spans
 * spans, whole records) leaves when the queue holds a full one, when the
 * oldest record has waited flush_interval_ms, or at shutdown. One POST at a
 * time per shard, bounded by timeout_ms; a 429 or 5xx is retried once after
 * a jittered backoff, anything else failed drops the batch (counted).
 *
 * Transport: a curl multi of the exporter's own, driven by the shard loop
 * like upstream.c's (socket watchers and one timer). Its own rather than
 * the upstream multi: the collector's connection is never one of the
 * providers' pooled connections, a stalled collector's transfer never sits
 * in the completion loop of the clients' transfers, and the exporter can be
 * freed on its own after the shard drained. Its cost is measured in
 * docs/performance.md. */
#include "account/otel.h"

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "account/otel_json.h"
#include "core/config_otel.h"
#include "core/json.h"
#include "core/log.h"
#include "core/curlloop.h"
#include "core/util.h"

#define OTEL_RECORD_MAX (512 * 1024) /* one request's spans */
#define OTEL_RETRY_MS 500            /* backoff before the one retry: 250..750 ms */

enum otel_err { ERR_CONNECT, ERR_TIMEOUT, ERR_HTTP_429, ERR_HTTP_4XX, ERR_HTTP_5XX, ERR_OTHER, ERR_N };
static const char *const err_name[ERR_N] = {"connect", "timeout", "http_429", "http_4xx",
                                            "http_5xx", "other"};

struct otel_stats {
    atomic_ullong exported, dropped_queue, dropped_error, unsampled;
    atomic_ullong batches_ok, batches_failed, retries;
    atomic_ullong errors[ERR_N];
    atomic_llong queued; /* spans waiting, all shards */
};

typedef struct rec {
    struct rec *next;
    uint32_t n_spans;
    size_t len;
    char json[];
} rec_t;

struct otel {
    loop_t *loop;
    otel_stats_t *st;
    config_t *cfg;      /* the snapshot of the latest request queued: where to send */
    const char **prov_names; /* otel_provider_name of each model of cfg */
    uint64_t rng;
    /* queue */
    rec_t *head, *tail;
    size_t q_spans;
    loop_timer_t flush_timer;
    bool flush_due;     /* the flush timer fired while a POST was under way */
    /* the batch in flight (or waiting for its retry) */
    curlloop_t cl;      /* the exporter's own multi on the loop, made at the first span */
    CURLM *multi;       /* cl.multi, NULL until then */
    loop_timer_t retry_timer;
    CURL *easy;
    config_t *batch_cfg; /* its endpoint and headers stay valid while curl uses them */
    char *body;
    size_t body_len;
    uint32_t batch_spans;
    unsigned tries;
    unsigned status;
    bool retry_wait;
};

/* ---- counters ---- */

otel_stats_t *otel_stats_new(void)
{
    return xcalloc(1, sizeof(otel_stats_t));
}

void otel_stats_free(otel_stats_t *st)
{
    free(st);
}

int otel_render_metrics(otel_stats_t *st, buf_t *out)
{
    char line[256];
    int rc = 0;
    long long q;
    if (st == NULL)
        return 0;
    rc |= buf_puts(out, "# HELP llmrouter_otlp_spans_total OpenTelemetry spans by fate: exported, "
                        "dropped because the queue was full, dropped because the export failed.\n"
                        "# TYPE llmrouter_otlp_spans_total counter\n");
    snprintf(line, sizeof line,
             "llmrouter_otlp_spans_total{result=\"exported\"} %llu\n"
             "llmrouter_otlp_spans_total{result=\"dropped_queue\"} %llu\n"
             "llmrouter_otlp_spans_total{result=\"dropped_error\"} %llu\n",
             (unsigned long long)atomic_load(&st->exported),
             (unsigned long long)atomic_load(&st->dropped_queue),
             (unsigned long long)atomic_load(&st->dropped_error));
    rc |= buf_puts(out, line);
    rc |= buf_puts(out, "# HELP llmrouter_otlp_requests_unsampled_total Requests not exported "
                        "because of sample_rate or the caller's traceparent.\n"
                        "# TYPE llmrouter_otlp_requests_unsampled_total counter\n");
    snprintf(line, sizeof line, "llmrouter_otlp_requests_unsampled_total %llu\n",
             (unsigned long long)atomic_load(&st->unsampled));
    rc |= buf_puts(out, line);
    rc |= buf_puts(out, "# HELP llmrouter_otlp_batches_total OTLP export POSTs by result (a "
                        "retried batch counts once).\n"
                        "# TYPE llmrouter_otlp_batches_total counter\n");
    snprintf(line, sizeof line,
             "llmrouter_otlp_batches_total{result=\"exported\"} %llu\n"
             "llmrouter_otlp_batches_total{result=\"failed\"} %llu\n",
             (unsigned long long)atomic_load(&st->batches_ok),
             (unsigned long long)atomic_load(&st->batches_failed));
    rc |= buf_puts(out, line);
    rc |= buf_puts(out, "# HELP llmrouter_otlp_export_retries_total OTLP batches sent again after "
                        "a 429 or 5xx.\n# TYPE llmrouter_otlp_export_retries_total counter\n");
    snprintf(line, sizeof line, "llmrouter_otlp_export_retries_total %llu\n",
             (unsigned long long)atomic_load(&st->retries));
    rc |= buf_puts(out, line);
    rc |= buf_puts(out, "# HELP llmrouter_otlp_export_errors_total Failed OTLP POSTs (each try) "
                        "by reason.\n# TYPE llmrouter_otlp_export_errors_total counter\n");
    for (int i = 0; i < ERR_N; i++) {
        snprintf(line, sizeof line, "llmrouter_otlp_export_errors_total{reason=\"%s\"} %llu\n",
                 err_name[i], (unsigned long long)atomic_load(&st->errors[i]));
        rc |= buf_puts(out, line);
    }
    q = atomic_load(&st->queued);
    snprintf(line, sizeof line,
             "# HELP llmrouter_otlp_queue_spans Spans waiting to be exported, all shards.\n"
             "# TYPE llmrouter_otlp_queue_spans gauge\nllmrouter_otlp_queue_spans %lld\n",
             q > 0 ? q : 0);
    rc |= buf_puts(out, line);
    return rc ? -1 : 0;
}

static void check_done(otel_t *x);

static void on_multi_done(void *arg)
{
    check_done(arg);
}

/* ---- batches ---- */

static void start_batch(otel_t *x);

static const cfg_otlp_t *otlp_of(const config_t *cfg)
{
    return cfg != NULL ? cfg->obs.otlp : NULL;
}

static void arm_flush(otel_t *x)
{
    const cfg_otlp_t *o = otlp_of(x->cfg);
    if (o != NULL && x->head != NULL && !loop_timer_armed(&x->flush_timer))
        loop_timer_start(x->loop, &x->flush_timer, o->flush_interval_ms);
}

static void end_batch(otel_t *x)
{
    if (x->easy != NULL) {
        curl_multi_remove_handle(x->multi, x->easy);
        curl_easy_cleanup(x->easy);
        x->easy = NULL;
    }
    free(x->body);
    x->body = NULL;
    x->body_len = 0;
    x->batch_spans = 0;
    x->tries = 0;
    x->retry_wait = false;
    loop_timer_stop(x->loop, &x->retry_timer);
    config_unref(x->batch_cfg);
    x->batch_cfg = NULL;
}

/* What comes after a batch: the next one at once when a full batch waits
 * (or the flush time passed meanwhile), else the flush timer. */
static void after_batch(otel_t *x)
{
    const cfg_otlp_t *o = otlp_of(x->cfg);
    if (o != NULL && x->head != NULL && (x->q_spans >= o->batch_max_spans || x->flush_due)) {
        x->flush_due = false;
        loop_timer_stop(x->loop, &x->flush_timer);
        start_batch(x);
        return;
    }
    arm_flush(x);
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    otel_t *x = ud;
    size_t n = size * nmemb;
    uint64_t st;
    if (n >= 12 && memcmp(p, "HTTP/", 5) == 0) {
        const char *sp = memchr(p, ' ', n);
        x->status = 0;
        if (sp != NULL && (size_t)(sp - p) + 4 <= n && util_parse_u64(sp + 1, 3, &st) == 0)
            x->status = (unsigned)st;
    }
    return n;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    (void)p;
    (void)ud;
    return size * nmemb; /* the collector's answer is not needed */
}

/* Posts x->body. Returns 0, or -1 when the transfer could not start. */
static int post(otel_t *x)
{
    const cfg_otlp_t *o = otlp_of(x->batch_cfg);
    CURL *e = curl_easy_init();
    if (e == NULL || o == NULL) {
        if (e != NULL)
            curl_easy_cleanup(e);
        return -1;
    }
    x->status = 0;
    x->tries++;
    curl_easy_setopt(e, CURLOPT_URL, o->endpoint);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, o->headers);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)o->timeout_ms);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    if (curl_multi_add_handle(x->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        return -1;
    }
    x->easy = e;
    return 0;
}

static void fail_batch(otel_t *x)
{
    atomic_fetch_add(&x->st->dropped_error, x->batch_spans);
    atomic_fetch_add(&x->st->batches_failed, 1);
    end_batch(x);
}

/* Takes whole records, at most batch_max_spans spans (at least one
 * record), into the POST body, and sends it. */
static void start_batch(otel_t *x)
{
    const cfg_otlp_t *o = otlp_of(x->cfg);
    buf_t b;
    uint32_t n = 0;
    if (x->easy != NULL || x->retry_wait || x->head == NULL)
        return;
    if (o == NULL) { /* export was turned off by a reload: what waits is dropped */
        while (x->head != NULL) {
            rec_t *r = x->head;
            x->head = r->next;
            atomic_fetch_add(&x->st->dropped_error, r->n_spans);
            atomic_fetch_sub(&x->st->queued, (long long)r->n_spans);
            free(r);
        }
        x->tail = NULL;
        x->q_spans = 0;
        return;
    }
    buf_init(&b, (size_t)1 << 30); /* bounded by the queue's records */
    otel_envelope_head(o, &b);
    while (x->head != NULL && (n == 0 || n + x->head->n_spans <= o->batch_max_spans)) {
        rec_t *r = x->head;
        if (n > 0)
            buf_puts(&b, ",");
        buf_append(&b, r->json, r->len);
        n += r->n_spans;
        x->head = r->next;
        if (x->head == NULL)
            x->tail = NULL;
        x->q_spans -= r->n_spans;
        atomic_fetch_sub(&x->st->queued, (long long)r->n_spans);
        free(r);
    }
    otel_envelope_tail(&b);
    x->body = buf_detach(&b, &x->body_len);
    x->batch_spans = n;
    x->tries = 0;
    x->batch_cfg = config_ref(x->cfg);
    if (post(x) < 0) {
        atomic_fetch_add(&x->st->errors[ERR_OTHER], 1);
        fail_batch(x);
        after_batch(x);
    }
}

static void on_retry(loop_t *loop, loop_timer_t *t)
{
    otel_t *x = t->arg;
    (void)loop;
    x->retry_wait = false;
    atomic_fetch_add(&x->st->retries, 1);
    if (post(x) < 0) {
        atomic_fetch_add(&x->st->errors[ERR_OTHER], 1);
        fail_batch(x);
        after_batch(x);
    }
}

static void on_flush(loop_t *loop, loop_timer_t *t)
{
    otel_t *x = t->arg;
    (void)loop;
    if (x->easy != NULL || x->retry_wait) {
        x->flush_due = true;
        return;
    }
    start_batch(x);
}

static void batch_done(otel_t *x, CURLcode res)
{
    enum otel_err why;
    curl_multi_remove_handle(x->multi, x->easy);
    curl_easy_cleanup(x->easy);
    x->easy = NULL;
    if (res == CURLE_OK && x->status >= 200 && x->status < 300) {
        atomic_fetch_add(&x->st->exported, x->batch_spans);
        atomic_fetch_add(&x->st->batches_ok, 1);
        end_batch(x);
        after_batch(x);
        return;
    }
    if (res == CURLE_OK)
        why = x->status == 429 ? ERR_HTTP_429 : x->status >= 500 ? ERR_HTTP_5XX : ERR_HTTP_4XX;
    else if (res == CURLE_OPERATION_TIMEDOUT)
        why = ERR_TIMEOUT;
    else if (res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST ||
             res == CURLE_COULDNT_RESOLVE_PROXY)
        why = ERR_CONNECT;
    else
        why = ERR_OTHER;
    atomic_fetch_add(&x->st->errors[why], 1);
    if ((why == ERR_HTTP_429 || why == ERR_HTTP_5XX) && x->tries < 2) {
        uint64_t ms = OTEL_RETRY_MS / 2 + otel_rand(&x->rng) % OTEL_RETRY_MS;
        x->retry_wait = true;
        loop_timer_start(x->loop, &x->retry_timer, ms);
        return;
    }
    log_debug("otlp: export of %u spans failed (%s, HTTP %u): dropped", x->batch_spans,
              err_name[why], x->status);
    fail_batch(x);
    after_batch(x);
}

static void check_done(otel_t *x)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(x->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == x->easy) {
            batch_done(x, msg->data.result);
            break; /* batch_done may have started another transfer */
        }
    }
}

/* ---- the exporter ---- */

otel_t *otel_new(loop_t *loop, otel_stats_t *st)
{
    otel_t *x = xcalloc(1, sizeof *x);
    x->loop = loop;
    x->st = st;
    util_random(&x->rng, sizeof x->rng);
    x->rng |= 1;
    x->flush_timer.cb = on_flush;
    x->flush_timer.arg = x;
    x->retry_timer.cb = on_retry;
    x->retry_timer.arg = x;
    return x;
}

/* The multi is made when the first span is queued: a daemon without
 * export has none. */
static bool ensure_multi(otel_t *x)
{
    if (x->multi != NULL)
        return true;
    if (curlloop_init(&x->cl, x->loop, 4L, on_multi_done, x, "otlp") < 0)
        return false;
    x->multi = x->cl.multi;
    return true;
}

void otel_free(otel_t *x)
{
    if (x == NULL)
        return;
    end_batch(x);
    while (x->head != NULL) {
        rec_t *r = x->head;
        x->head = r->next;
        atomic_fetch_sub(&x->st->queued, (long long)r->n_spans);
        free(r);
    }
    loop_timer_stop(x->loop, &x->flush_timer);
    curlloop_fini(&x->cl);
    config_unref(x->cfg);
    free(x->prov_names);
    free(x);
}

/* Unix time minus the monotonic clock, in ns: converts util_now_us times. */
static int64_t wall_offset_ns(void)
{
    struct timespec rt, mt;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mt);
    return ((int64_t)rt.tv_sec - (int64_t)mt.tv_sec) * 1000000000LL +
           ((int64_t)rt.tv_nsec - (int64_t)mt.tv_nsec);
}

/* The trace the request belongs to: the caller's traceparent (whose
 * sampled flag decides), else a new one (sample_rate decides). */
static bool pick_ids(otel_t *x, const req_t *req, const cfg_otlp_t *o, otel_ids_t *ids)
{
    const char *tp = req->header != NULL ? req->header(req->header_arg, "traceparent") : NULL;
    uint8_t flags = 0;
    uint64_t r;
    memset(ids, 0, sizeof *ids);
    if (tp != NULL && otel_traceparent_parse(tp, ids->trace, ids->parent, &flags) == 0) {
        if (!(flags & 1))
            return false;
        ids->has_parent = true;
    } else {
        if (o->sample_rate < 1 &&
            (double)(otel_rand(&x->rng) >> 11) * 0x1.0p-53 >= o->sample_rate)
            return false;
        r = otel_rand(&x->rng);
        memcpy(ids->trace, &r, 8);
        r = otel_rand(&x->rng);
        memcpy(ids->trace + 8, &r, 8);
    }
    r = otel_rand(&x->rng);
    memcpy(ids->span, &r, 8);
    return true;
}

void otel_request(otel_t *x, const req_t *req)
{
    const cfg_otlp_t *o = otlp_of(req->cfg);
    otel_ids_t ids;
    buf_t b;
    int n;
    rec_t *r;
    size_t len;
    if (x == NULL || o == NULL)
        return;
    if (!pick_ids(x, req, o, &ids)) {
        atomic_fetch_add(&x->st->unsampled, 1);
        return;
    }
    if (x->cfg != req->cfg) {
        config_unref(x->cfg);
        x->cfg = config_ref(req->cfg);
        free(x->prov_names);
        x->prov_names = xcalloc(x->cfg->n_models + 1, sizeof *x->prov_names);
        for (size_t m = 0; m < x->cfg->n_models; m++)
            x->prov_names[m] = otel_provider_name(x->cfg, (int)m);
    }
    /* full: dropped before any work */
    if (x->q_spans + 1 + req->n_attempts > o->queue_max_spans || !ensure_multi(x)) {
        atomic_fetch_add(&x->st->dropped_queue, 1 + req->n_attempts);
        return;
    }
    buf_init(&b, OTEL_RECORD_MAX);
    buf_reserve(&b, 2048 + 512 * req->n_attempts);
    n = otel_spans_format(req, o, &ids, util_now_us(), wall_offset_ns(), &x->rng,
                          (const char *const *)x->prov_names, &b);
    if (n <= 0) {
        buf_free(&b);
        atomic_fetch_add(&x->st->dropped_queue, 1 + req->n_attempts);
        return;
    }
    len = buf_len(&b);
    r = xmalloc(sizeof *r + len);
    memcpy(r->json, buf_ptr(&b), len);
    buf_free(&b);
    r->len = len;
    r->n_spans = (uint32_t)n;
    r->next = NULL;
    if (x->tail != NULL)
        x->tail->next = r;
    else
        x->head = r;
    x->tail = r;
    x->q_spans += (size_t)n;
    atomic_fetch_add(&x->st->queued, n);
    if (x->q_spans >= o->batch_max_spans && x->easy == NULL && !x->retry_wait) {
        loop_timer_stop(x->loop, &x->flush_timer);
        start_batch(x);
    } else {
        arm_flush(x);
    }
}

bool otel_drain(otel_t *x)
{
    if (x == NULL)
        return false;
    if (x->easy == NULL && !x->retry_wait && x->head != NULL) {
        loop_timer_stop(x->loop, &x->flush_timer);
        start_batch(x);
    }
    return x->easy != NULL || x->retry_wait || x->head != NULL;
}

/* ---- notes taken on the way ---- */

static void copy_cut(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

void otel_note_request(req_t *req, const cJSON *root)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (cJSON_IsString(v))
        copy_cut(req->otel_model, sizeof req->otel_model, v->valuestring, strlen(v->valuestring));
    v = cJSON_GetObjectItemCaseSensitive(root, "temperature");
    req->otel_temperature = cJSON_IsNumber(v) && v->valuedouble >= 0 ? v->valuedouble : -1;
}

void otel_note_stream(req_t *req, const cJSON *first_event)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(first_event, "model");
    if (cJSON_IsString(v))
        copy_cut(req->otel_resp_model, sizeof req->otel_resp_model, v->valuestring,
                 strlen(v->valuestring));
}

/* Just past the JSON value that starts at s[i] (the text is known valid:
 * provider_check_answer validated it). */
static size_t value_end(const char *s, size_t n, size_t i)
{
    int depth = 0;
    bool in_str = false;
    for (; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"') {
                in_str = false;
                if (depth == 0)
                    return i + 1;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth <= 0)
                return depth == 0 ? i + 1 : i;
        } else if (depth == 0 && c == ',') {
            return i;
        }
    }
    return n;
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

void otel_note_answer(req_t *req, const char *body, size_t len)
{
    json_span_t sp[2];
    size_t o = 0, i, end;
    if (json_find_top_key(body, len, "model", sp, 2) == 1 && sp[0].len >= 2 &&
        body[sp[0].off] == '"')
        copy_cut(req->otel_resp_model, sizeof req->otel_resp_model, body + sp[0].off + 1,
                 sp[0].len - 2); /* raw: a model name has no escapes worth decoding */
    if (json_find_top_key(body, len, "choices", sp, 2) != 1 || body[sp[0].off] != '[')
        return;
    /* each element's finish_reason, without building a tree of the answer */
    end = sp[0].off + sp[0].len;
    i = skip_ws(body, end, sp[0].off + 1);
    while (i < end && body[i] != ']') {
        size_t e = value_end(body, end, i);
        json_span_t f[2];
        if (body[i] == '{' && json_find_top_key(body + i, e - i, "finish_reason", f, 2) == 1 &&
            body[i + f[0].off] == '"' && f[0].len >= 2) {
            const char *v = body + i + f[0].off + 1;
            size_t n = f[0].len - 2;
            if (memchr(v, '\\', n) == NULL && memchr(v, ',', n) == NULL &&
                o + n + 2 <= sizeof req->otel_finish) {
                if (o > 0)
                    req->otel_finish[o++] = ',';
                memcpy(req->otel_finish + o, v, n);
                o += n;
                req->otel_finish[o] = '\0';
            }
        }
        i = skip_ws(body, end, e);
        if (i < end && body[i] == ',')
            i = skip_ws(body, end, i + 1);
        else
            break;
    }
}
