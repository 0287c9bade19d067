/* Unit tests for src/upstream/providers/anthropic*.c: every conformance
 * fixture under tests/unit/upstream/fixtures/anthropic/ (one cmocka test
 * each), the OpenAI stream invariants checked on every translated stream,
 * backpressure (a full output buffer leaves state and output unchanged),
 * and targeted checks of cost, finish reasons and refusals.
 *
 * A fixture is a directory with fixture.json ({"kind": request | answer |
 * stream | error, parameters, expectations}), its input in.json / in.sse /
 * in.txt and its expected output out.json / out.sse. JSON is compared
 * after one parse + compact print of both sides, so key order counts but
 * formatting does not. With ANTHROPIC_FIXTURES_UPDATE=1 missing out files
 * are written (review them before committing). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/json.h"
#include "upstream/anthropic.h"
#include "upstream/sse.h"

#define CREATED 1700000000
#define BIG (1u << 22)

static const char *fixdir(void)
{
    const char *d = getenv("ANTHROPIC_FIXTURES");
    return d ? d : "tests/unit/upstream/fixtures/anthropic";
}

static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[512];
    FILE *f;
    char *p;
    long n;
    snprintf(path, sizeof path, "%s/%s/%s", fixdir(), dir, name);
    f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    p[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return p;
}

static void spit(const char *dir, const char *name, const char *p, size_t n)
{
    char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s/%s", fixdir(), dir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(p, 1, n, f);
    fclose(f);
    fprintf(stderr, "wrote %s (review it)\n", path);
}

static bool updating(void)
{
    const char *u = getenv("ANTHROPIC_FIXTURES_UPDATE");
    return u != NULL && strcmp(u, "1") == 0;
}

/* Compact form of JSON text, or NULL when it is not JSON. */
static char *norm(const char *s, size_t n)
{
    cJSON *j = cJSON_ParseWithLength(s, n);
    char *o;
    if (j == NULL)
        return NULL;
    o = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return o;
}

static char *pretty(const char *s, size_t n)
{
    cJSON *j = cJSON_ParseWithLength(s, n);
    char *o;
    assert_non_null(j);
    o = cJSON_Print(j);
    cJSON_Delete(j);
    return o;
}

/* Our output must be strict JSON (valid UTF-8, no duplicate keys). */
static void assert_strict_json(const char *s, size_t n)
{
    json_error_t e;
    int obj = 0;
    if (json_check(s, n, JSON_CHECK_STRICT, &obj, &e) != 1)
        fail_msg("invalid JSON at %zu (%s): %.*s", e.off, e.what, (int)n, s);
}

static void compare_json(const char *dir, const char *name, const char *got, size_t n)
{
    size_t elen;
    char *exp = slurp(dir, name, &elen), *a, *b;
    if (exp == NULL && updating()) {
        char *p = pretty(got, n);
        spit(dir, name, p, strlen(p));
        free(p);
        return;
    }
    if (exp == NULL)
        fail_msg("%s/%s missing", dir, name);
    a = norm(got, n);
    b = norm(exp, elen);
    assert_non_null(a);
    if (b == NULL)
        fail_msg("%s/%s is not JSON", dir, name);
    if (strcmp(a, b) != 0)
        fail_msg("%s: got\n%s\nexpected\n%s", dir, a, b);
    free(a);
    free(b);
    free(exp);
}

static double jnum(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void check_bool(const cJSON *exp, const char *k, bool got, const char *dir)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(exp, k);
    if (v != NULL && cJSON_IsTrue(v) != got)
        fail_msg("%s: %s is %d, expected %d", dir, k, got, cJSON_IsTrue(v));
}

static void check_int(const cJSON *exp, const char *k, int64_t got, const char *dir)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(exp, k);
    if (v != NULL && (int64_t)v->valuedouble != got)
        fail_msg("%s: %s is %lld, expected %lld", dir, k, (long long)got,
                 (long long)v->valuedouble);
}

