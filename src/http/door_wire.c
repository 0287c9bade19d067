/* door_wire: the front doors in the daemon (include/http/door_wire.h).
 * The translators (door_messages*.c, door_responses*.c) are pure; this file
 * holds what ties them to a request: which body goes where, and the stream
 * translation at the client's end of req->out. */
#include "http/door_wire.h"
#include "http/door_items.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/shard.h"
#include "core/util.h"
#include "http/apierror.h"
#include "http/door.h"
#include "http/door_messages.h"
#include "http/door_responses.h"
#include "upstream/provider.h"
#include "upstream/sse.h"

#include <cjson/cJSON.h>

/* One internal event, and what one event becomes, may be this large beyond
 * the answer cap (response.completed repeats the whole output). */
#define DOOR_SLACK (256 * 1024)

bool doorwire_path(req_t *req, const char *p)
{
    char full[72];
    bool ct = false;
    enum door d;
    snprintf(full, sizeof full, "/v1%s", p);
    d = door_for_path(full, &ct);
    if (d == DOOR_CHAT)
        return false;
    req->door = (int)d;
    req->door_count_tokens = ct;
    return true;
}

/* A Responses body that the translation refuses (built-in tools, item
 * types or file ids only the Responses API knows) may still be served by a
 * native provider: the translation of a copy without what it refuses is
 * what the rules see, and req->door_refusal is the answer for any model
 * that is not native. Returns 0 with chat filled, or -1. */
static int responses_routable(req_t *req, buf_t *chat, dr_info_t *info, const req_error_t *why)
{
    req_error_t e2;
    cJSON *root, *tools, *input;
    char *text;
    int rc = -1;
    if (dr_pass_through_check(buf_ptr(&req->body), buf_len(&req->body), &e2) < 0)
        return -1;
    root = cJSON_ParseWithLength(buf_ptr(&req->body), buf_len(&req->body));
    if (root == NULL)
        return -1;
    tools = cJSON_GetObjectItemCaseSensitive(root, "tools");
    for (cJSON *t = cJSON_IsArray(tools) ? tools->child : NULL, *next; t != NULL; t = next) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type");
        next = t->next;
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "function") != 0)
            cJSON_Delete(cJSON_DetachItemViaPointer(tools, t));
    }
    if (cJSON_IsArray(tools) && cJSON_GetArraySize(tools) == 0) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, "tools");
        cJSON_DeleteItemFromObjectCaseSensitive(root, "tool_choice");
    }
    input = cJSON_GetObjectItemCaseSensitive(root, "input");
    for (cJSON *it = cJSON_IsArray(input) ? input->child : NULL, *next; it != NULL; it = next) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
        next = it->next;
        if (cJSON_IsString(type) && strcmp(type->valuestring, "message") != 0 &&
            strcmp(type->valuestring, "function_call") != 0 &&
            strcmp(type->valuestring, "function_call_output") != 0)
            cJSON_Delete(cJSON_DetachItemViaPointer(input, it));
    }
    text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (text == NULL)
        return -1;
    buf_reset(chat);
    if (dr_request_to_chat(text, strlen(text), chat, info, &e2) == 0) {
        req->door_refusal = *why;
        req->door_refused = true;
        rc = 0;
    }
    free(text);
    return rc;
}

int doorwire_request(req_t *req, req_error_t *err)
{
    buf_t chat;
    int rc;
    if (req->door == DOOR_CHAT || req->door_translated)
        return 0;
    /* a chat body is about the size of the door's: its cap is generous and
     * still bounded */
    buf_init(&chat, buf_len(&req->body) * 2 + 65536);
    if (req->door == DOOR_MESSAGES) {
        dm_info_t info;
        rc = dm_request_to_chat(buf_ptr(&req->body), buf_len(&req->body), 0, &chat, &info, err);
        if (rc == 0) {
            req->door_stream = info.stream;
            req->door_dropped = info.dropped;
            req->door_max_tokens = info.max_tokens;
            snprintf(req->door_unsupported, sizeof req->door_unsupported, "%s", info.unsupported);
        }
    } else {
        dr_info_t info;
        rc = dr_request_to_chat(buf_ptr(&req->body), buf_len(&req->body), &chat, &info, err);
        if (rc < 0 && err->status == 400 && responses_routable(req, &chat, &info, err) == 0)
            rc = 0;
        if (rc == 0)
            req->door_stream = info.stream;
    }
    if (rc < 0) {
        buf_free(&chat);
        return -1;
    }
    /* the client's bytes stay for pass-through; the rest of the daemon
     * reads the chat body */
    req->door_raw = req->body;
    req->body = chat;
    req->door_translated = true;
    return 0;
}

