/* fuzz_answer: what becomes of a provider's complete (non-streamed) answer:
 * the sanity check and usage reading of every 2xx answer
 * (upstream/providers/openai.c provider_check_answer, with the compact form
 * the cache stores and base64 embeddings), the cache's one storability rule
 * (cache/completion.c completion_storable) and the replay of a stored answer
 * as a stream (completion_replay_sse).
 * The first byte picks the model (bits 0-1), base64 (bit 2), compact
 * (bit 3), the endpoint (bits 4-5) and include_usage (bit 6).
 * Properties: whatever is storable replays (the cache never stores what it
 * cannot serve); a replay is a well-formed SSE stream ending in [DONE]
 * whose data events are JSON; a compact form is valid JSON and storable
 * when the original was. */
#include "fuzz.h"

#include "cache/completion.h"
#include "core/json.h"
#include "http/request.h"
#include "upstream/provider.h"

static config_t *g_cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g_cfg = fuzz_config_file("tests/fuzz/fuzz-router.yaml");
    return 0;
}

typedef struct replay_ctx {
    size_t events;
    bool done_seen, after_done;
} replay_ctx_t;

static void on_event(const char *ev, size_t evlen, const char *pay, size_t plen, bool is_done,
                     void *arg)
{
    replay_ctx_t *c = arg;
    (void)ev;
    (void)evlen;
    c->events++;
    if (c->done_seen)
        c->after_done = true;
    if (is_done) {
        c->done_seen = true;
        return;
    }
    int obj = 0;
    FUZZ_CHECK(json_check(pay, plen, JSON_CHECK_TEXT, &obj, NULL) == 1 && obj,
               "a replayed chunk is not a JSON object: %.*s", (int)plen, pay);
}

static void check_replay(enum endpoint ep, const char *body, size_t len, bool usage)
{
    buf_t out;
    buf_init(&out, 64 * len + (1 << 16));
    int rc = completion_replay_sse(ep, body, len, usage, &out);
    FUZZ_CHECK(rc == 0, "storable answer does not replay: %.*s", (int)len, body);
    replay_ctx_t c = {0};
    size_t n = fuzz_sse_events(buf_ptr(&out), buf_len(&out), on_event, &c);
    FUZZ_CHECK(n >= 2 && c.done_seen && !c.after_done, "replay is not a stream ending in [DONE]");
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned ctl = data[0];
    char *body = fuzz_dup(data + 1, size - 1);
    size_t len = size - 1;
    int m = (int)(ctl & 3) % (int)g_cfg->n_models;
    static const enum endpoint eps[4] = {EP_CHAT, EP_COMPLETIONS, EP_EMBEDDINGS, EP_CHAT};
    enum endpoint ep = eps[(ctl >> 4) & 3];
    bool usage = (ctl & 64) != 0;

    provider_result_t pr;
    memset(&pr, 0, sizeof pr);
    char why[256] = "";
    int rc = provider_check_answer(g_cfg, m, body, len, (ctl & 4) != 0, (ctl & 8) != 0, &pr, why,
                                   sizeof why);
    if (rc != 0)
        FUZZ_CHECK(why[0] != '\0', "a refused answer without a reason");
    else if (pr.compact != NULL) {
        int obj = 0;
        FUZZ_CHECK(json_check(pr.compact, pr.compact_len, 0, &obj, NULL) == 1,
                   "compact form is not JSON");
        if (completion_storable(ep, body, len) && ep != EP_EMBEDDINGS)
            FUZZ_CHECK(completion_storable(ep, pr.compact, pr.compact_len),
                       "storable answer, unstorable compact form");
    }
    if (rc == 0 && pr.new_body != NULL) {
        int obj = 0;
        FUZZ_CHECK(json_check(pr.new_body, pr.new_len, 0, &obj, NULL) == 1 && obj,
                   "replacement body is not a JSON object");
    }
    free(pr.compact);
    free(pr.new_body);

    if (completion_storable(ep, body, len) && ep != EP_EMBEDDINGS)
        check_replay(ep, body, len, usage);
    free(body);
    return 0;
}
