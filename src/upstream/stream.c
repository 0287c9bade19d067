/* stream: a streamed answer on its way to the client. The bytes of the
 * upstream transfer (OpenAI chunks — an Anthropic stream is translated into
 * them first, antwire.c) are scanned into events (sse.c); the stream is held
 * back until its first data event proves sound, then committed; the usage
 * chunk is rewritten or stripped; and the end is judged: [DONE] only when
 * every choice sent its finish_reason, else the error event. Backpressure:
 * req->out is capped, a full buffer pauses the transfer. The curl state
 * machine is upstream.c. Shard thread only. */
#include "upstream/attempt.h"
#include "account/otel.h"
#include "upstream/admit.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "cache/cache.h"
#include "core/json.h"
#include "core/log.h"
#include "core/shard.h"
#include "core/util.h"
#include "http/apierror.h"
#include "http/door.h"
#include "http/door_wire.h"
#include "http/reply.h"
#include "upstream/antwire.h"
#include "upstream/chain.h"
#include "upstream/provider.h"
#include "upstream/quirks.h"
#include "upstream/redact.h"

/* The first data event decides whether this attempt is sound. */
static bool first_event_ok(req_t *req, const sse_event_t *ev)
{
    size_t off = req->out.r + (size_t)(ev->start - req->out_base);
    char *data = sse_event_data(req->out.data + off, (size_t)(ev->end - ev->start));
    cJSON *root;
    bool ok = false;
    if (ev->is_done) {
        upstream_fail_attempt(req, "stream ended before any content%s", NULL);
    } else if ((root = quirks_error_json(
                    req->cfg->providers[req->cfg->models[req->model].provider].quirks,
                    cJSON_Parse(data))) == NULL ||
               !cJSON_IsObject(root)) {
        upstream_fail_attempt(req, "invalid JSON in the first stream event%s", NULL);
        cJSON_Delete(root);
    } else {
        cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
        if (err != NULL && !cJSON_IsNull(err)) {
            cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
            /* the message reaches the 502 and the log: masked whole, before
             * it is cut to 80 bytes */
            if (cJSON_IsString(msg))
                redact_keys(req->cfg, msg->valuestring, strlen(msg->valuestring));
            upstream_fail_attempt(req, "error event: %.80s",
                         cJSON_IsString(msg) ? msg->valuestring : "(no message)");
        } else {
            ok = true;
            if (req->cfg->obs.otlp != NULL)
                otel_note_stream(req, root); /* the answer's model, for its span */
        }
        cJSON_Delete(root);
    }
    free(data);
    return ok;
}

/* Removes the complete event [start, end) (raw stream offsets) from out. */
static void strip_event(req_t *req, uint64_t start, uint64_t end)
{
    size_t idx = req->out.r + (size_t)(start - req->shift - req->out_off);
    size_t len = (size_t)(end - start);
    memmove(req->out.data + idx, req->out.data + idx + len, req->out.w - idx - len);
    req->out.w -= len;
    req->shift += len;
}

/* Tokens and cost from a usage object; the baseline model's cost too. */
static void take_usage(req_t *req, const cJSON *usage)
{
    const cJSON *det = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details");
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
    const cJSON *cached = det ? cJSON_GetObjectItemCaseSensitive(det, "cached_tokens") : NULL;
    if (!cJSON_IsNumber(pt) || !cJSON_IsNumber(ct))
        return;
    req->prompt_tokens = util_count_i64(pt->valuedouble);
    req->completion_tokens = util_count_i64(ct->valuedouble);
    req->cached_tokens = cJSON_IsNumber(cached) ? util_count_i64(cached->valuedouble) : 0;
    req->cost_usd = provider_cost(&req->cfg->models[req->model], (double)req->prompt_tokens,
                                  (double)req->completion_tokens, (double)req->cached_tokens);
    if (req->ant) {
        /* the translated usage merges Anthropic's input classes; the
         * translator kept them apart (cache writes have their own price) */
        double c = antwire_cost(req, NULL);
        if (c >= 0)
            req->cost_usd = c;
    }
    req->cost_estimated = false;
}

/* A complete event of a committed stream, in usage mode: read the usage
 * chunk (and strip it, or rewrite it with usage.cost for a client that asked
 * for usage), and strip [DONE], which finish_stream sends after it. */
