/* rules: parse, compile and evaluate routing rules.
 *
 * A rule's `when` mapping becomes a tree of cond_t; every key of a mapping is
 * one child of an implicit `all`. Text conditions carry the scope they read
 * (inherited from the nearest `scope:` above them, last_user by default).
 * Keywords of every rule go into one automaton, so a scope's text is scanned
 * once however many rules and keywords there are; regexes are compiled once
 * with PCRE2 (JIT when available). Evaluation is lazy: a scope's text, stats,
 * language and keyword hits are computed only when a condition needs them
 * (prompt.c caches them). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "route/rules.h"

#include <pcre2.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/json.h"
#include "route/keywords.h"
#include "route/textstat.h"
#include "core/util.h"

enum cond_kind {
    C_ALL,
    C_ANY,
    C_NOT,
    C_MIN_TOKENS,
    C_MAX_TOKENS,
    C_KEYWORDS,
    C_KEYWORDS_ALL,
    C_REGEX,
    C_SCRIPT,
    C_LANGUAGE,
    C_RESPONSE_FORMAT,
    C_TOOLS,
    C_IMAGES,
    C_AUDIO,
    C_STREAM,
    C_MIN_MESSAGES,
    C_MAX_MESSAGES,
    C_MIN_OUTPUT,
    C_MAX_OUTPUT,
    C_MODEL,
    C_MODEL_REGEX,
    C_KEY,
    C_KEY_REGEX,
    C_HEADER,
    C_HEADER_REGEX,
};

#define REGEX_MAX_ALTS 8

typedef struct cond {
    enum cond_kind kind;
    enum scope scope;
    int64_t num;
    bool flag;
    char **strs; /* names, or the source text of keywords / patterns */
    size_t n_strs;
    int *kw; /* keyword ids */
    pcre2_code **re;
    /* per regex: ids of literals one of which every match contains (one per
     * top-level alternative; prefilter), n_lit 0 = none; lit_ks: some holds
     * 'k' or 's' (see regex_literal) */
    int (*lit)[REGEX_MAX_ALTS];
    unsigned char *n_lit;
    bool *lit_ks;
    char *header; /* header name */
    struct cond *kids;
    size_t n_kids;
    unsigned *order;  /* kids in increasing cost (evaluation order unless explaining) */
    bool latin_lang;  /* C_LANGUAGE: lists a Latin-script language (needs stop words) */
} cond_t;

typedef struct rule {
    rule_action_t act;
    char *name;
    int *chain;
    char **tags;
    cond_t when;
} rule_t;

struct rules {
    rule_t *v;
    size_t n;
    kwset_t *kw;
};

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

static pcre2_code *compile_re(ywalk_t *c, const yaml_node_t *n, const char *what, const char *pat)
{
    int errcode;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_CASELESS,
                                   &errcode,
                                   &off, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        yw_error(c, n, "%s: invalid regular expression /%s/: %s at offset %zu", what, pat,
                 (const char *)msg, (size_t)off);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    return re;
}

/* The longest run of ASCII characters that every match of pat must contain,
 * copied to out (NUL-terminated); 0 when there is none of at least 3 bytes or
 * the pattern is beyond this conservative reading (top-level alternation,
 * option settings other than (?i)/(?-i)/(?:, \Q...\E). A run ends at
 * anything that is not a plain character: classes, groups, escapes of
 * letters or digits, anchors, dots; a character made optional by ?, * or {
 * is dropped. The keyword automaton matches it ASCII-case-insensitively,
 * a superset of what the regex needs — except that caseless Unicode
 * matching also lets 'k' match U+212A and 's' U+017F, which the caller
 * handles through *has_ks. */
