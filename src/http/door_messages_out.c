/* door_messages_out: the internal Chat Completions answer and chunk stream →
 * Anthropic's message and named events (see http/door_messages.h). */
#include "http/door_messages.h"

#include "http/door.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/json.h"
#include "core/util.h"
#include "route/textstat.h"

/* Tool-call indexes followed per stream; fragments of higher ones are
 * dropped (OpenAI streams a handful; a bounded map keeps the state small). */
#define DM_MAX_TOOLS 128

/* finish_reason → stop_reason. A stop caused by a stop sequence is
 * reported as end_turn: Chat Completions does not say which one matched. */
static const char *stop_reason_of(const char *fr)
{
    if (fr == NULL)
        return "end_turn";
    if (strcmp(fr, "length") == 0)
        return "max_tokens";
    if (strcmp(fr, "tool_calls") == 0 || strcmp(fr, "function_call") == 0)
        return "tool_use";
    if (strcmp(fr, "content_filter") == 0)
        return "refusal";
    return "end_turn";
}

static int64_t nonneg(int64_t v)
{
    return v < 0 ? 0 : v;
}

/* Anthropic's usage from the Chat one: input_tokens excludes the tokens
 * read from and written to the prompt cache (Anthropic reports them
 * apart; OpenAI counts them inside prompt_tokens). */
static void write_usage(door_w_t *w, const door_usage_t *u, int64_t est_in, int64_t est_out)
{
    int64_t cached = nonneg(u->cached), cw = nonneg(u->cache_write);
    int64_t in = u->prompt >= 0 ? u->prompt - cached - cw : est_in;
    door_w_raw(w, "{\"input_tokens\":");
    door_w_num(w, (double)nonneg(in));
    door_w_raw(w, ",\"cache_creation_input_tokens\":");
    door_w_num(w, (double)cw);
    door_w_raw(w, ",\"cache_read_input_tokens\":");
    door_w_num(w, (double)cached);
    door_w_raw(w, ",\"output_tokens\":");
    door_w_num(w, (double)(u->completion >= 0 ? u->completion : nonneg(est_out)));
    door_w_raw(w, "}");
}

/* A tool call's arguments as tool_use input: the JSON object they spell;
 * empty arguments are {}; anything else (a model that wrote broken JSON)
 * is kept, as a string, under "_raw_arguments" rather than lost. */
static void write_input(door_w_t *w, const char *args)
{
    cJSON *v;
    size_t i = 0;
    if (args == NULL)
        args = "";
    while (args[i] == ' ' || args[i] == '\n' || args[i] == '\t' || args[i] == '\r')
        i++;
    if (args[i] == '\0') {
        door_w_raw(w, "{}");
        return;
    }
    v = cJSON_Parse(args);
    if (cJSON_IsObject(v)) {
        door_w_json(w, v);
    } else {
        door_w_raw(w, "{\"_raw_arguments\":");
        door_w_str(w, args);
        door_w_raw(w, "}");
    }
    cJSON_Delete(v);
}

