/* config_schema: the pieces of the configuration loader (src/core/config.c)
 * kept in their own files: the schema of each section of llmrouter.yaml
 * (src/core/config_schema.c; the routing section in config_routing.c) and the data derived from a parsed snapshot
 * before it is published (src/core/config_derived.c). Private to the three;
 * every function records problems in c (file:line:column) and goes on. */
#ifndef LLMROUTER_CORE_CONFIG_SCHEMA_H
#define LLMROUTER_CORE_CONFIG_SCHEMA_H

#include <yaml.h>

#include "core/config.h"
#include "core/yamlwalk.h"

/* One section each: server (and server.cors), providers, models, tiers,
 * routing (*default_node: the default_tier value, for later checks), cache,
 * observability. */
void config_parse_server(ywalk_t *c, config_t *cfg, yaml_node_t *map);
void config_parse_providers(ywalk_t *c, config_t *cfg, yaml_node_t *map);
void config_parse_models(ywalk_t *c, config_t *cfg, yaml_node_t *map);
void config_parse_tiers(ywalk_t *c, config_t *cfg, yaml_node_t *map);
void config_parse_routing(ywalk_t *c, config_t *cfg, yaml_node_t *map, yaml_node_t **default_node);
void config_parse_cache(ywalk_t *c, config_t *cfg, yaml_node_t *map);
void config_parse_obs(ywalk_t *c, config_t *cfg, yaml_node_t *map);

/* config_ops.c: the redis section, and server.user / server.group (a name
 * that must exist on this system; kn/v: the key and value nodes of the
 * server mapping). config_resolve_redis fills what the redis section left
 * to the other sections (run after every section was parsed). */
void config_parse_redis(ywalk_t *c, config_t *cfg, yaml_node_t *map);
void config_parse_run_as(ywalk_t *c, config_t *cfg, const char *key, yaml_node_t *v);
void config_check_run_as(ywalk_t *c, config_t *cfg, yaml_node_t *server);
void config_resolve_redis(config_t *cfg);

/* Derived data: provider keys from the environment and their curl header
 * lists; the /readyz answer and its warnings; the admin-key checks; the
 * /v1/models answer. */
void config_resolve_keys(ywalk_t *c, config_t *cfg);
void config_build_ready_json(ywalk_t *c, config_t *cfg);
void config_check_admin(ywalk_t *c, config_t *cfg);
void config_build_models_json(config_t *cfg);

#endif
