/* json: a single forward pass over already-validated JSON that tracks depth
 * and string state, to find top-level keys without building a tree; the
 * strict validator every request body goes through; string and number
 * writers. */
#include "core/json.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* s[i] == '"'; returns the offset just past the closing quote. String
 * contents (most of a prompt) are skipped with memchr. */
static size_t skip_string(const char *s, size_t n, size_t i)
{
    for (i++; i < n;) {
        const char *q = memchr(s + i, '"', n - i);
        size_t k, bs = 0;
        if (q == NULL)
            return n;
        k = (size_t)(q - s);
        /* escaped if preceded by an odd number of backslashes */
        while (k - bs > i && s[k - bs - 1] == '\\')
            bs++;
        if (bs % 2 == 0)
            return k + 1;
        i = k + 1;
    }
    return n;
}

/* Skips one value starting at s[i] (no leading whitespace). */
static size_t skip_value(const char *s, size_t n, size_t i)
{
    size_t depth = 0;
    if (i >= n)
        return n;
    if (s[i] == '"')
        return skip_string(s, n, i);
    if (s[i] != '{' && s[i] != '[') {
        while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' &&
               s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            i++;
        return i;
    }
    for (; i < n; i++) {
        char ch = s[i];
        if (ch == '"') {
            i = skip_string(s, n, i) - 1;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (--depth == 0)
                return i + 1;
        }
    }
    return n;
}

int json_find_top_key(const char *s, size_t n, const char *key, json_span_t *spans, int max)
{
    size_t klen = strlen(key), i = skip_ws(s, n, 0);
    int found = 0;
    if (i >= n || s[i] != '{')
        return -1;
    i++;
    for (;;) {
        size_t kstart, kend;
        i = skip_ws(s, n, i);
        if (i >= n || s[i] == '}')
            return found;
        if (s[i] == ',') {
            i++;
            continue;
        }
        if (s[i] != '"')
            return found;
        kstart = i + 1;
        i = skip_string(s, n, i);
        kend = i - 1;
        i = skip_ws(s, n, i);
        if (i >= n || s[i] != ':')
            return found;
        i = skip_ws(s, n, i + 1);
        if (kend - kstart == klen && memcmp(s + kstart, key, klen) == 0) {
            size_t end = skip_value(s, n, i);
            if (found < max) {
                spans[found].off = i;
                spans[found].len = end - i;
            }
            found++;
            i = end;
        } else {
            i = skip_value(s, n, i);
        }
    }
}

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* The offset of the first byte at or after i that is not plain printable
 * ASCII ('"', '\\', a control byte or a non-ASCII one), or len. Whole
 * runs of plain bytes are then copied with one buf_append. */
static size_t plain_run_end(const unsigned char *u, size_t len, size_t i)
{
#if defined(__SSE2__)
    while (i + 16 <= len) {
        /* signed bytes below 0x20: the control bytes and, being negative,
         * every non-ASCII one */
        __m128i w = _mm_loadu_si128((const __m128i *)(const void *)(u + i));
        __m128i sp = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(w, _mm_set1_epi8('"')),
                                               _mm_cmpeq_epi8(w, _mm_set1_epi8('\\'))),
                                  _mm_cmplt_epi8(w, _mm_set1_epi8(0x20)));
        unsigned mask = (unsigned)_mm_movemask_epi8(sp);
        if (mask != 0)
            return i + (size_t)__builtin_ctz(mask);
        i += 16;
    }
#endif
    while (i < len && u[i] >= 0x20 && u[i] < 0x80 && u[i] != '"' && u[i] != '\\')
        i++;
    return i;
}

/* The runs written between escapes are the same as a byte-by-byte loop
 * writes (valid UTF-8 stays inside a run), so even a write that fails at
 * the cap leaves the same partial content. */
int json_append_string(buf_t *b, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)str;
    size_t start = 0;
    buf_reserve(b, len + 2);
    if (buf_append(b, "\"", 1) < 0)
        return -1;
    for (size_t i = 0;;) {
        unsigned char ch;
        char esc[6];
        size_t elen = 2;
        i = plain_run_end(u, len, i);
        if (i >= len)
            break;
        ch = u[i];
        if (ch >= 0x80) {
            size_t n = json_utf8_len(u + i, len - i);
            if (n > 0) {
                i += n;
                continue;
            }
            /* invalid UTF-8 would make the whole document invalid JSON */
            memcpy(esc, "\\ufffd", 6);
            elen = 6;
        } else {
            esc[0] = '\\';
            switch (ch) {
            case '"': esc[1] = '"'; break;
            case '\\': esc[1] = '\\'; break;
            case '\n': esc[1] = 'n'; break;
            case '\r': esc[1] = 'r'; break;
            case '\t': esc[1] = 't'; break;
            default:
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[ch >> 4];
                esc[5] = hex[ch & 15];
                elen = 6;
            }
        }
        if (buf_append(b, str + start, i - start) < 0 || buf_append(b, esc, elen) < 0)
            return -1;
        i++;
        start = i;
    }
    if (buf_append(b, str + start, len - start) < 0)
        return -1;
    return buf_append(b, "\"", 1);
}