static void check_usage(const cJSON *exp, const anthropic_usage_t *u, const char *dir)
{
    const cJSON *price = cJSON_GetObjectItemCaseSensitive(exp, "price");
    if (exp == NULL)
        return;
    check_int(exp, "input_tokens", u->input_tokens, dir);
    check_int(exp, "output_tokens", u->output_tokens, dir);
    check_int(exp, "cache_read_tokens", u->cache_read_tokens, dir);
    check_int(exp, "cache_write_tokens", u->cache_write_tokens, dir);
    check_int(exp, "prompt_tokens", anthropic_prompt_tokens(u), dir);
    if (price != NULL) {
        double c = anthropic_cost(u, jnum(price, "input", 0), jnum(price, "output", 0),
                                  jnum(price, "cached_input", 0), jnum(price, "cache_write", 0));
        double want = jnum(exp, "cost_usd", -1);
        if (fabs(c - want) > 1e-12)
            fail_msg("%s: cost %.12g, expected %.12g", dir, c, want);
    }
}

static void info_from(const cJSON *fx, anthropic_req_info_t *info)
{
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(fx, "info");
    memset(info, 0, sizeof *info);
    if (jstr(i, "json_tool"))
        snprintf(info->json_tool, sizeof info->json_tool, "%s", jstr(i, "json_tool"));
    info->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(i, "include_usage"));
    info->stream = true;
}

/* ---- request fixtures --------------------------------------------------- */

static void run_request(const char *dir, const cJSON *fx)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(fx, "opts");
    const cJSON *xe = cJSON_GetObjectItemCaseSensitive(fx, "expect_error");
    const cJSON *xi = cJSON_GetObjectItemCaseSensitive(fx, "expect_info");
    anthropic_req_opts_t opts = {.model = jstr(o, "model") ? jstr(o, "model") : "claude-test",
                                 .default_max_tokens = (int64_t)jnum(o, "default_max_tokens", 0)};
    anthropic_req_info_t info;
    anthropic_err_t err;
    size_t n;
    char *in = slurp(dir, "in.json", &n);
    cJSON *chat;
    buf_t b;
    int rc;

    assert_non_null(in);
    chat = cJSON_ParseWithLength(in, n);
    assert_non_null(chat);
    buf_init(&b, BIG);
    buf_puts(&b, "KEEP");
    rc = anthropic_request_from_chat(chat, &opts, &b, &info, &err);
    if (xe != NULL) {
        const char *has = jstr(xe, "message_has");
        if (rc != ANTHROPIC_EINVAL)
            fail_msg("%s: rc %d, expected a refusal; output %.*s", dir, rc, (int)buf_len(&b),
                     buf_ptr(&b));
        assert_int_equal(buf_len(&b), 4); /* nothing of the refused request */
        if (jstr(xe, "param") && strcmp(jstr(xe, "param"), err.param) != 0)
            fail_msg("%s: param '%s', expected '%s'", dir, err.param, jstr(xe, "param"));
        if (has && strstr(err.message, has) == NULL)
            fail_msg("%s: message '%s' lacks '%s'", dir, err.message, has);
    } else {
        if (rc != ANTHROPIC_OK)
            fail_msg("%s: rc %d: %s (%s)", dir, rc, err.message, err.param);
        assert_strict_json(buf_ptr(&b) + 4, buf_len(&b) - 4);
        compare_json(dir, "out.json", buf_ptr(&b) + 4, buf_len(&b) - 4);
        check_bool(xi, "stream", info.stream, dir);
        check_bool(xi, "include_usage", info.include_usage, dir);
        check_bool(xi, "temperature_clamped", info.temperature_clamped, dir);
        check_bool(xi, "sampling_dropped", info.sampling_dropped, dir);
        check_bool(xi, "max_tokens_defaulted", info.max_tokens_defaulted, dir);
        check_int(xi, "max_tokens", info.max_tokens, dir);
        check_int(xi, "thinking_budget", info.thinking_budget, dir);
        if (jstr(xi, "json_tool") && strcmp(jstr(xi, "json_tool"), info.json_tool) != 0)
            fail_msg("%s: json_tool '%s'", dir, info.json_tool);
        /* a cap one byte short: refused whole, earlier content kept */
        {
            size_t need = buf_len(&b) - 4;
            buf_t small;
            buf_init(&small, need + 3);
            buf_puts(&small, "KEEP");
            assert_int_equal(anthropic_request_from_chat(chat, &opts, &small, &info, &err),
                             ANTHROPIC_ETOOBIG);
            assert_int_equal(buf_len(&small), 4);
            assert_memory_equal(buf_ptr(&small), "KEEP", 4);
            buf_free(&small);
        }
    }
    buf_free(&b);
    cJSON_Delete(chat);
    free(in);
}

