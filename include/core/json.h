/* json: byte-level helpers on JSON text that avoid a parse/serialise round
 * trip on the hot path: locating the value of a top-level key so it can be
 * spliced out, and writing JSON string literals. Pure functions; any thread. */
#ifndef LLMROUTER_JSON_H
#define LLMROUTER_JSON_H

#include <stddef.h>

#include "core/buf.h"

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

/* Checks that s[0..n) is one complete JSON value (RFC 8259, surrounding
 * whitespace allowed; nesting up to 1000 levels; string contents are not
 * checked for UTF-8). Iterative, no allocation. Returns 1 if valid, and
 * sets *is_object when the top-level value is an object. */
int json_validate(const char *s, size_t n, int *is_object);

/* Appends a number in one canonical spelling: integers below 2^53 without
 * fraction or exponent ("-0" as "0"), others with 17 significant digits,
 * non-finite values as null. Returns 0 or -1 if b's cap was reached. */
int json_append_number(buf_t *b, double d);

/* Appends str (len bytes, UTF-8) to b as a quoted JSON string literal;
 * bytes that are not valid UTF-8 become U+FFFD so the output is valid JSON.
 * Returns 0 or -1 if b's cap was reached. */
int json_append_string(buf_t *b, const char *str, size_t len);

#endif
