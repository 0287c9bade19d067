/* config_catalog: the configuration's side of the price and capability
 * table (core/catalog.h): the top-level `catalog:` key (which table; the
 * default path is compiled in), a model's `catalog:`, `context_window`,
 * `max_output_tokens` and `capabilities` keys, and what a model takes from
 * its entry — named, or matched by provider and upstream name — for every
 * field it does not set itself. A model priced by neither is marked
 * unpriced (a warning here; "unpriced" in the log, metrics and report, never
 * counted as free). Called by config.c and config_schema.c's model walk. */
#include "core/config_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/catalog.h"
#include "core/util.h"
#include "core/yamlwalk.h"

/* Where the table is when the configuration does not say: the repository's
 * config/catalog.yaml for a build in the tree, SYSCONFDIR/llmrouter/ for
 * the installed binary (both set by the Makefile); "" for none. */
#ifndef LLMROUTER_DEFAULT_CATALOG
#define LLMROUTER_DEFAULT_CATALOG "/etc/llmrouter/catalog.yaml"
#endif

const char *config_default_catalog(void)
{
    return LLMROUTER_DEFAULT_CATALOG;
}

static void load_at(ywalk_t *c, config_t *cfg, const char *path, const yaml_node_t *at)
{
    char err[4096];
    cfg->catalog = catalog_load(path, err, sizeof err);
    if (cfg->catalog != NULL)
        return;
    if (at != NULL) {
        /* the table's own messages (file:line:col in it) follow */
        size_t n = strlen(err);
        if (n > 0 && err[n - 1] == '\n')
            err[n - 1] = '\0';
        yw_error(c, at, "catalog: the price table %s cannot be used:\n%s", path, err);
    } else {
        yw_append_warning(c, "%s: warning: the default price table cannot be used (models get no "
                             "prices or capabilities from it; set catalog: PATH or catalog: off): "
                             "%s",
                          c->file, err);
    }
}

void config_load_catalog(ywalk_t *c, config_t *cfg, yaml_node_t *v)
{
    char *path, *full;
    const char *slash;
    size_t n;
    if (v == NULL) {
        /* "": built without a default table (the fuzzing build, which loads
         * a configuration per input) */
        if (LLMROUTER_DEFAULT_CATALOG[0] != '\0')
            load_at(c, cfg, LLMROUTER_DEFAULT_CATALOG, NULL);
        return;
    }
    path = yw_str(c, v, "catalog");
    if (path == NULL)
        return;
    if (strcmp(path, "off") == 0 || strcmp(path, "false") == 0 || strcmp(path, "none") == 0) {
        free(path);
        return;
    }
    if (path[0] == '\0') {
        yw_error(c, v, "catalog: expected the price table's path or off, found \"\"");
        free(path);
        return;
    }
    /* relative to the configuration file's directory, like routing.scorer.weights */
    slash = strrchr(cfg->path, '/');
    n = strlen(path) + strlen(cfg->path) + 2;
    full = xmalloc(n);
    if (path[0] != '/' && slash != NULL)
        snprintf(full, n, "%.*s/%s", (int)(slash - cfg->path), cfg->path, path);
    else
        snprintf(full, n, "%s", path);
    load_at(c, cfg, full, v);
    free(full);
    free(path);
}

bool config_model_catalog_key(ywalk_t *c, const config_t *cfg, cfg_model_t *m, const char *k,
                              yaml_node_t *v, const char *what)
{
    if (strcmp(k, "catalog") == 0) {
        char *s = yw_str(c, v, what);
        if (s == NULL)
            return true;
        free(m->catalog);
        m->catalog = NULL;
        m->catalog_off = strcmp(s, "none") == 0 || strcmp(s, "off") == 0;
        if (m->catalog_off) {
            free(s);
        } else if (cfg->catalog == NULL) {
            yw_error(c, v, "%s: no price table is loaded (catalog: off, or it could not be read)",
                     what);
            free(s);
        } else if (catalog_find(cfg->catalog, s) == NULL) {
            yw_error(c, v, "%s: the price table (%s) has no model named \"%s\" (llmrouter models "
                           "lists them)", what, cfg->catalog->path, s);
            free(s);
        } else {
            m->catalog = s;
        }
    } else if (strcmp(k, "context_window") == 0) {
        yw_u32(c, v, what, 1, 100000000, &m->context_window);
    } else if (strcmp(k, "max_output_tokens") == 0) {
        yw_u32(c, v, what, 1, 100000000, &m->max_output_tokens);
    } else if (strcmp(k, "capabilities") == 0) {
        m->caps = 0;
        m->caps_set = true;
        if (!yw_expect(c, v, YAML_SEQUENCE_NODE, what))
            return true;
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++) {
            yaml_node_t *n = yw_node(c, *it);
            char *s = yw_str(c, n, what);
            unsigned bit;
            if (s == NULL)
                continue;
            bit = catalog_cap_parse(s);
            if (bit == 0)
                yw_error(c, n, "%s: unknown capability \"%s\" (expected one of: " CAP_NAMES ")",
                         what, s);
            m->caps |= bit;
            free(s);
        }
    } else {
        return false;
    }
    return true;
}