/* ---- answer fixtures ---------------------------------------------------- */

static void run_answer(const char *dir, const cJSON *fx)
{
    const cJSON *xe = cJSON_GetObjectItemCaseSensitive(fx, "expect_error");
    anthropic_req_info_t info;
    anthropic_usage_t u;
    char why[128] = "";
    size_t n;
    char *in = slurp(dir, "in.json", &n);
    buf_t b;
    int rc;
    assert_non_null(in);
    info_from(fx, &info);
    buf_init(&b, BIG);
    rc = anthropic_answer_to_chat(in, n, &info, CREATED, &b, &u, why, sizeof why);
    if (xe != NULL) {
        assert_int_equal(rc, ANTHROPIC_EINVAL);
        assert_int_equal(buf_len(&b), 0);
        if (jstr(xe, "why_has") && strstr(why, jstr(xe, "why_has")) == NULL)
            fail_msg("%s: why '%s'", dir, why);
    } else {
        if (rc != ANTHROPIC_OK)
            fail_msg("%s: rc %d (%s)", dir, rc, why);
        assert_strict_json(buf_ptr(&b), buf_len(&b));
        compare_json(dir, "out.json", buf_ptr(&b), buf_len(&b));
        check_usage(cJSON_GetObjectItemCaseSensitive(fx, "expect_usage"), &u, dir);
        {
            buf_t small;
            buf_init(&small, buf_len(&b) - 1);
            assert_int_equal(anthropic_answer_to_chat(in, n, &info, CREATED, &small, NULL,
                                                      NULL, 0),
                             ANTHROPIC_ETOOBIG);
            assert_int_equal(buf_len(&small), 0);
            buf_free(&small);
        }
    }
    buf_free(&b);
    free(in);
}

/* ---- error fixtures ----------------------------------------------------- */

static void run_error(const char *dir, const cJSON *fx)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(fx, "expect");
    anthropic_error_info_t info;
    size_t n = 0;
    char *in = slurp(dir, "in.txt", &n);
    buf_t b;
    buf_init(&b, BIG);
    assert_int_equal(anthropic_error_to_openai((int)jnum(fx, "status", 500), in ? in : "", n, &b,
                                               &info),
                     ANTHROPIC_OK);
    assert_strict_json(buf_ptr(&b), buf_len(&b));
    compare_json(dir, "out.json", buf_ptr(&b), buf_len(&b));
    check_bool(x, "fails_over", info.fails_over, dir);
    buf_free(&b);
    free(in);
}

/* ---- stream fixtures ---------------------------------------------------- */

typedef struct evlist {
    size_t off[512], len[512];
    size_t n;
} evlist_t;

/* Event boundaries of an SSE text, found by the daemon's own scanner. */
static void split_events(const char *s, size_t n, evlist_t *l)
{
    sse_scan_t sc;
    size_t off = 0;
    sse_init(&sc);
    l->n = 0;
    while (off < n) {
        sse_event_t ev;
        bool got = false;
        off += sse_feed(&sc, s + off, n - off, &ev, &got);
        if (got) {
            assert_true(l->n < 512);
            l->off[l->n] = (size_t)ev.start;
            l->len[l->n++] = (size_t)(ev.end - ev.start);
        }
    }
    /* a cut stream may end inside an event: it never completed, drop it */
}

