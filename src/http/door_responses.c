/* door_responses: Responses API requests → the internal Chat Completions
 * request, and the pass-through check. The answer and stream direction is in
 * door_responses_out.c. */
#include "http/door_responses.h"
#include "http/door_items.h"

#include "http/door.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/json.h"

/* What is open at the end of the messages written so far: an assistant
 * message can still take tool_calls (function_call items that follow it
 * belong to the same turn). */
enum open { OPEN_NONE = 0, OPEN_ASSISTANT, OPEN_ASSISTANT_TOOLS };

typedef struct tx {
    door_w_t w;
    req_error_t *err;
    bool any_msg;
    enum open open;
    size_t scratch_cap;
} tx_t;

static bool is(const char *a, const char *b)
{
    return a != NULL && strcmp(a, b) == 0;
}

static int bad_item(tx_t *t, int i, const char *what, const char *arg)
{
    char fmt[160], where[256];
    snprintf(fmt, sizeof fmt, "input[%d]: %s", i, what);
    snprintf(where, sizeof where, fmt, arg ? arg : "");
    return door_fail(t->err, 400, "invalid_value", "input", "%s", where);
}

static void close_open(tx_t *t)
{
    if (t->open == OPEN_ASSISTANT_TOOLS)
        door_w_raw(&t->w, "]}");
    else if (t->open == OPEN_ASSISTANT)
        door_w_raw(&t->w, "}");
    t->open = OPEN_NONE;
}

static void msg_begin(tx_t *t, const char *role)
{
    close_open(t);
    door_w_raw(&t->w, t->any_msg ? ",{\"role\":" : "{\"role\":");
    door_w_str(&t->w, role);
    t->any_msg = true;
}

/* The server-side state a stateless door cannot keep, named. Returns 0 or
 * -1 with the 400. */
static int check_stateless(const cJSON *root, req_error_t *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "store");
    if (cJSON_IsTrue(v))
        return door_fail(err, 400, "unsupported_parameter", "store",
                         "store: true is not supported: llmrouter's Responses endpoint is "
                         "stateless and keeps no responses. Send store: false (or leave it out) "
                         "and the whole conversation in 'input'.%s",
                         NULL);
    static const char *const stateful[] = {"previous_response_id", "conversation", "prompt"};
    for (size_t i = 0; i < sizeof stateful / sizeof *stateful; i++) {
        v = cJSON_GetObjectItemCaseSensitive(root, stateful[i]);
        if (v != NULL && !cJSON_IsNull(v))
            return door_fail(err, 400, "unsupported_parameter", stateful[i],
                             "%s is not supported: llmrouter's Responses endpoint is stateless; "
                             "send the whole conversation in 'input' instead.",
                             stateful[i]);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "background")))
        return door_fail(err, 400, "unsupported_parameter", "background",
                         "background: true is not supported: llmrouter's Responses endpoint is "
                         "stateless.%s",
                         NULL);
    return 0;
}

/* Joins the text parts of a content (a string, or parts whose type is in
 * the list) into one JSON string; other parts are ignored. */
static void write_joined_text(tx_t *t, const cJSON *content)
{
    const cJSON *p;
    buf_t tmp;
    int n = 0;
    if (cJSON_IsString(content)) {
        door_w_str(&t->w, content->valuestring);
        return;
    }
    buf_init(&tmp, t->scratch_cap + 16);
    cJSON_ArrayForEach(p, content)
    {
        const char *ty = door_type_of(p);
        const char *tx = is(ty, "refusal") ? door_str_of(p, "refusal") : door_str_of(p, "text");
        if (tx == NULL || !(is(ty, "input_text") || is(ty, "output_text") || is(ty, "text") ||
                            is(ty, "refusal")))
            continue;
        if (n++)
            buf_puts(&tmp, "\n");
        buf_puts(&tmp, tx);
    }
    door_w_strn(&t->w, buf_ptr(&tmp), buf_len(&tmp));
    buf_free(&tmp);
}

/* A user message's parts → Chat parts. A single text part is written as a
 * plain string. */
