/* Unit tests for src/completion.c: assembling a streamed answer into the
 * stored (non-streamed) completion, replaying a stored completion as SSE,
 * and the round trip between the two. JSON in this file is written with '
 * for " (q() converts it in place) to keep the literals readable. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "cache/completion.h"
#include "core/util.h"

#define EVW 700        /* width of one literal event */
#define MAX 1000000    /* accumulator cap for the ordinary cases */
#define OUT_CAP (1 << 22)

/* ---------------------------------------------------------------- helpers */

/* ' -> " in place; returns s. */
static char *q(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    return s;
}

static const cJSON *m(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c < 0xE0) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c < 0xF0) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c < 0xF5) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        i += len;
    }
    return true;
}

/* Asserts got (len bytes, NUL-terminated) is JSON equal to want. */
static void assert_json_eq(const char *got, size_t len, const char *want)
{
    cJSON *g, *w;
    assert_non_null(got);
    assert_int_equal(strlen(got), len);
    g = cJSON_Parse(got);
    w = cJSON_Parse(want);
    assert_non_null(w);
    if (!g || !cJSON_Compare(g, w, 1))
        fail_msg("JSON differs:\n got  %s\n want %s", got, want);
    cJSON_Delete(g);
    cJSON_Delete(w);
}

/* Feeds events (quoted in place) to a new accumulator. Events before fail_at
 * must return 0, the one at fail_at (if >= 0) and every later one -1.
 * Returns finish's result (caller frees). */
static char *feed(enum endpoint ep, char (*ev)[EVW], size_t n, size_t max, int fail_at,
                  size_t *len)
{
    completion_acc_t *a = completion_acc_new(ep, max);
    char *out;
    assert_non_null(a);
    for (size_t i = 0; i < n; i++) {
        int want = fail_at >= 0 && (int)i >= fail_at ? -1 : 0;
        q(ev[i]);
        if (completion_acc_event(a, ev[i], strlen(ev[i])) != want)
            fail_msg("event %zu: expected %d: %s", i, want, ev[i]);
    }
    out = completion_acc_finish(a, len);
    completion_acc_free(a);
    return out;
}

static void expect_stream(enum endpoint ep, char (*ev)[EVW], size_t n, char *want)
{
    size_t len = 0;
    char *got = feed(ep, ev, n, MAX, -1, &len);
    if (!got)
        fail_msg("finish returned NULL, expected %s", q(want));
    assert_json_eq(got, len, q(want));
    free(got);
}

static void expect_unstorable(enum endpoint ep, char (*ev)[EVW], size_t n, int fail_at)
{
    size_t len = 0;
    char *got = feed(ep, ev, n, MAX, fail_at, &len);
    if (got)
        fail_msg("expected NULL, finish returned %s", got);
}

static char *replay(enum endpoint ep, const char *body, bool iu)
{
    buf_t b;
    char *s;
    buf_init(&b, OUT_CAP);
    if (completion_replay_sse(ep, body, strlen(body), iu, &b) != 0)
        fail_msg("replay refused %s", body);
    s = strdup(buf_cstr(&b));
    buf_free(&b);
    return s;
}

/* Feeds every data event of an SSE text to an accumulator; returns finish's
 * result (caller frees). */
static char *assemble(enum endpoint ep, const char *sse, size_t *len)
{
    completion_acc_t *a = completion_acc_new(ep, MAX);
    char *out;
    for (const char *p = sse; *p;) {
        const char *end = strstr(p, "\n\n"), *d = p + 6;
        assert_non_null(end);
        assert_memory_equal(p, "data: ", 6);
        if (!((size_t)(end - d) == 6 && memcmp(d, "[DONE]", 6) == 0))
            assert_int_equal(completion_acc_event(a, d, (size_t)(end - d)), 0);
        p = end + 2;
    }
    out = completion_acc_finish(a, len);
    completion_acc_free(a);
    return out;
}

/* ---- replay invariants ---- */

typedef struct cstate {
    bool started, finished;
    int chunks;
    char finish[32];
    bool tool_seen[COMPLETION_MAX_TOOL_CALLS];
} cstate_t;

#define MAX_TEST_CHOICES 8

static void check_piece(const cJSON *v)
{
    size_t n;
    if (!v)
        return;
    assert_true(cJSON_IsString(v));
    n = strlen(v->valuestring);
    if (!utf8_valid((const unsigned char *)v->valuestring, n))
        fail_msg("a chunk splits a UTF-8 character: %s", v->valuestring);
    assert_true(n <= COMPLETION_REPLAY_PIECE);
}

static void check_tool_fragment(const cJSON *frag, cstate_t *s)
{
    const cJSON *idx = m(frag, "index"), *fn = m(frag, "function");
    int ti;
    assert_true(cJSON_IsNumber(idx));
    ti = idx->valueint;
    assert_true(ti >= 0 && ti < COMPLETION_MAX_TOOL_CALLS);
    assert_true(cJSON_IsObject(fn));
    if (!s->tool_seen[ti]) {
        /* rule 7: index, id, type "function", function {name, arguments ""} */
        assert_int_equal(cJSON_GetArraySize(frag), 4);
        assert_true(cJSON_IsString(m(frag, "id")) && m(frag, "id")->valuestring[0]);
        assert_string_equal(m(frag, "type")->valuestring, "function");
        assert_int_equal(cJSON_GetArraySize(fn), 2);
        assert_true(cJSON_IsString(m(fn, "name")));
        assert_string_equal(m(fn, "arguments")->valuestring, "");
        s->tool_seen[ti] = true;
    } else {
        /* later fragments: index + arguments only */
        assert_int_equal(cJSON_GetArraySize(frag), 2);
        assert_int_equal(cJSON_GetArraySize(fn), 1);
        assert_true(cJSON_IsString(m(fn, "arguments")));
    }
}

static void check_choice_chunk(enum endpoint ep, const cJSON *ch, cstate_t *st)
{
    const cJSON *idx = m(ch, "index"), *fr = m(ch, "finish_reason"), *lp = m(ch, "logprobs");
    cstate_t *s;
    assert_true(cJSON_IsNumber(idx));
    assert_true(idx->valueint >= 0 && idx->valueint < MAX_TEST_CHOICES);
    s = &st[idx->valueint];
    assert_false(s->finished); /* nothing after a choice's finish chunk */
    assert_true(lp && cJSON_IsNull(lp));
    assert_non_null(fr);
    if (cJSON_IsString(fr)) {
        s->finished = true;
        snprintf(s->finish, sizeof s->finish, "%s", fr->valuestring);
    } else {
        assert_true(cJSON_IsNull(fr));
    }
    if (ep == EP_CHAT) {
        const cJSON *d = m(ch, "delta"), *calls, *frag;
        assert_true(cJSON_IsObject(d));
        if (!s->started) {
            assert_string_equal(m(d, "role")->valuestring, "assistant");
            assert_string_equal(m(d, "content")->valuestring, "");
            assert_int_equal(cJSON_GetArraySize(d), 2);
        } else {
            assert_null(m(d, "role"));
        }
        if (s->finished)
            assert_int_equal(cJSON_GetArraySize(d), 0); /* delta: {} */
        check_piece(m(d, "content"));
        check_piece(m(d, "refusal"));
        calls = m(d, "tool_calls");
        if (calls) {
            assert_true(cJSON_IsArray(calls));
            cJSON_ArrayForEach(frag, calls)
            {
                check_tool_fragment(frag, s);
            }
        }
    } else {
        assert_true(cJSON_IsString(m(ch, "text")));
        check_piece(m(ch, "text"));
    }
    s->started = true;
    s->chunks++;
}

