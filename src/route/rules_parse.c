/* rules_parse: the rule language's parser and compiler — YAML `routing.rules`
 * to the tree of route/rules_tree.h: condition keys and their values checked
 * with file:line:column errors, keywords into one automaton, regexes compiled
 * once with PCRE2 (and a literal prefilter for each), a condition's children
 * ordered cheapest first. Runs at configuration load, on the loading thread.
 * The evaluator is src/route/rules.c. */
#include "route/rules_tree.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/json.h"
#include "core/util.h"
#include "route/textstat.h"
/* ---- parsing ---- */

static const char *const languages[] = {"zh", "ja", "ko", "ru", "ar", "hi", "el", "he", "th",
                                        "en", "es", "fr", "de", "pt", "it", "und", NULL};
static const char *const latin_languages[] = {"en", "es", "fr", "de", "pt", "it", "und", NULL};
static const char *const formats[] = {"text", "json_object", "json_schema", "json", NULL};

static bool one_of(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

static void cond_free(cond_t *k)
{
    for (size_t i = 0; i < k->n_kids; i++)
        cond_free(&k->kids[i]);
    free(k->kids);
    free(k->order);
    if (k->re)
        for (size_t i = 0; i < k->n_strs; i++)
            pcre2_code_free(k->re[i]);
    free(k->re);
    free(k->lit);
    free(k->lit_ks);
    free(k->n_lit);
    yw_strv_free(k->strs);
    free(k->kw);
    free(k->header);
}

static bool parse_map(ywalk_t *c, rules_t *rs, const yaml_node_t *map, enum scope scope,
                      cond_t *out, const char *where);

static bool parse_list_of_maps(ywalk_t *c, rules_t *rs, const yaml_node_t *n, enum scope scope,
                               cond_t *k, const char *what)
{
    size_t cnt;
    bool ok = true;
    if (!yw_expect(c, n, YAML_SEQUENCE_NODE, what))
        return false;
    cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (cnt == 0) {
        yw_error(c, n, "%s: the list is empty", what);
        return false;
    }
    k->kids = xcalloc(cnt, sizeof *k->kids);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++)
        ok = parse_map(c, rs, yw_node(c, *it), scope, &k->kids[k->n_kids++], what) && ok;
    return ok;
}

static bool parse_headers(ywalk_t *c, const yaml_node_t *n, enum cond_kind kind, cond_t *k,
                          const char *what)
{
    const char *name;
    yaml_node_t *kn, *v;
    bool ok = true;
    size_t cnt;
    if (!yw_expect(c, n, YAML_MAPPING_NODE, what))
        return false;
    cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    k->kind = C_ALL;
    if (cnt == 0) {
        yw_error(c, n, "%s: no headers given (expected {name: value, ...})", what);
        return false;
    }
    k->kids = xcalloc(cnt, sizeof *k->kids);
    YW_MAP_FOREACH(c, n, name, kn, v)
    {
        cond_t *h = &k->kids[k->n_kids++];
        char *val = yw_str(c, v, what);
        h->kind = kind;
        h->header = xstrdup(name);
        if (val == NULL) {
            ok = false;
            continue;
        }
        h->strs = xcalloc(2, sizeof *h->strs);
        h->strs[0] = val;
        h->n_strs = 1;
        if (kind == C_HEADER_REGEX)
            ok = rules_compile_res(c, v, what, h) && ok;
    }
    return ok;
}

/* complexity: {min: X, max: Y}, each in [0, 1], at least one. */
static bool parse_complexity(ywalk_t *c, const yaml_node_t *n, cond_t *k, const char *what)
{
    const char *key;
    yaml_node_t *kn, *v;
    bool ok = true, any = false;
    k->kind = C_COMPLEXITY;
    k->lo = 0;
    k->hi = 1;
    if (!yw_expect(c, n, YAML_MAPPING_NODE, what))
        return false;
    YW_MAP_FOREACH(c, n, key, kn, v)
    {
        char *s, *end = NULL;
        double x;
        if (strcmp(key, "min") != 0 && strcmp(key, "max") != 0) {
            yw_unknown_key(c, kn, what, "min, max");
            ok = false;
            continue;
        }
        s = yw_str(c, v, what);
        if (s == NULL) {
            ok = false;
            continue;
        }
        x = strtod(s, &end);
        if (s[0] == '\0' || *end != '\0' || !(x >= 0 && x <= 1)) {
            yw_error(c, v, "%s.%s: expected a score between 0 and 1, found \"%s\"", what, key, s);
            ok = false;
        } else if (key[1] == 'i') {
            k->lo = x;
        } else {
            k->hi = x;
        }
        any = true;
        free(s);
    }
    if (ok && !any) {
        yw_error(c, n, "%s: expected {min: X} and/or {max: Y} (scores between 0 and 1)", what);
        ok = false;
    }
    if (ok && k->lo > k->hi) {
        yw_error(c, n, "%s: min %g is above max %g: no score can match", what, k->lo, k->hi);
        ok = false;
    }
    return ok;
}

