/* Unit tests for door_json_parse (src/http/door.c): the answer translators
 * read the chat answer through json_tree's one pass when it is strict JSON
 * and through cJSON otherwise; either way the tree must be the one
 * cJSON_ParseWithLength builds (compared printed, and NULL where it is
 * NULL) — on hand-made answers that strict JSON refuses but cJSON reads
 * (trailing bytes, repeated keys, big numbers, NUL escapes) and on every
 * file of the door and answer fuzz corpora, each also cut at every 97th
 * byte. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "http/door.h"

static unsigned compared, via_cjson;

/* Compares door_json_parse(s, n) with cJSON_ParseWithLength(s, n). */
static void same_tree(const char *s, size_t n)
{
    door_json_t j;
    const cJSON *got = door_json_parse(&j, s, n);
    cJSON *want = cJSON_ParseWithLength(s, n);
    if ((got == NULL) != (want == NULL))
        fail_msg("door_json_parse %s where cJSON %s: %.*s", got ? "parsed" : "gave NULL",
                 want ? "parsed" : "gave NULL", (int)(n > 200 ? 200 : n), s);
    if (got != NULL) {
        char *a = cJSON_PrintUnformatted(got), *b = cJSON_PrintUnformatted(want);
        assert_non_null(a);
        assert_non_null(b);
        if (strcmp(a, b) != 0)
            fail_msg("trees differ for %.*s:\n%s\n%s", (int)(n > 200 ? 200 : n), s, a, b);
        free(a);
        free(b);
    }
    if (j._cj != NULL)
        via_cjson++;
    compared++;
    door_json_free(&j);
    cJSON_Delete(want);
}

static void same_tree_str(const char *s)
{
    same_tree(s, strlen(s));
}

static void test_strict_and_lenient_answers(void **state)
{
    static const char *cases[] = {
        "{\"choices\":[{\"message\":{\"content\":\"hi \\\"x\\\" \\u00e9\\n\"}}],\"usage\":{}}",
        "{\"choices\":[]} trailing",
        "{\"model\":\"a\",\"model\":\"b\"}",
        "{\"c\":[{\"message\":{\"content\":\"first\",\"content\":\"second\"}}]}",
        "{\"s\":\"lone \\ud800 surrogate\"}",
        "{\"s\":\"nul \\u0000 inside\"}",
        "{\"n\":1e400,\"m\":-0,\"k\":123456789012345678901234567890,\"f\":0.1}",
        " \n{\"a\":1}\n ",
        "[1,2,3]",
        "\"just a string\"",
        "{\"a\":01}",
        "{\"a\":1,}",
        "{'a':1}",
        "{\"a\":\"\xff\"}",
        "{\"a\":\"tab\there\"}",
        "",
        "{",
        "null",
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        same_tree_str(cases[i]);
    /* a zeroed door_json_t frees as a no-op */
    door_json_t z = {0};
    door_json_free(&z);
}

static void corpus_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[1024];
    static char data[1 << 20];
    if (d == NULL)
        fail_msg("no corpus %s (run from the repository root)", dir);
    while ((e = readdir(d)) != NULL) {
        FILE *f;
        size_t n;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        f = fopen(path, "rb");
        if (f == NULL)
            continue;
        n = fread(data, 1, sizeof data, f);
        fclose(f);
        same_tree(data, n);
        if (n > 0)
            same_tree(data + 1, n - 1); /* the fuzzers' selector byte */
        for (size_t cut = 97; cut < n; cut += 97)
            same_tree(data + 1, cut - 1);
    }
    closedir(d);
}

static void test_corpora(void **state)
{
    (void)state;
    compared = via_cjson = 0;
    corpus_dir("tests/fuzz/corpus/fuzz_answer");
    corpus_dir("tests/fuzz/corpus/fuzz_messages");
    corpus_dir("tests/fuzz/corpus/fuzz_responses");
    corpus_dir("tests/fuzz/corpus/fuzz_json_tree");
    /* both paths taken many times */
    assert_true(compared > 3000);
    assert_true(via_cjson > 100);
    assert_true(compared - via_cjson > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strict_and_lenient_answers),
        cmocka_unit_test(test_corpora),
    };
    return cmocka_run_group_tests_name("door_json", tests, NULL, NULL);
}