int doorwire_count_tokens(req_t *req, buf_t *out, req_error_t *err)
{
    return dm_count_tokens(buf_ptr(&req->body), buf_len(&req->body), out, err);
}

int doorwire_forward(req_t *req, int m)
{
    const config_t *cfg = req->cfg;
    const cfg_model_t *md = &cfg->models[m];
    const cfg_provider_t *p = &cfg->providers[md->provider];
    buf_t b;
    req->door_native = false;
    if (req->door == DOOR_MESSAGES && p->type != PROVIDER_ANTHROPIC) {
        dm_info_t info = {.dropped = req->door_dropped};
        snprintf(info.unsupported, sizeof info.unsupported, "%s", req->door_unsupported);
        memset(&req->ant_err, 0, sizeof req->ant_err);
        if (dm_check_translatable(&info, &req->ant_err) < 0)
            return -1;
        return 0;
    }
    if (req->door == DOOR_RESPONSES && !p->responses_api) {
        if (!req->door_refused)
            return 0;
        /* what only a native provider can take */
        req->ant_err = req->door_refusal;
        return -1;
    }
    if (!((req->door == DOOR_MESSAGES && p->type == PROVIDER_ANTHROPIC) ||
          (req->door == DOOR_RESPONSES && p->responses_api)))
        return 0;
    if (req->door == DOOR_RESPONSES) {
        memset(&req->ant_err, 0, sizeof req->ant_err);
        if (dr_pass_through_check(buf_ptr(&req->door_raw), buf_len(&req->door_raw),
                                  &req->ant_err) < 0)
            return -1;
    }
    buf_init(&b, buf_len(&req->door_raw) + strlen(md->upstream) * 6 + 64);
    if (door_replace_model(buf_ptr(&req->door_raw), buf_len(&req->door_raw), md->upstream,
                           req->door == DOOR_RESPONSES, &b) < 0) {
        buf_free(&b);
        door_fail(&req->ant_err, 400, "invalid_value", "model",
                  "The request body must have exactly one 'model' key.%s", NULL);
        return -1;
    }
    free(req->fwd_body);
    req->fwd_body = buf_detach(&b, &req->fwd_len);
    req->door_native = true;
    if (req->door == DOOR_MESSAGES) {
        /* the answer is Anthropic's: antwire translates it for the common
         * paths (checks, cost, cache) as for a translated request */
        memset(&req->ant_info, 0, sizeof req->ant_info);
        req->ant = true;
        req->ant_info.stream = req->door_stream;
        req->ant_info.include_usage = true;
        req->ant_info.max_tokens = req->door_max_tokens;
    }
    return 1;
}

/* ---- plain answers ---- */

static const char *model_name(const req_t *req)
{
    if (req->model >= 0)
        return req->cfg->models[req->model].upstream;
    return "";
}

/* The translators' id: the request id (so x-request-id finds it). */
static int translate_answer(req_t *req, const char *chat, size_t len, buf_t *out)
{
    size_t before = buf_len(out);
    int rc;
    if (req->door == DOOR_MESSAGES)
        return dm_answer_from_chat(chat, len, req->id, model_name(req), out);
    rc = dr_answer_from_chat(chat, len, req->id, model_name(req), (int64_t)time(NULL), out);
    if (rc == 0) /* its items may come back as item_reference */
        door_items_put_response(buf_ptr(out) + before, buf_len(out) - before);
    return rc;
}

/* The Response of a response.completed event among the SSE bytes
 * p[0..n) a stream translator just wrote, kept for item_reference. */
static void keep_completed_items(const char *p, size_t n)
{
    static const char ev[] = "event: response.completed\n";
    const char *e = memmem(p, n, ev, sizeof ev - 1), *d, *end;
    cJSON *root, *resp;
    if (e == NULL)
        return;
    d = memmem(e, n - (size_t)(e - p), "data: ", 6);
    if (d == NULL)
        return;
    d += 6;
    end = memchr(d, '\n', n - (size_t)(d - p));
    if (end == NULL)
        end = p + n;
    root = cJSON_ParseWithLength(d, (size_t)(end - d));
    resp = cJSON_GetObjectItemCaseSensitive(root, "response");
    door_items_put_output(cJSON_GetObjectItemCaseSensitive(resp, "output"));
    cJSON_Delete(root);
}

