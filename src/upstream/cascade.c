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

#include "core/jsonschema.h"
#include "core/util.h"
#include "http/request.h"
#include "route/experiment.h"
#include "route/router.h"

#define QUESTION_MAX 8000  /* bytes of the question the judge sees */
#define JUDGE_ANSWER_MAX 16000 /* bytes of the answer the judge sees */
#define REFUSAL_SCAN 240   /* a refusal opens the answer: only its head is read */

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
        } else if (ask->schema != NULL && !jsonschema_valid(ask->schema, ask->schema, v,
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
    {
        const exp_arm_t *a = experiment_arm_of(cfg, req->exp_arm, NULL);
        if (a != NULL && a->no_cascade) /* an experiment arm with cascade: false */
            return false;
    }
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