static int write_user_content(tx_t *t, const cJSON *content, int i)
{
    const cJSON *p;
    int n = 0;
    if (cJSON_IsString(content)) {
        door_w_str(&t->w, content->valuestring);
        return 0;
    }
    if (cJSON_GetArraySize(content) == 1 && is(door_type_of(content->child), "input_text")) {
        write_joined_text(t, content);
        return 0;
    }
    door_w_raw(&t->w, "[");
    cJSON_ArrayForEach(p, content)
    {
        const char *ty = door_type_of(p);
        if (!cJSON_IsObject(p) || ty == NULL)
            return bad_item(t, i, "every content part must be an object with a string 'type'",
                            NULL);
        if (is(ty, "input_text") || is(ty, "output_text") || is(ty, "text")) {
            if (door_str_of(p, "text") == NULL)
                return bad_item(t, i, "a %s part needs a string 'text'", ty);
            door_w_raw(&t->w, n++ ? ",{\"type\":\"text\",\"text\":" : "{\"type\":\"text\",\"text\":");
            door_w_str(&t->w, door_str_of(p, "text"));
            door_w_raw(&t->w, "}");
        } else if (is(ty, "input_image")) {
            const char *url = door_str_of(p, "image_url"), *detail = door_str_of(p, "detail");
            if (url == NULL)
                return bad_item(t, i, "input_image needs an 'image_url' (a URL or a data URI); "
                                      "file_id needs the Files API, which this router does not "
                                      "serve%s",
                                NULL);
            door_w_raw(&t->w, n++ ? ",{" : "{");
            door_w_raw(&t->w, "\"type\":\"image_url\",\"image_url\":{\"url\":");
            door_w_str(&t->w, url);
            if (detail != NULL) {
                door_w_raw(&t->w, ",\"detail\":");
                door_w_str(&t->w, detail);
            }
            door_w_raw(&t->w, "}}");
        } else if (is(ty, "input_file")) {
            const char *data = door_str_of(p, "file_data"), *name = door_str_of(p, "filename");
            if (data == NULL)
                return bad_item(t, i, "input_file needs 'file_data'; file_id and file_url are "
                                      "not supported by this router%s",
                                NULL);
            door_w_raw(&t->w, n++ ? ",{" : "{");
            door_w_raw(&t->w, "\"type\":\"file\",\"file\":{\"file_data\":");
            door_w_str(&t->w, data);
            if (name != NULL) {
                door_w_raw(&t->w, ",\"filename\":");
                door_w_str(&t->w, name);
            }
            door_w_raw(&t->w, "}}");
        } else {
            return bad_item(t, i, "content part type '%.64s' is not supported", ty);
        }
    }
    door_w_raw(&t->w, "]");
    return 0;
}

