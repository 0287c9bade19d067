/* Unit tests for src/keywords.c: ids and duplicates, ASCII case folding, word
 * boundaries, non-ASCII keywords, overlapping matches, odd bytes in the text,
 * hit bitsets wider than one word, and a randomized cross-check against a
 * naive matcher with the same semantics. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route/keywords.h"

#define MAXKW 200
#define WORDS ((MAXKW + 63) / 64)

/* Builds a compiled set from NUL-terminated keywords; ids follow the order. */
static kwset_t *make_set(const char *const *kws, size_t n)
{
    kwset_t *ks = kwset_new();
    size_t i;
    for (i = 0; i < n; i++)
        assert_true(kwset_add(ks, kws[i], strlen(kws[i])) >= 0);
    assert_int_equal(kwset_compile(ks), 0);
    return ks;
}

/* Scans a NUL-terminated text and returns the hits of keyword ids 0..63 as
 * one word, checking that the return value counts them. */
static uint64_t scan1(const kwset_t *ks, const char *text)
{
    uint64_t hits[WORDS] = {0};
    size_t n = kwset_scan(ks, text, strlen(text), hits);
    assert_int_equal(n, (size_t)__builtin_popcountll(hits[0]));
    return hits[0];
}

#define BIT(i) ((uint64_t)1 << (i))
#define UTIL_LEN(a) (sizeof(a) / sizeof((a)[0]))

static void test_basic_hits(void **state)
{
    static const char *const kws[] = {"prove", "theorem", "write code", "poem"};
    kwset_t *ks = make_set(kws, 4);
    (void)state;
    assert_int_equal(kwset_count(ks), 4);
    assert_int_equal(scan1(ks, "please prove this theorem"), BIT(0) | BIT(1));
    assert_int_equal(scan1(ks, "write code for a poem"), BIT(2) | BIT(3));
    assert_int_equal(scan1(ks, "nothing relevant here"), 0);
    /* a keyword found several times counts once */
    assert_int_equal(scan1(ks, "poem poem poem"), BIT(3));
    kwset_free(ks);
}

static void test_case_insensitive(void **state)
{
    static const char *const kws[] = {"Prove", "sql QUERY"};
    kwset_t *ks = make_set(kws, 2);
    (void)state;
    assert_int_equal(scan1(ks, "PROVE it"), BIT(0));
    assert_int_equal(scan1(ks, "pRoVe it"), BIT(0));
    assert_int_equal(scan1(ks, "an Sql Query please"), BIT(1));
    kwset_free(ks);
}

static void test_no_unicode_case_folding(void **state)
{
    static const char *const kws[] = {"\xc3\xa9t\xc3\xa9"}; /* "été" */
    kwset_t *ks = make_set(kws, 1);
    (void)state;
    assert_int_equal(scan1(ks, "en \xc3\xa9t\xc3\xa9 !"), BIT(0));
    assert_int_equal(scan1(ks, "en \xc3\x89T\xc3\x89 !"), 0); /* "ÉTÉ" */
    kwset_free(ks);
}

static void test_word_boundaries(void **state)
{
    static const char *const kws[] = {"prove"};
    kwset_t *ks = make_set(kws, 1);
    (void)state;
    assert_int_equal(scan1(ks, "prove"), BIT(0));            /* both text edges */
    assert_int_equal(scan1(ks, "please prove it"), BIT(0));
    assert_int_equal(scan1(ks, "Prove: x"), BIT(0));
    assert_int_equal(scan1(ks, "(prove)"), BIT(0));
    assert_int_equal(scan1(ks, "-prove-"), BIT(0));
    assert_int_equal(scan1(ks, "improve"), 0);               /* left */
    assert_int_equal(scan1(ks, "proven"), 0);                /* right */
    assert_int_equal(scan1(ks, "3prove"), 0);                /* digits are word chars */
    assert_int_equal(scan1(ks, "prove2"), 0);
    assert_int_equal(scan1(ks, "_prove"), 0);                /* so is underscore */
    assert_int_equal(scan1(ks, "prove_"), 0);
    assert_int_equal(scan1(ks, "improve then prove"), BIT(0)); /* second occurrence */
    assert_int_equal(scan1(ks, "\xc3\xa9prove"), BIT(0));    /* non-ASCII is a boundary */
    kwset_free(ks);
}

