/* Unit tests for src/prompt.c: the text of each scope (a single piece is
 * borrowed from the cJSON tree, several are joined with '\n'), token and
 * script statistics per scope (sums of per-message estimates, chat overhead
 * for the conversation), language, keyword hits, the caching of all of
 * these, and the request shape read by prompt_init. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "route/keywords.h"
#include "route/prompt.h"
#include "route/textstat.h"

static cJSON *parse(const char *json)
{
    cJSON *root = cJSON_Parse(json);
    if (root == NULL)
        fail_msg("test bug: invalid JSON: %s", json);
    return root;
}

/* The content string of message i of root. */
static const char *content_of(const cJSON *root, int i)
{
    const cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "messages"), i);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
    assert_true(cJSON_IsString(c));
    return c->valuestring;
}

static void expect_text(prompt_t *p, enum scope sc, const char *want)
{
    const char *t = NULL;
    size_t n = 99;
    prompt_text(p, sc, &t, &n);
    assert_non_null(t);
    if (n != strlen(want) || memcmp(t, want, n) != 0)
        fail_msg("scope %s: text \"%.*s\" (%zu bytes), expected \"%s\"", prompt_scope_name(sc),
                 (int)n, t, n, want);
}

static const char CHAT[] = "{\"model\":\"auto\",\"messages\":["
                           "{\"role\":\"system\",\"content\":\"Be terse.\"},"
                           "{\"role\":\"user\",\"content\":\"first question\"},"
                           "{\"role\":\"assistant\",\"content\":\"an answer\"},"
                           "{\"role\":\"developer\",\"content\":\"Use metric units.\"},"
                           "{\"role\":\"tool\",\"content\":\"tool output\"},"
                           "{\"role\":\"user\",\"content\":\"second question\"}]}";

/* ---- scope names ---- */

static void test_scope_names(void **state)
{
    static const char *const names[SCOPE_COUNT] = {"last_user", "user", "system", "conversation"};
    (void)state;
    for (int i = 0; i < SCOPE_COUNT; i++) {
        assert_string_equal(prompt_scope_name((enum scope)i), names[i]);
        assert_int_equal(prompt_scope_parse(names[i]), i);
    }
    assert_int_equal(SCOPE_LAST_USER, 0); /* the default scope of a condition */
    assert_int_equal(prompt_scope_parse("User"), -1);
    assert_int_equal(prompt_scope_parse("last-user"), -1);
    assert_int_equal(prompt_scope_parse(""), -1);
    assert_int_equal(prompt_scope_parse("assistant"), -1);
}

/* ---- text ---- */

static void test_text_per_scope(void **state)
{
    cJSON *root = parse(CHAT);
    prompt_t p;
    const char *t, *t2;
    size_t n, n2;
    (void)state;
    prompt_init(&p, root, EP_CHAT);
    expect_text(&p, SCOPE_LAST_USER, "second question");
    expect_text(&p, SCOPE_USER, "first question\nsecond question");
    expect_text(&p, SCOPE_SYSTEM, "Be terse.\nUse metric units.");
    expect_text(
        &p, SCOPE_CONVERSATION,
        "Be terse.\nfirst question\nan answer\nUse metric units.\ntool output\nsecond question");

    /* one piece: borrowed from the cJSON tree, nothing owned */
    prompt_text(&p, SCOPE_LAST_USER, &t, &n);
    assert_ptr_equal(t, content_of(root, 5));
    assert_null(p.s[SCOPE_LAST_USER].owned_text);
    /* several: joined into an owned buffer */
    prompt_text(&p, SCOPE_USER, &t, &n);
    assert_non_null(p.s[SCOPE_USER].owned_text);
    assert_ptr_equal(t, p.s[SCOPE_USER].owned_text);
    assert_non_null(p.s[SCOPE_CONVERSATION].owned_text);

    /* cached: the same pointer again */
    assert_true(p.s[SCOPE_USER].have_text);
    prompt_text(&p, SCOPE_USER, &t2, &n2);
    assert_ptr_equal(t, t2);
    assert_int_equal(n, n2);
    prompt_free(&p);
    cJSON_Delete(root);
}

