/* door_responses_out: the internal Chat Completions answer and chunk stream →
 * a Response object and the Responses event sequence (see
 * http/door_responses.h). */
#include "http/door_responses.h"

#include "http/door.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/json.h"
#include "core/util.h"

/* Tool-call indexes followed per stream (see door_messages_out.c). */
#define DR_MAX_TOOLS 128

/* Writes s escaped, without the surrounding quotes (for ids built from
 * parts inside one literal). */
static void w_inner(door_w_t *w, const char *s)
{
    buf_t tmp;
    buf_init(&tmp, strlen(s) * 6 + 8);
    json_append_string(&tmp, s, strlen(s));
    door_w_rawn(w, buf_ptr(&tmp) + 1, buf_len(&tmp) - 2);
    buf_free(&tmp);
}

/* An item id: "<prefix>_<request id>_<n>". */
static void w_item_id(door_w_t *w, const char *prefix, const char *id, int n)
{
    char num[16];
    snprintf(num, sizeof num, "_%d\"", n);
    door_w_raw(w, "\"");
    door_w_raw(w, prefix);
    door_w_raw(w, "_");
    w_inner(w, id);
    door_w_raw(w, num);
}

static int64_t nonneg(int64_t v)
{
    return v < 0 ? 0 : v;
}

static void write_usage(door_w_t *w, const door_usage_t *u)
{
    int64_t in = nonneg(u->prompt), out = nonneg(u->completion);
    door_w_raw(w, "{\"input_tokens\":");
    door_w_num(w, (double)in);
    door_w_raw(w, ",\"input_tokens_details\":{\"cached_tokens\":");
    door_w_num(w, (double)nonneg(u->cached));
    door_w_raw(w, "},\"output_tokens\":");
    door_w_num(w, (double)out);
    door_w_raw(w, ",\"output_tokens_details\":{\"reasoning_tokens\":");
    door_w_num(w, (double)nonneg(u->reasoning));
    door_w_raw(w, "},\"total_tokens\":");
    door_w_num(w, (double)(in + out));
    door_w_raw(w, "}");
}

/* The Response object. status "in_progress", "completed", "incomplete" or
 * "failed"; items is the raw JSON of the output items (comma-separated);
 * usage NULL for null. The settings echoed (tools, tool_choice, ...) are
 * neutral placeholders: the SDKs read output, status and usage. */
static void write_response(door_w_t *w, const char *id, int64_t created, const char *model,
                           const char *status, const char *incomplete, const char *err_code,
                           const char *err_msg, const char *items, size_t items_len,
                           const door_usage_t *usage)
{
    door_w_raw(w, "{\"id\":\"resp_");
    w_inner(w, id);
    door_w_raw(w, "\",\"object\":\"response\",\"created_at\":");
    door_w_num(w, (double)created);
    door_w_raw(w, ",\"status\":");
    door_w_str(w, status);
    door_w_raw(w, ",\"error\":");
    if (err_msg != NULL) {
        door_w_raw(w, "{\"code\":");
        door_w_str(w, err_code);
        door_w_raw(w, ",\"message\":");
        door_w_str(w, err_msg);
        door_w_raw(w, "}");
    } else {
        door_w_raw(w, "null");
    }
    door_w_raw(w, ",\"incomplete_details\":");
    if (incomplete != NULL) {
        door_w_raw(w, "{\"reason\":");
        door_w_str(w, incomplete);
        door_w_raw(w, "}");
    } else {
        door_w_raw(w, "null");
    }
    door_w_raw(w, ",\"instructions\":null,\"metadata\":{},\"model\":");
    door_w_str(w, model);
    door_w_raw(w, ",\"output\":[");
    door_w_rawn(w, items, items_len);
    door_w_raw(w, "],\"parallel_tool_calls\":true,\"temperature\":null,\"tool_choice\":\"auto\","
                  "\"tools\":[],\"top_p\":null,\"store\":false,\"usage\":");
    if (usage != NULL)
        write_usage(w, usage);
    else
        door_w_raw(w, "null");
    door_w_raw(w, "}");
}

/* finish_reason → (status, incomplete reason). */
static const char *status_of(const char *fr, const char **incomplete)
{
    *incomplete = NULL;
    if (fr != NULL && strcmp(fr, "length") == 0) {
        *incomplete = "max_output_tokens";
        return "incomplete";
    }
    if (fr != NULL && strcmp(fr, "content_filter") == 0) {
        *incomplete = "content_filter";
        return "incomplete";
    }
    return "completed";
}

