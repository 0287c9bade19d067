/* config: the schema of llmrouter.yaml -> an immutable snapshot. The
 * document is loaded with libyaml's document API and walked section by
 * section with yamlwalk, which records every problem with its position and
 * lets the walk go on, so one run reports all errors. Also holds the
 * process-wide current snapshot. The sections' schema is in
 * config_schema.c, the data derived from a snapshot in config_derived.c. */
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

#include "core/config_schema.h"
#include "core/config_experiments.h"
#include "route/experiment.h"
#include "core/config_otel.h"
#include "core/catalog.h"

/* ---- load ---- */

static void parse_root(ywalk_t *c, config_t *cfg, yaml_node_t *root)
{
    const char *k;
    yaml_node_t *kn, *v;
    yaml_node_t *sec[12] = {0};
    static const char *names[12] = {"server", "providers",     "models", "tiers",   "routing",
                                    "cache",  "observability", "keys",   "budgets", "redis",
                                    "experiments", "catalog"};
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
        for (i = 0; i < UTIL_ARRAY_LEN(names); i++)
            if (strcmp(k, names[i]) == 0)
                break;
        if (i == UTIL_ARRAY_LEN(names))
            yw_unknown_key(c, kn, "the top level",
                           "server, providers, models, tiers, routing, cache, observability, keys, "
                           "budgets, redis, experiments, catalog");
        else
            sec[i] = v;
    }
    /* Order matters: models refer to providers, tiers to models. */
    if (sec[0])
        config_parse_server(c, cfg, sec[0]);
    if (sec[1])
        config_parse_providers(c, cfg, sec[1]);
    config_load_catalog(c, cfg, sec[11]); /* before models: they take from it */
    if (sec[2])
        config_parse_models(c, cfg, sec[2]);
    config_warn_unpriced(c, cfg);
    if (sec[3])
        config_parse_tiers(c, cfg, sec[3]);
    if (sec[4])
        config_parse_routing(c, cfg, sec[4], &default_node);
    if (sec[5])
        config_parse_cache(c, cfg, sec[5]);
    if (sec[6])
        config_parse_obs(c, cfg, sec[6]);
    if (sec[7])
        cfg->auth = auth_parse(c, sec[7]);
    if (sec[8])
        budget_cfg_parse(c, sec[8], cfg->budgets);
    if (sec[9])
        config_parse_redis(c, cfg, sec[9]);
    if (sec[10]) /* after routing: arms name rules and tiers */
        cfg->experiments = config_parse_experiments(c, cfg, sec[10]);
    config_resolve_redis(cfg);
    config_resolve_circuits(cfg); /* after models, providers and routing */
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
    cfg->request_timeout_ms = 30000;
    cfg->shutdown_grace_ms = 5000;
    cfg->log_level = LOG_INFO;
    cfg->default_tier = -1;
    cfg->baseline_model = -1;
    cfg->max_deadline_ms = 600000;
    cfg->cache.backend = CACHE_BACKEND_MEMORY;
    cfg->cache.ttl_s = 3600;
    cfg->cache.max_bytes = (size_t)64 << 20;
    cfg->cache.max_entry_bytes = (size_t)1 << 20;
    cfg->cache.redis_timeout_ms = 50;
    cfg->cache.key_prefix = xstrdup("llmrouter:cache:");
    cfg->cache.only_deterministic = true;
    cfg->cache.seed_is_deterministic = true;
    cfg->redis.cooldown_after_timeouts = 3;
    cfg->redis.cooldown_ms = 2000;
    cfg->redis.reconnect_max_ms = 5000;
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
        config_resolve_keys(&c, cfg);
    if (c.nerr == 0)
        config_check_admin(&c, cfg);
    if (c.nerr > 0) {
        config_unref(cfg);
        return NULL;
    }
    if (cfg->threads == 0) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->threads = n > 0 ? (unsigned)n : 1;
    }
    config_build_models_json(cfg);
    config_build_ready_json(&c, cfg);
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
        free(cfg->providers[i].anthropic_version);
        curl_slist_free_all(cfg->providers[i].headers);
        config_provider_preset_free(&cfg->providers[i]);
    }
    for (size_t i = 0; i < cfg->n_models; i++) {
        free(cfg->models[i].name);
        free(cfg->models[i].upstream);
        free(cfg->models[i].deployment);
        free(cfg->models[i].catalog);
    }
    for (size_t i = 0; i < cfg->n_tiers; i++) {
        free(cfg->tiers[i].name);
        free(cfg->tiers[i].models);
        cascade_cfg_free(cfg->tiers[i].cascade);
        for (size_t g = 0; g < cfg->tiers[i].n_groups; g++)
            free(cfg->tiers[i].groups[g].sticky_header);
        free(cfg->tiers[i].groups);
    }
    for (size_t i = 0; i < cfg->n_routable; i++)
        free(cfg->routable[i]);
    free(cfg->routable);
    rules_free(cfg->rules);
    experiments_free(cfg->experiments);
    yw_strv_free(cfg->classifier.labels);
    free(cfg->classifier.label_tier);
    free(cfg->classifier.prompt);
    scorer_free(cfg->scorer);
    catalog_free(cfg->catalog);
    free(cfg->cache.redis_url);
    free(cfg->cache.key_prefix);
    free(cfg->obs.access_log);
    free(cfg->obs.sample_file);
    free(cfg->obs.admin_key);
    free(cfg->obs.metrics_token);
    config_otlp_free(cfg->obs.otlp);
    config_quality_free(cfg);
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
    free(cfg->run_user);
    free(cfg->run_group);
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
    if (cfg->run_user != NULL)
        fprintf(f, "server: runs as user %s%s%s once the port is bound\n", cfg->run_user,
                cfg->run_group ? ", group " : "", cfg->run_group ? cfg->run_group : "");
    if (cfg->cache.backend == CACHE_BACKEND_REDIS ||
        (cfg->budgets && ((budget_cfg_t *)cfg->budgets)->redis_url))
        fprintf(f,
                "redis: a request waits at most %u ms for it (budget check and cache lookup); "
                "after %u timeouts in a row a thread stops trying for %u ms; reconnects back "
                "off up to %u ms\n",
                cfg->redis.request_budget_ms, cfg->redis.cooldown_after_timeouts,
                cfg->redis.cooldown_ms, cfg->redis.reconnect_max_ms);
    fprintf(f, "providers (%zu):\n", cfg->n_providers);
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const cfg_provider_t *p = &cfg->providers[i];
        fprintf(f, "  %-16s %s  %s%s%s%s  ", p->name,
                p->type == PROVIDER_ANTHROPIC ? "anthropic" : "openai-compatible", p->base_url,
                p->deployments ? "/deployments/{deployment}" : "", p->query ? "?" : "",
                p->query ? p->query : "");
        if (p->preset != NULL)
            fprintf(f, "(preset %s)  ", p->preset);
        if (p->api_key_env == NULL)
            fprintf(f, "no key\n");
        else
            fprintf(f, "key from $%s (%s)\n", p->api_key_env, p->key_missing ? "NOT SET" : "set");
    }
    if (cfg->catalog != NULL)
        fprintf(f, "price table: %s (%zu models, figures of %s)\n", cfg->catalog->path,
                cfg->catalog->n_entries, cfg->catalog->date);
    else
        fprintf(f, "price table: none\n");
    fprintf(f, "models (%zu):\n", cfg->n_models);
    for (size_t i = 0; i < cfg->n_models; i++) {
        const cfg_model_t *m = &cfg->models[i];
        if (m->unpriced)
            fprintf(f, "  %-16s -> %s/%s  UNPRICED", m->name, cfg->providers[m->provider].name,
                    m->upstream);
        else
            fprintf(f, "  %-16s -> %s/%s  $%.4g in / $%.4g out per Mtok", m->name,
                    cfg->providers[m->provider].name, m->upstream, m->input_per_mtok,
                    m->output_per_mtok);
        config_print_model_catalog(m, f);
        if (m->retries > 0)
            fprintf(f, ", %u retr%s", m->retries, m->retries == 1 ? "y" : "ies");
        fprintf(f, "\n");
    }
    fprintf(f, "tiers (%zu):\n", cfg->n_tiers);
    for (size_t i = 0; i < cfg->n_tiers; i++) {
        const cfg_tier_t *t = &cfg->tiers[i];
        fprintf(f, "  %-16s ", t->name);
        for (size_t j = 0; j < t->n_models; j++) {
            /* a group of equivalent models: any(a|b|c), one chain entry */
            bool open = false, in = false, last = false;
            for (size_t g = 0; g < t->n_groups; g++) {
                const cfg_group_t *gr = &t->groups[g];
                open = open || j == gr->first;
                in = in || (j > gr->first && j < gr->first + gr->n);
                last = last || j + 1 == gr->first + gr->n;
            }
            fprintf(f, "%s%s%s%s", j == 0 ? "" : in ? "|" : " -> ", open ? "any(" : "",
                    cfg->models[t->models[j]].name, last ? ")" : "");
        }
        fprintf(f, "%s%s\n", t->cascade ? "   (cascade, cheapest first)" : "",
                (int)i == cfg->default_tier ? "   (default)" : "");
    }
    fprintf(f, "routing: \"auto\"");
    for (size_t i = 0; i < cfg->n_routable; i++)
        fprintf(f, ", \"%s\"", cfg->routable[i]);
    fprintf(f, " -> tier %s\n", cfg->tiers[cfg->default_tier].name);
    if (cfg->deadline_ms > 0)
        fprintf(f, "deadline: %u ms until an answer starts (x-router-deadline-ms up to %u)\n",
                cfg->deadline_ms, cfg->max_deadline_ms);
    else
        fprintf(f, "deadline: none (x-router-deadline-ms up to %u ms)\n", cfg->max_deadline_ms);
    fprintf(f, "complexity scorer: %s\n",
            cfg->scorer != NULL ? scorer_source(cfg->scorer) : "built-in weights");
    fprintf(f, "rules (%zu):%s\n", rules_count(cfg->rules),
            rules_count(cfg->rules) ? "" : " every routed request uses the default tier");
    for (size_t i = 0; i < rules_count(cfg->rules); i++) {
        const rule_action_t *a = rules_action(cfg->rules, i);
        fprintf(f, "  %2zu. %-24s -> ", i + 1, a->name);
        if (a->classify) {
            fprintf(f, "the classifier label's tier");
        } else if (a->tier >= 0) {
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
    if (cfg->classifier.enabled) {
        const cfg_classifier_t *cl = &cfg->classifier;
        fprintf(f, "classifier: model %s, timeout %ums, labels", cfg->models[cl->model].name,
                cl->timeout_ms);
        for (size_t j = 0; j < cl->n_labels; j++)
            fprintf(f, "%s%s -> %s", j ? ", " : " ", cl->labels[j], cfg->tiers[cl->label_tier[j]].name);
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
    config_print_experiments(cfg, f);
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
