/* cascade: the checks of a cheapest-first tier and the record of its steps.
 * See include/upstream/cascade.h. The checks read a complete answer once
 * with cJSON; the schema validator walks the client's json_schema against
 * the parsed content. */
#include "upstream/cascade.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "http/request.h"
#include "route/router.h"

#define QUESTION_MAX 8000  /* bytes of the question the judge sees */
#define JUDGE_ANSWER_MAX 16000 /* bytes of the answer the judge sees */
#define REFUSAL_SCAN 240   /* a refusal opens the answer: only its head is read */
#define SCHEMA_DEPTH 64    /* deeper schemas are not judged (accepted) */

struct cascade_cfg {
    bool non_empty, finish_stop, json, refusal;
    char **phrases; /* lower-cased refusal phrases, NULL-terminated */
    size_t n_phrases;
    pcre2_code *must_match, *must_not_match;
    int judge_model; /* -1: no judge */
    double judge_threshold;
    unsigned judge_timeout_ms;
    char *judge_rubric;
};

/* What a refusal usually opens with, as the major providers phrase it. */
static const char *const DEFAULT_PHRASES[] = {
    "i'm sorry, but i can't", "i'm sorry, but i cannot", "i am sorry, but i cannot",
    "i'm sorry, i can't",     "i cannot help with",      "i can't help with",
    "i cannot assist with",   "i can't assist with",     "i'm unable to help",
    "i am unable to help",    "i'm not able to help",    "as an ai language model",
    "i won't be able to help", NULL};

static const char DEFAULT_RUBRIC[] =
    "You grade answers. Given a user's request and an assistant's answer, rate "
    "how well the answer fulfils the request: correct, complete, and on topic. "
    "Reply with only a number from 0 to 1 (1 = fully satisfactory, 0 = useless "
    "or wrong), nothing else.";

const char *cascade_reason_name(enum cascade_reason r)
{
    static const char *const names[CASCADE_N_REASONS] = {
        "ok", "empty", "length", "json", "schema", "refusal", "regex", "judge", "judge_error"};
    return (unsigned)r < CASCADE_N_REASONS ? names[r] : "other";
}

const char *cascade_verdict_name(enum cascade_verdict v)
{
    static const char *const names[CASCADE_N_VERDICTS] = {"accepted", "rejected", "failed",
                                                          "final"};
    return (unsigned)v < CASCADE_N_VERDICTS ? names[v] : "other";
}

/* ---- configuration ---- */

static char *lower_dup(const char *s)
{
    char *d = xstrdup(s);
    for (char *p = d; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return d;
}

static pcre2_code *compile_re(ywalk_t *c, const yaml_node_t *n, const char *what)
{
    char *pat = yw_str(c, n, what);
    int errcode;
    PCRE2_SIZE off;
    pcre2_code *re;
    if (pat == NULL)
        return NULL;
    re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                       PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &errcode, &off, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        yw_error(c, n, "%s: invalid regular expression /%s/: %s at offset %zu", what, pat,
                 (const char *)msg, (size_t)off);
    } else {
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    }
    free(pat);
    return re;
}

