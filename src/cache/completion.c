/* completion: stream assembly and SSE replay of completion answers.
 *
 * Assembly parses each chunk (cJSON) and appends its deltas to per-choice,
 * per-tool-call buffers, so an event costs the size of that event; the
 * output object is written once, in finish, with json_append_string. A
 * global byte counter enforces max_bytes over every stored string, and each
 * buffer is also capped by it.
 *
 * Replay parses the stored body once, writes the constant part of every
 * chunk ({"id",...,"choices":) into a prefix buffer, then appends the chunks
 * to out; on any failure out is truncated back to its original length. */
#include "cache/completion.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/json.h"
#include "core/util.h"

/* ---------------------------------------------------------------- shared */

static const cJSON *member(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* Absent or JSON null. */
static bool is_none(const cJSON *v)
{
    return v == NULL || cJSON_IsNull(v);
}

static bool str_is(const cJSON *v, const char *s)
{
    return cJSON_IsString(v) && strcmp(v->valuestring, s) == 0;
}

/* A choice or tool-call "index": a non-negative integer (bounded so it
 * fits an int). Returns it, or -1. */
static int get_index(const cJSON *o)
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
static bool valid_created(const cJSON *v)
{
    double d;
    if (!cJSON_IsNumber(v))
        return false;
    d = v->valuedouble;
    return d >= 0 && d < 9007199254740992.0 && d == floor(d);
}

/* A token count: absent, or a non-negative integer (null here is what an
 * overflowing number became when the answer was re-serialised). */
static bool valid_count(const cJSON *v)
{
    return v == NULL || (cJSON_IsNumber(v) && v->valuedouble >= 0 &&
                         v->valuedouble < 9007199254740992.0 && v->valuedouble == floor(v->valuedouble));
}

/* usage: absent, null, or an object whose main counts are valid. */
static bool valid_usage(const cJSON *u)
{
    if (u == NULL || cJSON_IsNull(u))
        return true;
    return cJSON_IsObject(u) && valid_count(cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens")) &&
           valid_count(cJSON_GetObjectItemCaseSensitive(u, "completion_tokens")) &&
           valid_count(cJSON_GetObjectItemCaseSensitive(u, "total_tokens"));
}

static int put_int(buf_t *b, int i)
{
    char tmp[16];
    snprintf(tmp, sizeof tmp, "%d", i);
    return buf_puts(b, tmp);
}

static int put_cstr(buf_t *b, const char *s)
{
    return json_append_string(b, s, strlen(s));
}

/* Writes a JSON string, or null when s is NULL. */
static int put_opt(buf_t *b, const char *s, size_t n)
{
    return s ? json_append_string(b, s, n) : buf_puts(b, "null");
}

/* Writes a cJSON value compactly (usage). */
static int put_json(buf_t *b, const cJSON *v)
{
    char *s = cJSON_PrintUnformatted(v);
    int rc;
    if (!s)
        return -1;
    rc = buf_puts(b, s);
    free(s);
    return rc;
}

static const char *chunk_object(enum endpoint ep)
{
    return ep == EP_CHAT ? "chat.completion.chunk" : "text_completion";
}

static bool finish_allowed(enum endpoint ep, const char *fr)
{
    if (strcmp(fr, "stop") == 0 || strcmp(fr, "length") == 0 || strcmp(fr, "content_filter") == 0)
        return true;
    return ep == EP_CHAT && (strcmp(fr, "tool_calls") == 0 || strcmp(fr, "function_call") == 0);
}

/* The bytes of b, "" for a buffer never written (whose data is NULL). */
static const char *bytes(const buf_t *b)
{
    return b->data ? buf_ptr(b) : "";
}

/* ------------------------------------------------------------- assembly */

typedef struct tool_acc {
    int index;
    char *id;   /* NULL until the first fragment that carries one */
    char *name; /* idem */
    buf_t args;
} tool_acc_t;

typedef struct choice_acc {
    int index;
    bool has_text; /* a content (chat) or text (legacy) string was seen */
    buf_t text;    /* chat content or legacy text */
    buf_t refusal;
    tool_acc_t *tools; /* sorted by index */
    size_t n_tools;
    char *finish; /* NULL until a non-null finish_reason */
} choice_acc_t;

struct completion_acc {
    enum endpoint ep;
    size_t max_bytes;
    size_t used; /* bytes of stored strings, <= max_bytes */
    bool failed;
    bool seen_chunk;
    char *id, *model, *fingerprint, *tier;
    bool has_created;
    double created;
    cJSON *usage;
    choice_acc_t *choices; /* sorted by index */
    size_t n_choices;
};

completion_acc_t *completion_acc_new(enum endpoint ep, size_t max_bytes)
{
    completion_acc_t *a;
    if (ep != EP_CHAT && ep != EP_COMPLETIONS)
        return NULL;
    a = xcalloc(1, sizeof *a);
    a->ep = ep;
    a->max_bytes = max_bytes;
    return a;
}

static void choice_free(choice_acc_t *c)
{
    for (size_t i = 0; i < c->n_tools; i++) {
        free(c->tools[i].id);
        free(c->tools[i].name);
        buf_free(&c->tools[i].args);
    }
    free(c->tools);
    buf_free(&c->text);
    buf_free(&c->refusal);
    free(c->finish);
}

void completion_acc_free(completion_acc_t *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n_choices; i++)
        choice_free(&a->choices[i]);
    free(a->choices);
    free(a->id);
    free(a->model);
    free(a->fingerprint);
    free(a->tier);
    cJSON_Delete(a->usage);
    free(a);
}

/* Charges n bytes against max_bytes. */
static int charge(completion_acc_t *a, size_t n)
{
    if (n > a->max_bytes - a->used)
        return -1;
    a->used += n;
    return 0;
}

static int append_text(completion_acc_t *a, buf_t *b, const char *s)
{
    size_t n = strlen(s);
    if (charge(a, n) < 0)
        return -1;
    return buf_append(b, s, n);
}

/* Stores a copy of string member v in *dst unless one is already there
 * ("set on first appearance"). Absent/null: nothing; other types: -1. */
static int set_once(completion_acc_t *a, char **dst, const cJSON *v)
{
    if (is_none(v))
        return 0;
    if (!cJSON_IsString(v))
        return -1;
    if (*dst)
        return 0;
    if (charge(a, strlen(v->valuestring)) < 0)
        return -1;
    *dst = xstrdup(v->valuestring);
    return 0;
}

/* The accumulated choice of that index, created in order if new; NULL past
 * COMPLETION_MAX_CHOICES. Pointers into a->choices die at the next call. */
static choice_acc_t *choice_get(completion_acc_t *a, int index)
{
    size_t i = 0;
    choice_acc_t *c;
    while (i < a->n_choices && a->choices[i].index < index)
        i++;
    if (i < a->n_choices && a->choices[i].index == index)
        return &a->choices[i];
    if (a->n_choices >= COMPLETION_MAX_CHOICES)
        return NULL;
    a->choices = xrealloc(a->choices, (a->n_choices + 1) * sizeof *a->choices);
    memmove(&a->choices[i + 1], &a->choices[i], (a->n_choices - i) * sizeof *a->choices);
    a->n_choices++;
    c = &a->choices[i];
    memset(c, 0, sizeof *c);
    c->index = index;
    buf_init(&c->text, a->max_bytes);
    buf_init(&c->refusal, a->max_bytes);
    return c;
}

static tool_acc_t *tool_get(completion_acc_t *a, choice_acc_t *c, int index)
{
    size_t i = 0;
    tool_acc_t *t;
    while (i < c->n_tools && c->tools[i].index < index)
        i++;
    if (i < c->n_tools && c->tools[i].index == index)
        return &c->tools[i];
    if (c->n_tools >= COMPLETION_MAX_TOOL_CALLS)
        return NULL;
    c->tools = xrealloc(c->tools, (c->n_tools + 1) * sizeof *c->tools);
    memmove(&c->tools[i + 1], &c->tools[i], (c->n_tools - i) * sizeof *c->tools);
    c->n_tools++;
    t = &c->tools[i];
    memset(t, 0, sizeof *t);
    t->index = index;
    buf_init(&t->args, a->max_bytes);
    return t;
}

/* A string delta: appended to b; absent/null: nothing; else -1. */
static int feed_string(completion_acc_t *a, buf_t *b, const cJSON *v, bool *seen)
{
    if (is_none(v))
        return 0;
    if (!cJSON_IsString(v))
        return -1;
    if (seen)
        *seen = true;
    return append_text(a, b, v->valuestring);
}

static int feed_tool(completion_acc_t *a, choice_acc_t *c, const cJSON *frag)
{
    const cJSON *type, *fn;
    tool_acc_t *t;
    int index;
    if (!cJSON_IsObject(frag))
        return -1;
    index = get_index(frag);
    if (index < 0)
        return -1;
    t = tool_get(a, c, index);
    if (!t)
        return -1;
    type = member(frag, "type");
    if (!is_none(type) && !str_is(type, "function"))
        return -1;
    if (set_once(a, &t->id, member(frag, "id")) < 0)
        return -1;
    fn = member(frag, "function");
    if (is_none(fn))
        return 0;
    if (!cJSON_IsObject(fn))
        return -1;
    if (set_once(a, &t->name, member(fn, "name")) < 0)
        return -1;
    return feed_string(a, &t->args, member(fn, "arguments"), NULL);
}

static int feed_delta(completion_acc_t *a, choice_acc_t *c, const cJSON *delta)
{
    const cJSON *role, *calls, *frag;
    if (is_none(delta))
        return 0;
    if (!cJSON_IsObject(delta))
        return -1;
    /* the message role is always "assistant"; anything else is not an answer */
    role = member(delta, "role");
    if (!is_none(role) && !str_is(role, "assistant"))
        return -1;
    if (feed_string(a, &c->text, member(delta, "content"), &c->has_text) < 0 ||
        feed_string(a, &c->refusal, member(delta, "refusal"), NULL) < 0)
        return -1;
    /* nothing to store for them, and dropping them would change the answer */
    if (!is_none(member(delta, "function_call")) || !is_none(member(delta, "audio")))
        return -1;
    calls = member(delta, "tool_calls");
    if (is_none(calls))
        return 0;
    if (!cJSON_IsArray(calls))
        return -1;
    cJSON_ArrayForEach(frag, calls)
    {
        /* c may move only when choices are added, not here */
        if (feed_tool(a, c, frag) < 0)
            return -1;
    }
    return 0;
}

static int feed_choice(completion_acc_t *a, const cJSON *ch)
{
    const cJSON *fr;
    choice_acc_t *c;
    int index;
    if (!cJSON_IsObject(ch))
        return -1;
    index = get_index(ch);
    if (index < 0)
        return -1;
    c = choice_get(a, index);
    if (!c)
        return -1;
    if (!is_none(member(ch, "logprobs")))
        return -1;
    if (a->ep == EP_CHAT) {
        if (feed_delta(a, c, member(ch, "delta")) < 0)
            return -1;
    } else if (feed_string(a, &c->text, member(ch, "text"), &c->has_text) < 0) {
        return -1;
    }
    fr = member(ch, "finish_reason");
    if (is_none(fr))
        return 0;
    if (!cJSON_IsString(fr) || fr->valuestring[0] == '\0')
        return -1;
    free(c->finish);
    c->finish = xstrdup(fr->valuestring);
    return 0;
}

/* id, created, model, system_fingerprint, service_tier: from the first chunk
 * that carries each; later values are ignored (they must be constant). */
static int take_constants(completion_acc_t *a, const cJSON *root)
{
    const cJSON *created = member(root, "created");
    if (set_once(a, &a->id, member(root, "id")) < 0 ||
        set_once(a, &a->model, member(root, "model")) < 0 ||
        set_once(a, &a->fingerprint, member(root, "system_fingerprint")) < 0 ||
        set_once(a, &a->tier, member(root, "service_tier")) < 0)
        return -1;
    if (is_none(created))
        return 0;
    if (!valid_created(created))
        return -1;
    if (!a->has_created) {
        a->created = created->valuedouble;
        a->has_created = true;
    }
    return 0;
}

int completion_acc_event(completion_acc_t *a, const char *data, size_t len)
{
    cJSON *root;
    const cJSON *obj, *usage, *choices, *ch;
    int rc = -1;
    if (a->failed)
        return -1;
    /* cJSON cuts a string at \u0000: the assembled answer would not be the
     * one streamed. (An escaped backslash before "u0000" also matches; that
     * answer is just not stored.) Raw bytes are not checked here: a
     * character split across two chunks is valid once assembled. */
    if (memmem(data, len, "\\u0000", 6) != NULL) {
        a->failed = true;
        return -1;
    }
    root = cJSON_ParseWithLength(data, len);
    if (!cJSON_IsObject(root))
        goto out;
    if (!is_none(member(root, "error")))
        goto out;
    obj = member(root, "object");
    if (obj && !str_is(obj, chunk_object(a->ep))) {
        rc = 0; /* a foreign event (Azure content-filter results): skip it */
        goto out;
    }
    if (take_constants(a, root) < 0)
        goto out;
    usage = member(root, "usage");
    if (!is_none(usage)) {
        if (!cJSON_IsObject(usage) || !valid_usage(usage))
            goto out;
        cJSON_Delete(a->usage);
        a->usage = cJSON_Duplicate(usage, 1);
        if (!a->usage)
            goto out;
    }
    choices = member(root, "choices");
    if (!is_none(choices)) {
        if (!cJSON_IsArray(choices))
            goto out;
        cJSON_ArrayForEach(ch, choices)
        {
            if (feed_choice(a, ch) < 0)
                goto out;
        }
    }
    a->seen_chunk = true;
    rc = 0;
out:
    cJSON_Delete(root);
    if (rc < 0)
        a->failed = true;
    return rc;
}

/* Whether the accumulated state is a complete, cacheable answer. */
static bool storable(const completion_acc_t *a)
{
    if (a->failed || !a->seen_chunk || a->n_choices == 0 || !a->id || !a->model ||
        !a->has_created)
        return false;
    for (size_t i = 0; i < a->n_choices; i++) {
        const choice_acc_t *c = &a->choices[i];
        if (!c->finish || (strcmp(c->finish, "stop") != 0 && strcmp(c->finish, "length") != 0))
            return false;
        for (size_t j = 0; j < c->n_tools; j++)
            if (!c->tools[j].id || !c->tools[j].name)
                return false;
    }
    return true;
}

static int put_tools(buf_t *b, const choice_acc_t *c)
{
    int err = buf_puts(b, ",\"tool_calls\":[");
    for (size_t j = 0; j < c->n_tools && !err; j++) {
        const tool_acc_t *t = &c->tools[j];
        err |= buf_puts(b, j ? ",{\"id\":" : "{\"id\":");
        err |= put_cstr(b, t->id);
        err |= buf_puts(b, ",\"type\":\"function\",\"function\":{\"name\":");
        err |= put_cstr(b, t->name);
        err |= buf_puts(b, ",\"arguments\":");
        err |= json_append_string(b, bytes(&t->args), buf_len(&t->args));
        err |= buf_puts(b, "}}");
    }
    err |= buf_puts(b, "]");
    return err ? -1 : 0;
}

static int put_choice(buf_t *b, enum endpoint ep, const choice_acc_t *c)
{
    size_t tlen = buf_len(&c->text), rlen = buf_len(&c->refusal);
    int err = buf_puts(b, "{\"index\":");
    err |= put_int(b, c->index);
    if (ep == EP_CHAT) {
        bool null_content = tlen == 0 && (!c->has_text || c->n_tools > 0 || rlen > 0);
        err |= buf_puts(b, ",\"message\":{\"role\":\"assistant\",\"content\":");
        err |= put_opt(b, null_content ? NULL : bytes(&c->text), tlen);
        err |= buf_puts(b, ",\"refusal\":");
        err |= put_opt(b, rlen ? bytes(&c->refusal) : NULL, rlen);
        if (c->n_tools > 0)
            err |= put_tools(b, c);
        err |= buf_puts(b, "}");
    } else {
        err |= buf_puts(b, ",\"text\":");
        err |= json_append_string(b, bytes(&c->text), tlen);
    }
    err |= buf_puts(b, ",\"logprobs\":null,\"finish_reason\":");
    err |= put_cstr(b, c->finish);
    err |= buf_puts(b, "}");
    return err ? -1 : 0;
}

char *completion_acc_finish(completion_acc_t *a, size_t *len)
{
    buf_t b;
    size_t cap;
    int err = 0;
    if (!storable(a))
        return NULL;
    /* every stored byte escapes to at most 6; the rest is per-object syntax */
    cap = 6 * a->used + 256 * (a->n_choices + 4);
    for (size_t i = 0; i < a->n_choices; i++)
        cap += 128 * a->choices[i].n_tools;
    if (a->usage)
        cap += 4096; /* usage is a small object; a bigger one just is not stored */
    buf_init(&b, cap);
    err |= buf_puts(&b, "{\"id\":");
    err |= put_cstr(&b, a->id);
    err |= buf_puts(&b, a->ep == EP_CHAT ? ",\"object\":\"chat.completion\",\"created\":"
                                         : ",\"object\":\"text_completion\",\"created\":");
    err |= json_append_number(&b, a->created);
    err |= buf_puts(&b, ",\"model\":");
    err |= put_cstr(&b, a->model);
    if (a->fingerprint) {
        err |= buf_puts(&b, ",\"system_fingerprint\":");
        err |= put_cstr(&b, a->fingerprint);
    }
    if (a->tier) {
        err |= buf_puts(&b, ",\"service_tier\":");
        err |= put_cstr(&b, a->tier);
    }
    err |= buf_puts(&b, ",\"choices\":[");
    for (size_t i = 0; i < a->n_choices && !err; i++) {
        if (i)
            err |= buf_puts(&b, ",");
        err |= put_choice(&b, a->ep, &a->choices[i]);
    }
    err |= buf_puts(&b, "]");
    if (a->usage) {
        err |= buf_puts(&b, ",\"usage\":");
        err |= put_json(&b, a->usage);
    }
    err |= buf_puts(&b, "}");
    if (err) {
        buf_free(&b);
        return NULL;
    }
    buf_cstr(&b);
    *len = buf_len(&b);
    return b.data; /* r is 0: nothing was consumed */
}

/* --------------------------------------------------------------- replay */

/* Optional string member: absent/null gives NULL; set *bad on other types. */
static const char *opt_string(const cJSON *o, const char *k, bool *bad)
{
    const cJSON *v = member(o, k);
    if (is_none(v))
        return NULL;
    if (!cJSON_IsString(v)) {
        *bad = true;
        return NULL;
    }
    return v->valuestring;
}

static bool valid_tool_call(const cJSON *tc)
{
    const cJSON *type = member(tc, "type"), *fn = member(tc, "function"), *args;
    if (!cJSON_IsObject(tc) || !cJSON_IsString(member(tc, "id")))
        return false;
    if (!is_none(type) && !str_is(type, "function"))
        return false;
    if (!cJSON_IsObject(fn) || !cJSON_IsString(member(fn, "name")))
        return false;
    args = member(fn, "arguments");
    return is_none(args) || cJSON_IsString(args);
}

static bool valid_choice(enum endpoint ep, const cJSON *ch)
{
    const cJSON *fr = member(ch, "finish_reason");
    bool bad = false;
    if (!cJSON_IsObject(ch) || get_index(ch) < 0 || !is_none(member(ch, "logprobs")))
        return false;
    if (!cJSON_IsString(fr) || !finish_allowed(ep, fr->valuestring))
        return false;
    if (ep == EP_CHAT) {
        const cJSON *msg = member(ch, "message"), *role, *calls, *ann, *tc;
        if (!cJSON_IsObject(msg))
            return false;
        role = member(msg, "role");
        if (!is_none(role) && !str_is(role, "assistant"))
            return false;
        (void)opt_string(msg, "content", &bad);
        (void)opt_string(msg, "refusal", &bad);
        if (bad || !is_none(member(msg, "function_call")) || !is_none(member(msg, "audio")))
            return false;
        ann = member(msg, "annotations");
        if (!is_none(ann) && !(cJSON_IsArray(ann) && cJSON_GetArraySize(ann) == 0))
            return false;
        calls = member(msg, "tool_calls");
        if (is_none(calls))
            return true;
        if (!cJSON_IsArray(calls) || cJSON_GetArraySize(calls) > COMPLETION_MAX_TOOL_CALLS)
            return false;
        cJSON_ArrayForEach(tc, calls)
        {
            if (!valid_tool_call(tc))
                return false;
        }
        return true;
    }
    return cJSON_IsString(member(ch, "text"));
}

/* A stored completion of ep's kind that replays without loss. */
static bool valid_body(enum endpoint ep, const cJSON *root)
{
    const cJSON *choices = member(root, "choices"), *ch, *usage = member(root, "usage");
    bool bad = false;
    int n = 0;
    if (!cJSON_IsObject(root))
        return false;
    if (!str_is(member(root, "object"), ep == EP_CHAT ? "chat.completion" : "text_completion"))
        return false;
    if (!cJSON_IsString(member(root, "id")) || !cJSON_IsString(member(root, "model")) ||
        !valid_created(member(root, "created")))
        return false;
    (void)opt_string(root, "system_fingerprint", &bad);
    (void)opt_string(root, "service_tier", &bad);
    if (bad || !valid_usage(usage))
        return false;
    if (!cJSON_IsArray(choices))
        return false;
    cJSON_ArrayForEach(ch, choices)
    {
        const cJSON *prev;
        if (++n > COMPLETION_MAX_CHOICES || !valid_choice(ep, ch))
            return false;
        /* a repeated index would merge two answers when re-assembled */
        for (prev = choices->child; prev != ch; prev = prev->next)
            if (get_index(prev) == get_index(ch))
                return false;
    }
    return n > 0;
}

typedef struct replay {
    buf_t *out;
    const buf_t *prefix; /* {"id":...,"choices": */
    const char *suffix;  /* "}\n\n" or ",\"usage\":null}\n\n" */
    int index;           /* the current choice */
    int err;             /* OR of every append's result */
} replay_t;

/* data: <prefix>[{"index":i, — the caller writes the choice's body next. */
static void chunk_open(replay_t *r)
{
    r->err |= buf_puts(r->out, "data: ");
    r->err |= buf_append(r->out, buf_ptr(r->prefix), buf_len(r->prefix));
    r->err |= buf_puts(r->out, "[{\"index\":");
    r->err |= put_int(r->out, r->index);
    r->err |= buf_puts(r->out, ",");
}

static void chunk_close(replay_t *r, const char *finish)
{
    r->err |= buf_puts(r->out, ",\"logprobs\":null,\"finish_reason\":");
    r->err |= put_opt(r->out, finish, finish ? strlen(finish) : 0);
    r->err |= buf_puts(r->out, "}]");
    r->err |= buf_puts(r->out, r->suffix);
}

/* Length of the next piece of s[0..n): at most COMPLETION_REPLAY_PIECE
 * bytes, ending on a UTF-8 character boundary (a continuation byte never
 * starts the next piece unless the text is not UTF-8 there). */
static size_t piece_len(const char *s, size_t n)
{
    size_t k = COMPLETION_REPLAY_PIECE;
    if (n <= k)
        return n;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    return k > 0 ? k : COMPLETION_REPLAY_PIECE;
}

/* One chunk per piece of s: chat {"delta":{"<key>":"piece"}}, legacy
 * {"text":"piece"} (key is then "text"). */
static void emit_pieces(replay_t *r, enum endpoint ep, const char *key, const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && !r->err) {
        size_t k = piece_len(s, n);
        chunk_open(r);
        if (ep == EP_CHAT) {
            r->err |= buf_puts(r->out, "\"delta\":{");
            r->err |= put_cstr(r->out, key);
            r->err |= buf_puts(r->out, ":");
        } else {
            r->err |= buf_puts(r->out, "\"text\":");
        }
        r->err |= json_append_string(r->out, s, k);
        if (ep == EP_CHAT)
            r->err |= buf_puts(r->out, "}");
        chunk_close(r, NULL);
        s += k;
        n -= k;
    }
}

