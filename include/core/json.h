/* json: byte-level helpers on JSON text that avoid a parse/serialise round
 * trip on the hot path: the strict validator of request bodies, locating the
 * value of a top-level key so it can be spliced out, and writing JSON string
 * literals and numbers. Pure functions; any thread. */
#ifndef LLMROUTER_JSON_H
#define LLMROUTER_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* ---- byte-level helpers shared by the validator (json.c) and the
 * one-pass tree builder (json_tree.c); inline: they run per non-ASCII
 * character and per number on the request path ---- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is invalid
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static inline size_t json_utf8_len(const unsigned char *s, size_t n)
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


/* s[i] starts a number: returns the offset past it, or 0 if invalid. */
static inline size_t json_number_end(const char *s, size_t n, size_t i)
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

typedef struct json_span {
    size_t off; /* offset of the value's first byte */
    size_t len; /* length of the value, quotes included for strings */
} json_span_t;

/* Finds every occurrence of key `key` in the top-level object of the JSON
 * text s[0..n) and stores the spans of their values in spans (at most max).
 * The text must already be known to be valid JSON (this scanner does not
 * validate). Returns the number found (which may exceed max), or -1 if the
 * top level is not an object. */
int json_find_top_key(const char *s, size_t n, const char *key, json_span_t *spans, int max);

/* Flags of json_check. */
enum {
    /* strings must be valid UTF-8 (no overlong forms, no UTF-8-encoded
     * surrogates, nothing above U+10FFFF, no truncated sequence), every
     * \uD800-\uDBFF escape must be followed by a \uDC00-\uDFFF one and no
     * low surrogate may stand alone, and \u0000 is refused (cJSON would end
     * the string there) */
    JSON_CHECK_TEXT = 1,
    /* no object (at any depth) may repeat a key; keys are compared decoded,
     * so "str\u0065am" repeats "stream" */
    JSON_CHECK_DUPLICATES = 2,
    JSON_CHECK_STRICT = JSON_CHECK_TEXT | JSON_CHECK_DUPLICATES,
};

/* The first problem json_check found. */
typedef struct json_error {
    size_t off;       /* byte offset of the problem (n for an early end) */
    const char *what; /* static text, e.g. "invalid UTF-8 in a string" */
    json_span_t key;  /* "duplicate key": the repeated key's raw text
                         (quotes excluded) at its later occurrence */
} json_error_t;

/* Checks that s[0..n) is exactly one JSON value per RFC 8259: whitespace
 * only SP, HT, LF and CR, no raw control byte in a string, only the
 * escapes of the grammar, numbers per the grammar, nothing after the value,
 * nesting up to 1000 levels; plus the checks of flags. One pass, iterative;
 * it allocates only to remember more than 64 keys of open objects.
 * Returns 1 if valid, 0 if not (with *err filled when err is not NULL), -1
 * when memory ran out. Sets *is_object when the top-level value is an
 * object. */
int json_check(const char *s, size_t n, unsigned flags, int *is_object, json_error_t *err);

/* json_check without flags (string contents are not checked for UTF-8;
 * duplicate keys are allowed). Returns 1 if valid, else 0. */
int json_validate(const char *s, size_t n, int *is_object);

/* A member of an object: its key, quotes included (raw: escapes not
 * resolved), and its value, as json_find_top_key gives it. */
typedef struct json_member {
    json_span_t key;
    json_span_t value;
} json_member_t;

/* json_validate that also records, in one pass, the members of the
 * top-level object in their order: the first max go to members, *count is
 * how many there are (it may exceed max; 0 when the text is invalid or not
 * an object). Returns 1 if valid, else 0. */
int json_validate_top(const char *s, size_t n, int *is_object, json_member_t *members, size_t max,
                      size_t *count);

/* Appends a number in one canonical spelling: integers below 2^53 without
 * fraction or exponent ("-0" as "0"), others with 17 significant digits,
 * non-finite values as null. Returns 0 or -1 if b's cap was reached. */
int json_append_number(buf_t *b, double d);

/* Appends str (len bytes, UTF-8) to b as a quoted JSON string literal;
 * bytes that are not valid UTF-8 become U+FFFD so the output is valid JSON.
 * Returns 0 or -1 if b's cap was reached. */
int json_append_string(buf_t *b, const char *str, size_t len);

#endif