static void test_non_word_edges_need_no_boundary(void **state)
{
    static const char *const kws[] = {"c++", ".net", "node.js"};
    kwset_t *ks = make_set(kws, 3);
    (void)state;
    assert_int_equal(scan1(ks, "in c++ please"), BIT(0));
    assert_int_equal(scan1(ks, "c++11"), BIT(0));   /* right edge '+' needs no boundary */
    assert_int_equal(scan1(ks, "abc++"), 0);        /* left edge 'c' does */
    assert_int_equal(scan1(ks, "asp.net core"), BIT(1));
    assert_int_equal(scan1(ks, ".nets"), 0);
    assert_int_equal(scan1(ks, "use node.js."), BIT(2));
    assert_int_equal(scan1(ks, "node.jsx"), 0);
    kwset_free(ks);
}

static void test_cjk_inside_text(void **state)
{
    static const char *const kws[] = {"\xe8\xad\x89\xe6\x98\x8e", /* 證明 */
                                      "\xe7\xbf\xbb\xe8\xaf\x91"}; /* 翻译 */
    kwset_t *ks = make_set(kws, 2);
    (void)state;
    /* 請證明這個 */
    assert_int_equal(scan1(ks, "\xe8\xab\x8b\xe8\xad\x89\xe6\x98\x8e\xe9\x80\x99\xe5\x80\x8b"), BIT(0));
    /* glued to ASCII letters on both sides */
    assert_int_equal(scan1(ks, "abc\xe8\xad\x89\xe6\x98\x8exyz"), BIT(0));
    /* 請翻译 and 證明 */
    assert_int_equal(scan1(ks, "\xe8\xab\x8b\xe7\xbf\xbb\xe8\xaf\x91" "and\xe8\xad\x89\xe6\x98\x8e"),
                     BIT(0) | BIT(1));
    /* 證 alone, or 證 followed by another character, is no match */
    assert_int_equal(scan1(ks, "\xe8\xad\x89 \xe6\x98\x8e"), 0);
    kwset_free(ks);
}

static void test_mixed_ascii_edge_cjk_interior(void **state)
{
    static const char *const kws[] = {
        "gpt\xe8\xad\x89\xe6\x98\x8e",         /* gpt證明: boundary on the left only */
        "\xe8\xad\x89\xe6\x98\x8eok",          /* 證明ok: boundary on the right only */
        "a\xe8\xad\x89\xe6\x98\x8e" "b",       /* a證明b: both */
    };
    kwset_t *ks = make_set(kws, 3);
    (void)state;
    assert_int_equal(scan1(ks, "use gpt\xe8\xad\x89\xe6\x98\x8e!"), BIT(0));
    assert_int_equal(scan1(ks, "chatgpt\xe8\xad\x89\xe6\x98\x8e"), 0);
    assert_int_equal(scan1(ks, "\xe8\xab\x8bgpt\xe8\xad\x89\xe6\x98\x8exyz"), BIT(0));
    assert_int_equal(scan1(ks, "x\xe8\xad\x89\xe6\x98\x8eok."), BIT(1));
    assert_int_equal(scan1(ks, "\xe8\xad\x89\xe6\x98\x8eokay"), 0);
    assert_int_equal(scan1(ks, "a\xe8\xad\x89\xe6\x98\x8e" "b"), BIT(2));
    assert_int_equal(scan1(ks, "(a\xe8\xad\x89\xe6\x98\x8e" "b)"), BIT(2));
    assert_int_equal(scan1(ks, "xa\xe8\xad\x89\xe6\x98\x8e" "b"), 0);
    assert_int_equal(scan1(ks, "a\xe8\xad\x89\xe6\x98\x8e" "b1"), 0);
    kwset_free(ks);
}

