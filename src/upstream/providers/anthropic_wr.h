/* anthropic_wr: the small JSON writer shared by the two halves of the
 * Anthropic translation (anthropic.c: requests; anthropic_answer.c: answers,
 * streams, errors). A sticky error code: after the first failure every write
 * is a no-op, and the caller rolls the buffer back once at the end, so a
 * translation either appends all of its output or none. Private to
 * src/upstream/providers/. */
#ifndef LLMROUTER_ANTHROPIC_WR_H
#define LLMROUTER_ANTHROPIC_WR_H

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/json.h"
#include "upstream/anthropic.h"

typedef struct awr {
    buf_t *b;   /* borrowed output */
    size_t len; /* readable length at the start, for the rollback */
    int rc;     /* ANTHROPIC_OK until the first failure */
} awr_t;

static inline void awr_begin(awr_t *w, buf_t *b)
{
    w->b = b;
    w->len = buf_len(b);
    w->rc = ANTHROPIC_OK;
}

/* Ends a translation: on failure drops what it appended. buf may compact
 * [r, w) to the front while growing, so the rollback is relative to r. */
static inline int awr_end(awr_t *w)
{
    if (w->rc != ANTHROPIC_OK)
        w->b->w = w->b->r + w->len;
    return w->rc;
}

static inline void awr_raw(awr_t *w, const char *s, size_t n)
{
    if (w->rc == ANTHROPIC_OK && buf_append(w->b, s, n) < 0)
        w->rc = ANTHROPIC_ETOOBIG;
}

static inline void awr_lit(awr_t *w, const char *s)
{
    awr_raw(w, s, strlen(s));
}

static inline void awr_strn(awr_t *w, const char *s, size_t n)
{
    if (w->rc == ANTHROPIC_OK && json_append_string(w->b, s, n) < 0)
        w->rc = ANTHROPIC_ETOOBIG;
}

static inline void awr_str(awr_t *w, const char *s)
{
    awr_strn(w, s, strlen(s));
}

static inline void awr_num(awr_t *w, double d)
{
    if (w->rc == ANTHROPIC_OK && json_append_number(w->b, d) < 0)
        w->rc = ANTHROPIC_ETOOBIG;
}

/* A parsed subtree copied as compact JSON (schemas, cache_control, tool
 * input): cJSON's printer is the one place these pass-through values are
 * re-serialised. */
static inline void awr_json(awr_t *w, const cJSON *v)
{
    char *s;
    if (w->rc != ANTHROPIC_OK)
        return;
    s = cJSON_PrintUnformatted(v);
    if (s == NULL) {
        w->rc = ANTHROPIC_ENOMEM;
        return;
    }
    awr_lit(w, s);
    free(s);
}

/* Member lookup (exact case, as the wire formats are). */
static inline const cJSON *aj(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* The string value of member k, or NULL. */
static inline const char *ajs(const cJSON *o, const char *k)
{
    const cJSON *v = aj(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

#endif