static void w_reasoning_item(door_w_t *w, const char *id, int n, const char *text, size_t len)
{
    door_w_raw(w, "{\"type\":\"reasoning\",\"id\":");
    w_item_id(w, "rs", id, n);
    door_w_raw(w, ",\"summary\":[{\"type\":\"summary_text\",\"text\":");
    door_w_strn(w, text, len);
    door_w_raw(w, "}]}");
}

static void w_text_part(door_w_t *w, const char *text, size_t len)
{
    door_w_raw(w, "{\"type\":\"output_text\",\"text\":");
    door_w_strn(w, text, len);
    door_w_raw(w, ",\"annotations\":[]}");
}

static void w_message_item(door_w_t *w, const char *id, int n, const char *status,
                           const char *text, size_t len, bool with_part)
{
    door_w_raw(w, "{\"type\":\"message\",\"id\":");
    w_item_id(w, "msg", id, n);
    door_w_raw(w, ",\"status\":");
    door_w_str(w, status);
    door_w_raw(w, ",\"role\":\"assistant\",\"content\":[");
    if (with_part)
        w_text_part(w, text, len);
    door_w_raw(w, "]}");
}

static void w_call_item(door_w_t *w, const char *id, int n, const char *status,
                        const char *call_id, const char *name, const char *args, size_t args_len)
{
    door_w_raw(w, "{\"type\":\"function_call\",\"id\":");
    w_item_id(w, "fc", id, n);
    door_w_raw(w, ",\"call_id\":");
    door_w_str(w, call_id);
    door_w_raw(w, ",\"name\":");
    door_w_str(w, name);
    door_w_raw(w, ",\"arguments\":");
    door_w_strn(w, args, args_len);
    door_w_raw(w, ",\"status\":");
    door_w_str(w, status);
    door_w_raw(w, "}");
}

int dr_answer_from_chat(const char *chat, size_t len, const char *id, const char *model,
                        int64_t created_at, buf_t *out)
{
    door_json_t parsed;
    const cJSON *root = door_json_parse(&parsed, chat, len);
    const cJSON *choice, *msg, *tc;
    buf_t items;
    door_w_t w = {out, 0}, wi;
    door_usage_t u;
    size_t start = buf_len(out);
    const char *text, *reasoning, *status, *incomplete;
    int n = 0, rc = 0;
    char cid[160];

    choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
    msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
    if (!cJSON_IsObject(root) || cJSON_GetObjectItemCaseSensitive(root, "error") != NULL ||
        !cJSON_IsObject(msg)) {
        door_json_free(&parsed);
        return -1;
    }
    /* the items are written once, into the caller's cap */
    buf_init(&items, out->cap);
    wi = (door_w_t){&items, 0};
    door_usage_init(&u);
    door_usage_read(&u, cJSON_GetObjectItemCaseSensitive(root, "usage"));
    if (door_str_of(root, "model") != NULL)
        model = door_str_of(root, "model");
    reasoning = door_str_of(msg, "reasoning_content");
    if (reasoning == NULL)
        reasoning = door_str_of(msg, "reasoning");
    if (reasoning != NULL && reasoning[0] != '\0')
        w_reasoning_item(&wi, id, n++, reasoning, strlen(reasoning));
    text = door_str_of(msg, "content");
    if (text != NULL && text[0] != '\0') {
        if (n)
            door_w_raw(&wi, ",");
        w_message_item(&wi, id, n++, "completed", text, strlen(text), true);
    } else if (door_str_of(msg, "refusal") != NULL) {
        if (n)
            door_w_raw(&wi, ",");
        door_w_raw(&wi, "{\"type\":\"message\",\"id\":");
        w_item_id(&wi, "msg", id, n++);
        door_w_raw(&wi, ",\"status\":\"completed\",\"role\":\"assistant\",\"content\":[{\"type\":"
                        "\"refusal\",\"refusal\":");
        door_w_str(&wi, door_str_of(msg, "refusal"));
        door_w_raw(&wi, "}]}");
    }
    cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(msg, "tool_calls"))
    {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(tc, "function");
        const char *call_id = door_str_of(tc, "id"), *args = door_str_of(f, "arguments");
        if (call_id == NULL || call_id[0] == '\0') {
            snprintf(cid, sizeof cid, "call_%.100s_%d", id, n);
            call_id = cid;
        }
        if (args == NULL || args[0] == '\0')
            args = "{}";
        if (n)
            door_w_raw(&wi, ",");
        w_call_item(&wi, id, n++, "completed", call_id, door_str_of(f, "name") ? door_str_of(f, "name") : "",
                    args, strlen(args));
    }
    status = status_of(door_str_of(choice, "finish_reason"), &incomplete);
    write_response(&w, id, created_at, model ? model : "", status, incomplete, NULL, NULL,
                   buf_ptr(&items), buf_len(&items), &u);
    if (w.err || wi.err) {
        out->w = out->r + start;
        rc = -2;
    }
    buf_free(&items);
    door_json_free(&parsed);
    return rc;
}