static size_t regex_literal(const char *pat, char *out, size_t cap, bool *has_ks)
{
    char run[257];
    size_t n = 0, best = 0;
    int depth = 0;
    const char *p = pat;
    *has_ks = false;
    if (strncmp(p, "(?i)", 4) == 0)
        p += 4;
    else if (strncmp(p, "(?-i)", 5) == 0)
        p += 5;
#define FLUSH()                                                                                    \
    do {                                                                                           \
        if (n > best && n < cap) {                                                                 \
            memcpy(out, run, n);                                                                   \
            out[n] = '\0';                                                                         \
            best = n;                                                                              \
        }                                                                                          \
        n = 0;                                                                                     \
    } while (0)
    for (; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '(' && p[1] == '?' && p[2] != ':')
            return 0; /* options, lookarounds, named groups: do not guess */
        if (ch == '\\' && p[1] == 'Q')
            return 0;
        if (depth > 0) {
            if (ch == '\\' && p[1])
                p++;
            else if (ch == '(')
                depth++;
            else if (ch == ')')
                depth--;
            else if (ch == '[') {
                for (p++; *p && *p != ']'; p++) {
                    if (*p == '[')
                        return 0;
                    if (*p == '\\' && p[1])
                        p++;
                }
                if (!*p)
                    return 0;
            }
            continue;
        }
        switch (ch) {
        case '|':
            return 0;
        case '(':
            FLUSH();
            depth++;
            continue;
        case '[':
            FLUSH();
            p++;
            if (*p == '^')
                p++;
            if (*p == ']')
                p++;
            for (; *p && *p != ']'; p++) {
                if (*p == '[')
                    return 0; /* POSIX classes [:alpha:] and the like */
                if (*p == '\\' && p[1])
                    p++;
            }
            if (!*p)
                return 0;
            continue;
        case '?':
        case '*':
        case '{':
            if (n > 0)
                n--; /* the last character is optional */
            FLUSH();
            if (ch == '{')
                while (p[1] && *p != '}')
                    p++;
            continue;
        case '+':
            FLUSH();
            continue;
        case '.':
        case '^':
        case '$':
        case ')':
            FLUSH();
            continue;
        case '\\':
            if (p[1] == '\0')
                return 0;
            p++;
            ch = (unsigned char)*p;
            if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) {
                /* one-letter escapes (classes, anchors, control characters)
                 * end the run; longer ones (\x41, \101, \cA, \pL, \g1,
                 * \k<n>, \N{...}, \o{...}) could stand for text: give up */
                if (strchr("bBsSwWdDhHvVRAzZGKntrfea", ch) == NULL)
                    return 0;
                FLUSH();
                continue;
            }
            break; /* an escaped punctuation character is itself */
        default:
            break;
        }
        if (ch >= 0x80 || ch < 0x20) {
            FLUSH();
            continue;
        }
        if (n < sizeof run - 1)
            run[n++] = (char)ch;
    }
    FLUSH();
#undef FLUSH
    if (best < 3)
        return 0;
    for (size_t i = 0; i < best; i++)
        if (out[i] == 'k' || out[i] == 'K' || out[i] == 's' || out[i] == 'S')
            *has_ks = true;
    return best;
}

/* Splits pat at its top-level '|' and gives every alternative its required
 * literal; the regex gets a prefilter only if every alternative has one. */