static void parse_judge(ywalk_t *c, const config_t *cfg, cascade_cfg_t *cc, const yaml_node_t *v,
                        const char *where)
{
    const char *k;
    yaml_node_t *kn, *jv;
    char what[256];
    bool have_model = false;
    snprintf(what, sizeof what, "%s.checks.judge", where);
    if (!yw_expect(c, v, YAML_MAPPING_NODE, what))
        return;
    YW_MAP_FOREACH(c, v, k, kn, jv)
    {
        char kw[300];
        snprintf(kw, sizeof kw, "%s.%s", what, k);
        if (strcmp(k, "model") == 0) {
            char *s = yw_str(c, jv, kw);
            have_model = true;
            if (s != NULL && (cc->judge_model = config_find_model(cfg, s)) < 0)
                yw_error(c, jv, "%s: no model named \"%s\" is defined under models", kw, s);
            free(s);
        } else if (strcmp(k, "threshold") == 0) {
            double t = -1;
            char *s = yw_str(c, jv, kw), *end = NULL;
            if (s != NULL)
                t = strtod(s, &end);
            if (s != NULL && (end == s || *end != '\0' || !(t >= 0 && t <= 1)))
                yw_error(c, jv, "%s: expected a number from 0 to 1, found \"%s\"", kw, s);
            else if (s != NULL)
                cc->judge_threshold = t;
            free(s);
        } else if (strcmp(k, "rubric") == 0) {
            char *s = yw_str(c, jv, kw);
            if (s != NULL && s[0] == '\0')
                yw_error(c, jv, "%s: the rubric may not be empty", kw);
            free(cc->judge_rubric);
            cc->judge_rubric = s;
        } else if (strcmp(k, "timeout_ms") == 0) {
            uint32_t ms;
            if (yw_u32(c, jv, kw, 1, 600000, &ms))
                cc->judge_timeout_ms = ms;
        } else {
            yw_unknown_key(c, kn, what, "model, threshold, rubric, timeout_ms");
        }
    }
    if (!have_model) {
        yw_error(c, v, "%s: missing \"model\" (the model that scores the answers)", what);
        cc->judge_model = -1;
    }
}

cascade_cfg_t *cascade_cfg_parse(ywalk_t *c, const config_t *cfg, const yaml_node_t *v,
                                 const char *where)
{
    cascade_cfg_t *cc = xcalloc(1, sizeof *cc);
    const char *k;
    yaml_node_t *kn, *cv;
    char what[256];
    cc->non_empty = cc->finish_stop = cc->json = cc->refusal = true;
    cc->judge_model = -1;
    cc->judge_threshold = 0.7;
    cc->judge_timeout_ms = 15000;
    snprintf(what, sizeof what, "%s.checks", where);
    if (v != NULL && !yw_is_null(v) && yw_expect(c, v, YAML_MAPPING_NODE, what)) {
        YW_MAP_FOREACH(c, v, k, kn, cv)
        {
            char kw[300];
            snprintf(kw, sizeof kw, "%s.%s", what, k);
            if (strcmp(k, "non_empty") == 0) {
                yw_bool(c, cv, kw, &cc->non_empty);
            } else if (strcmp(k, "finish_reason") == 0) {
                yw_bool(c, cv, kw, &cc->finish_stop);
            } else if (strcmp(k, "json") == 0) {
                yw_bool(c, cv, kw, &cc->json);
            } else if (strcmp(k, "refusal") == 0) {
                yw_bool(c, cv, kw, &cc->refusal);
            } else if (strcmp(k, "refusal_phrases") == 0) {
                char **v2 = NULL;
                size_t n = 0;
                if (yw_strv(c, cv, kw, &v2, &n)) {
                    for (size_t i = 0; i < n; i++) {
                        char *l = lower_dup(v2[i]);
                        free(v2[i]);
                        v2[i] = l;
                        if (l[0] == '\0')
                            yw_error(c, cv, "%s: a phrase may not be empty", kw);
                    }
                    yw_strv_free(cc->phrases);
                    cc->phrases = v2;
                    cc->n_phrases = n;
                }
            } else if (strcmp(k, "must_match") == 0 || strcmp(k, "must_not_match") == 0) {
                pcre2_code **dst = strcmp(k, "must_match") == 0 ? &cc->must_match : &cc->must_not_match;
                pcre2_code_free(*dst);
                *dst = compile_re(c, cv, kw);
            } else if (strcmp(k, "judge") == 0) {
                parse_judge(c, cfg, cc, cv, where);
            } else {
                yw_unknown_key(c, kn, what,
                               "non_empty, finish_reason, json, refusal, refusal_phrases, "
                               "must_match, must_not_match, judge");
            }
        }
    }
    if (cc->phrases == NULL) {
        size_t n = 0;
        while (DEFAULT_PHRASES[n])
            n++;
        cc->phrases = xcalloc(n + 1, sizeof *cc->phrases);
        for (size_t i = 0; i < n; i++)
            cc->phrases[i] = xstrdup(DEFAULT_PHRASES[i]);
        cc->n_phrases = n;
    }
    return cc;
}

