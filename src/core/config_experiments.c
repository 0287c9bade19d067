/* config_experiments: the `experiments:` section (route/experiment.h). Read
 * after routing (arms name rules and tiers). Both sections and arms may be
 * written as a list of mappings with a `name`, or as a mapping of name ->
 * mapping. Every problem is recorded with its file:line:column. */
#include "core/config_experiments.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "route/experiment.h"
#include "route/rules.h"
#include "route/scorer.h"

#define EXP_KEYS "name, key, keyless, active, arms"
#define ARM_KEYS "name, weight, rules, complexity, tiers, cascade, weights"

/* Experiment and arm names are written into x-router-arm as EXP/ARM and
 * into metric labels: letters, digits, '_', '-', '.'. */
static bool valid_name(ywalk_t *c, const yaml_node_t *n, const char *what, const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 64) {
        yw_error(c, n, "%s: a name must be 1 to 64 characters", what);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.')) {
            yw_error(c, n, "%s: name \"%s\" may hold only letters, digits, '_', '-' and '.'", what,
                     s);
            return false;
        }
    }
    return true;
}

/* A finite number in [lo, hi] (lo excluded when open_lo); false after an
 * error. */
static bool number(ywalk_t *c, const yaml_node_t *n, const char *what, double lo, bool open_lo,
                   double hi, double *out)
{
    char *s = yw_str(c, n, what), *end = NULL;
    double v;
    bool ok = false;
    if (s == NULL)
        return false;
    errno = 0;
    v = strtod(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(v))
        yw_error(c, n, "%s: expected a number, found \"%s\"", what, s);
    else if (open_lo && v <= lo)
        yw_error(c, n, "%s: expected a number above %g, found %s", what, lo, s);
    else if (v < lo || v > hi)
        yw_error(c, n, "%s: expected a number from %g to %g, found %s", what, lo, hi, s);
    else {
        *out = v;
        ok = true;
    }
    free(s);
    return ok;
}

/* One entry of a named collection: its name (caller frees), name node and
 * mapping. */
typedef struct named {
    char *name;
    yaml_node_t *name_node;
    yaml_node_t *map;
} named_t;

/* The entries of a list of {name: ..., ...} or of a mapping name -> {...}
 * (malloc'd array, caller frees it and the names); entries with problems
 * are recorded and left out. */
static named_t *named_entries(ywalk_t *c, yaml_node_t *n, const char *what, size_t *n_out)
{
    named_t *v = NULL;
    size_t cnt = 0, cap = 0;
    *n_out = 0;
    if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            yaml_node_t *m = yw_node(c, *it), *nn = NULL;
            if (m == NULL || !yw_expect(c, m, YAML_MAPPING_NODE, what))
                continue;
            for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
                 p++) {
                yaml_node_t *k = yw_node(c, p->key);
                if (k && k->type == YAML_SCALAR_NODE &&
                    strcmp((const char *)k->data.scalar.value, "name") == 0)
                    nn = yw_node(c, p->value);
            }
            if (nn == NULL) {
                yw_error(c, m, "%s: missing \"name\"", what);
                continue;
            }
            char *s = yw_str(c, nn, what);
            if (s == NULL)
                continue;
            if (cnt == cap) {
                cap = cap ? 2 * cap : 4;
                v = xrealloc(v, cap * sizeof *v);
            }
            v[cnt++] = (named_t){s, nn, m};
        }
    } else if (n->type == YAML_MAPPING_NODE) {
        const char *k;
        yaml_node_t *kn, *m;
        YW_MAP_FOREACH(c, n, k, kn, m)
        {
            if (!yw_expect(c, m, YAML_MAPPING_NODE, what))
                continue;
            if (cnt == cap) {
                cap = cap ? 2 * cap : 4;
                v = xrealloc(v, cap * sizeof *v);
            }
            v[cnt++] = (named_t){xstrdup(k), kn, m};
        }
    } else {
        yw_error(c, n, "%s: expected a list or a mapping, found %s", what, yw_kind(n));
    }
    *n_out = cnt;
    return v;
}

static void free_named(named_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].name);
    free(v);
}

static int find_rule(const config_t *cfg, const char *name)
{
    for (size_t i = 0; cfg->rules != NULL && i < rules_count(cfg->rules); i++)
        if (strcmp(rules_action(cfg->rules, i)->name, name) == 0)
            return (int)i;
    return -1;
}

