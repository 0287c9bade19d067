/* door: what the Messages and Responses doors share (see http/door.h). */
#include "http/door.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/json.h"

const char *door_name(enum door d)
{
    switch (d) {
    case DOOR_MESSAGES:
        return "messages";
    case DOOR_RESPONSES:
        return "responses";
    case DOOR_CHAT:
    default:
        return "chat";
    }
}

const char *door_label(enum door d, enum endpoint ep)
{
    if (d != DOOR_CHAT)
        return door_name(d);
    return ep == EP_COMPLETIONS ? "completions" : ep == EP_EMBEDDINGS ? "embeddings" : "chat";
}

enum door door_for_path(const char *path, bool *count_tokens)
{
    if (count_tokens)
        *count_tokens = false;
    if (path == NULL)
        return DOOR_CHAT;
    if (strncmp(path, "/v1/", 4) == 0)
        path += 3;
    if (strcmp(path, "/messages") == 0)
        return DOOR_MESSAGES;
    if (strcmp(path, "/messages/count_tokens") == 0) {
        if (count_tokens)
            *count_tokens = true;
        return DOOR_MESSAGES;
    }
    if (strcmp(path, "/responses") == 0)
        return DOOR_RESPONSES;
    return DOOR_CHAT;
}

const cJSON *door_json_parse(door_json_t *j, const char *s, size_t n)
{
    int is_object = 0;
    j->_tree = NULL;
    j->_cj = NULL;
    if (n > 0 && json_tree_parse(s, n, &j->_tree, &is_object, NULL) == 1)
        return json_tree_root(j->_tree);
    j->_cj = cJSON_ParseWithLength(s, n);
    return j->_cj;
}

void door_json_free(door_json_t *j)
{
    json_tree_free(j->_tree);
    cJSON_Delete(j->_cj);
    j->_tree = NULL;
    j->_cj = NULL;
}

int door_fail(req_error_t *err, unsigned status, const char *code, const char *param,
              const char *fmt, const char *arg)
{
    err->status = status;
    err->type = "invalid_request_error";
    err->code = code;
    err->param = param;
    snprintf(err->message, sizeof err->message, fmt, arg ? arg : "");
    return -1;
}

int door_parse_body(const char *body, size_t len, json_tree_t **tree, req_error_t *err)
{
    json_error_t je;
    int is_object = 0, ok;
    char where[160];
    *tree = NULL;
    if (len == 0)
        return door_fail(err, 400, "invalid_json", NULL,
                         "The request body is empty; expected a JSON object.%s", NULL);
    ok = json_tree_parse(body, len, tree, &is_object, &je);
    if (ok < 0) {
        door_fail(err, 503, "server_overloaded", NULL,
                  "Out of memory while validating the request body; retry later.%s", NULL);
        err->type = "server_error";
        return -1;
    }
    if (ok == 0) {
        /* the same facts as request.c's message: what and at which byte (a
         * repeated key is named, cut to 64 bytes) */
        if (je.key.len > 0)
            snprintf(where, sizeof where, "repeats the key \"%.*s\" in one object (byte %zu)",
                     (int)(je.key.len > 64 ? 64 : je.key.len), body + je.key.off, je.off);
        else
            snprintf(where, sizeof where, "is not valid JSON: %s at byte %zu", je.what, je.off);
        return door_fail(err, 400, "invalid_json", NULL, "The request body %s.", where);
    }
    if (!is_object) {
        json_tree_free(*tree);
        *tree = NULL;
        return door_fail(err, 400, "invalid_json", NULL,
                         "The request body must be a JSON object.%s", NULL);
    }
    return 0;
}

int door_replace_model(const char *body, size_t len, const char *model, bool add_store_false,
                       buf_t *out)
{
    json_span_t sp[2];
    door_w_t w = {out, 0};
    size_t end = len;
    bool add_store;
    if (json_find_top_key(body, len, "model", sp, 2) != 1)
        return -1;
    add_store = add_store_false && json_find_top_key(body, len, "store", NULL, 0) == 0;
    door_w_rawn(&w, body, sp[0].off);
    door_w_str(&w, model);
    if (add_store) {
        /* insert before the closing brace of the top-level object */
        while (end > 0 && body[end - 1] != '}')
            end--;
        if (end == 0)
            return -1;
        end--;
        door_w_rawn(&w, body + sp[0].off + sp[0].len, end - (sp[0].off + sp[0].len));
        door_w_raw(&w, ",\"store\":false");
        door_w_rawn(&w, body + end, len - end);
    } else {
        door_w_rawn(&w, body + sp[0].off + sp[0].len, len - (sp[0].off + sp[0].len));
    }
    return w.err ? -2 : 0;
}

void door_usage_init(door_usage_t *u)
{
    u->prompt = u->completion = u->cached = u->cache_write = u->reasoning = -1;
}

static void read_count(int64_t *dst, const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsNumber(v) && v->valuedouble >= 0)
        *dst = v->valuedouble > 1e15 ? (int64_t)1e15 : (int64_t)v->valuedouble;
}

void door_usage_read(door_usage_t *u, const cJSON *usage)
{
    const cJSON *d;
    if (!cJSON_IsObject(usage))
        return;
    read_count(&u->prompt, usage, "prompt_tokens");
    read_count(&u->completion, usage, "completion_tokens");
    d = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details");
    read_count(&u->cached, d, "cached_tokens");
    read_count(&u->cache_write, d, "cache_write_tokens");
    d = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens_details");
    read_count(&u->reasoning, d, "reasoning_tokens");
}

void door_w_rawn(door_w_t *w, const char *s, size_t n)
{
    if (w->err == 0 && buf_append(w->b, s, n) < 0)
        w->err = -1;
}

void door_w_raw(door_w_t *w, const char *s)
{
    door_w_rawn(w, s, strlen(s));
}

void door_w_strn(door_w_t *w, const char *s, size_t n)
{
    if (w->err == 0 && json_append_string(w->b, s, n) < 0)
        w->err = -1;
}

void door_w_str(door_w_t *w, const char *s)
{
    if (s == NULL)
        door_w_raw(w, "null");
    else
        door_w_strn(w, s, strlen(s));
}

void door_w_num(door_w_t *w, double d)
{
    if (w->err == 0 && json_append_number(w->b, d) < 0)
        w->err = -1;
}

void door_w_json(door_w_t *w, const cJSON *v)
{
    char *s;
    if (v == NULL) {
        door_w_raw(w, "null");
        return;
    }
    if (w->err)
        return;
    /* a copy of a subtree the client sent (a schema, a tool's input):
     * cJSON's compact print is valid JSON, and strings it read were valid
     * UTF-8 (the strict pass ran first) */
    s = cJSON_PrintUnformatted(v);
    if (s == NULL) {
        w->err = -1;
        return;
    }
    door_w_raw(w, s);
    free(s);
}

const char *door_str_of(const cJSON *o, const char *key)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

const char *door_type_of(const cJSON *o)
{
    return door_str_of(o, "type");
}

void door_trim_data(const char **data, size_t *len)
{
    const char *d = *data;
    size_t n = *len;
    while (n > 0 && (d[n - 1] == ' ' || d[n - 1] == '\n' || d[n - 1] == '\r'))
        n--;
    while (n > 0 && (d[0] == ' ' || d[0] == '\n' || d[0] == '\r')) {
        d++;
        n--;
    }
    *data = d;
    *len = n;
}
