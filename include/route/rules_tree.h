/* rules_tree: the compiled form of the routing rules, shared by the parser
 * (src/route/rules_parse.c) and the evaluator (src/route/rules.c) and by
 * nobody else: other modules see only the opaque rules_t of route/rules.h.
 * Immutable once rules_parse() returns; read by any thread. */
#ifndef LLMROUTER_ROUTE_RULES_TREE_H
#define LLMROUTER_ROUTE_RULES_TREE_H

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route/keywords.h"
#include "route/prompt.h"
#include "core/yamlwalk.h"
#include "route/rules.h"
#include "route/scorer.h"

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
    C_COMPLEXITY, /* lo <= the scorer's score <= hi */
    C_CLASSIFY, /* strs: labels; true when the classifier's label is one of them */
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
    double lo, hi;    /* C_COMPLEXITY: the band, both inclusive */
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
    const struct config *cfg; /* the snapshot that owns the rules (classifier labels) */
    const scorer_t *scorer; /* for complexity conditions: cfg's weights or the built-in */
};

/* Regex conditions (rules_regex.c): compiles the patterns of list or
 * string n into k->re (errors at the item, in c); adds pattern j's literal
 * prefilter to rs's keyword set. */
bool rules_compile_res(ywalk_t *c, const yaml_node_t *n, const char *what, cond_t *k);
void rules_regex_prefilter(rules_t *rs, cond_t *k, size_t j);

#endif