/* Checks the replay sse of body against the rules for llmrouter; returns the
 * number of chunks (events other than [DONE]). */
static int check_replay(enum endpoint ep, const char *body, const char *sse, bool iu)
{
    static const char done[] = "data: [DONE]\n\n";
    cJSON *root = cJSON_Parse(body);
    const cJSON *usage, *ch;
    cstate_t st[MAX_TEST_CHOICES];
    size_t n = strlen(sse);
    bool saw_done = false, saw_usage = false;
    int chunks = 0;
    assert_non_null(root);
    usage = m(root, "usage");
    memset(st, 0, sizeof st);
    assert_true(n >= sizeof done - 1);
    assert_string_equal(sse + n - (sizeof done - 1), done);
    for (const char *p = sse; *p;) {
        const char *end = strstr(p, "\n\n"), *d = p + 6;
        size_t dl;
        cJSON *c;
        const cJSON *choices;
        assert_non_null(end); /* a blank line after each event */
        assert_false(saw_done);
        assert_memory_equal(p, "data: ", 6);
        dl = (size_t)(end - d);
        assert_null(memchr(d, '\n', dl));
        assert_null(memchr(d, '\r', dl));
        p = end + 2;
        if (dl == 6 && memcmp(d, "[DONE]", 6) == 0) {
            saw_done = true;
            continue;
        }
        assert_false(saw_usage); /* the usage chunk comes right before [DONE] */
        c = cJSON_ParseWithLength(d, dl);
        assert_true(cJSON_IsObject(c));
        chunks++;
        assert_string_equal(m(c, "object")->valuestring,
                            ep == EP_CHAT ? "chat.completion.chunk" : "text_completion");
        assert_true(cJSON_Compare(m(c, "id"), m(root, "id"), 1));
        assert_true(cJSON_Compare(m(c, "created"), m(root, "created"), 1));
        assert_true(cJSON_Compare(m(c, "model"), m(root, "model"), 1));
        if (m(root, "system_fingerprint") && !cJSON_IsNull(m(root, "system_fingerprint")))
            assert_true(cJSON_Compare(m(c, "system_fingerprint"), m(root, "system_fingerprint"), 1));
        else
            assert_null(m(c, "system_fingerprint"));
        choices = m(c, "choices");
        assert_true(cJSON_IsArray(choices));
        if (cJSON_GetArraySize(choices) == 0) {
            assert_true(iu);
            assert_true(cJSON_IsObject(m(c, "usage")));
            assert_true(cJSON_Compare(m(c, "usage"), usage, 1));
            saw_usage = true;
        } else {
            assert_int_equal(cJSON_GetArraySize(choices), 1);
            if (iu)
                assert_true(m(c, "usage") && cJSON_IsNull(m(c, "usage")));
            else
                assert_null(m(c, "usage"));
            check_choice_chunk(ep, choices->child, st);
        }
        cJSON_Delete(c);
    }
    assert_true(saw_done);
    assert_int_equal(saw_usage, iu && cJSON_IsObject(usage));
    /* every stored choice started and ended with its stored finish_reason */
    cJSON_ArrayForEach(ch, m(root, "choices"))
    {
        cstate_t *s = &st[m(ch, "index")->valueint];
        assert_true(s->started && s->finished);
        assert_true(s->chunks >= 2);
        assert_string_equal(s->finish, m(ch, "finish_reason")->valuestring);
    }
    cJSON_Delete(root);
    return chunks;
}

/* body -> replay -> invariants -> accumulate -> equal to body (minus usage
 * when the client did not ask for it), for both include_usage values.
 * Returns the chunk count of the include_usage=false replay. */
static int round_trip(enum endpoint ep, const char *body)
{
    int chunks = 0;
    for (int iu = 0; iu < 2; iu++) {
        char *sse = replay(ep, body, iu), *got, *want_s;
        cJSON *want = cJSON_Parse(body);
        size_t len = 0;
        int c = check_replay(ep, body, sse, iu);
        if (!iu)
            chunks = c;
        else
            assert_int_equal(c, chunks + (m(want, "usage") ? 1 : 0));
        got = assemble(ep, sse, &len);
        if (!got)
            fail_msg("re-assembly of the replay failed:\n%s", sse);
        if (!iu)
            cJSON_DeleteItemFromObjectCaseSensitive(want, "usage");
        want_s = cJSON_PrintUnformatted(want);
        assert_json_eq(got, len, want_s);
        free(want_s);
        cJSON_Delete(want);
        free(got);
        free(sse);
    }
    return chunks;
}

/* ------------------------------------------------------------ round trip */

#define USAGE                                                                                      \
    "'usage':{'prompt_tokens':19,'completion_tokens':10,'total_tokens':29,"                       \
    "'prompt_tokens_details':{'cached_tokens':0,'audio_tokens':0},"                               \
    "'completion_tokens_details':{'reasoning_tokens':0,'audio_tokens':0,"                         \
    "'accepted_prediction_tokens':0,'rejected_prediction_tokens':0}}"

static void test_round_trip_plain(void **state)
{
    char with[] = "{'id':'chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT','object':'chat.completion',"
                  "'created':1741569952,'model':'gpt-4o-2024-08-06','system_fingerprint':"
                  "'fp_fc9f1d7035','service_tier':'default','choices':[{'index':0,'message':"
                  "{'role':'assistant','content':'Hello! How can I assist you today?',"
                  "'refusal':null},'logprobs':null,'finish_reason':'stop'}]," USAGE "}";
    char without[] = "{'id':'c1','object':'chat.completion','created':1,'model':'m',"
                     "'choices':[{'index':0,'message':{'role':'assistant','content':"
                     "'Line one\\nline \\'two\\' \\\\ tab\\there \\u0001.','refusal':null},"
                     "'logprobs':null,'finish_reason':'length'}]}";
    (void)state;
    assert_int_equal(round_trip(EP_CHAT, q(with)), 3); /* role, content, finish */
    round_trip(EP_CHAT, q(without));
}

static void test_round_trip_empty_content(void **state)
{
    char body[] = "{'id':'c','object':'chat.completion','created':1700000000,'model':'m',"
                  "'choices':[{'index':0,'message':{'role':'assistant','content':'',"
                  "'refusal':null},'logprobs':null,'finish_reason':'stop'}]," USAGE "}";
    (void)state;
    assert_int_equal(round_trip(EP_CHAT, q(body)), 2); /* role chunk, finish chunk */
}

/* A chat body whose content is text (built with cJSON: any bytes). */
static char *chat_body_with(const char *content)
{
    char tmpl[] = "{'id':'c','object':'chat.completion','created':5,'model':'m','choices':"
                  "[{'index':0,'message':{'role':'assistant','content':'','refusal':null},"
                  "'logprobs':null,'finish_reason':'stop'}]," USAGE "}";
    cJSON *root = cJSON_Parse(q(tmpl));
    cJSON *msg = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(m(root, "choices"), 0),
                                                  "message");
    char *s;
    cJSON_ReplaceItemInObjectCaseSensitive(msg, "content", cJSON_CreateString(content));
    s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static void test_round_trip_utf8(void **state)
{
    /* 1, 2, 3 and 4-byte characters: a 64-byte cut falls inside many of them */
    const char *unit = "Grüße, 世界! 🎉 — naïve café. ";
    const char *emoji = "🎉";
    char text[4096] = "a"; /* 'a' shifts the 4-byte characters off the 64-byte grid */
    size_t n = 1;
    char *body;
    int chunks;
    (void)state;
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s", emoji);
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s", unit);
    assert_true(n < sizeof text);
    assert_true(strlen(text) > 10 * COMPLETION_REPLAY_PIECE);
    body = chat_body_with(text);
    chunks = round_trip(EP_CHAT, body);
    /* split into pieces, none bigger than the piece size (checked per chunk) */
    assert_true(chunks >= 2 + (int)(strlen(text) / COMPLETION_REPLAY_PIECE));
    free(body);
}