void cascade_cfg_free(cascade_cfg_t *cc)
{
    if (cc == NULL)
        return;
    yw_strv_free(cc->phrases);
    pcre2_code_free(cc->must_match);
    pcre2_code_free(cc->must_not_match);
    free(cc->judge_rubric);
    free(cc);
}

int cascade_cfg_judge_model(const cascade_cfg_t *cc)
{
    return cc->judge_model;
}

double cascade_cfg_judge_threshold(const cascade_cfg_t *cc)
{
    return cc->judge_threshold;
}

unsigned cascade_cfg_judge_timeout_ms(const cascade_cfg_t *cc)
{
    return cc->judge_timeout_ms;
}

/* ---- what the request asked for ---- */

/* The text of a message's content: a string, or the text parts of a list. */
static char *content_text(const cJSON *content, size_t cap)
{
    buf_t b;
    char *s;
    size_t len;
    buf_init(&b, cap);
    if (cJSON_IsString(content)) {
        buf_append(&b, content->valuestring, strnlen(content->valuestring, cap));
    } else if (cJSON_IsArray(content)) {
        const cJSON *part;
        cJSON_ArrayForEach(part, content)
        {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (cJSON_IsString(t)) {
                size_t room = buf_room(&b);
                buf_append(&b, t->valuestring, strnlen(t->valuestring, room));
            }
        }
    }
    s = buf_detach(&b, &len);
    if (s == NULL)
        s = xstrdup("");
    return s;
}

void cascade_ask_init(cascade_ask_t *ask, const char *body, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *rf, *msgs, *m;
    memset(ask, 0, sizeof *ask);
    if (root == NULL)
        return;
    rf = cJSON_GetObjectItemCaseSensitive(root, "response_format");
    if (cJSON_IsObject(rf)) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
        if (cJSON_IsString(type) && strcmp(type->valuestring, "json_object") == 0) {
            ask->want_json = true;
        } else if (cJSON_IsString(type) && strcmp(type->valuestring, "json_schema") == 0) {
            const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
            const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
            ask->want_json = true;
            if (cJSON_IsObject(schema) || cJSON_IsBool(schema))
                ask->schema = cJSON_Duplicate(schema, true);
        }
    }
    msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    cJSON_ArrayForEach(m, msgs)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0) {
            free(ask->question);
            ask->question = content_text(cJSON_GetObjectItemCaseSensitive(m, "content"),
                                         QUESTION_MAX);
        }
    }
    cJSON_Delete(root);
}

void cascade_ask_free(cascade_ask_t *ask)
{
    cJSON_Delete(ask->schema);
    free(ask->question);
    memset(ask, 0, sizeof *ask);
}

/* ---- the checks ---- */

static bool blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

/* The head of s, lower-cased, with the typographic apostrophe (U+2019)
 * read as "'", so that one phrase list covers both spellings. */
