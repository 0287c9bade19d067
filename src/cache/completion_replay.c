/* completion_replay: SSE replay of a stored completion answer, and the one
 * rule for what may be stored (completion_storable), so that the cache
 * stores exactly what its replay accepts.
 *
 * Replay parses the stored body once, writes the constant part of every
 * chunk ({"id",...,"choices":) into a prefix buffer, then appends the chunks
 * to out; on any failure out is truncated back to its original length. */
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
