/* quirks: provider departures from OpenAI's wire format, normalised per
 * the provider's QUIRK_* flags (see quirks.h). Each fix is keyed by its
 * flag only, never by a provider's name. */
#include "upstream/quirks.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/presets.h"
#include "core/util.h"
#include "upstream/attempt.h"

#define LINE_CAP (256 * 1024) /* one SSE line of a filtered stream */
#define OUT_CAP (512 * 1024)  /* rewritten bytes not yet taken */
#define PIECE (16 * 1024)     /* handed to the stream path at a time */
#define CHOICES 16            /* choices tracked for tool indexes */

struct quirk_stream {
    buf_t line;     /* the line being received */
    buf_t out;      /* rewritten bytes the stream path has not taken */
    size_t skip;    /* bytes of curl's next delivery already consumed */
    int ntools[CHOICES]; /* tool calls seen per choice */
};

static const cfg_provider_t *prov(const req_t *req, int m)
{
    return &req->cfg->providers[req->cfg->models[m].provider];
}

/* ---- the request body ---- */

void quirks_tool_id9(const char *id, char out[10])
{
    static const char b62[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    size_t n = strlen(id), i;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (i = 0; i < n && ((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
                          (id[i] >= '0' && id[i] <= '9'));
         i++)
        ;
    if (n == 9 && i == 9) {
        memcpy(out, id, 10);
        return;
    }
    for (i = 0; i < n; i++) {
        h ^= (unsigned char)id[i];
        h *= 1099511628211ULL;
    }
    for (i = 0; i < 9; i++) {
        out[i] = b62[h % 62];
        h /= 62;
        if (h == 0)
            h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)i;
    }
    out[9] = '\0';
}

static bool set_id9(cJSON *o, const char *key)
{
    cJSON *id = cJSON_GetObjectItemCaseSensitive(o, key);
    char nid[10];
    if (!cJSON_IsString(id))
        return false;
    quirks_tool_id9(id->valuestring, nid);
    if (strcmp(nid, id->valuestring) == 0)
        return false;
    cJSON_ReplaceItemInObjectCaseSensitive(o, key, cJSON_CreateString(nid));
    return true;
}

/* Returns whether root changed. */
static bool fix_request(unsigned q, cJSON *root)
{
    bool changed = false;
    cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages"), *m;
    if (q & QUIRK_DROP_PARAMS) {
        static const char *const drop[] = {"logprobs", "top_logprobs", "logit_bias", "n"};
        for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
            if (cJSON_HasObjectItem(root, drop[i])) {
                cJSON_DeleteItemFromObjectCaseSensitive(root, drop[i]);
                changed = true;
            }
    }
    cJSON_ArrayForEach(m, msgs)
    {
        cJSON *tcs, *tc;
        if (!cJSON_IsObject(m))
            continue;
        if ((q & QUIRK_DROP_PARAMS) && cJSON_HasObjectItem(m, "name")) {
            cJSON_DeleteItemFromObjectCaseSensitive(m, "name");
            changed = true;
        }
        if (!(q & QUIRK_TOOL_ID9))
            continue;
        changed |= set_id9(m, "tool_call_id");
        tcs = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        cJSON_ArrayForEach(tc, tcs)
        {
            if (cJSON_IsObject(tc))
                changed |= set_id9(tc, "id");
        }
    }
    return changed;
}

bool quirks_stream_on(const req_t *req)
{
    return req->quirk_stream != NULL;
}

void quirks_free(req_t *req)
{
    if (req->quirk_stream == NULL)
        return;
    buf_free(&req->quirk_stream->line);
    buf_free(&req->quirk_stream->out);
    free(req->quirk_stream);
    req->quirk_stream = NULL;
}

int quirks_begin(req_t *req, int m)
{
    const cfg_provider_t *p = prov(req, m);
    quirks_free(req);
    if (p->quirks == 0 || p->type != PROVIDER_OPENAI || req->ep != EP_CHAT || req->door_native)
        return 0;
    if (p->quirks & (QUIRK_DROP_PARAMS | QUIRK_TOOL_ID9)) {
        cJSON *root = cJSON_ParseWithLength(req->fwd_body, req->fwd_len);
        if (cJSON_IsObject(root) && fix_request(p->quirks, root)) {
            char *s = cJSON_PrintUnformatted(root);
            if (s != NULL) {
                free(req->fwd_body);
                req->fwd_body = s;
                req->fwd_len = strlen(s);
            }
        }
        cJSON_Delete(root);
    }
    if ((p->quirks & QUIRK_TOOL_INDEX) && req->stream) {
        struct quirk_stream *qs = xcalloc(1, sizeof *qs);
        buf_init(&qs->line, LINE_CAP);
        buf_init(&qs->out, OUT_CAP);
        req->quirk_stream = qs;
    }
    return 0;
}

/* ---- errors ---- */

cJSON *quirks_error_json(unsigned quirks, cJSON *root)
{
    if ((quirks & QUIRK_ARRAY_ERRORS) && cJSON_IsArray(root) && cJSON_GetArraySize(root) >= 1 &&
        cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(root, 0), "error"))) {
        /* [{"error":{"code":400,"message","status"}}] → its first element,
         * with OpenAI's type (the status) and code */
        cJSON *one = cJSON_DetachItemFromArray(root, 0);
        cJSON *err = cJSON_GetObjectItemCaseSensitive(one, "error");
        cJSON *st = cJSON_GetObjectItemCaseSensitive(err, "status");
        cJSON_Delete(root);
        if (!cJSON_HasObjectItem(err, "type"))
            cJSON_AddStringToObject(err, "type",
                                    cJSON_IsString(st) ? st->valuestring : "upstream_error");
        if (!cJSON_HasObjectItem(err, "param"))
            cJSON_AddNullToObject(err, "param");
        return one;
    }
    if ((quirks & QUIRK_FLAT_ERRORS) && cJSON_IsObject(root) &&
        !cJSON_HasObjectItem(root, "error") &&
        cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "message")) &&
        (cJSON_HasObjectItem(root, "type") || cJSON_HasObjectItem(root, "object"))) {
        /* {"object":"error","message","type","param","code"} → wrapped */
        static const char *const keys[] = {"message", "type", "param", "code"};
        cJSON *out = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(out, "error");
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(root, keys[i]);
            if (v == NULL)
                v = cJSON_CreateNull();
            cJSON_AddItemToObject(err, keys[i], v);
        }
        cJSON_Delete(root);
        return out;
    }
    return root;
}

