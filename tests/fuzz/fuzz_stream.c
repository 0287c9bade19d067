/* fuzz_stream: a streamed answer's assembly for the cache
 * (cache/completion.c completion_acc_*): the input is an SSE stream, cut
 * into events by the daemon's scanner, each data payload fed as a chunk.
 * The first byte picks the endpoint (bit 0) and the assembly cap (bits
 * 1-3, 64 bytes to 1 MiB).
 * Properties: what the assembly produces is a JSON object and, when the
 * cache's rule lets it be stored, replays (a cached stream is served back as
 * a stream the client can read); after a refusal
 * every further chunk is refused; finish may be called twice with the same
 * result. */
#include "fuzz.h"

#include "cache/completion.h"
#include "core/json.h"
#include "http/request.h"

typedef struct ctx {
    completion_acc_t *acc;
    bool failed;
} ctx_t;

static void on_event(const char *ev, size_t evlen, const char *pay, size_t plen, bool is_done,
                     void *arg)
{
    ctx_t *c = arg;
    (void)ev;
    (void)evlen;
    if (is_done || plen == 0)
        return;
    int rc = completion_acc_event(c->acc, pay, plen);
    FUZZ_CHECK(rc == 0 || rc == -1, "completion_acc_event returned %d", rc);
    if (c->failed)
        FUZZ_CHECK(rc == -1, "a chunk accepted after a refusal");
    if (rc != 0)
        c->failed = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned ctl = data[0];
    enum endpoint ep = (ctl & 1) ? EP_COMPLETIONS : EP_CHAT;
    size_t cap = (size_t)64 << (((ctl >> 1) & 7) * 2);
    ctx_t c = {.acc = completion_acc_new(ep, cap)};
    FUZZ_CHECK(c.acc != NULL, "no accumulator");
    char *p = fuzz_dup(data + 1, size - 1);
    fuzz_sse_events(p, size - 1, on_event, &c);
    size_t len = 0, len2 = 0;
    char *out = completion_acc_finish(c.acc, &len);
    char *out2 = completion_acc_finish(c.acc, &len2);
    FUZZ_CHECK((out == NULL) == (out2 == NULL) && len == len2 && (!out || !memcmp(out, out2, len)),
               "finish is not repeatable");
    if (out != NULL) {
        FUZZ_CHECK(!c.failed, "assembled a refused stream");
        int obj = 0;
        FUZZ_CHECK(json_check(out, len, 0, &obj, NULL) == 1 && obj, "assembled answer not JSON");
        /* the store path stores only what completion_storable passes (an
         * assembled answer may still carry a chunk's invalid UTF-8): what
         * passes must replay */
        if (completion_storable(ep, out, len)) {
            buf_t r;
            buf_init(&r, 64 * len + (1 << 16));
            FUZZ_CHECK(completion_replay_sse(ep, out, len, (ctl & 16) != 0, &r) == 0,
                       "stored stream does not replay: %.*s", (int)len, out);
            buf_free(&r);
        }
    }
    free(out);
    free(out2);
    completion_acc_free(c.acc);
    free(p);
    return 0;
}
