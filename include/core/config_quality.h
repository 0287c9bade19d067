/* config_quality: the observability.judge and observability.alerts
 * sections — which sampled answers a model scores, and when a model's or a
 * rule's judged quality or failure rate raises an alert (docs/quality.md).
 * Parsed on the loading thread into the snapshot (cfg->obs.judge,
 * cfg->obs.alerts), read-only afterwards from any thread. */
#ifndef LLMROUTER_CONFIG_QUALITY_H
#define LLMROUTER_CONFIG_QUALITY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/yamlwalk.h"

/* A rate override: a tier's or a rule's name and its judge rate. */
typedef struct cfg_judge_rate {
    char *name;
    double rate;
} cfg_judge_rate_t;

typedef struct cfg_judge {
    int model;                  /* index into cfg->models */
    double rate;                /* fraction of requests judged (0..1) */
    cfg_judge_rate_t *tier_rates, *rule_rates; /* overrides; a rule's wins over its tier's */
    size_t n_tier_rates, n_rule_rates;
    char *rubric;               /* system prompt; NULL: the built-in one (judge_parse.h) */
    double daily_spend_usd;     /* judge spend per UTC day; at it samples are dropped */
    unsigned queue;             /* samples waiting per shard; past it: dropped */
    unsigned concurrency;       /* judge calls in flight per shard */
    unsigned timeout_ms;        /* one judge call */
    size_t max_input_bytes;     /* of the question and of the answer sent to the judge */
    unsigned max_tokens;        /* of the judge's answer */
} cfg_judge_t;

typedef struct cfg_alerts {
    unsigned window;            /* samples per rolling window */
    unsigned window_s;          /* > 0: a time window instead (samples younger than this) */
    unsigned min_samples;       /* fewer: no decision */
    double min_mean_score;      /* judged mean below it: alert (0 = no score check) */
    double max_failure_rate;    /* hard failures above it: alert (1 = no failure check) */
    bool demote;                /* a model in alert is skipped in chains */
    unsigned demote_cooldown_s; /* a demoted model gets traffic again after this long */
    char *webhook_url;          /* NULL: no webhook */
    char **webhook_headers;     /* NULL-terminated "Name: value" lines (values env-expanded) */
    size_t n_webhook_headers;
    unsigned webhook_timeout_ms;
    unsigned webhook_retries;   /* after the first try */
    unsigned webhook_queue;     /* alerts waiting per shard */
} cfg_alerts_t;

/* observability.judge / observability.alerts (map); errors recorded in c
 * with positions. The models, tiers and rules must be parsed already. */
void config_parse_judge(ywalk_t *c, config_t *cfg, yaml_node_t *map);
void config_parse_alerts(ywalk_t *c, config_t *cfg, yaml_node_t *map);
/* Frees both sections of cfg (NULL members are fine). */
void config_quality_free(config_t *cfg);

/* The judge rate of a request routed by tier name and rule name (either may
 * be NULL): the rule's override, else the tier's, else the default. */
double config_judge_rate(const cfg_judge_t *j, const char *tier, const char *rule);

#endif
