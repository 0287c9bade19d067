/* config_quality: observability.judge and observability.alerts (see
 * include/core/config_quality.h). */
#include "core/config_quality.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "route/rules.h"

#define JUDGE_KEYS                                                                                 \
    "model, rate, rates, rubric, daily_spend_usd, queue, concurrency, timeout_ms, "                \
    "max_input_bytes, max_tokens"
#define ALERT_KEYS                                                                                 \
    "window, window_s, min_samples, min_mean_score, max_failure_rate, demote, "                   \
    "demote_cooldown_s, webhook"
#define WEBHOOK_KEYS "url, headers, timeout_ms, retries, queue"

static bool fraction(ywalk_t *c, yaml_node_t *v, const char *what, double *out)
{
    double r;
    if (!yw_price(c, v, what, &r))
        return false;
    if (r > 1) {
        yw_error(c, v, "%s: expected a fraction from 0 to 1", what);
        return false;
    }
    *out = r;
    return true;
}

static bool rule_exists(const config_t *cfg, const char *name)
{
    size_t n = cfg->rules ? rules_count(cfg->rules) : 0;
    if (strcmp(name, "default") == 0 || strcmp(name, "explicit") == 0 ||
        strcmp(name, "client-tier") == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (strcmp(rules_action(cfg->rules, i)->name, name) == 0)
            return true;
    return false;
}

/* rates: {tier: {NAME: R, ...}, rule: {NAME: R, ...}} */
static void parse_rate_map(ywalk_t *c, config_t *cfg, yaml_node_t *map, bool tiers,
                           cfg_judge_rate_t **out, size_t *n_out)
{
    const char *k;
    yaml_node_t *kn, *v;
    const char *what = tiers ? "observability.judge.rates.tier" : "observability.judge.rates.rule";
    if (!yw_expect(c, map, YAML_MAPPING_NODE, what))
        return;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        double r;
        if (tiers ? config_find_tier(cfg, k) < 0 : !rule_exists(cfg, k)) {
            yw_error(c, kn, "%s: no %s named \"%s\"", what, tiers ? "tier" : "rule", k);
            continue;
        }
        if (!fraction(c, v, what, &r))
            continue;
        *out = xrealloc(*out, (*n_out + 1) * sizeof **out);
        (*out)[*n_out].name = xstrdup(k);
        (*out)[*n_out].rate = r;
        (*n_out)++;
    }
}

static void parse_rates(ywalk_t *c, config_t *cfg, cfg_judge_t *j, yaml_node_t *map)
{
    const char *k;
    yaml_node_t *kn, *v;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "observability.judge.rates"))
        return;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        if (strcmp(k, "tier") == 0)
            parse_rate_map(c, cfg, v, true, &j->tier_rates, &j->n_tier_rates);
        else if (strcmp(k, "rule") == 0)
            parse_rate_map(c, cfg, v, false, &j->rule_rates, &j->n_rule_rates);
        else
            yw_unknown_key(c, kn, "observability.judge.rates", "tier, rule");
    }
}

