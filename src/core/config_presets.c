/* config_presets: a provider's `preset:` (the table is core/presets.c)
 * and the keys beside it — quirks, headers, query, resource, api_version,
 * auth_header, auth_scheme — and a model's `deployment:`. The preset is
 * applied before the provider's other keys are walked, so each of them
 * overrides it. Called by config_schema.c's provider and model walks only. */
#include "core/config_schema.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/presets.h"
#include "core/util.h"
#include "core/yamlwalk.h"

#define QUERY_MAX 2048 /* bytes of a provider's encoded query */

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void set(char **dst, char *s)
{
    free(*dst);
    *dst = s;
}

void config_provider_preset_apply(ywalk_t *c, cfg_provider_t *p, yaml_node_t *map,
                                  const char *where, bool *have_type, bool *have_url)
{
    const char *k;
    yaml_node_t *kn, *v;
    if (map->type != YAML_MAPPING_NODE)
        return;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        char what[256];
        char *s;
        const preset_t *ps;
        if (strcmp(k, "preset") != 0)
            continue;
        snprintf(what, sizeof what, "%s.preset", where);
        s = yw_str(c, v, what);
        if (s == NULL)
            return;
        ps = presets_find(s);
        if (ps == NULL) {
            size_t len = 0;
            const char *near = yw_suggest(s, presets_names(), &len);
            yw_error(c, v, "%s: unknown preset \"%s\"%s%.*s%s (presets: %s)", what, s,
                     near ? "; did you mean \"" : "", (int)len, near ? near : "",
                     near ? "\"?" : "", presets_names());
            free(s);
            return;
        }
        set(&p->preset, s);
        p->type = ps->type;
        set(&p->base_url, xstrdup(ps->base_url));
        set(&p->api_key_env, dup_or_null(ps->api_key_env));
        set(&p->auth_header, dup_or_null(ps->auth_header));
        set(&p->auth_scheme, ps->auth_header ? xstrdup(ps->auth_scheme) : NULL);
        set(&p->api_version, dup_or_null(ps->api_version));
        p->quirks = ps->quirks;
        p->deployments = ps->deployments;
        *have_type = *have_url = true;
        return;
    }
}

/* RFC 7230 token characters */
static bool header_name_ok(const char *s)
{
    if (s[0] == '\0' || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s) != NULL))
            return false;
    return true;
}

static bool header_reserved(const char *s)
{
    static const char *const own[] = {"content-type", "content-length", "host", "expect",
                                      "transfer-encoding", "accept", "connection"};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (strcasecmp(s, own[i]) == 0)
            return true;
    return false;
}

static void parse_headers(ywalk_t *c, cfg_provider_t *p, yaml_node_t *map, const char *what)
{
    const char *k;
    yaml_node_t *kn, *v;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, what))
        return;
    curl_slist_free_all(p->extra_headers);
    p->extra_headers = NULL;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        char one[192], *val, *line;
        size_t n;
        struct curl_slist *l;
        snprintf(one, sizeof one, "%s.%.64s", what, k);
        if (!header_name_ok(k)) {
            yw_error(c, kn, "%s: \"%.64s\" is not a header name", what, k);
            continue;
        }
        if (header_reserved(k)) {
            yw_error(c, kn, "%s: llmrouter sets this header itself", one);
            continue;
        }
        val = yw_str(c, v, one);
        if (val == NULL)
            continue;
        if (strpbrk(val, "\r\n") != NULL || val[0] == '\0') {
            /* the value may be a secret (${VAR}): name the header, not the value */
            yw_error(c, v, "%s: the value is empty or has a line break", one);
            free(val);
            continue;
        }
        n = strlen(k) + strlen(val) + 3;
        line = xmalloc(n);
        snprintf(line, n, "%s: %s", k, val);
        l = curl_slist_append(p->extra_headers, line);
        explicit_bzero(val, strlen(val));
        explicit_bzero(line, n);
        free(val);
        free(line);
        if (l == NULL) {
            fprintf(stderr, "llmrouter: out of memory building headers\n");
            abort();
        }
        p->extra_headers = l;
    }
}