static void test_round_trip_refusal(void **state)
{
    char body[] = "{'id':'chatcmpl-r','object':'chat.completion','created':1720000000,"
                  "'model':'gpt-4o','choices':[{'index':0,'message':{'role':'assistant',"
                  "'content':null,'refusal':'I\\u0027m sorry, I can\\u0027t assist with that "
                  "request, because it asks for something that is not allowed here.'},"
                  "'logprobs':null,'finish_reason':'stop'}]," USAGE "}";
    (void)state;
    round_trip(EP_CHAT, q(body));
}

static void test_round_trip_tool_calls(void **state)
{
    /* a forced tool_choice answers with finish_reason "stop" */
    char body[] = "{'id':'chatcmpl-t','object':'chat.completion','created':1720000001,"
                  "'model':'gpt-4o-mini','system_fingerprint':'fp_1','choices':[{'index':0,"
                  "'message':{'role':'assistant','content':null,'refusal':null,'tool_calls':["
                  "{'id':'call_abc','type':'function','function':{'name':'get_weather',"
                  "'arguments':'{\\'location\\':\\'Paris, France\\',\\'unit\\':\\'celsius\\'}'}},"
                  "{'id':'call_def','type':'function','function':{'name':'get_time',"
                  "'arguments':'{}'}},"
                  "{'id':'call_ghi','type':'function','function':{'name':'noop',"
                  "'arguments':''}}]},"
                  "'logprobs':null,'finish_reason':'stop'}]," USAGE "}";
    char with_text[] = "{'id':'c','object':'chat.completion','created':1,'model':'m',"
                       "'choices':[{'index':0,'message':{'role':'assistant','content':"
                       "'Let me check.','refusal':null,'tool_calls':[{'id':'call_1','type':"
                       "'function','function':{'name':'f','arguments':'{\\'a\\':1}'}},"
                       "{'id':'call_2','type':'function','function':{'name':'g','arguments':"
                       "'{\\'b\\':[1,2]}'}}]},'logprobs':null,'finish_reason':'length'}]}";
    (void)state;
    /* role, 3 first fragments, 2 argument fragments, finish */
    assert_int_equal(round_trip(EP_CHAT, q(body)), 7);
    round_trip(EP_CHAT, q(with_text));
}

static void test_round_trip_two_choices(void **state)
{
    char body[] = "{'id':'c2','object':'chat.completion','created':1720000002,'model':'m',"
                  "'choices':[{'index':0,'message':{'role':'assistant','content':'First "
                  "answer.','refusal':null},'logprobs':null,'finish_reason':'stop'},"
                  "{'index':1,'message':{'role':'assistant','content':'Second answer, which is "
                  "somewhat longer than the piece size of the replay, so it gets split.',"
                  "'refusal':null},'logprobs':null,'finish_reason':'length'}]," USAGE "}";
    char no_usage[sizeof body];
    (void)state;
    round_trip(EP_CHAT, q(body));
    /* the same without usage */
    {
        char *u = strstr(body, ",\"usage\"");
        size_t k = (size_t)(u - body);
        memcpy(no_usage, body, k);
        memcpy(no_usage + k, "}", 2);
    }
    round_trip(EP_CHAT, no_usage);
}

static void test_round_trip_legacy(void **state)
{
    char one[] = "{'id':'cmpl-9x','object':'text_completion','created':1720000003,'model':"
                 "'gpt-3.5-turbo-instruct','choices':[{'text':'\\n\\nThis is indeed a test of "
                 "the legacy completions endpoint, long enough to be split.','index':0,"
                 "'logprobs':null,'finish_reason':'length'}],'usage':{'prompt_tokens':5,"
                 "'completion_tokens':16,'total_tokens':21}}";
    char two[] = "{'id':'cmpl-2','object':'text_completion','created':7,'model':'m',"
                 "'system_fingerprint':'fp_x','choices':[{'text':'','index':0,'logprobs':null,"
                 "'finish_reason':'stop'},{'text':'日本語のテキスト — ünïcödé ✓','index':1,"
                 "'logprobs':null,'finish_reason':'stop'}]}";
    (void)state;
    round_trip(EP_COMPLETIONS, q(one));
    round_trip(EP_COMPLETIONS, q(two));
}

/* ------------------------------------------------------ realistic streams */

#define CH(rest) "{'id':'chatcmpl-AB1','object':'chat.completion.chunk','created':1726000000," \
                 "'model':'gpt-4o-2024-08-06','system_fingerprint':'fp_abc'," rest "}"

static void test_stream_text_with_usage(void **state)
{
    char ev[][EVW] = {
        CH("'choices':[{'index':0,'delta':{'role':'assistant','content':'','refusal':null},"
           "'logprobs':null,'finish_reason':null}],'usage':null"),
        CH("'choices':[{'index':0,'delta':{'content':'Hello'},'logprobs':null,"
           "'finish_reason':null}],'usage':null"),
        CH("'choices':[{'index':0,'delta':{'content':'! How'},'logprobs':null,"
           "'finish_reason':null}],'usage':null"),
        CH("'choices':[{'index':0,'delta':{'content':' can I help?'},'logprobs':null,"
           "'finish_reason':null}],'usage':null"),
        CH("'choices':[{'index':0,'delta':{},'logprobs':null,'finish_reason':'stop'}],"
           "'usage':null"),
        CH("'choices':[],'usage':{'prompt_tokens':8,'completion_tokens':6,'total_tokens':14,"
           "'prompt_tokens_details':{'cached_tokens':0}}"),
    };
    char want[] = "{'id':'chatcmpl-AB1','object':'chat.completion','created':1726000000,"
                  "'model':'gpt-4o-2024-08-06','system_fingerprint':'fp_abc','choices':[{"
                  "'index':0,'message':{'role':'assistant','content':'Hello! How can I help?',"
                  "'refusal':null},'logprobs':null,'finish_reason':'stop'}],'usage':{"
                  "'prompt_tokens':8,'completion_tokens':6,'total_tokens':14,"
                  "'prompt_tokens_details':{'cached_tokens':0}}}";
    (void)state;
    expect_stream(EP_CHAT, ev, UTIL_ARRAY_LEN(ev), want);
}