void quirks_error_body(req_t *req, buf_t *out)
{
    unsigned q = prov(req, req->model)->quirks & (QUIRK_ARRAY_ERRORS | QUIRK_FLAT_ERRORS);
    cJSON *root, *fixed;
    char *s;
    if (q == 0 || req->ant)
        return;
    root = cJSON_ParseWithLength(buf_ptr(out), buf_len(out));
    if (root == NULL)
        return;
    fixed = quirks_error_json(q, root);
    if (fixed == root) {
        cJSON_Delete(root);
        return;
    }
    s = cJSON_PrintUnformatted(fixed);
    cJSON_Delete(fixed);
    if (s == NULL)
        return;
    buf_reset(out);
    if (buf_append(out, s, strlen(s)) < 0)
        buf_append(out, "{\"error\":{\"message\":\"upstream error\"}}", 38);
    free(s);
}

/* ---- the stream: tool-call deltas without index ---- */

/* Gives each tool_calls delta of the chunk an index (a call with an id or
 * a name opens the next one, a fragment continues the last), an id when it
 * is missing or "", and turns finish_reason "stop" into "tool_calls" for a
 * choice that made calls. Returns whether the chunk changed. */
static bool fix_chunk(req_t *req, struct quirk_stream *qs, cJSON *root)
{
    cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices"), *ch;
    bool changed = false;
    int pos = 0;
    cJSON_ArrayForEach(ch, choices)
    {
        cJSON *ix = cJSON_GetObjectItemCaseSensitive(ch, "index");
        int c = cJSON_IsNumber(ix) ? (int)ix->valuedouble : pos;
        cJSON *delta = cJSON_GetObjectItemCaseSensitive(ch, "delta");
        cJSON *tcs = cJSON_GetObjectItemCaseSensitive(delta, "tool_calls"), *tc;
        cJSON *fin = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
        pos++;
        if (c < 0 || c >= CHOICES)
            continue;
        cJSON_ArrayForEach(tc, tcs)
        {
            cJSON *id, *fn, *name;
            bool opens;
            int at;
            if (!cJSON_IsObject(tc) || cJSON_HasObjectItem(tc, "index"))
                continue;
            id = cJSON_GetObjectItemCaseSensitive(tc, "id");
            fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
            name = cJSON_GetObjectItemCaseSensitive(fn, "name");
            opens = (cJSON_IsString(id) && id->valuestring[0]) ||
                    (cJSON_IsString(name) && name->valuestring[0]) || qs->ntools[c] == 0;
            at = opens ? qs->ntools[c]++ : qs->ntools[c] - 1;
            cJSON_AddNumberToObject(tc, "index", at);
            if (opens && (!cJSON_IsString(id) || id->valuestring[0] == '\0')) {
                char nid[96];
                snprintf(nid, sizeof nid, "call_%.40s_%d_%d", req->id, c, at);
                if (id != NULL)
                    cJSON_ReplaceItemInObjectCaseSensitive(tc, "id", cJSON_CreateString(nid));
                else
                    cJSON_AddStringToObject(tc, "id", nid);
            }
            changed = true;
        }
        if (qs->ntools[c] > 0 && cJSON_IsString(fin) && strcmp(fin->valuestring, "stop") == 0) {
            cJSON_ReplaceItemInObjectCaseSensitive(ch, "finish_reason",
                                                   cJSON_CreateString("tool_calls"));
            changed = true;
        }
    }
    return changed;
}