static void test_text_single_system_is_borrowed(void **state)
{
    cJSON *root = parse("{\"messages\":[{\"role\":\"developer\",\"content\":\"dev\"},"
                        "{\"role\":\"user\",\"content\":\"\"},"
                        "{\"role\":\"user\",\"content\":\"only\"}]}");
    prompt_t p;
    const char *t;
    size_t n;
    (void)state;
    prompt_init(&p, root, EP_CHAT);
    prompt_text(&p, SCOPE_SYSTEM, &t, &n);
    assert_ptr_equal(t, content_of(root, 0));
    assert_int_equal(n, 3);
    /* the empty user message adds no piece: "only" alone, borrowed */
    prompt_text(&p, SCOPE_USER, &t, &n);
    assert_ptr_equal(t, content_of(root, 2));
    assert_null(p.s[SCOPE_USER].owned_text);
    expect_text(&p, SCOPE_CONVERSATION, "dev\nonly");
    prompt_free(&p);
    cJSON_Delete(root);
}

static void test_text_last_user_is_last_user_message(void **state)
{
    prompt_t p;
    cJSON *root;
    (void)state;
    /* the last user message, even when an assistant message follows it */
    root = parse("{\"messages\":[{\"role\":\"user\",\"content\":\"one\"},"
                 "{\"role\":\"user\",\"content\":\"two\"},"
                 "{\"role\":\"assistant\",\"content\":\"three\"}]}");
    prompt_init(&p, root, EP_CHAT);
    expect_text(&p, SCOPE_LAST_USER, "two");
    prompt_free(&p);
    cJSON_Delete(root);

    /* an empty last user message: empty, not the one before */
    root = parse("{\"messages\":[{\"role\":\"user\",\"content\":\"one\"},"
                 "{\"role\":\"user\",\"content\":null}]}");
    prompt_init(&p, root, EP_CHAT);
    expect_text(&p, SCOPE_LAST_USER, "");
    expect_text(&p, SCOPE_USER, "one");
    prompt_free(&p);
    cJSON_Delete(root);

    /* roles are case-sensitive; no role is no scope but the conversation */
    root = parse("{\"messages\":[{\"role\":\"User\",\"content\":\"a\"},"
                 "{\"role\":\"SYSTEM\",\"content\":\"b\"},{\"content\":\"c\"},\"str\",7]}");
    prompt_init(&p, root, EP_CHAT);
    expect_text(&p, SCOPE_LAST_USER, "");
    expect_text(&p, SCOPE_USER, "");
    expect_text(&p, SCOPE_SYSTEM, "");
    expect_text(&p, SCOPE_CONVERSATION, "a\nb\nc");
    assert_int_equal(p.n_messages, 5);
    prompt_free(&p);
    cJSON_Delete(root);
}

static void test_text_content_parts(void **state)
{
    cJSON *root =
        parse("{\"messages\":["
              "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"part one\"},"
              "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:,\"}},{\"type\":\"text\","
              "\"text\":\"\"},"
              "{\"type\":\"text\",\"text\":\"part "
              "two\"},{\"type\":\"text\",\"text\":5},{\"text\":\"untyped\"}]},"
              "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"lonely\"}]}]}");
    prompt_t p;
    const char *t;
    size_t n;
    const cJSON *lonely;
    (void)state;
    prompt_init(&p, root, EP_CHAT);
    /* one text part: borrowed from the part */
    lonely = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(
            cJSON_GetObjectItemCaseSensitive(
                cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "messages"), 1),
                "content"),
            0),
        "text");
    prompt_text(&p, SCOPE_LAST_USER, &t, &n);
    assert_ptr_equal(t, lonely->valuestring);
    assert_int_equal(n, 6);
    /* text parts of a message joined with '\n' (empty and non-string ones
     * skipped; a part with "text" counts whatever its type) */
    expect_text(&p, SCOPE_USER, "part one\npart two\nuntyped\nlonely");
    expect_text(&p, SCOPE_CONVERSATION, "part one\npart two\nuntyped\nlonely");
    assert_true(p.images);
    prompt_free(&p);
    cJSON_Delete(root);
}

