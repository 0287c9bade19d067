/* router: turns the "model" a client asked for into a tier (or an explicit
 * chain) and an ordered failover chain of configured models. "auto" and the
 * routable names go through the rule engine (first matching rule, else the
 * default tier); a tier name selects that tier; a model name that model
 * first, then the rest of its tier. Pure function of the config snapshot and
 * the request; any thread. */
#ifndef LLMROUTER_ROUTER_H
#define LLMROUTER_ROUTER_H

#include <stddef.h>

#include "core/buf.h"
#include "core/config.h"

#define ROUTE_MAX_CHAIN 32

/* route.rule values besides a rule index */
#define ROUTE_RULE_DEFAULT (-1)  /* routed, no rule matched */
#define ROUTE_RULE_EXPLICIT (-2) /* the client named a tier or a model */
#define ROUTE_RULE_CLIENT (-3)   /* forced by the x-router-tier header */
#define ROUTE_RULE_NONE (-4)     /* not routed: answered before routing, or routing failed */

typedef struct route {
    int tier;                   /* index into cfg->tiers, -1 for none / an explicit chain */
    /* A request starts as ROUTE_RULE_NONE with tier -1 (router_init); only
     * router_route() makes it routed. */
    int rule;                   /* index of the matched rule, or ROUTE_RULE_* */
    int chain[ROUTE_MAX_CHAIN]; /* indexes into cfg->models, in order */
    size_t n;
    int pinned; /* 1: chain[0] is the model the client named (a group does not move it) */
} route_t;

struct prompt;
struct rule_ctx;

/* ROUTER_NEED_LABEL: the rules need the classifier's label (ctx->label_state
 * was RULE_LABEL_ASK); route again with it, or with RULE_LABEL_FALLBACK. */
enum router_status {
    ROUTER_OK = 0,
    ROUTER_UNKNOWN_MODEL = -1,
    ROUTER_UNKNOWN_TIER = -2,
    ROUTER_NEED_LABEL = 1,
};

/* An empty, not-routed route (no tier, no rule, no chain). */
void router_init(route_t *r);

/* Whether router_route() succeeded on r (a tier or chain was chosen). */
static inline int router_routed(const route_t *r)
{
    return r->rule != ROUTE_RULE_NONE;
}

/* Resolves the client's model. On failure out is left not routed
 * (router_routed() is false). p and ctx feed the rules (p may be NULL when
 * the body has no prompt to look at). client_tier, when not NULL, is the
 * x-router-tier header: honoured for routed models only if the config allows
 * it. explain, when not NULL, receives the rules' JSON explanation array (or
 * "[]" when no rule ran). */
enum router_status router_route(const config_t *cfg, const char *model, struct prompt *p,
                                const struct rule_ctx *ctx, const char *client_tier, route_t *out,
                                buf_t *explain);

/* An experiment arm's tier mapping (route/experiment.h): when r chose tier
 * t and map[t] != t, r's tier and chain become map[t]'s. map may be NULL. */
void router_map_tier(const config_t *cfg, route_t *r, const int *map);

/* Without rules (model name only): for callers that have no prompt. */
enum router_status router_resolve(const config_t *cfg, const char *model, route_t *out);

/* For headers and logs: the tier's name, "custom" for a rule's explicit
 * chain, "none" for a model outside every tier, "-" when not routed. */
const char *router_tier_name(const config_t *cfg, const route_t *r);
/* The rule's name, "default", "explicit", "client-tier", or "-" when not
 * routed. Never dereferences a rule index the snapshot does not have. */
const char *router_rule_name(const config_t *cfg, const route_t *r);

#endif