static void test_overlapping_and_nested(void **state)
{
    static const char *const kws[] = {"step", "step by step", "by", "he", "she", "hers", "his"};
    kwset_t *ks = make_set(kws, 7);
    (void)state;
    assert_int_equal(scan1(ks, "step by step"), BIT(0) | BIT(1) | BIT(2));
    assert_int_equal(scan1(ks, "Step By Step."), BIT(0) | BIT(1) | BIT(2));
    /* "step by steps": the phrase fails its right boundary, "step" still hits */
    assert_int_equal(scan1(ks, "step by steps"), BIT(0) | BIT(2));
    /* classic Aho-Corasick set; boundaries make "he" inside "she" no match */
    assert_int_equal(scan1(ks, "she hers his he"), BIT(3) | BIT(4) | BIT(5) | BIT(6));
    assert_int_equal(scan1(ks, "ushers"), 0);
    kwset_free(ks);

    {
        /* without boundaries (non-word edges) nested matches all count */
        static const char *const sym[] = {"->", "-->", "--", ">"};
        kwset_t *ks2 = make_set(sym, 4);
        assert_int_equal(scan1(ks2, "a-->b"), BIT(0) | BIT(1) | BIT(2) | BIT(3));
        kwset_free(ks2);
    }
}

static void test_duplicates_return_same_id(void **state)
{
    kwset_t *ks = kwset_new();
    (void)state;
    assert_int_equal(kwset_add(ks, "alpha", 5), 0);
    assert_int_equal(kwset_add(ks, "beta", 4), 1);
    assert_int_equal(kwset_add(ks, "alpha", 5), 0);
    assert_int_equal(kwset_add(ks, "ALPHA", 5), 0);
    assert_int_equal(kwset_add(ks, "alph", 4), 2);  /* a prefix is a new keyword */
    assert_int_equal(kwset_add(ks, "alphas", 6), 3);
    assert_int_equal(kwset_count(ks), 4);
    assert_int_equal(kwset_compile(ks), 0);
    assert_int_equal(kwset_compile(ks), 0); /* idempotent */
    assert_int_equal(scan1(ks, "Alpha beta"), BIT(0) | BIT(1));
    assert_int_equal(scan1(ks, "alph alphas"), BIT(2) | BIT(3));
    kwset_free(ks);
}

static void test_rejects_empty_and_after_compile(void **state)
{
    kwset_t *ks = kwset_new();
    (void)state;
    assert_int_equal(kwset_add(ks, "", 0), -1);
    assert_int_equal(kwset_add(ks, NULL, 0), -1);
    assert_int_equal(kwset_add(ks, "x", 1), 0);
    assert_int_equal(kwset_compile(ks), 0);
    assert_int_equal(kwset_add(ks, "y", 1), -1);
    assert_int_equal(kwset_count(ks), 1);
    kwset_free(ks);
    kwset_free(NULL);
}

static void test_length_limit(void **state)
{
    char kw[KWSET_MAX_KEYWORD + 2], text[KWSET_MAX_KEYWORD + 8];
    kwset_t *ks = kwset_new();
    uint64_t hits[1] = {0};
    (void)state;
    assert_int_equal(KWSET_MAX_KEYWORD, 256);
    memset(kw, 'z', sizeof kw);
    assert_int_equal(kwset_add(ks, kw, 257), -1);
    assert_int_equal(kwset_add(ks, kw, 256), 0);
    assert_int_equal(kwset_compile(ks), 0);
    /* " zzz...z " with 256 z matches; 257 z does not (right boundary) */
    text[0] = ' ';
    memset(text + 1, 'Z', 256);
    text[257] = ' ';
    assert_int_equal(kwset_scan(ks, text, 258, hits), 1);
    assert_int_equal(hits[0], 1);
    hits[0] = 0;
    memset(text + 1, 'z', 257);
    assert_int_equal(kwset_scan(ks, text, 258, hits), 0);
    assert_int_equal(hits[0], 0);
    kwset_free(ks);
}