static void refusal_head(const char *s, char *out, size_t n)
{
    size_t o = 0;
    while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r' || *s == '"')
        s++;
    for (; *s && o + 1 < n; s++) {
        if ((unsigned char)s[0] == 0xe2 && (unsigned char)s[1] == 0x80 &&
            (unsigned char)s[2] == 0x99) {
            out[o++] = '\'';
            s += 2;
        } else {
            out[o++] = (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : *s;
        }
    }
    out[o] = '\0';
}

static bool re_matches(const pcre2_code *re, const char *s)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc;
    if (md == NULL)
        return false;
    rc = pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

static enum cascade_reason check_choice(const cascade_cfg_t *cc, const cascade_ask_t *ask,
                                        const cJSON *ch, char *detail, size_t dl)
{
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    const cJSON *refusal = cJSON_GetObjectItemCaseSensitive(msg, "refusal");
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
    bool has_calls = cJSON_IsArray(calls) && cJSON_GetArraySize(calls) > 0;
    const char *text = cJSON_IsString(content) ? content->valuestring : "";

    if (cc->refusal && cJSON_IsString(refusal) && refusal->valuestring[0] != '\0') {
        snprintf(detail, dl, "the message has a refusal");
        return CASCADE_REFUSAL;
    }
    if (cc->non_empty && !has_calls && blank(text)) {
        snprintf(detail, dl, "the answer has no content");
        return CASCADE_EMPTY;
    }
    if (cc->finish_stop) {
        const char *f = cJSON_IsString(fr) ? fr->valuestring : "";
        bool ok = strcmp(f, "stop") == 0 || (has_calls && strcmp(f, "tool_calls") == 0);
        if (!ok) {
            snprintf(detail, dl, "finish_reason is %.40s", cJSON_IsString(fr) ? f : "missing");
            return CASCADE_LENGTH;
        }
    }
    if (has_calls && !cJSON_IsString(content))
        return CASCADE_OK; /* a tool call: nothing below applies to it */
    if (cc->json && ask->want_json) {
        cJSON *v = cJSON_Parse(text);
        bool ok = v != NULL;
        if (!ok) {
            snprintf(detail, dl, "JSON was requested and the content is not JSON");
        } else if (ask->schema != NULL && !cascade_schema_valid(ask->schema, ask->schema, v,
                                                                detail, dl)) {
            cJSON_Delete(v);
            return CASCADE_SCHEMA;
        }
        cJSON_Delete(v);
        if (!ok)
            return CASCADE_JSON;
    }
    if (cc->refusal) {
        char head[REFUSAL_SCAN + 1];
        refusal_head(text, head, sizeof head);
        for (size_t i = 0; i < cc->n_phrases; i++) {
            if (strstr(head, cc->phrases[i]) != NULL) {
                snprintf(detail, dl, "refusal phrase \"%.60s\"", cc->phrases[i]);
                return CASCADE_REFUSAL;
            }
        }
    }
    if (cc->must_match != NULL && !re_matches(cc->must_match, text)) {
        snprintf(detail, dl, "must_match did not match");
        return CASCADE_REGEX;
    }
    if (cc->must_not_match != NULL && re_matches(cc->must_not_match, text)) {
        snprintf(detail, dl, "must_not_match matched");
        return CASCADE_REGEX;
    }
    return CASCADE_OK;
}

enum cascade_reason cascade_check(const cascade_cfg_t *cc, const cascade_ask_t *ask,
                                  const char *answer, size_t len, char **content, char *detail,
                                  size_t detail_len)
{
    char scratch[8];
    cJSON *root = cJSON_ParseWithLength(answer, len);
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    const cJSON *ch;
    enum cascade_reason r = CASCADE_OK;
    if (detail == NULL) {
        detail = scratch;
        detail_len = sizeof scratch;
    }
    detail[0] = '\0';
    if (content != NULL)
        *content = NULL;
    if (!cJSON_IsArray(choices) || cJSON_GetArraySize(choices) == 0) {
        snprintf(detail, detail_len, "the answer has no choices");
        cJSON_Delete(root);
        return cc->non_empty ? CASCADE_EMPTY : CASCADE_OK;
    }
    cJSON_ArrayForEach(ch, choices)
    {
        r = check_choice(cc, ask, ch, detail, detail_len);
        if (r != CASCADE_OK)
            break;
    }
    if (r == CASCADE_OK && content != NULL) {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(choices, 0),
                                                            "message");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(msg, "content");
        if (cJSON_IsString(c))
            *content = xstrndup(c->valuestring, strnlen(c->valuestring, JUDGE_ANSWER_MAX));
    }
    cJSON_Delete(root);
    return r;
}

/* ---- JSON Schema (the structured-outputs subset) ---- */

typedef struct sv {
    const cJSON *root;
    char *why;
    size_t why_len;
    bool too_deep;
} sv_t;

