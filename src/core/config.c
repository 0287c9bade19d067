/* config: the schema of llmrouter.yaml -> an immutable snapshot. The
 * document is loaded with libyaml's document API and walked section by
 * section with yamlwalk, which records every problem with its position and
 * lets the walk go on, so one run reports all errors. Also holds the
 * process-wide current snapshot. */
#include "core/config.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include <cjson/cJSON.h>

#include "http/auth.h"
#include "account/budget.h"
#include "core/log.h"
#include "route/rules.h"
#include "core/util.h"
#include "core/yamlwalk.h"
#include "http/cors.h"
#include "core/buf.h"

static bool valid_env_name(const char *s)
{
    if (s[0] == '\0' || (s[0] >= '0' && s[0] <= '9') || strlen(s) > 128)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

static bool valid_name(ywalk_t *c, const yaml_node_t *n, const char *kind, const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 128) {
        yw_error(c, n, "%s name must be 1 to 128 characters", kind);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch <= ' ' || ch == 0x7f || ch == '"' || ch == '\\') {
            yw_error(c, n, "%s name \"%s\" may not contain spaces, quotes, backslashes or control "
                         "characters",
                   kind, name);
            return false;
        }
    }
    if (strcmp(name, "auto") == 0) {
        yw_error(c, n, "\"auto\" is reserved (it asks the router to choose); pick another %s name",
               kind);
        return false;
    }
    return true;
}

static bool parse_listen(const char *s, char **host, uint16_t *port)
{
    const char *colon;
    uint64_t p;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':')
            return false;
        *host = xstrndup(s + 1, (size_t)(end - s - 1));
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return false;
        if (memchr(s, ':', (size_t)(colon - s)) != NULL)
            return false; /* IPv6 needs brackets: [::1]:8080 */
        *host = colon == s ? xstrdup("0.0.0.0") : xstrndup(s, (size_t)(colon - s));
    }
    /* port 0: an ephemeral port, chosen at start (see main.c) */
    if (util_parse_u64(colon + 1, strlen(colon + 1), &p) < 0 || p > 65535) {
        free(*host);
        *host = NULL;
        return false;
    }
    *port = (uint16_t)p;
    return true;
}

/* ---- sections ---- */

/* A list of strings (or one string) checked entry by entry; lower-cased. */
static char **cors_strv(ywalk_t *c, yaml_node_t *v, const char *what, size_t *n,
                        int (*check)(const char *, char *, size_t))
{
    char **out = NULL;
    if (!yw_strv(c, v, what, &out, n))
        return NULL;
    for (size_t i = 0; i < *n; i++) {
        char why[160];
        for (char *p = out[i]; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        if (strcmp(out[i], "*") != 0 && check(out[i], why, sizeof why) < 0)
            yw_error(c, v, "%s: \"%s\": %s", what, out[i], why);
    }
    return out;
}

/* server.cors: {origins: [...] or "*", allow_headers?, max_age?,
 * allow_credentials?}. */
static void parse_cors(ywalk_t *c, cfg_cors_t *cors, yaml_node_t *map)
{
    const char *k;
    yaml_node_t *kn, *v, *origins = NULL;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "server.cors"))
        return;
    cors->enabled = true;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        uint64_t u;
        if (strcmp(k, "origins") == 0) {
            origins = v;
            yw_strv_free(cors->origins);
            cors->origins = cors_strv(c, v, "server.cors.origins", &cors->n_origins,
                                      cors_check_origin_pattern);
        } else if (strcmp(k, "allow_headers") == 0) {
            yw_strv_free(cors->allow_headers);
            cors->allow_headers = cors_strv(c, v, "server.cors.allow_headers",
                                            &cors->n_allow_headers, cors_check_header_pattern);
        } else if (strcmp(k, "max_age") == 0) {
            if (yw_u64(c, v, "server.cors.max_age", 0, 86400, &u))
                cors->max_age_s = (unsigned)u;
        } else if (strcmp(k, "allow_credentials") == 0) {
            yw_bool(c, v, "server.cors.allow_credentials", &cors->allow_credentials);
        } else {
            yw_unknown_key(c, kn, "server.cors",
                           "origins, allow_headers, max_age, allow_credentials");
        }
    }
    if (origins == NULL) {
        yw_error(c, map, "server.cors: origins is required (a list of origins such as "
                         "\"https://app.example.com\", or \"*\" for any)");
        return;
    }
    for (size_t i = 0; cors->origins && i < cors->n_origins; i++)
        if (strcmp(cors->origins[i], "*") == 0)
            cors->any_origin = true;
    if (cors->any_origin && cors->n_origins > 1)
        yw_error(c, origins, "server.cors.origins: \"*\" allows every origin; list nothing else");
    if (cors->any_origin && cors->allow_credentials)
        yw_error(c, origins, "server.cors: allow_credentials needs an explicit list of origins, "
                             "not \"*\" (any site could then act with the user's credentials)");
    for (size_t i = 0; cors->allow_headers && i < cors->n_allow_headers; i++)
        if (strcmp(cors->allow_headers[i], "*") == 0) {
            /* "*" is the default: whatever the page asks for. */
            yw_strv_free(cors->allow_headers);
            cors->allow_headers = NULL;
            cors->n_allow_headers = 0;
            break;
        }
}

