/* router: turns the "model" a client asked for into a tier and an ordered
 * failover chain of configured models. For now "auto" and the routable names
 * use the default tier; the rule engine will plug in here. Pure function of
 * the config snapshot; any thread. */
#ifndef LLMROUTER_ROUTER_H
#define LLMROUTER_ROUTER_H

#include <stddef.h>

#include "config.h"

#define ROUTE_MAX_CHAIN 32

typedef struct route {
    int tier;                  /* index into cfg->tiers, -1 when the model is in no tier */
    int chain[ROUTE_MAX_CHAIN]; /* indexes into cfg->models, in order */
    size_t n;
} route_t;

/* Resolves the client's model name. Returns 0, or -1 if the name is neither
 * "auto", a routable name, a tier nor a configured model. */
int router_resolve(const config_t *cfg, const char *model, route_t *out);

/* The tier name for headers and logs: the tier's name, or "none". */
const char *router_tier_name(const config_t *cfg, const route_t *r);

#endif