/* ---- streams ---- */

enum item { IT_NONE = 0, IT_MESSAGE, IT_REASONING, IT_CALL };

struct dr_stream {
    char id[128], model[128];
    int64_t created;
    size_t max_held;
    uint64_t seq;        /* sequence_number of the next event */
    bool started, ended, failed, finish_seen;
    const char *finish;  /* finish_reason, static copy; NULL none */
    int next_output;     /* output_index counter */
    enum item open;      /* the item being streamed */
    int open_index;
    int open_tool;
    char call_id[128], name[128]; /* of the open function call */
    bool tool_seen[DR_MAX_TOOLS];
    buf_t cur;           /* [cur_start..) text / arguments of the open item (raw) */
    size_t cur_start;    /* cur is compacted between steps, never within one
                            (so that a step can be undone, see transact) */
    buf_t items;         /* finished items, JSON, comma-separated */
    door_usage_t usage;
};

dr_stream_t *dr_stream_new(const char *id, const char *model, int64_t created_at,
                           size_t max_held)
{
    dr_stream_t *s = xcalloc(1, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", id ? id : "");
    snprintf(s->model, sizeof s->model, "%s", model ? model : "");
    s->created = created_at;
    s->max_held = max_held;
    buf_init(&s->cur, max_held * 2 + 16);
    buf_init(&s->items, max_held);
    door_usage_init(&s->usage);
    return s;
}

void dr_stream_free(dr_stream_t *s)
{
    if (s == NULL)
        return;
    buf_free(&s->cur);
    buf_free(&s->items);
    free(s);
}

/* One step's output and its failure to keep what response.completed must
 * repeat (too_big: the held bytes passed max_held; turned into
 * response.failed). */
typedef struct ctx {
    door_w_t w;      /* the output */
    dr_stream_t *s;
    bool too_big;
} ctx_t;

static void ev_begin(ctx_t *c, const char *name)
{
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)c->s->seq++);
    door_w_raw(&c->w, "event: ");
    door_w_raw(&c->w, name);
    door_w_raw(&c->w, "\ndata: {\"type\":\"");
    door_w_raw(&c->w, name);
    door_w_raw(&c->w, "\",\"sequence_number\":");
    door_w_raw(&c->w, num);
}

static void ev_end(ctx_t *c)
{
    door_w_raw(&c->w, "}\n\n");
}

static void start(ctx_t *c, const char *model)
{
    dr_stream_t *s = c->s;
    if (model != NULL && model[0] != '\0')
        snprintf(s->model, sizeof s->model, "%s", model);
    ev_begin(c, "response.created");
    door_w_raw(&c->w, ",\"response\":");
    write_response(&c->w, s->id, s->created, s->model, "in_progress", NULL, NULL, NULL, "", 0, NULL);
    ev_end(c);
    ev_begin(c, "response.in_progress");
    door_w_raw(&c->w, ",\"response\":");
    write_response(&c->w, s->id, s->created, s->model, "in_progress", NULL, NULL, NULL, "", 0, NULL);
    ev_end(c);
    s->started = true;
}

static void item_ref(ctx_t *c, const char *prefix)
{
    door_w_raw(&c->w, ",\"item_id\":");
    w_item_id(&c->w, prefix, c->s->id, c->s->open_index);
    door_w_raw(&c->w, ",\"output_index\":");
    door_w_num(&c->w, c->s->open_index);
}