/* Appends name=value, both URL-encoded, to q (of QUERY_MAX bytes). */
static bool query_add(char *q, size_t *at, const char *name, const char *value)
{
    if (*at > 0 && *at + 1 < QUERY_MAX)
        q[(*at)++] = '&';
    return presets_encode(name, q, QUERY_MAX, at) == 0 && *at + 1 < QUERY_MAX &&
           (q[(*at)++] = '=', q[*at] = '\0', presets_encode(value, q, QUERY_MAX, at) == 0);
}

static void parse_query(ywalk_t *c, cfg_provider_t *p, yaml_node_t *map, const char *what)
{
    const char *k;
    yaml_node_t *kn, *v;
    char q[QUERY_MAX];
    size_t at = 0;
    q[0] = '\0';
    if (!yw_expect(c, map, YAML_MAPPING_NODE, what))
        return;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        char one[192], *val;
        snprintf(one, sizeof one, "%s.%.64s", what, k);
        val = yw_str(c, v, one);
        if (val == NULL)
            continue;
        if (!query_add(q, &at, k, val))
            yw_error(c, v, "%s: the query is longer than %d bytes", one, QUERY_MAX);
        free(val);
    }
    set(&p->query, at > 0 ? xstrdup(q) : NULL);
}

static void parse_quirks(ywalk_t *c, cfg_provider_t *p, yaml_node_t *v, const char *what)
{
    char **names = NULL;
    size_t n = 0;
    unsigned bits = 0;
    if (v->type == YAML_SEQUENCE_NODE && v->data.sequence.items.top == v->data.sequence.items.start) {
        p->quirks = 0; /* quirks: [] turns the preset's off */
        return;
    }
    if (!yw_strv(c, v, what, &names, &n))
        return;
    for (size_t i = 0; i < n; i++) {
        unsigned b = presets_quirk(names[i]);
        if (b == 0) {
            size_t len = 0;
            const char *near = yw_suggest(names[i], QUIRK_NAMES, &len);
            yw_error(c, v, "%s: unknown quirk \"%s\"%s%.*s%s (quirks: " QUIRK_NAMES ")", what,
                     names[i], near ? "; did you mean \"" : "", (int)len, near ? near : "",
                     near ? "\"?" : "");
        }
        bits |= b;
    }
    yw_strv_free(names);
    p->quirks = bits;
}

/* A scalar without line breaks or control bytes, at most max bytes. */
static char *plain_str(ywalk_t *c, yaml_node_t *v, const char *what, size_t max, bool empty_ok)
{
    char *s = yw_str(c, v, what);
    if (s == NULL)
        return NULL;
    for (const unsigned char *q = (const unsigned char *)s; *q; q++)
        if (*q < 0x20 || *q == 0x7f) {
            yw_error(c, v, "%s: has a line break or a control character", what);
            free(s);
            return NULL;
        }
    if (strlen(s) > max || (!empty_ok && s[0] == '\0')) {
        yw_error(c, v, "%s: expected %s%zu bytes at most", what, empty_ok ? "" : "1 to ", max);
        free(s);
        return NULL;
    }
    return s;
}

bool config_provider_preset_key(ywalk_t *c, cfg_provider_t *p, const char *k, yaml_node_t *kn,
                                yaml_node_t *v, const char *what)
{
    char *s;
    (void)kn;
    if (strcmp(k, "preset") == 0) {
        /* applied before the walk */
    } else if (strcmp(k, "quirks") == 0) {
        parse_quirks(c, p, v, what);
    } else if (strcmp(k, "headers") == 0) {
        parse_headers(c, p, v, what);
    } else if (strcmp(k, "query") == 0) {
        parse_query(c, p, v, what);
    } else if (strcmp(k, "resource") == 0) {
        s = plain_str(c, v, what, 63, false);
        if (s != NULL && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(s)) {
            yw_error(c, v, "%s: expected an Azure resource name (lower-case letters, digits, -)",
                     what);
            free(s);
        } else if (s != NULL) {
            set(&p->resource, s);
        }
    } else if (strcmp(k, "api_version") == 0) {
        if ((s = plain_str(c, v, what, 64, false)) != NULL)
            set(&p->api_version, s);
    } else if (strcmp(k, "auth_header") == 0) {
        s = plain_str(c, v, what, 64, false);
        if (s != NULL && !header_name_ok(s)) {
            yw_error(c, v, "%s: \"%s\" is not a header name", what, s);
            free(s);
        } else if (s != NULL) {
            set(&p->auth_header, s);
            if (p->auth_scheme == NULL)
                p->auth_scheme = xstrdup("");
        }
    } else if (strcmp(k, "auth_scheme") == 0) {
        if ((s = plain_str(c, v, what, 32, true)) != NULL)
            set(&p->auth_scheme, s);
    } else {
        return false;
    }
    return true;
}

