/* Unit tests for src/sse.c: event boundaries under arbitrary feed splits,
 * the three line endings, keep-alive comments and data: [DONE]. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/sse.h"

#define MAX_EV 64

typedef struct result {
    sse_event_t ev[MAX_EV];
    size_t n;
} result_t;

/* Feeds s[0..n) in chunks whose sizes come from next_chunk (0 = whole rest),
 * re-feeding the unconsumed rest of a chunk after each event. */
static void run(const char *s, size_t n, size_t (*next_chunk)(void *), void *arg, result_t *r)
{
    sse_scan_t sc;
    size_t off = 0;
    sse_init(&sc);
    r->n = 0;
    while (off < n) {
        size_t len = next_chunk ? next_chunk(arg) : 0, c = 0;
        if (len == 0 || len > n - off)
            len = n - off;
        while (c < len) {
            sse_event_t ev;
            bool got = true;
            size_t used = sse_feed(&sc, s + off + c, len - c, &ev, &got);
            assert_true(used > 0);
            assert_true(used <= len - c);
            c += used;
            if (got) {
                assert_true(r->n < MAX_EV);
                r->ev[r->n++] = ev;
                /* it stops right after the event */
                assert_int_equal(ev.end, off + c);
            } else {
                assert_int_equal(c, len);
            }
        }
        off += len;
        assert_int_equal(sc.pos, off);
    }
}

static size_t one_byte(void *arg)
{
    (void)arg;
    return 1;
}

static size_t random_chunk(void *arg)
{
    unsigned *seed = arg;
    *seed = *seed * 1103515245u + 12345u;
    return 1 + (*seed >> 16) % 13;
}

static void assert_same(const result_t *a, const result_t *b, const char *how)
{
    if (a->n != b->n)
        fail_msg("%s: %zu events, expected %zu", how, b->n, a->n);
    for (size_t i = 0; i < a->n; i++) {
        if (a->ev[i].start != b->ev[i].start || a->ev[i].end != b->ev[i].end ||
            a->ev[i].has_data != b->ev[i].has_data || a->ev[i].is_done != b->ev[i].is_done)
            fail_msg("%s: event %zu is [%llu,%llu) data=%d done=%d, expected [%llu,%llu) "
                     "data=%d done=%d",
                     how, i, (unsigned long long)b->ev[i].start, (unsigned long long)b->ev[i].end,
                     b->ev[i].has_data, b->ev[i].is_done, (unsigned long long)a->ev[i].start,
                     (unsigned long long)a->ev[i].end, a->ev[i].has_data, a->ev[i].is_done);
    }
}

/* Checks that every way of splitting s gives the same events as feeding it
 * whole: byte by byte, every two-piece split, and random chunkings. */
static void check_all_splits(const char *s, size_t n, result_t *whole)
{
    result_t other_buf, *other = &other_buf;
    run(s, n, NULL, NULL, whole);
    run(s, n, one_byte, NULL, other);
    assert_same(whole, other, "byte by byte");
    for (size_t cut = 1; cut < n; cut++) {
        sse_scan_t sc;
        size_t off = 0;
        other->n = 0;
        sse_init(&sc);
        /* first piece s[0..cut), then s[cut..n) */
        for (int piece = 0; piece < 2; piece++) {
            size_t end = piece == 0 ? cut : n;
            while (off < end) {
                sse_event_t ev;
                bool got;
                off += sse_feed(&sc, s + off, end - off, &ev, &got);
                if (got)
                    other->ev[other->n++] = ev;
            }
        }
        assert_same(whole, other, "two pieces");
    }
    for (unsigned seed = 1; seed <= 50; seed++) {
        unsigned st = seed;
        run(s, n, random_chunk, &st, other);
        assert_same(whole, other, "random chunks");
    }
}

typedef struct piece {
    const char *text;
    bool has_data, is_done;
} piece_t;

/* Builds the stream from pieces (one event each, "\n" or "\r" endings) and
 * checks each event's exact [start, end) and flags under every split. */
static void check_pieces(const piece_t *p, size_t np)
{
    char s[2048];
    size_t off[32], n = 0;
    result_t rbuf, *r = &rbuf;
    for (size_t i = 0; i < np; i++) {
        size_t len = strlen(p[i].text);
        off[i] = n;
        memcpy(s + n, p[i].text, len);
        n += len;
    }
    off[np] = n;
    check_all_splits(s, n, r);
    assert_int_equal(r->n, np);
    for (size_t i = 0; i < np; i++) {
        assert_int_equal(r->ev[i].start, off[i]);
        assert_int_equal(r->ev[i].end, off[i + 1]);
        if (r->ev[i].has_data != p[i].has_data || r->ev[i].is_done != p[i].is_done)
            fail_msg("event %zu (%s): data=%d done=%d, expected data=%d done=%d", i, p[i].text,
                     r->ev[i].has_data, r->ev[i].is_done, p[i].has_data, p[i].is_done);
    }
}

