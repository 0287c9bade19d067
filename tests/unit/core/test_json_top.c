/* Unit tests for json_validate_top (src/core/json.c): it must accept and
 * refuse exactly what json_validate does, with the same is_object, and on a
 * valid object record the members the old two-pass code found (a frozen
 * copy of the top-level scan openai.c's check_fast ran after json_validate:
 * raw key with quotes, value span as json_find_top_key gives it), with the
 * count and the max cut. Inputs: hand-picked, every committed input of the
 * answer, stream, anthropic and JSON fuzz harnesses (whole and without the
 * first byte), generated objects and their byte mutations. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

/* ---- the oracle: json_find_top_key's scan, listing every member -------- */

static size_t o_ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

static size_t o_string(const char *s, size_t n, size_t i)
{
    for (i++; i < n;) {
        const char *q = memchr(s + i, '"', n - i);
        size_t k, bs = 0;
        if (q == NULL)
            return n;
        k = (size_t)(q - s);
        while (k - bs > i && s[k - bs - 1] == '\\')
            bs++;
        if (bs % 2 == 0)
            return k + 1;
        i = k + 1;
    }
    return n;
}

static size_t o_value(const char *s, size_t n, size_t i)
{
    size_t depth = 0;
    if (i >= n)
        return n;
    if (s[i] == '"')
        return o_string(s, n, i);
    if (s[i] != '{' && s[i] != '[') {
        while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' &&
               s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            i++;
        return i;
    }
    for (; i < n; i++) {
        char ch = s[i];
        if (ch == '"') {
            i = o_string(s, n, i) - 1;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (--depth == 0)
                return i + 1;
        }
    }
    return n;
}

/* The members of the validated object s[0..n), up to max; returns the count. */
static size_t o_members(const char *s, size_t n, json_member_t *m, size_t max)
{
    size_t i = o_ws(s, n, 0) + 1, count = 0;
    for (;;) {
        size_t ks, ke, vs, ve;
        i = o_ws(s, n, i);
        if (i >= n || s[i] == '}')
            return count;
        if (s[i] == ',') {
            i++;
            continue;
        }
        ks = i;
        ke = o_string(s, n, i);
        vs = o_ws(s, n, o_ws(s, n, ke) + 1);
        ve = o_value(s, n, vs);
        if (count < max)
            m[count] = (json_member_t){{ks, ke - ks}, {vs, ve - vs}};
        count++;
        i = ve;
    }
}

/* ---- the comparison --------------------------------------------------- */

typedef struct tally {
    size_t objects, members, refused;
} tally_t;

static void check_max(const char *p, size_t n, size_t max, tally_t *t)
{
    json_member_t got[64], want[64];
    size_t gc = 12345, wc = 0;
    int go = -7, wo = -7;
    int gv = json_validate_top(p, n, &go, got, max, &gc);
    int wv = json_validate(p, n, &wo);
    if (gv != wv || go != wo)
        fail_msg("verdict %d/%d object %d/%d on %.*s", gv, wv, go, wo, (int)n, p);
    if (!wv || !wo) {
        assert_int_equal(gc, 0);
        t->refused++;
        return;
    }
    wc = o_members(p, n, want, max);
    if (gc != wc)
        fail_msg("count %zu, want %zu on %.*s", gc, wc, (int)n, p);
    for (size_t k = 0; k < wc && k < max; k++)
        if (memcmp(&got[k], &want[k], sizeof got[k]) != 0)
            fail_msg("member %zu: key %zu+%zu value %zu+%zu, want %zu+%zu %zu+%zu on %.*s", k,
                     got[k].key.off, got[k].key.len, got[k].value.off, got[k].value.len,
                     want[k].key.off, want[k].key.len, want[k].value.off, want[k].value.len,
                     (int)n, p);
    t->objects++;
    t->members += wc;
}

static void check_n(const char *s, size_t n, tally_t *t)
{
    /* an exact-size copy, so ASan sees any read past the end */
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, s, n);
    check_max(p, n, 64, t);
    check_max(p, n, 2, t);
    check_max(p, n, 0, t);
    free(p);
}

static void check_s(const char *s, tally_t *t)
{
    check_n(s, strlen(s), t);
}

static void test_fixed(void **state)
{
    static const char *const CASES[] = {
        "{}", " { } ", "[]", "[{\"a\":1}]", "\"x\"", "1", "", " ", "{", "{\"a\"}", "{\"a\":}",
        "{\"a\":1,}", "{,\"a\":1}", "{\"a\":1}x", "{\"a\":1} ", "\t{\"a\" :\n1 ,\"b\": [ ] }\r\n",
        "{\"a\":{}}", "{\"a\":{\"b\":{\"c\":[1,{\"d\":2}]}},\"e\":3}", "{\"a\":\"x\\\"y\",\"b\":2}",
        "{\"a\\\\\":\"\\\\\",\"b\":true,\"c\":false,\"d\":null,\"e\":-1.5e3}",
        "{\"usage\":{\"prompt_tokens\":1},\"usage\":2,\"error\":null,\"error\":{}}",
        "{\"a\":1,\"a\":2}", "{\"\\u0065rror\":1}", "{\"a\":tru}", "{\"a\":01}",
        "{\"a\":\"\x01\"}", "{\"a\":1\x01}", "{\"a\":[1,2,]}", "{\"a\":[1 2]}", "{\"a\":1]",
        "{\"a\":[}", "{\"a\":\"\xff\"}",
    };
    tally_t t = {0};
    (void)state;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        check_s(CASES[i], &t);
    assert_true(t.objects >= 10 && t.refused >= 10);
}

