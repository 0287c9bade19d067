/* buf: capped byte buffer. Storage grows geometrically up to cap + 1 (the +1
 * keeps room for a terminating NUL) and is compacted before growing. */
#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

void buf_init(buf_t *b, size_t cap)
{
    b->data = NULL;
    b->r = b->w = b->alloc = 0;
    b->cap = cap;
}

void buf_free(buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->r = b->w = b->alloc = 0;
}

static void reserve(buf_t *b, size_t need)
{
    size_t want;
    if (b->r > 0 && b->alloc - b->w < need) {
        memmove(b->data, b->data + b->r, b->w - b->r);
        b->w -= b->r;
        b->r = 0;
    }
    if (b->alloc - b->w >= need)
        return;
    want = b->alloc ? b->alloc : 1024;
    while (want - b->w < need)
        want *= 2;
    if (want > b->cap + 1)
        want = b->cap + 1;
    b->data = xrealloc(b->data, want);
    b->alloc = want;
}

int buf_append(buf_t *b, const void *p, size_t n)
{
    if (n > buf_room(b))
        return -1;
    if (n == 0)
        return 0;
    reserve(b, n + 1);
    memcpy(b->data + b->w, p, n);
    b->w += n;
    return 0;
}

void buf_reserve(buf_t *b, size_t n)
{
    if (n > buf_room(b))
        n = buf_room(b);
    reserve(b, n + 1);
}

char *buf_detach(buf_t *b, size_t *len)
{
    char *p;
    buf_cstr(b);
    if (b->r > 0) {
        memmove(b->data, b->data + b->r, b->w - b->r + 1);
        b->w -= b->r;
        b->r = 0;
    }
    p = b->data;
    *len = b->w;
    b->data = NULL;
    b->r = b->w = b->alloc = 0;
    return p;
}

int buf_puts(buf_t *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

void buf_consume(buf_t *b, size_t n)
{
    b->r += n;
    if (b->r >= b->w)
        b->r = b->w = 0;
}

void buf_reset(buf_t *b)
{
    b->r = b->w = 0;
}

char *buf_cstr(buf_t *b)
{
    reserve(b, 1);
    b->data[b->w] = '\0';
    return b->data + b->r;
}
