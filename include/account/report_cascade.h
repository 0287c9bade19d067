/* report_cascade: the cascade section of `llmrouter report` — per cascade
 * tier, how often each model of the chain was tried and what became of its
 * answer (accepted, rejected, failed, final), and what the tier's requests
 * cost against going straight to its last model (the access log's
 * "cascade".direct_cost_usd: the returned answer's tokens at the last
 * model's prices). Fed by report.c one access log entry at a time; main
 * thread only. */
#ifndef LLMROUTER_REPORT_CASCADE_H
#define LLMROUTER_REPORT_CASCADE_H

#include <stdio.h>

struct cJSON;

typedef struct report_cascade report_cascade_t;

/* A new, empty section; free with report_cascade_free. */
report_cascade_t *report_cascade_new(void);
void report_cascade_free(report_cascade_t *rc);

/* Folds one access log entry (a parsed object, borrowed) into rc; entries
 * without a "cascade" object are ignored. */
void report_cascade_add(report_cascade_t *rc, const struct cJSON *entry);

/* Sorts the tiers by name and their steps by their place in the chain;
 * call once after the last add. */
void report_cascade_finish(report_cascade_t *rc);

/* Prints the section (nothing when no entry had a cascade). */
void report_cascade_print_table(const report_cascade_t *rc, FILE *out);

/* Adds "cascades": [{tier, requests, cost_usd, direct_cost_usd,
 * savings_pct, steps: [{model, tried, accepted, rejected, failed, final,
 * accept_rate}]}] to root. */
void report_cascade_json(const report_cascade_t *rc, struct cJSON *root);

#endif
