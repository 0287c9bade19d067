/* util: small helpers shared by every module — allocation that aborts on
 * out-of-memory (for small internal objects only; sizes a client controls go
 * through checked paths), monotonic time, and bounded string helpers.
 * Any thread may call these. */
#ifndef LLMROUTER_UTIL_H
#define LLMROUTER_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* malloc/calloc/realloc/strdup that abort the process on failure. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* A JSON number (a double) as a token count: its integer part, 0 when it is
 * negative or NaN, 2^53 at most. Converting a double outside int64_t's range
 * is undefined behaviour, and a provider's usage object is not trusted. */
static inline int64_t util_count_i64(double d)
{
    if (!(d > 0))
        return 0;
    return d < 9007199254740992.0 ? (int64_t)d : (int64_t)9007199254740992;
}

/* A JSON number as an index: its integer part when |d| < 2^53, else
 * fallback (NaN included). */
static inline int64_t util_index_i64(double d, int64_t fallback)
{
    return d > -9007199254740992.0 && d < 9007199254740992.0 ? (int64_t)d : fallback;
}

/* Monotonic clock in milliseconds and microseconds. */
uint64_t util_now_ms(void);
uint64_t util_now_us(void);

/* Case-insensitive ASCII comparison of a NUL-terminated string with a
 * length-delimited one. Returns 1 when equal. */
int util_ieq(const char *a, const char *b, size_t blen);

/* Parses a non-negative decimal integer that must fill [s, s+n).
 * Returns 0 and stores it in *out, or -1. */
int util_parse_u64(const char *s, size_t n, uint64_t *out);

/* Fills buf with n random bytes from getrandom(2) (falls back to a clock
 * mix if the syscall is unavailable). */
void util_random(void *buf, size_t n);

struct sockaddr_storage;

/* Resolves a listen address (host name or literal, port) into ss/len.
 * Returns 0, or -1 with a message in err. May block on DNS: start-up only. */
int util_resolve_listen(const char *host, unsigned port, struct sockaddr_storage *ss,
                        unsigned *len, char *err, size_t errlen);

#define UTIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
