/* config_ops: the schema of the operations settings — the top-level
 * `redis` section (how the Redis clients behave when Redis fails) and
 * `server.user` / `server.group` (whom to run as once listening). Part of
 * the configuration loader (see config_schema.h); every problem is
 * recorded in c with its position. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account/budget.h"
#include "core/config_schema.h"
#include "core/privdrop.h"

void config_parse_redis(ywalk_t *c, config_t *cfg, yaml_node_t *map)
{
    const char *k;
    yaml_node_t *kn, *v;
    cfg_redis_t *r = &cfg->redis;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "redis"))
        return;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        uint64_t u;
        char what[64];
        snprintf(what, sizeof what, "redis.%s", k);
        if (strcmp(k, "request_budget_ms") == 0) {
            if (yw_u64(c, v, what, 1, 10000, &u))
                r->request_budget_ms = (unsigned)u;
        } else if (strcmp(k, "cooldown_after_timeouts") == 0) {
            if (yw_u64(c, v, what, 1, 1000, &u))
                r->cooldown_after_timeouts = (unsigned)u;
        } else if (strcmp(k, "cooldown_ms") == 0) {
            if (yw_u64(c, v, what, 10, 600000, &u))
                r->cooldown_ms = (unsigned)u;
        } else if (strcmp(k, "reconnect_max_ms") == 0) {
            if (yw_u64(c, v, what, 100, 600000, &u))
                r->reconnect_max_ms = (unsigned)u;
        } else {
            yw_unknown_key(c, kn, "redis",
                           "request_budget_ms, cooldown_after_timeouts, cooldown_ms, "
                           "reconnect_max_ms");
        }
    }
}

void config_resolve_redis(config_t *cfg)
{
    const budget_cfg_t *bc = cfg->budgets;
    unsigned bt = bc != NULL && bc->redis_timeout_ms ? bc->redis_timeout_ms : 50;
    if (cfg->redis.request_budget_ms == 0)
        cfg->redis.request_budget_ms =
            cfg->cache.redis_timeout_ms > bt ? cfg->cache.redis_timeout_ms : bt;
}

void config_parse_run_as(ywalk_t *c, config_t *cfg, const char *key, yaml_node_t *v)
{
    bool user = strcmp(key, "user") == 0;
    char what[32];
    char *s;
    uid_t uid;
    gid_t gid;
    int rc;
    snprintf(what, sizeof what, "server.%s", key);
    s = yw_str(c, v, what);
    if (s == NULL)
        return;
    if (s[0] == '\0') {
        yw_error(c, v, "%s: expected a %s name, found an empty string", what,
                 user ? "user" : "group");
        free(s);
        return;
    }
    rc = user ? privdrop_find_user(s, &uid, &gid) : privdrop_find_group(s, &gid);
    if (rc != 0) {
        if (rc == ENOENT)
            yw_error(c, v, "%s: no %s named \"%s\" on this system (see %s)", what,
                     user ? "user" : "group", s, user ? "getent passwd" : "getent group");
        else
            yw_error(c, v, "%s: cannot look up \"%s\": %s", what, s, strerror(rc));
        free(s);
        return;
    }
    if (user) {
        free(cfg->run_user);
        cfg->run_user = s;
    } else {
        free(cfg->run_group);
        cfg->run_group = s;
    }
}

void config_check_run_as(ywalk_t *c, config_t *cfg, yaml_node_t *server)
{
    if (cfg->run_group != NULL && cfg->run_user == NULL)
        yw_error(c, server, "server.group needs server.user (the user whose privileges the "
                            "process takes after binding)");
}
