/* balance: the order in which one request tries the members of a group of
 * equivalent models (a tier's `- any: [...]` entry, core/config.h
 * cfg_group_t). The router puts a group's members into the chain as
 * written; balance_route reorders them in place, per request, by the
 * group's strategy — weighted random, least outstanding attempts, lowest
 * recent latency — or, with `sticky`, by rendezvous hashing of the key;
 * members whose circuit is open or cooling (upstream/health.h) go last, so
 * failover tries the healthy members first and the rest of the machinery
 * (admission, skips, the last resort) sees an ordinary chain.
 * Any thread; reads the process-wide health table, writes only r. See
 * docs/routing.md "Load balancing". */
#ifndef LLMROUTER_UPSTREAM_BALANCE_H
#define LLMROUTER_UPSTREAM_BALANCE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "route/router.h"

typedef struct balance_in {
    uint64_t rnd;          /* a fresh random value (shard_random) */
    uint64_t now_ms;       /* the health clock (util_now_ms) */
    const char *key_name;  /* the proxy key's name, NULL (borrowed) */
    const char *user;      /* the body's "user", NULL (borrowed) */
    const char *(*header)(void *arg, const char *name); /* a request header, NULL */
    void *header_arg;
} balance_in_t;

/* Orders the members of each group of r's tier inside r->chain (a pinned
 * chain[0], the model the client named, stays first). */
void balance_route(const config_t *cfg, route_t *r, const balance_in_t *in);

/* The member of group g of r's tier that r tries first (-1: the group is
 * not in r's chain). */
int balance_group_pick(const config_t *cfg, const route_t *r, size_t g);

/* Appends ,"groups":[{"strategy":..,"sticky":..,"order":[names],"picked":..}]
 * for r's tier's groups (nothing when it has none). */
void balance_explain(const config_t *cfg, const route_t *r, buf_t *out);

const char *balance_strategy_name(enum cfg_lb_strategy s);

/* ---- the pure parts, for tests ---- */

/* splitmix64 step. */
uint64_t balance_rand(uint64_t *state);
/* order[0..n): a weighted random draw without replacement (w[i] >= 1). */
void balance_weighted_order(const uint32_t *w, size_t n, uint64_t *rng, size_t *order);
/* order[0..n): weighted rendezvous (highest random weight) of key over the
 * members' names: stable per key, and removing a member moves only the
 * keys that ranked it first. */
void balance_rendezvous_order(const char *key, size_t klen, const char *const *names,
                              const uint32_t *w, size_t n, size_t *order);

#endif