static void test_stream_tool_calls(void **state)
{
    char ev[][EVW] = {
        CH("'choices':[{'index':0,'delta':{'role':'assistant','content':null,'tool_calls':[{"
           "'index':0,'id':'call_DdmO9pD3xa9XTPNJ32zg2hcA','type':'function','function':{"
           "'name':'get_weather','arguments':''}}],'refusal':null},'logprobs':null,"
           "'finish_reason':null}]"),
        CH("'choices':[{'index':0,'delta':{'tool_calls':[{'index':0,'function':{'arguments':"
           "'{\\''}}]},'logprobs':null,'finish_reason':null}]"),
        CH("'choices':[{'index':0,'delta':{'tool_calls':[{'index':0,'function':{'arguments':"
           "'location\\':\\''}}]},'logprobs':null,'finish_reason':null}]"),
        CH("'choices':[{'index':0,'delta':{'tool_calls':[{'index':0,'function':{'arguments':"
           "'Paris\\'}'}}]},'logprobs':null,'finish_reason':null}]"),
        CH("'choices':[{'index':0,'delta':{'tool_calls':[{'index':1,'id':'call_2','type':"
           "'function','function':{'name':'get_time','arguments':''}}]},'logprobs':null,"
           "'finish_reason':null}]"),
        /* some servers repeat id, type and name on every fragment */
        CH("'choices':[{'index':0,'delta':{'tool_calls':[{'index':1,'id':'call_2','type':"
           "'function','function':{'name':'get_time','arguments':'{}'}}]},'logprobs':null,"
           "'finish_reason':null}]"),
        CH("'choices':[{'index':0,'delta':{},'logprobs':null,'finish_reason':'stop'}]"),
    };
    char want[] = "{'id':'chatcmpl-AB1','object':'chat.completion','created':1726000000,"
                  "'model':'gpt-4o-2024-08-06','system_fingerprint':'fp_abc','choices':[{"
                  "'index':0,'message':{'role':'assistant','content':null,'refusal':null,"
                  "'tool_calls':[{'id':'call_DdmO9pD3xa9XTPNJ32zg2hcA','type':'function',"
                  "'function':{'name':'get_weather','arguments':'{\\'location\\':\\'Paris\\'}'"
                  "}},{'id':'call_2','type':'function','function':{'name':'get_time',"
                  "'arguments':'{}'}}]},'logprobs':null,'finish_reason':'stop'}]}";
    (void)state;
    expect_stream(EP_CHAT, ev, UTIL_ARRAY_LEN(ev), want);
}

static void test_stream_tool_calls_finish_tool_calls(void **state)
{
    /* the usual tool-call answer: complete, but not cacheable by our rule */
    char ev[][EVW] = {
        CH("'choices':[{'index':0,'delta':{'role':'assistant','content':null,'tool_calls':[{"
           "'index':0,'id':'call_1','type':'function','function':{'name':'f','arguments':''"
           "}}]},'logprobs':null,'finish_reason':null}]"),
        CH("'choices':[{'index':0,'delta':{'tool_calls':[{'index':0,'function':{'arguments':"
           "'{}'}}]},'logprobs':null,'finish_reason':null}]"),
        CH("'choices':[{'index':0,'delta':{},'logprobs':null,'finish_reason':'tool_calls'}]"),
    };
    (void)state;
    expect_unstorable(EP_CHAT, ev, UTIL_ARRAY_LEN(ev), -1);
}

static void test_stream_two_choices_interleaved(void **state)
{
    /* n=2: choice 1 starts first, one chunk carries both; output sorted by
     * index */
    char ev[][EVW] = {
        CH("'choices':[{'index':1,'delta':{'role':'assistant','content':''},'logprobs':null,"
           "'finish_reason':null}]"),
        CH("'choices':[{'index':0,'delta':{'role':'assistant','content':''},'logprobs':null,"
           "'finish_reason':null}]"),
        CH("'choices':[{'index':1,'delta':{'content':'B1'},'logprobs':null,"
           "'finish_reason':null}]"),
        CH("'choices':[{'index':0,'delta':{'content':'A1'},'logprobs':null,"
           "'finish_reason':null},{'index':1,'delta':{'content':' B2'},'logprobs':null,"
           "'finish_reason':null}]"),
        CH("'choices':[{'index':0,'delta':{'content':' A2'},'logprobs':null,"
           "'finish_reason':'length'}]"),
        CH("'choices':[{'index':1,'delta':{},'logprobs':null,'finish_reason':'stop'}]"),
    };
    char want[] = "{'id':'chatcmpl-AB1','object':'chat.completion','created':1726000000,"
                  "'model':'gpt-4o-2024-08-06','system_fingerprint':'fp_abc','choices':["
                  "{'index':0,'message':{'role':'assistant','content':'A1 A2','refusal':null},"
                  "'logprobs':null,'finish_reason':'length'},"
                  "{'index':1,'message':{'role':'assistant','content':'B1 B2','refusal':null},"
                  "'logprobs':null,'finish_reason':'stop'}]}";
    (void)state;
    expect_stream(EP_CHAT, ev, UTIL_ARRAY_LEN(ev), want);
}

static void test_stream_refusal(void **state)
{
    char ev[][EVW] = {
        CH("'choices':[{'index':0,'delta':{'role':'assistant','content':null,'refusal':''},"
           "'logprobs':null,'finish_reason':null}]"),
        CH("'choices':[{'index':0,'delta':{'refusal':'I\\u0027m sorry,'},'logprobs':null,"
           "'finish_reason':null}]"),
        CH("'choices':[{'index':0,'delta':{'refusal':' I can\\u0027t help.'},'logprobs':null,"
           "'finish_reason':null}]"),
        CH("'choices':[{'index':0,'delta':{},'logprobs':null,'finish_reason':'stop'}]"),
    };
    char want[] = "{'id':'chatcmpl-AB1','object':'chat.completion','created':1726000000,"
                  "'model':'gpt-4o-2024-08-06','system_fingerprint':'fp_abc','choices':[{"
                  "'index':0,'message':{'role':'assistant','content':null,'refusal':"
                  "'I\\u0027m sorry, I can\\u0027t help.'},'logprobs':null,"
                  "'finish_reason':'stop'}]}";
    (void)state;
    expect_stream(EP_CHAT, ev, UTIL_ARRAY_LEN(ev), want);
}

static void test_stream_azure_filter_and_usage_everywhere(void **state)
{
    /* Azure: a prompt-filter event with object "" first (skipped, so its
     * empty id does not become the answer's id); extra fields dropped;
     * vLLM-style usage on every chunk: the last one wins */
    char ev[][EVW] = {
        "{'choices':[],'created':0,'id':'','model':'','object':'','prompt_filter_results':[{"
        "'prompt_index':0,'content_filter_results':{'hate':{'filtered':false,'severity':"
        "'safe'}}}]}",
        "{'id':'chatcmpl-az','object':'chat.completion.chunk','created':1727000000,'model':"
        "'gpt-4o-2024-05-13','system_fingerprint':null,'choices':[{'index':0,'delta':{'role':"
        "'assistant','content':''},'content_filter_results':{},'logprobs':null,"
        "'finish_reason':null}],'usage':{'prompt_tokens':3,'completion_tokens':0,"
        "'total_tokens':3}}",
        "{'id':'chatcmpl-az','object':'chat.completion.chunk','created':1727000000,'model':"
        "'gpt-4o-2024-05-13','choices':[{'index':0,'delta':{'content':'Hi'},"
        "'content_filter_results':{'hate':{'filtered':false}},'logprobs':null,"
        "'finish_reason':null}],'usage':{'prompt_tokens':3,'completion_tokens':1,"
        "'total_tokens':4}}",
        "{'id':'chatcmpl-az','object':'chat.completion.chunk','created':1727000000,'model':"
        "'gpt-4o-2024-05-13','choices':[{'index':0,'delta':{},'logprobs':null,"
        "'finish_reason':'stop'}],'usage':{'prompt_tokens':3,'completion_tokens':2,"
        "'total_tokens':5}}",
    };
    char want[] = "{'id':'chatcmpl-az','object':'chat.completion','created':1727000000,"
                  "'model':'gpt-4o-2024-05-13','choices':[{'index':0,'message':{'role':"
                  "'assistant','content':'Hi','refusal':null},'logprobs':null,"
                  "'finish_reason':'stop'}],'usage':{'prompt_tokens':3,'completion_tokens':2,"
                  "'total_tokens':5}}";
    (void)state;
    expect_stream(EP_CHAT, ev, UTIL_ARRAY_LEN(ev), want);
}

