/* door_messages: Anthropic Messages requests → the internal Chat Completions
 * request (see http/door_messages.h). The answer and stream direction is in
 * door_messages_out.c, count_tokens in door_messages_count.c, Anthropic's
 * error bodies in door_messages_err.c. */
#include "http/door_messages.h"

#include "http/door.h"
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "core/json.h"

typedef struct tx {
    door_w_t w;
    dm_info_t *info;
    req_error_t *err;
    bool any_msg;     /* a message was written: the next one needs a comma */
    size_t scratch_cap; /* cap of temporary text buffers (the body's size) */
} tx_t;

static void note_unsupported(tx_t *t, const char *what)
{
    t->info->dropped |= DM_DROP_UNSUPPORTED;
    if (t->info->unsupported[0] == '\0')
        snprintf(t->info->unsupported, sizeof t->info->unsupported, "%s", what);
}

static void note_cache_control(tx_t *t, const cJSON *o)
{
    if (cJSON_GetObjectItemCaseSensitive(o, "cache_control") != NULL)
        t->info->dropped |= DM_DROP_CACHE_CONTROL;
}

/* A 400 about messages[i] (or one of its blocks when j >= 0). */
static int bad_msg(tx_t *t, int i, int j, const char *what)
{
    char where[96];
    if (j >= 0)
        snprintf(where, sizeof where, "messages.%d.content.%d: %s", i, j, what);
    else
        snprintf(where, sizeof where, "messages.%d: %s", i, what);
    return door_fail(t->err, 400, "invalid_value", "messages", "%s", where);
}

static void msg_begin(tx_t *t, const char *role)
{
    door_w_raw(&t->w, t->any_msg ? ",{\"role\":" : "{\"role\":");
    door_w_str(&t->w, role);
    t->any_msg = true;
}

/* An image block's source as an image_url part. Returns 0 or -1 (not an
 * image Anthropic accepts). */
static int write_image(tx_t *t, const cJSON *blk)
{
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(blk, "source");
    const char *st = door_type_of(src);
    door_w_raw(&t->w, "{\"type\":\"image_url\",\"image_url\":{\"url\":");
    if (st != NULL && strcmp(st, "base64") == 0) {
        const char *mt = door_str_of(src, "media_type"), *data = door_str_of(src, "data");
        if (mt == NULL || data == NULL)
            return -1;
        /* a data URI: the form every OpenAI-compatible provider reads */
        door_w_raw(&t->w, "\"data:");
        {
            /* media_type and data are written unquoted inside one string:
             * escape them through a temporary literal minus its quotes */
            buf_t tmp;
            buf_init(&tmp, strlen(mt) * 6 + strlen(data) * 6 + 16);
            if (json_append_string(&tmp, mt, strlen(mt)) == 0)
                door_w_rawn(&t->w, buf_ptr(&tmp) + 1, buf_len(&tmp) - 2);
            buf_reset(&tmp);
            door_w_raw(&t->w, ";base64,");
            if (json_append_string(&tmp, data, strlen(data)) == 0)
                door_w_rawn(&t->w, buf_ptr(&tmp) + 1, buf_len(&tmp) - 2);
            buf_free(&tmp);
        }
        door_w_raw(&t->w, "\"}}");
        return 0;
    }
    if (st != NULL && strcmp(st, "url") == 0 && door_str_of(src, "url") != NULL) {
        door_w_str(&t->w, door_str_of(src, "url"));
        door_w_raw(&t->w, "}}");
        return 0;
    }
    return -1;
}

/* Writes the user message made of the text and image blocks in
 * [from, to) of a content array (tool_result and unknown blocks skipped).
 * A single text block is written as a plain string. */
