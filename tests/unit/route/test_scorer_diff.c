/* Differential test of the scorer's features and of textstat (issue #17):
 * the current scorer_features, ts_scan and ts_language against frozen copies
 * of the code before their rewrite (ref_textstat_old.c, ref_scorer_old.c),
 * which must agree bit for bit — every feature (compared as bytes, not with a
 * tolerance), every ts_stats_t field, every language answer — on
 *  - every prompt of the calibration data in LLMROUTER_SCORER_DATA (default
 *    /work/shared/data: MMLU CSV files and the JSON-lines file; skipped with a
 *    note when absent), alone, mutated and concatenated past the scan bounds;
 *  - thousands of random texts built from marker words, stop words of the six
 *    languages, digits, operators, fences, list prefixes, UTF-8 of several
 *    scripts, invalid UTF-8 and long words, plus byte-level mutations;
 *  - every string literal of the existing unit tests test_scorer.c and
 *    test_textstat.c (read at run time from the source tree).
 * ts_language is also run with the dominant script forced to Latin, so that
 * its stop-word pass sees every text. Texts are scanned from heap copies of
 * exactly their length, so AddressSanitizer catches any read past the end. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "route/prompt.h"
#include "route/scorer.h"
#include "route/textstat.h"

#include "ref_textstat_old.c"
#include "ref_scorer_old.c"

/* ---- one comparison ---- */

static unsigned long n_texts, n_latin_runs;

static void show(const char *what, const char *t, size_t n)
{
    char esc[321];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < sizeof esc; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            esc[o++] = (char)c;
        else
            o += (size_t)snprintf(esc + o, sizeof esc - o, "\\x%02x", c);
    }
    esc[o] = '\0';
    fail_msg("%s differs on a text of %zu bytes: \"%s\"", what, n, esc);
}

/* ts_scan and ts_language, old against new, on a heap copy of exactly n bytes. */
static void compare_textstat(const char *t, size_t n)
{
    char *copy = malloc(n ? n : 1);
    ts_stats_t a, b, latin;
    assert_non_null(copy);
    memcpy(copy, t, n);
    memset(&a, 0x00, sizeof a);
    memset(&b, 0xff, sizeof b); /* every field must be written by both */
    old_ts_scan(copy, n, &a);
    ts_scan(copy, n, &b);
    if (memcmp(&a, &b, sizeof a) != 0)
        show("ts_scan", t, n);
    if (strcmp(old_ts_language(copy, n, &a), ts_language(copy, n, &b)) != 0)
        show("ts_language", t, n);
    memset(&latin, 0, sizeof latin);
    latin.letters[TS_SCRIPT_LATIN] = 1; /* force the stop-word pass */
    if (strcmp(old_ts_language(copy, n, &latin), ts_language(copy, n, &latin)) != 0)
        show("ts_language (Latin forced)", t, n);
    n_latin_runs++;
    free(copy);
}

static cJSON *message(const char *role, const char *text)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddStringToObject(m, "content", text);
    return m;
}

/* The features of text (NUL-free) as the last user message, alone and after
 * a system prompt and an earlier turn. */
static void compare_features(const char *text)
{
    for (int shape = 0; shape < 2; shape++) {
        cJSON *root = cJSON_CreateObject(), *msgs = cJSON_AddArrayToObject(root, "messages");
        double xo[SCORER_N_FEATURES], xn[SCORER_N_FEATURES];
        prompt_t po, pn;
        if (shape == 1) {
            cJSON_AddItemToArray(msgs, message("system", "You are terse. Answer in JSON."));
            cJSON_AddItemToArray(msgs, message("user", "What is 2 + 2? Explain why."));
            cJSON_AddItemToArray(msgs, message("assistant", "4, because 2 + 2 = 4."));
        }
        cJSON_AddItemToArray(msgs, message("user", text));
        prompt_init(&po, root, EP_CHAT);
        prompt_init(&pn, root, EP_CHAT);
        memset(xo, 0x00, sizeof xo);
        memset(xn, 0xff, sizeof xn);
        old_scorer_features(&po, xo);
        scorer_features(&pn, xn);
        for (int f = 0; f < SCORER_N_FEATURES; f++) {
            if (memcmp(&xo[f], &xn[f], sizeof xo[f]) != 0) {
                char what[96];
                snprintf(what, sizeof what, "feature %s (old %.17g, new %.17g)",
                         scorer_feature_name(f), xo[f], xn[f]);
                show(what, text, strlen(text));
            }
        }
        if (scorer_apply(scorer_builtin(), xo) != scorer_apply(scorer_builtin(), xn))
            show("score", text, strlen(text));
        prompt_free(&po);
        prompt_free(&pn);
        cJSON_Delete(root);
    }
}