static void test_text_empty_requests(void **state)
{
    static const char *const bodies[] = {
        "{\"model\":\"auto\"}",
        "{\"messages\":[]}",
        "{\"messages\":null}",
        "{\"messages\":[{\"role\":\"user\",\"content\":null},{\"role\":\"user\"},"
        "{\"role\":\"user\",\"content\":[]},{\"role\":\"user\",\"content\":{}},"
        "{\"role\":\"user\",\"content\":\"\"}]}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        cJSON *root = parse(bodies[i]);
        prompt_t p;
        prompt_init(&p, root, EP_CHAT);
        for (int sc = 0; sc < SCOPE_COUNT; sc++) {
            expect_text(&p, (enum scope)sc, "");
            assert_int_equal(prompt_stats(&p, (enum scope)sc)->bytes, 0);
            assert_string_equal(prompt_language(&p, (enum scope)sc), "und");
        }
        assert_int_equal(prompt_stats(&p, SCOPE_LAST_USER)->tokens, 0);
        assert_int_equal(prompt_stats(&p, SCOPE_CONVERSATION)->tokens,
                         ts_chat_overhead(p.n_messages));
        prompt_free(&p);
        cJSON_Delete(root);
    }
}

static void test_text_completions_and_embeddings(void **state)
{
    prompt_t p;
    cJSON *root;
    const char *t;
    size_t n;
    (void)state;
    root = parse("{\"model\":\"auto\",\"prompt\":\"Once upon a time\",\"messages\":[{\"role\":"
                 "\"system\",\"content\":\"ignored\"}]}");
    prompt_init(&p, root, EP_COMPLETIONS);
    prompt_text(&p, SCOPE_LAST_USER, &t, &n);
    assert_ptr_equal(t, cJSON_GetObjectItem(root, "prompt")->valuestring);
    expect_text(&p, SCOPE_USER, "Once upon a time");
    expect_text(&p, SCOPE_CONVERSATION, "Once upon a time");
    expect_text(&p, SCOPE_SYSTEM, ""); /* no system scope outside chat */
    /* no chat overhead: 16 bytes = 4 tokens in every scope */
    assert_int_equal(prompt_stats(&p, SCOPE_CONVERSATION)->tokens, 4);
    assert_int_equal(prompt_stats(&p, SCOPE_LAST_USER)->tokens, 4);
    assert_int_equal(p.n_messages, 1);
    prompt_free(&p);
    cJSON_Delete(root);

    root = parse("{\"prompt\":[\"alpha\",[1,2],\"beta\",null,\"\"]}");
    prompt_init(&p, root, EP_COMPLETIONS);
    expect_text(&p, SCOPE_USER, "alpha\nbeta");
    expect_text(&p, SCOPE_CONVERSATION, "alpha\nbeta");
    assert_int_equal(prompt_stats(&p, SCOPE_USER)->bytes, 9);
    prompt_free(&p);
    cJSON_Delete(root);

    root = parse("{\"input\":[\"one\",\"two\"],\"prompt\":\"not this\"}");
    prompt_init(&p, root, EP_EMBEDDINGS);
    expect_text(&p, SCOPE_USER, "one\ntwo");
    expect_text(&p, SCOPE_SYSTEM, "");
    prompt_free(&p);
    cJSON_Delete(root);

    root = parse("{\"input\":[[101,202,303]]}");
    prompt_init(&p, root, EP_EMBEDDINGS);
    expect_text(&p, SCOPE_USER, "");
    expect_text(&p, SCOPE_CONVERSATION, "");
    assert_int_equal(prompt_stats(&p, SCOPE_CONVERSATION)->tokens, 0);
    prompt_free(&p);
    cJSON_Delete(root);
}

