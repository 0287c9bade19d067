/* config_schema: the schema of each section of llmrouter.yaml — server
 * (with cors), providers, models, tiers, routing, cache, observability —
 * walked with yamlwalk into the snapshot being built. The keys, proxy keys
 * and budgets sections belong to their modules (http/auth, account/budget)
 * and the rules to route/rules_parse. Called by config.c only. */
#include "core/config_schema.h"
#include "core/config_otel.h"
#include "core/config.h"
#include "core/config_quality.h"

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
#include "upstream/cascade.h"
#include "route/scorer.h"
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

void config_parse_server(ywalk_t *c, config_t *cfg, yaml_node_t *map)
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
        } else if (strcmp(k, "request_timeout_ms") == 0) {
            if (yw_u64(c, v, "server.request_timeout_ms", 100, 3600000, &u))
                cfg->request_timeout_ms = (unsigned)u;
        } else if (strcmp(k, "max_connections_per_ip") == 0) {
            if (yw_u64(c, v, "server.max_connections_per_ip", 0, 1000000, &u))
                cfg->max_connections_per_ip = (unsigned)u;
        } else if (strcmp(k, "shutdown_grace_ms") == 0) {
            if (yw_u64(c, v, "server.shutdown_grace_ms", 0, 600000, &u))
                cfg->shutdown_grace_ms = (unsigned)u;
        } else if (strcmp(k, "user") == 0 || strcmp(k, "group") == 0) {
            config_parse_run_as(c, cfg, k, v); /* config_ops.c */
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
                        "max_connections, max_connections_per_ip, connection_timeout_s, "
                        "request_timeout_ms, shutdown_grace_ms, log_level, "
                        "allow_unauthenticated_public, cors, user, group");
        }
    }
    config_check_run_as(c, cfg, map);
}