static void compare(const char *t, size_t n)
{
    compare_textstat(t, n);
    if (memchr(t, '\0', n) == NULL) {
        char *z = malloc(n + 1);
        assert_non_null(z);
        memcpy(z, t, n);
        z[n] = '\0';
        compare_features(z);
        free(z);
    } else {
        /* NUL-free pieces only: a JSON string holds no NUL here */
        size_t at = 0;
        while (at < n) {
            const char *nul = memchr(t + at, '\0', n - at);
            size_t e = nul ? (size_t)(nul - t) : n;
            char *z = malloc(e - at + 1);
            assert_non_null(z);
            memcpy(z, t + at, e - at);
            z[e - at] = '\0';
            compare_features(z);
            free(z);
            at = e + 1;
        }
    }
    n_texts++;
}

/* ---- random texts ---- */

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static unsigned below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static const char *const pieces[] = {
    " ", " ", " ", " ", "  ", "\t", "\n", "\n", "\n\n", "\r\n", "    ", ". ", ", ", "? ", "! ",
    ": ", "; ", "(", ")", "{", "}", "[", "]", "=", "+", "*", "/", "^", "<", ">", "-", "'",
    "\\", "\\frac", "$", "$$", "%", "#", "#include", "_", "@", "\"", "`", "```", "```python\n",
    "\n```\n", "- ", "* ", "1. ", "12. ", "3) ", "A. ", "(b) ", "\xe2\x80\xa2 ", "0", "7",
    "42", "3.14", "1,000", "2.5.", "99%", "5 kg", "3 m/s", "10 ms", "x^2", "2^n", "a_1",
    "word12", "x1", "foo_bar", "CamelCase", "Paris", "The", "THE", "I", "A", "It",
    "\xc3\xa9", "\xc3\xa0", "\xc3\x9f", "\xc3\x89t\xc3\xa9", "\xc3\xb1", "\xc3\x97", "\xc3\xb7",
    "\xc2\xaa", "\xc2\xa0", "\xc5\x82", "\xc5\x99", "\xc5\x9f", "\xe1\xbb\xb1", "\xc5\x93",
    "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", "\xce\xb1\xce\xb2\xce\xb3",
    "\xe4\xbd\xa0\xe5\xa5\xbd", "\xe6\xbc\xa2\xe5\xad\x97", "\xe3\x81\x93\xe3\x82\x93",
    "\xe3\x82\xab\xe3\x82\xbf", "\xed\x95\x9c\xea\xb5\xad", "\xd8\xb9\xd8\xb1\xd8\xa8",
    "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d", "\xe0\xa4\xa8\xe0\xa4\xae", "\xe0\xb8\xaa\xe0\xb8\xa7",
    "\xe1\x83\x90", "\xd5\xa1", "\xef\xbc\x9f", "\xef\xbc\x8c", "\xe3\x80\x82", "\xe2\x80\x94",
    "\xe2\x80\x9c", "\xf0\x9f\x98\x80", "\xf0\xa0\x80\x80", "\xef\xbb\xbf", "\xef\xbc\xa1",
    "\x80", "\xbf", "\xc0\xaf", "\xc1", "\xc3", "\xe0\x80\x80", "\xe4\xbd", "\xed\xa0\x80",
    "\xf0\x9f", "\xf4\x90\x80\x80", "\xf5", "\xff", "\xfe", "\x01", "\x7f", "\x1b",
    "supercalifragilistic", "internationalization", "antidisestablishmentarianism",
    "comprehensive", "comprehensiveness", "implementation", "implementations", "requirements",
    "abcdefghijkl", "abcdefghijklm", "abcdefghijklmnopqrstuvwxyzabc", "Aaaaaaaaaaaaaaaa",
};