static void test_lf_events_and_offsets(void **state)
{
    static const piece_t p[] = {
        {"data: {\"id\":1}\n\n", true, false},
        {"data: {\"id\":2,\"choices\":[{\"delta\":{\"content\":\"hello world\"}}]}\n\n", true,
         false},
        {"data: [DONE]\n\n", true, true},
    };
    (void)state;
    check_pieces(p, 3);
}

static void test_cr_line_endings(void **state)
{
    static const piece_t p[] = {
        {"data: a\r\r", true, false},
        {"event: message\rdata: b\r\r", true, false},
        {"data: [DONE]\r\r", true, true},
    };
    (void)state;
    check_pieces(p, 3);
}

static void test_comment_only_events(void **state)
{
    static const piece_t p[] = {
        {": keep-alive\n\n", false, false},
        {":\n\n", false, false},
        {": ping\n: another comment\n\n", false, false},
        {"event: ping\nid: 7\nretry: 100\n\n", false, false},
        {": c\ndata: x\n\n", true, false},
        {": data: [DONE]\n\n", false, false},
    };
    (void)state;
    check_pieces(p, 6);
}

static void test_done_detection(void **state)
{
    static const piece_t p[] = {
        {"data: [DONE]\n\n", true, true},
        {"data:[DONE]\n\n", true, true},
        {"data: [DONE]x\n\n", true, false},
        {"data: [DONE] \n\n", true, false},
        {"data:  [DONE]\n\n", true, false},
        {"data: [DONE\n\n", true, false},
        {"data: [done]\n\n", true, false},
        {"Data: [DONE]\n\n", false, false},
        {"data: \"[DONE]\"\n\n", true, false},
        {"data: [DONE]xxxxxxxxxxxxxxxxxxxxxxxxxx\n\n", true, false},
        {"event: end\ndata: [DONE]\n\n", true, true},
    };
    (void)state;
    check_pieces(p, sizeof p / sizeof p[0]);
}

static void test_multiline_data(void **state)
{
    static const piece_t p[] = {
        {"data: line one\ndata: line two\ndata: line three\n\n", true, false},
        {"data: [DONE]\ndata: more\n\n", true, false},
        {"id: 1\ndata: {\"a\":\ndata: 1}\n\n", true, false},
    };
    (void)state;
    check_pieces(p, sizeof p / sizeof p[0]);
}

/* The event's data is "x\n[DONE]", which is not the [DONE] sentinel. */
static void test_multiline_data_ending_in_done_is_not_done(void **state)
{
    static const piece_t p[] = {
        {"data: x\ndata: [DONE]\n\n", true, false},
    };
    (void)state;
    check_pieces(p, 1);
}

static void test_long_lines(void **state)
{
    char s[3000];
    result_t rbuf, *r = &rbuf;
    size_t n;
    (void)state;
    memcpy(s, "data: {\"content\":\"", 18);
    memset(s + 18, 'x', 2000);
    memcpy(s + 2018, "\"}\n\ndata: [DONE]\n\n", 18);
    n = 2036;
    check_all_splits(s, n, r);
    assert_int_equal(r->n, 2);
    assert_int_equal(r->ev[0].start, 0);
    assert_int_equal(r->ev[0].end, 2022);
    assert_true(r->ev[0].has_data);
    assert_false(r->ev[0].is_done);
    assert_int_equal(r->ev[1].start, 2022);
    assert_int_equal(r->ev[1].end, 2036);
    assert_true(r->ev[1].is_done);
}

/* \r\n: the event is reported at the CR of the blank line (without waiting
 * for the next byte); the LF that follows belongs to no event and the next
 * event starts after it. */
static void test_crlf_line_endings(void **state)
{
    const char *s = "data: a\r\n\r\n"          /* 0..11 */
                    "event: x\r\ndata: [DONE]\r\n\r\n" /* 11..37 */
                    ": ka\r\n\r\n";            /* 37..45 */
    result_t rbuf, *r = &rbuf;
    (void)state;
    check_all_splits(s, strlen(s), r);
    assert_int_equal(r->n, 3);
    assert_int_equal(r->ev[0].start, 0);
    assert_int_equal(r->ev[0].end, 10);
    assert_true(r->ev[0].has_data);
    assert_false(r->ev[0].is_done);
    assert_int_equal(r->ev[1].start, 11);
    assert_int_equal(r->ev[1].end, 36);
    assert_true(r->ev[1].has_data);
    assert_true(r->ev[1].is_done);
    assert_int_equal(r->ev[2].start, 37);
    assert_int_equal(r->ev[2].end, 44);
    assert_false(r->ev[2].has_data);
}

