/* router: model name -> (tier, chain). */
#include "router.h"

#include <string.h>

static void add_tier(const config_t *cfg, route_t *out, int tier, int skip)
{
    const cfg_tier_t *t = &cfg->tiers[tier];
    for (size_t i = 0; i < t->n_models && out->n < ROUTE_MAX_CHAIN; i++)
        if (t->models[i] != skip)
            out->chain[out->n++] = t->models[i];
}

int router_resolve(const config_t *cfg, const char *model, route_t *out)
{
    int i;
    out->n = 0;
    out->tier = -1;
    /* Routable names come first, so that a hard-coded "gpt-4o" in an
     * application can be routed even when a model of that name exists. */
    if (config_is_routable(cfg, model)) {
        out->tier = cfg->default_tier;
        add_tier(cfg, out, out->tier, -1);
        return 0;
    }
    i = config_find_tier(cfg, model);
    if (i >= 0) {
        out->tier = i;
        add_tier(cfg, out, i, -1);
        return 0;
    }
    i = config_find_model(cfg, model);
    if (i >= 0) {
        out->chain[out->n++] = i;
        out->tier = cfg->models[i].tier;
        if (out->tier >= 0)
            add_tier(cfg, out, out->tier, i);
        return 0;
    }
    return -1;
}

const char *router_tier_name(const config_t *cfg, const route_t *r)
{
    return r->tier >= 0 ? cfg->tiers[r->tier].name : "none";
}