void config_parse_judge(ywalk_t *c, config_t *cfg, yaml_node_t *map)
{
    const char *k;
    yaml_node_t *kn, *v;
    cfg_judge_t *j;
    bool have_model = false;
    uint64_t u;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "observability.judge"))
        return;
    if (cfg->obs.judge != NULL) {
        yw_error(c, map, "observability.judge: given twice");
        return;
    }
    j = xcalloc(1, sizeof *j);
    cfg->obs.judge = j;
    j->model = -1;
    j->rate = 0.03;
    j->daily_spend_usd = 1.0;
    j->queue = 256;
    j->concurrency = 2;
    j->timeout_ms = 10000;
    j->max_input_bytes = 8192;
    j->max_tokens = 200;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        char what[64];
        snprintf(what, sizeof what, "observability.judge.%s", k);
        if (strcmp(k, "model") == 0) {
            char *s = yw_str(c, v, what);
            if (s == NULL)
                continue;
            have_model = true;
            j->model = config_find_model(cfg, s);
            if (j->model < 0)
                yw_error(c, v, "%s: no model named \"%s\" is defined under models", what, s);
            free(s);
        } else if (strcmp(k, "rate") == 0) {
            fraction(c, v, what, &j->rate);
        } else if (strcmp(k, "rates") == 0) {
            parse_rates(c, cfg, j, v);
        } else if (strcmp(k, "rubric") == 0) {
            char *s = yw_str(c, v, what);
            if (s != NULL && s[0] == '\0') {
                yw_error(c, v, "%s: expected a prompt, found an empty string", what);
                free(s);
            } else if (s != NULL) {
                free(j->rubric);
                j->rubric = s;
            }
        } else if (strcmp(k, "daily_spend_usd") == 0) {
            yw_price(c, v, what, &j->daily_spend_usd);
        } else if (strcmp(k, "queue") == 0) {
            if (yw_u64(c, v, what, 1, 100000, &u))
                j->queue = (unsigned)u;
        } else if (strcmp(k, "concurrency") == 0) {
            if (yw_u64(c, v, what, 1, 64, &u))
                j->concurrency = (unsigned)u;
        } else if (strcmp(k, "timeout_ms") == 0) {
            if (yw_u64(c, v, what, 10, 600000, &u))
                j->timeout_ms = (unsigned)u;
        } else if (strcmp(k, "max_input_bytes") == 0) {
            if (yw_u64(c, v, what, 64, 1 << 20, &u))
                j->max_input_bytes = (size_t)u;
        } else if (strcmp(k, "max_tokens") == 0) {
            if (yw_u64(c, v, what, 1, 100000, &u))
                j->max_tokens = (unsigned)u;
        } else {
            yw_unknown_key(c, kn, "observability.judge", JUDGE_KEYS);
        }
    }
    if (!have_model)
        yw_error(c, map, "observability.judge: model is required (the model that scores answers)");
}

static void parse_webhook(ywalk_t *c, cfg_alerts_t *a, yaml_node_t *map)
{
    const char *k;
    yaml_node_t *kn, *v;
    uint64_t u;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "observability.alerts.webhook"))
        return;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        char what[64];
        snprintf(what, sizeof what, "observability.alerts.webhook.%s", k);
        if (strcmp(k, "url") == 0) {
            char *s = yw_str(c, v, what);
            if (s != NULL && strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) {
                yw_error(c, v, "%s: expected an http:// or https:// URL", what);
                free(s);
            } else if (s != NULL) {
                free(a->webhook_url);
                a->webhook_url = s;
            }
        } else if (strcmp(k, "headers") == 0) {
            const char *hk;
            yaml_node_t *hkn, *hv;
            if (!yw_expect(c, v, YAML_MAPPING_NODE, what))
                continue;
            YW_MAP_FOREACH(c, v, hk, hkn, hv)
            {
                char *val;
                size_t n;
                if (hk[0] == '\0' || strpbrk(hk, ": \t\r\n") != NULL) {
                    yw_error(c, hkn, "%s: \"%s\" is not a header name", what, hk);
                    continue;
                }
                val = yw_str(c, hv, what);
                if (val == NULL)
                    continue;
                if (strpbrk(val, "\r\n") != NULL) {
                    yw_error(c, hv, "%s.%s: a header value may not hold a line break", what, hk);
                    free(val);
                    continue;
                }
                n = strlen(hk) + strlen(val) + 3;
                a->webhook_headers =
                    xrealloc(a->webhook_headers, (a->n_webhook_headers + 2) * sizeof(char *));
                a->webhook_headers[a->n_webhook_headers] = xmalloc(n);
                snprintf(a->webhook_headers[a->n_webhook_headers], n, "%s: %s", hk, val);
                a->webhook_headers[++a->n_webhook_headers] = NULL;
                free(val);
            }
        } else if (strcmp(k, "timeout_ms") == 0) {
            if (yw_u64(c, v, what, 10, 60000, &u))
                a->webhook_timeout_ms = (unsigned)u;
        } else if (strcmp(k, "retries") == 0) {
            if (yw_u64(c, v, what, 0, 10, &u))
                a->webhook_retries = (unsigned)u;
        } else if (strcmp(k, "queue") == 0) {
            if (yw_u64(c, v, what, 1, 10000, &u))
                a->webhook_queue = (unsigned)u;
        } else {
            yw_unknown_key(c, kn, "observability.alerts.webhook", WEBHOOK_KEYS);
        }
    }
    if (a->webhook_url == NULL)
        yw_error(c, map, "observability.alerts.webhook: url is required");
}