static void emit_tool(replay_t *r, int tindex, const cJSON *tc)
{
    const cJSON *fn = member(tc, "function");
    const cJSON *args = member(fn, "arguments");
    const char *a = cJSON_IsString(args) ? args->valuestring : "";
    chunk_open(r);
    r->err |= buf_puts(r->out, "\"delta\":{\"tool_calls\":[{\"index\":");
    r->err |= put_int(r->out, tindex);
    r->err |= buf_puts(r->out, ",\"id\":");
    r->err |= put_cstr(r->out, member(tc, "id")->valuestring);
    r->err |= buf_puts(r->out, ",\"type\":\"function\",\"function\":{\"name\":");
    r->err |= put_cstr(r->out, member(fn, "name")->valuestring);
    r->err |= buf_puts(r->out, ",\"arguments\":\"\"}}]}");
    chunk_close(r, NULL);
    if (a[0] == '\0')
        return;
    chunk_open(r);
    r->err |= buf_puts(r->out, "\"delta\":{\"tool_calls\":[{\"index\":");
    r->err |= put_int(r->out, tindex);
    r->err |= buf_puts(r->out, ",\"function\":{\"arguments\":");
    r->err |= put_cstr(r->out, a);
    r->err |= buf_puts(r->out, "}}]}");
    chunk_close(r, NULL);
}