/* Appends "data: JSON\n" of root to qs->out. */
static int emit(struct quirk_stream *qs, const cJSON *root)
{
    char *s = cJSON_PrintUnformatted(root);
    int rc = s == NULL || buf_append(&qs->out, "data: ", 6) < 0 ||
                     buf_append(&qs->out, s, strlen(s)) < 0 || buf_append(&qs->out, "\n", 1) < 0
                 ? -1
                 : 0;
    free(s);
    return rc;
}

/* The complete line in qs->line (with its line break) appended to qs->out,
 * rewritten when it is a data line that needs it. */
static int take_line(req_t *req, struct quirk_stream *qs)
{
    const char *l = buf_ptr(&qs->line);
    size_t n = buf_len(&qs->line), body = 5;
    if (n > 5 && memcmp(l, "data:", 5) == 0 && memmem(l, n, "\"tool_calls\"", 12) != NULL) {
        cJSON *root;
        while (body < n && l[body] == ' ')
            body++;
        root = cJSON_ParseWithLength(l + body, n - body);
        if (cJSON_IsObject(root) && fix_chunk(req, qs, root)) {
            int rc = emit(qs, root);
            cJSON_Delete(root);
            buf_reset(&qs->line);
            return rc;
        }
        cJSON_Delete(root);
    } else if (n > 5 && memcmp(l, "data:", 5) == 0 &&
               memmem(l, n, "\"finish_reason\":\"stop\"", 22) != NULL) {
        /* a finish chunk without tool_calls: "stop" → "tool_calls" when the
         * choice made calls */
        cJSON *root = cJSON_ParseWithLength(l + body, n - body);
        bool any = false;
        for (int i = 0; i < CHOICES; i++)
            any |= qs->ntools[i] > 0;
        if (any && cJSON_IsObject(root) && fix_chunk(req, qs, root)) {
            int rc = emit(qs, root);
            cJSON_Delete(root);
            buf_reset(&qs->line);
            return rc;
        }
        cJSON_Delete(root);
    }
    if (buf_append(&qs->out, l, n) < 0)
        return -1;
    buf_reset(&qs->line);
    return 0;
}

