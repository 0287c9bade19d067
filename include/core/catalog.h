/* catalog: the price and capability table that ships with llmrouter
 * (config/catalog.yaml, docs/providers.md "The price and capability
 * table"): per known model its prices per million tokens, context window,
 * most output tokens and capabilities. Loaded with the configuration (once
 * per snapshot, read-only afterwards: any thread may read a loaded table);
 * configured models take what they do not set themselves from their entry
 * (core/config_catalog.c). */
#ifndef LLMROUTER_CORE_CATALOG_H
#define LLMROUTER_CORE_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a model can take (a request needing one it lacks skips it:
 * upstream/fit.h). */
#define CAP_TOOLS (1u << 0)
#define CAP_VISION (1u << 1)
#define CAP_JSON_SCHEMA (1u << 2)
#define CAP_AUDIO (1u << 3)
#define CAP_REASONING (1u << 4)
#define CAP_COUNT 5
#define CAP_NAMES "tools, vision, json_schema, audio, reasoning"

typedef struct catalog_entry {
    char *name;      /* unique in the table */
    char *provider;  /* a key of the table's providers */
    char *model;     /* upstream model name */
    char **aliases;  /* other upstream names (NULL-terminated, may be NULL) */
    double input, cached_input, cache_write, output; /* USD per million tokens */
    uint32_t context_window;    /* 0: unknown */
    uint32_t max_output_tokens; /* 0: unknown */
    unsigned caps;              /* CAP_* */
    int line;                   /* 1-based, in the table's file */
} catalog_entry_t;

typedef struct catalog_provider {
    char *name;
    char *source;  /* the pricing page the figures come from */
    char *same_as; /* another provider whose entries it serves, or NULL */
} catalog_provider_t;

typedef struct catalog {
    char *path;
    char date[16]; /* YYYY-MM-DD: when the figures were taken */
    catalog_provider_t *providers;
    size_t n_providers;
    catalog_entry_t *entries;
    size_t n_entries;
} catalog_t;

/* Parses and checks a table (text[0..len), name used in messages): every
 * problem, "NAME:LINE:COL: message" one per line, goes to err (always
 * NUL-terminated) and NULL is returned. Checks: a date, sources, prices >= 0,
 * cached_input <= input, max_output_tokens <= context_window, known
 * capability names, no duplicate names, known providers. Caller frees the
 * result with catalog_free. */
catalog_t *catalog_parse(const char *name, const char *text, size_t len, char *err,
                         size_t errlen);
/* The same from a file. */
catalog_t *catalog_load(const char *path, char *err, size_t errlen);
void catalog_free(catalog_t *cat);

/* The entry named name, or NULL. Borrowed from cat. */
const catalog_entry_t *catalog_find(const catalog_t *cat, const char *name);
/* The entry of provider (a table provider name; its same_as is followed)
 * whose model or an alias is upstream, or NULL. */
const catalog_entry_t *catalog_match(const catalog_t *cat, const char *provider,
                                     const char *upstream);

/* CAP_* bit of a capability name, 0 when unknown. */
unsigned catalog_cap_parse(const char *name);
/* "tools,vision" (comma separated, "" for none) into buf; returns buf. */
const char *catalog_caps_str(unsigned caps, char *buf, size_t n);
/* The name of a single CAP_* bit ("tools", ...). */
const char *catalog_cap_name(unsigned bit);

/* `llmrouter models [--json] [--catalog FILE] [-c CONFIG]`: lists what the
 * table knows (and with -c, the configured models as resolved). Returns the
 * exit status. */
int catalog_main(int argc, char **argv);

#endif