static void emit_choice(replay_t *r, enum endpoint ep, const cJSON *ch)
{
    const char *finish = member(ch, "finish_reason")->valuestring;
    bool bad = false;
    r->index = get_index(ch);
    if (ep != EP_CHAT) {
        chunk_open(r);
        r->err |= buf_puts(r->out, "\"text\":\"\"");
        chunk_close(r, NULL);
        emit_pieces(r, ep, "text", member(ch, "text")->valuestring);
        chunk_open(r);
        r->err |= buf_puts(r->out, "\"text\":\"\"");
        chunk_close(r, finish);
        return;
    }
    {
        const cJSON *msg = member(ch, "message"), *calls = member(msg, "tool_calls"), *tc;
        const char *content = opt_string(msg, "content", &bad);
        const char *refusal = opt_string(msg, "refusal", &bad);
        int t = 0;
        chunk_open(r);
        r->err |= buf_puts(r->out, "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}");
        chunk_close(r, NULL);
        if (content)
            emit_pieces(r, ep, "content", content);
        if (refusal)
            emit_pieces(r, ep, "refusal", refusal);
        if (cJSON_IsArray(calls))
            cJSON_ArrayForEach(tc, calls)
            {
                emit_tool(r, t++, tc);
            }
        chunk_open(r);
        r->err |= buf_puts(r->out, "\"delta\":{}");
        chunk_close(r, finish);
    }
}