static int write_message_item(tx_t *t, const cJSON *it, int i)
{
    const char *role = door_str_of(it, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
    if (!cJSON_IsString(content) && !cJSON_IsArray(content))
        return bad_item(t, i, "a message needs 'content': a string or an array of parts%s", NULL);
    if (is(role, "user")) {
        msg_begin(t, "user");
        door_w_raw(&t->w, ",\"content\":");
        return write_user_content(t, content, i);
    }
    if (is(role, "assistant")) {
        msg_begin(t, "assistant");
        door_w_raw(&t->w, ",\"content\":");
        write_joined_text(t, content);
        t->open = OPEN_ASSISTANT; /* function calls that follow join it */
        return 0;
    }
    if (is(role, "system") || is(role, "developer")) {
        /* "system": the role every OpenAI-compatible provider knows (OpenAI
         * itself treats it as developer for the models that want that) */
        msg_begin(t, "system");
        door_w_raw(&t->w, ",\"content\":");
        write_joined_text(t, content);
        return 0;
    }
    return bad_item(t, i, "role must be user, assistant, system or developer%s", NULL);
}

static int write_function_call(tx_t *t, const cJSON *it, int i)
{
    const char *call_id = door_str_of(it, "call_id"), *name = door_str_of(it, "name");
    const char *args = door_str_of(it, "arguments");
    if (call_id == NULL || name == NULL || args == NULL)
        return bad_item(t, i, "a function_call needs string 'call_id', 'name' and 'arguments'%s",
                        NULL);
    if (t->open == OPEN_ASSISTANT) {
        door_w_raw(&t->w, ",\"tool_calls\":[");
    } else if (t->open == OPEN_ASSISTANT_TOOLS) {
        door_w_raw(&t->w, ",");
    } else {
        msg_begin(t, "assistant");
        door_w_raw(&t->w, ",\"content\":null,\"tool_calls\":[");
    }
    t->open = OPEN_ASSISTANT_TOOLS;
    door_w_raw(&t->w, "{\"id\":");
    door_w_str(&t->w, call_id);
    door_w_raw(&t->w, ",\"type\":\"function\",\"function\":{\"name\":");
    door_w_str(&t->w, name);
    door_w_raw(&t->w, ",\"arguments\":");
    door_w_str(&t->w, args);
    door_w_raw(&t->w, "}}");
    return 0;
}

static int write_input(tx_t *t, const cJSON *input)
{
    const cJSON *it;
    int i = 0;
    if (cJSON_IsString(input)) {
        msg_begin(t, "user");
        door_w_raw(&t->w, ",\"content\":");
        door_w_str(&t->w, input->valuestring);
        door_w_raw(&t->w, "}");
        return 0;
    }
    cJSON_ArrayForEach(it, input)
    {
        const char *ty = door_type_of(it);
        int r = 0;
        if (!cJSON_IsObject(it))
            return bad_item(t, i, "every input item must be an object%s", NULL);
        if (ty == NULL || is(ty, "message")) {
            if (door_str_of(it, "role") == NULL)
                return bad_item(t, i, "an item needs a 'type' (or a message its 'role')%s", NULL);
            r = write_message_item(t, it, i);
            if (r == 0 && t->open == OPEN_NONE)
                door_w_raw(&t->w, "}");
        } else if (is(ty, "function_call")) {
            r = write_function_call(t, it, i);
        } else if (is(ty, "function_call_output")) {
            const cJSON *o = cJSON_GetObjectItemCaseSensitive(it, "output");
            if (door_str_of(it, "call_id") == NULL || (!cJSON_IsString(o) && !cJSON_IsArray(o)))
                return bad_item(t, i, "a function_call_output needs a string 'call_id' and an "
                                      "'output'%s",
                                NULL);
            msg_begin(t, "tool");
            door_w_raw(&t->w, ",\"tool_call_id\":");
            door_w_str(&t->w, door_str_of(it, "call_id"));
            door_w_raw(&t->w, ",\"content\":");
            write_joined_text(t, o);
            door_w_raw(&t->w, "}");
        } else if (is(ty, "reasoning")) {
            /* another provider cannot use a model's reasoning items: dropped,
             * and an open assistant turn stays open across them */
        } else if (is(ty, "item_reference")) {
            /* an item this router answered with (door_items): written as
             * if the client had sent it; anything else is unknown here */
            const char *rid = door_str_of(it, "id");
            char *json = rid != NULL ? door_items_get(rid) : NULL;
            cJSON *ref = json != NULL ? cJSON_Parse(json) : NULL;
            const char *rty = ref != NULL ? door_type_of(ref) : NULL;
            free(json);
            if (ref == NULL)
                return bad_item(t, i, "item_reference names an item this router does not have "
                                      "(it keeps the items it answered with for an hour, per "
                                      "instance; the Responses endpoint is otherwise stateless: "
                                      "send the items themselves)%s",
                                NULL);
            if (is(rty, "message")) {
                r = write_message_item(t, ref, i);
                if (r == 0 && t->open == OPEN_NONE)
                    door_w_raw(&t->w, "}");
            } else if (is(rty, "function_call")) {
                r = write_function_call(t, ref, i);
            } /* a reasoning item is dropped, as when sent inline */
            cJSON_Delete(ref);
        } else {
            return bad_item(t, i, "item type '%.64s' is not supported (messages, function_call "
                                  "and function_call_output are)",
                            ty);
        }
        if (r < 0)
            return -1;
        i++;
    }
    close_open(t);
    return 0;
}

/* Function tools (flat in the Responses API, nested under "function" in
 * Chat). Built-in tools are refused: nothing behind the router runs them.
 * Returns the number written or -1. */
static int write_tools(tx_t *t, const cJSON *tools)
{
    const cJSON *tool, *v;
    int n = 0;
    if (tools == NULL || cJSON_IsNull(tools))
        return 0;
    if (!cJSON_IsArray(tools))
        return door_fail(t->err, 400, "invalid_type", "tools", "tools: must be an array.%s", NULL);
    cJSON_ArrayForEach(tool, tools)
    {
        const char *ty = door_type_of(tool), *name = door_str_of(tool, "name");
        if (!is(ty, "function"))
            return door_fail(t->err, 400, "unsupported_value", "tools",
                             "tools: type '%.64s' is not supported; only function tools are "
                             "(built-in tools run at OpenAI, not behind this router).",
                             ty ? ty : "(none)");
        if (name == NULL)
            return door_fail(t->err, 400, "invalid_value", "tools",
                             "tools: every function tool needs a string 'name'.%s", NULL);
        door_w_raw(&t->w, n++ ? ",{" : ",\"tools\":[{");
        door_w_raw(&t->w, "\"type\":\"function\",\"function\":{\"name\":");
        door_w_str(&t->w, name);
        if (door_str_of(tool, "description") != NULL) {
            door_w_raw(&t->w, ",\"description\":");
            door_w_str(&t->w, door_str_of(tool, "description"));
        }
        v = cJSON_GetObjectItemCaseSensitive(tool, "parameters");
        if (cJSON_IsObject(v)) {
            door_w_raw(&t->w, ",\"parameters\":");
            door_w_json(&t->w, v);
        }
        v = cJSON_GetObjectItemCaseSensitive(tool, "strict");
        if (cJSON_IsBool(v))
            door_w_raw(&t->w, cJSON_IsTrue(v) ? ",\"strict\":true" : ",\"strict\":false");
        door_w_raw(&t->w, "}}");
    }
    if (n > 0)
        door_w_raw(&t->w, "]");
    return n;
}

static int write_tool_choice(tx_t *t, const cJSON *tc)
{
    if (tc == NULL || cJSON_IsNull(tc))
        return 0;
    if (cJSON_IsString(tc) &&
        (is(tc->valuestring, "auto") || is(tc->valuestring, "required") ||
         is(tc->valuestring, "none"))) {
        door_w_raw(&t->w, ",\"tool_choice\":");
        door_w_str(&t->w, tc->valuestring);
        return 0;
    }
    if (is(door_type_of(tc), "function") && door_str_of(tc, "name") != NULL) {
        door_w_raw(&t->w, ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":");
        door_w_str(&t->w, door_str_of(tc, "name"));
        door_w_raw(&t->w, "}}");
        return 0;
    }
    return door_fail(t->err, 400, "unsupported_value", "tool_choice",
                     "tool_choice: must be \"auto\", \"required\", \"none\" or "
                     "{\"type\":\"function\",\"name\":...}.%s",
                     NULL);
}

/* text.format → response_format (json_schema is flat here, nested there). */
static int write_format(tx_t *t, const cJSON *text)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(text, "format"), *v;
    const char *ty = door_type_of(f);
    if (f == NULL || cJSON_IsNull(f) || is(ty, "text"))
        return 0;
    if (is(ty, "json_object")) {
        door_w_raw(&t->w, ",\"response_format\":{\"type\":\"json_object\"}");
        return 0;
    }
    if (!is(ty, "json_schema"))
        return door_fail(t->err, 400, "unsupported_value", "text.format",
                         "text.format: type must be text, json_object or json_schema.%s", NULL);
    if (door_str_of(f, "name") == NULL || !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(f, "schema")))
        return door_fail(t->err, 400, "invalid_value", "text.format",
                         "text.format: json_schema needs a string 'name' and a 'schema' object.%s",
                         NULL);
    door_w_raw(&t->w, ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":");
    door_w_str(&t->w, door_str_of(f, "name"));
    if (door_str_of(f, "description") != NULL) {
        door_w_raw(&t->w, ",\"description\":");
        door_w_str(&t->w, door_str_of(f, "description"));
    }
    door_w_raw(&t->w, ",\"schema\":");
    door_w_json(&t->w, cJSON_GetObjectItemCaseSensitive(f, "schema"));
    v = cJSON_GetObjectItemCaseSensitive(f, "strict");
    if (cJSON_IsBool(v))
        door_w_raw(&t->w, cJSON_IsTrue(v) ? ",\"strict\":true" : ",\"strict\":false");
    door_w_raw(&t->w, "}}");
    return 0;
}

