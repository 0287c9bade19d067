/* judge_parse: the judge's prompt, its score, a sample's hard failure (see
 * include/account/judge_parse.h). */
#include "account/judge_parse.h"

#include <ctype.h>
#include <strings.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/util.h"

static const char RUBRIC[] =
    "You grade the answer an AI assistant gave to a user's request. Judge correctness, "
    "helpfulness and whether it follows the request's instructions (format included). "
    "Reply with one JSON object and nothing else: {\"score\": N, \"reason\": \"...\"} where N "
    "is a whole number from 1 (useless or wrong) to 10 (excellent) and reason is one short "
    "line saying why.";

const char *judge_default_rubric(void)
{
    return RUBRIC;
}

/* Length of s[0..n) cut back to a UTF-8 boundary. */
static size_t utf8_cut(const char *s, size_t n)
{
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

static void put_capped(buf_t *b, const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max) {
        buf_append(b, s, n);
        return;
    }
    buf_append(b, s, utf8_cut(s, max));
    buf_puts(b, " [truncated]");
}

/* The text of a message's content: a string, or the text parts of a list. */
static void content_text(const cJSON *c, buf_t *out)
{
    const cJSON *part;
    if (cJSON_IsString(c)) {
        buf_puts(out, c->valuestring);
        return;
    }
    cJSON_ArrayForEach(part, c)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(t)) {
            buf_puts(out, t->valuestring);
            buf_puts(out, "\n");
        }
    }
}

char *judge_prompt(const char *req, size_t len, const char *resp, size_t rlen, size_t max_bytes)
{
    cJSON *rq = req ? cJSON_ParseWithLength(req, len) : NULL;
    cJSON *rs = resp ? cJSON_ParseWithLength(resp, rlen) : NULL;
    const cJSON *msgs, *m, *ch, *msg, *v;
    buf_t q, a, out;
    char *res = NULL;
    buf_init(&q, (size_t)1 << 26);
    buf_init(&a, (size_t)1 << 26);
    buf_init(&out, (size_t)1 << 27);
    msgs = cJSON_GetObjectItemCaseSensitive(rq, "messages");
    cJSON_ArrayForEach(m, msgs)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        buf_puts(&q, cJSON_IsString(role) ? role->valuestring : "user");
        buf_puts(&q, ": ");
        content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), &q);
        buf_puts(&q, "\n");
    }
    v = cJSON_GetObjectItemCaseSensitive(rq, "prompt");
    if (cJSON_IsString(v))
        buf_puts(&q, v->valuestring);
    ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rs, "choices"), 0);
    msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
    v = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (cJSON_IsString(v) && v->valuestring[0] != '\0') {
        buf_puts(&a, v->valuestring);
    } else if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(ch, "text"))) {
        buf_puts(&a, cJSON_GetObjectItemCaseSensitive(ch, "text")->valuestring);
    } else if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(msg, "tool_calls"))) {
        char *t = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(msg, "tool_calls"));
        if (t != NULL) {
            buf_puts(&a, "(tool calls) ");
            buf_puts(&a, t);
            free(t);
        }
    }
    if (buf_len(&a) > 0) {
        buf_puts(&out, "Question:\n");
        put_capped(&out, buf_cstr(&q), max_bytes);
        buf_puts(&out, "\n\nAnswer:\n");
        put_capped(&out, buf_cstr(&a), max_bytes);
        res = buf_detach(&out, &len);
    }
    buf_free(&q);
    buf_free(&a);
    buf_free(&out);
    cJSON_Delete(rq);
    cJSON_Delete(rs);
    return res;
}

/* One line of at most rlen-1 bytes, trimmed, control characters as spaces. */
static void set_reason(char *reason, size_t rlen, const char *s, size_t n)
{
    size_t o = 0;
    if (rlen == 0)
        return;
    while (n > 0 && (isspace((unsigned char)*s) || *s == '-' || *s == ':' || *s == '.' ||
                     *s == ',' || *s == ')')) {
        s++;
        n--;
    }
    /* an em or en dash (U+2014, U+2013) as separator */
    while (n >= 3 && (unsigned char)s[0] == 0xE2 && (unsigned char)s[1] == 0x80 &&
           ((unsigned char)s[2] == 0x94 || (unsigned char)s[2] == 0x93)) {
        s += 3;
        n -= 3;
        while (n > 0 && isspace((unsigned char)*s)) {
            s++;
            n--;
        }
    }
    size_t i = 0;
    for (; i < n && s[i] != '\n' && s[i] != '\r' && o + 1 < rlen; i++)
        reason[o++] = ((unsigned char)s[i] < 0x20) ? ' ' : s[i];
    /* cut at the cap: not inside a UTF-8 sequence */
    while (o > 0 && i < n && ((unsigned char)s[i] & 0xC0) == 0x80) {
        o--;
        i--;
    }
    while (o > 0 && isspace((unsigned char)reason[o - 1]))
        o--;
    reason[o] = '\0';
}

static int score_of(double d, int *score)
{
    if (!isfinite(d) || d < 1 || d > 10)
        return -1;
    *score = (int)lround(d);
    return 0;
}

