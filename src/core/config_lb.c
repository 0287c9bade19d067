/* config_lb: a tier's chain entry that is a group of equivalent models —
 *   - any: [gpt-4o-east, gpt-4o-west]            (or [{model: M, weight: 3}, ...])
 *     strategy: weighted | least_outstanding | latency   (default weighted)
 *     sticky: key | user | header:NAME                   (optional)
 * Its members are appended to the tier's models (contiguous, as written)
 * and the group to t->groups; upstream/balance.h orders them per request.
 * Called by config_schema.c's tier walk only. */
#include "core/config_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define GROUP_KEYS "any, strategy, sticky"

/* One member: a name, or {model: NAME, weight: N}. Returns the model's
 * index or -1 (reported). */
static int group_member(ywalk_t *c, const config_t *cfg, yaml_node_t *mn, const char *where,
                        uint32_t *weight)
{
    char *s = NULL;
    int mi = -1;
    yaml_node_t *model = NULL;
    *weight = 1;
    if (mn->type == YAML_MAPPING_NODE) {
        const char *k;
        yaml_node_t *kn, *v;
        YW_MAP_FOREACH(c, mn, k, kn, v)
        {
            char what[256];
            snprintf(what, sizeof what, "%s.any.%s", where, k);
            if (strcmp(k, "model") == 0)
                model = v;
            else if (strcmp(k, "weight") == 0)
                yw_u32(c, v, what, 1, 1000000, weight);
            else
                yw_unknown_key(c, kn, where, "model, weight");
        }
        if (model == NULL) {
            yw_error(c, mn, "%s.any: a member written as a mapping needs \"model\" ({model: NAME, "
                            "weight: N})",
                     where);
            return -1;
        }
    } else {
        model = mn;
    }
    s = yw_str(c, model, where);
    if (s == NULL)
        return -1;
    mi = config_find_model(cfg, s);
    if (mi < 0)
        yw_error(c, model, "%s.any: no model named \"%s\" is defined under models", where, s);
    free(s);
    return mi;
}

static void parse_sticky(ywalk_t *c, cfg_group_t *g, yaml_node_t *v, const char *where)
{
    char *s = yw_str(c, v, where);
    if (s == NULL)
        return;
    if (strcmp(s, "key") == 0) {
        g->sticky = CFG_LB_STICKY_KEY;
    } else if (strcmp(s, "user") == 0) {
        g->sticky = CFG_LB_STICKY_USER;
    } else if (strncmp(s, "header:", 7) == 0 && s[7] != '\0' && strlen(s + 7) <= 64) {
        g->sticky = CFG_LB_STICKY_HEADER;
        free(g->sticky_header);
        g->sticky_header = xstrdup(s + 7);
        for (char *q = g->sticky_header; *q; q++)
            if (*q >= 'A' && *q <= 'Z')
                *q = (char)(*q - 'A' + 'a');
    } else {
        yw_error(c, v, "%s.sticky: expected key, user or header:NAME, found \"%s\"", where, s);
    }
    free(s);
}

bool config_tier_group(ywalk_t *c, config_t *cfg, cfg_tier_t *t, yaml_node_t *map,
                       const char *where, size_t cap)
{
    const char *k;
    yaml_node_t *kn, *v, *any = NULL;
    cfg_group_t g = {0};
    size_t n;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        char what[256];
        snprintf(what, sizeof what, "%s.%s", where, k);
        if (strcmp(k, "any") == 0) {
            if (yw_expect(c, v, YAML_SEQUENCE_NODE, what))
                any = v;
        } else if (strcmp(k, "strategy") == 0) {
            char *s = yw_str(c, v, what);
            if (s && strcmp(s, "weighted") == 0)
                g.strategy = CFG_LB_WEIGHTED;
            else if (s && strcmp(s, "least_outstanding") == 0)
                g.strategy = CFG_LB_LEAST_OUTSTANDING;
            else if (s && strcmp(s, "latency") == 0)
                g.strategy = CFG_LB_LATENCY;
            else if (s)
                yw_error(c, v, "%s: expected weighted, least_outstanding or latency, found \"%s\"",
                         what, s);
            free(s);
        } else if (strcmp(k, "sticky") == 0) {
            parse_sticky(c, &g, v, where);
        } else {
            yw_unknown_key(c, kn, where, GROUP_KEYS);
        }
    }
    if (any == NULL) {
        yw_error(c, map, "%s: a chain entry written as a mapping is a group of equivalent models: "
                         "give \"any\" (a list of 2 or more models)",
                 where);
        free(g.sticky_header);
        return false;
    }
    n = (size_t)(any->data.sequence.items.top - any->data.sequence.items.start);
    if (n < 2) {
        yw_error(c, any, "%s.any: a group needs at least 2 models, found %zu (a single model is "
                         "written as a plain chain entry)",
                 where, n);
        free(g.sticky_header);
        return false;
    }
    g.first = t->n_models;
    for (yaml_node_item_t *it = any->data.sequence.items.start; it < any->data.sequence.items.top;
         it++) {
        yaml_node_t *mn = yw_node(c, *it);
        uint32_t w;
        int mi = mn ? group_member(c, cfg, mn, where, &w) : -1;
        bool dup = false;
        if (mi < 0)
            continue;
        for (size_t j = 0; j < t->n_models; j++)
            dup = dup || t->models[j] == mi;
        if (dup) {
            yw_error(c, mn, "%s: model \"%s\" is listed twice in this tier (a model may be in "
                            "one group or chain entry of a tier only)",
                     where, cfg->models[mi].name);
            continue;
        }
        if (t->n_models >= cap) {
            yw_error(c, mn, "%s: a tier holds at most %zu models, groups' members included", where,
                     cap);
            break;
        }
        g.weight[t->n_models - g.first] = w;
        t->models[t->n_models++] = mi;
        if (cfg->models[mi].tier < 0)
            cfg->models[mi].tier = (int)(cfg->n_tiers - 1);
    }
    g.n = t->n_models - g.first;
    if (g.n < 2) {
        free(g.sticky_header);
        return false; /* its members' errors are reported */
    }
    t->groups = xrealloc(t->groups, (t->n_groups + 1) * sizeof *t->groups);
    t->groups[t->n_groups++] = g;
    return true;
}