static void arm_rules(ywalk_t *c, const config_t *cfg, exp_arm_t *a, yaml_node_t *v,
                      const char *what)
{
    if (!yw_expect(c, v, YAML_SEQUENCE_NODE, what))
        return;
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    a->has_rules = true;
    a->rules = xcalloc(n ? n : 1, sizeof *a->rules);
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        yaml_node_t *s = yw_node(c, *it);
        char *name = s ? yw_str(c, s, what) : NULL;
        int r;
        if (name == NULL)
            continue;
        r = find_rule(cfg, name);
        if (r < 0) {
            yw_error(c, s, "%s: no rule named \"%s\" in routing.rules", what, name);
        } else {
            for (size_t j = 0; j < a->n_rules; j++)
                if (a->rules[j] == r)
                    yw_error(c, s, "%s: rule \"%s\" is listed twice", what, name);
            a->rules[a->n_rules++] = r;
        }
        free(name);
    }
}

/* One band {min, max}: absent min is 0, absent max 1, as in a rule. */
static bool band(ywalk_t *c, yaml_node_t *v, const char *what, double *lo, double *hi)
{
    const char *k;
    yaml_node_t *kn, *x;
    bool ok = true;
    *lo = 0;
    *hi = 1;
    if (!yw_expect(c, v, YAML_MAPPING_NODE, what))
        return false;
    YW_MAP_FOREACH(c, v, k, kn, x)
    {
        double d;
        char w[1024];
        snprintf(w, sizeof w, "%s.%s", what, k);
        if (strcmp(k, "min") != 0 && strcmp(k, "max") != 0) {
            yw_unknown_key(c, kn, what, "min, max");
            ok = false;
        } else if (!number(c, x, w, 0, false, 1, &d)) {
            ok = false;
        } else {
            *(k[1] == 'i' ? lo : hi) = d;
        }
    }
    if (ok && *lo > *hi) {
        yw_error(c, v, "%s: min %g is above max %g", what, *lo, *hi);
        ok = false;
    }
    return ok;
}

static void arm_complexity(ywalk_t *c, const config_t *cfg, exp_arm_t *a, yaml_node_t *v,
                           const char *what)
{
    const char *k;
    yaml_node_t *kn, *x;
    size_t n = cfg->rules ? rules_count(cfg->rules) : 0;
    if (!yw_expect(c, v, YAML_MAPPING_NODE, what))
        return;
    if (a->band_lo == NULL && n > 0) {
        a->band_lo = xmalloc(n * sizeof *a->band_lo);
        a->band_hi = xmalloc(n * sizeof *a->band_hi);
        for (size_t i = 0; i < n; i++)
            a->band_lo[i] = a->band_hi[i] = NAN;
    }
    YW_MAP_FOREACH(c, v, k, kn, x)
    {
        char w[900];
        int r = find_rule(cfg, k);
        double lo, hi;
        snprintf(w, sizeof w, "%s.%s", what, k);
        if (r < 0) {
            yw_error(c, kn, "%s: no rule named \"%s\" in routing.rules", what, k);
            continue;
        }
        if (!rules_has_complexity(cfg->rules, (size_t)r)) {
            yw_error(c, kn, "%s: rule \"%s\" has no complexity condition to change", what, k);
            continue;
        }
        if (band(c, x, w, &lo, &hi)) {
            a->band_lo[r] = lo;
            a->band_hi[r] = hi;
        }
    }
}

static void arm_tiers(ywalk_t *c, const config_t *cfg, exp_arm_t *a, yaml_node_t *v,
                      const char *what)
{
    const char *k;
    yaml_node_t *kn, *x;
    if (!yw_expect(c, v, YAML_MAPPING_NODE, what))
        return;
    if (a->tier_map == NULL) {
        a->tier_map = xmalloc((cfg->n_tiers ? cfg->n_tiers : 1) * sizeof *a->tier_map);
        for (size_t i = 0; i < cfg->n_tiers; i++)
            a->tier_map[i] = (int)i;
    }
    YW_MAP_FOREACH(c, v, k, kn, x)
    {
        int from = config_find_tier(cfg, k), to;
        char *s;
        if (from < 0) {
            yw_error(c, kn, "%s: no tier named \"%s\"", what, k);
            continue;
        }
        s = yw_str(c, x, what);
        if (s == NULL)
            continue;
        to = config_find_tier(cfg, s);
        if (to < 0)
            yw_error(c, x, "%s.%s: no tier named \"%s\"", what, k, s);
        else
            a->tier_map[from] = to;
        free(s);
    }
}

