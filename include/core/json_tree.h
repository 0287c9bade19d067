/* json_tree: the strict check of core/json.h and the cJSON parse of a
 * request body in one forward pass. It accepts and refuses exactly what
 * json_check(..., JSON_CHECK_STRICT, ...) does, with the same json_error_t,
 * and on acceptance builds the tree cJSON_ParseWithLength would build (same
 * nodes, types, strings, numbers, links), so the body is read once instead
 * of twice. All nodes and strings of one tree live in one or a few blocks:
 * the tree is read-only and freed only with json_tree_free (never
 * cJSON_Delete, cJSON_Detach*, cJSON_Replace*, cJSON_SetValuestring or
 * cJSON_AddItemTo* with its nodes). Pure functions; any thread. */
#ifndef LLMROUTER_JSON_TREE_H
#define LLMROUTER_JSON_TREE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "core/json.h"

typedef struct json_tree json_tree_t;

/* Checks s[0..n) as json_check(s, n, JSON_CHECK_STRICT, is_object, err)
 * does and builds its tree. Returns 1 if valid, with *out set (caller frees
 * with json_tree_free); 0 if not, with *err filled when err is not NULL
 * (byte for byte what json_check reports); -1 when memory ran out (err's
 * what is "out of memory"). *out is NULL unless 1 is returned. Sets
 * *is_object when the top-level value is an object. */
int json_tree_parse(const char *s, size_t n, json_tree_t **out, int *is_object, json_error_t *err);

/* The top-level value: borrowed, valid until json_tree_free; never NULL. */
cJSON *json_tree_root(const json_tree_t *t);

/* json_find_top_key(s, n, key, spans, max) for the text s the tree was
 * parsed from (borrowed), answered from the members of the top-level object
 * the pass recorded instead of a scan: keys compared raw (escapes not
 * resolved), value spans as json_find_top_key gives them. Returns the
 * number found (which may exceed max), or -1 if the top level is not an
 * object. */
int json_tree_top_key(const json_tree_t *t, const char *s, const char *key, json_span_t *spans,
                      int max);

/* Frees the tree and every node and string in it (NULL is a no-op). */
void json_tree_free(json_tree_t *t);

/* The tree cJSON_ParseWithLength(s, n) gives, for reading only: built by
 * json_tree_parse when the strict check accepts s (*t set: the nodes are
 * the tree's), else by cJSON_ParseWithLength itself (*t NULL), which also
 * reads what the strict check refuses (trailing bytes, invalid UTF-8,
 * repeated keys). Returns NULL where cJSON_ParseWithLength does. The
 * caller frees with json_tree_drop(root, *t) and never modifies it. */
cJSON *json_tree_read(const char *s, size_t n, json_tree_t **t);

/* Frees what json_tree_read returned (root may be NULL). */
void json_tree_drop(cJSON *root, json_tree_t *t);

#endif