static void close_item(ctx_t *c)
{
    dr_stream_t *s = c->s;
    const char *t = buf_ptr(&s->cur) + s->cur_start;
    size_t n = buf_len(&s->cur) - s->cur_start, mark = s->items.w;
    door_w_t wi = {&s->items, 0};
    if (s->open == IT_NONE)
        return;
    if (buf_len(&s->items) > 0)
        door_w_raw(&wi, ",");
    if (s->open == IT_MESSAGE) {
        ev_begin(c, "response.output_text.done");
        item_ref(c, "msg");
        door_w_raw(&c->w, ",\"content_index\":0,\"text\":");
        door_w_strn(&c->w, t, n);
        door_w_raw(&c->w, ",\"logprobs\":[]");
        ev_end(c);
        ev_begin(c, "response.content_part.done");
        item_ref(c, "msg");
        door_w_raw(&c->w, ",\"content_index\":0,\"part\":");
        w_text_part(&c->w, t, n);
        ev_end(c);
        w_message_item(&wi, s->id, s->open_index, "completed", t, n, true);
    } else if (s->open == IT_REASONING) {
        ev_begin(c, "response.reasoning_summary_text.done");
        item_ref(c, "rs");
        door_w_raw(&c->w, ",\"summary_index\":0,\"text\":");
        door_w_strn(&c->w, t, n);
        ev_end(c);
        ev_begin(c, "response.reasoning_summary_part.done");
        item_ref(c, "rs");
        door_w_raw(&c->w, ",\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":");
        door_w_strn(&c->w, t, n);
        door_w_raw(&c->w, "}");
        ev_end(c);
        w_reasoning_item(&wi, s->id, s->open_index, t, n);
    } else {
        if (n == 0) {
            /* a call without arguments: "{}", never an empty string */
            t = "{}";
            n = 2;
        }
        ev_begin(c, "response.function_call_arguments.done");
        item_ref(c, "fc");
        door_w_raw(&c->w, ",\"name\":");
        door_w_str(&c->w, s->name);
        door_w_raw(&c->w, ",\"arguments\":");
        door_w_strn(&c->w, t, n);
        ev_end(c);
        w_call_item(&wi, s->id, s->open_index, "completed", s->call_id, s->name, t, n);
    }
    if (wi.err) {
        s->items.w = mark; /* never half an item in the list */
        c->too_big = true;
    }
    ev_begin(c, "response.output_item.done");
    door_w_raw(&c->w, ",\"output_index\":");
    door_w_num(&c->w, s->open_index);
    door_w_raw(&c->w, ",\"item\":");
    if (s->open == IT_MESSAGE)
        w_message_item(&c->w, s->id, s->open_index, "completed", t, n, true);
    else if (s->open == IT_REASONING)
        w_reasoning_item(&c->w, s->id, s->open_index, t, n);
    else
        w_call_item(&c->w, s->id, s->open_index, "completed", s->call_id, s->name, t, n);
    ev_end(c);
    s->cur_start = buf_len(&s->cur);
    s->open = IT_NONE;
}

static void open_item(ctx_t *c, enum item kind, const char *call_id, const char *name)
{
    dr_stream_t *s = c->s;
    close_item(c);
    s->open = kind;
    s->open_index = s->next_output++;
    ev_begin(c, "response.output_item.added");
    door_w_raw(&c->w, ",\"output_index\":");
    door_w_num(&c->w, s->open_index);
    door_w_raw(&c->w, ",\"item\":");
    if (kind == IT_MESSAGE) {
        w_message_item(&c->w, s->id, s->open_index, "in_progress", "", 0, false);
        ev_end(c);
        ev_begin(c, "response.content_part.added");
        item_ref(c, "msg");
        door_w_raw(&c->w, ",\"content_index\":0,\"part\":");
        w_text_part(&c->w, "", 0);
    } else if (kind == IT_REASONING) {
        door_w_raw(&c->w, "{\"type\":\"reasoning\",\"id\":");
        w_item_id(&c->w, "rs", s->id, s->open_index);
        door_w_raw(&c->w, ",\"summary\":[]}");
        ev_end(c);
        ev_begin(c, "response.reasoning_summary_part.added");
        item_ref(c, "rs");
        door_w_raw(&c->w, ",\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":\"\"}");
    } else {
        snprintf(s->call_id, sizeof s->call_id, "%s", call_id);
        snprintf(s->name, sizeof s->name, "%s", name);
        w_call_item(&c->w, s->id, s->open_index, "in_progress", s->call_id, s->name, "", 0);
    }
    ev_end(c);
}

/* Appends a delta to the open item's held text. */
static void hold(ctx_t *c, const char *t, size_t n)
{
    size_t open_len = buf_len(&c->s->cur) - c->s->cur_start;
    if (open_len + buf_len(&c->s->items) + n > c->s->max_held ||
        buf_append(&c->s->cur, t, n) < 0)
        c->too_big = true;
}

static void text_delta(ctx_t *c, enum item kind, const char *t)
{
    dr_stream_t *s = c->s;
    size_t n = strlen(t);
    if (s->open != kind)
        open_item(c, kind, NULL, NULL);
    if (kind == IT_MESSAGE) {
        ev_begin(c, "response.output_text.delta");
        item_ref(c, "msg");
        door_w_raw(&c->w, ",\"content_index\":0,\"delta\":");
        door_w_strn(&c->w, t, n);
        door_w_raw(&c->w, ",\"logprobs\":[]");
    } else {
        ev_begin(c, "response.reasoning_summary_text.delta");
        item_ref(c, "rs");
        door_w_raw(&c->w, ",\"summary_index\":0,\"delta\":");
        door_w_strn(&c->w, t, n);
    }
    ev_end(c);
    hold(c, t, n);
}

static void tool_fragment(ctx_t *c, const cJSON *tc, int pos)
{
    dr_stream_t *s = c->s;
    const cJSON *ix = cJSON_GetObjectItemCaseSensitive(tc, "index");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(tc, "function");
    const char *args = door_str_of(f, "arguments");
    int64_t kk = cJSON_IsNumber(ix) ? util_index_i64(ix->valuedouble, -1) : pos;
    int k = kk >= 0 && kk < DR_MAX_TOOLS ? (int)kk : -1;
    char cid[160];
    if (k < 0 || k >= DR_MAX_TOOLS)
        return;
    if (!s->tool_seen[k]) {
        const char *call_id = door_str_of(tc, "id"), *name = door_str_of(f, "name");
        if (call_id == NULL || call_id[0] == '\0') {
            snprintf(cid, sizeof cid, "call_%.100s_%d", s->id, k);
            call_id = cid;
        }
        s->tool_seen[k] = true;
        open_item(c, IT_CALL, call_id, name ? name : "");
        s->open_tool = k;
    } else if (s->open != IT_CALL || s->open_tool != k) {
        /* a late fragment of a call already closed (calls interleaved):
         * its item is done and cannot grow; OpenAI streams calls one after
         * another, so this is dropped */
        return;
    }
    if (args == NULL || args[0] == '\0')
        return;
    ev_begin(c, "response.function_call_arguments.delta");
    item_ref(c, "fc");
    door_w_raw(&c->w, ",\"delta\":");
    door_w_str(&c->w, args);
    ev_end(c);
    hold(c, args, strlen(args));
}

static void fail(ctx_t *c, const char *code, const char *msg)
{
    dr_stream_t *s = c->s;
    if (!s->started)
        start(c, NULL);
    ev_begin(c, "response.failed");
    door_w_raw(&c->w, ",\"response\":");
    write_response(&c->w, s->id, s->created, s->model, "failed", NULL, code, msg,
                   buf_ptr(&s->items), buf_len(&s->items), &s->usage);
    ev_end(c);
    ev_begin(c, "error");
    door_w_raw(&c->w, ",\"code\":");
    door_w_str(&c->w, code);
    door_w_raw(&c->w, ",\"message\":");
    door_w_str(&c->w, msg);
    door_w_raw(&c->w, ",\"param\":null");
    ev_end(c);
    s->ended = s->failed = true;
}

static void complete(ctx_t *c)
{
    dr_stream_t *s = c->s;
    const char *incomplete, *status;
    if (!s->started)
        start(c, NULL);
    close_item(c);
    if (c->too_big)
        return;
    status = status_of(s->finish, &incomplete);
    ev_begin(c, incomplete ? "response.incomplete" : "response.completed");
    door_w_raw(&c->w, ",\"response\":");
    write_response(&c->w, s->id, s->created, s->model, status, incomplete, NULL, NULL,
                   buf_ptr(&s->items), buf_len(&s->items), &s->usage);
    ev_end(c);
    s->ended = true;
}

static void on_chunk(ctx_t *c, const cJSON *root)
{
    dr_stream_t *s = c->s;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error"), *choice, *d, *tc;
    const char *t;
    int pos = 0;
    if (e != NULL && !cJSON_IsNull(e)) {
        const char *msg = cJSON_IsString(e) ? e->valuestring : door_str_of(e, "message");
        const char *code = door_str_of(e, "code");
        fail(c, code ? code : "server_error", msg ? msg : "The upstream stream failed.");
        return;
    }
    if (!s->started)
        start(c, door_str_of(root, "model"));
    door_usage_read(&s->usage, cJSON_GetObjectItemCaseSensitive(root, "usage"));
    choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
    d = cJSON_GetObjectItemCaseSensitive(choice, "delta");
    t = door_str_of(d, "reasoning_content");
    if (t == NULL)
        t = door_str_of(d, "reasoning");
    if (t != NULL && t[0] != '\0')
        text_delta(c, IT_REASONING, t);
    t = door_str_of(d, "content");
    if (t == NULL || t[0] == '\0')
        t = door_str_of(d, "refusal");
    if (t != NULL && t[0] != '\0')
        text_delta(c, IT_MESSAGE, t);
    cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(d, "tool_calls"))
        tool_fragment(c, tc, pos++);
    t = door_str_of(choice, "finish_reason");
    if (t != NULL && t[0] != '\0') {
        static const char *const known[] = {"stop", "length", "tool_calls", "content_filter",
                                            "function_call"};
        s->finish_seen = true;
        s->finish = "stop";
        for (size_t i = 0; i < UTIL_ARRAY_LEN(known); i++)
            if (strcmp(t, known[i]) == 0)
                s->finish = known[i];
    }
}