/* {"id":..,"object":..,"created":..,"model":..[,fingerprint][,tier],"choices": */
static int build_prefix(enum endpoint ep, const cJSON *root, buf_t *p)
{
    bool bad = false;
    const char *fp = opt_string(root, "system_fingerprint", &bad);
    const char *tier = opt_string(root, "service_tier", &bad);
    int err = buf_puts(p, "{\"id\":");
    err |= put_cstr(p, member(root, "id")->valuestring);
    err |= buf_puts(p, ",\"object\":");
    err |= put_cstr(p, chunk_object(ep));
    err |= buf_puts(p, ",\"created\":");
    err |= json_append_number(p, member(root, "created")->valuedouble);
    err |= buf_puts(p, ",\"model\":");
    err |= put_cstr(p, member(root, "model")->valuestring);
    if (fp) {
        err |= buf_puts(p, ",\"system_fingerprint\":");
        err |= put_cstr(p, fp);
    }
    if (tier) {
        err |= buf_puts(p, ",\"service_tier\":");
        err |= put_cstr(p, tier);
    }
    err |= buf_puts(p, ",\"choices\":");
    return err ? -1 : 0;
}

int completion_replay_sse(enum endpoint ep, const char *body, size_t len, bool include_usage,
                          buf_t *out)
{
    size_t keep = buf_len(out);
    cJSON *root = NULL;
    const cJSON *ch, *usage;
    buf_t prefix;
    replay_t r;
    int rc = -1;
    /* the prefix holds strings of the body, each escaped to at most 6x */
    buf_init(&prefix, 6 * len + 256);
    if (ep != EP_CHAT && ep != EP_COMPLETIONS)
        goto out;
    root = cJSON_ParseWithLength(body, len);
    if (!valid_body(ep, root) || build_prefix(ep, root, &prefix) < 0)
        goto out;
    r.out = out;
    r.prefix = &prefix;
    r.suffix = include_usage ? ",\"usage\":null}\n\n" : "}\n\n";
    r.err = 0;
    cJSON_ArrayForEach(ch, member(root, "choices"))
    {
        emit_choice(&r, ep, ch);
        if (r.err)
            goto out;
    }
    usage = member(root, "usage");
    if (include_usage && cJSON_IsObject(usage)) {
        r.err |= buf_puts(out, "data: ");
        r.err |= buf_append(out, buf_ptr(&prefix), buf_len(&prefix));
        r.err |= buf_puts(out, "[],\"usage\":");
        r.err |= put_json(out, usage);
        r.err |= buf_puts(out, "}\n\n");
    }
    r.err |= buf_puts(out, "data: [DONE]\n\n");
    if (!r.err)
        rc = 0;
out:
    if (rc < 0 && buf_len(out) > keep)
        out->w = out->r + keep; /* drop the partial stream; compaction keeps [r, w) */
    cJSON_Delete(root);
    buf_free(&prefix);
    return rc;
}