static void parse_provider(ywalk_t *c, cfg_provider_t *p, yaml_node_t *map)
{
    const char *k;
    yaml_node_t *kn, *v;
    bool have_type = false, have_url = false;
    yaml_node_t *retry_lists[3] = {NULL, NULL, NULL};
    char where[200];
    snprintf(where, sizeof where, "providers.%s", p->name);
    config_provider_retry_init(p);
    p->connect_timeout_ms = 5000;
    p->first_byte_timeout_ms = 60000;
    p->idle_timeout_ms = 120000;
    p->timeout_ms = 600000;
    config_provider_limit_defaults(p);
    p->line = (int)map->start_mark.line + 1;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, where))
        return;
    config_provider_preset_apply(c, p, map, where, &have_type, &have_url);
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        char what[256];
        snprintf(what, sizeof what, "%s.%s", where, k);
        if (config_provider_preset_key(c, p, k, kn, v, what)) {
            /* preset and the keys beside it (config_presets.c) */
        } else if (strcmp(k, "type") == 0) {
            char *s = yw_str(c, v, what);
            have_type = true;
            if (s) {
                if (strcmp(s, "openai") == 0) {
                    p->type = PROVIDER_OPENAI;
                } else if (strcmp(s, "anthropic") == 0) {
                    p->type = PROVIDER_ANTHROPIC;
                } else {
                    yw_error(c, v, "%s.type: unknown provider type \"%s\" (expected: openai — any "
                                 "OpenAI-compatible API — or anthropic — Anthropic's Messages API)",
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
        } else if (strcmp(k, "anthropic_version") == 0) {
            /* goes into a header line: a line break would smuggle headers */
            char *s = yw_str(c, v, what);
            if (s && (s[0] == '\0' || strlen(s) > 64 || strpbrk(s, "\r\n") != NULL)) {
                yw_error(c, v, "%s: expected a version such as \"2023-06-01\"", what);
                free(s);
            } else if (s) {
                free(p->anthropic_version);
                p->anthropic_version = s;
            }
        } else if (strcmp(k, "responses_api") == 0) {
            yw_bool(c, v, what, &p->responses_api);
        } else if (config_parse_provider_limit(c, k, v, what, p)) {
            /* circuit, max_inflight, max_queue, queue_timeout_ms */
        } else if (!config_provider_retry_key(c, p, k, v, what, retry_lists)) {
            yw_unknown_key(c, kn, where,
                        "type, base_url, api_key_env, connect_timeout_ms, first_byte_timeout_ms, "
                        "idle_timeout_ms, timeout_ms, proxy, anthropic_version, responses_api, "
                        "circuit, max_inflight, max_queue, queue_timeout_ms, " RETRY_PROVIDER_KEYS
                        ", " PRESET_PROVIDER_KEYS);
        }
    }
    config_provider_retry_done(c, p, map, retry_lists, where);
    config_provider_preset_done(c, p, map, where);
    if (!have_type)
        yw_error(c, map, "%s: missing \"type\" (expected: openai or anthropic) or \"preset\"",
                 where);
    if (p->anthropic_version != NULL && p->type != PROVIDER_ANTHROPIC)
        yw_error(c, map, "%s: anthropic_version applies only to type: anthropic", where);
    if (p->responses_api && p->type != PROVIDER_OPENAI)
        yw_error(c, map, "%s: responses_api applies only to type: openai", where);
    if (!have_url)
        yw_error(c, map, "%s: missing \"base_url\"", where);
}

void config_parse_providers(ywalk_t *c, config_t *cfg, yaml_node_t *map)
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
    snprintf(where, sizeof where, "models.%s", m->name);
    m->default_max_tokens = 4096;
    m->provider = -1;
    m->tier = -1;
    config_model_retry_init(m);
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
            if (yw_price(c, v, what, &m->input_per_mtok))
                m->price_set |= MODEL_PRICE_INPUT;
        } else if (strcmp(k, "output_per_mtok") == 0) {
            if (yw_price(c, v, what, &m->output_per_mtok))
                m->price_set |= MODEL_PRICE_OUTPUT;
        } else if (strcmp(k, "cached_input_per_mtok") == 0) {
            if (yw_price(c, v, what, &m->cached_input_per_mtok))
                m->price_set |= MODEL_PRICE_CACHED;
        } else if (strcmp(k, "cache_write_per_mtok") == 0) {
            if (yw_price(c, v, what, &m->cache_write_per_mtok))
                m->price_set |= MODEL_PRICE_WRITE;
        } else if (strcmp(k, "default_max_tokens") == 0) {
            uint32_t mt;
            if (yw_u32(c, v, what, 1, 1000000, &mt))
                m->default_max_tokens = mt;
        } else if (strcmp(k, "daily_cap_usd") == 0) {
            budget_parse_model_cap(c, v, what, &m->daily_cap_usd);
        } else if (strcmp(k, "circuit") == 0) {
            config_parse_circuit(c, v, what, &m->circuit);
        } else if (config_model_preset_key(c, m, k, v, what)) {
            /* deployment (config_presets.c) */
        } else if (!config_model_retry_key(c, m, k, v, what) &&
                   !config_model_catalog_key(c, cfg, m, k, v, what)) {
            yw_unknown_key(c, kn, where,
                        "provider, model, input_per_mtok, output_per_mtok, cached_input_per_mtok, "
                        "cache_write_per_mtok, default_max_tokens, daily_cap_usd, circuit, "
                        "retries, deployment, " CATALOG_MODEL_KEYS);
        }
    }
    config_model_retry_done(cfg, m);
    config_model_preset_done(c, cfg, m, map, where);
    if (m->provider == -1)
        yw_error(c, map, "%s: missing \"provider\"", where);
    if (m->upstream == NULL)
        m->upstream = xstrdup(m->name);
    /* prices, context window and capabilities the model did not set: from
     * the price table (cached and cache-write prices default there too) */
    config_model_catalog_done(c, cfg, m, map);
}

void config_parse_models(ywalk_t *c, config_t *cfg, yaml_node_t *map)
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

/* The models of a tier: a list of model names, checked one by one. */
static void tier_models(ywalk_t *c, config_t *cfg, cfg_tier_t *t, yaml_node_t *v, const char *where)
{
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0 || n > 31) {
        yw_error(c, v, "%s: a tier needs 1 to 31 models, found %zu", where, n);
        return;
    }
    t->models = xcalloc(CFG_GROUP_MAX, sizeof *t->models); /* groups add members */
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        yaml_node_t *mn = yw_node(c, *it);
        char *s;
        int mi;
        if (mn != NULL && mn->type == YAML_MAPPING_NODE) { /* - any: [...] (config_lb.c) */
            config_tier_group(c, cfg, t, mn, where, CFG_GROUP_MAX);
            continue;
        }
        if (t->n_models >= CFG_GROUP_MAX) {
            yw_error(c, mn, "%s: a tier holds at most %d models, groups' members included", where,
                     CFG_GROUP_MAX);
            break;
        }
        s = yw_str(c, mn, where);
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

/* Cheapest first: input + output price per million tokens, the written
 * order among equals (an insertion sort: a tier has at most 31 models). */