#define LG(rest) "{'id':'cmpl-8','object':'text_completion','created':1718000000," rest \
                 ",'model':'gpt-3.5-turbo-instruct'}"

static void test_stream_legacy(void **state)
{
    char ev[][EVW] = {
        LG("'choices':[{'text':'\\n\\n','index':0,'logprobs':null,'finish_reason':null}]"),
        LG("'choices':[{'text':'This is','index':0,'logprobs':null,'finish_reason':null}]"),
        LG("'choices':[{'text':' a test.','index':0,'logprobs':null,'finish_reason':null}]"),
        LG("'choices':[{'text':'','index':0,'logprobs':null,'finish_reason':'stop'}]"),
        LG("'choices':[],'usage':{'prompt_tokens':5,'completion_tokens':7,'total_tokens':12}"),
    };
    char want[] = "{'id':'cmpl-8','object':'text_completion','created':1718000000,'model':"
                  "'gpt-3.5-turbo-instruct','choices':[{'text':'\\n\\nThis is a test.',"
                  "'index':0,'logprobs':null,'finish_reason':'stop'}],'usage':{"
                  "'prompt_tokens':5,'completion_tokens':7,'total_tokens':12}}";
    char chat_chunk[][EVW] = {
        /* a chat chunk on the legacy endpoint is foreign: skipped, so nothing */
        CH("'choices':[{'index':0,'delta':{'content':'x'},'finish_reason':'stop'}]"),
    };
    (void)state;
    expect_stream(EP_COMPLETIONS, ev, UTIL_ARRAY_LEN(ev), want);
    expect_unstorable(EP_COMPLETIONS, chat_chunk, 1, -1);
}

static void test_stream_split_utf8_bytes(void **state)
{
    /* an upstream that cuts a character between two chunks (raw bytes in
     * the JSON strings): the concatenation is the valid character */
    char ev[][EVW] = {
        CH("'choices':[{'index':0,'delta':{'role':'assistant','content':'caf\xc3'},"
           "'finish_reason':null}]"),
        CH("'choices':[{'index':0,'delta':{'content':'\xa9'},'finish_reason':'stop'}]"),
    };
    char want[] = "{'id':'chatcmpl-AB1','object':'chat.completion','created':1726000000,"
                  "'model':'gpt-4o-2024-08-06','system_fingerprint':'fp_abc','choices':[{"
                  "'index':0,'message':{'role':'assistant','content':'café','refusal':null},"
                  "'logprobs':null,'finish_reason':'stop'}]}";
    (void)state;
    expect_stream(EP_CHAT, ev, UTIL_ARRAY_LEN(ev), want);
}

/* ------------------------------------------------------- unstorable streams */

static void test_unstorable_finish_reasons(void **state)
{
    char filtered[][EVW] = {
        CH("'choices':[{'index':0,'delta':{'role':'assistant','content':'Some'},"
           "'finish_reason':null}]"),
        CH("'choices':[{'index':0,'delta':{},'finish_reason':'content_filter'}]"),
    };
    char missing[][EVW] = {
        CH("'choices':[{'index':0,'delta':{'role':'assistant','content':'cut short'},"
           "'finish_reason':null}]"),
        CH("'choices':[],'usage':{'prompt_tokens':1,'completion_tokens':2,'total_tokens':3}"),
    };
    char one_of_two[][EVW] = {
        CH("'choices':[{'index':0,'delta':{'role':'assistant','content':'a'},"
           "'finish_reason':'stop'}]"),
        CH("'choices':[{'index':1,'delta':{'role':'assistant','content':'b'},"
           "'finish_reason':null}]"),
    };
    char no_choice[][EVW] = {
        CH("'choices':[],'usage':{'prompt_tokens':1,'completion_tokens':0,'total_tokens':1}"),
    };
    char no_tool_id[][EVW] = {
        CH("'choices':[{'index':0,'delta':{'role':'assistant','tool_calls':[{'index':0,"
           "'type':'function','function':{'name':'f','arguments':'{}'}}]},"
           "'finish_reason':'stop'}]"),
    };
    (void)state;
    expect_unstorable(EP_CHAT, filtered, UTIL_ARRAY_LEN(filtered), -1);
    expect_unstorable(EP_CHAT, missing, UTIL_ARRAY_LEN(missing), -1);
    expect_unstorable(EP_CHAT, one_of_two, UTIL_ARRAY_LEN(one_of_two), -1);
    expect_unstorable(EP_CHAT, no_choice, UTIL_ARRAY_LEN(no_choice), -1);
    expect_unstorable(EP_CHAT, no_tool_id, UTIL_ARRAY_LEN(no_tool_id), -1);
}

static void test_unstorable_invalid_events(void **state)
{
    char bad_json[][EVW] = {
        CH("'choices':[{'index':0,'delta':{'role':'assistant','content':'a'},"
           "'finish_reason':null}]"),
        "{'id':'x','choices':[{'index':0,'delta':{'content':'b'}",
        /* a perfectly good ending afterwards changes nothing */
        CH("'choices':[{'index':0,'delta':{},'finish_reason':'stop'}]"),
    };
    char error[][EVW] = {
        CH("'choices':[{'index':0,'delta':{'role':'assistant','content':'a'},"
           "'finish_reason':null}]"),
        "{'error':{'message':'The server had an error while processing your request.',"
        "'type':'server_error','param':null,'code':null}}",
        CH("'choices':[{'index':0,'delta':{},'finish_reason':'stop'}]"),
    };
    char no_index[][EVW] = {
        CH("'choices':[{'delta':{'role':'assistant','content':'a'},'finish_reason':'stop'}]"),
    };
    char tool_no_index[][EVW] = {
        CH("'choices':[{'index':0,'delta':{'role':'assistant','tool_calls':[{'id':'call_1',"
           "'type':'function','function':{'name':'f','arguments':'{}'}}]},"
           "'finish_reason':'stop'}]"),
    };
    char bad_index[][EVW] = {
        CH("'choices':[{'index':-1,'delta':{'content':'a'},'finish_reason':'stop'}]"),
    };
    char logprobs[][EVW] = {
        CH("'choices':[{'index':0,'delta':{'role':'assistant','content':'a'},'logprobs':{"
           "'content':[{'token':'a','logprob':-0.1,'bytes':[97],'top_logprobs':[]}]},"
           "'finish_reason':'stop'}]"),
    };
    char not_object[][EVW] = {"[1,2]"};
    char done[][EVW] = {"[DONE]"};
    char mistyped[][EVW] = {
        CH("'choices':[{'index':0,'delta':{'role':'assistant','content':7},"
           "'finish_reason':'stop'}]"),
    };
    (void)state;
    expect_unstorable(EP_CHAT, bad_json, UTIL_ARRAY_LEN(bad_json), 1);
    expect_unstorable(EP_CHAT, error, UTIL_ARRAY_LEN(error), 1);
    expect_unstorable(EP_CHAT, no_index, UTIL_ARRAY_LEN(no_index), 0);
    expect_unstorable(EP_CHAT, tool_no_index, UTIL_ARRAY_LEN(tool_no_index), 0);
    expect_unstorable(EP_CHAT, bad_index, UTIL_ARRAY_LEN(bad_index), 0);
    expect_unstorable(EP_CHAT, logprobs, UTIL_ARRAY_LEN(logprobs), 0);
    expect_unstorable(EP_CHAT, not_object, UTIL_ARRAY_LEN(not_object), 0);
    expect_unstorable(EP_CHAT, done, UTIL_ARRAY_LEN(done), 0);
    expect_unstorable(EP_CHAT, mistyped, UTIL_ARRAY_LEN(mistyped), 0);
}

