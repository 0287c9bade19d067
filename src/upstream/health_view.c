/* health_view: circuit breakers and provider slots in /metrics,
 * /v1/router/stats and /readyz (see include/upstream/health_view.h). */
#include "upstream/health_view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/json.h"
#include "route/rules.h"

static int put_family(buf_t *out, const char *name, const char *type, const char *help)
{
    char line[512];
    snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    return buf_puts(out, line);
}

static int put_series(buf_t *out, const char *name, const char *label, unsigned long long v)
{
    char line[512];
    snprintf(line, sizeof line, "%s{%s} %llu\n", name, label, v);
    return buf_puts(out, line);
}

enum { M_STATE, M_LEFT, M_TRIPS, M_SKIPS, M_PROBES, M_COUNT };
enum { P_INFLIGHT, P_MAX, P_QUEUED, P_TIMEOUTS, P_FULL, P_COUNT };

int health_render_metrics(const config_t *cfg, uint64_t now_ms, buf_t *out)
{
    static const struct {
        const char *name, *type, *help;
    } mf[M_COUNT] = {
        [M_STATE] = {"llmrouter_circuit_state", "gauge",
                     "Circuit breaker per model: 0 closed, 1 open, 2 half-open (the next "
                     "request probes)."},
        [M_LEFT] = {"llmrouter_circuit_cooldown_seconds", "gauge",
                    "Seconds until a model's cooldown ends (open circuit or a 429's "
                    "Retry-After); 0 none."},
        [M_TRIPS] = {"llmrouter_circuit_trips_total", "counter",
                     "Times a model's circuit opened (failed probes included)."},
        [M_SKIPS] = {"llmrouter_circuit_skips_total", "counter",
                     "Attempts skipped because the model was cooling down."},
        [M_PROBES] = {"llmrouter_circuit_probes_total", "counter",
                      "Half-open probes (and last-resort attempts) let through to a model."},
    },
      pf[P_COUNT] = {
          [P_INFLIGHT] = {"llmrouter_provider_inflight", "gauge",
                          "Upstream transfers in flight per provider, over all shards."},
          [P_MAX] = {"llmrouter_provider_max_inflight", "gauge",
                     "The provider's max_inflight (0: no limit)."},
          [P_QUEUED] = {"llmrouter_provider_queued", "gauge",
                        "Requests waiting for a slot of the provider, over all shards."},
          [P_TIMEOUTS] = {"llmrouter_provider_queue_timeouts_total", "counter",
                          "Requests that waited queue_timeout_ms for a slot and went on down "
                          "their chain."},
          [P_FULL] = {"llmrouter_provider_queue_full_total", "counter",
                      "Requests that found the provider's queue full and went on down their "
                      "chain."},
      };
    int rc = 0;
    char label[200], line[512];
    for (int f = 0; f < M_COUNT; f++) {
        rc |= put_family(out, mf[f].name, mf[f].type, mf[f].help);
        for (size_t i = 0; i < cfg->n_models; i++) {
            health_model_info_t in;
            if (cfg->models[i].health == NULL)
                continue;
            health_model_info(cfg->models[i].health, now_ms, &in);
            snprintf(label, sizeof label, "model=\"%s\"", cfg->models[i].name);
            if (f == M_LEFT) {
                snprintf(line, sizeof line, "%s{%s} %.3f\n", mf[f].name, label,
                         (double)in.left_ms / 1000);
                rc |= buf_puts(out, line);
                continue;
            }
            rc |= put_series(out, mf[f].name, label,
                             f == M_STATE   ? (unsigned long long)in.state
                             : f == M_TRIPS ? in.trips
                             : f == M_SKIPS ? in.skips
                                            : in.probes);
        }
    }
    for (int f = 0; f < P_COUNT; f++) {
        rc |= put_family(out, pf[f].name, pf[f].type, pf[f].help);
        for (size_t i = 0; i < cfg->n_providers; i++) {
            const cfg_provider_t *p = &cfg->providers[i];
            health_provider_info_t in;
            if (p->health == NULL)
                continue;
            health_provider_info(p->health, &in);
            snprintf(label, sizeof label, "provider=\"%s\"", p->name);
            rc |= put_series(out, pf[f].name, label,
                             f == P_INFLIGHT   ? in.inflight
                             : f == P_MAX      ? p->max_inflight
                             : f == P_QUEUED   ? in.waiting
                             : f == P_TIMEOUTS ? in.queue_timeouts
                                               : in.queue_full);
        }
    }
    return rc ? -1 : 0;
}

