/* fuzz_request: a request body through the whole parse of the Chat
 * Completions, legacy Completions and Embeddings doors (http/request.c
 * request_parse: the strict JSON check, field validation, the prompt's
 * texts, every kind of rule in tests/fuzz/fuzz-router.yaml, the complexity
 * scorer, the classifier's label, the explanation) and the forwarded body
 * for every model of the chosen chain (request_build_forward: the model name
 * replaced, stream_options, the Anthropic Messages translation).
 *
 * The first byte picks the endpoint (bits 0-1), explain (bit 2), the
 * classifier's answer (bits 3-4: a label, the other, none), the headers the
 * rules see (bits 5-7); the rest is the body.
 * Properties: a parse either succeeds with a routed request or fails with a
 * 4xx error that has a type and a message; a forwarded body is valid JSON. */
#include "fuzz.h"

#include "core/json.h"
#include "http/request.h"
#include "route/rules.h"

static config_t *g_cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g_cfg = fuzz_config_file("tests/fuzz/fuzz-router.yaml");
    return 0;
}

static const char *headers(void *arg, const char *name)
{
    unsigned bits = (unsigned)(uintptr_t)arg;
    if ((bits & 1) && strcmp(name, "x-router-hint") == 0)
        return "premium";
    if ((bits & 2) && strcmp(name, "x-app") == 0)
        return "abab";
    if ((bits & 4) && strcmp(name, "x-router-tier") == 0)
        return (bits & 1) ? "budget" : "nonexistent";
    if ((bits & 4) && strcmp(name, "x-router-deadline-ms") == 0)
        return (bits & 2) ? "1500" : "-3x";
    return NULL;
}

static void check_error(const req_error_t *err)
{
    FUZZ_CHECK(err->status >= 400 && err->status < 500, "status %u", err->status);
    FUZZ_CHECK(err->type != NULL && err->message[0] != '\0', "error without type or message");
    FUZZ_CHECK(memchr(err->message, '\0', sizeof err->message) != NULL, "unterminated message");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned ctl = data[0];
    static const enum endpoint eps[4] = {EP_CHAT, EP_CHAT, EP_COMPLETIONS, EP_EMBEDDINGS};
    req_t *req = request_new(NULL, NULL, g_cfg);
    req->ep = eps[ctl & 3];
    req->header = headers;
    req->header_arg = (void *)(uintptr_t)(ctl >> 5);
    if (buf_append(&req->body, data + 1, size - 1) != 0) {
        request_free(req); /* over max_body_bytes: the server answers 413 first */
        return 0;
    }
    req_error_t err;
    memset(&err, 0, sizeof err);
    bool explain = (ctl & 4) != 0;
    buf_t ex;
    buf_init(&ex, 1 << 20);
    int rc = request_parse(req, &err, explain ? &ex : NULL);
    if (rc == REQUEST_NEED_LABEL) {
        FUZZ_CHECK(!explain, "an explanation asked for the classifier");
        unsigned ans = (ctl >> 3) & 3;
        if (ans < 2 && g_cfg->classifier.n_labels > ans) {
            req->cls_state = RULE_LABEL_KNOWN;
            req->cls_label = (int)ans;
        } else {
            req->cls_state = RULE_LABEL_FALLBACK;
        }
        rc = request_parse(req, &err, NULL);
        FUZZ_CHECK(rc != REQUEST_NEED_LABEL, "asked for the label twice");
    }
    if (rc == 0) {
        FUZZ_CHECK(req->route.n > 0, "routed to an empty chain");
        if (explain) {
            int obj = 0;
            FUZZ_CHECK(json_check(buf_ptr(&ex), buf_len(&ex), JSON_CHECK_TEXT, &obj, NULL) == 1 && obj,
                       "explanation is not a JSON object: %.*s", (int)buf_len(&ex), buf_ptr(&ex));
        }
        for (size_t i = 0; i < req->route.n; i++) {
            int m = req->route.chain[i];
            if (request_build_forward(req, m) == 0) {
                FUZZ_CHECK(req->fwd_body != NULL, "no forwarded body");
                int obj = 0;
                FUZZ_CHECK(json_check(req->fwd_body, req->fwd_len, 0, &obj, NULL) == 1 && obj,
                           "forwarded body for %s is not a JSON object: %.*s",
                           g_cfg->models[m].name, (int)req->fwd_len, req->fwd_body);
            } else {
                check_error(&req->ant_err);
            }
        }
    } else {
        FUZZ_CHECK(rc == -1, "request_parse returned %d", rc);
        check_error(&err);
    }
    buf_free(&ex);
    request_free(req);
    return 0;
}