/* docs/routing.md: "For /v1/completions the text is `prompt`, for
 * /v1/embeddings `input`" — the default scope last_user included: a prompt
 * list is one request's text, not a conversation whose last turn counts. */
static void test_text_completions_list_last_user(void **state)
{
    cJSON *root = parse("{\"prompt\":[\"alpha\",\"beta\"]}");
    prompt_t p;
    const char *t;
    size_t n;
    char last[64];
    uint32_t last_tokens, user_tokens;
    (void)state;
    prompt_init(&p, root, EP_COMPLETIONS);
    expect_text(&p, SCOPE_USER, "alpha\nbeta");
    prompt_text(&p, SCOPE_LAST_USER, &t, &n);
    snprintf(last, sizeof last, "%.*s", (int)n, t);
    last_tokens = prompt_stats(&p, SCOPE_LAST_USER)->tokens;
    user_tokens = prompt_stats(&p, SCOPE_USER)->tokens;
    /* free first: a failure below must not leak */
    prompt_free(&p);
    cJSON_Delete(root);
    assert_string_equal(last, "alpha\nbeta");
    assert_int_equal(last_tokens, user_tokens);
}

/* ---- statistics ---- */

static void test_stats_per_scope(void **state)
{
    cJSON *root = parse(CHAT);
    prompt_t p;
    const ts_stats_t *st;
    (void)state;
    prompt_init(&p, root, EP_CHAT);
    /* "second question": 15 ASCII bytes, 14 letters, 4 tokens */
    st = prompt_stats(&p, SCOPE_LAST_USER);
    assert_int_equal(st->bytes, 15);
    assert_int_equal(st->codepoints, 15);
    assert_int_equal(st->letters[TS_SCRIPT_LATIN], 14);
    assert_int_equal(st->tokens, 4);
    /* user: sum of "first question" (4) and "second question" (4) */
    st = prompt_stats(&p, SCOPE_USER);
    assert_int_equal(st->bytes, 14 + 15);
    assert_int_equal(st->tokens, 8);
    /* system: "Be terse." (3) + "Use metric units." (5) */
    st = prompt_stats(&p, SCOPE_SYSTEM);
    assert_int_equal(st->tokens, 3 + 5);
    assert_int_equal(st->letters[TS_SCRIPT_LATIN], 7 + 14);
    /* conversation: every message + 3 per message + 3 */
    st = prompt_stats(&p, SCOPE_CONVERSATION);
    assert_int_equal(st->tokens, 3 + 4 + 3 + 5 + 3 + 4 + 6 * 3 + 3);
    assert_int_equal(st->bytes, 9 + 14 + 9 + 17 + 11 + 15);
    assert_int_equal(ts_dominant_script(st), TS_SCRIPT_LATIN);
    prompt_free(&p);
    cJSON_Delete(root);
}

static void test_stats_scripts(void **state)
{
    /* system in Chinese, user in Russian */
    cJSON *root = parse("{\"messages\":[{\"role\":\"system\",\"content\":"
                        "\"\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c\"},"
                        "{\"role\":\"user\",\"content\":"
                        "\"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 ok\"}]}");
    prompt_t p;
    const ts_stats_t *st;
    (void)state;
    prompt_init(&p, root, EP_CHAT);
    st = prompt_stats(&p, SCOPE_SYSTEM);
    assert_int_equal(st->letters[TS_SCRIPT_HAN], 4);
    assert_int_equal(st->codepoints, 4);
    assert_int_equal(st->bytes, 12);
    assert_true(st->tokens >= 4 && st->tokens <= 8); /* about one per character */
    assert_int_equal(ts_dominant_script(st), TS_SCRIPT_HAN);
    st = prompt_stats(&p, SCOPE_LAST_USER);
    assert_int_equal(st->letters[TS_SCRIPT_CYRILLIC], 6);
    assert_int_equal(st->letters[TS_SCRIPT_LATIN], 2);
    assert_int_equal(ts_dominant_script(st), TS_SCRIPT_CYRILLIC);
    st = prompt_stats(&p, SCOPE_CONVERSATION);
    assert_int_equal(st->letters[TS_SCRIPT_HAN], 4);
    assert_int_equal(st->letters[TS_SCRIPT_CYRILLIC], 6);
    assert_int_equal(ts_dominant_script(st), TS_SCRIPT_CYRILLIC);
    prompt_free(&p);
    cJSON_Delete(root);
}

