/* config_routing: the `routing:` section of llmrouter.yaml — default tier,
 * routable names, client tiers, the complexity scorer's weights
 * (`scorer`), the classifier (`classifier`, parsed before `rules` so that
 * rules may name its labels), and the rules themselves (handed to
 * route/rules_parse). Called by config.c only. */
#include "core/config_schema.h"

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
#include "upstream/cascade.h"
#include "route/scorer.h"
#include "core/util.h"
#include "core/yamlwalk.h"
#include "http/cors.h"
#include "core/buf.h"
#include "route/classifier.h"

/* routing.classifier: {model, labels: {label: tier}, timeout_ms, prompt,
 * max_tokens, max_input_bytes, cache_entries, cache_ttl_s}. Parsed before
 * routing.rules, whose `classify` conditions name its labels. */
static void parse_classifier(ywalk_t *c, config_t *cfg, yaml_node_t *map)
{
    cfg_classifier_t *cl = &cfg->classifier;
    const char *k;
    yaml_node_t *kn, *v, *model_node = NULL;
    bool have_labels = false;
    cl->timeout_ms = 400;
    cl->max_tokens = 8;
    cl->max_input_bytes = 4000;
    cl->cache_entries = 4096;
    cl->cache_ttl_s = 600;
    cl->model = -1;
    cl->line = (int)map->start_mark.line + 1;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "routing.classifier"))
        return;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        uint32_t u;
        if (strcmp(k, "model") == 0) {
            char *s = yw_str(c, v, "routing.classifier.model");
            model_node = v;
            if (s && (cl->model = config_find_model(cfg, s)) < 0)
                yw_error(c, v, "routing.classifier.model: no model named \"%s\" is defined under models",
                         s);
            free(s);
        } else if (strcmp(k, "labels") == 0) {
            const char *lk;
            yaml_node_t *lkn, *lv;
            size_t cnt;
            have_labels = true;
            if (!yw_expect(c, v, YAML_MAPPING_NODE, "routing.classifier.labels"))
                continue;
            cnt = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
            if (cnt == 0 || cnt > 32) {
                yw_error(c, v, "routing.classifier.labels: give 1 to 32 labels, each mapped to a tier "
                               "({simple: budget, code: premium})");
                continue;
            }
            yw_strv_free(cl->labels);
            free(cl->label_tier);
            cl->labels = xcalloc(cnt + 1, sizeof *cl->labels);
            cl->label_tier = xcalloc(cnt, sizeof *cl->label_tier);
            cl->n_labels = 0;
            YW_MAP_FOREACH(c, v, lk, lkn, lv)
            {
                char *t = yw_str(c, lv, "routing.classifier.labels");
                bool ok = lk[0] != '\0' && strlen(lk) <= 32;
                for (const char *q = lk; ok && *q; q++)
                    ok = (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '_' || *q == '-';
                if (!ok)
                    yw_error(c, lkn, "routing.classifier.labels: the label \"%s\" must be 1-32 of "
                                     "a-z, 0-9, _ and - (the classifier answers it)",
                             lk);
                if (t == NULL)
                    continue;
                cl->label_tier[cl->n_labels] = config_find_tier(cfg, t);
                if (cl->label_tier[cl->n_labels] < 0)
                    yw_error(c, lv, "routing.classifier.labels.%s: no tier named \"%s\" is defined "
                                    "under tiers",
                             lk, t);
                free(t);
                cl->labels[cl->n_labels++] = xstrdup(lk);
            }
        } else if (strcmp(k, "timeout_ms") == 0) {
            if (yw_u32(c, v, "routing.classifier.timeout_ms", 10, 10000, &u))
                cl->timeout_ms = u;
        } else if (strcmp(k, "prompt") == 0) {
            free(cl->prompt);
            cl->prompt = yw_str(c, v, "routing.classifier.prompt");
            if (cl->prompt && (cl->prompt[0] == '\0' || strlen(cl->prompt) > 8192)) {
                yw_error(c, v, "routing.classifier.prompt: 1 to 8192 bytes");
                free(cl->prompt);
                cl->prompt = NULL;
            }
        } else if (strcmp(k, "max_tokens") == 0) {
            if (yw_u32(c, v, "routing.classifier.max_tokens", 1, 256, &u))
                cl->max_tokens = u;
        } else if (strcmp(k, "max_input_bytes") == 0) {
            if (yw_u32(c, v, "routing.classifier.max_input_bytes", 16, 1048576, &u))
                cl->max_input_bytes = u;
        } else if (strcmp(k, "cache_entries") == 0) {
            if (yw_u32(c, v, "routing.classifier.cache_entries", 0, 1000000, &u))
                cl->cache_entries = u;
        } else if (strcmp(k, "cache_ttl_s") == 0) {
            if (yw_u32(c, v, "routing.classifier.cache_ttl_s", 1, 31536000, &u))
                cl->cache_ttl_s = u;
        } else {
            yw_unknown_key(c, kn, "routing.classifier",
                           "model, labels, timeout_ms, prompt, max_tokens, max_input_bytes, "
                           "cache_entries, cache_ttl_s");
        }
    }
    if (model_node == NULL)
        yw_error(c, map, "routing.classifier: missing \"model\" (the model asked for a label)");
    if (!have_labels)
        yw_error(c, map, "routing.classifier: missing \"labels\" (label: tier, e.g. {simple: "
                         "budget, code: premium})");
    cl->enabled = cl->model >= 0 && cl->n_labels > 0;
}

