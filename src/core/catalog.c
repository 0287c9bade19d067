/* catalog: config/catalog.yaml -> catalog_t (see include/core/catalog.h).
 * Walked with yamlwalk like the configuration, so every problem has its
 * file:line:column; the table's internal consistency is checked here, once,
 * for the daemon and for the unit test that guards the shipped file. */
#include "core/catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/util.h"
#include "core/yamlwalk.h"

#define CATALOG_MAX_BYTES ((size_t)4 << 20)
#define ENTRY_KEYS                                                                                 \
    "name, provider, model, aliases, input, cached_input, cache_write, output, context_window, "   \
    "max_output_tokens, capabilities"

static const char *const cap_names[CAP_COUNT] = {"tools", "vision", "json_schema", "audio",
                                                 "reasoning"};

unsigned catalog_cap_parse(const char *name)
{
    for (unsigned i = 0; i < CAP_COUNT; i++)
        if (strcmp(name, cap_names[i]) == 0)
            return 1u << i;
    return 0;
}

const char *catalog_cap_name(unsigned bit)
{
    for (unsigned i = 0; i < CAP_COUNT; i++)
        if (bit == 1u << i)
            return cap_names[i];
    return "?";
}

const char *catalog_caps_str(unsigned caps, char *buf, size_t n)
{
    size_t o = 0;
    if (n == 0)
        return buf;
    buf[0] = '\0';
    for (unsigned i = 0; i < CAP_COUNT; i++) {
        int w;
        if (!(caps & (1u << i)) || o >= n)
            continue;
        w = snprintf(buf + o, n - o, "%s%s", o ? "," : "", cap_names[i]);
        o += w > 0 ? (size_t)w : 0;
    }
    return buf;
}

/* capabilities: [names] (may be empty) */
static void parse_caps(ywalk_t *c, yaml_node_t *v, const char *what, unsigned *out)
{
    *out = 0;
    if (!yw_expect(c, v, YAML_SEQUENCE_NODE, what))
        return;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        yaml_node_t *n = yw_node(c, *it);
        char *s = yw_str(c, n, what);
        unsigned bit;
        if (s == NULL)
            continue;
        bit = catalog_cap_parse(s);
        if (bit == 0)
            yw_error(c, n, "%s: unknown capability \"%s\" (expected one of: " CAP_NAMES ")", what,
                     s);
        *out |= bit;
        free(s);
    }
}

static const catalog_provider_t *find_provider(const catalog_t *cat, const char *name)
{
    for (size_t i = 0; i < cat->n_providers; i++)
        if (strcmp(cat->providers[i].name, name) == 0)
            return &cat->providers[i];
    return NULL;
}

static void parse_providers(ywalk_t *c, catalog_t *cat, yaml_node_t *map)
{
    const char *k;
    yaml_node_t *kn, *v;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "providers"))
        return;
    cat->providers = xcalloc((size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start),
                             sizeof *cat->providers);
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        catalog_provider_t *p = &cat->providers[cat->n_providers++];
        const char *pk;
        yaml_node_t *pkn, *pv;
        char where[160];
        snprintf(where, sizeof where, "providers.%s", k);
        p->name = xstrdup(k);
        if (!yw_expect(c, v, YAML_MAPPING_NODE, where))
            continue;
        YW_MAP_FOREACH(c, v, pk, pkn, pv)
        {
            if (strcmp(pk, "source") == 0) {
                free(p->source);
                p->source = yw_str(c, pv, "source");
            } else if (strcmp(pk, "same_as") == 0) {
                free(p->same_as);
                p->same_as = yw_str(c, pv, "same_as");
            } else {
                yw_unknown_key(c, pkn, where, "source, same_as");
            }
        }
        if (p->source == NULL || strncmp(p->source, "https://", 8) != 0)
            yw_error(c, v, "%s: needs \"source\", the https:// page its figures come from", where);
    }
    for (size_t i = 0; i < cat->n_providers; i++) {
        const catalog_provider_t *p = &cat->providers[i], *to;
        if (p->same_as == NULL)
            continue;
        to = find_provider(cat, p->same_as);
        if (to == NULL || to->same_as != NULL || to == p)
            yw_error(c, map, "providers.%s.same_as: \"%s\" is not a provider of the table with "
                             "its own models", p->name, p->same_as);
    }
}