/* Hands qs->out to the stream path, a piece at a time: 0 when all taken,
 * else what upstream_stream_write returned (0 or CURL_WRITEFUNC_PAUSE) as
 * 1 / 2. */
static int flush(req_t *req, struct quirk_stream *qs)
{
    while (buf_len(&qs->out) > 0) {
        size_t n = buf_len(&qs->out) < PIECE ? buf_len(&qs->out) : PIECE;
        size_t r = upstream_stream_write(req, buf_ptr(&qs->out), n);
        if (r == CURL_WRITEFUNC_PAUSE)
            return 2;
        if (r != n)
            return 1;
        buf_consume(&qs->out, n);
    }
    return 0;
}

size_t quirks_stream_write(req_t *req, const char *p, size_t n)
{
    struct quirk_stream *qs = req->quirk_stream;
    size_t off;
    int r = flush(req, qs);
    if (r != 0)
        return r == 2 ? CURL_WRITEFUNC_PAUSE : 0; /* skip unchanged: nothing taken */
    /* curl re-delivers a paused delivery's bytes first: skip those taken */
    off = qs->skip < n ? qs->skip : n;
    qs->skip -= off;
    while (off < n) {
        const char *nl = memchr(p + off, '\n', n - off);
        size_t c = nl ? (size_t)(nl - (p + off)) + 1 : n - off;
        if (buf_append(&qs->line, p + off, c) < 0) {
            upstream_fail_attempt(req, "a stream line longer than 256 KiB%s", NULL);
            return 0;
        }
        off += c;
        if (nl != NULL && take_line(req, qs) < 0) {
            upstream_fail_attempt(req, "a rewritten stream larger than 512 KiB%s", NULL);
            return 0;
        }
    }
    r = flush(req, qs);
    if (r == 2) {
        qs->skip = n;
        return CURL_WRITEFUNC_PAUSE;
    }
    return r == 0 ? n : 0;
}

void quirks_answer(req_t *req, buf_t *out)
{
    const cfg_provider_t *p = prov(req, req->model);
    cJSON *root, *choices, *ch;
    bool changed = false;
    int c = 0;
    if (!(p->quirks & QUIRK_TOOL_INDEX) || req->ant || req->door_native || req->ep != EP_CHAT ||
        memmem(buf_ptr(out), buf_len(out), "\"tool_calls\"", 12) == NULL)
        return;
    root = cJSON_ParseWithLength(buf_ptr(out), buf_len(out));
    choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    cJSON_ArrayForEach(ch, choices)
    {
        cJSON *msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
        cJSON *tcs = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls"), *tc;
        cJSON *fin = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
        int at = 0;
        cJSON_ArrayForEach(tc, tcs)
        {
            cJSON *id = cJSON_GetObjectItemCaseSensitive(tc, "id");
            if (cJSON_IsObject(tc) && (!cJSON_IsString(id) || id->valuestring[0] == '\0')) {
                char nid[96];
                snprintf(nid, sizeof nid, "call_%.40s_%d_%d", req->id, c, at);
                if (id != NULL)
                    cJSON_ReplaceItemInObjectCaseSensitive(tc, "id", cJSON_CreateString(nid));
                else
                    cJSON_AddStringToObject(tc, "id", nid);
                changed = true;
            }
            at++;
        }
        if (at > 0 && cJSON_IsString(fin) && strcmp(fin->valuestring, "stop") == 0) {
            cJSON_ReplaceItemInObjectCaseSensitive(ch, "finish_reason",
                                                   cJSON_CreateString("tool_calls"));
            changed = true;
        }
        c++;
    }
    if (changed) {
        char *s = cJSON_PrintUnformatted(root);
        if (s != NULL && strlen(s) <= out->cap) {
            buf_reset(out);
            buf_append(out, s, strlen(s));
        }
        free(s);
    }
    cJSON_Delete(root);
}