static void test_mixed_line_endings(void **state)
{
    /* a line ended by \r then one ended by \n, then \r\n: three lines, one event */
    const char *s = "data: a\rdata: b\ndata: [DONE]\r\n\n"
                    "data: c\n\r\n";
    result_t rbuf, *r = &rbuf;
    (void)state;
    check_all_splits(s, strlen(s), r);
    assert_int_equal(r->n, 2);
    assert_int_equal(r->ev[0].start, 0);
    assert_int_equal(r->ev[0].end, 31);
    /* its data is "a\nb\n[DONE]", which is not the end marker */
    assert_false(r->ev[0].is_done);
    assert_int_equal(r->ev[1].start, 31);
    assert_true(r->ev[1].has_data);
    assert_false(r->ev[1].is_done);
}

static void test_incomplete_event_not_reported(void **state)
{
    sse_scan_t sc;
    sse_event_t ev;
    bool got = true;
    const char *a = "data: partial\n", *b = "\n";
    (void)state;
    sse_init(&sc);
    assert_int_equal(sse_feed(&sc, a, strlen(a), &ev, &got), strlen(a));
    assert_false(got);
    assert_int_equal(sse_feed(&sc, "", 0, &ev, &got), 0);
    assert_false(got);
    assert_int_equal(sse_feed(&sc, b, 1, &ev, &got), 1);
    assert_true(got);
    assert_int_equal(ev.start, 0);
    assert_int_equal(ev.end, 15);
    assert_true(ev.has_data);
}

/* Flags belong to one event: they do not leak into the next. */
static void test_flags_reset_between_events(void **state)
{
    static const piece_t p[] = {
        {"data: [DONE]\n\n", true, true},
        {": after\n\n", false, false},
        {"data: x\n\n", true, false},
        {"\n", false, false}, /* a lone blank line */
    };
    (void)state;
    check_pieces(p, 4);
}

static void test_offsets_are_absolute_across_feeds(void **state)
{
    sse_scan_t sc;
    sse_event_t ev;
    bool got;
    const char *ev1 = "data: 1\n\n";
    size_t total = 0;
    (void)state;
    sse_init(&sc);
    for (int i = 0; i < 100; i++) {
        size_t used = sse_feed(&sc, ev1, strlen(ev1), &ev, &got);
        assert_int_equal(used, strlen(ev1));
        assert_true(got);
        assert_int_equal(ev.start, total);
        total += used;
        assert_int_equal(ev.end, total);
    }
}

/* Feeds the whole stream s one byte at a time and in one piece, and returns
 * whether both scans judge every choice finished (they must agree). */
static bool finished(const char *s)
{
    sse_scan_t a, b;
    sse_event_t ev;
    bool got;
    size_t n = strlen(s), off = 0;
    sse_init(&a);
    sse_init(&b);
    for (size_t i = 0; i < n; i++)
        (void)sse_feed(&a, s + i, 1, &ev, &got);
    while (off < n)
        off += sse_feed(&b, s + off, n - off, &ev, &got);
    assert_int_equal(sse_choices_finished(&a), sse_choices_finished(&b));
    return sse_choices_finished(&a);
}

#define CH(idx, fin) "data: {\"id\":\"c\",\"choices\":[{\"index\":" idx ",\"delta\":{\"content\":\"x\"},\"finish_reason\":" fin "}]}\n\n"

static void test_choices_finish_reason(void **state)
{
    (void)state;
    assert_false(finished(""));
    assert_false(finished(CH("0", "null")));
    assert_true(finished(CH("0", "null") CH("0", "\"stop\"")));
    assert_true(finished(CH("0", "\"length\"")));
    /* an empty string is not a reason */
    assert_false(finished(CH("0", "\"\"")));
    /* the usage chunk and [DONE] change nothing */
    assert_true(finished(CH("0", "\"stop\"") "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n"
                         "data: [DONE]\n\n"));
    assert_false(finished("data: {\"choices\":[],\"usage\":{}}\n\n"));
    /* n = 2: both indexes must finish */
    assert_false(finished(CH("0", "null") CH("1", "null") CH("0", "\"stop\"")));
    assert_true(finished(CH("0", "null") CH("1", "null") CH("1", "\"stop\"") CH("0", "\"stop\"")));
    /* several choices in one event; the element's position when "index" is absent */
    assert_true(finished("data: {\"choices\":[{\"index\":0,\"finish_reason\":\"stop\"},"
                         "{\"index\":1,\"finish_reason\":\"stop\"}]}\n\n"));
    assert_false(finished("data: {\"choices\":[{\"finish_reason\":\"stop\"},{\"finish_reason\":null}]}\n\n"));
    /* legacy completions */
    assert_true(finished("data: {\"object\":\"text_completion\",\"choices\":[{\"text\":\"a\",\"index\":0,"
                         "\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n"));
    /* an index past the cap never finishes */
    assert_false(finished(CH("128", "\"stop\"")));
    assert_false(finished(CH("-1", "\"stop\"")));
    assert_true(finished(CH("127", "\"stop\"")));
}