static void parse_server(ywalk_t *c, config_t *cfg, yaml_node_t *map)
{
    const char *k;
    yaml_node_t *kn, *v;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "server"))
        return;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        uint64_t u;
        if (strcmp(k, "listen") == 0) {
            char *s = yw_str(c, v, "server.listen");
            if (s) {
                free(cfg->listen_host);
                cfg->listen_host = NULL;
                if (!parse_listen(s, &cfg->listen_host, &cfg->listen_port))
                    yw_error(c, v, "server.listen: expected \"HOST:PORT\" or \"[IPv6]:PORT\", found \"%s\"",
                           s);
                free(s);
            }
        } else if (strcmp(k, "threads") == 0) {
            if (yw_u64(c, v, "server.threads", 0, 256, &u))
                cfg->threads = (unsigned)u;
        } else if (strcmp(k, "max_body_bytes") == 0) {
            if (yw_u64(c, v, "server.max_body_bytes", 1024, 1ull << 30, &u))
                cfg->max_body_bytes = (size_t)u;
        } else if (strcmp(k, "max_header_bytes") == 0) {
            if (yw_u64(c, v, "server.max_header_bytes", 1024, 1u << 20, &u))
                cfg->max_header_bytes = (size_t)u;
        } else if (strcmp(k, "cors") == 0) {
            parse_cors(c, &cfg->cors, v);
        } else if (strcmp(k, "max_response_bytes") == 0) {
            if (yw_u64(c, v, "server.max_response_bytes", 1024, 1ull << 31, &u))
                cfg->max_response_bytes = (size_t)u;
        } else if (strcmp(k, "max_connections") == 0) {
            if (yw_u64(c, v, "server.max_connections", 1, 1000000, &u))
                cfg->max_connections = (unsigned)u;
        } else if (strcmp(k, "connection_timeout_s") == 0) {
            if (yw_u64(c, v, "server.connection_timeout_s", 1, 86400, &u))
                cfg->connection_timeout_s = (unsigned)u;
        } else if (strcmp(k, "shutdown_grace_ms") == 0) {
            if (yw_u64(c, v, "server.shutdown_grace_ms", 0, 600000, &u))
                cfg->shutdown_grace_ms = (unsigned)u;
        } else if (strcmp(k, "allow_unauthenticated_public") == 0) {
            yw_bool(c, v, "server.allow_unauthenticated_public", &cfg->allow_unauthenticated_public);
        } else if (strcmp(k, "log_level") == 0) {
            char *s = yw_str(c, v, "server.log_level");
            if (s) {
                int lv = log_level_parse(s);
                if (lv < 0)
                    yw_error(c, v, "server.log_level: expected error, warn, info or debug, found \"%s\"", s);
                else
                    cfg->log_level = lv;
                free(s);
            }
        } else {
            yw_unknown_key(c, kn, "server",
                        "listen, threads, max_body_bytes, max_header_bytes, max_response_bytes, "
                        "max_connections, connection_timeout_s, shutdown_grace_ms, log_level, "
                        "allow_unauthenticated_public, cors");
        }
    }
}

static void parse_provider(ywalk_t *c, cfg_provider_t *p, yaml_node_t *map)
{
    const char *k;
    yaml_node_t *kn, *v;
    bool have_type = false, have_url = false;
    char where[200];
    snprintf(where, sizeof where, "providers.%s", p->name);
    p->connect_timeout_ms = 5000;
    p->first_byte_timeout_ms = 60000;
    p->idle_timeout_ms = 120000;
    p->timeout_ms = 600000;
    p->line = (int)map->start_mark.line + 1;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, where))
        return;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        char what[256];
        snprintf(what, sizeof what, "%s.%s", where, k);
        if (strcmp(k, "type") == 0) {
            char *s = yw_str(c, v, what);
            have_type = true;
            if (s) {
                if (strcmp(s, "openai") == 0) {
                    p->type = PROVIDER_OPENAI;
                } else {
                    yw_error(c, v, "%s.type: unknown provider type \"%s\" (expected: openai — any "
                                 "OpenAI-compatible API)",
                           where, s);
                }
                free(s);
            }
        } else if (strcmp(k, "base_url") == 0) {
            char *s = yw_str(c, v, what);
            have_url = true;
            if (s) {
                size_t n = strlen(s);
                while (n > 0 && s[n - 1] == '/')
                    s[--n] = '\0';
                if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) {
                    yw_error(c, v, "%s.base_url: expected an http:// or https:// URL, found \"%s\"",
                           where, s);
                    free(s);
                } else {
                    free(p->base_url);
                    p->base_url = s;
                }
            }
        } else if (strcmp(k, "api_key_env") == 0) {
            /* Taken literally (no ${} expansion) and never echoed: a key
             * pasted here by mistake must not end up in messages. */
            const char *raw = (const char *)v->data.scalar.value;
            if (v->type != YAML_SCALAR_NODE || !valid_env_name(raw)) {
                yw_error(c, v, "%s: expected the name of an environment variable (letters, digits "
                             "and _, not starting with a digit), not its value",
                       what);
            } else {
                free(p->api_key_env);
                p->api_key_env = xstrdup(raw);
            }
        } else if (strcmp(k, "api_key") == 0) {
            yw_error(c, kn, "%s: keys are never written in the configuration; put the key in an "
                          "environment variable and name it with api_key_env",
                   where);
        } else if (strcmp(k, "connect_timeout_ms") == 0) {
            yw_u32(c, v, what, 1, 600000, &p->connect_timeout_ms);
        } else if (strcmp(k, "first_byte_timeout_ms") == 0) {
            yw_u32(c, v, what, 1, 3600000, &p->first_byte_timeout_ms);
        } else if (strcmp(k, "idle_timeout_ms") == 0) {
            yw_u32(c, v, what, 1, 3600000, &p->idle_timeout_ms);
        } else if (strcmp(k, "timeout_ms") == 0) {
            yw_u32(c, v, what, 1, 86400000, &p->timeout_ms);
        } else if (strcmp(k, "proxy") == 0) {
            char *s = yw_str(c, v, what);
            if (s) {
                free(p->proxy);
                p->proxy = s;
            }
        } else {
            yw_unknown_key(c, kn, where,
                        "type, base_url, api_key_env, connect_timeout_ms, first_byte_timeout_ms, "
                        "idle_timeout_ms, timeout_ms, proxy");
        }
    }
    if (!have_type)
        yw_error(c, map, "%s: missing \"type\" (expected: openai)", where);
    if (!have_url)
        yw_error(c, map, "%s: missing \"base_url\"", where);
}

static void parse_providers(ywalk_t *c, config_t *cfg, yaml_node_t *map)
{
    const char *k;
    yaml_node_t *kn, *v;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "providers"))
        return;
    cfg->providers = xcalloc((size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start),
                             sizeof *cfg->providers);
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        cfg_provider_t *p;
        if (!valid_name(c, kn, "provider", k))
            continue;
        p = &cfg->providers[cfg->n_providers++];
        p->name = xstrdup(k);
        parse_provider(c, p, v);
    }
}

static int find_provider(const config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_providers; i++)
        if (strcmp(cfg->providers[i].name, name) == 0)
            return (int)i;
    return -1;
}