/* ------------------------------------------------------------ storable */

/* An embeddings list: every item an object with an index and a non-empty
 * vector of finite numbers or a base64 string. */
static bool valid_embeddings(const cJSON *root)
{
    const cJSON *data = member(root, "data"), *item, *x;
    if (!cJSON_IsObject(root) || !str_is(member(root, "object"), "list") ||
        !cJSON_IsString(member(root, "model")) || !valid_usage(member(root, "usage")) ||
        !cJSON_IsArray(data) || data->child == NULL)
        return false;
    cJSON_ArrayForEach(item, data)
    {
        const cJSON *emb = member(item, "embedding");
        if (!cJSON_IsObject(item) || get_index(item) < 0)
            return false;
        if (cJSON_IsString(emb)) {
            if (emb->valuestring[0] == '\0')
                return false;
            continue;
        }
        if (!cJSON_IsArray(emb) || emb->child == NULL)
            return false;
        cJSON_ArrayForEach(x, emb)
        {
            if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
                return false;
        }
    }
    return true;
}

bool completion_storable(enum endpoint ep, const char *body, size_t len)
{
    cJSON *root;
    const cJSON *ch;
    bool ok = false;
    int is_object = 0;
    /* valid UTF-8 text: the plain replay returns these bytes as they are,
     * the streamed one re-escapes them, and both must say the same */
    if (body == NULL || json_check(body, len, JSON_CHECK_TEXT, &is_object, NULL) != 1 || !is_object)
        return false;
    root = cJSON_ParseWithLength(body, len);
    if (ep == EP_EMBEDDINGS) {
        ok = valid_embeddings(root);
    } else if ((ep == EP_CHAT || ep == EP_COMPLETIONS) && valid_body(ep, root)) {
        ok = true;
        /* what the replay accepts, narrowed to complete answers */
        cJSON_ArrayForEach(ch, member(root, "choices"))
        {
            const char *fr = member(ch, "finish_reason")->valuestring;
            if (strcmp(fr, "stop") != 0 && strcmp(fr, "length") != 0)
                ok = false;
        }
    }
    cJSON_Delete(root);
    return ok;
}
