/* router: model name (+ rules) -> (tier, chain). */
#include "route/router.h"

#include <string.h>

#include "route/prompt.h"
#include "route/rules.h"

static void add_tier(const config_t *cfg, route_t *out, int tier, int skip)
{
    const cfg_tier_t *t = &cfg->tiers[tier];
    for (size_t i = 0; i < t->n_models && out->n < ROUTE_MAX_CHAIN; i++)
        if (t->models[i] != skip)
            out->chain[out->n++] = t->models[i];
}

static void use_tier(const config_t *cfg, route_t *out, int tier, int rule)
{
    out->tier = tier;
    out->rule = rule;
    out->pinned = 0;
    add_tier(cfg, out, tier, -1);
}

void router_init(route_t *r)
{
    r->tier = -1;
    r->rule = ROUTE_RULE_NONE;
    r->n = 0;
    r->pinned = 0;
}

static enum router_status route_model(const config_t *cfg, const char *model, struct prompt *p,
                                      const struct rule_ctx *ctx, const char *client_tier,
                                      route_t *out, buf_t *explain)
{
    int i;
    out->n = 0;
    out->tier = -1;
    out->pinned = 0;
    out->rule = ROUTE_RULE_EXPLICIT;
    /* Routable names come first, so that a hard-coded "gpt-4o" in an
     * application can be routed even when a model of that name exists. */
    if (config_is_routable(cfg, model)) {
        int r;
        if (client_tier != NULL && cfg->allow_client_tier) {
            i = config_find_tier(cfg, client_tier);
            if (i < 0)
                return ROUTER_UNKNOWN_TIER;
            if (explain)
                buf_puts(explain, "[]");
            use_tier(cfg, out, i, ROUTE_RULE_CLIENT);
            return ROUTER_OK;
        }
        r = p ? rules_eval(cfg->rules, p, ctx, explain) : -1;
        if (explain && (p == NULL || cfg->rules == NULL))
            buf_puts(explain, "[]");
        if (r == RULES_NEED_LABEL)
            return ROUTER_NEED_LABEL;
        if (r < 0) {
            use_tier(cfg, out, cfg->default_tier, ROUTE_RULE_DEFAULT);
        } else {
            const rule_action_t *a = rules_action(cfg->rules, (size_t)r);
            if (a->classify) {
                /* rules_eval matches such a rule only with a known label */
                use_tier(cfg, out, cfg->classifier.label_tier[ctx->label], r);
            } else if (a->tier >= 0) {
                use_tier(cfg, out, a->tier, r);
            } else {
                out->rule = r;
                for (size_t k = 0; k < a->n_chain && out->n < ROUTE_MAX_CHAIN; k++)
                    out->chain[out->n++] = a->chain[k];
            }
        }
        return ROUTER_OK;
    }
    if (explain)
        buf_puts(explain, "[]");
    i = config_find_tier(cfg, model);
    if (i >= 0) {
        use_tier(cfg, out, i, ROUTE_RULE_EXPLICIT);
        return ROUTER_OK;
    }
    i = config_find_model(cfg, model);
    if (i >= 0) {
        out->chain[out->n++] = i;
        out->pinned = 1;
        out->tier = cfg->models[i].tier;
        if (out->tier >= 0)
            add_tier(cfg, out, out->tier, i);
        return ROUTER_OK;
    }
    return ROUTER_UNKNOWN_MODEL;
}

enum router_status router_route(const config_t *cfg, const char *model, struct prompt *p,
                                const struct rule_ctx *ctx, const char *client_tier, route_t *out,
                                buf_t *explain)
{
    enum router_status st = route_model(cfg, model, p, ctx, client_tier, out, explain);
    if (st != ROUTER_OK) /* ROUTER_NEED_LABEL too: not routed until the label is known */
        router_init(out);
    return st;
}

void router_map_tier(const config_t *cfg, route_t *r, const int *map)
{
    if (map == NULL || r->tier < 0 || (size_t)r->tier >= cfg->n_tiers || map[r->tier] == r->tier)
        return;
    r->n = 0;
    use_tier(cfg, r, map[r->tier], r->rule);
}

enum router_status router_resolve(const config_t *cfg, const char *model, route_t *out)
{
    return router_route(cfg, model, NULL, NULL, NULL, out, NULL);
}

const char *router_tier_name(const config_t *cfg, const route_t *r)
{
    if (r->rule == ROUTE_RULE_NONE)
        return "-";
    if (r->tier >= 0 && (size_t)r->tier < cfg->n_tiers)
        return cfg->tiers[r->tier].name;
    return r->rule >= 0 ? "custom" : "none";
}

const char *router_rule_name(const config_t *cfg, const route_t *r)
{
    switch (r->rule) {
    case ROUTE_RULE_DEFAULT:
        return "default";
    case ROUTE_RULE_EXPLICIT:
        return "explicit";
    case ROUTE_RULE_CLIENT:
        return "client-tier";
    default:
        if (r->rule < 0 || cfg->rules == NULL || (size_t)r->rule >= rules_count(cfg->rules))
            return "-";
        return rules_action(cfg->rules, (size_t)r->rule)->name;
    }
}
