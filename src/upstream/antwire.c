/* antwire: an Anthropic attempt between curl and the common answer and
 * stream paths (include/upstream/antwire.h). See docs/internals/upstream.md
 * ("Anthropic attempts") for the backpressure invariants. */
#include "upstream/antwire.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/loop.h"
#include "core/shard.h"
#include "http/door.h"
#include "http/reply.h"
#include "upstream/attempt.h"
#include "upstream/redact.h"

/* One raw upstream event may be this large (a tool call's arguments come
 * in many small deltas, so real events are small); past it the stream is
 * treated as broken. */
#define ANT_EV_CAP (256 * 1024)
/* Translated bytes waiting for the stream path: what one curl delivery
 * (<= 16 KiB) or one event at most becomes, plus what is held back before
 * the first content chunk (the role chunk). */
#define ANT_OUT_CAP (1024 * 1024)
/* A native stream's raw events waiting for the client: before the commit
 * they are held with their translation (up to this cap); once committed the
 * transfer pauses while ANT_RAWQ_HIGH of them wait (a single larger event
 * still goes in when none waits). The client's reader (http/door_wire.c)
 * unpauses it once it has taken them down to half of that. */
#define ANT_RAWQ_CAP (4 * 1024 * 1024)
#define ANT_RAWQ_HIGH (64 * 1024)

bool antwire_native_stream(const req_t *req)
{
    return req->ant && req->stream && req->door_native && req->door == DOOR_MESSAGES;
}

int antwire_begin(req_t *req)
{
    anthropic_stream_free(req->ant_stream);
    req->ant_stream = NULL;
    buf_free(&req->ant_ev);
    buf_free(&req->ant_out);
    buf_init(&req->ant_ev, ANT_EV_CAP);
    buf_init(&req->ant_out, ANT_OUT_CAP);
    sse_init(&req->ant_sse);
    req->ant_ev_base = 0;
    req->ant_pend_end = 0;
    req->ant_skip = 0;
    buf_free(&req->door_rawq);
    req->door_raw_error = false;
    if (!req->ant || !req->stream)
        return 0;
    if (antwire_native_stream(req))
        buf_init(&req->door_rawq, ANT_RAWQ_CAP);
    /* the usage chunk is always asked of the translator, as of every
     * streaming provider (inject_usage): the stream path strips it when the
     * client did not ask, and reads the cost from it */
    req->ant_info.include_usage = true;
    req->ant_stream = anthropic_stream_new(&req->ant_info, (int64_t)time(NULL));
    return req->ant_stream != NULL ? 0 : -1;
}

/* Fails the attempt from inside the write callback (curl aborts on 0). */
static size_t fail(req_t *req, const char *why)
{
    if (!req->attempt_failed) {
        req->attempt_failed = true;
        snprintf(req->fail_reason, sizeof req->fail_reason, "%s", why);
    }
    return 0;
}

/* Pushes ant_out into the stream path, in pieces that fit its buffer so a
 * large translated event cannot wedge it. Before the translator produced
 * content (or completed an empty answer) nothing is pushed: the commit must
 * not happen on the role chunk of message_start alone. Returns 0 (all
 * pushed, or held), CURL_WRITEFUNC_PAUSE, or 1 when the attempt failed. */
static size_t push(req_t *req)
{
    anthropic_error_info_t info;
    if (!req->committed && anthropic_stream_failed(req->ant_stream, &info)) {
        char why[112];
        snprintf(why, sizeof why, "error event before any content (%s)",
                 info.code ? info.code : "unknown");
        fail(req, why);
        return 1;
    }
    if (!req->committed && !anthropic_stream_started(req->ant_stream) &&
        !anthropic_stream_finish(req->ant_stream))
        return 0;
    while (buf_len(&req->ant_out) > 0) {
        size_t k = buf_len(&req->ant_out), room = buf_room(&req->out), r;
        if (k > room && room > 0)
            k = room;
        /* room 0: the stream path itself pauses (committed) or fails */
        r = upstream_stream_write(req, buf_ptr(&req->ant_out), k);
        if (r == CURL_WRITEFUNC_PAUSE)
            return CURL_WRITEFUNC_PAUSE;
        if (r != k || req->attempt_failed)
            return 1;
        buf_consume(&req->ant_out, k);
    }
    buf_reset(&req->ant_out);
    return 0;
}

/* A native stream: whether the pending event (len bytes) can join the
 * client's queue of raw events. 0 yes; CURL_WRITEFUNC_PAUSE when the
 * committed stream's client has not taken enough of them yet (nothing
 * changed: the event stays pending and comes again after the unpause);
 * 1 when the attempt failed (before the commit: that much preamble). */