static void sort_by_price(const config_t *cfg, cfg_tier_t *t)
{
    for (size_t i = 1; i < t->n_models; i++) {
        int m = t->models[i];
        double p = cfg->models[m].input_per_mtok + cfg->models[m].output_per_mtok;
        size_t j = i;
        for (; j > 0; j--) {
            const cfg_model_t *o = &cfg->models[t->models[j - 1]];
            if (o->input_per_mtok + o->output_per_mtok <= p)
                break;
            t->models[j] = t->models[j - 1];
        }
        t->models[j] = m;
    }
}

/* The mapping form: {models: [...], cascade: bool, order: price|as_written,
 * checks: {...}}. */
static void tier_mapping(ywalk_t *c, config_t *cfg, cfg_tier_t *t, yaml_node_t *map,
                         const char *where)
{
    const char *k;
    yaml_node_t *kn, *v, *models = NULL, *checks = NULL, *cascade_node = NULL;
    bool cascade = false, as_written = false;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        char what[256];
        snprintf(what, sizeof what, "%s.%s", where, k);
        if (strcmp(k, "models") == 0) {
            if (yw_expect(c, v, YAML_SEQUENCE_NODE, what))
                models = v;
        } else if (strcmp(k, "cascade") == 0) {
            yw_bool(c, v, what, &cascade);
            cascade_node = v;
        } else if (strcmp(k, "order") == 0) {
            char *s = yw_str(c, v, what);
            if (s && strcmp(s, "as_written") == 0)
                as_written = true;
            else if (s && strcmp(s, "price") != 0)
                yw_error(c, v, "%s: expected price or as_written, found \"%s\"", what, s);
            free(s);
        } else if (strcmp(k, "checks") == 0) {
            checks = v;
        } else {
            yw_unknown_key(c, kn, where, "models, cascade, order, checks");
        }
    }
    if (models == NULL) {
        yw_error(c, map, "%s: missing \"models\" (the tier's failover chain)", where);
        return;
    }
    tier_models(c, cfg, t, models, where);
    if (!cascade) {
        if (checks != NULL)
            yw_error(c, checks, "%s.checks: only a cascade tier has checks (add cascade: true)",
                     where);
        return;
    }
    if (t->n_models < 2)
        yw_error(c, cascade_node, "%s: a cascade needs at least 2 models, found %zu", where,
                 t->n_models);
    if (t->n_groups > 0)
        yw_error(c, cascade_node, "%s: groups of equivalent models (any:) are for plain failover "
                                  "tiers, not cascades (list one deployment per step)",
                 where);
    if (!as_written)
        sort_by_price(cfg, t);
    t->cascade = cascade_cfg_parse(c, cfg, checks, where);
}

void config_parse_tiers(ywalk_t *c, config_t *cfg, yaml_node_t *map)
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
        if (v->type != YAML_MAPPING_NODE && !yw_expect(c, v, YAML_SEQUENCE_NODE, where))
            continue;
        t = &cfg->tiers[cfg->n_tiers++];
        t->name = xstrdup(k);
        if (v->type == YAML_MAPPING_NODE)
            tier_mapping(c, cfg, t, v, where);
        else
            tier_models(c, cfg, t, v, where);
    }
}

void config_parse_cache(ywalk_t *c, config_t *cfg, yaml_node_t *map)
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

void config_parse_obs(ywalk_t *c, config_t *cfg, yaml_node_t *map)
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
        } else if (strcmp(k, "otlp") == 0) {
            config_parse_otlp(c, v, &cfg->obs.otlp); /* core/config_otel.c */
        } else if (strcmp(k, "judge") == 0) {
            config_parse_judge(c, cfg, v); /* core/config_quality.c */
        } else if (strcmp(k, "alerts") == 0) {
            config_parse_alerts(c, cfg, v);
        } else {
            yw_unknown_key(c, kn, "observability",
                           "access_log, sample_rate, sample_file, admin_key_env, admin_key_sha256, "
                           "metrics_token_env, metrics_token_sha256, otlp, judge, alerts");
        }
    }
    if (cfg->obs.sample_rate > 0 && cfg->obs.sample_file == NULL)
        yw_error(c, map, "observability: sample_rate needs sample_file (a JSONL file path)");
    if (cfg->obs.judge != NULL && cfg->obs.sample_file == NULL)
        yw_error(c, map, "observability: judge needs sample_file (judged samples are written there)");
    if (cfg->obs.alerts != NULL && cfg->obs.sample_file == NULL)
        yw_error(c, map, "observability: alerts need sample_file (the windows are made of samples)");
}