static bool parse_key(ywalk_t *c, rules_t *rs, const char *key, const yaml_node_t *v,
                      enum scope scope, cond_t *k, const char *where)
{
    static const struct {
        const char *name;
        enum cond_kind kind;
    } nums[] = {{"min_tokens", C_MIN_TOKENS},       {"max_tokens", C_MAX_TOKENS},
                {"min_messages", C_MIN_MESSAGES},   {"max_messages", C_MAX_MESSAGES},
                {"min_output_tokens", C_MIN_OUTPUT}, {"max_output_tokens", C_MAX_OUTPUT}},
      bools[] = {{"tools", C_TOOLS}, {"images", C_IMAGES}, {"audio", C_AUDIO}, {"stream", C_STREAM}},
      lists[] = {{"keywords", C_KEYWORDS},       {"keywords_all", C_KEYWORDS_ALL},
                 {"regex", C_REGEX},             {"script", C_SCRIPT},
                 {"language", C_LANGUAGE},       {"response_format", C_RESPONSE_FORMAT},
                 {"model", C_MODEL},             {"model_regex", C_MODEL_REGEX},
                 {"key", C_KEY},                 {"key_regex", C_KEY_REGEX}};
    char what[300];
    snprintf(what, sizeof what, "%s.%s", where, key);
    k->scope = scope;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(nums); i++) {
        if (strcmp(key, nums[i].name) == 0) {
            uint64_t u;
            k->kind = nums[i].kind;
            if (!yw_u64(c, v, what, 0, 1000000000000ull, &u))
                return false;
            k->num = (int64_t)u;
            return true;
        }
    }
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bools); i++) {
        if (strcmp(key, bools[i].name) == 0) {
            k->kind = bools[i].kind;
            return yw_bool(c, v, what, &k->flag);
        }
    }
    for (size_t i = 0; i < UTIL_ARRAY_LEN(lists); i++) {
        if (strcmp(key, lists[i].name) != 0)
            continue;
        k->kind = lists[i].kind;
        if (!yw_strv(c, v, what, &k->strs, &k->n_strs))
            return false;
        switch (k->kind) {
        case C_KEYWORDS:
        case C_KEYWORDS_ALL:
            k->kw = xcalloc(k->n_strs, sizeof *k->kw);
            for (size_t j = 0; j < k->n_strs; j++) {
                k->kw[j] = kwset_add(rs->kw, k->strs[j], strlen(k->strs[j]));
                if (k->kw[j] < 0) {
                    yw_error(c, v, "%s: keyword \"%.40s\" is empty or longer than 256 bytes", what,
                             k->strs[j]);
                    return false;
                }
            }
            return true;
        case C_REGEX:
            k->lit = xcalloc(k->n_strs, sizeof *k->lit);
            k->n_lit = xcalloc(k->n_strs, sizeof *k->n_lit);
            k->lit_ks = xcalloc(k->n_strs, sizeof *k->lit_ks);
            for (size_t j = 0; j < k->n_strs; j++)
                rules_regex_prefilter(rs, k, j);
            return rules_compile_res(c, v, what, k);
        case C_MODEL_REGEX:
        case C_KEY_REGEX:
            return rules_compile_res(c, v, what, k);
        case C_SCRIPT:
            for (size_t j = 0; j < k->n_strs; j++) {
                if (strcmp(k->strs[j], "cjk") != 0 && ts_script_parse(k->strs[j]) < 0) {
                    yw_error(c, v, "%s: unknown script \"%s\" (expected latin, cyrillic, greek, "
                                   "arabic, hebrew, devanagari, thai, han, kana, hangul, cjk, other, none)",
                             what, k->strs[j]);
                    return false;
                }
            }
            return true;
        case C_LANGUAGE:
            for (size_t j = 0; j < k->n_strs; j++) {
                for (char *q = k->strs[j]; *q; q++)
                    *q = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
                if (one_of(k->strs[j], latin_languages))
                    k->latin_lang = true;
                if (!one_of(k->strs[j], languages)) {
                    yw_error(c, v, "%s: unknown language \"%s\" (expected zh, ja, ko, ru, ar, hi, "
                                   "el, he, th, en, es, fr, de, pt, it or und)",
                             what, k->strs[j]);
                    return false;
                }
            }
            return true;
        case C_RESPONSE_FORMAT:
            for (size_t j = 0; j < k->n_strs; j++) {
                if (!one_of(k->strs[j], formats)) {
                    yw_error(c, v, "%s: expected text, json_object, json_schema or json, found "
                                   "\"%s\"",
                             what, k->strs[j]);
                    return false;
                }
            }
            return true;
        default:
            return true;
        }
    }
    if (strcmp(key, "complexity") == 0)
        return parse_complexity(c, v, k, what);
    if (strcmp(key, "classify") == 0) {
        const cfg_classifier_t *cl = &rs->cfg->classifier;
        k->kind = C_CLASSIFY;
        if (!yw_strv(c, v, what, &k->strs, &k->n_strs))
            return false;
        if (!cl->enabled) {
            yw_error(c, v, "%s: needs routing.classifier (the model that gives the label)", what);
            return false;
        }
        for (size_t j = 0; j < k->n_strs; j++) {
            bool known = false;
            for (size_t l = 0; l < cl->n_labels && !known; l++)
                known = strcmp(cl->labels[l], k->strs[j]) == 0;
            if (!known) {
                yw_error(c, v, "%s: \"%s\" is not a label of routing.classifier.labels", what,
                         k->strs[j]);
                return false;
            }
        }
        return true;
    }
    if (strcmp(key, "header") == 0)
        return parse_headers(c, v, C_HEADER, k, what);
    if (strcmp(key, "header_regex") == 0)
        return parse_headers(c, v, C_HEADER_REGEX, k, what);
    if (strcmp(key, "all") == 0 || strcmp(key, "any") == 0) {
        k->kind = key[1] == 'l' ? C_ALL : C_ANY;
        return parse_list_of_maps(c, rs, v, scope, k, what);
    }
    if (strcmp(key, "not") == 0) {
        k->kind = C_NOT;
        k->kids = xcalloc(1, sizeof *k->kids);
        k->n_kids = 1;
        return parse_map(c, rs, v, scope, &k->kids[0], what);
    }
    return false; /* caller reports the unknown key */
}

