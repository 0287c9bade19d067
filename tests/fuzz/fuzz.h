/* fuzz.h: what the libFuzzer harnesses under tests/fuzz/ share.
 *
 * Each harness defines LLVMFuzzerTestOneInput and checks properties that
 * must hold for every input (besides "no crash, no leak, no undefined
 * behaviour", which AddressSanitizer and UBSan check): a finding aborts
 * with FUZZ_CHECK's message. Built by `make fuzz-build` with clang's
 * -fsanitize=fuzzer,address,undefined; see tests/fuzz/README.md. */
#ifndef LLMROUTER_FUZZ_H
#define LLMROUTER_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/config.h"
#include "upstream/sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz: property failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Loads a configuration file once (path relative to the repository root,
 * where make runs the harnesses; LLMROUTER_FUZZ_ROOT overrides the root).
 * Aborts when it does not load: a harness without its config finds nothing. */
static inline config_t *fuzz_config_file(const char *rel)
{
    char path[4096], err[4096];
    const char *root = getenv("LLMROUTER_FUZZ_ROOT");
    snprintf(path, sizeof path, "%s%s%s", root ? root : "", root ? "/" : "", rel);
    config_t *cfg = config_load(path, err, sizeof err, NULL, 0);
    if (cfg == NULL) {
        fprintf(stderr, "fuzz: %s does not load: %s\n", path, err);
        abort();
    }
    return cfg;
}

/* A NUL-terminated copy of data (the functions under test take lengths, but
 * a copy of the exact size lets ASan see any read past the end). */
static inline char *fuzz_dup(const uint8_t *data, size_t size)
{
    char *p = malloc(size + 1);
    if (p == NULL)
        abort();
    if (size)
        memcpy(p, data, size);
    p[size] = '\0';
    return p;
}

/* Splits data at the first occurrence of the byte sep: a, alen before it,
 * b, blen after (empty when sep is absent). */
static inline void fuzz_split2(const uint8_t *data, size_t size, uint8_t sep, const uint8_t **a,
                               size_t *alen, const uint8_t **b, size_t *blen)
{
    const uint8_t *s = size ? memchr(data, sep, size) : NULL;
    *a = data;
    *alen = s ? (size_t)(s - data) : size;
    *b = s ? s + 1 : data + size;
    *blen = s ? size - *alen - 1 : 0;
}

/* Calls fn(event bytes, data payload, ctx) for each complete SSE event of
 * p[0..n) as the daemon's scanner delimits it; the payload is the
 * concatenation of the event's data: lines (one leading space dropped, the
 * lines joined with '\n', as the SSE spec says), NUL-terminated in a
 * malloc'd buffer valid during the call. Returns the number of events. */
typedef void (*fuzz_event_fn)(const char *ev, size_t evlen, const char *payload, size_t plen,
                              bool is_done, void *ctx);

static inline size_t fuzz_sse_events(const char *p, size_t n, fuzz_event_fn fn, void *ctx)
{
    sse_scan_t sc;
    size_t off = 0, count = 0;
    sse_init(&sc);
    while (off < n) {
        sse_event_t ev;
        bool got = false;
        off += sse_feed(&sc, p + off, n - off, &ev, &got);
        if (!got)
            break;
        const char *e = p + ev.start;
        size_t elen = (size_t)(ev.end - ev.start);
        char *pay = malloc(elen + 1);
        size_t plen = 0;
        if (pay == NULL)
            abort();
        for (size_t i = 0; i < elen;) {
            size_t j = i;
            while (j < elen && e[j] != '\n' && e[j] != '\r')
                j++;
            if (j - i >= 5 && memcmp(e + i, "data:", 5) == 0) {
                size_t v = i + 5;
                if (v < j && e[v] == ' ')
                    v++;
                if (plen > 0)
                    pay[plen++] = '\n';
                memcpy(pay + plen, e + v, j - v);
                plen += j - v;
            }
            if (j < elen && e[j] == '\r' && j + 1 < elen && e[j + 1] == '\n')
                j++;
            i = j + 1;
        }
        pay[plen] = '\0';
        fn(e, elen, pay, plen, ev.is_done, ctx);
        free(pay);
        count++;
    }
    return count;
}

#endif