static bool sv_fail(sv_t *s, const char *path, const char *what)
{
    if (s->why != NULL && s->why[0] == '\0')
        snprintf(s->why, s->why_len, "%s: %s", path[0] ? path : "(root)", what);
    return false;
}

/* Resolves a local $ref ("#", "#/$defs/x", "#/definitions/x", any JSON
 * pointer into the document); NULL when it does not resolve. */
static const cJSON *resolve_ref(const cJSON *root, const char *ref)
{
    const cJSON *cur = root;
    const char *p;
    if (ref[0] != '#')
        return NULL;
    p = ref + 1;
    while (*p == '/') {
        char tok[256];
        size_t o = 0;
        p++;
        while (*p && *p != '/' && o + 1 < sizeof tok) {
            if (p[0] == '~' && p[1] == '1') {
                tok[o++] = '/';
                p += 2;
            } else if (p[0] == '~' && p[1] == '0') {
                tok[o++] = '~';
                p += 2;
            } else {
                tok[o++] = *p++;
            }
        }
        tok[o] = '\0';
        if (cJSON_IsArray(cur)) {
            char *end;
            long i = strtol(tok, &end, 10);
            cur = (*end == '\0' && i >= 0) ? cJSON_GetArrayItem(cur, (int)i) : NULL;
        } else {
            cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
        }
        if (cur == NULL)
            return NULL;
    }
    return *p == '\0' ? cur : NULL;
}

