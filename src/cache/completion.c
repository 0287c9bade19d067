/* completion: stream assembly of completion answers.
 *
 * Assembly parses each chunk (cJSON) and appends its deltas to per-choice,
 * per-tool-call buffers, so an event costs the size of that event; the
 * output object is written once, in finish, with json_append_string. A
 * global byte counter enforces max_bytes over every stored string, and each
 * buffer is also capped by it.
 *
 * Replay and the store-side validation are in completion_replay.c. */
#include "cache/completion.h"
#include "cache/completion_shape.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/json.h"
#include "core/util.h"

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