/* ---- validation ----
 *
 * One forward pass, iterative (an explicit stack of open containers, no
 * recursion), no allocation unless more than KEYS_INLINE keys of open
 * objects must be remembered for the duplicate check. The request path runs
 * every body through it before cJSON sees it, so it must accept exactly
 * RFC 8259 and nothing cJSON would read differently from a provider. */

#define JSON_MAX_DEPTH 1000
#define KEYS_INLINE 64

/* Byte classes inside a string: 0 plain ASCII, 1 '"', 2 '\\', 3 control
 * (< 0x20, must be escaped), 4 non-ASCII (a UTF-8 sequence starts). */
#define C16(c) c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c
static const unsigned char STR_CLASS[256] = {
    C16(3), C16(3),
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20: '"' */
    C16(0), C16(0),
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, /* 0x50: '\\' */
    C16(0), C16(0),
    C16(4), C16(4), C16(4), C16(4), C16(4), C16(4), C16(4), C16(4),
};
#undef C16

/* A key of an object still open: where it is and a hash of its decoded
 * bytes, so "str\u0065am" and "stream" compare equal. */
typedef struct jkey {
    size_t off;    /* first byte after the opening quote */
    size_t len;    /* raw length, quotes excluded */
    size_t dlen;   /* decoded length */
    uint64_t hash; /* FNV-1a of the decoded bytes */
} jkey_t;

typedef struct jcheck {
    const char *s;
    size_t n;
    unsigned flags;
    json_error_t *err;
    jkey_t inline_keys[KEYS_INLINE];
    jkey_t *keys; /* inline_keys, or a heap copy once they do not fit */
    size_t nkeys, cap;
    size_t key_end; /* past the closing quote of the key scan_key read last */
    bool oom;
} jcheck_t;

static size_t ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* Records the first problem; returns 0 so callers can `return bad(...)`. */
static size_t bad(jcheck_t *jc, size_t off, const char *what)
{
    jc->err->off = off;
    jc->err->what = what;
    return 0;
}