static void parse_model(ywalk_t *c, config_t *cfg, cfg_model_t *m, yaml_node_t *map)
{
    const char *k;
    yaml_node_t *kn, *v;
    char where[200];
    bool have_cached = false;
    snprintf(where, sizeof where, "models.%s", m->name);
    m->provider = -1;
    m->tier = -1;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, where))
        return;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        char what[256];
        snprintf(what, sizeof what, "%s.%s", where, k);
        if (strcmp(k, "provider") == 0) {
            char *s = yw_str(c, v, what);
            if (s) {
                m->provider = find_provider(cfg, s);
                if (m->provider < 0) {
                    yw_error(c, v, "%s.provider: no provider named \"%s\" is defined under providers",
                           where, s);
                    m->provider = -2;
                }
                free(s);
            } else {
                m->provider = -2;
            }
        } else if (strcmp(k, "model") == 0) {
            char *s = yw_str(c, v, what);
            if (s) {
                free(m->upstream);
                m->upstream = s;
            }
        } else if (strcmp(k, "input_per_mtok") == 0) {
            yw_price(c, v, what, &m->input_per_mtok);
        } else if (strcmp(k, "output_per_mtok") == 0) {
            yw_price(c, v, what, &m->output_per_mtok);
        } else if (strcmp(k, "cached_input_per_mtok") == 0) {
            have_cached = yw_price(c, v, what, &m->cached_input_per_mtok);
        } else if (strcmp(k, "daily_cap_usd") == 0) {
            budget_parse_model_cap(c, v, what, &m->daily_cap_usd);
        } else {
            yw_unknown_key(c, kn, where,
                        "provider, model, input_per_mtok, output_per_mtok, cached_input_per_mtok, "
                        "daily_cap_usd");
        }
    }
    if (m->provider == -1)
        yw_error(c, map, "%s: missing \"provider\"", where);
    if (m->upstream == NULL)
        m->upstream = xstrdup(m->name);
    if (!have_cached)
        m->cached_input_per_mtok = m->input_per_mtok;
}

static void parse_models(ywalk_t *c, config_t *cfg, yaml_node_t *map)
{
    const char *k;
    yaml_node_t *kn, *v;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "models"))
        return;
    cfg->models = xcalloc((size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start),
                          sizeof *cfg->models);
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        cfg_model_t *m;
        if (!valid_name(c, kn, "model", k))
            continue;
        m = &cfg->models[cfg->n_models++];
        m->name = xstrdup(k);
        parse_model(c, cfg, m, v);
    }
}

static void parse_tiers(ywalk_t *c, config_t *cfg, yaml_node_t *map)
{
    const char *k;
    yaml_node_t *kn, *v;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "tiers"))
        return;
    cfg->tiers = xcalloc((size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start),
                         sizeof *cfg->tiers);
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        cfg_tier_t *t;
        size_t n;
        char where[200];
        if (!valid_name(c, kn, "tier", k))
            continue;
        if (config_find_model(cfg, k) >= 0) {
            yw_error(c, kn, "tier \"%s\" has the same name as a model; a request's \"model\" could "
                          "mean either",
                   k);
            continue;
        }
        snprintf(where, sizeof where, "tiers.%s", k);
        if (!yw_expect(c, v, YAML_SEQUENCE_NODE, where))
            continue;
        n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        if (n == 0 || n > 31) {
            yw_error(c, v, "%s: a tier needs 1 to 31 models, found %zu", where, n);
            continue;
        }
        t = &cfg->tiers[cfg->n_tiers++];
        t->name = xstrdup(k);
        t->models = xcalloc(n, sizeof *t->models);
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++) {
            yaml_node_t *mn = yw_node(c, *it);
            char *s = yw_str(c, mn, where);
            int mi;
            if (s == NULL)
                continue;
            mi = config_find_model(cfg, s);
            if (mi < 0) {
                yw_error(c, mn, "%s: no model named \"%s\" is defined under models", where, s);
            } else {
                bool dup = false;
                for (size_t j = 0; j < t->n_models; j++)
                    dup = dup || t->models[j] == mi;
                if (dup)
                    yw_error(c, mn, "%s: model \"%s\" is listed twice", where, s);
                else
                    t->models[t->n_models++] = mi;
                if (cfg->models[mi].tier < 0)
                    cfg->models[mi].tier = (int)(cfg->n_tiers - 1);
            }
            free(s);
        }
    }
}

static void parse_routing(ywalk_t *c, config_t *cfg, yaml_node_t *map, yaml_node_t **default_node)
{
    const char *k;
    yaml_node_t *kn, *v;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "routing"))
        return;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        if (strcmp(k, "default_tier") == 0) {
            char *s = yw_str(c, v, "routing.default_tier");
            *default_node = v;
            if (s) {
                cfg->default_tier = config_find_tier(cfg, s);
                if (cfg->default_tier < 0)
                    yw_error(c, v, "routing.default_tier: no tier named \"%s\" is defined under tiers",
                           s);
                free(s);
            }
        } else if (strcmp(k, "routable_models") == 0) {
            if (!yw_expect(c, v, YAML_SEQUENCE_NODE, "routing.routable_models"))
                continue;
            cfg->routable = xcalloc(
                (size_t)(v->data.sequence.items.top - v->data.sequence.items.start) + 1,
                sizeof *cfg->routable);
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 it < v->data.sequence.items.top; it++) {
                yaml_node_t *mn = yw_node(c, *it);
                char *s = yw_str(c, mn, "routing.routable_models");
                if (s == NULL)
                    continue;
                if (config_find_tier(cfg, s) >= 0) {
                    yw_error(c, mn, "routing.routable_models: \"%s\" is a tier name; a tier name "
                                  "already selects that tier",
                           s);
                    free(s);
                    continue;
                }
                cfg->routable[cfg->n_routable++] = s;
            }
        } else if (strcmp(k, "baseline_model") == 0) {
            char *s = yw_str(c, v, "routing.baseline_model");
            if (s && (cfg->baseline_model = config_find_model(cfg, s)) < 0)
                yw_error(c, v, "routing.baseline_model: no model named \"%s\" is defined under models",
                         s);
            free(s);
        } else if (strcmp(k, "allow_client_tier") == 0) {
            yw_bool(c, v, "routing.allow_client_tier", &cfg->allow_client_tier);
        } else if (strcmp(k, "rules") == 0) {
            rules_free(cfg->rules);
            cfg->rules = rules_parse(c, cfg, v);
        } else {
            yw_unknown_key(c, kn, "routing",
                           "default_tier, routable_models, allow_client_tier, baseline_model, rules");
        }
    }
}