static void parse_entry(ywalk_t *c, catalog_t *cat, catalog_entry_t *e, yaml_node_t *map,
                        size_t idx)
{
    const char *k;
    yaml_node_t *kn, *v, *ctx_node = NULL, *cached_node = NULL, *prov_node = NULL;
    bool have_in = false, have_out = false, have_cached = false, have_write = false;
    char where[200];
    snprintf(where, sizeof where, "models[%zu]", idx);
    e->line = (int)map->start_mark.line + 1;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, where))
        return;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        if (strcmp(k, "name") == 0) {
            free(e->name);
            e->name = yw_str(c, v, "name");
            if (e->name != NULL)
                snprintf(where, sizeof where, "models[%zu] (%s)", idx, e->name);
        }
    }
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        char what[280];
        snprintf(what, sizeof what, "%s.%s", where, k);
        if (strcmp(k, "name") == 0) {
            continue;
        } else if (strcmp(k, "provider") == 0) {
            free(e->provider);
            e->provider = yw_str(c, v, what);
            prov_node = v;
        } else if (strcmp(k, "model") == 0) {
            free(e->model);
            e->model = yw_str(c, v, what);
        } else if (strcmp(k, "aliases") == 0) {
            size_t n;
            yw_strv_free(e->aliases);
            e->aliases = NULL;
            yw_strv(c, v, what, &e->aliases, &n);
        } else if (strcmp(k, "input") == 0) {
            have_in = yw_price(c, v, what, &e->input);
        } else if (strcmp(k, "cached_input") == 0) {
            have_cached = yw_price(c, v, what, &e->cached_input);
            cached_node = v;
        } else if (strcmp(k, "cache_write") == 0) {
            have_write = yw_price(c, v, what, &e->cache_write);
        } else if (strcmp(k, "output") == 0) {
            have_out = yw_price(c, v, what, &e->output);
        } else if (strcmp(k, "context_window") == 0) {
            yw_u32(c, v, what, 1, 100000000, &e->context_window);
            ctx_node = v;
        } else if (strcmp(k, "max_output_tokens") == 0) {
            yw_u32(c, v, what, 1, 100000000, &e->max_output_tokens);
        } else if (strcmp(k, "capabilities") == 0) {
            parse_caps(c, v, what, &e->caps);
        } else {
            yw_unknown_key(c, kn, where, ENTRY_KEYS);
        }
    }
    if (e->name == NULL || e->name[0] == '\0') {
        yw_error(c, map, "%s: missing \"name\"", where);
        return;
    }
    if (e->provider == NULL)
        yw_error(c, map, "%s: missing \"provider\"", where);
    else if (find_provider(cat, e->provider) == NULL)
        yw_error(c, prov_node, "%s.provider: \"%s\" is not listed under providers (with its "
                               "source)", where, e->provider);
    else if (find_provider(cat, e->provider)->same_as != NULL)
        yw_error(c, prov_node, "%s.provider: \"%s\" serves the models of \"%s\" (same_as); list "
                               "the entry there", where, e->provider,
                 find_provider(cat, e->provider)->same_as);
    if (!have_in || !have_out)
        yw_error(c, map, "%s: needs both \"input\" and \"output\" prices", where);
    if (e->model == NULL)
        e->model = xstrdup(e->name);
    if (!have_cached)
        e->cached_input = e->input;
    else if (e->cached_input > e->input)
        yw_error(c, cached_node, "%s: cached_input (%g) is more than input (%g)", where,
                 e->cached_input, e->input);
    if (!have_write)
        e->cache_write = e->input;
    if (e->max_output_tokens > 0 && e->context_window > 0 &&
        e->max_output_tokens > e->context_window)
        yw_error(c, ctx_node, "%s: max_output_tokens (%u) is more than context_window (%u)", where,
                 e->max_output_tokens, e->context_window);
}

static bool valid_date(const char *s)
{
    /* YYYY-MM-DD */
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return false;
    return (s[5] == '0' || (s[5] == '1' && s[6] <= '2')) && !(s[5] == '0' && s[6] == '0') &&
           s[8] <= '3' && !(s[8] == '0' && s[9] == '0');
}