/* The first {...} of text that parses with a numeric or numeric-string
 * "score". */
static int parse_json(const char *text, int *score, char *reason, size_t rlen)
{
    for (const char *p = strchr(text, '{'); p != NULL; p = strchr(p + 1, '{')) {
        const char *end = strrchr(p, '}');
        cJSON *o, *s, *r;
        int rc = -1;
        if (end == NULL)
            return -1;
        o = cJSON_ParseWithLength(p, (size_t)(end - p + 1));
        if (o == NULL)
            continue;
        s = cJSON_GetObjectItemCaseSensitive(o, "score");
        r = cJSON_GetObjectItemCaseSensitive(o, "reason");
        if (cJSON_IsNumber(s))
            rc = score_of(s->valuedouble, score);
        else if (cJSON_IsString(s)) {
            char *e;
            double d = strtod(s->valuestring, &e);
            rc = e != s->valuestring ? score_of(d, score) : -1;
        }
        if (rc == 0) {
            if (cJSON_IsString(r))
                set_reason(reason, rlen, r->valuestring, strlen(r->valuestring));
            else if (rlen > 0)
                reason[0] = '\0';
        }
        cJSON_Delete(o);
        if (rc == 0)
            return 0;
    }
    return -1;
}

/* A number at p (no sign), its end in *end. */
static bool number_at(const char *p, double *d, const char **end)
{
    char *e;
    if (!isdigit((unsigned char)*p))
        return false;
    *d = strtod(p, &e);
    *end = e;
    return e != p;
}

int judge_parse_score(const char *text, int *score, char *reason, size_t rlen)
{
    const char *p, *end;
    double d;
    if (rlen > 0)
        reason[0] = '\0';
    if (text == NULL)
        return -1;
    if (parse_json(text, score, reason, rlen) == 0)
        return 0;
    /* "Score: 7 — reason", "score = 7/10. reason" (case-insensitive) */
    for (p = text; *p != '\0'; p++) {
        if (strncasecmp(p, "score", 5) != 0)
            continue;
        const char *q = p + 5;
        while (*q == ' ' || *q == ':' || *q == '=' || *q == '*' || *q == '"')
            q++;
        if (number_at(q, &d, &end) && score_of(d, score) == 0) {
            if (strncmp(end, "/10", 3) == 0)
                end += 3;
            set_reason(reason, rlen, end, strlen(end));
            return 0;
        }
    }
    /* "7/10 reason" or "7 - reason" at the start */
    p = text;
    while (isspace((unsigned char)*p))
        p++;
    if (number_at(p, &d, &end) && score_of(d, score) == 0 &&
        (*end == '\0' || *end == '/' || isspace((unsigned char)*end) || *end == '-' ||
         *end == ':' || *end == '.' || *end == ',')) {
        if (strncmp(end, "/10", 3) == 0)
            end += 3;
        else if (*end == '/')
            return -1;
        set_reason(reason, rlen, end, strlen(end));
        return 0;
    }
    return -1;
}

const char *judge_failure_name(enum judge_failure f)
{
    static const char *const names[JUDGE_FAIL_N] = {"none", "error", "refusal", "truncated",
                                                     "invalid_json"};
    return (unsigned)f < JUDGE_FAIL_N ? names[f] : "none";
}

/* Whether the request asked for JSON output (response_format). */
static bool asks_json(const cJSON *rq)
{
    const cJSON *t =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rq, "response_format"),
                                         "type");
    return cJSON_IsString(t) && (strcmp(t->valuestring, "json_object") == 0 ||
                                 strcmp(t->valuestring, "json_schema") == 0);
}

enum judge_failure judge_answer_failure(unsigned status, const char *req, size_t len,
                                        const char *resp, size_t rlen)
{
    enum judge_failure f = JUDGE_FAIL_NONE;
    cJSON *rs, *rq = NULL;
    const cJSON *ch, *msg, *fr, *ref, *c;
    if (status >= 500)
        return JUDGE_FAIL_ERROR;
    if (status < 200 || status > 299 || resp == NULL)
        return JUDGE_FAIL_NONE;
    rs = cJSON_ParseWithLength(resp, rlen);
    ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rs, "choices"), 0);
    msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
    fr = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
    ref = cJSON_GetObjectItemCaseSensitive(msg, "refusal");
    c = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if ((cJSON_IsString(fr) && strcmp(fr->valuestring, "content_filter") == 0) ||
        (cJSON_IsString(ref) && ref->valuestring[0] != '\0'))
        f = JUDGE_FAIL_REFUSAL;
    else if (cJSON_IsString(fr) && strcmp(fr->valuestring, "length") == 0)
        f = JUDGE_FAIL_TRUNCATED;
    else if (req != NULL && (rq = cJSON_ParseWithLength(req, len)) != NULL && asks_json(rq) &&
             cJSON_IsString(c)) {
        cJSON *j = cJSON_Parse(c->valuestring);
        if (j == NULL || !(cJSON_IsObject(j) || cJSON_IsArray(j)))
            f = JUDGE_FAIL_JSON;
        cJSON_Delete(j);
    }
    cJSON_Delete(rq);
    cJSON_Delete(rs);
    return f;
}