static int write_user_run(tx_t *t, const char *role, const cJSON *from, const cJSON *to, int i,
                          int j0)
{
    int n = 0, j = j0;
    const cJSON *only = NULL;
    for (const cJSON *b = from; b != to; b = b->next) {
        const char *ty = door_type_of(b);
        if (ty && (strcmp(ty, "text") == 0 || strcmp(ty, "image") == 0)) {
            n++;
            only = b;
        }
    }
    if (n == 0)
        return 0;
    msg_begin(t, role);
    door_w_raw(&t->w, ",\"content\":");
    if (n == 1 && strcmp(door_type_of(only), "text") == 0) {
        door_w_str(&t->w, door_str_of(only, "text"));
        door_w_raw(&t->w, "}");
        return 0;
    }
    door_w_raw(&t->w, "[");
    n = 0;
    for (const cJSON *b = from; b != to; b = b->next, j++) {
        const char *ty = door_type_of(b);
        if (ty == NULL || (strcmp(ty, "text") != 0 && strcmp(ty, "image") != 0))
            continue;
        if (n++)
            door_w_raw(&t->w, ",");
        if (strcmp(ty, "text") == 0) {
            door_w_raw(&t->w, "{\"type\":\"text\",\"text\":");
            door_w_str(&t->w, door_str_of(b, "text"));
            door_w_raw(&t->w, "}");
        } else if (write_image(t, b) < 0) {
            return bad_msg(t, i, j, "an image needs source {type:\"base64\", media_type, data} "
                                    "or {type:\"url\", url}");
        }
    }
    door_w_raw(&t->w, "]}");
    return 0;
}

/* Checks the blocks every role shares; returns -1 with the 400. */
static int check_block(tx_t *t, const cJSON *b, int i, int j, const char *role)
{
    const char *ty = door_type_of(b);
    if (!cJSON_IsObject(b) || ty == NULL)
        return bad_msg(t, i, j, "each content block must be an object with a string 'type'");
    note_cache_control(t, b);
    if (strcmp(ty, "text") == 0) {
        if (door_str_of(b, "text") == NULL)
            return bad_msg(t, i, j, "a text block needs a string 'text'");
    } else if (strcmp(ty, "image") == 0) {
        if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(b, "source")))
            return bad_msg(t, i, j, "an image block needs a 'source' object");
    } else if (strcmp(ty, "tool_use") == 0) {
        if (strcmp(role, "assistant") != 0)
            return bad_msg(t, i, j, "tool_use blocks belong in assistant messages");
        if (door_str_of(b, "id") == NULL || door_str_of(b, "name") == NULL)
            return bad_msg(t, i, j, "a tool_use block needs a string 'id' and 'name'");
    } else if (strcmp(ty, "tool_result") == 0) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(b, "content");
        if (strcmp(role, "user") != 0)
            return bad_msg(t, i, j, "tool_result blocks belong in user messages");
        if (door_str_of(b, "tool_use_id") == NULL)
            return bad_msg(t, i, j, "a tool_result block needs a string 'tool_use_id'");
        if (c != NULL && !cJSON_IsString(c) && !cJSON_IsArray(c))
            return bad_msg(t, i, j, "a tool_result's content must be a string or blocks");
    } else if (strcmp(ty, "thinking") == 0 || strcmp(ty, "redacted_thinking") == 0) {
        t->info->dropped |= DM_DROP_THINKING;
    } else {
        note_unsupported(t, ty);
    }
    return 0;
}

/* A tool_result's text: its string content, or its text blocks joined with
 * '\n'; is_error results are prefixed with "Error: " so the model still
 * learns the call failed (Chat Completions has no error flag). */
static void write_tool_result_text(tx_t *t, const cJSON *b)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(b, "content"), *p;
    bool is_error = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "is_error"));
    buf_t tmp;
    int n = 0;
    buf_init(&tmp, t->scratch_cap + 16);
    if (is_error)
        buf_puts(&tmp, "Error: ");
    if (cJSON_IsString(c)) {
        buf_puts(&tmp, c->valuestring);
    } else {
        cJSON_ArrayForEach(p, c)
        {
            const char *ty = door_type_of(p), *tx = door_str_of(p, "text");
            note_cache_control(t, p);
            if (ty && strcmp(ty, "text") == 0 && tx) {
                if (n++)
                    buf_puts(&tmp, "\n");
                buf_puts(&tmp, tx);
            } else if (ty && strcmp(ty, "image") != 0) {
                note_unsupported(t, ty);
            }
        }
    }
    door_w_strn(&t->w, buf_ptr(&tmp), buf_len(&tmp));
    buf_free(&tmp);
}

static bool has_tool_images(const cJSON *b)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(b, "content"), *p;
    const cJSON *arr = cJSON_IsArray(c) ? c : NULL;
    cJSON_ArrayForEach(p, arr)
    {
        const char *ty = door_type_of(p);
        if (ty && strcmp(ty, "image") == 0)
            return true;
    }
    return false;
}

/* A run of consecutive tool_result blocks [from, to): one tool message per
 * result, in order, then — since tool messages carry no images — one user
 * message with the images the results returned. */
