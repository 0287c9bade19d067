/* catalog_cli: `llmrouter models [--json] [--catalog FILE] [-c CONFIG]` —
 * what the price and capability table knows, and with -c how the
 * configuration's models resolved against it (see include/core/catalog.h). */
#include "core/catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/config_schema.h"

static void usage(FILE *f)
{
    fprintf(f, "Usage: llmrouter models [--json] [--catalog FILE] [-c CONFIG]\n"
               "Lists the price and capability table (default: %s): prices in USD per\n"
               "million tokens, context window, most output tokens, capabilities.\n"
               "  --json          one JSON object instead of a table\n"
               "  --catalog FILE  another table\n"
               "  -c CONFIG       also the configuration's models as resolved (their entry,\n"
               "                  prices, context window, capabilities, unpriced ones)\n",
            config_default_catalog());
}

static cJSON *caps_json(unsigned caps)
{
    cJSON *a = cJSON_CreateArray();
    for (unsigned i = 0; i < CAP_COUNT; i++)
        if (caps & (1u << i))
            cJSON_AddItemToArray(a, cJSON_CreateString(catalog_cap_name(1u << i)));
    return a;
}

static void add_u32(cJSON *o, const char *k, uint32_t v)
{
    if (v > 0)
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static cJSON *table_json(const catalog_t *cat)
{
    cJSON *o = cJSON_CreateObject(), *ps = cJSON_AddArrayToObject(o, "providers"),
          *ms = cJSON_AddArrayToObject(o, "models");
    cJSON_AddStringToObject(o, "path", cat->path);
    cJSON_AddStringToObject(o, "date", cat->date);
    for (size_t i = 0; i < cat->n_providers; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "name", cat->providers[i].name);
        cJSON_AddStringToObject(p, "source", cat->providers[i].source);
        if (cat->providers[i].same_as != NULL)
            cJSON_AddStringToObject(p, "same_as", cat->providers[i].same_as);
        cJSON_AddItemToArray(ps, p);
    }
    for (size_t i = 0; i < cat->n_entries; i++) {
        const catalog_entry_t *e = &cat->entries[i];
        cJSON *m = cJSON_CreateObject(), *al = cJSON_CreateArray();
        cJSON_AddStringToObject(m, "name", e->name);
        cJSON_AddStringToObject(m, "provider", e->provider);
        cJSON_AddStringToObject(m, "model", e->model);
        for (size_t j = 0; e->aliases != NULL && e->aliases[j] != NULL; j++)
            cJSON_AddItemToArray(al, cJSON_CreateString(e->aliases[j]));
        cJSON_AddItemToObject(m, "aliases", al);
        cJSON_AddNumberToObject(m, "input_per_mtok", e->input);
        cJSON_AddNumberToObject(m, "cached_input_per_mtok", e->cached_input);
        cJSON_AddNumberToObject(m, "cache_write_per_mtok", e->cache_write);
        cJSON_AddNumberToObject(m, "output_per_mtok", e->output);
        add_u32(m, "context_window", e->context_window);
        add_u32(m, "max_output_tokens", e->max_output_tokens);
        cJSON_AddItemToObject(m, "capabilities", caps_json(e->caps));
        cJSON_AddItemToArray(ms, m);
    }
    return o;
}