static bool type_is(const char *t, const cJSON *v)
{
    if (strcmp(t, "null") == 0)
        return cJSON_IsNull(v);
    if (strcmp(t, "boolean") == 0)
        return cJSON_IsBool(v);
    if (strcmp(t, "object") == 0)
        return cJSON_IsObject(v);
    if (strcmp(t, "array") == 0)
        return cJSON_IsArray(v);
    if (strcmp(t, "string") == 0)
        return cJSON_IsString(v);
    if (strcmp(t, "number") == 0)
        return cJSON_IsNumber(v);
    if (strcmp(t, "integer") == 0)
        return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
               floor(v->valuedouble) == v->valuedouble;
    return true; /* an unknown type name never rejects */
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static bool num_kw(const cJSON *schema, const char *k, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(schema, k);
    if (!cJSON_IsNumber(v))
        return false;
    *out = v->valuedouble;
    return true;
}

static bool validate(sv_t *s, const cJSON *schema, const cJSON *v, const char *path, int depth);

static bool validate_object(sv_t *s, const cJSON *schema, const cJSON *v, const char *path,
                            int depth)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(schema, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(schema, "additionalProperties");
    const cJSON *it;
    char sub[512];
    double lim;
    int n = cJSON_GetArraySize(v);
    cJSON_ArrayForEach(it, req)
    {
        if (cJSON_IsString(it) && cJSON_GetObjectItemCaseSensitive(v, it->valuestring) == NULL) {
            snprintf(sub, sizeof sub, "missing required property \"%.100s\"", it->valuestring);
            return sv_fail(s, path, sub);
        }
    }
    if (num_kw(schema, "minProperties", &lim) && n < lim)
        return sv_fail(s, path, "too few properties");
    if (num_kw(schema, "maxProperties", &lim) && n > lim)
        return sv_fail(s, path, "too many properties");
    cJSON_ArrayForEach(it, v)
    {
        const cJSON *ps = cJSON_IsObject(props) ? cJSON_GetObjectItemCaseSensitive(props, it->string)
                                                : NULL;
        snprintf(sub, sizeof sub, "%s.%.100s", path, it->string);
        if (ps != NULL) {
            if (!validate(s, ps, it, sub, depth + 1))
                return false;
        } else if (cJSON_IsFalse(addl)) {
            return sv_fail(s, sub, "additional property not allowed");
        } else if (cJSON_IsObject(addl) && !validate(s, addl, it, sub, depth + 1)) {
            return false;
        }
    }
    return true;
}

static bool validate_array(sv_t *s, const cJSON *schema, const cJSON *v, const char *path,
                           int depth)
{
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(schema, "items");
    const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(schema, "prefixItems");
    const cJSON *it;
    int i = 0, n_prefix = cJSON_IsArray(prefix) ? cJSON_GetArraySize(prefix) : 0;
    double lim;
    char sub[512];
    if (num_kw(schema, "minItems", &lim) && cJSON_GetArraySize(v) < lim)
        return sv_fail(s, path, "too few items");
    if (num_kw(schema, "maxItems", &lim) && cJSON_GetArraySize(v) > lim)
        return sv_fail(s, path, "too many items");
    cJSON_ArrayForEach(it, v)
    {
        const cJSON *is = i < n_prefix ? cJSON_GetArrayItem(prefix, i) : items;
        snprintf(sub, sizeof sub, "%s[%d]", path, i);
        if (cJSON_IsFalse(is))
            return sv_fail(s, sub, "item not allowed");
        if (cJSON_IsObject(is) && !validate(s, is, it, sub, depth + 1))
            return false;
        i++;
    }
    return true;
}

static bool validate_scalar(sv_t *s, const cJSON *schema, const cJSON *v, const char *path)
{
    double lim;
    if (cJSON_IsString(v)) {
        size_t n = utf8_chars(v->valuestring);
        if (num_kw(schema, "minLength", &lim) && (double)n < lim)
            return sv_fail(s, path, "string too short");
        if (num_kw(schema, "maxLength", &lim) && (double)n > lim)
            return sv_fail(s, path, "string too long");
    } else if (cJSON_IsNumber(v)) {
        double x = v->valuedouble;
        if (num_kw(schema, "minimum", &lim) && x < lim)
            return sv_fail(s, path, "below minimum");
        if (num_kw(schema, "maximum", &lim) && x > lim)
            return sv_fail(s, path, "above maximum");
        if (num_kw(schema, "exclusiveMinimum", &lim) && x <= lim)
            return sv_fail(s, path, "not above exclusiveMinimum");
        if (num_kw(schema, "exclusiveMaximum", &lim) && x >= lim)
            return sv_fail(s, path, "not below exclusiveMaximum");
        if (num_kw(schema, "multipleOf", &lim) && lim > 0) {
            double q = x / lim;
            if (fabs(q - round(q)) > 1e-9 * fmax(1, fabs(q)))
                return sv_fail(s, path, "not a multiple of multipleOf");
        }
    }
    return true;
}

/* How many schemas of the list v satisfies (stops at 2: enough for oneOf). */
static int count_matching(sv_t *s, const cJSON *list, const cJSON *v, const char *path, int depth)
{
    const cJSON *alt;
    int n = 0;
    char *why = s->why;
    s->why = NULL; /* a failing alternative is not the reason */
    cJSON_ArrayForEach(alt, list)
    {
        if (validate(s, alt, v, path, depth + 1) && ++n == 2)
            break;
    }
    s->why = why;
    return n;
}

static bool validate(sv_t *s, const cJSON *schema, const cJSON *v, const char *path, int depth)
{
    const cJSON *ref, *type, *en, *cn, *list;
    if (cJSON_IsTrue(schema) || !cJSON_IsObject(schema))
        return true;
    if (cJSON_IsFalse(schema))
        return sv_fail(s, path, "no value is allowed here");
    if (depth > SCHEMA_DEPTH) {
        s->too_deep = true; /* not judged: accepted (see the header) */
        return true;
    }
    ref = cJSON_GetObjectItemCaseSensitive(schema, "$ref");
    if (cJSON_IsString(ref)) {
        const cJSON *target = resolve_ref(s->root, ref->valuestring);
        if (target != NULL && !validate(s, target, v, path, depth + 1))
            return false; /* an unresolvable $ref never rejects */
    }
    type = cJSON_GetObjectItemCaseSensitive(schema, "type");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(schema, "nullable")) && cJSON_IsNull(v))
        return true;
    if (cJSON_IsString(type) && !type_is(type->valuestring, v)) {
        char m[96];
        snprintf(m, sizeof m, "expected %.40s", type->valuestring);
        return sv_fail(s, path, m);
    }
    if (cJSON_IsArray(type)) {
        const cJSON *t;
        bool any = false;
        cJSON_ArrayForEach(t, type) any = any || (cJSON_IsString(t) && type_is(t->valuestring, v));
        if (!any)
            return sv_fail(s, path, "value of a type the schema does not allow");
    }
    en = cJSON_GetObjectItemCaseSensitive(schema, "enum");
    if (cJSON_IsArray(en)) {
        const cJSON *e;
        bool any = false;
        cJSON_ArrayForEach(e, en) any = any || cJSON_Compare(e, v, true);
        if (!any)
            return sv_fail(s, path, "not one of the enum values");
    }
    cn = cJSON_GetObjectItemCaseSensitive(schema, "const");
    if (cn != NULL && !cJSON_Compare(cn, v, true))
        return sv_fail(s, path, "not the const value");
    if ((list = cJSON_GetObjectItemCaseSensitive(schema, "anyOf")) != NULL && cJSON_IsArray(list) &&
        count_matching(s, list, v, path, depth) == 0)
        return sv_fail(s, path, "matches none of anyOf");
    if ((list = cJSON_GetObjectItemCaseSensitive(schema, "oneOf")) != NULL && cJSON_IsArray(list) &&
        count_matching(s, list, v, path, depth) != 1)
        return sv_fail(s, path, "does not match exactly one of oneOf");
    if ((list = cJSON_GetObjectItemCaseSensitive(schema, "allOf")) != NULL && cJSON_IsArray(list)) {
        const cJSON *alt;
        cJSON_ArrayForEach(alt, list) if (!validate(s, alt, v, path, depth + 1)) return false;
    }
    if ((list = cJSON_GetObjectItemCaseSensitive(schema, "not")) != NULL && cJSON_IsObject(list)) {
        char *why = s->why;
        bool m;
        s->why = NULL;
        m = validate(s, list, v, path, depth + 1);
        s->why = why;
        if (m)
            return sv_fail(s, path, "matches the schema under \"not\"");
    }
    if (cJSON_IsObject(v))
        return validate_object(s, schema, v, path, depth);
    if (cJSON_IsArray(v))
        return validate_array(s, schema, v, path, depth);
    return validate_scalar(s, schema, v, path);
}