/* A word from the marker table, a stop-word list or the pieces, in a random case. */
static void add_word(buf_t *b)
{
    unsigned k = below(10);
    char w[64];
    size_t n;
    if (k < 4) {
        const char *t = markers[below((unsigned)(sizeof markers / sizeof markers[0]))].text;
        snprintf(w, sizeof w, "%s", t);
    } else if (k < 7) {
        const char *list = sw_lists[below(LANG_COUNT)];
        size_t len = strlen(list), at = below((unsigned)len), e;
        while (at > 0 && list[at - 1] != ' ')
            at--;
        e = at;
        while (list[e] != '\0' && list[e] != ' ')
            e++;
        snprintf(w, sizeof w, "%.*s", (int)(e - at), list + at);
    } else {
        snprintf(w, sizeof w, "%s", pieces[below((unsigned)(sizeof pieces / sizeof pieces[0]))]);
    }
    n = strlen(w);
    if (below(6) == 0 && n > 0 && w[0] >= 'a' && w[0] <= 'z')
        w[0] = (char)(w[0] - 32);
    else if (below(25) == 0)
        for (size_t i = 0; i < n; i++)
            if (w[i] >= 'a' && w[i] <= 'z')
                w[i] = (char)(w[i] - 32);
    buf_append(b, w, n);
}

static void random_text(buf_t *b)
{
    unsigned words, style = below(8);
    unsigned r = below(100);
    words = r < 5 ? 0 : r < 60 ? below(40) : r < 90 ? below(400) : 1000 + below(4000);
    for (unsigned i = 0; i < words; i++) {
        if (style == 0) { /* raw random bytes */
            unsigned char c = (unsigned char)(1 + below(255));
            buf_append(b, (const char *)&c, 1);
            continue;
        }
        add_word(b);
        if (below(3) != 0)
            buf_puts(b, pieces[below(16)]); /* mostly spacing and punctuation */
    }
}

/* In-place byte-level mutations of a copy of t. */
static void mutate(buf_t *out, const char *t, size_t n)
{
    unsigned k = 1 + below(8);
    buf_append(out, t, n);
    for (unsigned j = 0; j < k && buf_len(out) > 0; j++) {
        char *s = (char *)buf_ptr(out);
        size_t at = below((unsigned)buf_len(out));
        switch (below(4)) {
        case 0:
            s[at] = (char)(1 + below(255));
            break;
        case 1:
            s[at] = (char)(s[at] ^ 0x20);
            break;
        case 2:
            s[at] = pieces[below(16)][0];
            break;
        default:
            s[at] = (char)(0x80 | below(0x80));
            break;
        }
    }
}

/* ---- the data files ---- */

static void each_csv_prompt(const char *path, void (*fn)(const char *, size_t))
{
    FILE *f = fopen(path, "rb");
    buf_t field;
    int c;
    bool quoted = false, first_line = true;
    unsigned col = 0;
    if (f == NULL)
        return;
    buf_init(&field, 1u << 20);
    while ((c = fgetc(f)) != EOF) {
        if (quoted) {
            if (c == '"') {
                int d = fgetc(f);
                if (d == '"') {
                    buf_append(&field, "\"", 1);
                    continue;
                }
                quoted = false;
                if (d == EOF)
                    break;
                c = d;
            } else {
                char ch = (char)c;
                buf_append(&field, &ch, 1);
                continue;
            }
        }
        if (c == '"') {
            quoted = true;
        } else if (c == ',' || c == '\n') {
            if (col == 0 && !first_line)
                fn(buf_ptr(&field), buf_len(&field));
            buf_free(&field);
            buf_init(&field, 1u << 20);
            col = c == '\n' ? 0 : col + 1;
            if (c == '\n')
                first_line = false;
        } else if (c != '\r') {
            char ch = (char)c;
            buf_append(&field, &ch, 1);
        }
    }
    buf_free(&field);
    fclose(f);
}

