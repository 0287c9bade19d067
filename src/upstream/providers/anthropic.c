/* providers/anthropic: Chat Completions request -> Anthropic Messages
 * request. The answer, stream and error directions are in
 * anthropic_answer.c. What is mapped, dropped and refused is listed in
 * docs/providers.md; the header says who owns what. */
#include "upstream/anthropic.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "anthropic_wr.h"

#define DEFAULT_MAX_TOKENS 4096
/* Anthropic's smallest thinking budget. */
#define THINKING_MIN 1024

typedef struct rq {
    awr_t w;
    anthropic_err_t *err;
    /* the turn being written: consecutive messages of one role become one
     * turn (Anthropic wants alternating roles; tool results join the user
     * turn that follows them) */
    int role;        /* 0 none yet, 1 user, 2 assistant */
    bool any_turn;   /* a turn was opened (a comma before the next) */
    int nblocks;     /* blocks in the current turn */
    bool block_open; /* the last block's closing brace is still to write */
    bool block_cc;   /* ... and it already has a cache_control */
} rq_t;

/* Records a refusal (the first one wins) and stops all further writes. */
static void refuse(rq_t *q, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void refuse(rq_t *q, const char *param, const char *fmt, ...)
{
    va_list ap;
    if (q->w.rc != ANTHROPIC_OK)
        return;
    q->w.rc = ANTHROPIC_EINVAL;
    if (q->err == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(q->err->message, sizeof q->err->message, fmt, ap);
    va_end(ap);
    snprintf(q->err->param, sizeof q->err->param, "%s", param ? param : "");
}

static bool ok(const rq_t *q)
{
    return q->w.rc == ANTHROPIC_OK;
}

/* ---- turns and blocks ------------------------------------------------- */

static void close_block(rq_t *q)
{
    if (q->block_open)
        awr_lit(&q->w, "}");
    q->block_open = false;
    q->block_cc = false;
}

/* Starts a block in a turn of `role`, opening that turn unless the
 * previous message's turn has the same role. The caller writes the block's
 * members after the opening brace and leaves it open. */
static void block_begin(rq_t *q, int role)
{
    close_block(q);
    if (q->role != role) {
        if (q->role != 0)
            awr_lit(&q->w, "]}");
        awr_lit(&q->w, q->any_turn ? "," : "");
        awr_lit(&q->w, role == 1 ? "{\"role\":\"user\",\"content\":[" :
                                   "{\"role\":\"assistant\",\"content\":[");
        q->role = role;
        q->any_turn = true;
        q->nblocks = 0;
    }
    awr_lit(&q->w, q->nblocks++ ? ",{" : "{");
    q->block_open = true;
}

/* cache_control markers are copied untouched (Anthropic's own syntax). */
static void block_cache_control(rq_t *q, const cJSON *cc)
{
    if (cc == NULL || !q->block_open || q->block_cc)
        return;
    awr_lit(&q->w, ",\"cache_control\":");
    awr_json(&q->w, cc);
    q->block_cc = true;
}

static void end_turns(rq_t *q)
{
    close_block(q);
    if (q->role != 0)
        awr_lit(&q->w, "]}");
    q->role = 0;
}

/* ---- content parts ---------------------------------------------------- */

static bool is_ws_only(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

/* An image_url (string or {url, detail}) as an image source. data: URIs
 * become base64 sources, http(s) URLs url sources; detail has no
 * equivalent and is dropped. */
static void write_image_source(rq_t *q, const char *url, const char *param)
{
    static const char *const mimes[] = {"image/jpeg", "image/png", "image/gif", "image/webp"};
    if (strncmp(url, "data:", 5) == 0) {
        const char *comma = strchr(url, ',');
        const char *semi = comma ? memchr(url, ';', (size_t)(comma - url)) : NULL;
        size_t mlen;
        bool known = false;
        if (comma == NULL || semi == NULL || (size_t)(comma - semi) != 7 ||
            memcmp(semi, ";base64", 7) != 0 || comma[1] == '\0') {
            refuse(q, param, "image data URIs must be data:<type>;base64,<data> on an "
                             "Anthropic upstream");
            return;
        }
        mlen = (size_t)(semi - (url + 5));
        for (size_t i = 0; i < sizeof mimes / sizeof *mimes; i++)
            if (strlen(mimes[i]) == mlen && memcmp(mimes[i], url + 5, mlen) == 0)
                known = true;
        if (!known) {
            refuse(q, param, "image type '%.*s' is not supported by Anthropic (jpeg, png, gif, "
                             "webp)", (int)(mlen > 40 ? 40 : mlen), url + 5);
            return;
        }
        awr_lit(&q->w, "\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":");
        awr_strn(&q->w, url + 5, mlen);
        awr_lit(&q->w, ",\"data\":");
        awr_str(&q->w, comma + 1);
        awr_lit(&q->w, "}");
        return;
    }
    if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
        refuse(q, param, "image_url must be an http(s) URL or a base64 data URI");
        return;
    }
    awr_lit(&q->w, "\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":");
    awr_str(&q->w, url);
    awr_lit(&q->w, "}");
}

/* A message's content (a string or an array of parts) as blocks of a turn
 * of `role`. Empty texts are skipped: Anthropic refuses empty text blocks. */
static void write_parts(rq_t *q, const cJSON *content, int role, bool images, const char *param)
{
    char p[96];
    int i = 0;
    const cJSON *part;
    if (content == NULL || cJSON_IsNull(content))
        return;
    if (cJSON_IsString(content)) {
        if (content->valuestring[0] == '\0')
            return;
        block_begin(q, role);
        awr_lit(&q->w, "\"type\":\"text\",\"text\":");
        awr_str(&q->w, content->valuestring);
        return;
    }
    if (!cJSON_IsArray(content)) {
        refuse(q, param, "content must be a string or an array of content parts");
        return;
    }
    cJSON_ArrayForEach(part, content)
    {
        const char *type = ajs(part, "type");
        snprintf(p, sizeof p, "%s[%d]", param, i++);
        if (!ok(q))
            return;
        if (type == NULL) {
            refuse(q, p, "a content part needs a type");
        } else if (strcmp(type, "text") == 0 || strcmp(type, "refusal") == 0) {
            const char *t = ajs(part, type[0] == 't' ? "text" : "refusal");
            if (t == NULL) {
                refuse(q, p, "a %s part needs a string '%s'", type, type);
                return;
            }
            if (t[0] == '\0')
                continue;
            block_begin(q, role);
            awr_lit(&q->w, "\"type\":\"text\",\"text\":");
            awr_str(&q->w, t);
            block_cache_control(q, aj(part, "cache_control"));
        } else if (strcmp(type, "image_url") == 0 && images) {
            const cJSON *iu = aj(part, "image_url");
            const char *url = cJSON_IsString(iu) ? iu->valuestring : ajs(iu, "url");
            if (url == NULL) {
                refuse(q, p, "an image_url part needs image_url.url");
                return;
            }
            block_begin(q, role);
            write_image_source(q, url, p);
            block_cache_control(q, aj(part, "cache_control"));
        } else {
            refuse(q, p, "content parts of type '%.32s' are not supported on an Anthropic "
                         "upstream here", type);
        }
    }
}

/* ---- messages --------------------------------------------------------- */

/* The system and developer messages, hoisted into "system" as text blocks
 * (blocks rather than one joined string, so cache_control survives). */
static void write_system(rq_t *q, const cJSON *messages)
{
    const cJSON *m;
    int i = 0, n = 0;
    char p[64];
    cJSON_ArrayForEach(m, messages)
    {
        const char *role = ajs(m, "role");
        const cJSON *c = aj(m, "content"), *part;
        snprintf(p, sizeof p, "messages[%d].content", i++);
        if (role == NULL || (strcmp(role, "system") != 0 && strcmp(role, "developer") != 0))
            continue;
        if (cJSON_IsString(c)) {
            if (c->valuestring[0] == '\0')
                continue;
            awr_lit(&q->w, n++ ? ",{\"type\":\"text\",\"text\":" :
                                 ",\"system\":[{\"type\":\"text\",\"text\":");
            awr_str(&q->w, c->valuestring);
            awr_lit(&q->w, "}");
            continue;
        }
        if (!cJSON_IsArray(c)) {
            refuse(q, p, "a %s message needs string or text-part content", role);
            return;
        }
        cJSON_ArrayForEach(part, c)
        {
            const char *t = ajs(part, "text");
            const cJSON *cc = aj(part, "cache_control");
            if (t == NULL || strcmp(ajs(part, "type") ? ajs(part, "type") : "", "text") != 0) {
                refuse(q, p, "a %s message may only hold text parts", role);
                return;
            }
            if (t[0] == '\0')
                continue;
            awr_lit(&q->w, n++ ? ",{\"type\":\"text\",\"text\":" :
                                 ",\"system\":[{\"type\":\"text\",\"text\":");
            awr_str(&q->w, t);
            if (cc != NULL) {
                awr_lit(&q->w, ",\"cache_control\":");
                awr_json(&q->w, cc);
            }
            awr_lit(&q->w, "}");
        }
    }
    if (n > 0)
        awr_lit(&q->w, "]");
}

/* Thinking blocks an OpenAI client got from us and sends back: either our
 * message.thinking_blocks array (copied as is: the signature must come back
 * byte for byte), or reasoning_content + reasoning_signature (a stream's
 * accumulated deltas). Thinking without a signature is dropped: Anthropic
 * would refuse it. */
static void write_thinking(rq_t *q, const cJSON *m)
{
    const cJSON *tb = aj(m, "thinking_blocks"), *b;
    const char *rc = ajs(m, "reasoning_content"), *sig = ajs(m, "reasoning_signature");
    if (cJSON_IsArray(tb) && cJSON_GetArraySize(tb) > 0) {
        cJSON_ArrayForEach(b, tb)
        {
            const char *type = ajs(b, "type");
            if (type == NULL ||
                (strcmp(type, "thinking") != 0 && strcmp(type, "redacted_thinking") != 0))
                continue;
            block_begin(q, 2);
            /* the object's own braces: write its members only */
            awr_lit(&q->w, "\"type\":");
            awr_str(&q->w, type);
            for (const cJSON *f = b->child; f != NULL; f = f->next) {
                if (f->string == NULL || strcmp(f->string, "type") == 0)
                    continue;
                awr_lit(&q->w, ",");
                awr_str(&q->w, f->string);
                awr_lit(&q->w, ":");
                awr_json(&q->w, f);
            }
            q->block_cc = aj(b, "cache_control") != NULL;
        }
        return;
    }
    if (rc != NULL && sig != NULL && sig[0] != '\0') {
        block_begin(q, 2);
        awr_lit(&q->w, "\"type\":\"thinking\",\"thinking\":");
        awr_str(&q->w, rc);
        awr_lit(&q->w, ",\"signature\":");
        awr_str(&q->w, sig);
    }
}

static void write_tool_calls(rq_t *q, const cJSON *calls, int mi)
{
    const cJSON *tc;
    int j = 0;
    char p[96];
    if (calls == NULL || cJSON_IsNull(calls))
        return;
    if (!cJSON_IsArray(calls)) {
        snprintf(p, sizeof p, "messages[%d].tool_calls", mi);
        refuse(q, p, "tool_calls must be an array");
        return;
    }
    cJSON_ArrayForEach(tc, calls)
    {
        const cJSON *fn = aj(tc, "function"), *args = aj(fn, "arguments");
        const char *id = ajs(tc, "id"), *name = ajs(fn, "name"), *type = ajs(tc, "type");
        cJSON *input = NULL;
        snprintf(p, sizeof p, "messages[%d].tool_calls[%d]", mi, j++);
        if (!ok(q))
            return;
        if (type != NULL && strcmp(type, "function") != 0) {
            refuse(q, p, "only function tool calls can be sent to an Anthropic upstream");
            return;
        }
        if (id == NULL || name == NULL) {
            refuse(q, p, "a tool call needs an id and function.name");
            return;
        }
        if (cJSON_IsString(args) && args->valuestring[0] != '\0') {
            input = cJSON_Parse(args->valuestring);
            if (!cJSON_IsObject(input)) {
                cJSON_Delete(input);
                snprintf(p, sizeof p, "messages[%d].tool_calls[%d].function.arguments", mi,
                         j - 1);
                refuse(q, p, "tool call arguments must be a JSON object to be sent to an "
                             "Anthropic upstream");
                return;
            }
        } else if (args != NULL && !cJSON_IsString(args) && !cJSON_IsNull(args)) {
            refuse(q, p, "function.arguments must be a string");
            return;
        }
        block_begin(q, 2);
        awr_lit(&q->w, "\"type\":\"tool_use\",\"id\":");
        awr_str(&q->w, id);
        awr_lit(&q->w, ",\"name\":");
        awr_str(&q->w, name);
        awr_lit(&q->w, ",\"input\":");
        if (input != NULL)
            awr_json(&q->w, input);
        else
            awr_lit(&q->w, "{}");
        cJSON_Delete(input);
        block_cache_control(q, aj(tc, "cache_control"));
    }
}

static void write_messages(rq_t *q, const cJSON *messages)
{
    const cJSON *m;
    int i = 0;
    char p[64];
    awr_lit(&q->w, ",\"messages\":[");
    cJSON_ArrayForEach(m, messages)
    {
        const char *role = ajs(m, "role");
        const cJSON *content = aj(m, "content");
        int mi = i++;
        snprintf(p, sizeof p, "messages[%d].content", mi);
        if (!ok(q))
            return;
        if (role == NULL) {
            snprintf(p, sizeof p, "messages[%d].role", mi);
            refuse(q, p, "every message needs a role");
            return;
        }
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)
            continue;
        if (strcmp(role, "user") == 0) {
            write_parts(q, content, 1, true, p);
        } else if (strcmp(role, "assistant") == 0) {
            write_thinking(q, m);
            write_parts(q, content, 2, false, p);
            write_tool_calls(q, aj(m, "tool_calls"), mi);
        } else if (strcmp(role, "tool") == 0) {
            const char *id = ajs(m, "tool_call_id");
            if (id == NULL) {
                snprintf(p, sizeof p, "messages[%d].tool_call_id", mi);
                refuse(q, p, "a tool message needs a tool_call_id");
                return;
            }
            block_begin(q, 1);
            awr_lit(&q->w, "\"type\":\"tool_result\",\"tool_use_id\":");
            awr_str(&q->w, id);
            if (cJSON_IsString(content)) {
                awr_lit(&q->w, ",\"content\":");
                awr_str(&q->w, content->valuestring);
            } else if (cJSON_IsArray(content)) {
                /* its parts as the result's own block list */
                rq_t sub = {.w = q->w, .err = q->err};
                awr_lit(&sub.w, ",\"content\":");
                sub.role = 1;
                sub.any_turn = true;
                awr_lit(&sub.w, "[");
                write_parts(&sub, content, 1, true, p);
                close_block(&sub);
                awr_lit(&sub.w, "]");
                q->w = sub.w; /* the refusal, if any, is already in *err */
            } else if (content != NULL && !cJSON_IsNull(content)) {
                refuse(q, p, "tool message content must be a string or content parts");
                return;
            }
        } else {
            snprintf(p, sizeof p, "messages[%d].role", mi);
            refuse(q, p, "messages of role '%.20s' cannot be sent to an Anthropic upstream",
                   role);
            return;
        }
        /* a marker on the message itself applies to its last block */
        block_cache_control(q, aj(m, "cache_control"));
    }
    end_turns(q);
    if (ok(q) && !q->any_turn)
        refuse(q, "messages", "an Anthropic upstream needs at least one non-system message");
    awr_lit(&q->w, "]");
}

/* ---- tools ------------------------------------------------------------ */

static void write_tools(rq_t *q, const cJSON *tools, const char *json_tool, const cJSON *schema,
                        const char *schema_desc)
{
    const cJSON *t;
    int i = 0, n = 0;
    char p[48];
    if (cJSON_IsArray(tools)) {
        cJSON_ArrayForEach(t, tools)
        {
            const cJSON *fn = aj(t, "function"), *params = aj(fn, "parameters");
            const char *type = ajs(t, "type"), *name = ajs(fn, "name"),
                       *desc = ajs(fn, "description");
            snprintf(p, sizeof p, "tools[%d]", i++);
            if (type == NULL || strcmp(type, "function") != 0) {
                refuse(q, p, "only function tools can be sent to an Anthropic upstream");
                return;
            }
            if (name == NULL) {
                refuse(q, p, "a function tool needs function.name");
                return;
            }
            awr_lit(&q->w, n++ ? ",{\"name\":" : ",\"tools\":[{\"name\":");
            awr_str(&q->w, name);
            if (desc != NULL) {
                awr_lit(&q->w, ",\"description\":");
                awr_str(&q->w, desc);
            }
            awr_lit(&q->w, ",\"input_schema\":");
            if (cJSON_IsObject(params))
                awr_json(&q->w, params);
            else
                awr_lit(&q->w, "{\"type\":\"object\",\"properties\":{}}");
            if (aj(t, "cache_control") != NULL) {
                awr_lit(&q->w, ",\"cache_control\":");
                awr_json(&q->w, aj(t, "cache_control"));
            }
            awr_lit(&q->w, "}");
        }
    } else if (tools != NULL && !cJSON_IsNull(tools)) {
        refuse(q, "tools", "tools must be an array");
        return;
    }
    if (json_tool[0] != '\0') {
        awr_lit(&q->w, n++ ? ",{\"name\":" : ",\"tools\":[{\"name\":");
        awr_str(&q->w, json_tool);
        awr_lit(&q->w, ",\"description\":");
        awr_str(&q->w, schema_desc ? schema_desc : "Respond with the answer as this tool's input.");
        awr_lit(&q->w, ",\"input_schema\":");
        if (schema != NULL)
            awr_json(&q->w, schema);
        else
            awr_lit(&q->w, "{\"type\":\"object\"}");
        awr_lit(&q->w, "}");
    }
    if (n > 0)
        awr_lit(&q->w, "]");
}

static void write_tool_choice(rq_t *q, const cJSON *chat, const char *json_tool)
{
    const cJSON *tc = aj(chat, "tool_choice"), *ptc = aj(chat, "parallel_tool_calls");
    bool no_parallel = cJSON_IsFalse(ptc);
    if (json_tool[0] != '\0') {
        awr_lit(&q->w, ",\"tool_choice\":{\"type\":\"tool\",\"name\":");
        awr_str(&q->w, json_tool);
        awr_lit(&q->w, "}");
        return;
    }
    if (tc == NULL || cJSON_IsNull(tc)) {
        if (no_parallel && cJSON_GetArraySize(aj(chat, "tools")) > 0)
            awr_lit(&q->w, ",\"tool_choice\":{\"type\":\"auto\",\"disable_parallel_tool_use\":true}");
        return;
    }
    if (cJSON_IsString(tc)) {
        const char *s = tc->valuestring;
        const char *type = strcmp(s, "auto") == 0       ? "auto"
                           : strcmp(s, "required") == 0 ? "any"
                           : strcmp(s, "none") == 0     ? "none"
                                                        : NULL;
        if (type == NULL) {
            refuse(q, "tool_choice", "tool_choice must be auto, required, none or a function");
            return;
        }
        awr_lit(&q->w, ",\"tool_choice\":{\"type\":");
        awr_str(&q->w, type);
    } else {
        const char *name = ajs(aj(tc, "function"), "name");
        if (name == NULL || strcmp(ajs(tc, "type") ? ajs(tc, "type") : "", "function") != 0) {
            refuse(q, "tool_choice", "only a tool_choice of auto, required, none or "
                                     "{\"type\":\"function\",\"function\":{\"name\"}} can be "
                                     "sent to an Anthropic upstream");
            return;
        }
        awr_lit(&q->w, ",\"tool_choice\":{\"type\":\"tool\",\"name\":");
        awr_str(&q->w, name);
    }
    /* Anthropic refuses the flag on "none" */
    if (no_parallel && !(cJSON_IsString(tc) && strcmp(tc->valuestring, "none") == 0))
        awr_lit(&q->w, ",\"disable_parallel_tool_use\":true");
    awr_lit(&q->w, "}");
}

/* ---- scalars ---------------------------------------------------------- */

/* Fields an Anthropic model cannot honour and whose absence the client
 * would not notice are dropped (see docs/providers.md); these would change
 * what the client gets back, so they are refused. */
static void check_refused(rq_t *q, const cJSON *chat)
{
    const cJSON *n = aj(chat, "n"), *mod = aj(chat, "modalities"), *x;
    if (n != NULL && !cJSON_IsNull(n) && !(cJSON_IsNumber(n) && n->valuedouble == 1))
        refuse(q, "n", "n must be 1 on an Anthropic upstream");
    if (cJSON_IsTrue(aj(chat, "logprobs")) || (aj(chat, "top_logprobs") != NULL &&
                                               !cJSON_IsNull(aj(chat, "top_logprobs"))))
        refuse(q, "logprobs", "logprobs are not available from an Anthropic upstream");
    if (aj(chat, "audio") != NULL && !cJSON_IsNull(aj(chat, "audio")))
        refuse(q, "audio", "audio output is not available from an Anthropic upstream");
    cJSON_ArrayForEach(x, mod)
    {
        if (cJSON_IsString(x) && strcmp(x->valuestring, "audio") == 0)
            refuse(q, "modalities", "audio output is not available from an Anthropic upstream");
    }
    if (aj(chat, "functions") != NULL || aj(chat, "function_call") != NULL)
        refuse(q, "functions", "the deprecated functions/function_call fields are not "
                               "translated for an Anthropic upstream: use tools");
}

/* reasoning_effort -> thinking budget (LiteLLM's figures, floored at
 * Anthropic's minimum). -1: unknown value. */
static int64_t thinking_budget(const char *effort)
{
    static const struct {
        const char *effort;
        int64_t budget;
    } map[] = {{"none", 0},      {"minimal", 1024}, {"low", 1024},
               {"medium", 2048}, {"high", 4096},    {"xhigh", 8192}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strcmp(effort, map[i].effort) == 0)
            return map[i].budget;
    return -1;
}

static bool integral(const cJSON *v, double lo)
{
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble >= lo &&
           v->valuedouble <= 9007199254740992.0 && floor(v->valuedouble) == v->valuedouble;
}

/* The response_format emulation: a forced tool whose input is the answer. */
static void response_format(rq_t *q, const cJSON *chat, anthropic_req_info_t *info,
                            const cJSON **schema, const char **desc)
{
    const cJSON *rf = aj(chat, "response_format");
    const char *type = ajs(rf, "type");
    if (rf == NULL || cJSON_IsNull(rf) || (type != NULL && strcmp(type, "text") == 0))
        return;
    if (type == NULL) {
        refuse(q, "response_format", "response_format needs a type");
        return;
    }
    if (cJSON_GetArraySize(aj(chat, "tools")) > 0) {
        refuse(q, "response_format", "response_format together with tools is not supported on "
                                     "an Anthropic upstream (it is emulated with a forced tool)");
        return;
    }
    if (strcmp(type, "json_object") == 0) {
        snprintf(info->json_tool, sizeof info->json_tool, "%s", "json_response");
        return;
    }
    if (strcmp(type, "json_schema") == 0) {
        const cJSON *js = aj(rf, "json_schema"), *s = aj(js, "schema");
        const char *name = ajs(js, "name"), *st = ajs(s, "type");
        if (name == NULL || name[0] == '\0' || strlen(name) > ANTHROPIC_NAME_MAX) {
            refuse(q, "response_format.json_schema.name", "json_schema needs a name of 1 to 64 "
                                                          "characters");
            return;
        }
        if (s != NULL && !cJSON_IsObject(s)) {
            refuse(q, "response_format.json_schema.schema", "the schema must be an object");
            return;
        }
        if (st != NULL && strcmp(st, "object") != 0) {
            refuse(q, "response_format.json_schema.schema",
                   "an Anthropic upstream can only produce JSON objects (the schema's type must "
                   "be object)");
            return;
        }
        snprintf(info->json_tool, sizeof info->json_tool, "%s", name);
        *schema = s;
        *desc = ajs(js, "description");
        return;
    }
    refuse(q, "response_format", "response_format type '%.32s' is not supported", type);
}

int anthropic_request_from_chat(const cJSON *chat, const anthropic_req_opts_t *opts, buf_t *out,
                                anthropic_req_info_t *info, anthropic_err_t *err)
{
    rq_t q = {.err = err};
    const cJSON *messages = aj(chat, "messages"), *mt = aj(chat, "max_completion_tokens");
    const cJSON *temp = aj(chat, "temperature"), *top_p = aj(chat, "top_p"),
                *stop = aj(chat, "stop"), *so = aj(chat, "stream_options"), *schema = NULL;
    const char *effort = ajs(chat, "reasoning_effort"), *schema_desc = NULL;
    const char *user = ajs(chat, "user");
    int64_t default_max = opts->default_max_tokens > 0 ? opts->default_max_tokens
                                                       : DEFAULT_MAX_TOKENS;
    int64_t max_tokens;

    memset(info, 0, sizeof *info);
    if (err != NULL)
        memset(err, 0, sizeof *err);
    awr_begin(&q.w, out);
    if (!cJSON_IsObject(chat) || !cJSON_IsArray(messages)) {
        refuse(&q, "messages", "the request needs a messages array");
        return awr_end(&q.w);
    }
    info->stream = cJSON_IsTrue(aj(chat, "stream"));
    info->include_usage = info->stream && cJSON_IsTrue(aj(so, "include_usage"));
    check_refused(&q, chat);

    if (mt == NULL || cJSON_IsNull(mt))
        mt = aj(chat, "max_tokens");
    if (mt != NULL && !cJSON_IsNull(mt)) {
        if (!integral(mt, 1)) {
            refuse(&q, "max_completion_tokens", "max_completion_tokens must be an integer >= 1");
            return awr_end(&q.w);
        }
        max_tokens = (int64_t)mt->valuedouble;
    } else {
        max_tokens = default_max;
        info->max_tokens_defaulted = true;
    }
    if (effort != NULL) {
        int64_t b = thinking_budget(effort);
        if (b < 0) {
            refuse(&q, "reasoning_effort", "reasoning_effort must be none, minimal, low, medium, "
                                           "high or xhigh");
            return awr_end(&q.w);
        }
        if (b > 0 && info->max_tokens_defaulted && max_tokens <= b) {
            max_tokens = b + default_max; /* room for the answer after the thinking */
        } else if (b > 0 && max_tokens <= b) {
            b = max_tokens - 1; /* Anthropic wants budget_tokens < max_tokens */
            if (b < THINKING_MIN) {
                refuse(&q, "reasoning_effort",
                       "thinking on an Anthropic upstream needs max_completion_tokens above %d",
                       THINKING_MIN);
                return awr_end(&q.w);
            }
        }
        info->thinking_budget = b;
    }
    response_format(&q, chat, info, &schema, &schema_desc);
    if (ok(&q) && info->json_tool[0] != '\0' && info->thinking_budget > 0)
        refuse(&q, "response_format", "response_format cannot be combined with reasoning_effort "
                                      "on an Anthropic upstream (a forced tool excludes "
                                      "thinking)");
    info->max_tokens = max_tokens;

    awr_lit(&q.w, "{\"model\":");
    awr_str(&q.w, opts->model ? opts->model : "");
    awr_lit(&q.w, ",\"max_tokens\":");
    awr_num(&q.w, (double)max_tokens);
    write_system(&q, messages);
    write_messages(&q, messages);

    if (cJSON_IsString(stop) || cJSON_IsArray(stop)) {
        int n = 0;
        const cJSON *s, *list = cJSON_IsArray(stop) ? stop : NULL;
        if (cJSON_IsString(stop) && !is_ws_only(stop->valuestring)) {
            awr_lit(&q.w, ",\"stop_sequences\":[");
            awr_str(&q.w, stop->valuestring);
            n = 1;
        }
        cJSON_ArrayForEach(s, list)
        {
            if (!cJSON_IsString(s)) {
                refuse(&q, "stop", "stop must be a string or an array of strings");
                break;
            }
            /* Anthropic refuses whitespace-only sequences */
            if (is_ws_only(s->valuestring))
                continue;
            awr_lit(&q.w, n++ ? "," : ",\"stop_sequences\":[");
            awr_str(&q.w, s->valuestring);
        }
        if (n > 0)
            awr_lit(&q.w, "]");
    } else if (stop != NULL && !cJSON_IsNull(stop)) {
        refuse(&q, "stop", "stop must be a string or an array of strings");
    }

    /* with thinking Anthropic accepts only its default sampling */
    if (info->thinking_budget > 0 && ((temp && !cJSON_IsNull(temp)) || (top_p && !cJSON_IsNull(top_p)))) {
        info->sampling_dropped = true;
    } else {
        if (cJSON_IsNumber(temp)) {
            double t = temp->valuedouble;
            if (!(t >= 0)) {
                refuse(&q, "temperature", "temperature must be >= 0");
            } else {
                if (t > 1) {
                    t = 1;
                    info->temperature_clamped = true;
                }
                awr_lit(&q.w, ",\"temperature\":");
                awr_num(&q.w, t);
            }
        } else if (temp != NULL && !cJSON_IsNull(temp)) {
            refuse(&q, "temperature", "temperature must be a number");
        }
        if (cJSON_IsNumber(top_p)) {
            if (!(top_p->valuedouble >= 0 && top_p->valuedouble <= 1)) {
                refuse(&q, "top_p", "top_p must be between 0 and 1");
            } else {
                awr_lit(&q.w, ",\"top_p\":");
                awr_num(&q.w, top_p->valuedouble);
            }
        } else if (top_p != NULL && !cJSON_IsNull(top_p)) {
            refuse(&q, "top_p", "top_p must be a number");
        }
    }
    if (info->stream)
        awr_lit(&q.w, ",\"stream\":true");
    if (user == NULL || user[0] == '\0')
        user = ajs(chat, "safety_identifier");
    if (user != NULL && user[0] != '\0') {
        awr_lit(&q.w, ",\"metadata\":{\"user_id\":");
        awr_str(&q.w, user);
        awr_lit(&q.w, "}");
    }
    write_tools(&q, aj(chat, "tools"), info->json_tool, schema, schema_desc);
    write_tool_choice(&q, chat, info->json_tool);
    if (info->thinking_budget > 0) {
        awr_lit(&q.w, ",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":");
        awr_num(&q.w, (double)info->thinking_budget);
        awr_lit(&q.w, "}");
    }
    awr_lit(&q.w, "}");
    return awr_end(&q.w);
}