int health_stats_json(const config_t *cfg, uint64_t now_ms, buf_t *out)
{
    int rc = buf_puts(out, "{\"models\":[");
    char num[320];
    bool first = true;
    for (size_t i = 0; i < cfg->n_models; i++) {
        const cfg_model_t *m = &cfg->models[i];
        health_model_info_t in;
        if (m->health == NULL)
            continue;
        health_model_info(m->health, now_ms, &in);
        rc |= buf_puts(out, first ? "{\"model\":" : ",{\"model\":");
        first = false;
        rc |= json_append_string(out, m->name, strlen(m->name));
        snprintf(num, sizeof num,
                 ",\"circuit\":%s,\"state\":\"%s\",\"cooling\":%s,\"cooldown_left_s\":%.3f,"
                 "\"rate_limited_left_s\":%.3f,\"cooldown_s\":%.3f,\"consecutive_failures\":%u,"
                 "\"trips\":%llu,\"skips\":%llu,\"probes\":%llu,\"last_failure\":",
                 m->circuit.enabled ? "true" : "false", health_state_name(in.state),
                 in.cooling ? "true" : "false", (double)in.left_ms / 1000,
                 (double)in.rate_left_ms / 1000, (double)in.cooldown_ms / 1000, in.consecutive,
                 (unsigned long long)in.trips,
                 (unsigned long long)in.skips, (unsigned long long)in.probes);
        rc |= buf_puts(out, num);
        rc |= in.last_failure[0] ? json_append_string(out, in.last_failure, strlen(in.last_failure))
                                 : buf_puts(out, "null");
        rc |= buf_puts(out, "}");
    }
    rc |= buf_puts(out, "],\"providers\":[");
    first = true;
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const cfg_provider_t *p = &cfg->providers[i];
        health_provider_info_t in;
        if (p->health == NULL)
            continue;
        health_provider_info(p->health, &in);
        rc |= buf_puts(out, first ? "{\"provider\":" : ",{\"provider\":");
        first = false;
        rc |= json_append_string(out, p->name, strlen(p->name));
        snprintf(num, sizeof num,
                 ",\"inflight\":%llu,\"max_inflight\":%u,\"queued\":%llu,\"queue_timeouts\":%llu,"
                 "\"queue_full\":%llu}",
                 (unsigned long long)in.inflight, p->max_inflight, (unsigned long long)in.waiting,
                 (unsigned long long)in.queue_timeouts, (unsigned long long)in.queue_full);
        rc |= buf_puts(out, num);
    }
    rc |= buf_puts(out, "]}");
    return rc ? -1 : 0;
}

/* Whether chain[0..n) has a model that is usable (its key set) and not
 * cooling down; cooling[] per model of cfg. */
static bool chain_serves(const config_t *cfg, const int *chain, size_t n, const bool *cooling)
{
    for (size_t i = 0; i < n; i++)
        if (!cfg->providers[cfg->models[chain[i]].provider].key_missing && !cooling[chain[i]])
            return true;
    return false;
}

static void mark(cJSON *list, const char *name, buf_t *why, const char *kind)
{
    cJSON *e;
    cJSON_ArrayForEach(e, list)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) {
            cJSON_ReplaceItemInObjectCaseSensitive(e, "ready", cJSON_CreateFalse());
            cJSON_AddTrueToObject(e, "cooling_down");
        }
    }
    buf_puts(why, buf_len(why) ? "; " : "");
    buf_puts(why, kind);
    buf_puts(why, " ");
    buf_puts(why, name);
}

unsigned health_readyz(const config_t *cfg, uint64_t now_ms, buf_t *out)
{
    bool *cooling, any = false, ok = true;
    cJSON *root, *list, *tiers, *rules;
    buf_t why;
    char *text;

    if (!cfg->ready || cfg->n_models == 0) {
        buf_append(out, cfg->ready_json, cfg->ready_json_len);
        return cfg->ready ? 200 : 503;
    }
    cooling = calloc(cfg->n_models, sizeof *cooling);
    if (cooling == NULL)
        abort();
    for (size_t i = 0; i < cfg->n_models; i++) {
        health_model_info_t in;
        health_model_info(cfg->models[i].health, now_ms, &in);
        cooling[i] = in.cooling;
        any = any || in.cooling;
    }
    if (!any) {
        free(cooling);
        buf_append(out, cfg->ready_json, cfg->ready_json_len);
        return 200;
    }
    root = cJSON_Parse(cfg->ready_json);
    if (root == NULL)
        abort(); /* built by config_derived.c */
    list = cJSON_AddArrayToObject(root, "cooling_down");
    for (size_t i = 0; i < cfg->n_models; i++) {
        health_model_info_t in;
        cJSON *e;
        if (!cooling[i])
            continue;
        health_model_info(cfg->models[i].health, now_ms, &in);
        e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "model", cfg->models[i].name);
        cJSON_AddStringToObject(e, "state", health_state_name(in.state));
        cJSON_AddStringToObject(e, "reason", in.rate_left_ms > 0 && in.state == HEALTH_CLOSED
                                                  ? "rate_limited"
                                                  : "circuit");
        cJSON_AddNumberToObject(e, "seconds_left", (double)((in.left_ms + 999) / 1000));
        cJSON_AddItemToArray(list, e);
    }
    buf_init(&why, 1 << 16);
    tiers = cJSON_GetObjectItemCaseSensitive(root, "tiers");
    for (size_t i = 0; i < cfg->n_tiers; i++)
        if (!chain_serves(cfg, cfg->tiers[i].models, cfg->tiers[i].n_models, cooling)) {
            ok = false;
            mark(tiers, cfg->tiers[i].name, &why, "tier");
        }
    rules = cJSON_GetObjectItemCaseSensitive(root, "rules");
    for (size_t i = 0; i < rules_count(cfg->rules); i++) {
        const rule_action_t *a = rules_action(cfg->rules, i);
        if (a->tier >= 0 || a->classify)
            continue;
        if (!chain_serves(cfg, a->chain, a->n_chain, cooling)) {
            ok = false;
            mark(rules, a->name, &why, "rule");
        }
    }
    if (!ok) {
        cJSON *err = cJSON_CreateObject();
        char msg[1200];
        snprintf(msg, sizeof msg, "every usable model is cooling down in: %.1000s",
                 buf_cstr(&why));
        cJSON_ReplaceItemInObjectCaseSensitive(root, "status", cJSON_CreateString("not_ready"));
        cJSON_AddStringToObject(err, "message", msg);
        cJSON_AddStringToObject(err, "type", "server_error");
        cJSON_AddNullToObject(err, "param");
        cJSON_AddStringToObject(err, "code", "cooling_down");
        cJSON_AddItemToObject(root, "error", err);
    }
    buf_free(&why);
    text = cJSON_PrintUnformatted(root);
    if (text == NULL)
        abort();
    buf_puts(out, text);
    free(text);
    cJSON_Delete(root);
    free(cooling);
    return ok ? 200 : 503;
}
