/* experiment: A/B experiments between routing policies (the `experiments:`
 * section, parsed by core/config_experiments.c). An experiment splits
 * routed traffic between arms by a stable hash of a key (the proxy key's
 * name, the body's `user`, or a request header); each arm is a routing
 * policy applied on top of the configured one: a subset of the rules, other
 * complexity bands for some rules, a tier mapping, cascades off.
 *
 * The assignment is a pure function of the experiment's name, the key's
 * value and the arms' weights: the same on every instance and after every
 * reload (no per-process seed). An experiment set is immutable once the
 * configuration is loaded: any thread may read it. */
#ifndef LLMROUTER_ROUTE_EXPERIMENT_H
#define LLMROUTER_ROUTE_EXPERIMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EXP_KEYLESS_SPLIT (-2)
#define EXP_KEYLESS_NONE (-1)

/* What an experiment hashes to pick an arm. */
enum exp_key { EXP_KEY_PROXY_KEY = 0, EXP_KEY_USER, EXP_KEY_HEADER };

typedef struct exp_arm {
    char *name;
    double weight; /* > 0 */
    double upper;  /* cumulative share of this arm and those before it, (0, 1] */
    /* rules: the top-level rules this arm evaluates, in order (indexes into
     * cfg->rules); has_rules false: all of them, as configured */
    bool has_rules;
    int *rules;
    size_t n_rules;
    /* complexity: per rule index (rules_count entries), the band that
     * replaces the rule's complexity conditions'; NAN lo = as configured.
     * NULL when the arm overrides none. */
    double *band_lo, *band_hi;
    /* tiers: per tier index, the tier used instead; NULL when none mapped */
    int *tier_map;
    bool no_cascade; /* cascade: false — cascade tiers act as plain chains */
    struct scorer *scorer; /* weights: the arm's complexity weights (owned), NULL: as configured */
} exp_arm_t;

typedef struct experiment {
    char *name;
    enum exp_key key;
    char *header; /* EXP_KEY_HEADER: the header's name (lower case) */
    bool active;  /* only one experiment is active at a time */
    /* keyless: what a request without the key does — EXP_KEYLESS_SPLIT (by
     * its request id, the default), EXP_KEYLESS_NONE (in no experiment), or
     * an index into arms (always that arm) */
    int keyless_arm;
    exp_arm_t *arms;
    size_t n_arms;
} experiment_t;

typedef struct experiments {
    experiment_t *v;
    size_t n;
    int active; /* index of the active experiment, -1 for none */
} experiments_t;

/* 64-bit FNV-1a of name, a '\n', then key[0..len), finished with
 * MurmurHash3's fmix64 (FNV-1a alone mixes the high bits of short, similar
 * keys poorly). Stable across processes, machines and versions. */
uint64_t experiment_hash(const char *name, const char *key, size_t len);

/* The arm of key: the top 53 bits of experiment_hash as a fraction u in
 * [0, 1), and the first arm whose cumulative share (weights / their sum)
 * is above u. Returns an index into e->arms (0 when e has one arm). */
size_t experiment_pick(const experiment_t *e, const char *key, size_t len);

/* Fills each arm's `upper` from the weights (called once after parsing). */
void experiment_finish(experiment_t *e);

struct config;
/* The arm arm of cfg's active experiment (and, when exp is not NULL, the
 * experiment), or NULL when arm < 0 or there is no such arm. Borrowed from
 * cfg. */
const exp_arm_t *experiment_arm_of(const struct config *cfg, int arm, const experiment_t **exp);

/* Frees everything an experiment set owns (NULL is allowed). */
void experiments_free(experiments_t *x);

/* "proxy_key", "user", "header" (static). */
const char *experiment_key_kind(enum exp_key k);

#endif
