/* config_health: the keys of circuit breaking and concurrency limits —
 * `circuit:` under routing, a provider or a model, and a provider's
 * max_inflight, max_queue and queue_timeout_ms — and the resolution of each
 * model's circuit, key by key: the model's, else its provider's, else
 * routing.circuit's, else the built-in default. Called by config.c and
 * config_schema.c only. */
#include "core/config_schema.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/yamlwalk.h"

#define CIRCUIT_KEYS                                                                               \
    "enabled, failures, failure_ratio, min_requests, window_ms, cooldown_ms, max_cooldown_ms, "    \
    "retry_after_max_ms"

static const cfg_circuit_t builtin = {
    .enabled = true,
    .failures = 5,
    .failure_ratio = 0.5,
    .min_requests = 20,
    .window_ms = 30000,
    .cooldown_ms = 30000,
    .max_cooldown_ms = 300000,
    .retry_after_max_ms = 60000,
};

static bool parse_ratio(ywalk_t *c, yaml_node_t *v, const char *what, double *out)
{
    char *s = yw_str(c, v, what), *end = NULL;
    double d;
    bool ok = false;
    if (s == NULL)
        return false;
    errno = 0;
    d = strtod(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(d) || d < 0 || d > 1)
        yw_error(c, v,
                 "%s: expected a fraction from 0 to 1 (0 turns the ratio rule off), found \"%s\"",
                 what, s);
    else {
        *out = d;
        ok = true;
    }
    free(s);
    return ok;
}

void config_parse_circuit(ywalk_t *c, yaml_node_t *v, const char *where, cfg_circuit_t *out)
{
    const char *k;
    yaml_node_t *kn, *val;
    if (v->type == YAML_SCALAR_NODE) {
        /* circuit: false / true — the short form of enabled */
        if (yw_bool(c, v, where, &out->enabled))
            out->set |= CIRCUIT_SET_ENABLED;
        return;
    }
    if (!yw_expect(c, v, YAML_MAPPING_NODE, where))
        return;
    YW_MAP_FOREACH(c, v, k, kn, val)
    {
        char what[256];
        snprintf(what, sizeof what, "%s.%s", where, k);
        if (strcmp(k, "enabled") == 0) {
            if (yw_bool(c, val, what, &out->enabled))
                out->set |= CIRCUIT_SET_ENABLED;
        } else if (strcmp(k, "failures") == 0) {
            if (yw_u32(c, val, what, 0, 10000, &out->failures))
                out->set |= CIRCUIT_SET_FAILURES;
        } else if (strcmp(k, "failure_ratio") == 0) {
            if (parse_ratio(c, val, what, &out->failure_ratio))
                out->set |= CIRCUIT_SET_RATIO;
        } else if (strcmp(k, "min_requests") == 0) {
            if (yw_u32(c, val, what, 1, 1000000, &out->min_requests))
                out->set |= CIRCUIT_SET_MIN_REQUESTS;
        } else if (strcmp(k, "window_ms") == 0) {
            if (yw_u32(c, val, what, 100, 86400000, &out->window_ms))
                out->set |= CIRCUIT_SET_WINDOW;
        } else if (strcmp(k, "cooldown_ms") == 0) {
            if (yw_u32(c, val, what, 10, 86400000, &out->cooldown_ms))
                out->set |= CIRCUIT_SET_COOLDOWN;
        } else if (strcmp(k, "max_cooldown_ms") == 0) {
            if (yw_u32(c, val, what, 10, 86400000, &out->max_cooldown_ms))
                out->set |= CIRCUIT_SET_MAX_COOLDOWN;
        } else if (strcmp(k, "retry_after_max_ms") == 0) {
            if (yw_u32(c, val, what, 0, 3600000, &out->retry_after_max_ms))
                out->set |= CIRCUIT_SET_RETRY_AFTER_MAX;
        } else {
            yw_unknown_key(c, kn, where, CIRCUIT_KEYS);
        }
    }
    if ((out->set & CIRCUIT_SET_COOLDOWN) && (out->set & CIRCUIT_SET_MAX_COOLDOWN) &&
        out->max_cooldown_ms < out->cooldown_ms)
        yw_error(c, v, "%s: max_cooldown_ms (%u) is below cooldown_ms (%u)", where,
                 out->max_cooldown_ms, out->cooldown_ms);
}

void config_provider_limit_defaults(cfg_provider_t *p)
{
    p->max_inflight = 0;
    p->max_queue = 100;
    p->queue_timeout_ms = 5000;
}

bool config_parse_provider_limit(ywalk_t *c, const char *k, yaml_node_t *v, const char *what,
                                 cfg_provider_t *p)
{
    if (strcmp(k, "circuit") == 0)
        config_parse_circuit(c, v, what, &p->circuit);
    else if (strcmp(k, "max_inflight") == 0)
        yw_u32(c, v, what, 0, 1000000, &p->max_inflight);
    else if (strcmp(k, "max_queue") == 0)
        yw_u32(c, v, what, 0, 1000000, &p->max_queue);
    else if (strcmp(k, "queue_timeout_ms") == 0)
        yw_u32(c, v, what, 1, 600000, &p->queue_timeout_ms);
    else
        return false;
    return true;
}

/* dst takes from src every key src sets and dst does not */
static void inherit(cfg_circuit_t *dst, const cfg_circuit_t *src)
{
    unsigned take = src->set & ~dst->set;
    if (take & CIRCUIT_SET_ENABLED)
        dst->enabled = src->enabled;
    if (take & CIRCUIT_SET_FAILURES)
        dst->failures = src->failures;
    if (take & CIRCUIT_SET_RATIO)
        dst->failure_ratio = src->failure_ratio;
    if (take & CIRCUIT_SET_MIN_REQUESTS)
        dst->min_requests = src->min_requests;
    if (take & CIRCUIT_SET_WINDOW)
        dst->window_ms = src->window_ms;
    if (take & CIRCUIT_SET_COOLDOWN)
        dst->cooldown_ms = src->cooldown_ms;
    if (take & CIRCUIT_SET_MAX_COOLDOWN)
        dst->max_cooldown_ms = src->max_cooldown_ms;
    if (take & CIRCUIT_SET_RETRY_AFTER_MAX)
        dst->retry_after_max_ms = src->retry_after_max_ms;
    dst->set |= take;
}

void config_resolve_circuits(config_t *cfg)
{
    cfg_circuit_t all = builtin;
    all.set = CIRCUIT_SET_ALL;
    for (size_t i = 0; i < cfg->n_models; i++) {
        cfg_model_t *m = &cfg->models[i];
        if (m->provider >= 0 && (size_t)m->provider < cfg->n_providers)
            inherit(&m->circuit, &cfg->providers[m->provider].circuit);
        inherit(&m->circuit, &cfg->circuit);
        inherit(&m->circuit, &all);
        /* the levels may set the two apart: the cap is at least the start */
        if (m->circuit.max_cooldown_ms < m->circuit.cooldown_ms)
            m->circuit.max_cooldown_ms = m->circuit.cooldown_ms;
    }
}