static void test_invalid_utf8_and_nul_bytes(void **state)
{
    static const char *const kws[] = {"key", "\xff\xfe", "a\0b"};
    static const char text[] = "\xc3\x28 key \0\xff\xfe\x80 a\0b \xe8\xad";
    kwset_t *ks = kwset_new();
    uint64_t hits[1] = {0};
    (void)state;
    assert_int_equal(kwset_add(ks, kws[0], 3), 0);
    assert_int_equal(kwset_add(ks, kws[1], 2), 1);
    assert_int_equal(kwset_add(ks, kws[2], 3), 2);
    assert_int_equal(kwset_compile(ks), 0);
    assert_int_equal(kwset_scan(ks, text, sizeof text - 1, hits), 3);
    assert_int_equal(hits[0], 7);
    /* a truncated multi-byte sequence at the very end is just bytes */
    hits[0] = 0;
    assert_int_equal(kwset_scan(ks, "\xff", 1, hits), 0);
    assert_int_equal(hits[0], 0);
    kwset_free(ks);
}

static void test_empty_text_and_empty_set(void **state)
{
    static const char *const kws[] = {"a"};
    kwset_t *ks = make_set(kws, 1);
    kwset_t *empty = kwset_new();
    kwset_t *uncompiled = kwset_new();
    uint64_t hits[1] = {0};
    kwset_stats_t st;
    (void)state;
    assert_int_equal(kwset_scan(ks, "", 0, hits), 0);
    assert_int_equal(kwset_scan(ks, NULL, 0, hits), 0);
    assert_int_equal(hits[0], 0);

    assert_int_equal(kwset_compile(empty), 0);
    assert_int_equal(kwset_count(empty), 0);
    assert_int_equal(kwset_scan(empty, "anything", 8, NULL), 0);

    assert_int_equal(kwset_add(uncompiled, "a", 1), 0);
    assert_int_equal(kwset_scan(uncompiled, "a", 1, hits), 0);
    assert_int_equal(hits[0], 0);
    kwset_stats(uncompiled, &st);
    assert_int_equal(st.keywords, 1);
    assert_int_equal(st.states, 0);

    kwset_stats(ks, &st);
    assert_int_equal(st.keywords, 1);
    assert_int_equal(st.states, 2);
    assert_int_equal(st.classes, 2);
    assert_int_equal(st.table_bytes, 2 * 3 * 4);
    kwset_free(ks);
    kwset_free(empty);
    kwset_free(uncompiled);
}

/* A pathological set (long keywords over many distinct bytes) would need a
 * table above KWSET_MAX_TABLE_BYTES: compile refuses it, the set stays
 * uncompiled and finds nothing. */
static void test_compile_refuses_huge_table(void **state)
{
    char kw[KWSET_MAX_KEYWORD];
    kwset_t *ks = kwset_new();
    uint64_t hits[(600 + 63) / 64] = {0};
    kwset_stats_t st;
    size_t i, j;
    (void)state;
    for (i = 0; i < 600; i++) {
        /* distinct two-byte prefixes, then 254 bytes of their own */
        kw[0] = (char)(0x80 + i % 128);
        kw[1] = (char)(0x80 + i / 128);
        for (j = 2; j < sizeof kw; j++)
            kw[j] = (char)(0x80 + (i * 7 + j * 13) % 128);
        assert_int_equal(kwset_add(ks, kw, sizeof kw), (int)i);
    }
    assert_int_equal(kwset_compile(ks), -1);
    assert_int_equal(kwset_scan(ks, kw, sizeof kw, hits), 0);
    kwset_stats(ks, &st);
    assert_int_equal(st.states, 0);
    kwset_free(ks);
}