/* Checks the rules of openai-api.md §4 and "Rules for llmrouter" on a
 * translated stream: data-only framing, constant id/created/model, role
 * once and first, tool-call fragments (index, id, type, name, arguments ""
 * first; index + arguments after), one finish_reason, usage chunk only when
 * asked and right before [DONE], an error event last. Accumulates the tool
 * arguments like the SDKs and checks each is a JSON object. */
static void check_stream_rules(const char *dir, const char *s, size_t n, bool include_usage,
                               bool complete)
{
    evlist_t l;
    char *id = NULL, *model = NULL, *args[64] = {0};
    int roles = 0, finishes = 0, chunks = 0, ntools = 0;
    bool done = false, error = false, usage = false, after_finish_content = false;
    double created = -1;
    split_events(s, n, &l);
    for (size_t i = 0; i < l.n; i++) {
        const char *e = s + l.off[i];
        size_t len = l.len[i];
        cJSON *j, *ch, *c0, *delta, *tcs, *tc;
        if (len < 8 || memcmp(e, "data: ", 6) != 0 || memcmp(e + len - 2, "\n\n", 2) != 0 ||
            memchr(e, '\n', len - 2) != NULL)
            fail_msg("%s: event %zu is not one data line: %.*s", dir, i, (int)len, e);
        if (done || error)
            fail_msg("%s: event after [DONE] or an error", dir);
        if (len == 14 && memcmp(e, "data: [DONE]\n\n", 14) == 0) {
            done = true;
            continue;
        }
        assert_strict_json(e + 6, len - 8);
        j = cJSON_ParseWithLength(e + 6, len - 8);
        assert_non_null(j);
        if (cJSON_GetObjectItemCaseSensitive(j, "error") != NULL) {
            const cJSON *er = cJSON_GetObjectItemCaseSensitive(j, "error");
            assert_non_null(jstr(er, "message"));
            assert_non_null(jstr(er, "type"));
            assert_true(cJSON_HasObjectItem(er, "param") && cJSON_HasObjectItem(er, "code"));
            error = true;
            cJSON_Delete(j);
            continue;
        }
        assert_string_equal(jstr(j, "object"), "chat.completion.chunk");
        if (id == NULL) {
            id = strdup(jstr(j, "id"));
            model = strdup(jstr(j, "model"));
            created = jnum(j, "created", -2);
        }
        assert_string_equal(jstr(j, "id"), id);
        assert_string_equal(jstr(j, "model"), model);
        assert_true(jnum(j, "created", -3) == created);
        assert_int_equal(cJSON_HasObjectItem(j, "usage"), include_usage);
        ch = cJSON_GetObjectItemCaseSensitive(j, "choices");
        assert_true(cJSON_IsArray(ch));
        if (cJSON_GetArraySize(ch) == 0) {
            assert_true(include_usage);
            assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "usage")));
            usage = true;
            cJSON_Delete(j);
            continue;
        }
        assert_false(usage);
        assert_int_equal(cJSON_GetArraySize(ch), 1);
        c0 = cJSON_GetArrayItem(ch, 0);
        assert_int_equal(jnum(c0, "index", -1), 0);
        delta = cJSON_GetObjectItemCaseSensitive(c0, "delta");
        assert_true(cJSON_IsObject(delta));
        if (cJSON_HasObjectItem(delta, "role")) {
            assert_int_equal(chunks, 0);
            assert_string_equal(jstr(delta, "role"), "assistant");
            roles++;
        }
        assert_int_equal(roles, 1); /* the first chunk carries it */
        chunks++;
        if (finishes > 0 && delta->child != NULL)
            after_finish_content = true;
        if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(c0, "finish_reason")))
            finishes++;
        tcs = cJSON_GetObjectItemCaseSensitive(delta, "tool_calls");
        cJSON_ArrayForEach(tc, tcs)
        {
            int k = (int)jnum(tc, "index", -1);
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
            const char *a = jstr(fn, "arguments");
            assert_true(k >= 0 && k <= ntools && k < 64);
            assert_non_null(a);
            if (k == ntools) { /* a new call: its first fragment */
                assert_non_null(jstr(tc, "id"));
                assert_string_equal(jstr(tc, "type"), "function");
                assert_non_null(jstr(fn, "name"));
                assert_string_equal(a, "");
                args[ntools++] = strdup("");
            } else {
                size_t old;
                assert_false(cJSON_HasObjectItem(tc, "id"));
                assert_false(cJSON_HasObjectItem(tc, "type"));
                assert_false(cJSON_HasObjectItem(fn, "name"));
                assert_int_equal(k, ntools - 1); /* calls come one after the other */
                old = strlen(args[k]);
                args[k] = realloc(args[k], old + strlen(a) + 1);
                memcpy(args[k] + old, a, strlen(a) + 1);
            }
        }
        cJSON_Delete(j);
    }
    assert_true(chunks > 0 || error);
    assert_false(after_finish_content);
    if (complete) {
        assert_true(done);
        assert_int_equal(finishes, 1);
        assert_int_equal(usage, include_usage);
    } else {
        assert_false(done);
    }
    for (int k = 0; k < ntools; k++) {
        cJSON *a = cJSON_Parse(args[k]);
        if (!complete && a == NULL) { /* a cut stream may end inside arguments */
            free(args[k]);
            continue;
        }
        if (!cJSON_IsObject(a))
            fail_msg("%s: tool call %d arguments %s", dir, k, args[k]);
        cJSON_Delete(a);
        free(args[k]);
    }
    free(id);
    free(model);
}

