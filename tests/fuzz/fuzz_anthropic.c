/* fuzz_anthropic: the Anthropic upstream's translations
 * (upstream/providers/anthropic.c, anthropic_answer.c): a Chat Completions
 * request into a Messages request, a Messages answer into a chat
 * completion, an Anthropic error into OpenAI's shape, and a Messages stream
 * (cut into events by the daemon's scanner) into chat chunks.
 * The first byte picks the function (bits 0-1) and options (bits 2-7).
 * Properties: every translation produces valid JSON (the stream: data
 * events of JSON objects or [DONE]) or refuses with a reason; a refused
 * translation leaves its output untouched; ETOOBIG leaves the stream's
 * state as it was (feeding the same event again into a larger buffer
 * gives what a large buffer gives at once). */
#include "fuzz.h"

#include <cjson/cJSON.h>

#include "core/json.h"
#include "upstream/anthropic.h"

static void check_chunks(const char *p, size_t n);

static void req_from_chat(const char *s, size_t n, unsigned opt)
{
    cJSON *chat = cJSON_ParseWithLength(s, n);
    if (chat == NULL)
        return;
    anthropic_req_opts_t o = {.model = "claude-x", .default_max_tokens = (opt & 1) ? 0 : 1024};
    anthropic_req_info_t info;
    anthropic_err_t err;
    buf_t out;
    buf_init(&out, (opt & 2) ? 256 : (1 << 22));
    memset(&err, 0, sizeof err);
    int rc = anthropic_request_from_chat(chat, &o, &out, &info, &err);
    if (rc == ANTHROPIC_OK) {
        int obj = 0;
        FUZZ_CHECK(json_check(buf_ptr(&out), buf_len(&out), JSON_CHECK_TEXT, &obj, NULL) == 1 && obj,
                   "Messages request is not a JSON object: %.*s", (int)buf_len(&out), buf_ptr(&out));
    } else if (rc == ANTHROPIC_EINVAL) {
        FUZZ_CHECK(err.message[0] != '\0', "refusal without a message");
    }
    buf_free(&out);
    cJSON_Delete(chat);
}

static void answer_to_chat(const char *s, size_t n, unsigned opt)
{
    buf_t out;
    buf_init(&out, (opt & 2) ? 256 : (1 << 22));
    anthropic_usage_t u;
    char why[160] = "";
    int rc = anthropic_answer_to_chat(s, n, NULL, 1700000000, &out, &u, why, sizeof why);
    if (rc == ANTHROPIC_OK) {
        int obj = 0;
        FUZZ_CHECK(json_check(buf_ptr(&out), buf_len(&out), 0, &obj, NULL) == 1 && obj,
                   "chat answer is not a JSON object: %.*s", (int)buf_len(&out), buf_ptr(&out));
        FUZZ_CHECK(anthropic_prompt_tokens(&u) >= -1 && u.output_tokens >= -1 &&
                       u.cache_read_tokens >= -1 && u.cache_write_tokens >= -1,
                   "usage below -1 (unknown)");
    } else {
        FUZZ_CHECK(buf_len(&out) == 0, "a refused translation wrote output");
        if (rc == ANTHROPIC_EINVAL)
            FUZZ_CHECK(why[0] != '\0', "refusal without a reason");
    }
    buf_free(&out);
}

static void error_to_openai(const char *s, size_t n, unsigned opt)
{
    static const int statuses[8] = {400, 401, 404, 418, 429, 500, 529, 502};
    buf_t out;
    buf_init(&out, 1 << 16);
    anthropic_error_info_t info;
    int rc = anthropic_error_to_openai(statuses[opt & 7], s, n, &out, &info);
    if (rc == ANTHROPIC_OK) {
        int obj = 0;
        FUZZ_CHECK(json_check(buf_ptr(&out), buf_len(&out), JSON_CHECK_TEXT, &obj, NULL) == 1 && obj,
                   "error body is not a JSON object: %.*s", (int)buf_len(&out), buf_ptr(&out));
        FUZZ_CHECK(info.type != NULL, "no error type");
    }
    buf_free(&out);
}

typedef struct sctx {
    anthropic_stream_t *s;
    buf_t out;
    bool broken;
} sctx_t;

static void on_event(const char *ev, size_t evlen, const char *pay, size_t plen, bool is_done,
                     void *arg)
{
    sctx_t *c = arg;
    (void)pay;
    (void)plen;
    (void)is_done;
    if (c->broken)
        return;
    buf_t small;
    buf_init(&small, 64);
    int rc = anthropic_stream_event(c->s, ev, evlen, &small);
    if (rc == ANTHROPIC_ETOOBIG) {
        FUZZ_CHECK(buf_len(&small) == 0, "ETOOBIG wrote output");
        rc = anthropic_stream_event(c->s, ev, evlen, &c->out);
    } else if (rc == ANTHROPIC_OK) {
        buf_append(&c->out, buf_ptr(&small), buf_len(&small));
    }
    buf_free(&small);
    FUZZ_CHECK(rc != ANTHROPIC_ETOOBIG, "a 4 MiB buffer is too small for one event");
    if (rc != ANTHROPIC_OK)
        c->broken = true;
}

static void chunk_ok(const char *ev, size_t evlen, const char *pay, size_t plen, bool is_done,
                     void *arg)
{
    (void)ev;
    (void)evlen;
    (void)arg;
    if (is_done)
        return;
    int obj = 0;
    FUZZ_CHECK(json_check(pay, plen, 0, &obj, NULL) == 1 && obj, "chunk is not a JSON object: %.*s",
               (int)plen, pay);
}

static void check_chunks(const char *p, size_t n)
{
    fuzz_sse_events(p, n, chunk_ok, NULL);
}

static void stream(const char *s, size_t n, unsigned opt)
{
    anthropic_req_info_t info;
    memset(&info, 0, sizeof info);
    info.stream = true;
    info.include_usage = (opt & 1) != 0;
    sctx_t c = {.s = anthropic_stream_new(&info, 1700000000)};
    FUZZ_CHECK(c.s != NULL, "no stream");
    buf_init(&c.out, 1 << 22);
    fuzz_sse_events(s, n, on_event, &c);
    anthropic_usage_t u;
    anthropic_stream_usage(c.s, &u);
    (void)anthropic_stream_started(c.s);
    (void)anthropic_stream_failed(c.s, NULL);
    (void)anthropic_stream_finish(c.s);
    check_chunks(buf_ptr(&c.out), buf_len(&c.out));
    buf_free(&c.out);
    anthropic_stream_free(c.s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned ctl = data[0];
    char *s = fuzz_dup(data + 1, size - 1);
    size_t n = size - 1;
    switch (ctl & 3) {
    case 0: req_from_chat(s, n, ctl >> 2); break;
    case 1: answer_to_chat(s, n, ctl >> 2); break;
    case 2: error_to_openai(s, n, ctl >> 2); break;
    default: stream(s, n, ctl >> 2); break;
    }
    free(s);
    return 0;
}
