/* Unit tests for src/core/json_tree.c: the one-pass strict parse must
 * answer exactly as json_check(JSON_CHECK_STRICT) + cJSON_ParseWithLength
 * (tests/fuzz/json_tree_diff.h compares verdict, error, tree and print) on
 * hand-picked bodies, on every committed fuzz input of the JSON and request
 * harnesses, and on thousands of generated bodies and their mutations. */
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

#include "../../fuzz/json_tree_diff.h"

typedef struct tally {
    size_t accepted, refused, dup_refused;
} tally_t;

static void check_n(const char *s, size_t n, tally_t *t)
{
    char why[512];
    int verdict;
    /* an exact-size copy, so ASan sees any read past the end */
    char *p = malloc(n ? n : 1);
    const char *res;
    assert_non_null(p);
    memcpy(p, s, n);
    res = jtd_compare(p, n, &verdict, why, sizeof why);
    if (res != NULL)
        fail_msg("json_tree differs on %zu bytes \"%.*s\": %s", n, (int)(n > 200 ? 200 : n), s,
                 res);
    if (t != NULL) {
        if (verdict == 1) {
            t->accepted++;
        } else {
            json_error_t e;
            int o;
            t->refused++;
            if (json_check(p, n, JSON_CHECK_STRICT, &o, &e) == 0 &&
                strcmp(e.what, "duplicate key") == 0)
                t->dup_refused++;
        }
    }
    free(p);
}

static void check(const char *s)
{
    check_n(s, strlen(s), NULL);
}

static void test_known(void **state)
{
    static const char *const cases[] = {
        "{}", "[]", "{\"a\":1}", " {\"a\" : [ 1 , 2 , {\"b\":null} ] } ", "\"x\"", "0", "-0",
        "-0.0", "1e400", "-1e400", "1e-400", "2147483647", "2147483648", "-2147483648",
        "-2147483649", "2147483647.5", "-2147483648.5", "123456789012345", "1234567890123456",
        "9007199254740993", "0.1", "1.5e+3", "1E-3", "-12.5E2",
        "[1111111111111111111111111111111111111111111111111111111111111111111111]",
        "{\"a\":0.00000000000000000000000000000000000000000000000000000000000000000000001}",
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}",
        "{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\\ud83d\\ude00\"}",
        "{\"s\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87\"}",
        "{\"s\":\"0123456789abcdef0123456789abcdef\\n0123456789abcdef\"}",
        "{\"a\":true,\"b\":false,\"c\":null,\"d\":[true,false,null],\"e\":{}}",
        /* refusals */
        "", " ", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "[1 2]", "{\"a\":1 \"b\":2}",
        "{\"a\":1}x", "{\"a\":1}\x01", "\xef\xbb\xbf{}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}",
        "{\"a\":1e}", "{\"a\":-}", "{\"a\":+1}", "{\"a\":tru}", "{\"a\":nul}", "{\"a\":True}",
        "{\"a\":\"\x01\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\\u12g4\"}",
        "{\"a\":\"\\u0000\"}", "{\"a\":\"\\udc00\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\ud800x\"}",
        "{\"a\":\"\\ud800\\u0041\"}", "{\"a\":\"\\ud800\\udbff\"}", "{\"a\":\"\xc0\x80\"}",
        "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xe2\x82\"}",
        "{\"a\":\"\x80\"}", "{\"a\":\"\xff\"}", "{\"a\":\"abc", "{\"a\":\"abc\\", "{\"a\":\"\\u",
        "{\"a\":1,\"a\":2}", "{\"model\":1,\"mod\\u0065l\":2}", "{\"a\":{\"b\":1,\"b\":2},\"a\":3}",
        "[{\"x\":1,\"y\":2,\"x\":3}]", "{\"a\":[1,2}", "[1,2}", "{\"a\"\x01:1}", "{\t\"a\":1\n}\r\n",
        "{\v\"a\":1}", "{\"a\":1}\f", "{\"a\":\"\\/\"}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check(cases[i]);
}

/* A string of n '[' then n ']' (or objects). */
static void nest(size_t n, bool objects)
{
    size_t len = objects ? n * 6 + 1 : n * 2, o = 0;
    char *s = malloc(len + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        if (objects) {
            memcpy(s + o, "{\"k\":", 5);
            o += 5;
        } else {
            s[o++] = '[';
        }
    }
    if (objects)
        s[o++] = '1';
    for (size_t i = 0; i < n; i++)
        s[o++] = objects ? '}' : ']';
    check_n(s, o, NULL);
    free(s);
}