static int write_tool_results(tx_t *t, const cJSON *from, const cJSON *to, int i, int j0)
{
    bool images = false;
    int n = 0, j = j0;
    for (const cJSON *b = from; b != to; b = b->next) {
        msg_begin(t, "tool");
        door_w_raw(&t->w, ",\"tool_call_id\":");
        door_w_str(&t->w, door_str_of(b, "tool_use_id"));
        door_w_raw(&t->w, ",\"content\":");
        write_tool_result_text(t, b);
        door_w_raw(&t->w, "}");
        images |= has_tool_images(b);
    }
    if (!images)
        return 0;
    msg_begin(t, "user");
    door_w_raw(&t->w, ",\"content\":[");
    for (const cJSON *b = from; b != to; b = b->next, j++) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(b, "content"), *p;
        const cJSON *arr = cJSON_IsArray(c) ? c : NULL;
        cJSON_ArrayForEach(p, arr)
        {
            const char *ty = door_type_of(p);
            if (ty == NULL || strcmp(ty, "image") != 0)
                continue;
            if (n++)
                door_w_raw(&t->w, ",");
            if (write_image(t, p) < 0)
                return bad_msg(t, i, j, "an image needs source {type:\"base64\", media_type, "
                                        "data} or {type:\"url\", url}");
        }
    }
    door_w_raw(&t->w, "]}");
    return 0;
}

static bool is_type(const cJSON *b, const char *ty)
{
    const char *x = door_type_of(b);
    return x != NULL && strcmp(x, ty) == 0;
}

/* A user (or system) message: runs of text/image blocks become user
 * messages and runs of tool_result blocks tool messages, in block order. */
static int write_user(tx_t *t, const cJSON *m, const char *role, int i)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    int j = 0;
    if (cJSON_IsString(content)) {
        msg_begin(t, role);
        door_w_raw(&t->w, ",\"content\":");
        door_w_str(&t->w, content->valuestring);
        door_w_raw(&t->w, "}");
        return 0;
    }
    for (const cJSON *b = content->child; b != NULL; b = b->next, j++)
        if (check_block(t, b, i, j, "user") < 0)
            return -1;
    j = 0;
    for (const cJSON *b = content->child; b != NULL;) {
        bool tool = is_type(b, "tool_result");
        const cJSON *e = b;
        int je = j;
        while (e != NULL && is_type(e, "tool_result") == tool) {
            e = e->next;
            je++;
        }
        if (tool ? write_tool_results(t, b, e, i, j) < 0 : write_user_run(t, role, b, e, i, j) < 0)
            return -1;
        b = e;
        j = je;
    }
    return 0;
}

/* An assistant message: text blocks joined with '\n' into content,
 * tool_use blocks into tool_calls (input re-serialised as the arguments
 * string); thinking blocks are dropped (their signatures only mean
 * something to Anthropic). A message left empty is not written. */
static int write_assistant(tx_t *t, const cJSON *m, int i)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    buf_t text;
    int j = 0, n_text = 0, n_tools = 0;
    if (cJSON_IsString(content)) {
        msg_begin(t, "assistant");
        door_w_raw(&t->w, ",\"content\":");
        door_w_str(&t->w, content->valuestring);
        door_w_raw(&t->w, "}");
        return 0;
    }
    for (const cJSON *b = content->child; b != NULL; b = b->next, j++) {
        if (check_block(t, b, i, j, "assistant") < 0)
            return -1;
        if (is_type(b, "image"))
            return bad_msg(t, i, j, "image blocks belong in user messages");
        n_text += is_type(b, "text");
        n_tools += is_type(b, "tool_use");
    }
    if (n_text == 0 && n_tools == 0)
        return 0;
    msg_begin(t, "assistant");
    door_w_raw(&t->w, ",\"content\":");
    if (n_text == 0) {
        door_w_raw(&t->w, "null");
    } else {
        int k = 0;
        buf_init(&text, t->scratch_cap + 16);
        for (const cJSON *b = content->child; b != NULL; b = b->next) {
            if (!is_type(b, "text"))
                continue;
            if (k++)
                buf_puts(&text, "\n");
            buf_puts(&text, door_str_of(b, "text"));
        }
        door_w_strn(&t->w, buf_ptr(&text), buf_len(&text));
        buf_free(&text);
    }
    if (n_tools > 0) {
        int k = 0;
        door_w_raw(&t->w, ",\"tool_calls\":[");
        for (const cJSON *b = content->child; b != NULL; b = b->next) {
            const cJSON *input;
            if (!is_type(b, "tool_use"))
                continue;
            input = cJSON_GetObjectItemCaseSensitive(b, "input");
            door_w_raw(&t->w, k++ ? ",{\"id\":" : "{\"id\":");
            door_w_str(&t->w, door_str_of(b, "id"));
            door_w_raw(&t->w, ",\"type\":\"function\",\"function\":{\"name\":");
            door_w_str(&t->w, door_str_of(b, "name"));
            door_w_raw(&t->w, ",\"arguments\":");
            if (input == NULL) {
                door_w_raw(&t->w, "\"{}\"");
            } else {
                char *args = cJSON_PrintUnformatted(input);
                door_w_str(&t->w, args ? args : "{}");
                free(args);
            }
            door_w_raw(&t->w, "}}");
        }
        door_w_raw(&t->w, "]");
    }
    door_w_raw(&t->w, "}");
    return 0;
}