/* The value of 4 hex digits at s[i..i+4), or -1. */
static long hex4(const char *s, size_t n, size_t i)
{
    long v = 0;
    if (n < 4 || i > n - 4)
        return -1;
    for (size_t k = i; k < i + 4; k++) {
        char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

/* s[i] == '\\': returns the offset past the escape, or 0. */
static size_t scan_escape(jcheck_t *jc, size_t i)
{
    const char *s = jc->s;
    size_t n = jc->n;
    long u, lo;
    if (i + 1 >= n)
        return bad(jc, n, "unexpected end of input in a string");
    switch (s[i + 1]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        return i + 2;
    case 'u':
        break;
    default:
        return bad(jc, i, "invalid escape sequence in a string");
    }
    u = hex4(s, n, i + 2);
    if (u < 0)
        return bad(jc, i, "invalid \\u escape (four hex digits expected)");
    if (!(jc->flags & JSON_CHECK_TEXT))
        return i + 6;
    /* cJSON ends its C string at a NUL, so "a\u0000b" would be read (and
     * keyed in the cache) as "a" */
    if (u == 0)
        return bad(jc, i, "\\u0000 in a string is not supported");
    if (u >= 0xDC00 && u <= 0xDFFF)
        return bad(jc, i, "unpaired UTF-16 surrogate escape in a string");
    if (u < 0xD800 || u > 0xDBFF)
        return i + 6;
    if (i + 7 >= n || s[i + 6] != '\\' || s[i + 7] != 'u' || (lo = hex4(s, n, i + 8)) < 0xDC00 ||
        lo > 0xDFFF)
        return bad(jc, i, "unpaired UTF-16 surrogate escape in a string");
    return i + 12;
}

/* s[i] == '"': returns the offset past the closing quote, or 0. String
 * contents (most of a prompt) take the table-driven loop. */
static size_t scan_string(jcheck_t *jc, size_t i)
{
    const unsigned char *s = (const unsigned char *)jc->s;
    size_t n = jc->n;
    bool text = (jc->flags & JSON_CHECK_TEXT) != 0;
    for (i++;;) {
        size_t m;
        while (i < n && STR_CLASS[s[i]] == 0)
            i++;
        if (i >= n)
            return bad(jc, n, "unexpected end of input in a string");
        switch (STR_CLASS[s[i]]) {
        case 1:
            return i + 1;
        case 2:
            i = scan_escape(jc, i);
            if (i == 0)
                return 0;
            break;
        case 3:
            return bad(jc, i, "control character in a string (it must be escaped)");
        default:
            if (!text) {
                i++;
                break;
            }
            m = json_utf8_len(s + i, n - i);
            if (m == 0)
                return bad(jc, i, "invalid UTF-8 in a string");
            i += m;
        }
    }
}

/* Decodes a validated key one byte at a time (escapes resolved, \u as
 * UTF-8), without allocating. */
typedef struct kdec {
    const char *s;
    size_t i, n;
    unsigned char pend[4];
    int np, pi;
} kdec_t;

static int kdec_next(kdec_t *d)
{
    const char *s = d->s;
    long cp, lo;
    if (d->pi < d->np)
        return d->pend[d->pi++];
    if (d->i >= d->n)
        return -1;
    if (s[d->i] != '\\')
        return (unsigned char)s[d->i++];
    switch (s[d->i + 1]) {
    case 'b': d->i += 2; return '\b';
    case 'f': d->i += 2; return '\f';
    case 'n': d->i += 2; return '\n';
    case 'r': d->i += 2; return '\r';
    case 't': d->i += 2; return '\t';
    case 'u': break;
    default: d->i += 2; return (unsigned char)s[d->i - 1];
    }
    cp = hex4(s, d->n, d->i + 2);
    d->i += 6;
    if (cp >= 0xD800 && cp <= 0xDBFF && d->i + 1 < d->n && s[d->i] == '\\' && s[d->i + 1] == 'u' &&
        (lo = hex4(s, d->n, d->i + 2)) >= 0xDC00 && lo <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        d->i += 6;
    }
    /* a lone surrogate (only without JSON_CHECK_TEXT) is encoded like any
     * other code point: equal escapes still compare equal */
    if (cp < 0x80) {
        d->pend[0] = (unsigned char)cp;
        d->np = 1;
    } else if (cp < 0x800) {
        d->pend[0] = (unsigned char)(0xC0 | cp >> 6);
        d->pend[1] = (unsigned char)(0x80 | (cp & 0x3F));
        d->np = 2;
    } else if (cp < 0x10000) {
        d->pend[0] = (unsigned char)(0xE0 | cp >> 12);
        d->pend[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        d->pend[2] = (unsigned char)(0x80 | (cp & 0x3F));
        d->np = 3;
    } else {
        d->pend[0] = (unsigned char)(0xF0 | cp >> 18);
        d->pend[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        d->pend[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        d->pend[3] = (unsigned char)(0x80 | (cp & 0x3F));
        d->np = 4;
    }
    d->pi = 1;
    return d->pend[0];
}

static void key_hash(const char *s, jkey_t *k)
{
    uint64_t h = 14695981039346656037ull;
    size_t dlen = 0;
    if (memchr(s + k->off, '\\', k->len) == NULL) {
        for (size_t i = 0; i < k->len; i++)
            h = (h ^ (unsigned char)s[k->off + i]) * 1099511628211ull;
        dlen = k->len;
    } else {
        kdec_t d = {.s = s + k->off, .n = k->len};
        int c;
        while ((c = kdec_next(&d)) >= 0) {
            h = (h ^ (unsigned)c) * 1099511628211ull;
            dlen++;
        }
    }
    k->hash = h;
    k->dlen = dlen;
}

static bool key_equal(const char *s, const jkey_t *a, const jkey_t *b)
{
    kdec_t da = {.s = s + a->off, .n = a->len}, db = {.s = s + b->off, .n = b->len};
    int ca, cb;
    if (a->hash != b->hash || a->dlen != b->dlen)
        return false;
    if (a->len == a->dlen && b->len == b->dlen)
        return memcmp(s + a->off, s + b->off, a->len) == 0;
    do {
        ca = kdec_next(&da);
        cb = kdec_next(&db);
    } while (ca == cb && ca >= 0);
    return ca == cb;
}

static size_t unexpected(jcheck_t *jc, size_t i)
{
    if (i >= jc->n)
        return bad(jc, jc->n, "unexpected end of input");
    if ((unsigned char)jc->s[i] < 0x20)
        return bad(jc, i, "control character outside a string");
    return bad(jc, i, "unexpected character");
}

/* s[i] should start "key" ':' in an object; returns the offset past the
 * colon, or 0. Remembers the key for the duplicate check. */
static size_t scan_key(jcheck_t *jc, size_t i)
{
    size_t e;
    if (i >= jc->n || jc->s[i] != '"')
        return unexpected(jc, i);
    e = scan_string(jc, i);
    if (e == 0)
        return 0;
    jc->key_end = e;
    if (jc->flags & JSON_CHECK_DUPLICATES) {
        jkey_t *k;
        if (jc->nkeys == jc->cap) {
            size_t cap = jc->cap * 2;
            jkey_t *nk = jc->keys == jc->inline_keys ? malloc(cap * sizeof *nk)
                                                      : realloc(jc->keys, cap * sizeof *nk);
            if (nk == NULL) {
                jc->oom = true;
                return bad(jc, i, "out of memory");
            }
            if (jc->keys == jc->inline_keys)
                memcpy(nk, jc->inline_keys, sizeof jc->inline_keys);
            jc->keys = nk;
            jc->cap = cap;
        }
        k = &jc->keys[jc->nkeys++];
        k->off = i + 1;
        k->len = e - i - 2;
        key_hash(jc->s, k);
    }
    i = ws(jc->s, jc->n, e);
    if (i >= jc->n || jc->s[i] != ':')
        return unexpected(jc, i);
    return i + 1;
}

static int key_order(const void *pa, const void *pb)
{
    const jkey_t *a = pa, *b = pb;
    if (a->hash != b->hash)
        return a->hash < b->hash ? -1 : 1;
    return a->off < b->off ? -1 : a->off > b->off;
}

/* An object whose keys are keys[mark..nkeys) closes: reports a repeated
 * key (at its later occurrence) and forgets them. Small objects compare
 * pairwise; large ones sort by hash, so a body with 50,000 keys in one
 * object costs n log n, not n^2. */
static bool close_object(jcheck_t *jc, size_t mark)
{
    jkey_t *k = jc->keys + mark;
    size_t cnt = jc->nkeys - mark;
    jc->nkeys = mark;
    if (cnt <= 16) {
        for (size_t b = 1; b < cnt; b++)
            for (size_t a = 0; a < b; a++)
                if (key_equal(jc->s, &k[a], &k[b])) {
                    jc->err->key = (json_span_t){k[b].off, k[b].len};
                    bad(jc, k[b].off - 1, "duplicate key");
                    return false;
                }
        return true;
    }
    qsort(k, cnt, sizeof *k, key_order);
    for (size_t a = 0; a < cnt; a++)
        for (size_t b = a + 1; b < cnt && k[b].hash == k[a].hash; b++)
            if (key_equal(jc->s, &k[a], &k[b])) {
                jc->err->key = (json_span_t){k[b].off, k[b].len};
                bad(jc, k[b].off - 1, "duplicate key");
                return false;
            }
    return true;
}


/* Where check_top records the top-level object's members (NULL: not
 * recorded). */
typedef struct jtop {
    json_member_t *m;
    size_t max, count;
    bool open; /* a member's value has started and not yet ended */
} jtop_t;

/* A top-level member's key is s[k..e) (quotes included) and its value
 * starts at the first non-blank byte from v. */
static void top_begin(jtop_t *t, const char *s, size_t n, size_t k, size_t e, size_t v)
{
    if (t->count < t->max) {
        t->m[t->count].key = (json_span_t){.off = k, .len = e - k};
        t->m[t->count].value.off = ws(s, n, v);
    }
    t->open = true;
}

static int check_top(const char *s, size_t n, unsigned flags, int *is_object, json_error_t *err,
                     jtop_t *top)
{
    jcheck_t check, *jc = &check;
    json_error_t scratch;
    char stack[JSON_MAX_DEPTH];   /* '{' or '[' per open level */
    size_t marks[JSON_MAX_DEPTH]; /* jc->nkeys when that level opened */
    size_t depth = 0, i;
    int rc = 0;

    if (err == NULL)
        err = &scratch;
    memset(err, 0, sizeof *err);
    jc->s = s;
    jc->n = n;
    jc->flags = flags;
    jc->err = err;
    jc->keys = jc->inline_keys;
    jc->nkeys = 0;
    jc->cap = KEYS_INLINE;
    jc->key_end = 0;
    jc->oom = false;

    i = ws(s, n, 0);
    *is_object = i < n && s[i] == '{';
    for (;;) {
        char c;
        /* a value at s[i] */
        i = ws(s, n, i);
        if (i >= n) {
            unexpected(jc, i);
            goto out;
        }
        c = s[i];
        if (c == '{' || c == '[') {
            if (depth == JSON_MAX_DEPTH) {
                bad(jc, i, "nesting deeper than 1000 levels");
                goto out;
            }
            stack[depth] = c;
            marks[depth] = jc->nkeys;
            depth++;
            i = ws(s, n, i + 1);
            if (i < n && s[i] == (c == '{' ? '}' : ']')) {
                depth--;
                i++;
                goto after_value;
            }
            if (c == '{') {
                size_t k = i;
                if ((i = scan_key(jc, i)) == 0)
                    goto out;
                if (top != NULL && depth == 1)
                    top_begin(top, s, n, k, jc->key_end, i);
            }
            continue;
        }
        if (c == '"') {
            i = scan_string(jc, i);
            if (i == 0)
                goto out;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t e = json_number_end(s, n, i);
            if (e == 0) {
                bad(jc, i, "invalid number");
                goto out;
            }
            i = e;
        } else if (n - i >= 4 && memcmp(s + i, "true", 4) == 0) {
            i += 4;
        } else if (n - i >= 5 && memcmp(s + i, "false", 5) == 0) {
            i += 5;
        } else if (n - i >= 4 && memcmp(s + i, "null", 4) == 0) {
            i += 4;
        } else {
            unexpected(jc, i);
            goto out;
        }
    after_value:
        for (;;) {
            if (top != NULL && depth == 1 && top->open) {
                if (top->count < top->max)
                    top->m[top->count].value.len = i - top->m[top->count].value.off;
                top->count++;
                top->open = false;
            }
            i = ws(s, n, i);
            if (depth == 0) {
                if (i == n)
                    rc = 1;
                else if ((unsigned char)s[i] < 0x20)
                    unexpected(jc, i);
                else
                    bad(jc, i, "unexpected data after the JSON value");
                goto out;
            }
            if (i >= n) {
                unexpected(jc, i);
                goto out;
            }
            if (s[i] == ',') {
                i++;
                if (stack[depth - 1] == '{') {
                    size_t k = ws(s, n, i);
                    if ((i = scan_key(jc, k)) == 0)
                        goto out;
                    if (top != NULL && depth == 1)
                        top_begin(top, s, n, k, jc->key_end, i);
                }
                break; /* next value */
            }
            if (s[i] == '}' && stack[depth - 1] == '{') {
                if ((flags & JSON_CHECK_DUPLICATES) && !close_object(jc, marks[depth - 1]))
                    goto out;
                depth--;
                i++;
                continue;
            }
            if (s[i] == ']' && stack[depth - 1] == '[') {
                depth--;
                i++;
                continue;
            }
            unexpected(jc, i);
            goto out;
        }
    }
out:
    if (jc->oom)
        rc = -1;
    if (jc->keys != jc->inline_keys)
        free(jc->keys);
    return rc;
}

int json_check(const char *s, size_t n, unsigned flags, int *is_object, json_error_t *err)
{
    return check_top(s, n, flags, is_object, err, NULL);
}

int json_validate(const char *s, size_t n, int *is_object)
{
    return check_top(s, n, 0, is_object, NULL, NULL) == 1;
}

int json_validate_top(const char *s, size_t n, int *is_object, json_member_t *members, size_t max,
                      size_t *count)
{
    jtop_t top = {.m = members, .max = max};
    int ok = check_top(s, n, 0, is_object, NULL, &top) == 1;
    *count = ok && *is_object ? top.count : 0;
    return ok;
}

/* An integral double below 2^53 in magnitude is written with a digit loop:
 * the digits snprintf's "%.0f" gives, without its cost (token counts and
 * timestamps are most of the numbers the doors write). */
int json_append_number(buf_t *b, double d)
{
    char tmp[40];
    if (isfinite(d) && d == floor(d) && fabs(d) < 9007199254740992.0) {
        int64_t v = (int64_t)d; /* exact: |d| < 2^53; -0 becomes 0 (no "-0") */
        uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        char *e = tmp + sizeof tmp, *p = e;
        do {
            *--p = (char)('0' + m % 10);
            m /= 10;
        } while (m != 0);
        if (v < 0)
            *--p = '-';
        return buf_append(b, p, (size_t)(e - p));
    }
    if (isfinite(d))
        snprintf(tmp, sizeof tmp, "%.17g", d);
    else
        snprintf(tmp, sizeof tmp, "null");
    return buf_puts(b, tmp);
}