bool cascade_schema_valid(const cJSON *schema, const cJSON *root, const cJSON *value, char *why,
                          size_t why_len)
{
    sv_t s = {.root = root ? root : schema, .why = why, .why_len = why_len};
    if (why != NULL && why_len > 0)
        why[0] = '\0';
    return validate(&s, schema, value, "", 0);
}

/* ---- the judge ---- */

char *cascade_judge_body(const config_t *cfg, const cascade_cfg_t *cc, const char *question,
                         const char *answer, size_t *len)
{
    cJSON *root = cJSON_CreateObject(), *msgs = cJSON_AddArrayToObject(root, "messages");
    cJSON *sys = cJSON_CreateObject(), *user = cJSON_CreateObject();
    buf_t b;
    char *out, *text;
    size_t tl;
    buf_init(&b, QUESTION_MAX + JUDGE_ANSWER_MAX + 256);
    buf_puts(&b, "Request:\n<<<\n");
    buf_puts(&b, question ? question : "");
    buf_puts(&b, "\n>>>\n\nAnswer:\n<<<\n");
    buf_puts(&b, answer ? answer : "");
    buf_puts(&b, "\n>>>\n\nScore (0 to 1):");
    text = buf_detach(&b, &tl);
    cJSON_AddStringToObject(root, "model", cfg->models[cc->judge_model].upstream);
    cJSON_AddStringToObject(sys, "role", "system");
    cJSON_AddStringToObject(sys, "content", cc->judge_rubric ? cc->judge_rubric : DEFAULT_RUBRIC);
    cJSON_AddItemToArray(msgs, sys);
    cJSON_AddStringToObject(user, "role", "user");
    cJSON_AddStringToObject(user, "content", text ? text : "");
    cJSON_AddItemToArray(msgs, user);
    cJSON_AddNumberToObject(root, "temperature", 0);
    cJSON_AddNumberToObject(root, "max_tokens", 8);
    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    free(text);
    if (out == NULL)
        abort(); /* only out of memory */
    *len = strlen(out);
    return out;
}