/* The table's entry for m: the one it names, else its provider's (by the
 * provider's name, or "anthropic" for a type: anthropic provider) with m's
 * upstream name. */
static const catalog_entry_t *entry_of(const config_t *cfg, const cfg_model_t *m)
{
    const catalog_entry_t *e;
    const cfg_provider_t *p;
    if (cfg->catalog == NULL || m->catalog_off)
        return NULL;
    if (m->catalog != NULL)
        return catalog_find(cfg->catalog, m->catalog);
    if (m->provider < 0)
        return NULL;
    p = &cfg->providers[m->provider];
    e = catalog_match(cfg->catalog, p->name, m->upstream);
    if (e == NULL && p->preset != NULL) /* `preset: azure` is the azure entries */
        e = catalog_match(cfg->catalog, p->preset, m->upstream);
    if (e == NULL && p->type == PROVIDER_ANTHROPIC)
        e = catalog_match(cfg->catalog, "anthropic", m->upstream);
    return e;
}

void config_model_catalog_done(ywalk_t *c, const config_t *cfg, cfg_model_t *m,
                               const yaml_node_t *map)
{
    const catalog_entry_t *e = entry_of(cfg, m);
    unsigned set = m->price_set;
    if (e != NULL) {
        if (m->catalog == NULL)
            m->catalog = xstrdup(e->name);
        if (!(set & MODEL_PRICE_INPUT))
            m->input_per_mtok = e->input;
        if (!(set & MODEL_PRICE_OUTPUT))
            m->output_per_mtok = e->output;
        if (!(set & MODEL_PRICE_CACHED))
            m->cached_input_per_mtok = (set & MODEL_PRICE_INPUT) ? m->input_per_mtok
                                                                 : e->cached_input;
        if (!(set & MODEL_PRICE_WRITE))
            m->cache_write_per_mtok = (set & MODEL_PRICE_INPUT) ? m->input_per_mtok
                                                                : e->cache_write;
        if (m->context_window == 0)
            m->context_window = e->context_window;
        if (m->max_output_tokens == 0) {
            m->max_output_tokens = e->max_output_tokens;
            /* a context window configured smaller than the table's caps it */
            if (m->context_window > 0 && m->max_output_tokens > m->context_window)
                m->max_output_tokens = m->context_window;
        }
        if (!m->caps_set) {
            m->caps = e->caps;
            m->caps_set = true;
        }
    } else {
        if (!(set & MODEL_PRICE_CACHED))
            m->cached_input_per_mtok = m->input_per_mtok;
        /* unpriced cache writes cost what plain input costs (Anthropic
         * charges 1.25x: set cache_write_per_mtok to be exact) */
        if (!(set & MODEL_PRICE_WRITE))
            m->cache_write_per_mtok = m->input_per_mtok;
    }
    m->unpriced = e == NULL && !(set & (MODEL_PRICE_INPUT | MODEL_PRICE_OUTPUT));
    if (m->unpriced && map != NULL)
        m->line = (int)map->start_mark.line + 1; /* for config_warn_unpriced */
    if (m->max_output_tokens > 0 && m->context_window > 0 &&
        m->max_output_tokens > m->context_window && map != NULL)
        yw_error(c, map, "models.%s: max_output_tokens (%u) is more than context_window (%u)",
                 m->name, m->max_output_tokens, m->context_window);
}

void config_print_model_catalog(const cfg_model_t *m, void *file)
{
    FILE *f = file;
    char caps[96];
    if (m->catalog != NULL)
        fprintf(f, ", catalog %s", m->catalog);
    if (m->context_window > 0)
        fprintf(f, ", %u context", m->context_window);
    if (m->caps_set)
        fprintf(f, ", can: %s", m->caps ? catalog_caps_str(m->caps, caps, sizeof caps) : "none");
}

void config_warn_unpriced(ywalk_t *c, const config_t *cfg)
{
    char names[1024];
    size_t o = 0, n = 0, shown = 0;
    int first = 0;
    for (size_t i = 0; i < cfg->n_models; i++) {
        const cfg_model_t *m = &cfg->models[i];
        int w;
        if (!m->unpriced)
            continue;
        if (n++ == 0)
            first = m->line;
        if (o + 160 >= sizeof names)
            continue;
        w = snprintf(names + o, sizeof names - o, "%s%s", o ? ", " : "", m->name);
        o += w > 0 ? (size_t)w : 0;
        shown++;
    }
    char more[48] = "";
    if (n == 0)
        return;
    if (shown < n)
        snprintf(more, sizeof more, " and %zu more", n - shown);
    /* one line for all of them: a test configuration may have dozens */
    yw_append_warning(c,
                      "%s:%d: warning: %zu model%s without a price from the configuration "
                      "(input_per_mtok, output_per_mtok) or the price table (catalog: NAME, or a "
                      "provider and model it knows): %s%s; %s answers are marked unpriced "
                      "(cost null), not counted as free\n",
                      c->file, first, n, n == 1 ? "" : "s", names, more, n == 1 ? "its" : "their");
}
