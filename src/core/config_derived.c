/* config_derived: data derived from a parsed snapshot before it is
 * published — provider keys read from the environment (and the curl header
 * lists that carry them), readiness (/readyz: which tier can serve, and why
 * not), the admin-key checks, and the pre-rendered /v1/models answer.
 * Called by config.c only. */
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
#include "core/util.h"
#include "core/yamlwalk.h"
#include "http/cors.h"
#include "core/buf.h"
#include "upstream/anthropic.h"


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

void config_resolve_keys(ywalk_t *c, config_t *cfg)
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
                char *line = xmalloc(n + (p->auth_header ? strlen(p->auth_header) + 64 : 0));
                /* Anthropic takes the key as x-api-key only: an
                 * Authorization header would be a second credential */
                if (p->auth_header != NULL) /* a preset's or auth_header: */
                    snprintf(line, n + strlen(p->auth_header) + 64, "%s: %.32s%s%s",
                             p->auth_header, p->auth_scheme ? p->auth_scheme : "",
                             p->auth_scheme && p->auth_scheme[0] ? " " : "", key);
                else if (p->type == PROVIDER_ANTHROPIC)
                    snprintf(line, n, ANTHROPIC_HEADER_KEY ": %s", key);
                else
                    snprintf(line, n, "Authorization: Bearer %s", key);
                h = must_append(h, line);
                explicit_bzero(line, strlen(line));
                free(line);
            }
        }
        if (p->type == PROVIDER_ANTHROPIC) {
            char line[96];
            snprintf(line, sizeof line, "anthropic-version: %s",
                     p->anthropic_version ? p->anthropic_version : ANTHROPIC_VERSION);
            h = must_append(h, line);
        }
        /* headers: (values may hold secrets from ${VAR}; redact.c masks them) */
        for (const struct curl_slist *x = p->extra_headers; x != NULL; x = x->next)
            h = must_append(h, x->data);
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
void config_build_ready_json(ywalk_t *c, config_t *cfg)
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
        if (a->tier >= 0 || a->classify)
            continue; /* its tier (its labels' tiers) is listed above */
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
void config_check_admin(ywalk_t *c, config_t *cfg)
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

void config_build_models_json(config_t *cfg)
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