static void *stream_new(req_t *req)
{
    if (req->door == DOOR_MESSAGES) {
        if (req->dm == NULL)
            req->dm = dm_stream_new(req->id, model_name(req), req->est_prompt_tokens);
        return req->dm;
    }
    if (req->dr == NULL)
        req->dr = dr_stream_new(req->id, model_name(req), (int64_t)time(NULL),
                                req->cfg->max_response_bytes);
    return req->dr;
}

static int stream_feed(req_t *req, const char *data, size_t len, buf_t *out)
{
    size_t before = buf_len(out);
    int rc;
    if (req->door == DOOR_MESSAGES)
        return dm_stream_feed(req->dm, data, len, out);
    rc = dr_stream_feed(req->dr, data, len, out);
    if (rc == 0 && buf_len(out) > before)
        keep_completed_items(buf_ptr(out) + before, buf_len(out) - before);
    return rc;
}

static int stream_finish(req_t *req, buf_t *out)
{
    bool complete;
    return req->door == DOOR_MESSAGES ? dm_stream_finish(req->dm, out, &complete)
                                      : dr_stream_finish(req->dr, out, &complete);
}

/* Feeds one internal event (its bytes p[0..n)) to the translator. Returns
 * 0 or -2 (out lacks room: nothing written). */
static int feed_event(req_t *req, const char *p, size_t n, buf_t *out)
{
    char *data = sse_event_data(p, n);
    int rc = stream_feed(req, data, strlen(data), out);
    free(data);
    return rc;
}

/* A whole internal SSE body (a cached stream replayed) translated at once. */
static int translate_stream_body(req_t *req, const char *p, size_t n, buf_t *out)
{
    sse_scan_t s;
    size_t off = 0, start = 0;
    if (stream_new(req) == NULL)
        return -1;
    sse_init(&s);
    while (off < n) {
        sse_event_t ev;
        bool got;
        off += sse_feed(&s, p + off, n - off, &ev, &got);
        if (!got)
            continue;
        if (ev.has_data && feed_event(req, p + ev.start, (size_t)(ev.end - ev.start), out) < 0)
            return -1;
        start = off;
    }
    (void)start;
    return stream_finish(req, out) < 0 ? -1 : 0;
}

/* An error body in the door's shape: Anthropic's on the Messages door,
 * OpenAI's (as is) on the Responses door. */
static void error_body(req_t *req, unsigned status, char **body, size_t *len)
{
    buf_t b;
    if (req->door != DOOR_MESSAGES)
        return;
    buf_init(&b, *len + 4096);
    if (dm_error_from_openai(status, *body, *len, req->id, &b) < 0) {
        buf_free(&b);
        return;
    }
    free(*body);
    *body = buf_detach(&b, len);
}

void doorwire_reply(req_t *req, unsigned *status, char **body, size_t *len, const char **ctype)
{
    buf_t b;
    int rc;
    if (req->door == DOOR_CHAT || req->door_count_tokens)
        return;
    if (*status >= 300) { /* an explained request's errors too: the door's shape */
        error_body(req, *status, body, len);
        return;
    }
    if (req->explain_only)
        return;
    if (req->door == DOOR_RESPONSES && req->door_native && req->cache_x != CACHE_X_HIT)
        return; /* a native provider's Response, as it sent it */
    if (req->door_answer != NULL && req->casc == NULL && req->cache_x != CACHE_X_HIT) {
        /* passed through: the provider's own answer, nothing lost (thinking
         * signatures); the chat form served the checks, cost and cache */
        free(*body);
        *body = req->door_answer;
        *len = req->door_answer_len;
        req->door_answer = NULL;
        return;
    }
    buf_init(&b, req->cfg->max_response_bytes * 2 + DOOR_SLACK);
    if (*ctype != NULL && strncmp(*ctype, "text/event-stream", 17) == 0)
        rc = translate_stream_body(req, *body, *len, &b);
    else
        rc = translate_answer(req, *body, *len, &b);
    if (rc < 0) {
        char *e = apierror_body("The answer could not be translated into the door's format.",
                                "server_error", NULL, "door_translation_failed", NULL, len);
        buf_free(&b);
        free(*body);
        *body = e;
        *status = 502;
        *ctype = NULL;
        error_body(req, *status, body, len);
        return;
    }
    free(*body);
    *body = buf_detach(&b, len);
}

/* ---- streams ---- */

/* Takes bytes of the internal stream (req->out up to its held part, then
 * the tail once the upstream is done) until one event is complete in
 * door_in. Returns 1 with an event, 0 when no more bytes are ready. */
