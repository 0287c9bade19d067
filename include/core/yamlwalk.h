/* yamlwalk: typed, position-aware access to a loaded libyaml document, for
 * configuration schemas. Every error is written as "FILE:LINE:COL: message"
 * to a caller-supplied buffer and counted, so a schema walk can go on and
 * report every problem at once. Scalars are expanded from the environment:
 * ${NAME} or ${NAME:-default}; "$$" is a literal '$'. Not thread-safe per
 * walker; any thread. */
#ifndef LLMROUTER_YAMLWALK_H
#define LLMROUTER_YAMLWALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

/* Environment values expanded so far (their variables may hold secrets):
 * every message quotes such a value as ${NAME}, never as itself. Values
 * shorter than YW_ENV_MIN_SECRET are not worth hiding and would garble
 * messages. */
#define YW_MAX_ENV 64
#define YW_ENV_MIN_SECRET 8
typedef struct yw_env {
    char name[256];
    const char *value; /* getenv's, borrowed */
} yw_env_t;

typedef struct ywalk {
    const char *file;      /* name used in messages */
    yaml_document_t *doc;  /* borrowed */
    char *err;             /* messages, one per line; may be NULL */
    size_t errlen, erruse;
    int nerr;              /* errors seen */
    char *warn;            /* warnings; may be NULL */
    size_t warnlen, warnuse;
    yw_env_t env[YW_MAX_ENV]; /* zero-initialise the walker */
    size_t n_env;
} ywalk_t;

/* Records an error at n's position (n may not be NULL). */
void yw_error(ywalk_t *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends raw text (the caller writes the position) as an error / a warning. */
void yw_append_error(ywalk_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void yw_append_warning(ywalk_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

yaml_node_t *yw_node(ywalk_t *c, int id);
/* "a scalar", "a list", "a mapping" — for messages. */
const char *yw_kind(const yaml_node_t *n);
/* An empty, "~" or "null" plain scalar. */
bool yw_is_null(const yaml_node_t *n);
/* Records "WHAT: expected T, found K" unless n has type t. */
bool yw_expect(ywalk_t *c, const yaml_node_t *n, yaml_node_type_t t, const char *what);

/* A scalar as an env-expanded string (caller frees), or NULL after an error. */
char *yw_str(ywalk_t *c, const yaml_node_t *n, const char *what);
/* A whole number within [min, max]; false after an error. */
bool yw_u64(ywalk_t *c, const yaml_node_t *n, const char *what, uint64_t min, uint64_t max,
            uint64_t *out);
bool yw_u32(ywalk_t *c, const yaml_node_t *n, const char *what, uint32_t min, uint32_t max,
            uint32_t *out);
/* true/false (also yes/no, on/off); false return after an error. */
bool yw_bool(ywalk_t *c, const yaml_node_t *n, const char *what, bool *out);
/* A string or a list of strings: fills a NULL-terminated, malloc'd array of
 * malloc'd strings (free with yw_strv_free) and its length. */
bool yw_strv(ywalk_t *c, const yaml_node_t *n, const char *what, char ***out, size_t *n_out);
void yw_strv_free(char **v);

/* A finite, non-negative number (a price in USD per million tokens). */
bool yw_price(ywalk_t *c, const yaml_node_t *n, const char *what, double *out);

/* Unpacks one pair of a mapping; reports non-scalar and duplicate keys. */
bool yw_map_pair(ywalk_t *c, const yaml_node_t *map, yaml_node_pair_t *p, const char **kname,
                 yaml_node_t **knode, yaml_node_t **vnode);
/* Records "unknown key K in WHERE (expected one of: EXPECTED)", followed by
 * '; did you mean "X"?' when yw_suggest finds a close key in EXPECTED (a
 * comma-separated list of the keys valid at that place). */
void yw_unknown_key(ywalk_t *c, const yaml_node_t *k, const char *where, const char *expected);

/* Longest word yw_edit_distance compares; longer ones are "far". */
#define YW_EDIT_MAX 64
/* Optimal-string-alignment (Damerau-Levenshtein with adjacent
 * transpositions) distance between a[0..la) and b[0..lb), ASCII letters
 * compared case-insensitively; SIZE_MAX when either is longer than
 * YW_EDIT_MAX. */
size_t yw_edit_distance(const char *a, size_t la, const char *b, size_t lb);
/* The word of list (comma- and/or space-separated) nearest to key when it
 * looks like a typo of it: at most 2 edits and at most a third of the longer
 * word (plus one), the first such word on ties. Returns a pointer into list
 * (borrowed, not NUL-terminated at the word's end) and sets *len, or NULL. */
const char *yw_suggest(const char *key, const char *list, size_t *len);

/* Iterates a mapping's pairs whose keys are valid: kname (const char *),
 * knode and vnode (yaml_node_t *) are set for each. */
#define YW_CAT_(a, b) a##b
#define YW_CAT(a, b) YW_CAT_(a, b)
#define YW_MAP_FOREACH(c, map, kname, knode, vnode)                                                \
    for (yaml_node_pair_t *YW_CAT(yw_p_, __LINE__) = (map)->data.mapping.pairs.start;             \
         YW_CAT(yw_p_, __LINE__) < (map)->data.mapping.pairs.top; YW_CAT(yw_p_, __LINE__)++)      \
        if (yw_map_pair((c), (map), YW_CAT(yw_p_, __LINE__), &(kname), &(knode), &(vnode)))

#endif
