/* rules: evaluation of the compiled routing rules (parsed by
 * src/route/rules_parse.c into route/rules_tree.h).
 *
 * A rule's `when` mapping is a tree of cond_t; every key of a mapping is
 * one child of an implicit `all`. Text conditions carry the scope they read
 * (inherited from the nearest `scope:` above them, last_user by default).
 * Keywords of every rule are in one automaton, so a scope's text is scanned
 * once however many rules and keywords there are; regexes were compiled once
 * with PCRE2 (JIT when available). Evaluation is lazy: a scope's text, stats,
 * language and keyword hits are computed only when a condition needs them
 * (prompt.c caches them). */
#include "route/rules_tree.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/json.h"
#include "core/util.h"
#include "route/keywords.h"
#include "route/textstat.h"

/* ---- evaluation ---- */

typedef struct evalctx {
    const rules_t *rs;
    prompt_t *p;
    const rule_ctx_t *ctx;
    pcre2_match_data *md;
    buf_t *why; /* explain: JSON strings of the current rule, or NULL */
    size_t rule; /* index of the rule being evaluated */
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

/* eval() is three-valued: a classify condition before the label is asked
 * for is unknown (T_UNK), and all/any/not combine it as Kleene logic does —
 * so a rule is "decided" without the classifier exactly when its other
 * conditions settle it whatever the label. */
#define T_UNK 2

static int eval(evalctx_t *e, const cond_t *k);

static int eval_kids(evalctx_t *e, const cond_t *k, bool any)
{
    bool decided = false, unknown = false;
    e->depth++;
    for (size_t i = 0; i < k->n_kids; i++) {
        /* conditions have no side effects: cheap ones first, unless
         * explaining (then in the order written) */
        int r = eval(e, &k->kids[e->why || !k->order ? i : k->order[i]]);
        if (r == T_UNK) {
            unknown = true;
        } else if (any ? r : !r) {
            decided = true;
            if (e->why == NULL)
                break; /* short-circuit unless explaining */
        }
    }
    e->depth--;
    return decided ? any : unknown ? T_UNK : !any;
}

static int eval(evalctx_t *e, const cond_t *k)
{
    prompt_t *p = e->p;
#define sc prompt_scope_name(k->scope)
    size_t w = 0;
    bool r;
    switch (k->kind) {
    case C_ALL:
    case C_ANY: {
        size_t mark;
        int t;
        if (k->n_kids == 1 && k->kind == C_ALL)
            return eval(e, &k->kids[0]);
        mark = why(e, true, "%s of:", k->kind == C_ALL ? "all" : "any");
        t = eval_kids(e, k, k->kind == C_ANY);
        why_patch(e, mark, t == 1);
        return t;
    }
    case C_NOT: {
        size_t mark = why(e, true, "not:");
        int t = eval_kids(e, k, false);
        t = t == T_UNK ? T_UNK : !t;
        why_patch(e, mark, t == 1);
        return t;
    }
    case C_CLASSIFY: {
        const cfg_classifier_t *cl = &e->rs->cfg->classifier;
        const char *label = NULL;
        if (e->ctx->label_state == RULE_LABEL_ASK && e->why == NULL)
            return T_UNK;
        if (e->ctx->label_state == RULE_LABEL_KNOWN && e->ctx->label >= 0 &&
            (size_t)e->ctx->label < cl->n_labels)
            label = cl->labels[e->ctx->label];
        r = in_list(k, label, &w);
        if (label != NULL) {
            why(e, r, "classify: the classifier's label is %s", label);
        } else if (e->ctx->label_state == RULE_LABEL_FALLBACK) {
            why(e, r, "classify: no label (the classifier failed); does not match");
        } else {
            why(e, false, "classify: needs the classifier's label (not asked when explaining; "
                          "without one this does not match)");
            return T_UNK; /* rules_eval tells whether the rule's outcome hangs on it */
        }
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
    case C_COMPLEXITY: {
        const scorer_t *weights = e->ctx->scorer ? e->ctx->scorer : e->rs->scorer;
        double score = prompt_score(p, weights);
        double lo = k->lo, hi = k->hi;
        if (e->ctx->band_lo != NULL && !isnan(e->ctx->band_lo[e->rule])) {
            lo = e->ctx->band_lo[e->rule]; /* an experiment arm's band */
            hi = e->ctx->band_hi[e->rule];
        }
        r = score >= lo && score <= hi;
        if (e->why) {
            buf_t top;
            char band[64];
            buf_init(&top, 512);
            scorer_top_features(weights, p->score_x, 3, &top);
            if (lo > 0 && hi < 1)
                snprintf(band, sizeof band, "in [%g, %g]", lo, hi);
            else if (lo > 0)
                snprintf(band, sizeof band, "min %g", lo);
            else
                snprintf(band, sizeof band, "max %g", hi);
            why(e, r, "complexity %s: score %.3f%s%s", band, score, buf_len(&top) ? " from " : "",
                buf_cstr(&top));
            buf_free(&top);
        }
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
    if (explain != NULL && ctx->label_state == RULE_LABEL_ASK) {
        /* an explanation never waits for a model: as when explaining */
        rule_ctx_t x = *ctx;
        x.label_state = RULE_LABEL_EXPLAIN;
        return rules_eval(rs, p, &x, explain);
    }
    if (explain)
        buf_puts(explain, "[");
    for (size_t j = 0; j < (ctx->order ? ctx->n_order : rs->n); j++) {
        size_t i = ctx->order ? (size_t)ctx->order[j] : j;
        bool r;
        int t;
        if (i >= rs->n)
            continue;
        e.rule = i;
        if (explain) {
            if (j)
                buf_puts(explain, ",");
            buf_puts(explain, "{\"rule\":");
            json_append_string(explain, rs->v[i].name, strlen(rs->v[i].name));
            buf_puts(explain, ",\"why\":[");
            e.why = explain;
            e.first_why = true;
        }
        t = eval(&e, &rs->v[i].when);
        if (t == T_UNK && ctx->label_state == RULE_LABEL_ASK) {
            if (ctx->label_needed)
                *ctx->label_needed = true;
            winner = RULES_NEED_LABEL;
            break;
        }
        if (t == T_UNK && winner < 0 && ctx->label_needed)
            *ctx->label_needed = true; /* explaining: this rule would have asked */
        r = t == 1;
        if (r && rs->v[i].act.classify && ctx->label_state != RULE_LABEL_KNOWN) {
            /* the action needs the label: ask, or (fallback, explaining)
             * the rule does not match */
            if (ctx->label_needed && ctx->label_state != RULE_LABEL_FALLBACK && winner < 0)
                *ctx->label_needed = true;
            if (ctx->label_state == RULE_LABEL_ASK) {
                winner = RULES_NEED_LABEL;
                break;
            }
            if (explain) {
                e.depth = 0;
                why(&e, false,
                    ctx->label_state == RULE_LABEL_FALLBACK
                        ? "classify: true — no label (the classifier failed); the rule does not match"
                        : "classify: true — the tier would be the classifier label's (not asked "
                          "when explaining; without a label the rule does not match)");
            }
            r = false;
        }
        if (explain) {
            buf_puts(explain, "],\"matched\":");
            buf_puts(explain, r ? "true}" : "false}");
        }
        if (r && winner < 0) {
            winner = (int)i;
            /* explaining evaluates every rule; what counts is whether the
             * decision needed the score */
            p->score_used = p->have_score;
            if (!explain)
                break;
        }
    }
    if (winner < 0)
        p->score_used = p->have_score;
    if (explain)
        buf_puts(explain, "]");
    if (e.md)
        pcre2_match_data_free(e.md);
    return winner;
}

static bool has_complexity(const cond_t *k)
{
    if (k->kind == C_COMPLEXITY)
        return true;
    for (size_t i = 0; i < k->n_kids; i++)
        if (has_complexity(&k->kids[i]))
            return true;
    return false;
}

bool rules_has_complexity(const rules_t *rs, size_t i)
{
    return rs != NULL && i < rs->n && has_complexity(&rs->v[i].when);
}