static int take_event(req_t *req)
{
    for (;;) {
        const char *src;
        size_t avail, k;
        sse_event_t ev;
        bool got = false, from_out;
        avail = buf_len(&req->out) - req->hold;
        from_out = avail > 0;
        if (from_out) {
            src = buf_ptr(&req->out);
        } else if (req->up_done && req->tail_off < req->tail_len) {
            src = req->tail + req->tail_off;
            avail = req->tail_len - req->tail_off;
        } else {
            return 0;
        }
        k = sse_feed(&req->door_sse, src, avail, &ev, &got);
        if (buf_append(&req->door_in, src, k) < 0)
            got = true; /* an event past the cap: fed as it is, cut */
        if (from_out) {
            buf_consume(&req->out, k);
            req->out_off += k;
            if (req->up_paused && buf_len(&req->out) <= req->out.cap / 2)
                shard_queue_unpause(req->shard, req);
        } else {
            req->tail_off += k;
        }
        if (got)
            return 1;
    }
}

/* Half of what a native stream's raw queue may hold before antwire.c
 * pauses the transfer. */
#define NATIVE_RAWQ_LOW (32 * 1024)

/* An Anthropic model's stream behind the Messages door: the client takes
 * the provider's own events (door_rawq, filled by upstream/antwire.c) —
 * redacted_thinking, server tools, citations and signatures as they came.
 * The chat chunks of req->out served the commit, usage and cache and are
 * dropped here. The transfer pauses when either queue is full and resumes
 * only when both have room, so a slow client holds it back. A stream that
 * broke off without the provider's own error event ends with ours. */
static ssize_t native_messages_read(req_t *req, char *out, size_t max)
{
    size_t avail = buf_len(&req->out) - req->hold, n;
    if (avail > 0) {
        buf_consume(&req->out, avail);
        req->out_off += avail;
    }
    if (buf_len(&req->door_rawq) == 0 && req->up_done && !req->door_fin) {
        req->door_fin = true;
        req->tail_off = req->tail_len; /* the chat stream's end: not the client's */
        if (req->stream_failed && !req->door_raw_error) {
            char msg[256];
            snprintf(msg, sizeof msg, "The upstream stream from %s ended abnormally.",
                     req->model >= 0 ? req->cfg->models[req->model].name : "the provider");
            buf_free(&req->door_rawq);
            buf_init(&req->door_rawq, sizeof msg * 6 + 256);
            if (dm_error_event(msg, &req->door_rawq) < 0) /* the cap is made for it */
                log_warn("request %s: the stream's error event did not fit", req->id);
        }
    }
    n = buf_len(&req->door_rawq);
    if (n > max)
        n = max;
    if (n > 0) {
        memcpy(out, buf_ptr(&req->door_rawq), n);
        buf_consume(&req->door_rawq, n);
    }
    /* the transfer pauses on either queue (upstream/antwire.c): resume it
     * once both have room again */
    if (req->up_paused && buf_len(&req->out) <= req->out.cap / 2 &&
        buf_len(&req->door_rawq) <= NATIVE_RAWQ_LOW)
        shard_queue_unpause(req->shard, req);
    if (n == 0)
        return req->door_fin ? -1 : 0;
    return (ssize_t)n;
}

ssize_t doorwire_stream_read(req_t *req, char *out, size_t max)
{
    if (req->door == DOOR_MESSAGES && req->door_native && req->cache_x != CACHE_X_HIT)
        return native_messages_read(req, out, max);
    if (req->door_out.cap == 0) {
        buf_init(&req->door_out, req->cfg->max_response_bytes * 2 + DOOR_SLACK);
        buf_init(&req->door_in, req->cfg->max_response_bytes + DOOR_SLACK);
        sse_init(&req->door_sse);
    }
    for (;;) {
        size_t n = buf_len(&req->door_out);
        if (n > 0) {
            if (n > max)
                n = max;
            memcpy(out, buf_ptr(&req->door_out), n);
            buf_consume(&req->door_out, n);
            return (ssize_t)n;
        }
        if (req->door_fin)
            return -1;
        if (stream_new(req) == NULL)
            return -1;
        if (take_event(req)) {
            /* door_out is empty here: an event that does not fit it alone
             * ends the stream as the door says */
            if (feed_event(req, buf_ptr(&req->door_in), buf_len(&req->door_in),
                           &req->door_out) < 0) {
                stream_finish(req, &req->door_out);
                req->door_fin = true;
            }
            buf_reset(&req->door_in);
            continue;
        }
        if (!req->up_done || req->tail_off < req->tail_len)
            return 0;
        /* a cut stream (no [DONE], no error event) ends with the door's
         * error; a complete one with its closing events */
        stream_finish(req, &req->door_out);
        req->door_fin = true;
    }
}