void config_provider_preset_done(ywalk_t *c, cfg_provider_t *p, yaml_node_t *map,
                                 const char *where)
{
    char q[QUERY_MAX];
    size_t at = 0;
    char *hole, *qm;
    if (p->base_url == NULL)
        return;
    hole = strstr(p->base_url, "{resource}");
    if (hole != NULL) {
        if (p->resource == NULL) {
            yw_error(c, map, "%s: preset %s needs \"resource\" (the NAME of "
                             "https://NAME.openai.azure.com) or a base_url",
                     where, p->preset ? p->preset : "");
            return;
        }
        {
            size_t n = strlen(p->base_url) + strlen(p->resource) + 1;
            char *u = xmalloc(n);
            snprintf(u, n, "%.*s%s%s", (int)(hole - p->base_url), p->base_url, p->resource,
                     hole + sizeof "{resource}" - 1);
            set(&p->base_url, u);
        }
    } else if (p->resource != NULL && p->preset != NULL && strcmp(p->preset, "azure") != 0) {
        yw_error(c, map, "%s: resource applies only to preset: azure", where);
    }
    /* a query in base_url (https://x/openai?api-version=...) goes after the
     * path, never before it */
    q[0] = '\0';
    qm = strchr(p->base_url, '?');
    if (qm != NULL) {
        size_t n;
        *qm = '\0';
        n = strlen(qm + 1);
        if (n >= QUERY_MAX) {
            yw_error(c, map, "%s: the base_url's query is longer than %d bytes", where, QUERY_MAX);
            return;
        }
        memcpy(q, qm + 1, n + 1);
        at = n;
        n = strlen(p->base_url);
        while (n > 0 && p->base_url[n - 1] == '/')
            p->base_url[--n] = '\0';
    }
    if (p->query != NULL) {
        size_t n = strlen(p->query);
        if (at + n + 2 >= QUERY_MAX) {
            yw_error(c, map, "%s: the query is longer than %d bytes", where, QUERY_MAX);
            return;
        }
        if (at > 0)
            q[at++] = '&';
        memcpy(q + at, p->query, n + 1);
        at += n;
    }
    /* api_version joins unless the query already names an api-version */
    if (p->api_version != NULL && strstr(q, "api-version=") == NULL &&
        !query_add(q, &at, "api-version", p->api_version)) {
        yw_error(c, map, "%s: the query is longer than %d bytes", where, QUERY_MAX);
        return;
    }
    set(&p->query, at > 0 ? xstrdup(q) : NULL);
}

void config_provider_preset_free(cfg_provider_t *p)
{
    free(p->preset);
    free(p->auth_header);
    free(p->auth_scheme);
    free(p->query);
    free(p->resource);
    free(p->api_version);
    curl_slist_free_all(p->extra_headers);
}

bool config_model_preset_key(ywalk_t *c, cfg_model_t *m, const char *k, yaml_node_t *v,
                             const char *what)
{
    char *s;
    if (strcmp(k, "deployment") != 0)
        return false;
    s = plain_str(c, v, what, 256, false);
    if (s != NULL)
        set(&m->deployment, s);
    return true;
}

void config_model_preset_done(ywalk_t *c, const config_t *cfg, const cfg_model_t *m,
                              yaml_node_t *map, const char *where)
{
    if (m->deployment != NULL && m->provider >= 0 && !cfg->providers[m->provider].deployments)
        yw_error(c, map, "%s: deployment applies only to a provider with preset: azure "
                         "(provider %s has none)",
                 where, cfg->providers[m->provider].name);
}