static void test_unstorable_over_cap(void **state)
{
    /* stored strings: id "c" (1) + model "m" (1) + content */
    char fits[][EVW] = {
        "{'id':'c','object':'chat.completion.chunk','created':1,'model':'m','choices':[{"
        "'index':0,'delta':{'role':'assistant','content':'12345'},'finish_reason':null}]}",
        "{'id':'c','object':'chat.completion.chunk','created':1,'model':'m','choices':[{"
        "'index':0,'delta':{'content':'67890'},'finish_reason':'stop'}]}",
    };
    char over[][EVW] = {
        "{'id':'c','object':'chat.completion.chunk','created':1,'model':'m','choices':[{"
        "'index':0,'delta':{'role':'assistant','content':'12345'},'finish_reason':null}]}",
        "{'id':'c','object':'chat.completion.chunk','created':1,'model':'m','choices':[{"
        "'index':0,'delta':{'content':'678901'},'finish_reason':null}]}",
        "{'id':'c','object':'chat.completion.chunk','created':1,'model':'m','choices':[{"
        "'index':0,'delta':{},'finish_reason':'stop'}]}",
    };
    size_t len = 0;
    char *got;
    (void)state;
    got = feed(EP_CHAT, fits, UTIL_ARRAY_LEN(fits), 12, -1, &len);
    assert_json_eq(got, len,
                   q((char[]){"{'id':'c','object':'chat.completion','created':1,'model':'m',"
                              "'choices':[{'index':0,'message':{'role':'assistant','content':"
                              "'1234567890','refusal':null},'logprobs':null,"
                              "'finish_reason':'stop'}]}"}));
    free(got);
    assert_null(feed(EP_CHAT, over, UTIL_ARRAY_LEN(over), 12, 1, &len));
}

static void test_unstorable_no_events(void **state)
{
    completion_acc_t *a = completion_acc_new(EP_CHAT, MAX);
    size_t len = 0;
    (void)state;
    assert_null(completion_acc_finish(a, &len));
    completion_acc_free(a);
    assert_null(completion_acc_new(EP_EMBEDDINGS, MAX));
    assert_null(completion_acc_new(EP_NONE, MAX));
    completion_acc_free(NULL);
}

static void test_finish_twice(void **state)
{
    char ev[] = "{'id':'c','object':'chat.completion.chunk','created':1,'model':'m','choices':"
                "[{'index':0,'delta':{'role':'assistant','content':'ok'},'finish_reason':"
                "'stop'}]}";
    completion_acc_t *a = completion_acc_new(EP_CHAT, MAX);
    size_t l1 = 0, l2 = 0;
    char *s1, *s2;
    (void)state;
    q(ev);
    assert_int_equal(completion_acc_event(a, ev, strlen(ev)), 0);
    s1 = completion_acc_finish(a, &l1);
    s2 = completion_acc_finish(a, &l2);
    assert_non_null(s1);
    assert_non_null(s2);
    assert_int_equal(l1, l2);
    assert_string_equal(s1, s2);
    free(s1);
    free(s2);
    completion_acc_free(a);
}

/* ---------------------------------------------------------------- replay */

static void test_replay_exact_chat(void **state)
{
    char body[] = "{'id':'c','object':'chat.completion','created':1,'model':'m',"
                  "'choices':[{'index':0,'message':{'role':'assistant','content':'Hi',"
                  "'refusal':null},'logprobs':null,'finish_reason':'stop'}],"
                  "'usage':{'prompt_tokens':1,'completion_tokens':1,'total_tokens':2}}";
    char want[] =
        "data: {'id':'c','object':'chat.completion.chunk','created':1,'model':'m','choices':"
        "[{'index':0,'delta':{'role':'assistant','content':''},'logprobs':null,"
        "'finish_reason':null}],'usage':null}\n\n"
        "data: {'id':'c','object':'chat.completion.chunk','created':1,'model':'m','choices':"
        "[{'index':0,'delta':{'content':'Hi'},'logprobs':null,'finish_reason':null}],"
        "'usage':null}\n\n"
        "data: {'id':'c','object':'chat.completion.chunk','created':1,'model':'m','choices':"
        "[{'index':0,'delta':{},'logprobs':null,'finish_reason':'stop'}],'usage':null}\n\n"
        "data: {'id':'c','object':'chat.completion.chunk','created':1,'model':'m','choices':"
        "[],'usage':{'prompt_tokens':1,'completion_tokens':1,'total_tokens':2}}\n\n"
        "data: [DONE]\n\n";
    char *got;
    (void)state;
    got = replay(EP_CHAT, q(body), true);
    assert_string_equal(got, q(want));
    free(got);
}

static void test_replay_usage_not_stored(void **state)
{
    char body[] = "{'id':'c','object':'chat.completion','created':1,'model':'m',"
                  "'choices':[{'index':0,'message':{'role':'assistant','content':'Hi',"
                  "'refusal':null},'logprobs':null,'finish_reason':'stop'}]}";
    char *got;
    (void)state;
    q(body);
    /* include_usage but nothing stored: usage null everywhere, no usage chunk */
    got = replay(EP_CHAT, body, true);
    assert_int_equal(check_replay(EP_CHAT, body, got, true), 3);
    assert_null(strstr(got, "\"choices\":[]"));
    free(got);
    /* without include_usage: no usage key at all (checked by check_replay) */
    got = replay(EP_CHAT, body, false);
    assert_null(strstr(got, "usage"));
    check_replay(EP_CHAT, body, got, false);
    free(got);
}

static void test_replay_real_openai_body(void **state)
{
    /* as returned by the API: annotations [], finish_reason tool_calls —
     * replayable even though our rule would not store it */
    char body[] = "{'id':'chatcmpl-x','object':'chat.completion','created':1741570283,"
                  "'model':'gpt-4o-2024-08-06','choices':[{'index':0,'message':{'role':"
                  "'assistant','content':null,'tool_calls':[{'id':'call_1','type':'function',"
                  "'function':{'name':'get_weather','arguments':'{\\'city\\':\\'Oslo\\'}'}}],"
                  "'refusal':null,'annotations':[]},'logprobs':null,'finish_reason':"
                  "'tool_calls'}],'usage':{'prompt_tokens':80,'completion_tokens':16,"
                  "'total_tokens':96},'service_tier':'default','system_fingerprint':'fp_f'}";
    char *sse;
    size_t len = 0;
    (void)state;
    q(body);
    for (int iu = 0; iu < 2; iu++) {
        sse = replay(EP_CHAT, body, iu);
        check_replay(EP_CHAT, body, sse, iu);
        assert_non_null(strstr(sse, "\"service_tier\":\"default\""));
        assert_null(assemble(EP_CHAT, sse, &len)); /* tool_calls: not stored */
        free(sse);
    }
}

static void expect_refused(enum endpoint ep, const char *body)
{
    buf_t b;
    buf_init(&b, OUT_CAP);
    assert_int_equal(buf_puts(&b, "previous"), 0);
    if (completion_replay_sse(ep, body, strlen(body), true, &b) != -1)
        fail_msg("replay accepted %s", body);
    assert_string_equal(buf_cstr(&b), "previous"); /* out unchanged */
    buf_free(&b);
}

