/* rules: the content-based routing rule engine. An ordered list of rules,
 * each a condition tree (length, keywords, regexes, script, language, output
 * format and features, client model, proxy key, headers; combined with all /
 * any / not) and an action (a tier or an explicit chain, a cache setting,
 * tags). The first rule whose condition holds decides; none -> the default
 * tier. Compiled once when the configuration loads (keywords into one
 * Aho-Corasick automaton, regexes with PCRE2 JIT) and immutable afterwards:
 * any number of threads may evaluate the same rule set at once. */
#ifndef LLMROUTER_RULES_H
#define LLMROUTER_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "route/prompt.h"
#include "core/yamlwalk.h"

struct config;
typedef struct rules rules_t;

/* Cache setting of a rule: inherit the configured default, off, or a TTL. */
enum rule_cache { RULE_CACHE_DEFAULT = 0, RULE_CACHE_OFF, RULE_CACHE_TTL };

typedef struct rule_action {
    const char *name;
    int tier;          /* index into cfg->tiers, or -1 with an explicit chain */
    const int *chain;  /* explicit chain (indexes into cfg->models) when tier < 0 */
    size_t n_chain;
    enum rule_cache cache;
    unsigned cache_ttl_s;
    const char *const *tags;
    size_t n_tags;
    bool classify;     /* `classify: true`: the tier is the classifier label's (tier is -1) */
} rule_action_t;

/* What the rules know of the classifier's label (routing.classifier). */
enum rule_label {
    RULE_LABEL_ASK = 0, /* not asked yet: stop at the first rule that needs it */
    RULE_LABEL_KNOWN,   /* ctx->label holds it */
    RULE_LABEL_FALLBACK, /* asked, no usable label: classify conditions and actions do not match */
    RULE_LABEL_EXPLAIN, /* explaining: never asked; as FALLBACK, and say it would be asked */
};

/* rules_eval(): evaluation reached a rule that needs the label */
#define RULES_NEED_LABEL (-2)

/* What a rule may look at besides the body. */
typedef struct rule_ctx {
    const char *model;    /* the client's "model" */
    const char *key_name; /* the proxy key's name, "" when keys are off */
    /* Returns the value of request header name (case-insensitive), or NULL. */
    const char *(*header)(void *arg, const char *name);
    void *header_arg;
    enum rule_label label_state;
    int label;          /* RULE_LABEL_KNOWN: index into cfg->classifier.labels */
    bool *label_needed; /* out, may be NULL: set when a rule needed the label */
    /* An experiment's arm (route/experiment.h), or all NULL/0: order, when
     * not NULL, lists the rules to evaluate (indexes, in that order; the
     * others are skipped); band_lo/band_hi, when not NULL, hold per rule
     * the complexity band that replaces its conditions' (NAN: as written). */
    const int *order;
    size_t n_order;
    const double *band_lo, *band_hi;
    const struct scorer *scorer; /* the arm's weights for complexity conditions, or NULL */
} rule_ctx_t;

/* Parses routing.rules (a YAML list) against cfg's tiers and models.
 * Records every problem in c (with positions) and returns NULL if there was
 * any. */
rules_t *rules_parse(ywalk_t *c, const struct config *cfg, yaml_node_t *list);
void rules_free(rules_t *rs);

size_t rules_count(const rules_t *rs);
/* The action of rule i (borrowed, lives as long as rs). */
const rule_action_t *rules_action(const rules_t *rs, size_t i);

/* Evaluates the rules in order on p. Returns the index of the first rule
 * that matches, or -1; or RULES_NEED_LABEL when ctx->label_state is
 * RULE_LABEL_ASK and the first rule not decided without the classifier's
 * label needs it (a `classify` condition the rule's other conditions leave
 * open — three-valued: unknown until asked — or a `classify: true` action
 * whose conditions hold); rules before it did not match. If explain is not NULL, every rule is evaluated and a
 * JSON array of {"rule","matched","why":[...]} objects is appended to it. */
int rules_eval(const rules_t *rs, prompt_t *p, const rule_ctx_t *ctx, buf_t *explain);

/* Whether rule i has a complexity condition anywhere in its `when`. */
bool rules_has_complexity(const rules_t *rs, size_t i);

#endif