static void test_many_keywords_bitset(void **state)
{
    char kw[16], text[4096];
    kwset_t *ks = kwset_new();
    uint64_t hits[WORDS] = {0};
    size_t i, tl = 0;
    (void)state;
    for (i = 0; i < 150; i++) {
        int n = snprintf(kw, sizeof kw, "kw%zu", i);
        assert_int_equal(kwset_add(ks, kw, (size_t)n), (int)i);
    }
    assert_int_equal(kwset_compile(ks), 0);
    /* every multiple of 7, plus near-misses that must not count */
    for (i = 0; i < 150; i += 7)
        tl += (size_t)snprintf(text + tl, sizeof text - tl, "kw%zu, ", i);
    tl += (size_t)snprintf(text + tl, sizeof text - tl, "kw1000 xkw1 kw2x");
    assert_int_equal(kwset_scan(ks, text, tl, hits), 22);
    for (i = 0; i < 150; i++)
        assert_int_equal((hits[i / 64] >> (i % 64)) & 1, i % 7 == 0);
    assert_int_equal(hits[2] >> (150 - 128), 0);
    assert_true(hits[0] != 0 && hits[1] != 0 && hits[2] != 0);
    /* scanning again into the same bitset adds nothing new */
    assert_int_equal(kwset_scan(ks, text, tl, hits), 0);
    kwset_free(ks);
}

/* Long texts are scanned as several interleaved slices: a keyword must be
 * found wherever it lies, in particular across the slice boundaries, and a
 * near-miss must not become a hit there. Exhaustive over positions. */
static void test_every_position_in_long_text(void **state)
{
    static const size_t lens[] = {4, 40, 256};
    char text[3000], kw[256];
    size_t li, tl, pos, i;
    (void)state;
    for (li = 0; li < UTIL_LEN(lens); li++) {
        size_t kl = lens[li];
        kwset_t *ks = kwset_new();
        for (i = 0; i < kl; i++)
            kw[i] = (char)('a' + i % 26);
        assert_int_equal(kwset_add(ks, kw, kl), 0);
        assert_int_equal(kwset_add(ks, "x", 1), 1); /* one byte: at the text edges */
        assert_int_equal(kwset_compile(ks), 0);
        for (tl = 2100; tl < 2104; tl++) {
            for (pos = 0; pos + kl <= tl; pos++) {
                uint64_t hits[1] = {0};
                memset(text, ' ', tl);
                memcpy(text + pos, kw, kl);
                assert_int_equal(kwset_scan(ks, text, tl, hits), 1);
                assert_int_equal(hits[0], 1);
                /* glued to a letter on the right: no match anywhere */
                if (pos + kl < tl) {
                    hits[0] = 0;
                    text[pos + kl] = 'q';
                    assert_int_equal(kwset_scan(ks, text, tl, hits), 0);
                }
            }
            /* the one-byte keyword as the very last and very first byte */
            {
                uint64_t hits[1] = {0};
                memset(text, ' ', tl);
                text[tl - 1] = 'x';
                assert_int_equal(kwset_scan(ks, text, tl, hits), 1);
                assert_int_equal(hits[0], 2);
                hits[0] = 0;
                text[tl - 1] = ' ';
                text[0] = 'X';
                assert_int_equal(kwset_scan(ks, text, tl, hits), 1);
                assert_int_equal(hits[0], 2);
            }
        }
        kwset_free(ks);
    }
}

/* ---- randomized cross-check ---- */