int dm_answer_from_chat(const char *chat, size_t len, const char *id, const char *model,
                        buf_t *out)
{
    door_json_t parsed;
    const cJSON *root = door_json_parse(&parsed, chat, len);
    const cJSON *choice, *msg, *tc;
    door_w_t w = {out, 0};
    door_usage_t u;
    size_t start = buf_len(out);
    const char *text, *reasoning, *fr;
    int n = 0, k = 0;
    char tid[160];

    choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
    msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
    if (!cJSON_IsObject(root) || cJSON_GetObjectItemCaseSensitive(root, "error") != NULL ||
        !cJSON_IsObject(msg)) {
        door_json_free(&parsed);
        return -1;
    }
    door_usage_init(&u);
    door_usage_read(&u, cJSON_GetObjectItemCaseSensitive(root, "usage"));
    if (door_str_of(root, "model") != NULL)
        model = door_str_of(root, "model");
    door_w_raw(&w, "{\"id\":\"msg_");
    {
        /* the id inside the literal: written escaped, quotes stripped */
        buf_t tmp;
        buf_init(&tmp, strlen(id) * 6 + 8);
        json_append_string(&tmp, id, strlen(id));
        door_w_rawn(&w, buf_ptr(&tmp) + 1, buf_len(&tmp) - 2);
        buf_free(&tmp);
    }
    door_w_raw(&w, "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    door_w_str(&w, model ? model : "");
    door_w_raw(&w, ",\"content\":[");
    reasoning = door_str_of(msg, "reasoning_content");
    if (reasoning == NULL)
        reasoning = door_str_of(msg, "reasoning"); /* vLLM, OpenRouter */
    if (reasoning != NULL && reasoning[0] != '\0') {
        /* no signature: the model that thought was not Anthropic's */
        door_w_raw(&w, "{\"type\":\"thinking\",\"thinking\":");
        door_w_str(&w, reasoning);
        door_w_raw(&w, ",\"signature\":\"\"}");
        n++;
    }
    text = door_str_of(msg, "content");
    if (text == NULL || text[0] == '\0')
        text = door_str_of(msg, "refusal");
    if (text != NULL && text[0] != '\0') {
        door_w_raw(&w, n++ ? ",{\"type\":\"text\",\"text\":" : "{\"type\":\"text\",\"text\":");
        door_w_str(&w, text);
        door_w_raw(&w, "}");
    }
    cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(msg, "tool_calls"))
    {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(tc, "function");
        const char *tcid = door_str_of(tc, "id");
        if (tcid == NULL || tcid[0] == '\0') {
            snprintf(tid, sizeof tid, "toolu_%.100s_%d", id, k);
            tcid = tid;
        }
        k++;
        door_w_raw(&w, n++ ? ",{\"type\":\"tool_use\",\"id\":" : "{\"type\":\"tool_use\",\"id\":");
        door_w_str(&w, tcid);
        door_w_raw(&w, ",\"name\":");
        door_w_str(&w, door_str_of(f, "name") ? door_str_of(f, "name") : "");
        door_w_raw(&w, ",\"input\":");
        write_input(&w, door_str_of(f, "arguments"));
        door_w_raw(&w, "}");
    }
    fr = door_str_of(choice, "finish_reason");
    /* a provider that ended with tool calls but said "stop" */
    door_w_raw(&w, "],\"stop_reason\":");
    door_w_str(&w, k > 0 && (fr == NULL || strcmp(fr, "stop") == 0) ? "tool_use" : stop_reason_of(fr));
    door_w_raw(&w, ",\"stop_sequence\":null,\"usage\":");
    write_usage(&w, &u, 0, 0);
    door_w_raw(&w, "}");
    door_json_free(&parsed);
    if (w.err) {
        out->w = out->r + start;
        return -2;
    }
    return 0;
}

/* ---- streams ---- */

enum blk { BLK_NONE = 0, BLK_TEXT, BLK_THINKING, BLK_TOOL };

struct dm_stream {
    char id[128], model[128];
    uint32_t est_in;
    bool started;     /* message_start sent */
    bool ended;       /* message_stop or an error sent: nothing more goes out */
    bool failed;      /* it ended with an error */
    bool finish_seen; /* a finish_reason arrived */
    const char *stop_reason; /* static */
    int next_block;   /* our block index counter */
    int open_block;   /* index of the open block, -1 none */
    enum blk open_kind;
    int open_tool;    /* tool index of an open tool block */
    int16_t tool_block[DM_MAX_TOOLS]; /* block index per tool index, -1 unseen */
    door_usage_t usage;
    uint64_t out_est; /* estimated output tokens over the deltas */
};

