/* prompt: lazy per-scope features of a request for the rule engine. */
#include "prompt.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "util.h"

static const char *scope_names[SCOPE_COUNT] = {"last_user", "user", "system", "conversation"};

const char *prompt_scope_name(enum scope sc)
{
    return scope_names[sc];
}

int prompt_scope_parse(const char *name)
{
    for (int i = 0; i < SCOPE_COUNT; i++)
        if (strcmp(name, scope_names[i]) == 0)
            return i;
    return -1;
}

static const char *role_of(const cJSON *m)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "role");
    return cJSON_IsString(r) ? r->valuestring : "";
}

static void scan_parts(prompt_t *p, const cJSON *content)
{
    const cJSON *part;
    if (!cJSON_IsArray(content))
        return;
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        if (!cJSON_IsString(type))
            continue;
        if (strcmp(type->valuestring, "image_url") == 0 || strcmp(type->valuestring, "image") == 0)
            p->images = true;
        else if (strcmp(type->valuestring, "input_audio") == 0 ||
                 strcmp(type->valuestring, "audio") == 0)
            p->audio = true;
    }
}

void prompt_init(prompt_t *p, const cJSON *root, enum endpoint ep)
{
    const cJSON *v;
    memset(p, 0, sizeof *p);
    p->root = root;
    p->ep = ep;
    p->max_output = -1;
    p->stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "stream"));
    if (ep == EP_CHAT) {
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages"), *m;
        cJSON_ArrayForEach(m, msgs)
        {
            p->n_messages++;
            scan_parts(p, cJSON_GetObjectItemCaseSensitive(m, "content"));
        }
        v = cJSON_GetObjectItemCaseSensitive(root, "tools");
        p->tools = cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0;
        if (!p->tools) {
            v = cJSON_GetObjectItemCaseSensitive(root, "functions"); /* deprecated form */
            p->tools = cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0;
        }
        v = cJSON_GetObjectItemCaseSensitive(root, "response_format");
        v = cJSON_GetObjectItemCaseSensitive(v, "type");
        if (cJSON_IsString(v))
            p->response_format = v->valuestring;
        if (cJSON_GetObjectItemCaseSensitive(root, "input_audio") != NULL)
            p->audio = true;
    } else {
        p->n_messages = 1;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "max_completion_tokens");
    if (!cJSON_IsNumber(v))
        v = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
    if (cJSON_IsNumber(v) && v->valuedouble >= 0)
        p->max_output = v->valuedouble > 1e15 ? (int64_t)1e15 : (int64_t)v->valuedouble;
}

void prompt_free(prompt_t *p)
{
    for (int i = 0; i < SCOPE_COUNT; i++) {
        free(p->s[i].owned_text);
        free(p->s[i].kw);
    }
}

/* Collects the text pieces of a scope: a single piece is borrowed, several
 * are joined with '\n' into an owned buffer. */
typedef struct collector {
    const char *one;
    size_t one_len;
    buf_t joined;
    unsigned pieces;
} collector_t;

static void collect(collector_t *c, const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return;
    if (c->pieces == 0) {
        c->one = s;
        c->one_len = n;
    } else {
        if (c->pieces == 1)
            buf_append(&c->joined, c->one, c->one_len);
        buf_append(&c->joined, "\n", 1);
        buf_append(&c->joined, s, n);
    }
    c->pieces++;
}

static void collect_content(collector_t *c, const cJSON *content)
{
    const cJSON *part;
    if (cJSON_IsString(content)) {
        collect(c, content->valuestring);
        return;
    }
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(text))
            collect(c, text->valuestring);
    }
}

static bool in_scope(enum scope sc, const char *role)
{
    switch (sc) {
    case SCOPE_USER:
        return strcmp(role, "user") == 0;
    case SCOPE_SYSTEM:
        return strcmp(role, "system") == 0 || strcmp(role, "developer") == 0;
    case SCOPE_CONVERSATION:
        return true;
    default:
        return false;
    }
}

void prompt_text(prompt_t *p, enum scope sc, const char **text, size_t *len)
{
    prompt_scope_t *s = &p->s[sc];
    if (!s->have_text) {
        collector_t c = {0};
        buf_init(&c.joined, SIZE_MAX / 2);
        if (p->ep == EP_CHAT) {
            const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(p->root, "messages"), *m;
            if (sc == SCOPE_LAST_USER) {
                const cJSON *last = NULL;
                cJSON_ArrayForEach(m, msgs) if (strcmp(role_of(m), "user") == 0) last = m;
                if (last)
                    collect_content(&c, cJSON_GetObjectItemCaseSensitive(last, "content"));
            } else {
                cJSON_ArrayForEach(m, msgs)
                {
                    if (in_scope(sc, role_of(m)))
                        collect_content(&c, cJSON_GetObjectItemCaseSensitive(m, "content"));
                }
            }
        } else if (sc != SCOPE_SYSTEM) {
            /* completions: prompt; embeddings: input — strings or lists */
            const cJSON *in = cJSON_GetObjectItemCaseSensitive(
                p->root, p->ep == EP_COMPLETIONS ? "prompt" : "input");
            const cJSON *it;
            if (cJSON_IsString(in))
                collect(&c, in->valuestring);
            else
                cJSON_ArrayForEach(it, in) if (cJSON_IsString(it)) collect(&c, it->valuestring);
        }
        if (c.pieces > 1) {
            s->owned_text = c.joined.data;
            s->text = c.joined.data;
            s->len = buf_len(&c.joined);
        } else {
            buf_free(&c.joined);
            s->text = c.pieces ? c.one : "";
            s->len = c.pieces ? c.one_len : 0;
        }
        s->have_text = true;
    }
    *text = s->text;
    *len = s->len;
}

const ts_stats_t *prompt_stats(prompt_t *p, enum scope sc)
{
    prompt_scope_t *s = &p->s[sc];
    if (!s->have_stats) {
        const char *t;
        size_t n;
        prompt_text(p, sc, &t, &n);
        ts_scan(t, n, &s->st);
        if (sc == SCOPE_CONVERSATION && p->ep == EP_CHAT)
            s->st.tokens += ts_chat_overhead(p->n_messages);
        s->have_stats = true;
    }
    return &s->st;
}

const char *prompt_language(prompt_t *p, enum scope sc)
{
    prompt_scope_t *s = &p->s[sc];
    if (!s->have_lang) {
        const char *t;
        size_t n;
        const ts_stats_t *st = prompt_stats(p, sc);
        prompt_text(p, sc, &t, &n);
        s->lang = ts_language(t, n, st);
        s->have_lang = true;
    }
    return s->lang;
}

const uint64_t *prompt_keywords(prompt_t *p, enum scope sc, const kwset_t *ks)
{
    prompt_scope_t *s = &p->s[sc];
    if (!s->have_kw) {
        const char *t;
        size_t n;
        prompt_text(p, sc, &t, &n);
        s->kw = xcalloc((kwset_count(ks) + 63) / 64 + 1, sizeof *s->kw);
        kwset_scan(ks, t, n, s->kw);
        s->have_kw = true;
    }
    return s->kw;
}
