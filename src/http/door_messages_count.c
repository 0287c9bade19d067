/* door_messages_count: POST /v1/messages/count_tokens answered from the
 * router's estimate over the translated request (see http/door_messages.h). */
#include "http/door_messages.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "http/door.h"
#include "route/prompt.h"
#include "route/textstat.h"

/* Tokens of what prompt.c does not read: tool definitions and the
 * arguments of earlier tool calls (a coding agent's history is mostly
 * those). */
static uint32_t extra_tokens(const cJSON *chat)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(chat, "tools"), *m, *tc;
    ts_stats_t st;
    uint64_t n = 0;
    if (v != NULL) {
        char *s = cJSON_PrintUnformatted(v);
        if (s != NULL) {
            ts_scan(s, strlen(s), &st);
            n += st.tokens;
            free(s);
        }
    }
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(chat, "messages"))
    {
        cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
        {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(tc, "function");
            const char *a = door_str_of(f, "arguments"), *nm = door_str_of(f, "name");
            if (a != NULL) {
                ts_scan(a, strlen(a), &st);
                n += st.tokens;
            }
            if (nm != NULL) {
                ts_scan(nm, strlen(nm), &st);
                n += st.tokens;
            }
        }
    }
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

int dm_count_tokens(const char *body, size_t len, buf_t *out, req_error_t *err)
{
    dm_info_t info;
    buf_t chat;
    cJSON *root;
    prompt_t p;
    uint64_t tokens;
    char num[32];
    /* the translation is about the size of the body; data URIs and escapes
     * can grow it a little */
    buf_init(&chat, len + len / 2 + 4096);
    if (dm_request_to_chat(body, len, DM_COUNT_TOKENS, &chat, &info, err) < 0) {
        buf_free(&chat);
        return -1;
    }
    root = cJSON_ParseWithLength(buf_ptr(&chat), buf_len(&chat));
    buf_free(&chat);
    if (root == NULL)
        return door_fail(err, 500, "internal_error", NULL,
                         "The translated request could not be read back.%s", NULL);
    prompt_init(&p, root, EP_CHAT);
    tokens = (uint64_t)prompt_stats(&p, SCOPE_CONVERSATION)->tokens + extra_tokens(root);
    prompt_free(&p);
    cJSON_Delete(root);
    if (tokens > UINT32_MAX)
        tokens = UINT32_MAX;
    snprintf(num, sizeof num, "%llu", (unsigned long long)tokens);
    if (buf_puts(out, "{\"input_tokens\":") < 0 || buf_puts(out, num) < 0 || buf_puts(out, "}") < 0)
        return door_fail(err, 500, "internal_error", NULL, "No room for the answer.%s", NULL);
    return 0;
}