enum op { OP_CHUNK, OP_DONE, OP_CUT };

/* Runs one step on the state; if the output did not fit, puts the state
 * back as it was (the held buffers only grow, so restoring their lengths
 * restores their content) and reports DR_AGAIN. */
static int transact(dr_stream_t *s, buf_t *out, const cJSON *root, enum op op)
{
    dr_stream_t saved;
    size_t w0 = out->w;
    ctx_t c = {{out, 0}, s, false};
    if (s->cur_start > 0) {
        size_t n = buf_len(&s->cur) - s->cur_start;
        memmove(s->cur.data, s->cur.data + s->cur_start, n);
        s->cur.w = n;
        s->cur_start = 0;
    }
    saved = *s;
    if (op == OP_CUT)
        fail(&c, "server_error", "The upstream stream ended before the answer was complete.");
    else if (op == OP_DONE)
        complete(&c);
    else
        on_chunk(&c, root);
    if (c.too_big && !c.w.err && !s->ended) {
        /* what response.completed must repeat outgrew max_held: the
         * events of this step are replaced by the failure */
        out->w = w0;
        c.w.err = 0;
        s->seq = saved.seq;
        fail(&c, "response_too_large",
             "The answer is larger than the router keeps to assemble a Response.");
    }
    if (c.w.err) {
        buf_t cur = s->cur, items = s->items;
        *s = saved;
        s->cur.data = cur.data;
        s->cur.alloc = cur.alloc;
        s->items.data = items.data;
        s->items.alloc = items.alloc;
        out->w = w0;
        return DR_AGAIN;
    }
    return 0;
}

int dr_stream_feed(dr_stream_t *s, const char *data, size_t len, buf_t *out)
{
    cJSON *root;
    int rc;
    door_trim_data(&data, &len);
    if (s->ended)
        return 0;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0)
        return transact(s, out, NULL, OP_DONE);
    root = cJSON_ParseWithLength(data, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return 0;
    }
    rc = transact(s, out, root, OP_CHUNK);
    cJSON_Delete(root);
    return rc;
}

int dr_stream_finish(dr_stream_t *s, buf_t *out, bool *complete_out)
{
    int rc = 0;
    if (!s->ended)
        rc = transact(s, out, NULL, s->finish_seen ? OP_DONE : OP_CUT);
    *complete_out = rc == 0 && !s->failed;
    return rc;
}
