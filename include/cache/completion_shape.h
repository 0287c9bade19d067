/* completion_shape: small readers and writers of the completion JSON shape
 * shared by the stream assembly (src/cache/completion.c) and by the replay
 * and store validation (src/cache/completion_replay.c) — one definition of
 * what a valid `created`, usage count, index or finish_reason is, on both
 * sides. Private to those two files. */
#ifndef LLMROUTER_CACHE_COMPLETION_SHAPE_H
#define LLMROUTER_CACHE_COMPLETION_SHAPE_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cache/completion.h"
#include "core/buf.h"
#include "core/json.h"

static inline const cJSON *member(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* Absent or JSON null. */
static inline bool is_none(const cJSON *v)
{
    return v == NULL || cJSON_IsNull(v);
}

static inline bool str_is(const cJSON *v, const char *s)
{
    return cJSON_IsString(v) && strcmp(v->valuestring, s) == 0;
}

/* A choice or tool-call "index": a non-negative integer (bounded so it
 * fits an int). Returns it, or -1. */
static inline int get_index(const cJSON *o)
{
    const cJSON *v = member(o, "index");
    double d;
    if (!cJSON_IsNumber(v))
        return -1;
    d = v->valuedouble;
    if (!(d >= 0 && d <= 1000000) || d != floor(d))
        return -1;
    return (int)d;
}


/* "created": Unix seconds, an integer a double holds exactly. Anything else
 * would come back respelt (1e300) or as null (an overflow read as
 * infinity), so the stored answer would not be the one received. */
static inline bool valid_created(const cJSON *v)
{
    double d;
    if (!cJSON_IsNumber(v))
        return false;
    d = v->valuedouble;
    return d >= 0 && d < 9007199254740992.0 && d == floor(d);
}

/* A token count: absent, or a non-negative integer (null here is what an
 * overflowing number became when the answer was re-serialised). */
static inline bool valid_count(const cJSON *v)
{
    return v == NULL || (cJSON_IsNumber(v) && v->valuedouble >= 0 &&
                         v->valuedouble < 9007199254740992.0 && v->valuedouble == floor(v->valuedouble));
}

/* usage: absent, null, or an object whose main counts are valid. */
static inline bool valid_usage(const cJSON *u)
{
    if (u == NULL || cJSON_IsNull(u))
        return true;
    return cJSON_IsObject(u) && valid_count(cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens")) &&
           valid_count(cJSON_GetObjectItemCaseSensitive(u, "completion_tokens")) &&
           valid_count(cJSON_GetObjectItemCaseSensitive(u, "total_tokens"));
}

static inline int put_int(buf_t *b, int i)
{
    char tmp[16];
    snprintf(tmp, sizeof tmp, "%d", i);
    return buf_puts(b, tmp);
}

static inline int put_cstr(buf_t *b, const char *s)
{
    return json_append_string(b, s, strlen(s));
}

/* Writes a JSON string, or null when s is NULL. */
static inline int put_opt(buf_t *b, const char *s, size_t n)
{
    return s ? json_append_string(b, s, n) : buf_puts(b, "null");
}

/* Writes a cJSON value compactly (usage). */
static inline int put_json(buf_t *b, const cJSON *v)
{
    char *s = cJSON_PrintUnformatted(v);
    int rc;
    if (!s)
        return -1;
    rc = buf_puts(b, s);
    free(s);
    return rc;
}

static inline const char *chunk_object(enum endpoint ep)
{
    return ep == EP_CHAT ? "chat.completion.chunk" : "text_completion";
}

static inline bool finish_allowed(enum endpoint ep, const char *fr)
{
    if (strcmp(fr, "stop") == 0 || strcmp(fr, "length") == 0 || strcmp(fr, "content_filter") == 0)
        return true;
    return ep == EP_CHAT && (strcmp(fr, "tool_calls") == 0 || strcmp(fr, "function_call") == 0);
}

/* The bytes of b, "" for a buffer never written (whose data is NULL). */
static inline const char *bytes(const buf_t *b)
{
    return b->data ? buf_ptr(b) : "";
}

#endif