static void each_jsonl_prompt(const char *path, void (*fn)(const char *, size_t))
{
    FILE *f = fopen(path, "rb");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    if (f == NULL)
        return;
    while ((n = getline(&line, &cap, f)) > 0) {
        cJSON *o = cJSON_ParseWithLength(line, (size_t)n);
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(o, "prompt");
        if (cJSON_IsString(pr))
            fn(pr->valuestring, strlen(pr->valuestring));
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
}

/* A rolling concatenation of data prompts: texts past the scorer's 4 KiB + 2 KiB
 * window and ts_language's 16 KiB and 2,000 words. */
static buf_t joined;
static unsigned long n_data;

static void data_prompt(const char *t, size_t n)
{
    compare(t, n);
    n_data++;
    if (n_data % 7 == 0) {
        buf_t m;
        buf_init(&m, n + 16);
        mutate(&m, t, n);
        compare(buf_ptr(&m), buf_len(&m));
        buf_free(&m);
    }
    buf_append(&joined, t, n);
    buf_puts(&joined, "\n");
    if (n_data % 13 == 0) {
        compare(buf_ptr(&joined), buf_len(&joined));
        if (buf_len(&joined) > 40000) {
            buf_free(&joined);
            buf_init(&joined, 1u << 20);
        }
    }
}

static const char *data_dir(void)
{
    const char *d = getenv("LLMROUTER_SCORER_DATA");
    return d != NULL && *d != '\0' ? d : "/work/shared/data";
}

static void test_diff_data(void **state)
{
    char path[4096];
    DIR *dir;
    struct dirent *e;
    (void)state;
    buf_init(&joined, 1u << 20);
    snprintf(path, sizeof path, "%s/routellm-mmlu", data_dir());
    dir = opendir(path);
    if (dir != NULL) {
        while ((e = readdir(dir)) != NULL) {
            size_t l = strlen(e->d_name);
            if (l > 4 && strcmp(e->d_name + l - 4, ".csv") == 0) {
                char p[4352];
                snprintf(p, sizeof p, "%s/%s", path, e->d_name);
                each_csv_prompt(p, data_prompt);
            }
        }
        closedir(dir);
    }
    snprintf(path, sizeof path, "%s/llmrouter-nim/weak-vs-strong.jsonl", data_dir());
    each_jsonl_prompt(path, data_prompt);
    buf_free(&joined);
    if (n_data == 0)
        print_message("note: no calibration data under %s; data part skipped\n", data_dir());
    else
        print_message("data: %lu prompts compared\n", n_data);
    assert_true(n_data == 0 || n_data > 10000);
}

static void test_diff_random(void **state)
{
    (void)state;
    for (int k = 0; k < 6000; k++) {
        buf_t b, m;
        buf_init(&b, 1u << 20);
        random_text(&b);
        compare(buf_ptr(&b), buf_len(&b));
        buf_init(&m, buf_len(&b) + 16);
        mutate(&m, buf_ptr(&b), buf_len(&b));
        compare(buf_ptr(&m), buf_len(&m));
        buf_free(&m);
        buf_free(&b);
    }
    compare("", 0);
}

/* Every string literal of the unit tests, unescaped. */
static void each_literal(const char *path, void (*fn)(const char *, size_t))
{
    FILE *f = fopen(path, "rb");
    buf_t src, lit;
    char chunk[4096];
    size_t n;
    const char *s;
    assert_non_null(f);
    buf_init(&src, 1u << 20);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&src, chunk, n);
    fclose(f);
    s = buf_ptr(&src);
    n = buf_len(&src);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'' && i + 2 < n) { /* skip character literals like '"' */
            i += s[i + 1] == '\\' ? 3 : 2;
            continue;
        }
        if (s[i] != '"')
            continue;
        buf_init(&lit, 1u << 16);
        for (i++; i < n && s[i] != '"'; i++) {
            char c = s[i];
            if (c == '\\' && i + 1 < n) {
                char e = s[++i];
                if (e == 'n')
                    c = '\n';
                else if (e == 't')
                    c = '\t';
                else if (e == 'r')
                    c = '\r';
                else if (e == 'x') {
                    unsigned v = 0;
                    while (i + 1 < n && strchr("0123456789abcdefABCDEF", s[i + 1]) != NULL &&
                           s[i + 1] != '\0') {
                        char h = s[++i];
                        v = v * 16 + (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
                    }
                    c = (char)v;
                } else if (e >= '0' && e <= '7') {
                    unsigned v = (unsigned)(e - '0');
                    for (int d = 0; d < 2 && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '7'; d++)
                        v = v * 8 + (unsigned)(s[++i] - '0');
                    c = (char)v;
                } else {
                    c = e;
                }
            }
            buf_append(&lit, &c, 1);
        }
        fn(buf_ptr(&lit), buf_len(&lit));
        buf_free(&lit);
    }
    buf_free(&src);
}

static unsigned long n_literals;

static void literal(const char *t, size_t n)
{
    compare(t, n);
    n_literals++;
}

static void test_diff_unit_fixtures(void **state)
{
    (void)state;
    each_literal("tests/unit/route/test_scorer.c", literal);
    each_literal("tests/unit/route/test_textstat.c", literal);
    print_message("fixtures: %lu string literals compared; %lu texts in all, %lu Latin-forced "
                  "language runs\n",
                  n_literals, n_texts, n_latin_runs);
    assert_true(n_literals > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diff_unit_fixtures),
        cmocka_unit_test(test_diff_random),
        cmocka_unit_test(test_diff_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