/* Feeds every event; with a small cap, drains the buffer on ETOOBIG and
 * feeds the same event again, as the daemon's backpressure would. */
static char *translate_stream(const char *in, size_t n, const anthropic_req_info_t *info,
                              size_t cap, anthropic_stream_t **sp, size_t *outlen)
{
    evlist_t l;
    buf_t b, all;
    anthropic_stream_t *s = anthropic_stream_new(info, CREATED);
    assert_non_null(s);
    split_events(in, n, &l);
    buf_init(&b, cap);
    buf_init(&all, BIG);
    for (size_t i = 0; i < l.n; i++) {
        int rc;
        while ((rc = anthropic_stream_event(s, in + l.off[i], l.len[i], &b)) ==
               ANTHROPIC_ETOOBIG) {
            if (buf_len(&b) == 0)
                b.cap *= 2; /* one event needs more than the cap */
            buf_append(&all, buf_ptr(&b), buf_len(&b));
            buf_reset(&b);
        }
        assert_int_equal(rc, ANTHROPIC_OK);
        /* drain part of it only, so r > 0 next time (compaction) */
        if (buf_len(&b) > 3) {
            buf_append(&all, buf_ptr(&b), 3);
            buf_consume(&b, 3);
        }
    }
    buf_append(&all, buf_ptr(&b), buf_len(&b));
    buf_free(&b);
    *sp = s;
    return buf_detach(&all, outlen);
}