static void test_stats_cached(void **state)
{
    cJSON *root = parse(CHAT);
    prompt_t p;
    const ts_stats_t *a, *b;
    (void)state;
    prompt_init(&p, root, EP_CHAT);
    assert_false(p.s[SCOPE_USER].have_stats);
    a = prompt_stats(&p, SCOPE_USER);
    assert_true(p.s[SCOPE_USER].have_stats);
    assert_ptr_equal(a, &p.s[SCOPE_USER].st);
    /* a second call returns the cached value: it does not rescan */
    p.s[SCOPE_USER].st.tokens = 12345;
    b = prompt_stats(&p, SCOPE_USER);
    assert_ptr_equal(a, b);
    assert_int_equal(b->tokens, 12345);
    /* messages are scanned once, whatever the number of scopes they are in:
     * the user messages' stats are reused by the conversation */
    for (size_t i = 0; i < p.n_pieces; i++)
        if (i == 1 || i == 5)
            assert_true(p.pieces[i].have_stats);
        else
            assert_false(p.pieces[i].have_stats);
    p.pieces[1].st.tokens = 1000;
    assert_int_equal(prompt_stats(&p, SCOPE_CONVERSATION)->tokens,
                     3 + 1000 + 3 + 5 + 3 + 4 + 6 * 3 + 3);
    for (size_t i = 0; i < p.n_pieces; i++)
        assert_true(p.pieces[i].have_stats);
    prompt_free(&p);
    cJSON_Delete(root);
}

/* ---- language ---- */

static void test_language(void **state)
{
    cJSON *root = parse("{\"messages\":["
                        "{\"role\":\"system\",\"content\":\"Du bist ein hilfreicher Assistent und "
                        "antwortest immer auf Deutsch, wenn der Nutzer das will.\"},"
                        "{\"role\":\"user\",\"content\":\"the cat\"},"
                        "{\"role\":\"user\",\"content\":\"is here\"}]}");
    prompt_t p;
    const char *l;
    (void)state;
    prompt_init(&p, root, EP_CHAT);
    assert_string_equal(prompt_language(&p, SCOPE_SYSTEM), "de");
    /* one stop word is too little evidence... */
    assert_string_equal(prompt_language(&p, SCOPE_LAST_USER), "und");
    /* ...two across the user messages are enough */
    assert_string_equal(prompt_language(&p, SCOPE_USER), "en");
    l = prompt_language(&p, SCOPE_USER);
    assert_true(p.s[SCOPE_USER].have_lang);
    assert_ptr_equal(l, p.s[SCOPE_USER].lang);
    /* cached */
    p.s[SCOPE_USER].lang = "xx";
    assert_string_equal(prompt_language(&p, SCOPE_USER), "xx");
    prompt_free(&p);
    cJSON_Delete(root);

    root = parse(
        "{\"messages\":[{\"role\":\"user\",\"content\":\"\xe3\x83\xaa\xe3\x82\xb9\xe3\x83\x88"
        "\xe3\x81\xa8\xe3\x82\xbf\xe3\x83\x97\xe3\x83\xab\xe3\x81\xae\xe9\x81\x95\xe3\x81\x84\"},"
        "{\"role\":\"system\",\"content\":"
        "\"\xec\x95\x88\xeb\x85\x95\xed\x95\x98\xec\x84\xb8\xec\x9a\x94\"}]}");
    prompt_init(&p, root, EP_CHAT);
    assert_string_equal(prompt_language(&p, SCOPE_LAST_USER), "ja");
    assert_string_equal(prompt_language(&p, SCOPE_SYSTEM), "ko");
    prompt_free(&p);
    cJSON_Delete(root);
}