static void test_replay_refuses(void **state)
{
    char chat[] = "{'id':'c','object':'chat.completion','created':1,'model':'m','choices':[{"
                  "'index':0,'message':{'role':'assistant','content':'x','refusal':null},"
                  "'logprobs':null,'finish_reason':'stop'}]}";
    char legacy[] = "{'id':'c','object':'text_completion','created':1,'model':'m','choices':[{"
                    "'text':'x','index':0,'logprobs':null,'finish_reason':'stop'}]}";
    char *bad[] = {
        "",
        "not json",
        "[]",
        "{'id':'c','object':'chat.completion','created':1,'model':'m','choices':[]}",
        "{'object':'chat.completion','created':1,'model':'m','choices':[{'index':0,"
        "'message':{'content':'x'},'finish_reason':'stop'}]}",
        "{'id':'c','object':'chat.completion','created':'1','model':'m','choices':[{'index':0,"
        "'message':{'content':'x'},'finish_reason':'stop'}]}",
        "{'id':'c','object':'chat.completion','created':1,'model':'m','choices':[{'index':0,"
        "'message':{'content':'x'},'finish_reason':null}]}",
        "{'id':'c','object':'chat.completion','created':1,'model':'m','choices':[{'index':0,"
        "'message':{'content':'x'},'finish_reason':'bogus'}]}",
        "{'id':'c','object':'chat.completion','created':1,'model':'m','choices':[{"
        "'message':{'content':'x'},'finish_reason':'stop'}]}",
        "{'id':'c','object':'chat.completion','created':1,'model':'m','choices':[{'index':0,"
        "'message':{'content':'x'},'logprobs':{'content':[]},'finish_reason':'stop'}]}",
        "{'id':'c','object':'chat.completion','created':1,'model':'m','choices':[{'index':0,"
        "'message':{'content':'x'},'finish_reason':'stop'},{'index':0,'message':{'content':"
        "'y'},'finish_reason':'stop'}]}",
        "{'id':'c','object':'chat.completion','created':1,'model':'m','choices':[{'index':0,"
        "'message':{'content':null,'audio':{'id':'a1'}},'finish_reason':'stop'}]}",
        "{'id':'c','object':'chat.completion','created':1,'model':'m','choices':[{'index':0,"
        "'message':{'content':'x','annotations':[{'type':'url_citation'}]},"
        "'finish_reason':'stop'}]}",
        "{'id':'c','object':'chat.completion','created':1,'model':'m','choices':[{'index':0,"
        "'message':{'content':null,'tool_calls':[{'type':'function','function':{'name':'f',"
        "'arguments':'{}'}}]},'finish_reason':'stop'}]}",
        "{'id':'c','object':'chat.completion','created':1,'model':'m','choices':[{'index':0,"
        "'message':{'content':null,'tool_calls':[{'id':'x','type':'custom','custom':{'name':"
        "'f','input':''}}]},'finish_reason':'stop'}]}",
    };
    (void)state;
    q(chat);
    q(legacy);
    /* the wrong kind for the endpoint */
    expect_refused(EP_COMPLETIONS, chat);
    expect_refused(EP_CHAT, legacy);
    expect_refused(EP_EMBEDDINGS, chat);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
        char *s = strdup(bad[i]);
        expect_refused(EP_CHAT, q(s));
        free(s);
    }
    /* legacy choice without text */
    {
        char s[] = "{'id':'c','object':'text_completion','created':1,'model':'m','choices':[{"
                   "'index':0,'logprobs':null,'finish_reason':'stop'}]}";
        expect_refused(EP_COMPLETIONS, q(s));
    }
}

static void test_replay_cap(void **state)
{
    char body[] = "{'id':'c','object':'chat.completion','created':1,'model':'m','choices':[{"
                  "'index':0,'message':{'role':'assistant','content':'some text here',"
                  "'refusal':null},'logprobs':null,'finish_reason':'stop'}]}";
    buf_t b;
    size_t need;
    (void)state;
    q(body);
    buf_init(&b, OUT_CAP);
    assert_int_equal(completion_replay_sse(EP_CHAT, body, strlen(body), false, &b), 0);
    need = buf_len(&b);
    buf_free(&b);
    /* one byte short, with something already queued and consumed in front */
    buf_init(&b, need + 2);
    assert_int_equal(buf_puts(&b, "xxabc"), 0);
    buf_consume(&b, 2);
    assert_int_equal(completion_replay_sse(EP_CHAT, body, strlen(body), false, &b), -1);
    assert_int_equal(buf_len(&b), 3);
    assert_memory_equal(buf_ptr(&b), "abc", 3);
    buf_free(&b);
    /* exactly enough */
    buf_init(&b, need + 3);
    assert_int_equal(buf_puts(&b, "abc"), 0);
    assert_int_equal(completion_replay_sse(EP_CHAT, body, strlen(body), false, &b), 0);
    assert_int_equal(buf_len(&b), need + 3);
    buf_free(&b);
}

/* ------------------------------------------------------------- storable */

/* completion_storable is the one rule of both sides of the cache: anything
 * it accepts must replay (both include_usage values). */
static void expect_storable(enum endpoint ep, char *body)
{
    q(body);
    if (!completion_storable(ep, body, strlen(body)))
        fail_msg("not storable: %s", body);
    if (ep != EP_EMBEDDINGS)
        for (int iu = 0; iu < 2; iu++)
            free(replay(ep, body, iu));
}

static void expect_not_storable(enum endpoint ep, const char *body)
{
    char *s = strdup(body);
    q(s);
    if (completion_storable(ep, s, strlen(s)))
        fail_msg("storable: %s", s);
    free(s);
}

#define CHAT_OK(created, choices, extra)                                                           \
    "{'id':'c','object':'chat.completion','created':" created ",'model':'m','choices':[" choices   \
    "]" extra "}"
#define CHOICE_OK "{'index':0,'message':{'role':'assistant','content':'x'},'finish_reason':'stop'}"

static void test_storable_accepts_complete_answers(void **state)
{
    char a[] = CHAT_OK("1720000000", CHOICE_OK, "");
    char b[] = CHAT_OK("0", CHOICE_OK ",{'index':1,'message':{'content':'y'},'finish_reason':'length'}",
                       ",'usage':{'prompt_tokens':1,'completion_tokens':2,'total_tokens':3},"
                       "'system_fingerprint':'fp'");
    char c[] = CHAT_OK("1", "{'index':0,'message':{'role':'assistant','content':null,'tool_calls':["
                            "{'id':'t','type':'function','function':{'name':'f','arguments':'{}'}}]},"
                            "'finish_reason':'stop'}", ",'usage':null");
    char d[] = "{'id':'c','object':'text_completion','created':1,'model':'m','choices':[{'text':"
               "'caf\xc3\xa9','index':0,'logprobs':null,'finish_reason':'stop'}]}";
    char e[] = "{'object':'list','data':[{'object':'embedding','index':0,'embedding':[0.5,-1,2e-3]},"
               "{'object':'embedding','index':1,'embedding':'AAAAPw=='}],'model':'e',"
               "'usage':{'prompt_tokens':2,'total_tokens':2}}";
    (void)state;
    expect_storable(EP_CHAT, a);
    expect_storable(EP_CHAT, b);
    expect_storable(EP_CHAT, c);
    expect_storable(EP_COMPLETIONS, d);
    expect_storable(EP_EMBEDDINGS, e);
}