static void test_depth(void **state)
{
    (void)state;
    nest(999, false);
    nest(1000, false);
    nest(1001, false);
    nest(1000, true);
    nest(1001, true);
    nest(5000, false);
}

/* An object of n keys "k0".."k{n-1}", then key `extra` when not NULL. */
static void many_keys(size_t n, const char *extra, bool nested)
{
    size_t cap = n * 24 + 256, o = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    o += (size_t)snprintf(s + o, cap - o, "%s{", nested ? "{\"outer\":" : "");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(s + o, cap - o, "%s\"k%zu\":[%zu]", i ? "," : "", i, i);
    if (extra != NULL)
        o += (size_t)snprintf(s + o, cap - o, ",%s:0", extra);
    o += (size_t)snprintf(s + o, cap - o, "}%s", nested ? ",\"outer2\":1}" : "");
    check_n(s, o, NULL);
    free(s);
}

static void test_keys(void **state)
{
    (void)state;
    for (size_t n = 1; n <= 20; n++) {
        many_keys(n, NULL, false);
        many_keys(n, "\"k0\"", false);
        many_keys(n, "\"k\\u0030\"", true);
    }
    many_keys(70, NULL, true);   /* past the 64 inline keys */
    many_keys(70, "\"k69\"", true);
    many_keys(5000, "\"k4321\"", false); /* the sorted path */
    many_keys(5000, "\"\\u006b17\"", true);
    many_keys(50000, NULL, false); /* node slabs and key arrays grow */
}