/* ---- keywords ---- */

static kwset_t *kws(const char *const *words, size_t n)
{
    kwset_t *ks = kwset_new();
    for (size_t i = 0; i < n; i++)
        assert_int_equal(kwset_add(ks, words[i], strlen(words[i])), (int)i);
    assert_int_equal(kwset_compile(ks), 0);
    return ks;
}

#define BIT(i) ((uint64_t)1 << (i))

static void test_keywords_per_scope(void **state)
{
    static const char *const words[] = {"alpha", "beta", "gamma", "delta", "alp"};
    kwset_t *ks = kws(words, 5);
    cJSON *root = parse("{\"messages\":["
                        "{\"role\":\"system\",\"content\":\"gamma rules\"},"
                        "{\"role\":\"user\",\"content\":\"Alpha first\"},"
                        "{\"role\":\"assistant\",\"content\":\"delta\"},"
                        "{\"role\":\"user\",\"content\":\"then BETA\"},"
                        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"alp\"},"
                        "{\"type\":\"text\",\"text\":\"ha\"}]}]}");
    prompt_t p;
    const uint64_t *h, *h2;
    (void)state;
    prompt_init(&p, root, EP_CHAT);
    /* the last user message: "alp\nha" has alp but not alpha */
    h = prompt_keywords(&p, SCOPE_LAST_USER, ks);
    assert_int_equal(h[0], BIT(4));
    h = prompt_keywords(&p, SCOPE_USER, ks);
    assert_int_equal(h[0], BIT(0) | BIT(1) | BIT(4));
    h = prompt_keywords(&p, SCOPE_SYSTEM, ks);
    assert_int_equal(h[0], BIT(2));
    h = prompt_keywords(&p, SCOPE_CONVERSATION, ks);
    assert_int_equal(h[0], BIT(0) | BIT(1) | BIT(2) | BIT(3) | BIT(4));
    /* cached: the same bits, not rescanned */
    h = prompt_keywords(&p, SCOPE_USER, ks);
    assert_true(p.s[SCOPE_USER].have_kw);
    assert_ptr_equal(h, p.s[SCOPE_USER].kw);
    p.s[SCOPE_USER].kw[0] |= BIT(63);
    h2 = prompt_keywords(&p, SCOPE_USER, ks);
    assert_ptr_equal(h, h2);
    assert_true((h2[0] & BIT(63)) != 0);
    for (size_t i = 0; i < p.n_pieces; i++)
        assert_true(p.pieces[i].have_kw);
    prompt_free(&p);
    cJSON_Delete(root);
    kwset_free(ks);
}

static void test_keywords_wide_bitset(void **state)
{
    char names[130][16];
    const char *words[130];
    kwset_t *ks;
    cJSON *root;
    prompt_t p;
    const uint64_t *h;
    (void)state;
    for (int i = 0; i < 130; i++) {
        snprintf(names[i], sizeof names[i], "kw%d", i);
        words[i] = names[i];
    }
    ks = kws(words, 130);
    root = parse("{\"prompt\":[\"kw0 and kw64\",\"kw129\"]}");
    prompt_init(&p, root, EP_COMPLETIONS);
    h = prompt_keywords(&p, SCOPE_USER, ks);
    assert_int_equal(h[0], BIT(0));
    assert_int_equal(h[1], BIT(0));
    assert_int_equal(h[2], BIT(1));
    assert_true(p.kw_words >= 3);
    h = prompt_keywords(&p, SCOPE_SYSTEM, ks);
    assert_int_equal(h[0] | h[1] | h[2], 0);
    prompt_free(&p);
    cJSON_Delete(root);
    kwset_free(ks);
}

/* ---- shape ---- */

static prompt_t shape(const char *json, enum endpoint ep, cJSON **root)
{
    prompt_t p;
    *root = parse(json);
    prompt_init(&p, *root, ep);
    return p;
}

