/* buf: capped byte buffer. Storage grows geometrically up to cap + 1 (the +1
 * keeps room for a terminating NUL) and is compacted before growing. */
#include "core/buf.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
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

/* x = m * 2^e exactly (m < 2^53); x * 10^d = m * 10^d * 2^e < 2^87 fits in
 * 128 bits, so the decimal value is rounded from the exact product: to
 * nearest, ties to even, as glibc's printf does. */
size_t buf_fmt_fixed(char *out, size_t cap, double x, int decimals)
{
    static const uint64_t p10[] = {1,      10,      100,      1000,      10000,      100000,
                                     1000000, 10000000, 100000000, 1000000000, 10000000000ull};
    uint64_t bits, m;
    int e, s;
    unsigned __int128 p, q;
    char tmp[48];
    size_t n = 0, len;
    if (!(x >= 0 && x < 1099511627776.0) || decimals < 0 || decimals > 10 || cap < 2 ||
        signbit(x)) {
        int k = snprintf(out, cap, "%.*f", decimals, x);
        return k < 0 ? 0 : (size_t)k < cap ? (size_t)k : cap - 1;
    }
    memcpy(&bits, &x, sizeof bits);
    e = (int)((bits >> 52) & 0x7ff);
    m = bits & ((1ull << 52) - 1);
    if (e == 0) {
        e = -1074; /* subnormal (or zero) */
    } else {
        m |= 1ull << 52;
        e -= 1075;
    }
    p = (unsigned __int128)m * p10[decimals];
    if (e >= 0) {
        q = p << e; /* x < 2^40: m * 2^e fits, so does the product */
    } else {
        s = -e;
        if (s >= 120) {
            q = 0; /* p < 2^87 is below half of 2^s */
        } else {
            unsigned __int128 half = (unsigned __int128)1 << (s - 1);
            unsigned __int128 rem = p & (((unsigned __int128)1 << s) - 1);
            q = p >> s;
            if (rem > half || (rem == half && (q & 1)))
                q++;
        }
    }
    /* digits of q, least significant first, with `decimals` after the point
     * (64-bit divisions once q fits: 128-bit ones are library calls) */
    while (q > UINT64_MAX) {
        tmp[n++] = (char)('0' + (int)(q % 10));
        q /= 10;
    }
    {
        uint64_t v = (uint64_t)q;
        do {
            tmp[n++] = (char)('0' + (int)(v % 10));
            v /= 10;
        } while (v > 0 || n < (size_t)decimals + 1);
    }
    len = n + (decimals > 0 ? 1 : 0);
    if (len >= cap) { /* cut like snprintf would */
        int k = snprintf(out, cap, "%.*f", decimals, x);
        return k < 0 ? 0 : (size_t)k < cap ? (size_t)k : cap - 1;
    }
    {
        size_t o = 0;
        while (n > (size_t)decimals)
            out[o++] = tmp[--n];
        if (decimals > 0) {
            out[o++] = '.';
            while (n > 0)
                out[o++] = tmp[--n];
        }
        out[o] = '\0';
        return o;
    }
}