/* ---- generated bodies ---- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

typedef struct gen {
    char *s;
    size_t n, cap;
} gen_t;

static void put(gen_t *g, const char *p, size_t n)
{
    if (g->n + n + 1 > g->cap) {
        g->cap = (g->n + n + 1) * 2;
        g->s = realloc(g->s, g->cap);
        assert_non_null(g->s);
    }
    memcpy(g->s + g->n, p, n);
    g->n += n;
}

static void puts_(gen_t *g, const char *p)
{
    put(g, p, strlen(p));
}

static void gen_ws(gen_t *g)
{
    static const char *const w[] = {"", "", "", " ", "\n", "\t", "\r\n  "};
    puts_(g, w[rnd(7)]);
}

static void gen_string(gen_t *g, bool key)
{
    static const char *const keys[] = {"model", "mod\\u0065l", "messages", "role", "content",
                                       "a", "\\u0061", "stream", "k", "tools"};
    char tmp[16];
    put(g, "\"", 1);
    if (key && rnd(3) > 0) {
        puts_(g, keys[rnd(10)]);
    } else {
        uint32_t parts = rnd(4) == 0 ? rnd(60) : rnd(8);
        for (uint32_t i = 0; i < parts; i++) {
            uint32_t k = rnd(16);
            if (k < 6) {
                static const char plain[] = "The quick brown fox jumps over the lazy dog 0123456789";
                uint32_t a = rnd(sizeof plain - 1), b = a + rnd((uint32_t)(sizeof plain - a));
                put(g, plain + a, b - a);
            } else if (k < 9) {
                static const char *const esc[] = {"\\\"", "\\\\", "\\/", "\\b", "\\f",
                                                  "\\n",  "\\r",  "\\t", "\\u00e9", "\\u20AC"};
                puts_(g, esc[rnd(10)]);
            } else if (k < 11) {
                uint32_t cp;
                do
                    cp = 1 + rnd(0xFFFF);
                while (cp >= 0xD800 && cp <= 0xDFFF);
                snprintf(tmp, sizeof tmp, "\\u%04x", cp);
                puts_(g, tmp);
            } else if (k < 12) {
                uint32_t cp = rnd(0x100000);
                snprintf(tmp, sizeof tmp, "\\u%04X\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
                puts_(g, tmp);
            } else {
                static const char *const utf8[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                                   "\xe4\xb8\xad\xe6\x96\x87", "\xd0\x96",
                                                   "\xef\xbf\xbd", "\xf4\x8f\xbf\xbf"};
                puts_(g, utf8[rnd(7)]);
            }
        }
    }
    put(g, "\"", 1);
}

static void gen_number(gen_t *g)
{
    static const char *const fixed[] = {"0", "-0", "-0.0", "1e400", "-1e400", "1e-400",
                                        "2147483647", "2147483648", "-2147483648", "-2147483649",
                                        "2147483647.5", "9007199254740993", "123456789012345",
                                        "1234567890123456", "0.1", "1.5e+3", "1E-3", "-12.5E2",
                                        "4.9e-324", "1.7976931348623157e308"};
    char tmp[128];
    uint32_t k = rnd(4);
    if (k == 0) {
        puts_(g, fixed[rnd(sizeof fixed / sizeof fixed[0])]);
    } else if (k == 1) {
        snprintf(tmp, sizeof tmp, "%s%u", rnd(2) ? "-" : "", rnd(100000));
        puts_(g, tmp);
    } else if (k == 2) {
        snprintf(tmp, sizeof tmp, "%s%u.%u%s%d", rnd(2) ? "-" : "", rnd(1000), rnd(1000000),
                 rnd(2) ? "e" : "E", (int)rnd(40) - 20);
        puts_(g, tmp);
    } else {
        size_t n = 1 + rnd(80);
        tmp[0] = (char)('1' + rnd(9));
        for (size_t i = 1; i < n; i++)
            tmp[i] = (char)('0' + rnd(10));
        tmp[n] = '\0';
        puts_(g, tmp);
    }
}

static void gen_value(gen_t *g, int depth)
{
    uint32_t k = depth > 6 ? 2 + rnd(4) : rnd(8);
    gen_ws(g);
    if (k == 0 || k == 1) {
        uint32_t n = rnd(4) == 0 ? rnd(30) : rnd(5);
        put(g, k == 0 ? "{" : "[", 1);
        for (uint32_t i = 0; i < n; i++) {
            if (i)
                put(g, ",", 1);
            if (k == 0) {
                gen_ws(g);
                gen_string(g, true);
                gen_ws(g);
                put(g, ":", 1);
            }
            gen_value(g, depth + 1);
        }
        gen_ws(g);
        put(g, k == 0 ? "}" : "]", 1);
    } else if (k == 2 || k == 3) {
        gen_string(g, false);
    } else if (k == 4) {
        gen_number(g);
    } else {
        static const char *const lit[] = {"true", "false", "null"};
        puts_(g, lit[rnd(3)]);
    }
    gen_ws(g);
}

static void test_generated(void **state)
{
    static const char interesting[] = {'"', '\\', '}', ']', '{', '[', ',', ':', 0x00, 0x1f, 0x7f,
                                       (char)0x80, (char)0xc0, (char)0xed, (char)0xf4, (char)0xff,
                                       'u', ' ', '0', 'e', '.', '-', 'd', 'D'};
    gen_t g = {0};
    tally_t t = {0};
    char *m;
    (void)state;
    for (int it = 0; it < 4000; it++) {
        g.n = 0;
        put(&g, "{\"model\":\"auto\",\"x\":", sizeof "{\"model\":\"auto\",\"x\":" - 1);
        gen_value(&g, 0);
        put(&g, "}", 1);
        check_n(g.s, g.n, &t);
        m = malloc(g.n + 2);
        assert_non_null(m);
        for (int k = 0; k < 6; k++) {
            size_t at = rnd((uint32_t)g.n), len = g.n;
            memcpy(m, g.s, g.n);
            switch (k % 3) {
            case 0: /* replace a byte */
                m[at] = interesting[rnd(sizeof interesting)];
                break;
            case 1: /* cut */
                len = at;
                break;
            default: /* insert */
                memmove(m + at + 1, m + at, g.n - at);
                m[at] = interesting[rnd(sizeof interesting)];
                len = g.n + 1;
            }
            check_n(m, len, &t);
        }
        free(m);
    }
    free(g.s);
    /* the generator must reach both verdicts and the duplicate check */
    print_message("generated: %zu accepted, %zu refused (%zu duplicate keys)\n", t.accepted,
                  t.refused, t.dup_refused);
    assert_true(t.accepted > 3000);
    assert_true(t.refused > 5000);
    assert_true(t.dup_refused > 100);
}

/* Every committed input of the JSON and body harnesses, whole and without
 * its first byte (most harnesses read a control byte first). */