static void test_shape_defaults(void **state)
{
    cJSON *root;
    prompt_t p = shape("{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                       EP_CHAT, &root);
    (void)state;
    assert_ptr_equal(p.root, root);
    assert_int_equal(p.ep, EP_CHAT);
    assert_int_equal(p.n_messages, 1);
    assert_false(p.tools);
    assert_false(p.images);
    assert_false(p.audio);
    assert_false(p.stream);
    assert_null(p.response_format);
    assert_int_equal(p.max_output, -1);
    /* nothing computed yet */
    assert_false(p.have_pieces);
    for (int sc = 0; sc < SCOPE_COUNT; sc++)
        assert_false(p.s[sc].have_text || p.s[sc].have_stats || p.s[sc].have_lang ||
                     p.s[sc].have_kw);
    prompt_free(&p);
    cJSON_Delete(root);
}

static void test_shape_tools(void **state)
{
    static const struct {
        const char *extra;
        bool tools;
    } cases[] = {
        {",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]", true},
        {",\"tools\":[]", false},
        {",\"tools\":null", false},
        {",\"tools\":{\"a\":1}", false},
        {",\"functions\":[{\"name\":\"f\"}]", true},
        {",\"functions\":[]", false},
        {",\"tools\":[],\"functions\":[{\"name\":\"f\"}]", true},
        {",\"tool_choice\":\"auto\"", false},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[512];
        cJSON *root;
        prompt_t p;
        snprintf(json, sizeof json, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]%s}",
                 cases[i].extra);
        p = shape(json, EP_CHAT, &root);
        if (p.tools != cases[i].tools)
            fail_msg("tools %d for %s", p.tools, json);
        prompt_free(&p);
        cJSON_Delete(root);
    }
}

static void test_shape_images_audio(void **state)
{
    static const struct {
        const char *content;
        bool images, audio;
    } cases[] = {
        {"[{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}}]", true, false},
        {"[{\"type\":\"image\",\"image\":\"...\"}]", true, false},
        {"[{\"type\":\"input_audio\",\"input_audio\":{\"data\":\"AA\",\"format\":\"wav\"}}]", false,
         true},
        {"[{\"type\":\"audio\"}]", false, true},
        {"[{\"type\":\"text\",\"text\":\"image_url\"}]", false, false},
        {"\"an image_url in text\"", false, false},
        {"[{\"image_url\":{\"url\":\"x\"}}]", false, false}, /* no type */
        {"[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image_url\"},{\"type\":\"input_audio\"}]",
         true, true},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[512];
        cJSON *root;
        prompt_t p;
        snprintf(json, sizeof json,
                 "{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\","
                 "\"content\":%s},{\"role\":\"user\",\"content\":\"later\"}]}",
                 cases[i].content);
        p = shape(json, EP_CHAT, &root);
        if (p.images != cases[i].images || p.audio != cases[i].audio)
            fail_msg("images %d audio %d for %s", p.images, p.audio, cases[i].content);
        assert_int_equal(p.n_messages, 3);
        prompt_free(&p);
        cJSON_Delete(root);
    }
}

static void test_shape_response_format_and_stream(void **state)
{
    cJSON *root;
    prompt_t p;
    (void)state;
    p = shape("{\"messages\":[],\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{}},"
              "\"stream\":true}",
              EP_CHAT, &root);
    assert_non_null(p.response_format);
    assert_string_equal(p.response_format, "json_schema");
    assert_true(p.stream);
    assert_int_equal(p.n_messages, 0);
    prompt_free(&p);
    cJSON_Delete(root);

    p = shape("{\"messages\":[],\"response_format\":{\"type\":\"json_object\"},\"stream\":false}",
              EP_CHAT, &root);
    assert_string_equal(p.response_format, "json_object");
    assert_false(p.stream);
    prompt_free(&p);
    cJSON_Delete(root);

    p = shape("{\"messages\":[],\"response_format\":\"json_object\",\"stream\":\"true\"}", EP_CHAT,
              &root);
    assert_null(p.response_format);
    assert_false(p.stream);
    prompt_free(&p);
    cJSON_Delete(root);

    p = shape("{\"messages\":[],\"response_format\":{\"type\":7},\"stream\":1}", EP_CHAT, &root);
    assert_null(p.response_format);
    assert_false(p.stream);
    prompt_free(&p);
    cJSON_Delete(root);

    /* completions: stream read, no response_format, tools or messages */
    p = shape("{\"prompt\":\"x\",\"stream\":true,\"response_format\":{\"type\":\"json_object\"},"
              "\"tools\":[{}],\"messages\":[{},{}]}",
              EP_COMPLETIONS, &root);
    assert_true(p.stream);
    assert_null(p.response_format);
    assert_false(p.tools);
    assert_int_equal(p.n_messages, 1);
    prompt_free(&p);
    cJSON_Delete(root);
}

