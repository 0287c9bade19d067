/* prompt: lazy per-scope features of a request for the rule engine. */
#include "route/prompt.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/util.h"

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
            const char *role = role_of(m);
            p->n_messages++;
            p->n_system += strcmp(role, "system") == 0 || strcmp(role, "developer") == 0;
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

enum { PIECE_USER = 1, PIECE_SYSTEM = 2, PIECE_OTHER = 4 };

void prompt_free(prompt_t *p)
{
    for (int i = 0; i < SCOPE_COUNT; i++) {
        free(p->s[i].owned_text);
        free(p->s[i].kw);
    }
    for (size_t i = 0; i < p->n_pieces; i++) {
        free(p->pieces[i].owned);
        free(p->pieces[i].kw);
    }
    free(p->pieces);
}

/* Text of one message content: a string is borrowed; text parts are joined
 * with '\n' into an owned buffer (one part is borrowed too). */
static void content_text(const cJSON *content, prompt_piece_t *pc)
{
    const cJSON *part;
    buf_t b;
    unsigned n = 0;
    pc->text = "";
    pc->len = 0;
    if (cJSON_IsString(content)) {
        pc->text = content->valuestring;
        pc->len = strlen(pc->text);
        return;
    }
    buf_init(&b, SIZE_MAX / 2);
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(text) || text->valuestring[0] == '\0')
            continue;
        if (n == 0) {
            pc->text = text->valuestring;
            pc->len = strlen(pc->text);
        } else {
            if (n == 1)
                buf_append(&b, pc->text, pc->len);
            buf_puts(&b, "\n");
            buf_puts(&b, text->valuestring);
        }
        n++;
    }
    if (n > 1) {
        pc->owned = b.data;
        pc->text = b.data;
        pc->len = buf_len(&b);
    } else {
        buf_free(&b);
    }
}

static void build_pieces(prompt_t *p)
{
    const cJSON *list, *it;
    size_t cap;
    p->have_pieces = true;
    if (p->ep == EP_CHAT)
        list = cJSON_GetObjectItemCaseSensitive(p->root, "messages");
    else
        list = cJSON_GetObjectItemCaseSensitive(p->root, p->ep == EP_COMPLETIONS ? "prompt" : "input");
    if (cJSON_IsString(list)) {
        p->pieces = xcalloc(1, sizeof *p->pieces);
        p->pieces[0].text = list->valuestring;
        p->pieces[0].len = strlen(list->valuestring);
        p->pieces[0].role = PIECE_USER;
        p->n_pieces = 1;
        return;
    }
    cap = (size_t)cJSON_GetArraySize(list);
    p->pieces = xcalloc(cap ? cap : 1, sizeof *p->pieces);
    cJSON_ArrayForEach(it, list)
    {
        prompt_piece_t *pc = &p->pieces[p->n_pieces];
        if (p->ep == EP_CHAT) {
            const char *role = role_of(it);
            content_text(cJSON_GetObjectItemCaseSensitive(it, "content"), pc);
            pc->role = strcmp(role, "user") == 0                                          ? PIECE_USER
                       : strcmp(role, "system") == 0 || strcmp(role, "developer") == 0 ? PIECE_SYSTEM
                                                                                        : PIECE_OTHER;
        } else if (cJSON_IsString(it)) {
            pc->text = it->valuestring;
            pc->len = strlen(it->valuestring);
            pc->role = PIECE_USER;
        } else {
            continue; /* token arrays: no text */
        }
        p->n_pieces++;
    }
}

/* Indexes of the pieces of a scope: [*first, end) filtered by role mask. */
static void scope_pieces(prompt_t *p, enum scope sc, size_t *first, size_t *end, unsigned *mask)
{
    if (!p->have_pieces)
        build_pieces(p);
    *first = 0;
    *end = p->n_pieces;
    switch (sc) {
    case SCOPE_LAST_USER:
        *mask = PIECE_USER;
        if (p->ep != EP_CHAT)
            break; /* the whole prompt / input is the user's */
        *first = *end = 0;
        for (size_t i = p->n_pieces; i-- > 0;) {
            if (p->pieces[i].role == PIECE_USER) {
                *first = i;
                *end = i + 1;
                break;
            }
        }
        break;
    case SCOPE_USER:
        *mask = PIECE_USER;
        break;
    case SCOPE_SYSTEM:
        *mask = PIECE_SYSTEM;
        break;
    default:
        *mask = PIECE_USER | PIECE_SYSTEM | PIECE_OTHER;
    }
}

void prompt_text(prompt_t *p, enum scope sc, const char **text, size_t *len)
{
    prompt_scope_t *s = &p->s[sc];
    if (!s->have_text) {
        size_t first, end, n = 0;
        unsigned mask;
        buf_t b;
        scope_pieces(p, sc, &first, &end, &mask);
        s->text = "";
        buf_init(&b, SIZE_MAX / 2);
        for (size_t i = first; i < end; i++) {
            const prompt_piece_t *pc = &p->pieces[i];
            if (!(pc->role & mask) || pc->len == 0)
                continue;
            if (n == 0) {
                s->text = pc->text;
                s->len = pc->len;
            } else {
                if (n == 1)
                    buf_append(&b, s->text, s->len);
                buf_puts(&b, "\n");
                buf_append(&b, pc->text, pc->len);
            }
            n++;
        }
        if (n > 1) {
            s->owned_text = b.data;
            s->text = b.data;
            s->len = buf_len(&b);
        } else {
            buf_free(&b);
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
        size_t first, end;
        unsigned mask;
        scope_pieces(p, sc, &first, &end, &mask);
        memset(&s->st, 0, sizeof s->st);
        for (size_t i = first; i < end; i++) {
            prompt_piece_t *pc = &p->pieces[i];
            if (!(pc->role & mask))
                continue;
            if (!pc->have_stats) {
                ts_scan(pc->text, pc->len, &pc->st);
                pc->have_stats = true;
            }
            ts_add(&s->st, &pc->st);
        }
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
        size_t first, end;
        unsigned mask;
        p->kw_words = (kwset_count(ks) + 63) / 64 + 1;
        scope_pieces(p, sc, &first, &end, &mask);
        s->kw = xcalloc(p->kw_words, sizeof *s->kw);
        for (size_t i = first; i < end; i++) {
            prompt_piece_t *pc = &p->pieces[i];
            if (!(pc->role & mask))
                continue;
            if (!pc->have_kw) {
                pc->kw = xcalloc(p->kw_words, sizeof *pc->kw);
                kwset_scan(ks, pc->text, pc->len, pc->kw);
                pc->have_kw = true;
            }
            for (size_t w = 0; w < p->kw_words; w++)
                s->kw[w] |= pc->kw[w];
        }
        s->have_kw = true;
    }
    return s->kw;
}

double prompt_score(prompt_t *p, const scorer_t *s)
{
    if (!p->have_score) {
        scorer_features(p, p->score_x);
        p->score = scorer_apply(s, p->score_x);
        p->have_score = true;
    }
    return p->score;
}