dm_stream_t *dm_stream_new(const char *id, const char *model, uint32_t est_input_tokens)
{
    dm_stream_t *s = xcalloc(1, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", id ? id : "");
    snprintf(s->model, sizeof s->model, "%s", model ? model : "");
    s->est_in = est_input_tokens;
    s->open_block = -1;
    s->stop_reason = "end_turn";
    for (int i = 0; i < DM_MAX_TOOLS; i++)
        s->tool_block[i] = -1;
    door_usage_init(&s->usage);
    return s;
}

void dm_stream_free(dm_stream_t *s)
{
    free(s);
}

uint32_t dm_stream_output_tokens(const dm_stream_t *s)
{
    if (s->usage.completion >= 0)
        return s->usage.completion > UINT32_MAX ? UINT32_MAX : (uint32_t)s->usage.completion;
    return s->out_est > UINT32_MAX ? UINT32_MAX : (uint32_t)s->out_est;
}

static void ev_begin(door_w_t *w, const char *name)
{
    door_w_raw(w, "event: ");
    door_w_raw(w, name);
    door_w_raw(w, "\ndata: {\"type\":\"");
    door_w_raw(w, name);
    door_w_raw(w, "\"");
}

static void ev_end(door_w_t *w)
{
    door_w_raw(w, "}\n\n");
}

static void message_start(dm_stream_t *s, door_w_t *w, const char *model)
{
    ev_begin(w, "message_start");
    door_w_raw(w, ",\"message\":{\"id\":\"msg_");
    {
        buf_t tmp;
        buf_init(&tmp, sizeof s->id * 6 + 8);
        json_append_string(&tmp, s->id, strlen(s->id));
        door_w_rawn(w, buf_ptr(&tmp) + 1, buf_len(&tmp) - 2);
        buf_free(&tmp);
    }
    door_w_raw(w, "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    door_w_str(w, model);
    door_w_raw(w, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,"
                  "\"usage\":{\"input_tokens\":");
    door_w_num(w, s->est_in);
    door_w_raw(w, ",\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,"
                  "\"output_tokens\":1}}");
    ev_end(w);
    s->started = true;
}

static void close_block(dm_stream_t *s, door_w_t *w)
{
    if (s->open_block < 0)
        return;
    ev_begin(w, "content_block_stop");
    door_w_raw(w, ",\"index\":");
    door_w_num(w, s->open_block);
    ev_end(w);
    s->open_block = -1;
    s->open_kind = BLK_NONE;
}

/* Opens a text or thinking block unless one of that kind is open. */
static void want_block(dm_stream_t *s, door_w_t *w, enum blk kind)
{
    if (s->open_block >= 0 && s->open_kind == kind)
        return;
    close_block(s, w);
    s->open_block = s->next_block++;
    s->open_kind = kind;
    ev_begin(w, "content_block_start");
    door_w_raw(w, ",\"index\":");
    door_w_num(w, s->open_block);
    door_w_raw(w, kind == BLK_TEXT ? ",\"content_block\":{\"type\":\"text\",\"text\":\"\"}"
                                   : ",\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\","
                                     "\"signature\":\"\"}");
    ev_end(w);
}

static void delta(dm_stream_t *s, door_w_t *w, int index, const char *type, const char *key,
                  const char *text)
{
    ts_stats_t st;
    size_t n = strlen(text);
    ev_begin(w, "content_block_delta");
    door_w_raw(w, ",\"index\":");
    door_w_num(w, index);
    door_w_raw(w, ",\"delta\":{\"type\":\"");
    door_w_raw(w, type);
    door_w_raw(w, "\",\"");
    door_w_raw(w, key);
    door_w_raw(w, "\":");
    door_w_strn(w, text, n);
    door_w_raw(w, "}");
    ev_end(w);
    ts_scan(text, n, &st);
    s->out_est += st.tokens;
}

static void tool_fragment(dm_stream_t *s, door_w_t *w, const cJSON *tc, int pos)
{
    const cJSON *ix = cJSON_GetObjectItemCaseSensitive(tc, "index");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(tc, "function");
    const char *args = door_str_of(f, "arguments");
    int64_t kk = cJSON_IsNumber(ix) ? util_index_i64(ix->valuedouble, -1) : pos;
    int k = kk >= 0 && kk < DM_MAX_TOOLS ? (int)kk : -1;
    int block;
    char tid[160];
    if (k < 0 || k >= DM_MAX_TOOLS)
        return;
    if (s->tool_block[k] < 0) {
        const char *tcid = door_str_of(tc, "id"), *name = door_str_of(f, "name");
        if (tcid == NULL || tcid[0] == '\0') {
            snprintf(tid, sizeof tid, "toolu_%.100s_%d", s->id, k);
            tcid = tid;
        }
        close_block(s, w);
        s->open_block = s->next_block++;
        s->open_kind = BLK_TOOL;
        s->open_tool = k;
        s->tool_block[k] = (int16_t)(s->open_block > INT16_MAX ? INT16_MAX : s->open_block);
        ev_begin(w, "content_block_start");
        door_w_raw(w, ",\"index\":");
        door_w_num(w, s->open_block);
        door_w_raw(w, ",\"content_block\":{\"type\":\"tool_use\",\"id\":");
        door_w_str(w, tcid);
        door_w_raw(w, ",\"name\":");
        door_w_str(w, name ? name : "");
        door_w_raw(w, ",\"input\":{}}");
        ev_end(w);
    }
    /* a fragment of a tool call whose block was closed (calls interleaved)
     * goes to that block's index: the SDKs accumulate by index */
    block = s->tool_block[k];
    if (args != NULL && args[0] != '\0')
        delta(s, w, block, "input_json_delta", "partial_json", args);
}

static const char *error_type_of(const cJSON *e)
{
    static const char *const kept[] = {"invalid_request_error", "authentication_error",
                                       "permission_error",      "not_found_error",
                                       "rate_limit_error",      "overloaded_error",
                                       "request_too_large",     "billing_error",
                                       "timeout_error",         "api_error"};
    const char *t = door_str_of(e, "type");
    for (size_t i = 0; t != NULL && i < UTIL_ARRAY_LEN(kept); i++)
        if (strcmp(t, kept[i]) == 0)
            return kept[i];
    return "api_error";
}

static void error_event(dm_stream_t *s, door_w_t *w, const char *type, const char *msg)
{
    ev_begin(w, "error");
    door_w_raw(w, ",\"error\":{\"type\":");
    door_w_str(w, type);
    door_w_raw(w, ",\"message\":");
    door_w_str(w, msg);
    door_w_raw(w, "}");
    ev_end(w);
    s->ended = s->failed = true;
}

static void close_message(dm_stream_t *s, door_w_t *w)
{
    if (!s->started)
        message_start(s, w, s->model);
    close_block(s, w);
    ev_begin(w, "message_delta");
    door_w_raw(w, ",\"delta\":{\"stop_reason\":");
    door_w_str(w, s->stop_reason);
    door_w_raw(w, ",\"stop_sequence\":null},\"usage\":");
    write_usage(w, &s->usage, s->est_in, (int64_t)s->out_est);
    ev_end(w);
    ev_begin(w, "message_stop");
    ev_end(w);
    s->ended = true;
}

static void on_chunk(dm_stream_t *s, door_w_t *w, const cJSON *root)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error"), *choice, *d, *tc;
    const char *t;
    int pos = 0;
    if (e != NULL && !cJSON_IsNull(e)) {
        const char *msg = cJSON_IsString(e) ? e->valuestring : door_str_of(e, "message");
        error_event(s, w, error_type_of(e), msg ? msg : "The upstream stream failed.");
        return;
    }
    if (!s->started)
        message_start(s, w, door_str_of(root, "model") ? door_str_of(root, "model") : s->model);
    door_usage_read(&s->usage, cJSON_GetObjectItemCaseSensitive(root, "usage"));
    /* one answer per request on this door: choice 0 (n is never asked) */
    choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
    d = cJSON_GetObjectItemCaseSensitive(choice, "delta");
    /* one chunk may carry reasoning, text and tool fragments together:
     * each is emitted, in that order */
    t = door_str_of(d, "reasoning_content");
    if (t == NULL)
        t = door_str_of(d, "reasoning");
    if (t != NULL && t[0] != '\0') {
        want_block(s, w, BLK_THINKING);
        delta(s, w, s->open_block, "thinking_delta", "thinking", t);
    }
    /* an Anthropic model's signature (antwire passes signature_delta on as
     * reasoning_signature): the client must send it back byte for byte */
    t = door_str_of(d, "reasoning_signature");
    if (t != NULL && t[0] != '\0') {
        want_block(s, w, BLK_THINKING);
        delta(s, w, s->open_block, "signature_delta", "signature", t);
    }
    t = door_str_of(d, "content");
    if (t == NULL || t[0] == '\0')
        t = door_str_of(d, "refusal");
    if (t != NULL && t[0] != '\0') {
        want_block(s, w, BLK_TEXT);
        delta(s, w, s->open_block, "text_delta", "text", t);
    }
    cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(d, "tool_calls"))
        tool_fragment(s, w, tc, pos++);
    t = door_str_of(choice, "finish_reason");
    if (t != NULL && t[0] != '\0') {
        s->finish_seen = true;
        s->stop_reason = stop_reason_of(t);
        /* a provider that ended with tool calls but said "stop" */
        if (strcmp(s->stop_reason, "end_turn") == 0) {
            for (int k = 0; k < DM_MAX_TOOLS; k++)
                if (s->tool_block[k] >= 0) {
                    s->stop_reason = "tool_use";
                    break;
                }
        }
    }
}