static void parse_cache(ywalk_t *c, config_t *cfg, yaml_node_t *map)
{
    const char *k;
    yaml_node_t *kn, *v;
    cfg_cache_t *cc = &cfg->cache;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "cache"))
        return;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        uint64_t u;
        char what[64];
        snprintf(what, sizeof what, "cache.%s", k);
        if (strcmp(k, "backend") == 0) {
            char *s = yw_str(c, v, what);
            if (s && strcmp(s, "memory") == 0)
                cc->backend = CACHE_BACKEND_MEMORY;
            else if (s && strcmp(s, "redis") == 0)
                cc->backend = CACHE_BACKEND_REDIS;
            else if (s && (strcmp(s, "off") == 0 || strcmp(s, "none") == 0))
                cc->backend = CACHE_BACKEND_OFF;
            else if (s)
                yw_error(c, v, "cache.backend: expected memory, redis or off, found \"%s\"", s);
            free(s);
        } else if (strcmp(k, "ttl_s") == 0) {
            if (yw_u64(c, v, what, 1, 31536000, &u))
                cc->ttl_s = (unsigned)u;
        } else if (strcmp(k, "max_bytes") == 0) {
            if (yw_u64(c, v, what, 65536, 1ull << 40, &u))
                cc->max_bytes = (size_t)u;
        } else if (strcmp(k, "max_entry_bytes") == 0) {
            if (yw_u64(c, v, what, 1024, 1ull << 30, &u))
                cc->max_entry_bytes = (size_t)u;
        } else if (strcmp(k, "redis_url") == 0) {
            free(cc->redis_url);
            cc->redis_url = yw_str(c, v, what);
        } else if (strcmp(k, "redis_timeout_ms") == 0) {
            if (yw_u64(c, v, what, 1, 10000, &u))
                cc->redis_timeout_ms = (unsigned)u;
        } else if (strcmp(k, "key_prefix") == 0) {
            char *s = yw_str(c, v, what);
            if (s) {
                free(cc->key_prefix);
                cc->key_prefix = s;
            }
        } else if (strcmp(k, "per_key") == 0) {
            yw_bool(c, v, what, &cc->per_key);
        } else if (strcmp(k, "only_deterministic") == 0) {
            yw_bool(c, v, what, &cc->only_deterministic);
        } else if (strcmp(k, "seed_is_deterministic") == 0) {
            yw_bool(c, v, what, &cc->seed_is_deterministic);
        } else {
            yw_unknown_key(c, kn, "cache",
                           "backend, ttl_s, max_bytes, max_entry_bytes, redis_url, "
                           "redis_timeout_ms, key_prefix, per_key, only_deterministic, "
                           "seed_is_deterministic");
        }
    }
    if (cc->backend == CACHE_BACKEND_REDIS && cc->redis_url == NULL)
        yw_error(c, map, "cache: backend redis needs redis_url (e.g. \"redis://127.0.0.1:6379/0\")");
}

static void parse_obs(ywalk_t *c, config_t *cfg, yaml_node_t *map)
{
    const char *k;
    yaml_node_t *kn, *v;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "observability"))
        return;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        char what[64];
        snprintf(what, sizeof what, "observability.%s", k);
        if (strcmp(k, "access_log") == 0 || strcmp(k, "sample_file") == 0) {
            char *s = yw_str(c, v, what);
            char **dst = k[0] == 'a' ? &cfg->obs.access_log : &cfg->obs.sample_file;
            if (s) {
                free(*dst);
                *dst = s;
            }
        } else if (strcmp(k, "sample_rate") == 0) {
            double r;
            if (yw_price(c, v, what, &r)) {
                if (r > 1)
                    yw_error(c, v, "%s: expected a fraction from 0 to 1", what);
                else
                    cfg->obs.sample_rate = r;
            }
        } else if (strcmp(k, "admin_key_env") == 0 || strcmp(k, "admin_key_sha256") == 0 ||
                   strcmp(k, "metrics_token_env") == 0 ||
                   strcmp(k, "metrics_token_sha256") == 0) {
            struct auth_secret **dst = k[0] == 'a' ? &cfg->obs.admin_key : &cfg->obs.metrics_token;
            if (*dst != NULL) {
                yw_error(c, kn, "%s: give one of %s_env or %s_sha256", what,
                         k[0] == 'a' ? "admin_key" : "metrics_token",
                         k[0] == 'a' ? "admin_key" : "metrics_token");
                continue;
            }
            *dst = auth_secret_parse(c, v, what, strstr(k, "_env") != NULL);
        } else {
            yw_unknown_key(c, kn, "observability",
                           "access_log, sample_rate, sample_file, admin_key_env, admin_key_sha256, "
                           "metrics_token_env, metrics_token_sha256");
        }
    }
    if (cfg->obs.sample_rate > 0 && cfg->obs.sample_file == NULL)
        yw_error(c, map, "observability: sample_rate needs sample_file (a JSONL file path)");
}

/* ---- derived data ---- */

static struct curl_slist *must_append(struct curl_slist *l, const char *s)
{
    struct curl_slist *n = curl_slist_append(l, s);
    if (n == NULL) {
        fprintf(stderr, "llmrouter: out of memory building headers\n");
        abort();
    }
    return n;
}

static const char *env_first(const char *a, const char *b)
{
    const char *v = a ? getenv(a) : NULL;
    if (v == NULL || v[0] == '\0')
        v = b ? getenv(b) : NULL;
    return v && v[0] ? v : NULL;
}