#define COND_KEYS                                                                                  \
    "scope, min_tokens, max_tokens, keywords, keywords_all, regex, script, language, "            \
    "response_format, tools, images, audio, stream, min_messages, max_messages, "                 \
    "min_output_tokens, max_output_tokens, model, model_regex, key, key_regex, header, "          \
    "header_regex, complexity, all, any, not, classify"

static bool is_cond_key(const char *k)
{
    static const char *const keys[] = {
        "min_tokens",   "max_tokens",   "keywords",          "keywords_all",      "regex",
        "script",       "language",     "response_format",   "tools",             "images",
        "audio",        "stream",       "min_messages",      "max_messages",      "min_output_tokens",
        "max_output_tokens", "model",   "model_regex",       "key",               "key_regex",
        "header",       "header_regex", "all",               "any",               "not",
        "complexity",   "classify",     NULL};
    return one_of(k, keys);
}

/* A mapping of conditions -> an `all` node. */
static bool parse_map(ywalk_t *c, rules_t *rs, const yaml_node_t *map, enum scope scope,
                      cond_t *out, const char *where)
{
    const char *k;
    yaml_node_t *kn, *v;
    bool ok = true, have_cond = false;
    size_t cnt;
    out->kind = C_ALL;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, where))
        return false;
    cnt = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    if (cnt == 0) {
        yw_error(c, map, "%s: no conditions (expected some of: %s)", where, COND_KEYS);
        return false;
    }
    /* scope first: it applies to every condition of this mapping */
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        if (strcmp(k, "scope") == 0) {
            char *s = yw_str(c, v, "scope");
            int sc = s ? prompt_scope_parse(s) : -1;
            if (s && sc < 0)
                yw_error(c, v, "%s.scope: expected last_user, user, system or conversation, "
                               "found \"%s\"",
                         where, s);
            if (sc >= 0)
                scope = (enum scope)sc;
            else
                ok = false;
            free(s);
        }
    }
    out->kids = xcalloc(cnt, sizeof *out->kids);
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        if (strcmp(k, "scope") == 0)
            continue;
        have_cond = true;
        if (!is_cond_key(k)) {
            yw_unknown_key(c, kn, where, COND_KEYS);
            ok = false;
            continue;
        }
        ok = parse_key(c, rs, k, v, scope, &out->kids[out->n_kids++], where) && ok;
    }
    if (!have_cond && ok) {
        yw_error(c, map, "%s: no conditions (\"scope\" alone is not one; expected some of: %s)", where,
                 COND_KEYS);
        ok = false;
    }
    return ok;
}