/* "system": a string, or text blocks (joined with '\n', as Anthropic's own
 * OpenAI compatibility layer does). */
static int write_system(tx_t *t, const cJSON *sys)
{
    buf_t text;
    const cJSON *b;
    int n = 0;
    if (sys == NULL || cJSON_IsNull(sys))
        return 0;
    if (cJSON_IsString(sys)) {
        if (sys->valuestring[0] == '\0')
            return 0;
        msg_begin(t, "system");
        door_w_raw(&t->w, ",\"content\":");
        door_w_str(&t->w, sys->valuestring);
        door_w_raw(&t->w, "}");
        return 0;
    }
    if (!cJSON_IsArray(sys))
        return door_fail(t->err, 400, "invalid_type", "system",
                         "system: must be a string or an array of text blocks.%s", NULL);
    cJSON_ArrayForEach(b, sys)
    {
        if (!is_type(b, "text") || door_str_of(b, "text") == NULL)
            return door_fail(t->err, 400, "invalid_value", "system",
                             "system: every block must be {\"type\":\"text\",\"text\":...}.%s",
                             NULL);
        note_cache_control(t, b);
    }
    if (sys->child == NULL)
        return 0;
    buf_init(&text, t->scratch_cap + 16);
    cJSON_ArrayForEach(b, sys)
    {
        if (n++)
            buf_puts(&text, "\n");
        buf_puts(&text, door_str_of(b, "text"));
    }
    msg_begin(t, "system");
    door_w_raw(&t->w, ",\"content\":");
    door_w_strn(&t->w, buf_ptr(&text), buf_len(&text));
    door_w_raw(&t->w, "}");
    buf_free(&text);
    return 0;
}

/* tools → function tools; returns how many were written, -1 on a 400.
 * Anthropic's server tools (a "type" other than "custom": web_search, bash,
 * text_editor, computer...) have no equivalent: skipped and named. */
static int write_tools(tx_t *t, const cJSON *tools)
{
    const cJSON *tool;
    int n = 0;
    if (tools == NULL || cJSON_IsNull(tools))
        return 0;
    if (!cJSON_IsArray(tools))
        return door_fail(t->err, 400, "invalid_type", "tools", "tools: must be an array.%s", NULL);
    cJSON_ArrayForEach(tool, tools)
    {
        const char *ty = door_type_of(tool), *name = door_str_of(tool, "name");
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(tool, "input_schema");
        const char *desc = door_str_of(tool, "description");
        if (!cJSON_IsObject(tool))
            return door_fail(t->err, 400, "invalid_value", "tools",
                             "tools: every tool must be an object.%s", NULL);
        if (ty != NULL && strcmp(ty, "custom") != 0) {
            note_unsupported(t, ty);
            continue;
        }
        if (name == NULL)
            return door_fail(t->err, 400, "invalid_value", "tools",
                             "tools: every tool needs a string 'name'.%s", NULL);
        if (schema != NULL && !cJSON_IsObject(schema))
            return door_fail(t->err, 400, "invalid_value", "tools",
                             "tools: the input_schema of '%.64s' must be an object.", name);
        note_cache_control(t, tool);
        door_w_raw(&t->w, n++ ? ",{" : ",\"tools\":[{");
        door_w_raw(&t->w, "\"type\":\"function\",\"function\":{\"name\":");
        door_w_str(&t->w, name);
        if (desc != NULL) {
            door_w_raw(&t->w, ",\"description\":");
            door_w_str(&t->w, desc);
        }
        door_w_raw(&t->w, ",\"parameters\":");
        if (schema != NULL)
            door_w_json(&t->w, schema);
        else
            door_w_raw(&t->w, "{\"type\":\"object\",\"properties\":{}}");
        door_w_raw(&t->w, "}}");
    }
    if (n > 0)
        door_w_raw(&t->w, "]");
    return n;
}

