/* presets: the built-in provider presets (`preset:` on a provider) — each a
 * wire format, base URL, auth header and scheme, default key variable and
 * the quirks the wire code normalises — and the URL of an upstream request
 * built from a provider (base, Azure's per-model deployment, path, query).
 * Pure data and pure functions: any thread. */
#ifndef LLMROUTER_CORE_PRESETS_H
#define LLMROUTER_CORE_PRESETS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

/* Quirk flags (cfg_provider_t.quirks): set by a preset, overridable with
 * `quirks: [...]`. Handled in upstream/quirks.c. */
#define QUIRK_TOOL_INDEX (1u << 0)   /* streamed tool_calls deltas lack `index`; ids may be "" */
#define QUIRK_ARRAY_ERRORS (1u << 1) /* errors come as [{"error":{...}}] */
#define QUIRK_FLAT_ERRORS (1u << 2)  /* errors come as {"object":"error","message",...} */
#define QUIRK_TOOL_ID9 (1u << 3)     /* tool-call ids must be [a-zA-Z0-9]{9} */
#define QUIRK_DROP_PARAMS (1u << 4)  /* logprobs, top_logprobs, logit_bias, n, messages[].name rejected */
#define QUIRK_NAMES "tool_index, array_errors, flat_errors, tool_id9, drop_params"

typedef struct preset {
    const char *name;
    enum provider_type type;
    const char *base_url;    /* may hold {resource} (azure) */
    const char *auth_header; /* the key's header; NULL: the type's default */
    const char *auth_scheme; /* prefix of the key in it ("Bearer"), "" for the bare key */
    const char *api_key_env; /* NULL: keyless (local servers) */
    unsigned quirks;
    bool deployments;        /* URL holds /deployments/{model's deployment} (azure) */
    const char *api_version; /* default api-version query parameter, NULL for none */
} preset_t;

/* The preset called name, or NULL. Borrowed, static. */
const preset_t *presets_find(const char *name);

/* All preset names, ", "-separated (for messages and suggestions). */
const char *presets_names(void);

/* The QUIRK_* bit of a quirk's name, 0 when unknown. */
unsigned presets_quirk(const char *name);

/* Percent-encodes s (RFC 3986 unreserved kept) and appends it to out[*at..len).
 * Returns -1 when it does not fit. */
int presets_encode(const char *s, char *out, size_t len, size_t *at);

/* The URL of a request to model m of provider p at path ("/chat/completions"):
 * base_url, then /deployments/{deployment} when p->deployments, then path,
 * then ?query. Returns 0, or -1 when it does not fit in len. */
int presets_url(const cfg_provider_t *p, const cfg_model_t *m, const char *path, char *buf,
                size_t len);

#endif