static void stream_event(req_t *req, const sse_event_t *ev)
{
    if (req->usage_mode) {
        /* the event is complete and held: no provider key leaves in it (a
         * provider failing mid-stream may repeat its key in the error) */
        size_t idx = req->out.r + (size_t)(ev->start - req->shift - req->out_off);
        redact_key_of(&req->cfg->providers[req->cfg->models[req->model].provider],
                      req->out.data + idx, (size_t)(ev->end - ev->start));
    }
    req->last_ev_end = ev->end;
    if (!ev->has_data)
        return;
    req->data_events++;
    if (req->door_native && req->door == DOOR_RESPONSES) {
        /* a native Responses stream passes as is: only its end and usage
         * are read (response.completed) */
        size_t idx = req->out.r + (size_t)(ev->start - req->shift - req->out_off);
        doorwire_native_event(req, req->out.data + idx, (size_t)(ev->end - ev->start));
        return;
    }
    if (!req->usage_mode)
        return;
    if (ev->is_done) {
        strip_event(req, ev->start, ev->end);
        return;
    }
    {
        size_t idx = req->out.r + (size_t)(ev->start - req->shift - req->out_off);
        size_t len = (size_t)(ev->end - ev->start);
        const char *p = req->out.data + idx;
        char *data;
        cJSON *root, *usage, *choices;
        if (memmem(p, len, "\"usage\"", 7) == NULL)
            return;
        data = sse_event_data(p, len);
        root = cJSON_Parse(data);
        free(data);
        usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
        choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
        if (cJSON_IsObject(usage)) {
            take_usage(req, usage);
            if (cJSON_IsArray(choices) && cJSON_GetArraySize(choices) == 0) {
                strip_event(req, ev->start, ev->end);
                if (!req->inject_usage && req->cost_usd >= 0) {
                    /* the client asked for usage: give it the cost too
                     * (none for an unpriced model: unknown, not zero) */
                    char *json;
                    if (!request_unpriced(req))
                        cJSON_AddNumberToObject(usage, "cost", req->cost_usd);
                    json = cJSON_PrintUnformatted(root);
                    if (json) {
                        size_t jl = strlen(json);
                        free(req->usage_event);
                        req->usage_event = xmalloc(jl + 9);
                        memcpy(req->usage_event, "data: ", 6);
                        memcpy(req->usage_event + 6, json, jl);
                        memcpy(req->usage_event + 6 + jl, "\n\n", 3);
                        free(json);
                    }
                }
            }
        }
        cJSON_Delete(root);
    }
}

/* After the commit no other attempt follows, and once curl has sent the
 * whole upload it reads req->fwd_body (its CURLOPT_POSTFIELDS) no more: a
 * long stream stops holding its prompt. Kept while any of it is unsent. */
static void release_upload(req_t *req)
{
    curl_off_t sent = -1;
    if (req->fwd_body == NULL || req->easy == NULL)
        return;
    if (curl_easy_getinfo(req->easy, CURLINFO_SIZE_UPLOAD_T, &sent) != CURLE_OK || sent < 0 ||
        (uint64_t)sent < req->fwd_len)
        return;
    free(req->fwd_body);
    req->fwd_body = NULL;
    req->fwd_len = 0;
}

