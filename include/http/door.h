/* door: what the front doors other than Chat Completions share. A request
 * may come in through one of three doors — OpenAI Chat Completions (the
 * daemon's internal form: the router, rules, cache and accounting read it),
 * Anthropic Messages (http/door_messages.h) or OpenAI Responses
 * (http/door_responses.h). A door translates its request into a Chat
 * Completions body once, at the start, and the Chat Completions answer (or
 * SSE chunk stream) back into its own format at the end.
 *
 * This header holds the door enum, the strict-body check every door runs
 * first, the splice of a new "model" into a raw body (for pass-through to a
 * provider that speaks the door's format natively), the usage record both
 * answer translators read, and a small capped JSON writer. Pure functions;
 * any thread. */
#ifndef LLMROUTER_DOOR_H
#define LLMROUTER_DOOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/json_tree.h"
#include "http/request.h"

struct cJSON;

/* Which door a request came through. DOOR_CHAT is 0 so that a zeroed
 * request is a Chat Completions (or legacy completions/embeddings) one. */
enum door {
    DOOR_CHAT = 0,  /* /v1/chat/completions, /v1/completions, /v1/embeddings */
    DOOR_MESSAGES,  /* /v1/messages (and /v1/messages/count_tokens) */
    DOOR_RESPONSES, /* /v1/responses */
};

/* "chat", "messages" or "responses". Static string. */
const char *door_name(enum door d);

/* The door a request came through as the access log's "door" field and the
 * metrics' door label name it: "messages", "responses", or on the chat door
 * the endpoint — "chat", "completions", "embeddings". Static string. */
const char *door_label(enum door d, enum endpoint ep);

/* The door of a request path (query string already removed), with or without
 * the "/v1" prefix: "/v1/messages" and "/messages" are DOOR_MESSAGES,
 * "/v1/responses" and "/responses" DOOR_RESPONSES; every other path is
 * DOOR_CHAT. *count_tokens (may be NULL) is set for
 * "/v1/messages/count_tokens". path is borrowed. */
enum door door_for_path(const char *path, bool *count_tokens);

/* The strict pass of request.c (json_tree_parse: json_check's
 * JSON_CHECK_STRICT verdict, a top-level object) on a door's raw body, so a
 * door refuses what cJSON and a provider could read differently before
 * translating it; the same pass builds the tree. Returns 0 with *tree set
 * (caller frees with json_tree_free; its root is an object), or -1 with
 * *err filled (400 invalid_json, or 503 when memory ran out) and *tree
 * NULL. body is borrowed. */
int door_parse_body(const char *body, size_t len, json_tree_t **tree, req_error_t *err);

/* A parsed answer: the tree cJSON_ParseWithLength would build, read-only. */
typedef struct door_json {
    json_tree_t *_tree; /* from json_tree_parse, when the text was strict JSON */
    struct cJSON *_cj;  /* from cJSON_ParseWithLength otherwise */
} door_json_t;

/* The tree cJSON_ParseWithLength(s, n) builds (NULL where it gives NULL),
 * read through json_tree's one pass when s[0..n) is strict JSON (the tree
 * is then the same, json_tree.h) and through cJSON otherwise (trailing
 * bytes, repeated keys, lone surrogates: cJSON's own reading stays the
 * answer). Borrowed from *j until door_json_free; never modify it. */
const struct cJSON *door_json_parse(door_json_t *j, const char *s, size_t n);

/* Frees what door_json_parse built (a zeroed door_json_t is a no-op). */
void door_json_free(door_json_t *j);

/* Fills *err (status, type "invalid_request_error", code, param, message —
 * formatted like printf from fmt and one string argument arg, which may be
 * NULL). Returns -1 so that callers can `return door_fail(...)`. code, param
 * and fmt must be static strings. */
int door_fail(req_error_t *err, unsigned status, const char *code, const char *param,
              const char *fmt, const char *arg);

/* Appends to out the raw body with the value of its top-level "model" (which
 * must occur exactly once) replaced by the JSON string `model`, every other
 * byte kept as is — for pass-through to a provider that speaks the door's
 * format (thinking signatures and cache_control survive byte for byte).
 * When add_store_false is set and the body has no top-level "store" key,
 * "store":false is added (the Responses API stores by default; a stateless
 * router must not). Returns 0, -1 when the body has not exactly one "model"
 * key or is not an object, -2 when out's cap was reached. body and model are
 * borrowed; out is the caller's. */
int door_replace_model(const char *body, size_t len, const char *model, bool add_store_false,
                       buf_t *out);

/* Token counts of a Chat Completions answer's "usage" (all -1 when absent). */
typedef struct door_usage {
    int64_t prompt;      /* prompt_tokens (cached and cache-write included) */
    int64_t completion;  /* completion_tokens */
    int64_t cached;      /* prompt_tokens_details.cached_tokens */
    int64_t cache_write; /* prompt_tokens_details.cache_write_tokens */
    int64_t reasoning;   /* completion_tokens_details.reasoning_tokens */
} door_usage_t;

/* Sets every count of *u to -1. */
void door_usage_init(door_usage_t *u);

/* Reads the counts present in usage (a cJSON object, borrowed; NULL or not
 * an object leaves *u as it is). */
void door_usage_read(door_usage_t *u, const struct cJSON *usage);

/* A capped JSON writer over a caller's buf_t: each call appends, and the
 * first append that does not fit sets err and makes every later call a no-op,
 * so that a translator writes a whole object and checks once. */
typedef struct door_w {
    buf_t *b; /* borrowed */
    int err;  /* -1 once an append did not fit */
} door_w_t;

/* Appends the NUL-terminated raw bytes s. */
void door_w_raw(door_w_t *w, const char *s);
/* Appends n raw bytes. */
void door_w_rawn(door_w_t *w, const char *s, size_t n);
/* Appends s[0..n) as a JSON string literal (invalid UTF-8 becomes U+FFFD). */
void door_w_strn(door_w_t *w, const char *s, size_t n);
/* Appends the NUL-terminated s as a JSON string literal; NULL as null. */
void door_w_str(door_w_t *w, const char *s);
/* Appends a number (core/json.h's canonical spelling). */
void door_w_num(door_w_t *w, double d);
/* Appends the JSON text of a cJSON value (compact), or null for NULL. */
void door_w_json(door_w_t *w, const struct cJSON *v);

/* o's member key when it is a string (borrowed from o), else NULL; o's
 * "type" likewise. */
const char *door_str_of(const struct cJSON *o, const char *key);
const char *door_type_of(const struct cJSON *o);

/* One SSE event's data with the blanks around it trimmed: *data and *len
 * updated in place (the bytes are not touched). */
void door_trim_data(const char **data, size_t *len);

#endif