static int copy_field(tx_t *t, const cJSON *root, const char *from, const char *to, bool number)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, from);
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (number ? !cJSON_IsNumber(v) : !cJSON_IsString(v))
        return door_fail(t->err, 400, "invalid_type", from,
                         number ? "%s: must be a number." : "%s: must be a string.", from);
    door_w_raw(&t->w, ",\"");
    door_w_raw(&t->w, to);
    door_w_raw(&t->w, "\":");
    if (number)
        door_w_num(&t->w, v->valuedouble);
    else
        door_w_str(&t->w, v->valuestring);
    return 0;
}

/* Parses and checks what both paths need: a JSON object, model and input,
 * no server-side state. Returns the tree (caller frees with
 * json_tree_free) or NULL. */
static json_tree_t *parse_common(const char *body, size_t len, req_error_t *err)
{
    json_tree_t *tree;
    const cJSON *root, *v;
    if (door_parse_body(body, len, &tree, err) < 0)
        return NULL;
    root = json_tree_root(tree);
    v = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0') {
        door_fail(err, 400, v ? "invalid_type" : "missing_required_parameter", "model",
                  "You must provide a model parameter (a non-empty string).%s", NULL);
        goto fail;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "input");
    if (!cJSON_IsString(v) && !(cJSON_IsArray(v) && v->child != NULL)) {
        door_fail(err, 400, v ? "invalid_value" : "missing_required_parameter", "input",
                  "input: a string or a non-empty array of items is required (this router is "
                  "stateless: there is no stored conversation to continue).%s",
                  NULL);
        goto fail;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (v != NULL && !cJSON_IsBool(v) && !cJSON_IsNull(v)) {
        door_fail(err, 400, "invalid_type", "stream", "stream: must be a boolean.%s", NULL);
        goto fail;
    }
    if (check_stateless(root, err) < 0)
        goto fail;
    return tree;
fail:
    json_tree_free(tree);
    return NULL;
}