static void regex_prefilter(rules_t *rs, cond_t *k, size_t j)
{
    const char *pat = k->strs[j], *start = pat, *p;
    int depth = 0;
    unsigned n = 0;
    int ids[REGEX_MAX_ALTS];
    bool ks_any = false;
    for (p = pat;; p++) {
        if (*p == '\\' && p[1]) {
            p++;
            continue;
        }
        if (*p == '[') { /* skip a class */
            for (p++; *p && *p != ']'; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (!*p)
                return;
            continue;
        }
        if (*p == '(')
            depth++;
        else if (*p == ')')
            depth--;
        if (*p == '\0' || (*p == '|' && depth == 0)) {
            char alt[1024], lit[257];
            size_t len = (size_t)(p - start), ln;
            bool ks;
            if (len >= sizeof alt || n == REGEX_MAX_ALTS)
                return;
            memcpy(alt, start, len);
            alt[len] = '\0';
            ln = regex_literal(alt, lit, sizeof lit, &ks);
            if (ln == 0)
                return; /* an alternative without a literal: always run */
            ids[n] = kwset_add_substring(rs->kw, lit, ln);
            if (ids[n++] < 0)
                return;
            ks_any = ks_any || ks;
            if (*p == '\0')
                break;
            start = p + 1;
        }
    }
    memcpy(k->lit[j], ids, n * sizeof *ids);
    k->n_lit[j] = (unsigned char)n;
    k->lit_ks[j] = ks_any;
}

/* n is the pattern's node, or the list holding the patterns in order. */
static bool compile_res(ywalk_t *c, const yaml_node_t *n, const char *what, cond_t *k)
{
    bool ok = true;
    k->re = xcalloc(k->n_strs, sizeof *k->re);
    for (size_t i = 0; i < k->n_strs; i++) {
        const yaml_node_t *at = n;
        if (n->type == YAML_SEQUENCE_NODE && (size_t)(n->data.sequence.items.top -
                                                      n->data.sequence.items.start) > i)
            at = yw_node(c, n->data.sequence.items.start[i]);
        k->re[i] = compile_re(c, at, what, k->strs[i]);
        ok = ok && k->re[i] != NULL;
    }
    return ok;
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
            ok = compile_res(c, v, what, h) && ok;
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
                regex_prefilter(rs, k, j);
            return compile_res(c, v, what, k);
        case C_MODEL_REGEX:
        case C_KEY_REGEX:
            return compile_res(c, v, what, k);
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
    "header_regex, all, any, not"

static bool is_cond_key(const char *k)
{
    static const char *const keys[] = {
        "min_tokens",   "max_tokens",   "keywords",          "keywords_all",      "regex",
        "script",       "language",     "response_format",   "tools",             "images",
        "audio",        "stream",       "min_messages",      "max_messages",      "min_output_tokens",
        "max_output_tokens", "model",   "model_regex",       "key",               "key_regex",
        "header",       "header_regex", "all",               "any",               "not",
        NULL};
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
            yw_unknown_key(c, kn, where, "name, when, tier, chain, cache, tags");
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
        yw_error(c, map, "%s: needs a \"tier\" or a \"chain\"", where);
        ok = false;
    } else if (r->act.tier >= 0 && r->chain != NULL) {
        yw_error(c, map, "%s: give either \"tier\" or \"chain\", not both", where);
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
        return 3;
    case C_REGEX:
        return 4;
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

/* ---- evaluation ---- */

typedef struct evalctx {
    const rules_t *rs;
    prompt_t *p;
    const rule_ctx_t *ctx;
    pcre2_match_data *md;
    buf_t *why; /* explain: JSON strings of the current rule, or NULL */
    unsigned depth;
    bool first_why;
} evalctx_t;

static bool re_match(evalctx_t *e, const pcre2_code *re, const char *s, size_t n)
{
    if (e->md == NULL)
        e->md = pcre2_match_data_create(1, NULL);
    return e->md != NULL && pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, e->md, NULL) >= 0;
}

static bool any_re(evalctx_t *e, const cond_t *k, const char *s, size_t n, size_t *which)
{
    for (size_t i = 0; i < k->n_strs; i++) {
        if (re_match(e, k->re[i], s, n)) {
            *which = i;
            return true;
        }
    }
    return false;
}

/* Text regexes: a pattern whose required literal is absent from the scope
 * (one bit of the scope's keyword scan, already paid for) cannot match, so
 * it is not run. */
static bool scope_re(evalctx_t *e, const cond_t *k, const char *s, size_t n, size_t *which)
{
    const uint64_t *hits = NULL;
    bool ascii = false, have_ascii = false;
    for (size_t i = 0; i < k->n_strs; i++) {
        if (k->n_lit[i] > 0) {
            bool seen = false;
            if (hits == NULL)
                hits = prompt_keywords(e->p, k->scope, e->rs->kw);
            for (unsigned a = 0; a < k->n_lit[i] && !seen; a++) {
                int id = k->lit[i][a];
                seen = id >= 0 && (hits[id / 64] >> (id % 64) & 1);
            }
            if (!seen) {
                if (!k->lit_ks[i])
                    continue;
                /* caseless 'k'/'s' also match U+212A/U+017F: skip only in
                 * pure-ASCII text */
                if (!have_ascii) {
                    const ts_stats_t *st = prompt_stats(e->p, k->scope);
                    ascii = st->bytes == st->codepoints;
                    have_ascii = true;
                }
                if (ascii)
                    continue;
            }
        }
        if (re_match(e, k->re[i], s, n)) {
            *which = i;
            return true;
        }
    }
    return false;
}

static bool in_list(const cond_t *k, const char *s, size_t *which)
{
    for (size_t i = 0; s && i < k->n_strs; i++) {
        if (strcmp(k->strs[i], s) == 0) {
            *which = i;
            return true;
        }
    }
    return false;
}

/* Explain output: one JSON string per condition, indented by depth.
 * Returns the buffer offset of its "yes:"/"no: " marker (for combinators,
 * whose result is known only after their children), or SIZE_MAX. */
__attribute__((format(printf, 3, 4))) static size_t why_fn(evalctx_t *e, bool result,
                                                            const char *fmt, ...)
{
    char line[400];
    size_t o, mark;
    va_list ap;
    int n;
    if (e->why == NULL)
        return SIZE_MAX;
    o = (size_t)snprintf(line, sizeof line, "%*s%s ", (int)(e->depth * 2), "",
                         result ? "yes:" : "no: ");
    va_start(ap, fmt);
    n = vsnprintf(line + o, sizeof line - o, fmt, ap);
    va_end(ap);
    o = n < 0 ? o : o + (size_t)n < sizeof line ? o + (size_t)n : sizeof line - 1;
    if (!e->first_why)
        buf_puts(e->why, ",");
    e->first_why = false;
    mark = buf_len(e->why) + 1 + e->depth * 2; /* past the opening quote and indent */
    json_append_string(e->why, line, o);
    return mark;
}

/* Arguments are evaluated only when explaining. */
#define why(e, result, ...) ((e)->why ? why_fn((e), (result), __VA_ARGS__) : SIZE_MAX)

static void why_patch(evalctx_t *e, size_t mark, bool result)
{
    if (e->why != NULL && mark != SIZE_MAX)
        memcpy(e->why->data + e->why->r + mark, result ? "yes:" : "no: ", 4);
}

static const char *header_value(evalctx_t *e, const char *name)
{
    return e->ctx->header ? e->ctx->header(e->ctx->header_arg, name) : NULL;
}

static bool eval(evalctx_t *e, const cond_t *k);

static bool eval_kids(evalctx_t *e, const cond_t *k, bool any)
{
    bool res = !any;
    e->depth++;
    for (size_t i = 0; i < k->n_kids; i++) {
        /* conditions have no side effects: cheap ones first, unless
         * explaining (then in the order written) */
        bool r = eval(e, &k->kids[e->why || !k->order ? i : k->order[i]]);
        if (any ? r : !r) {
            res = any;
            if (e->why == NULL)
                break; /* short-circuit unless explaining */
        }
    }
    e->depth--;
    return res;
}

static bool eval(evalctx_t *e, const cond_t *k)
{
    prompt_t *p = e->p;
#define sc prompt_scope_name(k->scope)
    size_t w = 0;
    bool r;
    switch (k->kind) {
    case C_ALL:
    case C_ANY: {
        size_t mark;
        if (k->n_kids == 1 && k->kind == C_ALL)
            return eval(e, &k->kids[0]);
        mark = why(e, true, "%s of:", k->kind == C_ALL ? "all" : "any");
        r = eval_kids(e, k, k->kind == C_ANY);
        why_patch(e, mark, r);
        return r;
    }
    case C_NOT: {
        size_t mark = why(e, true, "not:");
        r = !eval_kids(e, k, false);
        why_patch(e, mark, r);
        return r;
    }
    case C_MIN_TOKENS:
    case C_MAX_TOKENS: {
        uint32_t t = prompt_stats(p, k->scope)->tokens;
        r = k->kind == C_MIN_TOKENS ? t >= k->num : t <= k->num;
        why(e, r, "%s %lld: %u estimated tokens in %s",
            k->kind == C_MIN_TOKENS ? "min_tokens" : "max_tokens", (long long)k->num, t, sc);
        return r;
    }
    case C_KEYWORDS:
    case C_KEYWORDS_ALL: {
        const uint64_t *hits = prompt_keywords(p, k->scope, e->rs->kw);
        bool all = k->kind == C_KEYWORDS_ALL;
        size_t found = 0, first = 0, missing = 0;
        bool have_first = false, have_missing = false;
        for (size_t i = 0; i < k->n_strs; i++) {
            int id = k->kw[i];
            if (hits[id / 64] >> (id % 64) & 1) {
                found++;
                if (!have_first) {
                    first = i;
                    have_first = true;
                }
                if (!all && e->why == NULL)
                    break;
            } else if (!have_missing) {
                missing = i;
                have_missing = true;
                if (all && e->why == NULL)
                    break;
            }
        }
        r = all ? found == k->n_strs : found > 0;
        if (r && !all)
            why(e, r, "keywords in %s: found \"%s\"", sc, k->strs[first]);
        else if (r)
            why(e, r, "keywords_all in %s: all %zu found", sc, k->n_strs);
        else if (all)
            why(e, r, "keywords_all in %s: \"%s\" not found", sc, k->strs[missing]);
        else
            why(e, r, "keywords in %s: none of %zu found", sc, k->n_strs);
        return r;
    }
    case C_REGEX: {
        const char *t;
        size_t n;
        prompt_text(p, k->scope, &t, &n);
        r = scope_re(e, k, t, n, &w);
        if (r)
            why(e, r, "regex in %s: /%s/ matches", sc, k->strs[w]);
        else
            why(e, r, "regex in %s: no pattern of %zu matches", sc, k->n_strs);
        return r;
    }
    case C_SCRIPT: {
        enum ts_script d = ts_dominant_script(prompt_stats(p, k->scope));
        r = false;
        for (size_t i = 0; i < k->n_strs && !r; i++)
            r = ts_script_matches(d, k->strs[i]);
        why(e, r, "script of %s is %s", sc, ts_script_name(d));
        return r;
    }
    case C_LANGUAGE: {
        const char *lang;
        if (!k->latin_lang && e->why == NULL) {
            /* only non-Latin languages listed: a Latin-script text cannot
             * match, and the stop-word pass is not needed to know it */
            enum ts_script d = ts_dominant_script(prompt_stats(p, k->scope));
            if (d == TS_SCRIPT_LATIN || d == TS_SCRIPT_NONE)
                return false;
        }
        lang = prompt_language(p, k->scope);
        r = in_list(k, lang, &w);
        why(e, r, "language of %s is %s", sc, lang);
        return r;
    }
    case C_RESPONSE_FORMAT: {
        const char *f = p->response_format ? p->response_format : "text";
        r = false;
        for (size_t i = 0; i < k->n_strs && !r; i++)
            r = strcmp(k->strs[i], f) == 0 ||
                (strcmp(k->strs[i], "json") == 0 && strncmp(f, "json", 4) == 0);
        why(e, r, "response_format is %s", f);
        return r;
    }
    case C_TOOLS:
        r = p->tools == k->flag;
        why(e, r, "tools %s", p->tools ? "present" : "absent");
        return r;
    case C_IMAGES:
        r = p->images == k->flag;
        why(e, r, "images %s", p->images ? "present" : "absent");
        return r;
    case C_AUDIO:
        r = p->audio == k->flag;
        why(e, r, "audio %s", p->audio ? "present" : "absent");
        return r;
    case C_STREAM:
        r = p->stream == k->flag;
        why(e, r, "stream is %s", p->stream ? "true" : "false");
        return r;
    case C_MIN_MESSAGES:
    case C_MAX_MESSAGES:
        r = k->kind == C_MIN_MESSAGES ? p->n_messages >= k->num : p->n_messages <= k->num;
        why(e, r, "%s %lld: %u messages", k->kind == C_MIN_MESSAGES ? "min_messages" : "max_messages",
            (long long)k->num, p->n_messages);
        return r;
    case C_MIN_OUTPUT:
    case C_MAX_OUTPUT:
        r = p->max_output >= 0 &&
            (k->kind == C_MIN_OUTPUT ? p->max_output >= k->num : p->max_output <= k->num);
        if (p->max_output < 0)
            why(e, r, "%s %lld: the request sets no max_tokens",
                k->kind == C_MIN_OUTPUT ? "min_output_tokens" : "max_output_tokens", (long long)k->num);
        else
            why(e, r, "%s %lld: max_tokens is %lld",
                k->kind == C_MIN_OUTPUT ? "min_output_tokens" : "max_output_tokens", (long long)k->num,
                (long long)p->max_output);
        return r;
    case C_MODEL:
        r = in_list(k, e->ctx->model, &w);
        why(e, r, "model is \"%s\"", e->ctx->model ? e->ctx->model : "");
        return r;
    case C_KEY:
        r = in_list(k, e->ctx->key_name, &w);
        why(e, r, "key is \"%s\"", e->ctx->key_name ? e->ctx->key_name : "");
        return r;
    case C_MODEL_REGEX:
    case C_KEY_REGEX: {
        const char *s = k->kind == C_MODEL_REGEX ? e->ctx->model : e->ctx->key_name;
        s = s ? s : "";
        r = any_re(e, k, s, strlen(s), &w);
        why(e, r, "%s \"%s\" %s", k->kind == C_MODEL_REGEX ? "model" : "key", s,
            r ? "matches" : "matches no pattern");
        return r;
    }
    case C_HEADER:
    case C_HEADER_REGEX: {
        const char *v = header_value(e, k->header);
        if (v == NULL)
            r = false;
        else if (k->kind == C_HEADER)
            r = strcmp(v, k->strs[0]) == 0;
        else
            r = re_match(e, k->re[0], v, strlen(v));
        why(e, r, "header %s is %s%s%s", k->header, v ? "\"" : "", v ? v : "absent", v ? "\"" : "");
        return r;
    }
    }
#undef sc
    return false;
}

int rules_eval(const rules_t *rs, prompt_t *p, const rule_ctx_t *ctx, buf_t *explain)
{
    evalctx_t e = {.rs = rs, .p = p, .ctx = ctx};
    int winner = -1;
    if (rs == NULL)
        return -1;
    if (explain)
        buf_puts(explain, "[");
    for (size_t i = 0; i < rs->n; i++) {
        bool r;
        if (explain) {
            if (i)
                buf_puts(explain, ",");
            buf_puts(explain, "{\"rule\":");
            json_append_string(explain, rs->v[i].name, strlen(rs->v[i].name));
            buf_puts(explain, ",\"why\":[");
            e.why = explain;
            e.first_why = true;
        }
        r = eval(&e, &rs->v[i].when);
        if (explain) {
            buf_puts(explain, "],\"matched\":");
            buf_puts(explain, r ? "true}" : "false}");
        }
        if (r && winner < 0) {
            winner = (int)i;
            if (!explain)
                break;
        }
    }
    if (explain)
        buf_puts(explain, "]");
    if (e.md)
        pcre2_match_data_free(e.md);
    return winner;
}