static cJSON *configured_json(const config_t *cfg)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < cfg->n_models; i++) {
        const cfg_model_t *m = &cfg->models[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", m->name);
        cJSON_AddStringToObject(o, "provider", cfg->providers[m->provider].name);
        cJSON_AddStringToObject(o, "upstream", m->upstream);
        if (m->catalog != NULL)
            cJSON_AddStringToObject(o, "catalog", m->catalog);
        else
            cJSON_AddNullToObject(o, "catalog");
        cJSON_AddBoolToObject(o, "unpriced", m->unpriced);
        if (m->unpriced) {
            cJSON_AddNullToObject(o, "input_per_mtok");
            cJSON_AddNullToObject(o, "output_per_mtok");
        } else {
            cJSON_AddNumberToObject(o, "input_per_mtok", m->input_per_mtok);
            cJSON_AddNumberToObject(o, "cached_input_per_mtok", m->cached_input_per_mtok);
            cJSON_AddNumberToObject(o, "cache_write_per_mtok", m->cache_write_per_mtok);
            cJSON_AddNumberToObject(o, "output_per_mtok", m->output_per_mtok);
        }
        add_u32(o, "context_window", m->context_window);
        add_u32(o, "max_output_tokens", m->max_output_tokens);
        if (m->caps_set)
            cJSON_AddItemToObject(o, "capabilities", caps_json(m->caps));
        else
            cJSON_AddNullToObject(o, "capabilities"); /* unknown: assumed able */
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static void u32_col(char *b, size_t n, uint32_t v)
{
    if (v > 0)
        snprintf(b, n, "%u", v);
    else
        snprintf(b, n, "-");
}

static void print_table(const catalog_t *cat)
{
    char caps[96], ctx[16], mo[16];
    printf("price table %s: %zu models, figures as of %s (check them against the sources)\n",
           cat->path, cat->n_entries, cat->date);
    printf("%-30s %-10s %8s %8s %8s %8s %9s %8s  %s\n", "MODEL", "PROVIDER", "IN", "CACHED",
           "WRITE", "OUT", "CONTEXT", "MAX OUT", "CAPABILITIES");
    for (size_t i = 0; i < cat->n_entries; i++) {
        const catalog_entry_t *e = &cat->entries[i];
        u32_col(ctx, sizeof ctx, e->context_window);
        u32_col(mo, sizeof mo, e->max_output_tokens);
        printf("%-30s %-10s %8.4g %8.4g %8.4g %8.4g %9s %8s  %s\n", e->name, e->provider,
               e->input, e->cached_input, e->cache_write, e->output, ctx, mo,
               e->caps ? catalog_caps_str(e->caps, caps, sizeof caps) : "-");
    }
    printf("sources:\n");
    for (size_t i = 0; i < cat->n_providers; i++)
        printf("  %-10s %s%s%s\n", cat->providers[i].name, cat->providers[i].source,
               cat->providers[i].same_as ? " (the models of " : "",
               cat->providers[i].same_as ? cat->providers[i].same_as : "");
}

static void print_configured(const config_t *cfg)
{
    char caps[96], ctx[16];
    printf("\nconfigured models (%s):\n", cfg->path);
    printf("%-24s %-30s %8s %8s %9s  %s\n", "MODEL", "CATALOG", "IN", "OUT", "CONTEXT",
           "CAPABILITIES");
    for (size_t i = 0; i < cfg->n_models; i++) {
        const cfg_model_t *m = &cfg->models[i];
        u32_col(ctx, sizeof ctx, m->context_window);
        if (m->unpriced)
            printf("%-24s %-30s %17s", m->name, m->catalog ? m->catalog : "-", "unpriced");
        else
            printf("%-24s %-30s %8.4g %8.4g", m->name, m->catalog ? m->catalog : "-",
                   m->input_per_mtok, m->output_per_mtok);
        printf(" %9s  %s\n", ctx,
               !m->caps_set ? "(unknown: assumed able)"
               : m->caps   ? catalog_caps_str(m->caps, caps, sizeof caps)
                           : "none");
    }
}

int catalog_main(int argc, char **argv)
{
    const char *path = NULL, *config = NULL;
    bool json = false;
    char err[8192], warn[4096];
    catalog_t *cat = NULL;
    config_t *cfg = NULL;
    int rc = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--catalog") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
                   i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "llmrouter models: unknown argument \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (config != NULL) {
        cfg = config_load(config, err, sizeof err, warn, sizeof warn);
        if (cfg == NULL) {
            fprintf(stderr, "%s", err);
            return 1;
        }
    }
    if (path == NULL && cfg != NULL && cfg->catalog != NULL) {
        path = cfg->catalog->path;
    } else if (path == NULL) {
        path = config_default_catalog();
    }
    cat = catalog_load(path, err, sizeof err);
    if (cat == NULL) {
        fprintf(stderr, "%s", err);
        goto out;
    }
    if (json) {
        cJSON *o = table_json(cat);
        char *s;
        if (cfg != NULL)
            cJSON_AddItemToObject(o, "configured", configured_json(cfg));
        s = cJSON_Print(o);
        if (s != NULL)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        print_table(cat);
        if (cfg != NULL)
            print_configured(cfg);
    }
    rc = 0;
out:
    catalog_free(cat);
    config_unref(cfg);
    return rc;
}