/* weights: PATH — the arm's complexity scorer weights (a relative PATH is
 * read from the configuration file's directory, as routing.scorer's). */
static void arm_weights(ywalk_t *c, const config_t *cfg, exp_arm_t *a, yaml_node_t *v,
                        const char *what)
{
    char *path = yw_str(c, v, what), *full, err[600];
    const char *slash = cfg->path ? strrchr(cfg->path, '/') : NULL;
    size_t n;
    if (path == NULL)
        return;
    if (path[0] == '\0') {
        yw_error(c, v, "%s: expected a weights file path, found \"\"", what);
        free(path);
        return;
    }
    n = strlen(path) + (cfg->path ? strlen(cfg->path) : 0) + 2;
    full = xmalloc(n);
    if (path[0] != '/' && slash != NULL)
        snprintf(full, n, "%.*s/%s", (int)(slash - cfg->path), cfg->path, path);
    else
        snprintf(full, n, "%s", path);
    scorer_free(a->scorer);
    a->scorer = scorer_load(full, err, sizeof err);
    if (a->scorer == NULL)
        yw_error(c, v, "%s: %s", what, err);
    free(full);
    free(path);
}

static void parse_arm(ywalk_t *c, const config_t *cfg, exp_arm_t *a, yaml_node_t *map,
                      const char *where)
{
    const char *k;
    yaml_node_t *kn, *v;
    bool have_weight = false;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        char what[800];
        snprintf(what, sizeof what, "%s.%s", where, k);
        if (strcmp(k, "name") == 0) {
            continue;
        } else if (strcmp(k, "weight") == 0) {
            have_weight = true;
            number(c, v, what, 0, true, 1e308, &a->weight);
        } else if (strcmp(k, "rules") == 0) {
            arm_rules(c, cfg, a, v, what);
        } else if (strcmp(k, "complexity") == 0) {
            arm_complexity(c, cfg, a, v, what);
        } else if (strcmp(k, "tiers") == 0) {
            arm_tiers(c, cfg, a, v, what);
        } else if (strcmp(k, "weights") == 0) {
            arm_weights(c, cfg, a, v, what);
        } else if (strcmp(k, "cascade") == 0) {
            bool on = true;
            if (yw_bool(c, v, what, &on))
                a->no_cascade = !on;
        } else {
            yw_unknown_key(c, kn, where, ARM_KEYS);
        }
    }
    if (!have_weight)
        a->weight = 1;
}

