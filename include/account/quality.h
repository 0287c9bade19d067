/* quality: the process-wide record of judged quality and of drift — per
 * (tier, model, rule) the judge's scores, the judge's own spend, drops and
 * errors; per model and per rule a rolling window of samples (hard failures
 * and scores) and the alerts it raises; which models are demoted. Shared by
 * the shards behind one mutex (taken off the request path, except by
 * quality_demoted, which takes it only while some model is demoted). Any
 * thread. See docs/quality.md. */
#ifndef LLMROUTER_QUALITY_H
#define LLMROUTER_QUALITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "account/judge_parse.h"
#include "core/buf.h"
#include "core/config_quality.h"

typedef struct quality quality_t;

quality_t *quality_new(void);
void quality_free(quality_t *q);

/* Why a sample was not judged / why a judge call gave no score. */
enum quality_drop { QDROP_QUEUE_FULL = 0, QDROP_DAILY_CAP, QDROP_NO_ANSWER, QDROP_SHUTDOWN, QDROP_N };
enum quality_jerr { QJERR_TIMEOUT = 0, QJERR_HTTP, QJERR_CONNECT, QJERR_UNPARSABLE, QJERR_OTHER,
                    QJERR_N };
const char *quality_jerr_name(enum quality_jerr e);

/* One sample's outcome. Names borrowed for the call; tier/rule may be "-". */
typedef struct quality_sample {
    const char *tier, *model, *rule;
    enum judge_failure failure;
    bool scored;
    int score;                 /* 1..10 when scored */
} quality_sample_t;

/* An alert raised or cleared by quality_record. */
typedef struct quality_event {
    char kind[8];              /* "model" or "rule" */
    char name[128];
    char reason[16];           /* "mean_score" or "failure_rate" */
    bool raised;               /* false: cleared */
    bool demoted;              /* raised and the model is demoted */
    double mean_score;         /* of the window; -1 without scores */
    double failure_rate;
    unsigned n, n_scored;
} quality_event_t;

/* Records a sample (scores land in the per-(tier, model, rule) figures; the
 * sample enters its model's and its rule's windows when a is not NULL) and
 * writes up to max alert transitions it caused into ev. Returns how many. */
size_t quality_record(quality_t *q, const cfg_alerts_t *a, const quality_sample_t *s,
                      uint64_t now_ms, quality_event_t *ev, size_t max);

void quality_count_drop(quality_t *q, enum quality_drop why);
void quality_count_judge_error(quality_t *q, enum quality_jerr why);
/* A judge call's cost (>= 0) booked as judge spend of the current UTC day. */
void quality_add_spend(quality_t *q, double usd);
/* Whether today's judge spend is below cap_usd. */
bool quality_spend_ok(quality_t *q, double cap_usd);
/* The webhook's outcomes. */
void quality_count_webhook(quality_t *q, bool ok, bool dropped);

/* Whether model (its name) is demoted now. A demotion whose cooldown
 * (a->demote_cooldown_s) has passed ends here: the model gets traffic
 * again with an empty window, its alert stays raised until the window
 * decides. */
bool quality_demoted(quality_t *q, const char *model, uint64_t now_ms);

/* /metrics families (Prometheus text), the stats object
 * ("quality":{...} member text without the key) and /readyz's
 * `,"demoted":[...]` (nothing when none). Return 0 or -1 (out full). */
int quality_render_metrics(quality_t *q, buf_t *out);
int quality_stats_json(quality_t *q, buf_t *out);
void quality_readyz(quality_t *q, buf_t *out);

#endif