static void run_stream(const char *dir, const cJSON *fx)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(fx, "expect");
    anthropic_req_info_t info;
    anthropic_stream_t *s, *s2;
    anthropic_error_info_t ei;
    anthropic_usage_t u;
    size_t n, olen, o2len, elen;
    char *in = slurp(dir, "in.sse", &n), *out, *out2, *exp;
    evlist_t got, want;
    bool complete;

    assert_non_null(in);
    info_from(fx, &info);
    out = translate_stream(in, n, &info, BIG, &s, &olen);
    complete = anthropic_stream_finish(s);
    check_bool(x, "complete", complete, dir);
    check_bool(x, "started", anthropic_stream_started(s), dir);
    check_bool(x, "failed", anthropic_stream_failed(s, &ei), dir);
    if (cJSON_GetObjectItemCaseSensitive(x, "fails_over") != NULL) {
        assert_true(anthropic_stream_failed(s, NULL));
        check_bool(x, "fails_over", ei.fails_over, dir);
    }
    anthropic_stream_usage(s, &u);
    check_usage(cJSON_GetObjectItemCaseSensitive(x, "usage"), &u, dir);
    check_stream_rules(dir, out, olen, info.include_usage, complete);

    /* the same bytes through a tiny buffer */
    out2 = translate_stream(in, n, &info, 64, &s2, &o2len);
    assert_int_equal(o2len, olen);
    assert_memory_equal(out2, out, olen);
    assert_int_equal(anthropic_stream_finish(s2), complete);

    exp = slurp(dir, "out.sse", &elen);
    if (exp == NULL && updating()) {
        spit(dir, "out.sse", out, olen);
    } else {
        if (exp == NULL)
            fail_msg("%s/out.sse missing", dir);
        split_events(out, olen, &got);
        split_events(exp, elen, &want);
        for (size_t i = 0; i < got.n && i < want.n; i++) {
            const char *g = out + got.off[i], *w = exp + want.off[i];
            char *gn = norm(g + 6, got.len[i] - 6), *wn = norm(w + 6, want.len[i] - 6);
            if (gn == NULL || wn == NULL) { /* [DONE] */
                if (got.len[i] != want.len[i] || memcmp(g, w, got.len[i]) != 0)
                    fail_msg("%s: event %zu: %.*s", dir, i, (int)got.len[i], g);
            } else if (strcmp(gn, wn) != 0) {
                fail_msg("%s: event %zu: got\n%s\nexpected\n%s", dir, i, gn, wn);
            }
            free(gn);
            free(wn);
        }
        if (got.n != want.n)
            fail_msg("%s: %zu events, expected %zu", dir, got.n, want.n);
    }
    free(exp);
    free(out);
    free(out2);
    anthropic_stream_free(s);
    anthropic_stream_free(s2);
    free(in);
}

static void run_fixture(void **state)
{
    const char *dir = *state;
    size_t n;
    char *meta = slurp(dir, "fixture.json", &n);
    cJSON *fx;
    const char *kind;
    assert_non_null(meta);
    fx = cJSON_ParseWithLength(meta, n);
    if (fx == NULL)
        fail_msg("%s/fixture.json is not JSON", dir);
    kind = jstr(fx, "kind");
    assert_non_null(kind);
    if (strcmp(kind, "request") == 0)
        run_request(dir, fx);
    else if (strcmp(kind, "answer") == 0)
        run_answer(dir, fx);
    else if (strcmp(kind, "stream") == 0)
        run_stream(dir, fx);
    else if (strcmp(kind, "error") == 0)
        run_error(dir, fx);
    else
        fail_msg("%s: unknown kind %s", dir, kind);
    cJSON_Delete(fx);
    free(meta);
}

/* ---- targeted tests ----------------------------------------------------- */

static void test_finish_reasons(void **state)
{
    (void)state;
    assert_string_equal(anthropic_finish_reason("end_turn"), "stop");
    assert_string_equal(anthropic_finish_reason("stop_sequence"), "stop");
    assert_string_equal(anthropic_finish_reason("max_tokens"), "length");
    assert_string_equal(anthropic_finish_reason("model_context_window_exceeded"), "length");
    assert_string_equal(anthropic_finish_reason("tool_use"), "tool_calls");
    assert_string_equal(anthropic_finish_reason("refusal"), "content_filter");
    assert_string_equal(anthropic_finish_reason("pause_turn"), "stop");
    assert_string_equal(anthropic_finish_reason("something_new"), "stop");
    assert_string_equal(anthropic_finish_reason(NULL), "stop");
}

static void test_cost_prices_each_class(void **state)
{
    anthropic_usage_t u = {.input_tokens = 1000000, .output_tokens = 2000000,
                           .cache_read_tokens = 4000000, .cache_write_tokens = 8000000};
    (void)state;
    /* 1*3 + 2*15 + 4*0.3 + 8*3.75 */
    assert_true(fabs(anthropic_cost(&u, 3, 15, 0.3, 3.75) - 64.2) < 1e-9);
    assert_int_equal(anthropic_prompt_tokens(&u), 13000000);
    u.cache_read_tokens = u.cache_write_tokens = -1;
    assert_true(fabs(anthropic_cost(&u, 3, 15, 0.3, 3.75) - 33.0) < 1e-9);
    assert_int_equal(anthropic_prompt_tokens(&u), 1000000);
    u.input_tokens = -1;
    assert_int_equal(anthropic_prompt_tokens(&u), -1);
}