void config_parse_alerts(ywalk_t *c, config_t *cfg, yaml_node_t *map)
{
    const char *k;
    yaml_node_t *kn, *v;
    cfg_alerts_t *a;
    uint64_t u;
    if (!yw_expect(c, map, YAML_MAPPING_NODE, "observability.alerts"))
        return;
    if (cfg->obs.alerts != NULL) {
        yw_error(c, map, "observability.alerts: given twice");
        return;
    }
    a = xcalloc(1, sizeof *a);
    cfg->obs.alerts = a;
    a->window = 50;
    a->min_samples = 20;
    a->min_mean_score = 6.0;
    a->max_failure_rate = 0.2;
    a->demote_cooldown_s = 300;
    a->webhook_timeout_ms = 5000;
    a->webhook_retries = 3;
    a->webhook_queue = 64;
    YW_MAP_FOREACH(c, map, k, kn, v)
    {
        char what[64];
        snprintf(what, sizeof what, "observability.alerts.%s", k);
        if (strcmp(k, "window") == 0) {
            if (yw_u64(c, v, what, 1, 10000, &u))
                a->window = (unsigned)u;
        } else if (strcmp(k, "window_s") == 0) {
            if (yw_u64(c, v, what, 1, 7 * 86400, &u))
                a->window_s = (unsigned)u;
        } else if (strcmp(k, "min_samples") == 0) {
            if (yw_u64(c, v, what, 1, 10000, &u))
                a->min_samples = (unsigned)u;
        } else if (strcmp(k, "min_mean_score") == 0) {
            double d;
            if (yw_price(c, v, what, &d)) {
                if (d > 10)
                    yw_error(c, v, "%s: expected a score from 0 to 10", what);
                else
                    a->min_mean_score = d;
            }
        } else if (strcmp(k, "max_failure_rate") == 0) {
            fraction(c, v, what, &a->max_failure_rate);
        } else if (strcmp(k, "demote") == 0) {
            yw_bool(c, v, what, &a->demote);
        } else if (strcmp(k, "demote_cooldown_s") == 0) {
            if (yw_u64(c, v, what, 1, 86400, &u))
                a->demote_cooldown_s = (unsigned)u;
        } else if (strcmp(k, "webhook") == 0) {
            parse_webhook(c, a, v);
        } else {
            yw_unknown_key(c, kn, "observability.alerts", ALERT_KEYS);
        }
    }
    if (a->window_s == 0 && a->min_samples > a->window)
        yw_error(c, map, "observability.alerts: min_samples (%u) is larger than window (%u)",
                 a->min_samples, a->window);
}

void config_quality_free(config_t *cfg)
{
    cfg_judge_t *j = cfg->obs.judge;
    cfg_alerts_t *a = cfg->obs.alerts;
    if (j != NULL) {
        for (size_t i = 0; i < j->n_tier_rates; i++)
            free(j->tier_rates[i].name);
        for (size_t i = 0; i < j->n_rule_rates; i++)
            free(j->rule_rates[i].name);
        free(j->tier_rates);
        free(j->rule_rates);
        free(j->rubric);
        free(j);
    }
    if (a != NULL) {
        free(a->webhook_url);
        yw_strv_free(a->webhook_headers);
        free(a);
    }
    cfg->obs.judge = NULL;
    cfg->obs.alerts = NULL;
}

double config_judge_rate(const cfg_judge_t *j, const char *tier, const char *rule)
{
    for (size_t i = 0; rule != NULL && i < j->n_rule_rates; i++)
        if (strcmp(j->rule_rates[i].name, rule) == 0)
            return j->rule_rates[i].rate;
    for (size_t i = 0; tier != NULL && i < j->n_tier_rates; i++)
        if (strcmp(j->tier_rates[i].name, tier) == 0)
            return j->tier_rates[i].rate;
    return j->rate;
}
