/* fuzz_responses: the Responses API front door's translations
 * (http/door_responses*.c, http/door_items.c): a Responses request into a
 * Chat Completions request, the pass-through check for native providers, a
 * chat answer into a Response object, and an internal chat stream (cut into
 * events by the daemon's scanner) into Responses events, through a small
 * buffer so that DR_AGAIN's "nothing written, state unchanged" is exercised.
 * The first byte picks the function (bits 0-1) and the stream's hold limit.
 * Properties: outputs are valid JSON objects (events: each data line one),
 * refusals come with a 4xx status and a message, DR_AGAIN writes nothing. */
#include "fuzz.h"

#include "core/json.h"
#include "http/door_responses.h"

static void json_object_or_die(const char *p, size_t n, const char *what)
{
    int obj = 0;
    FUZZ_CHECK(json_check(p, n, 0, &obj, NULL) == 1 && obj, "%s is not a JSON object: %.*s", what,
               (int)n, p);
}

static void on_event_out(const char *ev, size_t evlen, const char *pay, size_t plen, bool is_done,
                         void *arg)
{
    (void)ev;
    (void)evlen;
    (void)arg;
    FUZZ_CHECK(!is_done, "[DONE] in a Responses stream");
    json_object_or_die(pay, plen, "an event's data");
}

typedef struct sctx {
    dr_stream_t *s, *ref; /* ref: fed into a large buffer only */
    buf_t out, ref_out;
} sctx_t;

static void on_chat_event(const char *ev, size_t evlen, const char *pay, size_t plen, bool is_done,
                          void *arg)
{
    sctx_t *c = arg;
    (void)ev;
    (void)evlen;
    (void)is_done;
    buf_t small;
    buf_init(&small, 96);
    int rc = dr_stream_feed(c->s, pay, plen, &small);
    if (rc == DR_AGAIN) {
        FUZZ_CHECK(buf_len(&small) == 0, "DR_AGAIN wrote output");
        rc = dr_stream_feed(c->s, pay, plen, &c->out);
    } else if (rc == 0) {
        buf_append(&c->out, buf_ptr(&small), buf_len(&small));
    }
    FUZZ_CHECK(rc == 0, "dr_stream_feed returned %d into a 4 MiB buffer", rc);
    buf_free(&small);
    FUZZ_CHECK(dr_stream_feed(c->ref, pay, plen, &c->ref_out) == 0, "reference feed failed");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned ctl = data[0];
    char *s = fuzz_dup(data + 1, size - 1);
    size_t n = size - 1;
    buf_t out;
    buf_init(&out, 1 << 22);
    req_error_t err;
    memset(&err, 0, sizeof err);
    switch (ctl & 3) {
    case 0: {
        dr_info_t info;
        if (dr_request_to_chat(s, n, &out, &info, &err) == 0)
            json_object_or_die(buf_ptr(&out), buf_len(&out), "the chat request");
        else
            FUZZ_CHECK(err.status >= 400 && err.status < 500 && err.message[0],
                       "refusal %u without a message", err.status);
        break;
    }
    case 1:
        if (dr_pass_through_check(s, n, &err) != 0)
            FUZZ_CHECK(err.status >= 400 && err.status < 500 && err.message[0],
                       "refusal %u without a message", err.status);
        break;
    case 2:
        if (dr_answer_from_chat(s, n, "resp_1", "gpt-x", 1700000000, &out) == 0)
            json_object_or_die(buf_ptr(&out), buf_len(&out), "the Response object");
        break;
    default: {
        size_t held = (size_t)256 << ((ctl >> 2) & 15);
        sctx_t c = {.s = dr_stream_new("resp_1", "gpt-x", 1700000000, held),
                    .ref = dr_stream_new("resp_1", "gpt-x", 1700000000, held)};
        FUZZ_CHECK(c.s != NULL && c.ref != NULL, "no stream");
        buf_init(&c.out, 1 << 22);
        buf_init(&c.ref_out, 1 << 22);
        fuzz_sse_events(s, n, on_chat_event, &c);
        bool complete = false, ref_complete = false;
        FUZZ_CHECK(dr_stream_finish(c.s, &c.out, &complete) == 0, "finish failed");
        FUZZ_CHECK(dr_stream_finish(c.ref, &c.ref_out, &ref_complete) == 0, "finish failed");
        FUZZ_CHECK(complete == ref_complete && buf_len(&c.out) == buf_len(&c.ref_out) &&
                       memcmp(buf_ptr(&c.out), buf_ptr(&c.ref_out), buf_len(&c.out)) == 0,
                   "a DR_AGAIN changed the stream: %.*s\n---\n%.*s", (int)buf_len(&c.out),
                   buf_ptr(&c.out), (int)buf_len(&c.ref_out), buf_ptr(&c.ref_out));
        buf_free(&c.ref_out);
        dr_stream_free(c.ref);
        fuzz_sse_events(buf_ptr(&c.out), buf_len(&c.out), on_event_out, NULL);
        buf_free(&c.out);
        dr_stream_free(c.s);
        break;
    }
    }
    buf_free(&out);
    free(s);
    return 0;
}