static void resolve_keys(ywalk_t *c, config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_providers; i++) {
        cfg_provider_t *p = &cfg->providers[i];
        struct curl_slist *h = NULL;
        if (p->proxy == NULL) {
            /* what curl would read from the environment on every transfer,
             * read once here (curl's rules: lower-case http_proxy only) */
            const char *v = strncmp(p->base_url, "https:", 6) == 0
                                ? env_first("https_proxy", "HTTPS_PROXY")
                                : env_first("http_proxy", NULL);
            if (v == NULL)
                v = env_first("all_proxy", "ALL_PROXY");
            p->proxy = xstrdup(v ? v : "");
        }
        if (p->no_proxy == NULL) {
            const char *v = env_first("no_proxy", "NO_PROXY");
            p->no_proxy = v ? xstrdup(v) : NULL;
        }
        h = must_append(h, "Content-Type: application/json");
        h = must_append(h, "Accept: application/json");
        h = must_append(h, "Expect:");
        if (p->api_key_env != NULL) {
            const char *key = getenv(p->api_key_env);
            if (key == NULL || key[0] == '\0') {
                p->key_missing = true;
                /* A reload (SIGHUP) keeps the environment the process
                 * started with, so only a restart picks the key up. */
                yw_append_warning(c,
                       "%s:%d: warning: provider \"%s\": environment variable %s is not set; "
                       "its models are skipped in every chain: set %s in the service's "
                       "environment (e.g. /etc/llmrouter/llmrouter.env) and restart llmrouter "
                       "(a reload keeps the environment the process started with)\n",
                       c->file, p->line, p->name, p->api_key_env, p->api_key_env);
            } else if (strpbrk(key, "\r\n") != NULL) {
                yw_append_error(c,
                       "%s:%d:1: provider \"%s\": environment variable %s contains a line break\n",
                       c->file, p->line, p->name, p->api_key_env);
            } else {
                size_t n = strlen(key) + 32;
                char *line = xmalloc(n);
                snprintf(line, n, "Authorization: Bearer %s", key);
                h = must_append(h, line);
                memset(line, 0, n);
                free(line);
            }
        }
        p->headers = h;
    }
}

/* Why model m cannot serve, or NULL when it can. */
static const char *model_unusable(const config_t *cfg, int m, char *buf, size_t len)
{
    const cfg_provider_t *p = &cfg->providers[cfg->models[m].provider];
    if (!p->key_missing)
        return NULL;
    snprintf(buf, len, "model %s: provider %s's api_key_env %s is not set", cfg->models[m].name,
             p->name, p->api_key_env);
    return buf;
}

/* One entry of /readyz for a chain (a tier's or a rule's): its usable
 * models and why the others cannot serve. Returns whether it can serve;
 * appends "KIND NAME (reasons)" to why when it cannot. */
static bool ready_entry(const config_t *cfg, cJSON *list, const char *kind, const char *name,
                        const int *chain, size_t n, buf_t *why)
{
    cJSON *e = cJSON_CreateObject(), *usable, *missing = NULL;
    size_t n_usable = 0;
    char reason[512];
    for (size_t i = 0; i < n; i++)
        n_usable += model_unusable(cfg, chain[i], reason, sizeof reason) == NULL;
    cJSON_AddStringToObject(e, "name", name);
    cJSON_AddBoolToObject(e, "ready", n_usable > 0);
    cJSON_AddItemToArray(list, e);
    usable = cJSON_AddArrayToObject(e, "usable_models");
    if (n_usable < n)
        missing = cJSON_AddArrayToObject(e, "missing");
    for (size_t i = 0; i < n; i++) {
        const char *r = model_unusable(cfg, chain[i], reason, sizeof reason);
        if (r == NULL)
            cJSON_AddItemToArray(usable, cJSON_CreateString(cfg->models[chain[i]].name));
        else
            cJSON_AddItemToArray(missing, cJSON_CreateString(r));
    }
    if (n_usable == 0) {
        char head[300];
        snprintf(head, sizeof head, "%s%s %s has no usable model (", buf_len(why) ? "; " : "", kind,
                 name);
        buf_puts(why, head);
        for (size_t i = 0; i < n; i++) {
            buf_puts(why, i ? "; " : "");
            buf_puts(why, model_unusable(cfg, chain[i], reason, sizeof reason));
        }
        buf_puts(why, ")");
    }
    return n_usable > 0;
}

/* The body of GET /readyz, fixed per snapshot: ready when every tier and
 * every rule's explicit chain has at least one model whose provider key is
 * set (a tier without one answers every request with 502). */
static void build_ready_json(ywalk_t *c, config_t *cfg)
{
    cJSON *root = cJSON_CreateObject(), *tiers, *rules;
    buf_t why;
    bool ok = true;
    buf_init(&why, (size_t)1 << 20);
    cJSON_AddStringToObject(root, "status", "ready");
    tiers = cJSON_AddArrayToObject(root, "tiers");
    for (size_t i = 0; i < cfg->n_tiers; i++) {
        const cfg_tier_t *t = &cfg->tiers[i];
        if (!ready_entry(cfg, tiers, "tier", t->name, t->models, t->n_models, &why)) {
            ok = false;
            yw_append_warning(c, "%s: warning: tier \"%s\" has no usable model (every provider key "
                                 "of its chain is unset): GET /readyz answers 503\n",
                              c->file, t->name);
        }
    }
    rules = cJSON_AddArrayToObject(root, "rules");
    for (size_t i = 0; i < rules_count(cfg->rules); i++) {
        const rule_action_t *a = rules_action(cfg->rules, i);
        if (a->tier >= 0)
            continue; /* its tier is listed above */
        if (!ready_entry(cfg, rules, "rule", a->name, a->chain, a->n_chain, &why)) {
            ok = false;
            yw_append_warning(c, "%s: warning: rule \"%s\": no model of its chain is usable: GET "
                                 "/readyz answers 503\n",
                              c->file, a->name);
        }
    }
    if (!ok) {
        cJSON *err = cJSON_CreateObject();
        buf_cstr(&why);
        cJSON_SetValuestring(cJSON_GetObjectItem(root, "status"), "not_ready");
        cJSON_AddStringToObject(err, "message", buf_ptr(&why));
        cJSON_AddStringToObject(err, "type", "server_error");
        cJSON_AddNullToObject(err, "param");
        cJSON_AddStringToObject(err, "code", "not_ready");
        cJSON_AddItemToObject(root, "error", err);
    }
    buf_free(&why);
    cfg->ready = ok;
    cfg->ready_json = cJSON_PrintUnformatted(root);
    if (cfg->ready_json == NULL)
        abort();
    cfg->ready_json_len = strlen(cfg->ready_json);
    cJSON_Delete(root);
}

/* The admin endpoints behind keys: say when nothing can open them, and
 * refuse an admin secret that is also a proxy key's (that key's holders
 * would read every key's spend; admin: true on the key says it openly). */
