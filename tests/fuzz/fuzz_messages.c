/* fuzz_messages: the Anthropic Messages front door's translations
 * (http/door_messages*.c): a Messages request (and a count_tokens body) into
 * a Chat Completions request, a chat answer and an OpenAI error into
 * Anthropic's shapes, and an internal chat stream (cut into events by the
 * daemon's scanner) into Anthropic's events, fed through a small buffer so
 * that DM_AGAIN's "nothing written, state unchanged" is exercised.
 * The first byte picks the function (bits 0-2).
 * Properties: outputs are valid JSON objects (events: each data line one),
 * refusals come with a 4xx status and a message, DM_AGAIN writes nothing. */
#include "fuzz.h"

#include "core/json.h"
#include "http/door_messages.h"

static void json_object_or_die(const char *p, size_t n, const char *what)
{
    int obj = 0;
    FUZZ_CHECK(json_check(p, n, 0, &obj, NULL) == 1 && obj, "%s is not a JSON object: %.*s", what,
               (int)n, p);
}

static void on_anthropic_event(const char *ev, size_t evlen, const char *pay, size_t plen,
                               bool is_done, void *arg)
{
    (void)ev;
    (void)evlen;
    (void)arg;
    FUZZ_CHECK(!is_done, "[DONE] in an Anthropic stream");
    json_object_or_die(pay, plen, "an event's data");
}

typedef struct sctx {
    dm_stream_t *s, *ref; /* ref: fed into a large buffer only */
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
    int rc = dm_stream_feed(c->s, pay, plen, &small);
    if (rc == DM_AGAIN) {
        FUZZ_CHECK(buf_len(&small) == 0, "DM_AGAIN wrote output");
        rc = dm_stream_feed(c->s, pay, plen, &c->out);
    } else if (rc == 0) {
        buf_append(&c->out, buf_ptr(&small), buf_len(&small));
    }
    FUZZ_CHECK(rc == 0, "dm_stream_feed returned %d into a 4 MiB buffer", rc);
    buf_free(&small);
    FUZZ_CHECK(dm_stream_feed(c->ref, pay, plen, &c->ref_out) == 0, "reference feed failed");
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
    switch (ctl & 7) {
    case 0:
    case 1: {
        dm_info_t info;
        int rc = dm_request_to_chat(s, n, (ctl & 1) ? DM_COUNT_TOKENS : 0, &out, &info, &err);
        if (rc == 0) {
            json_object_or_die(buf_ptr(&out), buf_len(&out), "the chat request");
            (void)dm_can_pass_through(&info);
            req_error_t e2;
            memset(&e2, 0, sizeof e2);
            if (dm_check_translatable(&info, &e2) != 0)
                FUZZ_CHECK(e2.status >= 400 && e2.message[0], "untranslatable without a message");
        } else {
            FUZZ_CHECK(err.status >= 400 && err.status < 500 && err.message[0],
                       "refusal %u without a message", err.status);
        }
        break;
    }
    case 2:
        if (dm_count_tokens(s, n, &out, &err) == 0)
            json_object_or_die(buf_ptr(&out), buf_len(&out), "count_tokens answer");
        else
            FUZZ_CHECK(err.status >= 400 && err.message[0], "refusal without a message");
        break;
    case 3:
        if (dm_answer_from_chat(s, n, "msg_1", "claude-x", &out) == 0)
            json_object_or_die(buf_ptr(&out), buf_len(&out), "the Messages answer");
        break;
    case 4: {
        static const unsigned st[4] = {400, 429, 500, 529};
        if (dm_error_from_openai(st[(ctl >> 3) & 3], s, n, "req-1", &out) == 0)
            json_object_or_die(buf_ptr(&out), buf_len(&out), "the error body");
        break;
    }
    default: {
        sctx_t c = {.s = dm_stream_new("msg_1", "claude-x", (uint32_t)(ctl >> 3) * 100),
                    .ref = dm_stream_new("msg_1", "claude-x", (uint32_t)(ctl >> 3) * 100)};
        FUZZ_CHECK(c.s != NULL && c.ref != NULL, "no stream");
        buf_init(&c.out, 1 << 22);
        buf_init(&c.ref_out, 1 << 22);
        fuzz_sse_events(s, n, on_chat_event, &c);
        bool complete = false, ref_complete = false;
        FUZZ_CHECK(dm_stream_finish(c.s, &c.out, &complete) == 0, "finish failed");
        FUZZ_CHECK(dm_stream_finish(c.ref, &c.ref_out, &ref_complete) == 0, "finish failed");
        FUZZ_CHECK(complete == ref_complete && buf_len(&c.out) == buf_len(&c.ref_out) &&
                       memcmp(buf_ptr(&c.out), buf_ptr(&c.ref_out), buf_len(&c.out)) == 0,
                   "a DM_AGAIN changed the stream: %.*s\n---\n%.*s", (int)buf_len(&c.out),
                   buf_ptr(&c.out), (int)buf_len(&c.ref_out), buf_ptr(&c.ref_out));
        buf_free(&c.ref_out);
        dm_stream_free(c.ref);
        (void)dm_stream_output_tokens(c.s);
        fuzz_sse_events(buf_ptr(&c.out), buf_len(&c.out), on_anthropic_event, NULL);
        buf_free(&c.out);
        dm_stream_free(c.s);
        break;
    }
    }
    buf_free(&out);
    free(s);
    return 0;
}
