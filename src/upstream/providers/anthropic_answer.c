/* providers/anthropic_answer: Anthropic Messages answers, streams and
 * errors -> OpenAI Chat Completions answers, chunks and errors (the request
 * direction is in anthropic.c). */
#include "upstream/anthropic.h"

#include <stdio.h>
#include <string.h>

#include "anthropic_wr.h"
#include "core/json_tree.h"
#include "core/util.h"
#include "http/apierror.h"
#include "upstream/sse.h"

/* ---- usage and cost --------------------------------------------------- */

static int64_t known(int64_t v)
{
    return v > 0 ? v : 0;
}

int64_t anthropic_prompt_tokens(const anthropic_usage_t *u)
{
    if (u->input_tokens < 0)
        return -1;
    return u->input_tokens + known(u->cache_read_tokens) + known(u->cache_write_tokens);
}

double anthropic_cost(const anthropic_usage_t *u, double input_per_mtok, double output_per_mtok,
                      double cached_input_per_mtok, double cache_write_per_mtok)
{
    return ((double)known(u->input_tokens) * input_per_mtok +
            (double)known(u->output_tokens) * output_per_mtok +
            (double)known(u->cache_read_tokens) * cached_input_per_mtok +
            (double)known(u->cache_write_tokens) * cache_write_per_mtok) /
           1e6;
}

/* Overwrites the counts u has from an Anthropic usage object: message_delta
 * repeats them cumulatively, so the latest value is the total. */
static void read_usage(const cJSON *o, anthropic_usage_t *u)
{
    static const char *const keys[] = {"input_tokens", "output_tokens",
                                       "cache_read_input_tokens",
                                       "cache_creation_input_tokens"};
    int64_t *dst[] = {&u->input_tokens, &u->output_tokens, &u->cache_read_tokens,
                      &u->cache_write_tokens};
    for (int i = 0; i < 4; i++) {
        const cJSON *v = aj(o, keys[i]);
        if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9e15)
            *dst[i] = (int64_t)v->valuedouble;
    }
}

static void usage_unknown(anthropic_usage_t *u)
{
    u->input_tokens = u->output_tokens = u->cache_read_tokens = u->cache_write_tokens = -1;
}

/* OpenAI's usage object; cache_write_tokens is the spec's name for
 * prompt_tokens_details' cache-creation count. */
static void write_usage(awr_t *w, const anthropic_usage_t *u)
{
    int64_t p = anthropic_prompt_tokens(u), o = known(u->output_tokens);
    if (p < 0)
        p = 0;
    awr_lit(w, "{\"prompt_tokens\":");
    awr_num(w, (double)p);
    awr_lit(w, ",\"completion_tokens\":");
    awr_num(w, (double)o);
    awr_lit(w, ",\"total_tokens\":");
    awr_num(w, (double)(p + o));
    awr_lit(w, ",\"prompt_tokens_details\":{\"cached_tokens\":");
    awr_num(w, (double)known(u->cache_read_tokens));
    awr_lit(w, ",\"cache_write_tokens\":");
    awr_num(w, (double)known(u->cache_write_tokens));
    awr_lit(w, "}}");
}