static void parse_root(ywalk_t *c, catalog_t *cat, yaml_node_t *root)
{
    const char *k;
    yaml_node_t *kn, *v, *models = NULL, *date = NULL, *providers = NULL;
    if (root == NULL || !yw_expect(c, root, YAML_MAPPING_NODE, "the table")) {
        if (root == NULL)
            yw_append_error(c, "%s:1:1: the table is empty (expected date, providers, models)\n",
                            c->file);
        return;
    }
    YW_MAP_FOREACH(c, root, k, kn, v)
    {
        if (strcmp(k, "date") == 0)
            date = v;
        else if (strcmp(k, "providers") == 0)
            providers = v;
        else if (strcmp(k, "models") == 0)
            models = v;
        else
            yw_unknown_key(c, kn, "the table", "date, providers, models");
    }
    if (date == NULL) {
        yw_error(c, root, "missing \"date\" (YYYY-MM-DD: when the figures were taken)");
    } else {
        char *s = yw_str(c, date, "date");
        if (s != NULL && !valid_date(s))
            yw_error(c, date, "date: expected YYYY-MM-DD, found \"%s\"", s);
        else if (s != NULL)
            snprintf(cat->date, sizeof cat->date, "%s", s);
        free(s);
    }
    if (providers == NULL)
        yw_error(c, root, "missing \"providers\" (each with the source of its figures)");
    else
        parse_providers(c, cat, providers);
    if (models == NULL) {
        yw_error(c, root, "missing \"models\"");
        return;
    }
    if (!yw_expect(c, models, YAML_SEQUENCE_NODE, "models"))
        return;
    cat->entries = xcalloc((size_t)(models->data.sequence.items.top -
                                    models->data.sequence.items.start) + 1,
                           sizeof *cat->entries);
    for (yaml_node_item_t *it = models->data.sequence.items.start;
         it < models->data.sequence.items.top; it++) {
        yaml_node_t *n = yw_node(c, *it);
        catalog_entry_t *e = &cat->entries[cat->n_entries++];
        parse_entry(c, cat, e, n, cat->n_entries - 1);
        for (size_t j = 0; e->name != NULL && j + 1 < cat->n_entries; j++)
            if (cat->entries[j].name != NULL && strcmp(cat->entries[j].name, e->name) == 0)
                yw_error(c, n, "models: \"%s\" is listed twice (also on line %d)", e->name,
                         cat->entries[j].line);
        /* one upstream name per provider, or matching is ambiguous */
        for (size_t j = 0; e->provider != NULL && j + 1 < cat->n_entries; j++) {
            const catalog_entry_t *o = &cat->entries[j];
            if (o->provider != NULL && o->model != NULL && e->model != NULL &&
                strcmp(o->provider, e->provider) == 0 && strcmp(o->model, e->model) == 0)
                yw_error(c, n, "models: %s's upstream model \"%s\" is also that of \"%s\" (line %d)",
                         e->provider, e->model, o->name ? o->name : "?", o->line);
        }
    }
}

catalog_t *catalog_parse(const char *name, const char *text, size_t len, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    ywalk_t c = {.file = name, .doc = &doc, .err = err, .errlen = errlen};
    catalog_t *cat = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (!yaml_parser_initialize(&parser))
        abort();
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yw_append_error(&c, "%s:%zu:%zu: YAML syntax error: %s\n", name,
                        parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                        parser.problem ? parser.problem : "unknown problem");
        yaml_parser_delete(&parser);
        return NULL;
    }
    cat = xcalloc(1, sizeof *cat);
    cat->path = xstrdup(name);
    parse_root(&c, cat, yaml_document_get_root_node(&doc));
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (c.nerr > 0) {
        catalog_free(cat);
        return NULL;
    }
    return cat;
}

catalog_t *catalog_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *text;
    size_t len;
    catalog_t *cat = NULL;
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s\n", path, strerror(errno));
        return NULL;
    }
    text = xmalloc(CATALOG_MAX_BYTES + 1);
    len = fread(text, 1, CATALOG_MAX_BYTES + 1, f);
    if (ferror(f))
        snprintf(err, errlen, "%s: cannot read: %s\n", path, strerror(errno));
    else if (len > CATALOG_MAX_BYTES)
        snprintf(err, errlen, "%s: larger than %zu MiB; is it the right file?\n", path,
                 CATALOG_MAX_BYTES >> 20);
    else
        cat = catalog_parse(path, text, len, err, errlen);
    free(text);
    fclose(f);
    return cat;
}

void catalog_free(catalog_t *cat)
{
    if (cat == NULL)
        return;
    for (size_t i = 0; i < cat->n_providers; i++) {
        free(cat->providers[i].name);
        free(cat->providers[i].source);
        free(cat->providers[i].same_as);
    }
    for (size_t i = 0; i < cat->n_entries; i++) {
        free(cat->entries[i].name);
        free(cat->entries[i].provider);
        free(cat->entries[i].model);
        yw_strv_free(cat->entries[i].aliases);
    }
    free(cat->providers);
    free(cat->entries);
    free(cat->path);
    free(cat);
}

const catalog_entry_t *catalog_find(const catalog_t *cat, const char *name)
{
    for (size_t i = 0; cat != NULL && i < cat->n_entries; i++)
        if (strcmp(cat->entries[i].name, name) == 0)
            return &cat->entries[i];
    return NULL;
}

const catalog_entry_t *catalog_match(const catalog_t *cat, const char *provider,
                                     const char *upstream)
{
    const catalog_provider_t *p;
    if (cat == NULL || provider == NULL || upstream == NULL)
        return NULL;
    p = find_provider(cat, provider);
    if (p == NULL)
        return NULL;
    if (p->same_as != NULL)
        provider = p->same_as;
    for (size_t i = 0; i < cat->n_entries; i++) {
        const catalog_entry_t *e = &cat->entries[i];
        if (strcmp(e->provider, provider) != 0)
            continue;
        if (strcmp(e->model, upstream) == 0)
            return e;
        for (size_t j = 0; e->aliases != NULL && e->aliases[j] != NULL; j++)
            if (strcmp(e->aliases[j], upstream) == 0)
                return e;
    }
    return NULL;
}