static int translate(const char *json, anthropic_req_info_t *info, anthropic_err_t *err,
                     char **out)
{
    cJSON *c = cJSON_Parse(json);
    anthropic_req_opts_t o = {.model = "m", .default_max_tokens = 100};
    buf_t b;
    int rc;
    assert_non_null(c);
    buf_init(&b, 1 << 16);
    rc = anthropic_request_from_chat(c, &o, &b, info, err);
    buf_cstr(&b);
    *out = b.data ? strdup(b.data) : strdup("");
    buf_free(&b);
    cJSON_Delete(c);
    return rc;
}

/* Each field that would change what the client gets is refused with the
 * field named, never silently dropped. */
static void test_refused_fields(void **state)
{
    static const struct {
        const char *body, *param;
    } cases[] = {
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":3}", "n"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true}", "logprobs"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}", "logprobs"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"modalities\":[\"text\","
         "\"audio\"]}",
         "modalities"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"functions\":[]}", "functions"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\"}]}]}",
         "messages[0].content[0]"},
        {"{\"messages\":[{\"role\":\"function\",\"content\":\"x\"}]}", "messages[0].role"},
        {"{\"messages\":[{\"role\":\"system\",\"content\":\"only\"}]}", "messages"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":-1}",
         "temperature"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}",
         "max_completion_tokens"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"reasoning_effort\":\"max\"}",
         "reasoning_effort"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"custom\","
         "\"custom\":{\"name\":\"c\"}}]}",
         "tools[0]"},
        {"{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "messages[0].tool_call_id"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
         "{\"url\":\"file:///etc/passwd\"}}]}]}",
         "messages[0].content[0]"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        anthropic_req_info_t info;
        anthropic_err_t err;
        char *out;
        int rc = translate(cases[i].body, &info, &err, &out);
        if (rc != ANTHROPIC_EINVAL || strcmp(err.param, cases[i].param) != 0)
            fail_msg("case %zu: rc %d param '%s' (%s), expected '%s'", i, rc, err.param,
                     err.message, cases[i].param);
        assert_string_equal(out, "");
        assert_true(strlen(err.message) > 10);
        free(out);
    }
}

/* Fields with no Anthropic equivalent that do not change the answer's
 * shape are dropped (and nothing else leaks through). */
static void test_dropped_fields(void **state)
{
    anthropic_req_info_t info;
    anthropic_err_t err;
    char *out;
    (void)state;
    assert_int_equal(translate("{\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"name\":"
                               "\"bob\"}],\"seed\":1,\"presence_penalty\":1,"
                               "\"frequency_penalty\":1,\"logit_bias\":{\"1\":2},\"store\":true,"
                               "\"metadata\":{\"a\":\"b\"},\"service_tier\":\"auto\","
                               "\"prediction\":{},\"verbosity\":\"low\",\"n\":1,"
                               "\"prompt_cache_key\":\"k\",\"logprobs\":false,"
                               "\"parallel_tool_calls\":true,\"whatever\":1}",
                               &info, &err, &out),
                     ANTHROPIC_OK);
    assert_string_equal(out, "{\"model\":\"m\",\"max_tokens\":100,\"messages\":[{\"role\":"
                             "\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}]}");
    free(out);
}

