/* json: a single forward pass over already-validated JSON that tracks depth
 * and string state, to find top-level keys without building a tree. */
#include "core/json.h"

#include <math.h>
#include <stdint.h>
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

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is invalid
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;
    if (s[0] < 0xC2)
        return 0;
    if (s[0] < 0xE0) {
        len = 2;
        cp = s[0] & 0x1F;
    } else if (s[0] < 0xF0) {
        len = 3;
        cp = s[0] & 0x0F;
    } else if (s[0] < 0xF5) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

int json_append_string(buf_t *b, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)str;
    size_t start = 0;
    if (buf_append(b, "\"", 1) < 0)
        return -1;
    for (size_t i = 0; i < len;) {
        unsigned char ch = u[i];
        char esc[6];
        size_t elen = 2, skip = 1;
        if (ch >= 0x80) {
            size_t n = utf8_seq(u + i, len - i);
            if (n > 0) {
                i += n;
                continue;
            }
            /* invalid UTF-8 would make the whole document invalid JSON */
            memcpy(esc, "\\ufffd", 6);
            elen = 6;
        } else if (ch >= 0x20 && ch != '"' && ch != '\\') {
            i++;
            continue;
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
        i += skip;
        start = i;
    }
    if (buf_append(b, str + start, len - start) < 0)
        return -1;
    return buf_append(b, "\"", 1);
}

/* ---- validation ---- */

static size_t ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* s[i] == '"': returns the offset past the closing quote, or 0 if invalid. */
static size_t str_end(const char *s, size_t n, size_t i)
{
    static const char hex[] = "0123456789abcdefABCDEF";
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            return i + 1;
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            if (++i >= n)
                return 0;
            if (s[i] == 'u') {
                if (i + 4 >= n)
                    return 0;
                for (int k = 1; k <= 4; k++)
                    if (memchr(hex, s[i + k], sizeof hex - 1) == NULL || s[i + k] == '\0')
                        return 0;
                i += 4;
            } else if (strchr("\"\\/bfnrt", s[i]) == NULL || s[i] == '\0') {
                return 0;
            }
        }
    }
    return 0;
}

/* s[i] starts a number: returns the offset past it, or 0 if invalid. */
static size_t num_end(const char *s, size_t n, size_t i)
{
    size_t d;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n)
        return 0;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    } else {
        return 0;
    }
    if (i < n && s[i] == '.') {
        d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    return i;
}

int json_validate(const char *s, size_t n, int *is_object)
{
    char stack[1000]; /* '{' or '[' per open level */
    size_t depth = 0, i = ws(s, n, 0);
    *is_object = i < n && s[i] == '{';
    /* state: expecting a value (after ':' / ',' in arrays / start) */
    for (;;) {
        /* parse one value at s[i] */
        i = ws(s, n, i);
        if (i >= n)
            return 0;
        if (s[i] == '{' || s[i] == '[') {
            if (depth == sizeof stack)
                return 0;
            stack[depth++] = s[i];
            i = ws(s, n, i + 1);
            if (i < n && (s[i] == '}' || s[i] == ']')) {
                if ((s[i] == '}') != (stack[depth - 1] == '{'))
                    return 0;
                depth--;
                i++;
                goto after_value;
            }
            if (stack[depth - 1] == '{') {
                size_t e;
                if (i >= n || s[i] != '"' || (e = str_end(s, n, i)) == 0)
                    return 0;
                i = ws(s, n, e);
                if (i >= n || s[i] != ':')
                    return 0;
                i++;
            }
            continue;
        }
        if (s[i] == '"') {
            size_t e = str_end(s, n, i);
            if (e == 0)
                return 0;
            i = e;
        } else if (s[i] == '-' || (s[i] >= '0' && s[i] <= '9')) {
            size_t e = num_end(s, n, i);
            if (e == 0)
                return 0;
            i = e;
        } else if (n - i >= 4 && memcmp(s + i, "true", 4) == 0) {
            i += 4;
        } else if (n - i >= 5 && memcmp(s + i, "false", 5) == 0) {
            i += 5;
        } else if (n - i >= 4 && memcmp(s + i, "null", 4) == 0) {
            i += 4;
        } else {
            return 0;
        }
    after_value:
        for (;;) {
            i = ws(s, n, i);
            if (depth == 0)
                return i == n;
            if (i >= n)
                return 0;
            if (s[i] == ',') {
                i++;
                if (stack[depth - 1] == '{') {
                    size_t e;
                    i = ws(s, n, i);
                    if (i >= n || s[i] != '"' || (e = str_end(s, n, i)) == 0)
                        return 0;
                    i = ws(s, n, e);
                    if (i >= n || s[i] != ':')
                        return 0;
                    i++;
                }
                break; /* next value */
            }
            if ((s[i] == '}' && stack[depth - 1] == '{') || (s[i] == ']' && stack[depth - 1] == '[')) {
                depth--;
                i++;
                continue;
            }
            return 0;
        }
    }
}

int json_append_number(buf_t *b, double d)
{
    char tmp[40];
    if (isfinite(d) && d == floor(d) && fabs(d) < 9007199254740992.0)
        snprintf(tmp, sizeof tmp, "%.0f", d == 0 ? 0.0 : d); /* no "-0" */
    else if (isfinite(d))
        snprintf(tmp, sizeof tmp, "%.17g", d);
    else
        snprintf(tmp, sizeof tmp, "null");
    return buf_puts(b, tmp);
}
