/* estimate: prints textstat's view of a file (or stdin) as one JSON line, for
 * measure.mjs: byte and code point counts, the ASCII share, letters per
 * script, the token estimate, dominant script and language.
 *
 *   estimate FILE            one JSON line
 *   estimate -b N FILE       also times N rounds of ts_scan and ts_language
 *                            on the file's first ~2,000 estimated tokens
 *                            (ns per call, best of 20 batches)
 *
 * Build (measure.mjs does this):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude tests/bench/tokens/estimate.c \
 *      src/textstat.c -o build/bench/estimate -lpthread */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "route/textstat.h"

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap);
    size_t got;

    if (p == NULL)
        return NULL;
    while ((got = fread(p + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *q = realloc(p, cap * 2);
            if (q == NULL) {
                free(p);
                return NULL;
            }
            p = q;
            cap *= 2;
        }
    }
    if (ferror(f)) {
        free(p);
        return NULL;
    }
    *len = n;
    return p;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    long rounds = 0;
    size_t len = 0, ascii = 0, ascii_letters = 0;
    char *text;
    FILE *f;
    ts_stats_t st;
    uint64_t nonascii_letters = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-b") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            rounds = strtol(argv[++i], &end, 10);
            if (errno != 0 || *end != '\0' || rounds < 1) {
                fprintf(stderr, "estimate: bad -b count\n");
                return 2;
            }
        } else {
            path = argv[i];
        }
    }
    f = path != NULL ? fopen(path, "rb") : stdin;
    if (f == NULL) {
        perror(path);
        return 1;
    }
    text = read_all(f, &len);
    if (f != stdin)
        fclose(f);
    if (text == NULL) {
        fprintf(stderr, "estimate: read failed\n");
        return 1;
    }

    ts_scan(text, len, &st);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x80) {
            ascii++;
            ascii_letters += ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
        }
    }
    for (int k = 1; k < TS_SCRIPT_COUNT; k++)
        nonascii_letters += st.letters[k];
    nonascii_letters -= ascii_letters;

    printf("{\"bytes\":%u,\"codepoints\":%u,\"ascii\":%zu,\"tokens\":%u,", st.bytes,
           st.codepoints, ascii, st.tokens);
    /* non-ASCII code points that are not letters (punctuation, symbols) */
    printf("\"symbols\":%llu,\"letters\":{",
           (unsigned long long)(st.codepoints - ascii - nonascii_letters));
    for (int k = 1; k < TS_SCRIPT_COUNT; k++) {
        uint32_t n = st.letters[k];
        if (k == TS_SCRIPT_LATIN)
            n -= (uint32_t)ascii_letters; /* non-ASCII Latin only */
        printf("%s\"%s\":%u", k > 1 ? "," : "", ts_script_name((enum ts_script)k), n);
    }
    printf("},\"ascii_letters\":%zu,\"dominant\":\"%s\",\"language\":\"%s\"", ascii_letters,
           ts_script_name(ts_dominant_script(&st)), ts_language(text, len, &st));

    if (rounds > 0) {
        /* A prompt of about 2,000 estimated tokens: the shortest prefix that
         * reaches them (whole text if shorter), cut before a UTF-8 lead byte.
         * Timed as the best of 20 batches, the least disturbed by other
         * processes. */
        size_t lo = 0, hi = len, n;
        volatile uint32_t sink = 0;
        const char *volatile lang = NULL;
        double scan_ns = 1e300, lang_ns = 1e300;
        long per = rounds / 20 > 0 ? rounds / 20 : 1;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            ts_scan(text, mid, &st);
            if (st.tokens < 2000)
                lo = mid + 1;
            else
                hi = mid;
        }
        n = lo;
        while (n < len && ((unsigned char)text[n] & 0xC0) == 0x80)
            n++;
        ts_scan(text, n, &st);
        for (int b = 0; b < 20; b++) {
            double t0 = now_ns(), t;
            for (long r = 0; r < per; r++) {
                ts_scan(text, n, &st);
                sink += st.tokens;
            }
            t = (now_ns() - t0) / (double)per;
            scan_ns = t < scan_ns ? t : scan_ns;
            t0 = now_ns();
            for (long r = 0; r < per; r++)
                lang = ts_language(text, n, &st);
            t = (now_ns() - t0) / (double)per;
            lang_ns = t < lang_ns ? t : lang_ns;
        }
        (void)sink;
        (void)lang;
        printf(",\"bench_bytes\":%zu,\"bench_tokens\":%u,\"scan_ns\":%.0f,\"language_ns\":%.0f", n,
               st.tokens, scan_ns, lang_ns);
    }
    printf("}\n");
    free(text);
    return 0;
}