static void check_admin(ywalk_t *c, config_t *cfg)
{
    const auth_secret_t *adm = cfg->obs.admin_key, *met = cfg->obs.metrics_token;
    bool opener = adm != NULL && adm->usable;
    for (size_t i = 0; i < auth_count(cfg->auth); i++) {
        const auth_key_t *k = auth_key_at(cfg->auth, i);
        opener = opener || (k->admin && k->usable);
        if (adm && adm->usable && k->usable && auth_ct_equal(adm->sha256, k->sha256, 32))
            yw_append_error(c, "%s:%zu:%zu: observability.admin_key: same secret as proxy key "
                               "\"%s\" (give that key admin: true instead)\n",
                            c->file, adm->line, adm->col, k->name);
        if (met && met->usable && k->usable && auth_ct_equal(met->sha256, k->sha256, 32))
            yw_append_error(c, "%s:%zu:%zu: observability.metrics_token: same secret as proxy key "
                               "\"%s\"\n",
                            c->file, met->line, met->col, k->name);
    }
    if (auth_admin_gated(cfg->auth, adm, met) && !opener)
        yw_append_warning(c, "%s: warning: proxy keys are configured but no usable admin key: "
                             "/dashboard and /v1/router/stats%s answer 401 to everyone (set "
                             "observability.admin_key_env, or admin: true on a key)\n",
                          c->file, met && met->usable ? "" : " and /metrics");
}

static void build_models_json(config_t *cfg)
{
    cJSON *root = cJSON_CreateObject(), *data;
    cJSON_AddStringToObject(root, "object", "list");
    data = cJSON_AddArrayToObject(root, "data");
#define ADD_ENTRY(id, owner)                                                                       \
    do {                                                                                           \
        cJSON *m = cJSON_CreateObject();                                                           \
        cJSON_AddStringToObject(m, "id", (id));                                                    \
        cJSON_AddStringToObject(m, "object", "model");                                             \
        cJSON_AddNumberToObject(m, "created", (double)cfg->loaded_at);                             \
        cJSON_AddStringToObject(m, "owned_by", (owner));                                           \
        cJSON_AddItemToArray(data, m);                                                             \
    } while (0)
    ADD_ENTRY("auto", "llmrouter");
    for (size_t i = 0; i < cfg->n_tiers; i++)
        ADD_ENTRY(cfg->tiers[i].name, "llmrouter");
    for (size_t i = 0; i < cfg->n_models; i++)
        ADD_ENTRY(cfg->models[i].name, cfg->providers[cfg->models[i].provider].name);
    for (size_t i = 0; i < cfg->n_routable; i++)
        if (config_find_model(cfg, cfg->routable[i]) < 0)
            ADD_ENTRY(cfg->routable[i], "llmrouter");
#undef ADD_ENTRY
    cfg->models_json = cJSON_PrintUnformatted(root);
    if (cfg->models_json == NULL)
        abort();
    cfg->models_json_len = strlen(cfg->models_json);
    cJSON_Delete(root);
}

/* ---- load ---- */

static void parse_root(ywalk_t *c, config_t *cfg, yaml_node_t *root)
{
    const char *k;
    yaml_node_t *kn, *v;
    yaml_node_t *sec[9] = {0};
    static const char *names[9] = {"server", "providers", "models",        "tiers", "routing",
                                   "cache",  "observability", "keys",      "budgets"};
    yaml_node_t *default_node = NULL;

    if (root == NULL || yw_is_null(root)) {
        yw_append_error(c,
               "%s:1:1: the configuration is empty (expected a mapping with providers, models, "
               "tiers and routing)\n",
               c->file);
        return;
    }
    if (!yw_expect(c, root, YAML_MAPPING_NODE, "top level"))
        return;
    YW_MAP_FOREACH(c, root, k, kn, v)
    {
        size_t i;
        for (i = 0; i < 9; i++)
            if (strcmp(k, names[i]) == 0)
                break;
        if (i == 9)
            yw_unknown_key(c, kn, "the top level",
                           "server, providers, models, tiers, routing, cache, observability, keys, "
                           "budgets");
        else
            sec[i] = v;
    }
    /* Order matters: models refer to providers, tiers to models. */
    if (sec[0])
        parse_server(c, cfg, sec[0]);
    if (sec[1])
        parse_providers(c, cfg, sec[1]);
    if (sec[2])
        parse_models(c, cfg, sec[2]);
    if (sec[3])
        parse_tiers(c, cfg, sec[3]);
    if (sec[4])
        parse_routing(c, cfg, sec[4], &default_node);
    if (sec[5])
        parse_cache(c, cfg, sec[5]);
    if (sec[6])
        parse_obs(c, cfg, sec[6]);
    if (sec[7])
        cfg->auth = auth_parse(c, sec[7]);
    if (sec[8])
        budget_cfg_parse(c, sec[8], cfg->budgets);
    if (sec[1] == NULL || cfg->n_providers == 0)
        yw_error(c, root, "no providers are defined (expected a \"providers\" mapping)");
    if (sec[2] == NULL || cfg->n_models == 0)
        yw_error(c, root, "no models are defined (expected a \"models\" mapping)");
    if (sec[3] == NULL || cfg->n_tiers == 0)
        yw_error(c, root, "no tiers are defined (expected a \"tiers\" mapping of failover chains)");
    if (default_node == NULL && cfg->n_tiers > 0)
        yw_error(c, sec[4] ? sec[4] : root, "routing.default_tier is missing (the tier that "
                                          "\"auto\" uses when no rule matches)");
}

/* The 1-based column of a tab in the indentation (the blanks before the
 * first other character) of 0-based line `line` of text, or 0. */
static size_t tab_in_indent(const char *text, size_t len, size_t line)
{
    size_t i = 0;
    for (size_t l = 0; l < line && i < len; i++)
        if (text[i] == '\n')
            l++;
    for (size_t col = 1; i < len && (text[i] == ' ' || text[i] == '\t'); i++, col++)
        if (text[i] == '\t')
            return col;
    return 0;
}

/* libyaml's own words for a tab ("found character that cannot start any
 * token") do not say what is wrong, so a syntax error on a line indented
 * with a tab names the tab. */