double cascade_judge_score(const char *content)
{
    const char *p = content;
    char *end;
    double x;
    if (p == NULL)
        return -1;
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == '*' || *p == '"')
        p++;
    if (!((*p >= '0' && *p <= '9') || *p == '.'))
        return -1;
    x = strtod(p, &end);
    if (end == p || !isfinite(x) || x < 0)
        return -1;
    if (strncmp(end, "/10", 3) == 0 || (x > 1 && x <= 10))
        x /= 10;
    return x <= 1 ? x : -1;
}

/* ---- the steps of a request ---- */

bool cascade_applies(const req_t *req)
{
    const config_t *cfg = req->cfg;
    const cfg_tier_t *t;
    if (req->ep != EP_CHAT || req->stream || req->route.tier < 0 ||
        (size_t)req->route.tier >= cfg->n_tiers)
        return false;
    t = &cfg->tiers[req->route.tier];
    if (t->cascade == NULL || t->n_models < 2)
        return false;
    if (req->route.rule == ROUTE_RULE_EXPLICIT) {
        /* the client named the tier (a cascade) or one of its models (that
         * model first, the tier as its failover chain) */
        size_t nl = strlen(t->name);
        const char *v = req->body.data + req->model_span.off;
        if (req->body.data == NULL || req->model_span.len != nl + 2 ||
            memcmp(v + 1, t->name, nl) != 0)
            return false;
    }
    return true;
}

cascade_run_t *cascade_run_new(const req_t *req)
{
    cascade_run_t *run = xcalloc(1, sizeof *run);
    run->cfg = req->cfg->tiers[req->route.tier].cascade;
    run->direct_usd = -1;
    run->kept_model = -1;
    cascade_ask_init(&run->ask, buf_ptr(&req->body), buf_len(&req->body));
    return run;
}

void cascade_run_free(cascade_run_t *run)
{
    if (run == NULL)
        return;
    cascade_ask_free(&run->ask);
    free(run->kept);
    free(run->pending_compact);
    free(run->pending_new);
    free(run);
}

cascade_step_t *cascade_add_step(cascade_run_t *run, int model, enum cascade_verdict v,
                                 enum cascade_reason r, double cost_usd)
{
    cascade_step_t *s;
    if (run->n_steps >= sizeof run->steps / sizeof run->steps[0])
        return NULL;
    s = &run->steps[run->n_steps++];
    s->model = model;
    s->verdict = v;
    s->reason = r;
    s->cost_usd = cost_usd;
    s->judge_score = -1;
    s->judge_usd = 0;
    return s;
}

size_t cascade_header(const config_t *cfg, const cascade_run_t *run, char *out, size_t n)
{
    size_t o = 0;
    if (n == 0)
        return 0;
    out[0] = '\0';
    for (size_t i = 0; run != NULL && i < run->n_steps; i++) {
        const cascade_step_t *s = &run->steps[i];
        int w;
        if (s->verdict == CASCADE_REJECTED || s->verdict == CASCADE_FINAL)
            w = snprintf(out + o, n - o, "%s%s:%s(%s)", i ? "," : "", cfg->models[s->model].name,
                         cascade_verdict_name(s->verdict), cascade_reason_name(s->reason));
        else
            w = snprintf(out + o, n - o, "%s%s:%s", i ? "," : "", cfg->models[s->model].name,
                         cascade_verdict_name(s->verdict));
        if (w < 0 || (size_t)w >= n - o) {
            out[o] = '\0'; /* only whole steps */
            break;
        }
        o += (size_t)w;
    }
    return o;
}