/* ---- native Responses pass-through ---- */

/* Tokens and cost from a Response's usage (input_tokens include the cached
 * ones, as prompt_tokens do). */
static void native_usage(req_t *req, const cJSON *usage, provider_result_t *pr)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(usage, "input_tokens");
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(usage, "output_tokens");
    const cJSON *det = cJSON_GetObjectItemCaseSensitive(usage, "input_tokens_details");
    const cJSON *cached = det ? cJSON_GetObjectItemCaseSensitive(det, "cached_tokens") : NULL;
    if (!cJSON_IsNumber(in) || !cJSON_IsNumber(out) || req->model < 0)
        return;
    pr->prompt_tokens = util_count_i64(in->valuedouble);
    pr->completion_tokens = util_count_i64(out->valuedouble);
    pr->cached_tokens = cJSON_IsNumber(cached) ? util_count_i64(cached->valuedouble) : 0;
    pr->cost_usd = provider_cost(&req->cfg->models[req->model], (double)pr->prompt_tokens,
                                 (double)pr->completion_tokens, (double)pr->cached_tokens);
}

int doorwire_native_answer(req_t *req, const char *p, size_t n, provider_result_t *pr)
{
    cJSON *root = cJSON_ParseWithLength(p, n);
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(root, "object");
    int rc = -1;
    pr->cost_usd = -1;
    pr->prompt_tokens = pr->completion_tokens = pr->cached_tokens = -1;
    if (cJSON_IsObject(root) && cJSON_IsString(obj) && strcmp(obj->valuestring, "response") == 0 &&
        cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "output"))) {
        native_usage(req, cJSON_GetObjectItemCaseSensitive(root, "usage"), pr);
        pr->complete = true;
        rc = 0;
    }
    cJSON_Delete(root);
    return rc;
}

void doorwire_native_event(req_t *req, const char *p, size_t n)
{
    char *data;
    cJSON *root, *type, *resp;
    /* only the terminal events matter; the deltas are passed untouched */
    if (memmem(p, n, "\"response.completed\"", 20) == NULL &&
        memmem(p, n, "\"response.incomplete\"", 21) == NULL &&
        memmem(p, n, "\"response.failed\"", 17) == NULL)
        return;
    data = sse_event_data(p, n);
    root = cJSON_Parse(data);
    free(data);
    type = cJSON_GetObjectItemCaseSensitive(root, "type");
    resp = cJSON_GetObjectItemCaseSensitive(root, "response");
    if (cJSON_IsString(type) && strncmp(type->valuestring, "response.", 9) == 0 &&
        (strcmp(type->valuestring + 9, "completed") == 0 ||
         strcmp(type->valuestring + 9, "incomplete") == 0)) {
        provider_result_t pr = {.cost_usd = -1};
        req->door_native_done = true;
        native_usage(req, cJSON_GetObjectItemCaseSensitive(resp, "usage"), &pr);
        if (pr.cost_usd >= 0) {
            req->prompt_tokens = pr.prompt_tokens;
            req->completion_tokens = pr.completion_tokens;
            req->cached_tokens = pr.cached_tokens;
            req->cost_usd = pr.cost_usd;
            req->cost_estimated = false;
        }
    }
    cJSON_Delete(root);
}

char *doorwire_native_stream_error(req_t *req, const char *why, size_t *len)
{
    buf_t b;
    door_w_t w = {&b, 0};
    char msg[256];
    snprintf(msg, sizeof msg, "The upstream stream from %s ended abnormally: %s",
             req->model >= 0 ? req->cfg->models[req->model].name : "the provider", why);
    buf_init(&b, sizeof msg * 6 + 256);
    door_w_raw(&w, "event: error\ndata: {\"type\":\"error\",\"code\":\"upstream_stream_interrupted\","
                   "\"message\":");
    door_w_str(&w, msg);
    door_w_raw(&w, ",\"param\":null}\n\n");
    buf_cstr(&b);
    return buf_detach(&b, len);
}

bool doorwire_translates_stream(const req_t *req)
{
    return req->door != DOOR_CHAT && !(req->door == DOOR_RESPONSES && req->door_native);
}

void doorwire_free(req_t *req)
{
    buf_free(&req->door_raw);
    buf_free(&req->door_in);
    buf_free(&req->door_out);
    buf_free(&req->door_rawq);
    free(req->door_answer);
    dm_stream_free(req->dm);
    dr_stream_free(req->dr);
}