size_t upstream_stream_write(req_t *req, const char *p, size_t n)
{
    size_t off = 0;
    if (buf_room(&req->out) < n) {
        if (!req->committed) {
            upstream_fail_attempt(req, "no event in the first 64 KiB of the stream%s", NULL);
            return 0;
        }
        req->up_paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    buf_append(&req->out, p, n);
    if (req->committed)
        cache_stream_bytes(req, p, n);
    while (off < n) {
        sse_event_t ev;
        bool got;
        off += sse_feed(&req->sse, p + off, n - off, &ev, &got);
        if (!got)
            continue;
        if (ev.is_done)
            req->saw_done = true;
        if (req->committed) {
            if (ev.has_data)
                req->last_data_ms = loop_now_ms(shard_loop(req->shard));
            cache_stream_event(req, ev.start, ev.end, ev.is_done || !ev.has_data);
            stream_event(req, &ev);
            continue;
        }
        if (!ev.has_data) {
            /* keep-alive comments while the provider queues us: drop */
            buf_consume(&req->out, (size_t)(ev.end - req->out_base));
            req->out_base = ev.end;
            continue;
        }
        if (!first_event_ok(req, &ev))
            return 0;
        buf_consume(&req->out, (size_t)(ev.start - req->out_base));
        req->out_base = ev.start;
        req->committed = true;
        req->t_first_byte_us = util_now_us();
        cache_stream_begin(req, ev.start, buf_ptr(&req->out), buf_len(&req->out));
        cache_stream_event(req, ev.start, ev.end, false);
        req->out_off = ev.start;
        req->shift = 0;
        stream_event(req, &ev);
        upstream_record(req, req->model, req->up_status, NULL);
        upstream_admit_done(req);
        /* no failover after the commit: the client's body is not needed any
         * more (curl sent the upload before the answer began) */
        if (!req->sampled)
            buf_free(&req->body);
        release_upload(req);
        req->last_data_ms = loop_now_ms(shard_loop(req->shard));
        loop_timer_start(shard_loop(req->shard), &req->timer,
                         req->cfg->providers[req->cfg->models[req->model].provider].idle_timeout_ms);
        reply_stream_begin(req);
    }
    if (req->committed) {
        /* hold back the bytes of an event that is not complete yet: it
         * might be the usage chunk, which is rewritten or removed */
        req->hold = req->usage_mode ? (size_t)(req->sse.pos - req->last_ev_end) : 0;
        reply_stream_wake(req);
    }
    return n;
}

static void set_tail(req_t *req, const char *s, size_t len)
{
    free(req->tail);
    req->tail = xstrndup(s, len);
    req->tail_len = len;
    req->tail_off = 0;
}

/* Ends a committed stream: [DONE] if the upstream ended cleanly without one
 * but every choice got its finish_reason; otherwise an error event. A clean
 * close proves nothing by itself — a provider that crashes, or a
 * connection-close-framed response cut short, also ends cleanly — so such a
 * stream is failed: the error event, no [DONE], not cached, counted as
 * failed. */
void upstream_finish_stream(upstream_t *up, req_t *req, const char *error, bool reusable)
{
    bool error_sent = false;
    upstream_end_transfer(up, req, reusable);
    if (req->ant) {
        /* the translated stream always looks complete to the checks below
         * once message_delta gave a finish_reason: only the translator knows
         * whether message_stop came */
        const char *why = antwire_stream_end(req, &error_sent);
        if (error == NULL)
            error = why;
    }
    if (req->door_native && req->door == DOOR_RESPONSES) {
        /* no [DONE] and no chat choices: the terminal event says it */
        if (error == NULL && !req->door_native_done)
            error = "the stream ended before response.completed";
        if (error != NULL) {
            /* the held bytes of an unfinished event never reach the client */
            if (req->hold > 0 && req->hold <= buf_len(&req->out))
                req->out.w -= req->hold;
            free(req->tail);
            req->tail = doorwire_native_stream_error(req, error, &req->tail_len);
            req->tail_off = 0;
            req->stream_failed = true;
            if (req->n_attempts > 0)
                snprintf(req->attempts[req->n_attempts - 1].error,
                         sizeof req->attempts[req->n_attempts - 1].error,
                         "stream broke off: %s", error);
            log_warn("request %s: %s", req->id, error);
        }
        req->hold = 0;
        req->up_done = true;
        req->t_end_us = util_now_us();
        upstream_account(req, 0);
        reply_stream_wake(req);
        return;
    }
    if (error == NULL && sse_in_event(&req->sse))
        error = "the stream ended inside an event";
    else if (error == NULL && !req->saw_done && !sse_choices_finished(&req->sse))
        error = "the stream ended without [DONE] before every choice had a finish_reason";
    if (error != NULL) {
        char msg[256];
        size_t len;
        char *body;
        buf_t b;
        /* the held bytes of an unfinished event never reach the client: the
         * error event must not be glued to half an event */
        if (req->hold > 0 && req->hold <= buf_len(&req->out))
            req->out.w -= req->hold;
        req->stream_failed = true;
        if (req->n_attempts > 0)
            snprintf(req->attempts[req->n_attempts - 1].error,
                     sizeof req->attempts[req->n_attempts - 1].error, "stream broke off: %s", error);
        snprintf(msg, sizeof msg, "The upstream stream from %s ended abnormally: %s",
                 req->cfg->models[req->model].name, error);
        body = apierror_body(msg, "server_error", NULL, "upstream_stream_interrupted", NULL, &len);
        buf_init(&b, len + 16);
        buf_puts(&b, "data: ");
        buf_append(&b, body, len);
        buf_puts(&b, "\n\n");
        /* an Anthropic error event was translated into the stream's
         * error event already: one is the end, not two */
        if (!error_sent)
            set_tail(req, buf_ptr(&b), buf_len(&b));
        buf_free(&b);
        free(body);
        log_warn("request %s: %s", req->id, msg);
    } else {
        if (req->usage_mode) {
            /* the upstream's [DONE] was stripped: the usage chunk (when the
             * client asked for it) and [DONE] end the stream here */
            size_t ul = req->usage_event ? strlen(req->usage_event) : 0;
            char *t = xmalloc(ul + 15);
            memcpy(t, req->usage_event ? req->usage_event : "", ul);
            memcpy(t + ul, "data: [DONE]\n\n", 15);
            set_tail(req, t, ul + 14);
            free(t);
        } else if (!req->saw_done) {
            set_tail(req, "data: [DONE]\n\n", 14);
        }
        cache_stream_end(req, shard_cache(req->shard));
    }
    req->hold = 0;
    req->up_done = true;
    req->t_end_us = util_now_us();
    upstream_account(req, 0);
    reply_stream_wake(req);
}

void upstream_stream_abort(upstream_t *up, req_t *req, const char *why)
{
    if (!req->committed || req->up_done)
        return;
    upstream_finish_stream(up, req, why, false);
}