static void test_corpora(void **state)
{
    static const char *const dirs[] = {"tests/fuzz/corpus/fuzz_json", "tests/fuzz/corpus/fuzz_request",
                                       "tests/fuzz/corpus/fuzz_messages",
                                       "tests/fuzz/corpus/fuzz_responses",
                                       "tests/fuzz/corpus/fuzz_anthropic",
                                       "tests/fuzz/corpus/fuzz_json_tree"};
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
    print_message("corpora: %zu files, %zu accepted, %zu refused\n", files, t.accepted, t.refused);
    assert_true(files > 1000);
    assert_true(t.accepted > 500);
}

/* json_tree_read against cJSON_ParseWithLength: both NULL, or trees equal
 * node by node and printed alike; *t set exactly when the strict check
 * accepts. */
static void read_same(const char *s, size_t n, size_t *fast, size_t *slow)
{
    char why[512];
    char *p = malloc(n ? n : 1); /* exact size, for ASan */
    json_tree_t *t = (json_tree_t *)(void *)1;
    cJSON *got, *want;
    int is_object;
    assert_non_null(p);
    memcpy(p, s, n);
    got = json_tree_read(p, n, &t);
    want = cJSON_ParseWithLength(p, n);
    if ((got == NULL) != (want == NULL))
        fail_msg("json_tree_read %s, cJSON %s on %.*s", got ? "parsed" : "NULL",
                 want ? "parsed" : "NULL", (int)n, p);
    if ((t != NULL) != (json_check(p, n, JSON_CHECK_STRICT, &is_object, NULL) == 1))
        fail_msg("tree %s, strict check disagrees on %.*s", t ? "built" : "not built", (int)n, p);
    if (got != NULL) {
        char *pg, *pw;
        if (jtd_nodes(got, want, why, sizeof why) != NULL)
            fail_msg("%s on %.*s", why, (int)n, p);
        pg = cJSON_PrintUnformatted(got);
        pw = cJSON_PrintUnformatted(want);
        if ((pg == NULL) != (pw == NULL) || (pg != NULL && strcmp(pg, pw) != 0))
            fail_msg("printed differently on %.*s", (int)n, p);
        free(pg);
        free(pw);
        ++*(t != NULL ? fast : slow);
    }
    json_tree_drop(got, t);
    cJSON_Delete(want);
    free(p);
}

static void test_read(void **state)
{
    static const char *const FIXED[] = {
        "{\"a\":1}", "{\"a\":1} trailing", "{\"a\":1,\"a\":2}", "{\"a\":\"\xff\"}",
        "{\"a\":\"\\ud800\"}", "[1,2", "", "  ", "null", "\"s\"", "{\"content\":[{\"type\":"
        "\"text\",\"text\":\"hi\"}],\"usage\":{\"input_tokens\":3}}"};
    static const char *const dirs[] = {"tests/fuzz/corpus/fuzz_answer", "tests/fuzz/corpus/fuzz_anthropic",
                                       "tests/fuzz/corpus/fuzz_stream", "tests/fuzz/corpus/fuzz_request",
                                       "tests/fuzz/corpus/fuzz_json"};
    size_t fast = 0, slow = 0, files = 0;
    (void)state;
    for (size_t i = 0; i < sizeof FIXED / sizeof FIXED[0]; i++)
        read_same(FIXED[i], strlen(FIXED[i]), &fast, &slow);
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
            buf = malloc((size_t)len + 2);
            assert_non_null(buf);
            assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
            fclose(f);
            read_same(buf, (size_t)len, &fast, &slow);
            if (len > 0)
                read_same(buf + 1, (size_t)len - 1, &fast, &slow);
            buf[len] = 'x'; /* trailing data: cJSON reads it, the strict check does not */
            read_same(buf, (size_t)len + 1, &fast, &slow);
            free(buf);
            files++;
        }
        closedir(dir);
    }
    print_message("read: %zu files, %zu trees built, %zu by cJSON\n", files, fast, slow);
    assert_true(files > 1000);
    assert_true(fast > 500 && slow > 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known),     cmocka_unit_test(test_depth),
        cmocka_unit_test(test_keys),      cmocka_unit_test(test_generated),
        cmocka_unit_test(test_corpora),   cmocka_unit_test(test_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