static void parse_key(ywalk_t *c, experiment_t *e, yaml_node_t *v, const char *what)
{
    char *s = yw_str(c, v, what);
    if (s == NULL)
        return;
    if (strcmp(s, "proxy_key") == 0) {
        e->key = EXP_KEY_PROXY_KEY;
    } else if (strcmp(s, "user") == 0) {
        e->key = EXP_KEY_USER;
    } else if (strncmp(s, "header:", 7) == 0 && s[7] != '\0') {
        e->key = EXP_KEY_HEADER;
        free(e->header);
        e->header = xstrdup(s + 7);
        for (char *p = e->header; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    } else {
        yw_error(c, v, "%s: expected proxy_key, user or header:NAME, found \"%s\"", what, s);
    }
    free(s);
}

static void parse_experiment(ywalk_t *c, const config_t *cfg, experiment_t *e, named_t *ent)
{
    const char *k;
    yaml_node_t *kn, *v, *arms = NULL, *key = NULL, *keyless = NULL;
    char where[128];
    snprintf(where, sizeof where, "experiments.%s", e->name);
    e->active = true;
    e->keyless_arm = EXP_KEYLESS_SPLIT;
    YW_MAP_FOREACH(c, ent->map, k, kn, v)
    {
        char what[256];
        snprintf(what, sizeof what, "%s.%s", where, k);
        if (strcmp(k, "name") == 0)
            continue;
        else if (strcmp(k, "key") == 0)
            key = v;
        else if (strcmp(k, "keyless") == 0)
            keyless = v;
        else if (strcmp(k, "active") == 0)
            yw_bool(c, v, what, &e->active);
        else if (strcmp(k, "arms") == 0)
            arms = v;
        else
            yw_unknown_key(c, kn, where, EXP_KEYS);
    }
    if (key == NULL)
        yw_error(c, ent->map, "%s: missing \"key\" (proxy_key, user or header:NAME)", where);
    else
        parse_key(c, e, key, where);
    if (arms == NULL) {
        yw_error(c, ent->map, "%s: missing \"arms\" (at least two routing policies)", where);
        return;
    }
    {
        char what[160];
        size_t n;
        named_t *av;
        snprintf(what, sizeof what, "%s.arms", where);
        av = named_entries(c, arms, what, &n);
        e->arms = xcalloc(n ? n : 1, sizeof *e->arms);
        for (size_t i = 0; i < n; i++) {
            char aw[400];
            snprintf(aw, sizeof aw, "%s.%s", what, av[i].name);
            if (!valid_name(c, av[i].name_node, what, av[i].name))
                continue;
            for (size_t j = 0; j < e->n_arms; j++)
                if (strcmp(e->arms[j].name, av[i].name) == 0)
                    yw_error(c, av[i].name_node, "%s: arm \"%s\" is defined twice", what,
                             av[i].name);
            exp_arm_t *a = &e->arms[e->n_arms++];
            a->name = xstrdup(av[i].name);
            parse_arm(c, cfg, a, av[i].map, aw);
        }
        if (n < 2)
            yw_error(c, arms, "%s: an experiment needs at least two arms, found %zu", what, n);
        free_named(av, n);
    }
    if (keyless != NULL) {
        /* a request without the key: split by its request id (default), in
         * no experiment, or always in one arm */
        char *s = yw_str(c, keyless, "keyless");
        if (s != NULL && strcmp(s, "split") == 0) {
            e->keyless_arm = EXP_KEYLESS_SPLIT;
        } else if (s != NULL && strcmp(s, "none") == 0) {
            e->keyless_arm = EXP_KEYLESS_NONE;
        } else if (s != NULL) {
            size_t j = 0;
            while (j < e->n_arms && strcmp(e->arms[j].name, s) != 0)
                j++;
            if (j < e->n_arms)
                e->keyless_arm = (int)j;
            else
                yw_error(c, keyless, "%s.keyless: expected split, none or an arm's name, found \"%s\"",
                         where, s);
        }
        free(s);
    }
    experiment_finish(e);
}

experiments_t *config_parse_experiments(ywalk_t *c, const config_t *cfg, yaml_node_t *n)
{
    experiments_t *x = xcalloc(1, sizeof *x);
    yaml_node_t *first_active = NULL;
    size_t cnt;
    named_t *ev;
    x->active = -1;
    if (yw_is_null(n))
        return x;
    ev = named_entries(c, n, "experiments", &cnt);
    x->v = xcalloc(cnt ? cnt : 1, sizeof *x->v);
    for (size_t i = 0; i < cnt; i++) {
        experiment_t *e;
        if (!valid_name(c, ev[i].name_node, "experiments", ev[i].name))
            continue;
        for (size_t j = 0; j < x->n; j++)
            if (strcmp(x->v[j].name, ev[i].name) == 0)
                yw_error(c, ev[i].name_node, "experiments: \"%s\" is defined twice", ev[i].name);
        e = &x->v[x->n++];
        e->name = xstrdup(ev[i].name);
        parse_experiment(c, cfg, e, &ev[i]);
        if (!e->active)
            continue;
        if (first_active != NULL) {
            yw_error(c, ev[i].name_node,
                     "experiments: \"%s\" and \"%s\" are both active; only one experiment runs "
                     "at a time (set active: false on the others)",
                     x->v[x->active].name, e->name);
            continue;
        }
        first_active = ev[i].name_node;
        x->active = (int)(x->n - 1);
    }
    free_named(ev, cnt);
    return x;
}

void config_print_experiments(const config_t *cfg, void *file)
{
    FILE *f = file;
    const experiments_t *x = cfg->experiments;
    for (size_t i = 0; x != NULL && i < x->n; i++) {
        const experiment_t *e = &x->v[i];
        double prev = 0;
        fprintf(f, "experiment %s (%s, key %s%s):", e->name, e->active ? "active" : "inactive",
                experiment_key_kind(e->key), e->header ? ":" : "");
        if (e->header)
            fprintf(f, "%s", e->header);
        for (size_t j = 0; j < e->n_arms; j++) {
            fprintf(f, "%s %s %.1f%%", j ? "," : "", e->arms[j].name,
                    100 * (e->arms[j].upper - prev));
            prev = e->arms[j].upper;
        }
        fprintf(f, "\n");
    }
}