/* Runs fn on a copy of the state; commits state and output only if all of
 * it fitted in out. The state holds no pointers, so a copy is a snapshot. */
static int transact(dm_stream_t *s, buf_t *out, const cJSON *root, bool done, bool cut)
{
    dm_stream_t saved = *s;
    size_t w0 = out->w;
    door_w_t w = {out, 0};
    if (cut) {
        error_event(s, &w, "api_error",
                    "The upstream stream ended before the answer was complete.");
    } else if (done) {
        close_message(s, &w);
    } else {
        on_chunk(s, &w, root);
    }
    if (w.err) {
        *s = saved;
        out->w = w0;
        return DM_AGAIN;
    }
    return 0;
}

int dm_stream_feed(dm_stream_t *s, const char *data, size_t len, buf_t *out)
{
    cJSON *root;
    int rc;
    door_trim_data(&data, &len);
    if (s->ended)
        return 0;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0)
        return transact(s, out, NULL, true, false);
    root = cJSON_ParseWithLength(data, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return 0;
    }
    rc = transact(s, out, root, false, false);
    cJSON_Delete(root);
    return rc;
}

int dm_stream_finish(dm_stream_t *s, buf_t *out, bool *complete)
{
    int rc = 0;
    if (!s->ended)
        rc = transact(s, out, NULL, s->finish_seen, !s->finish_seen);
    *complete = rc == 0 && !s->failed;
    return rc;
}