static size_t raw_room(req_t *req, size_t len)
{
    size_t q = buf_len(&req->door_rawq);
    if (req->committed && q > 0 && q + len > ANT_RAWQ_HIGH) {
        req->up_paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (buf_room(&req->door_rawq) < len) {
        fail(req, "no content in the first 4 MiB of the Anthropic stream");
        return 1;
    }
    return 0;
}

/* A native stream: the event just translated (at the start of ant_ev, len
 * bytes) goes to the client as the provider sent it (http/door_wire.c takes
 * it from door_rawq); its translation went to the stream path. Room was
 * made by raw_room. Returns 0, or 1 when the attempt failed. */
static size_t keep_raw(req_t *req, size_t len)
{
    const char *p = buf_ptr(&req->ant_ev);
    if (buf_append(&req->door_rawq, p, len) < 0) {
        fail(req, "an Anthropic stream event could not be queued");
        return 1;
    }
    /* a provider may echo its key in an error event (upstream/redact.h) */
    redact_key_of(&req->cfg->providers[req->cfg->models[req->model].provider],
                  (char *)buf_ptr(&req->door_rawq) + buf_len(&req->door_rawq) - len, len);
    if (len >= 12 && memcmp(p, "event: error", 12) == 0)
        req->door_raw_error = true;
    if (req->committed)
        reply_stream_wake(req);
    return 0;
}

/* Translates the pending complete event (ant_ev up to ant_pend_end), making
 * room in ant_out by pushing when it is full; a native stream's raw event
 * joins the client's queue once its translation went in. Returns like
 * push(). */
static size_t translate_pending(req_t *req)
{
    for (;;) {
        size_t len = (size_t)(req->ant_pend_end - req->ant_ev_base), r;
        int rc;
        if (antwire_native_stream(req) && (r = raw_room(req, len)) != 0)
            return r;
        rc = anthropic_stream_event(req->ant_stream, buf_ptr(&req->ant_ev), len, &req->ant_out);
        if (rc == ANTHROPIC_OK) {
            if (antwire_native_stream(req) && keep_raw(req, len) != 0)
                return 1;
            buf_consume(&req->ant_ev, len);
            req->ant_ev_base = req->ant_pend_end;
            req->ant_pend_end = 0;
            return 0;
        }
        if (rc != ANTHROPIC_ETOOBIG || buf_len(&req->ant_out) == 0) {
            fail(req, rc == ANTHROPIC_EINVAL ? "invalid event in the Anthropic stream"
                                             : "an Anthropic stream event could not be translated");
            return 1;
        }
        /* the translator is unchanged: drain, then feed the event again */
        r = push(req);
        if (r != 0)
            return r;
        if (buf_len(&req->ant_out) > 0) {
            /* held before content and still no room: too much preamble */
            fail(req, "no content in the first 1 MiB of the Anthropic stream");
            return 1;
        }
    }
}

size_t antwire_write(req_t *req, const char *p, size_t n)
{
    size_t off, r;

    /* what an earlier, paused delivery left: its translated bytes, and an
     * event it delimited but could not translate yet */
    r = push(req);
    if (r == 0 && req->ant_pend_end > 0)
        r = translate_pending(req);
    if (r == 0)
        r = push(req);
    if (r != 0)
        return r == CURL_WRITEFUNC_PAUSE ? r : 0; /* ant_skip unchanged: nothing taken */
    /* curl re-delivers a paused delivery's bytes first: skip the ones the
     * translator has seen */
    off = req->ant_skip < n ? req->ant_skip : n;
    req->ant_skip -= off;
    while (off < n) {
        sse_event_t ev;
        bool got;
        size_t c = sse_feed(&req->ant_sse, p + off, n - off, &ev, &got);
        if (buf_append(&req->ant_ev, p + off, c) < 0)
            return fail(req, "an Anthropic stream event larger than 256 KiB");
        off += c;
        if (!got)
            continue;
        if (req->committed && ev.has_data) /* ping counts: the provider is alive */
            req->last_data_ms = loop_now_ms(shard_loop(req->shard));
        /* bytes before the event's start (stray blank lines) are not part of it */
        buf_consume(&req->ant_ev, (size_t)(ev.start - req->ant_ev_base));
        req->ant_ev_base = ev.start;
        req->ant_pend_end = ev.end;
        r = translate_pending(req);
        if (r == 0)
            r = push(req);
        if (r == CURL_WRITEFUNC_PAUSE) {
            req->ant_skip = off;
            return r;
        }
        if (r != 0)
            return 0;
    }
    return n;
}

int antwire_answer(req_t *req, anthropic_usage_t *usage, char *why, size_t whylen)
{
    buf_t t;
    int rc;
    buf_init(&t, req->cfg->max_response_bytes);
    rc = anthropic_answer_to_chat(buf_ptr(&req->out), buf_len(&req->out), &req->ant_info,
                                  (int64_t)time(NULL), &t, usage, why, whylen);
    if (rc != ANTHROPIC_OK) {
        if (rc != ANTHROPIC_EINVAL)
            snprintf(why, whylen, "the translated answer is larger than server.max_response_bytes");
        buf_free(&t);
        return -1;
    }
    buf_free(&req->out);
    req->out = t;
    return 0;
}

void antwire_error(req_t *req)
{
    buf_t t;
    buf_init(&t, 64 * 1024);
    if (anthropic_error_to_openai((int)req->up_status, buf_ptr(&req->out), buf_len(&req->out), &t,
                                  NULL) == ANTHROPIC_OK) {
        buf_free(&req->out);
        req->out = t;
    } else {
        buf_free(&t);
    }
}

double antwire_cost(const req_t *req, const anthropic_usage_t *u)
{
    const cfg_model_t *m = &req->cfg->models[req->model];
    anthropic_usage_t su;
    if (u == NULL) {
        if (req->ant_stream == NULL)
            return -1;
        anthropic_stream_usage(req->ant_stream, &su);
        u = &su;
    }
    if (u->input_tokens < 0)
        return -1;
    return anthropic_cost(u, m->input_per_mtok, m->output_per_mtok, m->cached_input_per_mtok,
                          m->cache_write_per_mtok);
}

const char *antwire_stream_end(req_t *req, bool *error_sent)
{
    *error_sent = anthropic_stream_failed(req->ant_stream, NULL);
    if (*error_sent)
        return "the provider sent an error event";
    if (sse_in_event(&req->ant_sse) || req->ant_pend_end > 0)
        return "the stream ended inside an event";
    if (!anthropic_stream_finish(req->ant_stream))
        return "the Anthropic stream ended before message_stop";
    return NULL;
}
