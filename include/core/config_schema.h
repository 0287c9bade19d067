/* config_schema: the pieces of the configuration loader (src/core/config.c)
 * kept in their own files: the schema of each section of llmrouter.yaml
 * (src/core/config_schema.c; the routing section in config_routing.c; circuits and
 * concurrency limits in config_health.c) and the data derived from a parsed snapshot
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
/* A tier's chain entry {any: [...], strategy, sticky} (src/core/config_lb.c):
 * appends its members to t->models (at most cap in all) and the group to
 * t->groups. False when it was not added (reported). */
bool config_tier_group(ywalk_t *c, config_t *cfg, cfg_tier_t *t, yaml_node_t *map,
                       const char *where, size_t cap);
void config_parse_cache(ywalk_t *c, config_t *cfg, yaml_node_t *map);
void config_parse_obs(ywalk_t *c, config_t *cfg, yaml_node_t *map);

/* Retries and the failure policy (src/core/config_upstream.c), called by
 * the provider and model walks: _init sets the defaults; _key takes one key
 * of the mapping and returns false when k is not one of RETRY_PROVIDER_KEYS
 * / "retries" (the policy lists are kept in lists[3] until _done, which
 * checks and applies them: a status beats its class, an entry in two lists
 * is an error); the model's _done inherits its provider's retries. */
#define RETRY_PROVIDER_KEYS                                                                        \
    "retries, retry_backoff_ms, retry_backoff_max_ms, retry_after_max_ms, retry_on, "              \
    "failover_on, pass_through"
void config_provider_retry_init(cfg_provider_t *p);
bool config_provider_retry_key(ywalk_t *c, cfg_provider_t *p, const char *k, yaml_node_t *v,
                               const char *what, yaml_node_t *lists[3]);
void config_provider_retry_done(ywalk_t *c, cfg_provider_t *p, yaml_node_t *map,
                                yaml_node_t *lists[3], const char *where);
void config_model_retry_init(cfg_model_t *m);
bool config_model_retry_key(ywalk_t *c, cfg_model_t *m, const char *k, yaml_node_t *v,
                            const char *what);
void config_model_retry_done(const config_t *cfg, cfg_model_t *m);
/* Presets (src/core/config_presets.c): _apply fills p from its `preset:`
 * (if any) before the walk, so every other key overrides it; _key takes one
 * of PRESET_PROVIDER_KEYS (false otherwise); _done resolves {resource},
 * moves a query out of base_url and joins query: and api_version into
 * p->query; _free frees what these set. A model's `deployment:` likewise. */
#define PRESET_PROVIDER_KEYS                                                                       \
    "preset, quirks, headers, query, resource, api_version, auth_header, auth_scheme"
void config_provider_preset_apply(ywalk_t *c, cfg_provider_t *p, yaml_node_t *map,
                                  const char *where, bool *have_type, bool *have_url);
bool config_provider_preset_key(ywalk_t *c, cfg_provider_t *p, const char *k, yaml_node_t *kn,
                                yaml_node_t *v, const char *what);
void config_provider_preset_done(ywalk_t *c, cfg_provider_t *p, yaml_node_t *map,
                                 const char *where);
void config_provider_preset_free(cfg_provider_t *p);
bool config_model_preset_key(ywalk_t *c, cfg_model_t *m, const char *k, yaml_node_t *v,
                             const char *what);
void config_model_preset_done(ywalk_t *c, const config_t *cfg, const cfg_model_t *m,
                              yaml_node_t *map, const char *where);
/* The price and capability table (src/core/config_catalog.c):
 * config_load_catalog loads the top-level catalog: value v (NULL: the
 * compiled-in default path, a warning when unreadable) into cfg->catalog,
 * before the models; the model walk hands its keys to
 * config_model_catalog_key (false: not catalog, context_window,
 * max_output_tokens or capabilities) and ends with
 * config_model_catalog_done, which fills what the model did not set from its
 * entry and marks (and warns about) an unpriced model. */
#define CATALOG_MODEL_KEYS "catalog, context_window, max_output_tokens, capabilities"
const char *config_default_catalog(void);
/* ", catalog gpt-4o, 128k context, tools,vision" for --check-config. f: FILE *. */
void config_print_model_catalog(const cfg_model_t *m, void *f);
void config_load_catalog(ywalk_t *c, config_t *cfg, yaml_node_t *v);
bool config_model_catalog_key(ywalk_t *c, const config_t *cfg, cfg_model_t *m, const char *k,
                              yaml_node_t *v, const char *what);
void config_model_catalog_done(ywalk_t *c, const config_t *cfg, cfg_model_t *m,
                               const yaml_node_t *map);
/* One warning naming every unpriced model (after the models are parsed). */
void config_warn_unpriced(ywalk_t *c, const config_t *cfg);
/* Circuit breaking and concurrency limits (src/core/config_health.c).
 * config_parse_circuit reads `circuit:` (a mapping, or true/false for
 * enabled) at `where` into out, marking the keys it sets in out->set;
 * config_parse_provider_limit takes a provider's key k when it is one of
 * circuit, max_inflight, max_queue, queue_timeout_ms (returns false
 * otherwise), after config_provider_limit_defaults; config_resolve_circuits
 * gives every model its circuit key by key: the model's, its provider's,
 * routing.circuit's, the built-in default. */
#define CIRCUIT_SET_ENABLED (1u << 0)
#define CIRCUIT_SET_FAILURES (1u << 1)
#define CIRCUIT_SET_RATIO (1u << 2)
#define CIRCUIT_SET_MIN_REQUESTS (1u << 3)
#define CIRCUIT_SET_WINDOW (1u << 4)
#define CIRCUIT_SET_COOLDOWN (1u << 5)
#define CIRCUIT_SET_MAX_COOLDOWN (1u << 6)
#define CIRCUIT_SET_RETRY_AFTER_MAX (1u << 7)
#define CIRCUIT_SET_ALL 0xffu
void config_parse_circuit(ywalk_t *c, yaml_node_t *v, const char *where, cfg_circuit_t *out);
void config_provider_limit_defaults(cfg_provider_t *p);
bool config_parse_provider_limit(ywalk_t *c, const char *k, yaml_node_t *v, const char *what,
                                 cfg_provider_t *p);
void config_resolve_circuits(config_t *cfg);
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