/* routing.scorer: {weights: PATH}. A relative PATH is read from the
 * configuration file's directory (a daemon's working directory is often /). */
static void parse_scorer(ywalk_t *c, config_t *cfg, yaml_node_t *map)
{
    const char *k;
    yaml_node_t *kn, *v;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "routing.scorer"))
        return;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        if (strcmp(k, "weights") == 0) {
            char *path = yw_str(c, v, "routing.scorer.weights"), *full, err[600];
            const char *slash = strrchr(cfg->path, '/');
            size_t n;
            if (path == NULL)
                continue;
            if (path[0] == '\0') {
                yw_error(c, v, "routing.scorer.weights: expected a file path, found \"\"");
                free(path);
                continue;
            }
            n = strlen(path) + strlen(cfg->path) + 2;
            full = xmalloc(n);
            if (path[0] != '/' && slash != NULL)
                snprintf(full, n, "%.*s/%s", (int)(slash - cfg->path), cfg->path, path);
            else
                snprintf(full, n, "%s", path);
            scorer_free(cfg->scorer);
            cfg->scorer = scorer_load(full, err, sizeof err);
            if (cfg->scorer == NULL)
                yw_error(c, v, "routing.scorer.weights: %s", err);
            free(full);
            free(path);
        } else {
            yw_unknown_key(c, kn, "routing.scorer", "weights");
        }
    }
}

void config_parse_routing(ywalk_t *c, config_t *cfg, yaml_node_t *map, yaml_node_t **default_node)
{
    const char *k;
    yaml_node_t *kn, *v;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "routing"))
        return;
    /* the classifier first: the rules' classify conditions name its labels */
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        /* plain walk: yw_map_pair would report a repeated key twice */
        yaml_node_t *key = yw_node(c, pr->key), *val = yw_node(c, pr->value);
        if (key && val && key->type == YAML_SCALAR_NODE &&
            strcmp((const char *)key->data.scalar.value, "classifier") == 0) {
            parse_classifier(c, cfg, val);
            break;
        }
    }
    /* the scorer first: the rules' complexity conditions use it */
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        if (strcmp(k, "scorer") == 0)
            parse_scorer(c, cfg, v);
    }
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        if (strcmp(k, "scorer") == 0 || strcmp(k, "classifier") == 0) {
            continue;
        } else if (strcmp(k, "default_tier") == 0) {
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
        } else if (strcmp(k, "deadline_ms") == 0) {
            yw_u32(c, v, "routing.deadline_ms", 0, 86400000, &cfg->deadline_ms);
        } else if (strcmp(k, "max_deadline_ms") == 0) {
            yw_u32(c, v, "routing.max_deadline_ms", 1, 86400000, &cfg->max_deadline_ms);
        } else if (strcmp(k, "rules") == 0) {
            rules_free(cfg->rules);
            cfg->rules = rules_parse(c, cfg, v);
        } else if (strcmp(k, "circuit") == 0) {
            config_parse_circuit(c, v, "routing.circuit", &cfg->circuit);
        } else {
            yw_unknown_key(c, kn, "routing",
                           "default_tier, routable_models, allow_client_tier, baseline_model, rules, "
                           "scorer, classifier, circuit, deadline_ms, max_deadline_ms");
        }
    }
    if (cfg->deadline_ms > cfg->max_deadline_ms)
        yw_error(c, map, "routing.deadline_ms (%u) is over routing.max_deadline_ms (%u), the cap "
                         "of every request's deadline; raise max_deadline_ms too",
                 cfg->deadline_ms, cfg->max_deadline_ms);
}