static bool parse_rule(ywalk_t *c, const config_t *cfg, rules_t *rs, rule_t *r,
                       const yaml_node_t *map, size_t index)
{
    const char *k;
    yaml_node_t *kn, *v, *when = NULL;
    bool ok = true, have_target = false;
    char where[200];
    snprintf(where, sizeof where, "routing.rules[%zu]", index);
    r->act.tier = -1;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, where))
        return false;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        char what[260];
        snprintf(what, sizeof what, "%s.%s", where, k);
        if (strcmp(k, "name") == 0) {
            free(r->name);
            r->name = yw_str(c, v, what);
            ok = r->name != NULL && ok;
        } else if (strcmp(k, "when") == 0) {
            when = v;
        } else if (strcmp(k, "tier") == 0) {
            char *s = yw_str(c, v, what);
            have_target = true;
            if (s && (r->act.tier = config_find_tier(cfg, s)) < 0) {
                yw_error(c, v, "%s: no tier named \"%s\" is defined under tiers", what, s);
                ok = false;
            }
            ok = s != NULL && ok;
            free(s);
        } else if (strcmp(k, "chain") == 0) {
            char **names = NULL;
            size_t n = 0;
            have_target = true;
            if (!yw_strv(c, v, what, &names, &n) || n > 31) {
                if (names)
                    yw_error(c, v, "%s: a chain has 1 to 31 models", what);
                ok = false;
            } else {
                r->chain = xcalloc(n, sizeof *r->chain);
                for (size_t i = 0; i < n; i++) {
                    r->chain[i] = config_find_model(cfg, names[i]);
                    if (r->chain[i] < 0) {
                        yw_error(c, v, "%s: no model named \"%s\" is defined under models", what,
                                 names[i]);
                        ok = false;
                    }
                }
                r->act.n_chain = n;
            }
            yw_strv_free(names);
        } else if (strcmp(k, "classify") == 0) {
            /* the action: the tier is the one of the classifier's label */
            if (yw_bool(c, v, what, &r->act.classify) && r->act.classify) {
                have_target = true;
                if (!cfg->classifier.enabled) {
                    yw_error(c, v, "%s: needs routing.classifier (the model that gives the label)",
                             what);
                    ok = false;
                }
            } else {
                ok = ok && !r->act.classify;
            }
        } else if (strcmp(k, "tags") == 0) {
            size_t n = 0;
            ok = yw_strv(c, v, what, &r->tags, &n) && ok;
            r->act.n_tags = n;
        } else if (strcmp(k, "cache") == 0) {
            bool on;
            if (v->type == YAML_MAPPING_NODE) {
                const char *ck;
                yaml_node_t *ckn, *cv;
                char ttlwhat[300];
                snprintf(ttlwhat, sizeof ttlwhat, "%s.ttl_s", what);
                YW_MAP_FOREACH(c, v, ck, ckn, cv)
                {
                    uint64_t ttl;
                    if (strcmp(ck, "ttl_s") != 0) {
                        yw_unknown_key(c, ckn, what, "ttl_s");
                        ok = false;
                    } else if (yw_u64(c, cv, ttlwhat, 1, 31536000, &ttl)) {
                        r->act.cache = RULE_CACHE_TTL;
                        r->act.cache_ttl_s = (unsigned)ttl;
                    } else {
                        ok = false;
                    }
                }
            } else if (yw_bool(c, v, what, &on)) {
                r->act.cache = on ? RULE_CACHE_DEFAULT : RULE_CACHE_OFF;
            } else {
                ok = false;
            }
        } else {
            yw_unknown_key(c, kn, where, "name, when, tier, chain, cache, tags, classify");
            ok = false;
        }
    }
    if (r->name == NULL) {
        yw_error(c, map, "%s: missing \"name\" (shown in x-router-rule, logs and metrics)", where);
        ok = false;
    } else if (strcmp(r->name, "default") == 0 || strcmp(r->name, "explicit") == 0 ||
               strcmp(r->name, "client-tier") == 0) {
        yw_error(c, map, "%s: the rule name \"%s\" is reserved", where, r->name);
        ok = false;
    }
    if (!have_target) {
        yw_error(c, map, "%s: needs a \"tier\" or a \"chain\" (or \"classify: true\")", where);
        ok = false;
    } else if (r->act.tier >= 0 && r->chain != NULL) {
        yw_error(c, map, "%s: give either \"tier\" or \"chain\", not both", where);
        ok = false;
    } else if (r->act.classify && (r->act.tier >= 0 || r->chain != NULL)) {
        yw_error(c, map, "%s: \"classify: true\" takes the tier from the label: give no \"tier\" "
                         "or \"chain\"",
                 where);
        ok = false;
    }
    if (when == NULL) {
        yw_error(c, map, "%s: missing \"when\" (the conditions; a catch-all is the default tier)",
                 where);
        ok = false;
    } else {
        char w[220];
        snprintf(w, sizeof w, "%s.when", where);
        ok = parse_map(c, rs, when, SCOPE_LAST_USER, &r->when, w) && ok;
    }
    r->act.name = r->name;
    r->act.chain = r->chain;
    r->act.tags = (const char *const *)r->tags;
    return ok;
}

