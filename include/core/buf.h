/* buf: a byte buffer with a hard capacity, used for request bodies, upstream
 * responses and the per-stream output queue. Writing past the cap is an error
 * the caller turns into an HTTP error or backpressure — never silent growth.
 * Data lives in [data + r, data + w); consumers advance r. Not thread-safe:
 * a buffer belongs to one request on one loop thread. */
#ifndef LLMROUTER_BUF_H
#define LLMROUTER_BUF_H

#include <stddef.h>

typedef struct buf {
    char *data;
    size_t r;   /* read offset */
    size_t w;   /* write offset */
    size_t alloc;
    size_t cap; /* hard limit on readable bytes (w - r) */
} buf_t;

/* Initialises an empty buffer; no memory is allocated until the first append. */
void buf_init(buf_t *b, size_t cap);

/* Frees the storage; the buffer can be reused after buf_init. */
void buf_free(buf_t *b);

static inline size_t buf_len(const buf_t *b)
{
    return b->w - b->r;
}

/* The readable bytes; "" (never NULL) for a buffer that never allocated,
 * so that pointer arithmetic and memcpy on it stay defined. */
static inline const char *buf_ptr(const buf_t *b)
{
    return b->data != NULL ? b->data + b->r : "";
}

static inline size_t buf_room(const buf_t *b)
{
    return b->cap - buf_len(b);
}

/* Appends n bytes. Returns 0, or -1 (nothing written) if the result would
 * exceed the cap. */
int buf_append(buf_t *b, const void *p, size_t n);

/* Appends a NUL-terminated string (e.g. a literal). Same result as
 * buf_append. */
int buf_puts(buf_t *b, const char *s);

/* Makes room for n more bytes (up to the cap) without changing content. */
void buf_reserve(buf_t *b, size_t n);

/* Hands the storage over to the caller (who frees it with free()): the
 * content starts at the returned pointer + 0 and is *len bytes, followed by
 * a NUL. The buffer is left empty. */
char *buf_detach(buf_t *b, size_t *len);

/* Marks n readable bytes consumed (n <= buf_len). */
void buf_consume(buf_t *b, size_t n);

/* Empties the buffer, keeping its storage. */
void buf_reset(buf_t *b);

/* NUL-terminates the content without counting the NUL (needs one byte of
 * room beyond the cap, which buf reserves). Returns the string. */
char *buf_cstr(buf_t *b);

/* Writes x with `decimals` digits after the point into out (cap bytes,
 * NUL-terminated) exactly as snprintf(out, cap, "%.*f", decimals, x) does
 * in the default rounding mode, and returns the length. The exact path
 * covers 0 <= x < 2^40 and decimals 0..10 (the x-router-* headers, the
 * access log's times); anything else goes through snprintf. */
size_t buf_fmt_fixed(char *out, size_t cap, double x, int decimals);

#endif