static void syntax_error(ywalk_t *c, const yaml_parser_t *parser, const char *text, size_t len)
{
    const char *problem = parser->problem ? parser->problem : "unknown problem";
    const char *ctx = parser->context ? parser->context : "";
    const yaml_mark_t *marks[2] = {&parser->problem_mark, &parser->context_mark};
    for (int i = 0; i < 2 && text != NULL; i++) {
        size_t col = tab_in_indent(text, len, marks[i]->line);
        if (col > 0) {
            yw_append_error(c,
                            "%s:%zu:%zu: YAML syntax error: tabs are not allowed for indentation "
                            "in YAML (line %zu column %zu); indent with spaces (libyaml: %s%s%s)\n",
                            c->file, marks[i]->line + 1, col, marks[i]->line + 1, col, problem,
                            ctx[0] ? " " : "", ctx);
            return;
        }
    }
    yw_append_error(c, "%s:%zu:%zu: YAML syntax error: %s%s%s\n", c->file,
                    parser->problem_mark.line + 1, parser->problem_mark.column + 1, problem,
                    ctx[0] ? " " : "", ctx);
}

/* text/len: the document's bytes (for the tab check of syntax errors). */
static config_t *load_parser(const char *name, yaml_parser_t *parser, const char *text,
                             size_t len, char *errbuf, size_t errlen, char *warnbuf,
                             size_t warnlen)
{
    yaml_document_t doc;
    config_t *cfg = NULL;
    ywalk_t c = {.file = name, .doc = &doc, .err = errbuf, .errlen = errlen, .warn = warnbuf,
               .warnlen = warnlen};
    long n;

    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (warnbuf && warnlen)
        warnbuf[0] = '\0';
    if (!yaml_parser_load(parser, &doc)) {
        syntax_error(&c, parser, text, len);
        return NULL;
    }
    cfg = xcalloc(1, sizeof *cfg);
    atomic_init(&cfg->refs, 1);
    cfg->path = xstrdup(name);
    cfg->listen_host = xstrdup("127.0.0.1");
    cfg->listen_port = 8080;
    cfg->max_body_bytes = 4u << 20;
    cfg->max_response_bytes = 32u << 20;
    cfg->max_header_bytes = 16u << 10;
    cfg->cors.max_age_s = 600;
    cfg->max_connections = 10000;
    cfg->connection_timeout_s = 60;
    cfg->shutdown_grace_ms = 5000;
    cfg->log_level = LOG_INFO;
    cfg->default_tier = -1;
    cfg->baseline_model = -1;
    cfg->cache.backend = CACHE_BACKEND_MEMORY;
    cfg->cache.ttl_s = 3600;
    cfg->cache.max_bytes = (size_t)64 << 20;
    cfg->cache.max_entry_bytes = (size_t)1 << 20;
    cfg->cache.redis_timeout_ms = 50;
    cfg->cache.key_prefix = xstrdup("llmrouter:cache:");
    cfg->cache.only_deterministic = true;
    cfg->cache.seed_is_deterministic = true;
    cfg->obs.access_log = xstrdup("stdout");
    cfg->budgets = xcalloc(1, sizeof(budget_cfg_t));
    budget_cfg_init(cfg->budgets);
    cfg->loaded_at = (int64_t)time(NULL);

    parse_root(&c, cfg, yaml_document_get_root_node(&doc));
    yaml_document_delete(&doc);
    if (c.nerr == 0) {
        yaml_document_t more;
        if (!yaml_parser_load(parser, &more)) {
            syntax_error(&c, parser, text, len);
        } else {
            yaml_node_t *r = yaml_document_get_root_node(&more);
            if (r != NULL) {
                yw_append_error(&c,
                       "%s:%zu:%zu: a second YAML document; the configuration is one document\n",
                       name, r->start_mark.line + 1, r->start_mark.column + 1);
            }
            yaml_document_delete(&more);
        }
    }
    if (c.nerr == 0)
        resolve_keys(&c, cfg);
    if (c.nerr == 0)
        check_admin(&c, cfg);
    if (c.nerr > 0) {
        config_unref(cfg);
        return NULL;
    }
    if (cfg->threads == 0) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->threads = n > 0 ? (unsigned)n : 1;
    }
    build_models_json(cfg);
    build_ready_json(&c, cfg);
    return cfg;
}

config_t *config_load_string(const char *name, const char *yaml, size_t len, char *errbuf,
                             size_t errlen, char *warnbuf, size_t warnlen)
{
    yaml_parser_t parser;
    config_t *cfg;
    if (!yaml_parser_initialize(&parser))
        abort();
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    cfg = load_parser(name, &parser, yaml, len, errbuf, errlen, warnbuf, warnlen);
    yaml_parser_delete(&parser);
    return cfg;
}

#define CONFIG_MAX_FILE_BYTES ((size_t)64 << 20)

config_t *config_load(const char *path, char *errbuf, size_t errlen, char *warnbuf,
                      size_t warnlen)
{
    config_t *cfg = NULL;
    size_t len = 0, cap = 65536;
    char *text;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s: cannot open: %s\n", path, strerror(errno));
        return NULL;
    }
    /* read whole (it is small) so a syntax error can look at its line */
    text = xmalloc(cap);
    for (;;) {
        size_t n = fread(text + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
        if (len == cap) {
            if (cap >= CONFIG_MAX_FILE_BYTES) {
                if (errbuf && errlen)
                    snprintf(errbuf, errlen, "%s: larger than %zu MiB; is it the right file?\n",
                             path, CONFIG_MAX_FILE_BYTES >> 20);
                goto out;
            }
            cap *= 2;
            text = xrealloc(text, cap);
        }
    }
    if (ferror(f)) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s: cannot read: %s\n", path, strerror(errno));
        goto out;
    }
    cfg = config_load_string(path, text, len, errbuf, errlen, warnbuf, warnlen);
out:
    free(text);
    fclose(f);
    return cfg;
}

config_t *config_ref(config_t *cfg)
{
    atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
    return cfg;
}