/* A rough cost class per condition: request shape < token counts <
 * keywords (one shared scan) < language < regexes; combinators cost their
 * most expensive child. */
static unsigned cond_cost(const cond_t *k)
{
    unsigned m = 0;
    switch (k->kind) {
    case C_ALL:
    case C_ANY:
    case C_NOT:
        for (size_t i = 0; i < k->n_kids; i++) {
            unsigned c = cond_cost(&k->kids[i]);
            m = c > m ? c : m;
        }
        return m;
    case C_MIN_TOKENS:
    case C_MAX_TOKENS:
    case C_SCRIPT:
        return 1;
    case C_KEYWORDS:
    case C_KEYWORDS_ALL:
        return 2;
    case C_LANGUAGE:
    case C_COMPLEXITY: /* one pass over the last user message, and its language */
        return 3;
    case C_REGEX:
        return 4;
    case C_CLASSIFY:
        return 9; /* a model call: last, so the other conditions may decide without it */
    default:
        return 0;
    }
}

static void order_kids(cond_t *k)
{
    if (k->n_kids == 0)
        return;
    for (size_t i = 0; i < k->n_kids; i++)
        order_kids(&k->kids[i]);
    k->order = xcalloc(k->n_kids, sizeof *k->order);
    for (size_t i = 0; i < k->n_kids; i++)
        k->order[i] = (unsigned)i;
    for (size_t i = 1; i < k->n_kids; i++) { /* stable insertion sort */
        unsigned x = k->order[i];
        size_t j = i;
        while (j > 0 && cond_cost(&k->kids[k->order[j - 1]]) > cond_cost(&k->kids[x])) {
            k->order[j] = k->order[j - 1];
            j--;
        }
        k->order[j] = x;
    }
}

rules_t *rules_parse(ywalk_t *c, const struct config *cfg, yaml_node_t *list)
{
    rules_t *rs;
    size_t cnt;
    bool ok = true;
    if (!yw_expect(c, list, YAML_SEQUENCE_NODE, "routing.rules"))
        return NULL;
    cnt = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    rs = xcalloc(1, sizeof *rs);
    rs->kw = kwset_new();
    rs->cfg = cfg;
    rs->scorer = cfg->scorer ? cfg->scorer : scorer_builtin();
    rs->v = xcalloc(cnt ? cnt : 1, sizeof *rs->v);
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top;
         it++) {
        rule_t *r = &rs->v[rs->n++];
        ok = parse_rule(c, cfg, rs, r, yw_node(c, *it), rs->n - 1) && ok;
        for (size_t j = 0; r->name && j + 1 < rs->n; j++) {
            if (rs->v[j].name && strcmp(rs->v[j].name, r->name) == 0) {
                yw_error(c, yw_node(c, *it), "routing.rules: two rules are named \"%s\"", r->name);
                ok = false;
            }
        }
    }
    for (size_t i = 0; ok && i < rs->n; i++)
        order_kids(&rs->v[i].when);
    if (ok && kwset_compile(rs->kw) < 0) {
        yw_error(c, list, "routing.rules: cannot build the keyword automaton");
        ok = false;
    }
    if (!ok) {
        rules_free(rs);
        return NULL;
    }
    return rs;
}

void rules_free(rules_t *rs)
{
    if (rs == NULL)
        return;
    for (size_t i = 0; i < rs->n; i++) {
        cond_free(&rs->v[i].when);
        free(rs->v[i].name);
        free(rs->v[i].chain);
        yw_strv_free(rs->v[i].tags);
    }
    free(rs->v);
    kwset_free(rs->kw);
    free(rs);
}

size_t rules_count(const rules_t *rs)
{
    return rs ? rs->n : 0;
}

const rule_action_t *rules_action(const rules_t *rs, size_t i)
{
    return &rs->v[i].act;
}