static void test_shape_max_output(void **state)
{
    static const struct {
        const char *fields;
        int64_t want;
    } cases[] = {
        {"", -1},
        {",\"max_tokens\":256", 256},
        {",\"max_completion_tokens\":512", 512},
        {",\"max_completion_tokens\":512,\"max_tokens\":256", 512},
        {",\"max_tokens\":256,\"max_completion_tokens\":512", 512},
        {",\"max_completion_tokens\":null,\"max_tokens\":256", 256},
        {",\"max_completion_tokens\":\"512\",\"max_tokens\":256", 256},
        {",\"max_tokens\":0", 0},
        {",\"max_tokens\":-5", -1},
        {",\"max_tokens\":10.7", 10},
        {",\"max_tokens\":1e30", 1000000000000000LL},
        {",\"max_tokens\":\"100\"", -1},
        {",\"max_tokens\":true", -1},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[256];
        cJSON *root;
        prompt_t p;
        snprintf(json, sizeof json, "{\"messages\":[]%s}", cases[i].fields);
        p = shape(json, EP_CHAT, &root);
        if (p.max_output != cases[i].want)
            fail_msg("max_output %lld, expected %lld, for %s", (long long)p.max_output,
                     (long long)cases[i].want, json);
        prompt_free(&p);
        cJSON_Delete(root);
    }
    {
        cJSON *root;
        prompt_t p = shape("{\"prompt\":\"x\",\"max_tokens\":64}", EP_COMPLETIONS, &root);
        assert_int_equal(p.max_output, 64);
        prompt_free(&p);
        cJSON_Delete(root);
    }
}

static void test_shape_top_level_input_audio(void **state)
{
    cJSON *root;
    prompt_t p = shape("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"input_audio\":{}}",
                       EP_CHAT, &root);
    (void)state;
    assert_true(p.audio);
    assert_false(p.images);
    prompt_free(&p);
    cJSON_Delete(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scope_names),
        cmocka_unit_test(test_text_per_scope),
        cmocka_unit_test(test_text_single_system_is_borrowed),
        cmocka_unit_test(test_text_last_user_is_last_user_message),
        cmocka_unit_test(test_text_content_parts),
        cmocka_unit_test(test_text_empty_requests),
        cmocka_unit_test(test_text_completions_and_embeddings),
        cmocka_unit_test(test_text_completions_list_last_user),
        cmocka_unit_test(test_stats_per_scope),
        cmocka_unit_test(test_stats_scripts),
        cmocka_unit_test(test_stats_cached),
        cmocka_unit_test(test_language),
        cmocka_unit_test(test_keywords_per_scope),
        cmocka_unit_test(test_keywords_wide_bitset),
        cmocka_unit_test(test_shape_defaults),
        cmocka_unit_test(test_shape_tools),
        cmocka_unit_test(test_shape_images_audio),
        cmocka_unit_test(test_shape_response_format_and_stream),
        cmocka_unit_test(test_shape_max_output),
        cmocka_unit_test(test_shape_top_level_input_audio),
    };
    return cmocka_run_group_tests_name("prompt", tests, NULL, NULL);
}