const char *anthropic_finish_reason(const char *stop_reason)
{
    if (stop_reason == NULL)
        return "stop";
    if (strcmp(stop_reason, "max_tokens") == 0 ||
        strcmp(stop_reason, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp(stop_reason, "tool_use") == 0)
        return "tool_calls";
    if (strcmp(stop_reason, "refusal") == 0)
        return "content_filter";
    /* end_turn, stop_sequence, pause_turn (a server tool's turn paused: the
     * answer so far is all there is) and future values */
    return "stop";
}

/* ---- errors ----------------------------------------------------------- */

static const struct {
    const char *anthropic, *openai;
    int status;
} ERRORS[] = {
    {"invalid_request_error", "invalid_request_error", 400},
    {"authentication_error", "authentication_error", 401},
    {"billing_error", "insufficient_quota", 402},
    {"permission_error", "permission_error", 403},
    {"not_found_error", "invalid_request_error", 404},
    {"request_too_large", "invalid_request_error", 413},
    {"rate_limit_error", "rate_limit_error", 429},
    {"api_error", "server_error", 500},
    {"timeout_error", "server_error", 504},
    {"overloaded_error", "server_error", 529},
};

/* The daemon's own rule (upstream.c): the provider's key (401, 403), time
 * outs, rate limits and server faults, 529 overloaded_error included. */
static bool status_fails_over(int status)
{
    return status == 401 || status == 403 || status == 408 || status == 429 || status >= 500;
}

/* Fills *info for Anthropic error type `type` (may be NULL) seen with HTTP
 * status (0 inside a stream: the type decides). */
static void classify(const char *type, int status, anthropic_error_info_t *info)
{
    info->type = NULL;
    info->code = "upstream_error";
    for (size_t i = 0; type != NULL && i < sizeof ERRORS / sizeof *ERRORS; i++) {
        if (strcmp(type, ERRORS[i].anthropic) == 0) {
            info->type = ERRORS[i].openai;
            info->code = ERRORS[i].anthropic;
            if (status == 0)
                status = ERRORS[i].status;
        }
    }
    if (status == 0)
        status = 500; /* an unknown error inside a stream: the provider's fault */
    if (info->type == NULL)
        info->type = apierror_type_for_status((unsigned)status);
    info->fails_over = status_fails_over(status);
}

/* {"error":{"message","type","param":null,"code"}} from an Anthropic error
 * object (may be NULL); the message falls back to the status. */
static void write_error(awr_t *w, const cJSON *error, int status, anthropic_error_info_t *info)
{
    const char *msg = ajs(error, "message");
    char fallback[64];
    classify(ajs(error, "type"), status, info);
    if (msg == NULL) {
        snprintf(fallback, sizeof fallback, "the Anthropic upstream answered HTTP %d", status);
        msg = fallback;
    }
    awr_lit(w, "{\"error\":{\"message\":");
    awr_str(w, msg);
    awr_lit(w, ",\"type\":");
    awr_str(w, info->type);
    awr_lit(w, ",\"param\":null,\"code\":");
    awr_str(w, info->code);
    awr_lit(w, "}}");
}

int anthropic_error_to_openai(int status, const char *body, size_t len, buf_t *out,
                              anthropic_error_info_t *info)
{
    anthropic_error_info_t tmp;
    cJSON *root = len > 0 ? cJSON_ParseWithLength(body, len) : NULL;
    awr_t w;
    awr_begin(&w, out);
    write_error(&w, aj(root, "error"), status > 0 ? status : 500, info ? info : &tmp);
    cJSON_Delete(root);
    return awr_end(&w);
}

/* ---- complete answers ------------------------------------------------- */

/* Appends block text `k` of every block of `type` to the string literal
 * being written (its quotes written by the caller). */
static void join_texts(awr_t *w, const cJSON *content, const char *type, const char *k)
{
    const cJSON *b;
    cJSON_ArrayForEach(b, content)
    {
        const char *t = ajs(b, k);
        size_t r0;
        if (t == NULL || strcmp(ajs(b, "type") ? ajs(b, "type") : "", type) != 0)
            continue;
        /* json_append_string quotes; write it and drop the two quotes */
        r0 = buf_len(w->b);
        awr_str(w, t);
        if (w->rc == ANTHROPIC_OK) {
            char *p = w->b->data + w->b->r + r0;
            size_t n = buf_len(w->b) - r0;
            memmove(p, p + 1, n - 2);
            w->b->w -= 2;
        }
    }
}

static bool has_block(const cJSON *content, const char *type, const char *skip_name)
{
    const cJSON *b;
    cJSON_ArrayForEach(b, content)
    {
        const char *t = ajs(b, "type"), *name = ajs(b, "name");
        if (t != NULL && strcmp(t, type) == 0 &&
            !(skip_name != NULL && name != NULL && strcmp(name, skip_name) == 0))
            return true;
    }
    return false;
}

int anthropic_answer_to_chat(const char *body, size_t len, const anthropic_req_info_t *info,
                             int64_t created, buf_t *out, anthropic_usage_t *usage, char *why,
                             size_t whylen)
{
    json_tree_t *tree;
    cJSON *root = json_tree_read(body, len, &tree); /* read only */
    const cJSON *content = aj(root, "content"), *b, *json_block = NULL;
    const char *type = ajs(root, "type"), *id = ajs(root, "id"), *model = ajs(root, "model");
    const char *jt = info != NULL && info->json_tool[0] ? info->json_tool : NULL;
    const char *finish;
    anthropic_usage_t u;
    bool tools, thinking;
    int n = 0;
    awr_t w;

    awr_begin(&w, out);
    usage_unknown(&u);
    if (!cJSON_IsObject(root) || (type != NULL && strcmp(type, "message") != 0) ||
        !cJSON_IsArray(content)) {
        if (why != NULL)
            snprintf(why, whylen, "%s", !cJSON_IsObject(root) ? "not a JSON object" :
                                        type != NULL && strcmp(type, "error") == 0
                                            ? "an error object"
                                            : "not a Messages answer (no content array)");
        json_tree_drop(root, tree);
        return ANTHROPIC_EINVAL;
    }
    read_usage(aj(root, "usage"), &u);
    if (jt != NULL) {
        cJSON_ArrayForEach(b, content)
        {
            if (strcmp(ajs(b, "type") ? ajs(b, "type") : "", "tool_use") == 0 &&
                strcmp(ajs(b, "name") ? ajs(b, "name") : "", jt) == 0 && json_block == NULL)
                json_block = b;
        }
    }
    tools = has_block(content, "tool_use", jt);
    thinking = has_block(content, "thinking", NULL) || has_block(content, "redacted_thinking", NULL);
    finish = anthropic_finish_reason(ajs(root, "stop_reason"));
    /* the emulated response_format's tool call is the answer, not a call */
    if (json_block != NULL && !tools && strcmp(finish, "tool_calls") == 0)
        finish = "stop";

    awr_lit(&w, "{\"id\":");
    awr_str(&w, id ? id : "msg_unknown");
    awr_lit(&w, ",\"object\":\"chat.completion\",\"created\":");
    awr_num(&w, (double)created);
    awr_lit(&w, ",\"model\":");
    awr_str(&w, model ? model : "");
    awr_lit(&w, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    if (json_block != NULL) {
        const cJSON *in = aj(json_block, "input");
        char *s = cJSON_IsObject(in) ? cJSON_PrintUnformatted(in) : NULL;
        awr_str(&w, s ? s : "{}");
        free(s);
    } else if (has_block(content, "text", NULL)) {
        awr_lit(&w, "\"");
        join_texts(&w, content, "text", "text");
        awr_lit(&w, "\"");
    } else {
        awr_lit(&w, "null");
    }
    awr_lit(&w, ",\"refusal\":null");
    if (thinking) {
        awr_lit(&w, ",\"reasoning_content\":\"");
        join_texts(&w, content, "thinking", "thinking");
        awr_lit(&w, "\",\"thinking_blocks\":[");
        cJSON_ArrayForEach(b, content)
        {
            const char *t = ajs(b, "type") ? ajs(b, "type") : "";
            if (strcmp(t, "thinking") == 0) {
                awr_lit(&w, n++ ? ",{\"type\":\"thinking\",\"thinking\":" :
                                  "{\"type\":\"thinking\",\"thinking\":");
                awr_str(&w, ajs(b, "thinking") ? ajs(b, "thinking") : "");
                awr_lit(&w, ",\"signature\":");
                awr_str(&w, ajs(b, "signature") ? ajs(b, "signature") : "");
                awr_lit(&w, "}");
            } else if (strcmp(t, "redacted_thinking") == 0) {
                awr_lit(&w, n++ ? ",{\"type\":\"redacted_thinking\",\"data\":" :
                                  "{\"type\":\"redacted_thinking\",\"data\":");
                awr_str(&w, ajs(b, "data") ? ajs(b, "data") : "");
                awr_lit(&w, "}");
            }
        }
        awr_lit(&w, "]");
    }
    if (tools) {
        n = 0;
        awr_lit(&w, ",\"tool_calls\":[");
        cJSON_ArrayForEach(b, content)
        {
            const cJSON *in = aj(b, "input");
            char *args;
            if (strcmp(ajs(b, "type") ? ajs(b, "type") : "", "tool_use") != 0 || b == json_block)
                continue;
            args = cJSON_IsObject(in) ? cJSON_PrintUnformatted(in) : NULL;
            awr_lit(&w, n++ ? ",{\"id\":" : "{\"id\":");
            awr_str(&w, ajs(b, "id") ? ajs(b, "id") : "");
            awr_lit(&w, ",\"type\":\"function\",\"function\":{\"name\":");
            awr_str(&w, ajs(b, "name") ? ajs(b, "name") : "");
            awr_lit(&w, ",\"arguments\":");
            awr_str(&w, args ? args : "{}");
            awr_lit(&w, "}}");
            free(args);
        }
        awr_lit(&w, "]");
    }
    awr_lit(&w, "},\"logprobs\":null,\"finish_reason\":");
    awr_str(&w, finish);
    awr_lit(&w, "}]");
    if (u.input_tokens >= 0) {
        awr_lit(&w, ",\"usage\":");
        write_usage(&w, &u);
    }
    awr_lit(&w, "}");
    json_tree_drop(root, tree);
    if (usage != NULL)
        *usage = u;
    return awr_end(&w);
}

/* ---- streams ---------------------------------------------------------- */

enum { B_NONE, B_TEXT, B_THINK, B_TOOL, B_JSON, B_OTHER };

/* Fixed size: the chunk prefix is built once at message_start, so a token
 * costs one escape of its own text and nothing else. */
struct anthropic_stream {
    anthropic_req_info_t info;
    int64_t created;
    char prefix[1024]; /* data: {"id":..,"object":..,"created":..,"model":..,"choices":[ */
    anthropic_usage_t usage;
    int64_t block;     /* Anthropic index of the open block, -1 none */
    int kind;          /* B_* of the open block */
    int tools;         /* tool calls announced: our own index counter */
    bool block_args;   /* the open tool block received arguments */
    bool begun;        /* message_start seen */
    bool started;      /* a content chunk went out */
    bool json_used;    /* the response_format tool answered */
    bool finish_sent, stopped, failed;
    anthropic_error_info_t fail;
};

anthropic_stream_t *anthropic_stream_new(const anthropic_req_info_t *info, int64_t created)
{
    anthropic_stream_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    if (info != NULL)
        s->info = *info;
    s->created = created;
    s->block = -1;
    usage_unknown(&s->usage);
    return s;
}

void anthropic_stream_free(anthropic_stream_t *s)
{
    free(s);
}

bool anthropic_stream_started(const anthropic_stream_t *s)
{
    return s->started;
}

bool anthropic_stream_failed(const anthropic_stream_t *s, anthropic_error_info_t *info)
{
    if (s->failed && info != NULL)
        *info = s->fail;
    return s->failed;
}

void anthropic_stream_usage(const anthropic_stream_t *s, anthropic_usage_t *usage)
{
    *usage = s->usage;
}

bool anthropic_stream_finish(const anthropic_stream_t *s)
{
    return s->stopped && !s->failed;
}

/* Starts a chunk; the caller writes the delta's members. */
static void chunk_begin(awr_t *w, const anthropic_stream_t *s)
{
    awr_lit(w, s->prefix);
    awr_lit(w, "{\"index\":0,\"delta\":{");
}

static void chunk_end(awr_t *w, const anthropic_stream_t *s, const char *finish)
{
    awr_lit(w, "},\"logprobs\":null,\"finish_reason\":");
    if (finish != NULL)
        awr_str(w, finish);
    else
        awr_lit(w, "null");
    awr_lit(w, s->info.include_usage ? "}],\"usage\":null}\n\n" : "}]}\n\n");
}

static void text_chunk(awr_t *w, anthropic_stream_t *s, const char *key, const char *text)
{
    if (text == NULL || text[0] == '\0')
        return;
    chunk_begin(w, s);
    awr_lit(w, key);
    awr_str(w, text);
    chunk_end(w, s, NULL);
    s->started = true;
}

static void args_chunk(awr_t *w, anthropic_stream_t *s, const char *part)
{
    if (part == NULL || part[0] == '\0')
        return;
    s->block_args = true;
    if (s->kind == B_JSON) {
        text_chunk(w, s, "\"content\":", part);
        return;
    }
    chunk_begin(w, s);
    awr_lit(w, "\"tool_calls\":[{\"index\":");
    awr_num(w, s->tools - 1);
    awr_lit(w, ",\"function\":{\"arguments\":");
    awr_str(w, part);
    awr_lit(w, "}}]");
    chunk_end(w, s, NULL);
}

static int message_start(anthropic_stream_t *s, const cJSON *msg, awr_t *w)
{
    buf_t p;
    const char *id = ajs(msg, "id"), *model = ajs(msg, "model");
    char *txt;
    size_t n;
    /* ids and model names are short; longer ones are cut so the prefix
     * stays within its fixed size */
    buf_init(&p, sizeof s->prefix - 1);
    if (buf_puts(&p, "data: {\"id\":") < 0 ||
        json_append_string(&p, id ? id : "msg_unknown", id ? strnlen(id, 128) : 11) < 0 ||
        buf_puts(&p, ",\"object\":\"chat.completion.chunk\",\"created\":") < 0 ||
        json_append_number(&p, (double)s->created) < 0 || buf_puts(&p, ",\"model\":") < 0 ||
        json_append_string(&p, model ? model : "", model ? strnlen(model, 128) : 0) < 0 ||
        buf_puts(&p, ",\"choices\":[") < 0) {
        buf_free(&p);
        return ANTHROPIC_EINVAL;
    }
    txt = buf_detach(&p, &n);
    memcpy(s->prefix, txt, n + 1);
    free(txt);
    read_usage(aj(msg, "usage"), &s->usage);
    s->begun = true;
    chunk_begin(w, s);
    awr_lit(w, "\"role\":\"assistant\",\"content\":\"\"");
    chunk_end(w, s, NULL);
    return ANTHROPIC_OK;
}

static int block_start(anthropic_stream_t *s, const cJSON *d, awr_t *w)
{
    const cJSON *cb = aj(d, "content_block"), *idx = aj(d, "index");
    const char *t = ajs(cb, "type") ? ajs(cb, "type") : "";
    const char *jt = s->info.json_tool[0] ? s->info.json_tool : NULL;
    if (!cJSON_IsNumber(idx) || !cJSON_IsObject(cb))
        return ANTHROPIC_EINVAL;
    s->block = util_index_i64(idx->valuedouble, -1);
    s->block_args = false;
    if (strcmp(t, "text") == 0) {
        s->kind = B_TEXT;
        text_chunk(w, s, "\"content\":", ajs(cb, "text"));
    } else if (strcmp(t, "thinking") == 0) {
        s->kind = B_THINK;
        text_chunk(w, s, "\"reasoning_content\":", ajs(cb, "thinking"));
    } else if (strcmp(t, "tool_use") == 0) {
        const cJSON *in = aj(cb, "input");
        const char *name = ajs(cb, "name");
        char *init = NULL;
        if (jt != NULL && name != NULL && strcmp(name, jt) == 0 && !s->json_used) {
            s->kind = B_JSON;
            s->json_used = true;
        } else {
            s->kind = B_TOOL;
            chunk_begin(w, s);
            awr_lit(w, "\"tool_calls\":[{\"index\":");
            awr_num(w, s->tools++);
            awr_lit(w, ",\"id\":");
            awr_str(w, ajs(cb, "id") ? ajs(cb, "id") : "");
            awr_lit(w, ",\"type\":\"function\",\"function\":{\"name\":");
            awr_str(w, name ? name : "");
            awr_lit(w, ",\"arguments\":\"\"}}]");
            chunk_end(w, s, NULL);
            s->started = true;
        }
        /* an input already complete in the start (not sent by today's
         * API for client tools, but legal) */
        if (cJSON_IsObject(in) && in->child != NULL) {
            init = cJSON_PrintUnformatted(in);
            if (init == NULL)
                return ANTHROPIC_ENOMEM;
            args_chunk(w, s, init);
            free(init);
        }
    } else {
        s->kind = B_OTHER; /* redacted_thinking, server tools: nothing to show */
    }
    return ANTHROPIC_OK;
}

static int block_delta(anthropic_stream_t *s, const cJSON *d, awr_t *w)
{
    const cJSON *delta = aj(d, "delta"), *idx = aj(d, "index");
    const char *t = ajs(delta, "type") ? ajs(delta, "type") : "";
    if (!cJSON_IsNumber(idx) || util_index_i64(idx->valuedouble, -2) != s->block || s->kind == B_NONE)
        return ANTHROPIC_EINVAL;
    if (strcmp(t, "text_delta") == 0 && s->kind == B_TEXT)
        text_chunk(w, s, "\"content\":", ajs(delta, "text"));
    else if (strcmp(t, "thinking_delta") == 0 && s->kind == B_THINK)
        text_chunk(w, s, "\"reasoning_content\":", ajs(delta, "thinking"));
    else if (strcmp(t, "signature_delta") == 0 && s->kind == B_THINK)
        text_chunk(w, s, "\"reasoning_signature\":", ajs(delta, "signature"));
    else if (strcmp(t, "input_json_delta") == 0 && (s->kind == B_TOOL || s->kind == B_JSON))
        args_chunk(w, s, ajs(delta, "partial_json"));
    /* citations and deltas of blocks we do not show: nothing */
    return ANTHROPIC_OK;
}

static int block_stop(anthropic_stream_t *s, const cJSON *d, awr_t *w)
{
    const cJSON *idx = aj(d, "index");
    if (!cJSON_IsNumber(idx) || util_index_i64(idx->valuedouble, -2) != s->block)
        return ANTHROPIC_EINVAL;
    /* an empty input is "{}", never an empty arguments string */
    if ((s->kind == B_TOOL || s->kind == B_JSON) && !s->block_args)
        args_chunk(w, s, "{}");
    s->block = -1;
    s->kind = B_NONE;
    return ANTHROPIC_OK;
}

static void finish_chunk(anthropic_stream_t *s, const char *stop_reason, awr_t *w)
{
    const char *f = anthropic_finish_reason(stop_reason);
    if (s->finish_sent)
        return;
    if (s->json_used && s->tools == 0 && strcmp(f, "tool_calls") == 0)
        f = "stop";
    chunk_begin(w, s);
    chunk_end(w, s, f);
    s->finish_sent = true;
}

static void message_stop(anthropic_stream_t *s, awr_t *w)
{
    finish_chunk(s, NULL, w);
    if (s->info.include_usage) {
        awr_lit(w, s->prefix);
        awr_lit(w, "],\"usage\":");
        write_usage(w, &s->usage);
        awr_lit(w, "}\n\n");
    }
    awr_lit(w, "data: [DONE]\n\n");
    s->stopped = true;
}

static int dispatch(anthropic_stream_t *s, const char *type, const cJSON *d, awr_t *w)
{
    if (strcmp(type, "error") == 0) {
        awr_lit(w, "data: ");
        write_error(w, aj(d, "error"), 0, &s->fail);
        awr_lit(w, "\n\n");
        s->failed = true;
        return ANTHROPIC_OK;
    }
    if (strcmp(type, "ping") == 0)
        return ANTHROPIC_OK;
    if (strcmp(type, "message_start") == 0)
        return s->begun ? ANTHROPIC_EINVAL : message_start(s, aj(d, "message"), w);
    if (strcmp(type, "content_block_start") != 0 && strcmp(type, "content_block_delta") != 0 &&
        strcmp(type, "content_block_stop") != 0 && strcmp(type, "message_delta") != 0 &&
        strcmp(type, "message_stop") != 0)
        return ANTHROPIC_OK; /* unknown events are to be ignored */
    if (!s->begun)
        return ANTHROPIC_EINVAL;
    if (strcmp(type, "content_block_start") == 0)
        return block_start(s, d, w);
    if (strcmp(type, "content_block_delta") == 0)
        return block_delta(s, d, w);
    if (strcmp(type, "content_block_stop") == 0)
        return block_stop(s, d, w);
    if (strcmp(type, "message_delta") == 0) {
        const char *sr = ajs(aj(d, "delta"), "stop_reason");
        read_usage(aj(d, "usage"), &s->usage);
        if (sr != NULL)
            finish_chunk(s, sr, w);
        return ANTHROPIC_OK;
    }
    message_stop(s, w);
    return ANTHROPIC_OK;
}

/* The "event:" name of an event's bytes, into name (cut to its size). */
static void event_name(const char *p, size_t len, char *name, size_t cap)
{
    size_t i = 0;
    name[0] = '\0';
    while (i < len) {
        size_t e = i;
        while (e < len && p[e] != '\n' && p[e] != '\r')
            e++;
        if (e - i >= 6 && memcmp(p + i, "event:", 6) == 0) {
            size_t v = i + 6, n;
            if (v < e && p[v] == ' ')
                v++;
            n = e - v < cap - 1 ? e - v : cap - 1;
            memcpy(name, p + v, n);
            name[n] = '\0';
        }
        i = e + 1;
    }
}

int anthropic_stream_event(anthropic_stream_t *s, const char *ev, size_t len, buf_t *out)
{
    anthropic_stream_t saved;
    char name[32];
    char *data;
    cJSON *d;
    const char *type;
    awr_t w;
    int rc;

    if (s->stopped || s->failed || len == 0)
        return ANTHROPIC_OK; /* nothing may follow the end or an error */
    data = sse_event_data(ev, len);
    if (data == NULL)
        return ANTHROPIC_ENOMEM;
    if (data[0] == '\0') { /* a comment (keep-alive) */
        free(data);
        return ANTHROPIC_OK;
    }
    d = cJSON_Parse(data);
    free(data);
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        return ANTHROPIC_EINVAL;
    }
    event_name(ev, len, name, sizeof name);
    type = ajs(d, "type") ? ajs(d, "type") : name;
    /* the state is a fixed-size struct: a copy undoes a half-written event */
    saved = *s;
    awr_begin(&w, out);
    rc = dispatch(s, type, d, &w);
    if (rc == ANTHROPIC_OK)
        rc = w.rc;
    if (rc != ANTHROPIC_OK) {
        w.rc = rc;
        *s = saved;
    }
    cJSON_Delete(d);
    return awr_end(&w);
}