/* The cases fuzzing found, and their neighbours. */
static void test_storable_refuses_what_replay_refuses(void **state)
{
    static const char *const chat_bad[] = {
        /* an upstream created so large it overflows: read as infinity, and
         * what re-serialising the answer made of it */
        CHAT_OK("1e400", CHOICE_OK, ""),
        CHAT_OK("null", CHOICE_OK, ""),
        CHAT_OK("1e300", CHOICE_OK, ""),
        CHAT_OK("9007199254740993", CHOICE_OK, ""),
        CHAT_OK("-1", CHOICE_OK, ""),
        CHAT_OK("1.5", CHOICE_OK, ""),
        CHAT_OK("'1'", CHOICE_OK, ""),
        /* a chat answer without message, or with a non-object one */
        CHAT_OK("1", "{'index':0,'finish_reason':'stop'}", ""),
        CHAT_OK("1", "{'index':0,'message':null,'finish_reason':'stop'}", ""),
        CHAT_OK("1", "{'index':0,'message':'x','finish_reason':'stop'}", ""),
        /* choices that are not objects, none, or not an array */
        CHAT_OK("1", "'x'", ""),
        CHAT_OK("1", "null", ""),
        CHAT_OK("1", "", ""),
        "{'id':'c','object':'chat.completion','created':1,'model':'m','choices':{}}",
        "{'id':'c','object':'chat.completion','created':1,'model':'m'}",
        /* incomplete or not cached finishes: the replay would take them, the
         * cache does not */
        CHAT_OK("1", "{'index':0,'message':{'content':'x'},'finish_reason':'tool_calls'}", ""),
        CHAT_OK("1", "{'index':0,'message':{'content':'x'},'finish_reason':'content_filter'}", ""),
        CHAT_OK("1", "{'index':0,'message':{'content':'x'},'finish_reason':null}", ""),
        CHAT_OK("1", "{'index':0,'message':{'content':'x'}}", ""),
        CHAT_OK("1", CHOICE_OK ",{'index':1,'message':{'content':'y'}}", ""),
        /* usage counts that overflowed (null after re-serialising) */
        CHAT_OK("1", CHOICE_OK, ",'usage':{'prompt_tokens':null,'completion_tokens':1}"),
        CHAT_OK("1", CHOICE_OK, ",'usage':{'prompt_tokens':1e400,'completion_tokens':1}"),
        CHAT_OK("1", CHOICE_OK, ",'usage':{'prompt_tokens':-3,'completion_tokens':1}"),
        CHAT_OK("1", CHOICE_OK, ",'usage':5"),
        /* missing id/model, wrong object */
        "{'object':'chat.completion','created':1,'model':'m','choices':[" CHOICE_OK "]}",
        "{'id':'c','object':'chat.completion','created':1,'choices':[" CHOICE_OK "]}",
        "{'id':'c','object':'text_completion','created':1,'model':'m','choices':[" CHOICE_OK "]}",
        /* not JSON text, not UTF-8, not an object */
        "", "{", "[]", "null",
        CHAT_OK("1", "{'index':0,'message':{'content':'\xff'},'finish_reason':'stop'}", ""),
    };
    static const char *const emb_bad[] = {
        "{'object':'list','data':[],'model':'e'}",
        "{'object':'list','data':[{'index':0,'embedding':[]}],'model':'e'}",
        "{'object':'list','data':[{'index':0,'embedding':[1,null]}],'model':'e'}",
        "{'object':'list','data':[{'index':0,'embedding':[1,1e400]}],'model':'e'}",
        "{'object':'list','data':[{'index':0,'embedding':''}],'model':'e'}",
        "{'object':'list','data':[{'embedding':[1]}],'model':'e'}",
        "{'object':'list','data':['x'],'model':'e'}",
        "{'object':'list','data':[{'index':0,'embedding':[1]}]}",
        "{'data':[{'index':0,'embedding':[1]}],'model':'e'}",
        "{'object':'list','model':'e'}",
    };
    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(chat_bad); i++)
        expect_not_storable(EP_CHAT, chat_bad[i]);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(emb_bad); i++)
        expect_not_storable(EP_EMBEDDINGS, emb_bad[i]);
    /* a chat answer is not an embeddings list, nor the other way round */
    expect_not_storable(EP_EMBEDDINGS, CHAT_OK("1", CHOICE_OK, ""));
    expect_not_storable(EP_COMPLETIONS, CHAT_OK("1", CHOICE_OK, ""));
    expect_not_storable(EP_NONE, CHAT_OK("1", CHOICE_OK, ""));
}

/* A stream whose created overflows, or whose usage counts do, or that cuts a
 * string at \u0000, is not assembled; a stream that ends without a
 * finish_reason on every choice never is either. What is assembled is
 * storable. */
static void test_storable_streams(void **state)
{
    char huge[][EVW] = {
        "{'id':'x','object':'chat.completion.chunk','created':1e400,'model':'m','choices':[{"
        "'index':0,'delta':{'content':'a'},'finish_reason':'stop'}]}",
    };
    char usage[][EVW] = {
        CH("'choices':[{'index':0,'delta':{'content':'a'},'finish_reason':'stop'}]"),
        CH("'choices':[],'usage':{'prompt_tokens':1e400,'completion_tokens':1}"),
    };
    char nul[][EVW] = {
        CH("'choices':[{'index':0,'delta':{'content':'a\\u0000b'},'finish_reason':'stop'}]"),
    };
    char unfinished[][EVW] = {
        CH("'choices':[{'index':0,'delta':{'content':'a'},'finish_reason':'stop'},"
           "{'index':1,'delta':{'content':'b'},'finish_reason':null}]"),
    };
    char ok[][EVW] = {
        CH("'choices':[{'index':0,'delta':{'role':'assistant','content':'a'},'finish_reason':null}]"),
        CH("'choices':[{'index':0,'delta':{'content':'b'},'finish_reason':'length'}]"),
        CH("'choices':[],'usage':{'prompt_tokens':3,'completion_tokens':2,'total_tokens':5}"),
    };
    size_t len = 0;
    char *got;
    (void)state;
    expect_unstorable(EP_CHAT, huge, 1, 0);
    expect_unstorable(EP_CHAT, usage, 2, 1);
    expect_unstorable(EP_CHAT, nul, 1, 0);
    expect_unstorable(EP_CHAT, unfinished, 1, -1);
    got = feed(EP_CHAT, ok, 3, MAX, -1, &len);
    assert_non_null(got);
    assert_true(completion_storable(EP_CHAT, got, len));
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_plain),
        cmocka_unit_test(test_round_trip_empty_content),
        cmocka_unit_test(test_round_trip_utf8),
        cmocka_unit_test(test_round_trip_refusal),
        cmocka_unit_test(test_round_trip_tool_calls),
        cmocka_unit_test(test_round_trip_two_choices),
        cmocka_unit_test(test_round_trip_legacy),
        cmocka_unit_test(test_stream_text_with_usage),
        cmocka_unit_test(test_stream_tool_calls),
        cmocka_unit_test(test_stream_tool_calls_finish_tool_calls),
        cmocka_unit_test(test_stream_two_choices_interleaved),
        cmocka_unit_test(test_stream_refusal),
        cmocka_unit_test(test_stream_azure_filter_and_usage_everywhere),
        cmocka_unit_test(test_stream_legacy),
        cmocka_unit_test(test_stream_split_utf8_bytes),
        cmocka_unit_test(test_unstorable_finish_reasons),
        cmocka_unit_test(test_unstorable_invalid_events),
        cmocka_unit_test(test_unstorable_over_cap),
        cmocka_unit_test(test_unstorable_no_events),
        cmocka_unit_test(test_finish_twice),
        cmocka_unit_test(test_replay_exact_chat),
        cmocka_unit_test(test_replay_usage_not_stored),
        cmocka_unit_test(test_replay_real_openai_body),
        cmocka_unit_test(test_replay_refuses),
        cmocka_unit_test(test_replay_cap),
        cmocka_unit_test(test_storable_accepts_complete_answers),
        cmocka_unit_test(test_storable_refuses_what_replay_refuses),
        cmocka_unit_test(test_storable_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