void config_unref(config_t *cfg)
{
    if (cfg == NULL || atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < cfg->n_providers; i++) {
        free(cfg->providers[i].name);
        free(cfg->providers[i].base_url);
        free(cfg->providers[i].api_key_env);
        free(cfg->providers[i].proxy);
        free(cfg->providers[i].no_proxy);
        curl_slist_free_all(cfg->providers[i].headers);
    }
    for (size_t i = 0; i < cfg->n_models; i++) {
        free(cfg->models[i].name);
        free(cfg->models[i].upstream);
    }
    for (size_t i = 0; i < cfg->n_tiers; i++) {
        free(cfg->tiers[i].name);
        free(cfg->tiers[i].models);
    }
    for (size_t i = 0; i < cfg->n_routable; i++)
        free(cfg->routable[i]);
    free(cfg->routable);
    rules_free(cfg->rules);
    free(cfg->cache.redis_url);
    free(cfg->cache.key_prefix);
    free(cfg->obs.access_log);
    free(cfg->obs.sample_file);
    free(cfg->obs.admin_key);
    free(cfg->obs.metrics_token);
    auth_free(cfg->auth);
    if (cfg->budgets) {
        budget_cfg_free(cfg->budgets);
        free(cfg->budgets);
    }
    free(cfg->providers);
    free(cfg->models);
    free(cfg->tiers);
    free(cfg->models_json);
    free(cfg->ready_json);
    free(cfg->listen_host);
    yw_strv_free(cfg->cors.origins);
    yw_strv_free(cfg->cors.allow_headers);
    free(cfg->path);
    free(cfg);
}

int config_find_model(const config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_models; i++)
        if (strcmp(cfg->models[i].name, name) == 0)
            return (int)i;
    return -1;
}

int config_find_tier(const config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_tiers; i++)
        if (strcmp(cfg->tiers[i].name, name) == 0)
            return (int)i;
    return -1;
}

bool config_is_routable(const config_t *cfg, const char *name)
{
    if (strcmp(name, "auto") == 0)
        return true;
    for (size_t i = 0; i < cfg->n_routable; i++)
        if (strcmp(cfg->routable[i], name) == 0)
            return true;
    return false;
}

void config_print_summary(const config_t *cfg, void *file)
{
    FILE *f = file;
    fprintf(f, "%s: OK\n", cfg->path);
    fprintf(f, "server: listen %s:%u%s, %u thread%s, max body %zu bytes, max %u connections\n",
            cfg->listen_host, cfg->listen_port,
            cfg->listen_port == 0 ? " (a free port chosen at start)" : "", cfg->threads,
            cfg->threads == 1 ? "" : "s", cfg->max_body_bytes, cfg->max_connections);
    fprintf(f, "providers (%zu):\n", cfg->n_providers);
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const cfg_provider_t *p = &cfg->providers[i];
        fprintf(f, "  %-16s openai-compatible  %s  ", p->name, p->base_url);
        if (p->api_key_env == NULL)
            fprintf(f, "no key\n");
        else
            fprintf(f, "key from $%s (%s)\n", p->api_key_env, p->key_missing ? "NOT SET" : "set");
    }
    fprintf(f, "models (%zu):\n", cfg->n_models);
    for (size_t i = 0; i < cfg->n_models; i++) {
        const cfg_model_t *m = &cfg->models[i];
        fprintf(f, "  %-16s -> %s/%s  $%.4g in / $%.4g out per Mtok\n", m->name,
                cfg->providers[m->provider].name, m->upstream, m->input_per_mtok,
                m->output_per_mtok);
    }
    fprintf(f, "tiers (%zu):\n", cfg->n_tiers);
    for (size_t i = 0; i < cfg->n_tiers; i++) {
        const cfg_tier_t *t = &cfg->tiers[i];
        fprintf(f, "  %-16s ", t->name);
        for (size_t j = 0; j < t->n_models; j++)
            fprintf(f, "%s%s", j ? " -> " : "", cfg->models[t->models[j]].name);
        fprintf(f, "%s\n", (int)i == cfg->default_tier ? "   (default)" : "");
    }
    fprintf(f, "routing: \"auto\"");
    for (size_t i = 0; i < cfg->n_routable; i++)
        fprintf(f, ", \"%s\"", cfg->routable[i]);
    fprintf(f, " -> tier %s\n", cfg->tiers[cfg->default_tier].name);
    fprintf(f, "rules (%zu):%s\n", rules_count(cfg->rules),
            rules_count(cfg->rules) ? "" : " every routed request uses the default tier");
    for (size_t i = 0; i < rules_count(cfg->rules); i++) {
        const rule_action_t *a = rules_action(cfg->rules, i);
        fprintf(f, "  %2zu. %-24s -> ", i + 1, a->name);
        if (a->tier >= 0) {
            fprintf(f, "tier %s", cfg->tiers[a->tier].name);
        } else {
            fprintf(f, "chain");
            for (size_t j = 0; j < a->n_chain; j++)
                fprintf(f, "%s%s", j ? " -> " : " ", cfg->models[a->chain[j]].name);
        }
        if (a->cache == RULE_CACHE_OFF)
            fprintf(f, ", cache off");
        else if (a->cache == RULE_CACHE_TTL)
            fprintf(f, ", cache %us", a->cache_ttl_s);
        for (size_t j = 0; j < a->n_tags; j++)
            fprintf(f, "%s%s", j ? "," : ", tags ", a->tags[j]);
        fprintf(f, "\n");
    }
    if (cfg->allow_client_tier)
        fprintf(f, "clients may force a tier with the x-router-tier header\n");
    if (cfg->cache.backend == CACHE_BACKEND_OFF)
        fprintf(f, "cache: off\n");
    else
        fprintf(f, "cache: %s, ttl %us%s%s\n",
                cfg->cache.backend == CACHE_BACKEND_MEMORY ? "memory" : "redis", cfg->cache.ttl_s,
                cfg->cache.per_key ? ", per key" : "",
                cfg->cache.only_deterministic ? ", deterministic requests only" : "");
}

static pthread_mutex_t g_current_lock = PTHREAD_MUTEX_INITIALIZER;
static config_t *g_current;
static atomic_uint g_generation;

void config_publish(config_t *cfg)
{
    config_t *old;
    pthread_mutex_lock(&g_current_lock);
    old = g_current;
    g_current = cfg;
    atomic_fetch_add(&g_generation, 1);
    pthread_mutex_unlock(&g_current_lock);
    config_unref(old);
}

config_t *config_current(void)
{
    config_t *cfg;
    pthread_mutex_lock(&g_current_lock);
    cfg = g_current ? config_ref(g_current) : NULL;
    pthread_mutex_unlock(&g_current_lock);
    return cfg;
}

unsigned config_generation(void)
{
    return atomic_load(&g_generation);
}