static void test_corpora(void **state)
{
    static const char *const dirs[] = {"tests/fuzz/corpus/fuzz_answer", "tests/fuzz/corpus/fuzz_stream",
                                       "tests/fuzz/corpus/fuzz_anthropic",
                                       "tests/fuzz/corpus/fuzz_json", "tests/fuzz/corpus/fuzz_json_tree"};
    tally_t t = {0};
    size_t files = 0;
    (void)state;
    for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++) {
        DIR *dir = opendir(dirs[d]);
        struct dirent *e;
        if (dir == NULL)
            fail_msg("no corpus at %s (run from the repository root)", dirs[d]);
        while ((e = readdir(dir)) != NULL) {
            char path[1024];
            FILE *f;
            char *buf;
            long len;
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", dirs[d], e->d_name);
            f = fopen(path, "rb");
            if (f == NULL)
                continue;
            fseek(f, 0, SEEK_END);
            len = ftell(f);
            fseek(f, 0, SEEK_SET);
            buf = malloc((size_t)len + 1);
            assert_non_null(buf);
            assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
            fclose(f);
            check_n(buf, (size_t)len, &t);
            if (len > 0)
                check_n(buf + 1, (size_t)len - 1, &t);
            free(buf);
            files++;
        }
        closedir(dir);
    }
    assert_true(files > 1000);
    assert_true(t.objects > 300);
    assert_true(t.members > 1000);
}

/* ---- generated objects and mutations ---------------------------------- */

static uint64_t g_rng = 0x2545F4914F6CDD1DULL;
static unsigned rnd(unsigned n)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (unsigned)(g_rng % n);
}

static void put(char *b, size_t cap, size_t *at, const char *s)
{
    size_t l = strlen(s);
    if (*at + l < cap) {
        memcpy(b + *at, s, l);
        *at += l;
    }
}

static void gen_value(char *b, size_t cap, size_t *at, int depth);

static const char *const WS[] = {"", "", "", " ", "\n  ", "\t"};
static const char *const KEYS[] = {"\"id\"", "\"usage\"", "\"error\"", "\"choices\"", "\"a\\\"b\"",
                                   "\"\\\\\"", "\"\"", "\"k\\u0041\"", "\"model\""};

static void gen_object(char *b, size_t cap, size_t *at, int depth)
{
    unsigned n = rnd(depth == 0 ? 40 : 4);
    put(b, cap, at, "{");
    for (unsigned i = 0; i < n; i++) {
        if (i > 0)
            put(b, cap, at, ",");
        put(b, cap, at, WS[rnd(6)]);
        put(b, cap, at, KEYS[rnd(sizeof KEYS / sizeof KEYS[0])]);
        put(b, cap, at, WS[rnd(6)]);
        put(b, cap, at, ":");
        put(b, cap, at, WS[rnd(6)]);
        gen_value(b, cap, at, depth + 1);
        put(b, cap, at, WS[rnd(6)]);
    }
    put(b, cap, at, "}");
}

static void gen_value(char *b, size_t cap, size_t *at, int depth)
{
    static const char *const SCALARS[] = {"1", "-0.5e+3", "true", "false", "null", "\"s\"",
                                          "\"q\\\"uote\\\\\"", "\"\\u00e9\"", "\"}]{[,:\"", "0"};
    unsigned k = rnd(depth > 3 ? 10 : 14);
    if (k < 10) {
        put(b, cap, at, SCALARS[k]);
    } else if (k < 12) {
        gen_object(b, cap, at, depth);
    } else {
        unsigned n = rnd(4);
        put(b, cap, at, "[");
        for (unsigned i = 0; i < n; i++) {
            if (i > 0)
                put(b, cap, at, ",");
            put(b, cap, at, WS[rnd(6)]);
            gen_value(b, cap, at, depth + 1);
        }
        put(b, cap, at, "]");
    }
}

static void test_generated(void **state)
{
    static const char MUT[] = "{}[]\",:\\ 0a\x01\xc3";
    char body[8192], m[8192];
    tally_t t = {0};
    (void)state;
    for (int iter = 0; iter < 20000; iter++) {
        size_t at = 0;
        put(body, sizeof body, &at, WS[rnd(6)]);
        gen_object(body, sizeof body, &at, 0);
        put(body, sizeof body, &at, WS[rnd(6)]);
        check_n(body, at, &t);
        /* a mutation: one byte replaced, removed or the text cut */
        memcpy(m, body, at);
        switch (rnd(3)) {
        case 0:
            m[rnd((unsigned)at)] = MUT[rnd(sizeof MUT - 1)];
            check_n(m, at, &t);
            break;
        case 1: {
            size_t k = rnd((unsigned)at);
            memmove(m + k, m + k + 1, at - k - 1);
            check_n(m, at - 1, &t);
            break;
        }
        default:
            check_n(m, rnd((unsigned)at), &t);
        }
    }
    assert_true(t.objects > 20000);
    assert_true(t.refused > 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_corpora),
        cmocka_unit_test(test_generated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