static int naive_word(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static unsigned char naive_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static int naive_found(const char *kw, size_t kl, const char *t, size_t tl)
{
    const unsigned char *k = (const unsigned char *)kw, *s = (const unsigned char *)t;
    size_t i, j;
    for (i = 0; i + kl <= tl; i++) {
        for (j = 0; j < kl; j++)
            if (naive_lower(k[j]) != naive_lower(s[i + j]))
                break;
        if (j < kl)
            continue;
        if (naive_word(k[0]) && i > 0 && naive_word(s[i - 1]))
            continue;
        if (naive_word(k[kl - 1]) && i + kl < tl && naive_word(s[i + kl]))
            continue;
        return 1;
    }
    return 0;
}

static uint64_t rng_state;

static uint32_t rnd(void)
{
    /* xorshift64*: reproducible across runs */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

static void test_random_cross_check(void **state)
{
    /* Few distinct bytes so that matches, overlaps and boundary cases are
     * frequent: letters in both cases, a digit, underscore, space,
     * punctuation, a UTF-8 lead and continuation byte, NUL. */
    static const char alpha[] = {'a', 'b', 'A', 'B', '1', '_', ' ', '-', '\xe8', '\xad', '\0'};
    char kws[40][8];
    size_t klen[40];
    char text[700];
    size_t round, checked = 0, hit_total = 0;
    (void)state;
    rng_state = 0x9E3779B97F4A7C15ULL;
    for (round = 0; round < 3000; round++) {
        kwset_t *ks = kwset_new();
        size_t nk = 1 + rnd() % 40, i, j, t;
        int ids[40];
        for (i = 0; i < nk; i++) {
            klen[i] = 1 + rnd() % 6;
            for (j = 0; j < klen[i]; j++)
                kws[i][j] = alpha[rnd() % sizeof alpha];
            ids[i] = kwset_add(ks, kws[i], klen[i]);
            assert_true(ids[i] >= 0);
            /* duplicates (after folding) share the first id */
            for (j = 0; j < i; j++) {
                size_t m;
                int same = klen[j] == klen[i];
                for (m = 0; same && m < klen[i]; m++)
                    same = naive_lower((unsigned char)kws[i][m]) == naive_lower((unsigned char)kws[j][m]);
                if (same) {
                    assert_int_equal(ids[i], ids[j]);
                    break;
                }
            }
            if (j == i) /* new keyword: next id */
                assert_int_equal((size_t)ids[i] + 1, kwset_count(ks));
        }
        assert_int_equal(kwset_compile(ks), 0);
        for (t = 0; t < 5; t++) {
            uint64_t hits[1] = {0};
            uint64_t want = 0;
            /* mostly prompt-sized texts; every third one long enough for
             * kwset_scan's interleaved streams */
            size_t tl = (t % 3 == 2) ? rnd() % sizeof text : rnd() % 80, n;
            for (j = 0; j < tl; j++)
                text[j] = alpha[rnd() % sizeof alpha];
            n = kwset_scan(ks, text, tl, hits);
            for (i = 0; i < nk; i++)
                if (naive_found(kws[i], klen[i], text, tl))
                    want |= BIT(ids[i]);
            if (hits[0] != want)
                fail_msg("round %zu text %zu: hits %#llx want %#llx", round, t, (unsigned long long)hits[0],
                         (unsigned long long)want);
            assert_int_equal(n, (size_t)__builtin_popcountll(want));
            hit_total += n;
            checked++;
        }
        kwset_free(ks);
    }
    assert_int_equal(checked, 15000);
    assert_true(hit_total > 10000); /* the check is not vacuous */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_hits),
        cmocka_unit_test(test_case_insensitive),
        cmocka_unit_test(test_no_unicode_case_folding),
        cmocka_unit_test(test_word_boundaries),
        cmocka_unit_test(test_non_word_edges_need_no_boundary),
        cmocka_unit_test(test_cjk_inside_text),
        cmocka_unit_test(test_mixed_ascii_edge_cjk_interior),
        cmocka_unit_test(test_overlapping_and_nested),
        cmocka_unit_test(test_duplicates_return_same_id),
        cmocka_unit_test(test_rejects_empty_and_after_compile),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_invalid_utf8_and_nul_bytes),
        cmocka_unit_test(test_empty_text_and_empty_set),
        cmocka_unit_test(test_compile_refuses_huge_table),
        cmocka_unit_test(test_many_keywords_bitset),
        cmocka_unit_test(test_every_position_in_long_text),
        cmocka_unit_test(test_random_cross_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