/* Only the top-level choices' own keys count. */
static void test_choices_ignore_nested_and_strings(void **state)
{
    (void)state;
    /* a tool call's "index" is not a choice index */
    assert_true(finished("data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":3,"
                         "\"function\":{\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}\n\n" CH(
                             "0", "\"tool_calls\"")));
    /* the words inside content or an escaped key do nothing */
    assert_false(finished("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                          "\"\\\"finish_reason\\\":\\\"stop\\\"\"},\"finish_reason\":null}]}\n\n"));
    assert_false(finished("data: {\"choices\":[{\"index\":0,\"fin\\u0069sh_reason\":\"stop\"}]}\n\n"));
    /* a nested "finish_reason" (not the choice's own) does not count */
    assert_false(finished("data: {\"choices\":[{\"index\":0,\"x\":{\"finish_reason\":\"stop\"},"
                          "\"finish_reason\":null}]}\n\n"));
    /* "choices" below the top level is not the choices array */
    assert_false(finished("data: {\"x\":{\"choices\":[{\"index\":0,\"finish_reason\":\"stop\"}]}}\n\n"));
    /* data split over two data: lines; CRLF line ends */
    assert_true(finished("data: {\"choices\":[{\"index\":0,\r\ndata: \"finish_reason\":\"stop\"}]}\r\n\r\n"));
    /* long content strings (skipped eight bytes at a time) with escapes,
     * quotes, multi-byte UTF-8 and a key-like text at every alignment */
    for (int pad = 0; pad < 9; pad++) {
        char ev[512];
        snprintf(ev, sizeof ev,
                 "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%.*s"
                 "h\u00e9llo w\xc3\xb6rld, a long \\\"quoted\\\" part\\n\\\\ and "
                 "\\\"finish_reason\\\":\\\"stop\\\" more text here\"},"
                 "\"finish_reason\":%s}]}\n\n",
                 pad, "abcdefghi", "null");
        assert_false(finished(ev));
        snprintf(ev, sizeof ev,
                 "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%.*s"
                 "twenty-five plain bytes..\"},\"finish_reason\":\"stop\"}]}\n\n",
                 pad, "abcdefghi");
        assert_true(finished(ev));
    }
    /* garbage and unbalanced JSON do not crash and do not finish */
    assert_false(finished("data: }}]]{{[[\"\n\ndata: {\"choices\":[{\"index\":0\n\n"));
    assert_false(finished("data: not json\n\n"));
}

static void test_in_event(void **state)
{
    sse_scan_t sc;
    sse_event_t ev;
    bool got;
    const char *whole = "data: {\"a\":1}\r\n\r\n", *part = "data: {\"a\"";
    (void)state;
    sse_init(&sc);
    assert_false(sse_in_event(&sc));
    for (size_t off = 0; off < strlen(whole);)
        off += sse_feed(&sc, whole + off, strlen(whole) - off, &ev, &got);
    assert_false(sse_in_event(&sc));
    (void)sse_feed(&sc, part, strlen(part), &ev, &got);
    assert_true(sse_in_event(&sc));
    (void)sse_feed(&sc, "}\n", 2, &ev, &got);
    assert_true(sse_in_event(&sc)); /* lines without the blank line */
    (void)sse_feed(&sc, "\n", 1, &ev, &got);
    assert_false(sse_in_event(&sc));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lf_events_and_offsets),
        cmocka_unit_test(test_cr_line_endings),
        cmocka_unit_test(test_crlf_line_endings),
        cmocka_unit_test(test_mixed_line_endings),
        cmocka_unit_test(test_comment_only_events),
        cmocka_unit_test(test_done_detection),
        cmocka_unit_test(test_multiline_data),
        cmocka_unit_test(test_multiline_data_ending_in_done_is_not_done),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_incomplete_event_not_reported),
        cmocka_unit_test(test_flags_reset_between_events),
        cmocka_unit_test(test_offsets_are_absolute_across_feeds),
        cmocka_unit_test(test_choices_finish_reason),
        cmocka_unit_test(test_choices_ignore_nested_and_strings),
        cmocka_unit_test(test_in_event),
    };
    return cmocka_run_group_tests_name("sse", tests, NULL, NULL);
}