static int write_tool_choice(tx_t *t, const cJSON *tc)
{
    const char *ty;
    if (tc == NULL || cJSON_IsNull(tc))
        return 0;
    ty = door_type_of(tc);
    if (!cJSON_IsObject(tc) || ty == NULL)
        return door_fail(t->err, 400, "invalid_type", "tool_choice",
                         "tool_choice: must be an object with a 'type'.%s", NULL);
    if (strcmp(ty, "auto") == 0) {
        door_w_raw(&t->w, ",\"tool_choice\":\"auto\"");
    } else if (strcmp(ty, "any") == 0) {
        door_w_raw(&t->w, ",\"tool_choice\":\"required\"");
    } else if (strcmp(ty, "none") == 0) {
        door_w_raw(&t->w, ",\"tool_choice\":\"none\"");
    } else if (strcmp(ty, "tool") == 0) {
        if (door_str_of(tc, "name") == NULL)
            return door_fail(t->err, 400, "invalid_value", "tool_choice",
                             "tool_choice: {\"type\":\"tool\"} needs a string 'name'.%s", NULL);
        door_w_raw(&t->w, ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":");
        door_w_str(&t->w, door_str_of(tc, "name"));
        door_w_raw(&t->w, "}}");
    } else {
        return door_fail(t->err, 400, "invalid_value", "tool_choice",
                         "tool_choice: unknown type '%.64s' (auto, any, tool or none).", ty);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tc, "disable_parallel_tool_use")))
        door_w_raw(&t->w, ",\"parallel_tool_calls\":false");
    return 0;
}

/* thinking.budget_tokens → reasoning_effort. Claude Code asks 4 000 ("think"),
 * 10 000 ("think hard") and 31 999 ("ultrathink"); the cut points put those
 * in low, medium and high. */
static const char *effort_for_budget(double budget)
{
    if (budget < 8000)
        return "low";
    if (budget < 16000)
        return "medium";
    return "high";
}

static int write_number_field(tx_t *t, const cJSON *root, const char *from, const char *to)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, from);
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v))
        return door_fail(t->err, 400, "invalid_type", from, "%s: must be a number.", from);
    door_w_raw(&t->w, ",\"");
    door_w_raw(&t->w, to);
    door_w_raw(&t->w, "\":");
    door_w_num(&t->w, v->valuedouble);
    return 0;
}