/* An event that needs more room than the buffer has leaves both alone. */
static void test_stream_backpressure_keeps_state(void **state)
{
    static const char start[] = "event: message_start\ndata: {\"type\":\"message_start\","
                                "\"message\":{\"id\":\"msg_1\",\"model\":\"c\",\"usage\":"
                                "{\"input_tokens\":5}}}\n\n";
    static const char blk[] = "event: content_block_start\ndata: {\"type\":"
                              "\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
                              "\"tool_use\",\"id\":\"toolu_1\",\"name\":\"f\",\"input\":{}}}\n\n";
    anthropic_stream_t *s = anthropic_stream_new(NULL, 1);
    buf_t b;
    size_t before;
    (void)state;
    buf_init(&b, 260); /* the role chunk fits, role + tool chunk do not */
    assert_int_equal(anthropic_stream_event(s, start, sizeof start - 1, &b), ANTHROPIC_OK);
    before = buf_len(&b);
    assert_int_equal(anthropic_stream_event(s, blk, sizeof blk - 1, &b), ANTHROPIC_ETOOBIG);
    assert_int_equal(buf_len(&b), before);
    assert_false(anthropic_stream_started(s));
    buf_reset(&b);
    assert_int_equal(anthropic_stream_event(s, blk, sizeof blk - 1, &b), ANTHROPIC_OK);
    /* the retried event still opens tool call 0 */
    assert_non_null(strstr(buf_cstr(&b), "\"tool_calls\":[{\"index\":0,\"id\":\"toolu_1\""));
    assert_true(anthropic_stream_started(s));
    buf_free(&b);
    anthropic_stream_free(s);
}

/* Broken upstream streams are reported, not papered over. */
static void test_stream_protocol_errors(void **state)
{
    static const char early[] = "event: content_block_delta\ndata: {\"type\":"
                                "\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                                "\"text_delta\",\"text\":\"hi\"}}\n\n";
    static const char notjson[] = "event: message_start\ndata: {nope\n\n";
    static const char ping[] = "event: ping\ndata: {\"type\": \"ping\"}\n\n";
    static const char comment[] = ": keep-alive\n\n";
    static const char unknown[] = "event: future\ndata: {\"type\":\"future\"}\n\n";
    anthropic_stream_t *s = anthropic_stream_new(NULL, 1);
    buf_t b;
    (void)state;
    buf_init(&b, 4096);
    assert_int_equal(anthropic_stream_event(s, ping, sizeof ping - 1, &b), ANTHROPIC_OK);
    assert_int_equal(anthropic_stream_event(s, comment, sizeof comment - 1, &b), ANTHROPIC_OK);
    assert_int_equal(anthropic_stream_event(s, unknown, sizeof unknown - 1, &b), ANTHROPIC_OK);
    assert_int_equal(buf_len(&b), 0);
    assert_int_equal(anthropic_stream_event(s, early, sizeof early - 1, &b), ANTHROPIC_EINVAL);
    assert_int_equal(anthropic_stream_event(s, notjson, sizeof notjson - 1, &b),
                     ANTHROPIC_EINVAL);
    assert_int_equal(buf_len(&b), 0);
    assert_false(anthropic_stream_finish(s));
    buf_free(&b);
    anthropic_stream_free(s);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_finish_reasons),
        cmocka_unit_test(test_cost_prices_each_class),
        cmocka_unit_test(test_refused_fields),
        cmocka_unit_test(test_dropped_fields),
        cmocka_unit_test(test_stream_backpressure_keeps_state),
        cmocka_unit_test(test_stream_protocol_errors),
    };
    size_t nf = sizeof fixed / sizeof *fixed, n = 0, cap = 16;
    char **names = malloc(cap * sizeof *names);
    struct CMUnitTest *tests;
    struct dirent *de;
    DIR *d = opendir(fixdir());
    int rc;
    if (d == NULL) {
        fprintf(stderr, "no fixtures at %s (run from the repository root)\n", fixdir());
        return 1;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap)
            names = realloc(names, (cap *= 2) * sizeof *names);
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    tests = calloc(nf + n, sizeof *tests);
    memcpy(tests, fixed, sizeof fixed);
    for (size_t i = 0; i < n; i++) {
        tests[nf + i].name = names[i];
        tests[nf + i].test_func = run_fixture;
        tests[nf + i].initial_state = names[i];
    }
    rc = _cmocka_run_group_tests("anthropic", tests, nf + n, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(tests);
    return rc;
}