int dr_pass_through_check(const char *body, size_t len, req_error_t *err)
{
    json_tree_t *tree = parse_common(body, len, err);
    if (tree == NULL)
        return -1;
    json_tree_free(tree);
    return 0;
}

int dr_request_to_chat(const char *body, size_t len, buf_t *out, dr_info_t *info,
                       req_error_t *err)
{
    tx_t t = {.w = {out, 0}, .err = err, .scratch_cap = len};
    size_t start = buf_len(out);
    json_tree_t *tree;
    const cJSON *root, *v;
    int rc = -1, n_tools;

    memset(info, 0, sizeof *info);
    tree = parse_common(body, len, err);
    if (tree == NULL)
        return -1;
    root = json_tree_root(tree);
    info->store_absent = cJSON_GetObjectItemCaseSensitive(root, "store") == NULL;
    door_w_raw(&t.w, "{\"model\":");
    door_w_str(&t.w, door_str_of(root, "model"));
    door_w_raw(&t.w, ",\"messages\":[");
    v = cJSON_GetObjectItemCaseSensitive(root, "instructions");
    if (cJSON_IsString(v) && v->valuestring[0] != '\0') {
        msg_begin(&t, "system");
        door_w_raw(&t.w, ",\"content\":");
        door_w_str(&t.w, v->valuestring);
        door_w_raw(&t.w, "}");
    } else if (v != NULL && !cJSON_IsNull(v) && !cJSON_IsString(v)) {
        door_fail(err, 400, "invalid_type", "instructions", "instructions: must be a string.%s",
                  NULL);
        goto out;
    }
    if (write_input(&t, cJSON_GetObjectItemCaseSensitive(root, "input")) < 0)
        goto out;
    door_w_raw(&t.w, "]");
    if (!t.any_msg) {
        door_fail(err, 400, "invalid_value", "input",
                  "input: no message left to send (only reasoning items?).%s", NULL);
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "max_output_tokens");
    if (v != NULL && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 1) {
            door_fail(err, 400, "invalid_value", "max_output_tokens",
                      "max_output_tokens: must be a positive integer.%s", NULL);
            goto out;
        }
        door_w_raw(&t.w, ",\"max_completion_tokens\":");
        door_w_num(&t.w, v->valuedouble);
    }
    if (copy_field(&t, root, "temperature", "temperature", true) < 0 ||
        copy_field(&t, root, "top_p", "top_p", true) < 0 ||
        copy_field(&t, root, "user", "user", false) < 0 ||
        copy_field(&t, root, "safety_identifier", "safety_identifier", false) < 0 ||
        copy_field(&t, root, "prompt_cache_key", "prompt_cache_key", false) < 0)
        goto out;
    v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "reasoning"),
                                         "effort");
    if (cJSON_IsString(v)) {
        door_w_raw(&t.w, ",\"reasoning_effort\":");
        door_w_str(&t.w, v->valuestring);
    }
    if (write_format(&t, cJSON_GetObjectItemCaseSensitive(root, "text")) < 0)
        goto out;
    n_tools = write_tools(&t, cJSON_GetObjectItemCaseSensitive(root, "tools"));
    if (n_tools < 0)
        goto out;
    if (n_tools > 0) {
        if (write_tool_choice(&t, cJSON_GetObjectItemCaseSensitive(root, "tool_choice")) < 0)
            goto out;
        v = cJSON_GetObjectItemCaseSensitive(root, "parallel_tool_calls");
        if (cJSON_IsBool(v))
            door_w_raw(&t.w, cJSON_IsTrue(v) ? ",\"parallel_tool_calls\":true"
                                             : ",\"parallel_tool_calls\":false");
    }
    info->stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "stream"));
    if (info->stream)
        door_w_raw(&t.w, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    door_w_raw(&t.w, "}");
    if (t.w.err) {
        door_fail(err, 413, "request_too_large", NULL,
                  "The translated request exceeds the router's body limit.%s", NULL);
        goto out;
    }
    rc = 0;
out:
    if (rc < 0)
        out->w = out->r + start;
    json_tree_free(tree);
    return rc;
}