int dm_request_to_chat(const char *body, size_t len, unsigned flags, buf_t *out, dm_info_t *info,
                       req_error_t *err)
{
    tx_t t = {.w = {out, 0}, .info = info, .err = err, .scratch_cap = len};
    json_tree_t *tree = NULL;
    const cJSON *root, *v, *msgs;
    size_t start = buf_len(out);
    int rc = -1, i = 0, n_tools;
    bool count = (flags & DM_COUNT_TOKENS) != 0;

    memset(info, 0, sizeof *info);
    info->max_tokens = -1;
    if (door_parse_body(body, len, &tree, err) < 0)
        return -1;
    root = json_tree_root(tree);
    v = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0') {
        door_fail(err, 400, v ? "invalid_type" : "missing_required_parameter", "model",
                  "model: a non-empty string is required.%s", NULL);
        goto out;
    }
    door_w_raw(&t.w, "{\"model\":");
    door_w_str(&t.w, v->valuestring);

    v = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
    if (v != NULL && (!cJSON_IsNumber(v) || v->valuedouble < 1 ||
                      v->valuedouble > 9007199254740992.0 || v->valuedouble != floor(v->valuedouble))) {
        door_fail(err, 400, "invalid_value", "max_tokens",
                  "max_tokens: must be an integer of at least 1.%s", NULL);
        goto out;
    }
    if (v == NULL && !count) {
        door_fail(err, 400, "missing_required_parameter", "max_tokens",
                  "max_tokens: Field required.%s", NULL);
        goto out;
    }
    if (v != NULL)
        info->max_tokens = (int64_t)v->valuedouble;

    msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!cJSON_IsArray(msgs) || msgs->child == NULL) {
        door_fail(err, 400, msgs ? "invalid_value" : "missing_required_parameter", "messages",
                  "messages: a non-empty array of messages is required.%s", NULL);
        goto out;
    }
    door_w_raw(&t.w, ",\"messages\":[");
    if (write_system(&t, cJSON_GetObjectItemCaseSensitive(root, "system")) < 0)
        goto out;
    for (const cJSON *m = msgs->child; m != NULL; m = m->next, i++) {
        const char *role = door_str_of(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        int r;
        if (!cJSON_IsObject(m) || role == NULL) {
            bad_msg(&t, i, -1, "each message must be an object with a string 'role'");
            goto out;
        }
        if (!cJSON_IsString(content) && !cJSON_IsArray(content)) {
            bad_msg(&t, i, -1, "content must be a string or an array of content blocks");
            goto out;
        }
        if (strcmp(role, "user") == 0 || strcmp(role, "system") == 0)
            r = write_user(&t, m, role, i);
        else if (strcmp(role, "assistant") == 0)
            r = write_assistant(&t, m, i);
        else
            r = bad_msg(&t, i, -1, "role must be 'user' or 'assistant'");
        if (r < 0)
            goto out;
    }
    door_w_raw(&t.w, "]");

    if (info->max_tokens > 0) {
        /* max_completion_tokens: the current name (o-series and later refuse
         * max_tokens); route/prompt.c reads either */
        door_w_raw(&t.w, ",\"max_completion_tokens\":");
        door_w_num(&t.w, (double)info->max_tokens);
    }
    if (write_number_field(&t, root, "temperature", "temperature") < 0 ||
        write_number_field(&t, root, "top_p", "top_p") < 0)
        goto out;
    v = cJSON_GetObjectItemCaseSensitive(root, "top_k");
    if (v != NULL && !cJSON_IsNull(v))
        info->dropped |= DM_DROP_TOP_K;
    v = cJSON_GetObjectItemCaseSensitive(root, "stop_sequences");
    if (v != NULL && !cJSON_IsNull(v)) {
        const cJSON *s;
        if (!cJSON_IsArray(v)) {
            door_fail(err, 400, "invalid_type", "stop_sequences",
                      "stop_sequences: must be an array of strings.%s", NULL);
            goto out;
        }
        cJSON_ArrayForEach(s, v) if (!cJSON_IsString(s))
        {
            door_fail(err, 400, "invalid_type", "stop_sequences",
                      "stop_sequences: must be an array of strings.%s", NULL);
            goto out;
        }
        if (v->child != NULL) {
            door_w_raw(&t.w, ",\"stop\":");
            door_w_json(&t.w, v);
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    if (door_str_of(v, "user_id") != NULL) {
        door_w_raw(&t.w, ",\"user\":");
        door_w_str(&t.w, door_str_of(v, "user_id"));
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "thinking");
    if (cJSON_IsObject(v) && door_type_of(v) && strcmp(door_type_of(v), "enabled") == 0) {
        const cJSON *bt = cJSON_GetObjectItemCaseSensitive(v, "budget_tokens");
        door_w_raw(&t.w, ",\"reasoning_effort\":");
        door_w_str(&t.w, effort_for_budget(cJSON_IsNumber(bt) ? bt->valuedouble : 0));
    }
    n_tools = write_tools(&t, cJSON_GetObjectItemCaseSensitive(root, "tools"));
    if (n_tools < 0)
        goto out;
    /* tool_choice and parallel_tool_calls without tools are 400s on OpenAI */
    if (n_tools > 0 && write_tool_choice(&t, cJSON_GetObjectItemCaseSensitive(root, "tool_choice")) < 0)
        goto out;
    v = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (v != NULL && !cJSON_IsBool(v) && !cJSON_IsNull(v)) {
        door_fail(err, 400, "invalid_type", "stream", "stream: must be a boolean.%s", NULL);
        goto out;
    }
    info->stream = cJSON_IsTrue(v) && !count;
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
        out->w = out->r + start; /* nothing half-written stays behind */
    json_tree_free(tree);
    return rc;
}

bool dm_can_pass_through(const dm_info_t *info)
{
    (void)info;
    return true;
}

int dm_check_translatable(const dm_info_t *info, req_error_t *err)
{
    if (!(info->dropped & DM_DROP_UNSUPPORTED))
        return 0;
    return door_fail(err, 400, "unsupported_value", NULL,
                     "'%.63s' has no equivalent outside Anthropic's API and the model chosen "
                     "is not an Anthropic one; remove it or route to an Anthropic model.",
                     info->unsupported);
}
